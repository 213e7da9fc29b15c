//! Cookie persistence (`cookie NAME insert ...`, server `cookie`) against haproxy 2.6: the same
//! config and raw requests through both; the client must see the same answers (`set-cookie`
//! included) and the servers the same requests (`indirect` strips the cookie).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, same_as_haproxy, send_raw_reply, write_config, Haproxy, Origin,
    Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn config(f1: SocketAddr, f2: SocketAddr, a: SocketAddr, b: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {f1}\n    default_backend be\nfrontend fe2\n    bind {f2}\n    default_backend be2\nbackend be\n    balance roundrobin\n    cookie SERVERID insert indirect nocache\n    server s1 {a} cookie s1\n    server s2 {b} cookie s2\nbackend be2\n    balance roundrobin\n    cookie SRV insert httponly secure domain .example.com\n    server s1 {a} cookie c1\n    server s2 {b} cookie c2\n"
    )
}

#[test]
fn insert_indirect_and_attributes_match_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = TempDir::new("persist");
    let (h1, h2, r1, r2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let hcfg = write_config(&dir, &config(h1, h2, a.addr(), b.addr()));
    let _h = Haproxy::start(&hcfg, &[h1, h2]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(r1, r2, a.addr(), b.addr())).unwrap();
    let _r = Ringlb::start(&rpath, &[r1, r2]);
    let close = "Connection: close\r\n";
    let cases: Vec<(bool, String)> = vec![
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: SERVERID=s2; other=1\r\n{close}\r\n")),
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: a=1; SERVERID=s1\r\n{close}\r\n")),
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: SERVERID=zz\r\n{close}\r\n")),
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: SERVERID=s2\r\nCookie: b=2\r\n{close}\r\n")),
        (true, format!("GET /echo HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        (true, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: a=1; SRV=c2\r\n{close}\r\n")),
        (true, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: SRV=nope\r\n{close}\r\n")),
    ];
    for (second, req) in &cases {
        let (h, r) = if *second { (h2, r2) } else { (h1, r1) };
        let hr = send_raw_reply(h, req.as_bytes(), T).unwrap();
        let rr = send_raw_reply(r, req.as_bytes(), T).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&rr.bytes),
            String::from_utf8_lossy(&hr.bytes),
            "{req:?}: ringlb (left) vs haproxy (right)"
        );
    }
}

/// The origin that answered (its `X-Origin` header), `-` when none did.
fn origin_of(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply)
        .lines()
        .find_map(|l| {
            l.strip_prefix("X-Origin: ")
                .or_else(|| l.strip_prefix("x-origin: "))
        })
        .unwrap_or("-")
        .trim()
        .to_string()
}

fn stick_config(fe: SocketAddr, tcp: SocketAddr, a: SocketAddr, b: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    mode http\n    bind {fe}\n    default_backend be\n\
         backend be\n    mode http\n    balance roundrobin\n\
         \x20   stick-table type string len 32 size 1k expire 1m\n\
         \x20   use-server s2 if {{ path_beg /force-two }}\n\
         \x20   stick match req.hdr(x-pin)\n\
         \x20   stick on url_param(user)\n\
         \x20   stick store-response res.hdr(x-origin)\n\
         \x20   server s1 {a}\n    server s2 {b}\n\
         frontend tcp_in\n    mode tcp\n    bind {tcp}\n    default_backend be_tcp\n\
         backend be_tcp\n    mode tcp\n    balance roundrobin\n\
         \x20   stick-table type ip size 1k expire 1m\n    stick on src\n\
         \x20   server s1 {a}\n    server s2 {b}\n"
    )
}

