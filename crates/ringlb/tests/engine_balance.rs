//! `balance` algorithms end to end, differentially: the same config and the same requests
//! through haproxy 2.6 and through ringlb, in front of the same three origins; the sequence of
//! origins that answer must be identical.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, write_config, Conn, Haproxy, Origins, Ringlb, TempDir,
};

fn config(front: SocketAddr, servers: &[SocketAddr], backend: &str, weights: &[u32]) -> String {
    let mut s = format!(
        "global\n    nbthread 1\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\nfrontend fe\n    bind {front}\n    default_backend be\n\nbackend be\n{backend}"
    );
    for (i, a) in servers.iter().enumerate() {
        let w = weights.get(i).copied().unwrap_or(1);
        s.push_str(&format!("    server s{} {a} weight {w}\n", i + 1));
    }
    s
}

/// The origin that answered each request, sent one after the other on one connection.
fn sequence(front: SocketAddr, requests: &[(String, Vec<(String, String)>)]) -> Vec<String> {
    let mut c = Conn::connect(front).unwrap();
    c.set_timeout(Duration::from_secs(5)).unwrap();
    requests
        .iter()
        .map(|(path, headers)| {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = c.request("GET", path, &h, b"").unwrap();
            assert_eq!(r.status, 200, "{path}");
            r.header("x-origin").unwrap_or("?").to_string()
        })
        .collect()
}

fn compare(backend: &str, weights: &[u32], requests: &[(String, Vec<(String, String)>)]) {
    compare_with(backend, weights, &|front| sequence(front, requests));
}

/// Runs `run` against haproxy then ringlb (same config, same origins) and compares what it
/// returns.
fn compare_with(backend: &str, weights: &[u32], run: &dyn Fn(SocketAddr) -> Vec<String>) {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        eprintln!("skipped: haproxy not installed");
        return;
    }
    let origins = Origins::start(3);
    let dir = TempDir::new("balance");
    let (hf, rf) = (free_addr(), free_addr());
    let hcfg = write_config(&dir, &config(hf, &origins.addrs(), backend, weights));
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(rf, &origins.addrs(), backend, weights)).unwrap();
    let want = {
        let _h = Haproxy::start(&hcfg, &[hf]);
        run(hf)
    };
    let got = {
        let _r = Ringlb::start(&rpath, &[rf]);
        run(rf)
    };
    assert_eq!(got, want, "{backend}: ringlb (left) vs haproxy (right)");
}

fn plain(n: usize) -> Vec<(String, Vec<(String, String)>)> {
    (0..n).map(|_| ("/".to_string(), vec![])).collect()
}

#[test]
fn roundrobin_with_weights_matches_haproxy() {
    compare("    balance roundrobin\n", &[3, 2, 1], &plain(24));
}

#[test]
fn static_rr_matches_haproxy() {
    compare("    balance static-rr\n", &[1, 3, 2], &plain(18));
}

#[test]
fn uri_hashing_matches_haproxy_map_based_and_consistent() {
    let reqs: Vec<_> = (0..30)
        .map(|i| (format!("/item/{i}?v={}", i * 7), vec![]))
        .collect();
    compare("    balance uri\n", &[1, 1, 1], &reqs);
    compare(
        "    balance uri whole\n    hash-type consistent\n",
        &[1, 2, 1],
        &reqs,
    );
    compare(
        "    balance uri depth 1\n    hash-type consistent djb2\n",
        &[1, 1, 1],
        &reqs,
    );
}

#[test]
fn url_param_and_header_hashing_match_haproxy() {
    let params: Vec<_> = (0..30)
        .map(|i| (format!("/api?userid=u{i}&x=1"), vec![]))
        .collect();
    compare("    balance url_param userid\n", &[1, 1, 1], &params);
    let hdrs: Vec<_> = (0..30)
        .map(|i| {
            (
                "/".to_string(),
                vec![("X-Tenant".to_string(), format!("tenant-{i}"))],
            )
        })
        .collect();
    compare(
        "    balance hdr(X-Tenant)\n    hash-type consistent\n",
        &[1, 1, 1],
        &hdrs,
    );
}

