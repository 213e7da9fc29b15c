//! Proxy sections (`defaults`, `frontend`, `backend`, `listen`): header parsing with defaults
//! inheritance (HAProxy copies the selected `defaults` when a proxy section opens), keyword
//! lookup (multi-word keys like `timeout connect`, `option forwardfor`, `no option X`) and
//! capability checks (a frontend-only keyword in a backend is ignored with a warning).
//!
//! Owns: [`ProxyDraft`], [`ProxyKind`], [`open`], [`parse`], capability bits.

use crate::model::{
    Acl, Bind, Capture, Defaults, Directive, HttpRule, Loc, ProxySettings, Server, Stats,
    StickTable, TcpRequestRule, UseBackend, Userlist,
};
use crate::registry::nearest;
use crate::source::Line;

use super::proxy_kw::{ProxyKw, KEYWORDS};
use super::Cx;

/// Allowed in any `defaults` section.
pub const DEF: u8 = 1;
/// Allowed in frontends (and listen).
pub const FE: u8 = 2;
/// Allowed in backends (and listen).
pub const BE: u8 = 4;
/// Allowed in named `defaults` sections only (rules and ACLs, HAProxy 2.5+).
pub const NDEF: u8 = 8;
/// Everywhere.
pub const ALL: u8 = DEF | FE | BE;

/// Which kind of proxy section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl ProxyKind {
    pub fn word(self) -> &'static str {
        match self {
            ProxyKind::Defaults => "defaults",
            ProxyKind::Frontend => "frontend",
            ProxyKind::Backend => "backend",
            ProxyKind::Listen => "listen",
        }
    }

    fn caps(self) -> u8 {
        match self {
            ProxyKind::Defaults => DEF,
            ProxyKind::Frontend => FE,
            ProxyKind::Backend => BE,
            ProxyKind::Listen => FE | BE,
        }
    }

    /// True when the proxy accepts frontend keywords.
    pub fn is_frontend(self) -> bool {
        matches!(self, ProxyKind::Frontend | ProxyKind::Listen)
    }

    /// True when the proxy accepts backend keywords.
    pub fn is_backend(self) -> bool {
        matches!(self, ProxyKind::Backend | ProxyKind::Listen)
    }
}

/// Progress through an `http-check` sequence, to apply HAProxy's ordering rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpCheckState {
    /// An explicit `http-check connect` opened the current connection.
    pub explicit_connect: bool,
    /// A `send` happened on the current connection.
    pub sent: bool,
    /// An `expect` happened on the current connection.
    pub expect_seen: bool,
}

/// A proxy section as parsed (defaults already copied in).
#[derive(Debug, Clone)]
pub struct ProxyDraft {
    pub kind: ProxyKind,
    pub name: String,
    pub loc: Loc,
    pub from: Option<String>,
    pub disabled: bool,
    pub settings: ProxySettings,
    pub binds: Vec<Bind>,
    pub servers: Vec<Server>,
    pub acls: Vec<Acl>,
    pub use_backends: Vec<UseBackend>,
    pub http_request: Vec<HttpRule>,
    /// How many rules at the end of `http_request` are old-style `redirect` rules, which
    /// haproxy evaluates after every `http-request` rule of the proxy.
    pub legacy_redirects: usize,
    pub http_response: Vec<HttpRule>,
    pub http_after_response: Vec<HttpRule>,
    pub tcp_request: Vec<TcpRequestRule>,
    pub stick_table: Option<StickTable>,
    pub stick_rules: Vec<Directive>,
    pub server_rules: Vec<crate::model::ServerRule>,
    pub persist_rules: Vec<crate::model::PersistRule>,
    pub stats: Option<Stats>,
    pub monitor_uri: Option<String>,
    /// `monitor fail if|unless <cond>`: `monitor-uri` answers 503 when one holds.
    pub monitor_fail: Vec<(crate::model::Loc, crate::model::Condition)>,
    pub captures: Vec<Capture>,
    /// The proxy wrote its own `http-check` rules (inherited ones are replaced).
    pub own_http_check: bool,
    /// The proxy wrote its own `tcp-check` rules.
    pub own_tcp_check: bool,
    /// Index in `Draft::defaults` of the section this proxy inherits from.
    pub defaults_idx: Option<usize>,
    /// ACLs before this index were inherited (renamed) and are not visible to this section's
    /// own conditions.
    pub own_acls_from: usize,
    /// `default_backend` was written in this section (not inherited).
    pub own_default_backend: bool,
    /// Where the `http-check` sequence stands (HAProxy's step ordering rules).
    pub http_check_state: HttpCheckState,
}

