//! `option abortonclose` through the real binary: a request waiting in the queue for a server
//! slot whose client leaves is dropped (logged `CQ`, status -1, the server never sees it);
//! without the option an HTTP/1 client's request is still sent, as haproxy documents.
//!
//! Compared with haproxy 2.6 where haproxy observes the close: an HTTP/2 client resetting its
//! stream. haproxy 2.6's HTTP/1 side does not watch a client while its request waits (its
//! request is served even with the option, checked by hand); ringlb follows the manual there.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, haproxy_required, wait_until, write_config, ChildGuard, Haproxy, Origin,
    Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

struct Setup {
    origin: Origin,
    proxy: ChildGuard,
    /// HTTP/1 front of the backend with the option, and of the one without.
    abort: SocketAddr,
    keep: SocketAddr,
    /// HTTP/2 (prior knowledge) front of the backend with the option.
    abort_h2: SocketAddr,
}

fn start(haproxy: bool, name: &str) -> Setup {
    let origin = Origin::start(name);
    let (abort, keep, abort_h2) = (free_addr(), free_addr(), free_addr());
    let o = origin.addr();
    let cfg = format!(
        "global\n    nbthread 1\n    log stderr format raw local0\n\
defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n    timeout queue 10s\n\
frontend fa\n    bind {abort}\n    bind {abort_h2} proto h2\n    default_backend aborting\n\
frontend fk\n    bind {keep}\n    default_backend keeping\n\
backend aborting\n    option abortonclose\n    server s1 {o} maxconn 1\n\
backend keeping\n    server s1 {o} maxconn 1\n"
    );
    let dir = TempDir::new(name);
    let path = write_config(&dir, &cfg);
    let binds = [abort, keep, abort_h2];
    let proxy = if haproxy {
        Haproxy::start(&path, &binds)
    } else {
        Ringlb::start(&path, &binds)
    };
    Setup {
        origin,
        proxy,
        abort,
        keep,
        abort_h2,
    }
}

/// Holds the server's only slot for `ms` milliseconds (a `/slow` request on its own thread).
fn hold_slot(front: SocketAddr, ms: u64) -> std::thread::JoinHandle<String> {
    let h = std::thread::spawn(move || {
        let mut s = TcpStream::connect(front).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        write!(
            s,
            "GET /slow/{ms} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    // The slow request is at the server before the next one queues.
    std::thread::sleep(Duration::from_millis(200));
    h
}

/// Sends a request then closes the connection (FIN), as a client giving up would.
fn request_then_close(front: SocketAddr, path: &str) {
    let mut s = TcpStream::connect(front).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.shutdown(Shutdown::Both).unwrap();
}

fn origin_saw(o: &Origin, path: &str) -> bool {
    o.guard().stderr().contains(&format!("\"GET {path} "))
}

/// The proxy's log line for `path` (waits for it).
fn log_line(p: &ChildGuard, path: &str) -> String {
    let mut line = String::new();
    let found = wait_until(T, || {
        line = p
            .stderr()
            .lines()
            .find(|l| l.contains(&format!(" {path} ")) || l.contains(&format!("{path} HTTP")))
            .unwrap_or_default()
            .to_owned();
        !line.is_empty()
    });
    assert!(found, "no log line for {path}:\n{}", p.stderr());
    line
}

/// Status, termination state and `b/s` of an httplog line.
fn outcome(line: &str) -> (String, String, String) {
    let w: Vec<&str> = line.split(' ').collect();
    // client [date] frontend backend/server timers status bytes - - term ...
    (w[5].to_owned(), w[9].to_owned(), w[3].to_owned())
}

#[test]
fn http1_client_leaving_the_queue_takes_its_request_with_it() {
    let s = start(false, "abort-h1");
    let slow = hold_slot(s.abort, 1200);
    request_then_close(s.abort, "/queued-abort");
    assert!(slow.join().unwrap().contains("200 OK"));
    let line = log_line(&s.proxy, "/queued-abort");
    assert_eq!(
        outcome(&line),
        ("-1".into(), "CQ--".into(), "aborting/<NOSRV>".into()),
        "{line}"
    );
    assert!(
        !origin_saw(&s.origin, "/queued-abort"),
        "{}",
        s.origin.guard().stderr()
    );

    // Without the option the request waits for its turn and goes to the server.
    let slow = hold_slot(s.keep, 1200);
    request_then_close(s.keep, "/queued-keep");
    assert!(slow.join().unwrap().contains("200 OK"));
    assert!(wait_until(T, || origin_saw(&s.origin, "/queued-keep")));
    // The server slot was given back: the next request is served at once.
    let out = curl(
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/", s.abort),
        ],
        T,
    )
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn http2_stream_reset_in_the_queue_is_dropped_as_haproxy_drops_it() {
    let mut runs = vec![("ringlb", start(false, "abort-h2"))];
    if haproxy_required() {
        runs.push(("haproxy", start(true, "abort-h2-haproxy")));
    }
    let mut seen = Vec::new();
    for (name, s) in &runs {
        let slow = hold_slot(s.abort, 1200);
        // curl gives up (resets its stream, closes) while the request waits for the slot.
        let url = format!("http://{}/queued-h2", s.abort_h2);
        let out = curl(&["--http2-prior-knowledge", "--max-time", "0.3", &url], T).unwrap();
        assert_eq!(out.status.code(), Some(28), "{name}: curl timed out");
        assert!(slow.join().unwrap().contains("200 OK"), "{name}");
        let line = log_line(&s.proxy, "/queued-h2");
        assert!(!origin_saw(&s.origin, "/queued-h2"), "{name}");
        seen.push(outcome(&line));
    }
    assert_eq!(
        seen[0],
        ("-1".into(), "CQ--".into(), "aborting/<NOSRV>".into())
    );
    if let Some(theirs) = seen.get(1) {
        assert_eq!(&seen[0], theirs, "ringlb vs haproxy");
    }
}
