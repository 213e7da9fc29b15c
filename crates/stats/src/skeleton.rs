//! The static part of the [`Snapshot`] built from the configuration model: proxies with
//! HAProxy's ids, modes and limits, listeners (`option socket-stats`), servers with their
//! ids, addresses, weights and check parameters, and the stats page settings. The engine
//! builds it once per configuration and then only updates state and counters.

use crate::admin::Credential;
use crate::model::*;
use crate::page::PageConfig;
use ringlb_config::model::{Backend, Balance, Config, Directive, Frontend, Loc, Mode, Stats};
use std::collections::BTreeSet;

fn mode(m: Mode) -> ProxyMode {
    match m {
        Mode::Tcp => ProxyMode::Tcp,
        Mode::Http => ProxyMode::Http,
    }
}

/// HAProxy's `backend_lb_algo_str`.
pub fn algo_name(b: &Balance) -> &'static str {
    match b {
        Balance::Roundrobin => "roundrobin",
        Balance::StaticRr => "static-rr",
        Balance::Leastconn => "leastconn",
        Balance::First => "first",
        Balance::Source => "source",
        Balance::Uri { .. } => "uri",
        Balance::UrlParam { .. } => "url_param",
        Balance::Hdr { .. } => "hdr",
        Balance::Random { .. } => "random",
        Balance::RdpCookie { .. } => "rdp-cookie",
        Balance::Hash { .. } => "hash",
    }
}

fn directive<'a>(other: &'a [Directive], kw: &str) -> Option<&'a Directive> {
    other.iter().find(|d| d.keyword == kw)
}

/// One proxy of the configuration in declaration order: a frontend, a backend, or both
/// halves of a `listen`.
struct Decl<'a> {
    loc: &'a Loc,
    name: &'a str,
    fe: Option<&'a Frontend>,
    be: Option<&'a Backend>,
}

fn declarations(cfg: &Config) -> Vec<Decl<'_>> {
    let mut v: Vec<Decl<'_>> = Vec::new();
    for fe in &cfg.frontends {
        v.push(Decl {
            loc: &fe.loc,
            name: &fe.name,
            fe: Some(fe),
            be: None,
        });
    }
    for be in &cfg.backends {
        match v
            .iter_mut()
            .find(|d| be.from_listen && d.name == be.name && d.be.is_none())
        {
            Some(d) => d.be = Some(be),
            None => v.push(Decl {
                loc: &be.loc,
                name: &be.name,
                fe: None,
                be: Some(be),
            }),
        }
    }
    let file_rank = |l: &Loc| {
        cfg.files
            .iter()
            .position(|f| f.display().to_string() == *l.file)
            .unwrap_or(0)
    };
    v.sort_by_key(|d| (file_rank(d.loc), d.loc.line));
    v
}

fn explicit_id(d: &Decl<'_>) -> Option<u32> {
    let other =
        d.fe.map(|f| &f.other[..])
            .or(d.be.map(|b| &b.other[..]))
            .unwrap_or(&[]);
    directive(other, "id")?.args.first()?.parse().ok()
}

/// Ids as HAProxy assigns them: explicit `id`s kept, the others the next free number in
/// declaration order, starting at 1 — or at 2 when a `stats socket` exists (its internal
/// CLI frontend takes 1).
pub fn assign_ids(explicit: &[Option<u32>], first: u32) -> Vec<u32> {
    let mut used: BTreeSet<u32> = explicit.iter().flatten().copied().collect();
    let mut next = first;
    explicit
        .iter()
        .map(|e| {
            let id = match e {
                Some(id) => *id,
                None => {
                    while used.contains(&next) {
                        next += 1;
                    }
                    used.insert(next);
                    next
                }
            };
            // Every proxy moves the counter on, one with an explicit id too
            // (`check_config_validity`): `id 7` on the 2nd of 3 proxies gives 1, 7, 3.
            next += 1;
            id
        })
        .collect()
}

