//! Head rewriting: the bytes ringlb sends to the next hop, following what HAProxy 2.6 puts on
//! the wire (observed from haproxy 2.6.12 on loopback, see README.md):
//!
//! - start line normalised (single spaces, `HTTP/1.x` as received); the default port of an
//!   absolute-form `http`/`https` target removed from it and from Host (CONNECT: from Host);
//! - header names lower-cased, values OWS-trimmed, order kept;
//! - `Connection`: the `close` and `keep-alive` tokens are removed, other tokens kept in place
//!   (the header is dropped when nothing is left). Other hop-by-hop headers (`Keep-Alive`,
//!   `Proxy-Connection`, `TE`, `Upgrade`, headers named in `Connection`) are forwarded, as
//!   HAProxy 2.6 does;
//! - Content-Length written once (merged duplicates), dropped when the body is chunked (CL+TE);
//! - `option forwardfor` appends its header after the received ones;
//! - a `connection: close` / `connection: keep-alive` line is appended last when the wanted
//!   persistence differs from the message version's default (nothing for upgrades and 1xx).

use crate::request::{RequestHead, RequestSummary, TargetForm};
use crate::response::ResponseHead;
use crate::types::{list_items, BodyFraming, Header, Version};

/// How HTTP/1.x persistence is handled for a proxy: `option http-keep-alive` (default),
/// `option http-server-close`, `option httpclose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnMode {
    /// Keep-alive on both sides.
    #[default]
    KeepAlive,
    /// Close the server connection after each response; keep the client side alive.
    ServerClose,
    /// Close both sides after each response.
    Close,
}

impl ConnMode {
    /// The server connection is closed after the response (so `connection: close` is announced
    /// to HTTP/1.1 servers).
    pub fn closes_server_side(self) -> bool {
        self != ConnMode::KeepAlive
    }

    /// The client connection is closed after the response whatever the client wants.
    pub fn closes_client_side(self) -> bool {
        self == ConnMode::Close
    }
}

/// `option forwardfor`: add `<header>: <client ip>`. The engine decides `except <network>`
/// (it does not call this when the source matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedFor<'a> {
    /// Header name (`X-Forwarded-For` by default, or the `header NAME` argument); written
    /// lower-cased as HAProxy 2.6 does.
    pub header: &'a [u8],
    /// The client address as text (`192.0.2.1`, `2001:db8::1`).
    pub client_ip: &'a [u8],
    /// `if-none`: add only when the request has no such header.
    pub if_none: bool,
}

/// What to change when forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestEdits<'a> {
    /// The server connection will be closed after this exchange
    /// ([`ConnMode::closes_server_side`], or any engine reason). HTTP/1.1 requests then get
    /// `connection: close`; HTTP/1.0 requests that stay alive get `connection: keep-alive`.
    pub close_server: bool,
    /// `option forwardfor`, if it applies to this client.
    pub forwarded_for: Option<ForwardedFor<'a>>,
    /// `option originalto`: `(header, destination address as text)`, added after the
    /// `x-forwarded-for` line (haproxy's order), whatever the request already holds.
    pub original_to: Option<(&'a [u8], &'a [u8])>,
}

/// What to change when forwarding a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseEdits<'a> {
    /// The client connection will be closed after this response (see [`client_keeps_alive`]).
    pub close_client: bool,
    /// The version of the request this answers (HTTP/1.0 clients need `connection: keep-alive`).
    pub request_version: Version,
    /// Complete header lines (`name: value\r\n`) the proxy adds after the received ones and
    /// before the `connection` line (`cookie ... insert`'s `set-cookie`), as haproxy orders them.
    pub added: &'a [u8],
}

/// Whether the client connection stays open after `resp`, as HAProxy 2.6 decides: the client
/// wants it ([`RequestHead::client_keep_alive`]), `option httpclose` is not set, and the body's
/// end does not depend on the server closing (a close-delimited body forces a close).
/// Takes a `&RequestHead` or a [`RequestSummary`].
pub fn client_keeps_alive(
    req: impl Into<RequestSummary>,
    resp: &ResponseHead,
    mode: ConnMode,
) -> bool {
    req.into().client_keep_alive
        && !mode.closes_client_side()
        && resp.framing() != BodyFraming::UntilClose
}

