//! "Logging never blocks a shard" (issue #9): a syslog target that stops reading fills up,
//! and the lines that no longer fit are dropped and counted in `show info`'s `DroppedLogs`,
//! while every request is still answered at once. haproxy 2.6 does the same (a send that
//! would block is a dropped line), so both run the same config and traffic.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_required, runtime_command, wait_until, write_config, Conn, Haproxy, Origin,
    Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

/// Requests sent: more lines than a full unix datagram queue and ringlb's per-shard queues
/// (1024 lines per shard) hold together.
const REQUESTS: usize = 5000;

fn dropped_logs(sock: &std::path::Path) -> u64 {
    let out = runtime_command(sock, "show info").unwrap();
    let line = out
        .lines()
        .find(|l| l.starts_with("DroppedLogs: "))
        .unwrap_or_else(|| panic!("no DroppedLogs in\n{out}"));
    line["DroppedLogs: ".len()..].parse().unwrap()
}

#[test]
fn a_target_that_stops_reading_drops_and_counts_lines_without_blocking() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let origin = Origin::start("drops");
    for who in ["haproxy", "ringlb"] {
        let dir = TempDir::new(&format!("logdrops-{who}"));
        // The syslog "daemon": bound, never read.
        let log_path = dir.join("log.sock");
        let _syslog = UnixDatagram::bind(&log_path).unwrap();
        let sock = dir.join("admin.sock");
        let front = free_addr();
        let cfg = format!(
            "global\n    nbthread 2\n    log {} local0 info\n    stats socket {} level admin\n\
             defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n\
             \x20   timeout client 10s\n    timeout server 10s\n\
             frontend fe\n    bind {front}\n    default_backend be\n\
             backend be\n    server s1 {}\n",
            log_path.display(),
            sock.display(),
            origin.addr()
        );
        let path = write_config(&dir, &cfg);
        let _proxy = match who {
            "haproxy" => Haproxy::start(&path, &[front]),
            _ => Ringlb::start(&path, &[front]),
        };
        assert!(wait_until(T, || runtime_command(&sock, "show info").is_ok()));
        assert_eq!(dropped_logs(&sock), 0, "{who}: nothing dropped yet");
        // Keep-alive requests, each answered while the target is full.
        let mut c = Conn::connect(front).unwrap();
        c.set_timeout(T).unwrap();
        for i in 0..REQUESTS {
            let r = c.get(&format!("/{i}")).unwrap();
            assert_eq!(r.status, 200, "{who}: request {i}");
        }
        drop(c);
        // Every line that did not fit is counted (ringlb's writers drain their queues into
        // the socket as it takes them: nothing more once it is full).
        assert!(
            wait_until(T, || dropped_logs(&sock) > 0),
            "{who}: no line counted as dropped"
        );
        let dropped = dropped_logs(&sock);
        assert!(
            dropped < REQUESTS as u64 + 1,
            "{who}: {dropped} dropped for {REQUESTS} lines"
        );
    }
}
