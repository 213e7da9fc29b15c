//! DNS for servers (`resolvers` sections, server `resolvers`): the control shard's side.
//!
//! ```text
//!  Plan::from_config ─▶ start(ctx, plan): one UDP socket per nameserver (glommio)
//!    tick task:  Resolution::tick ─▶ query to every nameserver of the section
//!    recv tasks: datagram ─▶ msg::decode ─▶ Resolution::on_answer ─▶ counters, resend
//!    outcome ─▶ Requester::apply per server ─▶ ControlMsg::SetServerResolution (shards),
//!               runtime table (show servers state), check address, haproxy's log lines
//! ```
//!
//! The protocol and its state machine are in `ringlb-dns` (pure); this file only owns the
//! sockets, the clock and the fan-out. Shards never do DNS (docs/architecture.md).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::net::UdpSocket;
use ringlb_config::model::Config;
use ringlb_dns::msg;
use ringlb_dns::resolution::{Outcome, Verdict};
use ringlb_dns::{Family, Net, Requester, Resolution, ServerResolve, Settings};
use ringlb_runtime::servers::admin;
use ringlb_runtime::OpState;
use ringlb_shard::{AdminState, ControlMsg};

use crate::cli::Ctx;

/// Longest wait of the tick task (new work only comes from its own timers and answers).
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Largest datagram read (the UDP maximum).
const RECV_BUF: usize = 65_535;

/// One `resolvers` section, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SectionPlan {
    pub name: String,
    /// (name, address) in the order `show resolvers` lists them.
    pub nameservers: Vec<(String, SocketAddr)>,
    pub settings: Settings,
}

/// One server resolving its name.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerPlan {
    /// Index among the enabled backends and in the backend (the shards' numbering).
    pub backend: usize,
    pub server: usize,
    pub backend_name: String,
    pub server_name: String,
    /// Index in [`Plan::sections`].
    pub section: usize,
    pub host: String,
    pub port: u16,
    pub opts: ServerResolve,
    /// Its address at start (`None`: `init-addr none` left it without one).
    pub addr: Option<IpAddr>,
}

/// Every `resolvers` section and every server using one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub sections: Vec<SectionPlan>,
    pub servers: Vec<ServerPlan>,
}

fn settings(r: &ringlb_config::model::Resolvers) -> Settings {
    let mut s = Settings::default();
    if let Some(n) = r.resolve_retries {
        s.retries = n.max(1);
    }
    if let Some(n) = r.accepted_payload_size {
        s.payload = u16::try_from(n).unwrap_or(u16::MAX);
    }
    for (ev, d) in &r.timeouts {
        match ev.as_str() {
            "resolve" => s.resolve = *d,
            "retry" => s.retry = *d,
            _ => {}
        }
    }
    for (st, d) in &r.hold {
        s.hold.set(st, *d);
    }
    s
}

