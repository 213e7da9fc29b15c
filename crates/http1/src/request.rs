//! Request heads: [`parse_request`] fills a caller-owned, reusable [`RequestHead`].

use core::mem::MaybeUninit;

use crate::error::{ErrorKind, HttpError};
use crate::fields::{self, Facts};
use crate::scan::{classify_field_error, scan_head, Scan};
use crate::types::{BodyFraming, ConnectionTokens, Header, Limits, Method, Parsed, Span, Version};
use crate::{chars, Side};

/// httparse needs a scratch array for the fields it parses; heads with at most this many fields
/// use the stack. Above it (only when `tune.http.maxhdr` is raised past 129 and a head really
/// has that many fields) one Vec is allocated for that parse.
pub(crate) const STACK_FIELDS: usize = 128;

/// The form of the request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetForm {
    /// `/path?query`
    #[default]
    Origin,
    /// `scheme://authority/path`; `authority` is its span in the buffer.
    Absolute {
        /// The authority part (host and port, no userinfo).
        authority: Span,
    },
    /// `host:port`, CONNECT only.
    Authority,
    /// `*`, OPTIONS only.
    Asterisk,
}

/// What the engine must remember about a request once its head has been forwarded, to handle
/// the response: 4 bytes, `Copy`. A [`RequestHead`] is ~1.6 KB with the default field capacity,
/// so keep heads per shard or per in-flight parse, not per idle connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestSummary {
    /// The method (HEAD and CONNECT change the response framing).
    pub method: Method,
    /// The request version (HTTP/1.0 clients need `connection: keep-alive`).
    pub version: Version,
    /// [`RequestHead::client_keep_alive`].
    pub client_keep_alive: bool,
    /// [`RequestHead::is_upgrade`].
    pub upgrade: bool,
}

// Sizes the engine's memory budget relies on (issue 3: an idle connection ≤ 2 KB).
const _: () = assert!(core::mem::size_of::<RequestSummary>() == 4);
const _: () = assert!(core::mem::size_of::<Header>() == 16);

impl From<&RequestHead> for RequestSummary {
    fn from(h: &RequestHead) -> RequestSummary {
        h.summary()
    }
}

/// A parsed request head. Reuse one per connection: [`parse_request`] clears it and keeps the
/// header Vec's capacity, so steady-state parsing does not allocate.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    pub(crate) method: Method,
    pub(crate) method_span: Span,
    pub(crate) target: Span,
    pub(crate) target_form: TargetForm,
    pub(crate) version: Version,
    pub(crate) headers: Vec<Header>,
    pub(crate) head_len: usize,
    pub(crate) framing: BodyFraming,
    pub(crate) connection: ConnectionTokens,
    pub(crate) host: Option<Span>,
    pub(crate) expect_continue: bool,
    pub(crate) upgrade: Option<Span>,
    pub(crate) cl_and_te: bool,
    /// Offset of `?` in the target.
    pub(crate) query_at: Option<u32>,
}

impl RequestHead {
    /// An empty head whose header Vec can hold `limits.max_fields()` fields without growing.
    pub fn with_limits(limits: &Limits) -> RequestHead {
        RequestHead {
            headers: Vec::with_capacity(limits.max_fields()),
            ..RequestHead::default()
        }
    }

    fn clear(&mut self) {
        let mut headers = core::mem::take(&mut self.headers);
        headers.clear();
        *self = RequestHead {
            headers,
            ..RequestHead::default()
        };
    }