impl ProxyDraft {
    fn new(kind: ProxyKind, name: String, loc: Loc, settings: ProxySettings) -> Self {
        ProxyDraft {
            kind,
            name,
            loc,
            from: None,
            disabled: false,
            settings,
            binds: Vec::new(),
            servers: Vec::new(),
            acls: Vec::new(),
            use_backends: Vec::new(),
            http_request: Vec::new(),
            legacy_redirects: 0,
            http_response: Vec::new(),
            http_after_response: Vec::new(),
            tcp_request: Vec::new(),
            stick_table: None,
            stick_rules: Vec::new(),
            server_rules: Vec::new(),
            persist_rules: Vec::new(),
            stats: None,
            monitor_uri: None,
            monitor_fail: Vec::new(),
            captures: Vec::new(),
            own_http_check: false,
            own_tcp_check: false,
            defaults_idx: None,
            own_acls_from: 0,
            own_default_backend: false,
            http_check_state: HttpCheckState::default(),
        }
    }
}

/// Builds a [`Directive`] from the words of `l`, the keyword being its first `kw_words` words.
pub fn directive(l: &Line, kw_words: usize) -> Directive {
    Directive {
        loc: l.loc.clone(),
        keyword: l
            .rest(0)
            .into_iter()
            .take(kw_words)
            .collect::<Vec<_>>()
            .join(" "),
        args: l.rest(kw_words),
    }
}

pub fn valid_name(name: &str) -> Result<(), String> {
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c)))
    {
        Some(c) => Err(format!(
            "character '{c}' is not permitted in proxy name '{name}'."
        )),
        None => Ok(()),
    }
}

/// Opens a proxy section: validates the header and copies the defaults it inherits.
pub fn open(
    cx: &mut Cx,
    l: &Line,
    defaults: &[Defaults],
    proxies: &[ProxyDraft],
) -> Option<ProxyDraft> {
    let kind = match l.arg(0) {
        "defaults" => ProxyKind::Defaults,
        "frontend" => ProxyKind::Frontend,
        "backend" => ProxyKind::Backend,
        _ => ProxyKind::Listen,
    };
    let kw = kind.word();
    let (name, from) = match header_words(l) {
        Ok(v) => v,
        Err(m) => {
            cx.alert(&l.loc, kw, m);
            return None;
        }
    };
    if kind != ProxyKind::Defaults && name.is_empty() {
        cx.alert(&l.loc, kw, format!("'{kw}' expects <name> as an argument."));
        return None;
    }
    if let Err(m) = valid_name(&name) {
        cx.alert(&l.loc, kw, m);
        return None;
    }
    if kind != ProxyKind::Defaults {
        check_duplicate(cx, l, kind, &name, proxies);
    }
    let selected = select_defaults(defaults, from.as_deref(), kind).and_then(|sel| {
        if let Some((idx, d)) = sel {
            check_rule_inheritance(kind, idx, d, proxies)?;
        }
        Ok(sel)
    });
    let selected = match selected {
        Ok(s) => s,
        Err(m) => {
            cx.alert(&l.loc, kw, m);
            return None;
        }
    };
    let base = selected
        .map(|(_, d)| d.settings.clone())
        .unwrap_or_default();
    let mut p = ProxyDraft::new(kind, name, l.loc.clone(), base);
    p.from = from;
    if let Some((idx, d)) = selected {
        p.defaults_idx = Some(idx);
        inherit_rules(&mut p, d);
    }
    Some(p)
}

/// `<kw> [<name>] [from <defaults>]`.
fn header_words(l: &Line) -> Result<(String, Option<String>), String> {
    let mut words = l.rest(1);
    let mut from = None;
    if let Some(pos) = words.iter().position(|w| w == "from") {
        let target = words
            .get(pos + 1)
            .cloned()
            .ok_or("'from' expects a defaults section name.")?;
        if words.len() > pos + 2 {
            return Err(format!("unexpected argument '{}'.", words[pos + 2]));
        }
        from = Some(target);
        words.truncate(pos);
    }
    if words.len() > 1 {
        return Err(format!("unexpected argument '{}'.", words[1]));
    }
    Ok((words.into_iter().next().unwrap_or_default(), from))
}

