//! Control shard: owns the topology, starts the worker shards and broadcasts state changes to them.
//!
//! The control shard is a glommio executor of its own (unpinned, off the request path). Commands
//! reach it from the process (signals now; the runtime socket and health checks later) through a
//! crossbeam channel it drains on a short tick, and it forwards each as a typed `ControlMsg` to
//! every worker shard over bounded glommio shared channels. Workers never block on a channel: they
//! await messages in a task of their own.

pub mod checks;
pub mod cli;
pub mod dns;
pub mod mail;
pub mod peers;
pub mod placement;
pub mod reload;
pub mod ringfwd;
pub mod syslog;

use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use ringlb_shard::{spawn_shard, ControlMsg, ShardConfig, Topology};
use ringlb_uring::rt::channel as shard_channel;

use crate::checks::{CheckPlan, CheckStatsHandle, ServerCheckStats};

/// Capacity of each control → shard channel: state changes are rare; a full channel makes the
/// control shard wait, never a worker.
const CHANNEL_DEPTH: usize = 1024;
/// How often the control shard drains process commands.
const TICK: Duration = Duration::from_millis(20);
/// How long shards may take to bind their listeners.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running proxy: its shards and the control shard.
pub struct Proxy {
    shards: Vec<std::thread::JoinHandle<()>>,
    control: Option<ExecutorJoinHandle<()>>,
    commands: Option<crossbeam_channel::Sender<ControlMsg>>,
    /// Tells the control shard to exit (other threads may still hold command senders).
    control_exit: Arc<AtomicBool>,
    /// The shards' published counters.
    board: Arc<ringlb_shard::StatsBoard>,
    /// Health-check counters, updated by the control shard.
    check_stats: CheckStatsHandle,
}

impl Proxy {
    /// Starts one shard per entry of `shard_cpus` and the control shard; returns once every
    /// shard has bound its listeners (or the first error, with all shards stopped).
    pub fn start(topology: Arc<Topology>, shard_cpus: Vec<Vec<usize>>) -> Result<Proxy, String> {
        Proxy::start_with_checks(topology, shard_cpus, CheckPlan::none())
    }

    /// As [`Proxy::start`], with the control shard running the health and agent checks of
    /// `checks` and broadcasting their results.
    pub fn start_with_checks(
        topology: Arc<Topology>,
        shard_cpus: Vec<Vec<usize>>,
        checks: CheckPlan,
    ) -> Result<Proxy, String> {
        Proxy::start_full(topology, shard_cpus, checks, cli::CliPlan::none())
    }

    /// As [`Proxy::start_with_checks`], serving the runtime sockets of `cli` as well (bound
    /// before this returns, so before privileges are dropped).
    pub fn start_full(
        topology: Arc<Topology>,
        shard_cpus: Vec<Vec<usize>>,
        checks: CheckPlan,
        cli: cli::CliPlan,
    ) -> Result<Proxy, String> {
        Proxy::start_reloadable(topology, shard_cpus, checks, cli, None)
    }

