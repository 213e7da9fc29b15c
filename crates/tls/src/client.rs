//! TLS towards servers (`server ... ssl verify none|required ca-file F sni EXPR alpn L crt F`).
//!
//! HAProxy's rules kept: servers are verified by default (`verify required`) unless
//! `ssl-server-verify none`; `verify required` without `ca-file` is an error; the certificate
//! name is checked against `verifyhost` when set, else against the SNI sent, and only the
//! chain is checked when neither (the engine then passes the server's IP as the name);
//! `crl-file` lists revoked server certificates.

use std::cell::OnceCell;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, Error, SignatureScheme,
};

use ringlb_config::model::{ServerSsl, Verify};

use crate::bind::{load_roots, provider, TlsGlobals};
use crate::cert;
use crate::der::CertInfo;
use crate::diag::{Diags, TlsDiag};
use crate::policy;
use crate::session::{pipe, CertRef, TlsError};

/// Sessions remembered per shard for resumption towards servers.
const CLIENT_SESSIONS_PER_SHARD: usize = 256;

/// The TLS of one `server` line, built at startup.
#[derive(Debug)]
pub struct ServerTls {
    config: Arc<ClientConfig>,
    /// The `sni` sample expression as written; the engine evaluates it per connection.
    pub sni: Option<String>,
    pub warnings: Vec<TlsDiag>,
    /// TLS 1.2 tickets towards the server (off with `no-tls-tickets`).
    tickets: bool,
    /// Session resumption towards the server (off with `no-ssl-reuse`).
    reuse: bool,
}

impl ServerTls {
    /// A shard's copy, with its own resumption store.
    pub fn for_shard(&self) -> Arc<ClientConfig> {
        let mut c = (*self.config).clone();
        if !self.reuse {
            c.resumption = Resumption::disabled();
            return Arc::new(c);
        }
        let tickets = self.tickets;
        c.resumption = Resumption::in_memory_sessions(CLIENT_SESSIONS_PER_SHARD).tls12_resumption(
            if tickets {
                rustls::client::Tls12Resumption::SessionIdOrTickets
            } else {
                rustls::client::Tls12Resumption::SessionIdOnly
            },
        );
        Arc::new(c)
    }
}

/// The name a client session sends (SNI) and verifies: the evaluated `sni` when there is one,
/// else the server's address (no SNI is sent for an address; only the chain is verified).
pub fn server_name(sni: Option<&str>, addr: IpAddr) -> ServerName<'static> {
    sni.and_then(|s| ServerName::try_from(s.to_string()).ok())
        .unwrap_or(ServerName::IpAddress(addr.into()))
}

