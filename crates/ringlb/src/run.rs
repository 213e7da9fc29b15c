//! Running the proxy from a loaded configuration: refuse what is not implemented, build the
//! topology, raise limits, daemonize, start the shards, drop privileges, handle signals.

use std::ffi::CString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use ringlb_config::limits::{BootFds, FdBudget};
use ringlb_config::model::Config;
use ringlb_config::registry::Status;
use ringlb_control::checks::CheckPlan;
use ringlb_control::cli::{build_table, CliPlan};
use ringlb_control::placement::{allowed_cpus, shard_cpus};
use ringlb_control::{handle_signals, Proxy, Signal};
use ringlb_shard::{ControlMsg, Topology};

/// Process options from the command line.
pub struct RunOptions {
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub quiet: bool,
    /// `-dW` / `zero-warning`: a warning at startup stops the process.
    pub zero_warning: bool,
    /// `-sf`: old processes told to finish softly (SIGUSR1) once this one serves.
    pub soft_finish: Vec<u32>,
    /// `-st`: old processes terminated (SIGTERM) once this one serves.
    pub terminate: Vec<u32>,
    /// `-x <socket>`: fetch the old process's listening sockets from its runtime socket.
    pub expose_socket: Option<PathBuf>,
    /// The command line the process started with: the runtime socket's `reload` and SIGUSR2
    /// re-read its configuration files in process (`None`: in-process reload off).
    pub reload_cli: Option<crate::cli::Cli>,
}

fn pid() -> u32 {
    std::process::id()
}

/// The process systemd supervises: the master in master-worker mode, else this one.
fn main_pid() -> u32 {
    if std::env::var_os(crate::master::WORKER_ENV).is_some() {
        // SAFETY: getppid(2) cannot fail.
        u32::try_from(unsafe { libc::getppid() }).unwrap_or_else(|_| pid())
    } else {
        pid()
    }
}

fn alert(msg: &str) {
    eprintln!("[ALERT]    ({}) : {msg}", pid());
}

fn warning(msg: &str) {
    eprintln!("[WARNING]  ({}) : {msg}", pid());
}

/// Keywords that only change what is logged: the engine warns that they have no effect yet
/// instead of refusing to start (refusing would block every real config for want of logs).
/// Every other keyword the registry marks `Parsed` would change traffic, so ringlb refuses to
/// start rather than silently serve without it.
fn is_logging_only(keyword: &str) -> bool {
    matches!(
        keyword,
        "log"
            | "log-format"
            | "log-tag"
            | "log-send-hostname"
            | "option httplog"
            | "option tcplog"
            | "option dontlognull"
            | "option log-health-checks"
            | "option log-separate-errors"
            | "capture request"
            | "capture response"
            | "capture cookie"
            | "error-log-format"
    ) || keyword.starts_with("log ")
}

/// A keyword the configuration uses that the engine does not implement yet.
pub struct Pending {
    /// `config : parsing [file:line] : 'keyword' : why`.
    pub message: String,
    /// Logging-only: ringlb starts anyway (with this warning); otherwise it refuses to start.
    pub starts_anyway: bool,
}

/// Every use of a keyword the registry marks `Parsed` (implemented by a later issue).
pub fn pending_keywords(cfg: &Config) -> Vec<Pending> {
    cfg.keyword_uses
        .iter()
        .filter_map(|u| {
            let Status::Parsed { issue } = u.status else { return None };
            let at = format!("config : parsing [{}:{}] : '{}'", u.loc.file, u.loc.line, u.keyword);
            let starts_anyway = is_logging_only(&u.keyword);
            let message = if starts_anyway {
                format!("{at} : not implemented by ringlb yet (issue #{issue}); ringlb starts and logs without it.")
            } else {
                format!("{at} : keyword is parsed but not implemented by ringlb yet (issue #{issue}); ringlb refuses to start rather than ignore it.")
            };
            Some(Pending { message, starts_anyway })
        })
        .collect()
}

