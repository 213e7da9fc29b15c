//! Section and keyword dispatch: turns preprocessed [`Line`]s into a [`Draft`] (sections as
//! written, defaults already copied into each proxy), reporting every problem with file, line
//! and keyword. Validation across sections (references, inheritance results) is `validate`.
//!
//! Owns: [`Cx`] (diagnostics + keyword uses), [`Draft`], the section state machine.

pub mod acl;
pub mod bind;
pub mod checks;
pub mod global;
pub mod proxy;
pub mod proxy_kw;
pub mod proxy_opts;
pub mod rules;
pub mod sections;
pub mod server;

use crate::diag::Diagnostic;
use crate::model::{
    Cache, Defaults, Global, HttpErrors, KeywordUse, Loc, Mailers, Peers, Program, Resolvers, Ring,
    Userlist,
};
use crate::registry::{self, Status};
use crate::source::Line;

pub use proxy::{ProxyDraft, ProxyKind};

/// Parse result of one keyword: `Err(message)`; the caller adds file, line and keyword.
pub type R = Result<(), String>;

/// Parsing context: collected diagnostics and keyword uses.
#[derive(Debug, Default)]
pub struct Cx {
    pub diags: Vec<Diagnostic>,
    pub uses: Vec<KeywordUse>,
    /// `crt-base`/`ca-base`/`key-base` seen so far, for checking certificate paths.
    pub tls_bases: TlsBases,
}

/// Global base directories of TLS files; they apply to the lines after them, as in HAProxy.
/// The model keeps paths as written; ringlb-tls joins them again when it loads the files.
#[derive(Debug, Clone, Default)]
pub struct TlsBases {
    pub crt: Option<std::path::PathBuf>,
    pub ca: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl TlsBases {
    fn join(base: Option<&std::path::Path>, p: &str) -> std::path::PathBuf {
        match base {
            Some(b) if std::path::Path::new(p).is_relative() => b.join(p),
            _ => std::path::PathBuf::from(p),
        }
    }

    /// A `crt`/`crt-list` path under `crt-base`.
    pub fn crt(&self, p: &str) -> std::path::PathBuf {
        Self::join(self.crt.as_deref(), p)
    }

    /// A `ca-file`/`crl-file` path under `ca-base`.
    pub fn ca(&self, p: &str) -> std::path::PathBuf {
        Self::join(self.ca.as_deref(), p)
    }
}

impl Cx {
    pub fn alert(&mut self, loc: &Loc, kw: &str, msg: impl Into<String>) {
        self.diags.push(Diagnostic::alert(loc, kw, msg));
    }

    pub fn warn(&mut self, loc: &Loc, kw: &str, msg: impl Into<String>) {
        self.diags.push(Diagnostic::warning(loc, kw, msg));
    }

    /// Records a keyword occurrence; `Accepted` keywords warn why they are ignored, and
    /// `Unsupported` ones are errors. Returns false when the line must not be parsed further.
    pub fn use_kw(&mut self, loc: &Loc, name: &str, status: &Status) -> bool {
        self.uses.push(KeywordUse {
            loc: loc.clone(),
            keyword: name.to_string(),
            status: status.clone(),
        });
        match status {
            Status::Accepted { why } => {
                self.warn(loc, name, format!("accepted and ignored by ringlb: {why}"));
                true
            }
            Status::Unsupported => {
                self.alert(
                    loc,
                    name,
                    format!("HAProxy keyword '{name}' is not supported by ringlb yet"),
                );
                false
            }
            _ => true,
        }
    }
}

/// Sections as written, before cross-section validation.
#[derive(Debug, Default)]
pub struct Draft {
    pub global: Global,
    pub defaults: Vec<Defaults>,
    pub proxies: Vec<ProxyDraft>,
    pub userlists: Vec<Userlist>,
    pub peers: Vec<Peers>,
    pub resolvers: Vec<Resolvers>,
    pub http_errors: Vec<HttpErrors>,
    pub rings: Vec<Ring>,
    pub caches: Vec<Cache>,
    pub programs: Vec<Program>,
    pub mailers: Vec<Mailers>,
}

/// The section lines currently go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Current {
    None,
    Global,
    /// A `defaults` section being parsed (kept in `defaults_draft`).
    Defaults,
    Proxy(usize),
    Userlist(usize),
    Peers(usize),
    Resolvers(usize),
    HttpErrors(usize),
    Ring(usize),
    Cache(usize),
    Program(usize),
    Mailers(usize),
    /// An unsupported or broken section: its lines are skipped (the header was reported).
    Skip,
}

/// Parses all lines of all files in order.
pub fn parse_lines(lines: &[Line], cx: &mut Cx) -> Draft {
    let mut st = State {
        draft: Draft::default(),
        cur: Current::None,
        defaults_draft: None,
    };
    for line in lines {
        st.line(cx, line);
    }
    st.close_defaults();
    st.draft
}

struct State {
    draft: Draft,
    cur: Current,
    defaults_draft: Option<ProxyDraft>,
}

