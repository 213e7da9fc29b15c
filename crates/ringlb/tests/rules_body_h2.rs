//! The HTTP/2 side of `rules_body.rs`: `option http-buffer-request` / `http-request
//! wait-for-body` with the `req.body*` fetches, `early-hint` (103 HEADERS frames before the
//! final response), `set-timeout server`, `set-mark`, and `disable-l7-retry` with `retry-on`,
//! for h2 clients (prior knowledge: curl, nghttp and the raw h2 client), against haproxy 2.6
//! with the same config.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringlb_testkit::h2raw::{self, Raw};
use ringlb_testkit::{
    curl, free_addr, haproxy_available, write_config, Haproxy, Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(5);

fn config(fe: SocketAddr, fe2: SocketAddr, one: SocketAddr, two: SocketAddr) -> String {
    format!(
        r#"global
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {fe} proto h2
    http-request wait-for-body time 2s if METH_POST
    http-request deny deny_status 403 if {{ req.body_param(user) -m str mallory }}
    http-request return status 200 content-type text/plain lf-string "len=%[req.body_len] size=%[req.body_size] user=%[req.body_param(user)] any=%[req.body_param] body=%[req.body]" if {{ path /echo }}
    http-request set-mark 0x2a if {{ path /mark }}
    http-request set-tos 0x10 if {{ path /mark }}
    http-request return status 200 if {{ path /mark }}
    http-request set-var(txn.path) path
    http-response set-mark 0x2b if {{ var(txn.path) -m str /mark2 }}
    use_backend retry if {{ path_beg /status }}
    http-request early-hint link "</s.css>; rel=preload" if {{ path /hint }}
    http-request early-hint x-path %[path] if {{ path /hint }}
    http-request early-hint x-a a if {{ path /hint }}
    default_backend one
frontend fe2
    bind {fe2} proto h2
    option http-buffer-request
    timeout http-request 600ms
    http-response set-header x-be %[be_name]
    use_backend two if {{ req.body_param(to) -m str two }}
    default_backend one
backend one
    http-request set-timeout server 300ms if {{ path_beg /slow }}
    server s1 {one}
backend two
    server s2 {two}
backend retry
    retry-on 503
    retries 2
    http-request disable-l7-retry if {{ query -m beg noretry }}
    server s3 {one}
"#
    )
}

struct Pair {
    _h: ringlb_testkit::ChildGuard,
    _r: ringlb_testkit::ChildGuard,
    o: (Origin, Origin),
    _dir: TempDir,
    /// (haproxy fe, fe2), (ringlb fe, fe2)
    fronts: [(SocketAddr, SocketAddr); 2],
}

fn start() -> Option<Pair> {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return None;
    }
    let (one, two) = (Origin::start("one"), Origin::start("two"));
    let dir = TempDir::new("rules-body-h2");
    let (h1, h2, r1, r2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let hpath = write_config(&dir, &config(h1, h2, one.addr(), two.addr()));
    let h = Haproxy::start(&hpath, &[h1, h2]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(r1, r2, one.addr(), two.addr())).unwrap();
    let r = Ringlb::start(&rpath, &[r1, r2]);
    Some(Pair {
        _h: h,
        _r: r,
        o: (one, two),
        _dir: dir,
        fronts: [(h1, h2), (r1, r2)],
    })
}

/// `curl --http2-prior-knowledge` with `args`: (`http_version status`, body).
fn h2curl(url: &str, args: &[&str]) -> (String, String) {
    let mut all = vec![
        "--http2-prior-knowledge",
        "-o",
        "-",
        "-w",
        "\n%{http_version} %{http_code}",
    ];
    all.extend_from_slice(args);
    all.push(url);
    let out = curl(&all, T).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_string(), body.to_string())
}

fn form(body: &str) -> Vec<&str> {
    vec![
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "--data-binary",
        body,
    ]
}

/// A POST whose body curl reads from its stdin (so it goes without a length, in DATA frames
/// as written): `parts` with `pause` between them. Returns (`http_version status`, body).
fn streamed_post(url: &str, parts: &[&[u8]], pause: Duration) -> (String, String) {
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "--http2-prior-knowledge",
            "-X",
            "POST",
            "-T",
            "-",
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "-o",
            "-",
            "-w",
            "\n%{http_version} %{http_code}",
            url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        stdin.write_all(p).unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    // curl bounds itself (`--max-time`); the kill is for a curl that would not.
    let deadline = Instant::now() + T + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_string(), body.to_string())
}

