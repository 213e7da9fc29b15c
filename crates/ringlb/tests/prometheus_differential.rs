//! The Prometheus exporter live, against haproxy 2.6's built-in one: the same config under
//! both, the same requests with known status codes, then one scrape of `/metrics` from each,
//! compared family by family — names, HELP and TYPE lines, label sets, and every value
//! except the inherently different ones listed in `MASKED_VALUES`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use ringlb_stats::promtext::{self as prom, Exposition};
use ringlb_testkit::{
    curl, free_addr, guide_config, haproxy_required, http_get, runtime_command, send_raw_reply,
    wait_until, write_config, ChildGuard, Conn, Haproxy, Origin, Origins, RawEnd, RawReply, Ringlb,
    TempDir,
};

const T: Duration = Duration::from_secs(10);

/// Families only ringlb exposes, on purpose: `haproxy_backend_up` comes from the separate
/// haproxy_exporter (the guide's alerts use it), `haproxy_backend_queue_current` is the
/// guide's name for `haproxy_backend_current_queue`, `ringlb_*` are the latency histograms.
fn ringlb_extra(name: &str) -> bool {
    name.starts_with("ringlb_")
        || name == "haproxy_backend_up"
        || name == "haproxy_backend_queue_current"
}

/// Families whose values differ between two processes for reasons that are not a bug; their
/// names, HELP/TYPE lines and label sets are still compared.
const MASKED_VALUES: &[(&str, &str)] = &[
    // Process identity, clock and host resources.
    ("haproxy_process_uptime_seconds", "clock"),
    ("haproxy_process_start_time_seconds", "clock"),
    (
        "haproxy_process_max_fds",
        "ulimit -n as each process raised it",
    ),
    ("haproxy_process_max_sockets", "derived from max_fds"),
    (
        "haproxy_process_max_connections",
        "derived from ulimit -n without global maxconn",
    ),
    (
        "haproxy_process_hard_max_connections",
        "derived from ulimit -n",
    ),
    ("haproxy_process_max_memory_bytes", "host memory"),
    ("haproxy_process_pool_allocated_bytes", "allocator"),
    ("haproxy_process_pool_used_bytes", "allocator"),
    ("haproxy_process_idle_time_percent", "CPU load"),
    ("haproxy_process_build_info", "version label"),
    (
        "haproxy_process_unstoppable_jobs",
        "internal jobs differ by design",
    ),
    (
        "haproxy_process_active_peers",
        "no peers; kept for the label check",
    ),
    ("haproxy_process_busy_polling_enabled", "poller detail"),
    ("haproxy_process_stopping", "kept for the label check"),
    // Rates over the last second and their peaks: depend on when requests fell.
    ("haproxy_process_current_connection_rate", "clock"),
    ("haproxy_process_max_connection_rate", "clock"),
    ("haproxy_process_current_session_rate", "clock"),
    ("haproxy_process_max_session_rate", "clock"),
    ("haproxy_process_current_ssl_rate", "clock"),
    ("haproxy_process_max_ssl_rate", "clock"),
    ("haproxy_process_current_frontend_ssl_key_rate", "clock"),
    ("haproxy_process_max_frontend_ssl_key_rate", "clock"),
    ("haproxy_process_frontend_ssl_reuse", "clock"),
    ("haproxy_process_current_backend_ssl_key_rate", "clock"),
    ("haproxy_process_max_backend_ssl_key_rate", "clock"),
    (
        "haproxy_process_http_comp_bytes_in_total",
        "kept for the label check",
    ),
    (
        "haproxy_process_http_comp_bytes_out_total",
        "kept for the label check",
    ),
    ("haproxy_process_current_zlib_memory", "allocator"),
    ("haproxy_process_max_zlib_memory", "allocator"),
    (
        "haproxy_process_recv_logs_total",
        "kept for the label check",
    ),
    ("haproxy_frontend_current_session_rate", "clock"),
    ("haproxy_frontend_max_session_rate", "clock"),
    ("haproxy_frontend_http_requests_rate_max", "clock"),
    ("haproxy_backend_current_session_rate", "clock"),
    ("haproxy_backend_max_session_rate", "clock"),
    ("haproxy_server_current_session_rate", "clock"),
    ("haproxy_server_max_session_rate", "clock"),
    // Times: measured, not counted.
    ("haproxy_backend_last_session_seconds", "clock"),
    ("haproxy_server_last_session_seconds", "clock"),
    ("haproxy_backend_max_queue_time_seconds", "timing"),
    ("haproxy_backend_max_connect_time_seconds", "timing"),
    ("haproxy_backend_max_response_time_seconds", "timing"),
    ("haproxy_backend_max_total_time_seconds", "timing"),
    ("haproxy_backend_queue_time_average_seconds", "timing"),
    ("haproxy_backend_connect_time_average_seconds", "timing"),
    ("haproxy_backend_response_time_average_seconds", "timing"),
    ("haproxy_backend_total_time_average_seconds", "timing"),
    ("haproxy_server_max_queue_time_seconds", "timing"),
    ("haproxy_server_max_connect_time_seconds", "timing"),
    ("haproxy_server_max_response_time_seconds", "timing"),
    ("haproxy_server_max_total_time_seconds", "timing"),
    ("haproxy_server_queue_time_average_seconds", "timing"),
    ("haproxy_server_connect_time_average_seconds", "timing"),
    ("haproxy_server_response_time_average_seconds", "timing"),
    ("haproxy_server_total_time_average_seconds", "timing"),
    ("haproxy_server_check_duration_seconds", "timing"),
    ("haproxy_server_check_last_change_seconds", "clock"),
    ("haproxy_backend_check_last_change_seconds", "clock"),
    ("haproxy_server_downtime_seconds_total", "clock"),
    ("haproxy_backend_downtime_seconds_total", "clock"),
    // Which idle server connections count as safe (proven reusable) depends on the pool: a
    // connection becomes safe in haproxy once it carried a second request, in ringlb once it
    // went back to its shard's pool twice, and which shard took which request varies. The
    // total (`idle_connections_current`) is compared in `tolerated`.
    (
        "haproxy_server_unsafe_idle_connections_current",
        "pool policy",
    ),
    (
        "haproxy_server_safe_idle_connections_current",
        "pool policy",
    ),
];

