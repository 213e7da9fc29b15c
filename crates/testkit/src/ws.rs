//! A tiny WebSocket client (RFC 6455) for echo tests: handshake over `Conn`, masked
//! frames out, unmasked frames in.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::client::{Conn, Response};

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The handshake's example key from RFC 6455 §1.3 and its expected accept value.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A frame as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// An upgraded connection.
#[derive(Debug)]
pub struct WsClient {
    stream: TcpStream,
    pending: Vec<u8>,
    /// The 101 response.
    pub handshake: Response,
}

impl WsClient {
    /// `GET path` with the upgrade headers (key `SAMPLE_KEY`); fails unless 101.
    pub fn connect(addr: SocketAddr, path: &str) -> io::Result<WsClient> {
        let mut conn = Conn::connect(addr)?;
        let resp = conn.request(
            "GET",
            path,
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", SAMPLE_KEY),
                ("Sec-WebSocket-Version", "13"),
            ],
            &[],
        )?;
        if resp.status != 101 {
            return Err(io::Error::other(format!(
                "upgrade refused: {}",
                resp.status
            )));
        }
        let pending = conn.leftover().to_vec();
        Ok(WsClient {
            stream: conn.stream().try_clone()?,
            pending,
            handshake: resp,
        })
    }

    /// Sends one masked frame.
    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&client_frame(
            fin,
            opcode,
            [0x37, 0xfa, 0x21, 0x3d],
            payload,
        ))
    }

    /// Receives one frame.
    pub fn recv(&mut self) -> io::Result<Frame> {
        let h = self.take(2)?;
        let (b0, b1) = (h[0], h[1]);
        let len = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.byte()?, self.byte()?])),
            127 => {
                let b = self.take(8)?;
                u64::from_be_bytes(b.try_into().map_err(|_| io::Error::other("len"))?)
            }
            n => u64::from(n),
        };
        let masked = b1 & 0x80 != 0;
        let mask = if masked { self.take(4)? } else { vec![0; 4] };
        let mut payload = self.take(usize::try_from(len).map_err(io::Error::other)?)?;
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        Ok(Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            masked,
            payload,
        })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    fn byte(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let from_pending = n.min(self.pending.len());
        let mut out: Vec<u8> = self.pending.drain(..from_pending).collect();
        let mut rest = vec![0u8; n - from_pending];
        self.stream.read_exact(&mut rest)?;
        out.extend_from_slice(&rest);
        Ok(out)
    }
}

/// Encodes a masked client frame.
pub fn client_frame(fin: bool, opcode: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        f.push(0x80 | 126);
        f.extend_from_slice(&l.to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message containing "Hello".
        let f = client_frame(true, OP_TEXT, [0x37, 0xfa, 0x21, 0x3d], b"Hello");
        assert_eq!(
            f,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn extended_lengths() {
        let f = client_frame(true, OP_BINARY, [1, 2, 3, 4], &[0u8; 256]);
        assert_eq!(&f[..4], &[0x82, 0x80 | 126, 1, 0]);
        let f = client_frame(false, OP_BINARY, [1, 2, 3, 4], &[0u8; 70_000]);
        assert_eq!(&f[..10], &[0x02, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }
}
