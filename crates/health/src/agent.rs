//! Agent-check replies, parsed as HAProxy 2.6's `tcpcheck_agent_expect_reply` does: the first
//! line (up to CR or LF), words separated by spaces, tabs or commas, case-insensitive; `#`
//! starts a description. Health words (`up`, `down`, `stopped`, `fail`), admin words
//! (`ready`, `drain`, `maint`), a weight (`N%`) and `maxconn:N` combine; the last of each
//! kind wins; the first unknown word is reported as an error.

use crate::status::{CheckResult, CheckStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentHealth {
    Up,
    Down,
    Stopped,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAdmin {
    Ready,
    Drain,
    Maint,
}

/// One parsed reply. Apply in HAProxy's order: admin state, weight, maxconn, then health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentReply {
    pub health: Option<AgentHealth>,
    pub admin: Option<AgentAdmin>,
    /// `N%` as written (relative to the server's configured weight).
    pub weight_percent: Option<String>,
    /// `maxconn:N` value as written.
    pub maxconn: Option<String>,
    /// The first word that was not understood.
    pub error: Option<String>,
    /// Text after `#`.
    pub description: String,
}

/// Parsing progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentParse {
    /// No end of line yet and the agent did not close.
    NeedMore,
    /// Closed without a complete line: `Ignoring incomplete line from agent`.
    Incomplete,
    Reply(AgentReply),
}

/// Parses what the agent sent; `closed` once it closed the connection.
pub fn parse(buf: &[u8], closed: bool) -> AgentParse {
    let Some(end) = buf.iter().position(|&c| c == b'\n' || c == b'\r') else {
        return if closed && !buf.is_empty() {
            AgentParse::Incomplete
        } else if closed {
            AgentParse::Reply(AgentReply::default())
        } else {
            AgentParse::NeedMore
        };
    };
    let line = String::from_utf8_lossy(buf.get(..end).unwrap_or(&[])).into_owned();
    AgentParse::Reply(parse_line(&line))
}

fn parse_line(line: &str) -> AgentReply {
    let mut r = AgentReply::default();
    let (words, desc) = match line.split_once('#') {
        Some((w, d)) => (w, d.trim_start_matches([' ', '\t', ','])),
        None => (line, ""),
    };
    r.description = desc.trim_start().to_string();
    for w in words.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
        let lw = w.to_ascii_lowercase();
        match lw.as_str() {
            "up" => r.health = Some(AgentHealth::Up),
            "down" => r.health = Some(AgentHealth::Down),
            "stopped" => r.health = Some(AgentHealth::Stopped),
            "fail" => r.health = Some(AgentHealth::Fail),
            "ready" => r.admin = Some(AgentAdmin::Ready),
            "drain" => r.admin = Some(AgentAdmin::Drain),
            "maint" => r.admin = Some(AgentAdmin::Maint),
            _ if w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('%') => {
                r.weight_percent = Some(w.to_string())
            }
            _ if lw.starts_with("maxconn:") => {
                r.maxconn = Some(w.get(8..).unwrap_or("").to_string())
            }
            _ => {
                if r.error.is_none() {
                    r.error = Some(w.to_string());
                }
            }
        }
    }
    r
}

/// `server_parse_weight_change_request` for an agent's `N%`: the new user weight, relative
/// to the configured (`initial`) weight, or HAProxy's error text.
pub fn weight_from_percent(percent: &str, initial: u32) -> Result<u32, &'static str> {
    // haproxy 2.6's `server_parse_weight_change_request` on a `strtol` of the word.
    if percent.is_empty() {
        return Err("Require <weight> or <weight%>.\n");
    }
    let s = percent.trim_start();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..).unwrap_or("")),
        Some(b'+') => (false, s.get(1..).unwrap_or("")),
        _ => (false, s),
    };
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("Empty weight string empty or preceded by garbage");
    }
    let (num, end) = s.split_at(digits);
    // strtol saturates; every such value is out of range below.
    let n = num.parse::<u64>().unwrap_or(u64::MAX);
    if end == "%" {
        if neg {
            return Err("Relative weight must be positive.\n");
        }
        let w = n.min(25600) * u64::from(initial) / 100;
        return Ok(u32::try_from(w.min(256)).unwrap_or(256));
    }
    if (neg && n != 0) || n > 256 {
        return Err("Absolute weight can only be between 0 and 256 inclusive.\n");
    }
    if !end.is_empty() {
        return Err("Trailing garbage in weight string");
    }
    Ok(u32::try_from(n).unwrap_or(256))
}

/// `maxconn:N`: the new maxconn or HAProxy 2.6's error text
/// (`server_parse_maxconn_change_request`, a `strtol`).
pub fn parse_maxconn(v: &str) -> Result<u32, &'static str> {
    let t = v.trim_start();
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("maxconn string empty or preceded by garbage");
    }
    if digits != body.len() {
        return Err("Trailing garbage in maxconn string");
    }
    // A negative or huge value: haproxy stores what strtol gave; none is a sane limit.
    t.parse::<u32>()
        .map_err(|_| "maxconn string empty or preceded by garbage")
}

impl AgentReply {
    /// The check result HAProxy records for this reply: health words give `Layer7 check
    /// passed` (`up`) or `Layer7 wrong status` (`down`/`stopped`/`fail`) with info
    /// `via agent : down (description)`; no health word gives `CHECKED` ("no status
    /// change"). `warning`: what the weight or maxconn change answered.
    pub fn check_result(&self, warning: Option<&str>) -> CheckResult {
        let Some(h) = self.health else {
            let mut r = CheckResult::new(CheckStatus::Checked);
            if let Some(e) = &self.error {
                r.info = Some(format!("agent reports an error : {e}"));
            } else if let Some(w) = warning.filter(|w| !w.is_empty()) {
                r.info = Some(format!("agent warns : {w}"));
            }
            return r;
        };
        let (status, word) = match h {
            AgentHealth::Up => (CheckStatus::L7Ok, "up"),
            AgentHealth::Down => (CheckStatus::L7Sts, "down"),
            AgentHealth::Stopped => (CheckStatus::L7Sts, "stopped"),
            AgentHealth::Fail => (CheckStatus::L7Sts, "fail"),
        };
        let mut msg = self.description.as_str();
        if msg.is_empty() || status == CheckStatus::L7Ok {
            msg = self
                .error
                .as_deref()
                .filter(|e| !e.is_empty())
                .or(warning.filter(|w| !w.is_empty()))
                .unwrap_or(msg);
        }
        let mut r = CheckResult::new(status);
        r.info = Some(if msg.is_empty() {
            format!("via agent : {word}")
        } else {
            format!("via agent : {word} ({msg})")
        });
        r
    }
}
