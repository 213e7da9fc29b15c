//! `mode tcp` end to end, and process-level behaviour (privilege drop, pidfile, bind errors).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use ringlb_testkit::{bin_path, free_addr, wait_until, write_config, Origin, Ringlb, TempDir};

const T: Duration = Duration::from_secs(10);

fn tcp_config(front: SocketAddr, server: SocketAddr, global: &str) -> String {
    format!(
        "global\n    nbthread 2\n{global}\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\nlisten echo\n    bind {front}\n    balance roundrobin\n    server e1 {server}\n"
    )
}

#[test]
fn tcp_echo_with_half_close() {
    let echo = Origin::start_echo_tcp("echo");
    let dir = TempDir::new("tcp");
    let front = free_addr();
    let cfg = write_config(&dir, &tcp_config(front, echo.addr(), ""));
    let _proxy = Ringlb::start(&cfg, &[front]);
    let mut s = TcpStream::connect(front).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let p = payload.clone();
        std::thread::spawn(move || {
            w.write_all(&p).unwrap();
            // Half-close: the echo must still come back in full, then the proxy closes.
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), payload.len());
    assert!(back == payload);
}

#[test]
fn privilege_drop_applies_to_the_running_process_and_pidfile_is_written() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: needs root to drop privileges");
        return;
    }
    let echo = Origin::start_echo_tcp("echo");
    let dir = TempDir::new("privdrop");
    let front = free_addr();
    let pidfile = dir.join("ringlb.pid");
    let jail = TempDir::new("jail");
    let global = format!(
        "    user nobody\n    group nogroup\n    chroot {}\n    pidfile {}\n",
        jail.path().display(),
        pidfile.display()
    );
    let cfg = write_config(&dir, &tcp_config(front, echo.addr(), &global));
    let proxy = Ringlb::start(&cfg, &[front]);
    // Listeners are bound first, privileges dropped right after (as HAProxy does).
    let uid_of = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap_or("")
            .to_string()
    };
    let dropped = wait_until(Duration::from_secs(5), || {
        uid_of(proxy.pid())
            .split_whitespace()
            .skip(1)
            .all(|v| v == "65534")
    });
    assert!(dropped, "{}", uid_of(proxy.pid()));
    // Every thread, not only the main one.
    for task in std::fs::read_dir(format!("/proc/{}/task", proxy.pid())).unwrap() {
        let st = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let l = st.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(l.split_whitespace().skip(1).all(|v| v == "65534"), "{l}");
    }
    let root = std::fs::read_link(format!("/proc/{}/root", proxy.pid())).unwrap();
    assert_eq!(root, jail.path().canonicalize().unwrap(), "chroot applied");
    let written = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(written.trim(), proxy.pid().to_string());
    let mut s = TcpStream::connect(front).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
}

#[test]
fn bind_failure_is_reported_and_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = TempDir::new("bindfail");
    // A plain listener without SO_REUSEPORT blocks our bind.
    let cfg = write_config(&dir, &tcp_config(addr, free_addr(), ""));
    let out = std::process::Command::new(bin_path("ringlb"))
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot bind socket") && err.contains(&addr.to_string()),
        "{err}"
    );
}

#[test]
fn daemon_mode_returns_after_the_listeners_are_up_and_writes_the_pidfile() {
    let echo = Origin::start_echo_tcp("echo");
    let dir = TempDir::new("daemon");
    let front = free_addr();
    let pidfile = dir.join("ringlb.pid");
    let cfg = write_config(&dir, &tcp_config(front, echo.addr(), ""));
    let out = std::process::Command::new(bin_path("ringlb"))
        .args(["-D", "-p"])
        .arg(&pidfile)
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Kill the daemon by its pid whatever happens below.
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: plain kill(2) on the daemon's pid.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _kill = Kill(pid);
    let mut s = TcpStream::connect(front).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    // SIGTERM stops it and the pidfile goes away.
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(5), || !pidfile.exists()),
        "daemon removed its pidfile on exit"
    );
}
