//! Response heads: [`parse_response`] fills a caller-owned, reusable [`ResponseHead`].

use core::mem::MaybeUninit;

use crate::error::{ErrorKind, HttpError};
use crate::fields::{self, Facts};
use crate::request::{check_field_values, map_httparse_error, STACK_FIELDS};
use crate::scan::{scan_head, Scan};
use crate::types::{BodyFraming, ConnectionTokens, Header, Limits, Method, Parsed, Span, Version};
use crate::Side;

/// A parsed response head; reuse one per server connection.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead {
    pub(crate) version: Version,
    pub(crate) status: u16,
    pub(crate) reason: Span,
    pub(crate) headers: Vec<Header>,
    pub(crate) head_len: usize,
    pub(crate) framing: BodyFraming,
    pub(crate) connection: ConnectionTokens,
    pub(crate) upgrade: Option<Span>,
    pub(crate) cl_and_te: bool,
    pub(crate) tunnel: bool,
}

impl ResponseHead {
    /// An empty head whose header Vec holds `limits.max_fields()` fields without growing.
    pub fn with_limits(limits: &Limits) -> ResponseHead {
        ResponseHead {
            headers: Vec::with_capacity(limits.max_fields()),
            ..ResponseHead::default()
        }
    }

    fn clear(&mut self) {
        let mut headers = core::mem::take(&mut self.headers);
        headers.clear();
        *self = ResponseHead {
            headers,
            ..ResponseHead::default()
        };
    }

    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.version
    }
    /// Status code, 100..=599.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// Reason phrase as received (may be empty).
    pub fn reason(&self) -> Span {
        self.reason
    }
    /// Header fields in order, values OWS-trimmed.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
    /// Length of the head in the buffer.
    pub fn head_len(&self) -> usize {
        self.head_len
    }
    /// How the body is delimited, given the request method (see [`parse_response`]).
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }
    /// Tokens of the Connection header(s).
    pub fn connection(&self) -> ConnectionTokens {
        self.connection
    }
    /// The Upgrade header's value, if present.
    pub fn upgrade(&self) -> Option<Span> {
        self.upgrade
    }
    /// `1xx` other than 101: an interim response, the final one follows on the same connection.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
    /// `101 Switching Protocols`: after this head both sides switch to a tunnel.
    pub fn is_switching_protocols(&self) -> bool {
        self.status == 101
    }
    /// Both Content-Length and chunked were sent: the body is read as chunked, Content-Length is
    /// dropped when forwarding, and the server connection must not be reused.
    pub fn had_content_length_and_chunked(&self) -> bool {
        self.cl_and_te
    }
    /// After this head both directions carry raw bytes: `101 Switching Protocols`, or a 2xx
    /// answer to CONNECT.
    pub fn is_tunnel(&self) -> bool {
        self.tunnel
    }
    /// Header fields named `name` (case-insensitive), in order.
    pub fn headers_named<'a>(
        &'a self,
        buf: &'a [u8],
        name: &'a [u8],
    ) -> impl Iterator<Item = Header> + 'a {
        crate::types::headers_named(&self.headers, buf, name)
    }
    /// The server connection may be reused after this response: HTTP/1.1 without `close` or
    /// HTTP/1.0 with `keep-alive`, a length-delimited body, no CL+TE, not a tunnel.
    pub fn server_keep_alive(&self) -> bool {
        if self.connection.close
            || self.cl_and_te
            || self.tunnel
            || self.framing == BodyFraming::UntilClose
        {
            return false;
        }
        match self.version {
            Version::Http11 => true,
            Version::Http10 => self.connection.keep_alive,
        }
    }
}

