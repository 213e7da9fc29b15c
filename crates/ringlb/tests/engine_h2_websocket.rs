//! WebSocket over HTTP/2 from clients (RFC 8441) end to end: a raw-frame h2 client does the
//! extended CONNECT against the real `ringlb` binary, which upgrades over HTTP/1.1 to
//! ringlb-origin's `/ws` echo, then tunnels WebSocket frames both ways in DATA frames.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ringlb_testkit::h2raw::*;
use ringlb_testkit::ws::{client_frame, OP_BINARY, OP_CLOSE, OP_TEXT};
use ringlb_testkit::{free_addr, write_config, Origins, Ringlb, TempDir};

const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 5s\n";

/// The proxy (`proto h2`) in front of one origin; `global` goes in a global section.
fn proxy(
    dir: &TempDir,
    global: &str,
) -> (std::net::SocketAddr, ringlb_testkit::ChildGuard, Origins) {
    let origins = Origins::start(1);
    let front = free_addr();
    let cfg = format!(
        "global\n{global}{DEFAULTS}frontend fe\n    bind {front} proto h2\n    default_backend be\nbackend be\n    server s1 {}\n",
        origins.addrs()[0]
    );
    let path = write_config(dir, &cfg);
    let guard = Ringlb::start(&path, &[front]);
    (front, guard, origins)
}

/// The value of `id` in the server's first SETTINGS frame (`None` if absent).
fn server_setting(c: &mut Raw, id: u16) -> Option<u32> {
    loop {
        let (kind, flags, _, payload) = c.next_frame().expect("server SETTINGS");
        if kind == SETTINGS && flags & 1 == 0 {
            return payload.chunks_exact(6).find_map(|s| {
                (u16::from_be_bytes([s[0], s[1]]) == id)
                    .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
            });
        }
    }
}

/// Extended CONNECT on `stream` for `path` (HEADERS without END_STREAM).
fn extended_connect(c: &mut Raw, stream: u32, path: &str) {
    let block = hpack(&[
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "h2.test"),
        ("sec-websocket-version", "13"),
    ]);
    c.send(&frame(HEADERS, END_HEADERS, stream, &block))
        .unwrap();
}

/// Gives the proxy a large window on the connection and on `stream`, once open (the raw
/// client never sends WINDOW_UPDATE by itself).
fn open_windows(c: &mut Raw, stream: u32) {
    let inc = (8u32 << 20).to_be_bytes();
    c.send(&frame(WINDOW_UPDATE, 0, 0, &inc)).unwrap();
    c.send(&frame(WINDOW_UPDATE, 0, stream, &inc)).unwrap();
}

/// Frames on `stream` until its response HEADERS.
fn response_headers(c: &mut Raw, stream: u32) -> (H2Frame, Vec<H2Frame>) {
    let mut seen = Vec::new();
    while let Some(f) = c.next_frame() {
        if f.2 == stream && (f.0 == HEADERS || f.0 == RST_STREAM) {
            return (f, seen);
        }
        seen.push(f);
    }
    panic!("no response on stream {stream}: {seen:?}");
}

/// One unmasked WebSocket frame from the DATA of `stream`: (fin+opcode byte, payload).
struct WsReader {
    buf: Vec<u8>,
    ended: bool,
}

impl WsReader {
    fn frame(&mut self, c: &mut Raw, stream: u32) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((len, at)) = Self::length(&self.buf) {
                if self.buf.len() >= at + len {
                    let b0 = self.buf[0];
                    assert_eq!(self.buf[1] & 0x80, 0, "server frames are not masked");
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((b0, payload));
                }
            }
            if self.ended {
                return None;
            }
            let f = c.next_frame()?;
            if f.2 != stream {
                continue;
            }
            match f.0 {
                DATA => {
                    self.buf.extend_from_slice(&f.3);
                    self.ended = f.1 & END_STREAM != 0;
                }
                RST_STREAM => return None,
                _ => {}
            }
        }
    }

    fn length(b: &[u8]) -> Option<(usize, usize)> {
        let l = *b.get(1)? & 0x7f;
        match l {
            126 => Some((usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])), 4)),
            127 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b.get(2..10)?);
                Some((u64::from_be_bytes(a) as usize, 10))
            }
            n => Some((usize::from(n), 2)),
        }
    }
}

/// Sends `bytes` as DATA on `stream` in frames of at most 16 KiB.
fn send_data(c: &mut Raw, stream: u32, bytes: &[u8], end: bool) {
    let chunks: Vec<&[u8]> = bytes.chunks(16_384).collect();
    for (i, ch) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let flags = if end && last { END_STREAM } else { 0 };
        c.send(&frame(DATA, flags, stream, ch)).unwrap();
    }
    if chunks.is_empty() {
        c.send(&frame(DATA, if end { END_STREAM } else { 0 }, stream, &[]))
            .unwrap();
    }
}

