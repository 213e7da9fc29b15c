//! A check as a sequence of steps the control shard's driver runs:
//! `Connect` → `Send` → `Expect` → ... Built from the backend's `option httpchk`,
//! `http-check`, `option tcp-check`/`tcp-check` rules and the canned `option *-check`s, with
//! HAProxy 2.6's implicit steps (a first connect, the `option httpchk` request, the default
//! `2xx/3xx` expectation).
//!
//! The driver: for `Connect`, open the connection (`port`/`addr` or the server's check port
//! and address, TLS if `ssl`); for `Send`, write the bytes; for `Expect`, read and call
//! [`crate::evaluate`] with everything received since the last send until it says `Pass` or
//! `Fail`. The last `Pass` gives the check's result; a check with no expect passes with
//! `Layer4 check passed` once every step ran.

use ringlb_config::model::{
    Backend, CheckConnect, HttpCheckStep, HttpChk, ServerParams, TcpCheckStep,
};

use crate::canned;
use crate::expect::{ExpectRule, InfoFrom, Matcher, Reporting};
use crate::lf::{compile_fmt, LfPayload, VarStep};
use crate::status::{CheckResult, CheckStatus};

/// Where and how to connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectSpec {
    /// `None`: the server's `port` option, else its address port.
    pub port: Option<u16>,
    pub addr: Option<String>,
    pub ssl: bool,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub send_proxy: bool,
    pub linger: bool,
    /// `connect default` (and every implicit connect): also take the server's `check-ssl`,
    /// `check-sni`, `check-alpn`, `check-send-proxy`.
    pub inherit: bool,
    /// 1-based rule number of an explicit `tcp-check connect` (HAProxy counts every rule,
    /// comments included); 0 for the implicit first connect.
    pub step: u32,
    /// The rule's `comment` option, else the `tcp-check comment` right before it, reported
    /// with its failures.
    pub comment: Option<String>,
    /// `proto <mux>` (`h1`, `h2`; `none` for a tcp-check).
    pub proto: Option<String>,
}

/// A connect step resolved against the server it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedConnect {
    /// `None`: connect to the server's own address.
    pub addr: Option<String>,
    /// `None`: the server has no port (it follows the client's): the check cannot run.
    pub port: Option<u16>,
    pub ssl: bool,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub send_proxy: bool,
    /// The mux the rule or (`connect default`, implicit connects) the server's `check-proto`
    /// asks for; `None`: chosen by the negotiated ALPN (`h2`), else HTTP/1.
    pub proto: Option<String>,
}

impl ResolvedConnect {
    /// Whether an HTTP check over this connection speaks HTTP/2, given the protocol TLS
    /// negotiated (haproxy 2.6's `tcpcheck_eval_connect`: the rule's `proto`, else the
    /// server's `check-proto` for a default connect, else the ALPN).
    pub fn speaks_h2(&self, negotiated_alpn: Option<&[u8]>) -> bool {
        match self.proto.as_deref() {
            Some(p) => p == "h2",
            None => self.ssl && negotiated_alpn == Some(b"h2".as_slice()),
        }
    }
}

/// Checks go over TLS with `check-ssl`, or when the server uses `ssl` for its traffic and the
/// checks neither `port` nor `addr` elsewhere (HAProxy 2.6's `init_srv_check`).
pub fn ssl_checks(params: &ServerParams) -> bool {
    params.check_ssl
        || (params.ssl.enabled && params.check_port.is_none() && params.check_addr.is_none())
}

