#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The cross-shard protocol on simulated shards: `Table` instances exchanging their
//! `Outgoing` messages through `Vec` queues on an injected millisecond clock, no threads.

use std::net::Ipv4Addr;
use std::time::Duration;

use ringlb_config::model::StoreItem;
use ringlb_stick::{
    owner_of, DataType, Event, KeySample, KeyType, Layout, Message, Outgoing, Query, SetEntry,
    ShardInfo, Table, TableConfig, TrackFrom,
};

fn guide_table(shards: u16) -> Vec<Table> {
    // `stick-table type ip size 200k expire 30s store http_req_rate(10s),conn_cur,bytes_out_rate(60s)`
    let store = [
        ("http_req_rate", Some(10_000)),
        ("conn_cur", None),
        ("bytes_out_rate", Some(60_000)),
        ("gpc0", None),
        ("http_req_cnt", None),
    ];
    let store: Vec<StoreItem> = store
        .iter()
        .map(|(n, p)| StoreItem {
            name: n.to_string(),
            period: p.map(Duration::from_millis),
        })
        .collect();
    let cfg = TableConfig {
        name: "per_ip".into(),
        key: KeyType::Ip,
        size: 204_800,
        expire_ms: Some(30_000),
        nopurge: false,
        layout: Layout::new(&store).unwrap(),
    };
    (0..shards)
        .map(|id| {
            Table::new(
                cfg.clone(),
                ShardInfo { id, count: shards },
                7 + u64::from(id),
            )
        })
        .collect()
}

const CLIENT: KeySample<'static> = KeySample::Ipv4(Ipv4Addr::new(127, 0, 0, 1));

/// Messages in transit, delivered one tick after they were sent.
#[derive(Default)]
struct Net {
    in_flight: Vec<Outgoing>,
}

impl Net {
    fn exchange(&mut self, shards: &mut [Table], now: u64) {
        for m in std::mem::take(&mut self.in_flight) {
            shards[usize::from(m.to)].receive(m.msg, now);
        }
        for t in shards.iter_mut() {
            self.in_flight.extend(t.flush(now));
        }
    }
}

/// One request through the guide's rule on `shard`: track, then deny when
/// `sc_http_req_rate(0) gt 100`. True if accepted.
fn request(t: &mut Table, now: u64) -> bool {
    let h = t.track(&CLIENT, TrackFrom::HttpRequest, now).unwrap();
    let rate = t.get(h, DataType::HttpReqRate, now).unwrap();
    t.release(h, now);
    rate <= 100
}

/// Runs `n` requests spread evenly over `span_ms`, on shards picked by `pick`, exchanging
/// messages every `interval_ms`. Returns the number accepted.
fn run(
    shards: &mut [Table],
    n: u64,
    span_ms: u64,
    interval_ms: u64,
    sync: bool,
    pick: impl Fn(u64) -> usize,
) -> u64 {
    let mut net = Net::default();
    let mut accepted = 0;
    let mut next = 0;
    for now in 1_000..=1_000 + span_ms + 50 {
        while next < n && 1_000 + next * span_ms / n <= now {
            if request(&mut shards[pick(next)], now) {
                accepted += 1;
            }
            next += 1;
        }
        if sync && now % interval_ms == 0 {
            net.exchange(shards, now);
        }
    }
    assert_eq!(next, n);
    accepted
}

#[test]
fn limit_holds_globally_on_two_shards_alternating() {
    let mut shards = guide_table(2);
    let accepted = run(&mut shards, 300, 10_000, 1, true, |i| (i % 2) as usize);
    assert!((95..=105).contains(&accepted), "accepted {accepted}");
    // The owner's entry saw all 300 requests.
    let owner = usize::from(owner_of(&[127, 0, 0, 1], 2));
    let mut owner_t = std::mem::replace(&mut shards[owner], guide_table(1).remove(0));
    assert_eq!(
        owner_t.lookup(&CLIENT, DataType::HttpReqCnt, 11_100),
        Some(300)
    );
    // 100 ms into the next period, 99% of the previous one is still in the sliding window.
    assert_eq!(
        owner_t.lookup(&CLIENT, DataType::HttpReqRate, 11_100),
        Some(297)
    );
}

