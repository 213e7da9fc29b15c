//! TLS features through the running binary (issue #8's audit): mutual TLS with the client's
//! CN passed to the origin, SNI across three domains, the guide's cipher policy, WebSocket
//! behind `ssl crt`, and OCSP stapling. Real clients (curl, openssl s_client, socat) talk to
//! `ringlb` in front of real origins; each check runs against `haproxy` on the same config
//! too when it is installed, so both must agree.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ringlb_testkit::ws::{OP_BINARY, OP_TEXT};
use ringlb_testkit::{
    curl, free_addr, haproxy_available, run_bounded, wait_for_port, write_config, ChildGuard,
    Haproxy, Origins, Ringlb, TempDir, TestCa, WsClient,
};

const T: Duration = Duration::from_secs(10);
const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 5s\n";

/// The proxies to check: ringlb always, haproxy as the oracle when installed.
fn proxies() -> Vec<&'static str> {
    let mut v = vec!["ringlb"];
    if haproxy_available() {
        v.push("haproxy");
    } else {
        eprintln!("haproxy not installed: checking ringlb alone");
    }
    v
}

fn start(which: &str, cfg: &Path, binds: &[SocketAddr]) -> ChildGuard {
    if which == "haproxy" {
        Haproxy::start(cfg, binds)
    } else {
        Ringlb::start(cfg, binds)
    }
}

/// What curl got: the status (`000` when the TLS handshake or the request failed), the body
/// and curl's verbose log.
struct Got {
    code: String,
    body: String,
    log: String,
}