/// Append the head to send to the server to `out` (which is not cleared).
/// Allocation: only when `out` has to grow; reuse it across requests.
pub fn write_request_head(
    head: &RequestHead,
    src: &[u8],
    out: &mut Vec<u8>,
    edits: &RequestEdits<'_>,
) {
    out.extend_from_slice(head.method_span().get(src));
    out.push(b' ');
    let default_port = default_port(head, src);
    write_target(head, src, default_port, out);
    out.push(b' ');
    out.extend_from_slice(head.version().as_bytes());
    out.extend_from_slice(b"\r\n");
    let chunked = head.framing() == BodyFraming::Chunked;
    write_fields(head.headers(), src, chunked, default_port, out);
    if let Some(ff) = edits.forwarded_for {
        let present = ff.if_none
            && head
                .headers()
                .iter()
                .any(|h| h.name.get(src).eq_ignore_ascii_case(ff.header));
        if !present {
            push_lower(out, ff.header);
            out.extend_from_slice(b": ");
            out.extend_from_slice(ff.client_ip);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some((name, ip)) = edits.original_to {
        push_lower(out, name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(ip);
        out.extend_from_slice(b"\r\n");
    }
    if !head.is_upgrade() {
        persistence_line(out, head.version(), !edits.close_server, false);
    }
    out.extend_from_slice(b"\r\n");
}

/// Makes `name: value` the last header line of a head written by [`write_request_head`]
/// (which ends with its empty line), removing every other line of that name: haproxy's
/// `http-send-name-header`, whose line comes after everything the proxy adds. Called again
/// on a retry to another server, it replaces its own line. `name` must be lowercase, as the
/// written head's names are. Compacts in place (no allocation beyond the appended bytes).
pub fn set_last_header(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if !head.ends_with(b"\r\n\r\n") {
        return;
    }
    head.truncate(head.len() - 2);
    let line_end = |h: &[u8], from: usize| {
        h.get(from..)
            .and_then(|rest| rest.windows(2).position(|w| w == b"\r\n"))
            .map_or(h.len(), |p| from + p + 2)
    };
    // The request line stays.
    let mut write = line_end(head, 0);
    let mut read = write;
    while read < head.len() {
        let end = line_end(head, read);
        let same = head
            .get(read..end)
            .and_then(|line| Some((line.get(..name.len())?, line.get(name.len())?)))
            .is_some_and(|(n, colon)| *colon == b':' && n.eq_ignore_ascii_case(name));
        if !same {
            head.copy_within(read..end, write);
            write += end - read;
        }
        read = end;
    }
    head.truncate(write);
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n\r\n");
}

/// Whether a header name keeps to `[A-Za-z0-9-]` (`option http-restrict-req-hdr-names`).
pub fn is_restricted_header_name(name: &[u8]) -> bool {
    name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// `option http-restrict-req-hdr-names delete`: the request head `head` (start line, header
/// lines, empty line) without the header lines whose name has a character outside
/// `[A-Za-z0-9-]`; `None` when there is none (the common case: no copy).
pub fn without_unrestricted_names(head: &[u8]) -> Option<Vec<u8>> {
    let mut lines = head.split_inclusive(|b| *b == b'\n');
    let bad = |line: &[u8]| {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        // The empty line ends the head; it has no name.
        let blank = line == b"\r\n" || line == b"\n";
        !blank && !is_restricted_header_name(name)
    };
    let start = lines.next()?;
    if !lines.clone().any(bad) {
        return None;
    }
    let mut out = Vec::with_capacity(head.len());
    out.extend_from_slice(start);
    for line in lines.filter(|l| !bad(l)) {
        out.extend_from_slice(line);
    }
    Some(out)
}

/// Append the head to send to the client to `out` (which is not cleared).
pub fn write_response_head(
    head: &ResponseHead,
    src: &[u8],
    out: &mut Vec<u8>,
    edits: &ResponseEdits,
) {
    out.extend_from_slice(head.version().as_bytes());
    out.push(b' ');
    push_status(out, head.status());
    out.push(b' ');
    out.extend_from_slice(head.reason().get(src));
    out.extend_from_slice(b"\r\n");
    let chunked = head.framing() == BodyFraming::Chunked;
    write_fields(head.headers(), src, chunked, None, out);
    out.extend_from_slice(edits.added);
    if !(100..200).contains(&head.status()) {
        let keep = !edits.close_client;
        let ka_needs_saying = edits.request_version == Version::Http10;
        persistence_line(out, head.version(), keep, ka_needs_saying);
    }
    out.extend_from_slice(b"\r\n");
}

/// `connection: close` when closing a 1.1 message, `connection: keep-alive` when keeping a 1.0
/// message (or when the peer is 1.0: `force_ka`), nothing when the default already says it.
fn persistence_line(out: &mut Vec<u8>, version: Version, keep: bool, force_ka: bool) {
    match (keep, version) {
        (false, Version::Http11) => out.extend_from_slice(b"connection: close\r\n"),
        (true, Version::Http10) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        (true, Version::Http11) if force_ka => out.extend_from_slice(b"connection: keep-alive\r\n"),
        _ => {}
    }
}

/// HAProxy 2.6's scheme-based normalisation (observed): for an absolute-form `http://` or
/// `https://` target the scheme's default port (`:80`, `:443`) is removed from the target's
/// authority and from Host; for CONNECT, `:443` is removed from Host (the target keeps it).
/// Origin-form requests are left alone (`Host: x:80` stays).
fn default_port(head: &RequestHead, src: &[u8]) -> Option<&'static [u8]> {
    match head.target_form() {
        TargetForm::Absolute { .. } => {
            let target = head.target().get(src);
            if target.len() > 7 && target.get(..7)?.eq_ignore_ascii_case(b"http://") {
                Some(b":80")
            } else if target.len() > 8 && target.get(..8)?.eq_ignore_ascii_case(b"https://") {
                Some(b":443")
            } else {
                None
            }
        }
        TargetForm::Authority => Some(b":443"),
        TargetForm::Origin | TargetForm::Asterisk => None,
    }
}

fn strip_port<'a>(authority: &'a [u8], port: Option<&[u8]>) -> &'a [u8] {
    match port {
        Some(p) if authority.len() > p.len() && authority.ends_with(p) => authority
            .get(..authority.len() - p.len())
            .unwrap_or(authority),
        _ => authority,
    }
}

fn write_target(head: &RequestHead, src: &[u8], port: Option<&[u8]>, out: &mut Vec<u8>) {
    let target = head.target().get(src);
    let TargetForm::Absolute { authority } = head.target_form() else {
        out.extend_from_slice(target);
        return;
    };
    let auth = authority.get(src);
    let kept = strip_port(auth, port);
    let start = authority.start.saturating_sub(head.target().start) as usize;
    let end = authority.end.saturating_sub(head.target().start) as usize;
    out.extend_from_slice(target.get(..start).unwrap_or(&[]));
    out.extend_from_slice(kept);
    out.extend_from_slice(target.get(end..).unwrap_or(&[]));
}

fn write_fields(
    headers: &[Header],
    src: &[u8],
    chunked: bool,
    host_port: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    let mut cl_written = false;
    for h in headers {
        let name = h.name.get(src);
        let value = h.value.get(src);
        if name.eq_ignore_ascii_case(b"content-length") {
            if chunked || cl_written {
                continue;
            }
            cl_written = true;
            // Merged value: every element is identical (checked by the parser).
            let first = list_items(value).next().unwrap_or(value);
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, first);
            out.extend_from_slice(b"\r\n");
        } else if name.eq_ignore_ascii_case(b"connection") {
            write_connection(out, value);
        } else if host_port.is_some() && name.eq_ignore_ascii_case(b"host") {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(strip_port(value, host_port));
            out.extend_from_slice(b"\r\n");
        } else {
            push_lower(out, name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The Connection header without `close`/`keep-alive` tokens; dropped when empty.
fn write_connection(out: &mut Vec<u8>, value: &[u8]) {
    let keep = |t: &&[u8]| {
        !t.is_empty() && !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive")
    };
    let mut tokens = list_items(value).filter(keep).peekable();
    if tokens.peek().is_none() {
        return;
    }
    out.extend_from_slice(b"connection: ");
    let mut first = true;
    for t in tokens {
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        out.extend_from_slice(t);
    }
    out.extend_from_slice(b"\r\n");
}

fn push_lower(out: &mut Vec<u8>, name: &[u8]) {
    let start = out.len();
    out.extend_from_slice(name);
    if let Some(tail) = out.get_mut(start..) {
        tail.make_ascii_lowercase();
    }
}

/// Digits without leading zeros (`002` → `2`, `000` → `0`).
fn push_decimal(out: &mut Vec<u8>, digits: &[u8]) {
    let significant = digits.iter().position(|b| *b != b'0');
    match significant.and_then(|i| digits.get(i..)) {
        Some(rest) => out.extend_from_slice(rest),
        None => out.push(b'0'),
    }
}

fn push_status(out: &mut Vec<u8>, status: u16) {
    let s = status.min(999);
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
}
