//! Table keys: HAProxy's conversion of a sample to a table's key type, the stored byte form
//! and the text `show table` prints.
//!
//! Stored bytes sort like HAProxy's key trees, so `show table` lists entries in HAProxy's order:
//! IPv4 as 4 bytes and IPv6 as 16 bytes in network order, integers as a big-endian u32,
//! strings as their bytes truncated to `len`, binaries as exactly `len` bytes (zero padded).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use ringlb_config::model::StickKey;

/// A table's key type (`stick-table type ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ip,
    Ipv6,
    Integer,
    /// `string [len N]`: keys are truncated to `len` bytes (HAProxy's default len is 32).
    String {
        len: usize,
    },
    /// `binary [len N]`: keys are truncated or zero padded to exactly `len` bytes.
    Binary {
        len: usize,
    },
}

/// A sample as the rules engine produces it, before conversion to the table's key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySample<'a> {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Int(i64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
}

impl From<StickKey> for KeyType {
    fn from(k: StickKey) -> KeyType {
        match k {
            StickKey::Ip => KeyType::Ip,
            StickKey::Ipv6 => KeyType::Ipv6,
            StickKey::Integer => KeyType::Integer,
            StickKey::String { len } => KeyType::String { len: len as usize },
            StickKey::Binary { len } => KeyType::Binary { len: len as usize },
        }
    }
}

/// IPv4 from an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), the only IPv6 form HAProxy
/// converts to IPv4; any other IPv6 source cannot be a key of an `ip` table.
fn v6_to_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    a.to_ipv4_mapped()
}

impl KeyType {
    /// HAProxy's name in `# table: x, type: <name>`.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ip => "ip",
            KeyType::Ipv6 => "ipv6",
            KeyType::Integer => "integer",
            KeyType::String { .. } => "string",
            KeyType::Binary { .. } => "binary",
        }
    }

    /// Longest stored key in bytes.
    pub fn max_len(self) -> usize {
        match self {
            KeyType::Ip | KeyType::Integer => 4,
            KeyType::Ipv6 => 16,
            KeyType::String { len } | KeyType::Binary { len } => len,
        }
    }

    /// Writes the key of `s` into `out` (cleared first). False when HAProxy's casts cannot
    /// convert the sample (an IPv6 source into an `ip` table, a string that is no address...):
    /// the track action then does nothing and fetches return no value.
    pub fn encode(self, s: &KeySample<'_>, out: &mut Vec<u8>) -> bool {
        out.clear();
        match self {
            KeyType::Ip => match ipv4_of(s) {
                Some(a) => out.extend_from_slice(&a.octets()),
                None => return false,
            },
            KeyType::Ipv6 => match ipv6_of(s) {
                Some(a) => out.extend_from_slice(&a.octets()),
                None => return false,
            },
            KeyType::Integer => match int_of(s) {
                // HAProxy keeps the low 32 bits of the integer.
                Some(i) => out.extend_from_slice(&(i as u32).to_be_bytes()),
                None => return false,
            },
            KeyType::String { len } => {
                match s {
                    KeySample::Str(b) | KeySample::Bin(b) => out.extend_from_slice(b),
                    KeySample::Int(i) => {
                        let _ = write!(Bytes(out), "{i}");
                    }
                    KeySample::Ipv4(a) => {
                        let _ = write!(Bytes(out), "{a}");
                    }
                    KeySample::Ipv6(a) => {
                        let _ = write!(Bytes(out), "{a}");
                    }
                }
                // A NUL ends a string key, as in HAProxy's C strings.
                if let Some(z) = out.iter().position(|&b| b == 0) {
                    out.truncate(z);
                }
                out.truncate(len);
            }
            KeyType::Binary { len } => {
                match s {
                    KeySample::Str(b) | KeySample::Bin(b) => out.extend_from_slice(b),
                    KeySample::Int(i) => out.extend_from_slice(&i.to_be_bytes()),
                    KeySample::Ipv4(a) => out.extend_from_slice(&a.octets()),
                    KeySample::Ipv6(a) => out.extend_from_slice(&a.octets()),
                }
                out.resize(len, 0);
            }
        }
        true
    }

    /// Parses the `key <K>` argument of the runtime commands (`show table t key K`,
    /// `clear table t key K`, `set table t key K ...`).
    pub fn parse_cli(self, text: &str, out: &mut Vec<u8>) -> Result<(), String> {
        let ok = match self {
            // haproxy 2.6 converts with `inetaddr_host`, which yields 0.0.0.0 for text that is
            // no address: `set table t key zz` creates the entry 0.0.0.0.
            KeyType::Ip => self.encode(
                &KeySample::Ipv4(text.parse::<Ipv4Addr>().unwrap_or(Ipv4Addr::UNSPECIFIED)),
                out,
            ),
            KeyType::Ipv6 => text
                .parse::<Ipv6Addr>()
                .map(|a| self.encode(&KeySample::Ipv6(a), out))
                .map_err(|_| "Invalid key\n".to_string())?,
            KeyType::Integer => text
                .parse::<u32>()
                .map(|i| self.encode(&KeySample::Int(i64::from(i)), out))
                .map_err(|_| "Invalid key\n".to_string())?,
            KeyType::String { .. } => self.encode(&KeySample::Str(text.as_bytes()), out),
            KeyType::Binary { .. } => {
                let bytes = parse_hex(text).ok_or_else(|| "Invalid key\n".to_string())?;
                self.encode(&KeySample::Bin(&bytes), out)
            }
        };
        if ok {
            Ok(())
        } else {
            Err("Invalid key\n".into())
        }
    }

    /// Appends the `key=` text of `show table` for stored bytes `k`.
    pub fn display(self, k: &[u8], out: &mut String) {
        match self {
            KeyType::Ip => {
                if let Ok(o) = <[u8; 4]>::try_from(k) {
                    let _ = write!(out, "{}", Ipv4Addr::from(o));
                }
            }
            KeyType::Ipv6 => {
                if let Ok(o) = <[u8; 16]>::try_from(k) {
                    let _ = write!(out, "{}", Ipv6Addr::from(o));
                }
            }
            KeyType::Integer => {
                if let Ok(o) = <[u8; 4]>::try_from(k) {
                    let _ = write!(out, "{}", u32::from_be_bytes(o));
                }
            }
            KeyType::String { .. } => dump_text(k, out),
            KeyType::Binary { .. } => {
                for b in k {
                    let _ = write!(out, "{b:02X}");
                }
            }
        }
    }
}

