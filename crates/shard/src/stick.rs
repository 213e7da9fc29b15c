//! Stick tables in the engine (issue #7, ADR 0003): each shard holds its own instances of every
//! table (`ShardState::stick`), each key has an owner shard, and the shards exchange batched
//! deltas and snapshots over a mesh of bounded channels every millisecond. The request path
//! never waits for another shard.
//!
//! Per connection, a [`StickSession`] holds two sets of stick counters, as HAProxy's session
//! and stream do: `tcp-request` tracking lives as long as the connection, `http-request`
//! tracking as long as one request (released by [`StickSession::end_txn`]).

use std::rc::Rc;

use ringlb_rules::{Sample, ScFetch, TableConv};
use ringlb_stick::{
    parse_fetch, Event, FetchKind, FetchScope, FetchValue, KeySample, Message, ShardInfo,
    StreamCounters, Table, TableConfig, TableId, Tables, TrackFrom,
};
use ringlb_uring::rt::channel::{self, Receiver, Sender};

use crate::notify::Notify;
use crate::rules::Host;
use crate::state::ShardState;
use crate::topology::Topology;

/// A message between two shards' instances of table `.0`.
pub type StickMsg = (u16, Message);

/// Capacity of each shard → shard channel. A full channel makes the sender's flush task wait
/// (messages are never dropped: their operations are already counted as in flight).
const MESH_DEPTH: usize = 1024;
/// Longest wait between two flushes, a safety net: a change wakes the flush task
/// ([`changed`]). Idle, a shard wakes 100 times a second for this.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);
/// Shortest time between two flushes (half ADR 0003's 1 ms exchange interval). Under load every
/// request changes a table: flushing on each change sent one message, and woke the peer's
/// thread, per request (measured: twice the CPU per request of one shard at 100k req/s on 2
/// shards). Waiting out the interval batches half a millisecond of requests into one message
/// per peer, for an accuracy cost of at most one more interval (ADR 0003, "Error bound").
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_micros(500);
/// Expiry sweep interval and budget per table and sweep.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
const PURGE_BUDGET: usize = 4096;
/// Seed of the tables' index hashers (any value: owners do not depend on it).
const SEED: u64 = 0x5d1c_7ab1_e5ee_d007;

/// One shard's ends of the stick-table mesh: a sender to and a receiver from every other shard.
pub struct StickLinks {
    pub to: Vec<(usize, Sender<StickMsg>)>,
    pub from: Vec<(usize, Receiver<StickMsg>)>,
}

