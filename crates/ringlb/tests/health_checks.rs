//! Health and agent checks end to end (issue #5): the real `ringlb` binary, real origins that
//! fail and recover, small fake Redis / PostgreSQL / agent servers on loopback, and haproxy 2.6
//! as the reference for log lines and for which server serves each request.
//!
//! Timing assertions use the check intervals of the configs (200 ms) with one interval of
//! margin plus scheduling slack, as the issue allows (± one interval).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, wait_until, ChildGuard, Conn, Haproxy, Origin,
    OriginOptions, Ringlb, TempDir,
};

const INTER: Duration = Duration::from_millis(200);
/// Scheduler and process slack on a shared 2-core machine.
const SLACK: Duration = Duration::from_millis(250);
/// Longest wait for a log line.
const LOG_WAIT: Duration = Duration::from_secs(5);

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 500ms\n    timeout client 5s\n    timeout server 5s\n    timeout check 300ms\n";

fn start(dir: &TempDir, name: &str, text: &str, front: SocketAddr) -> ChildGuard {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    Ringlb::start(&path, &[front])
}

/// State-change lines of a proxy's stderr with the pid and check durations masked.
fn state_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("[WARNING]") || l.starts_with("[ALERT]"))
        .filter(|l| l.contains("Server ") || l.contains("has no server available"))
        .map(mask)
        .collect()
}

fn mask(line: &str) -> String {
    let level = line.split_whitespace().next().unwrap_or("");
    let text = line.split_once(") : ").map_or(line, |(_, t)| t);
    let mut out = format!("{level} ");
    let mut rest = text;
    while let Some(i) = rest.find("check duration: ") {
        let (head, tail) = rest.split_at(i + "check duration: ".len());
        out.push_str(head);
        out.push('N');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// The sorted state-change lines haproxy 2.6 logs for `cfg` (bound to a fresh address) once
/// every line in `wait_for` appeared and `settle` passed; `None` without haproxy.
fn haproxy_lines(
    dir: &TempDir,
    cfg: &dyn Fn(SocketAddr) -> String,
    wait_for: &[&str],
    settle: Duration,
) -> Option<Vec<String>> {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        eprintln!("haproxy not installed: no comparison");
        return None;
    }
    let front = free_addr();
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg(front)).unwrap();
    let h = Haproxy::start(&path, &[front]);
    for w in wait_for {
        wait_log(&h, w);
    }
    std::thread::sleep(settle);
    let mut lines = state_lines(&h.stderr());
    lines.sort();
    Some(lines)
}

/// Waits until the proxy logged a line containing `needle`; the time it was seen.
fn wait_log(p: &ChildGuard, needle: &str) -> Instant {
    let seen = wait_until(LOG_WAIT, || p.stderr().contains(needle));
    assert!(seen, "no log line with {needle:?}:\n{}", p.stderr());
    Instant::now()
}

/// The origin that answered a request on a new connection (`?` on errors).
fn who(front: SocketAddr) -> String {
    match http_get(front, "/", &[]) {
        Ok(r) if r.status == 200 => r.header("x-origin").unwrap_or("?").to_string(),
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("error {e}"),
    }
}

fn count(front: SocketAddr, n: usize) -> Vec<String> {
    (0..n).map(|_| who(front)).collect()
}

fn origin_with_flag(dir: &TempDir, name: &str) -> (Origin, PathBuf) {
    let flag = dir.join(&format!("{name}-unhealthy"));
    let o = Origin::start_with(OriginOptions {
        name: name.into(),
        unhealthy_file: Some(flag.clone()),
        verbose: false,
        ..OriginOptions::default()
    });
    (o, flag)
}

/// Requests on new connections in a loop (spreading over the shards), each with the time
/// its answer came; stopped by `stop`.
struct Load {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<(Instant, String)>>>,
}

