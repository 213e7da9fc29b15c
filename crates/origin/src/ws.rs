//! WebSocket (RFC 6455) handshake and echo: masked client frames come back unmasked with
//! the same opcode, FIN bit and payload; ping → pong; close → close with the same payload.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};

use crate::reader::{invalid, Reader};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.trim_ascii());
    h.update(GUID.as_bytes());
    base64(&h.digest().bytes())
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |i: u32| char::from(ALPHABET[(i & 63) as usize]);
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out
}

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

struct FrameHead {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: [u8; 4],
}

/// Echoes frames until a close frame, EOF or a protocol error (answered by close 1002).
pub fn echo(rd: &mut Reader) -> io::Result<()> {
    let mut out = rd.stream().try_clone()?;
    loop {
        let head = match read_frame_head(rd) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return close(&mut out, &1002u16.to_be_bytes())
            }
            Err(e) => return Err(e),
        };
        match head.opcode {
            OP_CONT | OP_TEXT | OP_BINARY => {
                write_frame_head(&mut out, head.fin, head.opcode, head.len)?;
                stream_unmasked(rd, &head, &mut |p| out.write_all(p))?;
            }
            OP_PING | OP_CLOSE => {
                let mut payload = Vec::with_capacity(125);
                stream_unmasked(rd, &head, &mut |p| {
                    payload.extend_from_slice(p);
                    Ok(())
                })?;
                if head.opcode == OP_CLOSE {
                    return close(&mut out, &payload);
                }
                write_frame_head(&mut out, true, OP_PONG, payload.len() as u64)?;
                out.write_all(&payload)?;
            }
            OP_PONG => stream_unmasked(rd, &head, &mut |_| Ok(()))?,
            _ => return close(&mut out, &1002u16.to_be_bytes()),
        }
    }
}

fn close(out: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    write_frame_head(out, true, OP_CLOSE, payload.len() as u64)?;
    out.write_all(payload)?;
    out.shutdown(Shutdown::Write)
}

/// `None` on a clean EOF between frames.
fn read_frame_head(rd: &mut Reader) -> io::Result<Option<FrameHead>> {
    while rd.buffered().len() < 2 {
        if rd.fill()? == 0 {
            return if rd.buffered().is_empty() {
                Ok(None)
            } else {
                Err(invalid("truncated frame"))
            };
        }
    }
    let (b0, b1) = match rd.buffered() {
        [a, b, ..] => (*a, *b),
        _ => return Err(invalid("truncated frame")),
    };
    rd.consume(2);
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 {
        return Err(invalid("reserved bits set"));
    }
    if b1 & 0x80 == 0 {
        return Err(invalid("client frame not masked"));
    }
    let len = match b1 & 0x7F {
        126 => u64::from(u16::from_be_bytes(take::<2>(rd)?)),
        127 => u64::from_be_bytes(take::<8>(rd)?),
        n => u64::from(n),
    };
    if opcode >= 0x8 && (len > 125 || !fin) {
        return Err(invalid("bad control frame"));
    }
    let mask = take::<4>(rd)?;
    Ok(Some(FrameHead {
        fin,
        opcode,
        len,
        mask,
    }))
}

fn take<const N: usize>(rd: &mut Reader) -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    let mut i = 0;
    rd.stream_exact(N as u64, &mut |p| {
        for &b in p {
            if let Some(slot) = out.get_mut(i) {
                *slot = b;
            }
            i += 1;
        }
        Ok(())
    })?;
    Ok(out)
}

fn stream_unmasked(
    rd: &mut Reader,
    head: &FrameHead,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut offset = 0usize;
    let mut scratch = Vec::new();
    rd.stream_exact(head.len, &mut |p| {
        scratch.clear();
        scratch.extend(
            p.iter()
                .enumerate()
                .map(|(i, b)| b ^ head.mask[(offset + i) % 4]),
        );
        offset = (offset + p.len()) % 4;
        sink(&scratch)
    })
}

fn write_frame_head(out: &mut TcpStream, fin: bool, opcode: u8, len: u64) -> io::Result<()> {
    let mut h = Vec::with_capacity(10);
    h.push(if fin { 0x80 } else { 0 } | opcode);
    if len < 126 {
        h.push(len as u8);
    } else if let Ok(l16) = u16::try_from(len) {
        h.push(126);
        h.extend_from_slice(&l16.to_be_bytes());
    } else {
        h.push(127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    out.write_all(&h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_example_key() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