fn https(front: SocketAddr, host: &str, path: &str, ca: &Path, extra: &[&str]) -> Got {
    let resolve = format!("{host}:{}:127.0.0.1", front.port());
    let url = format!("https://{host}:{}{path}", front.port());
    let mut args = vec![
        "-v",
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = curl(&args, T).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Got {
        code: code.to_owned(),
        body: body.to_owned(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The value of header `name` in an origin `/echo` dump, if the origin received it.
fn echoed(body: &str, name: &str) -> Option<String> {
    body.lines().find_map(|l| {
        let (n, v) = l.strip_prefix("header: ")?.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// `openssl s_client` to `front` with `args`; its stdout (certificate, status, cipher).
fn s_client(front: SocketAddr, args: &[&str]) -> String {
    let connect = format!("127.0.0.1:{}", front.port());
    let out = run_bounded(
        Command::new("openssl")
            .args(["s_client", "-connect", &connect])
            .args(args),
        T,
    )
    .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `subject=` line s_client prints for the served certificate.
fn served_subject(front: SocketAddr, sni: Option<&str>) -> String {
    let args: Vec<&str> = match sni {
        Some(name) => vec!["-servername", name],
        None => vec!["-noservername"],
    };
    let out = s_client(front, &args);
    out.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_else(|| panic!("no certificate served: {out}"))
        .trim()
        .to_owned()
}

#[test]
fn mutual_tls_passes_the_client_cn_and_refuses_missing_or_foreign_certificates() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-mtls");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let other = TestCa::new(&dir.join("other"), "some other CA");
    let server = ca.server("mtls.example", &dir.join("server.pem"));
    let good = ca.client("client-one", &dir.join("client.pem"));
    let rogue = other.client("rogue-client", &dir.join("rogue.pem"));
    let (required, optional) = (free_addr(), free_addr());
    let rules =
        "    http-request set-header X-Client-CN %[ssl_c_s_dn(cn)]\n    default_backend be\n";
    let cfg = format!(
        "{DEFAULTS}frontend required\n    bind {required} ssl crt {pem} ca-file {ca} verify required\n{rules}\
         frontend optional\n    bind {optional} ssl crt {pem} ca-file {ca} verify optional\n{rules}\
         backend be\n    server s1 {origin}\n",
        pem = server.pem.display(),
        ca = ca.cert.display(),
        origin = origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    let cert = |c: &ringlb_testkit::Issued| {
        [
            "--cert".to_owned(),
            c.crt.display().to_string(),
            "--key".to_owned(),
            c.key.display().to_string(),
        ]
    };
    let (good_args, rogue_args) = (cert(&good), cert(&rogue));
    let good_args: Vec<&str> = good_args.iter().map(String::as_str).collect();
    let rogue_args: Vec<&str> = rogue_args.iter().map(String::as_str).collect();
    for which in proxies() {
        let _proxy = start(which, &path, &[required, optional]);
        let get = |front, extra: &[&str]| https(front, "mtls.example", "/echo", &ca.cert, extra);

        let g = get(required, &[]);
        assert_eq!(
            g.code, "000",
            "{which}: required, no certificate: {}",
            g.log
        );
        let g = get(required, &good_args);
        assert_eq!(
            g.code, "200",
            "{which}: required, valid certificate: {}",
            g.log
        );
        assert_eq!(
            echoed(&g.body, "x-client-cn").as_deref(),
            Some("client-one"),
            "{which}: {}",
            g.body
        );
        let g = get(required, &rogue_args);
        assert_eq!(g.code, "000", "{which}: required, foreign CA: {}", g.log);

        // `verify optional`: no certificate is fine and gives no CN; a valid one gives its
        // CN; one that fails verification still aborts the handshake (HAProxy's manual).
        let g = get(optional, &[]);
        assert_eq!(
            g.code, "200",
            "{which}: optional, no certificate: {}",
            g.log
        );
        assert_eq!(
            echoed(&g.body, "x-client-cn").unwrap_or_default(),
            "",
            "{which}: {}",
            g.body
        );
        let g = get(optional, &good_args);
        assert_eq!(
            g.code, "200",
            "{which}: optional, valid certificate: {}",
            g.log
        );
        assert_eq!(
            echoed(&g.body, "x-client-cn").as_deref(),
            Some("client-one"),
            "{which}"
        );
        let g = get(optional, &rogue_args);
        assert_eq!(g.code, "000", "{which}: optional, foreign CA: {}", g.log);
    }
}

#[test]
fn sni_selects_among_three_domains_and_falls_back_to_the_first_certificate() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-sni");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let names = ["a.example", "b.example", "c.example"];
    let pems: Vec<_> = names
        .iter()
        .map(|n| ca.server(n, &certs.join(format!("{n}.pem"))).pem)
        .collect();
    // Three `crt` on one bind (c first: the default), and the guide's `crt DIR/` form,
    // where the directory's first file in name order is the default.
    let (listed, directory) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend listed\n    bind {listed} ssl crt {} crt {} crt {}\n    default_backend be\n\
         frontend directory\n    bind {directory} ssl crt {}/ alpn h2,http/1.1\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        pems[2].display(),
        pems[0].display(),
        pems[1].display(),
        certs.display(),
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    for which in proxies() {
        let _proxy = start(which, &path, &[listed, directory]);
        for front in [listed, directory] {
            for name in names {
                assert_eq!(
                    served_subject(front, Some(name)),
                    format!("CN = {name}"),
                    "{which} {front}"
                );
                let g = https(front, name, "/", &ca.cert, &[]);
                assert_eq!(g.code, "200", "{which} {name}: {}", g.log);
            }
        }
        for sni in [Some("unknown.example"), None] {
            assert_eq!(
                served_subject(listed, sni),
                "CN = c.example",
                "{which} {sni:?}"
            );
            assert_eq!(
                served_subject(directory, sni),
                "CN = a.example",
                "{which} {sni:?}"
            );
        }
    }
}

/// The guide's global TLS settings (seed guide, "SSL/TLS Best Practices").
const GUIDE_TLS: &str = "global\n    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384\n    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets\n";

#[test]
fn the_guides_cipher_policy_refuses_clients_offering_only_other_ciphers() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-ciphers");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("site.example", &dir.join("site.pem"));
    // `guide` takes the global defaults; `narrow` overrides them on the bind.
    let (guide, narrow) = (free_addr(), free_addr());
    let cfg = format!(
        "{GUIDE_TLS}{DEFAULTS}frontend guide\n    bind {guide} ssl crt {pem} alpn h2,http/1.1\n    default_backend be\n\
         frontend narrow\n    bind {narrow} ssl crt {pem} ciphers ECDHE-ECDSA-AES256-GCM-SHA384 ciphersuites TLS_AES_256_GCM_SHA384\n    default_backend be\n\
         backend be\n    server s1 {origin}\n",
        pem = site.pem.display(),
        origin = origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    let tls12 = |c: &'static str| ["--tls-max", "1.2", "--ciphers", c];
    let tls13 = |c: &'static str| ["--tlsv1.3", "--tls13-ciphers", c];
    // (bind, curl options, served?)
    let cases: Vec<(SocketAddr, Vec<&str>, bool)> = vec![
        (guide, tls12("ECDHE-ECDSA-AES128-GCM-SHA256").to_vec(), true),
        (guide, tls12("ECDHE-ECDSA-AES256-GCM-SHA384").to_vec(), true),
        (
            guide,
            tls12("ECDHE-ECDSA-CHACHA20-POLY1305").to_vec(),
            false,
        ),
        (guide, tls12("ECDHE-ECDSA-AES128-SHA256").to_vec(), false),
        (guide, tls13("TLS_CHACHA20_POLY1305_SHA256").to_vec(), true),
        (guide, tls13("TLS_AES_128_CCM_SHA256").to_vec(), false),
        (guide, vec!["--tls-max", "1.1"], false),
        (
            narrow,
            tls12("ECDHE-ECDSA-AES256-GCM-SHA384").to_vec(),
            true,
        ),
        (
            narrow,
            tls12("ECDHE-ECDSA-AES128-GCM-SHA256").to_vec(),
            false,
        ),
        (narrow, tls13("TLS_AES_256_GCM_SHA384").to_vec(), true),
        (narrow, tls13("TLS_AES_128_GCM_SHA256").to_vec(), false),
    ];
    for which in proxies() {
        let _proxy = start(which, &path, &[guide, narrow]);
        for (front, opts, served) in &cases {
            let g = https(*front, "site.example", "/", &ca.cert, opts);
            let want = if *served { "200" } else { "000" };
            assert_eq!(g.code, want, "{which} {front} {opts:?}: {}", g.log);
            if *served {
                let cipher = opts.last().unwrap();
                assert!(
                    g.log.contains(&format!("/ {cipher}")),
                    "{which} {opts:?}: {}",
                    g.log
                );
            }
        }
    }
}

#[test]
fn websocket_upgrades_and_echoes_behind_a_tls_bind() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-ws");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("ws.example", &dir.join("site.pem"));
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} ssl crt {} alpn http/1.1\n    default_backend be\nbackend be\n    server s1 {}\n",
        site.pem.display(),
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    for which in proxies() {
        let _proxy = start(which, &path, &[front]);
        // socat turns a plain local port into a verified TLS connection to the proxy, so
        // the plain-TCP WebSocket client speaks through the TLS bind.
        let local = free_addr();
        let _socat = ChildGuard::spawn(
            "socat",
            Command::new("socat").args([
                format!("TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork", local.port()),
                format!(
                    "OPENSSL:127.0.0.1:{},cafile={},commonname=ws.example,snihost=ws.example",
                    front.port(),
                    ca.cert.display()
                ),
            ]),
        )
        .unwrap();
        wait_for_port(local, T).unwrap();
        let mut ws = WsClient::connect(local, "/ws").unwrap_or_else(|e| panic!("{which}: {e}"));
        ws.stream().set_read_timeout(Some(T)).unwrap();
        ws.send(true, OP_TEXT, b"hello through TLS").unwrap();
        let f = ws.recv().unwrap();
        assert_eq!(
            (f.opcode, f.payload.as_slice()),
            (OP_TEXT, &b"hello through TLS"[..]),
            "{which}"
        );
        // Larger than one TLS record (16 KiB) each way.
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        ws.send(true, OP_BINARY, &big).unwrap();
        let f = ws.recv().unwrap();
        assert_eq!(f.opcode, OP_BINARY, "{which}");
        assert!(f.payload == big, "{which}: {} bytes back", f.payload.len());
    }
}

#[test]
fn ocsp_response_next_to_the_certificate_is_stapled() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-ocsp");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let stapled = ca.server("ocsp.example", &dir.join("stapled.pem"));
    let plain = ca.server("plain.example", &dir.join("plain.pem"));
    ca.ocsp_good(&stapled, &dir.join("stapled.pem.ocsp"));
    // HAProxy checks the response against the issuer: `.issuer` (ringlb ignores it).
    std::fs::copy(&ca.cert, dir.join("stapled.pem.issuer")).unwrap();
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} ssl crt {} crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
        stapled.pem.display(),
        plain.pem.display(),
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    for which in proxies() {
        let _proxy = start(which, &path, &[front]);
        for tls in ["-tls1_2", "-tls1_3"] {
            let out = s_client(front, &["-servername", "ocsp.example", "-status", tls]);
            assert!(
                out.contains("OCSP Response Status: successful")
                    && out.contains("Cert Status: good"),
                "{which} {tls}: {out}"
            );
            let out = s_client(front, &["-servername", "plain.example", "-status", tls]);
            assert!(
                out.contains("OCSP response: no response sent"),
                "{which} {tls}: {out}"
            );
        }
    }
}

/// The TLS sample fetches the rules engine offers, each into a header the origin echoes.
const FETCH_HEADERS: &[(&str, &str)] = &[
    ("x-fc", "ssl_fc"),
    ("x-sni", "ssl_fc_sni"),
    ("x-proto", "ssl_fc_protocol"),
    ("x-cipher", "ssl_fc_cipher"),
    ("x-alpn", "ssl_fc_alpn"),
    ("x-used", "ssl_c_used"),
    ("x-verify", "ssl_c_verify"),
    ("x-dn", "ssl_c_s_dn"),
    ("x-cn", "ssl_c_s_dn(cn)"),
    ("x-idn", "ssl_c_i_dn"),
    ("x-icn", "ssl_c_i_dn(cn)"),
    ("x-serial", "ssl_c_serial,hex"),
    ("x-notafter", "ssl_c_notafter"),
];

/// Each fetch header and the value the origin received, for one request.
type Echoed = Vec<(String, Option<String>)>;

#[test]
fn tls_fetches_match_haproxy_with_and_without_a_client_certificate() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the fetch comparison");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-fetch");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let server = ca.server("fetch.example", &dir.join("server.pem"));
    let client = ca.client("client-one", &dir.join("client.pem"));
    let front = free_addr();
    let rules: String = FETCH_HEADERS
        .iter()
        .map(|(h, f)| format!("    http-request set-header {h} %[{f}]\n"))
        .collect();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} ssl crt {} ca-file {} verify optional alpn h2,http/1.1\n{rules}    default_backend be\nbackend be\n    server s1 {}\n",
        server.pem.display(),
        ca.cert.display(),
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    let crt = client.crt.display().to_string();
    let key = client.key.display().to_string();
    let with_cert = ["--cert", crt.as_str(), "--key", key.as_str()];
    let cases: Vec<Vec<&str>> = vec![
        vec!["--tlsv1.3"],
        vec!["--tls-max", "1.2", "--http1.1"],
        [&["--tlsv1.3", "--http1.1"][..], &with_cert].concat(),
        [&["--tls-max", "1.2"][..], &with_cert].concat(),
    ];
    let mut seen: Vec<Vec<Echoed>> = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = start(which, &path, &[front]);
        let mut per_case = Vec::new();
        for opts in &cases {
            let g = https(front, "fetch.example", "/echo", &ca.cert, opts);
            assert_eq!(g.code, "200", "{which} {opts:?}: {}", g.log);
            per_case.push(
                FETCH_HEADERS
                    .iter()
                    .map(|(h, _)| ((*h).to_owned(), echoed(&g.body, h)))
                    .collect(),
            );
        }
        seen.push(per_case);
    }
    // Not vacuous: haproxy filled in what a certificate and a protocol give.
    let value = |case: usize, h: &str| {
        seen[1][case]
            .iter()
            .find(|(n, _)| n == h)
            .and_then(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(value(2, "x-cn"), "client-one");
    assert_eq!(value(3, "x-proto"), "TLSv1.2");
    assert_eq!(value(1, "x-used"), "0");
    eprintln!("haproxy with a certificate over TLS 1.2: {:?}", seen[1][3]);
    for (i, opts) in cases.iter().enumerate() {
        assert_eq!(
            seen[0][i], seen[1][i],
            "ringlb (left) vs haproxy (right), {opts:?}"
        );
    }
}

#[test]
fn crt_list_sni_filters_wildcards_and_strict_sni() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-crtlist");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let a = ca.server("a.example", &dir.join("a.pem"));
    let b = ca.server("b.example", &dir.join("b.pem"));
    let wild = ca.server("*.wild.example", &dir.join("wild.pem"));
    // The first line is the default; the filters on b's line replace its own names, and
    // a negative filter excludes a name the wildcard would match.
    let list = dir.join("certs.list");
    std::fs::write(
        &list,
        format!(
            "{}\n# a comment\n{} b-alias.example other.example\n{} *.wild.example !no.wild.example\n",
            a.pem.display(),
            b.pem.display(),
            wild.pem.display()
        ),
    )
    .unwrap();
    let (lenient, strict) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend lenient\n    bind {lenient} ssl crt-list {list}\n    default_backend be\n\
         frontend strict\n    bind {strict} ssl strict-sni crt-list {list}\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        origins.addrs()[0],
        list = list.display(),
    );
    let path = write_config(&dir, &cfg);
    let names = [
        "a.example",
        "b-alias.example",
        "other.example",
        "b.example",
        "x.wild.example",
        "no.wild.example",
        "deep.x.wild.example",
        "unknown.example",
        "B-Alias.Example",
        "X.WILD.example",
    ];
    let mut seen: Vec<Vec<(String, String)>> = Vec::new();
    for which in proxies() {
        let _proxy = start(which, &path, &[lenient, strict]);
        let mut got = Vec::new();
        for name in names {
            got.push((name.to_owned(), served_subject(lenient, Some(name))));
            // strict-sni: a name no line matches gets no certificate at all.
            let out = s_client(strict, &["-servername", name]);
            let strict_subject = out
                .lines()
                .find_map(|l| l.strip_prefix("subject="))
                .unwrap_or("refused")
                .trim()
                .to_owned();
            got.push((format!("strict {name}"), strict_subject));
        }
        eprintln!("{which}: {got:?}");
        seen.push(got);
    }
    let ringlb = &seen[0];
    let subject = |n: &str| ringlb.iter().find(|(k, _)| k == n).unwrap().1.as_str();
    assert_eq!(subject("b-alias.example"), "CN = b.example");
    assert_eq!(subject("x.wild.example"), "CN = *.wild.example");
    assert_eq!(subject("unknown.example"), "CN = a.example");
    assert_eq!(subject("strict unknown.example"), "refused");
    if let Some(haproxy) = seen.get(1) {
        for (r, h) in ringlb.iter().zip(haproxy) {
            assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
        }
    }
}

