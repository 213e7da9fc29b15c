//! Byte streams the proxy phases read and write: a plain TCP socket (`ringlb-uring`) or a TLS
//! session over one (`ringlb-tls`, sans-IO rustls). Phases are generic over [`Io`], so the
//! plain path keeps its zero-copy forwarding and TLS pays only for what it must.
//!
//! TLS costs one copy each way, by nature: received ciphertext is decrypted into a heap buffer
//! handed on as a `RecvBuf`, and plaintext to send is encrypted into a buffer reused by the
//! connection.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringlb_tls::{ShardTls, TlsClientSession, TlsError, TlsFacts, TlsSession};
use ringlb_uring::{IoMeter, RecvBuf, SendBuf, TcpStream};

use crate::time::within;

/// What the phases need from a stream. Single-threaded (shards), hence no `Send` bounds.
#[allow(async_fn_in_trait)]
pub trait Io {
    /// The next bytes, `Ok(None)` at end of stream.
    async fn recv(&self) -> io::Result<Option<RecvBuf>>;
    /// Sends all of `buf`; gives it back for reuse.
    async fn send_all(&self, buf: SendBuf) -> (io::Result<()>, SendBuf);
    /// Sends `a` then `b` as one write where the transport allows.
    async fn send_pair(&self, a: SendBuf, b: SendBuf) -> (io::Result<()>, SendBuf, SendBuf);
    /// Half-closes the sending side (FIN; after `close_notify` on TLS).
    async fn finish(&self);
}

impl Io for TcpStream {
    async fn recv(&self) -> io::Result<Option<RecvBuf>> {
        TcpStream::recv(self).await
    }

    async fn send_all(&self, buf: SendBuf) -> (io::Result<()>, SendBuf) {
        TcpStream::send_all(self, buf).await
    }

    async fn send_pair(&self, a: SendBuf, b: SendBuf) -> (io::Result<()>, SendBuf, SendBuf) {
        TcpStream::send_pair(self, a, b).await
    }

    async fn finish(&self) {
        let _ = self.shutdown_write();
    }
}

/// A client connection: plain, or TLS terminated by ringlb.
pub enum ClientConn {
    Plain(TcpStream),
    Tls(Box<TlsConn>),
}

impl ClientConn {
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp().peer_addr()
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientConn::Plain(t) => t,
            ClientConn::Tls(t) => &t.tcp,
        }
    }

    pub fn set_linger_zero(&self) {
        self.tcp().set_linger_zero();
    }

    /// Adds the (plaintext) bytes the connection receives and sends from now on to `meter`.
    pub fn meter(&self, meter: Option<std::rc::Rc<IoMeter>>) {
        match self {
            ClientConn::Plain(t) => t.meter(meter),
            ClientConn::Tls(t) => *t.meter.borrow_mut() = meter,
        }
    }

    /// The TLS facts (`ssl_fc`, SNI, protocol...) once the handshake is done.
    pub fn tls_facts(&self) -> Option<TlsFacts> {
        match self {
            ClientConn::Plain(_) => None,
            ClientConn::Tls(t) => t.session.borrow().facts().cloned(),
        }
    }
}

impl Io for ClientConn {
    async fn recv(&self) -> io::Result<Option<RecvBuf>> {
        match self {
            ClientConn::Plain(t) => t.recv().await,
            ClientConn::Tls(t) => t.recv().await,
        }
    }

    async fn send_all(&self, buf: SendBuf) -> (io::Result<()>, SendBuf) {
        match self {
            ClientConn::Plain(t) => t.send_all(buf).await,
            ClientConn::Tls(t) => t.send_all(buf).await,
        }
    }

    async fn send_pair(&self, a: SendBuf, b: SendBuf) -> (io::Result<()>, SendBuf, SendBuf) {
        match self {
            ClientConn::Plain(t) => t.send_pair(a, b).await,
            ClientConn::Tls(t) => {
                let (r, a) = t.send_all(a).await;
                if r.is_err() {
                    return (r, a, b);
                }
                let (r, b) = t.send_all(b).await;
                (r, a, b)
            }
        }
    }

