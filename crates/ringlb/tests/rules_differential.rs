//! The rule language against haproxy 2.6: the same config (ACLs, `http-request` and
//! `http-response` rules, `use_backend`) and the same raw requests through both. What the
//! client receives and what the origin sees (its `/echo` dump) must be byte-identical,
//! including whether the connection stays open after a reply.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, send_raw_reply, write_config, ChildGuard, Haproxy, Origin,
    Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn config(front: SocketAddr, origin: SocketAddr) -> String {
    format!(
        r#"global
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 2s
    timeout tarpit 200ms
frontend fe
    bind {front}
    acl is_api hdr(host) -i api.example.com
    acl is_static path_beg /static/ /images/
    acl is_delete method DELETE
    acl is_office src 203.0.113.0/24
    acl is_options method OPTIONS
    acl is_debug url_param(debug) -m str true
    acl is_mobile hdr_sub(User-Agent) -i mobile android iphone
    acl is_local src 127.0.0.0/8
    monitor-uri /healthz
    unique-id-format %[req.hdr(x-seed)]-%[path,lower]
    unique-id-header X-Unique-ID
    http-request return status 200 content-type text/plain if is_options
    http-request deny deny_status 403 if is_delete !is_office
    http-request redirect scheme https code 301 if {{ path_beg /secure }}
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request add-header X-Debug yes if is_debug
    http-request add-header X-Mobile 1 if is_mobile is_local
    http-request del-header X-Remove-Me
    http-request set-path /echo if {{ path_beg /rw/ }}
    http-request set-var(txn.seen) str(yes) if {{ path /echo }}
    http-request tarpit if {{ path /tarpit }}
    http-request deny deny_status 429 if {{ path /deny429 }}
    http-request return status 201 content-type text/plain string "made" hdr X-A a if {{ path /ret }}
    http-request redirect location /x set-cookie A=B if {{ path /cookie }}
    http-request redirect prefix /new drop-query if {{ path_beg /old }}
    http-request redirect location /a clear-cookie C= if {{ path /cc }}
    http-request return status 200 content-type text/plain lf-string "%[base32] %[base32+src,hex] %[path,sdbm(1)] %[path,djb2] %[hdr(host),lower,crc32(1)]" if {{ path /hash }}
    http-response set-header X-Frame-Options SAMEORIGIN
    http-response set-header Strict-Transport-Security "max-age=63072000; includeSubDomains; preload"
    http-response set-header X-Seen %[var(txn.seen)] if {{ var(txn.seen) -m found }}
    use_backend api if is_api
    use_backend static if is_static || {{ hdr(x-static) -m found }}
    default_backend web
backend web
    server s1 {origin}
backend api
    http-request set-header X-Backend api
    server s1 {origin}
backend static
    http-response set-header X-Static yes
    http-response del-header X-Origin
    server s1 {origin}
"#
    )
}

struct Pair {
    _dir: TempDir,
    haproxy: SocketAddr,
    ringlb: SocketAddr,
    _guards: (ChildGuard, ChildGuard),
}

fn pair(origin: SocketAddr) -> Option<Pair> {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        eprintln!("skipped: haproxy not installed");
        return None;
    }
    let dir = TempDir::new("rules-diff");
    let (hf, rf) = (free_addr(), free_addr());
    let hcfg = write_config(&dir, &config(hf, origin));
    let h = Haproxy::start(&hcfg, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(rf, origin)).unwrap();
    let r = Ringlb::start(&rpath, &[rf]);
    Some(Pair {
        _dir: dir,
        haproxy: hf,
        ringlb: rf,
        _guards: (h, r),
    })
}

fn exchange(addr: SocketAddr, req: &[u8]) -> String {
    let reply = send_raw_reply(addr, req, T).unwrap();
    format!(
        "{}\n[end: {:?}]",
        String::from_utf8_lossy(&reply.bytes),
        reply.end
    )
}