#[test]
fn source_hashing_and_first_match_haproxy() {
    compare("    balance source\n", &[1, 1, 1], &plain(6));
    compare("    balance first\n", &[1, 1, 1], &plain(6));
}

#[test]
fn leastconn_avoids_the_busy_server() {
    let origins = Origins::start(2);
    let dir = TempDir::new("leastconn");
    let front = free_addr();
    let path = write_config(
        &dir,
        &config(front, &origins.addrs(), "    balance leastconn\n", &[1, 1]),
    );
    let _r = Ringlb::start(&path, &[front]);
    // One long request occupies a server...
    let slow = std::thread::spawn(move || {
        let mut c = Conn::connect(front).unwrap();
        c.set_timeout(Duration::from_secs(5)).unwrap();
        c.get("/slow/1200")
            .unwrap()
            .header("x-origin")
            .unwrap_or("?")
            .to_string()
    });
    std::thread::sleep(Duration::from_millis(300));
    // ...so every quick request meanwhile goes to the other one.
    let quick = sequence(front, &plain(5));
    let busy = slow.join().unwrap();
    assert!(
        quick.iter().all(|o| *o != busy),
        "busy {busy}, quick went to {quick:?}"
    );
}

#[test]
fn hash_expression_matches_haproxy() {
    let hdrs: Vec<_> = (0..30)
        .map(|i| {
            let h = if i % 7 == 3 {
                vec![] // no sample: round robin
            } else {
                vec![("X-Tenant".to_string(), format!("Tenant-{i}"))]
            };
            (format!("/p{}", i % 5), h)
        })
        .collect();
    compare("    balance hash req.hdr(X-Tenant)\n", &[1, 2, 1], &hdrs);
    compare(
        "    balance hash req.hdr(X-Tenant),lower\n    hash-type consistent djb2\n",
        &[1, 1, 1],
        &hdrs,
    );
    // A string sample of the request and an integer one (hashed as 8 bytes, network order).
    compare(
        "    balance hash path\n    hash-type consistent\n",
        &[1, 1, 1],
        &hdrs,
    );
    let ints: Vec<_> = (0..30)
        .map(|i| (format!("/q?n={}", i * 37), vec![]))
        .collect();
    compare(
        "    balance hash url_param(n),mul(3)\n    hash-type map-based crc32\n",
        &[1, 1, 1],
        &ints,
    );
}

/// `url_param NAME check_post`: GETs with the parameter in the query, POSTs with it in the
/// body (sent after the head, so the proxy has to wait for it), a chunked POST, and POSTs
/// without it (round robin).
#[test]
fn url_param_check_post_matches_haproxy() {
    let run = |front: SocketAddr| {
        let mut c = Conn::connect(front).unwrap();
        c.set_timeout(Duration::from_secs(5)).unwrap();
        let mut seen = Vec::new();
        for i in 0..24 {
            let r = match i % 4 {
                0 => c.get(&format!("/login?user=u{i}")).unwrap(),
                1 | 2 => {
                    let body = format!("x=1&user=u{i}&y=2");
                    let ct = ("Content-Type", "application/x-www-form-urlencoded");
                    c.request("POST", "/login", &[ct], body.as_bytes()).unwrap()
                }
                _ => c.request("POST", "/login", &[], b"nothing=here").unwrap(),
            };
            assert_eq!(r.status, 200);
            seen.push(r.header("x-origin").unwrap_or("?").to_string());
        }
        for i in 0..6 {
            let body = format!("user=c{i}&z=1");
            let raw = format!(
                "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            );
            c.send(raw.as_bytes()).unwrap();
            let r = c.read_response("POST").unwrap();
            assert_eq!(r.status, 200);
            seen.push(r.header("x-origin").unwrap_or("?").to_string());
        }
        seen
    };
    compare_with("    balance url_param user check_post\n", &[1, 1, 1], &run);
    compare_with(
        "    balance url_param user check_post\n    hash-type consistent\n",
        &[1, 2, 1],
        &run,
    );
}

/// TCP servers that answer each connection with their name once they have read an RDP
/// connection request (threads end with the test process; loopback only).
fn rdp_servers(n: usize) -> Vec<SocketAddr> {
    use std::io::{Read, Write};
    (1..=n)
        .map(|i| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            std::thread::spawn(move || {
                for mut s in l.incoming().flatten() {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(format!("s{i}\n").as_bytes());
                }
            });
            addr
        })
        .collect()
}

