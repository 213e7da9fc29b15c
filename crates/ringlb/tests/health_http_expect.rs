//! `http-check expect` variants and `http-check send` requests (issue #5), the real `ringlb`
//! binary against haproxy 2.6 on the same config: what each loopback server received (byte for
//! byte), the state-change log lines, `show servers state` and the check columns of
//! `show stat`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use health_support::{show, up_down, Backend, Diff, Fake, Seen};

const INTER: Duration = Duration::from_millis(200);

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n";

const BODY_200: &str = "<html>hello SQL Error <!--tag:1f2e--></html>";

fn response(code: &str) -> Vec<u8> {
    match code {
        "200" => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Role: primary, ro\r\nSet-Cookie: sessid=abc; path=/\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY_200}",
            BODY_200.len()
        )
        .into_bytes(),
        "302" => b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        "503" => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown".to_vec(),
        _ => unreachable!(),
    }
}

/// One backend: its check lines, the response its server gives, and whether it stays UP.
struct Case {
    name: &'static str,
    code: &'static str,
    lines: &'static str,
    up: bool,
}

const fn case(name: &'static str, code: &'static str, lines: &'static str, up: bool) -> Case {
    Case {
        name,
        code,
        lines,
        up,
    }
}

const EXPECT_CASES: &[Case] = &[
    case("status_list_302", "302", "option httpchk GET /\n    http-check expect status 200,201,300-310", true),
    case("status_list_503", "503", "option httpchk GET /\n    http-check expect status 200,201,300-310", false),
    case("not_status", "503", "option httpchk GET /\n    http-check expect ! status 500-599", false),
    case("not_status_ok", "200", "option httpchk GET /\n    http-check expect ! status 500-599", true),
    case("rstatus_bad", "503", "option httpchk GET /\n    http-check expect rstatus ^2", false),
    case("not_rstatus", "200", "option httpchk GET /\n    http-check expect ! rstatus ^5", true),
    case("not_rstatus_bad", "503", "option httpchk GET /\n    http-check expect !rstatus ^5", false),
    case("string_ok", "200", "option httpchk GET /\n    http-check expect string hello", true),
    case("string_bad", "503", "option httpchk GET /\n    http-check expect string hello", false),
    case("not_string", "200", "option httpchk GET /\n    http-check expect ! string SQL\\ Error", false),
    // An empty body fails a body rule, negated or not.
    case("not_string_empty", "302", "option httpchk GET /\n    http-check expect ! string SQL\\ Error", false),
    case("not_string_ok", "503", "option httpchk GET /\n    http-check expect ! string SQL\\ Error", true),
    case("rstring_ok", "200", "option httpchk GET /\n    http-check expect rstring <!--tag:[0-9a-f]*--></html>", true),
    case("rstring_bad", "200", "option httpchk GET /\n    http-check expect rstring ^nothing", false),
    case("not_rstring", "200", "option httpchk GET /\n    http-check expect ! rstring tag:[0-9]+", false),
    case("hdr_value", "200", "option httpchk GET /\n    http-check expect hdr name X-Role value ro", true),
    case("hdr_value_bad", "200", "option httpchk GET /\n    http-check expect hdr name x-role value replica", false),
    case("fhdr_part", "200", "option httpchk GET /\n    http-check expect fhdr name x-role value ro", false),
    case("fhdr_full", "200", "option httpchk GET /\n    http-check expect fhdr name x-role value \"primary, ro\"", true),
    case("fhdr_escaped", "200", "option httpchk GET /\n    http-check expect fhdr name x-role value primary,\\ ro", true),
    case("hdr_beg", "200", "option httpchk GET /\n    http-check expect hdr name \"set-cookie\" value -m beg \"sessid=\"", true),
    case("hdr_reg", "200", "option httpchk GET /\n    http-check expect hdr name -m reg ^content-t value -m sub html", true),
    case("hdr_end", "200", "option httpchk GET /\n    http-check expect hdr name -m end -role value -m end ary", true),
    case("hdr_missing", "200", "option httpchk GET /\n    http-check expect hdr name x-missing", false),
    case("not_hdr", "200", "option httpchk GET /\n    http-check expect ! hdr name -m beg x-rol", false),
    case("not_hdr_ok", "302", "option httpchk GET /\n    http-check expect ! hdr name -m beg x-rol", true),
    case("hdr_302", "302", "option httpchk GET /\n    http-check expect hdr name location value -m str /x", true),
    case("comment_status", "503", "option httpchk GET /\n    http-check expect comment \"need 2xx\" rstatus ^2", false),
    case("comment_after", "200", "option httpchk GET /\n    http-check expect string nothere comment body-check", false),
    case("comment_rule", "503", "option httpchk GET /\n    http-check comment \"from a rule\"\n    http-check expect status 200", false),
    case("on_error_text", "503", "option httpchk GET /\n    http-check expect status 200 on-error \"custom failure\" comment c", false),
    case("on_success_text", "200", "option httpchk GET /\n    http-check expect on-success \"all good\" status 200", true),
    case("on_error_fmt", "503", "option httpchk GET /\n    http-check expect status 200 on-error \"%[be_name]/%[srv_name] failed\"", false),
    case("status_code_http", "503", "option httpchk GET /\n    http-check expect status 200 status-code \"int(599)\"", false),
    case("string_lf_http", "200", "option httpchk GET /\n    http-check expect string-lf %[str(hello)]", true),
    case("string_lf_http_bad", "200", "option httpchk GET /\n    http-check expect string-lf %[srv_name]", false),
    case("hdr_name_lf", "200", "option httpchk GET /\n    http-check set-var(check.h) str(x-role)\n    http-check expect hdr name-lf %[var(check.h)] value-lf -m beg %[str(prim)]", true),
    case("hdr_value_lf_bad", "200", "option httpchk GET /\n    http-check expect hdr name X-Role value-lf %[srv_name]", false),
    case("error_status_l4con", "503", "option httpchk GET /\n    http-check expect error-status L4CON status 200", false),
    case("error_status_rsp", "503", "option httpchk GET /\n    http-check expect error-status L7RSP status 200", false),
    case("ok_status_l6", "200", "option httpchk GET /\n    http-check expect ok-status L6OK status 200", true),
    case("ok_status_l4", "200", "option httpchk GET /\n    http-check expect ok-status L4OK string hello", true),
];

