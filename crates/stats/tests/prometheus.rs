#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Prometheus exporter against haproxy 2.6's recorded exposition of the same config.

mod common;
use common::*;
use ringlb_stats::prometheus::{self, parse_query, scope, PromRequest};
use ringlb_stats::promtext as prom;
use ringlb_stats::*;
use std::collections::{BTreeMap, BTreeSet};

fn ours(query: &str) -> String {
    prometheus::render(&recorded_snapshot(), &parse_query(query).unwrap())
}

/// Every family with its sorted label sets (values of `proxy`/`server`/`state`/`code`... kept,
/// sample values dropped).
fn series(e: &prom::Exposition) -> BTreeMap<String, BTreeSet<String>> {
    e.families
        .iter()
        .map(|(n, f)| {
            (
                n.clone(),
                f.samples
                    .iter()
                    .map(|s| format!("{}{:?}", s.name, s.labels))
                    .collect(),
            )
        })
        .collect()
}

fn haproxy_only(e: &prom::Exposition) -> BTreeSet<String> {
    e.order
        .iter()
        .filter(|n| {
            !n.starts_with("ringlb_")
                && *n != "haproxy_backend_up"
                && *n != "haproxy_backend_queue_current"
        })
        .cloned()
        .collect()
}

#[test]
fn output_parses_strictly() {
    for q in [
        "",
        "scope=backend&scope=server",
        "scope=frontend",
        "scope=server&no-maint",
        "scope=",
        "scope=*",
    ] {
        prom::parse(&ours(q)).unwrap_or_else(|e| panic!("?{q}: {e}"));
    }
    prom::parse(&fixture("metrics.txt")).unwrap();
}

#[test]
fn metric_names_match_haproxys() {
    let theirs = prom::parse(&fixture("metrics.txt")).unwrap();
    let ours = prom::parse(&ours("")).unwrap();
    let recorded: BTreeSet<String> = fixture("metric_names.txt")
        .lines()
        .map(str::to_string)
        .collect();
    let their_names: BTreeSet<String> = theirs.order.iter().cloned().collect();
    assert_eq!(their_names, recorded);
    assert_eq!(haproxy_only(&ours), recorded);
    // Same order of families as haproxy, ringlb's after.
    let ours_order: Vec<&String> = ours
        .order
        .iter()
        .filter(|n| recorded.contains(*n))
        .collect();
    assert_eq!(ours_order, theirs.order.iter().collect::<Vec<_>>());
}

#[test]
fn help_and_type_lines_match_haproxys() {
    let theirs = fixture("metrics_help_type.txt");
    let ours: Vec<String> = ours("")
        .lines()
        .filter(|l| l.starts_with("# "))
        .map(str::to_string)
        .collect();
    for line in theirs.lines() {
        assert!(ours.iter().any(|l| l == line), "missing: {line}");
    }
}

#[test]
fn same_series_and_labels_as_haproxy() {
    let theirs = series(&prom::parse(&fixture("metrics.txt")).unwrap());
    let ours = series(&prom::parse(&ours("")).unwrap());
    for (name, set) in &theirs {
        assert_eq!(ours.get(name), Some(set), "{name}");
    }
}

/// State-derived values (status per state label, check status, limits, NaN where unset).
#[test]
fn state_values_match_haproxy() {
    let theirs = prom::parse(&fixture("metrics.txt")).unwrap();
    let ours = prom::parse(&ours("")).unwrap();
    for name in [
        "haproxy_server_status",
        "haproxy_server_check_status",
        "haproxy_server_check_code",
        "haproxy_server_limit_sessions",
        "haproxy_server_queue_limit",
        "haproxy_server_current_throttle",
        "haproxy_server_idle_connections_limit",
        "haproxy_server_weight",
        "haproxy_server_uweight",
        "haproxy_backend_status",
        "haproxy_backend_active_servers",
        "haproxy_backend_backup_servers",
        "haproxy_backend_weight",
        "haproxy_backend_agg_server_status",
        "haproxy_backend_agg_check_status",
        "haproxy_backend_agg_server_check_status",
        "haproxy_frontend_status",
        "haproxy_listener_status",
        "haproxy_frontend_limit_sessions",
        "haproxy_backend_limit_sessions",
        "haproxy_server_check_failures_total",
        "haproxy_process_nbthread",
        "haproxy_process_max_connections",
        "haproxy_process_build_info",
        "haproxy_backend_downtime_seconds_total",
    ] {
        let get = |e: &prom::Exposition| -> Vec<(String, String)> {
            e.families[name]
                .samples
                .iter()
                .map(|s| (format!("{:?}", s.labels), format!("{}", s.value)))
                .collect()
        };
        assert_eq!(get(&ours), get(&theirs), "{name}");
    }
}

#[test]
fn scopes_select_like_haproxy() {
    for (q, file) in [
        (
            "scope=backend&scope=server",
            "metrics_scope_backend_server.txt",
        ),
        ("scope=frontend", "metrics_scope_frontend.txt"),
        ("scope=server&no-maint", "metrics_scope_server_nomaint.txt"),
        ("scope=", "metrics_scope_empty.txt"),
    ] {
        let theirs = prom::parse(&fixture(file)).unwrap();
        let ours = prom::parse(&ours(q)).unwrap();
        assert_eq!(
            haproxy_only(&ours),
            theirs.order.iter().cloned().collect(),
            "?{q}"
        );
        let ts = series(&theirs);
        let os = series(&ours);
        for (n, s) in &ts {
            assert_eq!(os.get(n), Some(s), "?{q} {n}");
        }
    }
}

