//! The log-format engine (configuration.txt 8.2.6), shared by `log-format`,
//! `unique-id-format`, `set-header`/`add-header` values, `lf-string` bodies and dynamic
//! `use_backend %[...]`: parsed once into a [`LogFormat`], rendered into a caller's buffer.
//!
//! Flags: `Q` (quote strings), `X` (hex for IPs, ports, `%Ts`, `%rt`, `%pid`), `E` (escape
//! `"`, `\`, `]`), and the ringlb extension `json` (strings as escaped JSON strings, missing
//! values as `null`). `%o` applies its flags to every following variable. As in HAProxy,
//! spaces are separators: runs of them, and a space after an empty field, collapse into one.

use std::io::Write;
use std::net::IpAddr;

use crate::context::Ctx;
use crate::expr::Expr;
use crate::fetch::FetchEnv;
use crate::sample::Sample;

/// `option httplog` (configuration.txt 8.2.3).
pub const HTTPLOG_FORMAT: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";
/// `option httpslog` (configuration.txt 8.2.4).
pub const HTTPSLOG_FORMAT: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_fc_is_resumed] %[ssl_fc_sni]/%sslv/%sslc";
/// `option tcplog` (configuration.txt 8.2.2).
pub const TCPLOG_FORMAT: &str =
    "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq";
/// `option httplog clf` (configuration.txt 8.2.3).
pub const CLF_FORMAT: &str = "%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl";

/// `%X` variables (configuration.txt 8.2.6 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVar {
    /// `%B` bytes read (server to client).
    BytesRead,
    /// `%CC`
    CapturedReqCookie,
    /// `%CS`
    CapturedResCookie,
    /// `%H`
    Hostname,
    /// `%HM`
    Method,
    /// `%HP` URI without query string.
    UriNoQuery,
    /// `%HPO` path only.
    PathOnly,
    /// `%HQ` query string with its `?`.
    Query,
    /// `%HU` URI.
    Uri,
    /// `%HV` version.
    Version,
    /// `%ID`
    UniqueId,
    /// `%ST`
    Status,
    /// `%T` GMT date.
    GmtDate,
    Ta,
    Tc,
    Td,
    /// `%Tl` local date.
    LocalDate,
    Th,
    Ti,
    Tq,
    TR,
    Tr,
    /// `%Ts` Unix timestamp of accept.
    Ts,
    Tt,
    Tu,
    Tw,
    /// `%U` bytes uploaded.
    BytesUploaded,
    /// `%ac`
    ActConn,
    /// `%b`
    Backend,
    /// `%bc`
    BeConn,
    /// `%bi`
    BackendSrcIp,
    /// `%bp`
    BackendSrcPort,
    /// `%bq`
    BackendQueue,
    /// `%ci`
    ClientIp,
    /// `%cp`
    ClientPort,
    /// `%f`
    Frontend,
    /// `%fc`
    FeConn,
    /// `%fi`
    FrontendIp,
    /// `%fp`
    FrontendPort,
    /// `%ft` frontend name with `~` for TLS.
    FrontendTransport,
    /// `%lc`
    LogCounter,
    /// `%hr`
    CapturedReqHeaders,
    /// `%hrl`
    CapturedReqHeadersClf,
    /// `%hs`
    CapturedResHeaders,
    /// `%hsl`
    CapturedResHeadersClf,
    /// `%ms` accept date milliseconds.
    AcceptMs,
    /// `%pid`
    Pid,
    /// `%r` request line.
    RequestLine,
    /// `%rc` retries.
    Retries,
    /// `%rt` request counter.
    Rt,
    /// `%s`
    Server,
    /// `%sc`
    SrvConn,
    /// `%si`
    ServerIp,
    /// `%sp`
    ServerPort,
    /// `%sq`
    SrvQueue,
    /// `%sslc`
    SslCipher,
    /// `%sslv`
    SslVersion,
    /// `%t` accept date with milliseconds.
    AcceptDate,
    /// `%tr` request date.
    ReqDate,
    /// `%trg`
    ReqDateGmt,
    /// `%trl`
    ReqDateLocal,
    /// `%ts`
    TermState,
    /// `%tsc`
    TermStateCookie,
}

