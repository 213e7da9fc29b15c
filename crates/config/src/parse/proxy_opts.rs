//! Parsers of the simple proxy keywords (mode, timeouts, options, balance, retries,
//! errorfile, cookie, capture, stats...) referenced by the table in `proxy_kw`.
//!
//! Owns: those parser functions, [`parse_net`] and [`load_errorfile`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{
    Balance, Capture, Cookie, CookieMode, ErrorFile, ForwardFor, HashFunction, HashType,
    HttpConnMode, HttpLog, HttpReuse, IpNet, Mode, Stats, Timeouts,
};
use crate::source::Line;
use crate::units::{parse_time, parse_u32};

use super::proxy::{directive, KwCx, ProxyDraft};
use super::{acl, R};

pub(crate) fn need(k: &KwCx<'_>, l: &Line, n: usize) -> R {
    if l.len() < k.kw_words + n {
        return Err(format!("'{}' expects {n} argument(s).", k.name));
    }
    Ok(())
}

pub(crate) fn u32_set(k: &mut KwCx<'_>, l: &Line, v: &mut Option<u32>) -> R {
    need(k, l, 1)?;
    *v = Some(parse_u32(l.arg(k.kw_words))?);
    super::no_extra(l, k.kw_words + 1)
}

pub(crate) fn generic(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    p.settings.other.push(directive(l, k.kw_words));
    Ok(())
}

pub(crate) fn generic_n1(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    generic(k, p, l)
}

pub(crate) fn u32_generic(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    parse_u32(l.arg(k.kw_words))?;
    generic(k, p, l)
}

pub(crate) fn opt_other(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    super::no_extra(l, k.kw_words)?;
    let name = k.name.trim_start_matches("option ").to_string();
    p.settings.options.other.insert(name, !k.negated);
    Ok(())
}

pub(crate) fn opt_args(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let name = k.name.trim_start_matches("option ").to_string();
    p.settings.options.other.insert(name, !k.negated);
    generic(k, p, l)
}

/// `option http-restrict-req-hdr-names preserve|delete|reject` (haproxy's messages).
pub(crate) fn p_restrict_hdr_names(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let expects =
        "option 'http-restrict-req-hdr-names' expects 'preserve', 'reject' or 'delete' option.";
    match l.arg(k.kw_words) {
        "" if !k.negated => return Err(format!("missing parameter. {expects}")),
        "" | "preserve" | "delete" | "reject" => {}
        w => return Err(format!("invalid parameter '{w}'. {expects}")),
    }
    super::no_extra(l, k.kw_words + 1)?;
    opt_args(k, p, l)
}

/// `max-keep-alive-queue <value>`: an integer, -1 (the default) for no limit.
pub(crate) fn p_max_ka_queue(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let v = l.arg(1);
    if v.parse::<i64>()
        .map_or(true, |n| n < -1 || n > i64::from(u32::MAX))
    {
        return Err(format!(
            "'{}' expects an integer value (got '{v}').",
            k.name
        ));
    }
    super::no_extra(l, 2)?;
    generic(k, p, l)
}

pub(crate) fn bool_opt(k: &mut KwCx<'_>, l: &Line, v: &mut bool) -> R {
    super::no_extra(l, k.kw_words)?;
    *v = !k.negated;
    Ok(())
}

pub(crate) fn p_mode(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    p.settings.mode = Some(match l.arg(1) {
        "http" => Mode::Http,
        "tcp" => Mode::Tcp,
        "health" => return Err("'mode health' doesn't exist anymore. Please use 'http-request return status 200' instead.".into()),
        m => return Err(format!("unknown proxy mode '{m}'.")),
    });
    super::no_extra(l, 2)
}

pub(crate) fn p_default_backend(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    p.settings.default_backend = Some((l.loc.clone(), l.arg(1).to_string()));
    p.own_default_backend = true;
    super::no_extra(l, 2)
}

