//! HTTP/2 from clients end to end: the real `ringlb` binary, real HTTP/1 origins, and real h2
//! clients (curl, h2load) plus a small raw-frame client written here for what well-behaved
//! clients never send (malformed streams, rapid reset).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ringlb_testkit::h2raw::*;
use ringlb_testkit::{
    curl, free_addr, pattern, run_bounded, write_config, write_file, Digest, Origins, Ringlb,
    TempDir,
};

const T: Duration = Duration::from_secs(10);

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_bounded(Command::new("openssl").current_dir(dir).args(args), T).unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and one PEM (certificate + key) for `name`, signed by it: (ca, pem).
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ringlb h2 CA",
    ]);
    openssl(dir, &ca);
    std::fs::write(dir.join("site.ext"), format!("subjectAltName=DNS:{name}")).unwrap();
    let subj = format!("/CN={name}");
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "site.key", "-out", "site.csr", "-subj", &subj]);
    openssl(dir, &csr);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "site.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "site.ext",
            "-out",
            "site.crt",
        ],
    );
    let mut pem = std::fs::read(dir.join("site.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("site.key")).unwrap());
    let path = dir.join("site.pem");
    std::fs::write(&path, pem).unwrap();
    (dir.join("ca.pem"), path)
}

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n";

/// `curl -w '%{http_version} %{http_code} %{size_download}'` plus `extra`; (summary, stderr).
fn curl_w(url: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code} %{size_download}",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = curl(&args, T).unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn h2_over_tls_when_alpn_offers_it_and_http1_still_works() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-tls");
    let (ca, pem) = make_cert(dir.path(), "h2.example");
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} ssl crt {} alpn h2,http/1.1\n    http-response set-header X-Seen-By ringlb\n    default_backend be\nbackend be\n    server s1 {}\n",
        pem.display(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    let resolve = format!("h2.example:{}:127.0.0.1", front.port());
    let base = format!("https://h2.example:{}", front.port());
    let tls = ["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    fn with<'a>(tls: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
        let mut v = tls.to_vec();
        v.extend_from_slice(more);
        v
    }
    // HTTP/2 chosen by ALPN; the same bind serves HTTP/1.1 clients.
    let (out, err) = curl_w(&format!("{base}/"), &with(&tls, &["--http2"]));
    assert_eq!(out, "2 200 14", "{err}");
    let (out, err) = curl_w(&format!("{base}/"), &with(&tls, &["--http1.1"]));
    assert_eq!(out, "1.1 200 14", "{err}");
    // Large bodies in both framings, within the client's flow-control window.
    let (out, err) = curl_w(&format!("{base}/size/1048576"), &with(&tls, &["--http2"]));
    assert_eq!(out, "2 200 1048576", "{err}");
    let (out, err) = curl_w(&format!("{base}/chunked/300000"), &with(&tls, &["--http2"]));
    assert_eq!(out, "2 200 300000", "{err}");
    // Headers: lower-case, hop-by-hop removed, `http-response` rules applied.
    let out = curl(
        &with(
            &tls,
            &[
                "--http2",
                "-s",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &format!("{base}/"),
            ],
        ),
        T,
    )
    .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    // Many concurrent streams with large bodies over one TLS connection each: reads (client
    // WINDOW_UPDATEs) and writes interleave on the TLS session.
    let h2load = run_bounded(
        Command::new("h2load").args([
            "-n",
            "400",
            "-c",
            "2",
            "-m",
            "16",
            &format!("https://127.0.0.1:{}/size/100000", front.port()),
        ]),
        Duration::from_secs(60),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&h2load.stdout).to_string();
    assert!(text.contains("Application protocol: h2"), "{text}");
    assert!(
        text.contains("400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(head.contains("x-seen-by: ringlb"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection:"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("keep-alive"), "{head}");
}

#[test]
fn h2c_prior_knowledge_get_post_and_errors() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2c");
    let front = free_addr();
    let cfg = format!(
        "global\n    tune.h2.max-concurrent-streams 50\n    tune.h2.initial-window-size 1048576\n    tune.h2.header-table-size 8192\n    tune.h2.max-frame-size 32768\n{DEFAULTS}frontend fe\n    bind {front} proto h2\n    http-request deny if {{ path /denied }}\n    use_backend nobody if {{ path /nobody }}\n    default_backend be\nbackend be\n    server s1 {}\nbackend nobody\n",
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    let base = format!("http://{front}");
    let (out, err) = curl_w(&format!("{base}/"), &["--http2-prior-knowledge"]);
    assert_eq!(out, "2 200 14", "{err}");
    // The HTTP/1 request the origin saw: Host from :authority, no h2 pseudo-headers.
    let out = curl(&["--http2-prior-knowledge", &format!("{base}/echo")], T).unwrap();
    let echo = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(echo.contains("request-line: GET /echo HTTP/1.1"), "{echo}");
    assert!(echo.contains(&format!("header: host: {front}")), "{echo}");
    assert!(!echo.contains(":path"), "{echo}");
    // A POST body with a length, and one without (sent chunked to the server).
    let body = pattern(200_000);
    let file = write_file(&dir, "body.bin", &body);
    let upload = format!("@{}", file.display());
    let out = curl(
        &[
            "--http2-prior-knowledge",
            "--data-binary",
            &upload,
            &format!("{base}/echo"),
        ],
        T,
    )
    .unwrap();
    let echo = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        Digest::from_report(&echo),
        Some(Digest::of_pattern(200_000)),
        "{echo}"
    );
    let out = curl(
        &[
            "--http2-prior-knowledge",
            "-T",
            file.to_str().unwrap(),
            "-H",
            "content-length:",
            &format!("{base}/echo"),
        ],
        T,
    )
    .unwrap();
    let echo = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        Digest::from_report(&echo),
        Some(Digest::of_pattern(200_000)),
        "{echo}"
    );
    // `Expect: 100-continue` is answered by the proxy at once (curl would wait 5 s for it).
    let started = Instant::now();
    let out = curl(
        &[
            "--http2-prior-knowledge",
            "--expect100-timeout",
            "5",
            "-H",
            "expect: 100-continue",
            "--data-binary",
            &upload,
            &format!("{base}/echo"),
        ],
        T,
    )
    .unwrap();
    let echo = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        Digest::from_report(&echo),
        Some(Digest::of_pattern(200_000)),
        "{echo}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The `tune.h2.*` settings are what the proxy announces.
    let out = run_bounded(Command::new("nghttp").args(["-nv", &format!("{base}/")]), T).unwrap();
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    for s in [
        "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):50",
        "SETTINGS_INITIAL_WINDOW_SIZE(0x04):1048576",
        "SETTINGS_HEADER_TABLE_SIZE(0x01):8192",
        "SETTINGS_MAX_FRAME_SIZE(0x05):32768",
    ] {
        assert!(log.contains(s), "{s}: {log}");
    }
    // Rules and errors answer as HTTP/2 responses.
    let (out, _) = curl_w(&format!("{base}/denied"), &["--http2-prior-knowledge"]);
    assert!(out.starts_with("2 403 "), "{out}");
    let (out, _) = curl_w(&format!("{base}/nobody"), &["--http2-prior-knowledge"]);
    assert!(out.starts_with("2 503 "), "{out}");
}

