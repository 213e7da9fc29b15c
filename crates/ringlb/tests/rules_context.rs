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
    let origin = Origin::start("rules-context-origin");
    let dir = TempDir::new("rules-context-run");
    let front = free_addr();
    let cfg = write_config(
        &dir,
        &format!(
            "{HEAD}frontend f\n    bind {front}\n\
    http-response set-header x-path-acl yes if {{ path_beg / }}\n\
    http-response set-header x-not-path-acl yes if !{{ path_beg / }}\n\
    http-response set-header x-method-acl yes if {{ method GET }}\n\
    default_backend b\nbackend b\n    server s1 {}\n",
            origin.addr()
        ),
    );
    let names: &[&str] = if haproxy_required() {
        &["ringlb", "haproxy"]
    } else {
        &["ringlb"]
    };
    for &name in names {
        // One proxy at a time on the address.
        let mut proxy = if name == "haproxy" {
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
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(!head.contains("x-path-acl"), "{name}: {head}");
        assert!(head.contains("x-not-path-acl: yes"), "{name}: {head}");
        assert!(head.contains("x-method-acl: yes"), "{name}: {head}");
        let _ = proxy.stop(T);
    }
}
