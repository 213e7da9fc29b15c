//! Request heads (httparse) and body framing (Content-Length, chunked), streamed.

use std::io;

use crate::reader::{invalid, Reader, BUF_BYTES};

/// Most header lines accepted in a request head (more → 431).
pub const MAX_HEADERS: usize = 512;
/// Header slots tried first, on the stack.
const FEW_HEADERS: usize = 64;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE_BYTES: usize = 8 * 1024;

/// A parsed request head, owned (a test origin may allocate per request).
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Request target as received, query string included.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The head exactly as received, CRLFs included, without the final empty line.
    pub raw_head: Vec<u8>,
    pub body: Framing,
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed (or timed out) between requests: not an error.
    Closed,
    /// Malformed request: answer with this status and close.
    Bad(u16, &'static str),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl Request {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether any `name` header holds `token` in its comma-separated list.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes
    /// unless `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.minor == 0 {
            self.has_token("connection", "keep-alive") && !self.has_token("connection", "close")
        } else {
            !self.has_token("connection", "close")
        }
    }

    /// Path without the query string; an absolute-form target (`http://host/p`) is
    /// reduced to its path.
    pub fn path(&self) -> &str {
        let t = self.target.split('?').next().unwrap_or("");
        match t.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| rest.get(i..).unwrap_or("/")),
            None => t,
        }
    }

    pub fn expects_continue(&self) -> bool {
        self.minor == 1
            && self
                .header("expect")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
    }
}

/// Reads the next request head. `Closed` when the peer closed before sending a byte.
pub fn read_head(rd: &mut Reader) -> Result<Request, ReadError> {
    loop {
        if !rd.buffered().is_empty() {
            if let Some(req) = try_parse(rd)? {
                return Ok(req);
            }
            if rd.is_full() {
                return Err(ReadError::Bad(431, "request head too large"));
            }
        }
        let had = rd.buffered().len();
        match rd.fill() {
            Ok(0) if had == 0 => return Err(ReadError::Closed),
            Ok(0) => return Err(ReadError::Bad(400, "connection closed mid-head")),
            Ok(_) => {}
            Err(e) if had == 0 && is_timeout(&e) => return Err(ReadError::Closed),
            Err(e) if is_timeout(&e) => return Err(ReadError::Bad(408, "request head timeout")),
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn try_parse(rd: &mut Reader) -> Result<Option<Request>, ReadError> {
    // Tolerate empty lines before a request line (RFC 9112 §2.2).
    while rd.buffered().starts_with(b"\r\n") || rd.buffered().starts_with(b"\n") {
        let n = if rd.buffered().starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rd.consume(n);
    }
    // Most requests fit the stack array; only crowded heads pay for the large one.
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut many = Vec::new();
    let mut parsed = httparse::Request::new(&mut few);
    let mut status = parsed.parse(rd.buffered());
    if matches!(status, Err(httparse::Error::TooManyHeaders)) {
        many.resize(MAX_HEADERS, httparse::EMPTY_HEADER);
        parsed = httparse::Request::new(&mut many);
        status = parsed.parse(rd.buffered());
    }
    let len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Bad(431, "too many headers"))
        }
        Err(_) => return Err(ReadError::Bad(400, "malformed request head")),
    };
    let method = parsed.method.unwrap_or("").to_owned();
    let target = parsed.path.unwrap_or("").to_owned();
    let minor = parsed.version.unwrap_or(1);
    let headers: Vec<(String, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    let raw = rd.buffered().get(..len).unwrap_or(&[]);
    let raw_head = raw
        .strip_suffix(b"\r\n\r\n")
        .or_else(|| raw.strip_suffix(b"\n\n"))
        .or_else(|| raw.strip_suffix(b"\r\n\n"))
        .unwrap_or(raw)
        .to_vec();
    rd.consume(len);
    let mut req = Request {
        method,
        target,
        minor,
        headers,
        raw_head,
        body: Framing::None,
    };
    req.body = framing(&req)?;
    Ok(Some(req))
}

/// Body framing per RFC 9112 §6.3, strict: both TE and CL, differing CLs, a TE whose
/// last coding is not chunked → 400.
fn framing(req: &Request) -> Result<Framing, ReadError> {
    let te: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_slice())
        .collect();
    let cl: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_slice())
        .collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err(ReadError::Bad(
                400,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let last = te
            .last()
            .and_then(|v| v.split(|&b| b == b',').next_back())
            .map(|t| t.trim_ascii());
        return match last {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(ReadError::Bad(400, "unsupported Transfer-Encoding")),
        };
    }
    let mut length: Option<u64> = None;
    for v in cl.iter().flat_map(|v| v.split(|&b| b == b',')) {
        let n = parse_decimal(v.trim_ascii()).ok_or(ReadError::Bad(400, "bad Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(ReadError::Bad(400, "conflicting Content-Length"));
        }
        length = Some(n);
    }
    Ok(match length {
        Some(0) | None => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

pub fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Streams the request body to `sink`; returns the trailer lines of a chunked body (`/grpc`
/// reports them).
pub fn read_body(
    rd: &mut Reader,
    framing: Framing,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Vec<String>> {
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(n) => rd.stream_exact(n, sink).map(|()| Vec::new()),
        Framing::Chunked => read_chunked(rd, sink),
    }
}

fn read_chunked(
    rd: &mut Reader,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Vec<String>> {
    loop {
        let line = rd.read_line(MAX_LINE_BYTES)?;
        let size_part = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(&[])
            .trim_ascii();
        let size = parse_hex(size_part).ok_or_else(|| invalid("bad chunk size"))?;
        if size == 0 {
            break;
        }
        rd.stream_exact(size, sink)?;
        if !rd.read_line(2)?.is_empty() {
            return Err(invalid("missing CRLF after chunk data"));
        }
    }
    // Trailer section, ended by an empty line; bounded by the read buffer.
    let mut trailer_bytes = 0usize;
    let mut lines = Vec::new();
    loop {
        let line = rd.read_line(MAX_LINE_BYTES)?;
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(String::from_utf8_lossy(&line).into_owned());
        trailer_bytes += line.len();
        if trailer_bytes > BUF_BYTES {
            return Err(invalid("trailers too large"));
        }
    }
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 15 || !s.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str) -> Request {
        Request {
            method: "GET".into(),
            target: target.into(),
            minor: 1,
            headers: vec![("Connection".into(), b"keep-alive, Upgrade".to_vec())],
            raw_head: Vec::new(),
            body: Framing::None,
        }
    }

    #[test]
    fn paths_and_tokens() {
        assert_eq!(req("/echo?x=1").path(), "/echo");
        assert_eq!(req("http://h:1/size/3?q").path(), "/size/3");
        assert_eq!(req("http://h").path(), "/");
        assert!(req("/").has_token("connection", "upgrade"));
        assert!(!req("/").has_token("connection", "close"));
        assert!(req("/").keep_alive());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"123"), Some(123));
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
        assert_eq!(parse_hex(b"1000"), Some(4096));
        assert_eq!(parse_hex(b"fF"), Some(255));
        assert_eq!(parse_hex(b"0x10"), None);
        assert_eq!(parse_hex(b"1234567890abcdef0"), None);
    }
}
