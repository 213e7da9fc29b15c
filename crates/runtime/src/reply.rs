//! What a command prints, and how the session frames it.

/// Syslog severities HAProxy tags CLI messages with (`set severity-output`).
pub mod severity {
    /// `LOG_ERR`: every `cli_err()` message.
    pub const ERR: u8 = 3;
    /// `LOG_WARNING`: address and check-port notices of `set server`.
    pub const WARNING: u8 = 4;
    /// `LOG_NOTICE`: "All sockets are already enabled." and friends.
    pub const NOTICE: u8 = 5;
    /// `LOG_INFO`: help and informational messages.
    pub const INFO: u8 = 6;
    /// Names printed by `set severity-output string`, indexed by severity.
    pub const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
}

/// The text of one command's answer, without the trailing prompt.
///
/// HAProxy prints two kinds of output: messages (`cli_msg`/`cli_err`), which get a
/// `[severity]: ` prefix when the session asked for one, and dumps (`show ...`,
/// `get weight`), which never do. `severity` is `Some` for messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Exact bytes HAProxy prints (some of its messages have no final newline).
    pub text: String,
    /// `Some(level)` for a message, `None` for a raw dump.
    pub severity: Option<u8>,
}

impl Reply {
    /// Nothing printed (the command succeeded silently).
    pub fn empty() -> Self {
        Reply::default()
    }
    /// A dump: printed as is, never prefixed.
    pub fn raw(text: impl Into<String>) -> Self {
        Reply {
            text: text.into(),
            severity: None,
        }
    }
    /// An error message (`cli_err`, severity err).
    pub fn err(text: impl Into<String>) -> Self {
        Reply {
            text: text.into(),
            severity: Some(severity::ERR),
        }
    }
    /// A message with an explicit severity (`cli_msg`).
    pub fn msg(level: u8, text: impl Into<String>) -> Self {
        Reply {
            text: text.into(),
            severity: Some(level),
        }
    }
    /// A dump from a renderer that already ends with HAProxy's blank line (the stats
    /// crate's `cli_show_stat`/`cli_show_info`): one final newline is dropped because
    /// the session writes it as the prompt.
    pub fn raw_with_blank_line(text: impl Into<String>) -> Self {
        let mut text = text.into();
        if text.ends_with("\n\n") || text == "\n" {
            text.pop();
        }
        Reply::raw(text)
    }
    /// "Permission denied\n", HAProxy's answer to a command above the session's level.
    pub fn permission_denied() -> Self {
        Reply::err("Permission denied\n")
    }
    /// True when the command failed (an error message).
    pub fn is_error(&self) -> bool {
        self.severity == Some(severity::ERR)
    }
}

/// `set severity-output` / `severity-output` bind option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeverityOutput {
    /// No prefix (default).
    #[default]
    None,
    /// `[3]: ` prefixes.
    Number,
    /// `[err]: ` prefixes.
    String,
}

impl SeverityOutput {
    /// Parses the argument of `set severity-output`.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "none" => Some(SeverityOutput::None),
            "number" => Some(SeverityOutput::Number),
            "string" => Some(SeverityOutput::String),
            _ => None,
        }
    }

    /// Appends `reply` to `out` with the prefix this mode asks for.
    pub fn write(self, reply: &Reply, out: &mut Vec<u8>) {
        if let (Some(sev), false) = (reply.severity, self == SeverityOutput::None) {
            let sev = usize::from(sev.min(7));
            match self {
                SeverityOutput::Number => out.extend_from_slice(format!("[{sev}]: ").as_bytes()),
                SeverityOutput::String => {
                    let name = severity::NAMES.get(sev).copied().unwrap_or("debug");
                    out.extend_from_slice(format!("[{name}]: ").as_bytes());
                }
                SeverityOutput::None => {}
            }
        }
        out.extend_from_slice(reply.text.as_bytes());
    }
}
