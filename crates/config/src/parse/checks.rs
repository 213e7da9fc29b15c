//! Health check configuration: `option httpchk`, `http-check ...` and `tcp-check ...` steps.
//! Includes two guide-driven ringlb extensions, each warned about:
//! `http-check expect body` (synonym of `string`) and a second `http-check send` after an
//! `expect` without `connect` (a new connection per send/expect pair).
//!
//! Owns: [`option_httpchk`], [`http_check`], [`tcp_check`].

use crate::model::{
    CheckConnect, CheckExpect, CheckHdr, CheckHdrValue, HttpCheckStep, HttpChk, Loc, TcpCheckStep,
    VarOp,
};
use crate::source::Line;
use crate::units::parse_port;

use super::proxy::{HttpCheckState, KwCx, ProxyDraft};
use super::R;

/// `option httpchk [<method>] [<uri>] [<version>]` (one argument means the URI).
pub fn option_httpchk(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if k.negated {
        p.settings.options.httpchk = None;
        return Ok(());
    }
    let args = l.rest(2);
    let (method, uri, version) = match args.len() {
        0 => ("OPTIONS", "/", "HTTP/1.0"),
        1 => ("OPTIONS", args[0].as_str(), "HTTP/1.0"),
        2 => (args[0].as_str(), args[1].as_str(), "HTTP/1.0"),
        3 => (args[0].as_str(), args[1].as_str(), args[2].as_str()),
        _ => {
            return Err(
                "'option httpchk' expects at most 3 arguments: [<method>] [<uri>] [<version>]."
                    .into(),
            )
        }
    };
    if version.contains("\r\n") || version.contains(' ') {
        k.cx.warn(&l.loc, "option httpchk", "hiding headers or body at the end of the version string is deprecated. Please, consider to use 'http-check send' directive instead.");
    }
    let (version, extra) = match version.split_once("\r\n") {
        Some((v, rest)) => (v, Some(rest.to_string())),
        None => (version, None),
    };
    p.settings.options.httpchk = Some(HttpChk {
        method: method.into(),
        uri: uri.into(),
        version: version.into(),
        extra,
    });
    Ok(())
}

fn begin_own_http(p: &mut ProxyDraft) {
    if !p.own_http_check {
        p.own_http_check = true;
        p.settings.http_check.clear();
    }
}

fn begin_own_tcp(p: &mut ProxyDraft) {
    if !p.own_tcp_check {
        p.own_tcp_check = true;
        p.settings.tcp_check.clear();
    }
}

/// `http-check <step> ...`.
pub fn http_check(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    begin_own_http(p);
    let loc = l.loc.clone();
    let step = match l.arg(1) {
        "connect" => {
            let meta = |s: &HttpCheckStep| {
                matches!(
                    s,
                    HttpCheckStep::Comment { .. } | HttpCheckStep::SetVar { .. }
                )
            };
            let steps = &p.settings.http_check;
            if !steps.iter().all(meta)
                && !steps.iter().any(|s| matches!(s, HttpCheckStep::Connect(_)))
            {
                return Err("first step MUST also be a 'connect', optionally preceded by a 'set-var', an 'unset-var' or a 'comment', when there is a 'connect' step in the http-check ruleset.".into());
            }
            p.http_check_state = HttpCheckState {
                explicit_connect: true,
                sent: false,
                expect_seen: false,
            };
            HttpCheckStep::Connect(parse_connect(l, 2, true)?)
        }
        "send" => {
            if p.http_check_state.sent && !p.http_check_state.expect_seen {
                return Err(format!(
                    "unable to add http-check send rule at step {} (missing connect rule).",
                    p.settings.http_check.len() + 1
                ));
            }
            if p.http_check_state.expect_seen {
                k.cx.warn(&loc, "http-check send", "a second 'http-check send' after an 'expect' without 'http-check connect' is a ringlb extension \
                    (haproxy 2.6 rejects it): ringlb opens a new connection for each send/expect pair. Add 'http-check connect' before it to stay haproxy-compatible.");
                p.settings
                    .http_check
                    .push(HttpCheckStep::ImplicitConnect { loc: loc.clone() });
                p.http_check_state.expect_seen = false;
            }
            p.http_check_state.sent = true;
            parse_send(l)?
        }
        "expect" => {
            let st = &mut p.http_check_state;
            if st.explicit_connect && !st.sent {
                return Err(format!(
                    "unable to add http-check expect rule at step {} (missing send rule).",
                    p.settings.http_check.len() + 1
                ));
            }
            st.expect_seen = true;
            let e = parse_expect(l, true)?;
            if e.body_synonym {
                k.cx.warn(&loc, "http-check expect", format!(
                    "'http-check expect body' is a ringlb extension (haproxy 2.6 rejects it), handled as 'http-check expect string \
                     {pat}'. HAProxy's quoting rules apply: double quotes are removed, so '\"status\":\"ok\"' is matched as 'status:ok'; \
                     write it in single quotes ('\"status\":\"ok\"') to match the JSON text.",
                    pat = e.pattern
                ));
            }
            HttpCheckStep::Expect(Box::new(e))
        }
        "disable-on-404" => HttpCheckStep::DisableOn404 { loc },
        "send-state" => HttpCheckStep::SendState { loc },
        "comment" => HttpCheckStep::Comment {
            loc,
            text: l.rest(2).join(" "),
        },
        w if w.starts_with("set-var(")
            || w.starts_with("set-var-fmt(")
            || w.starts_with("unset-var(") =>
        {
            let (var, expr, op) = var_rule(l, w)?;
            HttpCheckStep::SetVar { loc, var, expr, op }
        }
        w => return Err(format!("'http-check' : unknown step '{w}'.")),
    };
    p.settings.http_check.push(step);
    Ok(())
}

