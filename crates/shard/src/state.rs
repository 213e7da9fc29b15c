//! Per-shard mutable state: server states (as last broadcast by the control shard), connection
//! counts, idle server connections and the round-robin cursor. Owned by one shard (`Rc`, `Cell`,
//! `RefCell`), never shared across threads.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use ringlb_balance::{Balancer, PickInput, SplitMix64};

use crate::queue::QueueEntry;
use crate::topology::{ServerRt, Topology};

/// Administrative state of a server, as `set server B/S state ...` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Takes traffic.
    Ready,
    /// Keeps its connections, receives no new ones (except persistent ones, later).
    Drain,
    /// Maintenance: receives nothing.
    Maint,
}

/// A typed change broadcast by the control shard; applied identically on every shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMsg {
    /// SIGUSR1: stop accepting, finish in-flight requests, exit.
    SoftStop,
    /// SIGTERM: close everything now.
    HardStop,
    SetServerAdmin {
        backend: usize,
        server: usize,
        state: AdminState,
    },
    SetServerHealth {
        backend: usize,
        server: usize,
        up: bool,
    },
    SetServerWeight {
        backend: usize,
        server: usize,
        weight: u32,
    },
    /// Copy this shard's counters to the stats board, tagged `seq` (a reader waits for it).
    PublishStats { seq: u64 },
    /// Copy the entries of stick table `table` this shard owns that match `query` to the stats
    /// board, tagged `seq` (`show table`).
    PublishStickTable {
        seq: u64,
        table: String,
        query: ringlb_stick::Query,
    },
    /// An agent check's `maxconn:N` (0 = unlimited); each shard takes its share.
    SetServerMaxconn {
        backend: usize,
        server: usize,
        maxconn: u32,
    },
    /// `set table`: every shard applies it, the key's owner as the authority, the others to
    /// their cached copy (`stick::apply_control`).
    SetStickEntry {
        table: String,
        entry: ringlb_stick::SetEntry,
    },
    /// `clear table`: every shard removes the matching entries (owned and cached) that no
    /// stream of its own holds.
    ClearStickTable {
        table: String,
        query: ringlb_stick::Query,
    },
    /// `peers` (ADR 0007): copy to the stats board the entries this shard owns in `tables`
    /// (shared with one peers section), changed locally since the last collection (all of
    /// them when `full`, a resync), tagged `seq`.
    CollectPeerUpdates {
        seq: u64,
        full: bool,
        tables: Vec<String>,
    },
    /// `peers`: entries learned from a remote peer, applied by the key's owner (and to copies
    /// other shards hold), as `set table` is.
    ApplyPeerEntries {
        table: String,
        entries: Vec<ringlb_stick::PeerEntry>,
    },
    /// Copy this shard's server connection counts to the stats board (`show servers conn`).
    PublishConns { seq: u64 },
    /// `set server B/S addr IP [port P]`: new connections to the server go to `addr`.
    SetServerAddr {
        backend: usize,
        server: usize,
        addr: std::net::SocketAddr,
    },
    /// A `resolvers` answer for the server (control shard's `dns.rs`): `Some` moves new
    /// connections to that address and ends a resolution maintenance; `None` puts the server
    /// in resolution maintenance (haproxy's `SRV_ADMF_RMAINT`, "MAINT (resolution)"), on
    /// top of whatever `set server ... state` said.
    SetServerResolution {
        backend: usize,
        server: usize,
        addr: Option<std::net::SocketAddr>,
    },
    /// A map or ACL file's new contents (`add map`, `del acl`...): version `version` of
    /// `file` (`patterns::LiveStore`).
    SetPatterns {
        file: Arc<str>,
        version: u64,
        entries: crate::patterns::Entries,
    },
    /// A rule set (`Some`) or unset (`None`) the `proc.` variable `name` on some shard; every
    /// shard applies it to its own copy (see `ShardState::proc_vars`).
    SetProcVar {
        name: Box<str>,
        value: Option<ringlb_rules::Sample<'static>>,
    },
    /// `add server`: a server appended to `backend` on every shard (index = the backend's
    /// server count before it). Starts in maintenance unless `enabled`.
    AddServer {
        backend: usize,
        server: NewServer,
        puid: u32,
        enabled: bool,
    },
    /// `del server`: the server (in maintenance, without connections) is tombstoned.
    DelServer { backend: usize, server: usize },
    /// Shard → control (`observe`): this shard saw `error-limit` consecutive errors on live
    /// traffic to the server; `info` is HAProxy's "Detected N consecutive errors, last one
    /// was: ..." text. The control shard applies `on-error`; shards ignore it.
    HealthAnalyze {
        backend: usize,
        server: usize,
        info: String,
    },
    /// `commit ssl cert`: new handshakes on binds that loaded `cert.file` serve `cert`.
    SetSslCert { cert: SharedCert },
    /// Process → control (SIGUSR2 without master-worker): reload the configuration in
    /// process (docs/architecture.md, "In-process reload"); shards ignore it.
    Reload,
    /// Control → shards: a validated configuration to serve new connections with (its
    /// `initial` messages carry the runtime state over); see `epoch.rs`.
    NewEpoch(Epoch),
    /// `disable|enable|shutdown frontend`: the frontend's listeners pause, resume or close
    /// for good on every shard (the accept loops act on it, `shard.rs`).
    SetFrontendState { frontend: usize, state: FrontendRun },
    /// `set maxconn frontend`: the frontend's new total; each shard takes its share.
    SetFrontendMaxconn { frontend: usize, maxconn: u32 },
    /// `set maxconn global` / `set rate-limit ... global`: a new process-wide total (0 =
    /// unlimited); each shard takes its share, as at start.
    SetGlobalLimit { limit: GlobalLimit, value: u32 },
    /// Runtime socket: answer `query` on the stats board, tagged `seq` (`show sess`,
    /// `shutdown session`, `show activity|pools|errors`; `shard.rs` answers it, the shard's
    /// `Live` registry lives beside the epochs).
    Engine {
        seq: u64,
        query: crate::live::EngineQuery,
    },
}

/// A frontend's listening state, changed on the runtime socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrontendRun {
    #[default]
    Ready,
    /// `disable frontend`: listeners refuse new connections until `enable frontend`.
    Paused,
    /// `shutdown frontend`: listeners closed for good.
    Stopped,
}

/// The process-wide limits the runtime socket can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalLimit {
    /// `maxconn`.
    Maxconn,
    /// `maxconnrate`.
    ConnRate,
    /// `maxsessrate`.
    SessRate,
    /// `maxsslrate`.
    SslRate,
}

/// Limits and frontend states as the runtime socket left them: whole-process values, each
/// shard taking its `share` where it enforces them. An in-process reload carries them over.
#[derive(Debug, Default)]
pub struct Limits {
    pub maxconn: Cell<u32>,
    pub conn_rate: Cell<u32>,
    pub sess_rate: Cell<u32>,
    pub ssl_rate: Cell<u32>,
    /// Per frontend, indexed like the topology's frontends.
    pub fe_maxconn: Vec<Cell<u32>>,
    pub fe_state: Vec<Cell<FrontendRun>>,
}

impl Limits {
    /// The configured values of `topo`.
    pub fn of(topo: &Topology) -> Limits {
        Limits {
            maxconn: Cell::new(topo.maxconn),
            conn_rate: Cell::new(topo.ops.conn_rate),
            sess_rate: Cell::new(topo.ops.sess_rate),
            ssl_rate: Cell::new(topo.maxsslrate),
            fe_maxconn: topo
                .frontends
                .iter()
                .map(|f| Cell::new(f.maxconn))
                .collect(),
            fe_state: topo.frontends.iter().map(|_| Cell::default()).collect(),
        }
    }

