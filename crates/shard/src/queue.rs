//! Requests waiting for a server slot, as HAProxy queues them (`queue.c`).
//!
//! Two kinds of queue per backend, on every shard:
//! - a server's own queue, for requests that must go to that server: persistence (cookie,
//!   `use-server`, stick match) or a hashing algorithm whose key names it;
//! - the backend's queue, for balanced requests that found every candidate at its
//!   `maxconn`: the first server to free a slot takes them.
//!
//! A slot freed on a server goes to the older of the two queue heads (HAProxy's
//! `pendconn_process_next_strm`), the backend's only when the server is one the balancer picks
//! from now; a server that becomes usable or gets a higher limit takes waiting requests at once
//! ([`serve_queues`], HAProxy's `pendconn_grab_from_px`). Entries are granted a slot (the
//! server's `active` count already includes it), then woken; a request dropped while queued
//! (timeout, client gone) leaves its queue, and a slot granted meanwhile is passed on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::state::{BackendState, ServerState, ShardState};

/// One queued request: granted a slot on a server, then woken.
pub struct QueueEntry {
    /// Arrival order on this shard (a u64 that never wraps): a freed slot goes to the oldest
    /// head of the queues, and a request leaving a queue is found by it.
    seq: u64,
    granted: Cell<bool>,
    /// The server whose slot was granted (for an entry of the backend's queue, the server
    /// that freed one).
    server: Cell<usize>,
    waker: RefCell<Option<Waker>>,
}

/// Where a request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waits {
    /// In this server's own queue.
    OnServer(usize),
    /// In the backend's queue, for whichever server frees a slot first.
    ForAnyServer,
}

/// Why a wait ended without a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// `timeout queue` (else `timeout connect`) expired.
    TimedOut,
}

/// Waits in `backend`'s queue (`Waits::ForAnyServer`) or a server's until a slot is granted;
/// returns the server whose slot it is. `timeout`: `timeout queue`, else `timeout connect`.
pub async fn wait(
    state: &Rc<ShardState>,
    backend: usize,
    waits: Waits,
    timeout: Option<std::time::Duration>,
) -> Result<usize, WaitEnd> {
    let seq = state.next_queue_seq.get();
    state.next_queue_seq.set(seq.wrapping_add(1));
    let entry = Rc::new(QueueEntry {
        seq,
        granted: Cell::new(false),
        server: Cell::new(match waits {
            Waits::OnServer(s) => s,
            Waits::ForAnyServer => usize::MAX,
        }),
        waker: RefCell::new(None),
    });
    // The queue path allocates (the entry, and a queue slot when the deque grows): only
    // requests that find their servers full come here.
    push(state, backend, waits, entry.clone());
    let mut place = QueuePlace {
        state: state.clone(),
        backend,
        entry: entry.clone(),
        done: false,
    };
    let granted = crate::time::within(
        timeout,
        poll_fn(|cx| {
            if entry.granted.get() {
                Poll::Ready(())
            } else {
                *entry.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }),
    )
    .await;
    place.done = true;
    if granted.is_ok() || entry.granted.get() {
        // Granted, possibly just as the timer fired: the slot is ours.
        return Ok(entry.server.get());
    }
    place.leave();
    Err(WaitEnd::TimedOut)
}

/// A request's place in a queue. Dropped before it was granted (the request was abandoned:
/// `abortonclose`, an h2 stream reset), it leaves the queue, and a slot granted meanwhile goes
/// to the next request instead of being lost.
struct QueuePlace {
    state: Rc<ShardState>,
    backend: usize,
    entry: Rc<QueueEntry>,
    done: bool,
}

impl QueuePlace {
    /// Leaves the queue (not granted): its server's, or the backend's (where it also is after
    /// its server went down, [`redistribute`]).
    fn leave(&self) {
        let Some(b) = self.state.backends.get(self.backend) else {
            return;
        };
        let entry = &self.entry;
        remove(&mut b.queue.borrow_mut(), entry);
        let server = entry.server.get();
        if let Some(s) = self.state.server(self.backend, server) {
            if remove(&mut s.queue.borrow_mut(), entry) {
                b.note_queued(server, &s);
            }
        }
    }
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.entry.granted.get() {
            // Granted (and so out of its queue) but never used.
            pass_slot(&self.state, self.backend, self.entry.server.get());
        } else {
            self.leave();
        }
    }
}

/// Removes `entry` from `q`, found by its arrival order (every queue is kept in it, so a
/// backlog expiring at once costs n log n, not n²). Whether it was there.
fn remove(q: &mut VecDeque<Rc<QueueEntry>>, entry: &Rc<QueueEntry>) -> bool {
    match q.binary_search_by_key(&entry.seq, |e| e.seq) {
        Ok(at) => q.remove(at).is_some(),
        Err(_) => false,
    }
}

fn push(state: &ShardState, backend: usize, waits: Waits, entry: Rc<QueueEntry>) {
    let Some(b) = state.backends.get(backend) else {
        return;
    };
    let mut counters = state.counters.borrow_mut();
    match waits {
        Waits::ForAnyServer => {
            let mut q = b.queue.borrow_mut();
            q.push_back(entry);
            if let Some(c) = counters.backends.get_mut(backend) {
                c.queue_max = c.queue_max.max(q.len() as u32);
            }
        }
        Waits::OnServer(server) => {
            let Some(s) = state.server(backend, server) else {
                return;
            };
            s.queue.borrow_mut().push_back(entry);
            b.note_queued(server, &s);
            let len = s.queue.borrow().len() as u32;
            if let Some(c) = counters
                .servers
                .get_mut(backend)
                .and_then(|v| v.get_mut(server))
            {
                c.queue_max = c.queue_max.max(len);
            }
        }
    }
}

