//! Response head parsing and framing given the request method.

use ringlb_http1::{
    parse_response, BodyFraming, ErrorKind, Limits, Method, Parsed, ResponseHead, Side, Version,
};

fn parse(input: &[u8], method: Method) -> Result<ResponseHead, ErrorKind> {
    let mut head = ResponseHead::with_limits(&Limits::default());
    match parse_response(input, &Limits::default(), method, &mut head) {
        Ok(Parsed::Complete { head_len }) => {
            assert_eq!(head_len, head.head_len());
            Ok(head)
        }
        Ok(Parsed::Partial) => panic!("partial: {:?}", String::from_utf8_lossy(input)),
        Err(e) => {
            assert_eq!(e.side, Side::Server);
            assert_eq!(e.status(), 502);
            Err(e.kind)
        }
    }
}

#[test]
fn status_reason_version() {
    let buf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";
    let h = parse(buf, Method::Get).unwrap();
    assert_eq!(h.status(), 404);
    assert_eq!(h.reason().get(buf), b"Not Found");
    assert_eq!(h.version(), Version::Http11);
    assert_eq!(h.framing(), BodyFraming::ContentLength(3));
    assert!(h.server_keep_alive());
    let h = parse(b"HTTP/1.0 200\r\n\r\n", Method::Get).unwrap();
    assert!(h.reason().is_empty());
    assert_eq!(h.framing(), BodyFraming::UntilClose);
    assert!(!h.server_keep_alive());
}

