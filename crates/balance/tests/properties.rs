//! Seeded property loops over every algorithm: weights respected, DOWN/drained/maint servers
//! never chosen, backups only when no active server is usable, consistent hashing stable.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ringlb_balance::{Balancer, Options, PickInput, RngLike, ServerInfo, SplitMix64, WeightError};
use ringlb_config::model::{Balance, HashFunction, HashType};

fn servers(weights: &[u32]) -> Vec<ServerInfo> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| ServerInfo {
            puid: i as u32 + 1,
            weight: w,
            backup: false,
            maxconn: 0,
            up: true,
        })
        .collect()
}

fn uri_balance() -> Balance {
    Balance::Uri {
        whole: false,
        path_only: false,
        len: None,
        depth: None,
    }
}

fn consistent() -> HashType {
    HashType {
        consistent: true,
        function: HashFunction::Sdbm,
        avalanche: true,
    }
}

/// Every algorithm, with the hash types that apply.
fn all_algorithms() -> Vec<(Balance, HashType)> {
    let map = HashType::default();
    let hashed = [
        Balance::Source,
        uri_balance(),
        Balance::UrlParam {
            name: "k".into(),
            check_post: false,
        },
        Balance::Hdr {
            name: "x".into(),
            use_domain_only: false,
        },
    ];
    let mut v = vec![
        (Balance::Roundrobin, map),
        (Balance::StaticRr, map),
        (Balance::Leastconn, map),
        (Balance::First, map),
        (Balance::Random { draws: 2 }, map),
    ];
    for b in hashed {
        v.push((b.clone(), map));
        v.push((b, consistent()));
    }
    v
}

/// A varied request: its uri, header and source change with `n`.
fn with_request<R>(n: u32, f: impl FnOnce(&PickInput<'_>) -> R) -> R {
    let uri = format!("/obj/{n}?k={}", n.wrapping_mul(2_654_435_761));
    let hdr = format!("h{n}");
    let req = PickInput {
        src: Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32.wrapping_add(n)))),
        uri: uri.as_bytes(),
        header: Some(hdr.as_bytes()),
        ..PickInput::default()
    };
    f(&req)
}

fn counts(b: &mut Balancer, picks: u32, rng: &mut SplitMix64) -> Vec<u32> {
    let mut c = vec![0u32; b.server_count()];
    for _ in 0..picks {
        let i = with_request(rng.next_u32(), |r| b.pick(r, rng)).expect("a server");
        c[i] += 1;
        b.take_conn(i);
        b.drop_conn(i);
    }
    c
}

#[test]
fn weights_321_give_50_33_17_percent_over_6000_picks() {
    for balance in [Balance::Roundrobin, Balance::StaticRr] {
        let mut b = Balancer::new(
            &balance,
            &HashType::default(),
            &servers(&[3, 2, 1]),
            &Options::default(),
        );
        let c = counts(&mut b, 6000, &mut SplitMix64(7));
        for (got, want) in c.iter().zip([0.5, 1.0 / 3.0, 1.0 / 6.0]) {
            let share = f64::from(*got) / 6000.0;
            assert!((share - want).abs() <= 0.01, "{balance:?}: {c:?}");
        }
    }
}

#[test]
fn weights_respected_within_epsilon_over_100k_picks() {
    let mut rng = SplitMix64(42);
    for round in 0..6 {
        let n = 2 + (rng.next_u32() % 6) as usize;
        let weights: Vec<u32> = (0..n).map(|_| 1 + rng.next_u32() % 20).collect();
        let total: u32 = weights.iter().sum();
        for (balance, ht, eps) in [
            (Balance::Roundrobin, HashType::default(), 0.002),
            (Balance::StaticRr, HashType::default(), 0.002),
            (uri_balance(), HashType::default(), 0.02),
            (uri_balance(), consistent(), 0.06),
            (Balance::Random { draws: 2 }, HashType::default(), 0.06),
        ] {
            let mut b = Balancer::new(&balance, &ht, &servers(&weights), &Options::default());
            let c = counts(&mut b, 100_000, &mut rng);
            for (got, w) in c.iter().zip(&weights) {
                let share = f64::from(*got) / 100_000.0;
                let want = f64::from(*w) / f64::from(total);
                assert!(
                    (share - want).abs() <= eps,
                    "round {round} {balance:?} {ht:?} weights {weights:?}: {c:?}"
                );
            }
        }
    }
}