#[test]
fn h2load_many_streams_without_errors() {
    let origins = Origins::start(2);
    let dir = TempDir::new("engine-h2load");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 2\n{DEFAULTS}frontend fe\n    bind {front} proto h2\n    default_backend be\nbackend be\n    server s1 {}\n    server s2 {}\n",
        origins.addrs()[0],
        origins.addrs()[1]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    let out = run_bounded(
        Command::new("h2load").args([
            "-n",
            "2000",
            "-c",
            "4",
            "-m",
            "16",
            &format!("http://{front}/"),
        ]),
        Duration::from_secs(60),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
    assert!(text.contains("status codes: 2000 2xx"), "{text}");
}

#[test]
fn malformed_streams_are_reset_and_never_forwarded() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-malformed");
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} proto h2\n    default_backend be\nbackend be\n    server s1 {}\n",
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    let mut c = Raw::connect(front);
    let cases: [(u32, Vec<(&str, &str)>); 5] = [
        (
            1,
            get_fields("/bad-connection", &[("connection", "keep-alive")]),
        ),
        (3, get_fields("/bad-te", &[("te", "gzip")])),
        (5, get_fields("/bad-upgrade", &[("upgrade", "websocket")])),
        (7, get_fields("/bad-host", &[("host", "elsewhere.test")])),
        (9, get_fields("/bad space", &[])),
    ];
    for (id, fields) in &cases {
        c.send(&frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            *id,
            &hpack(fields),
        ))
        .unwrap();
        let frames = c.until_end(*id);
        assert_eq!(
            rst_code(&frames, *id),
            Some(PROTOCOL_ERROR),
            "stream {id}: {frames:?}"
        );
    }
    // Content-Length larger than the DATA sent: reset, and the connection still serves.
    let post = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/bad-length"),
        (":authority", "h2.test"),
        ("content-length", "10"),
    ];
    c.send(&frame(HEADERS, END_HEADERS, 11, &hpack(&post)))
        .unwrap();
    c.send(&frame(DATA, END_STREAM, 11, b"abc")).unwrap();
    let frames = c.until_end(11);
    assert!(
        rst_code(&frames, 11).is_some() || frames.iter().any(|f| f.0 == GOAWAY),
        "{frames:?}"
    );
    // A well-formed request on the same connection is answered (indexed :status 200 = 0x88).
    let mut c = Raw::connect(front);
    c.send(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &hpack(&get_fields("/good", &[])),
    ))
    .unwrap();
    let frames = c.until_end(1);
    assert_eq!(status_of(&frames, 1), Some(0x88), "{frames:?}");
    // The origin saw the good request and none of the malformed ones.
    std::thread::sleep(Duration::from_millis(200));
    let log = origins.get(0).guard().stderr();
    assert!(log.contains("/good"), "{log}");
    for bad in [
        "/bad-connection",
        "/bad-te",
        "/bad-upgrade",
        "/bad-host",
        "/bad space",
    ] {
        assert!(!log.contains(bad), "{bad} reached the origin: {log}");
    }
}

