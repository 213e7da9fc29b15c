//! A one-shot, shard-local broadcast: tasks wait until it is raised (soft/hard stop).
//!
//! Every idle keep-alive connection waits on it, so a waiter costs O(1) to register, update and
//! leave: each `Wait` owns a slot in a table, reused after the wait ends (dropping a `Wait`
//! frees its slot), and the table holds only current waiters.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    raised: Cell<bool>,
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Notify {
    pub fn raise(&self) {
        self.raised.set(true);
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised.get()
    }

    /// Resolves once `raise` was called.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            notify: self,
            slot: None,
        }
    }

    /// Waiters registered now (for tests and stats).
    pub fn waiters(&self) -> usize {
        self.slots.borrow().iter().filter(|s| s.is_some()).count()
    }
}

/// The future of [`Notify::wait`].
pub struct Wait<'a> {
    notify: &'a Notify,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.notify.raised.get() {
            return Poll::Ready(());
        }
        let mut slots = this.notify.slots.borrow_mut();
        match this.slot.and_then(|i| slots.get_mut(i)) {
            Some(Some(w)) if w.will_wake(cx.waker()) => {}
            Some(slot) => *slot = Some(cx.waker().clone()),
            None => {
                let i = match this.notify.free.borrow_mut().pop() {
                    Some(i) => i,
                    None => {
                        slots.push(None);
                        slots.len() - 1
                    }
                };
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(cx.waker().clone());
                }
                this.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            if let Some(slot) = self.notify.slots.borrow_mut().get_mut(i) {
                *slot = None;
            }
            self.notify.free.borrow_mut().push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn waiters_leave_their_slot_when_dropped_and_slots_are_reused() {
        let n = Notify::default();
        let counter = Arc::new(Count(0.into()));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut w = Box::pin(n.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(n.waiters(), 0, "dropped waits hold no slot");
        assert_eq!(n.slots.borrow().len(), 1, "one slot, reused");
        let mut a = Box::pin(n.wait());
        let mut b = Box::pin(n.wait());
        assert!(a.as_mut().poll(&mut cx).is_pending() && b.as_mut().poll(&mut cx).is_pending());
        assert_eq!(n.waiters(), 2);
        n.raise();
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert!(a.as_mut().poll(&mut cx).is_ready() && b.as_mut().poll(&mut cx).is_ready());
        drop((a, b));
        assert!(Box::pin(n.wait()).as_mut().poll(&mut cx).is_ready());
    }
}