impl Load {
    fn start(front: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let o = who(front);
                seen.push((Instant::now(), o));
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        });
        Load {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Vec<(Instant, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn failing_server_goes_down_within_inter_times_fall_and_gets_nothing_on_any_shard() {
    let dir = TempDir::new("hc-down");
    let (s1, flag) = origin_with_flag(&dir, "s1");
    let s2 = Origin::start("s2");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 2\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    option httpchk GET /health\n    server s1 {} check inter 200ms fall 3 rise 2\n    server s2 {} check inter 200ms fall 3 rise 2\n",
        s1.addr(),
        s2.addr()
    );
    let p = start(&dir, "down.cfg", &cfg, front);
    // Let a few checks pass: the servers leave their initial "one failure from DOWN" state.
    std::thread::sleep(INTER * 5);
    let before = count(front, 20);
    assert!(
        before.iter().any(|o| o == "s1") && before.iter().any(|o| o == "s2"),
        "{before:?}"
    );

    let load = Load::start(front);
    std::thread::sleep(Duration::from_millis(100));
    let failing_since = Instant::now();
    std::fs::write(&flag, b"down").unwrap();
    let logged = wait_log(&p, "Server be/s1 is DOWN");
    std::thread::sleep(Duration::from_millis(500));
    let seen = load.finish();

    let last_s1 = seen
        .iter()
        .filter(|(_, o)| o == "s1")
        .map(|(t, _)| *t)
        .max()
        .expect("s1 served requests before failing");
    let served_for = last_s1.saturating_duration_since(failing_since);
    eprintln!(
        "s1 served its last request {} ms after its health endpoint started failing ({} requests in all)",
        served_for.as_millis(),
        seen.len()
    );
    // fall 3: three failed checks, the first within one interval of the failure.
    assert!(
        served_for <= INTER * 4 + SLACK,
        "s1 still served {} ms after failing",
        served_for.as_millis()
    );
    assert!(
        served_for >= INTER * 2 - Duration::from_millis(50),
        "s1 went down after {} ms: sooner than 3 failed checks allow",
        served_for.as_millis()
    );
    // After the broadcast, no shard sends it anything.
    let after: Vec<&String> = seen
        .iter()
        .filter(|(t, _)| *t > logged + Duration::from_millis(50))
        .map(|(_, o)| o)
        .collect();
    assert!(
        after.len() >= 20,
        "too few requests after DOWN: {}",
        after.len()
    );
    assert!(after.iter().all(|o| *o == "s2"), "{after:?}");
    // The load runs on: the sessions still on s1 as it went down are 0 or 1 (counted as
    // haproxy counts them, compared in health_faults.rs), so the count is masked.
    let lines: Vec<String> = state_lines(&p.stderr())
        .iter()
        .map(|l| mask_sessions(l))
        .collect();
    assert_eq!(
        lines,
        vec!["[WARNING] Server be/s1 is DOWN, reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: Nms. 1 active and 0 backup servers left. N sessions active, 0 requeued, 0 remaining in queue."],
        "{}",
        p.stderr()
    );
}

/// `line` with the number before " sessions active" replaced by `N`.
fn mask_sessions(line: &str) -> String {
    let Some(at) = line.find(" sessions active") else {
        return line.to_string();
    };
    let digits = line[..at]
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .len();
    format!("{}N{}", &line[..digits], &line[at..])
}

#[test]
fn recovered_server_comes_back_within_inter_times_rise_and_backup_serves_only_when_all_are_down() {
    let dir = TempDir::new("hc-up");
    let (s1, flag1) = origin_with_flag(&dir, "s1");
    let (s2, flag2) = origin_with_flag(&dir, "s2");
    let b1 = Origin::start("b1");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 2\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    option httpchk GET /health\n    default-server check inter 200ms fall 2 rise 3\n    server s1 {}\n    server s2 {}\n    server b1 {} backup\n",
        s1.addr(),
        s2.addr(),
        b1.addr()
    );
    let p = start(&dir, "up.cfg", &cfg, front);
    std::thread::sleep(INTER * 3);
    let all_up = count(front, 20);
    assert!(
        !all_up.iter().any(|o| o == "b1"),
        "backup used while primaries are up: {all_up:?}"
    );

    std::fs::write(&flag1, b"down").unwrap();
    wait_log(&p, "Server be/s1 is DOWN");
    let one_down = count(front, 10);
    assert!(one_down.iter().all(|o| o == "s2"), "{one_down:?}");
    std::fs::write(&flag2, b"down").unwrap();
    wait_log(&p, "Server be/s2 is DOWN");
    let all_down = count(front, 10);
    assert!(all_down.iter().all(|o| o == "b1"), "{all_down:?}");

    let recovered_at = Instant::now();
    std::fs::remove_file(&flag1).unwrap();
    let mut back_after = None;
    while recovered_at.elapsed() < Duration::from_secs(5) {
        if who(front) == "s1" {
            back_after = Some(recovered_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let back_after = back_after.expect("s1 never came back");
    eprintln!(
        "s1 served again {} ms after recovering",
        back_after.as_millis()
    );
    // rise 3: three good checks, the first within one interval.
    assert!(
        back_after <= INTER * 4 + SLACK,
        "{} ms",
        back_after.as_millis()
    );
    assert!(
        back_after >= INTER * 2 - Duration::from_millis(50),
        "UP after {} ms: sooner than 3 good checks allow",
        back_after.as_millis()
    );
    let one_up = count(front, 10);
    assert!(
        one_up.iter().all(|o| o == "s1"),
        "backup still used: {one_up:?}"
    );
    assert_eq!(
        state_lines(&p.stderr()),
        vec![
            "[WARNING] Server be/s1 is DOWN, reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: Nms. 1 active and 1 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server be/s2 is DOWN, reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: Nms. 0 active and 1 backup servers left. Running on backup. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server be/s1 is UP, reason: Layer7 check passed, code: 200, check duration: Nms. 1 active and 1 backup servers online. 0 sessions requeued, 0 total in queue.",
        ]
    );
}

#[test]
fn httpchk_expect_rules_and_multi_step_sequences() {
    let dir = TempDir::new("hc-http");
    let o = Origin::start("s1");
    let a = o.addr();
    let cfg = |front: SocketAddr| {
        format!(
        "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend string_ok\n\
backend string_ok\n    option httpchk GET /\n    http-check expect string hello\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend string_bad\n    option httpchk GET /\n    http-check expect string nothere\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend status_bad\n    option httpchk GET /status/500\n    http-check expect status 200\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend multi\n    option httpchk\n    http-check connect\n    http-check send meth GET uri /health ver HTTP/1.1 hdr Host www.example.com\n    http-check expect status 200\n    http-check connect\n    http-check send meth GET uri /status/503 ver HTTP/1.1 hdr Host www.example.com\n    http-check expect status 200\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend nolb\n    option httpchk GET /status/404\n    http-check disable-on-404\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend redischk\n    option redis-check\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend smtpchk\n    option smtpchk\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend mysqlchk\n    option mysql-check\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend sslchk\n    option ssl-hello-chk\n    server s1 {a} check inter 200ms fall 1 rise 1\n\
backend multi_ok\n    option httpchk\n    http-check connect\n    http-check send meth GET uri /health ver HTTP/1.1 hdr Host www.example.com\n    http-check expect status 200\n    http-check connect\n    http-check send meth GET uri /status/204 ver HTTP/1.1\n    http-check expect rstatus ^2\n    server s1 {a} check inter 200ms fall 1 rise 1\n"
    )
    };
    let front = free_addr();
    let p = start(&dir, "http.cfg", &cfg(front), front);
    let downs = [
        "Server multi/s1 is DOWN",
        "Server status_bad/s1 is DOWN",
        "Server string_bad/s1 is DOWN",
        "Server nolb/s1 is stopping",
        "Server redischk/s1 is DOWN",
        "Server smtpchk/s1 is DOWN",
        "Server mysqlchk/s1 is DOWN",
        "Server sslchk/s1 is DOWN",
    ];
    for d in downs {
        wait_log(&p, d);
    }
    std::thread::sleep(INTER * 3);
    let mut lines = state_lines(&p.stderr());
    lines.sort();
    if let Some(want) = haproxy_lines(&dir, &cfg, &downs, INTER * 3) {
        assert_eq!(lines, want, "ringlb (left) vs haproxy (right)");
    }
    assert_eq!(
        lines,
        vec![
            "[ALERT] backend 'multi' has no server available!",
            "[ALERT] backend 'mysqlchk' has no server available!",
            "[ALERT] backend 'nolb' has no server available!",
            "[ALERT] backend 'redischk' has no server available!",
            "[ALERT] backend 'smtpchk' has no server available!",
            "[ALERT] backend 'sslchk' has no server available!",
            "[ALERT] backend 'status_bad' has no server available!",
            "[ALERT] backend 'string_bad' has no server available!",
            "[WARNING] Server multi/s1 is DOWN, reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server mysqlchk/s1 is DOWN, reason: Layer7 timeout, check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server nolb/s1 is stopping, reason: Layer7 check conditionally passed, code: 404, check duration: Nms. 0 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
            "[WARNING] Server redischk/s1 is DOWN, reason: Layer7 wrong status, code: 0, info: \"HTTP/1.1 400 Bad Request\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server smtpchk/s1 is DOWN, reason: Layer7 timeout, check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server sslchk/s1 is DOWN, reason: Layer6 invalid response, check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server status_bad/s1 is DOWN, reason: Layer7 wrong status, code: 500, info: \"Internal Server Error\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server string_bad/s1 is DOWN, reason: Layer7 invalid response, info: \"HTTP content check did not match\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
        ],
        "string_ok and multi_ok stay up; the canned checks fail against an HTTP server"
    );
    // The backend whose check passes still serves.
    assert_eq!(who(front), "s1");
}

/// A small TCP server on loopback answering each connection with `handler` in a thread;
/// stopped (and joined) on drop.
struct Fake {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Fake {
    fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handler = Arc::new(handler);
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let h = handler.clone();
                        std::thread::spawn(move || h(c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Fake {
            addr,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Reads one CRLF-terminated line (without the CRLF); `None` at EOF or timeout.
fn read_line(c: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match c.read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
    }
    Some(
        String::from_utf8_lossy(&line)
            .trim_end_matches('\r')
            .to_string(),
    )
}

/// A Redis speaking enough RESP for the guide's check: PING, INFO replication, QUIT.
fn fake_redis(role: &'static str) -> Fake {
    Fake::start(move |mut c| {
        while let Some(cmd) = read_line(&mut c) {
            let reply = match cmd.as_str() {
                "PING" => "+PONG\r\n".to_string(),
                "INFO replication" => {
                    let body = format!("# Replication\r\nrole:{role}\r\nconnected_slaves:0\r\n");
                    format!("${}\r\n{body}\r\n", body.len())
                }
                "QUIT" => {
                    let _ = c.write_all(b"+OK\r\n");
                    return;
                }
                _ => "-ERR unknown command\r\n".to_string(),
            };
            if c.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    })
}

#[test]
fn tcp_check_redis_role_master_sends_writes_to_the_master_only() {
    let dir = TempDir::new("hc-redis");
    let master = fake_redis("master");
    let replica = fake_redis("slave");
    // The guide's Redis check.
    let cfg = |front: SocketAddr| {
        format!(
        "global\n    nbthread 2\n{}frontend fe\n    bind {front}\n    default_backend redis\nbackend redis\n    option tcp-check\n    tcp-check connect\n    tcp-check send \"PING\\r\\n\"\n    tcp-check expect string +PONG\n    tcp-check send \"INFO replication\\r\\n\"\n    tcp-check expect string role:master\n    tcp-check send \"QUIT\\r\\n\"\n    tcp-check expect string +OK\n    server redis1 {} check inter 200ms fall 1 rise 1\n    server redis2 {} check inter 200ms fall 1 rise 1\n",
        DEFAULTS.replace("mode http", "mode tcp"),
        master.addr,
        replica.addr
    )
    };
    let front = free_addr();
    let p = start(&dir, "redis.cfg", &cfg(front), front);
    wait_log(&p, "Server redis/redis2 is DOWN");
    std::thread::sleep(INTER * 2);
    let lines = state_lines(&p.stderr());
    let down = ["Server redis/redis2 is DOWN"];
    if let Some(want) = haproxy_lines(&dir, &cfg, &down, INTER * 2) {
        assert_eq!(lines, want, "ringlb (left) vs haproxy (right)");
    }
    assert_eq!(
        lines,
        vec!["[WARNING] Server redis/redis2 is DOWN, reason: Layer7 timeout, info: \" at step 5 of tcp-check (expect string 'role:master')\", check duration: Nms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."],
        "the master stays up"
    );
    for _ in 0..8 {
        let mut c = TcpStream::connect(front).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(b"INFO replication\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&got).contains("connected_slaves") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&got).contains("role:master"));
    }
}

/// A PostgreSQL front door: answers a v3.0 startup message with AuthenticationOk (`R`), or
/// (`good = false`) with an ErrorResponse (`E`) and closes.
fn fake_pgsql(good: bool) -> Fake {
    Fake::start(move |mut c| {
        let mut head = [0u8; 8];
        if c.read_exact(&mut head).is_err() {
            return;
        }
        if good && head[4..8] == [0, 3, 0, 0] {
            let _ = c.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
            // Stay until the checker closes.
            let mut rest = [0u8; 64];
            while matches!(c.read(&mut rest), Ok(n) if n > 0) {}
        } else {
            let mut e = vec![b'E', 0, 0, 0, 0];
            e.extend_from_slice(b"SFATAL\0C08P01\0Minvalid startup packet\0\0");
            let len = (e.len() - 1) as u32;
            e[1..5].copy_from_slice(&len.to_be_bytes());
            let _ = c.write_all(&e);
        }
    })
}

#[test]
fn pgsql_checks_pass_against_a_server_that_speaks_the_protocol_and_fail_otherwise() {
    let dir = TempDir::new("hc-pg");
    let good = fake_pgsql(true);
    let bad = fake_pgsql(false);
    let tcp = DEFAULTS.replace("mode http", "mode tcp");
    // The guide's PostgreSQL check, and HAProxy's canned one.
    let cfg = |front: SocketAddr| {
        format!(
        "global\n    nbthread 1\n{tcp}frontend fe\n    bind {front}\n    default_backend pg\nbackend pg\n    option tcp-check\n    tcp-check connect\n    tcp-check send-binary 00000028 # packet length\n    tcp-check send-binary 00030000 # protocol version 3.0\n    tcp-check send-binary 7573657200 # \"user\\0\"\n    tcp-check send-binary 686170726f787900 # \"haproxy\\0\"\n    tcp-check send-binary 00 # end of parameters\n    tcp-check expect binary 52 # expect Authentication response\n    server pg1 {g} check inter 200ms fall 1 rise 1\n    server pg2 {b} check inter 200ms fall 1 rise 1\nbackend canned\n    option pgsql-check user haproxy\n    server pg1 {g} check inter 200ms fall 1 rise 1\n    server pg2 {b} check inter 200ms fall 1 rise 1\n",
        g = good.addr,
        b = bad.addr
    )
    };
    let front = free_addr();
    let p = start(&dir, "pg.cfg", &cfg(front), front);
    let downs = ["Server pg/pg2 is DOWN", "Server canned/pg2 is DOWN"];
    for d in downs {
        wait_log(&p, d);
    }
    std::thread::sleep(INTER * 2);
    let mut lines = state_lines(&p.stderr());
    lines.sort();
    if let Some(want) = haproxy_lines(&dir, &cfg, &downs, INTER * 2) {
        assert_eq!(lines, want, "ringlb (left) vs haproxy (right)");
    }
    assert_eq!(
        lines,
        vec![
            "[WARNING] Server canned/pg2 is DOWN, reason: Layer7 invalid response, info: \"FATAL\", check duration: Nms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server pg/pg2 is DOWN, reason: Layer7 invalid response, info: \"TCPCHK did not match content (binary) at step 7\", check duration: Nms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
        ],
        "pg1 stays up in both backends"
    );
}

/// An agent whose reply the test changes; it records what the checker sent first
/// (`agent-send`) and answers after a short wait.
fn fake_agent(reply: Arc<Mutex<String>>, received: Arc<Mutex<Vec<u8>>>) -> Fake {
    Fake::start(move |mut c| {
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = c.read(&mut buf) {
            *received.lock().unwrap() = buf[..n].to_vec();
        }
        let r = reply.lock().unwrap().clone();
        let _ = c.write_all(r.as_bytes());
    })
}

fn share_of(front: SocketAddr, n: usize, name: &str) -> usize {
    count(front, n).iter().filter(|o| *o == name).count()
}

/// The runtime socket of the proxy bound to `front` (each run of a differential test has its
/// own).
fn admin_sock(dir: &TempDir, front: SocketAddr) -> PathBuf {
    dir.join(&format!("admin-{}.sock", front.port()))
}

/// Waits until the proxy has no session open on any server (`scur` 0 in `show stat`). A DOWN
/// line counts the sessions still open on the server ("N sessions active"), and the proxy
/// closes a client's connection some time after the client read its answer: haproxy once said
/// "1 sessions active" under load for a request answered just before. Triggering the change
/// only once both proxies are idle keeps that count exact (0) in the comparison instead of
/// masking it.
fn wait_no_sessions(sock: &Path) {
    let mut last = None;
    let idle = wait_until(LOG_WAIT, || {
        let rows = ringlb_testkit::server_stats(sock, &["scur"]);
        let idle = rows.as_ref().is_ok_and(|r| r.values().all(|v| v[0] == "0"));
        last = Some(rows);
        idle
    });
    assert!(idle, "sessions still open on a server: {last:?}");
}

/// Walks an agent through `50%`, `drain`, `ready 100%`, `down`, `up maxconn:10`, checking the
/// traffic after each; returns the state-change lines.
fn agent_scenario(
    p: &ChildGuard,
    front: SocketAddr,
    sock: &Path,
    reply: &Mutex<String>,
) -> Vec<String> {
    let set = |r: &str| *reply.lock().unwrap() = r.to_string();
    set("up\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(share_of(front, 20, "s1"), 10, "equal weights");

    set("50%\n");
    std::thread::sleep(Duration::from_millis(400));
    let s1_share = share_of(front, 30, "s1");
    assert!(
        (9..=11).contains(&s1_share),
        "weight 5 vs 10: {s1_share}/30"
    );

    set("drain\n");
    wait_log(p, "Server be/s1 enters drain state");
    assert_eq!(share_of(front, 10, "s1"), 0, "drained");
    set("ready 100%\n");
    wait_log(p, "Server be/s1 is UP (leaving forced drain)");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(share_of(front, 20, "s1"), 10, "back to full weight");

    wait_no_sessions(sock);
    set("down # disk full\n");
    wait_log(p, "Server be/s1 is DOWN");
    assert_eq!(share_of(front, 10, "s1"), 0, "down");
    set("up maxconn:10\n");
    wait_log(p, "Server be/s1 is UP, reason");
    assert_eq!(share_of(front, 20, "s1"), 10, "up again");
    state_lines(&p.stderr())
}

#[test]
fn agent_replies_change_weight_and_state() {
    let dir = TempDir::new("hc-agent");
    let s1 = Origin::start("s1");
    let s2 = Origin::start("s2");
    let reply = Arc::new(Mutex::new("up\n".to_string()));
    let received = Arc::new(Mutex::new(Vec::new()));
    let agent = fake_agent(reply.clone(), received.clone());
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n    stats socket {} level admin\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {} weight 10 agent-check agent-port {} agent-inter 100ms agent-send \"hello\\n\"\n    server s2 {} weight 10\n",
            admin_sock(&dir, front).display(),
            s1.addr(),
            agent.addr.port(),
            s2.addr()
        )
    };
    let front = free_addr();
    let got = {
        let p = start(&dir, "agent.cfg", &cfg(front), front);
        agent_scenario(&p, front, &admin_sock(&dir, front), &reply)
    };
    assert_eq!(
        received.lock().unwrap().as_slice(),
        b"hello\n",
        "agent-send"
    );
    assert_eq!(
        got,
        vec![
            "[WARNING] Server be/s1 enters drain state. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
            "[WARNING] Server be/s1 is UP (leaving forced drain).",
            "[WARNING] Server be/s1 is DOWN, reason: Layer7 wrong status, code: 0, info: \"via agent : down (disk full)\", check duration: Nms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server be/s1 is UP, reason: Layer7 check passed, code: 0, info: \"via agent : up\", check duration: Nms. 2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
        ]
    );
    if haproxy_available() {
        received.lock().unwrap().clear();
        let hf = free_addr();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg(hf)).unwrap();
        let h = Haproxy::start(&path, &[hf]);
        let want = agent_scenario(&h, hf, &admin_sock(&dir, hf), &reply);
        assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
        assert_eq!(
            received.lock().unwrap().as_slice(),
            b"hello\n",
            "haproxy's agent-send"
        );
    }
}

/// Which server serves each of `n` requests on one connection.
fn sequence(front: SocketAddr, n: usize) -> Vec<String> {
    let mut c = Conn::connect(front).unwrap();
    c.set_timeout(Duration::from_secs(5)).unwrap();
    (0..n)
        .map(|_| {
            let r = c.request("GET", "/", &[], b"").unwrap();
            r.header("x-origin").unwrap_or("?").to_string()
        })
        .collect()
}

#[test]
fn same_servers_and_same_log_lines_as_haproxy_while_one_is_down() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        eprintln!("skipped: haproxy not installed");
        return;
    }
    let dir = TempDir::new("hc-diff");
    let s1 = Origin::start("s1");
    let mut s2 = Origin::start("s2");
    let s3 = Origin::start("s3");
    let b1 = Origin::start("b1");
    let down = s2.addr();
    s2.stop();
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    balance roundrobin\n    server s1 {} weight 3 check inter 100ms\n    server s2 {down} weight 2 check inter 100ms\n    server s3 {} weight 1 check inter 100ms\n    server b1 {} backup check inter 100ms\n    server d1 {down} check inter 100ms disabled\n",
            s1.addr(),
            s3.addr(),
            b1.addr()
        )
    };
    let run = |p: &ChildGuard, front: SocketAddr| {
        wait_log(p, "Server be/s2 is DOWN");
        std::thread::sleep(Duration::from_millis(300));
        (sequence(front, 12), state_lines(&p.stderr()))
    };
    let hf = free_addr();
    let hpath = dir.join("h.cfg");
    std::fs::write(&hpath, cfg(hf)).unwrap();
    let want = {
        let h = Haproxy::start(&hpath, &[hf]);
        run(&h, hf)
    };
    let rf = free_addr();
    let got = {
        let r = start(&dir, "r.cfg", &cfg(rf), rf);
        run(&r, rf)
    };
    assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
    assert!(!got.0.iter().any(|o| o == "s2" || o == "b1"), "{:?}", got.0);
}

/// What each check connection sent, with the time it was judged.
type Captures = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

#[test]
fn check_send_proxy_prefixes_checks_with_a_proxy_v1_line_and_downinter_paces_a_down_server() {
    let dir = TempDir::new("hc-proxy");
    let seen: Captures = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    // Records what each check connection sends, then answers nothing useful: the
    // `expect string +PONG` fails, so the server stays DOWN and is checked every `downinter`.
    let fake = Fake::start(move |mut c| {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"PING\r\n") {
                break;
            }
        }
        let _ = c.write_all(b"-ERR nope\r\n");
        log.lock().unwrap().push((Instant::now(), got));
    });
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 1\n{}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check expect string +PONG\n    server s1 {} check check-send-proxy inter 2s downinter 150ms fall 1 rise 1\n",
        DEFAULTS.replace("mode http", "mode tcp"),
        fake.addr
    );
    let p = start(&dir, "proxy.cfg", &cfg, front);
    wait_log(&p, "Server be/s1 is DOWN");
    assert!(wait_until(Duration::from_secs(3), || seen
        .lock()
        .unwrap()
        .len()
        >= 5));
    let seen = seen.lock().unwrap().clone();
    let first = String::from_utf8_lossy(&seen[0].1).to_string();
    let port = fake.addr.port();
    assert!(
        first.starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 ")
            && first.ends_with(&format!(" {port}\r\nPING\r\n")),
        "{first:?}"
    );
    // DOWN: checks every downinter (150 ms), not every inter (2 s).
    for w in seen.windows(2).skip(1) {
        let gap = w[1].0.duration_since(w[0].0);
        assert!(
            gap >= Duration::from_millis(100) && gap <= Duration::from_millis(150) + SLACK,
            "gap {} ms",
            gap.as_millis()
        );
    }
}

