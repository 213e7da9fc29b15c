//! Byte classes from RFC 9110/9112/3986, as 256-entry tables.
// A u8 index into a 256-entry table cannot be out of bounds.
#![allow(clippy::indexing_slicing)]

macro_rules! table {
    ($pred:ident) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $pred(i as u8);
            i += 1;
        }
        t
    }};
}

const fn token(b: u8) -> bool {
    matches!(b, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'|' | b'~')
        || b.is_ascii_alphanumeric()
}

/// Request-target bytes ringlb accepts: visible ASCII except `#` (HAProxy 2.6 rejects a
/// fragment) and `\` (HAProxy 2.6 forwards it; ringlb rejects: path confusion between servers).
/// HAProxy 2.6 also forwards `" < > ^ \` { | }`, and so does ringlb (real clients send `{`/`|` in
/// query strings unencoded).
const fn target(b: u8) -> bool {
    b >= 0x21 && b <= 0x7e && b != b'#' && b != b'\\'
}

/// Host header / authority bytes: reg-name (unreserved, pct-encoded, sub-delims), `:` for the
/// port and `[ ]` for IP literals (RFC 3986 §3.2.2).
const fn host(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
        )
}

/// Field-value bytes: HTAB, SP, VCHAR, obs-text. NUL, CR, LF, other controls and DEL are not.
const fn field_value(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

static TOKEN: [bool; 256] = table!(token);
static TARGET: [bool; 256] = table!(target);
static HOST: [bool; 256] = table!(host);
static FIELD_VALUE: [bool; 256] = table!(field_value);

/// RFC 9110 tchar.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

#[inline]
pub(crate) fn is_target(b: u8) -> bool {
    TARGET[b as usize]
}

#[inline]
pub(crate) fn is_host(b: u8) -> bool {
    HOST[b as usize]
}

#[inline]
pub(crate) fn is_field_value(b: u8) -> bool {
    FIELD_VALUE[b as usize]
}