#[test]
fn crl_file_refuses_a_revoked_client_certificate() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-crl");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let server = ca.server("crl.example", &dir.join("server.pem"));
    let kept = ca.client("kept-client", &dir.join("kept.pem"));
    let revoked = ca.client("revoked-client", &dir.join("revoked.pem"));
    let crl = dir.join("crl.pem");
    ca.crl(&[&revoked], &crl);
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} ssl crt {} ca-file {} crl-file {} verify required\n    http-request set-header X-Client-CN %[ssl_c_s_dn(cn)]\n    default_backend be\nbackend be\n    server s1 {}\n",
        server.pem.display(),
        ca.cert.display(),
        crl.display(),
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    for which in proxies() {
        let _proxy = start(which, &path, &[front]);
        for (cert, served) in [(&kept, true), (&revoked, false)] {
            let (crt, key) = (
                cert.crt.display().to_string(),
                cert.key.display().to_string(),
            );
            let g = https(
                front,
                "crl.example",
                "/echo",
                &ca.cert,
                &["--cert", &crt, "--key", &key],
            );
            if served {
                assert_eq!(g.code, "200", "{which}: {}", g.log);
                assert_eq!(
                    echoed(&g.body, "x-client-cn").as_deref(),
                    Some("kept-client")
                );
            } else {
                assert_eq!(
                    g.code, "000",
                    "{which}: revoked certificate served: {}",
                    g.body
                );
            }
        }
    }
}

