//! Master-worker mode (`-W`, `master-worker`): a small master process supervises one worker
//! (ringlb itself, started again with the same command line) and reloads it on SIGUSR2 or
//! SIGHUP without dropping traffic:
//!
//! 1. the new configuration is checked first (`ringlb -c`); an invalid one changes nothing and
//!    the current worker keeps serving;
//! 2. a new worker starts with `-sf <old worker>`: it binds its SO_REUSEPORT listeners next to
//!    the old ones, and once it serves it tells the old worker to finish softly (SIGUSR1);
//! 3. the old worker stops accepting, finishes its requests, and exits.
//!
//! SIGTERM/SIGINT stop every worker at once, SIGUSR1 softly; the master exits when its workers
//! are gone. A worker that dies on its own takes the master down with it (HAProxy's default),
//! so a supervisor (systemd) sees the failure.

use std::ffi::OsString;
use std::process::{Child, Command};
use std::time::Duration;

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
            _ => out.push(a.clone()),
        }
    }
    out
}

fn spawn_worker(args: &[OsString], finish: Option<u32>) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(args).env(WORKER_ENV, "1");
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

/// Runs the master until its workers are gone; returns the exit code.
pub fn run(args: Vec<OsString>, pidfile: Option<std::path::PathBuf>) -> i32 {
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
    let mut current = match spawn_worker(&wargs, None) {
        Ok(c) => c,
        Err(e) => {
            alert(&format!("cannot start the worker: {e}"));
            return 1;
        }
    };
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", pid())) {
            alert(&format!("Cannot create pidfile {} : {e}", p.display()));
        }
    }
    notice(&format!("New worker ({}) forked", current.id()));
    let mut old: Vec<Child> = Vec::new();
    let mut stopping = false;
    loop {
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        // SAFETY: valid set and timespec; a null siginfo is allowed.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        match sig {
            libc::SIGUSR2 | libc::SIGHUP if !stopping => {
                crate::notify::notify("RELOADING=1");
                notice("Reloading: checking the new configuration");
                if !config_is_valid(&wargs) {
                    alert("Reload aborted: the configuration is invalid; the current worker keeps serving.");
                    crate::notify::notify("READY=1");
                } else {
                    match spawn_worker(&wargs, Some(current.id())) {
                        Ok(new) => {
                            notice(&format!("New worker ({}) forked", new.id()));
                            old.push(std::mem::replace(&mut current, new));
                        }
                        Err(e) => alert(&format!("Reload aborted: cannot start a worker: {e}")),
                    }
                }
            }
            libc::SIGTERM | libc::SIGINT => {
                crate::notify::notify("STOPPING=1");
                stopping = true;
                for c in old.iter().chain(std::iter::once(&current)) {
                    send(c.id(), libc::SIGTERM);
                }
            }
            libc::SIGUSR1 => {
                crate::notify::notify("STOPPING=1");
                stopping = true;
                for c in old.iter().chain(std::iter::once(&current)) {
                    send(c.id(), libc::SIGUSR1);
                }
            }
            _ => {}
        }
        // Reap whatever exited.
        old.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        match current.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => {
                if stopping {
                    if old.is_empty() {
                        return 0;
                    }
                } else {
                    alert(&format!(
                        "Current worker ({}) exited with code {} : exiting the master and the other workers.",
                        current.id(),
                        status.code().unwrap_or(1)
                    ));
                    for c in &old {
                        send(c.id(), libc::SIGTERM);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    return status.code().unwrap_or(1).max(1);
                }
            }
            Err(_) => return 1,
        }
        if stopping && old.is_empty() && !matches!(current.try_wait(), Ok(None)) {
            return 0;
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