    /// A frontend's state (`Ready` for an unknown index).
    pub fn frontend(&self, fe: usize) -> FrontendRun {
        self.fe_state.get(fe).map_or(FrontendRun::Ready, Cell::get)
    }
}

/// A new configuration epoch, as broadcast; two are equal when they are the same topology.
#[derive(Clone)]
pub struct Epoch(pub Arc<Topology>);

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Epoch(..)")
    }
}

impl PartialEq for Epoch {
    fn eq(&self, o: &Epoch) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for Epoch {}

/// One TLS bind of a shard: (frontend, bind) and its current TLS.
pub type BindTlsSlot = ((usize, usize), Arc<ringlb_tls::ShardTls>);

/// A certificate parsed once on the control shard and shared by every shard; two are equal
/// when they are the same allocation.
#[derive(Debug, Clone)]
pub struct SharedCert(pub Arc<ringlb_tls::cert::LoadedCert>);

impl PartialEq for SharedCert {
    fn eq(&self, other: &SharedCert) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedCert {}

impl ControlMsg {
    /// Whether the control shard's mirror applies it too: not the requests to publish or to
    /// change stick tables, which only the worker shards hold.
    pub fn for_mirror(&self) -> bool {
        !matches!(
            self,
            ControlMsg::PublishStats { .. }
                | ControlMsg::PublishStickTable { .. }
                | ControlMsg::PublishConns { .. }
                | ControlMsg::Engine { .. }
                | ControlMsg::SetStickEntry { .. }
                | ControlMsg::ClearStickTable { .. }
                | ControlMsg::CollectPeerUpdates { .. }
                | ControlMsg::ApplyPeerEntries { .. }
                | ControlMsg::SetPatterns { .. }
                | ControlMsg::SetSslCert { .. }
                | ControlMsg::Reload
                | ControlMsg::NewEpoch(_)
        )
    }
}

/// A server added at run time, as broadcast (compared by name and address: messages are
/// compared in tests only).
#[derive(Debug, Clone)]
pub struct NewServer(pub Arc<ServerRt>);

impl PartialEq for NewServer {
    fn eq(&self, o: &NewServer) -> bool {
        self.0.name == o.0.name && self.0.addr == o.0.addr
    }
}

impl Eq for NewServer {}

/// Lifecycle of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    SoftStopping,
    Stopped,
}

pub struct ServerState {
    /// The server's configuration: from the topology, or from `add server` (dynamic servers,
    /// which the shared topology does not have).
    pub rt: ServerRt,
    /// HAProxy's server id (`id`, or the first free one).
    pub puid: u32,
    /// `del server`: the slot stays (indexes of the others do not move) but the server is
    /// gone: never picked, not listed.
    pub deleted: Cell<bool>,
    /// The state in force: `Maint` while in resolution maintenance, else `admin_set`.
    pub admin: Cell<AdminState>,
    /// The state `set server ... state` (or the configuration) asked for.
    pub admin_set: Cell<AdminState>,
    /// In resolution maintenance: its name does not resolve (`SetServerResolution`).
    pub rmaint: Cell<bool>,
    /// Where new connections go: the configured address until `set server ... addr`.
    pub addr: Cell<std::net::SocketAddr>,
    pub up: Cell<bool>,
    pub weight: Cell<u32>,
    /// Connections to this server in use by this shard (not idle).
    pub active: Cell<u32>,
    /// Most connections in use at once during this purge period and the previous one: idle
    /// connections are kept only up to what was recently needed at once (HAProxy's
    /// `max_used_conns`), so connection-per-request clients do not pile up idle connections
    /// nobody will reuse.
    pub used_peak: Cell<u32>,
    pub used_peak_prev: Cell<u32>,
    /// This shard's share of the server's `maxconn` (0 = unlimited).
    pub maxconn_share: u32,
    /// This shard's share of the server's current `maxconn`: `maxconn_share` until an agent
    /// check changes it (`SetServerMaxconn`).
    pub maxconn_now: Cell<u32>,
    /// `slowstart` with a `maxconn`: when the server came back up, while its limit ramps.
    pub ramp_from: Cell<Option<std::time::Instant>>,
    /// Requests waiting for a slot on this server (HAProxy's server queue), oldest first
    /// (`queue.rs`).
    pub queue: RefCell<VecDeque<Rc<QueueEntry>>>,
    /// Idle keep-alive connections to this server, most recently used last.
    pub idle: RefCell<crate::idle::IdlePool>,
    /// This shard's share of `pool-max-conn` (`None` = unlimited).
    pub pool_max: Option<usize>,
    /// `server ... ssl`: this shard's client config (its own resumption store).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `observe`: consecutive errors this shard saw on live traffic (reset by a success).
    pub observed_errors: Cell<u32>,
    /// HTTP/2 connections to this server (`proto h2`), each carrying many requests.
    pub h2: Rc<RefCell<Vec<Rc<crate::h2srv::H2Client>>>>,
    /// Bumped when `on-marked-down`/`on-marked-up` close the server's sessions: a lease taken
    /// under an older generation ends its session (`ServerLease::killed`).
    pub kill_gen: Cell<u32>,
    /// Why the last kill happened: HAProxy's termination cause, `D` (server down) or `U` (an
    /// active server came up, closing backup sessions).
    pub kill_cause: Cell<u8>,
    /// Leases waiting for a kill, by lease id (only on `killable` servers; a lease removes
    /// its entry when dropped, so this holds at most the server's live sessions).
    pub kill_waiters: RefCell<HashMap<u64, Waker>>,
}

/// A connection to a server and how many requests it has carried (counted when it goes back to
/// the idle pool: `max-reuse`, `http-reuse aggressive`).
pub struct ServerConn {
    pub stream: crate::conn::ServerStream,
    pub reuses: u32,
    /// `send-proxy*`: the client addresses its PROXY header announced; such a connection is
    /// only reused for requests from those same addresses (haproxy keeps it private).
    pub proxied_for: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
}

impl ServerConn {
    /// Closes a connection the server has not closed: with a reset, as haproxy closes server
    /// connections (`linger_risk`), so that no TIME_WAIT stays on this side. At a few thousand
    /// new server connections a second, the kernel's search for a free source port through
    /// those TIME_WAITs took a third of the proxy's CPU (perf, connection per request).
    pub fn close_hard(self) {
        self.stream.set_linger_zero();
    }
}

impl std::ops::Deref for ServerConn {
    type Target = crate::conn::ServerStream;
    fn deref(&self) -> &crate::conn::ServerStream {
        &self.stream
    }
}

/// An idle server connection in a pool, with the time it became idle (`pool-purge-delay`).
pub struct IdleConn {
    pub conn: ServerConn,
    pub since: std::time::Instant,
}

pub struct BackendState {
    /// Grows with `add server` (between requests, on this shard's thread); an `Rc` per
    /// server so a request holds its server without holding the list.
    pub servers: RefCell<Vec<Rc<ServerState>>>,
    /// This shard's balancer (`ringlb-balance`): same algorithm and hash seeds on every shard,
    /// so hashing algorithms pick the same server everywhere; round-robin order and connection
    /// counts (`leastconn`, `first`) are this shard's own (docs/architecture.md).
    balancer: RefCell<Balancer>,
    /// Balanced requests that found every server full, oldest first: the first server to
    /// free a slot takes them (HAProxy's backend queue, `queue.rs`).
    pub queue: RefCell<VecDeque<Rc<QueueEntry>>>,
    /// Some server has `minconn` (its limit follows the backend's load against `fullconn`):
    /// the balancer is told the limits before each pick.
    has_minconn: bool,
    /// Servers whose `slowstart` ramp of the connection limit is under way: while any is,
    /// the balancer is told the limits before each pick too.
    ramping: Cell<u32>,
}

impl BackendState {
    /// Tells the balancer how many requests wait in server `i`'s own queue (a server with a
    /// queue counts as full, as in HAProxy).
    pub fn note_queued(&self, i: usize, s: &ServerState) {
        let n = s.queue.borrow().len() as u32;
        self.balancer.borrow_mut().set_queued(i, n);
    }

