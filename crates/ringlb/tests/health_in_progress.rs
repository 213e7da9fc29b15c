//! The in-progress marker of health checks (issue #5): while a check runs, haproxy 2.6 prints
//! `* ` before the last status in `show stat`'s `check_status` (`* INI` before the first
//! result), resets `check_code` to 0 and `last_chk` to nothing, keeps `check_duration`, and
//! sets `CHK_ST_INPROGRESS` (1) in `show servers state`'s `srv_check_state`. Servers that
//! answer an `option httpchk` after 1.2 s, polled during and after their checks, the same way
//! for ringlb and haproxy 2.6. Agent checks are marked the same way in `agent_status`
//! (`agent_code` kept: `* L7OK|0`) and `srv_agent_state`: agents answering `up 75%` and
//! `down` after 1.2 s.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use health_support::{read_http_request, start, Fake, Proxy};

/// How long each server takes to answer.
const SLOW: Duration = Duration::from_millis(1200);

/// A server answering `response` `SLOW` after each request.
fn slow(response: &'static [u8]) -> Fake {
    Fake::start(move |mut c, seen| {
        let req = read_http_request(&mut c);
        if req.is_empty() {
            return;
        }
        seen.lock().unwrap().push(req);
        std::thread::sleep(SLOW);
        let _ = c.write_all(response);
    })
}

const COLUMNS: &[&str] = &[
    "check_status",
    "check_code",
    "check_duration",
    "last_chk",
    "check_desc",
];

/// What one proxy showed of each server: the distinct successive `show stat` check columns
/// (a duration shown as `D`: it varies) from the first in-progress one, and the
/// `srv_check_state` values seen.
type Seen = BTreeMap<String, (Vec<String>, BTreeSet<String>)>;

