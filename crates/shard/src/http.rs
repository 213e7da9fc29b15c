//! `mode http` sessions (HTTP/1.0 and 1.1 on both sides).
//!
//! One task per client connection runs HAProxy's phases in order (docs/lifetime-of-a-connection.md):
//! wait for the request head (`timeout http-request` / `timeout http-keep-alive`), parse it
//! strictly (`ringlb-http1`), choose the backend (`use_backend`/`default_backend`) and the server
//! (`balance`), get a server connection (idle pool per `http-reuse`, else connect with `timeout
//! connect`, `retries`, `option redispatch`), forward the rewritten head and the body, read the
//! response head (`timeout server`), forward it and its body, then keep the client connection
//! alive or close it (`option http-keep-alive|http-server-close|httpclose`).
//!
//! Memory: bodies stream through the shard's receive-buffer pool (zero copy: a received buffer
//! is sent as-is). The only copies are the rewritten heads (into `out`, reused across requests),
//! a head that arrives in several reads (assembled in a heap buffer) and the rare read that
//! carries the end of one message and the start of the next (split with a copy).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_lite::future;
use ringlb_balance::PickInput;
use ringlb_config::model::{HttpConnMode, HttpReuse};
use ringlb_http1::{
    parse_request, parse_response, BodyFraming, HttpError, Limits, Method, Parsed, RequestHead,
    ResponseHead, Version,
};
use ringlb_uring::{RecvBuf, SendBuf};

use crate::conn::{ClientConn, Io};

use crate::body::{forward_body, BodyError, BodyLimits};
use crate::rewrite;
use crate::server::{
    lease_and_connect, release_idle, ConnectInfo, NoConnection, Reuse, ServerLease,
};
use crate::state::RunState;
use crate::state::ServerConn;
use crate::time::within;
use crate::topology::{BackendRt, FrontendRt, HdrNamePolicy, Topology};
use crate::tunnel::{self, TunnelTimeouts};
use crate::Ctx;

/// Serves one accepted connection of an HTTP-mode frontend until it closes.
pub async fn serve(ctx: &Ctx, frontend: usize, client: ClientConn, sess: crate::live::SessRef) {
    // Borrowed, not cloned: the topology's Arc is shared by every shard and its count must not
    // bounce between cores on the request path.
    let topo: &Topology = &ctx.state.topo;
    let Some(fe) = topo.frontends.get(frontend) else {
        return;
    };
    let limits = Limits {
        max_headers: topo.tune.http_maxhdr,
        max_head_bytes: topo
            .tune
            .bufsize
            .saturating_sub(topo.tune.maxrewrite)
            .max(1024),
    };
    let mut session = Session {
        ctx,
        accepted: Instant::now(),
        fe,
        fe_idx: frontend,
        bind: ctx.live.bind_of(sess),
        client_ip: client.peer_addr().map(|a| a.ip()),
        // Formatted once per connection, and only when `option forwardfor` needs it.
        client_ip_text: match (&fe.forwardfor, client.peer_addr()) {
            (Some(_), Some(a)) => a.ip().to_string(),
            _ => String::new(),
        },
        client,
        limits,
        pending: None,
        sc: None,
        requests: 0,
        stick: crate::stick::StickSession::new(&ctx.state),
        after: AfterCtx::default(),
        effects: crate::rules::RuleEffects::default(),
        last_server: None,
        sess,
        upgrade: None,
    };
    if !crate::stick::connection_rules(
        ctx,
        fe,
        (frontend, ctx.live.bind_of(sess)),
        &session.client,
        &mut session.stick,
        &session.effects,
    ) {
        return;
    }
    let h1 = crate::counters::H1Conn::open(ctx, frontend, &session.client);
    session.follow_set_src();
    session.run().await;
    // HTTP/2 with prior knowledge on a clear-text bind (a TLS one negotiates it by ALPN):
    // the connection goes on as HTTP/2, with the connection rules' counters and effects.
    if let Some(first) = session.upgrade.take() {
        // Out of the HTTP/1 layer's counters, as haproxy's upgrade releases its h1 mux.
        session.client.meter(None);
        drop(h1);
        session.release_scratch();
        let Some(h2) = session
            .bind
            .and_then(|b| fe.binds.get(b))
            .or(fe.binds.first())
            .map(|b| b.h2)
        else {
            return;
        };
        let Session {
            client,
            stick,
            effects,
            ..
        } = session;
        // Boxed: rare, and its state would sit in every HTTP/1 connection's task.
        Box::pin(crate::h2::serve_upgraded(
            ctx,
            frontend,
            h2,
            client,
            sess,
            (stick, effects),
            first,
        ))
        .await;
    }
}

/// What happens to the client connection after a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    KeepAlive,
    Close,
}

/// Why no request head could be read.
enum HeadError {
    /// The client closed, or the keep-alive wait ended, before sending anything: close silently.
    Quiet,
    /// `timeout http-request` expired (HAProxy answers 408).
    Timeout,
    /// Invalid, truncated or oversized head (400, or 422 for an unsupported transfer coding):
    /// the error when the parser named one.
    Invalid(Option<HttpError>),
    /// Socket error: nothing to answer.
    Io,
    /// The connection's first bytes are HTTP/2's preface: it is served as HTTP/2 from them.
    H2(RecvBuf),
}

/// HTTP/2's connection preface (RFC 9113 §3.4): a clear-text connection that starts with it
/// speaks HTTP/2 with prior knowledge, as haproxy's HTTP/1 layer recognises it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a transaction failed before the response head reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The server closed or reset before sending any byte of a response (502, retryable).
    Empty,
    /// `timeout server` expired while waiting for the response head (504).
    Timeout,
    /// The response head is invalid (502).
    Invalid,
    /// The client's request body failed: bad chunked framing (400), `timeout client` (408) or
    /// the client went away (nothing to answer).
    Client(Option<u16>),
    /// `shutdown session` while waiting for the server: 502, logged `KH` (haproxy 2.6).
    Killed,
}

struct Session<'a> {
    ctx: &'a Ctx,
    /// When the connection was accepted (its first request's `%t`).
    accepted: Instant,
    fe: &'a FrontendRt,
    fe_idx: usize,
    /// The `bind` that accepted the connection (listener counters).
    bind: Option<usize>,
    client: ClientConn,
    client_ip: Option<IpAddr>,
    /// The client address as text, formatted once per connection (`option forwardfor`).
    client_ip_text: String,
    limits: Limits,
    /// Bytes received from the client that belong to the next request (pipelining).
    pending: Option<RecvBuf>,
    /// Per-request working memory (parsed heads, the rewritten-head buffer), taken from the
    /// shard's pool when a request starts and given back while the connection is idle.
    sc: Option<Box<Scratch>>,
    requests: u64,
    /// Stick counters of the connection and its current request (`stick.rs`).
    stick: crate::stick::StickSession,
    /// What `http-after-response` rules need for replies the proxy makes in this transaction.
    after: AfterCtx,
    /// Addresses set by `set-src`/`set-dst`... (for the rest of the connection) and the
    /// transaction's `set-log-level`.
    effects: crate::rules::RuleEffects,
    /// (backend, server) of the previous request when its server connection was kept
    /// (`option prefer-last-server`).
    last_server: Option<(usize, usize)>,
    /// This stream's slot in the shard's registry (`show sess`).
    sess: crate::live::SessRef,
    /// The connection turned out to speak HTTP/2: its first bytes, for the HTTP/2 layer.
    upgrade: Option<RecvBuf>,
}

/// A transaction's context for `http-after-response` on the proxy's own replies. Errors sent
/// before a transaction starts (unparsable head, `timeout http-request`) skip those rules, as
/// haproxy's multiplexer answers them below the HTTP analysers.
#[derive(Default)]
struct AfterCtx {
    in_txn: bool,
    /// The backend whose rules run first, once chosen.
    be: Option<usize>,
    /// The request's `txn.` variables (only kept when such rules exist).
    vars: ringlb_rules::Vars,
    /// The rules ran on this transaction's reply (they run once, before `connection:` is set).
    done: bool,
}

impl<'a> Session<'a> {
    /// The client address as rules left it (`set-src`), else the peer's.
    fn src(&self) -> Option<std::net::SocketAddr> {
        self.effects.src.get().or_else(|| self.client.peer_addr())
    }

    /// The local address as rules left it (`set-dst`), else the socket's.
    fn dst(&self) -> Option<std::net::SocketAddr> {
        self.effects
            .dst
            .get()
            .or_else(|| self.client.tcp().local_addr().ok())
    }

    async fn run(&mut self) {
        loop {
            // (A soft stop lets a connection between two requests send one more within a short
            // grace, see `wait_idle`; it is answered with `connection: close`.)
            if self.ctx.state.run.get() == RunState::Stopped {
                return;
            }
            let head = match self.read_request_head().await {
                Ok(h) => h,
                Err(e @ (HeadError::Quiet | HeadError::Io)) => {
                    // haproxy logs a connection that closed before its first request (`CR`,
                    // `<BADREQ>`) unless `option dontlognull` or `option http-ignore-probes`.
                    // It also counts as a failed request answered 400 (`req_tot`, `ereq`,
                    // `hrsp_4xx`), logged or not, as haproxy does without
                    // `option http-ignore-probes`.
                    // (The stick counters count it in `on_closed_before_request`.)
                    if self.requests == 0 && !self.fe.ignore_probes {
                        {
                            let now_ms = self.ctx.state.board.now_ms();
                            let mut c = self.ctx.state.counters.borrow_mut();
                            if let Some(f) = c.frontends.get_mut(self.fe_idx) {
                                f.failed_req += 1;
                                f.on_request(now_ms);
                            }
                            if let Some(l) = c.listener(self.fe_idx, self.bind) {
                                l.failed_req += 1;
                            }
                            c.response(self.fe_idx, None, None, 400);
                        }
                        // haproxy's HTTP/1 layer writes its 400 to a connection its client
                        // closed before the first byte (a client that only half-closed reads
                        // it; counted in `h1_bytes_out` only, as the stream never saw it). Not
                        // to one a stop closes.
                        if matches!(e, HeadError::Quiet) && self.client.tcp().peer_closed_now() {
                            let reply =
                                self.fe.errors.get(400).or(ringlb_http1::default_reply(400));
                            if let Some(b) = reply {
                                let out = SendBuf::from_vec(b.to_vec());
                                let _ = within(self.fe.timeouts.client, self.client.send_all(out))
                                    .await;
                            }
                        }
                    }
                    if self.requests == 0 && !self.fe.dontlognull && !self.fe.ignore_probes {
                        if let crate::topology::LogLine::Format(lf) = &self.fe.log_line {
                            let t = Txn {
                                wait_start: Some(self.accepted),
                                status: 400,
                                term: *b"CR",
                                ..Txn::default()
                            };
                            self.log_txn(lf, &t, Instant::now());
                        }
                    }
                    // A socket error in the middle of a head ends its `h1` stream.
                    if self
                        .sc
                        .as_ref()
                        .is_some_and(|sc| sc.txn.head_start.is_some())
                    {
                        let mut c = self.ctx.state.counters.borrow_mut();
                        c.h1_stream_close(self.fe_idx);
                    }
                    return self.stick.on_closed_before_request(self.requests == 0);
                }
                // Error replies are boxed: rare, and inline they would enlarge every session.
                Err(HeadError::Timeout) => {
                    self.count_failed_head();
                    Box::pin(self.reply_error(408, None)).await;
                    scratch(&mut self.sc, self.ctx).txn.uncounted_out = true;
                    return self.finish_txn();
                }
                Err(HeadError::Invalid(Some(e))) => {
                    self.count_failed_head();
                    Box::pin(self.reply_http_error(e)).await;
                    scratch(&mut self.sc, self.ctx).txn.uncounted_out = true;
                    return self.finish_txn();
                }
                Err(HeadError::Invalid(None)) => {
                    self.count_failed_head();
                    Box::pin(self.reply_error(400, None)).await;
                    scratch(&mut self.sc, self.ctx).txn.uncounted_out = true;
                    return self.finish_txn();
                }
                Err(HeadError::H2(first)) => {
                    self.upgrade = Some(first);
                    return;
                }
            };
            self.requests += 1;
            self.ctx.live.count_request(self.sess);
            self.stick.on_request();
            {
                let logs = matches!(self.fe.log_line, crate::topology::LogLine::Format(_));
                let sc = scratch(&mut self.sc, self.ctx);
                sc.txn.head_done = Some(Instant::now());
                sc.unique_id = None;
                if logs {
                    let b = head.bytes();
                    let (m, t) = (sc.req.method_span().get(b), sc.req.target().get(b));
                    sc.log_req.clear();
                    sc.log_req.extend_from_slice(m);
                    sc.log_req.extend_from_slice(t);
                    sc.log_req.extend_from_slice(sc.req.version().as_bytes());
                    sc.log_req_lens = (m.len(), t.len());
                    let cap = self.ctx.state.topo.tune.log_uri_len;
                    cut_request_line(&mut sc.log_req, &mut sc.log_req_lens, cap);
                }
                // Capture slots serve the log and the `capture.req|res.hdr` fetches of rules.
                capture(
                    &self.fe.capture_req,
                    sc.req.headers(),
                    head.bytes(),
                    &mut sc.cap_req,
                );
                sc.cap_res.clear();
                capture_cookie(
                    self.fe.capture_cookie.as_ref(),
                    sc.req.headers(),
                    head.bytes(),
                    false,
                    &mut sc.cookie_req,
                );
                sc.cookie_res.clear();
            }
            {
                let now_ms = self.ctx.state.board.now_ms();
                let mut c = self.ctx.state.counters.borrow_mut();
                c.process.cum_req += 1;
                if let Some(f) = c.frontends.get_mut(self.fe_idx) {
                    f.on_request(now_ms);
                }
            }
            // Boxed: the transaction's state machine is most of a session's size, and an idle
            // keep-alive connection should not carry it (one allocation per request).
            let after = Box::pin(self.transaction(head)).await;
            self.finish_txn();
            if after == After::Close {
                return;
            }
        }
    }

