//! The machine description stored with every result.

use crate::procs::run_capture;
use crate::results::Machine;
use std::path::Path;
use std::time::Duration;

fn first_line(cmd: &[&str]) -> String {
    run_capture(cmd, Duration::from_secs(10))
        .map(|(_, out)| out.lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|e| format!("unavailable ({e})"))
}

pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The `Built with OpenSSL` and `Running on OpenSSL` lines of `haproxy -vv`.
pub fn haproxy_openssl(vv: &str) -> String {
    vv.lines()
        .filter(|l| l.contains("with OpenSSL version") || l.contains("Running on OpenSSL"))
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn describe(root: &Path, ringlb: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let vv = run_capture(&["haproxy", "-vv"], Duration::from_secs(10))
        .map(|(_, o)| o)
        .unwrap_or_default();
    let root_s = root.display().to_string();
    Machine {
        cpu_model,
        cpus,
        kernel: first_line(&["uname", "-sr"]),
        haproxy: vv.lines().next().unwrap_or("").trim().to_string(),
        haproxy_openssl: haproxy_openssl(&vv),
        nginx: first_line(&["nginx", "-v"]),
        wrk: first_line(&["wrk", "-v"]),
        h2load: first_line(&["h2load", "--version"]),
        // `-dirty`: ringlb was built from a working tree with uncommitted changes.
        ringlb_rev: first_line(&[
            "git",
            "-C",
            &root_s,
            "describe",
            "--always",
            "--dirty",
            "--abbrev=12",
        ]),
        ringlb_built: std::fs::metadata(ringlb)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| crate::results::utc_timestamp(d.as_secs()))
            .unwrap_or_else(|| "not built".into()),
        load_before: load_avg(),
        load_after: String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn openssl_lines() {
        let vv =
            "HAProxy version 2.6.12\nBuilt with OpenSSL version : OpenSSL 3.0.22 25 Aug 2026\n\
                  Running on OpenSSL version : OpenSSL 3.0.19 27 Jan 2026\nOther";
        assert_eq!(
            super::haproxy_openssl(vv),
            "Built with OpenSSL version : OpenSSL 3.0.22 25 Aug 2026; Running on OpenSSL version : OpenSSL 3.0.19 27 Jan 2026"
        );
    }
}
