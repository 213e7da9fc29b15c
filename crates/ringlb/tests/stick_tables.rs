//! Stick tables end to end (issue #7): the guide's rate-limiting rules through the real
//! `ringlb` binary and real `ringlb-origin` servers on loopback, with two shards so that one
//! client's connections land on both (SO_REUSEPORT spreads connections by 4-tuple). The
//! limits must hold globally (ADR 0003). Every test is bounded by socket timeouts and cleans
//! up its processes by pid (ChildGuard).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, write_config, Conn, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

struct Setup {
    _dir: TempDir,
    _origin: Origin,
    front: SocketAddr,
    _proxy: ringlb_testkit::ChildGuard,
}

/// ringlb with `nbthread` shards, frontend `fe` on a free port holding `frontend_body`, a
/// backend `be` over one origin, and `extra` sections (table backends) after it.
fn start(nbthread: u32, defaults: &str, frontend_body: &str, extra: &str) -> Setup {
    let origin = Origin::start("stick");
    let dir = TempDir::new("stick-tables");
    let front = free_addr();
    let cfg = config(
        nbthread,
        front,
        origin.addr(),
        defaults,
        frontend_body,
        extra,
    );
    let path = write_config(&dir, &cfg);
    let proxy = Ringlb::start(&path, &[front]);
    Setup {
        _dir: dir,
        _origin: origin,
        front,
        _proxy: proxy,
    }
}

fn config(
    nbthread: u32,
    front: SocketAddr,
    server: SocketAddr,
    defaults: &str,
    frontend_body: &str,
    extra: &str,
) -> String {
    format!(
        "global\n    nbthread {nbthread}\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n{defaults}\nfrontend fe\n    bind {front}\n{frontend_body}\n    default_backend be\n\nbackend be\n    server s1 {server}\n{extra}"
    )
}

/// One request on a new connection: its status.
fn status(addr: SocketAddr, path: &str) -> u16 {
    http_get(addr, path, &[]).expect("response").status
}

/// [`status`], then a pause of a few exchange intervals: shards exchange counts every 1 ms
/// (ADR 0003), so requests spaced like this are counted exactly; back-to-back requests on
/// different shards may miss the last ~2 ms of the other shard's counts (tested with
/// tolerance by the accuracy tests).
fn paced(addr: SocketAddr, path: &str) -> u16 {
    let s = status(addr, path);
    std::thread::sleep(Duration::from_millis(4));
    s
}

/// The guide's "Rate Limiting with Stick Tables" rule (first deny only).
const GUIDE_RATE: &str = "    stick-table type ip size 200k expire 30s store http_req_rate(10s),conn_cur\n    http-request track-sc0 src\n    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100 }";

#[test]
fn two_shards_accept_100_of_300_requests_in_10s_sequential_connections() {
    let s = start(2, "", GUIDE_RATE, "");
    let t0 = Instant::now();
    let statuses: Vec<u16> = (0..300).map(|_| status(s.front, "/")).collect();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let denied = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + denied, 300, "{statuses:?}");
    assert!((95..=105).contains(&ok), "accepted {ok} of 300");
    // Sequential requests: the first 100 pass, every later one is refused.
    assert!(statuses[..95].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[110..].iter().all(|s| *s == 429), "{statuses:?}");
}

/// Six clients, each with its own connections, interleaved over about two seconds.
#[test]
fn two_shards_accept_100_of_300_requests_in_10s_from_parallel_clients() {
    let s = start(2, "", GUIDE_RATE, "");
    let statuses = parallel_clients(s.front, 6, 50, Duration::from_millis(30));
    let ok = statuses.iter().filter(|s| **s == 200).count();
    eprintln!("parallel, paced: accepted {ok} of 300");
    assert!((95..=105).contains(&ok), "accepted {ok} of 300");
}

