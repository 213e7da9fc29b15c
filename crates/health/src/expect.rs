//! `http-check expect` / `tcp-check expect` rules and their evaluation against the bytes
//! received so far. Pure: the driver calls [`evaluate`] after each read (and once more with
//! `closed = true` at EOF or when its buffer is full) until it gets `Pass` or `Fail`.

use regex::bytes::Regex as BytesRegex;
use regex::Regex;
use ringlb_config::model::{CheckExpect, CheckHdr};
use ringlb_rules::LogFormat;

use crate::http::{self, Parsed};
use crate::status::{CheckResult, CheckStatus};

/// How a header name or value is matched (`-m str|beg|end|sub|reg`).
#[derive(Debug, Clone)]
pub enum TextMatch {
    Str(String),
    Beg(String),
    End(String),
    Sub(String),
    Reg(Regex),
    /// `name-lf` / `value-lf`: a log-format string rendered at each evaluation, then matched
    /// with `meth` (not `reg`, as in haproxy).
    Lf {
        meth: String,
        fmt: LogFormat,
    },
}

impl TextMatch {
    /// `ignore_case`: a regex for header names matches in any case, as the other methods do.
    fn parse(meth: &str, pat: &str, ignore_case: bool) -> Result<TextMatch, String> {
        Ok(match meth {
            "" | "str" => TextMatch::Str(pat.to_string()),
            "beg" => TextMatch::Beg(pat.to_string()),
            "end" => TextMatch::End(pat.to_string()),
            "sub" => TextMatch::Sub(pat.to_string()),
            "reg" => TextMatch::Reg(
                regex::RegexBuilder::new(pat)
                    .case_insensitive(ignore_case)
                    .build()
                    .map_err(|e| format!("invalid regex '{pat}': {e}"))?,
            ),
            m => {
                return Err(format!(
                    "unknown match method '{m}' (expects str, beg, end, sub, reg)"
                ))
            }
        })
    }

    fn matches(&self, s: &str, ignore_case: bool) -> bool {
        let eq = |a: &str, b: &str| {
            if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self {
            TextMatch::Str(p) => eq(s, p),
            TextMatch::Beg(p) => s.get(..p.len()).is_some_and(|x| eq(x, p)),
            TextMatch::End(p) => {
                s.len() >= p.len() && s.get(s.len() - p.len()..).is_some_and(|x| eq(x, p))
            }
            TextMatch::Sub(p) if ignore_case => {
                s.to_ascii_lowercase().contains(&p.to_ascii_lowercase())
            }
            TextMatch::Sub(p) => s.contains(p.as_str()),
            TextMatch::Reg(r) => r.is_match(s),
            // Resolved before matching (`resolve`); unresolved, it matches nothing.
            TextMatch::Lf { .. } => false,
        }
    }

    /// The pattern to match now: a log-format one rendered, the others as they are.
    fn resolve<'a>(
        &'a self,
        received: &[u8],
        render: &RenderInfo<'_>,
    ) -> std::borrow::Cow<'a, TextMatch> {
        match self {
            TextMatch::Lf { meth, fmt } => {
                let text = render(fmt, received);
                // `reg` is refused at start: the other methods cannot fail.
                std::borrow::Cow::Owned(
                    TextMatch::parse(meth, &text, false).unwrap_or(TextMatch::Str(text)),
                )
            }
            other => std::borrow::Cow::Borrowed(other),
        }
    }
}

/// What an expect rule looks at.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// `status 200,301-399`: inclusive ranges.
    Status(Vec<(u16, u16)>),
    /// `rstatus <regex>` on the three-digit status.
    RStatus(Regex),
    /// `string` (tcp: anywhere in the data; http: in the body).
    String(Vec<u8>),
    RString(BytesRegex),
    /// `binary <hex>`: the decoded bytes anywhere in the data.
    Binary(Vec<u8>),
    /// `rbinary <regex>`: on the received bytes as upper-case hex (HAProxy's `dump_binary`).
    RBinary(Regex),
    /// `hdr name [-m m] <name> [value [-m m] <value>] [full]`; `fhdr` = full values.
    Hdr {
        name: TextMatch,
        value: Option<TextMatch>,
        full: bool,
    },
    /// `mysql-check`: the server's initial handshake (or an error packet).
    MysqlHandshake,
    /// `mysql-check` with a user: the OK packet after the handshake.
    MysqlOk,
    /// `ldap-check`: a successful LDAPv3 bind response.
    LdapBind,
    /// `string-lf <fmt>`: the rendered string anywhere in the data (http: the body).
    StringLf(LogFormat),
    /// `binary-lf <fmt>`: the rendered hexadecimal string, decoded, anywhere in the data.
    BinaryLf(LogFormat),
}