    /// Waits for a complete request head, parsed into `self.req`; the returned buffer starts
    /// with it. The idle wait is `timeout http-keep-alive` between requests (else
    /// `http-request`); a head must be complete within `timeout http-request` (else `client`).
    async fn read_request_head(&mut self) -> Result<RecvBuf, HeadError> {
        let t = &self.fe.timeouts;
        let head_limit = t.http_request.or(t.client);
        let idle_limit = if self.requests == 0 {
            head_limit
        } else {
            t.http_keep_alive.or(head_limit)
        };
        let started = Instant::now();
        let first = match self.pending.take() {
            Some(buf) => buf,
            None => match self.wait_idle(idle_limit).await {
                // HAProxy answers 408 to a first request that never came, unless
                // `option http-ignore-probes` (then: closed without a word).
                Err(_) if self.requests == 0 && !self.fe.ignore_probes => {
                    return Err(HeadError::Timeout)
                }
                Err(_) | Ok(Ok(None)) => return Err(HeadError::Quiet),
                Ok(Ok(Some(buf))) => buf,
                Ok(Err(_)) => return Err(HeadError::Io),
            },
        };
        if self.requests == 0
            && first.bytes().starts_with(H2_PREFACE)
            && matches!(self.client, ClientConn::Plain(_))
        {
            return Err(HeadError::H2(first));
        }
        // A new transaction record (the scratch may be another one than before the wait).
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        *txn = Txn::default();
        txn.wait_start = Some(started);
        txn.head_start = Some(Instant::now());
        self.ctx
            .state
            .counters
            .borrow_mut()
            .h1_stream_open(self.fe_idx);
        // Fast path: the whole head is in one read, parsed in place (no copy).
        match parse_request(
            first.bytes(),
            &self.limits,
            &mut scratch(&mut self.sc, self.ctx).req,
        ) {
            Ok(Parsed::Complete { .. }) => return Ok(first),
            Ok(Parsed::Partial) => {}
            Err(e) => {
                capture_invalid(self.ctx, self.sess, false, first.bytes());
                return Err(HeadError::Invalid(Some(e)));
            }
        }
        // Slow path (boxed: rare, and it would otherwise enlarge every idle connection).
        Box::pin(self.assemble_request_head(first, started, head_limit)).await
    }

    /// The head did not fit in one read: assemble it in a heap buffer, bounded by the head size
    /// limit and by `timeout http-request` counted from `started`.
    async fn assemble_request_head(
        &mut self,
        first: RecvBuf,
        started: Instant,
        head_limit: Option<Duration>,
    ) -> Result<RecvBuf, HeadError> {
        let mut assembled = Vec::with_capacity(self.limits.max_head_bytes.min(4096));
        assembled.extend_from_slice(first.bytes());
        drop(first);
        loop {
            let left = head_limit.map(|d| d.saturating_sub(started.elapsed()));
            if left == Some(Duration::ZERO) {
                return Err(HeadError::Timeout);
            }
            match within(left, self.client.recv()).await {
                Err(_) => return Err(HeadError::Timeout),
                Ok(Ok(Some(more))) => assembled.extend_from_slice(more.bytes()),
                // Closed mid-head: an incomplete request is a bad request.
                Ok(Ok(None)) => return Err(HeadError::Invalid(None)),
                Ok(Err(_)) => return Err(HeadError::Io),
            }
            match parse_request(
                &assembled,
                &self.limits,
                &mut scratch(&mut self.sc, self.ctx).req,
            ) {
                Ok(Parsed::Complete { .. }) => return Ok(RecvBuf::from_vec(assembled)),
                Ok(Parsed::Partial) if assembled.len() <= self.limits.max_head_bytes => {}
                Ok(Parsed::Partial) => {
                    capture_invalid(self.ctx, self.sess, false, &assembled);
                    return Err(HeadError::Invalid(None));
                }
                Err(e) => {
                    capture_invalid(self.ctx, self.sess, false, &assembled);
                    return Err(HeadError::Invalid(Some(e)));
                }
            }
        }
    }

    /// Waits for the first bytes of the next request, holding no per-request memory meanwhile.
    async fn wait_idle(
        &mut self,
        limit: Option<Duration>,
    ) -> Result<std::io::Result<Option<RecvBuf>>, crate::time::Elapsed> {
        self.release_scratch();
        let stopping = self.ctx.stopping.clone();
        let started = Instant::now();
        // The read stays armed across a stop (never cancelled): a request arriving as the
        // stop begins is not lost.
        let recv = self.client.recv();
        futures_lite::pin!(recv);
        let first = future::or(async { Some(within(limit, &mut recv).await) }, async {
            stopping.wait().await;
            None
        })
        .await;
        match first {
            Some(r) => r,
            // Soft stop (a reload): unlike haproxy 2.6, which closes idle keep-alive connections
            // at once and so loses requests already on their way, the connection gets a short
            // grace to send its next request, answered with `connection: close`.
            None => {
                let left = limit.map(|l| l.saturating_sub(started.elapsed()));
                // `close-spread-time`: idle connections close at points spread over the window
                // instead of all at once (a request arriving meanwhile is still served).
                let spread = crate::ops::spread_offset(
                    self.ctx.state.topo.ops.close_spread,
                    self.client.tcp().as_raw_fd(),
                );
                let wait = SOFT_STOP_GRACE.max(spread);
                // `option idle-close-on-response`: the whole keep-alive timeout, as haproxy
                // waits for one last request and response then.
                let grace = match left {
                    Some(l) if self.fe.idle_close_on_response => l,
                    Some(l) => l.min(wait),
                    None => wait,
                };
                match within(Some(grace), &mut recv).await {
                    Ok(r) => Ok(r),
                    Err(_) => Ok(Ok(None)), // nothing came: closed like a client close
                }
            }
        }
    }

    /// Gives the working memory back while the connection waits for its next request.
    fn release_scratch(&mut self) {
        let Some(mut s) = self.sc.take() else { return };
        s.txn = Txn::default();
        s.server_tls = None;
        let mut pool = self.ctx.scratch.borrow_mut();
        if pool.len() < SCRATCH_POOL_MAX && s.out.capacity() <= SCRATCH_OUT_MAX {
            pool.push(s);
        }
    }