fn var_name(w: &str) -> Result<String, String> {
    let name = w
        .split_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .ok_or_else(|| format!("invalid variable in '{w}'"))?;
    if name.contains(',') {
        return Err(format!(
            "'{w}' : conditions on variables (ifexists, ifgt...) are not supported by ringlb."
        ));
    }
    Ok(name.to_string())
}

/// `set-var(<name>) <expr>`, `set-var-fmt(<name>) <fmt>`, `unset-var(<name>)`.
fn var_rule(l: &Line, w: &str) -> Result<(String, String, VarOp), String> {
    let var = var_name(w)?;
    let expr = l.rest(2).join(" ");
    let op = if w.starts_with("unset-var(") {
        if !expr.is_empty() {
            return Err(format!("'{w}' : expects no argument, got '{expr}'."));
        }
        VarOp::Unset
    } else {
        if expr.is_empty() {
            return Err(format!("'{w}' : expects an expression."));
        }
        if w.starts_with("set-var-fmt(") {
            VarOp::SetFmt
        } else {
            VarOp::Set
        }
    };
    Ok((var, expr, op))
}

/// `proto <mux>` of a connect rule, checked as HAProxy 2.6 does (`h1`, `h2`, `fcgi` are HTTP
/// muxes, `none` the raw one); `fcgi` checks are not implemented by ringlb.
fn connect_proto(v: &str, http: bool) -> Result<String, String> {
    let (rules, mode_ok) = if http {
        ("http-check", matches!(v, "h1" | "h2" | "fcgi"))
    } else {
        ("tcp-check", v == "none")
    };
    if v.is_empty() {
        return Err("'proto' expects a MUX protocol as argument.".into());
    }
    if !matches!(v, "h1" | "h2" | "fcgi" | "none") {
        return Err(format!("'proto' : unknown MUX protocol '{v}'."));
    }
    if !mode_ok {
        return Err(format!("'proto' : invalid MUX protocol '{v}' for {rules}."));
    }
    if v == "fcgi" {
        return Err(
            "'proto fcgi' is not supported by ringlb (health checks speak h1 or h2).".into(),
        );
    }
    Ok(v.to_string())
}