/// Where a result's `info` text comes from (`on-error`/`on-success` of a tcp-check rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoFrom {
    Text(String),
    /// `%[res.payload(offset,0)]` with `ltrim(' ')` and `cut_crlf` when set.
    Payload {
        offset: usize,
        ltrim_space: bool,
        cut_crlf: bool,
    },
}

impl InfoFrom {
    fn render(&self, data: &[u8]) -> String {
        match self {
            InfoFrom::Text(t) => t.clone(),
            InfoFrom::Payload {
                offset,
                ltrim_space,
                cut_crlf,
            } => {
                let mut v = data.get(*offset..).unwrap_or(&[]);
                if *ltrim_space {
                    while let Some((b' ', rest)) = v.split_first() {
                        v = rest;
                    }
                }
                // The info is a C string: it ends at the first NUL.
                let nul = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                v = v.get(..nul).unwrap_or(&[]);
                if *cut_crlf {
                    let end = v
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(v.len());
                    v = v.get(..end).unwrap_or(&[]);
                }
                String::from_utf8_lossy(v).into_owned()
            }
        }
    }
}

/// How a check rule reports: `ok-status`, `error-status`, `tout-status` from the config; the
/// canned checks also set `on-error`, `on-success`, `status-code` (which the config model
/// does not carry yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reporting {
    /// Status on failure (default `Layer7 invalid response`).
    pub error_status: Option<CheckStatus>,
    /// Status on success (default `Layer7 check passed`).
    pub ok_status: Option<CheckStatus>,
    /// Status on timeout (default `Layer7 timeout`).
    pub timeout_status: Option<CheckStatus>,
    pub on_error: Option<InfoFrom>,
    pub on_success: Option<InfoFrom>,
    /// `status-code res.payload(N,3)`: the code is the three digits at this offset.
    pub status_code_at: Option<usize>,
}

/// One expect rule.
#[derive(Debug, Clone)]
pub struct ExpectRule {
    /// `!`: the rule passes when the match fails.
    pub negate: bool,
    pub matcher: Matcher,
    /// `min-recv N`: evaluate once N bytes are in (else when no more can come).
    pub min_recv: Option<usize>,
    /// 1-based rule number in the check sequence (for messages).
    pub step: u32,
    /// The pattern as written (for messages).
    pub pattern: String,
    /// `http-check disable-on-404` applies (HTTP rules only).
    pub disable_on_404: bool,
    pub reporting: Reporting,
    /// The `tcp-check comment` right before this rule (` comment: '...'` in messages).
    pub comment: Option<String>,
    /// `on-success` / `on-error` log-format strings, rendered by the driver
    /// ([`crate::lf::CheckRun::render_info`]) over the data received for the rule.
    pub on_success_fmt: Option<LogFormat>,
    pub on_error_fmt: Option<LogFormat>,
    /// `status-code <expr>` (as `%[expr]`): the check's code, pass or fail.
    pub status_code_fmt: Option<LogFormat>,
}

/// The verdict on what was received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectOutcome {
    /// Matched; the result reported if this is the last rule.
    Pass(CheckResult),
    Fail(CheckResult),
    NeedMore,
}

fn regex(p: &str) -> Result<Regex, String> {
    Regex::new(p).map_err(|e| format!("invalid regex '{p}': {e}"))
}

/// Decodes `send-binary`/`expect binary` hex (`"2a310d0a"`).
pub fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(format!("'{s}' is not an even-length hexadecimal string."));
    }
    bytes
        .chunks_exact(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16);
            let lo = (p[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => Err(format!("'{s}' is not a hexadecimal string.")),
            }
        })
        .collect()
}

