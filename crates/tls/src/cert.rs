//! Loading HAProxy-style PEM files: certificate, chain and key in one file, or the key in
//! `<file>.key` (under `key-base` when set), an OCSP response in `<file>.ocsp`.
//!
//! Runs at startup and on reload, on the control shard (file I/O never happens on a worker).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::der::CertInfo;
use crate::diag::TlsDiag;

/// Largest certificate/key/CA file read (a bundle of many CAs stays well under it).
const MAX_PEM_BYTES: u64 = 16 << 20;

/// Companion files `crt DIR` does not load as certificates.
const COMPANION_EXTS: [&str; 4] = ["key", "ocsp", "issuer", "sctl"];

/// A certificate ready to serve, with what SNI selection and the fetches need.
#[derive(Debug)]
pub struct LoadedCert {
    pub file: PathBuf,
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    /// Lower-cased names from the subject CN and the DNS SANs, as SNI keys.
    pub names: Vec<String>,
}

/// Same file, same certificate (the key has no equality of its own).
impl PartialEq for LoadedCert {
    fn eq(&self, other: &LoadedCert) -> bool {
        self.file == other.file && self.info == other.info
    }
}

impl Eq for LoadedCert {}

/// Reads a whole file, refusing huge ones.
pub fn read_file(path: &Path) -> Result<Vec<u8>, TlsDiag> {
    let meta = std::fs::metadata(path)
        .map_err(|e| TlsDiag::alert(Some(path), format!("unable to stat file : {e}")))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(TlsDiag::alert(
            Some(path),
            format!("file is larger than {MAX_PEM_BYTES} bytes"),
        ));
    }
    std::fs::read(path)
        .map_err(|e| TlsDiag::alert(Some(path), format!("unable to read file : {e}")))
}

fn pem_error(path: &Path, what: &str, e: &pem::Error) -> TlsDiag {
    TlsDiag::alert(Some(path), format!("bad PEM ({what}): {e}"))
}

/// All certificates of a PEM file, in file order.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsDiag> {
    let data = read_file(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(path, "certificate", &e))?;
    Ok(certs)
}

/// Joins `file` to `base` unless absolute (HAProxy's `crt-base`, `ca-base`, `key-base`).
pub fn with_base(base: Option<&Path>, file: &Path) -> PathBuf {
    match base {
        Some(b) if file.is_relative() => b.join(file),
        _ => file.to_path_buf(),
    }
}

/// Loads one PEM certificate file. `now_unix` decides the expiry warning.
pub fn load_cert(
    path: &Path,
    key_base: Option<&Path>,
    provider: &CryptoProvider,
    now_unix: i64,
    warnings: &mut Vec<TlsDiag>,
) -> Result<LoadedCert, TlsDiag> {
    let data = read_file(path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(path, "certificate", &e))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsDiag::alert(
            Some(path),
            "no certificate found in this PEM file",
        ));
    };
    let info = CertInfo::parse(leaf)
        .map_err(|e| TlsDiag::alert(Some(path), format!("bad certificate: {e}")))?;
    let key = load_key(path, &data, key_base)?;
    let mut loaded = assemble(path, chain, info, key, provider)?;
    let ocsp = PathBuf::from(format!("{}.ocsp", path.display()));
    if ocsp.is_file() {
        let response = read_file(&ocsp)?;
        if !crate::der::is_one_sequence(&response) {
            return Err(TlsDiag::alert(Some(&ocsp), "not a DER OCSP response"));
        }
        if let Some(k) = Arc::get_mut(&mut loaded.key) {
            k.ocsp = Some(response);
        }
    }
    check_validity(path, &loaded.info, now_unix, warnings);
    Ok(loaded)
}

/// A certificate from its parts (a file, or a `set ssl cert` payload): the key must match the
/// leaf's public key; the SNI names come from the subject CN and the DNS SANs.
pub fn assemble(
    path: &Path,
    chain: Vec<CertificateDer<'static>>,
    info: CertInfo,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<LoadedCert, TlsDiag> {
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsDiag::alert(
            Some(path),
            "the private key does not match the certificate's public key",
        ),
        other => TlsDiag::alert(
            Some(path),
            format!("unable to load the private key: {other}"),
        ),
    })?;
    let mut names: Vec<String> = info
        .subject
        .field("CN", 0)
        .into_iter()
        .map(str::to_string)
        .collect();
    names.extend(info.dns_names.iter().cloned());
    for n in &mut names {
        n.make_ascii_lowercase();
    }
    names.dedup();
    Ok(LoadedCert {
        file: path.to_path_buf(),
        key: Arc::new(certified),
        info,
        names,
    })
}

