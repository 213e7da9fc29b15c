//! ACL patterns and match methods (`-m str|beg|end|sub|reg|dir|dom|int|ip|found|len|bool|bin`,
//! HAProxy's method match), compiled once: lowercased for `-i`, regexes built, CIDRs parsed,
//! integer ranges resolved.

use std::collections::HashSet;
use std::net::IpAddr;

use regex::bytes::{Regex, RegexBuilder};

use crate::sample::{as_v4, as_v6, Sample};

/// How a sample is compared with the patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Found,
    Bool,
    Int,
    Ip,
    Bin,
    Len,
    Str,
    Sub,
    Reg,
    Beg,
    End,
    Dir,
    Dom,
    /// HTTP method match (`method GET`): known methods compare exactly.
    Meth,
}

impl MatchKind {
    /// Parses the word after `-m`.
    pub fn parse(s: &str) -> Option<MatchKind> {
        Some(match s {
            "found" => MatchKind::Found,
            "bool" => MatchKind::Bool,
            "int" => MatchKind::Int,
            "ip" => MatchKind::Ip,
            "bin" => MatchKind::Bin,
            "len" => MatchKind::Len,
            "str" => MatchKind::Str,
            "sub" => MatchKind::Sub,
            "reg" => MatchKind::Reg,
            "beg" => MatchKind::Beg,
            "end" => MatchKind::End,
            "dir" => MatchKind::Dir,
            "dom" => MatchKind::Dom,
            _ => return None,
        })
    }

    /// Match implied by an ACL keyword suffix (`path_beg` → beg).
    pub fn from_suffix(s: &str) -> Option<MatchKind> {
        Some(match s {
            "beg" => MatchKind::Beg,
            "end" => MatchKind::End,
            "sub" => MatchKind::Sub,
            "dir" => MatchKind::Dir,
            "dom" => MatchKind::Dom,
            "reg" => MatchKind::Reg,
            "len" => MatchKind::Len,
            "found" => MatchKind::Found,
            "str" => MatchKind::Str,
            _ => return None,
        })
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    V4(u32, u32),
    V6(u128, u128),
}

impl Net {
    /// `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/m.m.m.m`, `x::y`, `x::y/len`.
    pub fn parse(s: &str) -> Option<Net> {
        let (addr, mask) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let m = match mask {
                    None => u32::MAX,
                    Some(m) if m.contains('.') => u32::from(m.parse::<std::net::Ipv4Addr>().ok()?),
                    Some(m) => {
                        let l: u32 = m.parse().ok()?;
                        if l > 32 {
                            return None;
                        }
                        u32::MAX.checked_shl(32 - l).unwrap_or(0)
                    }
                };
                Some(Net::V4(u32::from(a) & m, m))
            }
            IpAddr::V6(a) => {
                let l: u32 = match mask {
                    None => 128,
                    Some(m) => m.parse().ok()?,
                };
                if l > 128 {
                    return None;
                }
                let m = u128::MAX.checked_shl(128 - l).unwrap_or(0);
                Some(Net::V6(u128::from(a) & m, m))
            }
        }
    }

    /// True when `ip` is in the network; IPv4 and IPv4-mapped IPv6 compare as HAProxy does.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match *self {
            Net::V4(n, m) => as_v4(ip).is_some_and(|v| u32::from(v) & m == n),
            Net::V6(n, m) => u128::from(as_v6(ip)) & m == n,
        }
    }
}

/// An inclusive integer range (`9:17`, `9-17`, `gt 100` = 101..).
pub type Range = (i64, i64);

/// Compiled patterns of one ACL.
#[derive(Debug, Clone)]
pub struct Patterns {
    pub kind: MatchKind,
    pub icase: bool,
    strs: Vec<Box<[u8]>>,
    ranges: Vec<Range>,
    nets: Vec<Net>,
    regexes: Vec<Regex>,
    /// Hash indexes for large exact-string and address lists (`-f` blocklists), built by
    /// [`Patterns::seal`]; small lists are scanned.
    index: Option<Box<Index>>,
}

/// Above this many patterns, exact strings and networks are looked up through hashes
/// (one probe per distinct prefix length) instead of a scan, as HAProxy uses trees.
const INDEX_MIN: usize = 16;

#[derive(Debug, Clone, Default)]
struct Index {
    exact: HashSet<Box<[u8]>>,
    v4: Vec<(u32, HashSet<u32>)>,
    v6: Vec<(u128, HashSet<u128>)>,
}

