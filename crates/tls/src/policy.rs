//! HAProxy's TLS policy words mapped onto what rustls offers.
//!
//! - Versions: rustls speaks TLSv1.2 and TLSv1.3 only. A policy that merely allows SSLv3/TLSv1.0/
//!   TLSv1.1 (`ssl-min-ver TLSv1.0`) loads and offers 1.2–1.3; one that requires them
//!   (`force-tlsv10`, `ssl-max-ver TLSv1.1`) is an error that says so.
//! - `ciphers` (TLSv1.2, OpenSSL cipher-string syntax). A plain list of names must name only
//!   suites rustls offers (table [`TLS12_CIPHERS`]); any other name is an error naming it. A string
//!   using OpenSSL expressions (`HIGH:!aNULL`, `ECDHE+AESGCM`, `-`, `+`, `!`, `@STRENGTH`) is
//!   evaluated as OpenSSL does over the suites rustls offers, each alias meaning the set of those
//!   suites it would select in OpenSSL (`HIGH`, `ALL`, `DEFAULT`, `ECDHE`, `EECDH`, `aECDSA`,
//!   `aRSA`, `AESGCM`, `AES128`, `CHACHA20`, `FIPS`...; aliases of families rustls lacks — `DHE`,
//!   `kRSA`, `RSA`, `3DES`, `MEDIUM`, `LOW`, `aNULL`... — and the MAC aliases `SHA256`/`SHA384`/
//!   `AEAD`, which OpenSSL does not apply to AEAD suites, select nothing; checked against
//!   `openssl ciphers` in `tests/ciphers_openssl.rs`), and
//!   unknown names inside an expression are skipped, as OpenSSL skips them. An empty result is an
//!   error, as OpenSSL's "no cipher match".
//! - `ciphersuites` (TLSv1.3): `TLS_AES_128_GCM_SHA256`, `TLS_AES_256_GCM_SHA384`,
//!   `TLS_CHACHA20_POLY1305_SHA256`; the CCM suites are an error (not in rustls).
//! - `curves`: `X25519`, `P-256`/`prime256v1`/`secp256r1`, `P-384`/`secp384r1`,
//!   `X25519MLKEM768`; `P-521` and `X448` are errors.

use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group};
use rustls::crypto::SupportedKxGroup;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use ringlb_config::model::{SslOptions, TlsVersion};

/// Key authentication of a TLSv1.2 suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Ecdsa,
    Rsa,
}

/// Bulk cipher of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20,
}

/// A TLSv1.2 suite rustls offers, with its OpenSSL name and the attributes aliases select on.
#[derive(Debug, Clone, Copy)]
pub struct Tls12Cipher {
    pub openssl: &'static str,
    pub suite: SupportedCipherSuite,
    auth: Auth,
    enc: Enc,
    bits: u16,
}

/// The TLSv1.2 suites, in OpenSSL's default order for them.
pub static TLS12_CIPHERS: [Tls12Cipher; 6] = [
    c12(
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        Auth::Ecdsa,
        Enc::Aes256Gcm,
    ),
    c12(
        "ECDHE-RSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        Auth::Rsa,
        Enc::Aes256Gcm,
    ),
    c12(
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        Auth::Ecdsa,
        Enc::Chacha20,
    ),
    c12(
        "ECDHE-RSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        Auth::Rsa,
        Enc::Chacha20,
    ),
    c12(
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        Auth::Ecdsa,
        Enc::Aes128Gcm,
    ),
    c12(
        "ECDHE-RSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        Auth::Rsa,
        Enc::Aes128Gcm,
    ),
];

const fn c12(
    openssl: &'static str,
    suite: SupportedCipherSuite,
    auth: Auth,
    enc: Enc,
) -> Tls12Cipher {
    let bits = match enc {
        Enc::Aes256Gcm | Enc::Chacha20 => 256,
        Enc::Aes128Gcm => 128,
    };
    Tls12Cipher {
        openssl,
        suite,
        auth,
        enc,
        bits,
    }
}

