//! HTTP checks over HTTP/2 (issue #5): `http-check connect proto h2`, the server's
//! `check-proto h2`, and `h2` chosen by ALPN over TLS (`check-alpn h2`, `http-check connect
//! ssl alpn h2`) run the HTTP check over an h2 connection, as haproxy 2.6 does; `alpn h2`
//! without TLS, and ALPN `http/1.1`, stay HTTP/1. The h2 origin is haproxy (ringlb when haproxy
//! is not installed) with `bind ... proto h2` and a TLS bind offering `h2,http/1.1`, answering
//! with the HTTP version it was asked in (`x-ver`), so the checks' `expect hdr` rules see which
//! protocol was spoken. An HTTP/1-only server checked over h2 is haproxy's `Socket error`.
//! Every result (`show stat`, `show servers state`, the state-change log lines) is compared
//! with haproxy 2.6 running the same configuration; the forms haproxy refuses are refused with
//! its words.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use health_support::{show, Backend, Diff, Fake};
use ringlb_testkit::{
    bin_path, free_addr, haproxy_available, run_bounded, ChildGuard, Haproxy, Ringlb, TempDir,
    TestCa,
};

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout check 2s\n";

/// The h2 origin: `h2c` (prior knowledge), `auto` (HTTP/1 or the h2 preface) and `tls`
/// (ALPN `h2,http/1.1`). `/bad` answers 500, anything else 200 with `x-ver` the request's
/// HTTP version and a body.
struct H2Origin {
    h2c: SocketAddr,
    auto: SocketAddr,
    tls: SocketAddr,
    _guard: ChildGuard,
}

fn h2_origin(dir: &TempDir) -> H2Origin {
    let ca = TestCa::new(&dir.join("ca"), "h2 check CA");
    let cert = ca.server("localhost", &dir.join("origin.pem"));
    let (h2c, auto, tls) = (free_addr(), free_addr(), free_addr());
    let answers = "    http-request set-var(txn.ver) req.ver\n    http-request return status 500 content-type text/plain string \"bad thing\" if { path /bad }\n    http-request return status 200 content-type text/plain string \"all fine here\" hdr x-ver %[var(txn.ver)]\n";
    let cfg = format!(
        "{DEFAULTS}frontend clear\n    bind {h2c} proto h2\n    bind {auto}\n{answers}frontend tls\n    bind {tls} ssl crt {} alpn h2,http/1.1\n{answers}",
        cert.pem.display()
    );
    let path = dir.join("origin.cfg");
    std::fs::write(&path, cfg).unwrap();
    let guard = if haproxy_available() {
        Haproxy::start(&path, &[h2c, auto, tls])
    } else {
        Ringlb::start(&path, &[h2c, auto, tls])
    };
    H2Origin {
        h2c,
        auto,
        tls,
        _guard: guard,
    }
}

/// The first bytes a server got: the h2 preface, or an HTTP/1 request line (the SETTINGS that
/// follow the preface differ between h2 implementations).
fn first_line(b: &[u8]) -> String {
    let end = b.windows(2).position(|w| w == b"\r\n").unwrap_or(b.len());
    show(&b[..end])
}

