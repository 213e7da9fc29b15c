//! Per-side read timeouts in TCP mode and `option independent-streams`, through the real
//! binary and compared with haproxy 2.6 on the same config (`timeout client 1s`,
//! `timeout server 10s`): a silent client whose server sends five lines 300 ms apart then
//! waits. By default data sent to the client refreshes the client's read timeout, so the
//! server is told the client is gone (a FIN) one second after its last line; with
//! `option independent-streams` only the client's own data counts, so the FIN comes one second
//! after the start while the server's lines still reach the client. Both are logged `cD`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_required, wait_until, write_config, ChildGuard, Haproxy, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

/// A server that sends five lines 300 ms apart, then waits for the proxy's FIN; each
/// connection reports when that FIN came, counted from the accept.
fn start_server() -> (SocketAddr, mpsc::Receiver<Duration>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut reader = c.try_clone().unwrap();
                reader.set_read_timeout(Some(T)).unwrap();
                let fin = std::thread::spawn(move || {
                    let mut b = [0u8; 64];
                    while matches!(reader.read(&mut b), Ok(n) if n > 0) {}
                    start.elapsed()
                });
                for i in 0..5 {
                    if c.write_all(format!("line {i}\n").as_bytes()).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                let _ = tx.send(fin.join().unwrap());
            });
        }
    });
    (addr, rx)
}

struct Proxy {
    guard: ChildGuard,
    plain: SocketAddr,
    independent: SocketAddr,
}

fn start(haproxy: bool, server: SocketAddr) -> Proxy {
    let (plain, independent) = (free_addr(), free_addr());
    let cfg = format!(
        "global\n    nbthread 1\n    log stderr format raw local0\n\
defaults\n    mode tcp\n    log global\n    option tcplog\n    timeout connect 2s\n    timeout client 1s\n    timeout server 10s\n\
frontend plain\n    bind {plain}\n    default_backend b\n\
frontend independent\n    bind {independent}\n    option independent-streams\n    default_backend b\n\
backend b\n    server s1 {server}\n"
    );
    let dir = TempDir::new(if haproxy { "indep-haproxy" } else { "indep" });
    let path = write_config(&dir, &cfg);
    let binds = [plain, independent];
    let guard = if haproxy {
        Haproxy::start(&path, &binds)
    } else {
        Ringlb::start(&path, &binds)
    };
    Proxy {
        guard,
        plain,
        independent,
    }
}

/// A silent client reading until the proxy closes: the lines it received, and its address.
fn silent_client(front: SocketAddr) -> (usize, SocketAddr) {
    let mut s = TcpStream::connect(front).unwrap();
    let me = s.local_addr().unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    while let Ok(n) = s.read(&mut b) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&b[..n]);
    }
    (got.iter().filter(|&&c| c == b'\n').count(), me)
}

/// (lines the client got, when the server saw the FIN: "early" ≈ 1 s or "late" ≈ 2.2 s,
/// termination state) for the plain and the independent front.
fn observe(p: &Proxy, fins: &mpsc::Receiver<Duration>) -> Vec<(usize, &'static str, String)> {
    let mut out = Vec::new();
    for (front, name) in [(p.plain, "plain"), (p.independent, "independent")] {
        let (lines, me) = silent_client(front);
        let fin = fins.recv_timeout(T).unwrap();
        let when = if fin < Duration::from_millis(1600) {
            "early"
        } else {
            "late"
        };
        assert!(fin < Duration::from_secs(4), "{name}: FIN after {fin:?}");
        let mut term = String::new();
        let logged = wait_until(T, || {
            term = p
                .guard
                .stderr()
                .lines()
                .find(|l| l.starts_with(&format!("{me} ")) && l.contains(&format!(" {name} b/s1 ")))
                .and_then(|l| l.split(' ').nth(6).map(str::to_owned))
                .unwrap_or_default();
            !term.is_empty()
        });
        assert!(logged, "no log line for {name}: {}", p.guard.stderr());
        out.push((lines, when, term));
    }
    out
}

/// Forgets the sessions of the start-up probes (connections opened to see the proxy listen).
fn drain(fins: &mpsc::Receiver<Duration>) {
    while fins.recv_timeout(Duration::from_millis(1500)).is_ok() {}
}

#[test]
fn read_timeouts_are_per_side_and_independent_streams_stops_the_refresh() {
    let (server, fins) = start_server();
    let ours = start(false, server);
    drain(&fins);
    let got = observe(&ours, &fins);
    assert_eq!(
        got,
        vec![(5, "late", "cD".to_owned()), (5, "early", "cD".to_owned())]
    );
    if haproxy_required() {
        let theirs = start(true, server);
        drain(&fins);
        assert_eq!(got, observe(&theirs, &fins), "ringlb vs haproxy");
    }
}
