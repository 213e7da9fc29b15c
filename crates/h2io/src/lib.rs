//! tokio's `AsyncRead`/`AsyncWrite` over the engine's completion-based streams, for the `h2`
//! crate (which needs tokio's IO traits but no tokio runtime).
//!
//! This crate is the only one allowed to name tokio (cargo-deny `wrappers`): the engine
//! implements [`Transport`] (owned-buffer futures, as io_uring wants) and hands h2 an
//! [`H2Io`]. Reads keep one received chunk and copy out of it as h2 asks; writes are gathered
//! in a buffer and sent when h2 flushes (h2 flushes after each batch of frames), so there is one
//! send in flight at a time and its buffer is reused.
//!
//! On the server side the adapter can also watch the frames it hands h2 ([`H2Io::watch_floods`]):
//! h2 answers every PING and SETTINGS and reads every empty frame, with no limit of its own,
//! so a peer that sends them by the thousand costs CPU for nothing (CVE-2019-9512, -9515,
//! -9518). Past [`IDLE_FRAMES_PER_SEC`] such frames within a second, the adapter stops reading
//! the connection until the second is over: a flood is throttled to that rate, and the
//! flooding peer waits on its own full socket instead of taking CPU from other connections.
//! The streams h2 resets because the peer broke the protocol (MadeYouReset) count too, from
//! the RST_STREAM frames it writes ([`PROTOCOL_RESET_COST`]).
//! (Closing the connection instead, with GOAWAY `ENHANCE_YOUR_CALM`, was measured worse: the
//! attacker reconnects at once and every new connection costs more than the frames saved;
//! docs/reliability.md.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, before the client's first frame.
const PREFACE_LEN: usize = 24;

/// Bytes gathered before `poll_write` waits for the send in flight (bounds memory per
/// connection; h2's own send buffer is bounded separately).
const WRITE_HIGH: usize = 64 << 10;

/// Frames that make the server work and carry no request (PING and SETTINGS to acknowledge,
/// PRIORITY, empty DATA, HEADERS or CONTINUATION that end nothing, unknown types) a peer may
/// send in one second. A client sends a few (its SETTINGS, a keep-alive PING, a browser's
/// PRIORITY tree); the floods send them by the hundred thousand per second.
pub const IDLE_FRAMES_PER_SEC: u32 = 1000;
const FLOOD_WINDOW: Duration = Duration::from_secs(1);

/// A timer of the engine: the adapter itself names no runtime.
pub type Sleep = fn(Duration) -> LocalFuture<()>;

/// Frame boundaries in a byte stream fed in pieces: skips payloads, gathers headers split
/// across pieces.
#[derive(Default)]
struct Frames {
    /// Bytes still to skip: the connection preface, then each frame's payload.
    skip: usize,
    /// A frame header split across pieces.
    head: [u8; 9],
    have: usize,
}

impl Frames {
    /// From `*at` in `b`: the next complete frame header (its payload is then skipped as the
    /// walk goes on, unless the caller consumes some of it from `skip`), or `None` once `b`
    /// is used up.
    fn next(&mut self, b: &[u8], at: &mut usize) -> Option<[u8; 9]> {
        while *at < b.len() {
            if self.skip > 0 {
                let n = self.skip.min(b.len() - *at);
                self.skip -= n;
                *at += n;
                continue;
            }
            let n = (9 - self.have).min(b.len() - *at);
            if let (Some(dst), Some(src)) = (
                self.head.get_mut(self.have..self.have + n),
                b.get(*at..*at + n),
            ) {
                dst.copy_from_slice(src);
            }
            self.have += n;
            *at += n;
            if self.have < 9 {
                return None;
            }
            self.have = 0;
            let [l0, l1, l2, ..] = self.head;
            self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
            return Some(self.head);
        }
        None
    }
}

