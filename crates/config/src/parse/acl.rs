//! Sample expressions (`fetch(args),conv(args)`), ACL declarations and `if`/`unless`
//! conditions, parsed into the typed AST of [`crate::model`]. Evaluation belongs to the rules
//! issue (#6); here names are checked against HAProxy 2.6's fetch and converter lists.
//!
//! Owns: [`parse_sample`], [`parse_acl_line`], [`parse_condition`], fetch/converter tables.

use crate::model::{Acl, AclFlags, AclRef, Condition, Converter, Loc, SampleExpr, Term};
use crate::registry::{nearest, Status};
use crate::source::Line;

use super::proxy::{KwCx, ProxyDraft};
use super::R;

/// Sample fetches of HAProxy 2.6 (exact names; prefixes in [`FETCH_PREFIXES`]).
pub const FETCHES: &[&str] = &[
    "always_false",
    "always_true",
    "env",
    "int",
    "ipv4",
    "ipv6",
    "str",
    "bin",
    "bool",
    "meth",
    "rand",
    "nbsrv",
    "proc",
    "stopping",
    "thread",
    "uuid",
    "date",
    "date_us",
    "hostname",
    "be_conn",
    "be_conn_free",
    "be_sess_rate",
    "be_id",
    "be_name",
    "connslots",
    "fe_conn",
    "fe_id",
    "fe_name",
    "fe_req_rate",
    "fe_sess_rate",
    "fe_defbe",
    "avg_queue",
    "queue",
    "srv_conn",
    "srv_id",
    "srv_is_up",
    "srv_name",
    "srv_queue",
    "srv_sess_rate",
    "srv_conn_free",
    "var",
    "src",
    "src_port",
    "dst",
    "dst_port",
    "dst_conn",
    "dst_is_local",
    "src_is_local",
    "so_id",
    "so_name",
    "base",
    "base32",
    "base32+src",
    "baseq",
    "cookie",
    "hdr",
    "http_auth",
    "http_auth_group",
    "http_auth_pass",
    "http_auth_type",
    "http_auth_user",
    "http_first_req",
    "method",
    "path",
    "pathq",
    "query",
    "set-cookie",
    "shdr",
    "shdr_cnt",
    "shdr_ip",
    "shdr_val",
    "status",
    "unique-id",
    "url",
    "url_ip",
    "url_port",
    "url_param",
    "urlp",
    "urlp_val",
    "url32",
    "url32+src",
    "req_len",
    "req_proto_http",
    "req_ssl_sni",
    "req_ssl_ver",
    "req_ssl_hello_type",
    "req_ver",
    "resp_ver",
    "wait_end",
    "payload",
    "payload_lv",
    "rdp_cookie",
    "rdp_cookie_cnt",
    "ssl_fc",
    "ssl_bc",
    "ssl_c_used",
    "ssl_c_verify",
    "lat_ns_avg",
    "lat_ns_tot",
    "cpu_calls",
    "cpu_ns_avg",
    "cpu_ns_tot",
    "table_avl",
    "table_cnt",
    "sc_get_gpc0",
    "last_rule_file",
    "last_rule_line",
    "fc_rtt",
    "fc_rttvar",
    "distcc_body",
    "distcc_param",
    "quic_enabled",
    "cook",
    "cook_cnt",
    "cook_val",
    "scook",
    "scook_cnt",
    "scook_val",
    "hdr_cnt",
    "hdr_ip",
    "hdr_val",
    "hdrs",
    "http_req_rate",
    "capture",
];

/// Fetch families accepted by prefix (`ssl_c_s_dn`, `sc0_http_req_rate`, `req.hdr`...).
pub const FETCH_PREFIXES: &[&str] = &[
    "ssl_c_", "ssl_f_", "ssl_fc_", "ssl_bc_", "ssl_s_", "fc_", "bc_", "sc_", "sc0_", "sc1_",
    "sc2_", "src_", "table_", "req.", "res.", "capture.", "txn.", "var(", "http_", "be_", "fe_",
    "srv_", "so_", "bc.", "fc.", "ssl_fc", "ssl_bc",
];