/// TLSv1.3 suites by their OpenSSL (= IANA) names, OpenSSL's default order.
pub static TLS13_SUITES: [(&str, SupportedCipherSuite); 3] = [
    ("TLS_AES_256_GCM_SHA384", cs::TLS13_AES_256_GCM_SHA384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    ("TLS_AES_128_GCM_SHA256", cs::TLS13_AES_128_GCM_SHA256),
];

/// OpenSSL's name of a negotiated suite (`ssl_fc_cipher`).
pub fn openssl_cipher_name(suite: SupportedCipherSuite) -> &'static str {
    let id = suite.suite();
    TLS13_SUITES
        .iter()
        .find(|(_, s)| s.suite() == id)
        .map(|(n, _)| *n)
        .or_else(|| {
            TLS12_CIPHERS
                .iter()
                .find(|c| c.suite.suite() == id)
                .map(|c| c.openssl)
        })
        .unwrap_or("(unknown)")
}

/// The key type a TLSv1.2 suite authenticates with; `None` for other suites.
pub fn tls12_signature_algorithm(id: rustls::CipherSuite) -> Option<rustls::SignatureAlgorithm> {
    TLS12_CIPHERS
        .iter()
        .find(|c| c.suite.suite() == id)
        .map(|c| match c.auth {
            Auth::Ecdsa => rustls::SignatureAlgorithm::ECDSA,
            Auth::Rsa => rustls::SignatureAlgorithm::RSA,
        })
}

/// HAProxy's protocol name (`ssl_fc_protocol`).
pub fn protocol_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1",
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1",
        _ => "unknown",
    }
}

/// Selects the TLSv1.2 ciphers of an OpenSSL cipher string.
pub fn parse_ciphers(s: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let tokens: Vec<&str> = s.split([':', ',', ' ']).filter(|t| !t.is_empty()).collect();
    let is_expr = tokens
        .iter()
        .any(|t| t.starts_with(['!', '-', '+', '@']) || t.contains('+') || alias(t).is_some());
    let picked: Vec<usize> = if is_expr {
        eval_expression(&tokens)
    } else {
        let mut out = Vec::new();
        for t in &tokens {
            let i = TLS12_CIPHERS
                .iter()
                .position(|c| c.openssl == *t)
                .ok_or_else(|| unavailable_cipher(t))?;
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    };
    if picked.is_empty() {
        return Err(format!(
            "cipher string '{s}' selects no cipher rustls offers (TLSv1.2 ciphers available: {})",
            tls12_names()
        ));
    }
    Ok(picked
        .into_iter()
        .filter_map(|i| TLS12_CIPHERS.get(i).map(|c| c.suite))
        .collect())
}

fn tls12_names() -> String {
    TLS12_CIPHERS
        .iter()
        .map(|c| c.openssl)
        .collect::<Vec<_>>()
        .join(":")
}

fn unavailable_cipher(name: &str) -> String {
    format!(
        "cipher '{name}' is not available in ringlb: rustls offers only these TLSv1.2 ciphers: {}",
        tls12_names()
    )
}

/// An alias as a predicate over [`TLS12_CIPHERS`]; `None` when `t` is not an alias.
fn alias(t: &str) -> Option<fn(&Tls12Cipher) -> bool> {
    Some(match t {
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "ECDH"
        | "TLSv1.2" => |_| true,
        "aECDSA" | "ECDSA" => |c| c.auth == Auth::Ecdsa,
        "aRSA" => |c| c.auth == Auth::Rsa,
        "AES" | "AESGCM" | "FIPS" => |c| c.enc != Enc::Chacha20,
        "AES128" => |c| c.enc == Enc::Aes128Gcm,
        "AES256" => |c| c.enc == Enc::Aes256Gcm,
        "CHACHA20" => |c| c.enc == Enc::Chacha20,
        // OpenSSL's MAC aliases do not select AEAD suites (their MAC is "AEAD").
        "SHA256"
        | "SHA384"
        | "AEAD"
        | "COMPLEMENTOFDEFAULT"
        | "COMPLEMENTOFALL"
        | "MEDIUM"
        | "LOW"
        | "EXP"
        | "EXPORT"
        | "NULL"
        | "eNULL"
        | "aNULL"
        | "ADH"
        | "AECDH"
        | "kRSA"
        | "RSA"
        | "DH"
        | "DHE"
        | "EDH"
        | "kDHE"
        | "kEDH"
        | "kDH"
        | "DSS"
        | "aDSS"
        | "PSK"
        | "kPSK"
        | "aPSK"
        | "SRP"
        | "kSRP"
        | "3DES"
        | "DES"
        | "RC4"
        | "RC2"
        | "IDEA"
        | "SEED"
        | "MD5"
        | "SHA1"
        | "SHA"
        | "CAMELLIA"
        | "ARIA"
        | "CCM"
        | "CCM8"
        | "kGOST"
        | "aGOST"
        | "SSLv3"
        | "TLSv1"
        | "TLSv1.0"
        | "AESCCM"
        | "AESCCM8"
        | "CHACHA20-POLY1305-SHA256" => |_| false,
        _ => return None,
    })
}

/// The ciphers a term selects: `A+B` is the intersection; an unknown name selects nothing.
fn term_set(term: &str) -> Vec<usize> {
    (0..TLS12_CIPHERS.len())
        .filter(|&i| {
            TLS12_CIPHERS.get(i).is_some_and(|c| {
                term.split('+').all(|part| match alias(part) {
                    Some(pred) => pred(c),
                    None => c.openssl == part,
                })
            })
        })
        .collect()
}

/// OpenSSL's cipher-list algebra: plain adds, `-` removes, `!` removes for good, `+` moves to
/// the end, `@STRENGTH` sorts by key size.
fn eval_expression(tokens: &[&str]) -> Vec<usize> {
    let mut list: Vec<usize> = Vec::new();
    let mut killed: Vec<usize> = Vec::new();
    for t in tokens {
        if let Some(cmd) = t.strip_prefix('@') {
            if cmd == "STRENGTH" {
                list.sort_by_key(|&i| {
                    std::cmp::Reverse(TLS12_CIPHERS.get(i).map_or(0, |c| c.bits))
                });
            }
            continue;
        }
        let (op, term) = match t.chars().next() {
            Some(c @ ('!' | '-' | '+')) => (c, &t[1..]),
            _ => (' ', *t),
        };
        let set = term_set(term);
        match op {
            '!' => {
                list.retain(|i| !set.contains(i));
                killed.extend(set);
            }
            '-' => list.retain(|i| !set.contains(i)),
            '+' => {
                let (moved, kept): (Vec<usize>, Vec<usize>) =
                    list.iter().partition(|i| set.contains(i));
                list = kept;
                list.extend(moved);
            }
            _ => {
                for i in set {
                    if !killed.contains(&i) && !list.contains(&i) {
                        list.push(i);
                    }
                }
            }
        }
    }
    list
}

/// Selects TLSv1.3 suites from an OpenSSL `ciphersuites` string.
pub fn parse_ciphersuites(s: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for name in s.split(':').filter(|t| !t.is_empty()) {
        let suite = TLS13_SUITES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).ok_or_else(|| {
            let avail: Vec<&str> = TLS13_SUITES.iter().map(|(n, _)| *n).collect();
            format!("TLSv1.3 ciphersuite '{name}' is not available in ringlb: rustls offers only {}", avail.join(":"))
        })?;
        if !out.iter().any(|s| s.suite() == suite.suite()) {
            out.push(suite);
        }
    }
    if out.is_empty() {
        return Err(format!("ciphersuites '{s}' selects no TLSv1.3 suite"));
    }
    Ok(out)
}

