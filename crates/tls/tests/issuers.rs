//! `issuers-chain-path`: a PEM holding only its leaf is completed with the intermediate chain
//! whose first certificate issued it, so a client that trusts only the root verifies it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use ringlb_tls::{build_bind, TlsGlobals, TlsSession, TlsShared};
use rustls::time_provider::DefaultTimeProvider;

/// Root (the Pki's CA) → intermediate `int` → leaf `a.test`; `site.pem` is leaf + key only,
/// `issuers/int.pem` the intermediate alone.
fn pki() -> Pki {
    let p = Pki::new("issuers");
    let d = &p.dir.0;
    let ec = [
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
    ];
    let mut args = ec.to_vec();
    args.push("int.key");
    openssl(&args, d);
    openssl(
        &[
            "req",
            "-new",
            "-key",
            "int.key",
            "-subj",
            "/O=Test/CN=Intermediate",
            "-out",
            "int.csr",
        ],
        d,
    );
    std::fs::write(
        d.join("int.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "7",
            "-days",
            "10",
            "-extfile",
            "int.ext",
            "-out",
            "int.crt",
        ],
        d,
    );
    let mut args = ec.to_vec();
    args.push("leaf.key");
    openssl(&args, d);
    openssl(
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=a.test",
            "-out",
            "leaf.csr",
        ],
        d,
    );
    std::fs::write(
        d.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:a.test\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "int.crt",
            "-CAkey",
            "int.key",
            "-set_serial",
            "8",
            "-days",
            "10",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
        d,
    );
    let mut pem = std::fs::read(d.join("leaf.crt")).unwrap();
    pem.extend(std::fs::read(d.join("leaf.key")).unwrap());
    std::fs::write(d.join("site.pem"), pem).unwrap();
    std::fs::create_dir_all(d.join("issuers")).unwrap();
    std::fs::copy(d.join("int.crt"), d.join("issuers/int.pem")).unwrap();
    p
}

/// A handshake for `a.test` with a client trusting only the root.
fn handshake_with(p: &Pki, global: &str) -> Result<usize, String> {
    let site = p.file("site.pem");
    let (b, cfg) = bind_cfg(&p.dir.0, global, &format!("ssl crt {}", site.display()));
    let g = TlsGlobals::from_global(&cfg.global);
    let bt = build_bind(&b, &g, now_unix()).unwrap_or_else(|d| panic!("{d:?}"));
    let shared = TlsShared::new(&g, Arc::new(DefaultTimeProvider)).unwrap();
    let sh = bt.for_shard(&shared, 1);
    let cc = ClientOpts::new(&p.file("ca.pem")).build();
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh);
    handshake(&mut c, &mut s)?;
    Ok(c.peer_certificates().map_or(0, |v| v.len()))
}

#[test]
fn leaf_only_pem_is_completed_from_the_issuers_directory() {
    let p = pki();
    let err = handshake_with(&p, "").unwrap_err();
    assert!(err.contains("UnknownIssuer"), "no chain, no trust: {err}");
    let dir = p.file("issuers");
    let sent = handshake_with(&p, &format!("  issuers-chain-path {}", dir.display())).unwrap();
    assert_eq!(sent, 2, "leaf + intermediate");
}

#[test]
fn a_bad_issuers_directory_is_an_error_naming_it() {
    let p = pki();
    std::fs::write(p.file("issuers/junk.pem"), "not a certificate\n").unwrap();
    let site = p.file("site.pem");
    let global = format!("  issuers-chain-path {}", p.file("issuers").display());
    let (b, cfg) = bind_cfg(&p.dir.0, &global, &format!("ssl crt {}", site.display()));
    let g = TlsGlobals::from_global(&cfg.global);
    let Err(diags) = build_bind(&b, &g, now_unix()) else {
        panic!("refused")
    };
    let text = format!("{diags:?}");
    assert!(text.contains("junk.pem"), "{text}");
    let missing = format!("  issuers-chain-path {}", p.file("nowhere").display());
    let (b, cfg) = bind_cfg(&p.dir.0, &missing, &format!("ssl crt {}", site.display()));
    let g = TlsGlobals::from_global(&cfg.global);
    let Err(diags) = build_bind(&b, &g, now_unix()) else {
        panic!("refused")
    };
    let text = format!("{diags:?}");
    assert!(
        text.contains("nowhere") && text.contains("issuers-chain-path"),
        "{text}"
    );
}
