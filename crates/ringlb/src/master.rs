//! Master-worker mode (`-W`, `master-worker`): a small master process supervises one worker
//! (ringlb itself, started again with the same command line) and reloads it on SIGUSR2 or
//! SIGHUP without dropping traffic:
//!
//! 1. the new configuration is checked first (`ringlb -c`); an invalid one changes nothing and
//!    the current worker keeps serving;
//! 2. a new worker starts with `-x <old worker's private socket> -sf <old worker>`: it takes the
//!    old worker's listening sockets (`ringlb_shard::handoff`, haproxy's `sockpair@` reload;
//!    without a private socket, a `stats socket` with `expose-fd listeners`; with neither, it
//!    binds its own SO_REUSEPORT listeners next to the old ones), and once it serves it tells
//!    the old worker to finish softly (SIGUSR1);
//! 3. the old worker stops accepting, finishes its requests, and exits.
//!
//! Each worker gets a private admin socket (`mcli::CHANNEL_ENV`) for that and for the master
//! CLI (`-S`, `mcli.rs`), which routes `@1`/`@!<pid>` commands to it.
//!
//! With `reload-mode in-process` in the configuration file, SIGUSR2 is passed to the worker,
//! which reloads in process (keeping runtime state, `ringlb_control::reload`); SIGHUP still
//! starts a new worker.
//!
//! SIGTERM/SIGINT stop every worker at once, SIGUSR1 softly; the master exits when its workers
//! are gone. A worker that dies on its own takes the master down with it (HAProxy's default),
//! so a supervisor (systemd) sees the failure.
//!
//! `mworker-max-reloads N`: an old worker still draining after more than N reloads gets
//! SIGTERM. `program` sections are started by the master after the first worker (as their
//! `user`/`group`); a reload restarts them (SIGTERM to the old instance, then a new one)
//! unless `no option start-on-reload`, starts the programs the new configuration added and
//! stops those it removed; the master's exit stops them all (SIGTERM, by pid). A program
//! that exits is reported and not restarted, as in HAProxy.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use ringlb_config::model::{Config, Program};

/// Set in a worker's environment: the worker must not become a master itself (the config may
/// say `master-worker`).
pub const WORKER_ENV: &str = "RINGLB_WORKER";

fn pid() -> u32 {
    std::process::id()
}

fn notice(msg: &str) {
    eprintln!("[NOTICE]   ({}) : {msg}", pid());
}

fn alert(msg: &str) {
    eprintln!("[ALERT]    ({}) : {msg}", pid());
}

/// The worker's command line: ours without the options the master handles itself.
pub fn worker_args(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-W" | "-Ws" | "-D") => {}
            Some("-p") => {
                it.next(); // the master writes the pidfile
            }
            Some("-x") => {
                it.next(); // the master gives each worker the socket to fetch listeners from
            }
            Some("-S") => {
                it.next(); // the master CLI is the master's
            }
            _ => out.push(a.clone()),
        }
    }
    out
}

/// The runtime socket a new worker fetches the old one's listening sockets from: the first
/// UNIX `stats socket` with `expose-fd listeners` (haproxy's master passes `-x` the same way).
pub fn exposing_socket(cfg: &Config) -> Option<PathBuf> {
    cfg.global
        .stats_sockets
        .iter()
        .filter(|s| s.expose_fd_listeners)
        .find_map(|s| match ringlb_control::cli::parse_addr(&s.address) {
            Ok(ringlb_control::cli::CliAddr::Unix(p)) => Some(p),
            _ => None,
        })
}

/// The private admin sockets of the workers (`mcli::CHANNEL_ENV`), one directory per master.
struct Channels {
    dir: Option<PathBuf>,
    next: u32,
}

impl Channels {
    fn new() -> Channels {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("ringlb-master-{}", pid()));
        let _ = std::fs::remove_dir_all(&dir);
        let made = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        if let Err(e) = &made {
            alert(&format!(
                "cannot create {}: {e}; workers get no private socket (no master CLI routing, reloads bind new listeners unless a stats socket exposes them)",
                dir.display()
            ));
        }
        Channels {
            dir: made.ok().map(|()| dir),
            next: 0,
        }
    }

    /// A fresh socket path for the next worker.
    fn next(&mut self) -> Option<PathBuf> {
        self.next += 1;
        let n = self.next;
        self.dir.as_ref().map(|d| d.join(format!("w{n}.sock")))
    }
}