#[test]
fn rapid_reset_burst_does_not_hurt_a_normal_client() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-rapid-reset");
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} proto h2\n    default_backend be\nbackend be\n    server s1 {}\n",
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let proxy = Ringlb::start(&path, &[front]);
    // The attacker: HEADERS then RST_STREAM(CANCEL), 20000 times, as fast as it can write.
    let attacker = std::thread::spawn(move || {
        let mut c = Raw::connect(front);
        let block = hpack(&get_fields("/slow/100", &[]));
        let mut burst = Vec::new();
        let mut sent = 0;
        for i in 0..20_000u32 {
            let id = 2 * i + 1;
            burst.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &block));
            burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
            if burst.len() > 64 << 10 {
                if c.send(&burst).is_err() {
                    break;
                }
                sent = i;
                burst.clear();
            }
        }
        // The proxy ends the connection: GOAWAY(ENHANCE_YOUR_CALM), too many resets.
        let goaway = ending(&mut c, Duration::from_secs(5));
        (sent, goaway)
    });
    // Meanwhile a well-behaved client gets every answer, promptly.
    let base = format!("http://{front}/");
    let started = Instant::now();
    for _ in 0..20 {
        let (out, err) = curl_w(&base, &["--http2-prior-knowledge"]);
        assert_eq!(out, "2 200 14", "{err}");
    }
    let (_sent, goaway) = attacker.join().unwrap();
    assert_eq!(
        goaway,
        Some(ENHANCE_YOUR_CALM),
        "rapid reset ends with GOAWAY"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // Still serving, and the process is alive with bounded memory.
    let (out, err) = curl_w(&base, &["--http2-prior-knowledge"]);
    assert_eq!(out, "2 200 14", "{err}");
    let rss = ringlb_testkit::proc_status_kib(proxy.pid(), "VmRSS").unwrap_or(0);
    assert!(rss < 512 * 1024, "VmRSS {rss} KiB");
}

#[test]
fn a_bind_without_h2_speaks_http1_to_h2_clients() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-off");
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {}\n",
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    // curl asks for an h2c upgrade; the proxy stays HTTP/1.1.
    let (out, err) = curl_w(&format!("http://{front}/"), &["--http2"]);
    assert_eq!(out, "1.1 200 14", "{err}");
}