#[test]
fn http_checks_over_h2_match_haproxy() {
    let dir = TempDir::new("health-h2-origin");
    let o = h2_origin(&dir);
    // An HTTP/1-only server: it answers the h2 preface as a bad HTTP/1 request.
    let h1only =
        Fake::http(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let srv =
        |addr: SocketAddr, opts: &str| format!("    server s1 {addr} check inter 300ms {opts}\n");
    let b = |name: &str, lines: String, up: bool| Backend {
        name: name.into(),
        lines,
        want: health_support::up_down(up),
    };
    let backends = [
        // `http-check connect proto h2`: the response came over h2 (`x-ver: 2.0`).
        b(
            "connect_proto",
            format!(
                "    option httpchk\n    http-check connect proto h2\n    http-check send meth GET uri /ok\n    http-check expect hdr name x-ver value 2.0\n{}",
                srv(o.h2c, "")
            ),
            true,
        ),
        // `check-proto h2` on the server: a 500 without reason phrase (no `info`).
        b(
            "check_proto_500",
            format!("    option httpchk GET /bad\n{}", srv(o.h2c, "check-proto h2")),
            false,
        ),
        // A body rule over h2.
        b(
            "check_proto_body",
            format!(
                "    option httpchk GET /ok\n    http-check expect string fine\n{}",
                srv(o.h2c, "check-proto h2")
            ),
            true,
        ),
        // `check-proto h1` stays HTTP/1 (`option httpchk`'s HTTP/1.0).
        b(
            "check_proto_h1",
            format!(
                "    option httpchk GET /ok\n    http-check expect hdr name x-ver value 1.0\n{}",
                srv(o.auto, "check-proto h1")
            ),
            true,
        ),
        // `alpn h2` without TLS: nothing is negotiated, HTTP/1.
        b(
            "alpn_clear",
            format!(
                "    option httpchk\n    http-check connect alpn h2\n    http-check send meth GET uri /ok\n    http-check expect hdr name x-ver value 1.0\n{}",
                srv(o.auto, "")
            ),
            true,
        ),
        // TLS with ALPN h2 (the server's `check-alpn`).
        b(
            "check_alpn_h2",
            format!(
                "    option httpchk GET /ok\n    http-check expect hdr name x-ver value 2.0\n{}",
                srv(o.tls, "check-ssl check-alpn h2 verify none")
            ),
            true,
        ),
        // TLS offering both: the server picks h2; its 500 has no reason phrase.
        b(
            "check_alpn_both_500",
            format!(
                "    option httpchk GET /bad\n{}",
                srv(o.tls, "check-ssl check-alpn h2,http/1.1 verify none")
            ),
            false,
        ),
        // `http-check connect ssl alpn h2`.
        b(
            "connect_ssl_alpn_h2",
            format!(
                "    option httpchk\n    http-check connect ssl alpn h2\n    http-check send meth GET uri /ok\n    http-check expect hdr name x-ver value 2.0\n{}",
                srv(o.tls, "verify none")
            ),
            true,
        ),
        // ALPN http/1.1 over TLS: HTTP/1.
        b(
            "connect_ssl_alpn_h1",
            format!(
                "    option httpchk\n    http-check connect ssl alpn http/1.1\n    http-check send meth GET uri /ok\n    http-check expect hdr name x-ver value 1.0\n{}",
                srv(o.tls, "verify none")
            ),
            true,
        ),
        // h2 towards a server that speaks HTTP/1 only: `Socket error`.
        b(
            "h1_only",
            format!("    option httpchk GET /ok\n{}", srv(h1only.addr, "check-proto h2")),
            false,
        ),
    ];
    let fakes: BTreeMap<String, Fake> = [("h1only".to_string(), h1only)].into_iter().collect();
    let head = |front: SocketAddr| {
        format!("{DEFAULTS}frontend fe\n    bind {front}\n    default_backend connect_proto\n")
    };
    let got = Diff {
        name: "health-h2",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: first_line,
        min_checks: 1,
    }
    .compare();
    // What the columns show (also compared with haproxy above when it is installed).
    let col = |k: &str, c: &str| {
        let i = health_support::STAT_COLUMNS
            .iter()
            .position(|x| *x == c)
            .unwrap();
        got.stat[&format!("{k}/s1")][i].clone()
    };
    for (k, status, code) in [
        ("connect_proto", "L7OK", "200"),
        ("check_proto_500", "L7STS", "500"),
        ("check_proto_body", "L7OK", "200"),
        ("check_alpn_h2", "L7OK", "200"),
        ("check_alpn_both_500", "L7STS", "500"),
        ("connect_ssl_alpn_h2", "L7OK", "200"),
        ("connect_ssl_alpn_h1", "L7OK", "200"),
        ("h1_only", "SOCKERR", ""),
    ] {
        assert_eq!(
            (col(k, "check_status"), col(k, "check_code")),
            (status.to_string(), code.to_string()),
            "{k}"
        );
    }
    // No reason phrase over h2: no `info` in the log line.
    assert!(
        got.lines.iter().any(|l| l.contains(
            "Server check_proto_500/s1 is DOWN, reason: Layer7 wrong status, code: 500, check duration: N"
        )),
        "{:#?}",
        got.lines
    );
    assert_eq!(got.requests["h1only"], "PRI * HTTP/2.0");
}

/// The `proto` forms haproxy 2.6 refuses, refused by ringlb with the same words at start
/// (`haproxy -c` checked on the same files when installed).
#[test]
fn check_proto_forms_refused_as_haproxy() {
    let dir = TempDir::new("health-h2-refused");
    let cases = [
        (
            "    option httpchk\n    http-check connect proto foo\n    server s1 127.0.0.1:9 check\n",
            "'proto' : unknown MUX protocol 'foo'.",
        ),
        (
            "    option httpchk\n    http-check connect proto\n    server s1 127.0.0.1:9 check\n",
            "'proto' expects a MUX protocol as argument.",
        ),
        (
            "    option httpchk\n    http-check connect proto none\n    server s1 127.0.0.1:9 check\n",
            "'proto' : invalid MUX protocol 'none' for http-check.",
        ),
        (
            "    option tcp-check\n    tcp-check connect proto h2\n    server s1 127.0.0.1:9 check\n",
            "'proto' : invalid MUX protocol 'h2' for tcp-check.",
        ),
        (
            "    option httpchk\n    server s1 127.0.0.1:9 check check-proto foo\n",
            "'check-proto' :  unknown MUX protocol 'foo'.",
        ),
        (
            "    option tcp-check\n    server s1 127.0.0.1:9 check check-proto h2\n",
            "server 's1' uses an incompatible MUX protocol for the selected check type",
        ),
        (
            "    server s1 127.0.0.1:9 check check-proto h1\n",
            "server 's1' uses an incompatible MUX protocol for the selected check type",
        ),
        (
            "    option httpchk\n    server s1 127.0.0.1:9 check check-proto none\n",
            "server 's1' uses an incompatible MUX protocol for the selected check type",
        ),
    ];
    for (i, (lines, want)) in cases.iter().enumerate() {
        let path = dir.join(&format!("c{i}.cfg"));
        std::fs::write(
            &path,
            format!("{DEFAULTS}frontend fe\n    bind 127.0.0.1:9\n    default_backend b\nbackend b\n{lines}"),
        )
        .unwrap();
        // Refused at start and by `-c`, as haproxy refuses both.
        for args in [&["-f"][..], &["-c", "-f"][..]] {
            let out = run_bounded(
                Command::new(bin_path("ringlb")).args(args).arg(&path),
                Duration::from_secs(10),
            )
            .unwrap();
            let ours = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "ringlb {args:?} on {lines:?}: {ours}"
            );
            assert!(ours.contains(want), "ringlb {args:?} on {lines:?}: {ours}");
        }
        if haproxy_available() {
            let theirs = Haproxy::check(&path).expect_err(lines);
            assert!(theirs.contains(want), "haproxy on {lines:?}: {theirs}");
        }
    }
}

