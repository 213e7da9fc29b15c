//! Protocol checks (issue #5), the real `ringlb` binary against haproxy 2.6 on the same config:
//! `option pgsql-check` and a `tcp-check` startup-message ruleset against a real PostgreSQL
//! (a throwaway cluster on a loopback port), `option mysql-check`, `option redis-check` and
//! `option smtpchk` against small loopback servers that speak enough of each protocol, and
//! every kind of check against a server that hangs up without a word. Compared: what each
//! server received, the state-change lines, `show servers state` and `show stat`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod health_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use health_support::{show, up_down, Backend, Diff, Fake};
use ringlb_testkit::{free_port, run_bounded, wait_for_port, ChildGuard, TempDir};

const DEFAULTS: &str = "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n";

const T: Duration = Duration::from_secs(60);

fn head(front: SocketAddr) -> String {
    format!("{DEFAULTS}frontend fe\n    bind {front}\n    default_backend none\nbackend none\n    server none 127.0.0.1:9\n")
}

fn backend(name: &str, lines: &str, addr: SocketAddr, up: bool) -> Backend {
    Backend {
        name: name.into(),
        lines: format!("    {lines}\n    server s1 {addr} check inter 200ms fall 1 rise 1\n"),
        want: up_down(up),
    }
}

/// A PostgreSQL cluster of its own on a loopback port, stopped (fast shutdown) on drop.
struct Postgres {
    port: u16,
    guard: ChildGuard,
    _dir: TempDir,
}

/// `(uid, gid)` of a user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// The newest installed PostgreSQL's binaries (`/usr/lib/postgresql/<v>/bin`).
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

impl Postgres {
    /// `None` (saying why) when PostgreSQL is not installed; required in CI
    /// (`scripts/test` installs it).
    fn start() -> Option<Postgres> {
        let Some(bin) = pg_bin() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is required in CI (scripts/test installs it)"
            );
            eprintln!("skipped: PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb)");
            return None;
        };
        let dir = TempDir::new("pg");
        // PostgreSQL refuses to run as root: as root, run it as `postgres`.
        let root =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
        let as_user = |prog: &Path| -> Command {
            if root {
                let (uid, gid) = user_ids("postgres").expect("a 'postgres' user");
                std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(prog);
                c
            } else {
                Command::new(prog)
            }
        };
        let data = dir.join("data");
        let out = run_bounded(
            as_user(&bin.join("initdb")).current_dir(dir.path()).args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]),
            T,
        )
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // `pw` must give a password; everyone else is trusted.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all pw 127.0.0.1/32 password\nhost all blocked 127.0.0.1/32 reject\nhost all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let port = free_port();
        let mut cmd = as_user(&bin.join("postgres"));
        cmd.current_dir(dir.path()).args([
            "-D",
            data.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            &format!("unix_socket_directories={}", dir.path().display()),
            "-c",
            "fsync=off",
        ]);
        let guard = ChildGuard::spawn("postgres", &mut cmd).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if let Err(e) = wait_for_port(addr, T) {
            panic!("postgres not ready: {e}\n{}", guard.stderr());
        }
        let pg = Postgres {
            port,
            guard,
            _dir: dir,
        };
        // Ready to serve (not only listening) once a query answers.
        let psql = bin.join("psql");
        let sql = |q: &str| {
            run_bounded(
                Command::new(&psql).args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    q,
                ]),
                T,
            )
            .unwrap()
        };
        let ready = ringlb_testkit::wait_until(T, || sql("select 1").status.success());
        assert!(ready, "postgres does not answer:\n{}", pg.guard.stderr());
        let out = sql("CREATE ROLE pw LOGIN PASSWORD 'secret'");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(pg)
    }

    fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown (SIGTERM would wait for clients).
        let _ = self.guard.signal(2);
        let _ = self.guard.wait_timeout(Duration::from_secs(10));
    }
}

/// A StartupMessage for protocol 3.0 and `user`, as `tcp-check send-binary` lines.
fn startup_rules(user: &str) -> String {
    let mut body = b"user\0".to_vec();
    body.extend_from_slice(user.as_bytes());
    body.extend_from_slice(b"\0\0");
    let len = u32::try_from(8 + body.len()).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "option tcp-check\n    tcp-check connect\n    tcp-check send-binary {} # packet length\n    tcp-check send-binary 00030000 # protocol version 3.0\n    tcp-check send-binary {}\n    tcp-check expect binary 52 # Authentication request",
        hex(&len.to_be_bytes()),
        hex(&body)
    )
}