pub(crate) fn timeout(
    k: &mut KwCx<'_>,
    l: &Line,
    field: fn(&mut Timeouts) -> &mut Option<Duration>,
    p: &mut ProxyDraft,
) -> R {
    if l.len() < 3 {
        return Err(format!(
            "'{}' expects an integer value (in milliseconds)",
            k.name
        ));
    }
    let v = parse_time(l.arg(2)).map_err(|e| format!("{e} in '{}'", k.name))?;
    *field(&mut p.settings.timeouts) = Some(v);
    super::no_extra(l, 3)
}

pub(crate) fn conn_mode(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line, m: HttpConnMode) -> R {
    super::no_extra(l, k.kw_words)?;
    p.settings.options.http_conn_mode = if k.negated {
        HttpConnMode::KeepAlive
    } else {
        m
    };
    Ok(())
}

/// Parses `10.0.0.0/8`, `127.0.0.1`, `::1/128`.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = a.parse().map_err(|_| format!("invalid network '{s}'"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(v) if v <= max => v,
            _ => {
                let mask: std::net::Ipv4Addr =
                    l.parse().map_err(|_| format!("invalid mask in '{s}'"))?;
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return Err(format!("invalid mask in '{s}'"));
                }
                u8::try_from(bits.leading_ones()).unwrap_or(32)
            }
        },
    };
    Ok(IpNet { addr, prefix })
}

pub(crate) fn p_forwardfor(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if k.negated {
        p.settings.options.forwardfor = None;
        return Ok(());
    }
    let mut ff = ForwardFor {
        except: None,
        header: "X-Forwarded-For".into(),
        if_none: false,
    };
    let mut i = 2;
    while i < l.len() {
        match l.arg(i) {
            "except" => {
                ff.except = Some(parse_net(l.arg(i + 1)).map_err(|e| format!("'except' {e}"))?);
                i += 2;
            }
            "header" => {
                if l.arg(i + 1).is_empty() {
                    return Err("'header' requires an argument.".into());
                }
                ff.header = l.arg(i + 1).to_string();
                i += 2;
            }
            "if-none" => {
                ff.if_none = true;
                i += 1;
            }
            w => return Err(format!("'option forwardfor' only supports optional values: 'except', 'header' and 'if-none' (got '{w}').")),
        }
    }
    p.settings.options.forwardfor = Some(ff);
    Ok(())
}

pub(crate) fn p_originalto(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if k.negated {
        p.settings.options.originalto = None;
        return Ok(());
    }
    let mut ot = ForwardFor {
        except: None,
        header: "X-Original-To".into(),
        if_none: false,
    };
    let mut i = 2;
    while i < l.len() {
        match l.arg(i) {
            "except" => {
                ot.except = Some(parse_net(l.arg(i + 1)).map_err(|e| format!("'except' {e}"))?);
                i += 2;
            }
            "header" => {
                if l.arg(i + 1).is_empty() {
                    return Err("'header' requires an argument.".into());
                }
                ot.header = l.arg(i + 1).to_string();
                i += 2;
            }
            w => return Err(format!("'option originalto' only supports optional values: 'except' and 'header' (got '{w}').")),
        }
    }
    p.settings.options.originalto = Some(ot);
    Ok(())
}

pub(crate) fn p_redispatch(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    p.settings.options.redispatch = if k.negated {
        None
    } else if l.arg(2).is_empty() {
        Some(-1)
    } else {
        Some(
            l.arg(2)
                .parse()
                .map_err(|_| format!("invalid interval '{}'", l.arg(2)))?,
        )
    };
    super::no_extra(l, 3)
}

pub(crate) fn p_httplog(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    p.settings.options.httplog = match (k.negated, l.arg(2)) {
        (true, _) => None,
        (false, "") => Some(HttpLog { clf: false }),
        (false, "clf") => Some(HttpLog { clf: true }),
        (false, w) => return Err(format!("expects no argument or 'clf', got '{w}'.")),
    };
    // The last of `option httplog` / `option httpslog` wins.
    p.settings.options.other.remove("httpslog");
    super::no_extra(l, 3)
}