/// The full mesh between `n` shards (built by the control shard before starting them; element
/// `i` goes to shard `i`). FIFO per pair of shards, as ADR 0003 requires.
pub fn mesh(n: usize) -> Vec<StickLinks> {
    let mut links: Vec<StickLinks> = (0..n)
        .map(|_| StickLinks {
            to: Vec::new(),
            from: Vec::new(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (tx, rx) = channel::bounded(MESH_DEPTH);
            if let Some(l) = links.get_mut(from) {
                l.to.push((to, tx));
            }
            if let Some(l) = links.get_mut(to) {
                l.from.push((from, rx));
            }
        }
    }
    links
}

/// This shard's tables, in the topology's order (the same ids on every shard). A table the
/// stick crate refuses (the config layer validated it already) is left out on every shard.
pub fn build_tables(topo: &Topology, shard: usize, nshards: usize) -> Tables {
    let info = ShardInfo {
        id: u16::try_from(shard).unwrap_or(0),
        count: u16::try_from(nshards.max(1)).unwrap_or(1),
    };
    let mut tables = Tables::default();
    for (name, t) in &topo.stick_tables {
        if let Ok(mut cfg) = TableConfig::from_model(name, t) {
            if topo.stick_rule_tables.iter().any(|n| n == name) {
                cfg = cfg.for_stick_rules();
            }
            let mut table = Table::new(cfg, info, SEED);
            if t.peers.is_some() {
                table.enable_peers(); // replicated (ADR 0007)
            }
            tables.add(table);
        }
    }
    tables
}

/// `stick match` / `stick on`: the server id (`puid`) stored for `key` in `table`, if any.
/// Reads this shard's instance (another shard's store arrives within the exchange interval).
pub fn match_server(state: &ShardState, table: &str, key: &Sample<'_>) -> Option<i64> {
    let mut tables = state.stick.borrow_mut();
    let id = tables.id(table)?;
    let now = state.board.now_ms();
    let found = tables.get_mut(id)?.stick_match(&key_of(key), now);
    drop(tables);
    changed(state); // the entry's expiry restarted
    found
}

/// `stick store-request|store-response` / `stick on`: remembers server `server_id` (`puid`)
/// for `key` in `table`.
pub fn store_server(state: &ShardState, table: &str, key: &Sample<'_>, server_id: i64) {
    let mut tables = state.stick.borrow_mut();
    let Some(id) = tables.id(table) else { return };
    let now = state.board.now_ms();
    let stored = tables
        .get_mut(id)
        .is_some_and(|t| t.store_server_id(&key_of(key), server_id, now));
    drop(tables);
    if stored {
        changed(state);
    }
}

/// `set table` / `clear table` from the runtime socket, sent to every shard: the key's owner
/// applies the change and tells the shards caching it with its next flush; the others change
/// their cached copy at once, so the change holds on every shard once all applied the message.
pub fn apply_control(state: &ShardState, msg: &crate::state::ControlMsg) {
    use crate::state::ControlMsg;
    let now = state.board.now_ms();
    let mut tables = state.stick.borrow_mut();
    let changed_any = match msg {
        ControlMsg::SetStickEntry { table, entry } => tables
            .id(table)
            .and_then(|id| tables.get_mut(id))
            .is_some_and(|t| t.apply_set(entry, now).is_ok()),
        ControlMsg::ClearStickTable { table, query } => tables
            .id(table)
            .and_then(|id| tables.get_mut(id))
            .is_some_and(|t| t.clear(query, now) > 0),
        ControlMsg::ApplyPeerEntries { table, entries } => tables
            .id(table)
            .and_then(|id| tables.get_mut(id))
            .is_some_and(|t| {
                let mut any = false;
                for e in entries {
                    any |= t.apply_peer(e, now);
                }
                any
            }),
        _ => false,
    };
    drop(tables);
    if changed_any {
        changed(state);
    }
}

/// Most entries one table hands to the peers per collection (the rest wait for the next).
const PEER_BATCH: usize = 10_000;

/// `peers` (ADR 0007): the entries of replicated tables `names` this shard owns, changed
/// locally since the last collection, or all of them (`full`, a resync). Per table, by name.
pub fn collect_peer_updates(
    state: &ShardState,
    full: bool,
    names: &[String],
) -> Vec<(String, Vec<ringlb_stick::PeerEntry>)> {
    let now = state.board.now_ms();
    let mut tables = state.stick.borrow_mut();
    let ids: Vec<TableId> = tables.iter().map(|(id, _)| id).collect();
    let mut out = Vec::new();
    for id in ids {
        let Some(t) = tables.get_mut(id) else {
            continue;
        };
        if !t.peers_enabled() || !names.iter().any(|n| n == t.name()) {
            continue;
        }
        let entries = if full {
            t.peer_snapshot(now)
        } else {
            t.take_peer_changes(now, PEER_BATCH)
        };
        if !entries.is_empty() {
            out.push((t.name().to_string(), entries));
        }
    }
    out
}

/// Something changed in this shard's tables: wake the flush task (no-op with one shard).
pub fn changed(state: &ShardState) {
    state.stick_dirty.set(true);
    if let Some(w) = state.stick_flush.borrow_mut().take() {
        w.wake();
    }
}

/// Starts the shard's stick-table tasks: the flush and its senders, one receiver per peer, and
/// the expiry sweep. Nothing when the configuration has no table.
pub fn spawn_tasks(state: &Rc<ShardState>, links: Option<StickLinks>, stop: &Rc<Notify>) {
    if state.stick.borrow().iter().next().is_none() {
        return;
    }
    {
        let state = state.clone();
        let stop = stop.clone();
        ringlb_uring::rt::spawn(async move {
            while !stop.is_raised() {
                ringlb_uring::rt::sleep(PURGE_EVERY).await;
                let now = state.board.now_ms();
                // Evicted cache entries may leave deltas to send.
                if state.stick.borrow_mut().purge_expired(now, PURGE_BUDGET) > 0 {
                    changed(&state);
                }
            }
        })
        .detach();
    }
    let Some(links) = links else { return };
    if state.nshards <= 1 {
        return;
    }
    for (_peer, rx) in links.from {
        let state = state.clone();
        ringlb_uring::rt::spawn(async move {
            while let Some((id, msg)) = rx.recv().await {
                let now = state.board.now_ms();
                // Deltas make this shard (their owner) send fresh snapshots.
                let deltas = matches!(msg, Message::Deltas { .. });
                state.stick.borrow_mut().receive(TableId(id), msg, now);
                if deltas {
                    changed(&state);
                }
            }
        })
        .detach();
    }
    let state = state.clone();
    ringlb_uring::rt::spawn(async move {
        let to = links.to;
        let mut last_flush = std::time::Instant::now();
        loop {
            // Until something changed (possibly while this task waited on a full channel),
            // or the interval passes.
            let change = std::future::poll_fn(|cx| {
                if state.stick_dirty.get() {
                    return std::task::Poll::Ready(());
                }
                *state.stick_flush.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::Pending
            });
            futures_lite::future::or(ringlb_uring::rt::sleep(FLUSH_EVERY), change).await;
            // Changes made while this waits join the batch.
            let since = last_flush.elapsed();
            if since < FLUSH_INTERVAL {
                ringlb_uring::rt::sleep(FLUSH_INTERVAL - since).await;
            }
            last_flush = std::time::Instant::now();
            state.stick_dirty.set(false);
            let now = state.board.now_ms();
            // The borrow ends before any await: a full channel never blocks the request path.
            let out = state.stick.borrow_mut().flush(now);
            for (id, o) in out {
                if let Some((_, tx)) = to.iter().find(|(p, _)| *p == usize::from(o.to)) {
                    // Waits while the peer's channel is full (keeps FIFO order); an exited
                    // peer has dropped its receiver and the message goes nowhere.
                    let _ = tx.send((id.0, o.msg)).await;
                }
            }
        }
    })
    .detach();
}

/// A connection's stick counters (HAProxy's session and stream `stkctr`).
pub struct StickSession {
    /// Held while tables exist (released on drop).
    state: Option<Rc<ShardState>>,
    /// Tracked by `tcp-request` rules: held for the whole connection.
    pub conn: StreamCounters,
    /// Tracked by `http-request` rules: held for one request.
    pub req: StreamCounters,
    /// The rule set running now: where `track-scN` counts and which set it fills.
    pub phase: TrackFrom,
    /// The current request was denied or tarpitted by the rules (counted as an HTTP error).
    denied: bool,
    /// `sess.*` variables: they live as long as the connection (HAProxy's session), so they
    /// are kept with the connection's other per-session state.
    pub sess_vars: ringlb_rules::Vars,
}

impl StickSession {
    pub fn new(state: &Rc<ShardState>) -> StickSession {
        let has_tables = state.stick.borrow().iter().next().is_some();
        StickSession {
            state: has_tables.then(|| state.clone()),
            conn: StreamCounters::default(),
            req: StreamCounters::default(),
            phase: TrackFrom::HttpRequest,
            denied: false,
            sess_vars: ringlb_rules::Vars::default(),
        }
    }

    /// The counters a fetch sees: the request's where tracked, else the connection's.
    fn view(&self) -> StreamCounters {
        self.req.or(&self.conn)
    }

    fn with(&self, f: impl FnOnce(&mut Tables, u64)) {
        if let Some(st) = &self.state {
            let now = st.board.now_ms();
            f(&mut st.stick.borrow_mut(), now);
            changed(st);
        }
    }

    /// A new HTTP request on the connection: counted on the counters `tcp-request` rules
    /// tracked (`http-request` tracking counts its request itself).
    pub fn on_request(&mut self) {
        let conn = &self.conn;
        self.with(|t, now| conn.record(t, Event::HttpRequest, now));
        self.phase = TrackFrom::HttpRequest;
    }

    /// The client closed before sending a request. On a connection that carried none, haproxy
    /// 2.6 counts a request and an error on the counters `tcp-request` rules tracked (its
    /// stream exists from the accept; recorded with an empty connection).
    pub fn on_closed_before_request(&mut self, first: bool) {
        if first {
            let conn = &self.conn;
            self.with(|t, now| {
                conn.record(t, Event::HttpRequest, now);
                conn.record(t, Event::HttpError, now);
            });
        }
    }

    /// The rules denied or tarpitted the current request.
    pub fn on_denied(&mut self) {
        self.denied = true;
    }

    /// The request ended: its status (`http_err_*`, `http_fail_*`) and bytes are counted on
    /// every tracked counter, and its `http-request` counters are released.
    pub fn end_txn(&mut self, status: u16, bytes_in: u64, bytes_out: u64) {
        let denied = std::mem::take(&mut self.denied);
        let Some(st) = &self.state else { return };
        let now = st.board.now_ms();
        let mut t = st.stick.borrow_mut();
        let ev = if denied {
            Some(Event::HttpError)
        } else {
            Event::for_status(status)
        };
        for sc in [&self.req, &self.conn] {
            if let Some(ev) = ev {
                sc.record(&mut t, ev, now);
            }
            if bytes_in > 0 {
                sc.record(&mut t, Event::BytesIn(bytes_in), now);
            }
            if bytes_out > 0 {
                sc.record(&mut t, Event::BytesOut(bytes_out), now);
            }
        }
        self.req.release_all(&mut t, now);
        drop(t);
        changed(st);
    }

    /// Bytes of a TCP-mode connection (counted once, at its end).
    pub fn bytes(&mut self, bytes_in: u64, bytes_out: u64) {
        self.end_txn(0, bytes_in, bytes_out);
    }
}

impl Drop for StickSession {
    fn drop(&mut self) {
        if let Some(st) = self.state.take() {
            let now = st.board.now_ms();
            let mut t = st.stick.borrow_mut();
            self.req.release_all(&mut t, now);
            self.conn.release_all(&mut t, now);
            drop(t);
            changed(&st);
        }
    }
}

/// `tcp-request connection` then `tcp-request session` rules of frontend `fe`, once when the
/// connection is accepted
/// (track-scN counters are then held for the connection, so `conn_cur` counts connections).
/// False: a rule rejected the connection, which is closed (counted in `dcon`/`dses` of the
/// frontend and of its listener `at` = (frontend, bind)).
/// `set-src`/`set-dst`/`set-*-port` leave the new addresses in `fx`.
pub fn connection_rules(
    ctx: &crate::Ctx,
    fe: &crate::topology::FrontendRt,
    at: (usize, Option<usize>),
    client: &crate::conn::ClientConn,
    stick: &mut StickSession,
    fx: &crate::rules::RuleEffects,
) -> bool {
    use ringlb_rules::{TcpPhase, TcpVerdict};
    let Some(rules) = &fe.rules else { return true };
    let tls = client.tls_facts();
    let mut host = Host {
        req_body: None,
        cap: None,
        effects: Some(fx),
        res_payload: None,
        payload: None,
        ctx,
        frontend: &fe.name,
        backend: None,
        server: None,
        src: client.peer_addr(),
        dst: client.tcp().local_addr().ok(),
        tls: tls.as_ref(),
        server_tls: None,
        stick: Some(stick),
        log: None,
        unique_id: None,
    };
    // `tcp-request content` needs the buffered request (inspect-delay): not run here.
    if let Some(s) = host.stick.as_deref_mut() {
        s.phase = TrackFrom::TcpConnection;
    }
    let mut txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::default());
    let mut verdict = rules.tcp_rules(TcpPhase::Connection, &mut host, &mut txn);
    let mut in_session = false;
    if !matches!(verdict, TcpVerdict::Reject { .. }) {
        // `tcp-request session`: after the handshake, which `client` has completed.
        in_session = true;
        verdict = rules.tcp_rules(TcpPhase::Session, &mut host, &mut txn);
    }
    if let Some(s) = host.stick.as_deref_mut() {
        s.phase = TrackFrom::HttpRequest;
    }
    match verdict {
        TcpVerdict::Reject { silent } => {
            if silent {
                client.set_linger_zero();
            }
            let mut c = ctx.state.counters.borrow_mut();
            let count = |d: &mut (u64, u64)| {
                if in_session {
                    d.1 += 1;
                } else {
                    d.0 += 1;
                }
            };
            if let Some(f) = c.frontends.get_mut(at.0) {
                let mut d = (f.denied_conn, f.denied_sess);
                count(&mut d);
                (f.denied_conn, f.denied_sess) = d;
            }
            if let Some(l) = c.listener(at.0, at.1) {
                let mut d = (l.denied_conn, l.denied_sess);
                count(&mut d);
                (l.denied_conn, l.denied_sess) = d;
            }
            false
        }
        _ => {
            let conn = &stick.conn;
            stick.with(|t, now| conn.record(t, Event::Session, now));
            true
        }
    }
}

