//! Operations keywords (issue #10) with the real binary, observed from outside the process:
//! `ulimit-n`/`fd-hard-limit` in /proc/<pid>/limits, `set-dumpable` in the ownership of
//! /proc/<pid>/status, socket buffers in `ss -tm`, UNIX listeners' path/mode/owner with
//! `stat` (and compared with haproxy), `maxconnrate`/`maxsessrate` as a lower bound on the time
//! a burst takes (none refused), `quiet`/`zero-warning` against haproxy, `severity-output`
//! against haproxy, `program` sections and `mworker-max-reloads` through their pids.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, haproxy_bin, run_bounded, wait_until, write_config, ChildGuard,
    Conn, Haproxy, Origins, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// (soft, hard) of one line of /proc/<pid>/limits ("Max open files", "Max core file size").
fn limit(pid: u32, name: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap();
    let words: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (words[0].to_string(), words[1].to_string())
}

fn http_config(global: &str, front: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "global\n{global}{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {origin}\n"
    )
}

fn ringlb_run(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(ringlb_testkit::bin_path("ringlb"));
    cmd.args(args);
    run_bounded(&mut cmd, T).unwrap()
}

#[test]
fn ulimit_n_and_fd_hard_limit_set_the_open_files_limit() {
    let origins = Origins::start(1);
    let dir = TempDir::new("ops-fd");
    let front = free_addr();
    // ulimit-n: exactly this soft limit (lowered here), as haproxy does.
    let cfg = http_config(
        "    nbthread 2\n    ulimit-n 4321\n",
        front,
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    let p = Ringlb::start(&path, &[front]);
    assert_eq!(limit(p.pid(), "Max open files").0, "4321");
    assert_eq!(Conn::connect(front).unwrap().get("/").unwrap().status, 200);
    drop(p);
    // No maxconn: haproxy's Maxsock for the maxconn it derives from the hard limit capped by
    // fd-hard-limit (3000 - 21 fixed - 6 for 2 threads, halved: maxconn 1486, Maxsock 2999;
    // haproxy 2.6 sets the same 2999). Started under a known low soft limit (prlimit execs
    // ringlb, same pid) so the raise is visible whatever the caller's is.
    let cfg = http_config(
        "    nbthread 2\n    fd-hard-limit 3000\n",
        front,
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=1024:20000")
        .arg(ringlb_testkit::bin_path("ringlb"))
        .arg("-f")
        .arg(&path);
    let mut p = ChildGuard::spawn("ringlb", &mut cmd).unwrap();
    p.wait_ready(&[front], T).unwrap();
    assert_eq!(limit(p.pid(), "Max open files").0, "2999");
    drop(p);
    // Asking for more than fd-hard-limit fails at start, naming the limit.
    let cfg = http_config(
        "    ulimit-n 5000\n    fd-hard-limit 3000\n",
        front,
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    let out = ringlb_run(&["-f", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Cannot raise FD limit to 5000"), "{err}");
}

#[test]
fn set_dumpable_survives_the_privilege_drop() {
    if !is_root() {
        eprintln!("SKIP: dropping privileges needs root (scripts/test runs as root)");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("ops-dumpable");
    let front = free_addr();
    let owner = |global: &str| {
        let cfg = http_config(global, front, origins.addrs()[0]);
        let p = Ringlb::start(&write_config(&dir, &cfg), &[front]);
        assert_eq!(Conn::connect(front).unwrap().get("/").unwrap().status, 200);
        // A process that is not dumpable has its /proc files owned by root. The privilege
        // drop follows the bind: give it a moment.
        let uid = || {
            std::fs::metadata(format!("/proc/{}/status", p.pid()))
                .unwrap()
                .uid()
        };
        wait_until(Duration::from_secs(2), || uid() == 65534);
        (uid(), limit(p.pid(), "Max core file size"))
    };
    let (uid, _) = owner("    user nobody\n    group nogroup\n");
    assert_eq!(uid, 0, "setuid clears the dumpable flag");
    let (uid, (soft, hard)) = owner("    user nobody\n    group nogroup\n    set-dumpable\n");
    assert_eq!(uid, 65534, "set-dumpable makes it dumpable again");
    assert_eq!(soft, hard, "core size raised to the hard limit");
}

/// The origin's end of the connection that sends "hello" (the readiness probe of
/// `Ringlb::start` went through the proxy first and closed).
fn accept_hello(origin: &TcpListener) -> TcpStream {
    loop {
        let (mut s, _) = origin.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut buf = [0u8; 5];
        if s.read_exact(&mut buf).is_ok() && &buf == b"hello" {
            return s;
        }
    }
}

/// `skmem` rb/tb of the first established socket `ss` finds with `filter`.
fn skmem(filter: &str) -> Option<(u64, u64)> {
    let out = run_bounded(
        Command::new("ss").args(["-tmnH", "state", "established", filter]),
        T,
    )
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| -> Option<u64> {
        let at = text.find(&format!(",{k}"))? + k.len() + 1;
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("rb")?, field("tb")?))
}

#[test]
fn socket_buffers_apply_to_client_and_server_sockets() {
    // An origin that accepts and holds the connection, so both legs stay established.
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_addr = origin.local_addr().unwrap();
    let dir = TempDir::new("ops-bufs");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 1\n    tune.rcvbuf.client 65536\n    tune.sndbuf.client 32768\n    tune.rcvbuf.server 49152\n    tune.sndbuf.server 40960\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {origin_addr}\n"
    );
    let p = Ringlb::start(&write_config(&dir, &cfg), &[front]);
    let mut client = TcpStream::connect(front).unwrap();
    client.write_all(b"hello").unwrap();
    let _held = accept_hello(&origin);
    // The kernel doubles SO_RCVBUF/SO_SNDBUF values for its bookkeeping.
    let client_leg = skmem(&format!("( sport = :{} )", front.port())).unwrap();
    assert_eq!(client_leg, (131072, 65536));
    let server_leg = skmem(&format!("( dport = :{} )", origin_addr.port())).unwrap();
    assert_eq!(server_leg, (98304, 81920));
    drop(p);
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

/// One HTTP/1.0 request over a UNIX socket; the status code.
fn unix_get(path: &Path) -> u16 {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn unix_listeners_take_unix_bind_defaults_and_their_own_options() {
    let origins = Origins::start(1);
    let dir = TempDir::new("ops-unix");
    let front = free_addr();
    let owner = if is_root() {
        " uid 65534 gid 65534"
    } else {
        ""
    };
    let cfg = format!(
        "global\n    nbthread 2\n    unix-bind prefix {}/ mode 640\n    stats socket {}/admin.sock level admin\n{DEFAULTS}\
         frontend fe\n    bind {front}\n    bind unix@fe.sock\n    bind unix@own.sock mode 600{owner}\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        dir.path().display(),
        dir.path().display(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let ringlb_view = |dir: &TempDir| {
        (
            mode_owner(&dir.join("fe.sock")),
            mode_owner(&dir.join("own.sock")),
            mode_owner(&dir.join("admin.sock")),
        )
    };
    let p = Ringlb::start(&path, &[front]);
    let all_there = |dir: &TempDir| {
        ["fe.sock", "own.sock", "admin.sock"]
            .iter()
            .all(|f| dir.join(f).exists())
    };
    assert!(wait_until(T, || all_there(&dir)));
    let (fe, own, admin) = ringlb_view(&dir);
    assert_eq!(fe.0, 0o640, "unix-bind mode");
    assert_ne!(
        admin.0, 0o640,
        "unix-bind is for bind lines, not the stats socket (as in haproxy)"
    );
    assert_eq!(own.0, 0o600, "the bind's own mode wins");
    if is_root() {
        assert_eq!((own.1, own.2), (65534, 65534));
    }
    // Both shards accept on the one socket: several requests all get answers.
    for _ in 0..6 {
        assert_eq!(unix_get(&dir.join("fe.sock")), 200);
        assert_eq!(unix_get(&dir.join("own.sock")), 200);
    }
    drop(p);
    if haproxy_available() {
        for f in ["fe.sock", "own.sock", "admin.sock"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let h = Haproxy::start(&path, &[front]);
        assert!(
            wait_until(T, || all_there(&dir)),
            "haproxy made {:?}\n{}",
            std::fs::read_dir(dir.path()).map(|d| d
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect::<Vec<_>>()),
            h.dump()
        );
        assert_eq!(
            ringlb_view(&dir),
            (fe, own, admin),
            "haproxy gives the same modes and owners"
        );
        assert_eq!(unix_get(&dir.join("fe.sock")), 200);
        drop(h);
    }
}

/// Connects, sends one request and reads the answer, `n` times in a row; all must be 200.
fn burst(front: SocketAddr, n: usize) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        let mut c = Conn::connect(front).unwrap();
        c.set_timeout(T).unwrap();
        let r = c.get("/").unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}");
    }
    started.elapsed()
}

#[test]
fn accept_rates_delay_connections_without_refusing_them() {
    let origins = Origins::start(1);
    let dir = TempDir::new("ops-rate");
    let front = free_addr();
    for kw in ["maxconnrate", "maxsessrate"] {
        let cfg = http_config(
            &format!("    nbthread 2\n    {kw} 20\n"),
            front,
            origins.addrs()[0],
        );
        let p = Ringlb::start(&write_config(&dir, &cfg), &[front]);
        // 50 connections at 20/s cannot take less than (50 - 20) / 20 s (the first second's
        // worth goes at once); without the limit they take a few milliseconds.
        let took = burst(front, 50);
        assert!(took >= Duration::from_millis(1400), "{kw}: 50 in {took:?}");
        drop(p);
    }
    // Unlimited: the same burst is fast (the test can tell the difference).
    let cfg = http_config("    nbthread 2\n", front, origins.addrs()[0]);
    let p = Ringlb::start(&write_config(&dir, &cfg), &[front]);
    let took = burst(front, 50);
    assert!(took < Duration::from_millis(1400), "unlimited: {took:?}");
    drop(p);
}

/// `rate-limit sessions` holds one frontend to its rate (both shards together) and leaves its
/// neighbour alone; `show stat` reports it in `rate_lim` (0 without), as haproxy 2.6 does.
#[test]
fn frontend_rate_limit_sessions_delays_only_that_frontend() {
    let origins = Origins::start(1);
    let dir = TempDir::new("ops-fe-rate");
    let (limited, free) = (free_addr(), free_addr());
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {}\n{DEFAULTS}\
         frontend limited\n    bind {limited}\n    rate-limit sessions 20\n    default_backend be\n\
         frontend free\n    bind {free}\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        sock.display(),
        origins.addrs()[0]
    );
    let p = Ringlb::start(&write_config(&dir, &cfg), &[limited, free]);
    let took = burst(limited, 50);
    assert!(
        took >= Duration::from_millis(1400),
        "limited: 50 in {took:?}"
    );
    let took = burst(free, 50);
    assert!(took < Duration::from_millis(1400), "free: 50 in {took:?}");
    assert!(wait_until(T, || sock.exists()));
    let csv = ringlb_testkit::runtime_command(&sock, "show stat").unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "rate_lim").unwrap();
    let row = |px: &str| -> String {
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("{px},FRONTEND,")))
            .unwrap();
        line.split(',').nth(col).unwrap().to_string()
    };
    assert_eq!(row("limited"), "20", "{csv}");
    assert_eq!(row("free"), "0", "{csv}");
    drop(p);
}

#[test]
fn quiet_and_zero_warning_in_the_global_section_behave_as_haproxy() {
    let dir = TempDir::new("ops-quiet");
    let front = free_addr();
    // No timeouts: a warning in both programs.
    let quiet = format!("global\n    quiet\nfrontend f\n    bind {front}\n");
    let zero = format!("global\n    zero-warning\nfrontend f\n    bind {front}\n");
    let qpath = dir.join("quiet.cfg");
    let zpath = dir.join("zero.cfg");
    std::fs::write(&qpath, quiet).unwrap();
    std::fs::write(&zpath, zero).unwrap();
    let q = ringlb_run(&["-c", "-f", qpath.to_str().unwrap()]);
    assert_eq!(q.status.code(), Some(0));
    assert!(q.stdout.is_empty() && q.stderr.is_empty(), "{q:?}");
    let z = ringlb_run(&["-c", "-f", zpath.to_str().unwrap()]);
    assert_eq!(z.status.code(), Some(1));
    let zerr = String::from_utf8_lossy(&z.stderr);
    assert!(
        zerr.contains("Some warnings were found and 'zero-warning' is set. Aborting."),
        "{zerr}"
    );
    // Running (not only -c) refuses too.
    let zr = ringlb_run(&["-f", zpath.to_str().unwrap()]);
    assert_eq!(zr.status.code(), Some(1));
    if haproxy_available() {
        let hq = run_bounded(
            Command::new(haproxy_bin()).args(["-c", "-f", qpath.to_str().unwrap()]),
            T,
        )
        .unwrap();
        assert_eq!(hq.status.code(), Some(0));
        assert!(hq.stdout.is_empty() && hq.stderr.is_empty(), "{hq:?}");
        let hz = run_bounded(
            Command::new(haproxy_bin()).args(["-c", "-f", zpath.to_str().unwrap()]),
            T,
        )
        .unwrap();
        assert_eq!(hz.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&hz.stderr)
            .contains("Some warnings were found and 'zero-warning' is set. Aborting."));
    }
}

/// The first line of the answer to `cmd` on a runtime socket.
fn cli_first_line(sock: &Path, cmd: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn stats_socket_severity_output_prefixes_messages_as_haproxy() {
    let dir = TempDir::new("ops-severity");
    let front = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    stats socket {} level admin severity-output number\n{DEFAULTS}frontend f\n    bind {front}\n",
        sock.display()
    );
    let path = write_config(&dir, &cfg);
    let cmds = ["set server nope/s1 state ready", "frobnicate"];
    let p = Ringlb::start(&path, &[front]);
    assert!(wait_until(T, || sock.exists()));
    let ours: Vec<String> = cmds.iter().map(|c| cli_first_line(&sock, c)).collect();
    drop(p);
    assert_eq!(ours[0], "[3]: No such backend.");
    assert!(ours[1].starts_with("[6]: Unknown command"), "{}", ours[1]);
    if haproxy_available() {
        let _ = std::fs::remove_file(&sock);
        let h = Haproxy::start(&path, &[front]);
        assert!(wait_until(T, || sock.exists()));
        let theirs: Vec<String> = cmds.iter().map(|c| cli_first_line(&sock, c)).collect();
        drop(h);
        assert_eq!(ours, theirs);
    }
}

/// Pids a program wrote, one per start.
fn pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie is not alive: read its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Kills (by pid) whatever programs the test saw, should the master have failed to.
struct Reap(Vec<std::path::PathBuf>);

impl Drop for Reap {
    fn drop(&mut self) {
        for f in &self.0 {
            for p in pids(f) {
                if alive(p) {
                    // SAFETY: kill(2) on a pid this test's programs wrote.
                    unsafe {
                        libc::kill(p as i32, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

#[test]
fn programs_start_restart_on_reload_and_stop_with_the_master() {
    let dir = TempDir::new("ops-program");
    // The programs may run as nobody: they write their pids here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let front = free_addr();
    let (p1, p2) = (dir.join("p1.pids"), dir.join("p2.pids"));
    let _reap = Reap(vec![p1.clone(), p2.clone()]);
    let user = if is_root() { "    user nobody\n" } else { "" };
    let cfg = format!(
        "global\n    master-worker\n{DEFAULTS}frontend f\n    bind {front}\n    http-request return status 200\n\
         program restarted\n    command /bin/sh -c 'echo $$ >> {}; exec sleep 60'\n{user}\
         program kept\n    command /bin/sh -c 'echo $$ >> {}; exec sleep 60'\n    no option start-on-reload\n",
        p1.display(),
        p2.display()
    );
    let path = write_config(&dir, &cfg);
    let mut master = Ringlb::start_args(&["-f", path.to_str().unwrap()], &[front]);
    assert!(wait_until(T, || pids(&p1).len() == 1 && pids(&p2).len() == 1));
    let (first, kept) = (pids(&p1)[0], pids(&p2)[0]);
    if is_root() {
        let status = std::fs::read_to_string(format!("/proc/{first}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(uid.split_whitespace().nth(1), Some("65534"), "{uid}");
    }
    master.signal(libc::SIGUSR2).unwrap();
    assert!(
        wait_until(T, || pids(&p1).len() == 2 && !alive(first)),
        "start-on-reload: old instance stopped, new one started: {:?}",
        pids(&p1)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        pids(&p2),
        [kept],
        "no option start-on-reload: not restarted"
    );
    assert!(alive(kept));
    let second = pids(&p1)[1];
    master.signal(libc::SIGTERM).unwrap();
    assert!(master.wait_timeout(T).unwrap().is_some(), "master exits");
    assert!(
        !alive(second) && !alive(kept),
        "programs stopped with the master"
    );
}

/// Worker pids of a master (its children that are ringlb).
fn workers(master: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn mworker_max_reloads_ends_an_old_worker_kept_alive_by_a_connection() {
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_addr = origin.local_addr().unwrap();
    let dir = TempDir::new("ops-maxreloads");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 1\n    mworker-max-reloads 1\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
         frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {origin_addr}\n"
    );
    let path = write_config(&dir, &cfg);
    let mut master: ChildGuard =
        Ringlb::start_args(&["-W", "-f", path.to_str().unwrap()], &[front]);
    assert!(wait_until(T, || workers(master.pid()).len() == 1));
    let first = workers(master.pid())[0];
    // A tunnel through the first worker keeps it draining after a reload.
    let mut client = TcpStream::connect(front).unwrap();
    client.write_all(b"hello").unwrap();
    let _held = accept_hello(&origin);
    master.signal(libc::SIGUSR2).unwrap();
    assert!(wait_until(T, || workers(master.pid()).len() == 2));
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(first), "one reload: the old worker still drains");
    master.signal(libc::SIGUSR2).unwrap();
    assert!(
        wait_until(T, || !alive(first)),
        "two reloads > mworker-max-reloads 1: SIGTERM"
    );
    master.signal(libc::SIGTERM).unwrap();
    assert!(master.wait_timeout(T).unwrap().is_some());
}
