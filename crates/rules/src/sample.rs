//! Samples: the typed values fetches produce and converters transform, with HAProxy's casts.
//!
//! A sample borrows from the request where it can (`Cow::Borrowed` header values, path...);
//! only converters that build new bytes allocate.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One sample value (HAProxy's `SMP_T_*`: bool, sint, str, ipv4/ipv6, bin, meth folded in str).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample<'a> {
    Bool(bool),
    Int(i64),
    Str(Cow<'a, [u8]>),
    Ip(IpAddr),
    Bin(Cow<'a, [u8]>),
}

impl<'a> Sample<'a> {
    /// A borrowed string sample.
    pub fn str(b: &'a [u8]) -> Sample<'a> {
        Sample::Str(Cow::Borrowed(b))
    }

    /// An owned string sample (allocates: used by converters and computed fetches).
    pub fn owned(b: Vec<u8>) -> Sample<'static> {
        Sample::Str(Cow::Owned(b))
    }

    /// Detaches the sample from the request (allocates for borrowed bytes).
    pub fn into_owned(self) -> Sample<'static> {
        match self {
            Sample::Bool(b) => Sample::Bool(b),
            Sample::Int(i) => Sample::Int(i),
            Sample::Ip(ip) => Sample::Ip(ip),
            Sample::Str(s) => Sample::Str(Cow::Owned(s.into_owned())),
            Sample::Bin(s) => Sample::Bin(Cow::Owned(s.into_owned())),
        }
    }

    /// A copy borrowing from `self` (no allocation).
    pub fn reborrow(&self) -> Sample<'_> {
        match self {
            Sample::Bool(b) => Sample::Bool(*b),
            Sample::Int(i) => Sample::Int(*i),
            Sample::Ip(ip) => Sample::Ip(*ip),
            Sample::Str(s) => Sample::Str(Cow::Borrowed(s)),
            Sample::Bin(s) => Sample::Bin(Cow::Borrowed(s)),
        }
    }

    /// Cast to integer as HAProxy does: booleans are 0/1, strings read an optional sign and
    /// the leading digits (`"12abc"` → 12); an empty string or an address does not cast.
    pub fn to_int(&self) -> Option<i64> {
        match self {
            Sample::Bool(b) => Some(i64::from(*b)),
            Sample::Int(i) => Some(*i),
            Sample::Str(s) | Sample::Bin(s) => read_int(s),
            Sample::Ip(IpAddr::V4(v4)) => Some(i64::from(u32::from(*v4))),
            Sample::Ip(IpAddr::V6(_)) => None,
        }
    }

    /// Cast to boolean: integers are true when non-zero (strings go through the int cast).
    pub fn to_bool(&self) -> Option<bool> {
        match self {
            Sample::Bool(b) => Some(*b),
            other => other.to_int().map(|i| i != 0),
        }
    }

    /// Cast to an address: strings must hold a textual IPv4/IPv6 address, integers are IPv4.
    pub fn to_ip(&self) -> Option<IpAddr> {
        match self {
            Sample::Ip(ip) => Some(*ip),
            Sample::Str(s) => parse_ip(s),
            Sample::Int(i) => u32::try_from(*i)
                .ok()
                .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            _ => None,
        }
    }

    /// The bytes of a string/binary sample, or its textual form (allocates for int/ip/bool).
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Sample::Str(s) | Sample::Bin(s) => Cow::Borrowed(s),
            Sample::Bool(b) => Cow::Borrowed(if *b { b"1" } else { b"0" }),
            Sample::Int(i) => Cow::Owned(i.to_string().into_bytes()),
            Sample::Ip(ip) => Cow::Owned(ip.to_string().into_bytes()),
        }
    }

    /// Appends the textual form to `out` (no intermediate allocation).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        match self {
            Sample::Str(s) | Sample::Bin(s) => out.extend_from_slice(s),
            Sample::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
            // Writing into a Vec cannot fail.
            Sample::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Sample::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
        }
    }

    /// Consumes the sample into owned bytes of its textual form.
    pub fn into_bytes(self) -> Cow<'a, [u8]> {
        match self {
            Sample::Str(s) | Sample::Bin(s) => s,
            other => Cow::Owned(other.to_bytes().into_owned()),
        }
    }
}

/// HAProxy's `read_int64`: optional sign, then digits until the first non-digit.
pub(crate) fn read_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, s.get(1..).unwrap_or(&[])),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for &c in digits.iter().take_while(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(c - b'0'));
    }
    Some(if neg { -v } else { v })
}

/// Parses a textual address (no brackets, no port).
pub(crate) fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

/// IPv4 view of an address: IPv4 itself or an IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
pub(crate) fn as_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// IPv6 view of an address (IPv4 becomes IPv4-mapped, as HAProxy compares mixed families).
pub(crate) fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_follow_haproxy() {
        assert_eq!(Sample::str(b"12abc").to_int(), Some(12));
        assert_eq!(Sample::str(b"-7").to_int(), Some(-7));
        assert_eq!(Sample::str(b"abc").to_int(), Some(0));
        assert_eq!(Sample::str(b"").to_int(), None);
        assert_eq!(Sample::Bool(true).to_int(), Some(1));
        assert_eq!(Sample::Int(0).to_bool(), Some(false));
        assert_eq!(Sample::Int(3).to_bool(), Some(true));
        assert_eq!(
            Sample::str(b"10.0.0.1").to_ip(),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(Sample::str(b"nope").to_ip(), None);
        assert_eq!(&*Sample::Int(42).to_bytes(), b"42");
        let mut v = Vec::new();
        Sample::Ip("::1".parse().unwrap()).write_to(&mut v);
        assert_eq!(v, b"::1");
    }
}
