//! A minimal DER reader for the X.509 fields ringlb needs: serial, issuer and subject names,
//! validity and DNS subject alternative names. No X.509 parser is available offline, and
//! rustls/webpki keep theirs private; this walker reads only those fields and never panics on
//! input (every read is bounds-checked and returns `DerError`).

use std::fmt;

/// Malformed DER, with what was being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError(pub &'static str);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed certificate DER ({})", self.0)
    }
}

impl std::error::Error for DerError {}

/// One tag-length-value element.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Sequential reader over concatenated DER elements.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Reader { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn next(&mut self, what: &'static str) -> Result<Tlv<'a>, DerError> {
        let (&tag, after) = self.rest.split_first().ok_or(DerError(what))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("high tag number"));
        }
        let (&first, mut after) = after.split_first().ok_or(DerError(what))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || after.len() < n {
                return Err(DerError("length"));
            }
            let (len_bytes, tail) = after.split_at(n);
            after = tail;
            len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if after.len() < len {
            return Err(DerError(what));
        }
        let (content, rest) = after.split_at(len);
        self.rest = rest;
        Ok(Tlv { tag, content })
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], DerError> {
        let tlv = self.next(what)?;
        if tlv.tag != tag {
            return Err(DerError(what));
        }
        Ok(tlv.content)
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const BMP_STRING: u8 = 0x1e;
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Whether `data` is exactly one DER SEQUENCE (a sanity check of `.ocsp` files, which hold a
/// DER `OCSPResponse`).
pub fn is_one_sequence(data: &[u8]) -> bool {
    let mut r = Reader::new(data);
    r.expect(SEQUENCE, "sequence").is_ok() && r.is_empty()
}

/// One attribute of a distinguished name, in certificate order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnEntry {
    /// OpenSSL's short name (`CN`, `O`, `emailAddress`...) or the dotted OID when unknown.
    pub short: String,
    /// OpenSSL's long name (`commonName`...), equal to `short` when unknown.
    pub long: String,
    pub value: String,
}

/// A distinguished name (subject or issuer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dn {
    pub entries: Vec<DnEntry>,
}

impl Dn {
    /// HAProxy's one-line form: `/C=FR/O=Example/CN=www.example.com`.
    pub fn oneline(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            s.push('/');
            s.push_str(&e.short);
            s.push('=');
            s.push_str(&e.value);
        }
        s
    }

    /// RFC 2253 form (`ssl_c_s_dn(,0,rfc2253)`): last RDN first, comma separated, escaped.
    pub fn rfc2253(&self) -> String {
        let parts: Vec<String> = self
            .entries
            .iter()
            .rev()
            .map(|e| format!("{}={}", e.short, escape_rfc2253(&e.value)))
            .collect();
        parts.join(",")
    }

    /// The value of `field` (short or long name, case-insensitive, or dotted OID) at occurrence
    /// `occ`: 1-based from the start when positive, from the end when negative, first when 0
    /// (HAProxy's `ssl_c_s_dn(<entry>,<occ>)`).
    pub fn field(&self, field: &str, occ: i32) -> Option<&str> {
        let matches = |e: &&DnEntry| {
            e.short.eq_ignore_ascii_case(field) || e.long.eq_ignore_ascii_case(field)
        };
        let found: Vec<&DnEntry> = self.entries.iter().filter(matches).collect();
        let idx = match occ {
            0 => 0,
            n if n > 0 => usize::try_from(n - 1).ok()?,
            n => found
                .len()
                .checked_sub(usize::try_from(n.unsigned_abs()).ok()?)?,
        };
        found.get(idx).map(|e| e.value.as_str())
    }
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A certificate time as written (`YYMMDDhhmmssZ` or `YYYYMMDDhhmmssZ`) and as Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asn1Time {
    pub raw: String,
    pub unix_secs: i64,
}

impl Asn1Time {
    /// HAProxy's `ssl_c_notafter` form, `YYMMDDhhmmssZ` (GeneralizedTime loses its century,
    /// as HAProxy does for years 20xx).
    pub fn haproxy(&self) -> String {
        if self.raw.len() == 15 && self.raw.starts_with("20") {
            self.raw[2..].to_string()
        } else {
            self.raw.clone()
        }
    }
}

