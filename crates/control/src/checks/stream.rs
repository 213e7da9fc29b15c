//! The connection a check talks over: plain TCP, or TLS (`check-ssl`, `http-check connect
//! ssl`, or a server with `ssl` checked on its own port) through `ringlb-tls`'s sans-IO client
//! session, with the server line's TLS settings (`verify`, `ca-file`, ciphers...) and the
//! check's SNI (`check-sni`).

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
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

impl CheckStream {
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
                    let n = buf.len().min(s.plain.len());
                    if let (Some(dst), Some(src)) = (buf.get_mut(..n), s.plain.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                    s.plain.drain(..n);
                    return Ok(n);
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
