//! Keyword registry: every HAProxy keyword ringlb knows, its sections, status and doc line.
//!
//! Owns: [`Status`], the keyword tables and lookups (nearest-keyword suggestions).

/// What ringlb does with a keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Parsed into the model and implemented by the engine.
    Supported,
    /// Parsed and validated into the model; takes effect when the named issue lands.
    Parsed { when: &'static str },
    /// Meaningless for ringlb: accepted with a warning saying why.
    Accepted { why: &'static str },
    /// A HAProxy keyword ringlb rejects ("not supported by ringlb yet").
    Unsupported,
}