/// `ssl-skip-self-issued-ca`: drops the self-issued CAs (subject = issuer) from the chain
/// sent after the leaf; a client must already hold its trust anchor.
pub fn skip_self_issued(c: &mut LoadedCert) {
    let Some(k) = Arc::get_mut(&mut c.key) else {
        return;
    };
    let mut first = true;
    k.cert.retain(|der| {
        let leaf = std::mem::take(&mut first);
        leaf || !CertInfo::parse(der).is_ok_and(|i| i.subject == i.issuer)
    });
}

/// The key from the PEM itself, else from `<file>.key` (in `key-base` when set).
fn load_key(
    path: &Path,
    data: &[u8],
    key_base: Option<&Path>,
) -> Result<PrivateKeyDer<'static>, TlsDiag> {
    match PrivateKeyDer::from_pem_slice(data) {
        Ok(k) => return Ok(k),
        Err(pem::Error::NoItemsFound) => {}
        Err(e) => return Err(pem_error(path, "private key", &e)),
    }
    let key_name = format!(
        "{}.key",
        path.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    );
    let key_path = match key_base {
        Some(b) => b.join(&key_name),
        None => path.with_file_name(&key_name),
    };
    if !key_path.is_file() {
        return Err(TlsDiag::alert(
            Some(path),
            format!(
                "no private key in this PEM file and no '{}' file",
                key_path.display()
            ),
        ));
    }
    let key_data = read_file(&key_path)?;
    PrivateKeyDer::from_pem_slice(&key_data).map_err(|e| pem_error(&key_path, "private key", &e))
}

fn check_validity(path: &Path, info: &CertInfo, now_unix: i64, warnings: &mut Vec<TlsDiag>) {
    if info.not_after.unix_secs < now_unix {
        warnings.push(TlsDiag::warning(
            Some(path),
            format!("certificate has expired (notAfter {})", info.not_after.raw),
        ));
    } else if info.not_before.unix_secs > now_unix {
        warnings.push(TlsDiag::warning(
            Some(path),
            format!(
                "certificate is not yet valid (notBefore {})",
                info.not_before.raw
            ),
        ));
    }
}

/// The certificate files of `crt DIR`, sorted by name, companions and dot files left out.
pub fn dir_certs(dir: &Path) -> Result<Vec<PathBuf>, TlsDiag> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| TlsDiag::alert(Some(dir), format!("unable to scan directory : {e}")))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| {
            !p.extension()
                .is_some_and(|x| COMPANION_EXTS.iter().any(|c| x == *c))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `issuers-chain-path`: intermediate chains, each keyed by the subject of its first
/// certificate, that complete a PEM holding only its leaf (HAProxy's issuer completion).
#[derive(Debug, Default)]
pub struct IssuerChains {
    chains: Vec<(crate::der::Dn, Vec<CertificateDer<'static>>)>,
}

impl IssuerChains {
    /// Loads every PEM file of `dir` (sorted by name; dot files left out). A file without a
    /// certificate, or one that does not parse, is an error naming it.
    pub fn load(dir: &Path) -> Result<IssuerChains, TlsDiag> {
        let rd = std::fs::read_dir(dir).map_err(|e| {
            TlsDiag::alert(
                Some(dir),
                format!("issuers-chain-path: unable to scan directory : {e}"),
            )
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        let mut chains = Vec::with_capacity(files.len());
        for file in files {
            let certs = read_certs(&file)?;
            let Some(first) = certs.first() else {
                return Err(TlsDiag::alert(
                    Some(&file),
                    "issuers-chain-path: no certificate in this file",
                ));
            };
            let info = CertInfo::parse(first).map_err(|e| {
                TlsDiag::alert(
                    Some(&file),
                    format!("issuers-chain-path: bad certificate: {e}"),
                )
            })?;
            chains.push((info.subject, certs));
        }
        Ok(IssuerChains { chains })
    }

    /// Appends the chain whose first certificate is the leaf's issuer, when `c` holds only its
    /// leaf and the leaf is not self-issued. Returns whether it did.
    pub fn complete(&self, c: &mut LoadedCert) -> bool {
        if c.info.issuer == c.info.subject {
            return false;
        }
        let Some((_, chain)) = self.chains.iter().find(|(s, _)| *s == c.info.issuer) else {
            return false;
        };
        let Some(k) = Arc::get_mut(&mut c.key) else {
            return false;
        };
        if k.cert.len() != 1 {
            return false;
        }
        k.cert.extend(chain.iter().cloned());
        true
    }
}
