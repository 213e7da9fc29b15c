//! Client-certificate verification with HAProxy's knobs: `verify none|optional|required`,
//! `ca-file`, `crl-file`, `ca-ignore-err` / `crt-ignore-err`, and OpenSSL's numeric verify
//! codes for `ssl_c_verify`.
//!
//! webpki does not report the chain depth of an error, so the ignore lists use this rule:
//! an unknown issuer is a depth>0 error (`ca-ignore-err`, code 20) when the client sent
//! intermediates and a depth-0 error (`crt-ignore-err`, code 21, or 18 for a self-signed
//! leaf) when it sent its leaf alone, as OpenSSL reports it (checked against haproxy 2.6);
//! CRL errors are depth>0; every other error (expired, not yet valid, revoked, bad signature,
//! bad purpose) is about the leaf (depth 0).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// OpenSSL X509_V_* codes HAProxy reports in `ssl_c_verify`.
pub mod code {
    pub const OK: u32 = 0;
    pub const UNSPECIFIED: u32 = 1;
    pub const UNABLE_TO_GET_CRL: u32 = 3;
    pub const CERT_SIGNATURE_FAILURE: u32 = 7;
    pub const CERT_NOT_YET_VALID: u32 = 9;
    pub const CERT_HAS_EXPIRED: u32 = 10;
    pub const CRL_HAS_EXPIRED: u32 = 12;
    pub const DEPTH_ZERO_SELF_SIGNED_CERT: u32 = 18;
    pub const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: u32 = 20;
    pub const UNABLE_TO_VERIFY_LEAF_SIGNATURE: u32 = 21;
    pub const CERT_REVOKED: u32 = 23;
    pub const INVALID_PURPOSE: u32 = 26;
    pub const HOSTNAME_MISMATCH: u32 = 62;
}

/// `ca-ignore-err` / `crt-ignore-err`: `all` or a comma-separated list of codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IgnoreErr {
    #[default]
    Nothing,
    All,
    Codes(Vec<u32>),
}

impl IgnoreErr {
    pub fn parse(s: &str) -> Result<IgnoreErr, String> {
        if s == "all" {
            return Ok(IgnoreErr::All);
        }
        let codes = s
            .split(',')
            .map(|c| {
                c.trim().parse::<u32>().map_err(|_| {
                    format!("invalid verify error ID '{c}' (expects 'all' or numbers)")
                })
            })
            .collect::<Result<Vec<u32>, String>>()?;
        Ok(IgnoreErr::Codes(codes))
    }

    fn ignores(&self, code: u32) -> bool {
        match self {
            IgnoreErr::Nothing => false,
            IgnoreErr::All => true,
            IgnoreErr::Codes(c) => c.contains(&code),
        }
    }
}

/// The OpenSSL code of a verification error and whether it is about the leaf (depth 0).
pub fn classify(
    err: &Error,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> (u32, bool) {
    let Error::InvalidCertificate(ce) = err else {
        return (code::UNSPECIFIED, true);
    };
    match ce {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            (code::CERT_HAS_EXPIRED, true)
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            (code::CERT_NOT_YET_VALID, true)
        }
        CertificateError::Revoked => (code::CERT_REVOKED, true),
        CertificateError::BadSignature => (code::CERT_SIGNATURE_FAILURE, true),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            (code::INVALID_PURPOSE, true)
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            (code::HOSTNAME_MISMATCH, true)
        }
        // OpenSSL: a lone leaf whose issuer is unknown is 21 (18 when self-signed); with
        // intermediates sent, the missing issuer is above the leaf (20 at depth > 0).
        CertificateError::UnknownIssuer => {
            if intermediates.is_empty() {
                let self_signed =
                    crate::der::CertInfo::parse(end_entity).is_ok_and(|i| i.issuer == i.subject);
                if self_signed {
                    (code::DEPTH_ZERO_SELF_SIGNED_CERT, true)
                } else {
                    (code::UNABLE_TO_VERIFY_LEAF_SIGNATURE, true)
                }
            } else {
                (code::UNABLE_TO_GET_ISSUER_CERT_LOCALLY, false)
            }
        }
        CertificateError::UnknownRevocationStatus => (code::UNABLE_TO_GET_CRL, false),
        CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => (code::CRL_HAS_EXPIRED, false),
        _ => (code::UNSPECIFIED, true),
    }
}

/// Every code OpenSSL's verify callback reports for an error `classify` named `code`, in
/// order: HAProxy accepts the certificate only if each is in the ignore list, and
/// `ssl_c_verify` is the last. A lone leaf of an unknown issuer is first 20, then 21, and
/// with CRL checking (`crl-file`) also 3 for its missing CRL; a lone self-signed leaf is 18,
/// then 3 with CRL checking (checked against haproxy 2.6 with `crt-ignore-err` lists).
pub fn reported_codes(code: u32, crl: bool) -> Vec<u32> {
    match (code, crl) {
        (code::UNABLE_TO_VERIFY_LEAF_SIGNATURE, false) => vec![
            code::UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            code::UNABLE_TO_VERIFY_LEAF_SIGNATURE,
        ],
        (code::UNABLE_TO_VERIFY_LEAF_SIGNATURE, true) => vec![
            code::UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            code::UNABLE_TO_GET_CRL,
            code::UNABLE_TO_VERIFY_LEAF_SIGNATURE,
        ],
        (code::DEPTH_ZERO_SELF_SIGNED_CERT, true) => {
            vec![code::DEPTH_ZERO_SELF_SIGNED_CERT, code::UNABLE_TO_GET_CRL]
        }
        (other, _) => vec![other],
    }
}

