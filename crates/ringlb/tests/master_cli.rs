//! The master CLI (`-W -S <socket>`, issue #10) against haproxy 2.6 on the same configuration:
//! `show proc` (pids, uptimes and versions masked), `help`, `@1` / `@!<pid>` routing to the
//! worker, unknown prefixes, `reload` (a new worker, the master's reload count). ringlb's
//! reload also takes the worker's listeners through its private socket (inodes unchanged).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::{free_addr, listening_inodes, wait_until, ChildGuard, TempDir};

fn config(front: std::net::SocketAddr) -> String {
    format!(
        "global\n    nbthread 2\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {front}\n    http-request return status 200 content-type text/plain string ok\n"
    )
}

/// One command line on the master socket; the whole answer. A master socket refuses or
/// resets connections for a moment while its master starts: those are tried again (bounded).
fn ask(sock: &Path, line: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match try_ask(sock, line) {
            Ok(out) => return out,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{line:?} on {}: {e}", sock.display()),
        }
    }
}

fn try_ask(sock: &Path, line: &str) -> std::io::Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    // haproxy's master sometimes keeps a finished session open for a while: an answer is
    // complete at EOF or after a second of silence once something came.
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !out.is_empty() || std::time::Instant::now() > deadline {
                    break;
                }
            }
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `show proc` with pids, uptimes and versions masked and columns joined by one space.
fn mask_proc(text: &str) -> String {
    text.lines()
        .map(|l| {
            let mut t: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            if matches!(t.get(1).map(String::as_str), Some("master" | "worker")) {
                let n = t.len();
                t[0] = "PID".into();
                t[n - 2] = "UPTIME".into();
                t[n - 1] = "VERSION".into();
            }
            t.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Starts `bin -W -S sock -f cfg` and waits for the master socket and one worker.
fn start(
    bin: &Path,
    name: &str,
    dir: &TempDir,
    front: std::net::SocketAddr,
) -> (ChildGuard, PathBuf) {
    let cfg = dir.join(&format!("{name}.cfg"));
    std::fs::write(&cfg, config(front)).unwrap();
    let sock = dir.join(&format!("{name}-master.sock"));
    let mut cmd = Command::new(bin);
    cmd.arg("-W")
        .arg("-S")
        .arg(format!("{},mode,600", sock.display()))
        .arg("-f")
        .arg(&cfg);
    let mut p = ChildGuard::spawn(name, &mut cmd).unwrap();
    p.wait_ready(&[front], Duration::from_secs(30)).unwrap();
    let pid = p.pid();
    assert!(
        wait_until(Duration::from_secs(30), || sock.exists()
            && children(pid).len() == 1),
        "{}",
        p.dump()
    );
    (p, sock)
}

/// What both proxies answer, masked, for the differential.
fn transcript(sock: &Path, worker: u32) -> Vec<String> {
    vec![
        mask_proc(&ask(sock, "show proc")),
        ask(sock, "help"),
        ask(sock, "@1 show cli level"),
        ask(sock, &format!("@!{worker} show cli level")),
        ask(sock, "@!99999 show cli level"),
        ask(sock, "@2 show cli level"),
        mask_proc(&ask(sock, "@1 show cli level; show proc")),
        ask(sock, "show cli level"),
        ask(sock, "operator; show cli level"),
        ask(sock, "user; operator"),
        ask(sock, "user; reload"),
        ask(sock, "operator; @1 show cli level"),
        ask(sock, "user; @1 show cli level"),
        ask(sock, "user; @1 disable frontend fe"),
        ask(sock, "help show"),
        ask(sock, "show version").lines().count().to_string(),
        ask(sock, "prompt\nshow cli level\nquit"),
    ]
}

#[test]
fn master_cli_answers_as_haproxy_and_reloads_seamlessly() {
    let dir = TempDir::new("mcli");
    let front = free_addr();
    let (mut ours, sock) = start(&ringlb_testkit::bin_path("ringlb"), "ringlb", &dir, front);
    let worker = children(ours.pid())[0];
    let got = transcript(&sock, worker);
    assert!(got[0].starts_with("#<PID> <type> <reloads> <uptime> <version>\nPID master 0 [failed: 0] UPTIME VERSION\n# workers\nPID worker 0 UPTIME VERSION\n# programs"), "{}", got[0]);
    assert_eq!(got[2], "admin\n\n");
    assert_eq!(got[3], "admin\n\n");
    // A line of prefixes alone chooses where the next line goes (ringlb then closes after it;
    // haproxy keeps such a session open, so this one is not compared).
    assert_eq!(ask(&sock, "@1\nshow cli level"), "admin\n\n");

    // `reload` on the master CLI: a new worker, on the old worker's sockets.
    assert!(wait_until(Duration::from_secs(30), || listening_inodes(
        front.port()
    )
    .len()
        == 2));
    let inodes = listening_inodes(front.port());
    assert_eq!(ask(&sock, "reload"), "");
    let pid = ours.pid();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let c = children(pid);
            c.len() == 1 && c[0] != worker
        }),
        "{}",
        ours.dump()
    );
    assert_eq!(listening_inodes(front.port()), inodes, "{}", ours.dump());
    let after = mask_proc(&ask(&sock, "show proc"));
    assert!(after.contains("PID master 1 [failed: 0]"), "{after}");
    let new = children(pid)[0];
    assert!(ask(&sock, &format!("@!{new} show info")).contains(&format!("Pid: {new}")));

    if ringlb_testkit::haproxy_available() {
        let hfront = free_addr();
        let (mut theirs, hsock) = start(
            Path::new(&ringlb_testkit::haproxy_bin()),
            "haproxy",
            &dir,
            hfront,
        );
        let hworker = children(theirs.pid())[0];
        let want = transcript(&hsock, hworker);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "answer {i} differs from haproxy's");
        }
        theirs.stop(Duration::from_secs(10)).unwrap();
    }
    ours.stop(Duration::from_secs(10)).unwrap();
    assert!(!sock.exists(), "the master removed its socket");
}