#[test]
fn framing_by_method_and_status() {
    let cl = b"Content-Length: 10\r\n";
    let te = b"Transfer-Encoding: chunked\r\n";
    let cases: &[(Method, u16, &[u8], BodyFraming)] = &[
        (Method::Get, 200, cl, BodyFraming::ContentLength(10)),
        (Method::Head, 200, cl, BodyFraming::None),
        (Method::Head, 200, te, BodyFraming::None),
        (Method::Get, 204, cl, BodyFraming::None),
        (Method::Get, 304, cl, BodyFraming::None),
        (Method::Get, 100, b"", BodyFraming::None),
        (
            Method::Get,
            101,
            b"Connection: upgrade\r\nUpgrade: websocket\r\n",
            BodyFraming::None,
        ),
        (Method::Get, 103, b"Link: </a>\r\n", BodyFraming::None),
        (Method::Connect, 200, b"", BodyFraming::None),
        (Method::Connect, 407, cl, BodyFraming::ContentLength(10)),
        (Method::Get, 200, te, BodyFraming::Chunked),
        (Method::Get, 200, b"", BodyFraming::UntilClose),
        (
            Method::Post,
            500,
            b"Content-Length: 0\r\n",
            BodyFraming::ContentLength(0),
        ),
    ];
    for (method, status, fields, framing) in cases {
        let mut buf = format!("HTTP/1.1 {status} X\r\n").into_bytes();
        buf.extend_from_slice(fields);
        buf.extend_from_slice(b"\r\n");
        let h = parse(&buf, *method).unwrap();
        assert_eq!(
            h.framing(),
            *framing,
            "{method:?} {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
}

#[test]
fn interim_upgrade_and_keep_alive() {
    let h = parse(b"HTTP/1.1 100 Continue\r\n\r\n", Method::Post).unwrap();
    assert!(h.is_interim() && !h.is_switching_protocols());
    let buf =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let h = parse(buf, Method::Get).unwrap();
    assert!(h.is_switching_protocols() && !h.is_interim());
    assert!(h.connection().upgrade);
    assert_eq!(h.upgrade().unwrap().get(buf), b"websocket");
    let h = parse(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
    )
    .unwrap();
    assert!(!h.server_keep_alive());
    let h = parse(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
    )
    .unwrap();
    assert!(h.server_keep_alive());
    let h = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::Get,
    )
    .unwrap();
    assert_eq!(h.framing(), BodyFraming::Chunked);
    assert!(h.had_content_length_and_chunked());
    assert!(!h.server_keep_alive());
}

#[test]
fn invalid_responses_are_502() {
    use ErrorKind::*;
    let cases: &[(&[u8], ErrorKind)] = &[
        (
            b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
            BareLineEnding,
        ),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", ObsFold),
        (b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", BadHeaderName),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", BadHeaderValue),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ConflictingContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            BadContentLength,
        ),
        (
            b"HTTP/1.1 204 OK\r\nContent-Length: x\r\n\r\n",
            BadContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            TransferEncodingInHttp10,
        ),
        // haproxy 2.6.12 answers 502 to these too.
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            UnsupportedTransferCoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n",
            BadTransferEncoding,
        ),
        (b"HTTP/1.1 200 O\rK\r\n\r\n", BadStatus), // httparse: bad reason
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", BareLineEnding),
        (b"HTTP/1.1 200 OK\r\nX\r: a\r\n\r\n", BareLineEnding),
        (b"HTTP/1.1 200 OK\r\n: a\r\n\r\n", BadHeaderName),
        (b"HTTP/1.1 200 OK\r\n\tX: a\r\n\r\n", ObsFold),
        (b"HTTP/1.1 099 X\r\n\r\n", BadStatus),
        (b"HTTP/1.1 600 X\r\n\r\n", BadStatus),
        (b"HTTP/1.1 20 X\r\n\r\n", BadStatus),
        (b"HTTP/1.1 2000 X\r\n\r\n", BadStatus),
        (b"HTTP/2.0 200 OK\r\n\r\n", BadVersion),
        (b"garbage\r\n\r\n", BadVersion),
        (b"HTTP/1.1 200 OK\r\nX\r\n\r\n", BadHeaderName),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(input, want)| {
            let got = parse(input, Method::Get).map(|h| h.status());
            (got != Err(*want)).then(|| {
                format!(
                    "{:?}: want {want:?}, got {got:?}",
                    String::from_utf8_lossy(input)
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn partial_and_too_large() {
    let mut head = ResponseHead::default();
    let limits = Limits::default();
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\n", &limits, Method::Get, &mut head),
        Ok(Parsed::Partial)
    );
    // Junk is recognised before the head is complete.
    for junk in [
        &b"ok"[..],
        b"h",
        b"\r\nX",
        b"\nHTTP/1.1 200 OK\r\n",
        b"<html>",
    ] {
        let e = parse_response(junk, &limits, Method::Get, &mut head).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadVersion, "{junk:?}");
    }
    for start in [
        &b""[..],
        b"H",
        b"HTT",
        b"HTTP/",
        b"HTTP/ ",
        b"HTTP/1.1 2",
        b"\r",
        b"\r\nHT",
    ] {
        assert_eq!(
            parse_response(start, &limits, Method::Get, &mut head),
            Ok(Parsed::Partial)
        );
    }
    let big = vec![b'a'; 20000];
    let e = parse_response(&big, &limits, Method::Get, &mut head).unwrap_err();
    assert_eq!((e.kind, e.status()), (ErrorKind::BadVersion, 502));
    let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    big.resize(20000, b'a');
    let e = parse_response(&big, &limits, Method::Get, &mut head).unwrap_err();
    assert_eq!((e.kind, e.status()), (ErrorKind::HeadTooLarge, 502));
}

#[test]
fn tunnels_and_header_lookup() {
    let buf = b"HTTP/1.1 200 Connection established\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
    let h = parse(buf, Method::Connect).unwrap();
    assert!(h.is_tunnel() && !h.server_keep_alive());
    let values: Vec<&[u8]> = h
        .headers_named(buf, b"X-A")
        .map(|f| f.value.get(buf))
        .collect();
    assert_eq!(values, [&b"1"[..], b"2"]);
    let h = parse(buf, Method::Get).unwrap();
    assert!(!h.is_tunnel());
    assert_eq!(h.framing(), BodyFraming::UntilClose);
    let h = parse(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        Method::Get,
    )
    .unwrap();
    assert!(h.is_tunnel() && !h.server_keep_alive());
    let h = parse(
        b"HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n",
        Method::Connect,
    )
    .unwrap();
    assert!(!h.is_tunnel() && h.server_keep_alive());
}
