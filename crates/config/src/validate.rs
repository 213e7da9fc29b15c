//! Cross-section validation: turns a [`Draft`] into the final [`Config`] — `listen` split into
//! a frontend and a backend, references resolved (`use_backend`, `default_backend`,
//! `track-sc ... table`, `sc_*(n,table)` fetches, `errorfiles` sections), mode checks and
//! HAProxy's warnings (missing timeouts, http-only directives in tcp mode, no `bind`).
//!
//! Owns: [`build`].

use crate::model::{
    AclRef, Backend, Condition, Config, ErrorFile, Frontend, HttpAction, HttpErrors, Mode,
};
use crate::parse::{Cx, Draft, ProxyDraft, ProxyKind};

/// Validates `d` and builds the model. Alerts and warnings go to `cx`.
pub fn build(d: Draft, cx: &mut Cx) -> Config {
    let tables: Vec<String> = d
        .proxies
        .iter()
        .filter(|p| p.stick_table.is_some())
        .map(|p| p.name.clone())
        .chain(
            d.peers
                .iter()
                .flat_map(|p| p.tables.iter().map(|(n, _)| n.clone())),
        )
        .collect();
    let mut cfg = Config {
        global: d.global,
        defaults: d.defaults,
        ..Config::default()
    };
    for p in &d.proxies {
        check_section_refs(
            cx,
            p,
            Sections {
                resolvers: &d.resolvers,
                peers: &d.peers,
                userlists: &d.userlists,
                caches: &d.caches,
            },
        );
        mode_warnings(cx, p);
        check_tables(cx, p, &tables);
        check_capture_ids(cx, p);
        let errorfiles = merged_errorfiles(cx, p, &d.http_errors);
        if p.kind.is_frontend() {
            cfg.frontends.push(frontend(p, errorfiles.clone()));
        }
        if p.kind.is_backend() {
            cfg.backends.push(backend(p, errorfiles));
        }
    }
    for f in &cfg.frontends {
        check_frontend_refs(cx, f, &cfg.backends, &d.proxies);
    }
    // `tune.http.cookielen` bounds `capture cookie ... len` (haproxy truncates, with a warning).
    let cookielen = cfg.global.tune.http_cookielen;
    for f in &mut cfg.frontends {
        for c in f.captures.iter_mut().filter(|c| c.what == "cookie") {
            if c.len > cookielen {
                cx.warn(
                    &c.loc,
                    "",
                    format!(
                        "truncating capture length to {cookielen} bytes for frontend '{}'.",
                        f.name
                    ),
                );
                c.len = cookielen;
            }
        }
    }
    for b in &cfg.backends {
        check_agents(cx, b);
        check_tracks(cx, b, &cfg.backends);
    }
    for p in d
        .proxies
        .iter()
        .filter(|p| p.own_default_backend && p.kind.is_backend())
    {
        check_backend_default(cx, p, &cfg.backends);
    }
    if let Some(p) = d.programs.first() {
        if !cfg.global.master_worker {
            cx.alert(
                &p.loc,
                "program",
                "Can't use a 'program' section without master worker mode.",
            );
        }
    }
    for p in d.programs.iter().filter(|p| p.command.is_empty()) {
        cx.alert(
            &p.loc,
            "program",
            format!(
                "The program section '{}' lacks a command to launch.",
                p.name
            ),
        );
    }
    cfg.userlists = d.userlists;
    cfg.peers = d.peers;
    cfg.resolvers = d.resolvers;
    cfg.http_errors = d.http_errors;
    cfg.rings = d.rings;
    cfg.caches = d.caches;
    cfg.programs = d.programs;
    cfg.mailers = d.mailers;
    cfg
}