fn check_duplicate(cx: &mut Cx, l: &Line, kind: ProxyKind, name: &str, proxies: &[ProxyDraft]) {
    let clash = proxies.iter().find(|p| {
        p.name == name
            && ((p.kind.is_frontend() && kind.is_frontend())
                || (p.kind.is_backend() && kind.is_backend()))
    });
    if let Some(p) = clash {
        cx.alert(
            &l.loc,
            kind.word(),
            format!(
                "{} '{name}' has the same name as {} '{name}' declared at {}:{}.",
                kind.word(),
                p.kind.word(),
                p.loc.file,
                p.loc.line
            ),
        );
    }
}

/// The `defaults` a new section starts from: the named `from` defaults, else the last
/// `defaults` section before it (none for a `defaults` section without `from`).
fn select_defaults<'a>(
    defaults: &'a [Defaults],
    from: Option<&str>,
    kind: ProxyKind,
) -> Result<Option<(usize, &'a Defaults)>, String> {
    match from {
        Some(name) => defaults
            .iter()
            .enumerate()
            .rev()
            .find(|(_, d)| d.name.as_deref() == Some(name))
            .map(Some)
            .ok_or_else(|| format!("defaults section '{name}' not found.")),
        None if kind == ProxyKind::Defaults => Ok(None),
        None => Ok(defaults.iter().enumerate().next_back()),
    }
}

/// HAProxy's restrictions on inheriting TCP/HTTP rules from a named defaults section.
fn check_rule_inheritance(
    kind: ProxyKind,
    idx: usize,
    d: &Defaults,
    proxies: &[ProxyDraft],
) -> Result<(), String> {
    if !d.has_rules() || kind == ProxyKind::Defaults {
        return Ok(());
    }
    if kind == ProxyKind::Listen {
        return Err(
            "a listen section cannot inherit from a defaults section defining TCP/HTTP rules."
                .into(),
        );
    }
    let mixed = proxies
        .iter()
        .any(|p| p.defaults_idx == Some(idx) && p.kind.is_frontend() != kind.is_frontend());
    if mixed {
        return Err(format!(
            "frontends and backends cannot inherit from the same defaults section if it defines TCP/HTTP rules (defaults section at {}:{}).",
            d.loc.file, d.loc.line
        ));
    }
    Ok(())
}

/// Copies the rules of `d` into `p`, its ACLs renamed `<defaults>/<acl>` so that they cannot
/// clash with the proxy's own ACLs (which they are not visible to).
fn inherit_rules(p: &mut ProxyDraft, d: &Defaults) {
    let prefix = d.name.clone().unwrap_or_default();
    let rename = |n: &str| format!("{prefix}/{n}");
    p.acls = d
        .acls
        .iter()
        .map(|a| Acl {
            name: rename(&a.name),
            ..a.clone()
        })
        .collect();
    p.own_acls_from = p.acls.len();
    let fix = |c: &mut Option<crate::model::Condition>| {
        for t in c.iter_mut().flat_map(|c| c.terms.iter_mut().flatten()) {
            if let crate::model::AclRef::Named(n) = &mut t.acl {
                if d.acls.iter().any(|a| &a.name == n) {
                    *n = rename(n);
                }
            }
        }
    };
    p.http_request = d.http_request.clone();
    p.http_response = d.http_response.clone();
    p.http_after_response = d.http_after_response.clone();
    p.tcp_request = d.tcp_request.clone();
    p.http_request.iter_mut().for_each(|r| fix(&mut r.cond));
    p.http_response.iter_mut().for_each(|r| fix(&mut r.cond));
    p.http_after_response
        .iter_mut()
        .for_each(|r| fix(&mut r.cond));
    p.tcp_request.iter_mut().for_each(|r| fix(&mut r.cond));
}

