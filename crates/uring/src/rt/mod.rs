//! The worker shard's run loop: a single-threaded executor parked in the shard's own ring.
//!
//! glommio's executor costs four `io_uring_enter` per loop iteration (it re-arms two
//! preemption timers every turn) and a `membarrier` IPI per park; at low concurrency that was
//! 22 syscalls per proxied request against HAProxy's 10 (`docs/adr/0006-shard-run-loop.md`).
//! This loop runs the woken tasks, then makes one `io_uring_enter` on the shard's ring that
//! submits everything they queued and, when nothing is runnable, waits for a completion, the
//! next timer (the enter's timeout) or a message from another thread (an eventfd read kept
//! armed in the ring).
//!
//! - Tasks are `!Send` futures (`spawn`); a task's waker is an `Arc` (std wakers must be
//!   `Send`), woken on the shard's thread through a thread-local queue, from another thread
//!   through the `Remote` queue and the eventfd.
//! - Timers (`sleep`, `Sleep`) live in one ordered map; the loop's wait uses the earliest.
//! - Cross-thread channels (`channel`) wake the receiving shard without a lock or a syscall
//!   unless it sleeps: the classic flag handshake (sender: push, then read `sleeping`; shard:
//!   set `sleeping`, then read `pending`), both sides sequentially consistent.

pub mod channel;
mod task;
mod timer;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub use task::JoinHandle;
pub use timer::{sleep, Sleep};

use crate::driver::Ring;

/// Tasks run per loop turn before the ring is looked at again: keeps I/O flowing when tasks
/// keep waking each other.
const TURN_BUDGET: usize = 512;

/// The part of a shard's runtime other threads may touch.
pub(crate) struct Remote {
    /// Task ids woken from another thread.
    woken: Mutex<Vec<u64>>,
    /// Something arrived (a remote wake or a channel message) since the loop last looked.
    pending: AtomicBool,
    /// The loop is about to wait (or waits) in the ring: a notifier must write the eventfd.
    sleeping: AtomicBool,
    eventfd: OwnedFd,
}