#[test]
fn ignore_err_lists_decide_like_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the ignore-err comparison");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-ignore");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let other = TestCa::new(&dir.join("other"), "some other CA");
    let server = ca.server("ignore.example", &dir.join("server.pem"));
    let good = ca.client("good-client", &dir.join("good.pem"));
    let revoked = ca.client("revoked-client", &dir.join("revoked.pem"));
    let foreign = other.client("foreign-client", &dir.join("foreign.pem"));
    let crl = dir.join("crl.pem");
    ca.crl(&[&revoked], &crl);
    let binds = [
        "verify required",
        "verify required crt-ignore-err all",
        "verify required ca-ignore-err all",
        "verify required crt-ignore-err 23",
        "verify optional crt-ignore-err 21,23",
        "verify required crt-ignore-err 3,21",
        "verify required crt-ignore-err 3",
    ];
    let addrs: Vec<SocketAddr> = binds.iter().map(|_| free_addr()).collect();
    let mut cfg = DEFAULTS.to_owned();
    for (i, (opts, addr)) in binds.iter().zip(&addrs).enumerate() {
        cfg.push_str(&format!(
            "frontend f{i}\n    bind {addr} ssl crt {} ca-file {} crl-file {} {opts}\n    http-request set-header X-Verify %[ssl_c_verify]\n    http-request set-header X-CN %[ssl_c_s_dn(cn)]\n    http-request set-header X-Errs %[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_c_ca_err_depth]\n    default_backend be\n",
            server.pem.display(),
            ca.cert.display(),
            crl.display(),
        ));
    }
    cfg.push_str(&format!(
        "backend be\n    server s1 {}\n",
        origins.addrs()[0]
    ));
    let path = write_config(&dir, &cfg);
    let certs = [
        ("good", &good),
        ("revoked", &revoked),
        ("foreign", &foreign),
    ];
    let mut seen: Vec<Vec<String>> = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = start(which, &path, &addrs);
        let mut got = Vec::new();
        for (opts, addr) in binds.iter().zip(&addrs) {
            for (label, cert) in certs {
                let (crt, key) = (
                    cert.crt.display().to_string(),
                    cert.key.display().to_string(),
                );
                let g = https(
                    *addr,
                    "ignore.example",
                    "/echo",
                    &ca.cert,
                    &["--cert", &crt, "--key", &key],
                );
                got.push(format!(
                    "{opts} / {label}: {} verify={:?} cn={:?} errs={:?}",
                    g.code,
                    echoed(&g.body, "x-verify"),
                    echoed(&g.body, "x-cn"),
                    echoed(&g.body, "x-errs")
                ));
            }
        }
        eprintln!("{which}: {got:#?}");
        seen.push(got);
    }
    for (r, h) in seen[0].iter().zip(&seen[1]) {
        assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
    }
    // Not vacuous: some ignored error let a bad certificate through.
    assert!(
        seen[1]
            .iter()
            .any(|l| l.contains("/ revoked: 200 verify=Some(\"23\")")),
        "{:#?}",
        seen[1]
    );
}

#[test]
fn session_resumption_with_and_without_tickets_matches_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the resumption comparison");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-resume");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("resume.example", &dir.join("site.pem"));
    let (tickets, no_tickets) = (free_addr(), free_addr());
    // Two threads: a reconnection may land on either shard, and must resume on both
    // (haproxy's threads share one session cache; ringlb's shards share the bind's).
    let cfg = format!(
        "global\n    nbthread 2\n    tune.ssl.cachesize 1000\n    tune.ssl.lifetime 600\n{DEFAULTS}\
         frontend tickets\n    bind {tickets} ssl crt {pem}\n    default_backend be\n\
         frontend no_tickets\n    bind {no_tickets} ssl crt {pem} no-tls-tickets\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        origins.addrs()[0],
        pem = site.pem.display(),
    );
    let path = write_config(&dir, &cfg);
    let mut seen: Vec<Vec<String>> = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = start(which, &path, &[tickets, no_tickets]);
        let mut got = Vec::new();
        for front in [tickets, no_tickets] {
            // TLS 1.2, -reconnect: one full handshake, then five trying to resume it.
            let out = s_client(
                front,
                &["-servername", "resume.example", "-reconnect", "-tls1_2"],
            );
            let reused = out.lines().filter(|l| l.starts_with("Reused,")).count();
            let ticket = out.contains("TLS session ticket:");
            got.push(format!("{front} TLS 1.2: reused {reused} ticket {ticket}"));
            // TLS 1.3 sends its tickets after the handshake: a request reads them.
            let sess = dir.join(&format!("{which}-{}.sess", front.port()));
            let first = tls13_request(front, "-sess_out", &sess);
            assert!(first.contains("HTTP/1.1 200"), "{which}: {first}");
            let second = tls13_request(front, "-sess_in", &sess);
            assert!(second.contains("HTTP/1.1 200"), "{which}: {second}");
            got.push(format!(
                "{front} TLS 1.3: resumed {}",
                second.contains("Reused, TLSv1.3")
            ));
        }
        eprintln!("{which}: {got:#?}");
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "ringlb (left) vs haproxy (right)");
}