    /// One request/response exchange. `head` starts with the request head parsed in `self.req`;
    /// what follows it is body, or the next pipelined request.
    async fn transaction(&mut self, mut head: RecvBuf) -> After {
        let ctx: &'a Ctx = self.ctx;
        let topo: &'a Topology = &ctx.state.topo;
        self.after.in_txn = true;
        self.effects.new_transaction();
        if let Some(sc) = self.sc.as_mut() {
            sc.server_tls = None;
        }
        // `stats uri`: the stats page, served by the proxy itself.
        if let Some(page) = &self.fe.stats_page {
            let sc = scratch(&mut self.sc, ctx);
            if sc
                .req
                .target()
                .get(head.bytes())
                .starts_with(page.page.uri.as_bytes())
            {
                return Box::pin(self.serve_stats(page, head)).await;
            }
        }
        // `option http-buffer-request` / `wait-for-body`: the body is read before the rules.
        let req_body = match self.buffer_request_body(head).await {
            Ok((h, b)) => {
                head = h;
                b
            }
            Err(after) => return after,
        };
        // The rule engine runs only for proxies that have rules (no cost otherwise).
        let default_be = self.fe.backend;
        let mut rewritten: Option<Vec<u8>> = None;
        let mut vars = ringlb_rules::Vars::default();
        let mut choice = crate::msg_rules::ServerChoice::default();
        let be_idx = if self.fe.rules.is_some()
            || default_be.is_some_and(|b| topo.backends.get(b).is_some_and(|b| b.rules.is_some()))
        {
            let rules = self.request_rules(&head, req_body.as_deref());
            self.follow_set_src();
            if self.apply_rule_effects().await.is_err() {
                return After::Close;
            }
            match rules {
                RequestRules::Reply(mut reply) => {
                    self.after.be = reply.backend;
                    self.after.vars = std::mem::take(&mut reply.vars);
                    return Box::pin(self.send_rules_reply(reply, head)).await;
                }
                RequestRules::Service(name) => {
                    return Box::pin(self.serve_service(&name, head)).await
                }
                RequestRules::Go {
                    backend,
                    rewritten: r,
                    vars: v,
                    server,
                } => {
                    rewritten = r;
                    if crate::msg_rules::has_after_rules(
                        self.fe,
                        backend.and_then(|b| topo.backends.get(b)),
                    ) {
                        self.after.vars = v.clone();
                    }
                    vars = v;
                    choice = server;
                    backend
                }
            }
        } else {
            default_be
        };
        let Some(be_idx) = be_idx else {
            self.reply_error(503, None).await;
            return After::Close;
        };
        let Some(be) = topo.backends.get(be_idx) else {
            self.reply_error(503, None).await;
            return After::Close;
        };
        if let Some(page) = &be.stats_page {
            // A backend with `stats enable` answers every request routed to it from its stats
            // page (HAProxy's stats applet replaces the servers).
            let sc = scratch(&mut self.sc, ctx);
            if sc
                .req
                .target()
                .get(head.bytes())
                .starts_with(page.page.uri.as_bytes())
            {
                return Box::pin(self.serve_stats(page, head)).await;
            }
        }
        scratch(&mut self.sc, self.ctx).txn.backend = Some(be_idx);
        self.after.be = Some(be_idx);
        // `cache-use`: a hit is answered from the shard's store; a miss keeps its keys for
        // `cache-store` (one cell read when no rule used a cache).
        let mut cache_key = None;
        if let Some((cache, rule_be)) = self.effects.cache_use.get() {
            let sc = scratch(&mut self.sc, ctx);
            let now_s = crate::cache::now_s();
            let counted = (self.fe_idx, rule_be);
            match crate::cache::lookup(ctx, cache, counted, (&sc.req, head.bytes()), None, now_s) {
                crate::cache::Lookup::Hit { bytes, status } => {
                    let reply = crate::rules::Reply::ready(
                        bytes,
                        status,
                        be_idx,
                        std::mem::take(&mut vars),
                    );
                    return Box::pin(self.send_rules_reply(reply, head)).await;
                }
                crate::cache::Lookup::Miss(key) => cache_key = Some(key),
                crate::cache::Lookup::Bypass => {}
            }
        }
        if self.fe.restrict_hdr_names != HdrNamePolicy::Preserve
            || be.restrict_hdr_names != HdrNamePolicy::Preserve
        {
            let sc = scratch(&mut self.sc, ctx);
            let current = match &rewritten {
                Some(raw) => raw.as_slice(),
                None => head.bytes().get(..sc.req.head_len()).unwrap_or_default(),
            };
            match rewrite::restrict_header_names(self.fe, be, current) {
                rewrite::Restricted::Unchanged => {}
                rewrite::Restricted::Rewritten(raw) => rewritten = Some(raw),
                rewrite::Restricted::Reject => {
                    let v = ringlb_rules::Verdict::Deny(ringlb_rules::HttpReply {
                        status: 403,
                        headers: Vec::new(),
                        body: None,
                        raw: None,
                    });
                    if let Some(mut reply) = crate::rules::reply_for(v, |s| be.errors.get(s)) {
                        reply.backend = Some(be_idx);
                        reply.vars = std::mem::take(&mut vars);
                        return Box::pin(self.send_rules_reply(reply, head)).await;
                    }
                }
            }
        }
        // Cookie persistence (`cookie NAME insert`): a valid cookie names the server.
        let mut persisted: Option<usize> = None;
        let mut cookie_dates = crate::persist::CookieDates::default();
        let now_s = crate::persist::unix_now();
        if let Some(ck) = &be.cookie {
            let sc = scratch(&mut self.sc, ctx);
            let found = match &rewritten {
                None => crate::persist::persistence_cookie(&sc.req, head.bytes(), ck, now_s),
                Some(raw) => match parse_request(raw, &self.limits, &mut sc.req2) {
                    Ok(Parsed::Complete { .. }) => {
                        crate::persist::persistence_cookie(&sc.req2, raw, ck, now_s)
                    }
                    _ => None,
                },
            };
            if let Some((value, stripped, dates)) = found {
                cookie_dates = dates;
                persisted = crate::persist::named_server(ctx, be_idx, be, &value, choice.persist);
                if let Some(raw) = stripped {
                    rewritten = Some(raw);
                }
            }
        }
        let req = &scratch(&mut self.sc, self.ctx).req;
        let method = req.method();
        let framing = req.framing();
        let client_version = req.version();
        let client_keep_alive = req.client_keep_alive();
        let upgrade = req.is_upgrade() || method == Method::Connect;
        let conn_mode = effective_conn_mode(self.fe.conn_mode, be.conn_mode);

        let mut out = std::mem::take(&mut scratch(&mut self.sc, self.ctx).out);
        out.clear();
        let dst_text = rewrite::original_to_text(self.fe, be, self.dst().map(|a| a.ip()));
        let edits = rewrite::request_edits(
            self.fe,
            be,
            self.client_ip,
            self.client_ip_text.as_bytes(),
            dst_text.as_deref(),
            conn_mode,
            false,
        );
        let sc = scratch(&mut self.sc, self.ctx);
        let head_len = sc.req.head_len();
        let facts = match &rewritten {
            None => {
                ringlb_http1::write_request_head(&sc.req, head.bytes(), &mut out, &edits);
                // What the hashing algorithms look at, copied out of the head before it is
                // consumed (a copy only for `balance uri|url_param|hdr`).
                RequestFacts::of(be, method, &sc.req, head.bytes())
            }
            Some(raw) => {
                // Rules changed the head: the rendered head is parsed again so that it is
                // normalised like any other (one extra parse, only for rewritten requests).
                match parse_request(raw, &self.limits, &mut sc.req2) {
                    Ok(Parsed::Complete { .. }) if sc.req2.framing() == framing => {}
                    // A rewrite that broke the head or changed its framing is refused, as
                    // HAProxy refuses a failed rewrite (500).
                    _ => {
                        sc.out = out;
                        self.note_failed_rewrite(be_idx);
                        self.reply_error(500, Some(be)).await;
                        return After::Close;
                    }
                }
                ringlb_http1::write_request_head(&sc.req2, raw, &mut out, &edits);
                RequestFacts::of(be, method, &sc.req2, raw)
            }
        };
        // haproxy counts a request as it holds it (`ringlb_http1::htx`), not as it came.
        let head_htx = {
            let sc = scratch(&mut self.sc, self.ctx);
            ringlb_http1::htx::request_head_size(&sc.req, head.bytes())
        };
        head.consume(head_len);
        scratch(&mut self.sc, self.ctx).txn.bytes_in += head_htx;
        let mut body_start = None;
        if framing == BodyFraming::None {
            if !head.is_empty() {
                self.pending = Some(head); // the next pipelined request
            }
        } else {
            body_start = Some(head);
        }
        // Sent again only if it can be: no body (bodies are streamed, not kept) and an
        // idempotent method (the server may have processed the first attempt).
        let replayable = framing == BodyFraming::None && method.is_idempotent();
        // `http-request disable-l7-retry`: no retry once the server had the request.
        let l7_retry = replayable && !self.effects.no_l7_retry.get();
        let first = self.requests == 1;
        let mut reuse = match be.http_reuse {
            HttpReuse::Never => Reuse::Never,
            HttpReuse::Safe if first => Reuse::Never,
            HttpReuse::Aggressive if first => Reuse::Proven,
            HttpReuse::Always if first => Reuse::AnySafeFirst,
            HttpReuse::Safe | HttpReuse::Aggressive | HttpReuse::Always => Reuse::Any,
        };
        let mut attempts = 0u32;
        // `url_param .. check_post`: the body's start, when the balancer must look into it.
        let mut post_body = None;
        // A client waiting for `100 Continue` sends no body yet: it is balanced without one
        // (haproxy answers the 100 itself and waits; ringlb leaves the 100 to the server).
        let expects_continue = scratch(&mut self.sc, self.ctx).req.expect_continue();
        if !expects_continue
            && crate::post_param::wants_body(&be.balance.balance, method, framing, &facts.uri)
        {
            let (start, part) = crate::post_param::read_body_start(
                &self.client,
                body_start.take(),
                framing,
                self.ctx.state.topo.tune.bufsize,
                self.fe.timeouts.client,
            )
            .await;
            body_start = start;
            post_body = Some(part);
        }
        let input = PickInput {
            src: self.client_ip,
            uri: &facts.uri,
            header: facts.header.as_deref(),
            body: post_body.as_deref(),
            is_post: method == Method::Post,
            key: choice.hash_key.as_deref(),
            ..PickInput::default()
        };
        let from = crate::server::ClientSide {
            src: self.src(),
            dst: self.dst(),
            tls: if be.proxy_v2 {
                self.client.tls_facts()
            } else {
                None
            },
        };
        loop {
            let mut info = ConnectInfo {
                // A persistence cookie first, then `use-server`/`stick match` (HAProxy's order).
                forced: if attempts == 0 {
                    persisted
                        .or(choice.forced)
                        .or_else(|| self.preferred_server(be, be_idx))
                } else {
                    None
                },
                want_h1: upgrade,
                redirectable: facts.redir_path.is_some(),
                ..ConnectInfo::default()
            };
            let connecting = lease_and_connect(self.ctx, be_idx, &input, reuse, &mut info, &from);
            let connected = if be.abortonclose {
                // Boxed here: moved into the `or` below, the connect's state would be held
                // twice by every transaction's future, abortonclose or not.
                let mut connecting = Box::pin(connecting);
                // The future starts when polled below: its queue time counts from here.
                let waiting = Instant::now();
                // `option abortonclose`: a client that closes while its request waits for a
                // slot or a connection takes the request with it.
                let tcp = self.client.tcp();
                let hangup = async {
                    let _ = tcp.hangup().await;
                    None
                };
                future::or(async { Some(connecting.as_mut().await) }, hangup)
                    .await
                    .ok_or(waiting)
            } else {
                Ok(connecting.await)
            };
            let connected = match connected {
                Ok(c) => c,
                Err(waiting) => {
                    let queued = info.server.is_none();
                    if queued {
                        info.queue = waiting.elapsed();
                    }
                    self.note_connect(be_idx, &info, false);
                    let txn = &mut scratch(&mut self.sc, self.ctx).txn;
                    txn.term = if queued { *b"CQ" } else { *b"CC" };
                    if queued {
                        txn.connect = None;
                    }
                    return After::Close;
                }
            };
            self.note_connect(be_idx, &info, connected.is_ok());
            let (lease, server) = match connected {
                Ok(x) => {
                    choice.commit(self.ctx, be, x.0.server);
                    crate::counters::h1_server_stream(self.ctx, be_idx, &x.1, info.reused);
                    let fd = x.1.raw_fd();
                    self.ctx
                        .live
                        .set_target(self.sess, be_idx, Some((x.0.server, fd)));
                    x
                }
                Err(NoConnection::Redirect(server)) => {
                    scratch(&mut self.sc, self.ctx).out = out;
                    let path = facts.redir_path.as_deref().unwrap_or_default();
                    self.server_redirect(be, server, path).await;
                    return After::Close;
                }
                Err(e) => {
                    let sc = scratch(&mut self.sc, self.ctx);
                    sc.out = out;
                    if matches!(e, NoConnection::QueueTimeout) {
                        // `timeout queue` ended the wait (haproxy 2.6 logs `sQ`).
                        sc.txn.term = *b"sQ";
                    }
                    self.reply_error(no_connection_status(e), Some(be)).await;
                    // Kept like after a 502/504 (haproxy 2.6 keeps it after its 503 too); a
                    // body no server got is read and dropped first. Not when the client waits
                    // for a 100-continue it will not get: its body may never come.
                    if !client_keep_alive {
                        return After::Close;
                    }
                    if framing == BodyFraming::None {
                        return After::KeepAlive;
                    }
                    if scratch(&mut self.sc, self.ctx).req.expect_continue() {
                        return After::Close;
                    }
                    return self.drain_request_body(framing, body_start.take()).await;
                }
            };
            // `ssl_bc_*`/`ssl_s_*` in the log line describe the connection from here on: an
            // exchange that ends before a response head (504, server close) logs them too.
            if matches!(&self.fe.log_line,
                crate::topology::LogLine::Format(lf) if lf.uses_server_tls())
            {
                scratch(&mut self.sc, self.ctx).server_tls =
                    server.stream.tls_facts().map(Box::new);
            }
            let reused = info.reused;
            crate::server::send_name_header(self.ctx, be, be_idx, lease.server, &mut out);
            let server_timeout = self.effects.server_timeout.get().or(be.timeouts.server);
            let (sent, buf) = within(server_timeout, server.send_all(SendBuf::from_vec(out)))
                .await
                .unwrap_or_else(|_| {
                    (
                        Err(std::io::ErrorKind::TimedOut.into()),
                        SendBuf::from_vec(Vec::new()),
                    )
                });
            out = buf.into_inner().unwrap_or_default();
            scratch(&mut self.sc, self.ctx).txn.request_sent = Some(Instant::now());
            // Whether the client's request (head and body) was read to its end: only then can
            // the client connection be kept after an error answer.
            let mut body_read = framing == BodyFraming::None;
            let outcome = match sent {
                Err(_) => Err(Failure::Empty),
                Ok(()) => {
                    // `shutdown session` while the server has the request: answered here.
                    let (live, sess) = (&self.ctx.live, self.sess);
                    live.set_cooperative(sess, true);
                    let exchanged = future::or(
                        self.exchange(
                            &server,
                            be,
                            framing,
                            body_start.take(),
                            method,
                            &mut body_read,
                        ),
                        async {
                            live.kill_requested(sess).await;
                            Err(Failure::Killed)
                        },
                    )
                    .await;
                    live.set_cooperative(sess, false);
                    exchanged
                }
            };
            // `observe layer7`: what this exchange says about the server's health (a reused
            // connection the server had closed is no sign of trouble).
            let observed = match &outcome {
                Ok(_) => Some(crate::observe::of_status(
                    scratch(&mut self.sc, self.ctx).resp.status(),
                )),
                Err(Failure::Empty) if !reused => Some(crate::observe::Event::HttpBrokenPipe),
                Err(Failure::Timeout) => Some(crate::observe::Event::HttpReadTimeout),
                Err(Failure::Invalid) => Some(crate::observe::Event::HttpHeader),
                Err(_) => None,
            };
            if let Some(ev) = observed {
                crate::observe::note(self.ctx, be_idx, lease.server, ev);
            }
            match outcome {
                // `retry-on <status>`: drop this answer and try again (replayable requests only,
                // within `retries`), as HAProxy's layer-7 retries.
                Ok(_)
                    if l7_retry
                        && attempts < be.retries
                        && be
                            .retry_on
                            .on_status(scratch(&mut self.sc, self.ctx).resp.status()) =>
                {
                    server.set_linger_zero();
                    drop(server);
                    drop(lease);
                    attempts += 1;
                    self.note_retry(be_idx);
                    reuse = Reuse::Never;
                }
                Ok(resp_head) => {
                    let sc = scratch(&mut self.sc, self.ctx);
                    sc.out = out;
                    sc.txn.response_head = Some(Instant::now());
                    let ctx = ResponseCtx {
                        be,
                        be_idx,
                        persisted,
                        cookie_dates,
                        cache: cache_key.take(),
                        vars: std::mem::take(&mut vars),
                        method,
                        client_version,
                        client_keep_alive,
                        conn_mode,
                        upgrade,
                    };
                    return self.relay_response(lease, server, resp_head, ctx).await;
                }
                Err(Failure::Client(status)) => {
                    scratch(&mut self.sc, self.ctx).out = out;
                    server.set_linger_zero();
                    if let Some(status) = status {
                        self.reply_error(status, Some(be)).await;
                    }
                    return After::Close;
                }
                Err(Failure::Killed) => {
                    scratch(&mut self.sc, self.ctx).out = out;
                    server.set_linger_zero();
                    drop(server);
                    drop(lease);
                    scratch(&mut self.sc, self.ctx).txn.term = *b"KH";
                    self.reply_error(502, Some(be)).await;
                    // haproxy 2.6 keeps the client connection, as after its other 502s.
                    return if body_read && client_keep_alive {
                        After::KeepAlive
                    } else {
                        After::Close
                    };
                }
                Err(failure) => {
                    let wanted = match failure {
                        Failure::Empty => be.retry_on.empty_response,
                        Failure::Timeout => be.retry_on.response_timeout,
                        Failure::Invalid => be.retry_on.junk_response,
                        Failure::Client(_) | Failure::Killed => false,
                    };
                    // A reused idle connection the server had closed is retried on a new one
                    // for free, as HAProxy does; other failures follow `retries`/`retry-on`.
                    let retry = replayable
                        && ((reused && failure == Failure::Empty)
                            || (l7_retry && wanted && attempts < be.retries));
                    server.set_linger_zero();
                    drop(server);
                    drop(lease);
                    if !retry {
                        scratch(&mut self.sc, self.ctx).out = out;
                        let status = if failure == Failure::Timeout {
                            504
                        } else {
                            502
                        };
                        self.note_failed_response(be_idx);
                        if failure == Failure::Invalid {
                            // An invalid response is the proxy's refusal (haproxy 2.6 logs
                            // `PH`; `SH` is for a server that closed or reset).
                            scratch(&mut self.sc, self.ctx).txn.term = *b"PH";
                        }
                        self.reply_error(status, Some(be)).await;
                        // HAProxy 2.6 keeps the client connection after its 502/504 (observed)
                        // once the request was read to its end.
                        return if body_read && client_keep_alive {
                            After::KeepAlive
                        } else {
                            After::Close
                        };
                    }
                    if !reused {
                        attempts += 1;
                        self.note_retry(be_idx);
                    }
                    reuse = Reuse::Never;
                }
            }
        }
    }

