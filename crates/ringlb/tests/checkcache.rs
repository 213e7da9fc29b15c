//! `option checkcache` through the real binary, against haproxy 2.6 on the same config: a
//! table of responses (status, `Set-Cookie`, `Cache-Control`, `Pragma`, `Expires`, validators,
//! request methods) from an origin in the test, each either forwarded or blocked by both
//! proxies alike; `http-response` rules run before the check (a deleted cookie is not
//! blocked, a rule-made `public` is); HTTP/2 clients get the same decisions.
//!
//! haproxy 2.6 blocks with its error page for the *server's* status (a "200 Service ready"
//! page for a blocked 200) although its manual and earlier versions say 502; ringlb sends the
//! documented 502, so the comparison is on what matters: whether the server's response (its
//! cookie) reaches the client.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, haproxy_required, wait_until, write_config, ChildGuard, Haproxy, Ringlb,
    TempDir,
};

const T: Duration = Duration::from_secs(10);

/// (method, status, response headers, blocked by haproxy 2.6).
type Case = (
    &'static str,
    u16,
    &'static [(&'static str, &'static str)],
    bool,
);

const CASES: &[Case] = &[
    ("GET", 200, &[("Set-Cookie", "a=1")], false),
    ("GET", 200, &[("Set-Cookie", "a=1"), ("Expires", "x")], true),
    (
        "GET",
        200,
        &[("Set-Cookie", "a=1"), ("Cache-Control", "max-age=10")],
        true,
    ),
    (
        "GET",
        200,
        &[("Set-Cookie", "a=1"), ("Cache-Control", "public")],
        false,
    ),
    (
        "GET",
        200,
        &[
            ("Set-Cookie", "a=1"),
            ("Cache-Control", "private, max-age=10"),
        ],
        false,
    ),
    (
        "GET",
        200,
        &[
            ("Set-Cookie", "a=1"),
            ("Cache-Control", "no-cache, public, max-age=5"),
        ],
        true,
    ),
    (
        "GET",
        200,
        &[
            ("Set-Cookie", "a=1"),
            ("Cache-Control", "no-cache=\"set-cookie\", max-age=5"),
        ],
        false,
    ),
    (
        "GET",
        200,
        &[
            ("Set-Cookie", "a=1"),
            ("Pragma", "no-cache"),
            ("Expires", "x"),
        ],
        false,
    ),
    (
        "GET",
        200,
        &[
            ("Set-Cookie", "a=1"),
            ("Pragma", "x"),
            ("Pragma", "no-cache"),
            ("ETag", "\"e\""),
        ],
        true,
    ),
    ("GET", 200, &[("Expires", "x")], false),
    (
        "GET",
        404,
        &[("Set-Cookie", "a=1"), ("Last-Modified", "x")],
        true,
    ),
    (
        "GET",
        302,
        &[("Set-Cookie", "a=1"), ("Expires", "x")],
        false,
    ),
    (
        "GET",
        500,
        &[
            ("Set-Cookie", "a=1"),
            ("Cache-Control", "public, max-age=3"),
        ],
        true,
    ),
    (
        "POST",
        200,
        &[("Set-Cookie", "a=1"), ("Expires", "x")],
        false,
    ),
    (
        "POST",
        200,
        &[
            ("Set-Cookie", "a=1"),
            ("Cache-Control", "public, max-age=4"),
        ],
        true,
    ),
    (
        "HEAD",
        200,
        &[("Set-Cookie", "a=1"), ("Expires", "x")],
        true,
    ),
    (
        "OPTIONS",
        200,
        &[("Set-Cookie2", "a=1"), ("Expires", "x")],
        true,
    ),
];

/// An origin answering `/c/<id>?s=<status>&h=<Name>:<value>...` with that status and those
/// headers plus `x-case: <id>` (so a forwarded response is recognised whatever the proxy does
/// to the rest). One connection per request.
fn start_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            std::thread::spawn(move || {
                let _ = answer(c);
            });
        }
    });
    addr
}

fn answer(mut c: TcpStream) -> std::io::Result<()> {
    c.set_read_timeout(Some(T))?;
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; content_length];
    r.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let id = path.rsplit('/').next().unwrap_or_default();
    let mut status = "200".to_owned();
    let mut headers = String::new();
    for kv in query.split('&') {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let v = decode(v);
        match k {
            "s" => status = v,
            "h" => {
                let (n, val) = v.split_once(':').unwrap_or((&v, ""));
                headers.push_str(&format!("{n}: {val}\r\n"));
            }
            _ => {}
        }
    }
    let bodyless = method == "HEAD" || status == "204" || status == "304";
    let payload = if bodyless { "" } else { "ok\n" };
    let resp = format!(
        "HTTP/1.1 {status} X\r\n{headers}x-case: {id}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        if bodyless { 3 } else { payload.len() }
    );
    c.write_all(resp.as_bytes())
}

/// Percent-decoding of what `encode` escapes.
fn decode(v: &str) -> String {
    v.replace("%20", " ")
        .replace("%22", "\"")
        .replace("%2C", ",")
        .replace("%3D", "=")
}

fn encode(v: &str) -> String {
    v.replace(' ', "%20")
        .replace('"', "%22")
        .replace(',', "%2C")
        .replace('=', "%3D")
}

