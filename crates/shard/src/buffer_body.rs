//! `option http-buffer-request` and `http-request wait-for-body`: the request body is read
//! into the request's buffer before the rules run, so `req.body`, `req.body_len`,
//! `req.body_size` and `req.body_param` see it. As haproxy 2.6 (`http_wait_for_msg_body`), the
//! wait ends when the whole body is there, when the buffer is full (`tune.bufsize` less
//! `tune.maxrewrite` and the head), or once `at-least` bytes arrived; a wait that runs out of
//! time is answered 408. The bytes read are forwarded as they came.

use std::time::{Duration, Instant};

use ringlb_http1::{BodyFraming, ChunkedDecoder, Limits, Side};
use ringlb_rules::BodyWait;
use ringlb_uring::RecvBuf;

use crate::conn::{ClientConn, Io};
use crate::time::within;

/// Why a body wait ended without the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The wait (or `timeout client` between reads) expired: haproxy answers 408.
    Timeout,
    /// The client closed or the read failed.
    Closed,
    /// Invalid chunked framing: 400.
    Invalid,
}

/// What was buffered: the message so far (head then raw body bytes, in one buffer so the
/// head's spans stay valid) and the body's payload (de-chunked), capped at the buffer room.
pub struct Buffered {
    pub all: RecvBuf,
    pub data: Vec<u8>,
}

/// The payload decoded out of the raw body bytes, and whether the body is complete.
struct Decoder {
    framing: BodyFraming,
    chunked: Option<ChunkedDecoder>,
    /// Raw body bytes already fed to the chunked decoder.
    fed: usize,
    data: Vec<u8>,
    done: bool,
}

impl Decoder {
    fn new(framing: BodyFraming, limits: &Limits) -> Decoder {
        Decoder {
            framing,
            chunked: (framing == BodyFraming::Chunked)
                .then(|| ChunkedDecoder::new(Side::Client, limits)),
            fed: 0,
            data: Vec::new(),
            done: false,
        }
    }

    /// Takes in the raw body bytes received so far (all of them, from the body's start).
    fn update(&mut self, raw: &[u8]) -> Result<(), WaitError> {
        match self.framing {
            BodyFraming::ContentLength(n) => {
                let want = usize::try_from(n).unwrap_or(usize::MAX);
                let have = raw.len().min(want);
                self.data.clear();
                self.data.extend_from_slice(raw.get(..have).unwrap_or(&[]));
                self.done = have == want;
            }
            BodyFraming::Chunked => {
                let Some(dec) = self.chunked.as_mut() else {
                    return Ok(());
                };
                if self.done {
                    return Ok(());
                }
                let new = raw.get(self.fed..).unwrap_or(&[]);
                let data = &mut self.data;
                let feed = dec
                    .feed_with(new, |d| data.extend_from_slice(d))
                    .map_err(|_| WaitError::Invalid)?;
                self.fed += feed.consumed;
                self.done = feed.done;
            }
            // Nothing to wait for (no body, or a body delimited by the close: not a request's).
            _ => self.done = true,
        }
        Ok(())
    }

    /// The wait is over: whole body, full buffer, or `at_least` bytes.
    fn enough(&self, room: usize, at_least: u64) -> bool {
        self.done || self.data.len() >= room || (at_least > 0 && self.data.len() as u64 >= at_least)
    }
}

/// Reads the body of the request whose head (`head_len` bytes) starts `have`, until the wait
/// `w` is over. `room` bounds the payload kept; `client_timeout` bounds each read as well.
#[allow(clippy::too_many_arguments)]
pub async fn buffer_body(
    client: &ClientConn,
    have: RecvBuf,
    head_len: usize,
    framing: BodyFraming,
    room: usize,
    w: BodyWait,
    client_timeout: Option<Duration>,
    limits: &Limits,
) -> Result<Buffered, WaitError> {
    let mut all = have.bytes().to_vec();
    drop(have);
    let mut dec = Decoder::new(framing, limits);
    dec.update(all.get(head_len..).unwrap_or(&[]))?;
    let deadline = w
        .time_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    while !dec.enough(room, w.at_least) {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let bound = match (left, client_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match within(bound, client.recv()).await {
            Err(_) => return Err(WaitError::Timeout),
            Ok(Ok(Some(more))) => all.extend_from_slice(more.bytes()),
            Ok(_) => return Err(WaitError::Closed),
        }
        dec.update(all.get(head_len..).unwrap_or(&[]))?;
    }
    let mut data = dec.data;
    data.truncate(room);
    Ok(Buffered {
        all: RecvBuf::from_vec(all),
        data,
    })
}

/// The payload room of a request buffer: haproxy's buffer holds the head too, and keeps
/// `tune.maxrewrite` free.
pub fn room(bufsize: usize, maxrewrite: usize, head_len: usize) -> usize {
    bufsize
        .saturating_sub(maxrewrite)
        .saturating_sub(head_len)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(framing: BodyFraming, parts: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut d = Decoder::new(framing, &Limits::default());
        let mut raw = Vec::new();
        for p in parts {
            raw.extend_from_slice(p);
            d.update(&raw).unwrap();
        }
        (d.data, d.done)
    }

    #[test]
    fn content_length_bodies() {
        let cl = BodyFraming::ContentLength(8);
        assert_eq!(run(cl, &[b"user", b"=b"]), (b"user=b".to_vec(), false));
        assert_eq!(run(cl, &[b"user", b"=bob"]), (b"user=bob".to_vec(), true));
        // Pipelined bytes after the body are not the body.
        assert_eq!(run(cl, &[b"user=bobGET /"]), (b"user=bob".to_vec(), true));
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let ch = BodyFraming::Chunked;
        assert_eq!(run(ch, &[b"4\r\nus", b"er\r\n"]), (b"user".to_vec(), false));
        assert_eq!(
            run(ch, &[b"4;x=y\r\nuser\r\n4\r\n=bob\r\n", b"0\r\n\r\n"]),
            (b"user=bob".to_vec(), true)
        );
        let mut d = Decoder::new(ch, &Limits::default());
        assert_eq!(d.update(b"zz\r\n"), Err(WaitError::Invalid));
    }

    #[test]
    fn the_wait_ends_on_room_or_at_least() {
        let mut d = Decoder::new(BodyFraming::ContentLength(100), &Limits::default());
        d.update(&[b'a'; 10]).unwrap();
        assert!(!d.enough(50, 0));
        assert!(d.enough(10, 0), "buffer full");
        assert!(d.enough(50, 8), "at-least reached");
        assert!(!d.enough(50, 11));
        assert_eq!(room(16384, 1024, 200), 15160);
        assert_eq!(room(1000, 1024, 200), 1);
    }
}
