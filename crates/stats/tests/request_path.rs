#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The request-path updates allocate nothing and per-shard counters merge to the totals.

use ringlb_stats::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    /// Allocations made by this thread (tests run in parallel threads).
    static MINE: Cell<usize> = const { Cell::new(0) };
}

fn mine() -> usize {
    MINE.with(Cell::get)
}

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        let _ = MINE.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn one_request(
    fe: &mut FrontendCounters,
    be: &mut BackendCounters,
    sv: &mut ServerCounters,
    lat: &mut LatencyHistograms,
    now: u64,
    i: u64,
) {
    fe.on_connection(now);
    fe.on_session_start(now);
    fe.on_request(now);
    be.on_session_start(now);
    sv.on_session_start(now);
    sv.cum_lbconn += 1;
    let t = RequestTimes {
        queue_us: Some(i % 7),
        connect_us: Some(200 + i % 50),
        response_us: Some(1000 + i * 13 % 90_000),
        total_us: Some(2000 + i * 17 % 200_000),
    };
    lat.record(&t);
    be.times.record(&t);
    sv.times.record(&t);
    fe.rsp.count(200 + u16::try_from(i % 4).unwrap() * 100);
    sv.rsp.count(200);
    fe.on_session_end();
    be.on_session_end();
    sv.on_session_end();
}

#[test]
fn recording_a_request_does_not_allocate() {
    let (mut fe, mut be, mut sv) = (
        FrontendCounters::default(),
        BackendCounters::default(),
        ServerCounters::default(),
    );
    let mut lat = LatencyHistograms::new();
    one_request(&mut fe, &mut be, &mut sv, &mut lat, 0, 0);
    let before = mine();
    for i in 0..100_000u64 {
        one_request(&mut fe, &mut be, &mut sv, &mut lat, i / 10, i);
    }
    assert_eq!(mine() - before, 0);
    assert_eq!(fe.cum_req, 100_001);
    assert_eq!(lat.total.count(), 100_001);
}

#[test]
fn shards_merge_to_the_totals() {
    let mut shards: Vec<(
        FrontendCounters,
        BackendCounters,
        ServerCounters,
        LatencyHistograms,
    )> = (0..4).map(|_| Default::default()).collect();
    let mut all = (
        FrontendCounters::default(),
        BackendCounters::default(),
        ServerCounters::default(),
        LatencyHistograms::new(),
    );
    for i in 0..10_000u64 {
        let now = 5_000 + i / 10; // 10 requests per ms over 1 s
        let s = &mut shards[usize::try_from(i % 4).unwrap()];
        one_request(&mut s.0, &mut s.1, &mut s.2, &mut s.3, now, i);
        one_request(&mut all.0, &mut all.1, &mut all.2, &mut all.3, now, i);
    }
    let mut m = shards[0].clone();
    for s in &shards[1..] {
        m.0.merge(&s.0);
        m.1.merge(&s.1);
        m.2.merge(&s.2);
        m.3.merge(&s.3);
    }
    assert_eq!(m.0.cum_req, all.0.cum_req);
    assert_eq!(m.0.cum_conn, 10_000);
    assert_eq!(m.0.rsp, all.0.rsp);
    assert_eq!(m.1.cum_sess, all.1.cum_sess);
    assert_eq!(m.2.cum_lbconn, 10_000);
    // Rates read at the same instant add up.
    let now = 5_999;
    assert_eq!(m.0.req_per_sec.read(now), all.0.req_per_sec.read(now));
    // Time peaks are maxima, not sums; the last session is the latest.
    assert_eq!(m.1.times.rtime_max, all.1.times.rtime_max);
    assert_eq!(m.2.last_sess_ms, all.2.last_sess_ms);
    // Latency distributions merge exactly.
    assert_eq!(m.3.response.count(), all.3.response.count());
    assert_eq!(
        m.3.response.quantile_us(0.99),
        all.3.response.quantile_us(0.99)
    );
    // Averages: each shard saw a quarter of the same mix, the merge stays close to the whole.
    let (a, b) = (f64::from(m.1.times.d.avg()), f64::from(all.1.times.d.avg()));
    assert!((a - b).abs() <= b * 0.15 + 1.0, "merged {a} vs single {b}");
}