/// A rules sample as a table key.
fn key_of<'s>(s: &'s Sample<'_>) -> KeySample<'s> {
    match s {
        Sample::Ip(std::net::IpAddr::V4(a)) => KeySample::Ipv4(*a),
        Sample::Ip(std::net::IpAddr::V6(a)) => KeySample::Ipv6(*a),
        Sample::Int(i) => KeySample::Int(*i),
        Sample::Bool(b) => KeySample::Int(i64::from(*b)),
        Sample::Str(b) => KeySample::Str(b),
        Sample::Bin(b) => KeySample::Bin(b),
    }
}

/// Fetches that write (`sc_inc_gpc0`, `src_clr_gpc0`, `src_updt_conn_cnt`...).
fn mutates(kind: FetchKind) -> bool {
    matches!(
        kind,
        FetchKind::IncGpc(_) | FetchKind::ClrGpc(_) | FetchKind::UpdtConnCnt
    )
}

fn sample_of(v: FetchValue) -> Sample<'static> {
    match v {
        FetchValue::Int(i) => Sample::Int(i),
        FetchValue::Bool(b) => Sample::Bool(b),
    }
}

/// `prefix` + `what` (+ the gpc index of `sc_get_gpc(idx,n)` forms) into `buf`, as the
/// stick crate names fetches; no allocation.
fn fetch_name<'b>(buf: &'b mut [u8; 64], prefix: &str, what: &str, idx: Option<u32>) -> &'b str {
    use std::io::Write;
    let mut w = std::io::Cursor::new(&mut buf[..]);
    let _ = match (idx, what) {
        (Some(i), "gpc_rate") => write!(w, "{prefix}gpc{i}_rate"),
        (Some(i), _) => write!(w, "{prefix}{what}{i}"),
        (None, _) => write!(w, "{prefix}{what}"),
    };
    let n = usize::try_from(w.position()).unwrap_or(0);
    std::str::from_utf8(buf.get(..n).unwrap_or_default()).unwrap_or("")
}

