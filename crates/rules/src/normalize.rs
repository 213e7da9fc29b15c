//! `http-request normalize-uri <normalizer>`: HAProxy 2.6's URI normalizers, applied to the
//! request's path-and-query. Path normalizers touch the path only (the query is kept), the
//! percent and fragment ones the whole path-and-query, `query-sort-by-name` the query only.

/// One configured normalizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalizer {
    FragmentEncode,
    FragmentStrip,
    PathMergeSlashes,
    PathStripDot,
    /// `full`: a leading `../` is removed too.
    PathStripDotdot {
        full: bool,
    },
    /// `strict`: an invalid `%` sequence is a 400.
    PercentDecodeUnreserved {
        strict: bool,
    },
    PercentToUppercase {
        strict: bool,
    },
    QuerySortByName,
}

/// An invalid percent sequence under `strict`: the request is answered 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUri;

impl Normalizer {
    /// Parses the words after `normalize-uri` (the condition excluded).
    pub fn parse(args: &[String]) -> Result<Normalizer, String> {
        let name = args.first().map(String::as_str).unwrap_or_default();
        let opt = args.get(1).map(String::as_str);
        let flag = |word: &str| -> Result<bool, String> {
            match opt {
                None => Ok(false),
                Some(w) if w == word => Ok(true),
                Some(w) => Err(format!("unexpected argument '{w}' to normalizer '{name}'")),
            }
        };
        let n = match name {
            "fragment-encode" => Normalizer::FragmentEncode,
            "fragment-strip" => Normalizer::FragmentStrip,
            "path-merge-slashes" => Normalizer::PathMergeSlashes,
            "path-strip-dot" => Normalizer::PathStripDot,
            "path-strip-dotdot" => Normalizer::PathStripDotdot {
                full: flag("full")?,
            },
            "percent-decode-unreserved" => Normalizer::PercentDecodeUnreserved {
                strict: flag("strict")?,
            },
            "percent-to-uppercase" => Normalizer::PercentToUppercase {
                strict: flag("strict")?,
            },
            "query-sort-by-name" => Normalizer::QuerySortByName,
            "" => return Err("expects a normalizer name".into()),
            other => return Err(format!("unknown normalizer '{other}'")),
        };
        let takes_option = matches!(
            n,
            Normalizer::PathStripDotdot { .. }
                | Normalizer::PercentDecodeUnreserved { .. }
                | Normalizer::PercentToUppercase { .. }
        );
        if opt.is_some() && !takes_option {
            return Err(format!(
                "normalizer '{name}' takes no argument (got '{}')",
                opt.unwrap_or_default()
            ));
        }
        Ok(n)
    }

    /// The normalized path-and-query (`None`: unchanged).
    pub fn apply(self, pathq: &[u8]) -> Result<Option<Vec<u8>>, InvalidUri> {
        let (path, query) = match pathq.iter().position(|&c| c == b'?') {
            Some(i) => pathq.split_at(i),
            None => (pathq, &b""[..]),
        };
        let joined = |p: Vec<u8>| {
            let mut v = p;
            v.extend_from_slice(query);
            v
        };
        let out = match self {
            Normalizer::FragmentStrip => pathq
                .iter()
                .position(|&c| c == b'#')
                .and_then(|i| pathq.get(..i))
                .map(<[u8]>::to_vec),
            Normalizer::FragmentEncode => pathq.contains(&b'#').then(|| {
                let mut v = Vec::with_capacity(pathq.len() + 4);
                for &c in pathq {
                    if c == b'#' {
                        v.extend_from_slice(b"%23");
                    } else {
                        v.push(c);
                    }
                }
                v
            }),
            Normalizer::PathMergeSlashes => Some(joined(merge_slashes(path))),
            Normalizer::PathStripDot => path
                .starts_with(b"/")
                .then(|| joined(segments(path, Dots::Dot))),
            Normalizer::PathStripDotdot { full } => path
                .starts_with(b"/")
                .then(|| joined(segments(path, Dots::Dotdot { full }))),
            Normalizer::PercentDecodeUnreserved { strict } => Some(percent(pathq, strict, true)?),
            Normalizer::PercentToUppercase { strict } => Some(percent(pathq, strict, false)?),
            Normalizer::QuerySortByName => query.get(1..).map(|q| {
                let mut params: Vec<&[u8]> = q.split(|&c| c == b'&').collect();
                // Stable: equal names keep their order.
                params.sort_by(|a, b| name_of(a).cmp(name_of(b)));
                let mut v = path.to_vec();
                v.push(b'?');
                v.extend_from_slice(&params.join(&b'&'));
                v
            }),
        };
        Ok(out.filter(|v| v.as_slice() != pathq))
    }
}

fn name_of(param: &[u8]) -> &[u8] {
    param.split(|&c| c == b'=').next().unwrap_or_default()
}

fn merge_slashes(path: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(path.len());
    for &c in path {
        if !(c == b'/' && v.last() == Some(&b'/')) {
            v.push(c);
        }
    }
    v
}

#[derive(Clone, Copy)]
enum Dots {
    Dot,
    Dotdot { full: bool },
}

