//! The runtime socket end to end (issue #10): the real `ringlb` binary with `stats socket`
//! lines, a Rust UNIX/TCP client speaking the CLI protocol, real origins behind two shards, and
//! haproxy 2.6 on the same config as the reference for the outputs both print.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, wait_until, ChildGuard, Haproxy, Origins, Ringlb,
    TempDir,
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// haproxy 2.6's `show stat` header (recorded from `haproxy -f` on a config without TLS; ringlb
/// appends its latency percentiles after these columns).
const HAPROXY_STAT_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

/// Sends `input` on a fresh connection, half-closes, reads until the server closes.
fn cli_raw(sock: &Path, input: &[u8]) -> String {
    let mut s =
        UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(input).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// One command line, as `echo CMD | socat - SOCK`.
fn cli(sock: &Path, cmd: &str) -> String {
    cli_raw(sock, format!("{cmd}\n").as_bytes())
}

fn cli_tcp(addr: SocketAddr, cmd: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

struct Setup {
    _dir: TempDir,
    proxy: ChildGuard,
    front: SocketAddr,
    admin: PathBuf,
    operator: PathBuf,
    user: PathBuf,
    tcp: SocketAddr,
    _origins: Origins,
}

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n";

fn config(dir: &Path, front: SocketAddr, tcp: SocketAddr, servers: &str) -> String {
    format!(
        "global\n    stats socket {d}/admin.sock mode 600 level admin\n    stats socket {d}/operator.sock\n    stats socket {d}/user.sock level user\n    stats socket ipv4@{tcp} level operator\n    stats timeout 3s\n    nbthread 2\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n{servers}",
        d = dir.display()
    )
}

/// ringlb with two origins (`s1`, `s2`) behind backend `be`; `weights` per server.
fn start(name: &str, weights: [u32; 2]) -> Setup {
    let dir = TempDir::new(name);
    let origins = Origins::start(2);
    let front = free_addr();
    let tcp = free_addr();
    let servers = format!(
        "    server s1 {} weight {}\n    server s2 {} weight {}\n",
        origins.get(0).addr(),
        weights[0],
        origins.get(1).addr(),
        weights[1]
    );
    let text = config(dir.path(), front, tcp, &servers);
    let path = dir.join("ringlb.cfg");
    std::fs::write(&path, text).unwrap();
    let proxy = Ringlb::start(&path, &[front, tcp]);
    Setup {
        admin: dir.join("admin.sock"),
        operator: dir.join("operator.sock"),
        user: dir.join("user.sock"),
        _dir: dir,
        proxy,
        front,
        tcp,
        _origins: origins,
    }
}

/// Which origin answered `n` requests, each on a new connection (so both shards serve some).
fn served_by(front: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = http_get(front, "/", &[]).unwrap();
        assert_eq!(r.status, 200);
        let who = r.header("x-origin").unwrap_or("?").to_string();
        *counts.entry(who).or_insert(0) += 1;
    }
    counts
}

/// The rows of `show servers state` without the clock-dependent column (10th).
fn state_rows(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "1")
        .map(|l| {
            let mut f: Vec<&str> = l.split(' ').collect();
            if f.len() > 9 {
                f[9] = "T";
            }
            f.join(" ")
        })
        .collect()
}