#[test]
fn pgsql_checks_against_a_real_postgres_match_haproxy() {
    let Some(pg) = Postgres::start() else { return };
    let a = pg.addr();
    // PostgreSQL authenticates before it looks the role up, and haproxy's check accepts any
    // authentication request: only a refusal (`reject` in pg_hba.conf) fails it.
    let backends = vec![
        backend("canned_ok", "option pgsql-check user postgres", a, true),
        backend(
            "canned_norole",
            "option pgsql-check user nosuchrole",
            a,
            true,
        ),
        backend("canned_password", "option pgsql-check user pw", a, true),
        backend(
            "canned_rejected",
            "option pgsql-check user blocked",
            a,
            false,
        ),
        backend("rules_ok", &startup_rules("postgres"), a, true),
        // `expect binary 52` finds an `R` anywhere: the ErrorResponse's routine field has one.
        backend("rules_rejected", &startup_rules("blocked"), a, true),
        backend(
            "rules_anchored_rejected",
            &startup_rules("blocked").replace("expect binary 52", "expect rbinary ^52"),
            a,
            false,
        ),
    ];
    let fakes = BTreeMap::new();
    let got = Diff {
        name: "hc-pg",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: show,
        min_checks: 0,
    }
    .compare();
    let last_chk = |b: &str| got.stat[&format!("{b}/s1")][6].clone();
    assert_eq!(last_chk("canned_ok"), "PostgreSQL server is ok");
    assert_eq!(last_chk("canned_rejected"), "FATAL");
    drop(pg);
}

/// MySQL's initial handshake (protocol 10), as a server sends it first.
fn mysql_handshake() -> Vec<u8> {
    let mut p = vec![0x0a];
    p.extend_from_slice(b"5.7.0-fake\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    p.extend_from_slice(&[0xff, 0xf7, 0x21, 0x02, 0x00, 0xff, 0x81, 21]);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    packet(0, &p)
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_le_bytes();
    let mut v = vec![len[0], len[1], len[2], seq];
    v.extend_from_slice(payload);
    v
}

fn mysql_err(seq: u8, code: u16, text: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.extend_from_slice(b"#28000");
    p.extend_from_slice(text.as_bytes());
    packet(seq, &p)
}

fn smtp(line: &str) -> Option<&'static str> {
    let l = line.to_ascii_uppercase();
    if l.starts_with("HELO") {
        Some("250 mx.example.com\r\n")
    } else if l.starts_with("EHLO") {
        Some("250-mx.example.com\r\n250-SIZE 1000\r\n250 8BITMIME\r\n")
    } else if l.starts_with("QUIT") {
        Some("221 bye\r\n")
    } else {
        Some("500 what\r\n")
    }
}

fn smtp_no_ehlo(line: &str) -> Option<&'static str> {
    if line.to_ascii_uppercase().starts_with("EHLO") {
        Some("502 5.5.2 not implemented\r\n")
    } else {
        smtp(line)
    }
}

