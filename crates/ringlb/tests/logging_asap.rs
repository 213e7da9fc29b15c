//! Logging options compared with haproxy 2.6 on the same traffic (syslog over UDP to
//! listeners in the test; dates, pids, ports and timers masked): `option logasap` (the line
//! goes out with the response head, `+` before the partial `%B` and `%Tt`),
//! `tune.http.logurilen` (the request line cut) and `option log-health-checks` (a line per
//! change of a check's status or health, at `notice`, before the state-change line).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, write_config, Conn, Haproxy, Origin, Ringlb, TempDir,
};

fn udp_listener() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Lines received until one contains `needle` (included), within `within`.
fn lines_until(s: &UdpSocket, needle: &str, within: Duration) -> Vec<String> {
    let end = Instant::now() + within;
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = s.recv(&mut b) {
            let l = String::from_utf8_lossy(&b[..n]).trim_end().to_string();
            let done = l.contains(needle);
            out.push(l);
            if done {
                return out;
            }
        }
    }
    panic!("no log line with {needle:?} within {within:?}; got {out:#?}");
}

fn haproxy_or_skip() -> bool {
    if haproxy_available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "haproxy is required in CI"
    );
    false
}

/// The syslog message after `tag[pid]: `, with the priority kept in front.
fn message(line: &str) -> String {
    let pri = line.split('>').next().unwrap_or("");
    let msg = line.split_once("]: ").map_or(line, |x| x.1);
    format!("{pri}> {msg}")
}

fn mask_duration(s: &str) -> String {
    match s.find("check duration: ") {
        Some(i) => {
            let rest = &s[i + 16..];
            let end = rest.find("ms").unwrap_or(0);
            format!("{}check duration: Nms{}", &s[..i], &rest[end + 2..])
        }
        None => s.to_string(),
    }
}

fn asap_cfg(front: SocketAddr, log: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "global\n    log {log} local0\n    tune.http.logurilen 20\ndefaults\n    mode http\n    log global\n    option httplog\n    option logasap\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {origin}\n"
    )
}

/// The words of an httplog line from the timers on: `T/T/T/T/T status bytes ...`.
fn from_timers(line: &str) -> Vec<String> {
    let w: Vec<&str> = line.split(' ').collect();
    let i = w.iter().position(|x| x.split('/').count() == 5).unwrap();
    w[i..].iter().map(|s| s.to_string()).collect()
}

#[test]
fn logasap_and_logurilen_match_haproxy() {
    if !haproxy_or_skip() {
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("log-asap");
    let (hsock, hlog) = udp_listener();
    let (rsock, rlog) = udp_listener();
    let (hf, rf) = (free_addr(), free_addr());
    let _h = Haproxy::start(
        &write_config(&dir, &asap_cfg(hf, hlog, origin.addr())),
        &[hf],
    );
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, asap_cfg(rf, rlog, origin.addr())).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let path = "/size/100000?abcdefghijklmnopqrstuvwxyz";
    let mut lines = Vec::new();
    for (front, sock) in [(hf, &hsock), (rf, &rsock)] {
        let mut c = Conn::connect(front).unwrap();
        c.set_timeout(Duration::from_secs(5)).unwrap();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        // The line is out once the head is: read the head only, leave the body unread.
        let head = c.read_head().unwrap();
        assert_eq!(head.status, 200);
        let got = lines_until(sock, "/size/", Duration::from_secs(5));
        lines.push(got.last().unwrap().clone());
        drop(c);
    }
    let (h, r) = (from_timers(&lines[0]), from_timers(&lines[1]));
    // `%Tt` and `%B` partial: `+` in front. ringlb's `%B` is the head's bytes; haproxy's is
    // what it holds of the response at that moment (the head, plus body bytes that came in
    // the same read when the machine is busy), so only its sign is compared.
    for w in [&h, &r] {
        let tt = w[0].rsplit('/').next().unwrap();
        assert!(tt.starts_with('+'), "Tt: {w:?}");
        assert!(w[2].starts_with('+'), "B: {w:?}");
        let b: i64 = w[2][1..].parse().unwrap();
        assert!(b > 0, "{w:?}");
    }
    let b: i64 = r[2][1..].parse().unwrap();
    assert!((40..400).contains(&b), "head bytes only: {r:?}");
    // Same status, termination state, queues and request line cut at 20 bytes.
    assert_eq!(h[1..2], r[1..2], "haproxy {h:?} vs ringlb {r:?}");
    assert_eq!(h[3..], r[3..], "haproxy {h:?} vs ringlb {r:?}");
    assert_eq!(h.last().unwrap(), "/size/100000?abc\"", "{h:?}");
}

#[test]
fn log_health_checks_lines_match_haproxy() {
    if !haproxy_or_skip() {
        return;
    }
    let dir = TempDir::new("log-hc");
    let (hsock, hlog) = udp_listener();
    let (rsock, rlog) = udp_listener();
    let (hf, rf, srv) = (free_addr(), free_addr(), free_addr());
    let cfg = |front: SocketAddr, log: SocketAddr| {
        format!(
            "global\n    log {log} local0\ndefaults\n    mode http\n    log global\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    option log-health-checks\n    server s1 {srv} check inter 150 fall 2 rise 2\n"
        )
    };
    let _h = Haproxy::start(&write_config(&dir, &cfg(hf, hlog)), &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf, rlog)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let t = Duration::from_secs(5);
    let mut seen = Vec::new();
    for sock in [&hsock, &rsock] {
        seen.push(lines_until(sock, "has no server available", t));
    }
    // The server comes up: checks pass from now on (the kernel completes the handshakes).
    let _listener = TcpListener::bind(srv).unwrap();
    for (i, sock) in [&hsock, &rsock].into_iter().enumerate() {
        seen[i].extend(lines_until(sock, "Server be/s1 is UP", t));
    }
    let pick = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| l.contains("be/s1") || l.contains("backend be "))
            .map(|l| mask_duration(&message(l)))
            .collect()
    };
    let (h, r) = (pick(&seen[0]), pick(&seen[1]));
    assert_eq!(r, h, "ringlb vs haproxy");
    assert_eq!(
        r[0],
        "<133> Health check for server be/s1 failed, reason: Layer4 connection problem, info: \"Connection refused\", check duration: Nms, status: 0/2 DOWN."
    );
    assert!(r.iter().any(|l| l.ends_with("status: 1/2 DOWN.")), "{r:#?}");
    assert!(r.iter().any(|l| l.ends_with("status: 2/2 UP.")), "{r:#?}");
}
