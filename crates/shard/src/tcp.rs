//! `mode tcp` sessions: pick a server (`balance roundrobin`), connect with retries, then forward
//! bytes both ways with half-close (see `tunnel.rs`).

use std::cell::{Cell, RefCell};
use std::task::{Poll, Waker};

use futures_lite::future;
use ringlb_rules::{TcpPhase, TcpVerdict};
use ringlb_uring::{RecvBuf, SendBuf};

use crate::conn::{ClientConn, Io};

use crate::server::{lease_and_connect, ConnectInfo};
use crate::tunnel::{self, TunnelTimeouts};
use crate::Ctx;

/// Serves one accepted connection of a TCP-mode frontend.
pub async fn serve(ctx: &Ctx, frontend: usize, client: ClientConn, sess: crate::live::SessRef) {
    let topo = &ctx.state.topo; // borrowed: no shared refcount traffic per connection
    let accepted = std::time::Instant::now();
    let Some(fe) = topo.frontends.get(frontend) else {
        return;
    };
    let mut stick = crate::stick::StickSession::new(&ctx.state);
    // `tcp-request connection|session|content set-src|set-dst` and `content set-log-level`:
    // kept for the server choice and log.
    let fx = crate::rules::RuleEffects::default();
    let at = (frontend, ctx.live.bind_of(sess));
    if !crate::stick::connection_rules(ctx, fe, at, &client, &mut stick, &fx) {
        return;
    }
    // haproxy numbers every stream, a TCP session's too, in the process request count
    // (`CumReq`, `haproxy_process_requests_total`).
    ctx.state.counters.borrow_mut().process.cum_req += 1;
    // Cloned once per connection, and only for TLS connections (plain ones have none).
    let tls = client.tls_facts();
    let Some((backend, inspected)) = inspect(ctx, fe, &client, tls.as_ref(), &mut stick, &fx).await
    else {
        return;
    };
    let Some(mut choice) = backend_rules(
        ctx,
        fe,
        backend,
        &client,
        tls.as_ref(),
        &inspected,
        &mut stick,
        &fx,
    ) else {
        return;
    };
    let Some(be) = topo.backends.get(backend) else {
        return; // HAProxy closes: no backend to serve
    };
    // `persist rdp-cookie`: after `use-server` (HAProxy's analyser order).
    if choice.forced.is_none() {
        choice.forced = crate::persist::rdp_server(ctx, backend, be, &inspected, choice.persist);
    }
    ctx.live.set_target(sess, backend, None);
    ctx.live.count_request(sess);
    let input = ringlb_balance::PickInput {
        src: fx.src.get().or_else(|| client.peer_addr()).map(|a| a.ip()),
        key: choice.hash_key.as_deref(),
        ..Default::default()
    };
    let mut info = ConnectInfo {
        forced: choice.forced,
        ..ConnectInfo::default()
    };
    let from = crate::server::ClientSide {
        src: fx.src.get().or_else(|| client.peer_addr()),
        dst: fx.dst.get().or_else(|| client.tcp().local_addr().ok()),
        tls: client.tls_facts().filter(|_| be.proxy_v2),
    };
    let connected = lease_and_connect(
        ctx,
        backend,
        &input,
        crate::server::Reuse::Never,
        &mut info,
        &from,
    )
    .await;
    if let Ok((lease, conn)) = &connected {
        choice.commit(ctx, be, lease.server);
        ctx.live
            .set_target(sess, backend, Some((lease.server, conn.raw_fd())));
    }
    ctx.state
        .counters
        .borrow_mut()
        .connect_outcome(backend, &info);
    let Ok((lease, server)) = connected else {
        // Nothing to answer in TCP mode: closing is HAProxy's behaviour (logged as SC).
        let log = SessionLog {
            accepted,
            info: &info,
            server_tls: None,
            server: None,
            bytes: (0, 0),
            term: *b"SC",
        };
        log_session(ctx, frontend, backend, &client, &log, &fx);
        return;
    };
    let now_ms = ctx.state.board.now_ms();
    ctx.state
        .counters
        .borrow_mut()
        .stream_start(backend, lease.server, now_ms, info.balanced);
    // The tunnel timeout supersedes client/server timeouts once both sides are connected.
    let tunnel = be.timeouts.tunnel.or(fe.timeouts.tunnel);
    let t = TunnelTimeouts {
        client: tunnel.or(fe.timeouts.client),
        server: tunnel.or(be.timeouts.server),
        client_fin: fe.timeouts.client_fin.or(fe.timeouts.client),
        server_fin: be.timeouts.server_fin.or(be.timeouts.server),
        client_independent: fe.independent_streams,
        server_independent: be.independent_streams,
    };
    // The bytes `tcp-request content` inspected go first.
    let early = inspected.len() as u64;
    if !inspected.is_empty() {
        let (r, _) = server.send_all(SendBuf::from_vec(inspected)).await;
        if r.is_err() {
            let mut c = ctx.state.counters.borrow_mut();
            c.stream_end(backend, lease.server);
            return;
        }
    }
    let gate_rules = be
        .rules
        .as_ref()
        .filter(|r| r.has_tcp_rules(TcpPhase::ResponseContent));
    // The server connection's TLS facts (`ssl_bc_*`, `ssl_s_*`), copied only where the
    // response rules or the log line may read them.
    let log_tls = matches!(&fe.log_line,
        crate::topology::LogLine::Format(lf) if lf.uses_server_tls());
    let server_tls = if gate_rules.is_some() || log_tls {
        server.tls_facts()
    } else {
        None
    };
    let (up, down, end, ended_by_proxy) = match gate_rules {
        // `on-marked-down shutdown-sessions` / `on-marked-up shutdown-backup-sessions`: the
        // tunnel is dropped and both connections closed (haproxy's `DD` / `UD`).
        None => match lease.unless_killed(tunnel::run(&client, &*server, t)).await {
            Ok((up, down, end)) => (up, down, end, None),
            Err(cause) => (0, 0, tunnel::TunnelEnd::Error, Some([cause, b'D'])),
        },
        Some(rules) => {
            let gate = ResponseGate {
                inner: &*server,
                rules,
                host: HostParts {
                    ctx,
                    fe,
                    be_name: &be.name,
                    client: &client,
                    tls: tls.as_ref(),
                    server_tls: server_tls.as_ref(),
                    fx: &fx,
                },
                stick: RefCell::new(&mut stick),
                state: Cell::new(GateState::Inspecting),
                rejected: Flag::default(),
                wait_limit: t.server,
            };
            // A reject ends the whole session at once: the tunnel (with its pending reads)
            // is dropped and both connections closed.
            let tunnel = async { Some(tunnel::run(&client, &gate, t).await) };
            let gated = lease.unless_killed(future::or(tunnel, async {
                gate.rejected.wait().await;
                None
            }));
            match gated.await {
                Ok(Some((up, down, end))) => (up, down, end, None),
                Ok(None) => {
                    // The client sees a plain close (haproxy 2.6, recorded), the server a reset.
                    server.set_linger_zero();
                    // `tcp-response content reject`: closed by the proxy during data (PD).
                    (0, 0, tunnel::TunnelEnd::Error, Some(*b"PD"))
                }
                Err(cause) => (0, 0, tunnel::TunnelEnd::Error, Some([cause, b'D'])),
            }
        }
    };
    let up = up + early;
    stick.bytes(up, down);
    {
        let mut c = ctx.state.counters.borrow_mut();
        c.bytes(frontend, Some(backend), Some(lease.server), up, down);
        if let Some(l) = c.listener(frontend, ctx.live.bind_of(sess)) {
            l.bytes_in += up;
            l.bytes_out += down;
        }
        c.stream_end(backend, lease.server);
    }
    let log = SessionLog {
        accepted,
        info: &info,
        server_tls: server_tls.as_ref(),
        server: Some(lease.server),
        bytes: (up, down),
        term: ended_by_proxy.unwrap_or(match end {
            tunnel::TunnelEnd::ClientTimeout => *b"cD",
            tunnel::TunnelEnd::ServerTimeout => *b"sD",
            tunnel::TunnelEnd::Error => *b"SD",
            tunnel::TunnelEnd::Closed => *b"--",
        }),
    };
    log_session(ctx, frontend, backend, &client, &log, &fx);
}

