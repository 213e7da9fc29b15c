//! Where a request waits when its servers are full, against haproxy 2.6: a balanced request
//! waits in the backend's queue and goes to whichever server frees a slot first; a request
//! whose key hashes to a full server waits in that server's queue, even while another server
//! is free. `show stat` shows both queues (`qcur`/`qmax` of the BACKEND row and of each
//! server), as haproxy does.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::thread::{sleep, spawn, JoinHandle};
use std::time::Duration;

use ringlb_testkit::{http_get, runtime_command, same_as_haproxy, Origin, StatCsv, TempDir};

/// Time for a request sent in the background to reach its server or its queue.
const SETTLE: Duration = Duration::from_millis(250);

/// `pxname/svname` → (`qcur`, `qmax`) of every backend and server row of `show stat`.
fn queues(sock: &Path) -> Vec<(String, String, String)> {
    let stat = StatCsv::read(sock).unwrap();
    stat.rows(&["qcur", "qmax"])
        .unwrap()
        .into_iter()
        .filter(|(_, sv, _)| sv != "FRONTEND")
        .map(|(px, sv, q)| (format!("{px}/{sv}"), q[0].clone(), q[1].clone()))
        .collect()
}

/// A GET in the background: which origin answered it (`x-origin`), or its status.
fn background(front: SocketAddr, path: &str, key: &str) -> JoinHandle<String> {
    let (path, key) = (path.to_string(), key.to_string());
    let h = spawn(move || {
        let r = http_get(front, &path, &[("x-key", &key)]).unwrap();
        match r.status {
            200 => r.header("x-origin").unwrap_or("?").to_string(),
            s => s.to_string(),
        }
    });
    sleep(SETTLE);
    h
}

fn config(
    fe: SocketAddr,
    sock: &Path,
    balance: &str,
    backend: &str,
    params: (&str, &str),
    a: &Origin,
    b: &Origin,
) -> String {
    format!(
        "global\n    nbthread 1\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 9s\n    timeout server 9s\n    timeout queue 9s\n\
         listen l\n    bind {fe}\n    balance {balance}\n    http-reuse never\n{backend}    server a {} {}\n    server b {} {}\n",
        sock.display(),
        a.addr(),
        params.0,
        b.addr(),
        params.1
    )
}

/// Runs `run` (given the front address and the stats socket) under ringlb, then haproxy, on
/// `listen l` with `balance`, the `backend` lines and servers `a` and `b` with `params`;
/// both must give the same result (ringlb's is returned).
fn differential<T: PartialEq + std::fmt::Debug>(
    name: &str,
    balance: &str,
    backend: &str,
    params: (&str, &str),
    run: &dyn Fn(SocketAddr, &Path) -> T,
) -> T {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let dir = TempDir::new(name);
    let sock = dir.join("stats.sock");
    same_as_haproxy(
        name,
        &|fe| config(fe[0], &sock, balance, backend, params, &a, &b),
        &|fe| run(fe[0], &sock),
    )
}

/// Two servers of `maxconn 1`, both busy: the next request waits in the backend's queue
/// (backend `qcur` 1, servers 0) and goes to the server whose request ends first, not to the
/// next one in round-robin order.
#[test]
fn a_balanced_request_waits_for_the_first_server_to_free_a_slot() {
    first_free_slot_takes_the_queued_request("queue-backend", "", ("maxconn 1", "maxconn 1"));
}

/// Two servers both busy with one request each (a long and a short one), then a third
/// request: it waits in the backend's queue (BACKEND `qcur` 1) and goes to the server whose
/// request ends first. Same under haproxy.
fn first_free_slot_takes_the_queued_request(name: &str, backend: &str, params: (&str, &str)) {
    let seen = differential(name, "roundrobin", backend, params, &|fe, sock| {
        let long = background(fe, "/slow/2500", "");
        let short = background(fe, "/slow/900", "");
        let queued = background(fe, "/", "");
        let waiting = queues(sock);
        let (long, short, queued) = (
            long.join().unwrap(),
            short.join().unwrap(),
            queued.join().unwrap(),
        );
        (long, short, queued, waiting)
    });
    let (long, short, queued, waiting) = &seen;
    assert_ne!(long, short, "{seen:?}");
    assert_eq!(
        queued, short,
        "served by the first server to free a slot: {seen:?}"
    );
    assert!(
        waiting.contains(&("l/BACKEND".into(), "1".into(), "1".into())),
        "{seen:?}"
    );
}