#[test]
fn slowstart_ramps_a_recovered_server_up_to_its_weight() {
    let dir = TempDir::new("hc-slowstart");
    let (s1, flag) = origin_with_flag(&dir, "s1");
    let s2 = Origin::start("s2");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    option httpchk GET /health\n    server s1 {} weight 10 check inter 100ms fall 1 rise 1 slowstart 2s\n    server s2 {} weight 10 check inter 100ms\n",
        s1.addr(),
        s2.addr()
    );
    let p = start(&dir, "slowstart.cfg", &cfg, front);
    std::fs::write(&flag, b"down").unwrap();
    wait_log(&p, "Server be/s1 is DOWN");
    std::fs::remove_file(&flag).unwrap();
    let up = wait_log(&p, "Server be/s1 is UP");
    // Early in the ramp (effective weight 1-3 of 10): a small share.
    let early = share_of(front, 20, "s1");
    let early_at = up.elapsed();
    std::thread::sleep(Duration::from_millis(2300).saturating_sub(up.elapsed()));
    let full = share_of(front, 20, "s1");
    eprintln!(
        "s1 share: {early}/20 {} ms after UP, {full}/20 after the 2 s ramp",
        early_at.as_millis()
    );
    assert!(
        early_at < Duration::from_millis(700) && early <= 6,
        "{early}/20 after {} ms",
        early_at.as_millis()
    );
    assert!((9..=11).contains(&full), "{full}/20 at full weight");
}