#[test]
fn without_the_exchange_each_shard_would_allow_its_own_100() {
    // The same run with messages never delivered: the failure mode the design prevents.
    let mut shards = guide_table(2);
    let accepted = run(&mut shards, 300, 10_000, 1, false, |i| (i % 2) as usize);
    assert!(accepted >= 195, "accepted {accepted}");
}

#[test]
fn bursts_on_four_shards_stay_within_the_exchange_error() {
    // 300 requests in 1 s from one client spread pseudo-randomly over 4 shards, exchange every
    // 2 ms with 2 ms of latency: a shard misses at most the others' last few requests.
    let mut shards = guide_table(4);
    let pick = |i: u64| {
        ((i.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33)
            % 4) as usize
    };
    let accepted = run(&mut shards, 300, 1_000, 2, true, pick);
    assert!((100..=105).contains(&accepted), "accepted {accepted}");
}

#[test]
fn conn_cur_is_global_and_returns_to_zero() {
    let mut shards = guide_table(2);
    let owner = usize::from(owner_of(&[127, 0, 0, 1], 2));
    let other = 1 - owner;
    let mut net = Net::default();
    let a = shards[other]
        .track(&CLIENT, TrackFrom::TcpConnection, 0)
        .unwrap();
    let b = shards[owner]
        .track(&CLIENT, TrackFrom::TcpConnection, 0)
        .unwrap();
    // Before any exchange each shard sees only its own connection.
    assert_eq!(shards[other].get(a, DataType::ConnCur, 0), Some(1));
    net.exchange(&mut shards, 1); // other flushes its +1
    net.exchange(&mut shards, 2); // owner applies it, flushes a snapshot
    assert_eq!(shards[owner].get(b, DataType::ConnCur, 2), Some(2));
    // The owner broadcasts its entries: its own connection (snapshot sent at 1) is known on
    // the other shard at 2, plus that shard's own in-flight +1.
    assert_eq!(shards[other].get(a, DataType::ConnCur, 2), Some(2));
    net.exchange(&mut shards, 3);
    assert_eq!(shards[other].get(a, DataType::ConnCur, 3), Some(2));
    shards[other].record(a, Event::BytesOut(1000), 3);
    shards[other].release(a, 3);
    shards[owner].release(b, 3);
    for now in 4..8 {
        net.exchange(&mut shards, now);
    }
    assert_eq!(shards[owner].lookup(&CLIENT, DataType::ConnCur, 8), Some(0));
    assert_eq!(shards[other].lookup(&CLIENT, DataType::ConnCur, 8), Some(0));
    assert_eq!(
        shards[owner].lookup(&CLIENT, DataType::BytesOutRate, 8),
        Some(1000)
    );
    assert_eq!(
        shards[other].lookup(&CLIENT, DataType::BytesOutRate, 8),
        Some(1000)
    );
}

#[test]
fn gpc_increments_and_clears_keep_their_order_across_shards() {
    let mut shards = guide_table(2);
    let owner = usize::from(owner_of(&[127, 0, 0, 1], 2));
    let other = 1 - owner;
    let mut net = Net::default();
    let h = shards[other]
        .track(&CLIENT, TrackFrom::HttpRequest, 0)
        .unwrap();
    assert_eq!(shards[other].inc_gpc(h, DataType::Gpc0, 0), Some(1));
    assert_eq!(shards[other].inc_gpc(h, DataType::Gpc0, 0), Some(2));
    assert_eq!(shards[other].clr_gpc(h, DataType::Gpc0, 0), Some(2));
    assert_eq!(shards[other].inc_gpc(h, DataType::Gpc0, 0), Some(1));
    let o = shards[owner]
        .track(&CLIENT, TrackFrom::HttpRequest, 0)
        .unwrap();
    assert_eq!(shards[owner].inc_gpc(o, DataType::Gpc0, 0), Some(1));
    for now in 1..4 {
        net.exchange(&mut shards, now);
    }
    // The owner had 1; the other shard's batch was "set 1" (clear, then +1) applied after it.
    assert_eq!(shards[owner].get(o, DataType::Gpc0, 4), Some(1));
    assert_eq!(shards[other].get(h, DataType::Gpc0, 4), Some(1));
}

