//! The origin's body conventions, written independently of its code: generated bodies
//! (`/size/N`, `/chunked/N`) are byte `i` = `PATTERN[i % 64]`; received bodies are
//! reported as `body-length: N` and `body-fnv1a64: <16 hex>` lines.

/// The 64-byte period of the origin's generated bodies.
pub const PATTERN: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-\n";

/// FNV-1a 64 of `data`.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut d = Digest::new();
    d.update(data);
    d.fnv
}

/// The first `n` bytes of the origin's body pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    PATTERN.iter().copied().cycle().take(n).collect()
}

/// Length and FNV-1a 64 of a body, computed as it streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    pub len: u64,
    pub fnv: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

impl Digest {
    pub fn new() -> Digest {
        Digest {
            len: 0,
            fnv: 0xcbf2_9ce4_8422_2325,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.fnv ^= u64::from(b);
            self.fnv = self.fnv.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.len += data.len() as u64;
    }

    /// Digest of the first `n` bytes of the pattern, without allocating them.
    pub fn of_pattern(n: u64) -> Digest {
        let mut d = Digest::new();
        let block = pattern(64 * 1024);
        let mut left = n;
        while left > 0 {
            let take = left.min(block.len() as u64) as usize;
            d.update(&block[..take]);
            left -= take as u64;
        }
        d
    }

    /// Parses the `body-length:` and `body-fnv1a64:` lines the origin answers with.
    pub fn from_report(text: &str) -> Option<Digest> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        Some(Digest {
            len: field("body-length:")?.parse().ok()?,
            fnv: u64::from_str_radix(field("body-fnv1a64:")?, 16).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn pattern_digest_matches_materialised_pattern() {
        for n in [0u64, 1, 63, 64, 65, 65536, 65537, 200_000] {
            let p = pattern(n as usize);
            assert_eq!(
                Digest::of_pattern(n),
                Digest {
                    len: n,
                    fnv: fnv1a64(&p)
                }
            );
        }
        assert_eq!(&pattern(66)[62..], b"-\nAB");
    }

    #[test]
    fn parses_report() {
        let d = Digest::from_report("header: x\nbody-length: 6\nbody-fnv1a64: 85944171f73967e8\n");
        assert_eq!(
            d,
            Some(Digest {
                len: 6,
                fnv: 0x85944171f73967e8
            })
        );
        assert_eq!(Digest::from_report("hello"), None);
    }
}
