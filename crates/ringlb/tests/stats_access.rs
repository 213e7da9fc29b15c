//! `stats http-request allow|deny|auth` through the real binary, compared with haproxy 2.6
//! for the same config and requests (status and `WWW-Authenticate`): the first matching rule
//! decides, none matching serves the page. haproxy refuses `stats auth` next to such rules
//! (credentials then come from `auth ... unless { http_auth(<userlist>) }`), and so does
//! ringlb.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, ChildGuard, Haproxy, Ringlb, TempDir,
};

fn config(stats: SocketAddr) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nlisten stats\n    bind {stats}\n    description Ops team\n    stats enable\n    stats uri /stats\n    stats http-request deny if {{ hdr(x-block) -m found }}\n    stats http-request allow if {{ hdr(x-internal) -m str yes }}\n    stats http-request auth realm Ops if {{ hdr(x-ops) -m found }}\n"
    )
}

/// (status, www-authenticate) for each request of the scenario.
fn run(haproxy: bool, dir: &TempDir) -> Vec<(u16, Option<String>)> {
    let stats = free_addr();
    let path = dir.join(if haproxy { "h.cfg" } else { "r.cfg" });
    std::fs::write(&path, config(stats)).unwrap();
    let _p: ChildGuard = if haproxy {
        Haproxy::start(&path, &[stats])
    } else {
        Ringlb::start(&path, &[stats])
    };
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],                                        // no rule matches: the page
        vec![("X-Ops", "1")],                          // 401 realm Ops
        vec![("X-Internal", "yes")],                   // allowed
        vec![("X-Block", "1")],                        // 403
        vec![("X-Block", "1"), ("X-Internal", "yes")], // the first rule wins: 403
    ];
    // The proxy's `description` heads its table.
    let page = http_get(stats, "/stats", &[("Connection", "close")]).unwrap();
    assert!(
        page.text()
            .contains("<th class=\"desc\" width=\"90%\">Ops team</th>"),
        "haproxy={haproxy}"
    );
    cases
        .into_iter()
        .map(|mut h| {
            h.push(("Connection", "close"));
            let r = http_get(stats, "/stats", &h).unwrap();
            (r.status, r.header("www-authenticate").map(str::to_string))
        })
        .collect()
}

#[test]
fn stats_http_request_rules_decide_access_as_in_haproxy() {
    let dir = TempDir::new("stats-access");
    let want = vec![
        (200, None),
        (401, Some("Basic realm=\"Ops\"".to_string())),
        (200, None),
        (403, None),
        (403, None),
    ];
    assert_eq!(run(false, &dir), want, "ringlb");
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    assert_eq!(run(true, &dir), want, "haproxy");
}

#[test]
fn stats_auth_next_to_stats_http_request_is_refused_as_in_haproxy() {
    let dir = TempDir::new("stats-access-mix");
    let path = dir.join("mix.cfg");
    std::fs::write(
        &path,
        format!(
            "{}    stats auth admin:secret\n",
            config("127.0.0.1:1".parse().unwrap())
        ),
    )
    .unwrap();
    let out = ringlb_testkit::run_bounded(
        std::process::Command::new(ringlb_testkit::bin_path("ringlb"))
            .arg("-c")
            .arg("-f")
            .arg(&path),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("stats 'auth'/'realm' and 'http-request' can't be used at the same time"),
        "{err}"
    );
}

/// Global `node` and `description` in `show info` and on the stats page (`stats show-node`,
/// `stats show-desc`), as haproxy shows them.
#[test]
fn node_and_description_show_as_in_haproxy() {
    use std::io::{Read, Write};
    let dir = TempDir::new("stats-node");
    let mut runs = vec![false];
    if haproxy_available() {
        runs.push(true);
    }
    for haproxy in runs {
        let stats = free_addr();
        let sock = dir.join(if haproxy { "h.sock" } else { "r.sock" });
        let path = dir.join(if haproxy { "hn.cfg" } else { "rn.cfg" });
        std::fs::write(
            &path,
            format!(
                "global\n    stats socket {}\n    node edge-1\n    description Edge balancer\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nlisten stats\n    bind {stats}\n    stats enable\n    stats uri /stats\n    stats show-node\n    stats show-desc\n",
                sock.display()
            ),
        )
        .unwrap();
        let _p: ChildGuard = if haproxy {
            Haproxy::start(&path, &[stats])
        } else {
            Ringlb::start(&path, &[stats])
        };
        assert!(ringlb_testkit::wait_until(
            std::time::Duration::from_secs(5),
            || std::os::unix::net::UnixStream::connect(&sock).is_ok()
        ));
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(b"show info\n").unwrap();
        let mut info = String::new();
        s.read_to_string(&mut info).unwrap();
        let who = if haproxy { "haproxy" } else { "ringlb" };
        assert!(info.lines().any(|l| l == "node: edge-1"), "{who}: {info}");
        assert!(
            info.lines().any(|l| l == "description: Edge balancer"),
            "{who}: {info}"
        );
        let page = http_get(stats, "/stats", &[("Connection", "close")])
            .unwrap()
            .text();
        assert!(page.contains(" on edge-1: Edge balancer</h2>"), "{who}");
    }
}