/// The fields of every request an `nghttpd -v` log shows, one request per line (`:method GET
/// :scheme https :path /health host example.org`, in the order received).
fn nghttpd_requests(log: &str) -> Vec<String> {
    let mut by_conn: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in log.lines() {
        // `[id=3] [  1.561] recv (stream_id=1) :path: /health`
        let Some((head, field)) = l.split_once(" recv (stream_id=1) ") else {
            continue;
        };
        let id = head.split(']').next().unwrap_or("").to_string();
        by_conn
            .entry(id)
            .or_default()
            .push(field.replacen(": ", " ", 1));
    }
    by_conn.into_values().map(|v| v.join(" ")).collect()
}

/// The request fields of HTTP checks over h2 (issue #5), recorded with `nghttpd -v` as
/// origin (over TLS with ALPN `h2`, and in clear with `check-proto h2`): haproxy 2.6 sends
/// `:method`, `:scheme https` (in clear too) and `:path` for a relative target, no
/// `:authority` (whatever the SNI), and a `Host` as a `host` field; an absolute target gives
/// its own `:scheme` and `:authority`. ringlb must send the same, in the same order.
/// nghttpd refuses a request without `:authority`: both proxies then say `Socket error`, and
/// their DOWN lines are compared too.
#[test]
fn h2_check_request_fields_match_haproxy() {
    let Some(nghttpd) = ringlb_testkit::find_on_path("nghttpd") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "nghttpd is required in CI (scripts/test installs nghttp2-server)"
        );
        eprintln!("skipped: nghttpd is not installed");
        return;
    };
    let dir = TempDir::new("health-h2-fields");
    let ca = TestCa::new(&dir.join("ca"), "h2 fields CA");
    let cert = ca.server("localhost", &dir.join("origin.pem"));
    let mut runs = Vec::new();
    for proxy in health_support::Proxy::all() {
        let start_origin = |tls: bool| {
            let port = ringlb_testkit::free_port();
            let mut cmd = Command::new(&nghttpd);
            cmd.args(["-v", "--address=127.0.0.1"]);
            if !tls {
                cmd.arg("--no-tls");
            }
            cmd.arg(port.to_string());
            if tls {
                cmd.args([cert.key.to_str().unwrap(), cert.crt.to_str().unwrap()]);
            }
            let guard = ChildGuard::spawn("nghttpd", &mut cmd).unwrap();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            ringlb_testkit::wait_for_port(addr, Duration::from_secs(10)).unwrap();
            (guard, addr)
        };
        let (tls_origin, tls) = start_origin(true);
        let (clear_origin, clear) = start_origin(false);
        let over_tls = "check-ssl verify none check-alpn h2 check-sni example.org";
        // (backend, its check lines, server address, server options).
        let cases = [
            ("nohost_tls", "option httpchk GET /nohost-tls", tls, over_tls),
            ("nohost_clear", "option httpchk GET /nohost-clear", clear, "check-proto h2"),
            (
                "host_tls",
                "option httpchk\n    http-check send meth GET uri /host-tls hdr host example.org hdr x-a b",
                tls,
                over_tls,
            ),
            (
                "host_clear",
                "option httpchk\n    http-check send meth GET uri /host-clear hdr host example.org",
                clear,
                "check-proto h2",
            ),
            (
                "absolute",
                "option httpchk\n    http-check send meth GET uri http://abs.example/abs",
                clear,
                "check-proto h2",
            ),
        ];
        let cfg = |front: SocketAddr, dir: &std::path::Path| {
            let mut c = format!(
                "{}{DEFAULTS}frontend fe\n    bind {front}\n    default_backend nohost_tls\n",
                health_support::global(dir, "")
            );
            for (name, lines, addr, opts) in &cases {
                c.push_str(&format!(
                    "backend {name}\n    {lines}\n    server s1 {addr} check {opts} inter 300ms fall 1 rise 1\n"
                ));
            }
            c
        };
        let (_d, p) = health_support::start(proxy, "hc-h2-fields", &cfg);
        p.wait_log("Server nohost_tls/s1 is DOWN");
        p.wait_log("Server nohost_clear/s1 is DOWN");
        let requests = || {
            let mut all = nghttpd_requests(&tls_origin.stdout());
            all.extend(nghttpd_requests(&clear_origin.stdout()));
            all.sort();
            all.dedup();
            all
        };
        let all_seen =
            ringlb_testkit::wait_until(Duration::from_secs(5), || requests().len() >= cases.len());
        assert!(all_seen, "{proxy:?}: {:?}", requests());
        let mut lines: Vec<String> = p
            .state_lines()
            .into_iter()
            .filter(|l| l.contains("nohost") && l.contains("is DOWN"))
            .collect();
        lines.dedup();
        println!("{proxy:?}: {:#?}\n{lines:#?}", requests());
        runs.push((proxy, requests(), lines));
    }
    for (proxy, requests, lines) in &runs {
        let of = |path: &str| {
            requests
                .iter()
                .find(|r| r.contains(path))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            of("/nohost-tls"),
            ":method GET :scheme https :path /nohost-tls",
            "{proxy:?}"
        );
        assert_eq!(
            of("/nohost-clear"),
            ":method GET :scheme https :path /nohost-clear",
            "{proxy:?}"
        );
        assert_eq!(
            of("/host-tls"),
            ":method GET :scheme https :path /host-tls host example.org x-a b",
            "{proxy:?}"
        );
        assert_eq!(
            of("/abs"),
            ":method GET :scheme http :authority abs.example :path /abs",
            "{proxy:?}"
        );
        assert!(
            lines.iter().all(|l| l.contains("reason: Socket error")),
            "{proxy:?}: {lines:?}"
        );
    }
    if let [(_, want, want_lines), (_, got, got_lines)] = runs.as_slice() {
        assert_eq!(
            got, want,
            "request fields, ringlb (left) vs haproxy (right)"
        );
        assert_eq!(
            got_lines, want_lines,
            "DOWN lines, ringlb (left) vs haproxy (right)"
        );
    }
}