pub(crate) fn p_retry_on(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    const EVENTS: &[&str] = &[
        "none",
        "conn-failure",
        "empty-response",
        "junk-response",
        "response-timeout",
        "0rtt-rejected",
        "all-retryable-errors",
        "401",
        "403",
        "404",
        "408",
        "425",
        "500",
        "501",
        "502",
        "503",
        "504",
    ];
    let words = l.rest(1);
    for w in &words {
        if !EVENTS.contains(&w.as_str()) {
            return Err(format!("'retry-on' unknown keyword '{w}'."));
        }
    }
    p.settings.retry_on = Some(words);
    Ok(())
}

pub(crate) fn p_http_reuse(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    p.settings.http_reuse = Some(match l.arg(1) {
        "never" => HttpReuse::Never,
        "safe" => HttpReuse::Safe,
        "aggressive" => HttpReuse::Aggressive,
        "always" => HttpReuse::Always,
        w => {
            return Err(format!(
                "'http-reuse' only supports 'never', 'safe', 'aggressive', 'always' (got '{w}')."
            ))
        }
    });
    super::no_extra(l, 2)
}

/// Reads and validates an errorfile: it must be a raw HTTP response.
pub fn load_errorfile(l: &Line, status_word: &str, path: &str) -> Result<ErrorFile, String> {
    let status = status_code(status_word)?;
    // An empty errorfile (or /dev/null) makes haproxy close without answering: allowed.
    let contents = if path == "/dev/null" {
        Vec::new()
    } else {
        super::read_bounded(std::path::Path::new(path))?
    };
    if !contents.is_empty() && !httparse_lite::looks_like_response(&contents) {
        return Err(format!("file '{path}' is not a valid HTTP response (it must start with 'HTTP/1.x <code>' and contain a blank line after the headers)."));
    }
    Ok(ErrorFile {
        loc: l.loc.clone(),
        status,
        path: PathBuf::from(path),
        contents: Arc::from(contents),
    })
}

/// Minimal raw-response check (the engine parses errorfiles fully when it serves them).
mod httparse_lite {
    pub fn looks_like_response(b: &[u8]) -> bool {
        let starts = b.starts_with(b"HTTP/1.0 ") || b.starts_with(b"HTTP/1.1 ");
        let code_ok = b
            .get(9..12)
            .is_some_and(|c| c.iter().all(u8::is_ascii_digit));
        let has_end = b.windows(4).any(|w| w == b"\r\n\r\n") || b.windows(2).any(|w| w == b"\n\n");
        starts && code_ok && has_end
    }
}

pub(crate) fn p_errorfile(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.len() < 3 {
        return Err(format!(
            "'{}' expects <status_code> and <file> as arguments.",
            k.name
        ));
    }
    let ef = load_errorfile(l, l.arg(1), l.arg(2))?;
    p.settings.errorfiles.retain(|e| e.status != ef.status);
    p.settings.errorfiles.push(ef);
    super::no_extra(l, 3)
}

pub(crate) fn p_errorfiles(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let mut codes = Vec::new();
    for i in 2..l.len() {
        codes.push(status_code(l.arg(i))?);
    }
    p.settings
        .errorfiles_sections
        .push((l.loc.clone(), l.arg(1).to_string(), codes));
    Ok(())
}

/// `errorloc|errorloc302|errorloc303 <code> <url>`: the reply for `code` becomes a redirect,
/// in haproxy 2.6's bytes as its stream sends them (header names lower-cased); like
/// `errorfile`, the last declaration for a code wins.
pub(crate) fn p_errorloc(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.len() < 3 {
        return Err(format!(
            "'{}' expects <status_code> and <url> as arguments.",
            k.name
        ));
    }
    let status = status_code(l.arg(1))?;
    let url = l.arg(2);
    let head = if k.name == "errorloc303" {
        "HTTP/1.1 303 See Other"
    } else {
        "HTTP/1.1 302 Found"
    };
    let contents = format!(
        "{head}\r\ncache-control: no-cache\r\ncontent-length: 0\r\nlocation: {url}\r\n\r\n"
    );
    p.settings.errorfiles.retain(|e| e.status != status);
    p.settings.errorfiles.push(ErrorFile {
        loc: l.loc.clone(),
        status,
        path: PathBuf::from(url),
        contents: Arc::from(contents.into_bytes()),
    });
    super::no_extra(l, 3)
}

