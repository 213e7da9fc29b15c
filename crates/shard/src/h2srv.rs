//! HTTP/2 towards servers (`server ... proto h2`, or `ssl alpn h2` when the server chose h2).
//!
//! The request path stays the HTTP/1 one (rules, retries, body framing, logs are shared by
//! every protocol): a request to an h2 server gets an [`H2Exchange`], a [`ServerStream`] that
//! takes the HTTP/1 request the session writes and sends it as one h2 stream, and gives the
//! response back as HTTP/1.1 bytes (chunked when the server gave no length, so its trailers
//! travel in the chunked trailer section). Each shard keeps, per server, h2 connections that
//! carry many streams at once ([`H2Client`], in `ServerState::h2`), within the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`; a connection is closed after `pool-purge-delay` without a
//! stream. A request h2 refused before the server saw it (GOAWAY, REFUSED_STREAM, a connection
//! that died) fails before any response byte on a reused connection, which the session
//! retries on a new connection as it does for a closed keep-alive connection.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use ringlb_h2io::{H2Io, LocalFuture, Transport};
use ringlb_http1::{
    parse_request, BodyCounter, BodyFraming, ChunkedDecoder, Limits, Parsed, RequestHead, Side,
    TargetForm,
};
use ringlb_uring::{RecvBuf, SendBuf};

use crate::conn::{Io, ServerStream};

/// Fields of an HTTP/1 message that HTTP/2 forbids (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 6] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"host",
];

/// Decoded response fields accepted per stream from a server.
const MAX_HEADER_LIST: u32 = 64 << 10;
/// Bytes h2 buffers per stream waiting for the server socket.
const MAX_SEND_BUFFER: usize = 256 << 10;

/// The h2 client settings towards servers (`tune.h2.be.initial-window-size`, else
/// `tune.h2.initial-window-size`, else 65535).
pub fn builder(initial_window: u32) -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(initial_window)
        .initial_connection_window_size(initial_window.max(65_535))
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false);
    b
}

/// One HTTP/2 connection to a server, shared by this shard's requests to it.
pub struct H2Client {
    send: SendRequest<Bytes>,
    /// Streams in progress on it.
    inflight: Cell<usize>,
    /// A stream was made on it.
    used: Cell<bool>,
    /// The connection ended or was told to (GOAWAY, error, idle): no new stream on it.
    closed: Cell<bool>,
    last_used: Cell<Instant>,
    /// The connection's driver, woken when the last stream ends.
    idle_waker: RefCell<Option<Waker>>,
    /// Over TLS (`:scheme https`).
    tls: bool,
    /// The connection's TLS facts (`ssl_bc_*`, `ssl_s_*`), read once its handshake is done:
    /// every stream on it reports them (the session itself belongs to the driver task).
    tls_facts: Option<Box<ringlb_tls::ServerTlsFacts>>,
    peer: Option<SocketAddr>,
}

impl H2Client {
    /// Whether a new stream may go on this connection now.
    fn has_room(&self) -> bool {
        !self.closed.get()
            && self.inflight.get() < self.send.current_max_send_streams().max(1)
            && self.send.clone().poll_ready_now()
    }
}

/// `SendRequest::poll_ready` once, without waiting: false once the connection is gone.
trait PollReadyNow {
    fn poll_ready_now(self) -> bool;
}

impl PollReadyNow for SendRequest<Bytes> {
    fn poll_ready_now(mut self) -> bool {
        let waker = Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        !matches!(self.poll_ready(&mut cx), Poll::Ready(Err(_)))
    }
}

/// A server connection as h2's transport.
struct Wire(ServerStream);

impl Transport for Wire {
    type Chunk = RecvBuf;

    fn bytes(chunk: &RecvBuf) -> &[u8] {
        chunk.bytes()
    }

    fn recv(self: Rc<Self>) -> LocalFuture<io::Result<Option<RecvBuf>>> {
        Box::pin(async move { self.0.recv().await })
    }

    fn send(self: Rc<Self>, buf: Vec<u8>) -> LocalFuture<(io::Result<()>, Vec<u8>)> {
        Box::pin(async move {
            let (r, back) = self.0.send_all(SendBuf::from_vec(buf)).await;
            (r, back.into_vec().unwrap_or_default())
        })
    }

    fn shutdown(self: Rc<Self>) -> LocalFuture<()> {
        Box::pin(async move { self.0.finish().await })
    }
}

