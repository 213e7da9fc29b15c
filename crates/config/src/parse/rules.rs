//! Rule keywords: `use_backend`, `http-request`, `http-response`, `http-after-response`,
//! `tcp-request`/`tcp-response`, legacy `redirect`, `stick-table` and condition-only rules.
//! Actions are typed where the guide uses them; the rest are kept by name and arguments.
//!
//! Owns: the HTTP action tables ([`HTTP_REQUEST_ACTIONS`], [`HTTP_RESPONSE_ACTIONS`],
//! [`HTTP_AFTER_RESPONSE_ACTIONS`]),
//! [`TCP_ACTIONS`], stick-table parsing.

use crate::model::{
    HttpAction, HttpRule, Redirect, RedirectKind, Return, ServerRule, ServerRuleKind, StickKey,
    StickTable, StoreItem, TcpRequestRule, UseBackend,
};
use crate::registry::{nearest, Status};
use crate::source::Line;
use crate::units::{parse_size, parse_time, parse_u32};

use super::acl::{parse_condition, parse_sample};
use super::proxy::{directive, KwCx, ProxyDraft};
use super::R;

/// One registered rule action.
#[derive(Debug)]
pub struct Action {
    pub name: &'static str,
    pub status: Status,
    pub doc: &'static str,
}

const fn a(name: &'static str, status: Status, doc: &'static str) -> Action {
    Action { name, status, doc }
}

const S: Status = Status::Supported;
const STK: Status = Status::Supported;
const NO: Status = Status::Unsupported;
/// Rewrites in ringlb do not fail for want of buffer space: nothing for strict mode to relax.
const STRICT: Status = Status::Accepted {
    why: "ringlb's header and URI rewrites do not fail for lack of buffer room (tune.maxrewrite), the failures strict mode makes fatal or ignorable; a rewrite that breaks the message is always refused with 500",
};
/// No run queue: a ringlb shard serves streams as they become ready.
const NICE: Status = Status::Accepted {
    why: "ringlb has no stream run queue to reorder: every shard serves its streams as they become ready",
};
const PRIO: Status = Status::Accepted {
    why: "ringlb's server queues are first come, first served: there is no priority to change",
};

/// `http-request` actions.
pub static HTTP_REQUEST_ACTIONS: &[Action] = &[
    a("allow", S, "stop evaluating rules and let the request pass"),
    a("deny", S, "answer an error (deny_status, default 403)"),
    a(
        "tarpit",
        S,
        "hold the connection then answer an error (default 500)",
    ),
    a("auth", S, "ask for basic authentication [realm]"),
    a(
        "redirect",
        S,
        "redirect location|prefix|scheme <to> [code N]",
    ),
    a(
        "return",
        S,
        "answer directly: status, content-type, string/file, headers",
    ),
    a("set-header", S, "set a header to a log-format value"),
    a("add-header", S, "add a header with a log-format value"),
    a("del-header", S, "delete a header"),
    a("replace-header", S, "regex replace in a header"),
    a(
        "replace-value",
        S,
        "regex replace in comma-separated header values",
    ),
    a("set-path", S, "rewrite the path"),
    a("set-pathq", S, "rewrite path and query"),
    a("set-query", S, "rewrite the query string"),
    a("set-uri", S, "rewrite the URI"),
    a("set-method", S, "rewrite the method"),
    a("replace-path", S, "regex replace in the path"),
    a("replace-pathq", S, "regex replace in path and query"),
    a("replace-uri", S, "regex replace in the URI"),
    a("set-var", S, "set a variable from a sample expression"),
    a("set-var-fmt", S, "set a variable from a log-format string"),
    a("unset-var", S, "unset a variable"),
    a("set-log-level", S, "change the log level of this request"),
    a(
        "capture",
        S,
        "capture a sample into a slot (len N: new slot; id N: declared)",
    ),
    a("set-src", S, "override the source address"),
    a("set-src-port", S, "override the source port"),
    a("set-dst", S, "override the destination address"),
    a("set-dst-port", S, "override the destination port"),
    a("set-mark", S, "SO_MARK on the client socket (HTTP/1 and h2 clients; needs CAP_NET_ADMIN)"),
    a("set-tos", S, "IP_TOS / IPV6_TCLASS on the client socket (HTTP/1 and h2 clients)"),
    a("set-nice", NICE, "change the stream priority"),
    a("set-priority-class", PRIO, "queue priority class"),
    a("set-priority-offset", PRIO, "queue priority offset"),
    a("set-timeout", S, "server|tunnel timeout of this stream (HTTP/1 and h2 clients)"),
    a("silent-drop", S, "close without answering"),
    a("reject", S, "close the connection"),
    a("wait-for-body", S, "buffer the request body before the rules (HTTP/1 and h2 clients; the wait happens before the rule list, condition tested on the request as received)"),
    a(
        "wait-for-handshake",
        Status::Accepted {
            why: "ringlb does not accept TLS early data (0-RTT): every request already follows a complete handshake",
        },
        "wait for the TLS handshake (0-RTT)",
    ),
    a(
        "normalize-uri",
        S,
        "normalize the URI (path-merge-slashes, path-strip-dot[dot], percent-*, query-sort-by-name, fragment-*)",
    ),
    a("early-hint", S, "send a 103 Early Hints response (HTTP/1.1 clients; HEADERS frames on h2)"),
    a("disable-l7-retry", S, "no retry-on retries for this request"),
    a("strict-mode", STRICT, "toggle strict rewriting"),
    a(
        "track-sc0",
        STK,
        "track a key in stick counter 0 [table <t>]",
    ),
    a(
        "track-sc1",
        STK,
        "track a key in stick counter 1 [table <t>]",
    ),
    a(
        "track-sc2",
        STK,
        "track a key in stick counter 2 [table <t>]",
    ),
    a("sc-inc-gpc", STK, "increment a general purpose counter"),
    a("sc-inc-gpc0", STK, "increment gpc0"),
    a("sc-inc-gpc1", STK, "increment gpc1"),
    a("sc-set-gpt", STK, "set a general purpose tag"),
    a("sc-set-gpt0", STK, "set gpt0"),
    a(
        "use-service",
        S,
        "hand the request to a service (prometheus-exporter)",
    ),
    a("cache-use", S, "serve from a cache section (HAProxy's rules: GET/HEAD, HTTP/1.1+, no Authorization; Age on hits)"),
    a("do-resolve", NO, "resolve a name at run time"),
    a("add-acl", NO, "add an entry to an ACL file"),
    a("del-acl", NO, "delete an entry from an ACL file"),
    a("set-map", NO, "set a map entry"),
    a("del-map", NO, "delete a map entry"),
    a("send-spoe-group", NO, "SPOE messages"),
];

