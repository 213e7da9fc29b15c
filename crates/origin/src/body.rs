//! Body generation and checksums shared by the endpoints.
//!
//! Generated bodies (`/size/N`, `/chunked/N`) are byte `i` = `PATTERN[i % 64]`, so a
//! client can check any slice without the origin holding the body. Received bodies are
//! summarised by their length and FNV-1a 64 (offset basis 0xcbf29ce484222325, prime
//! 0x100000001b3), printed as 16 lowercase hex digits.

/// The 64-byte period of generated bodies.
pub const PATTERN: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-\n";

/// Size of the pre-built body slice written per `write` call.
pub const BLOCK_BYTES: usize = 64 * 1024;

/// `BLOCK_BYTES` of the pattern; a multiple of its period, so blocks can be repeated.
pub static BLOCK: [u8; BLOCK_BYTES] = build_block();

const _: () = assert!(BLOCK_BYTES.is_multiple_of(PATTERN.len()));

const fn build_block() -> [u8; BLOCK_BYTES] {
    let mut b = [0u8; BLOCK_BYTES];
    let mut i = 0;
    while i < BLOCK_BYTES {
        b[i] = PATTERN[i % PATTERN.len()];
        i += 1;
    }
    b
}

/// Streaming FNV-1a 64 and byte count of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    pub len: u64,
    pub fnv: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            len: 0,
            fnv: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Digest {
    pub fn update(&mut self, data: &[u8]) {
        let mut h = self.fnv;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.fnv = h;
        self.len += data.len() as u64;
    }

    /// `body-length: N\nbody-fnv1a64: HEX\n`, the lines `/echo` and uploads end with.
    pub fn lines(&self) -> String {
        format!(
            "body-length: {}\nbody-fnv1a64: {:016x}\n",
            self.len, self.fnv
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fnv(data: &[u8]) -> u64 {
        let mut d = Digest::default();
        d.update(data);
        d.fnv
    }

    #[test]
    fn fnv1a64_reference_vectors() {
        // Vectors from the FNV reference (Fowler/Noll/Vo test suite).
        assert_eq!(fnv(b""), 0xcbf29ce484222325);
        assert_eq!(fnv(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut d = Digest::default();
        d.update(b"foo");
        d.update(b"bar");
        assert_eq!(d.fnv, fnv(b"foobar"));
        assert_eq!(d.len, 6);
    }

    #[test]
    fn block_follows_pattern() {
        assert_eq!(&BLOCK[..64], PATTERN);
        assert_eq!(BLOCK[BLOCK_BYTES - 1], b'\n');
        assert_eq!(BLOCK[64 * 3 + 5], b'F');
    }
}
