//! Request head parsing: accepted shapes and the request-smuggling classics.
//! Cases marked "haproxy 2.6: ..." were observed by sending the same bytes through a real
//! haproxy 2.6.12 on loopback (see README.md).

use ringlb_http1::{
    parse_request, BodyFraming, ErrorKind, Limits, Method, Parsed, RequestHead, TargetForm, Version,
};

fn parse(input: &[u8]) -> Result<(Parsed, RequestHead), ErrorKind> {
    let mut head = RequestHead::with_limits(&Limits::default());
    let r = parse_request(input, &Limits::default(), &mut head).map_err(|e| {
        assert_eq!(e.side, ringlb_http1::Side::Client);
        assert!(e.must_close());
        e.kind
    })?;
    Ok((r, head))
}

fn err(input: &[u8]) -> ErrorKind {
    match parse(input) {
        Err(k) => k,
        Ok((p, _)) => panic!("accepted {:?}: {p:?}", String::from_utf8_lossy(input)),
    }
}

fn ok(input: &[u8]) -> RequestHead {
    match parse(input) {
        Ok((Parsed::Complete { head_len }, h)) => {
            assert_eq!(head_len, h.head_len());
            h
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

const P: &str = "POST /a HTTP/1.1\r\nHost: x\r\n";
const G: &str = "GET /a HTTP/1.1\r\nHost: x\r\n";

fn with_fields(start: &str, fields: &str) -> Vec<u8> {
    if fields.is_empty() {
        format!("{start}\r\n").into_bytes()
    } else {
        format!("{start}{fields}\r\n\r\n").into_bytes()
    }
}
fn post(fields: &str) -> Vec<u8> {
    with_fields(P, fields)
}
fn get(fields: &str) -> Vec<u8> {
    with_fields(G, fields)
}

#[test]
fn simple_get() {
    let buf = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \r\n\r\nNEXT";
    let h = ok(buf);
    assert_eq!(h.method(), Method::Get);
    assert_eq!(h.method_span().get(buf), b"GET");
    assert_eq!(h.target().get(buf), b"/a?b=c");
    assert_eq!(h.target_form(), TargetForm::Origin);
    assert_eq!(h.version(), Version::Http11);
    assert_eq!(h.head_len(), buf.len() - 4);
    assert_eq!(h.headers().len(), 2);
    assert_eq!(h.headers()[1].name.get(buf), b"Accept");
    assert_eq!(h.headers()[1].value.get(buf), b"*/*");
    assert_eq!(h.host().map(|s| s.get(buf)), Some(&b"example.com"[..]));
    assert_eq!(h.framing(), BodyFraming::None);
    assert!(h.client_keep_alive());
    assert!(!h.expect_continue());
    assert!(!h.is_upgrade());
}

#[test]
fn partial_heads_at_every_split() {
    let buf = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    let head_len = buf.len() - 5;
    for cut in 0..head_len {
        assert_eq!(
            parse(&buf[..cut]).map(|r| r.0),
            Ok(Parsed::Partial),
            "cut {cut}"
        );
    }
    for cut in head_len..=buf.len() {
        assert_eq!(
            parse(&buf[..cut]).map(|r| r.0),
            Ok(Parsed::Complete { head_len }),
            "cut {cut}"
        );
    }
}

#[test]
fn reuse_keeps_capacity_and_clears_state() {
    let limits = Limits::default();
    let mut head = RequestHead::with_limits(&limits);
    let cap = head.headers().len();
    assert_eq!(cap, 0);
    let a = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    parse_request(a, &limits, &mut head).unwrap();
    assert!(head.expect_continue());
    let b = b"GET / HTTP/1.0\r\n\r\n";
    parse_request(b, &limits, &mut head).unwrap();
    assert!(!head.expect_continue());
    assert_eq!(head.framing(), BodyFraming::None);
    assert_eq!(head.host(), None);
    assert!(head.headers().is_empty());
    assert!(!head.client_keep_alive());
}

#[test]
fn methods_versions_and_keep_alive() {
    let cases: &[(&[u8], Method, Version, bool)] = &[
        (
            b"GET / HTTP/1.1\r\n\r\n",
            Method::Get,
            Version::Http11,
            true,
        ),
        (
            b"HEAD / HTTP/1.1\r\n\r\n",
            Method::Head,
            Version::Http11,
            true,
        ),
        (
            b"PUT / HTTP/1.1\r\nConnection: close\r\n\r\n",
            Method::Put,
            Version::Http11,
            false,
        ),
        (
            b"DELETE / HTTP/1.1\r\nConnection: Keep-Alive, Close\r\n\r\n",
            Method::Delete,
            Version::Http11,
            false,
        ),
        (
            b"PATCH / HTTP/1.0\r\n\r\n",
            Method::Patch,
            Version::Http10,
            false,
        ),
        (
            b"TRACE / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            Method::Trace,
            Version::Http10,
            true,
        ),
        (
            b"PROPFIND / HTTP/1.1\r\n\r\n",
            Method::Other,
            Version::Http11,
            true,
        ),
        // haproxy 2.6: `get` is forwarded as is (methods are case-sensitive).
        (
            b"get / HTTP/1.1\r\n\r\n",
            Method::Other,
            Version::Http11,
            true,
        ),
        (
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            Method::Options,
            Version::Http11,
            true,
        ),
        (
            b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
            Method::Connect,
            Version::Http11,
            true,
        ),
        // haproxy 2.6 skips leading empty lines, so does ringlb.
        (
            b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            Method::Get,
            Version::Http11,
            true,
        ),
    ];
    for (input, m, v, ka) in cases {
        let h = ok(input);
        assert_eq!(
            (h.method(), h.version(), h.client_keep_alive()),
            (*m, *v, *ka),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn body_framing() {
    let cases: &[(Vec<u8>, BodyFraming, bool)] = &[
        (
            post("Content-Length: 5"),
            BodyFraming::ContentLength(5),
            false,
        ),
        (
            post("Content-Length: 0"),
            BodyFraming::ContentLength(0),
            false,
        ),
        // haproxy 2.6 merges identical repeated or comma-joined values.
        (
            post("Content-Length: 2\r\nContent-Length: 2"),
            BodyFraming::ContentLength(2),
            false,
        ),
        (
            post("Content-Length: 2, 2"),
            BodyFraming::ContentLength(2),
            false,
        ),
        (
            post("Content-Length: 002"),
            BodyFraming::ContentLength(2),
            false,
        ),
        (
            post("Transfer-Encoding: chunked"),
            BodyFraming::Chunked,
            false,
        ),
        (
            post("Transfer-Encoding:  chunked  "),
            BodyFraming::Chunked,
            false,
        ),
        (
            post("Transfer-Encoding: CHUNKED"),
            BodyFraming::Chunked,
            false,
        ),
        // haproxy 2.6: CL+TE → CL dropped, chunked used, client connection closed afterwards.
        (
            post("Content-Length: 5\r\nTransfer-Encoding: chunked"),
            BodyFraming::Chunked,
            true,
        ),
        (
            post("Transfer-Encoding: chunked\r\nContent-Length: 5"),
            BodyFraming::Chunked,
            true,
        ),
        (post(""), BodyFraming::None, false),
        // HTTP/1.0 request body without length: no body (RFC 9112 §6.3 rule 7).
        (
            b"POST / HTTP/1.0\r\n\r\nabc".to_vec(),
            BodyFraming::None,
            false,
        ),
        (
            b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            BodyFraming::ContentLength(3),
            false,
        ),
    ];
    for (input, framing, clte) in cases {
        let h = ok(input);
        assert_eq!(
            h.framing(),
            *framing,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(h.had_content_length_and_chunked(), *clte);
        if *clte {
            assert!(!h.client_keep_alive());
        }
    }
}

/// Request-smuggling classics and every strictness rule, with the error each must produce.
#[test]
fn smuggling_corpus_is_rejected() {
    use ErrorKind::*;
    let cases: Vec<(Vec<u8>, ErrorKind)> = vec![
        // TE.TE obfuscations
        (post("Transfer-Encoding: xchunked"), BadTransferEncoding), // haproxy 2.6: 400
        (
            post("Transfer-Encoding: chunked, identity"),
            BadTransferEncoding,
        ), // haproxy 2.6: 400
        (post("Transfer-Encoding: identity"), BadTransferEncoding), // haproxy 2.6: 400
        (
            post("Transfer-Encoding: chunked, chunked"),
            BadTransferEncoding,
        ), // haproxy 2.6: 400
        (
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
            BadTransferEncoding,
        ), // haproxy 2.6: 400
        (
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"),
            BadTransferEncoding,
        ),
        (
            post("Transfer-Encoding: gzip, chunked"),
            UnsupportedTransferCoding,
        ), // haproxy 2.6: 422
        (post("Transfer-Encoding: chunked;q=1"), BadTransferEncoding),
        (post("Transfer-Encoding: \"chunked\""), BadTransferEncoding),
        (post("Transfer-Encoding: chunked,"), BadTransferEncoding),
        (post("Transfer-Encoding: ,chunked"), BadTransferEncoding),
        (post("Transfer-Encoding:"), BadTransferEncoding),
        (post("Transfer-Encoding: chunk"), BadTransferEncoding),
        (post("Transfer-Encoding: chunked\u{b}"), BadHeaderValue),
        (post("Transfer-Encoding : chunked"), BadHeaderName),
        (post("Transfer-Encoding\t: chunked"), BadHeaderName),
        (post(" Transfer-Encoding: chunked"), ObsFold),
        (post("X: y\r\n Transfer-Encoding: chunked"), ObsFold),
        (post("Transfer-Encoding:\r\n chunked"), ObsFold),
        (
            post("Transfer_Encoding: chunked\r\nContent-Length: x"),
            BadContentLength,
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            TransferEncodingInHttp10,
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: identity\r\n\r\n".to_vec(),
            TransferEncodingInHttp10,
        ),
        // CL.CL
        (
            post("Content-Length: 2\r\nContent-Length: 3"),
            ConflictingContentLength,
        ), // haproxy 2.6: 400
        (post("Content-Length: 2, 3"), ConflictingContentLength), // haproxy 2.6: 400
        (
            post("Content-Length: 3\r\nContent-Length: 2, 3"),
            ConflictingContentLength,
        ),
        (post("Content-Length: +2"), BadContentLength), // haproxy 2.6: 400
        (post("Content-Length: -2"), BadContentLength), // haproxy 2.6: 400
        (post("Content-Length: 2a"), BadContentLength), // haproxy 2.6: 400
        (post("Content-Length: 0x2"), BadContentLength),
        (post("Content-Length: "), BadContentLength), // haproxy 2.6: 400
        (post("Content-Length: 1 2"), BadContentLength), // haproxy 2.6: 400
        (post("Content-Length: 2,"), BadContentLength), // haproxy 2.6: 400
        (
            post("Content-Length: 99999999999999999999999"),
            BadContentLength,
        ), // haproxy 2.6: 400
        (
            post("Content-Length: 18446744073709551616"),
            BadContentLength,
        ),
        (post("Content-Length: 2 ,, 2"), BadContentLength),
        (post("Content-Length : 2"), BadHeaderName),
        (
            post("Content-Length: 2\r\nContent-Length : 3"),
            BadHeaderName,
        ),
        (post("Content-Length:\r\n 2"), ObsFold),
        // CL.TE / TE.CL with a broken CL still fails on the CL
        (
            post("Content-Length: abc\r\nTransfer-Encoding: chunked"),
            BadContentLength,
        ),
        (
            post("Content-Length: 5\r\nTransfer-Encoding: xchunked"),
            BadTransferEncoding,
        ),
        // line endings
        (b"GET / HTTP/1.1\nHost: x\n\n".to_vec(), BareLineEnding), // haproxy 2.6 accepts: stricter
        (
            b"GET / HTTP/1.1\r\nHost: x\nX: 1\r\n\r\n".to_vec(),
            BareLineEnding,
        ), // haproxy 2.6 accepts
        (b"GET / HTTP/1.1\r\nHost: x\r\n\n".to_vec(), BareLineEnding),
        (
            b"GET / HTTP/1.1\r\nHost: x\rX: 1\r\n\r\n".to_vec(),
            BareLineEnding,
        ),
        (b"GET / HTTP/1.1\rHost: x\r\n\r\n".to_vec(), BareLineEnding),
        (b"\nGET / HTTP/1.1\r\n\r\n".to_vec(), BareLineEnding),
        // obs-fold (haproxy 2.6 replaces it with spaces; ringlb rejects)
        (get("X-A: a\r\n b"), ObsFold),
        (get("X-A: a\r\n\tb"), ObsFold),
        // header names
        (get("X-A : 1"), BadHeaderName), // haproxy 2.6: 400
        (get(": v"), BadHeaderName),     // haproxy 2.6: 400
        (get("X(A): v"), BadHeaderName), // haproxy 2.6: 400
        (get("X\"A: v"), BadHeaderName),
        (get("X\u{0}A: v"), BadHeaderName),
        (get("X\u{7f}A: v"), BadHeaderName),
        (get("Xé: v"), BadHeaderName),
        (get("X-A"), BadHeaderName),
        // header values (haproxy 2.6 forwards NUL/CTL/DEL; ringlb rejects)
        (get("X-A: a\u{0}b"), BadHeaderValue),
        (get("X-A: a\u{1}b"), BadHeaderValue),
        (get("X-A: a\u{1b}b"), BadHeaderValue),
        (get("X-A: a\u{7f}b"), BadHeaderValue),
        (get("X-A: \u{0}"), BadHeaderValue),
        // request target
        (b"GET /a#frag HTTP/1.1\r\n\r\n".to_vec(), BadTarget), // haproxy 2.6: 400
        (b"GET /a\\b HTTP/1.1\r\n\r\n".to_vec(), BadTarget),   // haproxy 2.6 accepts: stricter
        (b"GET /a\xc3\xa9 HTTP/1.1\r\n\r\n".to_vec(), BadTarget), // haproxy 2.6: 400
        (b"GET /a\x7f HTTP/1.1\r\n\r\n".to_vec(), BadStartLine),
        (b"GET /a\x01 HTTP/1.1\r\n\r\n".to_vec(), BadStartLine),
        (b"GET /a\tb HTTP/1.1\r\n\r\n".to_vec(), BadStartLine),
        (b"GET * HTTP/1.1\r\n\r\n".to_vec(), BadTarget), // haproxy 2.6 accepts: stricter
        (b"GET a HTTP/1.1\r\n\r\n".to_vec(), BadTarget),
        (b"GET http:/x HTTP/1.1\r\n\r\n".to_vec(), BadTarget),
        (b"GET 1http://x/ HTTP/1.1\r\n\r\n".to_vec(), BadTarget),
        (b"GET http:///p HTTP/1.1\r\n\r\n".to_vec(), BadTarget),
        (b"GET http://u@x/p HTTP/1.1\r\n\r\n".to_vec(), BadTarget),
        (b"CONNECT /p HTTP/1.1\r\n\r\n".to_vec(), BadTarget),
        (b"CONNECT http://x/ HTTP/1.1\r\n\r\n".to_vec(), BadTarget),
        // request line shape and versions
        (b"GET  /a HTTP/1.1\r\n\r\n".to_vec(), BadStartLine), // haproxy 2.6 accepts: stricter
        (b"GET /a  HTTP/1.1\r\n\r\n".to_vec(), BadVersion),
        (b"GET /a\r\n\r\n".to_vec(), BadStartLine), // HTTP/0.9, haproxy 2.6: 400
        (b"GET /a HTTP/1.2\r\n\r\n".to_vec(), BadVersion), // haproxy 2.6 rewrites to 1.1
        (b"GET /a HTTP/2.0\r\n\r\n".to_vec(), BadVersion),
        (b"GET /a http/1.1\r\n\r\n".to_vec(), BadVersion), // haproxy 2.6: 400
        (b"GET /a HTTP/1.1 \r\n\r\n".to_vec(), BareLineEnding), // httparse: NewLine
        (b"G(T /a HTTP/1.1\r\n\r\n".to_vec(), BadStartLine),
        (b" GET /a HTTP/1.1\r\n\r\n".to_vec(), BadStartLine),
        // Host
        (
            b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_vec(),
            DuplicateHost,
        ), // haproxy 2.6: 400
        (
            b"GET /a HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n".to_vec(),
            DuplicateHost,
        ),
        (b"GET /a HTTP/1.1\r\nHost: x y\r\n\r\n".to_vec(), BadHost), // haproxy 2.6 accepts
        (b"GET /a HTTP/1.1\r\nHost: x/y\r\n\r\n".to_vec(), BadHost),
        (b"GET /a HTTP/1.1\r\nHost: u@x\r\n\r\n".to_vec(), BadHost),
        (
            b"GET http://a/p HTTP/1.1\r\nHost: b\r\n\r\n".to_vec(),
            HostMismatch,
        ), // haproxy 2.6: 400
        (
            b"GET http://other.example:81/p?q HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            HostMismatch,
        ), // haproxy 2.6: 400
        (
            b"GET http://a:81/p HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            HostMismatch,
        ),
        (
            b"GET https://a:80/p HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            HostMismatch,
        ),
        // WebSocket without key (haproxy 2.6: 400)
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                .to_vec(),
            WebSocketWithoutKey,
        ),
    ];
    assert!(cases.len() >= 90);
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(input, want)| match parse(input) {
            Err(got) if got == *want => None,
            other => Some(format!(
                "{:?}: want {want:?}, got {:?}",
                String::from_utf8_lossy(input),
                other.map(|r| r.0)
            )),
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn error_statuses_follow_haproxy() {
    let mut head = RequestHead::default();
    let limits = Limits::default();
    let e = parse_request(
        &post("Transfer-Encoding: gzip, chunked"),
        &limits,
        &mut head,
    )
    .unwrap_err();
    assert_eq!(e.status(), 422);
    let e = parse_request(&post("Content-Length: 1, 2"), &limits, &mut head).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("content-length"));
}

#[test]
fn targets_and_hosts_accepted() {
    let cases: &[(&[u8], TargetForm)] = &[
        (b"GET /a|b HTTP/1.1\r\n\r\n", TargetForm::Origin), // haproxy 2.6 forwards | " < > ^ { }
        (b"GET /a{b}^\"<> HTTP/1.1\r\n\r\n", TargetForm::Origin),
        (b"GET /%20?x=%00 HTTP/1.1\r\n\r\n", TargetForm::Origin),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            TargetForm::Asterisk,
        ),
        (b"CONNECT x:443 HTTP/1.1\r\n\r\n", TargetForm::Authority),
        (b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n", TargetForm::Authority),
    ];
    for (input, form) in cases {
        assert_eq!(
            ok(input).target_form(),
            *form,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Absolute form: Host must match the authority, case-insensitively, default port ignored
    // (haproxy 2.6 accepts all of these).
    for input in [
        &b"GET http://x/p HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET http://X/p HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x:80/p HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x/p HTTP/1.1\r\nHost: x:80\r\n\r\n",
        b"GET https://x:443/p HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x?q HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x/p HTTP/1.1\r\n\r\n",
    ] {
        let h = ok(input);
        let TargetForm::Absolute { authority } = h.target_form() else {
            panic!("{:?}", String::from_utf8_lossy(input));
        };
        assert!(
            authority.get(input).eq_ignore_ascii_case(b"x")
                || authority.get(input).starts_with(b"x:")
        );
    }
    // Host values
    for host in [
        "",
        "x",
        "x:8080",
        "[::1]:80",
        "a-b.c_d~e",
        "xn--bcher-kva.example",
    ] {
        let input = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let h = ok(input.as_bytes());
        assert_eq!(h.host().unwrap().get(input.as_bytes()), host.as_bytes());
    }
}

#[test]
fn connection_expect_upgrade() {
    let buf = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let h = ok(buf);
    assert!(h.is_upgrade());
    assert!(h.connection().upgrade && h.connection().keep_alive && !h.connection().close);
    assert_eq!(h.upgrade().unwrap().get(buf), b"websocket");
    let h = ok(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n");
    assert!(
        !h.is_upgrade(),
        "Upgrade without Connection: upgrade is not an upgrade"
    );
    let h = ok(b"GET / HTTP/1.1\r\nConnection: X-Foo\r\nConnection: close\r\n\r\n");
    assert!(h.connection().other && h.connection().close);
    let h = ok(&post("Expect: 100-Continue\r\nContent-Length: 2"));
    assert!(h.expect_continue());
    let h = ok(&post("Expect: something-else"));
    assert!(!h.expect_continue());
    let h = ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert!(!h.expect_continue(), "Expect is ignored in HTTP/1.0");
    let buf = b"GET / HTTP/1.1\r\nCookie: a=1\r\nX: y\r\ncookie: b=2\r\n\r\n";
    let h = ok(buf);
    let cookies: Vec<&[u8]> = h
        .headers_named(buf, b"COOKIE")
        .map(|f| f.value.get(buf))
        .collect();
    assert_eq!(cookies, [&b"a=1"[..], b"b=2"]);
}

#[test]
fn limits() {
    // haproxy 2.6 with tune.http.maxhdr 101: 100 fields pass, 101 get 400.
    let fields = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\n");
        for i in 0..n {
            s.push_str(&format!("X-H{i}: v\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    };
    assert_eq!(ok(&fields(100)).headers().len(), 100);
    assert_eq!(err(&fields(101)), ErrorKind::TooManyHeaders);
    // Raised maxhdr beyond the stack scratch array still works.
    let limits = Limits {
        max_headers: 1000,
        max_head_bytes: 64 * 1024,
    };
    let mut head = RequestHead::with_limits(&limits);
    let big = fields(500);
    assert!(matches!(
        parse_request(&big, &limits, &mut head),
        Ok(Parsed::Complete { .. })
    ));
    assert_eq!(head.headers().len(), 500);
    assert_eq!(
        parse_request(&fields(1000), &limits, &mut head)
            .unwrap_err()
            .kind,
        ErrorKind::TooManyHeaders
    );
    // Head size: (16384 - 1024) bytes at most.
    let pad = |n: usize| format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(n)).into_bytes();
    let fixed = pad(0).len();
    assert!(matches!(
        parse(&pad(15360 - fixed)),
        Ok((Parsed::Complete { .. }, _))
    ));
    assert_eq!(err(&pad(15361 - fixed)), ErrorKind::HeadTooLarge);
    // An incomplete head that already fills the limit is an error, not Partial.
    let partial = &pad(20000)[..15360];
    assert_eq!(err(partial), ErrorKind::HeadTooLarge);
    assert_eq!(parse(&partial[..15359]).unwrap().0, Parsed::Partial);
}

/// (request, path, query)
type PathCase = (&'static [u8], &'static [u8], Option<&'static [u8]>);

#[test]
fn path_and_query() {
    let cases: &[PathCase] = &[
        (b"GET /a/b?x=1&y HTTP/1.1\r\n\r\n", b"/a/b", Some(b"x=1&y")),
        (b"GET /a/b HTTP/1.1\r\n\r\n", b"/a/b", None),
        (b"GET /? HTTP/1.1\r\n\r\n", b"/", Some(b"")),
        (
            b"GET http://x/p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"/p",
            Some(b"q=1"),
        ),
        (b"GET http://x HTTP/1.1\r\nHost: x\r\n\r\n", b"", None),
        (
            b"GET http://x?q HTTP/1.1\r\nHost: x\r\n\r\n",
            b"",
            Some(b"q"),
        ),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", b"", None),
        (b"CONNECT x:443 HTTP/1.1\r\n\r\n", b"", None),
    ];
    for (input, path, query) in cases {
        let h = ok(input);
        assert_eq!(
            h.path().get(input),
            *path,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(
            h.query().map(|q| q.get(input)),
            *query,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}
