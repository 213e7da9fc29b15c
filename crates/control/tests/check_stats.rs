//! The control shard runs the checks of a plan and keeps the counters the stats page reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ringlb_control::checks::CheckPlan;
use ringlb_control::Proxy;
use ringlb_shard::{ControlMsg, Topology};
use ringlb_testkit::{free_addr, wait_until};

#[test]
fn counters_of_a_refused_server_are_visible_through_the_proxy() {
    let front = free_addr();
    // Nothing listens on the server's port: every check is refused.
    let dead = free_addr();
    let text = format!(
        "defaults\n mode http\n timeout connect 1s\n timeout client 1s\n timeout server 1s\nfrontend fe\n bind {front}\n default_backend be\nbackend be\n server s1 {dead} check inter 100ms\n server s2 {dead} weight 3\n"
    );
    let loaded = ringlb_config::parse_str("t.cfg", &text).unwrap();
    let topo = Arc::new(Topology::from_config(&loaded.config).unwrap());
    let mut plan = CheckPlan::from_config(&loaded.config, &topo).unwrap();
    plan.quiet = true;
    let mut proxy = Proxy::start_with_checks(topo, vec![vec![]], plan).unwrap();
    let down = wait_until(Duration::from_secs(5), || {
        proxy
            .check_stats()
            .first()
            .is_some_and(|s| s.status == "DOWN")
    });
    // A few more refused checks.
    std::thread::sleep(Duration::from_millis(350));
    let stats = proxy.check_stats();
    // Counters age between checks: read twice, 150 ms apart (inter is 100 ms, but a server
    // already DOWN changes nothing).
    let later = {
        std::thread::sleep(Duration::from_millis(150));
        proxy.check_stats()
    };
    let _ = proxy.broadcast(ControlMsg::HardStop);
    proxy.wait();
    assert!(down, "{stats:?}");
    let s1 = &stats[0];
    assert_eq!((s1.backend.as_str(), s1.server.as_str()), ("be", "s1"));
    assert_eq!(s1.status, "DOWN");
    // Servers start one failure from DOWN; failures of a server already DOWN are not counted
    // (haproxy's chkfail, crates/health/traces/risefall-*.txt).
    assert_eq!((s1.chkfail, s1.chkdown), (1, 1));
    assert_eq!(s1.check_status, "L4CON");
    assert_eq!(s1.last_chk, "Connection refused");
    assert!(!s1.usable);
    assert!(s1.downtime > Duration::ZERO);
    let aged = later[0].lastchg.saturating_sub(s1.lastchg);
    assert!(
        aged >= Duration::from_millis(140),
        "lastchg grew by {aged:?}"
    );
    assert!(later[0].downtime >= s1.downtime + Duration::from_millis(140));
    let s2 = &stats[1];
    assert_eq!(
        (s2.status.as_str(), s2.weight, s2.usable),
        ("no check", 3, true)
    );
}
