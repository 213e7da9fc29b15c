//! The stats page and the Prometheus exporter through the real binary: counters merged from
//! both shards, `stats auth`, the CSV/JSON exports, the admin form draining a server, and
//! HAProxy's metric names.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ringlb_testkit::{curl, free_addr, wait_until, write_config, Conn, Origins, Ringlb, TempDir};

const T: Duration = Duration::from_secs(10);

fn config(front: SocketAddr, stats: SocketAddr, servers: &[SocketAddr]) -> String {
    format!(
        "global\n    nbthread 2\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n    default_backend app\nbackend app\n    server s1 {}\n    server s2 {}\nlisten stats\n    bind {stats}\n    stats enable\n    stats uri /stats\n    stats refresh 5s\n    stats auth admin:secret\n    stats admin if TRUE\n",
        servers[0], servers[1]
    )
}

fn get(url: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["-i"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = curl(&args, T).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

/// `field` of the CSV row `pxname,svname`.
fn csv_field(csv: &str, px: &str, sv: &str, field: &str) -> String {
    let header: Vec<&str> = csv
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = header.iter().position(|h| *h == field).unwrap();
    let row = csv
        .lines()
        .find(|l| l.starts_with(&format!("{px},{sv},")))
        .unwrap_or_else(|| panic!("no row {px}/{sv} in\n{csv}"));
    row.split(',').nth(col).unwrap().to_string()
}

#[test]
fn stats_page_counts_requests_of_both_shards_and_drains_from_the_admin_form() {
    let origins = Origins::start(2);
    let (front, stats) = (free_addr(), free_addr());
    let dir = TempDir::new("stats-page");
    let path = write_config(&dir, &config(front, stats, &origins.addrs()));
    let _proxy = Ringlb::start(&path, &[front, stats]);

    // 6 connections × 5 requests: SO_REUSEPORT spreads them over both shards.
    for _ in 0..6 {
        let mut c = Conn::connect(front).unwrap();
        for _ in 0..5 {
            assert_eq!(c.get("/").unwrap().status, 200);
        }
    }
    let base = format!("http://{stats}/stats");

    // Without credentials: 401 with the realm.
    let (head, _) = get(&base, &[]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm="),
        "{head}"
    );

    let auth = ["-u", "admin:secret"];
    let (head, csv) = get(&format!("{base};csv"), &auth);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        csv.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,"),
        "{csv}"
    );
    assert_eq!(csv_field(&csv, "app", "BACKEND", "req_tot"), "30");
    // + the readiness probe of `Ringlb::start` (a connection closed before a request), which
    // haproxy counts as a failed request answered 400 — when it reached the process (a
    // probe during startup may not).
    let probe: u64 = csv_field(&csv, "fe", "FRONTEND", "ereq").parse().unwrap();
    assert!(probe <= 1, "ereq {probe}");
    assert_eq!(
        csv_field(&csv, "fe", "FRONTEND", "req_tot"),
        (30 + probe).to_string()
    );
    assert_eq!(
        csv_field(&csv, "fe", "FRONTEND", "hrsp_4xx"),
        probe.to_string()
    );
    assert_eq!(csv_field(&csv, "fe", "FRONTEND", "hrsp_2xx"), "30");
    let per_server: u64 = ["s1", "s2"]
        .iter()
        .map(|s| csv_field(&csv, "app", s, "stot").parse::<u64>().unwrap())
        .sum();
    assert_eq!(per_server, 30);
    assert_eq!(csv_field(&csv, "app", "s1", "status"), "no check");

    let (_, json) = get(&format!("{base};json"), &auth);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(parsed.is_array(), "{json}");

    let (head, html) = get(&base, &auth);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        html.contains("<html") && html.contains("app") && html.contains("s2"),
        "{html}"
    );

    // The admin form: drain s1; then no new request reaches s1, on any shard.
    let (head, _) = get(
        &base,
        &["-u", "admin:secret", "--data", "s=s1&action=drain&b=app"],
    );
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    assert!(head.contains(";st=DONE"), "{head}");
    assert!(wait_until(T, || {
        let (_, csv) = get(&format!("{base};csv"), &auth);
        csv_field(&csv, "app", "s1", "status").starts_with("DRAIN")
    }));
    for _ in 0..6 {
        let mut c = Conn::connect(front).unwrap();
        for _ in 0..4 {
            let r = c.get("/").unwrap();
            assert_eq!(r.header("x-origin"), Some(origins.names()[1]));
        }
    }
}

#[test]
fn prometheus_exporter_uses_haproxy_names() {
    let origins = Origins::start(2);
    let (front, stats) = (free_addr(), free_addr());
    let dir = TempDir::new("stats-prom");
    let path = write_config(&dir, &config(front, stats, &origins.addrs()));
    let _proxy = Ringlb::start(&path, &[front, stats]);
    let mut c = Conn::connect(front).unwrap();
    for _ in 0..7 {
        assert_eq!(c.get("/").unwrap().status, 200);
    }
    let (head, body) = get(&format!("http://{front}/metrics"), &[]);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    for needle in [
        "haproxy_process_nbthread 2",
        "haproxy_backend_http_responses_total{proxy=\"app\",code=\"2xx\"} 7",
        "haproxy_server_status{proxy=\"app\",server=\"s1\",state=\"UP\"} 1",
        "haproxy_backend_up{proxy=\"app\",backend=\"app\"} 1",
        "haproxy_frontend_current_sessions{proxy=\"fe\"}",
        "haproxy_backend_response_time_average_seconds{proxy=\"app\"}",
        "ringlb_backend_response_time_seconds_bucket{proxy=\"app\"",
    ] {
        assert!(body.contains(needle), "missing {needle} in\n{body}");
    }
    let (head, _) = get(&format!("http://{front}/metrics?scope=nope"), &[]);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

#[test]
fn health_check_results_show_on_the_stats_page() {
    let origins = Origins::start(1);
    let (front, stats, dead) = (free_addr(), free_addr(), free_addr());
    let dir = TempDir::new("stats-checks");
    let cfg = format!(
        "global\n    nbthread 2\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\nfrontend fe\n    bind {front}\n    default_backend app\nbackend app\n    option httpchk GET /health\n    server s1 {} check inter 200ms\n    server s2 {dead} check inter 200ms fall 2\nlisten stats\n    bind {stats}\n    stats enable\n    stats uri /\n",
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front, stats]);
    let url = format!("http://{stats}/;csv");
    let mut csv = String::new();
    assert!(
        wait_until(T, || {
            csv = get(&url, &[]).1;
            csv_field(&csv, "app", "s2", "status") == "DOWN"
        }),
        "{csv}"
    );
    assert_eq!(csv_field(&csv, "app", "s2", "check_status"), "L4CON");
    assert_eq!(csv_field(&csv, "app", "s1", "status"), "UP");
    assert_eq!(csv_field(&csv, "app", "s1", "check_status"), "L7OK");
    assert_eq!(csv_field(&csv, "app", "s1", "check_code"), "200");
    // haproxy counts failed checks while the server is still UP.
    assert!(
        csv_field(&csv, "app", "s2", "chkfail")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert_eq!(csv_field(&csv, "app", "BACKEND", "status"), "UP");
}
