//! Bidirectional forwarding: TCP mode sessions and HTTP tunnels (WebSocket, CONNECT).
//!
//! Each direction is a loop `recv → send` that forwards the received buffer itself (zero copy:
//! the bytes stay in the provided-buffer pool until the send completes). Inactivity is judged on
//! both directions together, as HAProxy's tunnel timeout: a direction that waits longer than the
//! idle limit only gives up when the other direction was idle too. A FIN is forwarded as a FIN
//! (half-close), after which `timeout client-fin`/`server-fin` bound the remaining direction.

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
    /// Nothing moved in either direction for the idle limit.
    IdleTimeout,
    /// A socket error (reset) on one side.
    Error,
}

/// Idle limits of a tunnel.
#[derive(Debug, Clone, Copy)]
pub struct TunnelTimeouts {
    /// Limit for inactivity in both directions (`timeout tunnel`, else client/server).
    pub idle: Option<Duration>,
    /// After the client closed its side (`timeout client-fin`).
    pub client_fin: Option<Duration>,
    /// After the server closed its side (`timeout server-fin`).
    pub server_fin: Option<Duration>,
}

/// Forwards both ways until both directions are closed or the tunnel goes idle. Returns bytes
/// client→server, bytes server→client and how it ended.
pub async fn run<C: Io, S: Io>(client: &C, server: &S, t: TunnelTimeouts) -> (u64, u64, TunnelEnd) {
    let last = Cell::new(Instant::now());
    let client_closed = Cell::new(false);
    let server_closed = Cell::new(false);
    let up = pump(
        client,
        server,
        &last,
        t.idle,
        (&client_closed, &server_closed, t.server_fin),
    );
    let down = pump(
        server,
        client,
        &last,
        t.idle,
        (&server_closed, &client_closed, t.client_fin),
    );
    let ((b_up, e_up), (b_down, e_down)) = future::zip(up, down).await;
    let end = match (e_up, e_down) {
        (TunnelEnd::Error, _) | (_, TunnelEnd::Error) => TunnelEnd::Error,
        (TunnelEnd::IdleTimeout, _) | (_, TunnelEnd::IdleTimeout) => TunnelEnd::IdleTimeout,
        _ => TunnelEnd::Closed,
    };
    (b_up, b_down, end)
}

/// One direction. `closed.0` is set when `from` sent its FIN; `closed.1` tells whether the other
/// direction already finished, in which case `closed.2` (the fin timeout) bounds this one.
async fn pump<F: Io, T: Io>(
    from: &F,
    to: &T,
    last: &Cell<Instant>,
    idle: Option<Duration>,
    closed: (&Cell<bool>, &Cell<bool>, Option<Duration>),
) -> (u64, TunnelEnd) {
    let mut bytes = 0u64;
    loop {
        let limit = if closed.1.get() {
            closed.2.or(idle)
        } else {
            idle
        };
        let received = match limit {
            None => Ok(from.recv().await),
            Some(limit) => {
                // One receive stays armed while the deadline moves with the other direction's
                // activity: cancelling and re-arming it could lose bytes that arrived as it was
                // cancelled (a completed receive whose future is gone gives its buffer back).
                let recv = from.recv();
                futures_lite::pin!(recv);
                loop {
                    // Wait at most until `limit` after the last activity in either direction.
                    let waited = last.get().elapsed();
                    let Some(left) = limit.checked_sub(waited) else {
                        break Err(());
                    };
                    match within(Some(left), &mut recv).await {
                        Ok(r) => break Ok(r),
                        Err(_) if last.get().elapsed() >= limit => break Err(()),
                        Err(_) => continue,
                    }
                }
            }
        };
        match received {
            Err(()) => {
                closed.0.set(true);
                return (bytes, TunnelEnd::IdleTimeout);
            }
            Ok(Ok(Some(buf))) => {
                last.set(Instant::now());
                bytes += buf.len() as u64;
                let (r, _) = to.send_all(SendBuf::Recv(buf)).await;
                if r.is_err() {
                    closed.0.set(true);
                    return (bytes, TunnelEnd::Error);
                }
                last.set(Instant::now());
            }
            Ok(Ok(None)) => {
                // FIN from `from`: forward it, keep the other direction open (half-close).
                to.finish().await;
                closed.0.set(true);
                return (bytes, TunnelEnd::Closed);
            }
            Ok(Err(_)) => {
                closed.0.set(true);
                return (bytes, TunnelEnd::Error);
            }
        }
    }
}
