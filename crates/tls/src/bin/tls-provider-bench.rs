//! Compares rustls crypto providers (ring, aws-lc-rs) on this machine, for ADR 0004:
//! full TLS 1.3 handshakes with an ECDSA P-256 certificate (no resumption) done in memory, and
//! bulk AES-GCM / ChaCha20 record throughput.
//!
//! `cargo run --release -p ringlb-tls --features bench-aws-lc --bin tls-provider-bench [secs]`
//! Needs the `openssl` CLI to make the test certificate.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};

type R<T> = Result<T, Box<dyn std::error::Error>>;
type MakeProvider = fn() -> CryptoProvider;

fn main() -> R<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = std::env::temp_dir().join(format!("ringlb-tls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir, Duration::from_secs_f64(secs));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &Path, budget: Duration) -> R<()> {
    make_cert(dir)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("cert.pem"))?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem"))?;
    let providers: [(&str, MakeProvider); 2] = [
        ("ring", rustls::crypto::ring::default_provider),
        ("aws-lc-rs", rustls::crypto::aws_lc_rs::default_provider),
    ];
    // The machine is shared: providers alternate in short rounds and the best round counts,
    // which filters out interference from other processes.
    const ROUNDS: u32 = 10;
    let slice = budget / ROUNDS;
    let mut best_hs = [(0.0_f64, f64::MAX); 2];
    let mut configs_by = Vec::new();
    for (_, make) in providers {
        configs_by.push(configs(make(), &chain, &key, None)?);
    }
    for _ in 0..ROUNDS {
        for (i, (sc, cc)) in configs_by.iter().enumerate() {
            let (n, total, server) = handshakes(sc, cc, slice)?;
            let rate = n as f64 / total.as_secs_f64();
            let server_us = server.as_secs_f64() * 1e6 / n as f64;
            best_hs[i].0 = best_hs[i].0.max(rate);
            best_hs[i].1 = best_hs[i].1.min(server_us);
        }
    }
    println!("provider    handshakes/s (client+server, best of {ROUNDS})   server-side us/handshake (best)");
    for (i, (name, _)) in providers.iter().enumerate() {
        println!(
            "{name:<11} {:>10.0}                                {:>8.1}",
            best_hs[i].0, best_hs[i].1
        );
    }
    println!("provider    suite                          seal MB/s   open MB/s   (16 KiB records, best of {ROUNDS})");
    let suites = rustls::crypto::ring::default_provider().cipher_suites;
    for suite in suites.iter().filter(|s| s.tls13().is_some()) {
        let mut best = [(0.0_f64, 0.0_f64); 2];
        let mut cfgs = Vec::new();
        for (_, make) in providers {
            let mut p = make();
            let own = p
                .cipher_suites
                .iter()
                .find(|s| s.suite() == suite.suite())
                .copied()
                .ok_or("suite")?;
            p.cipher_suites = vec![own];
            cfgs.push(configs(p, &chain, &key, None)?);
        }
        for _ in 0..ROUNDS {
            for (i, (sc, cc)) in cfgs.iter().enumerate() {
                let (seal, open) = bulk(sc, cc, slice)?;
                best[i].0 = best[i].0.max(seal);
                best[i].1 = best[i].1.max(open);
            }
        }
        for (i, (name, _)) in providers.iter().enumerate() {
            println!(
                "{name:<11} {:<30} {:>9.0}   {:>9.0}",
                format!("{:?}", suite.suite()),
                best[i].0,
                best[i].1
            );
        }
    }
    Ok(())
}

fn make_cert(dir: &Path) -> R<()> {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=bench.test",
            "-addext",
            "subjectAltName=DNS:bench.test",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err("openssl req failed".into());
    }
    Ok(())
}

