//! TLS termination end to end: the real `ringlb` binary with `bind ... ssl crt`, real clients
//! (curl, openssl s_client) and real origins on loopback. Certificates are made per test run
//! with the openssl command (a test CA, then site certificates signed by it).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, openssl, run_bounded, write_config, Origins, Ringlb, TempDir, TestCa,
};

const T: Duration = Duration::from_secs(10);

/// A CA and one PEM (certificate + key) per name, signed by it; returns (ca, pems). The CA
/// keeps each name's working files as `CN_<name>.{key,csr,ext,crt}` (see `renewed`).
fn make_certs(dir: &Path, names: &[&str]) -> (PathBuf, Vec<PathBuf>) {
    let ca = TestCa::new(dir, "ringlb test CA");
    let pems = names
        .iter()
        .map(|name| ca.server(name, &dir.join(format!("{name}.pem"))).pem)
        .collect();
    (ca.cert, pems)
}

fn https(front: SocketAddr, host: &str, path: &str, ca: &Path, extra: &[&str]) -> (String, String) {
    let resolve = format!("{host}:{}:127.0.0.1", front.port());
    let url = format!("https://{host}:{}{path}", front.port());
    let mut args = vec![
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{ssl_verify_result} %{size_download}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = curl(&args, T).unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn terminates_tls_with_sni_selection_keep_alive_and_large_bodies() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-tls");
    let (ca, pems) = make_certs(dir.path(), &["a.example", "b.example"]);
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 2\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front} ssl crt {} crt {} alpn http/1.1\n    default_backend be\nbackend be\n    server s1 {}\n",
        pems[0].display(),
        pems[1].display(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);

    // Each name gets its own certificate, verified against the test CA (verify result 0).
    for host in ["a.example", "b.example"] {
        let (out, err) = https(front, host, "/", &ca, &[]);
        assert_eq!(out, "200 0 14", "{host}: {err}");
    }
    // 1 MiB through TLS, and several requests on one kept-alive TLS connection.
    let (out, err) = https(front, "a.example", "/size/1048576", &ca, &[]);
    assert_eq!(out, "200 0 1048576", "{err}");
    let resolve = format!("a.example:{}:127.0.0.1", front.port());
    let url = format!("https://a.example:{}/", front.port());
    let out = curl(
        &[
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-v",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            &url,
            &url,
            &url,
        ],
        T,
    )
    .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("< HTTP/1.1 200").count(), 3, "{log}");
    assert!(
        log.contains("Re-using existing connection") || log.contains("Reusing existing"),
        "keep-alive over TLS: {log}"
    );
    // ALPN: the client asked for h2 and http/1.1; the bind offers only http/1.1.
    let (out, err) = https(front, "b.example", "/", &ca, &["--http2"]);
    assert_eq!(out, "200 0 14", "{err}");
}

