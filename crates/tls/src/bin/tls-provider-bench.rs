//! Compares rustls crypto providers (ring, aws-lc-rs) on this machine, for ADR 0004:
//! full TLS 1.3 handshakes with an ECDSA P-256 certificate (no resumption) done in memory, and
//! bulk AES-GCM / ChaCha20 record throughput. Also measures ringlb's own `TlsSession` (SNI
//! lookup, policy choice, facts, session tickets as a `bind` issues them) over aws-lc-rs.
//!
//! `cargo run --release -p ringlb-tls --features bench-ring --bin tls-provider-bench [secs]`
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
    let mut best_hs = [(0.0_f64, f64::MAX); 3];
    let mut configs_by = Vec::new();
    for (_, make) in providers {
        configs_by.push(configs(make(), &chain, &key, None)?);
    }
    let shard = ringlb_shard(dir)?;
    for _ in 0..ROUNDS {
        for (i, (sc, cc)) in configs_by.iter().enumerate() {
            record(&mut best_hs[i], || handshakes(sc, cc, slice))?;
        }
        record(&mut best_hs[2], || {
            session_handshakes(&shard, &configs_by[1].1, slice)
        })?;
    }
    println!("provider    handshakes per CPU-second (client+server, best of {ROUNDS})   server CPU us/handshake (best)");
    let names = ["ring", "aws-lc-rs", "TlsSession"];
    for (i, name) in names.iter().enumerate() {
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

/// This thread's time on a CPU (Linux schedstat), so other processes on the shared machine
/// do not count; falls back to wall time where schedstat is missing.
fn cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    (ns > 0).then(|| Duration::from_nanos(ns))
}

/// Runs `f` and records the best handshakes per CPU-second and server CPU µs per handshake
/// (the server's wall time scaled by the round's CPU/wall ratio).
fn record(best: &mut (f64, f64), f: impl FnOnce() -> R<(u64, Duration, Duration)>) -> R<()> {
    let cpu0 = cpu_time();
    let (n, wall, server) = f()?;
    let cpu = match (cpu0, cpu_time()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => wall,
    };
    let busy = cpu.as_secs_f64() / wall.as_secs_f64();
    best.0 = best.0.max(n as f64 / cpu.as_secs_f64());
    best.1 = best
        .1
        .min(server.as_secs_f64() * busy.min(1.0) * 1e6 / n as f64);
    Ok(())
}

/// A shard's TLS for `bind ... ssl crt <cert+key>` with ringlb's defaults (tickets on).
fn ringlb_shard(dir: &Path) -> R<Arc<ringlb_tls::ShardTls>> {
    let mut pem = std::fs::read(dir.join("cert.pem"))?;
    pem.extend(std::fs::read(dir.join("key.pem"))?);
    std::fs::write(dir.join("site.pem"), pem)?;
    let cfg = format!(
        "defaults\n  mode http\n  timeout client 5s\n  timeout server 5s\n  timeout connect 5s\n\
         frontend fe\n  bind 127.0.0.1:8443 ssl crt {}\n",
        dir.join("site.pem").display()
    );
    std::fs::write(dir.join("bench.cfg"), cfg)?;
    let loaded =
        ringlb_config::load(&[dir.join("bench.cfg")], &|_| None).map_err(|d| d.to_string())?;
    let tls = ringlb_tls::build_config(&loaded.config, 0).map_err(|d| format!("{d:?}"))?;
    let bind = tls.bind(0, 0).ok_or("no TLS bind")?;
    let clock = Arc::new(rustls::time_provider::DefaultTimeProvider);
    let shared = ringlb_tls::TlsShared::new(&tls.globals, clock).map_err(|d| d.to_string())?;
    Ok(bind.for_shard(&shared, 1))
}

/// Full handshakes through `TlsSession`, timing the server side.
fn session_handshakes(
    shard: &Arc<ringlb_tls::ShardTls>,
    cc: &Arc<ClientConfig>,
    budget: Duration,
) -> R<(u64, Duration, Duration)> {
    let name = ServerName::try_from("bench.test")?;
    let start = Instant::now();
    let (mut n, mut server_time) = (0, Duration::ZERO);
    let mut buf = Vec::with_capacity(8192);
    while start.elapsed() < budget {
        let mut c = ClientConnection::new(cc.clone(), name.clone())?;
        let t = Instant::now();
        let mut s = ringlb_tls::TlsSession::new(shard.clone());
        server_time += t.elapsed();
        while c.is_handshaking() || s.is_handshaking() {
            buf.clear();
            while c.wants_write() {
                c.write_tls(&mut buf)?;
            }
            let t = Instant::now();
            s.feed(&buf)?;
            buf.clear();
            s.take_ciphertext(&mut buf);
            server_time += t.elapsed();
            let mut rd: &[u8] = &buf;
            while !rd.is_empty() {
                c.read_tls(&mut rd)?;
                c.process_new_packets()?;
            }
        }
        if s.facts().is_none() {
            return Err("handshake without facts".into());
        }
        n += 1;
    }
    Ok((n, start.elapsed(), server_time))
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