#[test]
fn help_info_stat_state_levels_and_errors() {
    let mut s = start("cli-basics", [1, 1]);
    let help = cli(&s.admin, "help");
    assert!(
        help.starts_with("The following commands are valid at this level:\n"),
        "{help}"
    );
    assert!(help.contains("  show servers state [<backend>]"), "{help}");
    assert!(
        help.ends_with("\n\n"),
        "one-shot output ends with the prompt newline"
    );

    let info = cli(&s.operator, "show info");
    assert!(info.starts_with("Name: ringlb\n"), "{info}");
    assert!(info.contains("\nNbthread: 2\n"), "{info}");
    assert!(
        info.contains(&format!("\nPid: {}\n", s.proxy.pid())),
        "{info}"
    );

    let stat = cli_tcp(s.tcp, "show stat");
    let mut lines = stat.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with(HAPROXY_STAT_HEADER), "{header}");
    let ncols = header.trim_start_matches("# ").split(',').count();
    let rows: Vec<Vec<&str>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    let names: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        names,
        vec![
            ("fe", "FRONTEND"),
            ("be", "s1"),
            ("be", "s2"),
            ("be", "BACKEND")
        ]
    );
    for r in &rows {
        assert_eq!(r.len(), ncols, "every row has the header's columns");
    }
    // Requests show up in the counters of the next `show stat` (shards publish on demand);
    // `show stat -1 1 -1` keeps frontends only.
    let stot = |sock: &Path| -> u64 {
        let stat = cli(sock, "show stat -1 1 -1");
        let rows: Vec<&str> = stat.lines().skip(1).filter(|l| !l.is_empty()).collect();
        assert_eq!(rows.len(), 1, "{stat}");
        let fe: Vec<&str> = rows[0].split(',').collect();
        assert_eq!((fe[0], fe[1]), ("fe", "FRONTEND"));
        fe[7].parse().unwrap()
    };
    let before = stot(&s.admin);
    for _ in 0..3 {
        assert_eq!(http_get(s.front, "/", &[]).unwrap().status, 200);
    }
    assert_eq!(stot(&s.admin), before + 3, "stot of the frontend");

    let state = cli(&s.user, "show servers state");
    assert!(
        state.starts_with("1\n# be_id be_name srv_id srv_name"),
        "{state}"
    );
    let rows = state_rows(&state);
    assert_eq!(rows.len(), 2, "{state}");
    assert!(
        rows[0].contains(" be 1 s1 127.0.0.1 2 0 1 1 T "),
        "{}",
        rows[0]
    );

    // Levels: the user socket cannot change anything; the operator socket cannot either for
    // `set server` (admin only, as haproxy).
    assert_eq!(
        cli(&s.user, "set server be/s1 state drain"),
        "Permission denied\n\n"
    );
    assert_eq!(
        cli(&s.operator, "set server be/s1 state drain"),
        "Permission denied\n\n"
    );
    assert_eq!(cli(&s.user, "show cli level"), "user\n\n");
    assert_eq!(cli(&s.admin, "show cli level"), "admin\n\n");

    // Unknown command: haproxy's usage text.
    let unknown = cli(&s.admin, "frobnicate");
    assert!(
        unknown.starts_with(
            "Unknown command, but maybe one of the following ones is a better match:\n"
        ),
        "{unknown}"
    );
    // `show sess` runs (runtime_engine.rs checks its output against haproxy's).
    let sess = cli(&s.admin, "show sess");
    assert!(
        sess.ends_with('\n') && !sess.contains("not supported"),
        "{sess}"
    );
    // No stick table in this process: haproxy's answers for that.
    assert_eq!(cli(&s.admin, "show table"), "\n");
    assert_eq!(cli(&s.admin, "show table be"), "No such table\n\n");
    assert_eq!(cli(&s.admin, "clear table be key 1"), "No such table\n\n");
    // Several commands on one line, answered in order.
    let two = cli(&s.admin, "get weight be/s1; get weight be/s2");
    assert_eq!(two, "1 (initial 1)\n\n1 (initial 1)\n\n");

    // Malformed input: a line longer than the buffer closes the connection; the process lives.
    // (Closing with unread bytes may reset the connection: either way nothing is answered.)
    let long = vec![b'a'; 20_000];
    let mut c = UnixStream::connect(&s.admin).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let t0 = Instant::now();
    let _ = c.write_all(&long);
    let mut out = Vec::new();
    let closed = c.read_to_end(&mut out);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "closed at once, not on the timeout: {closed:?}"
    );
    assert_eq!(out, b"");
    let garbage = cli_raw(&s.admin, b"\xff\xfe\x00\x01 \n");
    assert!(garbage.starts_with("Unknown command"), "{garbage:?}");
    assert!(s.proxy.is_running());
    assert!(cli(&s.admin, "show info").starts_with("Name: ringlb\n"));

    // The way operators call it: `echo ... | socat - SOCKET` (when socat is installed).
    if Path::new("/usr/bin/socat").exists() {
        let script = format!(
            "echo 'set server be/s2 state drain; get weight be/s2' | socat - {}",
            s.admin.display()
        );
        let out = ringlb_testkit::run_bounded(
            std::process::Command::new("sh").args(["-c", &script]),
            IO_TIMEOUT,
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "\n1 (initial 1)\n\n");
        assert_eq!(cli(&s.admin, "set server be/s2 state ready"), "\n");
    }

    // Prompt mode: the connection stays open, each answer ends with "\n> ".
    let out = cli_raw(&s.admin, b"prompt\nget weight be/s2\nquit\n");
    assert_eq!(out, "\n> 1 (initial 1)\n\n> ");

    // `set severity-output` prefixes messages, never dumps.
    assert_eq!(
        cli(
            &s.admin,
            "set severity-output number; set server be/nope state ready; get weight be/s1"
        ),
        "\n[3]: No such server.\n\n1 (initial 1)\n\n"
    );
    // `set timeout cli` replaces `stats timeout` for this session.
    let mut c = UnixStream::connect(&s.admin).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"prompt\nset timeout cli 1\n").unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    c.read_to_end(&mut buf).unwrap();
    let idle = t0.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_millis(2500),
        "closed after {idle:?}"
    );

    // The socket file got its mode.
    let mode = std::fs::metadata(&s.admin).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // `stats timeout 3s`: an idle interactive connection is closed.
    let mut c = UnixStream::connect(&s.admin).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"prompt\n").unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    c.read_to_end(&mut buf).unwrap();
    let idle = t0.elapsed();
    assert!(
        idle >= Duration::from_millis(2500) && idle < Duration::from_secs(8),
        "closed after {idle:?}"
    );
}

