//! Seamless reload by hand (issue #10, docs/adr/0005-seamless-reload.md): `stats socket ...
//! expose-fd listeners` in the old process, `-x <socket> -sf <old>` for the new one. The new
//! process must accept on the very sockets of the old one (same inodes), and haproxy 2.6 must
//! be able to take over from ringlb and ringlb from haproxy (the `_getsocks` wire format is
//! haproxy's). `-x` on a socket that does not expose its listeners fails as in haproxy.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, http_get, listening_inodes, wait_until, ChildGuard, Conn, TempDir,
};

const READY: Duration = Duration::from_secs(30);

fn config(dir: &Path, name: &str, front: SocketAddr, nbthread: u32, expose: bool) -> String {
    format!(
        "global\n    nbthread {nbthread}\n    stats socket {d}/{name}.sock level admin{x}\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {front}\n    http-request return status 200 content-type text/plain string {name}\n",
        d = dir.display(),
        x = if expose { " expose-fd listeners" } else { "" }
    )
}

fn start(bin: &str, dir: &TempDir, name: &str, text: &str, extra: &[String]) -> ChildGuard {
    let cfg = dir.join(&format!("{name}.cfg"));
    std::fs::write(&cfg, text).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-f").arg(&cfg).args(extra);
    ChildGuard::spawn(name, &mut cmd).unwrap()
}

/// Waits until `front` answers with `body` (the new process serves).
fn served_by(front: SocketAddr, body: &str, p: &ChildGuard) {
    assert!(
        wait_until(READY, || http_get(front, "/", &[])
            .is_ok_and(|r| r.status == 200 && r.text() == body)),
        "{body} does not serve\n{}",
        p.dump()
    );
}

fn gone(p: &mut ChildGuard) -> bool {
    wait_until(READY, || !p.is_running())
}

#[test]
fn the_new_process_accepts_on_the_old_sockets_and_haproxy_interoperates() {
    let ringlb = ringlb_testkit::bin_path("ringlb")
        .to_string_lossy()
        .into_owned();
    let dir = TempDir::new("handoff");
    let front = free_addr();
    let sock = |n: &str| dir.join(&format!("{n}.sock")).display().to_string();

    // A: two shards, two listeners.
    let mut a = start(
        &ringlb,
        &dir,
        "a",
        &config(dir.path(), "a", front, 2, true),
        &[],
    );
    served_by(front, "a", &a);
    assert!(wait_until(READY, || Path::new(&sock("a")).exists()));
    // Every shard has bound its listener (the first one may serve before the second binds).
    assert!(wait_until(READY, || listening_inodes(front.port()).len() == 2));
    let inodes = listening_inodes(front.port());

    // B: one shard takes both sockets (none closed, none bound anew); A finishes.
    let args = [
        "-x".to_string(),
        sock("a"),
        "-sf".into(),
        a.pid().to_string(),
    ];
    let mut b = start(
        &ringlb,
        &dir,
        "b",
        &config(dir.path(), "b", front, 1, true),
        &args,
    );
    served_by(front, "b", &b);
    assert!(gone(&mut a), "A finished\n{}", a.dump());
    assert_eq!(listening_inodes(front.port()), inodes, "{}", b.dump());
    for _ in 0..20 {
        assert_eq!(http_get(front, "/", &[]).unwrap().text(), "b");
    }
    // An in-process reload keeps both sockets of the one shard (none retired).
    let said = ringlb_testkit::runtime_command(Path::new(&sock("b")), "reload").unwrap();
    assert!(
        said.starts_with("Configuration reloaded in process"),
        "{said}"
    );
    assert_eq!(listening_inodes(front.port()), inodes, "{}", b.dump());
    assert_eq!(http_get(front, "/", &[]).unwrap().text(), "b");

    if !ringlb_testkit::haproxy_available() {
        return;
    }
    let haproxy = ringlb_testkit::haproxy_bin();
    // haproxy takes over from ringlb: it keeps one of ringlb's sockets (one per bind).
    let args = [
        "-x".to_string(),
        sock("b"),
        "-sf".into(),
        b.pid().to_string(),
    ];
    let mut h = start(
        &haproxy,
        &dir,
        "h",
        &config(dir.path(), "h", front, 1, true),
        &args,
    );
    served_by(front, "h", &h);
    assert!(gone(&mut b), "B finished\n{}", b.dump());
    let now = listening_inodes(front.port());
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(
        inodes.contains(&now[0]),
        "haproxy uses ringlb's socket: {now:?} {inodes:?}"
    );

    // ringlb takes over from haproxy: its two shards, one on haproxy's socket.
    let args = [
        "-x".to_string(),
        sock("h"),
        "-sf".into(),
        h.pid().to_string(),
    ];
    let mut c = start(
        &ringlb,
        &dir,
        "c",
        &config(dir.path(), "c", front, 2, true),
        &args,
    );
    served_by(front, "c", &c);
    assert!(gone(&mut h), "haproxy finished\n{}", h.dump());
    assert!(wait_until(READY, || listening_inodes(front.port()).len() == 2));
    let last = listening_inodes(front.port());
    assert!(
        last.contains(&now[0]),
        "ringlb uses haproxy's socket: {last:?}"
    );
    c.stop(Duration::from_secs(10)).unwrap();
}

