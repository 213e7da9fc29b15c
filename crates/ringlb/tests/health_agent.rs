//! `agent-check` replies (issue #5), the real `ringlb` binary against haproxy 2.6 on the same
//! config: each backend's agent answers one fixed reply (`up`, `down`, `stopped`, `fail`,
//! `maint`, `drain`, `ready`, weights, `maxconn:`, combinations, nonsense, nothing); the
//! state-change log lines, `show servers state` and `show stat` (status, weight, maxconn,
//! check and agent columns) must agree.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use health_support::{show, Backend, Diff, Fake};

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n";

/// (backend, the agent's reply, the status `show stat` ends with: the servers have no health
/// check of their own, so a running one is `no check`).
const REPLIES: &[(&str, &str, &str)] = &[
    ("up", "up\n", "no check"),
    ("down", "down\n", "DOWN (agent)"),
    ("down_why", "down # disk full\n", "DOWN (agent)"),
    ("stopped", "stopped\n", "DOWN (agent)"),
    ("fail", "fail # broken\n", "DOWN (agent)"),
    ("maint", "maint\n", "MAINT"),
    ("maint_upper", "MAINT\n", "MAINT"),
    ("drain", "drain\n", "DRAIN (agent)"),
    ("ready", "ready\n", "no check"),
    ("half", "50%\n", "no check"),
    ("zero", "0%\n", "no check"),
    ("more", "150%\n", "no check"),
    ("drain_weight", "75% drain\n", "DRAIN (agent)"),
    ("maxconn", "maxconn:30\n", "no check"),
    ("combined", "up 50% maxconn:10\n", "no check"),
    ("commas", "down, 20%\n", "DOWN (agent)"),
    ("ready_up", "ready up 100%\n", "no check"),
    ("bogus", "bogus\n", "no check"),
    ("number", "30\n", "no check"),
    ("empty_line", "\n", "no check"),
    ("crlf", "drain\r\n", "DRAIN (agent)"),
    ("silent", "", "no check"),
    ("maint_weight", "maint 50%\n", "MAINT"),
    ("down_drain", "down drain\n", "DOWN (agent)"),
    ("up_maint", "up maint\n", "MAINT"),
    ("absolute", "7\n", "no check"),
    ("garbage_weight", "50%x\n", "no check"),
    ("maxconn_bad", "maxconn:x\n", "no check"),
    ("tabs", "drain\t50%\n", "DRAIN (agent)"),
];

#[test]
fn agent_replies_set_state_weight_and_maxconn_as_haproxy() {
    let web = Fake::http(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let fakes: BTreeMap<String, Fake> = REPLIES
        .iter()
        .map(|(name, reply, _)| {
            (
                name.to_string(),
                // haproxy's agent check lasts until the agent closes: hang up at once
                // (but wait for `agent-send` where there is one) so that few are in progress
                // when the stats are read.
                Fake::banner(
                    reply.as_bytes(),
                    Duration::from_millis(if *name == "up" { 500 } else { 1 }),
                    Duration::from_millis(1),
                ),
            )
        })
        .collect();
    let backends: Vec<Backend> = REPLIES
        .iter()
        .map(|(name, _, want)| Backend {
            name: (*name).into(),
            lines: format!(
                "    server s1 {} weight 10 agent-check agent-port {} agent-inter 300ms{}\n",
                web.addr,
                fakes[*name].addr.port(),
                if *name == "up" {
                    " agent-send \"hello\\n\""
                } else {
                    ""
                }
            ),
            want: (*want).into(),
        })
        .collect();
    let head = |front: SocketAddr| {
        format!("{DEFAULTS}frontend fe\n    bind {front}\n    default_backend up\n")
    };
    let got = Diff {
        name: "hc-agent",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: show,
        min_checks: 3,
    }
    .compare();
    assert_eq!(got.requests["up"], r"hello\n");
    let weight = |b: &str| got.stat[&format!("{b}/s1")][1].clone();
    assert_eq!(weight("half"), "5");
    assert_eq!(weight("up"), "10");
}

/// An agent whose reply the test changes, step by step: `maint 50%` (maintenance; the new
/// weight waits), `ready` (back, at the new weight), `drain`, `25%` (weight changed while
/// drained), `ready`, `up 100%`. At each step, once the proxy shows the state the step is
/// for, `show stat` weight and status and `show servers state` (op, admin, weights) must
/// agree with haproxy 2.6.
#[test]
fn agent_reply_sequences_change_weights_as_haproxy() {
    use std::sync::{Arc, Mutex};
    let web = Fake::http(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let reply = Arc::new(Mutex::new(String::from("up\n")));
    let r = reply.clone();
    let agent = Fake::start(move |mut c, _| {
        use std::io::Write;
        let text = r.lock().unwrap().clone();
        let _ = c.write_all(text.as_bytes());
    });
    let steps: &[(&str, &str)] = &[
        ("maint 50%\n", "MAINT"),
        ("ready\n", "no check"),
        ("drain\n", "DRAIN (agent)"),
        ("25%\n", "DRAIN (agent)"),
        ("ready\n", "no check"),
        ("up 100%\n", "no check"),
    ];
    let run = |proxy: health_support::Proxy| -> Vec<String> {
        *reply.lock().unwrap() = "up\n".into();
        let cfg = |front: SocketAddr, dir: &std::path::Path| {
            format!(
                "{}{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {} weight 10 agent-check agent-port {} agent-inter 100ms\n    server s2 {} weight 10\n",
                health_support::global(dir, ""),
                web.addr,
                agent.addr.port(),
                web.addr
            )
        };
        let (_dir, p) = health_support::start(proxy, "hc-agent-seq", &cfg);
        let mut seen = Vec::new();
        for (text, status) in steps {
            *reply.lock().unwrap() = (*text).into();
            let reached = ringlb_testkit::wait_until(health_support::WAIT, || {
                p.stat(&["status"])
                    .get("be/s1")
                    .is_some_and(|v| v[0] == *status)
            });
            assert!(reached, "{proxy:?}: {text:?} never gave {status}");
            // A few more replies: nothing else may change.
            std::thread::sleep(Duration::from_millis(350));
            let stat = p.stat(&["status", "weight"]);
            let state: Vec<String> = p
                .servers_state()
                .iter()
                .map(|row| row.split(' ').skip(3).take(6).collect::<Vec<_>>().join(" "))
                .collect();
            seen.push(format!("{text:?}: {:?} {state:?}", stat["be/s1"]));
        }
        seen
    };
    let mut runs: Vec<Vec<String>> = health_support::Proxy::all().into_iter().map(run).collect();
    let got = runs.pop().unwrap();
    if let Some(want) = runs.pop() {
        assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
    }
    // In maintenance the new weight (5) is the user weight, not yet the effective one.
    assert!(got[0].contains("[\"MAINT\", \"10\"]"), "{}", got[0]);
    assert!(got[1].contains("[\"no check\", \"5\"]"), "{}", got[1]);
}
