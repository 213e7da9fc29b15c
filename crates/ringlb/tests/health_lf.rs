//! Check variables and log-format payloads end to end (issue #5): `tcp-check set-var`,
//! `set-var-fmt`, `unset-var`, `send-lf`, and `http-check send` with `uri-lf` and a
//! log-format header, run by the real `ringlb` binary against loopback servers that record
//! what each check sent; compared with what haproxy 2.6 sends for the same configuration.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, wait_until, ChildGuard, Haproxy, Ringlb, TempDir,
};

/// A loopback server that records the first request of each connection and answers `reply`.
struct Recorder {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Recorder {
    fn start(reply: &'static [u8]) -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let g = g.clone();
                        std::thread::spawn(move || serve(c, reply, &g));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Recorder {
            addr,
            got,
            stop,
            handle: Some(handle),
        }
    }

    fn payloads(&self) -> Vec<Vec<u8>> {
        self.got.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.got.lock().unwrap().clear();
    }
}

/// Reads until the peer pauses (everything a check sends comes at once), records it, answers.
fn serve(mut c: TcpStream, reply: &[u8], got: &Mutex<Vec<Vec<u8>>>) {
    c.set_nonblocking(false).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    while let Ok(n) = c.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    if !buf.is_empty() {
        got.lock().unwrap().push(buf);
    }
    let _ = c.write_all(reply);
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn config(front: SocketAddr, tcp: SocketAddr, http: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\n\
         defaults\n    mode http\n    timeout connect 500ms\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n\
         frontend fe\n    bind {front}\n    default_backend be_http\n\
         backend be_tcp\n    mode tcp\n    option tcp-check\n\
         \x20   tcp-check set-var(check.x) str(abc)\n\
         \x20   tcp-check set-var-fmt(check.y) id-%[var(check.x)]\n\
         \x20   tcp-check set-var-fmt(check.run) %[var(check.run)]+\n\
         \x20   tcp-check set-var(check.z) int(42)\n\
         \x20   tcp-check unset-var(check.z)\n\
         \x20   tcp-check send-lf \"PING %[var(check.x)] %[var(check.y)] [%[var(check.z)]] run=%[var(check.run)] %[be_name]/%[srv_name]\\r\\n\"\n\
         \x20   tcp-check expect string PONG\n\
         \x20   server s1 {tcp} check inter 300ms\n\
         backend be_http\n    option httpchk\n\
         \x20   http-check set-var(check.x) str(abc)\n\
         \x20   http-check send meth GET uri-lf /h?x=%[var(check.x)] ver HTTP/1.1 hdr Host a.example hdr X-Check %[var(check.x),upper]\n\
         \x20   http-check expect status 200\n\
         \x20   server s1 {http} check inter 300ms\n\
         backend be_bad\n    mode tcp\n    option tcp-check\n\
         \x20   tcp-check set-var(check.x) str(zz)\n\
         \x20   tcp-check send-binary-lf 2a%[var(check.x)]\n\
         \x20   server s1 {tcp} check inter 300ms\n"
    )
}

/// The line saying `be_bad/s1` went down, from a proxy's stderr, pid and duration masked.
fn bad_line(p: &ChildGuard) -> String {
    let mut line = String::new();
    let found = wait_until(Duration::from_secs(10), || {
        let err = p.stderr();
        match err.lines().find(|l| l.contains("be_bad/s1 is DOWN")) {
            Some(l) => {
                line = l.to_string();
                true
            }
            None => false,
        }
    });
    assert!(found, "no DOWN line for be_bad/s1:\n{}", p.stderr());
    let from = line.find("Server ").unwrap_or(0);
    let line = &line[from..];
    let cut = line.find(", check duration").unwrap_or(line.len());
    line[..cut].to_string()
}

/// The first two payloads each recorder got once both have two, then stops recording.
fn two_each(tcp: &Recorder, http: &Recorder) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    assert!(
        wait_until(Duration::from_secs(10), || tcp.payloads().len() >= 2
            && http.payloads().len() >= 2),
        "checks did not reach the servers: tcp {:?}, http {:?}",
        tcp.payloads(),
        http.payloads()
    );
    let (mut t, mut h) = (tcp.payloads(), http.payloads());
    t.truncate(2);
    h.truncate(2);
    (t, h)
}

fn run(p: ChildGuard, tcp: &Recorder, http: &Recorder) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, String) {
    tcp.clear();
    http.clear();
    let (t, h) = two_each(tcp, http);
    let bad = bad_line(&p);
    drop(p);
    (t, h, bad)
}

#[test]
fn log_format_payloads_and_check_variables_match_haproxy() {
    let dir = TempDir::new("health-lf");
    let tcp = Recorder::start(b"PONG\r\n");
    let http = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let front = free_addr();
    let path = dir.join("ringlb.cfg");
    std::fs::write(&path, config(front, tcp.addr, http.addr)).unwrap();
    let p = Ringlb::start(&path, &[front]);
    let got = run(p, &tcp, &http);
    // Variables start empty at each run: `check.run` is "+" every time.
    let tcp_want = b"PING abc id-abc [] run=+ be_tcp/s1\r\n".to_vec();
    assert_eq!(got.0, vec![tcp_want.clone(), tcp_want]);
    let http_want =
        b"GET /h?x=abc HTTP/1.1\r\nhost: a.example\r\nx-check: ABC\r\nconnection: close\r\n\r\n"
            .to_vec();
    assert_eq!(got.1, vec![http_want.clone(), http_want]);
    // A send-binary-lf result that is not hexadecimal fails the check, in haproxy's words.
    assert_eq!(
        got.2,
        "Server be_bad/s1 is DOWN, reason: Layer7 invalid response, info: \"tcp-check send : failed to build log-format string at step 2\""
    );
    if haproxy_available() {
        let hf = free_addr();
        let hpath = dir.join("haproxy.cfg");
        std::fs::write(&hpath, config(hf, tcp.addr, http.addr)).unwrap();
        let h = Haproxy::start(&hpath, &[hf]);
        let want = run(h, &tcp, &http);
        assert_eq!(
            (
                String::from_utf8_lossy(&got.0.concat()),
                String::from_utf8_lossy(&got.1.concat()),
                got.2
            ),
            (
                String::from_utf8_lossy(&want.0.concat()),
                String::from_utf8_lossy(&want.1.concat()),
                want.2
            ),
            "ringlb (left) vs haproxy (right)"
        );
    }
}