/// Starts a proxy with `proto h2` in front of one origin, with `timeout client` = `client`.
fn h2c_proxy(
    dir: &TempDir,
    origins: &Origins,
    client: &str,
) -> (SocketAddr, ringlb_testkit::ChildGuard) {
    let front = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client {client}\n    timeout server 5s\nfrontend fe\n    bind {front} proto h2\n    default_backend be\nbackend be\n    server s1 {}\n",
        origins.addrs()[0]
    );
    let path = write_config(dir, &cfg);
    let proxy = Ringlb::start(&path, &[front]);
    (front, proxy)
}

/// Writes `bytes` in pieces until done or the peer stops reading/closes (write timeout).
fn flood(c: &mut Raw, bytes: &[u8]) -> usize {
    c.s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut sent = 0;
    for piece in bytes.chunks(64 << 10) {
        if c.s.write_all(piece).is_err() {
            break;
        }
        sent += piece.len();
    }
    sent
}

/// How the connection ends within `wait`: `Some(code)` of a GOAWAY, `Some(CLOSED)` for a close
/// without one, `None` if it did not end.
fn ending(c: &mut Raw, wait: Duration) -> Option<u32> {
    c.s.set_read_timeout(Some(wait)).unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match c.next_frame() {
            Some((GOAWAY, _, _, p)) => return Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]])),
            None => return Some(CLOSED),
            Some(_) => {}
        }
    }
    None
}

const CLOSED: u32 = u32::MAX;

fn rss_kib(proxy: &ringlb_testkit::ChildGuard) -> u64 {
    ringlb_testkit::proc_status_kib(proxy.pid(), "VmRSS").unwrap_or(0)
}

#[test]
fn header_floods_are_cut_and_memory_stays_bounded() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-floods");
    let (front, proxy) = h2c_proxy(&dir, &origins, "5s");
    let before = rss_kib(&proxy);
    // CONTINUATION flood: a header block that never ends, 16 MiB of it.
    let mut c = Raw::connect(front);
    let mut bytes = frame(HEADERS, 0, 1, &hpack(&get_fields("/cont", &[])));
    let filler = hpack(&[("x-filler", &"a".repeat(4000))]);
    for _ in 0..4096 {
        bytes.extend(frame(CONTINUATION, 0, 1, &filler));
    }
    flood(&mut c, &bytes);
    let end = ending(&mut c, Duration::from_secs(5));
    assert!(end.is_some(), "CONTINUATION flood not cut");
    // HPACK bomb: one 4000-byte field put in the dynamic table, then referenced 16384 times
    // (64 MiB once decoded) in a block of 16 KiB.
    let mut c = Raw::connect(front);
    let mut block = hpack(&get_fields("/bomb", &[]));
    block.push(0x40); // literal with incremental indexing, new name
    block.push(8);
    block.extend_from_slice(b"x-bomb-1");
    hpack_int(&mut block, 0, 7, 4000);
    block.extend(std::iter::repeat_n(b'b', 4000));
    block.extend(std::iter::repeat_n(0x80 | 62, 16384)); // indexed: dynamic entry 62
    let mut bytes = Vec::new();
    let mut chunks = block.chunks(16384).peekable();
    let first = chunks.next().unwrap();
    let last_flag = |more: bool| if more { 0 } else { END_HEADERS };
    bytes.extend(frame(
        HEADERS,
        END_STREAM | last_flag(chunks.peek().is_some()),
        1,
        first,
    ));
    while let Some(ch) = chunks.next() {
        bytes.extend(frame(
            CONTINUATION,
            last_flag(chunks.peek().is_some()),
            1,
            ch,
        ));
    }
    flood(&mut c, &bytes);
    let frames = c.until_end(1);
    assert!(
        !frames
            .iter()
            .any(|f| f.0 == HEADERS && f.2 == 1 && f.3.first() == Some(&0x88)),
        "the bomb was answered 200: {frames:?}"
    );
    // The origin saw neither; the proxy serves others and did not balloon.
    let (out, err) = curl_w(&format!("http://{front}/"), &["--http2-prior-knowledge"]);
    assert_eq!(out, "2 200 14", "{err}");
    let log = origins.get(0).guard().stderr();
    assert!(!log.contains("/cont") && !log.contains("/bomb"), "{log}");
    let after = rss_kib(&proxy);
    assert!(after < before + 64 * 1024, "VmRSS {before} → {after} KiB");
}

