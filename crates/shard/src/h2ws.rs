//! WebSocket over HTTP/2 from clients (RFC 8441), as HAProxy 2.6 does it: an extended CONNECT
//! (`:method CONNECT`, `:protocol websocket`) becomes an HTTP/1.1 `GET` with
//! `Upgrade: websocket` and a fresh `Sec-WebSocket-Key` to the server; the server's `101`
//! (its `Sec-WebSocket-Accept` checked against that key) becomes a `200` on the stream, and
//! the stream's DATA and the server connection are then tunnelled both ways.
//!
//! ```text
//! client (h2)                          ringlb                         server (HTTP/1.1)
//! HEADERS CONNECT :protocol websocket ─► GET path, Upgrade: websocket,
//!                                        Sec-WebSocket-Key: K ───────► 101, Accept(K)
//! HEADERS :status 200 ◄─────────────── (Accept checked, dropped)
//! DATA ⇄ tunnel ⇄ bytes; END_STREAM ⇄ FIN; RST_STREAM or idle → both closed
//! ```
//!
//! The announcement (SETTINGS_ENABLE_CONNECT_PROTOCOL) is on unless the global
//! `h2-workaround-bogus-websocket-clients` is set ([`crate::h2::H2Bind`]).

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, Method as HMethod, Uri};
use ringlb_uring::SendBuf;

use crate::conn::{Io, ServerStream};
use crate::notify::Notify;
use crate::time::within;
use crate::tunnel::{TunnelEnd, TunnelTimeouts};

/// What an h2 request's `:protocol` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extended {
    /// No `:protocol`: an ordinary request.
    No,
    /// `CONNECT` with `:protocol websocket` (any case).
    WebSocket,
    /// Another protocol, which ringlb cannot carry to an HTTP/1 server.
    Other,
}

/// Classifies a request by its method and the `:protocol` pseudo-header the h2 library hands
/// over as an extension (only when extended CONNECT was announced).
pub fn extended(method: &HMethod, ext: &http::Extensions) -> Extended {
    match ext.get::<h2::ext::Protocol>() {
        None => Extended::No,
        Some(p) if *method == HMethod::CONNECT && p.as_str().eq_ignore_ascii_case("websocket") => {
            Extended::WebSocket
        }
        Some(_) => Extended::Other,
    }
}

/// A `Sec-WebSocket-Key`: 16 bytes from the shard's generator, base64 (RFC 6455 §4.1).
pub fn new_key(a: u64, b: u64) -> String {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&a.to_le_bytes());
    raw[8..].copy_from_slice(&b.to_le_bytes());
    base64(&raw)
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with (RFC 6455 §4.2.2).
pub fn accept_of(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&h.digest().bytes())
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |i: u32| char::from(ALPHABET.get((i & 63) as usize).copied().unwrap_or(b'A'));
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out
}

/// The HTTP/1.1 upgrade request for an extended CONNECT: the same checks and translation as
/// any h2 request ([`crate::h2::h1_head`] on a bodiless `GET`), then the upgrade fields. A
/// `sec-websocket-key` the client sent (RFC 8441 §5 forbids it) is replaced by `key`.
pub fn h1_head(uri: &Uri, headers: &HeaderMap, key: &str) -> Result<Vec<u8>, h2::Reason> {
    let mut out = if headers.contains_key("sec-websocket-key") {
        let mut h = headers.clone();
        h.remove("sec-websocket-key");
        crate::h2::h1_head(&HMethod::GET, uri, &h, false)?
    } else {
        crate::h2::h1_head(&HMethod::GET, uri, headers, false)?
    };
    // h1_head ends with the empty line; the upgrade fields go before it.
    out.truncate(out.len().saturating_sub(2));
    out.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: ");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    Ok(out)
}

/// Whether a `101` response head accepts the upgrade asked for with the key whose accept
/// value is `accept` (`Upgrade: websocket` and the right `Sec-WebSocket-Accept`).
pub fn accepted(resp: &ringlb_http1::ResponseHead, bytes: &[u8], accept: &str) -> bool {
    let mut upgrade = false;
    let mut key_ok = false;
    for h in resp.headers() {
        let name = h.name.get(bytes);
        let value = h.value.get(bytes).trim_ascii();
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= value.eq_ignore_ascii_case(b"websocket");
        } else if name.eq_ignore_ascii_case(b"sec-websocket-accept") {
            key_ok = value == accept.as_bytes();
        }
    }
    upgrade && key_ok
}

