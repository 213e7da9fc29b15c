//! tokio's `AsyncRead`/`AsyncWrite` over the engine's completion-based streams, for the `h2`
//! crate (which needs tokio's IO traits but no tokio runtime).
//!
//! This crate is the only one allowed to name tokio (cargo-deny `wrappers`): the engine
//! implements [`Transport`] (owned-buffer futures, as io_uring wants) and hands h2 an
//! [`H2Io`]. Reads keep one received chunk and copy out of it as h2 asks; writes are gathered
//! in a buffer and sent when h2 flushes (h2 flushes after each batch of frames), so there is one
//! send in flight at a time and its buffer is reused.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

pub use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A boxed, single-threaded future (shards are single-threaded: no `Send`).
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// What the adapter needs from a byte stream. Every future owns its buffers and an `Rc` of the
/// transport, so it can be kept across polls.
pub trait Transport: 'static {
    /// A received chunk (e.g. a provided ring buffer), released when dropped.
    type Chunk: 'static;
    /// The bytes of a chunk.
    fn bytes(chunk: &Self::Chunk) -> &[u8];
    /// The next chunk, `Ok(None)` at end of stream.
    fn recv(self: Rc<Self>) -> LocalFuture<io::Result<Option<Self::Chunk>>>;
    /// Sends all of `buf`, giving it back for reuse.
    fn send(self: Rc<Self>, buf: Vec<u8>) -> LocalFuture<(io::Result<()>, Vec<u8>)>;
    /// Half-closes the sending side.
    fn shutdown(self: Rc<Self>) -> LocalFuture<()>;
}

/// Bytes gathered before `poll_write` waits for the send in flight (bounds memory per
/// connection; h2's own send buffer is bounded separately).
const WRITE_HIGH: usize = 64 << 10;

/// The adapter handed to h2.
pub struct H2Io<T: Transport> {
    t: Rc<T>,
    reading: Option<LocalFuture<io::Result<Option<T::Chunk>>>>,
    /// A chunk being read out, and how far.
    chunk: Option<(T::Chunk, usize)>,
    eof: bool,
    writing: Option<LocalFuture<(io::Result<()>, Vec<u8>)>>,
    /// Bytes written by h2, not yet sent.
    wbuf: Vec<u8>,
    /// The buffer of the last completed send, reused for the next batch.
    spare: Vec<u8>,
    shutting: Option<LocalFuture<()>>,
}

impl<T: Transport> H2Io<T> {
    pub fn new(t: Rc<T>) -> H2Io<T> {
        H2Io {
            t,
            reading: None,
            chunk: None,
            eof: false,
            writing: None,
            wbuf: Vec::new(),
            spare: Vec::new(),
            shutting: None,
        }
    }

    /// Like [`H2Io::new`], with `first` (bytes already received from the transport, e.g.
    /// read by another protocol's layer before it handed the connection over) read first.
    pub fn with_first(t: Rc<T>, first: T::Chunk) -> H2Io<T> {
        let mut io = H2Io::new(t);
        if !T::bytes(&first).is_empty() {
            io.chunk = Some((first, 0));
        }
        io
    }

    /// Completes the send in flight, then starts one for the gathered bytes; ready when
    /// everything written so far has been sent.
    fn flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(f) = self.writing.as_mut() {
                let (r, buf) = match f.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(x) => x,
                };
                self.writing = None;
                self.spare = buf;
                r?;
            }
            if self.wbuf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let mut next = std::mem::take(&mut self.spare);
            next.clear();
            let batch = std::mem::replace(&mut self.wbuf, next);
            self.writing = Some(self.t.clone().send(batch));
        }
    }
}

impl<T: Transport> Unpin for H2Io<T> {}

impl<T: Transport> AsyncRead for H2Io<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some((chunk, off)) = this.chunk.as_mut() {
                let rest = T::bytes(chunk).get(*off..).unwrap_or_default();
                let n = rest.len().min(out.remaining());
                out.put_slice(rest.get(..n).unwrap_or_default());
                *off += n;
                if *off >= T::bytes(chunk).len() {
                    this.chunk = None;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let t = this.t.clone();
            let f = this.reading.get_or_insert_with(|| t.recv());
            match f.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    this.reading = None;
                    match r? {
                        Some(c) if !T::bytes(&c).is_empty() => this.chunk = Some((c, 0)),
                        Some(_) => {}
                        None => this.eof = true,
                    }
                }
            }
        }
    }
}

impl<T: Transport> AsyncWrite for H2Io<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.wbuf.len() >= WRITE_HIGH {
            match this.flush_inner(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The batch just handed to the transport left `wbuf` empty: take more.
                Poll::Pending if this.wbuf.len() < WRITE_HIGH => {}
                Poll::Pending => return Poll::Pending,
            }
        }
        this.wbuf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().flush_inner(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.flush_inner(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let t = this.t.clone();
        let f = this.shutting.get_or_insert_with(|| t.shutdown());
        f.as_mut().poll(cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::task::Waker;

    /// An in-memory transport: scripted chunks in, sends recorded.
    #[derive(Default)]
    struct Mem {
        input: RefCell<VecDeque<Vec<u8>>>,
        sent: RefCell<Vec<Vec<u8>>>,
        shut: RefCell<bool>,
    }

    impl Transport for Mem {
        type Chunk = Vec<u8>;
        fn bytes(c: &Vec<u8>) -> &[u8] {
            c
        }
        fn recv(self: Rc<Self>) -> LocalFuture<io::Result<Option<Vec<u8>>>> {
            Box::pin(async move { Ok(self.input.borrow_mut().pop_front()) })
        }
        fn send(self: Rc<Self>, buf: Vec<u8>) -> LocalFuture<(io::Result<()>, Vec<u8>)> {
            Box::pin(async move {
                self.sent.borrow_mut().push(buf.clone());
                (Ok(()), buf)
            })
        }
        fn shutdown(self: Rc<Self>) -> LocalFuture<()> {
            Box::pin(async move { *self.shut.borrow_mut() = true })
        }
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn reads_split_chunks_then_eof() {
        let m = Rc::new(Mem::default());
        m.input.borrow_mut().push_back(b"hello".to_vec());
        m.input.borrow_mut().push_back(b"!".to_vec());
        let mut io = H2Io::new(m);
        let mut got = Vec::new();
        loop {
            let mut space = [0u8; 3];
            let mut rb = ReadBuf::new(&mut space);
            let r = Pin::new(&mut io).poll_read(&mut cx(), &mut rb);
            assert!(matches!(r, Poll::Ready(Ok(()))));
            if rb.filled().is_empty() {
                break;
            }
            got.extend_from_slice(rb.filled());
        }
        assert_eq!(got, b"hello!");
    }

    #[test]
    fn writes_are_sent_on_flush_in_one_batch() {
        let m = Rc::new(Mem::default());
        let mut io = H2Io::new(m.clone());
        for part in [&b"ab"[..], b"cd"] {
            let r = Pin::new(&mut io).poll_write(&mut cx(), part);
            assert!(matches!(r, Poll::Ready(Ok(2))));
        }
        assert!(m.sent.borrow().is_empty(), "nothing sent before flush");
        assert!(matches!(
            Pin::new(&mut io).poll_flush(&mut cx()),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(*m.sent.borrow(), vec![b"abcd".to_vec()]);
        assert!(matches!(
            Pin::new(&mut io).poll_shutdown(&mut cx()),
            Poll::Ready(Ok(()))
        ));
        assert!(*m.shut.borrow());
    }
}