/// HAProxy refuses an `agent-check` without `agent-port` (haproxy 2.6 `-c` wording).
fn check_agents(cx: &mut Cx, b: &Backend) {
    for s in &b.servers {
        if s.params.agent.enabled && s.params.agent.port.is_none() {
            cx.alert(
                &s.loc,
                &format!("server {}/{}", b.name, s.name),
                format!(
                    "server {} does not have agent port. Agent check has been disabled.",
                    s.name
                ),
            );
        }
    }
}

/// `track [<backend>/]<server>`: the target must exist and have a check, an agent or a
/// track of its own (haproxy 2.6 `-c` wording).
fn check_tracks(cx: &mut Cx, b: &Backend, backends: &[Backend]) {
    for s in &b.servers {
        let Some(target) = s.params.track.as_deref() else {
            continue;
        };
        let kw = format!("server {}/{}", b.name, s.name);
        let (be_name, srv_name) = target.split_once('/').unwrap_or((&b.name, target));
        let Some(tbe) = backends.iter().find(|x| x.name == be_name) else {
            cx.alert(
                &s.loc,
                &kw,
                format!("unable to find required proxy '{be_name}' for tracking."),
            );
            continue;
        };
        let Some(t) = tbe.servers.iter().find(|x| x.name == srv_name) else {
            cx.alert(
                &s.loc,
                &kw,
                format!("unable to find required server '{srv_name}' for tracking."),
            );
            continue;
        };
        if !t.params.check && !t.params.agent.enabled && t.params.track.is_none() {
            cx.alert(
                &s.loc,
                &kw,
                format!(
                    "unable to use {}/{} for tracking as it does not have any check nor agent enabled.",
                    tbe.name, t.name
                ),
            );
        }
    }
}

fn mode_of(p: &ProxyDraft) -> Mode {
    p.settings.mode.unwrap_or_default()
}

/// HAProxy's warnings for directives that need `mode http`, and for missing timeouts.
fn mode_warnings(cx: &mut Cx, p: &ProxyDraft) {
    let kind = p.kind.word();
    if let Some(st) = &p.stats {
        if !st.http_request.is_empty() && (!st.auths.is_empty() || st.realm.is_some()) {
            // haproxy 2.6 refuses the mix: with rules, credentials come from `auth` rules.
            cx.alert(
                &p.loc,
                "",
                format!(
                    "proxy '{}': stats 'auth'/'realm' and 'http-request' can't be used at the same time.",
                    p.name
                ),
            );
        }
    }
    let t = &p.settings.timeouts;
    let fe_missing = p.kind.is_frontend() && t.client.is_none();
    let be_missing = p.kind.is_backend() && (t.connect.is_none() || t.server.is_none());
    if fe_missing || be_missing {
        cx.warn(&p.loc, "", format!(
            "missing timeouts for {kind} '{}'.\n   | While not properly invalid, you will certainly encounter various problems\n   | with such a configuration. To fix this, please ensure that all following\n   | timeouts are set to a non-zero value: 'client', 'connect', 'server'.",
            p.name
        ));
    }
    if p.kind.is_frontend() && p.binds.is_empty() && !p.disabled {
        cx.warn(&p.loc, "", format!("{kind} '{}' has no 'bind' directive. Please declare it as a backend if this was intended.", p.name));
    }
    if p.settings.log_format.is_some() && p.settings.log.is_empty() && p.kind != ProxyKind::Backend
    {
        cx.warn(
            &p.loc,
            "",
            format!(
                "log format ignored for {kind} '{}' since it has no log address.",
                p.name
            ),
        );
    }
    if mode_of(p) == Mode::Http {
        return;
    }
    if let (Some(fmt), true) = (&p.settings.log_format, p.kind.is_frontend()) {
        if let Some(v) = http_only_log_var(fmt) {
            cx.alert(
                &p.loc,
                "log-format",
                format!(
                    "failed to parse log-format : format variable '{v}' is reserved for HTTP mode."
                ),
            );
        }
    }
    if p.settings.options.httplog.is_some() {
        cx.warn(&p.loc, "", format!("'option httplog' not usable with {kind} '{}' (needs 'mode http'). Falling back to 'option tcplog'.", p.name));
    }
    let checks: [(&str, bool); 4] = [
        ("'http-request' rules ignored", !p.http_request.is_empty()),
        (
            "'http-response' rules ignored",
            !p.http_response.is_empty() || !p.http_after_response.is_empty(),
        ),
        ("'stats' statement ignored", p.stats.is_some()),
        (
            "cookie will be ignored",
            p.kind.is_backend() && p.settings.cookie.is_some(),
        ),
    ];
    for (what, present) in checks {
        if present {
            cx.warn(
                &p.loc,
                "",
                format!("{what} for {kind} '{}' as it requires HTTP mode.", p.name),
            );
        }
    } // haproxy 2.6 says so with an ALERT but starts, without observing the server.
    for srv in &p.servers {
        if srv.params.observe.as_deref() == Some("layer7") {
            cx.warn(
                &srv.loc,
                "",
                format!(
                    "'server {}/{}' : 'layer7' can only be used in http proxies.",
                    p.name, srv.name
                ),
            );
        }
    }
}