/// ACL-only derived criteria suffixes (`path_beg`, `hdr_sub`...).
pub const ACL_SUFFIXES: &[&str] = &[
    "_beg", "_end", "_sub", "_dir", "_dom", "_reg", "_len", "_cnt", "_ip", "_val", "_str", "_found",
];

/// ringlb extension fetches (haproxy 2.6 rejects them): name → inclusive value range.
pub const EXTENSION_FETCHES: &[(&str, u32, u32)] = &[("date_hour", 0, 23), ("date_dow", 0, 7)];

/// Converters of HAProxy 2.6 (exact names; prefixes in [`CONVERTER_PREFIXES`]).
pub const CONVERTERS: &[&str] = &[
    "add",
    "aes_gcm_dec",
    "and",
    "b64dec",
    "base64",
    "be2dec",
    "be2hex",
    "bool",
    "bytes",
    "concat",
    "cpl",
    "crc32",
    "crc32c",
    "cut_crlf",
    "debug",
    "digest",
    "div",
    "djb2",
    "even",
    "field",
    "hex",
    "hex2i",
    "hmac",
    "htonl",
    "http_date",
    "in_table",
    "ipmask",
    "json",
    "json_query",
    "language",
    "length",
    "lower",
    "ltime",
    "ltrim",
    "map",
    "mod",
    "mul",
    "neg",
    "not",
    "odd",
    "or",
    "protobuf",
    "regsub",
    "rtrim",
    "sdbm",
    "secure_memcmp",
    "set-var",
    "sha1",
    "sha2",
    "strcmp",
    "sub",
    "ub64dec",
    "ub64enc",
    "ungrpc",
    "unset-var",
    "upper",
    "url_dec",
    "url_enc",
    "utime",
    "word",
    "wt6",
    "xor",
    "x509_v_err_str",
    "xxh3",
    "xxh32",
    "xxh64",
    "iif",
    "jwt_verify",
    "jwt_header_query",
    "jwt_payload_query",
    "srv_queue",
    "nbsrv",
    "host_only",
    "port_only",
    "sub",
    "ipv6",
];

/// Converter families accepted by prefix.
pub const CONVERTER_PREFIXES: &[&str] = &["map_", "table_", "fix_", "mqtt_", "sc_"];

/// Predefined ACLs (configuration manual 7.4).
pub const PREDEFINED_ACLS: &[&str] = &[
    "FALSE",
    "HTTP",
    "HTTP_1.0",
    "HTTP_1.1",
    "HTTP_2.0",
    "HTTP_CONTENT",
    "HTTP_URL_ABS",
    "HTTP_URL_SLASH",
    "HTTP_URL_STAR",
    "LOCALHOST",
    "METH_CONNECT",
    "METH_DELETE",
    "METH_GET",
    "METH_HEAD",
    "METH_OPTIONS",
    "METH_POST",
    "METH_PUT",
    "METH_TRACE",
    "RDP_COOKIE",
    "REQ_CONTENT",
    "TRUE",
    "WAIT_END",
];

fn is_fetch(name: &str) -> bool {
    FETCHES.contains(&name) || FETCH_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn is_acl_fetch(name: &str) -> bool {
    is_fetch(name)
        || ACL_SUFFIXES.iter().any(|s| {
            name.strip_suffix(s)
                .is_some_and(|base| FETCHES.contains(&base))
        })
}

fn is_converter(name: &str) -> bool {
    CONVERTERS.contains(&name) || CONVERTER_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Splits `a(x,y),b,c(z)` at top-level commas (quoted arguments may hold `,` and `)`).
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut quote) = (0i32, 0usize, None::<char>);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("unbalanced ')' in '{s}'"));
        }
    }
    if depth != 0 || quote.is_some() {
        return Err(format!("missing closing ')' in '{s}'"));
    }
    parts.push(s.get(start..).unwrap_or(""));
    Ok(parts)
}

/// `name(a,b)` → ("name", ["a","b"]).
fn name_args(s: &str) -> Result<(String, Vec<String>), String> {
    match s.split_once('(') {
        None => Ok((s.to_string(), Vec::new())),
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("missing closing ')' after arguments of '{name}'"))?;
            let args = if inner.is_empty() {
                Vec::new()
            } else {
                split_top(inner)?
                    .into_iter()
                    .map(|a| a.trim_matches(|c| c == '"' || c == '\'').to_string())
                    .collect()
            };
            Ok((name.to_string(), args))
        }
    }
}