/// `ip:port`, `ipv4@`, `udp@`... with port 53 by default.
fn nameserver_addr(text: &str) -> Option<SocketAddr> {
    let t = text.split_once('@').map_or(text, |(_, a)| a);
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Ok(ip) = t.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let (host, port) = t.rsplit_once(':')?;
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

impl Plan {
    /// Builds the plan; `resolv_conf` is /etc/resolv.conf's text (`parse-resolv-conf` and
    /// haproxy's implicit `default` section). Errors are haproxy-style alert texts.
    pub fn from_config(cfg: &Config, resolv_conf: Option<&str>) -> Result<Plan, Vec<String>> {
        let mut errors = Vec::new();
        let from_file = resolv_conf
            .map(ringlb_dns::conf::resolv_conf_nameservers)
            .unwrap_or_default();
        let mut sections: Vec<SectionPlan> = cfg
            .resolvers
            .iter()
            .map(|r| {
                let mut nameservers = Vec::new();
                for ns in &r.nameservers {
                    match nameserver_addr(&ns.address) {
                        Some(a) => nameservers.push((ns.name.clone(), a)),
                        None => errors.push(format!(
                            "parsing [{}:{}] : nameserver '{}': invalid address '{}' (ringlb needs an IP address and port).",
                            ns.loc.file, ns.loc.line, ns.name, ns.address
                        )),
                    }
                }
                if r.parse_resolv_conf {
                    // In place of the directive (a nameserver that did not parse shifts
                    // nothing: the plan is refused then).
                    let at = r.resolv_conf_at.unwrap_or(nameservers.len()).min(nameservers.len());
                    nameservers.splice(at..at, from_file.iter().cloned());
                }
                SectionPlan {
                    name: r.name.clone(),
                    nameservers,
                    settings: settings(r),
                }
            })
            .collect();
        // haproxy 2.6 makes a `default` section from resolv.conf when none has that name.
        if !sections.iter().any(|s| s.name == "default") && !from_file.is_empty() {
            sections.push(SectionPlan {
                name: "default".into(),
                nameservers: from_file.clone(),
                settings: Settings::default(),
            });
        }
        let mut servers = Vec::new();
        for (bi, b) in cfg.backends.iter().filter(|b| !b.disabled).enumerate() {
            for (si, s) in b.servers.iter().enumerate() {
                let Some(name) = &s.params.resolvers else {
                    continue;
                };
                let Some(section) = sections.iter().position(|x| &x.name == name) else {
                    continue; // validation already refused it
                };
                if s.host.starts_with('_') {
                    errors.push(format!(
                        "parsing [{}:{}] : 'server {}/{}' : SRV records ('{}') are not supported by ringlb; use an A/AAAA name and a port.",
                        s.loc.file, s.loc.line, b.name, s.name, s.host
                    ));
                    continue;
                }
                if s.host.parse::<IpAddr>().is_ok() {
                    continue; // nothing to resolve
                }
                let mut opts = ServerResolve::default();
                for (k, v) in &s.params.other {
                    let v = v.as_deref().unwrap_or("");
                    match k.as_str() {
                        "resolve-prefer" => {
                            opts.prefer = if v == "ipv4" { Family::V4 } else { Family::V6 }
                        }
                        "resolve-net" => opts.nets = v.split(',').filter_map(Net::parse).collect(),
                        "resolve-opts" => {
                            let _ = opts.set_opts(v);
                        }
                        _ => {}
                    }
                }
                servers.push(ServerPlan {
                    backend: bi,
                    server: si,
                    backend_name: b.name.clone(),
                    server_name: s.name.clone(),
                    section,
                    host: s.host.clone(),
                    port: s.port.unwrap_or(0),
                    opts,
                    addr: s.addr.map(|a| a.ip()),
                });
            }
        }
        if errors.is_empty() {
            Ok(Plan { sections, servers })
        } else {
            Err(errors)
        }
    }
}

/// A nameserver's counters (`show resolvers`, haproxy 2.6's order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NsCounters {
    pub sent: u64,
    pub snd_error: u64,
    pub valid: u64,
    pub update: u64,
    pub cname: u64,
    pub cname_error: u64,
    pub any_err: u64,
    pub nx: u64,
    pub timeout: u64,
    pub refused: u64,
    pub other: u64,
    pub invalid: u64,
    pub too_big: u64,
    pub truncated: u64,
    pub outdated: u64,
}

impl NsCounters {
    fn count(&mut self, v: Option<&Verdict>) {
        match v {
            None => self.outdated += 1,
            Some(Verdict::Valid(a)) => {
                self.valid += 1;
                if a.via_cname {
                    self.cname += 1;
                }
            }
            Some(Verdict::Nx) => self.nx += 1,
            Some(Verdict::Refused) => self.refused += 1,
            Some(Verdict::AnCountZero) => self.any_err += 1,
            Some(Verdict::CnameError) => self.cname_error += 1,
            Some(Verdict::Truncated) => self.truncated += 1,
            Some(Verdict::Invalid) => self.invalid += 1,
            Some(Verdict::Other) => self.other += 1,
        }
    }
}

