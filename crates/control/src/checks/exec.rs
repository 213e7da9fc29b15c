//! Runs one check on the control shard's own executor (glommio networking: checks are not on
//! the request path): the connect/send/expect steps of a [`CheckScript`], judged by
//! `ringlb-health`, with HAProxy 2.6's deadlines:
//!
//! - the connection must be up within `inter`, or within `min(inter, timeout connect)` when
//!   both `timeout check` and `timeout connect` are set;
//! - once connected, the rest of the check gets `timeout check` when set, else what is left of
//!   `inter` ("timeout check" is an additional read timeout). Measured on haproxy 2.6 against a
//!   server that never answers: connect 200ms/check 600ms → 600ms, connect 600ms/check 200ms →
//!   200ms, no timeout check and inter 700ms → 700ms (tests/health_checks.rs). haproxy
//!   sometimes (its first check at start-up, or under load) waits until the connect deadline
//!   instead, when it notices the established connection late; ringlb always applies
//!   `timeout check` from the moment the connection is up.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use glommio::net::TcpStream;
use ringlb_config::model::ServerParams;
use ringlb_health::agent::{self, AgentParse};
use ringlb_health::lf::{CheckRun, CheckSource};
use ringlb_health::script::ResolvedConnect;
use ringlb_health::status::{connection_failure, CheckResult, CheckStatus, ConnFailure};
use ringlb_health::{evaluate_with, proxy_header, CheckKind, CheckScript, ExpectOutcome, Step};

use super::h2::H2Check;
use super::stream::{CheckStream, HandshakeError};

/// Where and how long a check may run.
#[derive(Debug, Clone)]
pub struct CheckTarget {
    /// The server's traffic address (its port is the default check port).
    pub server: SocketAddr,
    pub params: ServerParams,
    /// The server sends PROXY v2 on traffic (`send-proxy-v2`): `check-send-proxy` uses v2.
    pub proxy_v2: bool,
    /// `pp2-never-send-local`: v2 check headers are `PROXY` with the check connection's own
    /// addresses (haproxy before 2.2) instead of `LOCAL`.
    pub pp2_never_send_local: bool,
    /// The check's own `inter` (health: `inter`; agent: `agent-inter`).
    pub inter: Duration,
    pub timeout_connect: Option<Duration>,
    pub timeout_check: Option<Duration>,
    /// Most bytes kept from a response (`tune.bufsize`); a full buffer is judged as is.
    pub bufsize: usize,
    /// The server line's TLS settings as a client config, for checks over TLS (`check-ssl`,
    /// `connect ssl`, or `ssl` without a check `port`/`addr`); `None` when no check needs it.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Backend and server names (`be_name`, `srv_name` in check expressions).
    pub names: (String, String),
}

/// `strerror` text of an I/O error, without Rust's ` (os error N)` suffix.
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timeout")
}

/// Runs `f` until `deadline`; `TimedOut` after it.
pub(crate) async fn until<T>(
    deadline: Instant,
    f: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    futures_lite::future::or(f, async move {
        glommio::timer::sleep(left).await;
        Err(timed_out())
    })
    .await
}

fn ms_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl CheckTarget {
    fn connect_deadline(&self, start: Instant) -> Instant {
        let limit = match (self.timeout_check, self.timeout_connect) {
            (Some(_), Some(c)) => c.min(self.inter),
            _ => self.inter,
        };
        start + limit
    }

    fn read_deadline(&self, start: Instant) -> Instant {
        match self.timeout_check {
            Some(t) => Instant::now() + t,
            None => start + self.inter,
        }
    }

    fn address(&self, r: &ResolvedConnect) -> SocketAddr {
        let ip = r
            .addr
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .unwrap_or(self.server.ip());
        SocketAddr::new(ip, r.port.unwrap_or(self.server.port()))
    }
}

/// How a connection step failed, with HAProxy's tcp-check wording of where.
fn connect_failed(f: &ConnFailure, names_steps: bool, where_: &str, start: Instant) -> CheckResult {
    let mut r = connection_failure(f);
    if names_steps {
        r.info = Some(format!("{}{where_}", r.info.unwrap_or_default()));
    }
    r.duration_ms = Some(ms_since(start));
    r
}