/// Tunnels the h2 stream and the upgraded server connection until both ends closed, one
/// failed, or nothing moved for the idle limit (HAProxy's `timeout tunnel`). `first` holds
/// the server's bytes that came with its `101`. Returns bytes up, bytes down and the end.
pub async fn tunnel(
    server: &ServerStream,
    first: Vec<u8>,
    body: &mut RecvStream,
    send: &mut SendStream<Bytes>,
    t: TunnelTimeouts,
) -> (u64, u64, TunnelEnd) {
    let last = Cell::new(Instant::now());
    let failed = Notify::default();
    let up_done = Cell::new(false);
    let down_done = Cell::new(false);
    let up = async {
        let r = up(server, body, &last, t, (&up_done, &down_done)).await;
        if r.1 == TunnelEnd::Error {
            failed.raise();
        }
        r
    };
    let down = async {
        let r = down(server, first, send, &last, t, (&down_done, &up_done)).await;
        if r.1 == TunnelEnd::Error {
            failed.raise();
        }
        r
    };
    let both = async { Some(future::zip(up, down).await) };
    let aborted = async {
        failed.wait().await;
        None
    };
    match future::or(both, aborted).await {
        Some(((b_up, e_up), (b_down, e_down))) => {
            let end = match (e_up, e_down) {
                (TunnelEnd::Error, _) | (_, TunnelEnd::Error) => TunnelEnd::Error,
                (TunnelEnd::ClientTimeout, _) | (_, TunnelEnd::ClientTimeout) => {
                    TunnelEnd::ClientTimeout
                }
                _ => TunnelEnd::Closed,
            };
            (b_up, b_down, end)
        }
        None => (0, 0, TunnelEnd::Error),
    }
}

/// The idle limit of one direction: `client-fin`/`server-fin` once the other has finished.
fn limit(t: TunnelTimeouts, other_done: bool, fin: Option<Duration>) -> Option<Duration> {
    if other_done {
        fin.or(t.idle())
    } else {
        t.idle()
    }
}

/// Waits for `work`, giving up when nothing moved in either direction for `limit` (the
/// future is kept across the checks: no receive is cancelled half-way).
async fn idle_bounded<F: Future>(
    last: &Cell<Instant>,
    limit: Option<Duration>,
    work: F,
) -> Option<F::Output> {
    let Some(limit) = limit else {
        return Some(work.await);
    };
    let mut work = std::pin::pin!(work);
    loop {
        let left = limit.checked_sub(last.get().elapsed())?;
        match within(Some(left), work.as_mut()).await {
            Ok(r) => return Some(r),
            Err(_) if last.get().elapsed() >= limit => return None,
            Err(_) => {}
        }
    }
}

/// Client → server: DATA to the server, window given back once sent; END_STREAM → FIN.
async fn up(
    server: &ServerStream,
    body: &mut RecvStream,
    last: &Cell<Instant>,
    t: TunnelTimeouts,
    (done, other): (&Cell<bool>, &Cell<bool>),
) -> (u64, TunnelEnd) {
    let mut bytes = 0u64;
    let end = loop {
        let lim = limit(t, other.get(), t.server_fin);
        let Some(got) = idle_bounded(last, lim, body.data()).await else {
            break TunnelEnd::ClientTimeout;
        };
        match got {
            Some(Ok(data)) => {
                last.set(Instant::now());
                let n = data.len();
                if n == 0 {
                    continue;
                }
                let (r, _) = server.send_all(SendBuf::from_vec(data.to_vec())).await;
                if r.is_err() {
                    break TunnelEnd::Error;
                }
                bytes += n as u64;
                let _ = body.flow_control().release_capacity(n);
                last.set(Instant::now());
            }
            None => {
                server.finish().await;
                break TunnelEnd::Closed;
            }
            Some(Err(_)) => break TunnelEnd::Error,
        }
    };
    done.set(true);
    (bytes, end)
}