#[test]
fn drain_stops_new_requests_on_every_shard_while_in_flight_ones_finish() {
    let s = start("cli-drain", [1, 1]);
    // In flight on both servers before the drain.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let front = s.front;
            std::thread::spawn(move || http_get(front, "/slow/1500", &[]))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cli(&s.admin, "set server be/s1 state drain"), "\n");
    std::thread::sleep(Duration::from_millis(100));
    let after = served_by(s.front, 40);
    assert_eq!(after.get("s1"), None, "drained s1 got requests: {after:?}");
    assert_eq!(after.get("s2"), Some(&40));
    let mut finished = HashMap::new();
    for t in slow {
        let r = t.join().unwrap().expect("in-flight request completes");
        assert_eq!(r.status, 200);
        *finished
            .entry(r.header("x-origin").unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    assert!(
        finished.get("s1").copied().unwrap_or(0) >= 1,
        "an in-flight request on s1 finished: {finished:?}"
    );
    let state = state_rows(&cli(&s.admin, "show servers state be"));
    assert!(
        state[0].contains(" s1 127.0.0.1 2 8 "),
        "FDRAIN: {}",
        state[0]
    );
    let stat = cli(&s.admin, "show stat");
    let s1_status = stat
        .lines()
        .find(|l| l.starts_with("be,s1,"))
        .map(|l| l.split(',').nth(17).unwrap_or("").to_string());
    assert_eq!(s1_status.as_deref(), Some("DRAIN"), "{stat}");

    assert_eq!(cli(&s.admin, "set server be/s1 state ready"), "\n");
    std::thread::sleep(Duration::from_millis(100));
    let back = served_by(s.front, 40);
    assert!(back.get("s1").copied().unwrap_or(0) >= 10, "{back:?}");
    // The board logged both changes the way haproxy does.
    let log = s.proxy.stderr();
    assert!(log.contains("Server be/s1 enters drain state."), "{log}");
}

#[test]
fn weight_maint_and_enable_disable_follow_on_every_shard() {
    let s = start("cli-weight", [100, 100]);
    let before = served_by(s.front, 100);
    let s1 = before.get("s1").copied().unwrap_or(0);
    assert!((30..=70).contains(&s1), "equal weights: {before:?}");

    assert_eq!(cli(&s.admin, "set weight be/s1 10%"), "\n");
    assert_eq!(cli(&s.admin, "get weight be/s1"), "10 (initial 100)\n\n");
    std::thread::sleep(Duration::from_millis(100));
    let after = served_by(s.front, 220);
    let s1 = after.get("s1").copied().unwrap_or(0);
    // 10:100 on each shard: about 9%.
    assert!((5..=45).contains(&s1), "s1 at 10%: {after:?}");

    assert_eq!(cli(&s.admin, "set server be/s1 weight 100"), "\n");
    assert_eq!(cli(&s.admin, "disable server be/s1"), "\n");
    std::thread::sleep(Duration::from_millis(100));
    let off = served_by(s.front, 30);
    assert_eq!(off.get("s1"), None, "{off:?}");
    let state = state_rows(&cli(&s.admin, "show servers state be"));
    assert!(
        state[0].contains(" s1 127.0.0.1 0 1 100 100 "),
        "{}",
        state[0]
    );

    assert_eq!(cli(&s.admin, "enable server be/s1"), "\n");
    std::thread::sleep(Duration::from_millis(100));
    let on = served_by(s.front, 40);
    assert!(on.get("s1").copied().unwrap_or(0) >= 10, "{on:?}");

    // maint through `set server ... state` as well, and health forced down.
    assert_eq!(cli(&s.admin, "set server be/s2 state maint"), "\n");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(served_by(s.front, 20).get("s2"), None);
    assert_eq!(cli(&s.admin, "set server be/s2 state ready"), "\n");
    assert_eq!(cli(&s.admin, "set server be/s2 health down"), "\n");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(served_by(s.front, 20).get("s2"), None);
    assert_eq!(cli(&s.admin, "set server be/s2 health up"), "\n");
    std::thread::sleep(Duration::from_millis(100));
    assert!(served_by(s.front, 20).get("s2").copied().unwrap_or(0) >= 4);

    // A change is visible to the next command of the same line.
    let out = cli(
        &s.admin,
        "set server be/s2 state drain; show servers state be",
    );
    let rows = state_rows(&out);
    assert!(rows[1].contains(" s2 127.0.0.1 2 8 "), "{out}");
    let out = cli(
        &s.admin,
        "set server be/s2 state ready; show servers state be",
    );
    assert!(state_rows(&out)[1].contains(" s2 127.0.0.1 2 0 "), "{out}");

    // Errors are one line, as haproxy's.
    assert_eq!(
        cli(&s.admin, "set weight be/nope 10"),
        "No such server.\n\n"
    );
    assert_eq!(cli(&s.admin, "get weight nope/s1"), "No such backend.\n\n");
}

/// The same commands on haproxy 2.6 and ringlb, same config: `show servers state` (clock
/// column masked) and `get weight` print the same bytes.
#[test]
fn servers_state_and_weights_match_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        eprintln!("haproxy not installed: no comparison");
        return;
    }
    let script = [
        "show servers state",
        "show stat",
        "set server be/s1 state drain",
        "show servers state be",
        "show stat",
        "set weight be/s2 50%",
        "get weight be/s2",
        "set server be/s2 weight 7",
        "get weight be/s2",
        "disable server be/s1",
        "show servers state",
        "show stat",
        "enable server be/s1",
        "set server be/s1 state ready",
        "show servers state be",
        "set weight be/s1 300",
        "get weight be/s3",
        "show servers state nope",
        "show backend",
        "show servers conn be",
        "set server be/s2 health down",
        "show servers state be",
        "show stat",
        "set server be/s2 health up",
        "set server be/s3 health stopping",
        "show servers state be",
        "set server be/s3 health up",
        "set server be/s1 agent up",
        "set maxconn server be/s1 10",
        "set server be/s9 state ready",
        "set server be/s1 state bogus",
        "set weight be/s1",
        "get weight be",
        "show servers state be",
    ];
    let run = |proxy: &str| -> Vec<String> {
        let dir = TempDir::new(&format!("cli-diff-{proxy}"));
        let front = free_addr();
        let tcp = free_addr();
        let servers = "    server s1 127.0.0.1:9 weight 3\n    server s2 127.0.0.1:10 weight 20\n    server s3 127.0.0.1:11 backup\n";
        let text = config(dir.path(), front, tcp, servers);
        let path = dir.join("p.cfg");
        std::fs::write(&path, text).unwrap();
        let _guard = if proxy == "haproxy" {
            Haproxy::start(&path, &[front, tcp])
        } else {
            Ringlb::start(&path, &[front, tcp])
        };
        let sock = dir.join("admin.sock");
        assert!(wait_until(IO_TIMEOUT, || sock.exists()));
        script
            .iter()
            .map(|c| {
                let out = cli(&sock, c);
                if c.starts_with("show servers state") {
                    format!("{c}:\n{}", state_rows(&out).join("\n"))
                } else if *c == "show stat" {
                    // Names, status, weight, act, bck: what scripts read after a change.
                    let rows: Vec<String> = out
                        .lines()
                        .skip(1)
                        .filter(|l| !l.is_empty())
                        .map(|l| {
                            let f: Vec<&str> = l.split(',').collect();
                            [0, 1, 17, 18, 19, 20].map(|i| f[i]).join(",")
                        })
                        .collect();
                    format!("{c}:\n{}", rows.join("\n"))
                } else {
                    format!("{c}:\n{out}")
                }
            })
            .collect()
    };
    let want = run("haproxy");
    let got = run("ringlb");
    assert_eq!(want.len(), got.len());
    assert!(want[1].contains("be,s1,no check,3,1,0"), "{}", want[1]);
    for (w, g) in want.iter().zip(got.iter()) {
        assert_eq!(g, w);
    }
}