/// Key-exchange groups from a `curves`/`ecdhe` list.
pub fn parse_curves(s: &str) -> Result<Vec<&'static dyn SupportedKxGroup>, String> {
    let mut out: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in s.split([':', ',']).filter(|t| !t.is_empty()) {
        let g: &'static dyn SupportedKxGroup = match name {
            "X25519" | "x25519" => kx_group::X25519,
            "P-256" | "prime256v1" | "secp256r1" => kx_group::SECP256R1,
            "P-384" | "secp384r1" => kx_group::SECP384R1,
            "X25519MLKEM768" => kx_group::X25519MLKEM768,
            _ => {
                return Err(format!(
                    "curve '{name}' is not available in ringlb: rustls offers X25519, P-256, P-384 and X25519MLKEM768"
                ))
            }
        };
        if !out.iter().any(|o| o.name() == g.name()) {
            out.push(g);
        }
    }
    if out.is_empty() {
        return Err(format!("curves '{s}' names no curve"));
    }
    Ok(out)
}

/// Merges `ssl-default-*-options` under a line's own options: the line's versions win, flags add.
pub fn merge_options(defaults: &SslOptions, line: &SslOptions) -> SslOptions {
    let mut flags = defaults.flags.clone();
    flags.extend(line.flags.iter().cloned());
    SslOptions {
        min_ver: line.min_ver.or(defaults.min_ver),
        max_ver: line.max_ver.or(defaults.max_ver),
        no_tls_tickets: defaults.no_tls_tickets || line.no_tls_tickets,
        flags,
    }
}

