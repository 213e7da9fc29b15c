//! Check variables and log-format payloads: `tcp-check|http-check set-var(<name>) <expr>`,
//! `set-var-fmt(<name>) <fmt>`, `unset-var(<name>)`, `tcp-check send-lf`/`send-binary-lf`
//! and `http-check send` with `uri-lf`/`body-lf`/`hdr` log-format values.
//!
//! Expressions and formats are compiled once (at script build) with the rule engine of
//! `ringlb-rules` and evaluated at each check run against a [`CheckRun`]: the run's own
//! variables (reset at every run, as haproxy starts each check with empty `check.` vars) and
//! a [`CheckSource`] the driver fills with the time, the host name and the environment. There
//! is no stream behind a check: request/response fetches find nothing (empty), as in haproxy.

pub use ringlb_rules::LogFormat;
use ringlb_rules::{Ctx, Expr, Sample, SampleSource, Txn};

use crate::script::HttpRequest;

/// What the driver passes in for one check run (time, host name, environment).
#[derive(Debug, Clone, Default)]
pub struct CheckSource {
    /// Unix time in milliseconds.
    pub now_ms: i64,
    pub random: u64,
    pub hostname: Vec<u8>,
    /// The checked server's backend and name (`be_name`, `srv_name`).
    pub backend: String,
    pub server: String,
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
    fn backend_name(&self) -> Option<&str> {
        Some(&self.backend)
    }
    fn server_name(&self) -> Option<&str> {
        Some(&self.server)
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
    /// `tcp-check send-lf` (`binary` false) / `send-binary-lf` (the result is hex); `step`:
    /// the rule's number, reported when the result is not hexadecimal.
    Tcp {
        fmt: LogFormat,
        binary: bool,
        step: u32,
    },
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

/// The sample fetches a check can evaluate: no stream, no request, no connection of a
/// client (haproxy refuses most others at parse time, e.g. `fe_name`). Others are refused
/// rather than rendered empty.
const CHECK_FETCHES: &[&str] = &[
    "var",
    "str",
    "int",
    "bool",
    "bin",
    "ipv4",
    "ipv6",
    "always_true",
    "always_false",
    "env",
    "date",
    "hostname",
    "be_name",
    "srv_name",
    "rand",
];

/// What an expect rule's `on-success` / `on-error` may also read: the data received for it.
const RESPONSE_FETCHES: &[&str] = &["res.payload", "res.len"];

fn check_fetch(name: &str) -> Result<(), String> {
    if CHECK_FETCHES.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "sample fetch '{name}' is not supported by ringlb in health checks (supported: {}).",
        CHECK_FETCHES.join(", ")
    ))
}

/// The fetch of a sample expression: its text up to `(`, `,` or the end.
fn expr_fetch(text: &str) -> &str {
    let end = text.find(['(', ',', ' ', ']']).unwrap_or(text.len());
    text.get(..end).unwrap_or(text)
}

/// Checks every `%[fetch...]` of a log-format string; `%X` log variables (`%ci`, `%H`...)
/// are refused too (no log context in a check). `response`: the response fetches are allowed.
fn check_fmt_fetches(fmt: &str, response: bool) -> Result<(), String> {
    let mut rest = fmt;
    while let Some(i) = rest.find('%') {
        let after = rest.get(i + 1..).unwrap_or("");
        if let Some(r) = after.strip_prefix('%') {
            rest = r;
            continue;
        }
        let after = match after.strip_prefix('{') {
            Some(r) => r.split_once('}').map_or("", |(_, r)| r),
            None => after,
        };
        let Some(expr) = after.strip_prefix('[') else {
            let var: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            return Err(format!(
                "log-format variable '%{var}' is not supported by ringlb in health checks (use %[sample] expressions)."
            ));
        };
        let name = expr_fetch(expr);
        if !(response && RESPONSE_FETCHES.contains(&name)) {
            check_fetch(name)?;
        }
        rest = expr;
    }
    Ok(())
}

/// Compiles a log-format value (no userlists: checks have no `http_auth`).
pub fn compile_fmt(fmt: &str) -> Result<LogFormat, String> {
    check_fmt_fetches(fmt, false)?;
    LogFormat::parse(fmt, &())
}