/// `use-server`, `stick on`, `stick match` and `stick store-response` in HTTP mode, and `stick
/// on src` in TCP mode: the same sequence of requests through ringlb and haproxy must reach the
/// same servers (round robin alone would alternate).
#[test]
fn stick_rules_and_use_server_pick_the_servers_haproxy_picks() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = TempDir::new("stick-rules");
    let close = "Connection: close\r\n";
    let http: Vec<String> = [
        ("/?user=alice", ""),
        ("/?user=bob", ""),
        ("/?user=alice", ""),
        ("/?user=alice", ""),
        ("/?user=alice", ""),
        ("/?user=bob", ""),
        ("/?user=bob", ""),
        ("/force-two?user=alice", ""),
        ("/?user=alice", ""),
        ("/?user=alice", ""),
        ("/", "X-Pin: a\r\n"),
        ("/", "X-Pin: a\r\n"),
        ("/", "X-Pin: b\r\n"),
        ("/", "X-Pin: b\r\n"),
        ("/", "X-Pin: a\r\n"),
        ("/force-two", "X-Pin: a\r\n"),
    ]
    .iter()
    .map(|(path, extra)| format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}{close}\r\n"))
    .collect();
    let run = |who: &str| -> (Vec<String>, Vec<String>) {
        let (fe, tcp) = (free_addr(), free_addr());
        let path = dir.join(&format!("{who}.cfg"));
        std::fs::write(&path, stick_config(fe, tcp, a.addr(), b.addr())).unwrap();
        let _proxy = if who == "ringlb" {
            Ringlb::start(&path, &[fe, tcp])
        } else {
            Haproxy::start(&path, &[fe, tcp])
        };
        let seen_http = http
            .iter()
            .map(|r| origin_of(&send_raw_reply(fe, r.as_bytes(), T).unwrap().bytes))
            .collect();
        let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{close}\r\n");
        let seen_tcp = (0..5)
            .map(|_| origin_of(&send_raw_reply(tcp, req.as_bytes(), T).unwrap().bytes))
            .collect();
        (seen_http, seen_tcp)
    };
    let ours = run("ringlb");
    // What haproxy 2.6 does with this sequence (recorded with the run below).
    let expected_http = [
        "a", "b", "a", "a", "a", "b", "b", "b", "b", "b", "a", "a", "b", "b", "a", "b",
    ];
    assert_eq!(ours.0, expected_http, "HTTP mode");
    assert!(
        ours.1.iter().all(|o| *o == ours.1[0]) && ours.1[0] != "-",
        "TCP mode, stick on src: {:?}",
        ours.1
    );
    if haproxy_available() {
        assert_eq!(run("haproxy"), ours, "haproxy (left) vs ringlb (right)");
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
    }
}

/// HTTP servers that set their own `JSESSIONID` cookie and answer with the `Cookie` lines they
/// received (lowercased names, one per line), so a test sees what each side of the proxy saw.
/// Threads end with the test process; loopback only.
fn cookie_servers(n: usize) -> Vec<SocketAddr> {
    use std::io::{Read, Write};
    (1..=n)
        .map(|i| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            std::thread::spawn(move || {
                for mut s in l.incoming().flatten() {
                    let _ = s.set_read_timeout(Some(T));
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => head.extend_from_slice(&buf[..k]),
                        }
                    }
                    let body: String = String::from_utf8_lossy(&head)
                        .lines()
                        .filter(|l| l.to_ascii_lowercase().starts_with("cookie:"))
                        .map(|l| format!("cookie:{}\n", &l[7..]))
                        .collect();
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nSet-Cookie: JSESSIONID=abc{i}; Path=/\r\nSet-Cookie: other=x\r\nX-Origin: s{i}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(reply.as_bytes());
                }
            });
            addr
        })
        .collect()
}

fn cookie_modes_config(fronts: &[SocketAddr], a: SocketAddr, b: SocketAddr) -> String {
    let backends = [
        "cookie JSESSIONID rewrite",
        "cookie JSESSIONID prefix",
        "cookie JSESSIONID insert indirect",
        "cookie SRV insert\n    option persist\n    option redispatch",
    ];
    let mut s = String::from(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n",
    );
    for (i, (f, opts)) in fronts.iter().zip(backends).enumerate() {
        s.push_str(&format!(
            "frontend f{i}\n    bind {f}\n    default_backend b{i}\nbackend b{i}\n    balance roundrobin\n    {opts}\n    server s1 {a} cookie s1{}\n    server s2 {b} cookie s2\n",
            if i == 3 { " disabled" } else { "" }
        ));
    }
    s
}

/// What a client sees, normalised for the comparison: status, `x-origin`, the `set-cookie`
/// lines, and the body (the cookies the server received), with lowercased header names.
fn cookie_view(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut out: Vec<String> = head
        .lines()
        .enumerate()
        .filter_map(|(n, l)| {
            if n == 0 {
                return Some(l.split(' ').take(2).collect::<Vec<_>>().join(" "));
            }
            let (name, v) = l.split_once(':')?;
            let name = name.to_ascii_lowercase();
            matches!(name.as_str(), "set-cookie" | "x-origin")
                .then(|| format!("{name}: {}", v.trim()))
        })
        .collect();
    out.push(body.to_string());
    out.join("\n")
}

