//! The size HAProxy 2.6 counts for an HTTP message in its byte counters (`bin`, `bout`,
//! `%B`, `%U`, the stick-table `bytes_in|out_*`): not the bytes on the wire but the size of the
//! message in its internal HTX form, in which it holds every HTTP message whatever the
//! protocol it came in by. Measured on haproxy 2.6.12 (a GET of 46 wire bytes counts 38;
//! a 77-byte response counts 84):
//!
//! - the start line is one block of [`START_LINE`] bytes of fixed fields plus its three parts
//!   (method, target, version; or version, status, reason) without separators;
//! - each header field counts its name and its value (OWS trimmed), no separator; the
//!   `Connection` field counts without its `close` and `keep-alive` tokens, and not at all
//!   when nothing else is left (the HTTP/1 parser takes them as flags);
//! - the end of the head is a block of [`END_OF_HEAD`] byte;
//! - a body counts its payload only (chunk framing excluded); a chunked body adds its trailer
//!   fields (name and value) and an end-of-trailers block of [`END_OF_TRAILERS`] byte, with or
//!   without trailers.

use crate::types::{list_items, Header};
use crate::{RequestHead, ResponseHead};

/// Fixed part of HTX's start-line block (`struct htx_sl`: flags, method or status, and the
/// three part lengths).
pub const START_LINE: u64 = 20;
/// HTX's end-of-headers block.
pub const END_OF_HEAD: u64 = 1;
/// HTX's end-of-trailers block, which ends every chunked message.
pub const END_OF_TRAILERS: u64 = 1;

/// The HTX size of a request head parsed from `buf`.
pub fn request_head_size(req: &RequestHead, buf: &[u8]) -> u64 {
    START_LINE
        + req.method_span().len() as u64
        + req.target().len() as u64
        + req.version().as_bytes().len() as u64
        + fields_size(req.headers(), buf)
        + END_OF_HEAD
}

/// The HTX size of a response head parsed from `buf`.
pub fn response_head_size(resp: &ResponseHead, buf: &[u8]) -> u64 {
    START_LINE
        + resp.version().as_bytes().len() as u64
        + 3 // status code
        + resp.reason().len() as u64
        + fields_size(resp.headers(), buf)
        + END_OF_HEAD
}

/// The HTX size of a whole response held in `bytes` (head and a body sent as is), as the
/// proxy's own replies (error pages, redirects, services) count; the wire size if `bytes` is
/// not a response head.
pub fn reply_size(bytes: &[u8]) -> u64 {
    let mut head = ResponseHead::default();
    match crate::parse_response(
        bytes,
        &crate::Limits::default(),
        crate::Method::Get,
        &mut head,
    ) {
        Ok(crate::Parsed::Complete { head_len }) => {
            response_head_size(&head, bytes) + bytes.len().saturating_sub(head_len) as u64
        }
        _ => bytes.len() as u64,
    }
}

/// Header fields as HTX counts them: name plus value, `Connection` without the tokens the
/// HTTP/1 parser consumes.
pub fn fields_size(headers: &[Header], buf: &[u8]) -> u64 {
    headers
        .iter()
        .map(|h| {
            let name = h.name.get(buf);
            let value = h.value.get(buf);
            if name.eq_ignore_ascii_case(b"connection") {
                let v = connection_value_size(value);
                if v == 0 {
                    0
                } else {
                    name.len() as u64 + v
                }
            } else {
                name.len() as u64 + value.len() as u64
            }
        })
        .sum()
}

/// The length of a `Connection` value once `close` and `keep-alive` are taken out (the other
/// tokens, joined by `", "`).
fn connection_value_size(value: &[u8]) -> u64 {
    let mut n = 0u64;
    let mut kept = 0u64;
    for t in list_items(value) {
        if t.is_empty() || t.eq_ignore_ascii_case(b"close") || t.eq_ignore_ascii_case(b"keep-alive")
        {
            continue;
        }
        n += t.len() as u64;
        kept += 1;
    }
    n + kept.saturating_sub(1) * 2
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{parse_request, parse_response, Limits, Method};

    fn req(raw: &[u8]) -> u64 {
        let mut r = RequestHead::default();
        parse_request(raw, &Limits::default(), &mut r).unwrap();
        request_head_size(&r, raw)
    }

    fn resp(raw: &[u8]) -> u64 {
        let mut r = ResponseHead::default();
        parse_response(raw, &Limits::default(), Method::Get, &mut r).unwrap();
        response_head_size(&r, raw)
    }

    /// Figures read from haproxy 2.6.12's `show stat` for the same messages.
    #[test]
    fn sizes_are_haproxy_s() {
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            38
        );
        assert_eq!(req(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 38);
        assert_eq!(req(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"), 38);
        assert_eq!(
            req(b"GET /abc HTTP/1.1\r\nHost: 127.0.0.1:23001\r\nUser-Agent: test/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n"),
            82
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, foo\r\nKeep-Alive: 5\r\nProxy-Connection: close\r\n\r\n"),
            83
        );
        assert_eq!(req(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"), 39);
        // 77 wire bytes with a 12-byte body: 84 with it.
        assert_eq!(
            resp(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n"),
            72
        );
        assert_eq!(
            resp(b"HTTP/1.1 200 Okay Fine\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n"),
            75
        );
        // haproxy's 403 page (`http-request deny`): 192.
        let deny = crate::default_reply(403).unwrap();
        assert_eq!(reply_size(deny), 192, "{}", String::from_utf8_lossy(deny));
        assert_eq!(
            reply_size(b"HTTP/1.1 302 Found\r\ncontent-length: 0\r\nlocation: /x\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"),
            83
        );
    }

    #[test]
    fn chunked_bodies_count_payload_trailers_and_their_end() {
        let body = |raw: &[u8]| {
            let mut d = crate::ChunkedDecoder::new(crate::Side::Server, &Limits::default());
            assert!(d.feed(raw).unwrap().done);
            d.htx_size()
        };
        // haproxy: 70 for a 33+24+1-byte head, 74 with one trailer.
        assert_eq!(body(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 12);
        assert_eq!(body(b"5\r\nhello\r\n0\r\nX-Trail: abc\r\n\r\n"), 16);
        assert_eq!(body(b"3\r\nabc\r\n0\r\nX-Tr:  1 2 \r\n\r\n"), 3 + 4 + 3 + 1);
    }
}