/// Parses an integer pattern with an optional operator applying to it.
pub fn parse_range(p: &str, op: Option<&str>) -> Option<Range> {
    let num = |s: &str| -> Option<i64> { s.trim().parse().ok() };
    if let Some(op) = op {
        let v = num(p)?;
        return Some(match op {
            "eq" => (v, v),
            "gt" => (v.saturating_add(1), i64::MAX),
            "ge" => (v, i64::MAX),
            "lt" => (i64::MIN, v.saturating_sub(1)),
            "le" => (i64::MIN, v),
            _ => return None,
        });
    }
    if let Some((a, b)) = p.split_once(':') {
        let lo = if a.is_empty() { i64::MIN } else { num(a)? };
        let hi = if b.is_empty() { i64::MAX } else { num(b)? };
        return Some((lo, hi));
    }
    // `9-17`: a range when both sides are unsigned numbers (ringlb also accepts the dash form
    // the guide uses; `-5` stays a negative number).
    if let Some((a, b)) = p.split_once('-') {
        if !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) {
            return Some((num(a)?, num(b)?));
        }
    }
    let v = num(p)?;
    Some((v, v))
}

impl Patterns {
    /// Compiles `pats` for `kind`. `op` is the integer operator written before them.
    pub fn compile(
        kind: MatchKind,
        icase: bool,
        op: Option<&str>,
        pats: &[String],
    ) -> Result<Patterns, String> {
        let mut p = Patterns {
            kind,
            icase,
            strs: Vec::new(),
            ranges: Vec::new(),
            nets: Vec::new(),
            regexes: Vec::new(),
            index: None,
        };
        for s in pats {
            p.add(s, op)?;
        }
        p.seal();
        Ok(p)
    }

    /// Builds the lookup indexes once all patterns are added (call again after [`add`]).
    ///
    /// [`add`]: Patterns::add
    pub fn seal(&mut self) {
        self.index = None;
        let mut idx = Index::default();
        match self.kind {
            MatchKind::Str if self.strs.len() >= INDEX_MIN => {
                idx.exact = self.strs.iter().cloned().collect();
            }
            MatchKind::Ip if self.nets.len() >= INDEX_MIN => {
                for n in &self.nets {
                    match *n {
                        Net::V4(a, m) => match idx.v4.iter_mut().find(|(mm, _)| *mm == m) {
                            Some((_, set)) => {
                                set.insert(a);
                            }
                            None => idx.v4.push((m, HashSet::from([a]))),
                        },
                        Net::V6(a, m) => match idx.v6.iter_mut().find(|(mm, _)| *mm == m) {
                            Some((_, set)) => {
                                set.insert(a);
                            }
                            None => idx.v6.push((m, HashSet::from([a]))),
                        },
                    }
                }
            }
            _ => return,
        }
        self.index = Some(Box::new(idx));
    }

    /// Adds one pattern (also used for `-f` file lines).
    pub fn add(&mut self, s: &str, op: Option<&str>) -> Result<(), String> {
        match self.kind {
            MatchKind::Found | MatchKind::Bool => {
                return Err(format!(
                    "'{}' matching method does not accept patterns (got '{s}')",
                    if self.kind == MatchKind::Found {
                        "found"
                    } else {
                        "bool"
                    }
                ))
            }
            MatchKind::Int | MatchKind::Len => self.ranges.push(
                parse_range(s, op)
                    .ok_or_else(|| format!("'{s}' is not a number or a range"))?,
            ),
            MatchKind::Ip => self.nets.push(Net::parse(s).ok_or_else(|| {
                format!("'{s}' is not a valid IPv4 or IPv6 address (host names are not resolved by ringlb)")
            })?),
            MatchKind::Reg => self.regexes.push(
                RegexBuilder::new(s)
                    .case_insensitive(self.icase)
                    .build()
                    .map_err(|e| format!("regex '{s}' is invalid: {e}"))?,
            ),
            MatchKind::Bin => self.strs.push(
                crate::conv::unhex(s.as_bytes())
                    .ok_or_else(|| format!("'{s}' is not a valid hex string"))?
                    .into(),
            ),
            _ => {
                // Method patterns keep their case: a known method compares exactly even with
                // `-i` (`method -i GET` matches GET, `method -i get` does not), as haproxy.
                let b = if self.icase && self.kind != MatchKind::Meth {
                    s.to_ascii_lowercase()
                } else {
                    s.to_string()
                };
                self.strs.push(b.into_bytes().into());
            }
        }
        Ok(())
    }

    pub(crate) fn strs_ref(&self) -> &[Box<[u8]>] {
        &self.strs
    }