#[test]
fn histogram_memory_is_bounded() {
    // Four histograms per backend and per server on each shard: report what they cost.
    let l = LatencyHistograms::new();
    let one = std::mem::size_of_val(&l);
    assert!(one < 1024, "inline part {one}");
    let before = mine();
    let _x = LatencyHistograms::new();
    assert!(mine() - before <= 4);
    assert!(ALLOCS.load(Ordering::Relaxed) > 0);
}

#[test]
fn shard_counters_merge_into_the_snapshot() {
    // Two shards of a two-proxy setup: "web" (frontend) and "app" (backend, 2 servers).
    let shard = || ShardCounters {
        process: ProcessCounters::default(),
        proxies: vec![
            ProxyCounters::new(false, 1, 0),
            ProxyCounters::new(true, 0, 2),
        ],
    };
    let (mut a, mut b) = (shard(), shard());
    a.proxies[0].frontend.on_request(1_000);
    b.proxies[0].frontend.on_request(1_000);
    b.proxies[0].listeners[0].cum_sess = 3;
    a.proxies[1].servers[1].cum_lbconn = 5;
    b.proxies[1].servers[1].cum_lbconn = 7;
    let t = RequestTimes {
        response_us: Some(4_000),
        total_us: Some(5_000),
        ..Default::default()
    };
    b.proxies[1].server_latency[1].record(&t);
    b.proxies[1].backend_latency.as_mut().unwrap().record(&t);
    a.process.cum_req = 1;
    b.process.cum_req = 1;
    let mut merged = a.clone();
    merged.merge(&b);
    assert!(merged.proxies[0].backend_latency.is_none());

    let server = |name: &str, id| ServerStats {
        name: name.into(),
        id,
        weight: 1,
        uweight: 1,
        ..Default::default()
    };
    let mut snap = Snapshot {
        now_ms: 1_500,
        process: ProcessInfo::default(),
        proxies: vec![
            ProxyStats {
                name: "web".into(),
                id: 1,
                mode: ProxyMode::Http,
                desc: None,
                stopped: false,
                frontend: Some(FrontendStats::default()),
                backend: None,
                listeners: vec![ListenerStats {
                    name: "l1".into(),
                    id: 1,
                    addr: String::new(),
                    state: ListenState::Open,
                    maxconn: 0,
                    counters: ListenerCounters::default(),
                }],
                servers: vec![],
            },
            ProxyStats {
                name: "app".into(),
                id: 2,
                mode: ProxyMode::Http,
                desc: None,
                stopped: false,
                frontend: None,
                backend: Some(BackendStats::default()),
                listeners: vec![],
                servers: vec![server("s1", 1), server("s2", 2)],
            },
        ],
        tables: Vec::new(),
    };
    snap.set_counters(&merged);
    assert_eq!(
        snap.proxies[0].frontend.as_ref().unwrap().counters.cum_req,
        2
    );
    assert_eq!(snap.proxies[0].listeners[0].counters.cum_sess, 3);
    assert_eq!(snap.proxies[1].servers[1].counters.cum_lbconn, 12);
    assert_eq!(snap.process.counters.cum_req, 2);
    let csv = cli_show_stat(&snap, &["2", "4", "2"]);
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((row[1], row[30]), ("s2", "12")); // lbtot
    let p50: &str = row[row.len() - 1 - 8]; // rtime_p50_us, before the 4 rtime and 4 ttime tail columns
    assert!(p50.parse::<u64>().unwrap().abs_diff(4_000) <= 40, "{p50}");
    assert!(!csv.contains("FRONTEND"));
    let web = cli_show_stat(&snap, &["web", "-1", "-1"]);
    assert!(web.lines().nth(1).unwrap().starts_with("web,FRONTEND,"));
}