fn target(id: &str, status: u16, headers: &[(&str, &str)]) -> String {
    let mut t = format!("/c/{id}?s={status}");
    for (n, v) in headers {
        t.push_str(&format!("&h={n}:{}", encode(v)));
    }
    t
}

/// One HTTP/1.1 exchange on a new connection: (status, whole response).
fn exchange(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let body = if method == "POST" { "x=1" } else { "" };
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn forwarded(resp: &str, id: &str) -> bool {
    resp.to_ascii_lowercase()
        .contains(&format!("x-case: {id}\r\n"))
}

fn config(front: SocketAddr, front_h2: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "global\n    log stderr format raw local0\n\
defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
frontend f\n    bind {front}\n    bind {front_h2} proto h2\n    default_backend b\n\
backend b\n    option checkcache\n    http-request set-var(txn.path) path\n\
    http-response del-header set-cookie if {{ var(txn.path) -m beg /strip/ }}\n\
    http-response set-header cache-control \"public, max-age=5\" if {{ var(txn.path) -m beg /force/ }}\n\
    server s1 {origin}\n"
    )
}

struct Run {
    proxy: ChildGuard,
    front: SocketAddr,
    front_h2: SocketAddr,
}

fn start(haproxy: bool, dir: &TempDir, origin: SocketAddr) -> Run {
    let (front, front_h2) = (free_addr(), free_addr());
    let cfg = write_config(dir, &config(front, front_h2, origin));
    let proxy = if haproxy {
        Haproxy::start(&cfg, &[front, front_h2])
    } else {
        Ringlb::start(&cfg, &[front, front_h2])
    };
    Run {
        proxy,
        front,
        front_h2,
    }
}

/// Whether each case reached the client, and the status the client saw.
fn decisions(run: &Run) -> Vec<(bool, u16)> {
    CASES
        .iter()
        .enumerate()
        .map(|(i, (method, status, headers, _))| {
            let id = i.to_string();
            let (code, resp) = exchange(run.front, method, &target(&id, *status, headers));
            (forwarded(&resp, &id), code)
        })
        .collect()
}

#[test]
fn cacheable_cookies_are_blocked_as_haproxy_blocks_them() {
    let origin = start_origin();
    let dir = TempDir::new("checkcache");
    let mut ours = start(false, &dir, origin);
    let got = decisions(&ours);
    for (i, ((method, status, headers, blocked), (fwd, code))) in CASES.iter().zip(&got).enumerate()
    {
        assert_eq!(
            !fwd, *blocked,
            "case {i}: {method} {status} {headers:?} (ringlb answered {code})"
        );
        if *blocked {
            assert_eq!(*code, 502, "case {i}: a blocked response is a 502");
        }
    }
    // The alert haproxy prints, and the blocked transaction logged as a proxy decision in the
    // header phase.
    let alert = "Blocking cacheable cookie in response from instance b, server s1.";
    let blocked_id = CASES.iter().position(|c| c.3).unwrap();
    assert!(wait_until(T, || ours.proxy.stderr().contains(alert)));
    assert!(wait_until(T, || {
        ours.proxy.stderr().lines().any(|l| {
            l.contains(&format!("/c/{blocked_id}?")) && l.contains(" 502 ") && l.contains("PH--")
        })
    }));
    let _ = ours.proxy.stop(T);
    if haproxy_required() {
        let dir = TempDir::new("checkcache-haproxy");
        let theirs = start(true, &dir, origin);
        let expected: Vec<bool> = decisions(&theirs).iter().map(|d| d.0).collect();
        let ours: Vec<bool> = got.iter().map(|d| d.0).collect();
        assert_eq!(ours, expected, "forwarded or not, case by case");
    }
}

#[test]
fn response_rules_run_before_the_check_and_h2_clients_get_the_same_answer() {
    let origin = start_origin();
    let mut runs = vec![(
        "ringlb",
        start(false, &TempDir::new("checkcache-rules"), origin),
    )];
    if haproxy_required() {
        runs.push((
            "haproxy",
            start(true, &TempDir::new("checkcache-rules-haproxy"), origin),
        ));
    }
    let cookie_expires = [("Set-Cookie", "a=1"), ("Expires", "x")];
    let cookie_only = [("Set-Cookie", "a=1")];
    for (name, run) in &runs {
        // The cookie deleted by a rule: nothing left to block.
        let t = target("0", 200, &cookie_expires).replacen("/c/", "/strip/", 1);
        let (_, r) = exchange(run.front, "GET", &t);
        assert!(forwarded(&r, "0"), "{name}: {r}");
        // A rule makes the response cacheable: blocked.
        let t = target("1", 200, &cookie_only).replacen("/c/", "/force/", 1);
        let (_, r) = exchange(run.front, "GET", &t);
        assert!(!forwarded(&r, "1"), "{name}: {r}");
        // HTTP/2 client, same decisions.
        for (id, headers, blocked) in [
            ("2", &cookie_expires[..], true),
            ("3", &cookie_only[..], false),
        ] {
            let url = format!("http://{}{}", run.front_h2, target(id, 200, headers));
            let out = curl(&["--http2-prior-knowledge", "-i", &url], T).unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert_eq!(
                !forwarded(&text, id),
                blocked,
                "{name} h2 case {id}: {text}"
            );
            if blocked && *name == "ringlb" {
                assert!(text.starts_with("HTTP/2 502"), "{text}");
            }
        }
    }
}
