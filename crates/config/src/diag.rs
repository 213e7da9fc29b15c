//! Diagnostics in HAProxy's shape: level, file:line, keyword and message.
//!
//! Owns: [`Diagnostic`], [`Level`], [`Diagnostics`] (a non-empty error list) and their
//! `Display`, which the CLI prints as `[ALERT]    (pid) : config : parsing [file:line] : ...`.

use std::fmt;
use std::sync::Arc;

use crate::model::Loc;

/// Severity, HAProxy's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Diag,
    Notice,
    Warning,
    Alert,
}

impl Level {
    /// HAProxy's tag including its padding, e.g. `[ALERT]   `.
    pub fn tag(self) -> &'static str {
        match self {
            Level::Alert => "[ALERT]   ",
            Level::Warning => "[WARNING] ",
            Level::Notice => "[NOTICE]  ",
            Level::Diag => "[DIAG]    ",
        }
    }
}

/// One message about the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    /// File the message is about; empty when it concerns the whole configuration.
    pub file: Arc<str>,
    /// 1-based line, 0 when not tied to a line.
    pub line: u32,
    /// The keyword being parsed (`bind`, `timeout connect`, `server`), empty when none.
    pub keyword: String,
    pub message: String,
}

impl Diagnostic {
    /// An alert at `loc`.
    pub fn alert(loc: &Loc, keyword: &str, message: impl Into<String>) -> Self {
        Self::at(Level::Alert, loc, keyword, message)
    }

    /// A warning at `loc`.
    pub fn warning(loc: &Loc, keyword: &str, message: impl Into<String>) -> Self {
        Self::at(Level::Warning, loc, keyword, message)
    }

    /// A message of any level at `loc`.
    pub fn at(level: Level, loc: &Loc, keyword: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            level,
            file: loc.file.clone(),
            line: loc.line,
            keyword: keyword.to_string(),
            message: message.into(),
        }
    }

    /// A message not tied to a file (e.g. "no configuration file").
    pub fn global(level: Level, message: impl Into<String>) -> Self {
        Diagnostic {
            level,
            file: Arc::from(""),
            line: 0,
            keyword: String::new(),
            message: message.into(),
        }
    }

    /// Location of this diagnostic.
    pub fn loc(&self) -> Loc {
        Loc {
            file: self.file.clone(),
            line: self.line,
        }
    }
}

/// Formats as HAProxy does after the `[LEVEL] (pid) : ` prefix:
/// `config : parsing [file:line] : 'keyword' : message`.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("config : ")?;
        if !self.file.is_empty() {
            write!(f, "parsing [{}:{}] : ", self.file, self.line)?;
        }
        let quoted = format!("'{}'", self.keyword);
        if !self.keyword.is_empty() && !self.message.starts_with(&quoted) {
            write!(f, "{quoted} : ")?;
        }
        f.write_str(&self.message)
    }
}

/// Everything reported by a failed load: at least one alert, plus the warnings seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// True when an alert is present.
    pub fn has_alert(&self) -> bool {
        self.items.iter().any(|d| d.level == Level::Alert)
    }

    /// Alerts only.
    pub fn alerts(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.level == Level::Alert)
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{} {}", d.level.tag(), d)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_haproxy_shape() {
        let loc = Loc {
            file: Arc::from("a.cfg"),
            line: 7,
        };
        let d = Diagnostic::alert(&loc, "bind", "missing address");
        assert_eq!(
            d.to_string(),
            "config : parsing [a.cfg:7] : 'bind' : missing address"
        );
        assert_eq!(Level::Alert.tag().len(), Level::Warning.tag().len());
        let d = Diagnostic::alert(&loc, "stick-table", "'stick-table' : missing 'type'.");
        assert_eq!(
            d.to_string(),
            "config : parsing [a.cfg:7] : 'stick-table' : missing 'type'."
        );
    }
}