/// The `check duration: N ms` of the first DOWN line of `server`.
fn down_duration_ms(stderr: &str, server: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("Server {server} is DOWN")))
        .unwrap_or_else(|| panic!("no DOWN line for {server}:\n{stderr}"));
    let at = line.find("check duration: ").unwrap() + "check duration: ".len();
    line[at..].split("ms").next().unwrap().parse().unwrap()
}

#[test]
fn a_silent_server_times_out_as_haproxy_computes_the_check_deadline() {
    let dir = TempDir::new("hc-timeout");
    // Accepts and never answers.
    let silent = Fake::start(|mut c| {
        let mut buf = [0u8; 512];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    let a = silent.addr;
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    default_backend long_check\n\
backend long_check\n    timeout connect 200ms\n    timeout check 600ms\n    option httpchk GET /\n    server s1 {a} check inter 3s\n\
backend long_connect\n    timeout connect 600ms\n    timeout check 200ms\n    option httpchk GET /\n    server s1 {a} check inter 3s\n\
backend inter_only\n    timeout connect 200ms\n    option httpchk GET /\n    server s1 {a} check inter 700ms\n"
        )
    };
    let durations = |p: &ChildGuard| -> Vec<u64> {
        let names = ["long_check/s1", "long_connect/s1", "inter_only/s1"];
        for n in names {
            wait_log(p, &format!("Server {n} is DOWN, reason: Layer7 timeout"));
        }
        let err = p.stderr();
        names.iter().map(|n| down_duration_ms(&err, n)).collect()
    };
    let front = free_addr();
    let got = durations(&start(&dir, "timeout.cfg", &cfg(front), front));
    // `timeout check` after connecting; `inter` in all without it (haproxy 2.6, checks/exec.rs).
    for (g, want) in got.iter().zip([600u64, 200, 700]) {
        assert!((want..want + 250).contains(g), "{got:?}");
    }
    if haproxy_available() {
        let hf = free_addr();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg(hf)).unwrap();
        let want = durations(&Haproxy::start(&path, &[hf]));
        // Both measured on a shared machine: within scheduling slack of each other. haproxy
        // itself gives long_connect either 200 ms or (when it notices the connection late,
        // under load) its 600 ms connect deadline; ringlb always applies `timeout check`.
        let close = |g: u64, w: u64| g.abs_diff(w) <= 200;
        assert!(
            close(got[0], want[0]) && close(got[2], want[2]),
            "ringlb {got:?} vs haproxy {want:?}"
        );
        assert!(
            close(got[1], want[1]) || close(600, want[1]),
            "ringlb {got:?} vs haproxy {want:?}"
        );
    }
}

