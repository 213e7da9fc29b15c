//! The testkit's process helpers against real processes: `Origins` found through
//! `bin_path` (beside this test executable), and `Haproxy` in front of them, as the
//! differential tests of other crates use them.

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, http_get, try_bin_path, wait_until, write_config, Haproxy,
    Origins, TempDir,
};

#[test]
fn bin_path_finds_the_origin_beside_the_test_executable() {
    let found = try_bin_path("ringlb-origin").expect("cargo builds the bin for this test");
    assert_eq!(
        found,
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_ringlb-origin"))
    );
}

#[test]
fn origins_start_distinct_named_servers_and_die_with_the_guard() {
    let origins = Origins::start(3);
    assert_eq!(origins.names(), ["s1", "s2", "s3"]);
    for o in origins.iter() {
        let r = http_get(o.addr(), "/", &[]).unwrap();
        assert_eq!(r.text(), format!("hello from {}\n", o.name()));
    }
    let (addr, pid) = (origins.get(0).addr(), origins.get(0).pid());
    drop(origins);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            // A zombie cannot remain: the guard reaped it. A recycled pid is another program.
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !cmd.contains("ringlb-origin")
        }
    );
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
}

/// The shape of a differential test: haproxy in front of real origins.
#[test]
fn haproxy_round_robins_over_origins_and_forwards_for() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs haproxy (scripts/test)"
        );
        eprintln!("SKIPPED: haproxy not installed (scripts/test installs it)");
        return;
    }
    let origins = Origins::start(3);
    let bind = free_addr();
    let dir = TempDir::new("kit-haproxy");
    let cfg = write_config(
        &dir,
        &format!(
            "global\n    maxconn 100\n\
defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
frontend fe\n    bind {bind}\n    option forwardfor\n    default_backend be\n\
backend be\n    balance roundrobin\n{}",
            origins.server_lines("")
        ),
    );
    Haproxy::check(&cfg).unwrap();
    let mut haproxy = Haproxy::start(&cfg, &[bind]);

    let mut served: HashMap<String, usize> = HashMap::new();
    for _ in 0..6 {
        let r = http_get(bind, "/", &[]).unwrap();
        assert_eq!(r.status, 200);
        *served
            .entry(r.header("x-origin").unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        served,
        HashMap::from([("s1".into(), 2), ("s2".into(), 2), ("s3".into(), 2)])
    );

    let echo = http_get(bind, "/echo", &[("X-Test", "1")]).unwrap().text();
    // HAProxy 2.x (HTX) forwards header names in lower case; ringlb is compared to that.
    assert!(echo.contains("header: x-test: 1\n"), "{echo}");
    assert!(
        echo.contains("header: x-forwarded-for: 127.0.0.1\n"),
        "{echo}"
    );

    haproxy.stop(Duration::from_secs(3)).unwrap();
    assert!(wait_until(Duration::from_secs(3), || TcpStream::connect(
        bind
    )
    .is_err()));
}

#[test]
fn origin_restarts_on_the_same_addresses() {
    let mut o = ringlb_testkit::Origin::start_with(ringlb_testkit::OriginOptions {
        listeners: 2,
        ..ringlb_testkit::OriginOptions::default()
    });
    let (addrs, pid) = (o.addrs().to_vec(), o.pid());
    assert_eq!(addrs.len(), 2);
    assert_ne!(addrs[0], addrs[1]);
    for a in &addrs {
        let r = http_get(*a, "/", &[]).unwrap();
        assert_eq!(
            r.header("x-origin-port"),
            Some(a.port().to_string().as_str())
        );
    }
    o.stop();
    assert!(TcpStream::connect_timeout(&addrs[0], Duration::from_millis(200)).is_err());
    o.restart();
    assert_ne!(o.pid(), pid);
    assert_eq!(o.addrs(), addrs.as_slice());
    assert_eq!(http_get(addrs[1], "/", &[]).unwrap().status, 200);
}

#[test]
fn curl_helper_talks_to_the_origin() {
    let o = ringlb_testkit::Origin::start("c1");
    let url = format!("http://{}/echo", o.addr());
    let out =
        ringlb_testkit::curl(&["-H", "X-From-Curl: yes", &url], Duration::from_secs(10)).unwrap();
    assert!(out.status.success(), "{out:?}");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("header: X-From-Curl: yes\n"), "{body}");
}
