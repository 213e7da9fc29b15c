//! `http-request` / `http-response` rules compiled into actions, and the runner that applies
//! them in order to a [`Txn`] and returns a [`Verdict`]. Header and URI edits are applied as
//! they go, so a later rule sees an earlier `set-header` (as HAProxy).

use std::borrow::Cow;

use regex::bytes::Regex;
use ringlb_config::model::{HttpAction, HttpRule, Loc, Redirect, RedirectKind, Return};

use crate::acl::{cond_holds, AclSet, Compiler, Cond};
use crate::context::{Ctx, RuleHost, SampleSource, Txn};
use crate::conv::expand_backrefs;
use crate::error::CompileError;
use crate::expr::Expr;
use crate::logformat::LogFormat;
use crate::message::HttpMessage;
use crate::pattern::{str_match, MatchKind};
use crate::sample::Sample;

/// Syslog level names `set-log-level` takes (besides `silent`).
pub(crate) const LOG_LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A reply body as configured.
#[derive(Debug, Clone)]
pub enum ReplyBody {
    /// No payload: the engine answers with the proxy's errorfile for the status (deny/tarpit)
    /// or an empty body (return).
    None,
    Str(Box<[u8]>),
    Lf(LogFormat),
    /// A complete HTTP response (`errorfile`), sent as is.
    Raw(Box<[u8]>),
}

/// A configured reply (`deny`, `tarpit`, `return`).
#[derive(Debug, Clone)]
pub struct ReplySpec {
    pub status: u16,
    pub content_type: Option<Box<[u8]>>,
    pub body: ReplyBody,
    pub headers: Vec<(Box<[u8]>, LogFormat)>,
}

/// A rendered reply for the engine to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// Extra headers in order (content-type first when configured).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `None`: for `deny`/`tarpit`, send the proxy's errorfile (or HAProxy's default page)
    /// for `status`; for `return`, an empty body.
    pub body: Option<Vec<u8>>,
    /// A complete raw response (`errorfile`): send exactly these bytes.
    pub raw: Option<Vec<u8>>,
}

/// What the rules decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No final action: go on (backend selection, forwarding).
    Continue,
    /// `allow`: stop evaluating this rule list and go on.
    Allow,
    Deny(HttpReply),
    /// Hold the connection for `timeout tarpit`, then send the reply.
    Tarpit(HttpReply),
    Return(HttpReply),
    Redirect {
        code: u16,
        location: Vec<u8>,
        /// Full `Set-Cookie` value to add, if any.
        set_cookie: Option<Vec<u8>>,
    },
    /// Answer 401 with `WWW-Authenticate: Basic realm="..."`, or 407 with
    /// `Proxy-Authenticate` for a proxied request (`option http-use-proxy-header`).
    Auth {
        realm: String,
        proxy: bool,
    },
    UseService(String),
    /// `reject` / `silent-drop`: close without answering.
    Reject {
        silent: bool,
    },
}

impl Verdict {
    /// True when the verdict ends rule processing for the request.
    pub fn is_final(&self) -> bool {
        !matches!(self, Verdict::Continue | Verdict::Allow)
    }
}

/// How `del-header -m` compares names.
#[derive(Debug, Clone)]
pub enum NameMatch {
    Str(Box<[u8]>),
    Kind(MatchKind, Box<[u8]>),
    Reg(Regex),
}

impl NameMatch {
    fn matches(&self, n: &[u8]) -> bool {
        match self {
            NameMatch::Str(s) => n.eq_ignore_ascii_case(s),
            NameMatch::Kind(k, p) => str_match(*k, p, &n.to_ascii_lowercase(), true),
            NameMatch::Reg(r) => r.is_match(n),
        }
    }
}

