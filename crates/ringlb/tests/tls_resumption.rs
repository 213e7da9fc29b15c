//! TLS session resumption through the running binary, differential with haproxy 2.6:
//! `tune.ssl.lifetime` (an older session is not resumed), `tune.ssl.cachesize` (the oldest
//! session is evicted), `no-tls-tickets` (resumption by session id only), and tickets and
//! session ids that resume on every shard (two shards; the `thread` fetch tells which one
//! served each connection). openssl s_client saves a session (`-sess_out`) and offers it
//! again (`-sess_in`); its `New,` / `Reused,` line says what the server did.
//!
//! Ticket keys: ringlb's are made at startup, shared by all shards, and rotated every 6 hours
//! by rustls (the previous key still opens tickets); tickets also carry their issue time
//! and are refused after `tune.ssl.lifetime` (unit tests in crates/tls/src/resume.rs).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, run_bounded, write_config, ChildGuard, Haproxy, Ringlb, TempDir,
    TestCa,
};

const T: Duration = Duration::from_secs(10);
const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n";

fn start(which: &str, cfg: &Path, binds: &[SocketAddr]) -> ChildGuard {
    if which == "haproxy" {
        Haproxy::start(cfg, binds)
    } else {
        Ringlb::start(cfg, binds)
    }
}

/// What one connection did: whether its session was resumed, and the shard that answered.
#[derive(Debug, PartialEq, Eq)]
struct Conn {
    reused: bool,
    thread: Option<String>,
}

/// One request over `version` (`-tls1_2`, `-tls1_3`), saving (`-sess_out`) or offering
/// (`-sess_in`) the session in `sess`.
fn request(front: SocketAddr, version: &str, flag: &str, sess: &Path) -> Conn {
    let script = format!(
        "printf 'GET / HTTP/1.1\\r\\nHost: resume.example\\r\\nConnection: close\\r\\n\\r\\n' | \\
         openssl s_client -connect 127.0.0.1:{} -servername resume.example {version} -ign_eof {flag} {}",
        front.port(),
        sess.display()
    );
    let out = run_bounded(Command::new("sh").args(["-c", &script]), T).unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    Conn {
        reused: out.lines().any(|l| l.starts_with("Reused,")),
        thread: out
            .lines()
            .find_map(|l| l.strip_prefix("thread="))
            .map(|t| t.trim().to_owned()),
    }
}

fn frontend(name: &str, bind: SocketAddr, pem: &Path, opts: &str) -> String {
    format!(
        "frontend {name}\n    bind {bind} ssl crt {} {opts}\n    http-request return status 200 content-type text/plain lf-string \"thread=%[thread]\\n\"\n",
        pem.display()
    )
}

#[test]
fn tickets_and_session_ids_resume_on_every_shard() {
    let dir = TempDir::new("tls-resume-shards");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("resume.example", &dir.join("site.pem"));
    let (tickets, ids) = (free_addr(), free_addr());
    let cfg = format!(
        "global\n    nbthread 2\n{DEFAULTS}{}{}",
        frontend("tickets", tickets, &site.pem, ""),
        frontend("ids", ids, &site.pem, "no-tls-tickets"),
    );
    let path = write_config(&dir, &cfg);
    let mut which_list = vec!["ringlb"];
    if haproxy_available() {
        which_list.push("haproxy");
    }
    for which in which_list {
        let _proxy = start(which, &path, &[tickets, ids]);
        // TLS 1.3 stateful sessions are single-use (RFC 8446 §8.1): session ids are checked
        // over TLS 1.2 only.
        for (front, version) in [(tickets, "-tls1_3"), (tickets, "-tls1_2"), (ids, "-tls1_2")] {
            let sess = dir.join(&format!("{which}-{}{version}.sess", front.port()));
            let first = request(front, version, "-sess_out", &sess);
            assert!(!first.reused, "{which} {version}: {first:?}");
            let mut threads = BTreeSet::new();
            // Enough connections for SO_REUSEPORT to spread them over both shards (each one
            // misses a given shard with probability 1/2), bounded.
            for _ in 0..24 {
                let c = request(front, version, "-sess_in", &sess);
                assert!(
                    c.reused,
                    "{which} {version} on {front}: a session from thread {:?} was not resumed on thread {:?}",
                    first.thread, c.thread
                );
                threads.insert(c.thread.unwrap());
                if threads.len() == 2 {
                    break;
                }
            }
            assert_eq!(
                threads.into_iter().collect::<Vec<_>>(),
                ["0", "1"],
                "{which} {version} on {front}: resumed on both shards"
            );
        }
    }
}