impl Drop for Channels {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn spawn_worker(
    args: &[OsString],
    finish: Option<u32>,
    expose: Option<&PathBuf>,
    channel: Option<&PathBuf>,
) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(args).env(WORKER_ENV, "1");
    if let Some(c) = channel {
        cmd.env(crate::mcli::CHANNEL_ENV, c);
    }
    // A worker must not outlive its master (killed by a supervisor with SIGKILL): the kernel
    // sends it SIGTERM when the master dies.
    // SAFETY: prctl is async-signal-safe; the closure touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    if let Some(old) = finish {
        cmd.arg("-sf").arg(old.to_string());
    }
    if let Some(path) = expose {
        cmd.arg("-x").arg(path);
    }
    cmd.spawn()
}

/// Checks the configuration the worker would load (`ringlb -c -q` on the same files).
fn config_is_valid(args: &[OsString]) -> bool {
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    let mut check = vec![OsString::from("-c")];
    check.extend(args.iter().cloned());
    Command::new(exe)
        .args(&check)
        .env(WORKER_ENV, "1")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn send(pid: u32, sig: libc::c_int) {
    if let Ok(p) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid we spawned; failure (already gone) is harmless.
        unsafe {
            libc::kill(p, sig);
        }
    }
}

/// Counts a reload for every old worker; one that has now lived through more than
/// `mworker-max-reloads` gets SIGTERM.
fn survived_reload(old: &mut [Worker], max_reloads: Option<u32>) {
    for w in old {
        w.reloads += 1;
        if max_reloads.is_some_and(|m| w.reloads > m) {
            notice(&format!(
                "Old worker ({}) survived {} reloads (mworker-max-reloads): sending SIGTERM",
                w.child.id(),
                w.reloads
            ));
            send(w.child.id(), libc::SIGTERM);
        }
    }
}

/// A worker and the reloads it has lived through (`mworker-max-reloads`).
struct Worker {
    child: Child,
    reloads: u32,
    started: std::time::SystemTime,
    /// Its private admin socket (master CLI routing, `-x` of the next worker).
    channel: Option<PathBuf>,
}

impl Worker {
    fn proc(&self) -> crate::mcli::Proc {
        crate::mcli::Proc {
            pid: self.child.id(),
            reloads: self.reloads,
            started: self.started,
            channel: self.channel.clone(),
            name: None,
        }
    }
}

/// A running `program` instance.
struct ProgramProc {
    spec: Program,
    child: Child,
    started: std::time::SystemTime,
}

