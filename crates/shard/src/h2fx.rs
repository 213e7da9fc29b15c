//! What the rules change beyond the message, for HTTP/2 streams (the HTTP/1 session has the
//! same in `http.rs` / `buffer_body.rs`): the request body read before the rules for
//! `req.body*` (`option http-buffer-request`, `http-request wait-for-body`), the `early-hint`
//! 103s sent as HEADERS frames before the final response, and `set-mark` / `set-tos` on the
//! client socket (one socket for all the connection's streams, as in haproxy).
//!
//! Everything here runs only when the proxy has such rules: the stream path checks a flag or
//! an empty cell before calling in.

use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderName, HeaderValue, Response};
use ringlb_http1::BodyFraming;
use ringlb_rules::BodyWait;
use ringlb_uring::TcpStream;

use crate::buffer_body::WaitError;
use crate::rules::RuleEffects;
use crate::time::within;

/// The start of a request body read before a server was chosen: for `url_param ..
/// check_post`, or for the rules (`req.body*`). It is forwarded first, then the rest of the
/// stream's DATA.
pub(crate) struct EarlyBody {
    pub data: Vec<u8>,
    /// The stream's body ended within it.
    pub ended: bool,
    /// Its flow-control window was already given back to the client (a body wait cannot
    /// hold the window closed: the client might never send the bytes the rules wait for).
    pub released: bool,
}

/// Whether the wait is over: whole body, the advertised length, a full buffer, or
/// `at_least` bytes (haproxy's `http_wait_for_msg_body`).
fn enough(e: &EarlyBody, length: Option<u64>, room: usize, at_least: u64) -> bool {
    let have = e.data.len() as u64;
    e.ended
        || length.is_some_and(|n| have >= n)
        || e.data.len() >= room
        || (at_least > 0 && have >= at_least)
}

/// Reads the stream's DATA until the wait `w` is over (see [`enough`]); `room` bounds what
/// the rules see (DATA already received past it is kept for forwarding), `client_timeout`
/// bounds each read as well. A wait that runs out of time is haproxy's 408.
pub(crate) async fn wait_for_body(
    body: &mut RecvStream,
    framing: BodyFraming,
    room: usize,
    w: BodyWait,
    client_timeout: Option<Duration>,
) -> Result<EarlyBody, WaitError> {
    let length = match framing {
        BodyFraming::ContentLength(n) => Some(n),
        _ => None,
    };
    let deadline = w
        .time_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut e = EarlyBody {
        data: Vec::new(),
        ended: body.is_end_stream(),
        released: true,
    };
    while !enough(&e, length, room, w.at_least) {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let bound = match (left, client_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match within(bound, body.data()).await {
            Err(_) => return Err(WaitError::Timeout),
            Ok(None) => e.ended = true,
            Ok(Some(Ok(d))) => {
                e.data.extend_from_slice(&d);
                let _ = body.flow_control().release_capacity(d.len());
            }
            Ok(Some(Err(_))) => return Err(WaitError::Closed),
        }
    }
    Ok(e)
}

/// Sends the 103 responses `early-hint` rules wrote (HTTP/1 text, see
/// `RuleHost::effect`) as interim HEADERS frames on the stream, as haproxy's h2 mux does.
/// A field h2 cannot carry is left out.
pub(crate) fn send_early_hints(respond: &mut SendResponse<Bytes>, hints: &[u8]) {
    let mut current: Option<Response<()>> = None;
    for line in hints.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"HTTP/") {
            current = Some(Response::new(()));
            if let Some(r) = current.as_mut() {
                *r.status_mut() = http::StatusCode::EARLY_HINTS;
            }
            continue;
        }
        let Some(resp) = current.as_mut() else {
            continue;
        };
        if line.is_empty() {
            if let Some(r) = current.take() {
                let _ = respond.send_informational(r);
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            resp.headers_mut().append(n, v);
        }
    }
}

/// `set-mark` / `set-tos` left by the rules, on the client socket (errors ignored, as
/// haproxy ignores them).
pub(crate) fn apply_socket_effects(tcp: Option<&TcpStream>, fx: &RuleEffects) {
    let (mark, tos) = (fx.mark.take(), fx.tos.take());
    let Some(tcp) = tcp else { return };
    if let Some(m) = mark {
        let _ = tcp.set_mark(m);
    }
    if let Some(t) = tos {
        let _ = tcp.set_tos(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: usize, ended: bool) -> EarlyBody {
        EarlyBody {
            data: vec![b'a'; n],
            ended,
            released: true,
        }
    }

    #[test]
    fn the_wait_ends_like_haproxys() {
        assert!(enough(&e(0, true), None, 100, 0), "end of stream");
        assert!(!enough(&e(5, false), None, 100, 0));
        assert!(enough(&e(5, false), Some(5), 100, 0), "advertised length");
        assert!(!enough(&e(4, false), Some(5), 100, 0));
        assert!(enough(&e(100, false), None, 100, 0), "buffer full");
        assert!(enough(&e(8, false), None, 100, 8), "at-least");
        assert!(!enough(&e(7, false), None, 100, 8));
    }
}
