//! Maps and ACL files changed on the runtime socket (issue #10): the real `ringlb` binary on
//! two shards routes by a `map()` converter and denies by an `acl ... -f FILE`; `add|set|del|
//! clear map` and `add|del|clear acl` change what every shard does, on new connections (which
//! land on both shards). Texts are compared with haproxy 2.6's on the same commands
//! (`fixtures/record_patterns.sh` → `fixtures/patterns_cli.txt`, pointers masked).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ringlb_testkit::{free_addr, http_get, Origins, Ringlb, TempDir};

fn cli(sock: &Path, cmd: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Which origin answered each of `n` requests for `host`, each on a new connection; `deny`
/// for a 403.
fn answers(front: SocketAddr, host: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = http_get(front, "/", &[("Host", host)]).unwrap();
            match r.status {
                403 => "deny".to_string(),
                200 => r.header("x-origin").unwrap_or("?").to_string(),
                s => format!("status {s}"),
            }
        })
        .collect()
}

fn all(v: &[String], want: &str) -> bool {
    v.iter().all(|a| a == want)
}

/// `0x...` entry addresses replaced by `PTR` (haproxy prints pointers).
fn mask(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once(' ') {
            Some((p, rest)) if p.starts_with("0x") => format!("PTR {rest}\n"),
            _ => format!("{l}\n"),
        })
        .collect()
}

#[test]
fn map_and_acl_changes_on_the_socket_reach_every_shard() {
    let dir = TempDir::new("runtime-patterns");
    let origins = Origins::start(3);
    let front = free_addr();
    let map = dir.join("hosts.map");
    let acl = dir.join("blocked.acl");
    std::fs::write(&map, "a.example be_a\nb.example be_b\n").unwrap();
    std::fs::write(&acl, "10.0.0.0/8\n192.168.1.1\n").unwrap();
    let sock = dir.join("admin.sock");
    let (m, a) = (map.display().to_string(), acl.display().to_string());
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {} level admin\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    acl blocked src -f {a}\n    http-request deny if blocked\n    use_backend %[req.hdr(host),lower,map({m},be_default)]\nbackend be_a\n    server a {}\nbackend be_b\n    server b {}\nbackend be_default\n    server d {}\n",
        sock.display(),
        origins.get(0).addr(),
        origins.get(1).addr(),
        origins.get(2).addr(),
    );
    let path = ringlb_testkit::write_config(&dir, &cfg);
    let _p = Ringlb::start(&path, &[front]);
    // Errors and a change undone, as haproxy 2.6 prints them (its file names replaced by ours).
    let fixture = include_str!("fixtures/patterns_cli.txt")
        .replace("@MAP@", &m)
        .replace("@ACL@", &a);
    for (cmd, want) in recorded(&fixture) {
        assert_eq!(mask(&cli(&sock, &cmd)), mask(&want), "{cmd}");
    }

    assert!(all(&answers(front, "a.example", 4), "s1"));
    assert!(all(&answers(front, "c.example", 4), "s3"));
    // A new key routes at once on every shard.
    assert_eq!(cli(&sock, &format!("add map {m} c.example be_b")), "\n");
    let got = answers(front, "c.example", 8);
    assert!(all(&got, "s2"), "after add map: {got:?}");
    assert_eq!(cli(&sock, &format!("set map {m} c.example be_a")), "\n");
    let got = answers(front, "c.example", 8);
    assert!(all(&got, "s1"), "after set map: {got:?}");
    assert_eq!(
        mask(&cli(&sock, &format!("show map {m}"))),
        "PTR a.example be_a\nPTR b.example be_b\nPTR c.example be_a\n\n"
    );
    assert_eq!(cli(&sock, &format!("del map {m} c.example")), "\n");
    let got = answers(front, "c.example", 8);
    assert!(all(&got, "s3"), "after del map: {got:?}");
    // `#<ref>` as printed by `show map`.
    let shown = cli(&sock, &format!("show map {m}"));
    let b_ref = shown.lines().nth(1).unwrap().split(' ').next().unwrap();
    assert_eq!(cli(&sock, &format!("set map #1 #{b_ref} be_a")), "\n");
    assert!(all(&answers(front, "b.example", 4), "s1"));
    assert_eq!(
        cli(&sock, "show map"),
        format!("# id (file) description\n1 ({m}) pattern loaded from file '{m}' used by map at file '{}' line 13. curr_ver=0 next_ver=0 entry_cnt=2\n\n", path.display())
    );
    assert_eq!(cli(&sock, &format!("clear map {m}")), "\n");
    assert!(all(&answers(front, "a.example", 4), "s3"));

    // ACL patterns from a file: the client (127.0.0.1) becomes blocked, then not.
    assert_eq!(cli(&sock, &format!("add acl {a} 127.0.0.0/8")), "\n");
    let got = answers(front, "a.example", 8);
    assert!(all(&got, "deny"), "after add acl: {got:?}");
    assert_eq!(
        mask(&cli(&sock, &format!("show acl {a}"))),
        "PTR 10.0.0.0/8\nPTR 192.168.1.1\nPTR 127.0.0.0/8\n\n"
    );
    assert_eq!(cli(&sock, &format!("del acl {a} 127.0.0.0/8")), "\n");
    let got = answers(front, "a.example", 8);
    assert!(all(&got, "s3"), "after del acl: {got:?}");
    assert_eq!(cli(&sock, "add acl #0 127.0.0.1"), "\n");
    assert!(all(&answers(front, "a.example", 4), "deny"));
    assert_eq!(cli(&sock, &format!("clear acl {a}")), "\n");
    assert!(all(&answers(front, "a.example", 4), "s3"));
    assert_eq!(cli(&sock, &format!("show acl {a}")), "\n");
}

/// `(command, answer)` pairs of a recording: a `> command` line, then the answer's lines.
fn recorded(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        match line.strip_prefix("> ") {
            Some(cmd) => out.push((cmd.trim_end().to_string(), String::new())),
            None => {
                if let Some((_, answer)) = out.last_mut() {
                    answer.push_str(line);
                }
            }
        }
    }
    out
}
