//! Converters (`,lower`, `,map(file)`, `,regsub(re,s,g)`...), compiled once. Converters that
//! build new bytes allocate (noted per variant); the others reuse or reinterpret the input.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use regex::bytes::{Regex, RegexBuilder};

use crate::context::{Ctx, TableConv};
use crate::pattern::{MatchKind, Net, Patterns};
use crate::sample::{read_int, Sample};

/// An integer argument: a constant or a variable name (`add(txn.x)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntArg {
    Const(i64),
    Var(Box<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonMode {
    Ascii,
    Utf8,
    Utf8s,
    Utf8p,
    Utf8ps,
}

/// A compiled converter.
#[derive(Debug, Clone)]
pub enum Conv {
    /// Allocates (new string).
    Lower,
    /// Allocates.
    Upper,
    /// Allocates.
    Hex,
    Hex2i,
    /// Allocates.
    Base64,
    /// Allocates.
    B64Dec,
    /// Allocates (URL-safe alphabet, no padding).
    Ub64Enc,
    /// Allocates.
    Ub64Dec,
    /// Allocates.
    UrlDec {
        in_form: bool,
    },
    /// Allocates.
    UrlEnc,
    /// Allocates.
    Json(JsonMode),
    /// Substring of the input (no allocation for borrowed input).
    Field {
        idx: i32,
        delims: Box<[u8]>,
        count: i32,
        words: bool,
    },
    /// Allocates.
    Regsub {
        re: Regex,
        subst: Box<[u8]>,
        global: bool,
    },
    Map(Box<MapConv>),
    IpMask {
        v4: u32,
        v6: Option<u128>,
    },
    /// Allocates.
    Time {
        fmt: Box<[u8]>,
        offset: i64,
        local: bool,
    },
    /// Allocates.
    /// `http_date([offset[,unit]])`: unit 0 = s, 3 = ms, 6 = us (offset in that unit).
    HttpDate {
        offset: i64,
        unit: u8,
    },
    Bool,
    Not,
    Len,
    Bytes {
        off: usize,
        len: Option<usize>,
    },
    /// Allocates.
    Concat {
        start: Box<[u8]>,
        var: Option<Box<str>>,
        end: Box<[u8]>,
    },
    Arith(ArithOp, IntArg),
    /// `strcmp(<var>)`: strcmp(3)'s sign against a variable (domain-fronting checks).
    Strcmp(Box<str>),
    /// `secure_memcmp(<var>)`: equality with a variable in time independent of the content.
    SecureMemcmp(Box<str>),
    Neg,
    Cpl,
    Even,
    Odd,
    Ltrim(Box<[u8]>),
    Rtrim(Box<[u8]>),
    Table(TableConv),
    Iif(Box<[u8]>, Box<[u8]>),
    /// Hashes; `true` applies HAProxy's full avalanche (`djb2(1)`).
    Djb2(bool),
    Sdbm(bool),
    Wt6(bool),
    Crc32(bool),
    CutCrlf,
    /// Passes the sample through (`debug`).
    Nop,
    HostOnly,
    PortOnly,
}

/// A loaded map file (`map_<match>_<out>(file[,default])`).
#[derive(Debug, Clone)]
pub struct MapConv {
    pub kind: MatchKind,
    exact: HashMap<Box<[u8]>, usize>,
    pats: Option<Patterns>,
    /// IP maps pick the most specific network (HAProxy stores them in a tree).
    nets: Vec<(Net, u32)>,
    values: Vec<Sample<'static>>,
    default: Option<Sample<'static>>,
    /// `map_regm`: values use `\1` back-references.
    regm: Vec<Regex>,
    /// The pattern file as written (HAProxy's pattern reference name: the runtime socket's
    /// `add map <file>` changes what this converter sees, see [`MapConv::rebuild`]).
    pub file: Box<str>,
    /// The converter's name and default value as written, to rebuild it from new entries.
    name: Box<str>,
    default_text: Option<Box<str>>,
}

pub(crate) fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| {
            let h = (*p.first()? as char).to_digit(16)?;
            let l = (*p.get(1)? as char).to_digit(16)?;
            u8::try_from(h * 16 + l).ok()
        })
        .collect()
}

/// Checks `<scope>.<name>`.
pub(crate) fn check_var_name(v: &str) -> Result<(), String> {
    match v.split_once('.') {
        Some((scope, name))
            if ["proc", "sess", "txn", "req", "res", "check"].contains(&scope)
                && !name.is_empty() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "invalid variable name '{v}'. Expects a scope ('proc', 'sess', 'txn', 'req', 'res' or 'check') followed by a '.' and a name"
        )),
    }
}

/// A variable a rule may set (any scope; `proc.*` is shared between the shards by the engine).
pub(crate) fn check_settable_var(v: &str) -> Result<(), String> {
    check_var_name(v)
}