/// `cookie ... rewrite` and `prefix` (the server's own cookie rewritten or prefixed, the
/// prefix stripped from the request), `insert indirect` with a server that sets the same
/// cookie (deleted), and `option persist` (a cookie naming a disabled server still goes
/// there): the client and the servers see exactly what they see through haproxy 2.6.
#[test]
fn rewrite_prefix_and_persist_match_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let servers = cookie_servers(2);
    let dir = TempDir::new("cookie-modes");
    let close = "Connection: close\r\n";
    let req = |cookie: &str| {
        let c = if cookie.is_empty() {
            String::new()
        } else {
            format!("Cookie: {cookie}\r\n")
        };
        format!("GET / HTTP/1.1\r\nHost: x\r\n{c}{close}\r\n")
    };
    let cases: Vec<(usize, String)> = vec![
        (0, req("")),
        (0, req("JSESSIONID=s2")),
        (0, req("a=1; JSESSIONID=s1; b=2")),
        (0, req("JSESSIONID=nope")),
        (1, req("")),
        (1, req("JSESSIONID=s2~abc2")),
        (1, req("x=1; JSESSIONID=s1~abc1")),
        (1, req("JSESSIONID=s2")),
        (1, req("JSESSIONID=zz~abc")),
        (2, req("")),
        (2, req("JSESSIONID=s2; k=v")),
        (3, req("")),
        (3, req("SRV=s1")),
        (3, req("SRV=s2")),
    ];
    let run = |who: &str| -> Vec<String> {
        let fronts: Vec<SocketAddr> = (0..4).map(|_| free_addr()).collect();
        let path = dir.join(&format!("{who}.cfg"));
        std::fs::write(&path, cookie_modes_config(&fronts, servers[0], servers[1])).unwrap();
        let _proxy = if who == "ringlb" {
            Ringlb::start(&path, &fronts)
        } else {
            Haproxy::start(&path, &fronts)
        };
        cases
            .iter()
            .map(|(f, r)| {
                let reply = send_raw_reply(fronts[*f], r.as_bytes(), T).unwrap();
                format!("{r:?} =>\n{}", cookie_view(&reply.bytes))
            })
            .collect()
    };
    let want = run("haproxy");
    let got = run("ringlb");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "ringlb (left) vs haproxy (right)");
    }
}

/// `server ... redir <prefix>`: a GET or HEAD the balancer sends to that server is answered
/// with haproxy's 302 (prefix + path and query, absolute-form target reduced to its path) and
/// the connection closed; other methods go to the server.
#[test]
fn server_redir_answers_haproxys_302() {
    let a = Origin::start("a");
    let cfg = |fe: &[SocketAddr]| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             listen l\n    bind {}\n    balance roundrobin\n    server a {} redir http://img.example.com\n",
            fe[0],
            a.addr()
        )
    };
    let replies = same_as_haproxy("persist-diff", &cfg, &|fe| {
        let fe = fe[0];
        [
            "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
            "HEAD /p HTTP/1.0\r\n\r\n",
            "GET http://foo/bar?q HTTP/1.1\r\nHost: foo\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
        ]
        .iter()
        .map(|r| {
            let reply = send_raw_reply(fe, r.as_bytes(), T).unwrap();
            let text = String::from_utf8_lossy(&reply.bytes).into_owned();
            // The origin's answer to the POST is compared by who answered.
            if text.starts_with("HTTP/1.1 302") {
                text
            } else {
                format!("origin {}", origin_of(&reply.bytes))
            }
        })
        .collect::<Vec<_>>()
    });
    assert_eq!(
        replies[0],
        "HTTP/1.1 302 Found\r\ncache-control: no-cache\r\ncontent-length: 0\r\nlocation: http://img.example.com/a/b?x=1\r\nconnection: close\r\n\r\n"
    );
    assert!(replies[2].contains("location: http://img.example.com/bar?q\r\n"));
    assert_eq!(replies[3], "origin a", "a POST is proxied");
}