#[test]
fn guide_rules_give_the_same_answers_as_haproxy() {
    let origin = Origin::start("o");
    let Some(p) = pair(origin.addr()) else { return };
    let close = "Connection: close\r\n";
    let cases: Vec<(&str, String)> = vec![
        ("plain get", format!("GET /echo HTTP/1.1\r\nHost: www.example.com\r\nX-Remove-Me: 1\r\n{close}\r\n")),
        ("api by host", format!("GET /echo HTTP/1.1\r\nHost: API.example.com\r\n{close}\r\n")),
        ("static by path", format!("GET /static/app.js HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("static by header (||)", format!("GET /echo HTTP/1.1\r\nHost: a\r\nX-Static: 1\r\n{close}\r\n")),
        ("debug url_param", format!("GET /echo?a=1&debug=true HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("debug url_param false", format!("GET /echo?debug=false HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("mobile hdr_sub -i", format!("GET /echo HTTP/1.1\r\nHost: a\r\nUser-Agent: Foo Android 14\r\n{close}\r\n")),
        ("set-path", format!("GET /rw/anything?q=2 HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("options return", format!("OPTIONS /x HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("delete outside office", format!("DELETE /x HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("redirect https 301", format!("GET /secure/p?x=1 HTTP/1.1\r\nHost: shop.example.com\r\n{close}\r\n")),
        ("tarpit", format!("GET /tarpit HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("deny 429", format!("GET /deny429 HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("return string hdr", format!("GET /ret HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("redirect set-cookie", format!("GET /cookie HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("redirect prefix drop-query", format!("GET /old/a?q=1 HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("redirect clear-cookie", format!("GET /cc HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("monitor-uri", format!("GET /healthz HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        ("unique-id", format!("GET /echo HTTP/1.1\r\nHost: a\r\nX-Seed: 42\r\n{close}\r\n")),
        ("hashes", format!("GET /hash HTTP/1.1\r\nHost: WWW.Example.com\r\n{close}\r\n")),
        // Keep-alive after replies: a deny closes, a return or redirect keeps the connection.
        ("deny then request", "GET /deny429 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_string()),
        ("return then request", "GET /ret HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_string()),
        ("redirect then request", "GET /cookie HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_string()),
    ];
    for (name, req) in &cases {
        let h = exchange(p.haproxy, req.as_bytes());
        let r = exchange(p.ringlb, req.as_bytes());
        assert!(h.len() > 20, "{name}: haproxy answered nothing");
        assert_eq!(r, h, "{name}: ringlb (left) differs from haproxy (right)");
    }
}

/// Path matching against a `deny` on `/admin` with encoded and odd paths: ringlb decides as
/// haproxy 2.6 does for every variant (haproxy matches the path as received; `normalize-uri`
/// is opt-in there).
#[test]
fn odd_paths_against_an_admin_deny_match_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("paths-diff");
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 2s\nfrontend fe\n    bind {front}\n    http-request deny if {{ path_beg /admin }}\n    http-request deny if {{ path -i /secret }}\n    http-request deny if {{ path_dir admin2 }}\n    http-request deny if {{ path_end .bak }}\n    http-request deny if {{ url_sub cmd= }}\n    default_backend be\nbackend be\n    server s1 {}\n",
            origin.addr()
        )
    };
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &cfg(hf));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let variants = [
        "/admin",
        "/admin/",
        "/admin/x",
        "/ADMIN",
        "/Admin",
        "/%61dmin",
        "/%2561dmin",
        "//admin",
        "///admin",
        "/./admin",
        "/x/../admin",
        "/admin/..",
        "/admin%2f",
        "/%2fadmin",
        "/%2Fadmin",
        "/admin%00",
        "/admin;x",
        "/admin?x=1",
        "/adminx",
        "/x/admin",
        "/.admin",
        "/admin.",
        "/adm%69n",
        "/%2e/admin",
        "/%2E%2E/admin",
        "/x/%2e%2e/admin",
        "/admin%20",
        "/%20admin",
        "/admin#frag",
        "/admin/%2e%2e/",
        "/secret",
        "/SECRET",
        "/Secret",
        "/secret/",
        "/secret?a",
        "/secre%74",
        "/%73ecret",
        "//secret",
        "/admin2",
        "/admin2/x",
        "/x/admin2",
        "/x/admin2/y",
        "/xadmin2",
        "/admin2x",
        "/a/admin2%2f",
        "/file.bak",
        "/file.BAK",
        "/file.bak?x",
        "/file.bak/",
        "/file%2ebak",
        "/file.ba%6b",
        "/.bak",
        "/dir.bak/x",
        "/?cmd=ls",
        "/a?x=1&cmd=",
        "/cmd=",
        "/a%3Fcmd=",
        "/a?CMD=",
        "/x;cmd=1",
        "/index.html",
        "/",
        "/a//b",
        "http://h/admin",
        "http://h/x",
    ];
    // (`GET *` is left out: ringlb rejects it with 400 on purpose, where haproxy forwards it;
    // issue #11's stricter cases are tested with the hardening suite.)
    assert!(variants.len() >= 60);
    for v in variants {
        let req = format!("GET {v} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let status = |addr: SocketAddr| {
            let b = send_raw_reply(addr, req.as_bytes(), T).unwrap().bytes;
            String::from_utf8_lossy(&b)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(
            status(rf),
            status(hf),
            "{v}: ringlb (left) vs haproxy (right)"
        );
    }
}

/// `sess.*` variables live as long as the connection: set by `tcp-request connection` and by
/// one request, read by the next request on the same connection, absent on a new one.
#[test]
fn session_variables_last_for_the_connection_as_in_haproxy() {
    let dir = TempDir::new("rules-sess-vars");
    let run = |who: &str| -> Vec<String> {
        let front = free_addr();
        let cfg = format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             frontend fe\n    bind {front}\n\
             \x20   tcp-request connection set-var(sess.origin) str(tcp)\n\
             \x20   http-request set-var(sess.count) int(1) if {{ path /first }}\n\
             \x20   http-request return status 200 content-type text/plain lf-string \"origin=%[var(sess.origin)] count=%[var(sess.count)]\"\n"
        );
        let path = dir.join(&format!("{who}.cfg"));
        std::fs::write(&path, cfg).unwrap();
        let _proxy = if who == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            ringlb_testkit::Haproxy::start(&path, &[front])
        };
        let body = |r: ringlb_testkit::Response| String::from_utf8_lossy(&r.body).into_owned();
        let mut k = ringlb_testkit::Conn::connect(front).unwrap();
        let mut seen = vec![
            body(k.get("/first").unwrap()),
            body(k.get("/second").unwrap()),
        ];
        let mut k2 = ringlb_testkit::Conn::connect(front).unwrap();
        seen.push(body(k2.get("/second").unwrap()));
        seen
    };
    let ours = run("ringlb");
    assert_eq!(
        ours,
        [
            "origin=tcp count=1",
            "origin=tcp count=1",
            "origin=tcp count="
        ],
        "ringlb"
    );
    if ringlb_testkit::haproxy_available() {
        assert_eq!(run("haproxy"), ours, "haproxy (left) vs ringlb (right)");
    }
}

/// `http-after-response` runs on every response: the server's (after `http-response`), and the
/// proxy's own (`return`, `deny`, redirects, 503s), backend rules before frontend rules, with
/// the request's variables; `set-status` rewrites a generated error too. Same bytes as haproxy.
#[test]
fn after_response_rules_apply_to_every_response_as_in_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let origin = Origin::start("o");
    let dead = free_addr();
    let dir = TempDir::new("after-diff");
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n    retries 0\n\
             frontend fe\n    bind {front}\n\
             \x20   http-request set-var(txn.p) path\n\
             \x20   http-request return status 200 content-type text/plain string ok if {{ path /ret }}\n\
             \x20   http-request deny if {{ path /deny }}\n\
             \x20   http-request deny deny_status 429 if {{ path /deny429 }}\n\
             \x20   http-request redirect location /elsewhere if {{ path /redir }}\n\
             \x20   http-response set-header X-Resp fe\n\
             \x20   http-after-response set-header X-After fe\n\
             \x20   http-after-response set-header X-Path %[var(txn.p)]\n\
             \x20   http-after-response set-header X-Status %[status]\n\
             \x20   http-after-response set-status 418 reason Teapot if {{ status 429 }}\n\
             \x20   http-after-response del-header X-Resp if {{ var(txn.p) -m str /echo }}\n\
             \x20   http-after-response replace-header Content-Type (.*) \\1;after if {{ res.hdr(content-type) -m found }}\n\
             \x20   use_backend down if {{ path /down }}\n\
             \x20   use_backend bedeny if {{ path /bedeny }}\n\
             \x20   default_backend web\n\
             backend web\n\
             \x20   http-after-response add-header X-Be web\n\
             \x20   http-after-response set-header X-After be\n\
             \x20   server s1 {}\n\
             backend down\n\
             \x20   http-after-response set-header X-Be down\n\
             \x20   server s1 {dead}\n\
             backend bedeny\n\
             \x20   http-request deny deny_status 401\n\
             \x20   http-after-response allow\n\
             \x20   http-after-response set-header X-Never yes\n\
             \x20   server s1 {}\n",
            origin.addr(),
            origin.addr()
        )
    };
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &cfg(hf));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let close = "Host: a\r\nConnection: close\r\n\r\n";
    let cases = [
        format!("GET /echo HTTP/1.1\r\n{close}"),
        format!("GET /other HTTP/1.1\r\n{close}"),
        format!("GET /ret HTTP/1.1\r\n{close}"),
        format!("GET /deny HTTP/1.1\r\n{close}"),
        format!("GET /deny429 HTTP/1.1\r\n{close}"),
        format!("GET /redir HTTP/1.1\r\n{close}"),
        format!("GET /down HTTP/1.1\r\n{close}"),
        format!("GET /bedeny HTTP/1.1\r\n{close}"),
        // Keep-alive: each reply of a connection gets the rules.
        format!("GET /ret HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\n{close}"),
    ];
    for req in &cases {
        let h = exchange(hf, req.as_bytes());
        let r = exchange(rf, req.as_bytes());
        assert!(h.len() > 20, "{req:?}: haproxy answered nothing");
        assert!(
            h.contains("x-after: ") || h.contains("X-After: "),
            "{req:?}: {h}"
        );
        assert_eq!(r, h, "{req:?}: ringlb (left) differs from haproxy (right)");
    }
}

/// The next UDP syslog datagram containing `needle` (readiness probes log lines first).
fn log_line_with(s: &std::net::UdpSocket, needle: &str) -> String {
    let mut b = [0u8; 4096];
    for _ in 0..20 {
        let n = s.recv(&mut b).unwrap();
        let l = String::from_utf8_lossy(&b[..n]).into_owned();
        if l.contains(needle) {
            return l;
        }
    }
    panic!("no log line with {needle:?}");
}

/// `capture request|response header`, `declare capture`, `http-request capture ... len|id`
/// and `http-response capture ... id` share slots numbered in declaration order: the log's
/// `%hr`/`%hs`, the `capture.req.hdr(N)`/`capture.res.hdr(N)` fetches in rules and logs, and
/// the lengths, as haproxy 2.6.
#[test]
fn captures_fill_declared_slots_and_logs_as_in_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("capture-diff");
    let cfg = |front: SocketAddr, log: SocketAddr| {
        format!(
            "global\n    nbthread 1\n    log {log} local0\n\
             defaults\n    mode http\n    log global\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n\
             frontend fe\n    bind {front}\n\
             \x20   log-format \"CAP %{{+Q}}r %hr %hs req0=%[capture.req.hdr(0)] req1=%[capture.req.hdr(1)] req2=%[capture.req.hdr(2)] res0=%[capture.res.hdr(0)] res1=%[capture.res.hdr(1)]\"\n\
             \x20   capture request header X-Trace len 5\n\
             \x20   http-request capture req.hdr(host) len 3\n\
             \x20   declare capture request len 8\n\
             \x20   http-request capture path id 2\n\
             \x20   declare capture response len 4\n\
             \x20   capture response header Content-Type len 20\n\
             \x20   http-response capture res.hdr(x-origin-port),length id 0\n\
             \x20   http-response set-header X-Cap %[capture.req.hdr(1)]-%[capture.res.hdr(0)]\n\
             \x20   http-request return status 200 content-type text/plain lf-string \"c=%[capture.req.hdr(1)]/%[capture.req.hdr(2)]\" if {{ path_beg /ret }}\n\
             \x20   default_backend be\n\
             backend be\n    server s1 {}\n",
            origin.addr()
        )
    };
    let udp = || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    };
    let ((hsock, hlog), (rsock, rlog)) = (udp(), udp());
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &cfg(hf, hlog));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf, rlog)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    for path in ["/echo/longer-than-eight", "/ret/x"] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: example.com\r\nX-Trace: abcdefgh\r\nConnection: close\r\n\r\n"
        );
        let h = exchange(hf, req.as_bytes());
        let r = exchange(rf, req.as_bytes());
        // The origin reports its own port; the rest must be identical.
        assert_eq!(r, h, "{path}: ringlb (left) differs from haproxy (right)");
        let tail = |l: String| l.split_once("CAP ").map(|x| x.1.to_string()).unwrap();
        let hl = tail(log_line_with(&hsock, path));
        let rl = tail(log_line_with(&rsock, path));
        assert_eq!(rl, hl, "{path}: log of ringlb (left) vs haproxy (right)");
        if path == "/err" {
            assert!(rl.starts_with("<131>"), "local0.err: {rl}");
        }
    }
}

/// `set-src`/`set-src-port`/`set-dst`/`set-dst-port` change what later rules, the log
/// (`%ci:%cp`, `%fi:%fp`) and `option forwardfor` see; `set-log-level` changes the syslog
/// priority, `silent` drops the line. Same answers and log lines as haproxy.
#[test]
fn set_src_dst_and_log_level_as_in_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("setsrc-diff");
    let cfg = |front: SocketAddr, log: SocketAddr| {
        format!(
            "global\n    nbthread 1\n    log {log} local0\n\
             defaults\n    mode http\n    log global\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n\
             frontend fe\n    bind {front}\n\
             \x20   option forwardfor\n\
             \x20   log-format \"LL %ci:%cp %fi:%fp %{{+Q}}r\"\n\
             \x20   http-request set-src hdr(x-real-ip) if {{ hdr(x-real-ip) -m found }}\n\
             \x20   http-request set-src-port hdr(x-port) if {{ hdr(x-port) -m found }}\n\
             \x20   http-request set-dst hdr(x-dst) if {{ hdr(x-dst) -m found }}\n\
             \x20   http-request set-dst-port int(8443) if {{ hdr(x-dst) -m found }}\n\
             \x20   http-request set-log-level silent if {{ path /quiet }}\n\
             \x20   http-request set-log-level err if {{ path /err }}\n\
             \x20   http-request deny if {{ src 192.0.2.66 }}\n\
             \x20   http-request return status 200 content-type text/plain lf-string \"src=%[src]:%[src_port] dst=%[dst]:%[dst_port]\" if {{ path /who }}\n\
             \x20   default_backend be\n\
             backend be\n    server s1 {}\n",
            origin.addr()
        )
    };
    let udp = || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    };
    let ((hsock, hlog), (rsock, rlog)) = (udp(), udp());
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &cfg(hf, hlog));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf, rlog)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let cases = [
        (
            "/who",
            "X-Real-IP: 192.0.2.7\r\nX-Port: 4444\r\nX-Dst: 198.51.100.9\r\n",
        ),
        ("/echo", "X-Real-IP: 2001:db8::5\r\nX-Port: 5555\r\n"),
        ("/echo/deny", "X-Real-IP: 192.0.2.66\r\nX-Port: 1\r\n"),
        ("/quiet", "X-Real-IP: 192.0.2.8\r\nX-Port: 8\r\n"),
        ("/err", "X-Real-IP: 192.0.2.9\r\nX-Port: 9\r\n"),
    ];
    for (path, hdrs) in cases {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n{hdrs}Connection: close\r\n\r\n");
        let h = exchange(hf, req.as_bytes());
        let r = exchange(rf, req.as_bytes());
        assert_eq!(r, h, "{path}: ringlb (left) differs from haproxy (right)");
        let expect = match path {
            "/who" => "src=192.0.2.7:4444 dst=198.51.100.9:8443",
            "/echo" => "x-forwarded-for: 2001:db8::5",
            "/echo/deny" => "403 Forbidden",
            _ => "",
        };
        assert!(
            r.to_ascii_lowercase()
                .contains(&expect.to_ascii_lowercase()),
            "{path}: {r}"
        );
        if path == "/quiet" {
            continue;
        }
        // The syslog priority and the fields after the tag; `%fp` of an unchanged
        // destination is each proxy's own listening port.
        let strip = |l: String, front: SocketAddr| {
            let pri = l.split('>').next().unwrap().to_string();
            let body = l.split_once("LL ").unwrap().1.to_string();
            format!(
                "{pri}> {}",
                body.replace(&front.port().to_string(), "FPORT")
            )
        };
        // Lines before the awaited one are the harness's probes and, never, the silent one.
        let next = |s: &std::net::UdpSocket| {
            let mut b = [0u8; 4096];
            let needle = format!("GET {path} HTTP");
            for _ in 0..20 {
                let n = s.recv(&mut b).unwrap();
                let l = String::from_utf8_lossy(&b[..n]).into_owned();
                assert!(!l.contains("/quiet"), "a silent request was logged: {l}");
                if l.contains(&needle) {
                    return l;
                }
            }
            panic!("no log line for {path}");
        };
        let hl = strip(next(&hsock), hf);
        let rl = strip(next(&rsock), rf);
        assert_eq!(rl, hl, "{path}: log of ringlb (left) vs haproxy (right)");
        if path == "/err" {
            assert!(rl.starts_with("<131>"), "local0.err: {rl}");
        }
    }
}