/// An h2 connection of `pool` with room for one more stream, if any.
pub fn pooled(pool: &RefCell<Vec<Rc<H2Client>>>) -> Option<Rc<H2Client>> {
    let mut pool = pool.borrow_mut();
    pool.retain(|c| !c.closed.get());
    pool.iter().find(|c| c.has_room()).cloned()
}

/// Runs the h2 client handshake on a new server connection and spawns the task that drives it;
/// the connection joins `pool` when `shared` (`http-reuse` other than `never`). It is closed
/// once it has had no stream for `idle` (or at once when not shared).
pub async fn handshake(
    stream: ServerStream,
    initial_window: u32,
    pool: Option<Rc<RefCell<Vec<Rc<H2Client>>>>>,
    idle: Duration,
) -> io::Result<Rc<H2Client>> {
    let tls = matches!(stream, ServerStream::Tls(_));
    let tls_facts = stream.tls_facts().map(Box::new);
    let peer = stream.peer_addr();
    let io = H2Io::new(Rc::new(Wire(stream)));
    let (send, conn) = builder(initial_window)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| io::Error::other(format!("h2 handshake: {e}")))?;
    let client = Rc::new(H2Client {
        send,
        inflight: Cell::new(0),
        used: Cell::new(false),
        closed: Cell::new(false),
        last_used: Cell::new(Instant::now()),
        idle_waker: RefCell::new(None),
        tls,
        tls_facts,
        peer,
    });
    let shared = pool.is_some();
    if let Some(p) = &pool {
        p.borrow_mut().push(client.clone());
    }
    let weak = Rc::downgrade(&client);
    ringlb_uring::rt::spawn(async move {
        let watch = async {
            loop {
                let Some(c) = weak.upgrade() else { return };
                if c.closed.get() {
                    return;
                }
                let quiet = c.inflight.get() == 0;
                let since = c.last_used.get().elapsed();
                // A connection of its own (`http-reuse never`) closes once its stream is
                // done; the driver may run before that stream was made.
                if quiet && ((!shared && c.used.get()) || since >= idle) {
                    c.closed.set(true);
                    return;
                }
                let wait = if quiet {
                    idle.saturating_sub(since)
                } else {
                    idle
                };
                let weak_w = Rc::downgrade(&c);
                drop(c);
                let mut registered = false;
                let woken = poll_fn(move |cx| {
                    if registered {
                        return Poll::Ready(());
                    }
                    registered = true;
                    if let Some(c) = weak_w.upgrade() {
                        *c.idle_waker.borrow_mut() = Some(cx.waker().clone());
                    }
                    Poll::Pending
                });
                future::or(woken, ringlb_uring::rt::sleep(wait)).await;
            }
        };
        let _ = future::or(async { conn.await.map(|_| ()) }, async {
            watch.await;
            Ok(())
        })
        .await;
        if let Some(c) = weak.upgrade() {
            c.closed.set(true);
        }
        if let Some(p) = pool {
            p.borrow_mut().retain(|c| !c.closed.get());
        }
    })
    .detach();
    Ok(client)
}

/// The request side of an exchange.
#[derive(Default)]
enum Tx {
    /// Gathering the HTTP/1 request head.
    Head(Vec<u8>),
    /// Sending the body, decoded from its HTTP/1 framing.
    Body {
        send: SendStream<Bytes>,
        framing: BodyState,
        trailer: Vec<u8>,
    },
    /// The server ended the stream with `RST_STREAM(NO_ERROR)` (it answered without
    /// needing the rest of the body, RFC 9113 §8.1): the rest is dropped.
    Discard,
    /// Everything sent (or failed).
    #[default]
    Done,
}

enum BodyState {
    Length(BodyCounter),
    Chunked(ChunkedDecoder),
}

/// The response side of an exchange.
#[derive(Default)]
enum Rx {
    /// Waiting for the request to be sent, then for the response head.
    #[default]
    Waiting,
    /// Relaying DATA, chunked or not.
    Body { recv: RecvStream, chunked: bool },
    /// Nothing more.
    Done,
}

/// One request on an h2 connection, seen by the session as an HTTP/1 server connection.
pub struct H2Exchange {
    client: Rc<H2Client>,
    limits: Limits,
    tx: RefCell<Tx>,
    rx: RefCell<Rx>,
    /// The response of the stream, once the request head went out.
    response: RefCell<Option<ResponseFuture>>,
    response_waker: RefCell<Option<Waker>>,
    /// The request was HEAD: the response has no body whatever its fields say.
    head_method: Cell<bool>,
}

