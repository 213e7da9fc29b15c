//! The control shard's view of every checked backend: the health-check and agent-check state
//! machines of each server, its agent-set admin state, weight and maxconn, and what the worker
//! shards were last told. Check results go in; log lines and `ControlMsg`s come out
//! ([`Effect`]). No sockets and no clocks (`now` is passed in), so it is unit-tested alone.
//!
//! A server takes new traffic ("usable", HAProxy's `srv_currently_usable`) when it is not in
//! maintenance or drain, its effective weight is not 0, its health check says UP (or it has
//! none) and its agent has not said `down`.

use std::time::Duration;

use ringlb_health::agent::{self, AgentAdmin, AgentHealth, AgentParse};
use ringlb_health::state::{server_up, CheckState, CheckTiming, HealthState, OnError};
use ringlb_health::status::{self, BackendCounts, CheckResult, CheckStatus, Transition};
use ringlb_shard::{AdminState, ControlMsg};

/// What the board asks the driver to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `[WARNING]` line on stderr (HAProxy's `ha_warning`).
    Warning(String),
    /// `[ALERT]` line on stderr.
    Alert(String),
    /// Broadcast to every worker shard.
    Msg(ControlMsg),
}

/// How one server is configured, as the board needs it.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub name: String,
    pub backup: bool,
    /// `disabled`: starts in maintenance.
    pub disabled: bool,
    /// Configured weight (`weight`, the agent's `N%` is relative to it).
    pub weight: u32,
    pub maxconn: u32,
    /// Health check timing, when the server has `check`.
    pub check: Option<CheckTiming>,
    /// Agent check timing, when the server has `agent-check`.
    pub agent: Option<CheckTiming>,
    pub slowstart: Option<Duration>,
    /// `track [be/]srv`: this server follows another's state (backend, server indices).
    pub track: Option<(usize, usize)>,
    /// `on-error`: what a worker's `observe` report does to the health check.
    pub on_error: OnError,
}

/// How one backend is configured.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    pub name: String,
    /// A `listen` section: HAProxy says `proxy 'x'` instead of `backend 'x'`.
    pub from_listen: bool,
    /// `balance` is dynamic (slowstart ramps the weight; static-rr and map-based hashing
    /// cannot change weights, as in HAProxy).
    pub dynamic_weights: bool,
    /// `option log-health-checks`: every change of a check's status or health is logged.
    pub log_health_checks: bool,
    pub servers: Vec<ServerSpec>,
}

/// Counters and last results of one server, for the stats page (`show stat` fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCheckStats {
    pub backend: String,
    pub server: String,
    /// `status`: `UP`, `UP 1/3`, `DOWN`, `DOWN 1/2`, `NOLB`, `MAINT`, `DRAIN`, `no check`.
    pub status: String,
    /// `chkfail`: failed health checks.
    pub chkfail: u64,
    /// `chkdown`: UP → DOWN transitions.
    pub chkdown: u64,
    /// `lastchg`: time since the last state change, at the snapshot.
    pub lastchg: Duration,
    /// `downtime`: total time DOWN, at the snapshot.
    pub downtime: Duration,
    /// `check_status` (`L4OK`, `L7STS`, ...; `INI` before the first result).
    pub check_status: String,
    /// `check_code`: HTTP status or protocol code of the last check.
    pub check_code: Option<u16>,
    /// `check_duration` in milliseconds.
    pub check_duration: Option<u64>,
    /// `last_chk`: info text of the last check.
    pub last_chk: String,
    /// A health check / agent check is running now: haproxy prints `* ` before its status.
    pub check_in_progress: bool,
    pub agent_in_progress: bool,
    /// `agent_status` / `agent_code` / `last_agt`.
    pub agent_status: String,
    pub agent_code: Option<u16>,
    pub last_agt: String,
    /// Effective weight the shards use now (slowstart and agent included).
    pub weight: u32,
    /// Current maxconn (the agent may change it).
    pub maxconn: u32,
    /// Takes new traffic.
    pub usable: bool,
    /// (rise, fall, health counter) of the health check and of the agent, for the stats
    /// page's `UP 1/3`-style states.
    pub check_health: Option<(u32, u32, u32)>,
    pub agent_health: Option<(u32, u32, u32)>,
    /// Deleted at run time (`del server`): kept in place, shown nowhere.
    pub removed: bool,
}

struct Srv {
    spec: ServerSpec,
    check: Option<HealthState>,
    agent: Option<HealthState>,
    admin: AdminState,
    /// User weight (configured, or set by the agent).
    uweight: u32,
    maxconn: u32,
    /// Start of the current slowstart ramp.
    ramp_since: Option<Duration>,
    /// Effective weight last broadcast.
    eweight: u32,
    /// Running as the shards see it (`SetServerHealth`).
    running: bool,
    /// The tracked server (`track`) is running.
    tracked_up: bool,
    agent_last: Option<CheckResult>,
    /// `disable health` / `disable agent` from the runtime socket: no checks run, results
    /// in flight are ignored, the state stays as it was (haproxy 2.6).
    check_off: bool,
    agent_off: bool,
    /// A health check / agent check of this server is running now.
    check_busy: bool,
    agent_busy: bool,
    /// Time of the last state change seen on the stats page and total DOWN time, for servers
    /// whose state comes from the agent or admin changes as well.
    last_change: Duration,
    /// `del server`: the slot stays (indexes never move, as on the shards), its checks stop.
    removed: bool,
}

struct Be {
    spec_name: String,
    from_listen: bool,
    dynamic_weights: bool,
    log_health_checks: bool,
    servers: Vec<Srv>,
}

/// Every checked backend's servers. One instance, owned by the control shard.
pub struct Board {
    backends: Vec<Be>,
}

impl Srv {
    fn new(s: ServerSpec) -> Srv {
        Srv {
            check: s.check.map(HealthState::new),
            agent: s.agent.map(HealthState::new),
            admin: if s.disabled {
                AdminState::Maint
            } else {
                AdminState::Ready
            },
            uweight: s.weight,
            maxconn: s.maxconn,
            ramp_since: None,
            eweight: s.weight,
            running: true,
            tracked_up: true,
            agent_last: None,
            check_off: false,
            agent_off: false,
            check_busy: false,
            agent_busy: false,
            last_change: Duration::ZERO,
            removed: false,
            spec: s,
        }
    }

    fn health_running(&self) -> bool {
        self.tracked_up && server_up(self.check.as_ref(), self.agent.as_ref())
    }

    fn usable_now(&self) -> bool {
        self.admin == AdminState::Ready && self.eweight > 0 && self.health_running()
    }

    /// The effective weight at `now`: the user weight, ramped during slowstart.
    fn eweight_at(&self, now: Duration, dynamic: bool) -> u32 {
        match (self.ramp_since, self.spec.slowstart) {
            (Some(since), Some(ss)) if dynamic && !ss.is_zero() => {
                let elapsed = now.saturating_sub(since);
                if elapsed >= ss {
                    return self.uweight;
                }
                // HAProxy's server_recalc_eweight: at least one step, then linear, rounded up.
                let num = u128::from(self.uweight) * elapsed.as_millis();
                let w = num.div_ceil(ss.as_millis().max(1));
                u32::try_from(w)
                    .unwrap_or(self.uweight)
                    .clamp(1, self.uweight.max(1))
            }
            _ => self.uweight,
        }
    }
}

