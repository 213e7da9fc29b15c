//! The ring and its slot table; the shard run loop (`rt`) submits and reaps.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{cqueue, squeue, IoUring};

use crate::bufring::BufRing;

/// `user_data` of operations whose completion nobody waits for (cancellations).
const UNTRACKED: u64 = u64::MAX;

/// Resources an operation lends to the kernel; kept alive in the slot until its completion.
pub(crate) enum Hold {
    None,
    Vec(Vec<u8>),
    Send(crate::SendBuf),
    SendPair(Box<crate::net::PairSend>),
    Addr(Box<crate::net::AddrBuf>),
    /// A pipe a splice reads or writes: held (never read) so its descriptors stay open until the
    /// completion.
    Pipe(#[allow(dead_code)] Rc<crate::pipe::PipeFds>),
    /// A receive into the provided-buffer pool: where its completion goes if its future is
    /// dropped first.
    Recv(Rc<crate::bufring::RecvStash>),
    /// An accept: where the connection goes if its future is dropped first.
    Accept(Box<crate::net::AddrBuf>, Rc<crate::net::AcceptStash>),
}

enum Slot {
    Vacant {
        next_free: usize,
    },
    Pending {
        waker: Option<Waker>,
        hold: Hold,
    },
    Done {
        result: i32,
        flags: u32,
        hold: Hold,
    },
    /// The future was dropped; the slot waits for the completion to release `hold`.
    Orphan {
        hold: Hold,
    },
}

struct Slots {
    slots: Vec<Slot>,
    free_head: usize,
}

impl Slots {
    fn insert(&mut self, slot: Slot) -> usize {
        if let Some(Slot::Vacant { next_free }) = self.slots.get(self.free_head) {
            let idx = self.free_head;
            self.free_head = *next_free;
            if let Some(s) = self.slots.get_mut(idx) {
                *s = slot;
            }
            idx
        } else {
            self.slots.push(slot);
            self.free_head = self.slots.len();
            self.slots.len() - 1
        }
    }