#[test]
fn sessions_older_than_tune_ssl_lifetime_are_not_resumed() {
    let dir = TempDir::new("tls-resume-lifetime");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("resume.example", &dir.join("site.pem"));
    let (tickets, ids) = (free_addr(), free_addr());
    let lifetime = Duration::from_secs(2);
    let cfg = format!(
        "global\n    tune.ssl.lifetime {}\n{DEFAULTS}{}{}",
        lifetime.as_secs(),
        frontend("tickets", tickets, &site.pem, ""),
        frontend("ids", ids, &site.pem, "no-tls-tickets"),
    );
    let path = write_config(&dir, &cfg);
    let mut seen = Vec::new();
    let mut which_list = vec!["ringlb"];
    if haproxy_available() {
        which_list.push("haproxy");
    }
    for which in which_list {
        let _proxy = start(which, &path, &[tickets, ids]);
        let mut got = Vec::new();
        for (front, version) in [(tickets, "-tls1_3"), (tickets, "-tls1_2"), (ids, "-tls1_2")] {
            let sess = dir.join(&format!("{which}-{}{version}.sess", front.port()));
            let made = Instant::now();
            request(front, version, "-sess_out", &sess);
            // A fresh copy each time: a TLS 1.3 resumption hands out a new ticket.
            let fresh = request(front, version, "-sess_in", &sess).reused;
            // The session's age is what is tested: wait out the lifetime, plus a margin for
            // second-granular clocks.
            let old_at = made + lifetime + Duration::from_millis(1100);
            std::thread::sleep(old_at.saturating_duration_since(Instant::now()));
            let old = request(front, version, "-sess_in", &sess).reused;
            got.push(format!("{version} fresh reused {fresh}, old reused {old}"));
        }
        eprintln!("{which}: {got:#?}");
        assert!(got
            .iter()
            .all(|g| g.ends_with("fresh reused true, old reused false")));
        seen.push(got);
    }
    if let [r, h] = &seen[..] {
        assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
    }
}

#[test]
fn tune_ssl_cachesize_evicts_the_oldest_session() {
    let dir = TempDir::new("tls-resume-cachesize");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("resume.example", &dir.join("site.pem"));
    let ids = free_addr();
    let cfg = format!(
        "global\n    nbthread 1\n    tune.ssl.cachesize 2\n{DEFAULTS}{}",
        frontend("ids", ids, &site.pem, "no-tls-tickets"),
    );
    let path = write_config(&dir, &cfg);
    let mut seen = Vec::new();
    let mut which_list = vec!["ringlb"];
    if haproxy_available() {
        which_list.push("haproxy");
    }
    for which in which_list {
        let _proxy = start(which, &path, &[ids]);
        let sess: Vec<_> = (0..3)
            .map(|i| dir.join(&format!("{which}-{i}.sess")))
            .collect();
        for s in &sess {
            request(ids, "-tls1_2", "-sess_out", s);
        }
        // Newest first: a session that is not resumed makes a new one, evicting another.
        let got: Vec<bool> = sess
            .iter()
            .rev()
            .map(|s| request(ids, "-tls1_2", "-sess_in", s).reused)
            .collect();
        eprintln!("{which}: {got:?}");
        assert_eq!(
            got,
            [true, true, false],
            "{which}: the first session was evicted"
        );
        seen.push(got);
    }
    if let [r, h] = &seen[..] {
        assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
    }
}

