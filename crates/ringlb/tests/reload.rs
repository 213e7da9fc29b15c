//! Reloads under load (issue #10): `ringlb -W` reloaded with SIGUSR2 several times while
//! clients keep sending requests (keep-alive and connection-per-request) must lose none; a
//! reload with a broken configuration changes nothing.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringlb_testkit::{free_addr, write_config, Conn, Origins, Ringlb, TempDir};

fn config(front: SocketAddr, servers: &[SocketAddr]) -> String {
    format!(
        "global\n    nbthread 2\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout http-keep-alive 5s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {}\n    server s2 {}\n",
        servers[0], servers[1]
    )
}

/// Worker pids of a master (its children).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

struct Load {
    ok: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

/// A client: keep-alive requests on one connection, reconnecting when the server announced
/// `connection: close`; any request without a 2xx answer is an error.
fn client(front: SocketAddr, load: Arc<Load>, keep_alive: bool) {
    let mut conn: Option<Conn> = None;
    while !load.stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::connect(front) {
                Ok(c) => {
                    c.set_timeout(Duration::from_secs(5)).unwrap();
                    conn.insert(c)
                }
                Err(_) => {
                    load.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let headers: &[(&str, &str)] = if keep_alive {
            &[]
        } else {
            &[("Connection", "close")]
        };
        let t0 = std::time::Instant::now();
        match c.request("GET", "/", headers, b"") {
            Ok(r) if (200..300).contains(&r.status) => {
                load.ok.fetch_add(1, Ordering::Relaxed);
                if r.closes() || !keep_alive {
                    conn = None;
                }
            }
            other => {
                load.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "error (keep_alive {keep_alive}) after {:?}: {:?}",
                    t0.elapsed(),
                    other.map(|r| (r.status, r.text()))
                );
                conn = None;
            }
        }
    }
}

#[test]
fn reloads_under_load_lose_no_request_and_a_bad_config_changes_nothing() {
    let origins = Origins::start(2);
    let dir = TempDir::new("reload");
    let front = free_addr();
    let path = write_config(&dir, &config(front, &origins.addrs()));
    let mut master = Ringlb::start_args(&["-W", "-f", path.to_str().unwrap()], &[front]);
    let first = children(master.pid());
    assert_eq!(first.len(), 1, "one worker: {first:?}");

    let load = Arc::new(Load {
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let load = load.clone();
            std::thread::spawn(move || client(front, load, i % 2 == 0))
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        master.signal(libc::SIGUSR2).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    // A broken configuration: the reload is refused and the worker keeps serving.
    let before_bad = children(master.pid());
    std::fs::write(&path, "global\n    nbthred 2\n").unwrap();
    master.signal(libc::SIGUSR2).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    load.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, errors) = (
        load.ok.load(Ordering::Relaxed),
        load.errors.load(Ordering::Relaxed),
    );
    assert!(ok > 200, "requests served: {ok}");
    assert_eq!(errors, 0, "{errors} failed requests out of {}", ok + errors);
    let after = children(master.pid());
    assert_eq!(after.len(), 1, "old workers exited: {after:?}");
    assert_ne!(after, first, "the worker was replaced");
    assert_eq!(after, before_bad, "a bad config replaced nothing");
    assert!(
        master.stderr().contains("Reload aborted"),
        "{}",
        master.stderr()
    );
    // And says why: the check names the file, the line and the keyword.
    let why = format!("[{}:2]", path.display());
    assert!(
        master
            .stderr()
            .lines()
            .any(|l| l.contains(&why) && l.contains("nbthred")),
        "{}",
        master.stderr()
    );
    // Stopping the master stops the worker too.
    master.stop(Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for w in after {
        assert!(
            !std::path::Path::new(&format!("/proc/{w}")).exists(),
            "worker {w} left behind"
        );
    }
}

/// systemd's `Type=notify`: the worker reports READY=1 (with the master as MAINPID), a reload
/// RELOADING=1 then READY=1 again, a stop STOPPING=1 (`$NOTIFY_SOCKET`, no systemd needed).
#[test]
fn systemd_notifications_follow_start_reload_and_stop() {
    let origins = Origins::start(2);
    let dir = TempDir::new("notify");
    let front = free_addr();
    let path = write_config(&dir, &config(front, &origins.addrs()));
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cmd = std::process::Command::new(ringlb_testkit::bin_path("ringlb"));
    cmd.args(["-Ws", "-f", path.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify_path);
    let mut master = ringlb_testkit::ChildGuard::spawn("ringlb", &mut cmd).unwrap();
    master
        .wait_ready(&[front], Duration::from_secs(10))
        .unwrap();
    let next = || {
        let mut b = [0u8; 256];
        let n = notify.recv(&mut b).unwrap();
        String::from_utf8_lossy(&b[..n]).into_owned()
    };
    assert_eq!(next(), format!("READY=1\nMAINPID={}", master.pid()));
    master.signal(libc::SIGUSR2).unwrap();
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), format!("READY=1\nMAINPID={}", master.pid()));
    master.signal(libc::SIGTERM).unwrap();
    assert_eq!(next(), "STOPPING=1");
    master.stop(Duration::from_secs(5)).unwrap();
}