/// Server → client: bytes as DATA within the client's window; FIN → END_STREAM.
async fn down(
    server: &ServerStream,
    first: Vec<u8>,
    send: &mut SendStream<Bytes>,
    last: &Cell<Instant>,
    t: TunnelTimeouts,
    (done, other): (&Cell<bool>, &Cell<bool>),
) -> (u64, TunnelEnd) {
    let mut bytes = first.len() as u64;
    let end = 'relay: {
        if !first.is_empty()
            && crate::h2::send_data(send, Bytes::from(first), false, t.idle())
                .await
                .is_err()
        {
            break 'relay TunnelEnd::Error;
        }
        loop {
            let lim = limit(t, other.get(), t.client_fin);
            let Some(got) = idle_bounded(last, lim, server.recv()).await else {
                break 'relay TunnelEnd::ClientTimeout;
            };
            match got {
                Ok(Some(buf)) => {
                    last.set(Instant::now());
                    let data = Bytes::copy_from_slice(buf.bytes());
                    bytes += data.len() as u64;
                    if crate::h2::send_data(send, data, false, lim).await.is_err() {
                        break 'relay TunnelEnd::Error;
                    }
                    last.set(Instant::now());
                }
                Ok(None) => {
                    let _ = crate::h2::send_data(send, Bytes::new(), true, lim).await;
                    break 'relay TunnelEnd::Closed;
                }
                Err(_) => break 'relay TunnelEnd::Error,
            }
        }
    };
    if end != TunnelEnd::Closed {
        send.send_reset(h2::Reason::CANCEL);
    }
    done.set(true);
    (bytes, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_rfc6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_of("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let k = new_key(1, 2);
        assert_eq!(k.len(), 24);
        assert!(k.ends_with("=="));
        assert_ne!(k, new_key(1, 3));
    }

    #[test]
    fn extended_connect_becomes_an_upgrade_get() {
        let uri: Uri = "https://chat.example/ws?x=1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("sec-websocket-version", "13".parse().unwrap());
        h.insert("sec-websocket-key", "client-must-not-send".parse().unwrap());
        h.insert("sec-websocket-protocol", "chat".parse().unwrap());
        let head = String::from_utf8(h1_head(&uri, &h, "KEY").unwrap()).unwrap();
        assert!(
            head.starts_with("GET /ws?x=1 HTTP/1.1\r\nhost: chat.example\r\n"),
            "{head}"
        );
        assert!(head.ends_with(
            "connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-key: KEY\r\n\r\n"
        ));
        assert!(head.contains("sec-websocket-protocol: chat\r\n"));
        assert!(!head.contains("client-must-not-send"));
        h.insert("connection", "upgrade".parse().unwrap());
        assert_eq!(h1_head(&uri, &h, "KEY"), Err(h2::Reason::PROTOCOL_ERROR));
    }

    #[test]
    fn classifies_protocols() {
        let mut ext = http::Extensions::new();
        assert_eq!(extended(&HMethod::CONNECT, &ext), Extended::No);
        ext.insert(h2::ext::Protocol::from_static("websocket"));
        assert_eq!(extended(&HMethod::CONNECT, &ext), Extended::WebSocket);
        let mut other = http::Extensions::new();
        other.insert(h2::ext::Protocol::from_static("connect-udp"));
        assert_eq!(extended(&HMethod::CONNECT, &other), Extended::Other);
    }

    #[test]
    fn a_101_must_carry_the_right_accept() {
        let limits = ringlb_http1::Limits {
            max_headers: 101,
            max_head_bytes: 8192,
        };
        let accept = accept_of("dGhlIHNhbXBsZSBub25jZQ==");
        let check = |raw: &str| {
            let mut r = ringlb_http1::ResponseHead::with_limits(&limits);
            let _ = ringlb_http1::parse_response(
                raw.as_bytes(),
                &limits,
                ringlb_http1::Method::Get,
                &mut r,
            );
            accepted(&r, raw.as_bytes(), &accept)
        };
        assert!(check(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        ));
        assert!(!check(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong=\r\n\r\n"
        ));
        assert!(!check(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        ));
    }
}
