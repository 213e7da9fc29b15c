//! The fetches of the TLS connection to a server (`ssl_bc_*`, `ssl_s_*`), differential: the
//! same config runs under `ringlb` and `haproxy`, both in front of one TLS origin (a third
//! haproxy on loopback, certificate from an intermediate CA), and `http-response set-header`
//! rules copy every fetch into the response; both proxies must send the same values.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    curl, free_addr, haproxy_available, run_bounded, write_config, ChildGuard, Haproxy, Origins,
    Ringlb, TempDir, TestCa,
};

const T: Duration = Duration::from_secs(10);
const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n";

/// Response header ← fetch, for every server-side TLS fetch ringlb computes.
const FETCHES: &[(&str, &str)] = &[
    ("x-bc", "ssl_bc"),
    ("x-bc-protocol", "ssl_bc_protocol"),
    ("x-bc-cipher", "ssl_bc_cipher"),
    ("x-bc-alpn", "ssl_bc_alpn"),
    ("x-bc-resumed", "ssl_bc_is_resumed"),
    ("x-bc-use-keysize", "ssl_bc_use_keysize"),
    ("x-bc-alg-keysize", "ssl_bc_alg_keysize"),
    ("x-bc-err", "ssl_bc_err"),
    ("x-s-dn", "ssl_s_s_dn"),
    ("x-s-cn", "ssl_s_s_dn(cn)"),
    ("x-s-i-dn", "ssl_s_i_dn"),
    ("x-s-i-dn-rfc", "ssl_s_i_dn(,0,rfc2253)"),
    ("x-s-serial", "ssl_s_serial,hex"),
    ("x-s-sha1", "ssl_s_sha1,hex"),
    ("x-s-der", "ssl_s_der,hex"),
    ("x-s-chain", "ssl_s_chain_der,hex"),
    ("x-s-notbefore", "ssl_s_notbefore"),
    ("x-s-notafter", "ssl_s_notafter"),
    ("x-s-key-alg", "ssl_s_key_alg"),
    ("x-s-sig-alg", "ssl_s_sig_alg"),
    ("x-s-version", "ssl_s_version"),
];

/// haproxy terminating TLS on `addr` and answering every request itself (`/slow` only after
/// 5 s).
fn tls_origin(dir: &Path, addr: SocketAddr, pem: &Path) -> ChildGuard {
    let cfg = format!(
        "{DEFAULTS}    timeout tarpit 5s\nfrontend tls_origin\n    bind {addr} ssl crt {} alpn h2,http/1.1\n    http-request tarpit if {{ path /slow }}\n    http-request return status 200 content-type text/plain string ok\n",
        pem.display()
    );
    let path = dir.join("origin.cfg");
    std::fs::write(&path, cfg).unwrap();
    Haproxy::start(&path, &[addr])
}

/// The response headers of `url` named in [`FETCHES`], in that order (`None`: absent).
fn fetched(url: &str) -> Vec<(String, Option<String>)> {
    let out = curl(&["-s", "-D", "-", "-o", "/dev/null", url], T).unwrap();
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{url}: {head}");
    FETCHES
        .iter()
        .map(|(h, _)| {
            let v = head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(h).then(|| v.trim().to_owned())
            });
            ((*h).to_owned(), v)
        })
        .collect()
}