/// `http-error status <code> [content-type <t>] [default-errorfiles | errorfile <f> |
/// errorfiles <name> | file <f> | string <s>] [hdr <name> <value>]*`: rendered here, once,
/// into the raw response the engine sends for `code` (like an `errorfile`; the last one for a
/// code wins). haproxy 2.6's bytes: the `hdr` lines, `content-length`, then `content-type`.
/// Log-format payloads (`lf-string`, `lf-file`, a `hdr` value with `%`) would need evaluating
/// per reply, which ringlb's error replies do not do yet: refused, saying so.
pub(crate) fn p_http_error(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let mut status = None;
    let mut content_type: Option<String> = None;
    let mut payload: Option<(String, String)> = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut i = 1;
    let value = |i: usize, what: &str| -> Result<String, String> {
        if i < l.len() {
            Ok(l.arg(i).to_string())
        } else {
            Err(format!("missing {what}."))
        }
    };
    while i < l.len() {
        match l.arg(i) {
            "status" => {
                let w = value(i + 1, "<status>")?;
                status =
                    Some(status_code(&w).map_err(|_| format!("status code '{w}' not handled."))?);
                i += 2;
            }
            "content-type" => {
                content_type = Some(value(i + 1, "<type>")?);
                i += 2;
            }
            w @ ("errorfile" | "errorfiles" | "file" | "string") => {
                payload = Some((w.to_string(), value(i + 1, "an argument")?));
                i += 2;
            }
            "default-errorfiles" => {
                payload = Some(("default-errorfiles".to_string(), String::new()));
                i += 1;
            }
            w @ ("lf-string" | "lf-file") => {
                return Err(format!(
                    "'{w}' (a log-format payload) is not supported by ringlb yet; use 'string' or 'file'."
                ));
            }
            "hdr" => {
                let name = value(i + 1, "<name>")?;
                let v = value(i + 2, "<fmt>")?;
                if v.contains('%') {
                    return Err(format!(
                        "log-format header values ('{v}') are not supported by ringlb yet."
                    ));
                }
                headers.push((name, v));
                i += 3;
            }
            w => return Err(format!("unknown keyword '{w}'.")),
        }
    }
    let status = status.ok_or("expects at least a <status> as arguments.")?;
    let body = match payload.as_ref().map(|(w, v)| (w.as_str(), v.as_str())) {
        Some(("errorfile", path)) => {
            let ef = load_errorfile(l, &status.to_string(), path)?;
            p.settings.errorfiles.retain(|e| e.status != status);
            p.settings.errorfiles.push(ef);
            return Ok(());
        }
        Some(("errorfiles", name)) => {
            p.settings
                .errorfiles_sections
                .push((l.loc.clone(), name.to_string(), vec![status]));
            return Ok(());
        }
        Some(("default-errorfiles", _)) => {
            p.settings.errorfiles.retain(|e| e.status != status);
            return Ok(());
        }
        Some(("file", path)) => super::read_bounded(std::path::Path::new(path))?,
        Some((_, text)) => text.as_bytes().to_vec(),
        None => Vec::new(),
    };
    if !body.is_empty() && content_type.is_none() {
        return Err("a content type must be defined when non-empty payload is configured".into());
    }
    if body.is_empty() {
        if let Some(t) = content_type.take() {
            k.cx.warn(
                &l.loc,
                "http-error",
                format!("content-type '{t}' ignored by the http reply because neither errorfile nor payload defined."),
            );
        }
    }
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\n",
        ringlb_http1::reason_phrase(status)
    );
    for (n, v) in &headers {
        out.push_str(&format!("{}: {v}\r\n", n.to_ascii_lowercase()));
    }
    out.push_str(&format!("content-length: {}\r\n", body.len()));
    if let Some(t) = content_type {
        out.push_str(&format!("content-type: {t}\r\n"));
    }
    out.push_str("\r\n");
    let mut contents = out.into_bytes();
    contents.extend_from_slice(&body);
    p.settings.errorfiles.retain(|e| e.status != status);
    p.settings.errorfiles.push(ErrorFile {
        loc: l.loc.clone(),
        status,
        path: PathBuf::from("http-error"),
        contents: Arc::from(contents),
    });
    Ok(())
}

