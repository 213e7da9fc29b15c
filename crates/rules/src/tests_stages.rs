//! Where fetches can be used: haproxy 2.6's answers (recorded with `haproxy -c`) for layer-6
//! fetches, log-time formats and TCP rule sets.

use crate::fetch::{Needs, Stage};
use crate::ProxyRules;

const HEAD: &str =
    "defaults\n mode http\n timeout connect 5s\n timeout client 5s\n timeout server 5s\n";

fn frontend(body: &str) -> Result<ProxyRules, crate::CompileError> {
    let text = format!(
        "{HEAD}frontend f\n bind 127.0.0.1:1\n tcp-request inspect-delay 1s\n{body}\n default_backend b\nbackend b\n server s 127.0.0.1:2\n"
    );
    let l = ringlb_config::parse_str("t.cfg", &text).unwrap_or_else(|d| panic!("{d}"));
    ProxyRules::frontend(l.config.frontend("f").unwrap(), &l.config)
}

fn warnings(r: &ProxyRules) -> Vec<String> {
    r.warnings.iter().map(|w| w.msg.clone()).collect()
}

fn proxy_warnings(r: &ProxyRules) -> Vec<String> {
    r.proxy_warnings.iter().map(|w| w.msg.clone()).collect()
}

#[test]
fn what_each_stage_can_read() {
    use Needs as N;
    use Stage as S;
    // (needs, stages where available)
    let table: &[(Needs, &[Stage])] = &[
        (
            N::RequestHeaders,
            &[S::RequestContent, S::HttpRequest, S::UniqueId],
        ),
        (
            N::RequestBuffer,
            &[S::RequestContent, S::HttpRequest, S::UniqueId],
        ),
        (N::ResponseHeaders, &[S::ResponseContent, S::HttpResponse]),
        (N::ResponseBuffer, &[S::ResponseContent, S::HttpResponse]),
        (N::Response, &[S::ResponseContent, S::HttpResponse, S::Log]),
        (
            N::ServerConnection,
            &[S::ResponseContent, S::HttpResponse, S::Log],
        ),
        (
            N::EitherHeaders,
            &[
                S::RequestContent,
                S::HttpRequest,
                S::UniqueId,
                S::ResponseContent,
                S::HttpResponse,
            ],
        ),
    ];
    let all = [
        S::TcpConnection,
        S::TcpSession,
        S::RequestContent,
        S::HttpRequest,
        S::ResponseContent,
        S::HttpResponse,
        S::UniqueId,
        S::Log,
    ];
    for (needs, yes) in table {
        for s in all {
            assert_eq!(needs.available(s), yes.contains(&s), "{needs:?} at {s:?}");
        }
    }
    assert!(all.iter().all(|&s| N::Any.available(s)));
}

#[test]
fn log_formats_read_only_what_outlives_the_messages() {
    for (format, refused) in [
        ("%[path]", Some("needs 'HTTP request headers'")),
        ("%[res.hdr(x)]", Some("needs 'HTTP response headers'")),
        (
            "%[hdr(host)]",
            Some("needs 'HTTP request headers,HTTP response headers'"),
        ),
        ("%[req.len]", Some("needs 'request buffer'")),
        ("%[res.payload(0,1)]", Some("needs 'response buffer'")),
        (
            "%[payload(0,1)]",
            Some("needs 'request buffer,response buffer'"),
        ),
        (
            "%[status] %[method] %[src] %[capture.req.hdr(0)] %[ssl_bc]",
            None,
        ),
    ] {
        for kw in ["log-format", "error-log-format", "log-format-sd"] {
            let r = frontend(&format!(
                " capture request header host len 10\n {kw} \"{format}\""
            ));
            match (refused, r) {
                (None, Ok(_)) => {}
                (Some(want), Err(e)) => {
                    assert_eq!(e.keyword, kw);
                    assert!(e.msg.contains(want), "{kw} {format}: {}", e.msg);
                    assert!(e.msg.contains("which is not available here"), "{}", e.msg);
                }
                (want, got) => panic!("{kw} {format}: want refused={want:?}, got {got:?}"),
            }
        }
    }
}

#[test]
fn a_log_format_error_names_the_line_that_declared_it() {
    let text = format!(
        "{HEAD} log-format \"%[path]\"\nfrontend f\n bind 127.0.0.1:1\n default_backend b\nbackend b\n server s 127.0.0.1:2\n"
    );
    let l = ringlb_config::parse_str("t.cfg", &text).unwrap_or_else(|d| panic!("{d}"));
    let e = ProxyRules::frontend(l.config.frontend("f").unwrap(), &l.config).unwrap_err();
    assert_eq!((e.loc.line, e.keyword.as_str()), (6, "log-format"));
}

