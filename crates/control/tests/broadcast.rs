//! The control plane in process: a proxy started from a config, then server state changes and a
//! soft stop broadcast to both shards, observed from real client connections.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ringlb_control::Proxy;
use ringlb_shard::{AdminState, ControlMsg, Topology};
use ringlb_testkit::{free_addr, wait_until, write_config, Conn, Origins, TempDir};

fn origin_of(conn: &mut Conn) -> String {
    conn.get("/")
        .unwrap()
        .header("x-origin")
        .unwrap_or("?")
        .to_string()
}

#[test]
fn server_state_changes_reach_every_shard_and_soft_stop_ends_the_proxy() {
    let origins = Origins::start(2);
    let front = free_addr();
    let dir = TempDir::new("control");
    let [a, b] = [origins.addrs()[0], origins.addrs()[1]];
    let text = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    server s1 {a}\n    server s2 {b}\n"
    );
    let path = write_config(&dir, &text);
    let loaded = ringlb_config::load(&[path], &|_| None).unwrap();
    let topo = Arc::new(Topology::from_config(&loaded.config).unwrap());
    let mut proxy = Proxy::start(topo, vec![vec![0], vec![1]]).unwrap();

    // Several connections, so both shards (SO_REUSEPORT) serve some.
    let mut conns: Vec<Conn> = (0..8).map(|_| Conn::connect(front).unwrap()).collect();
    let seen = |conns: &mut Vec<Conn>| {
        let mut names: Vec<String> = conns
            .iter_mut()
            .flat_map(|c| [origin_of(c), origin_of(c)])
            .collect();
        names.sort();
        names.dedup();
        names
    };
    assert_eq!(seen(&mut conns), ["s1", "s2"]);

    proxy
        .broadcast(ControlMsg::SetServerAdmin {
            backend: 0,
            server: 0,
            state: AdminState::Maint,
        })
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || seen(&mut conns) == ["s2"]),
        "s1 in maintenance must get nothing on any shard"
    );
    proxy
        .broadcast(ControlMsg::SetServerAdmin {
            backend: 0,
            server: 0,
            state: AdminState::Ready,
        })
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || seen(&mut conns) == ["s1", "s2"]));

    proxy.broadcast(ControlMsg::SoftStop).unwrap();
    // Idle keep-alive connections are closed at once by the soft stop (kept open here).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        proxy.wait();
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_ok(),
        "proxy stopped after soft stop"
    );
    for c in &mut conns {
        assert!(
            c.peer_closed(Duration::from_secs(1)),
            "idle connection closed by the soft stop"
        );
    }
}