    async fn finish(&self) {
        match self {
            ClientConn::Plain(t) => t.finish().await,
            ClientConn::Tls(t) => t.finish().await,
        }
    }
}

/// Why a TLS handshake did not complete.
#[derive(Debug)]
pub enum HandshakeError {
    Timeout,
    Closed,
    Io(io::Error),
    Tls(String),
}

/// The sans-IO calls a TLS session offers, server side ([`TlsSession`]) or client side
/// ([`TlsClientSession`], towards servers).
pub trait SansIo {
    fn feed(&mut self, ct: &[u8]) -> Result<usize, TlsError>;
    fn take_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError>;
    fn write_plaintext(&mut self, data: &[u8]) -> usize;
    fn take_ciphertext(&mut self, out: &mut Vec<u8>) -> usize;
    fn wants_write(&self) -> bool;
    fn is_handshaking(&self) -> bool;
    fn send_close_notify(&mut self);
    fn peer_closed(&self) -> bool;
}

macro_rules! sans_io {
    ($t:ty) => {
        impl SansIo for $t {
            fn feed(&mut self, ct: &[u8]) -> Result<usize, TlsError> {
                <$t>::feed(self, ct)
            }
            fn take_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
                <$t>::take_plaintext(self, out)
            }
            fn write_plaintext(&mut self, data: &[u8]) -> usize {
                <$t>::write_plaintext(self, data)
            }
            fn take_ciphertext(&mut self, out: &mut Vec<u8>) -> usize {
                <$t>::take_ciphertext(self, out)
            }
            fn wants_write(&self) -> bool {
                <$t>::wants_write(self)
            }
            fn is_handshaking(&self) -> bool {
                <$t>::is_handshaking(self)
            }
            fn send_close_notify(&mut self) {
                <$t>::send_close_notify(self)
            }
            fn peer_closed(&self) -> bool {
                <$t>::peer_closed(self)
            }
        }
    };
}
sans_io!(TlsSession);
sans_io!(TlsClientSession);

/// TLS over a TCP socket. The session is borrowed only between awaits (never across one).
pub struct TlsConn<S: SansIo = TlsSession> {
    tcp: TcpStream,
    session: RefCell<S>,
    /// Ciphertext received but not yet accepted by the session (its plaintext buffer was full).
    unfed: RefCell<Option<RecvBuf>>,
    /// The connection's ciphertext buffer for sending, reused.
    out: RefCell<Vec<u8>>,
    /// Where its plaintext bytes are added up (haproxy's HTTP/1 layer counts those).
    meter: RefCell<Option<std::rc::Rc<IoMeter>>>,
}

/// Plaintext bytes encrypted per record batch when sending.
const SEND_CHUNK: usize = 16 << 10;

impl TlsConn<TlsSession> {
    /// Runs the server handshake within `timeout`.
    pub async fn accept(
        tcp: TcpStream,
        tls: Arc<ShardTls>,
        timeout: Option<Duration>,
    ) -> Result<TlsConn, (TcpStream, HandshakeError)> {
        let conn = TlsConn {
            tcp,
            session: RefCell::new(TlsSession::new(tls)),
            unfed: RefCell::new(None),
            out: RefCell::new(Vec::new()),
            meter: RefCell::new(None),
        };
        match within(timeout, conn.handshake()).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => Err((conn.tcp, e)),
            Err(_) => Err((conn.tcp, HandshakeError::Timeout)),
        }
    }
}