const VARS: &[(&str, LogVar)] = &[
    ("B", LogVar::BytesRead),
    ("CC", LogVar::CapturedReqCookie),
    ("CS", LogVar::CapturedResCookie),
    ("H", LogVar::Hostname),
    ("HM", LogVar::Method),
    ("HP", LogVar::UriNoQuery),
    ("HPO", LogVar::PathOnly),
    ("HQ", LogVar::Query),
    ("HU", LogVar::Uri),
    ("HV", LogVar::Version),
    ("ID", LogVar::UniqueId),
    ("ST", LogVar::Status),
    ("T", LogVar::GmtDate),
    ("Ta", LogVar::Ta),
    ("Tc", LogVar::Tc),
    ("Td", LogVar::Td),
    ("Tl", LogVar::LocalDate),
    ("Th", LogVar::Th),
    ("Ti", LogVar::Ti),
    ("Tq", LogVar::Tq),
    ("TR", LogVar::TR),
    ("Tr", LogVar::Tr),
    ("Ts", LogVar::Ts),
    ("Tt", LogVar::Tt),
    ("Tu", LogVar::Tu),
    ("Tw", LogVar::Tw),
    ("U", LogVar::BytesUploaded),
    ("ac", LogVar::ActConn),
    ("b", LogVar::Backend),
    ("bc", LogVar::BeConn),
    ("bi", LogVar::BackendSrcIp),
    ("bp", LogVar::BackendSrcPort),
    ("bq", LogVar::BackendQueue),
    ("ci", LogVar::ClientIp),
    ("cp", LogVar::ClientPort),
    ("f", LogVar::Frontend),
    ("fc", LogVar::FeConn),
    ("fi", LogVar::FrontendIp),
    ("fp", LogVar::FrontendPort),
    ("ft", LogVar::FrontendTransport),
    ("lc", LogVar::LogCounter),
    ("hr", LogVar::CapturedReqHeaders),
    ("hrl", LogVar::CapturedReqHeadersClf),
    ("hs", LogVar::CapturedResHeaders),
    ("hsl", LogVar::CapturedResHeadersClf),
    ("ms", LogVar::AcceptMs),
    ("pid", LogVar::Pid),
    ("r", LogVar::RequestLine),
    ("rc", LogVar::Retries),
    ("rt", LogVar::Rt),
    ("s", LogVar::Server),
    ("sc", LogVar::SrvConn),
    ("si", LogVar::ServerIp),
    ("sp", LogVar::ServerPort),
    ("sq", LogVar::SrvQueue),
    ("sslc", LogVar::SslCipher),
    ("sslv", LogVar::SslVersion),
    ("t", LogVar::AcceptDate),
    ("tr", LogVar::ReqDate),
    ("trg", LogVar::ReqDateGmt),
    ("trl", LogVar::ReqDateLocal),
    ("ts", LogVar::TermState),
    ("tsc", LogVar::TermStateCookie),
];

impl LogVar {
    /// Looks up a variable by its `%` name.
    pub fn by_name(n: &str) -> Option<LogVar> {
        VARS.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    /// The `%` name.
    pub fn name(self) -> &'static str {
        VARS.iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(k, _)| k)
    }
}

/// A per-request value the engine supplies through [`crate::SampleSource::log_value`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogValue<'a> {
    Missing,
    Int(i64),
    /// An integer known only in part (`option logasap`): written with a `+` before it.
    Partial(i64),
    Str(&'a [u8]),
    Ip(IpAddr),
    /// A date as Unix milliseconds (`%t`, `%tr`, `%T`...).
    TimeMs(i64),
    /// Captured header values in declaration order (empty = not present).
    Captures(&'a [Vec<u8>]),
}

impl LogValue<'_> {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            LogValue::Int(i) | LogValue::Partial(i) => Some(*i),
            _ => None,
        }
    }
}

