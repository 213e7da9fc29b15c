//! Server-side TLS: certificate loading and diagnostics, SNI selection, crt-list, policy,
//! mTLS and resumption, through in-memory handshakes with a rustls client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use ringlb_tls::{build_bind, DnFormat, TlsGlobals, TlsSession, TlsShared};
use rustls::time_provider::DefaultTimeProvider;

/// CA + three domains, a wildcard (RSA for c.test) and a client certificate.
fn pki(tag: &str) -> Pki {
    let p = Pki::new(tag);
    p.leaf(
        "a",
        "/CN=a.test",
        &["a.test", "www.a.test"],
        "1",
        false,
        false,
    );
    p.leaf("b", "/CN=b.test", &["b.test"], "2", false, false);
    p.leaf("c", "/CN=c.test", &["c.test"], "3", true, false);
    p.leaf("w", "/CN=*.w.test", &["*.w.test"], "4", false, false);
    p.leaf(
        "client1",
        "/C=FR/O=Example/OU=dev/CN=client1",
        &[],
        "0x1234AB",
        false,
        true,
    );
    p
}

fn certs_dir(p: &Pki) -> std::path::PathBuf {
    let dir = p.file("certs");
    std::fs::create_dir_all(&dir).unwrap();
    for n in ["a", "b", "c", "w"] {
        p.combined(n, &dir.join(format!("{n}.pem")), true);
    }
    // Companions that must not be loaded as certificates.
    std::fs::write(dir.join("b.pem.ocsp"), b"\x30\x03\x0a\x01\x00").unwrap();
    std::fs::write(dir.join("z.issuer"), b"junk").unwrap();
    dir
}

fn shard(bind: &ringlb_tls::BindTls, globals: &TlsGlobals) -> Arc<ringlb_tls::ShardTls> {
    let shared = TlsShared::new(globals, Arc::new(DefaultTimeProvider)).unwrap();
    bind.for_shard(&shared, 1)
}

fn setup(p: &Pki, global: &str, opts: &str) -> (Arc<ringlb_tls::ShardTls>, ringlb_tls::BindTls) {
    let (b, cfg) = bind_cfg(&p.dir.0, global, opts);
    let g = TlsGlobals::from_global(&cfg.global);
    let bt = build_bind(&b, &g, now_unix()).unwrap_or_else(|d| panic!("{d:?}"));
    (shard(&bt, &g), bt)
}

#[test]
fn sni_selects_across_three_domains_and_wildcard_with_first_as_default() {
    let p = pki("sni");
    let dir = certs_dir(&p);
    let (sh, bt) = setup(&p, "", &format!("ssl crt {}", dir.display()));
    assert_eq!(
        bt.certificates().count(),
        4,
        "companion files are not certificates"
    );
    let ca = p.file("ca.pem");
    let cc = ClientOpts::new(&ca).build();
    for (sni, cn) in [
        ("a.test", "a.test"),
        ("www.a.test", "a.test"),
        ("b.test", "b.test"),
        ("c.test", "c.test"),
        ("x.w.test", "*.w.test"),
        ("B.TEST", "b.test"),
    ] {
        let mut c = connect(&cc, sni);
        let mut s = TlsSession::new(sh.clone());
        handshake(&mut c, &mut s).unwrap();
        assert_eq!(served_cn(&c), cn, "SNI {sni}");
        assert_eq!(
            s.facts().unwrap().sni.as_deref(),
            Some(sni.to_ascii_lowercase().as_str())
        );
    }
    // Unknown name: the default (first file of the directory) is served, and the client's
    // name check fails.
    let mut c = connect(&cc, "other.test");
    let mut s = TlsSession::new(sh.clone());
    assert!(handshake(&mut c, &mut s).is_err());
    let any = ClientOpts {
        accept_any: true,
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&any, "other.test");
    let mut s = TlsSession::new(sh.clone());
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(served_cn(&c), "a.test");
}