/// `tcp-response content` in TCP mode, on what the server sends (an echo server here, so the
/// client's bytes must reach it while the rules wait): `accept`, no match (accepted), `close`
/// (what the server sent arrives, then the end) and `reject` (nothing arrives), within
/// `tcp-response inspect-delay`. Same bytes and same ending as haproxy.
#[test]
fn tcp_response_content_rules_as_in_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let echo = Origin::start_echo_tcp("echo");
    let dir = TempDir::new("tcpres-diff");
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n\
             defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             listen l\n    bind {front}\n\
             \x20   tcp-response inspect-delay 1s\n\
             \x20   tcp-response content accept if {{ res.payload(0,5) -m str hello }}\n\
             \x20   tcp-response content reject if {{ res.payload(0,4) -m str EVIL }}\n\
             \x20   tcp-response content close if {{ res.payload(0,4) -m str QUIT }}\n\
             \x20   tcp-response content set-var(txn.n) res.len\n\
             \x20   tcp-response content accept if {{ res.payload(0,6) -m str HELLO! }}\n\
             \x20   tcp-response content reject if {{ res.payload(0,3) -m str HEL }}\n\
             \x20   server s1 {}\n",
            echo.addr()
        )
    };
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &cfg(hf));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let t = Duration::from_millis(800);
    for (payload, expect) in [
        ("hello world", "hello world"),
        ("something else", "something else"),
        ("QUIT now", "QUIT now"),
        ("EVIL bytes", ""),
    ] {
        let run = |addr| {
            let r = send_raw_reply(addr, payload.as_bytes(), t).unwrap();
            // A reset and a close both end the session; haproxy's choice is compared below.
            (
                String::from_utf8_lossy(&r.bytes).into_owned(),
                format!("{:?}", r.end),
            )
        };
        let (h, r) = (run(hf), run(rf));
        assert_eq!(h.0, expect, "{payload}: haproxy");
        assert_eq!(r, h, "{payload}: ringlb (left) vs haproxy (right)");
    }
    // A condition on bytes not there yet waits (within the inspect-delay) for more: "HEL"
    // then "LO!" is accepted whole; "HEL" alone is rejected once the delay is over.
    for (rest, expect) in [(Some("LO!"), "HELLO!"), (None, "")] {
        let run = |addr| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"HEL").unwrap();
            std::thread::sleep(Duration::from_millis(300));
            if let Some(r) = rest {
                s.write_all(r.as_bytes()).unwrap();
            }
            s.set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 64];
            let end = loop {
                match s.read(&mut b) {
                    Ok(0) => break "closed",
                    Ok(n) => got.extend_from_slice(&b[..n]),
                    Err(_) => break "open",
                }
            };
            (String::from_utf8_lossy(&got).into_owned(), end)
        };
        let (h, r) = (run(hf), run(rf));
        assert_eq!(h.0, expect, "{rest:?}: haproxy");
        assert_eq!(r, h, "{rest:?}: ringlb (left) vs haproxy (right)");
    }
}