/// `http-request|response capture ... id N` must name a declared slot of a frontend (a
/// backend's rules use the frontend's slots, checked at run time).
fn check_capture_ids(cx: &mut Cx, p: &ProxyDraft) {
    if !p.kind.is_frontend() {
        return;
    }
    let lists = [
        ("http-request", "request", &p.http_request),
        ("http-response", "response", &p.http_response),
        ("http-after-response", "response", &p.http_after_response),
    ];
    for (kw, what, rules) in lists {
        let declared = p.captures.iter().filter(|c| c.what == what).count();
        for r in rules {
            let HttpAction::Other { name, args } = &r.action else {
                continue;
            };
            if name != "capture" || args.get(1).map(String::as_str) != Some("id") {
                continue;
            }
            let id = args.get(2).map(String::as_str).unwrap_or("");
            if id.parse::<usize>().map_or(true, |i| i >= declared) {
                cx.alert(
                    &r.loc,
                    "",
                    format!(
                        "Proxy '{}': unable to find capture id '{id}' referenced by {kw} capture rule.",
                        p.name
                    ),
                );
            }
        }
    }
}

/// `track-sc ... table X` and `sc_*(n,X)` must name a proxy with a stick-table; without
/// `table`, the proxy itself must have one.
fn check_tables(cx: &mut Cx, p: &ProxyDraft, tables: &[String]) {
    let own = p.stick_table.is_some();
    let check = |cx: &mut Cx, loc: &crate::model::Loc, what: &str, table: Option<&str>| {
        let name = table.unwrap_or(&p.name);
        let ok = if table.is_none() {
            own
        } else {
            tables.iter().any(|t| t == name)
        };
        if !ok {
            cx.alert(
                loc,
                "",
                format!(
                    "Proxy '{}': unable to find table '{name}' referenced by {what}.",
                    p.name
                ),
            );
        }
    };
    for r in p
        .http_request
        .iter()
        .chain(&p.http_response)
        .chain(&p.http_after_response)
    {
        if let HttpAction::TrackSc { slot, table, .. } = &r.action {
            check(cx, &r.loc, &format!("track-sc{slot}"), table.as_deref());
        }
        if let Some(c) = &r.cond {
            for (loc, fetch, t) in cond_tables(c) {
                check(
                    cx,
                    &loc,
                    &format!("arg 2 of ACL keyword '{fetch}'"),
                    Some(&t),
                );
            }
        }
    }
    for r in &p.server_rules {
        if r.kind == crate::model::ServerRuleKind::UseServer {
            if !p.servers.iter().any(|s| s.name == r.arg) {
                cx.alert(
                    &r.loc,
                    "use-server",
                    format!(
                        "backend '{}' : unable to find server '{}' referenced in a 'use-server' rule.",
                        p.name, r.arg
                    ),
                );
            }
            continue;
        }
        let name = r.table.as_deref().unwrap_or(&p.name);
        let ok = match &r.table {
            None => own,
            Some(t) => tables.iter().any(|x| x == t),
        };
        if !ok {
            cx.alert(
                &r.loc,
                r.kind.keyword(),
                format!("Proxy '{}': unable to find stick-table '{name}'.", p.name),
            );
        }
    }
    for a in &p.acls {
        if let Some(t) = sc_table_arg(&a.sample.fetch, &a.sample.args) {
            check(
                cx,
                &a.loc,
                &format!("arg 2 of ACL keyword '{}'", a.sample.fetch),
                Some(&t),
            );
        }
    }
}