fn parse_status_list(p: &str) -> Result<Vec<(u16, u16)>, String> {
    p.split([',', ' '])
        .filter(|x| !x.is_empty())
        .map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let n = |x: &str| {
                x.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("invalid status code '{part}'"))
            };
            Ok((n(a)?, n(b)?))
        })
        .collect()
}

fn hdr_matcher(h: &CheckHdr, full: bool) -> Result<Matcher, String> {
    let pat = |meth: &str, p: &str, lf: bool, ignore_case: bool| {
        if !lf {
            return TextMatch::parse(meth, p, ignore_case);
        }
        if meth == "reg" {
            return Err(
                "'name-lf' / 'value-lf' cannot be used with the regex matching method".into(),
            );
        }
        Ok(TextMatch::Lf {
            meth: meth.to_string(),
            fmt: crate::lf::compile_info_fmt(p)?,
        })
    };
    Ok(Matcher::Hdr {
        name: pat(&h.name_meth, &h.name, h.name_lf, true)?,
        value: h
            .value
            .as_ref()
            .map(|v| pat(&v.meth, &v.value, v.lf, false))
            .transpose()?,
        full,
    })
}

/// An `on-success`/`on-error` text without `%`: a constant.
fn constant_text(t: &Option<String>) -> Option<InfoFrom> {
    t.as_ref()
        .filter(|v| !v.contains('%'))
        .map(|v| InfoFrom::Text(v.clone()))
}

/// An `on-success`/`on-error` log-format string (the driver renders it: it needs the run's
/// variables and the data received).
fn info_format(t: &Option<String>) -> Result<Option<LogFormat>, String> {
    match t {
        Some(v) if v.contains('%') => crate::lf::compile_info_fmt(v).map(Some),
        _ => Ok(None),
    }
}

/// `L7OK`, `L7RSP`, ... (the names `ok-status`, `error-status`, `tout-status` take).
fn status_named(name: &Option<String>) -> Result<Option<CheckStatus>, String> {
    let Some(n) = name else { return Ok(None) };
    let st = [
        CheckStatus::L4Ok,
        CheckStatus::L4Timeout,
        CheckStatus::L4Con,
        CheckStatus::L6Ok,
        CheckStatus::L6Timeout,
        CheckStatus::L6Rsp,
        CheckStatus::L7Timeout,
        CheckStatus::L7Rsp,
        CheckStatus::L7Ok,
        CheckStatus::L7OkCond,
        CheckStatus::L7Sts,
    ]
    .into_iter()
    .find(|s| s.short_name() == n)
    .ok_or_else(|| format!("unknown check status '{n}'"))?;
    Ok(Some(st))
}

impl ExpectRule {
    /// From the model; `step` is the rule's 1-based position in its sequence.
    pub fn from_model(e: &CheckExpect, step: u32) -> Result<ExpectRule, String> {
        let p = e.pattern.as_str();
        let matcher = match e.kind.as_str() {
            "status" => Matcher::Status(parse_status_list(p)?),
            "rstatus" => Matcher::RStatus(regex(p)?),
            "string" => Matcher::String(p.as_bytes().to_vec()),
            "rstring" => Matcher::RString(
                BytesRegex::new(p).map_err(|e| format!("invalid regex '{p}': {e}"))?,
            ),
            "binary" => Matcher::Binary(decode_hex(p)?),
            "rbinary" => Matcher::RBinary(regex(p)?),
            "string-lf" => Matcher::StringLf(crate::lf::compile_info_fmt(p)?),
            "binary-lf" => Matcher::BinaryLf(crate::lf::compile_info_fmt(p)?),
            "hdr" | "fhdr" => match &e.hdr {
                Some(h) => hdr_matcher(h, e.kind == "fhdr")?,
                None => return Err(format!("'{}' without a name pattern", e.kind)),
            },
            k => {
                return Err(format!(
                    "expect '{k}' is not supported (log-format patterns need the sample engine)"
                ))
            }
        };
        Ok(ExpectRule {
            negate: e.negate,
            matcher,
            min_recv: e.min_recv.and_then(|m| usize::try_from(m).ok()),
            step,
            pattern: e.pattern.clone(),
            disable_on_404: false,
            reporting: Reporting {
                ok_status: status_named(&e.ok_status)?,
                error_status: status_named(&e.error_status)?,
                timeout_status: status_named(&e.tout_status)?,
                on_success: constant_text(&e.on_success),
                on_error: constant_text(&e.on_error),
                ..Reporting::default()
            },
            comment: e.comment.clone(),
            on_success_fmt: info_format(&e.on_success)?,
            on_error_fmt: info_format(&e.on_error)?,
            // Rendered as text, then read as an integer (haproxy fetches it as a string).
            status_code_fmt: e
                .status_code
                .as_ref()
                .map(|x| crate::lf::compile_info_fmt(&format!("%[{x}]")))
                .transpose()?,
        })
    }

