//! Hot certificate replacement, HAProxy's certificate store as the runtime socket sees it
//! (`show ssl cert`, `set ssl cert <file> <<`, `commit ssl cert`, `abort ssl cert`,
//! `new ssl cert`, `del ssl cert`), with haproxy 2.6's texts.
//!
//! The control shard owns one [`CertStore`]: the certificate files the configuration loaded,
//! keyed by path as loaded, and at most one transaction. `commit` parses and checks the new
//! certificate here and hands back an `Arc<LoadedCert>`; the engine broadcasts it and each
//! shard swaps its resolver with [`crate::ShardTls::with_cert`]. Nothing here reads files.
//!
//! One deliberate difference: haproxy 2.6.12 answers `set ssl cert B` while a transaction on
//! `A` is open with "Transaction updated for certificate A!" and silently replaces A's pending
//! certificate with B's payload; ringlb refuses, as haproxy's own `commit`/`abort` do.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::bind::BindTls;
use crate::cert::{self, LoadedCert};
use crate::der::{Asn1Time, CertInfo};

/// One file of the store: its certificate (`None` after `new ssl cert`) and how many bind
/// lines (or crt-list lines) serve it.
#[derive(Debug)]
struct Stored {
    cert: Option<Arc<LoadedCert>>,
    instances: usize,
}

/// A `set ssl cert` payload waiting for `commit`.
#[derive(Debug)]
struct Txn {
    file: String,
    chain: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
}

/// What a command printed: `Ok` for haproxy's messages and dumps, `Err` for its errors.
pub type Answer = Result<String, String>;

/// The certificate files of the running configuration and the open transaction.
#[derive(Debug, Default)]
pub struct CertStore {
    certs: BTreeMap<String, Stored>,
    txn: Option<Txn>,
}

