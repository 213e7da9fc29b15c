//! The connection a check talks over: plain TCP, or TLS (`check-ssl`, `http-check connect
//! ssl`, or a server with `ssl` checked on its own port) through `ringlb-tls`'s sans-IO client
//! session, with the server line's TLS settings (`verify`, `ca-file`, ciphers...) and the
//! check's SNI (`check-sni`).

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use ringlb_tls::TlsClientSession;

use super::exec::until;

/// A check connection.
pub enum CheckStream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// TLS over a check's TCP connection.
pub struct TlsStream {
    tcp: TcpStream,
    tls: TlsClientSession,
    /// Decrypted bytes not yet handed out.
    plain: Vec<u8>,
    /// Ciphertext not yet written (the poll-based side, used by HTTP/2 checks).
    out: Vec<u8>,
}

/// Why a TLS handshake failed (HAProxy: `Layer6 timeout` / `Layer6 invalid response`).
pub enum HandshakeError {
    Timeout,
    Failed(String),
}

/// Marks a certificate issued for another name (HAProxy words it differently).
const NAME_MISMATCH: &str = "NotValidForName";

fn tls_err(e: ringlb_tls::TlsError) -> io::Error {
    use rustls::CertificateError as C;
    let mismatch = matches!(
        &e,
        ringlb_tls::TlsError::Tls(rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. }
        ))
    );
    let text = if mismatch {
        NAME_MISMATCH.to_string()
    } else {
        e.to_string()
    };
    io::Error::new(io::ErrorKind::InvalidData, text)
}

impl TlsStream {
    /// Sends what the session has to send.
    async fn flush(&mut self, deadline: Instant) -> io::Result<()> {
        let mut out = Vec::new();
        self.tls.take_ciphertext(&mut out);
        if !out.is_empty() {
            until(deadline, self.tcp.write_all(&out)).await?;
        }
        Ok(())
    }

    /// Reads once from the socket into the session; `Ok(false)` at EOF.
    async fn pull(&mut self, deadline: Instant) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        let n = until(deadline, self.tcp.read(&mut buf)).await?;
        if n == 0 {
            return Ok(false);
        }
        let mut fed = 0;
        while fed < n {
            let used = self
                .tls
                .feed(buf.get(fed..n).unwrap_or_default())
                .map_err(tls_err)?;
            self.tls.take_plaintext(&mut self.plain).map_err(tls_err)?;
            if used == 0 {
                break;
            }
            fed += used;
        }
        Ok(true)
    }
}

/// Copies what `plain` holds into `buf`; how many bytes.
fn take_plain(plain: &mut Vec<u8>, buf: &mut [u8]) -> usize {
    let n = buf.len().min(plain.len());
    if let (Some(dst), Some(src)) = (buf.get_mut(..n), plain.get(..n)) {
        dst.copy_from_slice(src);
    }
    plain.drain(..n);
    n
}

impl TlsStream {
    /// Writes the pending ciphertext (and what the session has to send).
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.out.is_empty() {
                self.tls.take_ciphertext(&mut self.out);
                if self.out.is_empty() {
                    return Pin::new(&mut self.tcp).poll_flush(cx);
                }
            }
            match Pin::new(&mut self.tcp).poll_write(cx, &self.out) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n.min(self.out.len()));
                }
            }
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            if !self.plain.is_empty() {
                return Poll::Ready(Ok(take_plain(&mut self.plain, buf)));
            }
            if self.tls.peer_closed() {
                return Poll::Ready(Ok(0));
            }
            let mut chunk = [0u8; 4096];
            let n = match Pin::new(&mut self.tcp).poll_read(cx, &mut chunk) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r?,
            };
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            let mut fed = 0;
            while fed < n {
                let used = self
                    .tls
                    .feed(chunk.get(fed..n).unwrap_or_default())
                    .map_err(tls_err)?;
                self.tls.take_plaintext(&mut self.plain).map_err(tls_err)?;
                if used == 0 {
                    break;
                }
                fed += used;
            }
            // What reading made the session send (alerts, key updates) goes out with the
            // next write; nothing waits on it here.
            self.tls.take_ciphertext(&mut self.out);
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Err(e)) = self.poll_out(cx) {
            return Poll::Ready(Err(e));
        }
        if !self.out.is_empty() {
            return Poll::Pending;
        }
        let n = self.tls.write_plaintext(data);
        if n == 0 && !data.is_empty() {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.tls.take_ciphertext(&mut self.out);
        Poll::Ready(Ok(n))
    }
}

