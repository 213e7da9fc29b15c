//! The process [`Snapshot`] the stats renderers take: configuration and ids from the topology,
//! server states from a shard (identical on every shard: they come from the control shard),
//! health-check details from the control shard's board, counters merged from every shard.

use ringlb_config::model::Mode;
use ringlb_stats::{
    AdminState as StatAdmin, BackendStats, FrontendStats, ListenState, ListenerStats, OperState,
    ProcessInfo, ProxyMode, ProxyStats, ServerStats, Snapshot,
};

use crate::counters::{ServerHealth, ShardCounters};
use crate::state::{AdminState, ShardState};
use crate::topology::Topology;

/// Process facts the topology does not hold.
#[derive(Debug, Clone, Default)]
pub struct ProcessFacts {
    pub pid: u32,
    pub nbthread: u32,
    pub start_unix_s: u64,
    pub ulimit_n: u64,
    pub node: String,
    pub stopping: bool,
}

pub fn build(
    topo: &Topology,
    state: &ShardState,
    counters: &ShardCounters,
    health: &[Vec<ServerHealth>],
    now_ms: u64,
    facts: &ProcessFacts,
) -> Snapshot {
    let proxies = topo
        .proxies
        .iter()
        .map(|p| {
            let fe = p
                .frontend
                .and_then(|i| topo.frontends.get(i).map(|f| (i, f)));
            let be = p.backend.and_then(|i| topo.backends.get(i).map(|b| (i, b)));
            let mode = match fe.map(|(_, f)| f.mode).or(be.map(|(_, b)| b.mode)) {
                Some(Mode::Tcp) => ProxyMode::Tcp,
                _ => ProxyMode::Http,
            };
            let frontend = fe.map(|(i, f)| FrontendStats {
                counters: counters.frontends.get(i).cloned().unwrap_or_default(),
                // 0 (unset): haproxy gives the frontend the configured global `maxconn`.
                maxconn: match state
                    .limits
                    .fe_maxconn
                    .get(i)
                    .map_or(f.maxconn, std::cell::Cell::get)
                {
                    0 => topo.maxconn,
                    m => m,
                },
                rate_limit_sessions: f.rate_limit_sessions,
                state: match state.limits.frontend(i) {
                    _ if facts.stopping => ListenState::Stop,
                    crate::state::FrontendRun::Stopped => ListenState::Stop,
                    crate::state::FrontendRun::Paused => ListenState::Paused,
                    crate::state::FrontendRun::Ready => ListenState::Open,
                },
            });
            let listeners = fe
                .filter(|(_, f)| f.socket_stats)
                .map(|(i, f)| {
                    f.binds
                        .iter()
                        .enumerate()
                        .map(|(bi, b)| ListenerStats {
                            name: b.name.clone().unwrap_or_else(|| format!("sock-{}", b.id)),
                            id: b.id,
                            addr: match b.unix {
                                Some(_) => "unix".into(),
                                None => b.addr.to_string(),
                            },
                            state: ListenState::Open,
                            maxconn: b.maxconn,
                            counters: counters
                                .listeners
                                .get(i)
                                .and_then(|v| v.get(bi))
                                .cloned()
                                .unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let (backend, servers) = match be {
                None => (None, Vec::new()),
                Some((i, b)) => {
                    // The shard's list: configured servers and those added at run time
                    // (`add server`); deleted ones keep their slot but are not shown.
                    let servers: Vec<ServerStats> = state
                        .servers(i)
                        .iter()
                        .enumerate()
                        .filter(|(_, st)| !st.deleted.get())
                        .map(|(si, st)| {
                            let s = &st.rt;
                            let h = health.get(i).and_then(|v| v.get(si));
                            let admin = st.admin.get();
                            ServerStats {
                                name: s.name.clone(),
                                id: st.puid,
                                // haproxy shows no address for a server in resolution
                                // maintenance (it forgets it).
                                addr: if st.rmaint.get() {
                                    String::new()
                                } else {
                                    st.addr.get().to_string()
                                },
                                oper: if st.up.get() {
                                    OperState::Running
                                } else {
                                    OperState::Stopped
                                },
                                admin: StatAdmin {
                                    maint: st.admin_set.get() == AdminState::Maint,
                                    maint_resolution: st.rmaint.get(),
                                    drain: admin == AdminState::Drain,
                                    ..StatAdmin::default()
                                },
                                weight: st.weight.get(),
                                uweight: s.weight,
                                backup: s.backup,
                                maxconn: h.and_then(|h| h.maxconn).unwrap_or(s.maxconn),
                                maxqueue: s.maxqueue,
                                cookie: s.cookie.clone(),
                                // Paused in resolution maintenance: shown as none,
                                // as haproxy shows a check paused by maintenance.
                                check: h.and_then(|h| h.check.clone()).filter(|_| !st.rmaint.get()),
                                agent: h.and_then(|h| h.agent.clone()),
                                failed_checks: h.map_or(0, |h| h.failed_checks),
                                down_trans: h.map_or(0, |h| h.down_trans),
                                last_change_ms: h.map_or(0, |h| h.last_change_ms),
                                down_time_ms: h.map_or(0, |h| h.down_time_ms),
                                counters: counters
                                    .servers
                                    .get(i)
                                    .and_then(|v| v.get(si))
                                    .cloned()
                                    .unwrap_or_default(),
                                latency: counters
                                    .server_latency
                                    .get(i)
                                    .and_then(|v| v.get(si))
                                    .cloned()
                                    .unwrap_or_default(),
                                // `observe` on a checked server: `hanafail` is shown.
                                observe: s.observe.is_some(),
                                ..ServerStats::default()
                            }
                        })
                        .collect();
                    let mut backend = BackendStats {
                        counters: counters.backends.get(i).cloned().unwrap_or_default(),
                        latency: counters.backend_latency.get(i).cloned().unwrap_or_default(),
                        algo: ringlb_stats::skeleton::algo_name(&b.balance.balance).to_string(),
                        // `slim` of a backend (haproxy_backend_limit_sessions).
                        fullconn: b.fullconn,
                        cookie: b.cookie.as_ref().map(|c| c.name.clone()),
                        allbackups: b.balance.options.allbackups,
                        ..BackendStats::default()
                    };
                    // The `h1` module's open server connections and streams: the HTTP/1
                    // server connections the pools hold (idle and in use; one stream each
                    // while in use), read with the gauges rather than counted on the way.
                    if b.mode == Mode::Http {
                        let m = &mut backend.counters.mux;
                        for s in servers.iter().map(|s: &ServerStats| &s.counters) {
                            let (idle, used) = (s.idle_conn_cur, s.used_conn_cur);
                            m.h1_open_connections += u64::from(idle) + u64::from(used);
                            m.h1_open_streams += u64::from(used);
                        }
                    }
                    (Some(backend), servers)
                }
            };
            ProxyStats {
                name: p.name.clone(),
                id: p.id,
                mode,
                desc: p.desc.clone(),
                stopped: false,
                frontend,
                backend,
                listeners,
                servers,
            }
        })
        .collect();
    let process_counters = counters.process.clone();
    let tables = state
        .stick
        .borrow()
        .iter()
        .enumerate()
        .map(|(i, (_, t))| ringlb_stats::StickTableStats {
            name: t.name().to_string(),
            key_type: t.config().key.name().to_string(),
            size: t.config().size as u64,
            used: counters.stick_used.get(i).copied().unwrap_or(0),
        })
        .collect();
    Snapshot {
        now_ms,
        process: ProcessInfo {
            name: "ringlb".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            release_date: ringlb_stats::RELEASE_DATE.into(),
            nbthread: facts.nbthread,
            pid: facts.pid,
            start_time_unix_s: facts.start_unix_s,
            ulimit_n: facts.ulimit_n,
            maxsock: topo.fds.maxsock,
            maxconn: state.limits.maxconn.get(),
            hard_maxconn: topo.maxconn,
            conn_rate_limit: state.limits.conn_rate.get(),
            sess_rate_limit: state.limits.sess_rate.get(),
            ssl_rate_limit: state.limits.ssl_rate.get(),
            node: facts.node.clone(),
            description: topo.description.clone(),
            stopping: facts.stopping,
            counters: process_counters,
            ..ProcessInfo::default()
        },
        proxies,
        tables,
    }
}
