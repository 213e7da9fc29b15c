//! Everything rule-related of one proxy, compiled once at startup: its ACL arena,
//! `http-request`/`http-response` lists, `use_backend` switching rules, `tcp-request` rules,
//! `monitor-uri`, `unique-id-format` and `log-format`.

use std::borrow::Cow;

use ringlb_config::model::{
    Backend, Condition, Config, Frontend, Loc, TcpRequestRule, UseBackend,
    Userlist as ModelUserlist,
};

use crate::acl::{cond_holds, AclSet, Compiler, Cond};
use crate::auth::Userlist;
use crate::context::{Ctx, RuleHost, SampleSource, Txn};
use crate::error::CompileError;
use crate::expr::Expr;
use crate::fetch::{FetchEnv, Stage};
use crate::logformat::LogFormat;
use crate::message::HttpMessage;
use crate::rules::{compile_http_rules, compile_rules_as, RuleList, Verdict};
use crate::sample::Sample;

/// The compiled rules of every proxy of a configuration.
#[derive(Debug, Clone, Default)]
pub struct ConfigRules {
    /// In `Config::frontends` order.
    pub frontends: Vec<ProxyRules>,
    /// In `Config::backends` order.
    pub backends: Vec<ProxyRules>,
}

impl ConfigRules {
    /// Compiles every frontend and backend, collecting all errors (for `-c`).
    pub fn compile(cfg: &Config) -> Result<ConfigRules, Vec<CompileError>> {
        let mut errors = Vec::new();
        let mut out = ConfigRules::default();
        for fe in &cfg.frontends {
            match ProxyRules::frontend(fe, cfg) {
                Ok(r) => out.frontends.push(r),
                Err(e) => errors.push(e),
            }
        }
        for be in &cfg.backends {
            match ProxyRules::backend(be, cfg) {
                Ok(r) => out.backends.push(r),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    pub fn frontend(&self, name: &str) -> Option<&ProxyRules> {
        self.frontends.iter().find(|r| r.name == name)
    }

    pub fn backend(&self, name: &str) -> Option<&ProxyRules> {
        self.backends.iter().find(|r| r.name == name)
    }
}

/// Resolves `http_auth(<userlist>)` against the config's userlists.
#[derive(Debug, Clone, Copy)]
pub struct Userlists<'a>(pub &'a [ModelUserlist]);

impl FetchEnv for Userlists<'_> {
    fn userlist(&self, name: &str) -> Option<Userlist> {
        self.0
            .iter()
            .find(|u| u.name == name)
            .map(Userlist::from_model)
    }
}

/// Where a `use_backend` rule sends the request.
#[derive(Debug, Clone)]
pub enum BackendTarget {
    Static(String),
    /// `use_backend %[req.hdr(host),lower,map(...)]`: the name is rendered per request.
    Dynamic(LogFormat),
}

#[derive(Debug, Clone)]
pub struct UseBackendRule {
    pub loc: Loc,
    pub cond: Option<Cond>,
    pub target: BackendTarget,
}

/// `use-server <server> if <cond>`.
#[derive(Debug, Clone)]
pub struct UseServerRule {
    pub loc: Loc,
    pub server: String,
    pub cond: Option<Cond>,
}

/// When a `stick` rule acts: `match` looks the key up before the server is picked, `store`
/// remembers the server that took the request (`stick on` does both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickWhen {
    On,
    Match,
    StoreRequest,
    StoreResponse,
}

impl StickWhen {
    pub fn matches(self) -> bool {
        matches!(self, StickWhen::On | StickWhen::Match)
    }
    pub fn stores_request(self) -> bool {
        matches!(self, StickWhen::On | StickWhen::StoreRequest)
    }
}

/// `stick on|match|store-request|store-response <pattern> [table <t>] [if|unless cond]`.
#[derive(Debug, Clone)]
pub struct StickRule {
    pub loc: Loc,
    pub when: StickWhen,
    pub key: Expr,
    /// `None`: the backend's own table.
    pub table: Option<Box<str>>,
    pub cond: Option<Cond>,
}

/// `tcp-request connection|session|content` and `tcp-response content` phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpPhase {
    Connection,
    Session,
    Content,
    ResponseContent,
}

#[derive(Debug, Clone)]
pub enum TcpAction {
    Accept,
    Reject,
    SilentDrop,
    /// `tcp-response content close`: end the server connection, keep what it sent.
    Close,
    ExpectProxy,
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
    SetVar {
        name: Box<str>,
        expr: Expr,
    },
    SetVarFmt {
        name: Box<str>,
        fmt: LogFormat,
    },
    UnsetVar(Box<str>),
    /// `tcp-request content set-src|set-dst|set-src-port|set-dst-port`.
    SetAddr {
        dst: bool,
        port: bool,
        expr: Expr,
    },
    SetLogLevel(Box<str>),
    /// `use-service` in TCP mode.
    UseService(String),
}

