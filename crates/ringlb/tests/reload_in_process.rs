//! In-process reload (issue #10, "beyond HAProxy"): the runtime socket's `reload` and SIGUSR2
//! swap a new configuration into the running process. The real binary with two shards and
//! real origins: new requests follow the new configuration while a request started before
//! finishes on the old one; runtime changes (drain, dynamic servers) and stick-table entries
//! survive; a broken configuration changes nothing and the answer names the error; reloads
//! under load lose no request.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlb_testkit::{free_addr, http_get, wait_until, Conn, Origins, Ringlb, TempDir};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Starting under CI load (two test files at once on two cores, debug binaries).
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn cli(sock: &Path, cmd: &str) -> String {
    ringlb_testkit::runtime_command(sock, cmd)
        .unwrap_or_else(|e| panic!("{cmd} on {}: {e}", sock.display()))
}

/// A configuration with two shards, an admin socket and `body` after the defaults.
fn config(dir: &Path, nbthread: u32, body: &str) -> String {
    format!(
        "global\n    stats socket {d}/admin.sock level admin\n    nbthread {nbthread}\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         {body}",
        d = dir.display()
    )
}

/// Waits until the runtime socket answers (the file appears when bound, the socket answers
/// once listening).
fn wait_for_socket(sock: &Path, pid: u32) {
    let mut last = String::new();
    let ok = wait_until(START_TIMEOUT, || {
        match ringlb_testkit::runtime_command(sock, "show cli level") {
            Ok(out) if out.contains("admin") => true,
            Ok(out) => {
                last = format!("answer {out:?}");
                false
            }
            Err(e) => {
                last = format!("{e}");
                false
            }
        }
    });
    if !ok {
        let bt = std::process::Command::new("gdb")
            .args([
                "-p",
                &pid.to_string(),
                "-batch",
                "-ex",
                "thread apply all bt 12",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        // Where ringlb's threads wait (gdb, when installed): tells a stall from slowness.
        panic!("{} does not answer: {last}\n{bt}", sock.display());
    }
}

fn start(
    dir: &TempDir,
    front: SocketAddr,
    text: &str,
) -> (ringlb_testkit::ChildGuard, std::path::PathBuf) {
    let path = dir.join("p.cfg");
    std::fs::write(&path, text).unwrap();
    let proxy = Ringlb::start(&path, &[front]);
    let sock = dir.join("admin.sock");
    wait_for_socket(&sock, proxy.pid());
    (proxy, sock)
}

#[test]
fn new_config_serves_new_requests_and_runtime_state_survives() {
    let dir = TempDir::new("reload-inproc");
    let origins = Origins::start(3);
    let [o1, o2, o3] = [0, 1, 2].map(|i| origins.get(i).addr());
    let front = free_addr();
    let table = "backend st\n    stick-table type ip size 1k expire 10m store gpc0\n";
    let before = format!(
        "frontend fe\n    bind {front}\n    default_backend be\n\
         backend be\n    balance roundrobin\n    server s1 {o1}\n    server s2 {o2}\n{table}"
    );
    let (proxy, sock) = start(&dir, front, &config(dir.path(), 2, &before));

    // Runtime changes: s2 drained, a dynamic server (in maintenance), a stick-table entry.
    assert_eq!(cli(&sock, "set server be/s2 state drain"), "\n");
    assert_eq!(
        cli(&sock, &format!("add server be/dyn {o3}")),
        "New server registered.\n\n"
    );
    assert_eq!(cli(&sock, "set table st key 10.0.0.1 data.gpc0 5"), "\n");
    let counts = ringlb_testkit::served_by(front, 10).unwrap();
    assert_eq!(counts.get("s1"), Some(&10), "{counts:?}");

    // A long request on the old configuration, started before the reload.
    let slow = std::thread::spawn(move || {
        let mut c = Conn::connect(front).unwrap();
        c.set_timeout(IO_TIMEOUT).unwrap();
        c.get("/slow/1500").unwrap()
    });
    // It reached s1 (the only server taking new requests) before we reload.
    std::thread::sleep(Duration::from_millis(300));

    // New configuration: s1 removed, s3 added, a deny rule.
    let after = format!(
        "frontend fe\n    bind {front}\n    http-request deny if {{ path_beg /blocked }}\n    default_backend be\n\
         backend be\n    balance roundrobin\n    server s2 {o2}\n    server s3 {o3}\n{table}"
    );
    std::fs::write(dir.join("p.cfg"), config(dir.path(), 2, &after)).unwrap();
    let out = cli(&sock, "reload");
    assert!(
        out.starts_with("Configuration reloaded in process (epoch 1)"),
        "{out}\n{}",
        proxy.dump()
    );

    // New requests: s2 stays drained, s1 is gone, so s3 answers; the rule applies.
    let counts = ringlb_testkit::served_by(front, 20).unwrap();
    assert_eq!(counts.get("s3"), Some(&20), "{counts:?}");
    assert_eq!(http_get(front, "/blocked", &[]).unwrap().status, 403);
    // The old epoch's request finished on s1.
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-origin"), Some("s1"));

    // The runtime state came along: drain, the dynamic server (still in maintenance), the
    // stick-table entry.
    let state = cli(&sock, "show servers state be");
    let row = |name: &str| {
        state
            .lines()
            .find(|l| l.split(' ').nth(3) == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{state}"))
            .to_string()
    };
    // srv_admin_state (column 7): 8 = drain, 1 = maintenance (forced).
    assert_eq!(row("s2").split(' ').nth(6), Some("8"), "{state}");
    assert_eq!(row("dyn").split(' ').nth(6), Some("1"), "{state}");
    assert!(!state.contains(" s1 "), "{state}");
    // Statistics follow the new configuration (counters restart with the epoch).
    let stat = cli(&sock, "show stat");
    assert!(!stat.contains("\nbe,s1,"), "{stat}");
    let s3 = stat
        .lines()
        .find(|l| l.starts_with("be,s3,"))
        .unwrap_or_else(|| panic!("{stat}"));
    let stot: u64 = s3.split(',').nth(7).unwrap().parse().unwrap();
    assert!(
        stot >= 20,
        "both shards count the new epoch's requests: {s3}"
    );
    let t = cli(&sock, "show table st");
    assert!(t.contains("key=10.0.0.1") && t.contains("gpc0=5"), "{t}");
    // Back to ready: s2 takes traffic again in the new epoch.
    assert_eq!(cli(&sock, "set server be/s2 state ready"), "\n");
    let counts = ringlb_testkit::served_by(front, 20).unwrap();
    // Each shard alternates on its own: about half each.
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert!(n("s2") >= 5 && n("s3") >= 5, "{counts:?}");
}

#[test]
fn a_broken_or_out_of_scope_config_changes_nothing() {
    let dir = TempDir::new("reload-broken");
    let origins = Origins::start(2);
    let front = free_addr();
    let body = |server: &str| {
        format!(
            "frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server {server}\n"
        )
    };
    let good = body(&format!("s1 {}", origins.get(0).addr()));
    let (proxy, sock) = start(&dir, front, &config(dir.path(), 2, &good));

    // A keyword error (line 11 of the file): the answer names file, line and keyword.
    let broken = format!(
        "{}    bogus-keyword on\n",
        body(&format!("s2 {}", origins.get(1).addr()))
    );
    let path = dir.join("p.cfg");
    std::fs::write(&path, config(dir.path(), 2, &broken)).unwrap();
    let out = cli(&sock, "reload");
    assert!(out.starts_with("Reload failed, nothing changed"), "{out}");
    assert!(
        out.contains(&format!("[{}:14]", path.display())) && out.contains("bogus-keyword"),
        "{out}"
    );
    assert_eq!(
        ringlb_testkit::served_by(front, 6).unwrap().get("s1"),
        Some(&6)
    );
    // The log says why too.
    assert!(
        wait_until(IO_TIMEOUT, || proxy.stderr().contains("Reload failed")),
        "{}",
        proxy.dump()
    );

    // What a running process cannot change is refused, naming the keyword.
    let more_threads = body(&format!("s2 {}", origins.get(1).addr()));
    std::fs::write(&path, config(dir.path(), 3, &more_threads)).unwrap();
    let out = cli(&sock, "reload");
    assert!(
        out.contains("Reload refused, nothing changed: 'nbthread' changed")
            && out.contains("process reload"),
        "{out}"
    );
    assert_eq!(
        ringlb_testkit::served_by(front, 6).unwrap().get("s1"),
        Some(&6)
    );

    // A new bind on a port another program holds: refused before anything changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let with_bind = good.replace(
        "    default_backend be\n",
        &format!(
            "    bind {}\n    default_backend be\n",
            taken.local_addr().unwrap()
        ),
    );
    std::fs::write(&path, config(dir.path(), 2, &with_bind)).unwrap();
    let out = cli(&sock, "reload");
    assert!(
        out.contains("Reload refused, nothing changed: Starting frontend fe: cannot bind socket"),
        "{out}"
    );
    assert_eq!(
        ringlb_testkit::served_by(front, 4).unwrap().get("s1"),
        Some(&4)
    );

    // SIGUSR2 (no master-worker) reloads in process as well.
    std::fs::write(&path, config(dir.path(), 2, &more_threads)).unwrap();
    let mut proxy = proxy;
    proxy.signal(libc_sigusr2()).unwrap();
    assert!(
        wait_until(IO_TIMEOUT, || {
            ringlb_testkit::served_by(front, 2).is_ok_and(|c| c.get("s2") == Some(&2))
        }),
        "{}",
        proxy.dump()
    );
    assert!(proxy.is_running());
}

fn libc_sigusr2() -> i32 {
    12 // SIGUSR2 on Linux
}

/// Three reloads while clients send requests, on keep-alive and on fresh connections: every
/// request gets a 2xx answer.
#[test]
fn reloads_under_load_lose_no_request() {
    let dir = TempDir::new("reload-load");
    let origins = Origins::start(2);
    let front = free_addr();
    let body = |servers: &str| {
        format!("frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    balance roundrobin\n{servers}")
    };
    let one = body(&format!("    server s1 {}\n", origins.get(0).addr()));
    let two = body(&origins.server_lines(""));
    let (proxy, sock) = start(&dir, front, &config(dir.path(), 2, &one));

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for keep_alive in [true, true, false, false] {
        let (stop, errors, done) = (stop.clone(), errors.clone(), done.clone());
        clients.push(std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut conn: Option<Conn> = None;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let r = if keep_alive {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => {
                            let c = Conn::connect(front).unwrap();
                            c.set_timeout(IO_TIMEOUT).unwrap();
                            conn.insert(c)
                        }
                    };
                    let r = c.get("/");
                    if r.as_ref().map_or(true, |r| r.closes()) {
                        conn = None;
                    }
                    r
                } else {
                    http_get(front, "/", &[])
                };
                match r {
                    Ok(r) if (200..300).contains(&r.status) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => errors.lock().unwrap().push(format!("status {}", r.status)),
                    Err(e) => errors.lock().unwrap().push(format!("{e}")),
                }
            }
        }));
    }
    let path = dir.join("p.cfg");
    for (i, text) in [&two, &one, &two].into_iter().enumerate() {
        // Some requests before each reload (bounded wait, no fixed sleep).
        let seen = done.load(Ordering::Relaxed);
        assert!(wait_until(IO_TIMEOUT, || done.load(Ordering::Relaxed) >= seen + 50));
        std::fs::write(&path, config(dir.path(), 2, text)).unwrap();
        let out = cli(&sock, "reload");
        assert!(
            out.starts_with(&format!(
                "Configuration reloaded in process (epoch {})",
                i + 1
            )),
            "{out}"
        );
    }
    let seen = done.load(Ordering::Relaxed);
    assert!(wait_until(IO_TIMEOUT, || done.load(Ordering::Relaxed) >= seen + 50));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} errors of {}: {:?}\n{}",
        errors.len(),
        done.load(Ordering::Relaxed),
        &errors[..errors.len().min(10)],
        proxy.dump()
    );
    // The last configuration (both servers) is in force.
    let counts = ringlb_testkit::served_by(front, 10).unwrap();
    assert_eq!(counts.len(), 2, "{counts:?}");
}