#[test]
fn messages_are_batched_per_peer_and_nothing_is_sent_when_idle() {
    let mut shards = guide_table(2);
    let owner = usize::from(owner_of(&[127, 0, 0, 1], 2));
    let other = 1 - owner;
    assert!(shards[other].flush(0).is_empty());
    for i in 1..=50u8 {
        let k = KeySample::Ipv4(Ipv4Addr::new(10, 0, 0, i));
        let h = shards[other].track(&k, TrackFrom::HttpRequest, 0).unwrap();
        shards[other].release(h, 0);
        let h = shards[other].track(&k, TrackFrom::HttpRequest, 0).unwrap();
        shards[other].release(h, 0);
    }
    let out = shards[other].flush(1);
    // One batch of each kind for the one peer: deltas for the keys it owns, snapshots of the
    // keys this shard owns (owners broadcast their entries).
    assert_eq!(out.len(), 2, "one batch of each kind for the one peer");
    let Message::Deltas { deltas, .. } = &out[0].msg else {
        panic!("expected deltas")
    };
    let Message::Updates { updates, .. } = &out[1].msg else {
        panic!("expected updates")
    };
    let owned_here = (1..=50u8)
        .filter(|i| usize::from(owner_of(&[10, 0, 0, *i], 2)) == other)
        .count();
    assert_eq!(updates.len(), owned_here);
    // Only the keys the peer owns travel; each once, with merged counts.
    let owned_by_peer = (1..=50u8)
        .filter(|i| usize::from(owner_of(&[10, 0, 0, *i], 2)) != other)
        .count();
    assert_eq!(deltas.len(), owned_by_peer);
    assert!(deltas.iter().all(|d| d
        .ops
        .contains(&ringlb_stick::DeltaOp::Add(DataType::HttpReqCnt, 2))));
    assert!(shards[other].flush(2).is_empty());
}

#[test]
fn evicted_cache_entries_still_deliver_their_deltas() {
    let store = vec![StoreItem {
        name: "http_req_cnt".into(),
        period: None,
    }];
    let cfg = TableConfig {
        name: "tiny".into(),
        key: KeyType::Integer,
        size: 1,
        expire_ms: None,
        nopurge: false,
        layout: Layout::new(&store).unwrap(),
    };
    let mut shards: Vec<Table> = (0..2)
        .map(|id| Table::new(cfg.clone(), ShardInfo { id, count: 2 }, 1))
        .collect();
    let owned_by = |s: u16| {
        (0i64..100)
            .find(|i| owner_of(&(*i as u32).to_be_bytes(), 2) == s)
            .unwrap()
    };
    let (remote, local) = (owned_by(0), owned_by(1));
    // Shard 1 (one entry) counts a key shard 0 owns, then a key of its own evicts that cache
    // entry before any flush: its pending +1 must still reach the owner.
    for k in [remote, local] {
        let h = shards[1]
            .track(&KeySample::Int(k), TrackFrom::HttpRequest, 0)
            .unwrap();
        shards[1].release(h, 0);
    }
    assert_eq!(shards[1].used(), 1);
    assert!(!shards[1].contains(&KeySample::Int(remote), 0));
    let mut net = Net::default();
    net.exchange(&mut shards, 1);
    net.exchange(&mut shards, 2);
    assert_eq!(
        shards[0].lookup(&KeySample::Int(remote), DataType::HttpReqCnt, 3),
        Some(1)
    );
}

