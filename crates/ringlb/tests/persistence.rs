//! Cookie persistence (`cookie NAME insert ...`, server `cookie`) against haproxy 2.6: the same
//! config and raw requests through both; the client must see the same answers (`set-cookie`
//! included) and the servers the same requests (`indirect` strips the cookie).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, send_raw_reply, write_config, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn config(f1: SocketAddr, f2: SocketAddr, a: SocketAddr, b: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {f1}\n    default_backend be\nfrontend fe2\n    bind {f2}\n    default_backend be2\nbackend be\n    balance roundrobin\n    cookie SERVERID insert indirect nocache\n    server s1 {a} cookie s1\n    server s2 {b} cookie s2\nbackend be2\n    balance roundrobin\n    cookie SRV insert httponly secure domain .example.com\n    server s1 {a} cookie c1\n    server s2 {b} cookie c2\n"
    )
}

#[test]
fn insert_indirect_and_attributes_match_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = TempDir::new("persist");
    let (h1, h2, r1, r2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let hcfg = write_config(&dir, &config(h1, h2, a.addr(), b.addr()));
    let _h = Haproxy::start(&hcfg, &[h1, h2]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(r1, r2, a.addr(), b.addr())).unwrap();
    let _r = Ringlb::start(&rpath, &[r1, r2]);
    let close = "Connection: close\r\n";
    let cases: Vec<(bool, String)> = vec![
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: SERVERID=s2; other=1\r\n{close}\r\n")),
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: a=1; SERVERID=s1\r\n{close}\r\n")),
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: SERVERID=zz\r\n{close}\r\n")),
        (false, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: SERVERID=s2\r\nCookie: b=2\r\n{close}\r\n")),
        (true, format!("GET /echo HTTP/1.1\r\nHost: a\r\n{close}\r\n")),
        (true, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: a=1; SRV=c2\r\n{close}\r\n")),
        (true, format!("GET /echo HTTP/1.1\r\nHost: a\r\nCookie: SRV=nope\r\n{close}\r\n")),
    ];
    for (second, req) in &cases {
        let (h, r) = if *second { (h2, r2) } else { (h1, r1) };
        let hr = send_raw_reply(h, req.as_bytes(), T).unwrap();
        let rr = send_raw_reply(r, req.as_bytes(), T).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&rr.bytes),
            String::from_utf8_lossy(&hr.bytes),
            "{req:?}: ringlb (left) vs haproxy (right)"
        );
    }
}