/// One HTTP/1.1 request over TLS 1.3 with s_client, saving (`-sess_out`) or offering
/// (`-sess_in`) the session in `sess`; s_client's output.
fn tls13_request(front: SocketAddr, flag: &str, sess: &Path) -> String {
    let script = format!(
        "printf 'GET / HTTP/1.1\\r\\nHost: resume.example\\r\\nConnection: close\\r\\n\\r\\n' | \\
         openssl s_client -connect 127.0.0.1:{} -servername resume.example -tls1_3 -ign_eof {flag} {}",
        front.port(),
        sess.display()
    );
    let out = run_bounded(Command::new("sh").args(["-c", &script]), T).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn crt_directory_loads_key_and_ocsp_companions() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-crtdir");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    // a: certificate and key in separate files, with an OCSP response and its issuer;
    // b: one PEM with both, nothing else. The companions must not load as certificates.
    let a = ca.server("a.example", &dir.join("a-both.pem"));
    std::fs::copy(&a.crt, certs.join("a.example.pem")).unwrap();
    std::fs::copy(&a.key, certs.join("a.example.pem.key")).unwrap();
    ca.ocsp_good(&a, &certs.join("a.example.pem.ocsp"));
    std::fs::copy(&ca.cert, certs.join("a.example.pem.issuer")).unwrap();
    ca.server("b.example", &certs.join("b.example.pem"));
    let front = free_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} ssl crt {}/\n    default_backend be\nbackend be\n    server s1 {}\n",
        certs.display(),
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    for which in proxies() {
        let _proxy = start(which, &path, &[front]);
        for (name, stapled) in [("a.example", true), ("b.example", false)] {
            let out = s_client(front, &["-servername", name, "-status"]);
            assert!(
                out.contains(&format!("subject=CN = {name}")),
                "{which}: {out}"
            );
            assert_eq!(
                out.contains("Cert Status: good"),
                stapled,
                "{which} {name}: {out}"
            );
            let g = https(front, name, "/", &ca.cert, &[]);
            assert_eq!(g.code, "200", "{which} {name}: {}", g.log);
        }
        assert_eq!(
            served_subject(front, Some("other.example")),
            "CN = a.example",
            "{which}"
        );
    }
}

#[test]
fn certificate_chains_through_an_intermediate_both_ways_match_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the chain comparison");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-chain");
    let root = TestCa::new(&dir.join("root"), "ringlb root CA");
    let sub = root.intermediate(&dir.join("sub"), "ringlb intermediate CA");
    // The server sends its intermediate; clients trust the root alone.
    let server = sub.server("chain.example", &dir.join("server.pem"));
    sub.append_chain(&server);
    let chained = sub.client("chained-client", &dir.join("chained.pem"));
    sub.append_chain(&chained);
    let lone = sub.client("lone-client", &dir.join("lone.pem"));
    let other = TestCa::new(&dir.join("other"), "other root CA");
    let other_sub = other.intermediate(&dir.join("other-sub"), "other intermediate CA");
    let foreign = other_sub.client("foreign-client", &dir.join("foreign.pem"));
    other_sub.append_chain(&foreign);
    let binds = [
        "verify required",
        "verify required ca-ignore-err all",
        "verify required crt-ignore-err all",
        "verify optional ca-ignore-err 20",
    ];
    let addrs: Vec<SocketAddr> = binds.iter().map(|_| free_addr()).collect();
    let mut cfg = DEFAULTS.to_owned();
    for (i, (opts, addr)) in binds.iter().zip(&addrs).enumerate() {
        cfg.push_str(&format!(
            "frontend f{i}\n    bind {addr} ssl crt {} ca-file {} {opts}\n    http-request set-header X-Verify %[ssl_c_verify]\n    http-request set-header X-CN %[ssl_c_s_dn(cn)]\n    http-request set-header X-ICN %[ssl_c_i_dn(cn)]\n    http-request set-header X-Chain %[ssl_c_chain_der,base64]\n    http-request set-header X-Early %[ssl_fc_has_early]\n    http-request set-header X-Errs %[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_c_ca_err_depth]\n    default_backend be\n",
            server.pem.display(),
            root.cert.display(),
        ));
    }
    cfg.push_str(&format!(
        "backend be\n    server s1 {}\n",
        origins.addrs()[0]
    ));
    let path = write_config(&dir, &cfg);
    let certs = [
        ("chained", &chained),
        ("lone", &lone),
        ("foreign", &foreign),
    ];
    let mut seen: Vec<Vec<String>> = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = start(which, &path, &addrs);
        let mut got = Vec::new();
        for (opts, addr) in binds.iter().zip(&addrs) {
            for (label, cert) in certs {
                let (crt, key) = (
                    cert.crt.display().to_string(),
                    cert.key.display().to_string(),
                );
                let g = https(
                    *addr,
                    "chain.example",
                    "/echo",
                    &root.cert,
                    &["--cert", &crt, "--key", &key],
                );
                got.push(format!(
                    "{opts} / {label}: {} verify={:?} errs={:?} cn={:?} issuer={:?} early={:?} chain={:?}",
                    g.code,
                    echoed(&g.body, "x-verify"),
                    echoed(&g.body, "x-errs"),
                    echoed(&g.body, "x-cn"),
                    echoed(&g.body, "x-icn"),
                    echoed(&g.body, "x-early"),
                    echoed(&g.body, "x-chain"),
                ));
            }
        }
        eprintln!("{which}: {got:#?}");
        seen.push(got);
    }
    for (r, h) in seen[0].iter().zip(&seen[1]) {
        assert_eq!(r, h, "ringlb (left) vs haproxy (right)");
    }
    assert!(
        seen[1][0].starts_with(
            "verify required / chained: 200 verify=Some(\"0\") errs=Some(\"0/0/0\") cn=Some(\"chained-client\")"
        ),
        "{}",
        seen[1][0]
    );
    // The chained client sent its intermediate (`ssl_c_chain_der`), the lone one nothing.
    let sub_der = String::from_utf8(
        run_bounded(
            Command::new("sh").arg("-c").arg(format!(
                "openssl x509 -in {} -outform der | openssl base64 -A",
                sub.cert.display()
            )),
            T,
        )
        .unwrap()
        .stdout,
    )
    .unwrap();
    assert!(
        seen[0][0].ends_with(&format!("early=Some(\"0\") chain=Some(\"{sub_der}\")")),
        "{}",
        seen[0][0]
    );
    // (The lone client gets through where its missing issuer, error 20, is ignored.)
    let lone = seen[0]
        .iter()
        .find(|l| l.contains(" / lone: 200 "))
        .expect("the lone client passes a bind");
    assert!(lone.ends_with("chain=Some(\"\")"), "{lone}");
}