fn masked(name: &str) -> bool {
    MASKED_VALUES.iter().any(|(n, _)| *n == name)
        || (name.starts_with("haproxy_process_") && !PROCESS_COMPARED.contains(&name))
}

/// The process-level families whose values are compared; the others depend on the process
/// (memory, tasks, pools, fds, rates, clocks) and differ by design.
const PROCESS_COMPARED: &[&str] = &[
    "haproxy_process_nbthread",
    "haproxy_process_nbproc",
    "haproxy_process_relative_process_id",
    "haproxy_process_requests_total",
    "haproxy_process_limit_connection_rate",
    "haproxy_process_limit_session_rate",
    "haproxy_process_limit_ssl_rate",
    "haproxy_process_max_ssl_connections",
    "haproxy_process_current_ssl_connections",
    "haproxy_process_ssl_connections_total",
    "haproxy_process_max_pipes",
    "haproxy_process_pipes_used_total",
    "haproxy_process_pipes_free_total",
    "haproxy_process_frontend_ssl_reuse",
    "haproxy_process_stopping",
];

/// Families compared within a tolerance rather than exactly.
fn tolerated(name: &str, theirs: f64, ours: f64) -> bool {
    // (Byte counters are compared exactly: both count a message's HTX size,
    // `ringlb_http1::htx`.)
    // Peaks of concurrent sessions: back-to-back sessions overlap or not depending on when
    // each side closes them (haproxy's own peak varies from run to run; ringlb's is sampled,
    // docs/observability.md): zero when haproxy's is, else within twice its own plus one.
    if name.ends_with("_max_sessions") {
        return (ours > 0.0) == (theirs > 0.0) && ours <= 2.0 * (theirs + 1.0);
    }
    // The server connection pools: haproxy's per-thread idle lists and ringlb's per-shard
    // pools keep different numbers of connections (their policies differ): compared as
    // "some" or "none".
    if name.ends_with("idle_connections_current") || name.ends_with("need_connections_current") {
        return (ours > 0.0) == (theirs > 0.0);
    }
    false
}