#[test]
fn ping_flood_and_zero_window_stall_do_not_hold_the_proxy() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-ping");
    let (front, proxy) = h2c_proxy(&dir, &origins, "1s");
    let before = rss_kib(&proxy);
    // PING flood, never reading the answers: 1 million PINGs (17 MiB).
    let attacker = std::thread::spawn(move || {
        let mut c = Raw::connect(front);
        let ping = frame(PING, 0, 0, &[7; 8]);
        let bytes: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 1_000_000)
            .collect();
        flood(&mut c, &bytes);
    });
    // Zero window: the client announces SETTINGS_INITIAL_WINDOW_SIZE 0 and asks for 1 MB;
    // after `timeout client` without window the stream is reset, not kept forever.
    let mut c = Raw::connect(front);
    c.send(&frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0])).unwrap();
    c.send(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &hpack(&get_fields("/size/1000000", &[])),
    ))
    .unwrap();
    let started = Instant::now();
    let frames = c.until_end(1);
    assert!(
        frames.iter().any(|f| f.0 == RST_STREAM && f.2 == 1)
            || frames.iter().any(|f| f.0 == GOAWAY),
        "{frames:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // A normal client is served during and after the flood.
    for _ in 0..5 {
        let (out, err) = curl_w(&format!("http://{front}/"), &["--http2-prior-knowledge"]);
        assert_eq!(out, "2 200 14", "{err}");
    }
    attacker.join().unwrap();
    let after = rss_kib(&proxy);
    assert!(after < before + 64 * 1024, "VmRSS {before} → {after} KiB");
}

#[test]
fn made_you_reset_ends_the_connection() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-myr");
    let (front, _proxy) = h2c_proxy(&dir, &origins, "5s");
    // MadeYouReset: streams the server must reset itself (malformed: a `connection` field),
    // which a client's concurrency limit does not count; past the limit the connection ends
    // with GOAWAY(ENHANCE_YOUR_CALM).
    let mut c = Raw::connect(front);
    let block = hpack(&get_fields("/myr", &[("connection", "close")]));
    let mut bytes = Vec::new();
    for i in 0..2000u32 {
        bytes.extend(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, &block));
    }
    flood(&mut c, &bytes);
    assert_eq!(
        ending(&mut c, Duration::from_secs(3)),
        Some(ENHANCE_YOUR_CALM)
    );
    let (out, err) = curl_w(&format!("http://{front}/"), &["--http2-prior-knowledge"]);
    assert_eq!(out, "2 200 14", "{err}");
}

#[test]
fn a_server_connection_the_server_closes_is_not_reused() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-reuse");
    let (front, _proxy) = h2c_proxy(&dir, &origins, "5s");
    // One client connection: a GET, a GET the server answers with `connection: close`, then a
    // POST (not replayable: it must get a live server connection, not the closed one).
    let mut c = Raw::connect(front);
    for (id, path) in [(1, "/"), (3, "/close")] {
        c.send(&frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            id,
            &hpack(&get_fields(path, &[])),
        ))
        .unwrap();
        let frames = c.until_end(id);
        assert_eq!(status_of(&frames, id), Some(0x88), "{path}: {frames:?}");
    }
    std::thread::sleep(Duration::from_millis(100));
    let post = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/echo"),
        (":authority", "h2.test"),
        ("content-length", "5"),
    ];
    c.send(&frame(HEADERS, END_HEADERS, 5, &hpack(&post)))
        .unwrap();
    c.send(&frame(DATA, END_STREAM, 5, b"hello")).unwrap();
    let frames = c.until_end(5);
    assert_eq!(status_of(&frames, 5), Some(0x88), "{frames:?}");
}

