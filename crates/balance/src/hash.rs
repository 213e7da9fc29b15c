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
}