/// `show resolvers [<id>]` for these sections (haproxy 2.6's layout); `None` when `id`
/// names no section.
pub fn render(
    sections: &[(String, Vec<(String, NsCounters)>)],
    id: Option<&str>,
) -> Option<String> {
    let mut out = String::new();
    let mut found = false;
    for (name, nss) in sections {
        if id.is_some_and(|i| i != name) {
            continue;
        }
        found = true;
        let _ = writeln!(out, "Resolvers section {name}");
        for (ns, c) in nss {
            let _ = writeln!(out, " nameserver {ns}:");
            for (k, v) in [
                ("sent", c.sent),
                ("snd_error", c.snd_error),
                ("valid", c.valid),
                ("update", c.update),
                ("cname", c.cname),
                ("cname_error", c.cname_error),
                ("any_err", c.any_err),
                ("nx", c.nx),
                ("timeout", c.timeout),
                ("refused", c.refused),
                ("other", c.other),
                ("invalid", c.invalid),
                ("too_big", c.too_big),
                ("truncated", c.truncated),
                ("outdated", c.outdated),
            ] {
                let _ = writeln!(out, "  {:<13}{v}", format!("{k}:"));
            }
        }
    }
    (found || id.is_none()).then_some(out)
}

struct Ns {
    name: String,
    addr: SocketAddr,
    sock: Option<Rc<UdpSocket>>,
    counters: NsCounters,
}

struct Res {
    res: Resolution,
    /// Indexes in `State::servers`.
    requesters: Vec<usize>,
}

struct Section {
    name: String,
    settings: Settings,
    ns: Vec<Ns>,
    res: Vec<Res>,
}

struct State {
    sections: Vec<Section>,
    servers: Vec<(ServerPlan, Requester)>,
}

/// The running resolvers of the control shard.
pub struct Dns {
    state: RefCell<State>,
    started: Instant,
    rng: Cell<u64>,
}

/// What to do once the state is no longer borrowed.
enum Effect {
    Send {
        section: usize,
        bytes: Vec<u8>,
    },
    Msg(ControlMsg),
    Warning(String),
    /// "is going DOWN for maintenance" with the servers left counted after the change.
    Down {
        backend: usize,
        backend_name: String,
        text: String,
    },
}

impl Dns {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A query id (xorshift; ids only need to be hard to guess from outside).
    fn next_id(&self) -> u16 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        (x >> 24) as u16
    }

    /// Counters of every section, for `show resolvers`.
    pub fn counters(&self) -> Vec<(String, Vec<(String, NsCounters)>)> {
        self.state
            .borrow()
            .sections
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.ns.iter().map(|n| (n.name.clone(), n.counters)).collect(),
                )
            })
            .collect()
    }

    /// Time passes: starts, retries or ends resolutions; returns when to come back.
    fn tick(&self, ctx: &Ctx, fx: &mut Vec<Effect>) -> u64 {
        let now = self.now_ms();
        let mut st = self.state.borrow_mut();
        let mut next = now + u64::try_from(MAX_SLEEP.as_millis()).unwrap_or(1000);
        let mut outcomes = Vec::new();
        for (si, sec) in st.sections.iter_mut().enumerate() {
            let settings = sec.settings;
            for (ri, r) in sec.res.iter_mut().enumerate() {
                let (q, o) = r.res.tick(now, &settings, self.next_id());
                if let Some(q) = q {
                    fx.push(Effect::Send {
                        section: si,
                        bytes: q.bytes,
                    });
                }
                if let Some(o) = o {
                    outcomes.push((si, ri, o));
                }
                next = next.min(r.res.next_wake_ms(&settings));
            }
        }
        for (si, ri, o) in outcomes {
            apply(ctx, &mut st, si, ri, None, &o, now, fx);
        }
        next
    }

    /// A datagram from nameserver `ni` of section `si`.
    fn answer(&self, ctx: &Ctx, si: usize, ni: usize, bytes: &[u8], fx: &mut Vec<Effect>) {
        let now = self.now_ms();
        let mut st = self.state.borrow_mut();
        let Some(sec) = st.sections.get_mut(si) else {
            return;
        };
        let nns = sec.ns.len();
        let settings = sec.settings;
        let Ok(resp) = msg::decode(bytes) else {
            if let Some(n) = sec.ns.get_mut(ni) {
                n.counters.invalid += 1;
            }
            return;
        };
        let mut done = None;
        let mut verdict = None;
        for (ri, r) in sec.res.iter_mut().enumerate() {
            if !r.res.running() {
                continue;
            }
            let a = r.res.on_answer(now, &settings, nns, &resp, self.next_id());
            if a.verdict.is_none() {
                continue;
            }
            verdict = a.verdict;
            if let Some(q) = a.resend {
                fx.push(Effect::Send {
                    section: si,
                    bytes: q.bytes,
                });
            }
            done = a.outcome.map(|o| (ri, o));
            break;
        }
        if let Some(n) = sec.ns.get_mut(ni) {
            n.counters.count(verdict.as_ref());
        }
        if let Some((ri, o)) = done {
            apply(ctx, &mut st, si, ri, Some(ni), &o, now, fx);
        }
    }
}