/// Parses a sample expression; the fetch must exist and every converter must be one.
pub fn parse_sample(s: &str) -> Result<SampleExpr, String> {
    parse_sample_with(s, is_fetch)
}

fn parse_sample_with(s: &str, fetch_ok: fn(&str) -> bool) -> Result<SampleExpr, String> {
    if s.is_empty() {
        return Err("missing sample expression".into());
    }
    let parts = split_top(s)?;
    let mut it = parts.into_iter();
    let (fetch, args) = name_args(it.next().unwrap_or(""))?;
    if !fetch_ok(&fetch) {
        let hint = nearest(&fetch, FETCHES.iter().copied())
            .map(|n| format!("; did you mean '{n}' maybe ?"))
            .unwrap_or_default();
        return Err(format!(
            "unknown fetch method '{fetch}' in expression '{s}'{hint}"
        ));
    }
    let mut converters = Vec::new();
    for c in it {
        let (name, args) = name_args(c)?;
        if !is_converter(&name) {
            return Err(converter_error(&name, s));
        }
        if name == "map" || name.starts_with("map_") {
            let file = args.first().map(String::as_str).unwrap_or("");
            if std::fs::metadata(file).is_err() {
                return Err(format!(
                    "invalid args in converter '{name}' : failed to open pattern file <{file}>."
                ));
            }
        }
        converters.push(Converter { name, args });
    }
    Ok(SampleExpr {
        fetch,
        args,
        converters,
    })
}

fn converter_error(name: &str, expr: &str) -> String {
    if is_fetch(name) {
        return format!(
            "unknown converter '{name}': '{name}' is a sample fetch, not a converter, so '{expr}' cannot combine them; \
             for a combined key use a fetch that already joins them (e.g. 'base32+src') or \
             'concat' with a variable (e.g. 'http-request set-var(txn.p) path' then 'src,concat(,txn.p)')."
        );
    }
    let hint = nearest(name, CONVERTERS.iter().copied())
        .map(|n| format!("; did you mean '{n}' maybe ?"))
        .unwrap_or_default();
    format!("unknown converter '{name}' in expression '{expr}'{hint}")
}

/// Parses `<criterion> [flags] [operator] <patterns...>` (shared by named and anonymous ACLs).
pub fn parse_acl_body(
    cx: &mut super::Cx,
    name: &str,
    loc: &Loc,
    words: &[String],
) -> Result<Acl, String> {
    let crit = words.first().ok_or("missing ACL criterion")?;
    let ext = EXTENSION_FETCHES.iter().find(|(f, _, _)| f == crit);
    let sample = if ext.is_some() {
        SampleExpr {
            fetch: crit.clone(),
            args: Vec::new(),
            converters: Vec::new(),
        }
    } else {
        parse_sample_with(crit, is_acl_fetch)
            .map_err(|e| format!("error detected while parsing ACL '{name}' : {e}."))?
    };
    let mut flags = AclFlags::default();
    let mut i = 1;
    while let Some(w) = words.get(i) {
        let val = words.get(i + 1).cloned();
        match w.as_str() {
            "-i" => flags.ignore_case = true,
            "-n" => flags.no_dns = true,
            "-M" => flags.map = true,
            "-f" => {
                let f = val.ok_or("'-f' expects a file")?;
                std::fs::metadata(&f).map_err(|_| format!("error detected while parsing ACL '{name}' : failed to open pattern file <{f}>."))?;
                flags.files.push(f.into());
                i += 1;
            }
            "-m" => {
                flags.match_method = Some(check_match(val.as_deref())?);
                i += 1;
            }
            "-u" => {
                flags.unique_id = Some(val.ok_or("'-u' expects an id")?);
                i += 1;
            }
            "--" => {
                i += 1;
                break;
            }
            w if w.starts_with('-') && w.len() > 1 => {
                return Err(format!(
                    "error detected while parsing ACL '{name}' : '{w}' is not a valid ACL option. Please use '--' before any pattern beginning with a '-'."
                ))
            }
            _ => break,
        }
        i += 1;
    }
    let mut operator = None;
    if let Some(op) = words
        .get(i)
        .filter(|w| ["eq", "ge", "gt", "le", "lt"].contains(&w.as_str()))
    {
        operator = Some(op.clone());
        i += 1;
    }
    let patterns: Vec<String> = words.iter().skip(i).cloned().collect();
    if let Some((fetch, lo, hi)) = ext {
        check_extension(cx, loc, fetch, *lo, *hi, &patterns)?;
    }
    Ok(Acl {
        name: name.to_string(),
        loc: loc.clone(),
        sample,
        flags,
        operator,
        patterns,
    })
}