/// `http-response` / `http-after-response` actions.
pub static HTTP_RESPONSE_ACTIONS: &[Action] = &[
    a("allow", S, "stop evaluating rules"),
    a("deny", S, "replace the response by an error (default 502)"),
    a(
        "redirect",
        S,
        "redirect location|prefix|scheme <to> [code N]",
    ),
    a("return", S, "replace the response"),
    a("set-header", S, "set a response header"),
    a("add-header", S, "add a response header"),
    a("del-header", S, "delete a response header"),
    a("replace-header", S, "regex replace in a header"),
    a("replace-value", S, "regex replace in header values"),
    a("set-status", S, "change the status code [reason]"),
    a("set-var", S, "set a variable"),
    a("set-var-fmt", S, "set a variable from a log-format string"),
    a("unset-var", S, "unset a variable"),
    a("set-log-level", S, "change the log level"),
    a(
        "capture",
        S,
        "capture a sample into a slot (len N: new slot; id N: declared)",
    ),
    a(
        "set-mark",
        S,
        "SO_MARK on the client socket (HTTP/1 and h2 clients)",
    ),
    a(
        "set-tos",
        S,
        "IP_TOS / IPV6_TCLASS on the client socket (HTTP/1 and h2 clients)",
    ),
    a("set-nice", NICE, "change the stream priority"),
    a("silent-drop", S, "close without answering"),
    a("strict-mode", STRICT, "toggle strict rewriting"),
    a("track-sc0", STK, "track a key in stick counter 0"),
    a("track-sc1", STK, "track a key in stick counter 1"),
    a("track-sc2", STK, "track a key in stick counter 2"),
    a("sc-inc-gpc0", STK, "increment gpc0"),
    a("sc-inc-gpc1", STK, "increment gpc1"),
    a("sc-set-gpt0", STK, "set gpt0"),
    a("cache-store", S, "store in a cache section (200 with Content-Length within max-object-size; chunked responses are not stored)"),
    a("set-map", NO, "set a map entry"),
    a("del-map", NO, "delete a map entry"),
    a("add-acl", NO, "add an ACL file entry"),
    a("del-acl", NO, "delete an ACL file entry"),
    a("send-spoe-group", NO, "SPOE messages"),
];

/// `http-after-response` actions (HAProxy 2.6's list for that rule set).
pub static HTTP_AFTER_RESPONSE_ACTIONS: &[Action] = &[
    a("allow", S, "stop evaluating rules"),
    a("add-header", S, "add a header to every response"),
    a("set-header", S, "set a header on every response"),
    a("del-header", S, "delete a header"),
    a("replace-header", S, "regex replace in a header"),
    a("replace-value", S, "regex replace in header values"),
    a("set-status", S, "change the status code [reason]"),
    a("set-var", S, "set a variable"),
    a("set-var-fmt", S, "set a variable from a log-format string"),
    a("unset-var", S, "unset a variable"),
    a("capture", S, "capture a sample into a declared slot (id N)"),
    a("strict-mode", STRICT, "toggle strict rewriting"),
];

