//! A raw HTTP/2 client for what well-behaved clients never send: frames written by hand and a
//! literal-only HPACK encoder, so tests can build malformed streams, floods and resets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;
pub const END_STREAM: u8 = 1;
pub const END_HEADERS: u8 = 4;
pub const PROTOCOL_ERROR: u32 = 1;
pub const CANCEL: u32 = 8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame as read: (type, flags, stream, payload).
pub type H2Frame = (u8, u8, u32, Vec<u8>);

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
pub fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literal fields without indexing, new names, no Huffman. Names and values
/// are bytes so tests can put anything in them.
pub fn hpack_bytes(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.push(0);
        hpack_int(&mut out, 0, 7, n.len());
        out.extend_from_slice(n);
        hpack_int(&mut out, 0, 7, v.len());
        out.extend_from_slice(v);
    }
    out
}

/// `hpack_bytes` for text fields.
pub fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let f: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    hpack_bytes(&f)
}

/// The four request pseudo-headers of a GET on `path` (authority `h2.test`), then `extra`.
pub fn get_fields<'a>(path: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "h2.test"),
    ];
    f.extend_from_slice(extra);
    f
}

/// A prior-knowledge connection that has sent the preface and an empty SETTINGS, and
/// acknowledges the peer's SETTINGS as it reads them.
pub struct Raw {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Panics if the connection cannot be made (test setup).
    pub fn connect(addr: SocketAddr) -> Raw {
        let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(PREFACE);
        let _ = s.write_all(&frame(SETTINGS, 0, 0, &[]));
        Raw { s, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)
    }

    /// The next frame; `None` at close or timeout.
    pub fn next_frame(&mut self) -> Option<H2Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f: Vec<u8> = self.buf.drain(..9 + len).collect();
                    let stream = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
                    if f[3] == SETTINGS && f[4] & 1 == 0 {
                        let _ = self.send(&frame(SETTINGS, 1, 0, &[]));
                    }
                    return Some((f[3], f[4], stream, f[9..].to_vec()));
                }
            }
            let mut chunk = [0u8; 16384];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Frames until `stream` ends (END_STREAM or RST_STREAM) or the connection does.
    pub fn until_end(&mut self, stream: u32) -> Vec<H2Frame> {
        let mut seen = Vec::new();
        while let Some(f) = self.next_frame() {
            let done = f.2 == stream
                && (f.0 == RST_STREAM || (matches!(f.0, DATA | HEADERS) && f.1 & END_STREAM != 0));
            let goaway = f.0 == GOAWAY;
            seen.push(f);
            if done || goaway {
                break;
            }
        }
        seen
    }
}

/// The first byte of the response HEADERS on `stream`: the proxy sends `:status` first, as an
/// indexed static entry (0x88 = 200 ... 0x8e = 500) or a literal.
pub fn status_of(frames: &[H2Frame], stream: u32) -> Option<u8> {
    frames
        .iter()
        .find(|f| f.0 == HEADERS && f.2 == stream)
        .and_then(|f| f.3.first().copied())
}

/// The error code of the RST_STREAM on `stream`, if any.
pub fn rst_code(frames: &[H2Frame], stream: u32) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.0 == RST_STREAM && f.2 == stream && f.3.len() >= 4)
        .map(|f| u32::from_be_bytes([f.3[0], f.3[1], f.3[2], f.3[3]]))
}

/// The error code of a GOAWAY among `frames`, if any.
pub fn goaway_code(frames: &[H2Frame]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.0 == GOAWAY && f.3.len() >= 8)
        .map(|f| u32::from_be_bytes([f.3[4], f.3[5], f.3[6], f.3[7]]))
}