#[test]
fn server_connection_fetches_match_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the comparison (it is also the origin)");
        return;
    }
    let dir = TempDir::new("tls-srv-fetches");
    let root = TestCa::new(&dir.join("root"), "ringlb test root");
    let inter = root.intermediate(&dir.join("inter"), "ringlb test intermediate");
    let site = inter.server("origin.example", &dir.join("origin.pem"));
    inter.append_chain(&site);
    let plain = Origins::start(1);
    let origin = free_addr();
    let _origin = tls_origin(dir.path(), origin, &site.pem);
    let front = free_addr();
    let rules: String = FETCHES
        .iter()
        .map(|(h, f)| format!("    http-response set-header {h} %[{f}]\n"))
        .collect();
    // `http-reuse never`: every request opens (and resumes, after the first) a connection.
    // One thread: haproxy keeps the session to reuse per thread (ringlb: per shard).
    let cfg = format!(
        "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    use_backend plain if {{ path_beg /plain }}\n    default_backend tls\n\
         backend tls\n    http-reuse never\n{rules}    server s1 {origin} ssl verify required ca-file {} sni str(origin.example) alpn http/1.1\n\
         backend plain\n{rules}    server s1 {plain}\n",
        root.cert.display(),
        plain = plain.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    let mut seen = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = if which == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            Haproxy::start(&path, &[front])
        };
        let url = format!("http://{front}/");
        let first = fetched(&url);
        let second = fetched(&url);
        // Not TLS towards this server: `ssl_bc` is false, the rest absent (empty header).
        let clear = fetched(&format!("http://{front}/plain"));
        seen.push((which, first, second, clear));
    }
    let (_, r1, r2, r3) = &seen[0];
    let (_, h1, h2, h3) = &seen[1];
    let value = |v: &[(String, Option<String>)], h: &str| {
        v.iter()
            .find(|(n, _)| n == h)
            .and_then(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut differ = Vec::new();
    for (case, (r, h)) in [(r1, h1), (r2, h2), (r3, h3)].into_iter().enumerate() {
        for (a, b) in r.iter().zip(h) {
            if a != b {
                differ.push(format!("request {case}: ringlb {a:?}, haproxy {b:?}"));
            }
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
    // What both agreed on is what was asked for.
    assert_eq!(value(r1, "x-bc"), "1");
    assert_eq!(value(r1, "x-bc-alpn"), "http/1.1");
    assert_eq!(value(r1, "x-s-cn"), "origin.example");
    assert_eq!(value(r1, "x-bc-resumed"), "0");
    assert_eq!(
        value(r2, "x-bc-resumed"),
        "1",
        "the second connection resumes"
    );
    assert_eq!(value(r1, "x-s-sha1").len(), 40);
    assert_eq!(value(r3, "x-bc"), "0");
    assert_eq!(value(r3, "x-bc-protocol"), "");
    assert!(
        value(r1, "x-s-chain").len() > value(r1, "x-s-der").len(),
        "the chain holds the intermediate too"
    );
}

#[test]
fn fetches_rustls_cannot_provide_are_refused_with_the_reason() {
    let dir = TempDir::new("tls-srv-fetch-refused");
    for (fetch, why) in [
        (
            "ssl_bc_session_id",
            "rustls does not expose TLS session ids",
        ),
        (
            "ssl_bc_client_random",
            "rustls does not expose the handshake randoms",
        ),
        ("ssl_bc_npn", "rustls has no NPN"),
        (
            "ssl_fc_session_key",
            "rustls does not expose the session master key",
        ),
    ] {
        let cfg = format!(
            "{DEFAULTS}frontend fe\n    bind {}\n    default_backend be\nbackend be\n    http-response set-header x-v %[{fetch}]\n    server s1 127.0.0.1:1 ssl verify none\n",
            free_addr()
        );
        let path = write_config(&dir, &cfg);
        let out = run_bounded(
            Command::new(ringlb_testkit::process::bin_path("ringlb"))
                .args(["-c", "-f"])
                .arg(&path),
            T,
        )
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{fetch}: {err}");
        assert!(
            err.contains(&format!("fetch method '{fetch}'")) && err.contains(why),
            "{fetch}: {err}"
        );
    }
}

/// A TLS origin signed by a test CA and a syslog socket: what the log-line comparisons share.
struct LogRig {
    ca: TestCa,
    origin: SocketAddr,
    _origin: ChildGuard,
    syslog: UdpSocket,
}

impl LogRig {
    fn new(dir: &TempDir) -> LogRig {
        let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
        let site = ca.server("origin.example", &dir.join("origin.pem"));
        let origin = free_addr();
        let guard = tls_origin(dir.path(), origin, &site.pem);
        let syslog = UdpSocket::bind("127.0.0.1:0").unwrap();
        syslog
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        LogRig {
            ca,
            origin,
            _origin: guard,
            syslog,
        }
    }
}

/// The part of each syslog line of a served request (status 200) from `bc=` on, until `want`
/// lines came (or 10 s passed). Readiness probes' lines (400 on an h2 bind) are skipped.
fn log_lines(s: &UdpSocket, want: usize) -> Vec<String> {
    log_lines_ending(s, want, " 200")
}

/// Like [`log_lines`], for lines ending with `end`.
fn log_lines_ending(s: &UdpSocket, want: usize, suffix: &str) -> Vec<String> {
    let end = Instant::now() + T;
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while out.len() < want && Instant::now() < end {
        if let Ok(n) = s.recv(&mut b) {
            let l = String::from_utf8_lossy(&b[..n]).into_owned();
            if let Some(i) = l.find("bc=").filter(|_| l.trim_end().ends_with(suffix)) {
                out.push(l[i..].trim_end().to_owned());
            }
        }
    }
    out
}

#[test]
fn log_format_reads_the_server_connection_like_haproxy_on_http1_and_http2_fronts() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the comparison (it is also the origin)");
        return;
    }
    let dir = TempDir::new("tls-srv-fetch-log");
    let rig = LogRig::new(&dir);
    let (origin, syslog) = (rig.origin, &rig.syslog);
    let (h1, h2) = (free_addr(), free_addr());
    let cfg = format!(
        "global\n    nbthread 1\n    log {} local0\n{DEFAULTS}    log global\n\
         frontend h1\n    bind {h1}\n    log-format \"bc=%[ssl_bc] %[ssl_bc_protocol] cn=%[ssl_s_s_dn(cn)] alpn=%[ssl_bc_alpn] resumed=%[ssl_bc_is_resumed] %f %ST\"\n    default_backend tls\n\
         frontend h2\n    bind {h2} proto h2\n    log-format \"bc=%[ssl_bc] %[ssl_bc_protocol] cn=%[ssl_s_s_dn(cn)] alpn=%[ssl_bc_alpn] resumed=%[ssl_bc_is_resumed] %f %ST\"\n    default_backend tls\n\
         backend tls\n    http-reuse never\n    server s1 {origin} ssl verify required ca-file {} sni str(origin.example) alpn http/1.1\n",
        syslog.local_addr().unwrap(),
        rig.ca.cert.display(),
    );
    let path = write_config(&dir, &cfg);
    let mut seen = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = if which == "ringlb" {
            Ringlb::start(&path, &[h1, h2])
        } else {
            Haproxy::start(&path, &[h1, h2])
        };
        for _ in 0..2 {
            let out = curl(&["-s", "-o", "/dev/null", &format!("http://{h1}/")], T).unwrap();
            assert!(out.status.success());
        }
        let out = curl(
            &[
                "-s",
                "-o",
                "/dev/null",
                "--http2-prior-knowledge",
                &format!("http://{h2}/"),
            ],
            T,
        )
        .unwrap();
        assert!(out.status.success());
        let lines = log_lines(syslog, 3);
        eprintln!("{which}: {lines:#?}");
        seen.push(lines);
    }
    assert_eq!(seen[0], seen[1], "ringlb (left) vs haproxy (right)");
    assert_eq!(
        seen[0].first().map(String::as_str),
        Some("bc=1 TLSv1.3 cn=origin.example alpn=http/1.1 resumed=0 h1 200")
    );
    assert_eq!(seen[0].len(), 3);
}