/// `tcp-request` / `tcp-response` actions (kept by name and arguments).
pub const TCP_ACTIONS: &[&str] = &[
    "accept",
    "reject",
    "expect-proxy",
    "expect-netscaler-cip",
    "capture",
    "track-sc0",
    "track-sc1",
    "track-sc2",
    "sc-inc-gpc",
    "sc-inc-gpc0",
    "sc-inc-gpc1",
    "sc-set-gpt",
    "sc-set-gpt0",
    "set-src",
    "set-src-port",
    "set-dst",
    "set-dst-port",
    "silent-drop",
    "set-var",
    "set-var-fmt",
    "unset-var",
    "do-resolve",
    "set-mark",
    "set-tos",
    "set-nice",
    "switch-mode",
    "use-service",
    "set-log-level",
    "set-priority-class",
    "set-priority-offset",
    "close",
];

/// Services for `use-service`.
pub const SERVICES: &[&str] = &["prometheus-exporter"];

/// Index of the first `if`/`unless` word at or after `from`, or the line length.
fn cond_start(l: &Line, from: usize) -> usize {
    (from..l.len())
        .find(|&i| matches!(l.arg(i), "if" | "unless"))
        .unwrap_or(l.len())
}

/// `use_backend <backend> [if|unless cond]`.
pub fn use_backend(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.len() < 2 {
        return Err("'use_backend' requires a backend name.".into());
    }
    if cond_start(l, 2) != 2 {
        return Err(format!(
            "unexpected argument '{}', expects 'if' or 'unless'.",
            l.arg(2)
        ));
    }
    warn_misplaced(k, p, l, Stage::UseServer);
    let cond = parse_condition(k, p, l, 2)?;
    let backend = l.arg(1).to_string();
    if backend.contains("%[") {
        check_logformat(&backend)
            .map_err(|e| format!("failed to parse use_backend rule '{backend}' : {e}"))?;
    }
    p.use_backends.push(UseBackend {
        loc: l.loc.clone(),
        dynamic: backend.contains("%["),
        backend,
        cond,
    });
    Ok(())
}

/// The stages a proxy runs its request rules in, in order (haproxy's
/// `warnif_misplaced_*`): a rule written after one of a later stage still runs before it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    TcpSession,
    TcpContent,
    Monitor,
    HttpRequest,
    Redirect,
    UseBackend,
    UseServer,
}

impl Stage {
    const ALL: [Stage; 7] = [
        Stage::TcpSession,
        Stage::TcpContent,
        Stage::Monitor,
        Stage::HttpRequest,
        Stage::Redirect,
        Stage::UseBackend,
        Stage::UseServer,
    ];

    /// How haproxy's warning names a rule of this stage.
    fn named(self) -> &'static str {
        match self {
            Stage::TcpSession => "a 'tcp-request session'",
            Stage::TcpContent => "a 'tcp-request content'",
            Stage::Monitor => "a 'monitor fail'",
            Stage::HttpRequest => "an 'http-request'",
            Stage::Redirect => "a 'redirect'",
            Stage::UseBackend => "a 'use_backend'",
            Stage::UseServer => "a 'use-server'",
        }
    }

    /// Whether the proxy already has a rule of this stage.
    fn present(self, p: &ProxyDraft) -> bool {
        match self {
            Stage::TcpSession => p
                .tcp_request
                .iter()
                .any(|r| r.phase == "tcp-request session"),
            Stage::TcpContent => p
                .tcp_request
                .iter()
                .any(|r| r.phase == "tcp-request content"),
            Stage::Monitor => !p.monitor_fail.is_empty(),
            Stage::HttpRequest => p.http_request.len() > p.legacy_redirects,
            Stage::Redirect => p.legacy_redirects > 0,
            Stage::UseBackend => !p.use_backends.is_empty(),
            Stage::UseServer => p
                .server_rules
                .iter()
                .any(|r| r.kind == ServerRuleKind::UseServer),
        }
    }
}

/// Warns, as haproxy does, when the line's rule follows a rule of a later stage (the first
/// such stage from `later` on).
fn warn_misplaced(k: &mut KwCx<'_>, p: &ProxyDraft, l: &Line, later: Stage) {
    if let Some(s) = Stage::ALL.iter().find(|s| **s >= later && s.present(p)) {
        let msg = format!(
            "a '{}' rule placed after {} rule will still be processed before.",
            l.arg(0),
            s.named()
        );
        k.cx.warn(&l.loc, k.name, msg);
    }
}

/// `http-request <action> [args] [if|unless cond]`.
pub fn http_request(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    warn_misplaced(k, p, l, Stage::Redirect);
    let mut rule = http_rule(k, p, l, HTTP_REQUEST_ACTIONS)?;
    capture_slot(p, &mut rule)?;
    // Before the old-style `redirect` rules, which haproxy runs last.
    let at = p.http_request.len().saturating_sub(p.legacy_redirects);
    p.http_request.insert(at, rule);
    Ok(())
}

