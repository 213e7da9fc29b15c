//! `peers` on the control shard (issue #7, ADR 0007): stick-table replication with other
//! ringlb or haproxy 2.6 processes over haproxy's peers protocol (`ringlb-peers`).
//!
//! Per peers section: a listener on the local peer's address, one connector per remote peer
//! (reconnect with backoff), and one task per connection driving a sans-IO
//! [`Session`]. Every [`COLLECT_EVERY`] the control shard asks the worker shards for the
//! entries they own that changed locally (`ControlMsg::CollectPeerUpdates`) and pushes them
//! to every connected peer; entries learned from a peer go to the shards as
//! `ControlMsg::ApplyPeerEntries`, where each key's owner applies them (as `set table`).
//! On connect, a peer is sent the local changes it missed while apart, and the first peer
//! reached is asked for a full resync (a restarted process gets the tables back).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use ringlb_config::model::Config;
use ringlb_peers::session::{Close, Event, Local, Phase, Session};
use ringlb_shard::{ControlMsg, StatsBoard, Topology};
use ringlb_stick::{PeerEntry, TableConfig};

use crate::cli::Bus;

/// How often local changes are collected from the shards and pushed.
pub const COLLECT_EVERY: Duration = Duration::from_millis(100);
/// A connection task wakes at least this often (heartbeats, pushes, replaced sessions).
const POLL: Duration = Duration::from_millis(50);
/// Reconnect backoff: first delay and cap (haproxy retries every 5 s).
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the shards' answer to a collection.
const COLLECT_WAIT: Duration = Duration::from_secs(2);
/// Entries kept per disconnected peer (beyond, new keys are not kept; a restarted peer
/// gets everything by its resync anyway).
const MAX_KEPT: usize = 200_000;
/// Bytes waiting for a slow peer beyond which its session is ended.
const MAX_BACKLOG: usize = 16 << 20;
/// How often a new process tries to bind the peer address its predecessor still holds.
const BIND_RETRY: Duration = Duration::from_millis(100);
/// How long a stopping process tries to reach the process replacing it (haproxy: 5 s).
const LOCAL_TEACH_WAIT: Duration = Duration::from_secs(2);
/// A resync asked for and not finished by then is given up (haproxy: 5 s).
const RESYNC_GIVE_UP: Duration = Duration::from_secs(5);

/// One peers section as the control shard runs it.
#[derive(Debug, Clone)]
pub struct PeersPlan {
    pub section: String,
    pub local: String,
    pub bind: SocketAddr,
    pub remotes: Vec<(String, SocketAddr)>,
    /// The tables declared with `peers <section>`, in topology order.
    pub tables: Vec<TableConfig>,
}

/// The peers sections to run, and warnings to print (a section without the local peer is
/// dropped, as haproxy does). Errors: an address that does not resolve.
pub fn plan(cfg: &Config, topo: &Topology) -> Result<(Vec<PeersPlan>, Vec<String>), String> {
    let local = cfg
        .global
        .localpeer
        .clone()
        .unwrap_or_else(crate::mail::hostname);
    let mut plans = Vec::new();
    let mut warnings = Vec::new();
    for p in cfg.peers.iter().filter(|p| !p.disabled) {
        let tables: Vec<TableConfig> = topo
            .stick_tables
            .iter()
            .filter(|(_, t)| t.peers.as_deref() == Some(p.name.as_str()))
            .filter_map(|(n, t)| {
                let c = TableConfig::from_model(n, t).ok()?;
                Some(if topo.stick_rule_tables.iter().any(|x| x == n) {
                    c.for_stick_rules()
                } else {
                    c
                })
            })
            .collect();
        let me = p.peers.iter().find(|e| e.name == local);
        let bind = match (me, &p.bind) {
            (Some(e), _) if !e.address.is_empty() => Some(e.address.clone()),
            (Some(_), Some(b)) => Some(b.address.clone()),
            _ => None,
        };
        let Some(bind) = bind else {
            warnings.push(format!(
                "config : Removing incomplete section 'peers {}' (no peer named '{local}').",
                p.name
            ));
            continue;
        };
        if tables.is_empty() {
            continue; // nothing to replicate
        }
        let mut remotes = Vec::new();
        for e in p.peers.iter().filter(|e| e.name != local) {
            if e.address.is_empty() {
                continue;
            }
            remotes.push((e.name.clone(), resolve(&e.address)?));
        }
        plans.push(PeersPlan {
            section: p.name.clone(),
            local: local.clone(),
            bind: resolve(&bind)?,
            remotes,
            tables,
        });
    }
    Ok((plans, warnings))
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let a = addr.strip_prefix("ipv4@").unwrap_or(addr);
    a.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| format!("peers : cannot resolve address '{addr}'."))
}

