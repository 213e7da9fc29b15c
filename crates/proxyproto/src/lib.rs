//! The PROXY protocol (HAProxy's `doc/proxy-protocol.txt`), versions 1 (text) and 2 (binary).
//!
//! Owns: [`parse`] (a listener with `accept-proxy` reads the header a load balancer in front
//! put before the client's bytes) and [`v1`]/[`v2`] (a server with `send-proxy`/`send-proxy-v2`
//! gets the client's addresses in front of the proxied bytes, with the TLVs
//! `proxy-v2-options` and `send-proxy-v2-ssl(-cn)` ask for, in haproxy 2.6's order).
//! Must not: touch sockets; the engine peeks bytes, asks [`parse`] how long the header is, and
//! consumes exactly that many so the client's own bytes stay in the socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12-byte signature of version 2.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\x00\r\nQUIT\n";
/// The longest version 1 line, CRLF included (the specification's limit).
pub const V1_MAX: usize = 107;
/// The longest version 2 header ringlb accepts (16 fixed bytes and up to 4 KiB of addresses and
/// TLVs); a longer one is refused as malformed rather than buffered.
pub const V2_MAX: usize = 16 + 4096;

/// TLV types (proxy-protocol.txt §2.2).
pub mod tlv {
    pub const ALPN: u8 = 0x01;
    pub const AUTHORITY: u8 = 0x02;
    pub const CRC32C: u8 = 0x03;
    pub const NOOP: u8 = 0x04;
    pub const UNIQUE_ID: u8 = 0x05;
    pub const SSL: u8 = 0x20;
    pub const SSL_VERSION: u8 = 0x21;
    pub const SSL_CN: u8 = 0x22;
    pub const SSL_CIPHER: u8 = 0x23;
    pub const SSL_SIG_ALG: u8 = 0x24;
    pub const SSL_KEY_ALG: u8 = 0x25;
    /// `client` bits of the SSL TLV.
    pub const CLIENT_SSL: u8 = 0x01;
    pub const CLIENT_CERT_CONN: u8 = 0x02;
    pub const CLIENT_CERT_SESS: u8 = 0x04;
}

/// A header read from a client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// Bytes the header takes at the start of the stream.
    pub len: usize,
    /// `(source, destination)`: the client the connection speaks for. `None` for
    /// `PROXY UNKNOWN`, a v2 `LOCAL` command or an address family ringlb does not route
    /// (UNIX, UNSPEC): the connection keeps its own addresses, as with haproxy.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    /// Version 2 TLVs as `(type, value)`, in order.
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// What [`parse`] makes of the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete header.
    Done(Header),
    /// A valid beginning: wait for more bytes.
    Incomplete,
    /// Not a PROXY header, or a malformed one: the connection is closed.
    Invalid(&'static str),
}

/// Parses the header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if is_prefix(buf, b"PROXY ") {
        return if buf.len() < 6 {
            Parsed::Incomplete
        } else {
            parse_v1(buf)
        };
    }
    if is_prefix(buf, &V2_SIGNATURE) {
        return if buf.len() < 16 {
            Parsed::Incomplete
        } else {
            parse_v2(buf)
        };
    }
    Parsed::Invalid("not a PROXY protocol header")
}

/// `buf` and `sig` agree on their common length.
fn is_prefix(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf.get(..n) == sig.get(..n)
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("PROXY v1 line too long")
        } else if window.contains(&b'\n') {
            Parsed::Invalid("PROXY v1 line not ended by CRLF")
        } else {
            Parsed::Incomplete
        };
    };
    let Ok(line) = std::str::from_utf8(&buf[6..end]) else {
        return Parsed::Invalid("PROXY v1 line is not text");
    };
    let done = |addrs| {
        Parsed::Done(Header {
            version: 1,
            len: end + 2,
            addrs,
            tlvs: Vec::new(),
        })
    };
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return done(None);
    }
    let words: Vec<&str> = line.split(' ').collect();
    let [proto, src, dst, sport, dport] = words.as_slice() else {
        return Parsed::Invalid("PROXY v1 line: wrong number of fields");
    };
    let (Some(sport), Some(dport)) = (port(sport), port(dport)) else {
        return Parsed::Invalid("PROXY v1 line: bad port");
    };
    let ips = match *proto {
        "TCP4" => src
            .parse::<Ipv4Addr>()
            .ok()
            .zip(dst.parse::<Ipv4Addr>().ok())
            .map(|(s, d)| (IpAddr::V4(s), IpAddr::V4(d))),
        "TCP6" => src
            .parse::<Ipv6Addr>()
            .ok()
            .zip(dst.parse::<Ipv6Addr>().ok())
            .map(|(s, d)| (IpAddr::V6(s), IpAddr::V6(d))),
        _ => return Parsed::Invalid("PROXY v1 line: unknown protocol"),
    };
    match ips {
        Some((s, d)) => done(Some((SocketAddr::new(s, sport), SocketAddr::new(d, dport)))),
        None => Parsed::Invalid("PROXY v1 line: bad address"),
    }
}

