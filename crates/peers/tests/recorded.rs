//! The protocol against bytes recorded from haproxy 2.6 (`fixtures/record.py`): haproxy's
//! peer `hapx` talking to a peer `rec`, with the tables below, after these runtime commands:
//! `set table t_ip key 10.0.0.1 data.gpc0 7 data.conn_cnt 3 data.http_req_cnt 5
//! data.bytes_out_cnt 300000 data.server_id 2 data.gpt0 9`, `set table t_str key hello
//! data.gpc0 1`, `set table t_int key 42 data.gpc0 2`, `set table t_v6 key ::1
//! data.http_req_cnt 11`, `set table t_ip key 10.0.0.2 data.gpc0 1`, `set table t_fail key
//! 10.0.0.3 data.gpc1 4 data.http_fail_cnt 6`, `set table t_stick key 10.0.0.4 data.server_id 7`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ringlb_peers::handshake::{read_hello, Status};
use ringlb_peers::session::{Event, Local, Session};
use ringlb_peers::wire::{read_frame, Frame, TableDef, Update, WireValue};
use ringlb_peers::{bridge, Phase};
use ringlb_stick::{DataType, PeerValue, TableConfig};

const SESSION: &str = include_str!("fixtures/haproxy26-session.txt");
const STATUS: &str = include_str!("fixtures/haproxy26-status.txt");

/// The same tables as ringlb declares them (the array table t_arr and the `stick on` table
/// are haproxy-only here).
const CFG: &str = "peers mypeers\n peer hapx 127.0.0.1:1\n peer rec 127.0.0.1:2\n\
backend t_ip\n stick-table type ip size 1k expire 60s peers mypeers store server_id,gpc0,conn_cnt,conn_cur,http_req_cnt,http_req_rate(10s),bytes_out_cnt,gpt0\n\
backend t_str\n stick-table type string len 32 size 1k peers mypeers store gpc0\n\
backend t_int\n stick-table type integer size 1k expire 5s peers mypeers store gpc0,gpc0_rate(1s)\n\
backend t_v6\n stick-table type ipv6 size 1k peers mypeers store http_req_cnt\n\
backend t_fail\n stick-table type ip size 1k peers mypeers store gpc1,gpc1_rate(2s),http_fail_cnt,http_fail_rate(3s)\n";

fn tables() -> Vec<TableConfig> {
    let loaded = ringlb_config::parse_str("t.cfg", CFG).unwrap();
    loaded
        .config
        .backends
        .iter()
        .map(|b| TableConfig::from_model(&b.name, b.stick_table.as_ref().unwrap()).unwrap())
        .collect()
}

fn phase(name: &str) -> Vec<u8> {
    let line = SESSION
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap();
    let hex = line.split(' ').nth(1).unwrap_or("");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Every frame of a phase with its raw bytes.
fn frames(bytes: &[u8]) -> Vec<(Frame<'_>, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (f, n) = read_frame(&bytes[at..]).unwrap().expect("complete frame");
        out.push((f, &bytes[at..at + n]));
        at += n;
    }
    out
}

/// Decodes a phase: (table name, update) pairs, checking that each message re-encodes to
/// the very bytes haproxy sent.
fn updates(bytes: &[u8]) -> Vec<(String, Update)> {
    let mut def: Option<TableDef> = None;
    let mut out = Vec::new();
    for (f, raw) in frames(bytes) {
        match f {
            Frame::Define(body) => {
                let d = TableDef::decode(body).unwrap();
                let mut again = Vec::new();
                d.encode(&mut again);
                assert_eq!(again, raw, "{d:?}");
                def = Some(d);
            }
            Frame::Update {
                timed,
                incremental,
                body,
            } => {
                let d = def.as_ref().unwrap();
                let u = Update::decode(d, body, timed, incremental).unwrap();
                assert_eq!(u.id.is_none(), incremental);
                assert_eq!(u.expire_ms.is_some(), timed);
                let arrays = u.values.iter().any(|(_, v)| *v == WireValue::Other);
                if !arrays {
                    let mut again = Vec::new();
                    u.encode(d, &mut again);
                    assert_eq!(again, raw, "{u:?}");
                }
                out.push((d.name.clone(), u));
            }
            _ => {}
        }
    }
    out
}

fn int(u: &Update, t: u8) -> u64 {
    match u.values.iter().find(|(x, _)| *x == t).unwrap().1 {
        WireValue::Int(i) => i,
        ref v => panic!("{v:?}"),
    }
}