#[test]
fn mysql_redis_and_smtp_checks_against_protocol_servers_match_haproxy() {
    // Up to 500 ms for the checker's first bytes (a loaded machine), then hang up 10 ms after
    // it falls silent (haproxy's checks last until the server closes).
    let (first, quiet) = (Duration::from_millis(500), Duration::from_millis(10));
    let ok = packet(2, &[0, 0, 0, 2, 0, 0, 0]);
    let mut fakes: BTreeMap<String, Fake> = BTreeMap::new();
    let mut add = |name: &str, f: Fake| {
        fakes.insert(name.to_string(), f);
    };
    add(
        "mysql_ok",
        Fake::dialog(&mysql_handshake(), &ok, first, quiet),
    );
    add(
        "mysql_denied",
        Fake::dialog(
            &mysql_handshake(),
            &mysql_err(2, 1045, "Access denied for user 'haproxy'@'localhost'"),
            first,
            quiet,
        ),
    );
    add(
        "mysql_blocked",
        Fake::dialog(&mysql_err(0, 1129, "Host is blocked"), b"", first, quiet),
    );
    add(
        "mysql_nouser",
        Fake::dialog(&mysql_handshake(), b"", first, quiet),
    );
    add(
        "mysql_post41",
        Fake::dialog(&mysql_handshake(), &ok, first, quiet),
    );
    add("redis_ok", Fake::dialog(b"", b"+PONG\r\n", first, quiet));
    add(
        "redis_loading",
        Fake::dialog(
            b"",
            b"-LOADING Redis is loading the dataset in memory\r\n",
            first,
            quiet,
        ),
    );
    add(
        "smtp_helo",
        Fake::lines("220 mx.example.com ESMTP\r\n", smtp),
    );
    add(
        "smtp_ehlo",
        Fake::lines("220 mx.example.com ESMTP\r\n", smtp),
    );
    add("smtp_refused", Fake::lines("554 5.7.1 go away\r\n", smtp));
    add(
        "smtp_no_ehlo",
        Fake::lines("220 mx.example.com ESMTP\r\n", smtp_no_ehlo),
    );
    let f = |n: &str| fakes[n].addr;
    let backends = vec![
        backend(
            "mysql_ok",
            "option mysql-check user haproxy",
            f("mysql_ok"),
            true,
        ),
        backend(
            "mysql_denied",
            "option mysql-check user haproxy",
            f("mysql_denied"),
            false,
        ),
        backend(
            "mysql_blocked",
            "option mysql-check user haproxy",
            f("mysql_blocked"),
            false,
        ),
        backend(
            "mysql_nouser",
            "option mysql-check",
            f("mysql_nouser"),
            true,
        ),
        backend(
            "mysql_post41",
            "option mysql-check user haproxy post-41",
            f("mysql_post41"),
            true,
        ),
        backend("redis_ok", "option redis-check", f("redis_ok"), true),
        backend(
            "redis_loading",
            "option redis-check",
            f("redis_loading"),
            false,
        ),
        backend("smtp_helo", "option smtpchk", f("smtp_helo"), true),
        backend(
            "smtp_ehlo",
            "option smtpchk EHLO checker.example.com",
            f("smtp_ehlo"),
            true,
        ),
        backend("smtp_refused", "option smtpchk", f("smtp_refused"), false),
        // haproxy waits after a non-2xx reply to EHLO until the server closes or the check
        // times out (a short timeout keeps the check from being in progress when looked at).
        backend(
            "smtp_no_ehlo",
            "option smtpchk EHLO checker.example.com\n    timeout check 300ms",
            f("smtp_no_ehlo"),
            false,
        ),
    ];
    let got = Diff {
        name: "hc-proto",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: show,
        min_checks: 2,
    }
    .compare();
    assert_eq!(got.requests["redis_ok"], r"*1\r\n$4\r\nPING\r\n");
    assert!(
        got.requests["smtp_ehlo"].starts_with(r"EHLO checker.example.com\r\n"),
        "{}",
        got.requests["smtp_ehlo"]
    );
}

fn smtp_ehlo_denied(line: &str) -> Option<&'static str> {
    if line.to_ascii_uppercase().starts_with("EHLO") {
        Some("250-mx.example.com\r\n550 5.7.1 denied\r\n")
    } else {
        smtp(line)
    }
}

