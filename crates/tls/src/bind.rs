//! Building the TLS side of a `bind` line: certificates, SNI index and one rustls
//! `ServerConfig` per distinct policy (the line's own, plus one per crt-list line that carries
//! `[ssl options]`), checked at startup; then per-shard copies sharing one session cache.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateRevocationListDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::time_provider::TimeProvider;
use rustls::{RootCertStore, ServerConfig};

use ringlb_config::model::{Bind, Global, SslDefaults, SslOptions, Verify};

use crate::cert::{self, LoadedCert};
use crate::diag::{Diags, TlsDiag};
use crate::policy;
use crate::resume::{SessionCache, SharedTicketer, DEFAULT_CACHESIZE, DEFAULT_LIFETIME_SECS};
use crate::store::{parse_crt_list, SniIndex, SniResolver};
use crate::verify::{HaproxyClientVerifier, IgnoreErr};

/// The crypto provider ringlb uses (ADR 0004).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Global TLS settings from the `global` section.
#[derive(Debug, Clone, Default)]
pub struct TlsGlobals {
    pub crt_base: Option<PathBuf>,
    pub ca_base: Option<PathBuf>,
    pub key_base: Option<PathBuf>,
    pub defaults: SslDefaults,
    pub default_bind_curves: Option<String>,
    /// `tune.ssl.cachesize` (sessions per bind, shared by its shards, see [`BindTls::for_shard`]).
    pub cachesize: Option<usize>,
    /// `tune.ssl.lifetime` in seconds.
    pub lifetime_secs: Option<u32>,
    /// `ssl-server-verify none`: servers default to `verify none`.
    pub server_verify_none: bool,
    /// `tune.ssl.maxrecord`: plaintext bytes per TLS record (0 or absent: 16 kB).
    pub maxrecord: Option<usize>,
    /// `ssl-default-server-curves`: key exchange groups offered to servers.
    pub server_curves: Option<String>,
    /// `ssl-default-server-sigalgs`: the signature algorithms offered to servers.
    pub server_sigalgs: Option<String>,
    /// `ssl-skip-self-issued-ca`: binds leave self-issued CAs out of the chain they send.
    pub skip_self_issued_ca: bool,
    /// `issuers-chain-path`: a directory of intermediate chains completing leaf-only PEMs.
    pub issuers_chain_path: Option<PathBuf>,
    /// `ssl-default-bind-sigalgs` / `ssl-default-bind-client-sigalgs`.
    pub default_bind_sigalgs: Option<String>,
    pub default_bind_client_sigalgs: Option<String>,
    /// `tune.ssl.capture-buffer-size` (alias `tune.ssl.capture-cipherlist-size`): bytes of
    /// the ClientHello lists kept for `ssl_fc_cipherlist_*` / `ssl_fc_eclist_bin`; 0: none.
    pub capture_buffer: usize,
}

impl TlsGlobals {
    pub fn from_global(g: &Global) -> TlsGlobals {
        let arg = |kw: &str| {
            g.other
                .iter()
                .rev()
                .find(|d| d.keyword == kw)
                .and_then(|d| d.args.first().cloned())
        };
        TlsGlobals {
            crt_base: arg("crt-base").map(PathBuf::from),
            ca_base: arg("ca-base").map(PathBuf::from),
            key_base: arg("key-base").map(PathBuf::from),
            defaults: g.ssl.clone(),
            default_bind_curves: arg("ssl-default-bind-curves"),
            cachesize: g.tune.ssl_cachesize.and_then(|n| usize::try_from(n).ok()),
            lifetime_secs: g
                .tune
                .ssl_lifetime
                .and_then(|d| u32::try_from(d.as_secs()).ok()),
            server_verify_none: arg("ssl-server-verify").is_some_and(|v| v == "none"),
            maxrecord: g
                .tune
                .other
                .get("tune.ssl.maxrecord")
                .and_then(|v| v.first())
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0),
            server_curves: arg("ssl-default-server-curves"),
            server_sigalgs: arg("ssl-default-server-sigalgs"),
            skip_self_issued_ca: g
                .other
                .iter()
                .any(|d| d.keyword == "ssl-skip-self-issued-ca"),
            issuers_chain_path: arg("issuers-chain-path").map(PathBuf::from),
            default_bind_sigalgs: arg("ssl-default-bind-sigalgs"),
            default_bind_client_sigalgs: arg("ssl-default-bind-client-sigalgs"),
            capture_buffer: [
                "tune.ssl.capture-buffer-size",
                "tune.ssl.capture-cipherlist-size",
            ]
            .iter()
            .find_map(|k| g.tune.other.get(*k))
            .and_then(|v| v.first())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0),
        }
    }

    /// rustls' `max_fragment_size` for `tune.ssl.maxrecord`: rustls counts the 5-byte record
    /// header and takes 32 ..= 16389, so the plaintext per record is at most `maxrecord`
    /// (at least 27, at most 16384).
    pub fn max_fragment_size(&self) -> Option<usize> {
        const HEADER: usize = 5;
        self.maxrecord
            .map(|n| (n + HEADER).clamp(32, 16_384 + HEADER))
    }

    pub fn lifetime(&self) -> u32 {
        self.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS)
    }
}

