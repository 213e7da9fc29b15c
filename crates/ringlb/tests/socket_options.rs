//! Listener and connection socket options, checked from outside with `ss` on loopback:
//! `backlog`, `thread`, `v4v6`, `mss`, `interface`, `defer-accept`, `tfo`, `id`, `source`
//! (backend and server), `option clitcpka`/`srvtcpka` with their timers.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringlb_testkit::{free_addr, wait_until, write_config, Ringlb, TempDir};

const T: Duration = Duration::from_secs(10);
const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 20s\n    timeout server 20s\n";

fn ss(args: &[&str]) -> String {
    let out = Command::new("ss").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// An origin that records each connection's peer address, answers `200 ok` and, when `hold`,
/// keeps the connection open for a while (so `ss` can look at it).
fn origin(hold: Duration) -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let rec = peers.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            rec.lock().unwrap().push(c.peer_addr().unwrap());
            std::thread::spawn(move || {
                c.set_read_timeout(Some(T)).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(hold);
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                std::thread::sleep(hold);
            });
        }
    });
    (addr, peers)
}

fn get(front: SocketAddr) -> String {
    let mut s = TcpStream::connect(front).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn backlog_thread_v4v6_interface_defer_accept_and_tfo_on_listeners() {
    let (o, _) = origin(Duration::ZERO);
    let dir = TempDir::new("sockopts-listen");
    let (a, b) = (free_addr(), free_addr());
    let v6 = SocketAddr::new("::".parse().unwrap(), free_addr().port());
    let cfg = write_config(
        &dir,
        &format!(
            "global\n    nbthread 2\n{DEFAULTS}\nfrontend fe\n    backlog 77\n    bind {a} thread 2 interface lo defer-accept tfo\n    bind {b} backlog 33 mss 1200\n    bind {v6} v4v6\n    default_backend be\nbackend be\n    server o {o}\n"
        ),
    );
    let via_v4 = SocketAddr::new("127.0.0.1".parse().unwrap(), v6.port());
    let _p = Ringlb::start(&cfg, &[a, b, via_v4]);
    // Send-Q of a listening socket is its backlog; `thread 2` leaves one shard listening.
    let listening = |port: u16| {
        ss(&["-ltnH", &format!("sport = :{port}")])
            .lines()
            .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listening(a.port()),
        vec!["77"],
        "frontend backlog, one thread"
    );
    assert_eq!(
        listening(b.port()),
        vec!["33", "33"],
        "bind backlog, both threads"
    );
    for front in [a, b, via_v4] {
        assert!(get(front).starts_with("HTTP/1.1 200"), "{front}");
    }
}

#[test]
fn mss_applies_to_accepted_connections() {
    let (o, _) = origin(Duration::from_secs(2));
    let dir = TempDir::new("sockopts-mss");
    let a = free_addr();
    let cfg = write_config(
        &dir,
        &format!("{DEFAULTS}\nfrontend fe\n    bind {a} mss 1000\n    default_backend be\nbackend be\n    server o {o}\n"),
    );
    let _p = Ringlb::start(&cfg, &[a]);
    let h = std::thread::spawn(move || get(a));
    let seen = wait_until(T, || {
        let out = ss(&[
            "-tniH",
            "state",
            "established",
            &format!("sport = :{}", a.port()),
        ]);
        // The kernel advertises the MSS minus the timestamp option (988 for 1000); loopback's
        // own would be about 65483.
        out.split("advmss:")
            .nth(1)
            .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
            .is_some_and(|m| (900..=1000).contains(&m))
    });
    let out = ss(&[
        "-tniH",
        "state",
        "established",
        &format!("sport = :{}", a.port()),
    ]);
    assert!(seen, "{out}");
    assert!(h.join().unwrap().starts_with("HTTP/1.1 200"));
}

#[test]
fn tcp_keepalive_timers_on_both_sides() {
    let (o, _) = origin(Duration::from_secs(2));
    let dir = TempDir::new("sockopts-ka");
    let a = free_addr();
    let cfg = write_config(
        &dir,
        &format!(
            "{DEFAULTS}\nfrontend fe\n    option clitcpka\n    clitcpka-idle 300\n    clitcpka-intvl 20s\n    clitcpka-cnt 4\n    bind {a}\n    default_backend be\nbackend be\n    option srvtcpka\n    srvtcpka-idle 200s\n    server o {o}\n"
        ),
    );
    let _p = Ringlb::start(&cfg, &[a]);
    let h = std::thread::spawn(move || get(a));
    // ss -o shows `timer:(keepalive,<left>,0)` where keep-alive is on; the time left is below
    // the idle time set (300 s on the client side, 200 s on the server side).
    let timer = |filter: String| {
        let out = ss(&["-tnoH", "state", "established", &filter]);
        out.lines().find_map(|l| {
            let t = l.split("timer:(keepalive,").nth(1)?;
            let secs: String = t.chars().take_while(char::is_ascii_digit).collect();
            let unit = t.trim_start_matches(char::is_numeric);
            Some(if unit.starts_with("min") {
                secs.parse::<u64>().ok()? * 60
            } else {
                secs.parse::<u64>().ok()?
            })
        })
    };
    let mut client_side = None;
    let mut server_side = None;
    wait_until(T, || {
        client_side = timer(format!("sport = :{}", a.port()));
        server_side = timer(format!("dport = :{}", o.port()));
        client_side.is_some() && server_side.is_some()
    });
    let (c, s) = (client_side.unwrap(), server_side.unwrap());
    assert!((240..=300).contains(&c), "client keep-alive timer {c}s");
    assert!((140..=200).contains(&s), "server keep-alive timer {s}s");
    assert!(h.join().unwrap().starts_with("HTTP/1.1 200"));
}

#[test]
fn without_tcpka_there_is_no_keepalive_timer() {
    let (o, _) = origin(Duration::from_secs(2));
    let dir = TempDir::new("sockopts-noka");
    let a = free_addr();
    let cfg = write_config(
        &dir,
        &format!("{DEFAULTS}\nfrontend fe\n    bind {a}\n    default_backend be\nbackend be\n    server o {o}\n"),
    );
    let _p = Ringlb::start(&cfg, &[a]);
    let h = std::thread::spawn(move || get(a));
    assert!(wait_until(T, || !ss(&[
        "-tnoH",
        "state",
        "established",
        &format!("dport = :{}", o.port())
    ])
    .is_empty()));
    let out = ss(&[
        "-tnoH",
        "state",
        "established",
        &format!("sport = :{}", a.port()),
    ]);
    assert!(!out.contains("keepalive"), "{out}");
    assert!(h.join().unwrap().starts_with("HTTP/1.1 200"));
}

#[test]
fn source_address_of_server_connections() {
    let (o, peers) = origin(Duration::ZERO);
    let dir = TempDir::new("sockopts-source");
    let (a, b) = (free_addr(), free_addr());
    let cfg = write_config(
        &dir,
        &format!(
            "{DEFAULTS}\nfrontend fa\n    bind {a}\n    default_backend ba\nfrontend fb\n    bind {b}\n    default_backend bb\nbackend ba\n    source 127.0.0.2\n    server o {o} tfo\nbackend bb\n    source 127.0.0.2\n    server o {o} source 127.0.0.3\n"
        ),
    );
    let _p = Ringlb::start(&cfg, &[a, b]);
    assert!(get(a).starts_with("HTTP/1.1 200"));
    assert!(get(b).starts_with("HTTP/1.1 200"));
    let ips: Vec<String> = peers
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.ip().to_string())
        .collect();
    assert_eq!(ips, vec!["127.0.0.2", "127.0.0.3"]);
}

