//! Per-shard statistics: HAProxy's counters for every frontend, backend, server and listener
//! of this shard ([`ringlb_stats`] types), updated on the request path without atomics or
//! locks, and published on demand to a [`StatsBoard`] the readers merge.
//!
//! Reading (stats page, runtime socket, Prometheus) is rare: the reader asks the control shard
//! to broadcast `ControlMsg::PublishStats { seq }`; every shard copies its counters into its own
//! slot of the board (one uncontended lock per shard per read, never on the request path) and
//! the reader waits until every slot holds `seq` or later, then merges them.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringlb_stats::{
    BackendCounters, FrontendCounters, LatencyHistograms, ListenerCounters, ProcessCounters,
    RequestTimes, ServerCounters,
};

use crate::topology::Topology;

/// Health and agent check runs started since start (the control shard's checks count them):
/// haproxy opens a session for each run, on its internal checks proxy, and every session
/// counts in `CumConns` (`show info`, the exporter's `haproxy_process_connections_total`).
pub static CHECK_SESSIONS: AtomicU64 = AtomicU64::new(0);

/// Runtime-socket connections accepted since start (the control shard's CLI counts them):
/// haproxy counts each in `CumConns` and `CumReq` (a CLI connection is a session with one
/// stream there), and so in the exporter's `connections_total` and `requests_total`.
pub static CLI_SESSIONS: AtomicU64 = AtomicU64::new(0);

/// One shard's counters.
#[derive(Debug, Clone, Default)]
pub struct ShardCounters {
    pub process: ProcessCounters,
    pub frontends: Vec<FrontendCounters>,
    /// Per frontend, per bind address.
    pub listeners: Vec<Vec<ListenerCounters>>,
    pub backends: Vec<BackendCounters>,
    pub backend_latency: Vec<LatencyHistograms>,
    pub servers: Vec<Vec<ServerCounters>>,
    pub server_latency: Vec<Vec<LatencyHistograms>>,
    /// Per stick table (declaration order), the entries this shard owns; filled when the
    /// counters are published (`ControlMsg::PublishStats`), not on the request path.
    pub stick_used: Vec<u64>,
    /// Where this shard shows its session gauges to the control shard's sampler (see
    /// [`Gauges`]); `None` until the shard attached them (tests, the control's mirror).
    pub gauges: Option<Arc<Gauges>>,
}

/// One shard's current session counts (`scur` of every frontend, listener, backend and
/// server), published for the process-wide peaks (`smax`).
///
/// Each shard keeps its own peak of each count, and the process-wide peak lies between the
/// largest of them and their sum: the sum only when the shards peaked at the same moment.
/// So that `smax` is not that loose sum, every shard also stores its current counts here
/// (a plain store into memory only it writes: no lock, no read-modify-write, and its cache
/// line leaves the core only when the sampler reads it), and the control shard sums them
/// every tick (`StatsBoard::sample_gauges`, 20 ms) and when stats are read, keeping the
/// highest sum. `smax` is then the larger of that sampled peak and the largest per-shard
/// peak: not above the true peak (the shards are read one after the other: a session ending
/// on one and another starting on the next between the reads can add one), and equal to it
/// unless sessions on two shards or more
/// overlapped only for less than a tick between samples (then it lies between the largest
/// shard's peak and the true one).
#[derive(Debug)]
pub struct Gauges {
    cur: Vec<AtomicU32>,
    /// Set by the shard when a count changed since the sampler last looked.
    dirty: AtomicBool,
    /// Where each kind of count starts in `cur`: frontends, then the listeners of each
    /// frontend, backends, then the servers of each backend (configured ones: a server added
    /// at run time has no gauge and keeps the per-shard peaks).
    layout: GaugeLayout,
}

/// The index of every gauge in [`Gauges`] (the same for all shards of one configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GaugeLayout {
    listeners: Vec<usize>,
    backends: usize,
    servers: Vec<usize>,
    len: usize,
}

impl GaugeLayout {
    fn of(c: &ShardCounters) -> GaugeLayout {
        let mut at = c.frontends.len();
        let listeners = c
            .listeners
            .iter()
            .map(|l| {
                at += l.len();
                at - l.len()
            })
            .collect();
        let backends = at;
        at += c.backends.len();
        let servers = c
            .servers
            .iter()
            .map(|v| {
                at += v.len();
                at - v.len()
            })
            .collect();
        GaugeLayout {
            listeners,
            backends,
            servers,
            len: at,
        }
    }