fn version_name(v: TlsVersion) -> &'static str {
    match v {
        TlsVersion::Sslv3 => "SSLv3",
        TlsVersion::Tlsv10 => "TLSv1.0",
        TlsVersion::Tlsv11 => "TLSv1.1",
        TlsVersion::Tlsv12 => "TLSv1.2",
        TlsVersion::Tlsv13 => "TLSv1.3",
    }
}

fn flag_version(flag: &str) -> Option<TlsVersion> {
    Some(match flag.rsplit('-').next()? {
        "sslv3" => TlsVersion::Sslv3,
        "tlsv10" => TlsVersion::Tlsv10,
        "tlsv11" => TlsVersion::Tlsv11,
        "tlsv12" => TlsVersion::Tlsv12,
        "tlsv13" => TlsVersion::Tlsv13,
        _ => return None,
    })
}

/// Whether `no-sslv3` / `no-tlsv1x` flags are ignored: HAProxy 2.6 drops them (with a
/// warning) once `ssl-min-ver`, `ssl-max-ver` or a `force-` option sets a bound, including
/// one inherited from `ssl-default-*-options`.
pub fn no_flags_ignored(o: &SslOptions) -> bool {
    let has_no = o
        .flags
        .iter()
        .any(|f| f.starts_with("no-") && flag_version(f).is_some());
    let bounded = o.min_ver.is_some()
        || o.max_ver.is_some()
        || o.flags
            .iter()
            .any(|f| f.starts_with("force-") && flag_version(f).is_some());
    has_no && bounded
}