fn sc_table_arg(fetch: &str, args: &[String]) -> Option<String> {
    let sc = fetch.starts_with("sc_")
        || fetch.starts_with("sc0_")
        || fetch.starts_with("sc1_")
        || fetch.starts_with("sc2_")
        || fetch.starts_with("src_")
        || fetch.starts_with("table_");
    if !sc {
        return None;
    }
    let idx = if fetch.starts_with("sc_") { 1 } else { 0 };
    args.get(idx).filter(|t| !t.is_empty()).cloned()
}

fn cond_tables(c: &Condition) -> Vec<(crate::model::Loc, String, String)> {
    c.terms
        .iter()
        .flatten()
        .filter_map(|t| match &t.acl {
            AclRef::Anonymous(a) => sc_table_arg(&a.sample.fetch, &a.sample.args)
                .map(|tb| (a.loc.clone(), a.sample.fetch.clone(), tb)),
            AclRef::Named(_) => None,
        })
        .collect()
}

fn merged_errorfiles(cx: &mut Cx, p: &ProxyDraft, sections: &[HttpErrors]) -> Vec<ErrorFile> {
    let mut out = p.settings.errorfiles.clone();
    for (loc, name, codes) in &p.settings.errorfiles_sections {
        match sections.iter().find(|s| &s.name == name) {
            Some(s) => {
                for e in &s.errorfiles {
                    let wanted = codes.is_empty() || codes.contains(&e.status);
                    if wanted && !out.iter().any(|o| o.status == e.status) {
                        out.push(e.clone());
                    }
                }
            }
            None => cx.alert(
                loc,
                "errorfiles",
                format!(
                    "proxy '{}': unable to find http-errors section '{name}'.",
                    p.name
                ),
            ),
        }
    }
    out
}

fn frontend(p: &ProxyDraft, errorfiles: Vec<ErrorFile>) -> Frontend {
    let s = &p.settings;
    let default_backend = s
        .default_backend
        .as_ref()
        .map(|(_, n)| n.clone())
        .or_else(|| (p.kind == ProxyKind::Listen).then(|| p.name.clone()));
    Frontend {
        name: p.name.clone(),
        loc: p.loc.clone(),
        from_listen: p.kind == ProxyKind::Listen,
        disabled: p.disabled,
        mode: mode_of(p),
        binds: p.binds.clone(),
        maxconn: s.maxconn,
        timeouts: s.timeouts,
        options: s.options.clone(),
        log: s.log.clone(),
        log_format: s.log_format.clone(),
        log_format_sd: s.log_format_sd.clone(),
        error_log_format: s.error_log_format.clone(),
        log_tag: s.log_tag.clone(),
        default_backend,
        use_backends: p.use_backends.clone(),
        acls: p.acls.clone(),
        http_request: p.http_request.clone(),
        http_response: p.http_response.clone(),
        http_after_response: p.http_after_response.clone(),
        tcp_request: p.tcp_request.clone(),
        errorfiles,
        stick_table: p.stick_table.clone(),
        stats: p.stats.clone(),
        monitor_uri: p.monitor_uri.clone(),
        monitor_fail: p.monitor_fail.clone(),
        captures: p.captures.clone(),
        unique_id_format: s.unique_id_format.clone(),
        unique_id_header: s.unique_id_header.clone(),
        format_locs: s.format_locs.clone(),
        other: s.other.clone(),
    }
}

