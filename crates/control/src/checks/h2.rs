//! HTTP checks over HTTP/2 (`http-check connect proto h2`, `check-proto h2`, or `h2` chosen by
//! ALPN over TLS), as haproxy 2.6 runs them over its h2 mux: the check connection becomes an h2
//! client connection (through `ringlb-h2io`, the one place tokio's IO traits are named), each
//! `send` step one stream, and the response is handed to the expect rules as an HTTP/1 head
//! without reason phrase followed by the DATA received ([`ringlb_health::h2msg`]).
//!
//! Any HTTP/2 failure (a server that does not speak h2, a reset stream, a GOAWAY) is haproxy's
//! `Socket error` (recorded against an HTTP/1-only server: `* SOCKERR`, no code, no info).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::RecvStream;
use http::{HeaderName, HeaderValue, Request, Uri};
use ringlb_h2io::{H2Io, LocalFuture, Transport};
use ringlb_health::h2msg::SchemeFix;

use super::exec::until;
use super::stream::CheckStream;

/// Received bytes read at once from the socket.
const READ_CHUNK: usize = 16 << 10;

/// The check connection as h2's transport: every poll borrows the stream for its own length
/// only, so h2's reads and writes may be in flight together.
struct Wire {
    stream: RefCell<CheckStream>,
    /// Turns the library's `:scheme http` into haproxy's `https` (see `SchemeFix`).
    scheme: RefCell<SchemeFix>,
    /// Whether the server sent anything.
    received: std::cell::Cell<bool>,
    /// How the connection ended, once it did with an error.
    conn_error: RefCell<Option<io::Error>>,
}

impl Wire {
    /// A stream's error made precise with the connection's own (the library reports a
    /// connection that failed as a broken pipe to its streams).
    fn refine(&self, e: io::Error) -> io::Error {
        if e.kind() != io::ErrorKind::UnexpectedEof {
            return e;
        }
        match self.conn_error.borrow().as_ref() {
            Some(c) if c.kind() != io::ErrorKind::UnexpectedEof => match c.raw_os_error() {
                Some(errno) => io::Error::from_raw_os_error(errno),
                None => io::Error::new(c.kind(), c.to_string()),
            },
            _ => e,
        }
    }
}

impl Transport for Wire {
    type Chunk = Vec<u8>;

    fn bytes(chunk: &Vec<u8>) -> &[u8] {
        chunk
    }

    fn recv(self: Rc<Self>) -> LocalFuture<io::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = poll_fn(|cx| self.stream.borrow_mut().poll_read(cx, &mut buf)).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            self.received.set(true);
            Ok(Some(buf))
        })
    }

    fn send(self: Rc<Self>, mut buf: Vec<u8>) -> LocalFuture<(io::Result<()>, Vec<u8>)> {
        self.scheme.borrow_mut().process(&mut buf);
        Box::pin(async move {
            let mut off = 0;
            let r = poll_fn(|cx| {
                let mut s = self.stream.borrow_mut();
                while off < buf.len() {
                    match s.poll_write(cx, buf.get(off..).unwrap_or_default()) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()))
                        }
                        Poll::Ready(Ok(n)) => off += n,
                    }
                }
                s.poll_flush(cx)
            })
            .await;
            (r, buf)
        })
    }

    fn shutdown(self: Rc<Self>) -> LocalFuture<()> {
        Box::pin(async move {
            let _ = poll_fn(|cx| self.stream.borrow_mut().poll_shutdown(cx)).await;
        })
    }
}

/// Where the exchange of the current stream is.
enum Rx {
    /// No request sent yet.
    Idle,
    /// Waiting for the response head.
    Head(ResponseFuture),
    /// Reading DATA.
    Body(RecvStream),
    /// The stream ended.
    Done,
}

/// An HTTP/2 check connection.
pub struct H2Check {
    send: SendRequest<Bytes>,
    rx: Rx,
    /// The connection, for the `:scheme` fix of each request.
    wire: Rc<Wire>,
    /// Drives the connection; dropping it (at the end of the check) cancels it, which
    /// closes the connection.
    _driver: glommio::Task<()>,
}

/// An HTTP/2 failure as the driver judges it (see `exec::h2_failure`): a connection error
/// keeps its kind and errno text (`Connection reset by peer`); the server's close before any
/// frame is `UnexpectedEof`; a protocol error (a server that does not speak h2, a GOAWAY, a
/// reset stream) is `InvalidData`.
fn h2_failed(e: h2::Error) -> io::Error {
    if let Some(io) = e.get_io() {
        let errno = match io.kind() {
            // h2 reports the peer's close as a broken pipe of its own making.
            io::ErrorKind::BrokenPipe if io.get_ref().is_some() => {
                return io::Error::new(io::ErrorKind::UnexpectedEof, "closed by the server")
            }
            io::ErrorKind::ConnectionReset => Some(libc::ECONNRESET),
            io::ErrorKind::BrokenPipe => Some(libc::EPIPE),
            io::ErrorKind::ConnectionAborted => Some(libc::ECONNABORTED),
            _ => io.raw_os_error(),
        };
        if let Some(errno) = errno {
            return io::Error::from_raw_os_error(errno);
        }
    }
    io::Error::new(io::ErrorKind::InvalidData, format!("h2: {e}"))
}