/// Parse a response head to a request made with `method`.
///
/// Framing (RFC 9112 §6.3): HEAD responses, 1xx, 204 and 304 have no body, nor has a 2xx to
/// CONNECT (a tunnel follows); then `Transfer-Encoding: chunked` (any other coding is a 502, as
/// in haproxy 2.6); then Content-Length; otherwise until close. Every error maps to 502.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
    method: Method,
    out: &mut ResponseHead,
) -> Result<Parsed, HttpError> {
    out.clear();
    // A response that cannot start with `HTTP/` (after empty lines, skipped as for requests)
    // is junk now, not only once the server closes.
    let mut start = buf;
    while let Some(rest) = start.strip_prefix(b"\r\n") {
        start = rest;
    }
    let start = start.get(..start.len().min(5)).unwrap_or(start);
    if !(b"HTTP/".starts_with(start) || start == b"\r") {
        return Err(HttpError::server(ErrorKind::BadVersion));
    }
    let (end, fields) = match scan_head(buf, limits, Side::Server)? {
        Scan::Partial => return Ok(Parsed::Partial),
        Scan::Complete { end, fields } => (end, fields),
    };
    let head = buf.get(..end).unwrap_or(buf);
    let mut stack = [MaybeUninit::<httparse::Header<'_>>::uninit(); STACK_FIELDS];
    let mut heap: Vec<MaybeUninit<httparse::Header<'_>>> = Vec::new();
    let slots = if fields <= STACK_FIELDS {
        stack.get_mut(..fields).unwrap_or_default()
    } else {
        // Allocation: only with a raised tune.http.maxhdr.
        heap.resize(fields, MaybeUninit::uninit());
        heap.as_mut_slice()
    };
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, head, slots)
    {
        Ok(httparse::Status::Complete(n)) if n == end => {}
        Ok(_) => return Err(HttpError::server(ErrorKind::BadStartLine)),
        Err(e) => return Err(HttpError::server(map_httparse_error(e, head))),
    }
    let bad_line = || HttpError::server(ErrorKind::BadStartLine);
    out.version = match resp.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::server(ErrorKind::BadVersion)),
    };
    out.status = resp.code.ok_or_else(bad_line)?;
    if !(100..=599).contains(&out.status) {
        return Err(HttpError::server(ErrorKind::BadStatus));
    }
    out.reason = match resp.reason {
        Some(r) if !r.is_empty() => Span::of(buf, r.as_bytes()).ok_or_else(bad_line)?,
        _ => Span::default(),
    };
    for h in resp.headers.iter() {
        let name = Span::of(buf, h.name.as_bytes()).ok_or_else(bad_line)?;
        let value = Span::of(buf, h.value).ok_or_else(bad_line)?.trim_ows(buf);
        out.headers.push(Header { name, value });
    }
    out.head_len = end;
    if cfg!(debug_assertions) {
        // See parse_request: httparse already refuses these bytes.
        check_field_values(buf, &out.headers).map_err(HttpError::server)?;
    }
    let facts = fields::collect(buf, &out.headers).map_err(HttpError::server)?;
    out.framing =
        response_framing(method, out.status, out.version, &facts).map_err(HttpError::server)?;
    out.cl_and_te = out.framing == BodyFraming::Chunked && facts.content_length.is_some();
    out.connection = facts.connection;
    out.upgrade = facts.upgrade;
    out.tunnel =
        out.status == 101 || (method == Method::Connect && (200..300).contains(&out.status));
    Ok(Parsed::Complete { head_len: end })
}

fn response_framing(
    method: Method,
    status: u16,
    version: Version,
    f: &Facts,
) -> Result<BodyFraming, ErrorKind> {
    if method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (method == Method::Connect && (200..300).contains(&status))
    {
        return Ok(BodyFraming::None);
    }
    if f.te_present {
        if version == Version::Http10 {
            // RFC 9112 §6.1: TE in HTTP/1.0 means faulty framing; ringlb refuses it (502).
            return Err(ErrorKind::TransferEncodingInHttp10);
        }
        if let Some(e) = f.te_error {
            return Err(e);
        }
        // Observed from haproxy 2.6.12: a response with `Transfer-Encoding: gzip, chunked` or
        // `gzip` alone gets a 502 (RFC 9112 §6.3 would read `gzip` until close). ringlb does
        // the same: only `chunked` is accepted.
        if !f.te_chunked_last {
            return Err(ErrorKind::BadTransferEncoding);
        }
        if f.te_other_coding {
            return Err(ErrorKind::UnsupportedTransferCoding);
        }
        return Ok(BodyFraming::Chunked);
    }
    Ok(match f.content_length {
        Some(n) => BodyFraming::ContentLength(n),
        None => BodyFraming::UntilClose,
    })
}