/// A resolution ended: every server resolving that name takes its share.
#[allow(clippy::too_many_arguments)]
fn apply(
    ctx: &Ctx,
    st: &mut State,
    si: usize,
    ri: usize,
    from_ns: Option<usize>,
    o: &Outcome,
    now: u64,
    fx: &mut Vec<Effect>,
) {
    let Some(sec) = st.sections.get(si) else {
        return;
    };
    let Some(r) = sec.res.get(ri) else {
        return;
    };
    let (res, hold) = (r.res.clone(), sec.settings.hold);
    let requesters = r.requesters.clone();
    let by = match from_ns.and_then(|n| sec.ns.get(n)) {
        Some(n) => format!("{}/{}", sec.name, n.name),
        None => sec.name.clone(),
    };
    let mut updates = 0;
    for k in requesters {
        // Addresses other servers of the backend resolving the same name hold.
        let Some((plan, _)) = st.servers.get(k) else {
            continue;
        };
        let (b, host) = (plan.backend, msg::normalize(&plan.host));
        let others: Vec<IpAddr> = st
            .servers
            .iter()
            .enumerate()
            .filter(|(j, (p, _))| *j != k && p.backend == b && msg::normalize(&p.host) == host)
            .filter_map(|(_, (_, q))| q.addr)
            .collect();
        let Some((plan, req)) = st.servers.get_mut(k) else {
            continue;
        };
        let old = req.addr;
        let up = req.apply(&res, o, now, &hold, &|ip| others.contains(&ip));
        let (bn, sn) = (&plan.backend_name, &plan.server_name);
        if let Some(ip) = up.addr {
            updates += 1;
            fx.push(Effect::Warning(format!(
                "{bn}/{sn} changed its IP from {} to {ip} by {by}.",
                old.map_or_else(|| "(none)".to_string(), |a| a.to_string())
            )));
            let addr = SocketAddr::new(ip, plan.port);
            if let Some(h) = &ctx.checks {
                h.set_addr(plan.backend, plan.server, addr);
            }
            if let Some(mut row) = row_mut(ctx, plan) {
                row.addr = Some(ip);
            }
        }
        if up.addr.is_some() || up.leave_maint {
            fx.push(Effect::Msg(ControlMsg::SetServerResolution {
                backend: plan.backend,
                server: plan.server,
                addr: req.addr.map(|ip| SocketAddr::new(ip, plan.port)),
            }));
        }
        if up.leave_maint {
            fx.push(Effect::Warning(format!(
                "Server {bn}/{sn} ('{}') is UP/READY (resolves again).",
                plan.host
            )));
            fx.push(Effect::Warning(format!(
                "Server {bn}/{sn} administratively READY thanks to valid DNS answer."
            )));
            if let Some(h) = &ctx.checks {
                h.set_unresolved(plan.backend, plan.server, false);
            }
            if let Some(mut row) = row_mut(ctx, plan) {
                row.admin &= !admin::RMAINT;
                if row.admin & admin::MAINT == 0 {
                    row.op_state = OpState::Running;
                }
            }
        }
        if let Some(reason) = up.enter_maint {
            if let Some(h) = &ctx.checks {
                h.set_unresolved(plan.backend, plan.server, true);
            }
            fx.push(Effect::Msg(ControlMsg::SetServerResolution {
                backend: plan.backend,
                server: plan.server,
                addr: None,
            }));
            if let Some(mut row) = row_mut(ctx, plan) {
                row.admin |= admin::RMAINT;
                row.addr = None;
                row.op_state = OpState::Stopped;
            }
            fx.push(Effect::Down {
                backend: plan.backend,
                backend_name: bn.clone(),
                text: format!("Server {bn}/{sn} is going DOWN for maintenance ({reason})."),
            });
        }
    }
    if let (Some(n), Some(sec)) = (from_ns, st.sections.get_mut(si)) {
        if let Some(ns) = sec.ns.get_mut(n) {
            ns.counters.update += updates;
        }
    }
}