#[test]
fn soft_stop_drains_h2_connections_and_exits() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-softstop");
    let (front, mut proxy) = h2c_proxy(&dir, &origins, "1s");
    // A client that keeps its connection open and never answers the GOAWAY's PING.
    let mut c = Raw::connect(front);
    c.send(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &hpack(&get_fields("/", &[])),
    ))
    .unwrap();
    assert_eq!(status_of(&c.until_end(1), 1), Some(0x88));
    // A stream in progress when the stop comes still completes.
    c.send(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        3,
        &hpack(&get_fields("/slow/300", &[])),
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    proxy.signal(10).unwrap(); // SIGUSR1: soft stop
    let mut frames = Vec::new();
    while let Some(f) = c.next_frame() {
        let end = f.2 == 3 && f.1 & END_STREAM != 0;
        frames.push(f);
        if end {
            break;
        }
    }
    assert_eq!(status_of(&frames, 3), Some(0x88), "{frames:?}");
    // GOAWAY (graceful, then final), then the close.
    while let Some(f) = c.next_frame() {
        frames.push(f);
    }
    assert!(frames.iter().any(|f| f.0 == GOAWAY), "{frames:?}");
    // The connection goes away and the process exits, within the idle time.
    let exited = proxy.wait_timeout(Duration::from_secs(5)).unwrap();
    assert!(exited.is_some(), "ringlb still running after soft stop");
}

// ---- HTTP/2 towards servers (`server ... proto h2`, `ssl alpn h2`) ----
//
// The h2 origin is haproxy itself (`bind ... proto h2`), answering some paths with
// `http-request return` and passing the rest to a ringlb-origin over HTTP/1 (which gives
// `/echo`, uploads' digests and `/grpc`'s trailers). It tags every answer with the HTTP
// version it was asked in (`x-origin-ver`), so a test sees that the proxy really spoke h2.

/// haproxy as an h2c origin on `addr` in front of `origin` (HTTP/1).
fn h2_origin(dir: &TempDir, addr: SocketAddr, origin: SocketAddr) -> ringlb_testkit::ChildGuard {
    let cfg = format!(
        "{DEFAULTS}frontend h2origin\n    bind {addr} proto h2\n    http-request set-var(txn.ver) req.ver\n    http-request return status 200 content-type text/plain string \"direct from the h2 origin\" if {{ path /ret }}\n    http-after-response set-header x-origin-ver %[var(txn.ver)]\n    default_backend o\nbackend o\n    server o1 {origin}\n"
    );
    let path = dir.join("origin-h2.cfg");
    std::fs::write(&path, cfg).unwrap();
    ringlb_testkit::Haproxy::start(&path, &[addr])
}

/// Established TCP connections towards `to` (from any local port).
fn connections_to(to: SocketAddr) -> usize {
    let out = run_bounded(
        Command::new("ss").args(["-Htn", "state", "established", "dst", &to.to_string()]),
        T,
    )
    .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// One GET over HTTP/1.1 or h2 (`--http2-prior-knowledge`): (status, x-origin-ver, body).
fn fetch(url: &str, h2: bool) -> (String, String, String) {
    let mut args = vec!["-s", "-D", "-"];
    if h2 {
        args.push("--http2-prior-knowledge");
    }
    args.push(url);
    let out = curl(&args, T).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let ver = head
        .lines()
        .find_map(|l| l.strip_prefix("x-origin-ver: "))
        .unwrap_or("")
        .to_string();
    (status, ver, body.to_string())
}

#[test]
fn h2_server_carries_http1_and_h2_clients_on_one_connection() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2srv");
    let h2addr = free_addr();
    let _origin = h2_origin(&dir, h2addr, origins.addrs()[0]);
    let (front1, front2) = (free_addr(), free_addr());
    let cfg = format!(
        "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front1}\n    bind {front2} proto h2\n    default_backend be\nbackend be\n    server s1 {h2addr} proto h2\n"
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front1, front2]);
    for (base, h2) in [
        (format!("http://{front1}"), false),
        (format!("http://{front2}"), true),
    ] {
        let (status, ver, body) = fetch(&format!("{base}/ret"), h2);
        assert_eq!((status.as_str(), ver.as_str()), ("200", "2.0"), "{body}");
        assert_eq!(body, "direct from the h2 origin");
        let (status, ver, body) = fetch(&format!("{base}/"), h2);
        assert_eq!((status.as_str(), ver.as_str()), ("200", "2.0"), "{body}");
        assert_eq!(body, format!("hello from {}\n", origins.names()[0]));
        // Uploads with a length and chunked (HTTP/1 client) or without a length (h2 client).
        let data = pattern(300_000);
        let file = write_file(&dir, "up.bin", &data);
        for extra in [
            &["--data-binary"][..],
            &["-H", "transfer-encoding: chunked", "--data-binary"],
        ] {
            let mut args: Vec<String> = vec!["-s".into()];
            if h2 {
                args.push("--http2-prior-knowledge".into());
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            args.push(format!("@{}", file.display()));
            args.push(format!("{base}/echo"));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = curl(&args, T).unwrap();
            let echo = String::from_utf8_lossy(&out.stdout).to_string();
            assert_eq!(
                Digest::from_report(&echo),
                Some(Digest::of_pattern(300_000)),
                "{extra:?} h2={h2}: {echo}"
            );
        }
        // A large download streams through both windows.
        let (out, err) = curl_w(
            &format!("{base}/size/3000000"),
            if h2 {
                &["--http2-prior-knowledge"][..]
            } else {
                &[]
            },
        );
        assert!(out.ends_with(" 200 3000000"), "{out} {err}");
    }
    // Ten HTTP/1 clients one after the other, then eight at once: one h2 connection to the
    // server carried them all (one shard).
    for _ in 0..10 {
        assert_eq!(fetch(&format!("http://{front1}/"), false).0, "200");
    }
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("http://{front1}/slow/200");
            std::thread::spawn(move || fetch(&url, false).0)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "200");
    }
    assert_eq!(connections_to(h2addr), 1);
}

