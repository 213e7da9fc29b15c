//! Differential check: `haproxy -c -f` and the real `ringlb -c -f` must agree on valid/invalid
//! for every file in `config/examples` and `config/invalid`, except the documented ringlb
//! extensions listed by name below (haproxy 2.6 rejects them; ringlb accepts them with a
//! warning). Also checks the shape of ringlb's diagnostics. Skips (with a message) only when
//! `haproxy` is not installed; `scripts/test` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Configs haproxy 2.6 rejects and ringlb accepts on purpose (docs/compatibility.md).
const RINGLB_EXTENSIONS: &[&str] = &[
    // `http-check expect body` = `expect string`.
    "guide-08-httpchk-expect-body.cfg",
    // second `http-check send` after `expect` without `connect`.
    "guide-09-http-check-multistep.cfg",
    // `date_hour` / `date_dow` ACL fetches.
    "guide-12-acl-routing.cfg",
    // `ssl-engine` / `ssl-mode-async` accepted no-ops.
    "guide-14-ssl-tuning.cfg",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn cfg_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    v.sort();
    v
}

/// Runs `bin -c -f <rel>` from the repository root with a time bound; returns (exit code, stderr+stdout).
fn check(bin: &str, rel: &Path) -> (i32, String) {
    let mut child = Command::new(bin)
        .current_dir(repo())
        .args(["-c", "-f"])
        .arg(rel)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{bin} -c -f {} did not finish within 30 s", rel.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn haproxy_available() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn ringlb_and_haproxy_agree_on_validity() {
    if !haproxy_available() {
        eprintln!("SKIP: haproxy is not installed (scripts/test installs it)");
        return;
    }
    let ringlb = env!("CARGO_BIN_EXE_ringlb");
    let mut files = cfg_files("config/examples");
    files.extend(cfg_files("config/invalid"));
    assert!(files.len() >= 25, "corpus too small: {}", files.len());
    let mut mismatches = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(repo()).unwrap();
        let name = f.file_name().unwrap().to_str().unwrap();
        let (h_code, h_out) = check("haproxy", rel);
        let (r_code, r_out) = check(ringlb, rel);
        // Exit 2 is haproxy's "no error but no listener": valid for this comparison.
        let (h_ok, r_ok) = (matches!(h_code, 0 | 2), matches!(r_code, 0 | 2));
        if RINGLB_EXTENSIONS.contains(&name) {
            assert!(!h_ok, "{name} is listed as a ringlb extension but haproxy accepts it; remove it from the list");
            assert!(
                r_ok,
                "{name}: ringlb must accept its documented extension:\n{r_out}"
            );
            assert!(
                r_out.contains("[WARNING]"),
                "{name}: the extension must be warned about:\n{r_out}"
            );
            continue;
        }
        if h_ok != r_ok {
            mismatches.push(format!("{name}: haproxy exit {h_code}, ringlb exit {r_code}\n--- haproxy\n{h_out}--- ringlb\n{r_out}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "disagreements:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn ringlb_check_output_has_haproxy_shape() {
    let ringlb = env!("CARGO_BIN_EXE_ringlb");
    let (code, out) = check(
        ringlb,
        Path::new("config/invalid/guide-multi-layer-rate-limit.cfg"),
    );
    assert_eq!(code, 1, "{out}");
    let alert = out
        .lines()
        .find(|l| l.starts_with("[ALERT]    ("))
        .unwrap_or_else(|| panic!("no alert line in:\n{out}"));
    assert!(
        alert.contains(") : config : parsing [config/invalid/guide-multi-layer-rate-limit.cfg:"),
        "{alert}"
    );
    assert!(
        out.contains("Fatal errors found in configuration."),
        "{out}"
    );
    let (code, out) = check(ringlb, Path::new("config/quickstart.cfg"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Configuration file is valid"), "{out}");
}