/// An RDP Connection Request (TPKT + X.224 CR) carrying `Cookie: mstshash=<user>`.
fn rdp_request(user: &str) -> Vec<u8> {
    rdp_request_with(&format!("mstshash={user}"))
}

/// An RDP Connection Request carrying `Cookie: <cookie>`.
fn rdp_request_with(cookie: &str) -> Vec<u8> {
    let cookie = format!("Cookie: {cookie}\r\n");
    let len = 11 + cookie.len() + 8;
    let mut v = vec![
        3,
        0,
        (len >> 8) as u8,
        len as u8,
        (len - 5) as u8,
        0xe0,
        0,
        0,
        0,
        0,
        0,
    ];
    v.extend_from_slice(cookie.as_bytes());
    v.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
    v
}

#[test]
fn rdp_cookie_matches_haproxy() {
    use std::io::{Read, Write};
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let servers = rdp_servers(3);
    let dir = TempDir::new("rdp");
    let run = |front: SocketAddr| -> Vec<String> {
        (0..20)
            .map(|i| {
                let mut c = std::net::TcpStream::connect(front).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                c.write_all(&rdp_request(&format!("user{i}"))).unwrap();
                let mut out = String::new();
                let _ = c.read_to_string(&mut out);
                out.trim().to_string()
            })
            .collect()
    };
    for (algo, hash) in [
        ("rdp-cookie", "map-based"),
        ("rdp-cookie(mstshash)", "consistent"),
    ] {
        let cfg = |front: SocketAddr| {
            let mut s = format!(
                "global\n    nbthread 1\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\nlisten rdp\n    bind {front}\n    balance {algo}\n    hash-type {hash}\n    tcp-request inspect-delay 2s\n    tcp-request content accept if RDP_COOKIE\n"
            );
            for (i, a) in servers.iter().enumerate() {
                s.push_str(&format!("    server s{} {a} weight {}\n", i + 1, i + 1));
            }
            s
        };
        let (hf, rf) = (free_addr(), free_addr());
        let hcfg = write_config(&dir, &cfg(hf));
        let rpath = dir.join("ringlb.cfg");
        std::fs::write(&rpath, cfg(rf)).unwrap();
        let want = {
            let _h = Haproxy::start(&hcfg, &[hf]);
            run(hf)
        };
        let got = {
            let _r = Ringlb::start(&rpath, &[rf]);
            run(rf)
        };
        assert!(want.iter().all(|s| s.starts_with('s')), "{want:?}");
        let distinct: std::collections::HashSet<_> = want.iter().collect();
        assert!(distinct.len() > 1, "the keys spread: {want:?}");
        assert_eq!(
            got, want,
            "balance {algo}: ringlb (left) vs haproxy (right)"
        );
    }
}

/// The origins that served `n` concurrent slow requests for the same URI.
fn concurrent_same_uri(front: SocketAddr, n: usize) -> Vec<String> {
    let clients: Vec<_> = (0..n)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(40 * (i.min(1) as u64)));
            std::thread::spawn(move || {
                let mut c = Conn::connect(front).unwrap();
                c.set_timeout(Duration::from_secs(5)).unwrap();
                let r = c.get("/slow/1500?same=1").unwrap();
                r.header("x-origin").unwrap_or("?").to_string()
            })
        })
        .collect();
    let mut got: Vec<String> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    got.sort();
    got
}

