//! The bytes each kind of check sends, compared with what haproxy 2.6 sent for the same
//! configuration (`traces/requests/*.hex`, recorded by `traces/capture_requests.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::path::Path;

use ringlb_health::lf::{CheckRun, CheckSource};
use ringlb_health::{CheckKind, CheckScript, Step};

/// Same cases as `capture_requests.sh`.
const CASES: &[(&str, &str)] = &[
    ("httpchk_default", "    option httpchk"),
    ("httpchk_uri", "    option httpchk /health"),
    ("httpchk_meth_uri", "    option httpchk HEAD /ping"),
    ("httpchk_ver", "    option httpchk GET /ready HTTP/1.1"),
    (
        "httpcheck_send",
        "    option httpchk\n    http-check send meth POST uri /api/check ver HTTP/1.1 hdr Host example.org hdr X-Check yes body {\"ping\":1}",
    ),
    ("httpcheck_send_nobody", "    option httpchk\n    http-check send meth GET uri /h ver HTTP/1.1 hdr Host a.example"),
    (
        "tcpcheck_send",
        "    option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check send-binary 2a310d0a\n    tcp-check expect string never",
    ),
    ("redis", "    option redis-check"),
    ("pgsql", "    option pgsql-check user haproxy"),
    ("mysql", "    option mysql-check user haproxy"),
    ("mysql_post41", "    option mysql-check user haproxy post-41"),
    ("smtp", "    option smtpchk"),
    ("smtp_helo", "    option smtpchk EHLO mail.example.org"),
    ("sslhello", "    option ssl-hello-chk"),
    (
        "tcpcheck_lf",
        "    option tcp-check\n    tcp-check set-var(check.x) str(abc)\n    tcp-check set-var-fmt(check.y) id-%[var(check.x)]\n    tcp-check set-var(check.z) int(42)\n    tcp-check unset-var(check.z)\n    tcp-check send-lf \"PING %[var(check.x)] %[var(check.y)] [%[var(check.z)]] %[var(check.x),upper]\\r\\n\"\n    tcp-check send-binary-lf 2a%[var(check.x),hex]0d0a\n    tcp-check expect string never",
    ),
    (
        "httpcheck_lf",
        "    option httpchk\n    http-check set-var(check.x) str(abc)\n    http-check set-var(check.n) int(7)\n    http-check send meth POST uri-lf /h?x=%[var(check.x)] ver HTTP/1.1 hdr Host a.example hdr X-Check %[var(check.x)]-%[var(check.n)] hdr X-None [%[var(check.none)]] body-lf n=%[var(check.n)]",
    ),
];