#[test]
fn h2_buffered_bodies_are_seen_by_the_rules_as_by_haproxy() {
    let Some(p) = start() else { return };
    let mut seen = Vec::new();
    for (fe, fe2) in p.fronts {
        let echo = format!("http://{fe}/echo");
        let mut r = Vec::new();
        r.push(h2curl(&echo, &form("user=bob&pass=x%20y")));
        // No length, the body in two DATA parts: the rules see both.
        r.push(streamed_post(
            &echo,
            &[b"user=al", b"ice&a=1"],
            Duration::from_millis(150),
        ));
        r.push(h2curl(&echo, &form("a=1&user=")));
        r.push(h2curl(&format!("http://{fe}/x"), &form("user=mallory")));
        // A GET has no body to wait for.
        r.push(h2curl(&echo, &[]));
        // Routing on the body (`option http-buffer-request` on the frontend): the body
        // still reaches the server (the origin echoes its length).
        for to in ["to=two&x=1", "to=one"] {
            let (status, head) = h2curl(
                &format!("http://{fe2}/echo"),
                &[&form(to)[..], &["-D", "-", "-o", "/dev/null"]].concat(),
            );
            let be = head
                .lines()
                .find_map(|l| l.strip_prefix("x-be: ").map(|v| v.trim().to_string()));
            r.push((status, be.unwrap_or_default()));
        }
        seen.push(r);
    }
    let (h, r) = (&seen[0], &seen[1]);
    assert_eq!(r, h, "ringlb vs haproxy");
    // What both agree on is what the config asks for.
    assert_eq!(
        r[0],
        (
            "2 200".to_string(),
            "len=19 size=19 user=bob any=bob body=user=bob&pass=x%20y".to_string()
        )
    );
    assert_eq!(
        r[1].1,
        "len=14 size=14 user=alice any=alice body=user=alice&a=1"
    );
    assert_eq!(r[3].0, "2 403", "{:?}", r[3]);
    assert_eq!(r[4].1, "len=0 size=0 user= any= body=");
    assert_eq!(r[5], ("2 200".to_string(), "two".to_string()));
    assert_eq!(r[6], ("2 200".to_string(), "one".to_string()));
}