/// A decimal port as the v1 line writes it (no sign, no leading zero, at most 65535).
fn port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn parse_v2(buf: &[u8]) -> Parsed {
    let (ver_cmd, fam) = (buf[12], buf[13]);
    let body_len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + body_len;
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid("PROXY v2: unsupported version");
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Parsed::Invalid("PROXY v2: unknown command"),
    };
    if total > V2_MAX {
        return Parsed::Invalid("PROXY v2: header too long");
    }
    let Some(body) = buf.get(16..total) else {
        return Parsed::Incomplete;
    };
    // TCP or UDP over IPv4/IPv6 carry addresses; UNIX and UNSPEC do not route anywhere.
    let (addrs, addr_len) = match fam {
        0x11 | 0x12 if body.len() >= 12 => {
            let ip = |o: usize| Ipv4Addr::new(body[o], body[o + 1], body[o + 2], body[o + 3]);
            let p = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            (
                Some((
                    SocketAddr::new(IpAddr::V4(ip(0)), p(8)),
                    SocketAddr::new(IpAddr::V4(ip(4)), p(10)),
                )),
                12,
            )
        }
        0x21 | 0x22 if body.len() >= 36 => {
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[o..o + 16]);
                Ipv6Addr::from(a)
            };
            let p = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            (
                Some((
                    SocketAddr::new(IpAddr::V6(ip(0)), p(32)),
                    SocketAddr::new(IpAddr::V6(ip(16)), p(34)),
                )),
                36,
            )
        }
        0x11 | 0x12 | 0x21 | 0x22 => return Parsed::Invalid("PROXY v2: addresses truncated"),
        0x31 | 0x32 if body.len() >= 216 => (None, 216),
        0x31 | 0x32 => return Parsed::Invalid("PROXY v2: addresses truncated"),
        0 => (None, 0),
        // Families the specification does not define: the addresses and TLVs are skipped.
        _ => (None, body.len()),
    };
    // A LOCAL command (health checks of the balancer in front) carries no client: the
    // connection keeps its own addresses, and any address block is skipped.
    let (addrs, tlv_start) = if local || fam == 0 {
        (None, addr_len)
    } else {
        (addrs, addr_len)
    };
    let mut tlvs = Vec::new();
    let mut rest = &body[tlv_start.min(body.len())..];
    let mut at = 16 + tlv_start;
    let mut crc_at = None;
    while !rest.is_empty() {
        let [t, hi, lo, ..] = *rest else {
            return Parsed::Invalid("PROXY v2: truncated TLV");
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(value) = rest.get(3..3 + len) else {
            return Parsed::Invalid("PROXY v2: truncated TLV");
        };
        if t == tlv::CRC32C {
            if len != 4 {
                return Parsed::Invalid("PROXY v2: bad CRC32C TLV");
            }
            crc_at = Some(at + 3);
        }
        tlvs.push((t, value.to_vec()));
        rest = &rest[3 + len..];
        at += 3 + len;
    }
    if let Some(o) = crc_at {
        let mut copy = buf[..total].to_vec();
        let sent = u32::from_be_bytes([copy[o], copy[o + 1], copy[o + 2], copy[o + 3]]);
        copy[o..o + 4].fill(0);
        if crc32c(&copy) != sent {
            return Parsed::Invalid("PROXY v2: CRC32C mismatch");
        }
    }
    Parsed::Done(Header {
        version: 2,
        len: total,
        addrs,
        tlvs,
    })
}

/// Both addresses in one family: IPv4 when both are, else IPv6 (IPv4 mapped), as haproxy.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        v6 => v6,
    };
    if src.is_ipv4() && dst.is_ipv4() {
        (src, dst)
    } else {
        (v6(src), v6(dst))
    }
}

/// The version 1 line for a client `src` that connected to `dst` (`None`: `PROXY UNKNOWN`).
pub fn v1(addrs: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let Some((src, dst)) = addrs else {
        return b"PROXY UNKNOWN\r\n".to_vec();
    };
    let (src, dst) = same_family(src, dst);
    let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// The TLS facts of the client connection the SSL TLV describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslTlv {
    /// `TLSv1.3`...
    pub version: String,
    /// `cert-cn` / `send-proxy-v2-ssl-cn`: the client certificate's subject CN.
    pub cn: Option<String>,
    /// `ssl-cipher`: OpenSSL's cipher name.
    pub cipher: Option<String>,
    /// The client presented a certificate on this connection (and the session).
    pub client_cert: bool,
    /// OpenSSL's X509_V verify result of that certificate.
    pub verify: u32,
}

