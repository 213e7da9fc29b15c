//! Health and agent checks, run by the control shard (issue #5).
//!
//! [`CheckPlan::from_config`] turns the config model into one job per checked server (and one
//! per agent); [`run`] starts a task per job on the control executor. Each task sleeps until
//! its next check, runs it ([`exec`]), and feeds the result to the [`Board`], which owns every
//! server's rise/fall state machine and returns what to do: HAProxy's log lines on stderr and
//! `ControlMsg`s broadcast to every worker shard. Slowstart ramps are recomputed on the
//! control tick. A snapshot of the counters ([`ServerCheckStats`]) is kept for the stats page.

pub mod board;
pub mod exec;
pub mod h2;
pub mod stream;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use glommio::channels::local_channel::LocalSender;
use ringlb_config::model::{Balance, Config};
use ringlb_health::state::{spread, CheckTiming};
use ringlb_health::CheckScript;
use ringlb_shard::{ControlMsg, Topology};

pub use board::{BackendSpec, Board, Effect, ServerCheckStats, ServerSpec};
pub use exec::CheckTarget;

/// HAProxy's `SRV_CHK_INTER_THRES`: shorter intervals do not shrink the start-up stagger.
const INTER_THRESHOLD: Duration = Duration::from_secs(1);

/// Which check a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Health,
    Agent,
}

/// One check task: a server's health check or its agent check.
#[derive(Debug, Clone)]
pub struct Job {
    pub backend: usize,
    pub server: usize,
    pub kind: JobKind,
    pub script: CheckScript,
    pub target: CheckTarget,
    /// When the first check runs after start (HAProxy staggers them).
    pub first_delay: Duration,
}

/// Everything the control shard needs to run the checks of a configuration.
#[derive(Debug, Clone, Default)]
pub struct CheckPlan {
    pub backends: Vec<BackendSpec>,
    pub jobs: Vec<Job>,
    /// `spread-checks` percentage (0: none).
    pub spread_checks: u32,
    /// `-q`: no state-change lines on stderr.
    pub quiet: bool,
    /// The global `log` targets the state-change lines also go to.
    pub syslog: Option<std::sync::Arc<std::sync::Mutex<crate::syslog::ControlLog>>>,
    /// `email-alert`: state changes mailed per backend.
    pub mail: crate::mail::MailPlan,
    /// Warnings about the plan (printed when the checks start, unless `-q`).
    pub warnings: Vec<String>,
    /// Per backend (the topology's order): how checks of servers added at run time are built.
    pub dynamic: Vec<DynamicTemplate>,
    /// `node` (else the host name), for `http-check send-state`.
    pub node: String,
    /// States restored from `server-state-file` (the messages the shards apply when built):
    /// the board takes them silently at start, so both agree on every server's state.
    pub initial: Vec<ControlMsg>,
}

/// What a backend gives the checks of a server added with `add server ... check`: its check
/// script (`option httpchk`, `tcp-check` rules...) and timeouts, as for configured servers.
#[derive(Debug, Clone)]
pub struct DynamicTemplate {
    /// The backend's check script, or why it cannot be built.
    pub script: Result<CheckScript, String>,
    pub timeout_connect: Option<Duration>,
    pub timeout_check: Option<Duration>,
    pub bufsize: usize,
    pub pp2_never_send_local: bool,
    /// The backend's name (`be_name` in check expressions).
    pub backend_name: String,
}

impl DynamicTemplate {
    /// The jobs of an added server: its health check (`check`) and agent (`agent-check`).
    pub fn jobs(
        &self,
        backend: usize,
        server: usize,
        srv: &ringlb_config::model::Server,
        addr: std::net::SocketAddr,
    ) -> Result<Vec<Job>, String> {
        let p = &srv.params;
        for a in [&p.check_addr, &p.agent.addr].into_iter().flatten() {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("'{a}' is not an IP address.\n"));
            }
        }
        let target = |inter: Duration| CheckTarget {
            server: addr,
            params: p.clone(),
            proxy_v2: p.send_proxy == Some(ringlb_config::model::ProxyProtocol::V2),
            pp2_never_send_local: self.pp2_never_send_local,
            inter,
            timeout_connect: self.timeout_connect,
            timeout_check: self.timeout_check,
            bufsize: self.bufsize,
            tls: None,
            names: (self.backend_name.clone(), srv.name.clone()),
        };
        let mut jobs = Vec::new();
        if p.check {
            let script = self.script.clone().map_err(|e| format!("{e}\n"))?;
            if script.uses_tls(p) || ringlb_health::script::ssl_checks(p) {
                return Err(
                    "checks over TLS are not supported by ringlb yet on a server added at run time.\n"
                        .into(),
                );
            }
            jobs.push(Job {
                backend,
                server,
                kind: JobKind::Health,
                script,
                target: target(CheckTiming::from_params(p).inter),
                first_delay: Duration::ZERO,
            });
        }
        if let Some(agent) = CheckScript::agent(p) {
            if p.agent.port.is_none() {
                return Err("'agent-check' needs 'agent-port'.\n".into());
            }
            jobs.push(Job {
                backend,
                server,
                kind: JobKind::Agent,
                script: agent,
                target: target(CheckTiming::agent_from_params(p).inter),
                first_delay: Duration::ZERO,
            });
        }
        Ok(jobs)
    }
}

/// The board's description of a server (configured or added at run time).
fn server_spec(
    srv: &ringlb_config::model::Server,
    weight: u32,
    maxconn: u32,
    track: Option<(usize, usize)>,
) -> ServerSpec {
    let p = &srv.params;
    ServerSpec {
        name: srv.name.clone(),
        backup: p.backup,
        disabled: p.disabled,
        weight,
        maxconn,
        check: p.check.then(|| CheckTiming::from_params(p)),
        agent: CheckScript::agent(p).map(|_| CheckTiming::agent_from_params(p)),
        slowstart: p.slowstart.filter(|d| !d.is_zero()),
        track,
        on_error: p
            .on_error
            .as_deref()
            .and_then(ringlb_health::state::OnError::parse)
            .unwrap_or_default(),
    }
}

/// Whether the algorithm accepts weight changes (HAProxy's `BE_LB_PROP_DYN`).
fn dynamic_weights(cfg: &ringlb_config::model::Backend) -> bool {
    match cfg.balance {
        Balance::StaticRr => false,
        Balance::Source
        | Balance::Uri { .. }
        | Balance::UrlParam { .. }
        | Balance::Hdr { .. }
        | Balance::RdpCookie { .. }
        | Balance::Hash { .. } => cfg.hash_type.consistent,
        _ => true,
    }
}

impl CheckPlan {
    /// No checks (a proxy without `check` anywhere).
    pub fn none() -> CheckPlan {
        CheckPlan::default()
    }