/// `tcp-request content` rules, then `use_backend`: the backend to connect to and the request
/// bytes read while inspecting (to send first). `None`: a rule closed the connection, or no
/// backend matched. Bytes are read only while a rule waits for them (a condition on
/// `req.ssl_sni`, `req.len`... that may still change) and for at most `tcp-request
/// inspect-delay`; they are copied into one buffer because the rules need them contiguous.
async fn inspect(
    ctx: &Ctx,
    fe: &crate::topology::FrontendRt,
    client: &ClientConn,
    tls: Option<&ringlb_tls::TlsFacts>,
    stick: &mut crate::stick::StickSession,
    fx: &crate::rules::RuleEffects,
) -> Option<(usize, Vec<u8>)> {
    let Some(rules) = &fe.rules else {
        return fe.backend.map(|b| (b, Vec::new()));
    };
    let delay = rules.inspect_delay_ms.map(std::time::Duration::from_millis);
    let deadline = delay.map(|d| std::time::Instant::now() + d);
    let bufsize = ctx.state.topo.tune.bufsize.max(1024);
    let mut payload: Vec<u8> = Vec::new();
    let mut eof = false;
    let mut resume = 0;
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let mut txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::default());
        txn.payload_final = eof || payload.len() >= bufsize || left.is_none_or(|l| l.is_zero());
        txn.vars = fx.tcp_vars.take();
        let mut host = tcp_host(ctx, fe, client, tls, &payload, stick, fx);
        let verdict = rules.tcp_rules_from(TcpPhase::Content, resume, &mut host, &mut txn);
        fx.tcp_vars.replace(txn.vars.clone());
        match verdict {
            TcpVerdict::Wait { resume: r } => {
                resume = r;
                match crate::time::within(left, client.recv()).await {
                    Ok(Ok(Some(b))) => payload.extend_from_slice(b.bytes()),
                    Ok(Ok(None)) => eof = true,
                    Ok(Err(_)) => return None,
                    Err(_) => {} // the inspect-delay is over: decide with what arrived
                }
                continue;
            }
            TcpVerdict::Reject { silent } => {
                if silent {
                    client.set_linger_zero();
                }
                return None;
            }
            // No TCP-mode service exists (prometheus-exporter is HTTP only): close.
            TcpVerdict::UseService(_) | TcpVerdict::Close => return None,
            TcpVerdict::Accept | TcpVerdict::Continue | TcpVerdict::ExpectProxy => {}
        }
        let backend = match rules.select_backend(&host, &txn) {
            // A dynamic name that matches no backend: HAProxy closes the connection.
            Some(name) => ctx
                .state
                .topo
                .backends
                .iter()
                .position(|b| b.name == *name)?,
            None => fe.backend?,
        };
        return Some((backend, payload));
    }
}