/// The runtime table's row of a server.
fn row_mut<'a>(
    ctx: &'a Ctx,
    plan: &ServerPlan,
) -> Option<std::cell::RefMut<'a, ringlb_runtime::ServerRow>> {
    let t = ctx.table.borrow_mut();
    std::cell::RefMut::filter_map(t, |t| {
        t.backends
            .get_mut(plan.backend)?
            .servers
            .get_mut(plan.server)
    })
    .ok()
}

/// Servers of backend `b` taking traffic on the mirror: (active, backup).
fn servers_left(ctx: &Ctx, b: usize) -> (usize, usize) {
    let mirror = ctx.bus.mirror();
    let mut n = (0, 0);
    for s in mirror.servers(b) {
        if s.deleted.get() || s.admin.get() == AdminState::Maint || !s.up.get() {
            continue;
        }
        if s.rt.backup {
            n.1 += 1;
        } else {
            n.0 += 1;
        }
    }
    n
}

/// Sends the queries and messages, logs the lines.
async fn run_effects(ctx: &Ctx, dns: &Dns, fx: Vec<Effect>) {
    for e in fx {
        match e {
            Effect::Send { section, bytes } => send_all(dns, section, &bytes).await,
            Effect::Msg(m) => ctx.bus.send(m).await,
            Effect::Warning(w) => log(ctx, vec![w], Vec::new()),
            Effect::Down {
                backend,
                backend_name,
                text,
            } => {
                let (act, bck) = servers_left(ctx, backend);
                let line = format!("{text} {act} active and {bck} backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.");
                let alerts = if act + bck == 0 {
                    vec![format!("backend '{backend_name}' has no server available!")]
                } else {
                    Vec::new()
                };
                log(ctx, vec![line], alerts);
            }
        }
    }
}

fn log(ctx: &Ctx, warnings: Vec<String>, alerts: Vec<String>) {
    match &ctx.checks {
        Some(h) => h.log(warnings, alerts),
        None => {
            for w in warnings {
                eprintln!("[WARNING]  ({}) : {w}", std::process::id());
            }
            for a in alerts {
                eprintln!("[ALERT]    ({}) : {a}", std::process::id());
            }
        }
    }
}