impl Board {
    pub fn new(specs: Vec<BackendSpec>) -> Board {
        let backends = specs
            .into_iter()
            .map(|b| Be {
                spec_name: b.name,
                from_listen: b.from_listen,
                dynamic_weights: b.dynamic_weights,
                log_health_checks: b.log_health_checks,
                servers: b.servers.into_iter().map(Srv::new).collect(),
            })
            .collect();
        Board { backends }
    }

    fn srv(&self, b: usize, s: usize) -> Option<&Srv> {
        self.backends.get(b)?.servers.get(s)
    }

    fn srv_mut(&mut self, b: usize, s: usize) -> Option<&mut Srv> {
        self.backends.get_mut(b)?.servers.get_mut(s)
    }

    /// The health check's state machine of a server (tests, next interval).
    pub fn check_state(&self, b: usize, s: usize) -> Option<&HealthState> {
        self.srv(b, s)?.check.as_ref()
    }

    pub fn agent_state(&self, b: usize, s: usize) -> Option<&HealthState> {
        self.srv(b, s)?.agent.as_ref()
    }

    /// Usable active and backup servers of a backend (`srv_act`, `srv_bck`).
    fn counts(&self, b: usize) -> BackendCounts {
        let mut c = BackendCounts::default();
        if let Some(be) = self.backends.get(b) {
            for s in be.servers.iter().filter(|s| !s.removed && s.usable_now()) {
                if s.spec.backup {
                    c.backup += 1;
                } else {
                    c.active += 1;
                }
            }
        }
        c
    }

    fn any_usable(&self, b: usize) -> bool {
        let c = self.counts(b);
        c.active + c.backup > 0
    }

    /// Whether a failed health check now would take (b, s) DOWN (the driver then collects
    /// the server's sessions for the DOWN line).
    pub fn failure_goes_down(&self, b: usize, s: usize) -> bool {
        self.srv(b, s)
            .and_then(|srv| srv.check.as_ref().filter(|_| !srv.check_off))
            .is_some_and(HealthState::failure_goes_down)
    }

    /// Whether (b, s) is running as the shards see it (an agent's `down` could stop it).
    pub fn is_running(&self, b: usize, s: usize) -> bool {
        self.srv(b, s).is_some_and(|srv| srv.running)
    }

    /// How the DOWN line of (b, s) begins (`Server be/s1 is DOWN`, `Backup Server ...`):
    /// the driver fills its session counts in (`status::with_down_load`).
    pub fn down_line_start(&self, b: usize, s: usize) -> Option<String> {
        self.line_start(b, s, "is DOWN")
    }

    /// As [`Board::down_line_start`] for its maintenance line (`... is going DOWN for
    /// maintenance`).
    pub fn maint_line_start(&self, b: usize, s: usize) -> Option<String> {
        self.line_start(b, s, "is going DOWN for maintenance")
    }

    fn line_start(&self, b: usize, s: usize, what: &str) -> Option<String> {
        let be = self.backends.get(b)?;
        let srv = be.servers.get(s)?;
        let prefix = if srv.spec.backup {
            "Backup Server"
        } else {
            "Server"
        };
        Some(format!(
            "{prefix} {}/{} {what}",
            be.spec_name, srv.spec.name
        ))
    }

    /// Records a health-check result.
    pub fn record_check(
        &mut self,
        b: usize,
        s: usize,
        r: &CheckResult,
        now: Duration,
    ) -> Vec<Effect> {
        let had_any = self.any_usable(b);
        let Some(srv) = self.srv_mut(b, s) else {
            return Vec::new();
        };
        if srv.check_off {
            return Vec::new();
        }
        let Some(check) = srv.check.as_mut() else {
            return Vec::new();
        };
        let before = (check.last_result().map(|l| l.status), check.health());
        let t = check.record(r, now);
        let mut out = Vec::new();
        if before != (Some(r.status), check.health()) {
            self.log_check(b, s, r, &mut out);
        }
        if let Some(t) = t {
            self.after_health_change(b, s, t, r, had_any, now, &mut out);
        }
        out
    }

    /// `option log-health-checks`: the check's line, before any state change line (as in
    /// haproxy, which logs it at `notice`).
    fn log_check(&self, b: usize, s: usize, r: &CheckResult, out: &mut Vec<Effect>) {
        let Some(be) = self.backends.get(b).filter(|be| be.log_health_checks) else {
            return;
        };
        let Some(srv) = be.servers.get(s) else { return };
        let Some(check) = srv.check.as_ref() else {
            return;
        };
        let timing = check.timing();
        out.push(Effect::Warning(status::check_log_message(
            status::CheckSource::Health,
            &be.spec_name,
            &srv.spec.name,
            srv.spec.backup,
            r,
            (check.health(), timing.rise, timing.fall),
            srv.uweight == 0,
        )));
    }

    /// A worker shard saw `error-limit` consecutive errors on live traffic (`observe`): the
    /// server's `on-error` applies to its health check, as a failed check with status
    /// `Health analyze` and `info` (HAProxy's `health_adjust`). No check, no effect.
    pub fn health_analyze(&mut self, b: usize, s: usize, info: &str, now: Duration) -> Vec<Effect> {
        let had_any = self.any_usable(b);
        let Some(srv) = self.srv_mut(b, s) else {
            return Vec::new();
        };
        let on_error = srv.spec.on_error;
        if srv.check_off {
            return Vec::new();
        }
        let Some(check) = srv.check.as_mut() else {
            return Vec::new();
        };
        let mut r = CheckResult::new(CheckStatus::HealthAnalyze);
        r.info = Some(info.to_string());
        let Some(t) = check.analyze(on_error, &r, now) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.after_health_change(b, s, t, &r, had_any, now, &mut out);
        out
    }