#[test]
fn refused_connections_are_reported_as_haproxy_does_for_each_kind_of_check() {
    let dir = TempDir::new("hc-refused");
    let dead = free_addr();
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n{}frontend fe\n    bind {front}\n    default_backend plain\n\
backend plain\n    server s1 {dead} check inter 200ms\n\
backend http\n    mode http\n    option httpchk GET /\n    server s1 {dead} check inter 200ms\n\
backend tcponly\n    option tcp-check\n    server s1 {dead} check inter 200ms\n\
backend tcpsend\n    option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check expect string +PONG\n    server s1 {dead} check inter 200ms\n\
backend explicit\n    option tcp-check\n    tcp-check comment first\n    tcp-check connect\n    tcp-check send PING\\r\\n\n    server s1 {dead} check inter 200ms\n\
backend canned\n    option redis-check\n    server s1 {dead} check inter 200ms\n",
            DEFAULTS.replace("mode http", "mode tcp")
        )
    };
    let names = ["plain", "http", "tcponly", "tcpsend", "explicit", "canned"];
    let downs: Vec<String> = names
        .iter()
        .map(|n| format!("Server {n}/s1 is DOWN"))
        .collect();
    let downs: Vec<&str> = downs.iter().map(String::as_str).collect();
    let front = free_addr();
    let p = start(&dir, "refused.cfg", &cfg(front), front);
    for d in &downs {
        wait_log(&p, d);
    }
    let mut lines = state_lines(&p.stderr());
    lines.sort();
    let info = |n: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("Server {n}/s1 is DOWN")))
            .and_then(|l| l.split("info: \"").nth(1))
            .and_then(|i| i.split('"').next())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(info("plain"), "Connection refused");
    assert_eq!(info("http"), "Connection refused");
    assert_eq!(info("canned"), "Connection refused");
    assert_eq!(
        info("tcpsend"),
        "Connection refused at initial connection step of tcp-check"
    );
    // haproxy counts the comment as step 1 and names the rule after it with it.
    assert_eq!(
        info("explicit"),
        "Connection refused at step 2 of tcp-check (connect) comment: 'first'"
    );
    if let Some(want) = haproxy_lines(&dir, &cfg, &downs, Duration::ZERO) {
        assert_eq!(lines, want, "ringlb (left) vs haproxy (right)");
    }
}

