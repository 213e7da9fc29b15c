//! What a shard knows about its live streams and recent protocol errors, for the runtime
//! socket's `show sess`, `shutdown session`, `show activity`, `show pools` and `show errors`.
//!
//! The registry is a slab owned by the shard (`RefCell`, no lock, nothing shared): a client
//! connection takes a slot when its task starts and gives it back when the task ends, the slab
//! growing only when more connections are open at once than ever before. Sessions update their
//! slot through plain `Cell`s of the slab (backend and server once chosen, requests served);
//! nothing else happens on the request path. The control shard asks every shard for a copy
//! (`ControlMsg::Engine`) and merges the answers.
//!
//! It also holds the shard's byte meters of HTTP/1 connections, one per frontend and per
//! backend (the `h1` stats module's `h1_bytes_in`/`h1_bytes_out`, see `counters::H1Conn`).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Instant, SystemTime};

use ringlb_uring::IoMeter;

/// Most captures a shard keeps: one per proxy and direction, as haproxy.
const MAX_CAPTURES: usize = 1024;

/// The bits of a session id that number the slot; the bits above carry the shard and a
/// generation, so an id never names a later stream that reuses the slot.
const SLOT_BITS: u32 = 24;
const GEN_BITS: u32 = 20;

/// Bytes of one registry slot (`show pools`).
pub const SLOT_SIZE: usize = std::mem::size_of::<Option<Slot>>();

/// One live stream, as the registry holds it.
#[derive(Debug)]
struct Slot {
    id: u64,
    uniq: u64,
    frontend: usize,
    bind: usize,
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    fd: i32,
    accepted: Instant,
    accepted_unix: SystemTime,
    backend: Cell<Option<usize>>,
    server: Cell<Option<usize>>,
    fd_back: Cell<i32>,
    requests: Cell<u64>,
    killed: Cell<bool>,
    /// The session waits for a response head and answers a kill itself (502, `KH`, as
    /// haproxy): `kill` sets `kill_soft` instead of `killed`.
    cooperative: Cell<bool>,
    kill_soft: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// A copy of one stream for the control shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessSnap {
    pub id: u64,
    pub uniq: u64,
    pub shard: usize,
    pub frontend: usize,
    pub bind: usize,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    pub fd: i32,
    pub age_ms: u64,
    pub accepted_unix_us: u64,
    pub backend: Option<usize>,
    pub server: Option<usize>,
    /// The server connection's descriptor while the stream holds one (-1: none).
    pub fd_back: i32,
    pub requests: u64,
}

/// An invalid request (on a frontend) or response (on a backend) as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub response: bool,
    pub frontend: usize,
    pub backend: Option<usize>,
    pub server: Option<usize>,
    /// Process-wide event number (`StatsBoard::next_error_event`).
    pub event: u32,
    pub src: Option<SocketAddr>,
    pub when_unix_us: u64,
    /// The message as received, at most `tune.bufsize` bytes.
    pub bytes: Vec<u8>,
    /// Offset of the first byte haproxy's parser would refuse, and its state there.
    pub error_pos: usize,
    pub msg_state: (&'static str, u32),
}

/// What a shard measured since it started (`show activity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub tasks: u64,
    pub loops: u64,
    pub runtime_us: u64,
    pub accepted: u64,
    pub streams: u64,
    pub ring_in_flight: u64,
}

/// A shard's pools (`show pools`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pools {
    /// io_uring provided receive buffers: count, size, lent to the program now.
    pub rx_bufs: u64,
    pub rx_buf_size: u64,
    pub rx_lent: u64,
    /// Session slots of the registry: allocated, in use.
    pub sess_slots: u64,
    pub sess_used: u64,
    /// Per-request working memory kept free for reuse (`http::Scratch`).
    pub scratch_free: u64,
}

