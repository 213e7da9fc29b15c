//! `sigalgs` / `client-sigalgs` on a bind: the server signs only with what `sigalgs` allows,
//! a client certificate may only sign with what `client-sigalgs` allows, and names rustls
//! cannot do are refused at load time with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use ringlb_tls::{build_bind, TlsGlobals, TlsSession, TlsShared};
use rustls::time_provider::DefaultTimeProvider;

fn pki() -> Pki {
    let p = Pki::new("sigalgs");
    p.leaf("a", "/CN=a.test", &["a.test"], "1", false, false); // P-256
    p.leaf("r", "/CN=r.test", &["r.test"], "2", true, false); // RSA
    p.leaf("client1", "/CN=client1", &[], "3", false, true);
    p.combined("a", &p.file("a.pem"), true);
    p.combined("r", &p.file("r.pem"), true);
    p
}

fn shard_of(p: &Pki, global: &str, opts: &str) -> Result<Arc<ringlb_tls::ShardTls>, String> {
    let (b, cfg) = bind_cfg(&p.dir.0, global, opts);
    let g = TlsGlobals::from_global(&cfg.global);
    let bt = build_bind(&b, &g, now_unix()).map_err(|d| format!("{d:?}"))?;
    let shared = TlsShared::new(&g, Arc::new(DefaultTimeProvider)).unwrap();
    Ok(bt.for_shard(&shared, 1))
}

fn hs(sh: &Arc<ringlb_tls::ShardTls>, p: &Pki, sni: &str, client_cert: bool) -> Result<(), String> {
    let ca = p.file("ca.pem");
    let (ccrt, ckey) = (p.file("client1.crt"), p.file("client1.key"));
    let cc = ClientOpts {
        client_cert: client_cert.then_some((&ccrt, &ckey)),
        ..ClientOpts::new(&ca)
    }
    .build();
    let mut c = connect(&cc, sni);
    let mut s = TlsSession::new(sh.clone());
    handshake(&mut c, &mut s)
}

#[test]
fn sigalgs_bound_the_servers_signature_and_pick_the_certificate() {
    let p = pki();
    let crts = format!(
        "ssl crt {} crt {}",
        p.file("a.pem").display(),
        p.file("r.pem").display()
    );
    // ECDSA only: the ECDSA certificate serves; the RSA one cannot sign.
    let sh = shard_of(&p, "", &format!("{crts} sigalgs ECDSA+SHA256")).unwrap();
    hs(&sh, &p, "a.test", false).unwrap();
    assert!(hs(&sh, &p, "r.test", false).is_err(), "RSA cannot sign");
    // RSA-PSS only: the other way round.
    let sh = shard_of(&p, "", &format!("{crts} sigalgs rsa_pss_rsae_sha256")).unwrap();
    hs(&sh, &p, "r.test", false).unwrap();
    assert!(hs(&sh, &p, "a.test", false).is_err(), "ECDSA cannot sign");
    // The global default applies when the bind has none.
    let sh = shard_of(&p, "  ssl-default-bind-sigalgs RSA-PSS+SHA256", &crts).unwrap();
    assert!(hs(&sh, &p, "a.test", false).is_err());
    hs(&sh, &p, "r.test", false).unwrap();
}

#[test]
fn client_sigalgs_bound_the_client_certificate_signature() {
    let p = pki();
    let base = format!(
        "ssl crt {} verify required ca-file {}",
        p.file("a.pem").display(),
        p.file("ca.pem").display()
    );
    let sh = shard_of(
        &p,
        "",
        &format!("{base} client-sigalgs ECDSA+SHA256:RSA-PSS+SHA256"),
    )
    .unwrap();
    hs(&sh, &p, "a.test", true).unwrap();
    let sh = shard_of(&p, "", &format!("{base} client-sigalgs RSA-PSS+SHA256")).unwrap();
    assert!(
        hs(&sh, &p, "a.test", true).is_err(),
        "an ECDSA client certificate is refused"
    );
}

#[test]
fn names_rustls_cannot_do_are_refused_with_the_reason() {
    let p = pki();
    let crt = format!("ssl crt {}", p.file("a.pem").display());
    let e = shard_of(&p, "", &format!("{crt} sigalgs ECDSA+SHA256:RSA+SHA1")).unwrap_err();
    assert!(e.contains("RSA+SHA1") && e.contains("SHA-1"), "{e}");
    let e = shard_of(&p, "", &format!("{crt} client-sigalgs ed448")).unwrap_err();
    assert!(e.contains("client-sigalgs") && e.contains("Ed448"), "{e}");
}
