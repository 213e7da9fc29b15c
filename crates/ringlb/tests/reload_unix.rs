//! UNIX-socket binds across process reloads (issue #10, docs/adr/0005-seamless-reload.md):
//! like haproxy 2.6, the new process takes the old one's listening UNIX socket (`-x` on a
//! `stats socket ... expose-fd listeners`, or the master's private socket under `-W`) instead
//! of binding a new one and renaming it over the path. The socket's inode never changes across
//! 5 reloads of each kind, and clients connecting in a loop to the path during the reloads
//! see no error (no refused connection, no reset, no bad response). haproxy and ringlb take
//! over each other's UNIX listeners.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ringlb_testkit::{
    children, http_get_unix, runtime_command, unix_listening_inodes, wait_until, ChildGuard,
    TempDir,
};

const READY: Duration = Duration::from_secs(30);
const RELOADS: u32 = 5;
/// Clients connecting in a loop (2 cores: enough to keep a connection arriving at any time).
const CLIENTS: usize = 2;

/// One reload test at a time: each keeps both cores busy with its clients.
static SERIAL: Mutex<()> = Mutex::new(());

/// A frontend on `<dir>/fe.sock` answering `gen<N>`, and an admin socket exposing the
/// listeners at `<dir>/admin.sock`.
fn config(dir: &Path, generation: u32, nbthread: u32) -> String {
    format!(
        "global\n    nbthread {nbthread}\n    stats socket {d}/admin.sock mode 600 level admin expose-fd listeners\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {d}/fe.sock mode 666\n    \
         http-request return status 200 content-type text/plain string gen{generation}\n",
        d = dir.display()
    )
}

/// Clients requesting `/` on a new connection each, until stopped. Each returns how many
/// requests succeeded and every failure it saw.
struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(u64, Vec<String>)>>,
}

impl Clients {
    fn start(sock: &Path) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..CLIENTS)
            .map(|_| {
                let (stop, sock) = (stop.clone(), sock.to_path_buf());
                std::thread::spawn(move || {
                    let (mut ok, mut errors) = (0u64, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match http_get_unix(&sock, "/") {
                            Ok(r) if r.status == 200 && r.text().starts_with("gen") => ok += 1,
                            Ok(r) => errors.push(format!("status {}: {:?}", r.status, r.text())),
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                    (ok, errors)
                })
            })
            .collect();
        Clients { stop, threads }
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut ok = 0;
        let mut errors = Vec::new();
        for t in self.threads {
            let (n, e) = t.join().unwrap();
            ok += n;
            errors.extend(e);
        }
        (ok, errors)
    }
}

/// Waits until the path answers with `gen<N>` (after the old process left, only the new one
/// can).
fn serves(fe: &Path, generation: u32, p: &ChildGuard) {
    let want = format!("gen{generation}");
    assert!(
        wait_until(READY, || http_get_unix(fe, "/")
            .is_ok_and(|r| r.text() == want)),
        "{want} is not served\n{}",
        p.dump()
    );
}

/// Waits until the admin socket at `sock` is process `pid`'s (the next `-x` must reach it).
fn admin_of(sock: &Path, pid: u32) {
    let want = format!("Pid: {pid}\n");
    assert!(
        wait_until(READY, || runtime_command(sock, "show info")
            .is_ok_and(|o| o.contains(&want))),
        "{} is not process {pid}'s",
        sock.display()
    );
}

fn check_clients(name: &str, clients: Clients, what: &ChildGuard) {
    let (ok, errors) = clients.finish();
    eprintln!("{name}: {ok} requests served, {} errors", errors.len());
    assert!(ok > 0, "{name}: the clients were served");
    assert!(
        errors.is_empty(),
        "{name}: {} client errors across the reloads: {:?}\n{}",
        errors.len(),
        errors.iter().take(5).collect::<Vec<_>>(),
        what.dump()
    );
}

fn bin() -> PathBuf {
    ringlb_testkit::bin_path("ringlb")
}

/// Generation 0: a standalone ringlb serving the UNIX bind `fe.sock` of `dir` with 2 shards
/// (one listening socket), its admin socket answering.
struct First {
    dir: TempDir,
    fe: PathBuf,
    admin: PathBuf,
    cfg: PathBuf,
    proxy: ChildGuard,
    /// The inode of the one listening socket.
    inodes: Vec<String>,
}

fn start_first(name: &str) -> First {
    let dir = TempDir::new(name);
    let (fe, admin, cfg) = (
        dir.join("fe.sock"),
        dir.join("admin.sock"),
        dir.join("p.cfg"),
    );
    std::fs::write(&cfg, config(dir.path(), 0, 2)).unwrap();
    let proxy = ChildGuard::spawn("ringlb", Command::new(bin()).arg("-f").arg(&cfg)).unwrap();
    serves(&fe, 0, &proxy);
    admin_of(&admin, proxy.pid());
    let inodes = unix_listening_inodes(&fe);
    assert_eq!(inodes.len(), 1, "one socket for both shards: {inodes:?}");
    First {
        dir,
        fe,
        admin,
        cfg,
        proxy,
        inodes,
    }
}

