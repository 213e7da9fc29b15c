//! `show info` and `show stat` of ringlb against haproxy 2.6, field by field (issue #10). The
//! real binaries run the same configuration (no global `maxconn`, so both derive it from the
//! open-files limit; frontends, a TCP frontend, a `listen`, checks, backup, disabled and
//! `maxconn` servers, `option socket-stats`), take the same traffic, and their full outputs
//! are compared: every field must be equal except those in [`INFO_MASK`] and [`STAT_MASK`],
//! which say why each cannot be. ringlb's extra `show stat` columns ([`RINGLB_COLUMNS`]) must
//! come after all of haproxy's, so scripts that read columns by position or by name keep
//! working.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, haproxy_required, http_get, runtime_command, wait_until, ChildGuard, Haproxy,
    Origins, Ringlb, TempDir,
};

const WAIT: Duration = Duration::from_secs(10);

/// `show info` fields that cannot be equal, and why.
const INFO_MASK: &[&str] = &[
    // Product identity: ringlb names itself and its own version, date and build (the date
    // must be one, in haproxy's form: checked apart).
    "Name",
    "Version",
    "Release_date",
    "Build info",
    // Process identity and start time: two different processes.
    "Pid",
    "Uptime",
    "Uptime_sec",
    "Start_time_sec",
    // Memory pools: haproxy's pool allocator has no counterpart in ringlb's allocator.
    "PoolAlloc_MB",
    "PoolUsed_MB",
    "PoolAlloc_bytes",
    "PoolUsed_bytes",
    // Scheduler internals sampled at the instant of the command: haproxy's task objects
    // (one per check, listener task, idle-connection task...) and run queue have no
    // one-to-one counterpart in ringlb's executors; idle time depends on the machine's load.
    "Tasks",
    "Run_queue",
    "Idle_pct",
    // Bytes sent, runtime-socket answers included: ringlb's `show stat` has more columns and
    // the test polls each process a different number of times (the runtime-socket part is
    // checked by `cli_connections_count_as_haproxy_counts`); its rate over one second.
    "TotalBytesOut",
    "BytesOutRate",
];

/// `show stat` columns that cannot be equal, and why: each is a duration or a per-second
/// rate, measured on a clock the two processes do not share, or a peak that depends on it.
const STAT_MASK: &[&str] = &[
    // Peak sessions of back-to-back connections: a client that connects again while the
    // proxy still closes its previous connection finds both counted, in either process
    // (compared for known traffic in `h1_counters_and_smax_match_haproxy_for_known_traffic`,
    // which waits for each close). So is a server's estimated need of connections, its
    // peak of connections in use.
    "smax",
    "need_conn_est",
    // Seconds since the last state change / last session: when each process started and
    // when the requests happened to land.
    "lastchg",
    "lastsess",
    // Check and request timings.
    "check_duration",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "qtime_max",
    "ctime_max",
    "rtime_max",
    "ttime_max",
    // Rates over a sliding one-second window: depend on which second the requests fell in.
    "rate",
    "rate_max",
    "req_rate",
    "req_rate_max",
    "conn_rate",
    "conn_rate_max",
];

/// Known gaps, not inherent: engine counters (`crates/shard`) that do not count what
/// haproxy counts yet. Each stays listed until the engine fixes it. (`CumConns` and `CumReq`
/// are compared: both count the readiness probes, every stream, TCP ones included, and each
/// health-check run in `CumConns`; the config checks once a minute so that both ran one.)
const INFO_GAPS: &[&str] = &[];

/// Known `show stat` gaps (engine counters), as [`INFO_GAPS`]. (`bin`/`bout` are compared:
/// both count a message's HTX size, `ringlb_http1::htx`; so are the failed request, 400, of
/// each readiness probe, an empty connection, in `ereq`, `hrsp_4xx` and `req_tot`.)
const STAT_GAPS: &[&str] = &[
    // Idle server connections, and so the backend's open HTTP/1 connections: haproxy keeps
    // fewer after `Connection: close` clients (which idle connection it keeps depends on
    // the thread each connection landed on, and on the process-wide counts of connections
    // in use and idle: ringlb's pools are per shard).
    "srv_icur",
    "idle_conn_cur",
    "h1_open_connections",
];

