//! `option http-ignore-probes` against haproxy 2.6: a connection that sends nothing and times
//! out gets no 408, and neither it nor one that closes at once is logged; without the option
//! both are answered/logged. Same config and traffic under both programs, UDP syslog listener.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use ringlb_testkit::{free_addr, haproxy_available, write_config, Haproxy, Ringlb, TempDir};

fn config(log: SocketAddr, probes: SocketAddr, plain: SocketAddr) -> String {
    format!(
        "global\n    log {log} local0\ndefaults\n    mode http\n    log global\n    option httplog\n    \
         timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout http-request 300ms\n\
         frontend probes\n    bind {probes}\n    option http-ignore-probes\n    default_backend be\n\
         frontend plain\n    bind {plain}\n    default_backend be\n\
         backend be\n    server s1 127.0.0.1:9\n"
    )
}

/// Connects, sends nothing, returns what arrives before the proxy closes.
fn silent(front: SocketAddr) -> String {
    let mut s = TcpStream::connect(front).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Log lines until `wait` passes, each reduced to its frontend and status words.
fn lines(log: &UdpSocket, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(k) = log.recv(&mut b) {
            let l = String::from_utf8_lossy(&b[..k]).into_owned();
            let words: Vec<&str> = l.split_whitespace().collect();
            // `... [date] frontend backend/server timers status bytes ...`
            let fe = words.iter().position(|w| *w == "probes" || *w == "plain");
            out.push(fe.map_or(l.clone(), |i| {
                format!("{} {}", words[i], words.get(i + 3).unwrap_or(&""))
            }));
        }
    }
    out.sort();
    out
}

fn observe(dir: &TempDir, haproxy: bool) -> (String, String, Vec<String>) {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (probes, plain) = (free_addr(), free_addr());
    let text = config(log.local_addr().unwrap(), probes, plain);
    let cfg = write_config(dir, &text);
    let guard = if haproxy {
        Haproxy::start(&cfg, &[probes, plain])
    } else {
        Ringlb::start(&cfg, &[probes, plain])
    };
    // The readiness probes were empty connections too: wait out their timeout, drop their lines.
    lines(&log, Duration::from_millis(800));
    let (p, q) = (silent(probes), silent(plain));
    drop(TcpStream::connect(probes).unwrap());
    drop(TcpStream::connect(plain).unwrap());
    let logged = lines(&log, Duration::from_millis(800));
    drop(guard);
    (p, q, logged)
}

#[test]
fn ignore_probes_silences_empty_connections_like_haproxy() {
    let dir = TempDir::new("probes");
    let (probe_reply, plain_reply, logged) = observe(&dir, false);
    assert_eq!(probe_reply, "", "no 408 with http-ignore-probes");
    assert!(plain_reply.starts_with("HTTP/1.1 408"), "{plain_reply}");
    assert!(
        logged.iter().all(|l| !l.starts_with("probes")),
        "{logged:?}"
    );
    assert_eq!(logged.len(), 2, "the plain frontend logs both: {logged:?}");
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let theirs = observe(&dir, true);
    assert_eq!((probe_reply, plain_reply, logged), theirs);
}