    /// This shard's requests of the backend: on a server or queued (HAProxy's `beconn`, which
    /// `minconn` limits follow).
    fn load(&self) -> u32 {
        let on_servers: u32 = self
            .servers
            .borrow()
            .iter()
            .map(|s| s.active.get() + s.queue.borrow().len() as u32)
            .sum();
        on_servers + self.queue.borrow().len() as u32
    }

    /// Whether server `i` takes requests from the backend's queue now.
    pub fn serves_backend_queue(&self, i: usize) -> bool {
        self.balancer.borrow().serves_backend_queue(i)
    }
}

/// Where the balancer sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picked {
    /// This server (it may be full: the request then waits in its queue).
    Server(usize),
    /// Every candidate is at its `maxconn`: the request waits in the backend's queue.
    AllFull,
    /// No usable server.
    NoServer,
}

pub struct ShardState {
    pub topo: Arc<Topology>,
    /// This shard's store of each `cache` section (`cache.rs`).
    pub caches: RefCell<Vec<ringlb_cache::Store>>,
    pub shard_id: usize,
    pub nshards: usize,
    pub backends: Vec<BackendState>,
    /// Client connections open on this shard.
    pub conns: Rc<Cell<u32>>,
    /// Accept loops still running (a soft stop drains their queues before the shard ends).
    pub accepting: Rc<Cell<u32>>,
    /// This shard's share of the global `maxconn` (0 = unlimited).
    pub maxconn_share: u32,
    pub run: Cell<RunState>,
    rng: RefCell<SplitMix64>,
    /// Idle server connections held by this shard, all servers together.
    pub(crate) idle_total: Cell<usize>,
    /// Bound on `idle_total` (HAProxy bounds idle connections by a share of its descriptors,
    /// `tune.pool-high-fd-ratio` 25%): half of this shard's `maxconn` share, at least 128.
    pub idle_budget: usize,
    /// Woken when a connection closes (accept loops paused on maxconn, soft stop waiting for 0).
    pub conn_closed: Rc<RefCell<Vec<Waker>>>,
    /// This shard's statistics (published on demand, see `counters.rs`).
    pub counters: RefCell<crate::counters::ShardCounters>,
    /// Where the counters are published, shared by every shard and the readers.
    pub board: Arc<crate::counters::StatsBoard>,
    /// Local time offset from UTC (read at start: `date_hour`, log timestamps).
    pub utc_offset_secs: i32,
    /// The system host name (`hostname` fetch).
    pub hostname: String,
    /// This shard's instances of the stick tables (`stick.rs`, ADR 0003).
    pub stick: Rc<RefCell<ringlb_stick::Tables>>,
    /// The stick-table flush task, waiting for a change (`stick::changed`).
    pub stick_flush: Rc<RefCell<Option<Waker>>>,
    /// The tables changed since the flush task last looked.
    pub stick_dirty: Rc<Cell<bool>>,
    /// Map and ACL files changed on the runtime socket (`patterns.rs`).
    pub patterns: crate::patterns::LiveStore,
    /// This shard's copy of the `proc.` variables. Read on the request path without any lock;
    /// a rule that sets one writes this copy at once and asks the control shard to broadcast
    /// the change, which every shard (this one included) applies in the control shard's
    /// order. So a shard sees its own writes at once and other shards' within a control tick
    /// (~20 ms); concurrent writers converge on the value the control shard received last.
    /// A change that finds the command channel full stays local to its shard.
    pub proc_vars: Rc<RefCell<ringlb_rules::Vars>>,
    /// Ids of server leases (`ServerLease::id`), for `kill_waiters`.
    pub next_lease_id: Cell<u64>,
    /// Arrival order of queued requests (`queue.rs`).
    pub next_queue_seq: Cell<u64>,
    /// The TLS of this shard's TLS binds, keyed by (frontend, bind). Each accepted connection
    /// takes the current `Arc` (no lock: the shard is single-threaded); `commit ssl cert`
    /// replaces an entry ([`ControlMsg::SetSslCert`]), handshakes under way keep the old one.
    pub bind_tls: RefCell<Vec<BindTlsSlot>>,
    /// Connections open on this shard's TLS binds (`maxsslconn`, a per-shard share).
    pub ssl_conns: Rc<Cell<u32>>,
    /// (second, connections accepted on TLS binds in it) for `maxsslrate` (a per-shard share).
    pub ssl_rate: Rc<Cell<(u64, u32)>>,
    /// An in-process reload replaced this epoch: it only finishes its requests, and the
    /// server connections they free are closed rather than pooled where nobody would reuse
    /// them (the new epoch took the pooled ones over).
    pub retired: Cell<bool>,
    /// Limits and frontend states changed on the runtime socket.
    pub limits: Limits,
}

impl ServerState {
    /// A server's per-shard state: `ready` false starts it in maintenance.
    pub fn new(s: &ServerRt, puid: u32, ready: bool, nshards: usize) -> ServerState {
        ServerState {
            rt: s.clone(),
            puid,
            deleted: Cell::new(false),
            admin: Cell::new(if ready {
                AdminState::Ready
            } else {
                AdminState::Maint
            }),
            admin_set: Cell::new(if ready {
                AdminState::Ready
            } else {
                AdminState::Maint
            }),
            rmaint: Cell::new(false),
            up: Cell::new(true),
            addr: Cell::new(s.addr),
            weight: Cell::new(s.weight),
            active: Cell::new(0),
            tls: s.tls.as_ref().map(|t| t.config.for_shard()),
            used_peak: Cell::new(0),
            used_peak_prev: Cell::new(0),
            maxconn_share: share(s.maxconn, nshards),
            maxconn_now: Cell::new(share(s.maxconn, nshards)),
            ramp_from: Cell::new(None),
            queue: RefCell::new(VecDeque::new()),
            idle: RefCell::new(crate::idle::IdlePool::default()),
            observed_errors: Cell::new(0),
            h2: Rc::new(RefCell::new(Vec::new())),
            kill_gen: Cell::new(0),
            kill_cause: Cell::new(b'D'),
            kill_waiters: RefCell::new(HashMap::new()),
            pool_max: usize::try_from(s.pool_max_conn)
                .ok()
                .map(|m| share(u32::try_from(m).unwrap_or(u32::MAX), nshards) as usize),
        }
    }
}

/// A limit split over `nshards` shards: each gets ⌈limit / nshards⌉ (0 stays unlimited).
/// Documented in docs/architecture.md ("Limits across shards").
pub fn share(limit: u32, nshards: usize) -> u32 {
    if limit == 0 {
        return 0;
    }
    let n = nshards.max(1) as u32;
    limit.div_ceil(n)
}

