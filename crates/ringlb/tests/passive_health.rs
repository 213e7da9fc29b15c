//! `observe layer4|layer7` with `error-limit` and `on-error` (passive health, issue #5): errors
//! seen on live traffic by a worker shard reach the control shard, which applies `on-error` to
//! the server's health check and broadcasts the result. Compared with haproxy 2.6: the same
//! config and the same requests give the same servers and the same state-change lines.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, wait_until, ChildGuard, Conn, Haproxy, Origin, Ringlb, StatCsv,
    TempDir,
};

/// Between two requests: time for a report to reach the control shard (its 20 ms tick) and
/// for the new state to reach the shards.
const GAP: Duration = Duration::from_millis(120);

fn config(front: SocketAddr, s1: SocketAddr, s2: SocketAddr, observe: &str) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 500ms\n    timeout client 5s\n    timeout server 5s\n    timeout check 500ms\n\
         frontend fe\n    bind {front}\n    default_backend be\n\
         backend be\n    balance roundrobin\n    option httpchk GET /health\n\
         \x20   server s1 {s1} check inter 30s {observe}\n\
         \x20   server s2 {s2} check inter 30s\n"
    )
}

/// State-change lines with the pid, durations and the active-session count left out: haproxy
/// logs from inside the request that saw the error (1 session active), ringlb from the
/// control shard (its sessions are the shards' own facts, docs/architecture.md).
fn state_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("Server be/") || l.contains("Health check for server"))
        .map(|l| {
            let text = l.split_once(") : ").map_or(l, |(_, t)| t);
            let text = text.split(", check duration").next().unwrap_or(text);
            match text.split_once(" sessions active") {
                Some((head, tail)) => {
                    let head = head.trim_end_matches(|c: char| c.is_ascii_digit());
                    format!("{head}N sessions active{tail}")
                }
                None => text.to_string(),
            }
        })
        .collect()
}

/// Origins answering `paths`, one request per connection, `GAP` apart; then the state lines.
fn run(p: &ChildGuard, front: SocketAddr, paths: &[&str]) -> (Vec<String>, Vec<String>) {
    // The first health checks ran (servers pass one check at start: "UP" at the top).
    std::thread::sleep(Duration::from_millis(400));
    let seen = paths
        .iter()
        .map(|path| {
            let mut c = Conn::connect(front).unwrap();
            c.set_timeout(Duration::from_secs(5)).unwrap();
            let r = c.get(path).unwrap();
            std::thread::sleep(GAP);
            format!("{} {}", r.header("x-origin").unwrap_or("-"), r.status)
        })
        .collect();
    (seen, state_lines(&p.stderr()))
}

/// Runs `paths` through ringlb (and haproxy, compared); returns ringlb's origin sequence.
fn compare(observe: &str, paths: &[&str], expect_down: bool) -> Vec<String> {
    let dir = TempDir::new("observe");
    let (s1, s2) = (Origin::start("s1"), Origin::start("s2"));
    let rf = free_addr();
    let rpath = dir.join("r.cfg");
    std::fs::write(&rpath, config(rf, s1.addr(), s2.addr(), observe)).unwrap();
    let got = {
        let r = Ringlb::start(&rpath, &[rf]);
        let out = run(&r, rf, paths);
        if expect_down {
            assert!(
                wait_until(Duration::from_secs(2), || r
                    .stderr()
                    .contains("reason: Health analyze")),
                "{}",
                r.stderr()
            );
        }
        out
    };
    if expect_down {
        assert!(
            got.1.iter().any(|l| l
                .starts_with("Server be/s1 is DOWN, reason: Health analyze, info: \"Detected ")),
            "{got:?}"
        );
    }
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return got.0;
    }
    let hf = free_addr();
    let hpath = dir.join("h.cfg");
    std::fs::write(&hpath, config(hf, s1.addr(), s2.addr(), observe)).unwrap();
    let want = {
        let h = Haproxy::start(&hpath, &[hf]);
        run(&h, hf, paths)
    };
    assert_eq!(got, want, "{observe}: ringlb (left) vs haproxy (right)");
    got.0
}

/// `mark-down` after 3 consecutive 500s: s1 leaves the rotation, s2 takes everything.
#[test]
fn layer7_mark_down_matches_haproxy() {
    let seq = compare(
        "observe layer7 error-limit 3 on-error mark-down",
        &["/status/500"; 12],
        true,
    );
    assert!(seq[6..].iter().all(|o| o.starts_with("s2")), "{seq:?}");
}

/// `fail-check` (the default) and `sudden-death`: one simulated failed check per 2 errors; a
/// success (a 404 is a valid status) resets the streak.
#[test]
fn layer7_fail_check_and_sudden_death_match_haproxy() {
    let mut paths = vec!["/status/503"; 6];
    paths.extend(["/status/404"; 4]);
    paths.extend(["/status/502"; 8]);
    let fail_check = compare("observe layer7 error-limit 2", &paths, true);
    let sudden = compare(
        "observe layer7 error-limit 2 on-error sudden-death",
        &paths,
        true,
    );
    // s1 passed its first check (health at the top): fail-check needs three reports to bring
    // it down, sudden-death two, so s1 leaves the rotation earlier.
    let served_by_s1 = |seq: &[String]| seq.iter().filter(|o| o.starts_with("s1")).count();
    assert!(
        served_by_s1(&sudden) < served_by_s1(&fail_check),
        "{fail_check:?} vs {sudden:?}"
    );
}