/// Key of a proxy keyword line: (registry name, number of words it spans, negated by `no`).
fn key_of(l: &Line) -> (String, usize, bool) {
    let (neg, off) = match l.arg(0) {
        "no" | "default" if l.arg(1) == "option" => (l.arg(0) == "no", 1),
        // `no log`: the proxy drops the log targets it inherited.
        "no" if l.arg(1) == "log" => (true, 1),
        _ => (false, 0),
    };
    let first = l.arg(off);
    let two = matches!(
        first,
        "timeout"
            | "option"
            | "stats"
            | "http-check"
            | "tcp-check"
            | "stick"
            | "capture"
            | "declare"
            | "tcp-request"
            | "tcp-response"
            | "monitor"
            | "email-alert"
            | "rate-limit"
            | "external-check"
            | "persist"
    );
    if two {
        let second = l.arg(off + 1);
        let second = second.split('(').next().unwrap_or(second);
        (format!("{first} {second}"), off + 2, neg)
    } else {
        (first.to_string(), off + 1, neg)
    }
}

/// Context passed to proxy keyword parsers.
#[derive(Debug)]
pub struct KwCx<'a> {
    pub cx: &'a mut Cx,
    /// Words spanned by the keyword (arguments start there).
    pub kw_words: usize,
    /// `no option X`.
    pub negated: bool,
    pub userlists: &'a [Userlist],
    pub name: &'static str,
}

/// Dispatches one line of a proxy section.
pub fn parse(cx: &mut Cx, p: &mut ProxyDraft, l: &Line, userlists: &[Userlist]) {
    let (key, kw_words, negated) = key_of(l);
    let Some(k) = KEYWORDS.iter().find(|k| k.name == key) else {
        unknown(cx, p, l, &key);
        return;
    };
    if !allowed(cx, p, l, k) || !cx.use_kw(&l.loc, k.name, &k.status) {
        return;
    }
    let mut kc = KwCx {
        cx,
        kw_words,
        negated,
        userlists,
        name: k.name,
    };
    if let Err(msg) = (k.parse)(&mut kc, p, l) {
        cx.alert(&l.loc, k.name, msg);
    }
}

fn unknown(cx: &mut Cx, p: &ProxyDraft, l: &Line, key: &str) {
    let first = l.arg(0);
    let mut family: Vec<&str> = KEYWORDS
        .iter()
        .map(|k| k.name)
        .filter(|n| !key.contains(' ') || n.starts_with(key.split(' ').next().unwrap_or("")))
        .collect();
    if !key.contains(' ') {
        family.extend(crate::registry::SECTIONS.iter().map(|s| s.name));
    }
    let hint = nearest(key, family.iter().copied())
        .map(|n| format!("; did you mean '{n}' maybe ?"))
        .unwrap_or_default();
    let msg = if key.starts_with("option ") {
        format!(
            "unknown option '{}'{hint}",
            key.trim_start_matches("option ")
        )
    } else if key.contains(' ') {
        format!(
            "unknown keyword '{key}' in '{}' section{hint}",
            p.kind.word()
        )
    } else {
        format!(
            "unknown keyword '{first}' in '{}' section{hint}",
            p.kind.word()
        )
    };
    cx.alert(&l.loc, "", msg);
}

/// Capability check (HAProxy: alert in defaults, warning "ignored" in the wrong proxy type).
fn allowed(cx: &mut Cx, p: &ProxyDraft, l: &Line, k: &ProxyKw) -> bool {
    let caps = p.kind.caps();
    if p.kind == ProxyKind::Defaults {
        if k.caps & DEF != 0 || (k.caps & NDEF != 0 && !p.name.is_empty()) {
            return true;
        }
        let anon = if k.caps & NDEF != 0 { "anonymous " } else { "" };
        cx.alert(
            &l.loc,
            "",
            format!("'{}' not allowed in {anon}'defaults' section.", k.name),
        );
        return false;
    }
    if k.caps & caps != 0 {
        return true;
    }
    let missing = if k.caps & FE != 0 {
        "frontend"
    } else {
        "backend"
    };
    let word = k.name.split(' ').next().unwrap_or(k.name);
    let kind = p.kind.word();
    if k.name == "retry-on" {
        cx.alert(
            &l.loc,
            "",
            "'retry-on' only available in backend or listen section",
        );
        return false;
    }
    if matches!(k.name, "server" | "default-server" | "server-template") {
        let msg = format!(
            "'{word}' not allowed because {kind} '{}' has no {missing} capability.",
            p.name
        );
        cx.alert(&l.loc, "", msg);
        return false;
    }
    // HAProxy warns that the keyword is ignored but still parses it (so its errors count).
    let msg = format!(
        "'{word}' ignored because {kind} '{}' has no {missing} capability.",
        p.name
    );
    cx.warn(&l.loc, "", msg);
    true
}