/// Multi-line SMTP replies (`220-...`/`250-...` continuation lines, then `2xx ...`): haproxy
/// 2.6 reads the greeting as one line (`220-` is an invalid greeting: `L7RSP`), but wants
/// every line of the HELO/EHLO reply, waiting for its last one, all 2xx (a `550` last line
/// leaves it waiting until `timeout check`).
#[test]
fn smtp_multi_line_replies_match_haproxy() {
    let mut fakes: BTreeMap<String, Fake> = BTreeMap::new();
    let mut add = |name: &str, f: Fake| {
        fakes.insert(name.to_string(), f);
    };
    add(
        "greeting_multi",
        Fake::lines(
            "220-mx.example.com ESMTP\r\n220-second line\r\n220 ready\r\n",
            smtp,
        ),
    );
    add(
        "greeting_5xx",
        Fake::lines("220-mx.example.com ESMTP\r\n554 5.7.1 go away\r\n", smtp),
    );
    add(
        "ehlo_multi",
        Fake::lines("220 mx.example.com ESMTP\r\n", smtp),
    );
    // The EHLO reply's lines 150 ms apart: QUIT must wait for the last one.
    add(
        "ehlo_multi_paced",
        Fake::lines_paced(
            "220 mx.example.com ESMTP\r\n",
            smtp,
            Duration::from_millis(150),
        ),
    );
    add(
        "ehlo_5xx_last",
        Fake::lines("220 mx.example.com ESMTP\r\n", smtp_ehlo_denied),
    );
    let f = |n: &str| fakes[n].addr;
    let ehlo = "option smtpchk EHLO checker.example.com";
    let backends = vec![
        backend("greeting_multi", ehlo, f("greeting_multi"), false),
        backend("greeting_5xx", ehlo, f("greeting_5xx"), false),
        backend("ehlo_multi", ehlo, f("ehlo_multi"), true),
        backend(
            "ehlo_multi_paced",
            &format!("{ehlo}\n    timeout check 2s"),
            f("ehlo_multi_paced"),
            true,
        ),
        backend(
            "ehlo_5xx_last",
            &format!("{ehlo}\n    timeout check 300ms"),
            f("ehlo_5xx_last"),
            false,
        ),
    ];
    let got = Diff {
        name: "hc-smtp-ml",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: show,
        min_checks: 2,
    }
    .compare();
    let stat = |b: &str| got.stat[&format!("{b}/s1")].clone();
    // STAT_COLUMNS: status, weight, slim, chkdown, check_status, check_code, last_chk, ...
    assert_eq!(stat("greeting_multi")[4], "L7RSP");
    assert_eq!(stat("greeting_multi")[6], "220-mx.example.com ESMTP");
    assert_eq!(stat("greeting_5xx")[4], "L7RSP");
    assert_eq!(stat("ehlo_multi")[4..7], ["L7OK", "221", "bye"]);
    assert_eq!(stat("ehlo_multi_paced")[4..7], ["L7OK", "221", "bye"]);
    assert_eq!(stat("ehlo_5xx_last")[4], "L7TOUT");
}

/// `show`, with the Unix time a TLS hello carries at bytes 11..15 (`ssl-hello-chk`) masked.
fn mask_hello_time(b: &[u8]) -> String {
    let mut v = b.to_vec();
    if v.starts_with(&[0x16, 0x03]) {
        if let Some(t) = v.get_mut(11..15) {
            t.fill(b'T');
        }
    }
    show(&v)
}

/// Every kind of check against servers that accept and hang up at once.
#[test]
fn servers_that_hang_up_silently_fail_checks_as_haproxy_says() {
    let kinds = [
        (
            "tcp_expect",
            "option tcp-check\n    tcp-check expect string +OK",
        ),
        (
            "tcp_send_expect",
            "option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check expect string +OK",
        ),
        (
            "tcp_connect_only",
            "option tcp-check\n    tcp-check connect",
        ),
        ("httpchk", "mode http\n    option httpchk"),
        ("redis", "option redis-check"),
        ("mysql", "option mysql-check user haproxy"),
        ("pgsql", "option pgsql-check user haproxy"),
        ("smtp", "option smtpchk"),
        ("ldap", "option ldap-check"),
        ("sslhello", "option ssl-hello-chk"),
        ("plain", "timeout check 1s"),
    ];
    let mut fakes: BTreeMap<String, Fake> = kinds
        .iter()
        .map(|(n, _)| {
            (
                n.to_string(),
                Fake::banner(b"", Duration::from_millis(300), Duration::from_millis(1)),
            )
        })
        .collect();
    // Connect-only checks pass; haproxy resets them at once (its connections may never
    // reach `accept`), so what they sent is not compared.
    let up = ["tcp_connect_only", "plain"];
    let backends: Vec<Backend> = kinds
        .iter()
        .map(|(n, lines)| backend(n, lines, fakes[*n].addr, up.contains(n)))
        .collect();
    let _connect_only: Vec<Fake> = up.iter().filter_map(|n| fakes.remove(*n)).collect();
    let got = Diff {
        name: "hc-silent",
        head: &head,
        backends: &backends,
        fakes: &fakes,
        mask: mask_hello_time,
        min_checks: 2,
    }
    .compare();
    assert_eq!(
        got.stat["tcp_expect/s1"][6],
        "TCPCHK got an empty response at step 1"
    );
}
