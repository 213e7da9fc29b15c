//! Hostile HTTP/2 input turned into HTTP/1: a corpus of requests that are malformed in HTTP/2
//! (RFC 9113 §8.2 and §8.3) or that an HTTP/1 origin would read differently than the client
//! meant (CR, LF or NUL in values, pseudo-header misuse, connection-specific fields,
//! `content-length` against DATA, upper-case names...), each sent on its own connection with a
//! raw frame client to ringlb (`bind ... proto h2`) in front of a strict h11 origin.
//!
//! Asserted: 0 malformed requests forwarded — the origin never logs a protocol error, never sees
//! a field that was split out of another value, never sees a rejected case, and sees every valid
//! case exactly once with the body the client sent. The same corpus goes through haproxy 2.6
//! (to its own h11 origin) and the two outcomes are printed side by side, for the record.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::h2raw::*;
use ringlb_testkit::{
    free_addr, haproxy_available, wait_until, write_config, ChildGuard, Haproxy, Ringlb, TempDir,
};

/// What a case must do.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Malformed: never reaches the origin, never answered 200.
    Reject,
    /// Valid: answered 200, reaches the origin once with this many body bytes.
    Forward(usize),
    /// Either is acceptable (RFC leaves it to the implementation); at most once at the origin.
    Either,
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

struct Case {
    name: &'static str,
    /// The request's header block; `{P}` in a value stands for the case's own path.
    fields: Fields,
    /// DATA frames; the last one ends the stream unless there are trailers.
    data: Vec<Vec<u8>>,
    trailers: Option<Fields>,
    /// A DATA frame sent after the stream was ended.
    after_end: Option<Vec<u8>>,
    expect: Expect,
}

fn f(n: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
    (n.as_bytes().to_vec(), v.as_bytes().to_vec())
}

fn fb(n: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (n.to_vec(), v.to_vec())
}

/// A GET's pseudo-headers followed by `extra`.
fn get(extra: Fields) -> Fields {
    method("GET", extra)
}

fn method(m: &str, extra: Fields) -> Fields {
    let mut v = vec![
        f(":method", m),
        f(":scheme", "http"),
        f(":path", "{P}"),
        f(":authority", "h2.test"),
    ];
    v.extend(extra);
    v
}

fn case(name: &'static str, fields: Fields, expect: Expect) -> Case {
    Case {
        name,
        fields,
        data: Vec::new(),
        trailers: None,
        after_end: None,
        expect,
    }
}

fn with_body(name: &'static str, fields: Fields, data: &[&[u8]], expect: Expect) -> Case {
    Case {
        data: data.iter().map(|d| d.to_vec()).collect(),
        ..case(name, fields, expect)
    }
}

/// `fields` without the pseudo-header named `name`.
fn without(mut fields: Fields, name: &str) -> Fields {
    fields.retain(|(n, _)| n != name.as_bytes());
    fields
}