fn int(name: &str, a: &str) -> Result<i64, String> {
    a.trim()
        .parse()
        .map_err(|_| format!("converter '{name}' : invalid integer '{a}'"))
}

fn int_arg(name: &str, a: Option<&String>) -> Result<IntArg, String> {
    let a = a.ok_or_else(|| format!("converter '{name}' expects an argument"))?;
    if a.contains('.') && !a.starts_with('-') && a.parse::<i64>().is_err() {
        check_var_name(a)?;
        return Ok(IntArg::Var(a.as_str().into()));
    }
    Ok(IntArg::Const(int(name, a)?))
}

/// HAProxy's `strcmp` converter: strncmp(3) over the common length (the difference of the
/// first differing bytes, as glibc returns it), then the shorter string is the smaller.
fn strcmp(left: &[u8], right: &[u8]) -> i64 {
    match left.iter().zip(right).find(|(l, r)| l != r) {
        Some((l, r)) => i64::from(*l) - i64::from(*r),
        None => match left.len().cmp(&right.len()) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        },
    }
}

/// `secure_memcmp`: different lengths are unequal at once (as HAProxy); equal lengths are
/// compared over every byte, whatever the first difference.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |acc, (l, r)| acc | (l ^ r))
            == 0
}

fn nargs(name: &str, args: &[String], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        return Err(format!(
            "converter '{name}' expects {} argument(s), {} given",
            if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            },
            args.len()
        ));
    }
    Ok(())
}

fn mask6(s: &str) -> Option<u128> {
    if s.contains(':') {
        return s.parse::<Ipv6Addr>().ok().map(u128::from);
    }
    let l: u32 = s.parse().ok()?;
    (l <= 128).then(|| u128::MAX.checked_shl(128 - l).unwrap_or(0))
}

fn mask4(s: &str) -> Option<u32> {
    if s.contains('.') {
        return s.parse::<Ipv4Addr>().ok().map(u32::from);
    }
    let l: u32 = s.parse().ok()?;
    (l <= 32).then(|| u32::MAX.checked_shl(32 - l).unwrap_or(0))
}