/// A compiled action.
#[derive(Debug, Clone)]
pub enum Action {
    Allow,
    Deny(ReplySpec),
    Tarpit(ReplySpec),
    Return(ReplySpec),
    Auth {
        realm: Option<String>,
    },
    Redirect(RedirectRule),
    SetHeader {
        name: Box<[u8]>,
        value: LogFormat,
    },
    AddHeader {
        name: Box<[u8]>,
        value: LogFormat,
    },
    DelHeader(NameMatch),
    /// `replace-header` (whole value) / `replace-value` (each comma-separated element).
    ReplaceHeader {
        name: Box<[u8]>,
        re: Regex,
        fmt: LogFormat,
        per_value: bool,
    },
    SetPath(LogFormat),
    SetPathq(LogFormat),
    SetQuery(LogFormat),
    SetUri(LogFormat),
    SetMethod(LogFormat),
    /// `replace-path` / `replace-pathq` / `replace-uri`.
    ReplaceUri {
        part: UriPart,
        re: Regex,
        fmt: LogFormat,
    },
    SetStatus {
        status: u16,
        reason: Option<Box<[u8]>>,
    },
    SetVar {
        name: Box<str>,
        expr: Expr,
    },
    SetVarFmt {
        name: Box<str>,
        fmt: LogFormat,
    },
    UnsetVar(Box<str>),
    SetLogLevel(Box<str>),
    Capture {
        expr: Expr,
        len: usize,
        slot: usize,
    },
    TrackSc {
        slot: u8,
        key: Expr,
        table: Option<Box<str>>,
    },
    ScIncGpc {
        slot: u8,
        idx: u32,
    },
    ScSetGpt {
        slot: u8,
        idx: u32,
        value: Expr,
    },
    SetSrc(Expr),
    SetDst(Expr),
    SetSrcPort(Expr),
    SetDstPort(Expr),
    UseService(String),
    Reject {
        silent: bool,
    },
    /// `normalize-uri <normalizer>` (an invalid URI under `strict`: 400).
    NormalizeUri(crate::normalize::Normalizer),
    /// `wait-for-body time T [at-least N]`: the engine waits for the body before the rules
    /// run (see [`RuleList::body_wait`]), so reaching it has no further effect.
    WaitForBody(BodyWait),
    /// `set-timeout server|tunnel <time>|<expr>` (milliseconds).
    SetTimeout {
        tunnel: bool,
        value: TimeoutValue,
    },
    /// `disable-l7-retry`.
    DisableL7Retry,
    /// `set-mark <mark>` (SO_MARK on the client socket).
    SetMark(u32),
    /// `set-tos <tos>` (IP_TOS / IPV6_TCLASS on the client socket).
    SetTos(u8),
    /// `early-hint <name> <fmt>`: one header of the 103 sent before the final response.
    EarlyHint {
        name: Box<[u8]>,
        value: LogFormat,
    },
    /// `http-request cache-use <cache>` / `http-response cache-store <cache>`.
    CacheUse(Box<str>),
    CacheStore(Box<str>),
    /// Accepted actions with no effect in ringlb's model (`set-nice`, `strict-mode`,
    /// `wait-for-handshake`...).
    Nop,
}

/// How long `wait-for-body` / `option http-buffer-request` wait, and for how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyWait {
    /// Longest wait in milliseconds (`None`: the client timeout bounds it).
    pub time_ms: Option<u64>,
    /// Stop once this many body bytes arrived (0: the whole body or a full buffer).
    pub at_least: u64,
}

/// A `set-timeout` value: a constant or an expression giving milliseconds.
#[derive(Debug, Clone)]
pub enum TimeoutValue {
    Const(u64),
    Expr(Expr),
}

/// What an action asks of the engine beyond the message (connection and stream settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect<'a> {
    /// `set-timeout server|tunnel`: milliseconds, non-zero.
    SetTimeout {
        tunnel: bool,
        ms: u64,
    },
    DisableL7Retry,
    SetMark(u32),
    SetTos(u8),
    /// One header of a 103 Early Hints response; `last`: the response ends after it.
    EarlyHint {
        name: &'a [u8],
        value: Vec<u8>,
        last: bool,
    },
    /// `cache-use <cache>`: serve this request from the cache if it holds it.
    CacheUse(&'a str),
    /// `cache-store <cache>`: store this response in the cache if it may be.
    CacheStore(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriPart {
    Path,
    Pathq,
    Uri,
}

/// `redirect location|prefix|scheme ...`.
#[derive(Debug, Clone)]
pub struct RedirectRule {
    pub kind: RedirectKind,
    pub to: LogFormat,
    pub code: u16,
    pub drop_query: bool,
    pub append_slash: bool,
    pub ignore_empty: bool,
    /// `NAME=value; path=/;` or `NAME=; path=/; Max-Age=0;` (haproxy 2.6, recorded).
    pub cookie: Option<Box<[u8]>>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub loc: Loc,
    pub cond: Option<Cond>,
    pub action: Action,
}

/// An ordered rule list.
#[derive(Debug, Clone, Default)]
pub struct RuleList {
    pub rules: Vec<Rule>,
}

fn lf(c: &Compiler<'_>, s: &str, loc: &Loc, kw: &str) -> Result<LogFormat, CompileError> {
    let f = LogFormat::parse(s, c.env()).map_err(|e| CompileError::new(loc, kw, e))?;
    c.check_format(&f, loc, kw)?;
    Ok(f)
}

fn compile_reply(
    c: &Compiler<'_>,
    r: &Return,
    default_status: u16,
    loc: &Loc,
    kw: &str,
) -> Result<ReplySpec, CompileError> {
    let status = r.status.unwrap_or(default_status);
    let body = match &r.body {
        None => ReplyBody::None,
        Some((k, v)) => match k.as_str() {
            "string" => ReplyBody::Str(v.as_bytes().into()),
            "lf-string" => ReplyBody::Lf(lf(c, v, loc, kw)?),
            "file" | "lf-file" | "errorfile" => {
                let data = std::fs::read(v).map_err(|e| {
                    CompileError::new(loc, kw, format!("failed to open file '{v}' : {e}"))
                })?;
                match k.as_str() {
                    "file" => ReplyBody::Str(data.into()),
                    "errorfile" => ReplyBody::Raw(data.into()),
                    _ => ReplyBody::Lf(lf(c, &String::from_utf8_lossy(&data), loc, kw)?),
                }
            }
            other => {
                return Err(CompileError::new(
                    loc,
                    kw,
                    format!("'{other}' replies are not supported by ringlb yet"),
                ))
            }
        },
    };
    let headers = r
        .headers
        .iter()
        .map(|(n, v)| Ok((n.as_bytes().into(), lf(c, v, loc, kw)?)))
        .collect::<Result<_, CompileError>>()?;
    Ok(ReplySpec {
        status,
        content_type: r.content_type.as_ref().map(|t| t.as_bytes().into()),
        body,
        headers,
    })
}

fn compile_redirect(
    c: &Compiler<'_>,
    r: &Redirect,
    loc: &Loc,
    kw: &str,
) -> Result<RedirectRule, CompileError> {
    let mut rr = RedirectRule {
        kind: r.kind,
        to: lf(c, &r.to, loc, kw)?,
        code: r.code,
        drop_query: false,
        append_slash: false,
        ignore_empty: false,
        cookie: None,
    };
    for o in &r.options {
        let (w, v) = o.split_once(' ').unwrap_or((o, ""));
        match w {
            "drop-query" => rr.drop_query = true,
            "append-slash" => rr.append_slash = true,
            "ignore-empty" => rr.ignore_empty = true,
            "set-cookie" => rr.cookie = Some(format!("{v}; path=/;").into_bytes().into()),
            "clear-cookie" => {
                let name = v.split('=').next().unwrap_or(v);
                rr.cookie = Some(format!("{name}=; path=/; Max-Age=0;").into_bytes().into())
            }
            _ => {}
        }
    }
    Ok(rr)
}

fn regex(s: &str, loc: &Loc, kw: &str) -> Result<Regex, CompileError> {
    Regex::new(s).map_err(|e| CompileError::new(loc, kw, format!("regex '{s}' is invalid: {e}")))
}

fn arg<'a>(args: &'a [String], i: usize, loc: &Loc, kw: &str) -> Result<&'a str, CompileError> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| CompileError::new(loc, kw, "missing argument"))
}