#[test]
fn show_table_across_shards_lists_each_key_once_from_its_owner() {
    let mut shards = guide_table(2);
    let mut net = Net::default();
    for i in 1..=6u8 {
        let k = KeySample::Ipv4(Ipv4Addr::new(10, 0, 0, i));
        for t in shards.iter_mut() {
            let h = t.track(&k, TrackFrom::HttpRequest, 0).unwrap();
            t.release(h, 0);
        }
    }
    net.exchange(&mut shards, 1);
    net.exchange(&mut shards, 2);
    let q = Query::default();
    let mut rows = Vec::new();
    let mut used = 0;
    for t in &shards {
        rows.extend(t.query(&q, 2, true));
        used += t.used_owned();
    }
    let mut out = String::new();
    ringlb_stick::runtime::format_show(shards[0].config(), used, rows, &mut out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "# table: per_ip, type: ip, size:204800, used:6");
    assert_eq!(lines.len(), 7);
    for (i, l) in lines[1..].iter().enumerate() {
        // Owners touched the entries when they applied the peer's delta at t=2 ms.
        let (_, rest) = l.split_once(": ").unwrap();
        assert_eq!(
            rest,
            format!(
                "key=10.0.0.{} use=0 exp=30000 gpc0=0 conn_cur=0 http_req_cnt=2 \
                 http_req_rate(10000)=2 bytes_out_rate(60000)=0",
                i + 1
            )
        );
    }
}

/// A flood (10 requests per ms from one key over 4 shards): a non-owner misses what the other
/// shards counted during about two exchange intervals (its delta out, the owner's snapshot
/// back), so the overshoot is bounded by rate x 2 ms x (N-1)/N = 15 (ADR 0003).
#[test]
fn a_flood_overshoots_by_at_most_two_intervals_of_traffic() {
    let pick = |i: u64| {
        ((i.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 33)
            % 4) as usize
    };
    let mut shards = guide_table(4);
    let accepted = run(&mut shards, 3000, 300, 1, true, pick);
    assert!((100..=115).contains(&accepted), "accepted {accepted}");
    // Exchanging every 5 ms widens the window accordingly.
    let mut shards = guide_table(4);
    let accepted = run(&mut shards, 3000, 300, 5, true, pick);
    assert!(
        (100..=100 + 10 * 2 * 5 * 3 / 4).contains(&accepted),
        "accepted {accepted}"
    );
}

#[test]
fn a_stored_server_is_known_on_every_shard() {
    let store: Vec<StoreItem> = Vec::new();
    let cfg = TableConfig {
        name: "persist".into(),
        key: KeyType::Ip,
        size: 1000,
        expire_ms: Some(60_000),
        nopurge: false,
        layout: Layout::new(&store).unwrap(),
    }
    .for_stick_rules();
    let mut shards: Vec<Table> = (0..3)
        .map(|id| Table::new(cfg.clone(), ShardInfo { id, count: 3 }, 1))
        .collect();
    let owner = usize::from(owner_of(&[127, 0, 0, 1], 3));
    // `stick store-request src` on a shard that does not own the key.
    let first = (owner + 1) % 3;
    assert!(shards[first].store_server_id(&CLIENT, 2, 0));
    let mut net = Net::default();
    for now in 1..5 {
        net.exchange(&mut shards, now);
    }
    for (i, t) in shards.iter_mut().enumerate() {
        assert_eq!(t.stick_match(&CLIENT, 5), Some(2), "shard {i}");
    }
}

