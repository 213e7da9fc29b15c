//! Channels into a shard from other threads (the control shard, the other shards).
//!
//! A crossbeam queue plus the receiving shard's `Remote`: a send pushes, then notifies the
//! shard, which costs an eventfd write only while the shard sleeps. The receiver learns its
//! shard the first time it is polled; a message sent before then waits in the queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use super::{with_current, Remote};

struct Shared {
    /// The receiving shard, once its receiver was first polled there.
    remote: OnceLock<Arc<Remote>>,
}

impl Shared {
    fn notify(&self) {
        // Pairs with the receiver's fence between learning its shard and looking at the queue:
        // either the receiver sees the message or the sender sees the shard.
        fence(Ordering::SeqCst);
        if let Some(r) = self.remote.get() {
            r.notify();
        }
    }
}

/// The sending end; cheap to clone, usable from any thread.
pub struct Sender<T> {
    /// `None` only while dropping: the queue's sender must go before the receiver is told, or
    /// it would look and find the channel still open.
    tx: Option<crossbeam_channel::Sender<T>>,
    shared: Arc<Shared>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// The receiving end; belongs to one shard.
pub struct Receiver<T> {
    rx: crossbeam_channel::Receiver<T>,
    shared: Arc<Shared>,
}

/// A channel without a bound (control messages: rare, and a sender must never wait).
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    pair(crossbeam_channel::unbounded())
}

/// A channel holding at most `cap` messages; `Sender::send` waits while it is full.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    pair(crossbeam_channel::bounded(cap))
}

fn pair<T>(
    (tx, rx): (crossbeam_channel::Sender<T>, crossbeam_channel::Receiver<T>),
) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        remote: OnceLock::new(),
    });
    (
        Sender {
            tx: Some(tx),
            shared: shared.clone(),
        },
        Receiver { rx, shared },
    )
}

/// How long a sender waits before trying a full channel again (a full mesh channel means the
/// peer shard is overloaded; polling it is cheaper than waking senders from every receive).
const FULL_RETRY: Duration = Duration::from_millis(1);

impl<T> Sender<T> {
    /// Queues `msg` without waiting; gives it back if the channel is full or closed.
    pub fn try_send(&self, msg: T) -> Result<(), T> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(msg);
        };
        match tx.try_send(msg) {
            Ok(()) => {
                self.shared.notify();
                Ok(())
            }
            Err(crossbeam_channel::TrySendError::Full(m))
            | Err(crossbeam_channel::TrySendError::Disconnected(m)) => Err(m),
        }
    }

    /// Queues `msg`, waiting (on a shard runtime) while the channel is full. `Err` gives it
    /// back when the receiver is gone.
    pub async fn send(&self, mut msg: T) -> Result<(), T> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(msg);
        };
        loop {
            match tx.try_send(msg) {
                Ok(()) => {
                    self.shared.notify();
                    return Ok(());
                }
                Err(crossbeam_channel::TrySendError::Disconnected(m)) => return Err(m),
                Err(crossbeam_channel::TrySendError::Full(m)) => {
                    msg = m;
                    if with_current(|_| ()).is_none() {
                        // Not on a shard runtime (no timer here): hand it back.
                        return Err(msg);
                    }
                    super::sleep(FULL_RETRY).await;
                }
            }
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // The last sender going away must wake the receiver to see the end: close first.
        drop(self.tx.take());
        self.shared.notify();
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the queue is empty.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv { rx: self }
    }

    fn poll_recv(&self, cx: &Context<'_>) -> Poll<Option<T>> {
        if self.shared.remote.get().is_none() {
            if let Some(remote) = with_current(|rt| rt.remote.clone()) {
                let _ = self.shared.remote.set(remote);
            }
            fence(Ordering::SeqCst);
        }
        match self.rx.try_recv() {
            Ok(m) => Poll::Ready(Some(m)),
            Err(crossbeam_channel::TryRecvError::Disconnected) => Poll::Ready(None),
            Err(crossbeam_channel::TryRecvError::Empty) => {
                with_current(|rt| rt.wait_inbox(cx.waker()));
                Poll::Pending
            }
        }
    }
}

/// The future of `Receiver::recv`.
pub struct Recv<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}