#[derive(Debug, Clone)]
pub struct TcpRule {
    pub loc: Loc,
    pub phase: TcpPhase,
    pub action: TcpAction,
    pub cond: Option<Cond>,
}

/// Outcome of a TCP rule phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpVerdict {
    Continue,
    Accept,
    Reject {
        silent: bool,
    },
    /// `tcp-response content close`: forward what the server sent, then close.
    Close,
    ExpectProxy,
    UseService(String),
    /// A condition read a request payload that may still grow (`Txn::payload_final` false):
    /// wait for more data (or the inspect-delay's end), then resume at rule `resume`.
    Wait {
        resume: usize,
    },
}

/// Compiled rules of one proxy (a frontend, a backend, or each half of a `listen`).
#[derive(Debug, Clone, Default)]
pub struct ProxyRules {
    pub name: String,
    /// Conditions that can never match (an ACL reading what its rule cannot see), with
    /// haproxy's warning for each.
    pub warnings: Vec<CompileError>,
    /// haproxy's post-parse warnings about the proxy, whose text names the place itself
    /// ([`Compiler::take_proxy_warnings`]).
    pub proxy_warnings: Vec<CompileError>,
    pub acls: AclSet,
    pub http_request: RuleList,
    pub http_response: RuleList,
    /// `http-after-response`: run on every response, the proxy's own replies included.
    pub http_after_response: RuleList,
    pub use_backends: Vec<UseBackendRule>,
    pub default_backend: Option<String>,
    pub use_servers: Vec<UseServerRule>,
    pub stick: Vec<StickRule>,
    pub tcp: Vec<TcpRule>,
    /// `tcp-request inspect-delay`, milliseconds.
    pub inspect_delay_ms: Option<u64>,
    /// `tcp-response inspect-delay`, milliseconds.
    pub res_inspect_delay_ms: Option<u64>,
    pub monitor_uri: Option<Vec<u8>>,
    /// `monitor fail` conditions.
    pub monitor_fail: Vec<Cond>,
    pub unique_id_format: Option<LogFormat>,
    pub log_format: Option<LogFormat>,
    /// The key `balance hash <expr>` or `balance rdp-cookie[(name)]` hashes.
    pub balance_key: Option<Expr>,
    /// `force-persist` / `ignore-persist`, in order.
    pub persist: Vec<PersistRule>,
}

/// `force-persist if <cond>` (`force`) or `ignore-persist if <cond>`.
#[derive(Debug, Clone)]
pub struct PersistRule {
    pub loc: Loc,
    pub force: bool,
    pub cond: Cond,
}

/// What the persistence rules decided for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// `force-persist`: a cookie or `use-server` may name a down server.
    Force,
    /// `ignore-persist`: the persistence cookie is not followed.
    Ignore,
}