/// The protocol versions a policy enables, as rustls versions (HAProxy's default floor is
/// TLSv1.2, its ceiling TLSv1.3).
pub fn versions(o: &SslOptions) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    const ALL: [TlsVersion; 5] = [
        TlsVersion::Sslv3,
        TlsVersion::Tlsv10,
        TlsVersion::Tlsv11,
        TlsVersion::Tlsv12,
        TlsVersion::Tlsv13,
    ];
    let forced: Vec<TlsVersion> = o
        .flags
        .iter()
        .filter(|f| f.starts_with("force-"))
        .filter_map(|f| flag_version(f))
        .collect();
    let min = o.min_ver.unwrap_or(TlsVersion::Tlsv12);
    let max = o.max_ver.unwrap_or(TlsVersion::Tlsv13);
    let mut allowed: Vec<TlsVersion> = if forced.is_empty() {
        ALL.iter()
            .copied()
            .filter(|v| *v >= min && *v <= max)
            .collect()
    } else {
        forced
    };
    let honour_no = !no_flags_ignored(o);
    allowed.retain(|v| {
        !honour_no
            || !o
                .flags
                .iter()
                .any(|f| f.starts_with("no-") && flag_version(f) == Some(*v))
    });
    let mut out: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if allowed.contains(&TlsVersion::Tlsv13) {
        out.push(&rustls::version::TLS13);
    }
    if allowed.contains(&TlsVersion::Tlsv12) {
        out.push(&rustls::version::TLS12);
    }
    if out.is_empty() {
        let names: Vec<&str> = allowed.iter().map(|v| version_name(*v)).collect();
        return Err(if names.is_empty() {
            "every TLS version is disabled by this policy".to_string()
        } else {
            format!(
                "this policy requires {} which rustls does not implement (ringlb speaks TLSv1.2 and TLSv1.3 only)",
                names.join(", ")
            )
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[SupportedCipherSuite]) -> Vec<&'static str> {
        v.iter().map(|s| openssl_cipher_name(*s)).collect()
    }

    #[test]
    fn guide_cipher_list_maps_in_order() {
        let s = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
        assert_eq!(
            names(&parse_ciphers(s).unwrap()),
            s.split(':').collect::<Vec<_>>()
        );
    }

    #[test]
    fn unavailable_name_is_an_error_naming_it() {
        let e = parse_ciphers("ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256").unwrap_err();
        assert!(
            e.contains("'DHE-RSA-AES128-GCM-SHA256' is not available"),
            "{e}"
        );
        let e = parse_ciphersuites("TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256").unwrap_err();
        assert!(e.contains("'TLS_AES_128_CCM_SHA256'"), "{e}");
    }

    #[test]
    fn expressions() {
        assert_eq!(parse_ciphers("HIGH:!aNULL:!MD5").unwrap().len(), 6);
        assert_eq!(
            names(&parse_ciphers("ECDHE+AESGCM:!aRSA").unwrap()),
            [
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES128-GCM-SHA256"
            ]
        );
        assert_eq!(
            names(&parse_ciphers("ECDHE+AES128:ECDHE+CHACHA20:DHE+AES128").unwrap()),
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                "ECDHE-RSA-CHACHA20-POLY1305"
            ]
        );
        // `!` is final, `-` can be undone.
        assert_eq!(parse_ciphers("ALL:!CHACHA20:CHACHA20").unwrap().len(), 4);
        assert_eq!(parse_ciphers("ALL:-CHACHA20:CHACHA20").unwrap().len(), 6);
        // `+` moves to the end.
        let v = names(&parse_ciphers("ALL:+aRSA").unwrap());
        assert_eq!(
            v[3..],
            [
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-RSA-CHACHA20-POLY1305",
                "ECDHE-RSA-AES128-GCM-SHA256"
            ]
        );
        assert!(parse_ciphers("DHE+AESGCM:!ECDHE").is_err());
        assert!(parse_ciphers("").is_err());
    }

    #[test]
    fn curves() {
        assert_eq!(parse_curves("X25519:P-256").unwrap().len(), 2);
        assert!(parse_curves("secp521r1")
            .unwrap_err()
            .contains("'secp521r1'"));
    }

    fn opts(min: Option<TlsVersion>, max: Option<TlsVersion>, flags: &[&str]) -> SslOptions {
        SslOptions {
            min_ver: min,
            max_ver: max,
            no_tls_tickets: false,
            flags: flags.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn vers(o: &SslOptions) -> Result<Vec<rustls::ProtocolVersion>, String> {
        versions(o).map(|v| v.iter().map(|p| p.version).collect())
    }

    #[test]
    fn version_policy() {
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(vers(&opts(None, None, &[])).unwrap(), [TLSv1_3, TLSv1_2]);
        assert_eq!(
            vers(&opts(Some(TlsVersion::Tlsv10), None, &[])).unwrap(),
            [TLSv1_3, TLSv1_2]
        );
        assert_eq!(
            vers(&opts(Some(TlsVersion::Tlsv13), None, &[])).unwrap(),
            [TLSv1_3]
        );
        assert_eq!(vers(&opts(None, None, &["no-tlsv13"])).unwrap(), [TLSv1_2]);
        assert_eq!(
            vers(&opts(None, None, &["force-tlsv12"])).unwrap(),
            [TLSv1_2]
        );
        let e = vers(&opts(None, None, &["force-tlsv10"])).unwrap_err();
        assert!(e.contains("TLSv1.0") && e.contains("rustls"), "{e}");
        let e = vers(&opts(
            Some(TlsVersion::Tlsv10),
            Some(TlsVersion::Tlsv11),
            &[],
        ))
        .unwrap_err();
        assert!(e.contains("TLSv1.0, TLSv1.1"), "{e}");
        assert!(vers(&opts(None, None, &["no-tlsv12", "no-tlsv13"]))
            .unwrap_err()
            .contains("disabled"));
        // HAProxy ignores no-tlsv1x once a bound is set (ssl-min-ver/max-ver, force-).
        let bounded = opts(Some(TlsVersion::Tlsv12), None, &["no-tlsv13"]);
        assert!(no_flags_ignored(&bounded));
        assert_eq!(vers(&bounded).unwrap(), [TLSv1_3, TLSv1_2]);
        let forced = opts(None, None, &["force-tlsv13", "no-tlsv13"]);
        assert_eq!(vers(&forced).unwrap(), [TLSv1_3]);
        assert!(!no_flags_ignored(&opts(None, None, &["no-tlsv13"])));
    }

    #[test]
    fn defaults_merge_under_line() {
        let d = opts(Some(TlsVersion::Tlsv12), None, &["no-tlsv13"]);
        let l = opts(Some(TlsVersion::Tlsv13), None, &["prefer-client-ciphers"]);
        let m = merge_options(&d, &l);
        assert_eq!(m.min_ver, Some(TlsVersion::Tlsv13));
        assert_eq!(m.flags, ["no-tlsv13", "prefer-client-ciphers"]);
    }
}
