//! Health check steps of the model (`http-check`, `tcp-check`).

use super::Loc;

// ---------------------------------------------------------------------------------------------
// health checks
// ---------------------------------------------------------------------------------------------

/// One `http-check` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpCheckStep {
    Connect(CheckConnect),
    Send {
        loc: Loc,
        meth: Option<String>,
        uri: Option<String>,
        ver: Option<String>,
        /// Header values are log-format strings (HAProxy 2.6).
        headers: Vec<(String, String)>,
        body: Option<String>,
        /// `uri-lf`: the URI is a log-format string.
        uri_lf: bool,
        /// `body-lf`: the body is a log-format string.
        body_lf: bool,
    },
    /// Boxed: an expect rule carries many rarely used options.
    Expect(Box<CheckExpect>),
    DisableOn404 {
        loc: Loc,
    },
    SendState {
        loc: Loc,
    },
    Comment {
        loc: Loc,
        text: String,
    },
    SetVar {
        loc: Loc,
        var: String,
        expr: String,
        op: VarOp,
    },
    /// Synthesized (ringlb extension): the guide's second `send` after an `expect` without an
    /// explicit `connect` starts a new connection.
    ImplicitConnect {
        loc: Loc,
    },
}

/// `tcp-check connect` / `http-check connect` options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckConnect {
    pub loc: Loc,
    pub port: Option<u16>,
    pub addr: Option<String>,
    pub ssl: bool,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub send_proxy: bool,
    pub linger: bool,
    /// `proto <mux>`: `h1` or `h2` for an http-check (`fcgi` is refused), `none` for a
    /// tcp-check.
    pub proto: Option<String>,
    /// `comment <msg>`: reported with the rule's failures.
    pub comment: Option<String>,
    /// `default`: the server's check settings (`port`, `addr`, `check-ssl`, `check-sni`,
    /// `check-alpn`, `check-send-proxy`) apply where the rule sets none.
    pub default: bool,
}

/// `expect [min-recv N] [comment C] [ok|error|tout-status S] [!] <match> <pattern>` (shared by
/// http-check and tcp-check; options may come before or after the match, as in HAProxy).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckExpect {
    pub loc: Loc,
    pub negate: bool,
    /// `status`, `rstatus`, `string`, `rstring`, `binary`, `rbinary`, `hdr`, `fhdr`.
    pub kind: String,
    /// The pattern as one string (for `hdr`/`fhdr`: the words after the keyword, joined with
    /// spaces, for messages; the parts are in `hdr`).
    pub pattern: String,
    pub min_recv: Option<i64>,
    /// True when written `expect body` (ringlb extension, synonym of `string`).
    pub body_synonym: bool,
    /// `comment <msg>`: appended to the failure's info (` comment: <msg>`).
    pub comment: Option<String>,
    /// `on-success` / `on-error` texts (log-format strings; only constant ones are run).
    pub on_success: Option<String>,
    pub on_error: Option<String>,
    /// `status-code <expr>`: a sample expression giving the check's code.
    pub status_code: Option<String>,
    /// `ok-status`, `error-status`, `tout-status` as written (`L7OK`, `L7RSP`, ...).
    pub ok_status: Option<String>,
    pub error_status: Option<String>,
    pub tout_status: Option<String>,
    /// `hdr`/`fhdr`: the name and value patterns.
    pub hdr: Option<CheckHdr>,
}

/// `{name|name-lf} [-m <meth>] <name> [{value|value-lf} [-m <meth>] <value>]` of an
/// `expect hdr`/`fhdr` rule; an empty method means `str`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckHdr {
    pub name_meth: String,
    pub name: String,
    pub name_lf: bool,
    pub value: Option<CheckHdrValue>,
}

/// The value part of a [`CheckHdr`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckHdrValue {
    pub meth: String,
    pub value: String,
    pub lf: bool,
}

/// One `tcp-check` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpCheckStep {
    Connect(CheckConnect),
    Send {
        loc: Loc,
        data: Vec<u8>,
    },
    SendBinary {
        loc: Loc,
        data: Vec<u8>,
    },
    /// Boxed: an expect rule carries many rarely used options.
    Expect(Box<CheckExpect>),
    Comment {
        loc: Loc,
        text: String,
    },
    SetVar {
        loc: Loc,
        var: String,
        expr: String,
        op: VarOp,
    },
    /// `send-lf` / `send-binary-lf`: a log-format string rendered at each check run
    /// (`binary`: the result is hex, decoded before sending).
    SendLf {
        loc: Loc,
        fmt: String,
        binary: bool,
    },
}

/// What a check `set-var`-family rule does with its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarOp {
    /// `set-var(<name>) <expr>`: a sample expression.
    Set,
    /// `set-var-fmt(<name>) <fmt>`: a log-format string.
    SetFmt,
    /// `unset-var(<name>)`.
    Unset,
}
