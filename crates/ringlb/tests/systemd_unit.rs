//! The systemd integration as shipped (issue #10): `config/systemd/ringlb.service` passes
//! `systemd-analyze verify`, and its own command lines, run as systemd runs them (variables
//! expanded, `$MAINPID` the main process, `NOTIFY_SOCKET` set), start the service in
//! master-worker mode with `READY=1`, reload it (`RELOADING=1`, a new worker, `READY=1`),
//! refuse a reload with a broken configuration before any signal is sent, and stop it on
//! SIGTERM to the main process (`KillMode=mixed`) with an exit systemd counts as success.
//! `scripts/install` stages the binary, the unit, the default configuration and the sysctl
//! (`DESTDIR`).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::{children, free_addr, http_get, run_bounded, wait_until, ChildGuard, TempDir};

const BOUND: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("config/systemd/ringlb.service")).unwrap()
}

/// The values of `key=` in the unit, in order.
fn values(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// A command line of the unit as systemd runs it: words split on blanks, `$VAR` words
/// replaced, the installed binary path replaced by the one under test.
fn command(line: &str, vars: &[(&str, String)], bin: &Path) -> Command {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| {
            if w == "/usr/local/sbin/ringlb" {
                return bin.display().to_string();
            }
            w.strip_prefix('$')
                .and_then(|name| vars.iter().find(|(n, _)| *n == name))
                .map_or_else(|| w.to_string(), |(_, v)| v.clone())
        })
        .collect();
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}

fn service_config(front: std::net::SocketAddr, body: &str) -> String {
    format!(
        "global\n    nbthread 2\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {front}\n    http-request return status 200 content-type text/plain string {body}\n"
    )
}

#[test]
fn the_unit_verifies_and_its_commands_start_reload_and_stop_the_service() {
    let unit = unit_text();
    assert_eq!(values(&unit, "Type"), ["notify"]);
    assert_eq!(values(&unit, "NotifyAccess"), ["all"]);
    assert_eq!(values(&unit, "KillMode"), ["mixed"]);
    let bin = ringlb_testkit::bin_path("ringlb");
    let dir = TempDir::new("systemd-unit");

    // systemd's own check of the unit (every command must exist: the binary under test).
    let have_analyze = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_analyze {
        let copy = dir.join("ringlb.service");
        std::fs::write(
            &copy,
            unit.replace("/usr/local/sbin/ringlb", &bin.display().to_string()),
        )
        .unwrap();
        let out = run_bounded(
            Command::new("systemd-analyze").arg("verify").arg(&copy),
            BOUND,
        )
        .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success() && said.trim().is_empty(), "{said}");
    } else {
        eprintln!("systemd-analyze not installed: the unit's syntax is not verified here");
    }

    let front = free_addr();
    let cfg = dir.join("ringlb.cfg");
    std::fs::write(&cfg, service_config(front, "one")).unwrap();
    let pidfile = dir.join("ringlb.pid");
    let mut vars = vec![
        ("CONFIG", cfg.display().to_string()),
        ("PIDFILE", pidfile.display().to_string()),
    ];
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(BOUND)).unwrap();
    let next = || {
        let mut b = [0u8; 256];
        let n = notify.recv(&mut b).unwrap();
        String::from_utf8_lossy(&b[..n]).into_owned()
    };

    for pre in values(&unit, "ExecStartPre") {
        let out = run_bounded(&mut command(&pre, &vars, &bin), BOUND).unwrap();
        assert!(out.status.success(), "{pre}: {out:?}");
    }
    let start = values(&unit, "ExecStart");
    assert_eq!(start.len(), 1, "{start:?}");
    let mut cmd = command(&start[0], &vars, &bin);
    cmd.env("NOTIFY_SOCKET", &notify_path);
    let mut main = ChildGuard::spawn("ringlb", &mut cmd).unwrap();
    assert_eq!(next(), format!("READY=1\nMAINPID={}", main.pid()));
    assert!(wait_until(BOUND, || http_get(front, "/", &[])
        .is_ok_and(|r| r.text() == "one")));
    assert!(wait_until(BOUND, || std::fs::read_to_string(&pidfile)
        .is_ok_and(|p| p.trim() == main.pid().to_string())));
    vars.push(("MAINPID", main.pid().to_string()));

    // `systemctl reload`: every ExecReload line in order, each must succeed.
    std::fs::write(&cfg, service_config(front, "two")).unwrap();
    let first = children(main.pid());
    for line in values(&unit, "ExecReload") {
        let out = run_bounded(&mut command(&line, &vars, &bin), BOUND).unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
    }
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), format!("READY=1\nMAINPID={}", main.pid()));
    assert!(
        wait_until(BOUND, || {
            let now = children(main.pid());
            now.len() == 1 && now != first
        }),
        "the worker was replaced\n{}",
        main.dump()
    );
    assert_eq!(http_get(front, "/", &[]).unwrap().text(), "two");

    // A broken configuration: systemd stops at the first failing ExecReload line, so the
    // check refuses it before any signal is sent; the worker keeps serving.
    std::fs::write(&cfg, "global\n    nbthred 2\n").unwrap();
    let serving = children(main.pid());
    let reload = values(&unit, "ExecReload");
    let out = run_bounded(&mut command(&reload[0], &vars, &bin), BOUND).unwrap();
    assert!(!out.status.success(), "{}: {out:?}", reload[0]);
    assert_eq!(children(main.pid()), serving);
    assert_eq!(http_get(front, "/", &[]).unwrap().text(), "two");

    // `systemctl stop` with KillMode=mixed: SIGTERM to the main process only.
    main.signal(libc::SIGTERM).unwrap();
    assert_eq!(next(), "STOPPING=1");
    let status = main
        .wait_timeout(BOUND)
        .unwrap()
        .expect("the service stops");
    let success = values(&unit, "SuccessExitStatus").join(" ");
    let code = status.code().map(|c| c.to_string());
    assert!(
        status.success() || code.is_some_and(|c| success.split_whitespace().any(|s| s == c)),
        "exit {status:?} is not a success for systemd ({success})"
    );
    assert!(wait_until(BOUND, || serving
        .iter()
        .all(|w| !Path::new(&format!("/proc/{w}")).exists())));
}