#[test]
fn an_h2_body_that_does_not_come_gets_408_as_from_haproxy() {
    let Some(p) = start() else { return };
    let mut seen = Vec::new();
    for (_, fe2) in p.fronts {
        // HEADERS and a first DATA frame, the stream left open (curl would block on its
        // stdin and not read the answer: the raw client does).
        let mut c = Raw::connect(fe2);
        let block = h2raw::hpack(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "h2.test"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        c.send(&h2raw::frame(h2raw::HEADERS, h2raw::END_HEADERS, 1, &block))
            .unwrap();
        c.send(&h2raw::frame(h2raw::DATA, 0, 1, b"to=tw")).unwrap();
        let t = Instant::now();
        let frames = c.until_end(1);
        // `timeout http-request 600ms` ends the wait, well before the 5 s client timeout.
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let body: Vec<u8> = frames
            .iter()
            .filter(|f| f.0 == h2raw::DATA && f.2 == 1)
            .flat_map(|f| f.3.clone())
            .collect();
        let body = String::from_utf8_lossy(&body).into_owned();
        seen.push((h2raw::rst_code(&frames, 1), body));
    }
    assert_eq!(seen[1], seen[0], "ringlb vs haproxy");
    assert_eq!(seen[1].0, None);
    assert!(seen[1].1.contains("408 Request Time-out"), "{seen:?}");
}

/// The fields of each response HEADERS block `nghttp -v` shows for a GET of `url`, in order,
/// up to the final response's `:status`.
fn interim_blocks(url: &str) -> Vec<String> {
    let out = ringlb_testkit::run_bounded(Command::new("nghttp").args(["-v", url]), T).unwrap();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut fields = Vec::new();
    for l in log.lines() {
        // `[  0.004] recv (stream_id=13) :status: 103`
        let Some((_, rest)) = l.split_once("recv (stream_id=") else {
            continue;
        };
        let Some((_, field)) = rest.split_once(") ") else {
            continue;
        };
        if field.starts_with(":status:") && !field.ends_with("103") {
            fields.push(field.to_string());
            break;
        }
        fields.push(field.to_string());
    }
    fields
}

#[test]
fn h2_early_hints_and_set_timeout_as_haproxy() {
    let Some(p) = start() else { return };
    let mut hints = Vec::new();
    let mut slow = Vec::new();
    for (fe, _) in p.fronts {
        hints.push(interim_blocks(&format!("http://{fe}/hint")));
        // `set-timeout server 300ms` against an origin answering after 3 s: 504.
        let t = Instant::now();
        slow.push(h2curl(&format!("http://{fe}/slow/3000"), &[]).0);
        assert!(
            t.elapsed() < Duration::from_millis(2500),
            "{:?}",
            t.elapsed()
        );
    }
    assert_eq!(hints[1], hints[0], "ringlb vs haproxy");
    // One 103 per conditional hint (each ends its own), then the server's 200.
    assert_eq!(
        hints[1],
        [
            ":status: 103",
            "link: </s.css>; rel=preload",
            ":status: 103",
            "x-path: /hint",
            ":status: 103",
            "x-a: a",
            ":status: 200"
        ]
    );
    assert_eq!(slow[1], slow[0], "ringlb vs haproxy");
    assert_eq!(slow[1], "2 504");
}

/// The proxy's socket of the client connection from local port `port`, as `ss -e` shows it.
fn proxy_socket(port: u16) -> String {
    let out = Command::new("ss")
        .args([
            "-tnHe",
            "state",
            "established",
            &format!("( dport = :{port} )"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends a GET of `path` on `stream` and reads to the stream's end; true when it ended with
/// a response (HEADERS or DATA with END_STREAM), not a reset.
fn h2_get(c: &mut Raw, stream: u32, path: &str) -> bool {
    let block = h2raw::hpack(&h2raw::get_fields(path, &[]));
    c.send(&h2raw::frame(
        h2raw::HEADERS,
        h2raw::END_STREAM | h2raw::END_HEADERS,
        stream,
        &block,
    ))
    .unwrap();
    let frames = c.until_end(stream);
    h2raw::status_of(&frames, stream).is_some() && h2raw::rst_code(&frames, stream).is_none()
}

#[test]
fn h2_set_mark_marks_the_client_connection_as_haproxy() {
    let Some(p) = start() else { return };
    let mut marks = Vec::new();
    for (fe, _) in p.fronts {
        let mut c = Raw::connect(fe);
        let port = c.s.local_addr().unwrap().port();
        let before = proxy_socket(port);
        assert!(h2_get(&mut c, 1, "/mark"));
        let after = proxy_socket(port);
        // `http-response set-mark` on the next stream, answered by the server.
        assert!(h2_get(&mut c, 3, "/mark2"));
        let later = proxy_socket(port);
        marks.push((
            before.contains("fwmark:0x2a"),
            after.contains("fwmark:0x2a"),
            later.contains("fwmark:0x2b"),
        ));
    }
    assert_eq!(marks[1], marks[0], "ringlb vs haproxy");
    assert_eq!(marks[1], (false, true, true), "{marks:?}");
}

#[test]
fn h2_disable_l7_retry_stops_retry_on_as_haproxy() {
    let Some(p) = start() else { return };
    let mut seen = Vec::new();
    for ((fe, _), who) in p.fronts.into_iter().zip(["h", "r"]) {
        for tag in ["retry", "noretry"] {
            let target = format!("/status/503?{tag}-{who}");
            let (status, _) = h2curl(&format!("http://{fe}{target}"), &[]);
            assert_eq!(status, "2 503");
            let needle = format!("{target} ");
            let count = || p.o.0.guard().stderr().matches(&needle).count();
            // Without the action: the first attempt and `retries 2`; with it: one.
            let want = if tag == "retry" { 3 } else { 1 };
            ringlb_testkit::wait_until(T, || count() >= want);
            // Time for an extra attempt to show up if one were (wrongly) made.
            std::thread::sleep(Duration::from_millis(200));
            seen.push(count());
        }
    }
    assert_eq!(seen[2..], seen[..2], "ringlb vs haproxy");
    assert_eq!(seen[2..], [3, 1]);
}