/// `http-request capture <sample> len <n>` declares a request capture slot, numbered in
/// declaration order with `capture request header` and `declare capture request` (as
/// HAProxy): the rule is kept as `capture <sample> id <slot> len <n>`.
fn capture_slot(p: &mut ProxyDraft, rule: &mut HttpRule) -> R {
    let HttpAction::Other { name, args } = &mut rule.action else {
        return Ok(());
    };
    if name != "capture" || args.get(1).map(String::as_str) != Some("len") {
        return Ok(());
    }
    if !p.kind.is_frontend() {
        return Err(format!(
            "error detected in {} '{}' while parsing 'http-request capture' rule : proxy '{}' has no frontend capability.",
            p.kind.word(),
            p.name,
            p.name
        ));
    }
    let len = args
        .get(2)
        .ok_or("'http-request capture' expects 'len <length>'.")?
        .clone();
    let len_n = parse_u32(&len)?;
    let slot = p.captures.iter().filter(|c| c.what == "request").count();
    p.captures.push(crate::model::Capture {
        loc: rule.loc.clone(),
        what: "request".into(),
        name: String::new(),
        len: len_n,
    });
    args.truncate(1);
    args.extend(["id".into(), slot.to_string(), "len".into(), len]);
    Ok(())
}

/// `http-response <action> [args] [if|unless cond]`.
pub fn http_response(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let rule = http_rule(k, p, l, HTTP_RESPONSE_ACTIONS)?;
    p.http_response.push(rule);
    Ok(())
}

/// `http-after-response <action> ...`: applied to every response, the proxy's own included.
pub fn http_after_response(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let rule = http_rule(k, p, l, HTTP_AFTER_RESPONSE_ACTIONS)?;
    p.http_after_response.push(rule);
    Ok(())
}

fn http_rule(
    k: &mut KwCx<'_>,
    p: &ProxyDraft,
    l: &Line,
    table: &[Action],
) -> Result<HttpRule, String> {
    let word = l.arg(1);
    if word.is_empty() {
        return Err(format!("'{}' expects an action.", l.arg(0)));
    }
    let (name, paren) = match word.split_once('(') {
        Some((n, r)) => (
            n,
            Some(
                r.strip_suffix(')')
                    .ok_or_else(|| format!("missing ')' in '{word}'"))?,
            ),
        ),
        None => (word, None),
    };
    let act = table.iter().find(|x| x.name == name).ok_or_else(|| {
        let hint = nearest(name, table.iter().map(|x| x.name))
            .map(|n| format!(" Did you mean '{n}' maybe ?"))
            .unwrap_or_default();
        format!("'{} {name}' : unknown action.{hint}", l.arg(0))
    })?;
    if !k
        .cx
        .use_kw(&l.loc, &format!("{} {}", l.arg(0), act.name), &act.status)
    {
        return Err(format!(
            "HAProxy action '{} {name}' is not supported by ringlb yet",
            l.arg(0)
        ));
    }
    let end = cond_start(l, 2);
    let args: Vec<String> = (2..end).map(|i| l.arg(i).to_string()).collect();
    let action = typed_action(name, paren, &args)?;
    if let HttpAction::Return(r) = &action {
        if r.content_type.is_some() && r.body.is_none() {
            k.cx.warn(&l.loc, l.arg(0), format!("content-type '{}' ignored by the http reply because neither errorfile nor payload defined.", r.content_type.as_deref().unwrap_or("")));
        }
    }
    let cond = parse_condition(k, p, l, end)?;
    Ok(HttpRule {
        loc: l.loc.clone(),
        action,
        cond,
    })
}

/// HAProxy stops reading arguments at the first empty one, so `""` counts as missing.
fn exactly(name: &str, args: &[String], n: usize) -> R {
    let given = args.iter().position(String::is_empty).unwrap_or(args.len());
    if given != n || args.len() != n {
        return Err(format!("'{name}' expects exactly {n} argument(s)."));
    }
    Ok(())
}

fn arg(args: &[String], i: usize) -> String {
    args.get(i).cloned().unwrap_or_default()
}