/// Compiles actions the config model keeps by name and arguments (`HttpAction::Other`).
fn compile_other(
    c: &mut Compiler<'_>,
    name: &str,
    args: &[String],
    loc: &Loc,
    kw: &str,
    slots: &mut usize,
) -> Result<Action, CompileError> {
    let (base, paren) = match name.split_once('(') {
        Some((b, p)) => (b, Some(p.trim_end_matches(')'))),
        None => (name, None),
    };
    let env = c.env();
    let e = |m: String| CompileError::new(loc, kw, m);
    Ok(match base {
        "replace-value" => Action::ReplaceHeader {
            name: arg(args, 0, loc, kw)?.as_bytes().into(),
            re: regex(arg(args, 1, loc, kw)?, loc, kw)?,
            fmt: lf(c, arg(args, 2, loc, kw)?, loc, kw)?,
            per_value: true,
        },
        "set-pathq" => Action::SetPathq(lf(c, arg(args, 0, loc, kw)?, loc, kw)?),
        "set-query" => Action::SetQuery(lf(c, arg(args, 0, loc, kw)?, loc, kw)?),
        "set-uri" => Action::SetUri(lf(c, arg(args, 0, loc, kw)?, loc, kw)?),
        "set-method" => Action::SetMethod(lf(c, arg(args, 0, loc, kw)?, loc, kw)?),
        "replace-path" | "replace-pathq" | "replace-uri" => Action::ReplaceUri {
            part: match base {
                "replace-path" => UriPart::Path,
                "replace-pathq" => UriPart::Pathq,
                _ => UriPart::Uri,
            },
            re: regex(arg(args, 0, loc, kw)?, loc, kw)?,
            fmt: lf(c, arg(args, 1, loc, kw)?, loc, kw)?,
        },
        "set-status" => {
            let status: u16 = arg(args, 0, loc, kw)?
                .parse()
                .ok()
                .filter(|s| (100..=999).contains(s))
                .ok_or_else(|| e("expects an integer status code between 100 and 999".into()))?;
            let reason = match (args.get(1).map(String::as_str), args.get(2)) {
                (Some("reason"), Some(r)) => Some(r.as_bytes().into()),
                (None, _) => None,
                _ => return Err(e("expects 'reason <string>' after the status".into())),
            };
            Action::SetStatus { status, reason }
        }
        "set-var-fmt" => {
            let n = paren.ok_or_else(|| e("expects a variable name in parentheses".into()))?;
            crate::conv::check_settable_var(n).map_err(e)?;
            Action::SetVarFmt {
                name: n.into(),
                fmt: lf(c, &args.join(" "), loc, kw)?,
            }
        }
        "unset-var" => {
            let n = paren.ok_or_else(|| e("expects a variable name in parentheses".into()))?;
            crate::conv::check_settable_var(n).map_err(e)?;
            Action::UnsetVar(n.into())
        }
        "set-log-level" => {
            let l = arg(args, 0, loc, kw)?;
            if l != "silent" && !LOG_LEVELS.contains(&l) {
                return Err(e(format!("unknown log level '{l}'")));
            }
            Action::SetLogLevel(l.into())
        }
        "capture" => {
            let expr = Expr::parse(arg(args, 0, loc, kw)?, env).map_err(e)?;
            let (len, slot) = match (args.get(1).map(String::as_str), args.get(2)) {
                (Some("len"), Some(n)) => {
                    let len = n.parse().map_err(|_| e(format!("invalid length '{n}'")))?;
                    let s = *slots;
                    *slots += 1;
                    (len, s)
                }
                // (`... id N len L`: a `len` rule whose slot the config numbered.)
                (Some("id"), Some(n)) => (
                    match (args.get(3).map(String::as_str), args.get(4)) {
                        (Some("len"), Some(l)) => {
                            l.parse().map_err(|_| e(format!("invalid length '{l}'")))?
                        }
                        _ => usize::MAX,
                    },
                    n.parse()
                        .map_err(|_| e(format!("invalid capture id '{n}'")))?,
                ),
                _ => return Err(e("expects 'len <length>' or 'id <idx>'".into())),
            };
            Action::Capture { expr, len, slot }
        }
        "sc-inc-gpc0" | "sc-inc-gpc1" | "sc-inc-gpc" => {
            let (idx, slot) = if base == "sc-inc-gpc" {
                let p = paren.unwrap_or("");
                let (i, s) = p
                    .split_once(',')
                    .ok_or_else(|| e("expects (<idx>,<sc-id>)".into()))?;
                (
                    i.parse().map_err(|_| e("bad index".into()))?,
                    s.parse().map_err(|_| e("bad stick counter".into()))?,
                )
            } else {
                (
                    u32::from(base.ends_with('1')),
                    paren
                        .unwrap_or("")
                        .parse()
                        .map_err(|_| e("expects (<sc-id>)".into()))?,
                )
            };
            Action::ScIncGpc { slot, idx }
        }
        "sc-set-gpt0" | "sc-set-gpt" => {
            let p = paren.unwrap_or("");
            let (idx, slot) = match p.split_once(',') {
                Some((i, s)) => (
                    i.parse().map_err(|_| e("bad index".into()))?,
                    s.parse().map_err(|_| e("bad stick counter".into()))?,
                ),
                None => (0, p.parse().map_err(|_| e("expects (<sc-id>)".into()))?),
            };
            let value = Expr::parse(&args.join(" "), env).map_err(e)?;
            Action::ScSetGpt { slot, idx, value }
        }
        "set-src" | "set-dst" => {
            let ex = Expr::parse(arg(args, 0, loc, kw)?, env).map_err(e)?;
            if base == "set-src" {
                Action::SetSrc(ex)
            } else {
                Action::SetDst(ex)
            }
        }
        "set-src-port" | "set-dst-port" => {
            let ex = Expr::parse(arg(args, 0, loc, kw)?, env).map_err(e)?;
            if base == "set-src-port" {
                Action::SetSrcPort(ex)
            } else {
                Action::SetDstPort(ex)
            }
        }
        "reject" => Action::Reject { silent: false },
        "normalize-uri" => {
            Action::NormalizeUri(crate::normalize::Normalizer::parse(args).map_err(e)?)
        }
        "silent-drop" => Action::Reject { silent: true },
        "wait-for-body" => Action::WaitForBody(parse_body_wait(args).map_err(e)?),
        "set-timeout" => {
            let tunnel = match arg(args, 0, loc, kw)? {
                "server" => false,
                "tunnel" => true,
                // As haproxy 2.6 (`client` came in 2.8).
                other => {
                    return Err(e(format!(
                        "'set-timeout' expects 'server'/'tunnel' (got '{other}')"
                    )))
                }
            };
            let v = args.get(1..).unwrap_or(&[]).join(" ");
            if v.is_empty() {
                return Err(e("'set-timeout' expects a timeout value".into()));
            }
            let value = match ringlb_config::units::parse_time(&v) {
                Ok(d) => TimeoutValue::Const(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                Err(_) => TimeoutValue::Expr(Expr::parse(&v, env).map_err(e)?),
            };
            Action::SetTimeout { tunnel, value }
        }
        "disable-l7-retry" => Action::DisableL7Retry,
        "set-mark" => Action::SetMark(
            parse_num(arg(args, 0, loc, kw)?)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| e("expects a 32-bit mark (decimal or 0x hex)".into()))?,
        ),
        "set-tos" => Action::SetTos(
            parse_num(arg(args, 0, loc, kw)?)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| e("expects an 8-bit TOS value (decimal or 0x hex)".into()))?,
        ),
        "early-hint" => Action::EarlyHint {
            name: arg(args, 0, loc, kw)?.as_bytes().into(),
            value: lf(c, arg(args, 1, loc, kw)?, loc, kw)?,
        },
        "set-nice"
        | "set-priority-class"
        | "set-priority-offset"
        | "strict-mode"
        | "wait-for-handshake" => Action::Nop,
        "cache-use" => Action::CacheUse(arg(args, 0, loc, kw)?.into()),
        "cache-store" => Action::CacheStore(arg(args, 0, loc, kw)?.into()),
        other => {
            return Err(e(format!(
                "action '{other}' is not supported by the ringlb rules engine yet"
            )))
        }
    })
}