    /// The method, classified.
    pub fn method(&self) -> Method {
        self.method
    }
    /// The method token as received.
    pub fn method_span(&self) -> Span {
        self.method_span
    }
    /// The request target as received.
    pub fn target(&self) -> Span {
        self.target
    }
    /// Which form the target has.
    pub fn target_form(&self) -> TargetForm {
        self.target_form
    }
    /// The path of the target without the query, as HAProxy's `path` fetch sees it: the
    /// origin-form up to `?`, the part of an absolute-form after the authority (empty when the
    /// URI has none), nothing for `*` and authority-form.
    pub fn path(&self) -> Span {
        let (start, end) = match self.target_form {
            TargetForm::Origin => (self.target.start, self.target.end),
            TargetForm::Absolute { authority } => (authority.end, self.target.end),
            TargetForm::Asterisk | TargetForm::Authority => (self.target.end, self.target.end),
        };
        Span {
            start,
            end: start.max(self.query_start().unwrap_or(end).min(end)),
        }
    }
    /// The query string after `?` (without it), if the target has one.
    pub fn query(&self) -> Option<Span> {
        let q = self.query_start()?;
        Some(Span {
            start: q + 1,
            end: self.target.end,
        })
    }
    fn query_start(&self) -> Option<u32> {
        self.query_at.map(|at| self.target.start + at)
    }
    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.version
    }
    /// Header fields in order, values OWS-trimmed.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
    /// Length of the head in the buffer (the body starts here).
    pub fn head_len(&self) -> usize {
        self.head_len
    }
    /// How the request body is delimited: `None`, `ContentLength` or `Chunked` (a request never
    /// runs until close: without CL or TE it has no body, RFC 9112 §6.3).
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }
    /// Tokens of the Connection header(s).
    pub fn connection(&self) -> ConnectionTokens {
        self.connection
    }
    /// The Host value, if present (at most one is accepted).
    pub fn host(&self) -> Option<Span> {
        self.host
    }
    /// `Expect: 100-continue` was sent in an HTTP/1.1 request (RFC 9110 §10.1.1: ignored in
    /// HTTP/1.0).
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }
    /// The Upgrade header's value, if present.
    pub fn upgrade(&self) -> Option<Span> {
        self.upgrade
    }
    /// Header fields named `name` (case-insensitive), in order.
    pub fn headers_named<'a>(
        &'a self,
        buf: &'a [u8],
        name: &'a [u8],
    ) -> impl Iterator<Item = Header> + 'a {
        crate::types::headers_named(&self.headers, buf, name)
    }
    /// The client asks to switch protocols: `Connection: upgrade` and an `Upgrade` header.
    pub fn is_upgrade(&self) -> bool {
        self.connection.upgrade && self.upgrade.is_some()
    }
    /// Both Content-Length and Transfer-Encoding were sent. Like HAProxy 2.6 the body is read as
    /// chunked, Content-Length is dropped when forwarding, and the client connection is closed
    /// after the response (observed from haproxy 2.6: `connection: close` added to the response).
    pub fn had_content_length_and_chunked(&self) -> bool {
        self.cl_and_te
    }
    /// The few facts needed after the head is gone.
    pub fn summary(&self) -> RequestSummary {
        RequestSummary {
            method: self.method,
            version: self.version,
            client_keep_alive: self.client_keep_alive(),
            upgrade: self.is_upgrade(),
        }
    }
    /// The client wants the connection kept open after this exchange: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`; never after a CL+TE request.
    pub fn client_keep_alive(&self) -> bool {
        if self.connection.close || self.cl_and_te {
            return false;
        }
        match self.version {
            Version::Http11 => true,
            Version::Http10 => self.connection.keep_alive,
        }
    }
}

