//! Child processes owned by a test: output captured to files, stopped by pid on drop.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::tempdir::TempDir;

/// How long `Drop` waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// A spawned process that is stopped on drop: SIGTERM to its pid, then SIGKILL after
/// `STOP_TIMEOUT`. Its stdout and stderr go to files in a private temp dir; when the
/// test thread is panicking, `Drop` prints them so the failure shows why.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _dir: TempDir,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and stdout/stderr captured. `name` labels the output.
    pub fn spawn(name: &str, cmd: &mut Command) -> io::Result<ChildGuard> {
        let dir = TempDir::new(&format!("child-{}", sanitize(name)));
        let stdout_path = dir.join("stdout");
        let stderr_path = dir.join("stderr");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path)?)
            .stderr(File::create(&stderr_path)?)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawn {name} ({cmd:?}): {e}")))?;
        Ok(ChildGuard {
            name: name.to_owned(),
            child,
            exited: None,
            stdout_path,
            stderr_path,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// Both outputs, labelled, for assertion messages; each cut to its last
    /// `DUMP_TAIL_BYTES`.
    pub fn dump(&self) -> String {
        format!(
            "--- {} (pid {}) stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.pid(),
            tail(&self.stdout()),
            self.name,
            tail(&self.stderr())
        )
    }

    /// The exit status if the process has exited (reaps it).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Sends `sig` (e.g. `libc::SIGUSR1`) to the pid. Refused once the child is reaped,
    /// so a recycled pid is never signalled.
    pub fn signal(&mut self, sig: i32) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Err(io::Error::other(format!("{} already exited", self.name)));
        }
        let pid = libc::pid_t::try_from(self.pid()).map_err(io::Error::other)?;
        // SAFETY: kill(2) only reads its two integer arguments; the pid is our unreaped child.
        if unsafe { libc::kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait up to `timeout`, then SIGKILL and wait.
    pub fn stop(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        if let Some(s) = self.try_wait()? {
            return Ok(s);
        }
        let _ = self.signal(libc::SIGTERM);
        if let Some(s) = self.wait_timeout(timeout)? {
            return Ok(s);
        }
        let _ = self.signal(libc::SIGKILL);
        let s = self.child.wait()?;
        self.exited = Some(s);
        Ok(s)
    }

    /// Waits until every address accepts a connection; fails early, with the child's
    /// output, if the process exits first.
    pub fn wait_ready(&mut self, addrs: &[SocketAddr], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        for addr in addrs {
            loop {
                if let Some(s) = self.try_wait()? {
                    return Err(io::Error::other(format!(
                        "{} exited ({s}) before {addr} was ready\n{}",
                        self.name,
                        self.dump()
                    )));
                }
                if TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{addr} not ready after {timeout:?}\n{}", self.dump()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// A `/proc/<pid>/status` field in KiB (`VmHWM`, `VmRSS`, ...).
    pub fn proc_status_kib(&self, field: &str) -> Option<u64> {
        proc_status_kib(self.pid(), field)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.stop(STOP_TIMEOUT);
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
    }
}

/// How much of each output `dump` shows.
pub const DUMP_TAIL_BYTES: usize = 32 * 1024;

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(DUMP_TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(32)
        .collect()
}

/// A `/proc/<pid>/status` field in KiB, e.g. `proc_status_kib(pid, "VmHWM")`.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time a process used so far, user + system, in clock ticks (`/proc/<pid>/stat` fields
/// 14 and 15; 100 per second on Linux).
pub fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let mut f = after.split(' ').skip(11);
    let user: u64 = f.next()?.parse().ok()?;
    let system: u64 = f.next()?.parse().ok()?;
    Some(user + system)
}

/// Waits until `addr` accepts a TCP connection.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{addr} not accepting after {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` every 10 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Finds a workspace binary, or `None`. Order: `$RINGLB_BIN` for `ringlb`,
/// `$RINGLB_ORIGIN_BIN` for `ringlb-origin` (any name: upper-cased, `-` → `_`, plus
/// `_BIN`); then beside the running test (`target/<profile>/deps/` → `target/<profile>/`).
pub fn try_bin_path(name: &str) -> Option<PathBuf> {
    let var = format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?.to_path_buf();
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir = dir.parent()?.to_path_buf();
    }
    let candidate = dir.join(name);
    candidate.is_file().then_some(candidate)
}

/// Like `try_bin_path`, but panics with how to fix it when the binary is missing.
pub fn bin_path(name: &str) -> PathBuf {
    match try_bin_path(name) {
        Some(p) => p,
        None => panic!(
            "binary `{name}` not found beside the test executable; build it first \
             (cargo build -p {name}) or set {}_BIN",
            name.to_ascii_uppercase().replace('-', "_")
        ),
    }
}

/// Inodes of the IPv4 TCP sockets listening on `port` (from /proc/net/tcp), sorted: the same
/// inodes before and after a reload prove the listening sockets were handed over.
pub fn listening_inodes(port: u16) -> Vec<String> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = format!(":{port:04X}");
    let mut out: Vec<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1)?.ends_with(&want) && f.get(3) == Some(&"0A"))
                .then(|| f.get(9).map(|s| s.to_string()))?
        })
        .collect();
    out.sort();
    out
}