#[test]
fn a_tracking_server_follows_the_tracked_one_as_haproxy() {
    let dir = TempDir::new("hc-track");
    let (s1, flag) = origin_with_flag(&dir, "s1");
    let t1 = Origin::start("t1");
    let t2 = Origin::start("t2");
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 2\n    stats socket {} level admin\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend b2\nbackend b1\n    option httpchk GET /health\n    server s1 {} check inter 100ms fall 1 rise 1\nbackend b2\n    server t1 {} track b1/s1\n    server t2 {}\n",
            admin_sock(&dir, front).display(),
            s1.addr(),
            t1.addr(),
            t2.addr()
        )
    };
    let scenario = |p: &ChildGuard, front: SocketAddr| {
        std::thread::sleep(Duration::from_millis(300));
        let both = count(front, 10);
        assert!(both.iter().any(|o| o == "t1"), "{both:?}");
        wait_no_sessions(&admin_sock(&dir, front));
        std::fs::write(&flag, b"down").unwrap();
        wait_log(p, "Server b2/t1 is DOWN via b1/s1");
        let only_t2 = count(front, 10);
        assert!(only_t2.iter().all(|o| o == "t2"), "{only_t2:?}");
        std::fs::remove_file(&flag).unwrap();
        wait_log(p, "Server b2/t1 is UP via b1/s1");
        let mut lines = state_lines(&p.stderr());
        lines.sort();
        lines
    };
    let front = free_addr();
    let got = scenario(&start(&dir, "track.cfg", &cfg(front), front), front);
    assert_eq!(
        got,
        vec![
            "[ALERT] backend 'b1' has no server available!",
            "[WARNING] Server b1/s1 is DOWN, reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server b1/s1 is UP, reason: Layer7 check passed, code: 200, check duration: Nms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
            "[WARNING] Server b2/t1 is DOWN via b1/s1. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server b2/t1 is UP via b1/s1. 2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
        ]
    );
    if haproxy_available() {
        let hf = free_addr();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg(hf)).unwrap();
        let want = scenario(&Haproxy::start(&path, &[hf]), hf);
        assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
    }
}