    /// Records what an agent said (or that it could not be reached: `Err(result)`).
    pub fn record_agent(
        &mut self,
        b: usize,
        s: usize,
        reply: Result<(AgentParse, u64), CheckResult>,
        now: Duration,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(srv) = self.srv_mut(b, s) else {
            return out;
        };
        if srv.agent_off {
            return out;
        }
        let reply = match reply {
            Err(failure) => {
                // An unreachable agent never takes a server down.
                if let Some(a) = srv.agent.as_mut() {
                    a.record_agent(&failure, now);
                }
                srv.agent_last = Some(failure);
                return out;
            }
            Ok((AgentParse::NeedMore | AgentParse::Incomplete, _)) => {
                return out;
            }
            Ok((AgentParse::Reply(r), ms)) => (r, ms),
        };
        let (reply, duration_ms) = reply;
        // HAProxy's order: admin state, weight, maxconn, then health; the first refusal of
        // the weight or maxconn is the reply's warning.
        if let Some(admin) = reply.admin {
            self.agent_admin(b, s, admin, now, &mut out);
        }
        let mut warning = None;
        if let Some(p) = &reply.weight_percent {
            warning = self.agent_weight(b, s, p, now, &mut out);
        }
        if let Some(m) = reply.maxconn.as_deref() {
            match (agent::parse_maxconn(m), self.srv_mut(b, s)) {
                (Ok(v), Some(srv)) => {
                    if srv.maxconn != v {
                        srv.maxconn = v;
                        out.push(Effect::Msg(ControlMsg::SetServerMaxconn {
                            backend: b,
                            server: s,
                            maxconn: v,
                        }));
                    }
                }
                (Err(e), _) => warning = warning.or(Some(e)),
                (Ok(_), None) => {}
            }
        }
        let mut result = reply.check_result(warning);
        result.duration_ms = Some(duration_ms);
        let had_any = self.any_usable(b);
        let Some(srv) = self.srv_mut(b, s) else {
            return out;
        };
        srv.agent_last = Some(result.clone());
        let Some(agent) = srv.agent.as_mut() else {
            return out;
        };
        let t = match reply.health {
            Some(AgentHealth::Up) => agent.force(true, now),
            Some(AgentHealth::Down | AgentHealth::Stopped | AgentHealth::Fail) => {
                agent.force(false, now)
            }
            None => None,
        };
        if let Some(t) = t {
            self.after_health_change(b, s, t, &result, had_any, now, &mut out);
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn after_health_change(
        &mut self,
        b: usize,
        s: usize,
        t: Transition,
        r: &CheckResult,
        had_any: bool,
        now: Duration,
        out: &mut Vec<Effect>,
    ) {
        let dynamic = self.backends.get(b).is_some_and(|be| be.dynamic_weights);
        let Some(srv) = self.srv_mut(b, s) else {
            return;
        };
        let running = srv.health_running()
            && srv
                .check
                .as_ref()
                .is_none_or(|c| c.state() != CheckState::Stopping);
        if running == srv.running {
            return;
        }
        srv.running = running;
        srv.last_change = now;
        if running && srv.spec.slowstart.is_some() && dynamic {
            srv.ramp_since = Some(now);
            srv.eweight = srv.eweight_at(now, dynamic);
            out.push(Effect::Msg(ControlMsg::SetServerWeight {
                backend: b,
                server: s,
                weight: srv.eweight,
            }));
        }
        out.push(Effect::Msg(ControlMsg::SetServerHealth {
            backend: b,
            server: s,
            up: running,
        }));
        // A server in maintenance changes health silently (haproxy 2.6 logs nothing).
        if srv.admin != AdminState::Maint {
            self.log_transition(b, s, t, r, had_any, out);
            self.log_if_drained(b, s, out);
        }
        self.propagate(b, s, now, out, 0);
    }

    /// Servers that `track` (b, s) follow its new state (`Server b2/t1 is DOWN via b1/s1.`),
    /// and so on down the chain.
    fn propagate(&mut self, b: usize, s: usize, now: Duration, out: &mut Vec<Effect>, depth: u32) {
        // The plan refuses tracking loops; the bound only keeps a bug from recursing forever.
        if depth > 32 {
            return;
        }
        let Some(up) = self.srv(b, s).map(|x| x.running) else {
            return;
        };
        let trackers: Vec<(usize, usize)> = self
            .backends
            .iter()
            .enumerate()
            .flat_map(|(tb, be)| {
                be.servers
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.spec.track == Some((b, s)))
                    .map(move |(ts, _)| (tb, ts))
            })
            .collect();
        for (tb, ts) in trackers {
            let had_any = self.any_usable(tb);
            let Some(t) = self.srv_mut(tb, ts) else {
                continue;
            };
            t.tracked_up = up;
            let running = t.health_running()
                && t.check
                    .as_ref()
                    .is_none_or(|c| c.state() != CheckState::Stopping);
            if running == t.running {
                continue;
            }
            t.running = running;
            t.last_change = now;
            let quiet = t.admin == AdminState::Maint;
            out.push(Effect::Msg(ControlMsg::SetServerHealth {
                backend: tb,
                server: ts,
                up: running,
            }));
            if !quiet {
                let transition = if running {
                    Transition::Up
                } else {
                    Transition::Down
                };
                if let (Some(tbe), Some(tsrv), Some(vbe), Some(vsrv)) = (
                    self.backends.get(tb),
                    self.srv(tb, ts),
                    self.backends.get(b),
                    self.srv(b, s),
                ) {
                    out.push(Effect::Warning(status::tracked_message(
                        &tbe.spec_name,
                        &tsrv.spec.name,
                        tsrv.spec.backup,
                        transition,
                        (&vbe.spec_name, &vsrv.spec.name),
                        &self.counts(tb),
                    )));
                }
                self.alert_if_empty(tb, had_any, out);
            }
            self.propagate(tb, ts, now, out, depth + 1);
        }
    }

    fn log_transition(
        &self,
        b: usize,
        s: usize,
        t: Transition,
        r: &CheckResult,
        had_any: bool,
        out: &mut Vec<Effect>,
    ) {
        let (Some(be), Some(srv)) = (self.backends.get(b), self.srv(b, s)) else {
            return;
        };
        let counts = self.counts(b);
        out.push(Effect::Warning(if be.log_health_checks {
            status::state_change_message_no_reason(
                &be.spec_name,
                &srv.spec.name,
                srv.spec.backup,
                t,
                &counts,
            )
        } else {
            status::state_change_message(
                &be.spec_name,
                &srv.spec.name,
                srv.spec.backup,
                t,
                r,
                &counts,
            )
        }));
        self.alert_if_empty(b, had_any, out);
    }

    fn alert_if_empty(&self, b: usize, had_any: bool, out: &mut Vec<Effect>) {
        if let Some(be) = self.backends.get(b) {
            if had_any && !self.any_usable(b) {
                out.push(Effect::Alert(status::no_server_message(
                    &be.spec_name,
                    be.from_listen,
                )));
            }
        }
    }

    fn agent_admin(
        &mut self,
        b: usize,
        s: usize,
        admin: AgentAdmin,
        now: Duration,
        out: &mut Vec<Effect>,
    ) {
        let dynamic = self.backends.get(b).is_some_and(|be| be.dynamic_weights);
        let had_any = self.any_usable(b);
        let Some(srv) = self.srv_mut(b, s) else {
            return;
        };
        let want = match admin {
            AgentAdmin::Ready => AdminState::Ready,
            AgentAdmin::Drain => AdminState::Drain,
            AgentAdmin::Maint => AdminState::Maint,
        };
        let was = srv.admin;
        if was == want {
            return;
        }
        srv.admin = want;
        srv.last_change = now;
        out.push(Effect::Msg(ControlMsg::SetServerAdmin {
            backend: b,
            server: s,
            state: want,
        }));
        // Leaving maintenance ramps up like coming back UP (slowstart), and takes the user
        // weight set meanwhile.
        if was == AdminState::Maint && want != AdminState::Maint {
            if want == AdminState::Ready && dynamic && srv.spec.slowstart.is_some() {
                srv.ramp_since = Some(now);
            }
            let e = srv.eweight_at(now, dynamic);
            if e != srv.eweight || srv.ramp_since == Some(now) {
                srv.eweight = e;
                out.push(Effect::Msg(ControlMsg::SetServerWeight {
                    backend: b,
                    server: s,
                    weight: e,
                }));
            }
        }
        let (Some(be), Some(srv)) = (self.backends.get(b), self.srv(b, s)) else {
            return;
        };
        let (name, backup) = (&srv.spec.name, srv.spec.backup);
        let counts = self.counts(b);
        let line = match (was, want) {
            (_, AdminState::Maint) => status::maint_message(&be.spec_name, name, backup, &counts),
            (_, AdminState::Drain) => status::drain_message(&be.spec_name, name, backup, &counts),
            (AdminState::Maint, AdminState::Ready) => {
                status::leaving_maint_message(&be.spec_name, name, backup)
            }
            _ => status::leaving_drain_message(&be.spec_name, name, backup),
        };
        out.push(Effect::Warning(line));
        self.alert_if_empty(b, had_any, out);
    }

    /// An agent's `N%`; haproxy's refusal text when it is not applied.
    fn agent_weight(
        &mut self,
        b: usize,
        s: usize,
        percent: &str,
        now: Duration,
        out: &mut Vec<Effect>,
    ) -> Option<&'static str> {
        let dynamic = self.backends.get(b).is_some_and(|be| be.dynamic_weights);
        let srv = self.srv_mut(b, s)?;
        let w = match agent::weight_from_percent(percent, srv.spec.weight) {
            Ok(w) => w,
            Err(e) => return Some(e),
        };
        if !dynamic && w != 0 && w != srv.spec.weight {
            return Some("Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n");
        }
        self.apply_weight(b, s, w, now, out);
        None
    }

