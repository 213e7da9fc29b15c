//! Sans-IO TLS sessions. The engine owns the socket: it feeds received ciphertext in, takes
//! plaintext out, queues plaintext to send and takes the ciphertext to write.
//!
//! ```text
//!  Accepting ──ClientHello──▶ Open(handshaking) ──Finished──▶ Open(established) ──close_notify──▶ closed
//!      │  (SNI picks the policy)        │
//!      └──────── bad hello ─────────────┴──▶ Failed: the alert is still to be taken and sent
//! ```
//!
//! A session buffers at most rustls's limits: when `feed` returns fewer bytes than given, the
//! engine takes plaintext and feeds the rest later.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

use rustls::server::Acceptor;
use rustls::{ConnectionCommon, HandshakeKind, ServerConnection};

use crate::bind::ShardTls;
use crate::cert::LoadedCert;
use crate::der::{CertInfo, Dn};
use crate::policy::{openssl_cipher_name, protocol_name};

/// Why a session failed. After an error, send what `take_ciphertext` returns (the alert),
/// then close.
#[derive(Debug)]
pub enum TlsError {
    /// A TLS protocol error (bad handshake, bad record, certificate refused...).
    Tls(rustls::Error),
    /// Feeding or reading the buffers failed (a rustls buffer limit was hit).
    Buffer(io::Error),
    /// No certificate for the requested name (`strict-sni`).
    NoCertificate,
    /// The session already failed; only its alert is left to send.
    Failed,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Tls(e) => write!(f, "TLS error: {e}"),
            TlsError::Buffer(e) => write!(f, "TLS buffer error: {e}"),
            TlsError::NoCertificate => f.write_str("no certificate for the requested server name"),
            TlsError::Failed => f.write_str("the TLS session has already failed"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Moves bytes through any rustls connection (server or client side).
pub(crate) mod pipe {
    use super::*;

    /// Feeds ciphertext; returns bytes consumed and whether the peer sent close_notify.
    pub fn feed<D>(
        conn: &mut ConnectionCommon<D>,
        mut ct: &[u8],
    ) -> Result<(usize, bool), TlsError> {
        let total = ct.len();
        let mut closed = false;
        while !ct.is_empty() {
            match conn.read_tls(&mut ct) {
                Ok(0) => break,
                Ok(_) => {}
                // rustls refuses more until plaintext is taken ("received plaintext buffer
                // full"): report what was consumed, possibly nothing (backpressure).
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => return Err(TlsError::Buffer(e)),
            }
            let state = conn.process_new_packets().map_err(TlsError::Tls)?;
            closed |= state.peer_has_closed();
        }
        Ok((total - ct.len(), closed))
    }

    /// Appends the received plaintext to `out`, copying it once (from rustls's buffer).
    pub fn take_plaintext<D>(
        conn: &mut ConnectionCommon<D>,
        out: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        let start = out.len();
        loop {
            let mut rd = conn.reader();
            let n = match rd.fill_buf() {
                Ok([]) => break,
                Ok(chunk) => {
                    out.extend_from_slice(chunk);
                    chunk.len()
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // UnexpectedEof: the peer closed without close_notify (truncation).
                Err(e) => return Err(TlsError::Buffer(e)),
            };
            rd.consume(n);
        }
        Ok(out.len() - start)
    }

    pub fn write_plaintext<D>(conn: &mut ConnectionCommon<D>, data: &[u8]) -> usize {
        conn.writer().write(data).unwrap_or(0)
    }

    pub fn take_ciphertext<D>(conn: &mut ConnectionCommon<D>, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        while conn.wants_write() {
            match conn.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out.len() - start
    }
}

/// The connection facts the rules engine fetches (`ssl_fc_*`, `ssl_c_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFacts {
    pub sni: Option<String>,
    /// `TLSv1.3`, `TLSv1.2`.
    pub protocol: &'static str,
    /// OpenSSL's name: `TLS_AES_128_GCM_SHA256`, `ECDHE-RSA-AES128-GCM-SHA256`.
    pub cipher: &'static str,
    pub alpn: Option<Vec<u8>>,
    pub session_reused: bool,
    pub client_cert: Option<ClientCert>,
    /// The certificate this connection was served (`ssl_f_*`): shared with the store.
    pub frontend_cert: Option<Arc<LoadedCert>>,
    /// The ClientHello's lists, kept under `tune.ssl.capture-buffer-size` only.
    pub hello: Option<Arc<HelloCapture>>,
}

/// The ClientHello lists `ssl_fc_cipherlist_*` and `ssl_fc_eclist_bin` read, as sent (two
/// bytes per value, GREASE included). HAProxy keeps at most `capture` bytes in its buffer,
/// ciphers first then the extension list, curves and point formats; rustls gives no
/// extension list, so curves here get what the ciphers leave, where haproxy's get what the
/// ciphers and the extension list leave (the same whenever the buffer holds everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloCapture {
    /// The whole cipher list (`ssl_fc_cipherlist_xxh` hashes all of it).
    pub ciphers: Vec<u8>,
    pub groups: Vec<u8>,
    pub capture: usize,
}

/// RFC 8701 GREASE values: `0x?A?A` with both bytes equal.
fn is_grease(v: &[u8]) -> bool {
    matches!(v, [a, b] if a == b && a & 0x0f == 0x0a)
}

impl HelloCapture {
    fn kept(list: &[u8], room: usize, no_grease: bool) -> Vec<u8> {
        let kept = list.get(..room.min(list.len()) & !1).unwrap_or_default();
        kept.chunks(2)
            .filter(|v| !(no_grease && is_grease(v)))
            .flatten()
            .copied()
            .collect()
    }

    /// `ssl_fc_cipherlist_bin([filter])`: what the buffer holds, without GREASE when asked.
    pub fn cipherlist(&self, no_grease: bool) -> Vec<u8> {
        Self::kept(&self.ciphers, self.capture, no_grease)
    }

    /// `ssl_fc_cipherlist_str([filter])`: OpenSSL's names, comma-separated; a code OpenSSL
    /// does not know is `UNKNOWN(xxxx)`, as haproxy prints it.
    pub fn cipherlist_names(&self, no_grease: bool) -> String {
        let list = self.cipherlist(no_grease);
        let mut out = String::new();
        for v in list.chunks_exact(2) {
            let code = u16::from_be_bytes([v[0], v[1]]);
            if !out.is_empty() {
                out.push(',');
            }
            match crate::openssl_names::NAMES
                .binary_search_by_key(&code, |(c, _)| *c)
                .ok()
                .and_then(|i| crate::openssl_names::NAMES.get(i))
            {
                Some((_, name)) => out.push_str(name),
                None => out.push_str(&format!("UNKNOWN({code:04x})")),
            }
        }
        out
    }

    /// `ssl_fc_eclist_bin([filter])`.
    pub fn eclist(&self, no_grease: bool) -> Vec<u8> {
        let room = self
            .capture
            .saturating_sub(self.ciphers.len().min(self.capture));
        Self::kept(&self.groups, room, no_grease)
    }
}

/// Whose certificate an `ssl_c_*` or `ssl_f_*` fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSide {
    /// The client's (`ssl_c_*`).
    Client,
    /// The one served to the client (`ssl_f_*`).
    Frontend,
}

/// A certificate as the `ssl_c_*` / `ssl_f_*` fetches read it.
#[derive(Debug, Clone, Copy)]
pub struct CertRef<'a> {
    pub info: &'a CertInfo,
    pub der: &'a [u8],
}