/// The backend's own rules on what the frontend inspected: `tcp-request content` (a reject
/// closes: `None`), then `use-server` and `stick` (the server to force, the keys to store).
#[allow(clippy::too_many_arguments)]
fn backend_rules(
    ctx: &Ctx,
    fe: &crate::topology::FrontendRt,
    backend: usize,
    client: &ClientConn,
    tls: Option<&ringlb_tls::TlsFacts>,
    payload: &[u8],
    stick: &mut crate::stick::StickSession,
    fx: &crate::rules::RuleEffects,
) -> Option<crate::msg_rules::ServerChoice> {
    let b = ctx.state.topo.backends.get(backend)?;
    let Some(r) = &b.rules else {
        return Some(crate::msg_rules::ServerChoice::default());
    };
    let mut txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::default());
    txn.vars = fx.tcp_vars.take();
    let mut host = tcp_host(ctx, fe, client, tls, payload, stick, fx);
    host.backend = Some(&b.name);
    let verdict = r.tcp_rules(TcpPhase::Content, &mut host, &mut txn);
    fx.tcp_vars.replace(txn.vars.clone());
    if let TcpVerdict::Reject { silent } = verdict {
        if silent {
            client.set_linger_zero();
        }
        return None;
    }
    Some(crate::msg_rules::server_choice(
        ctx, backend, b, r, &host, &txn,
    ))
}

/// The rules' view of a TCP connection and the bytes inspected so far.
fn tcp_host<'a>(
    ctx: &'a Ctx,
    fe: &'a crate::topology::FrontendRt,
    client: &ClientConn,
    tls: Option<&'a ringlb_tls::TlsFacts>,
    payload: &'a [u8],
    stick: &'a mut crate::stick::StickSession,
    fx: &'a crate::rules::RuleEffects,
) -> crate::rules::Host<'a> {
    crate::rules::Host {
        req_body: None,
        cap: None,
        effects: Some(fx),
        res_payload: None,
        payload: Some(payload),
        ctx,
        frontend: &fe.name,
        backend: None,
        server: None,
        src: fx.src.get().or_else(|| client.peer_addr()),
        dst: fx.dst.get().or_else(|| client.tcp().local_addr().ok()),
        tls,
        server_tls: None,
        log: None,
        unique_id: None,
        stick: Some(stick),
    }
}

/// What a TCP session's log line reports.
struct SessionLog<'a> {
    accepted: std::time::Instant,
    info: &'a ConnectInfo,
    /// The TLS connection to the server, kept when the log format reads it.
    server_tls: Option<&'a ringlb_tls::ServerTlsFacts>,
    server: Option<usize>,
    /// (client → server, server → client) bytes.
    bytes: (u64, u64),
    term: [u8; 2],
}