impl CertStore {
    /// The store of a configuration's TLS binds: every certificate file, with one instance
    /// per bind (or crt-list line) that loaded it.
    pub fn from_binds<'a>(binds: impl IntoIterator<Item = &'a BindTls>) -> CertStore {
        let mut certs: BTreeMap<String, Stored> = BTreeMap::new();
        for bind in binds {
            for c in bind.certificates() {
                let key = c.file.display().to_string();
                let s = certs.entry(key).or_insert_with(|| Stored {
                    cert: None,
                    instances: 0,
                });
                if s.cert.is_none() {
                    s.cert = Some(Arc::new(clone_loaded(c)));
                }
                s.instances += 1;
            }
        }
        CertStore { certs, txn: None }
    }

    /// `show ssl cert`: the transaction, then every file in path order.
    pub fn list(&self) -> String {
        let mut out = String::new();
        if let Some(t) = &self.txn {
            let _ = writeln!(out, "# transaction\n*{}", t.file);
        }
        out.push_str("# filename\n");
        for name in self.certs.keys() {
            let _ = writeln!(out, "{name}");
        }
        out
    }

    /// `show ssl cert <file>` (`*<file>`: the transaction's certificate).
    pub fn show(&self, file: &str) -> Answer {
        const NOT_FOUND: &str =
            "Can't display the certificate: Not found or the certificate is a bundle!\n";
        if let Some(pending) = file.strip_prefix('*') {
            return match &self.txn {
                Some(t) if t.file == pending => Ok(detail(file, "Unused", &t.chain)),
                _ => Err(NOT_FOUND.into()),
            };
        }
        let Some(s) = self.certs.get(file) else {
            return Err(NOT_FOUND.into());
        };
        Ok(match &s.cert {
            None => detail(file, "Empty", &[]),
            Some(c) => {
                let status = if s.instances == 0 { "Unused" } else { "Used" };
                detail(file, status, &c.key.cert)
            }
        })
    }

    /// `set ssl cert <file> <<` + PEM payload: opens (or updates) the transaction.
    pub fn set(&mut self, file: &str, payload: &str) -> Answer {
        let cant = |why: String| Err(format!("{why}Can't update {file}!\n"));
        if !self.certs.contains_key(file) {
            return cant(
                "Can't replace a certificate which is not referenced by the configuration!\n"
                    .into(),
            );
        }
        if let Some(t) = self.txn.as_ref().filter(|t| t.file != file) {
            return cant(format!(
                "The ongoing transaction is about '{}' but you are trying to set '{file}'\n",
                t.file
            ));
        }
        let Some((chain, key)) = parse_payload(payload) else {
            return cant(format!(
                "unable to load certificate from file '{file}'.\nCan't load the payload\n"
            ));
        };
        let verb = if self.txn.is_some() {
            "updated"
        } else {
            "created"
        };
        self.txn = Some(Txn {
            file: file.to_string(),
            chain,
            key,
        });
        Ok(format!("Transaction {verb} for certificate {file}!\n"))
    }

    /// `commit ssl cert <file>`: checks the transaction and installs it in the store. Returns
    /// the certificate every shard must now serve in place of `file`, and the text.
    pub fn commit(
        &mut self,
        file: &str,
        provider: &CryptoProvider,
    ) -> Result<(Arc<LoadedCert>, String), String> {
        let cant = |why: String| Err(format!("{why}Can't commit {file}!\n"));
        let t = match &self.txn {
            None => return cant("No ongoing transaction! !\n".into()),
            Some(t) if t.file != file => {
                return cant(format!(
                    "The ongoing transaction is about '{}' but you are trying to set '{file}'\n",
                    t.file
                ))
            }
            Some(t) => t,
        };
        let (Some(leaf), Some(key)) = (t.chain.first(), &t.key) else {
            return cant(
                "The transaction must contain at least a certificate and a private key!\n".into(),
            );
        };
        let Ok(info) = CertInfo::parse(leaf) else {
            return cant(format!("unable to load certificate from file '{file}'.\n"));
        };
        let loaded = cert::assemble(
            Path::new(file),
            t.chain.clone(),
            info,
            key.clone_key(),
            provider,
        )
        .map_err(|_| {
            format!(
                "inconsistencies between private key and certificate loaded '{file}'.\n\
                 Can't commit {file}!\n"
            )
        })?;
        let loaded = Arc::new(loaded);
        self.txn = None;
        let instances = match self.certs.get_mut(file) {
            Some(s) => {
                s.cert = Some(loaded.clone());
                s.instances
            }
            None => 0,
        };
        let dots = ".".repeat(instances);
        Ok((loaded, format!("Committing {file}{dots}\nSuccess!\n")))
    }

    /// `abort ssl cert <file>`.
    pub fn abort(&mut self, file: &str) -> Answer {
        match &self.txn {
            None => Err("No ongoing transaction!\n".into()),
            Some(t) if t.file != file => Err(format!(
                "The ongoing transaction is about '{}' but you are trying to abort a transaction for '{file}'\n",
                t.file
            )),
            Some(_) => {
                self.txn = None;
                Ok(format!(
                    "Transaction aborted for certificate '{file}'!\n"
                ))
            }
        }
    }

    /// `new ssl cert <file>`: an empty entry a transaction can fill (no bind serves it: ringlb
    /// has no `add ssl crt-list`, so it stays unused until a reload names it).
    pub fn new_cert(&mut self, file: &str) -> Answer {
        if self.certs.contains_key(file) {
            return Err(format!("Certificate '{file}' already exists!\n"));
        }
        self.certs.insert(
            file.to_string(),
            Stored {
                cert: None,
                instances: 0,
            },
        );
        Ok(format!("New empty certificate store '{file}'!\n"))
    }

    /// `del ssl cert <file>`: only an unused file outside the transaction.
    pub fn del_cert(&mut self, file: &str) -> Answer {
        let cant = |why: String| Err(format!("Can't remove the certificate: {why}\n"));
        if self.txn.as_ref().is_some_and(|t| t.file == file) {
            return cant(format!(
                "certificate '{file}' is currently in a transaction, can't be deleted!\n"
            ));
        }
        match self.certs.get(file) {
            None => cant(format!("certificate '{file}' doesn't exist!\n")),
            Some(s) if s.instances > 0 => {
                cant(format!("certificate '{file}' in use, can't be deleted!\n"))
            }
            Some(_) => {
                self.certs.remove(file);
                Ok(format!("Certificate '{file}' deleted!\n"))
            }
        }
    }
}

/// A second handle on a startup certificate for the store (the SNI index keeps its own).
fn clone_loaded(c: &LoadedCert) -> LoadedCert {
    LoadedCert {
        file: c.file.clone(),
        key: c.key.clone(),
        info: c.info.clone(),
        names: c.names.clone(),
    }
}