fn parse_connect(l: &Line, start: usize, http: bool) -> Result<CheckConnect, String> {
    let mut c = CheckConnect {
        loc: l.loc.clone(),
        ..CheckConnect::default()
    };
    let mut i = start;
    while i < l.len() {
        let v = l.arg(i + 1);
        match l.arg(i) {
            "default" => c.default = true,
            "via-socks4" => {
                return Err("'via-socks4' is not supported by ringlb (nor is the server's 'socks4').".into())
            }
            "port" => { c.port = Some(parse_port(v)?); i += 1; }
            "addr" => { c.addr = Some(v.to_string()); i += 1; }
            "sni" => { c.sni = Some(v.to_string()); i += 1; }
            "alpn" => { c.alpn = Some(v.to_string()); i += 1; }
            "proto" => { c.proto = Some(connect_proto(v, http)?); i += 1; }
            "comment" => {
                if v.is_empty() {
                    return Err("'comment' expects a string as argument.".into());
                }
                c.comment = Some(v.to_string());
                i += 1;
            }
            "ssl" => c.ssl = true,
            "send-proxy" => c.send_proxy = true,
            "linger" => c.linger = true,
            w => return Err(format!("'connect' : unknown option '{w}' (expects port, addr, send-proxy, via-socks4, ssl, sni, alpn, proto, linger, default, comment).")),
        }
        i += 1;
    }
    Ok(c)
}

fn parse_send(l: &Line) -> Result<HttpCheckStep, String> {
    let (mut meth, mut uri, mut ver, mut body) = (None, None, None, None);
    let (mut uri_lf, mut body_lf) = (false, false);
    let mut headers = Vec::new();
    let mut i = 2;
    while i < l.len() {
        let v = l.arg(i + 1).to_string();
        let kw = l.arg(i);
        match kw {
            "meth" => meth = Some(v),
            "uri" | "uri-lf" => {
                uri_lf = kw == "uri-lf";
                uri = Some(v);
            }
            "ver" => ver = Some(v),
            "body" | "body-lf" => {
                body_lf = kw == "body-lf";
                body = Some(v);
            }
            "comment" => {}
            "hdr" => {
                headers.push((v, l.arg(i + 2).to_string()));
                i += 1;
            }
            w => return Err(format!("'http-check send' : unknown keyword '{w}' (expects meth, uri, uri-lf, ver, hdr, body, body-lf, comment).")),
        }
        if l.arg(i + 1).is_empty() {
            return Err(format!(
                "'http-check send' : '{}' expects a value.",
                l.arg(i)
            ));
        }
        i += 2;
    }
    Ok(HttpCheckStep::Send {
        loc: l.loc.clone(),
        meth,
        uri,
        ver,
        headers,
        body,
        uri_lf,
        body_lf,
    })
}

/// The statuses each reporting option accepts (HAProxy 2.6's `parse_tcpcheck_expect_rule`,
/// messages checked with `haproxy -c`: its `error-status` refuses `L7OKC`, which the manual
/// lists).
fn reporting_status(opt: &str, v: &str) -> Result<String, String> {
    let allowed: &[&str] = match opt {
        "ok-status" => &["L4OK", "L6OK", "L7OK", "L7OKC"],
        "error-status" => &["L4CON", "L6RSP", "L7RSP", "L7STS"],
        _ => &["L4TOUT", "L6TOUT", "L7TOUT"],
    };
    if v.is_empty() {
        return Err(format!("'{opt}' expects a string as argument."));
    }
    if !allowed.contains(&v) {
        let (last, first) = allowed.split_last().unwrap_or((&"", &[]));
        return Err(format!(
            "'{opt}' only supports '{}' or '{last}' status (got '{v}').",
            first.join("', '")
        ));
    }
    Ok(v.to_string())
}

/// `hdr|fhdr {name|name-lf} [-m <meth>] <name> [{value|value-lf} [-m <meth>] <value>]` from
/// `i` (the word after `hdr`); the index after it.
fn parse_hdr_pattern(l: &Line, kind: &str, mut i: usize) -> Result<(CheckHdr, usize), String> {
    let meth = |l: &Line, i: &mut usize| -> Result<String, String> {
        if l.arg(*i) != "-m" {
            return Ok(String::new());
        }
        let m = l.arg(*i + 1);
        if !["str", "beg", "end", "sub", "reg"].contains(&m) {
            return Err(format!(
                "'{kind}' : '-m' only supports 'str', 'beg', 'end', 'sub' or 'reg' (got '{m}')."
            ));
        }
        *i += 2;
        Ok(m.to_string())
    };
    let first = l.arg(i);
    if (first != "name" && first != "name-lf") || l.arg(i + 1).is_empty() {
        return Err(format!(
            "'{kind}' expects at the name keyword as first argument followed by a pattern."
        ));
    }
    let mut h = CheckHdr {
        name_lf: first == "name-lf",
        ..CheckHdr::default()
    };
    i += 1;
    h.name_meth = meth(l, &mut i)?;
    if i >= l.len() {
        return Err(format!(
            "'{kind}' expects at the name keyword as first argument followed by a pattern."
        ));
    }
    h.name = l.arg(i).to_string();
    i += 1;
    let v = l.arg(i);
    if v == "value" || v == "value-lf" {
        let lf = v == "value-lf";
        i += 1;
        let m = meth(l, &mut i)?;
        if i >= l.len() {
            return Err(format!("'{kind}' expect a pattern with the value keyword."));
        }
        h.value = Some(CheckHdrValue {
            meth: m,
            value: l.arg(i).to_string(),
            lf,
        });
        i += 1;
    }
    Ok((h, i))
}