/// A connected peer, as the hub knows it.
struct Live {
    id: u64,
    session: Rc<RefCell<Session>>,
}

/// What `show peers` tells of a remote peer.
#[derive(Default, Clone)]
struct PeerStatus {
    /// haproxy's status words: NONE, CONN, ESTA, RETR, PROT, VERS, NAME, UNKN.
    last_status: &'static str,
    last_hdshk: Option<Instant>,
    new_conn: u32,
    proto_err: u32,
}

/// Local changes kept for a peer, the latest per (table, key).
type Backlog = HashMap<(usize, Box<[u8]>), PeerEntry>;

/// A section's shared state on the control shard.
struct Hub {
    status: RefCell<HashMap<String, PeerStatus>>,
    /// Per remote peer not connected: local changes to send when it connects.
    backlog: RefCell<HashMap<String, Backlog>>,
    /// The listener is bound (a stopping process waits for it to close before teaching the
    /// process that replaces it, which binds the same address).
    listening: Cell<bool>,
    plan: PeersPlan,
    bus: Rc<Bus>,
    board: Arc<StatsBoard>,
    live: RefCell<HashMap<String, Live>>,
    next_id: Cell<u64>,
    /// A full resync was obtained (or given up); until then the first peer reached is asked.
    resynced: Cell<bool>,
    resync_started: Cell<Option<Instant>>,
    started: Instant,
    stop: PeersStop,
}

/// What every section shares: the stop flag, and the right to collect (collections use the
/// stats board's one slot per shard: one at a time, whatever the section).
///
/// On a soft or hard stop the process leaves the mesh at once (closing its sessions and its
/// listener), so that a new process with the same peer name takes its place without the two
/// replacing each other at the remote peers.
#[derive(Clone)]
pub struct PeersStop(Rc<Cell<bool>>, Rc<glommio::sync::Semaphore>);

impl Default for PeersStop {
    fn default() -> PeersStop {
        PeersStop(
            Rc::new(Cell::new(false)),
            Rc::new(glommio::sync::Semaphore::new(1)),
        )
    }
}

impl PeersStop {
    pub fn stop(&self) {
        self.0.set(true);
    }

    fn stopped(&self) -> bool {
        self.0.get()
    }

    /// Resolves once stopped (checked every [`POLL`]).
    async fn wait(&self) {
        while !self.stopped() {
            glommio::timer::sleep(POLL).await;
        }
    }
}

/// Starts the tasks of one peers section on the control shard.
pub fn spawn(
    plan: PeersPlan,
    bus: Rc<Bus>,
    board: Arc<StatsBoard>,
    stop: PeersStop,
) -> PeersHandle {
    let hub = Rc::new(Hub {
        status: RefCell::new(HashMap::new()),
        backlog: RefCell::new(HashMap::new()),
        listening: Cell::new(false),
        stop,
        plan,
        bus,
        board,
        live: RefCell::new(HashMap::new()),
        next_id: Cell::new(1),
        resynced: Cell::new(false),
        resync_started: Cell::new(None),
        started: Instant::now(),
    });
    glommio::spawn_local(listen(hub.clone())).detach();
    for (i, (name, addr)) in hub.plan.remotes.clone().into_iter().enumerate() {
        glommio::spawn_local(connector(hub.clone(), name, addr, i as u64)).detach();
    }
    glommio::spawn_local(pusher(hub.clone())).detach();
    PeersHandle(hub)
}

/// The runtime socket's view of a running peers section (`show peers`).
#[derive(Clone)]
pub struct PeersHandle(Rc<Hub>);

