//! `req.rdp_cookie([name])`: the routing cookie of an RDP connection request (`balance
//! rdp-cookie`, `persist rdp-cookie`), read as HAProxy's `fetch_rdp_cookie_name` (payload.c)
//! reads it: after the 11-byte TPKT + X.224 header, a `Cookie: NAME=VALUE\r\n` line.

/// The cookie value of the RDP connection request at the start of `p`, if complete and
/// well formed; `name` (case-insensitive) must then be the cookie's name (any name if `None`).
pub fn rdp_cookie<'a>(p: &'a [u8], name: Option<&[u8]>) -> Option<&'a [u8]> {
    let mut data = p.get(11..)?;
    if data.len() <= 7 || !data.get(..7)?.eq_ignore_ascii_case(b"Cookie:") {
        return None;
    }
    data = data.get(7..)?;
    let spaces = data.iter().take_while(|&&c| c == b' ').count();
    data = data.get(spaces..)?;
    match name {
        Some(n) => {
            if data.len() <= n.len()
                || data.get(n.len()) != Some(&b'=')
                || !data.get(..n.len())?.eq_ignore_ascii_case(n)
            {
                return None;
            }
            data = data.get(n.len() + 1..)?;
        }
        None => {
            let eq = data
                .iter()
                .position(|&c| c == b'=' || c == b'\r' || c == b'\n')?;
            if data.get(eq) != Some(&b'=') {
                return None;
            }
            data = data.get(eq + 1..)?;
        }
    }
    let end = data.iter().position(|&c| c == b'\r')?;
    if data.get(end..end + 2) != Some(b"\r\n") {
        return None;
    }
    data.get(..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RDP Connection Request as mstsc sends it: TPKT (4 bytes), X.224 CR header (7
    /// bytes), then the routing cookie line.
    fn request(cookie: &str) -> Vec<u8> {
        let mut v = vec![3, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0];
        v.extend_from_slice(cookie.as_bytes());
        v.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
        v
    }

    #[test]
    fn reads_the_named_cookie() {
        let r = request("Cookie: mstshash=alice\r\n");
        assert_eq!(rdp_cookie(&r, Some(b"mstshash")), Some(&b"alice"[..]));
        assert_eq!(rdp_cookie(&r, Some(b"MSTSHASH")), Some(&b"alice"[..]));
        assert_eq!(rdp_cookie(&r, None), Some(&b"alice"[..]));
        assert_eq!(rdp_cookie(&r, Some(b"msts")), None);
        assert_eq!(rdp_cookie(&r, Some(b"other")), None);
    }

    #[test]
    fn refuses_incomplete_or_foreign_requests() {
        let r = request("Cookie: mstshash=alice\r\n");
        assert_eq!(rdp_cookie(&r[..20], None), None, "no CRLF yet");
        assert_eq!(rdp_cookie(b"GET / HTTP/1.1\r\n\r\n", None), None);
        assert_eq!(rdp_cookie(&request("Cookie: noequal\r\n"), None), None);
        assert_eq!(rdp_cookie(&request("Cookie: a=b\rx"), None), None);
        assert_eq!(
            rdp_cookie(&request("Cookie:   a=\r\n"), None),
            Some(&b""[..])
        );
    }
}