fn corpus() -> Vec<Case> {
    use Expect::*;
    let inj = "a\r\ninjected: 1";
    let mut c = vec![
        // CR, LF, NUL in values and names: HTTP/1 would read a second field line.
        case("CRLF in a value", get(vec![f("x-a", inj)]), Reject),
        case(
            "LF in a value",
            get(vec![f("x-a", "a\ninjected: 1")]),
            Reject,
        ),
        case(
            "CR in a value",
            get(vec![f("x-a", "a\rinjected: 1")]),
            Reject,
        ),
        case("NUL in a value", get(vec![fb(b"x-a", b"a\0b")]), Reject),
        case(
            "CRLF in a name",
            get(vec![f("x-a\r\ninjected", "1")]),
            Reject,
        ),
        case("LF in a name", get(vec![f("x-a\ninjected", "1")]), Reject),
        case("NUL in a name", get(vec![fb(b"x\0a", b"1")]), Reject),
        case(
            "CRLF in a cookie",
            get(vec![f("cookie", "a=1\r\ninjected: 1")]),
            Reject,
        ),
        case("DEL in a value", get(vec![f("x-a", "a\x7fb")]), Either),
        case(
            "obs-text in a value",
            get(vec![fb(b"x-a", b"caf\xe9")]),
            Either,
        ),
        case(
            "TAB inside a value",
            get(vec![f("x-a", "a\tb")]),
            Forward(0),
        ),
        // Names.
        case("upper-case name", get(vec![f("X-Upper", "1")]), Reject),
        case("space in a name", get(vec![f("x a", "1")]), Reject),
        case("colon in a name", get(vec![f("x:a", "1")]), Reject),
        case("empty name", get(vec![f("", "1")]), Reject),
        case("non-token name", get(vec![f("x(a)", "1")]), Reject),
        // Whitespace at the edges of a value (RFC 9113 §8.2.1).
        case(
            "leading space in a value",
            get(vec![f("x-a", " 1")]),
            Reject,
        ),
        case(
            "trailing space in a value",
            get(vec![f("x-a", "1 ")]),
            Reject,
        ),
        case("leading TAB in a value", get(vec![f("x-a", "\t1")]), Reject),
        // Pseudo-headers.
        case(
            "pseudo-header after a field",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f("x-a", "1"),
                f(":path", "{P}"),
                f(":authority", "h2.test"),
            ],
            Reject,
        ),
        case(
            "two :path",
            get(vec![])
                .into_iter()
                .chain([f(":path", "/smuggled")])
                .collect(),
            Reject,
        ),
        case(
            "two :method",
            get(vec![])
                .into_iter()
                .chain([f(":method", "POST")])
                .collect(),
            Reject,
        ),
        case("no :path", without(get(vec![]), ":path"), Reject),
        case("no :method", without(get(vec![]), ":method"), Reject),
        case("no :scheme", without(get(vec![]), ":scheme"), Reject),
        case("unknown pseudo-header", get(vec![f(":foo", "1")]), Reject),
        case(
            ":status in a request",
            get(vec![f(":status", "200")]),
            Reject,
        ),
        case(
            ":protocol without CONNECT",
            get(vec![f(":protocol", "websocket")]),
            Reject,
        ),
        case(
            "empty :path",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", ""),
                f(":authority", "h2.test"),
            ],
            Reject,
        ),
        case(
            "relative :path",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "smuggled"),
                f(":authority", "h2.test"),
            ],
            Reject,
        ),
        case(
            ":path * with GET",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "*"),
                f(":authority", "h2.test"),
            ],
            Reject,
        ),
        case(
            ":path with a request line inside",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "{P} HTTP/1.1\r\ninjected: 1\r\n\r\nGET /smuggled"),
                f(":authority", "h2.test"),
            ],
            Reject,
        ),
        case(
            ":path with a space",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "{P} HTTP/1.1"),
                f(":authority", "h2.test"),
            ],
            Reject,
        ),
        case(
            ":path with NUL",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                fb(b":path", b"/x\0y"),
                f(":authority", "h2.test"),
            ],
            Reject,
        ),
        case(
            ":method with a space",
            method("GET /smuggled HTTP/1.1\r\ninjected: 1\r\n\r\nGET", vec![]),
            Reject,
        ),
        case(
            ":method with CRLF",
            method("GET\r\ninjected: 1", vec![]),
            Reject,
        ),
        case(
            ":scheme with CRLF",
            vec![
                f(":method", "GET"),
                f(":scheme", "http\r\ninjected: 1"),
                f(":path", "{P}"),
                f(":authority", "h2.test"),
            ],
            Reject,
        ),
        case(
            ":authority with CRLF",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "{P}"),
                f(":authority", "h2.test\r\ninjected: 1"),
            ],
            Reject,
        ),
        case(
            ":authority with a space",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "{P}"),
                f(":authority", "h2.test x"),
            ],
            Reject,
        ),
        case(
            ":authority with userinfo",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "{P}"),
                f(":authority", "user@h2.test"),
            ],
            Reject,
        ),
        case(
            "host naming another authority",
            get(vec![f("host", "other.test")]),
            Reject,
        ),
        case("host with CRLF", get(vec![f("host", inj)]), Reject),
        // Connection-specific fields (RFC 9113 §8.2.2).
        case(
            "connection",
            get(vec![f("connection", "keep-alive")]),
            Reject,
        ),
        case(
            "keep-alive",
            get(vec![f("keep-alive", "timeout=5")]),
            Reject,
        ),
        case(
            "proxy-connection",
            get(vec![f("proxy-connection", "keep-alive")]),
            Reject,
        ),
        case("upgrade", get(vec![f("upgrade", "websocket")]), Reject),
        case("te other than trailers", get(vec![f("te", "gzip")]), Reject),
        with_body(
            "transfer-encoding chunked",
            method("POST", vec![f("transfer-encoding", "chunked")]),
            &[b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n"],
            Reject,
        ),
        with_body(
            "transfer-encoding identity",
            method("POST", vec![f("transfer-encoding", "identity")]),
            &[b"abc"],
            Reject,
        ),
        // Content-Length against DATA (RFC 9113 §8.1.1).
        with_body(
            "content-length above DATA",
            method("POST", vec![f("content-length", "10")]),
            &[b"abc"],
            Reject,
        ),
        with_body(
            "content-length below DATA",
            method("POST", vec![f("content-length", "2")]),
            &[b"ab", b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n"],
            Reject,
        ),
        case(
            "content-length without DATA",
            method("POST", vec![f("content-length", "5")]),
            Reject,
        ),
        with_body(
            "content-length not a number",
            method("POST", vec![f("content-length", "abc")]),
            &[b"abc"],
            Reject,
        ),
        with_body(
            "content-length negative",
            method("POST", vec![f("content-length", "-1")]),
            &[b"abc"],
            Reject,
        ),
        with_body(
            "two different content-lengths",
            method(
                "POST",
                vec![f("content-length", "3"), f("content-length", "40")],
            ),
            &[b"abc"],
            Reject,
        ),
        with_body(
            "content-length list",
            method("POST", vec![f("content-length", "3, 3")]),
            &[b"abc"],
            Either,
        ),
        with_body(
            "content-length with a sign",
            method("POST", vec![f("content-length", "+3")]),
            &[b"abc"],
            Reject,
        ),
        case(
            "CONNECT",
            vec![f(":method", "CONNECT"), f(":authority", "h2.test:443")],
            Reject,
        ),
        // Valid requests: forwarded once, normalised.
        case("plain GET", get(vec![]), Forward(0)),
        case(
            "split cookies",
            get(vec![
                f("cookie", "a=1"),
                f("cookie", "b=2"),
                f("cookie", "c=3"),
            ]),
            Forward(0),
        ),
        case("te trailers", get(vec![f("te", "trailers")]), Forward(0)),
        case(
            "host equal to :authority",
            get(vec![f("host", "h2.test")]),
            Forward(0),
        ),
        case(
            "host without :authority",
            without(get(vec![f("host", "h2.test")]), ":authority"),
            Forward(0),
        ),
        case(
            "query string",
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "{P}?a=1&b=%0d%0a"),
                f(":authority", "h2.test"),
            ],
            Forward(0),
        ),
        with_body(
            "POST with content-length",
            method("POST", vec![f("content-length", "5")]),
            &[b"hello"],
            Forward(5),
        ),
        with_body(
            "POST without content-length",
            method("POST", vec![]),
            &[b"hello ", b"world"],
            Forward(11),
        ),
        with_body(
            "POST with expect 100-continue",
            method(
                "POST",
                vec![f("expect", "100-continue"), f("content-length", "3")],
            ),
            &[b"abc"],
            Forward(3),
        ),
        with_body(
            "POST with request-line text in the body",
            method("POST", vec![f("content-length", "37")]),
            &[b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n\r\n"],
            Forward(37),
        ),
    ];
    // Trailers: a valid one, then pseudo-headers and framing fields in trailers.
    let trailer_case = |name, t: Fields, expect| Case {
        trailers: Some(t),
        ..with_body(name, method("POST", vec![]), &[b"abc"], expect)
    };
    c.push(trailer_case(
        "valid trailer",
        vec![f("x-checksum", "1")],
        Either,
    ));
    // The h2 library drops pseudo-headers from trailers before ringlb sees them (haproxy
    // resets the stream); trailers are not forwarded to HTTP/1 servers, so none of it can
    // reach the origin either way.
    c.push(trailer_case(
        "pseudo-header in trailers",
        vec![f(":path", "/smuggled")],
        Either,
    ));
    c.push(trailer_case(
        "CRLF in a trailer",
        vec![f("x-checksum", inj)],
        Either,
    ));
    c.push(Case {
        after_end: Some(b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
        ..case("DATA after END_STREAM", get(vec![]), Either)
    });
    c
}

fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The h11 origin of the smuggling suite: every parsed request logged `REQ <target> <len>`,
/// every protocol error (or injected field) `ERR ...`.
fn start_h11(dir: &TempDir, name: &str) -> (SocketAddr, ChildGuard) {
    let port_file = dir.join(&format!("{name}.port"));
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(tests_dir().join("smuggling/h11_origin.py"))
        .arg(&port_file);
    let mut guard = ChildGuard::spawn(name, &mut cmd).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || port_file.exists()
            || !guard.is_running()),
        "h11 origin did not start"
    );
    let port: u16 = std::fs::read_to_string(&port_file)
        .unwrap_or_else(|_| panic!("h11 origin failed (python3-h11?)\n{}", guard.dump()))
        .trim()
        .parse()
        .unwrap();
    (SocketAddr::from(([127, 0, 0, 1], port)), guard)
}

fn path_of(i: usize) -> String {
    format!("/c{i}")
}

/// `fields` with `{P}` replaced by `path`; other bytes (NUL, obs-text) kept exactly.
fn subst(fields: &Fields, path: &str) -> Fields {
    fields
        .iter()
        .map(|(n, v)| {
            let mut out = Vec::with_capacity(v.len());
            let mut rest = v.as_slice();
            while let Some(at) = rest.windows(3).position(|w| w == b"{P}") {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(path.as_bytes());
                rest = &rest[at + 3..];
            }
            out.extend_from_slice(rest);
            (n.clone(), out)
        })
        .collect()
}

fn block(fields: &Fields) -> Vec<u8> {
    let refs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    hpack_bytes(&refs)
}

/// Sends case `i` on a new connection; what came back, in words.
fn run_case(front: SocketAddr, i: usize, c: &Case) -> String {
    let mut conn = Raw::connect(front);
    conn.s
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let fields = subst(&c.fields, &path_of(i));
    let ends_on_headers = c.data.is_empty() && c.trailers.is_none();
    let mut bytes = frame(
        HEADERS,
        END_HEADERS | if ends_on_headers { END_STREAM } else { 0 },
        1,
        &block(&fields),
    );
    for (k, d) in c.data.iter().enumerate() {
        let last = k + 1 == c.data.len() && c.trailers.is_none();
        bytes.extend(frame(DATA, if last { END_STREAM } else { 0 }, 1, d));
    }
    if let Some(t) = &c.trailers {
        bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block(t)));
    }
    if let Some(d) = &c.after_end {
        bytes.extend(frame(DATA, END_STREAM, 1, d));
    }
    if conn.send(&bytes).is_err() {
        return "closed".into();
    }
    let frames = conn.until_end(1);
    // The final response's `:status` (an interim 100 may come first): 0x88 is the static
    // table's 200, 0x8c its 400.
    let statuses: Vec<u8> = frames
        .iter()
        .filter(|f| f.0 == HEADERS && f.2 == 1)
        .filter_map(|f| f.3.first().copied())
        .collect();
    if statuses.contains(&0x88) {
        return "200".into();
    }
    if let Some(s) = statuses.last() {
        return match s {
            0x8c => "400".into(),
            other => format!("status byte {other:#x}"),
        };
    }
    if let Some(code) = rst_code(&frames, 1) {
        return format!("RST_STREAM {code}");
    }
    if let Some(code) = goaway_code(&frames) {
        return format!("GOAWAY {code}");
    }
    "closed".into()
}

