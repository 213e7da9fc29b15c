//! Starting a shard: executor, ring, listeners, the accept loops and the control-message task.

use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;

use futures_lite::future;
use ringlb_config::model::Mode;
use ringlb_uring::rt;
use ringlb_uring::{bind_listener, Ring, TcpListener};

use crate::conn::{ClientConn, TlsConn};
use crate::log::{local_utc_offset_secs, Logger};
use crate::notify::Notify;
use crate::ops::RateLimiter;
use crate::state::{ControlMsg, RunState, ShardState};
use crate::topology::Topology;
use crate::Ctx;

/// How long a soft-stopping shard keeps taking connections already queued on its listeners.
const ACCEPT_DRAIN: std::time::Duration = std::time::Duration::from_millis(5);

/// Receive buffers in a shard's provided-buffer pool.
const RECV_BUFFERS: u16 = 256;

/// How to start one shard.
pub struct ShardConfig {
    pub id: usize,
    pub nshards: usize,
    /// CPUs the shard may run on (`cpu-map`): one CPU pins it; empty leaves it unbound.
    pub cpus: Vec<usize>,
    pub topology: Arc<Topology>,
    pub control: rt::channel::Receiver<ControlMsg>,
    /// Where this shard publishes its counters (shared by all shards and the readers).
    pub board: std::sync::Arc<crate::counters::StatsBoard>,
    /// Commands to the control shard (a stats page asks it to collect every shard's counters).
    pub commands: crossbeam_channel::Sender<ControlMsg>,
    /// Told once: `Ok` when every listener is bound, or why the shard could not start.
    pub ready: mpsc::Sender<Result<(), String>>,
    /// This shard's ends of the stick-table mesh (`stick::mesh`); None: tables stay local.
    pub stick: Option<crate::stick::StickLinks>,
}

/// Spawns the shard's thread, pinned to its CPUs, running the shard's own loop on its ring
/// (`ringlb_uring::rt`, ADR 0006). It runs until a hard stop, or a soft stop once its last
/// connection closed.
pub fn spawn_shard(cfg: ShardConfig) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ringlb-shard-{}", cfg.id))
        .spawn(move || {
            let id = cfg.id;
            if let Err(e) = rt::pin_thread(&cfg.cpus) {
                let _ = cfg.ready.send(Err(format!(
                    "shard {id}: cannot pin to CPUs {:?}: {e}",
                    cfg.cpus
                )));
                return;
            }
            // 256 receive buffers: only bytes in flight hold one (idle connections hold none);
            // the kernel hands them out in ring order, so over time every buffer gets touched
            // and the pool costs up to 256 × tune.bufsize of memory. Beyond 256 at once, reads
            // fall back to heap buffers (ringlb-uring).
            let ring = match Ring::new(1024, RECV_BUFFERS, cfg.topology.tune.bufsize) {
                Ok(r) => r,
                Err(e) => {
                    let _ = cfg
                        .ready
                        .send(Err(format!("shard {id}: io_uring setup failed: {e}")));
                    return;
                }
            };
            let ready = cfg.ready.clone();
            if let Err(e) = rt::block_on(&ring, run(cfg, ring.clone())) {
                let _ = ready.send(Err(format!("shard {id}: io_uring wait failed: {e}")));
            }
        })
}

