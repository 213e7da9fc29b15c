//! Stats page options through the real binary, compared with haproxy 2.6 on the same config
//! and requests: `stats auth` (several users, wrong and missing credentials), `stats realm`
//! (and haproxy's default realm), `stats hide-version`, `stats scope` (on the page and its
//! `;csv` export) and `stats show-legends`. What is compared is what a browser or a script
//! sees: the status, the `WWW-Authenticate` header, whether the page names a version, which
//! proxies it lists and whether the legends' tooltips are there.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;

use ringlb_testkit::{
    free_addr, haproxy_required, http_get, write_config, ChildGuard, Haproxy, Origin, Ringlb,
    TempDir,
};

struct Binds {
    fe: SocketAddr,
    plain: SocketAddr,
    secured: SocketAddr,
    defrealm: SocketAddr,
    dot: SocketAddr,
}

impl Binds {
    fn new() -> Binds {
        Binds {
            fe: free_addr(),
            plain: free_addr(),
            secured: free_addr(),
            defrealm: free_addr(),
            dot: free_addr(),
        }
    }

    fn all(&self) -> [SocketAddr; 5] {
        [self.fe, self.plain, self.secured, self.defrealm, self.dot]
    }
}

fn config(b: &Binds, origin: SocketAddr) -> String {
    format!(
        "defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {fe}
    default_backend app
backend app
    server s1 {origin}
backend other
    server o1 {origin}
listen plain
    bind {plain}
    stats enable
    stats uri /stats
listen secured
    bind {secured}
    stats enable
    stats uri /s
    stats realm Ops\\ Zone
    stats auth admin:secret
    stats auth ops:pa55
    stats hide-version
    stats scope app
    stats scope fe
    stats show-legends
listen defrealm
    bind {defrealm}
    stats enable
    stats uri /
    stats auth u:p
listen dot
    bind {dot}
    stats enable
    stats uri /
    stats scope .
    stats scope other
",
        fe = b.fe,
        plain = b.plain,
        secured = b.secured,
        defrealm = b.defrealm,
        dot = b.dot,
    )
}

/// What a client sees of one stats answer.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    www_authenticate: Option<String>,
    /// The page's title line names a version (`<h1>NAME version X, released D</h1>`).
    version: bool,
    /// Proxies with a table on the page (`<a name="PX">`), or in the `;csv` export.
    proxies: BTreeSet<String>,
    /// `stats show-legends`: the proxy tooltips (`cap: ..., mode: ..., id: ...`).
    legends: bool,
}

fn basic(user: &str, pass: &str) -> String {
    // RFC 7617: base64 of "user:pass" (tiny encoder: only for these test strings).
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{pass}").into_bytes();
    let mut out = String::new();
    for c in raw.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

fn see(addr: SocketAddr, path: &str, auth: Option<(&str, &str)>) -> Seen {
    let value = auth.map(|(u, p)| basic(u, p));
    let headers: Vec<(&str, &str)> = value
        .as_deref()
        .map(|v| vec![("Authorization", v)])
        .unwrap_or_default();
    let r = http_get(addr, path, &headers).unwrap();
    let body = r.text();
    let proxies = if path.ends_with(";csv") {
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(',').next().map(str::to_string))
            .collect()
    } else {
        body.split("<a name=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .filter(|n| !n.contains('/'))
            .map(str::to_string)
            .collect()
    };
    let version = body
        .lines()
        .find(|l| l.contains("<h1>"))
        .is_some_and(|l| l.contains(" version "));
    Seen {
        status: r.status,
        www_authenticate: r.header("www-authenticate").map(str::to_string),
        version,
        proxies,
        legends: body.contains("<div class=tips>cap: "),
    }
}

/// The requests of the scenario, each with a label.
fn scenario(b: &Binds) -> Vec<(&'static str, Seen)> {
    vec![
        ("plain page", see(b.plain, "/stats", None)),
        ("plain csv", see(b.plain, "/stats;csv", None)),
        ("secured, no credentials", see(b.secured, "/s", None)),
        (
            "secured, wrong password",
            see(b.secured, "/s", Some(("admin", "nope"))),
        ),
        (
            "secured, unknown user",
            see(b.secured, "/s", Some(("root", "secret"))),
        ),
        (
            "secured, first user",
            see(b.secured, "/s", Some(("admin", "secret"))),
        ),
        (
            "secured, second user",
            see(b.secured, "/s", Some(("ops", "pa55"))),
        ),
        (
            "secured csv",
            see(b.secured, "/s;csv", Some(("ops", "pa55"))),
        ),
        ("default realm", see(b.defrealm, "/", None)),
        (
            "default realm, good",
            see(b.defrealm, "/", Some(("u", "p"))),
        ),
        // `stats scope .`: the stats proxy itself.
        ("scope dot", see(b.dot, "/", None)),
        // The page's search box: `?scope=` narrows to names containing the text, within
        // `stats scope`.
        ("search plain", see(b.plain, "/stats?scope=re", None)),
        ("search scoped", see(b.dot, "/?scope=oth", None)),
    ]
}

fn run(who: &str, origin: &Origin, dir: &TempDir) -> Vec<(&'static str, Seen)> {
    let b = Binds::new();
    let path = write_config(dir, &config(&b, origin.addr()));
    let _p: ChildGuard = if who == "haproxy" {
        Haproxy::start(&path, &b.all())
    } else {
        Ringlb::start(&path, &b.all())
    };
    scenario(&b)
}

#[test]
fn stats_auth_realm_hide_version_scope_and_legends_as_in_haproxy() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("stats-options");
    let theirs = run("haproxy", &origin, &dir);
    let ours = run("ringlb", &origin, &dir);
    for ((label, t), (_, o)) in theirs.iter().zip(&ours) {
        assert_eq!(o, t, "{label}: ringlb vs haproxy");
    }
    // What haproxy showed, so that a change on both sides cannot pass unnoticed.
    let get = |l: &str| &theirs.iter().find(|(x, _)| *x == l).unwrap().1;
    let all: BTreeSet<String> = ["fe", "app", "other", "plain", "secured", "defrealm", "dot"]
        .map(String::from)
        .into();
    let scoped: BTreeSet<String> = ["fe", "app"].map(String::from).into();
    assert_eq!(get("plain page").proxies, all);
    assert!(get("plain page").version && !get("plain page").legends);
    assert_eq!(get("secured, no credentials").status, 401);
    assert_eq!(
        get("secured, no credentials").www_authenticate.as_deref(),
        Some("Basic realm=\"Ops Zone\"")
    );
    assert_eq!(get("secured, wrong password").status, 401);
    let good = get("secured, second user");
    assert_eq!(good.status, 200);
    assert!(!good.version && good.legends);
    assert_eq!(good.proxies, scoped);
    assert_eq!(get("secured csv").proxies, scoped);
    let set = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(get("scope dot").proxies, set(&["dot", "other"]));
    assert_eq!(get("search plain").proxies, set(&["secured", "defrealm"]));
    assert_eq!(get("search scoped").proxies, set(&["other"]));
    assert_eq!(
        get("default realm").www_authenticate.as_deref(),
        Some("Basic realm=\"HAProxy Statistics\"")
    );
}