/// Encoding flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub quote: bool,
    pub hex: bool,
    pub escape: bool,
    pub json: bool,
}

#[derive(Debug, Clone)]
enum Node {
    Lit(Box<[u8]>),
    /// One or more spaces.
    Sep,
    Var(LogVar, Flags),
    Expr(Box<Expr>, Flags),
}

/// A compiled log-format string.
#[derive(Debug, Clone)]
pub struct LogFormat {
    nodes: Vec<Node>,
    /// The text and where each `%[...]` expression starts in it, for diagnostics in
    /// haproxy's words (they quote the format from the expression on). Boxed: formats sit
    /// inside rules and check steps, and this is read only at startup.
    source: Box<FormatSource>,
}

#[derive(Debug, Clone)]
struct FormatSource {
    text: Box<str>,
    expr_at: Vec<usize>,
}

impl LogFormat {
    /// The sample expressions (`%[...]`) of the format.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Expr(e, _) => Some(&**e),
            _ => None,
        })
    }

    /// haproxy's checks of the format's fetches where it is evaluated (`stage`): an error for
    /// one that cannot read what it needs there; a warning (`Ok(Some)`) for a layer-6 fetch in
    /// an HTTP format string, where it finds no buffer and yields nothing.
    pub fn check_stage(&self, stage: crate::fetch::Stage) -> Result<Option<String>, String> {
        // haproxy quotes the format from the expression's fetch to its end.
        let quoted = |n: usize| {
            let src = &self.source;
            let at = src.expr_at.get(n).copied().unwrap_or(src.text.len());
            src.text.get(at..).unwrap_or_default()
        };
        if let Some((n, e)) = self
            .exprs()
            .enumerate()
            .find(|(_, e)| !e.needs().available(stage))
        {
            return Err(format!(
                "sample fetch <{}> may not be reliably used here because it needs '{}' which is not available here.",
                quoted(n),
                e.needs().what()
            ));
        }
        use crate::fetch::Stage as S;
        if !matches!(stage, S::HttpRequest | S::HttpResponse | S::UniqueId) {
            return Ok(None);
        }
        Ok(self.exprs().position(|e| e.needs().is_buffer()).map(|n| {
            format!(
                "L6 sample fetch <{}> ignored in HTTP log-format string.",
                quoted(n)
            )
        }))
    }
}

fn closing_bracket(s: &[u8]) -> Option<usize> {
    let (mut depth, mut quote) = (0i32, None::<u8>);
    for (i, &c) in s.iter().enumerate() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(c),
            (None, b'(') => depth += 1,
            (None, b')') => depth -= 1,
            (None, b']') if depth <= 0 => return Some(i),
            _ => {}
        }
    }
    None
}

fn apply_flags(spec: &str, f: &mut Flags) -> Result<(), String> {
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let (on, name) = match item.as_bytes().first() {
            Some(b'+') => (true, &item[1..]),
            Some(b'-') => (false, &item[1..]),
            // An argument rather than a flag: HAProxy ignores unknown arguments.
            _ => continue,
        };
        match name {
            "Q" => f.quote = on,
            "X" => f.hex = on,
            "E" => f.escape = on,
            "json" => f.json = on,
            _ => {
                return Err(format!(
                    "unknown flag '{item}' in log-format (Q, X, E or json)"
                ))
            }
        }
    }
    Ok(())
}