    /// True when the ACL has no patterns (then only found/bool can match).
    pub fn is_empty(&self) -> bool {
        self.strs.is_empty()
            && self.ranges.is_empty()
            && self.nets.is_empty()
            && self.regexes.is_empty()
    }

    /// Index of the first matching pattern (used by maps), or `None`.
    pub fn matches(&self, s: &Sample<'_>) -> bool {
        match (&self.index, self.kind) {
            (Some(idx), MatchKind::Str) => {
                let b = s.to_bytes();
                if !self.icase {
                    return idx.exact.contains(&*b);
                }
                // Lowercase into a stack buffer for ordinary lengths (no allocation).
                let mut buf = [0u8; 256];
                match buf.get_mut(..b.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(&b);
                        dst.make_ascii_lowercase();
                        idx.exact.contains(&*dst)
                    }
                    None => idx.exact.contains(&*b.to_ascii_lowercase()),
                }
            }
            (Some(idx), MatchKind::Ip) => {
                let Some(ip) = s.to_ip() else {
                    return false;
                };
                if let Some(v4) = as_v4(ip) {
                    let v = u32::from(v4);
                    if idx.v4.iter().any(|(m, set)| set.contains(&(v & m))) {
                        return true;
                    }
                }
                let v = u128::from(as_v6(ip));
                idx.v6.iter().any(|(m, set)| set.contains(&(v & m)))
            }
            _ => self.first_match(s).is_some(),
        }
    }

    /// Index of the first pattern that matches `s`.
    pub fn first_match(&self, s: &Sample<'_>) -> Option<usize> {
        match self.kind {
            MatchKind::Found => Some(0),
            MatchKind::Bool => s.to_bool().filter(|b| *b).map(|_| 0),
            MatchKind::Int => {
                let v = s.to_int()?;
                self.ranges.iter().position(|(lo, hi)| *lo <= v && v <= *hi)
            }
            MatchKind::Len => {
                let v = s.to_bytes().len() as i64;
                self.ranges.iter().position(|(lo, hi)| *lo <= v && v <= *hi)
            }
            MatchKind::Ip => {
                let ip = s.to_ip()?;
                self.nets.iter().position(|n| n.contains(ip))
            }
            MatchKind::Reg => {
                let b = s.to_bytes();
                self.regexes.iter().position(|r| r.is_match(&b))
            }
            MatchKind::Bin => {
                let b = s.to_bytes();
                self.strs.iter().position(|p| **p == *b)
            }
            MatchKind::Meth => {
                let b = s.to_bytes();
                let known = is_known_method(&b);
                self.strs.iter().position(|p| {
                    if known || is_known_method(p) {
                        **p == *b
                    } else {
                        eq(p, &b, self.icase)
                    }
                })
            }
            _ => {
                let b = s.to_bytes();
                self.strs
                    .iter()
                    .position(|p| str_match(self.kind, p, &b, self.icase))
            }
        }
    }
}

fn is_known_method(m: &[u8]) -> bool {
    matches!(
        m,
        b"GET" | b"HEAD" | b"POST" | b"PUT" | b"DELETE" | b"CONNECT" | b"OPTIONS" | b"TRACE"
    )
}

fn eq(p: &[u8], s: &[u8], icase: bool) -> bool {
    if icase {
        p.eq_ignore_ascii_case(s)
    } else {
        p == s
    }
}

/// String-family matches; `p` is already lowercased when `icase`.
pub(crate) fn str_match(kind: MatchKind, p: &[u8], s: &[u8], icase: bool) -> bool {
    match kind {
        MatchKind::Str => eq(p, s, icase),
        MatchKind::Beg => s.get(..p.len()).is_some_and(|h| eq(p, h, icase)),
        MatchKind::End => s
            .len()
            .checked_sub(p.len())
            .and_then(|i| s.get(i..))
            .is_some_and(|t| eq(p, t, icase)),
        MatchKind::Sub => p.is_empty() || s.windows(p.len()).any(|w| eq(p, w, icase)),
        MatchKind::Dir => match_word(p, s, icase, b"/?"),
        MatchKind::Dom => match_word(p, s, icase, b"/?.:"),
        _ => false,
    }
}