/// `path-strip-dot` / `path-strip-dotdot` on an absolute path (RFC 3986 6.2.2.3): empty
/// segments are kept; a removed last segment leaves the trailing `/`.
fn segments(path: &[u8], dots: Dots) -> Vec<u8> {
    let rest = path.get(1..).unwrap_or_default();
    let segs: Vec<&[u8]> = rest.split(|&c| c == b'/').collect();
    let last = segs.len().saturating_sub(1);
    let mut out: Vec<&[u8]> = Vec::with_capacity(segs.len());
    for (i, s) in segs.iter().enumerate() {
        let removed = match dots {
            Dots::Dot => *s == b".",
            Dots::Dotdot { full } if *s == b".." => {
                if out.last().is_some_and(|t| *t != b"..") {
                    out.pop();
                    true
                } else if full {
                    true
                } else {
                    out.push(s);
                    false
                }
            }
            Dots::Dotdot { .. } => {
                out.push(s);
                false
            }
        };
        if matches!(dots, Dots::Dot) && !removed {
            out.push(s);
        }
        if removed && i == last {
            out.push(b"");
        }
    }
    let mut v = Vec::with_capacity(path.len());
    v.push(b'/');
    v.extend_from_slice(&out.join(&b'/'));
    v
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `percent-decode-unreserved` (`decode`) or `percent-to-uppercase`.
fn percent(s: &[u8], strict: bool, decode: bool) -> Result<Vec<u8>, InvalidUri> {
    let mut v = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c != b'%' {
            v.push(c);
            i += 1;
            continue;
        }
        let (h, l) = (s.get(i + 1).copied(), s.get(i + 2).copied());
        match (h.and_then(hex), l.and_then(hex), h, l) {
            (Some(a), Some(b), Some(hc), Some(lc)) => {
                let byte = a * 16 + b;
                if decode && (byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)) {
                    v.push(byte);
                } else if decode {
                    v.extend_from_slice(&[b'%', hc, lc]);
                } else {
                    v.extend_from_slice(&[b'%', hc.to_ascii_uppercase(), lc.to_ascii_uppercase()]);
                }
                i += 3;
            }
            _ if strict => return Err(InvalidUri),
            _ => {
                v.push(b'%');
                i += 1;
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: &str, opt: Option<&str>, input: &str) -> Result<String, InvalidUri> {
        let mut args = vec![n.to_string()];
        args.extend(opt.map(str::to_string));
        let norm = Normalizer::parse(&args).unwrap();
        Ok(norm
            .apply(input.as_bytes())?
            .map_or(input.to_string(), |v| String::from_utf8(v).unwrap()))
    }

    /// The examples of configuration.txt (haproxy 2.6), each one.
    #[test]
    fn manual_examples() {
        let ok = |n, opt, i, o: &str| assert_eq!(run(n, opt, i), Ok(o.to_string()), "{n} {i}");
        ok("fragment-encode", None, "/#foo", "/%23foo");
        ok("fragment-strip", None, "/#foo", "/");
        for (i, o) in [
            ("/.", "/"),
            ("/./bar/", "/bar/"),
            ("/a/./a", "/a/a"),
            ("/.well-known/", "/.well-known/"),
        ] {
            ok("path-strip-dot", None, i, o);
        }
        for (i, o) in [
            ("/foo/../", "/"),
            ("/foo/../bar/", "/bar/"),
            ("/foo/bar/../", "/foo/"),
            ("/../bar/", "/../bar/"),
            ("/bar/../../", "/../"),
            ("/foo//../", "/foo/"),
            ("/foo/%2E%2E/", "/foo/%2E%2E/"),
        ] {
            ok("path-strip-dotdot", None, i, o);
        }
        ok("path-strip-dotdot", Some("full"), "/../bar/", "/bar/");
        ok("path-strip-dotdot", Some("full"), "/bar/../../", "/");
        ok("path-merge-slashes", None, "//", "/");
        ok("path-merge-slashes", None, "/foo//bar", "/foo/bar");
        for (i, o) in [
            ("/%61dmin", "/admin"),
            ("/foo%3Fbar=baz", "/foo%3Fbar=baz"),
            ("/%%36%36", "/%66"),
            ("/%ZZ", "/%ZZ"),
        ] {
            ok("percent-decode-unreserved", None, i, o);
        }
        assert_eq!(
            run("percent-decode-unreserved", Some("strict"), "/%%36%36"),
            Err(InvalidUri)
        );
        assert_eq!(
            run("percent-decode-unreserved", Some("strict"), "/%ZZ"),
            Err(InvalidUri)
        );
        ok("percent-to-uppercase", None, "/%6f", "/%6F");
        ok("percent-to-uppercase", None, "/%zz", "/%zz");
        assert_eq!(
            run("percent-to-uppercase", Some("strict"), "/%zz"),
            Err(InvalidUri)
        );
        ok("query-sort-by-name", None, "/?c=3&a=1&b=2", "/?a=1&b=2&c=3");
        ok(
            "query-sort-by-name",
            None,
            "/?aaa=3&a=1&aa=2",
            "/?a=1&aa=2&aaa=3",
        );
        ok(
            "query-sort-by-name",
            None,
            "/?a=3&b=4&a=1&b=5&a=2",
            "/?a=3&a=1&a=2&b=4&b=5",
        );
    }

    #[test]
    fn path_normalizers_keep_the_query() {
        assert_eq!(
            run("path-merge-slashes", None, "//a//b?x=//y"),
            Ok("/a/b?x=//y".into())
        );
        assert_eq!(
            run("path-strip-dotdot", None, "/a/../b?p=/../"),
            Ok("/b?p=/../".into())
        );
        assert_eq!(run("path-strip-dot", None, "/a/.?q"), Ok("/a/?q".into()));
        assert_eq!(run("path-strip-dot", None, "*"), Ok("*".into()));
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(Normalizer::parse(&["nope".into()]).is_err());
        assert!(Normalizer::parse(&["path-strip-dot".into(), "full".into()]).is_err());
        assert!(Normalizer::parse(&["percent-to-uppercase".into(), "full".into()]).is_err());
        assert!(Normalizer::parse(&[]).is_err());
    }
}