/// The certificates and the first private key of a PEM payload; `None` without certificate.
fn parse_payload(
    payload: &str,
) -> Option<(Vec<CertificateDer<'static>>, Option<PrivateKeyDer<'static>>)> {
    let mut chain = Vec::new();
    let mut key = None;
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(payload.as_bytes()) {
        let (kind, der) = item.ok()?;
        match kind {
            SectionKind::Certificate => chain.push(CertificateDer::from(der)),
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
                if key.is_none() =>
            {
                key = PrivateKeyDer::try_from(der).ok();
            }
            _ => {}
        }
    }
    let leaf = chain.first()?;
    CertInfo::parse(leaf).ok()?;
    Some((chain, key))
}

/// `show ssl cert <file>`'s detail block (haproxy 2.6 `show_cert_detail`).
fn detail(name: &str, status: &str, chain: &[CertificateDer<'static>]) -> String {
    let mut out = format!("Filename: {name}\nStatus: {status}\n");
    let leaf = chain
        .first()
        .and_then(|d| CertInfo::parse(d).ok().map(|i| (d, i)));
    if let Some((der, info)) = leaf {
        let _ = writeln!(out, "Serial: {}", hex_upper(&info.serial));
        let _ = writeln!(out, "notBefore: {}", asn1_time_print(&info.not_before));
        let _ = writeln!(out, "notAfter: {}", asn1_time_print(&info.not_after));
        let sans: Vec<String> = info.dns_names.iter().map(|n| format!("DNS:{n}")).collect();
        let _ = writeln!(out, "Subject Alternative Name: {}", sans.join(", "));
        let _ = writeln!(out, "Algorithm: {}", info.key_algo);
        let sha1 = sha1_smol::Sha1::from(der.as_ref()).digest().bytes();
        let _ = writeln!(out, "SHA1 FingerPrint: {}", hex_upper(&sha1));
        let _ = writeln!(out, "Subject: {}", info.subject.oneline());
        let _ = writeln!(out, "Issuer: {}", info.issuer.oneline());
        for ca in chain.iter().skip(1) {
            if let Ok(ci) = CertInfo::parse(ca) {
                let _ = writeln!(out, "Chain Subject: {}", ci.subject.oneline());
                let _ = writeln!(out, "Chain Issuer: {}", ci.issuer.oneline());
            }
        }
    }
    out.push_str("OCSP Response Key: \n");
    out
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

/// OpenSSL's `ASN1_TIME_print`: `Nov  4 05:35:18 2026 GMT`.
fn asn1_time_print(t: &Asn1Time) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.unix_secs.div_euclid(86_400);
    let secs = t.unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month = usize::try_from(m - 1)
        .ok()
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("???");
    format!(
        "{month} {d:2} {:02}:{:02}:{:02} {y} GMT",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_time_format() {
        let t = |secs| Asn1Time {
            raw: String::new(),
            unix_secs: secs,
        };
        // 2026-11-24 05:35:18 UTC and 2000-03-01 00:00:00 UTC (after a leap day).
        assert_eq!(
            asn1_time_print(&t(1_795_498_518)),
            "Nov 24 05:35:18 2026 GMT"
        );
        assert_eq!(asn1_time_print(&t(951_868_800)), "Mar  1 00:00:00 2000 GMT");
        assert_eq!(asn1_time_print(&t(0)), "Jan  1 00:00:00 1970 GMT");
    }

    #[test]
    fn transactions_follow_haproxy_texts() {
        let mut s = CertStore::default();
        s.new_cert("/a.pem").unwrap();
        assert_eq!(s.list(), "# filename\n/a.pem\n");
        assert_eq!(
            s.show("/a.pem").unwrap(),
            "Filename: /a.pem\nStatus: Empty\nOCSP Response Key: \n"
        );
        let e = s.set("/nope.pem", "x").unwrap_err();
        assert!(e.ends_with("Can't update /nope.pem!\n"), "{e}");
        let e = s.set("/a.pem", "garbage\n").unwrap_err();
        assert_eq!(
            e,
            "unable to load certificate from file '/a.pem'.\nCan't load the payload\nCan't update /a.pem!\n"
        );
        assert_eq!(
            s.commit("/a.pem", &crate::provider()).unwrap_err(),
            "No ongoing transaction! !\nCan't commit /a.pem!\n"
        );
        assert_eq!(s.abort("/a.pem").unwrap_err(), "No ongoing transaction!\n");
        assert!(s.del_cert("/a.pem").is_ok());
        assert_eq!(s.list(), "# filename\n");
    }
}