async fn run(cfg: ShardConfig, ring: Ring) {
    let ShardConfig {
        id,
        nshards,
        topology,
        control,
        ready,
        board,
        commands,
        stick,
        ..
    } = cfg;
    let state = Rc::new(ShardState::with_board(topology.clone(), id, nshards, board));
    state.counters.borrow_mut().attach_gauges(&state.board, id);
    let logger = match open_logger(&ring, &topology, &state) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: {e}")));
            return;
        }
    };

    let core = Rc::new(Core {
        id,
        nshards,
        ring: ring.clone(),
        stop: Rc::new(Notify::default()),
        // `maxconnrate` / `maxsessrate`: this shard's share, for all its listeners together
        // (an in-process reload refuses to change them).
        rates: Rc::new(std::cell::RefCell::new([
            RateLimiter::new(crate::state::share(topology.ops.conn_rate, nshards)),
            RateLimiter::new(crate::state::share(topology.ops.sess_rate, nshards)),
        ])),
        current: std::cell::RefCell::new(Epoch::new(Ctx {
            state: state.clone(),
            ring: ring.clone(),
            stopping: Rc::new(Notify::default()),
            logger,
            commands,
            scratch: Default::default(),
            live: Rc::new(crate::live::Live::new(id)),
        })),
        slots: std::cell::RefCell::new(Vec::new()),
        epochs: crate::epoch::Epochs::default(),
    });
    {
        let cur = core.current();
        core.epochs.push(&cur.ctx.state, &cur.ctx.stopping);
    }
    let bound = bind_epoch(&core, &topology, &state, &[]);
    if let Some(e) = bound.errors.into_iter().next() {
        let _ = ready.send(Err(e));
        return;
    }
    *core.slots.borrow_mut() = bound.slots;
    for (slot, listener) in bound.fresh {
        ringlb_uring::rt::spawn(accept_loop(core.clone(), slot, listener)).detach();
    }
    let _ = ready.send(Ok(()));
    crate::stick::spawn_tasks(&state, stick, &core.stop);

    // `pool-purge-delay`: close idle server connections nobody reused for that long (the
    // current epoch's; an old epoch's idle connections moved to the new one).
    {
        let core = core.clone();
        ringlb_uring::rt::spawn(async move {
            while !core.stop.is_raised() {
                let state = core.current().ctx.state;
                let every = state
                    .topo
                    .backends
                    .iter()
                    .flat_map(|b| b.servers.iter())
                    .map(|s| s.pool_purge_delay)
                    .min()
                    .unwrap_or(std::time::Duration::from_secs(1));
                drop(state);
                ringlb_uring::rt::sleep(every.max(std::time::Duration::from_millis(10))).await;
                core.current()
                    .ctx
                    .state
                    .purge_idle(std::time::Instant::now());
            }
        })
        .detach();
    }

    let receiver = control;
    let control_task = {
        let core = core.clone();
        async move {
            while let Some(msg) = receiver.recv().await {
                let state = core.current().ctx.state;
                match msg {
                    ControlMsg::NewEpoch(crate::state::Epoch(topo)) => core.start_epoch(topo),
                    ControlMsg::SoftStop if state.topo.grace.is_some() => {
                        // `grace`: keep serving normally for a while, then stop softly.
                        let grace = state.topo.grace.unwrap_or_default();
                        let core = core.clone();
                        ringlb_uring::rt::spawn(async move {
                            ringlb_uring::rt::sleep(grace).await;
                            core.stop_all(&ControlMsg::SoftStop);
                        })
                        .detach();
                    }
                    ControlMsg::SoftStop | ControlMsg::HardStop => core.stop_all(&msg),
                    ControlMsg::SetFrontendState { frontend, .. } => {
                        state.apply(&msg);
                        core.sync_listeners(frontend);
                    }
                    ControlMsg::Engine { seq, query } => {
                        let ctx = core.current().ctx;
                        let reply = engine_reply(&ctx, &query);
                        state.board.publish_engine(core.id, seq, reply);
                    }
                    other => state.apply(&other),
                }
            }
            // The control shard went away: behave as a hard stop.
            core.stop_all(&ControlMsg::HardStop);
        }
    };
    ringlb_uring::rt::spawn(control_task).detach();

    // Run until stopped: hard stop at once, soft stop when the last connection closed (every
    // epoch's: the counts are shared). While running, closing connections do not wake this
    // task (it waits for the stop first).
    core.stop.wait().await;
    poll_fn(|cx| {
        let state = core.current().ctx.state;
        match state.run.get() {
            RunState::Stopped => Poll::Ready(()),
            RunState::SoftStopping if state.conns.get() == 0 && state.accepting.get() == 0 => {
                Poll::Ready(())
            }
            _ => {
                state.conn_closed.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await;
}

/// The configuration epoch new connections use: its context and per-frontend counts.
#[derive(Clone)]
struct Epoch {
    ctx: Ctx,
    fe_conns: Rc<Vec<std::cell::Cell<u32>>>,
    /// `rate-limit sessions`: one limiter per frontend (this shard's share), shared by the
    /// frontend's binds.
    fe_rates: FrontendRates,
}

impl Epoch {
    fn new(ctx: Ctx) -> Epoch {
        let n = ctx.state.topo.frontends.len();
        let nshards = ctx.state.nshards;
        let fe_rates = ctx
            .state
            .topo
            .frontends
            .iter()
            .map(|f| {
                std::cell::RefCell::new(RateLimiter::new(crate::state::share(
                    f.rate_limit_sessions,
                    nshards,
                )))
            })
            .collect();
        Epoch {
            ctx,
            fe_conns: Rc::new((0..n).map(|_| std::cell::Cell::new(0)).collect()),
            fe_rates: Rc::new(fe_rates),
        }
    }
}

/// What a shard's long-lived tasks share: the current epoch and the listening sockets.
struct Core {
    id: usize,
    nshards: usize,
    ring: Ring,
    /// Raised on soft or hard stop: accept loops end, the shard waits for its connections.
    stop: Rc<Notify>,
    rates: Rates,
    current: std::cell::RefCell<Epoch>,
    slots: std::cell::RefCell<Vec<Rc<Slot>>>,
    /// Every epoch still in use, for a stop to reach their connections.
    epochs: crate::epoch::Epochs,
}

impl Core {
    fn current(&self) -> Epoch {
        self.current.borrow().clone()
    }

    /// Applies a frontend's runtime state to this shard's listening sockets of it, as
    /// haproxy pauses a listener: `shutdown(SHUT_RD)` takes the socket out of the kernel's
    /// reuseport group (new clients are refused, a pending accept fails and the accept loop
    /// waits), `listen()` puts it back. A stopped frontend's accept loops end and close them.
    fn sync_listeners(&self, frontend: usize) {
        let epoch = self.current();
        let state = &epoch.ctx.state;
        let run = state.limits.frontend(frontend);
        for slot in self.slots.borrow().iter() {
            let (fi, bi) = slot.at.get();
            if fi != frontend || slot.retired.get() {
                continue;
            }
            let was = slot.paused.replace(run != crate::state::FrontendRun::Ready);
            if was == slot.paused.get() {
                continue;
            }
            let fd = slot.fd;
            // SAFETY: plain syscalls on the listening socket this slot's accept loop owns (a
            // slot is dropped from `slots` before its socket closes).
            unsafe {
                if slot.paused.get() {
                    libc::shutdown(fd, libc::SHUT_RD);
                } else {
                    let backlog = state
                        .topo
                        .frontends
                        .get(fi)
                        .and_then(|f| f.binds.get(bi))
                        .map_or(1024, |b| b.listen.backlog);
                    libc::listen(fd, backlog);
                }
            }
        }
    }

    fn stop_all(&self, msg: &ControlMsg) {
        self.epochs.stop_all(msg);
        self.stop.raise();
    }

    /// In-process reload (`ControlMsg::NewEpoch`): builds the shard's state for `topo`, keeps
    /// the listeners whose address and options did not change (no close, no lost SYN), binds
    /// the new ones, drains and closes the removed ones; new connections use the new epoch,
    /// the old epoch's connections finish on it (idle keep-alive ones close as on a soft stop).
    fn start_epoch(self: &Rc<Core>, topo: Arc<Topology>) {
        let old = self.current();
        if old.ctx.state.run.get() != RunState::Running {
            return; // stopping: no new epoch
        }
        let state = Rc::new(old.ctx.state.next_epoch(topo.clone()));
        let kept = self.slots.borrow().clone();
        let bound = bind_epoch(self, &topo, &state, &kept);
        for e in &bound.errors {
            eprintln!(
                "[ALERT]    ({}) : reload: {e}; the other listeners serve the new configuration.",
                std::process::id()
            );
        }
        let logger = match open_logger(&self.ring, &topo, &state) {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "[ALERT]    ({}) : reload: shard {}: {e}; logging as before.",
                    std::process::id(),
                    self.id
                );
                old.ctx.logger.clone()
            }
        };
        old.ctx.live.new_h1_meters();
        let next = Epoch::new(Ctx {
            state: state.clone(),
            ring: self.ring.clone(),
            stopping: Rc::new(Notify::default()),
            logger,
            commands: old.ctx.commands.clone(),
            scratch: old.ctx.scratch.clone(),
            live: old.ctx.live.clone(),
        });
        self.epochs.push(&state, &next.ctx.stopping);
        *self.current.borrow_mut() = next;
        for s in &kept {
            if !bound.slots.iter().any(|k| Rc::ptr_eq(k, s)) {
                s.retired.set(true);
                s.retire.raise();
            }
        }
        *self.slots.borrow_mut() = bound.slots;
        // Frontends paused on the runtime socket stay paused on their new sockets too.
        for fi in 0..topo.frontends.len() {
            self.sync_listeners(fi);
        }
        for (slot, listener) in bound.fresh {
            ringlb_uring::rt::spawn(accept_loop(self.clone(), slot, listener)).detach();
        }
        // The old epoch finishes what it has: responses close their connections, idle
        // keep-alive connections get the soft-stop grace, HTTP/2 ones a GOAWAY.
        let o = &old.ctx.state;
        o.retired.set(true);
        if o.run.get() == RunState::Running {
            o.run.set(RunState::SoftStopping);
        }
        old.ctx.stopping.raise();
        o.wake_conn_waiters();
    }
}

fn open_logger(
    ring: &Ring,
    topology: &Topology,
    state: &Rc<ShardState>,
) -> Result<Rc<Logger>, String> {
    let origin = ringlb_log::Origin {
        hostname: topology.log_hostname.clone(),
        tag: topology.log_tag.clone(),
        pid: std::process::id(),
    };
    Logger::open(
        ring,
        &topology.logs,
        &topology.rings,
        origin,
        local_utc_offset_secs(),
        Some(state.clone()),
    )
    .map(Rc::new)
    .map_err(|e| e.to_string())
}

/// What identifies a listening socket across epochs: a bind with the same key keeps the
/// socket (its other settings, read per connection, follow the new configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
struct BindKey {
    addr: std::net::SocketAddr,
    unix: Option<std::path::PathBuf>,
    listen: ringlb_uring::ListenOpts,
    tls: bool,
}

impl BindKey {
    fn of(bind: &crate::topology::BindRt) -> BindKey {
        BindKey {
            addr: bind.addr,
            unix: bind.unix.as_ref().map(|u| u.path.clone()),
            listen: bind.listen.clone(),
            tls: bind.tls.is_some(),
        }
    }
}

/// One listening socket of the shard and the bind it serves in the current epoch.
struct Slot {
    key: BindKey,
    /// (frontend, bind) in the current epoch's topology.
    at: std::cell::Cell<(usize, usize)>,
    /// The bind left the configuration: the accept loop drains the queue and closes.
    retired: std::cell::Cell<bool>,
    retire: Notify,
    /// Connections accepted on this socket (the bind's `maxconn` share).
    conns: Rc<std::cell::Cell<u32>>,
    /// The listening socket, for `disable|enable frontend` (`Core::sync_listeners`).
    fd: std::os::fd::RawFd,
    /// The socket is shut down for reading (frontend paused or stopped).
    paused: std::cell::Cell<bool>,
}

struct Bound {
    /// The sockets of the epoch, kept ones included.
    slots: Vec<Rc<Slot>>,
    /// Sockets bound now, for new accept loops.
    fresh: Vec<(Rc<Slot>, (TcpListener, bool))>,
    errors: Vec<String>,
}

/// Binds the listeners of `topology` this shard serves, reusing those of `kept` with the same
/// key, and records the TLS of its TLS binds in `state`.
fn bind_epoch(core: &Core, topology: &Topology, state: &ShardState, kept: &[Rc<Slot>]) -> Bound {
    let (id, nshards) = (core.id, core.nshards);
    let mut out = Bound {
        slots: Vec::new(),
        fresh: Vec::new(),
        errors: Vec::new(),
    };
    for (fi, fe) in topology.frontends.iter().enumerate() {
        for (bi, bind) in fe.binds.iter().enumerate() {
            // `thread <set>`: only the shards in the set listen (shard N is thread N+1).
            if let Some(set) = &bind.threads {
                if !set.iter().take(nshards + 1).any(|on| *on) {
                    out.errors.push(format!(
                        "Starting frontend {}: bind [{}] 'thread' names no thread among the {nshards} ringlb runs",
                        fe.name, bind.addr
                    ));
                    continue;
                }
                if !set.get(id + 1).copied().unwrap_or(false) {
                    continue;
                }
            }
            let tls = match (&bind.tls, &topology.tls_shared) {
                (Some(t), Some(shared)) => {
                    let mine = t.for_shard(shared, nshards);
                    state.bind_tls.borrow_mut().push(((fi, bi), mine));
                    true
                }
                _ => false,
            };
            let key = BindKey::of(bind);
            let reuse = kept.iter().find(|s| {
                s.key == key && !s.retired.get() && !out.slots.iter().any(|o| Rc::ptr_eq(o, s))
            });
            if let Some(s) = reuse {
                s.at.set((fi, bi));
                out.slots.push(s.clone());
                continue;
            }
            // `-x`: the old process's sockets for this bind, else a new one. The k-th received
            // socket goes to shard k mod nshards, so a shard may serve more than one. A UNIX
            // bind's one socket (received or bound by the first shard) is shared by all.
            let bound: Vec<std::io::Result<std::os::fd::OwnedFd>> = match &bind.unix {
                Some(u) => vec![u.take_for_shard(nshards)],
                None => {
                    let got = crate::handoff::take_inherited(bind.addr, &bind.listen, id, nshards);
                    if got.is_empty() {
                        vec![bind_listener(bind.addr, &bind.listen)]
                    } else {
                        got.into_iter()
                            .map(|fd| ringlb_uring::adopt_listener(&fd, &bind.listen).map(|()| fd))
                            .collect()
                    }
                }
            };
            for bound in bound {
                match bound {
                    Ok(fd) => {
                        // Accepted sockets inherit the listener's buffer sizes.
                        let bufs = topology.ops.sock_bufs;
                        crate::ops::apply_buffers(&fd, bufs.rcv_client, bufs.snd_client);
                        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
                        let listener = TcpListener::from_fd(&core.ring, fd);
                        let slot = Rc::new(Slot {
                            key: key.clone(),
                            at: std::cell::Cell::new((fi, bi)),
                            retired: std::cell::Cell::new(false),
                            retire: Notify::default(),
                            conns: Rc::default(),
                            fd: raw,
                            paused: std::cell::Cell::new(false),
                        });
                        out.slots.push(slot.clone());
                        out.fresh.push((slot, (listener, tls)));
                    }
                    Err(e) => {
                        let addr = match &bind.unix {
                            Some(u) => u.path.display().to_string(),
                            None => bind.addr.to_string(),
                        };
                        out.errors.push(format!(
                            "Starting frontend {}: cannot bind socket (shard {id}) [{addr}]: {e}",
                            fe.name
                        ));
                    }
                }
            }
        }
    }
    // A shard can serve two sockets of one bind (received with `-x` from a process that ran
    // more shards): the extra one is kept with its twin rather than retired, since closing a
    // socket of a reuseport group could reset a connection queued on it.
    for s in kept {
        if s.retired.get() || out.slots.iter().any(|o| Rc::ptr_eq(o, s)) {
            continue;
        }
        let twin = out
            .slots
            .iter()
            .find(|o| o.key == s.key)
            .map(|o| o.at.get());
        if let Some(at) = twin {
            s.at.set(at);
            out.slots.push(s.clone());
        }
    }
    out
}

/// Counts a connection on a TLS bind for `maxsslconn` while it lives.
struct SslConn(Rc<ShardState>);

impl SslConn {
    fn new(state: &Rc<ShardState>) -> SslConn {
        state.ssl_conns.set(state.ssl_conns.get() + 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (sec, n) = state.ssl_rate.get();
        state
            .ssl_rate
            .set(if sec == now { (sec, n + 1) } else { (now, 1) });
        SslConn(state.clone())
    }
}

impl Drop for SslConn {
    fn drop(&mut self) {
        self.0
            .ssl_conns
            .set(self.0.ssl_conns.get().saturating_sub(1));
    }
}

/// `maxsslrate`: once this shard accepted its share of TLS connections in the current
/// second, waits for the next one (haproxy also pauses its TLS listeners until the rate
/// allows one more).
async fn ssl_rate_wait(state: &ShardState, limit: u32) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (sec, n) = state.ssl_rate.get();
        if sec != now.as_secs() || n < limit {
            return;
        }
        let left = std::time::Duration::from_secs(1).saturating_sub(
            std::time::Duration::from_nanos(u64::from(now.subsec_nanos())),
        );
        ringlb_uring::rt::sleep(left.max(std::time::Duration::from_millis(1))).await;
    }
}