/// The DATA of `stream` as text (status codes other than the static table's are Huffman
/// coded in HEADERS; the bodies here name them).
fn body_of(frames: &[H2Frame], stream: u32) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter(|f| f.0 == DATA && f.2 == stream)
        .flat_map(|f| f.3.clone())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn extended_connect_tunnels_websocket_frames_to_an_http1_origin() {
    let dir = TempDir::new("h2ws-echo");
    let (front, _proxy, _origins) = proxy(&dir, "");
    let mut c = Raw::connect(front);
    assert_eq!(
        server_setting(&mut c, SETTINGS_ENABLE_CONNECT_PROTOCOL),
        Some(1),
        "the proxy announces RFC 8441"
    );
    extended_connect(&mut c, 1, "/ws");
    open_windows(&mut c, 1);
    let (head, _) = response_headers(&mut c, 1);
    assert_eq!(head.0, HEADERS, "{head:?}");
    assert_eq!(
        status_of(std::slice::from_ref(&head), 1),
        Some(0x88),
        "200: {head:?}"
    );
    assert_eq!(head.1 & END_STREAM, 0, "the tunnel stays open");
    let mut rd = WsReader {
        buf: Vec::new(),
        ended: false,
    };
    // Text, then a 40 KB binary message split over several DATA frames, echoed intact.
    send_data(
        &mut c,
        1,
        &client_frame(true, OP_TEXT, [1, 2, 3, 4], b"hello over h2"),
        false,
    );
    assert_eq!(
        rd.frame(&mut c, 1),
        Some((0x80 | OP_TEXT, b"hello over h2".to_vec()))
    );
    let big: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    send_data(
        &mut c,
        1,
        &client_frame(true, OP_BINARY, [9, 8, 7, 6], &big),
        false,
    );
    let (b0, echoed) = rd.frame(&mut c, 1).expect("binary echo");
    assert_eq!((b0, echoed.len()), (0x80 | OP_BINARY, big.len()));
    assert!(echoed == big, "binary payload differs");
    // Close: the origin answers with close and closes; the stream ends cleanly.
    send_data(
        &mut c,
        1,
        &client_frame(true, OP_CLOSE, [5, 5, 5, 5], &[0x03, 0xe8]),
        true,
    );
    assert_eq!(
        rd.frame(&mut c, 1),
        Some((0x80 | OP_CLOSE, vec![0x03, 0xe8]))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rd.ended && Instant::now() < deadline {
        match c.next_frame() {
            Some((DATA, flags, 1, _)) => rd.ended = flags & END_STREAM != 0,
            Some((RST_STREAM, _, 1, p)) => panic!("stream reset: {p:?}"),
            Some(_) => {}
            None => break,
        }
    }
    assert!(rd.ended, "END_STREAM after the origin closed");
    // The connection still serves ordinary requests afterwards.
    c.send(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &hpack(&get_fields("/", &[])),
    ))
    .unwrap();
    let frames = c.until_end(3);
    assert_eq!(status_of(&frames, 3), Some(0x88), "{frames:?}");
}

#[test]
fn refused_or_ignored_upgrades_are_not_tunnels() {
    let dir = TempDir::new("h2ws-refused");
    let (front, _proxy, _origins) = proxy(&dir, "");
    let mut c = Raw::connect(front);
    // The origin's `/status/403` refuses: the client gets the 403 itself.
    extended_connect(&mut c, 1, "/status/403");
    let frames = c.until_end(1);
    assert!(
        frames.iter().any(|f| f.0 == HEADERS && f.2 == 1),
        "{frames:?}"
    );
    assert_eq!(
        body_of(&frames, 1),
        "status 403\n",
        "403 relayed: {frames:?}"
    );
    // `/` ignores the Upgrade and answers 200: that must not open a tunnel (502).
    extended_connect(&mut c, 3, "/");
    let frames = c.until_end(3);
    assert!(
        body_of(&frames, 3).contains("502 Bad Gateway"),
        "{frames:?}"
    );
    // Another `:protocol` has no HTTP/1 form: 501.
    let block = hpack(&[
        (":method", "CONNECT"),
        (":protocol", "connect-udp"),
        (":scheme", "http"),
        (":path", "/ws"),
        (":authority", "h2.test"),
    ]);
    c.send(&frame(HEADERS, END_HEADERS, 5, &block)).unwrap();
    let frames = c.until_end(5);
    assert!(
        body_of(&frames, 5).contains("501 Not Implemented"),
        "{frames:?}"
    );
}