    fn release(&mut self, idx: usize) -> Option<Slot> {
        let next_free = self.free_head;
        let slot = self.slots.get_mut(idx)?;
        let old = std::mem::replace(slot, Slot::Vacant { next_free });
        self.free_head = idx;
        Some(old)
    }
}

pub(crate) struct Inner {
    uring: RefCell<IoUring>,
    slots: RefCell<Slots>,
    pub(crate) pool: Rc<BufRing>,
    unsubmitted: Cell<u32>,
    in_flight: Cell<u32>,
    /// Of those, the run loop's own (its eventfd read): not counted by `in_flight()`.
    internal: Cell<u32>,
    wake_list: RefCell<Vec<Waker>>,
}

/// One shard's io_uring. Cheap to clone (an `Rc`); must stay on the thread that made it.
#[derive(Clone)]
pub struct Ring {
    pub(crate) inner: Rc<Inner>,
}

/// What the caller of `Ring::take` gets back.
pub(crate) struct Completion {
    pub(crate) result: i32,
    pub(crate) flags: u32,
    pub(crate) hold: Hold,
}

impl Ring {
    /// A ring with `entries` submission slots and a pool of `bufs` receive buffers of
    /// `buf_size` bytes. Run it with `rt::block_on` on the thread that made it.
    pub fn new(entries: u32, bufs: u16, buf_size: usize) -> io::Result<Ring> {
        // COOP_TASKRUN: completions do not interrupt the shard with an IPI; their task work runs
        // at the shard's next syscall (a submit or the run loop's wait), and TASKRUN_FLAG tells
        // us when some is pending. Measured: ~30% less proxy CPU per request than without
        // (docs/adr/0001-socket-data-path.md).
        let uring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(entries.saturating_mul(4))
            .build(entries)?;
        let pool = BufRing::new(0, bufs, buf_size)?;
        // SAFETY: the ring memory stays allocated as long as `pool`, which the ring's Inner owns
        // (and which outlives every RecvBuf through its Rc); it is unregistered when the ring fd
        // closes.
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                pool.ring_addr(),
                pool.entries(),
                pool.group,
                0,
            )?;
        }
        pool.fill();
        Ok(Ring {
            inner: Rc::new(Inner {
                uring: RefCell::new(uring),
                slots: RefCell::new(Slots {
                    slots: Vec::with_capacity(1024),
                    free_head: 0,
                }),
                pool: Rc::new(pool),
                unsubmitted: Cell::new(0),
                in_flight: Cell::new(0),
                internal: Cell::new(0),
                wake_list: RefCell::new(Vec::with_capacity(256)),
            }),
        })
    }

    /// One turn of the shard run loop's I/O: submits what the tasks queued and reaps the
    /// completions. `wait`: `None` returns at once; `Some(limit)` first waits (in the same
    /// `io_uring_enter`) for a completion, at most `limit` (`None`: no limit), unless some
    /// are already there.
    pub(crate) fn turn(&self, wait: Option<Option<std::time::Duration>>) -> io::Result<()> {
        let inner = &self.inner;
        let Some(limit) = wait else {
            inner.submit();
            inner.reap();
            return Ok(());
        };
        if inner.reap() > 0 {
            inner.submit();
            return Ok(());
        }
        let res = {
            let uring = inner.uring.borrow();
            match limit {
                Some(d) => {
                    let ts = io_uring::types::Timespec::new()
                        .sec(d.as_secs())
                        .nsec(d.subsec_nanos());
                    let args = io_uring::types::SubmitArgs::new().timespec(&ts);
                    uring.submitter().submit_with_args(1, &args)
                }
                None => uring.submitter().submit_and_wait(1),
            }
        };
        let left = inner.uring.borrow_mut().submission().len();
        inner
            .unsubmitted
            .set(u32::try_from(left).unwrap_or(u32::MAX));
        match res {
            Ok(_) => {}
            // The timer is due, a signal arrived, or the completion queue is full (reaping
            // below makes room): all just end the wait.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                ) => {}
            Err(e) => return Err(e),
        }
        inner.reap();
        Ok(())
    }

    /// Reads the eventfd `fd` (8 bytes) through the ring: completes once another thread wrote
    /// it, ending the run loop's wait.
    pub(crate) async fn read_eventfd(&self, fd: &OwnedFd) -> io::Result<()> {
        let mut buf = vec![0u8; 8];
        let entry =
            io_uring::opcode::Read::new(io_uring::types::Fd(fd.as_raw_fd()), buf.as_mut_ptr(), 8)
                .build();
        self.inner.internal.set(self.inner.internal.get() + 1);
        let c = crate::op::Op::submit(self, entry, Hold::Vec(buf)).await;
        self.inner
            .internal
            .set(self.inner.internal.get().saturating_sub(1));
        if c.result < 0 {
            return Err(io::Error::from_raw_os_error(-c.result));
        }
        Ok(())
    }

    /// Receive buffers currently held by the program (not by the kernel).
    pub fn buffers_lent(&self) -> u32 {
        self.inner.pool.lent()
    }

    /// Operations submitted and not completed (the run loop's own eventfd read excepted).
    pub fn in_flight(&self) -> u32 {
        self.inner
            .in_flight
            .get()
            .saturating_sub(self.inner.internal.get())
    }

    /// Queues `entry`, lending `hold` to the kernel until its completion. Returns the slot.
    pub(crate) fn push(&self, entry: squeue::Entry, hold: Hold) -> usize {
        let idx = self
            .inner
            .slots
            .borrow_mut()
            .insert(Slot::Pending { waker: None, hold });
        self.push_raw(entry.user_data(idx as u64));
        self.inner.in_flight.set(self.inner.in_flight.get() + 1);
        idx
    }

    fn push_raw(&self, entry: squeue::Entry) {
        let mut uring = self.inner.uring.borrow_mut();
        loop {
            // SAFETY: every pointer in `entry` points into a `Hold` kept in the slot table (or
            // into the provided-buffer pool) until the completion for this user_data is reaped.
            if unsafe { uring.submission().push(&entry) }.is_ok() {
                break;
            }
            // Submission queue full: flush it now, synchronously.
            if uring.submit().is_err() {
                // Nothing else to do but retry; EINTR/EBUSY clear themselves.
                continue;
            }
            self.inner.unsubmitted.set(0);
        }
        drop(uring);
        // Submitted by the run loop after the tasks it is running (`rt`).
        self.inner.unsubmitted.set(self.inner.unsubmitted.get() + 1);
    }

    /// Polls slot `idx`: the completion if it arrived, else registers the waker.
    pub(crate) fn poll_slot(&self, idx: usize, cx: &Context<'_>) -> Poll<Completion> {
        let mut slots = self.inner.slots.borrow_mut();
        match slots.slots.get_mut(idx) {
            Some(Slot::Pending { waker, .. }) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(Slot::Done { .. }) => match slots.release(idx) {
                Some(Slot::Done {
                    result,
                    flags,
                    hold,
                }) => Poll::Ready(Completion {
                    result,
                    flags,
                    hold,
                }),
                _ => Poll::Ready(Completion {
                    result: -libc::EIO,
                    flags: 0,
                    hold: Hold::None,
                }),
            },
            // Polled after completion was taken: a programming error, reported as an I/O error.
            _ => Poll::Ready(Completion {
                result: -libc::EIO,
                flags: 0,
                hold: Hold::None,
            }),
        }
    }

    /// Closes `fd` through the ring, after every operation queued before it: an operation
    /// already pushed for this descriptor but not yet submitted still finds its file, and the
    /// descriptor number cannot be reused by a new socket before then (a synchronous close
    /// could hand that operation someone else's connection).
    pub(crate) fn close_fd(&self, fd: RawFd) {
        let close = io_uring::opcode::Close::new(io_uring::types::Fd(fd)).build();
        self.push_raw(close.user_data(UNTRACKED));
    }

    /// The future of slot `idx` was dropped before completion: orphan it and cancel the op.
    pub(crate) fn abandon(&self, idx: usize) {
        let mut slots = self.inner.slots.borrow_mut();
        let Some(slot) = slots.slots.get_mut(idx) else {
            return;
        };
        match std::mem::replace(slot, Slot::Orphan { hold: Hold::None }) {
            Slot::Pending { hold, .. } => {
                *slot = Slot::Orphan { hold };
                drop(slots);
                let cancel = io_uring::opcode::AsyncCancel::new(idx as u64).build();
                self.push_raw(cancel.user_data(UNTRACKED));
            }
            Slot::Done {
                hold,
                result,
                flags,
            } => {
                drop(slots.release(idx));
                match hold {
                    // Completed but never taken: the bytes wait for the socket's next receive.
                    Hold::Recv(stash) => stash.keep(result, flags),
                    // The connection waits for the listener's next accept.
                    Hold::Accept(addr, stash) => stash.keep(result, &addr),
                    other => {
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            self.inner.pool.recycle(bid);
                        }
                        drop(other);
                    }
                }
            }
            other => *slot = other,
        }
    }
}

