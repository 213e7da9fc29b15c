//! Streaming a message body from one socket to the other, per its framing, without buffering it
//! whole: each received buffer is validated (chunked) or counted (Content-Length) and sent as-is.

use std::time::Duration;

use ringlb_http1::{BodyCounter, BodyFraming, ChunkedDecoder, Limits, Side};
use ringlb_uring::{RecvBuf, SendBuf, TcpStream};

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
/// `from` to `to`. Returns the bytes received past the end of the body (the next message), if any.
pub async fn forward_body(
    from: &TcpStream,
    to: &TcpStream,
    framing: BodyFraming,
    first: Option<RecvBuf>,
    limits: BodyLimits,
) -> Result<Option<RecvBuf>, BodyError> {
    let first = first.filter(|b| !b.is_empty());
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
                let extra = if take < buf.len() {
                    buf.split_off(take)
                } else {
                    None
                };
                send(to, buf, limits.send_timeout).await?;
                if extra.is_some() {
                    return Ok(extra);
                }
            }
            Ok(next)
        }
        BodyFraming::Chunked => {
            let side = Side::Client; // errors are mapped by the caller per direction
            let mut decoder = ChunkedDecoder::new(side, &limits.head);
            let mut next = first;
            loop {
                let mut buf = match next.take() {
                    Some(b) => b,
                    None => recv(from, limits.recv_timeout)
                        .await?
                        .ok_or(BodyError::RecvClosed)?,
                };
                let feed = decoder.feed(buf.bytes()).map_err(|_| BodyError::Framing)?;
                let extra = if feed.consumed < buf.len() {
                    buf.split_off(feed.consumed)
                } else {
                    None
                };
                send(to, buf, limits.send_timeout).await?;
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
                send(to, buf, limits.send_timeout).await?;
            }
        }
    }
}

async fn recv(from: &TcpStream, timeout: Option<Duration>) -> Result<Option<RecvBuf>, BodyError> {
    match within(timeout, from.recv()).await {
        Err(_) => Err(BodyError::RecvTimeout),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(BodyError::RecvError),
    }
}

async fn send(to: &TcpStream, buf: RecvBuf, timeout: Option<Duration>) -> Result<(), BodyError> {
    if buf.is_empty() {
        return Ok(());
    }
    match within(timeout, to.send_all(SendBuf::Recv(buf))).await {
        Err(_) => Err(BodyError::SendTimeout),
        Ok((Ok(()), _)) => Ok(()),
        Ok((Err(_), _)) => Err(BodyError::SendError),
    }
}
