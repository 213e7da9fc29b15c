#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `show stat` against haproxy 2.6's recordings of the same configuration.

mod common;
use common::*;
use ringlb_stats::show::{EXTRA_FIELDS, NALL};
use ringlb_stats::*;

const N_HAPROXY_COLUMNS: usize = 128; // 127 fields + the `-` column

fn ours(args: &[&str]) -> String {
    cli_show_stat(&recorded_snapshot(), args)
}

/// Cuts ringlb's extra columns off each CSV line.
fn haproxy_columns(cells: &[Vec<String>]) -> Vec<Vec<String>> {
    cells
        .iter()
        .map(|r| r[..N_HAPROXY_COLUMNS.min(r.len())].to_vec())
        .collect()
}

#[test]
fn header_is_haproxys_then_ringlbs_columns() {
    let theirs = fixture("show_stat.csv");
    let ours = ours(&[]);
    let their_header = theirs.lines().next().unwrap();
    let our_header = ours.lines().next().unwrap();
    assert!(
        our_header.starts_with(their_header),
        "{our_header}\n{their_header}"
    );
    let extra: Vec<&str> = our_header[their_header.len()..]
        .trim_end_matches(',')
        .split(',')
        .collect();
    assert_eq!(extra, EXTRA_FIELDS.iter().map(|f| f.0).collect::<Vec<_>>());
    assert_eq!(
        our_header.trim_end_matches(',').split(',').count(),
        NALL + 1
    );
}

#[test]
fn rows_fill_the_same_fields_as_haproxy() {
    let theirs = csv_cells(&fixture("show_stat.csv"));
    let ours = haproxy_columns(&csv_cells(&ours(&[])));
    assert_eq!(ours.len(), theirs.len(), "{ours:?}");
    let header = &theirs[0];
    for (o, t) in ours.iter().zip(&theirs).skip(1) {
        assert_eq!((&o[0], &o[1]), (&t[0], &t[1]), "row order");
        assert_eq!(o.len(), t.len(), "{}/{}", t[0], t[1]);
        for (i, (a, b)) in o.iter().zip(t).enumerate() {
            assert_eq!(
                a.is_empty(),
                b.is_empty(),
                "{}/{} field {} ({}): ours {a:?} haproxy {b:?}",
                t[0],
                t[1],
                i,
                header[i]
            );
        }
    }
}

/// Configuration and state columns carry the same values (counters and ages depend on the
/// traffic and the clock of the recording).
#[test]
fn config_and_state_columns_match() {
    let theirs = csv_cells(&mask_ports(&fixture("show_stat.csv")));
    let ours = haproxy_columns(&csv_cells(&mask_ports(&ours(&[]))));
    let header = &theirs[0];
    let same = [
        "# pxname",
        "svname",
        "slim",
        "status",
        "weight",
        "act",
        "bck",
        "chkfail",
        "chkdown",
        "qlimit",
        "pid",
        "iid",
        "sid",
        "tracked",
        "type",
        "rate_lim",
        "check_status",
        "check_code",
        "last_chk",
        "last_agt",
        "agent_status",
        "agent_code",
        "check_desc",
        "agent_desc",
        "check_rise",
        "check_fall",
        "check_health",
        "agent_rise",
        "agent_fall",
        "agent_health",
        "addr",
        "cookie",
        "mode",
        "algo",
        "src_ilim",
        "uweight",
        "agg_server_status",
        "agg_server_check_status",
        "agg_check_status",
        "-",
        "hanafail",
    ];
    for name in same {
        let i = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name}"));
        for (o, t) in ours.iter().zip(&theirs).skip(1) {
            assert_eq!(o[i], t[i], "{}/{} {name}", t[0], t[1]);
        }
    }
}

#[test]
fn filters_select_like_haproxy() {
    for (args, file) in [
        (&["4", "-1", "-1"][..], "show_stat_filter_iid.csv"),
        (&["4", "4", "-1"][..], "show_stat_filter_srv.csv"),
        (&["-1", "1", "-1"][..], "show_stat_filter_fe.csv"),
        (&["app", "2", "-1"][..], "show_stat_filter_name.csv"),
        (&["4", "4", "2"][..], "show_stat_filter_sid.csv"),
        (&["nosuch-but-ignored"][..], "show_stat_filter_two_args.csv"),
    ] {
        let names = |text: &str| -> Vec<(String, String)> {
            csv_cells(text)
                .into_iter()
                .skip(1)
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect()
        };
        assert_eq!(
            names(&ours(args)),
            names(&fixture(file)),
            "show stat {args:?}"
        );
    }
}