const SEND_CASES: &[Case] = &[
    case("send_default", "200", "option httpchk", true),
    case("send_full", "200", "option httpchk\n    http-check send meth POST uri /api/health?x=1 ver HTTP/1.1 hdr Host www.example.com hdr X-Check \"a b\" body \"{\\\"ping\\\":1}\"\n    http-check expect status 200", true),
    case("send_legacy", "200", "option httpchk HEAD /h HTTP/1.1\\r\\nHost:\\ www.example.com", true),
    case("send_merge", "200", "option httpchk GET /x HTTP/1.1\n    http-check send hdr Host a.example hdr Connection close", true),
    case("send_body10", "200", "option httpchk\n    http-check send meth PUT uri /b body abc", true),
    case("send_uri_ver", "302", "option httpchk\n    http-check send uri /only ver HTTP/1.1", true),
    case("send_meth_only", "200", "option httpchk POST\n    http-check send hdr content-type application/json body {}", true),
    case("send_keepalive", "200", "option httpchk\n    http-check send meth GET uri / ver HTTP/1.1 hdr Host h hdr Connection keep-alive", true),
    case("send_clen", "200", "option httpchk\n    http-check send meth POST uri / ver HTTP/1.1 hdr Content-Length 3 body abc", true),
    case("send_host10", "200", "option httpchk\n    http-check send ver HTTP/1.0 hdr Host x hdr connection close", true),
    case("send_two_hosts", "200", "option httpchk GET / HTTP/1.1\\r\\nHost:\\ legacy\n    http-check send hdr Host new", true),
];

fn compare(cases: &[Case]) -> Seen {
    let fakes: BTreeMap<String, Fake> = cases
        .iter()
        .map(|c| (c.name.to_string(), Fake::http(&response(c.code))))
        .collect();
    let backends: Vec<Backend> = cases
        .iter()
        .map(|c| Backend {
            name: c.name.into(),
            lines: format!(
                "    {}\n    server s1 {} check inter {}ms fall 1 rise 1\n",
                c.lines,
                fakes[c.name].addr,
                INTER.as_millis()
            ),
            want: up_down(c.up),
        })
        .collect();
    let head = |front: SocketAddr| {
        format!(
            "{DEFAULTS}frontend fe\n    bind {front}\n    default_backend {}\n",
            cases[0].name
        )
    };
    Diff {
        name: "hc-expect",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: show,
        min_checks: 2,
    }
    .compare()
}

#[test]
fn http_check_expect_variants_match_haproxy() {
    let got = compare(EXPECT_CASES);
    assert_eq!(got.stat["on_error_fmt/s1"][6], "on_error_fmt/s1 failed");
    assert_eq!(got.stat["on_success_text/s1"][6], "all good");
    assert_eq!(got.stat["status_code_http/s1"][5], "599");
    // A few reasons spelled out (they also hold without haproxy installed).
    let line = |name: &str| {
        got.lines
            .iter()
            .find(|l| l.contains(&format!("Server {name}/s1 is DOWN")))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        line("not_string").contains(
            "reason: Layer7 invalid response, info: \"HTTP check matched unwanted content\""
        ),
        "{}",
        line("not_string")
    );
    assert!(
        line("status_list_503")
            .contains("reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\""),
        "{}",
        line("status_list_503")
    );
}

#[test]
fn http_check_send_requests_match_haproxy() {
    let got = compare(SEND_CASES);
    assert_eq!(
        got.requests["send_default"],
        "OPTIONS / HTTP/1.0\\r\\n\\r\\n"
    );
    assert_eq!(
        got.requests["send_full"],
        r#"POST /api/health?x=1 HTTP/1.1\r\nhost: www.example.com\r\nx-check: a b\r\ncontent-length: 10\r\nconnection: close\r\n\r\n{\"ping\":1}"#
    );
    assert_eq!(
        got.requests["send_keepalive"],
        r"GET / HTTP/1.1\r\nhost: h\r\n\r\n"
    );
}
