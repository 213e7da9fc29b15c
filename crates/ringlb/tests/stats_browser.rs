//! The stats page in a real headless browser (Chromium driven by Selenium,
//! `tests/browser/stats_admin.py`): refused without credentials, logged in with basic auth,
//! both backend tables visible, server `app/s1` drained with the admin form; the drain is
//! then checked outside the browser, in the CSV export and on the runtime socket, and a
//! screenshot is kept in `target/tmp/stats-browser/`.
//!
//! Needs the Debian packages `chromium`, `chromium-driver` and `python3-selenium`
//! (`scripts/test` installs them); without them the test says so and is skipped, except in
//! CI where it fails.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, run_bounded, wait_until, write_config, Origins, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);
/// The whole browser run (the script's own watchdog is 60 s).
const BROWSER_T: Duration = Duration::from_secs(90);
const PYTHON: &str = "/usr/bin/python3";

/// What is missing to run a browser, if anything.
fn browser_missing() -> Option<String> {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver", PYTHON] {
        if !Path::new(bin).exists() {
            return Some(format!("{bin} not found"));
        }
    }
    let ok = run_bounded(
        Command::new(PYTHON).args(["-c", "import selenium"]),
        Duration::from_secs(20),
    )
    .map(|o| o.status.success())
    .unwrap_or(false);
    (!ok).then(|| "python3-selenium not importable".to_string())
}

fn config(front: SocketAddr, stats: SocketAddr, sock: &Path, s: &[SocketAddr]) -> String {
    format!(
        "global\n    nbthread 2\n    stats socket {}\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    use_backend api if {{ path_beg /api }}\n    default_backend app\nbackend app\n    server s1 {}\n    server s2 {}\nbackend api\n    server a1 {}\n    server a2 {}\nlisten stats\n    bind {stats}\n    stats enable\n    stats uri /stats\n    stats auth admin:secret\n    stats admin if TRUE\n",
        sock.display(),
        s[0],
        s[1],
        s[2],
        s[3]
    )
}

fn csv_status(csv: &str, px: &str, sv: &str) -> Option<String> {
    let header: Vec<&str> = csv
        .lines()
        .next()?
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = header.iter().position(|h| *h == "status")?;
    csv.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&px) && f.get(1) == Some(&sv))
        .and_then(|f| f.get(col).map(|s| s.to_string()))
}

/// `show servers state app` on the runtime socket: the admin state column of `sv`
/// (bit 0x08: drain forced from the stats page or the CLI).
fn socket_admin_state(sock: &Path, sv: &str) -> Option<u32> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(T)).ok()?;
    s.write_all(b"show servers state app\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    // `be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...`
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.get(3) == Some(&sv))
        .and_then(|w| w.get(6)?.parse().ok())
}

#[test]
fn stats_page_in_chromium_logs_in_and_drains_a_server() {
    if let Some(why) = browser_missing() {
        assert!(
            std::env::var_os("CI").is_none(),
            "headless browser required in CI: {why}"
        );
        eprintln!("SKIPPED stats_page_in_chromium_logs_in_and_drains_a_server: {why} (install chromium chromium-driver python3-selenium)");
        return;
    }
    let origins = Origins::start(4);
    let dir = TempDir::new("stats-browser");
    let (front, stats) = (free_addr(), free_addr());
    let sock = dir.join("admin.sock");
    let path = write_config(&dir, &config(front, stats, &sock, &origins.addrs()));
    let _r = Ringlb::start(&path, &[front, stats]);
    let base = format!("http://{stats}/stats");
    let csv = || {
        let out = curl(&["-u", "admin:secret", &format!("{base};csv")], T).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(csv_status(&csv(), "app", "s1").as_deref(), Some("no check"));
    assert_eq!(socket_admin_state(&sock, "s1"), Some(0));

    let out_dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stats-browser");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/stats_admin.py");
    let out = run_bounded(
        Command::new(PYTHON)
            .arg(&script)
            .args([base.as_str(), "admin", "secret"])
            .arg(&out_dir),
        BROWSER_T,
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{stderr}"
    );
    let shot = stdout
        .lines()
        .find_map(|l| l.strip_prefix("screenshot: "))
        .unwrap_or_else(|| panic!("no screenshot line:\n{stdout}"));
    let png = std::fs::read(shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{shot}");
    println!("screenshot of the drained server: {shot}");

    // The drain is real: the CSV export and the runtime socket agree.
    assert!(
        wait_until(T, || csv_status(&csv(), "app", "s1")
            .is_some_and(|s| s.starts_with("DRAIN"))),
        "{}",
        csv()
    );
    assert_eq!(csv_status(&csv(), "app", "s2").as_deref(), Some("no check"));
    assert_eq!(socket_admin_state(&sock, "s1"), Some(8));
    assert_eq!(socket_admin_state(&sock, "s2"), Some(0));
}