/// Process-wide TLS state created once and shared by all shards: the ticket keys and the clock.
#[derive(Debug, Clone)]
pub struct TlsShared {
    pub ticketer: Arc<SharedTicketer>,
    pub clock: Arc<dyn TimeProvider>,
}

impl TlsShared {
    pub fn new(globals: &TlsGlobals, clock: Arc<dyn TimeProvider>) -> Result<TlsShared, TlsDiag> {
        let ticketer = SharedTicketer::new(globals.lifetime(), clock.clone())
            .map_err(|e| TlsDiag::alert(None, format!("unable to create TLS ticket keys: {e}")))?;
        Ok(TlsShared { ticketer, clock })
    }
}

/// What one policy (a `ServerConfig`) is made from.
#[derive(Debug, Clone, Default)]
struct PolicyInput {
    options: SslOptions,
    ciphers: Option<String>,
    ciphersuites: Option<String>,
    curves: Option<String>,
    alpn: Vec<String>,
    verify: Option<Verify>,
    ca_file: Option<PathBuf>,
    crl_file: Option<PathBuf>,
    ca_ignore: IgnoreErr,
    crt_ignore: IgnoreErr,
    no_ca_names: bool,
    max_fragment_size: Option<usize>,
    /// `sigalgs` / `client-sigalgs` (OpenSSL lists, see `sigalgs.rs`).
    sigalgs: Option<String>,
    client_sigalgs: Option<String>,
}

/// The certificate resolver of a policy: `sigalgs` bounds the server's signature.
fn resolver(
    index: &Arc<SniIndex>,
    sigalgs: Option<&Arc<[rustls::SignatureScheme]>>,
) -> Arc<dyn rustls::server::ResolvesServerCert> {
    match sigalgs {
        Some(allowed) => Arc::new(crate::sigalgs::SigalgsResolver {
            index: index.clone(),
            allowed: allowed.clone(),
        }),
        None => Arc::new(SniResolver(index.clone())),
    }
}

/// A built policy: the config and, when client certificates are asked for, the verifier.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub config: Arc<ServerConfig>,
    /// The same config without ALPN, for clients whose ALPN list shares nothing with ours:
    /// HAProxy (OpenSSL) then goes on without ALPN where rustls would refuse the handshake.
    pub no_alpn: Option<Arc<ServerConfig>>,
    pub verifier: Option<Arc<HaproxyClientVerifier>>,
    tickets: bool,
    /// `sigalgs`: the schemes the server may sign with (its resolver bounds them).
    sigalgs: Option<Arc<[rustls::SignatureScheme]>>,
}

impl PolicyConfig {
    /// The config for a client offering `offered` ALPN protocols (`None`: no ALPN extension).
    pub fn config_for<'a>(
        &self,
        offered: Option<impl Iterator<Item = &'a [u8]>>,
    ) -> Arc<ServerConfig> {
        match (offered, &self.no_alpn) {
            (Some(mut theirs), Some(twin)) => {
                let ours = &self.config.alpn_protocols;
                if theirs.any(|t| ours.iter().any(|o| o.as_slice() == t)) {
                    self.config.clone()
                } else {
                    twin.clone()
                }
            }
            _ => self.config.clone(),
        }
    }
}