/// Checks that everything the config asks for is implemented; returns false (after printing
/// alerts) when ringlb must not start (a warning too under `zero-warning`).
pub fn check_implemented(cfg: &Config, quiet: bool, zero_warning: bool) -> bool {
    let mut ok = true;
    for p in pending_keywords(cfg) {
        if p.starts_anyway {
            if !quiet {
                warning(&p.message);
            }
            if zero_warning && ok {
                alert(crate::cli::zero_warning_message(cfg));
                ok = false;
            }
        } else {
            alert(&p.message);
            ok = false;
        }
    }
    ok
}

/// The descriptor budget computed at start: an in-process reload keeps it (the open-files
/// limit and the threads do not change in a running process).
static START_BUDGET: std::sync::OnceLock<FdBudget> = std::sync::OnceLock::new();

/// The budget the process started with (`None` before `run` computed it).
pub fn start_budget() -> Option<FdBudget> {
    START_BUDGET.get().copied()
}

/// Gives `cfg` the process's `maxconn` when `global` leaves it unset (or 0), as haproxy
/// computes it: every frontend default and backend `fullconn` then follow from it.
pub fn apply_budget(cfg: &mut Config, budget: &FdBudget) {
    if cfg.global.maxconn.is_none_or(|m| m == 0) {
        cfg.global.maxconn = Some(budget.maxconn);
    }
}

/// The open-files limit at start.
fn boot_fds() -> BootFds {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return BootFds::default();
    }
    BootFds {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    }
}

/// Sets the open-files limit as HAProxy does (its default `strict-limits`: failing is fatal):
/// exactly `ulimit-n` when given, else the budget's `Maxsock` (lowered or raised, as haproxy
/// does: `Ulimit-n` then reads the same) plus what ringlb's shards hold beyond haproxy's
/// per-thread reserve (`limits::shard_extra_fds`, zero for a few threads; that extra is only
/// taken as far as the hard limit allows). Never above `fd-hard-limit`. Root may raise the
/// hard limit itself.
fn set_fd_limit(cfg: &Config, budget: &FdBudget, nbthread: u32) -> Result<(), String> {
    let ops = &cfg.global.ops;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(());
    }
    let cap = ops.fd_hard_limit.map_or(u64::MAX, u64::from);
    let wanted = budget.ulimit_n;
    if wanted > cap {
        return Err(format!(
            "[ringlb.main()] Cannot raise FD limit to {wanted}, fd-hard-limit is {cap}."
        ));
    }
    let target = match ops.ulimit_n {
        Some(_) => wanted,
        None => {
            let extra = ringlb_config::limits::shard_extra_fds(
                ringlb_config::limits::bound_addresses(cfg),
                nbthread,
            );
            wanted.max((wanted + extra).min(lim.rlim_max).min(cap))
        }
    };
    let new = libc::rlimit {
        rlim_cur: target,
        rlim_max: lim.rlim_max.max(target),
    };
    // SAFETY: new is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        return Err(format!(
            "[ringlb.main()] Cannot raise FD limit to {wanted}, limit is {}.",
            lim.rlim_max
        ));
    }
    Ok(())
}

/// A worker of `-W`: the configuration plus the private admin socket its master asked for
/// (`mcli::CHANNEL_ENV`), which the master CLI routes `@1`/`@!pid` to and the next worker takes
/// the listeners from (`expose-fd listeners`, as haproxy's master-worker socket pair).
fn with_master_channel(cfg: &Config) -> std::borrow::Cow<'_, Config> {
    let Some(path) = std::env::var_os(crate::mcli::CHANNEL_ENV) else {
        return std::borrow::Cow::Borrowed(cfg);
    };
    let mut c = cfg.clone();
    c.global
        .stats_sockets
        .push(ringlb_config::model::StatsSocket {
            loc: ringlb_config::model::Loc::default(),
            address: path.to_string_lossy().into_owned(),
            mode: Some(0o600),
            level: Some("admin".into()),
            expose_fd_listeners: true,
            options: Vec::new(),
        });
    std::borrow::Cow::Owned(c)
}

