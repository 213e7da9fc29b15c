//! HTTP checks over HTTP/2 (`http-check connect proto h2`, `check-proto h2`, or `h2` chosen by
//! ALPN): the driver builds each request as HTTP/1 bytes as for any check, and this module
//! turns them into the parts of an HTTP/2 request; the response comes back as an HTTP/1 head
//! the expect rules read as usual ([`response_head`]). An HTTP/2 response has no reason
//! phrase: haproxy 2.6 reports none (`Layer7 wrong status, code: 500` without `info`), and so
//! does the empty reason of the head given here.

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The parts of an HTTP/2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Request {
    pub method: String,
    /// The request target as written (`/path?query`, or an absolute URI).
    pub target: String,
    /// The `host` field's value, if any (it stays among `headers` too: haproxy 2.6 sends
    /// it as a field, and no `:authority`, for a relative target).
    pub authority: Option<String>,
    /// Field names in lower case, without the connection-specific ones.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// The HTTP/2 request for the HTTP/1 request bytes of a check's `send` step.
pub fn request(bytes: &[u8]) -> Result<H2Request, String> {
    let mut hs = [httparse::EMPTY_HEADER; crate::http::MAX_HEADERS];
    let mut r = httparse::Request::new(&mut hs);
    let head_len = match r.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err("the check request is not a valid HTTP request".into()),
    };
    let (Some(method), Some(target)) = (r.method, r.path) else {
        return Err("the check request is not a valid HTTP request".into());
    };
    let mut authority = None;
    let mut headers = Vec::with_capacity(r.headers.len());
    let mut te_trailers = true;
    for h in r.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name == "host" {
            // haproxy 2.6 sends it as a `host` field, not as `:authority` (recorded).
            authority = Some(String::from_utf8_lossy(h.value).trim().to_string());
        }
        if name == "te" {
            te_trailers = h.value.trim_ascii().eq_ignore_ascii_case(b"trailers");
        }
        if CONNECTION_SPECIFIC.contains(&name.as_str()) || (name == "te" && !te_trailers) {
            continue;
        }
        headers.push((name, h.value.to_vec()));
    }
    Ok(H2Request {
        method: method.to_string(),
        target: if target.is_empty() || target == "*" {
            "/".into()
        } else {
            target.to_string()
        },
        authority: authority.filter(|a| !a.is_empty()),
        headers,
        body: bytes.get(head_len..).unwrap_or_default().to_vec(),
    })
}

/// The HTTP/1 head the expect rules read for an HTTP/2 response: its status, no reason
/// phrase, its fields (the body follows, up to the end of the stream or its
/// `content-length`).
pub fn response_head<'a>(
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} \r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// haproxy 2.6 sends `:scheme https` for a check request whose target is relative (its h2
/// mux's default), with `:authority` only from a `Host` field. The h2 library the driver uses
/// sends `:scheme http` for a request without authority and cannot be told otherwise; this
/// scanner, fed every byte the client writes, turns that field into `:scheme https` in the
/// HEADERS frames of the requests marked with [`SchemeFix::expect_request`].
///
/// The library encodes `:method` first, then `:scheme http` as the static table's entry 6
/// (one byte, `0x86`, RFC 7541 appendix A); the fix makes it entry 7 (`0x87`, `https`), the
/// same length, leaving the dynamic table as it was. Anything else (a padded or prioritised
/// HEADERS frame, another encoding) is left untouched.
#[derive(Debug, Default, Clone)]
pub struct SchemeFix {
    /// Bytes of the client connection preface still to pass.
    preface_left: usize,
    /// The frame header being gathered.
    head: [u8; 9],
    head_len: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
    at: Field,
    /// One entry per request to come: whether its `:scheme` is to become `https`.
    pending: std::collections::VecDeque<bool>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Not in a HEADERS frame being fixed.
    #[default]
    Skip,
    /// At the first field (`:method`).
    Method,
    /// In a literal `:method` value: its length byte next.
    MethodLen,
    /// Skipping the literal value's bytes.
    MethodValue(usize),
    /// At the second field (`:scheme`).
    Scheme,
}

/// The client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
/// HEADERS, its PADDED and PRIORITY flags.
const HEADERS: u8 = 1;
const PADDED_OR_PRIORITY: u8 = 0x08 | 0x20;
/// `:scheme http` / `:scheme https` as indexed static-table fields.
const SCHEME_HTTP: u8 = 0x86;
const SCHEME_HTTPS: u8 = 0x87;

impl SchemeFix {
    pub fn new() -> SchemeFix {
        SchemeFix {
            preface_left: PREFACE_LEN,
            ..SchemeFix::default()
        }
    }

    /// The next request the client sends is to carry `:scheme https` (`fix`) or is left as
    /// it is.
    pub fn expect_request(&mut self, fix: bool) {
        self.pending.push_back(fix);
    }

    /// Passes the bytes the client is about to write, fixing them in place.
    pub fn process(&mut self, bytes: &mut [u8]) {
        for b in bytes.iter_mut() {
            if self.preface_left > 0 {
                self.preface_left -= 1;
                continue;
            }
            if self.payload_left == 0 {
                if let Some(slot) = self.head.get_mut(self.head_len) {
                    *slot = *b;
                }
                self.head_len += 1;
                if self.head_len == self.head.len() {
                    self.frame_start();
                }
                continue;
            }
            self.payload_left -= 1;
            self.field(b);
        }
    }