/// The outcome of verifying a client chain the handshake accepted (all 0: no error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyResult {
    /// `ssl_c_verify`.
    pub verify: u32,
    /// `ssl_c_err`: the first error about the client's own certificate.
    pub crt_err: u32,
    /// `ssl_c_ca_err` and `ssl_c_ca_err_depth`: the first error above it.
    pub ca_err: u32,
    pub ca_err_depth: u32,
}

/// Wraps webpki's verifier to honour the ignore lists.
#[derive(Debug)]
pub struct HaproxyClientVerifier {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub ca_ignore: IgnoreErr,
    pub crt_ignore: IgnoreErr,
    /// `client-sigalgs`: the only schemes a client certificate may sign with (offered in
    /// the CertificateRequest, checked on CertificateVerify).
    pub client_sigalgs: Option<Vec<SignatureScheme>>,
    /// Whether a `crl-file` is set: OpenSSL then also reports missing CRLs.
    pub crl: bool,
}

impl HaproxyClientVerifier {
    /// Refuses a client signature `client-sigalgs` does not allow.
    fn allowed(&self, scheme: SignatureScheme) -> Result<(), Error> {
        match &self.client_sigalgs {
            Some(list) if !list.contains(&scheme) => Err(Error::PeerIncompatible(
                rustls::PeerIncompatible::NoSignatureSchemesInCommon,
            )),
            _ => Ok(()),
        }
    }
}

impl HaproxyClientVerifier {
    /// `ssl_c_verify` for a chain the handshake accepted: 0 unless an ignored error was hit.
    pub fn verify_code(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> u32 {
        self.verify_result(chain, now).verify
    }

    /// What the handshake's verification reported for a chain it accepted: `ssl_c_verify`
    /// (the last code), and the first error about the leaf (`ssl_c_err`) or above it
    /// (`ssl_c_ca_err`, at `ssl_c_ca_err_depth`), as OpenSSL's callback gives them to haproxy.
    /// A missing issuer above the leaf is at the depth of the last certificate sent.
    pub fn verify_result(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> VerifyResult {
        let Some((leaf, rest)) = chain.split_first() else {
            return VerifyResult::default();
        };
        let Err(e) = self.inner.verify_client_cert(leaf, rest, now) else {
            return VerifyResult::default();
        };
        let (code, at_leaf) = classify(&e, leaf, rest);
        let codes = reported_codes(code, self.crl);
        let first = codes.first().copied().unwrap_or(code);
        let verify = codes.last().copied().unwrap_or(code);
        if at_leaf {
            VerifyResult {
                verify,
                crt_err: first,
                ..VerifyResult::default()
            }
        } else {
            VerifyResult {
                verify,
                ca_err: first,
                ca_err_depth: u32::try_from(rest.len().max(1)).unwrap_or(u32::MAX),
                ..VerifyResult::default()
            }
        }
    }

    pub fn ignores_anything(&self) -> bool {
        self.ca_ignore != IgnoreErr::Nothing || self.crt_ignore != IgnoreErr::Nothing
    }
}

impl ClientCertVerifier for HaproxyClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(v) => Ok(v),
            Err(e) => {
                let (code, leaf) = classify(&e, end_entity, intermediates);
                let list = if leaf {
                    &self.crt_ignore
                } else {
                    &self.ca_ignore
                };
                let ignored = reported_codes(code, self.crl)
                    .into_iter()
                    .all(|c| list.ignores(c));
                if ignored {
                    Ok(ClientCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.allowed(dss.scheme)?;
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.allowed(dss.scheme)?;
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut v = self.inner.supported_verify_schemes();
        if let Some(list) = &self.client_sigalgs {
            v.retain(|s| list.contains(s));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_lists() {
        assert_eq!(IgnoreErr::parse("all").unwrap(), IgnoreErr::All);
        assert_eq!(
            IgnoreErr::parse("10,20").unwrap(),
            IgnoreErr::Codes(vec![10, 20])
        );
        assert!(IgnoreErr::parse("10,x").is_err());
        assert!(IgnoreErr::Codes(vec![10]).ignores(10));
        assert!(!IgnoreErr::Codes(vec![10]).ignores(9));
        assert!(!IgnoreErr::Nothing.ignores(10));
    }

    #[test]
    fn codes() {
        let leaf = CertificateDer::from(vec![0u8; 4]);
        let inter = [CertificateDer::from(vec![1u8; 4])];
        let e = Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(classify(&e, &leaf, &[]), (10, true));
        let e = Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(classify(&e, &leaf, &[]), (21, true));
        assert_eq!(classify(&e, &leaf, &inter), (20, false));
        let e = Error::InvalidCertificate(CertificateError::Revoked);
        assert_eq!(classify(&e, &leaf, &[]), (23, true));
    }

    #[test]
    fn openssl_reports_more_than_one_code_for_unknown_issuers() {
        assert_eq!(reported_codes(21, false), [20, 21]);
        assert_eq!(reported_codes(21, true), [20, 3, 21]);
        assert_eq!(reported_codes(18, false), [18]);
        assert_eq!(reported_codes(18, true), [18, 3]);
        assert_eq!(reported_codes(23, true), [23]);
    }
}