fn backend(p: &ProxyDraft, errorfiles: Vec<ErrorFile>) -> Backend {
    let s = &p.settings;
    Backend {
        name: p.name.clone(),
        loc: p.loc.clone(),
        from_listen: p.kind == ProxyKind::Listen,
        disabled: p.disabled,
        mode: mode_of(p),
        balance: s.balance.clone().unwrap_or_default(),
        hash_type: s.hash_type.unwrap_or_default(),
        hash_balance_factor: s.hash_balance_factor.unwrap_or(0),
        persist_rdp_cookie: s.persist_rdp_cookie.clone(),
        servers: p.servers.clone(),
        default_server: s.default_server.clone(),
        timeouts: s.timeouts,
        options: s.options.clone(),
        log: s.log.clone(),
        retries: s.retries.unwrap_or(3),
        retry_on: s
            .retry_on
            .clone()
            .unwrap_or_else(|| vec!["conn-failure".to_string()]),
        http_reuse: s.http_reuse.unwrap_or_default(),
        fullconn: s.fullconn,
        cookie: s.cookie.clone(),
        acls: p.acls.clone(),
        http_request: p.http_request.clone(),
        http_response: p.http_response.clone(),
        http_after_response: p.http_after_response.clone(),
        tcp_request: p.tcp_request.clone(),
        http_check: s.http_check.clone(),
        tcp_check: s.tcp_check.clone(),
        errorfiles,
        stick_table: p.stick_table.clone(),
        stick_rules: p.stick_rules.clone(),
        server_rules: p.server_rules.clone(),
        persist_rules: p.persist_rules.clone(),
        stats: p.stats.clone(),
        other: s.other.clone(),
    }
}

/// `default_backend`/`use_backend` targets exist and have a compatible mode.
fn check_frontend_refs(cx: &mut Cx, f: &Frontend, backends: &[Backend], proxies: &[ProxyDraft]) {
    let draft = proxies
        .iter()
        .find(|p| p.name == f.name && p.kind.is_frontend());
    let explicit_default = draft.and_then(|p| p.settings.default_backend.clone());
    let mut refs: Vec<(crate::model::Loc, &str, String)> = f
        .use_backends
        .iter()
        .filter(|u| !u.dynamic)
        .map(|u| (u.loc.clone(), "use_backend", u.backend.clone()))
        .collect();
    if let Some((loc, name)) = explicit_default {
        refs.push((loc, "default_backend", name));
    }
    for (loc, what, name) in refs {
        match backends.iter().find(|b| b.name == name) {
            None => cx.alert(&loc, "", format!("Proxy '{}': unable to find required {what}: '{name}'.", f.name)),
            Some(b) if f.mode == Mode::Http && b.mode == Mode::Tcp => cx.alert(&loc, "", format!(
                "http frontend '{}' ({}:{}) tries to use incompatible tcp backend '{}' ({}:{}) as its {} (see 'mode').",
                f.name, f.loc.file, f.loc.line, b.name, b.loc.file, b.loc.line,
                if what == "use_backend" { "use_backend" } else { "default backend" }
            )),
            Some(_) => {}
        }
    }
}

/// A `default_backend` written in a backend (ignored with a warning) is still resolved by
/// HAProxy: it must exist and must not be the proxy itself.
fn check_backend_default(cx: &mut Cx, p: &ProxyDraft, backends: &[Backend]) {
    let Some((loc, name)) = &p.settings.default_backend else {
        return;
    };
    if name == &p.name {
        cx.alert(
            loc,
            "",
            format!(
                "Proxy '{}': loop detected for default_backend: '{name}'.",
                p.name
            ),
        );
    } else if p.kind == ProxyKind::Backend && !backends.iter().any(|b| &b.name == name) {
        cx.alert(
            loc,
            "",
            format!(
                "Proxy '{}': unable to find required default_backend: '{name}'.",
                p.name
            ),
        );
    }
}

