//! Differential test: OpenSSL cipher-string expressions evaluated by ringlb give the same
//! suites, in the same order, as `openssl ciphers` restricted to the suites rustls offers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use ringlb_tls::policy::{openssl_cipher_name, parse_ciphers, TLS12_CIPHERS};

fn openssl_list(expr: &str) -> Vec<String> {
    let out = Command::new("openssl")
        .args(["ciphers", "-s", "-tls1_2", expr])
        .output()
        .expect("openssl CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .split(':')
        .filter(|n| TLS12_CIPHERS.iter().any(|c| c.openssl == *n))
        .map(str::to_string)
        .collect()
}

#[test]
fn expressions_match_openssl() {
    let exprs = [
        "HIGH:!aNULL:!MD5",
        "ALL:+aRSA",
        "ECDHE+AESGCM:ECDHE+CHACHA20",
        "EECDH+AESGCM:EDH+AESGCM",
        "DEFAULT",
        "ALL:-CHACHA20:CHACHA20",
        "ALL:!CHACHA20:CHACHA20",
        "ALL:@STRENGTH",
        "AES128:CHACHA20:AES256",
        "HIGH:!aRSA",
        "ECDHE-RSA-AES128-GCM-SHA256:HIGH",
        "kEECDH+aECDSA+AES128:kEECDH+aRSA+AES256",
        "aECDSA+SHA384:aRSA:!CHACHA20",
        "FIPS:CHACHA20",
        "AEAD:ECDSA",
        "ECDH+AES:!SHA256",
    ];
    for e in exprs {
        let want = openssl_list(e);
        assert!(!want.is_empty(), "{e}");
        let got: Vec<&str> = parse_ciphers(e)
            .unwrap()
            .into_iter()
            .map(openssl_cipher_name)
            .collect();
        assert_eq!(got, want, "{e}");
    }
}
