//! `server-state-file` + `load-server-state-from-file` (issue #10): states set on the runtime
//! socket, saved with `show servers state` (as an operator does before a reload), come back
//! when the proxy starts again. Compared with haproxy 2.6 doing the same; traffic checked on
//! ringlb with two shards.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ringlb_testkit::{free_addr, haproxy_available, wait_until, Haproxy, Origins, Ringlb, TempDir};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// `show servers state` rows with the clock column masked.
fn cli(sock: &Path, cmd: &str) -> String {
    ringlb_testkit::runtime_command(sock, cmd)
        .unwrap_or_else(|e| panic!("{cmd} on {}: {e}", sock.display()))
}

fn state_rows(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "1")
        .map(|l| {
            let mut f: Vec<&str> = l.split(' ').collect();
            if f.len() > 9 {
                f[9] = "T";
            }
            f.join(" ")
        })
        .collect()
}

/// Runs the scenario on `proxy`: set states, save, restart with the file; returns the rows
/// before the restart and after it, and (ringlb only) who served 30 requests after it.
fn scenario(proxy: &str, origins: &Origins) -> (Vec<String>, Vec<String>, HashMap<String, usize>) {
    let dir = TempDir::new(&format!("state-file-{proxy}"));
    let front = free_addr();
    let text = format!(
        "global\n    stats socket {d}/admin.sock level admin\n    server-state-base {d}\n    server-state-file saved.state\n    nbthread 2\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    load-server-state-from-file global\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {} weight 2\n    server s2 {} weight 2\n    server s3 {} weight 2\n",
        origins.get(0).addr(),
        origins.get(1).addr(),
        origins.get(2).addr(),
        d = dir.path().display()
    );
    let path = dir.join("p.cfg");
    std::fs::write(&path, text).unwrap();
    let start = || {
        if proxy == "haproxy" {
            Haproxy::start(&path, &[front])
        } else {
            Ringlb::start(&path, &[front])
        }
    };
    let sock = dir.join("admin.sock");
    let before = {
        // No state file yet: a warning, then the configured states.
        let _p = start();
        assert!(wait_until(IO_TIMEOUT, || sock.exists()));
        assert_eq!(cli(&sock, "set server be/s1 state maint"), "\n");
        assert_eq!(cli(&sock, "set weight be/s2 7"), "\n");
        assert_eq!(cli(&sock, "set server be/s3 state drain"), "\n");
        let dump = cli(&sock, "show servers state");
        // What the operator does: `echo "show servers state" | socat ... > file`.
        std::fs::write(dir.join("saved.state"), &dump).unwrap();
        state_rows(&dump)
    };
    let _ = std::fs::remove_file(&sock);
    let _p = start();
    assert!(wait_until(IO_TIMEOUT, || sock.exists()));
    let after = state_rows(&cli(&sock, "show servers state"));
    let traffic = if proxy == "ringlb" {
        ringlb_testkit::served_by(front, 30).unwrap()
    } else {
        HashMap::new()
    };
    (before, after, traffic)
}

#[test]
fn saved_states_survive_a_restart_like_haproxy() {
    let origins = Origins::start(3);
    let (before, after, traffic) = scenario("ringlb", &origins);
    // s1 in maintenance (admin 1), s2 weight 7 of 2, s3 draining (admin 8).
    assert!(before[0].contains(" s1 127.0.0.1 0 1 2 2 "), "{before:?}");
    assert!(before[1].contains(" s2 127.0.0.1 2 0 7 2 "), "{before:?}");
    assert!(before[2].contains(" s3 127.0.0.1 2 8 2 2 "), "{before:?}");
    // Restored as saved: admin states and weights come back. (The check health does not:
    // haproxy sets a running server's to rise + fall - 1 on restore, compared below.)
    assert!(after[0].contains(" s1 127.0.0.1 0 1 2 2 "), "{after:?}");
    assert!(after[1].contains(" s2 127.0.0.1 2 0 7 2 "), "{after:?}");
    assert!(after[2].contains(" s3 127.0.0.1 2 8 2 2 "), "{after:?}");
    // In the engine too, on both shards: only s2 takes new requests.
    assert_eq!(traffic.get("s2"), Some(&30), "{traffic:?}");

    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        eprintln!("haproxy not installed: no comparison");
        return;
    }
    let (h_before, h_after, _) = scenario("haproxy", &origins);
    // The origins' ports are the same in both runs: rows compare as they are.
    assert_eq!(before, h_before, "ringlb vs haproxy before the restart");
    assert_eq!(after, h_after, "ringlb vs haproxy after the restart");
}