/// The TLS of one `bind` line, built at startup; [`BindTls::for_shard`] makes the per-shard copy.
#[derive(Debug)]
pub struct BindTls {
    pub index: Arc<SniIndex>,
    policies: Vec<PolicyConfig>,
    cachesize: usize,
    lifetime_secs: u32,
    /// The bind's session cache, made by the first `for_shard` and shared by every shard:
    /// a client's next connection may land on any shard (`SO_REUSEPORT`), and HAProxy's
    /// cache is one for all threads, so `no-tls-tickets` resumption must not depend on it.
    cache: OnceLock<Arc<SessionCache>>,
    /// `tls-ticket-keys`: the file and its keys in use, and the ticketer every shard shares
    /// (made by the first `for_shard`, with the process clock).
    ticket_file: Option<(String, Vec<crate::ticket_keys::TicketKey>)>,
    ticket_keys: OnceLock<Arc<crate::ticket_keys::TicketKeys>>,
    /// `tune.ssl.capture-buffer-size`.
    capture: usize,
    /// Non-fatal findings (expired certificate, `npn` ignored...), to print as warnings.
    pub warnings: Vec<TlsDiag>,
}

/// The per-shard TLS of a bind: what a [`crate::TlsSession`] needs.
#[derive(Debug)]
pub struct ShardTls {
    pub index: Arc<SniIndex>,
    pub policies: Vec<PolicyConfig>,
    pub clock: Arc<dyn TimeProvider>,
    /// `tune.ssl.capture-buffer-size` (0: the ClientHello lists are not kept).
    pub capture: usize,
}

impl ShardTls {
    /// A copy serving `cert` wherever the certificate loaded from `file` was (`commit ssl
    /// cert`): same policies, session cache and ticket keys, a new SNI index and resolver.
    /// Handshakes already started keep the config they took. `None` when `file` is not used.
    pub fn with_cert(&self, file: &Path, cert: &Arc<LoadedCert>) -> Option<Arc<ShardTls>> {
        let index = Arc::new(self.index.replaced(file, cert)?);
        let policies = self
            .policies
            .iter()
            .map(|p| {
                let resolver = resolver(&index, p.sigalgs.as_ref());
                let swap = |config: &ServerConfig| {
                    let mut c = config.clone();
                    c.cert_resolver = resolver.clone();
                    Arc::new(c)
                };
                PolicyConfig {
                    config: swap(&p.config),
                    no_alpn: p.no_alpn.as_deref().map(swap),
                    verifier: p.verifier.clone(),
                    tickets: p.tickets,
                    sigalgs: p.sigalgs.clone(),
                }
            })
            .collect();
        Some(Arc::new(ShardTls {
            index,
            policies,
            clock: self.clock.clone(),
            capture: self.capture,
        }))
    }
}

impl BindTls {
    /// The certificates, default first.
    pub fn certificates(&self) -> impl Iterator<Item = &LoadedCert> {
        self.index.entries().iter().map(|e| e.cert.as_ref())
    }

    /// The bind's `tls-ticket-keys` ticketer (shared by its shards), if it has one.
    pub fn ticket_keys(&self, shared: &TlsShared) -> Option<Arc<crate::ticket_keys::TicketKeys>> {
        let (file, keys) = self.ticket_file.as_ref()?;
        Some(
            self.ticket_keys
                .get_or_init(|| {
                    crate::ticket_keys::TicketKeys::new(
                        file.clone(),
                        keys.clone(),
                        self.lifetime_secs,
                        shared.clock.clone(),
                    )
                })
                .clone(),
        )
    }

