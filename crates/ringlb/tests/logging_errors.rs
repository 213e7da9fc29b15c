//! Error logging, structured data and request ids through the real binary to a UDP syslog
//! listener, compared with haproxy 2.6's lines for the same config and traffic:
//! `option log-separate-errors` (5xx and aborted transactions at `err`), `log-format-sd`
//! (RFC5424 structured data), `unique-id-format` / `unique-id-header` / `%ID`, and the
//! connection-error line of a failed TLS handshake (haproxy's fixed line, or
//! `error-log-format`, with `option dontlognull`).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, ChildGuard, Haproxy, Origin, Ringlb, TempDir,
};

const PEM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/fixtures/tls/server.pem"
);

struct Fronts {
    /// `option log-separate-errors`, unique ids, the fixed connection-error line.
    http: SocketAddr,
    tls: SocketAddr,
    /// `error-log-format` and `option dontlognull`, at `info`.
    tls2: SocketAddr,
}

fn config(f: &Fronts, log: SocketAddr, origin: SocketAddr, dead: SocketAddr) -> String {
    format!(
        r#"global
    log {log} format rfc5424 local0
    log-tag proxy
defaults
    mode http
    log global
    retries 0
    timeout connect 1s
    timeout client 2s
    timeout server 2s
    log-format-sd [exampleSDID@1234\ status=\"%ST\"\ fe=\"%f\"]
frontend fe
    bind {http} name plain
    bind {tls} ssl crt {PEM}
    option log-separate-errors
    unique-id-format %{{+X}}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    unique-id-header X-Unique-ID
    log-format "%ci %ID %ST %ts %b"
    use_backend dead if {{ path_beg /dead }}
    default_backend be
frontend fe2
    bind {tls2} ssl crt {PEM}
    option dontlognull
    error-log-format "E %ci %ft %ST %ID %ts"
    default_backend be
backend be
    server s1 {origin}
backend dead
    server s2 {dead}
"#,
        http = f.http,
        tls = f.tls,
        tls2 = f.tls2,
    )
}

/// Lines received until `n` arrived or `wait` passed.
fn collect_within(s: &UdpSocket, n: usize, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while out.len() < n && Instant::now() < deadline {
        if let Ok(k) = s.recv(&mut b) {
            out.push(String::from_utf8_lossy(&b[..k]).into_owned());
        }
    }
    out
}

fn collect(s: &UdpSocket, n: usize) -> Vec<String> {
    collect_within(s, n, Duration::from_secs(5))
}

/// Sends the traffic and returns (the ids the origin received, the log lines in order).
fn run(f: &Fronts, log: &UdpSocket) -> (Vec<String>, Vec<String>) {
    // Drain what the readiness probes logged.
    std::thread::sleep(Duration::from_millis(300));
    let mut b = [0u8; 4096];
    log.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while log.recv(&mut b).is_ok() {}
    log.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut ids = Vec::new();
    let r = http_get(f.http, "/echo", &[("Connection", "close")]).unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    let id = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("header: x-unique-id:")
                .map(|v| v.trim().to_ascii_uppercase())
        })
        .unwrap_or_else(|| panic!("no x-unique-id sent to the server: {text}"));
    ids.push(id);
    let mut lines = collect(log, 1);
    let r = http_get(f.http, "/dead", &[("Connection", "close")]).unwrap();
    assert_eq!(r.status, 503);
    lines.extend(collect(log, 1));
    // Not TLS on a TLS bind: a handshake failure; then a connection closed without a byte.
    for front in [f.tls, f.tls2] {
        let mut c = TcpStream::connect(front).unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(c);
        lines.extend(collect(log, 1));
        drop(TcpStream::connect(front).unwrap());
        // `fe2` has dontlognull: nothing is expected there, so the wait is short.
        let wait = if front == f.tls2 { 700 } else { 5000 };
        lines.extend(collect_within(log, 1, Duration::from_millis(wait)));
    }
    (ids, lines)
}

