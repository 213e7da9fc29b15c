//! Where a malformed HTTP/1 head goes wrong, as HAProxy's `show errors` reports it: the offset
//! of the first byte its H1 parser refuses and the parser state at that byte. Only the capture
//! of an invalid message calls this (the error path), so it rescans the head on its own.

/// HAProxy's H1 parser states (`enum h1m_state`) that `show errors` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H1State {
    RqMeth,
    RqUri,
    RqVer,
    RqLineEnd,
    RpVer,
    RpCode,
    RpReason,
    HdrName,
    HdrVal,
    LastLf,
}

impl H1State {
    /// The name and number haproxy 2.6 prints (`MSG_HDR_NAME(17)`).
    pub fn name_and_number(self) -> (&'static str, u32) {
        match self {
            H1State::RqMeth => ("MSG_RQMETH", 2),
            H1State::RqUri => ("MSG_RQURI", 4),
            H1State::RqVer => ("MSG_RQVER", 6),
            H1State::RqLineEnd => ("MSG_RQLINE_END", 7),
            H1State::RpVer => ("MSG_RPVER", 10),
            H1State::RpCode => ("MSG_RPCODE", 12),
            H1State::RpReason => ("MSG_RPREASON", 14),
            H1State::HdrName => ("MSG_HDR_NAME", 17),
            H1State::HdrVal => ("MSG_HDR_VAL", 21),
            H1State::LastLf => ("MSG_LAST_LF", 24),
        }
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// The offset of the first refused byte of `head` and the parser state there. A head whose
/// bytes are all acceptable (refused for a semantic reason: conflicting lengths, a bad Host)
/// reports the end of what was given, in `MSG_LAST_LF`.
pub fn error_at(head: &[u8], response: bool) -> (usize, H1State) {
    let at = |i: usize| head.get(i).copied();
    let mut i = 0;
    if response {
        // `HTTP/d.d` SP
        for want in b"HTTP/" {
            if at(i) != Some(*want) {
                return (i, H1State::RpVer);
            }
            i += 1;
        }
        for want_digit in [true, false, true] {
            match at(i) {
                Some(c) if want_digit && c.is_ascii_digit() => {}
                Some(b'.') if !want_digit => {}
                _ => return (i, H1State::RpVer),
            }
            i += 1;
        }
        if at(i) != Some(b' ') {
            return (i, H1State::RpVer);
        }
        i += 1;
        for _ in 0..3 {
            if !at(i).is_some_and(|c| c.is_ascii_digit()) {
                return (i, H1State::RpCode);
            }
            i += 1;
        }
        while let Some(c) = at(i) {
            if c == b'\r' || c == b'\n' {
                break;
            }
            if c < 0x20 && c != b'\t' || c == 0x7f {
                return (i, H1State::RpReason);
            }
            i += 1;
        }
    } else {
        while at(i).is_some_and(is_tchar) {
            i += 1;
        }
        if i == 0 || at(i) != Some(b' ') {
            return (i, H1State::RqMeth);
        }
        i += 1;
        let uri = i;
        while let Some(c) = at(i) {
            if c == b' ' {
                break;
            }
            if c <= 0x20 || c >= 0x7f || c == b'#' {
                return (i, H1State::RqUri);
            }
            i += 1;
        }
        if i == uri || at(i) != Some(b' ') {
            return (i, H1State::RqUri);
        }
        i += 1;
        let ver = i;
        for (k, want) in b"HTTP/".iter().enumerate() {
            if at(ver + k) != Some(*want) {
                return (ver, H1State::RqVer);
            }
        }
        i += 5;
        let digits = |a: Option<u8>, b: Option<u8>, c: Option<u8>| {
            a.is_some_and(|x| x.is_ascii_digit())
                && b == Some(b'.')
                && c.is_some_and(|x| x.is_ascii_digit())
        };
        if !digits(at(i), at(i + 1), at(i + 2)) {
            return (ver, H1State::RqVer);
        }
        i += 3;
    }
    let line_end = if response {
        H1State::RpReason
    } else {
        H1State::RqLineEnd
    };
    match (at(i), at(i + 1)) {
        (Some(b'\r'), Some(b'\n')) => i += 2,
        (Some(b'\n'), _) => i += 1,
        (None, _) | (Some(b'\r'), None) => return (head.len(), line_end),
        _ => return (i, line_end),
    }
    headers(head, i)
}

/// The header block starting at `i`.
fn headers(head: &[u8], mut i: usize) -> (usize, H1State) {
    let at = |i: usize| head.get(i).copied();
    loop {
        match (at(i), at(i + 1)) {
            (Some(b'\r'), Some(b'\n')) | (Some(b'\n'), _) => return (head.len(), H1State::LastLf),
            (None, _) => return (head.len(), H1State::HdrName),
            _ => {}
        }
        let name = i;
        while at(i).is_some_and(is_tchar) {
            i += 1;
        }
        if i == name || at(i) != Some(b':') {
            return (i, H1State::HdrName);
        }
        i += 1;
        while let Some(c) = at(i) {
            if c == b'\r' || c == b'\n' {
                break;
            }
            if c < 0x20 && c != b'\t' || c == 0x7f {
                return (i, H1State::HdrVal);
            }
            i += 1;
        }
        match (at(i), at(i + 1)) {
            (Some(b'\r'), Some(b'\n')) => i += 2,
            (Some(b'\n'), _) => i += 1,
            (None, _) | (Some(b'\r'), None) => return (head.len(), H1State::HdrVal),
            _ => return (i, H1State::HdrVal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets haproxy 2.6 reported in `show errors` for these requests and responses.
    #[test]
    fn offsets_seen_from_haproxy() {
        assert_eq!(
            error_at(
                b"GET /a b c HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
                false
            ),
            (7, H1State::RqVer)
        );
        assert_eq!(
            error_at(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", false),
            (28, H1State::HdrName)
        );
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 90));
        long.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n");
        assert_eq!(error_at(&long, false), (118, H1State::HdrName));
        assert_eq!(
            error_at(
                b"HTTP/1.1 200 OK\r\nBad Header: y\r\nContent-Length: 0\r\n\r\n",
                true
            ),
            (20, H1State::HdrName)
        );
    }

    #[test]
    fn valid_bytes_report_the_end() {
        let h = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(error_at(h, false), (h.len(), H1State::LastLf));
        assert_eq!(
            error_at(b"G\x01T / HTTP/1.1\r\n\r\n", false),
            (1, H1State::RqMeth)
        );
        assert_eq!(
            error_at(b"HTTP/1.1 2x0 OK\r\n\r\n", true),
            (10, H1State::RpCode)
        );
    }
}
