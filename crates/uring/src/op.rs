//! The operation future and the owned send buffer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::driver::{Completion, Hold, Ring};
use crate::RecvBuf;

/// An operation in flight: resolves to its completion. Dropping it cancels the operation; the
/// resources it lent stay with the ring until the kernel is done with them.
pub(crate) struct Op {
    ring: Ring,
    idx: Option<usize>,
}

impl Op {
    pub(crate) fn submit(ring: &Ring, entry: io_uring::squeue::Entry, hold: Hold) -> Op {
        let idx = ring.push(entry, hold);
        Op {
            ring: ring.clone(),
            idx: Some(idx),
        }
    }
}

impl Future for Op {
    type Output = Completion;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        let this = self.get_mut();
        let Some(idx) = this.idx else {
            return Poll::Ready(Completion {
                result: -libc::EIO,
                flags: 0,
                hold: Hold::None,
            });
        };
        match this.ring.poll_slot(idx, cx) {
            Poll::Ready(c) => {
                this.idx = None;
                Poll::Ready(c)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if let Some(idx) = self.idx.take() {
            self.ring.abandon(idx);
        }
    }
}

/// Bytes to send, owned so they outlive a dropped send future: a heap buffer (with a read
/// position) or a received buffer forwarded as-is (zero copy from the provided-buffer pool).
pub enum SendBuf {
    Vec { buf: Vec<u8>, pos: usize },
    Recv(RecvBuf),
}

impl SendBuf {
    pub fn from_vec(buf: Vec<u8>) -> SendBuf {
        SendBuf::Vec { buf, pos: 0 }
    }

    /// The bytes still to send.
    pub fn remaining(&self) -> &[u8] {
        match self {
            SendBuf::Vec { buf, pos } => buf.get(*pos..).unwrap_or(&[]),
            SendBuf::Recv(r) => r.bytes(),
        }
    }

    pub(crate) fn advance(&mut self, n: usize) {
        match self {
            SendBuf::Vec { buf, pos } => *pos = (*pos + n).min(buf.len()),
            SendBuf::Recv(r) => r.consume(n),
        }
    }

    /// Gives the heap buffer back with its contents (to send again, e.g. on a retry).
    pub fn into_inner(self) -> Option<Vec<u8>> {
        match self {
            SendBuf::Vec { buf, .. } => Some(buf),
            SendBuf::Recv(_) => None,
        }
    }

    /// Gives the heap buffer back (cleared) for reuse; `None` for a received buffer.
    pub fn into_vec(self) -> Option<Vec<u8>> {
        match self {
            SendBuf::Vec { mut buf, .. } => {
                buf.clear();
                Some(buf)
            }
            SendBuf::Recv(_) => None,
        }
    }
}