fn typed_action(name: &str, paren: Option<&str>, args: &[String]) -> Result<HttpAction, String> {
    Ok(match name {
        "allow" => {
            exactly(name, args, 0)?;
            HttpAction::Allow
        }
        "deny" => HttpAction::Deny {
            status: reply_status(args)?,
            reply: parse_reply_payload(args)?,
        },
        "tarpit" => HttpAction::Tarpit {
            status: reply_status(args)?,
            reply: parse_reply_payload(args)?,
        },
        "auth" => HttpAction::Auth {
            realm: (arg(args, 0) == "realm").then(|| arg(args, 1)),
        },
        "redirect" => HttpAction::Redirect(parse_redirect(args)?),
        "return" => HttpAction::Return(parse_return(args)?),
        "set-header" | "add-header" => {
            exactly(name, args, 2)?;
            let (n, fmt) = (arg(args, 0), arg(args, 1));
            check_logformat(&fmt)?;
            if name == "set-header" {
                HttpAction::SetHeader { name: n, fmt }
            } else {
                HttpAction::AddHeader { name: n, fmt }
            }
        }
        "del-header" => {
            if args.is_empty() {
                return Err("'del-header' expects a header name.".into());
            }
            let method = match (args.get(1).map(String::as_str), args.get(2)) {
                (None, _) => None,
                (Some("-m"), Some(m))
                    if ["str", "beg", "end", "sub", "reg"].contains(&m.as_str()) =>
                {
                    Some(m.clone())
                }
                (Some("-m"), Some(m)) => {
                    return Err(format!(
                        "'del-header' : unknown matching method '{m}' (str, beg, end, sub or reg)."
                    ))
                }
                (Some(w), _) => {
                    return Err(format!(
                        "'del-header' : unexpected argument '{w}', expects '-m <method>'."
                    ))
                }
            };
            if args.len() > 3 {
                return Err("'del-header' expects at most 3 arguments.".into());
            }
            HttpAction::DelHeader {
                name: arg(args, 0),
                method,
            }
        }
        "replace-header" if args.len() == 3 => HttpAction::ReplaceHeader {
            name: arg(args, 0),
            regex: arg(args, 1),
            replace: arg(args, 2),
        },
        "replace-value" if args.len() == 3 => HttpAction::ReplaceValue {
            name: arg(args, 0),
            regex: arg(args, 1),
            replace: arg(args, 2),
        },
        "replace-header" | "replace-value" => {
            return Err(format!("'{name}' expects exactly 3 arguments."))
        }
        "set-path" => {
            exactly(name, args, 1)?;
            HttpAction::SetPath { fmt: arg(args, 0) }
        }
        "set-var" => {
            let var = paren
                .ok_or("'set-var' expects a variable name in parentheses")?
                .to_string();
            check_var(&var)?;
            if args.is_empty() {
                return Err("'set-var' expects a sample expression.".into());
            }
            HttpAction::SetVar {
                var,
                expr: args.join(" "),
            }
        }
        "track-sc0" | "track-sc1" | "track-sc2" => track(name, args)?,
        "use-service" => {
            exactly(name, args, 1)?;
            let svc = arg(args, 0);
            if !SERVICES.contains(&svc.as_str()) {
                return Err(format!("'use-service' : unknown service '{svc}'."));
            }
            HttpAction::UseService { name: svc }
        }
        _ => HttpAction::Other {
            name: paren
                .map(|p| format!("{name}({p})"))
                .unwrap_or_else(|| name.to_string()),
            args: args.to_vec(),
        },
    })
}

fn check_var(v: &str) -> R {
    let scope = v.split('.').next().unwrap_or("");
    if !["proc", "sess", "txn", "req", "res", "check"].contains(&scope) || !v.contains('.') {
        return Err(format!("invalid variable name '{v}': expects <scope>.<name> with scope proc, sess, txn, req, res or check."));
    }
    Ok(())
}

/// Light log-format check: every `%[` has its `]` (outside parentheses and quotes) and holds
/// a valid sample expression.
pub(crate) fn check_logformat(fmt: &str) -> R {
    let mut rest = fmt;
    while let Some(i) = rest.find("%[") {
        let after = rest.get(i + 2..).unwrap_or("");
        let end = closing_bracket(after)
            .ok_or_else(|| format!("missing ']' in log-format expression '{fmt}'"))?;
        parse_sample(after.get(..end).unwrap_or(""))
            .map_err(|e| format!("failed to parse sample expression in '{fmt}': {e}"))?;
        rest = after.get(end + 1..).unwrap_or("");
    }
    Ok(())
}

/// Byte index of the `]` closing a `%[` expression.
fn closing_bracket(s: &str) -> Option<usize> {
    let (mut depth, mut quote) = (0i32, None::<char>);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ']') if depth <= 0 => return Some(i),
            _ => {}
        }
    }
    None
}

fn reply_status(args: &[String]) -> Result<Option<u16>, String> {
    let mut status = None;
    let mut i = 0;
    while i < args.len() {
        match arg(args, i).as_str() {
            "deny_status" | "status" => {
                let v: u16 = arg(args, i + 1).parse().map_err(|_| format!("invalid status code '{}'", arg(args, i + 1)))?;
                if !(200..=599).contains(&v) {
                    return Err(format!("status code '{v}' out of range"));
                }
                status = Some(v);
                i += 2;
            }
            "content-type" | "errorfile" | "errorfiles" | "file" | "lf-file" | "string" | "lf-string" => i += 2,
            "hdr" => i += 3,
            "default-errorfiles" => i += 1,
            w => return Err(format!("unexpected keyword '{w}' (expects deny_status, content-type, string, file, hdr...).")),
        }
    }
    Ok(status)
}

/// The payload part of a `deny`/`tarpit` reply (status handled by [`reply_status`]).
fn parse_reply_payload(args: &[String]) -> Result<Return, String> {
    let rest: Vec<String> = {
        let mut out = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if arg(args, i) == "deny_status" {
                i += 2;
                continue;
            }
            out.push(arg(args, i));
            i += 1;
        }
        out
    };
    let mut r = parse_return(&rest)?;
    r.status = None;
    Ok(r)
}

