//! In-process reload on the control shard (the runtime socket's `reload`, SIGUSR2 without
//! master-worker): the configuration files are read and validated again by the binary's
//! [`Reloader`] (the same stages as a start), the scope guard refuses what cannot change in a
//! running process, the runtime changes are carried over by name (`epoch::carry_over`), and
//! the new topology goes to every shard as `ControlMsg::NewEpoch`. On any error nothing
//! changes. See docs/architecture.md, "In-process reload".

use std::sync::Arc;

use ringlb_shard::epoch::{carry_over, refuse_reason};
use ringlb_shard::state::{Epoch, ShardState};
use ringlb_shard::{ControlMsg, Topology};

use crate::checks::{CheckPlan, CheckStatsHandle};
use crate::cli::{CliPlan, Ctx};

/// A configuration ready to swap in, as the binary builds it from the files it was started
/// with.
pub struct ReloadPlan {
    pub topology: Topology,
    pub checks: CheckPlan,
    pub cli: CliPlan,
    /// Process-wide settings a running process cannot change, as (keyword, value): a
    /// difference with the running ones refuses the reload, naming the keyword.
    pub process: Vec<(String, String)>,
    /// Warnings of the new configuration (answered with the result).
    pub warnings: Vec<String>,
}

/// Reads, parses and validates the configuration again; `Err` holds the messages (file, line
/// and keyword, as `-c` prints them).
pub type Reloader = Box<dyn Fn() -> Result<ReloadPlan, Vec<String>> + Send>;

/// What the control shard keeps to reload in process.
pub struct Reloading {
    pub reloader: Reloader,
    /// The running configuration's process-wide settings ([`ReloadPlan::process`]).
    pub process: std::cell::RefCell<Vec<(String, String)>>,
    pub stats: CheckStatsHandle,
    /// Reloads done (the epoch number of the configuration in force; 0 at start).
    pub epoch: std::cell::Cell<u64>,
}

impl Reloading {
    pub fn new(
        reloader: Reloader,
        process: Vec<(String, String)>,
        stats: CheckStatsHandle,
    ) -> Reloading {
        Reloading {
            reloader,
            process: std::cell::RefCell::new(process),
            stats,
            epoch: std::cell::Cell::new(0),
        }
    }
}

/// The runtime socket's `reload`: the result or the errors, one per line.
pub async fn command(ctx: &Ctx) -> ringlb_runtime::Reply {
    match reload(ctx).await {
        Ok(text) => ringlb_runtime::Reply::raw(text),
        Err(text) => ringlb_runtime::Reply::err(text),
    }
}

/// SIGUSR2 (or the runtime socket): reloads and reports on stderr either way.
pub async fn reload_logged(ctx: &Ctx) {
    let pid = std::process::id();
    match reload(ctx).await {
        Ok(text) => {
            for l in text.lines() {
                eprintln!("[NOTICE]   ({pid}) : {l}");
            }
        }
        Err(text) => {
            for l in text.lines() {
                eprintln!("[ALERT]    ({pid}) : {l}");
            }
        }
    }
}

