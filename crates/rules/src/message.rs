//! The message view rules read and edit: start line + header list, borrowed from the parsed
//! head and copied only where a rule changes something, then rendered when forwarding.
//!
//! The engine builds an [`HttpMessage`] from its parsed head (one `Vec` of borrowed slices:
//! the only per-request allocation here; reuse it with [`HttpMessage::clear`]), runs the rules,
//! and if [`HttpMessage::modified`] is set writes the new head with
//! [`HttpMessage::write_request_head`] / [`HttpMessage::write_response_head`] instead of
//! forwarding the original bytes.

use std::borrow::Cow;

/// One header line.
pub type HeaderField<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// An HTTP request or response head as rules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpMessage<'a> {
    /// Request method (empty for responses).
    pub method: Cow<'a, [u8]>,
    /// Request target as received (origin form `/p?q`, absolute form `http://h/p?q`, `*`).
    pub uri: Cow<'a, [u8]>,
    /// `HTTP/1.1`.
    pub version: Cow<'a, [u8]>,
    /// Response status (0 for requests).
    pub status: u16,
    /// Response reason phrase.
    pub reason: Cow<'a, [u8]>,
    /// Header lines in order.
    pub headers: Vec<HeaderField<'a>>,
    /// Set when a rule changed the start line or the headers.
    pub modified: bool,
}

impl<'a> HttpMessage<'a> {
    /// A request head with borrowed parts.
    pub fn request(method: &'a [u8], uri: &'a [u8], version: &'a [u8]) -> HttpMessage<'a> {
        HttpMessage {
            method: Cow::Borrowed(method),
            uri: Cow::Borrowed(uri),
            version: Cow::Borrowed(version),
            ..HttpMessage::default()
        }
    }

    /// A response head with borrowed parts.
    pub fn response(version: &'a [u8], status: u16, reason: &'a [u8]) -> HttpMessage<'a> {
        HttpMessage {
            version: Cow::Borrowed(version),
            status,
            reason: Cow::Borrowed(reason),
            ..HttpMessage::default()
        }
    }

