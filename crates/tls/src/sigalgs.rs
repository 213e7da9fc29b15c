//! `sigalgs` and `client-sigalgs` on a bind (and their `ssl-default-bind-*` globals): OpenSSL
//! signature-algorithm lists (`SSL_CTX_set1_sigalgs_list` syntax: `ECDSA+SHA256`,
//! `RSA-PSS+SHA256`, or TLS 1.3 names such as `rsa_pss_rsae_sha256`, `ed25519`, joined by `:`)
//! mapped to rustls' `SignatureScheme`s.
//!
//! - `sigalgs` bounds the server's own handshake signature ([`SigalgsResolver`] picks the
//!   certificate and the scheme among the client's offers that the list allows; none in
//!   common fails the handshake, as OpenSSL does).
//! - `client-sigalgs` bounds what a client certificate may sign with (what the
//!   CertificateRequest offers and what [`crate::verify::HaproxyClientVerifier`] accepts).
//!
//! Names rustls cannot do are errors naming them, never dropped: SHA-1 and SHA-224 signatures
//! (rustls signs and accepts none in handshakes), DSA, Ed448 (not in the aws-lc-rs provider)
//! and the `rsa_pss_pss_*` schemes (RSASSA-PSS keys, which rustls does not load).

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use crate::store::SniIndex;

/// Names OpenSSL accepts and their scheme; `None`: known to OpenSSL, not possible in rustls.
const NAMES: [(&str, Option<SignatureScheme>); 30] = [
    ("ECDSA+SHA256", Some(SignatureScheme::ECDSA_NISTP256_SHA256)),
    ("ECDSA+SHA384", Some(SignatureScheme::ECDSA_NISTP384_SHA384)),
    ("ECDSA+SHA512", Some(SignatureScheme::ECDSA_NISTP521_SHA512)),
    (
        "ecdsa_secp256r1_sha256",
        Some(SignatureScheme::ECDSA_NISTP256_SHA256),
    ),
    (
        "ecdsa_secp384r1_sha384",
        Some(SignatureScheme::ECDSA_NISTP384_SHA384),
    ),
    (
        "ecdsa_secp521r1_sha512",
        Some(SignatureScheme::ECDSA_NISTP521_SHA512),
    ),
    ("RSA+SHA256", Some(SignatureScheme::RSA_PKCS1_SHA256)),
    ("RSA+SHA384", Some(SignatureScheme::RSA_PKCS1_SHA384)),
    ("RSA+SHA512", Some(SignatureScheme::RSA_PKCS1_SHA512)),
    ("rsa_pkcs1_sha256", Some(SignatureScheme::RSA_PKCS1_SHA256)),
    ("rsa_pkcs1_sha384", Some(SignatureScheme::RSA_PKCS1_SHA384)),
    ("rsa_pkcs1_sha512", Some(SignatureScheme::RSA_PKCS1_SHA512)),
    ("RSA-PSS+SHA256", Some(SignatureScheme::RSA_PSS_SHA256)),
    ("RSA-PSS+SHA384", Some(SignatureScheme::RSA_PSS_SHA384)),
    ("RSA-PSS+SHA512", Some(SignatureScheme::RSA_PSS_SHA512)),
    ("PSS+SHA256", Some(SignatureScheme::RSA_PSS_SHA256)),
    ("PSS+SHA384", Some(SignatureScheme::RSA_PSS_SHA384)),
    ("PSS+SHA512", Some(SignatureScheme::RSA_PSS_SHA512)),
    ("rsa_pss_rsae_sha256", Some(SignatureScheme::RSA_PSS_SHA256)),
    ("rsa_pss_rsae_sha384", Some(SignatureScheme::RSA_PSS_SHA384)),
    ("rsa_pss_rsae_sha512", Some(SignatureScheme::RSA_PSS_SHA512)),
    ("ed25519", Some(SignatureScheme::ED25519)),
    ("ed448", None),
    ("rsa_pss_pss_sha256", None),
    ("rsa_pss_pss_sha384", None),
    ("rsa_pss_pss_sha512", None),
    ("RSA+SHA1", None),
    ("ECDSA+SHA1", None),
    ("rsa_pkcs1_sha1", None),
    ("ecdsa_sha1", None),
];

