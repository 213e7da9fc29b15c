//! Server and balancing keywords an audit found implemented but never run through the real
//! binary (issue #5): `maxqueue`, cookie `postonly`, `option allbackups`. Each test runs the same
//! config and the same requests through ringlb and haproxy 2.6 (`nbthread 1`, so ringlb's
//! per-shard limits are the whole limits) and compares what the clients see.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_required, send_raw_reply, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

/// Starts `who` ("ringlb" or "haproxy") on the config `cfg(bind)` and runs `f(bind)` against it.
fn with_proxy<R>(
    dir: &TempDir,
    who: &str,
    cfg: &dyn Fn(SocketAddr) -> String,
    f: &dyn Fn(SocketAddr) -> R,
) -> R {
    let fe = free_addr();
    let path = dir.join(&format!("{who}.cfg"));
    std::fs::write(&path, cfg(fe)).unwrap();
    let _proxy = if who == "ringlb" {
        Ringlb::start(&path, &[fe])
    } else {
        Haproxy::start(&path, &[fe])
    };
    f(fe)
}

/// The status code of a raw reply, 0 when there was none.
fn status(reply: &[u8]) -> u16 {
    String::from_utf8_lossy(reply)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` (case-insensitive) in a raw reply's head, `-` when absent.
fn header(reply: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(reply);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "-".to_string())
}

/// Sends `n` requests at once (each on its own connection) and returns their sorted statuses.
fn concurrent_statuses(fe: SocketAddr, req: &str, n: usize) -> Vec<u16> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let req = req.to_string();
            std::thread::spawn(move || {
                send_raw_reply(fe, req.as_bytes(), Duration::from_secs(30))
                    .map(|r| status(&r.bytes))
                    .unwrap_or(0)
            })
        })
        .collect();
    let mut out: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    out.sort_unstable();
    out
}

fn maxqueue_config(fe: SocketAddr, s1: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n\
         \x20   timeout server 30s\n    timeout queue 30s\n\
         frontend fe\n    bind {fe}\n    default_backend be\n\
         backend be\n    balance roundrobin\n    cookie SRV insert indirect\n\
         \x20   server s1 {s1} cookie s1 maxconn 1 maxqueue 1\n"
    )
}

/// `maxconn 1 maxqueue 1` on a server that answers in 3 s, four clients at once whose cookie
/// names that server: one is served, one waits in the server's queue and is served next, the
/// two others find the queue full and get a 503 at once (haproxy's `SRV_STATUS_FULL`).
#[test]
fn maxqueue_full_server_queue_answers_503_like_haproxy() {
    if !haproxy_required() {
        return;
    }
    let s1 = Origin::start("s1");
    let dir = TempDir::new("maxqueue");
    let req = "GET /slow/3000 HTTP/1.1\r\nHost: x\r\nCookie: SRV=s1\r\nConnection: close\r\n\r\n";
    let cfg = |fe| maxqueue_config(fe, s1.addr());
    let run = |who: &'static str| {
        let (dir, cfg) = (&dir, &cfg);
        move || with_proxy(dir, who, cfg, &|fe| concurrent_statuses(fe, req, 4))
    };
    let (h, r) = std::thread::scope(|sc| {
        let h = sc.spawn(run("haproxy"));
        let r = sc.spawn(run("ringlb"));
        (h.join().unwrap(), r.join().unwrap())
    });
    assert_eq!(h, vec![200, 200, 503, 503], "haproxy");
    assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
}

/// The same server without a cookie: the balancer picks it, and haproxy queues a request that
/// finds every server full in the backend's queue, which `maxqueue` does not bound (only a
/// request sent to one server, by persistence, goes to that server's queue). All four are served.
#[test]
fn maxqueue_does_not_bound_the_backend_queue_like_haproxy() {
    if !haproxy_required() {
        return;
    }
    let s1 = Origin::start("s1");
    let dir = TempDir::new("maxqueue-lb");
    let req = "GET /slow/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let cfg = |fe| maxqueue_config(fe, s1.addr());
    let run = |who: &'static str| {
        let (dir, cfg) = (&dir, &cfg);
        move || with_proxy(dir, who, cfg, &|fe| concurrent_statuses(fe, req, 4))
    };
    let (h, r) = std::thread::scope(|sc| {
        let h = sc.spawn(run("haproxy"));
        let r = sc.spawn(run("ringlb"));
        (h.join().unwrap(), r.join().unwrap())
    });
    assert_eq!(h, vec![200, 200, 200, 200], "haproxy");
    assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
}

fn postonly_config(fe: SocketAddr, s1: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n\
         \x20   timeout server 5s\n\
         frontend fe\n    bind {fe}\n    default_backend be\n\
         backend be\n    balance roundrobin\n    cookie SRV insert postonly\n\
         \x20   server s1 {s1} cookie s1\n"
    )
}

/// `cookie SRV insert postonly`: only the answer to a POST carries the `Set-Cookie`; GET, HEAD,
/// PUT and a POST whose cookie already names a valid server get none.
#[test]
fn cookie_postonly_sets_the_cookie_on_post_only_like_haproxy() {
    if !haproxy_required() {
        return;
    }
    let s1 = Origin::start("s1");
    let dir = TempDir::new("postonly");
    let close = "Connection: close\r\n";
    let reqs = [
        format!("GET /echo HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
        format!("HEAD /echo HTTP/1.1\r\nHost: x\r\n{close}\r\n"),
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n{close}\r\nx=1"),
        format!("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n{close}\r\nx=1"),
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nCookie: SRV=s1\r\nContent-Length: 3\r\n{close}\r\nx=1"),
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nCookie: SRV=zz\r\nContent-Length: 3\r\n{close}\r\nx=1"),
    ];
    let cfg = |fe| postonly_config(fe, s1.addr());
    let seen = |who: &str| {
        with_proxy(&dir, who, &cfg, &|fe| {
            reqs.iter()
                .map(|r| {
                    let reply = send_raw_reply(fe, r.as_bytes(), T).unwrap().bytes;
                    (status(&reply), header(&reply, "set-cookie"))
                })
                .collect::<Vec<_>>()
        })
    };
    let (h, r) = (seen("haproxy"), seen("ringlb"));
    let with_cookie: Vec<bool> = h.iter().map(|(_, c)| c != "-").collect();
    assert_eq!(
        with_cookie,
        vec![false, false, true, false, false, true],
        "haproxy: {h:?}"
    );
    assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
}

fn backups_config(
    fe: SocketAddr,
    dead: SocketAddr,
    b1: SocketAddr,
    b2: SocketAddr,
    all: bool,
) -> String {
    let all = if all { "    option allbackups\n" } else { "" };
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n\
         \x20   timeout server 5s\n\
         frontend fe\n    bind {fe}\n    default_backend be\n\
         backend be\n    balance roundrobin\n{all}\
         \x20   server p1 {dead} check inter 200ms fall 1 rise 1\n\
         \x20   server b1 {b1} backup\n    server b2 {b2} backup\n"
    )
}

/// How many of `n` requests each backup answered, once the primary (a closed port) is down.
fn backup_counts(fe: SocketAddr, n: usize) -> Vec<(String, usize)> {
    let req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let ask = || {
        send_raw_reply(fe, req.as_bytes(), T)
            .map(|r| (status(&r.bytes), header(&r.bytes, "x-origin")))
            .unwrap_or((0, "-".to_string()))
    };
    // The primary starts up; wait for its first failed check to hand over to the backups.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ask().0 != 200 {
        assert!(Instant::now() < deadline, "the backups never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..n {
        *counts.entry(ask().1).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// `option allbackups`: with the only primary down, both backups share the load (round robin);
/// without it only the first backup serves.
#[test]
fn allbackups_shares_the_load_between_backups_like_haproxy() {
    if !haproxy_required() {
        return;
    }
    let (b1, b2) = (Origin::start("b1"), Origin::start("b2"));
    let dead = free_addr();
    let dir = TempDir::new("allbackups");
    for all in [true, false] {
        let cfg = |fe| backups_config(fe, dead, b1.addr(), b2.addr(), all);
        let (h, r) = std::thread::scope(|sc| {
            let h = sc.spawn(|| with_proxy(&dir, "haproxy", &cfg, &|fe| backup_counts(fe, 6)));
            let r = sc.spawn(|| with_proxy(&dir, "ringlb", &cfg, &|fe| backup_counts(fe, 6)));
            (h.join().unwrap(), r.join().unwrap())
        });
        let want: Vec<(String, usize)> = if all {
            vec![("b1".into(), 3), ("b2".into(), 3)]
        } else {
            vec![("b1".into(), 6)]
        };
        assert_eq!(h, want, "haproxy, allbackups {all}");
        assert_eq!(r, h, "ringlb (left) vs haproxy (right), allbackups {all}");
    }
}

fn minconn_config(fe: SocketAddr, s1: SocketAddr, fullconn: u32) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n\
         \x20   timeout server 30s\n    timeout queue 3s\n\
         frontend fe\n    bind {fe}\n    default_backend be\n\
         backend be\n    balance roundrobin\n    fullconn {fullconn}\n\
         \x20   server s1 {s1} minconn 1 maxconn 2\n"
    )
}

/// `minconn 1 maxconn 2` with four clients at once on a server answering in 2 s, `timeout
/// queue 3s`. With `fullconn 8` the load (4) keeps the dynamic limit at 1: the first two are
/// served one after the other, the last two time out in the queue (503). With `fullconn 2` the
/// limit reaches `maxconn` 2: two at once, then the two queued ones at 2 s, all served.
#[test]
fn minconn_and_fullconn_scale_the_limit_like_haproxy() {
    if !haproxy_required() {
        return;
    }
    let s1 = Origin::start("s1");
    let dir = TempDir::new("minconn");
    let req = "GET /slow/2000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (fullconn, want) in [(8, vec![200, 200, 503, 503]), (2, vec![200; 4])] {
        let cfg = |fe| minconn_config(fe, s1.addr(), fullconn);
        let (h, r) = std::thread::scope(|sc| {
            let h = sc
                .spawn(|| with_proxy(&dir, "haproxy", &cfg, &|fe| concurrent_statuses(fe, req, 4)));
            let r = sc
                .spawn(|| with_proxy(&dir, "ringlb", &cfg, &|fe| concurrent_statuses(fe, req, 4)));
            (h.join().unwrap(), r.join().unwrap())
        });
        assert_eq!(h, want, "haproxy, fullconn {fullconn}");
        assert_eq!(
            r, h,
            "ringlb (left) vs haproxy (right), fullconn {fullconn}"
        );
    }
}