/// Compiles an `http-request` (`response == false`) or `http-response` rule list.
pub fn compile_http_rules(
    c: &mut Compiler<'_>,
    rules: &[HttpRule],
    response: bool,
) -> Result<RuleList, CompileError> {
    let kw = if response {
        "http-response"
    } else {
        "http-request"
    };
    compile_rules_as(c, rules, response, kw)
}

/// [`compile_http_rules`] with the keyword errors name (`http-after-response`).
pub fn compile_rules_as(
    c: &mut Compiler<'_>,
    rules: &[HttpRule],
    response: bool,
    kw0: &str,
) -> Result<RuleList, CompileError> {
    let mut slots = 0;
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        let loc = &r.loc;
        let kw = kw0;
        let env = c.env();
        let e = |m: String| CompileError::new(loc, kw, m);
        let action = match &r.action {
            HttpAction::Allow => Action::Allow,
            HttpAction::Deny { status, reply } => Action::Deny(compile_reply(
                c,
                &Return {
                    status: *status,
                    ..reply.clone()
                },
                if response { 502 } else { 403 },
                loc,
                kw,
            )?),
            HttpAction::Tarpit { status, reply } => Action::Tarpit(compile_reply(
                c,
                &Return {
                    status: *status,
                    ..reply.clone()
                },
                500,
                loc,
                kw,
            )?),
            HttpAction::Return(ret) => Action::Return(compile_reply(c, ret, 200, loc, kw)?),
            HttpAction::Auth { realm } => Action::Auth {
                realm: realm.clone(),
            },
            HttpAction::Redirect(rd) => Action::Redirect(compile_redirect(c, rd, loc, kw)?),
            HttpAction::SetHeader { name, fmt } => Action::SetHeader {
                name: name.as_bytes().into(),
                value: lf(c, fmt, loc, kw)?,
            },
            HttpAction::AddHeader { name, fmt } => Action::AddHeader {
                name: name.as_bytes().into(),
                value: lf(c, fmt, loc, kw)?,
            },
            HttpAction::DelHeader { name, method } => Action::DelHeader(match method.as_deref() {
                None | Some("str") => NameMatch::Str(name.as_bytes().into()),
                Some("reg") => NameMatch::Reg(
                    regex::bytes::RegexBuilder::new(name)
                        .case_insensitive(true)
                        .build()
                        .map_err(|err| e(format!("regex '{name}' is invalid: {err}")))?,
                ),
                Some(m) => NameMatch::Kind(
                    MatchKind::from_suffix(m)
                        .ok_or_else(|| e(format!("unknown matching method '{m}'")))?,
                    name.to_ascii_lowercase().into_bytes().into(),
                ),
            }),
            HttpAction::ReplaceValue {
                name,
                regex: re,
                replace,
            } => Action::ReplaceHeader {
                name: name.as_bytes().into(),
                re: regex(re, loc, kw)?,
                fmt: lf(c, replace, loc, kw)?,
                per_value: true,
            },
            HttpAction::ReplaceHeader {
                name,
                regex: re,
                replace,
            } => Action::ReplaceHeader {
                name: name.as_bytes().into(),
                re: regex(re, loc, kw)?,
                fmt: lf(c, replace, loc, kw)?,
                per_value: false,
            },
            HttpAction::SetPath { fmt } => Action::SetPath(lf(c, fmt, loc, kw)?),
            HttpAction::SetVar { var, expr } => {
                crate::conv::check_settable_var(var).map_err(e)?;
                let expr = Expr::parse(expr, env).map_err(e)?;
                if !c.can_read(&expr) {
                    return Err(e(format!(
                        "fetch method 'set-var({var})' extracts information from '{}', none of which is available here.",
                        expr.needs().what()
                    )));
                }
                Action::SetVar {
                    name: var.as_str().into(),
                    expr,
                }
            }
            HttpAction::TrackSc { slot, key, table } => Action::TrackSc {
                slot: *slot,
                key: Expr::compile(key, env).map_err(e)?,
                table: table.as_deref().map(Into::into),
            },
            HttpAction::UseService { name } => Action::UseService(name.clone()),
            HttpAction::Other { name, args } => compile_other(c, name, args, loc, kw, &mut slots)?,
        };
        let cond = c.opt_condition(r.cond.as_ref(), loc, kw)?;
        out.push(Rule {
            loc: loc.clone(),
            cond,
            action,
        });
    }
    Ok(RuleList { rules: out })
}