/// Parse a request head from the start of `buf` into `out`.
///
/// Returns `Partial` until the head is complete; call again with the grown buffer (the parse
/// restarts from the beginning: heads are small and bounded by `limits.max_head_bytes`).
/// On `Complete`, spans in `out` index into `buf`.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    out: &mut RequestHead,
) -> Result<Parsed, HttpError> {
    out.clear();
    let (end, fields) = match scan_head(buf, limits, Side::Client)? {
        Scan::Partial => return Ok(Parsed::Partial),
        Scan::Complete { end, fields } => (end, fields),
    };
    let head = buf.get(..end).unwrap_or(buf);
    let mut stack = [MaybeUninit::<httparse::Header<'_>>::uninit(); STACK_FIELDS];
    let mut heap: Vec<MaybeUninit<httparse::Header<'_>>> = Vec::new();
    let slots = if fields <= STACK_FIELDS {
        stack.get_mut(..fields).unwrap_or_default()
    } else {
        // Allocation: only with a raised tune.http.maxhdr, see STACK_FIELDS.
        heap.resize(fields, MaybeUninit::uninit());
        heap.as_mut_slice()
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(n)) if n == end => {}
        Ok(_) => return Err(HttpError::client(ErrorKind::BadStartLine)),
        Err(e) => return Err(HttpError::client(map_httparse_error(e, head))),
    }
    let bad_line = || HttpError::client(ErrorKind::BadStartLine);
    let method = req.method.ok_or_else(bad_line)?.as_bytes();
    out.method = Method::from_bytes(method);
    out.method_span = Span::of(buf, method).ok_or_else(bad_line)?;
    out.target = Span::of(buf, req.path.ok_or_else(bad_line)?.as_bytes()).ok_or_else(bad_line)?;
    out.version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::client(ErrorKind::BadVersion)),
    };
    for h in req.headers.iter() {
        let name = Span::of(buf, h.name.as_bytes()).ok_or_else(bad_line)?;
        let value = Span::of(buf, h.value).ok_or_else(bad_line)?.trim_ows(buf);
        out.headers.push(Header { name, value });
    }
    out.head_len = end;
    derive(buf, out).map_err(HttpError::client)?;
    Ok(Parsed::Complete { head_len: end })
}

/// httparse's error, made precise for field lines (obs-fold, whitespace before the colon and
/// lone CR all come back from httparse as a bad name or value).
pub(crate) fn map_httparse_error(e: httparse::Error, head: &[u8]) -> ErrorKind {
    match e {
        httparse::Error::HeaderName => classify_field_error(head, ErrorKind::BadHeaderName),
        httparse::Error::HeaderValue => classify_field_error(head, ErrorKind::BadHeaderValue),
        httparse::Error::NewLine => ErrorKind::BareLineEnding,
        httparse::Error::Status => ErrorKind::BadStatus,
        httparse::Error::Token => ErrorKind::BadStartLine,
        httparse::Error::TooManyHeaders => ErrorKind::TooManyHeaders,
        httparse::Error::Version => ErrorKind::BadVersion,
    }
}

/// Everything beyond tokenising: target, field values, framing, Host, upgrade.
fn derive(buf: &[u8], out: &mut RequestHead) -> Result<(), ErrorKind> {
    if cfg!(debug_assertions) {
        // httparse already refuses these bytes (the corpus proves it on every path); debug
        // builds, tests and fuzzing check again so an httparse change cannot slip through.
        check_field_values(buf, &out.headers)?;
    }
    let facts = fields::collect(buf, &out.headers)?;
    out.target_form = target_form(out.method, out.target.get(buf), out.target)?;
    out.query_at = out
        .target
        .get(buf)
        .iter()
        .position(|b| *b == b'?')
        .and_then(|p| u32::try_from(p).ok());
    check_host(buf, out, &facts)?;
    out.framing = request_framing(out.version, &facts)?;
    out.cl_and_te = facts.te_present && facts.content_length.is_some();
    out.connection = facts.connection;
    out.host = facts.host;
    out.expect_continue = facts.expect_continue && out.version == Version::Http11;
    out.upgrade = facts.upgrade;
    if facts.connection.upgrade && facts.upgrade_websocket && !facts.websocket_key {
        // Observed from haproxy 2.6: `Connection: Upgrade` + `Upgrade: websocket` without
        // Sec-WebSocket-Key gets a 400.
        return Err(ErrorKind::WebSocketWithoutKey);
    }
    Ok(())
}

/// httparse accepts HTAB, SP, VCHAR and obs-text in values; checked again here so the rule does
/// not depend on which SIMD path httparse took.
pub(crate) fn check_field_values(buf: &[u8], headers: &[Header]) -> Result<(), ErrorKind> {
    for h in headers {
        if !h.value.get(buf).iter().all(|b| chars::is_field_value(*b)) {
            return Err(ErrorKind::BadHeaderValue);
        }
        if !h.name.get(buf).iter().all(|b| chars::is_token(*b)) {
            return Err(ErrorKind::BadHeaderName);
        }
    }
    Ok(())
}

