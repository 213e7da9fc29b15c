//! Runtime-socket commands that change frontends and process limits (issue #10): `disable`,
//! `enable` and `shutdown frontend`, `set maxconn frontend|global`, `set rate-limit`. The real
//! `ringlb` binary with two shards, and haproxy 2.6 on the same config as the reference for
//! the replies and the `show stat` / `show info` fields they change.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, runtime_command, wait_until, ChildGuard, Haproxy,
    Origins, Ringlb, TempDir,
};

const WAIT: Duration = Duration::from_secs(10);

struct Proxy {
    _dir: TempDir,
    _child: ChildGuard,
    front: SocketAddr,
    sock: PathBuf,
}

/// `haproxy` or `ringlb` on one config: frontend `fe` (maxconn 50) to the origin, global
/// maxconn 100, two threads / shards.
fn start(haproxy: bool, origin: SocketAddr) -> Proxy {
    let dir = TempDir::new(if haproxy { "rtcmd-hx" } else { "rtcmd-rl" });
    let front = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = config(&sock, &[front], origin);
    let path = dir.join("proxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = if haproxy {
        Haproxy::start(&path, &[front])
    } else {
        Ringlb::start(&path, &[front])
    };
    Proxy {
        _dir: dir,
        _child: child,
        front,
        sock,
    }
}

/// The config of [`start`], frontend `fe` listening on `binds`.
fn config(sock: &Path, binds: &[SocketAddr], origin: SocketAddr) -> String {
    let binds: String = binds.iter().map(|b| format!("    bind {b}\n")).collect();
    format!(
        "global\n    nbthread 2\n    maxconn 100\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n{binds}    maxconn 50\n    default_backend be\n\
         backend be\n    server s1 {origin}\n",
        sock.display()
    )
}

/// One command; retried while the socket cannot be reached (a proxy just started or
/// reloading has its listener up before its runtime socket).
fn cli(sock: &Path, cmd: &str) -> String {
    let mut answer = None;
    wait_until(WAIT, || {
        answer = runtime_command(sock, cmd).ok();
        answer.is_some()
    });
    answer.unwrap_or_else(|| panic!("{}: no answer to {cmd:?}", sock.display()))
}

/// `show stat` columns `status` and `slim` of the FRONTEND row.
fn fe_row(sock: &Path) -> (String, String) {
    let out = cli(sock, "show stat");
    let header: Vec<&str> = out.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("fe,FRONTEND,"))
        .unwrap()
        .split(',')
        .collect();
    (row[col("status")].to_string(), row[col("slim")].to_string())
}

/// Whether a new connection to `front` is refused, tried enough times to reach both shards.
fn refused(front: SocketAddr) -> bool {
    (0..8).all(|_| TcpStream::connect_timeout(&front, Duration::from_secs(2)).is_err())
}

/// The command script both proxies run, with what each prints and the state after it.
const FRONTEND_SCRIPT: &[&str] = &[
    "disable frontend fe",
    "disable frontend fe",
    "enable frontend fe",
    "enable frontend fe",
    "disable frontend nope",
    "set maxconn frontend fe 7",
    "set maxconn frontend nope 3",
    "set maxconn frontend fe",
    "set maxconn frontend fe -1",
    "shutdown frontend fe",
    "enable frontend fe",
    "disable frontend fe",
    "shutdown frontend fe",
];

/// Runs [`FRONTEND_SCRIPT`], checking traffic along the way; returns every reply and the
/// frontend's `show stat` status after each command.
fn frontend_script(p: &Proxy) -> Vec<(String, String, (String, String))> {
    assert_eq!(http_get(p.front, "/", &[]).unwrap().status, 200);
    let mut out = Vec::new();
    for cmd in FRONTEND_SCRIPT {
        let reply = cli(&p.sock, cmd);
        let row = fe_row(&p.sock);
        match *cmd {
            "disable frontend fe" if row.0 == "PAUSED" => {
                assert!(refused(p.front), "{cmd}: connections still accepted");
            }
            "enable frontend fe" if row.0 == "OPEN" => {
                for _ in 0..8 {
                    assert_eq!(http_get(p.front, "/", &[]).unwrap().status, 200, "{cmd}");
                }
            }
            "shutdown frontend fe" => assert!(refused(p.front), "{cmd}: still accepting"),
            _ => {}
        }
        out.push((cmd.to_string(), reply, row));
    }
    out
}

