//! HAProxy's command line: `ringlb -f FILE|DIR [-f ...] [-c] [-q] [-D] [-W] [-p PIDFILE]
//! [-sf PID...] [-st PID...] [-x SOCKET] [-d] [-v|-vv] [-- files...]`, and check mode (`-c`),
//! which prints HAProxy-shaped diagnostics and "Configuration file is valid".
//!
//! Owns: [`Cli`], [`parse`], [`action`], [`check_mode`]. Loading is `ringlb_config::load`.

use std::ffi::OsString;
use std::net::ToSocketAddrs;
use std::path::PathBuf;

use ringlb_config::{Config, Diagnostic, Level};

/// Parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cli {
    /// `-f` arguments and files after `--`, in order.
    pub files: Vec<PathBuf>,
    /// `-c`: check the configuration and exit.
    pub check: bool,
    /// `-q`: quiet, print nothing.
    pub quiet: bool,
    /// `-V`: verbose (cancels `-q`).
    pub verbose: bool,
    /// `-D`: daemon.
    pub daemon: bool,
    /// `-W` / `-Ws`: master-worker mode.
    pub master_worker: bool,
    /// `-p <pidfile>`.
    pub pidfile: Option<PathBuf>,
    /// `-sf <pid>...`: old processes to finish softly.
    pub soft_finish: Vec<u32>,
    /// `-st <pid>...`: old processes to terminate.
    pub terminate: Vec<u32>,
    /// `-x <socket>`: fetch listening sockets from an old process.
    pub expose_socket: Option<PathBuf>,
    /// `-S <addr>[,<opts>]`: master CLI sockets (master-worker mode).
    pub master_cli: Vec<String>,
    /// `-d`: debug (foreground, verbose).
    pub debug: bool,
    /// `-db`: disable background mode.
    pub no_background: bool,
    /// `-dD`: diagnostic mode (prints `.diag` messages).
    pub diag: bool,
    /// `-dW`: any warning is fatal.
    pub zero_warning: bool,
    /// `-C <dir>`: change to this directory before loading files.
    pub chdir: Option<PathBuf>,
    /// `-v` (1) or `-vv` (2).
    pub version: u8,
    /// `-L <name>`: the local peer name (over `localpeer`).
    pub local_peer: Option<String>,
}

/// What `main` must do after parsing the command line.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per process; boxing buys nothing
pub enum Action {
    /// Exit with this code (check mode, version, refused flags).
    Exit(i32),
    /// Serve this configuration.
    Run(Config),
}

/// HAProxy's usage text (subset ringlb understands).
pub const USAGE: &str =
    "Usage : ringlb [-f <cfgfile|cfgdir>]* [ -vdVD ] [ -p <pidfile> ] [ -C <dir> ] [-- <cfgfile>*]
        -v displays version ; -vv shows known build options.
        -d enters debug mode ; -db only disables background mode.
        -V enters verbose mode (disables quiet mode)
        -D goes daemon ; -C changes to <dir> before loading files.
        -W master-worker mode.
        -q quiet mode : don't display messages
        -c check mode : only check config files and exit
        -L set local peer name (default to hostname)
        -p writes pids of all children to this file
        -dW fails if any warning is emitted
        -dD diagnostic mode : warn about suspicious configuration statements
        -sf/-st [pid ]* finishes/terminates old pids.
        -x <unix_socket> get listening sockets from a unix socket
        -S <bind>[,<bind options>...] new master CLI";