    /// A shard's copy: same certificates and policies, the bind's one session cache
    /// (`tune.ssl.cachesize` entries in all, as HAProxy's), the shared ticket keys (the
    /// bind's `tls-ticket-keys`, else the process's).
    pub fn for_shard(&self, shared: &TlsShared, _shards: usize) -> Arc<ShardTls> {
        let ticketer: Arc<dyn rustls::server::ProducesTickets> = match self.ticket_keys(shared) {
            Some(k) => k,
            None => shared.ticketer.clone(),
        };
        let cache = self
            .cache
            .get_or_init(|| {
                Arc::new(SessionCache::new(
                    self.cachesize,
                    self.lifetime_secs,
                    shared.clock.clone(),
                ))
            })
            .clone();
        let policies = self
            .policies
            .iter()
            .map(|p| {
                let shard_copy = |config: &ServerConfig| {
                    let mut c = config.clone();
                    c.session_storage = cache.clone();
                    if p.tickets {
                        c.ticketer = ticketer.clone();
                    }
                    c.time_provider = shared.clock.clone();
                    Arc::new(c)
                };
                PolicyConfig {
                    config: shard_copy(&p.config),
                    no_alpn: p.no_alpn.as_deref().map(shard_copy),
                    verifier: p.verifier.clone(),
                    tickets: p.tickets,
                    sigalgs: p.sigalgs.clone(),
                }
            })
            .collect();
        Arc::new(ShardTls {
            index: self.index.clone(),
            policies,
            clock: shared.clock.clone(),
            capture: self.capture,
        })
    }
}

fn bind_other<'a>(bind: &'a Bind, name: &str) -> Option<&'a str> {
    bind.other
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

/// Loads and checks everything a TLS `bind` needs. `now_unix` decides expiry warnings.
/// Every bad file is reported, not just the first.
pub fn build_bind(
    bind: &Bind,
    globals: &TlsGlobals,
    now_unix: i64,
) -> Result<BindTls, Vec<TlsDiag>> {
    let provider = provider();
    let mut diags = Diags::default();
    let base = bind_policy(bind, globals, &mut diags);
    let issuers =
        globals
            .issuers_chain_path
            .as_deref()
            .and_then(|dir| match cert::IssuerChains::load(dir) {
                Ok(i) => Some(i),
                Err(d) => {
                    diags.push(d);
                    None
                }
            });
    let mut loader = Loader {
        issuers,
        globals,
        provider: &provider,
        now_unix,
        index: SniIndex::default(),
        inputs: vec![base],
        diags,
        warnings: Vec::new(),
    };
    loader.index.strict_sni = bind.ssl.strict_sni;
    for crt in &bind.ssl.crt {
        loader.crt(crt);
    }
    for list in &bind.ssl.crt_list {
        loader.crt_list(list);
    }
    let Loader {
        index,
        inputs,
        mut diags,
        warnings,
        ..
    } = loader;
    diags.list.extend(warnings);
    if index.entries().is_empty() && !diags.has_alert() {
        diags.push(TlsDiag::alert(
            None,
            "no certificate loaded for this ssl bind",
        ));
    }
    let index = Arc::new(index);
    let mut policies = Vec::new();
    for input in &inputs {
        match build_policy(input, &index, &provider) {
            Ok(p) => policies.push(p),
            Err(d) => diags.push(d),
        }
    }
    let ticket_file = bind.ssl.ticket_keys.as_ref().and_then(|path| {
        let keys = cert::read_file(path)
            .map_err(|d| d.message)
            .and_then(|data| crate::ticket_keys::parse_file(&String::from_utf8_lossy(&data)));
        match keys {
            Ok(keys) => Some((path.display().to_string(), keys)),
            Err(e) => {
                diags.push(TlsDiag::alert(
                    Some(path),
                    format!("'tls-ticket-keys' : {e}"),
                ));
                None
            }
        }
    });
    if diags.has_alert() {
        return Err(diags.list);
    }
    Ok(BindTls {
        index,
        policies,
        cachesize: globals.cachesize.unwrap_or(DEFAULT_CACHESIZE),
        lifetime_secs: globals.lifetime(),
        cache: OnceLock::new(),
        ticket_file,
        ticket_keys: OnceLock::new(),
        capture: globals.capture_buffer,
        warnings: diags.list,
    })
}