/// A status code `errorfile`-like keywords may replace (haproxy's list).
fn status_code(word: &str) -> Result<u16, String> {
    const CODES: &[u16] = &[
        200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504,
    ];
    let status: u16 = word
        .parse()
        .map_err(|_| format!("invalid status code '{word}'"))?;
    if !CODES.contains(&status) {
        return Err(format!("status code '{status}' not handled."));
    }
    Ok(status)
}

pub(crate) fn p_log(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    // `no log`: no logging for this proxy, whatever the defaults said (haproxy 2.6 frees the
    // inherited loggers; later `log` lines add again).
    if k.negated {
        if !l.arg(2).is_empty() {
            return Err("'no log' does not expect arguments".into());
        }
        p.settings.log.clear();
        return Ok(());
    }
    if l.arg(1) == "global" || !l.arg(1).is_empty() {
        let t = super::global::parse_log(l, true)?;
        p.settings.log.push(t);
        return Ok(());
    }
    Err("'log' expects either <address[:port]> and <facility> or 'global' as arguments.".into())
}

pub(crate) fn p_balance(_k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    // HAProxy takes a bare `balance` as `balance roundrobin`.
    let algo = if l.arg(1).is_empty() {
        "roundrobin"
    } else {
        l.arg(1)
    };
    let b = parse_balance(algo, &l.rest(2))?;
    p.settings.balance = Some(b);
    Ok(())
}

pub(crate) fn paren_arg(algo: &str) -> Option<&str> {
    algo.split_once('(').and_then(|(_, r)| r.strip_suffix(')'))
}

pub(crate) fn parse_balance(algo: &str, args: &[String]) -> Result<Balance, String> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let name = algo.split('(').next().unwrap_or(algo);
    Ok(match name {
        "roundrobin" => Balance::Roundrobin,
        "static-rr" => Balance::StaticRr,
        "leastconn" => Balance::Leastconn,
        "first" => Balance::First,
        "source" => Balance::Source,
        "uri" => {
            let mut b = Balance::Uri { whole: false, path_only: false, len: None, depth: None };
            if let Balance::Uri { whole, path_only, len, depth } = &mut b {
                let mut i = 0;
                while i < args.len() {
                    match arg(i) {
                        "whole" => *whole = true,
                        "path-only" => *path_only = true,
                        "len" => { *len = Some(parse_u32(arg(i + 1))?); i += 1; }
                        "depth" => { *depth = Some(parse_u32(arg(i + 1))?); i += 1; }
                        w => return Err(format!("'balance uri' only accepts parameters 'len', 'depth', 'path-only', and 'whole' (got '{w}').")),
                    }
                    i += 1;
                }
            }
            b
        }
        "url_param" => {
            if arg(0).is_empty() {
                return Err("'balance url_param' requires an URL parameter name.".into());
            }
            Balance::UrlParam { name: arg(0).to_string(), check_post: arg(1) == "check_post" }
        }
        "hdr" => {
            let h = paren_arg(algo).filter(|h| !h.is_empty()).ok_or("'balance hdr' requires an http header field name.")?;
            Balance::Hdr { name: h.to_string(), use_domain_only: arg(0) == "use_domain_only" }
        }
        "random" => {
            let draws = paren_arg(algo).map(parse_u32).transpose()?.unwrap_or(2);
            Balance::Random { draws }
        }
        "rdp-cookie" => Balance::RdpCookie { name: paren_arg(algo).map(str::to_string) },
        "hash" => {
            let e = acl::parse_sample(arg(0))?;
            Balance::Hash { expr: e }
        }
        _ => return Err(format!("unknown balancing algorithm '{algo}' (supported: roundrobin, static-rr, leastconn, first, source, uri, url_param, hdr(name), random, rdp-cookie, hash).")),
    })
}

