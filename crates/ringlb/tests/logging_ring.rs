//! `ring` sections and `log ring@<name>` through the real binary, read back with
//! `show events` on the runtime socket, compared with haproxy 2.6 for the same config: the
//! sink list (with descriptions), the ring's own `format` winning over the `log` line's (raw
//! by default), and "No such event sink". (Eviction of the oldest lines is unit-tested in
//! ringlb-log: haproxy's rings count bytes with their own per-line overhead.)

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, wait_until, ChildGuard, Haproxy, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn config(sock: &Path, front: SocketAddr) -> String {
    format!(
        r#"global
    stats socket {} level admin
    log-tag proxy
ring buf1
    description "My ring"
    format rfc3164
    maxlen 200
    size 32764
ring buf2
defaults
    mode http
    timeout connect 1s
    timeout client 2s
    timeout server 2s
frontend fe
    bind {front}
    log ring@buf1 local0
    log ring@buf2 format iso local1
    log-format "%ci %ST %b %HU"
    http-request return status 200
"#,
        sock.display()
    )
}

fn cli(sock: &Path, cmd: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// `<134>Nov 24 03:12:08 localhost proxy[9511]: ...` → the syslog date and pid masked.
fn mask(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = match (l.find('>'), l.find(" localhost ")) {
                (Some(a), Some(b)) if a < b => format!("{}DATE{}", &l[..=a], &l[b..]),
                _ => l.to_string(),
            };
            let l = match (l.find("proxy["), l.find("]:")) {
                (Some(a), Some(b)) if a < b => format!("{}PID{}", &l[..a + 6], &l[b..]),
                _ => l,
            };
            l + "\n"
        })
        .collect()
}

fn run(haproxy: bool, dir: &TempDir) -> Vec<String> {
    let name = if haproxy { "h" } else { "r" };
    let sock = dir.join(&format!("{name}.sock"));
    let front = free_addr();
    let path = dir.join(&format!("{name}.cfg"));
    std::fs::write(&path, config(&sock, front)).unwrap();
    let _p: ChildGuard = if haproxy {
        Haproxy::start(&path, &[front])
    } else {
        Ringlb::start(&path, &[front])
    };
    assert!(wait_until(T, || sock.exists()));
    for p in ["/a", "/b"] {
        assert_eq!(
            http_get(front, p, &[("Connection", "close")])
                .unwrap()
                .status,
            200
        );
    }
    assert!(wait_until(T, || cli(&sock, "show events buf2").contains("/b")));
    // Only the lines of the test's own requests (the harness's readiness probe logs one
    // of its own first, for buf1 and buf2).
    let strip = |s: String| -> String {
        s.lines()
            .filter(|l| l.is_empty() || l.ends_with(" /a") || l.ends_with(" /b"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    vec![
        cli(&sock, "show events")
            .lines()
            .filter(|l| !l.contains("buf0"))
            .map(|l| format!("{l}\n"))
            .collect(),
        mask(&strip(cli(&sock, "show events buf1"))),
        strip(cli(&sock, "show events buf2")),
        cli(&sock, "show events nope"),
    ]
}

#[test]
fn rings_hold_log_lines_for_show_events_as_haproxy() {
    let dir = TempDir::new("log-ring");
    let got = run(false, &dir);
    let want = [
        "Supported events sinks are listed below. Add -w(wait), -n(new). Any key to stop\n    stdout     : type=fd, 0 dropped, standard output (fd#1)\n    stderr     : type=fd, 0 dropped, standard output (fd#2)\n    buf1       : type=buffer, 0 dropped, My ring\n    buf2       : type=buffer, 0 dropped, buf2\n\n",
        // The ring's format (rfc3164) wins over the log line's default.
        "<134>DATE localhost proxy[PID]: 127.0.0.1 200 fe /a\n<134>DATE localhost proxy[PID]: 127.0.0.1 200 fe /b\n\n",
        // No ring format: raw, whatever the `log` line says (`format iso`).
        "127.0.0.1 200 fe /a\n127.0.0.1 200 fe /b\n\n",
        "No such event sink\n",
    ];
    assert_eq!(got, want, "ringlb: {got:#?}");
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let h = run(true, &dir);
    assert_eq!(h, want, "haproxy: {h:#?}");
}