/// The fields of an X.509 certificate ringlb reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number magnitude bytes, without DER's sign byte, as OpenSSL stores it and HAProxy
    /// returns it in `ssl_c_serial` (`0x00F1E2` → `F1E2`; checked against haproxy 2.6).
    pub serial: Vec<u8>,
    pub issuer: Dn,
    pub subject: Dn,
    pub not_before: Asn1Time,
    pub not_after: Asn1Time,
    /// DNS names from the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// The public key as `show ssl cert` prints it: `RSA2048`, `EC256`... (`Unknown0` for
    /// other types, as OpenSSL reports no size for them).
    pub key_algo: String,
    /// X.509 version as `ssl_c_version` gives it (3 for a v3 certificate).
    pub version: i64,
    /// OpenSSL's short name of the signature algorithm (`ssl_c_sig_alg`), if it has one.
    pub sig_alg: Option<&'static str>,
    /// OpenSSL's short name of the public key algorithm (`ssl_c_key_alg`), if it has one.
    pub key_alg: Option<&'static str>,
}

impl CertInfo {
    /// Parses a DER certificate.
    pub fn parse(der: &[u8]) -> Result<CertInfo, DerError> {
        let cert = Reader::new(der).expect(SEQUENCE, "certificate")?;
        let tbs = Reader::new(cert).expect(SEQUENCE, "tbsCertificate")?;
        let mut r = Reader::new(tbs);
        // `[0] EXPLICIT INTEGER` (0 = v1, absent = v1); OpenSSL adds 1 for `ssl_c_version`.
        let mut version = 1;
        if r.peek_tag() == Some(0xa0) {
            let v = r.next("version")?;
            if let Ok([n]) = Reader::new(v.content).expect(INTEGER, "version") {
                version = i64::from(*n) + 1;
            }
        }
        let serial = match r.expect(INTEGER, "serialNumber")? {
            [0, rest @ ..] if rest.first().is_some_and(|b| b & 0x80 != 0) => rest.to_vec(),
            bytes => bytes.to_vec(),
        };
        let sig_alg = Reader::new(r.expect(SEQUENCE, "signature algorithm")?)
            .expect(OID, "signature algorithm")
            .ok()
            .and_then(sig_alg_name);
        let issuer = parse_name(r.expect(SEQUENCE, "issuer")?)?;
        let mut validity = Reader::new(r.expect(SEQUENCE, "validity")?);
        let not_before = parse_time(validity.next("notBefore")?)?;
        let not_after = parse_time(validity.next("notAfter")?)?;
        let subject = parse_name(r.expect(SEQUENCE, "subject")?)?;
        let spki = r.expect(SEQUENCE, "subjectPublicKeyInfo")?;
        let key_algo = key_algo(spki)?;
        let key_alg = Reader::new(spki)
            .expect(SEQUENCE, "key algorithm")
            .and_then(|a| Reader::new(a).expect(OID, "key algorithm"))
            .ok()
            .and_then(key_alg_name);
        let mut dns_names = Vec::new();
        while !r.is_empty() {
            let tlv = r.next("extensions")?;
            if tlv.tag == 0xa3 {
                dns_names = parse_san(Reader::new(tlv.content).expect(SEQUENCE, "extensions")?)?;
            }
        }
        Ok(CertInfo {
            serial,
            issuer,
            subject,
            not_before,
            not_after,
            dns_names,
            key_algo,
            version,
            sig_alg,
            key_alg,
        })
    }
}

/// OpenSSL's short names (`OBJ_nid2sn`, what haproxy's `ssl_c_sig_alg` returns) of the
/// signature algorithms certificates use.
fn sig_alg_name(oid: &[u8]) -> Option<&'static str> {
    const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    Some(match oid {
        [p @ .., n] if p == PKCS1 => match n {
            4 => "RSA-MD5",
            5 => "RSA-SHA1",
            10 => "RSASSA-PSS",
            11 => "RSA-SHA256",
            12 => "RSA-SHA384",
            13 => "RSA-SHA512",
            14 => "RSA-SHA224",
            _ => return None,
        },
        [p @ .., n] if p == ECDSA => match n {
            1 => "ecdsa-with-SHA224",
            2 => "ecdsa-with-SHA256",
            3 => "ecdsa-with-SHA384",
            4 => "ecdsa-with-SHA512",
            _ => return None,
        },
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01] => "ecdsa-with-SHA1",
        [0x2b, 0x65, 0x70] => "ED25519",
        [0x2b, 0x65, 0x71] => "ED448",
        _ => return None,
    })
}