fn config(front: SocketAddr, ready: SocketAddr, servers: &[SocketAddr]) -> String {
    format!(
        "global
    nbthread 2
    maxconn 500
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {front}
    maxconn 200
    stick-table type ip size 1k expire 30s store http_req_cnt
    http-request track-sc0 src
    http-request use-service prometheus-exporter if {{ path /metrics }}
    http-request deny if {{ path /deny }}
    default_backend app
backend app
    balance first
    option httpchk GET /health
    use-server s2 if {{ path_beg /status/ }}
    server s1 {} weight 3 maxconn 50 check inter 300ms
    server s2 {} weight 1 maxconn 20 maxqueue 7
    server s3 {} backup disabled
frontend ready
    bind {ready}
",
        servers[0], servers[1], servers[1]
    )
}

/// The requests, each on its own connection, and the status each must get.
const TRAFFIC: &[(&str, u16, usize)] = &[
    ("/", 200, 5),
    ("/status/201", 201, 1),
    ("/status/301", 301, 2),
    ("/status/404", 404, 3),
    ("/status/503", 503, 2),
    ("/deny", 403, 1),
];

/// Starts `who`, waiting only for `ready` (a frontend left out of the comparison): the
/// readiness probe, an empty connection, must not land in a compared frontend.
fn start(who: &str, path: &std::path::Path, ready: SocketAddr) -> ChildGuard {
    match who {
        "haproxy" => Haproxy::start(path, &[ready]),
        _ => Ringlb::start(path, &[ready]),
    }
}

/// One request to `addr` that got an answer, retried until then (counted once in both).
fn warm_up(addr: SocketAddr, path: &str) {
    let ok = wait_until(T, || {
        http_get(addr, path, &[]).is_ok_and(|r| r.status == 200)
    });
    assert!(ok, "{addr} never answered");
}

/// How many health checks origin `o` has answered (its request log on stderr).
fn checks_seen(origins: &Origins, i: usize) -> usize {
    origins
        .get(i)
        .guard()
        .stderr()
        .matches("\"GET /health ")
        .count()
}