fn parse_redirect(args: &[String]) -> Result<Redirect, String> {
    let mut target: Option<(RedirectKind, String)> = None;
    let mut r = Redirect {
        kind: RedirectKind::Location,
        to: String::new(),
        code: 302,
        options: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let (w, v) = (arg(args, i), arg(args, i + 1));
        let kind = match w.as_str() {
            "location" => Some(RedirectKind::Location),
            "prefix" => Some(RedirectKind::Prefix),
            "scheme" => Some(RedirectKind::Scheme),
            _ => None,
        };
        match (kind, w.as_str()) {
            (Some(k), _) => {
                if v.is_empty() {
                    return Err(format!("'redirect {w}' expects a target."));
                }
                target = Some((k, v));
                i += 2;
            }
            (None, "code") => {
                r.code = v
                    .parse()
                    .map_err(|_| "'code' expects a number".to_string())?;
                if ![301, 302, 303, 307, 308].contains(&r.code) {
                    return Err(format!(
                        "'redirect' supports codes 301, 302, 303, 307 and 308 (got {}).",
                        r.code
                    ));
                }
                i += 2;
            }
            (None, "set-cookie" | "clear-cookie") => {
                r.options.push(format!("{w} {v}"));
                i += 2;
            }
            (None, "drop-query" | "append-slash" | "ignore-empty") => {
                r.options.push(w);
                i += 1;
            }
            (None, _) => {
                return Err(format!(
                    "'redirect' expects 'location', 'prefix' or 'scheme', got '{w}'."
                ))
            }
        }
    }
    let (kind, to) = target
        .ok_or("'redirect' expects 'location', 'prefix' or 'scheme' followed by a target.")?;
    r.kind = kind;
    r.to = to;
    Ok(r)
}

fn parse_return(args: &[String]) -> Result<Return, String> {
    let mut r = Return::default();
    let mut i = 0;
    while i < args.len() {
        let (w, v) = (arg(args, i), arg(args, i + 1));
        match w.as_str() {
            "status" => {
                r.status = Some(
                    v.parse()
                        .map_err(|_| format!("invalid status code '{v}'"))?,
                );
                i += 2;
            }
            "content-type" => {
                r.content_type = Some(v);
                i += 2;
            }
            "errorfile" | "errorfiles" | "file" | "lf-file" | "string" | "lf-string" => {
                r.body = Some((w, v));
                i += 2;
            }
            "hdr" => {
                r.headers.push((v, arg(args, i + 2)));
                i += 3;
            }
            "default-errorfiles" => i += 1,
            _ => return Err(format!("'return' unexpected keyword '{w}'.")),
        }
    }
    Ok(r)
}

fn track(name: &str, args: &[String]) -> Result<HttpAction, String> {
    let slot = name
        .trim_start_matches("track-sc")
        .parse::<u8>()
        .map_err(|_| format!("invalid stick counter in '{name}'"))?;
    let key_src = arg(args, 0);
    if key_src.is_empty() {
        return Err(format!("'{name}' expects a key sample expression."));
    }
    let key = parse_sample(&key_src)
        .map_err(|e| format!("error detected while parsing '{name}' rule : {e}"))?;
    let table = match (arg(args, 1).as_str(), args.len()) {
        ("", _) => None,
        ("table", 3) => Some(arg(args, 2)),
        (w, _) => {
            return Err(format!(
                "'{name}' : unexpected argument '{w}', expects 'table <name>'."
            ))
        }
    };
    Ok(HttpAction::TrackSc { slot, key, table })
}

/// `tcp-request|tcp-response <phase> <action> [args] [cond]` and `... inspect-delay <time>`.
pub fn tcp_request(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let phase = l.arg(1).to_string();
    if l.arg(0) == "tcp-response" && !p.kind.is_backend() && p.kind.is_frontend() {
        return Err(format!(
            "tcp-response {phase} is only allowed in 'backend' sections or 'defaults' section with a name"
        ));
    }
    if phase == "inspect-delay" {
        parse_time(l.arg(2)).map_err(|e| format!("'{} inspect-delay' : {e}", l.arg(0)))?;
        p.tcp_request.push(TcpRequestRule {
            loc: l.loc.clone(),
            // The request's delay keeps its historical name; the response's is told apart.
            phase: if l.arg(0) == "tcp-response" {
                "tcp-response inspect-delay".to_string()
            } else {
                phase
            },
            action: String::new(),
            args: vec![l.arg(2).to_string()],
            cond: None,
        });
        return super::no_extra(l, 3);
    }
    let action = l.arg(2);
    let base = action.split('(').next().unwrap_or(action);
    if !TCP_ACTIONS.contains(&base) {
        let hint = nearest(base, TCP_ACTIONS.iter().copied())
            .map(|n| format!(" Did you mean '{n}' maybe ?"))
            .unwrap_or_default();
        return Err(format!(
            "'{} {phase}' : unknown action '{action}'.{hint}",
            l.arg(0)
        ));
    }
    if l.arg(0) == "tcp-request" {
        match phase.as_str() {
            "connection" => warn_misplaced(k, p, l, Stage::TcpSession),
            "session" => warn_misplaced(k, p, l, Stage::TcpContent),
            "content" => warn_misplaced(k, p, l, Stage::Monitor),
            _ => {}
        }
    }
    let end = cond_start(l, 3);
    let args: Vec<String> = (3..end).map(|i| l.arg(i).to_string()).collect();
    if base.starts_with("track-sc") {
        track(base, &args)?;
    }
    let cond = parse_condition(k, p, l, end)?;
    p.tcp_request.push(TcpRequestRule {
        loc: l.loc.clone(),
        phase: format!("{} {phase}", l.arg(0)),
        action: action.to_string(),
        args,
        cond,
    });
    Ok(())
}

