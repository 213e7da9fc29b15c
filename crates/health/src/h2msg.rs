//! HTTP checks over HTTP/2 (`http-check connect proto h2`, `check-proto h2`, or `h2` chosen by
//! ALPN): the driver builds each request as HTTP/1 bytes as for any check, and this module
//! turns them into the parts of an HTTP/2 request; the response comes back as an HTTP/1 head
//! the expect rules read as usual ([`response_head`]). An HTTP/2 response has no reason
//! phrase: haproxy 2.6 reports none (`Layer7 wrong status, code: 500` without `info`), and so
//! does the empty reason of the head given here.

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2); `host` becomes `:authority`.
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
    /// From the `host` field, if any (`:authority`).
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
            authority = Some(String::from_utf8_lossy(h.value).trim().to_string());
            continue;
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
}