/// Health-check columns of `show servers state` once checks settled, against haproxy 2.6: an
/// UP server (L4OK), a DOWN one (L4CON), one in maintenance.
#[test]
fn checked_servers_state_matches_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        eprintln!("haproxy not installed: no comparison");
        return;
    }
    let origins = Origins::start(1);
    let dead = free_addr();
    let run = |proxy: &str| -> Vec<String> {
        let dir = TempDir::new(&format!("cli-chk-{proxy}"));
        let front = free_addr();
        let tcp = free_addr();
        let servers = format!(
            "    server s1 {} check inter 100ms\n    server s2 {dead} check inter 100ms\n    server s3 {} check inter 100ms\n",
            origins.get(0).addr(),
            origins.get(0).addr()
        );
        let text = config(dir.path(), front, tcp, &servers);
        let path = dir.join("p.cfg");
        std::fs::write(&path, text).unwrap();
        let _guard = if proxy == "haproxy" {
            Haproxy::start(&path, &[front, tcp])
        } else {
            Ringlb::start(&path, &[front, tcp])
        };
        let sock = dir.join("admin.sock");
        assert!(wait_until(IO_TIMEOUT, || sock.exists()));
        // After the first checks (they are staggered differently): s3 enters maintenance
        // with a result, which both keep frozen.
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(cli(&sock, "disable server be/s3"), "\n");
        // fall 3 x 100 ms for s2, then margin.
        std::thread::sleep(Duration::from_millis(1200));
        let mut out = settled_rows(&sock);
        out.push(cli(&sock, "get weight be/s2"));
        // `disable health` freezes the state (a DOWN server stays DOWN, haproxy 2.6), the
        // stats show no check; `enable health` resumes the checks.
        let stat_cols = |sock: &Path| -> Vec<String> {
            cli(sock, "show stat")
                .lines()
                .skip(1)
                .filter(|l| l.starts_with("be,s"))
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    // "* L4OK": haproxy marks a check running right now.
                    [1, 17, 18, 36]
                        .map(|i| f[i].trim_start_matches("* "))
                        .join(",")
                })
                .collect()
        };
        out.extend(stat_cols(&sock));
        for (cmd, wait) in [
            ("disable health be/s2", 300),
            ("disable health be/s1", 300),
            ("enable health be/s2", 600),
        ] {
            out.push(cli(&sock, cmd));
            std::thread::sleep(Duration::from_millis(wait));
            out.extend(settled_rows(&sock));
            out.extend(stat_cols(&sock));
        }
        out.push(cli(&sock, "disable agent be/s1"));
        out.push(cli(&sock, "enable agent be/s1"));
        out.push(cli(&sock, "enable agent be/nope"));
        out
    };
    let want = run("haproxy");
    let got = run("ringlb");
    assert!(
        want[0].contains(" s1 127.0.0.1 2 0 1 1 T 6 3 4 6 "),
        "{want:?}"
    );
    assert_eq!(got, want);
}

