//! `tcp-check` rules (issue #5), the real `ringlb` binary against haproxy 2.6 on the same
//! config: `expect string|rstring|binary|rbinary` with and without `!`, `min-recv`,
//! `comment`, `send`/`send-binary`, `connect port|send-proxy|ssl`. Compared: what each
//! loopback server received (byte for byte, a PROXY line's source port masked), the
//! state-change log lines, `show servers state` and the check columns of `show stat`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use health_support::{show, up_down, Backend, Diff, Fake};
use ringlb_testkit::{free_addr, Ringlb, TempDir, TestCa};

const DEFAULTS: &str = "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n";

/// What the servers say first: text, then bytes (00 01 02 `bin` ff).
const BANNER: &[u8] = b"+PONG\r\nrole:master\r\n\x00\x01\x02bin\xff";

/// How long a fake waits for more from the checker before it hangs up.
const QUIET: Duration = Duration::from_millis(300);

/// (backend, its tcp-check lines, stays UP).
const CASES: &[(&str, &str, bool)] = &[
    ("string_ok", "tcp-check send PING\\r\\n\n    tcp-check expect string +PONG", true),
    ("string_bad", "tcp-check send PING\\r\\n\n    tcp-check expect string nothere", false),
    ("not_string", "tcp-check expect ! string role:master", false),
    ("not_string_ok", "tcp-check expect ! string -ERR", true),
    ("rstring_ok", "tcp-check expect rstring role:(master|slave)", true),
    ("rstring_bad", "tcp-check expect rstring ^role", false),
    ("not_rstring", "tcp-check expect !rstring ^\\+PO", false),
    ("binary_ok", "tcp-check expect binary 000102", true),
    ("binary_bad", "tcp-check expect binary 0a0b0c", false),
    ("not_binary", "tcp-check expect ! binary ff", false),
    ("not_binary_ok", "tcp-check expect ! binary eeee", true),
    ("rbinary_ok", "tcp-check expect rbinary ^2B504F4E47", true),
    ("not_rbinary", "tcp-check expect ! rbinary FF$", false),
    ("rbinary_bad", "tcp-check expect rbinary ^00", false),
    ("min_recv", "tcp-check expect min-recv 200 string +PONG", true),
    // With min-recv, a mismatch is conclusive once that much arrived.
    ("min_recv_conclusive", "tcp-check expect min-recv 5 string role:slave", false),
    ("min_recv_zero", "tcp-check expect min-recv 0 string role:master", true),
    ("send_binary", "tcp-check send-binary 50494e470d0a00ff\n    tcp-check expect string +PONG", true),
    ("sends", "tcp-check send \"a b\"\n    tcp-check send-binary 0001\n    tcp-check send c\\r\\n\n    tcp-check expect string role:master\n    tcp-check send QUIT\\r\\n", true),
    ("steps", "tcp-check connect\n    tcp-check send PING\\r\\n\n    tcp-check expect string +PONG\n    tcp-check send INFO\\r\\n\n    tcp-check expect string role:slave", false),
    ("comment_rule", "tcp-check comment \"pong check\"\n    tcp-check expect string nothere", false),
    ("comment_option", "tcp-check expect string nothere comment inline", false),
    ("comment_negated", "tcp-check comment neg\n    tcp-check expect ! string +PONG comment own", false),
    ("error_status", "tcp-check expect error-status L7STS string nothere", false),
    ("ok_status", "tcp-check expect ok-status L6OK string +PONG", true),
    ("no_expect", "tcp-check send hello", true),
    ("on_error", "tcp-check expect string nothere on-error \"no such thing\" comment c", false),
    ("on_success", "tcp-check send PING\\r\\n\n    tcp-check expect string +PONG on-success \"pong seen\"", true),
    ("on_error_fmt", "tcp-check expect string nothere on-error \"got %[res.payload(0,0),cut_crlf] (%[res.len])\"", false),
    ("on_success_fmt", "tcp-check expect string role:master on-success \"%[res.payload(7,11)] ok\"", true),
    ("on_error_var", "tcp-check set-var(check.x) str(hello)\n    tcp-check expect string nothere on-error \"%[var(check.x)] %[res.payload(0,5)]\" comment c", false),
    ("status_code", "tcp-check expect string nothere error-status L7STS status-code \"int(42)\"", false),
    ("status_code_ok", "tcp-check expect string +PONG status-code \"str(7),add(1)\"", true),
    ("string_lf", "tcp-check set-var(check.w) str(master)\n    tcp-check expect string-lf role:%[var(check.w)]", true),
    ("string_lf_bad", "tcp-check expect string-lf %[be_name]", false),
    ("binary_lf", "tcp-check expect binary-lf %[str(+PONG),hex]", true),
];