impl H2Check {
    /// Starts HTTP/2 on a connected (and, over TLS, handshaken) check connection.
    pub async fn start(stream: CheckStream, deadline: Instant) -> io::Result<H2Check> {
        let wire = Rc::new(Wire {
            stream: RefCell::new(stream),
            scheme: RefCell::new(SchemeFix::new()),
            received: std::cell::Cell::new(false),
            conn_error: RefCell::new(None),
        });
        let io = H2Io::new(wire.clone());
        let (send, conn) = until(deadline, async {
            h2::client::Builder::new()
                .enable_push(false)
                .handshake::<_, Bytes>(io)
                .await
                .map_err(h2_failed)
        })
        .await?;
        let on_end = wire.clone();
        let driver = glommio::spawn_local(async move {
            if let Err(e) = conn.await {
                *on_end.conn_error.borrow_mut() = Some(h2_failed(e));
            }
        });
        Ok(H2Check {
            send,
            rx: Rx::Idle,
            wire,
            _driver: driver,
        })
    }

    /// Whether the server sent anything on this connection.
    pub fn received_any(&self) -> bool {
        self.wire.received.get()
    }

    /// Sends the HTTP/1 request bytes of a `send` step as one stream.
    pub async fn send(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let req = ringlb_health::h2msg::request(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        fn bad<E>(_: E) -> io::Error {
            io::Error::new(io::ErrorKind::InvalidInput, "request not valid for HTTP/2")
        }
        // haproxy 2.6 (recorded with nghttpd): for a relative target `:method`, `:scheme
        // https` (over TLS or not) and `:path`, no `:authority`, a `Host` as a `host` field;
        // an absolute target gives its own scheme and `:authority`. The h2 library gives a
        // relative target `:scheme http`: `SchemeFix` makes it `https` on the wire.
        let relative = req.target.starts_with('/');
        let uri = Uri::try_from(req.target.as_str()).map_err(bad)?;
        self.wire.scheme.borrow_mut().expect_request(relative);
        let version = if uri.scheme().is_some() {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        let mut request = Request::builder()
            .method(http::Method::from_bytes(req.method.as_bytes()).map_err(bad)?)
            .uri(uri)
            .version(version)
            .body(())
            .map_err(bad)?;
        for (name, value) in &req.headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).map_err(bad)?,
                HeaderValue::from_bytes(value).map_err(bad)?,
            );
        }
        let end = req.body.is_empty();
        let sender = &mut self.send;
        let rx = &mut self.rx;
        until(deadline, async {
            poll_fn(|cx| sender.poll_ready(cx))
                .await
                .map_err(h2_failed)?;
            let (resp, mut body) = sender.send_request(request, end).map_err(h2_failed)?;
            if !end {
                body.send_data(Bytes::from(req.body), true)
                    .map_err(h2_failed)?;
            }
            *rx = Rx::Head(resp);
            Ok(())
        })
        .await
        .map_err(|e| self.wire.refine(e))
    }

    /// Appends what comes next of the response to `buf` (its head first, as HTTP/1), up to
    /// `max` bytes; `Ok(true)` once the stream ended or the buffer is full.
    pub async fn read_some(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
        deadline: Instant,
    ) -> io::Result<bool> {
        let wire = self.wire.clone();
        let r = until(deadline, async {
            match std::mem::replace(&mut self.rx, Rx::Done) {
                Rx::Idle | Rx::Done => Ok(true),
                Rx::Head(resp) => {
                    let resp = resp.await.map_err(h2_failed)?;
                    let (parts, recv) = resp.into_parts();
                    let head = ringlb_health::h2msg::response_head(
                        parts.status.as_u16(),
                        parts
                            .headers
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_bytes())),
                    );
                    buf.extend_from_slice(&head);
                    if recv.is_end_stream() {
                        return Ok(true);
                    }
                    self.rx = Rx::Body(recv);
                    Ok(buf.len() >= max)
                }
                Rx::Body(mut recv) => match recv.data().await {
                    None => Ok(true),
                    Some(Err(e)) => Err(h2_failed(e)),
                    Some(Ok(data)) => {
                        let _ = recv.flow_control().release_capacity(data.len());
                        let room = max.saturating_sub(buf.len()).min(data.len());
                        buf.extend_from_slice(data.get(..room).unwrap_or_default());
                        let ended = recv.is_end_stream();
                        self.rx = Rx::Body(recv);
                        Ok(ended || buf.len() >= max)
                    }
                },
            }
        })
        .await;
        r.map_err(|e| wire.refine(e))
    }
}