/// The registry of one shard; shared by its epochs (`Ctx::live`).
#[derive(Debug)]
pub struct Live {
    shard: usize,
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<u32>>,
    gens: RefCell<Vec<u32>>,
    next_uniq: Cell<u64>,
    pub accepted: Cell<u64>,
    streams: Cell<u64>,
    captures: RefCell<Vec<Capture>>,
    /// Per frontend and per backend: the bytes this shard's HTTP/1 connections of it moved
    /// (`h1_bytes_in`/`h1_bytes_out`), added by the sockets themselves ([`IoMeter`]).
    h1_meters: [RefCell<Vec<Rc<IoMeter>>>; 2],
}

/// Which side of a proxy an HTTP/1 connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client connections of a frontend.
    Front = 0,
    /// Server connections of a backend.
    Back = 1,
}

/// Where a session finds its slot (`Copy`; no reference held across awaits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessRef {
    index: u32,
    id: u64,
}

impl SessRef {
    /// A reference to no slot (sessions not registered, tests).
    pub const NONE: SessRef = SessRef {
        index: u32::MAX,
        id: 0,
    };
}

impl Live {
    pub fn new(shard: usize) -> Live {
        Live {
            shard,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            gens: RefCell::new(Vec::new()),
            next_uniq: Cell::new(1),
            accepted: Cell::new(0),
            streams: Cell::new(0),
            captures: RefCell::new(Vec::new()),
            h1_meters: [RefCell::new(Vec::new()), RefCell::new(Vec::new())],
        }
    }

    /// The meter of `side` of proxy `index` (frontend or backend index) on this shard: made
    /// the first time a connection of it asks, then shared by all (a reference count).
    pub fn h1_meter(&self, side: Side, index: usize) -> Rc<IoMeter> {
        let mut v = self.h1_meters[side as usize].borrow_mut();
        while v.len() <= index {
            v.push(Rc::new(IoMeter::default()));
        }
        v[index].clone()
    }

    /// A new epoch (an in-process reload) starts new counters: its connections get new
    /// meters (the old epoch's connections keep theirs, whose counters nobody reads).
    pub fn new_h1_meters(&self) {
        for m in &self.h1_meters {
            m.borrow_mut().clear();
        }
    }

    /// Copies the byte totals of the meters of frontend `fe` and backend `be` into the
    /// counters (their `h1` module's fields): done where the counters are written anyway, at
    /// the end of a transaction and of a connection.
    pub fn fold_h1_bytes(
        &self,
        c: &mut crate::counters::ShardCounters,
        fe: Option<usize>,
        be: Option<usize>,
    ) {
        let read = |side: Side, i: usize| {
            self.h1_meters[side as usize]
                .borrow()
                .get(i)
                .map(|m| (m.rx.get(), m.tx.get()))
        };
        if let Some((f, (rx, tx))) = fe.and_then(|f| Some((f, read(Side::Front, f)?))) {
            if let Some(m) = c.frontends.get_mut(f).map(|x| &mut x.mux) {
                (m.h1_bytes_in, m.h1_bytes_out) = (rx, tx);
            }
        }
        if let Some((b, (rx, tx))) = be.and_then(|b| Some((b, read(Side::Back, b)?))) {
            if let Some(m) = c.backends.get_mut(b).map(|x| &mut x.mux) {
                (m.h1_bytes_in, m.h1_bytes_out) = (rx, tx);
            }
        }
    }