/// `layer4` ignores HTTP statuses: 500s keep s1 in the rotation.
#[test]
fn layer4_ignores_http_errors() {
    let seq = compare(
        "observe layer4 error-limit 1 on-error mark-down",
        &["/status/500"; 8],
        false,
    );
    assert_eq!(
        seq.iter().filter(|o| o.starts_with("s1")).count(),
        4,
        "{seq:?}"
    );
}

/// `layer4`: connection failures count. s1's traffic port refuses connections while its
/// check (`port`) passes; two refused connections mark it DOWN (`option redispatch` sends the
/// failed requests to s2).
#[test]
fn layer4_refused_connections_mark_down_as_haproxy() {
    let dir = TempDir::new("observe-l4");
    let (s1, s2) = (Origin::start("s1"), Origin::start("s2"));
    let dead = free_addr();
    let cfg = |front: SocketAddr| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 500ms\n    timeout client 5s\n    timeout server 5s\n    timeout check 500ms\n    retries 1\n    option redispatch\n\
             frontend fe\n    bind {front}\n    default_backend be\n\
             backend be\n    balance roundrobin\n\
             \x20   server s1 {dead} check port {} inter 30s observe layer4 error-limit 2 on-error mark-down\n\
             \x20   server s2 {} check inter 30s\n",
            s1.addr().port(),
            s2.addr()
        )
    };
    let paths = ["/"; 6];
    let rf = free_addr();
    let rpath = dir.join("r.cfg");
    std::fs::write(&rpath, cfg(rf)).unwrap();
    let got = {
        let r = Ringlb::start(&rpath, &[rf]);
        run(&r, rf, &paths)
    };
    assert!(got.0.iter().all(|o| o.starts_with("s2 200")), "{got:?}");
    assert!(
        got.1.iter().any(|l| l.starts_with(
            "Server be/s1 is DOWN, reason: Health analyze, info: \"Detected 2 consecutive errors, last one was: L4 unsuccessful connection\""
        )),
        "{got:?}"
    );
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let hf = free_addr();
    let hpath = dir.join("h.cfg");
    std::fs::write(&hpath, cfg(hf)).unwrap();
    let want = {
        let h = Haproxy::start(&hpath, &[hf]);
        run(&h, hf, &paths)
    };
    assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
}

/// HTTP/2 clients' requests are observed as HTTP/1 ones: three 500s from s1 mark it DOWN.
#[test]
fn layer7_errors_over_h2_mark_down() {
    let dir = TempDir::new("observe-h2");
    let (s1, s2) = (Origin::start("s1"), Origin::start("s2"));
    let front = free_addr();
    let cfg = config(
        front,
        s1.addr(),
        s2.addr(),
        "observe layer7 error-limit 3 on-error mark-down",
    )
    .replace(&format!("bind {front}"), &format!("bind {front} proto h2"));
    let path = dir.join("r.cfg");
    std::fs::write(&path, cfg).unwrap();
    let r = Ringlb::start(&path, &[front]);
    std::thread::sleep(Duration::from_millis(400));
    let url = format!("http://{front}/status/500");
    let mut origins = Vec::new();
    for _ in 0..10 {
        let out = ringlb_testkit::curl(
            &[
                "--http2-prior-knowledge",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &url,
            ],
            Duration::from_secs(5),
        )
        .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        let o = head
            .lines()
            .find_map(|l| l.strip_prefix("x-origin: "))
            .unwrap_or("-")
            .trim()
            .to_string();
        origins.push(o);
        std::thread::sleep(GAP);
    }
    assert!(
        wait_until(Duration::from_secs(2), || r
            .stderr()
            .contains("Server be/s1 is DOWN, reason: Health analyze")),
        "{}",
        r.stderr()
    );
    assert!(origins[6..].iter().all(|o| o == "s2"), "{origins:?}");
}

/// `show stat`'s `hanafail`: one per `on-error` event, summed over the shards.
#[test]
fn hanafail_counts_on_error_events() {
    use std::io::{Read, Write};
    let dir = TempDir::new("observe-stat");
    let (s1, s2) = (Origin::start("s1"), Origin::start("s2"));
    let front = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = config(
        front,
        s1.addr(),
        s2.addr(),
        "observe layer7 error-limit 2 on-error fastinter",
    )
    .replace(
        "global\n    nbthread 1\n",
        &format!(
            "global\n    nbthread 1\n    stats socket {} level admin\n",
            sock.display()
        ),
    );
    let path = dir.join("r.cfg");
    std::fs::write(&path, cfg).unwrap();
    let r = Ringlb::start(&path, &[front]);
    // s1 gets 4 of 8 requests: two streaks of 2 errors, two `fastinter` events (s1 stays UP).
    let (seen, _) = run(&r, front, &["/status/500"; 8]);
    assert_eq!(
        seen.iter().filter(|o| o.starts_with("s1")).count(),
        4,
        "{seen:?}"
    );
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"show stat\n").unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let stat = StatCsv::parse(&out);
    let field =
        |srv: &str| -> String { stat.get("be", srv, "hanafail").unwrap_or("?").to_string() };
    assert_eq!(field("s1"), "2", "{out}");
    assert_eq!(field("s2"), "", "no observe, no hanafail: {out}");
}