impl LogFormat {
    /// Parses a format string. Errors are in HAProxy's words where practical.
    pub fn parse(fmt: &str, env: &dyn FetchEnv) -> Result<LogFormat, String> {
        let b = fmt.as_bytes();
        let mut nodes = Vec::new();
        let mut expr_at = Vec::new();
        let mut lit = Vec::new();
        let mut global = Flags::default();
        let mut i = 0;
        let flush = |lit: &mut Vec<u8>, nodes: &mut Vec<Node>| {
            if !lit.is_empty() {
                nodes.push(Node::Lit(std::mem::take(lit).into()));
            }
        };
        while i < b.len() {
            let c = b[i];
            if c == b' ' {
                flush(&mut lit, &mut nodes);
                if !matches!(nodes.last(), Some(Node::Sep)) {
                    nodes.push(Node::Sep);
                }
                i += 1;
                continue;
            }
            if c != b'%' {
                lit.push(c);
                i += 1;
                continue;
            }
            i += 1;
            if b.get(i) == Some(&b'%') {
                lit.push(b'%');
                i += 1;
                continue;
            }
            let mut flags = global;
            let mut spec = None;
            if b.get(i) == Some(&b'{') {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or_else(|| format!("missing '}}' in log-format '{fmt}'"))?;
                let s = &fmt[i + 1..i + end];
                apply_flags(s, &mut flags)?;
                spec = Some(s);
                i += end + 1;
            }
            flush(&mut lit, &mut nodes);
            if b.get(i) == Some(&b'[') {
                let rest = &b[i + 1..];
                let end = closing_bracket(rest).ok_or_else(|| {
                    format!("missing ']' after sample expression in log-format '{fmt}'")
                })?;
                let text = &fmt[i + 1..i + 1 + end];
                let e = Expr::parse(text, env)
                    .map_err(|e| format!("failed to parse sample expression <{text}> : {e}"))?;
                nodes.push(Node::Expr(Box::new(e), flags));
                expr_at.push(i + 1);
                i += end + 2;
                continue;
            }
            let name_len = b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            let name = &fmt[i..i + name_len];
            if name.is_empty() {
                return Err(format!(
                    "unexpected character after '%' in log-format '{fmt}'; to emit a '%', write '%%'"
                ));
            }
            i += name_len;
            if name == "o" {
                // `%o`: its flags apply to every following variable.
                if let Some(s) = spec {
                    apply_flags(s, &mut global)?;
                }
                continue;
            }
            let v = LogVar::by_name(name).ok_or_else(|| {
                format!("no such format variable '{name}'. If you wanted to emit the '%' character verbatim, you need to use '%%'")
            })?;
            nodes.push(Node::Var(v, flags));
        }
        flush(&mut lit, &mut nodes);
        Ok(LogFormat {
            nodes,
            source: Box::new(FormatSource {
                text: fmt.into(),
                expr_at,
            }),
        })
    }

    /// True when the format has no variables (its text can be used as is).
    pub fn literal(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for n in &self.nodes {
            match n {
                Node::Lit(l) => out.extend_from_slice(l),
                Node::Sep => out.push(b' '),
                _ => return None,
            }
        }
        Some(out)
    }

    /// Renders a log line into `out` (appends): a missing sample is `-` (`""` when quoted).
    /// Whether the format reads the TLS connection to the server (`ssl_bc*`, `ssl_s_*`): the
    /// engine keeps that connection's facts for the log line only then.
    pub fn uses_server_tls(&self) -> bool {
        self.nodes.iter().any(|n| {
            matches!(n, Node::Expr(e, _) if matches!(&e.fetch,
                crate::fetch::Fetch::Ssl { name, .. }
                    if name.starts_with("ssl_bc") || name.starts_with("ssl_s_")))
        })
    }

    pub fn render(&self, cx: Ctx<'_, '_>, out: &mut Vec<u8>) {
        self.render_mode(cx, out, false)
    }

    /// Renders the value of an HTTP action (`set-header`, `lf-string`, `redirect`...): a
    /// missing sample is empty, as haproxy 2.6 does outside logs.
    pub fn render_http(&self, cx: Ctx<'_, '_>, out: &mut Vec<u8>) {
        self.render_mode(cx, out, true)
    }

