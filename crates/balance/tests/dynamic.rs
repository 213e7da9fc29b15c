//! Servers added at run time (`add server`): they join every dynamic algorithm with their
//! weight once usable, never before; a deleted server (unusable) is never chosen again; the
//! static algorithms refuse them, as HAProxy does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use ringlb_balance::{Balancer, Options, PickInput, ServerInfo, SplitMix64};
use ringlb_config::model::{Balance, HashFunction, HashType};

fn info(puid: u32, weight: u32, up: bool) -> ServerInfo {
    ServerInfo {
        puid,
        weight,
        backup: false,
        maxconn: 0,
        up,
    }
}

fn counts(lb: &mut Balancer, n: usize, picks: usize, keyed: bool) -> Vec<usize> {
    let mut rng = SplitMix64(7);
    let mut c = vec![0; n];
    for k in 0..picks {
        let key = format!("/key-{k}");
        let input = PickInput {
            uri: if keyed { key.as_bytes() } else { b"/" },
            ..PickInput::default()
        };
        let s = lb.pick(&input, &mut rng).unwrap();
        // Connections that never end: leastconn then shares by weight too.
        lb.take_conn(s);
        c[s] += 1;
    }
    c
}

fn dynamic_algorithms() -> Vec<(&'static str, Balance, HashType, bool)> {
    let consistent = HashType {
        consistent: true,
        function: HashFunction::Sdbm,
        avalanche: false,
    };
    vec![
        (
            "roundrobin",
            Balance::Roundrobin,
            HashType::default(),
            false,
        ),
        ("leastconn", Balance::Leastconn, HashType::default(), false),
        (
            "random",
            Balance::Random { draws: 2 },
            HashType::default(),
            false,
        ),
        (
            "hash consistent",
            Balance::Uri {
                whole: false,
                path_only: false,
                len: None,
                depth: None,
            },
            consistent,
            true,
        ),
    ]
}

#[test]
fn an_added_server_takes_traffic_only_once_usable() {
    for (name, balance, ht, keyed) in dynamic_algorithms() {
        let mut lb = Balancer::new(&balance, &ht, &[info(1, 1, true)], &Options::default());
        let i = lb.add_server(info(2, 3, false)).unwrap();
        assert_eq!(i, 1, "{name}");
        assert_eq!(lb.server_count(), 2);
        assert_eq!(
            counts(&mut lb, 2, 400, keyed),
            vec![400, 0],
            "{name}: in maintenance"
        );
        lb.set_usable(1, true);
        let c = counts(&mut lb, 2, 4000, keyed);
        assert!(
            c[1] > 2400 && c[1] < 3600,
            "{name}: weight 3 of 4 → ~3000, got {c:?}"
        );
        // Deleted (tombstoned): never chosen again, the other index unchanged.
        lb.set_usable(1, false);
        assert_eq!(
            counts(&mut lb, 2, 400, keyed),
            vec![400, 0],
            "{name}: deleted"
        );
    }
}

#[test]
fn an_added_server_can_start_enabled() {
    let mut lb = Balancer::new(
        &Balance::Roundrobin,
        &HashType::default(),
        &[info(1, 1, true)],
        &Options::default(),
    );
    lb.add_server(info(2, 1, true)).unwrap();
    assert_eq!(counts(&mut lb, 2, 100, false), vec![50, 50]);
}

#[test]
fn first_fills_added_servers_in_id_order() {
    let mut lb = Balancer::new(
        &Balance::First,
        &HashType::default(),
        &[info(5, 1, true)],
        &Options::default(),
    );
    lb.add_server(info(2, 1, true)).unwrap();
    let mut rng = SplitMix64(1);
    assert_eq!(
        lb.pick(&PickInput::default(), &mut rng),
        Some(1),
        "lowest id first"
    );
}

#[test]
fn static_algorithms_refuse_added_servers() {
    let map_based = Balance::Source;
    for balance in [Balance::StaticRr, map_based] {
        let mut lb = Balancer::new(
            &balance,
            &HashType::default(),
            &[info(1, 1, true)],
            &Options::default(),
        );
        assert_eq!(lb.add_server(info(2, 1, true)), None);
        assert_eq!(lb.server_count(), 1);
    }
}

/// `first` skips a server at its `maxconn` (HAProxy's `fas_get_next_server`), and takes it
/// again once a connection ends.
#[test]
fn first_skips_full_servers() {
    let servers = [
        ServerInfo {
            maxconn: 2,
            ..info(1, 1, true)
        },
        ServerInfo {
            maxconn: 2,
            ..info(2, 1, true)
        },
        info(3, 1, true),
    ];
    let mut lb = Balancer::new(
        &Balance::First,
        &HashType::default(),
        &servers,
        &Options::default(),
    );
    let mut rng = SplitMix64(1);
    let mut got = Vec::new();
    for _ in 0..6 {
        let s = lb.pick(&PickInput::default(), &mut rng).unwrap();
        lb.take_conn(s);
        got.push(s);
    }
    assert_eq!(got, [0, 0, 1, 1, 2, 2]);
    assert!(lb.any_free_slot(), "s3 has no maxconn");
    lb.drop_conn(0);
    assert_eq!(lb.pick(&PickInput::default(), &mut rng), Some(0));
}

/// When every server is at its `maxconn`, `pick` finds none and `pick_ignoring_limits` gives
/// the server the algorithm would choose without limits (the engine queues the request
/// there).
#[test]
fn every_server_full_leaves_a_pick_ignoring_limits() {
    let servers = [
        ServerInfo {
            maxconn: 1,
            ..info(1, 1, true)
        },
        ServerInfo {
            maxconn: 1,
            ..info(2, 1, true)
        },
    ];
    let mut lb = Balancer::new(
        &Balance::First,
        &HashType::default(),
        &servers,
        &Options::default(),
    );
    let mut rng = SplitMix64(1);
    lb.take_conn(0);
    lb.take_conn(1);
    assert!(!lb.any_free_slot());
    assert_eq!(lb.pick(&PickInput::default(), &mut rng), None);
    assert_eq!(
        lb.pick_ignoring_limits(&PickInput::default(), &mut rng),
        Some(0)
    );
    // Limits apply again to the next pick.
    assert_eq!(lb.pick(&PickInput::default(), &mut rng), None);
}