/// `proc.` variables are one value for the whole process: set on one connection, every new
/// connection (spread over both shards) reads it, and `unset-var` removes it everywhere. The
/// other shard's copy follows within a control tick, so the reads come after a short pause.
#[test]
fn proc_variables_are_shared_by_all_shards_as_in_haproxy() {
    let dir = TempDir::new("rules-proc-vars");
    let run = |who: &str| -> Vec<String> {
        let front = free_addr();
        let cfg = format!(
            "global\n    nbthread 2\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             frontend fe\n    bind {front}\n\
             \x20   http-request set-var(proc.color) req.hdr(x-color) if {{ path /set }}\n\
             \x20   http-request unset-var(proc.color) if {{ path /unset }}\n\
             \x20   http-request return status 200 content-type text/plain lf-string \"color=%[var(proc.color)]\"\n"
        );
        let path = dir.join(&format!("{who}.cfg"));
        std::fs::write(&path, cfg).unwrap();
        let _proxy = if who == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            Haproxy::start(&path, &[front])
        };
        let get = |p: &str, color: &str| {
            let req = format!(
                "GET {p} HTTP/1.1\r\nHost: a\r\nX-Color: {color}\r\nConnection: close\r\n\r\n"
            );
            let r = send_raw_reply(front, req.as_bytes(), T).unwrap();
            let text = String::from_utf8_lossy(&r.bytes).into_owned();
            text.rsplit("\r\n\r\n").next().unwrap_or("").to_string()
        };
        let mut seen = vec![get("/", "")];
        seen.push(get("/set", "blue"));
        std::thread::sleep(Duration::from_millis(300));
        // New connections: the kernel spreads them over the shards' listeners.
        let reads: Vec<String> = (0..16).map(|_| get("/", "")).collect();
        seen.push(reads.iter().all(|r| r == "color=blue").to_string());
        seen.push(get("/unset", ""));
        std::thread::sleep(Duration::from_millis(300));
        let reads: Vec<String> = (0..16).map(|_| get("/", "")).collect();
        seen.push(reads.iter().all(|r| r == "color=").to_string());
        seen
    };
    let ours = run("ringlb");
    assert_eq!(
        ours,
        ["color=", "color=blue", "true", "color=", "true"],
        "ringlb"
    );
    if haproxy_available() {
        assert_eq!(run("haproxy"), ours, "haproxy (left) vs ringlb (right)");
    }
}

