//! Log lines and exporter output compared with haproxy 2.6 through the real binaries: the
//! same config and the same traffic on both, the lines received on a UDP syslog listener in
//! the test, then dates, pids, client ports and timers masked before the byte comparison.
//! Covers `option tcplog`, the `option httplog` termination states `CD` and `sH`, and the
//! Prometheus exporter's `?scope=backend` filter.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, set_linger_zero, write_config, ChildGuard, Conn,
    Haproxy, Origin, Ringlb, TempDir,
};

/// Generous: CI runs debug binaries two tests at a time on 2 cores.
const T: Duration = Duration::from_secs(10);

fn udp_listener() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// The next line containing `needle` (readiness probes log lines of their own first).
fn recv_matching(s: &UdpSocket, needle: &str) -> String {
    let mut b = [0u8; 4096];
    for _ in 0..50 {
        let n = s.recv(&mut b).unwrap();
        let l = String::from_utf8_lossy(&b[..n]).into_owned();
        if l.contains(needle) {
            return l;
        }
    }
    panic!("no log line with {needle:?}");
}

/// Without haproxy there is nothing to compare with; CI must have it.
fn need_haproxy() -> bool {
    if haproxy_available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "haproxy is required in CI"
    );
    false
}

/// The line from the client address on, with what differs between two runs masked: the
/// client port, the accept date and the timers (`-1` kept: which phase never happened is
/// part of the comparison). `bytes_at` is the field after the timers holding the byte count
/// (tcplog: 1, httplog: 2): returned apart, as haproxy counts its internal form of HTTP.
fn mask(line: &str, bytes_at: usize) -> (String, i64) {
    let line = line.trim_end();
    let start = line.find("127.0.0.1:").unwrap_or_else(|| panic!("{line}"));
    let mut w: Vec<String> = line[start..].split(' ').map(str::to_string).collect();
    w[0] = "127.0.0.1:PORT".into();
    assert!(w[1].starts_with('[') && w[1].ends_with(']'), "{line}");
    w[1] = "[DATE]".into();
    // w[2] frontend, w[3] backend/server, w[4] timers.
    w[4] = w[4]
        .split('/')
        .map(|t| if t.starts_with('-') { t } else { "T" })
        .collect::<Vec<_>>()
        .join("/");
    let bytes = w[4 + bytes_at].parse().unwrap_or_else(|_| panic!("{line}"));
    w[4 + bytes_at] = "B".into();
    (w.join(" "), bytes)
}

fn start_both(
    dir: &TempDir,
    cfg: impl Fn(SocketAddr, SocketAddr) -> String,
) -> ([(SocketAddr, UdpSocket); 2], ChildGuard, ChildGuard) {
    let (hsock, hlog) = udp_listener();
    let (rsock, rlog) = udp_listener();
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = dir.join("haproxy.cfg");
    std::fs::write(&hpath, cfg(hf, hlog)).unwrap();
    let h = Haproxy::start(&hpath, &[hf]);
    let rpath = write_config(dir, &cfg(rf, rlog));
    let r = Ringlb::start(&rpath, &[rf]);
    ([(hf, hsock), (rf, rsock)], h, r)
}

#[test]
fn tcplog_line_matches_haproxy() {
    if !need_haproxy() {
        return;
    }
    let origin = Origin::start_echo_tcp("e");
    let dir = TempDir::new("log-states-tcp");
    let cfg = |front: SocketAddr, log: SocketAddr| {
        format!(
            "global\n    nbthread 1\n    log {log} local0\n    log-tag proxy\ndefaults\n    mode tcp\n    log global\n    option tcplog\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\nlisten app\n    bind {front}\n    server s1 {}\n",
            origin.addr()
        )
    };
    let (sides, _h, _r) = start_both(&dir, cfg);
    let mut lines = Vec::new();
    for (front, sock) in &sides {
        let mut c = TcpStream::connect(front).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        let port = c.local_addr().unwrap().port();
        drop(c);
        lines.push(recv_matching(sock, &format!("127.0.0.1:{port} ")));
    }
    let (h, r) = (&lines[0], &lines[1]);
    // `<134>Mon DD HH:MM:SS proxy[PID]: ip:port [date] app app/s1 Tw/Tc/Tt bytes -- conns queue`.
    assert!(r.starts_with("<134>") && r.contains(" proxy["), "{r}");
    let (hm, hb) = mask(h, 1);
    let (rm, rb) = mask(r, 1);
    assert_eq!(rm, hm, "ringlb {r:?} vs haproxy {h:?}");
    // TCP: no internal form, the bytes are exactly the bytes.
    assert_eq!((rb, hb), (5, 5), "ringlb {r:?} vs haproxy {h:?}");
}

