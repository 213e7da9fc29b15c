//! The peers protocol's encoded integers (peers-v2.0.txt, "Encoded Integer and Bitfield").
//!
//! Below 240 a value is one byte. Otherwise the first byte holds `240 | low 4 bits` and each
//! next byte 7 more bits, the high bit of a byte saying another one follows; the value is
//! offset so that every length starts where the shorter one ends:
//!
//! ```text
//!        0 <= X < 240        1 byte   XXXX XXXX
//!      240 <= X < 2288       2 bytes  1111 XXXX  0XXX XXXX
//!     2288 <= X < 264432     3 bytes  1111 XXXX  1XXX XXXX  0XXX XXXX
//!   264432 <= X < 33818864   4 bytes  ...
//! ```

/// Longest encoding of a u64 (4 bits + 7 per further byte).
pub const MAX_LEN: usize = 10;

/// Appends the encoding of `v`.
pub fn encode(mut v: u64, out: &mut Vec<u8>) {
    if v < 240 {
        out.push(v as u8);
        return;
    }
    out.push((v as u8) | 240);
    v = (v - 240) >> 4;
    while v >= 128 {
        out.push((v as u8) | 128);
        v = (v - 128) >> 7;
    }
    out.push(v as u8);
}

/// Decodes one value at the start of `buf`: the value and the bytes it took. `None` when
/// `buf` ends first or the encoding is longer than a u64 can hold.
pub fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = buf.split_first()?;
    let mut v = u64::from(first);
    if first < 240 {
        return Some((v, 1));
    }
    let mut shift = 4u32;
    for (i, &b) in rest.iter().enumerate() {
        if i + 1 >= MAX_LEN {
            return None;
        }
        v = v.checked_add(u64::from(b).checked_shl(shift)?)?;
        shift += 7;
        if b < 128 {
            return Some((v, i + 2));
        }
    }
    None
}

/// A cursor over a message body.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn int(&mut self) -> Option<u64> {
        let (v, n) = decode(self.buf)?;
        self.buf = self.buf.get(n..)?;
        Some(v)
    }

    pub fn u32_be(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, &mut out);
        out
    }

    #[test]
    fn lengths_follow_the_spec_table() {
        for (v, len) in [
            (0u64, 1usize),
            (239, 1),
            (240, 2),
            (2287, 2),
            (2288, 3),
            (264_431, 3),
            (264_432, 4),
            (33_818_863, 4),
            (33_818_864, 5),
            (4_328_786_159, 5),
            (4_328_786_160, 6),
        ] {
            assert_eq!(enc(v).len(), len, "{v}");
            assert_eq!(decode(&enc(v)), Some((v, len)), "{v}");
        }
    }

    #[test]
    fn values_recorded_from_haproxy() {
        // From crates/peers/tests/fixtures/haproxy26-session.txt: expire 60000 and 5000, the
        // period 10000, bytes_out_cnt 300000 and t_ip's data-type bitfield.
        assert_eq!(enc(60_000), [0xf0, 0x97, 0x1c]);
        assert_eq!(enc(5000), [0xf8, 0xa9, 0x01]);
        assert_eq!(enc(10_000), [0xf0, 0xe2, 0x03]);
        assert_eq!(enc(300_000), [0xf0, 0xaf, 0x91, 0x00]);
        assert_eq!(enc(34_391), [0xf7, 0xd6, 0x0f]);
        assert_eq!(decode(&[0xf0, 0xaf, 0x91, 0x00, 0xff]), Some((300_000, 4)));
    }

    #[test]
    fn truncated_and_overlong_input_is_refused() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0xf0]), None);
        assert_eq!(decode(&[0xf0, 0x80]), None);
        assert_eq!(decode(&[0xff; 20]), None);
        for v in [u64::MAX, u64::MAX / 3, 1 << 40] {
            assert_eq!(decode(&enc(v)), Some((v, enc(v).len())));
        }
    }
}