/// Takes a slot on `server`: its `active` count and the balancer's count of its connections
/// (`leastconn`, `first`, `maxconn`) move together, so that a slot passed from one request to
/// the next is never seen free in between.
pub fn take_slot(state: &ShardState, backend: usize, server: usize, s: &ServerState) {
    s.active.set(s.active.get() + 1);
    state.note_conn(backend, server, true);
}

fn free_slot(state: &ShardState, backend: usize, server: usize, s: &ServerState) {
    s.active.set(s.active.get().saturating_sub(1));
    state.note_conn(backend, server, false);
}

/// A slot on `server` is released: it goes to the oldest request that may take it, or is
/// freed. Over the server's current limit (lowered by an agent or by `minconn`), it is freed;
/// under a limit that rose since (`minconn` with the load, `slowstart` with time), more
/// waiting requests are let in, as HAProxy's `process_srv_queue` does.
pub fn pass_slot(state: &ShardState, backend: usize, server: usize) {
    let (Some(b), Some(s)) = (state.backends.get(backend), state.server(backend, server)) else {
        return;
    };
    let limit = state.limit_now(backend, &s);
    let next = if limit != 0 && s.active.get() > limit {
        None
    } else {
        next_waiting(b, server, &s)
    };
    match next {
        Some(entry) => grant(&entry, server),
        None => free_slot(state, backend, server, &s),
    }
    if limit != 0 && s.active.get() < limit {
        serve_server(state, b, backend, server, &s);
    }
}

/// The server went down or into maintenance: with `option redispatch` (and not `option
/// persist`), the requests waiting in its queue move to the backend's queue, in their order,
/// for any server (HAProxy's `pendconn_redistribute`). Otherwise they stay, as in HAProxy.
pub fn redistribute(state: &ShardState, backend: usize, server: usize) {
    let (Some(b), Some(s), Some(rt)) = (
        state.backends.get(backend),
        state.server(backend, server),
        state.topo.backends.get(backend),
    ) else {
        return;
    };
    if !rt.requeues_on_down() || s.queue.borrow().is_empty() {
        return;
    }
    let moved: Vec<Rc<QueueEntry>> = s.queue.borrow_mut().drain(..).collect();
    b.note_queued(server, &s);
    let mut q = b.queue.borrow_mut();
    for e in moved {
        // Keep the backend's queue in arrival order.
        let at = q.partition_point(|x| x.seq < e.seq);
        q.insert(at, e);
    }
}

/// Gives waiting requests every free slot of `backend`'s servers: after a server came up, was
/// added, or got a higher weight or limit.
pub fn serve_queues(state: &ShardState, backend: usize) {
    let Some(b) = state.backends.get(backend) else {
        return;
    };
    if b.queue.borrow().is_empty()
        && b.servers
            .borrow()
            .iter()
            .all(|s| s.queue.borrow().is_empty())
    {
        return;
    }
    let servers = b.servers.borrow().clone();
    for (i, s) in servers.iter().enumerate() {
        serve_server(state, b, backend, i, s);
    }
}

/// Grants server `i`'s free slots to the requests that may take them.
fn serve_server(state: &ShardState, b: &BackendState, backend: usize, i: usize, s: &ServerState) {
    loop {
        let limit = state.limit_now(backend, s);
        if limit != 0 && s.active.get() >= limit {
            break;
        }
        let Some(entry) = next_waiting(b, i, s) else {
            break;
        };
        take_slot(state, backend, i, s);
        grant(&entry, i);
    }
}

/// Takes the older of the server's queue head and, when the server serves it, the backend
/// queue's head.
fn next_waiting(b: &BackendState, server: usize, s: &ServerState) -> Option<Rc<QueueEntry>> {
    let own = s.queue.borrow().front().map(|e| e.seq);
    let shared = if b.queue.borrow().is_empty() || s.deleted.get() {
        None
    } else if b.serves_backend_queue(server) {
        b.queue.borrow().front().map(|e| e.seq)
    } else {
        None
    };
    match (own, shared) {
        (Some(o), Some(sh)) if o < sh => pop_own(b, server, s),
        (Some(_), None) => pop_own(b, server, s),
        (_, Some(_)) => b.queue.borrow_mut().pop_front(),
        (None, None) => None,
    }
}

fn pop_own(b: &BackendState, server: usize, s: &ServerState) -> Option<Rc<QueueEntry>> {
    let e = s.queue.borrow_mut().pop_front();
    b.note_queued(server, s);
    e
}

fn grant(entry: &QueueEntry, server: usize) {
    entry.server.set(server);
    entry.granted.set(true);
    if let Some(w) = entry.waker.borrow_mut().take() {
        w.wake();
    }
}

/// The queue gauges of the stats (`qcur`), read when the counters are published: a server's
/// own queue, and the backend's queue (requests without a server yet), as HAProxy shows them.
pub fn fill_queue_gauges(state: &ShardState, copy: &mut crate::counters::ShardCounters) {
    for (bi, b) in state.backends.iter().enumerate() {
        if let Some(c) = copy.backends.get_mut(bi) {
            c.queue_cur = b.queue.borrow().len() as u32;
        }
        let Some(rows) = copy.servers.get_mut(bi) else {
            continue;
        };
        for (s, c) in b.servers.borrow().iter().zip(rows.iter_mut()) {
            c.queue_cur = s.queue.borrow().len() as u32;
        }
    }
}

/// An empty queue (for a new server or backend).
pub fn new_queue() -> RefCell<VecDeque<Rc<QueueEntry>>> {
    RefCell::new(VecDeque::new())
}
