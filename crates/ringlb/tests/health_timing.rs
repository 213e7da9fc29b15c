//! `spread-checks` (issue #5): the time between two checks of a server is `inter` after the
//! end of the previous check, moved by a random amount within ± `spread-checks` percent of
//! `inter` (haproxy 2.6's `process_chk`). Measured on the connections a loopback server
//! accepts, the same way for ringlb and haproxy 2.6: with spreading some intervals are shorter
//! than `inter` but none shorter than `inter × (1 − p)`; without it none is shorter than
//! `inter`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::net::SocketAddr;

use health_support::{start, Fake, Proxy, WAIT};
use ringlb_testkit::wait_until;

const INTER_MS: u64 = 100;
/// Checks to time (intervals between them: one fewer).
const CHECKS: usize = 31;

/// The intervals between the checks `proxy` sends to one server, `spread` percent spread.
fn intervals(proxy: Proxy, spread: u32) -> Vec<u64> {
    let fake = Fake::http(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let addr = fake.addr;
    let cfg = move |front: SocketAddr, dir: &std::path::Path| {
        format!(
            "{}    spread-checks {spread}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    option httpchk\n    server s1 {addr} check inter {INTER_MS}ms\n",
            health_support::global(dir, "")
        )
    };
    let (_dir, _p) = start(proxy, "hc-spread", &cfg);
    let enough = wait_until(WAIT, || fake.accepted.lock().unwrap().len() > CHECKS);
    assert!(enough, "{proxy:?}: too few checks");
    let times = fake.accepted.lock().unwrap().clone();
    // The first check's time depends on the start-up stagger: skip it.
    times
        .windows(2)
        .skip(1)
        .take(CHECKS - 1)
        .map(|w| u64::try_from((w[1] - w[0]).as_millis()).unwrap())
        .collect()
}

#[test]
fn spread_checks_moves_each_interval_within_its_bounds() {
    // Times are taken when the loopback server accepts (polled every millisecond; a late
    // accept shortens the next interval): 10 ms of margin.
    for proxy in Proxy::all() {
        // ± 50 % of 100 ms: from 50 ms.
        let spread = intervals(proxy, 50);
        let min = *spread.iter().min().unwrap();
        assert!(min >= 40, "{proxy:?}: below inter - 50%: {spread:?}");
        // P(no interval under 80 ms) is about 0.7^30 with a uniform draw.
        assert!(min < 80, "{proxy:?}: no spreading seen: {spread:?}");
        let max = *spread.iter().max().unwrap();
        assert!(max - min >= 30, "{proxy:?}: too regular: {spread:?}");

        let fixed = intervals(proxy, 0);
        let min = *fixed.iter().min().unwrap();
        assert!(
            min >= INTER_MS - 10,
            "{proxy:?}: shorter than inter: {fixed:?}"
        );
    }
}