fn render_reply(spec: &ReplySpec, cx: Ctx<'_, '_>) -> HttpReply {
    let mut headers = Vec::with_capacity(spec.headers.len() + 1);
    let body = match &spec.body {
        ReplyBody::None => None,
        ReplyBody::Str(s) => Some(s.to_vec()),
        ReplyBody::Lf(f) => Some(f.render_http_vec(cx)),
        ReplyBody::Raw(r) => {
            return HttpReply {
                status: spec.status,
                headers,
                body: None,
                raw: Some(r.to_vec()),
            }
        }
    };
    // HAProxy ignores content-type without a payload.
    if let (Some(ct), Some(_)) = (&spec.content_type, &body) {
        headers.push((b"content-type".to_vec(), ct.to_vec()));
    }
    for (n, v) in &spec.headers {
        headers.push((n.to_vec(), v.render_http_vec(cx)));
    }
    HttpReply {
        status: spec.status,
        headers,
        body,
        raw: None,
    }
}

/// Builds the `Location` of a redirect (`None` = `ignore-empty` with an empty target).
fn redirect_location(r: &RedirectRule, cx: Ctx<'_, '_>) -> Option<Vec<u8>> {
    let to = r.to.render_http_vec(cx);
    if to.is_empty() && r.ignore_empty {
        return None;
    }
    let req = &cx.txn.req;
    let path_part = |out: &mut Vec<u8>| {
        let path = req.path();
        out.extend_from_slice(path);
        if r.append_slash && !path.ends_with(b"/") {
            out.push(b'/');
        }
        if !r.drop_query {
            if let Some(q) = req.query() {
                out.push(b'?');
                out.extend_from_slice(q);
            }
        }
    };
    Some(match r.kind {
        RedirectKind::Location => to,
        RedirectKind::Prefix => {
            let mut out = Vec::with_capacity(to.len() + req.uri.len());
            // A prefix of "/" is not doubled (HAProxy).
            if to.as_slice() != b"/" {
                out.extend_from_slice(&to);
            }
            path_part(&mut out);
            out
        }
        RedirectKind::Scheme => {
            let mut out = to;
            out.extend_from_slice(b"://");
            if let Some(h) = crate::fetch::host_of(req) {
                out.extend_from_slice(h);
            }
            path_part(&mut out);
            out
        }
    })
}