impl ConnectSpec {
    /// The step's own settings, else the server's `port`, `addr`, `check-ssl`, `check-sni`,
    /// `check-send-proxy` (HAProxy's `connect default` semantics for the implicit connect).
    pub fn resolve(&self, params: &ServerParams, server_port: Option<u16>) -> ResolvedConnect {
        let check_send_proxy = params.other.iter().any(|(n, _)| n == "check-send-proxy");
        let inherit = self.inherit;
        ResolvedConnect {
            addr: self.addr.clone().or_else(|| params.check_addr.clone()),
            port: self.port.or(params.check_port).or(server_port),
            ssl: self.ssl || (inherit && ssl_checks(params)),
            sni: self
                .sni
                .clone()
                .or_else(|| params.check_sni.clone().filter(|_| inherit)),
            alpn: self.alpn.clone().or_else(|| {
                params
                    .other
                    .iter()
                    .find(|(n, _)| n == "check-alpn")
                    .and_then(|(_, v)| v.clone())
                    .filter(|_| inherit)
            }),
            send_proxy: self.send_proxy || (inherit && check_send_proxy),
            proto: self.proto.clone().or_else(|| {
                params
                    .other
                    .iter()
                    .rev()
                    .find(|(n, _)| n == "check-proto")
                    .and_then(|(_, v)| v.clone())
                    .filter(|_| inherit)
            }),
        }
    }
}

impl From<&CheckConnect> for ConnectSpec {
    fn from(c: &CheckConnect) -> Self {
        ConnectSpec {
            port: c.port,
            addr: c.addr.clone(),
            ssl: c.ssl,
            sni: c.sni.clone(),
            alpn: c.alpn.clone(),
            send_proxy: c.send_proxy,
            linger: c.linger,
            inherit: c.default,
            step: 0,
            comment: c.comment.clone(),
            proto: c.proto.clone().filter(|p| p != "none"),
        }
    }
}

/// One step of a check.
#[derive(Debug, Clone)]
pub enum Step {
    Connect(ConnectSpec),
    Send(Vec<u8>),
    /// A payload rendered at each run ([`crate::lf::CheckRun::render`]).
    SendLf(LfPayload),
    /// `set-var`, `set-var-fmt`, `unset-var`: run by [`crate::lf::CheckRun::apply`].
    Var(VarStep),
    Expect(ExpectRule),
}

/// Which family of check this is (decides how replies are read and messages worded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Connect only (`check` without any option): `Layer4 check passed`.
    Tcp,
    /// `option tcp-check` and the canned checks.
    TcpCheck,
    /// `agent-check`: read one line and parse it with [`crate::agent::parse`].
    Agent,
    /// `option httpchk` / `http-check`.
    Http,
}

/// A runnable check.
#[derive(Debug, Clone)]
pub struct CheckScript {
    steps: Vec<Step>,
    kind: CheckKind,
    /// `ssl-hello-chk`: the driver writes the current Unix time at these 4 bytes of the send.
    pub time_offset: Option<usize>,
    /// One of HAProxy's canned checks (`option redis-check`, ...): their failures carry no
    /// " at step N of tcp-check" suffix (only user `tcp-check` rulesets do).
    canned: bool,
    /// `http-check send-state`: (step index, byte offset) of each HTTP request where the
    /// driver inserts the `x-haproxy-server-state` header, after the user's headers.
    pub state_header_at: Vec<(usize, usize)>,
    /// A user tcp-check ruleset's send rules: (step index, `" at step N of tcp-check
    /// (send)"`), how haproxy names a send that failed.
    send_where: Vec<(usize, String)>,
}

impl CheckScript {
    /// Whether a connect step of this script goes over TLS for a server with `params`.
    pub fn uses_tls(&self, params: &ServerParams) -> bool {
        self.steps().iter().any(|s| match s {
            Step::Connect(c) => c.resolve(params, None).ssl,
            _ => false,
        })
    }

