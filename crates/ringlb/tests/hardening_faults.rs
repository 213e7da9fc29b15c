//! Faults and overload through the real `ringlb` binary: servers that refuse, reset, close a
//! reused keep-alive connection, stall, send garbage or too much, half-close; a saturated
//! `maxconn` with its queue; file descriptors exhausted with `prlimit`. Each gives HAProxy's
//! status (502/503/504), retries where HAProxy retries, never hangs, and leaks no descriptor
//! (`/proc/PID/fd` counted before and after). Misbehaving servers are threads of this test on
//! loopback; everything is bounded by socket timeouts. Nothing asserts a duration: a server
//! that stalls holds its connection until the test releases it ([`Hold`]), so "the proxy
//! answered without waiting for the server" is an order of events (the answer came, and the
//! proxy closed the server connection, before the release), and the log's termination state
//! says which timer or error ended the exchange; the durations are printed as figures.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, parse_responses, send_raw_reply, set_linger_zero, wait_until, write_config,
    ChildGuard, Origin, RawEnd, Ringlb, TempDir,
};

/// Hang guard of every client exchange (the proxy's own timeouts are 1 s).
const T: Duration = Duration::from_secs(15);

/// A stalling server's hold on its connections: each holds until [`Hold::release`], noting
/// when the proxy closed the connection first. Holding is bounded (`HOLD_MAX`) so that a
/// failed test leaves no thread behind for long.
#[derive(Clone, Default)]
struct Hold {
    released: Arc<AtomicBool>,
    /// Connections the proxy closed while they were held.
    closed_by_proxy: Arc<AtomicUsize>,
}

const HOLD_MAX: Duration = Duration::from_secs(60);