impl CheckStream {
    /// Reads some bytes without waiting on a future (0 at the end of the stream): the
    /// HTTP/2 driver's side, which may read and write at the same time.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            CheckStream::Plain(t) => Pin::new(t).poll_read(cx, buf),
            CheckStream::Tls(s) => s.poll_read(cx, buf),
        }
    }

    /// Takes some of `data` (sent by [`Self::poll_flush`]).
    pub fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            CheckStream::Plain(t) => Pin::new(t).poll_write(cx, data),
            CheckStream::Tls(s) => s.poll_write(cx, data),
        }
    }

    /// Sends everything taken so far.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            CheckStream::Plain(t) => Pin::new(t).poll_flush(cx),
            CheckStream::Tls(s) => s.poll_out(cx),
        }
    }

    /// Half-closes the sending side (after the pending bytes).
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            CheckStream::Plain(t) => Pin::new(t).poll_close(cx),
            CheckStream::Tls(s) => {
                if !s.tls.peer_closed() {
                    s.tls.send_close_notify();
                }
                match s.poll_out(cx) {
                    Poll::Ready(Ok(())) => Pin::new(&mut s.tcp).poll_close(cx),
                    other => other,
                }
            }
        }
    }

    /// The protocol TLS negotiated (ALPN), if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            CheckStream::Plain(_) => None,
            CheckStream::Tls(s) => s.tls.alpn(),
        }
    }

    /// Starts TLS on a connected socket and completes the handshake before `deadline`.
    pub async fn tls(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        sni: Option<&str>,
        addr: IpAddr,
        deadline: Instant,
    ) -> Result<CheckStream, HandshakeError> {
        let name = ringlb_tls::server_name(sni, addr);
        let tls = TlsClientSession::new(config, name)
            .map_err(|_| HandshakeError::Failed("SSL handshake failure".into()))?;
        let mut s = TlsStream {
            tcp,
            tls,
            plain: Vec::new(),
            out: Vec::new(),
        };
        // HAProxy's connection error texts: a certificate for another name is
        // `CO_ER_SSL_MISMATCH`, anything else `CO_ER_SSL_HANDSHAKE`.
        let failed = |e: io::Error| {
            if e.kind() == io::ErrorKind::TimedOut {
                HandshakeError::Timeout
            } else if e.to_string() == NAME_MISMATCH {
                HandshakeError::Failed(
                    "Server presented an SSL certificate different from the expected one".into(),
                )
            } else {
                HandshakeError::Failed("SSL handshake failure".into())
            }
        };
        loop {
            s.flush(deadline).await.map_err(failed)?;
            if !s.tls.is_handshaking() {
                return Ok(CheckStream::Tls(Box::new(s)));
            }
            if !s.pull(deadline).await.map_err(failed)? {
                return Err(HandshakeError::Failed("SSL handshake failure".into()));
            }
        }
    }

    pub async fn write_all(&mut self, data: &[u8], deadline: Instant) -> io::Result<()> {
        match self {
            CheckStream::Plain(t) => until(deadline, t.write_all(data)).await,
            CheckStream::Tls(s) => {
                let mut off = 0;
                while off < data.len() {
                    let n = s.tls.write_plaintext(data.get(off..).unwrap_or_default());
                    s.flush(deadline).await?;
                    if n == 0 {
                        return Err(io::Error::from(io::ErrorKind::WriteZero));
                    }
                    off += n;
                }
                Ok(())
            }
        }
    }

    /// Reads some bytes (0 at the end of the stream).
    pub async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        match self {
            CheckStream::Plain(t) => until(deadline, t.read(buf)).await,
            CheckStream::Tls(s) => loop {
                if !s.plain.is_empty() {
                    return Ok(take_plain(&mut s.plain, buf));
                }
                if s.tls.peer_closed() || !s.pull(deadline).await? {
                    return Ok(0);
                }
                s.flush(deadline).await?;
            },
        }
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        let t = match self {
            CheckStream::Plain(t) => t,
            CheckStream::Tls(s) => &s.tcp,
        };
        t.local_addr().map_err(io::Error::from)
    }

    pub async fn close(self) {
        match self {
            CheckStream::Plain(mut t) => {
                let _ = t.close().await;
            }
            CheckStream::Tls(mut s) => {
                s.tls.send_close_notify();
                let mut out = Vec::new();
                s.tls.take_ciphertext(&mut out);
                let _ = s.tcp.write_all(&out).await;
                let _ = s.tcp.close().await;
            }
        }
    }
}