/// Log-format variables haproxy only accepts in `mode http` proxies.
const HTTP_LOG_VARS: &[&str] = &[
    "r", "HM", "HU", "HP", "HPO", "HQ", "HV", "CC", "CS", "Tr", "Tq", "TR", "Ta", "Ti", "tr",
    "trg", "trl",
];

/// First `%X` / `%{flags}X` variable of `fmt` that needs HTTP mode.
fn http_only_log_var(fmt: &str) -> Option<String> {
    let b = fmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b.get(i) != Some(&b'%') {
            i += 1;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'{') {
            while i < b.len() && b.get(i) != Some(&b'}') {
                i += 1;
            }
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
        }
        let name = fmt.get(start..i).unwrap_or("");
        if HTTP_LOG_VARS.contains(&name) {
            return Some(name.to_string());
        }
    }
    None
}

/// The small sections proxies may reference.
#[derive(Clone, Copy)]
struct Sections<'a> {
    resolvers: &'a [crate::model::Resolvers],
    peers: &'a [crate::model::Peers],
    userlists: &'a [crate::model::Userlist],
    caches: &'a [crate::model::Cache],
}

/// References from a proxy to the small sections: `resolvers` on servers, `peers` on its
/// stick-table, `http_auth(<userlist>)` in ACLs, `cache-use`/`cache-store` caches.
fn check_section_refs(cx: &mut Cx, p: &ProxyDraft, d: Sections<'_>) {
    for s in &p.servers {
        if let Some(r) = &s.params.resolvers {
            // DNS SRV records (`_http._tcp.name`, servers and ports from the answer) are
            // not implemented: refused rather than resolved as an A name that never exists.
            if s.host.starts_with('_') {
                cx.alert(
                    &s.loc,
                    "server",
                    format!(
                        "proxy '{}', server '{}': SRV record '{}' is not supported by ringlb (use an A/AAAA name with a port).",
                        p.name, s.name, s.host
                    ),
                );
            }
            if !d.resolvers.iter().any(|x| &x.name == r) {
                cx.alert(
                    &s.loc,
                    "server",
                    format!(
                        "proxy '{}', server '{}': unable to find required resolvers '{r}'",
                        p.name, s.name
                    ),
                );
            }
        }
    }
    if let Some(t) = &p.stick_table {
        if let Some(peers) = &t.peers {
            if !d.peers.iter().any(|x| &x.name == peers) {
                cx.alert(
                    &t.loc,
                    "stick-table",
                    format!("Proxy '{}': unable to find sync peers '{peers}'.", p.name),
                );
            }
        }
    }
    for a in &p.acls {
        if a.sample.fetch.starts_with("http_auth") {
            if let Some(u) = a.sample.args.first() {
                if !d.userlists.iter().any(|x| &x.name == u) {
                    cx.alert(&a.loc, "acl", format!("unable to find userlist '{u}' referenced in arg 1 of ACL keyword '{}' in proxy '{}'.", a.sample.fetch, p.name));
                }
            }
        }
    }
    for r in p
        .http_request
        .iter()
        .chain(&p.http_response)
        .chain(&p.http_after_response)
    {
        if let HttpAction::Other { name, args } = &r.action {
            if name == "cache-use" || name == "cache-store" {
                let c = args.first().map(String::as_str).unwrap_or("");
                if !d.caches.iter().any(|x| x.name == c) {
                    cx.alert(&r.loc, name, format!("{} '{}': unable to find the cache '{c}' referenced by the filter 'cache'.", p.kind.word(), p.name));
                }
            }
        }
    }
}
