//! Health checks over TLS (`check-ssl`, `check-sni`, `verify`, and `ssl` servers checked on
//! their own port): the real `ringlb` binary checks a TLS server (a ringlb TLS frontend in
//! front of an origin, certificates made per run with openssl) and must log the same state
//! changes as haproxy 2.6 does with the same config.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::{
    free_addr, haproxy_available, run_bounded, wait_until, ChildGuard, Haproxy, Origin, Ringlb,
    TempDir,
};

const T: Duration = Duration::from_secs(10);

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_bounded(Command::new("openssl").current_dir(dir).args(args), T).unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a certificate for `name` signed by it: (ca.pem, name.pem with the key).
fn certs(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    ]);
    openssl(dir, &ca);
    std::fs::write(dir.join("ext"), format!("subjectAltName=DNS:{name}")).unwrap();
    let subj = format!("/CN={name}");
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend(["-keyout", "srv.key", "-out", "srv.csr", "-subj", &subj]);
    openssl(dir, &req);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "srv.crt",
        ],
    );
    let mut pem = std::fs::read(dir.join("srv.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("srv.key")).unwrap());
    std::fs::write(dir.join("srv.pem"), pem).unwrap();
    (dir.join("ca.pem"), dir.join("srv.pem"))
}

/// State-change lines with the pid and durations left out, sorted (checks run concurrently).
fn state_lines(stderr: &str) -> Vec<String> {
    let mut v: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains("Server be/"))
        .map(|l| {
            let text = l.split_once(") : ").map_or(l, |(_, t)| t);
            text.split(", check duration")
                .next()
                .unwrap_or(text)
                .to_string()
        })
        .collect();
    v.sort();
    v
}

fn checked(front: SocketAddr, tls: SocketAddr, ca: &Path) -> String {
    let ca = ca.display();
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\n\
         frontend fe\n    bind {front}\n    default_backend be\n\
         backend be\n    option httpchk GET /health\n\
         \x20   server ok {tls} check check-ssl verify none inter 200ms\n\
         \x20   server sni {tls} check check-ssl check-sni a.example verify required ca-file {ca} inter 200ms\n\
         \x20   server badname {tls} check check-ssl check-sni b.example verify required ca-file {ca} inter 200ms\n\
         \x20   server plain {tls} check inter 200ms\n\
         \x20   server implied {tls} ssl verify none check inter 200ms\n\
         \x20   server alpn {tls} check check-ssl check-alpn http/1.1 verify none inter 200ms\n"
    )
}

fn settle(p: &ChildGuard) -> Vec<String> {
    let both = wait_until(Duration::from_secs(5), || {
        let e = p.stderr();
        e.contains("Server be/badname is DOWN") && e.contains("Server be/plain is DOWN")
    });
    assert!(both, "{}", p.stderr());
    // Several more check rounds: nothing else may change.
    std::thread::sleep(Duration::from_millis(800));
    state_lines(&p.stderr())
}

#[test]
fn checks_over_tls_match_haproxy() {
    let dir = TempDir::new("check-ssl");
    let (ca, pem) = certs(dir.path(), "a.example");
    let origin = Origin::start("o");
    let tls = free_addr();
    let server_cfg = dir.join("server.cfg");
    std::fs::write(
        &server_cfg,
        format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend tls\n    bind {tls} ssl crt {}\n    default_backend o\nbackend o\n    server o {}\n",
            pem.display(),
            origin.addr()
        ),
    )
    .unwrap();
    let _server = Ringlb::start(&server_cfg, &[tls]);

    let rf = free_addr();
    let rpath = dir.join("r.cfg");
    std::fs::write(&rpath, checked(rf, tls, &ca)).unwrap();
    let got = {
        let r = Ringlb::start(&rpath, &[rf]);
        settle(&r)
    };
    let down: Vec<&String> = got.iter().filter(|l| l.contains(" is DOWN")).collect();
    assert_eq!(down.len(), 2, "only badname and plain go DOWN: {got:?}");
    assert!(
        got.iter()
            .any(|l| l.starts_with("Server be/badname is DOWN, reason: Layer6 invalid response")),
        "{got:?}"
    );
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let hf = free_addr();
    let hpath = dir.join("h.cfg");
    std::fs::write(&hpath, checked(hf, tls, &ca)).unwrap();
    let want = {
        let h = Haproxy::start(&hpath, &[hf]);
        settle(&h)
    };
    // haproxy appends the socket's errno to the certificate message when the peer's reset
    // already arrived (" (Connection reset by peer)"): timing, not behaviour.
    let strip_errno = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .map(|l| match l.rfind(" (") {
                Some(i) if l.ends_with(")\"") => format!("{}\"", &l[..i]),
                _ => l,
            })
            .collect()
    };
    assert_eq!(
        strip_errno(got),
        strip_errno(want),
        "ringlb (left) vs haproxy (right)"
    );
}