/// OpenSSL's short names of public key algorithms (`ssl_c_key_alg`).
fn key_alg_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        OID_RSA => "rsaEncryption",
        OID_EC => "id-ecPublicKey",
        OID_DSA => "DSA",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a] => "RSASSA-PSS",
        [0x2b, 0x65, 0x70] => "ED25519",
        [0x2b, 0x65, 0x71] => "ED448",
        _ => return None,
    })
}

const BIT_STRING: u8 = 0x03;
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];

/// HAProxy's `cert_get_pkey_algo`: the key type and its size in bits.
fn key_algo(spki: &[u8]) -> Result<String, DerError> {
    let mut r = Reader::new(spki);
    let mut alg = Reader::new(r.expect(SEQUENCE, "key algorithm")?);
    let oid = alg.expect(OID, "key algorithm")?;
    let bits_field = r.expect(BIT_STRING, "public key")?;
    Ok(match oid {
        OID_RSA => {
            let key = bits_field.get(1..).ok_or(DerError("public key"))?;
            let mut seq = Reader::new(Reader::new(key).expect(SEQUENCE, "RSA key")?);
            format!("RSA{}", int_bits(seq.expect(INTEGER, "RSA modulus")?))
        }
        OID_EC => {
            let curve = alg.expect(OID, "EC curve")?;
            let bits = match curve {
                [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => 256,
                [0x2b, 0x81, 0x04, 0x00, 0x22] => 384,
                [0x2b, 0x81, 0x04, 0x00, 0x23] => 521,
                [0x2b, 0x81, 0x04, 0x00, 0x0a] => 256,
                _ => 0,
            };
            format!("EC{bits}")
        }
        OID_DSA => "DSA0".to_string(),
        _ => "Unknown0".to_string(),
    })
}

/// Bit length of a DER INTEGER's magnitude.
fn int_bits(int: &[u8]) -> usize {
    let mag: &[u8] = match int.iter().position(|&b| b != 0) {
        Some(i) => int.get(i..).unwrap_or(&[]),
        None => &[],
    };
    match mag.first() {
        Some(&top) => (mag.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

fn parse_name(content: &[u8]) -> Result<Dn, DerError> {
    let mut dn = Dn::default();
    let mut rdns = Reader::new(content);
    while !rdns.is_empty() {
        let mut set = Reader::new(rdns.expect(SET, "RDN")?);
        while !set.is_empty() {
            let mut atv = Reader::new(set.expect(SEQUENCE, "attribute")?);
            let oid = atv.expect(OID, "attribute type")?;
            let value = atv.next("attribute value")?;
            let (short, long) = attribute_names(oid);
            let value = if value.tag == BMP_STRING {
                let units: Vec<u16> = value
                    .content
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                    .collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(value.content).into_owned()
            };
            dn.entries.push(DnEntry { short, long, value });
        }
    }
    Ok(dn)
}

/// OpenSSL's short and long names for the usual DN attributes.
fn attribute_names(oid: &[u8]) -> (String, String) {
    let known: Option<(&str, &str)> = match oid {
        [0x55, 0x04, n] => match n {
            3 => Some(("CN", "commonName")),
            4 => Some(("SN", "surname")),
            5 => Some(("serialNumber", "serialNumber")),
            6 => Some(("C", "countryName")),
            7 => Some(("L", "localityName")),
            8 => Some(("ST", "stateOrProvinceName")),
            9 => Some(("street", "streetAddress")),
            10 => Some(("O", "organizationName")),
            11 => Some(("OU", "organizationalUnitName")),
            12 => Some(("title", "title")),
            17 => Some(("postalCode", "postalCode")),
            42 => Some(("GN", "givenName")),
            43 => Some(("initials", "initials")),
            46 => Some(("dnQualifier", "dnQualifier")),
            65 => Some(("pseudonym", "pseudonym")),
            _ => None,
        },
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => {
            Some(("emailAddress", "emailAddress"))
        }
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => {
            Some(("DC", "domainComponent"))
        }
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => Some(("UID", "userId")),
        _ => None,
    };
    match known {
        Some((s, l)) => (s.to_string(), l.to_string()),
        None => {
            let dotted = dotted_oid(oid);
            (dotted.clone(), dotted)
        }
    }
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn parse_time(tlv: Tlv<'_>) -> Result<Asn1Time, DerError> {
    let raw = std::str::from_utf8(tlv.content).map_err(|_| DerError("time"))?;
    let digits = raw.strip_suffix('Z').ok_or(DerError("time zone"))?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DerError("time digits"));
    }
    let num = |s: &str| s.parse::<i64>().map_err(|_| DerError("time digits"));
    let (year, rest) = match (tlv.tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = num(&digits[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (num(&digits[..4])?, &digits[4..]),
        _ => return Err(DerError("time")),
    };
    let (mo, d, h, mi, s) = (
        num(&rest[0..2])?,
        num(&rest[2..4])?,
        num(&rest[4..6])?,
        num(&rest[6..8])?,
        num(&rest[8..10])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(DerError("time range"));
    }
    let unix_secs = days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    Ok(Asn1Time {
        raw: raw.to_string(),
        unix_secs,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_san(extensions: &[u8]) -> Result<Vec<String>, DerError> {
    let mut names = Vec::new();
    let mut exts = Reader::new(extensions);
    while !exts.is_empty() {
        let mut ext = Reader::new(exts.expect(SEQUENCE, "extension")?);
        let oid = ext.expect(OID, "extension id")?;
        if ext.peek_tag() == Some(BOOLEAN) {
            ext.next("critical")?;
        }
        let value = ext.expect(OCTET_STRING, "extension value")?;
        if oid != OID_SAN {
            continue;
        }
        let mut general = Reader::new(Reader::new(value).expect(SEQUENCE, "subjectAltName")?);
        while !general.is_empty() {
            let name = general.next("general name")?;
            if name.tag == 0x82 {
                names.push(String::from_utf8_lossy(name.content).into_owned());
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2038, 1, 19), 24_855);
    }

    #[test]
    fn times() {
        let t = parse_time(Tlv {
            tag: UTC_TIME,
            content: b"491231235959Z",
        })
        .unwrap();
        assert_eq!(t.unix_secs, 2_524_607_999);
        assert_eq!(t.haproxy(), "491231235959Z");
        let g = parse_time(Tlv {
            tag: GENERALIZED_TIME,
            content: b"20500101000000Z",
        })
        .unwrap();
        assert_eq!(g.unix_secs, 2_524_608_000);
        assert_eq!(g.haproxy(), "500101000000Z");
        assert!(parse_time(Tlv {
            tag: UTC_TIME,
            content: b"491331235959Z"
        })
        .is_err());
        assert!(parse_time(Tlv {
            tag: UTC_TIME,
            content: b"4912312359"
        })
        .is_err());
    }

    #[test]
    fn oids() {
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]),
            "1.2.840.113549.1.1.11"
        );
        assert_eq!(attribute_names(&[0x55, 0x04, 0x03]).0, "CN");
        assert_eq!(attribute_names(&[0x55, 0x04, 0x63]).0, "2.5.4.99");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let der = [0x30, 0x82, 0x01];
        assert!(CertInfo::parse(&der).is_err());
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 0x30) as u8).collect();
            let _ = CertInfo::parse(&junk);
        }
        assert!(CertInfo::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn dn_fields() {
        let e = |s: &str, l: &str, v: &str| DnEntry {
            short: s.into(),
            long: l.into(),
            value: v.into(),
        };
        let dn = Dn {
            entries: vec![
                e("C", "countryName", "FR"),
                e("OU", "organizationalUnitName", "a"),
                e("OU", "organizationalUnitName", "b"),
                e("CN", "commonName", "x, y"),
            ],
        };
        assert_eq!(dn.oneline(), "/C=FR/OU=a/OU=b/CN=x, y");
        assert_eq!(dn.rfc2253(), "CN=x\\, y,OU=b,OU=a,C=FR");
        assert_eq!(dn.field("cn", 0), Some("x, y"));
        assert_eq!(dn.field("OU", 2), Some("b"));
        assert_eq!(dn.field("OU", -1), Some("b"));
        assert_eq!(dn.field("organizationalUnitName", -2), Some("a"));
        assert_eq!(dn.field("OU", 3), None);
        assert_eq!(dn.field("OU", -3), None);
        assert_eq!(dn.field("O", 0), None);
    }
}
