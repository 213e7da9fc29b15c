//! The engine commands' formats against haproxy 2.6's own answers, recorded by
//! `fixtures/record_engine.sh` (the live comparison is crates/ringlb/tests/runtime_engine.rs).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ringlb_runtime::engine::{
    sess_full, sess_line, show_activity, show_errors, show_pools, ErrorFilter, ErrorRow, PoolRow,
    SessRow, ShardActivity,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/engine/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `key=` names of a line, in order (values differ from run to run).
fn keys(line: &str) -> Vec<String> {
    line.split(' ')
        .filter_map(|w| w.split_once(['=', '[']).map(|(k, _)| k.to_string()))
        .collect()
}

fn row() -> SessRow {
    SessRow {
        id: 0x1000_0000_0000,
        uniq: 1,
        proto: "tcpv4",
        src: "127.0.0.1:35394".into(),
        accept_date: "[24/Nov/2026:14:14:33.123456]".into(),
        fe: "fe_main".into(),
        fe_id: 2,
        fe_mode: "http",
        listener_id: 1,
        fe_addr: "127.0.0.1:20002".into(),
        be: Some(("be_app".into(), 3, "http")),
        srv: Some(("s1".into(), 1, "127.0.0.1:20000".into())),
        age_s: 1,
        calls: 1,
        fd_front: 13,
        fd_back: 14,
        shard: 0,
    }
}

#[test]
fn sess_line_has_haproxys_fields_in_order() {
    let recorded = fixture("show_sess.txt");
    let hx = recorded
        .lines()
        .find(|l| l.contains(" fe=fe_main "))
        .unwrap();
    let mut ours = String::new();
    sess_line(&row(), &mut ours);
    assert_eq!(keys(ours.trim_end()), keys(hx));
    // Same text up to the first value haproxy computes from its internals, source masked.
    let cut = |l: &str| -> String {
        let body = l
            .split_once(": ")
            .unwrap()
            .1
            .split(" epoch=")
            .next()
            .unwrap();
        body.split(' ')
            .map(|w| if w.starts_with("src=") { "src=*" } else { w })
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(cut(&ours), cut(hx));
}

#[test]
fn sess_full_starts_like_haproxys_dump() {
    let recorded = fixture("show_sess_id.txt");
    let hx: Vec<&str> = recorded.lines().collect();
    let mut ours = String::new();
    sess_full(&row(), &mut ours);
    let ours: Vec<&str> = ours.lines().collect();
    assert_eq!(ours.len(), 6);
    // Stream and flags lines: same fields.
    for n in [0, 1] {
        assert_eq!(keys(ours[n]), keys(hx[n]), "line {n}");
    }
    // Frontend and server lines: same words but addresses and ids.
    let shape = |l: &str| -> Vec<String> {
        l.split(' ')
            .map(|w| match w.split_once('=') {
                Some((k, _)) => format!("{k}="),
                None => w.to_string(),
            })
            .collect()
    };
    assert_eq!(shape(ours[2]), shape(hx[2]));
    assert_eq!(shape(ours[4]), shape(hx[4]));
    // The backend line without the server connection's local address.
    assert_eq!(ours[3], hx[3].split(" addr=").next().unwrap());
    assert!(hx[5].starts_with("  task="), "{}", hx[5]);
    assert_eq!(keys(ours[5]), keys(hx[5]));
}

#[test]
fn activity_rows_are_haproxys() {
    let recorded = fixture("show_activity.txt");
    let a = ShardActivity {
        tasks: 3,
        loops: 2,
        ..ShardActivity::default()
    };
    let ours = show_activity(1_795_528_088_844_635, &[a, a]);
    let names = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect()
    };
    // The recording ends with the CLI's blank line, which the session writes.
    assert_eq!(names(&format!("{ours}\n")), names(&recorded));
    // Totals then one column per thread, as haproxy with nbthread 2.
    for (o, h) in ours.lines().zip(recorded.lines()).skip(2) {
        assert_eq!(o.matches(' ').count(), h.matches(' ').count(), "{o} / {h}");
        assert!(o.ends_with(" ]") && h.ends_with(" ]"));
    }
    assert!(
        recorded.ends_with("\n\n"),
        "the CLI's blank line is the session's"
    );
}

#[test]
fn pool_lines_have_haproxys_shape() {
    let recorded = fixture("show_pools.txt");
    let ours = show_pools(&[PoolRow {
        name: "uring_rxbuf",
        size: 16384,
        allocated: 4,
        used: 1,
        cached: 3,
        addr: 1,
    }]);
    let first = |t: &str| t.lines().next().unwrap().to_string();
    assert_eq!(first(&ours), first(&recorded));
    // Words of a pool line once numbers and names are replaced.
    let shape = |l: &str| -> String {
        l.split(' ')
            .enumerate()
            .map(|(i, w)| {
                if i == 4 || w.starts_with('@') || w.chars().any(|c| c.is_ascii_digit()) {
                    "N"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let hx_pool = recorded.lines().nth(1).unwrap();
    let hx_pool = hx_pool.trim_end_matches(" [SHARED]");
    assert_eq!(shape(ours.lines().nth(1).unwrap()), shape(hx_pool));
    let total = |t: &str| shape(t.lines().find(|l| l.starts_with("Total: ")).unwrap());
    assert_eq!(total(&ours), total(&recorded));
}

#[test]
fn errors_dump_is_haproxys_but_for_dates_and_ports() {
    let recorded = fixture("show_errors.txt");
    let dates: Vec<&str> = recorded
        .split('[')
        .skip(1)
        .map(|s| s.split(']').next().unwrap())
        .filter(|s| s.contains('/'))
        .collect();
    let src = |n: usize| -> String {
        recorded
            .lines()
            .filter_map(|l| l.split(", src ").nth(1))
            .nth(n)
            .unwrap()
            .to_string()
    };
    let rows = [
        ErrorRow {
            date: format!("[{}]", dates[1]),
            response: false,
            proxy: ("fe_main".into(), 2),
            other: None,
            server: None,
            event: 1,
            src: src(0),
            bufsize: 16384,
            error_pos: 28,
            msg_state: ("MSG_HDR_NAME", 17),
            bytes: b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_vec(),
        },
        ErrorRow {
            date: format!("[{}]", dates[2]),
            response: true,
            proxy: ("be_bad".into(), 5),
            other: Some(("fe_bad".into(), 4)),
            server: Some(("b1".into(), 1)),
            event: 0,
            src: src(1),
            bufsize: 16384,
            error_pos: 20,
            msg_state: ("MSG_HDR_NAME", 17),
            bytes: b"HTTP/1.1 200 OK\r\nBad Header: y\r\nContent-Length: 0\r\n\r\n".to_vec(),
        },
    ];
    let ours = show_errors(&format!("[{}]", dates[0]), 2, &rows, ErrorFilter::Both);
    // The session writes the final blank line.
    assert_eq!(format!("{ours}\n"), recorded);
}