impl<'a> CertRef<'a> {
    /// `..._s_dn([field[,occ[,format]]])`.
    pub fn s_dn(&self, field: Option<&str>, occ: i32, format: DnFormat) -> String {
        dn_fetch(&self.info.subject, field, occ, format)
    }

    /// `..._i_dn([field[,occ[,format]]])`.
    pub fn i_dn(&self, field: Option<&str>, occ: i32, format: DnFormat) -> String {
        dn_fetch(&self.info.issuer, field, occ, format)
    }

    /// `..._serial` (binary; `,hex` renders it).
    pub fn serial(&self) -> &'a [u8] {
        &self.info.serial
    }

    /// `..._notafter`: `YYMMDDhhmmssZ`.
    pub fn not_after(&self) -> String {
        self.info.not_after.haproxy()
    }

    /// `..._notbefore`: `YYMMDDhhmmssZ`.
    pub fn not_before(&self) -> String {
        self.info.not_before.haproxy()
    }

    /// `..._sha1`: SHA-1 of the DER certificate (its usual fingerprint), binary.
    pub fn sha1(&self) -> [u8; 20] {
        sha1_smol::Sha1::from(self.der).digest().bytes()
    }
}

/// The client certificate and its verify result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub info: CertInfo,
    /// The certificate as the client sent it (`ssl_c_der`, `ssl_c_sha1`): copied once per
    /// handshake that presents one.
    pub der: Vec<u8>,
    /// OpenSSL's X509_V code (`ssl_c_verify`): 0, or the error that an ignore list let through.
    pub verify: u32,
    /// `ssl_c_err`, `ssl_c_ca_err`, `ssl_c_ca_err_depth` (0: no such error).
    pub crt_err: u32,
    pub ca_err: u32,
    pub ca_err_depth: u32,
    /// The certificates the client sent after its own, concatenated (`ssl_c_chain_der`); empty
    /// when it sent none. Copied once per handshake that presents a chain.
    pub chain_der: Vec<u8>,
}