    /// Registers a stream accepted now. Costs a slab insert; the slab allocates only when it
    /// grows past the most streams this shard ever held at once.
    pub fn register(
        &self,
        (frontend, bind): (usize, usize),
        src: Option<SocketAddr>,
        dst: Option<SocketAddr>,
        fd: i32,
        accepted: (Instant, SystemTime),
    ) -> SessRef {
        let uniq = self.next_uniq.get();
        self.next_uniq.set(uniq + 1);
        self.accepted.set(self.accepted.get() + 1);
        let mut slots = self.slots.borrow_mut();
        let mut gens = self.gens.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                if slots.len() >= (1 << SLOT_BITS) {
                    return SessRef::NONE;
                }
                slots.push(None);
                gens.push(0);
                u32::try_from(slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let i = index as usize;
        let gen = gens.get(i).copied().unwrap_or(0);
        let id = ((self.shard as u64 + 1) << (SLOT_BITS + GEN_BITS))
            | (u64::from(gen) << SLOT_BITS)
            | u64::from(index);
        if let Some(s) = slots.get_mut(i) {
            *s = Some(Slot {
                id,
                uniq,
                frontend,
                bind,
                src,
                dst,
                fd,
                accepted: accepted.0,
                accepted_unix: accepted.1,
                backend: Cell::new(None),
                server: Cell::new(None),
                fd_back: Cell::new(-1),
                requests: Cell::new(0),
                killed: Cell::new(false),
                cooperative: Cell::new(false),
                kill_soft: Cell::new(false),
                waker: RefCell::new(None),
            });
        }
        SessRef { index, id }
    }

    /// Frees the slot (the stream ended).
    pub fn unregister(&self, r: SessRef) {
        let mut slots = self.slots.borrow_mut();
        let Some(s) = slots.get_mut(r.index as usize) else {
            return;
        };
        if s.as_ref().is_some_and(|s| s.id == r.id) {
            *s = None;
            if let Some(g) = self.gens.borrow_mut().get_mut(r.index as usize) {
                *g = (*g + 1) & ((1 << GEN_BITS) - 1);
            }
            self.free.borrow_mut().push(r.index);
        }
    }

    fn with<T>(&self, r: SessRef, f: impl FnOnce(&Slot) -> T) -> Option<T> {
        let slots = self.slots.borrow();
        slots
            .get(r.index as usize)?
            .as_ref()
            .filter(|s| s.id == r.id)
            .map(f)
    }

    /// The `bind` (index in its frontend) that accepted the stream, for the listener counters.
    pub fn bind_of(&self, r: SessRef) -> Option<usize> {
        self.with(r, |s| s.bind)
    }

    /// The client's address as a PROXY header gave it (`accept-proxy`).
    pub fn set_src(&self, r: SessRef, src: Option<SocketAddr>) {
        let mut slots = self.slots.borrow_mut();
        if let Some(Some(s)) = slots.get_mut(r.index as usize) {
            if s.id == r.id {
                s.src = src;
            }
        }
    }

    /// The stream chose a backend and (when known) a server, connected by `fd_back`.
    pub fn set_target(&self, r: SessRef, backend: usize, server: Option<(usize, i32)>) {
        self.with(r, |s| {
            s.backend.set(Some(backend));
            s.server.set(server.map(|x| x.0));
            s.fd_back.set(server.map_or(-1, |x| x.1));
        });
    }

    /// The stream gave its server connection back (end of an HTTP transaction).
    pub fn server_released(&self, r: SessRef) {
        self.with(r, |s| s.fd_back.set(-1));
    }

    /// The stream started a request (HTTP) or its tunnel (TCP).
    pub fn count_request(&self, r: SessRef) {
        self.streams.set(self.streams.get() + 1);
        self.with(r, |s| s.requests.set(s.requests.get() + 1));
    }

    /// Resolves once `shutdown session` named this stream; the task then drops the stream.
    pub async fn killed(&self, r: SessRef) {
        self.wait_flag(r, |s| s.killed.get()).await;
    }

    /// While `on`, a kill is answered by the session (`kill_requested`) rather than by
    /// dropping it: it waits for its server's answer and replies 502 as haproxy does.
    pub fn set_cooperative(&self, r: SessRef, on: bool) {
        self.with(r, |s| s.cooperative.set(on));
    }

    /// Resolves once a kill arrived while the session was cooperative.
    pub async fn kill_requested(&self, r: SessRef) {
        self.wait_flag(r, |s| s.kill_soft.get()).await;
    }

    async fn wait_flag(&self, r: SessRef, flag: impl Fn(&Slot) -> bool) {
        std::future::poll_fn(|cx| {
            let done = self
                .with(r, |s| {
                    if flag(s) {
                        return true;
                    }
                    // Polled at every wake-up of the connection's task: clone the waker only
                    // the first time (the task's waker does not change).
                    let mut w = s.waker.borrow_mut();
                    if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *w = Some(cx.waker().clone());
                    }
                    false
                })
                .unwrap_or(false);
            if done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    }

    /// `shutdown session <id>`: true when the stream is this shard's and alive.
    pub fn kill(&self, id: u64) -> bool {
        let index = (id & ((1 << SLOT_BITS) - 1)) as u32;
        self.with(SessRef { index, id }, |s| {
            if s.cooperative.get() {
                s.kill_soft.set(true);
            } else {
                s.killed.set(true);
            }
            if let Some(w) = s.waker.borrow_mut().take() {
                w.wake();
            }
        })
        .is_some()
    }

    /// Every live stream (for the control shard; allocates the copy).
    pub fn sessions(&self, now: Instant) -> Vec<SessSnap> {
        self.slots
            .borrow()
            .iter()
            .flatten()
            .filter(|s| !s.killed.get() && !s.kill_soft.get())
            .map(|s| SessSnap {
                id: s.id,
                uniq: s.uniq,
                shard: self.shard,
                frontend: s.frontend,
                bind: s.bind,
                src: s.src,
                dst: s.dst.or_else(|| sock_name(s.fd)),
                fd: s.fd,
                age_ms: u64::try_from(now.saturating_duration_since(s.accepted).as_millis())
                    .unwrap_or(u64::MAX),
                accepted_unix_us: unix_us(s.accepted_unix),
                backend: s.backend.get(),
                server: s.server.get(),
                fd_back: s.fd_back.get(),
                requests: s.requests.get(),
            })
            .collect()
    }

    /// Requests and TCP sessions started since the shard started.
    pub fn streams(&self) -> u64 {
        self.streams.get()
    }

    /// Session slots allocated and in use.
    pub fn slot_counts(&self) -> (u64, u64) {
        let slots = self.slots.borrow();
        (slots.len() as u64, slots.iter().flatten().count() as u64)
    }

    /// Keeps `c`, replacing the previous capture of the same proxy and direction (error path
    /// only: the bytes were copied by the caller).
    pub fn capture(&self, c: Capture) {
        let mut caps = self.captures.borrow_mut();
        let same = |o: &Capture| {
            o.response == c.response
                && if c.response {
                    o.backend == c.backend
                } else {
                    o.frontend == c.frontend
                }
        };
        if let Some(old) = caps.iter_mut().find(|o| same(o)) {
            *old = c;
        } else if caps.len() < MAX_CAPTURES {
            caps.push(c);
        }
    }

    /// Captures an invalid request (`response` false) or response of stream `r`, with the
    /// stream's frontend, backend, server and client. Error path only: copies at most
    /// `max_len` bytes of the message.
    pub fn capture_message(
        &self,
        r: SessRef,
        response: bool,
        bytes: &[u8],
        max_len: usize,
        event: u32,
    ) {
        let (error_pos, state) = ringlb_http1::offset::error_at(bytes, response);
        let Some(c) = self.with(r, |s| Capture {
            response,
            frontend: s.frontend,
            backend: s.backend.get(),
            server: s.server.get(),
            event,
            src: s.src,
            when_unix_us: unix_us(SystemTime::now()),
            bytes: bytes
                .get(..max_len.min(bytes.len()))
                .unwrap_or(bytes)
                .to_vec(),
            error_pos,
            msg_state: state.name_and_number(),
        }) else {
            return;
        };
        self.capture(c);
    }

    pub fn captures(&self) -> Vec<Capture> {
        self.captures.borrow().clone()
    }
}

/// The local address of a live socket of this shard (`getsockname`), asked only when listed.
fn sock_name(fd: i32) -> Option<SocketAddr> {
    // SAFETY: zeroed sockaddr_storage is a valid out-buffer; `len` bounds what the kernel
    // writes; `fd` is a socket this shard's live stream owns (open while its slot exists).
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, (&raw mut ss).cast(), &mut len) != 0 {
            return None;
        }
        match i32::from(ss.ss_family) {
            libc::AF_INET => {
                let a: libc::sockaddr_in = std::ptr::read((&raw const ss).cast());
                Some(SocketAddr::from((
                    u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let a: libc::sockaddr_in6 = std::ptr::read((&raw const ss).cast());
                Some(SocketAddr::from((
                    a.sin6_addr.s6_addr,
                    u16::from_be(a.sin6_port),
                )))
            }
            _ => None,
        }
    }
}

/// Microseconds since the epoch.
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A question the control shard asks every shard (`ControlMsg::Engine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineQuery {
    Sessions,
    Kill { id: u64 },
    Activity,
    Pools,
    Errors,
}

/// A shard's answer, published on the stats board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineReply {
    Sessions(Vec<SessSnap>),
    Killed(bool),
    Activity(Activity),
    Pools(Pools),
    Errors(Vec<Capture>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(l: &Live) -> SessRef {
        l.register(
            (0, 0),
            "127.0.0.1:1000".parse().ok(),
            None,
            7,
            (Instant::now(), SystemTime::now()),
        )
    }

    #[test]
    fn slots_are_reused_and_old_ids_die() {
        let l = Live::new(1);
        let a = reg(&l);
        let b = reg(&l);
        assert_ne!(a.id, b.id);
        assert_eq!(l.sessions(Instant::now()).len(), 2);
        l.unregister(a);
        let c = reg(&l);
        assert_eq!(c.index, a.index, "slot reused");
        assert_ne!(c.id, a.id, "with a new id");
        assert!(!l.kill(a.id), "an ended stream's id names nothing");
        assert_eq!(l.slot_counts(), (2, 2));
        l.set_target(c, 3, Some((1, 9)));
        l.count_request(c);
        let snap = l.sessions(Instant::now());
        let s = snap.iter().find(|s| s.id == c.id).unwrap();
        assert_eq!(
            (s.backend, s.server, s.requests, s.shard),
            (Some(3), Some(1), 1, 1)
        );
        // Ids of another shard never match.
        assert!(!Live::new(0).kill(c.id));
    }

    #[test]
    fn kill_wakes_the_stream() {
        let l = Live::new(0);
        let a = reg(&l);
        let fut = l.killed(a);
        futures_lite::pin!(fut);
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut fut)).is_none()
        );
        assert!(l.kill(a.id));
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut fut)).is_some()
        );
        assert!(
            l.sessions(Instant::now()).is_empty(),
            "a killed stream is no longer listed"
        );
    }

    #[test]
    fn a_cooperative_session_answers_the_kill_itself() {
        let l = Live::new(0);
        let a = reg(&l);
        l.set_cooperative(a, true);
        let hard = l.killed(a);
        let soft = l.kill_requested(a);
        futures_lite::pin!(hard);
        futures_lite::pin!(soft);
        let poll = |f: std::pin::Pin<&mut dyn std::future::Future<Output = ()>>| {
            futures_lite::future::block_on(futures_lite::future::poll_once(f)).is_some()
        };
        assert!(!poll(soft.as_mut()));
        assert!(l.kill(a.id));
        assert!(poll(soft.as_mut()), "the session is told");
        assert!(!poll(hard.as_mut()), "and not dropped");
    }

    #[test]
    fn one_capture_per_proxy_and_direction() {
        let l = Live::new(0);
        let cap = |response, frontend, backend, event| Capture {
            response,
            frontend,
            backend,
            server: None,
            event,
            src: None,
            when_unix_us: 0,
            bytes: Vec::new(),
            error_pos: 0,
            msg_state: ("MSG_LAST_LF", 24),
        };
        l.capture(cap(false, 0, None, 0));
        l.capture(cap(false, 0, None, 1));
        l.capture(cap(true, 0, Some(2), 2));
        l.capture(cap(false, 1, None, 3));
        let events: Vec<u32> = l.captures().iter().map(|c| c.event).collect();
        assert_eq!(events, vec![1, 2, 3]);
    }
}
