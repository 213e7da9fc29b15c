//! `ring` sections with `server` lines: the ring's lines forwarded to a TCP syslog server
//! (a listener in the test), framed per `log-proto` (`legacy`: line + `\n`; `octet-count`:
//! `<len> <line>`), compared with what haproxy 2.6 sends for the same configuration.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, write_config, Haproxy, Ringlb, TempDir,
};

/// Accepts the forwarder's connection and reads until `enough` says the bytes suffice.
fn collect(l: &TcpListener, enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    l.set_nonblocking(true).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut conns = Vec::new();
    while Instant::now() < end && !enough(&got) {
        if let Ok((c, _)) = l.accept() {
            c.set_nonblocking(true).unwrap();
            conns.push(c);
        }
        let mut b = [0u8; 4096];
        for c in &mut conns {
            if let Ok(n) = c.read(&mut b) {
                got.extend_from_slice(&b[..n]);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        enough(&got),
        "not enough: {:?}",
        String::from_utf8_lossy(&got)
    );
    got
}

/// Octet-counted frames: `<len> <msg>` repeated.
fn octet_frames(mut b: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let sp = b.iter().position(|&c| c == b' ')?;
        let n: usize = std::str::from_utf8(&b[..sp]).ok()?.parse().ok()?;
        let msg = b.get(sp + 1..sp + 1 + n)?;
        out.push(String::from_utf8_lossy(msg).into_owned());
        b = &b[sp + 1 + n..];
    }
    Some(out)
}

fn cfg(front: SocketAddr, legacy: SocketAddr, octet: SocketAddr) -> String {
    format!(
        "ring legacy\n    server s1 {legacy}\n    timeout connect 1s\n    timeout server 2s\nring octet\n    format rfc3164\n    server s1 {octet} log-proto octet-count\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    log ring@legacy local0\n    log ring@octet local0\n    http-request return status 200\n"
    )
}

/// The ports and the rfc3164 header vary between runs and programs.
fn mask(msg: &str) -> String {
    let msg = msg.split_once("]: ").map_or(msg, |x| x.1);
    msg.split(' ')
        .map(|w| {
            if w.starts_with("127.0.0.1:") {
                "127.0.0.1:PORT"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(
    start: impl FnOnce(&std::path::Path, SocketAddr) -> ringlb_testkit::ChildGuard,
    dir: &TempDir,
    name: &str,
) -> (String, Vec<String>) {
    let (legacy, octet) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let front = free_addr();
    let path = dir.join(name);
    std::fs::write(
        &path,
        cfg(
            front,
            legacy.local_addr().unwrap(),
            octet.local_addr().unwrap(),
        ),
    )
    .unwrap();
    let _p = start(&path, front);
    assert_eq!(http_get(front, "/", &[]).unwrap().status, 200);
    let l = collect(&legacy, |b| b.ends_with(b"\n"));
    let o = collect(&octet, |b| octet_frames(b).is_some_and(|f| !f.is_empty()));
    let first = String::from_utf8(l)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    (first, octet_frames(&o).unwrap())
}

#[test]
fn ring_lines_are_forwarded_framed_as_haproxy() {
    let dir = TempDir::new("ringfwd");
    let (legacy, octet) = run(|p, f| Ringlb::start(p, &[f]), &dir, "ringlb.cfg");
    assert!(
        legacy.starts_with("Connect from 127.0.0.1:"),
        "raw format: {legacy}"
    );
    assert!(
        octet[0].starts_with("<134>"),
        "rfc3164 in the frame: {octet:?}"
    );
    assert!(octet[0].contains("Connect from 127.0.0.1:"), "{octet:?}");
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let (hlegacy, hoctet) = run(
        |p, f| {
            let hp = write_config(&dir, &std::fs::read_to_string(p).unwrap());
            Haproxy::start(&hp, &[f])
        },
        &dir,
        "h.cfg",
    );
    assert_eq!(mask(&legacy), mask(&hlegacy));
    assert_eq!(mask(&octet[0]), mask(&hoctet[0]));
}

/// `show events <ring> -w`: the session stays open and prints each new line as it comes,
/// until the client sends a key; `-n` skips the lines already in the ring.
#[test]
fn show_events_waits_for_new_lines() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let dir = TempDir::new("events-w");
    let front = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    stats socket {}\nring buf\n    size 32768\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    log ring@buf local0\n    http-request return status 200\n",
        sock.display()
    );
    let path = dir.join("r.cfg");
    std::fs::write(&path, cfg).unwrap();
    let _r = Ringlb::start(&path, &[front]);
    let end = Instant::now() + Duration::from_secs(5);
    while UnixStream::connect(&sock).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cli = |cmd: &str| -> UnixStream {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.write_all(cmd.as_bytes()).unwrap();
        s
    };
    let read_until = |s: &mut UnixStream, want: &dyn Fn(&str) -> bool| -> String {
        let end = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        while Instant::now() < end && !want(&String::from_utf8_lossy(&got)) {
            if let Ok(n) = s.read(&mut b) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
            }
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(want(&text), "got {text:?}");
        text
    };
    // The readiness probe leaves lines in the ring (logged asynchronously: ask until seen).
    let end = Instant::now() + Duration::from_secs(5);
    let (old, old_lines) = loop {
        let mut all = cli("show events buf\n");
        // An empty ring answers one empty line; lines end with an empty one.
        let old = read_until(&mut all, &|t| t == "\n" || t.ends_with("\n\n"));
        let n = old.lines().filter(|l| l.contains("Connect from")).count();
        if n >= 1 || Instant::now() > end {
            break (old, n);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(old_lines >= 1, "{old:?}");
    // `-n` alone: nothing new.
    let mut n = cli("show events buf -n\n");
    assert_eq!(read_until(&mut n, &|t| t.ends_with('\n')), "\n");
    // `-w`: old lines, then each new one as it comes.
    let mut w = cli("show events buf -w\n");
    let first = read_until(&mut w, &|t| t.matches("Connect from").count() >= old_lines);
    assert_eq!(
        first.matches("Connect from").count(),
        old_lines,
        "{first:?}"
    );
    assert_eq!(http_get(front, "/", &[]).unwrap().status, 200);
    let more = read_until(&mut w, &|t| t.contains("Connect from"));
    assert_eq!(
        more.matches("Connect from").count(),
        1,
        "one new line: {more:?}"
    );
    // `-nw`: only the new ones.
    let mut nw = cli("show events buf -nw\n");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http_get(front, "/", &[]).unwrap().status, 200);
    let only_new = read_until(&mut nw, &|t| t.contains("Connect from"));
    assert_eq!(only_new.matches("Connect from").count(), 1, "{only_new:?}");
    // Any key stops the wait: the command ends with its blank line and the session closes
    // (non-interactive).
    w.write_all(b"\n").unwrap();
    let end = read_until(&mut w, &|t| t.ends_with('\n'));
    assert!(end.ends_with('\n'), "{end:?}");
    let mut bad = cli("show events buf -x\n");
    assert!(read_until(&mut bad, &|t| t.contains("unknown option")).contains("unknown option"));
}