/// Fetches beyond issue #8's list: names in a many-part subject, certificate details.
/// and the served certificate's (`ssl_f_*`). (`ssl_bc_*` and `ssl_s_*`: `tls_server_fetches.rs`.)
const MORE_FETCH_HEADERS: &[(&str, &str)] = &[
    ("x-dn", "ssl_c_s_dn"),
    ("x-o", "ssl_c_s_dn(o)"),
    ("x-ou", "ssl_c_s_dn(ou)"),
    ("x-ou-last", "ssl_c_s_dn(ou,-1)"),
    ("x-ou-first", "ssl_c_s_dn(ou,1)"),
    ("x-dn-rfc", "ssl_c_s_dn(,0,rfc2253)"),
    ("x-notbefore-set", "ssl_c_notbefore,length"),
    ("x-has-crt", "ssl_fc_has_crt"),
    ("x-has-sni", "ssl_fc_has_sni"),
    ("x-alg-keysize", "ssl_fc_alg_keysize"),
    ("x-err", "ssl_c_err"),
    ("x-ca-err", "ssl_c_ca_err"),
    ("x-keysize", "ssl_fc_use_keysize"),
    ("x-sni-lower", "ssl_fc_sni,lower"),
    ("x-sha1", "ssl_c_sha1,hex"),
    ("x-der", "ssl_c_der,base64"),
    ("x-version", "ssl_c_version"),
    ("x-sig-alg", "ssl_c_sig_alg"),
    ("x-key-alg", "ssl_c_key_alg"),
    ("x-f-dn", "ssl_f_s_dn"),
    ("x-f-cn", "ssl_f_s_dn(cn)"),
    ("x-f-idn", "ssl_f_i_dn"),
    ("x-f-serial", "ssl_f_serial,hex"),
    ("x-f-notafter-set", "ssl_f_notafter,length"),
    ("x-f-notbefore-set", "ssl_f_notbefore,length"),
    ("x-f-sha1", "ssl_f_sha1,hex"),
    ("x-f-der", "ssl_f_der,base64"),
    ("x-f-version", "ssl_f_version"),
    ("x-f-sig-alg", "ssl_f_sig_alg"),
    ("x-f-key-alg", "ssl_f_key_alg"),
];

#[test]
fn certificate_detail_fetches_match_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the fetch comparison");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-fetch2");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let server = ca.server("detail.example", &dir.join("server.pem"));
    let client = ca.client_with_subject(
        "/C=FR/O=Ringlb Test/OU=first unit/OU=second unit/CN=rich-client",
        &dir.join("client.pem"),
    );
    let rsa = ca.client_rsa("rsa-client", &dir.join("rsa-client.pem"));
    let front = free_addr();
    let rules: String = MORE_FETCH_HEADERS
        .iter()
        .map(|(h, f)| format!("    http-request set-header {h} %[{f}]\n"))
        .collect();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind {front} ssl crt {} ca-file {} verify optional\n{rules}    default_backend be\nbackend be\n    server s1 {}\n",
        server.pem.display(),
        ca.cert.display(),
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    let (crt, key) = (
        client.crt.display().to_string(),
        client.key.display().to_string(),
    );
    let (rsa_crt, rsa_key) = (rsa.crt.display().to_string(), rsa.key.display().to_string());
    let mut seen: Vec<Vec<Echoed>> = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = start(which, &path, &[front]);
        let mut per_case = Vec::new();
        for opts in [
            vec!["--cert", &crt, "--key", &key],
            vec![],
            vec!["--cert", &rsa_crt, "--key", &rsa_key],
        ] {
            let g = https(front, "Detail.Example", "/echo", &ca.cert, &opts);
            assert_eq!(g.code, "200", "{which}: {}", g.log);
            per_case.push(
                MORE_FETCH_HEADERS
                    .iter()
                    .map(|(h, _)| ((*h).to_owned(), echoed(&g.body, h)))
                    .collect(),
            );
        }
        seen.push(per_case);
    }
    let mut differ = Vec::new();
    for (case, (r, h)) in seen[0].iter().zip(&seen[1]).enumerate() {
        for (a, b) in r.iter().zip(h) {
            if a != b {
                differ.push(format!("case {case}: ringlb {a:?}, haproxy {b:?}"));
            }
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
    assert_eq!(seen[1][0][1].1.as_deref(), Some("Ringlb Test"));
    let value = |case: usize, h: &str| {
        seen[0][case]
            .iter()
            .find(|(n, _)| n == h)
            .and_then(|(_, v)| v.clone())
    };
    assert_eq!(value(0, "x-version").as_deref(), Some("3"));
    assert_eq!(value(0, "x-key-alg").as_deref(), Some("id-ecPublicKey"));
    assert_eq!(value(2, "x-key-alg").as_deref(), Some("rsaEncryption"));
    assert_eq!(value(0, "x-sha1").map(|v| v.len()), Some(40));
    assert_eq!(value(1, "x-f-cn").as_deref(), Some("detail.example"));
}

#[test]
fn protocol_version_options_match_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the version comparison");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-versions");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let site = ca.server("v.example", &dir.join("site.pem"));
    let binds = [
        "",
        "force-tlsv12",
        "force-tlsv13",
        "no-tlsv13",
        "no-tlsv12",
        "ssl-max-ver TLSv1.2",
        "ssl-min-ver TLSv1.3",
    ];
    let addrs: Vec<SocketAddr> = binds.iter().map(|_| free_addr()).collect();
    let mut cfg = format!("{GUIDE_TLS}{DEFAULTS}");
    for (i, (opts, addr)) in binds.iter().zip(&addrs).enumerate() {
        cfg.push_str(&format!(
            "frontend f{i}\n    bind {addr} ssl crt {} {opts}\n    http-request set-header X-Proto %[ssl_fc_protocol]\n    default_backend be\n",
            site.pem.display(),
        ));
    }
    cfg.push_str(&format!(
        "backend be\n    server s1 {}\n",
        origins.addrs()[0]
    ));
    let path = write_config(&dir, &cfg);
    let clients: [&[&str]; 3] = [&[], &["--tls-max", "1.2"], &["--tlsv1.3"]];
    let mut seen: Vec<Vec<String>> = Vec::new();
    for which in ["ringlb", "haproxy"] {
        let _proxy = start(which, &path, &addrs);
        let mut got = Vec::new();
        for (opts, addr) in binds.iter().zip(&addrs) {
            for client in clients {
                let g = https(*addr, "v.example", "/echo", &ca.cert, client);
                got.push(format!(
                    "[{opts}] {client:?}: {} {:?}",
                    g.code,
                    echoed(&g.body, "x-proto")
                ));
            }
        }
        seen.push(got);
    }
    let differ: Vec<String> = seen[0]
        .iter()
        .zip(&seen[1])
        .filter(|(r, h)| r != h)
        .map(|(r, h)| format!("ringlb {r} / haproxy {h}"))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    assert!(seen[1].iter().any(|l| l.contains("000")), "{:#?}", seen[1]);
}