/// `hash-balance-factor 125`: one hot key cannot load a server beyond 1.25× the average, so
/// concurrent requests for it spill to the next servers on the ring; without it they all go
/// to the key's server.
#[test]
fn hash_balance_factor_spreads_a_hot_key() {
    let origins = Origins::start(3);
    let dir = TempDir::new("hbf");
    for (factor, want_spread) in [("", false), ("    hash-balance-factor 125\n", true)] {
        let front = free_addr();
        let backend = format!("    balance uri\n    hash-type consistent\n{factor}");
        let path = write_config(&dir, &config(front, &origins.addrs(), &backend, &[1, 1, 1]));
        let _r = Ringlb::start(&path, &[front]);
        let got = concurrent_same_uri(front, 6);
        let mut distinct = got.clone();
        distinct.dedup();
        if want_spread {
            // avg load = (served+1)/3; cap = ceil(avg × 1.25): at most 3 of 6 on one server.
            assert!(distinct.len() >= 2, "{factor}: {got:?}");
            for d in &distinct {
                let n = got.iter().filter(|g| *g == d).count();
                assert!(n <= 3, "{factor}: {d} took {n}: {got:?}");
            }
        } else {
            assert_eq!(
                distinct.len(),
                1,
                "no factor: one server takes the key: {got:?}"
            );
        }
    }
}

/// `leastconn` with 2 shards: each shard counts its own connections (docs/architecture.md,
/// "Limits across shards"), so `n` concurrent connections spread by the kernel over the
/// shards end up within `shards` of an even split, and the counts go back to zero when they
/// close (a second wave is as balanced as the first).
#[test]
fn leastconn_with_two_shards_balances_within_the_shard_count() {
    let origins = Origins::start(2);
    let dir = TempDir::new("leastconn2");
    let front = free_addr();
    let cfg = config(front, &origins.addrs(), "    balance leastconn\n", &[1, 1])
        .replace("nbthread 1", "nbthread 2");
    let path = write_config(&dir, &cfg);
    let _r = Ringlb::start(&path, &[front]);
    for wave in 0..2 {
        let n = 16;
        let held: Vec<_> = (0..n)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(30));
                std::thread::spawn(move || {
                    let mut c = Conn::connect(front).unwrap();
                    c.set_timeout(Duration::from_secs(10)).unwrap();
                    let r = c.get("/slow/1500").unwrap();
                    r.header("x-origin").unwrap_or("?").to_string()
                })
            })
            .collect();
        let got: Vec<String> = held.into_iter().map(|t| t.join().unwrap()).collect();
        let first = got.iter().filter(|o| **o == got[0]).count();
        let other = n - first;
        assert!(
            first.abs_diff(other) <= 2,
            "wave {wave}: {first} vs {other}: {got:?}"
        );
    }
}