/// `hash-balance-factor <0 | over 100>` (HAProxy 2.6 refuses 1..=100: a server could not
/// take its own share).
pub(crate) fn p_hash_balance_factor(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let v = parse_u32(l.arg(1))?;
    if v != 0 && v <= 100 {
        return Err("'hash-balance-factor' must be 0 or greater than 100.".into());
    }
    p.settings.hash_balance_factor = Some(v);
    super::no_extra(l, 2)
}

/// `persist rdp-cookie[(name)]`; the name defaults to `msts` (HAProxy).
pub(crate) fn p_persist_rdp_cookie(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let word = l.arg(k.kw_words - 1);
    let name = paren_arg(word).filter(|n| !n.is_empty()).unwrap_or("msts");
    if word.contains('(') && paren_arg(word).is_none() {
        return Err("'persist rdp-cookie' : missing ')' after the cookie name.".into());
    }
    p.settings.persist_rdp_cookie = Some(name.to_string());
    super::no_extra(l, k.kw_words)
}

pub(crate) fn p_hash_type(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let consistent = match l.arg(1) {
        "map-based" => false,
        "consistent" => true,
        w => {
            return Err(format!(
                "'hash-type' expects 'map-based' or 'consistent' (got '{w}')."
            ))
        }
    };
    let function = match l.arg(2) {
        "" | "sdbm" => HashFunction::Sdbm,
        "djb2" => HashFunction::Djb2,
        "wt6" => HashFunction::Wt6,
        "crc32" => HashFunction::Crc32,
        "none" => {
            k.cx.warn(&l.loc, "hash-type", "the 'none' hash function is unknown to haproxy 2.6 (which refuses it; later versions added it): ringlb uses the key's decimal value as the hash, as they do.");
            HashFunction::None
        }
        _ => return Err(
            "'hash-type' only supports 'sdbm', 'djb2', 'crc32', 'wt6' or 'none' hash functions."
                .into(),
        ),
    };
    let avalanche = match l.arg(3) {
        // HAProxy: "consistent hash uses sdbm and avalanche if no function is given".
        "" => consistent && l.arg(2).is_empty(),
        "avalanche" => true,
        w => return Err(format!("unknown hash modifier '{w}'.")),
    };
    p.settings.hash_type = Some(HashType {
        consistent,
        function,
        avalanche,
    });
    Ok(())
}

pub(crate) fn p_cookie(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let mut c = Cookie {
        loc: l.loc.clone(),
        name: l.arg(1).to_string(),
        mode: CookieMode::Rewrite,
        indirect: false,
        nocache: false,
        postonly: false,
        preserve: false,
        httponly: false,
        secure: false,
        dynamic: false,
        domains: Vec::new(),
        maxidle: None,
        maxlife: None,
        attrs: Vec::new(),
    };
    let mut i = 2;
    while i < l.len() {
        match l.arg(i) {
            "rewrite" => c.mode = CookieMode::Rewrite,
            "insert" => c.mode = CookieMode::Insert,
            "prefix" => c.mode = CookieMode::Prefix,
            "indirect" => c.indirect = true,
            "nocache" => c.nocache = true,
            "postonly" => c.postonly = true,
            "preserve" => c.preserve = true,
            "httponly" => c.httponly = true,
            "secure" => c.secure = true,
            "dynamic" => c.dynamic = true,
            "domain" => { c.domains.push(l.arg(i + 1).to_string()); i += 1; }
            "maxidle" => { c.maxidle = Some(parse_time_s(l.arg(i + 1))?); i += 1; }
            "maxlife" => { c.maxlife = Some(parse_time_s(l.arg(i + 1))?); i += 1; }
            "attr" => { c.attrs.push(l.arg(i + 1).to_string()); i += 1; }
            w => return Err(format!("'cookie' supports 'rewrite', 'insert', 'prefix', 'indirect', 'nocache', 'postonly', 'domain', 'maxidle', 'dynamic', 'maxlife', 'attr' and 'httponly' options (got '{w}').")),
        }
        i += 1;
    }
    p.settings.cookie = Some(c);
    Ok(())
}

