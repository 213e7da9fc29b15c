//! The master CLI (`-S <addr>[,<opts>]`, master-worker mode): HAProxy 2.6's master socket.
//! It answers `help`, `show proc` (haproxy's columns), `show cli level`, `reload`, `prompt`,
//! `quit`, and routes a command prefixed with `@1` (the current worker), `@!<pid>` (any
//! worker) or `@master`/`@0`/`@` to that process. A worker is reached on its private admin
//! socket, created by the master for it (`RINGLB_MASTER_CLI`, the counterpart of haproxy's
//! master-worker socketpair; it also exposes the worker's listeners for the next reload).
//!
//! Runs on threads of its own in the master (one per connection, each bounded by a timeout);
//! the supervise loop publishes the process table ([`ProcTable`]) after every tick.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Environment variable naming the worker's private admin socket.
pub const CHANNEL_ENV: &str = "RINGLB_MASTER_CLI";

/// Idle time before a master CLI connection is closed.
const IDLE: Duration = Duration::from_secs(30);

/// One process of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    /// Workers: reloads lived through; programs: the program's name is in `name`.
    pub reloads: u32,
    pub started: SystemTime,
    /// The worker's private admin socket.
    pub channel: Option<PathBuf>,
    /// A program's name (`None`: a worker).
    pub name: Option<String>,
}

/// What `show proc` prints and where `@` prefixes lead.
#[derive(Debug, Clone)]
pub struct ProcTable {
    pub master_pid: u32,
    pub master_started: SystemTime,
    pub reloads: u32,
    pub failed: u32,
    pub current: Option<Proc>,
    pub old: Vec<Proc>,
    pub programs: Vec<Proc>,
}

pub type Shared = Arc<Mutex<ProcTable>>;