impl Remote {
    /// Tells the shard something arrived; a syscall only if it sleeps.
    pub(crate) fn notify(&self) {
        self.pending.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
            unsafe {
                libc::write(
                    self.eventfd.as_raw_fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

struct TaskSlot {
    generation: u32,
    future: Option<BoxFuture>,
    waker: Option<(Waker, Arc<task::TaskWake>)>,
}

/// Counters `show activity` reports for the shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub tasks_run: u64,
    pub loops: u64,
    /// Time spent running tasks (not waiting).
    pub busy: Duration,
}

pub(crate) struct Runtime {
    ring: Ring,
    tasks: RefCell<Vec<TaskSlot>>,
    free: RefCell<Vec<u32>>,
    ready: RefCell<VecDeque<u64>>,
    timers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    timer_seq: Cell<u64>,
    remote: Arc<Remote>,
    /// Channel receivers waiting for a message from another thread.
    inbox: RefCell<Vec<Waker>>,
    stats: Cell<Stats>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

/// Runs `f` with the current thread's runtime, if one runs here.
pub(crate) fn with_current<R>(f: impl FnOnce(&Runtime) -> R) -> Option<R> {
    // `try_with`: a task dropped while the thread's locals are torn down finds no runtime.
    CURRENT
        .try_with(|c| c.try_borrow().ok()?.as_ref().map(|rt| f(rt)))
        .ok()
        .flatten()
}

/// Spawns `fut` on the current shard. Outside a runtime the future is dropped unrun (a
/// programming error; every shard task starts inside `block_on`).
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> JoinHandle<T> {
    // Onto the heap first: a connection's or an h2 stream's future is several KB and each
    // move of it is a memcpy; boxed, only a pointer moves on. (perf, h2c: the three copies
    // the wrapping and the closure made were 13% of the proxy's CPU.)
    let (handle, wrapped) = task::joined(Box::pin(fut));
    let boxed: BoxFuture = Box::pin(wrapped);
    let spawned = with_current(move |rt| rt.spawn_boxed(boxed));
    debug_assert!(spawned.is_some(), "rt::spawn outside a shard runtime");
    handle
}

/// This thread's loop counters (zero outside a runtime).
pub fn stats() -> Stats {
    with_current(|rt| rt.stats.get()).unwrap_or_default()
}

/// Runs `fut` to completion on this thread with `ring` as the shard's ring, running every task
/// spawned meanwhile. Tasks still pending when `fut` finishes are dropped.
pub fn block_on<T: 'static>(ring: &Ring, fut: impl Future<Output = T> + 'static) -> io::Result<T> {
    // Blocking: io_uring completes a read of a non-blocking file with EAGAIN instead of
    // waiting for it. Writers never block (the counter would have to reach 2^64 - 1).
    // SAFETY: plain syscall; the result is checked and owned right after.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
    let reader = eventfd.try_clone()?;
    let rt = Rc::new(Runtime {
        ring: ring.clone(),
        tasks: RefCell::new(Vec::with_capacity(1024)),
        free: RefCell::new(Vec::new()),
        ready: RefCell::new(VecDeque::with_capacity(1024)),
        timers: RefCell::new(BTreeMap::new()),
        timer_seq: Cell::new(0),
        remote: Arc::new(Remote {
            woken: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            eventfd,
        }),
        inbox: RefCell::new(Vec::new()),
        stats: Cell::new(Stats::default()),
    });
    let previous = CURRENT.with(|c| c.replace(Some(rt.clone())));
    // Keeps one read of the eventfd in the ring: its completion ends a wait.
    let efd_ring = ring.clone();
    spawn(async move {
        loop {
            if efd_ring.read_eventfd(&reader).await.is_err() {
                // Only an unusable eventfd fails; cross-thread wakes then wait for the next
                // completion or timer instead.
                return;
            }
        }
    })
    .detach();
    let main = spawn(fut);
    let out = rt.run(&main);
    // Drop the remaining tasks while the runtime is still current: their drops remove timers
    // and cancel operations.
    let leftover: Vec<TaskSlot> = rt.tasks.borrow_mut().drain(..).collect();
    drop(leftover);
    // Their sockets were closed through the ring: submit those closes before the ring goes
    // (a queued entry dies with the ring, and the descriptor with the process only).
    let flushed = rt.ring.turn(None);
    CURRENT.with(|c| c.replace(previous));
    flushed?;
    out
}

impl Runtime {
    fn spawn_boxed(&self, future: BoxFuture) {
        let mut tasks = self.tasks.borrow_mut();
        let idx = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                tasks.push(TaskSlot {
                    generation: 0,
                    future: None,
                    waker: None,
                });
                u32::try_from(tasks.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let Some(slot) = tasks.get_mut(idx as usize) else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        let id = task::id(idx, slot.generation);
        let wake = Arc::new(task::TaskWake::new(id, self.remote.clone()));
        slot.waker = Some((Waker::from(wake.clone()), wake.clone()));
        slot.future = Some(future);
        drop(tasks);
        wake.mark_queued();
        self.ready.borrow_mut().push_back(id);
    }

    /// Queues a task woken on this thread.
    pub(crate) fn schedule(&self, id: u64) {
        self.ready.borrow_mut().push_back(id);
    }

    fn poll_task(&self, id: u64) {
        let (idx, generation) = task::split(id);
        // Both are moved out for the poll (no refcount traffic) and back after it: the poll may
        // spawn, which borrows the slab.
        let (mut future, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(slot) = tasks.get_mut(idx as usize) else {
                return;
            };
            if slot.generation != generation || slot.future.is_none() || slot.waker.is_none() {
                return;
            }
            let (Some(f), Some(w)) = (slot.future.take(), slot.waker.take()) else {
                return;
            };
            w.1.clear_queued();
            (f, w)
        };
        let done = future
            .as_mut()
            .poll(&mut Context::from_waker(&waker.0))
            .is_ready();
        let mut tasks = self.tasks.borrow_mut();
        if let Some(slot) = tasks.get_mut(idx as usize) {
            if done {
                self.free.borrow_mut().push(idx);
            } else {
                slot.future = Some(future);
                slot.waker = Some(waker);
            }
        }
        drop(tasks);
        // `future` (when done) drops here, outside every borrow: its destructor may spawn.
    }

    fn run<T: 'static>(&self, main: &JoinHandle<T>) -> io::Result<T> {
        loop {
            let started = Instant::now();
            let mut ran = 0u64;
            while ran < TURN_BUDGET as u64 {
                let Some(id) = self.ready.borrow_mut().pop_front() else {
                    break;
                };
                self.poll_task(id);
                ran += 1;
            }
            let now = Instant::now();
            let mut st = self.stats.get();
            st.tasks_run += ran;
            st.loops += 1;
            st.busy += now.saturating_duration_since(started);
            self.stats.set(st);
            if let Some(v) = main.take() {
                return Ok(v);
            }
            self.fire_timers(now);
            self.take_remote();
            if !self.ready.borrow().is_empty() {
                self.ring.turn(None)?;
                continue;
            }
            let timeout = self
                .timers
                .borrow()
                .keys()
                .next()
                .map(|(at, _)| at.saturating_duration_since(now));
            self.remote.sleeping.store(true, Ordering::SeqCst);
            let wait = if self.remote.pending.load(Ordering::SeqCst) {
                None
            } else {
                Some(timeout)
            };
            let res = self.ring.turn(wait);
            self.remote.sleeping.store(false, Ordering::Relaxed);
            res?;
        }
    }

    fn fire_timers(&self, now: Instant) {
        loop {
            let waker = {
                let mut timers = self.timers.borrow_mut();
                match timers.first_entry() {
                    Some(entry) if entry.key().0 <= now => entry.remove(),
                    _ => return,
                }
            };
            waker.wake();
        }
    }

    fn take_remote(&self) {
        if !self.remote.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let woken = match self.remote.woken.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        self.ready.borrow_mut().extend(woken);
        let inbox = std::mem::take(&mut *self.inbox.borrow_mut());
        for w in inbox {
            w.wake();
        }
    }

    fn add_timer(&self, at: Instant, waker: Waker) -> (Instant, u64) {
        let seq = self.timer_seq.get().wrapping_add(1);
        self.timer_seq.set(seq);
        self.timers.borrow_mut().insert((at, seq), waker);
        (at, seq)
    }

    fn timer_waker(&self, key: (Instant, u64), waker: &Waker) {
        if let Some(w) = self.timers.borrow_mut().get_mut(&key) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    fn remove_timer(&self, key: (Instant, u64)) {
        self.timers.borrow_mut().remove(&key);
    }

    fn wait_inbox(&self, waker: &Waker) {
        let mut inbox = self.inbox.borrow_mut();
        if !inbox.iter().any(|w| w.will_wake(waker)) {
            inbox.push(waker.clone());
        }
    }
}

/// Pins the calling thread to `cpus` (`cpu-map`); empty leaves it unbound.
pub fn pin_thread(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET only writes inside it; the syscall reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(cpu, &mut set);
            }
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Yields once to the other runnable tasks.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