fn tcp_backends(fakes: &BTreeMap<String, Fake>) -> Vec<Backend> {
    CASES
        .iter()
        .map(|(name, lines, up)| Backend {
            name: (*name).into(),
            lines: format!(
                "    option tcp-check\n    {lines}\n    server s1 {} check inter 200ms fall 1 rise 1\n",
                fakes[*name].addr
            ),
            want: up_down(*up),
        })
        .collect()
}

#[test]
fn tcp_check_expect_and_send_rules_match_haproxy() {
    let fakes: BTreeMap<String, Fake> = CASES
        .iter()
        .map(|(name, ..)| (name.to_string(), Fake::banner(BANNER, QUIET, QUIET)))
        .collect();
    let backends = tcp_backends(&fakes);
    let head = |front: SocketAddr| {
        format!("{DEFAULTS}frontend fe\n    bind {front}\n    default_backend none\nbackend none\n    server none 127.0.0.1:9\n")
    };
    let got = Diff {
        name: "hc-tcp",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: show,
        min_checks: 2,
    }
    .compare();
    assert_eq!(got.requests["sends"], r"a b\x00\x01c\r\nQUIT\r\n");
    assert_eq!(got.requests["send_binary"], r"PING\r\n\x00\xff");
    let line = |name: &str| {
        got.lines
            .iter()
            .find(|l| l.contains(&format!("Server {name}/s1 is DOWN")))
            .cloned()
            .unwrap_or_default()
    };
    let last_chk = |b: &str| got.stat[&format!("{b}/s1")][6].clone();
    assert_eq!(last_chk("on_error_fmt"), "got +PONG (27)");
    assert_eq!(last_chk("on_success_fmt"), "role:master ok");
    assert_eq!(last_chk("on_error_var"), "hello +PONG comment: c");
    let code = |b: &str| got.stat[&format!("{b}/s1")][5].clone();
    assert_eq!(
        (code("status_code"), code("status_code_ok")),
        ("42".into(), "8".into())
    );
    assert!(
        line("string_bad").contains("info: \"TCPCHK did not match content 'nothere' at step 2\""),
        "{}",
        line("string_bad")
    );
}

/// A PROXY v1 line's source port masked (the checker's ephemeral port).
fn mask_proxy(b: &[u8]) -> String {
    let text = show(b);
    match text.strip_prefix("PROXY TCP4 ") {
        Some(rest) => {
            let f: Vec<&str> = rest.splitn(4, ' ').collect();
            match f.as_slice() {
                [src, dst, _sport, tail] => format!("PROXY TCP4 {src} {dst} SPORT {tail}"),
                _ => text,
            }
        }
        None => text,
    }
}

