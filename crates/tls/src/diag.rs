//! Diagnostics of TLS setup: alerts stop the start (`-c` exits non-zero), warnings do not.
//! Each names the file it is about, so an operator knows which PEM to fix.

use std::fmt;
use std::path::{Path, PathBuf};

use ringlb_config::diag::{Diagnostic, Level};
use ringlb_config::model::Loc;

/// How bad a [`TlsDiag`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Alert,
    Warning,
}

/// A problem found while loading certificates or mapping the TLS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDiag {
    pub severity: Severity,
    /// The certificate, key, CA or crt-list file concerned, when there is one.
    pub file: Option<PathBuf>,
    pub message: String,
}

impl TlsDiag {
    pub fn alert(file: Option<&Path>, message: impl Into<String>) -> Self {
        TlsDiag {
            severity: Severity::Alert,
            file: file.map(Path::to_path_buf),
            message: message.into(),
        }
    }

    pub fn warning(file: Option<&Path>, message: impl Into<String>) -> Self {
        TlsDiag {
            severity: Severity::Warning,
            file: file.map(Path::to_path_buf),
            message: message.into(),
        }
    }

    pub fn is_alert(&self) -> bool {
        self.severity == Severity::Alert
    }

    /// The config crate's diagnostic for the `bind`/`server` line at `loc`.
    pub fn to_diagnostic(&self, loc: &Loc, keyword: &str) -> Diagnostic {
        let level = match self.severity {
            Severity::Alert => Level::Alert,
            Severity::Warning => Level::Warning,
        };
        Diagnostic::at(level, loc, keyword, self.to_string())
    }
}

impl fmt::Display for TlsDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "'{}' : {}", p.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Collects diagnostics while a build goes on, so one run reports every bad file.
#[derive(Debug, Default)]
pub struct Diags {
    pub list: Vec<TlsDiag>,
}

impl Diags {
    pub fn push(&mut self, d: TlsDiag) {
        self.list.push(d);
    }

    pub fn has_alert(&self) -> bool {
        self.list.iter().any(TlsDiag::is_alert)
    }

    /// `Err(all)` when any alert was pushed; otherwise `Ok(value, warnings)`.
    pub fn finish<T>(self, value: T) -> Result<(T, Vec<TlsDiag>), Vec<TlsDiag>> {
        if self.has_alert() {
            Err(self.list)
        } else {
            Ok((value, self.list))
        }
    }
}