impl Conv {
    /// Compiles `name(args)`; map files are read here (startup only).
    pub fn compile(name: &str, args: &[String]) -> Result<Conv, String> {
        let n = |min, max| nargs(name, args, min, max);
        let a = |i: usize| args.get(i).cloned().unwrap_or_default();
        Ok(match name {
            "lower" => (n(0, 0)?, Conv::Lower).1,
            "upper" => (n(0, 0)?, Conv::Upper).1,
            "hex" => (n(0, 0)?, Conv::Hex).1,
            "hex2i" => (n(0, 0)?, Conv::Hex2i).1,
            "base64" => (n(0, 0)?, Conv::Base64).1,
            "b64dec" => (n(0, 0)?, Conv::B64Dec).1,
            "ub64enc" => (n(0, 0)?, Conv::Ub64Enc).1,
            "ub64dec" => (n(0, 0)?, Conv::Ub64Dec).1,
            "url_dec" => {
                n(0, 1)?;
                Conv::UrlDec {
                    in_form: args.first().is_some_and(|v| int(name, v).unwrap_or(0) != 0),
                }
            }
            "url_enc" => (n(0, 1)?, Conv::UrlEnc).1,
            "json" => {
                n(0, 1)?;
                Conv::Json(match args.first().map(String::as_str).unwrap_or("ascii") {
                    "" | "ascii" => JsonMode::Ascii,
                    "utf8" => JsonMode::Utf8,
                    "utf8s" => JsonMode::Utf8s,
                    "utf8p" => JsonMode::Utf8p,
                    "utf8ps" => JsonMode::Utf8ps,
                    o => return Err(format!("converter 'json' : unexpected input code type '{o}'. Allowed value are 'ascii', 'utf8', 'utf8s', 'utf8p' and 'utf8ps'")),
                })
            }
            "field" | "word" => {
                n(2, 3)?;
                let idx = i32::try_from(int(name, &a(0))?).map_err(|_| "index too large")?;
                if idx == 0 {
                    return Err(format!("converter '{name}' : index must not be 0"));
                }
                let count = match args.get(2) {
                    Some(c) => i32::try_from(int(name, c)?).map_err(|_| "count too large")?,
                    None => 1,
                };
                if count < 0 {
                    return Err(format!("converter '{name}' : count must be positive"));
                }
                if a(1).is_empty() {
                    return Err(format!("converter '{name}' : empty delimiter list"));
                }
                Conv::Field {
                    idx,
                    delims: a(1).into_bytes().into(),
                    count,
                    words: name == "word",
                }
            }
            "regsub" => {
                n(2, 3)?;
                let flags = a(2);
                if let Some(c) = flags.chars().find(|c| *c != 'g' && *c != 'i') {
                    return Err(format!("converter 'regsub' : invalid regex flag '{c}', only 'i' and 'g' are supported"));
                }
                let re = RegexBuilder::new(&a(0))
                    .case_insensitive(flags.contains('i'))
                    .build()
                    .map_err(|e| format!("converter 'regsub' : invalid regex '{}': {e}", a(0)))?;
                Conv::Regsub {
                    re,
                    subst: a(1).into_bytes().into(),
                    global: flags.contains('g'),
                }
            }
            "ipmask" => {
                n(1, 2)?;
                let v4 = mask4(&a(0))
                    .ok_or_else(|| format!("converter 'ipmask' : invalid IPv4 mask '{}'", a(0)))?;
                let v6 =
                    match args.get(1) {
                        Some(m) => Some(mask6(m).ok_or_else(|| {
                            format!("converter 'ipmask' : invalid IPv6 mask '{m}'")
                        })?),
                        None => None,
                    };
                Conv::IpMask { v4, v6 }
            }
            "ltime" | "utime" => {
                n(1, 2)?;
                Conv::Time {
                    fmt: a(0).into_bytes().into(),
                    offset: args.get(1).map(|o| int(name, o)).transpose()?.unwrap_or(0),
                    local: name == "ltime",
                }
            }
            "http_date" => {
                n(0, 2)?;
                let unit = match args.get(1).map(String::as_str) {
                    None | Some("" | "s") => 0,
                    Some("ms") => 3,
                    Some("us") => 6,
                    Some(u) => {
                        return Err(format!("converter 'http_date' : unknown unit '{u}' (s, ms or us)"))
                    }
                };
                Conv::HttpDate {
                    offset: args
                        .first()
                        .filter(|o| !o.is_empty())
                        .map(|o| int(name, o))
                        .transpose()?
                        .unwrap_or(0),
                    unit,
                }
            }
            "bool" => (n(0, 0)?, Conv::Bool).1,
            "not" => (n(0, 0)?, Conv::Not).1,
            "len" | "length" => (n(0, 0)?, Conv::Len).1,
            "bytes" => {
                n(1, 2)?;
                let off = usize::try_from(int(name, &a(0))?).map_err(|_| "negative offset")?;
                let len = args
                    .get(1)
                    .map(|l| {
                        int(name, l).and_then(|v| {
                            usize::try_from(v).map_err(|_| "negative length".to_string())
                        })
                    })
                    .transpose()?;
                Conv::Bytes { off, len }
            }
            "concat" => {
                n(0, 3)?;
                let var = args.get(1).filter(|v| !v.is_empty()).cloned();
                if let Some(v) = &var {
                    check_var_name(v)?;
                }
                Conv::Concat {
                    start: a(0).into_bytes().into(),
                    var: var.map(Into::into),
                    end: a(2).into_bytes().into(),
                }
            }
            "add" | "sub" | "mul" | "div" | "mod" | "and" | "or" | "xor" => {
                n(1, 1)?;
                let op = match name {
                    "add" => ArithOp::Add,
                    "sub" => ArithOp::Sub,
                    "mul" => ArithOp::Mul,
                    "div" => ArithOp::Div,
                    "mod" => ArithOp::Mod,
                    "and" => ArithOp::And,
                    "or" => ArithOp::Or,
                    _ => ArithOp::Xor,
                };
                Conv::Arith(op, int_arg(name, args.first())?)
            }
            "strcmp" | "secure_memcmp" => {
                n(1, 1)?;
                let var = a(0);
                check_var_name(&var)?;
                if name == "strcmp" {
                    Conv::Strcmp(var.into())
                } else {
                    Conv::SecureMemcmp(var.into())
                }
            }
            "neg" => (n(0, 0)?, Conv::Neg).1,
            "cpl" => (n(0, 0)?, Conv::Cpl).1,
            "even" => (n(0, 0)?, Conv::Even).1,
            "odd" => (n(0, 0)?, Conv::Odd).1,
            "ltrim" => (n(1, 1)?, Conv::Ltrim(a(0).into_bytes().into())).1,
            "rtrim" => (n(1, 1)?, Conv::Rtrim(a(0).into_bytes().into())).1,
            "iif" => {
                (
                    n(2, 2)?,
                    Conv::Iif(a(0).into_bytes().into(), a(1).into_bytes().into()),
                )
                    .1
            }
            "djb2" | "sdbm" | "wt6" | "crc32" => {
                n(0, 1)?;
                let av = args.first().is_some_and(|v| int(name, v).unwrap_or(0) != 0);
                match name {
                    "djb2" => Conv::Djb2(av),
                    "sdbm" => Conv::Sdbm(av),
                    "wt6" => Conv::Wt6(av),
                    _ => Conv::Crc32(av),
                }
            }
            "cut_crlf" => (n(0, 0)?, Conv::CutCrlf).1,
            "debug" => Conv::Nop,
            "host_only" => (n(0, 0)?, Conv::HostOnly).1,
            "port_only" => (n(0, 0)?, Conv::PortOnly).1,
            "set-var" | "unset-var" => {
                return Err(format!(
                    "converter '{name}' is not supported by ringlb yet; use the 'http-request {name}(<var>)' action instead"
                ))
            }
            _ if name == "map" || name.starts_with("map_") => {
                n(1, 2)?;
                Conv::Map(Box::new(MapConv::load(
                    name,
                    &a(0),
                    args.get(1).map(String::as_str),
                )?))
            }
            "in_table" => {
                n(1, 1)?;
                Conv::Table(TableConv {
                    what: "in_table".into(),
                    table: a(0).into(),
                })
            }
            _ if name.starts_with("table_") => {
                n(1, 1)?;
                Conv::Table(TableConv {
                    what: name["table_".len()..].into(),
                    table: a(0).into(),
                })
            }
            _ => return Err(format!("unknown converter '{name}'")),
        })
    }