/// Parses the process arguments (the first one is the program name).
pub fn parse(args: impl Iterator<Item = OsString>) -> Result<Cli, String> {
    let args: Vec<OsString> = args.skip(1).collect();
    let mut cli = Cli::default();
    let mut i = 0;
    while let Some(raw) = args.get(i) {
        let a = raw
            .to_str()
            .ok_or_else(|| format!("invalid (non UTF-8) argument {raw:?}"))?;
        i += 1;
        let mut value = |name: &str| -> Result<OsString, String> {
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("option '{name}' requires an argument\n{USAGE}"))?;
            i += 1;
            Ok(v)
        };
        match a {
            "--" => {
                cli.files.extend(args.iter().skip(i).map(PathBuf::from));
                break;
            }
            "-f" => cli.files.push(value("-f")?.into()),
            "-p" => cli.pidfile = Some(value("-p")?.into()),
            "-x" => cli.expose_socket = Some(value("-x")?.into()),
            "-C" => cli.chdir = Some(value("-C")?.into()),
            "-S" => cli.master_cli.push(
                value("-S")?
                    .into_string()
                    .map_err(|v| format!("invalid -S argument {v:?}"))?,
            ),
            "-L" => {
                cli.local_peer = Some(
                    value("-L")?
                        .into_string()
                        .map_err(|v| format!("invalid -L argument {v:?}"))?,
                )
            }
            "-n" | "-N" | "-m" => {
                value(a)?;
            }
            "-sf" | "-st" => {
                let pids = take_pids(&args, &mut i)?;
                if a == "-sf" {
                    cli.soft_finish.extend(pids)
                } else {
                    cli.terminate.extend(pids)
                }
            }
            "-c" => cli.check = true,
            "-q" => cli.quiet = true,
            "-V" => cli.verbose = true,
            "-D" => cli.daemon = true,
            "-W" | "-Ws" => cli.master_worker = true,
            "-d" => cli.debug = true,
            "-db" => cli.no_background = true,
            "-dD" => cli.diag = true,
            "-dW" => cli.zero_warning = true,
            "-v" => cli.version = cli.version.max(1),
            "-vv" => cli.version = 2,
            other => return Err(format!("unknown option '{other}'.\n{USAGE}")),
        }
    }
    Ok(cli)
}

/// Consumes the numeric arguments after `-sf`/`-st`.
fn take_pids(args: &[OsString], i: &mut usize) -> Result<Vec<u32>, String> {
    let mut pids = Vec::new();
    while let Some(s) = args.get(*i).and_then(|a| a.to_str()) {
        if s.starts_with('-') {
            break;
        }
        pids.push(
            s.parse()
                .map_err(|_| format!("invalid pid '{s}' after -sf/-st"))?,
        );
        *i += 1;
    }
    Ok(pids)
}

/// Decides what to do: print the version, check the configuration, refuse flags that are not
/// implemented yet, or load the configuration to run it.
pub fn action(cli: &Cli) -> Action {
    if cli.version > 0 {
        println!("{}", version_text(cli.version));
        return Action::Exit(0);
    }
    if let Some(dir) = &cli.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            alert_line(cli, &format!("Cannot chdir to '{}' : {e}", dir.display()));
            return Action::Exit(1);
        }
    }
    if cli.files.is_empty() {
        if !cli.quiet {
            eprintln!("{}\n{USAGE}", version_text(1));
        }
        return Action::Exit(1);
    }
    if cli.check {
        return Action::Exit(check_mode(cli));
    }
    if let Some(msg) = flag_warning(cli) {
        if !cli.quiet {
            eprintln!("{} ({}) : {msg}", Level::Warning.tag(), pid());
        }
    }
    match ringlb_config::load(&cli.files, &|k| std::env::var(k).ok()) {
        Ok(mut l) => {
            let cli = &with_global(cli, &l.config);
            print_diags(cli, &l.warnings);
            if !resolve_servers(cli, &mut l.config) {
                return Action::Exit(1);
            }
            if cli.zero_warning && l.warnings.iter().any(|w| w.level == Level::Warning) {
                alert_line(cli, zero_warning_message(&l.config));
                return Action::Exit(1);
            }
            if let Some(name) = &cli.local_peer {
                l.config.global.localpeer = Some(name.clone());
            }
            Action::Run(l.config)
        }
        Err(d) => {
            print_diags(cli, &d.items);
            alert_line(cli, "config : Fatal errors found in configuration.");
            Action::Exit(1)
        }
    }
}