/// HAProxy's `match_word`: the pattern (without leading/trailing delimiters) must appear in
/// the sample bounded by delimiters or the ends.
fn match_word(p: &[u8], s: &[u8], icase: bool, delims: &[u8]) -> bool {
    let is_d = |c: u8| delims.contains(&c);
    let start = p.iter().position(|&c| !is_d(c)).unwrap_or(p.len());
    let end = p.iter().rposition(|&c| !is_d(c)).map_or(start, |i| i + 1);
    let Some(p) = p.get(start..end) else {
        return false;
    };
    if p.is_empty() {
        return false;
    }
    let mut may = true;
    let mut i = 0;
    while i < s.len() {
        let c = s.get(i).copied().unwrap_or(0);
        if is_d(c) {
            may = true;
            i += 1;
            continue;
        }
        if may {
            if let Some(w) = s.get(i..i + p.len()) {
                let after = s.get(i + p.len()).copied();
                if eq(p, w, icase) && after.is_none_or(is_d) {
                    return true;
                }
            } else {
                return false;
            }
            may = false;
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Sample<'_> {
        Sample::str(v.as_bytes())
    }

    fn pats(kind: MatchKind, icase: bool, p: &[&str]) -> Patterns {
        let p: Vec<String> = p.iter().map(|x| x.to_string()).collect();
        Patterns::compile(kind, icase, None, &p).unwrap()
    }

    #[test]
    fn string_methods_table() {
        use MatchKind::*;
        // (method, -i, patterns, sample, expected) — examples from configuration.txt 7.1.3.
        let cases: &[(MatchKind, bool, &[&str], &str, bool)] = &[
            (Str, false, &["/graphql"], "/graphql", true),
            (Str, false, &["/graphql"], "/GraphQL", false),
            (Str, true, &["api.example.com"], "API.Example.com", true),
            (Beg, false, &["/static/", "/images/"], "/images/a.png", true),
            (Beg, false, &["/static/"], "/stat", false),
            (End, false, &[".jpg", ".png"], "/a/b.png", true),
            (End, false, &[".jpg"], "/a/b.jpgx", false),
            (
                Sub,
                true,
                &["mobile", "android"],
                "Mozilla (Linux; Android 10)",
                true,
            ),
            (
                Sub,
                false,
                &["android"],
                "Mozilla (Linux; Android 10)",
                false,
            ),
            (Dir, false, &["img"], "/a/img/b.png", true),
            (Dir, false, &["/img/"], "/img", true),
            (Dir, false, &["img"], "/images/x", false),
            (Dir, false, &["a/b"], "/x/a/b/c", true),
            (Dom, false, &["example.com"], "www.example.com", true),
            (Dom, false, &["example.com"], "www.example.com:80", true),
            (Dom, false, &["example.com"], "www.myexample.com", false),
            (Dom, true, &["EXAMPLE"], "www.example.com", true),
            (Len, false, &["3:5"], "abcd", true),
            (Len, false, &["3:5"], "ab", false),
            (Reg, false, &["^/api/v[0-9]+/"], "/api/v2/users", true),
            (Reg, true, &["^/API/"], "/api/x", true),
            (Reg, false, &["^/API/"], "/api/x", false),
        ];
        for (i, (k, icase, p, sample, want)) in cases.iter().enumerate() {
            assert_eq!(
                pats(*k, *icase, p).matches(&s(sample)),
                *want,
                "case {i}: {k:?} {p:?} {sample}"
            );
        }
    }

    #[test]
    fn int_ranges_and_operators() {
        assert_eq!(parse_range("9-17", None), Some((9, 17)));
        assert_eq!(parse_range("9:17", None), Some((9, 17)));
        assert_eq!(parse_range("1024:", None), Some((1024, i64::MAX)));
        assert_eq!(parse_range(":5", None), Some((i64::MIN, 5)));
        assert_eq!(parse_range("-5", None), Some((-5, -5)));
        assert_eq!(parse_range("100", Some("gt")), Some((101, i64::MAX)));
        assert_eq!(parse_range("100", Some("le")), Some((i64::MIN, 100)));
        let p = Patterns::compile(MatchKind::Int, false, Some("gt"), &["100".into()]).unwrap();
        assert!(p.matches(&Sample::Int(101)));
        assert!(!p.matches(&Sample::Int(100)));
        let p = pats(MatchKind::Int, false, &["9-17"]);
        assert!(p.matches(&Sample::Int(9)) && p.matches(&Sample::Int(17)));
        assert!(!p.matches(&Sample::Int(18)));
        // Strings cast to int: "42abc" → 42.
        assert!(pats(MatchKind::Int, false, &["42"]).matches(&s("42abc")));
        assert!(Patterns::compile(MatchKind::Int, false, None, &["x".into()]).is_err());
    }

    #[test]
    fn ip_networks() {
        let p = pats(
            MatchKind::Ip,
            false,
            &[
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "2001:db8::/32",
            ],
        );
        let ip = |v: &str| Sample::Ip(v.parse().unwrap());
        assert!(p.matches(&ip("10.1.2.3")));
        assert!(p.matches(&ip("172.31.255.255")));
        assert!(!p.matches(&ip("172.32.0.1")));
        assert!(
            p.matches(&ip("::ffff:192.168.1.1")),
            "v4-mapped matches v4 net"
        );
        assert!(p.matches(&ip("2001:db8:1::1")));
        assert!(!p.matches(&ip("2001:db9::1")));
        assert!(p.matches(&s("10.9.9.9")), "strings are parsed as addresses");
        assert!(!p.matches(&s("nope")));
        let p = pats(
            MatchKind::Ip,
            false,
            &["203.0.113.0/255.255.255.0", "127.0.0.1"],
        );
        assert!(p.matches(&ip("203.0.113.77")));
        assert!(p.matches(&ip("127.0.0.1")));
        assert!(!p.matches(&ip("127.0.0.2")));
        let v6 = pats(MatchKind::Ip, false, &["::ffff:10.0.0.0/104"]);
        assert!(
            v6.matches(&ip("10.2.3.4")),
            "v4 sample vs v6 mapped network"
        );
        assert!(Patterns::compile(MatchKind::Ip, false, None, &["10.0.0.0/33".into()]).is_err());
        assert!(Patterns::compile(MatchKind::Ip, false, None, &["localhost".into()]).is_err());
    }

    #[test]
    fn indexed_lists_agree_with_scans() {
        // 200 networks of mixed lengths and 100 host names: the indexed lookup must give the
        // same answers as a linear scan.
        let mut nets: Vec<String> = (0..100).map(|i| format!("10.{i}.0.0/16")).collect();
        nets.extend((0..50).map(|i| format!("192.168.{i}.0/24")));
        nets.extend((0..50).map(|i| format!("2001:db8:{i:x}::/48")));
        let p = Patterns::compile(MatchKind::Ip, false, None, &nets).unwrap();
        assert!(p.index.is_some());
        let mut scan = p.clone();
        scan.index = None;
        let probes = [
            "10.5.1.1",
            "10.99.255.255",
            "10.100.0.1",
            "192.168.49.7",
            "192.168.50.7",
            "2001:db8:31::1",
            "2001:db8:32::1",
            "::ffff:10.7.7.7",
            "8.8.8.8",
        ];
        for ip in probes {
            let s = Sample::Ip(ip.parse().unwrap());
            assert_eq!(p.matches(&s), scan.matches(&s), "{ip}");
        }
        assert!(p.matches(&Sample::Ip("10.5.1.1".parse().unwrap())));
        assert!(!p.matches(&Sample::Ip("192.168.50.7".parse().unwrap())));
        let hosts: Vec<String> = (0..100).map(|i| format!("host{i}.example.com")).collect();
        let p = Patterns::compile(MatchKind::Str, true, None, &hosts).unwrap();
        assert!(p.index.is_some());
        assert!(p.matches(&s("HOST42.example.COM")));
        assert!(!p.matches(&s("host100.example.com")));
        let long = "x".repeat(300);
        assert!(!p.matches(&s(&long)));
        let exact = Patterns::compile(MatchKind::Str, false, None, &hosts).unwrap();
        assert!(exact.matches(&s("host7.example.com")));
        assert!(!exact.matches(&s("HOST7.example.com")));
    }

    #[test]
    fn method_found_bool_bin() {
        let p = pats(MatchKind::Meth, false, &["DELETE", "PURGE"]);
        assert!(p.matches(&s("DELETE")));
        assert!(!p.matches(&s("delete")));
        assert!(p.matches(&s("PURGE")));
        let pi = pats(MatchKind::Meth, true, &["purge"]);
        assert!(pi.matches(&s("PuRgE")), "-i applies to unknown methods");
        let pg = pats(MatchKind::Meth, true, &["get"]);
        assert!(
            !pg.matches(&s("GET")),
            "a known method compares exactly, as HAProxy"
        );
        assert!(pats(MatchKind::Meth, true, &["GET"]).matches(&s("GET")));
        assert!(pats(MatchKind::Found, false, &[]).matches(&s("")));
        let b = pats(MatchKind::Bool, false, &[]);
        assert!(b.matches(&Sample::Bool(true)) && !b.matches(&Sample::Int(0)));
        assert!(Patterns::compile(MatchKind::Bool, false, None, &["1".into()]).is_err());
        assert!(Patterns::compile(MatchKind::Bin, false, None, &["16030".into()]).is_err());
        let bin = Patterns::compile(MatchKind::Bin, false, None, &["1603".into()]).unwrap();
        assert!(bin.matches(&Sample::Bin(std::borrow::Cow::Borrowed(&[0x16, 0x03]))));
    }
}