    /// Applies the converter. `None` = the converter fails (the sample is "not found").
    pub fn apply<'c>(&'c self, s: Sample<'c>, cx: Ctx<'c, '_>) -> Option<Sample<'c>> {
        use Conv as C;
        Some(match self {
            C::Lower => Sample::owned(s.to_bytes().to_ascii_lowercase()),
            C::Upper => Sample::owned(s.to_bytes().to_ascii_uppercase()),
            C::Hex => {
                let b = bin_bytes(&s);
                let mut out = Vec::with_capacity(b.len() * 2);
                for c in b.iter() {
                    out.push(HEXU[usize::from(c >> 4)]);
                    out.push(HEXU[usize::from(c & 0xf)]);
                }
                Sample::owned(out)
            }
            C::Hex2i => {
                let b = s.to_bytes();
                let t = std::str::from_utf8(&b).ok()?;
                Sample::Int(i64::from_str_radix(t.trim(), 16).ok()?)
            }
            C::Base64 => Sample::owned(b64_encode(&bin_bytes(&s), B64_STD, true)),
            C::B64Dec => Sample::Bin(Cow::Owned(b64_decode(&s.to_bytes(), false)?)),
            C::Ub64Enc => Sample::owned(b64_encode(&bin_bytes(&s), B64_URL, false)),
            C::Ub64Dec => Sample::Bin(Cow::Owned(b64_decode(&s.to_bytes(), true)?)),
            C::UrlDec { in_form } => Sample::owned(url_decode(&s.to_bytes(), *in_form)?),
            C::UrlEnc => Sample::owned(url_encode(&s.to_bytes())),
            C::Json(m) => Sample::owned(json_escape(&s.to_bytes(), *m)?),
            C::Field {
                idx,
                delims,
                count,
                words,
            } => field(s, *idx, delims, *count, *words),
            C::Regsub { re, subst, global } => {
                let b = s.to_bytes();
                let out = if *global {
                    re.replace_all(&b, Expander(subst))
                } else {
                    re.replacen(&b, 1, Expander(subst))
                };
                Sample::owned(out.into_owned())
            }
            // A file changed on the runtime socket: this shard's rebuilt copy (an owned value,
            // the copy may be replaced before the sample is used).
            C::Map(m) if !m.file.is_empty() => match cx.src.live_map(m) {
                Some(live) => live.lookup(&s)?.into_owned(),
                None => m.lookup(&s)?,
            },
            C::Map(m) => m.lookup(&s)?,
            C::IpMask { v4, v6 } => match s.to_ip()? {
                IpAddr::V4(a) => Sample::Ip(IpAddr::V4(Ipv4Addr::from(u32::from(a) & v4))),
                IpAddr::V6(a) => Sample::Ip(IpAddr::V6(Ipv6Addr::from(u128::from(a) & (*v6)?))),
            },
            C::Time { fmt, offset, local } => {
                let t = s.to_int()?.saturating_add(*offset);
                let off = if *local { cx.src.utc_offset_secs() } else { 0 };
                let mut out = Vec::with_capacity(32);
                crate::time::strftime(fmt, t, off, &mut out);
                Sample::owned(out)
            }
            C::HttpDate { offset, unit } => {
                let v = s.to_int()?.saturating_add(*offset);
                // haproxy 2.6 prints the sub-second part with "%d" (".7" for 7 ms) and C's
                // truncating division; both recorded in tests/fixtures.
                let (secs, frac) = match unit {
                    3 => (v / 1000, Some(v % 1000)),
                    6 => (v / 1_000_000, Some(v % 1_000_000)),
                    _ => (v, None),
                };
                let mut out = Vec::with_capacity(36);
                crate::time::strftime(b"%a, %d %b %Y %H:%M:%S", secs, 0, &mut out);
                if let Some(f) = frac {
                    out.push(b'.');
                    Sample::Int(f).write_to(&mut out);
                }
                out.extend_from_slice(b" GMT");
                Sample::owned(out)
            }
            C::Bool => Sample::Bool(s.to_bool()?),
            C::Not => Sample::Bool(!s.to_bool()?),
            C::Len => Sample::Int(s.to_bytes().len() as i64),
            C::Bytes { off, len } => {
                let b = s.into_bytes();
                let end = len.map_or(b.len(), |l| off.saturating_add(l).min(b.len()));
                if *off >= b.len() {
                    return Some(Sample::Bin(Cow::Borrowed(b"")));
                }
                match b {
                    Cow::Borrowed(x) => Sample::Bin(Cow::Borrowed(x.get(*off..end)?)),
                    Cow::Owned(x) => Sample::Bin(Cow::Owned(x.get(*off..end)?.to_vec())),
                }
            }
            C::Concat { start, var, end } => {
                let mut out = s.to_bytes().into_owned();
                out.extend_from_slice(start);
                if let Some(v) = var.as_deref().and_then(|v| crate::fetch::get_var(cx, v)) {
                    v.write_to(&mut out);
                }
                out.extend_from_slice(end);
                Sample::owned(out)
            }
            C::Arith(op, arg) => {
                let a = s.to_int()?;
                let b = match arg {
                    IntArg::Const(c) => *c,
                    IntArg::Var(v) => crate::fetch::get_var(cx, v)?.to_int()?,
                };
                Sample::Int(arith(*op, a, b))
            }
            C::Strcmp(var) => {
                let other = crate::fetch::get_var(cx, var)?;
                Sample::Int(strcmp(&s.to_bytes(), &other.to_bytes()))
            }
            C::SecureMemcmp(var) => {
                let other = crate::fetch::get_var(cx, var)?;
                Sample::Bool(constant_time_eq(&s.to_bytes(), &other.to_bytes()))
            }
            C::Neg => Sample::Int(s.to_int()?.wrapping_neg()),
            C::Cpl => Sample::Int(!s.to_int()?),
            C::Even => Sample::Bool(s.to_int()? & 1 == 0),
            C::Odd => Sample::Bool(s.to_int()? & 1 == 1),
            C::Ltrim(set) => trim(s, set, true),
            C::Rtrim(set) => trim(s, set, false),
            C::Table(t) => cx.src.table_conv(t, &s)?,
            C::Iif(t, f) => Sample::str(if s.to_bool()? { t } else { f }),
            C::Djb2(av) => hash_sample(crate::hash::djb2(&bin_bytes(&s)), *av),
            C::Sdbm(av) => hash_sample(crate::hash::sdbm(&bin_bytes(&s)), *av),
            C::Wt6(av) => hash_sample(crate::hash::wt6(&bin_bytes(&s)), *av),
            C::Crc32(av) => hash_sample(crate::hash::crc32(&bin_bytes(&s)), *av),
            C::CutCrlf => {
                let b = s.into_bytes();
                let end = b
                    .iter()
                    .position(|&c| c == b'\r' || c == b'\n')
                    .unwrap_or(b.len());
                match b {
                    Cow::Borrowed(x) => Sample::str(x.get(..end)?),
                    Cow::Owned(mut x) => {
                        x.truncate(end);
                        Sample::owned(x)
                    }
                }
            }
            C::Nop => s,
            C::HostOnly | C::PortOnly => {
                let b = s.into_bytes();
                let split = host_port_split(&b);
                let part = |x: &[u8]| -> Option<(usize, usize)> {
                    let (h, p) = split?;
                    let _ = x;
                    Some(if matches!(self, C::HostOnly) { h } else { p })
                };
                let (a, e) = part(&b)?;
                if matches!(self, C::PortOnly) {
                    return Some(Sample::Int(read_int(b.get(a..e)?)?));
                }
                match b {
                    Cow::Borrowed(x) => Sample::str(x.get(a..e)?),
                    Cow::Owned(x) => Sample::owned(x.get(a..e)?.to_vec()),
                }
            }
        })
    }
}