impl PeersHandle {
    pub fn section(&self) -> &str {
        &self.0.plan.section
    }

    /// `show peers` for this section: haproxy's first lines and field names, without its
    /// internal pointers and per-table counters.
    pub fn show(&self, out: &mut String) {
        use std::fmt::Write;
        let hub = &self.0;
        let base = 0x5600_0100_0000u64 + (Rc::as_ptr(hub) as u64 & 0xff_ffff) * 0x100;
        let _ = writeln!(
            out,
            "0x{base:x}: id={} disabled=0 flags=0x0 resync={}",
            hub.plan.section,
            if hub.resynced.get() {
                "done"
            } else {
                "pending"
            }
        );
        let _ = writeln!(
            out,
            "  0x{:x}: id={}(local,inactive) addr={} last_status=NONE last_hdshk=<NEVER>",
            base + 0x10,
            hub.plan.local,
            hub.plan.bind
        );
        let now = Instant::now();
        let status = hub.status.borrow();
        for (i, (name, addr)) in hub.plan.remotes.iter().enumerate() {
            let st = status.get(name).cloned().unwrap_or_default();
            let active = if hub.connected(name) {
                "active"
            } else {
                "inactive"
            };
            let hdshk = st
                .last_hdshk
                .map_or("<NEVER>".to_string(), |t| human_time(now.duration_since(t)));
            let _ = writeln!(
                out,
                "  0x{:x}: id={name}(remote,{active}) addr={addr} last_status={} last_hdshk={hdshk}",
                base + 0x20 * (i as u64 + 2),
                if st.last_status.is_empty() { "NONE" } else { st.last_status },
            );
            let _ = writeln!(
                out,
                "        new_conn={} proto_err={}",
                st.new_conn, st.proto_err
            );
        }
    }
}

/// Elapsed time as haproxy prints it below an hour (`human_time`: `1s`, `2m3s`); longer
/// spans follow the same pattern (`1h2m`, `3d4h`).
fn human_time(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

impl Hub {
    fn set_status(&self, remote: &str, f: impl FnOnce(&mut PeerStatus)) {
        f(self
            .status
            .borrow_mut()
            .entry(remote.to_string())
            .or_default());
    }
}

impl Hub {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn local(&self) -> Local {
        Local {
            name: self.plan.local.clone(),
            pid: std::process::id(),
            peers: self.plan.remotes.iter().map(|r| r.0.clone()).collect(),
            tables: self.plan.tables.clone(),
        }
    }

    fn connected(&self, remote: &str) -> bool {
        self.live.borrow().contains_key(remote)
    }

    /// Entries of our tables from the shards: the local changes, or everything (`full`).
    async fn collect(&self, full: bool) -> Vec<(usize, Vec<PeerEntry>)> {
        let Ok(_permit) = self.stop.1.acquire_permit(1).await else {
            return Vec::new();
        };
        let seq = self.board.next_seq();
        let tables = self.plan.tables.iter().map(|t| t.name.clone()).collect();
        self.bus
            .send(ControlMsg::CollectPeerUpdates { seq, full, tables })
            .await;
        let deadline = Instant::now() + COLLECT_WAIT;
        let rows = loop {
            if let Some(r) = self.board.try_collect_peer(seq) {
                break r;
            }
            if Instant::now() >= deadline {
                return Vec::new();
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        };
        rows.into_iter()
            .filter_map(|(name, entries)| {
                let i = self.plan.tables.iter().position(|t| t.name == name)?;
                Some((i, entries))
            })
            .collect()
    }
}

/// Accepts connections from the other peers (binding again until the address is free).
async fn listen(hub: Rc<Hub>) {
    // The address may still be held by the process this one replaces (a reload): retry.
    let listener = loop {
        if hub.stop.stopped() {
            return;
        }
        match TcpListener::bind(hub.plan.bind) {
            Ok(l) => break l,
            Err(_) => glommio::timer::sleep(BIND_RETRY).await,
        }
    };
    hub.listening.set(true);
    let _closed = Closing(&hub.listening);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            hub.stop.wait().await;
            None
        })
        .await;
        match accepted {
            None => return, // stopped: the listener closes
            Some(Ok(stream)) => {
                let session = Session::accept(hub.local(), hub.now_ms());
                glommio::spawn_local(connection(hub.clone(), stream, session)).detach();
            }
            Some(Err(_)) => glommio::timer::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Clears the listening flag when the listener task ends (with the listener).
struct Closing<'a>(&'a Cell<bool>);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Keeps a connection to `remote` while none exists, with a growing delay between attempts.
async fn connector(hub: Rc<Hub>, remote: String, addr: SocketAddr, salt: u64) {
    // A spread start, so that two peers do not connect to each other at the same moment.
    let mut rng = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id());
    let mut jitter = move |max_ms: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Duration::from_millis(rng % max_ms.max(1))
    };
    glommio::timer::sleep(jitter(300)).await;
    let mut backoff = BACKOFF_MIN;
    while !hub.stop.stopped() {
        if hub.connected(&remote) {
            glommio::timer::sleep(Duration::from_millis(500)).await;
            continue;
        }
        hub.set_status(&remote, |s| s.last_status = "CONN");
        let established = match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await {
            Ok(stream) => {
                let session = Session::connect(hub.local(), &remote, hub.now_ms());
                connection(hub.clone(), stream, session).await
            }
            Err(_) => false,
        };
        if established {
            backoff = BACKOFF_MIN;
        } else {
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        glommio::timer::sleep(backoff + jitter(backoff.as_millis() as u64 / 2)).await;
    }
}