#[test]
fn status_codes_match_haproxy() {
    let mut n = 0;
    for line in STATUS.lines().filter(|l| !l.starts_with('#')) {
        let (hex, code) = line.split_once(' ').unwrap();
        let hello: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let got = match read_hello(&hello, "hapx", &|p| p == "rec") {
            Ok(Some(_)) => Status::Ok.code(),
            Ok(None) => panic!("incomplete"),
            Err(s) => s.code(),
        };
        assert_eq!(
            got.to_string(),
            code,
            "{:?}",
            String::from_utf8_lossy(&hello)
        );
        n += 1;
    }
    assert_eq!(n, 5);
}

#[test]
fn haproxys_hello_names_both_peers() {
    let hello = phase("hello");
    let (h, used) = read_hello(&hello, "rec", &|p| p == "hapx")
        .unwrap()
        .unwrap();
    assert_eq!(used, hello.len());
    assert_eq!((h.to.as_str(), h.from.as_str()), ("rec", "hapx"));
    assert_eq!(h.relative_pid, 1);
    // Its first message asks us for a resync; it confirms our "finished".
    assert_eq!(frames(&phase("first"))[0].0, Frame::ResyncRequest);
    assert_eq!(frames(&phase("confirm"))[0].0, Frame::ResyncConfirm);
}

#[test]
fn live_updates_decode_and_reencode_byte_for_byte() {
    let ups = updates(&phase("updates"));
    let ip1 = &ups
        .iter()
        .find(|(t, u)| t == "t_ip" && u.key == [10, 0, 0, 1])
        .unwrap()
        .1;
    assert_eq!(ip1.id, Some(1));
    // server_id 0, gpt0 1, gpc0 2, conn_cnt 4, http_req_cnt 9, bytes_out_cnt 15.
    assert_eq!(
        [0, 1, 2, 4, 9, 15].map(|t| int(ip1, t)),
        [2, 9, 7, 3, 5, 300_000]
    );
    let ip2 = &ups
        .iter()
        .find(|(t, u)| t == "t_ip" && u.key == [10, 0, 0, 2])
        .unwrap()
        .1;
    assert_eq!((ip2.id, int(ip2, 2)), (Some(2), 1));
    let s = &ups.iter().find(|(t, _)| t == "t_str").unwrap().1;
    assert_eq!((s.key.as_slice(), int(s, 2)), (&b"hello"[..], 1));
    let i = &ups.iter().find(|(t, _)| t == "t_int").unwrap().1;
    assert_eq!((i.key.as_slice(), int(i, 2)), (&[0, 0, 0, 42][..], 2));
    let v6 = &ups.iter().find(|(t, _)| t == "t_v6").unwrap().1;
    assert_eq!(v6.key.len(), 16);
    assert_eq!(int(v6, 9), 11);
    // haproxy's numbers: gpc1 17, http_fail_cnt 20 (19 is server_key).
    let f = &ups.iter().find(|(t, _)| t == "t_fail").unwrap().1;
    assert_eq!((int(f, 17), int(f, 20)), (4, 6));
    let st = &ups.iter().find(|(t, _)| t == "t_stick").unwrap().1;
    assert_eq!(int(st, 0), 7);
    assert!(ups.iter().any(|(t, _)| t == "t_arr"));
}

#[test]
fn teach_is_timed_and_ends_with_finished() {
    let bytes = phase("teach");
    let ups = updates(&bytes);
    assert!(ups.iter().all(|(_, u)| u.expire_ms.is_some()));
    let ip = &ups.iter().find(|(t, _)| t == "t_ip").unwrap().1;
    let left = ip.expire_ms.unwrap();
    assert!(left > 50_000 && left <= 60_000, "{left}");
    assert_eq!(frames(&bytes).last().unwrap().0, Frame::ResyncFinished);
    // Silent, haproxy sends its updates again (never acked) and a heartbeat.
    let idle = phase("idle");
    assert_eq!(frames(&idle).last().unwrap().0, Frame::Heartbeat);
    assert!(updates(&idle).iter().any(|(_, u)| u.id.is_none()));
}

