//! Task ids, wakers and join handles.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::{with_current, Remote};

/// A task id: slab index and the slot's generation, so a waker outliving its task never polls
/// the slot's next occupant.
pub(super) fn id(idx: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(idx)
}

pub(super) fn split(id: u64) -> (u32, u32) {
    ((id & 0xffff_ffff) as u32, (id >> 32) as u32)
}

/// A task's waker. An `Arc` because std wakers must be `Send`; woken on its own shard it only
/// queues the id (no lock, no syscall).
pub(super) struct TaskWake {
    id: u64,
    /// Already in a ready queue: more wakes before the next poll add nothing.
    queued: AtomicBool,
    remote: Arc<Remote>,
}

impl TaskWake {
    pub(super) fn new(id: u64, remote: Arc<Remote>) -> TaskWake {
        TaskWake {
            id,
            queued: AtomicBool::new(false),
            remote,
        }
    }

    pub(super) fn mark_queued(&self) {
        self.queued.store(true, Ordering::Relaxed);
    }

    pub(super) fn clear_queued(&self) {
        self.queued.store(false, Ordering::Relaxed);
    }
}

impl Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let local = with_current(|rt| {
            if Arc::ptr_eq(&rt.remote, &self.remote) {
                rt.schedule(self.id);
                true
            } else {
                false
            }
        });
        if local != Some(true) {
            match self.remote.woken.lock() {
                Ok(mut w) => w.push(self.id),
                Err(poisoned) => poisoned.into_inner().push(self.id),
            }
            self.remote.notify();
        }
    }
}

struct Joined<T> {
    value: Option<T>,
    waiter: Option<Waker>,
}

/// The result of a spawned task. Dropping it (or `detach`) lets the task run on.
pub struct JoinHandle<T> {
    state: Rc<RefCell<Joined<T>>>,
}

impl<T> JoinHandle<T> {
    /// Lets the task run without waiting for it.
    pub fn detach(self) {}

    pub(super) fn take(&self) -> Option<T> {
        self.state.borrow_mut().value.take()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.state.borrow_mut();
        match st.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                st.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// `fut`, storing its output for a `JoinHandle`. A struct rather than an `async` block:
    /// a block that awaits a captured future keeps both the capture and the awaited copy in
    /// its state, doubling every task's size (measured: +25 KiB per HTTP/2 stream in debug
    /// builds).
    pub(super) struct Joining<F: Future> {
        #[pin]
        fut: F,
        state: Rc<RefCell<Joined<F::Output>>>,
    }
}

impl<F: Future> Future for Joining<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let Poll::Ready(v) = this.fut.poll(cx) else {
            return Poll::Pending;
        };
        let waiter = {
            let mut st = this.state.borrow_mut();
            st.value = Some(v);
            st.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
        Poll::Ready(())
    }
}

/// `fut` made to store its output for a `JoinHandle`.
pub(super) fn joined<F: Future + 'static>(fut: F) -> (JoinHandle<F::Output>, Joining<F>) {
    let state = Rc::new(RefCell::new(Joined {
        value: None,
        waiter: None,
    }));
    let handle = JoinHandle {
        state: state.clone(),
    };
    (handle, Joining { fut, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(split(id(7, 3)), (7, 3));
        assert_eq!(split(id(u32::MAX, u32::MAX)), (u32::MAX, u32::MAX));
        assert_ne!(id(1, 1), id(1, 2));
    }
}