/// Drives one connection until it ends; true if it was established.
async fn connection(hub: Rc<Hub>, mut stream: TcpStream, session: Session) -> bool {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    // A peer that stops reading is dropped like one that stops talking (haproxy: 5 s).
    let _ = stream.set_write_timeout(Some(Duration::from_millis(
        ringlb_peers::session::TIMEOUT_MS,
    )));
    let id = hub.next_id.get();
    hub.next_id.set(id + 1);
    let session = Rc::new(RefCell::new(session));
    let mut remote: Option<String> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let out = session.borrow_mut().take_output();
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                break;
            }
            session.borrow_mut().sent(hub.now_ms());
        }
        if session.borrow().phase() == Phase::Closed || hub.stop.stopped() {
            break;
        }
        // Replaced by a newer connection with the same peer (haproxy keeps the newest).
        if let Some(r) = &remote {
            if hub.live.borrow().get(r).is_none_or(|l| l.id != id) {
                break;
            }
        }
        let events = match stream.read(&mut buf).await {
            Ok(n) => {
                let data = buf.get(..n).unwrap_or_default();
                session.borrow_mut().receive(data, hub.now_ms())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                session
                    .borrow_mut()
                    .tick(hub.now_ms())
                    .into_iter()
                    .collect()
            }
            Err(_) => break,
        };
        for ev in events {
            match ev {
                Event::Established { remote: r } if r == hub.plan.local => {
                    // The process we replace, about to teach us its tables: learn, do not
                    // push to it nor ask it anything.
                }
                Event::Established { remote: r } => {
                    hub.set_status(&r, |s| {
                        s.last_status = "ESTA";
                        s.last_hdshk = Some(Instant::now());
                        s.new_conn += 1;
                    });
                    hub.live.borrow_mut().insert(
                        r.clone(),
                        Live {
                            id,
                            session: session.clone(),
                        },
                    );
                    // What changed here while we were apart (not the whole table: our copy
                    // of entries the peer changed since would overwrite its newer values).
                    let missed = hub.backlog.borrow_mut().remove(&r).unwrap_or_default();
                    for (t, entries) in by_table(missed) {
                        session.borrow_mut().push(t, &entries, false);
                    }
                    remote = Some(r);
                    maybe_resync(&hub, &session);
                }
                Event::Learned { table, entries } => {
                    if let Some(cfg) = hub.plan.tables.get(table) {
                        hub.bus
                            .send(ControlMsg::ApplyPeerEntries {
                                table: cfg.name.clone(),
                                entries,
                            })
                            .await;
                    }
                }
                Event::TeachRequested => {
                    for (t, entries) in hub.collect(true).await {
                        session.borrow_mut().push(t, &entries, true);
                    }
                    session.borrow_mut().finish_teach(false);
                }
                Event::Resynced { .. } => hub.resynced.set(true),
                Event::Closed(why) => {
                    let name = session.borrow().remote().to_string();
                    if !name.is_empty() {
                        hub.set_status(&name, |s| match why {
                            Close::Refused(st) => s.last_status = status_word(st),
                            Close::Protocol => s.proto_err += 1,
                            Close::RefusedHello(_) | Close::Timeout | Close::Eof => {}
                        });
                    }
                }
            }
        }
    }
    if let Some(r) = &remote {
        let mut live = hub.live.borrow_mut();
        if live.get(r).is_some_and(|l| l.id == id) {
            live.remove(r);
        }
    }
    remote.is_some()
}