#[test]
fn ocsp_companion_is_stapled() {
    let p = pki("ocsp");
    let dir = certs_dir(&p);
    let (_, bt) = setup(&p, "", &format!("ssl crt {}", dir.display()));
    let b = bt
        .certificates()
        .find(|c| c.file.ends_with("b.pem"))
        .unwrap();
    assert_eq!(b.key.ocsp.as_deref(), Some(&b"\x30\x03\x0a\x01\x00"[..]));
    let a = bt
        .certificates()
        .find(|c| c.file.ends_with("a.pem"))
        .unwrap();
    assert!(a.key.ocsp.is_none());
    // A PEM instead of DER in the .ocsp file is an error naming it.
    std::fs::write(dir.join("a.pem.ocsp"), b"-----BEGIN OCSP-----\n").unwrap();
    let (b, cfg) = bind_cfg(&p.dir.0, "", &format!("ssl crt {}", dir.display()));
    let e = build_bind(&b, &TlsGlobals::from_global(&cfg.global), now_unix()).unwrap_err();
    assert!(
        e[0].to_string().contains("a.pem.ocsp") && e[0].to_string().contains("OCSP"),
        "{e:?}"
    );
}

#[test]
fn strict_sni_refuses_unknown_names() {
    let p = pki("strict");
    let dir = certs_dir(&p);
    let (sh, _) = setup(&p, "", &format!("ssl crt {} strict-sni", dir.display()));
    let cc = ClientOpts::new(&p.file("ca.pem")).build();
    let mut c = connect(&cc, "other.test");
    let mut s = TlsSession::new(sh.clone());
    let e = handshake(&mut c, &mut s).unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
    let mut c = connect(&cc, "b.test");
    let mut s = TlsSession::new(sh);
    handshake(&mut c, &mut s).unwrap();
}

#[test]
fn crt_list_filters_and_per_line_options() {
    let p = pki("crtlist");
    let dir = certs_dir(&p);
    let list = p.file("list.txt");
    std::fs::write(
        &list,
        format!(
            "# default first\n{a}\n{b} [alpn h2 ssl-min-ver TLSv1.3] api.test b.test\n{w} *.w.test !secret.w.test\n{c} secret.w.test\n",
            a = dir.join("a.pem").display(),
            b = dir.join("b.pem").display(),
            w = dir.join("w.pem").display(),
            c = dir.join("c.pem").display()
        ),
    )
    .unwrap();
    let (sh, _) = setup(
        &p,
        "",
        &format!("ssl crt-list {} alpn http/1.1", list.display()),
    );
    let ca = p.file("ca.pem");
    let run = |sni: &str, alpn: &[&str], v: &[&'static rustls::SupportedProtocolVersion]| {
        let cc = ClientOpts {
            alpn,
            versions: v,
            accept_any: true,
            ..ClientOpts::new(&ca)
        }
        .build();
        let mut c = connect(&cc, sni);
        let mut s = TlsSession::new(sh.clone());
        let r = handshake(&mut c, &mut s);
        (r, c, s)
    };
    // The filter replaces the certificate's own names: api.test is served b.test's cert.
    let (r, c, _) = run("api.test", &["h2", "http/1.1"], rustls::ALL_VERSIONS);
    r.unwrap();
    assert_eq!(served_cn(&c), "b.test");
    // The line's options apply: ALPN h2, TLSv1.3 only.
    let (r, c, s) = run("b.test", &["h2", "http/1.1"], rustls::ALL_VERSIONS);
    r.unwrap();
    assert_eq!(served_cn(&c), "b.test");
    assert_eq!(s.facts().unwrap().alpn.as_deref(), Some(&b"h2"[..]));
    let (r, _, _) = run("b.test", &["h2"], &[&rustls::version::TLS12]);
    assert!(r.is_err(), "ssl-min-ver TLSv1.3 from the crt-list line");
    // Other lines keep the bind's options.
    let (r, _, s) = run("a.test", &["h2", "http/1.1"], &[&rustls::version::TLS12]);
    r.unwrap();
    assert_eq!(s.facts().unwrap().alpn.as_deref(), Some(&b"http/1.1"[..]));
    // Negative filter: secret.w.test goes to c.test's line, x.w.test to the wildcard.
    let (_, c, _) = run("secret.w.test", &[], rustls::ALL_VERSIONS);
    assert_eq!(served_cn(&c), "c.test");
    let (r, c, _) = run("x.w.test", &[], rustls::ALL_VERSIONS);
    r.unwrap();
    assert_eq!(served_cn(&c), "*.w.test");
}