/// The same 300 requests as fast as six clients can send them (about 0.2 s): the shards miss
/// at most the last few milliseconds of each other's counts when the limit is crossed
/// (ADR 0003, "Error bound"), so a little overshoot and never an undershoot.
#[test]
fn two_shards_burst_of_300_parallel_requests_overshoots_little() {
    let s = start(2, "", GUIDE_RATE, "");
    let statuses = parallel_clients(s.front, 6, 50, Duration::ZERO);
    let ok = statuses.iter().filter(|s| **s == 200).count();
    eprintln!("parallel, burst: accepted {ok} of 300");
    // Typically 100-105; on a loaded 2-core machine the exchange task itself waits a few
    // milliseconds behind the clients, so the bound allows ~10% of the burst.
    assert!((100..=130).contains(&ok), "accepted {ok} of 300");
}

/// `clients` threads each sending `each` requests on new connections, `pause` apart; all
/// statuses (every one a 200 or a 429).
fn parallel_clients(front: SocketAddr, clients: usize, each: usize, pause: Duration) -> Vec<u16> {
    let t0 = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                (0..each)
                    .map(|_| {
                        let s = status(front, "/");
                        std::thread::sleep(pause);
                        s
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), clients * each);
    statuses
}

#[test]
fn two_shards_without_a_limit_hit_serve_everything() {
    // Control for the tests above: below the limit nothing is refused.
    let s = start(2, "", GUIDE_RATE, "");
    for _ in 0..100 {
        assert_eq!(status(s.front, "/"), 200);
    }
}