/// Soft stop (ADR 0007): hands every section's tables to the process replacing this one,
/// which listens on the same peer address once this one's listener is closed (haproxy's
/// "resync from local old process"). Bounded by [`LOCAL_TEACH_WAIT`] per section; nothing
/// happens when no process takes the address. Call after [`PeersStop::stop`] and before the
/// shards stop (they hold the tables).
pub async fn teach_successor(handles: &[PeersHandle]) {
    for h in handles {
        let hub = &h.0;
        let deadline = Instant::now() + LOCAL_TEACH_WAIT;
        // Our own listener first closes (or we would teach ourselves).
        while hub.listening.get() && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        while Instant::now() < deadline {
            match TcpStream::connect_timeout(hub.plan.bind, Duration::from_millis(200)).await {
                Ok(stream) => {
                    teach_local(hub, stream, deadline).await;
                    break;
                }
                Err(_) => glommio::timer::sleep(BIND_RETRY).await,
            }
        }
    }
}

/// One teach to the process replacing this one: hello as ourselves, everything we own
/// (timed), "resync finished", then close.
async fn teach_local(hub: &Hub, mut stream: TcpStream, deadline: Instant) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(LOCAL_TEACH_WAIT));
    let mut session = Session::connect(hub.local(), &hub.plan.local, hub.now_ms());
    let mut taught = false;
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        let out = session.take_output();
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
        if taught || session.phase() == Phase::Closed {
            return; // everything written: the new process reads it to the end
        }
        let events = match stream.read(&mut buf).await {
            Ok(n) => session.receive(buf.get(..n).unwrap_or_default(), hub.now_ms()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Vec::new(),
            Err(_) => return,
        };
        for ev in events {
            if let Event::Established { .. } = ev {
                for (t, entries) in hub.collect(true).await {
                    session.push(t, &entries, true);
                }
                session.finish_teach(false);
                taught = true;
            }
        }
    }
}

/// haproxy's word for a refused handshake (`show peers` `last_status`).
fn status_word(st: ringlb_peers::Status) -> &'static str {
    use ringlb_peers::Status as S;
    match st {
        S::Ok => "ESTA",
        S::TryAgain => "RETR",
        S::ProtocolError => "PROT",
        S::BadVersion => "VERS",
        S::NotMe => "NAME",
        S::UnknownPeer => "UNKN",
    }
}

/// The first peer reached after start is asked for everything it knows.
fn maybe_resync(hub: &Hub, session: &RefCell<Session>) {
    if hub.resynced.get() {
        return;
    }
    let now = Instant::now();
    match hub.resync_started.get() {
        Some(t) if now.duration_since(t) < RESYNC_GIVE_UP => return, // another peer teaches
        Some(_) => {
            hub.resynced.set(true);
            return;
        }
        None => {}
    }
    hub.resync_started.set(Some(now));
    session.borrow_mut().request_resync();
}

/// Pushes local changes to every connected peer.
async fn pusher(hub: Rc<Hub>) {
    while !hub.stop.stopped() {
        glommio::timer::sleep(COLLECT_EVERY).await;
        let batches = hub.collect(false).await;
        if batches.is_empty() {
            continue;
        }
        for (remote, _) in &hub.plan.remotes {
            let live = hub.live.borrow().get(remote).map(|l| l.session.clone());
            let Some(s) = live else {
                hub.keep_for(remote, &batches);
                continue;
            };
            let mut s = s.borrow_mut();
            if s.pending_output() > MAX_BACKLOG {
                // It does not keep up: end the session; the peer asks for a resync when
                // it reconnects only if it restarted, so keep these for the next session.
                s.abort();
                drop(s);
                hub.keep_for(remote, &batches);
                continue;
            }
            for (t, entries) in &batches {
                s.push(*t, entries, false);
            }
        }
    }
}