    fn frame_start(&mut self) {
        self.head_len = 0;
        let [l0, l1, l2, kind, flags, ..] = self.head;
        self.payload_left = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        self.at = Field::Skip;
        if kind == HEADERS {
            let fix = self.pending.pop_front().unwrap_or(false);
            if fix && flags & PADDED_OR_PRIORITY == 0 && self.payload_left > 0 {
                self.at = Field::Method;
            }
        }
    }

    fn field(&mut self, b: &mut u8) {
        self.at = match self.at {
            Field::Skip => Field::Skip,
            // A dynamic table size update first: left as it is.
            Field::Method if *b & 0xe0 == 0x20 => Field::Skip,
            // `:method GET` or `:method POST` from the static table (entries 2 and 3): the
            // next field follows.
            Field::Method if *b == 0x82 || *b == 0x83 => Field::Scheme,
            // A literal whose name is `:method` (entry 2; with incremental indexing, without,
            // never indexed): its value follows. Any other first field: nothing is touched.
            Field::Method if matches!(*b, 0x42 | 0x02 | 0x12) => Field::MethodLen,
            Field::Method => Field::Skip,
            Field::MethodLen if *b & 0x7f == 0x7f => Field::Skip,
            Field::MethodLen if *b & 0x7f == 0 => Field::Scheme,
            Field::MethodLen => Field::MethodValue(usize::from(*b & 0x7f)),
            Field::MethodValue(1) => Field::Scheme,
            Field::MethodValue(n) => Field::MethodValue(n - 1),
            Field::Scheme => {
                if *b == SCHEME_HTTP {
                    *b = SCHEME_HTTPS;
                }
                Field::Skip
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse, Parsed};

    #[test]
    fn check_requests_become_h2_parts() {
        let r = request(b"GET /ok?x=1 HTTP/1.1\r\nHost: example.org\r\nconnection: close\r\nx-a: b\r\ncontent-length: 2\r\n\r\nhi")
            .unwrap();
        assert_eq!(
            r,
            H2Request {
                method: "GET".into(),
                target: "/ok?x=1".into(),
                authority: Some("example.org".into()),
                headers: vec![
                    ("host".into(), b"example.org".to_vec()),
                    ("x-a".into(), b"b".to_vec()),
                    ("content-length".into(), b"2".to_vec())
                ],
                body: b"hi".to_vec(),
            }
        );
        let r = request(b"OPTIONS * HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((r.target.as_str(), r.authority), ("/", None));
        assert!(request(b"not http").is_err());
    }

    #[test]
    fn h2_responses_read_as_http1_without_reason() {
        let mut head = response_head(500, [("content-length", b"3".as_slice())].into_iter());
        head.extend_from_slice(b"bad");
        let Parsed::Response(r) = parse(&head, false) else {
            panic!("{}", String::from_utf8_lossy(&head))
        };
        assert_eq!(
            (r.status, r.reason, r.body.as_slice()),
            (500, "", &b"bad"[..])
        );
        assert!(r.complete);
    }

    /// A client's first bytes: the preface, SETTINGS, then HEADERS for `GET` (indexed) and
    /// for `OPTIONS` (a literal), both with `:scheme http`.
    #[test]
    fn scheme_http_becomes_https_in_marked_requests() {
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let get = [0x82, 0x86, 0x84];
        out.extend_from_slice(&[0, 0, 3, 1, 5, 0, 0, 0, 1]);
        out.extend_from_slice(&get);
        // `OPTIONS` as a literal with incremental indexing of name 2.
        let mut opt = vec![0x42, 7];
        opt.extend_from_slice(b"OPTIONS");
        opt.extend_from_slice(&[0x86, 0x84]);
        out.extend_from_slice(&[0, 0, u8::try_from(opt.len()).unwrap(), 1, 5, 0, 0, 0, 3]);
        out.extend_from_slice(&opt);
        let mut fix = SchemeFix::new();
        fix.expect_request(true);
        fix.expect_request(true);
        let mut got = out.clone();
        // Fed in pieces, as writes come.
        for chunk in got.chunks_mut(5) {
            fix.process(chunk);
        }
        let headers_at = 24 + 9 + 9;
        assert_eq!(got[headers_at + 1], 0x87);
        let second = headers_at + 3 + 9;
        assert_eq!(got[second + 9], 0x87);
        // Everything else is untouched.
        let diff = out.iter().zip(&got).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 2);
        // An unmarked request keeps its scheme.
        let mut fix = SchemeFix::new();
        fix.expect_request(false);
        let mut again = out.clone();
        fix.process(&mut again);
        assert_eq!(again, out);
    }

    /// A first field that is not `:method` is left alone, and so is a 0x86 byte inside a
    /// literal value: a name index that continues into the next byte (0x7f ...) or another
    /// field first.
    #[test]
    fn other_first_fields_are_never_patched() {
        for block in [
            // Literal, new name continuation (0x7f then more index bytes), value with 0x86.
            vec![0x7f, 0x10, 0x02, 0x86, 0x86, 0x86],
            // `:path /` indexed first, then `:scheme http`.
            vec![0x84, 0x86],
            // Literal with name index 15 (0x4f), value 0x86.
            vec![0x4f, 0x01, 0x86, 0x86],
        ] {
            let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            out.extend_from_slice(&[0, 0, u8::try_from(block.len()).unwrap(), 1, 5, 0, 0, 0, 1]);
            out.extend_from_slice(&block);
            let mut fix = SchemeFix::new();
            fix.expect_request(true);
            let mut got = out.clone();
            fix.process(&mut got);
            assert_eq!(got, out, "{block:02x?}");
        }
    }
}