/// Starts `program` (ringlb or haproxy) on `cfg` with `-x admin -sf <old>`: it takes the
/// old process's sockets and the old one finishes.
fn take_over(name: &str, program: &Path, cfg: &Path, admin: &Path, old: &ChildGuard) -> ChildGuard {
    let mut cmd = Command::new(program);
    cmd.arg("-f")
        .arg(cfg)
        .arg("-x")
        .arg(admin)
        .arg("-sf")
        .arg(old.pid().to_string());
    ChildGuard::spawn(name, &mut cmd).unwrap()
}

/// Standalone processes, each started with `-x <admin socket> -sf <previous>`.
#[test]
fn dash_x_hands_the_unix_bind_over_without_a_client_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let First {
        dir,
        fe,
        admin,
        cfg,
        proxy: mut current,
        inodes,
    } = start_first("reload-unix-x");
    let clients = Clients::start(&fe);
    let mut retired: Vec<ChildGuard> = Vec::new();
    for generation in 1..=RELOADS {
        std::fs::write(&cfg, config(dir.path(), generation, 2)).unwrap();
        let next = take_over("ringlb", &bin(), &cfg, &admin, &current);
        let mut old = std::mem::replace(&mut current, next);
        assert!(
            wait_until(READY, || !old.is_running()),
            "reload {generation}: the old process finished\n{}\n{}",
            old.dump(),
            current.dump()
        );
        serves(&fe, generation, &current);
        assert_eq!(
            unix_listening_inodes(&fe),
            inodes,
            "reload {generation}: the new process took the old socket\n{}",
            current.dump()
        );
        admin_of(&admin, current.pid());
        retired.push(old);
    }
    check_clients("-x -sf", clients, &current);
    assert!(fe.exists(), "the path still names the socket");
    current.stop(Duration::from_secs(10)).unwrap();
}

/// `-W`, SIGUSR2 x5: the master gives each new worker the old one's sockets.
#[test]
fn master_worker_reloads_hand_the_unix_bind_over_without_a_client_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("reload-unix-w");
    let (fe, cfg) = (dir.join("fe.sock"), dir.join("p.cfg"));
    std::fs::write(&cfg, config(dir.path(), 0, 2)).unwrap();
    let mut master =
        ChildGuard::spawn("ringlb", Command::new(bin()).arg("-W").arg("-f").arg(&cfg)).unwrap();
    serves(&fe, 0, &master);
    let inodes = unix_listening_inodes(&fe);
    assert_eq!(inodes.len(), 1, "{inodes:?}");
    let clients = Clients::start(&fe);
    let mut workers = children(master.pid());
    for generation in 1..=RELOADS {
        std::fs::write(&cfg, config(dir.path(), generation, 2)).unwrap();
        let before = workers.clone();
        master.signal(libc::SIGUSR2).unwrap();
        assert!(
            wait_until(READY, || {
                let now = children(master.pid());
                now.len() == 1 && now != before
            }),
            "reload {generation}: workers {:?}\n{}",
            children(master.pid()),
            master.dump()
        );
        workers = children(master.pid());
        serves(&fe, generation, &master);
        assert_eq!(
            unix_listening_inodes(&fe),
            inodes,
            "reload {generation}: the new worker took the old socket\n{}",
            master.dump()
        );
    }
    check_clients("-W SIGUSR2", clients, &master);
    master.stop(Duration::from_secs(10)).unwrap();
}

/// haproxy 2.6 takes ringlb's UNIX listener, and ringlb haproxy's (the same socket each time;
/// the `_getsocks` wire format and the temporary-name matching are haproxy's). No clients run
/// here: what haproxy loses in its own soft stop is not ringlb's to assert.
#[test]
fn haproxy_and_ringlb_take_over_each_others_unix_bind() {
    if !ringlb_testkit::haproxy_required() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let First {
        dir,
        fe,
        admin,
        cfg,
        proxy: mut a,
        inodes,
    } = start_first("reload-unix-haproxy");

    std::fs::write(&cfg, config(dir.path(), 1, 1)).unwrap();
    let haproxy = PathBuf::from(ringlb_testkit::haproxy_bin());
    let mut h = take_over("haproxy", &haproxy, &cfg, &admin, &a);
    assert!(wait_until(READY, || !a.is_running()), "{}", a.dump());
    serves(&fe, 1, &h);
    assert_eq!(
        unix_listening_inodes(&fe),
        inodes,
        "haproxy took ringlb's socket"
    );
    admin_of(&admin, h.pid());

    std::fs::write(&cfg, config(dir.path(), 2, 2)).unwrap();
    let mut b = take_over("ringlb", &bin(), &cfg, &admin, &h);
    assert!(wait_until(READY, || !h.is_running()), "{}", h.dump());
    serves(&fe, 2, &b);
    assert_eq!(
        unix_listening_inodes(&fe),
        inodes,
        "ringlb took haproxy's socket\n{}",
        b.dump()
    );
    for _ in 0..20 {
        assert_eq!(http_get_unix(&fe, "/").unwrap().text(), "gen2");
    }
    b.stop(Duration::from_secs(10)).unwrap();
}
