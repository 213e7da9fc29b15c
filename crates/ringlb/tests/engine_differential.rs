//! Differential tests: the same config and the same raw requests through `haproxy` (2.6, the
//! oracle) and through `ringlb`, in front of the same origin. What the client receives (status
//! line, headers, body — byte for byte) and what the origin sees (its `/echo` dump of the
//! forwarded request) must be identical.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, send_raw_reply, write_config, ChildGuard, Haproxy, Origin,
    Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn config(front: SocketAddr, server: SocketAddr, extra: &str) -> String {
    format!(
        "global\n    nbthread 1\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 2s\n    timeout http-request 1s\n    retries 1\n{extra}\nfrontend fe\n    bind {front}\n    default_backend be\n\nbackend be\n    server s1 {server}\n"
    )
}

struct Pair {
    _dir: TempDir,
    haproxy: SocketAddr,
    ringlb: SocketAddr,
    _guards: (ChildGuard, ChildGuard),
}

fn pair(server: SocketAddr, extra: &str) -> Option<Pair> {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        eprintln!("skipped: haproxy not installed");
        return None;
    }
    let dir = TempDir::new("diff");
    let (hf, rf) = (free_addr(), free_addr());
    let hcfg = write_config(&dir, &config(hf, server, extra));
    let h = Haproxy::start(&hcfg, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(rf, server, extra)).unwrap();
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
    String::from_utf8_lossy(&reply.bytes).into_owned()
}

fn assert_same(p: &Pair, name: &str, req: &[u8]) {
    let h = exchange(p.haproxy, req);
    let r = exchange(p.ringlb, req);
    assert!(!h.is_empty(), "{name}: haproxy answered nothing");
    assert_eq!(r, h, "{name}: ringlb (left) differs from haproxy (right)");
}

#[test]
fn requests_and_responses_match_haproxy_byte_for_byte() {
    let origin = Origin::start("o");
    let Some(p) = pair(origin.addr(), "    option forwardfor\n") else {
        return;
    };
    let cases: &[(&str, &[u8])] = &[
        ("get echo", b"GET /echo HTTP/1.1\r\nHost: a.test\r\nUser-Agent: t\r\nX-Mixed-Case: V a l\r\nConnection: close\r\n\r\n"),
        ("http/1.0 no host", b"GET /echo HTTP/1.0\r\nX-A: 1\r\n\r\n"),
        ("connection tokens", b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=3\r\n\r\n"),
        ("post content-length", b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
        ("post chunked", b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("duplicate identical content-length", b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"),
        ("existing x-forwarded-for", b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: close\r\n\r\n"),
        ("204", b"GET /status/204 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        ("304", b"GET /status/304 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        ("head", b"HEAD /size/10 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        ("chunked response", b"GET /chunked/100 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        ("http/1.0 chunked response", b"GET /chunked/100 HTTP/1.0\r\n\r\n"),
        ("sized response", b"GET /size/3000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        ("server closes", b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("two pipelined", b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        ("bad: two content-lengths", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        ("bad: space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("bad: not http", b"HELLO\r\n\r\n"),
        (
            "bad: coding before chunked (422)",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        ("garbage response", b"GET /garbage HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("no response", b"GET /noresponse HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("server timeout", b"GET /slow/3000 HTTP/1.1\r\nHost: a\r\n\r\n"),
    ];
    for (name, req) in cases {
        assert_same(&p, name, req);
    }
    // More header fields than tune.http.maxhdr (101).
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..120 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_same(&p, "bad: too many headers", &many);
}

#[test]
fn slow_request_and_no_server_match_haproxy() {
    let dead = free_addr();
    let Some(p) = pair(dead, "") else { return };
    assert_same(
        &p,
        "no server (connection refused)",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_same(
        &p,
        "incomplete head (timeout http-request)",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
    );
}

#[test]
fn connection_modes_match_haproxy() {
    let origin = Origin::start("o");
    let keep_alive_pair = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let http10_keep =
        b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /status/200 HTTP/1.0\r\n\r\n";
    for mode in [
        "option http-server-close",
        "option httpclose",
        "option http-keep-alive",
        // The server is told keep-alive, the proxy still closes it after the response.
        "option http-server-close\n    option http-pretend-keepalive",
        "option httpclose\n    option http-pretend-keepalive",
    ] {
        let Some(p) = pair(origin.addr(), &format!("    {mode}\n")) else {
            return;
        };
        assert_same(&p, &format!("{mode}: two requests"), keep_alive_pair);
        assert_same(&p, &format!("{mode}: HTTP/1.0 keep-alive"), http10_keep);
    }
}

/// `http-send-name-header` (from `defaults`): the client's own line is dropped and the server's
/// name goes last, after the proxy's `x-forwarded-for` and `connection` lines, in both modes.
#[test]
fn send_name_header_matches_haproxy() {
    let origin = Origin::start("o");
    for mode in ["option http-keep-alive", "option http-server-close"] {
        let extra = format!("    http-send-name-header X-Srv\n    option forwardfor\n    {mode}\n");
        let Some(p) = pair(origin.addr(), &extra) else {
            return;
        };
        let req = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Srv: fake\r\nX-A: 1\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        assert_same(&p, &format!("{mode}: name header"), req);
        let r = exchange(p.ringlb, req);
        assert!(
            r.contains("header: x-srv: s1") && !r.contains("fake"),
            "{r}"
        );
    }
}

/// `option http-restrict-req-hdr-names`: `delete` drops the lines whose names leave
/// `[A-Za-z0-9-]` before the server sees them; `reject` answers haproxy's 403 page.
#[test]
fn restricted_header_names_match_haproxy() {
    let origin = Origin::start("o");
    let odd = b"GET /echo HTTP/1.1\r\nHost: a\r\nX_Bad: 1\r\nX.dot: 3\r\nX-Good: 2\r\nConnection: close\r\n\r\n";
    let clean = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Good: 2\r\nConnection: close\r\n\r\n";
    for policy in ["preserve", "delete", "reject"] {
        let extra = format!("    option http-restrict-req-hdr-names {policy}\n");
        let Some(p) = pair(origin.addr(), &extra) else {
            return;
        };
        assert_same(&p, &format!("{policy}: odd names"), odd);
        assert_same(&p, &format!("{policy}: clean names"), clean);
        let r = exchange(p.ringlb, odd);
        match policy {
            "preserve" => assert!(r.contains("header: x_bad: 1"), "{r}"),
            "delete" => assert!(
                !r.contains("x_bad") && r.contains("header: x-good: 2"),
                "{r}"
            ),
            _ => assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}"),
        }
    }
}