/// `-W` with `reload-mode in-process`: the master passes SIGUSR2 to its worker, which reloads
/// itself (same process, runtime changes kept) instead of being replaced.
#[test]
fn master_worker_passes_sigusr2_to_the_worker_in_in_process_mode() {
    let dir = TempDir::new("reload-mw");
    let origins = Origins::start(3);
    let front = free_addr();
    let body = |servers: &str| {
        format!("frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    balance roundrobin\n{servers}")
    };
    let text = |servers: &str| {
        config(dir.path(), 2, &body(servers)).replacen(
            "global\n",
            "global\n    reload-mode in-process\n",
            1,
        )
    };
    let (o1, o2, o3) = (
        origins.get(0).addr(),
        origins.get(1).addr(),
        origins.get(2).addr(),
    );
    let path = dir.join("p.cfg");
    std::fs::write(
        &path,
        text(&format!("    server s1 {o1}\n    server s2 {o2}\n")),
    )
    .unwrap();
    let mut master =
        Ringlb::start_args(&["-W".as_ref(), "-f".as_ref(), path.as_os_str()], &[front]);
    let sock = dir.join("admin.sock");
    wait_for_socket(&sock, master.pid());
    let worker_pid = |info: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix("Pid: "))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{info}"))
    };
    let before = worker_pid(&cli(&sock, "show info"));
    assert_eq!(cli(&sock, "set server be/s2 state maint"), "\n");

    std::fs::write(
        &path,
        text(&format!(
            "    server s1 {o1}\n    server s2 {o2}\n    server s3 {o3}\n"
        )),
    )
    .unwrap();
    master.signal(libc_sigusr2()).unwrap();
    assert!(
        wait_until(IO_TIMEOUT, || ringlb_testkit::served_by(front, 4)
            .is_ok_and(|c| c.contains_key("s3"))),
        "{}",
        master.dump()
    );
    let counts = ringlb_testkit::served_by(front, 20).unwrap();
    assert_eq!(
        counts.get("s2"),
        None,
        "s2 stays in maintenance: {counts:?}"
    );
    assert_eq!(worker_pid(&cli(&sock, "show info")), before, "same worker");
    assert!(
        master.stderr().contains("Reloading in process"),
        "{}",
        master.dump()
    );
}