impl State {
    fn line(&mut self, cx: &mut Cx, line: &Line) {
        let kw = line.arg(0);
        if let Some(section) = registry::section(kw) {
            self.close_defaults();
            if cx.use_kw(&line.loc, kw, &section.status) {
                self.open_section(cx, line);
            } else {
                self.cur = Current::Skip;
            }
            return;
        }
        let d = &mut self.draft;
        match self.cur {
            Current::None => cx.diags.push(Diagnostic::alert(
                &line.loc,
                "",
                format!("unknown keyword '{kw}' out of section."),
            )),
            Current::Skip => {}
            Current::Global => global::parse(cx, &mut d.global, line),
            Current::Defaults => {
                if let Some(p) = self.defaults_draft.as_mut() {
                    proxy::parse(cx, p, line, &d.userlists);
                }
            }
            Current::Proxy(i) => {
                if let Some(p) = d.proxies.get_mut(i) {
                    proxy::parse(cx, p, line, &d.userlists);
                }
            }
            Current::Userlist(i) => sections::userlist(cx, d.userlists.get_mut(i), line),
            Current::Peers(i) => sections::peers(cx, d.peers.get_mut(i), line),
            Current::Resolvers(i) => sections::resolvers(cx, d.resolvers.get_mut(i), line),
            Current::HttpErrors(i) => sections::http_errors(cx, d.http_errors.get_mut(i), line),
            Current::Ring(i) => sections::ring(cx, d.rings.get_mut(i), line),
            Current::Cache(i) => sections::cache(cx, d.caches.get_mut(i), line),
            Current::Program(i) => sections::program(cx, d.programs.get_mut(i), line),
            Current::Mailers(i) => sections::mailers(cx, d.mailers.get_mut(i), line),
        }
    }

    /// Stores the `defaults` section being parsed.
    fn close_defaults(&mut self) {
        if let Some(p) = self.defaults_draft.take() {
            self.draft.defaults.push(Defaults {
                name: (!p.name.is_empty()).then(|| p.name.clone()),
                loc: p.loc.clone(),
                from: p.from.clone(),
                settings: p.settings,
                acls: p.acls,
                http_request: p.http_request,
                http_response: p.http_response,
                http_after_response: p.http_after_response,
                tcp_request: p.tcp_request,
            });
        }
    }

    fn open_section(&mut self, cx: &mut Cx, line: &Line) {
        let kw = line.arg(0);
        let name = line.arg(1).to_string();
        let loc = line.loc.clone();
        let d = &mut self.draft;
        self.cur = match kw {
            "global" => {
                if d.global.loc.is_none() {
                    d.global.loc = Some(loc);
                }
                Current::Global
            }
            "defaults" | "frontend" | "backend" | "listen" => {
                match proxy::open(cx, line, &d.defaults, &d.proxies) {
                    Some(p) if p.kind == ProxyKind::Defaults => {
                        self.defaults_draft = Some(p);
                        Current::Defaults
                    }
                    Some(p) => {
                        d.proxies.push(p);
                        Current::Proxy(d.proxies.len() - 1)
                    }
                    None => Current::Skip,
                }
            }
            _ => match sections::open(cx, kw, &name, &loc, d) {
                Some(c) => c,
                None => Current::Skip,
            },
        };
    }
}

/// Checks the number of arguments after a keyword of `kw_words` words.
pub fn need_args(line: &Line, kw_words: usize, min: usize, usage: &str) -> R {
    if line.len() < kw_words + min {
        return Err(format!("expects {usage}."));
    }
    Ok(())
}

/// Rejects extra arguments.
pub fn no_extra(line: &Line, max_words: usize) -> R {
    if line.len() > max_words {
        return Err(format!(
            "unexpected extra argument '{}'.",
            line.arg(max_words)
        ));
    }
    Ok(())
}

/// Largest file the configuration may make ringlb read (errorfiles, certificates): a bound so
/// that `errorfile 503 /dev/zero` fails instead of eating memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads at most [`MAX_FILE_BYTES`] of a regular file; larger or special files are errors.
pub fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("error opening file '{}' : {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("'{}' is not a regular file", path.display()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "file '{}' is too large ({} bytes, at most {MAX_FILE_BYTES})",
            path.display(),
            meta.len()
        ));
    }
    let f = std::fs::File::open(path)
        .map_err(|e| format!("error opening file '{}' : {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES)
        .read_to_end(&mut buf)
        .map_err(|e| format!("error reading file '{}' : {e}", path.display()))?;
    Ok(buf)
}

/// One registered option of a `bind` or `server` line: name, whether it takes a value, status,
/// doc line.
#[derive(Debug)]
pub struct LineOpt {
    pub name: &'static str,
    pub value: bool,
    pub status: crate::registry::Status,
    pub doc: &'static str,
}

impl LineOpt {
    pub(crate) const fn new(
        name: &'static str,
        value: bool,
        status: crate::registry::Status,
        doc: &'static str,
    ) -> LineOpt {
        LineOpt {
            name,
            value,
            status,
            doc,
        }
    }
}