impl TlsConn<TlsClientSession> {
    /// Runs the client handshake towards a server within `timeout` (`server ... ssl`).
    pub async fn connect(
        tcp: TcpStream,
        session: TlsClientSession,
        timeout: Option<Duration>,
    ) -> Result<TlsConn<TlsClientSession>, HandshakeError> {
        let conn = TlsConn {
            tcp,
            session: RefCell::new(session),
            unfed: RefCell::new(None),
            out: RefCell::new(Vec::new()),
            meter: RefCell::new(None),
        };
        match within(timeout, conn.handshake()).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(HandshakeError::Timeout),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

impl<S: SansIo> TlsConn<S> {
    async fn handshake(&self) -> Result<(), HandshakeError> {
        loop {
            // A client speaks first (ClientHello); a server has nothing to send yet.
            if self.session.borrow().wants_write() {
                self.flush().await.map_err(HandshakeError::Io)?;
            }
            if !self.session.borrow().is_handshaking() {
                return self.flush().await.map_err(HandshakeError::Io);
            }
            let ct = match self.tcp.recv().await {
                Ok(Some(ct)) => ct,
                Ok(None) => return Err(HandshakeError::Closed),
                Err(e) => return Err(HandshakeError::Io(e)),
            };
            let fed = self.session.borrow_mut().feed(ct.bytes());
            match fed {
                Ok(n) => {
                    if n < ct.len() {
                        let mut rest = ct;
                        rest.consume(n);
                        *self.unfed.borrow_mut() = Some(rest);
                    }
                }
                Err(e) => {
                    // The alert goes out before the connection closes, as with OpenSSL.
                    let _ = self.flush().await;
                    return Err(HandshakeError::Tls(format!("{e:?}")));
                }
            }
            self.flush().await.map_err(HandshakeError::Io)?;
            if self.unfed.borrow().is_some() {
                // Application data came with the last handshake flight: keep it for recv.
                return Ok(());
            }
        }
    }

    /// Sends whatever ciphertext the session has.
    async fn flush(&self) -> io::Result<()> {
        let mut buf = std::mem::take(&mut *self.out.borrow_mut());
        buf.clear();
        if self.session.borrow_mut().take_ciphertext(&mut buf) == 0 {
            *self.out.borrow_mut() = buf;
            return Ok(());
        }
        let (r, back) = self.tcp.send_all(SendBuf::from_vec(buf)).await;
        if let Some(v) = back.into_vec() {
            *self.out.borrow_mut() = v;
        }
        r
    }

    async fn recv(&self) -> io::Result<Option<RecvBuf>> {
        loop {
            // Plaintext already decrypted?
            let mut plain = Vec::new();
            let taken = self.session.borrow_mut().take_plaintext(&mut plain);
            match taken {
                Ok(n) if n > 0 => {
                    if let Some(m) = &*self.meter.borrow() {
                        m.add_rx(n);
                    }
                    return Ok(Some(RecvBuf::from_vec(plain)));
                }
                Ok(_) => {}
                Err(e) => return Err(io::Error::other(format!("{e:?}"))),
            }
            if self.session.borrow().peer_closed() {
                return Ok(None);
            }
            let pending = self.unfed.borrow_mut().take();
            let mut ct = match pending {
                Some(ct) => ct,
                None => match self.tcp.recv().await? {
                    Some(ct) => ct,
                    None => return Ok(None),
                },
            };
            let fed = self.session.borrow_mut().feed(ct.bytes());
            match fed {
                Ok(n) => {
                    ct.consume(n);
                    if !ct.is_empty() {
                        *self.unfed.borrow_mut() = Some(ct);
                    }
                }
                Err(e) => {
                    let _ = self.flush().await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")));
                }
            }
            // Key updates and session tickets may need answers.
            if self.session.borrow().wants_write() {
                self.flush().await?;
            }
        }
    }

    async fn send_all(&self, buf: SendBuf) -> (io::Result<()>, SendBuf) {
        let mut off = 0;
        let len = buf.remaining().len();
        while off < len {
            let end = (off + SEND_CHUNK).min(len);
            let n = self
                .session
                .borrow_mut()
                .write_plaintext(buf.remaining().get(off..end).unwrap_or_default());
            if n == 0 {
                return (Err(io::Error::other("TLS session refused plaintext")), buf);
            }
            off += n;
            if let Err(e) = self.flush().await {
                return (Err(e), buf);
            }
        }
        if let Some(m) = &*self.meter.borrow() {
            m.add_tx(len);
        }
        (Ok(()), buf)
    }

    async fn finish(&self) {
        self.session.borrow_mut().send_close_notify();
        let _ = self.flush().await;
        let _ = self.tcp.shutdown_write();
    }
}

/// A connection to a server: plain, TLS (`server ... ssl`), or one stream of a shared
/// HTTP/2 connection (`server ... proto h2`, `h2srv.rs`).
pub enum ServerStream {
    Plain(TcpStream),
    Tls(Box<TlsConn<TlsClientSession>>),
    H2(Box<crate::h2srv::H2Exchange>),
}

impl ServerStream {
    /// Drops the connection without a FIN (a failed exchange). An h2 stream is reset when
    /// the exchange is dropped; its shared connection stays.
    pub fn set_linger_zero(&self) {
        match self {
            ServerStream::Plain(t) => t.set_linger_zero(),
            ServerStream::Tls(t) => t.tcp().set_linger_zero(),
            ServerStream::H2(_) => {}
        }
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            ServerStream::Plain(t) => t.peer_addr(),
            ServerStream::Tls(t) => t.tcp().peer_addr(),
            ServerStream::H2(x) => x.peer_addr(),
        }
    }

    /// Adds the (plaintext) bytes the connection receives and sends from now on to `meter`
    /// (not an h2 stream: its connection counts its own).
    pub fn meter(&self, meter: Option<std::rc::Rc<IoMeter>>) {
        match self {
            ServerStream::Plain(t) => t.meter(meter),
            ServerStream::Tls(t) => *t.meter.borrow_mut() = meter,
            ServerStream::H2(_) => {}
        }
    }

    /// The socket's descriptor (`show sess`); -1 for an h2 stream (its connection is shared).
    pub fn raw_fd(&self) -> i32 {
        match self {
            ServerStream::Plain(t) => t.as_raw_fd(),
            ServerStream::Tls(t) => t.tcp().as_raw_fd(),
            ServerStream::H2(_) => -1,
        }
    }

    /// The ALPN protocol the server chose (TLS only).
    pub fn alpn_is_h2(&self) -> bool {
        match self {
            ServerStream::Tls(t) => t.session.borrow().alpn() == Some(b"h2"),
            _ => false,
        }
    }

    /// The facts of a TLS connection (`ssl_bc_*`, `ssl_s_*`); for an h2 stream, those its
    /// shared connection read after its handshake. `None` for plain TCP.
    pub fn tls_facts(&self) -> Option<ringlb_tls::ServerTlsFacts> {
        match self {
            ServerStream::Tls(t) => Some(t.session.borrow().facts()),
            ServerStream::H2(x) => x.tls_facts(),
            _ => None,
        }
    }

    /// Whether this is a stream of an HTTP/2 connection (never pooled as an idle connection).
    pub fn is_h2(&self) -> bool {
        matches!(self, ServerStream::H2(_))
    }
}

impl Io for ServerStream {
    async fn recv(&self) -> io::Result<Option<RecvBuf>> {
        match self {
            ServerStream::Plain(t) => t.recv().await,
            ServerStream::Tls(t) => t.recv().await,
            ServerStream::H2(x) => x.recv().await,
        }
    }

    async fn send_all(&self, buf: SendBuf) -> (io::Result<()>, SendBuf) {
        match self {
            ServerStream::Plain(t) => TcpStream::send_all(t, buf).await,
            ServerStream::Tls(t) => t.send_all(buf).await,
            ServerStream::H2(x) => x.send_all(buf).await,
        }
    }

    async fn send_pair(&self, a: SendBuf, b: SendBuf) -> (io::Result<()>, SendBuf, SendBuf) {
        match self {
            ServerStream::Plain(t) => TcpStream::send_pair(t, a, b).await,
            ServerStream::H2(x) => x.send_pair(a, b).await,
            ServerStream::Tls(t) => {
                let (r, a) = t.send_all(a).await;
                if r.is_err() {
                    return (r, a, b);
                }
                let (r, b) = t.send_all(b).await;
                (r, a, b)
            }
        }
    }

    async fn finish(&self) {
        match self {
            ServerStream::Plain(t) => Io::finish(t).await,
            ServerStream::Tls(t) => t.finish().await,
            ServerStream::H2(x) => x.finish().await,
        }
    }
}