#[test]
fn typed_output_has_haproxys_lines() {
    // Same objects, same fields, same tags and types; values masked.
    let key = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut parts = l.splitn(4, ':');
                let (a, b, c) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                format!("{a}:{b}:{c}")
            })
            .collect()
    };
    let ours = ours(&["typed"]);
    let theirs = fixture("show_stat_typed.txt");
    let ours_k: Vec<String> = key(&ours)
        .into_iter()
        .filter(|l| {
            let pos: usize = l.split('.').nth(3).unwrap().parse().unwrap();
            pos < 127
        })
        .collect();
    let theirs_k = key(&theirs);
    for (a, b) in ours_k.iter().zip(&theirs_k) {
        assert_eq!(a, b);
    }
    assert_eq!(ours_k.len(), theirs_k.len());
    assert!(ours.ends_with("\n\n") && theirs.ends_with("\n\n"));
}

#[test]
fn typed_desc_lines_end_with_haproxys_descriptions() {
    let ours = ours(&["typed", "desc"]);
    let theirs = fixture("show_stat_typed_desc.txt");
    let desc = |l: &str| l.rsplit_once(":\"").map(|(_, d)| d.to_string()).unwrap();
    let line = |text: &str, prefix: &str| text.lines().find(|l| l.starts_with(prefix)).map(desc);
    for prefix in [
        "F.2.0.4.scur.1",
        "S.4.3.56.last_chk.1",
        "B.4.0.76.algo.1",
        "S.5.1.64.agent_duration.1",
    ] {
        assert_eq!(line(&ours, prefix), line(&theirs, prefix), "{prefix}");
        assert!(line(&ours, prefix).is_some());
    }
}

#[test]
fn json_output_has_haproxys_structure() {
    let ours: serde_json::Value = serde_json::from_str(&ours(&["json"])).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&fixture("show_stat.json")).unwrap();
    let (ours, theirs) = (ours.as_array().unwrap(), theirs.as_array().unwrap());
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        let o: Vec<_> = o
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["field"]["pos"].as_u64().unwrap() < 127)
            .collect();
        let t = t.as_array().unwrap();
        assert_eq!(o.len(), t.len(), "{}", t[0]);
        for (a, b) in o.iter().zip(t) {
            for k in ["objType", "proxyId", "id", "field", "processNum", "tags"] {
                assert_eq!(a[k], b[k], "{k} of {b}");
            }
            assert_eq!(a["value"]["type"], b["value"]["type"], "{b}");
            let keys =
                |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(b));
        }
    }
}

#[test]
fn odd_arguments_behave_like_haproxy() {
    // Unknown proxy name: haproxy's one-line error (with the CLI's blank line).
    assert_eq!(
        ours(&["nosuch", "1", "-1"]),
        fixture("show_stat_filter_unknown_name.csv")
    );
    // Unknown id: just the header.
    assert_eq!(
        ours(&["99", "-1", "-1"]).lines().count(),
        fixture("show_stat_filter_unknown_id.csv").lines().count()
    );
    // Two arguments: the selector is ignored, everything is dumped.
    let names = |t: &str| {
        csv_cells(t)
            .into_iter()
            .map(|r| r[1].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&ours(&["4", "2"])),
        names(&fixture("show_stat_filter_two_args.csv"))
    );
    // Three words make a selector even when the first looks like a modifier.
    assert_eq!(ours(&["typed-not", "x", "y"]), "No such proxy.\n\n");
    assert_eq!(ours(&["0", "-1", "-1"]), "No such proxy.\n\n");
    // A non-numeric type selects nothing (atoi), like haproxy.
    assert_eq!(names(&ours(&["4", "x", "-1"])).len(), 1);
}

#[test]
fn no_maint_and_up_hide_servers() {
    let names = |args: &[&str]| -> Vec<String> {
        csv_cells(&ours(args))
            .into_iter()
            .skip(1)
            .filter(|r| r[0] == "app")
            .map(|r| r[1].clone())
            .collect()
    };
    assert_eq!(names(&["no-maint"]), ["s1", "s2", "s3", "s4", "BACKEND"]);
    assert_eq!(names(&["up"]), ["s1", "s2", "s4", "BACKEND"]);
}

#[test]
fn drained_server_matches_haproxy_after_the_admin_form() {
    let mut snap = recorded_snapshot();
    let s2 = &mut snap.proxies[2].servers[1];
    assert_eq!(s2.name, "s2");
    s2.admin.drain = true;
    let theirs = csv_cells(&fixture("show_stat_after_drain.csv"));
    let ours = haproxy_columns(&csv_cells(&cli_show_stat(&snap, &[])));
    let header = &theirs[0];
    for name in ["status", "weight", "act", "bck", "uweight"] {
        let i = header.iter().position(|h| h == name).unwrap();
        for (o, t) in ours.iter().zip(&theirs).skip(1) {
            assert_eq!(o[i], t[i], "{}/{} {name}", t[0], t[1]);
        }
    }
}
