//! What happens to live sessions when a server changes state, and limits that follow the load:
//! `on-marked-down shutdown-sessions`, `on-marked-up shutdown-backup-sessions` (TCP mode
//! tunnels carrying keep-alive HTTP, so each session can tell which server it is on), and
//! `minconn`/`fullconn`. Every scenario runs against ringlb and, when installed, haproxy 2.6,
//! with the same assertions: the test is checked against the reference too.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, wait_until, write_config, ChildGuard, Conn, Haproxy, Origin,
    Ringlb, TempDir,
};

const WAIT: Duration = Duration::from_secs(5);

type Start = fn(&Path, &[SocketAddr]) -> ChildGuard;

/// The proxies to run a scenario under: ringlb always, haproxy when installed.
fn proxies() -> Vec<(&'static str, Start)> {
    let mut v: Vec<(&'static str, Start)> = vec![("ringlb", Ringlb::start)];
    if haproxy_available() {
        v.push(("haproxy", Haproxy::start));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
    }
    v
}

/// A keep-alive session through the TCP proxy: the origin that answers its request.
fn origin_on(conn: &mut Conn) -> String {
    let r = conn.get("/").expect("a response through the tunnel");
    r.header("X-Origin").unwrap_or("-").to_string()
}

/// The origin that answers a request on a new connection; "-" if the connection failed (a
/// state change may be under way while a wait loop polls).
fn origin_of_new(front: SocketAddr) -> String {
    Conn::connect(front)
        .and_then(|mut c| c.get("/"))
        .map(|r| r.header("X-Origin").unwrap_or("-").to_string())
        .unwrap_or_else(|_| "-".to_string())
}

/// A check port that accepts (the kernel completes the handshake; nothing is read) until
/// dropped, then refuses.
fn check_port(addr: SocketAddr) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot bind the check port {addr}: {e}"),
        }
    }
}

fn tcp_config(front: SocketAddr, servers: &str) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         listen l\n    bind {front}\n    balance roundrobin\n{servers}"
    )
}

/// Sessions on a server whose checks start failing: closed with `on-marked-down
/// shutdown-sessions`, left alone on the other server.
#[test]
fn on_marked_down_shutdown_sessions_closes_the_servers_sessions() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    for (name, start) in proxies() {
        let dir = TempDir::new("marked-down");
        let (front, chk) = (free_addr(), free_addr());
        let servers = format!(
            "    server a {} check port {} inter 100 fall 1 rise 1 on-marked-down shutdown-sessions\n    server b {}\n",
            a.addr(),
            chk.port(),
            b.addr()
        );
        let cfg = write_config(&dir, &tcp_config(front, &servers));
        let port = check_port(chk);
        let _p = start(&cfg, &[front]);
        std::thread::sleep(Duration::from_millis(300)); // a few good checks
        let mut sessions: Vec<(Conn, String)> = (0..2)
            .map(|_| {
                let mut c = Conn::connect(front).unwrap();
                let o = origin_on(&mut c);
                (c, o)
            })
            .collect();
        sessions.sort_by(|x, y| x.1.cmp(&y.1));
        let got: Vec<&str> = sessions.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(got, ["a", "b"], "{name}: round robin over both");
        drop(port); // checks of `a` now fail: marked down
        let (on_a, on_b) = sessions.split_at_mut(1);
        assert!(
            on_a[0].0.peer_closed(WAIT),
            "{name}: the session on the server marked down is closed"
        );
        assert_eq!(
            origin_on(&mut on_b[0].0),
            "b",
            "{name}: the other server's session goes on"
        );
    }
}

/// A backup server's sessions while the active server is down, then the active server comes
/// back: with `on-marked-up shutdown-backup-sessions` they are closed (new sessions go to the
/// active server); without it they stay on the backup.
#[test]
fn on_marked_up_shutdown_backup_sessions_moves_clients_back() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    for (name, start) in proxies() {
        for with_option in [true, false] {
            let dir = TempDir::new("marked-up");
            let (front, chk) = (free_addr(), free_addr());
            let opt = if with_option {
                " on-marked-up shutdown-backup-sessions"
            } else {
                ""
            };
            let servers = format!(
                "    server a {} check port {} inter 100 fall 1 rise 1{opt}\n    server b {} backup\n",
                a.addr(),
                chk.port(),
                b.addr()
            );
            let cfg = write_config(&dir, &tcp_config(front, &servers));
            let _p = start(&cfg, &[front]);
            // Nothing listens on the check port: `a` goes down, the backup takes the traffic.
            assert!(
                wait_until(WAIT, || origin_of_new(front) == "b"),
                "{name}: the backup serves while the active server is down"
            );
            let mut session = Conn::connect(front).unwrap();
            assert_eq!(origin_on(&mut session), "b");
            let _port = check_port(chk); // `a` comes back up
            assert!(
                wait_until(WAIT, || origin_of_new(front) == "a"),
                "{name}: the active server is up again"
            );
            if with_option {
                assert!(
                    session.peer_closed(WAIT),
                    "{name}: the backup session is closed when the active server comes up"
                );
            } else {
                assert!(
                    !session.peer_closed(Duration::from_millis(300)),
                    "{name}: without the option the backup session stays"
                );
                assert_eq!(origin_on(&mut session), "b", "{name}");
            }
        }
    }
}
