//! `option checkcache`: whether a server's response would let a shared cache keep a cookie,
//! in which case the proxy blocks it (configuration manual, `option checkcache`).
//!
//! The decision follows haproxy 2.6 as observed with the real binary (the differential test
//! `checkcache.rs` replays it): a request method that is safe (GET, HEAD, OPTIONS, TRACE) and
//! a status cacheable by default (RFC 7231 §6.1) make a response cacheable; the first
//! `Pragma: no-cache` makes it not; each `Cache-Control` value then turns it on (`public`) or
//! off (`private`, `no-cache`, `no-store`, `max-age=0`, `s-maxage=0`), `no-cache="set-cookie`
//! only allows the cookie; and a response with neither freshness (`max-age`, `s-maxage`,
//! `Expires`) nor a validator (`ETag`, `Last-Modified`) is not cacheable (RFC 7234 §3).

/// The statuses RFC 7231 §6.1 makes cacheable by default.
fn cacheable_status(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 404 | 405 | 410 | 414 | 501
    )
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

fn starts_with_ci(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// True when the response must be blocked: it is cacheable, carries a `Set-Cookie` (or
/// `Set-Cookie2`), and nothing keeps that cookie out of caches. `safe_method` is whether the
/// request was GET, HEAD, OPTIONS or TRACE; `headers` are the response's (name, value) pairs
/// in order.
pub fn blocks_cacheable_cookie<'h>(
    safe_method: bool,
    status: u16,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
) -> bool {
    if status < 200 {
        return false;
    }
    let named = |name: &'static [u8]| {
        headers
            .clone()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let has_cookie = headers.clone().any(|(n, _)| {
        n.eq_ignore_ascii_case(b"set-cookie") || n.eq_ignore_ascii_case(b"set-cookie2")
    });
    if !has_cookie {
        return false;
    }
    // Only the first Pragma header counts, compared whole.
    if named(b"pragma")
        .next()
        .is_some_and(|v| trim(v).eq_ignore_ascii_case(b"no-cache"))
    {
        return false;
    }
    let mut cacheable = safe_method && cacheable_status(status);
    let mut cookie_cacheable = cacheable;
    let mut fresh = false;
    for value in named(b"cache-control").flat_map(|v| v.split(|&b| b == b',')) {
        let v = trim(value);
        if v.eq_ignore_ascii_case(b"public") {
            cacheable = true;
            cookie_cacheable = true;
        } else if [
            &b"private"[..],
            b"no-cache",
            b"no-store",
            b"max-age=0",
            b"s-maxage=0",
        ]
        .iter()
        .any(|d| v.eq_ignore_ascii_case(d))
        {
            cacheable = false;
            cookie_cacheable = false;
        } else if starts_with_ci(v, b"no-cache=\"set-cookie") {
            cookie_cacheable = false;
        } else if starts_with_ci(v, b"s-maxage") || starts_with_ci(v, b"max-age") {
            fresh = true;
        }
    }
    let fresh = fresh || named(b"expires").next().is_some();
    let validator = named(b"etag").next().is_some() || named(b"last-modified").next().is_some();
    if !fresh && !validator {
        cacheable = false;
    }
    cacheable && cookie_cacheable
}