fn tcp_rule(c: &mut Compiler<'_>, r: &TcpRequestRule) -> Result<Option<TcpRule>, CompileError> {
    let kw = r.phase.as_str();
    let loc = &r.loc;
    let e = |m: String| CompileError::new(loc, kw, m);
    let phase = match r.phase.as_str() {
        "inspect-delay" | "tcp-response inspect-delay" => return Ok(None),
        "tcp-request connection" => TcpPhase::Connection,
        "tcp-request session" => TcpPhase::Session,
        "tcp-request content" => TcpPhase::Content,
        "tcp-response content" => TcpPhase::ResponseContent,
        other => return Err(e(format!("unknown rule set '{other}'"))),
    };
    let (base, paren) = match r.action.split_once('(') {
        Some((b, p)) => (b, Some(p.trim_end_matches(')'))),
        None => (r.action.as_str(), None),
    };
    let env = c.env();
    let arg0 = || {
        r.args
            .first()
            .map(String::as_str)
            .ok_or_else(|| e(format!("'{base}' expects an argument")))
    };
    let action = match base {
        "accept" => TcpAction::Accept,
        "reject" => TcpAction::Reject,
        "close" if phase == TcpPhase::ResponseContent => TcpAction::Close,
        "silent-drop" | "close" => TcpAction::SilentDrop,
        "expect-proxy" => TcpAction::ExpectProxy,
        "track-sc0" | "track-sc1" | "track-sc2" => TcpAction::TrackSc {
            slot: base.as_bytes().last().map_or(0, |d| d - b'0'),
            key: Expr::parse(arg0()?, env).map_err(e)?,
            table: match (r.args.get(1).map(String::as_str), r.args.get(2)) {
                (Some("table"), Some(t)) => Some(t.as_str().into()),
                _ => None,
            },
        },
        "sc-inc-gpc0" | "sc-inc-gpc1" => TcpAction::ScIncGpc {
            slot: paren
                .unwrap_or("0")
                .parse()
                .map_err(|_| e("bad stick counter".into()))?,
            idx: u32::from(base.ends_with('1')),
        },
        "sc-inc-gpc" | "sc-set-gpt" | "sc-set-gpt0" => {
            // `sc-inc-gpc(<idx>,<sc>)`, `sc-set-gpt(<idx>,<sc>) <expr>`, `sc-set-gpt0(<sc>) <expr>`.
            let p = paren.unwrap_or("");
            let (idx, slot) = match p.split_once(',') {
                Some((i, s)) => (
                    i.parse().map_err(|_| e("bad index".into()))?,
                    s.parse().map_err(|_| e("bad stick counter".into()))?,
                ),
                None if base == "sc-set-gpt0" => {
                    (0, p.parse().map_err(|_| e("expects (<sc-id>)".into()))?)
                }
                None => return Err(e(format!("'{base}' expects (<idx>,<sc-id>)"))),
            };
            if base == "sc-inc-gpc" {
                TcpAction::ScIncGpc { slot, idx }
            } else {
                TcpAction::ScSetGpt {
                    slot,
                    idx,
                    value: Expr::parse(&r.args.join(" "), env).map_err(e)?,
                }
            }
        }
        "set-var-fmt" => {
            let n = paren.ok_or_else(|| e("'set-var-fmt' expects a variable name".into()))?;
            crate::conv::check_settable_var(n).map_err(e)?;
            let fmt = LogFormat::parse(&r.args.join(" "), env).map_err(e)?;
            c.check_format(&fmt, loc, kw)?;
            TcpAction::SetVarFmt {
                name: n.into(),
                fmt,
            }
        }
        "set-var" => {
            let n = paren.ok_or_else(|| e("'set-var' expects a variable name".into()))?;
            crate::conv::check_settable_var(n).map_err(e)?;
            let expr = Expr::parse(&r.args.join(" "), env).map_err(e)?;
            if !c.can_read(&expr) {
                return Err(e(format!(
                    "fetch method 'set-var({n})' extracts information from '{}', none of which is available here",
                    expr.needs().what()
                )));
            }
            TcpAction::SetVar {
                name: n.into(),
                expr,
            }
        }
        "unset-var" => {
            let n = paren.ok_or_else(|| e("'unset-var' expects a variable name".into()))?;
            crate::conv::check_settable_var(n).map_err(e)?;
            TcpAction::UnsetVar(n.into())
        }
        "use-service" => TcpAction::UseService(arg0()?.to_string()),
        // `tcp-request connection|session|content`: the connection's addresses from then on.
        "set-src" | "set-dst" | "set-src-port" | "set-dst-port"
            if phase != TcpPhase::ResponseContent =>
        {
            TcpAction::SetAddr {
                dst: base.starts_with("set-dst"),
                port: base.ends_with("-port"),
                expr: Expr::parse(arg0()?, env).map_err(e)?,
            }
        }
        "set-log-level" if matches!(phase, TcpPhase::Content | TcpPhase::ResponseContent) => {
            let l = arg0()?;
            if l != "silent" && !crate::rules::LOG_LEVELS.contains(&l) {
                return Err(e(format!("unknown log level '{l}'")));
            }
            TcpAction::SetLogLevel(l.into())
        }
        // Refused rather than accepted without effect (the engine does not do them yet):
        // `capture`, `set-src`/`set-dst` in `tcp-response`, `set-log-level` outside
        // `content`, `set-mark`,
        // `set-tos`, `set-nice`, `switch-mode`, `set-priority-*`, `expect-netscaler-cip`,
        // `do-resolve`.
        other => {
            return Err(e(format!(
                "action '{other}' is not supported by the ringlb rules engine yet"
            )))
        }
    };
    let cond = c.opt_condition(r.cond.as_ref(), loc, kw)?;
    Ok(Some(TcpRule {
        loc: loc.clone(),
        phase,
        action,
        cond,
    }))
}

