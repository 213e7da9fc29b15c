//! Traffic logs through the real binary to real syslog listeners (UDP and a UNIX datagram
//! socket in the test): `option httplog` compared with haproxy's line for the same request
//! (timers, dates, ports and pids masked), the guide's JSON `log-format`, `option tcplog`,
//! haproxy's default "Connect from" line and `option dontlognull`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, write_config, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn udp_listener() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn recv_line(s: &UdpSocket) -> String {
    let mut b = [0u8; 4096];
    let n = s.recv(&mut b).unwrap();
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// The next line containing `needle` (the readiness probes of the test harness log lines of
/// their own first), at most 20 lines on.
fn recv_matching(s: &UdpSocket, needle: &str) -> String {
    for _ in 0..20 {
        let l = recv_line(s);
        if l.contains(needle) {
            return l;
        }
    }
    panic!("no log line with {needle:?}");
}

/// Masks what differs between two runs: syslog date and pid, the client port, the accept
/// date and the timers.
fn mask(line: &str) -> String {
    let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
    for w in &mut words {
        if w.starts_with('<') && w.contains('>') {
            *w = "<PRI>".into(); // also drops the month glued to it
        }
        if let Some(i) = w.find('[') {
            if w.ends_with("]:") {
                *w = format!("{}[PID]:", &w[..i]);
            }
        }
        if w.starts_with("127.0.0.1:") {
            *w = "127.0.0.1:PORT".into();
        }
        if w.starts_with('[') && w.ends_with(']') && w.contains('/') {
            *w = "[DATE]".into();
        }
        if w.split('/').count() == 5 && w.split('/').all(|p| p.parse::<i64>().is_ok()) {
            *w = "T/T/T/T/T".into();
        }
    }
    // The syslog date after the priority: "<PRI>Nov 23 23:54:45" → drop 2 words.
    words.join(" ")
}

fn httplog_cfg(front: SocketAddr, log: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\n    log {log} local0\n    log-tag proxy\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    capture request header X-Trace len 5\n    capture request header X-Absent len 10\n    capture response header Content-Type len 20\n    default_backend be\nbackend be\n    server s1 {origin}\n"
    )
}

#[test]
fn httplog_line_matches_haproxy() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("log-diff");
    let (hsock, hlog) = udp_listener();
    let (rsock, rlog) = udp_listener();
    let (hf, rf) = (free_addr(), free_addr());
    let hpath = write_config(&dir, &httplog_cfg(hf, hlog, origin.addr()));
    let _h = Haproxy::start(&hpath, &[hf]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, httplog_cfg(rf, rlog, origin.addr())).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    for (path, status) in [
        ("/size/10?x=1", 200),
        ("/status/404", 404),
        ("/size/1000", 200),
    ] {
        assert_eq!(
            http_get(
                hf,
                path,
                &[("Connection", "close"), ("X-Trace", "abcdefgh")]
            )
            .unwrap()
            .status,
            status
        );
        assert_eq!(
            http_get(
                rf,
                path,
                &[("Connection", "close"), ("X-Trace", "abcdefgh")]
            )
            .unwrap()
            .status,
            status
        );
        let h = recv_matching(&hsock, path);
        let r = recv_matching(&rsock, path);
        // Same shape: `<134>Mon DD HH:MM:SS proxy[PID]: ip:port [date] fe be/s1 T/T/T/T/T
        // status bytes - - ---- conns queue "request line"`.
        // `%B`: both count the response's internal (HTX) size (`ringlb_http1::htx`).
        let bytes = |l: &str| -> i64 {
            let w: Vec<&str> = l.split(' ').collect();
            let i = w.iter().position(|x| *x == status.to_string()).unwrap();
            w[i + 1].parse().unwrap()
        };
        let (hb, rb) = (bytes(&h), bytes(&r));
        assert_eq!(rb, hb, "bytes: ringlb {r:?} vs haproxy {h:?}");
        let unbytes = |l: &str| {
            l.replace(
                &format!(" {status} {} ", bytes(l)),
                &format!(" {status} B "),
            )
        };
        let (hm, rm) = (mask(&unbytes(&h)), mask(&unbytes(&r)));
        let tail = |s: &str| s.split_once("127.0.0.1:PORT").map(|x| x.1.to_string());
        assert_eq!(tail(&rm), tail(&hm), "ringlb {r:?} vs haproxy {h:?}");
        assert!(r.starts_with("<134>"), "{r}");
        assert!(r.contains(" proxy["), "{r}");
        assert!(r.contains("{abcde|} {"), "captures: {r}");
    }
}

