//! HAProxy's hash functions (`hash.c`) and the `avalanche` mixer (`full_hash`), bit for bit.
//!
//! These decide which server a key lands on, so they must never change: every shard, every
//! restart and a real haproxy with the same config pick the same server for the same key.

use ringlb_config::model::{HashFunction, HashType};

/// `sdbm`: HAProxy's default hash function.
pub fn sdbm(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |h, &c| {
        u32::from(c)
            .wrapping_add(h << 6)
            .wrapping_add(h << 16)
            .wrapping_sub(h)
    })
}

/// `djb2`: `hash * 33 + c` from 5381.
pub fn djb2(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &c| {
        (h << 5).wrapping_add(h).wrapping_add(u32::from(c))
    })
}

/// `wt6`: Willy Tarreau's 6-step hash.
pub fn wt6(key: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c_965a_u32, 0x5ca6_953a_u32);
    let (mut step0, mut step1) = (6u32, 18u32);
    for &c in key {
        let t = u32::from(c);
        h0 = !(h0 ^ t);
        h1 = !(h1.wrapping_add(t));
        let t = h1.rotate_left(step0);
        h1 = h0.rotate_left(step1);
        h0 = t;
        let t = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = t & 0x1f;
        step1 = t >> 11;
    }
    h0 ^ h1
}

/// `crc32`: the IEEE 802.3 CRC (reflected polynomial `0xedb88320`).
pub fn crc32(key: &[u8]) -> u32 {
    let mut h = !0u32;
    for &c in key {
        h ^= u32::from(c);
        for _ in 0..8 {
            h = (h >> 1) ^ if h & 1 != 0 { 0xedb8_8320 } else { 0 };
        }
    }
    !h
}

/// `none`: the key is a decimal integer (`read_int64`, saturating, optional sign), truncated
/// to 32 bits. Non-numeric keys hash to 0.
pub fn none(key: &[u8]) -> u32 {
    let (neg, digits) = match key.first() {
        Some(b'-') => (true, key.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, key.get(1..).unwrap_or(&[])),
        _ => (false, key),
    };
    let mut v: u64 = 0;
    for &c in digits.iter().take_while(|c| c.is_ascii_digit()) {
        match v
            .checked_mul(10)
            .and_then(|t| t.checked_add(u64::from(c - b'0')))
        {
            Some(n) => v = n,
            None => {
                v = u64::MAX;
                break;
            }
        }
    }
    let signed: i64 = if neg {
        if v > 0x8000_0000_0000_0000 {
            i64::MIN
        } else {
            0i64.wrapping_sub_unsigned(v)
        }
    } else {
        i64::try_from(v).unwrap_or(i64::MAX)
    };
    signed as u32
}

/// HAProxy's `full_hash()`: Thomas Wang's integer mix, then a multiply by a large prime
/// (3221225473) to spread values over the whole 32-bit tree. A bijection on `u32`.
pub fn full_hash(a: u32) -> u32 {
    let mut a = a;
    a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    a = (a ^ 0xc761_c23c) ^ (a >> 19);
    a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    a = (a ^ 0xb55a_4f09) ^ (a >> 16);
    a.wrapping_mul(3_221_225_473)
}

/// The configured hash function alone (no avalanche).
pub fn hash_with(function: HashFunction, key: &[u8]) -> u32 {
    match function {
        HashFunction::Sdbm => sdbm(key),
        HashFunction::Djb2 => djb2(key),
        HashFunction::Wt6 => wt6(key),
        HashFunction::Crc32 => crc32(key),
        HashFunction::None => none(key),
    }
}

/// HAProxy's `gen_hash()`: the configured function, then `full_hash` when `avalanche` is set.
pub fn gen_hash(ht: &HashType, key: &[u8]) -> u32 {
    let h = hash_with(ht.function, key);
    if ht.avalanche {
        full_hash(h)
    } else {
        h
    }
}

const XXP1: u64 = 0x9E37_79B1_85EB_CA87;
const XXP2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const XXP3: u64 = 0x1656_67B1_9E37_79F9;
const XXP4: u64 = 0x85EB_CA77_C2B2_AE63;
const XXP5: u64 = 0x27D4_EB2F_1656_67C5;

fn xx_round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(XXP2))
        .rotate_left(31)
        .wrapping_mul(XXP1)
}

fn xx_merge(acc: u64, v: u64) -> u64 {
    (acc ^ xx_round(0, v)).wrapping_mul(XXP1).wrapping_add(XXP4)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(a)
}

