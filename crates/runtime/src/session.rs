//! One runtime-socket connection as a sans-IO state machine, framed as HAProxy 2.6's CLI:
//!
//! ```text
//!   bytes ──feed()──▶ split on unescaped '\n' or ';' (strip '\r')
//!                       │ line ends with "<<" ─▶ payload mode: collect lines until an empty one
//!                       ▼
//!                     tokenize (spaces/tabs, '\' escapes) ─▶ keyword table lookup
//!                       │ unknown ─▶ usage message      │ level too low ─▶ "Permission denied"
//!                       ▼
//!   session commands (help, prompt, quit, user, operator, set severity-output,
//!   set timeout cli, show cli level) ─▶ Request::Reply
//!   everything else ─▶ Request::Run(Pending) ─▶ control shard ─▶ Pending::respond(Reply)
//!
//!   render(): reply text (with "[sev]: " prefix for messages when asked) then the prompt:
//!   "\n" in one-shot mode, "\n> " in prompt mode, "+ " while reading a payload interactively.
//!   One-shot mode closes once a command ran and no bytes are left; prompt mode on "quit".
//! ```

use crate::command::{self, Command};
use crate::reply::{Reply, SeverityOutput};
use crate::table::{self, Kw, Level};

/// HAProxy's default `tune.bufsize`: a request line must fit in it.
pub const DEFAULT_BUFSIZE: usize = 16384;
/// HAProxy's `MAX_CLI_ARGS`: words after this are ignored.
pub const MAX_CLI_ARGS: usize = 64;
const PAYLOAD_PATTERN: &str = "<<";

/// What the server loop must do, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Write this (render it with [`CliSession::render`]).
    Reply(Response),
    /// Run this command on the control shard, then `render(&pending.respond(reply))`.
    Run(Pending),
    /// Flush what was rendered, then close the connection. Nothing follows.
    Close,
}

/// Framing of one answer, captured when its command was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    severity: SeverityOutput,
    trailer: &'static str,
}

/// A command waiting for its reply.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    /// The command to run.
    pub command: Command,
    /// Session level when it was read (already checked against the command).
    pub level: Level,
    /// The words as typed, keyword included (for owners that parse their own arguments,
    /// like the stats and stick-table crates).
    pub words: Vec<String>,
    keyword_len: usize,
    frame: Frame,
}

impl Pending {
    /// The words after the keyword (`show stat typed` → `["typed"]`).
    pub fn args(&self) -> Vec<&str> {
        self.words
            .iter()
            .skip(self.keyword_len)
            .map(String::as_str)
            .collect()
    }

    /// Attaches the control shard's reply; render the result.
    pub fn respond(self, reply: Reply) -> Response {
        Response {
            reply,
            frame: self.frame,
        }
    }
}

/// A reply with its framing, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The text.
    pub reply: Reply,
    frame: Frame,
}

/// Session limits.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Longest request line (and payload) in bytes, as HAProxy's bufsize minus one.
    pub bufsize: usize,
    /// Initial `severity-output` of the socket.
    pub severity: SeverityOutput,
    /// Most requests one `feed` returns; the rest stays buffered until the caller has
    /// written the output and calls `feed(&[])` again (see
    /// [`CliSession::has_buffered_commands`]). Bounds the output one read can cause
    /// (16 KB of `;` would otherwise ask for 16 K usage messages at once).
    pub max_requests_per_feed: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            bufsize: DEFAULT_BUFSIZE,
            severity: SeverityOutput::None,
            max_requests_per_feed: 64,
        }
    }
}

/// State of one CLI connection.
#[derive(Debug)]
pub struct CliSession {
    level: Level,
    prompt: bool,
    severity: SeverityOutput,
    timeout_cli_secs: Option<u32>,
    max_line: usize,
    max_requests: usize,
    buf: Vec<u8>,
    /// Words of a `... <<` line and the payload gathered so far.
    payload: Option<(Vec<String>, String)>,
    closed: bool,
}

impl CliSession {
    /// A new connection on a socket of level `level`.
    pub fn new(level: Level, config: SessionConfig) -> Self {
        CliSession {
            level,
            prompt: false,
            severity: config.severity,
            timeout_cli_secs: None,
            max_line: config.bufsize.saturating_sub(1).max(1),
            max_requests: config.max_requests_per_feed.max(1),
            buf: Vec::new(),
            payload: None,
            closed: false,
        }
    }

    /// Current level (lowered by `user`/`operator`).
    pub fn level(&self) -> Level {
        self.level
    }

    /// Interactive mode (`prompt`): the connection stays open between commands.
    pub fn interactive(&self) -> bool {
        self.prompt
    }

