//! The real `ringlb` binary under test.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::haproxy::config_bind_addrs;
use crate::process::{bin_path, ChildGuard};

/// How long `Ringlb::start` waits for the bind addresses.
pub const RINGLB_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `ringlb` (found by `bin_path("ringlb")`, or `$RINGLB_BIN`) in the foreground.
#[derive(Debug)]
pub struct Ringlb;

impl Ringlb {
    /// `ringlb -f cfg`, ready once every address in `binds` accepts connections; panics
    /// with ringlb's output otherwise.
    pub fn start(cfg: &Path, binds: &[SocketAddr]) -> ChildGuard {
        let args = ["-f".as_ref(), cfg.as_os_str()];
        Ringlb::start_args(&args, binds)
    }

    /// `ringlb -f cfg`, waiting for the `bind` addresses found in the file.
    pub fn start_auto(cfg: &Path) -> ChildGuard {
        let text = std::fs::read_to_string(cfg)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", cfg.display()));
        Ringlb::start(cfg, &config_bind_addrs(&text))
    }

    /// `ringlb ARGS...`, waiting for `binds`.
    pub fn start_args<S: AsRef<std::ffi::OsStr>>(args: &[S], binds: &[SocketAddr]) -> ChildGuard {
        let mut cmd = Command::new(bin_path("ringlb"));
        cmd.args(args);
        let mut guard = match ChildGuard::spawn("ringlb", &mut cmd) {
            Ok(g) => g,
            Err(e) => panic!("cannot start ringlb: {e}"),
        };
        if let Err(e) = guard.wait_ready(binds, RINGLB_READY_TIMEOUT) {
            panic!("ringlb not ready: {e}");
        }
        guard
    }
}