/// `option prefer-last-server`: the requests of a keep-alive connection stay on the server of
/// the first one; without it round robin alternates per request. haproxy 2.6 prefers the last
/// server only while the server connection belongs to the session (`http-reuse never`): with
/// the default `safe` it went to the shared pool and round robin goes on (recorded).
#[test]
fn prefer_last_server_keeps_a_connection_on_its_server() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    for (opt, want_same) in [
        (
            "    option prefer-last-server\n    http-reuse never\n",
            true,
        ),
        ("    http-reuse never\n", false),
        ("    option prefer-last-server\n", false),
    ] {
        let cfg = |fe: &[SocketAddr]| {
            format!(
                "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
                 listen l\n    bind {}\n    balance roundrobin\n{opt}    server a {}\n    server b {}\n",
                fe[0],
                a.addr(),
                b.addr()
            )
        };
        let seen = same_as_haproxy("persist-diff", &cfg, &|fe| {
            let mut c = ringlb_testkit::Conn::connect(fe[0]).unwrap();
            (0..4)
                .map(|_| {
                    c.get("/")
                        .unwrap()
                        .header("X-Origin")
                        .unwrap_or("-")
                        .to_string()
                })
                .collect::<Vec<_>>()
        });
        let all_same = seen.iter().all(|o| *o == seen[0]);
        assert_eq!(all_same, want_same, "{opt:?}: {seen:?}");
    }
}

/// `max-keep-alive-queue 0`: a keep-alive client whose last server is full does not queue
/// there; it is balanced again (and waits in the backend queue for whichever server frees
/// first). Without it (-1), it waits for its own server. Two servers of `maxconn 1`, both
/// busy with 1.5 s requests, `b`'s ending first.
#[test]
fn max_keep_alive_queue_lets_a_client_leave_its_busy_server() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    for (limit, want) in [("", "a"), ("    max-keep-alive-queue 0\n", "b")] {
        let cfg = |fe: &[SocketAddr]| {
            format!(
                "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 9s\n    timeout server 9s\n    timeout queue 9s\n\
                 listen l\n    bind {}\n    balance roundrobin\n    option prefer-last-server\n    http-reuse never\n{limit}    server a {} maxconn 1\n    server b {} maxconn 1\n",
                fe[0],
                a.addr(),
                b.addr()
            )
        };
        let served = same_as_haproxy("persist-diff", &cfg, &|fe| {
            let front = fe[0];
            let origin =
                |r: ringlb_testkit::Response| r.header("X-Origin").unwrap_or("-").to_string();
            let mut keep = ringlb_testkit::Conn::connect(front).unwrap();
            keep.set_timeout(Duration::from_secs(9)).unwrap();
            let first = origin(keep.get("/").unwrap());
            let slow = |delay: u64| {
                std::thread::spawn(move || {
                    let mut c = ringlb_testkit::Conn::connect(front).unwrap();
                    c.set_timeout(Duration::from_secs(9)).unwrap();
                    origin(c.get(&format!("/slow/{delay}")).unwrap())
                })
            };
            // Round robin: b, then a; `b` is busy for 1.2 s, `a` for 1.8 s.
            let on_b = slow(1200);
            std::thread::sleep(Duration::from_millis(150));
            let on_a = slow(1800);
            std::thread::sleep(Duration::from_millis(150));
            let again = origin(keep.get("/").unwrap());
            (first, on_b.join().unwrap(), on_a.join().unwrap(), again)
        });
        assert_eq!(
            served,
            (
                "a".to_string(),
                "b".to_string(),
                "a".to_string(),
                want.to_string()
            ),
            "{limit:?}"
        );
    }
}