/// `stats maxconn`: further clients wait (they are not refused) until a slot frees; `uid`/`gid`
/// and `mode` are applied to the socket file.
#[test]
fn maxconn_queues_clients_and_socket_owner_is_applied() {
    let dir = TempDir::new("cli-maxconn");
    let front = free_addr();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let owner = if root { " uid 65534 gid 65534" } else { "" };
    let text = format!(
        "global\n    stats socket {d}/a.sock mode 640{owner} level admin\n    stats maxconn 2\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:9\n",
        d = dir.path().display()
    );
    let path = dir.join("p.cfg");
    std::fs::write(&path, text).unwrap();
    let _proxy = Ringlb::start(&path, &[front]);
    let sock = dir.join("a.sock");
    assert!(wait_until(IO_TIMEOUT, || sock.exists()));
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    if root {
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }
    // Two interactive sessions hold both slots.
    let mut held: Vec<UnixStream> = (0..2)
        .map(|_| {
            let mut c = UnixStream::connect(&sock).unwrap();
            c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            c.write_all(b"prompt\n").unwrap();
            let mut b = [0u8; 3];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"\n> ");
            c
        })
        .collect();
    // A third one is accepted by the kernel but not served yet.
    let mut third = UnixStream::connect(&sock).unwrap();
    third.write_all(b"show cli level\n").unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 16];
    assert!(third.read(&mut b).is_err(), "served beyond stats maxconn");
    // Freeing a slot serves it.
    held.pop().unwrap().write_all(b"quit\n").unwrap();
    third.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut out = String::new();
    third.read_to_string(&mut out).unwrap();
    assert_eq!(out, "admin\n\n");
}