/// The bind line's own policy over the `ssl-default-bind-*` globals.
fn bind_policy(bind: &Bind, globals: &TlsGlobals, diags: &mut Diags) -> PolicyInput {
    let ssl = &bind.ssl;
    let ca = |f: &PathBuf| cert::with_base(globals.ca_base.as_deref(), f);
    let defaults = &globals.defaults;
    let options = policy::merge_options(&defaults.bind_options, &ssl.options);
    let mut p = PolicyInput {
        no_ca_names: options.flags.iter().any(|f| f == "no-ca-names"),
        options,
        ciphers: ssl
            .ciphers
            .clone()
            .or_else(|| defaults.bind_ciphers.clone()),
        ciphersuites: ssl
            .ciphersuites
            .clone()
            .or_else(|| defaults.bind_ciphersuites.clone()),
        curves: ssl
            .curves
            .clone()
            .or_else(|| globals.default_bind_curves.clone()),
        alpn: ssl.alpn.clone(),
        verify: ssl.verify,
        ca_file: ssl.ca_file.as_ref().map(ca),
        crl_file: ssl.crl_file.as_ref().map(ca),
        max_fragment_size: globals.max_fragment_size(),
        sigalgs: bind_other(bind, "sigalgs")
            .map(str::to_string)
            .or_else(|| globals.default_bind_sigalgs.clone()),
        client_sigalgs: bind_other(bind, "client-sigalgs")
            .map(str::to_string)
            .or_else(|| globals.default_bind_client_sigalgs.clone()),
        ..PolicyInput::default()
    };
    for (name, slot) in [
        ("ca-ignore-err", &mut p.ca_ignore),
        ("crt-ignore-err", &mut p.crt_ignore),
    ] {
        if let Some(v) = bind_other(bind, name) {
            match IgnoreErr::parse(v) {
                Ok(i) => *slot = i,
                Err(e) => diags.push(TlsDiag::alert(None, format!("'{name}' : {e}"))),
            }
        }
    }
    if policy::no_flags_ignored(&p.options) {
        diags.push(TlsDiag::warning(
            None,
            "no-sslv3/no-tlsv1x are ignored for this bind. Use only 'ssl-min-ver' and 'ssl-max-ver' to fix.",
        ));
    }
    if bind_other(bind, "npn").is_some() {
        diags.push(TlsDiag::warning(
            None,
            "'npn' is ignored: rustls has no NPN (obsolete, use 'alpn')",
        ));
    }
    // On the bind line itself the keyword's status already warned; from
    // `ssl-default-bind-options` it is said here.
    let on_line = ssl.options.flags.iter().any(|f| f == "allow-0rtt");
    if !on_line && p.options.flags.iter().any(|f| f == "allow-0rtt") {
        diags.push(TlsDiag::warning(
            None,
            "'allow-0rtt' is ignored: ringlb does not accept TLS early data",
        ));
    }
    p
}

/// Loads certificates into the SNI index; policy 0 is the bind line's, crt-list lines with
/// options add theirs.
struct Loader<'a> {
    globals: &'a TlsGlobals,
    provider: &'a CryptoProvider,
    now_unix: i64,
    index: SniIndex,
    inputs: Vec<PolicyInput>,
    diags: Diags,
    warnings: Vec<TlsDiag>,
    issuers: Option<cert::IssuerChains>,
}