/// (requests per case path with their body lengths, error lines) from an h11 origin's log.
fn origin_log(g: &ChildGuard) -> (BTreeMap<String, Vec<usize>>, Vec<String>) {
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut errors = Vec::new();
    for line in g.stdout().lines() {
        match line.strip_prefix("REQ ") {
            Some(rest) => {
                let mut it = rest.split(' ');
                let target = it.next().unwrap_or("");
                let len = it.next().and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
                let path = target.split('?').next().unwrap_or("").to_owned();
                seen.entry(path).or_default().push(len);
            }
            None => errors.push(line.to_owned()),
        }
    }
    (seen, errors)
}

fn config(front: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind {front} proto h2\n    default_backend be\n\
         backend be\n    server s1 {origin}\n"
    )
}

/// Runs the corpus through one proxy; the outcome of each case and the origin's log.
fn run_corpus(
    cases: &[Case],
    front: SocketAddr,
    origin: &ChildGuard,
) -> (Vec<String>, BTreeMap<String, Vec<usize>>, Vec<String>) {
    let outcomes: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| run_case(front, i, c))
        .collect();
    // Let the origin log what reached it last.
    std::thread::sleep(Duration::from_millis(500));
    let (seen, errors) = origin_log(origin);
    (outcomes, seen, errors)
}