/// Why rustls cannot do a name OpenSSL knows.
fn why_not(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    if n.contains("sha1") || n.contains("sha224") {
        "rustls neither makes nor accepts SHA-1/SHA-224 handshake signatures"
    } else if n.contains("448") {
        "Ed448 is not in ringlb's rustls provider (aws-lc-rs)"
    } else if n.contains("pss_pss") {
        "rustls does not load RSASSA-PSS keys (rsa_pss_pss_*); use rsa_pss_rsae_*"
    } else if n.starts_with("dsa") {
        "rustls has no DSA"
    } else {
        "unknown signature algorithm"
    }
}

/// Parses an OpenSSL sigalgs list; `keyword` names the setting in errors.
pub fn parse_sigalgs(keyword: &str, s: &str) -> Result<Vec<SignatureScheme>, String> {
    let mut out = Vec::new();
    for item in s.split(':').map(str::trim).filter(|i| !i.is_empty()) {
        let found = NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(item))
            .map(|(_, s)| *s);
        match found {
            Some(Some(scheme)) => {
                if !out.contains(&scheme) {
                    out.push(scheme);
                }
            }
            _ => {
                return Err(format!(
                    "{keyword} '{s}': '{item}' cannot be used: {}",
                    why_not(item)
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(format!("{keyword} '{s}' names no signature algorithm"));
    }
    Ok(out)
}

/// The bind's certificates (as [`crate::store::SniResolver`]), signing only with `allowed`.
#[derive(Debug)]
pub struct SigalgsResolver {
    pub index: Arc<SniIndex>,
    pub allowed: Arc<[SignatureScheme]>,
}

impl ResolvesServerCert for SigalgsResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offered: Vec<SignatureScheme> = hello
            .signature_schemes()
            .iter()
            .copied()
            .filter(|s| self.allowed.contains(s))
            .collect();
        if offered.is_empty() {
            return None;
        }
        let entry = self
            .index
            .lookup(hello.server_name(), &offered, hello.cipher_suites())?;
        let ck = &entry.cert.key;
        Some(Arc::new(CertifiedKey {
            cert: ck.cert.clone(),
            key: Arc::new(Bounded {
                inner: ck.key.clone(),
                allowed: self.allowed.clone(),
            }),
            ocsp: ck.ocsp.clone(),
        }))
    }
}

/// A signing key that only chooses among `allowed`.
#[derive(Debug)]
struct Bounded {
    inner: Arc<dyn SigningKey>,
    allowed: Arc<[SignatureScheme]>,
}

impl SigningKey for Bounded {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let kept: Vec<SignatureScheme> = offered
            .iter()
            .copied()
            .filter(|s| self.allowed.contains(s))
            .collect();
        self.inner.choose_scheme(&kept)
    }

    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_and_tls13_names_map_in_order_without_duplicates() {
        let v = parse_sigalgs(
            "sigalgs",
            "ECDSA+SHA256:rsa_pss_rsae_sha256:RSA-PSS+SHA256:ed25519:RSA+SHA384",
        )
        .unwrap();
        assert_eq!(
            v,
            [
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::ED25519,
                SignatureScheme::RSA_PKCS1_SHA384,
            ]
        );
    }

    #[test]
    fn what_rustls_cannot_do_is_an_error_saying_why() {
        let e = parse_sigalgs("sigalgs", "ECDSA+SHA256:RSA+SHA1").unwrap_err();
        assert!(e.contains("'RSA+SHA1'") && e.contains("SHA-1"), "{e}");
        let e = parse_sigalgs("client-sigalgs", "ed448").unwrap_err();
        assert!(
            e.starts_with("client-sigalgs") && e.contains("Ed448"),
            "{e}"
        );
        let e = parse_sigalgs("sigalgs", "rsa_pss_pss_sha256").unwrap_err();
        assert!(e.contains("rsa_pss_rsae"), "{e}");
        let e = parse_sigalgs("sigalgs", "FOO+SHA256").unwrap_err();
        assert!(e.contains("unknown"), "{e}");
        assert!(parse_sigalgs("sigalgs", ":").is_err());
    }
}