#[test]
fn h2_server_answers_match_haproxy_with_the_same_config() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2srv-diff");
    let h2addr = free_addr();
    let _origin = h2_origin(&dir, h2addr, origins.addrs()[0]);
    // HTTP/1 on the plain bind, h2 on the `proto h2` one.
    let answers = |front: SocketAddr, h2: bool| {
        [
            "/ret",
            "/",
            "/status/404",
            "/status/204",
            "/chunked/70000",
            "/size/0",
        ]
        .iter()
        .map(|p| {
            let (s, v, b) = fetch(&format!("http://{front}{p}"), h2);
            (p.to_string(), s, v, b.len())
        })
        .collect::<Vec<_>>()
    };
    let mut got = Vec::new();
    for haproxy in [false, true] {
        let (front1, front2) = (free_addr(), free_addr());
        let cfg = format!(
            "{DEFAULTS}frontend fe\n    bind {front1}\n    bind {front2} proto h2\n    default_backend be\nbackend be\n    server s1 {h2addr} proto h2\n"
        );
        let path = dir.join(if haproxy { "hap.cfg" } else { "rl.cfg" });
        std::fs::write(&path, cfg).unwrap();
        let _p = if haproxy {
            ringlb_testkit::Haproxy::start(&path, &[front1, front2])
        } else {
            Ringlb::start(&path, &[front1, front2])
        };
        got.push((answers(front1, false), answers(front2, true)));
    }
    assert_eq!(got[0], got[1], "ringlb (left) and haproxy (right) differ");
    // Every answer came from the origin asked over HTTP/2.
    assert!(
        got[0]
            .0
            .iter()
            .chain(&got[0].1)
            .all(|x| !x.1.is_empty() && x.2 == "2.0"),
        "{got:?}"
    );
}

/// HEADERS + DATA + trailing HEADERS (END_STREAM) for a gRPC-like POST on `stream`.
fn grpc_request(authority: &str, stream: u32, body: &[u8]) -> Vec<u8> {
    let fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", "/grpc"),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
    ];
    let mut out = frame(HEADERS, END_HEADERS, stream, &hpack(&fields));
    out.extend(frame(DATA, 0, stream, body));
    out.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        stream,
        &hpack(&[("x-checksum", "abc")]),
    ));
    out
}

