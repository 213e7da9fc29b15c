//! `resolvers` (DNS for servers), the same configuration under haproxy 2.6 and ringlb side
//! by side, both asking one tiny DNS server inside this test (UDP on 127.0.0.1, answers
//! written byte by byte here, the record changed while they run). Two origins listen on
//! 127.0.0.2 and 127.0.0.3 with the same port; the A record says which one is `app.internal`.
//!
//! One flow: `init-addr none` with an NXDOMAIN record (both start in "MAINT (resolution)",
//! no address, 503) → the record appears (traffic to 127.0.0.2) → it changes (traffic moves
//! to 127.0.0.3) → NXDOMAIN past `hold nx` (503, MAINT, address forgotten), with
//! `show stat`, `show servers state` and `show resolvers` compared at each step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, free_port, haproxy_available, http_get, runtime_command, wait_until, write_config,
    ChildGuard, Haproxy, Origin, OriginOptions, Ringlb, StatCsv, TempDir,
};

/// Every wait for the proxies to follow the record (timeout resolve 500ms, hold nx 1s).
const FOLLOW: Duration = Duration::from_secs(15);

/// What the fake DNS server says about `app.internal`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Record {
    A(Vec<Ipv4Addr>),
    Nx,
}

/// A DNS server on 127.0.0.1 answering every A query with the current record (AAAA: no
/// answer), from bytes assembled here rather than by ringlb's encoder.
struct FakeDns {
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    queries: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    fn start(record: Record) -> FakeDns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let record = Arc::new(Mutex::new(record));
        let queries = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, q, s) = (record.clone(), queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                q.fetch_add(1, Ordering::Relaxed);
                let record = r.lock().unwrap().clone();
                if let Some(answer) = answer(&buf[..n], &record) {
                    let _ = sock.send_to(&answer, from);
                }
            }
        });
        FakeDns {
            addr,
            record,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, r: Record) {
        *self.record.lock().unwrap() = r;
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The answer to `query`: its id and question echoed, then the header flags and records.
fn answer(query: &[u8], record: &Record) -> Option<Vec<u8>> {
    // The question: the name's labels up to the root, then type and class.
    let mut i = 12;
    while *query.get(i)? != 0 {
        i += usize::from(query[i]) + 1;
    }
    let qend = i + 5;
    let question = query.get(12..qend)?;
    let qtype = u16::from_be_bytes([query[i + 1], query[i + 2]]);
    let mut m = vec![query[0], query[1]];
    match (record, qtype) {
        // QR RD RA + NXDOMAIN, one question, nothing else.
        (Record::Nx, _) => m.extend_from_slice(&[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]),
        // A records: each a pointer to the question's name (offset 12), A, IN, TTL 1,
        // 4 bytes of address.
        (Record::A(ips), 1) => {
            m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, ips.len() as u8, 0, 0, 0, 0]);
            m.extend_from_slice(question);
            for ip in ips {
                m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
                m.extend_from_slice(&ip.octets());
            }
            return Some(m);
        }
        // Any other type: NOERROR without answers.
        (Record::A(_), _) => m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]),
    }
    m.extend_from_slice(question);
    Some(m)
}

fn config(bind: SocketAddr, sock: &Path, dns: SocketAddr, port: u16) -> String {
    format!(
        "global\n    stats socket {} level admin\n\
         resolvers dns\n    nameserver ns1 {dns}\n    resolve_retries 2\n    timeout resolve 500ms\n    timeout retry 300ms\n    hold nx 1s\n    hold valid 1s\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {bind}\n    default_backend be\n\
         backend be\n    server s1 app.internal:{port} resolvers dns init-addr none resolve-prefer ipv4\n\
         backend chk\n    server s1 app.internal:{port} resolvers dns init-addr none resolve-prefer ipv4 check inter 300ms\n",
        sock.display()
    )
}

/// One proxy under test.
struct Proxy {
    name: &'static str,
    bind: SocketAddr,
    sock: PathBuf,
    guard: ChildGuard,
    _dir: TempDir,
}

impl Proxy {
    fn cli(&self, cmd: &str) -> String {
        runtime_command(&self.sock, cmd).unwrap()
    }

    /// `status` and `addr` of be/s1 in `show stat`.
    fn stat(&self) -> (String, String) {
        self.stat_of("be", "s1")
    }