/// Carries out an in-process reload; `Ok` is the answer, `Err` says why nothing changed.
pub async fn reload(ctx: &Ctx) -> Result<String, String> {
    let Some(r) = &ctx.reload else {
        return Err("Reload in process is not available in this process.\n".into());
    };
    let refused = |why: String| {
        let text = format!("Reload refused, nothing changed: {why}\n");
        eprintln!("[ALERT]    ({}) : {}", std::process::id(), text.trim_end());
        text
    };
    let plan = match (r.reloader)() {
        Ok(p) => p,
        Err(errors) => {
            let mut text =
                String::from("Reload failed, nothing changed: the configuration has errors:\n");
            for e in &errors {
                text.push_str(e);
                text.push('\n');
                eprintln!("{e}");
            }
            eprintln!(
                "[ALERT]    ({}) : Reload failed: the configuration has errors; the running configuration stays.",
                std::process::id()
            );
            return Err(text);
        }
    };
    if let Some(why) = process_change(&r.process.borrow(), &plan.process) {
        return Err(refused(why));
    }
    let old = ctx.topo();
    if let Some(why) = refuse_reason(&old, &plan.topology) {
        return Err(refused(format!(
            "{why}; it cannot change in a running process: use a process reload (SIGUSR2 with -W, or a restart)."
        )));
    }
    if let Err(why) = probe_new_binds(&old, &plan.topology) {
        return Err(refused(why));
    }
    let ReloadPlan {
        mut topology,
        checks,
        cli,
        process,
        warnings,
    } = plan;
    // `ring` sections are process-wide (the setting guard keeps them alike): the new epoch
    // writes to the same buffers, which `show events` and the forwarders read.
    for ring in &mut topology.rings {
        if let Some(o) = old.rings.iter().find(|o| o.name == ring.name) {
            *ring = o.clone();
        }
    }
    let mirror = ctx.bus.mirror();
    topology.initial = carry_over(&mirror, &topology);
    let topo = Arc::new(topology);
    let carried = topo.initial.clone();
    let nshards = ctx.bus.shard_count();
    ctx.bus.replace_mirror(ShardState::with_board(
        topo.clone(),
        0,
        nshards,
        ctx.board.clone(),
    ));
    // `set server ... check-port` by server name: indexes may differ in the new epoch.
    let ports: Vec<(String, String, u16)> = ctx
        .checks
        .as_ref()
        .map(|h| h.check_ports())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|((b, s), port)| {
            let be = mirror.topo.backends.get(b)?;
            let srv = mirror.server(b, s)?;
            Some((be.name.clone(), srv.rt.name.clone(), port))
        })
        .collect();
    if let Some(h) = &ctx.checks {
        h.reload(checks, &carried);
        let new_mirror = ctx.bus.mirror();
        for (be, srv, port) in ports.iter().cloned() {
            let at = topo
                .backends
                .iter()
                .position(|b| b.name == be)
                .and_then(|b| new_mirror.server_index(b, &srv).map(|s| (b, s)));
            if let Some((b, s)) = at {
                h.set_check_port(b, s, port);
            }
        }
    }
    r.stats.publish_to(ctx.board.clone(), topo.clone());
    let kept_patterns = swap_cli(ctx, cli, &mirror, &topo, nshards);
    for (backend, server, port) in ports {
        ctx.table
            .borrow_mut()
            .apply_change(&ringlb_runtime::ServerChange::CheckPort {
                backend,
                server,
                port,
            });
    }
    *ctx.topo.borrow_mut() = topo.clone();
    *r.process.borrow_mut() = process;
    r.epoch.set(r.epoch.get() + 1);
    ctx.bus.send(ControlMsg::NewEpoch(Epoch(topo))).await;
    // Map and ACL files whose runtime edits were kept: the new epoch's shards read the
    // files, so they get the edited contents right after it (messages stay in order).
    for (file, entries) in kept_patterns {
        crate::cli::patterns::send_patterns(ctx, file, entries).await;
    }
    // Shards apply messages in order: once each answered, new connections use the new epoch.
    crate::cli::barrier(ctx).await;
    let mut text = format!(
        "Configuration reloaded in process (epoch {}): {} runtime change(s) carried over.\n",
        r.epoch.get(),
        carried.len()
    );
    for w in warnings {
        text.push_str(&w);
        text.push('\n');
    }
    eprintln!(
        "[NOTICE]   ({}) : {}",
        std::process::id(),
        text.lines().next().unwrap_or_default()
    );
    Ok(text)
}

/// Binds each TCP address the new configuration adds once, and closes it at once, so that a
/// port taken by another program (or below 1024 after the privileges were dropped) refuses
/// the reload instead of leaving the shards without that listener.
fn probe_new_binds(old: &Topology, new: &Topology) -> Result<(), String> {
    let known = |addr: std::net::SocketAddr| {
        old.frontends
            .iter()
            .flat_map(|f| f.binds.iter())
            .any(|b| b.unix.is_none() && b.addr == addr)
    };
    for fe in &new.frontends {
        for b in fe
            .binds
            .iter()
            .filter(|b| b.unix.is_none() && !known(b.addr))
        {
            if let Err(e) = std::net::TcpListener::bind(b.addr) {
                return Err(format!(
                    "Starting frontend {}: cannot bind socket [{}]: {e}",
                    fe.name, b.addr
                ));
            }
        }
    }
    Ok(())
}