/// Columns ringlb adds after haproxy's (latency percentiles from its histograms).
const RINGLB_COLUMNS: &[&str] = &[
    "qtime_p50_us",
    "qtime_p90_us",
    "qtime_p99_us",
    "qtime_p999_us",
    "ctime_p50_us",
    "ctime_p90_us",
    "ctime_p99_us",
    "ctime_p999_us",
    "rtime_p50_us",
    "rtime_p90_us",
    "rtime_p99_us",
    "rtime_p999_us",
    "ttime_p50_us",
    "ttime_p90_us",
    "ttime_p99_us",
    "ttime_p999_us",
];

struct Proxy {
    _dir: TempDir,
    _child: ChildGuard,
    fronts: [SocketAddr; 3],
    sock: PathBuf,
    /// Runtime-socket connections this test opened (both count them in `CumConns` and
    /// `CumReq`; the test polls each process a different number of times).
    cli: std::cell::Cell<u64>,
}

impl Proxy {
    fn command(&self, cmd: &str) -> String {
        self.cli.set(self.cli.get() + 1);
        runtime_command(&self.sock, cmd).unwrap()
    }
}

fn config(sock: &Path, fronts: &[SocketAddr; 3], o: &[SocketAddr]) -> String {
    format!(
        "global\n    nbthread 2\n    stats socket {sock} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {f0}\n    option socket-stats\n    default_backend be\n\
         frontend fe_tcp\n    mode tcp\n    bind {f1}\n    maxconn 300\n    default_backend be_tcp\n\
         backend be\n    balance roundrobin\n\
         \x20   server s1 {o0} check inter 1m weight 5 maxconn 20\n\
         \x20   server s3 {o0} backup\n\
         \x20   server s4 {o1} disabled\n\
         backend be_tcp\n    mode tcp\n    fullconn 50\n    server t1 {o0}\n\
         backend be_orphan\n    server x1 {o0} maxqueue 7\n\
         listen li\n    bind {f2}\n    balance leastconn\n    server l1 {o1}\n",
        sock = sock.display(),
        f0 = fronts[0],
        f1 = fronts[1],
        f2 = fronts[2],
        o0 = o[0],
        o1 = o[1],
    )
}

fn start(haproxy: bool, origins: &[SocketAddr]) -> Proxy {
    start_with(haproxy, |sock, fronts| config(sock, fronts, origins))
}

/// Starts haproxy or ringlb on the configuration `config` writes for the runtime socket and
/// the three bind addresses it is given.
fn start_with(haproxy: bool, config: impl Fn(&Path, &[SocketAddr; 3]) -> String) -> Proxy {
    let dir = TempDir::new(if haproxy {
        "infodiff-hx"
    } else {
        "infodiff-rl"
    });
    let fronts = [free_addr(), free_addr(), free_addr()];
    let sock = dir.join("admin.sock");
    let path = dir.join("proxy.cfg");
    std::fs::write(&path, config(&sock, &fronts)).unwrap();
    let child = if haproxy {
        Haproxy::start(&path, &fronts)
    } else {
        Ringlb::start(&path, &fronts)
    };
    let p = Proxy {
        _dir: dir,
        _child: child,
        fronts,
        sock,
        cli: std::cell::Cell::new(0),
    };
    // The runtime socket may be bound a moment after the listeners: count only the
    // connections that reached it.
    let up = wait_until(WAIT, || {
        let ok = runtime_command(&p.sock, "show cli level").is_ok();
        p.cli.set(p.cli.get() + u64::from(ok));
        ok
    });
    assert!(up, "{} does not answer", p.sock.display());
    p
}

/// The same traffic for both: 6 GETs through `fe`, 2 through the TCP frontend, 3 through
/// the `listen`, each on its own connection. The readiness probes of `start` (a connect and
/// close on each bind) came first, in both.
fn traffic(p: &Proxy) {
    for (front, n) in [(p.fronts[0], 6), (p.fronts[1], 2), (p.fronts[2], 3)] {
        for _ in 0..n {
            let r = http_get(front, "/", &[]).unwrap();
            assert_eq!(r.status, 200);
        }
    }
}

/// `show info` as (field, value) in output order; `CumConns` and `CumReq` without the
/// test's own runtime-socket connections (this one included).
fn info(p: &Proxy) -> Vec<(String, String)> {
    let out = p.command("show info");
    let cli = p.cli.get();
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or((l.trim_end_matches(':'), ""));
            let v = match k {
                "CumConns" | "CumReq" => {
                    let n: u64 = v.parse().unwrap();
                    assert!(
                        n >= cli,
                        "{k} {n} leaves out the runtime-socket connections"
                    );
                    (n - cli).to_string()
                }
                _ => v.to_string(),
            };
            (k.to_string(), v)
        })
        .collect()
}