/// The command line with what the global section adds to it: `quiet` is `-q`,
/// `zero-warning` is `-dW`.
pub fn with_global(cli: &Cli, cfg: &Config) -> Cli {
    let ops = &cfg.global.ops;
    Cli {
        quiet: (cli.quiet || ops.quiet) && !cli.verbose,
        zero_warning: cli.zero_warning || ops.zero_warning,
        ..cli.clone()
    }
}

/// HAProxy's alert when warnings meet `-dW` or `zero-warning`.
pub fn zero_warning_message(cfg: &Config) -> &'static str {
    if cfg.global.ops.zero_warning {
        "config : Some warnings were found and 'zero-warning' is set. Aborting."
    } else {
        "config : Warnings were found and -dW (zero-warning mode) is set."
    }
}

/// Flags HAProxy has that ringlb accepts without needing them, and why (none today: `-x`
/// fetches the old process's listening sockets, `run::inherit_listeners`).
fn flag_warning(_cli: &Cli) -> Option<String> {
    None
}

fn version_text(level: u8) -> String {
    let mut s = format!(
        "ringlb version {} {} - HAProxy 2.6 compatible configuration",
        env!("CARGO_PKG_VERSION"),
        ringlb_stats::RELEASE_DATE
    );
    if level > 1 {
        s.push_str(&format!(
            "\nCompatible HAProxy version: {}\nFeature list : {}",
            ringlb_config::cond::COMPAT_VERSION,
            ringlb_config::cond::FEATURES
                .iter()
                .map(|f| format!("+{f}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    s
}

fn pid() -> u32 {
    std::process::id()
}

/// One diagnostic line in HAProxy's shape: `[ALERT]    (pid) : config : parsing [f:l] : ...`.
pub fn format_diag(d: &Diagnostic) -> String {
    format!("{} ({}) : {d}", d.level.tag(), pid())
}

fn alert_line(cli: &Cli, msg: &str) {
    if !cli.quiet {
        eprintln!("{} ({}) : {msg}", Level::Alert.tag(), pid());
    }
}

fn print_diags(cli: &Cli, diags: &[Diagnostic]) {
    if cli.quiet {
        return;
    }
    for d in diags {
        if d.level == Level::Diag && !cli.diag {
            continue;
        }
        eprintln!("{}", format_diag(d));
    }
}

/// Resolves server host names at start-up as HAProxy does (`init-addr last,libc`), filling
/// `Server::addr`. A name that does not resolve is fatal unless `init-addr` contains `none`.
/// Returns false (after printing alerts) on failure.
fn resolve_servers(cli: &Cli, cfg: &mut Config) -> bool {
    let errors = resolve_server_addrs(cfg);
    for e in &errors {
        alert_line(cli, e);
    }
    errors.is_empty()
}

/// As [`resolve_servers`], returning the alert messages (none: every address resolved).
/// A server named by a host name tries its `init-addr` methods in order (haproxy's default
/// `last,libc`): `last` the state file's address, `libc` getaddrinfo, `none` no address
/// (it starts in resolution maintenance), or a literal IP.
pub fn resolve_server_addrs(cfg: &mut Config) -> Vec<String> {
    let mut errors = Vec::new();
    let saved = if cfg
        .backends
        .iter()
        .flat_map(|b| &b.servers)
        .any(|s| s.addr.is_none())
    {
        ringlb_control::cli::restore::saved_addrs(cfg)
    } else {
        Vec::new()
    };
    for b in &mut cfg.backends {
        for s in &mut b.servers {
            if s.addr.is_some() || s.host.starts_with('/') || s.host.starts_with("unix@") {
                continue;
            }
            let port = s.port.unwrap_or(0);
            let methods = s.params.init_addr.as_deref().unwrap_or("last,libc");
            let mut done = false;
            for m in methods.split(',') {
                let found = match m {
                    "last" => saved
                        .iter()
                        .find(|(bn, sn, _)| *bn == b.name && *sn == s.name)
                        .map(|(_, _, ip)| std::net::SocketAddr::new(*ip, port)),
                    "libc" => (s.host.as_str(), port)
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut it| it.next()),
                    "none" => {
                        done = true;
                        break;
                    }
                    ip => ip
                        .parse::<std::net::IpAddr>()
                        .ok()
                        .map(|ip| std::net::SocketAddr::new(ip, port)),
                };
                if let Some(a) = found {
                    s.addr = Some(a);
                    done = true;
                    break;
                }
            }
            if !done {
                errors.push(format!(
                    "config : [{}:{}] : 'server {}/{}' : could not resolve address '{}'.",
                    s.loc.file, s.loc.line, b.name, s.name, s.host
                ));
            }
        }
    }
    if !errors.is_empty() {
        errors.push("config : Failed to initialize server(s) addr.".into());
    }
    errors
}

/// `-c`: loads the configuration and reports as `haproxy -c` does. Returns the exit code:
/// 0 valid, 1 errors (or warnings with `-dW`), 2 valid but no listener.
pub fn check_mode(cli: &Cli) -> i32 {
    let loaded = match ringlb_config::load(&cli.files, &|k| std::env::var(k).ok()) {
        Ok(l) => l,
        Err(d) => {
            print_diags(cli, &d.items);
            let mut files: Vec<&str> = d
                .alerts()
                .map(|a| &*a.file)
                .filter(|f| !f.is_empty())
                .collect();
            files.dedup();
            for f in files {
                alert_line(
                    cli,
                    &format!("config : Error(s) found in configuration file : {f}"),
                );
            }
            alert_line(cli, "config : Fatal errors found in configuration.");
            return 1;
        }
    };
    let cli = &with_global(cli, &loaded.config);
    print_diags(cli, &loaded.warnings);
    let mut loaded = loaded;
    if !resolve_servers(cli, &mut loaded.config) {
        return 1;
    }
    // Valid as `haproxy -c` would say; also tell now what `ringlb -f` would refuse (or not log)
    // because a later issue implements it. These do not count as warnings for -dW, which must
    // agree with haproxy.
    if !cli.quiet {
        for p in crate::run::pending_keywords(&loaded.config) {
            eprintln!("{} ({}) : {}", Level::Warning.tag(), pid(), p.message);
        }
    }
    // What only the runtime objects check (certificates and keys, log targets): as haproxy -c,
    // a bad certificate is an error and an expiring one a warning, both naming the file.
    let mut warned = loaded.warnings.iter().any(|w| w.level == Level::Warning);
    if let Some(name) = &cli.local_peer {
        loaded.config.global.localpeer = Some(name.clone());
    }
    match ringlb_shard::Topology::from_config(&loaded.config) {
        Ok(t) => {
            // `peers` sections without the local peer are dropped, as haproxy -c says.
            match ringlb_control::peers::plan(&loaded.config, &t) {
                Ok((_, peer_warnings)) => {
                    for w in peer_warnings {
                        warned = true;
                        if !cli.quiet {
                            eprintln!("{} ({}) : {w}", Level::Warning.tag(), pid());
                        }
                    }
                }
                Err(e) => {
                    alert_line(cli, &format!("config : {e}"));
                    alert_line(cli, "config : Fatal errors found in configuration.");
                    return 1;
                }
            }
            // What the health-check plan refuses (a check type and `check-proto` that do not
            // go together, an address that is not an IP), as `ringlb -f` would at start.
            if let Err(errors) = ringlb_control::checks::CheckPlan::from_config(&loaded.config, &t)
            {
                for e in errors {
                    alert_line(cli, &format!("config : {e}"));
                }
                alert_line(cli, "config : Fatal errors found in configuration.");
                return 1;
            }
            for w in &t.warnings {
                warned = true;
                if !cli.quiet {
                    eprintln!(
                        "{} ({}) : config : {}",
                        Level::Warning.tag(),
                        pid(),
                        w.text()
                    );
                }
            }
        }
        Err(errors) => {
            for e in errors {
                alert_line(
                    cli,
                    &format!(
                        "config : parsing [{}:{}] : {}",
                        e.loc.file, e.loc.line, e.message
                    ),
                );
            }
            alert_line(cli, "config : Fatal errors found in configuration.");
            return 1;
        }
    }
    if warned && !cli.quiet {
        eprintln!("Warnings were found.");
    }
    if warned && cli.zero_warning {
        alert_line(cli, zero_warning_message(&loaded.config));
        return 1;
    }
    if !loaded.config.has_listener() {
        if !cli.quiet {
            println!(
                "Configuration file has no error but will not start (no listener) => exit(2)."
            );
        }
        return 2;
    }
    if !cli.quiet {
        println!("Configuration file is valid");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, String> {
        parse(
            std::iter::once("ringlb")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn haproxy_flags() {
        let c = p(&[
            "-f",
            "a.cfg",
            "-f",
            "dir",
            "-c",
            "-q",
            "-D",
            "-p",
            "/run/x.pid",
            "-d",
        ])
        .unwrap();
        assert_eq!(c.files, [PathBuf::from("a.cfg"), PathBuf::from("dir")]);
        assert!(c.check && c.quiet && c.daemon && c.debug);
        assert_eq!(c.pidfile, Some(PathBuf::from("/run/x.pid")));
        let c = p(&[
            "-W", "-sf", "12", "34", "-st", "5", "-x", "/s.sock", "-f", "x",
        ])
        .unwrap();
        assert!(c.master_worker);
        assert_eq!(
            (c.soft_finish.as_slice(), c.terminate.as_slice()),
            (&[12u32, 34][..], &[5u32][..])
        );
        assert_eq!(c.expose_socket, Some(PathBuf::from("/s.sock")));
        assert_eq!(c.files, [PathBuf::from("x")]);
        let c = p(&["-f", "a", "--", "b", "c"]).unwrap();
        assert_eq!(c.files.len(), 3);
        assert_eq!(p(&["-vv"]).unwrap().version, 2);
        assert_eq!(p(&["-v"]).unwrap().version, 1);
        // -L names the local peer (ADR 0007).
        assert_eq!(
            p(&["-L", "edge1", "-f", "x"])
                .unwrap()
                .local_peer
                .as_deref(),
            Some("edge1")
        );
        assert!(p(&["-L"]).is_err());
    }

    #[test]
    fn errors() {
        assert!(p(&["-f"]).unwrap_err().contains("requires an argument"));
        assert!(p(&["-z"]).unwrap_err().contains("unknown option '-z'"));
        assert!(p(&["-sf", "abc"]).is_err());
    }

    #[test]
    fn accepted_flags_say_why() {
        assert!(flag_warning(&p(&["-x", "/s.sock", "-f", "x"]).unwrap()).is_none());
        assert!(flag_warning(&p(&["-W", "-f", "x"]).unwrap()).is_none());
        assert!(flag_warning(&p(&["-sf", "1", "-f", "x"]).unwrap()).is_none());
        assert!(flag_warning(&p(&["-D", "-f", "x"]).unwrap()).is_none());
    }

    #[test]
    fn check_mode_exit_codes() {
        let dir = std::env::temp_dir().join(format!("ringlb-cli-test-{}", pid()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.cfg");
        std::fs::write(&good, "defaults\n mode http\n timeout client 1s\n timeout server 1s\n timeout connect 1s\nlisten l\n bind 127.0.0.1:1\n server s 127.0.0.1:2\n").unwrap();
        let bad = dir.join("bad.cfg");
        std::fs::write(&bad, "global\n nbthred 2\n").unwrap();
        let none = dir.join("none.cfg");
        std::fs::write(&none, "global\n daemon\n").unwrap();
        let run = |f: &PathBuf| {
            check_mode(&Cli {
                files: vec![f.clone()],
                check: true,
                quiet: true,
                ..Cli::default()
            })
        };
        assert_eq!(run(&good), 0);
        assert_eq!(run(&bad), 1);
        assert_eq!(run(&none), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