/// Legacy `redirect location|prefix|scheme <to> [code N] [opts] [if|unless cond]`.
pub fn redirect(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let end = cond_start(l, 1);
    let args: Vec<String> = (1..end).map(|i| l.arg(i).to_string()).collect();
    warn_misplaced(k, p, l, Stage::UseBackend);
    let mut r = parse_redirect(&args)?;
    // The old keyword takes its location verbatim (no log-format): `%` stays a `%`.
    r.to = r.to.replace('%', "%%");
    let cond = parse_condition(k, p, l, end)?;
    p.http_request.push(HttpRule {
        loc: l.loc.clone(),
        action: HttpAction::Redirect(r),
        cond,
    });
    p.legacy_redirects += 1;
    Ok(())
}

/// Rules kept generically whose condition is still parsed and checked
/// (`use-server`, `stick on`, `monitor fail`, `force-persist`...).
pub fn generic_cond(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let kind = match k.name {
        "use-server" => Some(ServerRuleKind::UseServer),
        "stick on" => Some(ServerRuleKind::StickOn),
        "stick match" => Some(ServerRuleKind::StickMatch),
        "stick store-request" => Some(ServerRuleKind::StickStoreRequest),
        "stick store-response" => Some(ServerRuleKind::StickStoreResponse),
        _ => None,
    };
    if let Some(kind) = kind {
        return server_rule(k, p, l, kind);
    }
    let end = cond_start(l, k.kw_words);
    let cond = parse_condition(k, p, l, end)?;
    if end >= l.len() && !k.name.starts_with("stick ") && k.name != "use-server" {
        return Err(format!(
            "'{}' requires either 'if' or 'unless' followed by a condition.",
            k.name
        ));
    }
    if k.name == "monitor fail" {
        warn_misplaced(k, p, l, Stage::HttpRequest);
        if let Some(c) = cond {
            p.monitor_fail.push((l.loc.clone(), c));
        }
        return Ok(());
    }
    if let ("force-persist" | "ignore-persist", Some(cond)) = (k.name, cond) {
        p.persist_rules.push(crate::model::PersistRule {
            loc: l.loc.clone(),
            force: k.name == "force-persist",
            cond,
        });
        return Ok(());
    }
    p.stick_rules.push(directive(l, k.kw_words));
    Ok(())
}

/// `use-server <server> [cond]`, `stick <on|match|store-*> <pattern> [table <t>] [cond]`.
fn server_rule(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line, kind: ServerRuleKind) -> R {
    let first = k.kw_words;
    let end = cond_start(l, first);
    let cond = parse_condition(k, p, l, end)?;
    let arg = (first < end).then(|| l.arg(first).to_string());
    let Some(arg) = arg else {
        return Err(match kind {
            ServerRuleKind::UseServer => "'use-server' expects a server name.".into(),
            _ => "'stick' expects a fetch method.".into(),
        });
    };
    let mut table = None;
    let mut i = first + 1;
    while i < end {
        match (l.arg(i), kind) {
            ("table", k) if k != ServerRuleKind::UseServer && i + 1 < end => {
                table = Some(l.arg(i + 1).to_string());
                i += 2;
            }
            (other, _) => {
                return Err(format!(
                    "unexpected argument '{other}', expects {}'if' or 'unless'.",
                    if kind == ServerRuleKind::UseServer {
                        ""
                    } else {
                        "'table <name>', "
                    }
                ))
            }
        }
    }
    if kind != ServerRuleKind::UseServer {
        parse_sample(&arg).map_err(|e| format!("'stick': {e}"))?;
    }
    p.server_rules.push(ServerRule {
        loc: l.loc.clone(),
        kind,
        arg,
        table,
        cond,
    });
    Ok(())
}