#[test]
fn h2_to_h1_downgrade_forwards_no_malformed_request() {
    let cases = corpus();
    assert!(cases.len() >= 40, "corpus has {} cases", cases.len());
    let dir = TempDir::new("hardening-h2-downgrade");
    let (origin_addr, origin) = start_h11(&dir, "h11-ringlb");
    let front = free_addr();
    let path = write_config(&dir, &config(front, origin_addr));
    let _proxy = Ringlb::start(&path, &[front]);
    let (outcomes, seen, errors) = run_corpus(&cases, front, &origin);

    // haproxy on the same corpus, printed beside ringlb's outcome.
    let ha: Option<Vec<String>> = haproxy_available().then(|| {
        let hdir = TempDir::new("hardening-h2-downgrade-haproxy");
        let (ha_origin_addr, ha_origin) = start_h11(&hdir, "h11-haproxy");
        let ha_front = free_addr();
        let ha_cfg = write_config(&hdir, &config(ha_front, ha_origin_addr));
        let _ha = Haproxy::start(&ha_cfg, &[ha_front]);
        let (o, ha_seen, ha_errors) = run_corpus(&cases, ha_front, &ha_origin);
        println!(
            "haproxy: {} case paths reached its origin, {} origin errors: {ha_errors:?}",
            ha_seen.len(),
            ha_errors.len()
        );
        o
    });

    let mut failures = Vec::new();
    let (mut rejected, mut forwarded) = (0, 0);
    for (i, c) in cases.iter().enumerate() {
        let got = &outcomes[i];
        let at_origin = seen.get(&path_of(i)).cloned().unwrap_or_default();
        println!(
            "{i:>3} {:<40} ringlb: {got:<16} origin saw {:<10} haproxy: {}",
            c.name,
            format!("{at_origin:?}"),
            ha.as_ref().map_or("-", |h| h[i].as_str())
        );
        if at_origin.is_empty() {
            rejected += 1;
        } else {
            forwarded += 1;
        }
        let ok = match c.expect {
            Expect::Reject => got != "200" && at_origin.is_empty(),
            Expect::Forward(n) => got == "200" && at_origin == vec![n],
            Expect::Either => at_origin.len() <= 1,
        };
        if !ok {
            failures.push(format!(
                "case {i} {:?}: expected {:?}, got {got}, origin saw {at_origin:?}",
                c.name, c.expect
            ));
        }
    }
    let smuggled: Vec<&String> = seen.keys().filter(|p| !p.starts_with("/c")).collect();
    println!(
        "ringlb: {} cases, {rejected} not forwarded, {forwarded} forwarded; origin errors: {}",
        cases.len(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "the origin saw malformed requests: {errors:?}"
    );
    assert!(
        smuggled.is_empty(),
        "the origin saw requests no client sent: {smuggled:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --- Attacks with figures -------------------------------------------------------------------
//
// Asserted for ringlb: the normal client gets every answer (200), the origin never has more
// requests in flight than the stream limit allows, and the proxy's memory stays within what
// its configured buffers allow (`memory_budget_kib`). Printed, not asserted (figures for
// docs/reliability.md): the normal client's latency under each attack against its latency
// alone, its time inside the proxy (`%Ta` from the proxy's log, which logs only its
// requests), and the CPU the proxy used during the attack. With `RINGLB_H2_ATTACK_HAPROXY=1`, every attack also runs against haproxy 2.6 with
// the same configuration and the same attacker, right after ringlb's run, and both are
// printed side by side; `RINGLB_H2_ATTACK_SECS=N` makes each run last N seconds (3 by
// default) for steadier percentiles, `RINGLB_H2_ATTACK_ONLY=TEXT` runs only the attacks
// whose name contains TEXT, and `RINGLB_H2_ATTACK_SHARDS=1` runs the proxies on one thread.

/// How many attacker connections run each attack at once.
const ATTACKERS: usize = 4;
/// `tune.h2.max-concurrent-streams` (the default, as in haproxy).
const MAX_STREAMS: u64 = 100;
/// Worker shards (`nbthread`) of the proxy under attack: 2, or `RINGLB_H2_ATTACK_SHARDS`
/// (by hand: 1 puts the normal client and the attackers on the same shard).
fn shards() -> u64 {
    std::env::var("RINGLB_H2_ATTACK_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}
/// `tune.bufsize` (the default) of the proxy under attack.
const BUFSIZE_KIB: u64 = 16;
/// Receive buffers in each shard's io_uring pool (`RECV_BUFFERS`, crates/shard/src/shard.rs).
const RECV_BUFFERS: u64 = 256;

/// How long each attack (and the baseline) runs.
fn attack_for() -> Duration {
    let secs = std::env::var("RINGLB_H2_ATTACK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

/// One attacker connection's script: writes until the proxy cuts it or `until`; returns the
/// bytes it managed to write.
type Attack = fn(&mut Raw, std::time::Instant) -> usize;

/// Writes `bytes` repeatedly until `until` or the peer stops taking them.
fn pound(c: &mut Raw, until: std::time::Instant, mut next: impl FnMut(u32) -> Vec<u8>) -> usize {
    let _ = c.s.set_write_timeout(Some(Duration::from_millis(500)));
    let mut sent = 0;
    let mut i = 0u32;
    while std::time::Instant::now() < until {
        let bytes = next(i);
        i += 1;
        if c.send(&bytes).is_err() {
            break;
        }
        sent += bytes.len();
    }
    sent
}

/// Stream ids for burst `i` of `n` streams each (odd, increasing, within 2^31).
fn ids(i: u32, n: u32) -> impl Iterator<Item = u32> {
    (0..n).map(move |k| (2 * (i * n + k) + 1) & 0x7fff_ffff)
}

fn rapid_reset(c: &mut Raw, until: std::time::Instant) -> usize {
    let block = hpack(&get_fields("/slow/500", &[]));
    pound(c, until, |i| {
        let mut b = Vec::new();
        for id in ids(i, 100) {
            b.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &block));
            b.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
        }
        b
    })
}

fn made_you_reset(c: &mut Raw, until: std::time::Instant) -> usize {
    let block = hpack(&get_fields("/slow/500", &[("connection", "close")]));
    pound(c, until, |i| {
        ids(i, 100)
            .flat_map(|id| frame(HEADERS, END_STREAM | END_HEADERS, id, &block))
            .collect()
    })
}

fn continuation_flood(c: &mut Raw, until: std::time::Instant) -> usize {
    let filler = hpack(&[("x-filler", &"a".repeat(4000))]);
    pound(c, until, |i| {
        let mut b = Vec::new();
        if i == 0 {
            b.extend(frame(HEADERS, 0, 1, &hpack(&get_fields("/cont", &[]))));
        }
        for _ in 0..16 {
            b.extend(frame(CONTINUATION, 0, 1, &filler));
        }
        b
    })
}

fn hpack_bomb(c: &mut Raw, until: std::time::Instant) -> usize {
    // One 4000-byte field in the dynamic table, then referenced 16000 times (64 MB decoded)
    // in a 16 KB block, stream after stream.
    pound(c, until, |i| {
        let mut block = hpack(&get_fields("/bomb", &[]));
        block.push(0x40);
        block.push(8);
        block.extend_from_slice(b"x-bomb-1");
        hpack_int(&mut block, 0, 7, 4000);
        block.extend(std::iter::repeat_n(b'b', 4000));
        block.extend(std::iter::repeat_n(0x80 | 62, 12000));
        frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, &block)
    })
}

fn ping_flood(c: &mut Raw, until: std::time::Instant) -> usize {
    pound(c, until, |_| {
        (0..1000).flat_map(|_| frame(PING, 0, 0, &[7; 8])).collect()
    })
}

fn settings_flood(c: &mut Raw, until: std::time::Instant) -> usize {
    // SETTINGS_MAX_CONCURRENT_STREAMS = 100, each one to acknowledge; never read.
    let one = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    pound(c, until, |_| one.repeat(1000))
}

fn empty_data_flood(c: &mut Raw, until: std::time::Instant) -> usize {
    // A POST that never ends, fed with empty DATA frames.
    let post = hpack(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/echo"),
        (":authority", "h2.test"),
    ]);
    pound(c, until, |i| {
        let mut b = Vec::new();
        if i == 0 {
            b.extend(frame(HEADERS, END_HEADERS, 1, &post));
        }
        (0..1000).for_each(|_| b.extend(frame(DATA, 0, 1, &[])));
        b
    })
}

fn zero_window(c: &mut Raw, until: std::time::Instant) -> usize {
    // Initial window 0, then 100 streams of 1 MiB responses that can never be sent; the
    // attacker never reads and never opens a window.
    let block = hpack(&get_fields("/size/1048576", &[]));
    let mut b = frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]);
    for id in ids(0, 100) {
        b.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &block));
    }
    let sent = if c.send(&b).is_ok() { b.len() } else { 0 };
    while std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    sent
}