/// The client ports an origin saw (its request log: `s1 127.0.0.1:PORT "GET ..."`).
fn origin_ports(o: &ringlb_testkit::Origin) -> Vec<String> {
    o.guard()
        .stderr()
        .lines()
        .filter(|l| l.contains("\"GET "))
        .filter_map(|l| l.split(' ').nth(1).map(str::to_string))
        .collect()
}

/// Idle connections to a server that keeps its name and address move to the new epoch: the
/// requests after the reload reach the origin on connections it already knew.
#[test]
fn idle_server_connections_survive_the_reload() {
    let dir = TempDir::new("reload-idle");
    let origins = Origins::start(1);
    let front = free_addr();
    let body = |rule: &str| {
        format!(
            "frontend fe\n    bind {front}\n{rule}    default_backend be\nbackend be\n    http-reuse always\n    server s1 {}\n",
            origins.get(0).addr()
        )
    };
    let (_proxy, sock) = start(&dir, front, &config(dir.path(), 2, &body("")));
    // One client connection at a time: each shard ends with one idle connection to s1.
    ringlb_testkit::served_by(front, 10).unwrap();
    assert!(wait_until(IO_TIMEOUT, || origin_ports(origins.get(0))
        .len()
        == 10));
    let before = origin_ports(origins.get(0));
    let known: std::collections::HashSet<_> = before.iter().cloned().collect();
    assert!(known.len() <= 2, "pooled and reused: {before:?}");

    std::fs::write(
        dir.join("p.cfg"),
        config(
            dir.path(),
            2,
            &body("    http-request set-header x-epoch 2\n"),
        ),
    )
    .unwrap();
    let out = cli(&sock, "reload");
    assert!(
        out.starts_with("Configuration reloaded in process"),
        "{out}"
    );
    ringlb_testkit::served_by(front, 10).unwrap();
    assert!(wait_until(IO_TIMEOUT, || origin_ports(origins.get(0))
        .len()
        == 20));
    let after = origin_ports(origins.get(0));
    let reused = after[10..].iter().filter(|p| known.contains(*p)).count();
    assert_eq!(reused, 10, "before {before:?}, after {:?}", &after[10..]);
}

