//! Runtime-socket commands answered by the shards (issue #10): `show sess`, `shutdown
//! session`, `show errors`, `show activity`, `show pools`. The real `ringlb` binary with two
//! shards, driven over its UNIX socket like socat does, and compared with haproxy 2.6 on the
//! same config (pointers, dates, ports, ages and haproxy-internal flags masked).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, runtime_command, wait_until, ChildGuard, Haproxy, Ringlb, TempDir,
};

const WAIT: Duration = Duration::from_secs(10);

/// Origins: one that accepts and never answers (a request stays in flight), one that answers
/// every request with a malformed response head (`Bad Header`). Stopped when dropped.
struct Origins {
    hang: SocketAddr,
    bad: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Origins {
    fn start() -> Origins {
        let stop = Arc::new(AtomicBool::new(false));
        let hang = TcpListener::bind("127.0.0.1:0").unwrap();
        let bad = TcpListener::bind("127.0.0.1:0").unwrap();
        let (hang_addr, bad_addr) = (hang.local_addr().unwrap(), bad.local_addr().unwrap());
        let serve = |l: TcpListener, answer: Option<&'static [u8]>, stop: Arc<AtomicBool>| {
            l.set_nonblocking(true).unwrap();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match l.accept() {
                        Ok((mut c, _)) => {
                            if let Some(a) = answer {
                                c.set_nonblocking(false).unwrap();
                                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                                let mut buf = [0u8; 4096];
                                let _ = c.read(&mut buf);
                                let _ = c.write_all(a);
                            }
                            held.push(c);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        let threads = vec![
            serve(hang, None, stop.clone()),
            serve(
                bad,
                Some(b"HTTP/1.1 200 OK\r\nBad Header: y\r\nContent-Length: 0\r\n\r\n"),
                stop.clone(),
            ),
        ];
        Origins {
            hang: hang_addr,
            bad: bad_addr,
            stop,
            threads,
        }
    }
}

impl Drop for Origins {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Proxy {
    _dir: TempDir,
    child: ChildGuard,
    fe: SocketAddr,
    fe_bad: SocketAddr,
    sock: PathBuf,
}

fn start(haproxy: bool, o: &Origins) -> Proxy {
    let dir = TempDir::new(if haproxy { "rteng-hx" } else { "rteng-rl" });
    let (fe, fe_bad) = (free_addr(), free_addr());
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {} level admin\n    log stdout format raw local0\n\
         defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 20s\n    timeout server 20s\n\
         frontend fe_main\n    bind {fe}\n    default_backend be_app\n\
         backend be_app\n    server s1 {}\n\
         frontend fe_bad\n    bind {fe_bad}\n    default_backend be_bad\n\
         backend be_bad\n    server b1 {}\n",
        sock.display(),
        o.hang,
        o.bad
    );
    let path = dir.join("proxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = if haproxy {
        Haproxy::start(&path, &[fe, fe_bad])
    } else {
        Ringlb::start(&path, &[fe, fe_bad])
    };
    // The runtime socket may come up just after the listeners.
    assert!(wait_until(WAIT, || runtime_command(&sock, "help").is_ok()));
    Proxy {
        _dir: dir,
        child,
        fe,
        fe_bad,
        sock,
    }
}

fn cli(sock: &Path, cmd: &str) -> String {
    runtime_command(sock, cmd).unwrap()
}

/// Values that differ from run to run or describe haproxy's internals, replaced by `*`:
/// pointers, dates, ports, ages, counters of task calls, flags and timers.
fn mask(text: &str) -> String {
    const KEYS: &[&str] = &[
        "epoch", "age", "calls", "rate", "cpu", "lat", "rq", "rp", "scf", "scb", "exp", "c_exp",
        "flags", "srv_conn", "task", "state", "tmask", "id", "nice", "fd",
    ];
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let mut words = Vec::new();
        for w in line.trim_end_matches('\n').split(' ') {
            let masked = if w.starts_with("0x") && w.ends_with(':') {
                "0x*:".to_string()
            } else if w.starts_with('[') && w.ends_with(']') && w.contains('/') {
                "[DATE]".to_string()
            } else if let Some((k, v)) = w.split_once('=') {
                let k2 = k.trim_start_matches('(');
                if KEYS.contains(&k2) {
                    format!("{k}=*")
                } else if k == "src" || k == "source" || k == "addr" {
                    format!("{k}={}", strip_port(v))
                } else {
                    w.to_string()
                }
            } else if w.starts_with("127.0.0.1:") {
                format!(
                    "{}{}",
                    strip_port(w),
                    if w.ends_with(',') { "," } else { "" }
                )
            } else {
                w.to_string()
            };
            words.push(masked);
        }
        out.push_str(&words.join(" "));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn strip_port(v: &str) -> String {
    match v.trim_end_matches(',').rsplit_once(':') {
        Some((ip, _)) => format!("{ip}:*"),
        None => v.to_string(),
    }
}

/// Opens a connection and sends a request the hanging origin will never answer; returns once
/// the proxy lists a stream for it.
fn request_in_flight(p: &Proxy) -> (TcpStream, String) {
    let mut c = TcpStream::connect(p.fe).unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    assert!(
        wait_until(WAIT, || {
            line = cli(&p.sock, "show sess")
                .lines()
                .find(|l| l.contains(" fe=fe_main ") && l.contains(" srv=s1 "))
                .unwrap_or("")
                .to_string();
            !line.is_empty()
        }),
        "no stream listed"
    );
    (c, line)
}

/// What `show sess`, `show sess <id>` and `shutdown session` print for a request in flight,
/// masked; the client connection must be closed by the shutdown.
fn sess_script(p: &Proxy) -> Vec<String> {
    let (mut client, line) = request_in_flight(p);
    let id = line.split(':').next().unwrap().to_string();
    let mut out = vec![mask(&line)];
    let full = cli(&p.sock, &format!("show sess {id}"));
    // Stream, flags, frontend and server lines; the backend line has the server
    // connection's local address in haproxy (ringlb does not track it).
    for n in [0, 1, 2, 4] {
        out.push(mask(full.lines().nth(n).unwrap_or("")));
    }
    let all = cli(&p.sock, "show sess all");
    assert!(all.contains(&format!("{id}: [")), "{all}");
    out.push(cli(&p.sock, &format!("shutdown session {id}")));
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // haproxy answers a stream killed while its server has the request with a 502 (logged
    // `KH`) and keeps the client connection, as after other 502s.
    let mut answer = vec![0u8; 4096];
    let n = client.read(&mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    out.push(format!(
        "client got: {}",
        answer.lines().next().unwrap_or("")
    ));
    out.push(cli(&p.sock, &format!("shutdown session {id}")));
    let mut eof = [0u8; 16];
    // (haproxy may keep it: bounded wait.)
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    out.push(format!(
        "then: {:?}",
        client.read(&mut eof).map(|n| n == 0).ok()
    ));
    out.push(cli(&p.sock, "shutdown session"));
    out.push(cli(&p.sock, "shutdown session foo"));
    out.push(cli(&p.sock, "show sess 0x1234"));
    out
}

#[test]
fn show_sess_lists_a_request_in_flight_and_shutdown_session_closes_it() {
    let o = Origins::start();
    let p = start(false, &o);
    let rl = sess_script(&p);
    assert_eq!(
        rl[0],
        "0x*: proto=tcpv4 src=127.0.0.1:* fe=fe_main be=be_app srv=s1 ts=00 epoch=* age=* \
         calls=* rate=* cpu=* lat=* rq=* rp=* scf=* scb=* exp=* rc=0 c_exp=*"
            .replace("rq=*", "rq[f=0h,i=0,an=00h,rx=,wx=,ax=]")
            .replace("rp=*", "rp[f=0h,i=0,an=00h,rx=,wx=,ax=]"),
        "{rl:?}"
    );
    assert_eq!(rl[5], "\n", "shutdown answers nothing");
    assert_eq!(
        rl[6], "client got: HTTP/1.1 502 Bad Gateway",
        "the killed stream's answer"
    );
    // The id names the client connection, kept after the 502: the second shutdown closes it.
    assert_eq!(rl[7], "\n");
    assert_eq!(rl[8], "then: Some(true)", "closed");
    assert_eq!(rl[9], "Session pointer expected (use 'show sess').\n\n");
    assert_eq!(rl[11], "Session not found.\n\n");
    // Logged with haproxy's termination state for a killed stream.
    assert!(
        wait_until(WAIT, || p.child.stdout().contains(" 502 ")
            && p.child.stdout().contains(" KH-- ")),
        "{}",
        p.child.stdout()
    );
    // The stream is gone from the list.
    assert!(wait_until(WAIT, || !cli(&p.sock, "show sess").contains(" fe=fe_main ")));
    // Both sockets' descriptors while the request waits for its server.
    let (_client, raw) = request_in_flight(&p);
    let fd = |side: &str| -> i32 {
        let pat = format!("{side}=[8,0h,fd=");
        let at = raw.find(&pat).unwrap() + pat.len();
        raw[at..].split(']').next().unwrap().parse().unwrap()
    };
    assert!(
        fd("scf") > 2 && fd("scb") > 2 && fd("scf") != fd("scb"),
        "{raw}"
    );
    if !haproxy_available() {
        eprintln!("haproxy not installed: ringlb checked alone");
        return;
    }
    let hx_proxy = start(true, &o);
    let hx = sess_script(&hx_proxy);
    assert!(
        wait_until(WAIT, || hx_proxy.child.stdout().contains(" KH-- ")),
        "{}",
        hx_proxy.child.stdout()
    );
    // haproxy's stream flags and buffers say more; compare what both know.
    let fields = |l: &str| {
        l.split(' ')
            .filter(|w| !w.starts_with("rq[") && !w.starts_with("rp["))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(&rl[0]), fields(&hx[0]));
    // Not the second `shutdown session` of the same id: haproxy's stream pointer may name a
    // new stream by then (its memory is reused), or none.
    assert_eq!(rl[1..7], hx[1..7]);
    assert_eq!(rl[9..], hx[9..]);
}

/// `show errors` after one malformed response and one malformed request: the same dump as
/// haproxy's but for dates and ports.
fn errors_script(p: &Proxy) -> Vec<String> {
    let mut c = TcpStream::connect(p.fe_bad).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 502"));
    assert!(wait_until(WAIT, || cli(&p.sock, "show errors").contains(": 1\n")));
    let mut c = TcpStream::connect(p.fe).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 400"));
    assert!(wait_until(WAIT, || cli(&p.sock, "show errors").contains(": 2\n")));
    [
        "show errors",
        "show errors fe_main",
        "show errors be_bad response",
        "show errors be_bad request",
        "show errors nope",
    ]
    .iter()
    .map(|cmd| mask(&cli(&p.sock, cmd)))
    .collect()
}

#[test]
fn show_errors_captures_invalid_requests_and_responses_as_haproxy() {
    let o = Origins::start();
    let p = start(false, &o);
    let rl = errors_script(&p);
    assert!(
        rl[0].contains(
            "[DATE] frontend fe_main (#2): invalid request\n  backend <NONE> (#-1), server <NONE> (#-1), event #1, src 127.0.0.1:*\n"
        ),
        "{}",
        rl[0]
    );
    assert!(
        rl[0].contains("  00025  Bad Header: y\\r\\n\n"),
        "{}",
        rl[0]
    );
    assert!(
        rl[0].contains("[DATE] backend be_bad (#5): invalid response\n  frontend fe_bad (#4), server b1 (#1), event #0"),
        "{}",
        rl[0]
    );
    assert_eq!(rl[4], "No such proxy.\n\n");
    if !haproxy_available() {
        eprintln!("haproxy not installed: ringlb checked alone");
        return;
    }
    let hx = errors_script(&start(true, &o));
    assert_eq!(rl, hx);
}

/// `show activity` and `show pools`: haproxy's layout (row names, one column per shard).
#[test]
fn show_activity_and_pools_in_haproxy_layout() {
    let o = Origins::start();
    let p = start(false, &o);
    for _ in 0..4 {
        let mut c = TcpStream::connect(p.fe_bad).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.read(&mut [0u8; 512]);
    }
    let names = |out: &str| -> Vec<String> {
        out.lines()
            .map(|l| l.split(':').next().unwrap_or("").to_string())
            .collect()
    };
    let act = cli(&p.sock, "show activity");
    assert!(act.starts_with("thread_id: 1 (1..2)\ndate_now: "), "{act}");
    assert!(act.ends_with(" ]\n\n"), "{act}");
    let accepted = act.lines().find(|l| l.starts_with("accepted: ")).unwrap();
    let total: u64 = accepted.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(total >= 4, "{accepted}");
    let cols: Vec<u64> = accepted
        .split(['[', ']'])
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(cols.len(), 2, "one column per shard: {accepted}");
    assert_eq!(cols.iter().sum::<u64>(), total);
    let pools = cli(&p.sock, "show pools");
    assert!(pools.starts_with("Dumping pools usage. Use SIGQUIT to flush them.\n"));
    assert!(
        pools.contains("  - Pool uring_rxbuf (16384 bytes) : 512 allocated (8388608 bytes), "),
        "{pools}"
    );
    assert!(pools.contains("\nTotal: 3 pools, "), "{pools}");
    assert!(pools.ends_with(" by thread caches).\n\n"), "{pools}");
    if !haproxy_available() {
        eprintln!("haproxy not installed: ringlb checked alone");
        return;
    }
    let hx = start(true, &o);
    assert_eq!(names(&act), names(&cli(&hx.sock, "show activity")));
    let hx_pools = cli(&hx.sock, "show pools");
    let shape = |l: &str| {
        l.starts_with("  - Pool ")
            && l.contains(" bytes) : ")
            && l.contains(" allocated (")
            && l.contains(" used (~")
            && l.contains(" by thread caches), needed_avg ")
            && l.contains(" failures, ")
            && l.contains(" users, @0x")
    };
    for out in [&pools, &hx_pools] {
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1..lines.len() - 2].iter().all(|l| shape(l)), "{out}");
        assert!(lines[lines.len() - 2].starts_with("Total: "), "{out}");
    }
}