/// The metric names (`# TYPE` lines and samples) of an exposition, without labels.
fn metric_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// Names the guide's alerts use that haproxy's built-in exporter lacks (they come from the
/// separate haproxy_exporter): ringlb exposes them beside haproxy's own.
const GUIDE_EXTRAS: [&str; 2] = ["haproxy_backend_up", "haproxy_backend_queue_current"];

/// `?scope=backend` returns backend metrics only, and the same haproxy_* names as haproxy's
/// exporter (ringlb adds its latency histograms and the guide's names).
#[test]
fn prometheus_scope_backend_names_match_haproxy() {
    if !need_haproxy() {
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("log-states-prom");
    let cfg = |front: SocketAddr, log: SocketAddr| {
        format!(
            "global\n    nbthread 1\n    log {log} local0\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\nfrontend fe\n    bind {front}\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n    default_backend be\nbackend be\n    server s1 {}\n",
            origin.addr()
        )
    };
    let (sides, _h, _r) = start_both(&dir, cfg);
    let mut names = Vec::new();
    for (front, _) in &sides {
        assert_eq!(http_get(*front, "/", &[]).unwrap().status, 200);
        let r = http_get(*front, "/metrics?scope=backend", &[]).unwrap();
        assert_eq!(r.status, 200);
        names.push(metric_names(&r.text()));
    }
    let (h, r) = (&names[0], &names[1]);
    assert!(h.len() > 20, "haproxy: {h:?}");
    let not_backend: Vec<_> = r
        .iter()
        .filter(|n| !n.starts_with("haproxy_backend_") && !n.starts_with("ringlb_backend_"))
        .collect();
    assert!(not_backend.is_empty(), "{not_backend:?}");
    let ours: BTreeSet<String> = r
        .iter()
        .filter(|n| n.starts_with("haproxy_") && !GUIDE_EXTRAS.contains(&n.as_str()))
        .cloned()
        .collect();
    let missing: Vec<_> = h.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(h).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
}

fn httplog_cfg(front: SocketAddr, log: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\n    log {log} local0\n    log-tag proxy\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\nfrontend fe\n    bind {front}\n    use_backend short if {{ path_beg /slow/ }}\n    default_backend be\nbackend be\n    server s1 {origin}\nbackend short\n    timeout server 300ms\n    server s1 {origin}\n"
    )
}

/// `CD`: the client resets the connection after the response headers, while the origin is
/// still holding back the body. `sH`: the server timeout (300ms) strikes before the origin's
/// headers, answered 504.
#[test]
fn httplog_termination_states_cd_and_sh_match_haproxy() {
    if !need_haproxy() {
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("log-states-http");
    let (sides, _h, _r) = start_both(&dir, |f, l| httplog_cfg(f, l, origin.addr()));
    let mut cd = Vec::new();
    let mut sh = Vec::new();
    for (front, sock) in &sides {
        let mut c = Conn::connect(*front).unwrap();
        c.send(b"GET /slowbody/3000 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(c.read_head().unwrap().status, 200);
        set_linger_zero(c.stream()).unwrap();
        drop(c);
        cd.push(recv_matching(sock, "/slowbody/3000"));
        assert_eq!(
            http_get(*front, "/slow/5000", &[("Connection", "close")])
                .unwrap()
                .status,
            504
        );
        sh.push(recv_matching(sock, "/slow/5000"));
    }
    for (state, lines) in [("CD--", &cd), ("sH--", &sh)] {
        let (h, r) = (&lines[0], &lines[1]);
        assert!(h.contains(&format!(" {state} ")), "haproxy: {h}");
        let (hm, hb) = mask(h, 2);
        let (rm, rb) = mask(r, 2);
        assert_eq!(rm, hm, "ringlb {r:?} vs haproxy {h:?}");
        // Both count the internal (HTX) form of what they received (`ringlb_http1::htx`).
        assert_eq!(rb, hb, "bytes: ringlb {r:?} vs haproxy {h:?}");
    }
}