#[test]
fn scripts_install_stages_binary_unit_config_and_sysctl() {
    let bin = ringlb_testkit::bin_path("ringlb");
    let dir = TempDir::new("install");
    let root = dir.path();
    let out = run_bounded(
        Command::new(repo().join("scripts/install"))
            .arg("--no-build")
            .env("DESTDIR", root)
            .env("RINGLB_BIN", &bin),
        BOUND,
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("usr/local/sbin/ringlb"), 0o755);
    assert_eq!(mode("etc/systemd/system/ringlb.service"), 0o644);
    assert_eq!(mode("etc/ringlb/ringlb.cfg"), 0o644);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/systemd/system/ringlb.service")).unwrap(),
        unit_text()
    );
    assert_eq!(
        std::fs::read(root.join("etc/ringlb/ringlb.cfg")).unwrap(),
        std::fs::read(repo().join("config/quickstart.cfg")).unwrap()
    );
    assert!(
        std::fs::read_to_string(root.join("etc/sysctl.d/60-ringlb.conf"))
            .unwrap()
            .contains("net.ipv4.tcp_migrate_req = 1")
    );
    // The unit's ExecStart names the installed binary, which runs.
    assert!(values(&unit_text(), "ExecStart")[0].starts_with("/usr/local/sbin/ringlb "));
    let v = run_bounded(
        Command::new(root.join("usr/local/sbin/ringlb")).arg("-v"),
        BOUND,
    )
    .unwrap();
    assert!(v.status.success(), "{v:?}");

    // An existing configuration is kept.
    let mine = service_config(free_addr(), "mine");
    std::fs::write(root.join("etc/ringlb/ringlb.cfg"), &mine).unwrap();
    let again = run_bounded(
        Command::new(repo().join("scripts/install"))
            .arg("--no-build")
            .env("DESTDIR", root)
            .env("RINGLB_BIN", &bin),
        BOUND,
    )
    .unwrap();
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/ringlb/ringlb.cfg")).unwrap(),
        mine
    );
}
