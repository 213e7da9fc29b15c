//! `dcon` and `dses` (connections refused by `tcp-request connection` and `tcp-request
//! session` rules), on the frontend and on its listener (`option socket-stats`), compared with
//! haproxy 2.6 on the same config and traffic; also in the Prometheus exporter's
//! `denied_connections_total` / `denied_sessions_total`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_required, wait_until, write_config, ChildGuard, Haproxy, Origin, Ringlb,
    StatCsv, TempDir,
};

const T: Duration = Duration::from_secs(10);

struct Run {
    _proxy: ChildGuard,
    _dir: TempDir,
    conn: SocketAddr,
    sess: SocketAddr,
    sock: std::path::PathBuf,
}

fn start(haproxy: bool, origin: &Origin) -> Run {
    let dir = TempDir::new(if haproxy { "denied-haproxy" } else { "denied" });
    let (conn, sess) = (free_addr(), free_addr());
    let sock = dir.join("admin.sock");
    let cfg = format!(
        "global\n    stats socket {} level admin\n\
defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
frontend by_conn\n    bind {conn} name c1\n    option socket-stats\n    tcp-request connection reject if {{ src 127.0.0.1 }}\n    default_backend b\n\
frontend by_sess\n    bind {sess} name s1\n    option socket-stats\n    tcp-request session reject if {{ src 127.0.0.1 }}\n    default_backend b\n\
backend b\n    server o {}\n",
        sock.display(),
        origin.addr()
    );
    let path = write_config(&dir, &cfg);
    let proxy = if haproxy {
        Haproxy::start(&path, &[conn, sess])
    } else {
        Ringlb::start(&path, &[conn, sess])
    };
    assert!(wait_until(T, || std::os::unix::net::UnixStream::connect(
        &sock
    )
    .is_ok()));
    Run {
        _proxy: proxy,
        _dir: dir,
        conn,
        sess,
        sock,
    }
}

/// Opens a connection and waits for the proxy to close it.
fn refused(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; 64];
    let _ = s.read(&mut b);
}

/// (proxy, svname, dcon, dses) of the frontend and listener rows.
fn denied(sock: &std::path::Path) -> Vec<(String, String, String, String)> {
    StatCsv::read(sock)
        .unwrap()
        .rows(&["dcon", "dses"])
        .unwrap()
        .into_iter()
        .filter(|(px, _, _)| px.starts_with("by_"))
        .map(|(px, sv, d)| (px, sv, d[0].clone(), d[1].clone()))
        .collect()
}

#[test]
fn refused_connections_and_sessions_are_counted_as_haproxy_counts_them() {
    let origin = Origin::start("denied-origin");
    let mut names = vec![false];
    if haproxy_required() {
        names.push(true);
    }
    let mut seen = Vec::new();
    for haproxy in names {
        let r = start(haproxy, &origin);
        // The start-up probes are refused too: count from what is there once their counts
        // have landed (the same for 300 ms; on a loaded machine a probe's session may be
        // counted after the first read).
        let mut before = denied(&r.sock);
        assert!(wait_until(T, || {
            std::thread::sleep(Duration::from_millis(300));
            let now = denied(&r.sock);
            std::mem::replace(&mut before, now) == before
        }));
        for _ in 0..3 {
            refused(r.conn);
        }
        for _ in 0..2 {
            refused(r.sess);
        }
        let mut after = Vec::new();
        let settled = wait_until(T, || {
            after = denied(&r.sock);
            after != before
                && after.iter().zip(&before).all(|(a, b)| {
                    let n = |s: &str| s.parse::<u64>().unwrap_or(0);
                    n(&a.2) - n(&b.2) + n(&a.3) - n(&b.3) == if a.0 == "by_conn" { 3 } else { 2 }
                })
        });
        assert!(settled, "{before:?} -> {after:?}");
        let delta: Vec<_> = after
            .iter()
            .zip(&before)
            .map(|(a, b)| {
                let n = |s: &str| s.parse::<u64>().unwrap_or(0);
                (
                    a.0.clone(),
                    a.1.clone(),
                    n(&a.2) - n(&b.2),
                    n(&a.3) - n(&b.3),
                )
            })
            .collect();
        seen.push(delta);
    }
    assert_eq!(
        seen[0],
        vec![
            ("by_conn".to_owned(), "FRONTEND".to_owned(), 3, 0),
            ("by_conn".to_owned(), "c1".to_owned(), 3, 0),
            ("by_sess".to_owned(), "FRONTEND".to_owned(), 0, 2),
            ("by_sess".to_owned(), "s1".to_owned(), 0, 2),
        ]
    );
    if let Some(theirs) = seen.get(1) {
        assert_eq!(&seen[0], theirs, "ringlb vs haproxy");
    }
}