    /// [`LogFormat::render_http`] into a new buffer (allocates: the value outlives the
    /// request borrow).
    pub fn render_http_vec(&self, cx: Ctx<'_, '_>) -> Vec<u8> {
        let mut v = Vec::new();
        self.render_http(cx, &mut v);
        v
    }

    fn render_mode(&self, cx: Ctx<'_, '_>, out: &mut Vec<u8>, http: bool) {
        let start = out.len();
        // A separator is written only before further non-empty output, so empty fields
        // leave neither double nor trailing spaces.
        let mut sep = false;
        for n in &self.nodes {
            if matches!(n, Node::Sep) {
                sep = out.len() > start;
                continue;
            }
            let mark = out.len();
            if sep {
                out.push(b' ');
            }
            match n {
                Node::Sep => {}
                Node::Lit(l) => out.extend_from_slice(l),
                Node::Expr(e, f) => match e.eval(cx) {
                    Some(s) => {
                        let is_num = matches!(s, Sample::Int(_) | Sample::Bool(_));
                        if f.json && is_num {
                            s.write_to(out);
                        } else {
                            let b = s.to_bytes();
                            write_str(out, Some(&b), *f);
                        }
                    }
                    None if http => {}
                    None => write_str(out, None, *f),
                },
                Node::Var(v, f) => render_var(*v, *f, cx, out),
            }
            if sep && out.len() == mark + 1 {
                // Nothing was written: drop the separator and keep it pending.
                out.truncate(mark);
            } else {
                sep = false;
            }
        }
    }

    /// Renders into a new buffer (allocates).
    pub fn render_vec(&self, cx: Ctx<'_, '_>) -> Vec<u8> {
        let mut v = Vec::new();
        self.render(cx, &mut v);
        v
    }
}

fn write_str(out: &mut Vec<u8>, s: Option<&[u8]>, f: Flags) {
    let Some(s) = s else {
        if f.json {
            out.extend_from_slice(b"null");
        } else if f.quote {
            out.extend_from_slice(b"\"\"");
        } else {
            out.push(b'-');
        }
        return;
    };
    if f.json {
        out.push(b'"');
        if let Some(e) = crate::conv::json_escape(s, crate::conv::JsonMode::Utf8s) {
            out.extend_from_slice(&e);
        }
        out.push(b'"');
        return;
    }
    if f.quote {
        out.push(b'"');
    }
    if f.escape {
        for &c in s {
            if matches!(c, b'"' | b'\\' | b']') {
                out.push(b'\\');
            }
            out.push(c);
        }
    } else {
        out.extend_from_slice(s);
    }
    if f.quote {
        out.push(b'"');
    }
}

fn write_int(out: &mut Vec<u8>, v: Option<i64>, hex_width: Option<usize>, f: Flags) {
    match v {
        Some(v) => {
            let _ = match (f.hex, hex_width) {
                (true, Some(w)) => write!(out, "{v:0w$X}"),
                _ => write!(out, "{v}"),
            };
        }
        None => {
            if f.json {
                out.extend_from_slice(b"null");
            } else {
                out.push(b'-');
            }
        }
    }
}

fn write_ip(out: &mut Vec<u8>, ip: Option<IpAddr>, f: Flags) {
    match ip {
        Some(IpAddr::V4(v4)) if f.hex => {
            let _ = write!(out, "{:08X}", u32::from(v4));
        }
        Some(IpAddr::V6(v6)) if f.hex => {
            for b in v6.octets() {
                let _ = write!(out, "{b:02X}");
            }
        }
        Some(ip) => {
            let s = ip.to_string();
            write_str(out, Some(s.as_bytes()), f);
        }
        None => write_str(out, None, f),
    }
}