/// Starts `who` on the config, waits until s1 has been checked, sends `TRAFFIC`, scrapes
/// `/metrics` once (the scrape is a request of `fe` in both).
fn scrape(who: &str, origins: &Origins) -> String {
    let (front, ready) = (free_addr(), free_addr());
    let dir = TempDir::new(&format!("promdiff-{who}"));
    let path = write_config(&dir, &config(front, ready, &origins.addrs()));
    let before = checks_seen(origins, 0);
    let _proxy = start(who, &path, ready);
    warm_up(front, "/");
    // A connection closed before a request: both count a failed request answered 400.
    drop(std::net::TcpStream::connect(front).unwrap());
    // The check result is in the metrics (check_status, check_code): wait for the first one.
    assert!(
        wait_until(T, || checks_seen(origins, 0) > before),
        "{who}: s1 never checked\n{}",
        origins.get(0).guard().dump()
    );
    for (path, status, n) in TRAFFIC {
        for _ in 0..*n {
            let r = http_get(front, path, &[]).unwrap();
            assert_eq!(r.status, *status, "{who} {path}");
        }
    }
    let out = curl(&[&format!("http://{front}/metrics")], T).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The series key: name and labels; `build_info`'s `version` label names each program's
/// own version.
fn labels(s: &prom::Sample) -> String {
    let mut l = s.labels.clone();
    if s.name == "haproxy_process_build_info" {
        l.insert("version".into(), "VERSION".into());
    }
    format!("{}{:?}", s.name, l)
}

/// Every difference between the two expositions, one line each.
fn differences(theirs: &Exposition, ours: &Exposition) -> Vec<String> {
    let mut diffs = Vec::new();
    let their_names: BTreeSet<&String> = theirs.families.keys().collect();
    let our_names: BTreeSet<&String> = ours.families.keys().filter(|n| !ringlb_extra(n)).collect();
    for n in their_names.difference(&our_names) {
        diffs.push(format!("missing family {n}"));
    }
    for n in our_names.difference(&their_names) {
        diffs.push(format!("extra family {n}"));
    }
    for name in their_names.intersection(&our_names) {
        let (t, o) = (&theirs.families[*name], &ours.families[*name]);
        if t.help != o.help {
            diffs.push(format!("{name}: HELP {:?} vs ours {:?}", t.help, o.help));
        }
        if t.kind != o.kind {
            diffs.push(format!("{name}: TYPE {:?} vs ours {:?}", t.kind, o.kind));
        }
        let tv: BTreeMap<String, f64> = t.samples.iter().map(|s| (labels(s), s.value)).collect();
        let ov: BTreeMap<String, f64> = o.samples.iter().map(|s| (labels(s), s.value)).collect();
        for k in tv.keys().filter(|k| !ov.contains_key(*k)) {
            diffs.push(format!("missing series {k}"));
        }
        for k in ov.keys().filter(|k| !tv.contains_key(*k)) {
            diffs.push(format!("extra series {k}"));
        }
        if masked(name) {
            continue;
        }
        for (k, a) in &tv {
            if let Some(b) = ov.get(k) {
                if !(a == b || a.is_nan() && b.is_nan() || tolerated(name, *a, *b)) {
                    diffs.push(format!("{k}: haproxy {a} vs ringlb {b}"));
                }
            }
        }
    }
    diffs
}

/// Reads `text` as a standard scraper does (the `prometheus-parse` crate) and checks it finds
/// what the strict parser found: every sample with the same name, labels and value, and as
/// many of them (a histogram's buckets count as its samples).
fn read_as_a_scraper(who: &str, text: &str, strict: &Exposition) {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("{who}: prometheus-parse: {e}"));
    let mut strict_samples: BTreeMap<(String, Vec<(String, String)>), f64> = BTreeMap::new();
    for f in strict.families.values() {
        for s in &f.samples {
            let labels = s.labels.clone().into_iter().collect();
            strict_samples.insert((s.name.clone(), labels), s.value);
        }
    }
    let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
    let mut read = 0;
    for s in &scrape.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let scalar = match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(*v),
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    let mut with_le = labels.clone();
                    let le = if b.less_than.is_infinite() {
                        "+Inf".to_string()
                    } else {
                        b.less_than.to_string()
                    };
                    with_le.push(("le".into(), le));
                    with_le.sort();
                    let key = (format!("{}_bucket", s.metric), with_le);
                    let found = strict_samples.iter().find(|((n, l), _)| {
                        *n == key.0
                            && l.len() == key.1.len()
                            && l.iter().zip(&key.1).all(|(a, b)| {
                                // `le` compared as a number (the crate reprints it).
                                let number = |x: &str| x.parse::<f64>().ok();
                                a.0 == b.0
                                    && (a.1 == b.1 || (a.0 == "le" && number(&a.1) == number(&b.1)))
                            })
                    });
                    let value = found.map(|(_, v)| *v);
                    assert!(
                        value.is_some_and(|v| same(v, b.count)),
                        "{who}: bucket {key:?} = {} read by prometheus-parse, strict parser: {value:?}",
                        b.count
                    );
                    read += 1;
                }
                None
            }
            prometheus_parse::Value::Summary(_) => panic!("{who}: unexpected summary {}", s.metric),
        };
        if let Some(v) = scalar {
            let key = (s.metric.clone(), labels);
            let value = strict_samples.get(&key).copied();
            assert!(
                value.is_some_and(|w| same(w, v)),
                "{who}: {key:?} = {v} read by prometheus-parse, strict parser: {value:?}"
            );
            read += 1;
        }
    }
    assert_eq!(
        read,
        strict_samples.len(),
        "{who}: prometheus-parse read {read} samples, the strict parser {}",
        strict_samples.len()
    );
}