/// `-x <socket>`: receives the old process's listening sockets (`_getsocks`) for the shards
/// to serve instead of binding new ones (`ringlb_shard::handoff`). `/dev/null` means none, as
/// in haproxy.
fn inherit_listeners(path: &std::path::Path, quiet: bool) -> Result<(), String> {
    if path == std::path::Path::new("/dev/null") {
        return Ok(());
    }
    let got = ringlb_shard::handoff::fetch(path, std::time::Duration::from_secs(10))
        .map_err(|e| format!("Failed to get the sockets from the old process! ({e})"))?;
    if !quiet && std::env::var_os("RINGLB_DEBUG_HANDOFF").is_some() {
        eprintln!(
            "[NOTICE]   ({}) : received {} listening socket(s) from {}",
            pid(),
            got.len(),
            path.display()
        );
    }
    ringlb_shard::handoff::set_inherited(got);
    Ok(())
}

/// `set-dumpable`: after the privilege drop (which clears it), the process is dumpable again
/// and its core size limit is raised to the hard limit, as HAProxy does.
fn set_dumpable() -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer, then a valid rlimit; prctl takes plain integers.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_CORE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_CORE, &lim);
        }
        if libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 {
            return Err("[ringlb.main()] Failed to set the dumpable flag.".into());
        }
    }
    Ok(())
}

/// `daemon` / `-D`: forks; the parent waits until the child reports that it is serving (or
/// why not) and exits with that status, so `ringlb -D` fails visibly on a bind error.
/// Returns the pipe the child reports on.
fn daemonize() -> Result<Option<std::fs::File>, String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err("cannot create a pipe".into());
    }
    // SAFETY: single-threaded at this point (called before any thread starts).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err("cannot fork".into());
    }
    // SAFETY: fds are the descriptors pipe2 returned; each side closes the end it does not use.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    if child > 0 {
        drop(w);
        let mut status = [1u8];
        let mut r = r;
        let code = match r.read(&mut status) {
            Ok(1) => i32::from(status[0]),
            _ => 1,
        };
        std::process::exit(code);
    }
    drop(r);
    // SAFETY: plain syscalls in the child.
    unsafe {
        libc::setsid();
        let null = CString::new("/dev/null").map_err(|_| "nul")?;
        let fd = libc::open(null.as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            libc::dup2(fd, 0);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
    Ok(Some(w))
}

/// `chroot`, then `group`/`gid`, then `user`/`uid`, after the listeners are bound. setgid and
/// setuid apply to every thread of the process (glibc broadcasts them).
fn drop_privileges(cfg: &Config) -> Result<(), String> {
    let g = &cfg.global;
    let gid = match (&g.group, g.gid) {
        (_, Some(gid)) => Some(gid),
        (Some(name), None) => Some(lookup_group(name)?),
        _ => None,
    };
    let uid = match (&g.user, g.uid) {
        (_, Some(uid)) => Some(uid),
        (Some(name), None) => Some(lookup_user(name)?),
        _ => None,
    };
    if let Some(dir) = &g.chroot {
        let c = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| "bad chroot path")?;
        // SAFETY: c is a valid C string.
        if unsafe { libc::chroot(c.as_ptr()) } != 0 || unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
            return Err(format!("[ringlb.main()] Cannot chroot({}).", dir.display()));
        }
    }
    if let Some(gid) = gid {
        // SAFETY: plain syscalls.
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 || unsafe { libc::setgid(gid) } != 0
        {
            return Err(format!("[ringlb.main()] Cannot set gid {gid}."));
        }
    }
    if let Some(uid) = uid {
        // SAFETY: plain syscall.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(format!("[ringlb.main()] Cannot set uid {uid}."));
        }
    }
    Ok(())
}

pub fn lookup_user(name: &str) -> Result<u32, String> {
    let c = CString::new(name).map_err(|_| format!("bad user name '{name}'"))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read before any other call.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!("[ringlb.main()] Cannot find user id for '{name}'."));
    }
    // SAFETY: non-null pointer from getpwnam.
    Ok(unsafe { (*pw).pw_uid })
}

pub fn lookup_group(name: &str) -> Result<u32, String> {
    let c = CString::new(name).map_err(|_| format!("bad group name '{name}'"))?;
    // SAFETY: as lookup_user, for getgrnam.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(format!(
            "[ringlb.main()] Cannot find group id for '{name}'."
        ));
    }
    // SAFETY: non-null pointer from getgrnam.
    Ok(unsafe { (*gr).gr_gid })
}