#[test]
fn separate_key_file_with_crt_base_and_key_base() {
    let p = pki("bases");
    let crts = p.file("crts");
    let keys = p.file("keys");
    std::fs::create_dir_all(&crts).unwrap();
    std::fs::create_dir_all(&keys).unwrap();
    p.combined("a", &crts.join("a.pem"), false);
    std::fs::copy(p.file("a.key"), keys.join("a.pem.key")).unwrap();
    // key next to the certificate when no key-base
    p.combined("b", &p.file("b.pem"), false);
    std::fs::copy(p.file("b.key"), p.file("b.pem.key")).unwrap();
    let (b, cfg) = bind_cfg(
        &p.dir.0,
        "",
        &format!("ssl crt {}", p.file("b.pem").display()),
    );
    let g = TlsGlobals::from_global(&cfg.global);
    assert_eq!(
        build_bind(&b, &g, now_unix())
            .unwrap()
            .certificates()
            .count(),
        1
    );
    // crt-base/key-base from the global section, a relative crt on the bind line.
    let global = format!(
        "  crt-base {}\n  key-base {}",
        crts.display(),
        keys.display()
    );
    let (b2, cfg2) = bind_cfg(&p.dir.0, &global, "ssl crt a.pem");
    assert_eq!(
        b2.ssl.crt,
        [std::path::PathBuf::from("a.pem")],
        "the model keeps the path as written"
    );
    let g2 = TlsGlobals::from_global(&cfg2.global);
    assert_eq!(g2.crt_base.as_deref(), Some(crts.as_path()));
    let bt = build_bind(&b2, &g2, now_unix()).unwrap();
    assert_eq!(
        bt.certificates().next().unwrap().names,
        ["a.test", "www.a.test"]
    );
    // Without key-base the key is looked for next to the certificate: an error naming it.
    let g3 = TlsGlobals {
        key_base: None,
        ..g2
    };
    let e = build_bind(&b2, &g3, now_unix()).unwrap_err();
    assert!(e[0].to_string().contains("no private key"), "{e:?}");
    // The config parser applies the bases too: without them the relative path is refused.
    let text = "global\ndefaults\n  mode http\nfrontend fe\n  bind :8443 ssl crt a.pem\n";
    std::fs::write(p.file("bad.cfg"), text).unwrap();
    assert!(ringlb_config::load(&[p.file("bad.cfg")], &|_| None).is_err());
}

