//! Compile errors: where (the model's `Loc`), which keyword, and what, in HAProxy's words.

use ringlb_config::model::Loc;

/// A rule, ACL or expression the compiler refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub loc: Loc,
    /// The directive (`acl`, `http-request set-header`, `use_backend`, `log-format`...).
    pub keyword: String,
    pub msg: String,
}

impl CompileError {
    pub fn new(loc: &Loc, keyword: &str, msg: impl Into<String>) -> CompileError {
        CompileError {
            loc: loc.clone(),
            keyword: keyword.to_string(),
            msg: msg.into(),
        }
    }
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "parsing [{}:{}] : '{}' : {}",
            self.loc.file, self.loc.line, self.keyword, self.msg
        )
    }
}

impl std::error::Error for CompileError {}