/// Sends one query to every nameserver of a section.
async fn send_all(dns: &Dns, section: usize, bytes: &[u8]) {
    let targets: Vec<(usize, Option<Rc<UdpSocket>>, SocketAddr)> = dns
        .state
        .borrow()
        .sections
        .get(section)
        .map(|s| {
            s.ns.iter()
                .enumerate()
                .map(|(i, n)| (i, n.sock.clone(), n.addr))
                .collect()
        })
        .unwrap_or_default();
    for (i, sock, addr) in targets {
        let ok = match sock {
            Some(s) => s.send_to(bytes, addr).await.is_ok(),
            None => false,
        };
        if let Some(n) = dns
            .state
            .borrow_mut()
            .sections
            .get_mut(section)
            .and_then(|s| s.ns.get_mut(i))
        {
            if ok {
                n.counters.sent += 1;
            } else {
                n.counters.snd_error += 1;
            }
        }
    }
}

/// Starts resolving on the control executor: the tick task and one receive task per
/// nameserver. Servers without an address at start are already in resolution
/// maintenance on the shards (`Topology::initial`).
pub fn start(ctx: Rc<Ctx>, plan: Plan) -> Rc<Dns> {
    let started = Instant::now();
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
        | 1;
    let mut sections: Vec<Section> = plan
        .sections
        .iter()
        .map(|s| Section {
            name: s.name.clone(),
            settings: s.settings,
            ns: s
                .nameservers
                .iter()
                .map(|(name, addr)| {
                    let local: SocketAddr = if addr.is_ipv4() {
                        (Ipv4Addr::UNSPECIFIED, 0).into()
                    } else {
                        (Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    Ns {
                        name: name.clone(),
                        addr: *addr,
                        sock: UdpSocket::bind(local).ok().map(Rc::new),
                        counters: NsCounters::default(),
                    }
                })
                .collect(),
            res: Vec::new(),
        })
        .collect();
    let mut servers = Vec::with_capacity(plan.servers.len());
    for (k, sp) in plan.servers.into_iter().enumerate() {
        if let Some(sec) = sections.get_mut(sp.section) {
            let name = msg::normalize(&sp.host);
            match sec
                .res
                .iter_mut()
                .find(|r| r.res.name == name && requester_prefer(&servers, r) == sp.opts.prefer)
            {
                Some(r) => r.requesters.push(k),
                None => sec.res.push(Res {
                    res: Resolution::new(&name, sp.opts.prefer, 0, 0),
                    requesters: vec![k],
                }),
            }
        }
        let req = Requester {
            opts: sp.opts.clone(),
            addr: sp.addr,
            rmaint: sp.addr.is_none(),
        };
        servers.push((sp, req));
    }
    if let Some(h) = &ctx.checks {
        for (p, _) in servers.iter().filter(|(p, _)| p.addr.is_none()) {
            h.set_unresolved(p.backend, p.server, true);
        }
    }
    let dns = Rc::new(Dns {
        state: RefCell::new(State { sections, servers }),
        started,
        rng: Cell::new(seed),
    });
    let socks: Vec<(usize, usize, Rc<UdpSocket>, SocketAddr)> = dns
        .state
        .borrow()
        .sections
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            s.ns.iter()
                .enumerate()
                .filter_map(move |(ni, n)| n.sock.clone().map(|k| (si, ni, k, n.addr)))
        })
        .collect();
    for (si, ni, sock, from) in socks {
        let (ctx, dns) = (ctx.clone(), dns.clone());
        glommio::spawn_local(async move {
            let mut buf = vec![0u8; RECV_BUF];
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                // Only the nameserver's own answers count (not any local sender).
                if peer != from {
                    continue;
                }
                let mut fx = Vec::new();
                dns.answer(&ctx, si, ni, buf.get(..n).unwrap_or_default(), &mut fx);
                run_effects(&ctx, &dns, fx).await;
            }
        })
        .detach();
    }
    if !dns.state.borrow().servers.is_empty() {
        let (ctx, dns) = (ctx.clone(), dns.clone());
        glommio::spawn_local(async move {
            loop {
                let mut fx = Vec::new();
                let next = dns.tick(&ctx, &mut fx);
                run_effects(&ctx, &dns, fx).await;
                let wait = next.saturating_sub(dns.now_ms()).max(1);
                glommio::timer::sleep(Duration::from_millis(wait)).await;
            }
        })
        .detach();
    }
    dns
}

