//! TLS and HTTP/2 details end to end, each against the real `ringlb` binary: `alpn h2` towards
//! a TLS server (haproxy as the origin, which reports the version it was asked in),
//! `no-ssl-reuse` (haproxy reports `ssl_fc_is_resumed`), a retry when an h2 server's
//! GOAWAY says it did not process a request (a raw-frame h2 server written here),
//! `tune.ssl.maxrecord` (record sizes seen by `openssl s_client -trace`) and `maxsslconn`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringlb_testkit::h2raw::{
    frame, hpack, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, SETTINGS,
};
use ringlb_testkit::{
    curl, free_addr, run_bounded, wait_until, write_config, ChildGuard, Haproxy, Origins, Ringlb,
    TempDir,
};

const T: Duration = Duration::from_secs(10);
const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n";

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_bounded(Command::new("openssl").current_dir(dir).args(args), T).unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed PEM (certificate + key) for `name`.
fn make_pem(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "site.key",
            "-out",
            "site.crt",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
        ],
    );
    let mut pem = std::fs::read(dir.join("site.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("site.key")).unwrap());
    let path = dir.join("site.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

/// haproxy terminating TLS on `addr` (ALPN `h2,http/1.1`), answering every request itself
/// with the HTTP version it was asked in and whether the TLS session was resumed.
fn tls_origin(dir: &TempDir, addr: SocketAddr, pem: &Path) -> ChildGuard {
    let cfg = format!(
        "{DEFAULTS}frontend tls_origin\n    bind {addr} ssl crt {} alpn h2,http/1.1\n    http-request return status 200 content-type text/plain lf-string \"ver=%[req.ver] reused=%[ssl_fc_is_resumed]\"\n",
        pem.display()
    );
    let path = dir.join("origin.cfg");
    std::fs::write(&path, cfg).unwrap();
    Haproxy::start(&path, &[addr])
}

fn get(url: &str) -> String {
    let out = curl(&["-s", "-w", " %{http_code}", url], T).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn server_alpn_h2_over_tls_and_no_ssl_reuse() {
    let dir = TempDir::new("tls-srv-alpn");
    let pem = make_pem(dir.path(), "origin.example");
    let origin = free_addr();
    let _origin = tls_origin(&dir, origin, &pem);
    let front = free_addr();
    // Every request on a new server connection (`http-reuse never`), so each one handshakes.
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front}\n    use_backend h1 if {{ path_beg /h1 }}\n    use_backend fresh if {{ path_beg /fresh }}\n    default_backend h2\nbackend h2\n    http-reuse never\n    server s1 {origin} ssl verify none alpn h2,http/1.1\nbackend h1\n    http-reuse never\n    server s1 {origin} ssl verify none alpn http/1.1\nbackend fresh\n    http-reuse never\n    server s1 {origin} ssl verify none alpn http/1.1 no-ssl-reuse\n"
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    // ALPN chose h2: the request reached haproxy as HTTP/2.0; `alpn http/1.1` keeps 1.1.
    let first = get(&format!("http://{front}/"));
    assert!(first.starts_with("ver=2.0 "), "{first}");
    assert!(first.ends_with(" 200"), "{first}");
    assert!(get(&format!("http://{front}/h1")).starts_with("ver=1.1 "));
    // Later connections resume the TLS session (tickets), unless `no-ssl-reuse`.
    let resumed: Vec<String> = (0..3).map(|_| get(&format!("http://{front}/h1"))).collect();
    assert!(
        resumed.iter().any(|r| r.contains("reused=1")),
        "session reuse towards the server: {resumed:?}"
    );
    let fresh: Vec<String> = (0..4)
        .map(|_| get(&format!("http://{front}/fresh")))
        .collect();
    for r in &fresh {
        assert!(
            r.starts_with("ver=1.1 reused=0 "),
            "no-ssl-reuse: {fresh:?}"
        );
    }
}

// ---- an h2 server that refuses a request with GOAWAY ----

/// Reads one frame: (type, flags, stream, payload); `None` at close.
fn read_frame(s: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).ok()?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some((head[3], head[4], stream, payload))
}

/// One h2c connection: answers requests with `answer <n>` (n counts requests over all
/// connections), except the request numbered `refuse`, which gets GOAWAY naming the previous
/// stream as the last processed, and the connection is closed.
fn serve_h2(mut s: TcpStream, seen: &AtomicUsize, refuse: usize) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut preface = [0u8; 24];
    if s.read_exact(&mut preface).is_err() {
        return;
    }
    let _ = s.write_all(&frame(SETTINGS, 0, 0, &[]));
    let mut last = 0u32;
    while let Some((kind, flags, stream, _)) = read_frame(&mut s) {
        match kind {
            SETTINGS if flags & 1 == 0 => {
                let _ = s.write_all(&frame(SETTINGS, 1, 0, &[]));
            }
            HEADERS => {
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                if n == refuse {
                    let mut goaway = last.to_be_bytes().to_vec();
                    goaway.extend_from_slice(&0u32.to_be_bytes()); // NO_ERROR
                    let _ = s.write_all(&frame(GOAWAY, 0, 0, &goaway));
                    let _ = s.shutdown(std::net::Shutdown::Both);
                    return;
                }
                let body = format!("answer {n}");
                let len = body.len().to_string();
                let block = hpack(&[(":status", "200"), ("content-length", &len)]);
                let _ = s.write_all(&frame(HEADERS, END_HEADERS, stream, &block));
                let _ = s.write_all(&frame(DATA, END_STREAM, stream, body.as_bytes()));
                last = stream;
            }
            _ => {}
        }
    }
}

#[test]
fn a_request_an_h2_server_refused_with_goaway_is_retried_on_a_new_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    {
        let (seen, conns) = (seen.clone(), conns.clone());
        std::thread::spawn(move || {
            for s in listener.incoming().take(8) {
                let Ok(s) = s else { break };
                conns.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                std::thread::spawn(move || serve_h2(s, &seen, 2));
            }
        });
    }
    let dir = TempDir::new("tls-srv-goaway");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    retries 0\n    server s1 {server} proto h2\n"
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    assert_eq!(get(&format!("http://{front}/")), "answer 1 200");
    // The second request gets GOAWAY(last stream = the first): not processed, so it goes
    // again on a new connection (even with `retries 0`: nothing reached the server).
    assert_eq!(get(&format!("http://{front}/")), "answer 3 200");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    // And later requests use the new connection.
    assert_eq!(get(&format!("http://{front}/")), "answer 4 200");
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

// ---- record size and connection limits on a TLS bind ----

/// Lengths of the TLS records `openssl s_client -trace` received while fetching `path`.
fn record_lengths(front: SocketAddr, path: &str) -> Vec<usize> {
    let dir = TempDir::new("tls-records");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let input = dir.join("req.txt");
    std::fs::write(&input, req).unwrap();
    let out = run_bounded(
        Command::new("sh").arg("-c").arg(format!(
            "openssl s_client -connect {front} -ign_eof -trace < {}",
            input.display()
        )),
        T,
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lens = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.starts_with("Received Record") {
            // Header: / Version / Content Type / Length = N
            if let Some(n) = lines
                .by_ref()
                .take(4)
                .find_map(|l| l.trim().strip_prefix("Length = "))
            {
                lens.push(n.parse().unwrap());
            }
        }
    }
    lens
}

#[test]
fn tune_ssl_maxrecord_bounds_every_record() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-maxrecord");
    let pem = make_pem(dir.path(), "site.example");
    let (small, large) = (free_addr(), free_addr());
    let cfg = |front: SocketAddr, global: &str| {
        format!(
            "global\n{global}{DEFAULTS}frontend fe\n    bind {front} ssl crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
            pem.display(),
            origins.addrs()[0]
        )
    };
    let p1 = dir.join("small.cfg");
    std::fs::write(&p1, cfg(small, "    tune.ssl.maxrecord 1000\n")).unwrap();
    let p2 = dir.join("large.cfg");
    std::fs::write(&p2, cfg(large, "")).unwrap();
    let _a = Ringlb::start(&p1, &[small]);
    let _b = Ringlb::start(&p2, &[large]);
    // TLS 1.3 adds a content-type byte and a 16-byte tag to each record's plaintext.
    let lens = record_lengths(small, "/size/40000");
    let total: usize = lens.iter().sum();
    assert!(total > 40_000, "the body came: {lens:?}");
    assert!(lens.iter().all(|&n| n <= 1000 + 17), "{lens:?}");
    let lens = record_lengths(large, "/size/40000");
    assert!(
        lens.iter().any(|&n| n > 16_000),
        "default 16 kB records: {lens:?}"
    );
}