/// The `%ID` of a traffic line: the word after the client address.
fn logged_id(line: &str) -> String {
    let w: Vec<&str> = line.split(' ').collect();
    let i = w.iter().position(|x| *x == "127.0.0.1").unwrap();
    w[i + 1].to_string()
}

/// Masks the syslog time and pid, the client port, the accept date and the ids.
fn mask(line: &str) -> String {
    let mut w: Vec<String> = line.trim_end().split(' ').map(str::to_string).collect();
    if w.len() > 4 {
        w[1] = "TIME".into(); // `<PRI>1 TIME HOST TAG PID ...`
        w[4] = "PID".into();
    }
    if let Some(i) = w.iter().position(|x| x == "127.0.0.1") {
        if w.get(i + 1).is_some_and(|x| x.contains('_')) {
            w[i + 1] = "ID".into();
        }
    }
    for x in &mut w {
        if let Some(p) = x.strip_prefix("127.0.0.1:") {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                *x = "127.0.0.1:PORT".into();
            }
        }
        if x.starts_with('[') && x.ends_with(']') && x.contains('/') {
            *x = "[DATE]".into();
        }
    }
    w.join(" ")
}

/// `%{+X}o %ci:%cp_%fi:%fp_%Ts_%rt:%pid`: hex client address, frontend address, time,
/// request counter and pid.
fn check_id_shape(id: &str, front: SocketAddr) {
    let fp = format!("{:04X}", front.port());
    let parts: Vec<&str> = id.split(['_', ':']).collect();
    assert_eq!(parts.len(), 7, "{id}");
    assert_eq!(parts[0], "7F000001", "{id}");
    assert_eq!(parts[2], "7F000001", "{id}");
    assert_eq!(parts[3], fp, "{id}");
    for p in &parts {
        assert!(
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()),
            "{id}"
        );
    }
}

fn start(cfg: &str, dir: &TempDir, name: &str, binds: &[SocketAddr], haproxy: bool) -> ChildGuard {
    let path = dir.join(name);
    std::fs::write(&path, cfg).unwrap();
    if haproxy {
        Haproxy::start(&path, binds)
    } else {
        Ringlb::start(&path, binds)
    }
}

fn scenario(haproxy: bool, origin: &Origin, dir: &TempDir) -> (Fronts, Vec<String>, Vec<String>) {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    let f = Fronts {
        http: free_addr(),
        tls: free_addr(),
        tls2: free_addr(),
    };
    let cfg = config(&f, log.local_addr().unwrap(), origin.addr(), free_addr());
    let name = if haproxy { "haproxy.cfg" } else { "ringlb.cfg" };
    let _p = start(&cfg, dir, name, &[f.http, f.tls, f.tls2], haproxy);
    let (ids, lines) = run(&f, &log);
    (f, ids, lines)
}

/// Checks one run's lines against the expected (masked) lines and the ids.
fn check(name: &str, f: &Fronts, ids: &[String], lines: &[String]) {
    let want: Vec<String> = vec![
        // 200: info, the structured data, the id the server received.
        "<134>1 TIME - proxy PID - [exampleSDID@1234 status=\"200\" fe=\"fe\"] 127.0.0.1 ID 200 -- be".into(),
        // 503 (connection refused, no retry): err under log-separate-errors.
        "<131>1 TIME - proxy PID - [exampleSDID@1234 status=\"503\" fe=\"fe\"] 127.0.0.1 ID 503 SC dead".into(),
        // TLS failures on `fe`: haproxy's fixed line, no structured data, at err; the
        // unnamed listener is named by its number.
        "<131>1 TIME - proxy PID - - 127.0.0.1:PORT [DATE] fe/2: SSL handshake failure".into(),
        "<131>1 TIME - proxy PID - - 127.0.0.1:PORT [DATE] fe/2: Connection closed during SSL handshake".into(),
        // `fe2`: error-log-format (with the structured data) at info; dontlognull drops
        // the empty connection.
        "<134>1 TIME - proxy PID - [exampleSDID@1234 status=\"0\" fe=\"fe2\"] E 127.0.0.1 fe2~ 0 - PR".into(),
    ];
    let got: Vec<String> = lines.iter().map(|l| mask(l)).collect();
    assert_eq!(got, want, "{name} lines: {lines:#?}");
    // `%ID` is the id sent to the server in `unique-id-header`.
    assert_eq!(logged_id(&lines[0]), ids[0], "{name}: {lines:#?}");
    check_id_shape(&ids[0], f.http);
    check_id_shape(&logged_id(&lines[1]), f.http);
}

