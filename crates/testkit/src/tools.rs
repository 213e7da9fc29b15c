//! Real command-line clients (curl, socat, wrk...) run with a time bound.

use std::io;
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::ChildGuard;

/// Runs `cmd` to completion (stdin closed). Past `timeout` it is stopped by pid and the
/// result is a `TimedOut` error carrying its output so far.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let mut guard = ChildGuard::spawn(&name, cmd)?;
    match guard.wait_timeout(timeout)? {
        Some(status) => Ok(Output {
            status,
            stdout: std::fs::read(guard.stdout_path())?,
            stderr: std::fs::read(guard.stderr_path())?,
        }),
        None => {
            let _ = guard.stop(Duration::from_millis(500));
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{name} still running after {timeout:?}\n{}", guard.dump()),
            ))
        }
    }
}

/// `curl -sS --max-time T ARGS...`, bounded by `timeout` (+1 s for curl to give up by
/// itself first).
pub fn curl(args: &[&str], timeout: Duration) -> io::Result<Output> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        &format!("{:.3}", timeout.as_secs_f64()),
    ]);
    cmd.args(args);
    run_bounded(&mut cmd, timeout + Duration::from_secs(1))
}

/// A program installed on `PATH` (Debian's `redis-server`, ...), if any.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_bounds() {
        let out = run_bounded(
            Command::new("sh").args(["-c", "echo hi; echo err >&2; exit 4"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b"hi\n"[..], &b"err\n"[..])
        );
        assert_eq!(out.status.code(), Some(4));
        let err = run_bounded(
            Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("started"), "{err}");
    }
}