fn ipv4_of(s: &KeySample<'_>) -> Option<Ipv4Addr> {
    match *s {
        KeySample::Ipv4(a) => Some(a),
        KeySample::Ipv6(a) => v6_to_v4(a),
        KeySample::Int(i) => Some(Ipv4Addr::from(i as u32)),
        KeySample::Str(b) => {
            let t = std::str::from_utf8(b).ok()?;
            t.parse::<Ipv4Addr>()
                .ok()
                .or_else(|| t.parse::<Ipv6Addr>().ok().and_then(v6_to_v4))
        }
        KeySample::Bin(_) => None,
    }
}

fn ipv6_of(s: &KeySample<'_>) -> Option<Ipv6Addr> {
    match *s {
        KeySample::Ipv6(a) => Some(a),
        KeySample::Str(b) => {
            let t = std::str::from_utf8(b).ok()?;
            t.parse::<Ipv6Addr>()
                .ok()
                .or_else(|| t.parse::<Ipv4Addr>().ok().map(|a| a.to_ipv6_mapped()))
        }
        _ => ipv4_of(s).map(|a| a.to_ipv6_mapped()),
    }
}

fn int_of(s: &KeySample<'_>) -> Option<i64> {
    match *s {
        KeySample::Int(i) => Some(i),
        KeySample::Ipv4(a) => Some(i64::from(u32::from(a))),
        KeySample::Str(b) => {
            // Like HAProxy's str->int cast: an optional sign and the leading digits.
            let (neg, digits) = match b.first() {
                Some(b'-') => (true, &b[1..]),
                Some(b'+') => (false, &b[1..]),
                _ => (false, b),
            };
            let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let v = std::str::from_utf8(&digits[..n])
                .ok()?
                .parse::<i64>()
                .ok()?;
            Some(if neg { -v } else { v })
        }
        KeySample::Ipv6(_) | KeySample::Bin(_) => None,
    }
}

fn parse_hex(t: &str) -> Option<Vec<u8>> {
    if !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect()
}