#[test]
fn diagnostics_name_the_file() {
    let p = pki("diag");
    let good = p.file("good.pem");
    p.combined("a", &good, true);
    let bad_pem = p.file("bad.pem");
    std::fs::write(
        &bad_pem,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mismatch = p.file("mismatch.pem");
    let mut m = std::fs::read(p.file("a.crt")).unwrap();
    m.extend(std::fs::read(p.file("b.key")).unwrap());
    std::fs::write(&mismatch, m).unwrap();
    let nocert = p.file("nocert.pem");
    std::fs::copy(p.file("a.key"), &nocert).unwrap();
    let (mut b, cfg) = bind_cfg(&p.dir.0, "", &format!("ssl crt {}", good.display()));
    let g = TlsGlobals::from_global(&cfg.global);
    b.ssl.crt = vec![
        good.clone(),
        bad_pem.clone(),
        mismatch.clone(),
        nocert.clone(),
    ];
    let diags = build_bind(&b, &g, now_unix()).unwrap_err();
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(diags.len(), 3, "{text:?}");
    assert!(
        text[0].contains("bad.pem") && text[0].contains("bad PEM"),
        "{text:?}"
    );
    assert!(
        text[1].contains("mismatch.pem") && text[1].contains("does not match"),
        "{text:?}"
    );
    assert!(
        text[2].contains("nocert.pem") && text[2].contains("no certificate"),
        "{text:?}"
    );
    assert!(diags.iter().all(|d| d.is_alert()));
    // Expired: a warning naming the file, not an error (time is passed in).
    b.ssl.crt = vec![good.clone()];
    let later = now_unix() + 60 * 86_400;
    let bt = build_bind(&b, &g, later).unwrap();
    assert_eq!(bt.warnings.len(), 1);
    assert!(!bt.warnings[0].is_alert());
    assert!(
        bt.warnings[0].to_string().contains("good.pem")
            && bt.warnings[0].to_string().contains("expired")
    );
    assert!(build_bind(&b, &g, now_unix()).unwrap().warnings.is_empty());
}

#[test]
fn policy_errors_are_reported() {
    let p = pki("policyerr");
    let good = p.file("good.pem");
    p.combined("a", &good, true);
    let cases = [
        ("force-tlsv11", "rustls does not implement"),
        (
            "ciphers ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384",
            "'DHE-RSA-AES256-GCM-SHA384'",
        ),
        (
            "ciphersuites TLS_AES_128_CCM_8_SHA256",
            "'TLS_AES_128_CCM_8_SHA256'",
        ),
        ("curves P-521", "'P-521'"),
        ("verify required", "no CA file"),
        (
            "ca-file CA verify optional crt-ignore-err x",
            "crt-ignore-err",
        ),
    ];
    for (opts, want) in cases {
        let opts = opts.replace("CA", &p.file("ca.pem").display().to_string());
        let (b, cfg) = bind_cfg(&p.dir.0, "", &format!("ssl crt {} {opts}", good.display()));
        let e = build_bind(&b, &TlsGlobals::from_global(&cfg.global), now_unix()).unwrap_err();
        assert!(
            e.iter().any(|d| d.to_string().contains(want)),
            "{opts}: {e:?}"
        );
    }
    // Merely allowing old versions is fine; npn warns.
    let (b, cfg) = bind_cfg(
        &p.dir.0,
        "",
        &format!("ssl crt {} ssl-min-ver TLSv1.0 npn h2", good.display()),
    );
    let bt = build_bind(&b, &TlsGlobals::from_global(&cfg.global), now_unix()).unwrap();
    assert!(bt.warnings.iter().any(|w| w.to_string().contains("npn")));
}

#[test]
fn versions_ciphers_and_alpn() {
    let p = pki("policy");
    let dir = certs_dir(&p);
    let ca = p.file("ca.pem");
    let crt = format!("ssl crt {}", dir.display());
    // Defaults: TLSv1.3, OpenSSL names in the facts.
    let (sh, _) = setup(&p, "", &format!("{crt} alpn h2,http/1.1"));
    let cc = ClientOpts {
        alpn: &["http/1.1"],
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh.clone());
    handshake(&mut c, &mut s).unwrap();
    let f = s.facts().unwrap();
    assert!(f.ssl_fc());
    assert_eq!(f.protocol, "TLSv1.3");
    assert_eq!(f.cipher, "TLS_AES_256_GCM_SHA384");
    assert_eq!(f.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(!f.session_reused && !f.ssl_c_used());
    // No common ALPN protocol: the handshake goes on without ALPN, as HAProxy does.
    let (sh2, _) = setup(&p, "", &format!("{crt} alpn h2"));
    let cc = ClientOpts {
        alpn: &["http/1.1"],
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh2.clone());
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(s.facts().unwrap().alpn, None);
    let cc = ClientOpts {
        alpn: &["http/1.1", "h2"],
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh2);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(s.facts().unwrap().alpn.as_deref(), Some(&b"h2"[..]));
    // The guide's global settings: ciphers for TLSv1.2, min TLSv1.2.
    let global =
        "  ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\n  \
                  ssl-default-bind-ciphersuites TLS_CHACHA20_POLY1305_SHA256\n  \
                  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets";
    let (sh, _) = setup(&p, global, &crt);
    let v12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    for (sni, cipher) in [
        ("a.test", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("c.test", "ECDHE-RSA-AES128-GCM-SHA256"),
    ] {
        let cc = ClientOpts {
            versions: v12,
            ..ClientOpts::new(&ca)
        }
        .build();
        let mut c = connect(&cc, sni);
        let mut s = TlsSession::new(sh.clone());
        handshake(&mut c, &mut s).unwrap();
        assert_eq!(
            (s.facts().unwrap().protocol, s.facts().unwrap().cipher),
            ("TLSv1.2", cipher)
        );
    }
    let cc = ClientOpts::new(&ca).build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh.clone());
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(s.facts().unwrap().cipher, "TLS_CHACHA20_POLY1305_SHA256");
    // A client offering only a suite the policy excludes fails.
    let only256 =
        vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384];
    let cc = ClientOpts {
        versions: v12,
        suites: Some(only256),
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh.clone());
    assert!(handshake(&mut c, &mut s).is_err());
    // Version floor: TLSv1.3 only refuses a TLSv1.2 client.
    let (sh, _) = setup(&p, "", &format!("{crt} ssl-min-ver TLSv1.3"));
    let cc = ClientOpts {
        versions: v12,
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh);
    assert!(handshake(&mut c, &mut s).is_err());
    // force-tlsv12.
    let (sh, _) = setup(&p, "", &format!("{crt} force-tlsv12"));
    let cc = ClientOpts::new(&ca).build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(s.facts().unwrap().protocol, "TLSv1.2");
}

#[test]
fn mtls_required_optional_and_dn_fields() {
    let p = pki("mtls");
    let dir = certs_dir(&p);
    let ca = p.file("ca.pem");
    let crt = format!("ssl crt {} ca-file {}", dir.display(), ca.display());
    let (sh, _) = setup(&p, "", &format!("{crt} verify required"));
    // No client certificate: handshake failure.
    let cc = ClientOpts::new(&ca).build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh.clone());
    assert!(handshake(&mut c, &mut s).is_err());
    // A valid one: the DN fields, as openssl prints them.
    let (ccrt, ckey) = (p.file("client1.crt"), p.file("client1.key"));
    let cc = ClientOpts {
        client_cert: Some((&ccrt, &ckey)),
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh.clone());
    handshake(&mut c, &mut s).unwrap();
    let f = s.facts().unwrap();
    assert!(f.ssl_c_used());
    assert_eq!(f.ssl_c_verify(), 0);
    assert_eq!(
        f.ssl_c_s_dn(Some("cn"), 0, DnFormat::Oneline).as_deref(),
        Some("client1")
    );
    let d = &p.dir.0;
    let subject = openssl_out(
        &[
            "x509",
            "-in",
            "client1.crt",
            "-noout",
            "-subject",
            "-nameopt",
            "compat",
        ],
        d,
    );
    assert_eq!(
        format!(
            "subject={}\n",
            f.ssl_c_s_dn(None, 0, DnFormat::Oneline).unwrap()
        ),
        subject
    );
    assert_eq!(
        f.ssl_c_s_dn(None, 0, DnFormat::Oneline).unwrap(),
        "/C=FR/O=Example/OU=dev/CN=client1"
    );
    assert_eq!(
        f.ssl_c_s_dn(None, 0, DnFormat::Rfc2253).unwrap(),
        "CN=client1,OU=dev,O=Example,C=FR"
    );
    let issuer = openssl_out(
        &[
            "x509",
            "-in",
            "client1.crt",
            "-noout",
            "-issuer",
            "-nameopt",
            "compat",
        ],
        d,
    );
    assert_eq!(
        format!(
            "issuer={}\n",
            f.ssl_c_i_dn(None, 0, DnFormat::Oneline).unwrap()
        ),
        issuer
    );
    let serial: String = f
        .ssl_c_serial()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(serial, "1234AB");
    assert_eq!(
        openssl_out(&["x509", "-in", "client1.crt", "-noout", "-serial"], d),
        "serial=1234AB\n"
    );
    let na = f.ssl_c_notafter().unwrap();
    assert_eq!(na.len(), 13);
    assert!(na.ends_with('Z'));
    // openssl prints e.g. "notAfter=Dec  3 00:05:44 2026 GMT": same day and time.
    let enddate = openssl_out(&["x509", "-in", "client1.crt", "-noout", "-enddate"], d);
    let hhmmss = format!("{}:{}:{}", &na[6..8], &na[8..10], &na[10..12]);
    assert!(
        enddate.contains(&hhmmss) && enddate.contains(&format!("20{}", &na[0..2])),
        "{enddate} vs {na}"
    );
    // verify optional: no certificate is fine.
    let (sh, _) = setup(&p, "", &format!("{crt} verify optional"));
    let cc = ClientOpts::new(&ca).build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh);
    handshake(&mut c, &mut s).unwrap();
    assert!(!s.facts().unwrap().ssl_c_used());
    assert_eq!(
        s.facts()
            .unwrap()
            .ssl_c_s_dn(Some("CN"), 0, DnFormat::Oneline),
        None
    );
}

