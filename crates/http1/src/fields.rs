//! Facts derived from header fields, shared by requests and responses: Content-Length,
//! Transfer-Encoding, Connection, Host, Expect, Upgrade.

use crate::error::ErrorKind;
use crate::types::{list_items, ConnectionTokens, Header, Span};

/// What the header fields say, before the message type decides the framing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The merged Content-Length (all values identical), if any.
    pub content_length: Option<u64>,
    /// A Transfer-Encoding header was present.
    pub te_present: bool,
    /// The last transfer coding is `chunked` (and appears once).
    pub te_chunked_last: bool,
    /// Some coding other than `chunked` precedes it.
    pub te_other_coding: bool,
    /// A problem with Transfer-Encoding, reported after CL/TE are both known.
    pub te_error: Option<ErrorKind>,
    pub connection: ConnectionTokens,
    pub host: Option<Span>,
    pub host_count: u32,
    pub expect_continue: bool,
    pub upgrade: Option<Span>,
    pub upgrade_websocket: bool,
    pub websocket_key: bool,
}

/// Walk every field once and collect the facts. Fails only on errors that are errors whatever
/// the message is (bad Content-Length).
pub(crate) fn collect(buf: &[u8], headers: &[Header]) -> Result<Facts, ErrorKind> {
    let mut f = Facts::default();
    for h in headers {
        let name = h.name.get(buf);
        let value = h.value.get(buf);
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                f.host_count += 1;
                f.host = Some(h.value);
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                f.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => {
                f.upgrade = Some(h.value);
                f.upgrade_websocket |=
                    list_items(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
            }
            10 if name.eq_ignore_ascii_case(b"connection") => f.connection.add_list(value),
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                merge_content_length(&mut f.content_length, value)?;
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                add_transfer_encoding(&mut f, value)
            }
            17 if name.eq_ignore_ascii_case(b"sec-websocket-key") => f.websocket_key = true,
            _ => {}
        }
    }
    Ok(f)
}