/// The preference of the servers already sharing a resolution.
fn requester_prefer(servers: &[(ServerPlan, Requester)], r: &Res) -> Family {
    r.requesters
        .first()
        .and_then(|k| servers.get(*k))
        .map_or(Family::default(), |(p, _)| p.opts.prefer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_resolvers_layout_is_haproxys() {
        // Recorded from haproxy 2.6 (`show resolvers` with one section, one nameserver).
        let want = "Resolvers section dns\n nameserver ns1:\n  sent:        17\n  snd_error:   0\n  valid:       4\n  update:      2\n  cname:       0\n  cname_error: 0\n  any_err:     0\n  nx:          12\n  timeout:     0\n  refused:     0\n  other:       0\n  invalid:     0\n  too_big:     0\n  truncated:   0\n  outdated:    0\n";
        let c = NsCounters {
            sent: 17,
            valid: 4,
            update: 2,
            nx: 12,
            ..NsCounters::default()
        };
        let sections = vec![("dns".to_string(), vec![("ns1".to_string(), c)])];
        assert_eq!(render(&sections, None).unwrap(), want);
        assert_eq!(render(&sections, Some("dns")).unwrap(), want);
        assert_eq!(render(&sections, Some("nope")), None);
    }

    #[test]
    fn nameserver_addresses() {
        assert_eq!(
            nameserver_addr("127.0.0.1:1053"),
            "127.0.0.1:1053".parse().ok()
        );
        assert_eq!(
            nameserver_addr("udp@10.0.0.1:53"),
            "10.0.0.1:53".parse().ok()
        );
        assert_eq!(nameserver_addr("10.0.0.1"), "10.0.0.1:53".parse().ok());
        assert_eq!(nameserver_addr("[::1]:5353"), "[::1]:5353".parse().ok());
        assert_eq!(nameserver_addr("dns.local:53"), None);
    }

    #[test]
    fn plan_reads_sections_and_servers() {
        let text = "resolvers dns\n nameserver ns1 127.0.0.1:1053\n parse-resolv-conf\n nameserver ns2 127.0.0.1:1054\n resolve_retries 2\n timeout resolve 2s\n timeout retry 300ms\n hold nx 5s\n accepted_payload_size 1232\nbackend be\n server s1 app.internal:80 resolvers dns init-addr none resolve-prefer ipv4 resolve-net 10.0.0.0/8 resolve-opts allow-dup-ip\n server s2 10.0.0.1:80\n";
        let dir = std::env::temp_dir().join(format!("ringlb-dns-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.cfg");
        std::fs::write(&f, text).unwrap();
        let loaded = ringlb_config::load(&[f], &|_| None).unwrap();
        let plan = Plan::from_config(&loaded.config, Some("nameserver 10.9.9.9\n")).unwrap();
        let sec = &plan.sections[0];
        let names: Vec<&str> = sec.nameservers.iter().map(|n| n.0.as_str()).collect();
        assert_eq!(names, ["ns1", "10.9.9.9", "ns2"]);
        assert_eq!(sec.settings.retries, 2);
        assert_eq!(sec.settings.resolve, Duration::from_secs(2));
        assert_eq!(sec.settings.retry, Duration::from_millis(300));
        assert_eq!(sec.settings.hold.nx, Duration::from_secs(5));
        assert_eq!(sec.settings.payload, 1232);
        assert_eq!(plan.sections[1].name, "default");
        assert_eq!(plan.servers.len(), 1);
        let s = &plan.servers[0];
        assert_eq!((s.backend, s.server, s.port, s.addr), (0, 0, 80, None));
        assert_eq!(s.opts.prefer, Family::V4);
        assert!(s.opts.allow_dup_ip);
        assert_eq!(s.opts.nets.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
