//! One peer connection as a state machine without sockets: the engine feeds it the bytes it
//! reads and `now`, sends what [`Session::take_output`] returns, and acts on its [`Event`]s.
//!
//! ```text
//!  connect():  Hello sent ──status 200──▶ Established ──timeout / error / EOF──▶ Closed
//!                 └──────other status───────────────────────────────────────────▲
//!  accept():   AwaitHello ──valid hello (answer 200)──▶ Established              │
//!                 └──────bad hello (answer 50x)──────────────────────────────────┘
//! ```
//!
//! Established, both sides may send at any time: table definitions followed by updates of
//! that table, acks of received updates, resync requests (answered by a full "teach" that
//! ends with "resync finished" or "partial", itself answered by "resync confirm"), and a
//! heartbeat after 3 s without sending. A side that hears nothing for 5 s closes (haproxy
//! 2.6's `PEER_HEARTBEAT_TIMEOUT` and reconnect timeout).

use ringlb_stick::{PeerEntry, TableConfig};

use crate::bridge;
use crate::handshake::{self, Hello, Status};
use crate::wire::{self, Frame, TableDef, Update, CLASS_CONTROL, CLASS_ERROR};

/// Send a heartbeat after this long without sending.
pub const HEARTBEAT_MS: u64 = 3000;
/// Close after this long without receiving.
pub const TIMEOUT_MS: u64 = 5000;
/// Longest unread input kept (a message body is at most `wire::MAX_BODY`).
const MAX_INPUT: usize = wire::MAX_BODY + 64;

/// What a session needs to know about its side.
#[derive(Debug, Clone)]
pub struct Local {
    /// This process's peer name (`localpeer`, `-L`, or the host name).
    pub name: String,
    pub pid: u32,
    /// The other peers of the section (who may connect).
    pub peers: Vec<String>,
    /// The replicated tables, in a fixed order (their index is the table number in events).
    pub tables: Vec<TableConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting side: hello sent, waiting for the status line.
    AwaitStatus,
    /// Accepting side: waiting for the hello.
    AwaitHello,
    Established,
    Closed,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The other side refused our hello with this status.
    Refused(Status),
    /// We refused its hello with this status.
    RefusedHello(Status),
    /// Nothing received for [`TIMEOUT_MS`].
    Timeout,
    /// The other side closed the connection.
    Eof,
    /// Undecodable input, or the other side reported a protocol error.
    Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake succeeded; `remote` is the other peer's name.
    Established {
        remote: String,
    },
    /// Entries learned for local table `table`.
    Learned {
        table: usize,
        entries: Vec<PeerEntry>,
    },
    /// The other side asks for everything we know: push it with [`Session::push`]
    /// (`timed`), then [`Session::finish_teach`].
    TeachRequested,
    /// A teach is complete: the resync we asked for, or the one the process we replace sent
    /// (`partial`: the teacher was not up to date).
    Resynced {
        partial: bool,
    },
    Closed(Close),
}

/// A remote table as its definition announced it.
#[derive(Debug)]
struct Remote {
    def: TableDef,
    /// The local table it maps to (same name and key type).
    local: Option<usize>,
    last_id: u32,
    /// Updates received since the last ack.
    unacked: bool,
}

#[derive(Debug)]
pub struct Session {
    local: Local,
    phase: Phase,
    remote_name: String,
    input: Vec<u8>,
    output: Vec<u8>,
    remotes: Vec<Remote>,
    /// Index into `remotes` of the table the next updates are for.
    current: Option<usize>,
    /// Our table definitions already sent in this session, and the last one sent.
    defined: Vec<bool>,
    sent_current: Option<usize>,
    next_update: Vec<u32>,
    /// We asked for a resync and wait for its end.
    learning: bool,
    last_rx_ms: u64,
    last_tx_ms: u64,
}

impl Session {
    /// The connecting side: the hello for peer `remote` is ready to send.
    pub fn connect(local: Local, remote: &str, now_ms: u64) -> Session {
        let mut s = Session::new(local, Phase::AwaitStatus, now_ms);
        s.remote_name = remote.to_string();
        Hello {
            to: remote.to_string(),
            from: s.local.name.clone(),
            pid: s.local.pid,
            relative_pid: 1,
        }
        .encode(&mut s.output);
        s
    }

    /// The accepting side, waiting for a hello.
    pub fn accept(local: Local, now_ms: u64) -> Session {
        Session::new(local, Phase::AwaitHello, now_ms)
    }

