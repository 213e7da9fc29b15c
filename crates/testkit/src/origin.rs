//! Real `ringlb-origin` processes on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::{bin_path, wait_until, ChildGuard};

/// How long `start` waits for an origin to accept connections.
pub const ORIGIN_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What an origin serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginMode {
    Http,
    EchoTcp,
}

/// Options for `Origin::start_with`. `Default` is one HTTP listener named `origin`.
#[derive(Clone, Debug)]
pub struct OriginOptions {
    pub name: String,
    pub mode: OriginMode,
    /// Number of listeners, each on its own free port.
    pub listeners: usize,
    /// While this file exists, `/health` answers 503.
    pub unhealthy_file: Option<PathBuf>,
    pub max_conns: Option<usize>,
    pub idle_timeout_ms: Option<u64>,
    /// `-v`: one log line per request on stderr (see `ChildGuard::stderr`).
    pub verbose: bool,
    /// The binary; default `bin_path("ringlb-origin")`.
    pub bin: Option<PathBuf>,
    /// Fixed listen addresses; empty (default): `listeners` addresses on port 0, the
    /// ports the origin reports on stderr (no race with other processes).
    pub addrs: Vec<SocketAddr>,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            name: "origin".to_owned(),
            mode: OriginMode::Http,
            listeners: 1,
            unhealthy_file: None,
            max_conns: None,
            idle_timeout_ms: None,
            verbose: true,
            bin: None,
            addrs: Vec::new(),
        }
    }
}

/// A running `ringlb-origin`, stopped on drop.
#[derive(Debug)]
pub struct Origin {
    /// The options it runs with, `addrs` filled with the bound addresses.
    opts: OriginOptions,
    guard: ChildGuard,
}

impl Origin {
    /// An HTTP origin named `name` on a free port, ready to serve; panics on failure.
    pub fn start(name: &str) -> Origin {
        Origin::start_with(OriginOptions {
            name: name.to_owned(),
            ..OriginOptions::default()
        })
    }

    /// A TCP echo origin on a free port.
    pub fn start_echo_tcp(name: &str) -> Origin {
        Origin::start_with(OriginOptions {
            name: name.to_owned(),
            mode: OriginMode::EchoTcp,
            ..OriginOptions::default()
        })
    }

    /// Starts an origin with `opts`; panics (with its output) if it does not become ready.
    pub fn start_with(opts: OriginOptions) -> Origin {
        let mut last_err = String::new();
        for _ in 0..3 {
            match try_start(&opts) {
                Ok(o) => return o,
                Err(e) => last_err = e,
            }
        }
        panic!("origin {} did not start: {last_err}", opts.name)
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.opts.addrs[0]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.opts.addrs
    }

    pub fn name(&self) -> &str {
        &self.opts.name
    }

    /// Stops the process (SIGTERM, then SIGKILL); `restart` brings it back.
    pub fn stop(&mut self) {
        let _ = self.guard.stop(crate::process::STOP_TIMEOUT);
    }

    /// Stops the process if it runs, then starts a new one on the same addresses (for
    /// tests of servers going down and coming back). Panics if it cannot.
    pub fn restart(&mut self) {
        self.stop();
        *self = Origin::start_with(self.opts.clone());
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn guard(&self) -> &ChildGuard {
        &self.guard
    }

    /// For signals, `stop`, `is_running`.
    pub fn guard_mut(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }
}

fn try_start(opts: &OriginOptions) -> Result<Origin, String> {
    let bin = opts
        .bin
        .clone()
        .unwrap_or_else(|| bin_path("ringlb-origin"));
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let listen: Vec<SocketAddr> = if opts.addrs.is_empty() {
        vec![any_port; opts.listeners.max(1)]
    } else {
        opts.addrs.clone()
    };
    let mut cmd = Command::new(&bin);
    cmd.arg("--name").arg(&opts.name);
    for a in &listen {
        cmd.arg("--listen").arg(a.to_string());
    }
    if opts.mode == OriginMode::EchoTcp {
        cmd.args(["--mode", "echo-tcp"]);
    }
    if let Some(p) = &opts.unhealthy_file {
        cmd.arg("--unhealthy-file").arg(p);
    }
    if let Some(n) = opts.max_conns {
        cmd.arg("--max-conns").arg(n.to_string());
    }
    if let Some(ms) = opts.idle_timeout_ms {
        cmd.arg("--idle-timeout-ms").arg(ms.to_string());
    }
    if opts.verbose {
        cmd.arg("-v");
    }
    let mut guard =
        ChildGuard::spawn(&format!("origin {}", opts.name), &mut cmd).map_err(|e| e.to_string())?;
    let addrs = bound_addrs(&mut guard, listen.len())?;
    guard
        .wait_ready(&addrs, ORIGIN_READY_TIMEOUT)
        .map_err(|e| e.to_string())?;
    Ok(Origin {
        opts: OriginOptions {
            addrs,
            ..opts.clone()
        },
        guard,
    })
}

/// The addresses the origin reports on stderr (`... listening on ADDR (mode)`), in
/// `--listen` order, once all `n` are printed.
fn bound_addrs(guard: &mut ChildGuard, n: usize) -> Result<Vec<SocketAddr>, String> {
    let parse = |text: &str| -> Vec<SocketAddr> {
        text.lines()
            .filter_map(|l| l.split_once(" listening on ").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let mut exited = false;
    let ready = wait_until(ORIGIN_READY_TIMEOUT, || {
        exited = !guard.is_running();
        exited || parse(&guard.stderr()).len() >= n
    });
    let addrs = parse(&guard.stderr());
    if !ready || exited || addrs.len() < n {
        return Err(format!("no listening addresses reported\n{}", guard.dump()));
    }
    Ok(addrs)
}

/// Several HTTP origins named `s1`, `s2`, ...
#[derive(Debug)]
pub struct Origins {
    list: Vec<Origin>,
}

impl Origins {
    pub fn start(n: usize) -> Origins {
        Origins {
            list: (1..=n).map(|i| Origin::start(&format!("s{i}"))).collect(),
        }
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.list.iter().map(Origin::addr).collect()
    }

    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(Origin::name).collect()
    }

    pub fn get(&self, i: usize) -> &Origin {
        &self.list[i]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut Origin {
        &mut self.list[i]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Origin> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `server <name> <addr>` lines for a backend section, one per origin.
    pub fn server_lines(&self, extra: &str) -> String {
        self.list
            .iter()
            .map(|o| format!("    server {} {} {extra}\n", o.name(), o.addr()))
            .collect()
    }
}
