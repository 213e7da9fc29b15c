//! Invariants checked on arbitrary input; shared by the mutation test, the fuzz-corpus replay
//! test and the cargo-fuzz targets in `fuzz/` (which include this file by path). A violated
//! invariant panics: that is the finding.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use ringlb_http1::{
    parse_request, parse_response, write_request_head, write_response_head, BodyFraming,
    ChunkedDecoder, ConnMode, ForwardedFor, Limits, Method, Parsed, RequestEdits, RequestHead,
    ResponseEdits, ResponseHead, Side,
};

fn small_limits() -> Limits {
    Limits {
        max_headers: 16,
        max_head_bytes: 1024,
    }
}

/// A request head: parse, prefix monotonicity, spans in bounds, rewrite round trip, and the
/// body when it is chunked.
pub fn request(data: &[u8]) {
    for limits in [Limits::default(), small_limits()] {
        let mut head = RequestHead::with_limits(&limits);
        let Ok(Parsed::Complete { head_len }) = parse_request(data, &limits, &mut head) else {
            continue;
        };
        assert!(head_len <= data.len() && head_len <= limits.max_head_bytes);
        // A `Connection` field of only close/keep-alive takes no slot (as in HAProxy 2.6).
        let counted = head
            .headers()
            .iter()
            .filter(|h| !persistence_only(h.name.get(data), h.value.get(data)))
            .count();
        assert!(counted < limits.max_headers);
        for h in head.headers() {
            assert!(h.name.end as usize <= head_len && h.value.end as usize <= head_len);
            assert!(!h.name.is_empty());
        }
        assert!(head.target().end as usize <= head_len);
        // Every strict prefix of a complete head is incomplete, never an error or another head.
        let step = (head_len / 8).max(1);
        for cut in (0..head_len).step_by(step).chain([head_len - 1]) {
            let mut p = RequestHead::default();
            assert_eq!(
                parse_request(&data[..cut], &limits, &mut p),
                Ok(Parsed::Partial),
                "prefix {cut} of {head_len}"
            );
        }
        rewrite_request(&head, data, &limits);
        if head.framing() == BodyFraming::Chunked {
            chunked(&data[head_len..]);
        }
    }
}

fn persistence_only(name: &[u8], value: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"connection")
        && value
            .split(|b| *b == b',')
            .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .all(|t| t == "close" || t == "keep-alive")
        && !value
            .iter()
            .all(|b| *b == b',' || *b == b' ' || *b == b'\t')
}

fn rewrite_request(head: &RequestHead, data: &[u8], limits: &Limits) {
    let ff = ForwardedFor {
        header: b"X-Forwarded-For",
        client_ip: b"192.0.2.1",
        if_none: false,
    };
    for (mode, forwarded_for) in [
        (ConnMode::KeepAlive, None),
        (ConnMode::ServerClose, Some(ff)),
    ] {
        let edits = RequestEdits {
            close_server: mode.closes_server_side(),
            forwarded_for,
            original_to: None,
        };
        let mut out = Vec::new();
        write_request_head(head, data, &mut out, &edits);
        // The rewritten head may exceed the limits only by what was added.
        let roomy = Limits {
            max_headers: limits.max_headers + 2,
            max_head_bytes: out.len(),
        };
        let mut again = RequestHead::default();
        let r = parse_request(&out, &roomy, &mut again);
        assert_eq!(
            r,
            Ok(Parsed::Complete {
                head_len: out.len()
            }),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(again.framing(), head.framing());
        assert_eq!(again.method(), head.method());
        assert_eq!(again.version(), head.version());
        // The target may lose a default port; path and query never change.
        assert_eq!(again.path().get(&out), head.path().get(data));
        assert_eq!(
            again.query().map(|q| q.get(&out)),
            head.query().map(|q| q.get(data))
        );
        assert_eq!(
            core::mem::discriminant(&again.target_form()),
            core::mem::discriminant(&head.target_form())
        );
        assert_eq!(again.is_upgrade(), head.is_upgrade());
        if forwarded_for.is_none() {
            // A rewritten head is a fixpoint.
            let mut twice = Vec::new();
            write_request_head(&again, &out, &mut twice, &edits);
            assert_eq!(twice, out);
        }
    }
}

/// A response head to GET and to HEAD, then its body when chunked.
pub fn response(data: &[u8]) {
    for method in [Method::Get, Method::Head] {
        let limits = Limits::default();
        let mut head = ResponseHead::with_limits(&limits);
        let Ok(Parsed::Complete { head_len }) = parse_response(data, &limits, method, &mut head)
        else {
            continue;
        };
        assert!(head_len <= data.len());
        assert!((100..=599).contains(&head.status()));
        if method == Method::Head {
            assert_eq!(head.framing(), BodyFraming::None);
        }
        for close_client in [false, true] {
            let edits = ResponseEdits {
                close_client,
                request_version: ringlb_http1::Version::Http11,
                added: b"",
            };
            let mut out = Vec::new();
            write_response_head(&head, data, &mut out, &edits);
            let roomy = Limits {
                max_headers: limits.max_headers + 1,
                max_head_bytes: out.len(),
            };
            let mut again = ResponseHead::default();
            let r = parse_response(&out, &roomy, method, &mut again);
            assert_eq!(
                r,
                Ok(Parsed::Complete {
                    head_len: out.len()
                })
            );
            assert_eq!(again.framing(), head.framing());
            assert_eq!(again.status(), head.status());
        }
        if head.framing() == BodyFraming::Chunked {
            chunked(&data[head_len..]);
        }
    }
}

/// A chunked body fed whole, byte by byte and in uneven pieces gives one answer.
pub fn chunked(data: &[u8]) {
    let whole = feed(data, data.len().max(1));
    assert_eq!(whole, feed(data, 1));
    assert_eq!(whole, feed(data, 3));
    assert_eq!(whole, feed(data, 64));
    if let Ok((consumed, _)) = whole {
        assert!(consumed <= data.len());
    }
}

fn feed(data: &[u8], step: usize) -> Result<(usize, bool), ringlb_http1::ErrorKind> {
    let mut d = ChunkedDecoder::new(Side::Server, &small_limits());
    let mut used = 0;
    for piece in data.chunks(step) {
        let f = d.feed(piece).map_err(|e| e.kind)?;
        used += f.consumed;
        if f.done {
            return Ok((used, true));
        }
        assert_eq!(f.consumed, piece.len());
    }
    Ok((used, false))
}