fn script(name: &str, body: &str) -> CheckScript {
    let mode = if name.starts_with("http") {
        "http"
    } else {
        "tcp"
    };
    let text = format!("backend be\n    mode {mode}\n{body}\n    server s1 127.0.0.1:9 check\n");
    let loaded = ringlb_config::parse_str(name, &text).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let be = loaded
        .config
        .backends
        .iter()
        .find(|b| b.name == "be")
        .unwrap();
    CheckScript::from_backend(be).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Everything the check sends on its first connection, before it waits on any reply
/// (for SMTP: after the greeting, which the capture's server sent).
fn first_sends(s: &CheckScript, through_expects: bool) -> Vec<u8> {
    let mut out = Vec::new();
    // Variables and log-format payloads: a run with no time, host name or environment.
    let mut run = CheckRun::new();
    let src = CheckSource::default();
    for step in s.steps().iter().skip(1) {
        match step {
            Step::Send(b) => out.extend_from_slice(b),
            Step::Var(v) => run.apply(v, &src),
            Step::SendLf(p) => out.extend_from_slice(&run.render(p, &src).unwrap().bytes),
            Step::Expect(_) if through_expects => {}
            Step::Expect(_) | Step::Connect(_) => break,
        }
    }
    out
}

#[test]
fn every_check_sends_what_haproxy_sends() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/requests");
    let mut bad = Vec::new();
    for (name, body) in CASES {
        let hex = std::fs::read_to_string(dir.join(format!("{name}.hex"))).unwrap();
        let want = ringlb_health::decode_hex(hex.trim()).unwrap();
        let s = script(name, body);
        let mut got = first_sends(&s, name.starts_with("smtp"));
        if let Some(off) = s.time_offset {
            // ssl-hello-chk: the driver writes the current time here; take haproxy's.
            got[off..off + 4].copy_from_slice(&want[off..off + 4]);
        }
        if got != want {
            bad.push(format!(
                "{name}:\n  haproxy {:?}\n  ringlb  {:?}",
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn check_kinds() {
    assert_eq!(
        script("httpchk_default", "    option httpchk").kind(),
        CheckKind::Http
    );
    assert_eq!(
        script("redis", "    option redis-check").kind(),
        CheckKind::TcpCheck
    );
    assert_eq!(script("plain", "").kind(), CheckKind::Tcp);
    assert_eq!(script("plain", "").steps().len(), 1);
}

#[test]
fn connects_resolve_against_the_server() {
    let text = "backend be\n    mode tcp\n    option tcp-check\n    tcp-check connect port 6379\n    tcp-check connect ssl sni x.example\n    server s1 127.0.0.1:9 check port 8080 check-ssl check-sni s1.example agent-check agent-port 9999 agent-send ping\\n\n";
    let be = ringlb_config::parse_str("t", text)
        .unwrap()
        .config
        .backends
        .into_iter()
        .next()
        .unwrap();
    let s = CheckScript::from_backend(&be).unwrap();
    let params = &be.servers[0].params;
    let connects: Vec<_> = s
        .steps()
        .iter()
        .filter_map(|st| {
            if let Step::Connect(c) = st {
                Some(c.resolve(params, Some(9)))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(connects.len(), 2);
    // Explicit connects take the check port, not the server's check-ssl/check-sni.
    assert_eq!(
        (
            connects[0].port,
            connects[0].ssl,
            connects[0].sni.as_deref()
        ),
        (Some(6379), false, None)
    );
    assert_eq!(
        (
            connects[1].port,
            connects[1].ssl,
            connects[1].sni.as_deref()
        ),
        (Some(8080), true, Some("x.example"))
    );
    let plain = CheckScript::from_backend(
        &ringlb_config::parse_str(
            "t",
            &text.replace(
                "    tcp-check connect port 6379\n    tcp-check connect ssl sni x.example\n",
                "",
            ),
        )
        .unwrap()
        .config
        .backends[0],
    )
    .unwrap();
    let Step::Connect(c) = &plain.steps()[0] else {
        panic!()
    };
    let r = c.resolve(params, Some(9));
    assert_eq!(
        (r.port, r.ssl, r.sni.as_deref()),
        (Some(8080), true, Some("s1.example")),
        "implicit connect inherits"
    );
    let agent = CheckScript::agent(params).unwrap();
    assert_eq!(agent.kind(), CheckKind::Agent);
    let Step::Connect(c) = &agent.steps()[0] else {
        panic!()
    };
    assert_eq!(c.resolve(params, Some(9)).port, Some(9999));
    let Step::Send(b) = &agent.steps()[1] else {
        panic!()
    };
    assert_eq!(b, b"ping\n");
    assert!(CheckScript::agent(&Default::default()).is_none());
}

/// A leading comment does not hide an explicit first connect: one connection, numbered as
/// haproxy numbers rules (every rule counts; the comment names the next rule).
#[test]
fn comments_before_the_first_connect_are_rules_too() {
    let s = script(
        "tcp_comment",
        "    option tcp-check\n    tcp-check comment first\n    tcp-check connect\n    tcp-check send PING\\r\\n\n    tcp-check comment pong\n    tcp-check expect string +PONG",
    );
    let connects: Vec<(u32, Option<String>, bool)> = s
        .steps()
        .iter()
        .filter_map(|st| match st {
            Step::Connect(c) => Some((c.step, c.comment.clone(), c.inherit)),
            _ => None,
        })
        .collect();
    assert_eq!(connects, vec![(2, Some("first".to_string()), false)]);
    let Some(Step::Expect(e)) = s.steps().last() else {
        panic!("no expect")
    };
    assert_eq!((e.step, e.comment.as_deref()), (5, Some("pong")));
    let h = script(
        "http_comment",
        "    option httpchk\n    http-check comment c\n    http-check connect\n    http-check send meth GET uri /\n    http-check expect status 200",
    );
    let n = h
        .steps()
        .iter()
        .filter(|st| matches!(st, Step::Connect(_)))
        .count();
    assert_eq!(
        n, 1,
        "one connection for an http-check ruleset starting with a comment"
    );
}

#[test]
fn check_variable_errors_name_the_line() {
    let text = "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nbackend be\n    option tcp-check\n    tcp-check set-var(proc.x) str(a)\n    server s1 127.0.0.1:1 check\n";
    let loaded = ringlb_config::parse_str("v.cfg", text).unwrap();
    let be = &loaded.config.backends[0];
    let e = CheckScript::from_backend(be).unwrap_err();
    assert!(e.starts_with("parsing [v.cfg:8] : "), "{e}");
    assert!(e.contains("only the 'check.' scope"), "{e}");
    let bad_fetch = text.replace("set-var(proc.x) str(a)", "send-lf %[nosuchfetch]");
    let loaded = ringlb_config::parse_str("v.cfg", &bad_fetch).unwrap();
    let e = CheckScript::from_backend(&loaded.config.backends[0]).unwrap_err();
    assert!(e.starts_with("parsing [v.cfg:8] : "), "{e}");
}