fn frontend_stats(fe: &Frontend, global_maxconn: u32) -> FrontendStats {
    let rate = directive(&fe.other, "rate-limit")
        .and_then(|d| d.args.last())
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    FrontendStats {
        counters: FrontendCounters::default(),
        maxconn: fe.maxconn.unwrap_or(global_maxconn),
        rate_limit_sessions: rate,
        state: if fe.disabled {
            ListenState::Stop
        } else {
            ListenState::Open
        },
    }
}

fn listeners(fe: &Frontend) -> Vec<ListenerStats> {
    if fe.options.other.get("socket-stats") != Some(&true) {
        return vec![];
    }
    let mut out = Vec::new();
    let ids = fe.listener_ids();
    for b in &fe.binds {
        let mut addrs: Vec<String> = b.addrs.iter().map(ToString::to_string).collect();
        if b.unix_path.is_some() {
            addrs.push("unix".into());
        }
        for addr in addrs {
            let id = ids.get(out.len()).copied().unwrap_or(u32::MAX);
            out.push(ListenerStats {
                name: b.name.clone().unwrap_or_else(|| format!("sock-{id}")),
                id,
                addr,
                state: ListenState::Open,
                maxconn: b.maxconn.unwrap_or(0),
                counters: ListenerCounters::default(),
            });
        }
    }
    out
}

/// A check's state before its first result: UP, one failure from DOWN (`INI`).
fn initial_check(rise: u32, fall: u32) -> CheckStats {
    CheckStats {
        status: "INI".into(),
        desc: "Initializing".into(),
        code: None,
        duration_ms: None,
        info: String::new(),
        rise,
        fall,
        health: rise,
        in_progress: false,
    }
}

fn servers(be: &Backend) -> Vec<ServerStats> {
    let explicit: Vec<Option<u32>> = be.servers.iter().map(|s| s.params.id).collect();
    let ids = assign_ids(&explicit, 1);
    be.servers
        .iter()
        .zip(ids)
        .map(|(s, id)| {
            let p = &s.params;
            let addr = match s.addr {
                Some(a) => a.to_string(),
                None => format!("{}:{}", s.host, s.port.unwrap_or(0)),
            };
            let (rise, fall) = (p.rise.unwrap_or(2), p.fall.unwrap_or(3));
            ServerStats {
                name: s.name.clone(),
                id,
                addr,
                oper: OperState::Running,
                admin: AdminState {
                    maint: p.disabled,
                    ..AdminState::default()
                },
                weight: p.weight_or_default(),
                uweight: p.weight_or_default(),
                backup: p.backup,
                maxconn: p.maxconn.unwrap_or(0),
                maxqueue: p.maxqueue.unwrap_or(0),
                tracked: p.track.as_ref().map(|t| {
                    if t.contains('/') {
                        t.clone()
                    } else {
                        format!("{}/{t}", be.name)
                    }
                }),
                cookie: p.cookie.clone(),
                check: p.check.then(|| initial_check(rise, fall)),
                agent: p.agent.enabled.then(|| initial_check(1, 1)),
                observe: p.observe.is_some(),
                max_idle_conns: p.pool_max_conn.and_then(|n| u32::try_from(n).ok()),
                ..ServerStats::default()
            }
        })
        .collect()
}

/// `fullconn`, or HAProxy's default: 10% of the `maxconn` of the frontends that can use the
/// backend (`default_backend`, static `use_backend`, a `listen`'s own), at least 1.
fn fullconn(cfg: &Config, be: &Backend, global_maxconn: u32) -> u32 {
    if let Some(f) = be.fullconn {
        return f;
    }
    let total: u64 = cfg
        .frontends
        .iter()
        .filter(|fe| {
            (fe.from_listen && be.from_listen && fe.name == be.name)
                || fe.default_backend.as_deref() == Some(&be.name)
                || fe
                    .use_backends
                    .iter()
                    .any(|u| !u.dynamic && u.backend == be.name)
        })
        .map(|fe| u64::from(fe.maxconn.unwrap_or(global_maxconn)))
        .sum();
    u32::try_from(total.div_ceil(10)).unwrap_or(u32::MAX).max(1)
}

