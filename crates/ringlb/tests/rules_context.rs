//! Where a sample fetch can be used, as haproxy 2.6 decides it: an ACL that reads the request
//! URI or headers in an `http-response` rule (or the response in an `http-request`,
//! `use_backend` or `redirect` rule) never matches, with haproxy's warning; a log-format or
//! `set-var` expression that does so is a configuration error. `ringlb -c` and `haproxy -c`
//! are compared on the same files, and a running proxy shows the ACL never matching.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use ringlb_testkit::{
    bin_path, curl, free_addr, haproxy_required, write_config, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

const HEAD: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n";

/// The warning and alert lines of a `-c` run, from `parsing [` on (the tag and pid dropped),
/// with the validity verdict.
fn check(bin: &str, cfg: &std::path::Path) -> (bool, Vec<String>) {
    let out = Command::new(bin)
        .arg("-c")
        .arg("-f")
        .arg(cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let lines = text
        .lines()
        .filter(|l| {
            l.contains("[WARNING]") && l.contains("never match") || l.contains("involves keywords")
        })
        .filter_map(|l| l.find("parsing [").map(|i| l[i..].to_owned()))
        .collect();
    (out.status.success(), lines)
}

/// ACLs in rules that cannot see what they read: every warning, in file order.
const WARNED: &str = "\
listen l
    bind 127.0.0.1:1
    http-response set-header X 1 if { path_beg /a }
    http-request set-header Y 1 if { status 200 }
    acl two path_beg /a
    acl two status 200
    http-response set-header Z 1 if two
    acl three path_beg /b
    acl three path_end /c
    http-response set-header W 1 if three !three
    http-response set-header V 1 if { method GET } || { capture.req.uri -m found }
    http-response set-header U 1 if { req.hdr(host) -m found } || { hdr(host) -m found }
    http-after-response set-header T 1 if { url_param(a) -m found }
    http-response set-header S 1 if HTTP_1.1 || METH_GET
    http-request set-header P 1 if { ssl_bc }
    server s1 127.0.0.1:2
backend b2
    http-request set-header Y 1 if { status 200 }
    http-response set-header Q 1 if { query -m found }
    server s1 127.0.0.1:2
frontend f2
    bind 127.0.0.1:3
    redirect location /x if { status 200 }
    use_backend b2 if { res.hdr(a) -m found }
    http-request set-header R 1 if { res.ver 1.1 }
    default_backend b2
";

#[test]
fn acls_that_cannot_see_their_data_are_warned_like_haproxy() {
    let dir = TempDir::new("rules-context");
    let cfg = write_config(&dir, &format!("{HEAD}{WARNED}"));
    let ours = check(&bin_path("ringlb").display().to_string(), &cfg);
    assert!(ours.0, "valid with warnings: {:?}", ours.1);
    assert_eq!(ours.1.len(), 13, "{:#?}", ours.1);
    assert!(ours.1[0].ends_with(
        "anonymous acl will never match because it uses keyword 'path_beg' which is incompatible with 'backend http-response header rule'"
    ));
    if haproxy_required() {
        let theirs = check(&ringlb_testkit::haproxy_bin(), &cfg);
        assert_eq!(ours, theirs, "ringlb -c vs haproxy -c");
    }
}

#[test]
fn expressions_that_cannot_see_their_data_are_errors_like_haproxy() {
    let cases = [
        ("http-response set-header X %[path]", false),
        ("http-response set-header X %[cook(a)]", false),
        ("http-response set-header X %[url_param(a)]", false),
        ("http-response set-var(txn.x) req.hdr(host)", false),
        ("http-request set-header X %[status]", false),
        ("http-request set-var(txn.y) res.hdr(a)", false),
        ("http-response set-header X %[hdr(host)]", true),
        ("http-response set-header X %[capture.req.method]", true),
        ("http-response set-header X %[method]", true),
        ("http-response set-header X %[var(txn.x)]", true),
        ("http-request set-header X %[ssl_bc_protocol]", false),
        ("http-response set-header X %[ssl_bc_protocol]", true),
    ];
    let dir = TempDir::new("rules-context-lf");
    let haproxy = haproxy_required();
    for (rule, valid) in cases {
        let text = format!(
            "{HEAD}frontend f\n    bind 127.0.0.1:1\n    {rule}\n    default_backend b\nbackend b\n    server s1 127.0.0.1:2\n"
        );
        let cfg = write_config(&dir, &text);
        let ours = check(&bin_path("ringlb").display().to_string(), &cfg);
        assert_eq!(ours.0, valid, "{rule}");
        if haproxy {
            let theirs = Haproxy::check(&cfg).is_ok();
            assert_eq!(theirs, valid, "haproxy on {rule}");
        }
    }
}

#[test]
fn an_acl_on_the_request_uri_never_matches_in_http_response() {
    let heads = heads_through(
        "rules-context-run",
        "    http-response set-header x-path-acl yes if { path_beg / }\n\
    http-response set-header x-not-path-acl yes if !{ path_beg / }\n\
    http-response set-header x-method-acl yes if { method GET }\n",
    );
    for (name, head) in heads {
        assert!(!head.contains("x-path-acl"), "{name}: {head}");
        assert!(head.contains("x-not-path-acl: yes"), "{name}: {head}");
        assert!(head.contains("x-method-acl: yes"), "{name}: {head}");
    }
}

/// The response head (lower-cased) of `GET /` through a frontend whose rules are `rules`, in
/// front of a test origin: ringlb's, then haproxy's when it is installed (one proxy at a time
/// on the address).
fn heads_through(name: &str, rules: &str) -> Vec<(&'static str, String)> {
    let origin = Origin::start(&format!("{name}-origin"));
    let dir = TempDir::new(name);
    let front = free_addr();
    let cfg = write_config(
        &dir,
        &format!(
            "{HEAD}frontend f\n    bind {front}\n{rules}    default_backend b\nbackend b\n    server s1 {}\n",
            origin.addr()
        ),
    );
    let names: &[&'static str] = if haproxy_required() {
        &["ringlb", "haproxy"]
    } else {
        &["ringlb"]
    };
    let mut heads = Vec::new();
    for &which in names {
        let mut proxy = if which == "haproxy" {
            Haproxy::start(&cfg, &[front])
        } else {
            Ringlb::start(&cfg, &[front])
        };
        let out = curl(
            &[
                "-s",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &format!("http://{front}/"),
            ],
            T,
        )
        .unwrap();
        heads.push((
            which,
            String::from_utf8_lossy(&out.stdout).to_ascii_lowercase(),
        ));
        let _ = proxy.stop(T);
    }
    heads
}

/// The place and text of every diagnostic about where a fetch can be used, from a `-c` run:
/// `(line, text from the message's first word on)`, whatever prefix each program puts first
/// (haproxy prints `Parsing [f:9]: failed to parse log-format : ...` for an error that ringlb
/// prints as `parsing [f:9] : 'log-format' : ...`).
fn diagnostics(bin: &str, cfg: &std::path::Path) -> (bool, Vec<(u32, String)>) {
    let out = Command::new(bin)
        .arg("-c")
        .arg("-f")
        .arg(cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    const MARKERS: [&str; 6] = [
        "L6 sample fetch",
        "Proxy '",
        "sample fetch <",
        "anonymous acl",
        "acl '",
        "fetch method '",
    ];
    let line_of = |l: &str| -> u32 {
        let at = l.find(".cfg:").map(|i| i + 5).unwrap_or(l.len());
        l[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    };
    let mut found: Vec<(u32, String)> = text
        .lines()
        .filter(|l| l.contains("[WARNING]") || l.contains("[ALERT]"))
        .filter_map(|l| {
            let at = MARKERS.iter().filter_map(|m| l.find(m)).min()?;
            Some((line_of(l), l[at..].to_owned()))
        })
        .collect();
    found.sort();
    (out.status.success(), found)
}

/// Layer-6 fetches (raw buffers) on HTTP proxies, TCP rule sets and log-time formats: the same
/// verdict, lines and words as haproxy 2.6.
#[test]
fn buffers_tcp_rule_sets_and_log_formats_are_checked_like_haproxy() {
    let cases: &[(&str, bool, usize)] = &[
        // HTTP proxies ignore layer-6 fetches, with a warning per condition.
        (
            "frontend f\n    bind 127.0.0.1:1\n    log stdout format raw local0\n    tcp-request inspect-delay 1s\n\
    tcp-request content accept if { req.len gt 0 }\n\
    http-request deny if { req.payload(0,3) -m str GET }\n\
    http-request set-header x-a %[req.payload(0,3)]\n\
    http-response deny if { res.len gt 10 }\n\
    http-response deny if { req.len gt 10 }\n\
    use_backend b if { req.ssl_sni -m found }\n\
    acl l6 req.len gt 1\n    acl l6 path /x\n    http-request deny if l6\n\
    unique-id-format %[req.len]\n\
    default_backend b\n",
            true, 9
        ),
        ("frontend f\n    bind 127.0.0.1:1\n    http-response set-header x %[req.len]\n    default_backend b\n", false, 1),
        ("frontend f\n    bind 127.0.0.1:1\n    http-response set-var(txn.a) req.len\n    default_backend b\n", false, 1),
        ("frontend f\n    bind 127.0.0.1:1\n    unique-id-format %[res.hdr(x)]\n    default_backend b\n", false, 1),
        // Log-time formats: the messages are gone.
        ("frontend f\n    bind 127.0.0.1:1\n    log stdout format raw local0\n    log-format \"%[path]\"\n    default_backend b\n", false, 1),
        ("frontend f\n    bind 127.0.0.1:1\n    log stdout format raw local0\n    log-format \"%[hdr(host)]\"\n    default_backend b\n", false, 1),
        ("frontend f\n    bind 127.0.0.1:1\n    log stdout format raw local0\n    error-log-format \"%[res.len]\"\n    default_backend b\n", false, 1),
        (
            "frontend f\n    bind 127.0.0.1:1\n    log stdout format raw local0\n    capture request header host len 10\n\
    log-format \"%[status] %[method] %[capture.req.hdr(0)] %[src]\"\n    default_backend b\n",
            true, 0
        ),
        // TCP rule sets name their directive.
        (
            "frontend f\n    bind 127.0.0.1:1\n    mode tcp\n    tcp-request inspect-delay 1s\n\
    tcp-request connection reject if { req.len gt 10 }\n\
    tcp-request session reject if { req.len gt 10 }\n\
    tcp-request content reject if { res.len gt 10 }\n\
    tcp-request content reject if { path /x }\n\
    default_backend t\n\
backend t2\n    mode tcp\n    acl x req.len gt 1\n    tcp-response content reject if x\n    server s1 127.0.0.1:2\n",
            true, 4
        ),
        (
            "frontend f\n    bind 127.0.0.1:1\n    mode tcp\n    tcp-request inspect-delay 1s\n\
    tcp-request content set-var(txn.a) res.len\n    default_backend t\n",
            false, 1
        ),
    ];
    let backends = "backend b\n    server s1 127.0.0.1:2\nbackend t\n    mode tcp\n    server s1 127.0.0.1:2\n";
    let dir = TempDir::new("rules-context-l6");
    let haproxy = haproxy_required();
    for (body, valid, count) in cases {
        let cfg = write_config(&dir, &format!("{HEAD}{body}{backends}"));
        let ours = diagnostics(&bin_path("ringlb").display().to_string(), &cfg);
        assert_eq!(ours.0, *valid, "{body}\n{:#?}", ours.1);
        assert_eq!(ours.1.len(), *count, "{body}\n{:#?}", ours.1);
        if haproxy {
            let theirs = diagnostics(&ringlb_testkit::haproxy_bin(), &cfg);
            assert_eq!(ours, theirs, "ringlb -c vs haproxy -c on\n{body}");
        }
    }
}

/// At run time an HTTP proxy's layer-6 fetches find no buffer: a rule on the raw request
/// bytes never matches, in haproxy and in ringlb.
#[test]
fn layer6_rules_never_match_on_an_http_proxy() {
    let heads = heads_through(
        "rules-context-l6-run",
        "    tcp-request inspect-delay 1s\n\
    tcp-request content reject if { req.payload(0,3) -m str GET }\n\
    http-request deny if { req.payload(0,3) -m str GET }\n\
    http-request deny if { req.ssl_sni -m found }\n\
    http-response set-header x-res-payload yes if { res.payload(0,4) -m found }\n",
    );
    for (name, head) in heads {
        assert!(head.starts_with("http/1.1 200"), "{name}: {head}");
        assert!(!head.contains("x-res-payload"), "{name}: {head}");
    }
}