    /// Builds the jobs of every `check`/`agent-check` server of the backends in `topo`.
    /// Errors name the backend (a check script the health crate cannot build).
    pub fn from_config(cfg: &Config, topo: &Topology) -> Result<CheckPlan, Vec<String>> {
        let mut errors = Vec::new();
        let mut plan = CheckPlan {
            spread_checks: cfg.global.spread_checks.unwrap_or(0),
            node: topo.node.clone(),
            ..CheckPlan::default()
        };
        let tls_globals = ringlb_tls::TlsGlobals::from_global(&cfg.global);
        let enabled = cfg.backends.iter().filter(|b| !b.disabled);
        for (bi, (be, rt)) in enabled.zip(topo.backends.iter()).enumerate() {
            let dynamic = dynamic_weights(be);
            let mut spec = BackendSpec {
                name: be.name.clone(),
                from_listen: be.from_listen,
                dynamic_weights: dynamic,
                log_health_checks: be.options.log_health_checks,
                servers: Vec::with_capacity(be.servers.len()),
            };
            let built = CheckScript::from_backend(be);
            let script = if be.servers.iter().any(|s| s.params.check) {
                match &built {
                    Ok(s) => Some(s.clone()),
                    Err(e) => {
                        errors.push(format!("backend '{}': {e}", be.name));
                        None
                    }
                }
            } else {
                None
            };
            plan.dynamic.push(DynamicTemplate {
                backend_name: be.name.clone(),
                script: built,
                timeout_connect: be.timeouts.connect,
                timeout_check: be.timeouts.check,
                bufsize: topo.tune.bufsize.max(1024),
                pp2_never_send_local: cfg
                    .global
                    .other
                    .iter()
                    .any(|d| d.keyword == "pp2-never-send-local"),
            });
            for (si, (srv, srt)) in be.servers.iter().zip(rt.servers.iter()).enumerate() {
                let p = &srv.params;
                for (kw, a) in [("addr", &p.check_addr), ("agent-addr", &p.agent.addr)] {
                    if let Some(a) = a
                        .as_deref()
                        .filter(|a| a.parse::<std::net::IpAddr>().is_err())
                    {
                        errors.push(format!(
                            "server '{}/{}': '{kw} {a}' is not an IP address; name resolution is not supported by ringlb yet",
                            be.name, srv.name
                        ));
                    }
                }
                if let (true, Some(proto), Some(sc)) = (p.check, check_proto(p), script.as_ref()) {
                    // haproxy 2.6's `init_srv_check`: an HTTP check needs an HTTP mux, any
                    // other check the raw one (`none`).
                    let http = sc.kind() == ringlb_health::CheckKind::Http;
                    if http != (proto != "none") {
                        errors.push(format!(
                            "config: backend '{}': server '{}' uses an incompatible MUX protocol for the selected check type",
                            be.name, srv.name
                        ));
                    } else if proto == "fcgi" {
                        errors.push(format!(
                            "'server {}/{}' : 'check-proto fcgi' is not supported by ringlb (health checks speak h1 or h2)",
                            be.name, srv.name
                        ));
                    }
                }
                let check = p.check.then(|| CheckTiming::from_params(p));
                let agent = CheckScript::agent(p);
                let agent_timing = agent.as_ref().map(|_| CheckTiming::agent_from_params(p));
                let track = p.track.as_deref().and_then(|t| {
                    let found = resolve_track(cfg, &be.name, t);
                    if found.is_none() {
                        errors.push(format!(
                            "backend '{}', server '{}': unable to find required server '{t}' for tracking.",
                            be.name, srv.name
                        ));
                    }
                    found
                });
                spec.servers
                    .push(server_spec(srv, srt.weight, srt.maxconn, track));
                // Checks over TLS use the server line's TLS settings (verify, ca-file...).
                let tls = if check.is_some()
                    && script
                        .as_ref()
                        .is_some_and(|sc| sc.uses_tls(p) || ringlb_health::script::ssl_checks(p))
                {
                    let alpns = script.as_ref().map(|sc| sc.alpns(p)).unwrap_or_default();
                    if let Some(a) = alpns
                        .iter()
                        .flat_map(|a| a.split(','))
                        .find(|a| *a != "http/1.1" && *a != "h2")
                    {
                        errors.push(format!(
                            "'server {}/{}' : ALPN '{a}' for health checks is not supported by ringlb (only h2 and http/1.1)",
                            be.name, srv.name
                        ));
                    }
                    match check_tls(p, &tls_globals) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            errors.push(format!("'server {}/{}' : {e}", be.name, srv.name));
                            None
                        }
                    }
                } else {
                    None
                };
                let target = |inter: Duration| CheckTarget {
                    server: srt.addr,
                    params: p.clone(),
                    proxy_v2: p.send_proxy == Some(ringlb_config::model::ProxyProtocol::V2),
                    pp2_never_send_local: cfg
                        .global
                        .other
                        .iter()
                        .any(|d| d.keyword == "pp2-never-send-local"),
                    inter,
                    timeout_connect: be.timeouts.connect,
                    timeout_check: be.timeouts.check,
                    bufsize: topo.tune.bufsize.max(1024),
                    tls: tls.clone(),
                    names: (be.name.clone(), srv.name.clone()),
                };
                // A tracking server follows the tracked one instead of checking on its own.
                if let (Some(t), Some(s), None) = (check, script.as_ref(), track) {
                    plan.jobs.push(Job {
                        backend: bi,
                        server: si,
                        kind: JobKind::Health,
                        script: s.clone(),
                        target: target(t.inter),
                        first_delay: Duration::ZERO,
                    });
                }
                if let (Some(t), Some(s)) = (agent_timing, agent) {
                    if p.agent.port.is_none() {
                        errors.push(format!(
                            "server '{}/{}': 'agent-check' needs 'agent-port'",
                            be.name, srv.name
                        ));
                        continue;
                    }
                    plan.jobs.push(Job {
                        backend: bi,
                        server: si,
                        kind: JobKind::Agent,
                        script: s,
                        target: target(t.inter),
                        first_delay: Duration::ZERO,
                    });
                }
            }
            plan.backends.push(spec);
        }
        check_tracked(&plan.backends, &mut errors);
        plan.mail = crate::mail::MailPlan::from_config(cfg, &mut errors, &mut plan.warnings);
        if !errors.is_empty() {
            return Err(errors);
        }
        plan.stagger();
        Ok(plan)
    }

    /// HAProxy's `start_checks`: the first checks are spread evenly over the smallest interval
    /// (of those of at least 1s), the last-declared backend first.
    fn stagger(&mut self) {
        let first_inter = |j: &Job| -> Duration {
            let spec = self
                .backends
                .get(j.backend)
                .and_then(|b| b.servers.get(j.server));
            let timing = spec.and_then(|s| match j.kind {
                JobKind::Health => s.check,
                JobKind::Agent => s.agent,
            });
            // Servers start UP one failure from DOWN: `fastinter` applies (srv_getinter).
            timing.map_or(j.target.inter, |t| t.fastinter.unwrap_or(t.inter))
        };
        let inters: Vec<Duration> = self.jobs.iter().map(first_inter).collect();
        let min_inter = inters
            .iter()
            .filter(|d| **d >= INTER_THRESHOLD)
            .min()
            .copied()
            .unwrap_or(Duration::ZERO);
        let n = u32::try_from(self.jobs.len()).unwrap_or(u32::MAX);
        let mut order: Vec<usize> = (0..self.jobs.len()).collect();
        // proxies are walked last-declared first; servers (health, then agent) in order.
        order.sort_by_key(|&i| {
            let j = &self.jobs[i];
            (
                std::cmp::Reverse(j.backend),
                j.server,
                j.kind == JobKind::Agent,
            )
        });
        for (pos, &i) in order.iter().enumerate() {
            let own = inters.get(i).copied().unwrap_or(Duration::ZERO);
            let base = min_inter.max(own);
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            if let Some(j) = self.jobs.get_mut(i) {
                j.first_delay = ringlb_health::state::initial_delay(base, pos, n);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// The client config of a server's checks over TLS: its `ssl` settings, as HAProxy shares
/// them between traffic and checks; errors are HAProxy's alerts (e.g. `verify` without
/// `ca-file`).
fn check_tls(
    p: &ringlb_config::model::ServerParams,
    globals: &ringlb_tls::TlsGlobals,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match ringlb_tls::build_server(&p.ssl, globals, now) {
        Ok(t) => Ok(t.for_shard()),
        Err(diags) => Err(diags
            .iter()
            .filter(|d| d.is_alert())
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// The server's `check-proto` value, if any.
fn check_proto(p: &ringlb_config::model::ServerParams) -> Option<&str> {
    p.other
        .iter()
        .rev()
        .find(|(k, _)| k == "check-proto")
        .and_then(|(_, v)| v.as_deref())
}

/// `track [<backend>/]<server>`: indices among the enabled backends (the topology's order).
fn resolve_track(cfg: &Config, own: &str, target: &str) -> Option<(usize, usize)> {
    let (be_name, srv_name) = target.split_once('/').unwrap_or((own, target));
    let (bi, be) = cfg
        .backends
        .iter()
        .filter(|b| !b.disabled)
        .enumerate()
        .find(|(_, b)| b.name == be_name)?;
    let si = be.servers.iter().position(|s| s.name == srv_name)?;
    Some((bi, si))
}

/// Every tracking chain must end at a server with a health or agent check, without loops
/// (HAProxy's wording).
fn check_tracked(backends: &[BackendSpec], errors: &mut Vec<String>) {
    let get = |(b, s): (usize, usize)| {
        backends
            .get(b)
            .and_then(|be| be.servers.get(s).map(|x| (be, x)))
    };
    for be in backends {
        for srv in &be.servers {
            let mut at = srv.track;
            let mut hops = 0;
            while let Some(next) = at {
                let Some((tbe, t)) = get(next) else { break };
                hops += 1;
                if hops > backends.iter().map(|b| b.servers.len()).sum::<usize>() {
                    errors.push(format!(
                        "backend '{}', server '{}': tracking loop through '{}/{}'.",
                        be.name, srv.name, tbe.name, t.name
                    ));
                    break;
                }
                if t.track.is_none() && t.check.is_none() && t.agent.is_none() {
                    errors.push(format!(
                        "backend '{}', server '{}': unable to use {}/{} for tracking as it does not have any check nor agent enabled.",
                        be.name, srv.name, tbe.name, t.name
                    ));
                }
                at = t.track;
            }
        }
    }
}

/// The counters the stats page reads, updated by the control shard after every check (only
/// the servers a check changed are rewritten); `lastchg` and `downtime` are brought up to the
/// time of reading.
#[derive(Debug, Clone, Default)]
pub struct CheckStatsHandle(Arc<Mutex<StatsStore>>);

#[derive(Debug, Default)]
struct StatsStore {
    stats: Vec<ServerCheckStats>,
    /// When each entry was written.
    written: Vec<Option<Instant>>,
    /// Where the stats renderers read check results: every write is published there too,
    /// with each entry placed at its (backend, server) indices of the topology.
    publish: Option<(Arc<ringlb_shard::StatsBoard>, Arc<ringlb_shard::Topology>)>,
    /// Slots per backend of the board (configured servers, then added ones), the layout of
    /// `stats`; empty until the checks start (then entries are placed by name).
    layout: Vec<usize>,
}

impl CheckStatsHandle {
    /// A copy of the latest counters of every server of every backend.
    pub fn snapshot(&self) -> Vec<ServerCheckStats> {
        let Ok(store) = self.0.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        store
            .stats
            .iter()
            .zip(store.written.iter())
            .filter(|(st, _)| !st.removed)
            .map(|(st, at)| {
                let mut st = st.clone();
                let since = at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                st.lastchg += since;
                // DOWN by its health check (the check's downtime counter runs).
                if st.status.starts_with("DOWN") && !st.status.contains("(agent)") {
                    st.downtime += since;
                }
                st
            })
            .collect()
    }

    /// The stats board the shards publish their counters to, once known.
    fn stats_board(&self) -> Option<Arc<ringlb_shard::StatsBoard>> {
        let g = self.0.lock().ok()?;
        g.publish.as_ref().map(|(board, _)| board.clone())
    }

    /// Whether backend `b` hands a down server's queue to the backend's (`option redispatch`).
    fn requeues_on_down(&self, b: usize) -> bool {
        let Ok(g) = self.0.lock() else { return false };
        g.publish
            .as_ref()
            .and_then(|(_, topo)| topo.backends.get(b))
            .is_some_and(|be| be.requeues_on_down())
    }

    /// Also publish every update to the stats board (the stats page and `show stat` read it).
    pub fn publish_to(
        &self,
        board: Arc<ringlb_shard::StatsBoard>,
        topo: Arc<ringlb_shard::Topology>,
    ) {
        if let Ok(mut g) = self.0.lock() {
            g.publish = Some((board, topo));
            g.publish_now();
        }
    }

    fn store_all(&self, v: Vec<ServerCheckStats>, layout: Vec<usize>) {
        if let Ok(mut g) = self.0.lock() {
            g.layout = layout;
            g.written = vec![Some(Instant::now()); v.len()];
            g.stats = v;
            g.publish_now();
        }
    }

    fn store_one(&self, index: usize, st: ServerCheckStats) {
        if let Ok(mut g) = self.0.lock() {
            if let Some(slot) = g.stats.get_mut(index) {
                *slot = st;
            }
            if let Some(w) = g.written.get_mut(index) {
                *w = Some(Instant::now());
            }
            g.publish_now();
        }
    }
}

/// haproxy's syslog form of an alert: `backend be has no server available!` (no quotes,
/// unlike its stderr line `backend 'be' has no server available!`).
fn syslog_text(m: &str) -> std::borrow::Cow<'_, str> {
    if m.ends_with(" has no server available!") {
        std::borrow::Cow::Owned(m.replacen('\'', "", 2))
    } else {
        std::borrow::Cow::Borrowed(m)
    }
}

fn pid() -> u32 {
    std::process::id()
}

/// Shared by the check tasks of the control shard.
struct Driver {
    syslog: Option<std::sync::Arc<std::sync::Mutex<crate::syslog::ControlLog>>>,
    board: RefCell<Board>,
    out: LocalSender<ControlMsg>,
    stats: CheckStatsHandle,
    start: Instant,
    quiet: bool,
    spread_checks: u32,
    rng: RefCell<u64>,
    /// `set server B/S addr`: where the server's checks go now (their own `addr`/`port`
    /// options still win, as in haproxy).
    addrs: RefCell<std::collections::HashMap<(usize, usize), std::net::SocketAddr>>,
    /// `set server B/S check-port`: the port the server's health checks connect to now
    /// (a `tcp-check connect port` still wins, as in haproxy).
    ports: RefCell<std::collections::HashMap<(usize, usize), u16>>,
    /// Servers in resolution maintenance (`crate::dns`): their health checks pause, as
    /// haproxy's do in maintenance (no address to check).
    unresolved: RefCell<std::collections::HashSet<(usize, usize)>>,
    mail: crate::mail::MailPlan,
    /// How checks of servers added at run time are built, per backend (replaced by an
    /// in-process reload).
    dynamic: RefCell<Vec<DynamicTemplate>>,
    /// Bumped by an in-process reload: check tasks of an older plan end at their next turn.
    generation: Cell<u64>,
    /// Whether the slowstart tick runs.
    ticking: Cell<bool>,
    node: String,
}

impl Driver {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Rewrites every server's counters (the board's layout changed).
    fn store_all(&self) {
        let board = self.board.borrow();
        self.stats
            .store_all(board.snapshot(self.now()), board.layout());
    }

    fn random(&self) -> u32 {
        // SplitMix64: `spread-checks` only needs a spread, seeded from the start time.
        let mut x = self.rng.borrow_mut();
        *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }

    /// Logs and broadcasts `effects` of a check of (b, s), then refreshes the counters of the
    /// servers involved.
    fn apply(&self, b: usize, s: usize, effects: Vec<Effect>) {
        self.apply_inner(b, s, effects, false);
    }

    /// [`Driver::apply`] for effects whose messages were already broadcast.
    fn apply_sent(&self, b: usize, s: usize, effects: Vec<Effect>) {
        self.apply_inner(b, s, effects, true);
    }

    fn apply_inner(&self, b: usize, s: usize, effects: Vec<Effect>, msgs_sent: bool) {
        let mut touched = vec![(b, s)];
        for e in &effects {
            if let Effect::Msg(
                ControlMsg::SetServerHealth {
                    backend, server, ..
                }
                | ControlMsg::SetServerWeight {
                    backend, server, ..
                }
                | ControlMsg::SetServerAdmin {
                    backend, server, ..
                }
                | ControlMsg::SetServerMaxconn {
                    backend, server, ..
                },
            ) = e
            {
                touched.push((*backend, *server));
            }
        }
        self.mail(b, &effects);
        if msgs_sent {
            self.emit(
                effects
                    .into_iter()
                    .filter(|e| !matches!(e, Effect::Msg(_)))
                    .collect(),
            );
        } else {
            self.emit(effects);
        }
        let board = self.board.borrow();
        for (b, s) in touched {
            if let Some((i, st)) = board.server_stats(b, s, self.now()) {
                self.stats.store_one(i, st);
            }
        }
    }

    /// Asks every shard to publish its counters (`PublishStats`, off the request path, as
    /// `show stat` does), before a result that takes a server DOWN: the request goes out
    /// ahead of the DOWN broadcast, so each shard publishes what it had before applying it
    /// (before `on-marked-down shutdown-sessions` closes anything).
    fn ask_load(&self) -> Option<(Arc<ringlb_shard::StatsBoard>, u64)> {
        let board = self.stats.stats_board()?;
        let seq = board.next_seq();
        self.out.try_send(ControlMsg::PublishStats { seq }).ok()?;
        Some((board, seq))
    }

    /// Logs and broadcasts `effects` of a result that took (b, s) DOWN, asked for with
    /// [`Driver::ask_load`]: the broadcast at once, the DOWN line once the shards have
    /// published (at most 100 ms, then the last copies), with the sessions on the server and
    /// the requests in its queue (its `scur` and `qcur` in `show stat`).
    async fn apply_counted(
        &self,
        b: usize,
        s: usize,
        mut effects: Vec<Effect>,
        (board, seq): (Arc<ringlb_shard::StatsBoard>, u64),
    ) {
        // The server, and those that track it (`Server be2/t1 is DOWN via be/s1`): each
        // DOWN line counts its own server's sessions.
        let mut going: Vec<(usize, usize)> = vec![(b, s)];
        for e in &effects {
            if let Effect::Msg(ControlMsg::SetServerHealth {
                backend,
                server,
                up: false,
            }) = e
            {
                going.push((*backend, *server));
            }
        }
        let starts: Vec<(String, (usize, usize))> = {
            let board = self.board.borrow();
            going
                .iter()
                .filter_map(|&(gb, gs)| Some((board.down_line_start(gb, gs)?, (gb, gs))))
                .collect()
        };
        let line_of = |m: &str| {
            starts
                .iter()
                .find(|(st, _)| m.starts_with(st.as_str()))
                .map(|(_, at)| *at)
        };
        if !effects
            .iter()
            .any(|e| matches!(e, Effect::Warning(m) if line_of(m).is_some()))
        {
            self.apply(b, s, effects);
            return;
        }
        for e in &effects {
            if let Effect::Msg(m) = e {
                // Unbounded local queue, drained by the forwarder task.
                let _ = self.out.try_send(m.clone());
            }
        }
        self.fill_down_lines(&mut effects, &starts, (board, seq))
            .await;
        self.apply_sent(b, s, effects);
    }

    /// Puts the counts of the servers in the lines of `effects` beginning as `starts` say,
    /// once the shards have published for `seq` (at most 100 ms, then their last copies): the
    /// sessions on each server, and the requests in its queue as requeued (`option
    /// redispatch`) or remaining (`status::with_down_load`).
    async fn fill_down_lines(
        &self,
        effects: &mut [Effect],
        starts: &[(String, (usize, usize))],
        (board, seq): (Arc<ringlb_shard::StatsBoard>, u64),
    ) {
        let line_of = |m: &str| {
            starts
                .iter()
                .find(|(st, _)| m.starts_with(st.as_str()))
                .map(|(_, at)| *at)
        };
        let deadline = Instant::now() + Duration::from_millis(100);
        let counters = loop {
            if let Some(c) = board.try_collect(seq) {
                break Some(c);
            }
            if Instant::now() >= deadline {
                break board.latest();
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        };
        let load = |(gb, gs): (usize, usize)| {
            counters
                .as_ref()
                .and_then(|c| {
                    let row = c.servers.get(gb)?.get(gs)?;
                    Some((row.cur_sess, row.queue_cur))
                })
                .unwrap_or((0, 0))
        };
        for e in effects.iter_mut() {
            if let Effect::Warning(m) = e {
                if let Some(at) = line_of(m) {
                    // Counted before the DOWN applied: the shards then hand the server's queue
                    // to the backend's under `option redispatch` (`queue::redistribute`).
                    let (sessions, queued) = load(at);
                    let (requeued, queued) = if self.stats.requeues_on_down(at.0) {
                        (queued, 0)
                    } else {
                        (0, queued)
                    };
                    if let Some(line) =
                        ringlb_health::status::with_down_load(m, sessions, requeued, queued)
                    {
                        *m = line;
                    }
                }
            }
        }
    }

    /// Marks a check of (b, s) as running (`* ` on the stats page) and publishes it.
    fn running(&self, b: usize, s: usize, agent: bool, busy: bool) {
        let mut board = self.board.borrow_mut();
        board.set_in_progress(b, s, agent, busy);
        if let Some((i, st)) = board.server_stats(b, s, self.now()) {
            self.stats.store_one(i, st);
        }
    }

    /// As [`Driver::apply`], but the messages are returned instead of sent.
    fn apply_returning(&self, b: usize, s: usize, effects: Vec<Effect>) -> Vec<ControlMsg> {
        let mut msgs = Vec::new();
        let mut rest = Vec::new();
        for e in effects {
            match e {
                Effect::Msg(m) => msgs.push(m),
                other => rest.push(other),
            }
        }
        let mut touched = vec![(b, s)];
        for m in &msgs {
            if let ControlMsg::SetServerHealth {
                backend, server, ..
            }
            | ControlMsg::SetServerWeight {
                backend, server, ..
            }
            | ControlMsg::SetServerAdmin {
                backend, server, ..
            }
            | ControlMsg::SetServerMaxconn {
                backend, server, ..
            } = m
            {
                touched.push((*backend, *server));
            }
        }
        self.mail(b, &rest);
        self.emit(rest);
        let board = self.board.borrow();
        for (b, s) in touched {
            if let Some((i, st)) = board.server_stats(b, s, self.now()) {
                self.stats.store_one(i, st);
            }
        }
        msgs
    }

    /// `email-alert`: mails the state-change lines of a check of backend `b`.
    fn mail(&self, b: usize, effects: &[Effect]) {
        if self.mail.is_empty() {
            return;
        }
        for e in effects {
            if let Effect::Warning(m) = e {
                if let Some(level) = crate::mail::level_of(m) {
                    self.mail.alert(b, level, m);
                }
            }
        }
    }

    fn emit(&self, effects: Vec<Effect>) {
        if let Some(log) = &self.syslog {
            if let Ok(mut log) = log.lock() {
                for e in &effects {
                    match e {
                        Effect::Warning(m) => {
                            log.send(crate::syslog::ControlLog::level_of_warning(m), m)
                        }
                        Effect::Alert(m) => log.send(ringlb_log::Level::EMERG, &syslog_text(m)),
                        Effect::Msg(_) => {}
                    }
                }
            }
        }
        for e in effects {
            match e {
                Effect::Warning(m) if !self.quiet => eprintln!("[WARNING]  ({}) : {m}", pid()),
                Effect::Alert(m) if !self.quiet => eprintln!("[ALERT]    ({}) : {m}", pid()),
                Effect::Msg(msg) => {
                    // Unbounded local queue, drained by the forwarder task.
                    let _ = self.out.try_send(msg);
                }
                _ => {}
            }
        }
    }
}

/// Starts the check tasks and the slowstart tick on the current (control) executor; they run
/// until the executor stops. Messages for the shards come out of the returned receiver, in
/// order.
pub fn run(
    plan: CheckPlan,
    stats: CheckStatsHandle,
) -> glommio::channels::local_channel::LocalReceiver<ControlMsg> {
    start(plan, stats).0
}

/// The runtime socket's way into the running checks' [`Board`]: its changes get the same log
/// lines and counts as check results; the caller broadcasts the messages it gets back.
#[derive(Clone)]
pub struct ChecksHandle(Rc<Driver>);

/// Each method logs what the board says and returns the messages for the caller to broadcast
/// itself, so a command's effect is on every shard before its answer is written.
impl ChecksHandle {
    /// `set server B/S state ...`. Into maintenance, its line counts the sessions on the
    /// server and its queue as a DOWN line does (the shards publish their counters first,
    /// at most 100 ms are waited for them).
    pub async fn set_admin(
        &self,
        b: usize,
        s: usize,
        state: ringlb_shard::AdminState,
    ) -> Vec<ControlMsg> {
        let counted = if state == ringlb_shard::AdminState::Maint {
            self.0
                .board
                .borrow()
                .maint_line_start(b, s)
                .zip(self.0.ask_load())
        } else {
            None
        };
        let mut e = self
            .0
            .board
            .borrow_mut()
            .set_admin(b, s, state, self.0.now());
        if let Some((start, load)) = counted {
            self.0
                .fill_down_lines(&mut e, &[(start, (b, s))], load)
                .await;
        }
        self.0.apply_returning(b, s, e)
    }

    /// `set weight` / `set server B/S weight`.
    pub fn set_weight(&self, b: usize, s: usize, weight: u32) -> Vec<ControlMsg> {
        let e = self
            .0
            .board
            .borrow_mut()
            .set_weight(b, s, weight, self.0.now());
        self.0.apply_returning(b, s, e)
    }

    /// `set server B/S health|agent up|down`; `None` when the server has no such check.
    pub fn force_health(
        &self,
        b: usize,
        s: usize,
        agent: bool,
        up: bool,
    ) -> Option<Vec<ControlMsg>> {
        let e = self
            .0
            .board
            .borrow_mut()
            .force_health(b, s, agent, up, self.0.now())?;
        Some(self.0.apply_returning(b, s, e))
    }

    /// Routes a state change sent by another part of the process (the stats page's admin
    /// form) through the board, so its log lines and counts stay right; returns what to
    /// broadcast (the message itself when the board does not track that server).
    pub async fn route(&self, msg: ControlMsg) -> Vec<ControlMsg> {
        let known = |b: usize, s: usize| self.0.board.borrow().has_server(b, s);
        match msg {
            ControlMsg::SetServerAdmin {
                backend,
                server,
                state,
            } if known(backend, server) => self.set_admin(backend, server, state).await,
            ControlMsg::SetServerWeight {
                backend,
                server,
                weight,
            } if known(backend, server) => self.set_weight(backend, server, weight),
            ControlMsg::SetServerHealth {
                backend,
                server,
                up,
            } => self
                .force_health(backend, server, false, up)
                .unwrap_or_else(|| vec![msg]),
            // A worker's `observe` report: the board decides; nothing to forward as such.
            ControlMsg::HealthAnalyze {
                backend,
                server,
                info,
            } => {
                let e =
                    self.0
                        .board
                        .borrow_mut()
                        .health_analyze(backend, server, &info, self.0.now());
                self.0.apply_returning(backend, server, e)
            }
            other => vec![other],
        }
    }

    /// In-process reload: the checks of the new configuration replace the old ones (whose
    /// tasks end at their next turn). The board starts over from `plan`, then takes the
    /// carried-over runtime changes silently (the shards get them as the new topology's
    /// `initial` messages), so both agree on every server's state.
    pub fn reload(&self, plan: CheckPlan, carried: &[ControlMsg]) {
        let d = &self.0;
        d.generation.set(d.generation.get() + 1);
        *d.dynamic.borrow_mut() = plan.dynamic;
        let now = d.now();
        let mut board = Board::new(plan.backends);
        let addrs = take_silently(&mut board, carried, now);
        *d.board.borrow_mut() = board;
        *d.addrs.borrow_mut() = addrs;
        // Re-set by name by the caller (`set_check_port`).
        d.ports.borrow_mut().clear();
        d.store_all();
        spawn_jobs(d, plan.jobs);
    }

    /// Logs lines of other control-shard subsystems (DNS resolution) as the checks' are:
    /// stderr unless quiet, and the global syslog targets.
    pub fn log(&self, warnings: Vec<String>, alerts: Vec<String>) {
        let effects = warnings
            .into_iter()
            .map(Effect::Warning)
            .chain(alerts.into_iter().map(Effect::Alert))
            .collect();
        self.0.emit(effects);
    }

    /// `set server B/S addr`: the server's next checks go to `addr`.
    pub fn set_addr(&self, b: usize, s: usize, addr: std::net::SocketAddr) {
        self.0.addrs.borrow_mut().insert((b, s), addr);
    }

    /// Resolution maintenance starts (`true`) or ends for a server: its health checks
    /// pause meanwhile.
    pub fn set_unresolved(&self, b: usize, s: usize, unresolved: bool) {
        let mut set = self.0.unresolved.borrow_mut();
        if unresolved {
            set.insert((b, s));
        } else {
            set.remove(&(b, s));
        }
    }

    /// `set server B/S check-port`: the server's next health checks go to `port`.
    pub fn set_check_port(&self, b: usize, s: usize, port: u16) {
        self.0.ports.borrow_mut().insert((b, s), port);
    }

    /// The ports set with `set_check_port`, by (backend, server) index.
    pub fn check_ports(&self) -> Vec<((usize, usize), u16)> {
        self.0
            .ports
            .borrow()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    /// Whether the board tracks this server.
    pub fn knows(&self, b: usize, s: usize) -> bool {
        self.0.board.borrow().has_server(b, s)
    }

    /// `add server`: tracks the server added at shard slot `s` of backend `b` and starts its
    /// check tasks (idle until `enable health` / `enable agent`). `Err` is the reply for the
    /// runtime socket (nothing was added to the board).
    pub fn add_server(
        &self,
        b: usize,
        s: usize,
        srv: &ringlb_config::model::Server,
        rt: &ringlb_shard::topology::ServerRt,
        enabled: bool,
    ) -> Result<(), String> {
        let jobs = self
            .0
            .dynamic
            .borrow()
            .get(b)
            .ok_or_else(|| "checks are not available for this backend.\n".to_string())?
            .jobs(b, s, srv, rt.addr)?;
        let mut spec = server_spec(srv, rt.weight, rt.maxconn, None);
        spec.disabled = !enabled;
        if !self
            .0
            .board
            .borrow_mut()
            .add_server(b, s, spec, self.0.now())
        {
            return Err("the server's slot is out of step with the shards.\n".into());
        }
        self.0.store_all();
        let generation = self.0.generation.get();
        for job in jobs {
            glommio::spawn_local(check_task(self.0.clone(), job, generation)).detach();
        }
        Ok(())
    }

    /// Whether the checks of `srv` can be built for backend `b` (before anything changes).
    pub fn validate(
        &self,
        b: usize,
        srv: &ringlb_config::model::Server,
        addr: std::net::SocketAddr,
    ) -> Result<(), String> {
        self.0
            .dynamic
            .borrow()
            .get(b)
            .ok_or_else(|| "checks are not available for this backend.\n".to_string())?
            .jobs(b, 0, srv, addr)
            .map(|_| ())
    }

    /// `del server`: the server's check tasks end at their next turn.
    pub fn remove_server(&self, b: usize, s: usize) {
        self.0.board.borrow_mut().remove_server(b, s);
        self.0.store_all();
    }

    /// The counters of one server, by its shard slot.
    pub fn server_stats(&self, b: usize, s: usize) -> Option<ServerCheckStats> {
        let board = self.0.board.borrow();
        board.server_stats(b, s, self.0.now()).map(|(_, st)| st)
    }

    /// `enable|disable health|agent B/S`.
    pub fn set_check_enabled(&self, b: usize, s: usize, agent: bool, enabled: bool) {
        self.0
            .board
            .borrow_mut()
            .set_check_enabled(b, s, agent, enabled);
        let st = self.0.board.borrow().server_stats(b, s, self.0.now());
        if let Some((i, st)) = st {
            self.0.stats.store_one(i, st);
        }
    }

    /// Counters and results of every server now (for `show servers state`).
    pub fn snapshot(&self) -> Vec<ServerCheckStats> {
        self.0.board.borrow().snapshot(self.0.now())
    }

    /// `srv_check_status`, `srv_check_result` and `srv_check_health` of a server's health
    /// check (`agent`: of its agent check), as `show servers state` prints them.
    /// The server's user weight (`srv_uweight`: the configured one until an agent reply or
    /// `set weight` changes it).
    pub fn user_weight(&self, b: usize, s: usize) -> Option<u32> {
        self.0.board.borrow().user_weight(b, s)
    }

    /// Whether a health check (`agent`: agent check) of (b, s) runs now (`CHK_ST_INPROGRESS`).
    pub fn in_progress(&self, b: usize, s: usize, agent: bool) -> bool {
        self.0.board.borrow().in_progress(b, s, agent)
    }

    pub fn check_columns(&self, b: usize, s: usize, agent: bool) -> Option<(u8, u8, u32)> {
        let board = self.0.board.borrow();
        let st = if agent {
            board.agent_state(b, s)
        } else {
            board.check_state(b, s)
        }?;
        let status = st
            .last_result()
            .map_or(ringlb_health::status::CheckStatus::Init, |r| r.status);
        Some((status_code(status), result_code(status), st.health()))
    }
}

/// HAProxy's `HCHK_STATUS_*` number of a status (the enum follows its order).
fn status_code(s: ringlb_health::status::CheckStatus) -> u8 {
    s as u8
}

/// HAProxy's `CHK_RES_*` for the result a status reports.
fn result_code(s: ringlb_health::status::CheckStatus) -> u8 {
    use ringlb_health::status::CheckStatus as S;
    match s {
        S::Unknown | S::Init | S::Start => 0,
        S::Checked => 1,
        S::L4Ok | S::L6Ok | S::L7Ok | S::ProcOk => 3,
        S::L7OkCond => 4,
        _ => 2,
    }
}

/// Applies state changes made before the board existed (carried over a reload, restored from
/// a state file) without logging them; the check addresses they set.
fn take_silently(
    board: &mut Board,
    carried: &[ControlMsg],
    now: Duration,
) -> std::collections::HashMap<(usize, usize), std::net::SocketAddr> {
    let mut addrs = std::collections::HashMap::new();
    for m in carried {
        match *m {
            ControlMsg::SetServerAdmin {
                backend,
                server,
                state,
            } => drop(board.set_admin(backend, server, state, now)),
            ControlMsg::SetServerWeight {
                backend,
                server,
                weight,
            } => drop(board.set_weight(backend, server, weight, now)),
            ControlMsg::SetServerHealth {
                backend,
                server,
                up,
            } => drop(board.force_health(backend, server, false, up, now)),
            ControlMsg::SetServerAddr {
                backend,
                server,
                addr,
            } => drop(addrs.insert((backend, server), addr)),
            _ => {}
        }
    }
    addrs
}

/// As [`run`], and a handle for the runtime socket. Without jobs no task starts, but the board
/// still tracks admin states and weights set at runtime.
pub fn start(
    plan: CheckPlan,
    stats: CheckStatsHandle,
) -> (
    glommio::channels::local_channel::LocalReceiver<ControlMsg>,
    ChecksHandle,
) {
    let (tx, rx) = glommio::channels::local_channel::new_unbounded();
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut board = Board::new(plan.backends);
    let addrs = take_silently(&mut board, &plan.initial, Duration::ZERO);
    let driver = Rc::new(Driver {
        syslog: plan.syslog.clone(),
        board: RefCell::new(board),
        out: tx,
        stats,
        start: Instant::now(),
        quiet: plan.quiet,
        spread_checks: plan.spread_checks,
        rng: RefCell::new(seed),
        addrs: RefCell::new(addrs),
        ports: RefCell::new(std::collections::HashMap::new()),
        unresolved: RefCell::new(std::collections::HashSet::new()),
        mail: plan.mail,
        dynamic: RefCell::new(plan.dynamic),
        generation: Cell::new(0),
        ticking: Cell::new(false),
        node: plan.node,
    });
    if !plan.quiet {
        for w in &plan.warnings {
            eprintln!("[WARNING]  ({}) : {w}", pid());
        }
    }
    driver.store_all();
    spawn_jobs(&driver, plan.jobs);
    (rx, ChecksHandle(driver))
}

/// Starts the check tasks of `jobs` (of the driver's current generation) and the slowstart
/// tick if it does not run yet.
fn spawn_jobs(driver: &Rc<Driver>, jobs: Vec<Job>) {
    let has_slowstart = !jobs.is_empty();
    let generation = driver.generation.get();
    for job in jobs {
        let d = driver.clone();
        glommio::spawn_local(check_task(d, job, generation)).detach();
    }
    if has_slowstart && !driver.ticking.replace(true) {
        let d = driver.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(100)).await;
                let effects = d.board.borrow_mut().tick(d.now());
                if let Some(Effect::Msg(ControlMsg::SetServerWeight {
                    backend, server, ..
                })) = effects.first()
                {
                    let (b, s) = (*backend, *server);
                    d.apply(b, s, effects);
                }
            }
        })
        .detach();
    }
}

async fn check_task(d: Rc<Driver>, job: Job, generation: u64) {
    glommio::timer::sleep(job.first_delay).await;
    loop {
        if d.generation.get() != generation {
            return; // an in-process reload replaced the plan
        }
        let agent = job.kind == JobKind::Agent;
        if d.board.borrow().is_removed(job.backend, job.server) {
            // `del server`: this task ends with the server.
            return;
        }
        let unresolved = !agent && d.unresolved.borrow().contains(&(job.backend, job.server));
        if unresolved
            || !d
                .board
                .borrow()
                .check_enabled(job.backend, job.server, agent)
        {
            // `disable health|agent`: skip turns until it is enabled again.
            glommio::timer::sleep(job.target.inter.max(Duration::from_millis(1))).await;
            continue;
        }
        let moved = d.addrs.borrow().get(&(job.backend, job.server)).copied();
        let port = (job.kind == JobKind::Health)
            .then(|| d.ports.borrow().get(&(job.backend, job.server)).copied())
            .flatten();
        let target = match (moved, port) {
            (None, None) => std::borrow::Cow::Borrowed(&job.target),
            (moved, port) => {
                let mut t = job.target.clone();
                if let Some(addr) = moved {
                    t.server = addr;
                }
                if port.is_some() {
                    t.params.check_port = port;
                }
                std::borrow::Cow::Owned(t)
            }
        };
        // Asked for before a result that takes the server DOWN (its line counts sessions).
        let mut load = None;
        let effects = match job.kind {
            JobKind::Health => {
                let unix = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |t| t.as_secs() as u32);
                let state = (!job.script.state_header_at.is_empty())
                    .then(|| {
                        d.board.borrow().state_header(
                            job.backend,
                            job.server,
                            target.server,
                            &d.node,
                            d.now(),
                        )
                    })
                    .flatten();
                d.running(job.backend, job.server, false, true);
                ringlb_shard::counters::CHECK_SESSIONS
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let r = exec::run_health(&job.script, &target, unix, state.as_deref()).await;
                if !r.status.is_pass()
                    && d.board.borrow().failure_goes_down(job.backend, job.server)
                {
                    // This failure takes the server DOWN: its line counts the sessions.
                    load = d.ask_load();
                }
                let now = d.now();
                let mut board = d.board.borrow_mut();
                board.set_in_progress(job.backend, job.server, false, false);
                board.record_check(job.backend, job.server, &r, now)
            }
            JobKind::Agent => {
                d.running(job.backend, job.server, true, true);
                ringlb_shard::counters::CHECK_SESSIONS
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let r = exec::run_agent(&job.script, &target).await;
                let down = matches!(&r, Ok((ringlb_health::agent::AgentParse::Reply(a), _))
                    if a.health.is_some_and(|h| h != ringlb_health::agent::AgentHealth::Up));
                if down && d.board.borrow().is_running(job.backend, job.server) {
                    // `down`, `stopped`, `fail`: its DOWN line counts the sessions.
                    load = d.ask_load();
                }
                let now = d.now();
                let mut board = d.board.borrow_mut();
                board.set_in_progress(job.backend, job.server, true, false);
                board.record_agent(job.backend, job.server, r, now)
            }
        };
        if d.generation.get() != generation {
            return; // the result is about the old configuration's server
        }
        match load {
            Some(asked) => {
                d.apply_counted(job.backend, job.server, effects, asked)
                    .await
            }
            None => d.apply(job.backend, job.server, effects),
        }
        let inter = {
            let board = d.board.borrow();
            match job.kind {
                JobKind::Health => board.check_interval(job.backend, job.server),
                JobKind::Agent => board.agent_interval(job.backend, job.server),
            }
        }
        .unwrap_or(job.target.inter);
        let wait = spread(inter, d.spread_checks, d.random());
        glommio::timer::sleep(wait.max(Duration::from_millis(1))).await;
    }
}

impl StatsStore {
    /// Rebuilds the board's per-server health from the stored results (rare: check results).
    fn publish_now(&self) {
        let Some((board, topo)) = &self.publish else {
            return;
        };
        let now_ms = board.now_ms();
        let mut out: Vec<Vec<ringlb_shard::ServerHealth>> = topo
            .backends
            .iter()
            .map(|b| vec![ringlb_shard::ServerHealth::default(); b.servers.len()])
            .collect();
        // The board's slots are the shards' (added servers after the configured ones).
        let mut at = Vec::with_capacity(self.stats.len());
        if self.layout.is_empty() {
            for st in &self.stats {
                let bi = topo.backends.iter().position(|b| b.name == st.backend);
                let si = bi.and_then(|bi| {
                    topo.backends
                        .get(bi)
                        .and_then(|b| b.servers.iter().position(|s| s.name == st.server))
                });
                at.push(bi.zip(si));
            }
        } else {
            for (bi, n) in self.layout.iter().enumerate() {
                at.extend((0..*n).map(|si| Some((bi, si))));
            }
        }
        for (st, pos) in self.stats.iter().zip(at) {
            let Some((bi, si)) = pos.filter(|_| !st.removed) else {
                continue;
            };
            let Some(v) = out.get_mut(bi) else {
                continue;
            };
            if v.len() <= si {
                v.resize(si + 1, ringlb_shard::ServerHealth::default());
            }
            let Some(slot) = v.get_mut(si) else {
                continue;
            };
            let check = |h: Option<(u32, u32, u32)>,
                         status: &str,
                         code: Option<u16>,
                         dur: Option<u64>,
                         info: &str,
                         in_progress: bool| {
                h.map(|(rise, fall, health)| ringlb_stats::CheckStats {
                    status: status.to_string(),
                    // `check_desc`/`agent_desc`: the status's long form, as haproxy prints.
                    desc: ringlb_health::status::CheckStatus::from_short_name(status)
                        .map_or("", ringlb_health::status::CheckStatus::description)
                        .to_string(),
                    code: code.map(u32::from),
                    duration_ms: dur,
                    info: info.to_string(),
                    rise,
                    fall,
                    health,
                    in_progress,
                })
            };
            *slot = ringlb_shard::ServerHealth {
                check: check(
                    st.check_health,
                    &st.check_status,
                    st.check_code,
                    st.check_duration,
                    &st.last_chk,
                    st.check_in_progress,
                ),
                agent: check(
                    st.agent_health,
                    &st.agent_status,
                    st.agent_code,
                    None,
                    &st.last_agt,
                    st.agent_in_progress,
                ),
                maxconn: Some(st.maxconn),
                failed_checks: st.chkfail,
                down_trans: st.chkdown,
                last_change_ms: now_ms
                    .saturating_sub(u64::try_from(st.lastchg.as_millis()).unwrap_or(u64::MAX)),
                down_time_ms: u64::try_from(st.downtime.as_millis()).unwrap_or(u64::MAX),
            };
        }
        board.set_health(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> CheckPlan {
        let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
        let topo = Topology::from_config(&loaded.config).unwrap();
        CheckPlan::from_config(&loaded.config, &topo).unwrap()
    }

    const HEAD: &str = "defaults\n mode http\n timeout connect 1s\n timeout client 1s\n timeout server 1s\nfrontend fe\n bind 127.0.0.1:1\n default_backend a\n";

    #[test]
    fn jobs_timings_and_first_checks_staggered_as_haproxy() {
        let p = plan(&format!(
            "{HEAD}backend a\n timeout check 300ms\n server s1 127.0.0.1:2 check inter 2s\n server s2 127.0.0.1:3 check inter 4s agent-check agent-port 9 agent-inter 1s\n server s3 127.0.0.1:4\nbackend b\n balance static-rr\n server t1 127.0.0.1:5 check inter 1s port 8080\n"
        ));
        let summary: Vec<(usize, usize, JobKind, u128)> = p
            .jobs
            .iter()
            .map(|j| (j.backend, j.server, j.kind, j.first_delay.as_millis()))
            .collect();
        // Four checks; the smallest interval >= 1s is 1s; the last backend starts first
        // (position 0), then a/s1 (1), a/s2 (2), a/s2's agent (3); each at
        // max(min_inter, own inter) * position / 4.
        assert_eq!(
            summary,
            vec![
                (0, 0, JobKind::Health, 2000 / 4),
                (0, 1, JobKind::Health, 4000 * 2 / 4),
                (0, 1, JobKind::Agent, 1000 * 3 / 4),
                (1, 0, JobKind::Health, 0),
            ]
        );
        let t = &p.jobs[0].target;
        assert_eq!(t.timeout_check, Some(Duration::from_millis(300)));
        assert_eq!(t.timeout_connect, Some(Duration::from_secs(1)));
        assert_eq!(p.jobs[3].target.params.check_port, Some(8080));
        assert!(p.backends[0].dynamic_weights && !p.backends[1].dynamic_weights);
        assert_eq!(p.backends[0].servers[2].check, None, "s3 has no check");
    }

    #[test]
    fn check_addresses_must_be_ip_addresses() {
        let text = format!("{HEAD}backend a\n server s1 127.0.0.1:2 check addr db.local\n");
        let loaded = ringlb_config::parse_str("t.cfg", &text).unwrap();
        let topo = Topology::from_config(&loaded.config).unwrap();
        let e = CheckPlan::from_config(&loaded.config, &topo).unwrap_err();
        assert_eq!(
            e,
            vec!["server 'a/s1': 'addr db.local' is not an IP address; name resolution is not supported by ringlb yet"]
        );
    }

    #[test]
    fn track_resolves_and_needs_a_checked_server() {
        let p = plan(&format!(
            "{HEAD}backend a\n server s1 127.0.0.1:2 check\n server s2 127.0.0.1:3\nbackend b\n server t1 127.0.0.1:4 track a/s1\n server t2 127.0.0.1:5 track t1\n"
        ));
        assert_eq!(p.backends[1].servers[0].track, Some((0, 0)));
        assert_eq!(p.backends[1].servers[1].track, Some((1, 0)));
        // Missing targets and unchecked chains are refused by the config crate (haproxy -c's
        // wording); the plan re-checks them only as a guard.
        let mut backends = p.backends.clone();
        backends[0].servers[0].check = None;
        let mut errors = Vec::new();
        check_tracked(&backends, &mut errors);
        assert_eq!(
            errors,
            vec![
                "backend 'b', server 't1': unable to use a/s1 for tracking as it does not have any check nor agent enabled.",
                // t2 tracks t1, whose chain ends at the same unchecked server.
                "backend 'b', server 't2': unable to use a/s1 for tracking as it does not have any check nor agent enabled.",
            ]
        );
    }

    #[test]
    fn check_proto_follows_the_check_type() {
        let refused = |servers: &str, backend: &str| {
            let text =
                format!("{HEAD}backend a\n{backend} server s1 127.0.0.1:2 check {servers}\n");
            let loaded = ringlb_config::parse_str("t.cfg", &text).unwrap();
            let topo = Topology::from_config(&loaded.config).unwrap();
            CheckPlan::from_config(&loaded.config, &topo).unwrap_err()
        };
        // haproxy 2.6's words, for an HTTP mux on a non-HTTP check and the other way round.
        let incompatible = vec![
            "config: backend 'a': server 's1' uses an incompatible MUX protocol for the selected check type".to_string(),
        ];
        assert_eq!(refused("check-proto h2", ""), incompatible);
        assert_eq!(
            refused("check-proto h1", " option tcp-check\n"),
            incompatible
        );
        assert_eq!(
            refused("check-proto none", " option httpchk\n"),
            incompatible
        );
        let e = refused("check-proto fcgi", " option httpchk\n");
        assert!(
            e[0].contains("'check-proto fcgi' is not supported by ringlb"),
            "{e:?}"
        );
        for (servers, backend) in [
            ("check-proto h1", " option httpchk\n"),
            ("check-proto h2", " option httpchk\n"),
            ("check-proto none", " option tcp-check\n"),
            ("check-proto none", ""),
        ] {
            let p = plan(&format!(
                "{HEAD}backend a\n{backend} server s1 127.0.0.1:2 check {servers}\n"
            ));
            assert_eq!(p.jobs.len(), 1, "{servers} {backend}");
        }
    }

    #[test]
    fn no_check_no_jobs() {
        let p = plan(&format!("{HEAD}backend a\n server s1 127.0.0.1:2\n"));
        assert!(p.is_empty());
    }
}