/// Compiles an expect rule's `on-success` / `on-error` format: it may also read the data
/// received for the rule (`res.payload`, `res.len`).
pub fn compile_info_fmt(fmt: &str) -> Result<LogFormat, String> {
    check_fmt_fetches(fmt, true)?;
    LogFormat::parse(fmt, &())
}

/// A check's sample source plus the data received for the rule being judged.
struct WithPayload<'a> {
    base: &'a CheckSource,
    payload: &'a [u8],
}

impl SampleSource for WithPayload<'_> {
    fn now_ms(&self) -> i64 {
        self.base.now_ms()
    }
    fn random_u64(&self) -> u64 {
        self.base.random_u64()
    }
    fn hostname(&self) -> &[u8] {
        self.base.hostname()
    }
    fn backend_name(&self) -> Option<&str> {
        self.base.backend_name()
    }
    fn server_name(&self) -> Option<&str> {
        self.base.server_name()
    }
    fn env(&self, name: &str) -> Option<&[u8]> {
        self.base.env(name)
    }
    fn is_http(&self) -> bool {
        false
    }
    fn res_payload(&self) -> Option<&[u8]> {
        Some(self.payload)
    }
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
        // Other scopes would be shared with the traffic (proc, sess) or meaningless here;
        // ringlb keeps only the check's own variables.
        if !name.starts_with("check.") {
            return Err(format!(
                "'set-var({name})' in a health check : only the 'check.' scope is supported by ringlb."
            ));
        }
        let op = match op {
            VarOp::Set => {
                check_fetch(expr_fetch(text))?;
                VarAction::Set(Expr::parse(text, &())?)
            }
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

    /// An expect rule's `on-success` / `on-error` text over the data received for it; a C
    /// string in haproxy: it ends at the first NUL.
    pub fn render_info(&self, f: &LogFormat, src: &CheckSource, payload: &[u8]) -> String {
        let src = WithPayload { base: src, payload };
        let v = self.render_fmt(f, &src);
        let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
        String::from_utf8_lossy(v.get(..end).unwrap_or(&[])).into_owned()
    }

    fn render_fmt(&self, f: &LogFormat, src: &dyn SampleSource) -> Vec<u8> {
        f.render_http_vec(Ctx::new(src, &self.txn))
    }

    /// Renders a payload; `Err` (the check's info) when a `send-binary-lf` result is not
    /// hexadecimal.
    pub fn render(&self, p: &LfPayload, src: &dyn SampleSource) -> Result<Rendered, String> {
        match p {
            LfPayload::Tcp { fmt, binary, step } => {
                let text = self.render_fmt(fmt, src);
                let bytes = if *binary {
                    // haproxy 2.6's words (a `Layer7 invalid response`).
                    crate::expect::decode_hex(&String::from_utf8_lossy(&text)).map_err(|_| {
                        format!("tcp-check send : failed to build log-format string at step {step}")
                    })?
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

#[cfg(test)]
mod tests {
    use super::*;
    use ringlb_config::model::VarOp;

    fn step(name: &str, text: &str, op: VarOp) -> VarStep {
        VarStep::compile(name, text, op).unwrap()
    }

    fn tcp(fmt: &str, binary: bool) -> LfPayload {
        LfPayload::Tcp {
            fmt: compile_fmt(fmt).unwrap(),
            binary,
            step: 6,
        }
    }

    #[test]
    fn variables_are_set_formatted_and_unset() {
        let src = CheckSource::default();
        let mut run = CheckRun::new();
        run.apply(&step("check.x", "str(abc)", VarOp::Set), &src);
        run.apply(&step("check.n", "int(41),add(1)", VarOp::Set), &src);
        run.apply(&step("check.y", "<%[var(check.x)]>", VarOp::SetFmt), &src);
        assert_eq!(run.var("check.n"), Some(&Sample::Int(42)));
        let r = run
            .render(&tcp("%[var(check.y)] %[var(check.n)]", false), &src)
            .unwrap();
        assert_eq!(r.bytes, b"<abc> 42");
        run.apply(&step("check.x", "", VarOp::Unset), &src);
        assert_eq!(run.var("check.x"), None);
        // An unset variable renders empty (haproxy: no `-` outside logs).
        let r = run.render(&tcp("[%[var(check.x)]]", false), &src).unwrap();
        assert_eq!(r.bytes, b"[]");
        // A set-var whose expression finds nothing keeps the old value.
        run.apply(&step("check.n", "var(check.none)", VarOp::Set), &src);
        assert_eq!(run.var("check.n"), Some(&Sample::Int(42)));
        // A fresh run starts empty.
        assert_eq!(CheckRun::new().var("check.n"), None);
    }

    #[test]
    fn the_source_gives_time_host_and_environment() {
        let src = CheckSource {
            now_ms: 1_700_000_000_123,
            random: 7,
            hostname: b"lb1".to_vec(),
            backend: "be".into(),
            server: "s1".into(),
            env: vec![("ZONE".into(), b"eu".to_vec())],
        };
        let run = CheckRun::new();
        let r = run
            .render(
                &tcp(
                    "%[date] %[hostname] %[env(ZONE)] [%[env(NONE)]] %[be_name]/%[srv_name]",
                    false,
                ),
                &src,
            )
            .unwrap();
        assert_eq!(r.bytes, b"1700000000 lb1 eu [] be/s1");
    }

    #[test]
    fn binary_payloads_are_hex_decoded_and_checked() {
        let src = CheckSource::default();
        let mut run = CheckRun::new();
        run.apply(&step("check.x", "str(abc)", VarOp::Set), &src);
        let r = run
            .render(&tcp("2a%[var(check.x),hex]0d0a", true), &src)
            .unwrap();
        assert_eq!(r.bytes, b"*abc\r\n");
        assert_eq!(
            run.render(&tcp("%[var(check.x)]z", true), &src),
            Err("tcp-check send : failed to build log-format string at step 6".into())
        );
    }

    #[test]
    fn variable_names_and_expressions_are_checked_at_build() {
        assert!(VarStep::compile("x", "str(a)", VarOp::Set).is_err());
        assert!(VarStep::compile("proc.x", "str(a)", VarOp::Set).is_err());
        // Fetches that need a stream or a frontend are refused (haproxy: `fe_name` "may not
        // be reliably used here"), as are log variables.
        assert!(VarStep::compile("check.x", "req.hdr(host)", VarOp::Set).is_err());
        assert!(VarStep::compile("check.x", "%[fe_name]", VarOp::SetFmt).is_err());
        assert!(compile_fmt("a %{+Q}[src] b").is_err());
        assert!(compile_fmt("%ci").is_err());
        assert!(compile_fmt("100%% %{+Q}[var(check.x)] %[str(a),upper]").is_ok());
        assert!(VarStep::compile("check.x", "int(1),add(2)", VarOp::Set).is_ok());
        assert!(VarStep::compile("check.x", "nosuchfetch", VarOp::Set).is_err());
        assert!(VarStep::compile("check.x", "%[nosuchfetch]", VarOp::SetFmt).is_err());
    }

    #[test]
    fn http_requests_render_uri_headers_body_and_state_offset() {
        let base = HttpRequest {
            method: "POST".into(),
            uri: "/".into(),
            version: "HTTP/1.1".into(),
            headers: vec![("Host".into(), "a".into()), ("X-V".into(), String::new())],
            body: Some(String::new()),
        };
        let p = LfPayload::Http {
            base,
            uri: Some(compile_fmt("/h?x=%[var(check.x)]").unwrap()),
            headers: vec![(1, compile_fmt("%[var(check.x),upper]").unwrap())],
            body: Some(compile_fmt("b=%[var(check.x)]").unwrap()),
        };
        let src = CheckSource::default();
        let mut run = CheckRun::new();
        run.apply(&step("check.x", "str(abc)", VarOp::Set), &src);
        let r = run.render(&p, &src).unwrap();
        let want = "POST /h?x=abc HTTP/1.1\r\nhost: a\r\nx-v: ABC\r\ncontent-length: 5\r\nconnection: close\r\n\r\nb=abc";
        assert_eq!(String::from_utf8_lossy(&r.bytes), want);
        // send-state goes after the user's headers, before content-length.
        let at = r.state_offset.unwrap();
        assert!(String::from_utf8_lossy(&r.bytes[at..]).starts_with("content-length"));
    }
}