#[test]
fn never_picks_a_down_drained_or_maint_server() {
    let mut rng = SplitMix64(3);
    for (balance, ht) in all_algorithms() {
        let mut b = Balancer::new(
            &balance,
            &ht,
            &servers(&[1, 2, 3, 1, 5]),
            &Options::default(),
        );
        for step in 0..3000u32 {
            if step % 50 == 0 {
                for i in 0..5 {
                    let coin = rng.next_u32() % 4;
                    b.set_usable(i, coin != 0);
                    if b.is_dynamic() {
                        b.set_weight(i, if coin == 1 { 0 } else { 1 + i as u32 })
                            .unwrap();
                    }
                }
            }
            let usable: Vec<bool> = (0..5).map(|i| b.effective_weight(i) > 0).collect();
            let picked = with_request(rng.next_u32(), |r| b.pick(r, &mut rng));
            match picked {
                Some(i) => {
                    assert!(usable[i], "{balance:?} picked unusable server {i}");
                    assert!(b.usable_count() > 0);
                }
                None => assert_eq!(
                    b.usable_count(),
                    0,
                    "{balance:?} found nothing with usable servers"
                ),
            }
        }
    }
}

#[test]
fn state_changes_are_honoured_exactly() {
    for (balance, ht) in all_algorithms() {
        let mut b = Balancer::new(&balance, &ht, &servers(&[2, 2, 2]), &Options::default());
        b.set_usable(1, false);
        let mut rng = SplitMix64(5);
        let c = counts(&mut b, 600, &mut rng);
        assert_eq!(c[1], 0, "{balance:?}: DOWN server chosen");
        b.set_usable(1, true);
        b.set_usable(0, false);
        b.set_usable(2, false);
        let c = counts(&mut b, 100, &mut rng);
        assert_eq!(c, vec![0, 100, 0], "{balance:?}");
        b.set_usable(1, false);
        assert_eq!(
            with_request(1, |r| b.pick(r, &mut rng)),
            None,
            "{balance:?}"
        );
    }
}

fn with_backups(allbackups: bool, balance: &Balance, ht: &HashType) -> Balancer {
    let mut s = servers(&[1, 1, 2, 1, 3]);
    for x in &mut s[2..] {
        x.backup = true;
    }
    Balancer::new(
        balance,
        ht,
        &s,
        &Options {
            allbackups,
            hash_balance_factor: 0,
        },
    )
}

#[test]
fn backups_only_when_no_active_server_is_usable() {
    for (balance, ht) in all_algorithms() {
        let mut rng = SplitMix64(9);
        let mut b = with_backups(false, &balance, &ht);
        let c = counts(&mut b, 300, &mut rng);
        assert_eq!(
            c[2] + c[3] + c[4],
            0,
            "{balance:?}: backup used while actives are up"
        );
        b.set_usable(0, false);
        let c = counts(&mut b, 300, &mut rng);
        assert_eq!(c, vec![0, 300, 0, 0, 0], "{balance:?}");
        b.set_usable(1, false);
        let c = counts(&mut b, 300, &mut rng);
        let map_quirk = balance == Balance::StaticRr
            || (!ht.consistent && matches!(balance, Balance::UrlParam { .. }));
        if map_quirk {
            // HAProxy's static map quirk (traces/map_backups*.txt): all backups share it.
            assert_eq!(c[0] + c[1], 0);
        } else {
            assert_eq!(c, vec![0, 0, 300, 0, 0], "{balance:?}: first backup only");
        }
        b.set_usable(2, false);
        let c = counts(&mut b, 300, &mut rng);
        assert_eq!(c[0] + c[1] + c[2], 0, "{balance:?}");
        b.set_usable(0, true);
        let c = counts(&mut b, 300, &mut rng);
        assert_eq!(
            c,
            vec![300, 0, 0, 0, 0],
            "{balance:?}: back to the active server"
        );
    }
}

#[test]
fn allbackups_share_the_load() {
    for (balance, ht) in all_algorithms() {
        if balance == Balance::First {
            continue; // `first` fills the first server by design
        }
        let mut rng = SplitMix64(11);
        let mut b = with_backups(true, &balance, &ht);
        b.set_usable(0, false);
        b.set_usable(1, false);
        let c = counts(&mut b, 3000, &mut rng);
        assert_eq!(c[0] + c[1], 0);
        assert!(c[2] > 0 && c[3] > 0 && c[4] > 0, "{balance:?}: {c:?}");
    }
}