#[test]
fn tls_protocol_floor_and_bad_clients() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-tls-floor");
    let (ca, pems) = make_certs(dir.path(), &["site.example"]);
    let front = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 3s\n    timeout server 5s\nfrontend fe\n    bind {front} ssl crt {} ssl-min-ver TLSv1.3\n    default_backend be\nbackend be\n    server s1 {}\n",
        pems[0].display(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    let (out, _) = https(front, "site.example", "/", &ca, &["--tlsv1.3"]);
    assert_eq!(out, "200 0 14");
    // A TLS 1.2-only client is refused by the handshake, not served.
    let (out, _) = https(front, "site.example", "/", &ca, &["--tls-max", "1.2"]);
    assert!(out.starts_with("000"), "{out}");
    // Plain HTTP on the TLS port: the connection is closed, the proxy keeps serving.
    let raw = ringlb_testkit::send_raw(front, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", T)
        .unwrap_or_default();
    assert!(!raw.starts_with(b"HTTP/1.1 200"));
    let (out, _) = https(front, "site.example", "/", &ca, &[]);
    assert_eq!(out, "200 0 14");
}

#[test]
fn check_mode_names_a_certificate_whose_key_does_not_match() {
    let dir = TempDir::new("engine-tls-check");
    let (_, pems) = make_certs(dir.path(), &["one.example", "two.example"]);
    // Certificate of one name, key of the other.
    let cert = std::fs::read_to_string(dir.path().join("CN_one.example.crt")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("CN_two.example.key")).unwrap();
    let bad = dir.path().join("mixed.pem");
    std::fs::write(&bad, format!("{cert}{key}")).unwrap();
    let cfg = |pem: &Path| {
        format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 3s\n    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:1 ssl crt {}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:2\n",
            pem.display()
        )
    };
    let check = |text: String| {
        let path = write_config(&dir, &text);
        run_bounded(
            Command::new(ringlb_testkit::bin_path("ringlb"))
                .args(["-c", "-f"])
                .arg(&path),
            T,
        )
        .unwrap()
    };
    let good = check(cfg(&pems[0]));
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let out = check(cfg(&bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mixed.pem") && err.contains("[ALERT]"),
        "{err}"
    );
}

/// `server ... ssl`: ringlb → TLS → ringlb (`bind ... ssl crt`) → origin; verification with the
/// test CA and the SNI of `sni str(...)`; a name the certificate does not carry fails the
/// handshake (503), `verify none` accepts it.
#[test]
fn tls_to_servers_verifies_the_certificate_and_sends_the_sni() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-tls-server");
    let (ca, pems) = make_certs(dir.path(), &["backend.example"]);
    let (inner, outer) = (free_addr(), free_addr());
    let inner_cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend tls_in\n    bind {inner} ssl crt {}\n    http-request set-header X-Seen-Sni %[ssl_fc_sni]\n    default_backend be\nbackend be\n    server s1 {}\n",
        pems[0].display(),
        origins.addrs()[0]
    );
    let outer_cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {outer}\n    use_backend wrong if {{ path_beg /wrong }}\n    use_backend lax if {{ hdr(x-lax) -m found }}\n    default_backend good\nbackend good\n    server s1 {inner} ssl verify required ca-file {} sni str(backend.example)\nbackend wrong\n    server s1 {inner} ssl verify required ca-file {} sni str(other.example)\nbackend lax\n    server s1 {inner} ssl verify none sni str(other.example)\n",
        ca.display(),
        ca.display()
    );
    let ipath = write_config(&dir, &inner_cfg);
    let _inner = Ringlb::start(&ipath, &[inner]);
    let opath = dir.path().join("outer.cfg");
    std::fs::write(&opath, outer_cfg).unwrap();
    let _outer = Ringlb::start(&opath, &[outer]);
    let get = |path: &str| {
        let out = curl(&["-si", &format!("http://{outer}{path}")], T).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let get_lax = || {
        let out = curl(
            &["-si", "-H", "X-Lax: 1", &format!("http://{outer}/echo")],
            T,
        )
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Several requests: the TLS connection to the server is pooled and reused.
    for _ in 0..3 {
        let r = get("/echo");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("header: x-seen-sni: backend.example"), "{r}");
    }
    let r = get("/wrong/echo");
    assert!(
        r.starts_with("HTTP/1.1 503"),
        "a certificate for another name: {r}"
    );
    let r = get_lax();
    assert!(r.starts_with("HTTP/1.1 200"), "verify none: {r}");
    assert!(r.contains("header: x-seen-sni: other.example"), "{r}");
    let big = curl(
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            &format!("http://{outer}/size/2000000"),
        ],
        T,
    )
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&big.stdout), "200 2000000");
}

/// TLS passthrough routed by SNI in `mode tcp`: `tcp-request inspect-delay` with `tcp-request
/// content` waiting for the ClientHello, `use_backend` on `req.ssl_sni`, a content reject and a
/// `tcp-request session` reject. The same configuration runs under haproxy, which must agree.
#[test]
fn tcp_mode_routes_tls_passthrough_by_sni_as_haproxy_does() {
    let dir = TempDir::new("engine-tls-sni-passthrough");
    let (_ca, pems) = make_certs(dir.path(), &["api.example", "www.example"]);
    let (api, web) = (free_addr(), free_addr());
    // The TLS endpoints: one ringlb terminating both names, answering which site it is.
    let inner_cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend api\n    bind {api} ssl crt {}\n    http-request return status 200 content-type text/plain string api-site\n\
         frontend web\n    bind {web} ssl crt {}\n    http-request return status 200 content-type text/plain string web-site\n",
        pems[0].display(),
        pems[1].display(),
    );
    let ipath = write_config(&dir, &inner_cfg);
    let _inner = Ringlb::start(&ipath, &[api, web]);
    let front = free_addr();
    let outer_cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend sni\n    bind {front}\n    tcp-request inspect-delay 5s\n\
         \x20   tcp-request session reject if {{ src 127.0.0.3 }}\n\
         \x20   tcp-request content reject if {{ req.ssl_sni -i blocked.example }}\n\
         \x20   tcp-request content accept if {{ req_ssl_hello_type 1 }}\n\
         \x20   use_backend api if {{ req.ssl_sni -i api.example }}\n    default_backend web\n\
         backend api\n    server s1 {api}\nbackend web\n    server s1 {web}\n"
    );
    let opath = dir.path().join("outer.cfg");
    std::fs::write(&opath, outer_cfg).unwrap();
    let body = |host: &str, extra: &[&str]| {
        let resolve = format!("{host}:{}:127.0.0.1", front.port());
        let url = format!("https://{host}:{}/", front.port());
        // -k: a rejected name would otherwise fail on the certificate, not on the rule.
        let mut args = vec!["-s", "-k", "--resolve", &resolve];
        args.extend_from_slice(extra);
        args.push(&url);
        let out = curl(&args, T).unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let mut runs = vec!["ringlb"];
    if ringlb_testkit::haproxy_available() {
        runs.push("haproxy");
    }
    for who in runs {
        let _proxy = if who == "ringlb" {
            Ringlb::start(&opath, &[front])
        } else {
            ringlb_testkit::Haproxy::start(&opath, &[front])
        };
        assert_eq!(body("api.example", &[]), (true, "api-site".into()), "{who}");
        assert_eq!(body("www.example", &[]), (true, "web-site".into()), "{who}");
        let (ok, _) = body("blocked.example", &[]);
        assert!(!ok, "{who}: a content reject closes the connection");
        let (ok, _) = body("api.example", &["--interface", "127.0.0.3"]);
        assert!(!ok, "{who}: a session reject closes the connection");
    }
}

