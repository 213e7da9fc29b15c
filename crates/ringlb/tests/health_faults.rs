//! Servers that fail in the middle of a health check (issue #11, "die during a health
//! check"), the real `ringlb` binary against haproxy 2.6 on the same config: a reset after
//! the check's request, a close without a reply, a close or a reset in the middle of the
//! response, a response that never comes (timeout), a refused connection; for HTTP checks,
//! `tcp-check` rulesets and `option redis-check`. Each is classified as haproxy does
//! (`Socket error, info: "Connection reset by peer"`, `Layer7 invalid response`, `Layer7
//! timeout`, `Layer4 connection problem`...): the state-change lines, `show servers state`
//! and the check columns of `show stat` (`check_status`, `last_chk`) are compared.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use health_support::{find, read_http_request, show, Backend, Captures, Diff, Fake};
use ringlb_testkit::{free_addr, set_linger_zero};

const DEFAULTS: &str = "defaults\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 500ms\n";

/// How a server fails once it has read the check's request.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Resets the connection (no byte of reply).
    Reset,
    /// Closes without a reply.
    Close,
    /// Sends part of a reply, then closes.
    PartialClose,
    /// Sends part of a reply, then resets.
    PartialReset,
    /// Never answers (the check times out).
    Stall,
}

/// Reads one `PING`-like line (a tcp-check's request).
fn read_line(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while find(&got, b"\r\n").is_none() && got.len() < 4096 {
        match c.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    got
}

/// A fake that reads the request (HTTP or one line), then fails as `fault` says; `partial`
/// is the beginning of a reply it sends first for the partial faults.
fn faulty(fault: Fault, http: bool, partial: &'static [u8]) -> Fake {
    Fake::start(move |mut c: TcpStream, seen: &Captures| {
        let req = if http {
            read_http_request(&mut c)
        } else {
            read_line(&mut c)
        };
        let empty = req.is_empty();
        seen.lock().unwrap().push(req);
        if empty {
            return;
        }
        let pause = || std::thread::sleep(Duration::from_millis(50));
        match fault {
            Fault::Reset => {
                let _ = set_linger_zero(&c);
            }
            Fault::Close => {}
            Fault::PartialClose => {
                let _ = c.write_all(partial);
                pause();
            }
            Fault::PartialReset => {
                let _ = c.write_all(partial);
                pause();
                let _ = set_linger_zero(&c);
            }
            Fault::Stall => std::thread::sleep(Duration::from_millis(1500)),
        }
        drop(c);
    })
}

const FAULTS: &[(&str, Fault)] = &[
    ("reset", Fault::Reset),
    ("close", Fault::Close),
    ("partial_close", Fault::PartialClose),
    ("partial_reset", Fault::PartialReset),
    ("stall", Fault::Stall),
];

/// (backend prefix, check lines, HTTP, the partial reply).
const KINDS: &[(&str, &str, bool, &[u8])] = &[
    (
        "http",
        "    mode http\n    option httpchk GET /health\n",
        true,
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ),
    (
        "tcp",
        "    mode tcp\n    option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check expect string +PONG\n",
        false,
        b"+PO",
    ),
    ("redis", "    mode tcp\n    option redis-check\n", false, b"+PO"),
];

#[test]
fn servers_failing_during_a_check_are_classified_as_haproxy_does() {
    let mut fakes: BTreeMap<String, Fake> = BTreeMap::new();
    let mut backends = Vec::new();
    for (kind, lines, http, partial) in KINDS {
        for (name, fault) in FAULTS {
            let be = format!("{kind}_{name}");
            let fake = faulty(*fault, *http, partial);
            backends.push(Backend {
                name: be.clone(),
                lines: format!(
                    "{lines}    server s1 {} check inter 300ms fall 1 rise 1\n",
                    fake.addr
                ),
                want: "DOWN".into(),
            });
            fakes.insert(be, fake);
        }
        // Nothing listens there: refused.
        backends.push(Backend {
            name: format!("{kind}_refused"),
            lines: format!(
                "{lines}    server s1 {} check inter 300ms fall 1 rise 1\n",
                free_addr()
            ),
            want: "DOWN".into(),
        });
    }
    let head = |front: SocketAddr| {
        format!("{DEFAULTS}frontend fe\n    mode tcp\n    bind {front}\n    default_backend none\nbackend none\n    mode tcp\n    server none 127.0.0.1:9\n")
    };
    let got = Diff {
        name: "hc-faults",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: show,
        min_checks: 2,
    }
    .compare();
    // The words haproxy 2.6 uses (also compared above when it is installed).
    let line = |be: &str| {
        got.lines
            .iter()
            .find(|l| l.contains(&format!("Server {be}/s1 is DOWN")))
            .cloned()
            .unwrap_or_default()
    };
    let reason = |be: &str| {
        let l = line(be);
        let from = l.find("reason: ").map_or(0, |i| i + "reason: ".len());
        let to = l.find(", check duration").unwrap_or(l.len());
        l[from..to].to_string()
    };
    let reset = r#"Socket error, info: "Connection reset by peer""#;
    assert_eq!(reason("http_reset"), reset);
    assert_eq!(reason("http_partial_reset"), reset);
    assert_eq!(reason("http_close"), "Layer7 invalid response");
    assert_eq!(reason("http_partial_close"), "Layer7 invalid response");
    assert_eq!(reason("http_stall"), "Layer7 timeout");
    assert_eq!(
        reason("http_refused"),
        r#"Layer4 connection problem, info: "Connection refused""#
    );
    assert_eq!(
        reason("tcp_reset"),
        r#"Socket error, info: "Connection reset by peer at step 2 of tcp-check (expect string '+PONG')""#
    );
    // Bytes came before the reset: the rule judges them.
    assert_eq!(
        reason("tcp_partial_reset"),
        r#"Layer7 invalid response, info: "TCPCHK did not match content '+PONG' at step 2""#
    );
    assert_eq!(
        reason("tcp_close"),
        r#"Layer7 invalid response, info: "TCPCHK got an empty response at step 2""#
    );
    assert_eq!(reason("redis_reset"), reset);
    assert_eq!(
        reason("redis_partial_reset"),
        r#"Layer7 wrong status, code: 0, info: "+PO""#
    );
    let stat = |be: &str| {
        let row = &got.stat[&format!("{be}/s1")];
        (row[4].clone(), row[6].clone())
    };
    assert_eq!(
        stat("http_reset"),
        ("SOCKERR".into(), "Connection reset by peer".into())
    );
    assert_eq!(stat("http_close"), ("L7RSP".into(), String::new()));
}