#[test]
fn error_levels_structured_data_and_unique_ids_match_haproxy() {
    let origin = Origin::start("o");
    let dir = TempDir::new("log-errors");
    let (f, ids, lines) = scenario(false, &origin, &dir);
    check("ringlb", &f, &ids, &lines);
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    // The same expectations hold for haproxy 2.6 (the oracle of the lines above).
    let (f, ids, lines) = scenario(true, &origin, &dir);
    check("haproxy", &f, &ids, &lines);
}

/// `option dontlog-normal`: a 200 is not logged, a 503 is; the frontend's own `log-tag`
/// names the line (same for haproxy).
#[test]
fn dontlog_normal_logs_only_failures_under_the_proxy_log_tag() {
    let origin = Origin::start("o");
    let dir = TempDir::new("log-normal");
    let mut runs = vec![false];
    if haproxy_available() {
        runs.push(true);
    }
    for haproxy in runs {
        let log = UdpSocket::bind("127.0.0.1:0").unwrap();
        let front = free_addr();
        let cfg = format!(
            "global\n    log {} local0\ndefaults\n    mode http\n    log global\n    retries 0\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nfrontend fe\n    bind {front}\n    log-tag web\n    option dontlog-normal\n    log-format \"%ST %HU %s\"\n    use_backend dead if {{ path_beg /dead }}\n    default_backend be\nbackend be\n    server s1 {}\nbackend dead\n    server s2 {}\n",
            log.local_addr().unwrap(),
            origin.addr(),
            free_addr()
        );
        let name = if haproxy { "h.cfg" } else { "r.cfg" };
        let _p = start(&cfg, &dir, name, &[front], haproxy);
        log.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut b = [0u8; 512];
        while log.recv(&mut b).is_ok() {}
        log.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        for (path, status) in [("/ok", 200), ("/dead", 503), ("/ok2", 200)] {
            let r = http_get(front, path, &[("Connection", "close")]).unwrap();
            assert_eq!(r.status, status);
        }
        let lines = collect_within(&log, 2, Duration::from_secs(2));
        let msgs: Vec<&str> = lines
            .iter()
            .map(|l| l.trim_end().rsplit(": ").next().unwrap())
            .collect();
        let who = if haproxy { "haproxy" } else { "ringlb" };
        // `%s`: the server a refused connection went to.
        assert_eq!(msgs, ["503 /dead s2"], "{who}: {lines:?}");
        assert!(lines[0].contains(" web["), "{who}: {lines:?}");
    }
}

/// Lines that cannot be sent (here: no syslog daemon behind the socket) are dropped, never
/// queued without bound, and counted in `show info` (`DroppedLogs`), merged over the shards.
#[test]
fn lines_that_cannot_be_sent_are_counted_as_dropped() {
    use std::io::Read;
    let origin = Origin::start("o");
    let dir = TempDir::new("log-dropped");
    let front = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {}\n    log {}/no-such-daemon.sock local0\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {}\n",
        sock.display(),
        dir.path().display(),
        origin.addr()
    );
    let _p = start(&cfg, &dir, "r.cfg", &[front], false);
    // The runtime socket may appear after the listeners (the control shard makes it).
    assert!(ringlb_testkit::wait_until(Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    }));
    let dropped = || -> u64 {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"show info\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.lines()
            .find_map(|l| l.strip_prefix("DroppedLogs: "))
            .unwrap_or_else(|| panic!("no DroppedLogs in {out}"))
            .trim()
            .parse()
            .unwrap()
    };
    let before = dropped();
    for _ in 0..10 {
        let r = http_get(front, "/", &[("Connection", "close")]).unwrap();
        assert_eq!(r.status, 200);
    }
    assert!(
        ringlb_testkit::wait_until(Duration::from_secs(5), || dropped() >= before + 10),
        "DroppedLogs {} (before {before})",
        dropped()
    );
}