#[test]
fn unique_id_reads_the_request_and_warns_on_buffers() {
    assert!(frontend(" unique-id-format \"%[path]\"").is_ok());
    let e = frontend(" unique-id-format \"%[res.hdr(x)]\"").unwrap_err();
    assert!(e.msg.contains("needs 'HTTP response headers'"), "{}", e.msg);
    let r = frontend(" unique-id-format \"%[req.len]\"").unwrap();
    assert_eq!(
        warnings(&r),
        ["L6 sample fetch <req.len]> ignored in HTTP log-format string."]
    );
}

#[test]
fn buffers_in_http_strings_are_warned_or_refused_by_direction() {
    let r = frontend(" http-request set-header x %[payload(0,1)]").unwrap();
    assert_eq!(
        warnings(&r),
        ["L6 sample fetch <payload(0,1)]> ignored in HTTP log-format string."]
    );
    let e = frontend(" http-response set-header x %[req.len]").unwrap_err();
    assert!(e.msg.contains("needs 'request buffer'"), "{}", e.msg);
    let e = frontend(" http-response set-var(txn.a) req.len").unwrap_err();
    assert!(
        e.msg.ends_with(
            "extracts information from 'request buffer', none of which is available here."
        ),
        "{}",
        e.msg
    );
}

#[test]
fn layer6_conditions_on_http_proxies_are_warned_once_per_condition() {
    let r = frontend(
        " acl big req.len gt 1\n acl big path /x\n http-request deny if big\n\
          http-request deny if { req.len gt 1 } { req.payload(0,1) -m found }\n\
          http-request deny if { path /y }\n\
          tcp-request content reject if { req.payload(0,3) -m str GET }",
    )
    .unwrap();
    assert_eq!(
        proxy_warnings(&r),
        [
            "Proxy 'f': L6 sample fetches ignored on HTTP proxies (declared at t.cfg:11).",
            "Proxy 'f': L6 sample fetches ignored on HTTP proxies (declared at t.cfg:12).",
            "Proxy 'f': L6 sample fetches ignored on HTTP proxies (declared at t.cfg:14).",
        ]
    );
    // The same rule in a response: the ACL never matches there either.
    let r = frontend(" http-response deny if { req.len gt 10 }").unwrap();
    assert_eq!(
        warnings(&r),
        ["anonymous acl will never match because it uses keyword 'req.len' which is incompatible with 'frontend http-response header rule'"]
    );
    assert_eq!(proxy_warnings(&r).len(), 1);
}

#[test]
fn tcp_rule_sets_name_their_directive() {
    let r = frontend(
        " tcp-request connection reject if { path /x }\n tcp-request content reject if { res.len gt 1 }\n\
          tcp-request content reject if { path /x }",
    )
    .unwrap();
    assert_eq!(
        warnings(&r),
        [
            "anonymous acl will never match in 'tcp-request connection' because it uses keyword 'path' which is incompatible with 'frontend tcp-request connection rule'",
            "anonymous acl will never match in 'tcp-request content' because it uses keyword 'res.len' which is incompatible with 'frontend tcp-request content rule'",
        ]
    );
    let e = frontend(" tcp-request content set-var(txn.a) res.len").unwrap_err();
    assert!(
        e.msg.ends_with(
            "extracts information from 'response buffer', none of which is available here"
        ),
        "{}",
        e.msg
    );
}

#[test]
fn tcp_proxies_read_buffers_without_warning() {
    let text = "defaults\n mode tcp\n timeout connect 5s\n timeout client 5s\n timeout server 5s\n\
        frontend f\n bind 127.0.0.1:1\n tcp-request inspect-delay 1s\n\
         tcp-request content accept if { req.ssl_sni -m found }\n default_backend b\n\
        backend b\n acl x req.len gt 1\n tcp-response content reject if x\n server s 127.0.0.1:2\n";
    let l = ringlb_config::parse_str("t.cfg", text).unwrap_or_else(|d| panic!("{d}"));
    let f = ProxyRules::frontend(l.config.frontend("f").unwrap(), &l.config).unwrap();
    assert!(f.warnings.is_empty() && f.proxy_warnings.is_empty());
    let b = ProxyRules::backend(l.config.backend("b").unwrap(), &l.config).unwrap();
    assert_eq!(
        warnings(&b),
        ["acl 'x' will never match in 'tcp-response content' because it only involves keywords that are incompatible with 'backend tcp-response content rule'"]
    );
}