/// `http-after-response` on HTTP/2 streams: the server's responses and the proxy's own
/// (deny, 503) carry the headers, backend rules first, as with haproxy (`proto h2` on both).
#[test]
fn after_response_rules_apply_to_h2_streams_as_in_haproxy() {
    let origin = Origin::start("o");
    let dir = TempDir::new("after-h2");
    let run = |who: &str| -> Vec<String> {
        let front = free_addr();
        let cfg = format!(
            "global\n    nbthread 1\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n    retries 0\n\
             frontend fe\n    bind {front} proto h2\n\
             \x20   http-request set-var(txn.p) path\n\
             \x20   http-request deny deny_status 429 if {{ path /deny }}\n\
             \x20   http-after-response set-header X-After fe-%[var(txn.p)]\n\
             \x20   http-after-response set-status 418 if {{ status 429 }}\n\
             \x20   use_backend empty if {{ path /empty }}\n\
             \x20   default_backend be\n\
             backend be\n    http-after-response set-header X-Be be\n    server s1 {}\n\
             backend empty\n    http-after-response set-header X-Be empty\n",
            origin.addr()
        );
        let path = dir.join(&format!("{who}.cfg"));
        std::fs::write(&path, cfg).unwrap();
        let _proxy = if who == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            Haproxy::start(&path, &[front])
        };
        ["/echo", "/deny", "/empty"]
            .iter()
            .map(|p| {
                let out = ringlb_testkit::curl(
                    &[
                        "-s",
                        "-D",
                        "-",
                        "-o",
                        "/dev/null",
                        "--http2-prior-knowledge",
                        &format!("http://{front}{p}"),
                    ],
                    T,
                )
                .unwrap();
                let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
                let mut keep: Vec<&str> = head
                    .lines()
                    .filter(|l| {
                        l.starts_with("http/") || l.starts_with("x-after") || l.starts_with("x-be")
                    })
                    .map(str::trim)
                    .collect();
                keep.sort_unstable();
                keep.join(" | ")
            })
            .collect()
    };
    let ours = run("ringlb");
    assert_eq!(
        ours,
        [
            "http/2 200 | x-after: fe-/echo | x-be: be",
            "http/2 418 | x-after: fe-/deny",
            "http/2 503 | x-after: fe-/empty | x-be: empty",
        ],
        "ringlb"
    );
    if haproxy_available() {
        assert_eq!(run("haproxy"), ours, "haproxy (left) vs ringlb (right)");
    }
}