/// `%dd%02dh%02dm%02ds`, as haproxy prints uptimes.
pub fn uptime(secs: u64) -> String {
    format!(
        "{}d{:02}h{:02}m{:02}s",
        secs / 86400,
        (secs % 86400) / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

fn up(started: SystemTime, now: SystemTime) -> String {
    uptime(now.duration_since(started).map_or(0, |d| d.as_secs()))
}

/// haproxy 2.6's `show proc` (`mworker.c`: 15-column fields, `# workers`, `# old workers`
/// only when some are leaving, `# programs`, a blank line).
pub fn show_proc(t: &ProcTable, now: SystemTime, version: &str) -> String {
    let mut s = format!(
        "#{:<14} {:<15} {:<15} {:<15} {:<15}\n",
        "<PID>", "<type>", "<reloads>", "<uptime>", "<version>"
    );
    let row = |s: &mut String, pid: u32, kind: &str, reloads: &str, up: &str, v: &str| {
        s.push_str(&format!(
            "{pid:<15} {kind:<15} {reloads:<15} {up:<15} {v:<15}\n"
        ));
    };
    row(
        &mut s,
        t.master_pid,
        "master",
        &format!("{} [failed: {}]", t.reloads, t.failed),
        &up(t.master_started, now),
        version,
    );
    s.push_str("# workers\n");
    if let Some(w) = &t.current {
        row(
            &mut s,
            w.pid,
            "worker",
            &w.reloads.to_string(),
            &up(w.started, now),
            version,
        );
    }
    if !t.old.is_empty() {
        s.push_str("# old workers\n");
        for w in &t.old {
            row(
                &mut s,
                w.pid,
                "worker",
                &w.reloads.to_string(),
                &up(w.started, now),
                version,
            );
        }
    }
    s.push_str("# programs\n");
    for p in &t.programs {
        let name = p.name.as_deref().unwrap_or("-");
        row(
            &mut s,
            p.pid,
            name,
            &p.reloads.to_string(),
            &up(p.started, now),
            "-",
        );
    }
    s.push('\n');
    s
}

/// haproxy 2.6's master `help` (the commands of the master's own level).
pub const HELP: &str = "The following commands are valid at this level:
  @!<pid>                                 : send a command to the <pid> process
  @<relative pid>                         : send a command to the <relative pid> process
  @master                                 : send a command to the master process
  operator                                : lower the level of the current CLI session to operator
  reload                                  : reload haproxy
  show cli level                          : display the level of the current CLI session
  show cli sockets                        : dump list of cli sockets
  show proc                               : show processes status
  show version                            : show version of the current process
  user                                    : lower the level of the current CLI session to user
  help [<command>]                        : list matching or all commands
  prompt                                  : toggle interactive mode with prompt
  quit                                    : disconnect

";

/// Where a prefix leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Master,
    Worker { pid: u32, channel: Option<PathBuf> },
}

/// `@`, `@master`, `@0`: the master; `@1`: the current worker (fewest reloads); `@!<pid>`: that
/// worker. Anything else is haproxy's error.
pub fn target(prefix: &str, t: &ProcTable) -> Result<Target, String> {
    let err = || format!("Can't find the target PID matching the prefix '{prefix}'\n");
    let rest = prefix.strip_prefix('@').ok_or_else(err)?;
    let worker = |w: &Proc| Target::Worker {
        pid: w.pid,
        channel: w.channel.clone(),
    };
    if rest.is_empty() || rest == "master" {
        return Ok(Target::Master);
    }
    if let Some(pid) = rest.strip_prefix('!') {
        let pid: u32 = pid.parse().map_err(|_| err())?;
        return t
            .current
            .iter()
            .chain(&t.old)
            .find(|w| w.pid == pid)
            .map(worker)
            .ok_or_else(err);
    }
    match rest.parse::<u32>() {
        Ok(0) => Ok(Target::Master),
        Ok(1) => t
            .current
            .iter()
            .chain(&t.old)
            .min_by_key(|w| w.reloads)
            .map(worker)
            .ok_or_else(err),
        _ => Err(err()),
    }
}

/// Splits a line into commands (`;` outside a backslash escape), trimmed, empty ones dropped.
pub fn split_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ';' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Sends `cmd` to a worker's private socket and returns its whole answer.
fn forward(channel: &std::path::Path, cmd: &str) -> String {
    let attempt = || -> std::io::Result<String> {
        let mut s = std::os::unix::net::UnixStream::connect(channel)?;
        s.set_read_timeout(Some(IDLE))?;
        s.set_write_timeout(Some(IDLE))?;
        s.write_all(format!("{cmd}\n").as_bytes())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    // A worker just started may not listen yet: a few tries, bounded.
    let mut last = String::new();
    for _ in 0..50 {
        match attempt() {
            Ok(out) => return out,
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("Can't connect to the target CLI! ({last})\n")
}

/// One session's state: the default target (`@1` alone) and the prompt mode.
struct Session {
    default: Target,
    prompt: bool,
    /// `operator` / `user` lower it; forwarded commands run at it on the worker.
    level: Level,
}

/// A master CLI session's level (the master socket starts at admin, as haproxy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    User,
    Operator,
    Admin,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::User => "user",
            Level::Operator => "operator",
            Level::Admin => "admin",
        }
    }
}

/// `help <word>`: the entries whose command starts with the word, then `help`, `prompt` and
/// `quit` (haproxy also suggests near matches; only prefixes are matched here).
fn help_for(word: &str) -> String {
    let mut lines = HELP.lines();
    let mut out = format!("{}\n", lines.next().unwrap_or(""));
    let entries: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let (cmds, always) = entries.split_at(entries.len().saturating_sub(3));
    for l in cmds.iter().filter(|l| l.trim_start().starts_with(word)) {
        out.push_str(l);
        out.push('\n');
    }
    for l in always {
        out.push_str(l);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Runs one command line's commands; returns the output, whether to close, and whether a
/// command ran (a line of prefixes alone only sets the session's target).
fn run_line(line: &str, sess: &mut Session, table: &Shared, version: &str) -> (String, bool, bool) {
    let mut out = String::new();
    let mut ran = false;
    for cmd in split_commands(line) {
        let snapshot = table.lock().map(|t| t.clone()).ok();
        let Some(t) = snapshot else {
            return (out, true, ran);
        };
        let (first, rest) = cmd
            .split_once(char::is_whitespace)
            .map_or((cmd.as_str(), ""), |(a, b)| (a, b.trim()));
        // The master's own session commands, whatever the target (haproxy's
        // `pcli_find_and_exec_kw`).
        match cmd.as_str() {
            "quit" => return (out, true, ran),
            "prompt" => {
                sess.prompt = !sess.prompt;
                ran = true;
                continue;
            }
            _ => {}
        }
        let (to, cmd) = if first.starts_with('@') {
            match target(first, &t) {
                Ok(to) if rest.is_empty() => {
                    sess.default = to;
                    continue;
                }
                Ok(to) => (to, rest.to_string()),
                Err(e) => {
                    out.push_str(&e);
                    ran = true;
                    continue;
                }
            }
        } else {
            (sess.default.clone(), cmd.clone())
        };
        ran = true;
        match to {
            Target::Worker { channel, pid } => match channel {
                // A lowered session runs the command at its level on the worker (the worker's
                // answer to the level command itself is an empty line).
                Some(path) if sess.level < Level::Admin => {
                    let answer = forward(&path, &format!("{}; {cmd}", sess.level.name()));
                    out.push_str(answer.strip_prefix('\n').unwrap_or(&answer));
                }
                Some(path) => out.push_str(&forward(&path, &cmd)),
                None => out.push_str(&format!("Can't connect to the target CLI of {pid}!\n")),
            },
            Target::Master => {
                match cmd.as_str() {
                    "help" => out.push_str(HELP),
                    c if c.starts_with("help ") => {
                        out.push_str(&help_for(c["help ".len()..].trim()))
                    }
                    "show proc" => out.push_str(&show_proc(&t, SystemTime::now(), version)),
                    "show cli level" => out.push_str(&format!("{}\n\n", sess.level.name())),
                    // haproxy 2.6's master lists no socket here (its answer is one empty line).
                    "show cli sockets" => out.push('\n'),
                    "show version" => out.push_str(&format!("{version}\n\n")),
                    "operator" if sess.level < Level::Operator => {
                        out.push_str("Permission denied!\n")
                    }
                    "operator" => sess.level = Level::Operator,
                    "user" => sess.level = Level::User,
                    "reload" if sess.level < Level::Operator => {
                        out.push_str("Permission denied\n\n")
                    }
                    "reload" => {
                        // The supervise loop takes it as it takes SIGUSR2 (blocked, then waited for).
                        // SAFETY: kill(2) to our own pid.
                        unsafe {
                            libc::kill(libc::getpid(), libc::SIGUSR2);
                        }
                        if !sess.prompt {
                            return (out, true, ran);
                        }
                    }
                    _ => {
                        out.push_str("Unknown command, but maybe one of the following ones is a better match:\n");
                        out.push_str(HELP.split_once('\n').map_or("", |(_, l)| l));
                    }
                }
            }
        }
    }
    (out, false, ran)
}

fn prompt_of(sess: &Session) -> String {
    match &sess.default {
        Target::Master => "master> ".into(),
        Target::Worker { pid, .. } => format!("{pid}> "),
    }
}

fn serve_conn(stream: std::os::unix::net::UnixStream, table: Shared, version: String) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_write_timeout(Some(IDLE));
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut sess = Session {
        default: Target::Master,
        prompt: false,
        level: Level::Admin,
    };
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (mut text, close, ran) = run_line(&line, &mut sess, &table, &version);
        // In prompt mode haproxy prints the prompt after every line, `quit`'s included.
        if sess.prompt {
            text.push_str(&prompt_of(&sess));
        }
        // Without the prompt, haproxy answers one line and closes (a line of prefixes alone
        // only chose where the next one goes).
        if w.write_all(text.as_bytes()).is_err() || close || (!sess.prompt && ran) {
            return;
        }
    }
}

/// `-S <addr>[,<opt>,<value>...]`: a UNIX path (`unix@` or plain) with `mode`, `uid`, `gid`,
/// `user`, `group`; TCP addresses are served too (`ipv4@`/`ipv6@`/`host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub addr: ringlb_control::cli::CliAddr,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub fn parse_spec(arg: &str) -> Result<Spec, String> {
    let mut parts = arg.split(',');
    let addr = ringlb_control::cli::parse_addr(parts.next().unwrap_or(""))?;
    let mut spec = Spec {
        addr,
        mode: None,
        uid: None,
        gid: None,
    };
    while let Some(k) = parts.next() {
        let v = parts
            .next()
            .ok_or_else(|| format!("-S: '{k}' expects an argument"))?;
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("-S: invalid {k} '{v}'"))
        };
        match k {
            "mode" => {
                spec.mode =
                    Some(u32::from_str_radix(v, 8).map_err(|_| format!("-S: invalid mode '{v}'"))?)
            }
            "uid" => spec.uid = Some(num(v)?),
            "gid" => spec.gid = Some(num(v)?),
            "user" => spec.uid = Some(crate::run::lookup_user(v)?),
            "group" => spec.gid = Some(crate::run::lookup_group(v)?),
            "level" => {} // the master CLI is admin only, as in haproxy
            other => return Err(format!("-S: unknown option '{other}'")),
        }
    }
    Ok(spec)
}