    /// As [`Proxy::stat`] for any server.
    fn stat_of(&self, backend: &str, server: &str) -> (String, String) {
        let v = self.stat_cols(backend, server, &["status", "addr"]);
        (v[0].clone(), v[1].clone())
    }

    /// Columns `cols` of a server's `show stat` row.
    fn stat_cols(&self, backend: &str, server: &str, cols: &[&str]) -> Vec<String> {
        let stat = StatCsv::parse(&self.cli("show stat"));
        cols.iter()
            .map(|c| stat.get(backend, server, c).unwrap().to_string())
            .collect()
    }

    /// `srv_addr srv_op_state srv_admin_state` and `srv_fqdn srv_port` of be/s1.
    fn state(&self) -> String {
        self.state_of("be", "s1")
    }

    /// As [`Proxy::state`] for any server.
    fn state_of(&self, backend: &str, server: &str) -> String {
        let text = self.cli(&format!("show servers state {backend}"));
        let Some(row) = text.lines().find(|l| {
            l.starts_with(|c: char| c.is_ascii_digit()) && l.split(' ').nth(3) == Some(server)
        }) else {
            return format!("no row in {text}");
        };
        let row: Vec<&str> = row.split(' ').collect();
        format!("{} {} {} {} {}", row[4], row[5], row[6], row[17], row[18])
    }

    /// Its log lines about `server` (stderr), without the level and pid prefix.
    fn log_lines(&self, server: &str) -> Vec<String> {
        self.guard
            .stderr()
            .lines()
            .filter(|l| l.contains(server) || l.contains("backend 'be' has no server"))
            .filter_map(|l| {
                l.split_once(") : ")
                    .map(|(lvl, m)| format!("{} {m}", lvl.split_whitespace().next().unwrap_or("")))
            })
            .collect()
    }

    /// The status of a GET, and the answering origin.
    fn get(&self) -> (u16, String) {
        let r = http_get(self.bind, "/", &[]).unwrap();
        (r.status, r.header("x-origin").unwrap_or("").to_string())
    }
}

fn start(which: &'static str, dns: SocketAddr, port: u16) -> Proxy {
    start_with(which, |bind, sock, _| config(bind, sock, dns, port))
}

/// Starts `which` with the configuration `text(bind, socket, dir)` gives.
fn start_with(which: &'static str, text: impl Fn(SocketAddr, &Path, &Path) -> String) -> Proxy {
    let dir = TempDir::new(&format!("resolvers-{which}"));
    let bind = free_addr();
    let sock = dir.join("admin.sock");
    let cfg = write_config(&dir, &text(bind, &sock, dir.path()));
    let guard = if which == "haproxy" {
        Haproxy::start(&cfg, &[bind])
    } else {
        Ringlb::start(&cfg, &[bind])
    };
    assert!(wait_until(Duration::from_secs(10), || sock.exists()));
    Proxy {
        name: which,
        bind,
        sock,
        guard,
        _dir: dir,
    }
}

fn origin(name: &str, ip: [u8; 4], port: u16) -> Origin {
    Origin::start_with(OriginOptions {
        name: name.into(),
        addrs: vec![SocketAddr::from((ip, port))],
        ..OriginOptions::default()
    })
}

/// Digits replaced (counters that legitimately differ between the two).
fn mask_numbers(s: &str) -> String {
    let mut out = String::new();
    let mut in_num = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_num {
                out.push('N');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(c);
        }
    }
    out
}