/// The first process-wide setting that differs, as the refusal message.
fn process_change(old: &[(String, String)], new: &[(String, String)]) -> Option<String> {
    let get =
        |v: &[(String, String)], k: &str| v.iter().find(|(n, _)| n == k).map(|(_, x)| x.clone());
    let keys = old.iter().chain(new.iter()).map(|(k, _)| k.as_str());
    for k in keys {
        if get(old, k) != get(new, k) {
            return Some(format!(
                "'{k}' changed; it cannot change in a running process: use a process reload (SIGUSR2 with -W, or a restart)."
            ));
        }
    }
    None
}

/// The runtime socket's view of the new configuration: its server table (with the servers
/// added at run time and the weights set at run time kept), map files, certificates.
/// Installs the new epoch's runtime-socket state, carrying runtime changes over; returns the
/// map and ACL files (name, entries) whose runtime edits were kept.
fn swap_cli(
    ctx: &Ctx,
    cli: CliPlan,
    old_mirror: &ShardState,
    topo: &Topology,
    nshards: usize,
) -> Vec<(String, Vec<(String, String)>)> {
    let mut table = cli.table;
    crate::cli::set_threads(&mut table, nshards);
    let new_mirror = ctx.bus.mirror();
    {
        let old = ctx.table.borrow();
        // Frontend states and a maxconn set at run time (`carry_over` sends them to the
        // shards).
        for fe in &mut table.frontends {
            let Some(ofe) = old.frontends.iter().find(|f| f.name == fe.name) else {
                continue;
            };
            fe.state = ofe.state;
            let configured = old_mirror
                .topo
                .frontends
                .iter()
                .find(|f| f.name == fe.name)
                .map(|f| f.maxconn);
            if configured != Some(ofe.maxconn) {
                fe.maxconn = ofe.maxconn;
            }
        }
        for be in &mut table.backends {
            let Some(obe) = old.backends.iter().find(|b| b.name == be.name) else {
                continue;
            };
            let Some(obi) = old_mirror
                .topo
                .backends
                .iter()
                .position(|b| b.name == be.name)
            else {
                continue;
            };
            let configured = old_mirror
                .topo
                .backends
                .get(obi)
                .map_or(0, |b| b.servers.len());
            for orow in &obe.servers {
                match be.servers.iter_mut().find(|r| r.name == orow.name) {
                    // A weight set at run time (differs from the old configuration's).
                    Some(row) if orow.uweight != orow.iweight && row.iweight == orow.iweight => {
                        row.uweight = orow.uweight;
                    }
                    Some(_) => {}
                    // A server added at run time (after the configured ones) and still there.
                    None => {
                        let dynamic = old_mirror
                            .server_index(obi, &orow.name)
                            .is_some_and(|si| si >= configured);
                        // Carried only where the new epoch has it (a dynamic algorithm).
                        let carried = topo
                            .backends
                            .iter()
                            .position(|b| b.name == be.name)
                            .and_then(|nbi| new_mirror.server_index(nbi, &orow.name))
                            .is_some();
                        if dynamic && carried {
                            be.servers.push(orow.clone());
                        }
                    }
                }
            }
        }
    }
    *ctx.table.borrow_mut() = table;
    *ctx.socket_stats.borrow_mut() = cli.socket_stats;
    // `add map`, `del acl`... made on the socket survive for files unchanged on disk.
    let mut patterns = cli.patterns;
    let kept = patterns.carry_edits(&ctx.patterns.borrow());
    let resend = kept
        .into_iter()
        .filter_map(|i| Some((patterns.refs.get(i)?.file.clone(), patterns.entries(i))))
        .collect();
    *ctx.patterns.borrow_mut() = patterns;
    *ctx.certs.borrow_mut() = crate::cli::build_cert_store(topo);
    resend
}