/// Garbage of every shape (binary, payload markers, escapes, floods of `;`, half lines, early
/// closes) never kills the process or wedges the socket.
#[test]
fn garbage_input_never_kills_or_wedges_the_socket() {
    let s = start("cli-garbage", [1, 1]);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 12] = [
        b"show ",
        b"stat ",
        b"set server be/s1 ",
        b"<<",
        b";",
        b"\n",
        b"\\",
        b"\x00\xff",
        b"table ",
        b"prompt\n",
        b"get weight be/s1",
        b"                ",
    ];
    for round in 0..60 {
        let mut input = Vec::new();
        for _ in 0..(next() % 40) {
            input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
        }
        if round % 10 == 0 {
            input.extend(std::iter::repeat_n(b';', 5000));
        }
        let mut c = UnixStream::connect(&s.admin).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let _ = c.write_all(&input);
        if next() % 2 == 0 {
            // Close our side: the session ends after what was complete.
            let _ = c.shutdown(std::net::Shutdown::Write);
            let mut out = Vec::new();
            let _ = c.read_to_end(&mut out);
        }
        drop(c);
    }
    let mut s = s;
    assert!(s.proxy.is_running());
    assert_eq!(cli(&s.admin, "get weight be/s1"), "1 (initial 1)\n\n");
}