/// `tcp-check connect` options: `port` (the server's own port is closed), `send-proxy`,
/// `ssl` (to a ringlb TLS frontend in front of a fake; `inter 1s`: the TLS handshake must
/// fit in `inter` even on a loaded machine), and a sequence of two connects.
#[test]
fn tcp_check_connect_options_match_haproxy() {
    let dir = TempDir::new("hc-tcp-connect");
    let ca = TestCa::new(&dir.join("ca"), "check CA");
    let issued = ca.server("tls.example", &dir.join("srv.pem"));
    let names = ["port", "proxy", "ssl", "two_a", "two_b", "proxy_default"];
    let fakes: BTreeMap<String, Fake> = names
        .iter()
        .map(|n| (n.to_string(), Fake::banner(BANNER, QUIET, QUIET)))
        .collect();
    // TLS in front of the `ssl` fake.
    let tls = free_addr();
    let tls_cfg = dir.join("tls.cfg");
    std::fs::write(
        &tls_cfg,
        format!(
            "{DEFAULTS}frontend tls\n    bind {tls} ssl crt {}\n    default_backend f\nbackend f\n    server f {}\n",
            issued.pem.display(),
            fakes["ssl"].addr
        ),
    )
    .unwrap();
    let _tls = Ringlb::start(&tls_cfg, &[tls]);
    // A closed port for the servers whose checks go elsewhere.
    let closed = free_addr();
    let f = |n: &str| fakes[n].addr;
    let backends = vec![
        Backend {
            name: "port".into(),
            lines: format!("    option tcp-check\n    tcp-check connect port {}\n    tcp-check send hi\\r\\n\n    tcp-check expect string +PONG\n    server s1 {closed} check inter 200ms fall 1 rise 1\n", f("port").port()),
            want: "UP".into(),
        },
        Backend {
            name: "proxy".into(),
            lines: format!("    option tcp-check\n    tcp-check connect send-proxy\n    tcp-check send hi\\r\\n\n    tcp-check expect string +PONG\n    server s1 {} check inter 200ms fall 1 rise 1\n", f("proxy")),
            want: "UP".into(),
        },
        Backend {
            name: "proxy_default".into(),
            lines: format!("    option tcp-check\n    tcp-check connect default\n    tcp-check expect string +PONG\n    server s1 {} check check-send-proxy inter 200ms fall 1 rise 1\n", f("proxy_default")),
            want: "UP".into(),
        },
        Backend {
            name: "ssl".into(),
            lines: format!("    option tcp-check\n    tcp-check connect ssl\n    tcp-check send hello-tls\\r\\n\n    tcp-check expect string role:master\n    server s1 {tls} check verify none inter 1s fall 1 rise 1\n"),
            want: "UP".into(),
        },
        Backend {
            name: "two".into(),
            lines: format!("    option tcp-check\n    tcp-check connect port {}\n    tcp-check send one\\r\\n\n    tcp-check expect string +PONG\n    tcp-check connect port {}\n    tcp-check send two\\r\\n\n    tcp-check expect string nothere\n    server s1 {closed} check inter 200ms fall 1 rise 1\n", f("two_a").port(), f("two_b").port()),
            want: "DOWN".into(),
        },
        // A refused connect names its own port, and its `comment` option wins over the
        // `tcp-check comment` before it (haproxy 2.6: "at step 2 of tcp-check (connect port
        // N) comment: 'own'").
        Backend {
            name: "refused".into(),
            lines: format!("    option tcp-check\n    tcp-check comment first\n    tcp-check connect port {} comment own\n    server s1 {closed} check inter 200ms fall 1 rise 1\n", closed.port()),
            want: "DOWN".into(),
        },
    ];
    let head = |front: SocketAddr| {
        format!("{DEFAULTS}frontend fe\n    bind {front}\n    default_backend none\nbackend none\n    server none 127.0.0.1:9\n")
    };
    let got = Diff {
        name: "hc-tcp-connect",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: mask_proxy,
        min_checks: 2,
    }
    .compare();
    let refused = format!(
        "info: \"Connection refused at step 2 of tcp-check (connect port {}) comment: 'own'\"",
        closed.port()
    );
    assert!(
        got.lines
            .iter()
            .any(|l| l.contains("Server refused/s1 is DOWN") && l.contains(&refused)),
        "{:#?}",
        got.lines
    );
    assert_eq!(got.requests["port"], r"hi\r\n");
    assert_eq!(got.requests["ssl"], r"hello-tls\r\n");
    assert!(
        got.requests["proxy"].starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 SPORT "),
        "{}",
        got.requests["proxy"]
    );
}