/// Accepts connections on one listener while the shard runs, within `maxconn` (global share,
/// frontend share and the bind's own share), and spawns a task per connection.
async fn accept_loop(core: Rc<Core>, slot: Rc<Slot>, (listener, tls): (TcpListener, bool)) {
    // `expose-fd listeners`: the socket can be handed to a new process while this loop owns
    // it (dropped before `listener`, which closes it). A UNIX bind's one socket is registered
    // by every shard (each through its own descriptor) and sent once.
    let _exposed = crate::handoff::expose(slot.fd, slot.key.listen.interface.as_deref());
    let first = core.current().ctx.state;
    // Counted while running, so a soft-stopping shard waits for the drain to finish (the
    // count is shared by the epochs).
    struct Accepting(Rc<ShardState>);
    impl Drop for Accepting {
        fn drop(&mut self) {
            self.0
                .accepting
                .set(self.0.accepting.get().saturating_sub(1));
            self.0.wake_conn_waiters();
        }
    }
    first.accepting.set(first.accepting.get() + 1);
    let _accepting = Accepting(first);
    let nshards = core.nshards;
    let bind_conns = slot.conns.clone();
    let stopped = || core.stop.is_raised() || slot.retired.get();
    loop {
        // The epoch as of now: an in-process reload changes it between two accepts.
        let epoch = core.current();
        let state = epoch.ctx.state.clone();
        let (frontend, bind) = slot.at.get();
        let Some(fe) = state.topo.frontends.get(frontend) else {
            return;
        };
        // `disable frontend`: wait for `enable`; `shutdown frontend`: close the socket.
        match state.limits.frontend(frontend) {
            crate::state::FrontendRun::Stopped => {
                // Closed for good: a reload binds a new socket rather than reuse this one.
                slot.retired.set(true);
                return;
            }
            crate::state::FrontendRun::Paused => {
                if stopped() {
                    return;
                }
                // The epoch of each wake-up: `enable` after a reload changes the new one.
                poll_fn(|cx| {
                    let now = core.current().ctx.state;
                    if stopped()
                        || now.limits.frontend(slot.at.get().0) != crate::state::FrontendRun::Paused
                    {
                        Poll::Ready(())
                    } else {
                        state.conn_closed.borrow_mut().push(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                continue;
            }
            crate::state::FrontendRun::Ready => {}
        }
        let bind_maxconn = fe.binds.get(bind).map_or(0, |b| b.maxconn);
        let bind_share = crate::state::share(bind_maxconn, nshards);
        // `maxsslconn`/`maxsslrate` apply to TLS binds only, each shard taking its share.
        let (ssl_share, ssl_rate_share) = if tls {
            (
                crate::state::share(state.topo.maxsslconn, nshards),
                crate::state::share(state.limits.ssl_rate.get(), nshards),
            )
        } else {
            (0, 0)
        };
        if ssl_rate_share > 0 {
            ssl_rate_wait(&state, ssl_rate_share).await;
        }
        // Pause accepting while a limit is reached; a closing connection wakes us.
        poll_fn(|cx| {
            let full = |cur: u32, lim: u32| lim > 0 && cur >= lim;
            let fe_cur = epoch.fe_conns.get(frontend).map_or(0, |c| c.get());
            // The limits as of each wake-up (`set maxconn` raises them while we wait).
            let now = core.current().ctx.state;
            let fe_max = now
                .limits
                .fe_maxconn
                .get(slot.at.get().0)
                .map_or(fe.maxconn, std::cell::Cell::get);
            let fe_share = crate::state::share(fe_max, nshards);
            let global_share = crate::state::share(now.limits.maxconn.get(), nshards);
            if stopped()
                || !(full(state.conns.get(), global_share)
                    || full(fe_cur, fe_share)
                    || full(bind_conns.get(), bind_share)
                    || full(state.ssl_conns.get(), ssl_share))
            {
                Poll::Ready(())
            } else {
                state.conn_closed.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let fe_rate = epoch.fe_rates.get(frontend);
        {
            // `set rate-limit ... global`: this shard's share of the current totals.
            let mut r = core.rates.borrow_mut();
            r[0].set_limit(crate::state::share(state.limits.conn_rate.get(), nshards));
            r[1].set_limit(crate::state::share(state.limits.sess_rate.get(), nshards));
        }
        wait_for_rate(&core.rates, fe_rate, &core.stop).await;
        // A retired socket (its bind left the configuration) drains like a soft stop.
        let soft = || slot.retired.get() || state.run.get() == RunState::SoftStopping;
        // `None`: a soft stop's drain found the queue empty (its accept was dropped).
        let drained = if stopped() {
            if !soft() {
                return; // hard stop: dropping the listener closes it
            }
            // Soft stop (a reload): take what the kernel already queued for this listener
            // before closing it, so those clients are served rather than reset. Not when the
            // socket went to a new process (`_getsocks`): it accepts from this same queue.
            if crate::handoff::transferred() && !slot.retired.get() {
                None
            } else {
                crate::time::within(Some(ACCEPT_DRAIN), listener.accept())
                    .await
                    .ok()
            }
        } else {
            // The accept stays armed across a stop (never cancelled with a connection in it).
            let accept = listener.accept();
            futures_lite::pin!(accept);
            let first = future::or(async { Some((&mut accept).await) }, async {
                future::or(core.stop.wait(), slot.retire.wait()).await;
                None
            })
            .await;
            match first {
                Some(r) => Some(r),
                None if crate::handoff::transferred() && !slot.retired.get() => None,
                None if soft() || slot.retired.get() => {
                    crate::time::within(Some(ACCEPT_DRAIN), &mut accept)
                        .await
                        .ok()
                }
                None => return,
            }
        };
        let accepted = match drained {
            Some(r) => r,
            None => {
                // The dropped accept may have taken a client as it was cancelled: that one is
                // served, not reset by closing it with the listener.
                listener.settle().await;
                match listener.take_stashed() {
                    Some(c) => Ok(c),
                    None => return, // queue empty: dropping the listener closes it
                }
            }
        };
        let client = match accepted {
            Ok(c) => c,
            Err(e) => {
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) {
                    // Out of descriptors or memory: back off briefly instead of spinning.
                    ringlb_uring::rt::sleep(std::time::Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        {
            let now = std::time::Instant::now();
            for r in core.rates.borrow_mut().iter_mut() {
                r.record(now);
            }
            if let Some(r) = fe_rate {
                r.borrow_mut().record(now);
            }
        }
        // A reload while the accept waited: the connection belongs to the new epoch (unless
        // this socket was retired, whose last connections the old epoch serves).
        let (epoch, (frontend, bind)) = if slot.retired.get() {
            (epoch, (frontend, bind))
        } else {
            (core.current(), slot.at.get())
        };
        let Some(fe) = epoch.ctx.state.topo.frontends.get(frontend) else {
            continue;
        };
        let mode = fe.mode;
        let guard = ConnGuard::new(
            epoch.ctx.state.clone(),
            epoch.fe_conns.clone(),
            (frontend, bind),
            bind_conns.clone(),
        );
        let ctx = epoch.ctx.clone();
        // The bind's TLS as of now: a `commit ssl cert` affects later connections only.
        let tls = if tls {
            ctx.state.bind_tls((frontend, bind))
        } else {
            None
        };
        let accepted_at = (std::time::Instant::now(), std::time::SystemTime::now());
        let accept_proxy = fe.binds.get(bind).is_some_and(|b| b.accept_proxy);
        let ssl_guard = tls.is_some().then(|| SslConn::new(&ctx.state));
        // `show sess`: a slab slot for the life of the connection (`live.rs`).
        let sess = ctx.live.register(
            (frontend, bind),
            client.peer_addr(),
            None, // asked of the socket only when listed (no syscall per connection)
            client.as_raw_fd(),
            accepted_at,
        );
        ringlb_uring::rt::spawn(async move {
            let _guard = guard;
            // Dropped before `_guard`, which wakes the accept loops.
            let _ssl = ssl_guard;
            let live = ctx.live.clone();
            let _registered = Registered(live.clone(), sess);
            // `shutdown session`: the stream is dropped where it stands (its sockets close).
            let conn = serve_conn(
                ctx,
                client,
                (frontend, bind),
                (tls, accept_proxy),
                (mode, accepted_at, sess),
            );
            future::or(conn, live.killed(sess)).await;
        })
        .detach();
    }
}

/// Frees the stream's registry slot when its task ends.
struct Registered(Rc<crate::live::Live>, crate::live::SessRef);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.unregister(self.1);
    }
}

/// One client connection from accept to close: PROXY header, TLS, then the mode's session.
async fn serve_conn(
    ctx: Ctx,
    client: ringlb_uring::TcpStream,
    (frontend, bind): (usize, usize),
    (tls, accept_proxy): (Option<Arc<ringlb_tls::ShardTls>>, bool),
    (mode, accepted_at, sess): (
        Mode,
        (std::time::Instant, std::time::SystemTime),
        crate::live::SessRef,
    ),
) {
    let mut client = client;
    if let Some(fe) = ctx.state.topo.frontends.get(frontend) {
        if let Some(ka) = fe.clitcpka {
            let _ = client.set_keepalive(ka);
        }
        if fe.nolinger {
            client.set_linger_zero();
        }
    }
    if accept_proxy {
        let timeout = ctx
            .state
            .topo
            .frontends
            .get(frontend)
            .and_then(|f| f.timeouts.client);
        if let Err(err) = read_proxy_header(&mut client, timeout).await {
            crate::log::log_conn_error(&ctx, frontend, bind, &client, accepted_at, err);
            return;
        }
        // `show sess` shows the client the PROXY header named.
        ctx.live.set_src(sess, client.peer_addr());
    }
    let client = match tls {
        None => ClientConn::Plain(client),
        Some(tls) => {
            let timeout = ctx
                .state
                .topo
                .frontends
                .get(frontend)
                .and_then(|f| f.timeouts.http_request.or(f.timeouts.client));
            match TlsConn::accept(client, tls, timeout).await {
                Ok(c) => ClientConn::Tls(Box::new(c)),
                // HAProxy closes silently and logs the failure (`error-log-format`).
                Err((tcp, e)) => {
                    let err = crate::log::ConnError::from_handshake(&e);
                    crate::log::log_conn_error(&ctx, frontend, bind, &tcp, accepted_at, err);
                    tcp.set_linger_zero();
                    return;
                }
            }
        }
    };
    if let Some(fe) = ctx.state.topo.frontends.get(frontend) {
        if matches!(fe.log_line, crate::topology::LogLine::Connect) {
            crate::log::log_connect(&ctx, fe, &client);
        }
    }
    let topo = &ctx.state.topo;
    let h2 = topo.frontends.get(frontend).and_then(|f| f.binds.get(bind));
    match mode {
        // Boxed: the TCP proxy's state is larger than an HTTP/1 connection's, and every
        // connection's task (idle keep-alive ones included) would carry it.
        Mode::Tcp => Box::pin(crate::tcp::serve(&ctx, frontend, client, sess)).await,
        Mode::Http => match h2.map(|b| b.h2).filter(|h| h.speaks_h2(&client)) {
            // Boxed as TCP mode above: an h2 connection's state is twice an HTTP/1 one's.
            Some(h2) => Box::pin(crate::h2::serve(&ctx, frontend, h2, client, sess)).await,
            None => crate::http::serve(&ctx, frontend, client, sess).await,
        },
    }
}

/// This shard's answer to a runtime-socket question (control task; allocates the copies).
fn engine_reply(ctx: &Ctx, query: &crate::live::EngineQuery) -> crate::live::EngineReply {
    use crate::live::{Activity, EngineQuery, EngineReply, Pools};
    let live = &ctx.live;
    match query {
        EngineQuery::Sessions => EngineReply::Sessions(live.sessions(std::time::Instant::now())),
        EngineQuery::Kill { id } => EngineReply::Killed(live.kill(*id)),
        EngineQuery::Errors => EngineReply::Errors(live.captures()),
        EngineQuery::Activity => {
            let st = rt::stats();
            EngineReply::Activity(Activity {
                tasks: st.tasks_run,
                loops: st.loops,
                runtime_us: u64::try_from(st.busy.as_micros()).unwrap_or(u64::MAX),
                accepted: live.accepted.get(),
                streams: live.streams(),
                ring_in_flight: u64::from(ctx.ring.in_flight()),
            })
        }
        EngineQuery::Pools => {
            let (sess_slots, sess_used) = live.slot_counts();
            EngineReply::Pools(Pools {
                rx_bufs: u64::from(RECV_BUFFERS),
                rx_buf_size: ctx.state.topo.tune.bufsize as u64,
                rx_lent: u64::from(ctx.ring.buffers_lent()),
                sess_slots,
                sess_used,
                scratch_free: ctx.scratch.borrow().len() as u64,
            })
        }
    }
}

/// `accept-proxy`: reads the PROXY header in front of the client's bytes, and only it (peeked,
/// then consumed by its exact length), within `timeout client` as haproxy; the connection then
/// stands for the addresses it names.
async fn read_proxy_header(
    tcp: &mut ringlb_uring::TcpStream,
    timeout: Option<std::time::Duration>,
) -> Result<(), crate::log::ConnError> {
    use crate::log::ConnError;
    use ringlb_proxyproto::Parsed;
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let mut buf = vec![0u8; ringlb_proxyproto::V2_MAX];
    let mut seen = 0;
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        match crate::time::within(left, tcp.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ConnError::PrxAbort),
            Err(_) => return Err(ConnError::PrxTimeout),
        }
        let n = match tcp.peek_now(&mut buf) {
            Ok(0) if seen == 0 => return Err(ConnError::PrxEmpty),
            Ok(0) => return Err(ConnError::PrxTruncated),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(ConnError::PrxAbort),
        };
        match ringlb_proxyproto::parse(buf.get(..n).unwrap_or_default()) {
            Parsed::Done(h) => {
                tcp.discard_now(h.len).map_err(|_| ConnError::PrxAbort)?;
                if let Some((src, dst)) = h.addrs {
                    tcp.speak_for(src, dst);
                }
                return Ok(());
            }
            Parsed::Invalid("not a PROXY protocol header") => return Err(ConnError::PrxNotHdr),
            Parsed::Invalid(_) => return Err(ConnError::PrxBadHdr),
            Parsed::Incomplete if n == seen => {
                // Readable again at once while the same bytes wait: the rest is late. A short
                // pause, not a spin (`timeout client` still bounds the wait).
                ringlb_uring::rt::sleep(std::time::Duration::from_millis(2)).await;
                if tcp.peer_closed_now() {
                    return Err(ConnError::PrxTruncated);
                }
            }
            Parsed::Incomplete => seen = n,
        }
    }
}

/// The shard's connection and session rate limiters, shared by its accept loops.
type Rates = Rc<std::cell::RefCell<[RateLimiter; 2]>>;
/// `rate-limit sessions`, one limiter per frontend (indexed like the topology's frontends).
type FrontendRates = Rc<Vec<std::cell::RefCell<RateLimiter>>>;

/// Waits while this shard is over its share of `maxconnrate`, `maxsessrate` or the
/// frontend's `rate-limit sessions` (new clients wait in the kernel's backlog meanwhile, as in
/// HAProxy), or until a stop.
async fn wait_for_rate(
    rates: &Rates,
    frontend: Option<&std::cell::RefCell<RateLimiter>>,
    stop: &Notify,
) {
    loop {
        let now = std::time::Instant::now();
        let global = rates
            .borrow_mut()
            .iter_mut()
            .filter_map(|r| r.wait_for(now))
            .max();
        let own = frontend.and_then(|r| r.borrow_mut().wait_for(now));
        let wait = global.max(own);
        let Some(wait) = wait else { return };
        if stop.is_raised() {
            return;
        }
        future::or(ringlb_uring::rt::sleep(wait), stop.wait()).await;
    }
}

/// Counts a client connection against the shard, frontend and bind limits while it lives.
struct ConnGuard {
    state: Rc<ShardState>,
    fe_conns: Rc<Vec<std::cell::Cell<u32>>>,
    frontend: usize,
    bind: usize,
    bind_conns: Rc<std::cell::Cell<u32>>,
}

impl ConnGuard {
    fn new(
        state: Rc<ShardState>,
        fe_conns: Rc<Vec<std::cell::Cell<u32>>>,
        (frontend, bind): (usize, usize),
        bind_conns: Rc<std::cell::Cell<u32>>,
    ) -> ConnGuard {
        {
            // A connection accepted is a session for HAProxy's counters (no tcp-request
            // session rules yet that could refuse it).
            let now_ms = state.board.now_ms();
            let mut c = state.counters.borrow_mut();
            c.process.cum_conns += 1;
            let r = c.process.conn_per_sec.add(now_ms, 1);
            c.process.max_conn_rate = c.process.max_conn_rate.max(r);
            let r = c.process.sess_per_sec.add(now_ms, 1);
            c.process.max_sess_rate = c.process.max_sess_rate.max(r);
            c.frontend_session_start(frontend, bind, now_ms);
        }
        state.conns.set(state.conns.get() + 1);
        if let Some(c) = fe_conns.get(frontend) {
            c.set(c.get() + 1);
        }
        bind_conns.set(bind_conns.get() + 1);
        ConnGuard {
            state,
            fe_conns,
            frontend,
            bind,
            bind_conns,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.state
            .conns
            .set(self.state.conns.get().saturating_sub(1));
        if let Some(c) = self.fe_conns.get(self.frontend) {
            c.set(c.get().saturating_sub(1));
        }
        self.bind_conns.set(self.bind_conns.get().saturating_sub(1));
        {
            let mut c = self.state.counters.borrow_mut();
            c.frontend_session_end(self.frontend, self.bind);
        }
        self.state.wake_conn_waiters();
    }
}