/// The guide's deploy flow under load: keep-alive clients send requests without pause while s1
/// is drained, "deployed", checked and readied; no request fails, none starts on s1 while it is
/// drained, and s1 takes traffic again afterwards.
#[test]
fn deploy_flow_under_keep_alive_load_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let s = start("cli-deploy", [1, 1]);
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (front, stop) = (s.front, stop.clone());
            std::thread::spawn(move || {
                // (start, origin) of every request; errors are counted, never retried.
                let mut seen = Vec::new();
                let mut errors = Vec::new();
                let mut conn = ringlb_testkit::Conn::connect(front).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let at = t0.elapsed();
                    match conn.get("/") {
                        Ok(r) if r.status == 200 => {
                            seen.push((at, r.header("x-origin").unwrap_or("?").to_string()));
                        }
                        Ok(r) => errors.push(format!("status {}", r.status)),
                        Err(e) => {
                            errors.push(e.to_string());
                            conn = ringlb_testkit::Conn::connect(front).unwrap();
                        }
                    }
                }
                (seen, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cli(&s.admin, "set server be/s1 state drain"), "\n");
    let drained_at = t0.elapsed();
    std::thread::sleep(Duration::from_millis(700));
    assert!(state_rows(&cli(&s.operator, "show servers state be"))[0].contains(" 2 8 "));
    let readied_at = t0.elapsed();
    assert_eq!(cli(&s.admin, "set server be/s1 state ready"), "\n");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for w in workers {
        let (seen, errors) = w.join().unwrap();
        assert!(errors.is_empty(), "failed requests: {errors:?}");
        all.extend(seen);
    }
    // A request that started 20 ms after the drain answer was sent, and well before the
    // ready command (a client thread on a busy 2-core machine can take a few ms to get its
    // request to the proxy; seen once: started 6 ms before `ready`, served after it), must not
    // reach s1.
    let during: Vec<_> = all
        .iter()
        .filter(|(at, who)| {
            *at > drained_at + Duration::from_millis(20)
                && *at + Duration::from_millis(100) < readied_at
                && who == "s1"
        })
        .collect();
    assert!(during.is_empty(), "s1 served while drained: {during:?}");
    let before = all
        .iter()
        .filter(|(at, w)| *at < drained_at && w == "s1")
        .count();
    let after = all
        .iter()
        .filter(|(at, w)| *at > readied_at + Duration::from_millis(50) && w == "s1")
        .count();
    assert!(
        before > 10 && after > 10,
        "s1 before {before}, after {after}"
    );
}

/// `show servers state be` outside of a running check: haproxy shows a check in progress
/// (`srv_check_state` bit 0x1, result reset) for a moment; read again until none is.
fn settled_rows(sock: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = state_rows(&cli(sock, "show servers state be"));
        let busy = rows.iter().any(|r| {
            r.split(' ')
                .nth(13)
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|v| v & 1 == 1)
        });
        if !busy {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    rows
}

/// Master-worker reloads: the new worker takes the socket path over (the old one keeps serving
/// its own connections until it finishes), so `show info` names the new worker's pid.
#[test]
fn socket_follows_the_worker_across_reloads() {
    let dir = TempDir::new("cli-reload");
    let front = free_addr();
    let tcp = free_addr();
    let text = config(dir.path(), front, tcp, "    server s1 127.0.0.1:9\n");
    let path = dir.join("p.cfg");
    std::fs::write(&path, text).unwrap();
    let mut master = Ringlb::start_args(&["-W", "-f", path.to_str().unwrap()], &[front, tcp]);
    let sock = dir.join("admin.sock");
    let pid_of = |sock: &Path| -> Option<String> {
        UnixStream::connect(sock).ok()?;
        cli(sock, "show info")
            .lines()
            .find_map(|l| l.strip_prefix("Pid: ").map(str::to_string))
    };
    assert!(wait_until(IO_TIMEOUT, || pid_of(&sock).is_some()));
    let first = pid_of(&sock).unwrap();
    assert_ne!(
        first,
        master.pid().to_string(),
        "the worker answers, not the master"
    );
    master.signal(libc::SIGUSR2).unwrap();
    assert!(
        wait_until(IO_TIMEOUT, || pid_of(&sock).is_some_and(|p| p != first)),
        "a new worker serves the socket after the reload"
    );
    assert_eq!(cli(&sock, "get weight be/s1"), "1 (initial 1)\n\n");
}