/// `set-src` on an HTTP/2 stream: later rules and `option forwardfor` see the new address.
#[test]
fn set_src_on_h2_streams_as_in_haproxy() {
    let origin = Origin::start("o");
    let dir = TempDir::new("setsrc-h2");
    let run = |who: &str| -> Vec<String> {
        let front = free_addr();
        let cfg = format!(
            "global\n    nbthread 1\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n\
             frontend fe\n    bind {front} proto h2\n    option forwardfor\n\
             \x20   http-request set-src req.hdr(x-ip) if {{ req.hdr(x-ip) -m found }}\n\
             \x20   http-request return status 200 content-type text/plain lf-string \"src=%[src]\" if {{ path /who }}\n\
             \x20   default_backend be\n\
             backend be\n    server s1 {}\n",
            origin.addr()
        );
        let path = dir.join(&format!("{who}.cfg"));
        std::fs::write(&path, cfg).unwrap();
        let _proxy = if who == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            Haproxy::start(&path, &[front])
        };
        ["/who", "/echo"]
            .iter()
            .map(|p| {
                let out = ringlb_testkit::curl(
                    &[
                        "-s",
                        "--http2-prior-knowledge",
                        "-H",
                        "X-IP: 192.0.2.44",
                        &format!("http://{front}{p}"),
                    ],
                    T,
                )
                .unwrap();
                let body = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
                body.lines()
                    .filter(|l| l.starts_with("src=") || l.contains("x-forwarded-for"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect()
    };
    let ours = run("ringlb");
    assert_eq!(
        ours,
        ["src=192.0.2.44", "header: x-forwarded-for: 192.0.2.44"],
        "ringlb"
    );
    if haproxy_available() {
        assert_eq!(run("haproxy"), ours, "haproxy (left) vs ringlb (right)");
    }
}

/// `balance source` hashes the address `set-src` left: each client address picks the same
/// server as in haproxy (same hash), whatever the real peer address.
#[test]
fn balance_source_follows_set_src_as_in_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let (o1, o2, o3) = (
        Origin::start("o1"),
        Origin::start("o2"),
        Origin::start("o3"),
    );
    let dir = TempDir::new("setsrc-balance");
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n\
             frontend fe\n    bind {front}\n\
             \x20   http-request set-src req.hdr(x-ip)\n\
             \x20   default_backend be\n\
             backend be\n    balance source\n    server s1 {}\n    server s2 {}\n    server s3 {}\n",
            o1.addr(),
            o2.addr(),
            o3.addr()
        )
    };
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &cfg(hf));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let origin_of = |addr: SocketAddr, ip: &str| {
        let req =
            format!("GET /echo HTTP/1.1\r\nHost: a\r\nX-IP: {ip}\r\nConnection: close\r\n\r\n");
        let r = send_raw_reply(addr, req.as_bytes(), T).unwrap();
        let text = String::from_utf8_lossy(&r.bytes).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("x-origin: "))
            .unwrap_or("none")
            .to_string()
    };
    let ips = [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "198.51.100.7",
        "203.0.113.99",
        "10.0.0.1",
        "2001:db8::1",
        "2001:db8::2",
    ];
    let ours: Vec<String> = ips.iter().map(|ip| origin_of(rf, ip)).collect();
    let theirs: Vec<String> = ips.iter().map(|ip| origin_of(hf, ip)).collect();
    assert_eq!(
        ours, theirs,
        "server per set-src address: ringlb (left) vs haproxy (right)"
    );
    let distinct: std::collections::BTreeSet<&String> = ours.iter().collect();
    assert!(
        distinct.len() > 1,
        "the addresses must not all hash alike: {ours:?}"
    );
}