/// `force-persist` sends a cookie naming a server in maintenance there anyway; `ignore-persist`
/// makes the cookie count for nothing (round robin picks).
#[test]
fn force_and_ignore_persist_follow_their_conditions() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let cfg = |fe: &[SocketAddr]| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             listen l\n    bind {}\n    balance roundrobin\n    cookie SRV insert indirect nocache\n\
             \x20   force-persist if {{ hdr(x-force) -m found }}\n\
             \x20   ignore-persist if {{ path_beg /static }}\n\
             \x20   use-server a if {{ hdr(x-use) -m found }}\n\
             \x20   server a {} cookie a disabled\n    server b {} cookie b\n\
             listen l2\n    bind {}\n    balance roundrobin\n    cookie SRV insert indirect nocache\n\
             \x20   ignore-persist if {{ path_beg /static }}\n\
             \x20   server a {} cookie a\n    server b {} cookie b\n",
            fe[0],
            a.addr(),
            b.addr(),
            fe[1],
            a.addr(),
            b.addr()
        )
    };
    let seen = same_as_haproxy("persist-diff", &cfg, &|fe| {
        let (fe, fe2) = (fe[0], fe[1]);
        let get = |addr: SocketAddr, path: &str, extra: &str| {
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
            origin_of(&send_raw_reply(addr, req.as_bytes(), T).unwrap().bytes)
        };
        let mut v = vec![
            get(fe, "/", "Cookie: SRV=a\r\nX-Force: 1\r\n"),
            get(fe, "/", "Cookie: SRV=a\r\n"),
            get(fe, "/", "X-Use: 1\r\nX-Force: 1\r\n"),
            get(fe, "/", "X-Use: 1\r\n"),
        ];
        v.extend((0..4).map(|_| get(fe2, "/static/x", "Cookie: SRV=a\r\n")));
        v.extend((0..3).map(|_| get(fe2, "/page", "Cookie: SRV=a\r\n")));
        v
    });
    assert_eq!(
        seen,
        ["a", "b", "a", "b", "a", "b", "a", "b", "a", "a", "a"],
        "forced to the server in maintenance, then ignored cookies on /static"
    );
}

/// `cookie ... dynamic` with `dynamic-cookie-key`: servers without a `cookie` get HAProxy's
/// XXH64 of the key, their address and port; the `set-cookie` values must be haproxy's, and a
/// client sending one back must stick to that server.
#[test]
fn dynamic_cookies_match_haproxys_hash() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let cfg = |fe: &[SocketAddr]| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             listen l\n    bind {}\n    balance roundrobin\n    cookie SRV insert indirect nocache dynamic\n\
             \x20   dynamic-cookie-key s3cr3t-key\n    server a {}\n    server b {}\n",
            fe[0],
            a.addr(),
            b.addr()
        )
    };
    let seen = same_as_haproxy("persist-diff", &cfg, &|fe| {
        let get = |extra: &str| {
            let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
            let reply = send_raw_reply(fe[0], req.as_bytes(), T).unwrap();
            let text = String::from_utf8_lossy(&reply.bytes).into_owned();
            let cookie = text
                .lines()
                .find_map(|l| l.strip_prefix("set-cookie: "))
                .unwrap_or("-")
                .to_string();
            (origin_of(&reply.bytes), cookie)
        };
        let (first, second) = (get(""), get(""));
        let value = |c: &str| c.split(';').next().unwrap_or("").to_string();
        let back = (0..3)
            .map(|_| get(&format!("Cookie: {}\r\n", value(&second.1))).0)
            .collect::<Vec<_>>();
        (first, second, back)
    });
    assert_ne!(seen.0 .1, seen.1 .1, "each server has its own cookie");
    assert!(
        seen.0 .1.starts_with("SRV=") && seen.0 .1.len() > 20,
        "{seen:?}"
    );
    assert_eq!(
        seen.2,
        [seen.1 .0.clone(), seen.1 .0.clone(), seen.1 .0.clone()]
    );
}

/// The 5-character date a cookie carries for UNIX time `t` (HAProxy's `s30tob64(t >> 2)`).
fn cookie_date(t: u64) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let v = (t >> 2) as u32;
    (0..5)
        .map(|i| B64[((v >> (24 - 6 * i)) & 0x3f) as usize] as char)
        .collect()
}