    fn new(local: Local, phase: Phase, now_ms: u64) -> Session {
        let n = local.tables.len();
        Session {
            local,
            phase,
            remote_name: String::new(),
            input: Vec::new(),
            output: Vec::new(),
            remotes: Vec::new(),
            current: None,
            defined: vec![false; n],
            sent_current: None,
            next_update: vec![1; n],
            learning: false,
            last_rx_ms: now_ms,
            last_tx_ms: now_ms,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The other peer's name (known once established on the accepting side).
    pub fn remote(&self) -> &str {
        &self.remote_name
    }

    /// Bytes waiting to be taken.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Ends the session now (the engine closes the connection).
    pub fn abort(&mut self) {
        self.output.clear();
        self.phase = Phase::Closed;
    }

    /// Bytes to send now (taken).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Feeds bytes read from the connection (`&[]` at end of file).
    pub fn receive(&mut self, data: &[u8], now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        if self.phase == Phase::Closed {
            return events;
        }
        if data.is_empty() {
            self.phase = Phase::Closed;
            events.push(Event::Closed(Close::Eof));
            return events;
        }
        self.last_rx_ms = now_ms;
        let mut input = std::mem::take(&mut self.input);
        input.extend_from_slice(data);
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            match self.step(rest, &mut events) {
                Some(0) | None => break,
                Some(n) => used += n,
            }
            if self.phase == Phase::Closed {
                break;
            }
        }
        input.drain(..used.min(input.len()));
        self.input = input;
        if self.input.len() > MAX_INPUT && self.phase != Phase::Closed {
            self.fail(&mut events);
        }
        self.send_acks();
        events
    }

    /// Handles what `buf` starts with; the bytes used (0: incomplete).
    fn step(&mut self, buf: &[u8], events: &mut Vec<Event>) -> Option<usize> {
        match self.phase {
            Phase::Closed => None,
            Phase::AwaitHello => {
                let peers = &self.local.peers;
                let known = |n: &str| peers.iter().any(|p| p == n);
                match handshake::read_hello(buf, &self.local.name, &known) {
                    Ok(None) => Some(0),
                    Ok(Some((hello, n))) => {
                        self.output
                            .extend_from_slice(format!("{}\n", Status::Ok.code()).as_bytes());
                        self.remote_name = hello.from;
                        self.phase = Phase::Established;
                        events.push(Event::Established {
                            remote: self.remote_name.clone(),
                        });
                        Some(n)
                    }
                    Err(st) => {
                        self.output
                            .extend_from_slice(format!("{}\n", st.code()).as_bytes());
                        self.phase = Phase::Closed;
                        events.push(Event::Closed(Close::RefusedHello(st)));
                        None
                    }
                }
            }
            Phase::AwaitStatus => match handshake::read_status(buf) {
                Ok(None) => Some(0),
                Ok(Some((Status::Ok, n))) => {
                    self.phase = Phase::Established;
                    events.push(Event::Established {
                        remote: self.remote_name.clone(),
                    });
                    Some(n)
                }
                Ok(Some((st, _))) | Err(st) => {
                    self.phase = Phase::Closed;
                    events.push(Event::Closed(Close::Refused(st)));
                    None
                }
            },
            Phase::Established => match wire::read_frame(buf) {
                Ok(None) => Some(0),
                Ok(Some((frame, n))) => {
                    self.frame(frame, events);
                    Some(n)
                }
                Err(_) => {
                    self.fail(events);
                    None
                }
            },
        }
    }

    fn frame(&mut self, f: Frame<'_>, events: &mut Vec<Event>) {
        match f {
            Frame::ResyncRequest => events.push(Event::TeachRequested),
            Frame::ResyncFinished | Frame::ResyncPartial => {
                // Asked for or not (the process we replace teaches unasked), the teach is over.
                wire::put_short(CLASS_CONTROL, 3, &mut self.output);
                self.learning = false;
                events.push(Event::Resynced {
                    partial: f == Frame::ResyncPartial,
                });
            }
            Frame::ResyncConfirm | Frame::Heartbeat | Frame::Ack(_) | Frame::Unknown { .. } => {}
            Frame::ProtocolError | Frame::SizeLimit => {
                self.phase = Phase::Closed;
                events.push(Event::Closed(Close::Protocol));
            }
            Frame::Define(body) => match TableDef::decode(body) {
                Some(def) => self.define(def),
                None => self.fail(events),
            },
            Frame::Switch(body) => {
                let id = crate::varint::Reader::new(body).int();
                match self.remotes.iter().position(|r| Some(r.def.id) == id) {
                    Some(i) => self.current = Some(i),
                    None => self.fail(events),
                }
            }
            Frame::Update {
                timed,
                incremental,
                body,
            } => self.update(body, timed, incremental, events),
        }
    }

    fn define(&mut self, def: TableDef) {
        let local = self
            .local
            .tables
            .iter()
            .position(|t| t.name == def.name && bridge::compatible(&def, t));
        let i = match self.remotes.iter().position(|r| r.def.id == def.id) {
            Some(i) => {
                if let Some(r) = self.remotes.get_mut(i) {
                    r.def = def;
                    r.local = local;
                }
                i
            }
            None => {
                self.remotes.push(Remote {
                    def,
                    local,
                    last_id: 0,
                    unacked: false,
                });
                self.remotes.len() - 1
            }
        };
        self.current = Some(i);
    }

    fn update(&mut self, body: &[u8], timed: bool, incremental: bool, events: &mut Vec<Event>) {
        let Some(r) = self.current.and_then(|i| self.remotes.get_mut(i)) else {
            self.fail(events);
            return;
        };
        let Some(u) = Update::decode(&r.def, body, timed, incremental) else {
            self.fail(events);
            return;
        };
        r.last_id = u.id.unwrap_or_else(|| r.last_id.wrapping_add(1));
        r.unacked = true;
        let Some(table) = r.local else { return };
        let Some(entry) = self
            .local
            .tables
            .get(table)
            .and_then(|cfg| bridge::from_update(&u, cfg))
        else {
            return;
        };
        // Consecutive updates of one table travel as one event.
        if let Some(Event::Learned { table: t, entries }) = events.last_mut() {
            if *t == table {
                entries.push(entry);
                return;
            }
        }
        events.push(Event::Learned {
            table,
            entries: vec![entry],
        });
    }

    /// One ack per remote table updated since the last ack.
    fn send_acks(&mut self) {
        if self.phase != Phase::Established {
            return;
        }
        for r in &mut self.remotes {
            if r.unacked {
                r.unacked = false;
                wire::put_ack(r.def.id, r.last_id, &mut self.output);
            }
        }
    }

    fn fail(&mut self, events: &mut Vec<Event>) {
        wire::put_short(CLASS_ERROR, 0, &mut self.output);
        self.phase = Phase::Closed;
        events.push(Event::Closed(Close::Protocol));
    }

    /// Sends entries of local table `table`; `timed` carries their expiry (a teach).
    pub fn push(&mut self, table: usize, entries: &[PeerEntry], timed: bool) {
        if self.phase != Phase::Established || entries.is_empty() {
            return;
        }
        let Some(cfg) = self.local.tables.get(table) else {
            return;
        };
        let def = bridge::definition(table as u64 + 1, cfg);
        // Sent again before each batch, as haproxy 2.6 does (cheap and stateless for both).
        def.encode(&mut self.output);
        if let Some(d) = self.defined.get_mut(table) {
            *d = true;
        }
        self.sent_current = Some(table);
        let Some(next) = self.next_update.get_mut(table) else {
            return;
        };
        let mut first = true;
        for e in entries {
            // A key of another size would shift every later byte of the stream.
            if !bridge::key_fits(cfg, &e.key) {
                continue;
            }
            // The first update of a batch names its id; the others are incremental.
            let id = first.then_some(*next);
            first = false;
            bridge::to_update(e, &def, id, timed).encode(&def, &mut self.output);
            *next = next.wrapping_add(1);
        }
    }

    /// Ends a teach started by [`Event::TeachRequested`].
    pub fn finish_teach(&mut self, partial: bool) {
        if self.phase == Phase::Established {
            wire::put_short(CLASS_CONTROL, if partial { 2 } else { 1 }, &mut self.output);
        }
    }

    /// Asks the other side for everything it knows ([`Event::Resynced`] when done).
    pub fn request_resync(&mut self) {
        if self.phase == Phase::Established {
            self.learning = true;
            wire::put_short(CLASS_CONTROL, 0, &mut self.output);
        }
    }

    /// Whether a resync we asked for is still running.
    pub fn learning(&self) -> bool {
        self.learning
    }

    /// Time passes: a heartbeat when idle, a close when the other side went silent.
    pub fn tick(&mut self, now_ms: u64) -> Option<Event> {
        if self.phase == Phase::Closed {
            return None;
        }
        if now_ms.saturating_sub(self.last_rx_ms) >= TIMEOUT_MS {
            self.phase = Phase::Closed;
            return Some(Event::Closed(Close::Timeout));
        }
        if self.phase == Phase::Established
            && self.output.is_empty()
            && now_ms.saturating_sub(self.last_tx_ms) >= HEARTBEAT_MS
        {
            wire::put_short(CLASS_CONTROL, 4, &mut self.output);
        }
        None
    }

    /// The engine sent bytes at `now` (resets the heartbeat timer).
    pub fn sent(&mut self, now_ms: u64) {
        self.last_tx_ms = now_ms;
    }
}