#[test]
fn server_template_servers_are_checked_and_balanced_as_haproxy() {
    let dir = TempDir::new("hc-template");
    let o = Origin::start("o1");
    let dead = free_addr();
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server-template web 1-3 {dead} check inter 100ms\n    server-template api 2 {} check inter 100ms\n",
            o.addr()
        )
    };
    let scenario = |p: &ChildGuard, front: SocketAddr| {
        for n in 1..=3 {
            wait_log(p, &format!("Server be/web{n} is DOWN"));
        }
        let served = count(front, 6);
        assert!(served.iter().all(|s| s == "o1"), "{served:?}");
        let mut lines = state_lines(&p.stderr());
        lines.sort();
        lines
    };
    let front = free_addr();
    let got = scenario(&start(&dir, "template.cfg", &cfg(front), front), front);
    assert_eq!(got.len(), 3, "{got:?}");
    if haproxy_available() {
        let hf = free_addr();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg(hf)).unwrap();
        let want = scenario(&Haproxy::start(&path, &[hf]), hf);
        assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
    }
}

#[test]
fn port_addr_and_agent_addr_redirect_the_checks() {
    let dir = TempDir::new("hc-port");
    let o = Origin::start("o1");
    let dead = free_addr();
    let reply = Arc::new(Mutex::new("down\n".to_string()));
    let received = Arc::new(Mutex::new(Vec::new()));
    let agent = fake_agent(reply, received);
    let p = o.addr().port();
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend good\n\
backend good\n    server s1 {dead} check inter 100ms port {p} addr 127.0.0.1\n\
backend bad_port\n    server s1 {} check inter 100ms port {}\n\
backend bad_addr\n    server s1 {} check inter 100ms addr 127.0.0.2\n\
backend agent_addr\n    server s1 127.0.0.2:{} agent-check agent-addr 127.0.0.1 agent-port {} agent-inter 100ms\n",
            o.addr(),
            dead.port(),
            o.addr(),
            dead.port(),
            agent.addr.port()
        )
    };
    let downs = [
        "Server bad_port/s1 is DOWN",
        "Server bad_addr/s1 is DOWN",
        "Server agent_addr/s1 is DOWN",
    ];
    let front = free_addr();
    let r = start(&dir, "port.cfg", &cfg(front), front);
    for d in downs {
        wait_log(&r, d);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut lines = state_lines(&r.stderr());
    lines.sort();
    assert!(
        !lines.iter().any(|l| l.contains("good/s1")),
        "the check of good/s1 goes to the origin's port: {lines:?}"
    );
    // The agent is reached only through agent-addr (the server's own address is 127.0.0.2).
    assert!(lines.iter().any(|l| l.contains("agent_addr/s1 is DOWN, reason: Layer7 wrong status, code: 0, info: \"via agent : down\"")), "{lines:?}");
    if let Some(want) = haproxy_lines(&dir, &cfg, &downs, Duration::from_millis(300)) {
        assert_eq!(lines, want, "ringlb (left) vs haproxy (right)");
    }
}