/// Builds the TLS of a `server` line. `now_unix` decides expiry warnings on the client cert.
pub fn build_server(
    ssl: &ServerSsl,
    globals: &TlsGlobals,
    now_unix: i64,
) -> Result<ServerTls, Vec<TlsDiag>> {
    let provider = provider();
    let mut diags = Diags::default();
    let options = policy::merge_options(&globals.defaults.server_options, &ssl.options);
    let mut prov = (*provider).clone();
    let mut suites = Vec::new();
    let ciphersuites = ssl
        .ciphersuites
        .as_ref()
        .or(globals.defaults.server_ciphersuites.as_ref());
    match ciphersuites.map(|s| policy::parse_ciphersuites(s)) {
        Some(Ok(s)) => suites.extend(s),
        Some(Err(e)) => diags.push(TlsDiag::alert(None, e)),
        None => suites.extend(policy::TLS13_SUITES.iter().map(|(_, s)| *s)),
    }
    match ssl
        .ciphers
        .as_ref()
        .or(globals.defaults.server_ciphers.as_ref())
        .map(|s| policy::parse_ciphers(s))
    {
        Some(Ok(s)) => suites.extend(s),
        Some(Err(e)) => diags.push(TlsDiag::alert(None, e)),
        None => suites.extend(policy::TLS12_CIPHERS.iter().map(|c| c.suite)),
    }
    prov.cipher_suites = suites;
    if let Some(c) = &globals.server_curves {
        match policy::parse_curves(c) {
            Ok(groups) => prov.kx_groups = groups,
            Err(e) => diags.push(TlsDiag::alert(
                None,
                format!("ssl-default-server-curves: {e}"),
            )),
        }
    }
    let prov = Arc::new(prov);
    let versions = match policy::versions(&options) {
        Ok(v) => v,
        Err(e) => {
            diags.push(TlsDiag::alert(None, e));
            Vec::new()
        }
    };
    let verify = ssl.verify.unwrap_or(if globals.server_verify_none {
        Verify::None
    } else {
        Verify::Required
    });
    let verifier: Option<Arc<dyn ServerCertVerifier>> = match (verify, &ssl.ca_file) {
        (Verify::None, _) => Some(Arc::new(NoVerify(prov.clone()))),
        (_, None) => {
            diags.push(TlsDiag::alert(
                None,
                "verify is enabled by default but no CA file specified. If you're running on a LAN where you're \
                 certain to trust the server's certificate, please set an explicit 'verify none' statement on the \
                 'server' line, or use 'ssl-server-verify none' in the global section to disable server-side \
                 verifications by default.",
            ));
            None
        }
        (_, Some(ca)) => {
            let ca = cert::with_base(globals.ca_base.as_deref(), ca);
            match load_roots(&ca) {
                Ok(roots) => {
                    let mut builder =
                        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), prov.clone());
                    if let Some(crl) = &ssl.crl_file {
                        let crl = cert::with_base(globals.ca_base.as_deref(), crl);
                        match crate::bind::load_crls(&crl) {
                            Ok(crls) => builder = builder.with_crls(crls),
                            Err(d) => diags.push(d),
                        }
                    }
                    let host = match ssl
                        .verifyhost
                        .as_deref()
                        .map(|h| ServerName::try_from(h.to_string()))
                    {
                        Some(Ok(h)) => Some(h),
                        Some(Err(e)) => {
                            diags.push(TlsDiag::alert(
                                None,
                                format!("'verifyhost' : invalid name: {e}"),
                            ));
                            None
                        }
                        None => None,
                    };
                    match builder.build() {
                        Ok(inner) => Some(Arc::new(ChainVerifier { inner, host })),
                        Err(e) => {
                            diags.push(TlsDiag::alert(
                                Some(&ca),
                                format!("unable to use this CA file: {e}"),
                            ));
                            None
                        }
                    }
                }
                Err(d) => {
                    diags.push(d);
                    None
                }
            }
        }
    };
    let client_cert = ssl.crt.as_ref().and_then(|crt| {
        let path = cert::with_base(globals.crt_base.as_deref(), crt);
        match cert::load_cert(
            &path,
            globals.key_base.as_deref(),
            &prov,
            now_unix,
            &mut diags.list,
        ) {
            Ok(mut c) => {
                // `issuers-chain-path` completes a client certificate as it does a bind's.
                if let Some(dir) = globals.issuers_chain_path.as_deref() {
                    match cert::IssuerChains::load(dir) {
                        Ok(i) => {
                            i.complete(&mut c);
                        }
                        Err(d) => diags.push(d),
                    }
                }
                Some(c.key)
            }
            Err(d) => {
                diags.push(d);
                None
            }
        }
    });
    // `ssl-default-server-sigalgs`: only these are offered, and a server signing with
    // another is refused (as OpenSSL's `SSL_CTX_set1_sigalgs_list` on a client).
    let verifier = match globals.server_sigalgs.as_deref() {
        None => verifier,
        Some(list) => match crate::sigalgs::parse_sigalgs("ssl-default-server-sigalgs", list) {
            Ok(allowed) => verifier.map(|inner| {
                Arc::new(RestrictedSigalgs { inner, allowed }) as Arc<dyn ServerCertVerifier>
            }),
            Err(e) => {
                diags.push(TlsDiag::alert(None, e));
                None
            }
        },
    };
    let (Some(verifier), false) = (verifier, diags.has_alert()) else {
        return Err(diags.list);
    };
    let builder = match ClientConfig::builder_with_provider(prov).with_protocol_versions(&versions)
    {
        Ok(b) => b,
        Err(e) => {
            return Err(vec![TlsDiag::alert(
                None,
                format!("inconsistent TLS policy: {e}"),
            )])
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_cert {
        Some(key) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(key))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = ssl
        .alpn
        .iter()
        .filter(|a| !a.is_empty())
        .map(|a| a.as_bytes().to_vec())
        .collect();
    config.max_fragment_size = globals.max_fragment_size();
    if options.no_tls_tickets {
        config.resumption =
            Resumption::default().tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
    }
    Ok(ServerTls {
        config: Arc::new(config),
        sni: ssl.sni.clone(),
        warnings: diags.list,
        tickets: !options.no_tls_tickets,
        reuse: !ssl.no_ssl_reuse,
    })
}

#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _hints: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// webpki verification; the name is checked only when one was sent as SNI.
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// `verifyhost`: checked instead of the name the connection was made with.
    host: Option<ServerName<'static>>,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let name = self.host.as_ref().unwrap_or(server_name);
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if matches!(name, ServerName::IpAddress(_)) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A verifier that offers and accepts only the configured signature schemes.
#[derive(Debug)]
struct RestrictedSigalgs {
    inner: Arc<dyn ServerCertVerifier>,
    allowed: Vec<SignatureScheme>,
}

impl RestrictedSigalgs {
    fn check(&self, scheme: SignatureScheme) -> Result<(), Error> {
        if self.allowed.contains(&scheme) {
            Ok(())
        } else {
            Err(Error::PeerIncompatible(
                rustls::PeerIncompatible::NoSignatureSchemesInCommon,
            ))
        }
    }
}

impl ServerCertVerifier for RestrictedSigalgs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.check(d.scheme)?;
        self.inner.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.check(d.scheme)?;
        self.inner.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut v = self.inner.supported_verify_schemes();
        v.retain(|s| self.allowed.contains(s));
        v
    }
}