/// `sc_conn_cur(0) gt 3`: with three requests held by a slow server, two more connections
/// are refused on either shard; once the slow ones end, requests pass again.
#[test]
fn conn_cur_refuses_connections_beyond_the_limit_across_shards() {
    let s = start(
        2,
        "",
        "    stick-table type ip size 200k expire 30s store http_req_rate(10s),conn_cur\n    http-request track-sc0 src\n    http-request deny deny_status 429 if { sc_conn_cur(0) gt 3 }",
        "",
    );
    let mut slow: Vec<Conn> = (0..3)
        .map(|_| {
            let mut c = Conn::connect(s.front).unwrap();
            c.set_timeout(T).unwrap();
            c.send(b"GET /slow/1500 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = Vec::new();
    for _ in 0..4 {
        let mut c = Conn::connect(s.front).unwrap();
        c.set_timeout(T).unwrap();
        extra.push(c.get("/").unwrap().status);
    }
    assert_eq!(extra, vec![429; 4]);
    for c in &mut slow {
        assert_eq!(c.read_response("GET").unwrap().status, 200);
    }
    drop(slow);
    std::thread::sleep(Duration::from_millis(50));
    // Released: conn_cur is back to zero on every shard.
    for _ in 0..6 {
        assert_eq!(status(s.front, "/"), 200);
    }
}

/// `tarpit` above a rate: the request is held for `timeout tarpit`, then answered 500.
#[test]
fn tarpit_above_a_rate_holds_then_answers_500() {
    let s = start(
        2,
        "    timeout tarpit 400ms\n",
        "    stick-table type ip size 200k expire 30s store http_req_rate(10s)\n    http-request track-sc0 src\n    http-request tarpit if { sc_http_req_rate(0) gt 5 }",
        "",
    );
    for _ in 0..5 {
        let t0 = Instant::now();
        assert_eq!(paced(s.front, "/"), 200);
        assert!(t0.elapsed() < Duration::from_millis(300));
    }
    for _ in 0..2 {
        let t0 = Instant::now();
        assert_eq!(status(s.front, "/"), 500);
        assert!(
            t0.elapsed() >= Duration::from_millis(380),
            "{:?}",
            t0.elapsed()
        );
    }
}

/// The guide's three rules in its order (scaled down): the 429 rule comes first, so clients
/// above the tarpit rate are denied, never tarpitted (as in HAProxy).
const GUIDE_ORDER_SCALED: &str = "    stick-table type ip size 200k expire 30s store http_req_rate(10s),conn_cur,bytes_out_rate(60s)\n    http-request track-sc0 src\n    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 10 }\n    http-request deny deny_status 429 if { sc_conn_cur(0) gt 50 }\n    http-request tarpit if { sc_http_req_rate(0) gt 20 }";

#[test]
fn guide_rule_order_denies_before_tarpit() {
    let s = start(2, "    timeout tarpit 2s\n", GUIDE_ORDER_SCALED, "");
    let statuses: Vec<u16> = (0..30).map(|_| paced(s.front, "/")).collect();
    let mut want = vec![200u16; 10];
    want.extend([429u16; 20]);
    assert_eq!(statuses, want);
}

/// Single shard against haproxy 2.6 (`nbthread 1` both): the same statuses in the same order.
#[test]
fn single_shard_429_sequence_matches_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipped");
        return;
    }
    let origin = Origin::start("stick-diff");
    let dir = TempDir::new("stick-diff");
    let run = |use_haproxy: bool| -> Vec<u16> {
        let front = free_addr();
        let cfg = config(
            1,
            front,
            origin.addr(),
            "    timeout tarpit 2s\n",
            GUIDE_ORDER_SCALED,
            "",
        );
        let path = write_config(&dir, &cfg);
        let _proxy = if use_haproxy {
            Haproxy::start(&path, &[front])
        } else {
            Ringlb::start(&path, &[front])
        };
        (0..30).map(|_| paced(front, "/")).collect()
    };
    let theirs = run(true);
    let ours = run(false);
    assert_eq!(ours, theirs);
    assert_eq!(theirs.iter().filter(|s| **s == 200).count(), 10);
}

/// config/examples/guide-19-multi-layer-rate-limit-fixed.cfg: per-IP (200 per 10 s) and
/// per-IP-and-path (`base32+src` into a binary table, 50 per 10 s) limits in table backends.
#[test]
fn two_layer_per_ip_and_per_ip_path_limits() {
    let s = start(
        2,
        "",
        "    http-request track-sc0 src table per_ip_rate\n    http-request track-sc1 base32+src table per_path_rate if { path_beg /api/ }\n    http-request deny deny_status 429 if { sc_http_req_rate(0,per_ip_rate) gt 200 }\n    http-request deny deny_status 429 if { sc_http_req_rate(1,per_path_rate) gt 50 }",
        "\nbackend per_ip_rate\n    stick-table type ip size 200k expire 60s store http_req_rate(10s)\n\nbackend per_path_rate\n    stick-table type binary len 40 size 100k expire 30s store http_req_rate(10s)\n",
    );
    // One API path: 50 pass, then the per-path limit refuses.
    let api: Vec<u16> = (0..60).map(|_| paced(s.front, "/api/users")).collect();
    assert!(api[..50].iter().all(|s| *s == 200), "{api:?}");
    assert!(api[50..].iter().all(|s| *s == 429), "{api:?}");
    // Another path of the same client, and the same path outside /api/, still pass.
    assert_eq!(paced(s.front, "/api/orders"), 200);
    assert_eq!(paced(s.front, "/static/app.js"), 200);
    // The per-IP limit counts everything (62 so far): 138 more pass, then 429.
    let rest: Vec<u16> = (0..150).map(|_| paced(s.front, "/page")).collect();
    assert!(rest[..138].iter().all(|s| *s == 200), "{rest:?}");
    assert!(rest[138..].iter().all(|s| *s == 429), "{rest:?}");
}

/// Runs `scenario` against ringlb (2 shards) and, when installed, haproxy 2.6 (2 threads)
/// with the same frontend; asserts both give the same observations and returns ringlb's.
fn differential(frontend_body: &str, scenario: fn(SocketAddr) -> Vec<String>) -> Vec<String> {
    let origin = Origin::start("stick-diff");
    let dir = TempDir::new("stick-diff");
    let run = |use_haproxy: bool| -> Vec<String> {
        let front = free_addr();
        let cfg = config(2, front, origin.addr(), "", frontend_body, "");
        let path = write_config(&dir, &cfg);
        let _proxy = if use_haproxy {
            Haproxy::start(&path, &[front])
        } else {
            Ringlb::start(&path, &[front])
        };
        scenario(front)
    };
    let ours = run(false);
    if haproxy_available() {
        assert_eq!(ours, run(true), "ringlb (left) and haproxy (right) differ");
    } else {
        eprintln!("haproxy not installed: ringlb only");
    }
    ours
}

fn paced_text(front: SocketAddr, path: &str) -> String {
    let r = http_get(front, path, &[]).expect("response");
    std::thread::sleep(Duration::from_millis(4));
    if r.status == 200 && path == "/rate" {
        format!("{} {}", r.status, r.text())
    } else {
        r.status.to_string()
    }
}

/// 4xx answers (the server's and the rules' own) count into `http_err_rate`; `src_*` fetches
/// and the `table_*` converter read the same entry as `sc_*`.
#[test]
fn http_errors_and_src_and_table_reads() {
    let seen = differential(
        "    stick-table type ip size 1k expire 30s store http_req_rate(10s),http_err_rate(10s)\n    http-request track-sc0 src\n    http-request deny deny_status 429 if { sc_http_err_rate(0) gt 3 } !{ path /rate }\n    http-request return status 200 content-type text/plain lf-string \"req=%[src_http_req_rate] conv=%[src,table_http_req_rate(fe)] err=%[sc_http_err_rate(0)]\" if { path /rate }",
        |front| {
            let mut v: Vec<String> = (0..4).map(|_| paced_text(front, "/status/404")).collect();
            v.push(paced_text(front, "/"));
            v.push(paced_text(front, "/"));
            v.push(paced_text(front, "/rate"));
            v
        },
    );
    // Four 404s from the server (the fourth passes: 3 is not above 3), then refused; the
    // 429s count as errors too. `src_*` and the converter read the entry `sc0` tracks.
    assert_eq!(
        seen,
        [
            "404",
            "404",
            "404",
            "404",
            "429",
            "429",
            "200 req=7 conv=7 err=6"
        ]
    );
}

#[test]
fn bytes_out_rate_and_gpc0_marking() {
    let seen = differential(
        "    stick-table type ip size 1k expire 30s store bytes_out_rate(10s),gpc0\n    http-request track-sc0 src\n    http-request deny deny_status 403 if { sc_get_gpc0(0) gt 0 }\n    http-request sc-inc-gpc0(0) if { path /mark }\n    http-request deny deny_status 429 if { sc_bytes_out_rate(0) gt 200000 }",
        |front| {
            ["/size/150000", "/size/150000", "/", "/mark", "/"]
                .iter()
                .map(|p| paced_text(front, p))
                .collect()
        },
    );
    // 300 kB sent within the period: refused; `sc-inc-gpc0` then marks the client and the
    // gpc0 rule refuses it first.
    assert_eq!(seen, ["200", "200", "429", "429", "403"]);
}

/// `tcp-request connection track-sc0 src` counts connections: `conn_cur` is held for the
/// whole keep-alive connection, `tcp-request connection reject` closes at once, and every
/// request on a tracked connection counts into `http_req_rate`. Same as haproxy.
#[test]
fn tcp_request_connection_tracking_counts_connections() {
    let seen = differential(
        "    stick-table type ip size 1k expire 30s store conn_cur,conn_cnt,sess_cnt,http_req_rate(10s)\n    tcp-request connection track-sc0 src\n    tcp-request connection reject if { sc_conn_cur(0) gt 2 }\n    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 6 }\n    http-response set-header x-sc \"%[sc_conn_cnt(0)] %[sc_sess_cnt(0)]\"",
        |front| {
            let mut seen = Vec::new();
            let mut held: Vec<Conn> = (0..2)
                .map(|_| {
                    let mut c = Conn::connect(front).unwrap();
                    c.set_timeout(T).unwrap();
                    seen.push(c.get("/").unwrap().status.to_string());
                    c
                })
                .collect();
            std::thread::sleep(Duration::from_millis(50));
            // A third connection while two are open: rejected without a response.
            seen.push(match http_get(front, "/", &[]) {
                Ok(r) => r.status.to_string(),
                Err(_) => "closed".into(),
            });
            for _ in 0..3 {
                for c in &mut held {
                    let r = c.get("/").unwrap();
                    seen.push(format!("{} {}", r.status, r.header("x-sc").unwrap_or("-")));
                    std::thread::sleep(Duration::from_millis(4));
                }
            }
            drop(held);
            std::thread::sleep(Duration::from_millis(50));
            seen.push(paced_text(front, "/"));
            seen
        },
    );
    // The readiness probe (a connection closed without a request) counts as a request, as in
    // haproxy 2.6; then 2 requests, 3 more pass (6 is not above 6). The rejected connection
    // counts a connection but no session and no request: 4 connections, 3 sessions.
    assert_eq!(
        seen,
        [
            "200", "200", "closed", "200 4 3", "200 4 3", "200 4 3", "429 -", "429 -", "429 -",
            "429"
        ]
    );
}

/// `mode tcp`: `tcp-request connection track-sc0 src` and `reject if { sc_conn_cur(0) gt 2 }`
/// allow two concurrent connections per client across both shards; a third is closed at
/// once; after one closes, a new one is accepted again.
#[test]
fn tcp_mode_conn_cur_limit_across_shards() {
    use std::io::{Read, Write};
    let echo = Origin::start_echo_tcp("stick-echo");
    let dir = TempDir::new("stick-tcp");
    let front = free_addr();
    let cfg = format!(
        "global\n    nbthread 2\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\nlisten echo\n    bind {front}\n    stick-table type ip size 1k expire 30s store conn_cur\n    tcp-request connection track-sc0 src\n    tcp-request connection reject if {{ sc_conn_cur(0) gt 2 }}\n    server e1 {}\n",
        echo.addr()
    );
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[front]);
    let echo_ok = |s: &mut std::net::TcpStream| -> bool {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if s.write_all(b"ping").is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).is_ok() && &buf == b"ping"
    };
    std::thread::sleep(Duration::from_millis(50));
    let mut held: Vec<std::net::TcpStream> = Vec::new();
    for _ in 0..2 {
        let mut s = std::net::TcpStream::connect(front).unwrap();
        assert!(echo_ok(&mut s));
        held.push(s);
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(front).unwrap();
        assert!(
            !echo_ok(&mut s),
            "a third concurrent connection must be refused"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    held.pop();
    std::thread::sleep(Duration::from_millis(50));
    let mut s = std::net::TcpStream::connect(front).unwrap();
    assert!(echo_ok(&mut s));
}

/// `http-response track-sc0` counts the request and a connection on the entry, as haproxy
/// 2.6 does (recorded), and holds it for the request only.
#[test]
fn http_response_tracking_matches_haproxy() {
    let seen = differential(
        "    stick-table type ip size 1k expire 30s store http_req_cnt,conn_cnt,conn_cur\n    http-response track-sc0 src\n    http-response set-header x-sc \"%[sc_http_req_cnt(0)] %[sc_conn_cnt(0)] %[sc_conn_cur(0)]\"",
        |front| {
            (0..3)
                .map(|_| {
                    let r = http_get(front, "/", &[]).expect("response");
                    std::thread::sleep(Duration::from_millis(4));
                    format!("{} {}", r.status, r.header("x-sc").unwrap_or("-"))
                })
                .collect()
        },
    );
    assert_eq!(seen, ["200 1 1 1", "200 2 2 1", "200 3 3 1"]);
}

/// With `http-request track-sc0` (the guide's rule), `conn_cur` counts requests in flight, not
/// open connections, and `conn_cnt` counts requests: three idle keep-alive connections do not
/// add up, exactly as in haproxy 2.6 (the guide's "concurrent connections" comment holds for
/// `tcp-request connection` tracking).
#[test]
fn http_request_tracking_conn_cur_counts_requests_in_flight_like_haproxy() {
    let seen = differential(
        "    stick-table type ip size 1k expire 30s store conn_cur,conn_cnt,http_req_cnt\n    http-request track-sc0 src\n    http-request return status 200 content-type text/plain lf-string \"cur=%[sc_conn_cur(0)] cnt=%[sc_conn_cnt(0)] req=%[sc_http_req_cnt(0)]\"",
        |front| {
            let mut conns: Vec<Conn> = (0..3)
                .map(|_| {
                    let c = Conn::connect(front).unwrap();
                    c.set_timeout(T).unwrap();
                    c
                })
                .collect();
            let mut seen = Vec::new();
            for _ in 0..2 {
                for c in &mut conns {
                    seen.push(c.get("/").unwrap().text());
                    std::thread::sleep(Duration::from_millis(4));
                }
            }
            seen
        },
    );
    let want: Vec<String> = (1..=6).map(|i| format!("cur=1 cnt={i} req={i}")).collect();
    assert_eq!(seen, want);
}

#[test]
fn http_request_tracking_counts_http2_streams_too() {
    let origin = ringlb_testkit::Origin::start("o");
    let dir = ringlb_testkit::TempDir::new("stick-h2");
    let front = ringlb_testkit::free_addr();
    let cfg = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front} proto h2\n    stick-table type ip size 1k expire 30s store http_req_rate(10s)\n    http-request track-sc0 src\n    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 3 }}\n    default_backend be\nbackend be\n    server s1 {}\n",
        origin.addr()
    );
    let path = ringlb_testkit::write_config(&dir, &cfg);
    let _p = ringlb_testkit::Ringlb::start(&path, &[front]);
    // Six streams, one after the other, on one HTTP/2 connection.
    let url = format!("http://{front}/");
    let out = ringlb_testkit::run_bounded(
        std::process::Command::new("h2load").args(["-n", "6", "-c", "1", "-m", "1", &url]),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("status codes: 3 2xx, 0 3xx, 3 4xx, 0 5xx"),
        "{text}"
    );
}

