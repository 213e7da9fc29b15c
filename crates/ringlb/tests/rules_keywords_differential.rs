//! Proxy keywords of the rule language against haproxy 2.6, same config and raw requests
//! through both, byte-identical answers (and what the origin's `/echo` saw): `userlist` with
//! `http_auth` / `http_auth_group` and `http-request auth realm` (insecure and SHA-512 crypt
//! passwords), old-style `redirect` (run after every `http-request` rule), `option
//! originalto`, `monitor fail`, and `tcp-request connection|session set-src`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, send_raw_reply, write_config, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn config(front: SocketAddr, front2: SocketAddr, origin: SocketAddr) -> String {
    format!(
        r#"global
    nbthread 1
userlist admins
    group ops users alice
    group dev
    user alice insecure-password s3cret
    user carol password $6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1 groups dev
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 2s
frontend fe
    bind {front}
    monitor-uri /health
    acl site_dead hdr(x-dead) -m found
    monitor fail if site_dead
    redirect prefix /new code 301 if {{ path_beg /old }}
    redirect location /100%25 if {{ path /pct }}
    http-request deny deny_status 410 if {{ path /old/gone }}
    http-request auth realm Ops unless {{ http_auth_group(admins) ops }} || !{{ path_beg /ops }}
    http-request auth unless {{ http_auth(admins) }} || !{{ path_beg /priv }}
    http-request set-header X-User %[http_auth_user] if {{ path_beg /priv }}
    option originalto
    default_backend be
backend be
    option originalto header X-Dst except 10.0.0.0/8
    server s1 {origin}
frontend fe2
    bind {front2}
    tcp-request connection set-src ipv4(192.0.2.7)
    tcp-request session set-src-port int(4242)
    http-request return status 200 content-type text/plain lf-string "%[src] %[src_port]"
"#
    )
}

fn exchange(addr: SocketAddr, req: &str) -> String {
    let reply = send_raw_reply(addr, req.as_bytes(), T).unwrap();
    format!(
        "{}\n[end: {:?}]",
        String::from_utf8_lossy(&reply.bytes),
        reply.end
    )
}

/// `Authorization: Basic` for `user:pass`.
fn basic(user_pass: &str) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = user_pass.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Authorization: Basic {out}\r\n")
}

#[test]
fn auth_redirect_originalto_monitor_match_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("kw-diff");
    let (hf, rf, hf2, rf2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let hpath = write_config(&dir, &config(hf, hf2, origin.addr()));
    let _h = Haproxy::start(&hpath, &[hf, hf2]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(rf, rf2, origin.addr())).unwrap();
    let _r = Ringlb::start(&rpath, &[rf, rf2]);
    let close = "Connection: close\r\n";
    let get =
        |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nHost: a\r\n{extra}{close}\r\n");
    let cases: Vec<(&str, String)> = vec![
        ("monitor ok", get("/health", "")),
        ("monitor fail", get("/health", "X-Dead: 1\r\n")),
        ("legacy redirect", get("/old/a?q=1", "")),
        ("http-request deny before redirect", get("/old/gone", "")),
        ("redirect location verbatim", get("/pct", "")),
        ("originalto both", get("/echo", "")),
        ("priv no credentials", get("/priv", "")),
        ("priv insecure ok", get("/priv", &basic("alice:s3cret"))),
        ("priv insecure bad", get("/priv", &basic("alice:nope"))),
        ("priv sha512 ok", get("/priv", &basic("carol:Hello world!"))),
        (
            "priv sha512 bad",
            get("/priv", &basic("carol:hello world!")),
        ),
        ("priv unknown user", get("/priv", &basic("bob:s3cret"))),
        ("ops group member", get("/ops", &basic("alice:s3cret"))),
        (
            "ops not in group",
            get("/ops", &basic("carol:Hello world!")),
        ),
    ];
    for (name, req) in &cases {
        let h = exchange(hf, req);
        let r = exchange(rf, req);
        assert!(h.len() > 20, "{name}: haproxy answered nothing");
        assert_eq!(r, h, "{name}: ringlb (left) differs from haproxy (right)");
    }
    // `tcp-request connection|session set-src|set-src-port`.
    let (h, r) = (exchange(hf2, &get("/", "")), exchange(rf2, &get("/", "")));
    assert_eq!(
        r, h,
        "tcp set-src: ringlb (left) differs from haproxy (right)"
    );
    assert!(r.contains("\r\n\r\n192.0.2.7 4242"), "{r}");
    // What they agree on is what the config asks for.
    let r = exchange(rf, &get("/health", "X-Dead: 1\r\n"));
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    let r = exchange(rf, &get("/old/gone", ""));
    assert!(r.starts_with("HTTP/1.1 410"), "{r}");
    let r = exchange(rf, &get("/ops", &basic("carol:Hello world!")));
    // haproxy 2.6 writes its header names in lower case (`www-authenticate`).
    assert!(
        r.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"ops\""),
        "{r}"
    );
}