fn assignment(b: &mut Balancer, keys: u32) -> Vec<usize> {
    let mut rng = SplitMix64(0);
    (0..keys)
        .map(|k| with_request(k, |r| b.pick(r, &mut rng)).unwrap())
        .collect()
}

#[test]
fn consistent_hashing_moves_at_most_one_nth_of_keys_when_a_server_is_added() {
    for balance in [
        uri_balance(),
        Balance::Source,
        Balance::Hdr {
            name: "x".into(),
            use_domain_only: false,
        },
    ] {
        for n in [2usize, 3, 5, 8, 16] {
            let mut s = servers(&vec![1; n + 1]);
            s[n].up = false;
            let mut b = Balancer::new(&balance, &consistent(), &s, &Options::default());
            let before = assignment(&mut b, 20_000);
            b.set_usable(n, true);
            let after = assignment(&mut b, 20_000);
            let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count();
            assert!(
                before.iter().zip(&after).all(|(x, y)| x == y || *y == n),
                "keys moved between old servers"
            );
            let share = moved as f64 / 20_000.0;
            let ideal = 1.0 / (n as f64 + 1.0);
            assert!(
                share <= ideal + 0.05,
                "{balance:?} n={n}: moved {share:.3}, ideal {ideal:.3}"
            );
            assert!(
                share >= ideal / 3.0,
                "{balance:?} n={n}: new server got too little ({share:.3})"
            );
        }
    }
}

#[test]
fn map_based_hashing_remaps_but_consistent_does_not() {
    let mut s = servers(&[1, 1, 1, 1, 1]);
    s[4].up = false;
    let mut b = Balancer::new(
        &uri_balance(),
        &HashType::default(),
        &s,
        &Options::default(),
    );
    let before = assignment(&mut b, 5000);
    b.set_usable(4, true);
    let after = assignment(&mut b, 5000);
    let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count();
    assert!(
        moved > 5000 / 2,
        "map-based hashing should reshuffle most keys ({moved})"
    );
}

#[test]
fn leastconn_follows_connection_counts_and_weights() {
    let mut b = Balancer::new(
        &Balance::Leastconn,
        &HashType::default(),
        &servers(&[1, 1, 2]),
        &Options::default(),
    );
    let mut rng = SplitMix64(1);
    // Hold connections: server 2 (weight 2) takes about twice as many.
    for _ in 0..400 {
        let i = b.pick(&PickInput::default(), &mut rng).unwrap();
        b.take_conn(i);
    }
    let held: Vec<u32> = (0..3).map(|i| b.served(i)).collect();
    assert!(
        held[0].abs_diff(100) <= 1 && held[1].abs_diff(100) <= 1 && held[2].abs_diff(200) <= 2,
        "{held:?}"
    );
    for _ in 0..50 {
        b.drop_conn(0);
    }
    for _ in 0..50 {
        let i = b.pick(&PickInput::default(), &mut rng).unwrap();
        assert_eq!(i, 0, "the emptied server gets the new connections first");
        b.take_conn(i);
    }
}

#[test]
fn maxconn_full_servers_are_skipped() {
    for balance in [
        Balance::Roundrobin,
        Balance::StaticRr,
        Balance::Leastconn,
        Balance::First,
    ] {
        let mut s = servers(&[1, 1, 1]);
        for x in &mut s {
            x.maxconn = 2;
        }
        let mut b = Balancer::new(&balance, &HashType::default(), &s, &Options::default());
        let mut rng = SplitMix64(1);
        for _ in 0..6 {
            let i = b.pick(&PickInput::default(), &mut rng).unwrap();
            b.take_conn(i);
        }
        assert_eq!(
            (0..3).map(|i| b.served(i)).collect::<Vec<_>>(),
            vec![2, 2, 2],
            "{balance:?}"
        );
        assert_eq!(
            b.pick(&PickInput::default(), &mut rng),
            None,
            "{balance:?}: all full → queue"
        );
        b.drop_conn(1);
        assert_eq!(
            b.pick(&PickInput::default(), &mut rng),
            Some(1),
            "{balance:?}"
        );
    }
}