/// `option tcplog` / `log-format` line at the end of a TCP session.
fn log_session(
    ctx: &Ctx,
    frontend: usize,
    backend: usize,
    client: &ClientConn,
    s: &SessionLog<'_>,
    fx: &crate::rules::RuleEffects,
) {
    let topo = &ctx.state.topo;
    let Some(fe) = topo.frontends.get(frontend) else {
        return;
    };
    let crate::topology::LogLine::Format(lf) = &fe.log_line else {
        return;
    };
    if fe.dontlognull && s.bytes.0 == 0 {
        return;
    }
    let tt = s.accepted.elapsed().as_millis() as i64;
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let be = topo.backends.get(backend);
    let srv = s.server.and_then(|i| ctx.state.server(backend, i));
    let facts = crate::rules::LogFacts {
        accept_unix_ms: unix_now - tt,
        th: 0,
        ti: 0,
        tr_req: -1,
        tw: s.info.queue.as_millis() as i64,
        tc: if s.server.is_some() {
            s.info.connect.as_millis() as i64
        } else {
            -1
        },
        tr: -1,
        td: -1,
        ta: tt,
        tt,
        status: -1,
        bytes_out: s.bytes.1 as i64,
        bytes_in: s.bytes.0 as i64,
        term: crate::rules::LogFacts::term_of(s.term),
        act_conn: i64::from(ctx.state.conns.get()),
        fe_conn: ctx
            .state
            .counters
            .borrow()
            .frontends
            .get(frontend)
            .map_or(0, |f| i64::from(f.cur_sess)),
        be_conn: 0,
        srv_conn: 0,
        retries: i64::from(s.info.retries),
        asap: false,
        pid: i64::from(std::process::id()),
        request_counter: 0,
        server_addr: srv.as_ref().map(|x| x.addr.get()),
        captured_req: Vec::new(),
        captured_res: Vec::new(),
        cookie_req: Vec::new(),
        cookie_res: Vec::new(),
    };
    let tls = client.tls_facts();
    let mut host = crate::rules::Host {
        req_body: None,
        cap: None,
        effects: None,
        res_payload: None,
        payload: None,
        ctx,
        frontend: &fe.name,
        backend: be.map(|b| b.name.as_str()),
        server: srv.as_ref().map(|x| x.rt.name.as_str()),
        src: fx.src.get().or_else(|| client.peer_addr()),
        dst: fx.dst.get().or_else(|| client.tcp().local_addr().ok()),
        tls: tls.as_ref(),
        server_tls: s.server_tls,
        log: Some(&facts),
        unique_id: None,
        stick: None,
    };
    let mut txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::default());
    txn.vars = fx.tcp_vars.take();
    // `%ID` in TCP mode: computed at log time, as haproxy's `strm_log` does.
    let uid = fe
        .rules
        .as_ref()
        .and_then(|r| r.unique_id_format.as_ref())
        .map(|f| f.render_http_vec(ringlb_rules::Ctx::new(&host, &txn)));
    host.unique_id = uid.as_deref();
    let mut line = Vec::with_capacity(192);
    let cx = ringlb_rules::Ctx::new(&host, &txn);
    lf.render(cx, &mut line);
    // `option log-separate-errors` picks the level; `set-log-level` overrides it.
    let Some(level) = crate::log::traffic_level(fe, &facts.term, facts.retries, -1) else {
        return;
    };
    let level = match fx.log_level.get() {
        crate::rules::LogLevel::Silent => return,
        crate::rules::LogLevel::Level(l) => l,
        crate::rules::LogLevel::Default => level,
    };
    crate::log::emit_traffic(ctx, fe, cx, level, &line);
}

/// Where a [`ResponseGate`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GateState {
    /// `tcp-response content` rules have not decided yet.
    Inspecting,
    /// Decided: bytes flow as they come.
    Open,
    /// `close`: what the server sent went out; the next read is the end.
    Closing,
}

/// What a gate needs to build the rules' view of the session.
struct HostParts<'a> {
    ctx: &'a Ctx,
    fe: &'a crate::topology::FrontendRt,
    be_name: &'a str,
    client: &'a ClientConn,
    tls: Option<&'a ringlb_tls::TlsFacts>,
    server_tls: Option<&'a ringlb_tls::ServerTlsFacts>,
    fx: &'a crate::rules::RuleEffects,
}

