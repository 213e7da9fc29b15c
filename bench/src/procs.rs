//! Processes the harness starts, each owned by a guard that kills it by pid when dropped (so also
//! on every error path), ports, a scratch directory, and bounded waits.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM: every wait loop checks it and returns an error, so the guards on the
/// way out stop every process and remove the scratch directory.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM handlers (the handler only stores to an atomic).
pub fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler is async-signal-safe (one atomic store).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// `Err` once the harness was asked to stop.
pub fn check_stop() -> Result<(), String> {
    if STOP.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Children die with the harness even if it is killed outright (SIGKILL leaves no Drop to run).
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Nice value of every benchmark process (the harness, its children): on a shared machine other
/// work then only gets the CPU time the benchmark leaves idle. Needs root; harmless without.
pub const NICE: i32 = -20;

/// Sets the calling thread's nice value (threads it creates inherit it; so do children).
pub fn raise_priority() -> bool {
    // SAFETY: setpriority on the calling thread (who = 0), no memory arguments.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) == 0 }
}

/// With `sched_autogroup` (on here), nice only ranks processes inside one session's autogroup;
/// other sessions' compile jobs compete group against group. This guard gives the harness's
/// autogroup nice -20 for the run and restores the previous value when dropped.
#[derive(Debug)]
pub struct AutogroupNice {
    previous: Option<i32>,
}

const AUTOGROUP: &str = "/proc/self/autogroup";

/// The nice value in `/proc/self/autogroup` ("/autogroup-8 nice 0").
pub fn parse_autogroup_nice(text: &str) -> Option<i32> {
    let mut it = text.split_whitespace();
    it.find(|w| *w == "nice")?;
    it.next()?.parse().ok()
}

impl AutogroupNice {
    pub fn raise() -> AutogroupNice {
        let previous = fs::read_to_string(AUTOGROUP)
            .ok()
            .and_then(|t| parse_autogroup_nice(&t));
        if previous.is_some() && fs::write(AUTOGROUP, NICE.to_string()).is_ok() {
            return AutogroupNice { previous };
        }
        AutogroupNice { previous: None }
    }

    pub fn active(&self) -> bool {
        self.previous.is_some()
    }
}

impl Drop for AutogroupNice {
    fn drop(&mut self) {
        if let Some(p) = self.previous {
            let _ = fs::write(AUTOGROUP, p.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn autogroup_line() {
        assert_eq!(
            super::parse_autogroup_nice("/autogroup-8 nice 0\n"),
            Some(0)
        );
        assert_eq!(
            super::parse_autogroup_nice("/autogroup-12 nice -20"),
            Some(-20)
        );
        assert_eq!(super::parse_autogroup_nice("garbage"), None);
    }
}

/// A started process. Dropping it sends SIGTERM, waits up to 2 s, then SIGKILL, and reaps it.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    done: bool,
}

impl Proc {
    /// Starts `cmd` pinned to `cpus` (`taskset -c`), stdout and stderr to `log`.
    pub fn spawn(name: &str, cpus: &str, cmd: &[String], log: &Path) -> Result<Proc, String> {
        let (prog, args) = cmd.split_first().ok_or("empty command")?;
        let out = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(cpus)
            .arg(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({prog}): {e}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            done: false,
        })
    }

    /// taskset execs the program, so this is the program's own pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.done = true;
                Some(s)
            }
            _ => None,
        }
    }

    /// Waits for the process to exit by itself, at most `limit`; kills it past that.
    pub fn wait_bounded(&mut self, limit: Duration) -> Result<std::process::ExitStatus, String> {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.exited() {
                return Ok(s);
            }
            if t0.elapsed() > limit {
                self.stop();
                return Err(format!(
                    "{} did not finish within {limit:?}; killed",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, up to 2 s of grace, SIGKILL; always reaps.
    pub fn stop(&mut self) {
        if self.done {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of our own child, not yet reaped (so not reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.done = true;
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.done = true;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A scratch directory removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("ringlb-bench-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A loopback port free right now (the kernel picks it; the socket is closed before use).
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Waits until something accepts on 127.0.0.1:`port`, at most `limit`. Fails early if the
/// process exits.
pub fn wait_port(proc_: &mut Proc, port: u16, limit: Duration) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t0 = Instant::now();
    loop {
        if let Some(s) = proc_.exited() {
            return Err(format!(
                "{} exited ({s}) before listening on {port}",
                proc_.name
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if t0.elapsed() > limit {
            return Err(format!(
                "{} not listening on {port} after {limit:?}",
                proc_.name
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a short command to completion with a time limit; returns (success, stdout + stderr).
pub fn run_capture(cmd: &[&str], limit: Duration) -> Result<(bool, String), String> {
    let (prog, args) = cmd.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {prog}: {e}"))?;
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if t0.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{prog} did not finish within {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{prog}: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{prog}: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// Status code of one request through curl (`-k` for TLS, `--http2-prior-knowledge` for h2c).
pub fn probe(url: &str, extra: &[&str]) -> Result<u16, String> {
    let mut cmd = vec![
        "curl",
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "3",
    ];
    cmd.extend_from_slice(extra);
    cmd.push(url);
    let (_, out) = run_capture(&cmd, Duration::from_secs(5))?;
    out.trim()
        .parse()
        .map_err(|_| format!("probe {url}: curl said {out:?}"))
}

/// Raises the soft open-files limit to the hard limit (the idle-connection holder needs ~10k).
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        r.rlim_cur = r.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
            return 0;
        }
    }
    r.rlim_cur
}

/// Pins the calling thread to one CPU (the open-loop generator's threads run on the load CPU).
pub fn pin_current_thread(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) affects the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