fn check_match(m: Option<&str>) -> Result<String, String> {
    const METHODS: &[&str] = &[
        "found", "bool", "int", "ip", "bin", "len", "str", "sub", "reg", "beg", "end", "dir", "dom",
    ];
    match m {
        Some(m) if METHODS.contains(&m) => Ok(m.to_string()),
        Some(m) => Err(format!("unknown matching method '{m}'")),
        None => Err("'-m' expects a matching method".into()),
    }
}

/// `date_hour 9-17` / `date_dow 1:5`: ringlb extension, validated and warned about.
fn check_extension(
    cx: &mut super::Cx,
    loc: &Loc,
    fetch: &str,
    lo: u32,
    hi: u32,
    pats: &[String],
) -> R {
    for p in pats {
        let (a, b) = p.split_once(['-', ':']).unwrap_or((p, p));
        let (a, b) = (a.parse::<u32>(), b.parse::<u32>());
        match (a, b) {
            (Ok(a), Ok(b)) if a <= b && b <= hi && a >= lo => {}
            _ => return Err(format!("invalid '{fetch}' pattern '{p}': expects an integer or a range '<min>-<max>' / '<min>:<max>' within {lo}..{hi}")),
        }
    }
    cx.use_kw(loc, &format!("acl {fetch}"), &Status::Supported);
    cx.warn(
        loc,
        "acl",
        format!(
            "'{fetch}' is a ringlb extension: haproxy 2.6 has no such fetch and rejects this line."
        ),
    );
    Ok(())
}

/// `acl <name> <criterion> [flags] [operator] <value> ...`.
pub fn parse_acl_line(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.len() < 3 {
        return Err("'acl' expects an ACL name and a criterion.".into());
    }
    let name = l.arg(1);
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c)))
    {
        return Err(format!(
            "ACL name '{name}' contains invalid character '{c}'."
        ));
    }
    let acl = parse_acl_body(k.cx, name, &l.loc, &l.rest(2))?;
    p.acls.push(acl);
    Ok(())
}

