//! Per-request cost of the guide's rate limit in the stick table alone: `track-sc0 src`,
//! `sc_http_req_rate(0)`, release at stream end. Run:
//! `cargo run --release -p ringlb-stick --example track_bench`
//! Prints ns per request for a hot key, for 100k distinct keys, and on a non-owner shard of 2
//! (deltas flushed every 1000 requests, i.e. every ~1 ms at 1M req/s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ringlb_config::model::StoreItem;
use ringlb_stick::{
    owner_of, DataType, KeySample, KeyType, Layout, ShardInfo, Table, TableConfig, TrackFrom,
};

fn guide(shard: ShardInfo) -> Table {
    let store = [
        ("http_req_rate", Some(10_000)),
        ("conn_cur", None),
        ("bytes_out_rate", Some(60_000)),
    ]
    .iter()
    .map(|(n, p)| StoreItem {
        name: n.to_string(),
        period: p.map(Duration::from_millis),
    })
    .collect::<Vec<_>>();
    let cfg = TableConfig {
        name: "per_ip".into(),
        key: KeyType::Ip,
        size: 204_800,
        expire_ms: Some(30_000),
        nopurge: false,
        layout: Layout::new(&store).unwrap(),
    };
    Table::new(cfg, shard, 42)
}

fn one(t: &mut Table, ip: Ipv4Addr, now: u64) -> i64 {
    let h = t
        .track(&KeySample::Ipv4(ip), TrackFrom::HttpRequest, now)
        .unwrap();
    let r = t.get(h, DataType::HttpReqRate, now).unwrap();
    t.release(h, now);
    r
}

fn report(name: &str, n: u64, f: impl FnOnce()) {
    let t0 = Instant::now();
    f();
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    println!("{name:<40} {ns:>8.1} ns/request");
}

fn main() {
    const N: u64 = 2_000_000;
    let mut t = guide(ShardInfo::SINGLE);
    report("hot key, 1 shard", N, || {
        for i in 0..N {
            black_box(one(&mut t, Ipv4Addr::new(10, 0, 0, 1), i / 1000));
        }
    });
    for keys in [1_000u32, 100_000] {
        let mut t = guide(ShardInfo::SINGLE);
        let mut x: u32 = 1;
        report(&format!("{keys} distinct keys, 1 shard"), N, || {
            for i in 0..N {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                black_box(one(&mut t, Ipv4Addr::from(x % keys), i / 1000));
            }
        });
    }
    // A key the other shard owns: every request records a pending delta.
    let hot = (1u8..=255)
        .map(|b| Ipv4Addr::new(10, 0, 0, b))
        .find(|a| owner_of(&a.octets(), 2) == 1)
        .unwrap();
    let mut t = guide(ShardInfo { id: 0, count: 2 });
    let mut msgs = 0usize;
    report("hot key on a non-owner of 2 shards", N, || {
        for i in 0..N {
            black_box(one(&mut t, hot, i / 1000));
            if i % 1000 == 999 {
                msgs += t.flush(i / 1000).len();
            }
        }
    });
    println!("  ({msgs} delta batches sent)");
}
