//! Small value types shared by request and response heads.

/// A byte range into the caller's buffer (the buffer the head was parsed from).
///
/// `u32` offsets keep [`Header`] at 16 bytes; heads are bounded by [`crate::Limits`] far below
/// 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte, inclusive.
    pub start: u32,
    /// Last byte, exclusive.
    pub end: u32,
}

impl Span {
    /// The bytes this span covers in `buf`, or an empty slice if `buf` is not the buffer the span
    /// was made from (never panics).
    #[inline]
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or(&[])
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    /// True when the span covers no byte.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The span of `sub`, a sub-slice of `base`; `None` if `sub` does not lie inside `base`.
    /// Pointer arithmetic on addresses only (no unsafe): httparse hands back sub-slices.
    pub(crate) fn of(base: &[u8], sub: &[u8]) -> Option<Span> {
        let base_addr = base.as_ptr() as usize;
        let sub_addr = sub.as_ptr() as usize;
        let start = sub_addr.checked_sub(base_addr)?;
        let end = start.checked_add(sub.len())?;
        if end > base.len() {
            return None;
        }
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    /// `self` with leading and trailing SP/HTAB removed (OWS around field values).
    pub(crate) fn trim_ows(self, buf: &[u8]) -> Span {
        let bytes = self.get(buf);
        let lead = bytes.iter().take_while(|b| is_ows(**b)).count();
        let trail = bytes.iter().rev().take_while(|b| is_ows(**b)).count();
        if lead == bytes.len() {
            return Span {
                start: self.start,
                end: self.start,
            };
        }
        Span {
            start: self.start.saturating_add(lead as u32),
            end: self.end.saturating_sub(trail as u32),
        }
    }
}

#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One header field: name and value (value without surrounding whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// The field name as received (case preserved).
    pub name: Span,
    /// The field value, OWS trimmed.
    pub value: Span,
}

/// Header fields of `headers` named `name`, compared case-insensitively.
pub(crate) fn headers_named<'a>(
    headers: &'a [Header],
    buf: &'a [u8],
    name: &'a [u8],
) -> impl Iterator<Item = Header> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.get(buf).eq_ignore_ascii_case(name))
        .copied()
}

/// HTTP version of a message. Only 1.0 and 1.1 are accepted on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    #[default]
    Http11,
}

impl Version {
    /// The protocol token as written on the wire.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }
}

/// Request method. Matching is case-sensitive (RFC 9110 §9.1): `get` is [`Method::Other`] and is
/// forwarded as received, as HAProxy 2.6 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    /// GET
    Get,
    /// HEAD (responses never carry a body)
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// CONNECT (authority-form target; a 2xx switches to a tunnel)
    Connect,
    /// OPTIONS (the only method allowed with the `*` target)
    Options,
    /// TRACE
    Trace,
    /// PATCH
    Patch,
    /// Any other valid token; read its bytes from [`crate::RequestHead::method_span`].
    Other,
}

impl Method {
    /// The token of a known method (`None` for [`Method::Other`], whose bytes are in the
    /// request).
    pub fn token(self) -> Option<&'static [u8]> {
        Some(match self {
            Method::Get => b"GET",
            Method::Head => b"HEAD",
            Method::Post => b"POST",
            Method::Put => b"PUT",
            Method::Delete => b"DELETE",
            Method::Connect => b"CONNECT",
            Method::Options => b"OPTIONS",
            Method::Trace => b"TRACE",
            Method::Patch => b"PATCH",
            Method::Other => return None,
        })
    }

    /// Classify a method token.
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2 idempotent methods (retry decisions).
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFraming {
    /// No body at all (requests without CL/TE, HEAD responses, 1xx/204/304).
    #[default]
    None,
    /// Exactly this many bytes follow the head (use [`crate::BodyCounter`]).
    ContentLength(u64),
    /// Chunked transfer coding (use [`crate::ChunkedDecoder`]).
    Chunked,
    /// Responses only: the body runs until the server closes the connection.
    UntilClose,
}

/// Tokens found in the `Connection` header(s) that the proxy acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionTokens {
    /// `close`
    pub close: bool,
    /// `keep-alive`
    pub keep_alive: bool,
    /// `upgrade`
    pub upgrade: bool,
    /// At least one other token (a header name the sender declares hop-by-hop).
    pub other: bool,
}

impl ConnectionTokens {
    pub(crate) fn add_list(&mut self, value: &[u8]) {
        for token in list_items(value) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !token.is_empty() {
                self.other = true;
            }
        }
    }
}

/// Elements of a comma-separated list, each OWS-trimmed (empty elements included).
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(trim_ows)
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_ows(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_ows(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Parser limits, from the config's `tune.*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `tune.http.maxhdr` (default 101). Like HAProxy 2.6 the start line counts: a head may hold
    /// at most `max_headers - 1` header fields (observed from haproxy 2.6: 100 fields pass, 101
    /// get a 400).
    pub max_headers: usize,
    /// Largest head (start line + fields + final CRLF) in bytes: `tune.bufsize - tune.maxrewrite`
    /// (default 16384 - 1024). Also bounds a chunk-size line and the trailer section.
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: 101,
            max_head_bytes: 16384 - 1024,
        }
    }
}

impl Limits {
    /// Header fields allowed in one head (start line excluded).
    pub fn max_fields(&self) -> usize {
        self.max_headers.saturating_sub(1)
    }
}

/// Outcome of parsing a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The head is complete and occupies `buf[..head_len]`; the body (if any) starts there.
    Complete {
        /// Bytes of the head, including leading empty lines and the final CRLF.
        head_len: usize,
    },
    /// More bytes are needed; call again with the same buffer extended.
    Partial,
}