/// A base64 ticket key of `len` bytes (48 or 80) from `seed`.
fn ticket_key(seed: u8, len: usize) -> String {
    let out = run_bounded(
        Command::new("sh").args([
            "-c",
            &format!(
                "head -c {len} /dev/zero | tr '\\0' '\\{:o}' | openssl base64 -A",
                seed
            ),
        ]),
        T,
    )
    .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// `tls-ticket-keys`: two ringlb processes given one keys file resume each other's tickets
/// (one without the file does not), and `show tls-keys` / `set ssl tls-key` print and rotate
/// the keys as haproxy 2.6 does (on a `level user` socket, as haproxy allows): a ticket still
/// opens after one rotation, not after two.
#[test]
fn tls_ticket_keys_are_shared_between_processes_and_rotate_like_haproxy() {
    let dir = TempDir::new("tls-ticket-keys");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("resume.example", &dir.join("site.pem"));
    let keys = dir.join("ticket.keys");
    let initial: Vec<String> = (1..=4).map(|i| ticket_key(i, 80)).collect();
    std::fs::write(&keys, initial.join("\n") + "\n").unwrap();
    let keyed = |bind: SocketAddr, sock: &Path, with_keys: bool| {
        let opts = if with_keys {
            format!("tls-ticket-keys {}", keys.display())
        } else {
            String::new()
        };
        format!(
            "global\n    stats socket {} level user\n{DEFAULTS}{}",
            sock.display(),
            frontend("fe", bind, &site.pem, &opts)
        )
    };
    // Two ringlb processes with the file, one without.
    let (a, b, c) = (free_addr(), free_addr(), free_addr());
    let socks: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| dir.join(&format!("{n}.sock")))
        .collect();
    let cfg_a = dir.join("a.cfg");
    std::fs::write(&cfg_a, keyed(a, &socks[0], true)).unwrap();
    let cfg_b = dir.join("b.cfg");
    std::fs::write(&cfg_b, keyed(b, &socks[1], true)).unwrap();
    let cfg_c = dir.join("c.cfg");
    std::fs::write(&cfg_c, keyed(c, &socks[2], false)).unwrap();
    {
        let _a = Ringlb::start(&cfg_a, &[a]);
        let _b = Ringlb::start(&cfg_b, &[b]);
        let _c = Ringlb::start(&cfg_c, &[c]);
        for version in ["-tls1_2", "-tls1_3"] {
            let sess = dir.join(&format!("a{version}.sess"));
            assert!(!request(a, version, "-sess_out", &sess).reused);
            assert!(
                request(b, version, "-sess_in", &sess).reused,
                "{version}: b opens a's ticket"
            );
            assert!(
                !request(c, version, "-sess_in", &sess).reused,
                "{version}: c has other keys"
            );
        }
    }
    // Differential: the runtime commands and rotation, ringlb vs haproxy on one config.
    let front = free_addr();
    let sock = dir.join("cmp.sock");
    let cfg = write_config(&dir, &keyed(front, &sock, true));
    let (k5, k6) = (ticket_key(5, 80), ticket_key(6, 80));
    let mut seen = Vec::new();
    let mut which_list = vec!["ringlb"];
    if haproxy_available() {
        which_list.push("haproxy");
    }
    for which in which_list {
        let _proxy = start(which, &cfg, &[front]);
        let cmd = |c: &str| ringlb_testkit::runtime::runtime_command(&sock, c).unwrap();
        let mut got = vec![
            cmd("show tls-keys"),
            cmd("show tls-keys *"),
            cmd("show tls-keys #1"),
            cmd(&format!("set ssl tls-key #0 {}", ticket_key(7, 48))),
            cmd("set ssl tls-key #0 !!!!"),
            cmd("set ssl tls-key #0"),
        ];
        let sess = dir.join(&format!("{which}-rotate.sess"));
        request(front, "-tls1_2", "-sess_out", &sess);
        got.push(cmd(&format!("set ssl tls-key #0 {k5}")));
        got.push(format!(
            "after one rotation: reused {}",
            request(front, "-tls1_2", "-sess_in", &sess).reused
        ));
        got.push(cmd(&format!("set ssl tls-key {} {k6}", keys.display())));
        got.push(format!(
            "after two rotations: reused {}",
            request(front, "-tls1_2", "-sess_in", &sess).reused
        ));
        got.push(cmd("show tls-keys #0"));
        eprintln!("{which}: {got:#?}");
        seen.push(got);
    }
    let r = &seen[0];
    assert!(
        r[1].contains(&format!(
            "0.0 {}\n0.1 {}\n0.2 {}\n",
            initial[1], initial[2], initial[3]
        )),
        "{}",
        r[1]
    );
    assert!(r[7].ends_with("reused true"), "{r:?}");
    assert!(r[9].ends_with("reused false"), "{r:?}");
    assert!(r[10].contains(&format!("0.2 {k6}")), "{}", r[10]);
    if let [r, h] = &seen[..] {
        assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
    }
}