/// `use-server` and `stick` rules of a backend.
fn server_rules(
    c: &mut Compiler<'_>,
    rules: &[ringlb_config::model::ServerRule],
) -> Result<(Vec<UseServerRule>, Vec<StickRule>), CompileError> {
    use ringlb_config::model::ServerRuleKind as K;
    let mut use_servers = Vec::new();
    let mut stick = Vec::new();
    for r in rules {
        let kw = r.kind.keyword();
        let cond = c.opt_condition(r.cond.as_ref(), &r.loc, kw)?;
        let when = match r.kind {
            K::UseServer => {
                use_servers.push(UseServerRule {
                    loc: r.loc.clone(),
                    server: r.arg.clone(),
                    cond,
                });
                continue;
            }
            K::StickOn => StickWhen::On,
            K::StickMatch => StickWhen::Match,
            K::StickStoreRequest => StickWhen::StoreRequest,
            K::StickStoreResponse => StickWhen::StoreResponse,
        };
        let key = Expr::parse(&r.arg, c.env()).map_err(|e| CompileError::new(&r.loc, kw, e))?;
        stick.push(StickRule {
            loc: r.loc.clone(),
            when,
            key,
            table: r.table.as_deref().map(Into::into),
            cond,
        });
    }
    Ok((use_servers, stick))
}

fn inspect_delay(rules: &[TcpRequestRule], phase: &str) -> Option<u64> {
    rules
        .iter()
        .rev()
        .filter(|r| r.phase == phase)
        .filter_map(|r| r.args.first())
        .filter_map(|a| ringlb_config::units::parse_time(a).ok())
        .map(|d| d.as_millis() as u64)
        .next()
}

/// Compiles one `use_backend` rule.
pub fn compile_use_backend(
    c: &mut Compiler<'_>,
    u: &UseBackend,
) -> Result<UseBackendRule, CompileError> {
    let target = if u.dynamic {
        BackendTarget::Dynamic(
            LogFormat::parse(&u.backend, c.env())
                .map_err(|e| CompileError::new(&u.loc, "use_backend", e))?,
        )
    } else {
        BackendTarget::Static(u.backend.clone())
    };
    Ok(UseBackendRule {
        loc: u.loc.clone(),
        cond: c.opt_condition(u.cond.as_ref(), &u.loc, "use_backend")?,
        target,
    })
}

/// Compiles one `use-server` rule.
pub fn compile_use_server(
    c: &mut Compiler<'_>,
    loc: &Loc,
    server: &str,
    cond: Option<&Condition>,
) -> Result<UseServerRule, CompileError> {
    Ok(UseServerRule {
        loc: loc.clone(),
        server: server.to_string(),
        cond: c.opt_condition(cond, loc, "use-server")?,
    })
}

/// The rule kind whose conditions are compiled next, named as haproxy names it.
fn context(side: &str, stage: Stage, rule: &str) -> crate::acl::RuleContext {
    crate::acl::RuleContext {
        stage,
        label: format!("{side} {rule}"),
        directive: None,
    }
}

/// The context of a `tcp-request`/`tcp-response` rule set (`None`: not checked, as the
/// backend half of a `listen`, checked with its frontend half).
fn tcp_context(side: Option<&str>, phase: &str) -> Option<crate::acl::RuleContext> {
    let (stage, directive) = match phase {
        "tcp-request connection" => (Stage::TcpConnection, "tcp-request connection"),
        "tcp-request session" => (Stage::TcpSession, "tcp-request session"),
        "tcp-request content" => (Stage::RequestContent, "tcp-request content"),
        "tcp-response content" => (Stage::ResponseContent, "tcp-response content"),
        _ => return None,
    };
    // haproxy names a `listen` section's response rules after its backend half.
    let side = if stage == Stage::ResponseContent {
        side.map(|_| "backend")
    } else {
        side
    }?;
    Some(crate::acl::RuleContext {
        stage,
        label: format!("{side} {directive} rule"),
        directive: Some(directive),
    })
}

/// Compiles a proxy's `tcp-request`/`tcp-response` rules, each in its stage.
fn tcp_rules(
    c: &mut Compiler<'_>,
    rules: &[TcpRequestRule],
    side: Option<&str>,
) -> Result<Vec<TcpRule>, CompileError> {
    let mut out = Vec::new();
    for r in rules {
        c.set_context(tcp_context(side, r.phase.as_str()));
        out.extend(tcp_rule(c, r)?);
    }
    c.set_context(None);
    Ok(out)
}