#[test]
fn rsa_and_ecdsa_certificates_for_one_name_follow_the_clients_cipher() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-dual");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let ec = ca.server("dual.example", &dir.join("dual-ec.pem"));
    let rsa = ca.server_rsa("dual.example", &dir.join("dual-rsa.pem"));
    let front = free_addr();
    let cfg = format!(
        "{GUIDE_TLS}{DEFAULTS}frontend fe\n    bind {front} ssl crt {} crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
        ec.pem.display(),
        rsa.pem.display(),
        origins.addrs()[0],
    );
    let path = write_config(&dir, &cfg);
    for which in proxies() {
        let _proxy = start(which, &path, &[front]);
        for (cipher, key) in [
            (
                "ECDHE-RSA-AES128-GCM-SHA256",
                "Server public key is 2048 bit",
            ),
            (
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "Server public key is 256 bit",
            ),
        ] {
            let out = s_client(
                front,
                &["-servername", "dual.example", "-tls1_2", "-cipher", cipher],
            );
            assert!(
                out.contains(&format!("Cipher    : {cipher}")) && out.contains(key),
                "{which} {cipher}: {out}"
            );
            let g = https(
                front,
                "dual.example",
                "/",
                &ca.cert,
                &["--tls-max", "1.2", "--ciphers", cipher],
            );
            assert_eq!(g.code, "200", "{which} {cipher}: {}", g.log);
        }
    }
}

/// Bypass attempts against mutual TLS that is required for one name only (a crt-list line
/// with `verify required`), and the domain-fronting guard from HAProxy's manual (`strcmp`
/// example): SNI of the open name with `Host` of the guarded one gets 421 where the rule is
/// configured — and passes where it is not, in haproxy as in ringlb (why the rule matters).
#[test]
fn mtls_bypass_attempts_fail_and_sni_host_mismatch_gets_421_where_configured() {
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-bypass");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    // A CA with the same name as the trusted one, and its "client-one": a forged issuer.
    let forged_ca = TestCa::new(&dir.join("forged"), "ringlb test CA");
    let public = ca.server("public.example", &dir.join("public.pem"));
    let admin = ca.server("admin.example", &dir.join("admin.pem"));
    let good = ca.client("client-one", &dir.join("client.pem"));
    let forged = forged_ca.client("client-one", &dir.join("forged-client.pem"));
    // A certificate of the trusted CA made for servers, not clients (extendedKeyUsage).
    // (Another name: the CA keeps its working files by subject.)
    let server_as_client = ca.server("client-two", &dir.join("server-as-client.pem"));
    let list = dir.join("certs.list");
    std::fs::write(
        &list,
        format!(
            "{}\n{} [verify required ca-file {}] admin.example\n",
            public.pem.display(),
            admin.pem.display(),
            ca.cert.display()
        ),
    )
    .unwrap();
    let (guarded, open) = (free_addr(), free_addr());
    let cfg = format!(
        "{DEFAULTS}frontend guarded\n    bind {guarded} ssl crt-list {list}\n\
         \x20   http-request set-var(txn.host) req.hdr(host),field(1,:)\n\
         \x20   http-request deny deny_status 421 if !{{ ssl_fc_sni,strcmp(txn.host) eq 0 }}\n\
         \x20   default_backend be\n\
         frontend open\n    bind {open} ssl crt-list {list}\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        origins.addrs()[0],
        list = list.display(),
    );
    let path = write_config(&dir, &cfg);
    let cert_args = |c: &ringlb_testkit::Issued| {
        vec![
            "--cert".to_owned(),
            c.crt.display().to_string(),
            "--key".to_owned(),
            c.key.display().to_string(),
        ]
    };
    // (what is tried, front, SNI name, Host header, client certificate)
    let cases: Vec<(&str, SocketAddr, &str, &str, Vec<String>)> = vec![
        (
            "public name",
            guarded,
            "public.example",
            "public.example",
            vec![],
        ),
        (
            "admin, no certificate",
            guarded,
            "admin.example",
            "admin.example",
            vec![],
        ),
        (
            "admin, valid certificate",
            guarded,
            "admin.example",
            "admin.example",
            cert_args(&good),
        ),
        (
            "admin, forged issuer",
            guarded,
            "admin.example",
            "admin.example",
            cert_args(&forged),
        ),
        (
            "admin, server certificate",
            guarded,
            "admin.example",
            "admin.example",
            cert_args(&server_as_client),
        ),
        (
            "fronting: public SNI, admin Host",
            guarded,
            "public.example",
            "admin.example",
            vec![],
        ),
        (
            "fronting with port in Host",
            guarded,
            "public.example",
            "admin.example:443",
            vec![],
        ),
        (
            "admin SNI, public Host",
            guarded,
            "admin.example",
            "public.example",
            cert_args(&good),
        ),
        (
            "open: public SNI, admin Host",
            open,
            "public.example",
            "admin.example",
            vec![],
        ),
    ];
    let mut seen: Vec<Vec<String>> = Vec::new();
    for which in proxies() {
        let _proxy = start(which, &path, &[guarded, open]);
        let mut codes = Vec::new();
        for (what, front, sni, host, cert) in &cases {
            let host_hdr = format!("Host: {host}");
            let mut extra: Vec<&str> = vec!["-H", &host_hdr];
            extra.extend(cert.iter().map(String::as_str));
            let g = https(*front, sni, "/", &ca.cert, &extra);
            codes.push(format!("{what}: {}", g.code));
        }
        eprintln!("{which}: {codes:#?}");
        seen.push(codes);
    }
    let expected = [
        "public name: 200",
        "admin, no certificate: 000",
        "admin, valid certificate: 200",
        "admin, forged issuer: 000",
        "admin, server certificate: 000",
        "fronting: public SNI, admin Host: 421",
        "fronting with port in Host: 421",
        "admin SNI, public Host: 421",
        "open: public SNI, admin Host: 200",
    ];
    assert_eq!(seen[0], expected, "ringlb");
    if let Some(haproxy) = seen.get(1) {
        assert_eq!(haproxy, &seen[0], "haproxy (left) vs ringlb (right)");
    }
}

