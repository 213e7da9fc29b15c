//! The guide's production configuration (config/examples/guide-22-production.cfg) served by the
//! real binary, end to end: HTTP→HTTPS redirect, TLS with HTTP/2, security headers, forwarded
//! headers and request ids, content routing, cookie persistence, health checks, rate limiting,
//! the stats page, Prometheus and the runtime socket. Only what a test machine needs changes:
//! loopback ports, no daemon/chroot/user switch.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use ringlb_testkit::{
    curl, free_addr, guide_config, run_bounded, wait_until, write_config, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

#[test]
fn the_guides_production_configuration_works_end_to_end() {
    let names = ["web1", "web2", "api1", "api2", "static1", "ws1", "ws2"];
    let origins: Vec<Origin> = names.iter().map(|n| Origin::start(n)).collect();
    let (http, https, stats) = (free_addr(), free_addr(), free_addr());
    let mut ports = vec![(18022, http), (18422, https), (18423, stats)];
    for (i, o) in origins.iter().enumerate() {
        ports.push((19221 + i as u16, o.addr()));
    }
    let dir = TempDir::new("guide-prod");
    let sock = dir.join("admin.sock");
    let cfg = guide_config("guide-22-production.cfg", &ports, sock.to_str().unwrap());
    let path = write_config(&dir, &cfg);
    let _proxy = Ringlb::start(&path, &[http, https, stats]);

    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/fixtures/certs/site.pem");
    let ca = ca.to_str().unwrap();
    let https_url = |p: &str| format!("https://localhost:{}{p}", https.port());
    let resolve = format!("localhost:{}:127.0.0.1", https.port());
    let get = |args: &[&str]| {
        let out = curl(args, T).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // Plain HTTP is redirected to HTTPS with 301.
    let head = get(&["-si", &format!("http://{http}/x?y=1")]);
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(
        head.contains(&format!("location: https://{http}/x?y=1")),
        "{head}"
    );

    // HTTPS with HTTP/2: security headers; the origin sees the forwarded headers.
    let out = get(&[
        "-si",
        "--http2",
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        &https_url("/echo"),
    ]);
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    for h in [
        "strict-transport-security: max-age=63072000; includeSubDomains; preload",
        "x-frame-options: SAMEORIGIN",
        "x-content-type-options: nosniff",
        "set-cookie: SERVERID=w",
    ] {
        assert!(out.contains(h), "missing {h} in {out}");
    }
    for h in [
        "header: x-forwarded-proto: https",
        "header: x-real-ip: 127.0.0.1",
        "header: x-forwarded-for: 127.0.0.1",
    ] {
        assert!(out.contains(h), "missing {h} in {out}");
    }
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("header: x-request-id: "))
        .unwrap_or_else(|| panic!("no request id in {out}"));
    assert_eq!(id.len(), 36, "uuid: {id}");
    assert_eq!(id.matches('-').count(), 4, "uuid: {id}");

    // Content routing.
    let origin_of = |p: &str| {
        let out = get(&["-si", "--cacert", ca, "--resolve", &resolve, &https_url(p)]);
        out.lines()
            .find_map(|l| l.strip_prefix("x-origin: "))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    assert!(origin_of("/api/users").starts_with("api"));
    assert_eq!(origin_of("/static/app.js"), "static1");
    assert!(origin_of("/").starts_with("web"));

    // Cookie persistence: a client naming web2 stays on web2.
    for _ in 0..4 {
        let out = get(&[
            "-si",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
            "-b",
            "SERVERID=w2",
            &https_url("/echo"),
        ]);
        assert!(out.contains("x-origin: web2"), "{out}");
        assert!(
            !out.contains("SERVERID="),
            "indirect: the cookie is not forwarded: {out}"
        );
    }

    // Health checks are green; the stats page (with auth) and Prometheus show the proxies.
    let csv_url = format!("http://{stats}/stats;csv");
    let mut csv = String::new();
    assert!(
        wait_until(T, || {
            csv = get(&["-s", "-u", "admin:changeme_in_production", &csv_url]);
            csv.lines()
                .any(|l| l.starts_with("web_servers,web1,") && l.contains(",L7OK,"))
        }),
        "{csv}"
    );
    let metrics = get(&["-s", &format!("http://{stats}/metrics")]);
    assert!(
        metrics.contains("haproxy_backend_up{proxy=\"api_servers\",backend=\"api_servers\"} 1"),
        "{metrics}"
    );

    // The runtime socket.
    let cli = |cmd: &str| {
        let out = run_bounded(
            Command::new("sh").arg("-c").arg(format!(
                "echo '{cmd}' | socat -t 2 stdio UNIX-CONNECT:{}",
                sock.display()
            )),
            T,
        )
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let state = cli("show servers state web_servers");
    assert!(
        state.starts_with("1\n# be_id be_name srv_id srv_name"),
        "{state}"
    );
    assert!(
        cli("show table https_in").starts_with("# table: https_in, type: ip, size:204800, used:1")
    );

    // Rate limiting: above 200 requests in 10 s from one address, 429.
    let mut codes = Vec::new();
    let url = https_url("/");
    for _ in 0..5 {
        let mut args = vec![
            "-s",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
            "-w",
            "%{http_code}\\n",
        ];
        for _ in 0..50 {
            args.extend(["-o", "/dev/null", url.as_str()]);
        }
        codes.extend(get(&args).lines().map(str::to_string).collect::<Vec<_>>());
    }
    let limited = codes.iter().filter(|c| *c == "429").count();
    assert!(
        limited >= 30,
        "{limited} of {} limited: {codes:?}",
        codes.len()
    );
}