/// haproxy's check of a proxy's log-format strings where they are evaluated: errors for
/// fetches that cannot read their data there, warnings for layer-6 fetches in HTTP strings.
/// Gives the compiled `unique-id-format` and `log-format` (the other two are compiled with the
/// log targets that use them).
fn check_formats(
    fe: &Frontend,
    env: &dyn FetchEnv,
    warnings: &mut Vec<CompileError>,
) -> Result<[Option<LogFormat>; 2], CompileError> {
    let formats = [
        (
            &fe.unique_id_format,
            &fe.format_locs.unique_id_format,
            "unique-id-format",
            Stage::UniqueId,
        ),
        (
            &fe.log_format,
            &fe.format_locs.log_format,
            "log-format",
            Stage::Log,
        ),
        (
            &fe.log_format_sd,
            &fe.format_locs.log_format_sd,
            "log-format-sd",
            Stage::Log,
        ),
        (
            &fe.error_log_format,
            &fe.format_locs.error_log_format,
            "error-log-format",
            Stage::Log,
        ),
    ];
    let mut compiled = [None, None];
    for (i, (text, at, kw, stage)) in formats.into_iter().enumerate() {
        let Some(text) = text else { continue };
        let loc = at.as_ref().unwrap_or(&fe.loc);
        let f = LogFormat::parse(text, env).map_err(|e| CompileError::new(loc, kw, e))?;
        let warning = f
            .check_stage(stage)
            .map_err(|e| CompileError::new(loc, kw, e))?;
        warnings.extend(warning.map(|w| CompileError::new(loc, kw, w)));
        if let Some(slot) = compiled.get_mut(i) {
            *slot = Some(f);
        }
    }
    Ok(compiled)
}

impl ProxyRules {
    /// Compiles a frontend's rules.
    pub fn frontend(fe: &Frontend, cfg: &Config) -> Result<ProxyRules, CompileError> {
        let env = Userlists(&cfg.userlists);
        let mut c = Compiler::new(&env);
        c.set_http_proxy((fe.mode == ringlb_config::model::Mode::Http).then_some(&*fe.name));
        c.add_acls(&fe.acls)?;
        // haproxy names a `listen` section's response rules after its backend half.
        let resp_side = if cfg.backend(&fe.name).is_some() {
            "backend"
        } else {
            "frontend"
        };
        c.set_context(Some(context(
            "frontend",
            Stage::HttpRequest,
            "http-request header rule",
        )));
        let mut http_request = compile_http_rules(&mut c, &fe.http_request, false)?;
        http_request.default_realm(&fe.name);
        // As haproxy: server/tunnel timeouts belong to backends (a `listen` has both halves).
        if cfg.backend(&fe.name).is_none() {
            if let Some(r) = http_request
                .rules
                .iter()
                .find(|r| matches!(r.action, crate::Action::SetTimeout { .. }))
            {
                return Err(CompileError::new(
                    &r.loc,
                    "http-request",
                    format!(
                        "'set-timeout' rule: proxy '{}' has no backend capability",
                        fe.name
                    ),
                ));
            }
        }
        c.set_context(Some(context(
            resp_side,
            Stage::HttpResponse,
            "http-response header rule",
        )));
        let http_response = compile_http_rules(&mut c, &fe.http_response, true)?;
        let http_after_response =
            compile_rules_as(&mut c, &fe.http_after_response, true, "http-after-response")?;
        c.set_context(Some(context(
            "frontend",
            Stage::RequestContent,
            "use-backend rule",
        )));
        let use_backends = fe
            .use_backends
            .iter()
            .map(|u| compile_use_backend(&mut c, u))
            .collect::<Result<_, _>>()?;
        let tcp = tcp_rules(&mut c, &fe.tcp_request, Some("frontend"))?;
        let mut monitor_fail = Vec::new();
        for (loc, cond) in &fe.monitor_fail {
            monitor_fail.extend(c.opt_condition(Some(cond), loc, "monitor fail")?);
        }
        let mut warnings = c.take_warnings();
        let [unique_id_format, log_format] = check_formats(fe, &env, &mut warnings)?;
        Ok(ProxyRules {
            warnings,
            proxy_warnings: c.take_proxy_warnings(),
            name: fe.name.clone(),
            unique_id_format,
            log_format,
            acls: c.finish(),
            http_request,
            http_response,
            http_after_response,
            use_backends,
            default_backend: fe.default_backend.clone(),
            use_servers: Vec::new(),
            stick: Vec::new(),
            tcp,
            inspect_delay_ms: inspect_delay(&fe.tcp_request, "inspect-delay"),
            res_inspect_delay_ms: None,
            monitor_uri: fe.monitor_uri.as_ref().map(|m| m.as_bytes().to_vec()),
            monitor_fail,
            balance_key: None,
            persist: Vec::new(),
        })
    }