/// The snapshot of `cfg` before any traffic or check. `global_maxconn` is the effective
/// global `maxconn` (HAProxy derives it from the file-descriptor limit when unset).
pub fn skeleton(cfg: &Config, global_maxconn: u32) -> Snapshot {
    let decls = declarations(cfg);
    let explicit: Vec<Option<u32>> = decls.iter().map(explicit_id).collect();
    let first = if cfg.global.stats_sockets.is_empty() {
        1
    } else {
        2
    };
    let ids = assign_ids(&explicit, first);
    let proxies = decls
        .iter()
        .zip(ids)
        .map(|(d, id)| {
            let m =
                d.fe.map(|f| f.mode)
                    .or(d.be.map(|b| b.mode))
                    .unwrap_or_default();
            let other =
                d.fe.map(|f| &f.other[..])
                    .or(d.be.map(|b| &b.other[..]))
                    .unwrap_or(&[]);
            ProxyStats {
                name: d.name.to_string(),
                id,
                mode: mode(m),
                desc: directive(other, "description").map(|x| x.args.join(" ")),
                stopped: d.fe.is_some_and(|f| f.disabled) || d.be.is_some_and(|b| b.disabled),
                frontend: d.fe.map(|f| frontend_stats(f, global_maxconn)),
                backend: d.be.map(|b| BackendStats {
                    algo: algo_name(&b.balance).into(),
                    fullconn: fullconn(cfg, b, global_maxconn),
                    cookie: b.cookie.as_ref().map(|c| c.name.clone()),
                    allbackups: b.options.allbackups,
                    latency: crate::latency::LatencyHistograms::new(),
                    ..BackendStats::default()
                }),
                listeners: d.fe.map(listeners).unwrap_or_default(),
                servers: d.be.map(servers).unwrap_or_default(),
            }
        })
        .collect();
    Snapshot {
        now_ms: 0,
        process: ProcessInfo {
            name: "HAProxy".into(),
            nbthread: cfg.global.nbthread.unwrap_or(1),
            maxconn: global_maxconn,
            hard_maxconn: global_maxconn,
            node: cfg.global.node.clone().unwrap_or_default(),
            description: cfg.global.description.clone(),
            ..ProcessInfo::default()
        },
        proxies,
        tables: Vec::new(),
    }
}

/// The stats page settings of the `stats` keywords of proxy `proxy` (`stats scope .` names
/// that proxy).
pub fn page_config(stats: &Stats, proxy: &str) -> PageConfig {
    PageConfig {
        uri: stats.uri.clone().unwrap_or_else(|| "/haproxy?stats".into()),
        refresh_s: stats
            .refresh
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
        hide_version: stats.hide_version,
        show_node: stats.show_node.clone().map(Option::unwrap_or_default),
        show_desc: stats.show_desc.clone(),
        show_legends: stats.show_legends,
        scopes: stats
            .scope
            .iter()
            .map(|s| if s == "." { proxy } else { s.as_str() }.to_string())
            .collect(),
        admin: false,
    }
}

/// `stats auth` credentials.
pub fn credentials(stats: &Stats) -> Vec<Credential> {
    stats
        .auths
        .iter()
        .map(|(u, p)| Credential {
            user: u.clone(),
            password: p.clone(),
        })
        .collect()
}

/// A `userlist`'s `insecure-password` users as credentials for the stats page, and the
/// names of users with a crypt(3) hash (`password`), which this crate cannot check.
pub fn userlist_credentials(ul: &ringlb_config::model::Userlist) -> (Vec<Credential>, Vec<String>) {
    use ringlb_config::model::Password;
    let mut plain = Vec::new();
    let mut hashed = Vec::new();
    for u in &ul.users {
        match &u.password {
            Password::Insecure(p) => plain.push(Credential {
                user: u.name.clone(),
                password: p.clone(),
            }),
            Password::Hashed(_) => hashed.push(u.name.clone()),
        }
    }
    (plain, hashed)
}