/// A one-shot flag a task can wait on (set by the gate on `reject`).
#[derive(Default)]
struct Flag {
    set: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Flag {
    fn raise(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        future::poll_fn(|cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
    }
}

/// The server side of a TCP session whose backend has `tcp-response content` rules: the
/// tunnel reads the server through it. Until the rules decide, it buffers what the server
/// sends (the client's bytes keep flowing to the server meanwhile, so protocols where the
/// client speaks first work) and runs the rules each time more arrives, within `tcp-response
/// inspect-delay`; then it hands the buffered bytes on (`accept`, no match), ends the
/// server side after them (`close`), or raises `rejected` (`reject`, `silent-drop`).
struct ResponseGate<'a, S> {
    inner: &'a S,
    rules: &'a ringlb_rules::ProxyRules,
    host: HostParts<'a>,
    stick: RefCell<&'a mut crate::stick::StickSession>,
    state: Cell<GateState>,
    rejected: Flag,
    /// Bound on waiting for the server's first bytes without an inspect-delay (the
    /// session's idle timeout).
    wait_limit: Option<std::time::Duration>,
}

impl<S: Io> ResponseGate<'_, S> {
    /// Runs the rules on `payload` (`last`: no more data will be waited for).
    fn decide(&self, payload: &[u8], last: bool, resume: usize) -> TcpVerdict {
        let h = &self.host;
        let mut txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::default());
        txn.payload_final = last;
        txn.vars = h.fx.tcp_vars.take();
        let mut stick = self.stick.borrow_mut();
        let mut host = tcp_host(h.ctx, h.fe, h.client, h.tls, &[], &mut stick, h.fx);
        host.backend = Some(h.be_name);
        host.res_payload = Some(payload);
        host.server_tls = h.server_tls;
        let verdict =
            self.rules
                .tcp_rules_from(TcpPhase::ResponseContent, resume, &mut host, &mut txn);
        h.fx.tcp_vars.replace(std::mem::take(&mut txn.vars));
        verdict
    }

    async fn inspect(&self) -> std::io::Result<Option<RecvBuf>> {
        let delay = self
            .rules
            .res_inspect_delay_ms
            .map(std::time::Duration::from_millis);
        let deadline = delay.map(|d| std::time::Instant::now() + d);
        let bufsize = self.host.ctx.state.topo.tune.bufsize.max(1024);
        let mut payload: Vec<u8> = Vec::new();
        let (mut eof, mut resume) = (false, 0);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let expired = left.is_some_and(|l| l.is_zero());
            // As haproxy, the rules run once the server sent something (or closed, or the
            // delay is over), not before.
            if !payload.is_empty() || eof || expired {
                let last = eof || expired || payload.len() >= bufsize || deadline.is_none();
                match self.decide(&payload, last, resume) {
                    TcpVerdict::Wait { resume: r } => resume = r,
                    TcpVerdict::Reject { .. } => {
                        self.rejected.raise();
                        // Never resolves: the session is being dropped.
                        future::pending::<()>().await;
                    }
                    TcpVerdict::Close => {
                        self.inner.finish().await;
                        self.state.set(GateState::Closing);
                        return Ok((!payload.is_empty()).then(|| RecvBuf::from_vec(payload)));
                    }
                    _ => {
                        self.state.set(GateState::Open);
                        if payload.is_empty() && !eof {
                            return self.inner.recv().await;
                        }
                        return Ok((!payload.is_empty()).then(|| RecvBuf::from_vec(payload)));
                    }
                }
            }
            match crate::time::within(left.or(self.wait_limit), self.inner.recv()).await {
                Ok(Ok(Some(b))) => payload.extend_from_slice(b.bytes()),
                Ok(Ok(None)) => eof = true,
                Ok(Err(e)) => return Err(e),
                // The inspect-delay is over: decide with what arrived.
                Err(_) if left.is_some() => {}
                Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
            }
        }
    }
}

impl<S: Io> Io for ResponseGate<'_, S> {
    async fn recv(&self) -> std::io::Result<Option<RecvBuf>> {
        match self.state.get() {
            GateState::Open => self.inner.recv().await,
            GateState::Closing => Ok(None),
            GateState::Inspecting => self.inspect().await,
        }
    }

    async fn send_all(&self, buf: SendBuf) -> (std::io::Result<()>, SendBuf) {
        self.inner.send_all(buf).await
    }

    async fn send_pair(&self, a: SendBuf, b: SendBuf) -> (std::io::Result<()>, SendBuf, SendBuf) {
        self.inner.send_pair(a, b).await
    }

    async fn finish(&self) {
        self.inner.finish().await;
    }
}