/// `ssl-default-server-sigalgs` (a haproxy 2.8 keyword; 2.6 refuses it, so ringlb alone): the
/// schemes offered to a TLS server. An ECDSA P-256 server can sign only with
/// `ECDSA+SHA256`: offering it works, offering only RSA schemes fails the handshake (503).
#[test]
fn server_sigalgs_restrict_what_a_tls_server_may_sign_with() {
    let dir = TempDir::new("tls-e2e-server-sigalgs");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let origin_cert = ca.server("origin.example", &dir.join("origin.pem"));
    let origin = free_addr();
    let _origin = ChildGuard::spawn(
        "openssl s_server",
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(origin.port().to_string())
            .arg("-cert")
            .arg(&origin_cert.crt)
            .arg("-key")
            .arg(&origin_cert.key),
    )
    .unwrap();
    wait_for_port(origin, T).unwrap();
    for (sigalgs, expected) in [
        ("ECDSA+SHA256:RSA-PSS+SHA256", "200"),
        ("RSA-PSS+SHA256:RSA+SHA256", "503"),
    ] {
        let front = free_addr();
        let cfg = format!(
            "global\n    ssl-default-server-sigalgs {sigalgs}\n{DEFAULTS}frontend fe\n    bind {front}\n    default_backend be\n\
             backend be\n    server s1 {origin} ssl verify required ca-file {} sni str(origin.example)\n",
            ca.cert.display(),
        );
        let path = write_config(&dir, &cfg);
        let _proxy = Ringlb::start(&path, &[front]);
        let url = format!("http://{front}/");
        let out = curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", &url], T).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "offering {sigalgs}"
        );
    }
}

/// `tune.ssl.capture-buffer-size`: the ClientHello's cipher and curve lists (GREASE values
/// filtered on request) and the XXH64 of the cipher list match haproxy for curl and
/// s_client hellos, with a buffer that holds everything and one that truncates the ciphers;
/// without the setting the fetches have no value.
#[test]
fn client_hello_capture_fetches_match_haproxy() {
    if !haproxy_available() {
        eprintln!("haproxy not installed: skipping the capture comparison");
        return;
    }
    let origins = Origins::start(1);
    let dir = TempDir::new("tls-e2e-capture");
    let ca = TestCa::new(&dir.join("ca"), "ringlb test CA");
    let server = ca.server("hello.example", &dir.join("server.pem"));
    let headers = "    http-request set-header x-bin %[ssl_fc_cipherlist_bin,hex]\n    http-request set-header x-hex %[ssl_fc_cipherlist_hex(1)]\n    http-request set-header x-xxh %[ssl_fc_cipherlist_xxh]\n    http-request set-header x-ec %[ssl_fc_eclist_bin(1),hex]\n    http-request set-header x-str %[ssl_fc_cipherlist_str]\n";
    let mut seen: Vec<Vec<String>> = Vec::new();
    for capture in [
        "",
        "    tune.ssl.capture-buffer-size 1024\n",
        "    tune.ssl.capture-buffer-size 10\n",
    ] {
        let front = free_addr();
        let cfg = format!(
            "global\n{capture}{DEFAULTS}frontend fe\n    bind {front} ssl crt {}\n{headers}    default_backend be\nbackend be\n    server s1 {}\n",
            server.pem.display(),
            origins.addrs()[0],
        );
        let path = write_config(&dir, &cfg);
        let mut per_proxy = Vec::new();
        for which in ["ringlb", "haproxy"] {
            let _proxy = start(which, &path, &[front]);
            let mut got = Vec::new();
            for opts in [
                vec![],
                vec!["--tlsv1.2", "--tls-max", "1.2", "--curves", "X25519:P-256"],
                // Old and odd suites too: names come from OpenSSL's table.
                vec![
                    "--tls-max",
                    "1.2",
                    "--ciphers",
                    "ALL:COMPLEMENTOFALL:@SECLEVEL=0",
                ],
            ] {
                let g = https(front, "hello.example", "/echo", &ca.cert, &opts);
                assert_eq!(g.code, "200", "{which}: {}", g.log);
                got.push(
                    ["x-bin", "x-hex", "x-xxh", "x-ec", "x-str"]
                        .iter()
                        .map(|h| format!("{h}={:?}", echoed(&g.body, h)))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            per_proxy.push(got);
        }
        eprintln!("{capture:?}: {per_proxy:#?}");
        assert_eq!(
            per_proxy[0], per_proxy[1],
            "{capture:?}: ringlb (left) vs haproxy (right)"
        );
        seen.push(per_proxy.swap_remove(0));
    }
    assert!(
        seen[0][0].contains("x-bin=Some(\"\")"),
        "no capture: {:?}",
        seen[0]
    );
    assert!(
        seen[1][0].contains("x-bin=Some(\"1302"),
        "TLS 1.3 suites first: {:?}",
        seen[1]
    );
    assert!(
        seen[1][2].contains(",AES128-SHA,") && seen[1][2].contains("x-str=Some(\"ECDHE-"),
        "OpenSSL's names: {}",
        seen[1][2]
    );
    assert!(
        seen[2][0].contains("x-bin=Some(\"130213031301C02CC030\")"),
        "10 bytes: {:?}",
        seen[2]
    );
}