impl ShardState {
    /// The current TLS of a bind (see `bind_tls`).
    pub fn bind_tls(&self, at: (usize, usize)) -> Option<Arc<ringlb_tls::ShardTls>> {
        self.bind_tls
            .borrow()
            .iter()
            .find(|(k, _)| *k == at)
            .map(|(_, t)| t.clone())
    }

    /// A shard state with a stats board of its own (tests; a lone shard).
    pub fn new(topo: Arc<Topology>, shard_id: usize, nshards: usize) -> ShardState {
        let board = crate::counters::StatsBoard::new(nshards);
        ShardState::with_board(topo, shard_id, nshards, board)
    }

    pub fn with_board(
        topo: Arc<Topology>,
        shard_id: usize,
        nshards: usize,
        board: Arc<crate::counters::StatsBoard>,
    ) -> ShardState {
        let backends = topo
            .backends
            .iter()
            .map(|b| BackendState {
                servers: RefCell::new(
                    b.servers
                        .iter()
                        .enumerate()
                        .map(|(si, s)| {
                            let puid = b.balance.servers.get(si).map_or(si as u32 + 1, |x| x.puid);
                            Rc::new(ServerState::new(s, puid, !s.disabled, nshards))
                        })
                        .collect(),
                ),
                balancer: RefCell::new(Balancer::new(
                    &b.balance.balance,
                    &b.balance.hash_type,
                    &b.balance.servers,
                    &b.balance.options,
                )),
                queue: crate::queue::new_queue(),
                has_minconn: b.servers.iter().any(|s| s.maxconn > 0 && s.minconn > 0),
                ramping: Cell::new(0),
            })
            .collect::<Vec<BackendState>>();
        // Each shard's balancer skips a server at this shard's share of its `maxconn`.
        for b in &backends {
            let mut lb = b.balancer.borrow_mut();
            for (si, st) in b.servers.borrow().iter().enumerate() {
                lb.set_maxconn_now(si, st.maxconn_now.get());
            }
        }
        let maxconn_share = share(topo.maxconn, nshards);
        let stick = Rc::new(RefCell::new(crate::stick::build_tables(
            &topo, shard_id, nshards,
        )));
        let counters = RefCell::new(crate::counters::ShardCounters::new(&topo));
        let idle_budget = if maxconn_share == 0 {
            4096
        } else {
            (maxconn_share as usize / 2).max(128)
        };
        let initial = topo.initial.clone();
        let limits = Limits::of(&topo);
        let caches = RefCell::new(crate::cache::stores(&topo.caches));
        let st = ShardState {
            caches,
            topo,
            shard_id,
            nshards,
            backends,
            conns: Rc::default(),
            accepting: Rc::default(),
            maxconn_share,
            run: Cell::new(RunState::Running),
            idle_total: Cell::new(0),
            // `balance random`: seeded per shard, so runs are reproducible.
            rng: RefCell::new(SplitMix64(0x9e37_79b9_7f4a_7c15 ^ shard_id as u64)),
            idle_budget,
            conn_closed: Rc::default(),
            counters,
            board,
            utc_offset_secs: crate::log::local_utc_offset_secs(),
            hostname: crate::topology::system_hostname(),
            stick,
            stick_flush: Rc::default(),
            stick_dirty: Rc::default(),
            patterns: crate::patterns::LiveStore::default(),
            proc_vars: Rc::default(),
            bind_tls: RefCell::new(Vec::new()),
            ssl_conns: Rc::default(),
            ssl_rate: Rc::default(),
            retired: Cell::new(false),
            next_lease_id: Cell::new(0),
            next_queue_seq: Cell::new(0),
            limits,
        };
        for m in &initial {
            st.apply(m);
        }
        st
    }

    /// Applies one control message. The same function runs on every shard, so all shards agree.
    pub fn apply(&self, msg: &ControlMsg) {
        self.apply_one(msg);
        // A server that became usable, or may take more, serves the requests waiting.
        if let ControlMsg::SetServerAdmin { backend, .. }
        | ControlMsg::SetServerResolution { backend, .. }
        | ControlMsg::SetServerHealth { backend, .. }
        | ControlMsg::SetServerWeight { backend, .. }
        | ControlMsg::SetServerMaxconn { backend, .. }
        | ControlMsg::AddServer { backend, .. } = *msg
        {
            crate::queue::serve_queues(self, backend);
        }
    }

