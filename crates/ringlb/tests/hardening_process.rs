//! Process hardening with the real binary: `chroot`, `user`/`group` applied to every thread
//! (read from /proc, not assumed from the code), and the stats page's admin form refused when
//! `stats admin if COND` does not hold — compared with haproxy.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, haproxy_available, write_config, ChildGuard, Conn, Haproxy, Origins, Ringlb,
    TempDir,
};

const T: Duration = Duration::from_secs(10);

/// The `Uid:`/`Gid:`/`Groups:` lines and the root directory of every thread of `pid`.
fn threads_identity(pid: u32) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        let line = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        let root = std::fs::read_link(task.join("root"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        out.push((line("Uid:"), line("Gid:"), line("Groups:"), root));
    }
    out
}

#[test]
fn chroot_and_user_apply_to_every_thread() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: dropping privileges needs root (scripts/test runs as root)");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("hardening-privileges");
    let jail = dir.join("jail");
    std::fs::create_dir_all(&jail).unwrap();
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 2\n    chroot {}\n    user nobody\n    group nogroup\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {front}\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        jail.display(),
        dir.join("admin.sock").display(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let proxy = Ringlb::start(&path, &[front]);
    // Serving after the drop: connections to the origin and the runtime socket still work.
    let mut c = Conn::connect(front).unwrap();
    for _ in 0..4 {
        assert_eq!(c.get("/").unwrap().status, 200);
    }
    // The listeners answer as soon as they are bound; the drop follows at once, and glibc's
    // setuid reaches each thread when it next runs: under load, wait for the last one.
    let dropped = |t: &[(String, String, String, String)]| {
        t.iter()
            .all(|(uid, gid, _, _)| uid.starts_with("65534") && gid.starts_with("65534"))
    };
    ringlb_testkit::wait_until(Duration::from_secs(5), || {
        dropped(&threads_identity(proxy.pid()))
    });
    let threads = threads_identity(proxy.pid());
    println!("{} threads: {threads:?}", threads.len());
    // The main thread, the control shard and one worker per CPU at least.
    assert!(threads.len() >= 3, "{threads:?}");
    let jail_path = jail.canonicalize().unwrap().display().to_string();
    for (uid, gid, groups, root) in &threads {
        assert_eq!(uid, "65534 65534 65534 65534", "{threads:?}");
        assert_eq!(gid, "65534 65534 65534 65534", "{threads:?}");
        assert_eq!(groups, "", "supplementary groups kept: {threads:?}");
        assert_eq!(root, &jail_path, "{threads:?}");
    }
}

fn stats_config(front: SocketAddr, stats: SocketAddr, origin: SocketAddr) -> String {
    // The admin condition never holds on loopback.
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {front}\n    default_backend app\n\
         backend app\n    server s1 {origin}\n\
         listen stats\n    bind {stats}\n    stats enable\n    stats uri /stats\n    stats auth admin:secret\n    stats admin if {{ src 10.9.9.9 }}\n"
    )
}

/// The admin form's answer (status line and Location) and s1's status afterwards.
fn try_drain(stats: SocketAddr) -> (String, String, String) {
    let base = format!("http://{stats}/stats");
    let out = curl(
        &[
            "-s",
            "-i",
            "-u",
            "admin:secret",
            "--data",
            "s=s1&action=drain&b=app",
            &base,
        ],
        T,
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.lines().next().unwrap_or("").trim().to_owned();
    let location = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let csv = curl(&["-s", "-u", "admin:secret", &format!("{base};csv")], T).unwrap();
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let head: Vec<&str> = csv
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = head.iter().position(|h| *h == "status").unwrap();
    let s1 = csv
        .lines()
        .find(|l| l.starts_with("app,s1,"))
        .and_then(|l| l.split(',').nth(col))
        .unwrap_or("")
        .to_owned();
    (status, location, s1)
}

fn run(
    start: impl FnOnce(&std::path::Path, &[SocketAddr]) -> ChildGuard,
) -> (String, String, String) {
    let origins = Origins::start(1);
    let dir = TempDir::new("hardening-stats-admin");
    let (front, stats) = (free_addr(), free_addr());
    let path = write_config(&dir, &stats_config(front, stats, origins.addrs()[0]));
    let _p = start(&path, &[front, stats]);
    try_drain(stats)
}

#[test]
fn stats_admin_form_is_refused_when_its_condition_fails() {
    let (status, location, s1) = run(Ringlb::start);
    println!("ringlb: {status} / {location} / s1 {s1}");
    assert!(
        location.ends_with(";st=DENY"),
        "{status} location {location:?}"
    );
    assert_eq!(s1, "no check", "the server was changed");
    if haproxy_available() {
        let (ha_status, ha_location, ha_s1) = run(Haproxy::start);
        println!("haproxy: {ha_status} / {ha_location} / s1 {ha_s1}");
        assert_eq!(
            status.split(' ').nth(1),
            ha_status.split(' ').nth(1),
            "status differs from haproxy's"
        );
        assert!(ha_location.ends_with(";st=DENY"), "{ha_location}");
        assert_eq!(ha_s1, s1);
    }
}