/// `expect [min-recv N] [comment C] [ok|error|tout-status S] [on-*] [!] <match> <pattern>`:
/// the options may come before or after the match, `!` may be glued to it (`!status`,
/// toggled by each `!`), exactly one match and nothing else, as HAProxy 2.6 parses it.
fn parse_expect(l: &Line, http: bool) -> Result<CheckExpect, String> {
    let http_kinds = [
        "status",
        "rstatus",
        "string",
        "rstring",
        "string-lf",
        "hdr",
        "fhdr",
    ];
    let tcp_kinds = [
        "string",
        "rstring",
        "string-lf",
        "binary",
        "rbinary",
        "binary-lf",
    ];
    let unknown = |w: &str| {
        if http {
            format!("'only supports min-recv, [!]string', '[!]rstring', '[!]string-lf', '[!]status', '[!]rstatus', [!]hdr, [!]fhdr or comment but got '{w}' as argument.")
        } else {
            format!("'only supports min-recv, '[!]binary', '[!]string', '[!]rstring', '[!]string-lf''[!]rbinary', '[!]binary-lf' or comment but got '{w}' as argument.")
        }
    };
    let mut e = CheckExpect {
        loc: l.loc.clone(),
        ..CheckExpect::default()
    };
    let mut i = 2;
    while i < l.len() {
        let mut w = l.arg(i);
        match w {
            "min-recv" => {
                e.min_recv = Some(
                    l.arg(i + 1)
                        .parse()
                        .map_err(|_| "'min-recv' expects a integer as argument.".to_string())?,
                );
                i += 2;
                continue;
            }
            "comment" => {
                if l.arg(i + 1).is_empty() {
                    return Err("'comment' expects a string as argument.".into());
                }
                e.comment = Some(l.arg(i + 1).to_string());
                i += 2;
                continue;
            }
            "ok-status" | "error-status" | "tout-status" => {
                let st = reporting_status(w, l.arg(i + 1))?;
                match w {
                    "ok-status" => e.ok_status = Some(st),
                    "error-status" => e.error_status = Some(st),
                    _ => e.tout_status = Some(st),
                }
                i += 2;
                continue;
            }
            "on-success" | "on-error" | "status-code" => {
                let v = l.arg(i + 1);
                if v.is_empty() {
                    return Err(format!("'{w}' expects a string as argument."));
                }
                match w {
                    "on-success" => e.on_success = Some(v.to_string()),
                    "on-error" => e.on_error = Some(v.to_string()),
                    _ => e.status_code = Some(v.to_string()),
                }
                i += 2;
                continue;
            }
            _ => {}
        }
        if w.starts_with('!') {
            let bangs = w.len() - w.trim_start_matches('!').len();
            if bangs % 2 == 1 {
                e.negate = !e.negate;
            }
            w = w.trim_start_matches('!');
            if w.is_empty() {
                i += 1;
                if i >= l.len() {
                    return Err(unknown(""));
                }
                continue;
            }
        }
        let kind = if http && w == "body" {
            e.body_synonym = true;
            "string"
        } else {
            w
        };
        let known = if http {
            http_kinds.contains(&kind)
        } else {
            tcp_kinds.contains(&kind)
        };
        if !known {
            return Err(unknown(w));
        }
        if !e.kind.is_empty() {
            return Err("only on pattern expected.".into());
        }
        e.kind = kind.to_string();
        if kind == "hdr" || kind == "fhdr" {
            let (h, next) = parse_hdr_pattern(l, kind, i + 1)?;
            e.pattern = l.rest(i + 1).get(..next - i - 1).unwrap_or(&[]).join(" ");
            e.hdr = Some(h);
            i = next;
            continue;
        }
        let pat = l.arg(i + 1);
        if pat.is_empty() {
            return Err(format!("'{w}' expects a <pattern> as argument."));
        }
        e.pattern = pat.to_string();
        i += 2;
    }
    if e.kind.is_empty() {
        return Err(unknown(""));
    }
    if e.kind == "binary" {
        hex(&e.pattern)?;
    }
    if e.kind == "status" {
        status_list(&e.pattern)?;
    }
    Ok(e)
}