#[test]
fn disable_enable_shutdown_frontend_and_maxconn_frontend_as_haproxy() {
    let origins = Origins::start(1);
    let origin = origins.get(0).addr();
    let rl = frontend_script(&start(false, origin));
    // The transitions ringlb must show whatever haproxy does.
    let status: Vec<&str> = rl.iter().map(|(_, _, (s, _))| s.as_str()).collect();
    assert_eq!(
        status,
        [
            "PAUSED", "PAUSED", "OPEN", "OPEN", "OPEN", "OPEN", "OPEN", "OPEN", "OPEN", "STOP",
            "STOP", "STOP", "STOP"
        ]
    );
    assert_eq!(rl[1].1, "All sockets are already disabled.\n\n");
    assert_eq!(rl[5].2 .1, "7", "slim follows set maxconn frontend");
    if !haproxy_available() {
        eprintln!("haproxy not installed: ringlb checked alone");
        return;
    }
    let hx = frontend_script(&start(true, origin));
    for (r, h) in rl.iter().zip(&hx) {
        assert_eq!(r, h, "ringlb vs haproxy after `{}`", r.0);
    }
}

/// `show info` lines that the limits commands change.
fn info_limits(sock: &Path) -> Vec<String> {
    cli(sock, "show info")
        .lines()
        .filter(|l| {
            [
                "Maxconn:",
                "Hard_maxconn:",
                "ConnRateLimit:",
                "SessRateLimit:",
                "SslRateLimit:",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .map(str::to_string)
        .collect()
}

const LIMITS_SCRIPT: &[&str] = &[
    "set maxconn global 40",
    "set rate-limit connections global 33",
    "set rate-limit sessions global 22",
    "set rate-limit ssl-sessions global 11",
    "show info",
    "set maxconn global 1000",
    "set maxconn global",
    "set rate-limit connections global",
    "set rate-limit bogus global 3",
    "set maxconn global 0",
    "show info",
];

fn limits_script(p: &Proxy) -> Vec<(String, String)> {
    LIMITS_SCRIPT
        .iter()
        .map(|cmd| {
            let reply = if *cmd == "show info" {
                info_limits(&p.sock).join("\n")
            } else {
                cli(&p.sock, cmd)
            };
            (cmd.to_string(), reply)
        })
        .collect()
}

#[test]
fn global_limits_in_show_info_as_haproxy() {
    let origins = Origins::start(1);
    let origin = origins.get(0).addr();
    let rl = limits_script(&start(false, origin));
    assert_eq!(
        rl[4].1,
        "Maxconn: 40\nHard_maxconn: 100\nConnRateLimit: 33\nSessRateLimit: 22\nSslRateLimit: 11"
    );
    // `set maxconn global 0`: back to the hard limit.
    assert!(rl[10].1.starts_with("Maxconn: 100\n"), "{}", rl[10].1);
    // ringlb does not compress: said clearly rather than accepted and ignored.
    let p = start(false, origin);
    let r = cli(&p.sock, "set rate-limit http-compression global 5");
    assert!(r.contains("not supported"), "{r}");
    if !haproxy_available() {
        eprintln!("haproxy not installed: ringlb checked alone");
        return;
    }
    let hx = limits_script(&start(true, origin));
    assert_eq!(rl, hx);
}

/// A GET sent on `s`, whose answer bumps `answered` (the connection stays open).
fn get_in_background(mut s: TcpStream, answered: Arc<AtomicUsize>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 256];
        if let Ok(n) = s.read(&mut buf) {
            if n > 0 && buf.starts_with(b"HTTP/1.1 200") {
                answered.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Held open until the test ends: it counts against the frontend's maxconn.
        let _ = s.read(&mut buf);
    })
}

#[test]
fn set_maxconn_frontend_limits_and_raising_it_wakes_the_accepts() {
    let origins = Origins::start(1);
    let p = start(false, origins.get(0).addr());
    // Two shards: one connection each at most.
    assert_eq!(cli(&p.sock, "set maxconn frontend fe 2"), "\n");
    let answered = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let s = TcpStream::connect(p.front).unwrap();
        held.push(s.try_clone().unwrap());
        threads.push(get_in_background(s, answered.clone()));
    }
    assert!(wait_until(WAIT, || answered.load(Ordering::SeqCst) >= 1));
    // The third connection waits in the backlog whatever the shards got.
    std::thread::sleep(Duration::from_millis(300));
    let before = answered.load(Ordering::SeqCst);
    assert!(before <= 2, "maxconn 2 exceeded");
    // The answered connections are still open: they hold the frontend's slots.
    let scur = cli(&p.sock, "show stat")
        .lines()
        .find(|l| l.starts_with("fe,FRONTEND,"))
        .map(|l| l.split(',').nth(4).unwrap().to_string())
        .unwrap();
    assert_eq!(scur, before.to_string());
    let (_, slim) = fe_row(&p.sock);
    assert_eq!(slim, "2");
    assert_eq!(cli(&p.sock, "set maxconn frontend fe 100"), "\n");
    assert!(
        wait_until(WAIT, || answered.load(Ordering::SeqCst) == 3),
        "the waiting connection was not accepted after raising maxconn"
    );
    for s in &held {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    for t in threads {
        t.join().unwrap();
    }
}

/// Status of `be/s1` in `show stat`.
fn s1_status(sock: &Path) -> String {
    let out = cli(sock, "show stat");
    let header: Vec<&str> = out.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "status").unwrap();
    out.lines()
        .find(|l| l.starts_with("be,s1,"))
        .map(|l| l.split(',').nth(col).unwrap().to_string())
        .unwrap()
}

/// A server whose traffic port is closed, checked every 100 ms: `set server ... check-port`
/// moves its checks to a port that answers, and it comes UP.
fn check_port_script(haproxy: bool, open: SocketAddr) -> Vec<String> {
    let dir = TempDir::new(if haproxy { "rtcp-hx" } else { "rtcp-rl" });
    let front = free_addr();
    let closed = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n\
         frontend fe\n    bind {front}\n    default_backend be\n\
         backend be\n    server s1 {closed} check inter 100 fall 1 rise 1\n    server s2 {closed}\n",
        sock.display()
    );
    let path = dir.join("proxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let _child = if haproxy {
        Haproxy::start(&path, &[front])
    } else {
        Ringlb::start(&path, &[front])
    };
    assert!(wait_until(WAIT, || s1_status(&sock) == "DOWN"));
    let mut out = Vec::new();
    for cmd in [
        "set server be/s1 check-port",
        "set server be/s1 check-port 0",
        "set server be/s1 check-port 70000",
        "set server be/s2 check-port 80",
        "set server be/s1 check-port 70000",
    ] {
        out.push(cli(&sock, cmd));
    }
    assert_eq!(s1_status(&sock), "DOWN");
    out.push(cli(
        &sock,
        &format!("set server be/s1 check-port {}", open.port()),
    ));
    assert!(
        wait_until(WAIT, || s1_status(&sock) == "UP"),
        "checks did not move to the new port"
    );
    // `srv_check_port` (22nd field) of `show servers state`.
    let state = cli(&sock, "show servers state be");
    let row = state.lines().find(|l| l.contains(" s1 ")).unwrap();
    out.push(row.split(' ').nth(21).unwrap().to_string());
    out
}