#[test]
fn same_config_and_traffic_give_the_same_metrics_as_haproxy() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let origins = Origins::start(2);
    let theirs_text = scrape("haproxy", &origins);
    let ours_text = scrape("ringlb", &origins);
    let theirs = prom::parse(&theirs_text).unwrap_or_else(|e| panic!("haproxy: {e}"));
    let ours = prom::parse(&ours_text).unwrap_or_else(|e| panic!("ringlb: {e}\n{ours_text}"));
    read_as_a_scraper("haproxy", &theirs_text, &theirs);
    read_as_a_scraper("ringlb", &ours_text, &ours);
    // The comparison must cover the request counters and states, not an empty page.
    for needle in [
        "haproxy_backend_http_responses_total{proxy=\"app\",code=\"4xx\"} 3",
        "haproxy_server_status{proxy=\"app\",server=\"s3\",state=\"MAINT\"} 1",
        // 5 + the warm-up request.
        "haproxy_server_loadbalanced_total{proxy=\"app\",server=\"s1\"} 6",
        // The empty connection.
        "haproxy_frontend_request_errors_total{proxy=\"fe\"} 1",
        // The frontend's table, tracking the one client address.
        "haproxy_sticktable_used{name=\"fe\",type=\"ip\"} 1",
    ] {
        assert!(theirs_text.contains(needle), "{needle} in\n{theirs_text}");
    }
    let compared = theirs
        .families
        .keys()
        .filter(|n| !masked(n))
        .map(|n| theirs.families[n].samples.len())
        .sum::<usize>();
    assert!(compared > 200, "only {compared} series compared");
    let diffs = differences(&without_helpers(theirs, 0.0), &without_helpers(ours, 0.0));
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// A TCP `listen`, a listener with `option socket-stats`, keep-alive requests, and the
/// exporter's `scope` filters. `prom` serves the scrapes that wait for the TCP sessions to
/// end, so they do not count in `fe`; its own series are left out of the comparison.
fn config_tcp(front: SocketAddr, tcp: SocketAddr, prom: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "global
    nbthread 2
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {front} name web1
    option socket-stats
    http-request use-service prometheus-exporter if {{ path /metrics }}
    default_backend app
backend app
    server s1 {origin}
listen tcpapp
    mode tcp
    bind {tcp}
    server t1 {origin}
frontend prom
    bind {prom}
    http-request use-service prometheus-exporter
"
    )
}

/// The scrape, and how many scrapes of `prom` it took to see every session end (each is a
/// stream, counted in `haproxy_process_requests_total`).
fn scrape_tcp(who: &str, origin: SocketAddr, query: &str) -> (String, f64) {
    let (front, tcp, prom) = (free_addr(), free_addr(), free_addr());
    let dir = TempDir::new(&format!("promdiff-tcp-{who}"));
    let path = write_config(&dir, &config_tcp(front, tcp, prom, origin));
    let _proxy = start(who, &path, prom);
    warm_up(front, "/");
    warm_up(tcp, "/");
    // 4 requests on one keep-alive connection, 3 more TCP sessions (one request each).
    let mut c = Conn::connect(front).unwrap();
    for p in ["/", "/status/404", "/", "/status/500"] {
        c.get(p).unwrap();
    }
    drop(c);
    for _ in 0..3 {
        let r = http_get(tcp, "/", &[("Connection", "close")]).unwrap();
        assert_eq!(r.status, 200, "{who}");
    }
    // Sessions are counted when they end: wait until all of them have.
    let mut polls = 0.0;
    let ended = wait_until(T, || {
        polls += 1.0;
        let out = curl(&["-s", &format!("http://{prom}/metrics?scope=frontend")], T).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        ["fe", "tcpapp"].iter().all(|px| {
            text.contains(&format!(
                "haproxy_frontend_current_sessions{{proxy=\"{px}\"}} 0"
            ))
        })
    });
    assert!(ended, "{who}: sessions still open");
    let out = curl(&["-s", &format!("http://{front}/metrics{query}")], T).unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), polls)
}