#[test]
fn ringlb_defines_its_tables_as_haproxy_does() {
    // haproxy's ids: t_ip 1, t_str 2, t_int 3, t_v6 4, t_fail 5 (declaration order).
    let recorded: Vec<Vec<u8>> = frames(&phase("updates"))
        .into_iter()
        .filter(|(f, _)| matches!(f, Frame::Define(_)))
        .map(|(_, raw)| raw.to_vec())
        .collect();
    for (i, cfg) in tables().iter().enumerate() {
        let mut ours = Vec::new();
        bridge::definition(i as u64 + 1, cfg).encode(&mut ours);
        assert!(recorded.contains(&ours), "{}: {ours:02x?}", cfg.name);
    }
}

#[test]
fn a_session_learns_what_haproxy_sends() {
    let local = Local {
        name: "rec".into(),
        pid: 1,
        peers: vec!["hapx".into()],
        tables: tables(),
    };
    let mut s = Session::accept(local, 0);
    let mut input = phase("hello");
    input.extend(phase("first"));
    input.extend(phase("updates"));
    // Fed one byte at a time: framing must survive any split.
    let mut events = Vec::new();
    for b in &input {
        events.extend(s.receive(std::slice::from_ref(b), 10));
    }
    assert_eq!(s.phase(), Phase::Established);
    assert_eq!(
        events[0],
        Event::Established {
            remote: "hapx".into()
        }
    );
    assert!(events.contains(&Event::TeachRequested));
    let learned: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Learned { table, entries } => Some((*table, entries.clone())),
            _ => None,
        })
        .flat_map(|(t, es)| es.into_iter().map(move |e| (t, e)))
        .collect();
    let ip1 = &learned
        .iter()
        .find(|(t, e)| *t == 0 && *e.key == [10, 0, 0, 1])
        .unwrap()
        .1;
    for (dt, v) in [
        (DataType::ServerId, 2),
        (DataType::Gpt0, 9),
        (DataType::Gpc0, 7),
        (DataType::ConnCnt, 3),
        (DataType::HttpReqCnt, 5),
        (DataType::BytesOutCnt, 300_000),
    ] {
        assert!(ip1.values.contains(&(dt, PeerValue::Int(v))), "{dt:?}");
    }
    let fail = &learned.iter().find(|(t, _)| *t == 4).unwrap().1;
    assert!(fail
        .values
        .contains(&(DataType::HttpFailCnt, PeerValue::Int(6))));
    // t_str's key arrives without haproxy's padding; t_stick and t_arr are not ours.
    assert!(learned.iter().any(|(t, e)| *t == 1 && *e.key == *b"hello"));
    assert_eq!(learned.len(), 6);
    // We answered 200 and acked the last update of each table haproxy defined.
    let out = s.take_output();
    assert!(out.starts_with(b"200\n"));
    let mut acked = std::collections::BTreeMap::new();
    for (f, _) in frames(&out[4..]) {
        if let Frame::Ack(body) = f {
            let (table, id) = ringlb_peers::wire::read_ack(body).unwrap();
            acked.insert(table, id);
        }
    }
    // haproxy's ids: t_ip 1 (two updates), t_str 2, t_int 3, t_v6 4, t_fail 5, t_arr 6,
    // t_stick 7.
    let want: std::collections::BTreeMap<u64, u32> =
        [(1, 2), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1)].into();
    assert_eq!(acked, want);
}

#[test]
fn two_sessions_replicate_and_resync() {
    let local = |name: &str, other: &str| Local {
        name: name.into(),
        pid: 1,
        peers: vec![other.into()],
        tables: tables(),
    };
    let mut a = Session::connect(local("a", "b"), "b", 0);
    let mut b = Session::accept(local("b", "a"), 0);
    let ev = b.receive(&a.take_output(), 1);
    assert_eq!(ev, vec![Event::Established { remote: "a".into() }]);
    let ev = a.receive(&b.take_output(), 1);
    assert_eq!(ev, vec![Event::Established { remote: "b".into() }]);
    let entry = ringlb_stick::PeerEntry {
        key: vec![0, 0, 0, 9].into(),
        expire_in_ms: Some(3_000),
        values: vec![
            (DataType::Gpc0, PeerValue::Int(4)),
            (
                DataType::Gpc0Rate,
                PeerValue::Freq {
                    age_ms: 1200,
                    curr: 3,
                    prev: 8,
                },
            ),
        ],
    };
    a.push(2, &[entry.clone(), entry.clone()], false);
    let ev = b.receive(&a.take_output(), 2);
    let mut expect = entry.clone();
    expect.expire_in_ms = None; // untimed: the receiver's own expire applies
    assert_eq!(
        ev,
        vec![Event::Learned {
            table: 2,
            entries: vec![expect.clone(), expect]
        }]
    );
    // b acked the second update.
    let ack = b.take_output();
    assert_eq!(ack, [10, 132, 5, 3, 0, 0, 0, 2]);
    // Resync: a asks, b teaches (timed) and finishes, a confirms.
    a.request_resync();
    assert_eq!(b.receive(&a.take_output(), 3), vec![Event::TeachRequested]);
    b.push(2, std::slice::from_ref(&entry), true);
    b.finish_teach(false);
    let ev = a.receive(&b.take_output(), 4);
    assert_eq!(
        ev,
        vec![
            Event::Learned {
                table: 2,
                entries: vec![entry]
            },
            Event::Resynced { partial: false }
        ]
    );
    assert!(a.take_output().starts_with(&[0, 3]));
    // Heartbeat after 3 s of silence, close after 5 s without input.
    assert_eq!(a.tick(3004), None);
    assert_eq!(a.take_output(), [0, 4]);
    assert_eq!(
        a.tick(5004),
        Some(Event::Closed(ringlb_peers::Close::Timeout))
    );
    // The other side closing is no protocol error.
    assert_eq!(
        b.receive(&[], 5005),
        vec![Event::Closed(ringlb_peers::Close::Eof)]
    );
}