/// `ssl_c_s_dn` / `ssl_c_i_dn` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnFormat {
    /// HAProxy's default `/C=FR/CN=name`.
    Oneline,
    Rfc2253,
}

fn dn_fetch(dn: &Dn, field: Option<&str>, occ: i32, format: DnFormat) -> String {
    match field.filter(|f| !f.is_empty()) {
        Some(f) => dn.field(f, occ).unwrap_or_default().to_string(),
        None if format == DnFormat::Rfc2253 => dn.rfc2253(),
        None => dn.oneline(),
    }
}

impl TlsFacts {
    /// `ssl_fc`: the connection is TLS.
    pub fn ssl_fc(&self) -> bool {
        true
    }

    /// `ssl_c_used`.
    pub fn ssl_c_used(&self) -> bool {
        self.client_cert.is_some()
    }

    /// `ssl_c_verify`: 0 without a certificate or when it verified.
    pub fn ssl_c_verify(&self) -> u32 {
        self.client_cert.as_ref().map_or(0, |c| c.verify)
    }

    /// The certificate `side` names, if there is one.
    pub fn cert(&self, side: CertSide) -> Option<CertRef<'_>> {
        match side {
            CertSide::Client => self.client_cert.as_ref().map(|c| CertRef {
                info: &c.info,
                der: &c.der,
            }),
            CertSide::Frontend => self.frontend_cert.as_ref().and_then(|c| {
                Some(CertRef {
                    info: &c.info,
                    der: c.key.cert.first()?.as_ref(),
                })
            }),
        }
    }

    /// `ssl_c_s_dn([field[,occ[,format]]])`; `None` without a client certificate.
    pub fn ssl_c_s_dn(&self, field: Option<&str>, occ: i32, format: DnFormat) -> Option<String> {
        self.cert(CertSide::Client)
            .map(|c| c.s_dn(field, occ, format))
    }

    /// `ssl_c_i_dn([field[,occ[,format]]])`.
    pub fn ssl_c_i_dn(&self, field: Option<&str>, occ: i32, format: DnFormat) -> Option<String> {
        self.cert(CertSide::Client)
            .map(|c| c.i_dn(field, occ, format))
    }

    /// `ssl_c_serial` (binary; `,hex` renders it).
    pub fn ssl_c_serial(&self) -> Option<&[u8]> {
        self.client_cert.as_ref().map(|c| c.info.serial.as_slice())
    }

    /// `ssl_c_notafter`: `YYMMDDhhmmssZ`.
    pub fn ssl_c_notafter(&self) -> Option<String> {
        self.cert(CertSide::Client).map(|c| c.not_after())
    }

    /// `ssl_c_notbefore`: `YYMMDDhhmmssZ`.
    pub fn ssl_c_notbefore(&self) -> Option<String> {
        self.cert(CertSide::Client).map(|c| c.not_before())
    }
}