    /// The ALPN lists the TLS connect steps offer for a server with `params`.
    pub fn alpns(&self, params: &ServerParams) -> Vec<String> {
        self.steps()
            .iter()
            .filter_map(|s| match s {
                Step::Connect(c) => {
                    let r = c.resolve(params, None);
                    r.alpn.filter(|_| r.ssl)
                }
                _ => None,
            })
            .collect()
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn kind(&self) -> CheckKind {
        self.kind
    }

    /// The result when the send at step index `index` failed with `error` (its `strerror`
    /// text): `Socket error`, naming the rule in a user tcp-check ruleset.
    pub fn send_failure(&self, index: usize, error: &str) -> CheckResult {
        let where_ = self
            .send_where
            .iter()
            .find(|(i, _)| *i == index)
            .map_or("", |(_, w)| w.as_str());
        crate::expect::socket_error(error, where_)
    }

    /// A user `tcp-check` ruleset (not a canned check): HAProxy names the failing step.
    pub fn names_steps(&self) -> bool {
        self.kind == CheckKind::TcpCheck && !self.canned
    }

    /// The agent check of a server: connect to `agent-addr`/`agent-port`, send `agent-send`
    /// if set, then read a line. `None` when the server has no agent check.
    pub fn agent(params: &ServerParams) -> Option<CheckScript> {
        if !params.agent.enabled {
            return None;
        }
        let connect = ConnectSpec {
            port: params.agent.port,
            addr: params.agent.addr.clone(),
            ..ConnectSpec::default()
        };
        let mut steps = vec![Step::Connect(connect)];
        if let Some(s) = params.agent.send.as_ref().filter(|s| !s.is_empty()) {
            steps.push(Step::Send(s.as_bytes().to_vec()));
        }
        Some(CheckScript {
            steps,
            kind: CheckKind::Agent,
            time_offset: None,
            canned: false,
            state_header_at: Vec::new(),
            send_where: Vec::new(),
        })
    }

    /// The check a backend configures for its servers.
    pub fn from_backend(be: &Backend) -> Result<CheckScript, String> {
        if let Some(mut s) = canned_from(be) {
            s.canned = true;
            return Ok(s);
        }
        if be.options.tcp_check || !be.tcp_check.is_empty() && be.options.httpchk.is_none() {
            return tcp_check(&be.tcp_check);
        }
        if be.options.httpchk.is_some() || !be.http_check.is_empty() {
            let chk = be.options.httpchk.clone().unwrap_or_else(default_httpchk);
            return http_check(&chk, &be.http_check);
        }
        Ok(CheckScript {
            steps: vec![Step::Connect(implicit_connect())],
            kind: CheckKind::Tcp,
            time_offset: None,
            canned: false,
            state_header_at: Vec::new(),
            send_where: Vec::new(),
        })
    }
}

fn implicit_connect() -> ConnectSpec {
    ConnectSpec {
        inherit: true,
        ..ConnectSpec::default()
    }
}

fn default_httpchk() -> HttpChk {
    HttpChk {
        method: "OPTIONS".into(),
        uri: "/".into(),
        version: "HTTP/1.0".into(),
        extra: None,
    }
}

fn option_on(be: &Backend, name: &str) -> bool {
    be.options.other.get(name).copied().unwrap_or(false)
}

/// Arguments of an `option X ...` line kept as a directive by the config crate.
fn option_args(be: &Backend, name: &str) -> Vec<String> {
    be.other
        .iter()
        .rev()
        .find(|d| d.keyword == format!("option {name}"))
        .map(|d| d.args.clone())
        .unwrap_or_default()
}

fn expect(matcher: Matcher, pattern: &str, step: u32) -> Step {
    let mut r = ExpectRule::new(matcher, pattern);
    r.step = step;
    Step::Expect(r)
}

fn canned_from(be: &Backend) -> Option<CheckScript> {
    let connect = Step::Connect(implicit_connect());
    let tcp = |steps: Vec<Step>| CheckScript {
        steps,
        kind: CheckKind::TcpCheck,
        time_offset: None,
        canned: false,
        state_header_at: Vec::new(),
        send_where: Vec::new(),
    };
    if option_on(be, "redis-check") {
        let mut pong = ExpectRule::new(Matcher::String(b"+PONG".to_vec()), "+PONG");
        // haproxy numbers the rules of these rulesets without the implicit connect.
        pong.step = 2;
        pong.reporting = Reporting {
            error_status: Some(CheckStatus::L7Sts),
            on_error: Some(payload(0, false)),
            on_success: Some(InfoFrom::Text("Redis server is ok".into())),
            ..Reporting::default()
        };
        let ping = Step::Send(canned::REDIS_PING.to_vec());
        return Some(tcp(vec![connect, ping, Step::Expect(pong)]));
    }
    if option_on(be, "ssl-hello-chk") {
        let hello = Step::Send(canned::ssl_hello(0));
        let re = regex::Regex::new("^1[56]").ok()?;
        let mut e = ExpectRule::new(Matcher::RBinary(re), "^1[56]");
        e.min_recv = Some(5);
        e.step = 2;
        e.reporting = Reporting {
            error_status: Some(CheckStatus::L6Rsp),
            ok_status: Some(CheckStatus::L6Ok),
            timeout_status: Some(CheckStatus::L6Timeout),
            on_error: Some(InfoFrom::Text(String::new())),
            ..Reporting::default()
        };
        return Some(CheckScript {
            steps: vec![connect, hello, Step::Expect(e)],
            kind: CheckKind::TcpCheck,
            time_offset: Some(11),
            canned: false,
            state_header_at: Vec::new(),
            send_where: Vec::new(),
        });
    }
    if option_on(be, "ldap-check") {
        // haproxy 2.6: send-binary the bind, `expect rbinary ^30 min-recv 14` (on-error
        // "Not LDAPv3 protocol"), then the bind response check.
        let re = regex::Regex::new("^30").ok()?;
        let mut ber = ExpectRule::new(Matcher::RBinary(re), "^30");
        ber.min_recv = Some(14);
        ber.step = 2;
        ber.reporting = Reporting {
            on_error: Some(InfoFrom::Text("Not LDAPv3 protocol".into())),
            ..Reporting::default()
        };
        return Some(tcp(vec![
            connect,
            Step::Send(canned::LDAP_BIND.to_vec()),
            Step::Expect(ber),
            expect(Matcher::LdapBind, "", 3),
        ]));
    }
    if option_on(be, "pgsql-check") {
        return pgsql(&option_args(be, "pgsql-check")).ok();
    }
    if option_on(be, "mysql-check") {
        return Some(mysql(&option_args(be, "mysql-check")));
    }
    if option_on(be, "smtpchk") {
        return smtp(&option_args(be, "smtpchk")).ok();
    }
    None
}

fn payload(offset: usize, ltrim_space: bool) -> InfoFrom {
    InfoFrom::Payload {
        offset,
        ltrim_space,
        cut_crlf: true,
    }
}

fn user_arg(args: &[String]) -> Option<&str> {
    args.iter()
        .position(|a| a == "user")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn pgsql(args: &[String]) -> Result<CheckScript, String> {
    let user = user_arg(args).ok_or("'option pgsql-check' expects 'user <username>'")?;
    let mut not_error = ExpectRule::new(
        Matcher::RString(regex::bytes::Regex::new("^E").map_err(|e| e.to_string())?),
        "^E",
    );
    not_error.negate = true;
    not_error.min_recv = Some(5);
    not_error.step = 3;
    not_error.reporting = Reporting {
        error_status: Some(CheckStatus::L7Rsp),
        on_error: Some(InfoFrom::Payload {
            offset: 6,
            ltrim_space: false,
            cut_crlf: false,
        }),
        ..Reporting::default()
    };
    let auth_ok = "^52000000[A-Z0-9]{2}000000(00|02|03|04|05|06|07|09|0A)";
    let mut auth = ExpectRule::new(
        Matcher::RBinary(regex::Regex::new(auth_ok).map_err(|e| e.to_string())?),
        auth_ok,
    );
    auth.min_recv = Some(9);
    auth.step = 4;
    auth.reporting = Reporting {
        error_status: Some(CheckStatus::L7Sts),
        on_error: Some(InfoFrom::Text("PostgreSQL unknown error".into())),
        on_success: Some(InfoFrom::Text("PostgreSQL server is ok".into())),
        ..Reporting::default()
    };
    Ok(CheckScript {
        steps: vec![
            Step::Connect(implicit_connect()),
            Step::Send(canned::pgsql_startup(user)),
            Step::Expect(not_error),
            Step::Expect(auth),
        ],
        kind: CheckKind::TcpCheck,
        time_offset: None,
        canned: false,
        state_header_at: Vec::new(),
        send_where: Vec::new(),
    })
}

fn mysql(args: &[String]) -> CheckScript {
    let mut steps = vec![Step::Connect(implicit_connect())];
    match user_arg(args) {
        Some(user) => {
            steps.push(Step::Send(canned::mysql_auth(user)));
            steps.push(expect(Matcher::MysqlHandshake, "", 3));
            steps.push(expect(Matcher::MysqlOk, "", 4));
        }
        None => steps.push(expect(Matcher::MysqlHandshake, "", 2)),
    }
    CheckScript {
        steps,
        kind: CheckKind::TcpCheck,
        time_offset: None,
        canned: false,
        state_header_at: Vec::new(),
        send_where: Vec::new(),
    }
}

/// One SMTP reply check: a 3-digit reply (`Layer7 invalid response` otherwise), then a 2xx
/// one (`Layer7 wrong status, code: <reply code>, info: "<reply text>"`).
fn smtp_reply(steps: &mut Vec<Step>, sep: &str, step: u32, last: bool) -> Result<(), String> {
    let re = |p: &str| regex::bytes::Regex::new(p).map_err(|e| e.to_string());
    let any = format!("^[0-9]{{3}}[{sep}\r]");
    let mut shape = ExpectRule::new(Matcher::RString(re(&any)?), &any);
    shape.min_recv = Some(4);
    shape.step = step;
    shape.reporting = Reporting {
        error_status: Some(CheckStatus::L7Rsp),
        on_error: Some(payload(0, false)),
        ..Reporting::default()
    };
    // A reply to HELO/EHLO or QUIT may span lines (`250-...` continuations): haproxy 2.6
    // wants every line 2xx and a last `2xx ` one, waiting for more until then (a `550` last
    // line leaves the check waiting for its timeout, recorded in `tests/health_protocols.rs`).
    let ok = if sep == " " {
        format!("^2[0-9]{{2}}[{sep}\r]")
    } else {
        "^(2[0-9]{2}-[^\r]*\r\n)*2[0-9]{2}[ \r]".to_string()
    };
    let mut good = ExpectRule::new(Matcher::RString(re(&ok)?), &ok);
    // haproxy 2.6 checks the greeting's code at once (`min-recv 4`) but waits on a non-2xx
    // reply to HELO/EHLO or QUIT until the server closes or the check times out (recorded
    // in `tests/health_protocols.rs`).
    good.min_recv = (sep == " ").then_some(4);
    good.step = step + 1;
    good.reporting = Reporting {
        error_status: Some(CheckStatus::L7Sts),
        on_error: Some(payload(4, true)),
        on_success: last.then(|| payload(4, true)),
        status_code_at: Some(0),
        ..Reporting::default()
    };
    steps.push(Step::Expect(shape));
    steps.push(Step::Expect(good));
    Ok(())
}

/// `option smtpchk`: greeting, `HELO`/`EHLO`, `QUIT`, each reply checked (haproxy 2.6's
/// dialogue, captured in `traces/haproxy-2.6-smtp.log`).
fn smtp(args: &[String]) -> Result<CheckScript, String> {
    let mut steps = vec![Step::Connect(implicit_connect())];
    smtp_reply(&mut steps, " ", 2, false)?;
    steps.push(Step::Send(canned::smtp_command(args)));
    smtp_reply(&mut steps, "- ", 5, false)?;
    steps.push(Step::Send(b"QUIT\r\n".to_vec()));
    smtp_reply(&mut steps, "- ", 8, true)?;
    Ok(CheckScript {
        steps,
        kind: CheckKind::TcpCheck,
        time_offset: None,
        canned: false,
        state_header_at: Vec::new(),
        send_where: Vec::new(),
    })
}

/// `" at step 3 of tcp-check (send) comment: 'c'"`.
fn send_suffix(step: u32, comment: Option<String>) -> String {
    let mut w = format!(" at step {step} of tcp-check (send)");
    if let Some(c) = comment {
        w.push_str(&format!(" comment: '{c}'"));
    }
    w
}

/// `tcp-check` rules; an implicit first connect when the first rule is not one.
pub fn tcp_check(rules: &[TcpCheckStep]) -> Result<CheckScript, String> {
    let mut steps = Vec::with_capacity(rules.len() + 1);
    let mut send_where = Vec::new();
    // HAProxy: an explicit `connect` may be preceded by comments and variables only.
    let first = rules.iter().find(|r| {
        !matches!(
            r,
            TcpCheckStep::Comment { .. } | TcpCheckStep::SetVar { .. }
        )
    });
    if !matches!(first, Some(TcpCheckStep::Connect(_))) {
        steps.push(Step::Connect(implicit_connect()));
    }
    // HAProxy numbers every rule (comments and variables too); a `comment` rule names the
    // rule right after it in failure messages.
    let mut comment: Option<String> = None;
    for (i, r) in rules.iter().enumerate() {
        let n = u32::try_from(i).unwrap_or(u32::MAX).saturating_add(1);
        match r {
            TcpCheckStep::Connect(c) => {
                let mut spec: ConnectSpec = c.into();
                spec.step = n;
                let before = comment.take();
                spec.comment = spec.comment.or(before);
                steps.push(Step::Connect(spec));
            }
            TcpCheckStep::Send { data, .. } | TcpCheckStep::SendBinary { data, .. } => {
                send_where.push((steps.len(), send_suffix(n, comment.take())));
                steps.push(Step::Send(data.clone()))
            }
            TcpCheckStep::Expect(e) => {
                let mut rule = ExpectRule::from_model(e, n)?;
                // The rule's own `comment` option, else a `comment` rule right before it.
                let before = comment.take();
                rule.comment = rule.comment.or(before);
                steps.push(Step::Expect(rule));
            }
            TcpCheckStep::SendLf { fmt, binary, loc } => {
                send_where.push((steps.len(), send_suffix(n, comment.take())));
                steps.push(Step::SendLf(LfPayload::Tcp {
                    fmt: compile_fmt(fmt).map_err(|e| at(loc, &e))?,
                    binary: *binary,
                    step: n,
                }))
            }
            TcpCheckStep::Comment { text, .. } => comment = Some(text.clone()),
            TcpCheckStep::SetVar { var, expr, op, loc } => {
                comment = None;
                let v = VarStep::compile(var, expr, *op).map_err(|e| at(loc, &e))?;
                steps.push(Step::Var(v))
            }
        }
    }
    Ok(CheckScript {
        steps,
        kind: CheckKind::TcpCheck,
        time_offset: None,
        canned: false,
        state_header_at: Vec::new(),
        send_where,
    })
}

/// The request line, headers and body of one HTTP check request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl HttpRequest {
    /// The user's headers as haproxy 2.6 sends them (diffed in `tests/health_http_expect.rs`):
    /// names lower-cased; empty values, `content-length` and `transfer-encoding` dropped
    /// (the body decides the length); a `connection` header loses the token that is the
    /// version's default (`keep-alive` in HTTP/1.1, `close` in HTTP/1.0) and goes when
    /// nothing is left, as haproxy's HTTP/1 output does.
    fn wire_headers(&self) -> Vec<(String, String)> {
        let v11 = self.version.eq_ignore_ascii_case("HTTP/1.1");
        let implied = if v11 { "keep-alive" } else { "close" };
        self.headers
            .iter()
            .filter_map(|(n, v)| {
                let n = n.to_ascii_lowercase();
                if v.is_empty() || n == "content-length" || n == "transfer-encoding" {
                    return None;
                }
                if n != "connection" {
                    return Some((n, v.clone()));
                }
                let kept: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(implied))
                    .collect();
                (!kept.is_empty()).then(|| (n, kept.join(", ")))
            })
            .collect()
    }