/// A reply with the dates of its `set-cookie` masked as `D` once checked to be within a few
/// seconds of `now` (or the untouched first date `keep`, when given).
fn masked_dates(reply: &[u8], now: u64) -> String {
    let text = String::from_utf8_lossy(reply).into_owned();
    // Generous: the haproxy run comes after ringlb's, on a loaded machine.
    let near: Vec<String> = (0..120).map(|d| cookie_date(now - 4 + d)).collect();
    text.lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
        .map(|l| {
            if !l.to_ascii_lowercase().starts_with("set-cookie:") {
                return l.to_string();
            }
            let (head, attrs) = l.split_once(';').unwrap_or((l, ""));
            let mut parts = head.split('|');
            let mut out = parts.next().unwrap_or("").to_string();
            for d in parts {
                out.push('|');
                out.push_str(if near.iter().any(|n| n == d) { "D" } else { d });
            }
            format!("{out};{attrs}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `cookie SRV insert maxidle 30s maxlife 1h`: inserted cookies carry HAProxy's dates; a
/// cookie idle too long, too old, or dated more than a day ahead is ignored (the request is
/// balanced and the cookie set again); one without a date is accepted and dated; a fresh one
/// is left alone. Same replies as haproxy 2.6 (dates masked once checked).
#[test]
fn maxidle_and_maxlife_cookies_match_haproxy() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = TempDir::new("persist-dates");
    let cfg = |fe: SocketAddr| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {fe}\n    default_backend be\nbackend be\n    balance roundrobin\n    cookie SRV insert maxidle 30s maxlife 1h\n    server s1 {} cookie c1\n    server s2 {} cookie c2\n",
            a.addr(),
            b.addr()
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let d = cookie_date;
    let cookies = [
        None,
        Some("SRV=c2".to_string()),
        Some(format!("SRV=c2|{}|{}", d(now + 240), d(now - 100))),
        Some(format!("SRV=c2|{}|{}", d(now - 60), d(now - 100))),
        Some(format!("SRV=c2|{}|{}", d(now + 240), d(now - 4000))),
        Some(format!("SRV=c2|{}", d(now + 100_000))),
        Some(format!("SRV=c2|{}|{}", d(now - 60), d(now - 100))),
        Some(format!("SRV=c2|{}|{}", d(now - 20), d(now - 100))),
    ];
    let requests: Vec<String> = cookies
        .iter()
        .map(|c| {
            let c = c
                .as_ref()
                .map(|c| format!("Cookie: {c}\r\n"))
                .unwrap_or_default();
            format!("GET / HTTP/1.1\r\nHost: a\r\n{c}Connection: close\r\n\r\n")
        })
        .collect();
    let run = |front: SocketAddr| -> Vec<(String, String)> {
        requests
            .iter()
            .map(|r| {
                let rep = send_raw_reply(front, r.as_bytes(), T).unwrap();
                (origin_of(&rep.bytes), masked_dates(&rep.bytes, now))
            })
            .collect()
    };
    let rf = free_addr();
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf)).unwrap();
    let got = {
        let _r = Ringlb::start(&rpath, &[rf]);
        run(rf)
    };
    let set_cookie = |i: usize| {
        got[i]
            .1
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .map(|l| l.split_once(": ").unwrap().1.to_string())
    };
    // New client: dated cookie (last and first = now).
    assert_eq!(
        set_cookie(0).as_deref(),
        Some("SRV=c1|D|D; path=/"),
        "{got:?}"
    );
    // No date: accepted, dated.
    assert_eq!(got[1].0, "b");
    assert_eq!(set_cookie(1).as_deref(), Some("SRV=c2|D|D; path=/"));
    // Fresh: accepted, untouched.
    assert_eq!((got[2].0.as_str(), set_cookie(2)), ("b", None), "{got:?}");
    // Ignored cookies naming s2: the requests are balanced (round robin goes on from s1,
    // persisted requests do not move it) and the cookie set again: idle 60s > maxidle,
    // older than maxlife, dated a day ahead, idle again.
    let served: Vec<&str> = got[3..7].iter().map(|g| g.0.as_str()).collect();
    assert_eq!(served, ["b", "a", "b", "a"], "{got:?}");
    assert_eq!(set_cookie(3).as_deref(), Some("SRV=c2|D|D; path=/"));
    assert_eq!(set_cookie(4).as_deref(), Some("SRV=c1|D|D; path=/"));
    assert_eq!(set_cookie(6).as_deref(), Some("SRV=c1|D|D; path=/"));
    // Idle 20s: kept, its last date refreshed, its first date kept.
    assert_eq!(got[7].0, "b");
    let first = (now - 100) & !3;
    assert_eq!(
        set_cookie(7),
        Some(format!("SRV=c2|D|{}; path=/", d(first)))
    );
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let hf = free_addr();
    let hpath = write_config(&dir, &cfg(hf));
    let want = {
        let _h = Haproxy::start(&hpath, &[hf]);
        run(hf)
    };
    assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
}