/// HAProxy's `exp_replace`: when the regex matches (anywhere), the whole value becomes the
/// replacement with `\N` back-references expanded.
fn replace_in(re: &Regex, fmt_value: &[u8], input: &[u8]) -> Option<Vec<u8>> {
    let caps = re.captures(input)?;
    let mut out = Vec::with_capacity(input.len() + fmt_value.len());
    expand_backrefs(fmt_value, &caps, &mut out);
    Some(out)
}

impl RuleList {
    /// `auth` without `realm` uses the name of the proxy holding the rule (HAProxy).
    pub fn default_realm(&mut self, proxy: &str) {
        for r in &mut self.rules {
            if let Action::Auth {
                realm: realm @ None,
            } = &mut r.action
            {
                *realm = Some(proxy.to_string());
            }
        }
    }

    /// The first `wait-for-body` rule whose condition holds on the request as received: the
    /// engine waits for the body before running the rules (rules do not suspend), so a
    /// condition on what an earlier rule of the list set sees it unset.
    pub fn body_wait(
        &self,
        acls: &AclSet,
        src: &dyn SampleSource,
        txn: &Txn<'_>,
    ) -> Option<BodyWait> {
        self.rules.iter().find_map(|r| match &r.action {
            Action::WaitForBody(w) if cond_holds(r.cond.as_ref(), acls, Ctx::new(src, txn)) => {
                Some(*w)
            }
            _ => None,
        })
    }

    /// Runs the rules in order; `response` selects which message header edits apply to.
    pub fn run(
        &self,
        acls: &AclSet,
        host: &mut dyn RuleHost,
        txn: &mut Txn<'_>,
        response: bool,
    ) -> Verdict {
        let saved = txn.in_response;
        txn.in_response = response;
        let v = self.run_inner(acls, host, txn, response);
        txn.in_response = saved;
        v
    }

    fn run_inner(
        &self,
        acls: &AclSet,
        host: &mut dyn RuleHost,
        txn: &mut Txn<'_>,
        response: bool,
    ) -> Verdict {
        for (i, rule) in self.rules.iter().enumerate() {
            let holds = {
                let src: &dyn SampleSource = &*host;
                cond_holds(rule.cond.as_ref(), acls, Ctx::new(src, txn))
            };
            if !holds {
                continue;
            }
            if let Action::EarlyHint { name, value } = &rule.action {
                // haproxy 2.6 ends the 103 at this rule unless the next one is an
                // unconditional `early-hint` (recorded: conditional hints go one per 103).
                let last = !self.rules.get(i + 1).is_some_and(|n| {
                    n.cond.is_none() && matches!(n.action, Action::EarlyHint { .. })
                });
                let value = value.render_http_vec(Ctx::new(&*host as &dyn SampleSource, &*txn));
                host.effect(Effect::EarlyHint { name, value, last });
                continue;
            }
            let v = apply(&rule.action, host, txn, response);
            if !matches!(v, Verdict::Continue) {
                return v;
            }
        }
        Verdict::Continue
    }
}