/// Latencies of a well-behaved HTTP/1.1 keep-alive client until `stop`; (latencies in µs,
/// errors).
fn normal_client(front: SocketAddr, stop: &std::sync::atomic::AtomicBool) -> (Vec<u64>, u32) {
    use std::sync::atomic::Ordering;
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut conn = ringlb_testkit::Conn::connect(front).ok();
    while !stop.load(Ordering::Relaxed) {
        let t = std::time::Instant::now();
        let ok = match conn.as_mut().map(|c| c.get("/")) {
            Some(Ok(r)) => r.status == 200,
            _ => false,
        };
        if ok {
            lat.push(t.elapsed().as_micros() as u64);
        } else {
            errors += 1;
            conn = ringlb_testkit::Conn::connect(front).ok();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (lat, errors)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// The proxy under attack.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Proxy {
    Ringlb,
    Haproxy,
}

/// The normal client's latency percentiles (µs).
#[derive(Clone, Copy, Debug, Default)]
struct Latency {
    requests: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

impl Latency {
    fn of(mut lat: Vec<u64>) -> Latency {
        lat.sort_unstable();
        Latency {
            requests: lat.len(),
            p50_us: pct(&lat, 0.5),
            p99_us: pct(&lat, 0.99),
            max_us: lat.last().copied().unwrap_or(0),
        }
    }
}

struct Figures {
    sent_mib: f64,
    connections: usize,
    rss_growth_kib_per_attacker: u64,
    origin_max_inflight: u64,
    normal: Latency,
    errors: u32,
    /// CPU the proxy used during the attack (user + system, ms; 10 ms ticks).
    proxy_cpu_ms: u64,
    /// The normal client's time inside the proxy (`%Ta`, ms) during the attack: p99 and max.
    inside: (u64, u64),
}

/// The `%Ta` (ms) of the normal client's log lines in `stderr`, from line `from` on.
fn normal_ta(stderr: &str, from: usize) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("normal-client ").map(|(_, t)| t))
        .skip(from)
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

/// Runs the normal client on `plain` for `d`; its latencies and errors.
fn normal_client_for(plain: SocketAddr, d: Duration) -> (Latency, u32) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let t = std::thread::spawn(move || normal_client(plain, &s2));
    std::thread::sleep(d);
    stop.store(true, Ordering::Relaxed);
    let (lat, errors) = t.join().unwrap();
    (Latency::of(lat), errors)
}

/// Starts `proxy` (same configuration for both), measures the normal client alone (into
/// `alone`, once per proxy and run), then under `ATTACKERS` connections of `attack` (each
/// reconnecting when cut) for `attack_for()`.
fn under_attack(proxy: Proxy, name: &str, attack: Attack, alone: &mut Option<Latency>) -> Figures {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let origins = ringlb_testkit::Origins::start(1);
    let dir = TempDir::new(&format!("hardening-h2-{name}-{proxy:?}"));
    let front = free_addr();
    // The normal client speaks HTTP/1.1 on a bind of its own, same frontend and server.
    let plain = free_addr();
    let sock = dir.join("admin.sock");
    let shards = shards();
    // Only the normal client's requests are logged (its time inside the proxy, `%Ta`).
    let cfg = format!(
        "global\n    nbthread {shards}\n    stats socket {} level admin\n    log stderr format raw local0\n\
         defaults\n    mode http\n    log global\n    log-format \"normal-client %Ta\"\n\
         \x20   timeout connect 2s\n    timeout client 2s\n    timeout server 5s\n\
         frontend fe\n    bind {front} proto h2\n    bind {plain}\n    default_backend be\n\
         \x20   http-request set-log-level silent unless {{ dst_port {} }}\n\
         backend be\n    server s1 {}\n",
        sock.display(),
        plain.port(),
        origins.addrs()[0]
    );
    let path = write_config(&dir, &cfg);
    let guard = match proxy {
        Proxy::Ringlb => Ringlb::start(&path, &[front, plain]),
        Proxy::Haproxy => Haproxy::start(&path, &[front, plain]),
    };
    let rss = || ringlb_testkit::proc_status_kib(guard.pid(), "VmRSS").unwrap_or(0);
    let run_for = attack_for();
    if alone.is_none() {
        let (base, errors) = normal_client_for(plain, run_for);
        assert_eq!(errors, 0, "{proxy:?}: errors of the normal client alone");
        println!(
            "{proxy:?} alone: {} requests, p50 {} µs, p99 {} µs, max {} µs",
            base.requests, base.p50_us, base.p99_us, base.max_us
        );
        *alone = Some(base);
    }
    println!("{proxy:?} {name}: pid {}", guard.pid());
    let logged_alone = normal_ta(&guard.stderr(), 0).len();
    let before = rss();
    let cpu = || ringlb_testkit::proc_cpu_ticks(guard.pid()).unwrap_or(0);
    let cpu_before = cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let client = std::thread::spawn(move || normal_client(plain, &s2));
    let until = std::time::Instant::now() + run_for;
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            std::thread::spawn(move || {
                let (mut sent, mut conns) = (0, 0);
                while std::time::Instant::now() < until {
                    let mut c = Raw::connect(front);
                    conns += 1;
                    sent += attack(&mut c, until);
                }
                (sent, conns)
            })
        })
        .collect();
    let mut peak = before;
    while std::time::Instant::now() < until {
        peak = peak.max(rss());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut sent, mut connections) = (0, 0);
    for a in attackers {
        let (s, c) = a.join().unwrap();
        sent += s;
        connections += c;
    }
    peak = peak.max(rss());
    let proxy_cpu_ms = cpu().saturating_sub(cpu_before) * 10;
    stop.store(true, Ordering::Relaxed);
    let (lat, errors) = client.join().unwrap();
    let smax = ringlb_testkit::server_stats(&sock, &["smax"])
        .ok()
        .and_then(|rows| rows.get("be/s1").and_then(|v| v[0].parse().ok()))
        .unwrap_or_else(|| panic!("{proxy:?}: no smax for be/s1 in show stat"));
    Figures {
        sent_mib: sent as f64 / (1u64 << 20) as f64,
        connections,
        rss_growth_kib_per_attacker: peak.saturating_sub(before) / ATTACKERS as u64,
        origin_max_inflight: smax,
        normal: Latency::of(lat),
        errors,
        proxy_cpu_ms,
        inside: {
            let mut ta = normal_ta(&guard.stderr(), logged_alone);
            ta.sort_unstable();
            (pct(&ta, 0.99), ta.last().copied().unwrap_or(0))
        },
    }
}