    /// Where `http-check send-state` inserts its header: after the request line and the
    /// user's headers, before `content-length` and `connection` (recorded from haproxy 2.6).
    pub fn state_offset(&self) -> usize {
        let mut n = self.method.len() + self.uri.len() + self.version.len() + 4;
        for (k, v) in self.wire_headers() {
            n += k.len() + v.len() + 4;
        }
        n
    }

    /// The bytes haproxy 2.6 puts on the wire: the request line, [`Self::wire_headers`],
    /// `content-length` with a body, `connection: close` for HTTP/1.1 unless the user
    /// configured a `connection` header (captured in `traces/requests/`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} {}\r\n", self.method, self.uri, self.version);
        for (n, v) in self.wire_headers() {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(b) = &self.body {
            s.push_str(&format!("content-length: {}\r\n", b.len()));
        }
        let user_connection = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("connection"));
        if self.version.eq_ignore_ascii_case("HTTP/1.1") && !user_connection {
            s.push_str("connection: close\r\n");
        }
        s.push_str("\r\n");
        if let Some(b) = &self.body {
            s.push_str(b);
        }
        s.into_bytes()
    }
}

/// `option httpchk` alone: its method, URI, version and the old `\r\nHeader: value` trick.
pub fn httpchk_request(chk: &HttpChk) -> HttpRequest {
    let headers = chk
        .extra
        .as_deref()
        .unwrap_or("")
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpRequest {
        method: chk.method.clone(),
        uri: chk.uri.clone(),
        version: chk.version.clone(),
        headers,
        body: None,
    }
}