/// Whether a request method lets a response be cached (RFC 7231 §4.2.1: the safe methods).
pub fn safe_method(method: &[u8]) -> bool {
    [&b"GET"[..], b"HEAD", b"OPTIONS", b"TRACE"].contains(&method)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row was answered by haproxy 2.6.12 with `option checkcache` (blocked = its log
    /// shows `PH--` and the server's response is not forwarded).
    /// (method, status, response headers, blocked).
    type Row = (
        &'static str,
        u16,
        &'static [(&'static str, &'static str)],
        bool,
    );

    #[test]
    fn decisions_recorded_from_haproxy() {
        let rows: &[Row] = &[
            ("GET", 200, &[("Set-Cookie", "a=1")], false),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "max-age=10")],
                true,
            ),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "public")],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "public, max-age=10"),
                ],
                true,
            ),
            ("GET", 200, &[("Set-Cookie", "a=1"), ("Expires", "x")], true),
            ("GET", 200, &[("Set-Cookie", "a=1"), ("ETag", "x")], true),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Last-Modified", "x")],
                true,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "max-age=10"),
                    ("Cache-Control", "private"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "private,max-age=10"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "private, public, max-age=10"),
                ],
                true,
            ),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "max-age=0")],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "s-maxage=0"),
                    ("Expires", "x"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "no-cache=\"set-cookie\",max-age=5"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "no-cache=\"set-cookiez\",max-age=5"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "no-cache=\"set-cookie\",public,max-age=5"),
                ],
                true,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "public,no-cache=\"set-cookie\",max-age=5"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "max-age=5, no-cache"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "no-cache, public, max-age=5"),
                ],
                true,
            ),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "\"max-age=5\"")],
                false,
            ),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "max-age = 5")],
                true,
            ),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "max-agex")],
                true,
            ),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "max-age=00")],
                true,
            ),
            (
                "GET",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "MAX-AGE=10")],
                true,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "max-age=5"),
                    ("Cache-Control", "public"),
                ],
                true,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Pragma", "no-cache"),
                    ("Expires", "x"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Pragma", "NO-CACHE"),
                    ("Expires", "x"),
                ],
                false,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Pragma", "no-cache,x"),
                    ("Expires", "x"),
                ],
                true,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Pragma", "x"),
                    ("Pragma", "no-cache"),
                    ("Expires", "x"),
                ],
                true,
            ),
            (
                "GET",
                200,
                &[
                    ("Set-Cookie", "a=1"),
                    ("Cache-Control", "public"),
                    ("Pragma", "no-cache"),
                    ("Expires", "x"),
                ],
                false,
            ),
            ("GET", 200, &[("Expires", "x")], false),
            (
                "GET",
                200,
                &[("Set-Cookie2", "a=1"), ("Expires", "x")],
                true,
            ),
            ("GET", 200, &[("set-cookie", "a=1"), ("expires", "x")], true),
            (
                "GET",
                201,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                false,
            ),
            (
                "GET",
                302,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                false,
            ),
            (
                "GET",
                304,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                false,
            ),
            (
                "GET",
                500,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                false,
            ),
            (
                "GET",
                500,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "public,max-age=3")],
                true,
            ),
            (
                "GET",
                302,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "public,max-age=3")],
                true,
            ),
            (
                "POST",
                200,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                false,
            ),
            (
                "POST",
                200,
                &[("Set-Cookie", "a=1"), ("Cache-Control", "public,max-age=4")],
                true,
            ),
            (
                "DELETE",
                200,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                false,
            ),
            (
                "PUT",
                200,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                false,
            ),
            (
                "OPTIONS",
                200,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                true,
            ),
            (
                "TRACE",
                200,
                &[("Set-Cookie", "a=1"), ("Expires", "x")],
                true,
            ),
        ];
        for s in [200, 203, 204, 206, 300, 301, 404, 405, 410, 414, 501] {
            let h = [("Set-Cookie", "a=1"), ("Expires", "x")];
            let pairs = h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
            assert!(blocks_cacheable_cookie(true, s, pairs), "status {s}");
        }
        for (method, status, headers, blocked) in rows {
            let pairs = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
            let got = blocks_cacheable_cookie(safe_method(method.as_bytes()), *status, pairs);
            assert_eq!(got, *blocked, "{method} {status} {headers:?}");
        }
    }

    #[test]
    fn interim_responses_are_never_blocked() {
        let h = [
            (&b"Set-Cookie"[..], &b"a=1"[..]),
            (b"Cache-Control", b"public,max-age=9"),
        ];
        assert!(!blocks_cacheable_cookie(true, 103, h.iter().copied()));
        assert!(blocks_cacheable_cookie(true, 200, h.iter().copied()));
    }
}