#[test]
fn garbage_after_the_handshake_is_a_protocol_error() {
    let local = Local {
        name: "rec".into(),
        pid: 1,
        peers: vec!["hapx".into()],
        tables: tables(),
    };
    let mut s = Session::accept(local, 0);
    s.receive(&phase("hello"), 1);
    s.take_output();
    // An update before any table definition.
    let ev = s.receive(&[10, 128, 1, 0], 2);
    assert_eq!(ev, vec![Event::Closed(ringlb_peers::Close::Protocol)]);
    assert_eq!(s.take_output(), [1, 0]);
}

/// Hostile input never panics: random bytes, and the recorded stream with bytes flipped or
/// cut, fed after a valid hello in random pieces (seeded, bounded).
#[test]
fn random_and_corrupted_input_never_panics() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let good = phase("updates");
    for round in 0..2000 {
        let local = Local {
            name: "rec".into(),
            pid: 1,
            peers: vec!["hapx".into()],
            tables: tables(),
        };
        let mut s = Session::accept(local, 0);
        s.receive(&phase("hello"), 1);
        let mut input: Vec<u8> = if round % 2 == 0 {
            (0..(next() % 300)).map(|_| next() as u8).collect()
        } else {
            let mut g = good.clone();
            for _ in 0..(1 + next() % 4) {
                let i = (next() as usize) % g.len();
                g[i] = next() as u8;
            }
            g.truncate((next() as usize) % (g.len() + 1));
            g
        };
        while !input.is_empty() {
            let n = 1 + (next() as usize) % input.len();
            let rest = input.split_off(n);
            s.receive(&input, 2);
            input = rest;
        }
        s.tick(10_000);
        let _ = s.take_output();
    }
}

/// The process being replaced connects under our own name and teaches unasked: accepted,
/// and its "finished" ends our resync.
#[test]
fn the_old_process_teaches_the_new_one_under_the_same_name() {
    let local = || Local {
        name: "edge".into(),
        pid: 1,
        peers: vec!["other".into()],
        tables: tables(),
    };
    let mut old = Session::connect(local(), "edge", 0);
    let mut new = Session::accept(local(), 0);
    assert_eq!(
        new.receive(&old.take_output(), 1),
        vec![Event::Established {
            remote: "edge".into()
        }]
    );
    old.receive(&new.take_output(), 1);
    let e = ringlb_stick::PeerEntry {
        key: vec![10, 0, 0, 1].into(),
        expire_in_ms: Some(42_000),
        values: vec![(DataType::HttpReqCnt, PeerValue::Int(3))],
    };
    // Table 3 is t_v6: an ipv4 key does not fit and is not sent (it would shift the stream).
    old.push(3, std::slice::from_ref(&e), true);
    old.push(0, std::slice::from_ref(&e), true);
    old.finish_teach(false);
    let ev = new.receive(&old.take_output(), 2);
    let learned: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Learned { table, entries } => Some((*table, entries.len())),
            _ => None,
        })
        .collect();
    assert_eq!(learned, vec![(0, 1)]);
    assert!(ev.iter().any(|x| matches!(x, Event::Learned { entries, .. }
        if entries[0].expire_in_ms == Some(42_000))));
    assert_eq!(ev.last(), Some(&Event::Resynced { partial: false }));
}
