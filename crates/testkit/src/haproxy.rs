//! The real `haproxy` as the oracle of differential tests.

use std::net::{SocketAddr, ToSocketAddrs};
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

/// Whether a differential test can run: `true` when haproxy is here; outside CI a missing
/// haproxy skips (`false`), in CI (`$CI` set) it fails the test.
pub fn haproxy_required() -> bool {
    if haproxy_available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "haproxy is required in CI"
    );
    eprintln!("haproxy not found: differential part skipped");
    false
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

    /// Like `start`, waiting for the `bind` addresses found in the config file
    /// (`config_bind_addrs`).
    pub fn start_auto(cfg: &Path) -> ChildGuard {
        let text = std::fs::read_to_string(cfg)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", cfg.display()));
        Haproxy::start(cfg, &config_bind_addrs(&text))
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

/// The TCP addresses of `bind` lines in a HAProxy config (`bind HOST:PORT[,...] ...`),
/// in order; unix sockets, `ipv4@`/`ipv6@` prefixes are handled, ports ranges skipped.
pub fn config_bind_addrs(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("bind") {
            continue;
        }
        let Some(spec) = words.next() else { continue };
        for one in spec.split(',') {
            let one = one
                .trim_start_matches("ipv4@")
                .trim_start_matches("ipv6@")
                .trim_start_matches("tcp@");
            let one = one
                .strip_prefix(':')
                .map_or(one.to_owned(), |p| format!("127.0.0.1:{p}"));
            let one = one
                .strip_prefix("*:")
                .map_or(one.clone(), |p| format!("127.0.0.1:{p}"));
            let one = one
                .strip_prefix("0.0.0.0:")
                .map_or(one.clone(), |p| format!("127.0.0.1:{p}"));
            if let Ok(mut addrs) = one.to_socket_addrs() {
                out.extend(addrs.next());
            }
        }
    }
    out
}

/// Runs `run` against ringlb, then against haproxy when installed, on the config `cfg` gives
/// for two fresh front addresses (the proxy binds those the config names), and checks both
/// give the same answer; returns ringlb's. Without haproxy, only outside CI.
pub fn same_as_haproxy<T: PartialEq + std::fmt::Debug>(
    name: &str,
    cfg: &dyn Fn(&[SocketAddr]) -> String,
    run: &dyn Fn(&[SocketAddr]) -> T,
) -> T {
    let dir = crate::TempDir::new(name);
    let go = |who: &str| {
        let fe = [crate::free_addr(), crate::free_addr()];
        let path = dir.join(&format!("{who}.cfg"));
        let text = cfg(&fe);
        if let Err(e) = std::fs::write(&path, &text) {
            panic!("writing {}: {e}", path.display());
        }
        let binds: Vec<SocketAddr> = fe
            .iter()
            .copied()
            .filter(|a| text.contains(&a.to_string()))
            .collect();
        let _proxy = if who == "ringlb" {
            crate::Ringlb::start(&path, &binds)
        } else {
            Haproxy::start(&path, &binds)
        };
        run(&fe)
    };
    let ours = go("ringlb");
    if haproxy_available() {
        assert_eq!(ours, go("haproxy"), "ringlb (left) vs haproxy (right)");
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
    }
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bind_addresses() {
        let cfg = "frontend a\n    bind 127.0.0.1:8080\n    bind :8081 ssl crt x.pem\n\
listen b\n  bind ipv4@127.0.0.1:9000,127.0.0.1:9001\n  bind /run/x.sock\n  # bind 1.2.3.4:5\n";
        let got: Vec<String> = config_bind_addrs(cfg)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "127.0.0.1:8080",
                "127.0.0.1:8081",
                "127.0.0.1:9000",
                "127.0.0.1:9001"
            ]
        );
    }
}