    /// A rule built in code (canned checks).
    pub fn new(matcher: Matcher, pattern: &str) -> ExpectRule {
        ExpectRule {
            negate: false,
            matcher,
            min_recv: None,
            step: 0,
            pattern: pattern.into(),
            disable_on_404: false,
            reporting: Reporting::default(),
            comment: None,
            on_success_fmt: None,
            on_error_fmt: None,
            status_code_fmt: None,
        }
    }

    /// Whether the rule renders log-format strings (the driver then builds a full sample
    /// source: host name, environment, names).
    pub fn uses_lf(&self) -> bool {
        let lf = |t: &TextMatch| matches!(t, TextMatch::Lf { .. });
        self.on_success_fmt.is_some()
            || self.on_error_fmt.is_some()
            || self.status_code_fmt.is_some()
            || match &self.matcher {
                Matcher::StringLf(_) | Matcher::BinaryLf(_) => true,
                Matcher::Hdr { name, value, .. } => lf(name) || value.as_ref().is_some_and(lf),
                _ => false,
            }
    }

    /// The code `status-code` gives for the data received, if the rule has one.
    fn code_from(&self, received: &[u8], render: &RenderInfo<'_>) -> Option<Option<u16>> {
        let f = self.status_code_fmt.as_ref()?;
        Some(render(f, received).trim().parse::<u16>().ok())
    }

    fn is_http(&self) -> bool {
        matches!(
            self.matcher,
            Matcher::Status(_) | Matcher::RStatus(_) | Matcher::Hdr { .. }
        )
    }

    /// The kind word as written (`string`, `rbinary`, ...), for messages.
    pub fn kind(&self) -> &'static str {
        match self.matcher {
            Matcher::Status(_) => "status",
            Matcher::RStatus(_) => "rstatus",
            Matcher::String(_) => "string",
            Matcher::RString(_) => "rstring",
            Matcher::Binary(_) => "binary",
            Matcher::RBinary(_) => "rbinary",
            Matcher::Hdr { .. } => "hdr",
            Matcher::StringLf(_) => "string-lf",
            Matcher::BinaryLf(_) => "binary-lf",
            Matcher::MysqlHandshake | Matcher::MysqlOk | Matcher::LdapBind => "custom",
        }
    }

    /// The result when the check times out waiting on this rule (`Layer7 timeout, info:
    /// " at step 3 of tcp-check (expect string 'never')"` for tcp-check rules).
    pub fn timeout_result(&self, tcp_check: bool) -> CheckResult {
        let mut r = CheckResult::new(
            self.reporting
                .timeout_status
                .unwrap_or(CheckStatus::L7Timeout),
        );
        if tcp_check && self.reporting.timeout_status.is_none() {
            r.info = Some(self.step_suffix());
        }
        r
    }

    /// `" at step 2 of tcp-check (expect string '+PONG')"` (and the rule's comment): how a
    /// user tcp-check ruleset names this rule after a timeout or a socket error.
    fn step_suffix(&self) -> String {
        let mut info = format!(
            " at step {} of tcp-check (expect {} '{}')",
            self.step,
            self.kind(),
            self.pattern
        );
        if let Some(c) = &self.comment {
            info.push_str(&format!(" comment: '{c}'"));
        }
        info
    }

    /// A socket error (`error`: its `strerror` text, e.g. `Connection reset by peer`) while
    /// this rule waited for `received`. haproxy 2.6's `tcpcheck_eval_recv` reports the error
    /// only when its buffer holds nothing: `Socket error, info: "Connection reset by peer"`
    /// (with the step for a user tcp-check ruleset). An HTTP check's buffer holds the
    /// response once its head is complete (the H1 mux keeps a partial head to itself).
    /// `None`: data was there; the rule is judged on it as after a close (the server's RST
    /// often comes right after its last bytes).
    pub fn read_error(
        &self,
        received: &[u8],
        http_check: bool,
        tcp_check: bool,
        error: &str,
    ) -> Option<CheckResult> {
        let empty = if http_check {
            http::parse(received, false) == Parsed::NeedMore
        } else {
            received.is_empty()
        };
        if !empty {
            return None;
        }
        let suffix = if tcp_check {
            self.step_suffix()
        } else {
            String::new()
        };
        Some(socket_error(error, &suffix))
    }
}