#[test]
fn crt_ignore_err_lets_an_expired_client_cert_through_with_its_code() {
    use std::sync::atomic::{AtomicU64, Ordering};
    #[derive(Debug)]
    struct Clock(AtomicU64);
    impl rustls::time_provider::TimeProvider for Clock {
        fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
            Some(rustls::pki_types::UnixTime::since_unix_epoch(
                std::time::Duration::from_secs(self.0.load(Ordering::Relaxed)),
            ))
        }
    }
    let p = pki("ignerr");
    let dir = certs_dir(&p);
    let ca = p.file("ca.pem");
    // The client certificate is valid 10 days; the server's clock is set 11 days ahead (the
    // client checks the server's certificate at real time).
    let opts = format!(
        "ssl crt {} ca-file {} verify required",
        dir.display(),
        ca.display()
    );
    for (extra, ok) in [
        ("", false),
        (" crt-ignore-err 10", true),
        (" crt-ignore-err all", true),
        (" ca-ignore-err all", false),
    ] {
        let (b, cfg) = bind_cfg(&p.dir.0, "", &format!("{opts}{extra}"));
        let g = TlsGlobals::from_global(&cfg.global);
        let bt = build_bind(&b, &g, now_unix()).unwrap();
        let clock = Arc::new(Clock(AtomicU64::new((now_unix() + 11 * 86_400) as u64)));
        let shared = TlsShared::new(&g, clock).unwrap();
        let sh = bt.for_shard(&shared, 1);
        let (ccrt, ckey) = (p.file("client1.crt"), p.file("client1.key"));
        let co = ClientOpts {
            client_cert: Some((&ccrt, &ckey)),
            ..ClientOpts::new(&ca)
        }
        .build();
        let mut c = connect(&co, "b.test");
        let mut s = TlsSession::new(sh);
        let r = handshake(&mut c, &mut s);
        assert_eq!(r.is_ok(), ok, "{extra}: {r:?}");
        if ok {
            assert_eq!(
                s.facts().unwrap().ssl_c_verify(),
                10,
                "X509_V_ERR_CERT_HAS_EXPIRED"
            );
            assert_eq!(
                s.facts()
                    .unwrap()
                    .ssl_c_s_dn(Some("CN"), 0, DnFormat::Oneline)
                    .as_deref(),
                Some("client1")
            );
        }
    }
}