impl Loader<'_> {
    fn load(&mut self, path: &Path) -> Option<Arc<LoadedCert>> {
        let key_base = self.globals.key_base.as_deref();
        match cert::load_cert(
            path,
            key_base,
            self.provider,
            self.now_unix,
            &mut self.warnings,
        ) {
            Ok(mut c) => {
                if let Some(issuers) = &self.issuers {
                    issuers.complete(&mut c);
                }
                if self.globals.skip_self_issued_ca {
                    cert::skip_self_issued(&mut c);
                }
                Some(Arc::new(c))
            }
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    /// `crt FILE|DIR`.
    fn crt(&mut self, crt: &Path) {
        let path = cert::with_base(self.globals.crt_base.as_deref(), crt);
        let files = if path.is_dir() {
            match cert::dir_certs(&path) {
                Ok(f) if f.is_empty() => {
                    self.diags.push(TlsDiag::alert(
                        Some(&path),
                        "no certificate file in this directory",
                    ));
                    return;
                }
                Ok(f) => f,
                Err(d) => {
                    self.diags.push(d);
                    return;
                }
            }
        } else {
            vec![path]
        };
        for f in files {
            if let Some(c) = self.load(&f) {
                self.index.add(c, 0, &[], Vec::new());
            }
        }
    }

    /// `crt-list FILE`.
    fn crt_list(&mut self, list: &Path) {
        let crt_base = self.globals.crt_base.as_deref();
        let path = cert::with_base(crt_base, list);
        let lines = match cert::read_file(&path) {
            Ok(t) => parse_crt_list(&path, &String::from_utf8_lossy(&t)),
            Err(d) => {
                self.diags.push(d);
                return;
            }
        };
        let lines = match lines {
            Ok(l) => l,
            Err(e) => {
                self.diags.push(TlsDiag::alert(None, e));
                return;
            }
        };
        for line in lines {
            let config = if line.options.is_empty() {
                0
            } else {
                let base = self.inputs.first().cloned().unwrap_or_default();
                match line_policy(&base, &line.options, self.globals) {
                    Ok(p) => {
                        self.inputs.push(p);
                        self.inputs.len() - 1
                    }
                    Err(e) => {
                        let msg = format!("line {}: {e}", line.line);
                        self.diags.push(TlsDiag::alert(Some(&path), msg));
                        continue;
                    }
                }
            };
            if let Some(c) = self.load(&cert::with_base(crt_base, &line.crt)) {
                self.index.add(c, config, &line.filters, line.negatives);
            }
        }
    }
}

/// A crt-list line's `[options]` over the bind line's policy.
fn line_policy(
    base: &PolicyInput,
    options: &[(String, Option<String>)],
    globals: &TlsGlobals,
) -> Result<PolicyInput, String> {
    let mut p = base.clone();
    for (name, value) in options {
        let v = value.clone().unwrap_or_default();
        match name.as_str() {
            "alpn" => p.alpn = v.split(',').map(str::to_string).collect(),
            "ciphers" => p.ciphers = Some(v),
            "ciphersuites" => p.ciphersuites = Some(v),
            "curves" | "ecdhe" => p.curves = Some(v),
            "verify" => p.verify = Some(ringlb_config::parse::bind::parse_verify(&v)?),
            "ca-file" => {
                p.ca_file = Some(cert::with_base(globals.ca_base.as_deref(), Path::new(&v)))
            }
            "crl-file" => {
                p.crl_file = Some(cert::with_base(globals.ca_base.as_deref(), Path::new(&v)))
            }
            "ssl-min-ver" => {
                p.options.min_ver = Some(ringlb_config::parse::global::tls_version(&v)?)
            }
            "ssl-max-ver" => {
                p.options.max_ver = Some(ringlb_config::parse::global::tls_version(&v)?)
            }
            "no-ca-names" => p.no_ca_names = true,
            "npn" | "allow-0rtt" => {}
            other => return Err(format!("unsupported crt-list option '{other}'")),
        }
    }
    Ok(p)
}

fn build_policy(
    input: &PolicyInput,
    index: &Arc<SniIndex>,
    provider: &Arc<CryptoProvider>,
) -> Result<PolicyConfig, TlsDiag> {
    let err = |m: String| TlsDiag::alert(None, m);
    let versions = policy::versions(&input.options).map_err(err)?;
    let mut prov = (**provider).clone();
    let tls13: Vec<_> = match &input.ciphersuites {
        Some(s) => policy::parse_ciphersuites(s).map_err(err)?,
        None => policy::TLS13_SUITES.iter().map(|(_, s)| *s).collect(),
    };
    let tls12: Vec<_> = match &input.ciphers {
        Some(s) => policy::parse_ciphers(s).map_err(err)?,
        None => policy::TLS12_CIPHERS.iter().map(|c| c.suite).collect(),
    };
    prov.cipher_suites = tls13.into_iter().chain(tls12).collect();
    if let Some(c) = &input.curves {
        prov.kx_groups = policy::parse_curves(c).map_err(err)?;
    }
    let builder = ServerConfig::builder_with_provider(Arc::new(prov))
        .with_protocol_versions(&versions)
        .map_err(|e| err(format!("inconsistent TLS policy: {e}")))?;
    let sigalgs: Option<Arc<[rustls::SignatureScheme]>> = match &input.sigalgs {
        Some(s) => Some(
            crate::sigalgs::parse_sigalgs("sigalgs", s)
                .map_err(err)?
                .into(),
        ),
        None => None,
    };
    let client_sigalgs = match &input.client_sigalgs {
        Some(s) => Some(crate::sigalgs::parse_sigalgs("client-sigalgs", s).map_err(err)?),
        None => None,
    };
    let verifier = client_verifier(input, provider, client_sigalgs)?;
    let builder = match &verifier {
        Some(v) => builder.with_client_cert_verifier(v.clone() as Arc<dyn ClientCertVerifier>),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver(index, sigalgs.as_ref()));
    config.alpn_protocols = input
        .alpn
        .iter()
        .filter(|a| !a.is_empty())
        .map(|a| a.as_bytes().to_vec())
        .collect();
    config.ignore_client_order = !input
        .options
        .flags
        .iter()
        .any(|f| f == "prefer-client-ciphers");
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.max_fragment_size = input.max_fragment_size;
    let no_alpn = (!config.alpn_protocols.is_empty()).then(|| {
        let mut twin = config.clone();
        twin.alpn_protocols.clear();
        Arc::new(twin)
    });
    Ok(PolicyConfig {
        config: Arc::new(config),
        no_alpn,
        verifier,
        tickets: !input.options.no_tls_tickets,
        sigalgs,
    })
}

/// Loads a PEM file of CRLs (`crl-file`).
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsDiag> {
    let data = cert::read_file(path)?;
    let crls: Vec<CertificateRevocationListDer<'static>> =
        CertificateRevocationListDer::pem_slice_iter(&data)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsDiag::alert(Some(path), format!("bad PEM (CRL): {e}")))?;
    if crls.is_empty() {
        return Err(TlsDiag::alert(Some(path), "no CRL in this file"));
    }
    Ok(crls)
}

