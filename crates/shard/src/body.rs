//! Streaming a message body from one socket to the other, per its framing, without buffering it
//! whole: each received buffer is validated (chunked) or counted (Content-Length) and sent as-is.
//! The bytes it reports are HAProxy's count of a body (`ringlb_http1::htx`): the payload, and
//! for a chunked body its trailer fields and end, not the chunk framing.

use std::time::Duration;

use ringlb_http1::{BodyCounter, BodyFraming, ChunkedDecoder, Limits, Side};
use ringlb_uring::{RecvBuf, SendBuf};

use crate::conn::Io;

use crate::time::within;

/// Timeouts and limits of one body transfer.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Inactivity limit on the sending peer (`timeout client` for requests, `server` for responses).
    pub recv_timeout: Option<Duration>,
    /// Limit for the receiving peer to take the bytes.
    pub send_timeout: Option<Duration>,
    /// Bounds chunk-size lines and trailers.
    pub head: Limits,
}

/// How a body transfer failed, by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Invalid chunked framing from the sender.
    Framing,
    RecvTimeout,
    /// The sender closed before the end of a delimited body.
    RecvClosed,
    RecvError,
    SendTimeout,
    SendError,
}

/// Forwards the body that starts with `first` (bytes already received after the head) from
/// `from` to `to`. `head`, when given, is a rewritten head to send before the body: it goes out
/// in the same write as the first body bytes (one segment, no copy) and is given back cleared.
/// Returns the bytes received past the end of the body (the next message), if any; adds the
/// body's size as HAProxy counts it to `body_bytes` (counted as received, sent or not:
/// haproxy's `%B` is what the sender sent it).
pub async fn forward_body<F: Io, T: Io>(
    from: &F,
    to: &T,
    framing: BodyFraming,
    first: Option<RecvBuf>,
    limits: BodyLimits,
    head: &mut Option<Vec<u8>>,
    body_bytes: &mut u64,
) -> Result<Option<RecvBuf>, BodyError> {
    let first = first.filter(|b| !b.is_empty());
    let head_pending = head.as_ref().is_some_and(|h| !h.is_empty());
    let mut sender = Sender {
        to,
        head,
        head_pending,
        timeout: limits.send_timeout,
    };
    if first.is_none() && !matches!(framing, BodyFraming::None | BodyFraming::ContentLength(0)) {
        // No body bytes came with the head: it goes out now, not when the first body bytes
        // come (a slow body must not hold back the head; haproxy forwards it at once).
        sender.flush_head().await?;
    }
    let result = forward(from, &mut sender, framing, first, limits, body_bytes).await;
    if result.is_ok() {
        // A head with no body bytes at all (no body, or an empty first read) still goes out.
        sender.flush_head().await?;
    }
    result
}

async fn forward<F: Io, T: Io>(
    from: &F,
    to: &mut Sender<'_, '_, T>,
    framing: BodyFraming,
    first: Option<RecvBuf>,
    limits: BodyLimits,
    counted: &mut u64,
) -> Result<Option<RecvBuf>, BodyError> {
    match framing {
        BodyFraming::None => Ok(first),
        BodyFraming::ContentLength(len) => {
            let mut counter = BodyCounter::new(len);
            let mut next = first;
            while !counter.is_done() {
                let mut buf = match next.take() {
                    Some(b) => b,
                    None => recv(from, limits.recv_timeout)
                        .await?
                        .ok_or(BodyError::RecvClosed)?,
                };
                let take = counter.feed(buf.len());
                *counted += take as u64;
                let extra = if take < buf.len() {
                    buf.split_off(take)
                } else {
                    None
                };
                to.send(buf).await?;
                if extra.is_some() {
                    return Ok(extra);
                }
            }
            Ok(next)
        }
        BodyFraming::Chunked => {
            let side = Side::Client; // errors are mapped by the caller per direction
            let mut decoder = ChunkedDecoder::new(side, &limits.head);
            let base = *counted;
            let mut next = first;
            loop {
                let mut buf = match next.take() {
                    Some(b) => b,
                    None => recv(from, limits.recv_timeout)
                        .await?
                        .ok_or(BodyError::RecvClosed)?,
                };
                let feed = decoder.feed(buf.bytes());
                *counted = base + decoder.htx_size();
                let feed = feed.map_err(|_| BodyError::Framing)?;
                let extra = if feed.consumed < buf.len() {
                    buf.split_off(feed.consumed)
                } else {
                    None
                };
                to.send(buf).await?;
                if feed.done {
                    return Ok(extra);
                }
            }
        }
        BodyFraming::UntilClose => {
            let mut next = first;
            loop {
                let buf = match next.take() {
                    Some(b) => b,
                    None => match recv(from, limits.recv_timeout).await? {
                        Some(b) => b,
                        None => return Ok(None),
                    },
                };
                *counted += buf.len() as u64;
                to.send(buf).await?;
            }
        }
    }
}

