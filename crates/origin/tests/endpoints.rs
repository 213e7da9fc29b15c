//! The real `ringlb-origin` binary on loopback, every HTTP endpoint through the
//! testkit's raw client. Each test starts its own origin; the guard kills it by pid.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::origin;
use ringlb_testkit::{
    http_get, http_request, parse_responses, send_raw, send_raw_reply, Conn, Digest, Framing,
    Origin, OriginOptions, RawEnd, TempDir,
};

const RAW_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn hello_carries_origin_name_and_port() {
    let o = origin("s1");
    let r = http_get(o.addr(), "/", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from s1\n");
    assert_eq!(r.header("x-origin"), Some("s1"));
    assert_eq!(
        r.header("x-origin-port"),
        Some(o.addr().port().to_string().as_str())
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // Unknown paths answer hello too (routing tests pick paths freely).
    assert_eq!(
        http_get(o.addr(), "/any/path?q=1", &[]).unwrap().text(),
        "hello from s1\n"
    );
}

#[test]
fn echo_dumps_request_line_and_headers_as_received() {
    let o = origin("s1");
    let raw = b"GET /echo?x=1 HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 10.0.0.1\r\n\
x-lower:   padded value  \r\nX-Forwarded-For: 10.0.0.2\r\nConnection: close\r\n\r\n";
    let got = send_raw(o.addr(), raw, RAW_TIMEOUT).unwrap();
    let r = &parse_responses(&got, "GET").unwrap()[0];
    assert_eq!(
        r.text(),
        "request-line: GET /echo?x=1 HTTP/1.1\n\
header: Host: example.test\n\
header: X-Forwarded-For: 10.0.0.1\n\
header: x-lower:   padded value  \n\
header: X-Forwarded-For: 10.0.0.2\n\
header: Connection: close\n\
body-length: 0\n\
body-fnv1a64: cbf29ce484222325\n"
    );
}

#[test]
fn echo_reports_body_digest_for_length_and_chunked_bodies() {
    let o = origin("s1");
    let r = http_request(o.addr(), "POST", "/echo", &[], b"foobar").unwrap();
    assert_eq!(
        Digest::from_report(&r.text()),
        Some(Digest {
            len: 6,
            fnv: 0x85944171f73967e8
        })
    );
    assert!(r.text().contains("header: Content-Length: 6\n"));

    let chunked = b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\
Connection: close\r\n\r\n3;ext=1\r\nfoo\r\n3\r\nbar\r\n0\r\nTrailer: x\r\n\r\n";
    let got = send_raw(o.addr(), chunked, RAW_TIMEOUT).unwrap();
    let r = &parse_responses(&got, "POST").unwrap()[0];
    assert_eq!(
        Digest::from_report(&r.text()),
        Some(Digest {
            len: 6,
            fnv: 0x85944171f73967e8
        })
    );
}

#[test]
fn status_endpoint_sets_status_and_omits_bodies_where_required() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    for code in [200u16, 302, 404, 500, 502, 503, 504] {
        let r = c.get(&format!("/status/{code}")).unwrap();
        assert_eq!(r.status, code);
        assert_eq!(r.text(), format!("status {code}\n"));
    }
    for code in [204u16, 304] {
        let r = c.get(&format!("/status/{code}")).unwrap();
        assert_eq!((r.status, r.framing), (code, Framing::None));
        assert_eq!(r.header("content-length"), None);
    }
    // The connection survived all of them.
    assert_eq!(c.get("/").unwrap().status, 200);
    for bad in [
        "/status/99",
        "/status/600",
        "/status/x",
        "/size/-1",
        "/headers/100000",
    ] {
        assert_eq!(c.get(bad).unwrap().status, 400, "{bad}");
    }
}

#[test]
fn size_streams_the_pattern_and_head_has_no_body() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    for n in [0u64, 1, 65, 65_536, 1_000_003] {
        let (r, d) = c.get_digest(&format!("/size/{n}")).unwrap();
        assert_eq!(r.framing, Framing::Length(n));
        assert_eq!(d, Digest::of_pattern(n), "/size/{n}");
    }
    let r = c.request("HEAD", "/size/1000", &[], &[]).unwrap();
    assert_eq!(
        (r.header("content-length"), r.body.len()),
        (Some("1000"), 0)
    );
    assert_eq!(c.get("/").unwrap().text(), "hello from s1\n");
}

