//! Check variables and log-format payloads: `tcp-check|http-check set-var(<name>) <expr>`,
//! `set-var-fmt(<name>) <fmt>`, `unset-var(<name>)`, `tcp-check send-lf`/`send-binary-lf`
//! and `http-check send` with `uri-lf`/`body-lf`/`hdr` log-format values.
//!
//! Expressions and formats are compiled once (at script build) with the rule engine of
//! `ringlb-rules` and evaluated at each check run against a [`CheckRun`]: the run's own
//! variables (reset at every run, as haproxy starts each check with empty `check.` vars) and
//! a [`CheckSource`] the driver fills with the time, the host name and the environment. There
//! is no stream behind a check: request/response fetches find nothing (empty), as in haproxy.

use ringlb_rules::{Ctx, Expr, LogFormat, Sample, SampleSource, Txn};

use crate::script::HttpRequest;

/// What the driver passes in for one check run (time, host name, environment).
#[derive(Debug, Clone, Default)]
pub struct CheckSource {
    /// Unix time in milliseconds.
    pub now_ms: i64,
    pub random: u64,
    pub hostname: Vec<u8>,
    /// The process environment (`env()`), snapshot by the driver.
    pub env: Vec<(String, Vec<u8>)>,
}

impl SampleSource for CheckSource {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }
    fn random_u64(&self) -> u64 {
        self.random
    }
    fn hostname(&self) -> &[u8] {
        &self.hostname
    }
    fn env(&self, name: &str) -> Option<&[u8]> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
    fn is_http(&self) -> bool {
        false
    }
}

/// A compiled `set-var`-family rule.
#[derive(Debug, Clone)]
pub struct VarStep {
    pub name: String,
    pub op: VarAction,
}

/// What a [`VarStep`] does.
#[derive(Debug, Clone)]
pub enum VarAction {
    Set(Expr),
    SetFmt(LogFormat),
    Unset,
}

/// A payload rendered at each run.
#[derive(Debug, Clone)]
pub enum LfPayload {
    /// `tcp-check send-lf` (`binary` false) / `send-binary-lf` (the result is hex).
    Tcp { fmt: LogFormat, binary: bool },
    /// `http-check send` with log-format parts; `base` holds the constant parts.
    Http {
        base: HttpRequest,
        uri: Option<LogFormat>,
        /// (index in `base.headers`, value format).
        headers: Vec<(usize, LogFormat)>,
        body: Option<LogFormat>,
    },
}

/// A rendered payload: the bytes and, for HTTP, where `send-state` inserts its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub state_offset: Option<usize>,
}

/// Compiles a log-format value (no userlists: checks have no `http_auth`).
pub fn compile_fmt(fmt: &str) -> Result<LogFormat, String> {
    LogFormat::parse(fmt, &())
}

impl VarStep {
    /// Compiles `set-var(<name>) <expr>` (`fmt` false), `set-var-fmt` (`fmt` true) or
    /// `unset-var` (`unset`).
    pub fn compile(
        name: &str,
        text: &str,
        op: ringlb_config::model::VarOp,
    ) -> Result<Self, String> {
        use ringlb_config::model::VarOp;
        // The variable name is checked as `var()` checks it (scope and syntax).
        Expr::parse(&format!("var({name})"), &())?;
        let op = match op {
            VarOp::Set => VarAction::Set(Expr::parse(text, &())?),
            VarOp::SetFmt => VarAction::SetFmt(compile_fmt(text)?),
            VarOp::Unset => VarAction::Unset,
        };
        Ok(VarStep {
            name: name.to_string(),
            op,
        })
    }
}

/// The state of one check run: its variables.
#[derive(Debug, Default)]
pub struct CheckRun {
    txn: Txn<'static>,
}

impl CheckRun {
    pub fn new() -> CheckRun {
        CheckRun::default()
    }

    /// The value of a variable (for tests and diagnostics).
    pub fn var(&self, name: &str) -> Option<&Sample<'static>> {
        self.txn.vars.get(name)
    }

    /// Runs a variable rule. A `set-var` whose expression finds nothing leaves the variable
    /// as it was (haproxy's `set-var` semantics).
    pub fn apply(&mut self, step: &VarStep, src: &dyn SampleSource) {
        let value = match &step.op {
            VarAction::Unset => {
                self.txn.vars.unset(&step.name);
                return;
            }
            VarAction::Set(e) => e.eval(Ctx::new(src, &self.txn)).map(Sample::into_owned),
            VarAction::SetFmt(f) => {
                Some(Sample::owned(f.render_http_vec(Ctx::new(src, &self.txn))))
            }
        };
        if let Some(v) = value {
            self.txn.vars.set(&step.name, v);
        }
    }

    fn render_fmt(&self, f: &LogFormat, src: &dyn SampleSource) -> Vec<u8> {
        f.render_http_vec(Ctx::new(src, &self.txn))
    }

    /// Renders a payload; `Err` when a `send-binary-lf` result is not hexadecimal.
    pub fn render(&self, p: &LfPayload, src: &dyn SampleSource) -> Result<Rendered, String> {
        match p {
            LfPayload::Tcp { fmt, binary } => {
                let text = self.render_fmt(fmt, src);
                let bytes = if *binary {
                    crate::expect::decode_hex(&String::from_utf8_lossy(&text))?
                } else {
                    text
                };
                Ok(Rendered {
                    bytes,
                    state_offset: None,
                })
            }
            LfPayload::Http {
                base,
                uri,
                headers,
                body,
            } => {
                let text =
                    |f: &LogFormat| String::from_utf8_lossy(&self.render_fmt(f, src)).into_owned();
                let mut req = base.clone();
                if let Some(u) = uri {
                    req.uri = text(u);
                }
                for (i, f) in headers {
                    if let Some(h) = req.headers.get_mut(*i) {
                        h.1 = text(f);
                    }
                }
                if let Some(b) = body {
                    req.body = Some(text(b));
                }
                Ok(Rendered {
                    bytes: req.to_bytes(),
                    state_offset: Some(req.state_offset()),
                })
            }
        }
    }
}
