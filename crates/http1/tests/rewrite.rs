//! Head rewriting, checked against what haproxy 2.6.12 actually forwarded.
//!
//! Every vector below was observed from haproxy 2.6 on loopback: the client bytes were sent
//! through `haproxy` (frontend/backend, the option named in the table) to a raw TCP origin that
//! recorded what it received (requests), or the origin answered the given bytes and the client
//! recorded what it received (responses). Only the head is compared.

use ringlb_http1::{
    client_keeps_alive, parse_request, parse_response, set_last_header, without_unrestricted_names,
    write_request_head, write_response_head, ConnMode, ForwardedFor, Limits, Method, RequestEdits,
    RequestHead, ResponseEdits, ResponseHead,
};

const XFF: ForwardedFor<'static> = ForwardedFor {
    header: b"X-Forwarded-For",
    client_ip: b"127.0.0.1",
    if_none: false,
};

fn forward_request(mode: ConnMode, ff: Option<ForwardedFor<'_>>, input: &[u8]) -> Vec<u8> {
    let mut head = RequestHead::default();
    must(parse_request(input, &Limits::default(), &mut head));
    let mut out = Vec::new();
    let edits = RequestEdits {
        close_server: mode.closes_server_side(),
        forwarded_for: ff,
        original_to: None,
    };
    write_request_head(&head, input, &mut out, &edits);
    // What we write must itself parse, to the same framing.
    let mut again = RequestHead::default();
    must(parse_request(&out, &Limits::default(), &mut again));
    assert_eq!(again.framing(), head.framing());
    assert_eq!(again.head_len(), out.len());
    out
}