/// `option httpslog`: haproxy's httplog plus the TLS facts of the front connection, for a
/// plain and a TLS request (SNI, protocol, cipher), compared with haproxy's lines.
#[test]
fn httpslog_matches_haproxy() {
    let dir = TempDir::new("log-https");
    let mut runs = vec![false];
    if haproxy_available() {
        runs.push(true);
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
    }
    let mut results = Vec::new();
    for haproxy in runs {
        let log = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (plain, tls) = (free_addr(), free_addr());
        let cfg = format!(
            "global\n    log {} local0\ndefaults\n    mode http\n    log global\n    option httpslog\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nfrontend fe\n    bind {plain}\n    bind {tls} ssl crt {PEM}\n    http-request return status 200\n",
            log.local_addr().unwrap()
        );
        let name = if haproxy { "h.cfg" } else { "r.cfg" };
        let _p = start(&cfg, &dir, name, &[plain, tls], haproxy);
        log.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut b = [0u8; 2048];
        while log.recv(&mut b).is_ok() {}
        log.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let r = http_get(plain, "/x", &[("Connection", "close")]).unwrap();
        assert_eq!(r.status, 200);
        let port = tls.port();
        let out = ringlb_testkit::curl(
            &[
                "-k",
                "--tlsv1.3",
                "--resolve",
                &format!("site.example:{port}:127.0.0.1"),
                &format!("https://site.example:{port}/y"),
            ],
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        let lines = collect_within(&log, 2, Duration::from_secs(3));
        // After the syslog header; the client address, dates, timers and byte counts masked.
        let masked: Vec<String> = lines
            .iter()
            .map(|l| {
                let msg = l.trim_end().split_once("]: ").unwrap().1;
                let mut w: Vec<&str> = msg.split(' ').collect();
                for i in [0, 1, 4, 6] {
                    w[i] = "X";
                }
                w.join(" ")
            })
            .collect();
        results.push(masked);
    }
    let want = [
        "X X fe fe/<NOSRV> X 200 X - - LR-- 1/1/0/0/0 0/0 \"GET /x HTTP/1.1\" 0/-/-/-/0 -/-/-",
        "X X fe~ fe/<NOSRV> X 200 X - - LR-- 1/1/0/0/0 0/0 \"GET /y HTTP/1.1\" 0/0000000000000000/0/0/0 site.example/TLSv1.3/TLS_AES_256_GCM_SHA384",
    ];
    assert_eq!(results[0], want, "ringlb");
    if let Some(h) = results.get(1) {
        assert_eq!(h, &want, "haproxy");
    }
}

/// HTTP/2 streams (and, for comparison, HTTP/1 requests) are logged as haproxy logs them: the absolute URI and `HTTP/2.0` in the
/// request line, `LR` for a rule's reply, `SC` for a refused connection, header captures.
#[test]
fn http2_streams_are_logged_as_haproxy() {
    let dir = TempDir::new("log-h2");
    let mut runs = vec![false];
    if haproxy_available() {
        runs.push(true);
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
    }
    let mut results = Vec::new();
    for haproxy in runs {
        let log = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (front, front1) = (free_addr(), free_addr());
        let cfg = format!(
            "global\n    log {} local0\ndefaults\n    mode http\n    log global\n    option httplog\n    retries 0\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nfrontend fe\n    bind {front} proto h2\n    bind {front1}\n    capture request header User-Agent len 4\n    capture response header Content-Type len 20\n    http-request return status 200 if {{ path /r }}\n    default_backend be\nbackend be\n    server s1 {}\n",
            log.local_addr().unwrap(),
            free_addr()
        );
        let name = if haproxy { "h.cfg" } else { "r.cfg" };
        let _p = start(&cfg, &dir, name, &[front, front1], haproxy);
        log.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut b = [0u8; 2048];
        while log.recv(&mut b).is_ok() {}
        log.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut lines = Vec::new();
        for (h2, path, status) in [
            (true, "/r?q=1", "200"),
            (true, "/x", "503"),
            (false, "/r?q=1", "200"),
            (false, "/x", "503"),
        ] {
            let (proto, addr) = if h2 {
                ("--http2-prior-knowledge", front)
            } else {
                ("--http1.1", front1)
            };
            let out = ringlb_testkit::curl(
                &[
                    proto,
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://{addr}{path}"),
                ],
                Duration::from_secs(5),
            )
            .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), status);
            lines.extend(collect_within(&log, 1, Duration::from_secs(3)));
        }
        let masked: Vec<String> = lines
            .iter()
            .map(|l| {
                let msg = l.trim_end().split_once("]: ").unwrap().1;
                let mut w: Vec<String> = msg.split(' ').map(str::to_string).collect();
                for i in [0, 1, 4, 6] {
                    w[i] = "X".into();
                }
                w.join(" ").replace(&front.port().to_string(), "PORT")
            })
            .collect();
        results.push(masked);
    }
    let want = [
        "X X fe fe/<NOSRV> X 200 X - - LR-- 1/1/0/0/0 0/0 {curl} {} \"GET http://127.0.0.1:PORT/r?q=1 HTTP/2.0\"",
        "X X fe be/s1 X 503 X - - SC-- 1/1/0/0/0 0/0 {curl} {} \"GET http://127.0.0.1:PORT/x HTTP/2.0\"",
        // The same requests over HTTP/1 (the proxy's own replies capture nothing: `{}`).
        "X X fe fe/<NOSRV> X 200 X - - LR-- 1/1/0/0/0 0/0 {curl} {} \"GET /r?q=1 HTTP/1.1\"",
        "X X fe be/s1 X 503 X - - SC-- 1/1/0/0/0 0/0 {curl} {} \"GET /x HTTP/1.1\"",
    ];
    assert_eq!(results[0], want, "ringlb");
    if let Some(h) = results.get(1) {
        assert_eq!(h, &want, "haproxy");
    }
}

/// HTTP/2 streams answered by a server feed the latency histograms (the exporter's
/// `ringlb_backend_total_time_seconds_count`), as HTTP/1 requests do.
#[test]
fn http2_streams_feed_the_latency_histograms() {
    let origin = Origin::start("o");
    let dir = TempDir::new("h2-hist");
    let (front, metrics) = (free_addr(), free_addr());
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 2s\n    timeout server 2s\nfrontend fe\n    bind {front} proto h2\n    default_backend be\nbackend be\n    server s1 {}\nfrontend prom\n    bind {metrics}\n    http-request use-service prometheus-exporter\n",
        origin.addr()
    );
    let _p = start(&cfg, &dir, "r.cfg", &[front, metrics], false);
    let count = || -> u64 {
        let r = http_get(metrics, "/metrics", &[("Connection", "close")]).unwrap();
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix("ringlb_backend_total_time_seconds_count{proxy=\"be\"} "))
            .unwrap_or_else(|| panic!("no be histogram"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(count(), 0);
    for _ in 0..3 {
        let out = ringlb_testkit::curl(
            &[
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{front}/"),
            ],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    }
    assert!(
        ringlb_testkit::wait_until(Duration::from_secs(5), || count() == 3),
        "count {}",
        count()
    );
}