async fn open(
    t: &CheckTarget,
    spec: &ResolvedConnect,
    deadline: Instant,
) -> Result<CheckStream, ConnFailure> {
    let addr = t.address(spec);
    let conn = until(deadline, async {
        TcpStream::connect(addr).await.map_err(io::Error::from)
    })
    .await;
    let mut stream = match conn {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(ConnFailure::Timeout),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(ConnFailure::Refused),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
            return Err(ConnFailure::Reset(strerror(&e)))
        }
        Err(e) => return Err(ConnFailure::Other(strerror(&e))),
    };
    if spec.send_proxy {
        let header = if t.proxy_v2 && t.pp2_never_send_local {
            let local = stream
                .local_addr()
                .map_err(|e| ConnFailure::Other(strerror(&io::Error::from(e))))?;
            ringlb_proxyproto::v2(Some((local, addr)), &ringlb_proxyproto::V2Extras::default())
        } else if t.proxy_v2 {
            proxy_header::v2_local()
        } else {
            let local = stream
                .local_addr()
                .map_err(|e| ConnFailure::Other(strerror(&io::Error::from(e))))?;
            proxy_header::v1(local, addr)
        };
        until(
            deadline,
            futures_lite::AsyncWriteExt::write_all(&mut stream, &header),
        )
        .await
        .map_err(|e| ConnFailure::Other(strerror(&e)))?;
    }
    if !spec.ssl {
        return Ok(CheckStream::Plain(stream));
    }
    let Some(mut config) = t.tls.clone() else {
        return Err(ConnFailure::Other("no TLS settings for this server".into()));
    };
    // `check-alpn` / `connect alpn` (only `http/1.1`: checks speak HTTP/1, see `check_tls`).
    if let Some(alpn) = &spec.alpn {
        let mut c = (*config).clone();
        c.alpn_protocols = alpn.split(',').map(|p| p.as_bytes().to_vec()).collect();
        config = std::sync::Arc::new(c);
    }
    match CheckStream::tls(stream, config, spec.sni.as_deref(), addr.ip(), deadline).await {
        Ok(s) => Ok(s),
        Err(HandshakeError::Timeout) => Err(ConnFailure::Tls(None)),
        Err(HandshakeError::Failed(why)) => Err(ConnFailure::Tls(Some(why))),
    }
}

/// What check expressions may read: the time, the host name, the environment.
fn check_source(t: &CheckTarget) -> CheckSource {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    CheckSource {
        now_ms: now,
        random: u64::try_from(now)
            .unwrap_or(0)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        hostname: crate::mail::hostname().into_bytes(),
        backend: t.names.0.clone(),
        server: t.names.1.clone(),
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_encoded_bytes())))
            .collect(),
    }
}

/// haproxy's `Socket error` (an HTTP/2 check that failed below HTTP).
fn sock_err(start: Instant) -> CheckResult {
    let mut r = CheckResult::new(CheckStatus::SockErr);
    r.duration_ms = Some(ms_since(start));
    r
}

/// An HTTP/2 check that failed below HTTP, as haproxy 2.6's h2 mux reports it (recorded
/// against servers that fail after the preface): a reset is `Socket error` with the errno
/// text; a close before any byte leaves haproxy waiting for the server's SETTINGS until the
/// check's time is out (`timeout`, at `deadline`); a protocol error is `Socket error` alone.
async fn h2_failure(
    e: &io::Error,
    received_any: bool,
    timeout: CheckResult,
    deadline: Instant,
    start: Instant,
) -> CheckResult {
    let mut r = match e.kind() {
        io::ErrorKind::TimedOut => timeout,
        io::ErrorKind::UnexpectedEof if !received_any => {
            let left = deadline.saturating_duration_since(Instant::now());
            glommio::timer::sleep(left).await;
            timeout
        }
        _ if e.raw_os_error().is_some() => ringlb_health::expect::socket_error(&strerror(e), ""),
        _ => CheckResult::new(CheckStatus::SockErr),
    };
    r.duration_ms = Some(ms_since(start));
    r
}