/// `status 200,201,300-310`: digits, commas and dashes only (HAProxy's message otherwise).
fn status_list(p: &str) -> Result<(), String> {
    match p
        .chars()
        .find(|c| !c.is_ascii_digit() && *c != ',' && *c != '-')
    {
        Some(c) => Err(format!(
            "invalid character '{c}' in the list of status codes."
        )),
        None => Ok(()),
    }
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{s}' is not an even-length hexadecimal string."));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or(""), 16).map_err(|e| e.to_string()))
        .collect()
}

/// `tcp-check <step> ...`.
pub fn tcp_check(_k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    begin_own_tcp(p);
    let loc: Loc = l.loc.clone();
    let need = |what: &str| -> Result<String, String> {
        let v = l.arg(2);
        if v.is_empty() {
            return Err(format!("'tcp-check {what}' expects a value."));
        }
        if !l.arg(3).is_empty() && (l.arg(3) != "comment" || l.len() != 5) {
            return Err(format!(
                "'tcp-check {what}' expects 'comment' but got '{}' as argument.",
                l.arg(3)
            ));
        }
        Ok(v.to_string())
    };
    if l.arg(1) == "connect" {
        let only_meta = p.settings.tcp_check.iter().all(|s| {
            matches!(
                s,
                TcpCheckStep::Comment { .. } | TcpCheckStep::SetVar { .. }
            )
        });
        if !only_meta
            && !p
                .settings
                .tcp_check
                .iter()
                .any(|s| matches!(s, TcpCheckStep::Connect(_)))
        {
            return Err("first step MUST also be a 'connect', optionally preceded by a 'set-var', an 'unset-var' or a 'comment', when there is a 'connect' step in the tcp-check ruleset.".into());
        }
    }
    let step = match l.arg(1) {
        "connect" => TcpCheckStep::Connect(parse_connect(l, 2, false)?),
        "send" => TcpCheckStep::Send {
            loc,
            data: need("send")?.into_bytes(),
        },
        "send-lf" | "send-binary-lf" => {
            let binary = l.arg(1) == "send-binary-lf";
            let fmt = need(l.arg(1))?;
            if !fmt.contains('%') {
                // A constant: checked (hex) and sent as is.
                let data = if binary { hex(&fmt)? } else { fmt.into_bytes() };
                TcpCheckStep::Send { loc, data }
            } else {
                TcpCheckStep::SendLf { loc, fmt, binary }
            }
        }
        "send-binary" => TcpCheckStep::SendBinary {
            loc,
            data: hex(&need("send-binary")?)?,
        },
        "expect" => TcpCheckStep::Expect(Box::new(parse_expect(l, false)?)),
        "comment" => TcpCheckStep::Comment {
            loc,
            text: l.rest(2).join(" "),
        },
        w @ ("set-var" | "set-var-fmt" | "unset-var" | "action") => {
            return Err(format!(
                "'tcp-check {w}' expects a variable name in parentheses: {w}(<scope>.<name>)."
            ))
        }
        w if w.starts_with("set-var(")
            || w.starts_with("set-var-fmt(")
            || w.starts_with("unset-var(") =>
        {
            let (var, expr, op) = var_rule(l, w)?;
            TcpCheckStep::SetVar { loc, var, expr, op }
        }
        w => return Err(format!("'tcp-check' : unknown step '{w}'.")),
    };
    p.settings.tcp_check.push(step);
    Ok(())
}
