//! `option http-buffer-request` and `http-request wait-for-body` with the `req.body*` fetches,
//! and the stream actions `early-hint`, `set-timeout server`, `disable-l7-retry`: the same
//! raw requests against haproxy 2.6 and ringlb with the same config, compared (status line,
//! body, and for `early-hint` the interim 103 byte for byte).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, write_config, Haproxy, Origin, Ringlb, TempDir,
};

fn config(fe: SocketAddr, fe2: SocketAddr, one: SocketAddr, two: SocketAddr) -> String {
    format!(
        r#"global
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {fe}
    http-request wait-for-body time 2s if METH_POST
    http-request deny deny_status 403 if {{ req.body_param(user) -m str mallory }}
    http-request return status 200 content-type text/plain lf-string "len=%[req.body_len] size=%[req.body_size] user=%[req.body_param(user)] any=%[req.body_param] body=%[req.body]" if {{ path /echo }}
    http-request set-mark 0x2a if {{ path /mark }}
    http-request set-tos 0x10 if {{ path /mark }}
    http-request return status 200 if {{ path /mark }}
    http-request set-var(txn.path) path
    http-response set-mark 0x2b if {{ var(txn.path) -m str /mark2 }}
    use_backend retry if {{ path_beg /status }}
    http-request early-hint link "</s.css>; rel=preload" if {{ path /hint }}
    http-request early-hint x-path %[path] if {{ path /hint }}
    default_backend one
frontend fe2
    bind {fe2}
    option http-buffer-request
    timeout http-request 600ms
    http-response set-header x-be %[be_name]
    use_backend two if {{ req.body_param(to) -m str two }}
    default_backend one
backend one
    http-request set-timeout server 300ms if {{ path_beg /slow }}
    server s1 {one}
backend two
    server s2 {two}
backend retry
    retry-on 503
    retries 2
    http-request disable-l7-retry if {{ query -m beg noretry }}
    server s3 {one}
"#
    )
}