#[test]
fn query_errors() {
    assert!(parse_query("scope=bogus").is_err());
    assert!(parse_query("scope").is_err());
    assert!(parse_query("scope=a=b").is_err());
    assert_eq!(parse_query("").unwrap(), PromRequest::default());
    assert_eq!(parse_query("scope=%2A").unwrap().scopes, scope::ALL);
    assert_eq!(
        parse_query("foo=bar&scope=global").unwrap().scopes,
        scope::GLOBAL
    );
}

#[test]
fn guide_metrics_are_present() {
    let e = prom::parse(&ours("")).unwrap();
    let has = |n: &str, l: &[(&str, &str)]| {
        e.families.get(n).is_some_and(|f| {
            f.samples.iter().any(|s| {
                l.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
        })
    };
    assert!(has(
        "haproxy_backend_up",
        &[("proxy", "app"), ("backend", "app")]
    ));
    assert!(has(
        "haproxy_server_status",
        &[("proxy", "app"), ("server", "s1"), ("state", "UP")]
    ));
    assert!(has(
        "haproxy_backend_http_responses_total",
        &[("proxy", "app"), ("code", "5xx")]
    ));
    assert!(has("haproxy_backend_queue_current", &[("proxy", "app")]));
    assert!(has("haproxy_backend_current_queue", &[("proxy", "app")]));
    assert!(has(
        "haproxy_frontend_current_sessions",
        &[("proxy", "web")]
    ));
    assert!(has(
        "haproxy_backend_response_time_average_seconds",
        &[("proxy", "app")]
    ));
    let up = |p: &str| {
        e.families["haproxy_backend_up"]
            .samples
            .iter()
            .find(|s| s.labels["proxy"] == p)
            .unwrap()
            .value
    };
    assert_eq!(up("app"), 1.0);
}

#[test]
fn backend_up_is_zero_when_every_server_is_down() {
    let mut snap = recorded_snapshot();
    let app = snap.proxies.iter_mut().find(|p| p.name == "app").unwrap();
    for sv in &mut app.servers {
        sv.oper = OperState::Stopped;
    }
    let e = prom::parse(&prometheus::render(&snap, &PromRequest::default())).unwrap();
    let fam = &e.families["haproxy_backend_up"];
    let v = fam
        .samples
        .iter()
        .find(|s| s.labels["proxy"] == "app")
        .unwrap()
        .value;
    assert_eq!(v, 0.0);
    let st = &e.families["haproxy_backend_status"];
    let down = st
        .samples
        .iter()
        .find(|s| s.labels["proxy"] == "app" && s.labels["state"] == "DOWN")
        .unwrap();
    assert_eq!(down.value, 1.0);
}

#[test]
fn latency_histograms_are_exported() {
    let mut snap = recorded_snapshot();
    let app = snap.proxies.iter_mut().find(|p| p.name == "app").unwrap();
    let be = app.backend.as_mut().unwrap();
    for ms in [1u64, 2, 3, 40, 900] {
        let t = RequestTimes {
            queue_us: Some(0),
            connect_us: Some(100),
            response_us: Some(ms * 1000),
            total_us: Some(ms * 1000 + 50),
        };
        be.latency.record(&t);
        be.counters.times.record(&t);
    }
    let text = prometheus::render(&snap, &PromRequest::default());
    let e = prom::parse(&text).unwrap();
    let f = &e.families["ringlb_backend_response_time_seconds"];
    assert_eq!(f.kind.as_deref(), Some("histogram"));
    let get = |name: &str, le: Option<&str>| {
        f.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels["proxy"] == "app"
                    && s.labels.get("le").map(String::as_str) == le
            })
            .unwrap()
            .value
    };
    assert_eq!(get("ringlb_backend_response_time_seconds_count", None), 5.0);
    assert_eq!(
        get(
            "ringlb_backend_response_time_seconds_bucket",
            Some("0.0025")
        ),
        2.0
    );
    assert_eq!(
        get("ringlb_backend_response_time_seconds_bucket", Some("0.05")),
        4.0
    );
    assert_eq!(
        get("ringlb_backend_response_time_seconds_bucket", Some("+Inf")),
        5.0
    );
    assert!((get("ringlb_backend_response_time_seconds_sum", None) - 0.946).abs() < 1e-9);
    // HAProxy's average for the same requests: (1+2+3+40+900)/5 ms, rounded up.
    let avg = e.families["haproxy_backend_response_time_average_seconds"]
        .samples
        .iter()
        .find(|s| s.labels["proxy"] == "app")
        .unwrap()
        .value;
    assert_eq!(avg, 0.19);
}

#[test]
fn serve_answers_200_or_400() {
    let ok = prometheus::serve(&recorded_snapshot(), "scope=backend");
    assert_eq!(ok.status, 200);
    assert!(ok
        .headers
        .contains(&("content-type".into(), "text/plain; version=0.0.4".into())));
    assert!(ok.body.starts_with("# HELP haproxy_backend_current_queue "));
    let bad = prometheus::serve(&recorded_snapshot(), "scope=nope");
    assert_eq!(bad.status, 400);
}