#[test]
fn grpc_like_exchange_carries_trailers_both_ways() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2srv-grpc");
    let h2addr = free_addr();
    let _origin = h2_origin(&dir, h2addr, origins.addrs()[0]);
    let (front1, front2) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front1}\n    bind {front2} proto h2\n    default_backend be\nbackend be\n    server s1 {h2addr} proto h2\n"
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front1, front2]);
    // h2 client: its request trailer reaches the origin, the response ends with trailers.
    let mut c = Raw::connect(front2);
    c.send(&grpc_request(&front2.to_string(), 1, b"hello grpc"))
        .unwrap();
    let frames = c.until_end(1);
    assert_eq!(status_of(&frames, 1), Some(0x88), "{frames:?}");
    let headers: Vec<_> = frames
        .iter()
        .filter(|f| f.0 == HEADERS && f.2 == 1)
        .collect();
    assert_eq!(
        headers.len(),
        2,
        "response HEADERS then trailers: {frames:?}"
    );
    assert!(headers[1].1 & END_STREAM != 0);
    let data: Vec<u8> = frames
        .iter()
        .filter(|f| f.0 == DATA && f.2 == 1)
        .flat_map(|f| f.3.clone())
        .collect();
    let text = String::from_utf8_lossy(&data);
    assert!(text.contains("trailers: x-checksum: abc"), "{text}");
    let mut want = Digest::new();
    want.update(b"hello grpc");
    assert_eq!(Digest::from_report(&text), Some(want), "{text}");
    // curl shows the response trailers it got.
    let out = curl(
        &[
            "-s",
            "-v",
            "--http2-prior-knowledge",
            "-H",
            "te: trailers",
            "--data-binary",
            "x",
            &format!("http://{front2}/grpc"),
        ],
        T,
    )
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("< grpc-status: 0"), "{err}");
    // HTTP/1 client: chunked request trailers go out as h2 trailers, the response's come
    // back in the chunked trailer section.
    let mut conn = ringlb_testkit::Conn::connect(front1).unwrap();
    conn.send(
        format!("POST /grpc HTTP/1.1\r\nhost: {front1}\r\nte: trailers\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: h1\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    conn.stream().set_read_timeout(Some(T)).unwrap();
    let deadline = Instant::now() + T;
    while !raw.ends_with(b"\r\n\r\n") || !String::from_utf8_lossy(&raw).contains("grpc-status") {
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut conn.stream(), &mut buf).unwrap();
        assert!(
            n > 0 && Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.contains("trailers: x-checksum: h1"), "{text}");
    assert!(text.contains("\r\n0\r\ngrpc-status: 0\r\n"), "{text}");
}

/// `option http-restrict-req-hdr-names` on h2 streams, where `_` and `.` are legal in names:
/// `delete` drops those headers before the server, `reject` answers 403.
#[test]
fn h2_streams_follow_restrict_req_hdr_names() {
    let origins = Origins::start(1);
    let dir = TempDir::new("engine-h2-hdrnames");
    let (del, rej) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend del\n    bind {del} proto h2\n    option http-restrict-req-hdr-names delete\n    default_backend be\n\
         frontend rej\n    bind {rej} proto h2\n    default_backend strict\n\
         backend be\n    server s1 {o}\nbackend strict\n    option http-restrict-req-hdr-names reject\n    server s1 {o}\n",
        o = origins.addrs()[0]
    );
    let _proxy = Ringlb::start(&write_config(&dir, &cfg), &[del, rej]);
    let args = |front: SocketAddr| {
        vec![
            "--http2-prior-knowledge".to_string(),
            "-H".into(),
            "x_bad: 1".into(),
            "-H".into(),
            "x-good: 2".into(),
            format!("http://{front}/echo"),
        ]
    };
    let a = args(del);
    let out = curl(&a.iter().map(String::as_str).collect::<Vec<_>>(), T).unwrap();
    let echo = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        echo.contains("header: x-good: 2") && !echo.contains("x_bad"),
        "{echo}"
    );
    let (out, err) = curl_w(
        &format!("http://{rej}/echo"),
        &["--http2-prior-knowledge", "-H", "x_bad: 1"],
    );
    assert!(out.starts_with("2 403"), "{out} {err}");
    let (out, err) = curl_w(&format!("http://{rej}/echo"), &["--http2-prior-knowledge"]);
    assert!(out.starts_with("2 200"), "{out} {err}");
}
