//! Map and ACL edits made on the runtime socket, and the counters, across a reload (issue
//! #10). haproxy 2.6's master-worker reload starts a new worker: it reads the files again (the
//! socket's `add map`/`del acl`... are lost) and its counters start from zero. ringlb's
//! in-process reload keeps the edits of every file whose contents did not change on disk (a
//! file changed on disk wins and its edits are dropped); its counters restart with the new
//! epoch, as haproxy's do.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, haproxy_bin, http_get, runtime_command, wait_until, ChildGuard,
    Origins, Ringlb, StatCsv, TempDir,
};

const WAIT: Duration = Duration::from_secs(20);

fn cli(sock: &Path, cmd: &str) -> String {
    runtime_command(sock, cmd).unwrap_or_else(|e| panic!("{cmd} on {}: {e}", sock.display()))
}

/// Who answered a GET for `host` on `path`: the origin's name, or `deny` for a 403.
fn answer(front: SocketAddr, host: &str, path: &str) -> String {
    let r = http_get(front, path, &[("Host", host)]).unwrap();
    match r.status {
        403 => "deny".into(),
        200 => r.header("x-origin").unwrap_or("?").to_string(),
        s => format!("status {s}"),
    }
}

/// Answers of 6 requests (new connections: both shards / threads serve some) all the same.
fn answers(front: SocketAddr, host: &str, path: &str) -> String {
    let all: Vec<String> = (0..6).map(|_| answer(front, host, path)).collect();
    assert!(all.iter().all(|a| *a == all[0]), "{host}{path}: {all:?}");
    all[0].clone()
}