fn le32(b: &[u8]) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b.get(..4).unwrap_or(&[0; 4]));
    u64::from(u32::from_le_bytes(a))
}

/// XXH64 (xxHash, 64 bits), as HAProxy's `XXH64()`: dynamic server cookies hash the
/// `dynamic-cookie-key` with the server's address and port through it.
pub fn xxh64(input: &[u8], seed: u64) -> u64 {
    let len = input.len() as u64;
    let mut rest = input;
    let mut h = if input.len() >= 32 {
        let mut v = [
            seed.wrapping_add(XXP1).wrapping_add(XXP2),
            seed.wrapping_add(XXP2),
            seed,
            seed.wrapping_sub(XXP1),
        ];
        while rest.len() >= 32 {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = xx_round(*acc, le64(rest.get(i * 8..).unwrap_or_default()));
            }
            rest = rest.get(32..).unwrap_or_default();
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for x in v {
            h = xx_merge(h, x);
        }
        h
    } else {
        seed.wrapping_add(XXP5)
    };
    h = h.wrapping_add(len);
    while rest.len() >= 8 {
        h ^= xx_round(0, le64(rest));
        h = h.rotate_left(27).wrapping_mul(XXP1).wrapping_add(XXP4);
        rest = rest.get(8..).unwrap_or_default();
    }
    if rest.len() >= 4 {
        h ^= le32(rest).wrapping_mul(XXP1);
        h = h.rotate_left(23).wrapping_mul(XXP2).wrapping_add(XXP3);
        rest = rest.get(4..).unwrap_or_default();
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(XXP5);
        h = h.rotate_left(11).wrapping_mul(XXP1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(XXP2);
    h ^= h >> 29;
    h = h.wrapping_mul(XXP3);
    h ^ (h >> 32)
}

/// HAProxy's dynamic server cookie (`srv_set_dyncookie`): XXH64 (seed 0) of the key, the
/// address bytes and the port as 4 bytes, both in network order, printed as 16 hex digits
/// (matched against haproxy 2.6's `set-cookie` values).
pub fn dynamic_cookie(key: &str, addr: std::net::SocketAddr) -> String {
    let mut buf = Vec::with_capacity(key.len() + 20);
    buf.extend_from_slice(key.as_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(a) => buf.extend_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => buf.extend_from_slice(&a.octets()),
    }
    buf.extend_from_slice(&u32::from(addr.port()).to_be_bytes());
    format!("{:016x}", xxh64(&buf, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // crc32("123456789") is the standard check value.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(djb2(b""), 5381);
        assert_eq!(djb2(b"a"), 5381 * 33 + 97);
        assert_eq!(sdbm(b""), 0);
        assert_eq!(sdbm(b"a"), 97);
        assert_eq!(sdbm(b"ab"), 98 + (97 << 6) + (97 << 16) - 97);
        assert_eq!(wt6(b""), 0xa53c_965a ^ 0x5ca6_953a);
    }

    #[test]
    fn none_parses_like_read_int64() {
        let cases: &[(&[u8], u32)] = &[
            (b"0", 0),
            (b"42", 42),
            (b"42abc", 42),
            (b"abc", 0),
            (b"", 0),
            (b"-1", u32::MAX),
            (b"+7", 7),
            (b"4294967297", 1),
            (b"99999999999999999999999", u32::MAX),
        ];
        for (k, want) in cases {
            assert_eq!(none(k), *want, "key {:?}", String::from_utf8_lossy(k));
        }
    }

    #[test]
    fn full_hash_is_injective_on_a_sample() {
        let mut seen: Vec<u32> = (0..100_000u32).map(full_hash).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 100_000);
    }

    /// xxHash's reference vectors (seed 0) across every tail path and the 32-byte stripes.
    #[test]
    fn xxh64_matches_the_reference() {
        assert_eq!(xxh64(b"", 0), 0xef46_db37_51d8_e999);
        assert_eq!(xxh64(b"a", 0), 0xd24e_c4f1_a98c_6e5b);
        assert_eq!(xxh64(b"abc", 0), 0x44bc_2cf5_ad77_0999);
    }

    /// Recorded from haproxy 2.6: `cookie SRV insert dynamic`, `dynamic-cookie-key
    /// s3cr3t-key`, `server a 127.0.0.1:18501` answered `set-cookie: SRV=6a80405efac5a52b`.
    #[test]
    fn dynamic_cookie_matches_haproxy() {
        let addr = "127.0.0.1:18501".parse().unwrap();
        assert_eq!(dynamic_cookie("s3cr3t-key", addr), "6a80405efac5a52b");
    }
}
