//! The snapshot of `fixtures/record.cfg` in the state haproxy was recorded in, and helpers
//! to compare ringlb's outputs with haproxy's.
#![allow(dead_code)]

use ringlb_stats::*;

pub fn fixture(name: &str) -> String {
    let p = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Replaces loopback ports (random per recording) with `PORT`.
pub fn mask_ports(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(if digits > 0 { "PORT" } else { "" });
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

pub fn check(status: &str, desc: &str, code: Option<u32>, health: u32, info: &str) -> CheckStats {
    CheckStats {
        status: status.into(),
        desc: desc.into(),
        code,
        duration_ms: Some(0),
        info: info.into(),
        rise: 2,
        fall: 3,
        health,
        in_progress: false,
    }
}

fn server(name: &str, id: u32, weight: u32) -> ServerStats {
    ServerStats {
        name: name.into(),
        id,
        addr: "127.0.0.1:1".into(),
        weight,
        uweight: weight,
        last_change_ms: 0,
        ..Default::default()
    }
}

fn proxy(name: &str, id: u32, mode: ProxyMode) -> ProxyStats {
    ProxyStats {
        name: name.into(),
        id,
        mode,
        desc: None,
        stopped: false,
        frontend: None,
        backend: None,
        listeners: vec![],
        servers: vec![],
    }
}

fn frontend() -> Option<FrontendStats> {
    Some(FrontendStats {
        maxconn: 1000,
        ..Default::default()
    })
}

fn backend(algo: &str, fullconn: u32) -> Option<BackendStats> {
    Some(BackendStats {
        algo: algo.into(),
        fullconn,
        ..Default::default()
    })
}

/// `record.cfg` as haproxy showed it: s3 DOWN (connection refused), s4 backup without
/// check, s5 disabled, a1 with an agent that cannot connect, a2 tracking app/s1.
pub fn recorded_snapshot() -> Snapshot {
    let l7ok = || check("L7OK", "Layer7 check passed", Some(200), 4, "");
    let mut origin = proxy("origin", 2, ProxyMode::Http);
    origin.frontend = frontend();

    let mut web = proxy("web", 3, ProxyMode::Http);
    web.frontend = frontend();
    web.listeners.push(ListenerStats {
        name: "web1".into(),
        id: 1,
        addr: "127.0.0.1:2".into(),
        state: ListenState::Open,
        maxconn: 0,
        counters: ListenerCounters::default(),
    });

    let mut app = proxy("app", 4, ProxyMode::Http);
    app.backend = backend("roundrobin", 100);
    let mut s1 = server("s1", 1, 100);
    s1.check = Some(l7ok());
    let mut s2 = server("s2", 2, 50);
    s2.check = Some(l7ok());
    let mut s3 = server("s3", 3, 1);
    s3.check = Some(CheckStats {
        code: None,
        ..check(
            "L4CON",
            "Layer4 connection problem",
            None,
            0,
            "Connection refused",
        )
    });
    s3.oper = OperState::Stopped;
    s3.failed_checks = 1;
    s3.down_trans = 1;
    let mut s4 = server("s4", 4, 1);
    s4.backup = true;
    let mut s5 = server("s5", 5, 1);
    s5.admin.maint = true;
    app.servers = vec![s1, s2, s3, s4, s5];

    let mut app2 = proxy("app2", 5, ProxyMode::Http);
    app2.backend = backend("leastconn", 1);
    if let Some(be) = &mut app2.backend {
        be.cookie = Some("SRVID".into());
    }
    let mut a1 = server("a1", 1, 1);
    a1.check = Some(l7ok());
    a1.agent = Some(CheckStats {
        rise: 1,
        fall: 1,
        health: 1,
        ..check(
            "L4CON",
            "Layer4 connection problem",
            None,
            1,
            "Connection refused",
        )
    });
    a1.maxconn = 10;
    a1.maxqueue = 5;
    a1.cookie = Some("a1".into());
    a1.observe = true;
    a1.max_idle_conns = Some(10);
    let mut a2 = server("a2", 2, 1);
    a2.tracked = Some("app/s1".into());
    a2.tracked_check = Some(l7ok());
    app2.servers = vec![a1, a2];

    let mut admin = proxy("adminstats", 6, ProxyMode::Http);
    admin.frontend = frontend();
    admin.backend = backend("roundrobin", 100);

    let mut tcp = proxy("tcpapp", 7, ProxyMode::Tcp);
    tcp.frontend = frontend();
    tcp.backend = backend("roundrobin", 100);
    tcp.servers = vec![server("t1", 1, 1)];

    Snapshot {
        now_ms: 3_000,
        process: ProcessInfo {
            name: "HAProxy".into(),
            version: "2.6.12-1+deb12u4".into(),
            release_date: "2026/10/17".into(),
            nbthread: 2,
            pid: 4242,
            start_ms: 0,
            start_time_unix_s: 1_795_478_049,
            ulimit_n: 2033,
            maxsock: 2033,
            maxconn: 1000,
            hard_maxconn: 1000,
            node: "vm".into(),
            jobs: 9,
            listeners: 5,
            idle_pct: 100,
            ..Default::default()
        },
        proxies: vec![origin, web, app, app2, admin, tcp],
        tables: Vec::new(),
    }
}

/// CSV lines split in cells (no quoted commas in these recordings).
pub fn csv_cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim_end_matches(',')
                .split(',')
                .map(str::to_string)
                .collect()
        })
        .collect()
}