/// `-x <socket> -st <old>`: the new process takes the sockets and ends the old one at once
/// (SIGTERM, a hard stop, where `-sf` lets it finish): a request the old process is still
/// reading is cut rather than waited for (the client timeout is a minute), and the old process
/// is gone long before that.
#[test]
fn dash_st_takes_the_sockets_and_ends_the_old_process_at_once() {
    let ringlb = ringlb_testkit::bin_path("ringlb")
        .to_string_lossy()
        .into_owned();
    let dir = TempDir::new("handoff-st");
    let front = free_addr();
    let text = |name: &str| {
        config(dir.path(), name, front, 2, true).replace("timeout client 5s", "timeout client 60s")
    };
    let mut a = start(&ringlb, &dir, "a", &text("a"), &[]);
    served_by(front, "a", &a);
    let sock = dir.join("a.sock").display().to_string();
    assert!(wait_until(READY, || Path::new(&sock).exists()));
    assert!(wait_until(READY, || listening_inodes(front.port()).len() == 2));
    let inodes = listening_inodes(front.port());
    // Half a request head on A: a soft stop would wait for the rest (or the client timeout).
    let mut pending = Conn::connect(front).unwrap();
    pending.send(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(!pending.peer_closed(Duration::from_millis(300)));
    let args = ["-x".to_string(), sock, "-st".into(), a.pid().to_string()];
    let mut b = start(&ringlb, &dir, "b", &text("b"), &args);
    served_by(front, "b", &b);
    assert!(
        wait_until(Duration::from_secs(10), || !a.is_running()),
        "-st ended A at once\n{}",
        a.dump()
    );
    assert!(
        pending.peer_closed(Duration::from_secs(10)),
        "A's half-read request was cut"
    );
    assert_eq!(listening_inodes(front.port()), inodes, "{}", b.dump());
    b.stop(Duration::from_secs(10)).unwrap();
}

/// `-x` on a runtime socket without `expose-fd listeners`: haproxy and ringlb both refuse to
/// start (a standalone process), the old one keeps serving.
#[test]
fn dash_x_on_a_socket_that_does_not_expose_fails_as_in_haproxy() {
    let ringlb = ringlb_testkit::bin_path("ringlb")
        .to_string_lossy()
        .into_owned();
    let dir = TempDir::new("handoff-noexpose");
    let front = free_addr();
    let mut a = start(
        &ringlb,
        &dir,
        "a",
        &config(dir.path(), "a", front, 2, false),
        &[],
    );
    served_by(front, "a", &a);
    let sock = dir.join("a.sock").display().to_string();
    assert!(wait_until(READY, || Path::new(&sock).exists()));
    let mut bins = vec![("ringlb", ringlb.clone())];
    if ringlb_testkit::haproxy_available() {
        bins.push(("haproxy", ringlb_testkit::haproxy_bin()));
    }
    for (name, bin) in bins {
        let args = ["-x".to_string(), sock.clone()];
        let mut b = start(
            &bin,
            &dir,
            name,
            &config(dir.path(), name, front, 1, false),
            &args,
        );
        let status = b.wait_timeout(READY).unwrap().expect("exits");
        assert!(!status.success(), "{name}: {}", b.dump());
        assert!(
            b.stderr()
                .contains("Failed to get the sockets from the old process!"),
            "{name}: {}",
            b.stderr()
        );
        assert_eq!(http_get(front, "/", &[]).unwrap().text(), "a");
    }
    a.stop(Duration::from_secs(10)).unwrap();
}