    /// As [`Proxy::start_full`]; with `reload` (how to build a new configuration and the
    /// running one's process-wide settings), the runtime socket's `reload` and
    /// `ControlMsg::Reload` swap a new configuration into the running shards.
    pub fn start_reloadable(
        topology: Arc<Topology>,
        shard_cpus: Vec<Vec<usize>>,
        checks: CheckPlan,
        cli: cli::CliPlan,
        reload: Option<(reload::Reloader, Vec<(String, String)>)>,
    ) -> Result<Proxy, String> {
        let nshards = shard_cpus.len().max(1);
        // The runtime sockets exist before any listener accepts (as in haproxy, which binds
        // them with the rest at start-up): a client that reached the proxy finds them.
        let cli_sockets = cli
            .sockets
            .iter()
            .map(|spec| cli::bind(spec).map(|b| (b, spec.clone())))
            .collect::<Result<Vec<_>, String>>()?;
        let (cmd_tx, cmd_rx) = crossbeam_channel::bounded::<ControlMsg>(CHANNEL_DEPTH);
        let mut senders = Vec::with_capacity(nshards);
        let mut shards = Vec::with_capacity(nshards);
        let (ready_tx, ready_rx) = mpsc::channel();
        let board = ringlb_shard::StatsBoard::new(nshards);
        // Stick tables: every shard talks to every other one directly (ADR 0003).
        let mut stick = ringlb_shard::stick::mesh(nshards).into_iter();
        for (id, cpus) in shard_cpus.into_iter().enumerate() {
            // Unbounded: the control shard never waits on a busy worker (messages are rare).
            let (tx, rx) = shard_channel::unbounded();
            senders.push(tx);
            let cfg = ShardConfig {
                id,
                nshards,
                cpus,
                topology: topology.clone(),
                control: rx,
                ready: ready_tx.clone(),
                board: board.clone(),
                commands: cmd_tx.clone(),
                stick: stick.next(),
            };
            shards.push(spawn_shard(cfg).map_err(|e| format!("cannot start shard {id}: {e}"))?);
        }
        let control_exit = Arc::new(AtomicBool::new(false));
        let exit = control_exit.clone();
        let check_stats = CheckStatsHandle::default();
        check_stats.publish_to(board.clone(), topology.clone());
        let stats = check_stats.clone();
        let (cli_tx, cli_rx) = mpsc::channel();
        let peers = cli.peers.clone();
        let start = ControlStart {
            topo: topology.clone(),
            board: board.clone(),
            peers,
            cli,
            cli_sockets,
            cli_ready: cli_tx,
            reload: reload.map(|(r, process)| reload::Reloading::new(r, process, stats.clone())),
        };
        let control = LocalExecutorBuilder::new(Placement::Unbound)
            .name("ringlb-control")
            .io_memory(256 << 10)
            .spawn(move || control_loop(senders, cmd_rx, exit, checks, stats, start))
            .map_err(|e| format!("cannot start the control shard: {e}"))?;
        let mut proxy = Proxy {
            shards,
            control: Some(control),
            commands: Some(cmd_tx),
            board,
            control_exit,
            check_stats,
        };
        for _ in 0..nshards {
            match ready_rx.recv_timeout(START_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    proxy.stop_now();
                    return Err(e);
                }
                Err(_) => {
                    proxy.stop_now();
                    return Err("a shard did not start in time".into());
                }
            }
        }
        match cli_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                proxy.stop_now();
                return Err(e);
            }
            Err(_) => {
                proxy.stop_now();
                return Err("the control shard did not start in time".into());
            }
        }
        Ok(proxy)
    }

    /// Sends a state change to every shard (through the control shard).
    pub fn broadcast(&self, msg: ControlMsg) -> Result<(), String> {
        match &self.commands {
            Some(tx) => tx
                .send(msg)
                .map_err(|_| "the control shard has stopped".to_string()),
            None => Err("the proxy is stopping".into()),
        }
    }

    /// Every shard's counters merged, as fresh as `timeout` allows (asks each shard to publish).
    pub fn collect_stats(&self, timeout: Duration) -> Option<ringlb_shard::ShardCounters> {
        let seq = self.board.next_seq();
        self.broadcast(ControlMsg::PublishStats { seq }).ok()?;
        self.board.collect_blocking(seq, timeout)
    }

    /// A handle other threads (signal handling) can use to send commands.
    pub fn commander(&self) -> Option<crossbeam_channel::Sender<ControlMsg>> {
        self.commands.clone()
    }

    /// The health-check counters of every server (`chkfail`, `chkdown`, `lastchg`, ...), as
    /// of the last check.
    pub fn check_stats(&self) -> Vec<ServerCheckStats> {
        self.check_stats.snapshot()
    }

    /// A handle that reads the same counters from another thread.
    pub fn check_stats_handle(&self) -> CheckStatsHandle {
        self.check_stats.clone()
    }

    fn stop_now(&mut self) {
        let _ = self.broadcast(ControlMsg::HardStop);
        self.wait();
    }

    /// Waits until every shard has exited, then stops the control shard.
    pub fn wait(&mut self) {
        for h in self.shards.drain(..) {
            let _ = h.join();
        }
        self.commands = None;
        self.control_exit.store(true, Ordering::Release);
        if let Some(c) = self.control.take() {
            let _ = c.join();
        }
    }
}

/// What the control shard needs besides its channels.
struct ControlStart {
    topo: Arc<Topology>,
    board: Arc<ringlb_shard::StatsBoard>,
    cli: cli::CliPlan,
    /// The runtime sockets, bound before the shards started.
    cli_sockets: Vec<(cli::Bound, cli::SocketSpec)>,
    /// Told once the runtime sockets are served.
    cli_ready: mpsc::Sender<Result<(), String>>,
    reload: Option<reload::Reloading>,
    /// The `peers` sections to run (ADR 0007).
    peers: Vec<peers::PeersPlan>,
}