/// The value of counter `name` of nameserver ns1 in section dns.
fn counter(show: &str, name: &str) -> u64 {
    let dns = show
        .split("Resolvers section ")
        .find(|s| s.starts_with("dns\n"))
        .unwrap();
    dns.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn servers_follow_their_dns_record_as_in_haproxy() {
    let port = free_port();
    let _a = origin("a", [127, 0, 0, 2], port);
    let _b = origin("b", [127, 0, 0, 3], port);
    let dns = FakeDns::start(Record::Nx);
    let mut proxies = vec![start("ringlb", dns.addr, port)];
    if haproxy_available() {
        proxies.push(start("haproxy", dns.addr, port));
    }
    let stat_of = |p: &Proxy| p.stat();

    // init-addr none and NXDOMAIN: resolution maintenance, no address, 503.
    for p in &proxies {
        assert!(
            wait_until(FOLLOW, || dns.queries.load(Ordering::Relaxed) > 0),
            "{}: no DNS query",
            p.name
        );
        assert_eq!(
            stat_of(p),
            ("MAINT (resolution)".into(), String::new()),
            "{}",
            p.name
        );
        assert_eq!(
            p.state(),
            format!("- 0 32 app.internal {port}"),
            "{}",
            p.name
        );
        assert_eq!(p.get().0, 503, "{}", p.name);
        // A check paused by resolution maintenance shows no status.
        assert_eq!(
            p.stat_cols("chk", "s1", &["status", "check_status", "addr"]),
            ["MAINT (resolution)", "", ""],
            "{}",
            p.name
        );
    }

    // The record appears: traffic goes to 127.0.0.2.
    dns.set(Record::A(vec![Ipv4Addr::new(127, 0, 0, 2)]));
    for p in &proxies {
        assert!(
            wait_until(FOLLOW, || p.get() == (200, "a".into())),
            "{}: never served by 127.0.0.2: {:?}",
            p.name,
            p.stat()
        );
        assert_eq!(
            stat_of(p),
            ("no check".into(), format!("127.0.0.2:{port}")),
            "{}",
            p.name
        );
        assert_eq!(
            p.state(),
            format!("127.0.0.2 2 0 app.internal {port}"),
            "{}",
            p.name
        );
    }

    // The record changes: both move to 127.0.0.3 within a few `timeout resolve`.
    dns.set(Record::A(vec![Ipv4Addr::new(127, 0, 0, 3)]));
    for p in &proxies {
        assert!(
            wait_until(FOLLOW, || p.get() == (200, "b".into())),
            "{}: never moved to 127.0.0.3",
            p.name
        );
        assert_eq!(
            p.state(),
            format!("127.0.0.3 2 0 app.internal {port}"),
            "{}",
            p.name
        );
    }

    // NXDOMAIN past `hold nx`: maintenance, the address forgotten, 503.
    dns.set(Record::Nx);
    for p in &proxies {
        assert!(
            wait_until(FOLLOW, || p.get().0 == 503),
            "{}: still serving after NXDOMAIN",
            p.name
        );
        assert_eq!(
            stat_of(p),
            ("MAINT (resolution)".into(), String::new()),
            "{}",
            p.name
        );
        assert_eq!(
            p.state(),
            format!("- 0 32 app.internal {port}"),
            "{}",
            p.name
        );
    }

    // `show resolvers`: the same layout; the counters that depend on timing are masked.
    let shows: Vec<String> = proxies.iter().map(|p| p.cli("show resolvers")).collect();
    for (p, s) in proxies.iter().zip(&shows) {
        assert!(
            s.starts_with("Resolvers section dns\n nameserver ns1:\n  sent:"),
            "{}: {s}",
            p.name
        );
        assert!(counter(s, "valid") >= 2, "{}: {s}", p.name);
        assert!(counter(s, "update") >= 2, "{}: {s}", p.name);
        assert!(counter(s, "nx") >= 2, "{}: {s}", p.name);
        assert!(
            counter(s, "sent") >= counter(s, "valid") + counter(s, "nx"),
            "{}: {s}",
            p.name
        );
        assert_eq!(counter(s, "invalid"), 0, "{}: {s}", p.name);
        assert_eq!(counter(s, "snd_error"), 0, "{}: {s}", p.name);
        let one = p.cli("show resolvers dns");
        assert!(one.starts_with("Resolvers section dns\n") && !one.contains("section default"));
        assert!(p
            .cli("show resolvers nope")
            .starts_with("Can't find that resolvers section\n"));
    }
    // haproxy's log lines for each change, in order.
    let want = [
        "[WARNING] be/s1 changed its IP from (none) to 127.0.0.2 by dns/ns1.",
        "[WARNING] Server be/s1 ('app.internal') is UP/READY (resolves again).",
        "[WARNING] Server be/s1 administratively READY thanks to valid DNS answer.",
        "[WARNING] be/s1 changed its IP from 127.0.0.2 to 127.0.0.3 by dns/ns1.",
        "[WARNING] Server be/s1 is going DOWN for maintenance (DNS NX status). 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
        "[ALERT] backend 'be' has no server available!",
    ];
    // The number of sessions still open when the server goes down depends on the client's
    // last connection closing first (haproxy has said 1 under load): not compared.
    let active = |l: &str| match l.find(" sessions active") {
        Some(i) => {
            let start = l[..i].rfind(' ').map_or(0, |j| j + 1);
            format!("{}N{}", &l[..start], &l[i..])
        }
        None => l.to_owned(),
    };
    for p in &proxies {
        let got: Vec<String> = p.log_lines("be/s1").iter().map(|l| active(l)).collect();
        let want: Vec<String> = want.iter().map(|l| active(l)).collect();
        assert_eq!(got, want, "{}", p.name);
    }
    if let [r, h] = &proxies[..] {
        assert_eq!(mask_numbers(&shows[0]), mask_numbers(&shows[1]));
        assert_eq!(r.cli("show resolvers nope"), h.cli("show resolvers nope"));
    }
}

/// `server-template` servers sharing one name take different addresses (haproxy's
/// duplicate-address rule), `init-addr <ip>` and `init-addr last` (state file) give the
/// address a server has while its nameserver stays silent, and a server with `check` comes
/// UP once resolved.
#[test]
fn init_addr_templates_and_checks_as_in_haproxy() {
    let port = free_port();
    let _a = origin("a", [127, 0, 0, 2], port);
    let _b = origin("b", [127, 0, 0, 3], port);
    let two = vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let dns = FakeDns::start(Record::A(two));
    // A nameserver that never answers: addresses stay what start-up gave them.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let quiet = silent.local_addr().unwrap();
    let text = |bind: SocketAddr, sock: &Path, dir: &Path| {
        let state = dir.join("state");
        std::fs::write(
            &state,
            format!("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n5 last 1 s1 127.0.0.3 2 0 1 1 10 1 0 0 0 0 0 0 app.internal {port} - 0 0 - - 0\n"),
        )
        .unwrap();
        format!(
            "global\n    stats socket {} level admin\n    server-state-file {}\n\
             resolvers dns\n    nameserver ns1 {}\n    timeout resolve 500ms\n    timeout retry 300ms\n\
             resolvers silent\n    nameserver ns1 {quiet}\n    timeout resolve 500ms\n    timeout retry 300ms\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend fe\n    bind {bind}\n    default_backend tpl\n\
             backend tpl\n    server-template srv 2 app.internal:{port} resolvers dns init-addr none resolve-prefer ipv4\n\
             backend chk\n    server s1 app.internal:{port} resolvers dns init-addr none resolve-prefer ipv4 check inter 300ms\n\
             backend fixed\n    server s1 app.internal:{port} resolvers silent init-addr 127.0.0.3 resolve-prefer ipv4\n\
             backend last\n    load-server-state-from-file global\n    server s1 app.internal:{port} resolvers silent init-addr last,none resolve-prefer ipv4\n",
            sock.display(),
            state.display(),
            dns.addr,
        )
    };
    let mut proxies = vec![start_with("ringlb", text)];
    if haproxy_available() {
        proxies.push(start_with("haproxy", text));
    }
    let resolved = |p: &Proxy| {
        ["srv1", "srv2"]
            .iter()
            .all(|s| !p.state_of("tpl", s).starts_with('-'))
            && !p.state_of("chk", "s1").starts_with('-')
    };
    let mut seen = Vec::new();
    for p in &proxies {
        assert!(
            wait_until(FOLLOW, || resolved(p)),
            "{}: templates never resolved",
            p.name
        );
        let got = [
            p.state_of("tpl", "srv1"),
            p.state_of("tpl", "srv2"),
            p.state_of("fixed", "s1"),
            p.state_of("last", "s1"),
        ];
        // Two servers, two answers: one each.
        assert_ne!(
            got[0].split(' ').next(),
            got[1].split(' ').next(),
            "{}: {got:?}",
            p.name
        );
        assert_eq!(
            got[2],
            format!("127.0.0.3 2 0 app.internal {port}"),
            "{}",
            p.name
        );
        assert!(got[3].starts_with("127.0.0.3 2 0 "), "{}: {got:?}", p.name);
        assert!(
            wait_until(FOLLOW, || p.stat_of("chk", "s1").0 == "UP"),
            "{}: chk/s1 {:?}",
            p.name,
            p.stat_of("chk", "s1")
        );
        seen.push(got);
    }
    if let [r, h] = &seen[..] {
        assert_eq!(r, h);
    }
    drop(silent);
}
