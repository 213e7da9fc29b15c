//! `openssl s_client` against a tiny blocking loopback server built on `TlsSession`: SNI,
//! ALPN, protocol floors and mTLS with a real, independent TLS stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ringlb_tls::{build_bind, DnFormat, TlsGlobals, TlsSession, TlsShared};
use rustls::time_provider::DefaultTimeProvider;

/// Serves `conns` connections one by one: after the handshake, answers the first line with
/// the connection facts, then close_notify.
fn serve(
    listener: TcpListener,
    shard: Arc<ringlb_tls::ShardTls>,
    conns: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for _ in 0..conns {
            let Ok((sock, _)) = listener.accept() else {
                return;
            };
            let _ = one(sock, TlsSession::new(shard.clone()));
        }
    })
}

fn one(mut sock: TcpStream, mut s: TlsSession) -> std::io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; 16384];
    let mut plain = Vec::new();
    loop {
        let mut out = Vec::new();
        s.take_ciphertext(&mut out);
        sock.write_all(&out)?;
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if s.feed(&buf[..n]).is_err() {
            let mut alert = Vec::new();
            s.take_ciphertext(&mut alert);
            sock.write_all(&alert)?;
            return Ok(());
        }
        s.take_plaintext(&mut plain)
            .map_err(std::io::Error::other)?;
        if plain.contains(&b'\n') {
            let f = s.facts().unwrap();
            let line = format!(
                "facts {} {} {} alpn={} cn={}\n",
                f.sni.as_deref().unwrap_or("-"),
                f.protocol,
                f.cipher,
                f.alpn
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default(),
                f.ssl_c_s_dn(Some("CN"), 0, DnFormat::Oneline)
                    .unwrap_or_else(|| "-".into())
            );
            s.write_plaintext(line.as_bytes());
            s.send_close_notify();
            let mut out = Vec::new();
            s.take_ciphertext(&mut out);
            sock.write_all(&out)?;
            return Ok(());
        }
    }
}

/// Runs s_client with `args`, sends a line, returns (success, stdout+stderr). Bounded to 15 s.
fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("s_client did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (status.success() && out.contains("facts "), out)
}

fn start(p: &Pki, opts: &str, conns: usize) -> u16 {
    let (b, cfg) = bind_cfg(&p.dir.0, "", opts);
    let g = TlsGlobals::from_global(&cfg.global);
    let bt = build_bind(&b, &g, now_unix()).unwrap();
    let shared = TlsShared::new(&g, Arc::new(DefaultTimeProvider)).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    serve(l, bt.for_shard(&shared, 1), conns);
    port
}

#[test]
fn s_client_sni_alpn_floor_and_mtls() {
    let p = Pki::new("sclient");
    p.leaf("a", "/CN=a.test", &["a.test"], "1", false, false);
    p.leaf("b", "/CN=b.test", &["b.test"], "2", true, false);
    p.leaf(
        "client1",
        "/C=FR/O=Example/CN=client1",
        &[],
        "0x42",
        false,
        true,
    );
    p.combined("a", &p.file("a.pem"), true);
    p.combined("b", &p.file("b.pem"), true);
    let ca = p.file("ca.pem").display().to_string();
    let crt = format!(
        "ssl crt {} crt {}",
        p.file("a.pem").display(),
        p.file("b.pem").display()
    );

    let port = start(&p, &format!("{crt} alpn h2,http/1.1"), 2);
    let (ok, out) = s_client(
        port,
        &[
            "-servername",
            "b.test",
            "-CAfile",
            &ca,
            "-verify_return_error",
            "-alpn",
            "h2",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("facts b.test TLSv1.3 TLS_AES_256_GCM_SHA384 alpn=h2 cn=-"),
        "{out}"
    );
    assert!(
        out.contains("CN = b.test") || out.contains("CN=b.test"),
        "{out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let (ok, out) = s_client(
        port,
        &[
            "-CAfile",
            &ca,
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("facts - TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256 alpn= cn=-"),
        "{out}"
    );

    let port = start(&p, &format!("{crt} ssl-min-ver TLSv1.3"), 1);
    let (ok, out) = s_client(port, &["-servername", "a.test", "-tls1_2"]);
    assert!(!ok, "TLSv1.2 client refused: {out}");

    let port = start(&p, &format!("{crt} ca-file {ca} verify required"), 2);
    let (ok, out) = s_client(port, &["-servername", "a.test", "-CAfile", &ca]);
    assert!(!ok, "no client certificate: {out}");
    let (cc, ck) = (
        p.file("client1.crt").display().to_string(),
        p.file("client1.key").display().to_string(),
    );
    let (ok, out) = s_client(
        port,
        &[
            "-servername",
            "a.test",
            "-CAfile",
            &ca,
            "-cert",
            &cc,
            "-key",
            &ck,
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("cn=client1"), "{out}");
}