/// A `reload` on the master CLI with a broken configuration: the worker keeps serving, and
/// `show proc` counts it as haproxy 2.6 does (the master's reloads and failures, and the
/// worker's reloads, all one up).
#[test]
fn a_failed_reload_keeps_the_worker_and_is_counted_as_in_haproxy() {
    let dir = TempDir::new("mcli-failed");
    let run = |bin: &Path, name: &str| {
        let front = free_addr();
        let (mut p, sock) = start(bin, name, &dir, front);
        let worker = children(p.pid())[0];
        std::fs::write(dir.join(&format!("{name}.cfg")), "global\n    nbthred 2\n").unwrap();
        ask(&sock, "reload");
        let mut proc = String::new();
        assert!(
            wait_until(Duration::from_secs(30), || {
                proc = mask_proc(&ask(&sock, "show proc"));
                proc.contains("[failed: 1]")
            }),
            "{name}: {proc}\n{}",
            p.dump()
        );
        assert_eq!(children(p.pid()), [worker], "{name}: the worker stayed");
        let served = ringlb_testkit::http_get(front, "/", &[]).unwrap();
        assert_eq!(served.text(), "ok", "{name}");
        p.stop(Duration::from_secs(10)).unwrap();
        proc
    };
    let got = run(&ringlb_testkit::bin_path("ringlb"), "ringlb");
    assert!(
        got.starts_with("#<PID> <type> <reloads> <uptime> <version>\nPID master 1 [failed: 1] UPTIME VERSION\n# workers\nPID worker 1 UPTIME VERSION\n"),
        "{got}"
    );
    if ringlb_testkit::haproxy_available() {
        let want = run(Path::new(&ringlb_testkit::haproxy_bin()), "haproxy");
        assert_eq!(got, want);
    }
}