#[test]
fn maxsslconn_holds_new_tls_connections_until_one_closes() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-maxsslconn");
    let pem = make_pem(dir.path(), "site.example");
    let (tls, plain) = (free_addr(), free_addr());
    let cfg = format!(
        "global\n    nbthread 1\n    maxsslconn 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 5s\nfrontend fe\n    bind {tls} ssl crt {}\n    bind {plain}\n    default_backend be\nbackend be\n    server s1 {}\n",
        pem.display(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[tls, plain]);
    // One TLS connection held open after its handshake.
    let mut holder = ChildGuard::spawn(
        "s_client",
        Command::new("openssl").args(["s_client", "-connect", &tls.to_string(), "-ign_eof"]),
    )
    .unwrap();
    assert!(
        wait_until(T, || holder.stdout().contains("Verify return code")),
        "handshake: {}",
        holder.dump()
    );
    // A second TLS client is not served while the first is open (haproxy 2.6 does the
    // same: it waits); plain HTTP is not limited.
    let url = format!("https://{tls}/");
    let out = curl(&["-sk", "-m", "2", "-w", "%{http_code}", &url], T).unwrap();
    assert_eq!(out.status.code(), Some(28), "timed out, not served");
    assert!(get(&format!("http://{plain}/")).ends_with(" 200"));
    holder.stop(T).unwrap();
    let served = wait_until(T, || {
        curl(
            &[
                "-sk",
                "-m",
                "2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
            T,
        )
        .is_ok_and(|o| o.stdout == b"200")
    });
    assert!(served, "served once the first connection closed");
}

// ---- issuers-chain-path (same as haproxy) and sigalgs ----

/// Root → intermediate → leaf `a.test` in `dir`: `root.pem`, `issuers/int.pem` (the
/// intermediate alone) and `site.pem` (leaf and key, no chain).
fn make_chain(dir: &Path) {
    let ec = |key: &str| {
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                key,
            ],
        )
    };
    ec("root.key");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-days",
            "2",
            "-subj",
            "/CN=Test Root",
            "-out",
            "root.pem",
        ],
    );
    ec("int.key");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "int.key",
            "-subj",
            "/CN=Test Intermediate",
            "-out",
            "int.csr",
        ],
    );
    std::fs::write(
        dir.join("int.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("issuers")).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "int.ext",
            "-out",
            "issuers/int.pem",
        ],
    );
    ec("leaf.key");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=a.test",
            "-out",
            "leaf.csr",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:a.test\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "issuers/int.pem",
            "-CAkey",
            "int.key",
            "-set_serial",
            "3",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
    );
    let mut pem = std::fs::read(dir.join("leaf.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("leaf.key")).unwrap());
    std::fs::write(dir.join("site.pem"), pem).unwrap();
}

/// `openssl s_client` to `front` for `a.test` with `extra` options: (certificates the server
/// sent, whether the handshake and verification against `root` succeeded).
fn s_client(front: SocketAddr, root: &Path, extra: &[&str]) -> (usize, bool) {
    let mut args = vec![
        "s_client".to_string(),
        "-connect".into(),
        front.to_string(),
        "-servername".into(),
        "a.test".into(),
        "-CAfile".into(),
        root.display().to_string(),
        "-verify_return_error".into(),
        "-showcerts".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = run_bounded(Command::new("openssl").args(&args), T).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let certs = text.matches("-----BEGIN CERTIFICATE-----").count();
    let ok = out.status.success() && text.contains("Verify return code: 0 (ok)");
    (certs, ok)
}

#[test]
fn issuers_chain_path_completes_the_chain_as_haproxy_does_and_sigalgs_bound_the_signature() {
    let dir = TempDir::new("tls-issuers");
    make_chain(dir.path());
    let (ours, theirs, bounded) = (free_addr(), free_addr(), free_addr());
    let common = |front: SocketAddr| {
        format!(
            "global\n    issuers-chain-path {}\n{DEFAULTS}frontend fe\n    bind {front} ssl crt {}\n    http-request return status 200 content-type text/plain string ok\n",
            dir.join("issuers").display(),
            dir.join("site.pem").display()
        )
    };
    // haproxy 2.6 has no `sigalgs`: that bind is ringlb's only.
    let cfg = format!(
        "{}    bind {bounded} ssl crt {} sigalgs ECDSA+SHA256\n",
        common(ours),
        dir.join("site.pem").display()
    );
    let p1 = dir.join("ringlb.cfg");
    std::fs::write(&p1, cfg).unwrap();
    let p2 = dir.join("haproxy.cfg");
    std::fs::write(&p2, common(theirs)).unwrap();
    let _r = Ringlb::start(&p1, &[ours, bounded]);
    let _h = Haproxy::start(&p2, &[theirs]);
    let root = dir.join("root.pem");
    let seen = s_client(ours, &root, &[]);
    assert_eq!(seen, s_client(theirs, &root, &[]), "same chain as haproxy");
    assert_eq!(
        seen,
        (2, true),
        "leaf + intermediate, verified against the root only"
    );
    // `sigalgs ECDSA+SHA256`: a client that only offers RSA-PSS gets no handshake.
    assert!(s_client(bounded, &root, &["-sigalgs", "ECDSA+SHA256"]).1);
    assert!(!s_client(bounded, &root, &["-sigalgs", "RSA-PSS+SHA256:ECDSA+SHA384"]).1);
}