/// HAProxy's cast to binary: integers become 8 big-endian bytes, strings stay as they are.
fn bin_bytes<'s>(s: &'s Sample<'_>) -> Cow<'s, [u8]> {
    match s {
        Sample::Int(i) => Cow::Owned(i.to_be_bytes().to_vec()),
        other => other.to_bytes(),
    }
}

fn hash_sample(h: u32, avalanche: bool) -> Sample<'static> {
    let h = if avalanche {
        ringlb_balance::hash::full_hash(h)
    } else {
        h
    };
    Sample::Int(i64::from(h))
}

/// (host range, port range) of `host[:port]` / `[v6]:port`.
fn host_port_split(b: &[u8]) -> Option<((usize, usize), (usize, usize))> {
    if b.first() == Some(&b'[') {
        let close = b.iter().position(|&c| c == b']')?;
        let port = if b.get(close + 1) == Some(&b':') {
            (close + 2, b.len())
        } else {
            (b.len(), b.len())
        };
        return Some(((1, close), port));
    }
    match b.iter().rposition(|&c| c == b':') {
        Some(i) if b.iter().filter(|&&c| c == b':').count() == 1 => {
            Some(((0, i), (i + 1, b.len())))
        }
        _ => Some(((0, b.len()), (b.len(), b.len()))),
    }
}

