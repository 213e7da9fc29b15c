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
/// One pass over the line ends: every LF must follow a CR (httparse accepts bare LF; ringlb does
/// not), the first empty line ends the head, and the field lines are counted (httparse's scratch
/// array is sized from it; too many fields fail before the head is even complete). The other
/// line rules (obs-fold, whitespace before the colon, lone CR) are enforced by httparse on the
/// complete head; [`classify_field_error`] names them when httparse refuses a field line.
/// Leading empty lines (CRLF only) are skipped, as RFC 9112 §2.2 allows and HAProxy does.
pub(crate) fn scan_head(buf: &[u8], limits: &Limits, side: Side) -> Result<Scan, HttpError> {
    let err = |kind| HttpError::on(side, kind);
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let start = skip_leading_crlf(window).map_err(err)?;
    let mut line_start = start;
    let mut lines = 0usize;
    // Lines counted against `tune.http.maxhdr`: HAProxy 2.6 consumes a `Connection` field that
    // holds only `close`/`keep-alive` while parsing, so it takes no slot (observed: 101 fields
    // pass at the default 101 when one is `Connection: close`, 101 others do not).
    let mut counted = 0usize;
    let mut from = start;
    while let Some(i) = find_lf(window.get(from..).unwrap_or(&[])) {
        let at = from + i;
        from = at + 1;
        if at == 0 || window.get(at - 1) != Some(&b'\r') {
            return Err(err(ErrorKind::BareLineEnding));
        }
        if at - 1 == line_start && lines > 0 {
            return Ok(Scan::Complete {
                end: at + 1,
                fields: lines - 1,
            });
        }
        lines += 1;
        if lines == 1 || !persistence_only(window.get(line_start..at - 1).unwrap_or(&[])) {
            counted += 1;
        }
        if counted > limits.max_fields() + 1 {
            return Err(err(ErrorKind::TooManyHeaders));
        }
        line_start = at + 1;
    }
    if window.len() >= limits.max_head_bytes {
        Err(err(ErrorKind::HeadTooLarge))
    } else {
        Ok(Scan::Partial)
    }
}

/// Whether a field line is `Connection:` with only `close`/`keep-alive` tokens (at least one).
fn persistence_only(line: &[u8]) -> bool {
    const NAME: &[u8] = b"connection:";
    let Some(name) = line.get(..NAME.len()) else {
        return false;
    };
    if !name.eq_ignore_ascii_case(NAME) {
        return false;
    }
    let value = line.get(NAME.len()..).unwrap_or(&[]);
    let mut any = false;
    for token in value.split(|b| *b == b',') {
        let t = trim_ows(token);
        if t.eq_ignore_ascii_case(b"close") || t.eq_ignore_ascii_case(b"keep-alive") {
            any = true;
        } else if !t.is_empty() {
            return false;
        }
    }
    any
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !is_ows(*first) {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !is_ows(*last) {
            break;
        }
        b = rest;
    }
    b
}

/// Position of the first LF in `bytes`, eight bytes at a time (SWAR: a zero byte in
/// `word ^ 0x0a0a..` is found with the classic `(x - 0x01..) & !x & 0x80..` test). About 4x
/// fewer instructions than a byte loop on typical heads (measured with callgrind).
fn find_lf(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LF: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ LF;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| base + i)
}

/// httparse refused a field line of `head` (a complete, LF-checked head): say why, more
/// precisely than httparse does. Cold path.
pub(crate) fn classify_field_error(head: &[u8], fallback: ErrorKind) -> ErrorKind {
    let mut lines = head.split(|b| *b == b'\n').skip_while(|l| *l == b"\r");
    let _start_line = lines.next();
    for raw in lines {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        if line.contains(&b'\r') {
            return ErrorKind::BareLineEnding;
        }
        if let Err(kind) = check_field_line(line) {
            return kind;
        }
    }
    fallback
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
            (b"GET / HTTP/1.1\r\nA: b\n", Err(ErrorKind::BareLineEnding)),
            (b"\n", Err(ErrorKind::BareLineEnding)),
        ];
        for (input, want) in cases {
            assert_eq!(scan(input), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn find_lf_agrees_with_a_byte_loop() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for len in 0..64 {
            for _ in 0..200 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        // Mostly bytes near LF, to catch borrow-propagation false positives.
                        [
                            b'\n', b'\x0b', b'\x09', b'\x8a', b'\x00', b'\x01', b'a', b'\xff',
                        ][(rng % 8) as usize]
                    })
                    .collect();
                assert_eq!(find_lf(&v), v.iter().position(|b| *b == b'\n'), "{v:?}");
            }
        }
    }

    #[test]
    fn field_errors_are_named() {
        let cases: &[(&[u8], ErrorKind)] = &[
            (b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", ErrorKind::ObsFold),
            (b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", ErrorKind::ObsFold),
            (b"GET / HTTP/1.1\r\n A: b\r\n\r\n", ErrorKind::ObsFold),
            (b"GET / HTTP/1.1\r\nA : b\r\n\r\n", ErrorKind::BadHeaderName),
            (
                b"GET / HTTP/1.1\r\nA\t: b\r\n\r\n",
                ErrorKind::BadHeaderName,
            ),
            (
                b"GET / HTTP/1.1\r\nA B: b\r\n\r\n",
                ErrorKind::BadHeaderName,
            ),
            (b"GET / HTTP/1.1\r\n: b\r\n\r\n", ErrorKind::BadHeaderName),
            (
                b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
                ErrorKind::BareLineEnding,
            ),
            (b"\r\nGET / HTTP/1.1\r\nA(: b\r\n\r\n", ErrorKind::BadMethod),
        ];
        for (input, want) in cases {
            assert_eq!(
                classify_field_error(input, ErrorKind::BadMethod),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn persistence_only_connection_takes_no_header_slot() {
        let limits = Limits {
            max_headers: 3,
            max_head_bytes: 1024,
        };
        let scan = |h: &[u8]| scan_head(h, &limits, Side::Client).map_err(|e| e.kind);
        for conn in ["close", "Keep-Alive", " close , keep-alive "] {
            let h = format!("GET / HTTP/1.1\r\nA: 1\r\nConnection:{conn}\r\nB: 2\r\n\r\n");
            assert!(scan(h.as_bytes()).is_ok(), "{conn}");
        }
        for conn in ["close, upgrade", "foo", ""] {
            let h = format!("GET / HTTP/1.1\r\nA: 1\r\nConnection: {conn}\r\nB: 2\r\n\r\n");
            assert_eq!(scan(h.as_bytes()), Err(ErrorKind::TooManyHeaders), "{conn}");
        }
        assert_eq!(
            scan(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Err(ErrorKind::TooManyHeaders)
        );
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