pub(crate) fn parse_time_s(s: &str) -> Result<Duration, String> {
    crate::units::parse_time_unit(s, 1_000_000)
}

pub(crate) fn p_capture(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let what = l.arg(1).to_string();
    let (name, len_at) = if what == "cookie" {
        (l.arg(2), 3)
    } else {
        (l.arg(3), 4)
    };
    if what != "cookie" && l.arg(2) != "header" {
        return Err(format!("'capture {what}' expects 'header'."));
    }
    if l.arg(len_at) != "len" {
        return Err(format!("'{}' expects '<name> len <length>'.", k.name));
    }
    let len = parse_u32(l.arg(len_at + 1))?;
    if what == "cookie" && p.captures.iter().any(|c| c.what == "cookie") {
        return Err("only one 'capture cookie' is allowed per frontend.".into());
    }
    p.captures.push(Capture {
        loc: l.loc.clone(),
        what,
        name: name.to_string(),
        len,
    });
    Ok(())
}

/// `declare capture request|response len <length>`: a slot for `http-request capture ...
/// id N` / `http-response capture ... id N`, numbered with the header captures.
pub(crate) fn p_declare_capture(_k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let what = l.arg(2);
    if !matches!(what, "request" | "response") {
        return Err("'declare capture' expects 'request' or 'response'.".into());
    }
    if l.arg(3) != "len" || l.arg(4).is_empty() {
        return Err("'declare capture' expects 'len <length>'.".into());
    }
    let len = parse_u32(l.arg(4))?;
    p.captures.push(Capture {
        loc: l.loc.clone(),
        what: what.to_string(),
        name: String::new(),
        len,
    });
    Ok(())
}

pub(crate) fn stats(p: &mut ProxyDraft) -> &mut Stats {
    p.stats.get_or_insert_with(Stats::default)
}

pub(crate) fn p_stats_auth(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let (u, pw) = l
        .arg(2)
        .split_once(':')
        .ok_or("'stats auth' expects <user>:<password>.")?;
    stats(p).auths.push((u.to_string(), pw.to_string()));
    Ok(())
}

pub(crate) fn p_stats_http_request(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    use crate::model::{StatsAction, StatsRule};
    need(k, l, 1)?;
    let (action, next) = match l.arg(2) {
        "allow" => (StatsAction::Allow, 3),
        "deny" => (StatsAction::Deny, 3),
        "auth" if l.arg(3) == "realm" => {
            if l.arg(4).is_empty() {
                return Err("'realm' expects a realm name.".into());
            }
            let realm = Some(l.arg(4).to_string());
            (StatsAction::Auth { realm }, 5)
        }
        "auth" => (StatsAction::Auth { realm: None }, 3),
        a => {
            return Err(format!(
                "'stats http-request' expects 'allow', 'deny' or 'auth', got '{a}'."
            ))
        }
    };
    let cond = acl::parse_condition(k, p, l, next)?;
    stats(p).http_request.push(StatsRule {
        loc: l.loc.clone(),
        action,
        cond,
    });
    Ok(())
}

pub(crate) fn p_stats_admin(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let cond = acl::parse_condition(k, p, l, 2)?
        .ok_or("'stats admin' requires either 'if' or 'unless' followed by a condition.")?;
    stats(p).admin.push(cond);
    Ok(())
}
