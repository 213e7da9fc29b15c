//! The HTTP/2 → HTTP/1 translation's fuzz invariant, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/h2_downgrade.rs`) and the corpus replay test.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use ringlb_http1::{parse_request, Limits, Parsed, RequestHead};

/// Input: first byte = has a body (low bit); then lines: method, URI, then `name:value`
/// fields. Only what the h2 library itself would hand over is tried (names, values, methods
/// and URIs its types accept). Whenever `h1_head` accepts, its output must be one finished
/// HTTP/1.1 request head with no CR, LF or NUL anywhere but in CRLFs; when HTTP/1 parses it,
/// it parses to its last byte with the same method.
pub fn h2_downgrade(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let has_body = flags & 1 == 1;
    let mut lines = rest.split(|&b| b == b'\n');
    let (Some(m), Some(u)) = (lines.next(), lines.next()) else {
        return;
    };
    let (Ok(method), Ok(uri)) = (Method::from_bytes(m), Uri::try_from(u)) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        headers.append(n, v);
    }
    let Ok(head) = ringlb_shard::h2::h1_head(&method, &uri, &headers, has_body) else {
        return;
    };
    let limits = Limits {
        max_headers: 1 << 20,
        max_head_bytes: 1 << 24,
    };
    let mut req = RequestHead::default();
    // The stream parses the head again and resets the stream when HTTP/1 refuses it (a
    // `host` HTTP/1 finds invalid, say): a refusal is safe, a partial head would not be.
    match parse_request(&head, &limits, &mut req) {
        Ok(Parsed::Complete { head_len }) => {
            assert_eq!(head_len, head.len(), "{head:?}");
            let span = req.method_span();
            assert_eq!(
                &head[span.start as usize..span.end as usize],
                method.as_str().as_bytes()
            );
        }
        Ok(Parsed::Partial) => panic!("h1_head wrote an unfinished head: {head:?}"),
        Err(_) => {}
    }
    for (i, &b) in head.iter().enumerate() {
        assert_ne!(b, 0, "NUL in {head:?}");
        if b == b'\r' {
            assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR in {head:?}");
        }
        if b == b'\n' {
            assert_eq!(
                i.checked_sub(1).map(|j| head[j]),
                Some(b'\r'),
                "bare LF in {head:?}"
            );
        }
    }
}