    /// Sends the request body (if any) while reading the response head: a server may answer
    /// before the body is complete, and `Expect: 100-continue` needs the interim response to
    /// reach the client before the client sends its body.
    async fn exchange(
        &mut self,
        server: &crate::conn::ServerStream,
        be: &BackendRt,
        framing: BodyFraming,
        body_start: Option<RecvBuf>,
        method: Method,
        body_read: &mut bool,
    ) -> Result<RecvBuf, Failure> {
        let limits = self.limits;
        let client = &self.client;
        let resp = &mut scratch(&mut self.sc, self.ctx).resp;
        // `http-request set-timeout server` overrides the backend's.
        let server_timeout = self.effects.server_timeout.get().or(be.timeouts.server);
        if framing == BodyFraming::None {
            return read_response_head(
                server,
                client,
                (server_timeout, self.fe.timeouts.client),
                limits,
                method,
                resp,
                (self.ctx, self.sess),
            )
            .await;
        }
        // While the body is being sent the server side is active: `timeout server` counts from
        // the end of the request body, as HAProxy's inactivity timeout does.
        let body_done = crate::notify::Notify::default();
        // A failed client body ends the wait at once: the server, still waiting for the body,
        // would otherwise hold the client's 400/408 until `timeout server`.
        let body_failed = std::cell::Cell::new(false);
        let response = future::or(
            read_response_head(
                server,
                client,
                (None, self.fe.timeouts.client),
                limits,
                method,
                resp,
                (self.ctx, self.sess),
            ),
            async {
                body_done.wait().await;
                if body_failed.get() {
                    return Err(Failure::Client(None));
                }
                match server_timeout {
                    Some(d) => ringlb_uring::rt::sleep(d).await,
                    None => future::pending::<()>().await,
                }
                Err(Failure::Timeout)
            },
        );
        let body_limits = BodyLimits {
            recv_timeout: self.fe.timeouts.client,
            send_timeout: server_timeout,
            head: limits,
        };
        let pending = &mut self.pending;
        let mut body_bytes_in = 0u64;
        let body = async {
            let r = forward_body(
                client,
                server,
                framing,
                body_start,
                body_limits,
                &mut None,
                &mut body_bytes_in,
            )
            .await;
            body_failed.set(matches!(
                r,
                Err(BodyError::Framing
                    | BodyError::RecvTimeout
                    | BodyError::RecvClosed
                    | BodyError::RecvError)
            ));
            body_done.raise();
            match r {
                Ok(next) => {
                    *pending = next;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        // Both run to completion; the response head wins unless the client's body failed.
        let (body_result, resp_result) = future::zip(body, response).await;
        if let Some(sc) = self.sc.as_mut() {
            sc.txn.bytes_in += body_bytes_in;
        }
        match body_result {
            Ok(()) => {
                *body_read = true;
                resp_result
            }
            Err(BodyError::Framing) => Err(Failure::Client(Some(400))),
            Err(BodyError::RecvTimeout) => Err(Failure::Client(Some(408))),
            Err(BodyError::RecvClosed | BodyError::RecvError) => Err(Failure::Client(None)),
            // The server stopped reading: its response (if any) still tells the client why.
            Err(BodyError::SendError | BodyError::SendTimeout) => match resp_result {
                Ok(r) => Ok(r),
                Err(_) => Err(Failure::Empty),
            },
        }
    }

    /// Reads and drops the rest of a request body after its error answer (at most
    /// `DRAIN_LIMIT` bytes, `timeout client` between reads); keeps the connection when the
    /// body ended cleanly, with any pipelined bytes after it kept for the next request.
    async fn drain_request_body(&mut self, framing: BodyFraming, first: Option<RecvBuf>) -> After {
        let limits = BodyLimits {
            recv_timeout: self.fe.timeouts.client,
            send_timeout: None,
            head: self.limits,
        };
        let sink = crate::body::Discard::new(crate::body::DRAIN_LIMIT);
        let mut drained = 0u64;
        let r = forward_body(
            &self.client,
            &sink,
            framing,
            first,
            limits,
            &mut None,
            &mut drained,
        )
        .await;
        if let Some(sc) = self.sc.as_mut() {
            sc.txn.bytes_in += drained;
        }
        match r {
            Ok(next) => {
                self.pending = next;
                After::KeepAlive
            }
            Err(_) => After::Close,
        }
    }

    /// Forwards the response head and body to the client, then decides the fate of both
    /// connections.
    async fn relay_response(
        &mut self,
        lease: ServerLease,
        server: ServerConn,
        mut head: RecvBuf,
        c: ResponseCtx<'_>,
    ) -> After {
        let status = scratch(&mut self.sc, self.ctx).resp.status();
        let framing = scratch(&mut self.sc, self.ctx).resp.framing();
        let tunnel = (status == 101 && c.upgrade)
            || (c.method == Method::Connect && (200..300).contains(&status));
        let stopping = self.ctx.state.run.get() != RunState::Running;
        let keep_client = !tunnel
            && c.client_keep_alive
            && c.conn_mode != HttpConnMode::Close
            && framing != BodyFraming::UntilClose
            && !stopping;
        let mut out = std::mem::take(&mut scratch(&mut self.sc, self.ctx).out);
        out.clear();
        // `cookie ... insert`: tell the client which server it is on, unless it already knew.
        let set_cookie = crate::persist::set_cookie(
            c.be,
            lease.server,
            c.persisted,
            c.method,
            c.cookie_dates,
            crate::persist::unix_now(),
        )
        .map(|v| [b"set-cookie: ", &v[..], b"\r\n"].concat());
        let edits = rewrite::response_edits(
            c.client_version,
            keep_client,
            set_cookie.as_deref().unwrap_or_default(),
        );
        if !self.fe.capture_res.is_empty() {
            let sc = scratch(&mut self.sc, self.ctx);
            capture(
                &self.fe.capture_res,
                sc.resp.headers(),
                head.bytes(),
                &mut sc.cap_res,
            );
        }
        if self.fe.capture_cookie.is_some() {
            let sc = scratch(&mut self.sc, self.ctx);
            capture_cookie(
                self.fe.capture_cookie.as_ref(),
                sc.resp.headers(),
                head.bytes(),
                true,
                &mut sc.cookie_res,
            );
        }
        // Copied only where rules or the log line may read them (`ssl_bc_*`, `ssl_s_*`).
        let log_tls = matches!(&self.fe.log_line,
            crate::topology::LogLine::Format(lf) if lf.uses_server_tls());
        let server_tls = if c.be.rules.is_some() || self.fe.rules.is_some() || log_tls {
            server.stream.tls_facts().map(Box::new)
        } else {
            None
        };
        let rewritten = match self.response_rules(&head, &c, lease.server, server_tls.as_deref()) {
            ResponseRules::Unchanged => None,
            ResponseRules::Rewritten(raw) => Some(raw),
            ResponseRules::Reply(reply) => {
                // The server's response is dropped: its connection cannot be reused.
                server.set_linger_zero();
                scratch(&mut self.sc, self.ctx).out = out;
                return Box::pin(self.send_response_rules_reply(reply, c.be_idx)).await;
            }
        };
        if log_tls {
            scratch(&mut self.sc, self.ctx).server_tls = server_tls;
        }
        let sc = scratch(&mut self.sc, self.ctx);
        let resp_head_len = sc.resp.head_len();
        // haproxy counts the response as it holds it (`ringlb_http1::htx`), before the
        // rules change it.
        let resp_htx = ringlb_http1::htx::response_head_size(&sc.resp, head.bytes());
        // `cache-store`: whether this response goes to the cache (as the rules left it).
        let mut c = c;
        let cache_pending = match (c.cache.take(), self.effects.cache_store.get()) {
            (Some(mut key), Some(store)) => {
                key.cache = store;
                let now_s = crate::cache::now_s();
                match &rewritten {
                    None => {
                        crate::cache::store_decision(self.ctx, key, &sc.resp, head.bytes(), now_s)
                    }
                    Some(raw) => {
                        let mut r = ResponseHead::default();
                        if crate::cache::parse_head(raw, &mut r) {
                            crate::cache::store_decision(self.ctx, key, &r, raw, now_s)
                        } else {
                            None
                        }
                    }
                }
            }
            _ => None,
        };
        let sc = scratch(&mut self.sc, self.ctx);
        // The server's own persistence cookie (`cookie NAME rewrite|prefix`; deleted by
        // `insert`): a head rendered again only when such a `Set-Cookie` is there.
        let rewritten = match &rewritten {
            Some(raw) => crate::persist::server_cookies(c.be, lease.server, c.persisted, raw),
            None => {
                let own = head.bytes().get(..resp_head_len).unwrap_or_default();
                crate::persist::server_cookies(c.be, lease.server, c.persisted, own)
            }
        }
        .or(rewritten);
        match &rewritten {
            None => ringlb_http1::write_response_head(&sc.resp, head.bytes(), &mut out, &edits),
            Some(raw) => {
                let limits = self.limits;
                match parse_response(raw, &limits, c.method, &mut sc.resp2) {
                    Ok(Parsed::Complete { .. }) if sc.resp2.framing() == framing => {
                        ringlb_http1::write_response_head(&sc.resp2, raw, &mut out, &edits)
                    }
                    _ => {
                        server.set_linger_zero();
                        sc.out = out;
                        self.note_failed_rewrite(c.be_idx);
                        self.reply_error(500, Some(c.be)).await;
                        return After::Close;
                    }
                }
            }
        }
        head.consume(resp_head_len);
        let client_timeout = self.fe.timeouts.client;
        if tunnel {
            let tunnel_head_len = resp_htx;
            let (sent, buf) = within(client_timeout, self.client.send_all(SendBuf::from_vec(out)))
                .await
                .unwrap_or_else(|_| {
                    (
                        Err(std::io::ErrorKind::TimedOut.into()),
                        SendBuf::from_vec(Vec::new()),
                    )
                });
            let sc = scratch(&mut self.sc, self.ctx);
            sc.out = buf.into_vec().unwrap_or_default();
            if sent.is_err() {
                return After::Close;
            }
            sc.txn.status = status;
            sc.txn.bytes_out += tunnel_head_len;
            self.log_asap(status, 0);
            let idle = self
                .effects
                .tunnel_timeout
                .get()
                .or(c.be.timeouts.tunnel)
                .or(self.fe.timeouts.tunnel)
                .or(self.fe.timeouts.client);
            let t = TunnelTimeouts {
                client_fin: self.fe.timeouts.client_fin,
                server_fin: c.be.timeouts.server_fin,
                client_independent: self.fe.independent_streams,
                server_independent: c.be.independent_streams,
                ..TunnelTimeouts::both(idle)
            };
            if !head.is_empty() {
                let (r, _) = self.client.send_all(SendBuf::Recv(head)).await;
                if r.is_err() {
                    return After::Close;
                }
            }
            if let Some(p) = self.pending.take() {
                let (r, _) = server.send_all(SendBuf::Recv(p)).await;
                if r.is_err() {
                    return After::Close;
                }
            }
            // `on-marked-down shutdown-sessions`: a kill drops the tunnel, closing both sides.
            // Boxed: upgrades are rare, and this state would sit in every transaction.
            let (up, down, _) =
                Box::pin(lease.unless_killed(tunnel::run(&self.client, &*server, t)))
                    .await
                    .unwrap_or((0, 0, tunnel::TunnelEnd::Error));
            let txn = &mut scratch(&mut self.sc, self.ctx).txn;
            txn.bytes_in += up;
            txn.bytes_out += down;
            return After::Close;
        }
        self.log_asap(status, resp_htx);
        let limits = BodyLimits {
            recv_timeout: self.effects.server_timeout.get().or(c.be.timeouts.server),
            send_timeout: client_timeout,
            head: self.limits,
        };
        // The head goes out with the first body bytes, in one write.
        let head_bytes = resp_htx;
        let mut head_out = Some(out);
        let mut body_bytes = 0u64;
        let body = if let Some(pending) = cache_pending {
            // A response for the cache: its body is copied as it goes to the client.
            let skip = head_out.as_ref().map_or(0, Vec::len);
            let limit = usize::try_from(pending.length).unwrap_or(usize::MAX);
            let tee = crate::cache::Tee::new(&self.client, skip, limit);
            let r = lease
                .unless_killed(forward_body(
                    &*server,
                    &tee,
                    framing,
                    Some(head),
                    limits,
                    &mut head_out,
                    &mut body_bytes,
                ))
                .await
                .unwrap_or(Err(crate::body::BodyError::RecvError));
            if r.is_ok() && !tee.overflow.get() {
                let now_s = crate::cache::now_s();
                crate::cache::store(self.ctx, pending, &tee.body.borrow(), now_s);
            }
            r
        } else {
            lease
                .unless_killed(forward_body(
                    &*server,
                    &self.client,
                    framing,
                    Some(head),
                    limits,
                    &mut head_out,
                    &mut body_bytes,
                ))
                .await
                // Killed (`on-marked-down shutdown-sessions`): the response is cut like a
                // server error, so the client's connection closes.
                .unwrap_or(Err(crate::body::BodyError::RecvError))
        };
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.status = status;
        txn.bytes_out += body_bytes + head_bytes;
        scratch(&mut self.sc, self.ctx).out = head_out.unwrap_or_default();
        match body {
            Ok(extra) => {
                // Bytes after the response body: the server is confused; never reuse it.
                let clean = extra.is_none();
                let reusable = clean
                    && scratch(&mut self.sc, self.ctx).resp.server_keep_alive()
                    && c.conn_mode == HttpConnMode::KeepAlive;
                // haproxy 2.6 prefers the last server only while its connection is the
                // session's own (`http-reuse never`; other modes pool it for everybody),
                // recorded in tests/persistence.rs.
                self.last_server = (reusable && c.be.http_reuse == HttpReuse::Never)
                    .then_some((lease.backend, lease.server));
                if reusable && c.be.http_reuse != HttpReuse::Never {
                    release_idle(&self.ctx.state, &lease, server);
                } else {
                    server.close_hard();
                }
                if keep_client {
                    After::KeepAlive
                } else {
                    After::Close
                }
            }
            Err(e) => {
                // The response was cut: the client sees its connection close, as with HAProxy.
                server.set_linger_zero();
                let txn = &mut scratch(&mut self.sc, self.ctx).txn;
                if txn.term == [0, 0] {
                    txn.term = body_cut_term(e);
                }
                After::Close
            }
        }
    }

    /// Runs the frontend's `http-request` rules, picks the backend (`use_backend`), then runs
    /// the backend's rules (`msg_rules`, shared with HTTP/2 streams). Synchronous: rules never
    /// wait.
    fn request_rules(&mut self, head: &RecvBuf, body: Option<&[u8]>) -> RequestRules {
        let ctx = self.ctx;
        // Owned copies of the connection facts (a TLS connection's facts are cloned per
        // request that runs rules; plain connections have none).
        let tls = self.client.tls_facts();
        let conn = crate::msg_rules::ConnFacts {
            src: self.src(),
            dst: self.dst(),
            tls: tls.as_ref(),
            server_tls: None,
            effects: Some(&self.effects),
            h2: false,
        };
        let sc = scratch(&mut self.sc, ctx);
        let cap = crate::rules::Captures {
            req: &mut sc.cap_req,
            res: &mut sc.cap_res,
            req_spec: &self.fe.capture_req,
            res_spec: &self.fe.capture_res,
        };
        let verdict = crate::msg_rules::request_rules(
            ctx,
            self.fe,
            &sc.req,
            head.bytes(),
            body,
            conn,
            Some(&mut self.stick),
            Some(cap),
        );
        match verdict {
            crate::msg_rules::RequestVerdict::Reply(r) => RequestRules::Reply(r),
            crate::msg_rules::RequestVerdict::Service(s) => RequestRules::Service(s),
            crate::msg_rules::RequestVerdict::Go {
                backend,
                rewritten,
                vars,
                server,
                unique_id,
            } => {
                sc.unique_id = unique_id;
                RequestRules::Go {
                    backend,
                    rewritten,
                    vars,
                    server,
                }
            }
        }
    }

    /// `option http-buffer-request` / `http-request wait-for-body`: reads the body into the
    /// request's buffer (given back with it) and returns its payload for `req.body*`. A client
    /// waiting for `100 Continue` gets it from the proxy first, as from haproxy. A wait that
    /// runs out of time gets 408 (haproxy's `http_wait_for_msg_body`), bad chunking 400.
    async fn buffer_request_body(
        &mut self,
        head: RecvBuf,
    ) -> Result<(RecvBuf, Option<Vec<u8>>), After> {
        let ctx = self.ctx;
        let framing = scratch(&mut self.sc, ctx).req.framing();
        if !matches!(
            framing,
            BodyFraming::ContentLength(1..) | BodyFraming::Chunked
        ) {
            return Ok((head, None));
        }
        let tls = self.client.tls_facts();
        let conn = crate::msg_rules::ConnFacts {
            src: self.src(),
            dst: self.dst(),
            tls: tls.as_ref(),
            server_tls: None,
            effects: None,
            h2: false,
        };
        let sc = scratch(&mut self.sc, ctx);
        let Some(wait) = crate::msg_rules::body_wait(ctx, self.fe, &sc.req, head.bytes(), conn)
        else {
            return Ok((head, None));
        };
        let head_len = sc.req.head_len();
        if sc.req.expect_continue() {
            let (r, _) = self
                .client
                .send_all(SendBuf::from_vec(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()))
                .await;
            if r.is_err() {
                return Err(After::Close);
            }
        }
        let tune = &ctx.state.topo.tune;
        let room = crate::buffer_body::room(tune.bufsize, tune.maxrewrite, head_len);
        let got = crate::buffer_body::buffer_body(
            &self.client,
            head,
            head_len,
            framing,
            room,
            wait,
            self.fe.timeouts.client,
            &self.limits,
        )
        .await;
        match got {
            Ok(b) => Ok((b.all, Some(b.data))),
            Err(e) => {
                self.count_failed_request();
                let status = match e {
                    crate::buffer_body::WaitError::Timeout => 408,
                    crate::buffer_body::WaitError::Invalid => 400,
                    crate::buffer_body::WaitError::Closed => {
                        scratch(&mut self.sc, ctx).txn.term = *b"CD";
                        return Err(After::Close);
                    }
                };
                // haproxy: `cD` (client timeout during the data phase), then it closes.
                scratch(&mut self.sc, ctx).txn.term = if status == 408 { *b"cD" } else { *b"CD" };
                Box::pin(self.reply_error(status, None)).await;
                Err(After::Close)
            }
        }
    }

    /// What the request rules set beyond the message: `set-mark` / `set-tos` on the client
    /// socket (errors ignored, as haproxy), and the `early-hint` 103 (HTTP/1.1 clients only).
    async fn apply_rule_effects(&mut self) -> std::io::Result<()> {
        let fx = &self.effects;
        if let Some(m) = fx.mark.take() {
            let _ = self.client.tcp().set_mark(m);
        }
        if let Some(t) = fx.tos.take() {
            let _ = self.client.tcp().set_tos(t);
        }
        let Some(hints) = fx.take_early_hints() else {
            return Ok(());
        };
        if scratch(&mut self.sc, self.ctx).req.version() != Version::Http11 {
            return Ok(());
        }
        let (r, _) = self.client.send_all(SendBuf::from_vec(hints)).await;
        r
    }

    /// Sends the reply of a final `http-request` verdict (deny, return, redirect, tarpit,
    /// auth) and decides whether the connection stays open.
    async fn send_rules_reply(
        &mut self,
        mut reply: crate::rules::Reply,
        mut head: RecvBuf,
    ) -> After {
        let sc = scratch(&mut self.sc, self.ctx);
        sc.txn.term = match (reply.denied, reply.tarpit) {
            (_, true) => *b"PT",
            (true, _) => *b"PR",
            _ => *b"LR",
        };
        let framing = sc.req.framing();
        let keep = sc.req.client_keep_alive();
        let version = sc.req.version();
        // `http-after-response` first: haproxy adds `connection:` when it sends the reply.
        self.after_rules(&mut reply.bytes);
        let sc = scratch(&mut self.sc, self.ctx);
        announce_persistence(&mut reply.bytes, keep, version);
        let head_len = sc.req.head_len();
        sc.txn.bytes_in += ringlb_http1::htx::request_head_size(&sc.req, head.bytes());
        head.consume(head_len);
        if reply.silent {
            self.client.set_linger_zero();
            return After::Close;
        }
        if reply.denied {
            self.stick.on_denied();
            let mut c = self.ctx.state.counters.borrow_mut();
            if let Some(f) = c.frontends.get_mut(self.fe_idx) {
                f.denied_req += 1;
            }
            if let Some(l) = c.listener(self.fe_idx, self.bind) {
                l.denied_req += 1;
            }
        }
        if reply.tarpit {
            // `timeout tarpit` (HAProxy falls back to `timeout connect`), cut short by a stop.
            let hold = self.fe.timeouts.tarpit.or(self.fe.timeouts.connect);
            if let Some(d) = hold {
                let stopping = self.ctx.stopping.clone();
                future::or(
                    ringlb_uring::rt::sleep(d),
                    async move { stopping.wait().await },
                )
                .await;
            }
        }
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.status = reply.status;
        txn.bytes_out += ringlb_http1::htx::reply_size(&reply.bytes);
        let sent = self.send_reply(reply.bytes).await;
        // A request body was not read: the connection cannot carry another request.
        if sent.is_err()
            || reply.close
            || !keep
            || framing != BodyFraming::None
            || self.ctx.state.run.get() != RunState::Running
        {
            return After::Close;
        }
        if !head.is_empty() {
            self.pending = Some(head);
        }
        After::KeepAlive
    }

    /// `http-request use-service prometheus-exporter`: every shard's counters in HAProxy's
    /// exposition format (`?scope=...`, `no-maint`); a malformed query gets 400.
    async fn serve_service(&mut self, name: &str, mut head: RecvBuf) -> After {
        let sc = scratch(&mut self.sc, self.ctx);
        sc.txn.term = *b"LR";
        let head_len = sc.req.head_len();
        let framing = sc.req.framing();
        let keep = sc.req.client_keep_alive();
        let version = sc.req.version();
        let query = sc
            .req
            .query()
            .map(|q| String::from_utf8_lossy(q.get(head.bytes())).into_owned())
            .unwrap_or_default();
        sc.txn.bytes_in += ringlb_http1::htx::request_head_size(&sc.req, head.bytes());
        head.consume(head_len);
        if name != "prometheus-exporter" {
            // Unknown services are refused by the config; nothing else to serve.
            self.reply_error(503, None).await;
            return After::Close;
        }
        let request = match ringlb_stats::prometheus::parse_query(&query) {
            Ok(r) => r,
            Err(_) => {
                self.reply_error(400, None).await;
                return After::Close;
            }
        };
        // Counted before the snapshot, as haproxy counts it when the service is chosen:
        // the scrape sees itself in `intercepted_requests_total`.
        self.count_intercepted();
        let snap = crate::service::snapshot(self.ctx).await;
        let body = ringlb_stats::prometheus::render(&snap, &request);
        let mut out = Vec::with_capacity(body.len() + 128);
        crate::service::write_reply(
            &mut out,
            200,
            "text/plain; version=0.0.4",
            &[],
            body.as_bytes(),
        );
        self.after_rules(&mut out);
        announce_persistence(&mut out, keep, version);
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.status = 200;
        txn.bytes_out += ringlb_http1::htx::reply_size(&out);
        let sent = self.send_reply(out).await;
        if sent.is_err() || !keep || framing != BodyFraming::None {
            return After::Close;
        }
        if !head.is_empty() {
            self.pending = Some(head);
        }
        After::KeepAlive
    }

    /// Runs the backend's then the frontend's `http-response` rules (HAProxy's order) on the
    /// response head (`msg_rules`, shared with HTTP/2 streams).
    fn response_rules(
        &mut self,
        head: &RecvBuf,
        c: &ResponseCtx<'_>,
        server: usize,
        server_tls: Option<&ringlb_tls::ServerTlsFacts>,
    ) -> ResponseRules {
        let ctx = self.ctx;
        let tls = self.client.tls_facts();
        let conn = crate::msg_rules::ConnFacts {
            src: self.src(),
            dst: self.dst(),
            tls: tls.as_ref(),
            server_tls,
            effects: Some(&self.effects),
            h2: false,
        };
        let sc = scratch(&mut self.sc, ctx);
        let verdict = crate::msg_rules::response_rules(
            ctx,
            self.fe,
            c.be,
            server,
            &c.vars,
            &sc.resp,
            head.bytes(),
            conn,
            Some(&mut self.stick),
            Some(crate::rules::Captures {
                req: &mut sc.cap_req,
                res: &mut sc.cap_res,
                req_spec: &self.fe.capture_req,
                res_spec: &self.fe.capture_res,
            }),
            c.method,
        );
        // `http-response set-mark|set-tos`: on the client socket at once (errors ignored).
        if let Some(m) = self.effects.mark.take() {
            let _ = self.client.tcp().set_mark(m);
        }
        if let Some(t) = self.effects.tos.take() {
            let _ = self.client.tcp().set_tos(t);
        }
        match verdict {
            crate::msg_rules::ResponseVerdict::Unchanged => ResponseRules::Unchanged,
            crate::msg_rules::ResponseVerdict::Rewritten(raw) => ResponseRules::Rewritten(raw),
            crate::msg_rules::ResponseVerdict::Reply(r) => ResponseRules::Reply(r),
        }
    }

    /// Sends the reply of an `http-response deny|return|redirect` and closes (the server's
    /// response was not forwarded; `dresp` counts a deny).
    async fn send_response_rules_reply(&mut self, reply: crate::rules::Reply, be: usize) -> After {
        if reply.denied {
            let mut c = self.ctx.state.counters.borrow_mut();
            if let Some(f) = c.frontends.get_mut(self.fe_idx) {
                f.denied_resp += 1;
            }
            if let Some(b) = c.backends.get_mut(be) {
                b.denied_resp += 1;
            }
        }
        if reply.silent {
            self.client.set_linger_zero();
            return After::Close;
        }
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.status = reply.status;
        txn.bytes_out += ringlb_http1::htx::reply_size(&reply.bytes);
        if reply.denied {
            txn.term = *b"PH";
        }
        let _ = self.send_reply(reply.bytes).await;
        After::Close
    }

    /// The stats page (`stats uri`): HTML, `;csv`, `;json`, `stats auth` (401), and the
    /// `stats admin` form, whose actions are broadcast to every shard like runtime commands.
    async fn serve_stats(
        &mut self,
        page: &'a crate::topology::StatsPageRt,
        mut head: RecvBuf,
    ) -> After {
        let ctx = self.ctx;
        let sc = scratch(&mut self.sc, ctx);
        let bytes = head.bytes();
        let method = String::from_utf8_lossy(sc.req.method_span().get(bytes)).into_owned();
        let target = String::from_utf8_lossy(sc.req.target().get(bytes)).into_owned();
        let authorization = sc
            .req
            .headers_named(bytes, b"authorization")
            .next()
            .map(|h| String::from_utf8_lossy(h.value.get(bytes)).into_owned());
        let framing = sc.req.framing();
        let keep = sc.req.client_keep_alive();
        let version = sc.req.version();
        let head_len = sc.req.head_len();
        sc.txn.term = *b"LR";
        // `stats admin if COND` and `stats http-request`, evaluated on this request.
        let (admin, access) = if page.admin.is_empty() && page.access.is_empty() {
            (false, None)
        } else {
            let tls = self.client.tls_facts();
            let mut msg = ringlb_rules::HttpMessage::request(
                sc.req.method_span().get(bytes),
                sc.req.target().get(bytes),
                sc.req.version().as_bytes(),
            );
            for h in sc.req.headers() {
                msg.push_header(h.name.get(bytes), h.value.get(bytes));
            }
            let txn = ringlb_rules::Txn::new(msg);
            let host = crate::rules::Host {
                req_body: None,
                cap: None,
                effects: None,
                res_payload: None,
                payload: None,
                ctx,
                frontend: &self.fe.name,
                backend: None,
                server: None,
                src: self.client.peer_addr(),
                dst: self.client.tcp().local_addr().ok(),
                tls: tls.as_ref(),
                server_tls: None,
                log: None,
                unique_id: None,
                stick: None,
            };
            let cx = ringlb_rules::Ctx::new(&host, &txn);
            let admin = page.admin.iter().any(|c| c.eval(&page.acls, cx));
            let access = page
                .access
                .iter()
                .find(|(_, c)| c.as_ref().is_none_or(|c| c.eval(&page.acls, cx)))
                .map(|(a, _)| a.clone());
            (admin, access)
        };
        sc.txn.bytes_in += ringlb_http1::htx::request_head_size(&sc.req, head.bytes());
        head.consume(head_len);
        // The admin form's body (small; anything else closes the connection).
        let mut body = Vec::new();
        let mut reusable = true;
        match framing {
            BodyFraming::None => {
                if !head.is_empty() {
                    self.pending = Some(head);
                }
            }
            BodyFraming::ContentLength(n) if n <= 64 << 10 => {
                body.extend_from_slice(head.bytes());
                while (body.len() as u64) < n {
                    match within(self.fe.timeouts.client, self.client.recv()).await {
                        Ok(Ok(Some(more))) => body.extend_from_slice(more.bytes()),
                        _ => return After::Close,
                    }
                }
                body.truncate(n as usize);
                reusable = false;
            }
            _ => {
                self.reply_error(413, None).await;
                return After::Close;
            }
        }
        // Counted before the page is rendered (haproxy counts it when the applet is chosen).
        self.count_intercepted();
        // `stats http-request allow` skips the `stats auth` check that otherwise follows the
        // rules (haproxy appends it as an implicit last rule).
        let no_auth = ringlb_stats::page::AuthConfig {
            credentials: Vec::new(),
            realm: page.auth.realm.clone(),
        };
        let auth = match access {
            Some(ringlb_config::model::StatsAction::Allow) => &no_auth,
            _ => &page.auth,
        };
        let credentials = &auth.credentials;
        let answer = if let Some(ringlb_config::model::StatsAction::Deny) = access {
            ringlb_stats::admin::forbidden()
        } else if let Some(ringlb_config::model::StatsAction::Auth { realm }) = &access {
            ringlb_stats::admin::unauthorized(realm.as_deref().or(page.auth.realm.as_deref()))
        } else if !credentials.is_empty()
            && ringlb_stats::admin::check_basic_auth(authorization.as_deref(), credentials)
                .is_none()
        {
            // Checked before collecting anything: an unauthenticated client costs nothing.
            ringlb_stats::admin::unauthorized(page.auth.realm.as_deref())
        } else {
            let snap = crate::service::snapshot(ctx).await;
            let mut cfg = page.page.clone();
            cfg.admin = admin;
            match ringlb_stats::page::route(
                &snap,
                &cfg,
                auth,
                &method,
                &target,
                authorization.as_deref(),
                &String::from_utf8_lossy(&body),
            ) {
                ringlb_stats::page::StatsRoute::NotStats => {
                    ringlb_stats::admin::unauthorized(page.auth.realm.as_deref())
                }
                ringlb_stats::page::StatsRoute::Answer(a) => a,
                ringlb_stats::page::StatsRoute::Admin {
                    request,
                    redirect_uri,
                } => {
                    let (total, altered) = crate::service::apply_admin(ctx, &request);
                    ringlb_stats::admin::admin_redirect(
                        &redirect_uri,
                        ringlb_stats::admin::AdminStatus::from_counts(total, altered),
                    )
                }
            }
        };
        let mut out = crate::service::answer_bytes(&answer);
        self.after_rules(&mut out);
        announce_persistence(&mut out, keep, version);
        let txn = &mut scratch(&mut self.sc, ctx).txn;
        txn.status = answer.status;
        txn.bytes_out += ringlb_http1::htx::reply_size(&out);
        let sent = self.send_reply(out).await;
        if sent.is_err() || !keep || !reusable {
            return After::Close;
        }
        After::KeepAlive
    }

    /// Sends a reply the proxy made (error page, rule reply, stats, metrics) within
    /// `timeout client`; `Err` when it could not be sent.
    async fn send_reply(&mut self, mut bytes: Vec<u8>) -> std::io::Result<()> {
        self.after_rules(&mut bytes);
        match within(
            self.fe.timeouts.client,
            self.client.send_all(SendBuf::from_vec(bytes)),
        )
        .await
        {
            Ok((r, _)) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// After `set-src`: `option forwardfor` and `balance source` use the new address.
    fn follow_set_src(&mut self) {
        let Some(a) = self.effects.src.get() else {
            return;
        };
        if self.client_ip != Some(a.ip()) {
            self.client_ip = Some(a.ip());
            if self.fe.forwardfor.is_some() {
                self.client_ip_text = a.ip().to_string();
            }
        }
    }

    /// `http-after-response` on a reply the proxy made (`msg_rules::after_reply`); the
    /// transaction's `%B` follows the rewritten size.
    fn after_rules(&mut self, bytes: &mut Vec<u8>) {
        if !self.after.in_txn || self.after.done {
            return;
        }
        self.after.done = true;
        let be = self
            .after
            .be
            .and_then(|b| self.ctx.state.topo.backends.get(b));
        if !crate::msg_rules::has_after_rules(self.fe, be) {
            return;
        }
        let tls = self.client.tls_facts();
        let conn = crate::msg_rules::ConnFacts {
            src: self.src(),
            dst: self.dst(),
            tls: tls.as_ref(),
            server_tls: None,
            effects: Some(&self.effects),
            h2: false,
        };
        let Some(new) = crate::msg_rules::after_reply(
            self.ctx,
            self.fe,
            be,
            &self.after.vars,
            bytes,
            conn,
            Some(&mut self.stick),
            self.sc.as_deref_mut().map(|sc| crate::rules::Captures {
                req: &mut sc.cap_req,
                res: &mut sc.cap_res,
                req_spec: &self.fe.capture_req,
                res_spec: &self.fe.capture_res,
            }),
        ) else {
            return;
        };
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.bytes_out = (txn.bytes_out + ringlb_http1::htx::reply_size(&new))
            .saturating_sub(ringlb_http1::htx::reply_size(bytes));
        *bytes = new;
    }

    /// A request the proxy answered itself (stats page, exporter): `intercepted_req`.
    fn count_intercepted(&mut self) {
        if let Some(f) = self
            .ctx
            .state
            .counters
            .borrow_mut()
            .frontends
            .get_mut(self.fe_idx)
        {
            f.intercepted_req += 1;
        }
    }

    /// A header rewrite failed (`wrew`), answered with 500.
    fn note_failed_rewrite(&mut self, be: usize) {
        let mut c = self.ctx.state.counters.borrow_mut();
        if let Some(f) = c.frontends.get_mut(self.fe_idx) {
            f.failed_rewrites += 1;
        }
        if let Some(b) = c.backends.get_mut(be) {
            b.failed_rewrites += 1;
        }
    }

    /// A request head that could not be read (`ereq`).
    /// A request whose head never came complete (timeout, invalid, closed before a word):
    /// haproxy counts it in the frontend's `req_tot` and `req_rate` as well as in `ereq`.
    fn count_failed_head(&mut self) {
        self.count_failed_request();
        let now_ms = self.ctx.state.board.now_ms();
        if let Some(f) = self
            .ctx
            .state
            .counters
            .borrow_mut()
            .frontends
            .get_mut(self.fe_idx)
        {
            f.on_request(now_ms);
        }
    }

    fn count_failed_request(&mut self) {
        self.stick.on_request();
        let mut c = self.ctx.state.counters.borrow_mut();
        if let Some(f) = c.frontends.get_mut(self.fe_idx) {
            f.failed_req += 1;
        }
        if let Some(l) = c.listener(self.fe_idx, self.bind) {
            l.failed_req += 1;
        }
    }

    fn note_connect(&mut self, be: usize, info: &ConnectInfo, ok: bool) {
        let now_ms = self.ctx.state.board.now_ms();
        let mut c = self.ctx.state.counters.borrow_mut();
        c.connect_outcome(be, info);
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.tried = info.server.or(txn.tried);
        txn.queue = Some(txn.queue.unwrap_or_default() + info.queue);
        if !info.reused {
            txn.connect = Some(txn.connect.unwrap_or_default() + info.connect);
        }
        if ok {
            if let Some(s) = info.server {
                if txn.stream_started {
                    if let Some(prev) = txn.server {
                        c.stream_end(be, prev);
                    }
                }
                c.stream_start(be, s, now_ms, info.balanced);
                txn.server = Some(s);
                txn.server_addr = self.ctx.state.server(be, s).map(|s| s.addr.get());
                txn.stream_started = true;
            }
        }
    }

    /// A layer-7 retry (`wretr`).
    fn note_retry(&mut self, be: usize) {
        let server = self.sc.as_ref().and_then(|s| s.txn.server);
        let mut c = self.ctx.state.counters.borrow_mut();
        if let Some(b) = c.backends.get_mut(be) {
            b.retries += 1;
        }
        if let Some(s) = server.and_then(|s| c.servers.get_mut(be).and_then(|v| v.get_mut(s))) {
            s.retries += 1;
        }
    }

    /// No valid response from the server (`eresp`).
    fn note_failed_response(&mut self, be: usize) {
        let server = self.sc.as_ref().and_then(|s| s.txn.server);
        let mut c = self.ctx.state.counters.borrow_mut();
        if let Some(b) = c.backends.get_mut(be) {
            b.failed_resp += 1;
        }
        if let Some(s) = server.and_then(|s| c.servers.get_mut(be).and_then(|v| v.get_mut(s))) {
            s.failed_resp += 1;
        }
    }

    /// Records the transaction in the counters and clears it.
    fn finish_txn(&mut self) {
        self.after = AfterCtx::default();
        self.ctx.live.server_released(self.sess);
        let Some(sc) = self.sc.as_mut() else { return };
        let t = std::mem::take(&mut sc.txn);
        self.stick.end_txn(t.status, t.bytes_in, t.bytes_out);
        let now = Instant::now();
        let mut c = self.ctx.state.counters.borrow_mut();
        if t.status != 0 {
            c.response(self.fe_idx, t.backend, t.server, t.status);
        }
        let counted_out = if t.uncounted_out { 0 } else { t.bytes_out };
        c.bytes(self.fe_idx, t.backend, t.server, t.bytes_in, counted_out);
        if let Some(l) = c.listener(self.fe_idx, self.bind) {
            l.bytes_in += t.bytes_in;
            l.bytes_out += counted_out;
        }
        if let (Some(b), Some(s), true) = (t.backend, t.server, t.stream_started) {
            c.stream_end(b, s);
        }
        if t.head_start.is_some() {
            c.h1_stream_close(self.fe_idx);
        }
        self.ctx
            .live
            .fold_h1_bytes(&mut c, Some(self.fe_idx), t.backend);
        if let Some(b) = t.backend {
            let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            let times = ringlb_stats::RequestTimes {
                queue_us: t.queue.map(us),
                connect_us: t.connect.map(us),
                response_us: t
                    .request_sent
                    .zip(t.response_head)
                    .map(|(a, b)| us(b.saturating_duration_since(a))),
                total_us: t.head_start.map(|h| us(now.saturating_duration_since(h))),
            };
            // Only answered requests feed the time averages and histograms.
            if t.response_head.is_some() {
                c.record_times(b, t.server, &times);
            }
        }
        drop(c);
        if let crate::topology::LogLine::Format(lf) = &self.fe.log_line {
            // `option dontlognull`: a connection that sent nothing is not logged.
            let empty = self.fe.dontlognull && t.bytes_in == 0;
            if !empty && !t.logged {
                self.log_txn(lf, &t, now);
            }
        }
    }

    /// `option logasap`: logs the transaction as its response head goes out, with what is
    /// known then (haproxy's `http_wait_for_response`: the head's bytes, `Td` 0), and marks
    /// it so that its end is not logged again.
    fn log_asap(&mut self, status: u16, head_bytes: u64) {
        if !self.fe.logasap {
            return;
        }
        let crate::topology::LogLine::Format(lf) = &self.fe.log_line else {
            return;
        };
        let Some(sc) = self.sc.as_mut() else { return };
        sc.txn.logged = true;
        let mut t = sc.txn;
        t.status = status;
        t.bytes_out += head_bytes;
        let now = t.response_head.unwrap_or_else(Instant::now);
        self.log_txn(lf, &t, now);
    }

    /// Renders and queues the log line of a finished transaction (HAProxy's `option httplog`
    /// or `log-format`), with the timers HAProxy reports.
    fn log_txn(&mut self, lf: &ringlb_rules::LogFormat, t: &Txn, now: Instant) {
        let ctx = self.ctx;
        let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_millis() as i64,
            _ => -1,
        };
        let dur = |d: Option<Duration>| d.map_or(-1, |d| d.as_millis() as i64);
        let start = t.wait_start.or(t.head_start).or(Some(self.accepted));
        let tt = ms(start, Some(now));
        let ti = ms(start, t.head_start).max(0);
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let topo = &ctx.state.topo;
        let (be_conn, srv_conn) = match (t.backend, t.server) {
            (Some(b), s) => {
                let st = ctx.state.backends.get(b);
                let bc = st.map_or(0, |st| {
                    st.servers
                        .borrow()
                        .iter()
                        .map(|x| i64::from(x.active.get()))
                        .sum()
                });
                let sc = s
                    .and_then(|s| ctx.state.server(b, s))
                    .map_or(0, |x| i64::from(x.active.get()));
                (bc, sc)
            }
            _ => (0, 0),
        };
        let facts = crate::rules::LogFacts {
            accept_unix_ms: unix_now - tt.max(0),
            th: 0,
            ti,
            tr_req: ms(t.head_start, t.head_done),
            tw: dur(t.queue),
            tc: dur(t.connect),
            tr: ms(t.request_sent, t.response_head),
            td: ms(t.response_head, Some(now)),
            ta: tt - ti,
            tt,
            status: if t.status == 0 {
                -1
            } else {
                i64::from(t.status)
            },
            bytes_out: t.bytes_out as i64,
            bytes_in: t.bytes_in as i64,
            term: crate::rules::LogFacts::term_of(t.term),
            act_conn: i64::from(ctx.state.conns.get()),
            fe_conn: ctx
                .state
                .counters
                .borrow()
                .frontends
                .get(self.fe_idx)
                .map_or(0, |f| i64::from(f.cur_sess)),
            be_conn,
            srv_conn,
            retries: 0,
            asap: self.fe.logasap,
            pid: i64::from(std::process::id()),
            request_counter: self.requests as i64,
            server_addr: t.server_addr,
            captured_req: slots(self.sc.as_ref().map(|s| &s.cap_req), &self.fe.capture_req),
            captured_res: slots(self.sc.as_ref().map(|s| &s.cap_res), &self.fe.capture_res),
            cookie_req: self
                .sc
                .as_ref()
                .map(|s| s.cookie_req.clone())
                .unwrap_or_default(),
            cookie_res: self
                .sc
                .as_ref()
                .map(|s| s.cookie_res.clone())
                .unwrap_or_default(),
        };
        let (src, dst) = (self.src(), self.dst());
        // `set-log-level` of this request (reset for the next one), else the level
        // `option log-separate-errors` gives; `option dontlog-normal` drops the line.
        let set_level = self
            .effects
            .log_level
            .replace(crate::rules::LogLevel::Default);
        let Some(level) =
            crate::log::traffic_level(self.fe, &facts.term, facts.retries, facts.status)
        else {
            return;
        };
        let level = match set_level {
            crate::rules::LogLevel::Silent => return,
            crate::rules::LogLevel::Level(l) => l,
            crate::rules::LogLevel::Default => level,
        };
        let sc = scratch(&mut self.sc, ctx);
        let mut uid = sc.unique_id.take();
        let (mlen, tlen) = sc.log_req_lens;
        let b = &sc.log_req;
        let parsed = t.head_done.is_some();
        let method: &[u8] = if parsed {
            b.get(..mlen).unwrap_or_default()
        } else {
            b"<BADREQ>"
        };
        let target = if parsed {
            b.get(mlen..mlen + tlen).unwrap_or_default()
        } else {
            b""
        };
        let version = if parsed {
            b.get(mlen + tlen..).unwrap_or_default()
        } else {
            b""
        };
        let mut txn =
            ringlb_rules::Txn::new(ringlb_rules::HttpMessage::request(method, target, version));
        if t.status != 0 {
            txn.res = Some(ringlb_rules::HttpMessage::response(
                b"HTTP/1.1",
                t.status,
                b"",
            ));
        }
        let tls = self.client.tls_facts();
        let be = t.backend.and_then(|b| topo.backends.get(b));
        let srv = t
            .backend
            .zip(t.server.or(t.tried))
            .and_then(|(b, s)| self.ctx.state.server(b, s));
        let mut host = crate::rules::Host {
            req_body: None,
            cap: None,
            effects: None,
            res_payload: None,
            payload: None,
            ctx,
            frontend: &self.fe.name,
            backend: be.map(|b| b.name.as_str()),
            server: srv.as_ref().map(|s| s.rt.name.as_str()),
            src,
            dst,
            tls: tls.as_ref(),
            server_tls: sc.server_tls.as_deref(),
            log: Some(&facts),
            unique_id: None,
            stick: None,
        };
        // `%ID`: the value the rules computed (and sent), else computed now, as haproxy's
        // `strm_log` does for a request that never reached that point.
        if uid.is_none() {
            if let Some(f) = self
                .fe
                .rules
                .as_ref()
                .and_then(|r| r.unique_id_format.as_ref())
            {
                uid = Some(f.render_http_vec(ringlb_rules::Ctx::new(&host, &txn)));
            }
        }
        host.unique_id = uid.as_deref();
        // The line is built in a buffer per request (logging is rare enough next to I/O).
        let mut line = Vec::with_capacity(256);
        let cx = ringlb_rules::Ctx::new(&host, &txn);
        lf.render(cx, &mut line);
        crate::log::emit_traffic(ctx, self.fe, cx, level, &line);
    }

    /// Answers a request the parser rejected: the frontend's `errorfile` for its status, else the
    /// exact page haproxy 2.6 sends for that error.
    async fn reply_http_error(&mut self, e: HttpError) {
        let bytes = self
            .fe
            .errors
            .get(e.status())
            .unwrap_or_else(|| e.default_reply());
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.status = e.status();
        txn.bytes_out += ringlb_http1::htx::reply_size(bytes);
        let _ = self.send_reply(bytes.to_vec()).await;
    }

    /// Sends HAProxy's reply for `status` (an `errorfile` of the backend, else of the frontend,
    /// else the built-in page); the caller closes the connection afterwards.
    /// `option prefer-last-server`: the server of the previous request on this connection
    /// while its connection was kept and it is still usable (HAProxy's `assign_server`).
    fn preferred_server(&self, be: &BackendRt, be_idx: usize) -> Option<usize> {
        let (b, s) = self.last_server.filter(|_| be.prefer_last_server)?;
        let st = self.ctx.state.server(b, s).filter(|_| b == be_idx)?;
        // `max-keep-alive-queue`: a full server with that many requests waiting is not worth
        // the wait; the balancer picks another (haproxy's test, on this shard's counts).
        let too_busy = be.max_keepalive_queue.is_some_and(|limit| {
            let max = st.maxconn_now.get();
            let full = max > 0 && st.active.get() >= max;
            full && st.queue.borrow().len() as u64 + 1 > u64::from(limit)
        });
        (st.up.get() && st.admin.get() == crate::state::AdminState::Ready && !too_busy).then_some(s)
    }

    /// `server ... redir <prefix>`: HAProxy answers a GET or HEAD the balancer sent to this
    /// server with a 302 to `<prefix><path>` and closes (haproxy 2.6's bytes, recorded in
    /// tests/persistence.rs).
    async fn server_redirect(&mut self, be: &BackendRt, server: usize, path: &[u8]) {
        let prefix = be
            .servers
            .get(server)
            .and_then(|s| s.redir.as_deref())
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(128 + prefix.len() + path.len());
        bytes.extend_from_slice(
            b"HTTP/1.1 302 Found\r\ncache-control: no-cache\r\ncontent-length: 0\r\nlocation: ",
        );
        bytes.extend_from_slice(prefix.as_bytes());
        bytes.extend_from_slice(path);
        bytes.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.status = 302;
        txn.bytes_out += ringlb_http1::htx::reply_size(&bytes);
        // haproxy's termination state for it: a local decision while connecting.
        txn.term = *b"LC";
        let _ = self.send_reply(bytes).await;
    }

    async fn reply_error(&mut self, status: u16, be: Option<&BackendRt>) {
        // HAProxy sends its raw pages for errors found while parsing (400, 408) and the
        // normalised (lower-case) form for the ones the stream makes (502, 503, 504).
        let builtin = if matches!(status, 400 | 408) {
            ringlb_http1::default_reply(status)
        } else {
            ringlb_http1::default_reply_lowercase(status)
        };
        let Some(bytes) = be
            .and_then(|b| b.errors.get(status))
            .or_else(|| self.fe.errors.get(status))
            .or(builtin)
        else {
            return;
        };
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.status = status;
        txn.bytes_out += ringlb_http1::htx::reply_size(bytes);
        if txn.term == [0, 0] {
            // The usual causes of each status the stream makes (haproxy's `%ts`).
            txn.term = match status {
                408 => *b"cR",
                503 => *b"SC",
                504 => *b"sH",
                502 => *b"SH",
                _ => *b"PR",
            };
        }
        // A copy into an owned buffer: error replies are rare and small.
        let mut bytes = bytes.to_vec();
        if self.after.in_txn && !matches!(status, 400 | 408) {
            // Errors the stream makes go out like other replies (haproxy 2.6, recorded):
            // after `http-after-response`, with `connection: close` for a closing client.
            self.after_rules(&mut bytes);
            let sc = scratch(&mut self.sc, self.ctx);
            if !sc.req.client_keep_alive() {
                announce_persistence(&mut bytes, false, sc.req.version());
            }
        }
        let _ = self.send_reply(bytes).await;
    }
}

/// Pooled per-request memory: parsed heads (their field tables sized for `tune.http.maxhdr`) and
/// the buffer rewritten heads are written to.
pub struct Scratch {
    req: RequestHead,
    /// A request head rewritten by rules, parsed again (see `transaction`).
    req2: RequestHead,
    resp: ResponseHead,
    /// A response head rewritten by `http-response` rules, parsed again.
    resp2: ResponseHead,
    out: Vec<u8>,
    txn: Txn,
    /// The request line kept for the log (method, target, version; only when this frontend
    /// logs a format: one copy of a few dozen bytes per request).
    log_req: Vec<u8>,
    log_req_lens: (usize, usize),
    /// `capture request|response header` values of the current request, for the log.
    cap_req: Vec<Vec<u8>>,
    cap_res: Vec<Vec<u8>>,
    /// `capture cookie` values of the current request and response (empty: none).
    cookie_req: Vec<u8>,
    cookie_res: Vec<u8>,
    /// The request's `unique-id-format` value once the rules computed it (`%ID`).
    unique_id: Option<Vec<u8>>,
    /// The TLS connection to the server, kept for a log format that reads it (`ssl_bc_*`).
    /// Boxed: kept by every stream or connection future, asked for by few configs.
    server_tls: Option<Box<ringlb_tls::ServerTlsFacts>>,
}

/// What one transaction did, for the counters (and the logs): when each phase ended, where it
/// went, what it answered and how many bytes moved.
#[derive(Debug, Clone, Copy, Default)]
struct Txn {
    /// When the session started waiting for this request (accept, or the previous response).
    wait_start: Option<Instant>,
    /// First byte of the request head.
    head_start: Option<Instant>,
    /// The head was complete.
    head_done: Option<Instant>,
    /// HAProxy's termination state (`%ts`): who ended the transaction and in which phase;
    /// `[0, 0]` is a normal end (`--`).
    term: [u8; 2],
    server_addr: Option<std::net::SocketAddr>,
    backend: Option<usize>,
    server: Option<usize>,
    /// The server the last connection attempt went to, even a failed one (the log's `%s`).
    tried: Option<usize>,
    /// A server session was counted (`stream_start`); ended in `finish_txn`.
    stream_started: bool,
    queue: Option<Duration>,
    connect: Option<Duration>,
    request_sent: Option<Instant>,
    response_head: Option<Instant>,
    /// Status sent to the client (0: none).
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    /// Already logged when its response head went out (`option logasap`).
    logged: bool,
    /// A 400/408 answered to a request head that never came complete: haproxy's connection
    /// layer sends it before any stream exists, so no byte counter sees it.
    uncounted_out: bool,
}

/// How long an idle keep-alive connection may still send a request once a soft stop began.
const SOFT_STOP_GRACE: Duration = Duration::from_secs(1);

/// Bound on pooled scratch sets per shard: enough for the requests in progress at once on a
/// busy shard; beyond it, sets are freed when their request ends.
const SCRATCH_POOL_MAX: usize = 256;
/// A head buffer grown past this (huge heads) is not kept.
const SCRATCH_OUT_MAX: usize = 64 << 10;

impl Scratch {
    /// Field tables start empty and grow to what requests need (typically 10–20 fields), not
    /// to `tune.http.maxhdr`; they keep their size while pooled.
    fn boxed() -> Box<Scratch> {
        Box::new(Scratch {
            req: RequestHead::default(),
            req2: RequestHead::default(),
            resp: ResponseHead::default(),
            resp2: ResponseHead::default(),
            out: Vec::with_capacity(512),
            txn: Txn::default(),
            log_req: Vec::new(),
            log_req_lens: (0, 0),
            cap_req: Vec::new(),
            cap_res: Vec::new(),
            cookie_req: Vec::new(),
            cookie_res: Vec::new(),
            unique_id: None,
            server_tls: None,
        })
    }
}

/// The session's scratch, taken from the shard's pool (or allocated) on first use.
fn scratch<'s>(sc: &'s mut Option<Box<Scratch>>, ctx: &Ctx) -> &'s mut Scratch {
    sc.get_or_insert_with(|| {
        ctx.scratch
            .borrow_mut()
            .pop()
            .unwrap_or_else(Scratch::boxed)
    })
}

/// Request bytes a hashing `balance` algorithm needs, owned so they outlive the head buffer.
struct RequestFacts {
    uri: Vec<u8>,
    header: Option<Vec<u8>>,
    /// A GET or HEAD to a backend with `redir` servers: the path and query, for the 302's
    /// `Location` (HAProxy redirects only those methods).
    redir_path: Option<Vec<u8>>,
}

impl RequestFacts {
    fn of(be: &BackendRt, method: Method, req: &RequestHead, src: &[u8]) -> RequestFacts {
        let spec = &be.balance;
        let redir_path = (matches!(method, Method::Get | Method::Head)
            && be.servers.iter().any(|s| s.redir.is_some()))
        .then(|| {
            // From the path's start to the end of the target: path and query.
            let (path, target) = (req.path(), req.target());
            ringlb_http1::Span {
                start: path.start,
                end: target.end.max(path.start),
            }
            .get(src)
            .to_vec()
        });
        let uri = if spec.needs_uri() {
            req.target().get(src).to_vec()
        } else {
            Vec::new()
        };
        let header = spec.header_name().and_then(|name| {
            let h = req
                .headers()
                .iter()
                .find(|h| h.name.get(src).eq_ignore_ascii_case(name.as_bytes()))?;
            Some(ringlb_balance::key::first_header_value(h.value.get(src)).to_vec())
        });
        RequestFacts {
            uri,
            header,
            redir_path,
        }
    }
}

/// The outcome of the response rules.
enum ResponseRules {
    Unchanged,
    /// The head as the rules left it, to parse again and forward.
    Rewritten(Vec<u8>),
    /// A final verdict replaces the server's response.
    Reply(crate::rules::Reply),
}

/// The outcome of the request rules.
enum RequestRules {
    /// A final verdict: answer it, forward nothing.
    Reply(crate::rules::Reply),
    /// `use-service` (`prometheus-exporter`).
    Service(String),
    /// Forward to `backend`, with the head the rules rewrote (if they did).
    Go {
        backend: Option<usize>,
        rewritten: Option<Vec<u8>>,
        vars: ringlb_rules::Vars,
        server: crate::msg_rules::ServerChoice,
    },
}

/// What `relay_response` needs to know about the request.
struct ResponseCtx<'a> {
    be: &'a BackendRt,
    be_idx: usize,
    /// The server the client's persistence cookie named (no `set-cookie` needed for it).
    persisted: Option<usize>,
    /// The dates that cookie carried (`maxidle` / `maxlife`).
    cookie_dates: crate::persist::CookieDates,
    /// Variables set by the request rules (`txn.*`), for the response rules.
    vars: ringlb_rules::Vars,
    /// The request's keys when it ran `cache-use` and missed (for `cache-store`).
    cache: Option<crate::cache::CacheKey>,
    method: Method,
    client_version: Version,
    client_keep_alive: bool,
    conn_mode: HttpConnMode,
    upgrade: bool,
}

/// `show errors`: keeps a copy of an invalid message of stream `sess` (error path only: one
/// allocation for the copy, one atomic for the process-wide event number).
fn capture_invalid(ctx: &Ctx, sess: crate::live::SessRef, response: bool, bytes: &[u8]) {
    let event = ctx.state.board.next_error_event();
    ctx.live
        .capture_message(sess, response, bytes, ctx.state.topo.tune.bufsize, event);
}

/// Reads the final response head into `resp`, forwarding interim 1xx responses (100 Continue,
/// 103 Early Hints) to the client as they come.
async fn read_response_head(
    server: &crate::conn::ServerStream,
    client: &ClientConn,
    (server_timeout, client_timeout): (Option<Duration>, Option<Duration>),
    limits: Limits,
    method: Method,
    resp: &mut ResponseHead,
    (ctx, sess): (&Ctx, crate::live::SessRef),
) -> Result<RecvBuf, Failure> {
    let mut assembled: Option<Vec<u8>> = None;
    let mut got_any = false;
    loop {
        let buf = match within(server_timeout, server.recv()).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) | Ok(Err(_)) => {
                return Err(if got_any {
                    Failure::Invalid
                } else {
                    Failure::Empty
                });
            }
        };
        got_any = true;
        let mut current = match assembled.take() {
            None => buf,
            Some(mut v) => {
                v.extend_from_slice(buf.bytes());
                RecvBuf::from_vec(v)
            }
        };
        // Parse as many heads as the bytes hold: interim ones are forwarded, the final one
        // is returned.
        loop {
            match parse_response(current.bytes(), &limits, method, resp) {
                Ok(Parsed::Complete { head_len }) => {
                    if !resp.is_interim() {
                        return Ok(current);
                    }
                    let interim = current.bytes().get(..head_len).unwrap_or(&[]).to_vec();
                    let (r, _) =
                        within(client_timeout, client.send_all(SendBuf::from_vec(interim)))
                            .await
                            .unwrap_or_else(|_| {
                                (
                                    Err(std::io::ErrorKind::TimedOut.into()),
                                    SendBuf::from_vec(Vec::new()),
                                )
                            });
                    if r.is_err() {
                        return Err(Failure::Client(None));
                    }
                    current.consume(head_len);
                    if current.is_empty() {
                        break;
                    }
                }
                Ok(Parsed::Partial) => {
                    if current.len() > limits.max_head_bytes {
                        capture_invalid(ctx, sess, true, current.bytes());
                        return Err(Failure::Invalid);
                    }
                    assembled = Some(current.bytes().to_vec());
                    break;
                }
                Err(HttpError { .. }) => {
                    capture_invalid(ctx, sess, true, current.bytes());
                    return Err(Failure::Invalid);
                }
            }
        }
    }
}