fn send_request(chk: &HttpChk, step: &HttpCheckStep) -> HttpRequest {
    let mut req = httpchk_request(chk);
    if let HttpCheckStep::Send {
        meth,
        uri,
        ver,
        headers,
        body,
        ..
    } = step
    {
        req.method = meth.clone().unwrap_or(req.method);
        req.uri = uri.clone().unwrap_or(req.uri);
        req.version = ver.clone().unwrap_or(req.version);
        // The send rule's headers replace those hidden in `option httpchk`'s version.
        if !headers.is_empty() {
            req.headers = headers.clone();
        }
        req.body = body.clone();
    }
    req
}

/// The log-format parts of an `http-check send` (`uri-lf`, `body-lf`, header values with a
/// `%`); `None` when the request is constant.
fn lf_request(req: &HttpRequest, step: &HttpCheckStep) -> Result<Option<LfPayload>, String> {
    let HttpCheckStep::Send {
        uri,
        headers,
        body,
        uri_lf,
        body_lf,
        loc,
        ..
    } = step
    else {
        return Ok(None);
    };
    let compile_fmt = |v: &str| compile_fmt(v).map_err(|e| at(loc, &e));
    let lf = |on: bool, v: &Option<String>| -> Result<Option<ringlb_rules::LogFormat>, String> {
        match v {
            Some(v) if on && v.contains('%') => compile_fmt(v).map(Some),
            _ => Ok(None),
        }
    };
    let uri = lf(*uri_lf, uri)?;
    let body = lf(*body_lf, body)?;
    // The user's headers come after those of `option httpchk` in `req.headers`.
    let first = req.headers.len() - headers.len();
    let mut hdrs = Vec::new();
    for (i, (_, v)) in headers.iter().enumerate() {
        if v.contains('%') {
            hdrs.push((first + i, compile_fmt(v)?));
        }
    }
    if uri.is_none() && body.is_none() && hdrs.is_empty() {
        return Ok(None);
    }
    Ok(Some(LfPayload::Http {
        base: req.clone(),
        uri,
        headers: hdrs,
        body,
    }))
}