#[test]
fn bogus_websocket_workaround_turns_the_announcement_off() {
    let dir = TempDir::new("h2ws-bogus");
    let (front, _proxy, _origins) = proxy(&dir, "    h2-workaround-bogus-websocket-clients\n");
    let mut c = Raw::connect(front);
    assert_ne!(
        server_setting(&mut c, SETTINGS_ENABLE_CONNECT_PROTOCOL),
        Some(1),
        "not announced"
    );
    // Without the announcement, `:protocol` is a malformed request (RFC 8441 §3).
    extended_connect(&mut c, 1, "/ws");
    let frames = c.until_end(1);
    assert!(
        rst_code(&frames, 1) == Some(PROTOCOL_ERROR)
            || goaway_code(&frames) == Some(PROTOCOL_ERROR),
        "{frames:?}"
    );
}

/// RFC 8441 behind TLS: the bind has `ssl crt ... alpn h2,http/1.1` (no `proto h2`), so the
/// proxy speaks h2 only because ALPN chose it. The raw h2 client reaches it through
/// `openssl s_client -alpn h2` (socat forks one per loopback connection), does the extended
/// CONNECT, and WebSocket frames echo through ringlb-origin's `/ws` both ways.
#[test]
fn extended_connect_tunnels_websocket_frames_over_an_alpn_h2_tls_bind() {
    use ringlb_testkit::{wait_for_port, ChildGuard, TestCa};
    let dir = TempDir::new("h2ws-tls");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("ws.example", &dir.join("site.pem"));
    let origins = Origins::start(1);
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} ssl crt {} alpn h2,http/1.1\n    default_backend be\nbackend be\n    server s1 {}\n",
        site.pem.display(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    let bridge = free_addr();
    let s_client = format!(
        "EXEC:openssl s_client -connect 127.0.0.1\\:{} -servername ws.example -alpn h2 -quiet -verify_return_error -CAfile {}",
        front.port(),
        ca.cert.display()
    );
    let _bridge = ChildGuard::spawn(
        "socat",
        std::process::Command::new("socat")
            .arg(format!(
                "TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork",
                bridge.port()
            ))
            .arg(s_client),
    )
    .unwrap();
    wait_for_port(bridge, Duration::from_secs(10)).unwrap();
    let mut c = Raw::connect(bridge);
    assert_eq!(
        server_setting(&mut c, SETTINGS_ENABLE_CONNECT_PROTOCOL),
        Some(1),
        "h2 was negotiated by ALPN and announces RFC 8441"
    );
    let block = hpack(&[
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/ws"),
        (":authority", "ws.example"),
        ("sec-websocket-version", "13"),
    ]);
    c.send(&frame(HEADERS, END_HEADERS, 1, &block)).unwrap();
    open_windows(&mut c, 1);
    let (head, _) = response_headers(&mut c, 1);
    assert_eq!(
        (head.0, status_of(std::slice::from_ref(&head), 1)),
        (HEADERS, Some(0x88)),
        "200: {head:?}"
    );
    let mut rd = WsReader {
        buf: Vec::new(),
        ended: false,
    };
    send_data(
        &mut c,
        1,
        &client_frame(true, OP_TEXT, [1, 2, 3, 4], b"hello over h2 over TLS"),
        false,
    );
    assert_eq!(
        rd.frame(&mut c, 1),
        Some((0x80 | OP_TEXT, b"hello over h2 over TLS".to_vec()))
    );
    let big: Vec<u8> = (0..40_000u32).map(|i| (i * 13 % 251) as u8).collect();
    send_data(
        &mut c,
        1,
        &client_frame(true, OP_BINARY, [9, 8, 7, 6], &big),
        false,
    );
    let (b0, echoed) = rd.frame(&mut c, 1).expect("binary echo");
    assert_eq!((b0, echoed.len()), (0x80 | OP_BINARY, big.len()));
    assert!(echoed == big, "binary payload differs");
    send_data(
        &mut c,
        1,
        &client_frame(true, OP_CLOSE, [5, 5, 5, 5], &[0x03, 0xe8]),
        true,
    );
    assert_eq!(
        rd.frame(&mut c, 1),
        Some((0x80 | OP_CLOSE, vec![0x03, 0xe8]))
    );
    // The connection still serves ordinary requests afterwards.
    let get = hpack(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        (":authority", "ws.example"),
    ]);
    c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &get))
        .unwrap();
    let frames = c.until_end(3);
    assert_eq!(status_of(&frames, 3), Some(0x88), "{frames:?}");
}