/// haproxy's termination state (`%ts`) for a response body cut in the data phase: who
/// (`C`lient, `S`erver, lower case for a timeout) stopped it.
fn body_cut_term(e: BodyError) -> [u8; 2] {
    match e {
        BodyError::SendError => *b"CD",
        BodyError::SendTimeout => *b"cD",
        BodyError::RecvTimeout => *b"sD",
        BodyError::Framing | BodyError::RecvClosed | BodyError::RecvError => *b"SD",
    }
}

/// Adds the `connection` line haproxy puts on the replies it makes: `close` when the client
/// does not keep the connection, `keep-alive` for an HTTP/1.0 client that does (the header
/// block of `reply` ends at its first empty line).
fn announce_persistence(reply: &mut Vec<u8>, client_keep_alive: bool, version: Version) {
    let line: &[u8] = if !client_keep_alive {
        b"connection: close\r\n"
    } else if version == Version::Http10 {
        b"connection: keep-alive\r\n"
    } else {
        return;
    };
    if let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
        // An errorfile may carry its own `connection` header: haproxy sends one, not two.
        let has_connection = reply[..end + 2]
            .windows(13)
            .any(|w| w.eq_ignore_ascii_case(b"\r\nconnection:"));
        if has_connection {
            return;
        }
        let at = end + 2;
        reply.splice(at..at, line.iter().copied());
    }
}

