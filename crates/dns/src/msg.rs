//! DNS messages (RFC 1035, EDNS0 from RFC 6891): the A/AAAA queries haproxy sends and the
//! parts of an answer it reads (header flags, rcode, answer records with name compression,
//! CNAME chains).
//!
//! Owns: [`encode_query`], [`decode`], [`Response::addresses`]. Never panics on input: every
//! read is bounds-checked and a malformed message is a [`MsgError`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record types haproxy uses.
pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

/// Response codes (header `RCODE`).
pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_REFUSED: u8 = 5;

/// Longest name on the wire (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
/// Compression pointers followed in one name before the message is called malformed (a
/// loop would otherwise never end).
const MAX_POINTERS: usize = 32;
/// CNAME hops followed from the question to an address (haproxy stops much earlier).
const MAX_CNAME_HOPS: usize = 8;

/// Why a message could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgError {
    /// The name cannot be a DNS name (empty label, label over 63 bytes, over 255 bytes).
    BadName,
    /// The message ends inside a field.
    Short,
    /// A compression pointer points forward or loops.
    BadPointer,
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, lower case, without the final dot.
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    pub data: RData,
}

/// The record data ringlb understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// Target name, lower case.
    Cname(String),
    /// Anything else (SRV, TXT...), or an A/AAAA whose length is wrong.
    Other,
}

/// A decoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: u16,
    /// QR bit: this is a response.
    pub is_response: bool,
    /// TC bit: the server cut the answer to fit.
    pub truncated: bool,
    pub rcode: u8,
    /// The question (name lower case, type); `None` when QDCOUNT is 0.
    pub question: Option<(String, u16)>,
    /// QDCOUNT as sent (haproxy refuses an answer that does not echo exactly one question).
    pub qdcount: u16,
    pub answers: Vec<Record>,
}

/// What the answer section says about `qname` for `qtype` once CNAMEs are followed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Addresses {
    /// Addresses of `qtype` at the end of the chain, in answer order.
    pub addrs: Vec<IpAddr>,
    /// Smallest TTL along the way.
    pub ttl: Option<u32>,
    /// A CNAME was followed.
    pub via_cname: bool,
    /// A CNAME pointed to a name the answer does not resolve (no address, no next CNAME).
    pub cname_dangling: bool,
}

/// Builds a recursive query for `name` (`app.internal`, a final dot allowed) of type
/// `qtype`, with an EDNS0 OPT record announcing `payload` bytes when `Some` (haproxy always
/// announces one: `accepted_payload_size`, 512 by default).
pub fn encode_query(
    id: u16,
    name: &str,
    qtype: u16,
    payload: Option<u16>,
) -> Result<Vec<u8>, MsgError> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    // RD (recursion desired), a standard query.
    out.extend_from_slice(&[0x01, 0x00]);
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&0u16.to_be_bytes()); // ANCOUNT
    out.extend_from_slice(&0u16.to_be_bytes()); // NSCOUNT
    out.extend_from_slice(&u16::from(payload.is_some()).to_be_bytes()); // ARCOUNT
    encode_name(&mut out, name)?;
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(size) = payload {
        out.push(0); // root name
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes()); // CLASS = UDP payload size
        out.extend_from_slice(&[0, 0, 0, 0]); // extended rcode, version, flags
        out.extend_from_slice(&0u16.to_be_bytes()); // RDLEN
    }
    Ok(out)
}

fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), MsgError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() + 2 > MAX_NAME {
        return Err(MsgError::BadName);
    }
    for label in name.split('.') {
        let len = u8::try_from(label.len()).map_err(|_| MsgError::BadName)?;
        if len == 0 || len > 63 {
            return Err(MsgError::BadName);
        }
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// A bounds-checked reader over a message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgError> {
        let end = self.pos.checked_add(n).ok_or(MsgError::Short)?;
        let s = self.buf.get(self.pos..end).ok_or(MsgError::Short)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, MsgError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MsgError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A possibly compressed name starting at the current position; the position moves
    /// past its in-place part.
    fn name(&mut self) -> Result<String, MsgError> {
        let (name, end) = read_name(self.buf, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

/// Reads the name at `start`; returns it (lower case, dot-separated) and where the bytes
/// after its in-place part begin.
fn read_name(buf: &[u8], start: usize) -> Result<(String, usize), MsgError> {
    let mut name = String::new();
    let mut pos = start;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *buf.get(pos).ok_or(MsgError::Short)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                let end = end.unwrap_or(pos + 1);
                return Ok((name, end));
            }
            0x00 => {
                let label = buf
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(MsgError::Short)?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
                if name.len() > MAX_NAME {
                    return Err(MsgError::BadName);
                }
                pos += 1 + usize::from(len);
            }
            0xC0 => {
                let low = *buf.get(pos + 1).ok_or(MsgError::Short)?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                jumps += 1;
                // Pointers go backwards (RFC 1035 4.1.4): this also rules out loops.
                if target >= pos || jumps > MAX_POINTERS {
                    return Err(MsgError::BadPointer);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(MsgError::BadName),
        }
    }
}

/// Decodes a response: header, question and answer section (authority and additional
/// records are not needed and not read).
pub fn decode(buf: &[u8]) -> Result<Response, MsgError> {
    let mut r = Reader { buf, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qdcount = r.u16()?;
    let ancount = r.u16()?;
    let _nscount = r.u16()?;
    let _arcount = r.u16()?;
    let mut question = None;
    for _ in 0..qdcount {
        let name = r.name()?;
        let qtype = r.u16()?;
        let _class = r.u16()?;
        question.get_or_insert((name, qtype));
    }
    let mut answers = Vec::with_capacity(usize::from(ancount.min(64)));
    for _ in 0..ancount {
        let name = r.name()?;
        let rtype = r.u16()?;
        let _class = r.u16()?;
        let ttl = r.u32()?;
        let rdlen = usize::from(r.u16()?);
        let rdata_at = r.pos;
        let rdata = r.take(rdlen)?;
        let data = match (rtype, rdata.len()) {
            (TYPE_A, 4) => RData::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
            (TYPE_AAAA, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(rdata);
                RData::Aaaa(Ipv6Addr::from(o))
            }
            (TYPE_CNAME, _) => RData::Cname(read_name(buf, rdata_at)?.0),
            _ => RData::Other,
        };
        answers.push(Record {
            name,
            rtype,
            ttl,
            data,
        });
    }
    Ok(Response {
        id,
        is_response: flags & 0x8000 != 0,
        truncated: flags & 0x0200 != 0,
        rcode: u8::try_from(flags & 0x000F).unwrap_or(0),
        question,
        qdcount,
        answers,
    })
}

impl Response {
    /// The addresses of type `qtype` for `qname`, following CNAME records in the answer.
    pub fn addresses(&self, qname: &str, qtype: u16) -> Addresses {
        let mut out = Addresses::default();
        let mut name = normalize(qname);
        for _ in 0..=MAX_CNAME_HOPS {
            let mut next = None;
            for rec in self.answers.iter().filter(|r| r.name == name) {
                let ip = match (&rec.data, qtype) {
                    (RData::A(a), TYPE_A) => Some(IpAddr::V4(*a)),
                    (RData::Aaaa(a), TYPE_AAAA) => Some(IpAddr::V6(*a)),
                    (RData::Cname(t), _) => {
                        next.get_or_insert_with(|| t.clone());
                        None
                    }
                    _ => None,
                };
                if let Some(ip) = ip {
                    out.addrs.push(ip);
                }
                if ip.is_some() || matches!(rec.data, RData::Cname(_)) {
                    out.ttl = Some(out.ttl.map_or(rec.ttl, |t| t.min(rec.ttl)));
                }
            }
            if !out.addrs.is_empty() {
                return out;
            }
            match next {
                Some(n) => {
                    out.via_cname = true;
                    name = n;
                }
                None => {
                    out.cname_dangling = out.via_cname;
                    return out;
                }
            }
        }
        out.cname_dangling = true;
        out
    }
}

/// Lower case, without a final dot (how names compare).
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes_match_rfc_layout() {
        let q = encode_query(0x1234, "app.internal", TYPE_A, Some(512)).unwrap();
        let want: &[u8] = &[
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0,
            1, // header, RD, 1 question, 1 additional
            3, b'a', b'p', b'p', 8, b'i', b'n', b't', b'e', b'r', b'n', b'a', b'l', 0, // name
            0, 1, 0, 1, // A IN
            0, 0, 41, 0x02, 0x00, 0, 0, 0, 0, 0, 0, // OPT, payload 512
        ];
        assert_eq!(q, want);
        let plain = encode_query(7, "a.b.", TYPE_AAAA, None).unwrap();
        assert_eq!(
            plain,
            [0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 28, 0, 1]
        );
    }

    /// haproxy 2.6's own query for the same name (fixtures/record-query.sh), id removed.
    #[test]
    fn query_is_byte_identical_to_haproxys() {
        let hex = include_str!("../fixtures/haproxy-query-a.hex").trim();
        let haproxy: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let ours = encode_query(0xbeef, "app.internal", TYPE_A, Some(512)).unwrap();
        assert_eq!(&ours[2..], &haproxy[..]);
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(encode_query(1, "", TYPE_A, None), Err(MsgError::BadName));
        assert_eq!(
            encode_query(1, "a..b", TYPE_A, None),
            Err(MsgError::BadName)
        );
        let long = "x".repeat(64);
        assert_eq!(encode_query(1, &long, TYPE_A, None), Err(MsgError::BadName));
    }

    /// An answer written by hand: `www.example.com` CNAME `web.example.com` (compressed),
    /// which has two A records.
    const CNAME_ANSWER: &[u8] = &[
        0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0, // id, QR RD RA, 1 q, 3 answers
        3, b'w', b'w', b'w', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm',
        0, // name at 12
        0, 1, 0, 1, // A IN
        0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, // www CNAME ttl 60 rdlen 6
        3, b'w', b'e', b'b', 0xc0, 16, // web + pointer to "example.com" (offset 16)
        0xc0, 45, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1, // web A 10.0.0.1 ttl 30
        0xc0, 45, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 10, 0, 0, 2, // web A 10.0.0.2 ttl 256
    ];

    #[test]
    fn follows_compressed_cname_chain() {
        let r = decode(CNAME_ANSWER).unwrap();
        assert_eq!(r.id, 0xabcd);
        assert!(r.is_response && !r.truncated);
        assert_eq!(r.rcode, RCODE_NOERROR);
        assert_eq!(r.question, Some(("www.example.com".into(), TYPE_A)));
        assert_eq!(r.answers[0].data, RData::Cname("web.example.com".into()));
        let a = r.addresses("WWW.Example.com.", TYPE_A);
        assert_eq!(
            a.addrs,
            vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])]
        );
        assert!(a.via_cname && !a.cname_dangling);
        assert_eq!(a.ttl, Some(30));
        // No AAAA at the end of the chain.
        let none = r.addresses("www.example.com", TYPE_AAAA);
        assert!(none.addrs.is_empty() && none.cname_dangling);
    }

    #[test]
    fn rcode_and_truncation_flags() {
        // NXDOMAIN, no answers.
        let nx: &[u8] = &[
            0, 9, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1,
        ];
        let r = decode(nx).unwrap();
        assert_eq!(r.rcode, RCODE_NXDOMAIN);
        // TC set, REFUSED.
        let tc: &[u8] = &[0, 9, 0x83, 0x05, 0, 0, 0, 0, 0, 0, 0, 0];
        let r = decode(tc).unwrap();
        assert!(r.truncated);
        assert_eq!(r.rcode, RCODE_REFUSED);
        assert_eq!(r.question, None);
    }

    #[test]
    fn aaaa_record() {
        let msg: &[u8] = &[
            0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, b'h', 0, 0, 28, 0, 1, // q h AAAA
            0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 5, 0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 1,
        ];
        let r = decode(msg).unwrap();
        let a = r.addresses("h", TYPE_AAAA);
        assert_eq!(a.addrs, vec!["2001:db8::1".parse::<IpAddr>().unwrap()]);
        assert!(r.addresses("h", TYPE_A).addrs.is_empty());
    }

    #[test]
    fn malformed_messages_are_errors() {
        // Every prefix of a valid answer is short, never a panic.
        for n in 0..CNAME_ANSWER.len() {
            assert!(decode(&CNAME_ANSWER[..n]).is_err(), "prefix {n}");
        }
        // A pointer to itself.
        let looped: &[u8] = &[
            0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ];
        assert_eq!(decode(looped), Err(MsgError::BadPointer));
        // Reserved label bits.
        let bad: &[u8] = &[
            0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 1, 0, 1,
        ];
        assert_eq!(decode(bad), Err(MsgError::BadName));
    }
}