/// An error of a check rule, with its place in the configuration.
fn at(loc: &ringlb_config::model::Loc, e: &str) -> String {
    format!("parsing [{}:{}] : {e}", loc.file, loc.line)
}

fn default_http_expect(step: u32) -> Result<ExpectRule, String> {
    let mut e = ExpectRule::new(Matcher::Status(vec![(200, 399)]), "200-399");
    e.step = step;
    Ok(e)
}

/// `option httpchk` + `http-check` rules: implicit connect, implicit send (the `option
/// httpchk` request) and implicit default expect (`2xx`/`3xx`) where HAProxy adds them.
pub fn http_check(chk: &HttpChk, rules: &[HttpCheckStep]) -> Result<CheckScript, String> {
    let disable_on_404 = rules
        .iter()
        .any(|r| matches!(r, HttpCheckStep::DisableOn404 { .. }));
    let mut steps = Vec::with_capacity(rules.len() + 3);
    let mut n = 0u32;
    let mut pending_expect = false;
    let first = rules.iter().find(|r| {
        !matches!(
            r,
            HttpCheckStep::Comment { .. }
                | HttpCheckStep::SetVar { .. }
                | HttpCheckStep::DisableOn404 { .. }
                | HttpCheckStep::SendState { .. }
        )
    });
    if !matches!(first, Some(HttpCheckStep::Connect(_))) {
        steps.push(Step::Connect(implicit_connect()));
    }
    let send_state = rules
        .iter()
        .any(|r| matches!(r, HttpCheckStep::SendState { .. }));
    let mut state_header_at = Vec::new();
    let has_send = rules
        .iter()
        .any(|r| matches!(r, HttpCheckStep::Send { .. }));
    if !has_send {
        let req = httpchk_request(chk);
        if send_state {
            state_header_at.push((steps.len(), req.state_offset()));
        }
        steps.push(Step::Send(req.to_bytes()));
        pending_expect = true;
        n += 1;
    }
    // An `http-check comment` names the rule right after it in failure messages.
    let mut comment: Option<String> = None;
    for r in rules {
        if let HttpCheckStep::Comment { text, .. } = r {
            comment = Some(text.clone());
            continue;
        }
        let pending_comment = comment.take();
        match r {
            HttpCheckStep::Connect(_) | HttpCheckStep::ImplicitConnect { .. } if pending_expect => {
                steps.push(Step::Expect(default_http_expect(n)?));
                pending_expect = false;
                push_connect(&mut steps, r);
            }
            HttpCheckStep::Connect(_) | HttpCheckStep::ImplicitConnect { .. } => {
                push_connect(&mut steps, r)
            }
            HttpCheckStep::Send { .. } => {
                let req = send_request(chk, r);
                if send_state {
                    // For a log-format request the driver uses the rendered offset.
                    state_header_at.push((steps.len(), req.state_offset()));
                }
                match lf_request(&req, r)? {
                    Some(p) => steps.push(Step::SendLf(p)),
                    None => steps.push(Step::Send(req.to_bytes())),
                }
                pending_expect = true;
            }
            HttpCheckStep::SetVar { var, expr, op, loc } => {
                let v = VarStep::compile(var, expr, *op).map_err(|e| at(loc, &e))?;
                steps.push(Step::Var(v));
                continue;
            }
            HttpCheckStep::Expect(e) => {
                let mut rule = ExpectRule::from_model(e, n + 1)?;
                rule.comment = rule.comment.or(pending_comment);
                rule.disable_on_404 = disable_on_404;
                steps.push(Step::Expect(rule));
                pending_expect = false;
            }
            _ => continue,
        }
        n += 1;
    }
    if pending_expect {
        let mut e = default_http_expect(n + 1)?;
        e.disable_on_404 = disable_on_404;
        steps.push(Step::Expect(e));
    }
    Ok(CheckScript {
        steps,
        kind: CheckKind::Http,
        time_offset: None,
        canned: false,
        state_header_at,
        send_where: Vec::new(),
    })
}

fn push_connect(steps: &mut Vec<Step>, r: &HttpCheckStep) {
    let spec = match r {
        HttpCheckStep::Connect(c) => c.into(),
        _ => implicit_connect(),
    };
    steps.push(Step::Connect(spec));
}