#[test]
fn the_owner_keeps_an_entry_a_stream_on_another_shard_holds() {
    let mut shards = guide_table(2);
    let owner = usize::from(owner_of(&[127, 0, 0, 1], 2));
    let other = 1 - owner;
    let mut net = Net::default();
    // A long connection tracked on the other shard, idle for longer than `expire` (30 s).
    let h = shards[other]
        .track(&CLIENT, TrackFrom::TcpConnection, 0)
        .unwrap();
    for now in 1..4 {
        net.exchange(&mut shards, now);
    }
    assert_eq!(shards[owner].purge_expired(100_000, 10), 0);
    assert_eq!(
        shards[owner].lookup(&CLIENT, DataType::ConnCur, 100_000),
        Some(1)
    );
    shards[other].release(h, 100_000);
    for now in 100_001..100_004 {
        net.exchange(&mut shards, now);
    }
    assert_eq!(
        shards[owner].lookup(&CLIENT, DataType::ConnCur, 100_004),
        Some(0)
    );
    // Released everywhere: it expires 30 s after its last touch.
    assert!(shards[owner].purge_expired(140_000, 10) == 1);
}

/// `set table` as the runtime socket sends it (the same parsed entry applied on every shard):
/// every shard reads the new values at once, before any exchange, and the owner's value wins
/// once snapshots flow; requests counted afterwards add to it on every shard.
#[test]
fn set_table_applied_on_every_shard_holds_at_once_and_after_exchanges() {
    let mut shards = guide_table(2);
    let cfg = shards[0].config().clone();
    let (entry, err) = SetEntry::parse(&cfg, &["key", "127.0.0.1", "data.http_req_rate", "150"])
        .unwrap()
        .unwrap();
    assert_eq!(err, None);
    for t in shards.iter_mut() {
        t.apply_set(&entry, 10).unwrap();
    }
    for t in shards.iter_mut() {
        assert_eq!(t.lookup(&CLIENT, DataType::HttpReqRate, 11), Some(150));
        assert!(!request(t, 11), "the guide's rule denies above 100");
    }
    let mut net = Net::default();
    for now in 12..16 {
        net.exchange(&mut shards, now);
    }
    // 150 set + one request on each shard.
    for t in shards.iter_mut() {
        assert_eq!(t.lookup(&CLIENT, DataType::HttpReqRate, 16), Some(152));
    }
}

/// `clear table` sent to every shard removes the owner's entry and the caches of it: no
/// shard keeps reading the old counts.
#[test]
fn clear_table_on_every_shard_forgets_the_key_everywhere() {
    let mut shards = guide_table(2);
    let mut net = Net::default();
    for now in 0..20u64 {
        let i = (now % 2) as usize;
        request(&mut shards[i], now);
        net.exchange(&mut shards, now);
    }
    for now in 20..24 {
        net.exchange(&mut shards, now);
    }
    for t in shards.iter_mut() {
        assert_eq!(t.lookup(&CLIENT, DataType::HttpReqRate, 24), Some(20));
    }
    let q = Query::parse(&shards[0].config().clone(), &["key", "127.0.0.1"]).unwrap();
    for t in shards.iter_mut() {
        assert_eq!(t.clear(&q, 25), 1);
    }
    for now in 25..30 {
        net.exchange(&mut shards, now);
    }
    for t in shards.iter() {
        assert!(t.query(&Query::default(), 30, false).is_empty());
    }
    // A faulty pair after a good one: the good one is stored, the error comes back.
    let cfg = shards[0].config().clone();
    let (entry, err) = SetEntry::parse(
        &cfg,
        &["key", "127.0.0.1", "data.gpc0", "3", "data.foo", "1"],
    )
    .unwrap()
    .unwrap();
    assert_eq!(err.as_deref(), Some("Unknown data type\n"));
    assert_eq!(entry.sets, vec![(DataType::Gpc0, 3)]);
    assert_eq!(
        SetEntry::parse(&cfg, &["data.gpc0", "1"]).unwrap_err(),
        "content-based lookup is only supported with the \"show\" and \"clear\" actions\n"
    );
    // haproxy 2.6 reads text that is no IPv4 address as 0.0.0.0.
    let (zz, _) = SetEntry::parse(&cfg, &["key", "zz"]).unwrap().unwrap();
    assert_eq!(&*zz.key, &[0, 0, 0, 0]);
}