/// `Socket error, info: "<strerror><where>"`: an I/O error on an established check
/// connection (haproxy 2.6's `chk_report_conn_err`, `HCHK_STATUS_SOCKERR`).
pub fn socket_error(error: &str, where_: &str) -> CheckResult {
    let mut r = CheckResult::new(CheckStatus::SockErr);
    let info = format!("{error}{where_}");
    r.info = Some(info).filter(|i| !i.is_empty());
    r
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn upper_hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

/// Renders an `on-success` / `on-error` log-format string over the data received.
pub type RenderInfo<'a> = dyn Fn(&LogFormat, &[u8]) -> String + 'a;

/// Evaluates `rule` on `received` (everything read on this connection since the last send).
/// `closed`: no more data will come (EOF, or the driver's buffer is full). Log-format
/// `on-success` / `on-error` texts render empty: see [`evaluate_with`].
pub fn evaluate(
    rule: &ExpectRule,
    received: &[u8],
    closed: bool,
    http_check: bool,
) -> ExpectOutcome {
    evaluate_with(rule, received, closed, http_check, &|_, _| String::new())
}

/// [`evaluate`], with the driver's renderer for the rule's log-format `on-success` /
/// `on-error` (it holds the run's variables and sample source).
pub fn evaluate_with(
    rule: &ExpectRule,
    received: &[u8],
    closed: bool,
    http_check: bool,
    render: &RenderInfo<'_>,
) -> ExpectOutcome {
    if http_check {
        return evaluate_http(rule, received, closed, render);
    }
    // haproxy 2.6's `tcpcheck_eval_recv`: the peer closed before sending anything (before
    // any rule, the protocol checks' own included, looks at the data).
    if closed && received.is_empty() {
        let mut r = CheckResult::new(rep_error(rule));
        let mut info = format!("TCPCHK got an empty response at step {}", rule.step);
        if let Some(c) = &rule.comment {
            info.push_str(&format!(" comment: '{c}'"));
        }
        r.info = Some(info);
        return ExpectOutcome::Fail(r);
    }
    match rule.matcher {
        Matcher::MysqlHandshake => return crate::canned::mysql_packet(received, 0, closed),
        Matcher::MysqlOk => return crate::canned::mysql_ok(received, closed),
        Matcher::LdapBind => return crate::canned::ldap_bind_response(received, closed),
        _ => {}
    }
    // A log-format pattern is rendered for each evaluation (it may read variables).
    let rendered = lf_pattern(&rule.matcher, received, render);
    if !closed {
        // An exact pattern cannot match fewer bytes than it has; `min-recv` asks for more.
        let short = match (&rule.matcher, &rendered) {
            (Matcher::String(p) | Matcher::Binary(p), _) | (_, Some(Some(p))) => {
                received.len() < p.len()
            }
            _ => false,
        };
        if short || rule.min_recv.is_some_and(|m| received.len() < m) {
            return ExpectOutcome::NeedMore;
        }
    }
    let matched = match (&rule.matcher, &rendered) {
        (Matcher::String(s) | Matcher::Binary(s), _) | (_, Some(Some(s))) => find(received, s),
        (Matcher::RString(r), _) => r.is_match(received),
        (Matcher::RBinary(r), _) => r.is_match(&upper_hex(received)),
        _ => false,
    };
    if !matched && !closed && rule.min_recv.is_none() {
        return ExpectOutcome::NeedMore;
    }
    let rep = &rule.reporting;
    let code = rep.status_code_at.and_then(|at| {
        let digits = received.get(at..at + 3)?;
        std::str::from_utf8(digits).ok()?.parse::<u16>().ok()
    });
    let code = rule.code_from(received, render).unwrap_or(code);
    if matched != rule.negate {
        let mut r = CheckResult::new(rep.ok_status.unwrap_or(CheckStatus::L7Ok));
        r.code = code;
        r.info = success_info(rule, received, render);
        return ExpectOutcome::Pass(r);
    }
    let mut r = CheckResult::new(rep_error(rule));
    r.code = code;
    r.info = Some(match (&rule.on_error_fmt, &rep.on_error) {
        (Some(f), _) => with_comment(render(f, received), rule),
        (None, Some(i)) => with_comment(i.render(received), rule),
        (None, None) => tcp_mismatch_text(rule, matched),
    });
    ExpectOutcome::Fail(r)
}

/// The bytes a `string-lf` / `binary-lf` pattern stands for now: `None` for other rules,
/// `Some(None)` for a `binary-lf` that is not hexadecimal (it matches nothing).
fn lf_pattern(m: &Matcher, received: &[u8], render: &RenderInfo<'_>) -> Option<Option<Vec<u8>>> {
    match m {
        Matcher::StringLf(f) => Some(Some(render(f, received).into_bytes())),
        Matcher::BinaryLf(f) => Some(decode_hex(&render(f, received)).ok()),
        _ => None,
    }
}

/// The `on-success` text of a passing rule, if it has one.
fn success_info(rule: &ExpectRule, received: &[u8], render: &RenderInfo<'_>) -> Option<String> {
    match &rule.on_success_fmt {
        Some(f) => Some(render(f, received)),
        None => rule
            .reporting
            .on_success
            .as_ref()
            .map(|i| i.render(received)),
    }
}

fn rep_error(rule: &ExpectRule) -> CheckStatus {
    rule.reporting.error_status.unwrap_or(CheckStatus::L7Rsp)
}

/// `TCPCHK did not match content '+PONG' at step 2` (captured from haproxy 2.6).
fn tcp_mismatch_text(rule: &ExpectRule, matched: bool) -> String {
    let what = if matched {
        "TCPCHK matched unwanted content"
    } else {
        "TCPCHK did not match content"
    };
    let detail = match rule.matcher {
        Matcher::String(_) => format!(" '{}'", rule.pattern),
        Matcher::Binary(_) => " (binary)".into(),
        Matcher::RBinary(_) => " (binary regex)".into(),
        Matcher::StringLf(_) => " (log-format string)".into(),
        Matcher::BinaryLf(_) => " (log-format binary)".into(),
        _ => " (regex)".into(),
    };
    with_comment(format!("{what}{detail} at step {}", rule.step), rule)
}

fn evaluate_http(
    rule: &ExpectRule,
    received: &[u8],
    closed: bool,
    render: &RenderInfo<'_>,
) -> ExpectOutcome {
    let resp = match http::parse(received, closed) {
        Parsed::NeedMore => return ExpectOutcome::NeedMore,
        // haproxy 2.6 gives no info text for an unparsable response (a TLS alert, a bad
        // status line, non-HTTP bytes: recorded).
        Parsed::Invalid => return ExpectOutcome::Fail(CheckResult::new(CheckStatus::L7Rsp)),
        Parsed::Response(r) => r,
    };
    if !rule.is_http() && !resp.complete {
        return ExpectOutcome::NeedMore;
    }
    let status_ok = |r: &http::Response<'_>| {
        let mut res = CheckResult::new(rule.reporting.ok_status.unwrap_or(CheckStatus::L7Ok));
        res.code = Some(r.status);
        res.info = success_info(rule, received, render);
        if let Some(c) = rule.code_from(received, render) {
            res.code = c;
        }
        if rule.disable_on_404 && r.status == 404 {
            res.status = CheckStatus::L7OkCond;
        }
        res
    };
    if rule.disable_on_404 && resp.status == 404 {
        return ExpectOutcome::Pass(status_ok(&resp));
    }
    // A body rule (negated or not) fails on an empty body (haproxy 2.6, recorded).
    let body_rule = matches!(
        rule.matcher,
        Matcher::String(_)
            | Matcher::RString(_)
            | Matcher::Binary(_)
            | Matcher::RBinary(_)
            | Matcher::StringLf(_)
            | Matcher::BinaryLf(_)
    );
    if body_rule && resp.body.is_empty() {
        let mut r = CheckResult::new(rule.reporting.error_status.unwrap_or(CheckStatus::L7Rsp));
        r.info = Some(with_comment(
            "HTTP content check could not find a response body".into(),
            rule,
        ));
        return ExpectOutcome::Fail(r);
    }
    let matched = match &rule.matcher {
        Matcher::Status(ranges) => ranges.iter().any(|(a, b)| (*a..=*b).contains(&resp.status)),
        Matcher::RStatus(r) => r.is_match(&resp.status.to_string()),
        Matcher::String(s) => find(&resp.body, s),
        Matcher::RString(r) => r.is_match(&resp.body),
        Matcher::Binary(s) => find(&resp.body, s),
        Matcher::RBinary(r) => r.is_match(&upper_hex(&resp.body)),
        Matcher::Hdr { name, value, full } => {
            let name = name.resolve(received, render);
            let value = value.as_ref().map(|v| v.resolve(received, render));
            hdr_match(&resp, &name, value.as_deref(), *full)
        }
        Matcher::StringLf(_) | Matcher::BinaryLf(_) => {
            match lf_pattern(&rule.matcher, received, render) {
                Some(Some(p)) => find(&resp.body, &p),
                _ => false,
            }
        }
        Matcher::MysqlHandshake | Matcher::MysqlOk | Matcher::LdapBind => false,
    };
    if matched != rule.negate {
        return ExpectOutcome::Pass(status_ok(&resp));
    }
    ExpectOutcome::Fail(http_failure(rule, &resp, matched, received, render))
}