#[test]
fn resumption_tickets_and_session_cache_shared_across_shards() {
    let p = pki("resume");
    let dir = certs_dir(&p);
    let ca = p.file("ca.pem");
    let cc = ClientOpts::new(&ca).build();
    let go = |sh: &Arc<ringlb_tls::ShardTls>| {
        let mut c = connect(&cc, "a.test");
        let mut s = TlsSession::new(sh.clone());
        handshake(&mut c, &mut s).unwrap();
        s.facts().unwrap().session_reused
    };
    // Tickets: a session made on shard 1 resumes on shard 2 (same ticket keys).
    let (b, cfg) = bind_cfg(&p.dir.0, "", &format!("ssl crt {}", dir.display()));
    let g = TlsGlobals::from_global(&cfg.global);
    let bt = build_bind(&b, &g, now_unix()).unwrap();
    let shared = TlsShared::new(&g, Arc::new(DefaultTimeProvider)).unwrap();
    let (s1, s2) = (bt.for_shard(&shared, 2), bt.for_shard(&shared, 2));
    assert!(!go(&s1));
    assert!(go(&s2), "ticket from shard 1 accepted by shard 2");
    // Another process (other keys) does not resume.
    let other = TlsShared::new(&g, Arc::new(DefaultTimeProvider)).unwrap();
    assert!(!go(&bt.for_shard(&other, 1)));
    // no-tls-tickets: the stateful cache is shared by the shards, as haproxy's by its threads.
    let cc2 = ClientOpts::new(&ca).build();
    let go2 = |sh: &Arc<ringlb_tls::ShardTls>| {
        let mut c = connect(&cc2, "a.test");
        let mut s = TlsSession::new(sh.clone());
        handshake(&mut c, &mut s).unwrap();
        s.facts().unwrap().session_reused
    };
    let (b, cfg) = bind_cfg(
        &p.dir.0,
        "  tune.ssl.cachesize 100\n  tune.ssl.lifetime 600",
        &format!("ssl crt {} no-tls-tickets", dir.display()),
    );
    let g = TlsGlobals::from_global(&cfg.global);
    let bt = build_bind(&b, &g, now_unix()).unwrap();
    let (s1, s2) = (bt.for_shard(&shared, 2), bt.for_shard(&shared, 2));
    assert!(!go2(&s1));
    assert!(go2(&s2), "a session id from shard 1 resumes on shard 2");
}