#[test]
fn json_log_format_of_the_guide_is_valid_json_on_a_unix_socket() {
    let origin = Origin::start("o");
    let dir = TempDir::new("log-json");
    let sock_path = dir.join("log.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let front = free_addr();
    let cfg = format!(
        "global\n    log {} local0 info\ndefaults\n    mode http\n    log global\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    log-format '{{\"time\":\"%t\",\"client\":\"%ci:%cp\",\"frontend\":\"%f\",\"backend\":\"%b\",\"server\":\"%s\",\"method\":\"%HM\",\"uri\":\"%HP\",\"status\":%ST,\"bytes_read\":%B,\"time_total\":%Tt,\"time_queue\":%Tw,\"time_connect\":%Tc,\"time_response\":%Tr,\"retries\":%rc,\"conn_active\":%ac,\"conn_frontend\":%fc,\"conn_backend\":%bc,\"conn_server\":%sc}}'\n    default_backend be\nbackend be\n    server s1 {}\n",
        sock_path.display(),
        origin.addr()
    );
    let path = write_config(&dir, &cfg);
    let _r = Ringlb::start(&path, &[front]);
    assert_eq!(
        http_get(front, "/echo", &[("Connection", "close")])
            .unwrap()
            .status,
        200
    );
    let mut line = String::new();
    for _ in 0..20 {
        let mut b = [0u8; 4096];
        let n = sock.recv(&mut b).unwrap();
        line = String::from_utf8_lossy(&b[..n]).into_owned();
        if line.contains("/echo") {
            break;
        }
    }
    let json = line.split_once("]: ").unwrap().1.trim_end();
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["status"], 200);
    assert_eq!(v["backend"], "be");
    assert_eq!(v["server"], "s1");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["uri"], "/echo");
    assert!(v["time_total"].as_i64().unwrap() >= 0);
}

#[test]
fn default_connect_line_tcplog_and_dontlognull() {
    let origin = Origin::start_echo_tcp("e");
    let dir = TempDir::new("log-tcp");
    let (sock, log) = udp_listener();
    let (plain, tcp) = (free_addr(), free_addr());
    let cfg = format!(
        "global\n    log {log} local0\n    log-tag t\ndefaults\n    log global\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend noformat\n    mode http\n    bind {plain}\n    default_backend web\nbackend web\n    mode http\n    server s1 {}\nlisten tcpapp\n    mode tcp\n    option tcplog\n    option dontlognull\n    bind {tcp}\n    server t1 {}\n",
        origin.addr(),
        origin.addr()
    );
    let path = write_config(&dir, &cfg);
    let _r = Ringlb::start(&path, &[plain, tcp]);
    // No format option: haproxy's line at accept.
    let c = std::net::TcpStream::connect(plain).unwrap();
    let port = c.local_addr().unwrap().port();
    let line = recv_matching(&sock, &format!("127.0.0.1:{port} "));
    assert!(
        line.contains(&format!(
            "Connect from 127.0.0.1:{port} to {plain} (noformat/HTTP)"
        )),
        "{line}"
    );
    drop(c);
    // dontlognull: a TCP connection that sends nothing is not logged; one that does is.
    drop(std::net::TcpStream::connect(tcp).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(tcp).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
    }
    let line = recv_matching(&sock, " tcpapp tcpapp/t1 ");
    assert!(
        line.contains(" 4 -- "),
        "bytes then termination state: {line}"
    );
}

/// Server state changes go to the global log targets at haproxy's levels (DOWN: alert, an
/// empty backend: emerg), not only to stderr.
#[test]
fn health_state_changes_are_logged_to_syslog() {
    let dir = TempDir::new("log-health");
    let (sock, log) = udp_listener();
    let (front, dead) = (free_addr(), free_addr());
    let cfg = format!(
        "global\n    log {log} local0\n    log-tag lb\ndefaults\n    mode http\n    log global\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {dead} check inter 100ms fall 2\n"
    );
    let path = write_config(&dir, &cfg);
    let _r = Ringlb::start(&path, &[front]);
    let down = recv_matching(&sock, "is DOWN");
    assert!(down.starts_with("<129>"), "alert at local0: {down}");
    assert!(
        down.contains("lb[")
            && down.contains("Server be/s1 is DOWN, reason: Layer4 connection problem"),
        "{down}"
    );
    let empty = recv_matching(&sock, "has no server available");
    assert!(empty.starts_with("<128>"), "emerg at local0: {empty}");
}

/// `no log` in a frontend drops the log targets it inherited from `defaults`: that frontend
/// sends nothing, the other one logs as before (haproxy 2.6 the same).
#[test]
fn no_log_silences_one_frontend_of_the_defaults() {
    let mut proxies = vec![false];
    if haproxy_available() {
        proxies.push(true);
    }
    for haproxy in proxies {
        let (sock, log) = udp_listener();
        let (quiet, loud) = (free_addr(), free_addr());
        let dir = TempDir::new("log-nolog");
        let cfg = format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    log {log} local0\n    option httplog\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             frontend quiet\n    bind {quiet}\n    no log\n    http-request return status 200\n\
             frontend loud\n    bind {loud}\n    http-request return status 200\n"
        );
        let path = write_config(&dir, &cfg);
        let _proxy = if haproxy {
            Haproxy::start(&path, &[quiet, loud])
        } else {
            Ringlb::start(&path, &[quiet, loud])
        };
        http_get(quiet, "/to-quiet", &[]).unwrap();
        http_get(loud, "/to-loud", &[]).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut lines = Vec::new();
        let mut b = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut b) {
            lines.push(String::from_utf8_lossy(&b[..n]).into_owned());
        }
        let who = if haproxy { "haproxy" } else { "ringlb" };
        assert!(
            lines.iter().any(|l| l.contains("/to-loud")),
            "{who}: {lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains(" quiet ")),
            "{who}: {lines:?}"
        );
    }
}