const STORE_RATES: &[&str] = &[
    "gpc0_rate",
    "gpc1_rate",
    "conn_rate",
    "sess_rate",
    "http_req_rate",
    "http_err_rate",
    "http_fail_rate",
    "bytes_in_rate",
    "bytes_out_rate",
    "glitch_rate",
];
const STORE_COUNTS: &[&str] = &[
    "server_id",
    "server_key",
    "gpc0",
    "gpc1",
    "gpt0",
    "conn_cnt",
    "conn_cur",
    "sess_cnt",
    "http_req_cnt",
    "http_err_cnt",
    "http_fail_cnt",
    "bytes_in_cnt",
    "bytes_out_cnt",
];

/// Store types the parser knows but ringlb's stick tables do not implement, with a hint.
/// (`glitch_rate` is not a HAProxy 2.6 type at all.)
const STORE_UNSUPPORTED: &[(&str, &str)] = &[
    ("gpc", " (use gpc0 and gpc1)"),
    ("gpc_rate", " (use gpc0_rate and gpc1_rate)"),
    ("gpt", " (use gpt0)"),
    ("server_key", ""),
    ("glitch_rate", ""),
];

/// `stick-table type <t> [len N] size <n> [expire T] [nopurge] [peers P] [store ...]`.
pub fn stick_table(_: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if let Some(prev) = &p.stick_table {
        return Err(format!(
            "only one stick-table per proxy: {} '{}' already declares one at {}:{}. \
             Put each additional table in its own backend (e.g. 'backend per_path_rate' containing only the 'stick-table' line) \
             and reference it with 'http-request track-scN <key> table per_path_rate'.",
            p.kind.word(), p.name, prev.loc.file, prev.loc.line
        ));
    }
    p.stick_table = Some(parse_stick_table(l, 1)?);
    Ok(())
}

/// The words of a `stick-table` line from word `first` on (`table <name> ...` in a peers
/// section starts one word later).
pub(crate) fn parse_stick_table(l: &Line, first: usize) -> Result<StickTable, String> {
    let mut t = StickTable {
        loc: l.loc.clone(),
        key: StickKey::Ip,
        size: 0,
        expire: None,
        nopurge: false,
        peers: None,
        store: Vec::new(),
    };
    let mut len = None;
    let mut have_type = false;
    let mut i = first;
    while i < l.len() {
        let v = l.arg(i + 1);
        match l.arg(i) {
            "type" => {
                t.key = match v {
                    "ip" => StickKey::Ip,
                    "ipv6" => StickKey::Ipv6,
                    "integer" => StickKey::Integer,
                    "string" => StickKey::String { len: 32 },
                    "binary" => StickKey::Binary { len: 32 },
                    w => {
                        return Err(format!(
                        "'stick-table' : unknown type '{w}' (ip, ipv6, integer, string, binary)."
                    ))
                    }
                };
                have_type = true;
            }
            "len" => len = Some(parse_u32(v)?),
            "size" => t.size = parse_size(v)?,
            "expire" => t.expire = Some(parse_time(v)?),
            "peers" => t.peers = Some(v.to_string()),
            "srvkey" => {}
            "nopurge" => {
                t.nopurge = true;
                i += 1;
                continue;
            }
            "store" => t.store.extend(parse_store(v)?),
            w => return Err(format!("'stick-table' : unknown argument '{w}'.")),
        }
        i += 2;
    }
    if !have_type || t.size == 0 {
        return Err("'stick-table' : missing 'type' or 'size'.".into());
    }
    if let (Some(n), StickKey::String { len } | StickKey::Binary { len }) = (len, &mut t.key) {
        *len = n;
    }
    Ok(t)
}

fn parse_store(list: &str) -> Result<Vec<StoreItem>, String> {
    let mut out = Vec::new();
    // `store` with nothing after it stores nothing (haproxy accepts it).
    for item in list.split(',').filter(|i| !i.is_empty()) {
        let (name, period) = match item.split_once('(') {
            Some((n, r)) => (
                n,
                Some(
                    r.strip_suffix(')')
                        .ok_or_else(|| format!("missing ')' in '{item}'"))?,
                ),
            ),
            None => (item, None),
        };
        let rate = STORE_RATES.contains(&name) || name == "gpc_rate";
        let count = STORE_COUNTS.contains(&name) || name == "gpc" || name == "gpt";
        if !rate && !count {
            return Err(format!("'stick-table' : unknown data type '{name}'."));
        }
        // Types HAProxy 2.6 has that ringlb-stick does not store: an error, not a silent no-op.
        if let Some(alt) = STORE_UNSUPPORTED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, alt)| alt)
        {
            return Err(format!(
                "'stick-table' : data type '{name}' is not supported by ringlb{alt}."
            ));
        }
        let period = match (rate, period) {
            (true, Some(p)) => Some(parse_time(p.rsplit(',').next().unwrap_or(p))?),
            (true, None) => {
                return Err(format!(
                    "'stick-table' : data type '{name}' requires a period, e.g. {name}(10s)."
                ))
            }
            (false, _) => None,
        };
        out.push(StoreItem {
            name: name.to_string(),
            period,
        });
    }
    Ok(out)
}