fn spawn_program(p: &Program) -> Result<Child, String> {
    let (exe, args) = p
        .command
        .split_first()
        .ok_or_else(|| format!("program '{}' has no command", p.name))?;
    let uid = p.user.as_deref().map(crate::run::lookup_user).transpose()?;
    let gid = p
        .group
        .as_deref()
        .map(crate::run::lookup_group)
        .transpose()?;
    let mut cmd = Command::new(exe);
    cmd.args(args);
    // SAFETY: only async-signal-safe calls (sigprocmask, setgroups, setgid, setuid) in the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // The master blocks the signals it waits for; a program must get them (SIGTERM).
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            if let Some(gid) = gid {
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(uid) = uid {
                if libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start program '{}' ({exe}): {e}", p.name))
}

/// Starts `programs`; a program that cannot start is reported and skipped (the proxy runs).
fn start_programs(programs: &[Program], into: &mut Vec<ProgramProc>) {
    for p in programs {
        match spawn_program(p) {
            Ok(child) => {
                notice(&format!("New program '{}' ({}) forked", p.name, child.id()));
                into.push(ProgramProc {
                    spec: p.clone(),
                    child,
                    started: std::time::SystemTime::now(),
                });
            }
            Err(e) => alert(&e),
        }
    }
}

/// A reload: programs to restart (start-on-reload, the default) or that the new configuration
/// removed get SIGTERM; then the new configuration's programs not kept are started.
fn reload_programs(running: &mut Vec<ProgramProc>, new: &[Program]) {
    let mut kept = Vec::new();
    for p in running.drain(..) {
        let same = new.iter().find(|n| n.name == p.spec.name);
        let restart = same.is_none_or(|n| n.start_on_reload.unwrap_or(true));
        if restart {
            send(p.child.id(), libc::SIGTERM);
            reap_later(p.child);
        } else {
            kept.push(p);
        }
    }
    let to_start: Vec<Program> = new
        .iter()
        .filter(|n| !kept.iter().any(|k| k.spec.name == n.name))
        .cloned()
        .collect();
    *running = kept;
    start_programs(&to_start, running);
}

/// Waits for a signalled child in a thread of its own, so it does not stay a zombie.
fn reap_later(mut child: Child) {
    let _ = std::thread::Builder::new()
        .name("ringlb-reap".into())
        .spawn(move || {
            let _ = child.wait();
        });
}

/// Reports programs that exited (they are not restarted).
fn reap_programs(running: &mut Vec<ProgramProc>) {
    running.retain_mut(|p| match p.child.try_wait() {
        Ok(Some(status)) => {
            alert(&format!(
                "Current program '{}' ({}) exited with code {}",
                p.spec.name,
                p.child.id(),
                status.code().unwrap_or(-1)
            ));
            false
        }
        _ => true,
    });
}

/// SIGTERM to every program, then SIGKILL to those still running after 5 s (the master's
/// exit must not hang on a program that ignores SIGTERM).
fn stop_programs(running: &mut Vec<ProgramProc>) {
    for p in running.iter() {
        send(p.child.id(), libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for mut p in running.drain(..) {
        while matches!(p.child.try_wait(), Ok(None)) {
            if std::time::Instant::now() >= deadline {
                send(p.child.id(), libc::SIGKILL);
                let _ = p.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The programs and `mworker-max-reloads` of the configuration after a reload.
fn reload_config(files: &[PathBuf]) -> Option<Config> {
    ringlb_config::load(files, &|k| std::env::var(k).ok())
        .ok()
        .map(|l| l.config)
}

/// Runs the master until its workers are gone; returns the exit code.
pub fn run(
    args: Vec<OsString>,
    pidfile: Option<std::path::PathBuf>,
    files: Vec<PathBuf>,
    cfg: &Config,
) -> i32 {
    let mut programs = Vec::new();
    let code = supervise(args, pidfile, &files, cfg, &mut programs);
    stop_programs(&mut programs);
    code
}

/// The master CLI sockets of `-S` (bound once the signals are blocked, so its `reload` reaches
/// the supervise loop). Returns the UNIX paths to remove at exit, or the error.
fn start_master_cli(
    args: &[OsString],
    table: &crate::mcli::Shared,
) -> Result<Vec<PathBuf>, String> {
    let cli = crate::cli::parse(args.iter().cloned())?;
    let mut paths = Vec::new();
    for s in &cli.master_cli {
        let spec = crate::mcli::parse_spec(s)?;
        paths.extend(crate::mcli::start(&spec, table.clone())?);
    }
    Ok(paths)
}

/// The process table the master CLI shows, as of now.
fn publish(
    table: &crate::mcli::Shared,
    current: &Worker,
    old: &[Worker],
    programs: &[ProgramProc],
    (reloads, failed): (u32, u32),
) {
    if let Ok(mut t) = table.lock() {
        t.reloads = reloads;
        t.failed = failed;
        t.current = Some(current.proc());
        t.old = old.iter().map(Worker::proc).collect();
        t.programs = programs
            .iter()
            .map(|p| crate::mcli::Proc {
                pid: p.child.id(),
                reloads: 0,
                started: p.started,
                channel: None,
                name: Some(p.spec.name.clone()),
            })
            .collect();
    }
}

fn supervise(
    args: Vec<OsString>,
    pidfile: Option<std::path::PathBuf>,
    files: &[PathBuf],
    cfg: &Config,
    programs: &mut Vec<ProgramProc>,
) -> i32 {
    let mut max_reloads = cfg.global.ops.mworker_max_reloads;
    let wargs = worker_args(&args);
    // Signals are taken synchronously (sigtimedwait) by this single-threaded loop.
    // SAFETY: sigset operations on a local set; sigprocmask on this (only) thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGHUP,
            libc::SIGCHLD,
        ] {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    // `-x` on the master's command line is for the first worker (a master replacing another).
    let first_x = crate::cli::parse(args.iter().cloned())
        .ok()
        .and_then(|c| c.expose_socket);
    let mut expose = exposing_socket(cfg);
    let mut channels = Channels::new();
    let table: crate::mcli::Shared =
        std::sync::Arc::new(std::sync::Mutex::new(crate::mcli::ProcTable {
            master_pid: pid(),
            master_started: std::time::SystemTime::now(),
            reloads: 0,
            failed: 0,
            current: None,
            old: Vec::new(),
            programs: Vec::new(),
        }));
    let mcli_paths = match start_master_cli(&args, &table) {
        Ok(p) => p,
        Err(e) => {
            alert(&e);
            return 1;
        }
    };
    let _remove = RemoveOnDrop(mcli_paths);
    let (mut reloads, mut failed) = (0u32, 0u32);
    let channel = channels.next();
    let mut current = match spawn_worker(&wargs, None, first_x.as_ref(), channel.as_ref()) {
        Ok(child) => Worker {
            child,
            reloads: 0,
            started: std::time::SystemTime::now(),
            channel,
        },
        Err(e) => {
            alert(&format!("cannot start the worker: {e}"));
            return 1;
        }
    };
    start_programs(&cfg.programs, programs);
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", pid())) {
            alert(&format!("Cannot create pidfile {} : {e}", p.display()));
        }
    }
    notice(&format!("New worker ({}) forked", current.child.id()));
    publish(&table, &current, &[], programs, (0, 0));
    let mut old: Vec<Worker> = Vec::new();
    let mut stopping = false;
    loop {
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        // SAFETY: valid set and timespec; a null siginfo is allowed.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        match sig {
            // `reload-mode in-process` (read from the files now, so the file that asks for
            // it decides): the worker reloads itself and keeps its runtime state. SIGHUP
            // always starts a new worker (the way to change what a worker cannot).
            libc::SIGUSR2
                if !stopping
                    && reload_config(files).is_some_and(|c| c.global.ops.reload_in_process) =>
            {
                notice(&format!(
                    "Reloading in process (reload-mode in-process): SIGUSR2 sent to worker ({})",
                    current.child.id()
                ));
                send(current.child.id(), libc::SIGUSR2);
            }
            libc::SIGUSR2 | libc::SIGHUP if !stopping => {
                crate::notify::notify("RELOADING=1");
                notice("Reloading: checking the new configuration");
                if !config_is_valid(&wargs) {
                    alert("Reload aborted: the configuration is invalid; the current worker keeps serving.");
                    // As haproxy 2.6's `show proc` counts it: a reload (failed), which every
                    // worker lived through.
                    reloads += 1;
                    failed += 1;
                    current.reloads += 1;
                    survived_reload(&mut old, max_reloads);
                    crate::notify::notify("READY=1");
                } else {
                    // haproxy's master passes `-x sockpair@` the same way: the new worker takes
                    // the current one's listeners from its private socket (or a stats socket
                    // with `expose-fd listeners` when there is no private one).
                    let x = current.channel.clone().or_else(|| expose.clone());
                    let channel = channels.next();
                    match spawn_worker(
                        &wargs,
                        Some(current.child.id()),
                        x.as_ref(),
                        channel.as_ref(),
                    ) {
                        Ok(child) => {
                            notice(&format!("New worker ({}) forked", child.id()));
                            reloads += 1;
                            let new = Worker {
                                child,
                                reloads: 0,
                                started: std::time::SystemTime::now(),
                                channel,
                            };
                            let was = std::mem::replace(&mut current, new);
                            old.push(was);
                            let new_cfg = reload_config(files);
                            if let Some(c) = &new_cfg {
                                // The new worker's socket is the one the next reload asks.
                                expose = exposing_socket(c);
                                max_reloads = c.global.ops.mworker_max_reloads;
                                reload_programs(programs, &c.programs);
                            }
                            survived_reload(&mut old, max_reloads);
                        }
                        Err(e) => {
                            alert(&format!("Reload aborted: cannot start a worker: {e}"));
                            reloads += 1;
                            failed += 1;
                            current.reloads += 1;
                            survived_reload(&mut old, max_reloads);
                        }
                    }
                }
            }
            libc::SIGTERM | libc::SIGINT => {
                crate::notify::notify("STOPPING=1");
                stopping = true;
                for c in old
                    .iter()
                    .map(|w| &w.child)
                    .chain(std::iter::once(&current.child))
                {
                    send(c.id(), libc::SIGTERM);
                }
            }
            libc::SIGUSR1 => {
                crate::notify::notify("STOPPING=1");
                stopping = true;
                for c in old
                    .iter()
                    .map(|w| &w.child)
                    .chain(std::iter::once(&current.child))
                {
                    send(c.id(), libc::SIGUSR1);
                }
            }
            _ => {}
        }
        // Reap whatever exited.
        old.retain_mut(|w| {
            let running = matches!(w.child.try_wait(), Ok(None));
            if !running {
                // Its private socket goes with it.
                if let Some(c) = &w.channel {
                    let _ = std::fs::remove_file(c);
                }
            }
            running
        });
        reap_programs(programs);
        publish(&table, &current, &old, programs, (reloads, failed));
        match current.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => {
                if stopping {
                    if old.is_empty() {
                        return 0;
                    }
                } else {
                    alert(&format!(
                        "Current worker ({}) exited with code {} : exiting the master and the other workers.",
                        current.child.id(),
                        status.code().unwrap_or(1)
                    ));
                    for w in &old {
                        send(w.child.id(), libc::SIGTERM);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    return status.code().unwrap_or(1).max(1);
                }
            }
            Err(_) => return 1,
        }
        if stopping && old.is_empty() && !matches!(current.child.try_wait(), Ok(None)) {
            return 0;
        }
    }
}

/// Removes the master CLI's socket files when the master returns.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_command_line_drops_what_the_master_handles() {
        let args: Vec<OsString> = [
            "ringlb",
            "-W",
            "-D",
            "-p",
            "/run/x.pid",
            "-f",
            "a.cfg",
            "-q",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let w: Vec<String> = worker_args(&args)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(w, ["-f", "a.cfg", "-q"]);
    }
}
