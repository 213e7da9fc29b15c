//! The `cache` section with `http-request cache-use` / `http-response cache-store`: the same
//! sequence of requests through haproxy 2.6 and ringlb (same config, one origin that marks
//! each response it makes with a fresh UUID), compared response by response: status, fields
//! (the UUID replaced by the order it was first seen, so "served from the cache" shows as a
//! repeated mark; `age` values masked), body; then the frontend's `cache_lookups` and
//! `cache_hits` counters from `show stat`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, parse_responses, send_raw, write_config, write_file, Haproxy,
    Ringlb, StatCsv, TempDir,
};

const T: Duration = Duration::from_secs(5);

/// The origin: haproxy answering from `return` rules, each response marked `x-n: <uuid>`.
const ORIGIN: &str = r#"
    http-request return status 200 content-type text/plain hdr cache-control "max-age=30" hdr x-n "%[uuid]" lf-string "body %[path]" if { path_beg /cc }
    http-request return status 200 content-type text/plain hdr x-n "%[uuid]" lf-string "plain" if { path_beg /none }
    http-request return status 200 content-type text/plain hdr cache-control "max-age=30" hdr vary accept-encoding hdr x-n "%[uuid]" lf-string "vary" if { path_beg /vary }
    http-request return status 200 content-type text/plain hdr cache-control "max-age=30" hdr vary user-agent hdr x-n "%[uuid]" lf-string "ua" if { path_beg /ua }
    http-request return status 200 content-type text/plain hdr cache-control "no-store" hdr x-n "%[uuid]" lf-string "nostore" if { path_beg /nostore }
    http-request return status 200 content-type text/plain hdr cache-control "private, max-age=30" hdr x-n "%[uuid]" lf-string "private" if { path_beg /private }
    http-request return status 200 content-type text/plain hdr cache-control "max-age=30" hdr set-cookie "a=b" hdr x-n "%[uuid]" lf-string "cookie" if { path_beg /cookie }
    http-request return status 200 content-type text/plain hdr etag "\"x1\"" hdr x-n "%[uuid]" lf-string "etag" if { path_beg /etag }
    http-request return status 200 content-type text/plain hdr cache-control "max-age=30" hdr x-n "%[uuid]" lf-string "%[path]-0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" if { path_beg /big }
    http-request return status 200 content-type text/plain hdr cache-control "max-age=30" hdr x-n "%[uuid]" lf-string "%[path]" if { path_beg /sz }
    http-request return status 404 content-type text/plain hdr cache-control "max-age=30" hdr x-n "%[uuid]" lf-string "nf"
"#;

fn origin_config(addr: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    \
         timeout client 5s\n    timeout server 5s\nfrontend origin\n    bind {addr}\n{ORIGIN}"
    )
}

fn config(fe: SocketAddr, fe2: SocketAddr, origin: SocketAddr, sock: &Path) -> String {
    format!(
        r#"global
    nbthread 1
    stats socket {sock} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
cache c1
    total-max-size 4
    max-object-size 300
    max-age 60
    process-vary on
    max-secondary-entries 4
frontend fe
    bind {fe}
    filter cache c1
    http-request cache-use c1 if !{{ req.hdr(x-skip) -m found }}
    http-response cache-store c1
    default_backend be
frontend fe2
    bind {fe2} proto h2
    http-request cache-use c1
    http-response cache-store c1
    default_backend be
backend be
    server s1 {origin}
"#,
        sock = sock.display()
    )
}