    /// Compiles a backend's rules.
    pub fn backend(be: &Backend, cfg: &Config) -> Result<ProxyRules, CompileError> {
        let env = Userlists(&cfg.userlists);
        let mut c = Compiler::new(&env);
        // A `listen` section's rules are checked once, with its frontend half.
        let listen = cfg.frontend(&be.name).is_some();
        let http = be.mode == ringlb_config::model::Mode::Http;
        c.set_http_proxy((http && !listen).then_some(&*be.name));
        c.add_acls(&be.acls)?;
        let ctx = |stage, rule| (!listen).then(|| context("backend", stage, rule));
        c.set_context(ctx(Stage::HttpRequest, "http-request header rule"));
        let mut http_request = compile_http_rules(&mut c, &be.http_request, false)?;
        http_request.default_realm(&be.name);
        c.set_context(ctx(Stage::HttpResponse, "http-response header rule"));
        let http_response = compile_http_rules(&mut c, &be.http_response, true)?;
        let http_after_response =
            compile_rules_as(&mut c, &be.http_after_response, true, "http-after-response")?;
        let tcp = tcp_rules(&mut c, &be.tcp_request, (!listen).then_some("backend"))?;
        // The HTTP engine reads responses as messages, not through the TCP gate.
        if let Some(rule) = tcp
            .iter()
            .find(|r| r.phase == TcpPhase::ResponseContent && http)
        {
            return Err(CompileError::new(
                &rule.loc,
                "tcp-response content",
                "not supported by ringlb in 'mode http' yet (use http-response rules)",
            ));
        }
        let (use_servers, stick) = server_rules(&mut c, &be.server_rules)?;
        let balance_key = balance_key(be, c.env())?;
        let mut persist = Vec::new();
        for r in &be.persist_rules {
            let kw = if r.force {
                "force-persist"
            } else {
                "ignore-persist"
            };
            persist.push(PersistRule {
                loc: r.loc.clone(),
                force: r.force,
                cond: c.condition(&r.cond, &r.loc, kw)?,
            });
        }
        Ok(ProxyRules {
            warnings: c.take_warnings(),
            proxy_warnings: c.take_proxy_warnings(),
            name: be.name.clone(),
            acls: c.finish(),
            http_request,
            http_response,
            http_after_response,
            use_servers,
            stick,
            tcp,
            inspect_delay_ms: inspect_delay(&be.tcp_request, "inspect-delay"),
            res_inspect_delay_ms: inspect_delay(&be.tcp_request, "tcp-response inspect-delay"),
            balance_key,
            persist,
            ..ProxyRules::default()
        })
    }

    /// The first `force-persist`/`ignore-persist` rule whose condition holds decides
    /// (HAProxy's `persist_rules`); `None`: none holds.
    pub fn persist(&self, src: &dyn SampleSource, txn: &Txn<'_>) -> Option<Persist> {
        let cx = Ctx::new(src, txn);
        self.persist
            .iter()
            .find(|r| cond_holds(Some(&r.cond), &self.acls, cx))
            .map(|r| {
                if r.force {
                    Persist::Force
                } else {
                    Persist::Ignore
                }
            })
    }

    /// The bytes `balance hash <expr>` / `balance rdp-cookie` hash for this request, cast to
    /// binary as HAProxy's `sample_fetch_as_type(.., SMP_T_BIN)`: strings as they are,
    /// integers as 8 bytes in network order, addresses as 4 or 16 bytes. `None`: no key
    /// (the balancer falls back to round robin).
    pub fn balance_key(&self, src: &dyn SampleSource, txn: &Txn<'_>) -> Option<Vec<u8>> {
        let e = self.balance_key.as_ref()?;
        Some(match e.eval(Ctx::new(src, txn))? {
            Sample::Str(b) | Sample::Bin(b) => b.into_owned(),
            Sample::Int(i) => i.to_be_bytes().to_vec(),
            Sample::Bool(b) => i64::from(b).to_be_bytes().to_vec(),
            Sample::Ip(std::net::IpAddr::V4(a)) => a.octets().to_vec(),
            Sample::Ip(std::net::IpAddr::V6(a)) => a.octets().to_vec(),
        })
    }

    /// The `wait-for-body` of the `http-request` rules that applies to this request, if any.
    pub fn body_wait(&self, src: &dyn SampleSource, txn: &Txn<'_>) -> Option<crate::BodyWait> {
        self.http_request.body_wait(&self.acls, src, txn)
    }

    /// True when the `http-request` rules have a `wait-for-body` (checked before building
    /// anything to evaluate its condition).
    pub fn waits_for_body(&self) -> bool {
        self.http_request
            .rules
            .iter()
            .any(|r| matches!(r.action, crate::Action::WaitForBody(_)))
    }