#[test]
fn set_server_check_port_moves_the_checks_as_haproxy() {
    let origins = Origins::start(1);
    let open = origins.get(0).addr();
    let rl = check_port_script(false, open);
    assert_eq!(rl[0], "set server <b>/<s> check-port requires a port.\n\n");
    assert_eq!(rl[6], open.port().to_string());
    if !haproxy_available() {
        eprintln!("haproxy not installed: ringlb checked alone");
        return;
    }
    assert_eq!(rl, check_port_script(true, open));
}

/// `show errors` replies with the date masked.
fn show_errors_script(p: &Proxy) -> Vec<String> {
    [
        "show errors",
        "show errors fe response",
        "show errors nope",
        "show errors -1 request",
        "show errors 9",
    ]
    .iter()
    .map(|cmd| {
        let r = cli(&p.sock, cmd);
        match (r.find('['), r.find(']')) {
            (Some(a), Some(b)) if a < b => format!("{}[DATE]{}", &r[..a], &r[b + 1..]),
            _ => r,
        }
    })
    .collect()
}

#[test]
fn show_errors_without_captures_as_haproxy() {
    let origins = Origins::start(1);
    let origin = origins.get(0).addr();
    let p = start(false, origin);
    let rl = show_errors_script(&p);
    assert_eq!(rl[0], "Total events captured on [DATE] : 0\n\n");
    assert_eq!(rl[2], "No such proxy.\n\n");
    // The date is haproxy's: `[dd/Mon/yyyy:hh:mm:ss.mmm]`.
    let raw = cli(&p.sock, "show errors");
    let date = &raw[raw.find('[').unwrap() + 1..raw.find(']').unwrap()];
    assert_eq!(date.len(), 24, "{date}");
    assert_eq!(&date[2..3], "/");
    assert_eq!(&date[20..21], ".");
    if !haproxy_available() {
        eprintln!("haproxy not installed: ringlb checked alone");
        return;
    }
    assert_eq!(rl, show_errors_script(&start(true, origin)));
}

