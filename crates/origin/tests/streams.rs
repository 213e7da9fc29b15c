//! WebSocket echo, TCP echo with half-close, and large bodies with bounded memory, on
//! the real `ringlb-origin` binary.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::origin;
use ringlb_testkit::ws::{client_frame, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use ringlb_testkit::{Conn, Digest, Origin, OriginMode, OriginOptions, WsClient};

/// Peak resident memory the origin may reach while streaming 200 MiB.
const MAX_ORIGIN_HWM_KIB: u64 = 64 * 1024;
const BIG_BYTES: u64 = 200 << 20;
const GIB: u64 = 1 << 30;

#[test]
fn websocket_handshake_and_echo() {
    let o = origin("s1");
    let mut ws = WsClient::connect(o.addr(), "/ws").unwrap();
    assert_eq!(
        ws.handshake.header("sec-websocket-accept"),
        Some(ringlb_testkit::ws::SAMPLE_ACCEPT)
    );
    assert_eq!(ws.handshake.header("x-origin"), Some("s1"));

    ws.send(true, OP_TEXT, b"Hello").unwrap();
    let f = ws.recv().unwrap();
    assert_eq!(
        (f.fin, f.opcode, f.masked, f.payload.as_slice()),
        (true, OP_TEXT, false, &b"Hello"[..])
    );

    // 16-bit and 64-bit payload lengths, and a fragmented message.
    for n in [300usize, 70_000] {
        let payload = ringlb_testkit::pattern(n);
        ws.send(true, OP_BINARY, &payload).unwrap();
        let f = ws.recv().unwrap();
        assert_eq!(
            (f.opcode, f.payload == payload),
            (OP_BINARY, true),
            "{n} bytes"
        );
    }
    ws.send(false, OP_TEXT, b"frag-").unwrap();
    ws.send(true, 0x0, b"ment").unwrap();
    let (a, b) = (ws.recv().unwrap(), ws.recv().unwrap());
    assert_eq!(
        (a.fin, a.opcode, a.payload.as_slice()),
        (false, OP_TEXT, &b"frag-"[..])
    );
    assert_eq!(
        (b.fin, b.opcode, b.payload.as_slice()),
        (true, 0x0, &b"ment"[..])
    );

    ws.send(true, OP_PING, b"p").unwrap();
    let f = ws.recv().unwrap();
    assert_eq!((f.opcode, f.payload.as_slice()), (OP_PONG, &b"p"[..]));

    ws.send(true, OP_CLOSE, &1000u16.to_be_bytes()).unwrap();
    let f = ws.recv().unwrap();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (OP_CLOSE, &1000u16.to_be_bytes()[..])
    );
    let mut rest = Vec::new();
    ws.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut s = ws.stream();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the close frame"
    );
}

#[test]
fn websocket_unmasked_client_frame_is_a_protocol_error() {
    let o = origin("s1");
    let mut ws = WsClient::connect(o.addr(), "/ws").unwrap();
    let mut unmasked = client_frame(true, OP_TEXT, [0; 4], b"hi");
    unmasked[1] &= 0x7f; // clear the MASK bit
    unmasked.drain(2..6); // and drop the key
    let mut s = ws.stream().try_clone().unwrap();
    s.write_all(&unmasked).unwrap();
    let f = ws.recv().unwrap();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (OP_CLOSE, &1002u16.to_be_bytes()[..])
    );
}

#[test]
fn websocket_without_upgrade_headers_is_400() {
    let o = origin("s1");
    let r = ringlb_testkit::http_get(o.addr(), "/ws", &[]).unwrap();
    assert_eq!(r.status, 400);
    let r = ringlb_testkit::http_get(
        o.addr(),
        "/ws",
        &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
    )
    .unwrap();
    assert_eq!(r.status, 400, "no Sec-WebSocket-Key");
}

#[test]
fn tcp_echo_finishes_echoing_after_half_close() {
    let o = Origin::start_with(OriginOptions {
        mode: OriginMode::EchoTcp,
        ..common::opts("t1")
    });
    let s = TcpStream::connect(o.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let payload = ringlb_testkit::pattern(4 << 20);
    let mut w = s.try_clone().unwrap();
    let to_send = payload.clone();
    // Write from another thread: 4 MiB does not fit in the socket buffers both ways.
    let writer = std::thread::spawn(move || {
        w.write_all(&to_send).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "echoed bytes differ");

    // Nothing sent, then half-close: EOF comes back.
    let mut s = TcpStream::connect(o.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"ping").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ping");
}

#[test]
fn big_upload_and_download_stream_with_bounded_memory() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    c.set_timeout(Duration::from_secs(60)).unwrap();
    let r = c.upload_pattern("POST", "/upload", BIG_BYTES).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        Digest::from_report(&r.text()),
        Some(Digest::of_pattern(BIG_BYTES))
    );

    // The largest generated body (1 GiB); counted, not hashed, to keep the test short.
    c.send_head("GET", &format!("/size/{GIB}"), &[], 0).unwrap();
    let mut n = 0u64;
    let r = c
        .read_response_with("GET", &mut |p| n += p.len() as u64)
        .unwrap();
    assert_eq!((r.status, n), (200, GIB));

    let hwm = o.guard().proc_status_kib("VmHWM").unwrap();
    assert!(
        hwm < MAX_ORIGIN_HWM_KIB,
        "origin peak RSS {hwm} KiB: 200 MiB in, 1 GiB out"
    );
}

#[test]
fn chunked_upload_streams() {
    let o = origin("s1");
    let mut c = Conn::connect(o.addr()).unwrap();
    c.send_head("PUT", "/x", &[("Transfer-Encoding", "chunked")], 0)
        .unwrap();
    let chunk = ringlb_testkit::pattern(64 * 1024);
    let mut expect = Digest::new();
    let mut out = c.stream().try_clone().unwrap();
    for _ in 0..64 {
        out.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        out.write_all(&chunk).unwrap();
        out.write_all(b"\r\n").unwrap();
        expect.update(&chunk);
    }
    out.write_all(b"0\r\n\r\n").unwrap();
    let r = c.read_response("PUT").unwrap();
    assert_eq!(Digest::from_report(&r.text()), Some(expect));
}

#[test]
fn many_concurrent_keep_alive_connections() {
    const CONNS: usize = 100;
    const REQUESTS: usize = 20;
    let o = origin("s1");
    let addr = o.addr();
    let workers: Vec<_> = (0..CONNS)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Conn::connect(addr).unwrap();
                for j in 0..REQUESTS {
                    let n = (i * REQUESTS + j) % 5000;
                    let (r, d) = c.get_digest(&format!("/size/{n}")).unwrap();
                    assert_eq!((r.status, d), (200, Digest::of_pattern(n as u64)));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
