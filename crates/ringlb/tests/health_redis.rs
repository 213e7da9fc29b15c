//! The guide's Redis checks (issue #5) against real Redis servers: a master and a replica
//! (`redis-server` on loopback ports, no persistence, started and stopped by pid), checked by
//! the guide's `tcp-check` ruleset (`PING`/`+PONG`, `INFO replication`/`role:master`,
//! `QUIT`/`+OK`), its short `PING` form and `option redis-check`. The real `ringlb` binary and
//! haproxy 2.6 run the same config: the same verdicts (the master green, the replica red: it answers
//! `role:slave`, and the rule waits for `role:master` until `timeout check`), the same DOWN lines, `show servers state` and `show stat`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use health_support::{show, up_down, Backend, Diff};
use ringlb_testkit::{find_on_path, free_port, wait_for_port, wait_until, ChildGuard, TempDir};

const DEFAULTS: &str = "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 300ms\n";

const T: Duration = Duration::from_secs(20);

/// A `redis-server` of its own on a loopback port (in the foreground, no RDB or AOF file,
/// its directory a temporary one), stopped by its pid on drop.
struct Redis {
    addr: SocketAddr,
    guard: ChildGuard,
    _dir: TempDir,
}

/// One command, its reply (what arrives within 300 ms of the first bytes).
fn ask(addr: SocketAddr, cmd: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    if s.write_all(cmd.as_bytes()).is_err() {
        return String::new();
    }
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while let Ok(n) = s.read(&mut b) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

impl Redis {
    /// A master, or a replica of `master`. `None` (saying why) when Redis is not installed;
    /// required in CI (`scripts/test` installs it).
    fn start(name: &str, master: Option<SocketAddr>) -> Option<Redis> {
        let Some(bin) = find_on_path("redis-server") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is required in CI (scripts/test installs it)"
            );
            eprintln!("skipped: redis-server is not installed");
            return None;
        };
        let dir = TempDir::new(&format!("redis-{name}"));
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path()).args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.path().to_str().unwrap(),
            "--logfile",
            "",
        ]);
        if let Some(m) = master {
            cmd.args(["--replicaof", &m.ip().to_string(), &m.port().to_string()]);
        }
        let guard = ChildGuard::spawn(&format!("redis-{name}"), &mut cmd).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if let Err(e) = wait_for_port(addr, T) {
            panic!("redis-server not ready: {e}\n{}", guard.stderr());
        }
        let r = Redis {
            addr,
            guard,
            _dir: dir,
        };
        let answers = wait_until(T, || ask(addr, "PING\r\n").starts_with("+PONG"));
        assert!(
            answers,
            "redis-server does not answer:\n{}",
            r.guard.stderr()
        );
        Some(r)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // SIGTERM: redis-server exits at once (nothing to save).
        let _ = self.guard.signal(15);
        let _ = self.guard.wait_timeout(Duration::from_secs(10));
    }
}

/// The guide's ruleset ("Redis sentinel-aware load balancing"), as written there.
const GUIDE: &str = "option tcp-check\n    tcp-check connect\n    tcp-check send \"PING\\r\\n\"\n    tcp-check expect string +PONG\n    tcp-check send \"INFO replication\\r\\n\"\n    tcp-check expect string role:master\n    tcp-check send \"QUIT\\r\\n\"\n    tcp-check expect string +OK";

/// The guide's short form ("TCP Health Checks").
const PING: &str = "option tcp-check\n    tcp-check connect\n    tcp-check send \"PING\\r\\n\"\n    tcp-check expect string +PONG";

fn backend(name: &str, lines: &str, addr: SocketAddr, up: bool) -> Backend {
    Backend {
        name: name.into(),
        lines: format!(
            "    mode tcp\n    {lines}\n    server s1 {addr} check inter 200ms fall 1 rise 1\n"
        ),
        want: up_down(up),
    }
}

#[test]
fn guide_redis_checks_against_a_real_master_and_replica_match_haproxy() {
    let Some(master) = Redis::start("master", None) else {
        return;
    };
    let Some(replica) = Redis::start("replica", Some(master.addr)) else {
        return;
    };
    // The replica knows it is one from the start (its link may still be coming up).
    let info = ask(replica.addr, "INFO replication\r\n");
    assert!(info.contains("role:slave"), "{info}");
    let (m, r) = (master.addr, replica.addr);
    let backends = vec![
        backend("guide_master", GUIDE, m, true),
        backend("guide_replica", GUIDE, r, false),
        backend("ping_master", PING, m, true),
        backend("ping_replica", PING, r, true),
        backend("redis_check_master", "option redis-check", m, true),
        backend("redis_check_replica", "option redis-check", r, true),
    ];
    let head = |front: SocketAddr| {
        format!("{DEFAULTS}frontend fe\n    bind {front}\n    default_backend none\nbackend none\n    server none 127.0.0.1:9\n")
    };
    let fakes = BTreeMap::new();
    let got = Diff {
        name: "hc-redis",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: show,
        min_checks: 0,
    }
    .compare();
    let down = got
        .lines
        .iter()
        .find(|l| l.contains("Server guide_replica/s1 is DOWN"))
        .cloned()
        .unwrap_or_default();
    // A replica answers `role:slave`: the rule waits for `role:master` until `timeout check`.
    assert!(
        down.contains(
            "reason: Layer7 timeout, info: \" at step 5 of tcp-check (expect string 'role:master')\""
        ),
        "{down}"
    );
    let last_chk = |b: &str| got.stat[&format!("{b}/s1")][6].clone();
    assert_eq!(last_chk("redis_check_master"), "Redis server is ok");
    assert_eq!(last_chk("guide_master"), "(tcp-check)");
    drop(replica);
    drop(master);
}