async fn recv<F: Io>(from: &F, timeout: Option<Duration>) -> Result<Option<RecvBuf>, BodyError> {
    match within(timeout, from.recv()).await {
        Err(_) => Err(BodyError::RecvTimeout),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(BodyError::RecvError),
    }
}

/// Body bytes up to this size are copied behind the head rather than sent from their buffer.
const SMALL_BODY_COPY: usize = 4096;

/// The sending side of a transfer, holding the head still to send with the first bytes.
struct Sender<'a, 'h, T: Io> {
    to: &'a T,
    /// The head buffer; given back (cleared) once sent.
    head: &'h mut Option<Vec<u8>>,
    /// The head still has to be sent.
    head_pending: bool,
    timeout: Option<Duration>,
}

impl<T: Io> Sender<'_, '_, T> {
    async fn send(&mut self, buf: RecvBuf) -> Result<(), BodyError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.send_inner(buf).await
    }

    async fn send_inner(&mut self, buf: RecvBuf) -> Result<(), BodyError> {
        let head = if self.head_pending {
            self.head.take()
        } else {
            None
        };
        let Some(head) = head else {
            return match within(self.timeout, self.to.send_all(SendBuf::Recv(buf))).await {
                Err(_) => Err(BodyError::SendTimeout),
                Ok((Ok(()), _)) => Ok(()),
                Ok((Err(_), _)) => Err(BodyError::SendError),
            };
        };
        // Small bodies are copied behind the head and sent with a plain send (a copy of up to
        // 4 KiB costs less than a two-vector sendmsg); larger ones go out with sendmsg, no copy.
        let sent = if buf.len() <= SMALL_BODY_COPY {
            let mut head = head;
            head.extend_from_slice(buf.bytes());
            drop(buf);
            within(self.timeout, self.to.send_all(SendBuf::from_vec(head)))
                .await
                .map(|(r, h)| (r, h, SendBuf::from_vec(Vec::new())))
        } else {
            within(
                self.timeout,
                self.to
                    .send_pair(SendBuf::from_vec(head), SendBuf::Recv(buf)),
            )
            .await
        };
        match sent {
            Err(_) => Err(BodyError::SendTimeout),
            Ok((r, h, _)) => {
                self.head_pending = false;
                *self.head = h.into_vec();
                r.map_err(|_| BodyError::SendError)
            }
        }
    }

    /// Sends the head if no body bytes carried it yet (it stays `Some`, cleared, for reuse).
    async fn flush_head(&mut self) -> Result<(), BodyError> {
        if !self.head_pending {
            return Ok(());
        }
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        self.head_pending = false;
        match within(self.timeout, self.to.send_all(SendBuf::from_vec(head))).await {
            Err(_) => Err(BodyError::SendTimeout),
            Ok((r, h)) => {
                *self.head = h.into_vec();
                r.map_err(|_| BodyError::SendError)
            }
        }
    }
}

/// Most request-body bytes read and dropped after an error answer to keep the client
/// connection (haproxy 2.6 keeps it after its 503); a longer body closes the connection.
pub const DRAIN_LIMIT: u64 = 1 << 20;

/// A sink that drops what it is given, up to a byte budget: reading a request body no server
/// will get, so the client connection stays usable for its next request.
pub struct Discard {
    left: std::cell::Cell<u64>,
}

impl Discard {
    pub fn new(limit: u64) -> Discard {
        Discard {
            left: std::cell::Cell::new(limit),
        }
    }

    fn take(&self, n: usize) -> std::io::Result<()> {
        let left = self.left.get();
        if n as u64 > left {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        self.left.set(left - n as u64);
        Ok(())
    }
}

impl Io for Discard {
    async fn recv(&self) -> std::io::Result<Option<RecvBuf>> {
        Ok(None)
    }

    async fn send_all(&self, buf: SendBuf) -> (std::io::Result<()>, SendBuf) {
        (self.take(buf.remaining().len()), buf)
    }

    async fn send_pair(&self, a: SendBuf, b: SendBuf) -> (std::io::Result<()>, SendBuf, SendBuf) {
        let r = self
            .take(a.remaining().len())
            .and_then(|()| self.take(b.remaining().len()));
        (r, a, b)
    }

    async fn finish(&self) {}
}