    /// A user weight from the agent or `set weight`: the effective weight follows at once,
    /// except in maintenance, where haproxy keeps the effective weight until the server
    /// leaves it ([`Self::agent_admin`] recomputes it then).
    fn apply_weight(&mut self, b: usize, s: usize, w: u32, now: Duration, out: &mut Vec<Effect>) {
        let dynamic = self.backends.get(b).is_some_and(|be| be.dynamic_weights);
        let had_any = self.any_usable(b);
        let Some(srv) = self.srv_mut(b, s) else {
            return;
        };
        srv.uweight = w;
        if srv.admin != AdminState::Maint {
            let e = srv.eweight_at(now, dynamic);
            if e != srv.eweight {
                srv.eweight = e;
                out.push(Effect::Msg(ControlMsg::SetServerWeight {
                    backend: b,
                    server: s,
                    weight: e,
                }));
            }
        }
        self.log_if_drained(b, s, out);
        self.alert_if_empty(b, had_any, out);
    }

    /// A weight applied to, or a health change of, a drained server: haproxy's `srv_update_status`
    /// then runs with the drain flags unchanged and says "remains in forced drain mode".
    fn log_if_drained(&self, b: usize, s: usize, out: &mut Vec<Effect>) {
        let (Some(be), Some(srv)) = (self.backends.get(b), self.srv(b, s)) else {
            return;
        };
        if srv.admin == AdminState::Drain {
            out.push(Effect::Warning(status::remains_drain_message(
                &be.spec_name,
                &srv.spec.name,
                srv.spec.backup,
            )));
        }
    }

    /// Slowstart: the weight ramps of servers that came back up, recomputed on each tick.
    pub fn tick(&mut self, now: Duration) -> Vec<Effect> {
        let mut out = Vec::new();
        for (b, be) in self.backends.iter_mut().enumerate() {
            for (s, srv) in be.servers.iter_mut().enumerate() {
                if srv.ramp_since.is_none() {
                    continue;
                }
                let e = srv.eweight_at(now, be.dynamic_weights);
                if e != srv.eweight {
                    srv.eweight = e;
                    out.push(Effect::Msg(ControlMsg::SetServerWeight {
                        backend: b,
                        server: s,
                        weight: e,
                    }));
                }
                if srv
                    .spec
                    .slowstart
                    .is_none_or(|ss| now.saturating_sub(srv.ramp_since.unwrap_or(now)) >= ss)
                {
                    srv.ramp_since = None;
                }
            }
        }
        out
    }

    /// The next interval of a server's health check (`srv_getinter`).
    pub fn check_interval(&self, b: usize, s: usize) -> Option<Duration> {
        Some(self.check_state(b, s)?.next_interval())
    }

    /// The next interval of a server's agent check.
    pub fn agent_interval(&self, b: usize, s: usize) -> Option<Duration> {
        Some(self.agent_state(b, s)?.next_interval())
    }

    /// Counters and last results of every server, at `now`.
    /// One server's counters at `now`, and its position in [`Board::snapshot`].
    pub fn server_stats(
        &self,
        b: usize,
        s: usize,
        now: Duration,
    ) -> Option<(usize, ServerCheckStats)> {
        let be = self.backends.get(b)?;
        let srv = be.servers.get(s)?;
        let before: usize = self.backends.iter().take(b).map(|x| x.servers.len()).sum();
        Some((before + s, stats_of(&be.spec_name, srv, now)))
    }

    pub fn snapshot(&self, now: Duration) -> Vec<ServerCheckStats> {
        let mut v = Vec::new();
        for be in &self.backends {
            for srv in &be.servers {
                v.push(stats_of(&be.spec_name, srv, now));
            }
        }
        v
    }
}

/// Changes made from the runtime socket (`set server`, `set weight`, `enable|disable server`):
/// they go through the board so its log lines, "N active servers left" counts and later check
/// results agree with what the operator did.
impl Board {
    /// `set server B/S state ready|drain|maint`: HAProxy logs the same lines as for the agent.
    pub fn set_admin(
        &mut self,
        b: usize,
        s: usize,
        state: AdminState,
        now: Duration,
    ) -> Vec<Effect> {
        let admin = match state {
            AdminState::Ready => AgentAdmin::Ready,
            AdminState::Drain => AgentAdmin::Drain,
            AdminState::Maint => AgentAdmin::Maint,
        };
        let mut out = Vec::new();
        self.agent_admin(b, s, admin, now, &mut out);
        out
    }

    /// `set server B/S weight` / `set weight`: the new user weight (already bounded); a running
    /// slowstart ramp continues towards it.
    pub fn set_weight(&mut self, b: usize, s: usize, weight: u32, now: Duration) -> Vec<Effect> {
        let mut out = Vec::new();
        self.apply_weight(b, s, weight, now, &mut out);
        out
    }

    /// `set server B/S health|agent up|down`: forces the check's state machine. `None` when
    /// the server has no such check (the caller tells the shards directly).
    pub fn force_health(
        &mut self,
        b: usize,
        s: usize,
        agent: bool,
        up: bool,
        now: Duration,
    ) -> Option<Vec<Effect>> {
        let had_any = self.any_usable(b);
        let srv = self.srv_mut(b, s)?;
        let st = if agent {
            srv.agent.as_mut()
        } else {
            srv.check.as_mut()
        }?;
        let mut out = Vec::new();
        if let Some(t) = st.force(up, now) {
            let r = CheckResult::new(CheckStatus::Unknown);
            self.after_health_change(b, s, t, &r, had_any, now, &mut out);
        }
        Some(out)
    }

    /// Whether the board tracks server `s` of backend `b` (a plan without checks has none).
    pub fn user_weight(&self, b: usize, s: usize) -> Option<u32> {
        self.srv(b, s).map(|x| x.uweight)
    }

    pub fn has_server(&self, b: usize, s: usize) -> bool {
        self.srv(b, s).is_some()
    }