fn arith(op: ArithOp, a: i64, b: i64) -> i64 {
    match op {
        ArithOp::Add => a.saturating_add(b),
        ArithOp::Sub => a.saturating_sub(b),
        ArithOp::Mul => a.saturating_mul(b),
        // haproxy 2.6: division by zero gives i64::MAX whatever the sign (recorded in
        // tests/fixtures/haproxy_samples.tsv); modulo by zero gives 0.
        ArithOp::Div => {
            if b == 0 {
                i64::MAX
            } else {
                a.wrapping_div(b)
            }
        }
        ArithOp::Mod => {
            if b == 0 {
                0
            } else {
                a.wrapping_rem(b)
            }
        }
        ArithOp::And => a & b,
        ArithOp::Or => a | b,
        ArithOp::Xor => a ^ b,
    }
}

fn trim<'c>(s: Sample<'c>, set: &[u8], left: bool) -> Sample<'c> {
    let b = s.into_bytes();
    let (a, e) = if left {
        (
            b.iter().position(|c| !set.contains(c)).unwrap_or(b.len()),
            b.len(),
        )
    } else {
        (
            0,
            b.iter()
                .rposition(|c| !set.contains(c))
                .map_or(0, |i| i + 1),
        )
    };
    match b {
        Cow::Borrowed(x) => Sample::str(x.get(a..e).unwrap_or(b"")),
        Cow::Owned(x) => Sample::owned(x.get(a..e).unwrap_or(b"").to_vec()),
    }
}

/// `field`/`word`: selects tokens and returns the span from the first to the last.
fn field<'c>(s: Sample<'c>, idx: i32, delims: &[u8], count: i32, words: bool) -> Sample<'c> {
    let b = s.into_bytes();
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, c) in b.iter().enumerate() {
        if delims.contains(c) {
            spans.push((start, i));
            start = i + 1;
        }
    }
    spans.push((start, b.len()));
    if words {
        spans.retain(|(a, e)| e > a);
    }
    let n = spans.len() as i64;
    let pos = if idx > 0 {
        i64::from(idx) - 1
    } else {
        n + i64::from(idx)
    };
    let (first, last) = if idx > 0 {
        let last = if count == 0 {
            n - 1
        } else {
            pos + i64::from(count) - 1
        };
        (pos, last.min(n - 1))
    } else {
        let first = if count == 0 {
            0
        } else {
            pos - i64::from(count) + 1
        };
        (first.max(0), pos)
    };
    let range = (|| {
        let f = usize::try_from(first).ok()?;
        let l = usize::try_from(last).ok()?;
        if f > l {
            return None;
        }
        Some((spans.get(f)?.0, spans.get(l)?.1))
    })();
    let (a, e) = range.unwrap_or((0, 0));
    match b {
        Cow::Borrowed(x) => Sample::str(x.get(a..e).unwrap_or(b"")),
        Cow::Owned(x) => Sample::owned(x.get(a..e).unwrap_or(b"").to_vec()),
    }
}

/// Substitution with `\N` back-references (HAProxy's syntax, not `$N`).
struct Expander<'a>(&'a [u8]);

impl regex::bytes::Replacer for Expander<'_> {
    fn replace_append(&mut self, caps: &regex::bytes::Captures<'_>, dst: &mut Vec<u8>) {
        expand_backrefs(self.0, caps, dst);
    }
}

pub(crate) fn expand_backrefs(subst: &[u8], caps: &regex::bytes::Captures<'_>, dst: &mut Vec<u8>) {
    let mut i = 0;
    while i < subst.len() {
        let c = subst.get(i).copied().unwrap_or(0);
        if c == b'\\' {
            if let Some(d) = subst.get(i + 1).filter(|d| d.is_ascii_digit()) {
                if let Some(m) = caps.get(usize::from(d - b'0')) {
                    dst.extend_from_slice(m.as_bytes());
                }
                i += 2;
                continue;
            }
        }
        dst.push(c);
        i += 1;
    }
}

const HEXU: &[u8; 16] = b"0123456789ABCDEF";
const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(crate) fn b64_encode(b: &[u8], alpha: &[u8; 64], pad: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (u32::from(c) << (16 - 8 * i)));
        let nchars = chunk.len() + 1;
        for i in 0..4 {
            if i < nchars {
                out.push(alpha[((v >> (18 - 6 * i)) & 63) as usize]);
            } else if pad {
                out.push(b'=');
            }
        }
    }
    out
}