    fn frontend(&self, f: usize) -> Option<usize> {
        (f < self.listeners.len()).then_some(f)
    }

    fn listener(&self, f: usize, l: usize) -> Option<usize> {
        let start = *self.listeners.get(f)?;
        let end = self.listeners.get(f + 1).copied().unwrap_or(self.backends);
        (start + l < end).then_some(start + l)
    }

    fn backend(&self, b: usize) -> Option<usize> {
        (self.backends + b < self.servers.first().copied().unwrap_or(self.len))
            .then_some(self.backends + b)
    }

    fn server(&self, b: usize, s: usize) -> Option<usize> {
        let start = *self.servers.get(b)?;
        let end = self.servers.get(b + 1).copied().unwrap_or(self.len);
        (start + s < end).then_some(start + s)
    }
}

impl Gauges {
    #[inline]
    fn set(&self, index: Option<usize>, value: u32) {
        if let Some(g) = index.and_then(|i| self.cur.get(i)) {
            g.store(value, Ordering::Relaxed);
            if !self.dirty.load(Ordering::Relaxed) {
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl ShardCounters {
    pub fn new(topo: &Topology) -> ShardCounters {
        ShardCounters {
            process: ProcessCounters::default(),
            frontends: vec![FrontendCounters::default(); topo.frontends.len()],
            listeners: topo
                .frontends
                .iter()
                .map(|f| vec![ListenerCounters::default(); f.binds.len()])
                .collect(),
            backends: vec![BackendCounters::default(); topo.backends.len()],
            backend_latency: topo
                .backends
                .iter()
                .map(|_| LatencyHistograms::new())
                .collect(),
            servers: topo
                .backends
                .iter()
                .map(|b| vec![ServerCounters::default(); b.servers.len()])
                .collect(),
            server_latency: topo
                .backends
                .iter()
                .map(|b| b.servers.iter().map(|_| LatencyHistograms::new()).collect())
                .collect(),
            stick_used: Vec::new(),
            gauges: None,
        }
    }

    /// Publishes this shard's session counts on `board` from now on (the shard's start and
    /// each epoch's: the new counters replace the old in the sampler).
    pub fn attach_gauges(&mut self, board: &StatsBoard, shard: usize) {
        let layout = GaugeLayout::of(self);
        let g = Arc::new(Gauges {
            cur: (0..layout.len).map(|_| AtomicU32::new(0)).collect(),
            dirty: AtomicBool::new(false),
            layout,
        });
        if let Some(slot) = board.gauges.get(shard) {
            if let Ok(mut s) = slot.lock() {
                *s = Some(g.clone());
            }
        }
        // New counters (a start, an in-process reload) start new peaks, as they start at 0.
        if let Ok(mut p) = board.peaks.lock() {
            *p = (GaugeLayout::default(), Vec::new());
        }
        self.gauges = Some(g);
    }

    /// A client connection (a session) opened on `frontend` by listener `bind` at `now_ms`.
    pub fn frontend_session_start(&mut self, frontend: usize, bind: usize, now_ms: u64) {
        if let Some(f) = self.frontends.get_mut(frontend) {
            f.on_connection(now_ms);
            f.on_session_start(now_ms);
            self.frontend_gauge(frontend);
        }
        if let Some(l) = self
            .listeners
            .get_mut(frontend)
            .and_then(|v| v.get_mut(bind))
        {
            l.cur_sess += 1;
            l.max_sess = l.max_sess.max(l.cur_sess);
            l.cum_sess += 1;
            self.listener_gauge(frontend, bind);
        }
    }

    /// The session of [`ShardCounters::frontend_session_start`] closed.
    pub fn frontend_session_end(&mut self, frontend: usize, bind: usize) {
        if let Some(f) = self.frontends.get_mut(frontend) {
            f.on_session_end();
            self.frontend_gauge(frontend);
        }
        if let Some(l) = self
            .listeners
            .get_mut(frontend)
            .and_then(|v| v.get_mut(bind))
        {
            l.cur_sess = l.cur_sess.saturating_sub(1);
            self.listener_gauge(frontend, bind);
        }
    }

    #[inline]
    fn frontend_gauge(&self, f: usize) {
        if let (Some(g), Some(c)) = (&self.gauges, self.frontends.get(f)) {
            g.set(g.layout.frontend(f), c.cur_sess);
        }
    }

    #[inline]
    fn listener_gauge(&self, f: usize, l: usize) {
        let c = self.listeners.get(f).and_then(|v| v.get(l));
        if let (Some(g), Some(c)) = (&self.gauges, c) {
            g.set(g.layout.listener(f, l), c.cur_sess);
        }
    }

    #[inline]
    fn backend_gauges(&self, b: usize, s: usize) {
        let Some(g) = &self.gauges else { return };
        if let Some(c) = self.backends.get(b) {
            g.set(g.layout.backend(b), c.cur_sess);
        }
        if let Some(c) = self.servers.get(b).and_then(|v| v.get(s)) {
            g.set(g.layout.server(b, s), c.cur_sess);
        }
    }

    /// `add server`: a zeroed row for the new server of `backend`.
    pub fn add_server(&mut self, backend: usize) {
        if let Some(v) = self.servers.get_mut(backend) {
            v.push(ServerCounters::default());
        }
        if let Some(v) = self.server_latency.get_mut(backend) {
            v.push(LatencyHistograms::new());
        }
    }

    /// Adds another shard's counters (same topology; a shard that saw more `add server`
    /// messages has longer server rows, which are taken as they are).
    pub fn merge(&mut self, o: &ShardCounters) {
        for (sa, sb) in self.servers.iter_mut().zip(&o.servers) {
            if sb.len() > sa.len() {
                sa.resize(sb.len(), ServerCounters::default());
            }
        }
        for (sa, sb) in self.server_latency.iter_mut().zip(&o.server_latency) {
            while sb.len() > sa.len() {
                sa.push(LatencyHistograms::new());
            }
        }
        if o.stick_used.len() > self.stick_used.len() {
            self.stick_used.resize(o.stick_used.len(), 0);
        }
        for (a, b) in self.stick_used.iter_mut().zip(&o.stick_used) {
            *a += b;
        }
        self.process.merge(&o.process);
        for (a, b) in self.frontends.iter_mut().zip(&o.frontends) {
            a.merge(b);
        }
        for (la, lb) in self.listeners.iter_mut().zip(&o.listeners) {
            for (a, b) in la.iter_mut().zip(lb) {
                a.merge(b);
            }
        }
        for (a, b) in self.backends.iter_mut().zip(&o.backends) {
            a.merge(b);
        }
        for (a, b) in self.backend_latency.iter_mut().zip(&o.backend_latency) {
            a.merge(b);
        }
        for (sa, sb) in self.servers.iter_mut().zip(&o.servers) {
            for (a, b) in sa.iter_mut().zip(sb) {
                a.merge(b);
            }
        }
        for (sa, sb) in self.server_latency.iter_mut().zip(&o.server_latency) {
            for (a, b) in sa.iter_mut().zip(sb) {
                a.merge(b);
            }
        }
    }

    /// Records a finished HTTP transaction (or TCP session) in its backend and server.
    pub fn record_times(&mut self, backend: usize, server: Option<usize>, t: &RequestTimes) {
        if let Some(b) = self.backends.get_mut(backend) {
            b.times.record(t);
        }
        if let Some(h) = self.backend_latency.get_mut(backend) {
            h.record(t);
        }
        if let Some(s) = server {
            if let Some(c) = self.servers.get_mut(backend).and_then(|v| v.get_mut(s)) {
                c.times.record(t);
            }
            if let Some(h) = self
                .server_latency
                .get_mut(backend)
                .and_then(|v| v.get_mut(s))
            {
                h.record(t);
            }
        }
    }
}

/// Health-check results of one server, as the stats show them (written by the control
/// shard's checks; a server without checks keeps the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHealth {
    pub check: Option<ringlb_stats::CheckStats>,
    pub agent: Option<ringlb_stats::CheckStats>,
    /// The server's maxconn as the control shard sees it (an agent's `maxconn:` included);
    /// `None`: the configured one.
    pub maxconn: Option<u32>,
    pub failed_checks: u64,
    pub down_trans: u64,
    pub last_change_ms: u64,
    pub down_time_ms: u64,
}

/// One shard's answer to a `show table`: (seq, rows it owns, entries it owns).
type StickRows = (u64, Vec<ringlb_stick::EntryView>, usize);
/// A shard's answer to `CollectPeerUpdates`: (seq, entries per table name).
type PeerRows = (u64, Vec<(String, Vec<ringlb_stick::PeerEntry>)>);

/// One shard's server connections for `show servers conn`: per backend, per server, (in use,
/// idle that carried one request (haproxy's "unsafe"), idle that carried more ("safe")).
pub type ConnCounts = Vec<Vec<(u32, u32, u32)>>;

/// Where shards publish copies of their counters for readers.
#[derive(Debug)]
pub struct StatsBoard {
    slots: Vec<Mutex<Option<(u64, ShardCounters)>>>,
    /// Per backend, per server; replaced whole by the control shard when checks report.
    health: Mutex<Vec<Vec<ServerHealth>>>,
    /// Per shard: the stick-table entries it owns for the last `show table` (seq, rows, used).
    stick_slots: Vec<Mutex<Option<StickRows>>>,
    /// Per shard: its entries for the last `CollectPeerUpdates` (ADR 0007).
    peer_slots: Vec<Mutex<Option<PeerRows>>>,
    /// Per shard: its server connections for the last `show servers conn` (seq, counts).
    conn_slots: Vec<Mutex<Option<(u64, ConnCounts)>>>,
    /// Per shard: its answer to the last `ControlMsg::Engine` (seq, reply).
    engine_slots: Vec<Mutex<Option<(u64, crate::live::EngineReply)>>>,
    /// Per shard: its session gauges ([`Gauges`]), read by [`StatsBoard::sample_gauges`].
    gauges: Vec<Mutex<Option<Arc<Gauges>>>>,
    /// The highest sums of the shards' gauges sampled so far, by gauge, with the layout they
    /// were taken with (a reload's new layout starts them again).
    peaks: Mutex<(GaugeLayout, Vec<u32>)>,
    /// `show errors` event numbers, process-wide (taken on the error path only).
    error_events: std::sync::atomic::AtomicU32,
    next_seq: AtomicU64,
    /// The process-wide clock origin of every `now_ms` (rates of all shards line up).
    pub origin: Instant,
    /// Unix time of process start (`show info` Start_time_sec, uptime).
    pub start_unix_s: u64,
}

impl StatsBoard {
    pub fn new(nshards: usize) -> Arc<StatsBoard> {
        Arc::new(StatsBoard {
            slots: (0..nshards.max(1)).map(|_| Mutex::new(None)).collect(),
            health: Mutex::new(Vec::new()),
            stick_slots: (0..nshards.max(1)).map(|_| Mutex::new(None)).collect(),
            peer_slots: (0..nshards.max(1)).map(|_| Mutex::new(None)).collect(),
            conn_slots: (0..nshards.max(1)).map(|_| Mutex::new(None)).collect(),
            engine_slots: (0..nshards.max(1)).map(|_| Mutex::new(None)).collect(),
            gauges: (0..nshards.max(1)).map(|_| Mutex::new(None)).collect(),
            peaks: Mutex::new((GaugeLayout::default(), Vec::new())),
            error_events: std::sync::atomic::AtomicU32::new(0),
            next_seq: AtomicU64::new(1),
            origin: Instant::now(),
            start_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })
    }

    /// Milliseconds since the board was created (the `now_ms` of every counter).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A new request number; broadcast it in `ControlMsg::PublishStats`.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Called by shard `shard` in answer to `PublishStats { seq }`.
    pub fn publish(&self, shard: usize, seq: u64, counters: ShardCounters) {
        if let Some(slot) = self.slots.get(shard) {
            if let Ok(mut g) = slot.lock() {
                *g = Some((seq, counters));
            }
        }
    }

    /// The merged counters if every shard has published `seq` or later.
    pub fn try_collect(&self, seq: u64) -> Option<ShardCounters> {
        let mut merged: Option<ShardCounters> = None;
        for slot in &self.slots {
            let g = slot.lock().ok()?;
            let (got, c) = g.as_ref()?;
            if *got < seq {
                return None;
            }
            match &mut merged {
                None => merged = Some(c.clone()),
                Some(m) => m.merge(c),
            }
        }
        let mut merged = merged?;
        self.sample_gauges();
        self.raise_to_sampled_peaks(&mut merged);
        Some(merged)
    }

    /// Sums the shards' current session counts and keeps the highest sums (`smax`, see
    /// [`Gauges`]). The control shard calls it every tick; reading stats calls it too. Reads
    /// nothing when no shard changed a count since the last call.
    pub fn sample_gauges(&self) {
        let sets: Vec<Arc<Gauges>> = self
            .gauges
            .iter()
            .filter_map(|g| g.lock().ok().and_then(|g| g.clone()))
            .collect();
        // `swap` on every set: each shard's flag must be cleared, not only the first one's.
        let changed = sets
            .iter()
            .fold(false, |acc, g| g.dirty.swap(false, Ordering::Relaxed) | acc);
        let Some(first) = sets.first() else { return };
        let Ok(mut peaks) = self.peaks.lock() else {
            return;
        };
        if peaks.0 != first.layout {
            *peaks = (first.layout.clone(), vec![0; first.layout.len]);
        } else if !changed {
            return;
        }
        let same: Vec<&Arc<Gauges>> = sets.iter().filter(|g| g.layout == peaks.0).collect();
        for (i, peak) in peaks.1.iter_mut().enumerate() {
            let sum = same.iter().fold(0u32, |acc, g| {
                acc.saturating_add(g.cur.get(i).map_or(0, |c| c.load(Ordering::Relaxed)))
            });
            *peak = (*peak).max(sum);
        }
    }

    /// Merged counters hold each shard's peaks combined by their maximum: raises them to the
    /// sampled process-wide peaks where those are higher.
    fn raise_to_sampled_peaks(&self, c: &mut ShardCounters) {
        let Ok(peaks) = self.peaks.lock() else { return };
        let (layout, peaks) = (&peaks.0, &peaks.1);
        let peak = |i: Option<usize>| i.and_then(|i| peaks.get(i)).copied().unwrap_or(0);
        for (f, fc) in c.frontends.iter_mut().enumerate() {
            fc.max_sess = fc.max_sess.max(peak(layout.frontend(f)));
        }
        for (f, v) in c.listeners.iter_mut().enumerate() {
            for (l, lc) in v.iter_mut().enumerate() {
                lc.max_sess = lc.max_sess.max(peak(layout.listener(f, l)));
            }
        }
        for (b, bc) in c.backends.iter_mut().enumerate() {
            bc.max_sess = bc.max_sess.max(peak(layout.backend(b)));
        }
        for (b, v) in c.servers.iter_mut().enumerate() {
            for (s, sc) in v.iter_mut().enumerate() {
                sc.max_sess = sc.max_sess.max(peak(layout.server(b, s)));
                // haproxy's estimate of the connections a server needs is its recent peak
                // of connections in use, process-wide; the shards' estimates add up to more
                // when their peaks did not coincide, and a connection in use carries a
                // session, so the process-wide peak of sessions bounds it too.
                if sc.max_sess > 0 {
                    sc.need_conn_est = sc.need_conn_est.min(sc.max_sess);
                }
            }
        }
    }

    /// Called by shard `shard` in answer to `PublishStickTable { seq }`.
    pub fn publish_stick(
        &self,
        shard: usize,
        seq: u64,
        rows: Vec<ringlb_stick::EntryView>,
        used: usize,
    ) {
        if let Some(slot) = self.stick_slots.get(shard) {
            if let Ok(mut g) = slot.lock() {
                *g = Some((seq, rows, used));
            }
        }
    }

    /// Called by shard `shard` in answer to `CollectPeerUpdates { seq }`.
    pub fn publish_peer(
        &self,
        shard: usize,
        seq: u64,
        rows: Vec<(String, Vec<ringlb_stick::PeerEntry>)>,
    ) {
        if let Some(slot) = self.peer_slots.get(shard) {
            if let Ok(mut g) = slot.lock() {
                *g = Some((seq, rows));
            }
        }
    }

    /// Every shard's answer to `CollectPeerUpdates { seq }` once all have answered (taken:
    /// each collection is handed out once).
    pub fn try_collect_peer(
        &self,
        seq: u64,
    ) -> Option<Vec<(String, Vec<ringlb_stick::PeerEntry>)>> {
        for slot in &self.peer_slots {
            let g = slot.lock().ok()?;
            if g.as_ref().is_none_or(|(got, _)| *got < seq) {
                return None;
            }
        }
        let mut out = Vec::new();
        for slot in &self.peer_slots {
            if let Ok(mut g) = slot.lock() {
                if let Some((_, rows)) = g.as_mut() {
                    out.append(rows);
                }
            }
        }
        Some(out)
    }

    /// Called by shard `shard` in answer to `PublishConns { seq }`.
    pub fn publish_conns(&self, shard: usize, seq: u64, counts: ConnCounts) {
        if let Some(slot) = self.conn_slots.get(shard) {
            if let Ok(mut g) = slot.lock() {
                *g = Some((seq, counts));
            }
        }
    }

    /// Every shard's connection counts for `seq` (in shard order), once all have answered.
    pub fn try_collect_conns(&self, seq: u64) -> Option<Vec<ConnCounts>> {
        let mut out = Vec::with_capacity(self.conn_slots.len());
        for slot in &self.conn_slots {
            let g = slot.lock().ok()?;
            let (got, c) = g.as_ref()?;
            if *got < seq {
                return None;
            }
            out.push(c.clone());
        }
        Some(out)
    }

    /// Called by shard `shard` in answer to `ControlMsg::Engine { seq, .. }`.
    pub fn publish_engine(&self, shard: usize, seq: u64, reply: crate::live::EngineReply) {
        if let Some(slot) = self.engine_slots.get(shard) {
            if let Ok(mut g) = slot.lock() {
                *g = Some((seq, reply));
            }
        }
    }

    /// Every shard's answer for `seq` (in shard order), once all have answered.
    pub fn try_collect_engine(&self, seq: u64) -> Option<Vec<crate::live::EngineReply>> {
        let mut out = Vec::with_capacity(self.engine_slots.len());
        for slot in &self.engine_slots {
            let g = slot.lock().ok()?;
            let (got, r) = g.as_ref()?;
            if *got < seq {
                return None;
            }
            out.push(r.clone());
        }
        Some(out)
    }

    /// The next `show errors` event number.
    pub fn next_error_event(&self) -> u32 {
        self.error_events.fetch_add(1, Ordering::Relaxed)
    }

    /// Events captured since start (`show errors`' total).
    pub fn error_events(&self) -> u32 {
        self.error_events.load(Ordering::Relaxed)
    }

    /// Every shard's rows and entry count for `seq`, once all have answered.
    pub fn try_collect_stick(&self, seq: u64) -> Option<(Vec<ringlb_stick::EntryView>, usize)> {
        let mut rows = Vec::new();
        let mut used = 0;
        for slot in &self.stick_slots {
            let g = slot.lock().ok()?;
            let (got, r, u) = g.as_ref()?;
            if *got < seq {
                return None;
            }
            rows.extend(r.iter().cloned());
            used += u;
        }
        Some((rows, used))
    }

    /// Replaces the health-check results (control shard).
    pub fn set_health(&self, health: Vec<Vec<ServerHealth>>) {
        if let Ok(mut g) = self.health.lock() {
            *g = health;
        }
    }

    pub fn health(&self) -> Vec<Vec<ServerHealth>> {
        self.health.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Whatever the shards last published (stale, for a reader that cannot wait).
    pub fn latest(&self) -> Option<ShardCounters> {
        self.try_collect(0)
    }

    /// Waits (off any shard: a plain thread) until every shard answered `seq`, at most
    /// `timeout`; falls back to the latest copies.
    pub fn collect_blocking(&self, seq: u64, timeout: Duration) -> Option<ShardCounters> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.try_collect(seq) {
                return Some(c);
            }
            if Instant::now() >= deadline {
                return self.latest();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Counter updates of one stream (an HTTP transaction, or a TCP session) on the backend side.
impl ShardCounters {
    /// The stream got a server (HAProxy counts a backend/server session per stream, and, when
    /// the balancer chose it (`balanced`), an LB decision in `lbtot`).
    pub fn stream_start(&mut self, backend: usize, server: usize, now_ms: u64, balanced: bool) {
        let lb = u64::from(balanced);
        if let Some(b) = self.backends.get_mut(backend) {
            b.on_session_start(now_ms);
            b.cum_lbconn += lb;
        }
        if let Some(s) = self
            .servers
            .get_mut(backend)
            .and_then(|v| v.get_mut(server))
        {
            s.on_session_start(now_ms);
            s.cum_lbconn += lb;
        }
        self.backend_gauges(backend, server);
    }

    pub fn stream_end(&mut self, backend: usize, server: usize) {
        if let Some(b) = self.backends.get_mut(backend) {
            b.on_session_end();
        }
        if let Some(s) = self
            .servers
            .get_mut(backend)
            .and_then(|v| v.get_mut(server))
        {
            s.on_session_end();
        }
        self.backend_gauges(backend, server);
    }

    /// What getting the connection took: failed attempts (`econ`), retries (`wretr`),
    /// redispatches (`wredis`), new vs reused connections.
    pub fn connect_outcome(&mut self, backend: usize, info: &crate::server::ConnectInfo) {
        let Some(b) = self.backends.get_mut(backend) else {
            return;
        };
        b.failed_conns += u64::from(info.failed_connects);
        b.retries += u64::from(info.retries);
        b.redispatches += u64::from(info.redispatched);
        let Some(server) = info.server else { return };
        let Some(s) = self
            .servers
            .get_mut(backend)
            .and_then(|v| v.get_mut(server))
        else {
            return;
        };
        s.failed_conns += u64::from(info.failed_connects);
        s.retries += u64::from(info.retries);
        s.redispatches += u64::from(info.redispatched);
        if info.failed_connects == 0 || info.reused {
            if info.reused {
                b.reuse += 1;
                s.reuse += 1;
            } else {
                b.connect += 1;
                s.connect += 1;
            }
        }
    }

    /// Bytes of a finished stream: `bin` is what the client sent, `bout` what it received.
    pub fn bytes(
        &mut self,
        frontend: usize,
        backend: Option<usize>,
        server: Option<usize>,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        if let Some(f) = self.frontends.get_mut(frontend) {
            f.bytes_in += bytes_in;
            f.bytes_out += bytes_out;
        }
        self.process.total_bytes_out += bytes_out;
        let Some(b) = backend else { return };
        if let Some(c) = self.backends.get_mut(b) {
            c.bytes_in += bytes_in;
            c.bytes_out += bytes_out;
        }
        if let Some(s) = server.and_then(|s| self.servers.get_mut(b).and_then(|v| v.get_mut(s))) {
            s.bytes_in += bytes_in;
            s.bytes_out += bytes_out;
        }
    }

    /// The counters of the `bind` (index in `frontend`) a stream came in by, if known
    /// (`option socket-stats` shows them).
    pub fn listener(
        &mut self,
        frontend: usize,
        bind: Option<usize>,
    ) -> Option<&mut ListenerCounters> {
        self.listeners.get_mut(frontend)?.get_mut(bind?)
    }

    /// A response status sent to the client (`hrsp_*`; `req_tot` of the backend and server
    /// count the requests they answered).
    pub fn response(
        &mut self,
        frontend: usize,
        backend: Option<usize>,
        server: Option<usize>,
        status: u16,
    ) {
        if let Some(f) = self.frontends.get_mut(frontend) {
            f.rsp.count(status);
        }
        let Some(b) = backend else { return };
        if let Some(c) = self.backends.get_mut(b) {
            c.rsp.count(status);
            c.cum_req += 1;
        }
        if let Some(s) = server.and_then(|s| self.servers.get_mut(b).and_then(|v| v.get_mut(s))) {
            s.rsp.count(status);
            s.cum_req += 1;
        }
    }
}

/// HAProxy's `h1` stats module (its HTTP/1 multiplexer's counters), kept per shard like the
/// others: a connection counts from when the HTTP/1 layer takes it until it closes or turns
/// into HTTP/2 (prior knowledge); a stream from the first byte of a request (an empty
/// connection makes none) to the end of its transaction; the bytes are what the sockets move
/// (plaintext under TLS), added up by [`crate::live::Live::h1_meter`]'s meters and copied
/// into the counters at the end of each transaction and connection.
pub struct H1Conn<'a> {
    ctx: &'a crate::Ctx,
    frontend: usize,
}

impl<'a> H1Conn<'a> {
    /// A client connection taken by the HTTP/1 layer of `frontend`; its bytes are metered.
    pub fn open(
        ctx: &'a crate::Ctx,
        frontend: usize,
        client: &crate::conn::ClientConn,
    ) -> H1Conn<'a> {
        client.meter(Some(ctx.live.h1_meter(crate::live::Side::Front, frontend)));
        if let Some(f) = ctx.state.counters.borrow_mut().frontends.get_mut(frontend) {
            f.mux.h1_total_connections += 1;
            f.mux.h1_open_connections += 1;
        }
        H1Conn { ctx, frontend }
    }
}

impl Drop for H1Conn<'_> {
    fn drop(&mut self) {
        let mut c = self.ctx.state.counters.borrow_mut();
        if let Some(f) = c.frontends.get_mut(self.frontend) {
            f.mux.h1_open_connections = f.mux.h1_open_connections.saturating_sub(1);
        }
        self.ctx
            .live
            .fold_h1_bytes(&mut c, Some(self.frontend), None);
    }
}

impl ShardCounters {
    /// The first bytes of a request arrived on an HTTP/1 client connection of `frontend`.
    pub fn h1_stream_open(&mut self, frontend: usize) {
        if let Some(f) = self.frontends.get_mut(frontend) {
            f.mux.h1_total_streams += 1;
            f.mux.h1_open_streams += 1;
        }
    }

    /// The transaction of a stream counted by [`ShardCounters::h1_stream_open`] ended.
    pub fn h1_stream_close(&mut self, frontend: usize) {
        if let Some(f) = self.frontends.get_mut(frontend) {
            f.mux.h1_open_streams = f.mux.h1_open_streams.saturating_sub(1);
        }
    }
}

/// A request goes to `backend` over HTTP/1 connection `conn` (new, or `reused`): one stream
/// of the backend's `h1` module, and a connection when new (its bytes metered from now on).
/// The backend's open connections and streams are read from the server pools when the
/// counters are published (`h1_open_*` = connections idle and in use, streams in use).
pub fn h1_server_stream(
    ctx: &crate::Ctx,
    backend: usize,
    conn: &crate::conn::ServerStream,
    reused: bool,
) {
    if conn.is_h2() {
        return;
    }
    if !reused {
        conn.meter(Some(ctx.live.h1_meter(crate::live::Side::Back, backend)));
    }
    if let Some(b) = ctx.state.counters.borrow_mut().backends.get_mut(backend) {
        b.mux.h1_total_streams += 1;
        b.mux.h1_total_connections += u64::from(!reused);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One frontend with two listeners, one backend with two servers.
    fn shard(board: &StatsBoard, id: usize) -> ShardCounters {
        let mut c = ShardCounters {
            frontends: vec![FrontendCounters::default()],
            listeners: vec![vec![ListenerCounters::default(); 2]],
            backends: vec![BackendCounters::default()],
            servers: vec![vec![ServerCounters::default(); 2]],
            ..ShardCounters::default()
        };
        c.attach_gauges(board, id);
        c
    }

    fn collect(board: &StatsBoard, shards: &[&ShardCounters]) -> ShardCounters {
        let seq = board.next_seq();
        for (i, c) in shards.iter().enumerate() {
            board.publish(i, seq, (*c).clone());
        }
        board.try_collect(seq).unwrap_or_default()
    }

    #[test]
    fn sessions_one_after_the_other_on_two_shards_peak_at_one() {
        let board = StatsBoard::new(2);
        let (mut a, mut b) = (shard(&board, 0), shard(&board, 1));
        for (on_a, bind) in [(true, 0), (false, 1), (true, 1)] {
            let c = if on_a { &mut a } else { &mut b };
            c.frontend_session_start(0, bind, 0);
            c.stream_start(0, bind, 0, true);
            board.sample_gauges();
            c.stream_end(0, bind);
            c.frontend_session_end(0, bind);
            board.sample_gauges();
        }
        let m = collect(&board, &[&a, &b]);
        assert_eq!(
            m.frontends[0].max_sess, 1,
            "not the sum of the shards' peaks"
        );
        assert_eq!(m.backends[0].max_sess, 1);
        assert_eq!(m.listeners[0][1].max_sess, 1);
        assert_eq!(m.servers[0][1].max_sess, 1);
    }

    #[test]
    fn sessions_held_together_on_two_shards_peak_at_their_sum() {
        let board = StatsBoard::new(2);
        let (mut a, mut b) = (shard(&board, 0), shard(&board, 1));
        for _ in 0..3 {
            a.frontend_session_start(0, 0, 0);
            a.stream_start(0, 0, 0, true);
        }
        for _ in 0..2 {
            b.frontend_session_start(0, 0, 0);
            b.stream_start(0, 1, 0, true);
        }
        // Sampled while held (a read samples too), then all closed.
        board.sample_gauges();
        for _ in 0..3 {
            a.stream_end(0, 0);
            a.frontend_session_end(0, 0);
        }
        for _ in 0..2 {
            b.stream_end(0, 1);
            b.frontend_session_end(0, 0);
        }
        let m = collect(&board, &[&a, &b]);
        assert_eq!(m.frontends[0].cur_sess, 0);
        assert_eq!(m.frontends[0].max_sess, 5);
        assert_eq!(m.listeners[0][0].max_sess, 5);
        assert_eq!(m.backends[0].max_sess, 5);
        assert_eq!((m.servers[0][0].max_sess, m.servers[0][1].max_sess), (3, 2));
    }

    #[test]
    fn a_peak_no_sample_saw_is_the_largest_shards_peak() {
        let board = StatsBoard::new(2);
        let (mut a, mut b) = (shard(&board, 0), shard(&board, 1));
        a.frontend_session_start(0, 0, 0);
        a.frontend_session_start(0, 0, 0);
        b.frontend_session_start(0, 0, 0);
        a.frontend_session_end(0, 0);
        a.frontend_session_end(0, 0);
        b.frontend_session_end(0, 0);
        let m = collect(&board, &[&a, &b]);
        assert_eq!(
            m.frontends[0].max_sess, 2,
            "a lower bound: 3 overlapped unseen"
        );
    }
}