/// ringlb's in-process reload keeps what the runtime socket changed: a paused frontend stays
/// paused (its new listener too), the limits stay.
#[test]
fn frontend_state_and_limits_survive_an_in_process_reload() {
    let origins = Origins::start(1);
    let p = start(false, origins.get(0).addr());
    assert_eq!(cli(&p.sock, "disable frontend fe"), "\n");
    assert_eq!(cli(&p.sock, "set maxconn global 40"), "\n");
    assert_eq!(cli(&p.sock, "set maxconn frontend fe 9"), "\n");
    let second = free_addr();
    std::fs::write(
        p._dir.join("proxy.cfg"),
        config(&p.sock, &[p.front, second], origins.get(0).addr()),
    )
    .unwrap();
    let out = cli(&p.sock, "reload");
    assert!(
        out.starts_with("Configuration reloaded in process"),
        "{out}"
    );
    assert_eq!(fe_row(&p.sock), ("PAUSED".to_string(), "9".to_string()));
    assert!(info_limits(&p.sock).contains(&"Maxconn: 40".to_string()));
    assert!(refused(p.front), "old listener accepts while paused");
    assert!(refused(second), "new listener accepts while paused");
    assert_eq!(cli(&p.sock, "enable frontend fe"), "\n");
    for addr in [p.front, second] {
        for _ in 0..6 {
            assert_eq!(http_get(addr, "/", &[]).unwrap().status, 200);
        }
    }
}

/// `set rate-limit connections global 4`: the two shards accept about 4 connections a second
/// together (2 each); 0 lifts the limit.
#[test]
fn set_rate_limit_connections_throttles_accepts() {
    let origins = Origins::start(1);
    let p = start(false, origins.get(0).addr());
    let timed = |n: usize| {
        let t = std::time::Instant::now();
        for _ in 0..n {
            assert_eq!(http_get(p.front, "/", &[]).unwrap().status, 200);
        }
        t.elapsed()
    };
    assert_eq!(cli(&p.sock, "set rate-limit connections global 4"), "\n");
    let limited = timed(12);
    assert!(
        limited >= Duration::from_millis(1000),
        "12 connections at 4/s took {limited:?}"
    );
    assert_eq!(cli(&p.sock, "set rate-limit connections global 0"), "\n");
    // The window of the limited second must not slow the next ones down once lifted.
    let free = timed(12);
    assert!(free < limited, "unlimited {free:?} vs limited {limited:?}");
}

/// `set server ... check-port` survives an in-process reload that moves the server to
/// another index: its checks keep going to the new port (else it would fall DOWN at once).
#[test]
fn check_port_survives_an_in_process_reload() {
    let origins = Origins::start(1);
    let open = origins.get(0).addr();
    let dir = TempDir::new("rtcp-reload");
    let front = free_addr();
    let closed = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = |servers: &str| {
        format!(
            "global\n    nbthread 2\n    stats socket {} level admin\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n\
             frontend fe\n    bind {front}\n    default_backend be\nbackend be\n{servers}",
            sock.display()
        )
    };
    let s1 = format!("    server s1 {closed} check inter 100 fall 1 rise 1\n");
    let s0 = format!("    server s0 {closed}\n");
    let path = dir.join("proxy.cfg");
    std::fs::write(&path, cfg(&format!("{s0}{s1}"))).unwrap();
    let _child = Ringlb::start(&path, &[front]);
    assert!(wait_until(WAIT, || s1_status(&sock) == "DOWN"));
    cli(
        &sock,
        &format!("set server be/s1 check-port {}", open.port()),
    );
    assert!(wait_until(WAIT, || s1_status(&sock) == "UP"));
    std::fs::write(&path, cfg(&format!("{s1}{s0}"))).unwrap();
    let out = cli(&sock, "reload");
    assert!(
        out.starts_with("Configuration reloaded in process"),
        "{out}"
    );
    let state = cli(&sock, "show servers state be");
    let row = state.lines().find(|l| l.contains(" s1 ")).unwrap();
    assert_eq!(row.split(' ').nth(21).unwrap(), open.port().to_string());
    // Several check intervals (fall 1): a check on the closed port would mark it DOWN.
    assert!(wait_until(WAIT, || s1_status(&sock) == "UP"));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(s1_status(&sock), "UP");
}
