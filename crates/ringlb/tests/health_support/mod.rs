//! Shared by the `health_*` differential tests: loopback fake servers that record what a check
//! sends, and one run of a config under ringlb or haproxy 2.6 whose observable results (the
//! state-change log lines, `show servers state`, columns of `show stat`, the bytes each fake
//! received) are collected for comparison.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, wait_until, ChildGuard, Haproxy, Ringlb, TempDir,
};

/// Longest wait for a log line or a state.
pub const WAIT: Duration = Duration::from_secs(8);

/// What one fake server received, one entry per connection.
pub type Captures = Arc<Mutex<Vec<Vec<u8>>>>;

/// A TCP server on loopback handing each connection to `handler` in a thread; stopped (and
/// its accept loop joined) on drop. Bounded: it stops accepting after 90 s.
pub struct Fake {
    pub addr: SocketAddr,
    pub seen: Captures,
    /// When each connection was accepted (to the accept loop's 1 ms polling).
    pub accepted: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Fake {
    pub fn start(handler: impl Fn(TcpStream, &Captures) + Send + Sync + 'static) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Captures = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (s, captures, times) = (stop.clone(), seen.clone(), accepted.clone());
        let handler = Arc::new(handler);
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match l.accept() {
                    Ok((c, _)) => {
                        times.lock().unwrap().push(Instant::now());
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let (h, caps) = (handler.clone(), captures.clone());
                        std::thread::spawn(move || h(c, &caps));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Fake {
            addr,
            seen,
            accepted,
            stop,
            handle: Some(handle),
        }
    }

    /// An HTTP server: records each request (head and `Content-Length` body) and answers
    /// `response`, then closes.
    pub fn http(response: &[u8]) -> Fake {
        let response = response.to_vec();
        Fake::start(move |mut c, seen| {
            let req = read_http_request(&mut c);
            if req.is_empty() {
                return;
            }
            seen.lock().unwrap().push(req);
            let _ = c.write_all(&response);
        })
    }

    /// Writes `banner` at once, records what the peer sends (waiting up to `first` for its
    /// first bytes, then until it closes or `quiet` passes without data), then closes (a
    /// server that speaks first, then hangs up).
    pub fn banner(banner: &[u8], first: Duration, quiet: Duration) -> Fake {
        let banner = banner.to_vec();
        Fake::start(move |mut c, seen| {
            if !banner.is_empty() {
                let _ = c.write_all(&banner);
            }
            let got = read_until_quiet(&mut c, first, quiet);
            seen.lock().unwrap().push(got);
        })
    }

    /// A server that speaks first (`banner`, may be empty), then answers the first thing
    /// the peer sends (waited for up to `first`) with `reply`; records everything the peer
    /// sent until it closes or `quiet` passes without data.
    pub fn dialog(banner: &[u8], reply: &[u8], first: Duration, quiet: Duration) -> Fake {
        let (banner, reply) = (banner.to_vec(), reply.to_vec());
        Fake::start(move |mut c, seen| {
            if !banner.is_empty() && c.write_all(&banner).is_err() {
                return;
            }
            let mut got = read_until_quiet(&mut c, first, quiet);
            if !got.is_empty() && c.write_all(&reply).is_ok() {
                got.extend(read_until_quiet(&mut c, quiet, quiet));
            }
            seen.lock().unwrap().push(got);
        })
    }

    /// A line-based server: `banner`, then `answer(line)` for each CRLF line received (no
    /// answer: hang up); records what the peer sent.
    pub fn lines(banner: &'static str, answer: fn(&str) -> Option<&'static str>) -> Fake {
        Fake::lines_paced(banner, answer, Duration::ZERO)
    }

    /// As [`Fake::lines`], but a multi-line answer is written one line at a time, `gap`
    /// apart (a reply that reaches the checker in pieces).
    pub fn lines_paced(
        banner: &'static str,
        answer: fn(&str) -> Option<&'static str>,
        gap: Duration,
    ) -> Fake {
        let write = move |c: &mut TcpStream, a: &str| {
            if gap.is_zero() {
                return c.write_all(a.as_bytes()).is_ok();
            }
            for (i, l) in a.split_inclusive('\n').enumerate() {
                if i > 0 {
                    std::thread::sleep(gap);
                }
                if c.write_all(l.as_bytes()).is_err() {
                    return false;
                }
            }
            true
        };
        Fake::start(move |mut c, seen| {
            let _ = write(&mut c, banner);
            let mut got = Vec::new();
            let mut b = [0u8; 1];
            while let Ok(1) = c.read(&mut b) {
                got.push(b[0]);
                if got.ends_with(b"\n") {
                    let start = got[..got.len() - 1]
                        .iter()
                        .rposition(|&x| x == b'\n')
                        .map_or(0, |i| i + 1);
                    let line = String::from_utf8_lossy(&got[start..])
                        .trim_end()
                        .to_string();
                    match answer(&line) {
                        Some(a) if write(&mut c, a) => {}
                        _ => break,
                    }
                }
            }
            seen.lock().unwrap().push(got);
        })
    }

    /// The first capture with something in it (waiting for one), else an empty one: a
    /// check that timed out on a loaded machine before it sent anything is not what the
    /// comparison is about.
    pub fn first(&self) -> Vec<u8> {
        assert!(
            wait_until(WAIT, || !self.seen.lock().unwrap().is_empty()),
            "nothing reached {}",
            self.addr
        );
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .find(|c| !c.is_empty())
            .cloned()
            .unwrap_or_default()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Bytes read until the peer goes quiet, closes, or 64 KiB: up to `first` for the first
/// bytes (a loaded checker may be slow to send), then `quiet` between reads.
pub fn read_until_quiet(c: &mut TcpStream, first: Duration, quiet: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    let _ = c.set_read_timeout(Some(first));
    while got.len() < 65536 {
        match c.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
        let _ = c.set_read_timeout(Some(quiet));
    }
    got
}

/// One HTTP/1 request: the head, then `Content-Length` bytes of body (what a check sends).
pub fn read_http_request(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        if let Some(end) = find(&got, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return got;
            }
        }
        match c.read(&mut b) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
        if got.len() > 65536 {
            return got;
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Which proxy runs a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    Ringlb,
    Haproxy,
}

impl Proxy {
    /// The proxies to compare: ringlb always, haproxy when installed (required in CI).
    pub fn all() -> Vec<Proxy> {
        if haproxy_available() {
            vec![Proxy::Haproxy, Proxy::Ringlb]
        } else {
            assert!(
                std::env::var_os("CI").is_none(),
                "haproxy is required in CI"
            );
            eprintln!("haproxy not installed: no comparison");
            vec![Proxy::Ringlb]
        }
    }
}

/// A running proxy with a stats socket.
pub struct Running {
    pub proxy: Proxy,
    pub guard: ChildGuard,
    pub sock: PathBuf,
    pub front: SocketAddr,
}

/// `global` with a stats socket in `dir` (plus `extra` global lines).
pub fn global(dir: &Path, extra: &str) -> String {
    format!(
        "global\n    stats socket {}/admin.sock level admin\n{extra}",
        dir.display()
    )
}

/// Starts `proxy` on `cfg(front, dir)` in a fresh directory (named after `name` and the proxy).
pub fn start(
    proxy: Proxy,
    name: &str,
    cfg: &dyn Fn(SocketAddr, &Path) -> String,
) -> (TempDir, Running) {
    let dir = TempDir::new(&format!("{name}-{proxy:?}"));
    let front = free_addr();
    let path = dir.join("p.cfg");
    std::fs::write(&path, cfg(front, dir.path())).unwrap();
    let guard = match proxy {
        Proxy::Ringlb => Ringlb::start(&path, &[front]),
        Proxy::Haproxy => Haproxy::start(&path, &[front]),
    };
    let sock = dir.join("admin.sock");
    // The file shows up at bind(), before listen(): wait for an answer.
    let answers =
        || ringlb_testkit::runtime_command(&sock, "show info").is_ok_and(|o| !o.is_empty());
    assert!(wait_until(WAIT, answers), "no stats socket");
    let r = Running {
        proxy,
        guard,
        sock,
        front,
    };
    (dir, r)
}

impl Running {
    /// One runtime command; a refused connection is tried again a few times (seen on a
    /// loaded machine with ringlb's UNIX socket: reported to the lead).
    pub fn cli(&self, cmd: &str) -> String {
        let mut last = None;
        for _ in 0..5 {
            match ringlb_testkit::runtime_command(&self.sock, cmd) {
                Ok(out) => return out,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{cmd} on {:?}: {last:?}", self.proxy)
    }

    /// Waits until the stderr holds a line containing `needle`.
    pub fn wait_log(&self, needle: &str) {
        let seen = wait_until(WAIT, || self.guard.stderr().contains(needle));
        assert!(
            seen,
            "{:?}: no log line with {needle:?}:\n{}",
            self.proxy,
            self.guard.stderr()
        );
    }

    /// The state-change lines, pid and durations masked, sorted; haproxy's "remains in
    /// forced drain mode" (repeated at every agent reply: as many as checks ran) once.
    pub fn state_lines(&self) -> Vec<String> {
        let mut v = state_lines(&self.guard.stderr());
        v.sort();
        v.dedup_by(|a, b| a == b && a.ends_with("remains in forced drain mode."));
        v
    }

    /// `show servers state` rows (no header), the time column masked; read again while a
    /// check is in progress (haproxy then shows its result as unknown: timing).
    pub fn servers_state(&self) -> Vec<String> {
        for _ in 0..200 {
            let rows = self.servers_state_once();
            // srv_check_state: CHK_ST_INPROGRESS.
            let busy = rows.iter().any(|r| {
                r.split(' ')
                    .nth(13)
                    .and_then(|s| s.parse::<u32>().ok())
                    .is_some_and(|st| st & 1 == 1)
            });
            if !busy {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        self.servers_state_once()
    }

    fn servers_state_once(&self) -> Vec<String> {
        self.cli("show servers state")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "1")
            .map(|l| {
                let mut f: Vec<String> = l.split(' ').map(str::to_string).collect();
                if f.len() > 9 {
                    f[9] = "T".into();
                }
                // srv_agent_state without CHK_ST_INPROGRESS (haproxy's agent checks last
                // until the agent closes: often in progress when looked at).
                if let Some(a) = f.get_mut(14) {
                    if let Ok(n) = a.parse::<u32>() {
                        *a = (n & !1).to_string();
                    }
                }
                f.join(" ")
            })
            .collect()
    }

    /// `show stat` as `backend/server` → the named columns, servers only; read again while
    /// a check is in progress (`* ` before haproxy's check status: timing).
    pub fn stat(&self, columns: &[&str]) -> BTreeMap<String, Vec<String>> {
        for _ in 0..200 {
            let rows = self.stat_once(columns);
            if !rows.values().flatten().any(|v| v.starts_with("* ")) {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        self.stat_once(columns)
    }

    /// `show stat` as `backend/server` → the named columns, as it is now (a check in
    /// progress included).
    pub fn stat_once(&self, columns: &[&str]) -> BTreeMap<String, Vec<String>> {
        let out = self.cli("show stat");
        ringlb_testkit::parse_server_stats(&out, columns)
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.proxy))
    }
}

/// State-change lines of a proxy's stderr with the pid and check durations masked.
pub fn state_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("[WARNING]") || l.starts_with("[ALERT]"))
        .filter(|l| l.contains("Server ") || l.contains("has no server available"))
        .map(mask)
        .collect()
}

/// `[LEVEL] text` with haproxy's `(pid) : ` prefix dropped and `check duration: Nms`.
pub fn mask(line: &str) -> String {
    let level = line.split_whitespace().next().unwrap_or("");
    let text = line.split_once(") : ").map_or(line, |(_, t)| t);
    let mut out = format!("{level} ");
    let mut rest = text;
    while let Some(i) = rest.find("check duration: ") {
        let (head, tail) = rest.split_at(i + "check duration: ".len());
        out.push_str(head);
        out.push('N');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// Bytes shown as text with control bytes escaped (readable assertion diffs).
pub fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// One backend of a differential run: its lines (check options and servers, each server
/// named `s1`.. and pointing at `fakes`), and the `show stat` status `s1` must end in.
pub struct Backend {
    pub name: String,
    pub lines: String,
    pub want: String,
}

/// One proxy's `show stat` with its in-progress checks read as done: `* L7OK` is `L7OK`, and
/// the info it hides meanwhile (`last_chk` / `last_agt` empty) is taken as the other proxy's.
/// Only when the retries in [`Running::stat`] found no quiet moment (a loaded machine).
fn settled_stat(
    want: &BTreeMap<String, Vec<String>>,
    got: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let col = |name: &str| STAT_COLUMNS.iter().position(|c| *c == name);
    let pairs = [
        (col("check_status"), col("last_chk")),
        (col("agent_status"), col("last_agt")),
    ];
    let mut out = want.clone();
    for (key, row) in out.iter_mut() {
        for (st, info) in pairs {
            let (Some(st), Some(info)) = (st, info) else {
                continue;
            };
            let Some(done) = row
                .get(st)
                .and_then(|v| v.strip_prefix("* "))
                .map(str::to_string)
            else {
                continue;
            };
            row[st] = done;
            if let Some(g) = got.get(key).and_then(|g| g.get(info)) {
                row[info] = g.clone();
            }
        }
    }
    out
}

/// One proxy's `show servers state` rows with an in-progress check read as done
/// (`CHK_ST_INPROGRESS` cleared, the result it hides meanwhile taken as the other's), as
/// [`settled_stat`] does for `show stat`.
fn settled_state(want: &[String], got: &[String]) -> Vec<String> {
    want.iter()
        .zip(got.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(w, g)| {
            let mut f: Vec<String> = w.split(' ').map(str::to_string).collect();
            let busy = f
                .get(13)
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|st| st & 1 == 1);
            if let Some(st) = busy {
                f[13] = (st & !1).to_string();
                if let Some(res) = g.and_then(|g| g.split(' ').nth(11)) {
                    f[11] = res.to_string();
                }
            }
            f.join(" ")
        })
        .collect()
}

/// `UP` or `DOWN`.
pub fn up_down(up: bool) -> String {
    if up { "UP" } else { "DOWN" }.into()
}

/// Everything observable about one run.
#[derive(Debug, PartialEq)]
pub struct Seen {
    pub lines: Vec<String>,
    pub state: Vec<String>,
    pub stat: BTreeMap<String, Vec<String>>,
    /// What each fake received first, shown as text (`mask` applied).
    pub requests: BTreeMap<String, String>,
}

/// The `show stat` columns a check decides.
pub const STAT_COLUMNS: &[&str] = &[
    "status",
    "weight",
    "slim",
    "chkdown",
    "check_status",
    "check_code",
    "last_chk",
    "agent_status",
    "agent_code",
    "last_agt",
];

/// A differential run's setup: `head` is the `global`-less config before the backends
/// (defaults, frontend with `bind {front}`), `fakes` the servers whose captures are compared.
pub struct Diff<'a> {
    pub name: &'a str,
    pub head: &'a dyn Fn(SocketAddr) -> String,
    pub backends: &'a [Backend],
    pub fakes: &'a BTreeMap<String, Fake>,
    /// Turns a capture into comparable text (e.g. masks a PROXY line's source port).
    pub mask: fn(&[u8]) -> String,
    /// Checks each fake must see before the states count as settled.
    pub min_checks: usize,
}

impl Diff<'_> {
    fn config(&self, front: SocketAddr, dir: &Path) -> String {
        let mut cfg = format!("{}{}", global(dir, ""), (self.head)(front));
        for b in self.backends {
            cfg.push_str(&format!("backend {}\n{}", b.name, b.lines));
        }
        cfg
    }

    fn run(&self, proxy: Proxy) -> Seen {
        for f in self.fakes.values() {
            f.clear();
        }
        let cfg = |front: SocketAddr, dir: &Path| self.config(front, dir);
        let (_dir, p) = start(proxy, self.name, &cfg);
        let settled = || {
            let stat = p.stat(&["status"]);
            self.backends.iter().all(|b| {
                stat.get(&format!("{}/s1", b.name))
                    .is_some_and(|v| v[0] == b.want)
            })
        };
        // Not asserted here: a state that never comes shows in the comparison.
        wait_until(WAIT, settled);
        // Every checked `s1` has a result (servers start UP before their first check).
        let checked = || {
            let stat = p.stat(&["check_status", "agent_status"]);
            self.backends.iter().all(|b| {
                stat.get(&format!("{}/s1", b.name)).is_some_and(|v| {
                    v.iter()
                        .any(|st| !st.is_empty() && !st.trim_start_matches("* ").starts_with("INI"))
                })
            })
        };
        wait_until(WAIT, checked);
        for (name, f) in self.fakes {
            let enough = wait_until(WAIT, || f.seen.lock().unwrap().len() >= self.min_checks);
            assert!(
                enough,
                "{proxy:?}: fewer than {} checks reached {name}:\n{}",
                self.min_checks,
                p.guard.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
        let requests = self
            .fakes
            .iter()
            .map(|(k, f)| (k.clone(), (self.mask)(&f.first())))
            .collect();
        Seen {
            lines: p.state_lines(),
            state: p.servers_state(),
            stat: p.stat(STAT_COLUMNS),
            requests,
        }
    }

    /// Runs haproxy (when installed) then ringlb; asserts they agree and that every
    /// backend's `s1` ends as written; ringlb's results.
    pub fn compare(&self) -> Seen {
        let mut runs: Vec<Seen> = Proxy::all().into_iter().map(|p| self.run(p)).collect();
        let got = runs.pop().unwrap();
        if let Some(want) = runs.pop() {
            let diffs: Vec<String> = want
                .requests
                .iter()
                .filter(|(k, w)| &got.requests[*k] != *w)
                .map(|(k, w)| format!("{k}:\n  ringlb:  {}\n  haproxy: {w}", got.requests[k]))
                .collect();
            assert!(
                diffs.is_empty(),
                "requests sent differ:\n{}",
                diffs.join("\n")
            );
            assert_eq!(
                got.lines, want.lines,
                "log lines, ringlb (left) vs haproxy (right)"
            );
            // Either side may be caught with a check in progress (a loaded machine, many
            // servers checked every 200 ms): each is read as done, with the other's result.
            assert_eq!(
                settled_state(&got.state, &want.state),
                settled_state(&want.state, &got.state),
                "show servers state, ringlb (left) vs haproxy (right)"
            );
            assert_eq!(
                settled_stat(&got.stat, &want.stat),
                settled_stat(&want.stat, &got.stat),
                "show stat, ringlb (left) vs haproxy (right)"
            );
        }
        for b in self.backends {
            let status = &got.stat[&format!("{}/s1", b.name)][0];
            assert_eq!(status, &b.want, "{}: {:?}", b.name, got.stat);
        }
        got
    }
}