#[test]
fn application_data_and_close_notify() {
    let p = pki("data");
    let dir = certs_dir(&p);
    let (sh, _) = setup(&p, "", &format!("ssl crt {}", dir.display()));
    let cc = ClientOpts::new(&p.file("ca.pem")).build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh);
    handshake(&mut c, &mut s).unwrap();
    use std::io::{Read, Write};
    c.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut wire = Vec::new();
    c.write_tls(&mut wire).unwrap();
    assert_eq!(s.feed(&wire).unwrap(), wire.len());
    let mut plain = Vec::new();
    s.take_plaintext(&mut plain).unwrap();
    assert_eq!(plain, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(s.write_plaintext(b"HTTP/1.1 200 OK\r\n\r\n"), 19);
    s.send_close_notify();
    let mut out = Vec::new();
    assert!(s.wants_write());
    s.take_ciphertext(&mut out);
    c.read_tls(&mut out.as_slice()).unwrap();
    let st = c.process_new_packets().unwrap();
    assert!(st.peer_has_closed());
    let mut got = Vec::new();
    c.reader().read_to_end(&mut got).unwrap();
    assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\n");
    c.send_close_notify();
    let mut wire = Vec::new();
    c.write_tls(&mut wire).unwrap();
    s.feed(&wire).unwrap();
    assert!(s.peer_closed());
    // Garbage after the handshake is an error with an alert to send.
    let mut c2 = connect(&cc, "a.test");
    let mut s2 = TlsSession::new(s_shard(&p, &dir));
    handshake(&mut c2, &mut s2).unwrap();
    assert!(s2
        .feed(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5])
        .is_err());
    let mut alert = Vec::new();
    assert!(s2.take_ciphertext(&mut alert) > 0);
    // Garbage instead of a ClientHello: an error, never a panic.
    let mut s3 = TlsSession::new(s_shard(&p, &dir));
    assert!(s3.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_err());
}

fn s_shard(p: &Pki, dir: &std::path::Path) -> Arc<ringlb_tls::ShardTls> {
    setup(p, "", &format!("ssl crt {}", dir.display())).0
}

#[test]
fn rsa_and_ecdsa_certificates_for_one_name() {
    let p = Pki::new("dual");
    p.leaf("r", "/O=rsa/CN=dual.test", &["dual.test"], "1", true, false);
    p.leaf(
        "e",
        "/O=ecdsa/CN=dual.test",
        &["dual.test"],
        "2",
        false,
        false,
    );
    p.combined("r", &p.file("r.pem"), true);
    p.combined("e", &p.file("e.pem"), true);
    let opts = format!(
        "ssl crt {} crt {}",
        p.file("r.pem").display(),
        p.file("e.pem").display()
    );
    let (sh, _) = setup(&p, "", &opts);
    let ca = p.file("ca.pem");
    let org = |c: &rustls::ClientConnection| {
        let der = c.peer_certificates().unwrap()[0].clone();
        let info = ringlb_tls::der::CertInfo::parse(&der).unwrap();
        info.subject.field("O", 0).unwrap().to_string()
    };
    // A modern client gets the ECDSA certificate although the RSA one comes first.
    let cc = ClientOpts::new(&ca).build();
    let mut c = connect(&cc, "dual.test");
    let mut s = TlsSession::new(sh.clone());
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(org(&c), "ecdsa");
    // A TLSv1.2 client with RSA suites only gets the RSA one.
    let rsa_only =
        vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256];
    let v12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let cc = ClientOpts {
        versions: v12,
        suites: Some(rsa_only),
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&cc, "dual.test");
    let mut s = TlsSession::new(sh);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(org(&c), "rsa");
    assert_eq!(s.facts().unwrap().cipher, "ECDHE-RSA-AES128-GCM-SHA256");
}

