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

/// When every server is at its `maxconn`, a balanced pick finds none and the request waits in
/// the backend's queue (`pick_when_full` is `None`: any server may take it), while a hashed
/// request still goes to the server its key hashes to, and waits in that server's queue, as
/// in HAProxy's `assign_server_and_queue`.
#[test]
fn every_server_full_balanced_requests_wait_for_any_server_hashed_ones_for_theirs() {
    let full = |puid| ServerInfo {
        maxconn: 1,
        ..info(puid, 1, true)
    };
    let servers = [full(1), full(2), full(3)];
    let mut rng = SplitMix64(1);
    let mut lb = Balancer::new(
        &Balance::First,
        &HashType::default(),
        &servers,
        &Options::default(),
    );
    for s in 0..3 {
        lb.take_conn(s);
    }
    assert!(!lb.any_free_slot());
    assert_eq!(lb.pick(&PickInput::default(), &mut rng), None);
    assert_eq!(lb.pick_when_full(&PickInput::default()), None);
    assert!((0..3).all(|s| lb.serves_backend_queue(s)));

    let uri = Balance::Uri {
        whole: false,
        path_only: false,
        len: None,
        depth: None,
    };
    for ht in [
        HashType::default(),
        HashType {
            consistent: true,
            ..HashType::default()
        },
    ] {
        let mut lb = Balancer::new(&uri, &ht, &servers, &Options::default());
        let keys: Vec<String> = (0..20).map(|k| format!("/obj/{k}")).collect();
        let want: Vec<Option<usize>> = keys
            .iter()
            .map(|k| {
                let input = PickInput {
                    uri: k.as_bytes(),
                    ..PickInput::default()
                };
                lb.pick(&input, &mut rng)
            })
            .collect();
        for s in 0..3 {
            lb.take_conn(s);
        }
        assert!(!lb.any_free_slot());
        for (k, want) in keys.iter().zip(&want) {
            let input = PickInput {
                uri: k.as_bytes(),
                ..PickInput::default()
            };
            assert!(want.is_some());
            assert_eq!(lb.pick_when_full(&input), *want, "{k} ({ht:?})");
        }
    }
}

/// Which servers take requests from the backend's queue: the active ones while any is
/// usable; then the first backup, or every backup with `option allbackups`.
#[test]
fn backups_serve_the_backend_queue_only_once_in_use() {
    let backup = |puid| ServerInfo {
        backup: true,
        ..info(puid, 1, true)
    };
    let servers = [info(1, 1, true), backup(2), backup(3)];
    for allbackups in [false, true] {
        let opts = Options {
            allbackups,
            ..Options::default()
        };
        let mut lb = Balancer::new(&Balance::Roundrobin, &HashType::default(), &servers, &opts);
        let serving = |lb: &Balancer| {
            (0..3)
                .map(|s| lb.serves_backend_queue(s))
                .collect::<Vec<_>>()
        };
        assert_eq!(serving(&lb), [true, false, false]);
        lb.set_usable(0, false);
        assert_eq!(serving(&lb), [false, true, allbackups]);
        lb.set_usable(1, false);
        assert_eq!(serving(&lb), [false, false, true]);
        lb.set_usable(2, false);
        assert_eq!(serving(&lb), [false, false, false]);
    }
}