/// Loads a CA bundle into a root store.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsDiag> {
    let certs = cert::read_certs(path)?;
    if certs.is_empty() {
        return Err(TlsDiag::alert(Some(path), "no CA certificate in this file"));
    }
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| TlsDiag::alert(Some(path), format!("bad CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn client_verifier(
    input: &PolicyInput,
    provider: &Arc<CryptoProvider>,
    client_sigalgs: Option<Vec<rustls::SignatureScheme>>,
) -> Result<Option<Arc<HaproxyClientVerifier>>, TlsDiag> {
    let verify = input.verify.unwrap_or(Verify::None);
    if verify == Verify::None {
        return Ok(None);
    }
    let Some(ca) = &input.ca_file else {
        return Err(TlsDiag::alert(
            None,
            "verify is enabled but no CA file specified ('ca-file')",
        ));
    };
    let roots = load_roots(ca)?;
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl) = &input.crl_file {
        builder = builder.with_crls(load_crls(crl)?);
    }
    if verify == Verify::Optional {
        builder = builder.allow_unauthenticated();
    }
    if input.no_ca_names {
        builder = builder.clear_root_hint_subjects();
    }
    let inner = builder
        .build()
        .map_err(|e| TlsDiag::alert(Some(ca), format!("unable to use this CA file: {e}")))?;
    Ok(Some(Arc::new(HaproxyClientVerifier {
        inner,
        ca_ignore: input.ca_ignore.clone(),
        crt_ignore: input.crt_ignore.clone(),
        client_sigalgs,
        crl: input.crl_file.is_some(),
    })))
}

/// Current Unix time from a clock, for verify-code recomputation.
pub(crate) fn now(clock: &dyn TimeProvider) -> UnixTime {
    clock
        .current_time()
        .unwrap_or(UnixTime::since_unix_epoch(std::time::Duration::ZERO))
}