#[test]
fn crl_file_refuses_revoked_client_certificates() {
    let p = pki("crl");
    p.leaf("client2", "/CN=client2", &[], "0x99", false, true);
    let d = &p.dir.0;
    std::fs::write(
        d.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n",
    )
    .unwrap();
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("crlnumber"), "01\n").unwrap();
    let ca_args = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem"];
    let mut revoke = vec!["ca", "-revoke", "client1.crt"];
    revoke.extend(ca_args);
    openssl(&revoke, d);
    let mut gencrl = vec!["ca", "-gencrl", "-out", "crl.pem"];
    gencrl.extend(ca_args);
    openssl(&gencrl, d);
    let dir = certs_dir(&p);
    let ca = p.file("ca.pem");
    let base = format!(
        "ssl crt {} ca-file {} crl-file {} verify required",
        dir.display(),
        ca.display(),
        p.file("crl.pem").display()
    );
    let try_client = |opts: &str, name: &str| {
        let (sh, _) = setup(&p, "", opts);
        let (crt, key) = (
            p.file(&format!("{name}.crt")),
            p.file(&format!("{name}.key")),
        );
        let cc = ClientOpts {
            client_cert: Some((&crt, &key)),
            ..ClientOpts::new(&ca)
        }
        .build();
        let mut c = connect(&cc, "a.test");
        let mut s = TlsSession::new(sh);
        handshake(&mut c, &mut s).map(|_| s.facts().unwrap().ssl_c_verify())
    };
    assert!(try_client(&base, "client1").is_err(), "revoked");
    assert_eq!(try_client(&base, "client2"), Ok(0));
    let ignore = format!("{base} crt-ignore-err 23");
    assert_eq!(
        try_client(&ignore, "client1"),
        Ok(23),
        "X509_V_ERR_CERT_REVOKED let through"
    );
}

#[test]
fn feed_applies_backpressure_until_plaintext_is_taken() {
    use std::io::Write;
    let p = pki("backpressure");
    let dir = certs_dir(&p);
    let (sh, _) = setup(&p, "", &format!("ssl crt {}", dir.display()));
    let cc = ClientOpts::new(&p.file("ca.pem")).build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh);
    handshake(&mut c, &mut s).unwrap();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut wire = Vec::new();
    for chunk in body.chunks(16_384) {
        c.writer().write_all(chunk).unwrap();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
    }
    let mut off = 0;
    let mut plain = Vec::new();
    let mut stalls = 0;
    while off < wire.len() {
        let n = s.feed(&wire[off..]).unwrap();
        if n == 0 {
            stalls += 1;
            assert!(
                s.take_plaintext(&mut plain).unwrap() > 0,
                "a stall means plaintext is waiting"
            );
        }
        off += n;
    }
    s.take_plaintext(&mut plain).unwrap();
    assert!(
        stalls > 0,
        "200 kB without taking plaintext must hit rustls's buffer limit"
    );
    assert_eq!(plain, body);
}

#[test]
fn server_cipher_order_unless_prefer_client_ciphers() {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let p = pki("order");
    let dir = certs_dir(&p);
    let ca = p.file("ca.pem");
    let client_order = vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    for (extra, want) in [
        ("", "TLS_CHACHA20_POLY1305_SHA256"),
        (" prefer-client-ciphers", "TLS_AES_128_GCM_SHA256"),
    ] {
        let (sh, _) = setup(&p, "", &format!("ssl crt {}{extra}", dir.display()));
        let cc = ClientOpts {
            suites: Some(client_order.clone()),
            ..ClientOpts::new(&ca)
        }
        .build();
        let mut c = connect(&cc, "a.test");
        let mut s = TlsSession::new(sh);
        handshake(&mut c, &mut s).unwrap();
        assert_eq!(s.facts().unwrap().cipher, want, "{extra}");
    }
}

#[test]
fn curves_restrict_key_exchange_with_hello_retry() {
    let p = pki("curves");
    let dir = certs_dir(&p);
    // The client's first key share (X25519MLKEM768/X25519) is refused: a HelloRetryRequest
    // goes through the session and the handshake completes on P-384.
    let (sh, _) = setup(&p, "", &format!("ssl crt {} curves P-384", dir.display()));
    let cc = ClientOpts::new(&p.file("ca.pem")).build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh);
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(
        c.negotiated_key_exchange_group().unwrap().name(),
        rustls::NamedGroup::secp384r1
    );
    assert_eq!(
        c.handshake_kind(),
        Some(rustls::HandshakeKind::FullWithHelloRetryRequest)
    );
}