fn no_connection_status(e: NoConnection) -> u16 {
    // HAProxy answers 503 for every way of not reaching a server (no server, queue full or
    // timed out, connection refused or timed out after retries).
    match e {
        NoConnection::NoServer
        | NoConnection::QueueFull
        | NoConnection::QueueTimeout
        | NoConnection::ConnectFailed
        | NoConnection::ConnectTimeout => 503,
        NoConnection::Redirect(_) => 302,
    }
}

/// `capture request|response header NAME len N`: the last occurrence of each named header, cut
/// to its length (empty when absent), as haproxy captures them.
pub(crate) fn capture(
    spec: &[(String, usize)],
    headers: &[ringlb_http1::Header],
    src: &[u8],
    out: &mut Vec<Vec<u8>>,
) {
    out.clear();
    for (name, len) in spec {
        let v = headers
            .iter()
            .rev()
            .find(|h| h.name.get(src).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| {
                let v = h.value.get(src);
                v.get(..v.len().min(*len)).unwrap_or_default().to_vec()
            })
            .unwrap_or_default();
        out.push(v);
    }
}

/// `capture cookie NAME len N`: the first cookie whose name starts with NAME (`Cookie` of a
/// request, `Set-Cookie` of a response), as `name=value` cut to N; empty when none.
pub(crate) fn capture_cookie(
    spec: Option<&(String, usize)>,
    headers: &[ringlb_http1::Header],
    src: &[u8],
    response: bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    let Some((prefix, len)) = spec else { return };
    let field: &[u8] = if response { b"set-cookie" } else { b"cookie" };
    for h in headers {
        if !h.name.get(src).eq_ignore_ascii_case(field) {
            continue;
        }
        let value = h.value.get(src);
        // A `Set-Cookie` names one cookie (its attributes follow the first `;`).
        let mut pairs = value.split(|&c| c == b';');
        let found = if response {
            pairs
                .next()
                .filter(|p| p.trim_ascii_start().starts_with(prefix.as_bytes()))
        } else {
            pairs.find(|p| p.trim_ascii_start().starts_with(prefix.as_bytes()))
        };
        if let Some(p) = found {
            let p = p.trim_ascii();
            out.extend_from_slice(p.get(..p.len().min(*len)).unwrap_or_default());
            return;
        }
    }
}

