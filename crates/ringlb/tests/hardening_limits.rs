//! Limits, differential against haproxy 2.6: header count (`tune.http.maxhdr`), header block
//! size (`tune.bufsize` - `tune.maxrewrite`) and URI size give the same status as haproxy and
//! close the connection; memory per connection stays bounded by the buffer sizes.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, parse_responses, send_raw_reply, write_config, ChildGuard,
    Haproxy, Origin, RawEnd, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn config(front: SocketAddr, server: SocketAddr, global: &str, frontend: &str) -> String {
    format!(
        "global\n    nbthread 1\n{global}\ndefaults\n    mode http\n    timeout connect 2s\n    \
         timeout client 5s\n    timeout server 2s\n    timeout http-request 2s\n\n\
         frontend fe\n    bind {front}\n{frontend}    default_backend be\n\nbackend be\n    server s1 {server}\n"
    )
}

/// (status, connection closed) for `req` sent to `addr`.
fn outcome(addr: SocketAddr, req: &[u8]) -> (u16, bool) {
    let r = send_raw_reply(addr, req, T).unwrap();
    let status = parse_responses(&r.bytes, "GET")
        .ok()
        .and_then(|v| v.first().map(|r| r.status))
        .unwrap_or(0);
    (status, r.end != RawEnd::TimedOut)
}

fn with_headers(n: usize) -> Vec<u8> {
    let mut s = String::from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 2..n {
        s.push_str(&format!("X-H{i}: v\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// `n` fields, none of them `Connection`; HTTP/1.0 so the connection closes after the answer.
fn without_connection(n: usize) -> Vec<u8> {
    let mut s = String::from("GET / HTTP/1.0\r\nHost: x\r\n");
    for i in 1..n {
        s.push_str(&format!("X-H{i}: v\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn with_header_bytes(len: usize) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(len)
    )
    .into_bytes()
}

fn with_uri(len: usize) -> Vec<u8> {
    format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "u".repeat(len)
    )
    .into_bytes()
}

/// Runs every (name, request) through haproxy and ringlb with `global` tunes; asserts equal
/// outcomes and that each equals the expected status.
fn differential(global: &str, cases: &[(&str, Vec<u8>, u16)]) {
    differential_with(global, "", cases);
}

/// As [`differential`], with `frontend` lines (indented, each ending in a newline) added to
/// the frontend.
fn differential_with(global: &str, frontend: &str, cases: &[(&str, Vec<u8>, u16)]) {
    if !haproxy_available() {
        eprintln!("SKIP: haproxy not installed");
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("limits");
    let (hf, rf) = (free_addr(), free_addr());
    let hcfg = write_config(&dir, &config(hf, origin.addr(), global, frontend));
    let _h: ChildGuard = Haproxy::start(&hcfg, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(rf, origin.addr(), global, frontend)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    for (name, req, want) in cases {
        let h = outcome(hf, req);
        let r = outcome(rf, req);
        println!(
            "limit {name} [{}{}]: haproxy {h:?} ringlb {r:?}",
            global.trim(),
            frontend.trim()
        );
        assert_eq!(r, h, "{name}: ringlb vs haproxy");
        assert_eq!(r, (*want, true), "{name}");
    }
}

#[test]
fn header_count_default_maxhdr_101() {
    differential(
        "",
        &[
            ("50 fields", with_headers(50), 200),
            ("100 fields", with_headers(100), 200),
            // `Connection: close` takes no slot in HAProxy 2.6: 101 fields pass with it.
            ("101 fields incl. Connection: close", with_headers(101), 200),
            ("102 fields incl. Connection: close", with_headers(102), 400),
            ("101 fields", without_connection(101), 400),
            ("150 fields", with_headers(150), 400),
            ("1000 fields", with_headers(1000), 400),
        ],
    );
}

#[test]
fn header_count_configured_maxhdr_20() {
    differential(
        "    tune.http.maxhdr 20\n",
        &[
            ("20 fields incl. Connection: close", with_headers(20), 200),
            ("21 fields incl. Connection: close", with_headers(21), 400),
            ("19 fields", without_connection(19), 200),
            ("20 fields", without_connection(20), 400),
            ("40 fields", with_headers(40), 400),
        ],
    );
}

#[test]
fn head_and_uri_size_default_bufsize() {
    differential(
        "",
        &[
            ("header 8000 B", with_header_bytes(8000), 200),
            ("header 14000 B", with_header_bytes(14000), 200),
            ("header 17000 B", with_header_bytes(17000), 400),
            ("header 64000 B", with_header_bytes(64000), 400),
            ("uri 8000 B", with_uri(8000), 200),
            ("uri 17000 B", with_uri(17000), 400),
            ("uri 100000 B", with_uri(100_000), 400),
        ],
    );
}

#[test]
fn head_size_configured_bufsize_8k() {
    differential(
        "    tune.bufsize 8192\n",
        &[
            ("header 5000 B", with_header_bytes(5000), 200),
            ("header 9000 B", with_header_bytes(9000), 400),
            ("uri 9000 B", with_uri(9000), 400),
        ],
    );
}

/// A request body is limited only where the configuration says so: HAProxy 2.6 has no body
/// size keyword, the guide's way is a rule on the buffered body. Bodies under, at and over the
/// limit, with a length and chunked, and one larger than the buffer (`req.body_size` is then
/// what the buffer holds, still over the limit).
#[test]
fn body_size_where_configured() {
    let post = |body: usize, chunked: bool| {
        let mut r = String::from("POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        if chunked {
            r.push_str(&format!(
                "Transfer-Encoding: chunked\r\n\r\n{body:x}\r\n{}\r\n0\r\n\r\n",
                "b".repeat(body)
            ));
        } else {
            r.push_str(&format!(
                "Content-Length: {body}\r\n\r\n{}",
                "b".repeat(body)
            ));
        }
        r.into_bytes()
    };
    differential_with(
        "",
        "    option http-buffer-request\n    \
         http-request deny deny_status 413 if { req.body_size gt 1000 }\n",
        &[
            ("body 500 B", post(500, false), 200),
            ("body 1000 B", post(1000, false), 200),
            ("body 1001 B", post(1001, false), 413),
            ("body 5000 B", post(5000, false), 413),
            ("chunked body 900 B", post(900, true), 200),
            ("chunked body 2000 B", post(2000, true), 413),
            ("body 40000 B (over bufsize)", post(40000, false), 413),
        ],
    );
}

/// 200 connections each holding an unfinished 14 KB head: RSS grows by less than
/// 3 x bufsize per connection (measured: about 2.2 x, the receive buffer plus the head being
/// assembled).
#[test]
fn memory_per_connection_is_bounded_by_buffers() {
    let origin = Origin::start("o");
    let dir = TempDir::new("limits-mem");
    let front = free_addr();
    let path = write_config(&dir, &config(front, origin.addr(), "", ""));
    let proxy = Ringlb::start(&path, &[front]);
    let before = proxy.proc_status_kib("VmRSS").unwrap();
    let partial = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}", "a".repeat(14_000));
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(front).unwrap();
        s.write_all(partial.as_bytes()).unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = proxy.proc_status_kib("VmRSS").unwrap();
    let per_conn = (during.saturating_sub(before)) * 1024 / 200;
    println!("memory: RSS {before} KiB -> {during} KiB with 200 partial 14 KB heads: {per_conn} B per connection");
    assert!(per_conn < 3 * 16384, "{per_conn} bytes per connection");
    drop(held);
}
