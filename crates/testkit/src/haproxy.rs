//! The real `haproxy` as the oracle of differential tests.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::ChildGuard;

/// How long `Haproxy::start` waits for the bind addresses.
pub const HAPROXY_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The haproxy binary: `$HAPROXY_BIN`, else `haproxy` from `PATH`.
pub fn haproxy_bin() -> String {
    std::env::var("HAPROXY_BIN").unwrap_or_else(|_| "haproxy".to_owned())
}

/// Whether `haproxy -v` runs. Differential tests skip (saying so) when it does not.
pub fn haproxy_available() -> bool {
    Command::new(haproxy_bin())
        .arg("-v")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs haproxy in the foreground.
#[derive(Debug)]
pub struct Haproxy;

impl Haproxy {
    /// `haproxy -db -f cfg`, ready once every address in `binds` accepts connections;
    /// panics with haproxy's output otherwise.
    pub fn start(cfg: &Path, binds: &[SocketAddr]) -> ChildGuard {
        let mut cmd = Command::new(haproxy_bin());
        cmd.arg("-db").arg("-f").arg(cfg);
        let mut guard = match ChildGuard::spawn("haproxy", &mut cmd) {
            Ok(g) => g,
            Err(e) => panic!("cannot start haproxy: {e}"),
        };
        if let Err(e) = guard.wait_ready(binds, HAPROXY_READY_TIMEOUT) {
            panic!("haproxy not ready: {e}");
        }
        guard
    }

    /// `haproxy -c -f cfg`: `Ok(output)` when valid, `Err(output)` otherwise.
    pub fn check(cfg: &Path) -> Result<String, String> {
        let out = Command::new(haproxy_bin())
            .arg("-c")
            .arg("-f")
            .arg(cfg)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run haproxy: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }
}