/// `show stat`: the header's column names and each row's values by (pxname, svname).
fn stat(p: &Proxy) -> (Vec<String>, Vec<Vec<String>>) {
    let out = p.command("show stat");
    let mut lines = out.lines().filter(|l| !l.is_empty());
    let header = lines.next().unwrap();
    let cols = header
        .trim_start_matches("# ")
        .trim_end_matches(',')
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (cols, rows)
}

/// Waits until the checked server's first check completed in `p` (both processes must show
/// a finished check, not `INI`).
fn wait_checked(p: &Proxy) {
    let done = wait_until(WAIT, || {
        let (cols, rows) = stat(p);
        let i = cols.iter().position(|c| c == "check_status").unwrap();
        rows.iter()
            .any(|r| r[0] == "be" && r[1] == "s1" && r[i].trim_start_matches("* ") == "L4OK")
    });
    assert!(done, "the first health check of be/s1 did not complete");
}

#[test]
fn show_info_and_show_stat_match_haproxy_field_by_field() {
    if !haproxy_required() {
        return;
    }
    let origins = Origins::start(2);
    let o = origins.addrs();
    let hx = start(true, &o);
    let rl = start(false, &o);
    for p in [&hx, &rl] {
        wait_checked(p);
        traffic(p);
    }
    // Wait until both accounted the last connections as closed (`scur` 0 everywhere).
    for p in [&hx, &rl] {
        let idle = wait_until(WAIT, || {
            let (cols, rows) = stat(p);
            let i = cols.iter().position(|c| c == "scur").unwrap();
            rows.iter().all(|r| r[i].is_empty() || r[i] == "0")
        });
        assert!(idle, "connections still open");
    }

    // show info: same fields, same order, same values outside the mask.
    let (hi, ri) = (info(&hx), info(&rl));
    // Release_date: a date in haproxy's form (`2026/10/17`), not the same one.
    let date = |v: &[(String, String)]| {
        let (_, d) = v.iter().find(|(k, _)| k == "Release_date").unwrap();
        d.clone()
    };
    for d in [date(&hi), date(&ri)] {
        let b = d.as_bytes();
        assert!(
            b.len() == 10
                && b[4] == b'/'
                && b[7] == b'/'
                && d.split('/').all(|p| p.bytes().all(|c| c.is_ascii_digit())),
            "Release_date {d:?}"
        );
    }
    let names = |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ri), names(&hi), "show info field names and order");
    let mut diffs = Vec::new();
    for ((k, h), (_, r)) in hi.iter().zip(&ri) {
        if !INFO_MASK.contains(&k.as_str()) && !INFO_GAPS.contains(&k.as_str()) && h != r {
            diffs.push(format!("{k}: haproxy '{h}', ringlb '{r}'"));
        }
    }

    // show stat: haproxy's columns first, in order, then ringlb's own.
    let (hc, hrows) = stat(&hx);
    let (rc, rrows) = stat(&rl);
    assert_eq!(
        rc[..hc.len()],
        hc[..],
        "show stat: haproxy's columns, in order"
    );
    assert_eq!(rc[hc.len()..], *RINGLB_COLUMNS, "ringlb's extra columns");
    let key = |r: &Vec<String>| (r[0].clone(), r[1].clone());
    let hmap: BTreeMap<_, _> = hrows.iter().map(|r| (key(r), r)).collect();
    let rmap: BTreeMap<_, _> = rrows.iter().map(|r| (key(r), r)).collect();
    assert_eq!(
        rrows.iter().map(key).collect::<Vec<_>>(),
        hrows.iter().map(key).collect::<Vec<_>>(),
        "show stat rows and their order"
    );
    for (k, h) in &hmap {
        let r = rmap[k];
        for (i, col) in hc.iter().enumerate() {
            if STAT_MASK.contains(&col.as_str()) || STAT_GAPS.contains(&col.as_str()) {
                continue;
            }
            // A listener's address: each process listens on its own ports.
            if col == "addr" && k.1.starts_with("sock-") {
                continue;
            }
            let (hv, rv) = (h.get(i), r.get(i));
            if hv != rv {
                diffs.push(format!(
                    "{}/{} {col}: haproxy '{}', ringlb '{}'",
                    k.0,
                    k.1,
                    hv.map_or("<none>", |s| s),
                    rv.map_or("<none>", |s| s)
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}

/// Each runtime-socket connection is one more `CumConns` and `CumReq` in both, `Jobs` counts
/// the connection asking, and what the socket sends counts in `TotalBytesOut`.
#[test]
fn cli_connections_count_as_haproxy_counts() {
    if !haproxy_required() {
        return;
    }
    let origins = Origins::start(2);
    let o = origins.addrs();
    let field = |p: &Proxy, name: &str| -> u64 {
        let out = p.command("show info");
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap();
        line[name.len() + 2..].parse().unwrap()
    };
    let mut seen = Vec::new();
    for haproxy in [true, false] {
        let p = start(haproxy, &o);
        // The readiness probes of `start` may still be on their way into the counters.
        let mut last = field(&p, "CumConns");
        assert!(wait_until(WAIT, || {
            let now = field(&p, "CumConns");
            std::mem::replace(&mut last, now) + 1 == now
        }));
        let c0 = field(&p, "CumConns");
        let r0 = field(&p, "CumReq");
        let c1 = field(&p, "CumConns");
        let r1 = field(&p, "CumReq");
        // Jobs: the listeners and the connection asking (haproxy may still be closing the
        // previous ones for a moment).
        let one_job = wait_until(WAIT, || {
            let out = p.command("show info");
            let get = |name: &str| -> u64 {
                let l = out.lines().find(|l| l.starts_with(&format!("{name}: ")));
                l.unwrap()[name.len() + 2..].parse().unwrap()
            };
            get("Jobs") == get("Listeners") + 1 && get("Listeners") == 4
        });
        assert!(one_job, "haproxy: {haproxy}");
        // TotalBytesOut grows by what the runtime socket sent.
        let a = p.command("show info");
        let b = p.command("show info");
        let bytes = |out: &str| -> u64 {
            let l = out.lines().find(|l| l.starts_with("TotalBytesOut: "));
            l.unwrap()["TotalBytesOut: ".len()..].parse().unwrap()
        };
        assert_eq!(bytes(&b) - bytes(&a), a.len() as u64, "haproxy: {haproxy}");
        // CumConns read 1, CumReq read 1 connection later, then each read again.
        seen.push((c1 - c0, r1 - r0));
    }
    assert_eq!(seen[0], (2, 2), "haproxy");
    assert_eq!(seen[1], seen[0], "ringlb as haproxy");
}

/// HTTP/2 with prior knowledge on a clear-text HTTP bind (no `proto h2`): haproxy's HTTP/1
/// layer sees the preface and goes on in HTTP/2, and so does ringlb. A request counts its
/// HTX size (absolute URI, `HTTP/2.0`); a connection that sends the preface and SETTINGS and
/// closes before any request head counts only as a session and an `h2` connection, not as a
/// failed request as an empty HTTP/1 connection does.
#[test]
fn h2_prior_knowledge_and_no_head_connections_count_as_haproxy_counts() {
    if !haproxy_required() {
        return;
    }
    let origins = Origins::start(2);
    let o = origins.addrs();
    let cols = [
        "stot",
        "bin",
        "bout",
        "ereq",
        "req_tot",
        "hrsp_2xx",
        "hrsp_4xx",
        "h2_total_connections",
        "h2_open_connections",
        // The HTTP/1 layer took both connections first. (`h1_bytes_in`, what it read before
        // handing over to HTTP/2, depends on how curl's first writes fell into reads.)
        "h1_total_connections",
        "h1_total_streams",
        "h1_bytes_out",
    ];
    let mut seen = Vec::new();
    for haproxy in [true, false] {
        let p = start(haproxy, &o);
        let url = format!("http://{}/h2", p.fronts[0]);
        let out = curl(
            &[
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
                &url,
            ],
            WAIT,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "2 200",
            "haproxy: {haproxy}"
        );
        // The preface and an empty SETTINGS, then close: no request head.
        {
            use std::io::Write as _;
            let mut s = std::net::TcpStream::connect(p.fronts[0]).unwrap();
            s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        let row = || {
            let (c, rows) = stat(&p);
            let r = rows
                .into_iter()
                .find(|r| r[0] == "fe" && r[1] == "FRONTEND")
                .unwrap();
            cols.iter()
                .map(|name| {
                    let i = c.iter().position(|x| x == name).unwrap();
                    format!("{name}={}", r[i])
                })
                .collect::<Vec<_>>()
        };
        // Both connections accounted as closed.
        let idle = wait_until(WAIT, || {
            row().contains(&"h2_open_connections=0".to_string()) && {
                let (c, rows) = stat(&p);
                let i = c.iter().position(|x| x == "scur").unwrap();
                rows.iter().all(|r| r[i].is_empty() || r[i] == "0")
            }
        });
        assert!(idle, "haproxy: {haproxy}: {:?}", row());
        let mut r = row();
        // The server side of the HTTP/2 stream speaks HTTP/1: the backend's `h1` columns.
        r.extend(columns(
            &p,
            ("be", "BACKEND"),
            &[
                "h1_total_connections",
                "h1_total_streams",
                "h1_bytes_in",
                "h1_bytes_out",
            ],
        ));
        seen.push(r);
    }
    assert!(
        seen[0].contains(&"h2_total_connections=2".to_string()),
        "{:?}",
        seen[0]
    );
    assert_eq!(seen[0], seen[1], "haproxy (left), ringlb (right)");
}

/// The named columns of the row (pxname, svname) of `show stat`, as `name=value`.
fn columns(p: &Proxy, row: (&str, &str), names: &[&str]) -> Vec<String> {
    let (c, rows) = stat(p);
    let r = rows
        .into_iter()
        .find(|r| r[0] == row.0 && r[1] == row.1)
        .unwrap_or_else(|| panic!("no row {row:?}"));
    names
        .iter()
        .map(|name| {
            let i = c.iter().position(|x| x == name).unwrap();
            format!("{name}={}", r[i])
        })
        .collect()
}

/// Waits until no session is open in `p` (every `scur` 0).
fn wait_no_session(p: &Proxy) {
    let idle = wait_until(WAIT, || {
        let (cols, rows) = stat(p);
        let i = cols.iter().position(|c| c == "scur").unwrap();
        rows.iter().all(|r| r[i].is_empty() || r[i] == "0")
    });
    assert!(idle, "connections still open");
}

/// The `h1` module's columns (haproxy 2.6's HTTP/1 multiplexer) and `smax` for known
/// traffic over two threads / shards: 3 keep-alive connections of 4 requests each, one
/// after the other; 4 `Connection: close` requests one after the other; then 5 slow
/// requests on 5 connections at once; then a connection reset in the middle of a head. `smax` is checked after the sequential part (1:
/// connections that never overlapped, whichever shard took each, count as one) and after
/// the concurrent one (5 for the frontend, the backend and its server).
#[test]
fn h1_counters_and_smax_match_haproxy_for_known_traffic() {
    if !haproxy_required() {
        return;
    }
    let origins = Origins::start(1);
    let o = origins.addrs()[0];
    let config = |sock: &Path, f: &[SocketAddr; 3]| {
        format!(
            "global\n    nbthread 2\n    stats socket {sock} level admin\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend fe\n    bind {f0}\n    default_backend be\n\
             frontend fe2\n    bind {f1}\n    default_backend be\n\
             frontend fe3\n    bind {f2}\n    default_backend be\n\
             backend be\n    server s1 {o}\n",
            sock = sock.display(),
            f0 = f[0],
            f1 = f[1],
            f2 = f[2],
        )
    };
    let h1 = [
        "h1_open_connections",
        "h1_open_streams",
        "h1_total_connections",
        "h1_total_streams",
        "h1_bytes_in",
        "h1_bytes_out",
    ];
    let rows = [("fe", "FRONTEND"), ("be", "BACKEND"), ("be", "s1")];
    // A server's estimated need of connections is its peak of connections in use.
    let peaks = |row: (&str, &str)| -> &'static [&'static str] {
        if row.1 == "s1" {
            &["smax", "need_conn_est"]
        } else {
            &["smax"]
        }
    };
    let mut seen: Vec<Vec<Vec<String>>> = Vec::new();
    for haproxy in [true, false] {
        let p = start_with(haproxy, config);
        // The readiness probe closed before the traffic (not overlapping it in `smax`).
        wait_no_session(&p);
        let front = p.fronts[0];
        let mut got = Vec::new();
        // Each connection once the proxy closed the previous one (see `traffic`).
        for _ in 0..3 {
            let mut c = ringlb_testkit::Conn::connect(front).unwrap();
            for _ in 0..4 {
                assert_eq!(c.get("/").unwrap().status, 200);
            }
            drop(c);
            wait_no_session(&p);
        }
        for _ in 0..4 {
            assert_eq!(http_get(front, "/", &[]).unwrap().status, 200);
            wait_no_session(&p);
        }
        for row in rows {
            got.push(columns(&p, row, peaks(row)));
        }
        // 5 requests held by the server at the same time (the backend counts them open).
        let slow: Vec<_> = (0..5)
            .map(|_| std::thread::spawn(move || http_get(front, "/slow/800", &[]).unwrap()))
            .collect();
        let all_in = wait_until(WAIT, || {
            columns(&p, ("be", "BACKEND"), &["scur"]) == ["scur=5"]
        });
        assert!(
            all_in,
            "haproxy {haproxy}: the 5 slow requests are not in flight together"
        );
        for t in slow {
            assert_eq!(t.join().unwrap().status, 200);
        }
        wait_no_session(&p);
        for row in rows {
            got.push(columns(&p, row, peaks(row)));
        }
        // A client that resets in the middle of a head: its stream counts and ends.
        {
            use std::io::Write as _;
            let mut c = std::net::TcpStream::connect(front).unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
            std::thread::sleep(Duration::from_millis(100));
            ringlb_testkit::set_linger_zero(&c).unwrap();
        }
        wait_no_session(&p);
        for row in &rows[..2] {
            got.push(columns(&p, *row, &h1));
        }
        seen.push(got);
    }
    let (hx, rl) = (&seen[0], &seen[1]);
    let peaks_seen = |v: &[Vec<String>]| format!("{v:?}");
    assert_eq!(
        peaks_seen(&hx[0..3]),
        r#"[["smax=1"], ["smax=1"], ["smax=1", "need_conn_est=1"]]"#,
        "haproxy"
    );
    assert_eq!(
        peaks_seen(&hx[3..6]),
        r#"[["smax=5"], ["smax=5"], ["smax=5", "need_conn_est=5"]]"#,
        "haproxy"
    );
    // 12 + 4 + 5 requests, each on the backend's own stream; new server connections: one
    // per client connection (`http-reuse safe`: a first request never reuses one).
    assert!(
        hx[7].contains(&"h1_total_streams=21".to_string())
            && hx[7].contains(&"h1_total_connections=12".to_string()),
        "haproxy: {:?}",
        hx[7]
    );
    // The backend's open connections are the idle ones haproxy keeps (see STAT_GAPS).
    let open = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|c| !c.starts_with("h1_open_connections="))
            .cloned()
            .collect()
    };
    assert_eq!(hx[..7], rl[..7], "haproxy (left), ringlb (right)");
    assert_eq!(open(&hx[7]), open(&rl[7]), "haproxy (left), ringlb (right)");
}

/// A connection that half-closes before its first byte reads the 400 haproxy's HTTP/1 layer
/// writes (the bytes `h1_bytes_out` counts for an empty connection), in both.
#[test]
fn half_closed_empty_connection_reads_haproxy_400() {
    use std::io::Read as _;
    if !haproxy_required() {
        return;
    }
    let origins = Origins::start(2);
    let o = origins.addrs();
    let mut seen = Vec::new();
    for haproxy in [true, false] {
        let p = start(haproxy, &o);
        let s = std::net::TcpStream::connect(p.fronts[0]).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        seen.push(String::from_utf8_lossy(&got).into_owned());
    }
    assert!(
        seen[0].starts_with("HTTP/1.1 400 "),
        "haproxy: {:?}",
        seen[0]
    );
    assert_eq!(seen[0], seen[1], "haproxy (left), ringlb (right)");
}

/// Over TLS the `h1` module counts the plaintext, as haproxy's HTTP/1 layer sits above the
/// TLS layer: two requests on one connection of a TLS bind.
#[test]
fn h1_counters_count_plaintext_over_tls_as_haproxy() {
    if !haproxy_required() {
        return;
    }
    let origins = Origins::start(1);
    let o = origins.addrs()[0];
    let certs = TempDir::new("infodiff-tls");
    let ca = ringlb_testkit::TestCa::new(&certs.join("ca"), "ringlb test CA");
    let pem = ca.server("localhost", &certs.join("server.pem")).pem;
    let config = |sock: &Path, f: &[SocketAddr; 3]| {
        format!(
            "global\n    nbthread 2\n    stats socket {sock} level admin\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend fe\n    bind {f0} ssl crt {pem}\n    default_backend be\n\
             frontend fe2\n    bind {f1}\n    default_backend be\n\
             frontend fe3\n    bind {f2}\n    default_backend be\n\
             backend be\n    server s1 {o}\n",
            sock = sock.display(),
            f0 = f[0],
            f1 = f[1],
            f2 = f[2],
            pem = pem.display(),
        )
    };
    let h1 = [
        "h1_total_connections",
        "h1_total_streams",
        "h1_bytes_in",
        "h1_bytes_out",
    ];
    let mut seen = Vec::new();
    for haproxy in [true, false] {
        let p = start_with(haproxy, config);
        wait_no_session(&p);
        let url = format!("https://{}/", p.fronts[0]);
        let out = curl(
            &[
                "-k",
                "--http1.1",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} ",
                &url,
                &url,
            ],
            WAIT,
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200 200 ");
        wait_no_session(&p);
        seen.push(columns(&p, ("fe", "FRONTEND"), &h1));
    }
    assert!(
        seen[0].contains(&"h1_total_streams=2".to_string()),
        "haproxy: {:?}",
        seen[0]
    );
    assert_eq!(seen[0], seen[1], "haproxy (left), ringlb (right)");
}

/// The idle server connection columns with one thread (then haproxy's per-thread lists are
/// its whole pool, as ringlb's one shard's pool is): after sequential `Connection: close`
/// requests (each a new server connection, one kept), keep-alive connections (later
/// requests prove the idle connections safe), 5 concurrent slow requests (the need grows to
/// 5, all kept) and keep-alive connections again, with `http-reuse safe` and `always`.
#[test]
fn idle_connection_columns_match_haproxy_on_one_thread() {
    if !haproxy_required() {
        return;
    }
    let origins = Origins::start(1);
    let o = origins.addrs()[0];
    let cols = [
        "srv_icur",
        "safe_conn_cur",
        "idle_conn_cur",
        "used_conn_cur",
        "need_conn_est",
        "connect",
        "reuse",
    ];
    for reuse in ["safe", "always"] {
        let config = |sock: &Path, f: &[SocketAddr; 3]| {
            format!(
                "global\n    nbthread 1\n    stats socket {sock} level admin\n\
                 defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
                 frontend fe\n    bind {f0}\n    default_backend be\n\
                 frontend fe2\n    bind {f1}\n    default_backend be\n\
                 frontend fe3\n    bind {f2}\n    default_backend be\n\
                 backend be\n    http-reuse {reuse}\n    server s1 {o} pool-purge-delay 1m\n",
                sock = sock.display(),
                f0 = f[0],
                f1 = f[1],
                f2 = f[2],
            )
        };
        let mut seen: Vec<Vec<Vec<String>>> = Vec::new();
        for haproxy in [true, false] {
            let p = start_with(haproxy, config);
            wait_no_session(&p);
            let front = p.fronts[0];
            let mut got = Vec::new();
            let mut snap = |p: &Proxy| {
                let mut v = columns(p, ("be", "s1"), &cols);
                v.extend(columns(p, ("be", "BACKEND"), &["h1_open_connections"]));
                got.push(v);
            };
            for _ in 0..4 {
                assert_eq!(http_get(front, "/", &[]).unwrap().status, 200);
                wait_no_session(&p);
            }
            snap(&p);
            let keep_alive = |p: &Proxy| {
                for _ in 0..3 {
                    let mut c = ringlb_testkit::Conn::connect(front).unwrap();
                    for _ in 0..3 {
                        assert_eq!(c.get("/").unwrap().status, 200);
                    }
                    drop(c);
                    wait_no_session(p);
                }
            };
            keep_alive(&p);
            snap(&p);
            let slow: Vec<_> = (0..5)
                .map(|_| std::thread::spawn(move || http_get(front, "/slow/800", &[]).unwrap()))
                .collect();
            let all_in = wait_until(WAIT, || {
                columns(&p, ("be", "BACKEND"), &["scur"]) == ["scur=5"]
            });
            assert!(
                all_in,
                "haproxy {haproxy}: the slow requests are not in flight together"
            );
            for t in slow {
                assert_eq!(t.join().unwrap().status, 200);
            }
            wait_no_session(&p);
            snap(&p);
            keep_alive(&p);
            snap(&p);
            seen.push(got);
        }
        assert_eq!(
            seen[0], seen[1],
            "http-reuse {reuse}: haproxy (left), ringlb (right)"
        );
    }
}