/// Starts serving `cfg` and returns the process exit code when it stops.
pub fn run(mut cfg: Config, opts: RunOptions) -> i32 {
    if !check_implemented(&cfg, opts.quiet, opts.zero_warning) {
        return 1;
    }
    let allowed = allowed_cpus();
    let nbthread = cfg
        .global
        .nbthread
        .map_or(allowed.len(), |n| n as usize)
        .max(1);
    let budget = ringlb_config::limits::budget(
        &with_master_channel(&cfg),
        u32::try_from(nbthread).unwrap_or(u32::MAX),
        boot_fds(),
    );
    let _ = START_BUDGET.set(budget);
    apply_budget(&mut cfg, &budget);
    let mut topology = match Topology::from_config(&cfg) {
        Ok(t) => Arc::new(Topology { fds: budget, ..t }),
        Err(errors) => {
            for e in errors {
                alert(&format!(
                    "config : parsing [{}:{}] : {}",
                    e.loc.file, e.loc.line, e.message
                ));
            }
            return 1;
        }
    };
    if !opts.quiet {
        for w in &topology.warnings {
            warning(&format!("config : {}", w.text()));
        }
    }
    if opts.zero_warning && !topology.warnings.is_empty() {
        if !opts.quiet {
            alert(crate::cli::zero_warning_message(&cfg));
        }
        return 1;
    }
    let mut checks = match CheckPlan::from_config(&cfg, &topology) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                alert(&format!("config : {e}"));
            }
            return 1;
        }
    };
    checks.quiet = opts.quiet;
    let ring_forwards = match ringlb_control::ringfwd::plan(&cfg, &topology) {
        Ok(f) => f,
        Err(errors) => {
            for e in errors {
                alert(&format!("config : {e}"));
            }
            return 1;
        }
    };
    if !topology.global_log.is_empty() {
        checks.syslog = Some(std::sync::Arc::new(std::sync::Mutex::new(
            ringlb_control::syslog::ControlLog::from_topology(&topology),
        )));
    }
    let mut cli = match CliPlan::from_config(&with_master_channel(&cfg)) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                alert(&format!("config : {e}"));
            }
            return 1;
        }
    };
    cli.table = build_table(&cfg, &topology, &checks.backends);
    // `peers` sections: stick-table replication on the control shard (ADR 0007).
    match ringlb_control::peers::plan(&cfg, &topology) {
        Ok((plans, warnings)) => {
            if !opts.quiet {
                for w in &warnings {
                    warning(w);
                }
            }
            if opts.zero_warning && !warnings.is_empty() {
                alert(crate::cli::zero_warning_message(&cfg));
                return 1;
            }
            cli.peers = plans;
        }
        Err(e) => {
            alert(&e);
            return 1;
        }
    }
    // `load-server-state-from-file`: the states saved by `show servers state` before a
    // reload come back in the table and, as messages every shard applies when built, in
    // the engine.
    let (initial, state_warnings) =
        ringlb_control::cli::restore::restore(&cfg, &mut cli.table, &topology);
    if !opts.quiet {
        for w in &state_warnings {
            warning(w);
        }
    }
    if !initial.is_empty() {
        checks.initial = initial.clone();
        match Arc::get_mut(&mut topology) {
            Some(t) => t.initial.extend(initial),
            None => {
                alert("internal: the topology is shared before the server states were restored");
                return 1;
            }
        }
    }
    let listeners: usize = topology.frontends.iter().map(|f| f.binds.len()).sum();
    if listeners == 0 && cli.is_empty() {
        alert(
            "config : no listener found (no frontend with a bind line, no stats socket). Exiting.",
        );
        return 1;
    }
    let cpus = shard_cpus(nbthread, &cfg.global.cpu_map, &allowed);
    if let Err(e) = set_fd_limit(&cfg, &budget, u32::try_from(nbthread).unwrap_or(u32::MAX)) {
        alert(&e);
        return 1;
    }
    let mut report = None;
    if opts.daemon || cfg.global.daemon {
        match daemonize() {
            Ok(pipe) => report = pipe,
            Err(e) => {
                alert(&e);
                return 1;
            }
        }
    }
    let fail = |report: &mut Option<std::fs::File>, msg: &str| {
        alert(msg);
        if let Some(w) = report.as_mut() {
            let _ = w.write_all(&[1]);
        }
        1
    };
    let signals = match handle_signals() {
        Ok(s) => s,
        Err(e) => return fail(&mut report, &format!("cannot set up signal handling: {e}")),
    };
    let pidfile = opts.pidfile.clone().or_else(|| cfg.global.pidfile.clone());
    if let Some(path) = &pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", pid())) {
            return fail(
                &mut report,
                &format!(
                    "[ringlb.main()] Cannot create pidfile {} : {e}",
                    path.display()
                ),
            );
        }
    }
    let reload = opts.reload_cli.clone().map(|c| {
        (
            crate::reload::reloader(c, &cfg),
            crate::reload::process_settings(&cfg),
        )
    });
    if let Some(path) = &opts.expose_socket {
        if let Err(e) = inherit_listeners(path, opts.quiet) {
            // haproxy: fatal for a standalone process; a worker goes on binding new sockets
            // (the SO_REUSEPORT reload, which drains the old listeners).
            if std::env::var_os(crate::master::WORKER_ENV).is_none() {
                return fail(&mut report, &e);
            }
            if !opts.quiet {
                warning(&e);
            }
        }
    }
    let started = Proxy::start_reloadable(topology.clone(), cpus, checks, cli, reload);
    let unused = ringlb_shard::handoff::release_unused();
    if unused > 0 && !opts.quiet {
        warning(&format!(
            "{unused} listening socket(s) received with -x match no bind of the configuration and were closed."
        ));
    }
    let mut proxy = match started {
        Ok(p) => p,
        Err(e) => return fail(&mut report, &e),
    };
    let dropped = drop_privileges(&cfg).and_then(|()| {
        if cfg.global.ops.set_dumpable {
            set_dumpable()
        } else {
            Ok(())
        }
    });
    if let Err(e) = dropped {
        let _ = proxy.broadcast(ControlMsg::HardStop);
        proxy.wait();
        return fail(&mut report, &e);
    }
    ringlb_control::ringfwd::start(ring_forwards);
    if let Some(mut w) = report.take() {
        let _ = w.write_all(&[0]);
    }
    // Serving now (every shard bound its SO_REUSEPORT listeners): tell systemd, and the old
    // processes of a reload can go (`-sf` softly, `-st` at once).
    crate::notify::notify(&format!("READY=1\nMAINPID={}", main_pid()));
    for (pids, sig) in [
        (&opts.soft_finish, libc::SIGUSR1),
        (&opts.terminate, libc::SIGTERM),
    ] {
        for p in pids {
            if let Ok(p) = libc::pid_t::try_from(*p) {
                // SAFETY: kill(2) on a pid given on the command line; errors are ignored as
                // HAProxy does (the process may be gone already).
                unsafe {
                    libc::kill(p, sig);
                }
            }
        }
    }
    let commander = proxy.commander();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let waiter = std::thread::spawn(move || {
        proxy.wait();
        let _ = done_tx.send(());
    });
    let hard_stop_after = topology.hard_stop_after;
    let mut hard_deadline: Option<crossbeam_channel::Receiver<std::time::Instant>> = None;
    let never = crossbeam_channel::never();
    loop {
        let deadline = hard_deadline.as_ref().unwrap_or(&never);
        crossbeam_channel::select! {
            recv(done_rx) -> _ => break,
            recv(signals) -> sig => {
                let msg = match sig {
                    Ok(Signal::SoftStop) => {
                        if let Some(d) = hard_stop_after {
                            hard_deadline = Some(crossbeam_channel::after(d));
                        }
                        ControlMsg::SoftStop
                    }
                    Ok(Signal::Reload) => ControlMsg::Reload,
                    Ok(Signal::Terminate) | Err(_) => ControlMsg::HardStop,
                };
                if let Some(c) = &commander {
                    let _ = c.send(msg);
                }
            }
            recv(deadline) -> _ => {
                if let Some(c) = &commander {
                    let _ = c.send(ControlMsg::HardStop);
                }
                hard_deadline = None;
            }
        }
    }
    let _ = waiter.join();
    if let Some(path) = &pidfile {
        let _ = std::fs::remove_file(path);
    }
    0
}
