//! Turning request facts into the 32-bit hash that chooses a server, as HAProxy's
//! `get_server_sh/uh/ph/ph_post/hh` do (backend.c, 2.6). `None` means "no key": HAProxy then
//! falls back to round robin on the same map or ring.

use std::net::IpAddr;

use ringlb_config::model::HashType;

use crate::hash::{full_hash, gen_hash};

/// `balance source`: the address words (network order) XORed together, `avalanche` applied if
/// set. The hash *function* is not used for source hashing (as in HAProxy).
pub fn source(ht: &HashType, src: IpAddr) -> u32 {
    let h = match src {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            o.chunks_exact(4).fold(0u32, |h, w| {
                h ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]])
            })
        }
    };
    if ht.avalanche {
        full_hash(h)
    } else {
        h
    }
}

/// Options of `balance uri`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UriOpts {
    pub whole: bool,
    pub path_only: bool,
    /// `len N`: only the first N characters.
    pub len: Option<u32>,
    /// `depth N`: only the first N directories.
    pub depth: Option<u32>,
}

/// The part of the request target `balance uri` hashes (before `len`/`depth`/`?` cuts).
/// With `path-only`, an absolute-form target loses its scheme and authority
/// (`http_parse_path`), an authority-form one hashes as empty.
pub fn uri_subject(uri: &[u8], path_only: bool) -> &[u8] {
    if !path_only || uri.first() == Some(&b'/') || uri == b"*" {
        return uri;
    }
    let Some(scheme_end) = find(uri, b"://") else {
        return &[];
    };
    let after = uri.get(scheme_end + 3..).unwrap_or(&[]);
    match after.iter().position(|&c| c == b'/' || c == b'?') {
        Some(p) => after.get(p..).unwrap_or(&[]),
        None => &[],
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `balance uri`: the hashed prefix of `uri` after `len`, `depth` and the `?` cut (unless
/// `whole`).
pub fn uri_key<'a>(uri: &'a [u8], o: &UriOpts) -> &'a [u8] {
    let subject = uri_subject(uri, o.path_only);
    let mut n = subject.len();
    if let Some(len) = o.len.filter(|l| *l > 0) {
        n = n.min(len as usize);
    }
    let stop_slash = o.depth.map(|d| d.saturating_add(1));
    let mut slashes = 0u32;
    let mut end = 0;
    for &c in subject.iter().take(n) {
        if c == b'/' {
            slashes += 1;
            if Some(slashes) == stop_slash {
                break;
            }
        } else if c == b'?' && !o.whole {
            break;
        }
        end += 1;
    }
    subject.get(..end).unwrap_or(&[])
}

/// `balance uri` hash.
pub fn uri(ht: &HashType, uri: &[u8], o: &UriOpts) -> u32 {
    gen_hash(ht, uri_key(uri, o))
}

/// `balance url_param NAME`: the value of the first `NAME=` parameter of the query string.
pub fn url_param_value<'a>(uri: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let q = uri.iter().position(|&c| c == b'?')?;
    param_value(uri.get(q + 1..)?, name, false)
}

/// `url_param NAME check_post`: the value in a POST body (`get_server_ph_post`). HAProxy only
/// looks at the first data block it holds and gives up when the value does not start with an
/// HTTP token character (it is then not a form body); a value starting with a space/tab/CR/LF
/// hashes as empty.
pub fn post_param_value<'a>(body: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    param_value(body, name, true)
}

fn param_value<'a>(mut params: &'a [u8], name: &[u8], post: bool) -> Option<&'a [u8]> {
    let plen = name.len();
    while params.len() > plen {
        if params.get(plen) == Some(&b'=') && params.get(..plen) == Some(name) {
            let value = params.get(plen + 1..)?;
            let end = value.iter().position(|&c| c == b'&').unwrap_or(value.len());
            if post {
                return post_value(value, end);
            }
            return value.get(..end);
        }
        let amp = params.iter().position(|&c| c == b'&')?;
        params = params.get(amp + 1..)?;
    }
    None
}

/// HAProxy checks the *first* value character on every loop turn (its `*p`, not `*end`).
fn post_value(value: &[u8], end: usize) -> Option<&[u8]> {
    match value.first() {
        Some(&c) if end > 0 && !is_token(c) => {
            if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                Some(&[])
            } else {
                None
            }
        }
        _ => value.get(..end),
    }
}

fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `balance url_param` hash of a found value.
pub fn url_param(ht: &HashType, value: &[u8]) -> u32 {
    gen_hash(ht, value)
}

/// `hdr(NAME) use_domain_only`: the label before the TLD (`www.example.com` → `example`,
/// `example.com` → `example`, `localhost` → `localhost`).
pub fn domain_only(v: &[u8]) -> &[u8] {
    let mut end = v.len();
    let mut dohash = false;
    let mut p = v.len();
    while p > 0 {
        if dohash {
            if v.get(p - 1) == Some(&b'.') {
                break;
            }
        } else if v.get(p) == Some(&b'.') {
            end = p;
            dohash = true;
        }
        p -= 1;
    }
    v.get(p..end).unwrap_or(&[])
}