/// Binds the master socket and serves it on a thread; returns the path to remove at exit.
pub fn start(spec: &Spec, table: Shared) -> Result<Option<PathBuf>, String> {
    let version = env!("CARGO_PKG_VERSION").to_string();
    match &spec.addr {
        ringlb_control::cli::CliAddr::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let l = std::os::unix::net::UnixListener::bind(path)
                .map_err(|e| format!("-S: cannot bind '{}': {e}", path.display()))?;
            if spec.uid.is_some() || spec.gid.is_some() {
                std::os::unix::fs::chown(path, spec.uid, spec.gid)
                    .map_err(|e| format!("-S: cannot chown '{}': {e}", path.display()))?;
            }
            if let Some(mode) = spec.mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("-S: cannot chmod '{}': {e}", path.display()))?;
            }
            spawn_thread(move || {
                for c in l.incoming().flatten() {
                    let (t, v) = (table.clone(), version.clone());
                    spawn_thread(move || serve_conn(c, t, v));
                }
            });
            Ok(Some(path.clone()))
        }
        ringlb_control::cli::CliAddr::Tcp(a) => {
            let l =
                std::net::TcpListener::bind(a).map_err(|e| format!("-S: cannot bind {a}: {e}"))?;
            spawn_thread(move || {
                for c in l.incoming().flatten() {
                    let (t, v) = (table.clone(), version.clone());
                    spawn_thread(move || serve_tcp(c, t, v));
                }
            });
            Ok(None)
        }
    }
}

