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
        sequence(hf, requests)
    };
    let got = {
        let _r = Ringlb::start(&rpath, &[rf]);
        sequence(rf, requests)
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