    /// A borrowed view of a head parsed by `ringlb-http1` (`buf` is the buffer it was parsed
    /// from). Allocates only the header vector.
    pub fn from_request_head(head: &ringlb_http1::RequestHead, buf: &'a [u8]) -> HttpMessage<'a> {
        let mut m = HttpMessage::request(
            head.method_span().get(buf),
            head.target().get(buf),
            head.version().as_bytes(),
        );
        m.headers.reserve(head.headers().len());
        for h in head.headers() {
            m.push_header(h.name.get(buf), h.value.get(buf));
        }
        m
    }

    /// A borrowed view of a response head parsed by `ringlb-http1`.
    pub fn from_response_head(head: &ringlb_http1::ResponseHead, buf: &'a [u8]) -> HttpMessage<'a> {
        let mut m = HttpMessage::response(
            head.version().as_bytes(),
            head.status(),
            head.reason().get(buf),
        );
        m.headers.reserve(head.headers().len());
        for h in head.headers() {
            m.push_header(h.name.get(buf), h.value.get(buf));
        }
        m
    }

    /// Appends a header as received (does not mark the message modified).
    pub fn push_header(&mut self, name: &'a [u8], value: &'a [u8]) {
        self.headers
            .push((Cow::Borrowed(name), Cow::Borrowed(value)));
    }

    /// Empties the message, keeping the header vector's capacity.
    pub fn clear(&mut self) {
        self.headers.clear();
        self.method = Cow::Borrowed(b"");
        self.uri = Cow::Borrowed(b"");
        self.version = Cow::Borrowed(b"");
        self.reason = Cow::Borrowed(b"");
        self.status = 0;
        self.modified = false;
    }

    /// Full values of the headers named `name` (case-insensitive), in order, not split.
    pub fn full_values<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// Values of the headers named `name`, split on commas outside quotes and trimmed, in
    /// order (HAProxy's `hdr()` view of a list-valued header).
    pub fn values<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = &'s [u8]> + 's {
        self.full_values(name).flat_map(split_list)
    }

    /// Path: from the first `/` after the authority (absolute form) up to `?`.
    pub fn path(&self) -> &[u8] {
        let p = path_and_query(&self.uri);
        let end = p.iter().position(|&c| c == b'?').unwrap_or(p.len());
        p.get(..end).unwrap_or(p)
    }

    /// Query string after `?`, if any.
    pub fn query(&self) -> Option<&[u8]> {
        let p = path_and_query(&self.uri);
        let q = p.iter().position(|&c| c == b'?')?;
        p.get(q + 1..)
    }

    /// Path and query (`pathq`).
    pub fn pathq(&self) -> &[u8] {
        path_and_query(&self.uri)
    }

    /// Removes every header named `name`; returns how many went.
    pub fn del_header(&mut self, name: &[u8]) -> usize {
        self.del_header_where(name, |_| true)
    }

    /// Removes the headers named `name` whose full value satisfies `keep_not`.
    pub fn del_header_where(&mut self, name: &[u8], mut pred: impl FnMut(&[u8]) -> bool) -> usize {
        let before = self.headers.len();
        self.headers
            .retain(|(n, v)| !(n.eq_ignore_ascii_case(name) && pred(v)));
        let gone = before - self.headers.len();
        if gone > 0 {
            self.modified = true;
        }
        gone
    }

    /// Appends a header (allocates the name copy; the value is already owned).
    pub fn add_header(&mut self, name: &[u8], value: Vec<u8>) {
        self.headers
            .push((Cow::Owned(name.to_vec()), Cow::Owned(value)));
        self.modified = true;
    }

    /// Replaces every header named `name` with one carrying `value` (HAProxy's set-header:
    /// delete all, then append).
    pub fn set_header(&mut self, name: &[u8], value: Vec<u8>) {
        self.del_header(name);
        self.add_header(name, value);
    }

    /// Replaces the request target.
    pub fn set_uri(&mut self, uri: Vec<u8>) {
        self.uri = Cow::Owned(uri);
        self.modified = true;
    }

    /// Replaces the path, keeping the query string (and the scheme/authority in absolute form).
    pub fn set_path(&mut self, path: &[u8]) {
        let pq = path_and_query(&self.uri);
        let prefix_len = self.uri.len() - pq.len();
        let mut out = Vec::with_capacity(self.uri.len() + path.len());
        out.extend_from_slice(self.uri.get(..prefix_len).unwrap_or(b""));
        out.extend_from_slice(path);
        if let Some(q) = self.query() {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        self.set_uri(out);
    }

    /// Replaces path and query together.
    pub fn set_pathq(&mut self, pathq: &[u8]) {
        let pq = path_and_query(&self.uri);
        let prefix_len = self.uri.len() - pq.len();
        let mut out = self.uri.get(..prefix_len).unwrap_or(b"").to_vec();
        out.extend_from_slice(pathq);
        self.set_uri(out);
    }

    /// Replaces the query string (`set-query ""` leaves an empty `?`, as HAProxy; a leading
    /// `?` in `q` is not doubled).
    pub fn set_query(&mut self, q: &[u8]) {
        let path_end = self.uri.len() - (path_and_query(&self.uri).len() - self.path().len());
        let mut out = self.uri.get(..path_end).unwrap_or(b"").to_vec();
        out.push(b'?');
        out.extend_from_slice(q.strip_prefix(b"?").unwrap_or(q));
        self.set_uri(out);
    }

    /// Replaces the method.
    pub fn set_method(&mut self, m: Vec<u8>) {
        self.method = Cow::Owned(m);
        self.modified = true;
    }

    /// Replaces the response status (and reason, or the standard one when `None`).
    pub fn set_status(&mut self, status: u16, reason: Option<Vec<u8>>) {
        self.status = status;
        self.reason = match reason {
            Some(r) => Cow::Owned(r),
            None => Cow::Borrowed(reason_phrase(status).as_bytes()),
        };
        self.modified = true;
    }

    /// Renders `METHOD uri VERSION\r\n` + headers + `\r\n`.
    pub fn write_request_head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.uri);
        out.push(b' ');
        out.extend_from_slice(&self.version);
        out.extend_from_slice(b"\r\n");
        self.write_headers(out);
    }

    /// Renders `VERSION status reason\r\n` + headers + `\r\n`.
    pub fn write_response_head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version);
        out.push(b' ');
        crate::sample::Sample::Int(i64::from(self.status)).write_to(out);
        out.push(b' ');
        out.extend_from_slice(&self.reason);
        out.extend_from_slice(b"\r\n");
        self.write_headers(out);
    }

    /// Header names go out lower-cased, as HAProxy 2.6 puts them on the wire (see
    /// `ringlb-http1`'s rewrite, which the engine applies for connection handling).
    fn write_headers(&self, out: &mut Vec<u8>) {
        for (n, v) in &self.headers {
            let at = out.len();
            out.extend_from_slice(n);
            if let Some(name) = out.get_mut(at..) {
                name.make_ascii_lowercase();
            }
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The part of a request target starting at the path; empty for `*` and authority-form
/// (`CONNECT host:port`), as `ringlb-http1` and HAProxy's `path` see them.
pub(crate) fn path_and_query(uri: &[u8]) -> &[u8] {
    if uri.first() == Some(&b'/') {
        return uri;
    }
    // Absolute form: scheme "://" authority path.
    if let Some(i) = find(uri, b"://") {
        let rest = uri.get(i + 3..).unwrap_or(b"");
        let p = rest
            .iter()
            .position(|&c| c == b'/' || c == b'?')
            .unwrap_or(rest.len());
        return rest.get(p..).unwrap_or(b"");
    }
    b""
}

/// Authority of an absolute-form target.
pub(crate) fn uri_authority(uri: &[u8]) -> Option<&[u8]> {
    let i = find(uri, b"://")?;
    let rest = uri.get(i + 3..)?;
    let p = rest
        .iter()
        .position(|&c| c == b'/' || c == b'?')
        .unwrap_or(rest.len());
    rest.get(..p)
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits a list-valued header on commas outside double quotes, trimming spaces and tabs;
/// empty elements are skipped.
pub fn split_list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(v);
    std::iter::from_fn(move || loop {
        let s = rest?;
        let mut in_q = false;
        let mut esc = false;
        let mut cut = None;
        for (i, &c) in s.iter().enumerate() {
            if esc {
                esc = false;
                continue;
            }
            match c {
                b'\\' if in_q => esc = true,
                b'"' => in_q = !in_q,
                b',' if !in_q => {
                    cut = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let (item, next) = match cut {
            Some(i) => (s.get(..i).unwrap_or(b""), s.get(i + 1..)),
            None => (s, None),
        };
        rest = next;
        let t = item.trim_ascii();
        if !t.is_empty() {
            return Some(t);
        }
    })
}

/// Standard reason phrases HAProxy uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        421 => "Misdirected Request",
        425 => "Too Early",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &'static str) -> HttpMessage<'static> {
        HttpMessage::request(b"GET", uri.as_bytes(), b"HTTP/1.1")
    }

    #[test]
    fn path_and_query_forms() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/a/b?x=1", "/a/b", Some("x=1")),
            ("/a", "/a", None),
            ("http://h.example:80/p?q", "/p", Some("q")),
            ("http://h.example", "", None),
            ("*", "", None),
            ("example.com:443", "", None),
            ("/?", "/", Some("")),
        ];
        for (uri, path, q) in cases {
            let m = req(uri);
            assert_eq!(m.path(), path.as_bytes(), "{uri}");
            assert_eq!(m.query(), q.map(str::as_bytes), "{uri}");
        }
    }

    #[test]
    fn built_from_http1_heads_borrowing_the_buffer() {
        let buf = b"GET /a?b=1 HTTP/1.0\r\nHost: h\r\nX-A:  v  \r\n\r\n";
        let mut head = ringlb_http1::RequestHead::default();
        ringlb_http1::parse_request(buf, &ringlb_http1::Limits::default(), &mut head).unwrap();
        let m = HttpMessage::from_request_head(&head, buf);
        assert_eq!(
            (&*m.method, &*m.uri, &*m.version),
            (&b"GET"[..], &b"/a?b=1"[..], &b"HTTP/1.0"[..])
        );
        assert_eq!(m.full_values(b"x-a").collect::<Vec<_>>(), [b"v"]);
        assert!(matches!(m.headers[0].1, Cow::Borrowed(_)));
        let mut out = Vec::new();
        m.write_request_head(&mut out);
        assert_eq!(out, b"GET /a?b=1 HTTP/1.0\r\nhost: h\r\nx-a: v\r\n\r\n");
        let rbuf = b"HTTP/1.1 404 Nope\r\nServer: x\r\n\r\n";
        let mut rh = ringlb_http1::ResponseHead::default();
        ringlb_http1::parse_response(
            rbuf,
            &ringlb_http1::Limits::default(),
            ringlb_http1::Method::Get,
            &mut rh,
        )
        .unwrap();
        let r = HttpMessage::from_response_head(&rh, rbuf);
        assert_eq!((r.status, &*r.reason), (404, &b"Nope"[..]));
        assert_eq!(r.full_values(b"server").next(), Some(&b"x"[..]));
    }

    #[test]
    fn list_split_respects_quotes() {
        let v: Vec<&[u8]> = split_list(b"a, b ,\"c,d\",, e").collect();
        assert_eq!(v, [&b"a"[..], b"b", b"\"c,d\"", b"e"]);
    }

    #[test]
    fn edits_and_render() {
        let mut m = req("/p?q=1");
        m.push_header(b"Host", b"h");
        m.push_header(b"X-A", b"1");
        m.push_header(b"x-a", b"2");
        assert!(!m.modified);
        m.set_header(b"X-A", b"3".to_vec());
        assert!(m.modified);
        assert_eq!(m.full_values(b"x-a").collect::<Vec<_>>(), [b"3"]);
        m.set_path(b"/new");
        assert_eq!(&*m.uri, b"/new?q=1");
        m.set_query(b"z=2");
        assert_eq!(&*m.uri, b"/new?z=2");
        let mut out = Vec::new();
        m.write_request_head(&mut out);
        assert_eq!(out, b"GET /new?z=2 HTTP/1.1\r\nhost: h\r\nx-a: 3\r\n\r\n");
    }
}