#[test]
fn first_fills_servers_in_id_order() {
    let mut s = servers(&[1, 1, 1]);
    for x in &mut s {
        x.maxconn = 3;
    }
    s[0].puid = 9;
    let mut b = Balancer::new(
        &Balance::First,
        &HashType::default(),
        &s,
        &Options::default(),
    );
    let mut rng = SplitMix64(1);
    let order: Vec<usize> = (0..9)
        .map(|_| {
            let i = b.pick(&PickInput::default(), &mut rng).unwrap();
            b.take_conn(i);
            i
        })
        .collect();
    assert_eq!(order, vec![1, 1, 1, 2, 2, 2, 0, 0, 0]);
}

#[test]
fn hash_balance_factor_caps_each_server() {
    let opts = Options {
        allbackups: false,
        hash_balance_factor: 125,
    };
    let mut b = Balancer::new(
        &uri_balance(),
        &consistent(),
        &servers(&[1, 1, 1, 1]),
        &opts,
    );
    let mut rng = SplitMix64(1);
    // Every request hashes the same key: without the factor one server would take all.
    for n in 0..400u32 {
        let i = b
            .pick(
                &PickInput {
                    uri: b"/same",
                    ..PickInput::default()
                },
                &mut rng,
            )
            .unwrap();
        b.take_conn(i);
        let max = (0..4).map(|s| b.served(s)).max().unwrap();
        let cap = ((n + 1) * 125).div_ceil(100).div_ceil(4) + 1;
        assert!(max <= cap, "after {n}: max {max} > cap {cap}");
    }
}

#[test]
fn set_weight_rules() {
    let mut rr = Balancer::new(
        &Balance::Roundrobin,
        &HashType::default(),
        &servers(&[1, 1]),
        &Options::default(),
    );
    assert_eq!(rr.set_weight(0, 257), Err(WeightError::OutOfRange));
    assert_eq!(rr.set_weight(5, 1), Err(WeightError::NoSuchServer));
    assert_eq!(rr.set_weight(0, 3), Ok(()));
    let c = counts(&mut rr, 400, &mut SplitMix64(1));
    assert_eq!(c, vec![300, 100]);
    let mut st = Balancer::new(
        &Balance::StaticRr,
        &HashType::default(),
        &servers(&[2, 1]),
        &Options::default(),
    );
    assert_eq!(st.set_weight(0, 3), Err(WeightError::StaticAlgorithm));
    assert_eq!(st.set_weight(0, 0), Ok(()));
    assert_eq!(counts(&mut st, 10, &mut SplitMix64(1)), vec![0, 10]);
    assert_eq!(st.set_weight(0, 2), Ok(()));
}

#[test]
fn slowstart_ramps_the_share_of_a_returning_server() {
    let mut b = Balancer::new(
        &Balance::Roundrobin,
        &HashType::default(),
        &servers(&[1, 1]),
        &Options::default(),
    );
    let ss = Duration::from_secs(16);
    let mut last = 0;
    for el in [0u64, 4, 8, 12, 16] {
        b.set_slowstart(1, Duration::from_secs(el), ss);
        let c = counts(&mut b, 3200, &mut SplitMix64(el));
        assert!(c[1] >= last, "share should grow: {c:?} at {el}s");
        last = c[1];
        let w = (16 * el + 16) / 16;
        assert_eq!(b.effective_weight(1), if el >= 16 { 16 } else { w as u32 });
    }
    assert_eq!(last, 1600);
}

#[test]
fn hashing_agrees_across_shards_whatever_their_history() {
    // Each shard owns a Balancer; hash picks must not depend on what a shard served before.
    for (balance, ht) in all_algorithms() {
        if matches!(
            balance,
            Balance::Roundrobin
                | Balance::StaticRr
                | Balance::Leastconn
                | Balance::First
                | Balance::Random { .. }
        ) {
            continue;
        }
        let s = servers(&[1, 3, 2, 5]);
        let mut a = Balancer::new(&balance, &ht, &s, &Options::default());
        let mut b = Balancer::new(&balance, &ht, &s, &Options::default());
        let mut rng = SplitMix64(77);
        // Shard b has served traffic (including keyless requests: the round-robin fallback).
        for _ in 0..500 {
            let i = b.pick(&PickInput::default(), &mut rng).unwrap();
            b.take_conn(i);
        }
        for (x, up) in [(2usize, false), (0, false), (0, true)] {
            a.set_usable(x, up);
            b.set_usable(x, up);
            for k in 0..2000u32 {
                let pa = with_request(k, |r| a.pick(r, &mut rng));
                let pb = with_request(k, |r| b.pick(r, &mut rng));
                assert_eq!(pa, pb, "{balance:?} {ht:?} key {k}");
            }
        }
    }
}