    /// `enable|disable health|agent`: whether that check runs.
    pub fn set_check_enabled(&mut self, b: usize, s: usize, agent: bool, enabled: bool) {
        if let Some(srv) = self.srv_mut(b, s) {
            if agent {
                srv.agent_off = !enabled;
            } else {
                srv.check_off = !enabled;
            }
        }
    }

    /// Marks the health check (`agent`: the agent check) of (b, s) as running or not.
    pub fn set_in_progress(&mut self, b: usize, s: usize, agent: bool, busy: bool) {
        if let Some(x) = self.srv_mut(b, s) {
            if agent {
                x.agent_busy = busy;
            } else {
                x.check_busy = busy;
            }
        }
    }

    /// Whether the health check (`agent`: the agent check) of (b, s) is running now.
    pub fn in_progress(&self, b: usize, s: usize, agent: bool) -> bool {
        self.srv(b, s)
            .is_some_and(|x| if agent { x.agent_busy } else { x.check_busy })
    }

    /// False after `disable health|agent` (the check task skips its turns).
    pub fn check_enabled(&self, b: usize, s: usize, agent: bool) -> bool {
        self.srv(b, s)
            .is_some_and(|x| if agent { !x.agent_off } else { !x.check_off })
    }

    /// `add server`: a server added at run time, at slot `s` of backend `b` (the shards'
    /// index: it must be the next one). Its checks start disabled, as in haproxy 2.6, until
    /// `enable health` / `enable agent`. False when `s` is not the next slot.
    pub fn add_server(&mut self, b: usize, s: usize, spec: ServerSpec, now: Duration) -> bool {
        let Some(be) = self.backends.get_mut(b) else {
            return false;
        };
        if be.servers.len() != s {
            return false;
        }
        let mut srv = Srv::new(spec);
        srv.check_off = true;
        srv.agent_off = true;
        srv.last_change = now;
        be.servers.push(srv);
        true
    }

    /// `del server`: the server's checks stop for good; its slot stays.
    pub fn remove_server(&mut self, b: usize, s: usize) {
        if let Some(srv) = self.srv_mut(b, s) {
            srv.removed = true;
            srv.check_off = true;
            srv.agent_off = true;
        }
    }

    /// Whether `del server` removed the server (its check task ends).
    pub fn is_removed(&self, b: usize, s: usize) -> bool {
        self.srv(b, s).is_none_or(|x| x.removed)
    }

    /// `http-check send-state`: haproxy 2.6's `x-haproxy-server-state` value for server `s`
    /// of backend `b` at `addr`: its check state as the stats page shows it, address, port,
    /// `be/srv`, node, its weight over the backend's usable weight, and the slowstart
    /// `throttle`. `scur`/`qcur` are 0: connection counts live on the worker shards.
    pub fn state_header(
        &self,
        b: usize,
        s: usize,
        addr: std::net::SocketAddr,
        node: &str,
        now: Duration,
    ) -> Option<String> {
        let be = self.backends.get(b)?;
        let srv = be.servers.get(s)?;
        let state = match &srv.check {
            Some(c) if !srv.check_off => c.stats_status(),
            _ => "no check".to_string(),
        };
        let usable = |backup: bool| -> u32 {
            be.servers
                .iter()
                .filter(|x| !x.removed && x.spec.backup == backup && x.usable_now())
                .map(|x| x.eweight)
                .sum()
        };
        let active = usable(false);
        let total = if be
            .servers
            .iter()
            .any(|x| !x.removed && !x.spec.backup && x.usable_now())
        {
            active
        } else {
            usable(true)
        };
        let mut out = format!(
            "{state}; address={}; port={}; name={}/{}; node={node}; weight={}/{total}; scur=0/0; qcur=0",
            addr.ip(),
            addr.port(),
            be.spec_name,
            srv.spec.name,
            srv.eweight,
        );
        if let (Some(since), Some(ss)) = (srv.ramp_since, srv.spec.slowstart) {
            let elapsed = now.saturating_sub(since).as_secs();
            if elapsed < ss.as_secs() {
                let ratio = (100 * elapsed / ss.as_secs().max(1)).max(1);
                out.push_str(&format!("; throttle={ratio}%"));
            }
        }
        Some(out)
    }

    /// How many slots each backend has (configured servers, then added ones).
    pub fn layout(&self) -> Vec<usize> {
        self.backends.iter().map(|b| b.servers.len()).collect()
    }

    /// Usable active and backup servers of backend `b` (tests and the runtime socket).
    pub fn usable_counts(&self, b: usize) -> (u32, u32) {
        let c = self.counts(b);
        (c.active, c.backup)
    }
}