impl Inner {
    fn submit(&self) {
        if self.unsubmitted.get() == 0 && !self.uring.borrow_mut().submission().taskrun() {
            return;
        }
        // Errors (EINTR, EBUSY when the CQ is full) leave entries queued; the next pass retries.
        if self.uring.borrow().submit().is_ok() {
            self.unsubmitted.set(0);
        }
    }

    /// Moves completions into their slots and wakes their tasks. Returns how many were reaped.
    fn reap(&self) -> usize {
        let mut reaped = 0;
        let mut wake = self.wake_list.borrow_mut();
        {
            let mut uring = self.uring.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            for cqe in uring.completion() {
                reaped += 1;
                if cqe.user_data() == UNTRACKED {
                    continue;
                }
                let idx = cqe.user_data() as usize;
                let (result, flags) = (cqe.result(), cqe.flags());
                let Some(slot) = slots.slots.get_mut(idx) else {
                    continue;
                };
                match std::mem::replace(slot, Slot::Orphan { hold: Hold::None }) {
                    Slot::Pending { waker, hold } => {
                        *slot = Slot::Done {
                            result,
                            flags,
                            hold,
                        };
                        self.in_flight.set(self.in_flight.get().saturating_sub(1));
                        if let Some(w) = waker {
                            wake.push(w);
                        }
                    }
                    Slot::Orphan { hold } => {
                        self.in_flight.set(self.in_flight.get().saturating_sub(1));
                        if let Hold::Recv(stash) = &hold {
                            // Completed after its future was dropped: kept for the next
                            // receive on the socket (nothing if the cancel won).
                            stash.keep(result, flags);
                        } else if let Hold::Accept(addr, stash) = &hold {
                            // Likewise a connection, for the listener's next accept.
                            stash.keep(result, addr);
                        } else if let Some(bid) = cqueue::buffer_select(flags) {
                            self.pool.recycle(bid);
                        }
                        if result >= 0 && is_accept_like(&hold) {
                            // An accepted socket nobody will use: close it.
                            // SAFETY: the kernel just gave us this descriptor.
                            unsafe { libc::close(result) };
                        }
                        drop(slots.release(idx));
                        drop(hold);
                    }
                    other => *slot = other,
                }
            }
        }
        for w in wake.drain(..) {
            w.wake();
        }
        reaped
    }
}

fn is_accept_like(hold: &Hold) -> bool {
    matches!(hold, Hold::Addr(a) if a.is_accept)
}
