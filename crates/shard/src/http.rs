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
use ringlb_uring::{RecvBuf, SendBuf, TcpStream};

use crate::conn::{ClientConn, Io};

use crate::body::{forward_body, BodyError, BodyLimits};
use crate::rewrite;
use crate::server::{
    lease_and_connect, release_idle, ConnectInfo, NoConnection, Reuse, ServerLease,
};
use crate::state::RunState;
use crate::state::ServerConn;
use crate::time::within;
use crate::topology::{BackendRt, FrontendRt, Topology};
use crate::tunnel::{self, TunnelTimeouts};
use crate::Ctx;

/// Serves one accepted connection of an HTTP-mode frontend until it closes.
pub async fn serve(ctx: &Ctx, frontend: usize, client: ClientConn) {
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
        fe,
        fe_idx: frontend,
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
    };
    session.run().await;
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
}

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
}

struct Session<'a> {
    ctx: &'a Ctx,
    fe: &'a FrontendRt,
    fe_idx: usize,
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
}

impl<'a> Session<'a> {
    async fn run(&mut self) {
        loop {
            match self.ctx.state.run.get() {
                RunState::Stopped => return,
                // Soft stop: a connection between two requests is closed.
                RunState::SoftStopping if self.requests > 0 && self.pending.is_none() => return,
                _ => {}
            }
            let head = match self.read_request_head().await {
                Ok(h) => h,
                Err(HeadError::Quiet | HeadError::Io) => return,
                // Error replies are boxed: rare, and inline they would enlarge every session.
                Err(HeadError::Timeout) => {
                    self.count_failed_request();
                    Box::pin(self.reply_error(408, None)).await;
                    return self.finish_txn();
                }
                Err(HeadError::Invalid(Some(e))) => {
                    self.count_failed_request();
                    Box::pin(self.reply_http_error(e)).await;
                    return self.finish_txn();
                }
                Err(HeadError::Invalid(None)) => {
                    self.count_failed_request();
                    Box::pin(self.reply_error(400, None)).await;
                    return self.finish_txn();
                }
            };
            self.requests += 1;
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
                // HAProxy answers 408 to a first request that never came (no http-ignore-probes).
                Err(_) if self.requests == 0 => return Err(HeadError::Timeout),
                Err(_) | Ok(Ok(None)) => return Err(HeadError::Quiet),
                Ok(Ok(Some(buf))) => buf,
                Ok(Err(_)) => return Err(HeadError::Io),
            },
        };
        // A new transaction record (the scratch may be another one than before the wait).
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        *txn = Txn::default();
        txn.wait_start = Some(started);
        txn.head_start = Some(Instant::now());
        // Fast path: the whole head is in one read, parsed in place (no copy).
        match parse_request(
            first.bytes(),
            &self.limits,
            &mut scratch(&mut self.sc, self.ctx).req,
        ) {
            Ok(Parsed::Complete { .. }) => return Ok(first),
            Ok(Parsed::Partial) => {}
            Err(e) => return Err(HeadError::Invalid(Some(e))),
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
                Ok(Parsed::Partial) => return Err(HeadError::Invalid(None)),
                Err(e) => return Err(HeadError::Invalid(Some(e))),
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
        // A soft stop closes idle keep-alive connections at once, as HAProxy does.
        future::or(within(limit, self.client.recv()), async move {
            stopping.wait().await;
            Ok(Ok(None)) // treated as the client closing: no answer
        })
        .await
    }