fn write_date(out: &mut Vec<u8>, ms: i64, offset: Option<i32>, with_ms: bool, f: Flags) {
    // `offset`: Some(o) → local time with a zone suffix; None → plain local (%t style).
    let secs = ms.div_euclid(1000);
    let mut tmp = Vec::with_capacity(32);
    match offset {
        Some(o) => {
            crate::time::log_date(&mut tmp, secs.saturating_add(i64::from(o)), None);
            tmp.push(b' ');
            let _ = crate::time::write_offset(&mut tmp, o);
        }
        None => crate::time::log_date(&mut tmp, secs, with_ms.then_some(ms)),
    }
    // Dates are never quoted (HAProxy writes them directly).
    let _ = f;
    out.extend_from_slice(&tmp);
}

fn render_var(v: LogVar, f: Flags, cx: Ctx<'_, '_>, out: &mut Vec<u8>) {
    use LogVar as L;
    let src = cx.src;
    let req = &cx.txn.req;
    let given = src.log_value(v);
    let int_or = |d: Option<i64>| given.as_int().or(d);
    let local = i64::from(src.utc_offset_secs());
    let time_of = |fallback: LogVar| match given {
        LogValue::TimeMs(t) => t,
        _ => match src.log_value(fallback) {
            LogValue::TimeMs(t) => t,
            _ => src.now_ms(),
        },
    };
    match v {
        L::Method => write_str(
            out,
            Some(&req.method).filter(|m| !m.is_empty()).map(|m| &**m),
            f,
        ),
        L::UriNoQuery => {
            let u = &*req.uri;
            let end = u.iter().position(|&c| c == b'?').unwrap_or(u.len());
            write_str(out, u.get(..end).filter(|s| !s.is_empty()), f)
        }
        L::PathOnly => write_str(out, Some(req.path()).filter(|s| !s.is_empty()), f),
        L::Query => {
            let u = &*req.uri;
            // No query string: nothing at all (recorded from haproxy 2.6).
            if let Some(q) = u.iter().position(|&c| c == b'?').and_then(|i| u.get(i..)) {
                write_str(out, Some(q), f)
            }
        }
        L::Uri => write_str(out, Some(&*req.uri).filter(|s| !s.is_empty()), f),
        L::Version => write_str(out, Some(&*req.version).filter(|s| !s.is_empty()), f),
        L::RequestLine => {
            if req.method.is_empty() {
                return write_str(out, None, f);
            }
            let mut line = Vec::with_capacity(req.method.len() + req.uri.len() + 10);
            line.extend_from_slice(&req.method);
            // A request that never parsed is logged as its method alone (`<BADREQ>`).
            if !req.uri.is_empty() || !req.version.is_empty() {
                line.push(b' ');
                line.extend_from_slice(&req.uri);
                // (No version: a line cut by `tune.http.logurilen`.)
                if !req.version.is_empty() {
                    line.push(b' ');
                    line.extend_from_slice(&req.version);
                }
            }
            write_str(out, Some(&line), f)
        }
        L::Status => write_int(
            out,
            int_or(cx.txn.res.as_ref().map(|r| i64::from(r.status))),
            None,
            f,
        ),
        L::Hostname => write_str(out, Some(src.hostname()), f),
        L::UniqueId => match given {
            LogValue::Str(s) => write_str(out, Some(s), f),
            _ => write_str(out, src.unique_id(), f),
        },
        L::Frontend | L::FrontendTransport => {
            let name = src.frontend_name().map(str::as_bytes);
            if v == L::FrontendTransport && src.ssl("ssl_fc", &[]) == Some(Sample::Bool(true)) {
                let mut n = name.unwrap_or(b"").to_vec();
                n.push(b'~');
                write_str(out, Some(&n), f)
            } else {
                write_str(out, name, f)
            }
        }
        L::Backend => write_str(out, src.backend_name().map(str::as_bytes), f),
        L::Server => match src.server_name() {
            Some(s) => write_str(out, Some(s.as_bytes()), f),
            None => write_str(out, Some(b"<NOSRV>"), f),
        },
        L::ClientIp => write_ip(out, given_ip(&given).or(src.src().map(|a| a.ip())), f),
        L::ClientPort => write_int(
            out,
            int_or(src.src().map(|a| i64::from(a.port()))),
            Some(4),
            f,
        ),
        L::FrontendIp => write_ip(out, given_ip(&given).or(src.dst().map(|a| a.ip())), f),
        L::FrontendPort => write_int(
            out,
            int_or(src.dst().map(|a| i64::from(a.port()))),
            Some(4),
            f,
        ),
        L::BackendSrcIp | L::ServerIp => write_ip(out, given_ip(&given), f),
        L::BackendSrcPort | L::ServerPort => write_int(out, given.as_int(), Some(4), f),
        L::Ts => write_int(
            out,
            Some(time_of(L::AcceptDate).div_euclid(1000)),
            Some(8),
            f,
        ),
        L::Rt => write_int(out, given.as_int(), Some(4), f),
        L::Pid => write_int(out, given.as_int(), Some(4), f),
        L::AcceptMs => {
            let ms = time_of(L::AcceptDate).rem_euclid(1000);
            let _ = write!(out, "{ms:03}");
        }
        L::AcceptDate => write_date(
            out,
            time_of(L::AcceptDate).saturating_add(local * 1000),
            None,
            true,
            f,
        ),
        L::ReqDate => write_date(
            out,
            time_of(L::AcceptDate).saturating_add(local * 1000),
            None,
            true,
            f,
        ),
        L::GmtDate => write_date(out, time_of(L::AcceptDate), Some(0), false, f),
        L::ReqDateGmt => write_date(out, time_of(L::AcceptDate), Some(0), false, f),
        L::LocalDate | L::ReqDateLocal => write_date(
            out,
            time_of(L::AcceptDate),
            Some(src.utc_offset_secs()),
            false,
            f,
        ),
        L::SslCipher | L::SslVersion => match given {
            LogValue::Str(s) => write_str(out, Some(s), f),
            _ => {
                let name = if v == L::SslCipher {
                    "ssl_fc_cipher"
                } else {
                    "ssl_fc_protocol"
                };
                let s = src.ssl(name, &[]);
                write_str(out, s.as_ref().map(|s| s.to_bytes()).as_deref(), f)
            }
        },
        L::TermState | L::TermStateCookie => match given {
            LogValue::Str(s) => out.extend_from_slice(s),
            _ => out.extend_from_slice(if v == L::TermState { b"--" } else { b"----" }),
        },
        L::CapturedReqCookie | L::CapturedResCookie => match given {
            LogValue::Str(s) => write_str(out, Some(s), f),
            _ => write_str(out, None, f),
        },
        L::CapturedReqHeaders | L::CapturedResHeaders => {
            if let LogValue::Captures(c) = given {
                if !c.is_empty() {
                    let mut tmp = vec![b'{'];
                    for (i, v) in c.iter().enumerate() {
                        if i > 0 {
                            tmp.push(b'|');
                        }
                        tmp.extend_from_slice(v);
                    }
                    tmp.push(b'}');
                    write_str(out, Some(&tmp), f);
                }
            }
        }
        L::CapturedReqHeadersClf | L::CapturedResHeadersClf => {
            if let LogValue::Captures(c) = given {
                for (i, v) in c.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    write_str(out, Some(v).filter(|v| !v.is_empty()).map(|v| &**v), f);
                }
            }
        }
        _ => match given {
            LogValue::Int(i) => write_int(out, Some(i), None, f),
            LogValue::Partial(i) => {
                out.push(b'+');
                write_int(out, Some(i), None, f)
            }
            LogValue::Str(s) => write_str(out, Some(s), f),
            LogValue::Ip(ip) => write_ip(out, Some(ip), f),
            _ => write_int(out, None, None, f),
        },
    }
}

fn given_ip(v: &LogValue<'_>) -> Option<IpAddr> {
    match v {
        LogValue::Ip(ip) => Some(*ip),
        _ => None,
    }
}