fn stats_of(backend: &str, srv: &Srv, now: Duration) -> ServerCheckStats {
    let mut st = ServerCheckStats {
        backend: backend.to_string(),
        server: srv.spec.name.clone(),
        weight: srv.eweight,
        maxconn: srv.maxconn,
        usable: srv.usable_now(),
        removed: srv.removed,
        ..ServerCheckStats::default()
    };
    let mut last_change = srv.last_change;
    let health_of = |h: &HealthState| (h.timing().rise, h.timing().fall, h.health());
    st.check_health = srv.check.as_ref().map(health_of);
    st.agent_health = srv.agent.as_ref().map(health_of);
    if let Some(c) = &srv.check {
        let k = c.counters();
        st.chkfail = k.failed;
        st.chkdown = k.down_transitions;
        last_change = last_change.max(k.last_change);
        st.downtime = k.downtime;
        if c.state() == CheckState::Down {
            st.downtime += now.saturating_sub(k.last_change);
        }
        if let Some(r) = c.last_result() {
            st.check_status = r.status.short_name().to_string();
            // haproxy resets the code to 0 before each check and shows it for every
            // status that carries one (`L7OK` of a tcp-check: 0).
            st.check_code = r.status.shows_code().then(|| r.code.unwrap_or(0));
            st.check_duration = r.duration_ms;
            st.last_chk = r.info.clone().unwrap_or_default();
        } else {
            // haproxy 2.6 shows `INI` (`Initializing`) until the first result.
            st.check_status = "INI".to_string();
        }
        if srv.check_busy {
            // haproxy 2.6 during a check: `* <last status>` (`* INI` before the first
            // result), code back to 0, no info, the last duration kept.
            st.check_in_progress = true;
            if st.check_status.is_empty() {
                st.check_status = "INI".to_string();
            }
            st.check_code = st.check_code.map(|_| 0);
            st.last_chk.clear();
        }
    }
    if let Some(r) = &srv.agent_last {
        st.agent_status = r.status.short_name().to_string();
        st.agent_code = r.status.shows_code().then(|| r.code.unwrap_or(0));
        st.last_agt = r.info.clone().unwrap_or_default();
    }
    if srv.agent.is_some() && srv.agent_busy {
        st.agent_in_progress = true;
        if st.agent_status.is_empty() {
            st.agent_status = "INI".to_string();
        }
        st.agent_code = st.agent_code.map(|_| 0);
        st.last_agt.clear();
    }
    st.lastchg = now.saturating_sub(last_change);
    st.status = match srv.admin {
        AdminState::Maint => "MAINT".to_string(),
        AdminState::Drain => "DRAIN".to_string(),
        AdminState::Ready => match (&srv.check, &srv.agent) {
            (_, Some(a)) if a.state() == CheckState::Down => "DOWN (agent)".to_string(),
            (Some(c), _) => c.stats_status(),
            (None, _) => "no check".to_string(),
        },
    };
    // haproxy 2.6 shows a disabled check, or one paused by maintenance, as none at all.
    let paused = srv.admin == AdminState::Maint;
    if srv.check_off || paused {
        st.check_health = None;
        st.check_in_progress = false;
        st.check_status.clear();
        st.check_code = None;
        st.check_duration = None;
        st.last_chk.clear();
    }
    // Maintenance does not pause the agent (its `ready` ends it).
    if srv.agent_off {
        st.agent_health = None;
        st.agent_in_progress = false;
        st.agent_status.clear();
        st.agent_code = None;
        st.last_agt.clear();
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringlb_health::status::{connection_failure, ConnFailure};

    const MS: Duration = Duration::from_millis(1);

    fn timing(rise: u32, fall: u32) -> CheckTiming {
        CheckTiming {
            rise,
            fall,
            inter: 100 * MS,
            fastinter: None,
            downinter: None,
        }
    }

    fn server(name: &str, backup: bool, agent: bool) -> ServerSpec {
        ServerSpec {
            name: name.into(),
            backup,
            disabled: false,
            weight: 10,
            maxconn: 0,
            check: Some(timing(2, 3)),
            agent: agent.then(|| timing(2, 3)),
            slowstart: None,
            track: None,
            on_error: OnError::default(),
        }
    }

    fn board(servers: Vec<ServerSpec>) -> Board {
        Board::new(vec![BackendSpec {
            name: "be".into(),
            from_listen: false,
            dynamic_weights: true,
            log_health_checks: false,
            servers,
        }])
    }

    fn ok() -> CheckResult {
        let mut r = CheckResult::new(CheckStatus::L4Ok);
        r.duration_ms = Some(0);
        r
    }

    fn refused() -> CheckResult {
        let mut r = connection_failure(&ConnFailure::Refused);
        r.duration_ms = Some(0);
        r
    }

    fn msgs(e: &[Effect]) -> Vec<ControlMsg> {
        e.iter()
            .filter_map(|e| match e {
                Effect::Msg(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn lines(e: &[Effect]) -> Vec<String> {
        e.iter()
            .filter_map(|e| match e {
                Effect::Warning(m) => Some(format!("[WARNING] {m}")),
                Effect::Alert(m) => Some(format!("[ALERT] {m}")),
                Effect::Msg(_) => None,
            })
            .collect()
    }

    /// `option log-health-checks`: a line per change of status or health, before the state
    /// change line (order and texts as haproxy 2.6, rise 2 fall 3); none when nothing changed.
    #[test]
    fn log_health_checks_lines() {
        let mut b = Board::new(vec![BackendSpec {
            name: "be".into(),
            from_listen: false,
            dynamic_weights: true,
            log_health_checks: true,
            servers: vec![server("s1", false, false)],
        }]);
        let l = lines(&b.record_check(0, 0, &refused(), MS));
        assert_eq!(l, vec![
            "[WARNING] Health check for server be/s1 failed, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms, status: 0/2 DOWN.".to_string(),
            "[WARNING] Server be/s1 is DOWN. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.".to_string(),
            "[ALERT] backend 'be' has no server available!".to_string(),
        ]);
        // Same status, health already 0: nothing to say.
        assert!(lines(&b.record_check(0, 0, &refused(), MS)).is_empty());
        let l = lines(&b.record_check(0, 0, &ok(), MS));
        assert_eq!(l, vec!["[WARNING] Health check for server be/s1 succeeded, reason: Layer4 check passed, check duration: 0ms, status: 1/2 DOWN.".to_string()]);
        let l = lines(&b.record_check(0, 0, &ok(), MS));
        assert_eq!(l.len(), 2, "{l:?}");
        assert!(l[0].ends_with("status: 3/3 UP."), "{l:?}");
        assert!(
            l[1].starts_with("[WARNING] Server be/s1 is UP. 1 active"),
            "{l:?}"
        );
        // Without the option only the state change lines remain.
        let mut quiet = board(vec![server("s1", false, false)]);
        assert_eq!(lines(&quiet.record_check(0, 0, &refused(), MS)).len(), 2);
    }

    /// `add server ... check`: the slot must be the shards' next one; checks wait for
    /// `enable health`; after `del server` the server counts nowhere and results are ignored.
    #[test]
    fn added_servers_checks_start_disabled_and_stop_when_deleted() {
        let mut b = board(vec![server("s1", false, false)]);
        assert!(!b.add_server(0, 2, server("d1", false, false), MS), "gap");
        assert!(
            !b.add_server(1, 1, server("d1", false, false), MS),
            "no backend"
        );
        assert!(b.add_server(0, 1, server("d1", false, false), MS));
        assert_eq!(b.layout(), vec![2]);
        assert!(!b.check_enabled(0, 1, false), "off until enable health");
        assert!(b.record_check(0, 1, &refused(), MS).is_empty());
        b.set_check_enabled(0, 1, false, true);
        let e = b.record_check(0, 1, &refused(), MS);
        assert_eq!(
            msgs(&e),
            [ControlMsg::SetServerHealth {
                backend: 0,
                server: 1,
                up: false
            }]
        );
        assert!(
            lines(&e)[0].contains("Server be/d1 is DOWN, reason: Layer4 connection problem"),
            "{e:?}"
        );
        assert_eq!(b.usable_counts(0), (1, 0));
        b.record_check(0, 1, &ok(), MS);
        b.record_check(0, 1, &ok(), MS);
        assert_eq!(b.usable_counts(0), (2, 0));
        b.remove_server(0, 1);
        assert!(b.is_removed(0, 1) && !b.is_removed(0, 0));
        assert_eq!(b.usable_counts(0), (1, 0));
        assert!(b.record_check(0, 1, &refused(), MS).is_empty());
        assert!(b.snapshot(MS)[1].removed);
        // The name can come back in a new slot.
        assert!(b.add_server(0, 2, server("d1", false, false), MS));
    }

    #[test]
    fn observed_errors_apply_on_error() {
        let mut spec = server("s1", false, false);
        spec.on_error = OnError::MarkDown;
        let mut b = board(vec![spec, server("s2", false, false)]);
        let t = Duration::from_secs(1);
        let info = "Detected 3 consecutive errors, last one was: Wrong http response";
        let e = b.health_analyze(0, 0, info, t);
        assert_eq!(
            msgs(&e),
            [ControlMsg::SetServerHealth {
                backend: 0,
                server: 0,
                up: false
            }]
        );
        let l = lines(&e);
        assert!(
            l.iter().any(
                |l| l.contains("Server be/s1 is DOWN, reason: Health analyze") && l.contains(info)
            ),
            "{l:?}"
        );
        // fail-check (the default) on a fresh server (one failure from DOWN) marks it DOWN;
        // after a passed check it only counts one failure.
        b.record_check(0, 1, &ok(), t);
        assert!(msgs(&b.health_analyze(0, 1, info, t)).is_empty());
        assert_eq!(b.check_state(0, 1).map(|c| c.health()), Some(3));
        // A server without a check ignores reports.
        let mut nocheck = server("s3", false, false);
        nocheck.check = None;
        let mut b = board(vec![nocheck]);
        assert!(b.health_analyze(0, 0, info, t).is_empty());
    }

    #[test]
    fn runtime_admin_changes_log_and_count_like_the_agent() {
        let mut b = board(vec![server("s1", false, false), server("s2", false, false)]);
        let e = b.set_admin(0, 0, AdminState::Maint, 10 * MS);
        assert_eq!(
            msgs(&e),
            vec![ControlMsg::SetServerAdmin {
                backend: 0,
                server: 0,
                state: AdminState::Maint
            }]
        );
        let l = lines(&e);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(
            l[0].starts_with("[WARNING] Server be/s1 is going DOWN for maintenance.")
                && l[0].contains(" 1 active and 0 backup servers left."),
            "{l:?}"
        );
        // Same state again: nothing to say, nothing to send.
        assert!(b.set_admin(0, 0, AdminState::Maint, 20 * MS).is_empty());
        let e = b.set_admin(0, 1, AdminState::Drain, 30 * MS);
        assert!(lines(&e)
            .iter()
            .any(|l| l == "[ALERT] backend 'be' has no server available!"));
        assert_eq!(b.usable_counts(0), (0, 0));
        b.set_admin(0, 0, AdminState::Ready, 40 * MS);
        assert_eq!(b.usable_counts(0), (1, 0));
    }

    #[test]
    fn runtime_weight_zero_empties_the_backend() {
        let mut b = board(vec![server("s1", false, false)]);
        let e = b.set_weight(0, 0, 0, MS);
        assert_eq!(
            msgs(&e),
            vec![ControlMsg::SetServerWeight {
                backend: 0,
                server: 0,
                weight: 0
            }]
        );
        assert_eq!(
            lines(&e),
            vec!["[ALERT] backend 'be' has no server available!"]
        );
        assert!(b.set_weight(0, 0, 0, 2 * MS).is_empty());
    }

    #[test]
    fn disabled_check_ignores_results_until_enabled() {
        let mut b = board(vec![server("s1", false, false)]);
        b.set_check_enabled(0, 0, false, false);
        assert!(!b.check_enabled(0, 0, false));
        for t in 1..=5 {
            assert!(b.record_check(0, 0, &refused(), t * MS).is_empty());
        }
        b.set_check_enabled(0, 0, false, true);
        let mut down = Vec::new();
        for t in 6..=8 {
            down.extend(b.record_check(0, 0, &refused(), t * MS));
        }
        assert!(msgs(&down).contains(&ControlMsg::SetServerHealth {
            backend: 0,
            server: 0,
            up: false
        }));
        // Forced up from the CLI: the state machine follows at once.
        let e = b.force_health(0, 0, false, true, 9 * MS).unwrap();
        assert!(msgs(&e).contains(&ControlMsg::SetServerHealth {
            backend: 0,
            server: 0,
            up: true
        }));
        assert_eq!(b.force_health(0, 0, true, true, 10 * MS), None, "no agent");
        assert!(b.has_server(0, 0) && !b.has_server(0, 1) && !b.has_server(1, 0));
    }

    #[test]
    fn first_failure_downs_a_fresh_server_then_fall_failures_are_needed() {
        let mut b = board(vec![server("s1", false, false), server("b1", true, false)]);
        let e = b.record_check(0, 0, &refused(), 100 * MS);
        assert_eq!(
            msgs(&e),
            vec![ControlMsg::SetServerHealth {
                backend: 0,
                server: 0,
                up: false
            }]
        );
        // Recorded from haproxy 2.6 (crates/health/traces/haproxy-2.6-checks.log).
        assert_eq!(
            lines(&e),
            vec!["[WARNING] Server be/s1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. 0 active and 1 backup servers left. Running on backup. 0 sessions active, 0 requeued, 0 remaining in queue."]
        );
        // rise 2: one success is not enough.
        assert!(b.record_check(0, 0, &ok(), 200 * MS).is_empty());
        let e = b.record_check(0, 0, &ok(), 300 * MS);
        assert_eq!(
            lines(&e),
            vec!["[WARNING] Server be/s1 is UP, reason: Layer4 check passed, check duration: 0ms. 1 active and 1 backup servers online. 0 sessions requeued, 0 total in queue."]
        );
        // Now fully UP: fall 3 failures are needed.
        assert!(b.record_check(0, 0, &refused(), 400 * MS).is_empty());
        assert!(b.record_check(0, 0, &refused(), 500 * MS).is_empty());
        assert_eq!(msgs(&b.record_check(0, 0, &refused(), 600 * MS)).len(), 1);
        let st = &b.snapshot(700 * MS)[0];
        assert_eq!(st.chkfail, 4);
        assert_eq!(st.chkdown, 2);
        assert_eq!(st.status, "DOWN");
        assert_eq!(st.check_status, "L4CON");
        assert_eq!(st.last_chk, "Connection refused");
        assert_eq!(st.lastchg, 100 * MS);
        // DOWN 100..300 and 600..700.
        assert_eq!(st.downtime, 300 * MS);
    }

    #[test]
    fn servers_in_maintenance_change_health_silently() {
        let mut spec = server("s1", false, false);
        spec.disabled = true;
        let mut b = board(vec![spec, server("s2", false, false)]);
        let e = b.record_check(0, 0, &refused(), MS);
        assert!(lines(&e).is_empty(), "{e:?}");
        assert_eq!(msgs(&e).len(), 1, "the shards still learn the health");
        assert_eq!(b.snapshot(MS)[0].status, "MAINT");
    }

    #[test]
    fn tracking_servers_follow_the_tracked_one() {
        let mut t1 = server("t1", false, false);
        t1.check = None;
        t1.track = Some((0, 0));
        let mut b = Board::new(vec![
            BackendSpec {
                name: "b1".into(),
                from_listen: false,
                dynamic_weights: true,
                log_health_checks: false,
                servers: vec![server("s1", false, false)],
            },
            BackendSpec {
                name: "b2".into(),
                from_listen: false,
                dynamic_weights: true,
                log_health_checks: false,
                servers: vec![t1, {
                    let mut t2 = server("t2", false, false);
                    t2.check = None;
                    t2
                }],
            },
        ]);
        let e = b.record_check(0, 0, &refused(), MS);
        // Captured from haproxy 2.6 (`track b1/s1`).
        assert_eq!(
            lines(&e),
            vec![
                "[WARNING] Server b1/s1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
                "[ALERT] backend 'b1' has no server available!",
                "[WARNING] Server b2/t1 is DOWN via b1/s1. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            ]
        );
        assert!(msgs(&e).contains(&ControlMsg::SetServerHealth {
            backend: 1,
            server: 0,
            up: false
        }));
        b.record_check(0, 0, &ok(), 2 * MS);
        let e = b.record_check(0, 0, &ok(), 3 * MS);
        assert_eq!(
            lines(&e)[1],
            "[WARNING] Server b2/t1 is UP via b1/s1. 2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue."
        );
    }

    #[test]
    fn last_server_down_raises_the_alert_once() {
        let mut b = board(vec![server("s1", false, false), server("b1", true, false)]);
        let e = b.record_check(0, 1, &refused(), MS);
        assert_eq!(lines(&e).len(), 1, "s1 still up: no alert");
        let e = b.record_check(0, 0, &refused(), 2 * MS);
        assert_eq!(
            lines(&e).last().map(String::as_str),
            Some("[ALERT] backend 'be' has no server available!")
        );
    }

    fn reply(text: &str) -> Result<(AgentParse, u64), CheckResult> {
        Ok((agent::parse(text.as_bytes(), true), 0))
    }

    #[test]
    fn agent_replies_change_weight_admin_maxconn_and_state() {
        let mut b = board(vec![server("s1", false, true)]);
        let e = b.record_agent(0, 0, reply("50%\n"), MS);
        assert_eq!(
            msgs(&e),
            vec![ControlMsg::SetServerWeight {
                backend: 0,
                server: 0,
                weight: 5
            }]
        );
        let e = b.record_agent(0, 0, reply("drain\n"), 2 * MS);
        assert_eq!(
            lines(&e),
            vec![
                "[WARNING] Server be/s1 enters drain state. 0 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
                "[ALERT] backend 'be' has no server available!"
            ]
        );
        let e = b.record_agent(0, 0, reply("ready\n"), 3 * MS);
        assert_eq!(
            lines(&e),
            vec!["[WARNING] Server be/s1 is UP (leaving forced drain)."]
        );
        let e = b.record_agent(0, 0, reply("down # disk full\n"), 4 * MS);
        assert_eq!(lines(&e)[0], "[WARNING] Server be/s1 is DOWN, reason: Layer7 wrong status, code: 0, info: \"via agent : down (disk full)\", check duration: 0ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.");
        assert!(msgs(&e).contains(&ControlMsg::SetServerHealth {
            backend: 0,
            server: 0,
            up: false
        }));
        let e = b.record_agent(0, 0, reply("up maxconn:10\n"), 5 * MS);
        assert_eq!(
            msgs(&e),
            vec![
                ControlMsg::SetServerMaxconn {
                    backend: 0,
                    server: 0,
                    maxconn: 10
                },
                ControlMsg::SetServerHealth {
                    backend: 0,
                    server: 0,
                    up: true
                }
            ]
        );
        assert_eq!(lines(&e)[0], "[WARNING] Server be/s1 is UP, reason: Layer7 check passed, code: 0, info: \"via agent : up\", check duration: 0ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.");
        // An unreachable agent changes nothing.
        assert!(b.record_agent(0, 0, Err(refused()), 6 * MS).is_empty());
        let st = &b.snapshot(6 * MS)[0];
        assert_eq!((st.weight, st.maxconn, st.usable), (5, 10, true));
        let e = b.record_agent(0, 0, reply("maint\n"), 7 * MS);
        assert_eq!(
            msgs(&e),
            vec![ControlMsg::SetServerAdmin {
                backend: 0,
                server: 0,
                state: AdminState::Maint
            }]
        );
        assert_eq!(b.snapshot(7 * MS)[0].status, "MAINT");
    }

    /// Recorded from haproxy 2.6 (`tests/health_agent.rs` diffs them end to end).
    #[test]
    fn agent_weights_in_drain_and_maintenance_as_haproxy() {
        let mut b = board(vec![server("s1", false, true)]);
        b.record_agent(0, 0, reply("drain\n"), MS);
        // Each weight applied in drain logs it again.
        for t in 2..4 {
            let e = b.record_agent(0, 0, reply("75% drain\n"), t * MS);
            assert_eq!(
                lines(&e),
                vec!["[WARNING] Server be/s1 remains in forced drain mode."]
            );
        }
        // In maintenance the user weight changes, the effective one waits for the end.
        let e = b.record_agent(0, 0, reply("maint 50%\n"), 4 * MS);
        assert!(!msgs(&e)
            .iter()
            .any(|m| matches!(m, ControlMsg::SetServerWeight { .. })));
        assert_eq!(
            (b.user_weight(0, 0), b.snapshot(4 * MS)[0].weight),
            (Some(5), 7)
        );
        let e = b.record_agent(0, 0, reply("ready\n"), 5 * MS);
        assert!(msgs(&e).contains(&ControlMsg::SetServerWeight {
            backend: 0,
            server: 0,
            weight: 5
        }));
        // No health word: CHECKED, with the refused weight as a warning.
        b.record_agent(0, 0, reply("50%x\n"), 6 * MS);
        let st = &b.snapshot(6 * MS)[0];
        assert_eq!(
            (
                st.agent_status.as_str(),
                st.last_agt.as_str(),
                st.agent_code
            ),
            (
                "CHECKED",
                "agent warns : Trailing garbage in weight string",
                None
            )
        );
        b.record_agent(0, 0, reply("up\n"), 7 * MS);
        assert_eq!(b.snapshot(7 * MS)[0].agent_code, Some(0));
    }

    #[test]
    fn slowstart_ramps_the_weight_after_coming_back() {
        let mut spec = server("s1", false, false);
        spec.slowstart = Some(1000 * MS);
        spec.check = Some(timing(1, 1));
        let mut b = board(vec![spec, server("s2", false, false)]);
        b.record_check(0, 0, &refused(), Duration::ZERO);
        let e = b.record_check(0, 0, &ok(), 1000 * MS);
        assert_eq!(
            msgs(&e)[0],
            ControlMsg::SetServerWeight {
                backend: 0,
                server: 0,
                weight: 1
            },
            "at least one step at once"
        );
        let weight_at = |b: &mut Board, ms: u64| {
            msgs(&b.tick(Duration::from_millis(ms)))
                .into_iter()
                .find_map(|m| match m {
                    ControlMsg::SetServerWeight { weight, .. } => Some(weight),
                    _ => None,
                })
        };
        assert_eq!(weight_at(&mut b, 1250), Some(3));
        assert_eq!(weight_at(&mut b, 1500), Some(5));
        assert_eq!(weight_at(&mut b, 1500), None, "unchanged: nothing sent");
        assert_eq!(weight_at(&mut b, 2000), Some(10));
        assert_eq!(weight_at(&mut b, 3000), None, "ramp over");
    }

    #[test]
    fn leaving_maintenance_starts_the_slowstart_ramp() {
        let mut spec = server("s1", false, true);
        spec.slowstart = Some(1000 * MS);
        let mut b = board(vec![spec]);
        b.record_agent(0, 0, reply("maint\n"), Duration::ZERO);
        let e = b.record_agent(0, 0, reply("ready\n"), 1000 * MS);
        assert!(msgs(&e).contains(&ControlMsg::SetServerWeight {
            backend: 0,
            server: 0,
            weight: 1
        }));
        let e = b.tick(1500 * MS);
        assert_eq!(
            msgs(&e),
            vec![ControlMsg::SetServerWeight {
                backend: 0,
                server: 0,
                weight: 5
            }]
        );
    }

    #[test]
    fn static_algorithms_ignore_agent_weights() {
        let mut b = Board::new(vec![BackendSpec {
            name: "be".into(),
            from_listen: true,
            dynamic_weights: false,
            log_health_checks: false,
            servers: vec![server("s1", false, true)],
        }]);
        assert!(msgs(&b.record_agent(0, 0, reply("50%\n"), MS)).is_empty());
        let e = b.record_check(0, 0, &refused(), MS);
        assert_eq!(
            lines(&e).last().map(String::as_str),
            Some("[ALERT] proxy 'be' has no server available!")
        );
    }
}