/// Reads once into `buf` (bounded by `max`); `Ok(true)` at EOF or when the buffer is full.
async fn read_some(
    stream: &mut CheckStream,
    buf: &mut Vec<u8>,
    max: usize,
    deadline: Instant,
) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    let room = max.saturating_sub(buf.len()).min(chunk.len());
    if room == 0 {
        return Ok(true);
    }
    let n = stream
        .read(chunk.get_mut(..room).unwrap_or(&mut []), deadline)
        .await?;
    buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    Ok(n == 0 || buf.len() >= max)
}

/// Runs a health-check script once; the result to record.
/// `server_state`: the `x-haproxy-server-state` value for `http-check send-state`.
pub async fn run_health(
    script: &CheckScript,
    t: &CheckTarget,
    unix_time: u32,
    server_state: Option<&str>,
) -> CheckResult {
    let start = Instant::now();
    let kind = script.kind();
    let http = kind == CheckKind::Http;
    let mut stream: Option<CheckStream> = None;
    // The connection of an HTTP check that speaks HTTP/2 (then `stream` is `None`).
    let mut h2c: Option<H2Check> = None;
    let mut deadline = t.connect_deadline(start);
    let mut received = Vec::new();
    let mut closed = false;
    let mut last_pass: Option<CheckResult> = None;
    let mut first_send = true;
    // Check variables and log-format payloads: a fresh set of variables for each run.
    let mut run = CheckRun::new();
    let uses_lf = script.steps().iter().any(|s| match s {
        Step::Var(_) | Step::SendLf(_) => true,
        Step::Expect(e) => e.uses_lf(),
        _ => false,
    });
    let src = if uses_lf {
        check_source(t)
    } else {
        CheckSource::default()
    };
    // The last rule run decides how a passing tcp-check reports (haproxy 2.6's end of
    // `tcpcheck_main`): an expect its own result, a connect `L4OK` (`L6OK` over TLS),
    // anything else `L7OK`.
    let mut last_rule: Option<&Step> = None;
    // The connection was reset as it came up (see `ConnFailure::Reset`).
    let mut reset: Option<String> = None;
    for (index, step) in script.steps().iter().enumerate() {
        last_rule = Some(step);
        // A log-format payload is rendered now, then sent as a constant one would be.
        let lf;
        let (step, lf_state_at) = match step {
            Step::SendLf(p) => match run.render(p, &src) {
                Ok(r) => {
                    lf = Step::Send(r.bytes);
                    (&lf, r.state_offset)
                }
                Err(why) => {
                    let mut r = CheckResult::new(CheckStatus::L7Rsp);
                    r.info = Some(why);
                    r.duration_ms = Some(ms_since(start));
                    return r;
                }
            },
            other => (other, None),
        };
        match step {
            Step::Var(v) => run.apply(v, &src),
            Step::SendLf(_) => {}
            Step::Connect(spec) => {
                let resolved = spec.resolve(&t.params, Some(t.server.port()));
                let where_ = if spec.inherit && spec.step == 0 {
                    " at initial connection step of tcp-check".to_string()
                } else {
                    // haproxy 2.6 names the rule's own port (`(connect port 6379)`).
                    let mut w = format!(" at step {} of tcp-check (connect", spec.step);
                    if let Some(p) = spec.port {
                        w.push_str(&format!(" port {p}"));
                    }
                    w.push(')');
                    if let Some(c) = &spec.comment {
                        w.push_str(&format!(" comment: '{c}'"));
                    }
                    w
                };
                if let Some(old) = stream.take() {
                    old.close().await;
                }
                h2c = None;
                reset = None;
                // A plain HTTP/1 or TCP connection (TLS and h2 have their own handshakes).
                let h2 = http && resolved.speaks_h2(None);
                let plain = !(resolved.ssl || h2);
                let s = match open(t, &resolved, deadline).await {
                    Ok(s) => s,
                    // Up, then reset: the sends go nowhere, the next expect reports it.
                    Err(ConnFailure::Reset(e)) if plain => {
                        reset = Some(e);
                        deadline = t.read_deadline(start);
                        continue;
                    }
                    // Over TLS haproxy is in its handshake when the reset comes.
                    Err(ConnFailure::Reset(_)) if resolved.ssl => {
                        let f = ConnFailure::Tls(Some("SSL handshake failure".into()));
                        return connect_failed(&f, script.names_steps(), &where_, start);
                    }
                    Err(f) => return connect_failed(&f, script.names_steps(), &where_, start),
                };
                deadline = t.read_deadline(start);
                if http && resolved.speaks_h2(s.alpn()) {
                    match H2Check::start(s, deadline).await {
                        Ok(h) => h2c = Some(h),
                        Err(e) => {
                            let timeout = CheckResult::new(CheckStatus::L7Timeout);
                            return h2_failure(&e, false, timeout, deadline, start).await;
                        }
                    }
                } else {
                    stream = Some(s);
                }
                received.clear();
                closed = false;
            }
            Step::Send(_) if reset.is_some() => {}
            Step::Send(bytes) => {
                if stream.is_none() && h2c.is_none() {
                    return CheckResult::new(CheckStatus::SockErr);
                }
                let mut data = bytes.clone();
                if let (true, Some(at)) = (first_send, script.time_offset) {
                    if let Some(slot) = data.get_mut(at..at + 4) {
                        slot.copy_from_slice(&unix_time.to_be_bytes());
                    }
                }
                first_send = false;
                let at = script
                    .state_header_at
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, at)| lf_state_at.unwrap_or(*at));
                if let (Some(at), Some(state)) = (at.filter(|a| *a <= data.len()), server_state) {
                    let line = format!("x-haproxy-server-state: {state}\r\n");
                    data.splice(at..at, line.into_bytes());
                }
                if let Some(h) = h2c.as_mut() {
                    if let Err(e) = h.send(&data, deadline).await {
                        let timeout = CheckResult::new(CheckStatus::L7Timeout);
                        let any = h.received_any();
                        return h2_failure(&e, any, timeout, deadline, start).await;
                    }
                    received.clear();
                    closed = false;
                    continue;
                }
                let Some(s) = stream.as_mut() else {
                    return CheckResult::new(CheckStatus::SockErr);
                };
                if let Err(e) = s.write_all(&data, deadline).await {
                    // The connection is up: haproxy reports `Socket error` with the errno
                    // (`Layer7 timeout` once the check's time is out).
                    let mut r = if e.kind() == io::ErrorKind::TimedOut {
                        let mut r = script.send_failure(index, "");
                        r.status = CheckStatus::L7Timeout;
                        r
                    } else {
                        script.send_failure(index, &strerror(&e))
                    };
                    r.duration_ms = Some(ms_since(start));
                    return r;
                }
                received.clear();
                closed = false;
            }
            Step::Expect(rule) => {
                if let Some(e) = &reset {
                    let mut r = rule
                        .read_error(&[], http, script.names_steps(), e)
                        .unwrap_or_else(|| connection_failure(&ConnFailure::Reset(e.clone())));
                    r.duration_ms = Some(ms_since(start));
                    return r;
                }
                if stream.is_none() && h2c.is_none() {
                    return CheckResult::new(CheckStatus::SockErr);
                }
                loop {
                    // `on-success` / `on-error` formats read the run's variables.
                    let render = |f: &ringlb_health::lf::LogFormat, data: &[u8]| {
                        run.render_info(f, &src, data)
                    };
                    match evaluate_with(rule, &received, closed, http, &render) {
                        ExpectOutcome::Pass(r) => {
                            last_pass = Some(r);
                            break;
                        }
                        ExpectOutcome::Fail(mut r) => {
                            r.duration_ms = Some(ms_since(start));
                            return r;
                        }
                        ExpectOutcome::NeedMore if closed => {
                            let mut r = CheckResult::new(CheckStatus::L7Rsp);
                            r.duration_ms = Some(ms_since(start));
                            return r;
                        }
                        ExpectOutcome::NeedMore => {}
                    }
                    let got = match (h2c.as_mut(), stream.as_mut()) {
                        (Some(h), _) => h.read_some(&mut received, t.bufsize, deadline).await,
                        (None, Some(s)) => read_some(s, &mut received, t.bufsize, deadline).await,
                        (None, None) => return sock_err(start),
                    };
                    match got {
                        Ok(done) => closed = done,
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            let mut r = rule.timeout_result(script.names_steps());
                            r.duration_ms = Some(ms_since(start));
                            return r;
                        }
                        Err(e) if h2c.is_some() => {
                            let any = h2c.as_ref().is_some_and(H2Check::received_any);
                            let timeout = rule.timeout_result(script.names_steps());
                            return h2_failure(&e, any, timeout, deadline, start).await;
                        }
                        Err(e) => {
                            let error = strerror(&e);
                            match rule.read_error(&received, http, script.names_steps(), &error) {
                                Some(mut r) => {
                                    r.duration_ms = Some(ms_since(start));
                                    return r;
                                }
                                None => closed = true,
                            }
                        }
                    }
                }
            }
        }
    }
    let tls = matches!(stream, Some(CheckStream::Tls(_)));
    drop(h2c);
    if let Some(s) = stream.take() {
        s.close().await;
    }
    let user_tcp = script.names_steps();
    let connected = if tls {
        CheckStatus::L6Ok
    } else {
        CheckStatus::L4Ok
    };
    let mut r = match (kind, last_pass, last_rule) {
        (CheckKind::Http, Some(r), _) => r,
        (CheckKind::TcpCheck, Some(mut r), Some(Step::Expect(_))) => {
            if r.info.is_none() && user_tcp {
                r.info = Some("(tcp-check)".into());
            }
            r
        }
        (CheckKind::TcpCheck, _, Some(Step::Connect(c))) => {
            let mut r = CheckResult::new(connected);
            if !(c.inherit && c.step == 0) {
                r.info = Some("(tcp-check)".into());
            }
            r
        }
        (CheckKind::TcpCheck, _, Some(_)) => {
            let mut r = CheckResult::new(CheckStatus::L7Ok);
            r.info = Some("(tcp-check)".into());
            r
        }
        // A connection-only check over TLS passes at layer 6, as in haproxy.
        _ => CheckResult::new(connected),
    };
    r.duration_ms = Some(ms_since(start));
    r
}