#[test]
fn chunked_uses_4k_chunks_and_http10_gets_close_delimited() {
    let o = origin("s1");
    let raw = send_raw(
        o.addr(),
        b"GET /chunked/5000 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        RAW_TIMEOUT,
    )
    .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
    assert!(
        text.contains("\r\n\r\n1000\r\n"),
        "first chunk is 4096 bytes: {text}"
    );
    assert!(text.contains("\r\n388\r\n"), "second chunk is 904 bytes");
    assert!(text.ends_with("\r\n0\r\n\r\n"));
    let r = &parse_responses(&raw, "GET").unwrap()[0];
    assert_eq!(r.body, ringlb_testkit::pattern(5000));

    let mut c = Conn::connect(o.addr()).unwrap();
    let (r, d) = c.get_digest("/chunked/300000").unwrap();
    assert_eq!(
        (r.framing, d),
        (Framing::Chunked, Digest::of_pattern(300_000))
    );

    let raw = send_raw(o.addr(), b"GET /chunked/100 HTTP/1.0\r\n\r\n", RAW_TIMEOUT).unwrap();
    let r = &parse_responses(&raw, "GET").unwrap()[0];
    assert_eq!(
        (r.framing, r.body.clone()),
        (Framing::UntilClose, ringlb_testkit::pattern(100))
    );
}

#[test]
fn slow_delays_the_head_and_slowbody_the_body() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    let t = Instant::now();
    assert_eq!(c.get("/slow/300").unwrap().status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    let t = Instant::now();
    c.send_head("GET", "/slowbody/300", &[], 0).unwrap();
    let head = c.read_head().unwrap();
    assert_eq!(head.header("content-length"), Some("14"));
    let mut body = [0u8; 14];
    c.stream().read_exact(&mut body).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(&body, b"hello from s1\n");
}

#[test]
fn close_noresponse_garbage_reset() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    let r = c.get("/close").unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.peer_closed(RAW_TIMEOUT));

    let raw = send_raw_reply(
        o.addr(),
        b"GET /noresponse HTTP/1.1\r\nHost: h\r\n\r\n",
        RAW_TIMEOUT,
    );
    let raw = raw.unwrap();
    assert_eq!((raw.bytes.as_slice(), raw.end), (&b""[..], RawEnd::Closed));

    let raw = send_raw_reply(
        o.addr(),
        b"GET /reset HTTP/1.1\r\nHost: h\r\n\r\n",
        RAW_TIMEOUT,
    );
    let raw = raw.unwrap();
    assert_eq!((raw.bytes.as_slice(), raw.end), (&b""[..], RawEnd::Reset));

    // A keep-alive answer leaves the connection open.
    let raw = send_raw_reply(
        o.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        Duration::from_millis(300),
    );
    let raw = raw.unwrap();
    assert_eq!(raw.end, RawEnd::TimedOut);
    assert_eq!(parse_responses(&raw.bytes, "GET").unwrap()[0].status, 200);

    let raw = send_raw(
        o.addr(),
        b"GET /garbage HTTP/1.1\r\nHost: h\r\n\r\n",
        RAW_TIMEOUT,
    )
    .unwrap();
    assert!(!raw.is_empty());
    assert!(
        parse_responses(&raw, "GET").is_err(),
        "garbage parsed as HTTP"
    );

    let mut s = TcpStream::connect(o.addr()).unwrap();
    s.set_read_timeout(Some(RAW_TIMEOUT)).unwrap();
    s.write_all(b"GET /reset HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    let err = s.read(&mut buf).expect_err("a reset, not data or EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[test]
fn headers_endpoint_adds_n_headers() {
    let o = origin("s1");
    let r = http_get(o.addr(), "/headers/200", &[]).unwrap();
    let extra: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("X-Extra-"))
        .collect();
    assert_eq!(extra.len(), 200);
    assert_eq!(r.header("x-extra-199"), Some("value-199"));
}