pub(crate) fn b64_decode(b: &[u8], url: bool) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' if !url => 62,
            b'/' if !url => 63,
            b'-' if url => 62,
            b'_' if url => 63,
            _ => return None,
        })
    };
    let body = b
        .strip_suffix(b"==")
        .or_else(|| b.strip_suffix(b"="))
        .unwrap_or(b);
    if !url && !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut v = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            v |= val(c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((v >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Percent-decoding; `+` becomes a space in forms or after `?`. Bad escapes fail.
pub(crate) fn url_decode(b: &[u8], in_form: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut in_query = in_form;
    let mut i = 0;
    while i < b.len() {
        let c = *b.get(i)?;
        match c {
            b'%' => {
                let h = (*b.get(i + 1)? as char).to_digit(16)?;
                let l = (*b.get(i + 2)? as char).to_digit(16)?;
                out.push(u8::try_from(h * 16 + l).ok()?);
                i += 3;
                continue;
            }
            b'+' if in_query => out.push(b' '),
            b'?' => {
                in_query = true;
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

fn url_encode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            out.push(c);
        } else {
            out.push(b'%');
            out.push(HEXU[usize::from(c >> 4)]);
            out.push(HEXU[usize::from(c & 0xf)]);
        }
    }
    out
}

/// HAProxy's `json` converter: escapes `"`, `\`, `/`, control characters, and non-ASCII
/// (byte-wise in `ascii` mode, as `\uXXXX` code points in the UTF-8 modes).
pub(crate) fn json_escape(b: &[u8], mode: JsonMode) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::with_capacity(b.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let c = *b.get(i)?;
        let mut width = 1;
        let cp: Option<u32> = if c < 0x80 || mode == JsonMode::Ascii {
            Some(u32::from(c))
        } else {
            match decode_utf8(
                b.get(i..)?,
                matches!(mode, JsonMode::Utf8p | JsonMode::Utf8ps),
            ) {
                Some((cp, w)) => {
                    width = w;
                    Some(cp)
                }
                None => match mode {
                    JsonMode::Utf8s | JsonMode::Utf8ps => None,
                    _ => return None,
                },
            }
        };
        if let Some(cp) = cp {
            match cp {
                0x22 => out.extend_from_slice(b"\\\""),
                0x5c => out.extend_from_slice(b"\\\\"),
                0x2f => out.extend_from_slice(b"\\/"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x0a => out.extend_from_slice(b"\\n"),
                0x0d => out.extend_from_slice(b"\\r"),
                0x09 => out.extend_from_slice(b"\\t"),
                c if !(0x20..=0x7e).contains(&c) => {
                    if c > 0xffff {
                        if matches!(mode, JsonMode::Utf8s | JsonMode::Utf8ps) {
                            i += width;
                            continue;
                        }
                        return None;
                    }
                    let _ = write!(out, "\\u{c:04x}");
                }
                c => out.push(c as u8),
            }
        }
        i += width;
    }
    Some(out)
}

/// Decodes one UTF-8 code point: (value, length). `fix_overlong` accepts overlong forms.
fn decode_utf8(b: &[u8], fix_overlong: bool) -> Option<(u32, usize)> {
    let c0 = *b.first()?;
    let (len, init, min) = match c0 {
        0xc0..=0xdf => (2, u32::from(c0 & 0x1f), 0x80),
        0xe0..=0xef => (3, u32::from(c0 & 0x0f), 0x800),
        0xf0..=0xf7 => (4, u32::from(c0 & 0x07), 0x10000),
        _ => return None,
    };
    let mut v = init;
    for k in 1..len {
        let c = *b.get(k)?;
        if c & 0xc0 != 0x80 {
            return None;
        }
        v = (v << 6) | u32::from(c & 0x3f);
    }
    if (v < min && !fix_overlong) || (0xd800..=0xdfff).contains(&v) || v > 0x10ffff {
        return None;
    }
    Some((v, len))
}

impl MapConv {
    /// Loads `file` for converter `name` (`map`, `map_beg_int`, `map_regm`...).
    pub fn load(name: &str, file: &str, default: Option<&str>) -> Result<MapConv, String> {
        let text = std::fs::read(file)
            .map_err(|_| format!("converter '{name}' : failed to open pattern file <{file}>."))?;
        let mut m = MapConv::from_bytes(name, &text, default)
            .map_err(|e| format!("converter '{name}' : file <{file}> : {e}"))?;
        m.file = file.into();
        Ok(m)
    }

    /// The same converter over other entries (`key value` pairs, in order): what the runtime
    /// socket's `add|set|del|clear map` make of the file. Built on the shard that uses it.
    pub fn rebuild(&self, entries: &[(String, String)]) -> Result<MapConv, String> {
        let mut text = Vec::new();
        for (k, v) in entries {
            text.extend_from_slice(k.as_bytes());
            text.push(b' ');
            text.extend_from_slice(v.as_bytes());
            text.push(b'\n');
        }
        let mut m = MapConv::from_bytes(&self.name, &text, self.default_text.as_deref())?;
        m.file = self.file.clone();
        Ok(m)
    }

    /// Builds a map from file contents (see [`MapConv::load`]).
    pub fn from_bytes(name: &str, text: &[u8], default: Option<&str>) -> Result<MapConv, String> {
        let rest = name
            .strip_prefix("map")
            .unwrap_or(name)
            .trim_start_matches('_');
        let mut parts = rest.splitn(2, '_');
        let m = parts.next().filter(|s| !s.is_empty()).unwrap_or("str");
        let out = parts.next().unwrap_or("str");
        let regm = m == "regm";
        let kind = match m {
            "regm" => MatchKind::Reg,
            "int" => MatchKind::Int,
            "ip" => MatchKind::Ip,
            "bin" => MatchKind::Bin,
            other => MatchKind::from_suffix(other)
                .filter(|k| !matches!(k, MatchKind::Found | MatchKind::Len))
                .ok_or_else(|| format!("unknown match type '{other}'"))?,
        };
        let conv_out = |v: &str| -> Result<Sample<'static>, String> {
            Ok(match out {
                "str" => Sample::owned(v.as_bytes().to_vec()),
                "int" => Sample::Int(
                    v.trim()
                        .parse()
                        .map_err(|_| format!("'{v}' is not an integer"))?,
                ),
                "ip" => Sample::Ip(
                    v.trim()
                        .parse()
                        .map_err(|_| format!("'{v}' is not an address"))?,
                ),
                o => return Err(format!("unknown output type '{o}'")),
            })
        };
        let mut map = MapConv {
            kind,
            exact: HashMap::new(),
            pats: None,
            nets: Vec::new(),
            values: Vec::new(),
            default: default.map(conv_out).transpose()?,
            regm: Vec::new(),
            file: Box::from(""),
            name: name.into(),
            default_text: default.map(Box::from),
        };
        let mut pats = Patterns::compile(kind, false, None, &[])?;
        for (lineno, raw) in text.split(|&c| c == b'\n').enumerate() {
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.find([' ', '\t']) {
                Some(i) => (&line[..i], line[i..].trim_matches([' ', '\t'])),
                None => (line, ""),
            };
            let v = conv_out(value).map_err(|e| format!("line {} : {e}", lineno + 1))?;
            let i = map.values.len();
            map.values.push(v);
            match kind {
                MatchKind::Str => {
                    map.exact.entry(key.as_bytes().into()).or_insert(i);
                }
                MatchKind::Ip => {
                    let net = Net::parse(key).ok_or_else(|| {
                        format!("line {} : '{key}' is not an address", lineno + 1)
                    })?;
                    let bits = match net {
                        Net::V4(_, m) => m.count_ones(),
                        Net::V6(_, m) => m.count_ones(),
                    };
                    map.nets.push((net, bits));
                }
                _ => {
                    pats.add(key, None)
                        .map_err(|e| format!("line {} : {e}", lineno + 1))?;
                    if regm {
                        map.regm.push(
                            Regex::new(key).map_err(|e| format!("line {} : {e}", lineno + 1))?,
                        );
                    }
                }
            }
        }
        map.pats = Some(pats);
        Ok(map)
    }

    /// The value for sample `s` (the default when no key matches).
    pub fn lookup<'c>(&'c self, s: &Sample<'_>) -> Option<Sample<'c>> {
        let hit = match self.kind {
            MatchKind::Str => self.exact.get(&*s.to_bytes()).copied(),
            MatchKind::Ip => {
                let ip = s.to_ip()?;
                self.nets
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| n.contains(ip))
                    .max_by_key(|(i, (_, bits))| (*bits, std::cmp::Reverse(*i)))
                    .map(|(i, _)| i)
            }
            MatchKind::Beg => {
                // Longest prefix wins (HAProxy keeps `beg` maps in a prefix tree).
                let b = s.to_bytes();
                let pats = self.pats.as_ref()?;
                let mut best: Option<usize> = None;
                let mut best_len = 0;
                for i in 0..self.values.len() {
                    if let Some(p) = pats.str_at(i) {
                        if b.starts_with(p) && (best.is_none() || p.len() > best_len) {
                            best = Some(i);
                            best_len = p.len();
                        }
                    }
                }
                best
            }
            _ => self.pats.as_ref()?.first_match(s),
        };
        match hit {
            Some(i) if !self.regm.is_empty() => {
                let re = self.regm.get(i)?;
                let b = s.to_bytes();
                let caps = re.captures(&b)?;
                let mut out = Vec::new();
                expand_backrefs(&self.values.get(i)?.to_bytes(), &caps, &mut out);
                Some(Sample::owned(out))
            }
            Some(i) => self.values.get(i).map(Sample::reborrow),
            None => self.default.as_ref().map(Sample::reborrow),
        }
    }
}

impl Patterns {
    /// The i-th string pattern (for longest-prefix map lookups).
    pub(crate) fn str_at(&self, i: usize) -> Option<&[u8]> {
        self.strs_ref().get(i).map(|b| &**b)
    }
}