fn run(proxy: Proxy, ok: SocketAddr, bad: SocketAddr) -> Seen {
    let cfg = |front: SocketAddr, dir: &std::path::Path| {
        format!(
            "{}defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 4s\nfrontend fe\n    bind {front}\n    default_backend ok\nbackend ok\n    option httpchk\n    server s1 {ok} check inter 1500ms\nbackend bad\n    option httpchk\n    server s1 {bad} check inter 1500ms\n",
            health_support::global(dir, "")
        )
    };
    let (_dir, p) = start(proxy, "hc-inprogress", &cfg);
    let mut seen: Seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Until both servers were seen in their second check (`* ` before a real result).
    let done = |seen: &Seen| {
        ["ok/s1", "bad/s1"].iter().all(|k| {
            seen.get(*k).is_some_and(|(v, _)| {
                v.iter()
                    .any(|r| r.starts_with("* L7") && !r.starts_with("* INI"))
            })
        })
    };
    while !done(&seen) && Instant::now() < deadline {
        let dur = COLUMNS.iter().position(|c| *c == "check_duration");
        for (server, mut vals) in p.stat_once(COLUMNS) {
            if !server.ends_with("/s1") {
                continue;
            }
            if let Some(v) = dur.and_then(|i| vals.get_mut(i)).filter(|v| !v.is_empty()) {
                *v = "D".to_string();
            }
            let row = vals.join("|");
            let e = seen.entry(server).or_default();
            // Only from the first check on (before it, both show `INI`).
            if (e.0.is_empty() && !row.starts_with("* ")) || e.0.last() == Some(&row) {
                continue;
            }
            e.0.push(row);
        }
        for l in p.cli("show servers state").lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() > 13 && f[3] == "s1" {
                let e = seen.entry(format!("{}/s1", f[1])).or_default();
                e.1.insert(f[13].to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(done(&seen), "{proxy:?}: no second check seen: {seen:?}");
    seen
}

/// An agent answering `reply` `SLOW` after each connection.
fn slow_agent(reply: &'static [u8]) -> Fake {
    Fake::start(move |mut c, seen| {
        seen.lock().unwrap().push(Vec::new());
        std::thread::sleep(SLOW);
        let _ = c.write_all(reply);
    })
}

const AGENT_COLUMNS: &[&str] = &[
    "agent_status",
    "agent_code",
    "agent_duration",
    "last_agt",
    "agent_desc",
];

/// As [`run`], for agent checks: the agent columns of `show stat` and `srv_agent_state`.
fn run_agents(proxy: Proxy, up: SocketAddr, down: SocketAddr) -> Seen {
    let cfg = |front: SocketAddr, dir: &std::path::Path| {
        format!(
            "{}defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 4s\nfrontend fe\n    bind {front}\n    default_backend up\nbackend up\n    server s1 {front} weight 100 agent-check agent-addr {} agent-port {} agent-inter 1500ms\nbackend down\n    server s1 {front} weight 100 agent-check agent-addr {} agent-port {} agent-inter 1500ms\n",
            health_support::global(dir, ""),
            up.ip(),
            up.port(),
            down.ip(),
            down.port(),
        )
    };
    let (_dir, p) = start(proxy, "agent-inprogress", &cfg);
    let mut seen: Seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = |seen: &Seen| {
        ["up/s1", "down/s1"].iter().all(|k| {
            seen.get(*k).is_some_and(|(v, _)| {
                v.iter()
                    .any(|r| r.starts_with("* L7") && !r.starts_with("* INI"))
            })
        })
    };
    while !done(&seen) && Instant::now() < deadline {
        let dur = AGENT_COLUMNS.iter().position(|c| *c == "agent_duration");
        for (server, mut vals) in p.stat_once(AGENT_COLUMNS) {
            if !server.ends_with("/s1") {
                continue;
            }
            if let Some(v) = dur.and_then(|i| vals.get_mut(i)).filter(|v| !v.is_empty()) {
                *v = "D".to_string();
            }
            let row = vals.join("|");
            let e = seen.entry(server).or_default();
            if (e.0.is_empty() && !row.starts_with("* ")) || e.0.last() == Some(&row) {
                continue;
            }
            e.0.push(row);
        }
        for l in p.cli("show servers state").lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() > 14 && f[3] == "s1" {
                let e = seen.entry(format!("{}/s1", f[1])).or_default();
                e.1.insert(f[14].to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        done(&seen),
        "{proxy:?}: no second agent check seen: {seen:?}"
    );
    seen
}

#[test]
fn agent_status_marks_agent_checks_in_progress_as_haproxy() {
    let up = slow_agent(b"up 75%\n");
    let down = slow_agent(b"down\n");
    let mut runs: Vec<(Proxy, Seen)> = Proxy::all()
        .into_iter()
        .map(|p| (p, run_agents(p, up.addr, down.addr)))
        .collect();
    let (_, got) = runs.pop().unwrap();
    // Recorded from haproxy 2.6: the agent's code stays shown while it runs again.
    let want_up = [
        "* INI||D||Initializing",
        "L7OK|0|D|via agent : up|Layer7 check passed",
        "* L7OK|0|D||Layer7 check passed",
    ];
    let want_down = [
        "* INI||D||Initializing",
        "L7STS|0|D|via agent : down|Layer7 wrong status",
        "* L7STS|0|D||Layer7 wrong status",
    ];
    for (k, want) in [("up/s1", want_up), ("down/s1", want_down)] {
        let v: Vec<String> = got[k].0.iter().take(3).cloned().collect();
        let want: Vec<String> = want.iter().map(ToString::to_string).collect();
        assert_eq!(v, want, "ringlb, {k}");
        // CHK_ST_CONFIGURED | CHK_ST_ENABLED | CHK_ST_AGENT (22), with CHK_ST_INPROGRESS (23).
        let states: BTreeSet<String> = ["22", "23"].iter().map(ToString::to_string).collect();
        assert_eq!(got[k].1, states, "ringlb srv_agent_state, {k}");
    }
    if let Some((_, want)) = runs.pop() {
        for k in ["up/s1", "down/s1"] {
            let g: Vec<&String> = got[k].0.iter().take(3).collect();
            let w: Vec<&String> = want[k].0.iter().take(3).collect();
            assert_eq!(g, w, "{k}: ringlb (left) vs haproxy (right)");
            assert_eq!(got[k].1, want[k].1, "{k} srv_agent_state");
        }
    }
}

#[test]
fn check_status_marks_checks_in_progress_as_haproxy() {
    let ok = slow(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let bad =
        slow(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let mut runs: Vec<(Proxy, Seen)> = Proxy::all()
        .into_iter()
        .map(|p| (p, run(p, ok.addr, bad.addr)))
        .collect();
    let (_, got) = runs.pop().unwrap();
    // The first check, its result, the second check (and maybe its result).
    let want_ok = [
        "* INI||||Initializing",
        "L7OK|200|D||Layer7 check passed",
        "* L7OK|0|D||Layer7 check passed",
    ];
    let want_bad = [
        "* INI||||Initializing",
        "L7STS|503|D|Service Unavailable|Layer7 wrong status",
        "* L7STS|0|D||Layer7 wrong status",
    ];
    for (k, want) in [("ok/s1", want_ok), ("bad/s1", want_bad)] {
        let v: Vec<String> = got[k].0.iter().take(3).cloned().collect();
        let want: Vec<String> = want.iter().map(ToString::to_string).collect();
        assert_eq!(v, want, "ringlb, {k}");
        let states: BTreeSet<String> = ["6", "7"].iter().map(ToString::to_string).collect();
        assert_eq!(got[k].1, states, "ringlb srv_check_state, {k}");
    }
    if let Some((_, want)) = runs.pop() {
        for k in ["ok/s1", "bad/s1"] {
            let g: Vec<&String> = got[k].0.iter().take(3).collect();
            let w: Vec<&String> = want[k].0.iter().take(3).collect();
            assert_eq!(g, w, "{k}: ringlb (left) vs haproxy (right)");
            assert_eq!(got[k].1, want[k].1, "{k} srv_check_state");
        }
    }
}