/// Runs an agent check once: its reply, or why it could not be had.
pub async fn run_agent(
    script: &CheckScript,
    t: &CheckTarget,
) -> Result<(AgentParse, u64), CheckResult> {
    let start = Instant::now();
    let mut stream: Option<CheckStream> = None;
    let mut deadline = t.connect_deadline(start);
    for step in script.steps() {
        match step {
            Step::Connect(spec) => {
                let resolved = spec.resolve(&t.params, Some(t.server.port()));
                match open(t, &resolved, deadline).await {
                    Ok(s) => stream = Some(s),
                    Err(f) => return Err(connect_failed(&f, false, "", start)),
                }
                deadline = t.read_deadline(start);
            }
            Step::Send(bytes) => {
                if let Some(s) = stream.as_mut() {
                    if s.write_all(bytes, deadline).await.is_err() {
                        return Err(CheckResult::new(CheckStatus::L4Con));
                    }
                }
            }
            Step::Expect(_) | Step::Var(_) | Step::SendLf(_) => {}
        }
    }
    let Some(mut s) = stream else {
        return Err(CheckResult::new(CheckStatus::SockErr));
    };
    let mut buf = Vec::new();
    let mut closed = false;
    loop {
        if closed && buf.is_empty() {
            // haproxy 2.6 runs the agent as a tcp-check ruleset (connect, [send,] expect).
            s.close().await;
            let mut r = CheckResult::new(CheckStatus::L7Rsp);
            r.info = Some(format!(
                "TCPCHK got an empty response at step {}",
                script.steps().len() + 1
            ));
            r.duration_ms = Some(ms_since(start));
            return Err(r);
        }
        match agent::parse(&buf, closed) {
            AgentParse::NeedMore if !closed => {}
            other => {
                s.close().await;
                return Ok((other, ms_since(start)));
            }
        }
        match read_some(&mut s, &mut buf, t.bufsize, deadline).await {
            Ok(done) => closed = done,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                let mut r = CheckResult::new(CheckStatus::L7Timeout);
                r.duration_ms = Some(ms_since(start));
                return Err(r);
            }
            // haproxy 2.6 (the agent is a tcp-check ruleset): an error before any byte is
            // `Socket error` with the errno text (recorded: `Connection reset by peer`).
            Err(e) if buf.is_empty() => {
                s.close().await;
                let mut r = ringlb_health::expect::socket_error(&strerror(&e), "");
                r.duration_ms = Some(ms_since(start));
                return Err(r);
            }
            Err(_) => closed = true,
        }
    }
}