#[test]
fn health_follows_the_unhealthy_file() {
    let dir = TempDir::new("origin-health");
    let flag = dir.join("down");
    let o = Origin::start_with(OriginOptions {
        unhealthy_file: Some(flag.clone()),
        ..common::opts("s1")
    });
    let r = http_get(o.addr(), "/health", &[]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    std::fs::write(&flag, b"").unwrap();
    assert_eq!(http_get(o.addr(), "/health", &[]).unwrap().status, 503);
    std::fs::remove_file(&flag).unwrap();
    assert_eq!(http_get(o.addr(), "/health", &[]).unwrap().status, 200);
}

#[test]
fn uploads_answer_length_and_checksum() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    for method in ["POST", "PUT"] {
        let r = c.upload_pattern(method, "/upload", 100_000).unwrap();
        assert_eq!(
            Digest::from_report(&r.text()),
            Some(Digest::of_pattern(100_000))
        );
    }
    let r = c.request("POST", "/", &[], b"").unwrap();
    assert_eq!(Digest::from_report(&r.text()), Some(Digest::new()));
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    c.send_head("POST", "/up", &[("Expect", "100-continue")], 6)
        .unwrap();
    let interim = c.read_head().unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"foobar").unwrap();
    let r = c.read_response("POST").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(Digest::from_report(&r.text()).map(|d| d.len), Some(6));
}

#[test]
fn keep_alive_pipelining_and_http10_rules() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    c.send(b"GET /status/201 HTTP/1.1\r\nHost: h\r\n\r\nGET /size/3 HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response("GET").unwrap().status, 201);
    assert_eq!(c.read_response("GET").unwrap().body, b"ABC");
    assert_eq!(c.read_response("GET").unwrap().text(), "hello from s1\n");
    assert!(
        !c.peer_closed(Duration::from_millis(200)),
        "1.1 keeps the connection"
    );

    let raw = send_raw(o.addr(), b"GET / HTTP/1.0\r\n\r\n", RAW_TIMEOUT).unwrap();
    let r = &parse_responses(&raw, "GET").unwrap()[0];
    assert_eq!(r.header("connection"), Some("close"));

    let mut c = Conn::connect(o.addr()).unwrap();
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = c.read_response("GET").unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(c.get("/").unwrap().status, 200);
}

#[test]
fn malformed_requests_get_4xx_and_close() {
    let o = origin("s1");
    let cases: [(&[u8], u16); 5] = [
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"\x00\x01\x02 nonsense\r\n\r\n", 400),
    ];
    for (raw, status) in cases {
        let got = send_raw(o.addr(), raw, RAW_TIMEOUT).unwrap();
        let r = parse_responses(&got, "GET").unwrap();
        assert_eq!(r.len(), 1, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(r[0].status, status, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(r[0].header("connection"), Some("close"));
    }
    let mut many = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..600 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let got = send_raw(o.addr(), &many, RAW_TIMEOUT).unwrap();
    assert_eq!(parse_responses(&got, "GET").unwrap()[0].status, 431);
    let mut huge = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    huge.resize(100_000, b'a');
    let got = send_raw(o.addr(), &huge, RAW_TIMEOUT).unwrap();
    assert_eq!(parse_responses(&got, "GET").unwrap()[0].status, 431);
    // The origin still serves.
    assert_eq!(http_get(o.addr(), "/", &[]).unwrap().status, 200);
}

#[test]
fn max_conns_holds_extra_connections_in_the_backlog() {
    let o = Origin::start_with(OriginOptions {
        max_conns: Some(1),
        ..common::opts("s1")
    });
    // wait_ready's probe connection may still hold the single slot briefly.
    let mut first = Conn::connect(o.addr()).unwrap();
    assert_eq!(first.get("/").unwrap().status, 200);
    let mut second = Conn::connect(o.addr()).unwrap();
    second.send_head("GET", "/", &[], 0).unwrap();
    second.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(
        second.read_response("GET").is_err(),
        "served beyond --max-conns 1"
    );
    drop(first);
    second.set_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(second.read_response("GET").unwrap().status, 200);
}

#[test]
fn cli_rejects_bad_arguments_and_prints_help() {
    let out = std::process::Command::new(common::bin())
        .args(["--listen", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an address"));
    let out = std::process::Command::new(common::bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--listen ADDR"));
}

#[test]
fn verbose_logs_one_line_per_request() {
    let o = origin("s1");
    http_get(o.addr(), "/status/404", &[]).unwrap();
    assert!(ringlb_testkit::wait_until(Duration::from_secs(5), || o
        .guard()
        .stderr()
        .contains("\"GET /status/404 HTTP/1.1\" 404")));
}
