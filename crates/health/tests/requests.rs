//! The bytes each kind of check sends, compared with what haproxy 2.6 sent for the same
//! configuration (`traces/requests/*.hex`, recorded by `traces/capture_requests.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::path::Path;

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
    for step in s.steps().iter().skip(1) {
        match step {
            Step::Send(b) => out.extend_from_slice(b),
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
