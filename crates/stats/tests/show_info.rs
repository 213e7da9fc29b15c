#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `show info` against haproxy 2.6's recordings.

mod common;
use common::*;
use ringlb_stats::*;

fn names(text: &str, sep: char) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(sep).next().unwrap().to_string())
        .collect()
}

#[test]
fn text_fields_and_order_match() {
    let ours = cli_show_info(&recorded_snapshot(), &[]);
    let theirs = fixture("show_info.txt");
    assert_eq!(names(&ours, ':'), names(&theirs, ':'));
    assert!(ours.ends_with("\n\n"));
    for line in [
        "Name: HAProxy",
        "Nbthread: 2",
        "Uptime: 0d 0h00m03s",
        "Uptime_sec: 3",
        "Maxconn: 1000",
        "node: vm",
        "Tainted: 0",
    ] {
        assert!(ours.lines().any(|l| l == line), "{line}");
        assert!(
            theirs.lines().any(|l| l == line) || line.starts_with("Uptime"),
            "{line}"
        );
    }
}

#[test]
fn typed_fields_tags_and_types_match() {
    let key = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.splitn(4, ':').take(3).collect::<Vec<_>>().join(":"))
            .collect()
    };
    let ours = cli_show_info(&recorded_snapshot(), &["typed"]);
    assert_eq!(key(&ours), key(&fixture("show_info_typed.txt")));
    let ours = cli_show_info(&recorded_snapshot(), &["typed", "desc"]);
    let theirs = fixture("show_info_typed_desc.txt");
    let descs = |t: &str| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.rsplit_once(":\"").map(|x| x.1.to_string()))
            .collect()
    };
    assert_eq!(descs(&ours), descs(&theirs));
}

#[test]
fn json_matches_structure() {
    let ours: serde_json::Value =
        serde_json::from_str(&cli_show_info(&recorded_snapshot(), &["json"])).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&fixture("show_info.json")).unwrap();
    let (o, t) = (ours.as_array().unwrap(), theirs.as_array().unwrap());
    assert_eq!(o.len(), t.len());
    for (a, b) in o.iter().zip(t) {
        assert_eq!(a["field"], b["field"]);
        assert_eq!(a["tags"], b["tags"]);
        assert_eq!(a["value"]["type"], b["value"]["type"], "{b}");
    }
}

#[test]
fn uptime_counts_days() {
    let mut s = recorded_snapshot();
    s.now_ms = (2 * 86_400 + 3 * 3600 + 4 * 60 + 5) * 1000;
    let out = cli_show_info(&s, &[]);
    assert!(out.contains("\nUptime: 2d 3h04m05s\n"), "{out}");
}