async fn control_loop(
    senders: Vec<shard_channel::Sender<ControlMsg>>,
    commands: crossbeam_channel::Receiver<ControlMsg>,
    exit: Arc<AtomicBool>,
    checks: CheckPlan,
    stats: CheckStatsHandle,
    start: ControlStart,
) {
    let mut start = start;
    let listeners: Vec<_> = std::mem::take(&mut start.cli_sockets)
        .into_iter()
        .map(|(b, spec)| (b.serve(), spec))
        .collect();
    let _ = start.cli_ready.send(Ok(()));
    let nshards = senders.len();
    let connected = senders;
    let mirror = ringlb_shard::state::ShardState::with_board(
        start.topo.clone(),
        0,
        nshards,
        start.board.clone(),
    );
    let bus = Rc::new(cli::Bus::new(connected, mirror));
    // The runtime socket and the stats page change admin states and weights through the
    // health board (haproxy's log lines, server counts), so it runs even without checks.
    let (results, handle) = checks::start(checks, stats);
    {
        let bus = bus.clone();
        // Check results go out as soon as they are known (not on the tick): a server marked
        // DOWN must stop receiving requests on every shard at once.
        glommio::spawn_local(async move {
            while let Some(msg) = results.recv().await {
                bus.send(msg).await;
            }
        })
        .detach();
    }
    // Built even without a runtime socket: SIGUSR2's in-process reload uses it.
    let ctx = {
        let mut table = start.cli.table;
        cli::set_threads(&mut table, nshards);
        Rc::new(cli::Ctx {
            topo: std::cell::RefCell::new(start.topo.clone()),
            bus: bus.clone(),
            board: start.board.clone(),
            checks: Some(handle.clone()),
            table: std::cell::RefCell::new(table),
            timeout: start.cli.timeout,
            maxconn: start.cli.maxconn,
            bufsize: start.cli.bufsize,
            active: std::cell::Cell::new(0),
            started: std::time::Instant::now(),
            socket_stats: std::cell::RefCell::new(start.cli.socket_stats),
            stick_tables: start.cli.stick_tables,
            patterns: std::cell::RefCell::new(start.cli.patterns),
            pattern_version: std::cell::Cell::new(0),
            certs: std::cell::RefCell::new(cli::build_cert_store(&start.topo)),
            reload: start.reload,
            dns: std::cell::RefCell::new(None),
            peers: std::cell::RefCell::new(Vec::new()),
        })
    };
    if let Some(plan) = start.cli.resolvers.filter(|p| !p.sections.is_empty()) {
        *ctx.dns.borrow_mut() = Some(dns::start(ctx.clone(), plan));
    }
    for (l, spec) in listeners {
        glommio::spawn_local(cli::serve(ctx.clone(), l, spec)).detach();
    }
    // Stick-table replication (ADR 0007).
    let peers_stop = peers::PeersStop::default();
    for plan in start.peers {
        let h = peers::spawn(plan, bus.clone(), start.board.clone(), peers_stop.clone());
        ctx.peers.borrow_mut().push(h);
    }
    while !exit.load(Ordering::Acquire) {
        loop {
            match commands.try_recv() {
                Ok(ControlMsg::Reload) => reload::reload_logged(&ctx).await,
                Ok(msg) => {
                    if matches!(msg, ControlMsg::SoftStop | ControlMsg::HardStop) {
                        peers_stop.stop(); // leave the mesh (ADR 0007)
                    }
                    if matches!(msg, ControlMsg::SoftStop) {
                        // Before the shards stop: hand the tables to our successor.
                        let handles = ctx.peers.borrow().clone();
                        peers::teach_successor(&handles).await;
                    }
                    for m in handle.route(msg).await {
                        bus.send(m).await;
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
            }
        }
        // The process-wide session peaks (`smax`): the shards' counts summed every tick.
        start.board.sample_gauges();
        glommio::timer::sleep(TICK).await;
    }
}

/// Process signals as HAProxy uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM / SIGINT: hard stop.
    Terminate,
    /// SIGUSR1: soft stop.
    SoftStop,
    /// SIGUSR2: in-process reload (the master of `-W` reloads by starting a new worker).
    Reload,
}

/// Blocks the signals ringlb handles in the calling thread (call before starting threads, so
/// every thread inherits the mask) and returns a receiver fed by a thread that waits for them.
pub fn handle_signals() -> io::Result<crossbeam_channel::Receiver<Signal>> {
    // SAFETY: sigset operations on a local set; pthread_sigmask on the calling thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGHUP,
        ] {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        set
    };
    let (tx, rx) = crossbeam_channel::bounded(16);
    std::thread::Builder::new()
        .name("ringlb-signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is a valid sigset; sigwait writes the signal number.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            let event = match sig {
                libc::SIGUSR1 => Signal::SoftStop,
                libc::SIGUSR2 => Signal::Reload,
                libc::SIGHUP => continue, // HAProxy: dump server states to the logs (later issue)
                _ => Signal::Terminate,
            };
            if tx.send(event).is_err() {
                return;
            }
        })?;
    Ok(rx)
}