/// TCP mode: `tcp-response content` rules and the `log-format` line read the TLS connection
/// to the server as in HTTP mode (haproxy agrees).
#[test]
fn tcp_mode_reads_the_server_connection_like_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the comparison (it is also the origin)");
        return;
    }
    let dir = TempDir::new("tls-srv-fetch-tcp");
    let rig = LogRig::new(&dir);
    let (origin, syslog) = (rig.origin, &rig.syslog);
    let front = free_addr();
    // The rule lets the response through only when the server connection is TLS 1.3.
    let cfg = format!(
        "global\n    nbthread 1\n    log {} local0\n{DEFAULTS}    log global\n\
         frontend tcpfe\n    mode tcp\n    bind {front}\n    log-format \"bc=%[ssl_bc] %[ssl_bc_protocol] cn=%[ssl_s_s_dn(cn)] alpn=%[ssl_bc_alpn] %f end\"\n    default_backend tls\n\
         backend tls\n    mode tcp\n    tcp-response inspect-delay 2s\n    tcp-response content reject unless {{ ssl_bc_protocol TLSv1.3 }}\n    server s1 {origin} ssl verify required ca-file {} sni str(origin.example) alpn http/1.1\n",
        syslog.local_addr().unwrap(),
        rig.ca.cert.display(),
    );
    let path = write_config(&dir, &cfg);
    let mut seen = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = if which == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            Haproxy::start(&path, &[front])
        };
        let out = curl(
            &["-s", "-w", " %{http_code}", &format!("http://{front}/")],
            T,
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok 200", "{which}");
        let lines = log_lines_ending(syslog, 1, "tcpfe end");
        eprintln!("{which}: {lines:#?}");
        seen.push(lines);
    }
    assert_eq!(seen[0], seen[1], "ringlb (left) vs haproxy (right)");
    assert_eq!(
        seen[0],
        ["bc=1 TLSv1.3 cn=origin.example alpn=http/1.1 tcpfe end"]
    );
}