    /// Idle timeout set by `set timeout cli <secs>` (`None`: the socket's `stats timeout`).
    pub fn timeout_cli_secs(&self) -> Option<u32> {
        self.timeout_cli_secs
    }

    /// True once [`Request::Close`] was returned; later input is ignored.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Takes received bytes; returns what to do, in order (at most
    /// `max_requests_per_feed` requests). Never panics.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Request> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        self.buf.extend_from_slice(bytes);
        while !self.closed && out.len() < self.max_requests {
            if !self.step(&mut out) {
                break;
            }
        }
        out
    }

    /// True when complete commands wait in the buffer (a `feed` hit its request limit):
    /// write the output, then call `feed(&[])` again before reading more.
    pub fn has_buffered_commands(&self) -> bool {
        !self.closed && find_line_end(&self.buf, self.payload.is_none()).is_some()
    }

    /// The peer closed its side: complete commands still buffered are run, an unfinished
    /// line is dropped (as HAProxy does), then the connection closes.
    pub fn feed_eof(&mut self) -> Vec<Request> {
        let mut out = Vec::new();
        while !self.closed && self.step(&mut out) {}
        if !self.closed {
            self.close(&mut out);
        }
        out
    }

    /// Appends `response` as HAProxy would write it: severity prefix for messages, then
    /// the prompt captured when the command was read.
    pub fn render(&self, response: &Response, out: &mut Vec<u8>) {
        response.frame.severity.write(&response.reply, out);
        out.extend_from_slice(response.frame.trailer.as_bytes());
    }

    fn frame(&self) -> Frame {
        let trailer = match (self.prompt, self.payload.is_some()) {
            (true, true) => "+ ",
            (true, false) => "\n> ",
            (false, true) => "",
            (false, false) => "\n",
        };
        Frame {
            severity: self.severity,
            trailer,
        }
    }

    fn reply(&self, reply: Reply) -> Request {
        Request::Reply(Response {
            reply,
            frame: self.frame(),
        })
    }

    fn close(&mut self, out: &mut Vec<Request>) {
        self.closed = true;
        self.buf.clear();
        out.push(Request::Close);
    }

    /// Handles one line if a complete one is buffered; false when more bytes are needed.
    fn step(&mut self, out: &mut Vec<Request>) -> bool {
        let in_payload = self.payload.is_some();
        let Some((end, skip)) = find_line_end(&self.buf, !in_payload) else {
            if self.buf.len() >= self.max_line {
                self.close(out);
            }
            return false;
        };
        if end >= self.max_line {
            self.close(out);
            return false;
        }
        let mut line: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let line = String::from_utf8_lossy(&line).into_owned();

        if let Some((words, mut data)) = self.payload.take() {
            if line.is_empty() {
                let r = self.execute(&words, Some(data.trim_end_matches('\n')));
                out.extend(r);
            } else {
                if data.len() + line.len() + 1 > self.max_line {
                    self.close(out);
                    return false;
                }
                data.push_str(&line);
                data.push('\n');
                self.payload = Some((words, data));
                if self.prompt {
                    out.push(self.reply(Reply::empty()));
                }
                return true;
            }
        } else if line.ends_with(PAYLOAD_PATTERN) {
            let words = tokenize(&line);
            self.payload = Some((words, String::new()));
            if self.prompt {
                out.push(self.reply(Reply::empty()));
            }
            return true;
        } else {
            let words = tokenize(&line);
            let r = self.execute(&words, None);
            out.extend(r);
        }
        if !self.closed && !self.prompt && self.buf.is_empty() && self.payload.is_none() {
            self.close(out);
        }
        true
    }

    /// Runs one command line (words already split).
    fn execute(&mut self, words: &[String], payload: Option<&str>) -> Vec<Request> {
        let (words, payload) = match words.iter().position(|w| w == PAYLOAD_PATTERN) {
            Some(i) => (&words[..i], payload),
            None => (words, None),
        };
        let Some(kw) = table::lookup(words) else {
            return vec![self.reply(table::usage_message(words))];
        };
        if kw.level > self.level {
            return vec![self.reply(Reply::permission_denied())];
        }
        let arg = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        let reply = match kw.kw {
            Kw::Help => table::usage_message(words),
            Kw::Prompt => {
                self.prompt = !self.prompt;
                Reply::empty()
            }
            Kw::Quit => {
                self.closed = true;
                self.buf.clear();
                return vec![Request::Close];
            }
            Kw::User => {
                self.level = Level::User;
                Reply::empty()
            }
            Kw::Operator => {
                if self.level < Level::Operator {
                    Reply::permission_denied()
                } else {
                    self.level = Level::Operator;
                    Reply::empty()
                }
            }
            Kw::SetSeverityOutput => match SeverityOutput::parse(arg(2)) {
                Some(s) => {
                    self.severity = s;
                    Reply::empty()
                }
                None => Reply::err("one of 'none', 'number', 'string' is a required argument\n"),
            },
            Kw::SetTimeout => self.set_timeout(arg(2), arg(3)),
            Kw::ShowCliLevel => Reply::raw(format!("{}\n", self.level.name())),
            other => match command::parse(other, words, payload) {
                Err(reply) => reply,
                Ok(cmd) if cmd.min_level() > self.level => Reply::permission_denied(),
                Ok(command) => {
                    return vec![Request::Run(Pending {
                        command,
                        level: self.level,
                        words: words.to_vec(),
                        keyword_len: kw.words.len(),
                        frame: self.frame(),
                    })]
                }
            },
        };
        vec![self.reply(reply)]
    }

    fn set_timeout(&mut self, what: &str, value: &str) -> Reply {
        if what != "cli" {
            return Reply::err("'set timeout' only supports 'cli'.\n");
        }
        if value.is_empty() {
            return Reply::err("Expects an integer value.\n");
        }
        match parse_time_secs(value) {
            Some(secs) if secs >= 1 => {
                self.timeout_cli_secs = Some(secs);
                Reply::empty()
            }
            _ => Reply::err("Invalid timeout value.\n"),
        }
    }
}

