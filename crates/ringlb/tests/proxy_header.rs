//! `option http-use-proxy-header` through the real binary, byte-compared with haproxy 2.6 on
//! the same config: a proxied request (absolute URI, and every HTTP/2 request, whose target
//! haproxy rebuilds in absolute form) is challenged with `407` + `Proxy-Authenticate` and
//! authenticates with `Proxy-Authorization`; an origin-form request keeps `401` and
//! `Authorization`; `Proxy-Connection: close` does not close the connection (haproxy 2.6
//! takes nothing else from the option); a frontend without the option is unchanged.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, haproxy_required, write_config, ChildGuard, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

struct Fronts {
    with: SocketAddr,
    with_h2: SocketAddr,
    without: SocketAddr,
}

fn start(haproxy: bool, origin: &Origin) -> (ChildGuard, Fronts) {
    let f = Fronts {
        with: free_addr(),
        with_h2: free_addr(),
        without: free_addr(),
    };
    let cfg = format!(
        "global\n    nbthread 1\n\
defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
userlist L\n    user u insecure-password p\n\
frontend px\n    bind {}\n    bind {} proto h2\n    option http-use-proxy-header\n\
    http-request auth realm R unless {{ http_auth(L) }} || {{ path_beg /open }}\n\
    http-request return status 200 content-type text/plain lf-string \"user=%[http_auth_user] type=%[http_auth_type]\\n\" if {{ path_beg /who }}\n\
    default_backend b\n\
frontend plain\n    bind {}\n\
    http-request auth realm R unless {{ http_auth(L) }} || {{ path_beg /open }}\n\
    default_backend b\n\
backend b\n    server s1 {}\n",
        f.with,
        f.with_h2,
        f.without,
        origin.addr()
    );
    let dir = TempDir::new(if haproxy { "pxhdr-haproxy" } else { "pxhdr" });
    let path = write_config(&dir, &cfg);
    let binds = [f.with, f.with_h2, f.without];
    let proxy = if haproxy {
        Haproxy::start(&path, &binds)
    } else {
        Ringlb::start(&path, &binds)
    };
    (proxy, f)
}

/// Sends each request on one connection; the status line and the auth headers of each
/// response (or `closed`), in order.
fn exchange(addr: SocketAddr, requests: &[&str]) -> Vec<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut out = Vec::new();
    for r in requests {
        if s.write_all(r.as_bytes()).is_err() {
            out.push("closed".to_owned());
            continue;
        }
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        let text = loop {
            let n = s.read(&mut b).unwrap_or(0);
            if n == 0 {
                break None;
            }
            got.extend_from_slice(&b[..n]);
            let t = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = t.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break Some((head.to_owned(), body.to_owned()));
                }
            }
        };
        match text {
            None => out.push("closed".to_owned()),
            Some((head, body)) => {
                let mut lines = head.lines();
                let mut summary = lines.next().unwrap_or_default().to_owned();
                for l in lines {
                    let lower = l.to_ascii_lowercase();
                    if lower.starts_with("www-authenticate")
                        || lower.starts_with("proxy-authenticate")
                    {
                        summary.push_str(" | ");
                        summary.push_str(&lower);
                    }
                }
                if body.starts_with("user=") {
                    summary.push_str(" | ");
                    summary.push_str(body.trim_end());
                }
                out.push(summary);
            }
        }
    }
    out
}

/// Credentials `u:p`.
const CRED: &str = "Basic dTpw";

fn scenario(f: &Fronts) -> Vec<String> {
    let r = |target: &str, extra: &str| format!("GET {target} HTTP/1.1\r\nhost: x\r\n{extra}\r\n");
    let mut all = Vec::new();
    for front in [f.with, f.without] {
        all.extend(exchange(
            front,
            &[
                &r("http://x/secret", ""),
                &r("/secret", ""),
                &r(
                    "http://x/secret",
                    &format!("proxy-authorization: {CRED}\r\n"),
                ),
                &r("http://x/secret", &format!("authorization: {CRED}\r\n")),
                &r("/secret", &format!("proxy-authorization: {CRED}\r\n")),
                &r("/secret", &format!("authorization: {CRED}\r\n")),
                &r("http://x/open", "proxy-connection: close\r\n"),
                &r("/open", ""),
            ],
        ));
    }
    all.extend(exchange(
        f.with,
        &[&r(
            "http://x/who",
            &format!("proxy-authorization: {CRED}\r\n"),
        )],
    ));
    // HTTP/2: status and challenge header, through curl.
    for extra in [
        None,
        Some(format!("proxy-authorization: {CRED}")),
        Some(format!("authorization: {CRED}")),
    ] {
        let url = format!("http://{}/secret", f.with_h2);
        let mut args = vec![
            "--http2-prior-knowledge",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ];
        if let Some(h) = &extra {
            args.extend(["-H", h.as_str()]);
        }
        let out = curl(&args, T).unwrap();
        all.push(format!("h2 {}", String::from_utf8_lossy(&out.stdout)));
    }
    all
}

#[test]
fn proxied_requests_use_proxy_authentication_as_in_haproxy() {
    let origin = Origin::start("pxhdr-origin");
    let (_ours, f) = start(false, &origin);
    let got = scenario(&f);
    // What the option means, independently of haproxy.
    assert_eq!(
        got[0],
        "HTTP/1.1 407 Unauthorized | proxy-authenticate: basic realm=\"r\""
    );
    assert_eq!(
        got[1],
        "HTTP/1.1 401 Unauthorized | www-authenticate: basic realm=\"r\""
    );
    assert!(got[2].starts_with("HTTP/1.1 200"), "{got:?}");
    assert!(got[3].starts_with("HTTP/1.1 407"), "{got:?}");
    assert!(
        got[6].starts_with("HTTP/1.1 200") && got[7].starts_with("HTTP/1.1 200"),
        "{got:?}"
    );
    assert!(
        got[8].starts_with("HTTP/1.1 401"),
        "without the option: {got:?}"
    );
    assert!(
        got[11].starts_with("HTTP/1.1 200"),
        "without the option: {got:?}"
    );
    assert_eq!(got[16], "HTTP/1.1 200 OK | user=u type=Basic");
    assert_eq!(&got[17..], ["h2 407", "h2 200", "h2 407"]);
    if haproxy_required() {
        let (_theirs, f) = start(true, &origin);
        assert_eq!(got, scenario(&f), "ringlb vs haproxy");
    }
}
