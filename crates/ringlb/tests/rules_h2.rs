//! Rules whose effect is only seen in the log line, over HTTP/2 (h2c, `curl
//! --http2-prior-knowledge`) against haproxy 2.6 with the same config: `capture request
//! header`, `http-request capture ... len`, `http-response capture ... id`, and
//! `set-log-level` (a level changes the syslog priority, `silent` drops the line), and
//! `capture cookie` (`%CC`/`%CS`), cut to `tune.http.cookielen`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, haproxy_available, write_config, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn udp_listener() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// The next line carrying the `CAP` marker of the log-format (readiness probes log lines of
/// their own first): its priority and its message.
fn next_cap_line(s: &UdpSocket) -> (String, String) {
    let mut b = [0u8; 4096];
    for _ in 0..20 {
        let n = s.recv(&mut b).unwrap();
        let l = String::from_utf8_lossy(&b[..n]).into_owned();
        // The start-up probe's empty connection (haproxy logs it as `<BADREQ>`) is skipped.
        if l.contains("<BADREQ>") {
            continue;
        }
        if let Some((_, msg)) = l.split_once("]: CAP ") {
            let pri = l
                .split_once('>')
                .unwrap()
                .0
                .trim_start_matches('<')
                .to_string();
            return (pri, msg.trim_end().to_string());
        }
    }
    panic!("no CAP log line");
}

fn config(front: SocketAddr, log: SocketAddr, origin: SocketAddr) -> String {
    format!(
        r#"global
    nbthread 1
    log {log} local0
    tune.http.cookielen 8
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {front} proto h2
    log-format "CAP %HM %HP %ST %hr %hs %CC %CS"
    capture cookie SESS len 10
    capture request header X-Trace len 5
    http-request capture req.hdr(x-id) len 4
    declare capture response len 12
    http-request set-log-level silent if {{ path /quiet }}
    http-request set-log-level err if {{ path /loud }}
    http-response capture res.hdr(x-origin),upper id 0
    default_backend be
backend be
    server s1 {origin}
"#
    )
}

fn get(front: SocketAddr, path: &str) -> String {
    let out = curl(
        &[
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "-H",
            "X-Trace: abcdefgh",
            "-H",
            "X-Id: 123456",
            "-H",
            "Cookie: a=1; SESSID=abcdefghijkl; SESS2=x",
            &format!("http://{front}{path}"),
        ],
        T,
    )
    .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn h2_captures_and_log_levels_match_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("rules-h2");
    let (hsock, hlog) = udp_listener();
    let (rsock, rlog) = udp_listener();
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &config(hf, hlog, origin.addr()));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(rf, rlog, origin.addr())).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let mut lines = Vec::new();
    for (front, sock) in [(hf, &hsock), (rf, &rsock)] {
        // `/quiet` logs nothing: the next line is the `/loud` one.
        assert_eq!(get(front, "/quiet"), "2 200");
        assert_eq!(get(front, "/loud"), "2 200");
        let loud = next_cap_line(sock);
        assert_eq!(get(front, "/echo"), "2 200");
        let plain = next_cap_line(sock);
        // The request line carries each proxy's own address (`:authority`): masked.
        let mask = |(p, m): (String, String)| (p, m.replace(&front.to_string(), "FRONT"));
        lines.push((mask(loud), mask(plain)));
    }
    let (h, r) = (&lines[0], &lines[1]);
    assert_eq!(r, h, "ringlb vs haproxy");
    // And what they agree on is what the config asks for: local0.err = 131, info = 134.
    assert_eq!(r.0 .0, "131", "{r:?}");
    assert_eq!(r.1 .0, "134", "{r:?}");
    assert!(
        r.1 .1
            .starts_with("GET http://FRONT/echo 200 {abcde|1234} {O} SESSID=a -"),
        "{r:?}"
    );
}