    fn apply_one(&self, msg: &ControlMsg) {
        match *msg {
            ControlMsg::SoftStop => {
                if self.run.get() == RunState::Running {
                    self.run.set(RunState::SoftStopping);
                }
                self.wake_conn_waiters();
            }
            ControlMsg::HardStop => {
                self.run.set(RunState::Stopped);
                self.wake_conn_waiters();
            }
            ControlMsg::SetFrontendState { frontend, state } => {
                if let Some(c) = self.limits.fe_state.get(frontend) {
                    // A frontend shut down stays so.
                    if c.get() != FrontendRun::Stopped {
                        c.set(state);
                    }
                }
                self.wake_conn_waiters();
            }
            ControlMsg::SetFrontendMaxconn { frontend, maxconn } => {
                if let Some(c) = self.limits.fe_maxconn.get(frontend) {
                    c.set(maxconn);
                }
                self.wake_conn_waiters();
            }
            ControlMsg::SetGlobalLimit { limit, value } => {
                let l = &self.limits;
                match limit {
                    GlobalLimit::Maxconn => l.maxconn.set(value),
                    GlobalLimit::ConnRate => l.conn_rate.set(value),
                    GlobalLimit::SessRate => l.sess_rate.set(value),
                    GlobalLimit::SslRate => l.ssl_rate.set(value),
                }
                self.wake_conn_waiters();
            }
            ControlMsg::SetServerAdmin {
                backend,
                server,
                state,
            } => {
                if let Some(s) = self.server(backend, server) {
                    s.admin_set.set(state);
                    let state = if s.rmaint.get() {
                        AdminState::Maint
                    } else {
                        state
                    };
                    self.set_admin_in_force(backend, server, state);
                }
            }
            ControlMsg::SetServerResolution {
                backend,
                server,
                addr,
            } => {
                if let Some(s) = self.server(backend, server) {
                    match addr {
                        Some(a) => {
                            if s.addr.get() != a {
                                s.addr.set(a);
                                // Pooled connections go to the old address.
                                self.clear_idle(backend, server);
                            }
                            s.rmaint.set(false);
                            self.set_admin_in_force(backend, server, s.admin_set.get());
                        }
                        None => {
                            s.rmaint.set(true);
                            self.set_admin_in_force(backend, server, AdminState::Maint);
                        }
                    }
                }
            }
            ControlMsg::SetServerHealth {
                backend,
                server,
                up,
            } => {
                if let Some(s) = self.server(backend, server) {
                    let (was_up, maint) = (s.up.get(), s.admin.get() == AdminState::Maint);
                    s.up.set(up);
                    self.sync_usable(backend, server);
                    if was_up && !up && !maint {
                        self.marked_down(backend, server);
                    } else if !was_up && up && !maint {
                        self.marked_up(backend, server);
                    }
                    if !up {
                        self.clear_idle(backend, server);
                    }
                }
            }
            ControlMsg::SetServerWeight {
                backend,
                server,
                weight,
            } => {
                if let Some(s) = self.server(backend, server) {
                    s.weight.set(weight.min(256));
                    if let Some(b) = self.backends.get(backend) {
                        // static-rr and map-based hashing refuse new weights, as in HAProxy;
                        // the runtime API reports that (issue #10).
                        let _ = b.balancer.borrow_mut().set_weight(server, weight.min(256));
                    }
                }
            }
            ControlMsg::PublishStickTable {
                seq,
                ref table,
                ref query,
            } => {
                let now = self.board.now_ms();
                let tables = self.stick.borrow();
                let (rows, used) = tables
                    .id(table)
                    .and_then(|id| tables.get(id))
                    .map(|t| (t.query(query, now, true), t.used_owned()))
                    .unwrap_or_default();
                self.board.publish_stick(self.shard_id, seq, rows, used);
            }
            ControlMsg::PublishStats { seq } => {
                // A copy (the histograms are the bulk of it): only when somebody reads stats.
                let mut copy = self.counters.borrow().clone();
                copy.process.curr_conns = self.conns.get();
                copy.stick_used = self
                    .stick
                    .borrow()
                    .iter()
                    .map(|(_, t)| t.used_owned() as u64)
                    .collect();
                self.fill_conn_gauges(&mut copy);
                crate::queue::fill_queue_gauges(self, &mut copy);
                self.board.publish(self.shard_id, seq, copy);
            }
            ControlMsg::SetServerMaxconn {
                backend,
                server,
                maxconn,
            } => {
                if let Some(s) = self.server(backend, server) {
                    s.maxconn_now.set(share(maxconn, self.nshards));
                    if let Some(b) = self.backends.get(backend) {
                        b.balancer
                            .borrow_mut()
                            .set_maxconn_now(server, s.maxconn_now.get());
                    }
                }
            }
            ControlMsg::SetStickEntry { .. }
            | ControlMsg::ClearStickTable { .. }
            | ControlMsg::ApplyPeerEntries { .. } => {
                crate::stick::apply_control(self, msg);
            }
            ControlMsg::CollectPeerUpdates {
                seq,
                full,
                ref tables,
            } => {
                let got = crate::stick::collect_peer_updates(self, full, tables);
                self.board.publish_peer(self.shard_id, seq, got);
            }
            ControlMsg::PublishConns { seq } => {
                self.board
                    .publish_conns(self.shard_id, seq, self.conn_counts());
            }
            ControlMsg::SetServerAddr {
                backend,
                server,
                addr,
            } => {
                if let Some(s) = self.server(backend, server) {
                    s.addr.set(addr);
                    // Pooled connections go to the old address: none is reused.
                    self.clear_idle(backend, server);
                }
            }
            ControlMsg::SetPatterns {
                ref file,
                version,
                ref entries,
            } => self.patterns.set(file, version, entries.clone()),
            ControlMsg::SetProcVar {
                ref name,
                ref value,
            } => {
                let mut vars = self.proc_vars.borrow_mut();
                match value {
                    Some(v) => vars.set(name, v.clone()),
                    None => vars.unset(name),
                }
            }
            ControlMsg::AddServer {
                backend,
                ref server,
                puid,
                enabled,
            } => self.add_server(backend, &server.0, puid, enabled),
            ControlMsg::DelServer { backend, server } => {
                if let Some(s) = self.server(backend, server) {
                    s.deleted.set(true);
                    s.admin.set(AdminState::Maint);
                    self.sync_usable(backend, server);
                    self.clear_idle(backend, server);
                }
            }
            ControlMsg::HealthAnalyze { .. }
            | ControlMsg::Reload
            | ControlMsg::NewEpoch(_)
            | ControlMsg::Engine { .. } => {}
            ControlMsg::SetSslCert { ref cert } => {
                let mut binds = self.bind_tls.borrow_mut();
                for (_, tls) in binds.iter_mut() {
                    if let Some(new) = tls.with_cert(&cert.0.file, &cert.0) {
                        *tls = new;
                    }
                }
            }
        }
    }

    /// `add server`: appends the server to the backend's list, balancer and counters.
    fn add_server(&self, backend: usize, rt: &ServerRt, puid: u32, enabled: bool) {
        let Some(b) = self.backends.get(backend) else {
            return;
        };
        let info = ringlb_balance::ServerInfo {
            puid,
            weight: rt.weight.min(256),
            backup: rt.backup,
            maxconn: rt.maxconn,
            up: enabled,
        };
        let Some(at) = b.balancer.borrow_mut().add_server(info) else {
            return; // a static algorithm: the control shard refuses before sending
        };
        let st = Rc::new(ServerState::new(rt, puid, enabled, self.nshards));
        // This shard's share of its `maxconn`, as at start.
        b.balancer
            .borrow_mut()
            .set_maxconn_now(at, st.maxconn_now.get());
        b.servers.borrow_mut().push(st);
        self.counters.borrow_mut().add_server(backend);
        debug_assert_eq!(b.servers.borrow().len(), b.balancer.borrow().server_count());
    }

    /// Index of the live (not deleted) server `name` of `backend`.
    pub fn server_index(&self, backend: usize, name: &str) -> Option<usize> {
        self.backends
            .get(backend)?
            .servers
            .borrow()
            .iter()
            .position(|s| !s.deleted.get() && s.rt.name == name)
    }

    /// Servers of `backend`, deleted ones included (their slots keep indexes stable).
    pub fn servers(&self, backend: usize) -> Vec<Rc<ServerState>> {
        self.backends
            .get(backend)
            .map(|b| b.servers.borrow().clone())
            .unwrap_or_default()
    }

    /// Per server: connections in use, idle ones that carried one request, idle ones that
    /// carried more (haproxy's used, unsafe and safe counts).
    pub fn conn_counts(&self) -> crate::counters::ConnCounts {
        self.backends
            .iter()
            .map(|b| {
                b.servers
                    .borrow()
                    .iter()
                    .map(|s| {
                        let idle = s.idle.borrow();
                        let safe = idle.safe_count() as u32;
                        (s.active.get(), idle.len() as u32 - safe, safe)
                    })
                    .collect()
            })
            .collect()
    }

    /// The server connection gauges of the stats (`srv_icur`, `safe_conn_cur`,
    /// `used_conn_cur`, `need_conn_est`) from this shard's pools, read when published.
    fn fill_conn_gauges(&self, copy: &mut crate::counters::ShardCounters) {
        for (b, counters) in self.backends.iter().zip(copy.servers.iter_mut()) {
            for (s, c) in b.servers.borrow().iter().zip(counters.iter_mut()) {
                let idle = s.idle.borrow();
                let safe = idle.safe_count() as u32;
                c.idle_conn_cur = idle.len() as u32;
                c.safe_conn_cur = safe;
                c.used_conn_cur = s.active.get();
                // haproxy's estimate of the connections needed: the recent peak of use.
                c.need_conn_est = s.used_peak.get().max(s.used_peak_prev.get());
            }
        }
    }

    /// A server's state (an `Rc`: the list may grow while a request holds it).
    pub fn server(&self, backend: usize, server: usize) -> Option<Rc<ServerState>> {
        self.backends
            .get(backend)?
            .servers
            .borrow()
            .get(server)
            .cloned()
    }

    /// Closes idle server connections unused for their server's `pool-purge-delay`.
    pub fn purge_idle(&self, now: std::time::Instant) {
        for b in &self.backends {
            for s in b.servers.borrow().iter() {
                let srv = &s.rt;
                let mut idle = s.idle.borrow_mut();
                let before = idle.len();
                idle.retain(|c| {
                    let keep = now.saturating_duration_since(c.since) < srv.pool_purge_delay;
                    if !keep {
                        c.conn.set_linger_zero();
                    }
                    keep
                });
                // A new period: keep no more idle connections than were needed at once.
                s.used_peak_prev.set(s.used_peak.get());
                s.used_peak.set(s.active.get());
                let cap = s.used_peak_prev.get() as usize + 1;
                if idle.len() > cap {
                    let excess = idle.len() - cap;
                    for c in idle.drain_oldest(excess) {
                        c.conn.close_hard(); // the oldest first
                    }
                }
                self.idle_total
                    .set(self.idle_total.get().saturating_sub(before - idle.len()));
            }
        }
    }