/// A TCP client: bridged to the same session code through a UNIX socket pair.
fn serve_tcp(c: std::net::TcpStream, table: Shared, version: String) {
    let Ok((a, b)) = std::os::unix::net::UnixStream::pair() else {
        return;
    };
    let _ = c.set_read_timeout(Some(IDLE));
    let (Ok(mut c_read), Ok(mut b_read)) = (c.try_clone(), b.try_clone()) else {
        return;
    };
    spawn_thread(move || serve_conn(a, table, version));
    let mut c_write = c;
    let mut b_write = b;
    spawn_thread(move || {
        let _ = std::io::copy(&mut c_read, &mut b_write);
        let _ = b_write.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut b_read, &mut c_write);
}

fn spawn_thread(f: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("ringlb-mcli".into())
        .spawn(f);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn table() -> ProcTable {
        let w = |pid, reloads, started| Proc {
            pid,
            reloads,
            started: at(started),
            channel: Some(PathBuf::from(format!("/tmp/{pid}.sock"))),
            name: None,
        };
        ProcTable {
            master_pid: 22663,
            master_started: at(1000),
            reloads: 1,
            failed: 0,
            current: Some(w(22704, 0, 1000)),
            old: vec![w(22600, 1, 900)],
            programs: vec![],
        }
    }

    /// haproxy 2.6.12's `show proc`, recorded with `haproxy -W -S` (tests/fixtures/
    /// mcli_show_proc.txt, `record_mcli.sh`), versions and uptimes as printed there.
    #[test]
    fn show_proc_has_haproxys_columns() {
        let mut t = table();
        t.reloads = 0;
        t.old.clear();
        let out = show_proc(&t, at(1002), "2.6.12-1+deb12u4");
        let want = include_str!("../tests/fixtures/mcli_show_proc.txt");
        assert_eq!(out, want);
        let t = table();
        let out = show_proc(&t, at(1002), "2.6.12-1+deb12u4");
        assert!(out.contains("# workers\n22704 "), "{out}");
        assert!(
            out.contains(
                "# old workers\n22600           worker          1               0d00h01m42s"
            ),
            "{out}"
        );
    }

    #[test]
    fn programs_are_listed_by_name() {
        let mut t = table();
        t.programs.push(Proc {
            pid: 30000,
            reloads: 0,
            started: at(1000),
            channel: None,
            name: Some("dataplaneapi".into()),
        });
        let out = show_proc(&t, at(1061), "v");
        assert!(
            out.ends_with("# programs\n30000           dataplaneapi    0               0d00h01m01s     -              \n\n"),
            "{out}"
        );
    }

    #[test]
    fn uptimes_as_haproxy_prints_them() {
        assert_eq!(uptime(0), "0d00h00m00s");
        assert_eq!(uptime(90061), "1d01h01m01s");
    }

    #[test]
    fn prefixes_lead_where_haproxy_sends_them() {
        let t = table();
        assert_eq!(target("@", &t), Ok(Target::Master));
        assert_eq!(target("@master", &t), Ok(Target::Master));
        assert_eq!(target("@0", &t), Ok(Target::Master));
        assert!(matches!(
            target("@1", &t),
            Ok(Target::Worker { pid: 22704, .. })
        ));
        assert!(matches!(
            target("@!22600", &t),
            Ok(Target::Worker { pid: 22600, .. })
        ));
        assert_eq!(
            target("@!99999", &t),
            Err("Can't find the target PID matching the prefix '@!99999'\n".into())
        );
        assert_eq!(
            target("@2", &t),
            Err("Can't find the target PID matching the prefix '@2'\n".into())
        );
    }

    #[test]
    fn help_for_a_word_lists_its_commands() {
        let h = help_for("show");
        assert!(h.starts_with("The following commands are valid at this level:\n  show cli level"));
        assert_eq!(h.lines().count(), 1 + 4 + 3 + 1, "{h}");
        assert!(h.ends_with("quit                                    : disconnect\n\n"));
    }

    #[test]
    fn commands_split_on_semicolons() {
        assert_eq!(
            split_commands("@1 show info; show proc\n"),
            ["@1 show info", "show proc"]
        );
        assert_eq!(split_commands("a\\;b;c"), ["a\\;b", "c"]);
        assert!(split_commands(" ; \n").is_empty());
    }

    #[test]
    fn dash_s_options() {
        let s = parse_spec("/run/m.sock,mode,600").unwrap();
        assert_eq!(s.mode, Some(0o600));
        assert!(parse_spec("/run/m.sock,bogus,1").is_err());
        assert!(parse_spec("/run/m.sock,mode").is_err());
        assert!(matches!(
            parse_spec("ipv4@127.0.0.1:9999").unwrap().addr,
            ringlb_control::cli::CliAddr::Tcp(_)
        ));
    }
}
