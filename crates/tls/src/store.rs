//! The certificate store of one `bind`: certificates from `crt` files/directories and
//! `crt-list` files, indexed by SNI name (exact names, then `*.domain` wildcards), with the
//! first certificate of the line as the default.
//!
//! `crt-list` lines: `<crtfile> [<ssl options>] [[!]<snifilter> ...]`. Positive filters replace
//! the certificate's own names (CN and DNS SANs); `!name` filters keep a name away from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, SignatureAlgorithm, SignatureScheme};

use crate::cert::LoadedCert;

/// One servable certificate with the policy (config index) its SNI names select.
#[derive(Debug)]
pub struct SniEntry {
    pub cert: Arc<LoadedCert>,
    /// Index of the `ServerConfig` for this entry: 0 is the bind line's own policy; crt-list
    /// lines with options get their own.
    pub config: usize,
    /// The crt-list SNI filters it was added with (empty: the certificate's own names), kept
    /// so a replaced certificate (`commit ssl cert`) is indexed the same way.
    filters: Vec<String>,
    negatives: Vec<String>,
}

/// SNI lookup tables.
#[derive(Debug, Default)]
pub struct SniIndex {
    entries: Vec<SniEntry>,
    exact: HashMap<String, Vec<usize>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Vec<usize>>,
    pub strict_sni: bool,
}

fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name.split_once('.').is_some_and(|(_, rest)| rest == suffix),
        None => pattern == name,
    }
}

impl SniIndex {
    /// Adds a certificate under `filters` (its own names when empty) minus `negatives`.
    pub fn add(
        &mut self,
        cert: Arc<LoadedCert>,
        config: usize,
        filters: &[String],
        negatives: Vec<String>,
    ) {
        let idx = self.entries.len();
        let names: Vec<String> = if filters.is_empty() {
            cert.names.clone()
        } else {
            filters.iter().map(|f| f.to_ascii_lowercase()).collect()
        };
        for n in names {
            if negatives.iter().any(|neg| matches_pattern(neg, &n)) {
                continue;
            }
            let table = if n.starts_with("*.") {
                &mut self.wildcard
            } else {
                &mut self.exact
            };
            let key = n.strip_prefix("*.").unwrap_or(&n).to_string();
            let list = table.entry(key).or_default();
            if !list.contains(&idx) {
                list.push(idx);
            }
        }
        let negatives = negatives
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        self.entries.push(SniEntry {
            cert,
            config,
            filters: filters.to_vec(),
            negatives,
        });
    }

    /// A copy with every entry loaded from `file` serving `cert` instead (`commit ssl cert`),
    /// reindexed under the new certificate's names; `None` when no entry comes from `file`.
    pub fn replaced(&self, file: &Path, cert: &Arc<LoadedCert>) -> Option<SniIndex> {
        if !self.entries.iter().any(|e| e.cert.file == file) {
            return None;
        }
        let mut out = SniIndex {
            strict_sni: self.strict_sni,
            ..SniIndex::default()
        };
        for e in &self.entries {
            let c = if e.cert.file == file {
                cert.clone()
            } else {
                e.cert.clone()
            };
            out.add(c, e.config, &e.filters, e.negatives.clone());
        }
        Some(out)
    }

    pub fn entries(&self) -> &[SniEntry] {
        &self.entries
    }

    /// The entry for `sni`: exact names first, then wildcards, then the default (first) entry
    /// unless `strict-sni`. Among several certificates for a name (an RSA and an ECDSA one),
    /// the first ECDSA one the client can use, else the first it can use (its signature
    /// schemes, and for a TLSv1.2-only client its cipher suites, decide), as HAProxy does.
    pub fn lookup(
        &self,
        sni: Option<&str>,
        schemes: &[SignatureScheme],
        suites: &[CipherSuite],
    ) -> Option<&SniEntry> {
        if let Some(name) = sni {
            let lower;
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                lower.as_str()
            } else {
                name
            };
            let exact = self.exact.get(name);
            let wild = name
                .split_once('.')
                .and_then(|(_, rest)| self.wildcard.get(rest));
            for list in [exact, wild].into_iter().flatten() {
                if let Some(e) = self.pick(list, name, schemes, suites) {
                    return Some(e);
                }
            }
        }
        if self.strict_sni {
            return None;
        }
        self.entries.first()
    }

    fn pick(
        &self,
        list: &[usize],
        name: &str,
        schemes: &[SignatureScheme],
        suites: &[CipherSuite],
    ) -> Option<&SniEntry> {
        let candidates: Vec<&SniEntry> = list
            .iter()
            .filter_map(|&i| self.entries.get(i))
            .filter(|e| !e.negatives.iter().any(|n| matches_pattern(n, name)))
            .collect();
        let usable: Vec<&SniEntry> = candidates
            .iter()
            .copied()
            .filter(|e| client_can_use(e, schemes, suites))
            .collect();
        let ecdsa = usable
            .iter()
            .find(|e| e.cert.key.key.algorithm() == SignatureAlgorithm::ECDSA);
        ecdsa.or(usable.first()).or(candidates.first()).copied()
    }
}

/// Whether the client can be served this certificate: it accepts one of the key's
/// signature schemes and, unless it offers TLSv1.3, a TLSv1.2 suite for the key's type.
fn client_can_use(e: &SniEntry, schemes: &[SignatureScheme], suites: &[CipherSuite]) -> bool {
    if schemes.is_empty() {
        return true;
    }
    if e.cert.key.key.choose_scheme(schemes).is_none() {
        return false;
    }
    let alg = e.cert.key.key.algorithm();
    suites.is_empty()
        || suites.iter().any(|s| {
            let id = u16::from(*s);
            (0x1301..=0x1305).contains(&id)
                || crate::policy::tls12_signature_algorithm(*s) == Some(alg)
        })
}