#[test]
fn bind_id_names_the_listener_row() {
    let (o, _) = origin(Duration::ZERO);
    let dir = TempDir::new("sockopts-id");
    let (a, b) = (free_addr(), free_addr());
    let cfg = write_config(
        &dir,
        &format!(
            "{DEFAULTS}\nlisten l\n    option socket-stats\n    stats enable\n    stats uri /st\n    bind {a} id 7\n    bind {b}\n    server o {o}\n"
        ),
    );
    let _p = Ringlb::start(&cfg, &[a, b]);
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET /st;csv HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.contains("\nl,sock-7,"), "{out}");
    // The other listener takes the lowest free id.
    assert!(out.contains("\nl,sock-1,"), "{out}");
}

#[test]
fn usesrc_and_unknown_thread_sets_are_refused() {
    let dir = TempDir::new("sockopts-bad");
    let a = free_addr();
    for (text, want) in [
        (
            format!("{DEFAULTS}\nlisten l\n    bind {a}\n    source 127.0.0.2 usesrc clientip\n    server o 127.0.0.1:1\n"),
            "usesrc",
        ),
        (
            format!("global\n    nbthread 2\n{DEFAULTS}\nlisten l\n    bind {a} thread 5\n    server o 127.0.0.1:1\n"),
            "thread",
        ),
    ] {
        let cfg = write_config(&dir, &text);
        let out = Command::new(ringlb_testkit::bin_path("ringlb"))
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(err.contains(want), "{err}");
    }
}