/// Parses an optional `if|unless <condition>` starting at word `start`. Returns `None` when
/// there are no words left. Named ACLs must be declared earlier in the proxy (or predefined).
pub fn parse_condition(
    k: &mut KwCx<'_>,
    p: &ProxyDraft,
    l: &Line,
    start: usize,
) -> Result<Option<Condition>, String> {
    let words = l.rest(start);
    let Some(first) = words.first() else {
        return Ok(None);
    };
    let unless = match first.as_str() {
        "if" => false,
        "unless" => true,
        w => return Err(format!("expects 'if', 'unless' or end of line, got '{w}'.")),
    };
    let mut terms: Vec<Vec<Term>> = vec![Vec::new()];
    let mut i = 1;
    while let Some(w) = words.get(i) {
        i += 1;
        if w == "||" || w == "or" {
            terms.push(Vec::new());
            continue;
        }
        let (negate, name) = match w.strip_prefix('!') {
            Some(rest) if !rest.is_empty() => (true, rest.to_string()),
            Some(_) => match words.get(i) {
                Some(next) => {
                    i += 1;
                    (true, next.clone())
                }
                None => return Err("missing ACL after '!'".into()),
            },
            None => (false, w.clone()),
        };
        let acl = if name == "{" {
            let end = words
                .iter()
                .skip(i)
                .position(|w| w == "}")
                .ok_or("missing closing '}' in condition.")?;
            let body: Vec<String> = words.iter().skip(i).take(end).cloned().collect();
            i += end + 1;
            if body.is_empty() {
                return Err("empty anonymous ACL '{ }' in condition.".into());
            }
            AclRef::Anonymous(Box::new(parse_acl_body(k.cx, "", &l.loc, &body)?))
        } else {
            if !PREDEFINED_ACLS.contains(&name.as_str())
                && !p.acls.iter().skip(p.own_acls_from).any(|a| a.name == name)
            {
                return Err(format!("no such ACL : '{name}'"));
            }
            AclRef::Named(name)
        };
        if let Some(t) = terms.last_mut() {
            t.push(Term { negate, acl });
        }
    }
    if i == 1 {
        // `if` with nothing after it: haproxy accepts it; kept as a condition without terms.
        terms.clear();
    } else if terms.iter().any(Vec::is_empty) {
        return Err(format!("'{first}' expects a non-empty condition."));
    }
    k.cx.use_kw(&l.loc, "condition (if/unless)", &Status::Supported);
    Ok(Some(Condition { unless, terms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        let s = parse_sample("sc_http_req_rate(0,per_ip_rate)").unwrap();
        assert_eq!(s.fetch, "sc_http_req_rate");
        assert_eq!(s.args, ["0", "per_ip_rate"]);
        let s = parse_sample("ssl_c_serial,hex").unwrap();
        assert_eq!(s.converters[0].name, "hex");
        let s = parse_sample("req.hdr(host),lower,map_str(Cargo.toml)").unwrap();
        assert_eq!(s.converters.len(), 2);
        assert!(parse_sample("uuid()").unwrap().args.is_empty());
        let e = parse_sample("src,path").unwrap_err();
        assert!(e.contains("is a sample fetch, not a converter"), "{e}");
        assert!(e.contains("base32+src"));
        assert!(parse_sample("srcx").unwrap_err().contains("unknown fetch"));
        assert!(parse_sample("src,lowre")
            .unwrap_err()
            .contains("did you mean 'lower'"));
        assert!(parse_sample("hdr(host").is_err());
        assert!(parse_sample("src,map(/nonexistent/ringlb.map)")
            .unwrap_err()
            .contains("failed to open pattern file"));
    }

    #[test]
    fn acl_bodies() {
        let mut cx = super::super::Cx::default();
        let loc = Loc::default();
        let w = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let a = parse_acl_body(
            &mut cx,
            "x",
            &loc,
            &w("hdr_sub(User-Agent) -i mobile android"),
        )
        .unwrap();
        assert!(a.flags.ignore_case);
        assert_eq!(a.patterns, ["mobile", "android"]);
        let a = parse_acl_body(&mut cx, "x", &loc, &w("sc_http_req_rate(0) gt 100")).unwrap();
        assert_eq!(a.operator.as_deref(), Some("gt"));
        let a = parse_acl_body(&mut cx, "x", &loc, &w("url_param(debug) -m str true")).unwrap();
        assert_eq!(a.flags.match_method.as_deref(), Some("str"));
        assert!(cx.diags.is_empty());
        parse_acl_body(&mut cx, "x", &loc, &w("date_hour 9-17")).unwrap();
        parse_acl_body(&mut cx, "x", &loc, &w("date_hour 9:17")).unwrap();
        assert_eq!(cx.diags.len(), 2, "extension warns");
        assert!(parse_acl_body(&mut cx, "x", &loc, &w("date_hour 9-25")).is_err());
        assert!(parse_acl_body(&mut cx, "x", &loc, &w("date_dow x")).is_err());
        assert!(parse_acl_body(&mut cx, "x", &loc, &w("path_beeg /x")).is_err());
        let e = parse_acl_body(&mut cx, "x", &loc, &w("int(-3) -m int -3")).unwrap_err();
        assert!(
            e.contains("Please use '--' before any pattern beginning with a '-'"),
            "{e}"
        );
        let a = parse_acl_body(&mut cx, "x", &loc, &w("int(-3) -m int -- -3")).unwrap();
        assert_eq!(a.patterns, ["-3"]);
    }
}