/// `r.unwrap()` for helpers (clippy allows unwrap only inside `#[test]` functions).
fn must<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const WS_KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[test]
fn requests_keep_alive_mode() {
    let hop = "GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\n\r\n";
    let ws = format!("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n{WS_KEY}\r\n");
    let ws10 = format!(
        "GET /ws HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{WS_KEY}\r\n"
    );
    let cases: Vec<(String, &str)> = vec![
        ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\n\r\n"),
        (hop.into(), "GET /a HTTP/1.1\r\nhost: x\r\nconnection: X-Foo\r\nx-foo: 1\r\nkeep-alive: timeout=5\r\nproxy-connection: keep-alive\r\nte: trailers\r\nupgrade: h2c\r\n\r\n"),
        ("GET /a HTTP/1.0\r\nHost: x\r\n\r\n".into(), "GET /a HTTP/1.0\r\nhost: x\r\nconnection: keep-alive\r\n\r\n"),
        ("GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n".into(), "GET /a HTTP/1.0\r\nhost: x\r\nconnection: keep-alive\r\n\r\n"),
        ("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\nconnection: X-Foo\r\nx-foo: 1\r\n\r\n"),
        ("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".into(), "POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"),
        ("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n".into(), "POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n"),
        ("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n".into(), "POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n"),
        ("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  chunked\r\n\r\n".into(), "POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"),
        ("POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".into(), "POST /a HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"),
        ("POST /a HTTP/1.0\r\nHost: x\r\n\r\n".into(), "POST /a HTTP/1.0\r\nhost: x\r\nconnection: keep-alive\r\n\r\n"),
        ("GET /a HTTP/1.1\r\nhOsT: x\r\nX-MiXed: v  \r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\nx-mixed: v\r\n\r\n"),
        ("GET /a HTTP/1.1\r\nHost: x\r\nX-A:\ta\tb\t\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\nx-a: a\tb\r\n\r\n"),
        ("\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("GET http://x/p HTTP/1.1\r\nHost: x\r\n\r\n".into(), "GET http://x/p HTTP/1.1\r\nhost: x\r\n\r\n"),
        ("GET /a|b HTTP/1.1\r\nHost: x\r\n\r\n".into(), "GET /a|b HTTP/1.1\r\nhost: x\r\n\r\n"),
        (ws, "GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
        (ws10, "GET /ws HTTP/1.0\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
        ("GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n".into(),
         "GET /a HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n"),
    ];
    for (input, want) in &cases {
        let got = forward_request(ConnMode::KeepAlive, None, input.as_bytes());
        assert_eq!(show(&got), *want, "input {input:?}");
    }
}

#[test]
fn requests_server_close_and_httpclose() {
    let ws = format!("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n{WS_KEY}\r\n");
    let cases: Vec<(String, &str)> = vec![
        ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        ("GET /a HTTP/1.0\r\nHost: x\r\n\r\n".into(), "GET /a HTTP/1.0\r\nhost: x\r\n\r\n"),
        ("GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n".into(), "GET /a HTTP/1.0\r\nhost: x\r\n\r\n"),
        ("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        ("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\nconnection: X-Foo\r\nx-foo: 1\r\nconnection: close\r\n\r\n"),
        ("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".into(), "POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"),
        ("GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n".into(), "GET /a HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 1.2.3.4\r\nconnection: close\r\n\r\n"),
        (ws, "GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
    ];
    for mode in [ConnMode::ServerClose, ConnMode::Close] {
        for (input, want) in &cases {
            let got = forward_request(mode, None, input.as_bytes());
            assert_eq!(show(&got), *want, "{mode:?} input {input:?}");
        }
    }
}

#[test]
fn requests_forwardfor() {
    let existing =
        b"GET /a HTTP/1.1\r\nHost: x\r\nx-forwarded-for: 9.9.9.9\r\nX-Client: 8.8.8.8\r\n\r\n";
    let client = ForwardedFor {
        header: b"X-Client",
        ..XFF
    };
    let if_none = ForwardedFor {
        if_none: true,
        ..XFF
    };
    let cases: &[(ConnMode, ForwardedFor<'_>, &[u8], &str)] = &[
        (ConnMode::KeepAlive, XFF, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 127.0.0.1\r\n\r\n"),
        (ConnMode::KeepAlive, XFF, b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n", "GET /a HTTP/1.0\r\nhost: x\r\nx-forwarded-for: 127.0.0.1\r\nconnection: keep-alive\r\n\r\n"),
        (ConnMode::KeepAlive, XFF, b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", "GET /a HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 1.2.3.4\r\nx-forwarded-for: 127.0.0.1\r\n\r\n"),
        (ConnMode::KeepAlive, XFF, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nx-forwarded-for: 127.0.0.1\r\n\r\n"),
        (ConnMode::KeepAlive, if_none, existing, "GET /a HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 9.9.9.9\r\nx-client: 8.8.8.8\r\n\r\n"),
        (ConnMode::KeepAlive, if_none, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n\r\n", "GET /a HTTP/1.1\r\nhost: x\r\nconnection: X-Foo\r\nx-foo: 1\r\nx-forwarded-for: 127.0.0.1\r\n\r\n"),
        (ConnMode::KeepAlive, client, existing, "GET /a HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 9.9.9.9\r\nx-client: 8.8.8.8\r\nx-client: 127.0.0.1\r\n\r\n"),
    ];
    for (mode, ff, input, want) in cases {
        let got = forward_request(*mode, Some(*ff), input);
        assert_eq!(show(&got), *want, "input {:?}", show(input));
    }
    // The upgrade request keeps its Connection header and gets the XFF line.
    let ws = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{WS_KEY}\r\n"
    );
    let got = forward_request(ConnMode::KeepAlive, Some(if_none), ws.as_bytes());
    assert_eq!(show(&got), "GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-forwarded-for: 127.0.0.1\r\n\r\n");
}

const REQ11: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const REQ10: &[u8] = b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n";
const REQ10K: &[u8] = b"GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";
const HEAD11: &[u8] = b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n";

fn forward_response(mode: ConnMode, request: &[u8], response: &[u8]) -> (String, bool) {
    let mut req = RequestHead::default();
    must(parse_request(request, &Limits::default(), &mut req));
    let mut resp = ResponseHead::default();
    must(parse_response(
        response,
        &Limits::default(),
        req.method(),
        &mut resp,
    ));
    let keep = client_keeps_alive(&req, &resp, mode);
    assert_eq!(keep, client_keeps_alive(req.summary(), &resp, mode));
    let edits = ResponseEdits {
        close_client: !keep,
        request_version: req.version(),
        added: b"",
    };
    let mut out = Vec::new();
    write_response_head(&resp, response, &mut out, &edits);
    let mut again = ResponseHead::default();
    must(parse_response(
        &out,
        &Limits::default(),
        req.method(),
        &mut again,
    ));
    assert_eq!(again.framing(), resp.framing());
    (show(&out), keep)
}

/// (mode, request, response, head sent to the client, client connection kept)
type ResponseCase = (ConnMode, &'static [u8], &'static [u8], String, bool);

#[test]
fn responses_by_mode_and_client_version() {
    let r10_cl: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n";
    let r10_ka: &[u8] = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n";
    let r11_close: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n";
    let r11_hop: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\nContent-Length: 2\r\n\r\n";
    let r11_noclen: &[u8] = b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n";
    let r10_noclen: &[u8] = b"HTTP/1.0 200 OK\r\n\r\n";
    let r11_clte: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n";
    let r204: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    let r304: &[u8] = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
    let r100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    use ConnMode::*;
    let hop_out = "HTTP/1.1 200 OK\r\nconnection: X-Foo\r\nx-foo: 1\r\nkeep-alive: timeout=5\r\nproxy-connection: x\r\ncontent-length: 2\r\n";
    let cases: Vec<ResponseCase> = vec![
        (
            KeepAlive,
            REQ11,
            r10_cl,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ10,
            r10_cl,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n".into(),
            false,
        ),
        (
            KeepAlive,
            REQ10K,
            r10_cl,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ11,
            r10_ka,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ10,
            r10_ka,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n".into(),
            false,
        ),
        (
            KeepAlive,
            REQ11,
            r11_close,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ10,
            r11_close,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            KeepAlive,
            REQ10K,
            r11_close,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n".into(),
            true,
        ),
        (KeepAlive, REQ11, r11_hop, format!("{hop_out}\r\n"), true),
        (
            KeepAlive,
            REQ10,
            r11_hop,
            format!("{hop_out}connection: close\r\n\r\n"),
            false,
        ),
        (
            KeepAlive,
            REQ10K,
            r11_hop,
            format!("{hop_out}connection: keep-alive\r\n\r\n"),
            true,
        ),
        (
            KeepAlive,
            REQ11,
            r11_noclen,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            KeepAlive,
            REQ10K,
            r11_noclen,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            KeepAlive,
            HEAD11,
            r11_noclen,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ11,
            r10_noclen,
            "HTTP/1.0 200 OK\r\n\r\n".into(),
            false,
        ),
        (
            KeepAlive,
            REQ11,
            r11_clte,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ10,
            r11_clte,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            KeepAlive,
            REQ11,
            r204,
            "HTTP/1.1 204 No Content\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ10,
            r204,
            "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            KeepAlive,
            REQ10K,
            r204,
            "HTTP/1.1 204 No Content\r\nconnection: keep-alive\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ11,
            r304,
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n".into(),
            true,
        ),
        (
            KeepAlive,
            REQ10,
            r100,
            "HTTP/1.1 100 Continue\r\n\r\n".into(),
            false,
        ),
        (
            ServerClose,
            REQ11,
            r10_cl,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n".into(),
            true,
        ),
        (
            ServerClose,
            REQ10,
            r11_close,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            ServerClose,
            REQ11,
            r11_noclen,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            Close,
            REQ11,
            r10_cl,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n".into(),
            false,
        ),
        (
            Close,
            REQ10K,
            r10_cl,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n".into(),
            false,
        ),
        (
            Close,
            REQ11,
            r11_close,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            Close,
            REQ10K,
            r11_close,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n".into(),
            false,
        ),
        (
            Close,
            REQ11,
            r11_hop,
            format!("{hop_out}connection: close\r\n\r\n"),
            false,
        ),
    ];
    for (mode, req, resp, want, keep) in &cases {
        let (got, got_keep) = forward_response(*mode, req, resp);
        assert_eq!(got, *want, "{mode:?} {:?} -> {:?}", show(req), show(resp));
        assert_eq!(
            got_keep,
            *keep,
            "{mode:?} {:?} -> {:?}",
            show(req),
            show(resp)
        );
    }
}

#[test]
fn switching_protocols_is_forwarded_untouched_but_normalised() {
    let ws = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{WS_KEY}\r\n"
    );
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    for mode in [ConnMode::KeepAlive, ConnMode::ServerClose, ConnMode::Close] {
        let (got, _) = forward_response(mode, ws.as_bytes(), resp);
        assert_eq!(got, "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    }
}

#[test]
fn default_ports_are_removed_like_haproxy() {
    // Observed from haproxy 2.6.12 (keep-alive mode): client bytes -> what the origin received.
    let cases: &[(&[u8], &str)] = &[
        (
            b"GET /a HTTP/1.1\r\nHost: x:80\r\n\r\n",
            "GET /a HTTP/1.1\r\nhost: x:80\r\n\r\n",
        ),
        (
            b"GET http://x:80/a HTTP/1.1\r\nHost: x:80\r\n\r\n",
            "GET http://x/a HTTP/1.1\r\nhost: x\r\n\r\n",
        ),
        (
            b"GET http://x:80/a HTTP/1.1\r\n\r\n",
            "GET http://x/a HTTP/1.1\r\n\r\n",
        ),
        (
            b"GET http://X/a HTTP/1.1\r\nHost: X\r\n\r\n",
            "GET http://X/a HTTP/1.1\r\nhost: X\r\n\r\n",
        ),
        (
            b"GET https://x:443/a HTTP/1.1\r\nHost: x:443\r\n\r\n",
            "GET https://x/a HTTP/1.1\r\nhost: x\r\n\r\n",
        ),
        (
            b"GET http://x:8080/a HTTP/1.1\r\nHost: x:8080\r\n\r\n",
            "GET http://x:8080/a HTTP/1.1\r\nhost: x:8080\r\n\r\n",
        ),
        (
            b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\nhost: x\r\n\r\n",
        ),
        (
            b"CONNECT x:8443 HTTP/1.1\r\nHost: x:8443\r\n\r\n",
            "CONNECT x:8443 HTTP/1.1\r\nhost: x:8443\r\n\r\n",
        ),
        (
            b"CONNECT x:443 HTTP/1.1\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\n\r\n",
        ),
        (
            b"GET http://x HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET http://x HTTP/1.1\r\nhost: x\r\n\r\n",
        ),
    ];
    for (input, want) in cases {
        let got = forward_request(ConnMode::KeepAlive, None, input);
        assert_eq!(show(&got), *want, "input {:?}", show(input));
    }
    // Not observed, same rule: the port is only removed when it is exactly the default one.
    let got = forward_request(
        ConnMode::KeepAlive,
        None,
        b"GET http://[::1]:80?q HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
    );
    assert_eq!(
        show(&got),
        "GET http://[::1]?q HTTP/1.1\r\nhost: [::1]\r\n\r\n"
    );
}

#[test]
fn ringlb_normalisations_beyond_haproxy() {
    // haproxy 2.6 forwards `content-length: 002`; ringlb writes the merged number.
    let got = forward_request(
        ConnMode::KeepAlive,
        None,
        b"POST / HTTP/1.1\r\nContent-Length: 002\r\n\r\n",
    );
    assert_eq!(show(&got), "POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n");
    let got = forward_request(
        ConnMode::KeepAlive,
        None,
        b"POST / HTTP/1.1\r\nContent-Length: 000\r\n\r\n",
    );
    assert_eq!(show(&got), "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    // An empty reason phrase keeps the SP the grammar requires.
    let (got, _) = forward_response(
        ConnMode::KeepAlive,
        REQ11,
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(got, "HTTP/1.1 200 \r\ncontent-length: 0\r\n\r\n");
    // `out` is appended to, not cleared.
    let mut head = RequestHead::default();
    parse_request(REQ11, &Limits::default(), &mut head).unwrap();
    let mut out = b"prefix".to_vec();
    write_request_head(&head, REQ11, &mut out, &RequestEdits::default());
    assert!(out.starts_with(b"prefixGET /a HTTP/1.1\r\n"));
    assert_eq!(head.method(), Method::Get);
}

/// `http-send-name-header X-Srv` with `option forwardfor` and `option http-server-close`:
/// haproxy 2.6.12 removed the client's `X-Srv` and sent its own line last, after
/// `connection: close`. A retry to another server replaces the line.
#[test]
fn send_name_header_goes_last_and_replaces_the_clients() {
    let input = b"GET /p HTTP/1.1\r\nHost: 127.0.0.1:39601\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Srv: fake\r\nX-A: 1\r\n\r\n";
    let mut out = forward_request(ConnMode::ServerClose, Some(XFF), input);
    set_last_header(&mut out, b"x-srv", b"web1");
    let haproxy = b"GET /p HTTP/1.1\r\nhost: 127.0.0.1:39601\r\nuser-agent: curl/7.88.1\r\naccept: */*\r\nx-a: 1\r\nx-forwarded-for: 127.0.0.1\r\nconnection: close\r\nx-srv: web1\r\n\r\n";
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(haproxy)
    );
    set_last_header(&mut out, b"x-srv", b"web2");
    let retried = String::from_utf8_lossy(&out).replace("web2", "web1");
    assert_eq!(retried, String::from_utf8_lossy(haproxy));
    // A header whose name only starts with the name stays.
    let mut out = b"GET / HTTP/1.1\r\nx-srv-extra: 1\r\n\r\n".to_vec();
    set_last_header(&mut out, b"x-srv", b"s");
    assert_eq!(out, b"GET / HTTP/1.1\r\nx-srv-extra: 1\r\nx-srv: s\r\n\r\n");
}

/// `option http-restrict-req-hdr-names delete`: haproxy 2.6 forwarded only `x-good` of
/// `X_Bad`, `X.dot` and `X-Good` (recorded with its /echo origin).
#[test]
fn unrestricted_header_names_are_dropped() {
    let head = b"GET /echo HTTP/1.1\r\nHost: a\r\nX_Bad: 1\r\nX.dot: 3\r\nX-Good: 2\r\n\r\n";
    let out = without_unrestricted_names(head).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-Good: 2\r\n\r\n"
    );
    assert!(
        without_unrestricted_names(b"GET / HTTP/1.1\r\nHost: a\r\nX-A1: b_c\r\n\r\n").is_none()
    );
}