/// Inodes of the UNIX sockets listening at `path` (from /proc/net/unix, where a socket keeps
/// the name it was bound to: `path` itself or the temporary `path.<pid>.tmp` ringlb and
/// haproxy bind before renaming it into place), sorted. A socket whose path was renamed over
/// by a newer one is still listed while a process holds it.
pub fn unix_listening_inodes(path: &Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let path = path.display().to_string();
    let named = |name: &str| {
        name == path
            || name
                .strip_prefix(path.as_str())
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_suffix(".tmp"))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut out: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            // Num RefCount Protocol Flags Type St Inode Path; __SO_ACCEPTCON (0x10000) in Flags
            // marks a listening socket.
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            (flags & 0x10000 != 0 && named(f.get(7)?)).then(|| f.get(6).map(|s| s.to_string()))?
        })
        .collect();
    out.sort();
    out
}

/// The children of process `pid` (a master's workers), from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_captures_output_and_kills_on_drop() {
        let mut g = ChildGuard::spawn(
            "sh",
            Command::new("sh").args(["-c", "echo out; echo err >&2; exec sleep 30"]),
        )
        .unwrap();
        let pid = g.pid();
        assert!(wait_until(Duration::from_secs(5), || g.stdout() == "out\n"
            && g.stderr() == "err\n"));
        assert!(g.is_running());
        assert!(proc_status_kib(pid, "VmRSS").is_some());
        drop(g);
        // Reaped by the guard: the pid is gone (or, rarely, recycled by another process).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(!status.contains("sleep"), "pid {pid} still runs sleep");
    }

    #[test]
    fn stop_escalates_to_sigkill() {
        let mut g = ChildGuard::spawn(
            "stubborn",
            Command::new("sh").args([
                "-c",
                "trap '' TERM; echo ready; while :; do sleep 0.05; done",
            ]),
        )
        .unwrap();
        assert!(wait_until(Duration::from_secs(5), || g.stdout() == "ready\n"));
        let status = g.stop(Duration::from_millis(200)).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(
            g.signal(libc::SIGTERM).is_err(),
            "a reaped child must not be signalled"
        );
    }

    #[test]
    fn wait_ready_reports_early_exit() {
        let addr = crate::ports::free_addr();
        let mut g = ChildGuard::spawn(
            "fails",
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
        )
        .unwrap();
        let err = g.wait_ready(&[addr], Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn waits() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        wait_for_port(l.local_addr().unwrap(), Duration::from_secs(1)).unwrap();
        let closed = crate::ports::free_addr();
        assert!(wait_for_port(closed, Duration::from_millis(100)).is_err());
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(1), || {
            n += 1;
            n == 3
        }));
        assert!(!wait_until(Duration::from_millis(30), || false));
    }

    #[test]
    fn bin_path_honours_env() {
        // A name no other test uses, so setting its variable cannot race with them.
        std::env::set_var("RINGLB_KIT_SELFTEST_BIN", "/bin/true");
        assert_eq!(
            try_bin_path("ringlb-kit-selftest"),
            Some(PathBuf::from("/bin/true"))
        );
        assert_eq!(try_bin_path("no-such-binary-here"), None);
    }
}