/// `exp` without the series of the helper proxies `prom` and `ready` (readiness probes,
/// polling), nor `polls` scrapes in the process request count.
fn without_helpers(mut exp: Exposition, polls: f64) -> Exposition {
    for (name, f) in exp.families.iter_mut() {
        f.samples.retain(|s| {
            !matches!(
                s.labels.get("proxy").map(String::as_str),
                Some("prom" | "ready")
            )
        });
        if name == "haproxy_process_requests_total" {
            for s in &mut f.samples {
                s.value -= polls;
            }
        }
    }
    exp
}

#[test]
fn tcp_listen_listeners_keep_alive_and_scopes_match_haproxy() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let origin = Origin::start("o");
    for query in [
        "",
        "?scope=listener&scope=server",
        "?scope=backend&no-maint",
    ] {
        let (theirs_text, their_polls) = scrape_tcp("haproxy", origin.addr(), query);
        let (ours_text, our_polls) = scrape_tcp("ringlb", origin.addr(), query);
        let theirs = prom::parse(&theirs_text).unwrap_or_else(|e| panic!("haproxy: {e}"));
        let ours = prom::parse(&ours_text).unwrap_or_else(|e| panic!("ringlb: {e}\n{ours_text}"));
        assert!(!theirs.families.is_empty(), "{query}: {theirs_text}");
        let diffs = differences(
            &without_helpers(theirs, their_polls),
            &without_helpers(ours, our_polls),
        );
        assert!(
            diffs.is_empty(),
            "?{query}: {} differences:\n{}",
            diffs.len(),
            diffs.join("\n")
        );
    }
}

/// Requests that never came complete: a connection closed before a word, a malformed
/// request (400) and one that timed out (408), with and without `option http-ignore-probes`.
fn config_errors(fe: SocketAddr, quiet: SocketAddr, prom: SocketAddr) -> String {
    format!(
        "global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout http-request 300ms
frontend fe
    bind {fe}
frontend quiet
    bind {quiet}
    option http-ignore-probes
frontend prom
    bind {prom}
    http-request use-service prometheus-exporter
"
    )
}