    /// The most recently pooled idle connection to a server, if any.
    /// Only connections that carried at least `min_requests` requests qualify (`http-reuse
    /// aggressive` gives a first request only connections already reused once).
    pub fn take_idle(
        &self,
        backend: usize,
        server: usize,
        min_requests: u32,
        prefer_unsafe: bool,
        proxied_for: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    ) -> Option<ServerConn> {
        let s = self.server(backend, server)?;
        let idle = s.idle.borrow_mut().take(
            |c| c.conn.reuses >= min_requests && c.conn.proxied_for == proxied_for,
            prefer_unsafe,
        )?;
        self.idle_total.set(self.idle_total.get().saturating_sub(1));
        Some(idle.conn)
    }

    /// Pools an idle connection to a server within its `pool-max-conn` share and the shard's
    /// idle budget; otherwise the connection is closed (dropped).
    pub fn put_idle(&self, backend: usize, server: usize, conn: ServerConn) {
        let Some(s) = self.server(backend, server) else {
            return conn.close_hard();
        };
        if self.retired.get() {
            return conn.close_hard();
        }
        let mut idle = s.idle.borrow_mut();
        let admission = crate::idle::IdleAdmission {
            is_safe: conn.reuses >= 2,
            has_safe_idle: idle.safe_count() > 0,
            idle: idle.len() as u32,
            used: s.active.get(),
            est_need: s.used_peak.get().max(s.used_peak_prev.get()),
            low_idle: 0,
        };
        if self.idle_total.get() < self.idle_budget
            && s.pool_max.is_none_or(|max| idle.len() < max)
            && crate::idle::keep_idle(&admission)
        {
            idle.push(IdleConn {
                conn,
                since: std::time::Instant::now(),
            });
            self.idle_total.set(self.idle_total.get() + 1);
        } else {
            conn.close_hard();
        }
    }

    /// The server just went down (health or maintenance): `on-marked-down shutdown-sessions`
    /// closes every session using it on this shard.
    fn marked_down(&self, backend: usize, server: usize) {
        let rt = self
            .topo
            .backends
            .get(backend)
            .and_then(|b| b.servers.get(server));
        if rt.is_some_and(|r| r.shutdown_on_down) {
            self.kill_sessions(backend, server, b'D');
        }
        crate::queue::redistribute(self, backend, server);
    }

    /// The server just came up: its `slowstart` ramp of the connection limit starts, and
    /// `on-marked-up shutdown-backup-sessions` closes the sessions of every backup server of
    /// its backend, so clients come back to the active servers.
    fn marked_up(&self, backend: usize, server: usize) {
        if let Some(s) = self.server(backend, server) {
            if s.rt.slowstart.is_some() && s.maxconn_share > 0 {
                // `slowstart`: the connection limit ramps from 1 (`limit_now`).
                if s.ramp_from
                    .replace(Some(std::time::Instant::now()))
                    .is_none()
                {
                    if let Some(b) = self.backends.get(backend) {
                        b.ramping.set(b.ramping.get() + 1);
                    }
                }
            }
        }
        let Some(b) = self.topo.backends.get(backend) else {
            return;
        };
        if !b
            .servers
            .get(server)
            .is_some_and(|r| r.shutdown_backups_on_up)
        {
            return;
        }
        for (i, _) in b.servers.iter().enumerate().filter(|(_, r)| r.backup) {
            self.kill_sessions(backend, i, b'U');
        }
    }

    /// Ends every session of this shard holding a lease on the server (`ServerLease::killed`).
    pub fn kill_sessions(&self, backend: usize, server: usize, cause: u8) {
        if let Some(s) = self.server(backend, server) {
            s.kill_gen.set(s.kill_gen.get().wrapping_add(1));
            s.kill_cause.set(cause);
            let waiters: Vec<Waker> = s
                .kill_waiters
                .borrow_mut()
                .drain()
                .map(|(_, w)| w)
                .collect();
            for w in waiters {
                w.wake();
            }
        }
    }

    fn clear_idle(&self, backend: usize, server: usize) {
        if let Some(s) = self.server(backend, server) {
            let mut idle = s.idle.borrow_mut();
            self.idle_total
                .set(self.idle_total.get().saturating_sub(idle.len()));
            idle.take_all();
        }
    }

    /// Idle server connections this shard holds.
    pub fn idle_count(&self) -> usize {
        self.idle_total.get()
    }