impl H2Exchange {
    pub fn new(client: Rc<H2Client>, limits: Limits) -> H2Exchange {
        client.inflight.set(client.inflight.get() + 1);
        client.used.set(true);
        client.last_used.set(Instant::now());
        H2Exchange {
            client,
            limits,
            tx: RefCell::new(Tx::Head(Vec::new())),
            rx: RefCell::new(Rx::Waiting),
            response: RefCell::new(None),
            response_waker: RefCell::new(None),
            head_method: Cell::new(false),
        }
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.client.peer
    }

    /// The TLS facts of the shared connection this stream runs on.
    pub fn tls_facts(&self) -> Option<ringlb_tls::ServerTlsFacts> {
        self.client.tls_facts.as_deref().cloned()
    }

    /// Takes HTTP/1 request bytes: the head opens the stream, the body goes out as DATA (and
    /// a chunked body's trailers as a trailing HEADERS frame).
    async fn take(&self, bytes: &[u8]) -> io::Result<()> {
        let mut tx = self.tx.take();
        let r = self.take_inner(&mut tx, bytes).await;
        *self.tx.borrow_mut() = if r.is_ok() { tx } else { Tx::Done };
        r
    }

    async fn take_inner(&self, tx: &mut Tx, mut bytes: &[u8]) -> io::Result<()> {
        if let Tx::Head(acc) = tx {
            acc.extend_from_slice(bytes);
            let mut req = RequestHead::with_limits(&self.limits);
            let head_len = match parse_request(acc, &self.limits, &mut req) {
                Ok(Parsed::Complete { head_len }) => head_len,
                Ok(Parsed::Partial) if acc.len() <= self.limits.max_head_bytes => return Ok(()),
                _ => return Err(io::Error::other("request head")),
            };
            let framing = req.framing();
            let request = self.h2_request(&req, acc)?;
            self.head_method
                .set(req.method() == ringlb_http1::Method::Head);
            let mut sender = self.client.send.clone();
            poll_fn(|cx| sender.poll_ready(cx))
                .await
                .map_err(|e| self.gone(e))?;
            let (resp, send) = sender
                .send_request(request, framing == BodyFraming::None)
                .map_err(|e| self.gone(e))?;
            *self.response.borrow_mut() = Some(resp);
            if let Some(w) = self.response_waker.borrow_mut().take() {
                w.wake();
            }
            let rest = acc.split_off(head_len.min(acc.len()));
            *tx = match framing {
                BodyFraming::None => Tx::Done,
                BodyFraming::ContentLength(n) => Tx::Body {
                    send,
                    framing: BodyState::Length(BodyCounter::new(n)),
                    trailer: Vec::new(),
                },
                BodyFraming::Chunked => Tx::Body {
                    send,
                    framing: BodyState::Chunked(ChunkedDecoder::new(Side::Client, &self.limits)),
                    trailer: Vec::new(),
                },
                // Requests never end with the connection.
                BodyFraming::UntilClose => return Err(io::Error::other("request framing")),
            };
            if rest.is_empty() {
                return Ok(());
            }
            return Box::pin(self.take_inner(tx, &rest)).await;
        }
        if matches!(tx, Tx::Discard) {
            return Ok(());
        }
        let Tx::Body {
            send,
            framing,
            trailer,
        } = tx
        else {
            // Bytes after the request: the session does not send any.
            return if bytes.is_empty() {
                Ok(())
            } else {
                Err(io::Error::other("bytes after the request"))
            };
        };
        match framing {
            BodyState::Length(counter) => {
                let n = counter.feed(bytes.len());
                bytes = bytes.get(..n).unwrap_or_default();
                let done = counter.is_done();
                if crate::h2::send_data(send, Bytes::copy_from_slice(bytes), done, None)
                    .await
                    .is_err()
                {
                    return discard_or_fail(tx);
                }
                if done {
                    *tx = Tx::Done;
                }
            }
            BodyState::Chunked(decoder) => {
                let mut payload = Vec::with_capacity(bytes.len());
                let feed = decoder
                    .feed_parts(bytes, |d| payload.extend_from_slice(d), |b| trailer.push(b))
                    .map_err(|_| io::Error::other("request body"))?;
                if !payload.is_empty()
                    && crate::h2::send_data(send, Bytes::from(payload), false, None)
                        .await
                        .is_err()
                {
                    return discard_or_fail(tx);
                }
                if feed.done {
                    let fields = trailer_map(trailer);
                    let sent = if fields.is_empty() {
                        send.send_data(Bytes::new(), true)
                    } else {
                        send.send_trailers(fields)
                    };
                    if sent.is_err() {
                        return discard_or_fail(tx);
                    }
                    *tx = Tx::Done;
                }
            }
        }
        Ok(())
    }