/// `show table` on the runtime socket merges what every shard owns.
#[test]
fn show_table_on_the_runtime_socket_merges_the_shards() {
    let origin = ringlb_testkit::Origin::start("o");
    let dir = ringlb_testkit::TempDir::new("stick-show");
    let front = ringlb_testkit::free_addr();
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {} level admin\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    stick-table type ip size 1k expire 30s store http_req_cnt,http_req_rate(10s)\n    http-request track-sc0 src\n    default_backend be\nbackend be\n    server s1 {}\n",
        sock.display(),
        origin.addr()
    );
    let path = ringlb_testkit::write_config(&dir, &cfg);
    let _p = ringlb_testkit::Ringlb::start(&path, &[front]);
    for _ in 0..7 {
        let mut c = ringlb_testkit::Conn::connect(front).unwrap();
        assert_eq!(c.get("/").unwrap().status, 200);
    }
    let cli = |cmd: &str| {
        let out = ringlb_testkit::run_bounded(
            std::process::Command::new("sh").arg("-c").arg(format!(
                "echo '{cmd}' | socat -t 2 stdio UNIX-CONNECT:{}",
                sock.display()
            )),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut text = String::new();
    assert!(
        ringlb_testkit::wait_until(std::time::Duration::from_secs(5), || {
            text = cli("show table fe");
            text.contains("http_req_cnt=7")
        }),
        "{text}"
    );
    assert!(
        text.starts_with("# table: fe, type: ip, size:1024, used:1\n"),
        "{text}"
    );
    assert!(text.contains(" key=127.0.0.1 "), "{text}");
    assert!(text.ends_with("\n\n"), "{text:?}");
    assert_eq!(cli("show table fe key 10.9.9.9"), "\n");
    assert_eq!(cli("show table nope"), "No such table\n\n");
    assert_eq!(
        cli("show table"),
        "# table: fe, type: ip, size:1024, used:1\n\n"
    );
    let filtered = cli("show table fe data.http_req_cnt gt 100");
    assert_eq!(filtered, "# table: fe, type: ip, size:1024, used:1\n\n");
}

/// One command on the runtime socket, as `echo CMD | socat stdio UNIX-CONNECT:SOCK`.
fn socat(sock: &std::path::Path, cmd: &str) -> String {
    let out = ringlb_testkit::run_bounded(
        std::process::Command::new("sh").arg("-c").arg(format!(
            "echo '{cmd}' | socat -t 2 stdio UNIX-CONNECT:{}",
            sock.display()
        )),
        Duration::from_secs(10),
    )
    .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `set table` and `clear table` reach every shard: a rate set on the socket makes the guide's
/// deny rule refuse the next requests whichever shard takes them; clearing the key lets them
/// through again; data filters and a full clear remove what they select. Error texts are
/// haproxy 2.6's (recorded with `tests/fixtures/record_table_cli.sh`).
#[test]
fn set_and_clear_table_on_the_runtime_socket_reach_every_shard() {
    let origin = ringlb_testkit::Origin::start("o");
    let dir = ringlb_testkit::TempDir::new("stick-set-clear");
    let front = ringlb_testkit::free_addr();
    let admin = dir.join("admin.sock");
    let user = dir.join("user.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {} level admin\n    stats socket {} level user\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    stick-table type ip size 1k expire 30s store http_req_cnt,http_req_rate(10s),gpc0\n    http-request track-sc0 src\n    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 20 }}\n    default_backend be\nbackend be\n    server s1 {}\n",
        admin.display(),
        user.display(),
        origin.addr()
    );
    let path = ringlb_testkit::write_config(&dir, &cfg);
    let _p = ringlb_testkit::Ringlb::start(&path, &[front]);
    for _ in 0..3 {
        assert_eq!(paced(front, "/"), 200);
    }
    assert_eq!(
        socat(&admin, "set table fe key 127.0.0.1 data.http_req_rate 50"),
        "\n"
    );
    // New connections land on both shards: every one sees the rate at once.
    for i in 0..6 {
        assert_eq!(status(front, "/"), 429, "request {i} after set table");
    }
    let shown = socat(&admin, "show table fe key 127.0.0.1");
    assert!(shown.contains(" http_req_rate(10000)=5"), "{shown}");
    assert_eq!(socat(&admin, "clear table fe key 127.0.0.1"), "\n");
    assert_eq!(
        socat(&admin, "show table fe"),
        "# table: fe, type: ip, size:1024, used:0\n\n"
    );
    for i in 0..6 {
        assert_eq!(paced(front, "/"), 200, "request {i} after clear table");
    }
    // Data filters select on the owner's values; a full clear takes everything idle.
    socat(&admin, "set table fe key 10.1.1.1 data.gpc0 3");
    socat(
        &admin,
        "set table fe key 10.1.1.2 data.gpc0 1 data.http_req_cnt 7",
    );
    assert_eq!(socat(&admin, "clear table fe data.gpc0 eq 3"), "\n");
    let left = socat(&admin, "show table fe");
    assert!(!left.contains("key=10.1.1.1 "), "{left}");
    assert!(
        left.contains("key=10.1.1.2 use=0 exp=") && left.contains(" gpc0=1 http_req_cnt=7 "),
        "{left}"
    );
    assert!(left.contains("used:2\n"), "{left}");
    // Below operator level haproxy neither dumps nor clears, and refuses to set.
    assert_eq!(
        socat(&user, "show table fe"),
        "# table: fe, type: ip, size:1024, used:2\n# contents not dumped due to insufficient privileges\n\n"
    );
    assert_eq!(socat(&user, "clear table fe"), "\n");
    assert_eq!(
        socat(&user, "set table fe key 10.1.1.9 data.gpc0 1"),
        "Permission denied\n\n"
    );
    assert!(socat(&admin, "show table fe").contains("used:2\n"));
    assert_eq!(socat(&admin, "clear table fe"), "\n");
    assert_eq!(
        socat(&admin, "show table fe"),
        "# table: fe, type: ip, size:1024, used:0\n\n"
    );
    // Errors, as haproxy 2.6 prints them.
    for (cmd, want) in recorded(include_str!("fixtures/table_cli.txt")) {
        assert_eq!(socat(&admin, &cmd), want, "{cmd}");
    }
}

/// `(command, answer)` pairs of a recording: a `> command` line, then the answer's lines.
fn recorded(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        match line.strip_prefix("> ") {
            Some(cmd) => out.push((cmd.trim_end().to_string(), String::new())),
            None => {
                if let Some((_, answer)) = out.last_mut() {
                    answer.push_str(line);
                }
            }
        }
    }
    out
}