/// HAProxy's `dump_text`: printable ASCII as is, space, `=` and `\` escaped, controls as `\xHH`.
fn dump_text(k: &[u8], out: &mut String) {
    for &c in k {
        match c {
            b' ' | b'=' | b'\\' => {
                out.push('\\');
                out.push(c as char);
            }
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x21..=0x7e => out.push(c as char),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
}

/// `fmt::Write` into a byte vector (decimal and address text for string keys).
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(t: KeyType, s: KeySample<'_>) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        t.encode(&s, &mut v).then_some(v)
    }

    fn show(t: KeyType, k: &[u8]) -> String {
        let mut s = String::new();
        t.display(k, &mut s);
        s
    }

    #[test]
    fn ip_table_takes_ipv4_and_mapped_ipv6_only() {
        let v4 = Ipv4Addr::new(127, 0, 0, 1);
        assert_eq!(
            enc(KeyType::Ip, KeySample::Ipv4(v4)),
            Some(vec![127, 0, 0, 1])
        );
        // Recorded: an IPv6 client (::1) tracked into an `ip` table creates no entry.
        assert_eq!(enc(KeyType::Ip, KeySample::Ipv6(Ipv6Addr::LOCALHOST)), None);
        assert_eq!(
            enc(KeyType::Ip, KeySample::Ipv6(v4.to_ipv6_mapped())),
            Some(vec![127, 0, 0, 1])
        );
        assert_eq!(enc(KeyType::Ip, KeySample::Bin(b"x")), None);
        assert_eq!(
            enc(KeyType::Ip, KeySample::Str(b"10.0.0.1")),
            Some(vec![10, 0, 0, 1])
        );
    }

    #[test]
    fn ipv6_table_maps_ipv4_sources() {
        let k = enc(KeyType::Ipv6, KeySample::Ipv4(Ipv4Addr::new(127, 0, 0, 1))).unwrap();
        // Recorded: `key=::ffff:127.0.0.1` for an IPv4 client in an ipv6 table.
        assert_eq!(show(KeyType::Ipv6, &k), "::ffff:127.0.0.1");
        let k = enc(KeyType::Ipv6, KeySample::Ipv6(Ipv6Addr::LOCALHOST)).unwrap();
        assert_eq!(show(KeyType::Ipv6, &k), "::1");
    }

    #[test]
    fn string_keys_truncate_to_len() {
        let t = KeyType::String { len: 8 };
        let k = enc(t, KeySample::Str(b"/abcdefghijkl")).unwrap();
        assert_eq!(show(t, &k), "/abcdefg"); // recorded: len 8 keeps 8 bytes
        assert_eq!(enc(t, KeySample::Int(-42)).unwrap(), b"-42");
        let mut s = String::new();
        dump_text(b"a b=c\\\x01", &mut s);
        assert_eq!(s, "a\\ b\\=c\\\\\\x01");
    }

    #[test]
    fn binary_keys_pad_and_truncate() {
        let t = KeyType::Binary { len: 6 };
        let k = enc(t, KeySample::Str(b"/ab")).unwrap();
        assert_eq!(show(t, &k), "2F6162000000"); // recorded
        let k = enc(t, KeySample::Str(b"/abcdefgh")).unwrap();
        assert_eq!(show(t, &k), "2F6162636465"); // recorded
    }

    #[test]
    fn integer_keys_sort_numerically_and_convert() {
        let a = enc(KeyType::Integer, KeySample::Int(9)).unwrap();
        let b = enc(KeyType::Integer, KeySample::Int(10)).unwrap();
        assert!(a < b);
        assert_eq!(
            show(
                KeyType::Integer,
                &enc(KeyType::Integer, KeySample::Str(b"42:zz")).unwrap()
            ),
            "42"
        );
        assert_eq!(enc(KeyType::Integer, KeySample::Str(b"zz")), None);
    }

    #[test]
    fn cli_keys() {
        let mut v = Vec::new();
        KeyType::Binary { len: 4 }
            .parse_cli("2f61", &mut v)
            .unwrap();
        assert_eq!(v, vec![0x2f, 0x61, 0, 0]);
        v.clear();
        KeyType::Ip.parse_cli("::1", &mut v).unwrap();
        assert_eq!(v, vec![0, 0, 0, 0], "haproxy's inetaddr_host: 0.0.0.0");
        assert!(KeyType::Integer.parse_cli("x", &mut v).is_err());
    }
}