    /// Runs the `http-request` rules.
    pub fn http_request(&self, host: &mut dyn RuleHost, txn: &mut Txn<'_>) -> Verdict {
        self.http_request.run(&self.acls, host, txn, false)
    }

    /// Runs the `http-response` rules (on `txn.res`).
    pub fn http_response(&self, host: &mut dyn RuleHost, txn: &mut Txn<'_>) -> Verdict {
        self.http_response.run(&self.acls, host, txn, true)
    }

    /// Runs the `http-after-response` rules (on `txn.res`, which may be a reply the proxy made).
    pub fn http_after_response(&self, host: &mut dyn RuleHost, txn: &mut Txn<'_>) -> Verdict {
        self.http_after_response.run(&self.acls, host, txn, true)
    }

    /// The first `use_backend` whose condition holds, else `default_backend`.
    /// Static names are borrowed from the rules; only a dynamic name allocates.
    pub fn select_backend(&self, src: &dyn SampleSource, txn: &Txn<'_>) -> Option<Cow<'_, str>> {
        self.select_backend_known(src, txn, &|_| true)
    }

    /// [`ProxyRules::select_backend`] where a dynamic name that `known` rejects (or that renders
    /// empty) stops the rule loop and selects `default_backend`, as HAProxy's
    /// `process_switching_rules` does.
    pub fn select_backend_known(
        &self,
        src: &dyn SampleSource,
        txn: &Txn<'_>,
        known: &dyn Fn(&str) -> bool,
    ) -> Option<Cow<'_, str>> {
        let cx = Ctx::new(src, txn);
        for r in &self.use_backends {
            if !cond_holds(r.cond.as_ref(), &self.acls, cx) {
                continue;
            }
            match &r.target {
                BackendTarget::Static(n) => return Some(Cow::Borrowed(n)),
                BackendTarget::Dynamic(f) => {
                    let v = f.render_http_vec(cx);
                    match String::from_utf8(v) {
                        Ok(name) if !name.is_empty() && known(&name) => {
                            return Some(Cow::Owned(name))
                        }
                        _ => break,
                    }
                }
            }
        }
        self.default_backend.as_deref().map(Cow::Borrowed)
    }

    /// The first `use-server` whose condition holds and whose server `usable` accepts (HAProxy
    /// goes on with the next rule when the named server is down).
    pub fn select_server(
        &self,
        src: &dyn SampleSource,
        txn: &Txn<'_>,
        usable: impl Fn(&str) -> bool,
    ) -> Option<&str> {
        let cx = Ctx::new(src, txn);
        self.use_servers
            .iter()
            .filter(|r| cond_holds(r.cond.as_ref(), &self.acls, cx))
            .map(|r| r.server.as_str())
            .find(|s| usable(s))
    }

