//! Per-shard counters merged on read: requests spread over two shards add up to exactly what
//! the clients did (sessions, requests, statuses, bytes, latency samples).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ringlb_control::Proxy;
use ringlb_shard::Topology;
use ringlb_testkit::{free_addr, send_raw, wait_until, write_config, Conn, Origins, TempDir};

#[test]
fn counters_of_both_shards_add_up() {
    let origins = Origins::start(2);
    let front = free_addr();
    let dir = TempDir::new("stats");
    let [a, b] = [origins.addrs()[0], origins.addrs()[1]];
    let text = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {a}\n    server s2 {b}\n"
    );
    let path = write_config(&dir, &text);
    let loaded = ringlb_config::load(&[path], &|_| None).unwrap();
    let topo = Arc::new(Topology::from_config(&loaded.config).unwrap());
    let mut proxy = Proxy::start(topo, vec![vec![0], vec![1]]).unwrap();

    // 8 keep-alive connections × 5 requests, then one malformed request on its own connection.
    let mut conns: Vec<Conn> = (0..8).map(|_| Conn::connect(front).unwrap()).collect();
    let mut body_bytes = 0u64;
    for _ in 0..5 {
        for c in &mut conns {
            let r = c.get("/").unwrap();
            assert_eq!(r.status, 200);
            body_bytes += r.body.len() as u64;
        }
    }
    let bad = send_raw(
        front,
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(bad.starts_with(b"HTTP/1.1 400"));
    drop(conns);

    // Closing connections are counted asynchronously: wait for the gauges to settle.
    let mut stats = None;
    assert!(wait_until(Duration::from_secs(5), || {
        let s = proxy.collect_stats(Duration::from_secs(1)).unwrap();
        let settled = s.frontends[0].cur_sess == 0;
        stats = Some(s);
        settled
    }));
    let s = stats.unwrap();
    let fe = &s.frontends[0];
    assert_eq!(fe.cum_conn, 9);
    assert_eq!(fe.cum_sess, 9);
    // haproxy counts a request whose head was refused (the 400) in the frontend's total
    // (checked against its exporter in prometheus_differential.rs); the backend never saw it.
    assert_eq!(fe.cum_req, 41, "40 requests and the malformed head");
    assert_eq!(fe.failed_req, 1);
    assert_eq!(fe.rsp.0[1], 40, "2xx");
    assert_eq!(fe.rsp.0[3], 1, "4xx");
    assert!(
        fe.max_sess >= 4,
        "8 connections over 2 shards: smax {}",
        fe.max_sess
    );
    assert!(fe.bytes_out > body_bytes, "bout counts heads and bodies");
    assert!(fe.bytes_in >= 40 * 16, "bin counts request heads");
    let be = &s.backends[0];
    assert_eq!(be.cum_req, 40);
    assert_eq!(be.cum_sess, 40, "one backend session per HTTP transaction");
    assert_eq!(be.cur_sess, 0);
    assert_eq!(be.rsp.0[1], 40, "2xx");
    let per_server: Vec<u64> = s.servers[0].iter().map(|c| c.cum_req).collect();
    assert_eq!(per_server.iter().sum::<u64>(), 40);
    assert!(per_server.iter().all(|n| *n > 0), "{per_server:?}");
    assert_eq!(be.connect + be.reuse, 40);
    assert_eq!(s.backend_latency[0].total.count(), 40);
    assert_eq!(s.backend_latency[0].response.count(), 40);
    assert_eq!(s.process.cum_req, 40);
    assert_eq!(s.process.cum_conns, 9);

    proxy.broadcast(ringlb_shard::ControlMsg::HardStop).unwrap();
    proxy.wait();
}