/// The requests, in order: (raw request, method).
fn sequence() -> Vec<(String, &'static str)> {
    let get = |path: &str, extra: &str| {
        (
            format!("GET {path} HTTP/1.1\r\nHost: h\r\n{extra}Connection: close\r\n\r\n"),
            "GET",
        )
    };
    let head = |path: &str| {
        (
            format!("HEAD {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
            "HEAD",
        )
    };
    vec![
        get("/cc/a", ""),
        get("/cc/a", ""),
        head("/cc/a"),
        // HTTP/1.0: neither served nor stored.
        ("GET /cc/a HTTP/1.0\r\nHost: h\r\n\r\n".to_string(), "GET"),
        get("/cc/a", ""),
        // `no-cache`: fetched again, and the new response replaces the stored one.
        get("/cc/a", "Cache-Control: no-cache\r\n"),
        get("/cc/a", ""),
        get("/cc/a", "Pragma: no-cache\r\n"),
        get("/cc/a", ""),
        // Authorization: bypassed.
        get("/cc/a", "Authorization: Basic eDp5\r\n"),
        // Another host, another object.
        (
            "GET /cc/a HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n".to_string(),
            "GET",
        ),
        // A HEAD miss stores nothing.
        head("/cc/b"),
        get("/cc/b", ""),
        get("/cc/b", ""),
        get("/cc/b?q=1", ""),
        // POST: bypassed.
        (
            "POST /cc/b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab"
                .to_string(),
            "POST",
        ),
        get("/none", ""),
        get("/none", ""),
        get("/nostore", ""),
        get("/nostore", ""),
        get("/private", ""),
        get("/private", ""),
        get("/cookie", ""),
        get("/cookie", ""),
        get("/etag", ""),
        get("/etag", ""),
        // A conditional request the stored object satisfies: 304 from the cache.
        get("/etag", "If-None-Match: \"x1\"\r\n"),
        get("/etag", "If-None-Match: \"x2\"\r\n"),
        get("/x404", ""),
        get("/x404", ""),
        get("/big/1", ""),
        get("/big/1", ""),
        // `max-object-size 300`: haproxy counts head, body and 139 bytes of its own (a
        // 135-byte head here: a 26-byte body fits, 27 does not).
        get("/sz/aaaaaaaaaaaaaaaaaaaaaa", ""),
        get("/sz/aaaaaaaaaaaaaaaaaaaaaa", ""),
        get("/sz/aaaaaaaaaaaaaaaaaaaaaaa", ""),
        get("/sz/aaaaaaaaaaaaaaaaaaaaaaa", ""),
        get("/ua", ""),
        get("/ua", ""),
        // Vary: accept-encoding, an identity response: every request accepts it.
        get("/vary/1", "Accept-Encoding: gzip\r\n"),
        get("/vary/1", "Accept-Encoding: gzip\r\n"),
        get("/vary/1", "Accept-Encoding: br, deflate\r\n"),
        get("/vary/1", ""),
        // `cache-use` did not run: `cache-store` alone stores nothing (haproxy 2.6), so the
        // next request misses, and the one after hits.
        get("/cc/z", "X-Skip: 1\r\n"),
        get("/cc/z", ""),
        get("/cc/z", ""),
    ]
}

/// One response as compared: status line, fields in order (the mark and `age` masked),
/// body.
fn shape(
    r: &ringlb_testkit::Response,
    marks: &mut HashMap<String, usize>,
) -> (u16, Vec<String>, String) {
    let fields = r
        .headers
        .iter()
        .map(|(n, v)| {
            let n = n.to_ascii_lowercase();
            match n.as_str() {
                "x-n" => {
                    let next = marks.len();
                    format!("x-n: #{}", *marks.entry(v.clone()).or_insert(next))
                }
                "age" => "age: *".to_string(),
                _ => format!("{n}: {v}"),
            }
        })
        .collect();
    (
        r.status,
        fields,
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

/// `cache_lookups` and `cache_hits` of frontend `fe` in `show stat`.
fn cache_counters(sock: &Path) -> (String, String) {
    let stat = StatCsv::read(sock).unwrap();
    let get = |col: &str| stat.get("fe", "FRONTEND", col).unwrap().to_string();
    (get("cache_lookups"), get("cache_hits"))
}

#[test]
fn the_cache_answers_as_haproxy_does() {
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let dir = TempDir::new("cache-diff");
    let origin = free_addr();
    let opath = write_file(&dir, "origin.cfg", origin_config(origin).as_bytes());
    let _o = Haproxy::start(&opath, &[origin]);
    let (hf, rf, hf2, rf2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let (hsock, rsock) = (dir.join("h.sock"), dir.join("r.sock"));
    let hpath = write_config(&dir, &config(hf, hf2, origin, &hsock));
    let _h = Haproxy::start(&hpath, &[hf, hf2]);
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, config(rf, rf2, origin, &rsock)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf, rf2]);
    let mut seen = Vec::new();
    for front in [hf, rf] {
        let mut marks = HashMap::new();
        let mut got = Vec::new();
        for (req, method) in sequence() {
            let raw = send_raw(front, req.as_bytes(), T).unwrap();
            let rs = parse_responses(&raw, method).unwrap();
            assert_eq!(rs.len(), 1, "{req}: {}", String::from_utf8_lossy(&raw));
            got.push((
                req.lines().next().unwrap_or("").to_string(),
                shape(&rs[0], &mut marks),
            ));
        }
        seen.push(got);
    }
    for (h, r) in seen[0].iter().zip(&seen[1]) {
        assert_eq!(r, h, "ringlb vs haproxy");
    }
    // What both agree on is what the manual says: a repeated GET is a hit with `age`.
    let r = &seen[1];
    assert_eq!(r[0].1 .1.iter().filter(|f| f.starts_with("age")).count(), 0);
    assert!(r[1].1 .1.contains(&"age: *".to_string()), "{:?}", r[1]);
    assert_eq!(
        r[1].1 .1.iter().find(|f| f.starts_with("x-n")),
        Some(&"x-n: #0".to_string())
    );
    assert_eq!(r[2].1 .2, "", "HEAD hit without body");
    assert_eq!(
        cache_counters(&rsock),
        cache_counters(&hsock),
        "cache_lookups, cache_hits"
    );
    // HTTP/2 clients (curl, prior knowledge) use and fill the cache the same way; an h2
    // request is keyed by its absolute URI, so HTTP/1 requests do not see its objects.
    let mut seen = Vec::new();
    for (front, front2) in [(hf, hf2), (rf, rf2)] {
        let mut marks = HashMap::new();
        let mut got = Vec::new();
        for (path, extra) in [
            ("/cc/h2", &[][..]),
            ("/cc/h2", &[]),
            ("/cc/h2", &["-I"]),
            ("/cc/h2", &["-H", "Cache-Control: no-cache"]),
            ("/cc/h2", &[]),
            ("/vary/h2", &["-H", "Accept-Encoding: gzip"]),
            ("/vary/h2", &["-H", "Accept-Encoding: br"]),
            ("/nostore/h2", &[]),
            ("/nostore/h2", &[]),
        ] {
            got.push(h2_shape(front2, path, extra, &mut marks));
        }
        // The object stored over h2 is not the HTTP/1 request's.
        let raw = send_raw(
            front,
            b"GET /cc/h2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            T,
        )
        .unwrap();
        let rs = parse_responses(&raw, "GET").unwrap();
        got.push(shape(&rs[0], &mut marks));
        seen.push(got);
    }
    for (h, r) in seen[0].iter().zip(&seen[1]) {
        assert_eq!(r, h, "h2: ringlb vs haproxy");
    }
    let r = &seen[1];
    assert!(r[1].1.contains(&"age: *".to_string()), "{:?}", r[1]);
    assert!(!r[9].1.contains(&"age: *".to_string()), "{:?}", r[9]);
}

/// `curl --http2-prior-knowledge -si` of `path` on `front`, shaped as [`shape`] does.
fn h2_shape(
    front: SocketAddr,
    path: &str,
    extra: &[&str],
    marks: &mut HashMap<String, usize>,
) -> (u16, Vec<String>, String) {
    let url = format!("http://{front}{path}");
    let mut args = vec!["--http2-prior-knowledge", "-si"];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = ringlb_testkit::curl(&args, T).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let r = ringlb_testkit::Response {
        status,
        reason: String::new(),
        minor: 1,
        headers,
        body: body.as_bytes().to_vec(),
        interim: Vec::new(),
        framing: ringlb_testkit::Framing::UntilClose,
        trailers: Vec::new(),
    };
    shape(&r, marks)
}