/// What a version 2 header carries besides the addresses (haproxy's TLV order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V2Extras {
    /// `crc32c` option: a CRC32C TLV over the whole header.
    pub crc32c: bool,
    /// The ALPN the client negotiated (haproxy always sends it when there is one).
    pub alpn: Option<Vec<u8>>,
    /// `authority` option: the SNI the client sent.
    pub authority: Option<String>,
    /// `unique-id` option: the request's unique id.
    pub unique_id: Option<String>,
    /// `ssl` option (`send-proxy-v2-ssl`): `None` when the server does not ask for the TLV;
    /// `Some(None)` on a plain client connection (the TLV says "no TLS").
    pub ssl: Option<Option<SslTlv>>,
}

fn push_tlv(out: &mut Vec<u8>, t: u8, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.push(t);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&value[..usize::from(len)]);
}

/// The version 2 header: `PROXY` with the client's addresses, or `LOCAL` when there are none
/// (a connection with no client, as a health check's).
pub fn v2(addrs: Option<(SocketAddr, SocketAddr)>, extras: &V2Extras) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    match addrs.map(|(s, d)| same_family(s, d)) {
        Some((SocketAddr::V4(s), SocketAddr::V4(d))) => {
            out.extend_from_slice(&[0x21, 0x11, 0, 0]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        Some((s, d)) => {
            let ip6 = |a: SocketAddr| match a.ip() {
                IpAddr::V6(v6) => v6.octets(),
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            };
            out.extend_from_slice(&[0x21, 0x21, 0, 0]);
            out.extend_from_slice(&ip6(s));
            out.extend_from_slice(&ip6(d));
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        None => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
    }
    let mut crc_at = None;
    if extras.crc32c {
        crc_at = Some(out.len() + 3);
        push_tlv(&mut out, tlv::CRC32C, &[0; 4]);
    }
    if let Some(alpn) = &extras.alpn {
        push_tlv(&mut out, tlv::ALPN, alpn);
    }
    if let Some(a) = &extras.authority {
        push_tlv(&mut out, tlv::AUTHORITY, a.as_bytes());
    }
    if let Some(id) = &extras.unique_id {
        push_tlv(&mut out, tlv::UNIQUE_ID, id.as_bytes());
    }
    if let Some(ssl) = &extras.ssl {
        let mut value = vec![0u8; 5];
        if let Some(s) = ssl {
            let mut client = tlv::CLIENT_SSL;
            push_tlv(&mut value, tlv::SSL_VERSION, s.version.as_bytes());
            if s.client_cert {
                client |= tlv::CLIENT_CERT_SESS | tlv::CLIENT_CERT_CONN;
                value[1..5].copy_from_slice(&s.verify.to_be_bytes());
            }
            if let Some(cn) = &s.cn {
                push_tlv(&mut value, tlv::SSL_CN, cn.as_bytes());
            }
            if let Some(c) = &s.cipher {
                push_tlv(&mut value, tlv::SSL_CIPHER, c.as_bytes());
            }
            value[0] = client;
        }
        push_tlv(&mut out, tlv::SSL, &value);
    }
    let body = u16::try_from(out.len() - 16).unwrap_or(u16::MAX);
    out[14..16].copy_from_slice(&body.to_be_bytes());
    if let Some(o) = crc_at {
        let crc = crc32c(&out);
        out[o..o + 4].copy_from_slice(&crc.to_be_bytes());
    }
    out
}

/// CRC32C (Castagnoli), as the CRC32C TLV carries it.
pub fn crc32c(data: &[u8]) -> u32 {
    const POLY: u32 = 0x82F6_3B78;
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_examples_from_the_specification() {
        let h = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\nGET /";
        let Parsed::Done(p) = parse(h) else { panic!() };
        assert_eq!(p.len, h.len() - 5);
        assert_eq!(
            p.addrs,
            Some((sa("255.255.255.255:65535"), sa("255.255.255.255:65535")))
        );
        let h = b"PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert!(matches!(parse(h), Parsed::Invalid(_)));
        let h = b"PROXY TCP6 2001:db8::1 ::1 1234 80\r\n";
        let Parsed::Done(p) = parse(h) else { panic!() };
        assert_eq!(p.addrs, Some((sa("[2001:db8::1]:1234"), sa("[::1]:80"))));
        let Parsed::Done(p) = parse(b"PROXY UNKNOWN ffff:: ::1 1 2\r\n") else {
            panic!()
        };
        assert_eq!(p.addrs, None);
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n").clone(),
            parse(b"PROXY UNKNOWN\r\n")
        );
    }

    #[test]
    fn v1_incomplete_and_malformed() {
        assert_eq!(parse(b"PRO"), Parsed::Incomplete);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 "), Parsed::Incomplete);
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Invalid(_)));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
            Parsed::Invalid(_)
        ));
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    #[test]
    fn v2_round_trip_and_local() {
        let (s, d) = (sa("10.0.0.1:4000"), sa("10.0.0.2:80"));
        let h = v2(Some((s, d)), &V2Extras::default());
        assert_eq!(h.len(), 28);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        let mut with_data = h.clone();
        with_data.extend_from_slice(b"GET /");
        let Parsed::Done(p) = parse(&with_data) else {
            panic!()
        };
        assert_eq!((p.version, p.len, p.addrs), (2, 28, Some((s, d))));
        for cut in 1..h.len() {
            assert_eq!(parse(&h[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        let local = v2(None, &V2Extras::default());
        assert_eq!(local, b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00");
        let Parsed::Done(p) = parse(&local) else {
            panic!()
        };
        assert_eq!(p.addrs, None);
        // Mixed families are sent as IPv6 with the IPv4 address mapped.
        let h = v2(Some((sa("1.2.3.4:1"), sa("[::1]:2"))), &V2Extras::default());
        let Parsed::Done(p) = parse(&h) else { panic!() };
        assert_eq!(p.addrs, Some((sa("[::ffff:1.2.3.4]:1"), sa("[::1]:2"))));
    }

    #[test]
    fn v2_tlvs_and_crc() {
        let extras = V2Extras {
            crc32c: true,
            alpn: Some(b"h2".to_vec()),
            authority: Some("example.com".into()),
            unique_id: None,
            ssl: Some(Some(SslTlv {
                version: "TLSv1.3".into(),
                cn: Some("client".into()),
                cipher: None,
                client_cert: true,
                verify: 0,
            })),
        };
        let h = v2(Some((sa("10.0.0.1:4000"), sa("10.0.0.2:80"))), &extras);
        let Parsed::Done(p) = parse(&h) else { panic!() };
        let types: Vec<u8> = p.tlvs.iter().map(|t| t.0).collect();
        assert_eq!(
            types,
            vec![tlv::CRC32C, tlv::ALPN, tlv::AUTHORITY, tlv::SSL]
        );
        let ssl = &p.tlvs[3].1;
        assert_eq!(ssl[0], 0x07);
        assert_eq!(&ssl[5..8], &[tlv::SSL_VERSION, 0, 7]);
        let mut bad = h.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(parse(&bad), Parsed::Invalid("PROXY v2: CRC32C mismatch"));
        // A plain client: the SSL TLV says so with five zero bytes.
        let h = v2(
            Some((sa("10.0.0.1:4000"), sa("10.0.0.2:80"))),
            &V2Extras {
                ssl: Some(None),
                ..V2Extras::default()
            },
        );
        assert_eq!(&h[28..], &[0x20, 0, 5, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn v2_malformed() {
        let mut h = v2(
            Some((sa("10.0.0.1:4000"), sa("10.0.0.2:80"))),
            &V2Extras::default(),
        );
        h[12] = 0x31;
        assert!(matches!(parse(&h), Parsed::Invalid(_)));
        let mut h = v2(
            Some((sa("10.0.0.1:4000"), sa("10.0.0.2:80"))),
            &V2Extras::default(),
        );
        h[15] = 4; // 4 bytes cannot hold two IPv4 addresses and ports
        assert!(matches!(parse(&h), Parsed::Invalid(_)));
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(parse(&h), Parsed::Invalid(_)));
        let mut h = v2(None, &V2Extras::default());
        h[15] = 2;
        h.extend_from_slice(&[0x04, 0x00]); // a TLV header cut short
        assert!(matches!(parse(&h), Parsed::Invalid(_)));
    }

    #[test]
    fn crc32c_check_value() {
        // RFC 3720's check value for "123456789".
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn v1_lines() {
        assert_eq!(
            v1(Some((sa("127.0.0.1:55822"), sa("127.0.0.1:23411")))),
            b"PROXY TCP4 127.0.0.1 127.0.0.1 55822 23411\r\n"
        );
        assert_eq!(
            v1(Some((sa("[::1]:1000"), sa("[::1]:2000")))),
            b"PROXY TCP6 ::1 ::1 1000 2000\r\n"
        );
        assert_eq!(v1(None), b"PROXY UNKNOWN\r\n");
    }
}
