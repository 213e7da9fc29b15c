//! Test PKI made with the `openssl` CLI, HAProxy configs loaded through ringlb-config, and an
//! in-memory handshake driver between a rustls client and a `TlsSession`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ringlb_config::model::{Bind, Config};
use ringlb_tls::{TlsError, TlsSession};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ringlb-tls-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn openssl(args: &[&str], cwd: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn openssl_out(args: &[&str], cwd: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A CA and certificates signed by it, in `dir`:
/// `ca.pem`; `<name>.crt` + `<name>.key` for each leaf made with [`Pki::leaf`].
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = TempDir::new(tag);
        openssl(
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ca.key",
            ],
            &dir.0,
        );
        openssl(
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-days",
                "30",
                "-subj",
                &format!("/C=FR/O=Test CA/CN=Root {tag}"),
                "-out",
                "ca.pem",
            ],
            &dir.0,
        );
        Pki { dir }
    }

    /// Makes `<name>.crt`/`<name>.key` with `subj`, DNS SANs `sans` (none when empty), serial,
    /// `rsa` for an RSA-2048 key (else P-256), signed by the CA.
    pub fn leaf(
        &self,
        name: &str,
        subj: &str,
        sans: &[&str],
        serial: &str,
        rsa: bool,
        client: bool,
    ) {
        let d = &self.dir.0;
        let key = format!("{name}.key");
        if rsa {
            openssl(
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    &key,
                ],
                d,
            );
        } else {
            openssl(
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &key,
                ],
                d,
            );
        }
        let csr = format!("{name}.csr");
        openssl(
            &["req", "-new", "-key", &key, "-subj", subj, "-out", &csr],
            d,
        );
        let ext = format!("{name}.ext");
        let mut text = String::from("basicConstraints=CA:FALSE\n");
        if !sans.is_empty() {
            let list: Vec<String> = sans.iter().map(|s| format!("DNS:{s}")).collect();
            text.push_str(&format!("subjectAltName={}\n", list.join(",")));
        }
        text.push_str(if client {
            "extendedKeyUsage=clientAuth\n"
        } else {
            "extendedKeyUsage=serverAuth\n"
        });
        std::fs::write(d.join(&ext), text).unwrap();
        let crt = format!("{name}.crt");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "10",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
            d,
        );
    }

    /// Writes `dest` as HAProxy's combined PEM: certificate, CA chain, key.
    pub fn combined(&self, name: &str, dest: &Path, with_key: bool) {
        let d = &self.dir.0;
        let mut pem = std::fs::read(d.join(format!("{name}.crt"))).unwrap();
        pem.extend(std::fs::read(d.join("ca.pem")).unwrap());
        if with_key {
            pem.extend(std::fs::read(d.join(format!("{name}.key"))).unwrap());
        }
        std::fs::write(dest, pem).unwrap();
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }
}

/// Loads a HAProxy config text and returns the config.
pub fn load_config(dir: &Path, text: &str) -> Config {
    let p = dir.join("haproxy.cfg");
    std::fs::write(&p, text).unwrap();
    match ringlb_config::load(&[p], &|_| None) {
        Ok(l) => l.config,
        Err(d) => panic!("config refused: {d}"),
    }
}

/// The first bind of the first frontend of `cfg` (a `frontend fe` with the given bind options).
pub fn bind_cfg(dir: &Path, global: &str, bind_opts: &str) -> (Bind, Config) {
    let text = format!(
        "global\n{global}\ndefaults\n  mode http\n  timeout client 5s\n  timeout server 5s\n  timeout connect 5s\n\
         frontend fe\n  bind 127.0.0.1:8443 {bind_opts}\n  default_backend be\nbackend be\n  server s1 127.0.0.1:8080\n"
    );
    let cfg = load_config(dir, &text);
    (cfg.frontends[0].binds[0].clone(), cfg)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn roots(ca: &Path) -> RootCertStore {
    let mut r = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        r.add(c.unwrap()).unwrap();
    }
    r
}

/// A rustls client trusting `ca`, with optional ALPN, versions, suites and client cert.
pub struct ClientOpts<'a> {
    pub ca: &'a Path,
    pub alpn: &'a [&'a str],
    pub versions: &'a [&'static rustls::SupportedProtocolVersion],
    pub suites: Option<Vec<rustls::SupportedCipherSuite>>,
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// Accept any server certificate (to see which one a failed name check was served).
    pub accept_any: bool,
}

impl<'a> ClientOpts<'a> {
    pub fn new(ca: &'a Path) -> Self {
        ClientOpts {
            ca,
            alpn: &[],
            versions: rustls::ALL_VERSIONS,
            suites: None,
            client_cert: None,
            accept_any: false,
        }
    }

    pub fn build(&self) -> Arc<ClientConfig> {
        let mut p = rustls::crypto::aws_lc_rs::default_provider();
        if let Some(s) = &self.suites {
            p.cipher_suites = s.clone();
        }
        let p = Arc::new(p);
        let b = ClientConfig::builder_with_provider(p.clone())
            .with_protocol_versions(self.versions)
            .unwrap();
        let b = if self.accept_any {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(p)))
        } else {
            b.with_root_certificates(roots(self.ca))
        };
        let mut c = match self.client_cert {
            Some((crt, key)) => {
                let chain: Vec<_> = CertificateDer::pem_file_iter(crt)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
                    .unwrap()
            }
            None => b.with_no_client_auth(),
        };
        c.alpn_protocols = self.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        Arc::new(c)
    }
}

/// Drives a handshake plus one request/response between `client` and `server` in memory.
/// Returns the server's error if it failed, or the client's as a string.
pub fn handshake(client: &mut ClientConnection, server: &mut TlsSession) -> Result<(), String> {
    let mut buf = Vec::new();
    for _ in 0..20 {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            let mut off = 0;
            while off < buf.len() {
                match server.feed(&buf[off..]) {
                    Ok(0) => break,
                    Ok(n) => off += n,
                    Err(e) => {
                        // Deliver the alert so the client sees the failure too.
                        let mut alert = Vec::new();
                        server.take_ciphertext(&mut alert);
                        let _ = client.read_tls(&mut alert.as_slice());
                        let _ = client.process_new_packets();
                        return Err(server_err(&e));
                    }
                }
            }
        }
        buf.clear();
        server.take_ciphertext(&mut buf);
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client
                .process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            return Ok(());
        }
    }
    Err("handshake did not finish".into())
}

fn server_err(e: &TlsError) -> String {
    format!("server: {e}")
}

pub fn connect(cc: &Arc<ClientConfig>, sni: &str) -> ClientConnection {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    ClientConnection::new(cc.clone(), name).unwrap()
}

/// The subject CN the client was served.
pub fn served_cn(client: &ClientConnection) -> String {
    let der = client.peer_certificates().unwrap()[0].clone();
    ringlb_tls::der::CertInfo::parse(&der)
        .unwrap()
        .subject
        .field("CN", 0)
        .unwrap()
        .to_string()
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