/// What one attacker may make ringlb hold, in KiB, from its configuration (not fitted to a
/// measurement), then a margin of 50% for the allocator (size classes, per-thread arenas,
/// memory freed but not returned):
/// - its share of the shards' receive-buffer pools, mapped at start and touched the first
///   time each buffer is used (`shards() × RECV_BUFFERS × bufsize`, 8 MiB for 2, shared by the
///   `ATTACKERS` connections: a fixed cost of the first traffic, whatever the attack);
/// - per connection, the h2 codec: one header list being decoded (64 KiB, `MAX_HEADER_LIST`
///   in crates/shard/src/h2.rs), the frames written but not sent (the adapter's 64 KiB batch
///   and the 64 KiB send in flight, `WRITE_HIGH` in crates/h2io: an attacker that never reads
///   fills them with PING and SETTINGS ACKs), a frame being read (16 KiB,
///   `tune.h2.max-frame-size`) and the HPACK table (4 KiB, `tune.h2.header-table-size`);
/// - per stream it keeps open (`streams`, at most `MAX_STREAMS`): the response bytes read with
///   the head and waiting for the client's window (one `bufsize`), and the stream's own state,
///   bounded by one more `bufsize`. That state is code, not configuration: heaptrack on the
///   zero-window stall (debug build, 400 stalled streams) shows 8.6 KiB per stream for the
///   stream's task (the future of `h2::stream`; 26 KiB until the WebSocket tunnel's future
///   was boxed), 15.9 KiB for the response bytes, under 1 KiB for h2's stream and its queued
///   HEADERS: 31 KiB of heap and about 42 KiB of RSS per stream in all.
fn memory_budget_kib(streams: u64) -> u64 {
    let pool_share = shards() * RECV_BUFFERS * BUFSIZE_KIB / ATTACKERS as u64;
    let per_connection = 64 + 2 * 64 + 16 + 4;
    let per_stream = 2 * BUFSIZE_KIB;
    (pool_share + per_connection + streams * per_stream) * 3 / 2
}