/// Listeners: an unchanged bind keeps its socket (same inode in the process), a new bind
/// serves, a removed one stops accepting.
#[test]
fn binds_are_kept_added_and_removed() {
    let dir = TempDir::new("reload-binds");
    let origins = Origins::start(1);
    let (a, b, c) = (free_addr(), free_addr(), free_addr());
    let body = |binds: &[SocketAddr]| {
        let lines: String = binds.iter().map(|x| format!("    bind {x}\n")).collect();
        format!(
            "frontend fe\n{lines}    default_backend be\nbackend be\n    server s1 {}\n",
            origins.get(0).addr()
        )
    };
    let path = dir.join("p.cfg");
    std::fs::write(&path, config(dir.path(), 2, &body(&[a, b]))).unwrap();
    let proxy = Ringlb::start(&path, &[a, b]);
    let sock = dir.join("admin.sock");
    wait_for_socket(&sock, proxy.pid());
    let inodes = |port: u16| listening_inodes(proxy.pid(), port);
    let kept = inodes(a.port());
    assert_eq!(kept.len(), 2, "one socket per shard");

    std::fs::write(&path, config(dir.path(), 2, &body(&[a, c]))).unwrap();
    let out = cli(&sock, "reload");
    assert!(
        out.starts_with("Configuration reloaded in process"),
        "{out}"
    );
    assert_eq!(
        inodes(a.port()),
        kept,
        "the unchanged bind keeps its sockets"
    );
    assert_eq!(http_get(a, "/", &[]).unwrap().status, 200);
    assert_eq!(http_get(c, "/", &[]).unwrap().status, 200);
    assert!(
        wait_until(IO_TIMEOUT, || inodes(b.port()).is_empty()
            && std::net::TcpStream::connect(b).is_err()),
        "the removed bind is closed"
    );
}