fn scrape_errors(who: &str) -> String {
    let (fe, quiet, prom) = (free_addr(), free_addr(), free_addr());
    let dir = TempDir::new(&format!("promdiff-err-{who}"));
    let path = write_config(&dir, &config_errors(fe, quiet, prom));
    let _proxy = start(who, &path, prom);
    for addr in [fe, quiet] {
        // Both listen once `prom` does (same process); a refused connect is retried.
        assert!(wait_until(T, || std::net::TcpStream::connect(addr)
            .map(drop)
            .is_ok()));
        let bad = send_raw_reply(addr, b"GARBAGE\r\n\r\n", T).unwrap();
        assert!(bad.end == RawEnd::Closed, "{who}: {bad:?}");
        let idle = send_raw_reply(addr, b"", T).unwrap();
        assert!(idle.end == RawEnd::Closed, "{who}: {idle:?}");
        let reply = |r: &RawReply| {
            String::from_utf8_lossy(&r.bytes)
                .lines()
                .next()
                .map(str::to_string)
        };
        eprintln!("{who} {addr}: {:?} / {:?}", reply(&bad), reply(&idle));
    }
    let ended = wait_until(T, || {
        let out = curl(&["-s", &format!("http://{prom}/metrics?scope=frontend")], T).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        ["fe", "quiet"].iter().all(|px| {
            text.contains(&format!(
                "haproxy_frontend_current_sessions{{proxy=\"{px}\"}} 0"
            ))
        })
    });
    assert!(ended, "{who}: sessions still open");
    let out = curl(&["-s", &format!("http://{prom}/metrics?scope=frontend")], T).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn empty_malformed_and_timed_out_requests_count_as_in_haproxy() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let theirs_text = scrape_errors("haproxy");
    let ours_text = scrape_errors("ringlb");
    let theirs = prom::parse(&theirs_text).unwrap_or_else(|e| panic!("haproxy: {e}"));
    let ours = prom::parse(&ours_text).unwrap_or_else(|e| panic!("ringlb: {e}\n{ours_text}"));
    // What haproxy counts, so a change on both sides cannot pass unnoticed: `fe` 3 failed
    // requests (the empty connection of the readiness wait, the 400, the 408).
    assert!(
        theirs_text.contains("haproxy_frontend_request_errors_total{proxy=\"fe\"} 3"),
        "{theirs_text}"
    );
    let diffs = differences(&without_helpers(theirs, 0.0), &without_helpers(ours, 0.0));
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The metrics the guide tells its readers to alert on (its "Key Prometheus metrics"
/// table): (family, a label that must be there, its value).
const GUIDE_METRICS: &[(&str, &str, &str)] = &[
    ("haproxy_backend_up", "proxy", "web_servers"),
    ("haproxy_server_status", "server", "web1"),
    ("haproxy_backend_http_responses_total", "code", "5xx"),
    ("haproxy_backend_queue_current", "proxy", "api_servers"),
    ("haproxy_frontend_current_sessions", "proxy", "https_in"),
    (
        "haproxy_backend_response_time_average_seconds",
        "proxy",
        "static_servers",
    ),
];

/// Issue #9's "done when": the guide's production configuration
/// (config/examples/guide-22-production.cfg) under both, one scrape of its `stats`
/// frontend's `/metrics` each; every series haproxy exposes for it (family, HELP, TYPE and
/// label set: what the guide's alerts and HAProxy's own dashboards query) must be in
/// ringlb's, and so must the guide's alert metrics (two of them exist only in the separate
/// haproxy_exporter, which ringlb exposes too).
#[test]
fn the_guides_production_config_exposes_every_series_haproxy_does() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let names = ["web1", "web2", "api1", "api2", "static1", "ws1", "ws2"];
    let origins: Vec<Origin> = names.iter().map(|n| Origin::start(n)).collect();
    let scrape = |who: &str| -> (Exposition, String) {
        let (http, https, stats) = (free_addr(), free_addr(), free_addr());
        let mut ports = vec![(18022, http), (18422, https), (18423, stats)];
        for (port, o) in (19221..).zip(&origins) {
            ports.push((port, o.addr()));
        }
        let dir = TempDir::new(&format!("promguide-{who}"));
        let sock = dir.join("admin.sock");
        let cfg = guide_config("guide-22-production.cfg", &ports, sock.to_str().unwrap());
        let path = write_config(&dir, &cfg);
        let binds = [http, https, stats];
        let _proxy = match who {
            "haproxy" => Haproxy::start(&path, &binds),
            _ => Ringlb::start(&path, &binds),
        };
        // Traffic in the response-code series: plain HTTP is redirected (301).
        let r = http_get(http, "/", &[]).unwrap();
        assert_eq!(r.status, 301, "{who}");
        // A check duration is shown once a server's first check finished: scraped when
        // all seven have been checked.
        let mut text = String::new();
        let checked = wait_until(T, || {
            let out = curl(&[&format!("http://{stats}/metrics")], T).unwrap();
            text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.matches("\nhaproxy_server_check_duration_seconds{")
                .count()
                == names.len()
        });
        assert!(checked, "{who}: not every server checked\n{text}");
        let exp = prom::parse(&text).unwrap_or_else(|e| panic!("{who}: {e}\n{text}"));
        (exp, text)
    };
    let (theirs, theirs_text) = scrape("haproxy");
    let (ours, ours_text) = scrape("ringlb");
    // The scrape must cover the guide's proxies, not an empty page.
    for needle in [
        "haproxy_server_status{proxy=\"ws_servers\",server=\"ws2\",state=\"UP\"}",
        "haproxy_frontend_http_responses_total{proxy=\"https_in\",code=\"3xx\"} 1",
    ] {
        assert!(theirs_text.contains(needle), "{needle} in\n{theirs_text}");
    }
    let mut missing = Vec::new();
    let mut series = 0;
    for (name, t) in &theirs.families {
        let Some(o) = ours.families.get(name) else {
            missing.push(format!("family {name}"));
            continue;
        };
        if (&t.help, &t.kind) != (&o.help, &o.kind) {
            missing.push(format!(
                "{name}: HELP/TYPE {:?}/{:?}, ringlb {:?}/{:?}",
                t.help, t.kind, o.help, o.kind
            ));
        }
        let have: BTreeSet<String> = o.samples.iter().map(labels).collect();
        for s in &t.samples {
            series += 1;
            if !have.contains(&labels(s)) {
                missing.push(format!("series {}", labels(s)));
            }
        }
    }
    assert!(series > 500, "only {series} series in haproxy's scrape");
    assert!(
        missing.is_empty(),
        "{} of haproxy's series missing in ringlb's scrape:\n{}",
        missing.len(),
        missing.join("\n")
    );
    for (family, label, value) in GUIDE_METRICS {
        let found = ours.families.get(*family).is_some_and(|f| {
            f.samples
                .iter()
                .any(|s| s.labels.get(*label).is_some_and(|v| v == value))
        });
        assert!(found, "{family}{{{label}=\"{value}\"}} in\n{ours_text}");
    }
}

/// haproxy counts each runtime-socket connection as a session with one stream, so its
/// exporter's `haproxy_process_connections_total` and `haproxy_process_requests_total` grow
/// with them (as `show info`'s `CumConns` and `CumReq` do); ringlb's exporter, which runs on
/// a shard while the runtime socket is the control shard's, counts them the same.
#[test]
fn runtime_socket_connections_count_in_the_exporter_as_in_haproxy() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let value = |text: &str, name: &str| -> f64 {
        let exp = prom::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        exp.families[name].samples[0].value
    };
    let mut seen = Vec::new();
    for who in ["haproxy", "ringlb"] {
        let dir = TempDir::new(&format!("promcli-{who}"));
        let sock = dir.join("admin.sock");
        let prom_addr = free_addr();
        let cfg = format!(
            "global\n    nbthread 2\n    stats socket {} level admin\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             frontend prom\n    bind {prom_addr}\n    http-request use-service prometheus-exporter\n",
            sock.display()
        );
        let path = write_config(&dir, &cfg);
        let _proxy = start(who, &path, prom_addr);
        assert!(wait_until(T, || runtime_command(&sock, "show info").is_ok()));
        let scrape = || {
            let out = curl(&[&format!("http://{prom_addr}/metrics?scope=global")], T).unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let a = scrape();
        for _ in 0..3 {
            runtime_command(&sock, "show info").unwrap();
        }
        let b = scrape();
        let delta = |name: &str| value(&b, name) - value(&a, name);
        seen.push((
            delta("haproxy_process_connections_total"),
            delta("haproxy_process_requests_total"),
        ));
    }
    // Three runtime-socket connections and the second scrape, in both counters.
    assert_eq!(seen[0], (4.0, 4.0), "haproxy");
    assert_eq!(seen[1], seen[0], "ringlb as haproxy");
}