/// rustls hook: serves the certificate [`SniIndex::lookup`] picks.
#[derive(Debug)]
pub struct SniResolver(pub Arc<SniIndex>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0
            .lookup(
                hello.server_name(),
                hello.signature_schemes(),
                hello.cipher_suites(),
            )
            .map(|e| e.cert.key.clone())
    }
}

/// One parsed `crt-list` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrtListLine {
    pub line: u32,
    pub crt: PathBuf,
    /// Options between brackets as (name, value) pairs.
    pub options: Vec<(String, Option<String>)>,
    pub filters: Vec<String>,
    pub negatives: Vec<String>,
}

/// crt-list options that take a value, and those that do not (HAProxy 2.6's `ssl_bind_kw`).
const CRT_LIST_VALUED: [&str; 11] = [
    "alpn",
    "ca-file",
    "ciphers",
    "ciphersuites",
    "crl-file",
    "curves",
    "ecdhe",
    "npn",
    "ssl-min-ver",
    "ssl-max-ver",
    "verify",
];
const CRT_LIST_FLAGS: [&str; 2] = ["allow-0rtt", "no-ca-names"];

/// Parses a crt-list file's text. Errors carry `file:line`.
pub fn parse_crt_list(file: &Path, text: &str) -> Result<Vec<CrtListLine>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let line = raw.split_once('#').map_or(raw, |(a, _)| a).trim();
        if line.is_empty() {
            continue;
        }
        let at = |msg: String| format!("{}:{line_no}: {msg}", file.display());
        let mut words = line.split_whitespace();
        let Some(crt) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        let mut i = 0;
        let mut options = Vec::new();
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            let mut opt_words = Vec::new();
            let mut closed = false;
            while let Some(w) = rest.get(i) {
                i += 1;
                let w = w.strip_prefix('[').unwrap_or(w);
                if let Some(w) = w.strip_suffix(']') {
                    if !w.is_empty() {
                        opt_words.push(w);
                    }
                    closed = true;
                    break;
                }
                if !w.is_empty() {
                    opt_words.push(w);
                }
            }
            if !closed {
                return Err(at("missing ']' after the ssl options".into()));
            }
            let mut j = 0;
            while let Some(name) = opt_words.get(j) {
                j += 1;
                if CRT_LIST_FLAGS.contains(name) {
                    options.push((name.to_string(), None));
                } else if CRT_LIST_VALUED.contains(name) {
                    let v = opt_words
                        .get(j)
                        .ok_or_else(|| at(format!("'{name}' : missing value")))?;
                    j += 1;
                    options.push((name.to_string(), Some(v.to_string())));
                } else {
                    return Err(at(format!(
                        "unknown or unsupported crt-list ssl option '{name}'"
                    )));
                }
            }
        }
        let mut filters = Vec::new();
        let mut negatives = Vec::new();
        for w in rest.iter().skip(i) {
            match w.strip_prefix('!') {
                Some(neg) => negatives.push(neg.to_ascii_lowercase()),
                None => filters.push(w.to_ascii_lowercase()),
            }
        }
        out.push(CrtListLine {
            line: line_no,
            crt: PathBuf::from(crt),
            options,
            filters,
            negatives,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crt_list_lines() {
        let text = "# comment\n\
                    site.pem\n\
                    /abs/api.pem [alpn h2 ssl-min-ver TLSv1.3] api.example.com !old.example.com\n\
                    w.pem [verify required ca-file ca.pem] *.example.com\n\
                    x.pem [no-ca-names]\n";
        let l = parse_crt_list(Path::new("l.txt"), text).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].crt, PathBuf::from("site.pem"));
        assert!(l[0].options.is_empty() && l[0].filters.is_empty());
        assert_eq!(l[1].line, 3);
        assert_eq!(
            l[1].options,
            [
                ("alpn".into(), Some("h2".into())),
                ("ssl-min-ver".into(), Some("TLSv1.3".into()))
            ]
        );
        assert_eq!(l[1].filters, ["api.example.com"]);
        assert_eq!(l[1].negatives, ["old.example.com"]);
        assert_eq!(l[2].filters, ["*.example.com"]);
        assert_eq!(l[3].options, [("no-ca-names".into(), None)]);
    }

    #[test]
    fn crt_list_errors_name_file_and_line() {
        let e = parse_crt_list(Path::new("l.txt"), "a.pem\nb.pem [bogus 1] x\n").unwrap_err();
        assert!(e.starts_with("l.txt:2:") && e.contains("'bogus'"), "{e}");
        let e = parse_crt_list(Path::new("l.txt"), "b.pem [alpn h2 x\n").unwrap_err();
        assert!(e.contains("']'"), "{e}");
        let e = parse_crt_list(Path::new("l.txt"), "b.pem [alpn]\n").unwrap_err();
        assert!(e.contains("missing value"), "{e}");
    }

    #[test]
    fn patterns() {
        assert!(matches_pattern("*.example.com", "a.example.com"));
        assert!(!matches_pattern("*.example.com", "a.b.example.com"));
        assert!(!matches_pattern("*.example.com", "example.com"));
        assert!(matches_pattern("a.example.com", "a.example.com"));
    }
}