/// Inodes of the TCP sockets of `pid` listening on `port` (from /proc/net/tcp and the
/// process's descriptors).
fn listening_inodes(pid: u32, port: u16) -> Vec<String> {
    let listening: std::collections::HashSet<String> =
        ringlb_testkit::listening_inodes(port).into_iter().collect();
    let mut out: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            let s = link.to_string_lossy();
            let inode = s.strip_prefix("socket:[")?.strip_suffix(']')?.to_string();
            listening.contains(&inode).then_some(inode)
        })
        .collect();
    out.sort();
    out
}

/// Health checks follow the new configuration: a server DOWN by its check stays DOWN across
/// the reload (its position in the backend changed), the checks keep running and bring it
/// back when it recovers.
#[test]
fn health_state_survives_and_checks_keep_running() {
    let dir = TempDir::new("reload-health");
    let mut origins = Origins::start(3);
    let front = free_addr();
    let (o1, o2, o3) = (
        origins.get(0).addr(),
        origins.get(1).addr(),
        origins.get(2).addr(),
    );
    let chk = "check inter 100ms fall 1 rise 1";
    let body = |servers: &str| {
        format!(
            "frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    balance roundrobin\n    option httpchk GET /health\n{servers}"
        )
    };
    let (proxy, sock) = start(
        &dir,
        front,
        &config(
            dir.path(),
            2,
            &body(&format!(
                "    server s1 {o1} {chk}\n    server s2 {o2} {chk}\n"
            )),
        ),
    );
    origins.get_mut(1).stop();
    let only_s1 = || ringlb_testkit::served_by(front, 6).is_ok_and(|c| c.get("s1") == Some(&6));
    assert!(wait_until(IO_TIMEOUT, only_s1), "{}", proxy.dump());

    // s3 comes first now; s2 moves to the third place.
    std::fs::write(
        dir.join("p.cfg"),
        config(
            dir.path(),
            2,
            &body(&format!(
                "    server s3 {o3} {chk}\n    server s1 {o1} {chk}\n    server s2 {o2} {chk}\n"
            )),
        ),
    )
    .unwrap();
    let out = cli(&sock, "reload");
    assert!(
        out.starts_with("Configuration reloaded in process"),
        "{out}"
    );
    let counts = ringlb_testkit::served_by(front, 12).unwrap();
    assert_eq!(counts.get("s2"), None, "s2 is still down: {counts:?}");
    assert!(counts.contains_key("s3"), "{counts:?}");

    origins.get_mut(1).restart();
    assert!(
        wait_until(IO_TIMEOUT, || ringlb_testkit::served_by(front, 6)
            .is_ok_and(|c| c.contains_key("s2"))),
        "the new checks bring s2 back\n{}",
        proxy.dump()
    );
}
