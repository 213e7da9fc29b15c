//! A one-shot, shard-local broadcast: tasks wait until it is raised (soft/hard stop).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct Notify {
    raised: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn raise(&self) {
        self.raised.set(true);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised.get()
    }

    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.get() {
                return Poll::Ready(());
            }
            let mut w = self.waiters.borrow_mut();
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