/// Status and header rules fail with `Layer7 wrong status`, the code and the reason phrase;
/// body rules with `Layer7 invalid response` (texts captured from haproxy 2.6).
/// `error-status` replaces the status; the rule's `comment` is appended to the info.
fn http_failure(
    rule: &ExpectRule,
    resp: &http::Response<'_>,
    matched: bool,
    received: &[u8],
    render: &RenderInfo<'_>,
) -> CheckResult {
    let mut r = CheckResult::new(CheckStatus::L7Sts);
    r.code = Some(resp.status);
    let info = match rule.matcher {
        Matcher::Status(_) | Matcher::RStatus(_) | Matcher::Hdr { .. } => resp.reason.to_string(),
        _ => {
            r.status = CheckStatus::L7Rsp;
            let text = if matched {
                "HTTP check matched unwanted content"
            } else {
                "HTTP content check did not match"
            };
            text.into()
        }
    };
    if let Some(st) = rule.reporting.error_status {
        r.status = st;
    }
    if !r.status.shows_code() {
        r.code = None;
    }
    // `on-error` replaces the reason (haproxy's `tcpcheck_expect_onerror_message`).
    let info = match (&rule.on_error_fmt, &rule.reporting.on_error) {
        (Some(f), _) => render(f, received),
        (None, Some(i)) => i.render(received),
        (None, None) => info,
    };
    if let Some(c) = rule.code_from(received, render) {
        r.code = c.filter(|_| r.status.shows_code());
    }
    r.info = Some(with_comment(info, rule));
    r
}

/// An expect failure's info followed by the rule's comment (` comment: <text>`, unquoted:
/// haproxy 2.6's `tcpcheck_expect_onerror_message`).
fn with_comment(mut info: String, rule: &ExpectRule) -> String {
    if let Some(c) = &rule.comment {
        info.push_str(" comment: ");
        info.push_str(c);
    }
    info
}

fn hdr_match(
    resp: &http::Response<'_>,
    name: &TextMatch,
    value: Option<&TextMatch>,
    full: bool,
) -> bool {
    resp.headers
        .iter()
        .filter(|(n, _)| name.matches(n, true))
        .any(|(_, v)| {
            let Some(vm) = value else { return true };
            let v = String::from_utf8_lossy(v);
            if full {
                vm.matches(v.trim(), false)
            } else {
                v.split(',').any(|part| vm.matches(part.trim(), false))
            }
        })
}