fn request_framing(version: Version, f: &Facts) -> Result<BodyFraming, ErrorKind> {
    if f.te_present {
        if version == Version::Http10 {
            return Err(ErrorKind::TransferEncodingInHttp10);
        }
        if let Some(e) = f.te_error {
            return Err(e);
        }
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
        None => BodyFraming::None,
    })
}

fn target_form(method: Method, target: &[u8], span: Span) -> Result<TargetForm, ErrorKind> {
    if target.is_empty() || !target.iter().all(|b| chars::is_target(*b)) {
        return Err(ErrorKind::BadTarget);
    }
    if method == Method::Connect {
        return if is_authority(target) {
            Ok(TargetForm::Authority)
        } else {
            Err(ErrorKind::BadTarget)
        };
    }
    match target {
        [b'/', ..] => Ok(TargetForm::Origin),
        b"*" if method == Method::Options => Ok(TargetForm::Asterisk),
        b"*" => Err(ErrorKind::BadTarget),
        _ => absolute_form(target, span),
    }
}

/// `scheme "://" authority [path-abempty] [? query]`; userinfo (`@`) is refused.
fn absolute_form(target: &[u8], span: Span) -> Result<TargetForm, ErrorKind> {
    let scheme_len = target
        .iter()
        .position(|b| *b == b':')
        .ok_or(ErrorKind::BadTarget)?;
    let scheme = target.get(..scheme_len).unwrap_or(&[]);
    let scheme_ok = matches!(scheme.first(), Some(b) if b.is_ascii_alphabetic())
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest = target.get(scheme_len..).unwrap_or(&[]);
    let Some(after) = rest.strip_prefix(b"://") else {
        return Err(ErrorKind::BadTarget);
    };
    if !scheme_ok {
        return Err(ErrorKind::BadTarget);
    }
    let auth_len = after
        .iter()
        .position(|b| *b == b'/' || *b == b'?')
        .unwrap_or(after.len());
    let authority = after.get(..auth_len).unwrap_or(&[]);
    if authority.is_empty() || !is_authority(authority) {
        return Err(ErrorKind::BadTarget);
    }
    let start = span.start.saturating_add(scheme_len as u32 + 3);
    Ok(TargetForm::Absolute {
        authority: Span {
            start,
            end: start.saturating_add(auth_len as u32),
        },
    })
}

fn is_authority(a: &[u8]) -> bool {
    !a.is_empty() && a.iter().all(|b| chars::is_host(*b))
}

fn check_host(buf: &[u8], out: &RequestHead, f: &Facts) -> Result<(), ErrorKind> {
    if f.host_count > 1 {
        return Err(ErrorKind::DuplicateHost);
    }
    let Some(host) = f.host else {
        return Ok(());
    };
    let host = host.get(buf);
    if !host.iter().all(|b| chars::is_host(*b)) {
        return Err(ErrorKind::BadHost);
    }
    if let TargetForm::Absolute { authority } = out.target_form {
        let target = out.target.get(buf);
        let https = target.len() >= 6
            && target
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"https:"));
        let default_port: &[u8] = if https { b":443" } else { b":80" };
        let strip = |h: &'_ [u8]| -> usize {
            if h.len() > default_port.len() && h.ends_with(default_port) {
                h.len() - default_port.len()
            } else {
                h.len()
            }
        };
        let a = authority.get(buf);
        let a = a.get(..strip(a)).unwrap_or(a);
        let h = host.get(..strip(host)).unwrap_or(host);
        if !a.eq_ignore_ascii_case(h) {
            // Observed from haproxy 2.6: a Host differing from the authority gets a 400.
            return Err(ErrorKind::HostMismatch);
        }
    }
    Ok(())
}