/// What `hdr(NAME)` hashes from a header line's raw value: its first comma-separated value,
/// without surrounding spaces/tabs (`http_find_header(.., full = 0)`). Pass the value of the
/// first occurrence of the header.
pub fn first_header_value(raw: &[u8]) -> &[u8] {
    let end = raw.iter().position(|&c| c == b',').unwrap_or(raw.len());
    let v = raw.get(..end).unwrap_or(&[]);
    let start = v
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(v.len());
    let stop = v
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |p| p + 1);
    v.get(start..stop).unwrap_or(&[])
}

/// `balance hdr(NAME)` hash; `None` for an empty value (round-robin fallback).
pub fn hdr(ht: &HashType, value: &[u8], use_domain_only: bool) -> Option<u32> {
    if value.is_empty() {
        return None;
    }
    let key = if use_domain_only {
        domain_only(value)
    } else {
        value
    };
    Some(gen_hash(ht, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uo(whole: bool, len: Option<u32>, depth: Option<u32>) -> UriOpts {
        UriOpts {
            whole,
            path_only: false,
            len,
            depth,
        }
    }

    #[test]
    fn uri_keys() {
        let cases: &[(&str, UriOpts, &str)] = &[
            ("/a/b/c?x=1", uo(false, None, None), "/a/b/c"),
            ("/a/b/c?x=1", uo(true, None, None), "/a/b/c?x=1"),
            ("/a/b/c?x=1", uo(false, Some(3), None), "/a/"),
            ("/a/b/c?x=1", uo(false, None, Some(1)), "/a"),
            ("/a/b/c?x=1", uo(false, None, Some(2)), "/a/b"),
            ("/a/b/c?x=1", uo(false, None, Some(9)), "/a/b/c"),
            ("/a/b/c?x=1", uo(true, Some(100), Some(2)), "/a/b"),
            ("/", uo(false, None, Some(1)), "/"),
            ("http://h:80/p?q", uo(false, None, None), "http://h:80/p"),
        ];
        for (u, o, want) in cases {
            assert_eq!(uri_key(u.as_bytes(), o), want.as_bytes(), "{u} {o:?}");
        }
    }

    #[test]
    fn path_only() {
        let cases: &[(&str, &str)] = &[
            ("/p?q", "/p?q"),
            ("http://h:80/p?q", "/p?q"),
            ("https://h?q", "?q"),
            ("http://h", ""),
            ("h:443", ""),
            ("*", "*"),
        ];
        for (u, want) in cases {
            assert_eq!(uri_subject(u.as_bytes(), true), want.as_bytes(), "{u}");
        }
    }

    #[test]
    fn url_params() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/p?user=bob&x=1", "user", Some("bob")),
            ("/p?x=1&user=bob", "user", Some("bob")),
            ("/p?x=1&user=", "user", Some("")),
            ("/p?xuser=1&user=al", "user", Some("al")),
            ("/p?user", "user", None),
            ("/p", "user", None),
            ("/p?us=1", "user", None),
            ("/p?x=1&&user=z&", "user", Some("z")),
        ];
        for (u, n, want) in cases {
            let got = url_param_value(u.as_bytes(), n.as_bytes());
            assert_eq!(got, want.map(str::as_bytes), "{u} {n}");
        }
    }

    #[test]
    fn post_params() {
        let b = |s: &'static str| s.as_bytes();
        assert_eq!(
            post_param_value(b("a=1&user=bob"), b("user")),
            Some(b("bob"))
        );
        assert_eq!(post_param_value(b("user=\x01x"), b("user")), None);
        assert_eq!(post_param_value(b("user= x"), b("user")), Some(b("")));
        assert_eq!(post_param_value(b("nothing"), b("user")), None);
    }

    #[test]
    fn header_first_values() {
        let cases: &[(&str, &str)] = &[
            ("a.example", "a.example"),
            ("  a , b", "a"),
            (", b", ""),
            ("\tx\t", "x"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(
                first_header_value(raw.as_bytes()),
                want.as_bytes(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn domains() {
        let cases: &[(&str, &str)] = &[
            ("www.example.com", "example"),
            ("example.com", "example"),
            ("a.b.example.co", "example"),
            ("localhost", "localhost"),
            (".com", ".com"),
        ];
        for (v, want) in cases {
            assert_eq!(domain_only(v.as_bytes()), want.as_bytes(), "{v}");
        }
    }

    #[test]
    fn source_v4_is_the_address() {
        let ht = HashType::default();
        assert_eq!(source(&ht, "127.0.0.2".parse().unwrap()), 0x7f00_0002);
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(source(&ht, v6), 1);
    }
}