#[test]
fn h2_attacks_leave_memory_bounded_and_normal_clients_served() {
    // (name, attack, streams an attacker keeps open: only the zero-window stall holds
    // streams whose responses cannot move; the others are reset or never start.)
    let attacks: [(&str, Attack, u64); 8] = [
        ("rapid reset", rapid_reset, 0),
        ("MadeYouReset", made_you_reset, 0),
        ("CONTINUATION flood", continuation_flood, 0),
        ("HPACK bomb", hpack_bomb, 0),
        ("PING flood", ping_flood, 0),
        ("SETTINGS flood", settings_flood, 0),
        ("empty DATA flood", empty_data_flood, 1),
        ("zero-window stall", zero_window, MAX_STREAMS),
    ];
    let compare = std::env::var_os("RINGLB_H2_ATTACK_HAPROXY").is_some();
    if compare {
        assert!(
            ringlb_testkit::haproxy_available(),
            "RINGLB_H2_ATTACK_HAPROXY needs haproxy"
        );
    }
    let mut alone = [None, None];
    let mut failures = Vec::new();
    let mut table = Vec::new();
    // `RINGLB_H2_ATTACK_ONLY=zero` runs the attacks whose name contains it (by hand).
    let only = std::env::var("RINGLB_H2_ATTACK_ONLY").unwrap_or_default();
    for (name, attack, streams) in attacks {
        if !name.to_lowercase().contains(&only.to_lowercase()) {
            continue;
        }
        let mut row = format!("| {name} |");
        let proxies: &[Proxy] = if compare {
            &[Proxy::Ringlb, Proxy::Haproxy]
        } else {
            &[Proxy::Ringlb]
        };
        for &proxy in proxies {
            let slot = &mut alone[usize::from(proxy == Proxy::Haproxy)];
            let f = under_attack(proxy, &name.replace(' ', "-"), attack, slot);
            let base = slot.unwrap_or_default();
            let ratio = f.normal.p99_us as f64 / base.p99_us.max(1) as f64;
            println!(
                "{proxy:?} {name:<20} {ATTACKERS} attackers x {:?}: sent {:.1} MiB over {} connections; \
                 RSS +{} KiB per attacker; origin in-flight max {}; normal client {} requests, \
                 p50 {} µs p99 {} µs max {} µs ({ratio:.2}x its p99 alone, {} µs), {} errors; \
                 proxy CPU {} ms ({:.1} ms per MiB of attack); inside the proxy (%Ta) p99 {} ms max {} ms",
                attack_for(),
                f.sent_mib,
                f.connections,
                f.rss_growth_kib_per_attacker,
                f.origin_max_inflight,
                f.normal.requests,
                f.normal.p50_us,
                f.normal.p99_us,
                f.normal.max_us,
                base.p99_us,
                f.errors,
                f.proxy_cpu_ms,
                f.proxy_cpu_ms as f64 / f.sent_mib.max(0.001),
                f.inside.0,
                f.inside.1
            );
            row.push_str(&format!(
                " p50 {:.2} p99 {:.1} ms ({ratio:.2}x), {} errors, +{} KiB, in-flight {}, CPU {} ms, Ta p99/max {}/{} ms |",
                f.normal.p50_us as f64 / 1000.0,
                f.normal.p99_us as f64 / 1000.0,
                f.errors,
                f.rss_growth_kib_per_attacker,
                f.origin_max_inflight,
                f.proxy_cpu_ms,
                f.inside.0,
                f.inside.1
            ));
            if proxy == Proxy::Haproxy {
                continue;
            }
            // Every stream of every attacker at once, plus the normal client's request.
            if f.origin_max_inflight > MAX_STREAMS * ATTACKERS as u64 + 1 {
                failures.push(format!(
                    "{name}: {} requests in flight",
                    f.origin_max_inflight
                ));
            }
            let budget = memory_budget_kib(streams);
            if f.rss_growth_kib_per_attacker > budget {
                failures.push(format!(
                    "{name}: +{} KiB per attacker, budget {budget} KiB",
                    f.rss_growth_kib_per_attacker
                ));
            }
            if f.errors > 0 {
                failures.push(format!("{name}: the normal client had {} errors", f.errors));
            }
        }
        table.push(row);
    }
    println!("attack | ringlb{}", if compare { " | haproxy" } else { "" });
    for row in &table {
        println!("{row}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The flood throttle (crates/h2io: past 1000 frames that carry nothing in a second, the
/// connection is not read until the second is over) delays and drops nothing: 2500 PINGs,
/// then a request, on one connection: every PING is acknowledged, in order, and the request
/// is answered. How long the pauses took is a printed figure.
#[test]
fn a_throttled_ping_flood_is_delayed_not_dropped() {
    let origins = ringlb_testkit::Origins::start(1);
    let dir = TempDir::new("hardening-h2-throttle");
    let front = free_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 5s\n\
         frontend fe\n    bind {front} proto h2\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        origins.addrs()[0]
    );
    let _guard = Ringlb::start(&write_config(&dir, &cfg), &[front]);
    let mut c = Raw::connect(front);
    // A hang guard only: the pauses last a second each.
    c.s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let n = 2500u64;
    let pings: Vec<u8> = (0..n)
        .flat_map(|i| frame(PING, 0, 0, &i.to_be_bytes()))
        .collect();
    let t0 = std::time::Instant::now();
    c.send(&pings).unwrap();
    let get = hpack(&get_fields("/", &[]));
    c.send(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &get))
        .unwrap();
    let frames = c.until_end(1);
    let took = t0.elapsed();
    let acks: Vec<u64> = frames
        .iter()
        .filter(|f| f.0 == PING && f.1 & 1 != 0)
        .map(|f| u64::from_be_bytes(f.3[..8].try_into().unwrap()))
        .collect();
    println!(
        "throttle: {} of {n} PINGs acknowledged, response {:?}, after {took:?}",
        acks.len(),
        status_of(&frames, 1)
    );
    assert_eq!(acks, (0..n).collect::<Vec<_>>(), "PING ACKs, in order");
    assert!(
        !frames.iter().any(|f| f.0 == GOAWAY),
        "the flooding connection was closed"
    );
    assert_eq!(
        status_of(&frames, 1),
        Some(0x88),
        "the request after the flood"
    );
}
