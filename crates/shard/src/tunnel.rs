//! Bidirectional forwarding: TCP mode sessions and HTTP tunnels (WebSocket, CONNECT).
//!
//! Each direction is a loop `recv → send` that forwards the received buffer itself (zero copy:
//! the bytes stay in the provided-buffer pool until the send completes). Each side has its own
//! read timeout, as in HAProxy: `timeout client` for the client, `timeout server` for the
//! server (`timeout tunnel` replaces both). Data received from a side refreshes its timeout, and
//! so does data sent to it, unless `option independent-streams` is set on that side's proxy.
//! A read timeout ends that direction like a FIN would (the other side gets a FIN, logged `cD`
//! or `sD`); a FIN is forwarded as a FIN (half-close), after which `timeout client-fin` /
//! `server-fin` bound the remaining direction.

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures_lite::future;
use ringlb_uring::SendBuf;

use crate::conn::Io;

use crate::time::within;

/// How a tunnel ended, for the logs' termination state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Both sides closed normally.
    Closed,
    /// The client side's read timeout fired first (`cD`).
    ClientTimeout,
    /// The server side's read timeout fired first (`sD`).
    ServerTimeout,
    /// A socket error (reset) on one side.
    Error,
}

/// Idle limits of a tunnel.
#[derive(Debug, Clone, Copy, Default)]
pub struct TunnelTimeouts {
    /// The client side's read timeout (`timeout tunnel`, else `timeout client`).
    pub client: Option<Duration>,
    /// The server side's read timeout (`timeout tunnel`, else `timeout server`).
    pub server: Option<Duration>,
    /// After the client closed its side (`timeout client-fin`).
    pub client_fin: Option<Duration>,
    /// After the server closed its side (`timeout server-fin`).
    pub server_fin: Option<Duration>,
    /// `option independent-streams` in the frontend: data sent to the client does not refresh
    /// the client's read timeout.
    pub client_independent: bool,
    /// `option independent-streams` in the backend: the same for the server.
    pub server_independent: bool,
}

impl TunnelTimeouts {
    /// The same idle limit on both sides (HTTP tunnels: `timeout tunnel` or its fallback).
    pub fn both(idle: Option<Duration>) -> TunnelTimeouts {
        TunnelTimeouts {
            client: idle,
            server: idle,
            ..TunnelTimeouts::default()
        }
    }

    /// One limit for both directions together (the HTTP/2 tunnels judge inactivity on the
    /// stream as a whole): the longer of the two sides'.
    pub fn idle(&self) -> Option<Duration> {
        match (self.client, self.server) {
            (Some(c), Some(s)) => Some(c.max(s)),
            (c, s) => c.or(s),
        }
    }
}

/// The last moment each side's read timeout was refreshed.
struct Activity {
    client: Cell<Instant>,
    server: Cell<Instant>,
}

/// One direction's view: which side it reads, the limits, and whose timeout its sends refresh.
struct Direction<'a> {
    /// Refreshed by receiving from this direction's source.
    read: &'a Cell<Instant>,
    /// The destination's read timeout, refreshed by sending to it (`None`: independent).
    sent: Option<&'a Cell<Instant>>,
    limit: Option<Duration>,
    /// Used once the other direction has finished.
    fin: Option<Duration>,
    timeout: TunnelEnd,
}

/// Forwards both ways until both directions are closed or timed out. Returns bytes
/// client→server, bytes server→client and how it ended.
pub async fn run<C: Io, S: Io>(client: &C, server: &S, t: TunnelTimeouts) -> (u64, u64, TunnelEnd) {
    let now = Instant::now();
    let act = Activity {
        client: Cell::new(now),
        server: Cell::new(now),
    };
    let client_closed = Cell::new(false);
    let server_closed = Cell::new(false);
    let up = pump(
        client,
        server,
        Direction {
            read: &act.client,
            sent: (!t.server_independent).then_some(&act.server),
            limit: t.client,
            fin: t.server_fin,
            timeout: TunnelEnd::ClientTimeout,
        },
        (&client_closed, &server_closed),
    );
    let down = pump(
        server,
        client,
        Direction {
            read: &act.server,
            sent: (!t.client_independent).then_some(&act.client),
            limit: t.server,
            fin: t.client_fin,
            timeout: TunnelEnd::ServerTimeout,
        },
        (&server_closed, &client_closed),
    );
    let (up, down) = future::zip(up, down).await;
    (up.0, down.0, combined_end(up.1, down.1))
}

/// How the whole tunnel ended: an error first, then the timeout that fired first.
fn combined_end(up: (TunnelEnd, Instant), down: (TunnelEnd, Instant)) -> TunnelEnd {
    let timeout = |e: TunnelEnd| matches!(e, TunnelEnd::ClientTimeout | TunnelEnd::ServerTimeout);
    match (up.0, down.0) {
        (TunnelEnd::Error, _) | (_, TunnelEnd::Error) => TunnelEnd::Error,
        (a, b) if timeout(a) && timeout(b) => {
            if up.1 <= down.1 {
                a
            } else {
                b
            }
        }
        (a, _) if timeout(a) => a,
        (_, b) if timeout(b) => b,
        _ => TunnelEnd::Closed,
    }
}

/// One direction. `closed.0` is set when this direction ended; `closed.1` tells whether the
/// other one already did, in which case `d.fin` bounds this one. Returns the bytes, how it
/// ended and when.
async fn pump<F: Io, T: Io>(
    from: &F,
    to: &T,
    d: Direction<'_>,
    closed: (&Cell<bool>, &Cell<bool>),
) -> (u64, (TunnelEnd, Instant)) {
    let mut bytes = 0u64;
    let end = |e: TunnelEnd| {
        closed.0.set(true);
        (e, Instant::now())
    };
    loop {
        let limit = if closed.1.get() {
            d.fin.or(d.limit)
        } else {
            d.limit
        };
        let received = match limit {
            None => Ok(from.recv().await),
            Some(limit) => {
                // One receive stays armed while the deadline moves with the sends towards this
                // side: cancelling and re-arming it could lose bytes that arrived as it was
                // cancelled (a completed receive whose future is gone gives its buffer back).
                let recv = from.recv();
                futures_lite::pin!(recv);
                loop {
                    let waited = d.read.get().elapsed();
                    let Some(left) = limit.checked_sub(waited) else {
                        break Err(());
                    };
                    match within(Some(left), &mut recv).await {
                        Ok(r) => break Ok(r),
                        Err(_) if d.read.get().elapsed() >= limit => break Err(()),
                        Err(_) => continue,
                    }
                }
            }
        };
        match received {
            Err(()) => {
                // The read timeout ends this direction as a FIN would.
                to.finish().await;
                return (bytes, end(d.timeout));
            }
            Ok(Ok(Some(buf))) => {
                d.read.set(Instant::now());
                bytes += buf.len() as u64;
                let (r, _) = to.send_all(SendBuf::Recv(buf)).await;
                if r.is_err() {
                    return (bytes, end(TunnelEnd::Error));
                }
                if let Some(sent) = d.sent {
                    sent.set(Instant::now());
                }
            }
            Ok(Ok(None)) => {
                // FIN from `from`: forward it, keep the other direction open (half-close).
                to.finish().await;
                return (bytes, end(TunnelEnd::Closed));
            }
            Ok(Err(_)) => return (bytes, end(TunnelEnd::Error)),
        }
    }
}
