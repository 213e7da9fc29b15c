//! First pass over a head: find where it ends and enforce the line-level rules httparse is
//! lenient about (bare LF, lone CR, obs-fold, whitespace before the colon), count the fields and
//! bound the size. httparse then tokenises only the complete, already line-checked head.

use crate::error::{ErrorKind, HttpError, Side};
use crate::types::{is_ows, Limits};

/// Where the head is, once complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// `buf[..end]` is the head (leading empty lines included); it has `fields` header lines.
    Complete { end: usize, fields: usize },
    /// No end of head yet and the limit is not reached.
    Partial,
}

/// Scan `buf` for a complete head within `limits.max_head_bytes`.
///
/// Leading empty lines (CRLF only) are skipped, as RFC 9112 §2.2 allows and HAProxy does.
pub(crate) fn scan_head(buf: &[u8], limits: &Limits, side: Side) -> Result<Scan, HttpError> {
    let err = |kind| HttpError::on(side, kind);
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let mut pos = skip_leading_crlf(window).map_err(err)?;
    let mut first_line = true;
    let mut fields = 0usize;
    loop {
        let rest = window.get(pos..).unwrap_or(&[]);
        let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
            if rest.contains(&b'\r') && !rest.ends_with(b"\r") {
                return Err(err(ErrorKind::BareLineEnding));
            }
            return if window.len() < buf.len() || window.len() >= limits.max_head_bytes {
                Err(err(ErrorKind::HeadTooLarge))
            } else {
                Ok(Scan::Partial)
            };
        };
        let raw = rest.get(..nl).unwrap_or(&[]);
        let line = match raw.split_last() {
            Some((b'\r', line)) => line,
            _ => return Err(err(ErrorKind::BareLineEnding)),
        };
        if line.contains(&b'\r') {
            return Err(err(ErrorKind::BareLineEnding));
        }
        pos += nl + 1;
        if first_line {
            first_line = false;
            continue;
        }
        if line.is_empty() {
            return Ok(Scan::Complete { end: pos, fields });
        }
        check_field_line(line).map_err(err)?;
        fields += 1;
        if fields > limits.max_fields() {
            return Err(err(ErrorKind::TooManyHeaders));
        }
    }
}

fn skip_leading_crlf(window: &[u8]) -> Result<usize, ErrorKind> {
    let mut pos = 0;
    loop {
        match window.get(pos..) {
            Some([b'\r', b'\n', ..]) => pos += 2,
            Some([b'\n', ..]) => return Err(ErrorKind::BareLineEnding),
            _ => return Ok(pos),
        }
    }
}

/// Line-level checks on one field line (CRLF removed): no leading whitespace (obs-fold, or
/// whitespace between the start line and the first field), no whitespace inside the name or
/// before the colon. Name and value characters are checked by httparse afterwards.
fn check_field_line(line: &[u8]) -> Result<(), ErrorKind> {
    match line.first() {
        Some(b) if is_ows(*b) => return Err(ErrorKind::ObsFold),
        _ => {}
    }
    let name_end = line.iter().position(|b| *b == b':').unwrap_or(line.len());
    let name = line.get(..name_end).unwrap_or(&[]);
    if name.is_empty() || name.iter().any(|b| is_ows(*b)) {
        return Err(ErrorKind::BadHeaderName);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn scan(input: &[u8]) -> Result<Scan, ErrorKind> {
        scan_head(input, &Limits::default(), Side::Client).map_err(|e| e.kind)
    }

    #[test]
    fn finds_the_end_and_counts_fields() {
        let cases: &[(&[u8], Result<Scan, ErrorKind>)] = &[
            (
                b"GET / HTTP/1.1\r\n\r\n",
                Ok(Scan::Complete { end: 18, fields: 0 }),
            ),
            (
                b"GET / HTTP/1.1\r\nA: b\r\n\r\nxx",
                Ok(Scan::Complete { end: 24, fields: 1 }),
            ),
            (
                b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                Ok(Scan::Complete { end: 22, fields: 0 }),
            ),
            (b"GET / HTTP/1.1\r\nA: b\r\n", Ok(Scan::Partial)),
            (b"GET / HTTP/1.1\r\nA: b\r\n\r", Ok(Scan::Partial)),
            (b"GET / HTTP/1.1\r", Ok(Scan::Partial)),
            (b"", Ok(Scan::Partial)),
            (b"\r", Ok(Scan::Partial)),
            (
                b"GET / HTTP/1.1\nA: b\r\n\r\n",
                Err(ErrorKind::BareLineEnding),
            ),
            (
                b"GET / HTTP/1.1\r\nA: b\n\r\n",
                Err(ErrorKind::BareLineEnding),
            ),
            (
                b"GET / HTTP/1.1\r\nA: b\r\n\n",
                Err(ErrorKind::BareLineEnding),
            ),
            (b"\nGET / HTTP/1.1\r\n\r\n", Err(ErrorKind::BareLineEnding)),
            (
                b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
                Err(ErrorKind::BareLineEnding),
            ),
            (b"GET / HTTP/1.1\r\nA: b\rc", Err(ErrorKind::BareLineEnding)),
            (
                b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
                Err(ErrorKind::ObsFold),
            ),
            (
                b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
                Err(ErrorKind::ObsFold),
            ),
            (b"GET / HTTP/1.1\r\n A: b\r\n\r\n", Err(ErrorKind::ObsFold)),
            (
                b"GET / HTTP/1.1\r\nA : b\r\n\r\n",
                Err(ErrorKind::BadHeaderName),
            ),
            (
                b"GET / HTTP/1.1\r\nA\t: b\r\n\r\n",
                Err(ErrorKind::BadHeaderName),
            ),
            (
                b"GET / HTTP/1.1\r\nA B: b\r\n\r\n",
                Err(ErrorKind::BadHeaderName),
            ),
            (
                b"GET / HTTP/1.1\r\n: b\r\n\r\n",
                Err(ErrorKind::BadHeaderName),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scan(input), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn head_size_limit() {
        let limits = Limits {
            max_headers: 101,
            max_head_bytes: 32,
        };
        let ok = b"GET / HTTP/1.1\r\nA: 0123456789\r\n\r\n"; // 34 bytes
        assert_eq!(
            scan_head(&ok[..32], &limits, Side::Client).map_err(|e| e.kind),
            Err(ErrorKind::HeadTooLarge)
        );
        assert_eq!(
            scan_head(&ok[..31], &limits, Side::Client).map_err(|e| e.kind),
            Ok(Scan::Partial)
        );
        let exact = b"GET / HTTP/1.1\r\nA: 0123456789\r\n\r\n";
        let limits = Limits {
            max_headers: 101,
            max_head_bytes: exact.len(),
        };
        assert_eq!(
            scan_head(exact, &limits, Side::Client).map_err(|e| e.kind),
            Ok(Scan::Complete {
                end: exact.len(),
                fields: 1
            })
        );
    }

    #[test]
    fn field_count_limit_counts_the_start_line() {
        let limits = Limits {
            max_headers: 3,
            max_head_bytes: 1000,
        };
        let two = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        let three = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(matches!(
            scan_head(two, &limits, Side::Client),
            Ok(Scan::Complete { .. })
        ));
        assert_eq!(
            scan_head(three, &limits, Side::Client).map_err(|e| e.kind),
            Err(ErrorKind::TooManyHeaders)
        );
    }
}