    /// Gives the working memory back while the connection waits for its next request.
    fn release_scratch(&mut self) {
        let Some(mut s) = self.sc.take() else { return };
        s.txn = Txn::default();
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
        let Some(be_idx) = self.fe.backend else {
            self.reply_error(503, None).await;
            return After::Close;
        };
        let Some(be) = topo.backends.get(be_idx) else {
            self.reply_error(503, None).await;
            return After::Close;
        };
        scratch(&mut self.sc, self.ctx).txn.backend = Some(be_idx);
        let req = &scratch(&mut self.sc, self.ctx).req;
        let method = req.method();
        let framing = req.framing();
        let client_version = req.version();
        let client_keep_alive = req.client_keep_alive();
        let upgrade = req.is_upgrade() || method == Method::Connect;
        let conn_mode = effective_conn_mode(self.fe.conn_mode, be.conn_mode);

        let mut out = std::mem::take(&mut scratch(&mut self.sc, self.ctx).out);
        out.clear();
        let edits = rewrite::request_edits(
            self.fe,
            self.client_ip,
            self.client_ip_text.as_bytes(),
            conn_mode,
            false,
        );
        let req = &scratch(&mut self.sc, self.ctx).req;
        ringlb_http1::write_request_head(req, head.bytes(), &mut out, &edits);
        let head_len = req.head_len() as u64;
        // What the hashing algorithms look at, copied out of the head before it is consumed
        // (a copy only for `balance uri|url_param|hdr`; other algorithms need nothing).
        let facts = RequestFacts::of(&be.balance, req, head.bytes());
        head.consume(req.head_len());
        scratch(&mut self.sc, self.ctx).txn.bytes_in += head_len;
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
        let first = self.requests == 1;
        let mut reuse = match be.http_reuse {
            HttpReuse::Never => Reuse::Never,
            HttpReuse::Safe if first => Reuse::Never,
            HttpReuse::Aggressive if first => Reuse::Proven,
            HttpReuse::Safe | HttpReuse::Aggressive | HttpReuse::Always => Reuse::Any,
        };
        let mut attempts = 0u32;
        let input = PickInput {
            src: self.client_ip,
            uri: &facts.uri,
            header: facts.header.as_deref(),
            is_post: method == Method::Post,
            ..PickInput::default()
        };
        loop {
            let mut info = ConnectInfo::default();
            let connected = lease_and_connect(self.ctx, be_idx, &input, reuse, &mut info).await;
            self.note_connect(be_idx, &info, connected.is_ok());
            let (lease, server) = match connected {
                Ok(x) => x,
                Err(e) => {
                    scratch(&mut self.sc, self.ctx).out = out;
                    self.reply_error(no_connection_status(e), Some(be)).await;
                    return After::Close;
                }
            };
            let reused = info.reused;
            let (sent, buf) = within(be.timeouts.server, server.send_all(SendBuf::from_vec(out)))
                .await
                .unwrap_or_else(|_| {
                    (
                        Err(std::io::ErrorKind::TimedOut.into()),
                        SendBuf::from_vec(Vec::new()),
                    )
                });
            out = buf.into_inner().unwrap_or_default();
            scratch(&mut self.sc, self.ctx).txn.request_sent = Some(Instant::now());
            let outcome = match sent {
                Err(_) => Err(Failure::Empty),
                Ok(()) => {
                    self.exchange(&server, be, framing, body_start.take(), method)
                        .await
                }
            };
            match outcome {
                // `retry-on <status>`: drop this answer and try again (replayable requests only,
                // within `retries`), as HAProxy's layer-7 retries.
                Ok(_)
                    if replayable
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
                Err(failure) => {
                    let wanted = match failure {
                        Failure::Empty => be.retry_on.empty_response,
                        Failure::Timeout => be.retry_on.response_timeout,
                        Failure::Invalid => be.retry_on.junk_response,
                        Failure::Client(_) => false,
                    };
                    // A reused idle connection the server had closed is retried on a new one
                    // for free, as HAProxy does; other failures follow `retries`/`retry-on`.
                    let retry = replayable
                        && ((reused && failure == Failure::Empty)
                            || (wanted && attempts < be.retries));
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
                        self.reply_error(status, Some(be)).await;
                        return After::Close;
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
        server: &TcpStream,
        be: &BackendRt,
        framing: BodyFraming,
        body_start: Option<RecvBuf>,
        method: Method,
    ) -> Result<RecvBuf, Failure> {
        let limits = self.limits;
        let client = &self.client;
        let resp = &mut scratch(&mut self.sc, self.ctx).resp;
        let server_timeout = be.timeouts.server;
        if framing == BodyFraming::None {
            return read_response_head(
                server,
                client,
                server_timeout,
                self.fe.timeouts.client,
                limits,
                method,
                resp,
            )
            .await;
        }
        // While the body is being sent the server side is active: `timeout server` counts from
        // the end of the request body, as HAProxy's inactivity timeout does.
        let body_done = crate::notify::Notify::default();
        let response = future::or(
            read_response_head(
                server,
                client,
                None,
                self.fe.timeouts.client,
                limits,
                method,
                resp,
            ),
            async {
                body_done.wait().await;
                match server_timeout {
                    Some(d) => glommio::timer::sleep(d).await,
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
            Ok(()) => resp_result,
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
        let edits = rewrite::response_edits(c.client_version, keep_client);
        let resp = &scratch(&mut self.sc, self.ctx).resp;
        ringlb_http1::write_response_head(resp, head.bytes(), &mut out, &edits);
        head.consume(resp.head_len());
        let client_timeout = self.fe.timeouts.client;
        if tunnel {
            let tunnel_head_len = out.len() as u64;
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
            let t = TunnelTimeouts {
                idle: c
                    .be
                    .timeouts
                    .tunnel
                    .or(self.fe.timeouts.tunnel)
                    .or(self.fe.timeouts.client),
                client_fin: self.fe.timeouts.client_fin,
                server_fin: c.be.timeouts.server_fin,
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
            let (up, down, _) = tunnel::run(&self.client, &*server, t).await;
            let txn = &mut scratch(&mut self.sc, self.ctx).txn;
            txn.bytes_in += up;
            txn.bytes_out += down;
            return After::Close;
        }
        let limits = BodyLimits {
            recv_timeout: c.be.timeouts.server,
            send_timeout: client_timeout,
            head: self.limits,
        };
        // The head goes out with the first body bytes, in one write.
        let head_bytes = out.len() as u64;
        let mut head_out = Some(out);
        let mut body_bytes = 0u64;
        let body = forward_body(
            &*server,
            &self.client,
            framing,
            Some(head),
            limits,
            &mut head_out,
            &mut body_bytes,
        )
        .await;
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
        txn.status = status;
        txn.bytes_out += body_bytes + if body.is_ok() { head_bytes } else { 0 };
        scratch(&mut self.sc, self.ctx).out = head_out.unwrap_or_default();
        match body {
            Ok(extra) => {
                // Bytes after the response body: the server is confused; never reuse it.
                let clean = extra.is_none();
                if clean
                    && scratch(&mut self.sc, self.ctx).resp.server_keep_alive()
                    && c.conn_mode == HttpConnMode::KeepAlive
                    && c.be.http_reuse != HttpReuse::Never
                {
                    release_idle(&self.ctx.state, &lease, server);
                }
                if keep_client {
                    After::KeepAlive
                } else {
                    After::Close
                }
            }
            Err(_) => {
                // The response was cut: the client sees its connection close, as with HAProxy.
                server.set_linger_zero();
                After::Close
            }
        }
    }

    /// A request head that could not be read (`ereq`).
    fn count_failed_request(&mut self) {
        if let Some(f) = self
            .ctx
            .state
            .counters
            .borrow_mut()
            .frontends
            .get_mut(self.fe_idx)
        {
            f.failed_req += 1;
        }
    }

    fn note_connect(&mut self, be: usize, info: &ConnectInfo, ok: bool) {
        let now_ms = self.ctx.state.board.now_ms();
        let mut c = self.ctx.state.counters.borrow_mut();
        c.connect_outcome(be, info);
        let txn = &mut scratch(&mut self.sc, self.ctx).txn;
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
                c.stream_start(be, s, now_ms);
                txn.server = Some(s);
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
        let Some(sc) = self.sc.as_mut() else { return };
        let t = std::mem::take(&mut sc.txn);
        let now = Instant::now();
        let mut c = self.ctx.state.counters.borrow_mut();
        if t.status != 0 {
            c.response(self.fe_idx, t.backend, t.server, t.status);
        }
        c.bytes(self.fe_idx, t.backend, t.server, t.bytes_in, t.bytes_out);
        if let (Some(b), Some(s), true) = (t.backend, t.server, t.stream_started) {
            c.stream_end(b, s);
        }
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
        txn.bytes_out += bytes.len() as u64;
        let _ = within(
            self.fe.timeouts.client,
            self.client.send_all(SendBuf::from_vec(bytes.to_vec())),
        )
        .await;
    }

    /// Sends HAProxy's reply for `status` (an `errorfile` of the backend, else of the frontend,
    /// else the built-in page); the caller closes the connection afterwards.
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
        txn.bytes_out += bytes.len() as u64;
        // A copy into an owned buffer: error replies are rare and small.
        let _ = within(
            self.fe.timeouts.client,
            self.client.send_all(SendBuf::from_vec(bytes.to_vec())),
        )
        .await;
    }
}

/// Pooled per-request memory: parsed heads (their field tables sized for `tune.http.maxhdr`) and
/// the buffer rewritten heads are written to.
pub struct Scratch {
    req: RequestHead,
    resp: ResponseHead,
    out: Vec<u8>,
    txn: Txn,
}

/// What one transaction did, for the counters (and the logs): when each phase ended, where it
/// went, what it answered and how many bytes moved.
#[derive(Debug, Clone, Copy, Default)]
struct Txn {
    /// When the session started waiting for this request (accept, or the previous response).
    wait_start: Option<Instant>,
    /// First byte of the request head.
    head_start: Option<Instant>,
    backend: Option<usize>,
    server: Option<usize>,
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
}

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
            resp: ResponseHead::default(),
            out: Vec::with_capacity(512),
            txn: Txn::default(),
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
}

impl RequestFacts {
    fn of(spec: &crate::topology::BalanceSpec, req: &RequestHead, src: &[u8]) -> RequestFacts {
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
        RequestFacts { uri, header }
    }
}

/// What `relay_response` needs to know about the request.
struct ResponseCtx<'a> {
    be: &'a BackendRt,
    method: Method,
    client_version: Version,
    client_keep_alive: bool,
    conn_mode: HttpConnMode,
    upgrade: bool,
}

/// Reads the final response head into `resp`, forwarding interim 1xx responses (100 Continue,
/// 103 Early Hints) to the client as they come.
async fn read_response_head(
    server: &TcpStream,
    client: &ClientConn,
    server_timeout: Option<Duration>,
    client_timeout: Option<Duration>,
    limits: Limits,
    method: Method,
    resp: &mut ResponseHead,
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
                        return Err(Failure::Invalid);
                    }
                    assembled = Some(current.bytes().to_vec());
                    break;
                }
                Err(HttpError { .. }) => return Err(Failure::Invalid),
            }
        }
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
    }
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
