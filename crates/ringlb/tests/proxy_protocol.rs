//! The PROXY protocol end to end: `accept-proxy` on a bind (v1 and v2, haproxy as the sender in
//! front), `send-proxy`/`send-proxy-v2`(-ssl) on servers (the bytes compared with what haproxy
//! sends for the same config), malformed headers closing the connection.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, wait_until, write_config, Haproxy, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

/// A tiny origin that records every byte a connection sent up to the end of its request head
/// (the PROXY header, if any, then the request), and answers `200 ok`.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                let rec = rec.clone();
                std::thread::spawn(move || {
                    c.set_read_timeout(Some(T)).unwrap();
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    // The end of the request's head: a v2 PROXY signature starts with
                    // CRLF CRLF itself, so look only after the request line.
                    let head_done = |g: &[u8]| {
                        g.windows(4).position(|w| w == b"GET ").is_some_and(|at| {
                            g.get(at..)
                                .is_some_and(|r| r.windows(4).any(|w| w == b"\r\n\r\n"))
                        })
                    };
                    while !head_done(&got) {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    rec.lock().unwrap().push(got);
                    let _ = c.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Recorder { addr, seen }
    }

    /// Waits for the `n`th recorded connection.
    fn nth(&self, n: usize) -> Vec<u8> {
        assert!(
            wait_until(T, || self.seen.lock().unwrap().len() > n),
            "no connection #{n} at the origin"
        );
        self.seen.lock().unwrap()[n].clone()
    }
}

/// One GET through `front`; returns the client's own address and the response.
fn get(front: SocketAddr) -> (SocketAddr, String) {
    let mut s = TcpStream::connect(front).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    (me, out)
}

fn header_value(req: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(req);
    text.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}

/// The PROXY bytes at the start of a recorded connection (everything before the request).
fn proxy_prefix(raw: &[u8]) -> Vec<u8> {
    let at = raw.windows(4).position(|w| w == b"GET ").unwrap();
    raw[..at].to_vec()
}

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n";

/// A ringlb frontend with `accept-proxy` that tells the origin which addresses it believes in.
fn ringlb_accepting(front: SocketAddr, origin: SocketAddr, extra_bind: &str) -> String {
    format!(
        "global\n    nbthread 2\n{DEFAULTS}\nfrontend fe\n    bind {front} accept-proxy {extra_bind}\n    http-request set-header x-src %[src]:%[src_port]\n    http-request set-header x-dst %[dst]:%[dst_port]\n    default_backend be\nbackend be\n    server o {origin}\n"
    )
}

#[test]
fn accept_proxy_takes_the_addresses_haproxy_sends_in_v1_and_v2() {
    if !haproxy_available() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let origin = Recorder::start();
    let dir = TempDir::new("pp-accept");
    let rl = free_addr();
    let cfg = write_config(&dir, &ringlb_accepting(rl, origin.addr, ""));
    let _ringlb = Ringlb::start(&cfg, &[rl]);
    let (h1, h2) = (free_addr(), free_addr());
    let hcfg = dir.join("haproxy.cfg");
    std::fs::write(
        &hcfg,
        format!(
            "{DEFAULTS}\nlisten v1\n    bind {h1}\n    server r {rl} send-proxy\nlisten v2\n    bind {h2}\n    server r {rl} send-proxy-v2\n"
        ),
    )
    .unwrap();
    let _haproxy = Haproxy::start(&hcfg, &[h1, h2]);
    for (i, front) in [h1, h2].into_iter().enumerate() {
        let (me, resp) = get(front);
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let req = origin.nth(i);
        assert_eq!(
            header_value(&req, "x-src").as_deref(),
            Some(me.to_string().as_str()),
            "{}",
            String::from_utf8_lossy(&req)
        );
        assert_eq!(
            header_value(&req, "x-dst").as_deref(),
            Some(front.to_string().as_str())
        );
        // The header itself went no further than ringlb.
        assert!(req.starts_with(b"GET / HTTP/1.1\r\n"));
    }
}

#[test]
fn accept_proxy_from_a_raw_client_split_header_unknown_and_malformed() {
    let origin = Recorder::start();
    let dir = TempDir::new("pp-raw");
    let rl = free_addr();
    let cfg = write_config(&dir, &ringlb_accepting(rl, origin.addr, ""));
    let _ringlb = Ringlb::start(&cfg, &[rl]);
    let send = |parts: &[&[u8]]| {
        let mut s = TcpStream::connect(rl).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        for p in parts {
            s.write_all(p).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        (
            s.local_addr().unwrap(),
            String::from_utf8_lossy(&out).to_string(),
        )
    };
    let req: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    // A v1 header cut in two segments, the request in the same segment as its end.
    let (_, r) = send(&[
        b"PROXY TCP4 192.0.2.1 ",
        &[b"198.51.100.7 1234 8080\r\n".as_slice(), req].concat(),
    ]);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let seen = origin.nth(0);
    assert_eq!(
        header_value(&seen, "x-src").as_deref(),
        Some("192.0.2.1:1234")
    );
    assert_eq!(
        header_value(&seen, "x-dst").as_deref(),
        Some("198.51.100.7:8080")
    );
    // IPv6 addresses in a v2 header.
    let mut v2 = b"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend_from_slice(&[0x04, 0xd2, 0x00, 0x50]);
    let (_, r) = send(&[&[v2.as_slice(), req].concat()]);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let seen = origin.nth(1);
    assert_eq!(
        header_value(&seen, "x-src").as_deref(),
        Some("2001:db8::1:1234")
    );
    // `PROXY UNKNOWN` keeps the connection's own addresses.
    let (me, r) = send(&[&[b"PROXY UNKNOWN\r\n".as_slice(), req].concat()]);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let seen = origin.nth(2);
    assert_eq!(header_value(&seen, "x-src"), Some(me.to_string()));
    // A request without the header, a bad port, a v2 with an unknown command: closed, no reply.
    for bad in [
        req.to_vec(),
        [
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 99999\r\n".as_slice(),
            req,
        ]
        .concat(),
        [
            b"\r\n\r\n\x00\r\nQUIT\n\x2f\x11\x00\x0c".as_slice(),
            &[0u8; 12],
            req,
        ]
        .concat(),
    ] {
        let (_, r) = send(&[&bad]);
        assert_eq!(r, "", "a malformed header must close without a reply");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        origin.seen.lock().unwrap().len(),
        3,
        "nothing malformed reached the origin"
    );
}

/// The same `listen` under ringlb and haproxy, each sending to its own recorder.
fn send_proxy_pair(server_opts: &str) -> Option<[(SocketAddr, SocketAddr, Vec<u8>); 2]> {
    if !haproxy_available() {
        eprintln!("skipped: no haproxy");
        return None;
    }
    let dir = TempDir::new("pp-send");
    let mut out = Vec::new();
    for under_haproxy in [false, true] {
        let origin = Recorder::start();
        let front = free_addr();
        let text = format!(
            "{DEFAULTS}\nlisten l\n    bind {front}\n    server o {} {server_opts}\n",
            origin.addr
        );
        let cfg = dir.join(if under_haproxy { "h.cfg" } else { "r.cfg" });
        std::fs::write(&cfg, &text).unwrap();
        let guard = if under_haproxy {
            Haproxy::start(&cfg, &[front])
        } else {
            Ringlb::start(&cfg, &[front])
        };
        let (me, resp) = get(front);
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let raw = origin.nth(0);
        drop(guard);
        out.push((me, front, proxy_prefix(&raw)));
    }
    Some([out.remove(0), out.remove(0)])
}

#[test]
fn send_proxy_v1_line_is_the_one_haproxy_sends() {
    let Some([(me, front, ours), (hme, hfront, theirs)]) = send_proxy_pair("send-proxy") else {
        return;
    };
    let line = |me: SocketAddr, front: SocketAddr| {
        format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            me.ip(),
            front.ip(),
            me.port(),
            front.port()
        )
    };
    assert_eq!(String::from_utf8_lossy(&theirs), line(hme, hfront));
    assert_eq!(String::from_utf8_lossy(&ours), line(me, front));
}

/// Replaces the IPv4 address block of a v2 header (bytes 16..28) with zeros so two captures
/// from different connections compare.
fn without_addrs(h: &[u8]) -> Vec<u8> {
    let mut h = h.to_vec();
    h[16..28].fill(0);
    h
}

fn v2_addrs(h: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |o: usize| std::net::Ipv4Addr::new(h[o], h[o + 1], h[o + 2], h[o + 3]);
    let port = |o: usize| u16::from_be_bytes([h[o], h[o + 1]]);
    (
        SocketAddr::new(ip(16).into(), port(24)),
        SocketAddr::new(ip(20).into(), port(26)),
    )
}

#[test]
fn send_proxy_v2_and_its_ssl_tlv_match_haproxy() {
    for opts in ["send-proxy-v2", "send-proxy-v2-ssl", "send-proxy-v2-ssl-cn"] {
        let Some([(me, front, ours), (_, _, theirs)]) = send_proxy_pair(opts) else {
            return;
        };
        assert_eq!(
            without_addrs(&ours),
            without_addrs(&theirs),
            "{opts}: ringlb {ours:02x?} haproxy {theirs:02x?}"
        );
        assert_eq!(v2_addrs(&ours), (me, front), "{opts}");
    }
}

#[test]
fn send_proxy_v2_crc32c_header_is_accepted_by_haproxy() {
    if !haproxy_available() {
        eprintln!("skipped: no haproxy");
        return;
    }
    // ringlb (send-proxy-v2 with a CRC32C TLV) → haproxy (accept-proxy, which verifies the
    // CRC and refuses a wrong one) → origin: haproxy's x-src is the client ringlb saw.
    let origin = Recorder::start();
    let dir = TempDir::new("pp-crc");
    let (rl, hp) = (free_addr(), free_addr());
    let hcfg = dir.join("haproxy.cfg");
    std::fs::write(
        &hcfg,
        format!(
            "{DEFAULTS}\nfrontend fe\n    bind {hp} accept-proxy\n    http-request set-header x-src %[src]:%[src_port]\n    default_backend be\nbackend be\n    server o {}\n",
            origin.addr
        ),
    )
    .unwrap();
    let _haproxy = Haproxy::start(&hcfg, &[hp]);
    let cfg = write_config(
        &dir,
        &format!(
            "{DEFAULTS}\nlisten l\n    bind {rl}\n    server h {hp} send-proxy-v2 proxy-v2-options crc32c\n"
        ),
    );
    let _ringlb = Ringlb::start(&cfg, &[rl]);
    let (me, resp) = get(rl);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(header_value(&origin.nth(0), "x-src"), Some(me.to_string()));
}