    /// The keys of the `stick` rules that apply to this request, in order, with what to do with
    /// each: `(rule, key)` for the rules whose condition holds and whose key could be fetched.
    pub fn stick_keys<'r>(
        &'r self,
        src: &dyn SampleSource,
        txn: &Txn<'_>,
        when: impl Fn(StickWhen) -> bool,
    ) -> Vec<(&'r StickRule, Sample<'static>)> {
        let cx = Ctx::new(src, txn);
        self.stick
            .iter()
            .filter(|r| when(r.when))
            .filter(|r| cond_holds(r.cond.as_ref(), &self.acls, cx))
            .filter_map(|r| Some((r, r.key.eval(cx)?.into_owned())))
            .collect()
    }

    /// True when the request targets `monitor-uri` (compared with the path-and-query, or
    /// the whole target when it is in absolute form).
    pub fn is_monitor_uri(&self, req: &HttpMessage<'_>) -> bool {
        self.monitor_uri
            .as_deref()
            .is_some_and(|m| req.pathq() == m || &*req.uri == m)
    }

    /// `monitor fail`: true when one of its conditions holds (`monitor-uri` then answers 503).
    pub fn monitor_fails(&self, src: &dyn SampleSource, txn: &Txn<'_>) -> bool {
        self.monitor_fail
            .iter()
            .any(|c| cond_holds(Some(c), &self.acls, Ctx::new(src, txn)))
    }

    /// Runs the TCP rules of `phase` in order.
    pub fn tcp_rules(
        &self,
        phase: TcpPhase,
        host: &mut dyn RuleHost,
        txn: &mut Txn<'_>,
    ) -> TcpVerdict {
        self.tcp_rules_from(phase, 0, host, txn)
    }

    /// True when the proxy has rules of `phase`.
    pub fn has_tcp_rules(&self, phase: TcpPhase) -> bool {
        self.tcp.iter().any(|r| r.phase == phase)
    }

    /// Runs the TCP rules of `phase` from the `start`th one (after a [`TcpVerdict::Wait`]).
    pub fn tcp_rules_from(
        &self,
        phase: TcpPhase,
        start: usize,
        host: &mut dyn RuleHost,
        txn: &mut Txn<'_>,
    ) -> TcpVerdict {
        let rules = self.tcp.iter().filter(|r| r.phase == phase);
        for (i, r) in rules.enumerate().skip(start) {
            txn.payload_may_change.set(false);
            let holds = cond_holds(
                r.cond.as_ref(),
                &self.acls,
                Ctx::new(&*host as &dyn SampleSource, txn),
            );
            if !holds && txn.payload_may_change.get() {
                // HAProxy's ACL "miss": the answer may change with more data.
                return TcpVerdict::Wait { resume: i };
            }
            if !holds {
                continue;
            }
            match &r.action {
                TcpAction::Accept => return TcpVerdict::Accept,
                TcpAction::Reject => return TcpVerdict::Reject { silent: false },
                TcpAction::SilentDrop => return TcpVerdict::Reject { silent: true },
                TcpAction::Close => return TcpVerdict::Close,
                TcpAction::ExpectProxy => return TcpVerdict::ExpectProxy,
                TcpAction::UseService(s) => return TcpVerdict::UseService(s.clone()),
                TcpAction::TrackSc { slot, key, table } => {
                    let k = key
                        .eval(Ctx::new(&*host as &dyn SampleSource, txn))
                        .map(Sample::into_owned);
                    if let Some(k) = k {
                        host.track_sc(*slot, &k, table.as_deref());
                    }
                }
                TcpAction::ScIncGpc { slot, idx } => host.sc_inc_gpc(*slot, *idx),
                TcpAction::SetVar { name, expr } => {
                    let v = expr
                        .eval(Ctx::new(&*host as &dyn SampleSource, txn))
                        .map(Sample::into_owned);
                    if let Some(v) = v {
                        crate::rules::set_var(host, txn, name, v);
                    }
                }
                TcpAction::SetVarFmt { name, fmt } => {
                    let v = fmt.render_http_vec(Ctx::new(&*host as &dyn SampleSource, txn));
                    crate::rules::set_var(host, txn, name, Sample::owned(v));
                }
                TcpAction::ScSetGpt { slot, idx, value } => {
                    let v = value
                        .eval(Ctx::new(&*host as &dyn SampleSource, txn))
                        .and_then(|s| s.to_int());
                    if let Some(v) = v {
                        host.sc_set_gpt(*slot, *idx, v);
                    }
                }
                TcpAction::UnsetVar(n) => {
                    if n.starts_with("proc.") || n.starts_with("sess.") {
                        host.unset_outer_var(n);
                    } else {
                        txn.vars.unset(n);
                    }
                }
                TcpAction::SetAddr { dst, port, expr } => {
                    let v = expr
                        .eval(Ctx::new(&*host as &dyn SampleSource, txn))
                        .map(Sample::into_owned);
                    match (v, *dst, *port) {
                        (Some(v), d, true) => {
                            if let Some(p) = v.to_int().and_then(|p| u16::try_from(p).ok()) {
                                if d {
                                    host.set_dst_port(p);
                                } else {
                                    host.set_src_port(p);
                                }
                            }
                        }
                        (Some(v), d, false) => {
                            if let Some(ip) = v.to_ip() {
                                if d {
                                    host.set_dst(ip);
                                } else {
                                    host.set_src(ip);
                                }
                            }
                        }
                        (None, ..) => {}
                    }
                }
                TcpAction::SetLogLevel(l) => host.set_log_level(l),
            }
        }
        TcpVerdict::Continue
    }
}

/// The sample `balance hash <expr>` or `balance rdp-cookie[(name)]` hashes (HAProxy's default
/// RDP cookie name is `mstshash`).
fn balance_key(be: &Backend, env: &dyn FetchEnv) -> Result<Option<Expr>, CompileError> {
    let e = |m: String| CompileError::new(&be.loc, "balance", m);
    match &be.balance {
        ringlb_config::model::Balance::Hash { expr } => {
            Expr::compile(expr, env).map(Some).map_err(e)
        }
        ringlb_config::model::Balance::RdpCookie { name } => {
            let name = name
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or("mstshash");
            Expr::parse(&format!("req.rdp_cookie({name})"), env)
                .map(Some)
                .map_err(e)
        }
        _ => Ok(None),
    }
}