/// The connection to the server is known from the connect on: a request the server never
/// answers (504) logs its `ssl_bc_*` facts, and so do requests on a shared HTTP/2 connection
/// to the server (`alpn h2`), as in haproxy.
#[test]
fn log_format_reads_the_server_connection_before_a_response_and_over_h2() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the comparison (it is also the origin)");
        return;
    }
    let dir = TempDir::new("tls-srv-fetch-log-h2");
    let rig = LogRig::new(&dir);
    let (origin, syslog) = (rig.origin, &rig.syslog);
    let front = free_addr();
    let server = format!(
        "server s1 {origin} ssl verify required ca-file {} sni str(origin.example)",
        rig.ca.cert.display()
    );
    let cfg = format!(
        "global\n    nbthread 1\n    log {} local0\n{DEFAULTS}    log global\n\
         frontend h1\n    bind {front}\n    log-format \"bc=%[ssl_bc] %[ssl_bc_protocol] cn=%[ssl_s_s_dn(cn)] alpn=%[ssl_bc_alpn] %f %ST\"\n\
             use_backend h2srv if {{ path_beg /h2 }}\n    default_backend slow\n\
         backend slow\n    timeout server 1s\n    {server} alpn http/1.1\n\
         backend h2srv\n    {server} alpn h2\n",
        syslog.local_addr().unwrap(),
    );
    let path = write_config(&dir, &cfg);
    let mut seen = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = if which == "ringlb" {
            Ringlb::start(&path, &[front])
        } else {
            Haproxy::start(&path, &[front])
        };
        let status = |p: &str| {
            let out = curl(
                &[
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://{front}{p}"),
                ],
                T,
            )
            .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(status("/slow"), "504", "{which}");
        let mut lines = log_lines_ending(syslog, 1, " 504");
        for _ in 0..2 {
            assert_eq!(status("/h2"), "200", "{which}");
        }
        lines.extend(log_lines(syslog, 2));
        eprintln!("{which}: {lines:#?}");
        seen.push(lines);
    }
    assert_eq!(seen[0], seen[1], "ringlb (left) vs haproxy (right)");
    assert_eq!(
        seen[0],
        [
            "bc=1 TLSv1.3 cn=origin.example alpn=http/1.1 h1 504",
            "bc=1 TLSv1.3 cn=origin.example alpn=h2 h1 200",
            "bc=1 TLSv1.3 cn=origin.example alpn=h2 h1 200",
        ]
    );
}