/// HAProxy's `parse_time_err(.., TIME_UNIT_S)`: a number with an optional unit
/// (us, ms, s, m, h, d), returned in whole seconds; `None` on garbage or overflow.
pub fn parse_time_secs(s: &str) -> Option<u32> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s.get(..digits)?.parse().ok()?;
    let ms: u64 = match s.get(digits..)? {
        "" | "s" => n.checked_mul(1000)?,
        "us" => n / 1000,
        "ms" => n,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    u32::try_from(ms / 1000).ok()
}

/// Where the current line ends: `(index of the delimiter, 1)`. In command mode the
/// delimiters are '\n' and unescaped ';'; a '\' escapes the next byte.
fn find_line_end(buf: &[u8], commands: bool) -> Option<(usize, usize)> {
    if !commands {
        return buf.iter().position(|&b| b == b'\n').map(|i| (i, 1));
    }
    let mut i = 0;
    while let Some(&b) = buf.get(i) {
        match b {
            b'\\' => i += 2,
            b'\n' | b';' => return Some((i, 1)),
            _ => i += 1,
        }
    }
    None
}

/// Splits a command line into words like `cli_parse_request`: blanks separate words,
/// `\x` stands for `x` (so `\ ` and `\;` are literal), at most [`MAX_CLI_ARGS`] words;
/// a `<<` word ends the arguments (the payload follows).
pub fn tokenize(line: &str) -> Vec<String> {
    let b = line.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while words.len() < MAX_CLI_ARGS {
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut word = Vec::new();
        while let Some(&c) = b.get(i) {
            match c {
                b' ' | b'\t' => break,
                b'\\' => {
                    if let Some(&n) = b.get(i + 1) {
                        word.push(n);
                    }
                    i += 2;
                }
                _ => {
                    word.push(c);
                    i += 1;
                }
            }
        }
        let word = String::from_utf8_lossy(&word).into_owned();
        let stop = word == PAYLOAD_PATTERN;
        words.push(word);
        if stop {
            break;
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_unescapes_like_haproxy() {
        assert_eq!(
            tokenize("  get   weight\tbe/s1 "),
            ["get", "weight", "be/s1"]
        );
        assert_eq!(
            tokenize(r"set map m a\ b c\\d"),
            ["set", "map", "m", r"a b", r"c\d"]
        );
        assert_eq!(tokenize(r"x a\;b"), ["x", "a;b"]);
        assert_eq!(tokenize("add map m <<"), ["add", "map", "m", "<<"]);
        assert_eq!(tokenize(&"a ".repeat(100)).len(), MAX_CLI_ARGS);
    }

    #[test]
    fn time_units() {
        assert_eq!(parse_time_secs("10"), Some(10));
        assert_eq!(parse_time_secs("10s"), Some(10));
        assert_eq!(parse_time_secs("2m"), Some(120));
        assert_eq!(parse_time_secs("1500ms"), Some(1));
        assert_eq!(parse_time_secs("abc"), None);
        assert_eq!(parse_time_secs("5x"), None);
    }
}