fn configs(
    mut provider: CryptoProvider,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    suite: Option<rustls::SupportedCipherSuite>,
) -> R<(Arc<ServerConfig>, Arc<ClientConfig>)> {
    if let Some(s) = suite {
        provider.cipher_suites = vec![s];
    }
    let provider = Arc::new(provider);
    let mut sc = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain.to_vec(), key.clone_key())?;
    sc.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    sc.send_tls13_tickets = 0;
    let mut roots = RootCertStore::empty();
    roots.add(chain[0].clone())?;
    let mut cc = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cc.resumption = rustls::client::Resumption::disabled();
    Ok((Arc::new(sc), Arc::new(cc)))
}

/// Moves every pending TLS byte from `from` to `to`; returns the time spent in `to` when `time_to`.
fn pump(from: &mut Connection, to: &mut Connection, buf: &mut Vec<u8>) -> R<Duration> {
    buf.clear();
    while from.wants_write() {
        from.write_tls(buf)?;
    }
    let t = Instant::now();
    let mut rd: &[u8] = buf;
    while !rd.is_empty() {
        to.read_tls(&mut rd)?;
        to.process_new_packets()?;
    }
    Ok(t.elapsed())
}

fn handshakes(
    sc: &Arc<ServerConfig>,
    cc: &Arc<ClientConfig>,
    budget: Duration,
) -> R<(u64, Duration, Duration)> {
    let name = ServerName::try_from("bench.test")?;
    let start = Instant::now();
    let mut n = 0;
    let mut server_time = Duration::ZERO;
    let mut buf = Vec::with_capacity(8192);
    while start.elapsed() < budget {
        let mut c = Connection::Client(ClientConnection::new(cc.clone(), name.clone())?);
        let t = Instant::now();
        let mut s = Connection::Server(ServerConnection::new(sc.clone())?);
        server_time += t.elapsed();
        while c.is_handshaking() || s.is_handshaking() {
            server_time += pump(&mut c, &mut s, &mut buf)?;
            let t = Instant::now();
            buf.clear();
            while s.wants_write() {
                s.write_tls(&mut buf)?;
            }
            server_time += t.elapsed();
            let mut rd: &[u8] = &buf;
            while !rd.is_empty() {
                c.read_tls(&mut rd)?;
                c.process_new_packets()?;
            }
        }
        n += 1;
    }
    Ok((n, start.elapsed(), server_time))
}

/// Returns (seal MB/s on the server, open MB/s on the client).
fn bulk(sc: &Arc<ServerConfig>, cc: &Arc<ClientConfig>, budget: Duration) -> R<(f64, f64)> {
    let name = ServerName::try_from("bench.test")?;
    let mut c = Connection::Client(ClientConnection::new(cc.clone(), name)?);
    let mut s = Connection::Server(ServerConnection::new(sc.clone())?);
    let mut buf = Vec::with_capacity(1 << 20);
    while c.is_handshaking() || s.is_handshaking() {
        pump(&mut c, &mut s, &mut buf)?;
        pump(&mut s, &mut c, &mut buf)?;
    }
    let chunk = vec![0x5a_u8; 16 * 1024];
    let mut plain = vec![0_u8; 64 * 1024];
    let (mut seal, mut open, mut bytes) = (Duration::ZERO, Duration::ZERO, 0_u64);
    let start = Instant::now();
    while start.elapsed() < budget {
        buf.clear();
        let t = Instant::now();
        for _ in 0..16 {
            s.writer().write_all(&chunk)?;
            while s.wants_write() {
                s.write_tls(&mut buf)?;
            }
        }
        seal += t.elapsed();
        let t = Instant::now();
        let mut rd: &[u8] = &buf;
        while !rd.is_empty() {
            c.read_tls(&mut rd)?;
            c.process_new_packets()?;
            loop {
                match c.reader().read(&mut plain) {
                    Ok(0) => break,
                    Ok(k) => bytes += k as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        open += t.elapsed();
    }
    let mb = bytes as f64 / 1e6;
    Ok((mb / seal.as_secs_f64(), mb / open.as_secs_f64()))
}