    /// The connection can take no stream: no other request may try it.
    fn gone(&self, e: h2::Error) -> io::Error {
        self.client.closed.set(true);
        io::Error::new(io::ErrorKind::ConnectionReset, format!("h2: {e}"))
    }

    /// The HTTP/2 request for an HTTP/1 head: `:authority` from `Host` (or the target's
    /// authority), connection-specific fields and `te` other than `trailers` left out.
    fn h2_request(&self, req: &RequestHead, raw: &[u8]) -> io::Result<Request<()>> {
        fn bad<E>(_: E) -> io::Error {
            io::Error::other("request head not valid for HTTP/2")
        }
        let method = http::Method::from_bytes(req.method_span().get(raw)).map_err(bad)?;
        let target = req.target().get(raw);
        let scheme = if self.client.tls { "https" } else { "http" };
        let uri = match req.target_form() {
            TargetForm::Absolute { .. } => Uri::try_from(target).map_err(bad)?,
            _ => {
                let authority = match req.host() {
                    Some(h) => String::from_utf8_lossy(h.get(raw)).into_owned(),
                    None => self.client.peer.map(|p| p.to_string()).unwrap_or_default(),
                };
                let path = if target.is_empty() || target == b"*" {
                    b"/".as_slice()
                } else {
                    target
                };
                let mut u = Vec::with_capacity(scheme.len() + 3 + authority.len() + path.len());
                u.extend_from_slice(scheme.as_bytes());
                u.extend_from_slice(b"://");
                u.extend_from_slice(authority.as_bytes());
                u.extend_from_slice(path);
                Uri::try_from(u).map_err(bad)?
            }
        };
        // Fields the `Connection` header names are hop-by-hop too.
        let mut named: Vec<&[u8]> = Vec::new();
        if req.connection().other {
            for h in req.headers() {
                if h.name.get(raw).eq_ignore_ascii_case(b"connection") {
                    named.extend(
                        h.value
                            .get(raw)
                            .split(|&b| b == b',')
                            .map(|t| t.trim_ascii())
                            .filter(|t| !t.is_empty()),
                    );
                }
            }
        }
        let mut headers = HeaderMap::with_capacity(req.headers().len());
        for h in req.headers() {
            let name = h.name.get(raw);
            let value = h.value.get(raw);
            if CONNECTION_SPECIFIC
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
                || named.iter().any(|n| n.eq_ignore_ascii_case(name))
                || (name.eq_ignore_ascii_case(b"te") && !value.eq_ignore_ascii_case(b"trailers"))
            {
                continue;
            }
            let name = HeaderName::from_bytes(name).map_err(bad)?;
            let value = HeaderValue::from_bytes(value).map_err(bad)?;
            headers.append(name, value);
        }
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .version(http::Version::HTTP_2)
            .body(())
            .map_err(bad)?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// The next HTTP/1 bytes of the response: the head first, then the body.
    async fn give(&self) -> io::Result<Option<RecvBuf>> {
        let mut rx = self.rx.take();
        let r = self.give_inner(&mut rx).await;
        *self.rx.borrow_mut() = if r.is_ok() { rx } else { Rx::Done };
        r
    }

    async fn give_inner(&self, rx: &mut Rx) -> io::Result<Option<RecvBuf>> {
        match rx {
            Rx::Done => Ok(None),
            Rx::Waiting => {
                let fut = poll_fn(|cx| match self.response.borrow_mut().take() {
                    Some(f) => Poll::Ready(f),
                    None => {
                        *self.response_waker.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                let resp = fut
                    .await
                    .map_err(|e| io::Error::new(io::ErrorKind::ConnectionReset, e.to_string()))?;
                let (parts, recv) = resp.into_parts();
                let status = parts.status;
                let mut out = Vec::with_capacity(256);
                out.extend_from_slice(b"HTTP/1.1 ");
                out.extend_from_slice(status.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
                out.extend_from_slice(b"\r\n");
                for (name, value) in parts.headers.iter() {
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                let no_body = self.head_method.get()
                    || status.is_informational()
                    || status == http::StatusCode::NO_CONTENT
                    || status == http::StatusCode::NOT_MODIFIED;
                let has_length = parts.headers.contains_key(http::header::CONTENT_LENGTH);
                *rx = if no_body {
                    Rx::Done
                } else if has_length {
                    Rx::Body {
                        recv,
                        chunked: false,
                    }
                } else if recv.is_end_stream() {
                    out.extend_from_slice(b"content-length: 0\r\n");
                    Rx::Done
                } else {
                    out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                    Rx::Body {
                        recv,
                        chunked: true,
                    }
                };
                out.extend_from_slice(b"\r\n");
                Ok(Some(RecvBuf::from_vec(out)))
            }
            Rx::Body { recv, chunked } => {
                let chunked = *chunked;
                loop {
                    match recv.data().await {
                        Some(Ok(d)) if d.is_empty() => continue,
                        Some(Ok(d)) => {
                            // Given back at once: the session sends these bytes to the client
                            // before it asks for more, which is the back-pressure.
                            let _ = recv.flow_control().release_capacity(d.len());
                            if !chunked {
                                return Ok(Some(RecvBuf::from_vec(d.to_vec())));
                            }
                            let mut out = Vec::with_capacity(d.len() + 12);
                            use std::io::Write as _;
                            let _ = write!(out, "{:x}\r\n", d.len());
                            out.extend_from_slice(&d);
                            out.extend_from_slice(b"\r\n");
                            return Ok(Some(RecvBuf::from_vec(out)));
                        }
                        Some(Err(e)) => {
                            return Err(io::Error::new(
                                io::ErrorKind::ConnectionReset,
                                e.to_string(),
                            ))
                        }
                        None => break,
                    }
                }
                if !chunked {
                    *rx = Rx::Done;
                    return Ok(None);
                }
                let trailers = recv
                    .trailers()
                    .await
                    .map_err(|e| io::Error::new(io::ErrorKind::ConnectionReset, e.to_string()))?;
                let mut out = b"0\r\n".to_vec();
                for (name, value) in trailers.iter().flat_map(|t| t.iter()) {
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
                *rx = Rx::Done;
                Ok(Some(RecvBuf::from_vec(out)))
            }
        }
    }
}

impl Drop for H2Exchange {
    fn drop(&mut self) {
        let c = &self.client;
        c.inflight.set(c.inflight.get().saturating_sub(1));
        c.last_used.set(Instant::now());
        if c.inflight.get() == 0 {
            if let Some(w) = c.idle_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }
}

impl Io for H2Exchange {
    async fn recv(&self) -> io::Result<Option<RecvBuf>> {
        self.give().await
    }

    async fn send_all(&self, buf: SendBuf) -> (io::Result<()>, SendBuf) {
        let r = self.take(buf.remaining()).await;
        (r, buf)
    }

    async fn send_pair(&self, a: SendBuf, b: SendBuf) -> (io::Result<()>, SendBuf, SendBuf) {
        let (r, a) = self.send_all(a).await;
        if r.is_err() {
            return (r, a, b);
        }
        let (r, b) = self.send_all(b).await;
        (r, a, b)
    }

    async fn finish(&self) {}
}

/// After a failed send on the stream: a server that reset it with NO_ERROR answered already
/// and wants no more body (the rest is dropped); any other reset is a failure.
fn discard_or_fail(tx: &mut Tx) -> io::Result<()> {
    let Tx::Body { send, .. } = tx else {
        return Err(io::Error::other("h2 stream"));
    };
    let waker = Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match send.poll_reset(&mut cx) {
        Poll::Ready(Ok(h2::Reason::NO_ERROR)) => {
            *tx = Tx::Discard;
            Ok(())
        }
        _ => Err(io::Error::other("h2 stream reset")),
    }
}

/// Trailer section bytes (validated by the chunked decoder) as HTTP/2 trailers; fields HTTP/2
/// forbids are left out.
pub fn trailer_map(section: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in ringlb_http1::trailer_fields(section) {
        if CONNECTION_SPECIFIC
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_become_h2_fields_without_connection_specific_ones() {
        let m = trailer_map(b"grpc-status: 0\r\nGrpc-Message: fine\r\nconnection: x\r\n\r\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]));
        assert_eq!(
            m.get("grpc-message").map(|v| v.as_bytes()),
            Some(&b"fine"[..])
        );
        assert!(trailer_map(b"\r\n").is_empty());
    }
}