enum State {
    Accepting(Box<Acceptor>),
    Open {
        conn: Box<ServerConnection>,
        policy: usize,
        /// The certificate the SNI index chose (what the policy's resolver serves).
        served: Option<Arc<LoadedCert>>,
    },
    /// The hello was refused: only the alert is left to send.
    Failed,
}

/// A server-side TLS session of one accepted connection.
pub struct TlsSession {
    shard: Arc<ShardTls>,
    state: State,
    /// Alert bytes produced before a connection existed.
    alert: Vec<u8>,
    facts: Option<TlsFacts>,
    /// The ClientHello's lists, when `tune.ssl.capture-buffer-size` asks for them.
    hello: Option<Arc<HelloCapture>>,
    peer_closed: bool,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.is_handshaking())
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    pub fn new(shard: Arc<ShardTls>) -> TlsSession {
        TlsSession {
            shard,
            state: State::Accepting(Box::default()),
            alert: Vec::new(),
            facts: None,
            hello: None,
            peer_closed: false,
        }
    }

    /// Feeds received ciphertext; returns how many bytes were consumed: all of them, unless
    /// rustls's plaintext buffer is full (take plaintext, then feed the rest; `Ok(0)` is
    /// backpressure, never an error) or the peer sent close_notify (bytes after it are dropped).
    pub fn feed(&mut self, ct: &[u8]) -> Result<usize, TlsError> {
        let mut used = 0;
        if let State::Accepting(acc) = &mut self.state {
            let mut rd = ct;
            while !rd.is_empty() {
                if acc.read_tls(&mut rd).map_err(TlsError::Buffer)? == 0 {
                    break;
                }
                match acc.accept() {
                    Ok(None) => continue,
                    Ok(Some(accepted)) => {
                        used = ct.len() - rd.len();
                        self.start(accepted)?;
                        break;
                    }
                    Err((e, mut alert)) => {
                        let _ = alert.write(&mut self.alert);
                        self.state = State::Failed;
                        return Err(TlsError::Tls(e));
                    }
                }
            }
            if matches!(self.state, State::Accepting(_)) {
                return Ok(ct.len() - rd.len());
            }
        }
        let rest = ct.get(used..).unwrap_or_default();
        match &mut self.state {
            State::Open { conn, .. } => {
                if used > 0 {
                    // Records that came with the ClientHello are buffered; process them now.
                    let st = conn.process_new_packets().map_err(TlsError::Tls)?;
                    self.peer_closed |= st.peer_has_closed();
                }
                let (n, closed) = pipe::feed(conn, rest)?;
                self.peer_closed |= closed;
                if self.facts.is_none() && !conn.is_handshaking() {
                    self.facts = Some(self.collect_facts());
                }
                Ok(used + n)
            }
            State::Failed => Err(TlsError::Failed),
            State::Accepting(_) => Ok(used),
        }
    }

    /// ClientHello read: SNI picks the policy, then the handshake proper starts.
    fn start(&mut self, accepted: rustls::server::Accepted) -> Result<(), TlsError> {
        let hello = accepted.client_hello();
        if self.shard.capture > 0 {
            let be = |v: u16| v.to_be_bytes();
            self.hello = Some(Arc::new(HelloCapture {
                ciphers: hello
                    .cipher_suites()
                    .iter()
                    .flat_map(|c| be(u16::from(*c)))
                    .collect(),
                groups: hello
                    .named_groups()
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|g| be(u16::from(*g)))
                    .collect(),
                capture: self.shard.capture,
            }));
        }
        let entry = self.shard.index.lookup(
            hello.server_name(),
            hello.signature_schemes(),
            hello.cipher_suites(),
        );
        let served = entry.map(|e| e.cert.clone());
        let Some(policy) = entry.map(|e| e.config) else {
            // strict-sni and no match: refuse with an alert from the default policy.
            self.state = State::Failed;
            let cfg = self.shard.policies.first().map(|p| p.config.clone());
            if let Some(cfg) = cfg {
                if let Err((_, mut alert)) = accepted.into_connection(cfg) {
                    let _ = alert.write(&mut self.alert);
                }
            }
            return Err(TlsError::NoCertificate);
        };
        let Some(cfg) = self
            .shard
            .policies
            .get(policy)
            .map(|p| p.config_for(hello.alpn()))
        else {
            self.state = State::Failed;
            return Err(TlsError::NoCertificate);
        };
        match accepted.into_connection(cfg) {
            Ok(conn) => {
                self.state = State::Open {
                    conn: Box::new(conn),
                    policy,
                    served,
                };
                Ok(())
            }
            Err((e, mut alert)) => {
                let _ = alert.write(&mut self.alert);
                self.state = State::Failed;
                Err(TlsError::Tls(e))
            }
        }
    }

    fn collect_facts(&self) -> TlsFacts {
        let State::Open {
            conn,
            policy,
            served,
        } = &self.state
        else {
            return TlsFacts {
                sni: None,
                protocol: "unknown",
                cipher: "(unknown)",
                alpn: None,
                session_reused: false,
                client_cert: None,
                frontend_cert: None,
                hello: None,
            };
        };
        let client_cert = conn.peer_certificates().and_then(|chain| {
            let leaf = chain.first()?;
            let info = CertInfo::parse(leaf).ok()?;
            let verifier = self
                .shard
                .policies
                .get(*policy)
                .and_then(|p| p.verifier.as_ref());
            let result = match verifier {
                Some(v) if v.ignores_anything() => {
                    v.verify_result(chain, crate::bind::now(self.shard.clock.as_ref()))
                }
                _ => crate::verify::VerifyResult::default(),
            };
            Some(ClientCert {
                info,
                der: leaf.to_vec(),
                verify: result.verify,
                crt_err: result.crt_err,
                ca_err: result.ca_err,
                ca_err_depth: result.ca_err_depth,
                chain_der: chain
                    .iter()
                    .skip(1)
                    .flat_map(|c| c.iter().copied())
                    .collect(),
            })
        });
        TlsFacts {
            sni: conn.server_name().map(str::to_string),
            protocol: conn.protocol_version().map_or("unknown", protocol_name),
            cipher: conn
                .negotiated_cipher_suite()
                .map_or("(unknown)", openssl_cipher_name),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            session_reused: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            client_cert,
            frontend_cert: served.clone(),
            hello: self.hello.clone(),
        }
    }

    /// Appends decrypted application data to `out`; returns how much.
    pub fn take_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        match &mut self.state {
            State::Open { conn, .. } => pipe::take_plaintext(conn, out),
            _ => Ok(0),
        }
    }

    /// Queues application data to encrypt (buffered until the handshake ends); returns how
    /// much was accepted.
    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        match &mut self.state {
            State::Open { conn, .. } => pipe::write_plaintext(conn, data),
            _ => 0,
        }
    }

    /// Appends the ciphertext to send (handshake, records, alerts) to `out`; returns how much.
    pub fn take_ciphertext(&mut self, out: &mut Vec<u8>) -> usize {
        let mut n = self.alert.len();
        out.append(&mut self.alert);
        if let State::Open { conn, .. } = &mut self.state {
            n += pipe::take_ciphertext(conn, out);
        }
        n
    }

    /// Whether there is ciphertext to take.
    pub fn wants_write(&self) -> bool {
        !self.alert.is_empty()
            || matches!(&self.state, State::Open { conn, .. } if conn.wants_write())
    }

    pub fn is_handshaking(&self) -> bool {
        match &self.state {
            State::Accepting(_) => true,
            State::Open { conn, .. } => conn.is_handshaking(),
            State::Failed => false,
        }
    }

    /// Queues a close_notify alert (take the ciphertext, then shut the socket down).
    pub fn send_close_notify(&mut self) {
        if let State::Open { conn, .. } = &mut self.state {
            conn.send_close_notify();
        }
    }

    /// The peer sent close_notify: no more plaintext will come.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The connection facts, once the handshake has completed.
    pub fn facts(&self) -> Option<&TlsFacts> {
        self.facts.as_ref()
    }
}