    pub fn wake_conn_waiters(&self) {
        for w in self.conn_closed.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Puts `state` in force for a server: balancer, marked up/down effects, idle pool.
    fn set_admin_in_force(&self, backend: usize, server: usize, state: AdminState) {
        let Some(s) = self.server(backend, server) else {
            return;
        };
        let was_maint = s.admin.get() == AdminState::Maint;
        s.admin.set(state);
        self.sync_usable(backend, server);
        if state == AdminState::Maint && !was_maint && s.up.get() {
            self.marked_down(backend, server);
        } else if was_maint && state != AdminState::Maint && s.up.get() {
            self.marked_up(backend, server);
        }
        if state != AdminState::Ready {
            // No new request may reuse a pooled connection to it.
            self.clear_idle(backend, server);
        }
    }

    /// Tells the balancer whether a server may take new requests (ready and up).
    fn sync_usable(&self, backend: usize, server: usize) {
        if let (Some(b), Some(s)) = (self.backends.get(backend), self.server(backend, server)) {
            let usable = s.admin.get() == AdminState::Ready && s.up.get();
            b.balancer.borrow_mut().set_usable(server, usable);
        }
    }

    /// A random value from the shard's seeded generator (`rand`, `uuid`).
    pub fn random_u64(&self) -> u64 {
        use ringlb_balance::RngLike;
        let mut rng = self.rng.borrow_mut();
        (u64::from(rng.next_u32()) << 32) | u64::from(rng.next_u32())
    }

    /// Picks a server of `backend` for a request (`balance`), avoiding `input.avoid` when
    /// another server can take it. A server whose shard share of `maxconn` is used up is
    /// skipped, as HAProxy does; when every candidate is full, a hashed request still goes to
    /// its server (and waits in its queue), a balanced one waits for any server.
    pub fn pick(&self, backend: usize, input: &PickInput<'_>) -> Picked {
        let Some(b) = self.backends.get(backend) else {
            return Picked::NoServer;
        };
        if b.has_minconn || b.ramping.get() > 0 {
            self.refresh_dynamic_limits(backend, b);
        }
        let mut rng = self.rng.borrow_mut();
        let mut lb = b.balancer.borrow_mut();
        if lb.usable_count() == 0 {
            return Picked::NoServer;
        }
        if !lb.any_free_slot() {
            return lb
                .pick_when_full(input)
                .map_or(Picked::AllFull, Picked::Server);
        }
        match lb.pick(input, &mut *rng) {
            Some(s) => Picked::Server(s),
            None => Picked::AllFull,
        }
    }

    /// The connection limit of a server now (this shard's share; 0 = none): its `maxconn`
    /// (or what an agent set), lowered by `minconn` while the backend is lightly loaded.
    pub fn limit_now(&self, backend: usize, s: &ServerState) -> u32 {
        if s.rt.minconn == 0 && s.ramp_from.get().is_none() {
            return s.maxconn_now.get();
        }
        match self.backends.get(backend) {
            Some(b) => self.dynamic_maxconn(backend, s, b.load() + 1),
            None => s.maxconn_now.get(),
        }
    }

    /// HAProxy's `srv_dynamic_maxconn`. With `minconn`: the server's `maxconn` once the
    /// backend carries `fullconn` requests, else the same fraction of it as `load` is of
    /// `fullconn`, never under `minconn`. During a `slowstart` ramp: that limit times the
    /// elapsed fraction (whole seconds, as HAProxy), at least 1. Every figure is this shard's
    /// share: `load` counts this shard's requests of the backend, against ⌈fullconn / shards⌉.
    fn dynamic_maxconn(&self, backend: usize, s: &ServerState, load: u32) -> u32 {
        let maxconn = s.maxconn_now.get();
        if maxconn == 0 {
            return maxconn;
        }
        let starting = match (s.ramp_from.get(), s.rt.slowstart) {
            (Some(from), Some(ss)) => Some((from.elapsed(), ss))
                .filter(|(el, ss)| el.as_secs() < ringlb_balance::weight::slowstart_secs(*ss)),
            _ => None,
        };
        if s.rt.minconn == 0 && starting.is_none() {
            return maxconn;
        }
        let fullconn = self.topo.backends.get(backend).map_or(0, |b| b.fullconn);
        let minconn = if s.rt.minconn == 0 {
            maxconn
        } else {
            share(s.rt.minconn, self.nshards).min(maxconn)
        };
        ringlb_balance::weight::dynamic_maxconn(
            &ringlb_balance::weight::ConnLimit {
                maxconn,
                minconn,
                fullconn: share(fullconn.max(1), self.nshards),
                beconn: load,
            },
            starting,
        )
    }

    /// `minconn`, `slowstart`: gives the balancer each server's limit at the backend's
    /// current load (this request included) and the time, so it skips a server at its dynamic
    /// `maxconn` as HAProxy's balancers do.
    fn refresh_dynamic_limits(&self, backend: usize, b: &BackendState) {
        let load = b.load() + 1;
        let servers = b.servers.borrow();
        let mut lb = b.balancer.borrow_mut();
        for (i, s) in servers.iter().enumerate() {
            if s.rt.minconn > 0 || s.ramp_from.get().is_some() {
                lb.set_maxconn_now(i, self.dynamic_maxconn(backend, s, load));
            }
            if let (Some(from), Some(ss)) = (s.ramp_from.get(), s.rt.slowstart) {
                if from.elapsed().as_secs() >= ringlb_balance::weight::slowstart_secs(ss) {
                    // The ramp is over (the limit just given is the full one).
                    s.ramp_from.set(None);
                    b.ramping.set(b.ramping.get().saturating_sub(1));
                }
            }
        }
    }

    /// A connection to a server starts (+) or ends (−) on this shard (`leastconn`, `first`).
    pub fn note_conn(&self, backend: usize, server: usize, starts: bool) {
        if let Some(b) = self.backends.get(backend) {
            let mut lb = b.balancer.borrow_mut();
            if starts {
                lb.take_conn(server);
            } else {
                lb.drop_conn(server);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{BackendRt, ErrorFiles, RetryOn, ServerRt, Tune};
    use ringlb_config::model::{HttpConnMode, HttpReuse, Mode, Timeouts};

    fn topo(weights: &[(u32, bool)]) -> Arc<Topology> {
        topo_maxconn(weights, 0)
    }

    fn topo_maxconn(weights: &[(u32, bool)], maxconn: u32) -> Arc<Topology> {
        let servers = weights
            .iter()
            .enumerate()
            .map(|(i, (w, backup))| ServerRt {
                cookie: None,
                tls: None,
                name: format!("s{i}"),
                addr: "127.0.0.1:1".parse().unwrap(),
                weight: *w,
                maxconn: 0,
                maxqueue: 0,
                backup: *backup,
                disabled: false,
                pool_max_conn: -1,
                pool_purge_delay: std::time::Duration::from_secs(5),
                max_reuse: -1,
                observe: None,
                h2: Default::default(),
                send_proxy: None,
                connect: Default::default(),
                shutdown_on_down: false,
                shutdown_backups_on_up: false,
                killable: false,
                redir: None,
                minconn: 0,
                slowstart: None,
            })
            .collect::<Vec<ServerRt>>();
        let infos = servers
            .iter()
            .enumerate()
            .map(|(i, s)| ringlb_balance::ServerInfo {
                puid: i as u32 + 1,
                weight: s.weight,
                backup: s.backup,
                maxconn: 0,
                up: true,
            })
            .collect();
        Arc::new(Topology {
            initial: Vec::new(),
            caches: vec![],
            maxsslconn: 0,
            maxsslrate: 0,
            stick_tables: vec![],
            stick_rule_tables: vec![],
            rings: vec![],
            node: String::new(),
            runtime_sockets: 0,
            description: None,
            frontends: vec![],
            backends: vec![BackendRt {
                name: "be".into(),
                mode: Mode::Http,
                servers,
                timeouts: Timeouts::default(),
                retries: 3,
                retry_on: RetryOn::default(),
                redispatch: false,
                http_reuse: HttpReuse::Safe,
                conn_mode: HttpConnMode::KeepAlive,
                buffer_request: false,
                originalto: None,
                send_name_header: None,
                pretend_keepalive: false,
                checkcache: false,
                abortonclose: false,
                independent_streams: false,
                restrict_hdr_names: Default::default(),
                max_keepalive_queue: None,
                errors: Arc::new(ErrorFiles::default()),
                balance: crate::topology::BalanceSpec {
                    balance: ringlb_config::model::Balance::Roundrobin,
                    hash_type: Default::default(),
                    servers: infos,
                    options: Default::default(),
                },
                rules: None,
                stats_page: None,
                cookie: None,
                persist_rdp_cookie: None,
                option_persist: false,
                proxy_v2: false,
                prefer_last_server: false,
                fullconn: 1,
            }],
            tune: Tune {
                bufsize: 16384,
                maxrewrite: 1024,
                http_maxhdr: 101,
                log_uri_len: 1024,
                h2_be_window: 65_535,
            },
            maxconn,
            fds: ringlb_config::limits::FdBudget::default(),
            ops: Default::default(),
            hard_stop_after: None,
            grace: None,
            logs: Vec::new(),
            proxies: Vec::new(),
            env: Vec::new(),
            tls_shared: None,
            warnings: Vec::new(),
            log_hostname: None,
            log_tag: "ringlb".into(),
            global_log: Vec::new(),
        })
    }

    fn server_of(p: Picked) -> Option<usize> {
        match p {
            Picked::Server(s) => Some(s),
            _ => None,
        }
    }

    fn counts(st: &ShardState, n: usize, picks: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for _ in 0..picks {
            c[server_of(st.pick(0, &PickInput::default())).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn weights_3_2_1_give_50_33_17_percent() {
        let st = ShardState::new(topo(&[(3, false), (2, false), (1, false)]), 0, 1);
        assert_eq!(counts(&st, 3, 6000), vec![3000, 2000, 1000]);
    }

    #[test]
    fn smooth_order_interleaves() {
        let st = ShardState::new(topo(&[(3, false), (2, false), (1, false)]), 0, 1);
        let seq: Vec<usize> = (0..6)
            .map(|_| server_of(st.pick(0, &PickInput::default())).unwrap())
            .collect();
        // Never three of the same in a row; every server appears in each cycle of 6.
        assert_eq!(seq.iter().filter(|s| **s == 0).count(), 3);
        assert_eq!(seq.iter().filter(|s| **s == 2).count(), 1);
        assert!(seq.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])));
    }

    #[test]
    fn drained_down_and_maint_servers_are_never_chosen() {
        let st = ShardState::new(topo(&[(1, false), (1, false), (1, false)]), 0, 1);
        st.apply(&ControlMsg::SetServerAdmin {
            backend: 0,
            server: 0,
            state: AdminState::Drain,
        });
        st.apply(&ControlMsg::SetServerHealth {
            backend: 0,
            server: 1,
            up: false,
        });
        assert_eq!(counts(&st, 3, 100), vec![0, 0, 100]);
        st.apply(&ControlMsg::SetServerAdmin {
            backend: 0,
            server: 2,
            state: AdminState::Maint,
        });
        assert_eq!(st.pick(0, &PickInput::default()), Picked::NoServer);
    }

    #[test]
    fn resolution_maintenance_is_kept_apart_from_the_admin_state() {
        let st = ShardState::new(topo(&[(1, false), (1, false)]), 0, 1);
        let to = |a: &str| ControlMsg::SetServerResolution {
            backend: 0,
            server: 0,
            addr: a.parse().ok(),
        };
        st.apply(&to("none"));
        assert_eq!(counts(&st, 2, 10), vec![0, 10]);
        // `set server ... state ready` does not end a resolution maintenance.
        st.apply(&ControlMsg::SetServerAdmin {
            backend: 0,
            server: 0,
            state: AdminState::Ready,
        });
        assert_eq!(counts(&st, 2, 10), vec![0, 10]);
        st.apply(&ControlMsg::SetServerAdmin {
            backend: 0,
            server: 0,
            state: AdminState::Drain,
        });
        // A valid answer: the address moves and the asked-for state comes back (drain).
        st.apply(&to("127.0.0.9:81"));
        let s0 = &st.servers(0)[0];
        assert_eq!(s0.addr.get(), "127.0.0.9:81".parse().unwrap());
        assert_eq!(s0.admin.get(), AdminState::Drain);
        st.apply(&ControlMsg::SetServerAdmin {
            backend: 0,
            server: 0,
            state: AdminState::Ready,
        });
        assert_eq!(counts(&st, 2, 10), vec![5, 5]);
    }

    #[test]
    fn backup_only_when_all_active_are_unavailable() {
        let st = ShardState::new(topo(&[(1, false), (1, true)]), 0, 1);
        assert_eq!(counts(&st, 2, 10), vec![10, 0]);
        st.apply(&ControlMsg::SetServerHealth {
            backend: 0,
            server: 0,
            up: false,
        });
        assert_eq!(counts(&st, 2, 10), vec![0, 10]);
        st.apply(&ControlMsg::SetServerHealth {
            backend: 0,
            server: 0,
            up: true,
        });
        assert_eq!(counts(&st, 2, 10), vec![10, 0]);
    }

    #[test]
    fn weight_change_applies() {
        let st = ShardState::new(topo(&[(1, false), (1, false)]), 0, 1);
        st.apply(&ControlMsg::SetServerWeight {
            backend: 0,
            server: 0,
            weight: 3,
        });
        assert_eq!(counts(&st, 2, 400), vec![300, 100]);
    }

    #[test]
    fn proc_variables_follow_broadcasts_in_order() {
        let st = ShardState::new(topo(&[(1, false)]), 0, 2);
        let set = |v: i64| ControlMsg::SetProcVar {
            name: "proc.n".into(),
            value: Some(ringlb_rules::Sample::Int(v)),
        };
        st.apply(&set(1));
        st.apply(&set(2));
        assert_eq!(
            st.proc_vars.borrow().get("proc.n"),
            Some(&ringlb_rules::Sample::Int(2)),
            "the last broadcast wins"
        );
        st.apply(&ControlMsg::SetProcVar {
            name: "proc.n".into(),
            value: None,
        });
        assert_eq!(st.proc_vars.borrow().get("proc.n"), None);
    }

    #[test]
    fn exclude_skips_failed_server() {
        let st = ShardState::new(topo(&[(1, false), (1, false)]), 0, 1);
        for _ in 0..10 {
            assert_eq!(
                st.pick(
                    0,
                    &PickInput {
                        avoid: Some(0),
                        ..PickInput::default()
                    }
                ),
                Picked::Server(1)
            );
        }
    }

    #[test]
    fn idle_budget_follows_the_maxconn_share() {
        let st = ShardState::new(topo_maxconn(&[(1, false)], 4000), 0, 2);
        assert_eq!(st.idle_budget, 1000);
        let st = ShardState::new(topo(&[(1, false)]), 0, 1);
        assert_eq!(st.idle_budget, 4096, "unlimited maxconn");
        assert_eq!(
            ShardState::new(topo_maxconn(&[(1, false)], 10), 0, 1).idle_budget,
            128,
            "floor"
        );
    }

    #[test]
    fn agent_maxconn_is_shared() {
        let st = ShardState::new(topo(&[(1, false)]), 0, 2);
        assert_eq!(st.server(0, 0).unwrap().maxconn_now.get(), 0);
        st.apply(&ControlMsg::SetServerMaxconn {
            backend: 0,
            server: 0,
            maxconn: 10,
        });
        assert_eq!(st.server(0, 0).unwrap().maxconn_now.get(), 5);
    }

    #[test]
    fn limits_are_shared_with_ceiling() {
        assert_eq!(share(0, 4), 0);
        assert_eq!(share(500, 2), 250);
        assert_eq!(share(5, 2), 3);
        assert_eq!(share(1, 4), 1);
    }

    #[test]
    fn marked_down_and_up_kill_the_right_sessions_once() {
        let mut t = topo(&[(1, false), (1, false), (1, true)]);
        {
            let servers = &mut Arc::get_mut(&mut t).unwrap().backends[0].servers;
            servers[0].shutdown_on_down = true;
            servers[1].shutdown_backups_on_up = true;
        }
        let st = ShardState::new(t, 0, 1);
        let gen = |i: usize| st.server(0, i).unwrap().kill_gen.get();
        let health = |server: usize, up: bool| ControlMsg::SetServerHealth {
            backend: 0,
            server,
            up,
        };
        st.apply(&health(0, false));
        assert_eq!((gen(0), gen(1), gen(2)), (1, 0, 0), "s0 down: its sessions");
        st.apply(&health(0, false));
        assert_eq!(gen(0), 1, "only on a transition");
        st.apply(&health(1, false));
        assert_eq!(gen(1), 0, "s1 has no on-marked-down");
        st.apply(&health(1, true));
        assert_eq!((gen(1), gen(2)), (0, 1), "s1 up: the backup's sessions");
        assert_eq!(st.server(0, 2).unwrap().kill_cause.get(), b'U');
        st.apply(&ControlMsg::SetServerHealth {
            backend: 0,
            server: 0,
            up: true,
        });
        st.apply(&ControlMsg::SetServerAdmin {
            backend: 0,
            server: 0,
            state: AdminState::Maint,
        });
        assert_eq!(gen(0), 2, "maintenance counts as marked down");
        assert_eq!(st.server(0, 0).unwrap().kill_cause.get(), b'D');
    }
}