/// An LDAP server answering the check's anonymous bind with `resultCode` `code` (a 14-byte
/// `LDAPMessage`: messageID 1, bindResponse, empty matchedDN and diagnosticMessage).
fn fake_ldap(code: u8) -> Fake {
    Fake::start(move |mut c| {
        let mut req = [0u8; 14];
        if c.read_exact(&mut req).is_err() || req[0] != 0x30 {
            return;
        }
        let reply = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, code, 0x04, 0x00, 0x04, 0x00,
        ];
        let _ = c.write_all(&reply);
        let _ = c.read(&mut req);
    })
}

/// `option ldap-check` (haproxy 2.6's LDAPv3 bind probe): a bind accepted keeps the server
/// UP; a refused one (`resultCode` 49) and a server that is no LDAP one go DOWN with
/// haproxy's words.
#[test]
fn ldap_check_binds_as_haproxy() {
    let dir = TempDir::new("hc-ldap");
    let good = fake_ldap(0);
    let refused = fake_ldap(49);
    let http = Origin::start("h");
    let (g, r, h) = (good.addr, refused.addr, http.addr());
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend ok\n\
backend ok\n    option ldap-check\n    server s1 {g} check inter 200ms fall 1 rise 1\n\
backend refused\n    option ldap-check\n    server s1 {r} check inter 200ms fall 1 rise 1\n\
backend nonldap\n    option ldap-check\n    server s1 {h} check inter 200ms fall 1 rise 1\n"
        )
    };
    let front = free_addr();
    let p = start(&dir, "ldap.cfg", &cfg(front), front);
    let downs = ["Server refused/s1 is DOWN", "Server nonldap/s1 is DOWN"];
    for d in downs {
        wait_log(&p, d);
    }
    std::thread::sleep(INTER * 3);
    let mut lines = state_lines(&p.stderr());
    lines.sort();
    if let Some(want) = haproxy_lines(&dir, &cfg, &downs, INTER * 3) {
        assert_eq!(lines, want, "ringlb (left) vs haproxy (right)");
    }
    assert_eq!(
        lines,
        vec![
            "[ALERT] backend 'nonldap' has no server available!",
            "[ALERT] backend 'refused' has no server available!",
            "[WARNING] Server nonldap/s1 is DOWN, reason: Layer7 invalid response, info: \"Not LDAPv3 protocol\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "[WARNING] Server refused/s1 is DOWN, reason: Layer7 wrong status, code: 49, info: \"See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
        ],
        "the server that accepts the bind stays up"
    );
}

/// An HTTP server recording each request head (and body) it receives, answering 200.
fn recording_http(seen: Arc<Mutex<Vec<String>>>) -> Fake {
    Fake::start(move |mut c| {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        while !data.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        // The body `hi` of the configured request comes with the head or just after.
        if data.ends_with(b"\r\n\r\n") {
            if let Ok(n) = c.read(&mut buf) {
                data.extend_from_slice(&buf[..n]);
            }
        }
        seen.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&data).into_owned());
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    })
}

/// `http-check send-state`: the `x-haproxy-server-state` header haproxy 2.6 sends (recorded
/// with `tests/health_checks.rs` against haproxy 2.6.12): state as the stats page shows it,
/// address, port, name, node, weight over the backend's usable weight; inserted after the
/// user's headers.
#[test]
fn send_state_header_matches_haproxy() {
    let run = |proxy: &str| -> Vec<String> {
        let dir = TempDir::new(&format!("hc-state-{proxy}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = recording_http(seen.clone());
        let front = free_addr();
        let text = format!(
            "global\n    node mynode\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\n\
backend be\n    option httpchk GET /h\n    http-check send-state\n    http-check send meth POST uri /x ver HTTP/1.1 hdr Host a body hi\n\
    server s1 {} check inter 200ms weight 3\n    server s2 127.0.0.1:9 weight 5\n    server s3 127.0.0.1:9 backup\n",
            rec.addr
        );
        let path = dir.join("p.cfg");
        std::fs::write(&path, &text).unwrap();
        let _p = if proxy == "haproxy" {
            Haproxy::start(&path, &[front])
        } else {
            Ringlb::start(&path, &[front])
        };
        assert!(wait_until(LOG_WAIT, || seen.lock().unwrap().len() >= 2));
        let port = rec.addr.port().to_string();
        let v = seen.lock().unwrap()[..2]
            .iter()
            .map(|r| r.replace(&port, "PORT"))
            .collect();
        v
    };
    let got = run("ringlb");
    assert_eq!(
        got,
        vec![
            "POST /x HTTP/1.1\r\nhost: a\r\nx-haproxy-server-state: UP 1/3; address=127.0.0.1; port=PORT; name=be/s1; node=mynode; weight=3/8; scur=0/0; qcur=0\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
            "POST /x HTTP/1.1\r\nhost: a\r\nx-haproxy-server-state: UP; address=127.0.0.1; port=PORT; name=be/s1; node=mynode; weight=3/8; scur=0/0; qcur=0\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
        ]
    );
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    assert_eq!(got, run("haproxy"), "ringlb (left) vs haproxy (right)");
}
