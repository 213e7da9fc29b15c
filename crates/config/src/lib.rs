//! HAProxy-compatible configuration: grammar, typed model, keyword registry, diagnostics.
//! Pure logic: no sockets, no engine.
//!
//! Pipeline: text → lexer (pest, `haproxy.pest`) → preprocessor (`.if`, `.alert`, env) →
//! section/keyword dispatch through the registry → [`model::Config`] → validation.
#![forbid(unsafe_code)]

pub mod cond;
pub mod diag;
pub mod lexer;
pub mod model;
pub mod registry;
pub mod source;
pub mod units;

use std::path::PathBuf;

pub use diag::{Diagnostic, Diagnostics, Level};
pub use model::Config;

/// A successfully loaded configuration plus the warnings/notices it produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Loads configuration files (a directory loads its `*.cfg` files in lexical order).
/// `env` resolves environment variables (pass `&|k| std::env::var(k).ok()` in production).
pub fn load(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Diagnostics> {
    let _ = (paths, env);
    Err(Diagnostics::default())
}