/// The frame headers of the bytes handed to h2, counted for [`IDLE_FRAMES_PER_SEC`].
struct FloodWatch {
    /// Starts after the connection preface.
    frames: Frames,
    /// Idle frames since `since`.
    idle: u32,
    since: Instant,
    sleep: Sleep,
    /// Set while reading is paused (the limit was passed).
    paused: Option<LocalFuture<()>>,
    /// The frames h2 writes, for the streams it resets because the peer broke the protocol.
    out: OutScan,
}

/// The frame headers of what h2 writes, and the error code of each RST_STREAM.
#[derive(Default)]
struct OutScan {
    frames: Frames,
    /// In a RST_STREAM payload: its error code so far.
    code: Option<([u8; 4], usize)>,
}

impl OutScan {
    /// RST_STREAM frames with `PROTOCOL_ERROR` in `b` (the next bytes h2 writes): the streams
    /// h2 or ringlb reset because the peer sent a malformed request.
    fn protocol_resets(&mut self, b: &[u8]) -> u32 {
        const RST_STREAM: u8 = 3;
        const PROTOCOL_ERROR: [u8; 4] = [0, 0, 0, 1];
        let mut resets = 0;
        let mut at = 0;
        while at < b.len() {
            if let Some((code, have)) = self.code.as_mut() {
                // The error code: the first 4 bytes of the payload the walk would skip.
                let n = (4 - *have).min(b.len() - at);
                if let (Some(dst), Some(src)) = (code.get_mut(*have..*have + n), b.get(at..at + n))
                {
                    dst.copy_from_slice(src);
                }
                *have += n;
                at += n;
                self.frames.skip -= n;
                if *have == 4 {
                    resets += u32::from(*code == PROTOCOL_ERROR);
                    self.code = None;
                }
                continue;
            }
            let Some([.., kind, _, _, _, _, _]) = self.frames.next(b, &mut at) else {
                break;
            };
            if kind == RST_STREAM && self.frames.skip >= 4 {
                self.code = Some(([0; 4], 0));
            }
        }
        resets
    }
}

/// What a stream reset for a protocol error costs against [`IDLE_FRAMES_PER_SEC`]: h2 ends
/// the connection after `max_local_error_reset_streams` of them (MadeYouReset), and the
/// attacker reconnects at once; 10 each holds such a peer to about 100 a second.
const PROTOCOL_RESET_COST: u32 = 10;

impl FloodWatch {
    /// Counts the frames of `b` (the next bytes of the stream) and returns how many of its
    /// bytes h2 may have: all of them, or up to the end of the header that passed the limit
    /// (reading then pauses; the rest is handed over after the pause).
    fn scan(&mut self, b: &[u8]) -> usize {
        let mut at = 0;
        while let Some([.., kind, flags, _, _, _, _]) = self.frames.next(b, &mut at) {
            let cost = idle_cost(kind, flags, self.frames.skip);
            if cost > 0 && self.count(cost) {
                break;
            }
        }
        at
    }

    /// One more idle frame; past the limit within a second, reading pauses for the rest of
    /// the second (true; the clock is read once per `IDLE_FRAMES_PER_SEC` frames).
    fn count(&mut self, cost: u32) -> bool {
        self.idle = self.idle.saturating_add(cost);
        if self.idle <= IDLE_FRAMES_PER_SEC {
            return false;
        }
        self.idle = 0;
        let now = Instant::now();
        let spent = now.saturating_duration_since(self.since);
        if spent >= FLOOD_WINDOW {
            self.since = now;
            return false;
        }
        // Allocates one timer future per throttled second of a flooding connection.
        self.paused = Some((self.sleep)(FLOOD_WINDOW - spent));
        self.since = now + (FLOOD_WINDOW - spent);
        true
    }
}

