//! TLS towards servers: `server ... ssl verify/ca-file/sni/alpn/crt` against a ringlb
//! `TlsSession`, both sans-IO, in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use common::*;
use ringlb_tls::{
    build_bind, build_server, server_name, DnFormat, TlsClientSession, TlsGlobals, TlsSession,
    TlsShared,
};
use rustls::time_provider::DefaultTimeProvider;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn pki(tag: &str) -> Pki {
    let p = Pki::new(tag);
    p.leaf("b", "/CN=b.test", &["b.test"], "2", false, false);
    p.leaf(
        "client1",
        "/C=FR/O=Example/CN=client1",
        &[],
        "0x77",
        false,
        true,
    );
    p.combined("b", &p.file("b.pem"), true);
    p.combined("client1", &p.file("client1.pem"), true);
    p
}

/// A config with a TLS bind (ringlb's server side) and a TLS server line (ringlb's client side).
fn configs(
    p: &Pki,
    bind_opts: &str,
    server_opts: &str,
    global: &str,
) -> Result<(Arc<ringlb_tls::ShardTls>, ringlb_tls::ServerTls), String> {
    let text = format!(
        "global\n{global}\ndefaults\n  mode http\n  timeout client 5s\n  timeout server 5s\n  timeout connect 5s\n\
         frontend fe\n  bind 127.0.0.1:8443 ssl crt {crt} {bind_opts}\n  default_backend be\n\
         backend be\n  server s1 127.0.0.1:8443 ssl {server_opts}\n",
        crt = p.file("b.pem").display()
    );
    let cfg = load_config(&p.dir.0, &text);
    let g = TlsGlobals::from_global(&cfg.global);
    let bt = build_bind(&cfg.frontends[0].binds[0], &g, now_unix()).unwrap();
    let shared = TlsShared::new(&g, Arc::new(DefaultTimeProvider)).unwrap();
    let st = build_server(&cfg.backends[0].servers[0].params.ssl, &g, now_unix()).map_err(|d| {
        d.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok((bt.for_shard(&shared, 1), st))
}

fn run(client: &mut TlsClientSession, server: &mut TlsSession) -> Result<(), String> {
    let mut buf = Vec::new();
    for _ in 0..20 {
        buf.clear();
        client.take_ciphertext(&mut buf);
        if !buf.is_empty() {
            if let Err(e) = server.feed(&buf) {
                let mut alert = Vec::new();
                server.take_ciphertext(&mut alert);
                let _ = client.feed(&alert);
                return Err(format!("server: {e}"));
            }
        }
        buf.clear();
        server.take_ciphertext(&mut buf);
        if !buf.is_empty() {
            client.feed(&buf).map_err(|e| format!("client: {e}"))?;
        }
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            return Ok(());
        }
    }
    Err("no progress".into())
}

#[test]
fn verified_server_with_sni_alpn_and_client_certificate() {
    let p = pki("cli");
    let ca = p.file("ca.pem").display().to_string();
    let (sh, st) = configs(
        &p,
        &format!("ca-file {ca} verify required alpn h2,http/1.1"),
        &format!(
            "verify required ca-file {ca} sni str(b.test) alpn h2 crt {}",
            p.file("client1.pem").display()
        ),
        "",
    )
    .unwrap();
    assert_eq!(st.sni.as_deref(), Some("str(b.test)"));
    let cfg = st.for_shard();
    let mut c = TlsClientSession::new(cfg.clone(), server_name(Some("b.test"), LOCAL)).unwrap();
    let mut s = TlsSession::new(sh.clone());
    run(&mut c, &mut s).unwrap();
    assert_eq!(c.alpn(), Some(&b"h2"[..]));
    assert_eq!(c.protocol(), "TLSv1.3");
    let f = s.facts().unwrap();
    assert_eq!(f.sni.as_deref(), Some("b.test"));
    assert_eq!(
        f.ssl_c_s_dn(Some("CN"), 0, DnFormat::Oneline).as_deref(),
        Some("client1")
    );
    // Data both ways.
    assert_eq!(c.write_plaintext(b"ping"), 4);
    let mut wire = Vec::new();
    c.take_ciphertext(&mut wire);
    s.feed(&wire).unwrap();
    let mut got = Vec::new();
    s.take_plaintext(&mut got).unwrap();
    assert_eq!(got, b"ping");
    // Second connection from the same shard config resumes.
    let mut c2 = TlsClientSession::new(cfg, server_name(Some("b.test"), LOCAL)).unwrap();
    let mut s2 = TlsSession::new(sh);
    run(&mut c2, &mut s2).unwrap();
    assert!(c2.session_reused());
    assert!(s2.facts().unwrap().session_reused);
}

#[test]
fn name_checked_against_sni_chain_only_without() {
    let p = pki("cliname");
    let ca = p.file("ca.pem").display().to_string();
    let (sh, st) = configs(&p, "", &format!("verify required ca-file {ca}"), "").unwrap();
    let cfg = st.for_shard();
    // Wrong SNI: the certificate is not valid for it.
    let mut c = TlsClientSession::new(cfg.clone(), server_name(Some("other.test"), LOCAL)).unwrap();
    let mut s = TlsSession::new(sh.clone());
    assert!(run(&mut c, &mut s).is_err());
    // No SNI (address): only the chain is verified, as HAProxy does without verifyhost.
    let mut c = TlsClientSession::new(cfg, server_name(None, LOCAL)).unwrap();
    let mut s = TlsSession::new(sh.clone());
    run(&mut c, &mut s).unwrap();
    // Another CA: refused.
    let other = Pki::new("cliother");
    let (_, st) = configs(
        &p,
        "",
        &format!("verify required ca-file {}", other.file("ca.pem").display()),
        "",
    )
    .unwrap();
    let mut c = TlsClientSession::new(st.for_shard(), server_name(Some("b.test"), LOCAL)).unwrap();
    let mut s = TlsSession::new(sh);
    assert!(run(&mut c, &mut s).unwrap_err().contains("client"));
}

#[test]
fn verify_defaults_follow_haproxy() {
    let p = pki("cliverify");
    // Default is verify required, and without ca-file that is an error.
    let e = configs(&p, "", "", "").unwrap_err();
    assert!(e.contains("no CA file specified"), "{e}");
    // ssl-server-verify none turns the default off; an untrusted server is then accepted.
    let (sh, st) = configs(&p, "", "", "  ssl-server-verify none").unwrap();
    let mut c =
        TlsClientSession::new(st.for_shard(), server_name(Some("anything.test"), LOCAL)).unwrap();
    let mut s = TlsSession::new(sh.clone());
    run(&mut c, &mut s).unwrap();
    // verify none explicitly; server-side policy from ssl-default-server-options.
    let (sh, st) = configs(
        &p,
        "",
        "verify none",
        "  ssl-default-server-options force-tlsv12",
    )
    .unwrap();
    let mut c = TlsClientSession::new(st.for_shard(), server_name(None, LOCAL)).unwrap();
    let mut s = TlsSession::new(sh);
    run(&mut c, &mut s).unwrap();
    assert_eq!(c.protocol(), "TLSv1.2");
    assert_eq!(s.facts().unwrap().protocol, "TLSv1.2");
}

#[test]
fn verifyhost_overrides_the_sni_for_the_name_check() {
    let p = pki("verifyhost");
    let ca = p.file("ca.pem").display().to_string();
    let (sh, st) = configs(
        &p,
        "",
        &format!("verify required ca-file {ca} verifyhost b.test"),
        "",
    )
    .unwrap();
    let mut c =
        TlsClientSession::new(st.for_shard(), server_name(Some("other.test"), LOCAL)).unwrap();
    let mut s = TlsSession::new(sh.clone());
    run(&mut c, &mut s).unwrap();
    assert_eq!(s.facts().unwrap().sni.as_deref(), Some("other.test"));
    let (_, st) = configs(
        &p,
        "",
        &format!("verify required ca-file {ca} verifyhost c.test"),
        "",
    )
    .unwrap();
    let mut c = TlsClientSession::new(st.for_shard(), server_name(Some("b.test"), LOCAL)).unwrap();
    let mut s = TlsSession::new(sh);
    assert!(run(&mut c, &mut s).unwrap_err().contains("client"));
}