impl Host<'_> {
    /// The table of the proxy whose rules run (`track-scN` and `src_*` without `table`).
    fn current_table(&self, tables: &Tables) -> Option<TableId> {
        self.backend
            .and_then(|b| tables.id(b))
            .or_else(|| tables.id(self.frontend))
    }

    fn named_table(&self, tables: &Tables, name: Option<&str>) -> Result<Option<TableId>, ()> {
        match name {
            Some(n) => tables.id(n).map(Some).ok_or(()),
            None => Ok(None),
        }
    }

    pub(crate) fn stick_track(&mut self, slot: u8, key: &Sample<'_>, table: Option<&str>) {
        let state = &self.ctx.state;
        let Some(s) = self.stick.as_deref_mut() else {
            return;
        };
        let mut tables = state.stick.borrow_mut();
        let tid = match table {
            Some(n) => tables.id(n),
            None => self
                .backend
                .and_then(|b| tables.id(b))
                .or_else(|| tables.id(self.frontend)),
        };
        let Some(tid) = tid else { return };
        // A counter the connection already tracks is left alone (the first rule wins).
        if s.conn.handle(slot).is_some() || s.req.handle(slot).is_some() {
            return;
        }
        let now = state.board.now_ms();
        let from = s.phase;
        // Layer-4 connection and session rules track for the connection (HAProxy's session
        // counters); the others for the current request (its stream).
        let (set, count_as) = match from {
            // The session is counted once the connection rules accept it (`Event::Session`).
            TrackFrom::TcpConnection => (&mut s.conn, TrackFrom::TcpContent),
            TrackFrom::TcpSession => (&mut s.conn, from),
            TrackFrom::TcpContent | TrackFrom::HttpRequest => (&mut s.req, from),
        };
        set.track(&mut tables, slot, tid, &key_of(key), count_as, now);
        drop(tables);
        changed(state);
    }

    pub(crate) fn stick_inc_gpc(&mut self, slot: u8, idx: u32) {
        let state = &self.ctx.state;
        let Some(s) = self.stick.as_deref() else {
            return;
        };
        let gpc = match idx {
            0 => ringlb_stick::DataType::Gpc0,
            1 => ringlb_stick::DataType::Gpc1,
            _ => return,
        };
        let now = state.board.now_ms();
        s.view()
            .inc_gpc(&mut state.stick.borrow_mut(), slot, gpc, now);
        changed(state);
    }

    pub(crate) fn stick_set_gpt(&mut self, slot: u8, idx: u32, value: i64) {
        let state = &self.ctx.state;
        let Some(s) = self.stick.as_deref() else {
            return;
        };
        if idx != 0 {
            return;
        }
        let now = state.board.now_ms();
        s.view()
            .set_gpt0(&mut state.stick.borrow_mut(), slot, value, now);
        changed(state);
    }

    pub(crate) fn stick_fetch(
        &self,
        f: &ScFetch,
        key: Option<std::net::IpAddr>,
    ) -> Option<Sample<'static>> {
        let state = &self.ctx.state;
        let s = self.stick.as_deref()?;
        let mut tables = state.stick.borrow_mut();
        let named = self.named_table(&tables, f.table.as_deref()).ok()?;
        if f.table_level {
            let t = named.or_else(|| self.current_table(&tables))?;
            let v = match &*f.what {
                "avl" => tables.table_avl(t),
                _ => tables.table_cnt(t),
            };
            return v.map(Sample::Int);
        }
        let mut buf = [0u8; 64];
        let prefix = if f.by_src { "src_" } else { "sc_" };
        let (scope, kind) = parse_fetch(fetch_name(&mut buf, prefix, &f.what, f.idx))?;
        let now = state.board.now_ms();
        let sample = key.map(Sample::Ip);
        let ks = sample.as_ref().map(key_of);
        let table = match scope {
            FetchScope::Src => named.or_else(|| self.current_table(&tables)),
            _ => named,
        };
        if matches!(kind, FetchKind::Tracked) && f.slot.is_none() {
            return None;
        }
        let v = tables.fetch(&s.view(), scope, kind, f.slot, table, ks.as_ref(), now);
        drop(tables);
        if mutates(kind) {
            changed(state);
        }
        v.map(sample_of)
    }

    pub(crate) fn stick_conv(&self, c: &TableConv, key: &Sample<'_>) -> Option<Sample<'static>> {
        let state = &self.ctx.state;
        let s = self.stick.as_deref()?;
        let mut tables = state.stick.borrow_mut();
        let tid = tables.id(&c.table)?;
        let mut buf = [0u8; 64];
        let (scope, kind) = parse_fetch(fetch_name(&mut buf, "table_", &c.what, None))?;
        let now = state.board.now_ms();
        let ks = key_of(key);
        let v = tables.fetch(&s.view(), scope, kind, None, Some(tid), Some(&ks), now);
        drop(tables);
        if mutates(kind) {
            changed(state);
        }
        v.map(sample_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_names_follow_the_stick_crate() {
        let mut b = [0u8; 64];
        assert_eq!(
            fetch_name(&mut b, "sc_", "http_req_rate", None),
            "sc_http_req_rate"
        );
        assert_eq!(fetch_name(&mut b, "sc_", "get_gpc", Some(1)), "sc_get_gpc1");
        assert_eq!(
            fetch_name(&mut b, "src_", "gpc_rate", Some(0)),
            "src_gpc0_rate"
        );
        assert!(parse_fetch(fetch_name(&mut b, "table_", "conn_cur", None)).is_some());
    }

    #[test]
    fn mesh_links_every_ordered_pair_once() {
        let m = mesh(3);
        assert_eq!(m.len(), 3);
        for (i, l) in m.iter().enumerate() {
            let mut to: Vec<usize> = l.to.iter().map(|(p, _)| *p).collect();
            let mut from: Vec<usize> = l.from.iter().map(|(p, _)| *p).collect();
            to.sort_unstable();
            from.sort_unstable();
            let others: Vec<usize> = (0..3).filter(|p| *p != i).collect();
            assert_eq!(to, others);
            assert_eq!(from, others);
        }
    }
}