/// What a frame (type, flags, payload length) counts against [`IDLE_FRAMES_PER_SEC`]: 0 for
/// a frame that carries something.
fn idle_cost(kind: u8, flags: u8, len: usize) -> u32 {
    const END_STREAM: u8 = 0x1;
    const ACK: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    match kind {
        // DATA: h2 ends the connection at its 100th empty DATA frame, and the flooding client
        // reconnects at once (each new connection costs more than its frames): empty DATA
        // counts as much as 32 other frames, so that a flood of them is throttled (to 31 a
        // second) well before that.
        0 if len == 0 && flags & END_STREAM == 0 => 32,
        // HEADERS, CONTINUATION that end nothing
        1 | 9 if len == 0 && flags & END_HEADERS == 0 => 1,
        // PRIORITY
        2 => 1,
        // SETTINGS, PING to acknowledge
        4 | 6 if flags & ACK == 0 => 1,
        // Unknown types: ignored by h2, read all the same.
        10.. => 1,
        // The rest carries something; RST_STREAM is bounded by h2 itself (rapid reset),
        // WINDOW_UPDATE comes often from a client that downloads.
        _ => 0,
    }
}

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
    flood: Option<FloodWatch>,
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
            flood: None,
        }
    }

    /// Watches the peer's frames for floods of idle frames (a server's adapter: the bytes
    /// read start with the client's connection preface), throttling the peer to
    /// [`IDLE_FRAMES_PER_SEC`] with `sleep`.
    pub fn watch_floods(&mut self, sleep: Sleep) {
        self.flood = Some(FloodWatch {
            frames: Frames {
                skip: PREFACE_LEN,
                ..Frames::default()
            },
            idle: 0,
            since: Instant::now(),
            sleep,
            paused: None,
            out: OutScan::default(),
        });
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
        if let Some(f) = this.flood.as_mut() {
            if let Some(p) = f.paused.as_mut() {
                // Throttled: nothing more for h2 until the flood's second is over.
                if p.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                f.paused = None;
            }
        }
        loop {
            if let Some((chunk, off)) = this.chunk.as_mut() {
                let rest = T::bytes(chunk).get(*off..).unwrap_or_default();
                let mut n = rest.len().min(out.remaining());
                if let Some(f) = this.flood.as_mut() {
                    n = f.scan(rest.get(..n).unwrap_or_default());
                }
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
        if let Some(f) = this.flood.as_mut() {
            let resets = f.out.protocol_resets(buf);
            if resets > 0 {
                // Throttles the reading side: the next read waits if this passed the limit.
                f.count(resets.saturating_mul(PROTOCOL_RESET_COST));
            }
        }
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

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// A sleep that never ends: the adapter stays paused once throttled.
    fn forever(_: Duration) -> LocalFuture<()> {
        Box::pin(std::future::pending())
    }

    /// Reads through the adapter until it pends or ends; the bytes h2 would have got.
    fn drain(io: &mut H2Io<Mem>) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        loop {
            let mut space = [0u8; 4096];
            let mut rb = ReadBuf::new(&mut space);
            match Pin::new(&mut *io).poll_read(&mut cx(), &mut rb) {
                Poll::Pending => return (got, true),
                Poll::Ready(r) => {
                    assert!(r.is_ok());
                    if rb.filled().is_empty() {
                        return (got, false);
                    }
                    got.extend_from_slice(rb.filled());
                }
            }
        }
    }

    /// The connection preface, then `frames`, delivered in `chunk`-byte pieces.
    fn flood_io(frames: &[Vec<u8>], chunk: usize) -> (H2Io<Mem>, Vec<u8>) {
        let mut all = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for f in frames {
            all.extend_from_slice(f);
        }
        let m = Rc::new(Mem::default());
        for piece in all.chunks(chunk) {
            m.input.borrow_mut().push_back(piece.to_vec());
        }
        let mut io = H2Io::new(m);
        io.watch_floods(forever);
        (io, all)
    }

    #[test]
    fn a_ping_flood_is_cut_right_after_the_limit() {
        let ping = frame(6, 0, &[7; 8]);
        let n = IDLE_FRAMES_PER_SEC as usize + 500;
        // Odd chunk sizes split headers and payloads across reads.
        for chunk in [7, 1000, 16384] {
            let (mut io, all) = flood_io(&vec![ping.clone(); n], chunk);
            let (got, pending) = drain(&mut io);
            assert!(pending, "chunk {chunk}: paused");
            // The preface and the first IDLE_FRAMES_PER_SEC + 1 headers: the limit is passed
            // by the header of frame 1001, whose payload waits for the pause to end.
            let want = 24 + IDLE_FRAMES_PER_SEC as usize * ping.len() + 9;
            assert_eq!(got.len(), want, "chunk {chunk}");
            assert_eq!(got[..], all[..want]);
        }
    }

    #[test]
    fn reading_resumes_where_it_paused_once_the_pause_is_over() {
        let ping = frame(6, 0, &[7; 8]);
        let (mut io, all) = flood_io(&vec![ping; 3500], 5000);
        if let Some(f) = io.flood.as_mut() {
            f.sleep = |_| Box::pin(std::future::ready(()));
        }
        let (got, pending) = drain(&mut io);
        assert!(!pending);
        assert_eq!(got, all, "every byte once, in order");
    }

    #[test]
    fn acks_requests_and_a_few_pings_are_not_throttled() {
        let ack = frame(6, 1, &[7; 8]);
        let settings_ack = frame(4, 1, &[]);
        let data = frame(0, 0, b"body");
        let window = frame(8, 0, &[0, 0, 1, 0]);
        let mut frames = Vec::new();
        for _ in 0..2000 {
            frames.extend([
                ack.clone(),
                settings_ack.clone(),
                data.clone(),
                window.clone(),
            ]);
        }
        frames.extend(vec![frame(6, 0, &[1; 8]); IDLE_FRAMES_PER_SEC as usize]);
        let (mut io, all) = flood_io(&frames, 4096);
        let (got, pending) = drain(&mut io);
        assert!(!pending, "not throttled");
        assert_eq!(got, all);
    }

    #[test]
    fn empty_data_frames_are_throttled_before_h2_closes_the_connection() {
        // h2 ends a connection at its 100th empty DATA frame; the adapter pauses first.
        let empty = frame(0, 0, &[]);
        let (mut io, _) = flood_io(&vec![empty; 200], 16384);
        let (got, pending) = drain(&mut io);
        assert!(pending);
        let frames = (got.len() - 24) / 9;
        assert!(frames < 100, "{frames} empty DATA frames before the pause");
    }

    #[test]
    fn streams_reset_for_protocol_errors_throttle_the_reading_side() {
        let rst = |code: u32| frame(3, 0, &code.to_be_bytes());
        let mut out = OutScan::default();
        // Split anywhere: counted once each; CANCEL (8), NO_ERROR (0), REFUSED_STREAM (7) and
        // DATA carrying the same bytes are not protocol resets.
        let mut written = Vec::new();
        for code in [1, 8, 1, 0, 7, 1] {
            written.extend(rst(code));
        }
        written.extend(frame(0, 0, &[0, 0, 0, 1]));
        let counted: u32 = written.chunks(5).map(|c| out.protocol_resets(c)).sum();
        assert_eq!(counted, 3);

        // h2 writing 101 such resets pauses the next read (100 a second at most).
        let (mut io, _) = flood_io(&[frame(6, 1, &[0; 8])], 4096);
        let resets: Vec<u8> = (0..101).flat_map(|_| rst(1)).collect();
        let w = Pin::new(&mut io).poll_write(&mut cx(), &resets);
        assert!(matches!(w, Poll::Ready(Ok(n)) if n == resets.len()));
        let mut space = [0u8; 64];
        let mut rb = ReadBuf::new(&mut space);
        assert!(Pin::new(&mut io).poll_read(&mut cx(), &mut rb).is_pending());
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