/// `n` requests for `/slow/1500` sent 30 ms apart, each on its own connection, all held at
/// once: the origin that answered each, in sending order.
fn held(front: SocketAddr, n: usize) -> Vec<String> {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(30));
            std::thread::spawn(move || {
                let mut c = Conn::connect(front).unwrap();
                c.set_timeout(Duration::from_secs(10)).unwrap();
                let r = c.get("/slow/1500").unwrap();
                format!("{} {}", r.status, r.header("x-origin").unwrap_or("?"))
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// `balance first` with `maxconn`: a full server is skipped for the next one with a free
/// slot (HAProxy's `fas_get_next_server`), not queued on.
#[test]
fn first_skips_servers_at_their_maxconn_as_haproxy() {
    compare_with(
        "    balance first\n    default-server maxconn 2\n",
        &[1, 1, 1],
        &|front| held(front, 6),
    );
}

/// Weighted round robin with `maxconn`: a full server is skipped and requeued the way
/// HAProxy's `fwrr` does (5 held connections, weights 3:1:1, 2 slots each).
#[test]
fn roundrobin_skips_servers_at_their_maxconn_as_haproxy() {
    compare_with(
        "    balance roundrobin\n    default-server maxconn 2\n",
        &[3, 1, 1],
        &|front| held(front, 5),
    );
}

/// `balance first` with two shards (docs/architecture.md, "Limits across shards"): each
/// shard fills the servers in id order up to its share of their `maxconn` (⌈2/2⌉ = 1), so 6
/// held connections give s1 and s2 at most one per shard, never more than their `maxconn`
/// in all, and the rest to s3.
#[test]
fn first_with_two_shards_fills_each_shards_maxconn_share() {
    let origins = Origins::start(3);
    let dir = TempDir::new("first2");
    let front = free_addr();
    let cfg = config(
        front,
        &origins.addrs(),
        "    balance first\n    default-server maxconn 2\n",
        &[1, 1, 1],
    )
    .replace("nbthread 1", "nbthread 2")
    .replace(
        &format!("{} weight 1\n", origins.addrs()[2]),
        &format!("{} weight 1 maxconn 0\n", origins.addrs()[2]),
    );
    let path = write_config(&dir, &cfg);
    let _r = Ringlb::start(&path, &[front]);
    let n = 6;
    let got = held(front, n);
    let count = |name: &str| got.iter().filter(|o| *o == &format!("200 {name}")).count();
    let (s1, s2, s3) = (count("s1"), count("s2"), count("s3"));
    assert_eq!(s1 + s2 + s3, n, "{got:?}");
    // At least one shard holds 3 connections: s1, s2, then s3; the other adds at most one
    // to s1 and one to s2.
    assert!((1..=2).contains(&s2) && s2 <= s1 && s1 <= 2, "{got:?}");
}

/// `url_param .. check_post` for HTTP/2 clients: the POST body is read before the server is
/// chosen, so each user lands where an HTTP/1 POST with the same body lands.
#[test]
fn check_post_over_h2_picks_as_over_http1() {
    let origins = Origins::start(3);
    let dir = TempDir::new("check-post-h2");
    let (h1, h2) = (free_addr(), free_addr());
    let servers: String = origins
        .addrs()
        .iter()
        .enumerate()
        .map(|(i, a)| format!("    server s{} {a}\n", i + 1))
        .collect();
    let cfg = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe1\n    bind {h1}\n    default_backend be\n\
         frontend fe2\n    bind {h2} proto h2\n    default_backend be\n\
         backend be\n    balance url_param user check_post\n{servers}"
    );
    let path = write_config(&dir, &cfg);
    let _r = Ringlb::start(&path, &[h1, h2]);
    let mut seen = std::collections::HashSet::new();
    for i in 0..10 {
        let body = format!("a=1&user=u{i}&z=2");
        let mut c = Conn::connect(h1).unwrap();
        c.set_timeout(Duration::from_secs(5)).unwrap();
        let r = c.request("POST", "/login", &[], body.as_bytes()).unwrap();
        let via_h1 = r.header("x-origin").unwrap_or("?").to_string();
        let out = ringlb_testkit::curl(
            &[
                "--http2-prior-knowledge",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "--data-raw",
                &body,
                &format!("http://{h2}/login"),
            ],
            Duration::from_secs(5),
        )
        .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        let via_h2 = head
            .lines()
            .find_map(|l| l.strip_prefix("x-origin: "))
            .unwrap_or("-")
            .trim()
            .to_string();
        assert_eq!(via_h2, via_h1, "user u{i}");
        seen.insert(via_h1);
    }
    assert!(seen.len() > 1, "the users spread: {seen:?}");
}

/// The `msts` routing cookie value naming `addr` (`<ip>.<port>.0000`, little-endian integers
/// of the network-order bytes, as Windows' session broker writes it).
fn msts(addr: SocketAddr) -> String {
    let SocketAddr::V4(a) = addr else {
        panic!("IPv4 only")
    };
    let ip = u32::from_le_bytes(a.ip().octets());
    let port = u16::from_le_bytes(a.port().to_be_bytes());
    format!("msts={ip}.{port}.0000")
}

/// `persist rdp-cookie`: a connection whose `msts` cookie names a server goes to it, whatever
/// the balancing says; other connections are balanced. Same servers as haproxy 2.6.
#[test]
fn persist_rdp_cookie_matches_haproxy() {
    use std::io::{Read, Write};
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let servers = rdp_servers(3);
    let dir = TempDir::new("rdp-persist");
    let cookies: Vec<String> = (0..12)
        .map(|i| match i % 3 {
            0 => msts(servers[2]),
            1 => msts(servers[1]),
            _ => format!("mstshash=user{i}"),
        })
        .collect();
    let run = |front: SocketAddr| -> Vec<String> {
        cookies
            .iter()
            .map(|cookie| {
                let mut c = std::net::TcpStream::connect(front).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                c.write_all(&rdp_request_with(cookie)).unwrap();
                let mut out = String::new();
                let _ = c.read_to_string(&mut out);
                out.trim().to_string()
            })
            .collect()
    };
    let cfg = |front: SocketAddr| {
        let mut s = format!(
            "global\n    nbthread 1\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\nlisten rdp\n    bind {front}\n    balance roundrobin\n    persist rdp-cookie\n    tcp-request inspect-delay 2s\n    tcp-request content accept if RDP_COOKIE\n"
        );
        for (i, a) in servers.iter().enumerate() {
            s.push_str(&format!("    server s{} {a}\n", i + 1));
        }
        s
    };
    let (hf, rf) = (free_addr(), free_addr());
    let hcfg = write_config(&dir, &cfg(hf));
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf)).unwrap();
    let want = {
        let _h = Haproxy::start(&hcfg, &[hf]);
        run(hf)
    };
    let got = {
        let _r = Ringlb::start(&rpath, &[rf]);
        run(rf)
    };
    for (i, w) in want.iter().enumerate() {
        match i % 3 {
            0 => assert_eq!(w, "s3", "haproxy honours msts: {want:?}"),
            1 => assert_eq!(w, "s2", "haproxy honours msts: {want:?}"),
            _ => {}
        }
    }
    assert_eq!(got, want, "ringlb (left) vs haproxy (right)");
}

/// `balance random` and `random(2)` draw from a seeded generator, so no sequence can match
/// haproxy's: over 300 requests every server is used in about its weight's share (2:1:1), as
/// with haproxy.
#[test]
fn random_draws_follow_the_weights() {
    let origins = Origins::start(3);
    let dir = TempDir::new("balance-random");
    for algo in ["random", "random(2)"] {
        let front = free_addr();
        let cfg = config(
            front,
            &origins.addrs(),
            &format!("    balance {algo}\n"),
            &[2, 1, 1],
        );
        let path = write_config(&dir, &cfg);
        let _r = Ringlb::start(&path, &[front]);
        let seen = sequence(front, &plain(300));
        let count = |o: &str| seen.iter().filter(|s| s.as_str() == o).count();
        let (c1, c2, c3) = (count("s1"), count("s2"), count("s3"));
        assert_eq!(c1 + c2 + c3, 300, "{algo}: {seen:?}");
        // Expected 150/75/75; a fair draw stays well within these bounds.
        assert!((110..=190).contains(&c1), "{algo}: {c1} {c2} {c3}");
        assert!(
            (45..=105).contains(&c2) && (45..=105).contains(&c3),
            "{algo}: {c1} {c2} {c3}"
        );
    }
}