/// `http-after-response` also runs on the stats page the proxy serves itself.
#[test]
fn after_response_rules_apply_to_the_stats_page_as_in_haproxy() {
    let dir = TempDir::new("after-stats");
    let run = |who: &str| -> (String, bool) {
        let front = free_addr();
        let cfg = format!(
            "global\n    nbthread 1\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n\
             frontend fe\n    bind {front}\n    stats enable\n    stats uri /st\n\
             \x20   http-after-response set-header X-After stats-%[status]\n"
        );
        let path = dir.join(&format!("{who}.cfg"));
        std::fs::write(&path, cfg).unwrap();
        let _proxy = if who == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            Haproxy::start(&path, &[front])
        };
        let req = "GET /st;csv HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        let r = send_raw_reply(front, req.as_bytes(), T).unwrap();
        let text = String::from_utf8_lossy(&r.bytes).to_ascii_lowercase();
        let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
        let status = head.lines().next().unwrap_or("").to_string();
        (status, head.contains("\r\nx-after: stats-200"))
    };
    let ours = run("ringlb");
    assert_eq!(ours, ("http/1.1 200 ok".to_string(), true), "ringlb");
    if haproxy_available() {
        assert_eq!(run("haproxy"), ours, "haproxy (left) vs ringlb (right)");
    }
}