/// A transaction's capture slots for its log line: one per declared slot (`{|}` when the
/// response never came, as haproxy).
fn slots(values: Option<&Vec<Vec<u8>>>, spec: &[(String, usize)]) -> Vec<Vec<u8>> {
    let mut v = values.cloned().unwrap_or_default();
    if v.len() < spec.len() {
        v.resize(spec.len(), Vec::new());
    }
    v
}

/// HAProxy combines the frontend's and the backend's `option http-*` modes: the most closing
/// one wins (httpclose > http-server-close > http-keep-alive).
fn effective_conn_mode(fe: HttpConnMode, be: HttpConnMode) -> HttpConnMode {
    use HttpConnMode::*;
    match (fe, be) {
        (Close, _) | (_, Close) => Close,
        (ServerClose, _) | (_, ServerClose) => ServerClose,
        _ => KeepAlive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_closing_mode_wins() {
        use HttpConnMode::*;
        assert_eq!(effective_conn_mode(KeepAlive, KeepAlive), KeepAlive);
        assert_eq!(effective_conn_mode(KeepAlive, ServerClose), ServerClose);
        assert_eq!(effective_conn_mode(Close, ServerClose), Close);
        assert_eq!(effective_conn_mode(ServerClose, Close), Close);
    }
}

/// `tune.http.logurilen`: haproxy keeps the first `cap` bytes of the request line
/// (`METHOD SP target SP version`) for the log. `buf` holds the three parts without the
/// spaces, `lens` the method and target lengths; the parts are cut as the line would be.
fn cut_request_line(buf: &mut Vec<u8>, lens: &mut (usize, usize), cap: usize) {
    let (m, t) = *lens;
    let v = buf.len().saturating_sub(m + t);
    let (m2, t2, v2) = crate::log::cut_lens((m, t, v), cap);
    if (m2, t2, v2) == (m, t, v) {
        return;
    }
    let mut out = Vec::with_capacity(m2 + t2 + v2);
    out.extend_from_slice(buf.get(..m2).unwrap_or_default());
    out.extend_from_slice(buf.get(m..m + t2).unwrap_or_default());
    out.extend_from_slice(buf.get(m + t..m + t + v2).unwrap_or_default());
    *buf = out;
    *lens = (m2, t2);
}

#[cfg(test)]
mod logurilen_tests {
    use super::cut_request_line;

    fn cut(line: &str, cap: usize) -> (String, (usize, usize)) {
        let mut parts = line.split(' ');
        let (m, t, v) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let mut buf = format!("{m}{t}{v}").into_bytes();
        let mut lens = (m.len(), t.len());
        cut_request_line(&mut buf, &mut lens, cap);
        (String::from_utf8(buf).unwrap(), lens)
    }

    #[test]
    fn request_line_cut_as_haproxy() {
        // haproxy 2.6, `tune.http.logurilen 20`: "GET /abcdefghijklmno".
        assert_eq!(
            cut("GET /abcdefghijklmnopqrstuvwxyz?q=1 HTTP/1.1", 20),
            ("GET/abcdefghijklmno".to_string(), (3, 16))
        );
        assert_eq!(
            cut("GET / HTTP/1.1", 1024),
            ("GET/HTTP/1.1".to_string(), (3, 1))
        );
        assert_eq!(cut("GET / HTTP/1.1", 9), ("GET/HTT".to_string(), (3, 1)));
        assert_eq!(cut("DELETE / HTTP/1.1", 3), ("DEL".to_string(), (3, 0)));
    }
}