/// Content-Length: a list of identical non-empty digit runs (RFC 9110 §8.6 lets a recipient
/// merge `2, 2`; HAProxy 2.6 does, and merges repeated identical headers too). Leading zeros are
/// accepted as HAProxy does. Signs, spaces inside, empty elements and u64 overflow are errors.
pub(crate) fn merge_content_length(acc: &mut Option<u64>, value: &[u8]) -> Result<(), ErrorKind> {
    for item in list_items(value) {
        let n = parse_decimal(item).ok_or(ErrorKind::BadContentLength)?;
        match *acc {
            Some(prev) if prev != n => return Err(ErrorKind::ConflictingContentLength),
            _ => *acc = Some(n),
        }
    }
    Ok(())
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Transfer-Encoding elements across all TE headers, in order (RFC 9110 §5.3 list semantics).
/// Follows HAProxy 2.6: `chunked` must be last and appear once (`chunked, chunked` and two
/// `chunked` headers are 400), a coding after it is 400, a coding before it is 422. Stricter than
/// HAProxy: empty elements and transfer-parameters are errors.
fn add_transfer_encoding(f: &mut Facts, value: &[u8]) {
    f.te_present = true;
    for item in list_items(value) {
        if f.te_error.is_some() {
            return;
        }
        if item.eq_ignore_ascii_case(b"chunked") {
            if f.te_chunked_last {
                f.te_error = Some(ErrorKind::BadTransferEncoding);
            }
            f.te_chunked_last = true;
        } else if item.is_empty() || !item.iter().all(|b| crate::chars::is_token(*b)) {
            f.te_error = Some(ErrorKind::BadTransferEncoding);
        } else if f.te_chunked_last {
            // A coding applied after chunked: the length cannot be known.
            f.te_error = Some(ErrorKind::BadTransferEncoding);
            f.te_chunked_last = false;
        } else {
            f.te_other_coding = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Values = &'static [&'static [u8]];

    #[test]
    fn content_length_values() {
        let cases: &[(Values, Result<Option<u64>, ErrorKind>)] = &[
            (&[b"0"], Ok(Some(0))),
            (&[b"42"], Ok(Some(42))),
            (&[b"002"], Ok(Some(2))),
            (&[b"2", b"2"], Ok(Some(2))),
            (&[b"2, 2"], Ok(Some(2))),
            (&[b"2,2,2"], Ok(Some(2))),
            (&[b"2, 2", b"2"], Ok(Some(2))),
            (&[b"18446744073709551615"], Ok(Some(u64::MAX))),
            (&[b"18446744073709551616"], Err(ErrorKind::BadContentLength)),
            (
                &[b"99999999999999999999999"],
                Err(ErrorKind::BadContentLength),
            ),
            (&[b"2", b"3"], Err(ErrorKind::ConflictingContentLength)),
            (&[b"2, 3"], Err(ErrorKind::ConflictingContentLength)),
            (&[b"2", b"02"], Ok(Some(2))),
            (&[b"+2"], Err(ErrorKind::BadContentLength)),
            (&[b"-2"], Err(ErrorKind::BadContentLength)),
            (&[b"2a"], Err(ErrorKind::BadContentLength)),
            (&[b"0x2"], Err(ErrorKind::BadContentLength)),
            (&[b""], Err(ErrorKind::BadContentLength)),
            (&[b"1 2"], Err(ErrorKind::BadContentLength)),
            (&[b"2,"], Err(ErrorKind::BadContentLength)),
            (&[b",2"], Err(ErrorKind::BadContentLength)),
            (&[b"2.0"], Err(ErrorKind::BadContentLength)),
            (&[b"1e3"], Err(ErrorKind::BadContentLength)),
            (&[b"\xd9\xa2"], Err(ErrorKind::BadContentLength)),
        ];
        for (values, want) in cases {
            let mut acc = None;
            let got = values
                .iter()
                .try_for_each(|v| merge_content_length(&mut acc, v))
                .map(|()| acc);
            assert_eq!(got, *want, "{values:?}");
        }
    }

    #[test]
    fn transfer_encoding_lists() {
        // (headers, chunked last, other coding, error)
        let cases: &[(Values, bool, bool, Option<ErrorKind>)] = &[
            (&[b"chunked"], true, false, None),
            (&[b"CHUNKED"], true, false, None),
            (&[b"Chunked"], true, false, None),
            (&[b"gzip, chunked"], true, true, None),
            (&[b"gzip", b"chunked"], true, true, None),
            (
                &[b"chunked, chunked"],
                true,
                false,
                Some(ErrorKind::BadTransferEncoding),
            ),
            (
                &[b"chunked", b"chunked"],
                true,
                false,
                Some(ErrorKind::BadTransferEncoding),
            ),
            (
                &[b"chunked, identity"],
                false,
                false,
                Some(ErrorKind::BadTransferEncoding),
            ),
            (
                &[b"chunked", b"gzip"],
                false,
                false,
                Some(ErrorKind::BadTransferEncoding),
            ),
            (&[b"identity"], false, true, None),
            (&[b"xchunked"], false, true, None),
            (
                &[b"chunked;q=1"],
                false,
                false,
                Some(ErrorKind::BadTransferEncoding),
            ),
            (
                &[b"chunked,"],
                true,
                false,
                Some(ErrorKind::BadTransferEncoding),
            ),
            (
                &[b",chunked"],
                false,
                false,
                Some(ErrorKind::BadTransferEncoding),
            ),
            (&[b""], false, false, Some(ErrorKind::BadTransferEncoding)),
            (
                &[b"\"chunked\""],
                false,
                false,
                Some(ErrorKind::BadTransferEncoding),
            ),
        ];
        for (values, chunked_last, other, err) in cases {
            let mut f = Facts::default();
            for v in values.iter() {
                add_transfer_encoding(&mut f, v);
            }
            assert_eq!(f.te_error, *err, "{values:?}");
            if err.is_none() {
                assert_eq!(f.te_chunked_last, *chunked_last, "{values:?}");
                assert_eq!(f.te_other_coding, *other, "{values:?}");
            }
        }
    }
}