/// Without any log, `capture.req.hdr(N)` still reads the header captured in slot N.
#[test]
fn header_captures_are_readable_by_rules_without_logs_as_in_haproxy() {
    let dir = TempDir::new("capture-nolog");
    let run = |who: &str| -> String {
        let front = free_addr();
        let cfg = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 2s\n\
             frontend fe\n    bind {front}\n    capture request header X-Trace len 3\n\
             \x20   http-request capture req.hdr(host) len 20\n\
             \x20   http-request return status 200 content-type text/plain lf-string \"%[capture.req.hdr(0)]|%[capture.req.hdr(1)]\"\n"
        );
        let path = dir.join(&format!("{who}.cfg"));
        std::fs::write(&path, cfg).unwrap();
        let _proxy = if who == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            Haproxy::start(&path, &[front])
        };
        exchange(
            front,
            b"GET / HTTP/1.1\r\nHost: h.example\r\nX-Trace: abcdef\r\nConnection: close\r\n\r\n",
        )
    };
    let ours = run("ringlb");
    assert!(
        ours.ends_with("\r\n\r\nabc|h.example\n[end: Closed]"),
        "{ours}"
    );
    if haproxy_available() {
        assert_eq!(run("haproxy"), ours, "haproxy (left) vs ringlb (right)");
    }
}

/// TCP mode: `tcp-request content set-src|set-src-port|set-log-level` change what the session
/// log reports (`%ci:%cp`, the syslog priority, `silent`), and the content rules' `txn.`
/// variables reach the log line, as haproxy.
#[test]
fn tcp_content_set_src_and_log_level_as_in_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let echo = Origin::start_echo_tcp("echo");
    let dir = TempDir::new("tcp-setsrc");
    let cfg = |front: SocketAddr, log: SocketAddr| {
        format!(
            "global\n    nbthread 1\n    log {log} local0\n\
             defaults\n    mode tcp\n    log global\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             listen l\n    bind {front}\n\
             \x20   log-format \"TL %ci:%cp %[var(txn.tag)]\"\n\
             \x20   tcp-request inspect-delay 1s\n\
             \x20   tcp-request content set-var(txn.tag) req.payload(0,3)\n\
             \x20   tcp-request content set-src str(192.0.2.5) if {{ req.payload(0,3) -m str ABC }}\n\
             \x20   tcp-request content set-src-port int(4242) if {{ req.payload(0,3) -m str ABC }}\n\
             \x20   tcp-request content set-log-level err if {{ req.payload(0,3) -m str ERR }}\n\
             \x20   tcp-request content set-log-level silent if {{ req.payload(0,3) -m str QUI }}\n\
             \x20   server s1 {}\n",
            echo.addr()
        )
    };
    let udp = || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    };
    let ((hsock, hlog), (rsock, rlog)) = (udp(), udp());
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &cfg(hf, hlog));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf, rlog)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    for tag in ["ABC", "QUI", "ERR"] {
        for addr in [hf, rf] {
            let r = send_raw_reply(
                addr,
                format!("{tag}-payload").as_bytes(),
                Duration::from_millis(300),
            )
            .unwrap();
            assert_eq!(r.bytes, format!("{tag}-payload").as_bytes());
        }
        if tag == "QUI" {
            continue;
        }
        // Lines before the awaited one are the harness's probes and never the silent one.
        let next = |s: &std::net::UdpSocket| {
            let mut b = [0u8; 4096];
            for _ in 0..20 {
                let n = s.recv(&mut b).unwrap();
                let l = String::from_utf8_lossy(&b[..n]).into_owned();
                assert!(!l.contains(" QUI"), "a silent session was logged: {l}");
                if l.ends_with(&format!(" {tag}\n")) || l.ends_with(&format!(" {tag}")) {
                    let pri = l.split('>').next().unwrap().to_string();
                    let body = l.split_once("TL ").unwrap().1.trim_end().to_string();
                    // A port the proxy did not set is the client's own.
                    let body = if tag == "ABC" {
                        body
                    } else {
                        body.split(':').next().unwrap().to_string()
                    };
                    return format!("{pri}> {body}");
                }
            }
            panic!("no log line for {tag}");
        };
        let (hl, rl) = (next(&hsock), next(&rsock));
        assert_eq!(rl, hl, "{tag}: log of ringlb (left) vs haproxy (right)");
        match tag {
            "ABC" => assert_eq!(rl, "<134> 192.0.2.5:4242 ABC"),
            _ => assert_eq!(rl, "<131> 127.0.0.1"),
        }
    }
}