/// `verify none`: any certificate is accepted, but the handshake signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client-side TLS session towards a server; same sans-IO calls as [`crate::TlsSession`].
pub struct TlsClientSession {
    conn: ClientConnection,
    peer_closed: bool,
}

impl fmt::Debug for TlsClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientSession")
            .field("handshaking", &self.conn.is_handshaking())
            .finish_non_exhaustive()
    }
}

impl TlsClientSession {
    pub fn new(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<TlsClientSession, TlsError> {
        let conn = ClientConnection::new(config, name).map_err(TlsError::Tls)?;
        Ok(TlsClientSession {
            conn,
            peer_closed: false,
        })
    }

    pub fn feed(&mut self, ct: &[u8]) -> Result<usize, TlsError> {
        let (n, closed) = pipe::feed(&mut self.conn, ct)?;
        self.peer_closed |= closed;
        Ok(n)
    }

    pub fn take_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        pipe::take_plaintext(&mut self.conn, out)
    }

    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        pipe::write_plaintext(&mut self.conn, data)
    }

    pub fn take_ciphertext(&mut self, out: &mut Vec<u8>) -> usize {
        pipe::take_ciphertext(&mut self.conn, out)
    }

    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// ALPN the server chose (`ssl_bc_alpn`).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Whether the session was resumed (`ssl_bc_is_resumed`).
    pub fn session_reused(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub fn protocol(&self) -> &'static str {
        self.conn
            .protocol_version()
            .map_or("unknown", policy::protocol_name)
    }

    /// What the `ssl_bc_*` and `ssl_s_*` fetches read, once the handshake is done. Copies
    /// the server's certificate: the engine asks only where rules may read it.
    pub fn facts(&self) -> ServerTlsFacts {
        ServerTlsFacts {
            protocol: self.protocol(),
            cipher: self
                .conn
                .negotiated_cipher_suite()
                .map_or("(unknown)", policy::openssl_cipher_name),
            alpn: self.alpn().map(<[u8]>::to_vec),
            resumed: self.session_reused(),
            chain: self
                .conn
                .peer_certificates()
                .map(|c| c.iter().map(|d| d.to_vec()).collect())
                .unwrap_or_default(),
            info: OnceCell::new(),
        }
    }
}

/// The facts of a TLS connection to a server (`ssl_bc_*`, `ssl_s_*`), for rules and logs.
/// A resumed session reports the certificate the server sent when the session was made, as
/// OpenSSL does (rustls keeps it with the session).
#[derive(Debug, Clone)]
pub struct ServerTlsFacts {
    /// `TLSv1.3`, `TLSv1.2` (`ssl_bc_protocol`).
    pub protocol: &'static str,
    /// OpenSSL's name (`ssl_bc_cipher`).
    pub cipher: &'static str,
    /// The protocol the server chose (`ssl_bc_alpn`).
    pub alpn: Option<Vec<u8>>,
    /// `ssl_bc_is_resumed`.
    pub resumed: bool,
    /// The server's certificates as sent, leaf first (`ssl_s_der`, `ssl_s_chain_der`).
    chain: Vec<Vec<u8>>,
    /// The leaf parsed on first use: most connections are never asked.
    info: OnceCell<Option<CertInfo>>,
}

impl ServerTlsFacts {
    /// The server's certificate (`ssl_s_*`), if it sent one that parses.
    pub fn cert(&self) -> Option<CertRef<'_>> {
        let der = self.chain.first()?;
        let info = self
            .info
            .get_or_init(|| CertInfo::parse(der).ok())
            .as_ref()?;
        Some(CertRef { info, der })
    }

    /// The certificates the server sent, leaf included, concatenated (`ssl_s_chain_der`:
    /// OpenSSL's client-side peer chain holds the leaf). Empty on a resumed session, as
    /// haproxy 2.6 gives it (OpenSSL keeps no chain with the session).
    pub fn chain_der(&self) -> Vec<u8> {
        if self.resumed {
            return Vec::new();
        }
        self.chain.iter().flatten().copied().collect()
    }
}