/// `set server B/S addr IP port P`: new connections of every shard go to the new address (the
/// second origin), pooled ones to the old address are not reused; `show servers state` and
/// `show stat` report it. The answer is haproxy 2.6's (crates/runtime/fixtures/recorded.txt).
#[test]
fn set_server_addr_moves_new_connections_on_every_shard() {
    let s = start("cli-addr", [1, 1]);
    assert_eq!(cli(&s.admin, "set server be/s2 state maint"), "\n");
    let before = served_by(s.front, 10);
    assert_eq!(before.get("s1"), Some(&10), "{before:?}");
    let old = s._origins.get(0).addr();
    let new = s._origins.get(1).addr();
    assert_eq!(
        cli(
            &s.admin,
            &format!("set server be/s1 addr {} port {}", new.ip(), new.port())
        ),
        format!(
            "no need to change the addr, port changed from '{}' to '{}' by 'stats socket command'\n\n",
            old.port(),
            new.port()
        )
    );
    // Keep-alive connections opened before keep their server connection; new ones move.
    let after = served_by(s.front, 20);
    assert_eq!(after.get("s2"), Some(&20), "{after:?}");
    let state = state_rows(&cli(&s.admin, "show servers state be"));
    assert!(
        state[0].contains(" s1 127.0.0.1 ") && state[0].contains(&format!(" {} ", new.port())),
        "{}",
        state[0]
    );
    let stat = cli(&s.admin, "show stat");
    assert!(stat.contains(&format!(",{new},")), "{stat}");
    // Back to the first origin.
    cli(
        &s.admin,
        &format!("set server be/s1 addr 127.0.0.1 port {}", old.port()),
    );
    let back = served_by(s.front, 10);
    assert_eq!(back.get("s1"), Some(&10), "{back:?}");
}

/// `show servers conn`: haproxy 2.6's columns, filled from every shard's pools: idle server
/// connections left by finished requests are counted per shard and in total, none in use.
#[test]
fn show_servers_conn_counts_every_shards_pools() {
    let s = start("cli-conn", [1, 1]);
    // (row, used_cur, idle_cur) per server.
    let idle_total = |out: &str| -> Vec<(String, u32, u32)> {
        out.lines()
            .filter(|l| l.starts_with("be/"))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                assert_eq!(f.len(), 15, "{l}");
                let num = |i: usize| f[i].parse::<u32>().unwrap();
                // idle_cur equals the sum of the per-shard columns, and unsafe + safe.
                assert_eq!(num(12), num(13) + num(14), "{l}");
                assert_eq!(num(12), num(9) + num(10), "{l}");
                (f[0].to_string(), num(6), num(12))
            })
            .collect()
    };
    let before = cli(&s.admin, "show servers conn be");
    assert!(
        before.starts_with("# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[2]\n"),
        "{before}"
    );
    assert!(idle_total(&before).iter().all(|r| r.2 == 0), "{before}");
    served_by(s.front, 20);
    let mut after = String::new();
    assert!(
        wait_until(Duration::from_secs(3), || {
            after = cli(&s.admin, "show servers conn be");
            let rows = idle_total(&after);
            rows.len() == 2 && rows.iter().all(|r| r.2 >= 1 && r.1 == 0)
        }),
        "{after}"
    );
    assert_eq!(
        cli(&s.admin, "show servers conn nobe"),
        "Can't find backend.\n\n"
    );
}

/// After `set server ... addr`, the server's health checks follow it: the old origin going
/// away does not take the server down.
#[test]
fn set_server_addr_moves_health_checks_too() {
    let dir = TempDir::new("cli-addr-check");
    let old = ringlb_testkit::Origin::start("old");
    let new = ringlb_testkit::Origin::start("new");
    let front = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    stats socket {} level admin\n    nbthread 2\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {} check inter 100ms fall 2 rise 1\n",
        sock.display(),
        old.addr()
    );
    let path = dir.join("ringlb.cfg");
    std::fs::write(&path, cfg).unwrap();
    let _proxy = Ringlb::start(&path, &[front]);
    assert_eq!(served_by(front, 4).get("old"), Some(&4));
    let out = cli(
        &sock,
        &format!("set server be/s1 addr 127.0.0.1 port {}", new.addr().port()),
    );
    assert!(out.contains("port changed from"), "{out}");
    drop(old);
    // Several check intervals with the old origin gone.
    std::thread::sleep(Duration::from_millis(600));
    let state = state_rows(&cli(&sock, "show servers state be"));
    assert!(state[0].contains(" s1 127.0.0.1 2 0 "), "{}", state[0]);
    assert_eq!(served_by(front, 4).get("new"), Some(&4));
}