fn msg<'t, 'a>(txn: &'t mut Txn<'a>, response: bool) -> Option<&'t mut HttpMessage<'a>> {
    if response {
        txn.res.as_mut()
    } else {
        Some(&mut txn.req)
    }
}

/// Applies one action whose condition held.
fn apply(a: &Action, host: &mut dyn RuleHost, txn: &mut Txn<'_>, response: bool) -> Verdict {
    // Values are rendered under a shared borrow, then the message is edited.
    macro_rules! cx {
        () => {
            Ctx::new(&*host as &dyn SampleSource, &*txn)
        };
    }
    match a {
        Action::Allow => return Verdict::Allow,
        Action::Deny(r) => return Verdict::Deny(render_reply(r, cx!())),
        Action::Tarpit(r) => return Verdict::Tarpit(render_reply(r, cx!())),
        Action::Return(r) => return Verdict::Return(render_reply(r, cx!())),
        Action::Auth { realm } => {
            return Verdict::Auth {
                realm: realm.clone().unwrap_or_default(),
                proxy: txn.proxy_auth,
            };
        }
        Action::Redirect(r) => {
            if let Some(location) = redirect_location(r, cx!()) {
                return Verdict::Redirect {
                    code: r.code,
                    location,
                    set_cookie: r.cookie.as_ref().map(|c| c.to_vec()),
                };
            }
        }
        Action::UseService(s) => return Verdict::UseService(s.clone()),
        Action::Reject { silent } => return Verdict::Reject { silent: *silent },
        Action::SetHeader { name, value } | Action::AddHeader { name, value } => {
            // Allocates the new value (it outlives the borrow of the request).
            let v = value.render_http_vec(cx!());
            if let Some(m) = msg(txn, response) {
                if matches!(a, Action::SetHeader { .. }) {
                    m.set_header(name, v);
                } else {
                    m.add_header(name, v);
                }
            }
        }
        Action::DelHeader(nm) => {
            if let Some(m) = msg(txn, response) {
                let before = m.headers.len();
                m.headers.retain(|(n, _)| !nm.matches(n));
                if m.headers.len() != before {
                    m.modified = true;
                }
            }
        }
        Action::ReplaceHeader {
            name,
            re,
            fmt,
            per_value,
        } => {
            let f = fmt.render_http_vec(cx!());
            if let Some(m) = msg(txn, response) {
                let mut changed = false;
                for (n, v) in m.headers.iter_mut() {
                    if !n.eq_ignore_ascii_case(name) {
                        continue;
                    }
                    let new = if *per_value {
                        let mut out = Vec::with_capacity(v.len());
                        let mut any = false;
                        for (i, part) in v.split(|&c| c == b',').enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            let lead = part.len() - part.trim_ascii_start().len();
                            out.extend_from_slice(part.get(..lead).unwrap_or(b""));
                            let t = part.trim_ascii();
                            match replace_in(re, &f, t) {
                                Some(r) => {
                                    out.extend_from_slice(&r);
                                    any = true;
                                }
                                None => out.extend_from_slice(t),
                            }
                        }
                        any.then_some(out)
                    } else {
                        replace_in(re, &f, v)
                    };
                    if let Some(new) = new {
                        *v = Cow::Owned(new);
                        changed = true;
                    }
                }
                m.modified |= changed;
            }
        }
        Action::SetPath(f) => {
            let v = f.render_http_vec(cx!());
            txn.req.set_path(&v);
        }
        Action::SetPathq(f) => {
            let v = f.render_http_vec(cx!());
            txn.req.set_pathq(&v);
        }
        Action::SetQuery(f) => {
            let v = f.render_http_vec(cx!());
            txn.req.set_query(&v);
        }
        Action::SetUri(f) => {
            let v = f.render_http_vec(cx!());
            txn.req.set_uri(v);
        }
        Action::SetMethod(f) => {
            let v = f.render_http_vec(cx!());
            txn.req.set_method(v);
        }
        Action::ReplaceUri { part, re, fmt } => {
            let f = fmt.render_http_vec(cx!());
            let input = match part {
                UriPart::Path => txn.req.path().to_vec(),
                UriPart::Pathq => txn.req.pathq().to_vec(),
                UriPart::Uri => txn.req.uri.to_vec(),
            };
            if let Some(new) = replace_in(re, &f, &input) {
                match part {
                    UriPart::Path => txn.req.set_path(&new),
                    UriPart::Pathq => txn.req.set_pathq(&new),
                    UriPart::Uri => txn.req.set_uri(new),
                }
            }
        }
        Action::SetStatus { status, reason } => {
            if let Some(m) = txn.res.as_mut() {
                m.set_status(*status, reason.as_ref().map(|r| r.to_vec()));
            }
        }
        Action::SetVar { name, expr } => {
            let v = expr.eval(cx!()).map(Sample::into_owned);
            if let Some(v) = v {
                set_var(host, txn, name, v);
            }
        }
        Action::SetVarFmt { name, fmt } => {
            let v = fmt.render_http_vec(cx!());
            set_var(host, txn, name, Sample::owned(v));
        }
        Action::UnsetVar(name) => {
            if name.starts_with("proc.") || name.starts_with("sess.") {
                host.unset_outer_var(name);
            } else {
                txn.vars.unset(name);
            }
        }
        Action::SetLogLevel(l) => host.set_log_level(l),
        Action::Capture { expr, len, slot } => {
            let v = expr.eval(cx!()).map(|s| s.to_bytes().into_owned());
            if let Some(mut v) = v {
                if *len != usize::MAX {
                    v.truncate(*len);
                }
                host.capture(response, *slot, &v);
            }
        }
        Action::TrackSc { slot, key, table } => {
            let k = key.eval(cx!()).map(Sample::into_owned);
            if let Some(k) = k {
                host.track_sc(*slot, &k, table.as_deref());
            }
        }
        Action::ScIncGpc { slot, idx } => host.sc_inc_gpc(*slot, *idx),
        Action::ScSetGpt { slot, idx, value } => {
            let v = value.eval(cx!()).and_then(|s| s.to_int());
            if let Some(v) = v {
                host.sc_set_gpt(*slot, *idx, v);
            }
        }
        Action::SetSrc(e) | Action::SetDst(e) => {
            let ip = e.eval(cx!()).and_then(|s| s.to_ip());
            if let Some(ip) = ip {
                if matches!(a, Action::SetSrc(_)) {
                    host.set_src(ip);
                } else {
                    host.set_dst(ip);
                }
            }
        }
        Action::SetSrcPort(e) | Action::SetDstPort(e) => {
            // Out-of-range integers are ignored, as haproxy ignores a failed conversion.
            let port = e
                .eval(cx!())
                .and_then(|s| s.to_int())
                .and_then(|p| u16::try_from(p).ok());
            if let Some(p) = port {
                if matches!(a, Action::SetSrcPort(_)) {
                    host.set_src_port(p);
                } else {
                    host.set_dst_port(p);
                }
            }
        }
        Action::NormalizeUri(n) => match n.apply(txn.req.pathq()) {
            Ok(Some(v)) => txn.req.set_pathq(&v),
            Ok(None) => {}
            Err(crate::normalize::InvalidUri) => {
                return Verdict::Deny(HttpReply {
                    status: 400,
                    headers: Vec::new(),
                    body: None,
                    raw: None,
                })
            }
        },
        Action::WaitForBody(_) | Action::Nop => {}
        Action::SetTimeout { tunnel, value } => {
            let ms = match value {
                TimeoutValue::Const(ms) => Some(*ms),
                TimeoutValue::Expr(x) => match x.eval(cx!()) {
                    Some(Sample::Int(i)) => u64::try_from(i).ok(),
                    _ => None,
                },
            };
            // A null timeout is ignored (haproxy: "must be non-null").
            if let Some(ms) = ms.filter(|&ms| ms > 0) {
                host.effect(Effect::SetTimeout {
                    tunnel: *tunnel,
                    ms,
                });
            }
        }
        Action::DisableL7Retry => host.effect(Effect::DisableL7Retry),
        Action::SetMark(m) => host.effect(Effect::SetMark(*m)),
        Action::SetTos(t) => host.effect(Effect::SetTos(*t)),
        Action::CacheUse(name) => host.effect(Effect::CacheUse(name)),
        Action::CacheStore(name) => host.effect(Effect::CacheStore(name)),
        Action::EarlyHint { name, value } => {
            let value = value.render_http_vec(cx!());
            host.effect(Effect::EarlyHint {
                name,
                value,
                last: true,
            });
        }
    }
    Verdict::Continue
}

/// `time <time> [at-least <bytes>]` of `wait-for-body`.
fn parse_body_wait(args: &[String]) -> Result<BodyWait, String> {
    let mut w = BodyWait {
        time_ms: None,
        at_least: 0,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| format!("'{k}' expects an argument"))?;
        match k.as_str() {
            "time" => {
                let d = ringlb_config::units::parse_time(v)?;
                w.time_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            }
            "at-least" => w.at_least = ringlb_config::units::parse_size(v)?,
            other => return Err(format!("expects 'time' or 'at-least' but got '{other}'")),
        }
    }
    if w.time_ms.is_none() {
        return Err("'time' is mandatory".into());
    }
    Ok(w)
}

/// A decimal or `0x` hexadecimal number (`set-mark`, `set-tos`).
fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

pub(crate) fn set_var(host: &mut dyn RuleHost, txn: &mut Txn<'_>, name: &str, v: Sample<'static>) {
    if name.starts_with("proc.") || name.starts_with("sess.") {
        host.set_outer_var(name, v);
    } else {
        txn.vars.set(name, v);
    }
}