/// `show map`/`show acl` entries without their `#<ref>` addresses.
fn entries(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

fn info_field(sock: &Path, name: &str) -> u64 {
    let out = cli(sock, "show info");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {out}"));
    line[name.len() + 2..].parse().unwrap()
}

/// `req_tot` of frontend `fe` in `show stat`.
fn frontend_req_tot(sock: &Path) -> u64 {
    let stat = StatCsv::parse(&cli(sock, "show stat"));
    stat.get("fe", "FRONTEND", "req_tot")
        .unwrap()
        .parse()
        .unwrap()
}

struct Setup {
    dir: TempDir,
    front: SocketAddr,
    sock: PathBuf,
    map: PathBuf,
    acl: PathBuf,
    cfg: PathBuf,
}

/// Routing by `map(hosts.map)` on the Host header, `deny` for paths in `paths.acl`.
fn setup(name: &str, origins: &Origins, extra_global: &str) -> Setup {
    let dir = TempDir::new(name);
    let front = free_addr();
    let (map, acl, sock) = (
        dir.join("hosts.map"),
        dir.join("paths.acl"),
        dir.join("admin.sock"),
    );
    std::fs::write(&map, "a.example be_a\n").unwrap();
    std::fs::write(&acl, "/blocked\n").unwrap();
    let text = format!(
        "global\n    nbthread 2\n    stats socket {s} level admin\n{extra_global}\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {front}\n    http-request deny if {{ path -f {a} }}\n\
         \x20   use_backend %[req.hdr(host),lower,map({m},be_default)]\n\
         backend be_a\n    server a {o0}\nbackend be_b\n    server b {o1}\n\
         backend be_default\n    server d {o2}\n",
        s = sock.display(),
        a = acl.display(),
        m = map.display(),
        o0 = origins.get(0).addr(),
        o1 = origins.get(1).addr(),
        o2 = origins.get(2).addr(),
    );
    let cfg = dir.join("p.cfg");
    std::fs::write(&cfg, text).unwrap();
    Setup {
        dir,
        front,
        sock,
        map,
        acl,
        cfg,
    }
}

/// The edits both tests make, checked through traffic: b.example routed to be_b, /blocked
/// allowed, /forbidden denied.
fn edit(s: &Setup) {
    let (m, a) = (s.map.display(), s.acl.display());
    assert_eq!(cli(&s.sock, &format!("add map {m} b.example be_b")), "\n");
    assert_eq!(cli(&s.sock, &format!("del acl {a} /blocked")), "\n");
    assert_eq!(cli(&s.sock, &format!("add acl {a} /forbidden")), "\n");
    assert_eq!(answers(s.front, "b.example", "/"), "s2");
    assert_eq!(answers(s.front, "a.example", "/blocked"), "s1");
    assert_eq!(answers(s.front, "a.example", "/forbidden"), "deny");
}

#[test]
fn haproxy_master_worker_reload_loses_socket_edits_and_counters() {
    if !haproxy_available() {
        eprintln!("SKIP: haproxy not installed");
        return;
    }
    let origins = Origins::start(3);
    let s = setup("reload-pat-hx", &origins, "");
    let mut cmd = Command::new(haproxy_bin());
    cmd.arg("-W").arg("-db").arg("-f").arg(&s.cfg);
    let mut master = ChildGuard::spawn("haproxy -W", &mut cmd).unwrap();
    master.wait_ready(&[s.front], WAIT).unwrap();
    assert!(wait_until(WAIT, || runtime_command(&s.sock, "show info").is_ok()));
    edit(&s);
    let old_pid = info_field(&s.sock, "Pid");
    let cum = info_field(&s.sock, "CumReq");
    assert!(cum > 18, "CumReq {cum}");
    // The new worker owns the socket once `show info` names another pid. A master still
    // starting has not installed its SIGUSR2 handler yet (it then ignores the signal): ask
    // again a few times.
    let reloaded = (0..5).any(|_| {
        master.signal(libc::SIGUSR2).unwrap();
        wait_until(Duration::from_secs(4), || {
            runtime_command(&s.sock, "show info")
                .is_ok_and(|o| !o.contains(&format!("\nPid: {old_pid}\n")))
        })
    });
    assert!(reloaded, "haproxy -W did not start a new worker");
    let m = s.map.display();
    assert_eq!(
        entries(&cli(&s.sock, &format!("show map {m}"))),
        ["a.example be_a"]
    );
    assert_eq!(answers(s.front, "b.example", "/"), "s3");
    assert_eq!(answers(s.front, "a.example", "/blocked"), "deny");
    let after = info_field(&s.sock, "CumReq");
    assert!(after < cum, "counters start again: {after} after {cum}");
    drop(s.dir);
}

#[test]
fn in_process_reload_keeps_edits_of_files_unchanged_on_disk() {
    let origins = Origins::start(3);
    let s = setup("reload-pat-rl", &origins, "");
    let _p = Ringlb::start(&s.cfg, &[s.front]);
    assert!(wait_until(WAIT, || runtime_command(
        &s.sock,
        "show cli level"
    )
    .is_ok_and(|o| o.contains("admin"))));
    edit(&s);
    let (m, a) = (s.map.display(), s.acl.display());

    // Files unchanged: every edit survives, in `show map`/`show acl` and on every shard.
    // 18 requests, plus the harness's readiness probe when it was counted already (an
    // empty connection is a request for haproxy's counters, counted when it closes).
    let before = frontend_req_tot(&s.sock);
    assert!((18..=19).contains(&before), "{before} requests");
    let out = cli(&s.sock, "reload");
    assert!(
        out.starts_with("Configuration reloaded in process"),
        "{out}"
    );
    // Counters restart with the new epoch, as in haproxy's new worker.
    assert_eq!(frontend_req_tot(&s.sock), 0);
    assert_eq!(
        entries(&cli(&s.sock, &format!("show map {m}"))),
        ["a.example be_a", "b.example be_b"]
    );
    assert_eq!(
        entries(&cli(&s.sock, &format!("show acl {a}"))),
        ["/forbidden"]
    );
    assert_eq!(answers(s.front, "b.example", "/"), "s2");
    assert_eq!(answers(s.front, "a.example", "/blocked"), "s1");
    assert_eq!(answers(s.front, "a.example", "/forbidden"), "deny");

    // The map changed on disk: its new contents win, the socket's edit is dropped; the ACL
    // file did not change, its edits stay.
    std::fs::write(&s.map, "a.example be_a\nc.example be_b\n").unwrap();
    let out = cli(&s.sock, "reload");
    assert!(
        out.starts_with("Configuration reloaded in process"),
        "{out}"
    );
    assert_eq!(
        entries(&cli(&s.sock, &format!("show map {m}"))),
        ["a.example be_a", "c.example be_b"]
    );
    assert_eq!(answers(s.front, "b.example", "/"), "s3");
    assert_eq!(answers(s.front, "c.example", "/"), "s2");
    assert_eq!(
        entries(&cli(&s.sock, &format!("show acl {a}"))),
        ["/forbidden"]
    );
    assert_eq!(answers(s.front, "a.example", "/blocked"), "s1");
    assert_eq!(answers(s.front, "a.example", "/forbidden"), "deny");
    // Edits after the reload number after the kept entries and apply as before.
    assert_eq!(cli(&s.sock, &format!("add acl {a} /blocked")), "\n");
    assert_eq!(answers(s.front, "a.example", "/blocked"), "deny");
}