/// Sends `parts` (with a pause before each but the first), then reads until the proxy
/// closes or 5 s pass.
fn exchange(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        s.write_all(p).unwrap();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status line and the body of the last response in `raw`.
fn status_and_body(raw: &str) -> (String, String) {
    let status = raw.lines().next().unwrap_or("").to_string();
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Pair {
    _h: ringlb_testkit::ChildGuard,
    _r: ringlb_testkit::ChildGuard,
    o: (Origin, Origin),
    _dir: TempDir,
    /// (haproxy fe, fe2), (ringlb fe, fe2)
    fronts: [(SocketAddr, SocketAddr); 2],
}

fn start() -> Option<Pair> {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return None;
    }
    let (one, two) = (Origin::start("one"), Origin::start("two"));
    let dir = TempDir::new("rules-body");
    let (h1, h2, r1, r2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let hpath = write_config(&dir, &config(h1, h2, one.addr(), two.addr()));
    let h = Haproxy::start(&hpath, &[h1, h2]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(r1, r2, one.addr(), two.addr())).unwrap();
    let r = Ringlb::start(&rpath, &[r1, r2]);
    Some(Pair {
        _h: h,
        _r: r,
        o: (one, two),
        _dir: dir,
        fronts: [(h1, h2), (r1, r2)],
    })
}

#[test]
fn buffered_bodies_are_seen_by_the_rules_as_by_haproxy() {
    let Some(p) = start() else { return };
    let pause = Duration::from_millis(150);
    let chunked: &[&[u8]] = &[
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nuser=\r\n",
        b"3\r\nbob\r\n4\r\n&a=1\r\n0\r\n\r\n",
    ];
    let mut seen = Vec::new();
    for (fe, fe2) in p.fronts {
        let mut r = Vec::new();
        // The body comes in two parts: the rules see both.
        let req = post("/echo", "user=bob&pass=x%20y");
        let (a, b) = req.split_at(req.len() - 6);
        r.push(status_and_body(&exchange(fe, &[a, b], pause)));
        r.push(status_and_body(&exchange(fe, chunked, pause)));
        r.push(status_and_body(&exchange(
            fe,
            &[&post("/echo", "a=1&user=")],
            pause,
        )));
        r.push(status_and_body(&exchange(
            fe,
            &[&post("/x", "user=mallory")],
            pause,
        )));
        // A GET has no body to wait for.
        r.push(status_and_body(&exchange(
            fe,
            &[b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
            pause,
        )));
        // Routing on the body (option http-buffer-request on the frontend).
        for to in ["to=two&x=1", "to=one"] {
            let raw = exchange(fe2, &[&post("/", to)], pause);
            let be = raw.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-be: ")
                    .map(str::to_string)
            });
            r.push((
                raw.lines().next().unwrap_or("").to_string(),
                be.unwrap_or_default(),
            ));
        }
        seen.push(r);
    }
    let (h, r) = (&seen[0], &seen[1]);
    assert_eq!(r, h, "ringlb vs haproxy");
    // What both agree on is what the config asks for.
    assert_eq!(
        r[0],
        (
            "HTTP/1.1 200 OK".to_string(),
            "len=19 size=19 user=bob any=bob body=user=bob&pass=x%20y".to_string()
        )
    );
    assert_eq!(r[1].1, "len=12 size=12 user=bob any=bob body=user=bob&a=1");
    assert!(r[3].0.starts_with("HTTP/1.1 403"), "{:?}", r[3]);
    assert_eq!(r[4].1, "len=0 size=0 user= any= body=");
    assert_eq!(r[5].1, "two");
    assert_eq!(r[6].1, "one");
}

#[test]
fn a_body_that_does_not_come_gets_408_as_from_haproxy() {
    let Some(p) = start() else { return };
    let mut seen = Vec::new();
    for (_, fe2) in p.fronts {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nto=tw";
        let t = std::time::Instant::now();
        let raw = exchange(fe2, &[head], Duration::ZERO);
        // `timeout http-request 600ms` ends the wait, well before the 5 s client timeout.
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
        seen.push(raw.lines().next().unwrap_or("").to_string());
    }
    assert_eq!(seen[1], seen[0], "ringlb vs haproxy");
    assert!(seen[1].starts_with("HTTP/1.1 408"), "{seen:?}");
}

#[test]
fn early_hints_and_set_timeout_as_haproxy() {
    let Some(p) = start() else { return };
    let mut hints = Vec::new();
    let mut slow = Vec::new();
    for (fe, _) in p.fronts {
        let raw = exchange(
            fe,
            &[b"GET /hint HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
            Duration::ZERO,
        );
        // The 103s come first (one per conditional hint), then the server's answer.
        let at = raw.find("HTTP/1.1 200").unwrap_or(raw.len());
        let (interim, rest) = raw.split_at(at);
        hints.push((
            interim.to_string(),
            rest.lines().next().unwrap_or("").to_string(),
        ));
        // `set-timeout server 300ms` against an origin answering after 3 s: 504.
        let t = std::time::Instant::now();
        let raw = exchange(
            fe,
            &[b"GET /slow/3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
            Duration::ZERO,
        );
        assert!(
            t.elapsed() < Duration::from_millis(2500),
            "{:?}",
            t.elapsed()
        );
        slow.push(raw.lines().next().unwrap_or("").to_string());
    }
    assert_eq!(hints[1], hints[0], "ringlb vs haproxy");
    assert_eq!(
        hints[1].0,
        "HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n\
         HTTP/1.1 103 Early Hints\r\nx-path: /hint\r\n\r\n"
    );
    assert_eq!(hints[1].1, "HTTP/1.1 200 OK");
    assert_eq!(slow[1], slow[0], "ringlb vs haproxy");
    assert!(slow[1].starts_with("HTTP/1.1 504"), "{slow:?}");
}

/// The proxy's socket of the client connection from local port `port`, as `ss -e` shows it.
fn proxy_socket(port: u16) -> String {
    let out = std::process::Command::new("ss")
        .args([
            "-tnHe",
            "state",
            "established",
            &format!("( dport = :{port} )"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn set_mark_marks_the_client_connection_as_haproxy() {
    let Some(p) = start() else { return };
    let mut marks = Vec::new();
    for (fe, _) in p.fronts {
        let mut s = TcpStream::connect(fe).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = s.local_addr().unwrap().port();
        let before = proxy_socket(port);
        s.write_all(b"GET /mark HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        // The connection is kept: its socket carries the mark now (SO_MARK, as root).
        let after = proxy_socket(port);
        // `http-response set-mark` on the next request, answered by the server.
        s.write_all(b"GET /mark2 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        let later = proxy_socket(port);
        marks.push((
            before.contains("fwmark:0x2a"),
            after.contains("fwmark:0x2a"),
            later.contains("fwmark:0x2b"),
        ));
    }
    assert_eq!(marks[1], marks[0], "ringlb vs haproxy");
    assert_eq!(marks[1], (false, true, true), "{marks:?}");
}

#[test]
fn disable_l7_retry_stops_retry_on_as_haproxy() {
    let Some(p) = start() else { return };
    let mut seen = Vec::new();
    for ((fe, _), who) in p.fronts.into_iter().zip(["h", "r"]) {
        for tag in ["retry", "noretry"] {
            let target = format!("/status/503?{tag}-{who}");
            let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let raw = exchange(fe, &[req.as_bytes()], Duration::ZERO);
            assert!(raw.starts_with("HTTP/1.1 503"), "{raw}");
            let needle = format!("\"GET {target} ");
            let count = || p.o.0.guard().stderr().matches(&needle).count();
            // Without the action: the first attempt and `retries 2`; with it: one.
            let want = if tag == "retry" { 3 } else { 1 };
            ringlb_testkit::wait_until(Duration::from_secs(5), || count() >= want);
            // Time for an extra attempt to show up if one were (wrongly) made.
            std::thread::sleep(Duration::from_millis(200));
            seen.push(count());
        }
    }
    assert_eq!(seen[2..], seen[..2], "ringlb vs haproxy");
    assert_eq!(seen[2..], [3, 1]);
}