/// One runtime-socket exchange: the command (and its `<<` payload), everything printed back.
fn cli(sock: &Path, cmd: &str, payload: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let text = match payload {
        Some(p) => format!("{cmd} <<\n{p}\n"),
        None => format!("{cmd}\n"),
    };
    s.write_all(text.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The serial of the certificate `front` serves for `sni` (openssl s_client, then x509).
fn served_serial(front: SocketAddr, sni: &str) -> String {
    let connect = format!("127.0.0.1:{}", front.port());
    let out = run_bounded(
        Command::new("openssl")
            .args(["s_client", "-connect", &connect, "-servername", sni])
            .stdin(std::process::Stdio::null()),
        T,
    )
    .unwrap();
    serial_of(&String::from_utf8_lossy(&out.stdout))
}

/// The serial of the first PEM certificate in `text`.
fn serial_of(text: &str) -> String {
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("no certificate");
    let end = text[start..].find("-----END CERTIFICATE-----").unwrap() + start + 25;
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&text.as_bytes()[start..end])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A second certificate for `name` from the same key and CA (a new serial), and variants for
/// the error paths: with the CA as chain, without key, with another name's key.
fn renewed(dir: &Path, name: &str, other: &str) -> [PathBuf; 4] {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("CN_{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3",
            "-extfile",
            &format!("CN_{name}.ext"),
            "-out",
            "renewed.crt",
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let files = [
        (
            "renewed.pem",
            read("renewed.crt") + &read(&format!("CN_{name}.key")),
        ),
        (
            "chain.pem",
            read("renewed.crt") + &read("ca.pem") + &read(&format!("CN_{name}.key")),
        ),
        ("nokey.pem", read("renewed.crt")),
        (
            "mismatch.pem",
            read("renewed.crt") + &read(&format!("CN_{other}.key")),
        ),
    ];
    files.map(|(f, text)| {
        std::fs::write(dir.join(f), text).unwrap();
        dir.join(f)
    })
}

/// `show|set|commit|abort|new|del ssl cert` answer byte for byte as haproxy 2.6 does on the
/// same certificate files (same serials, dates and fingerprints), errors included.
#[test]
fn ssl_cert_commands_print_what_haproxy_prints() {
    if !ringlb_testkit::haproxy_available() {
        eprintln!("haproxy not installed: differential test skipped");
        return;
    }
    let dir = TempDir::new("tls-cert-cli");
    let (_, pems) = make_certs(dir.path(), &["a.example", "b.example"]);
    let [renewed, chain, nokey, mismatch] = renewed(dir.path(), "a.example", "b.example");
    let (a, b) = (pems[0].display().to_string(), pems[1].display().to_string());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let script: Vec<(String, Option<String>)> = vec![
        ("show ssl cert".into(), None),
        (format!("show ssl cert {a}"), None),
        ("show ssl cert /nope.pem".into(), None),
        ("set ssl cert /nope.pem".into(), Some(read(&renewed))),
        (format!("set ssl cert {b}"), Some("garbage\n".into())),
        (format!("set ssl cert {a}"), Some(read(&renewed))),
        ("show ssl cert".into(), None),
        (format!("show ssl cert *{a}"), None),
        (format!("show ssl cert {a}"), None),
        (format!("set ssl cert {a}"), Some(read(&chain))),
        (format!("show ssl cert *{a}"), None),
        (format!("abort ssl cert {b}"), None),
        (format!("commit ssl cert {b}"), None),
        (format!("abort ssl cert {a}"), None),
        (format!("commit ssl cert {a}"), None),
        (format!("set ssl cert {a}"), Some(read(&mismatch))),
        (format!("commit ssl cert {a}"), None),
        (format!("abort ssl cert {a}"), None),
        (format!("set ssl cert {a}"), Some(read(&nokey))),
        (format!("commit ssl cert {a}"), None),
        (format!("abort ssl cert {a}"), None),
        (format!("set ssl cert {a}"), Some(read(&renewed))),
        (format!("commit ssl cert {a}"), None),
        ("show ssl cert".into(), None),
        (format!("show ssl cert {a}"), None),
        ("new ssl cert /tmp/ringlb-new.pem".into(), None),
        ("show ssl cert /tmp/ringlb-new.pem".into(), None),
        ("del ssl cert /tmp/ringlb-new.pem".into(), None),
        (format!("del ssl cert {a}"), None),
        ("commit ssl cert".into(), None),
        ("abort ssl cert".into(), None),
        ("set ssl cert".into(), None),
    ];
    let run = |haproxy: bool| -> Vec<String> {
        // Each run starts from the files as written (a commit changes only memory).
        let sub = dir.join(if haproxy { "ha" } else { "rl" });
        std::fs::create_dir_all(&sub).unwrap();
        let sock = sub.join("admin.sock");
        let (f1, f2) = (free_addr(), free_addr());
        let cfg = format!(
            "global\n    stats socket {} level admin\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {f1} ssl crt {a} crt {b}\n    bind {f2} ssl crt {a}\n    default_backend be\nbackend be\n",
            sock.display()
        );
        let cfg_dir = TempDir::new("tls-cert-cli-cfg");
        let path = write_config(&cfg_dir, &cfg);
        let _p = if haproxy {
            ringlb_testkit::Haproxy::start(&path, &[f1, f2])
        } else {
            Ringlb::start(&path, &[f1, f2])
        };
        // The listeners answer before the runtime socket's file is there.
        assert!(
            ringlb_testkit::wait_until(T, || std::os::unix::net::UnixStream::connect(&sock)
                .is_ok()),
            "no runtime socket"
        );
        script
            .iter()
            .map(|(cmd, payload)| cli(&sock, cmd, payload.as_deref()))
            .collect()
    };
    let theirs = run(true);
    let ours = run(false);
    for (((cmd, _), t), o) in script.iter().zip(&theirs).zip(&ours) {
        assert_eq!(o, t, "{cmd}");
    }
}

/// After `commit ssl cert`, new handshakes on every shard serve the new certificate; a
/// connection opened before keeps working with the certificate it was given.
#[test]
fn committed_certificate_serves_new_handshakes_on_every_shard() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-hot-swap");
    let (_, pems) = make_certs(dir.path(), &["a.example", "b.example"]);
    let [renewed, ..] = renewed(dir.path(), "a.example", "b.example");
    let front = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {} level admin\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front} ssl crt {} crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
        sock.display(),
        pems[0].display(),
        pems[1].display(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let old = serial_of(&read(&pems[0]));
    let new = serial_of(&read(&renewed));
    let other = serial_of(&read(&pems[1]));
    assert_ne!(old, new);
    // Several handshakes, so both shards answer some.
    for _ in 0..6 {
        assert_eq!(served_serial(front, "a.example"), old);
    }
    // A connection opened now and used after the commit.
    let connect = format!("127.0.0.1:{}", front.port());
    let mut early = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "a.example",
            "-ign_eof",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let set = cli(
        &sock,
        &format!("set ssl cert {}", pems[0].display()),
        Some(&read(&renewed)),
    );
    assert!(set.starts_with("Transaction created"), "{set}");
    // Nothing changes before the commit.
    assert_eq!(served_serial(front, "a.example"), old);
    let commit = cli(
        &sock,
        &format!("commit ssl cert {}", pems[0].display()),
        None,
    );
    assert!(commit.ends_with("Success!\n\n"), "{commit}");
    for _ in 0..6 {
        assert_eq!(served_serial(front, "a.example"), new);
        assert_eq!(served_serial(front, "b.example"), other);
    }
    {
        use std::io::Write;
        let mut stdin = early.stdin.take().unwrap();
        stdin
            .write_all(b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    let deadline = std::time::Instant::now() + T;
    while early.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = early.kill();
    let out = early.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    assert_eq!(
        serial_of(&text),
        old,
        "the early connection kept its certificate"
    );
}