/// Listener rows (`sock-N`) appear in `show stat` only for frontends with
/// `option socket-stats`, as in haproxy (CSV consumers count rows).
#[test]
fn listener_rows_only_with_socket_stats_as_in_haproxy() {
    use std::io::{Read, Write};
    let dir = TempDir::new("stats-sock");
    let mut runs = vec![false];
    if haproxy_available() {
        runs.push(true);
    }
    let mut results = Vec::new();
    for haproxy in runs {
        let (a, b) = (free_addr(), free_addr());
        let sock = dir.join(if haproxy { "h.sock" } else { "r.sock" });
        let path = dir.join(if haproxy { "h.cfg" } else { "r.cfg" });
        std::fs::write(
            &path,
            format!(
                "global\n    stats socket {}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nfrontend fe\n    bind {a}\n    default_backend be\nfrontend fe2\n    bind {b}\n    option socket-stats\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n",
                sock.display()
            ),
        )
        .unwrap();
        let _p: ChildGuard = if haproxy {
            Haproxy::start(&path, &[a, b])
        } else {
            Ringlb::start(&path, &[a, b])
        };
        assert!(ringlb_testkit::wait_until(
            std::time::Duration::from_secs(5),
            || std::os::unix::net::UnixStream::connect(&sock).is_ok()
        ));
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(b"show stat\n").unwrap();
        let mut csv = String::new();
        s.read_to_string(&mut csv).unwrap();
        let rows: Vec<String> = csv
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
            .collect();
        results.push(rows);
    }
    let want = [
        "fe,FRONTEND",
        "fe2,FRONTEND",
        "fe2,sock-1",
        "be,s1",
        "be,BACKEND",
    ];
    for r in &results {
        assert_eq!(r, &want);
    }
}

/// A proxy's `id` is its `iid` in `show stat` and its `be_id` in `show servers state`; the
/// others keep their rank's number when free (haproxy's rule).
#[test]
fn explicit_proxy_ids_as_in_haproxy() {
    use std::io::{Read, Write};
    let dir = TempDir::new("stats-id");
    let mut runs = vec![false];
    if haproxy_available() {
        runs.push(true);
    }
    let mut results = Vec::new();
    for haproxy in runs {
        let a = free_addr();
        let sock = dir.join(if haproxy { "h.sock" } else { "r.sock" });
        let path = dir.join(if haproxy { "h.cfg" } else { "r.cfg" });
        std::fs::write(
            &path,
            format!(
                "global\n    stats socket {}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nfrontend fe\n    bind {a}\n    default_backend be\nbackend be\n    id 7\n    server s1 127.0.0.1:1\nbackend other\n    server s2 127.0.0.1:1\n",
                sock.display()
            ),
        )
        .unwrap();
        let _p: ChildGuard = if haproxy {
            Haproxy::start(&path, &[a])
        } else {
            Ringlb::start(&path, &[a])
        };
        assert!(ringlb_testkit::wait_until(
            std::time::Duration::from_secs(5),
            || std::os::unix::net::UnixStream::connect(&sock).is_ok()
        ));
        let cli = |cmd: &str| {
            let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let stat: Vec<String> = cli("show stat")
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},{},{}", f[0], f[1], f[27]) // pxname, svname, iid
            })
            .collect();
        let state: Vec<String> = cli("show servers state")
            .lines()
            .skip(2)
            .filter(|l| !l.is_empty())
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect();
        results.push((stat, state));
    }
    let want_stat = [
        "fe,FRONTEND,2",
        "be,s1,7",
        "be,BACKEND,7",
        // Recorded from haproxy 2.6: the explicit id does not give its rank (3) away.
        "other,s2,4",
        "other,BACKEND,4",
    ];
    for ((stat, state), who) in results.iter().zip(["ringlb", "haproxy"]) {
        assert_eq!(stat, &want_stat, "{who}");
        assert_eq!(state, &["7 be", "4 other"], "{who}");
    }
}