/// `balance hdr(x-key)`: a request whose key names a busy server waits in that server's
/// queue (server `qcur` 1, backend 0) while the other server is free, and is served there.
#[test]
fn a_hashed_request_waits_for_its_own_server() {
    let params = ("maxconn 1", "maxconn 1");
    let seen = differential("queue-server", "hdr(x-key)", "", params, &|fe, sock| {
        let busy = background(fe, "/slow/1200", "k1");
        let queued = background(fe, "/", "k1");
        let waiting = queues(sock);
        let (busy, queued) = (busy.join().unwrap(), queued.join().unwrap());
        (busy, queued, waiting, queues(sock))
    });
    let (busy, queued, waiting, _) = &seen;
    assert_eq!(busy, queued, "{seen:?}");
    assert!(
        waiting.contains(&(format!("l/{busy}"), "1".into(), "1".into())),
        "{seen:?}"
    );
    assert!(
        waiting.contains(&("l/BACKEND".into(), "0".into(), "0".into())),
        "{seen:?}"
    );
}

/// `minconn`/`fullconn`: with `minconn 1 maxconn 10` behind `fullconn 20`, a server's limit is
/// 1 until the backend carries 4 requests, and the balancer skips a server at that limit: the
/// second request goes to the other server, the third waits in the backend's queue for the
/// first to free a slot (not on the server round-robin names next).
#[test]
fn minconn_limits_are_seen_by_the_balancer() {
    first_free_slot_takes_the_queued_request(
        "queue-minconn",
        "    fullconn 20\n",
        ("minconn 1 maxconn 10", "minconn 1 maxconn 10"),
    );
}

/// A request waiting in the backend's queue is served as soon as a server becomes usable
/// (`set server ... state ready`), before the busy server frees its slot.
#[test]
fn a_server_coming_back_takes_the_waiting_requests() {
    let params = ("maxconn 1", "maxconn 1 disabled");
    let seen = differential("queue-ready", "roundrobin", "", params, &|fe, sock| {
        let busy = background(fe, "/slow/2500", "");
        let queued = background(fe, "/", "");
        let waiting = queues(sock);
        runtime_command(sock, "set server l/b state ready").unwrap();
        let queued = queued.join().unwrap();
        // Answered while the busy request still runs.
        let busy_running = !busy.is_finished();
        (busy.join().unwrap(), queued, busy_running, waiting)
    });
    assert_eq!(
        (seen.0.as_str(), seen.1.as_str(), seen.2),
        ("a", "b", true),
        "{seen:?}"
    );
}

/// With `option redispatch`, the requests waiting in a server's queue move to the backend's
/// queue when it goes into maintenance, and another server serves them at once; without it
/// they stay on their server.
#[test]
fn redispatch_moves_the_queue_of_a_server_put_in_maintenance() {
    for option in ["    option redispatch\n", ""] {
        let params = ("maxconn 1", "maxconn 1");
        let seen = differential("queue-redisp", "hdr(x-key)", option, params, &|fe, sock| {
            let busy = background(fe, "/slow/2000", "k1");
            let queued = background(fe, "/", "k1");
            let waiting = queues(sock);
            let target = waiting
                .iter()
                .find(|(name, q, _)| name != "l/BACKEND" && q == "1")
                .map(|(name, _, _)| name.clone())
                .unwrap_or_default();
            runtime_command(sock, &format!("set server {target} state maint")).unwrap();
            let queued = queued.join().unwrap();
            let busy_running = !busy.is_finished();
            let busy = busy.join().unwrap();
            (busy == queued, busy_running, waiting)
        });
        // Redispatched: the other server answers while the busy one still works.
        let want = !option.is_empty();
        assert_eq!((seen.0, seen.1), (!want, want), "{option:?}: {seen:?}");
    }
}

/// `slowstart` with `maxconn`: a server leaving maintenance accepts 1 connection at first (its
/// limit grows from 1 to `maxconn` over the ramp), so of three requests sent at once, one is
/// served and two wait (in the backend's queue: they were balanced).
#[test]
fn slowstart_ramps_the_connection_limit_from_one() {
    let params = ("maxconn 10 slowstart 60s disabled", "disabled");
    let seen = differential("queue-slowstart", "roundrobin", "", params, &|fe, sock| {
        runtime_command(sock, "set server l/a state ready").unwrap();
        let sent: Vec<_> = (0..3).map(|_| background(fe, "/slow/1000", "")).collect();
        let waiting = queues(sock);
        let served: Vec<String> = sent.into_iter().map(|h| h.join().unwrap()).collect();
        (served, waiting)
    });
    assert_eq!(seen.0, ["a", "a", "a"], "{seen:?}");
    assert!(
        seen.1
            .contains(&("l/BACKEND".into(), "2".into(), "2".into())),
        "{seen:?}"
    );
}
