//! HAProxy-compatible configuration: grammar, typed model, keyword registry, diagnostics.
//! Pure logic: no sockets, no engine (it reads the files it is given: configs, errorfiles,
//! certificates to validate them).
//!
//! Pipeline: text → [`lexer`] (pest, `haproxy.pest`) → [`source`] (preprocessor: `.if`,
//! `.alert`, pseudo-variables) → [`parse`] (section/keyword dispatch through the registry) →
//! [`validate`] (defaults applied, references resolved) → [`model::Config`].
#![forbid(unsafe_code)]

pub mod cond;
pub mod diag;
pub mod lexer;
pub mod limits;
pub mod model;
pub mod parse;
pub mod registry;
pub mod source;
pub mod units;
pub mod validate;

use std::path::PathBuf;
use std::sync::Arc;

pub use diag::{Diagnostic, Diagnostics, Level};
pub use model::Config;
pub use registry::{compatibility_markdown, Status};

/// A successfully loaded configuration plus the warnings/notices it produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// True when at least one listener exists (an enabled frontend `bind` or a stats socket).
    /// HAProxy's `-c` exits 2 when there is none.
    pub fn has_listener(&self) -> bool {
        self.frontends
            .iter()
            .any(|f| !f.disabled && !f.binds.is_empty())
            || !self.global.stats_sockets.is_empty()
    }
}

/// Loads configuration files (a directory loads its `*.cfg` files in lexical order).
/// `env` resolves environment variables (pass `&|k| std::env::var(k).ok()` in production).
pub fn load(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Diagnostics> {
    if paths.is_empty() {
        return Err(Diagnostics {
            items: vec![Diagnostic::global(
                Level::Alert,
                "No configuration file specified.",
            )],
        });
    }
    let files = source::read_paths(paths).map_err(|d| Diagnostics { items: vec![d] })?;
    let texts: Vec<(Arc<str>, String)> = files
        .iter()
        .map(|(p, t)| (Arc::from(p.display().to_string().as_str()), t.clone()))
        .collect();
    let mut loaded = load_texts(&texts, env)?;
    loaded.config.files = files.into_iter().map(|(p, _)| p).collect();
    Ok(loaded)
}

/// Parses one configuration text (as if it were file `name`) with an empty environment.
/// The entry point of the fuzz target and of the corpus replay test.
pub fn parse_str(name: &str, text: &str) -> Result<Loaded, Diagnostics> {
    load_texts(&[(Arc::from(name), text.to_string())], &|_| None)
}

fn load_texts(
    texts: &[(Arc<str>, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Diagnostics> {
    let mut cx = parse::Cx::default();
    let mut lines = Vec::new();
    for (name, text) in texts {
        lines.extend(source::preprocess(name, text, env, &mut cx.diags));
    }
    let draft = parse::parse_lines(&lines, &mut cx);
    let mut config = validate::build(draft, &mut cx);
    config.keyword_uses = std::mem::take(&mut cx.uses);
    if cx.diags.iter().any(|d| d.level == Level::Alert) {
        return Err(Diagnostics { items: cx.diags });
    }
    Ok(Loaded {
        config,
        warnings: cx.diags,
    })
}