/// A backlog's entries grouped per table.
fn by_table(b: Backlog) -> Vec<(usize, Vec<PeerEntry>)> {
    let mut out: Vec<(usize, Vec<PeerEntry>)> = Vec::new();
    for ((t, _), e) in b {
        match out.iter_mut().find(|(x, _)| *x == t) {
            Some((_, v)) => v.push(e),
            None => out.push((t, vec![e])),
        }
    }
    out
}

impl Hub {
    /// Local changes for a peer not connected now: the latest of each entry, sent when it
    /// connects (haproxy resumes from the last update the peer acknowledged). Bounded.
    fn keep_for(&self, remote: &str, batches: &[(usize, Vec<PeerEntry>)]) {
        let mut backlog = self.backlog.borrow_mut();
        let b = backlog.entry(remote.to_string()).or_default();
        for (t, entries) in batches {
            for e in entries {
                if b.len() >= MAX_KEPT && !b.contains_key(&(*t, e.key.clone())) {
                    continue;
                }
                b.insert((*t, e.key.clone()), e.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(text: &str) -> (Vec<PeersPlan>, Vec<String>) {
        let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
        let topo = Topology::from_config(&loaded.config).unwrap();
        plan(&loaded.config, &topo).unwrap()
    }

    const T: &str =
        "defaults\n mode http\n timeout connect 1s\n timeout client 1s\n timeout server 1s\n\
                     frontend fe\n bind 127.0.0.1:1\n http-request track-sc0 src table tbl\n\
                     backend tbl\n stick-table type ip size 1k peers p store gpc0\n";

    #[test]
    fn peer_lines_name_the_listener_and_the_remotes() {
        let (plans, warnings) = plan_of(&format!(
            "global\n localpeer me\n{T}peers p\n peer other 127.0.0.1:2001\n peer me 127.0.0.1:2000\n"
        ));
        assert!(warnings.is_empty());
        let p = &plans[0];
        assert_eq!((p.section.as_str(), p.local.as_str()), ("p", "me"));
        assert_eq!(p.bind, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(
            p.remotes,
            vec![("other".to_string(), "127.0.0.1:2001".parse().unwrap())]
        );
        assert_eq!(p.tables.len(), 1);
        assert_eq!(p.tables[0].name, "tbl");
    }

    #[test]
    fn bind_with_an_addressless_server_is_the_local_peer() {
        let (plans, _) = plan_of(&format!(
            "global\n localpeer me\n{T}peers p\n bind 127.0.0.1:2000\n server me\n server other 127.0.0.1:2001\n"
        ));
        assert_eq!(plans[0].bind, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(plans[0].remotes.len(), 1);
    }

    #[test]
    fn a_section_without_the_local_peer_is_dropped_with_haproxys_warning() {
        let (plans, warnings) = plan_of(&format!(
            "global\n localpeer stranger\n{T}peers p\n peer a 127.0.0.1:2000\n"
        ));
        assert!(plans.is_empty());
        assert_eq!(
            warnings,
            ["config : Removing incomplete section 'peers p' (no peer named 'stranger')."]
        );
        // A disabled section, or one no table uses, is not run either (silently).
        let (plans, w) = plan_of(&format!(
            "global\n localpeer a\n{T}peers p\n peer a 127.0.0.1:2000\n disabled\n"
        ));
        assert!(plans.is_empty() && w.is_empty());
    }

    #[test]
    fn human_time_words() {
        assert_eq!(human_time(Duration::from_secs(5)), "5s");
        assert_eq!(human_time(Duration::from_secs(65)), "1m5s");
        assert_eq!(human_time(Duration::from_secs(3720)), "1h2m");
        assert_eq!(human_time(Duration::from_secs(90000)), "1d1h");
    }
}