impl Hold {
    /// Holds `s` (reading and dropping whatever comes) until released or closed by the peer.
    fn hold(&self, s: &mut TcpStream) {
        let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
        let t0 = Instant::now();
        let mut b = [0u8; 4096];
        while !self.released.load(Ordering::SeqCst) && t0.elapsed() < HOLD_MAX {
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        if !self.released.load(Ordering::SeqCst) {
            self.closed_by_proxy.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    fn closed_by_proxy(&self) -> usize {
        self.closed_by_proxy.load(Ordering::SeqCst)
    }
}

/// A loopback server whose every connection runs `f` (in its own thread). Stops accepting
/// when dropped.
struct FaultServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl FaultServer {
    fn start(f: impl Fn(TcpStream) + Send + Sync + 'static) -> FaultServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (st, acc) = (stop.clone(), accepted.clone());
        let f = Arc::new(f);
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        acc.fetch_add(1, Ordering::Relaxed);
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        let f = f.clone();
                        std::thread::spawn(move || f(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultServer {
            addr,
            stop,
            accepted,
        }
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one request head (up to the empty line); false when the peer closed first.
fn read_head(s: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    true
}

fn rst(s: TcpStream) {
    let _ = set_linger_zero(&s);
    drop(s);
}

/// The log line of each request: `fault-log PATH STATUS TERMINATION-STATE` (see [`logged`]).
fn config(front: SocketAddr, servers: &[SocketAddr], backend_extra: &str) -> String {
    let mut s = format!(
        "global\n    nbthread 1\n    log stderr format raw local0\n\ndefaults\n    mode http\n    \
         log global\n    log-format \"fault-log %HU %ST %ts\"\n    timeout connect 1s\n    \
         timeout client 5s\n    timeout server 1s\n    timeout queue 1s\n\n\
         frontend fe\n    bind {front}\n    default_backend be\n\nbackend be\n{backend_extra}"
    );
    for (i, a) in servers.iter().enumerate() {
        s.push_str(&format!("    server s{i} {a}\n"));
    }
    s
}

struct Proxy {
    _dir: TempDir,
    front: SocketAddr,
    guard: ChildGuard,
}

fn start(servers: &[SocketAddr], backend_extra: &str) -> Proxy {
    let dir = TempDir::new("faults");
    let front = free_addr();
    let path = write_config(&dir, &config(front, servers, backend_extra));
    let guard = Ringlb::start(&path, &[front]);
    Proxy {
        _dir: dir,
        front,
        guard,
    }
}

/// (status, termination state) of the logged requests for `path`, in order.
fn logged(stderr: &str, path: &str) -> Vec<(u16, String)> {
    let prefix = format!("fault-log {path} ");
    stderr
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .filter_map(|rest| {
            let mut f = rest.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.to_owned()))
        })
        .collect()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `/proc/PID/stat` utime + stime, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    ringlb_testkit::proc_cpu_ticks(pid).unwrap()
}

fn get(addr: SocketAddr, path: &str) -> (u16, RawEnd, Duration) {
    let t0 = Instant::now();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = send_raw_reply(addr, req.as_bytes(), T).unwrap();
    let status = parse_responses(&r.bytes, "GET")
        .ok()
        .and_then(|v| v.first().map(|r| r.status))
        .or_else(|| {
            // A truncated body still has a status line.
            let text = String::from_utf8_lossy(&r.bytes);
            text.get(9..12).and_then(|s| s.parse().ok())
        })
        .unwrap_or(0);
    (status, r.end, t0.elapsed())
}

/// One server fault: what the server does, and what the proxy must answer and log.
struct Fault {
    name: &'static str,
    server: SocketAddr,
    status: u16,
    /// The log's termination state (`%ts`), as haproxy 2.6 logs it.
    state: &'static str,
    /// The server holds its connections after the fault: the proxy must end each exchange
    /// (and close the server connection) while it still holds them.
    held: Option<Hold>,
}

#[test]
fn each_server_fault_gets_haproxys_status_without_hang_or_fd_leak() {
    let refused = free_addr(); // nothing listens there
    let reset_before = FaultServer::start(|mut s| {
        if read_head(&mut s) {
            rst(s);
        }
    });
    let close_before = FaultServer::start(|mut s| {
        if read_head(&mut s) {
            drop(s);
        }
    });
    let holds: Vec<Hold> = (0..4).map(|_| Hold::default()).collect();
    let h = holds[0].clone();
    let half_close = FaultServer::start(move |mut s| {
        if read_head(&mut s) {
            let _ = s.shutdown(Shutdown::Write);
            h.hold(&mut s);
        }
    });
    let h = holds[1].clone();
    let garbage = FaultServer::start(move |mut s| {
        if read_head(&mut s) {
            let _ = s.write_all(b"\x00\x01garbage that is not HTTP\r\n\r\n");
            h.hold(&mut s);
        }
    });
    let h = holds[2].clone();
    let stall_before = FaultServer::start(move |mut s| {
        if read_head(&mut s) {
            h.hold(&mut s);
        }
    });
    let reset_mid = FaultServer::start(|mut s| {
        if read_head(&mut s) {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial");
            std::thread::sleep(Duration::from_millis(100));
            rst(s);
        }
    });
    let h = holds[3].clone();
    let stall_mid = FaultServer::start(move |mut s| {
        if read_head(&mut s) {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial");
            h.hold(&mut s);
        }
    });
    let fault = |name, server, status, state, held: Option<&Hold>| Fault {
        name,
        server,
        status,
        state,
        held: held.cloned(),
    };
    let cases = [
        // With `retries 2`: three refused connections, then 503.
        fault("refused", refused, 503, "SC", None),
        fault("reset-before-response", reset_before.addr, 502, "SH", None),
        fault("close-before-response", close_before.addr, 502, "SH", None),
        fault(
            "half-close-no-response",
            half_close.addr,
            502,
            "SH",
            Some(&holds[0]),
        ),
        fault("garbage", garbage.addr, 502, "PH", Some(&holds[1])),
        // `timeout server 1s` ends the wait for the head: 504.
        fault(
            "stall-before-response",
            stall_before.addr,
            504,
            "sH",
            Some(&holds[2]),
        ),
        // Head already relayed: the client sees 200 and a closed, truncated body.
        fault("reset-mid-response", reset_mid.addr, 200, "SD", None),
        fault(
            "stall-mid-response",
            stall_mid.addr,
            200,
            "sD",
            Some(&holds[3]),
        ),
    ];
    let mut report = Vec::new();
    for c in &cases {
        let name = c.name;
        let p = start(&[c.server], "    retries 2\n");
        // One warm-up exchange so lazily opened descriptors are counted in the baseline.
        let _ = get(p.front, "/warm");
        std::thread::sleep(Duration::from_millis(300));
        let held_before = c.held.as_ref().map_or(0, Hold::closed_by_proxy);
        let before = fd_count(p.guard.pid());
        let mut worst = Duration::ZERO;
        for _ in 0..3 {
            let (status, end, took) = get(p.front, "/x");
            assert_eq!(status, c.status, "{name}: status");
            // The proxy ended the exchange: a stalling server still holds its connection
            // (until `HOLD_MAX`, well beyond the client's `T`).
            assert_ne!(end, RawEnd::TimedOut, "{name}: client connection left open");
            worst = worst.max(took);
        }
        if let Some(h) = &c.held {
            // ... and the proxy closed each of those server connections itself.
            let closed = wait_until(T, || h.closed_by_proxy() >= held_before + 3);
            assert!(
                closed,
                "{name}: the proxy closed {} of 3 held server connections",
                h.closed_by_proxy() - held_before
            );
        }
        let settled = wait_until(Duration::from_secs(3), || fd_count(p.guard.pid()) <= before);
        let after = fd_count(p.guard.pid());
        assert!(settled, "{name}: fds {before} -> {after}");
        // What ended each exchange, from the log (written when the stream ends).
        let want = vec![(c.status, c.state.to_owned()); 3];
        assert!(
            wait_until(T, || logged(&p.guard.stderr(), "/x").len() >= 3),
            "{name}: no log lines:\n{}",
            p.guard.stderr()
        );
        assert_eq!(logged(&p.guard.stderr(), "/x"), want, "{name}: log");
        report.push(format!(
            "{name}: {} {} x3, worst {worst:?}, fds {before} -> {after}",
            c.status, c.state
        ));
    }
    for l in report {
        println!("fault {l}");
    }
    // The oracle: haproxy 2.6 gives each fault the same status and termination state (the
    // stalling servers still hold their connections).
    if ringlb_testkit::haproxy_available() {
        for c in &cases {
            let dir = TempDir::new("faults-oracle");
            let front = free_addr();
            let path = write_config(&dir, &config(front, &[c.server], "    retries 2\n"));
            let h = ringlb_testkit::Haproxy::start(&path, &[front]);
            let (status, _, _) = get(front, "/x");
            assert!(wait_until(T, || !logged(&h.stderr(), "/x").is_empty()));
            let got = logged(&h.stderr(), "/x");
            println!("fault {} via haproxy: {status} {got:?}", c.name);
            assert_eq!(
                (status, got),
                (c.status, vec![(c.status, c.state.to_owned())]),
                "{}: haproxy (the oracle)",
                c.name
            );
        }
    }
    for h in &holds {
        h.release();
    }
}

#[test]
fn refused_server_is_retried_on_another_and_broken_pooled_connections_are_not_reused() {
    // Round robin over a refusing address and a good origin: retries (with redispatch) land
    // on the good one, as HAProxy's `option redispatch` does.
    let good = Origin::start("good");
    let refused = free_addr();
    let p = start(
        &[refused, good.addr()],
        "    balance roundrobin\n    retries 2\n    option redispatch\n",
    );
    for i in 0..6 {
        let (status, _, _) = get(p.front, "/");
        assert_eq!(status, 200, "request {i}");
    }

    // A server that answers one keep-alive response per connection then closes it silently:
    // every reuse of the pooled connection finds it closed and must be retried on a new one.
    let served = Arc::new(AtomicUsize::new(0));
    let sv = served.clone();
    let one_shot = FaultServer::start(move |mut s| {
        if read_head(&mut s) {
            sv.fetch_add(1, Ordering::Relaxed);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            std::thread::sleep(Duration::from_millis(30));
        }
    });
    let p = start(&[one_shot.addr], "    http-reuse always\n");
    let mut c = ringlb_testkit::Conn::connect(p.front).unwrap();
    c.set_timeout(T).unwrap();
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let r = c.get("/").unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(
        served.load(Ordering::Relaxed),
        20,
        "each request served once"
    );
    assert!(one_shot.accepted.load(Ordering::Relaxed) >= 20);
}

#[test]
fn more_than_content_length_is_not_relayed_as_a_response() {
    let extra = FaultServer::start(|mut s| {
        while read_head(&mut s) {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 302 Found\r\nLocation: http://evil/\r\nContent-Length: 0\r\n\r\n",
            );
        }
    });
    let p = start(&[extra.addr], "");
    let mut c = ringlb_testkit::Conn::connect(p.front).unwrap();
    c.set_timeout(T).unwrap();
    for i in 0..5 {
        let r = c.get("/").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "request {i}");
    }
    // Nothing extra reached the client: the injected 302 was dropped with the server connection.
    assert!(
        c.leftover().is_empty(),
        "{:?}",
        String::from_utf8_lossy(c.leftover())
    );
}

#[test]
fn saturated_maxconn_queues_then_503_without_spinning() {
    // A server that answers only when the test releases it: the two requests `maxconn 2`
    // lets through are held, the ten others wait in the queue for `timeout queue` and get
    // 503, all while the server still holds the first two.
    let hold = Hold::default();
    let in_server = Arc::new(AtomicUsize::new(0));
    let most_in_server = Arc::new(AtomicUsize::new(0));
    let (h, inside, most) = (hold.clone(), in_server.clone(), most_in_server.clone());
    let slow = FaultServer::start(move |mut s| {
        if read_head(&mut s) {
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let t0 = Instant::now();
            while !h.released.load(Ordering::SeqCst) && t0.elapsed() < HOLD_MAX {
                std::thread::sleep(Duration::from_millis(10));
            }
            inside.fetch_sub(1, Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let dir = TempDir::new("maxconn");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 1\n    log stderr format raw local0\n\ndefaults\n    mode http\n    \
         log global\n    log-format \"fault-log %HU %ST %ts\"\n    timeout connect 1s\n    \
         timeout client 10s\n    timeout server 30s\n    timeout queue 1s\n\n\
         frontend fe\n    bind {front}\n    default_backend be\n\nbackend be\n    \
         server s1 {} maxconn 2\n",
        slow.addr
    );
    let path = write_config(&dir, &cfg);
    let guard = Ringlb::start(&path, &[front]);
    let cpu0 = cpu_ticks(guard.pid());
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..12 {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(get(front, "/q"));
        });
    }
    // Ten answers come while the server holds the other two requests.
    let mut early = Vec::new();
    for _ in 0..10 {
        early.push(
            rx.recv_timeout(T)
                .expect("an answer while the server holds two"),
        );
    }
    let cpu = cpu_ticks(guard.pid()) - cpu0;
    let saturated = t0.elapsed();
    let held = in_server.load(Ordering::SeqCst);
    hold.release();
    let late: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(T).expect("answer"))
        .collect();
    let queued: Vec<Duration> = early.iter().map(|r| r.2).collect();
    println!(
        "maxconn: 12 clients, 10 answered {:?} while the server held {held}, after {queued:?} \
         in the queue; then {:?}; cpu {cpu} ticks over {saturated:?} of saturation",
        early.iter().map(|r| r.0).collect::<Vec<_>>(),
        late.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(early.iter().all(|r| r.0 == 503), "{early:?}");
    assert_eq!(held, 2, "requests the server held when the 503s came");
    assert!(late.iter().all(|r| r.0 == 200), "{late:?}");
    assert_eq!(
        most_in_server.load(Ordering::SeqCst),
        2,
        "maxconn 2 exceeded"
    );
    assert_eq!(
        slow.accepted.load(Ordering::SeqCst),
        2,
        "server connections"
    );
    // The 503s came from the queue's timer (`sQ`), not from a refusal.
    assert!(wait_until(T, || logged(&guard.stderr(), "/q").len() >= 12));
    let mut states = logged(&guard.stderr(), "/q");
    states.sort();
    let mut want = vec![(200, "--".to_owned()); 2];
    want.extend(vec![(503, "sQ".to_owned()); 10]);
    assert_eq!(states, want, "log");
    // No spin: CPU used while saturated (ticks of 10 ms) well under the time it lasted (at
    // least the 1 s queue timeout).
    assert!(cpu < 50, "cpu {cpu} ticks while saturated");
    // And it serves again once the queue drained.
    assert_eq!(get(front, "/").0, 200);
}

#[test]
fn fd_exhaustion_pauses_accept_and_resumes_within_a_second() {
    let origin = Origin::start("o");
    let p = start(&[origin.addr()], "");
    let pid = p.guard.pid();
    assert_eq!(get(p.front, "/").0, 200);
    std::thread::sleep(Duration::from_millis(200));
    let base = fd_count(pid);
    let limit = base + 20;
    let out = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Idle client connections until the proxy has no descriptor left.
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Ok(s) = TcpStream::connect_timeout(&p.front, Duration::from_millis(500)) {
            held.push(s);
        }
    }
    assert!(
        wait_until(Duration::from_secs(3), || fd_count(pid) >= limit - 1),
        "proxy fds {} (limit {limit})",
        fd_count(pid)
    );
    let cpu0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spin = cpu_ticks(pid) - cpu0;
    assert!(
        spin < 30,
        "accept loop spins while out of fds: {spin} ticks in 1 s"
    );
    assert!(p.guard.proc_status_kib("VmRSS").is_some(), "proxy died");
    // Free them: new clients are served again (how soon is a figure, not asserted: the
    // issue asks for under 1 s, as haproxy retries a paused listener).
    drop(held);
    let t0 = Instant::now();
    let mut served = false;
    let mut tries = 0;
    while !served && t0.elapsed() < T {
        tries += 1;
        served = get(p.front, "/").0 == 200;
        if !served {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let took = t0.elapsed();
    println!(
        "fd exhaustion: limit {limit}, spin {spin} ticks/s, served again after {took:?} ({tries} tries)"
    );
    assert!(
        served,
        "never served again after the descriptors were freed"
    );
    let _ = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg("--nofile=65536:65536")
        .output();
}

/// After a 502, 503 or 504 the client connection stays usable, as with haproxy 2.6 (compared
/// live when haproxy is installed): a second request on it gets its own answer.
#[test]
fn client_connection_survives_502_503_504_like_haproxy() {
    let garbage = FaultServer::start(|mut s| {
        while read_head(&mut s) {
            let _ = s.write_all(b"garbage\r\n\r\n");
        }
    });
    let stall = FaultServer::start(|mut s| {
        if read_head(&mut s) {
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    // A GET, then a POST with a body (where no connection could be made, the body no server
    // got is drained), then a GET, on one connection.
    let twice = |front: SocketAddr, post: bool| {
        let mut c = ringlb_testkit::Conn::connect(front).unwrap();
        c.set_timeout(T).unwrap();
        let a = c.get("/1").unwrap().status;
        let b = if post {
            c.request("POST", "/2", &[("Content-Length", "3")], b"abc")
        } else {
            c.get("/2")
        };
        let b = b.map(|r| r.status).unwrap_or(0);
        let d = c.get("/3").map(|r| r.status).unwrap_or(0);
        (a, b, d)
    };
    let refused = free_addr();
    for (name, server, want, post) in [
        ("garbage", garbage.addr, 502, true),
        ("stall", stall.addr, 504, true),
        ("refused", refused, 503, true),
    ] {
        let p = start(&[server], "");
        let got = twice(p.front, post);
        println!("keep-alive after error: {name} via ringlb: {got:?}");
        assert_eq!(got, (want, want, want), "{name} via ringlb");
        if ringlb_testkit::haproxy_available() {
            let dir = TempDir::new("faults-h");
            let front = free_addr();
            let path = write_config(&dir, &config(front, &[server], ""));
            let _h = ringlb_testkit::Haproxy::start(&path, &[front]);
            let got = twice(front, post);
            println!("keep-alive after error: {name} via haproxy: {got:?}");
            assert_eq!(got, (want, want, want), "{name} via haproxy (the oracle)");
        }
    }
}

/// `retry-on empty-response`: a GET the server dropped unanswered is replayed on the other
/// server (and always succeeds); a POST with a body is not replayable and gets 502, its server
/// tried exactly once, as HAProxy's layer-7 retries.
#[test]
fn empty_responses_are_retried_only_for_replayable_requests() {
    let dropper = FaultServer::start(|mut s| {
        if read_head(&mut s) {
            drop(s);
        }
    });
    let good = Origin::start("good");
    let p = start(
        &[dropper.addr, good.addr()],
        "    balance roundrobin\n    retries 3\n    retry-on empty-response\n    option redispatch\n",
    );
    for i in 0..10 {
        assert_eq!(get(p.front, "/").0, 200, "GET {i}");
    }
    let gets_dropped = dropper.accepted.load(Ordering::Relaxed);
    assert!(
        gets_dropped >= 3,
        "the dropping server was tried {gets_dropped} times"
    );
    let mut failed = 0;
    for _ in 0..8 {
        let r = send_raw_reply(
            p.front,
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            T,
        )
        .unwrap();
        let status = parse_responses(&r.bytes, "POST").unwrap()[0].status;
        assert!(matches!(status, 200 | 502), "{status}");
        failed += usize::from(status == 502);
    }
    let posts_dropped = dropper.accepted.load(Ordering::Relaxed) - gets_dropped;
    println!(
        "retry-on: 10 GETs all 200 ({gets_dropped} replayed after a dropped attempt); \
         8 POSTs: {failed} x 502, dropping server tried {posts_dropped} times"
    );
    assert!(
        failed >= 1,
        "round robin never sent a POST to the dropping server"
    );
    assert_eq!(posts_dropped, failed, "a POST was replayed");
}

/// The DOWN line of `server` in a proxy's stderr, pid and check duration masked.
fn down_line(stderr: &str, server: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("Server {server} is DOWN")))?;
    let text = line.split_once(") : ").map_or(line, |(_, t)| t);
    let at = text.find("check duration: ")? + "check duration: ".len();
    let rest = text[at..].trim_start_matches(|c: char| c.is_ascii_digit());
    Some(format!("{}N{rest}", &text[..at]))
}

/// A server that dies in the middle of every health check (it reads the check's request and
/// resets the connection instead of answering): marked DOWN with the same state line as
/// haproxy 2.6 (`Socket error, info: "Connection reset by peer"`), traffic then answered 503
/// at once (no hang), and the checks that keep failing leak no descriptor.
#[test]
fn server_dying_during_a_health_check_is_marked_down_as_haproxy_does() {
    let dying = FaultServer::start(|mut s| {
        if read_head(&mut s) {
            rst(s);
        }
    });
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\n\ndefaults\n    mode http\n    timeout connect 1s\n    \
             timeout client 5s\n    timeout server 1s\n    timeout check 1s\n\n\
             frontend fe\n    bind {front}\n    default_backend be\n\nbackend be\n    \
             option httpchk GET /health\n    server s0 {} check inter 200ms fall 2 rise 1\n",
            dying.addr
        )
    };
    let dir = TempDir::new("faults-check-dies");
    let run = |guard: &ChildGuard, front: SocketAddr| -> String {
        assert!(
            wait_until(T, || down_line(&guard.stderr(), "be/s0").is_some()),
            "no DOWN line:\n{}",
            guard.stderr()
        );
        let (status, end, took) = get(front, "/");
        assert_eq!(status, 503, "after DOWN");
        assert_ne!(end, RawEnd::TimedOut, "client connection left open");
        println!("check dies: DOWN, then 503 in {took:?}");
        down_line(&guard.stderr(), "be/s0").unwrap_or_default()
    };
    let rf = free_addr();
    let r = Ringlb::start(&write_config(&dir, &cfg(rf)), &[rf]);
    let got = run(&r, rf);
    // Checks keep failing every 200 ms: the descriptor count stays where it is. The least of
    // a few samples, so that a check connection open at the moment of one sample is not
    // counted (a leak adds one for good at every check).
    let settled = |pid: u32| {
        (0..6)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(40));
                fd_count(pid)
            })
            .min()
            .unwrap_or(0)
    };
    let before = settled(r.pid());
    std::thread::sleep(Duration::from_millis(1200));
    let after = settled(r.pid());
    println!("check dies: ringlb {got:?}; fds {before} -> {after} over 6 more failed checks");
    assert!(after <= before, "fds {before} -> {after}");
    if ringlb_testkit::haproxy_required() {
        let hf = free_addr();
        let hpath = dir.join("haproxy.cfg");
        std::fs::write(&hpath, cfg(hf)).unwrap();
        let h = ringlb_testkit::Haproxy::start(&hpath, &[hf]);
        let want = run(&h, hf);
        println!("check dies: haproxy {want:?}");
        // The whole line, the check duration masked: `Socket error, info: "Connection reset
        // by peer"` and the counts (every fault's wording: tests/health_faults.rs).
        assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
    }
}

/// Global `maxconn` saturated by keep-alive clients: the proxy stops taking connections (the
/// others wait in the listen backlog), spends no CPU while saturated, does not crash, and
/// serves every waiting client once the first ones leave.
#[test]
fn saturated_global_maxconn_pauses_then_serves_the_waiting_clients() {
    use ringlb_testkit::Conn;
    let origin = Origin::start("o");
    let dir = TempDir::new("global-maxconn");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 2\n    maxconn 4\n\ndefaults\n    mode http\n    timeout connect 1s\n    \
         timeout client 10s\n    timeout server 5s\n\n\
         frontend fe\n    bind {front}\n    default_backend be\n\nbackend be\n    server s1 {}\n",
        origin.addr()
    );
    let guard = Ringlb::start(&write_config(&dir, &cfg), &[front]);
    let pid = guard.pid();
    // Eight keep-alive clients ask at once: at most `maxconn` are taken and answered.
    let mut first: Vec<Conn> = (0..8).map(|_| Conn::connect(front).unwrap()).collect();
    for c in &mut first {
        c.set_timeout(Duration::from_millis(800)).unwrap();
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    }
    // Each unanswered client is read for 800 ms per pass, and passes repeat until one was
    // answered (a loaded machine may need more than one): the ones not taken wait in the
    // backlog and are never answered, whatever the load.
    let mut answered = 0;
    let mut done = [false; 8];
    let t0 = Instant::now();
    while answered == 0 && t0.elapsed() < T {
        for (c, done) in first.iter_mut().zip(done.iter_mut()) {
            if !*done && c.read_response("GET").is_ok_and(|r| r.status == 200) {
                *done = true;
                answered += 1;
            }
        }
    }
    assert!(
        (1..=4).contains(&answered),
        "{answered} of 8 clients answered with maxconn 4"
    );
    // Saturated: no spin.
    let cpu0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spin = cpu_ticks(pid) - cpu0;
    // The first clients leave: every waiting one is taken and answered.
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::connect(front).unwrap();
                c.set_timeout(Duration::from_secs(8)).unwrap();
                c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .unwrap();
                c.read_response("GET").map(|r| r.status).unwrap_or(0)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(first);
    let statuses: Vec<u16> = waiting.into_iter().map(|h| h.join().unwrap()).collect();
    println!(
        "global maxconn 4: {answered} of 8 answered at first, {spin} CPU ticks in 1 s saturated, \
         then the 8 waiting clients got {statuses:?}"
    );
    assert!(spin < 30, "{spin} ticks in 1 s while saturated");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(guard.proc_status_kib("VmRSS").is_some(), "proxy died");
}
