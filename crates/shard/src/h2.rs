//! HTTP/2 from clients (`alpn h2` over TLS, or `proto h2` for clear-text prior knowledge),
//! through the `h2` crate, translated to HTTP/1.1 for servers.
//!
//! One task drives the connection (h2's `accept`, which also reads and writes frames); each
//! stream runs in its own task: its pseudo-headers and fields are checked and written as an
//! HTTP/1.1 head, which is parsed again by `ringlb-http1` (so an h2 request meets exactly the
//! HTTP/1 rules: CR/LF/NUL, token characters, framing), then goes through the same rules,
//! backend and server choice, idle pool and counters as an HTTP/1 request. A malformed stream
//! is reset (`PROTOCOL_ERROR`) and never forwarded. The server's HTTP/1 response is parsed with
//! `parse_response`, its hop-by-hop fields dropped, and sent as HEADERS and DATA within the
//! client's flow-control window.
//!
//! Defences (h2 0.4 settings, see [`builder`]): rapid reset (CVE-2023-44487) is bounded by
//! `max_pending_accept_reset_streams` and `max_concurrent_reset_streams`; streams the client
//! makes us reset (MadeYouReset) by `max_local_error_reset_streams` and the adapter's throttle
//! (below: each stream reset for a protocol error counts 10); CONTINUATION floods and
//! HPACK bombs by `max_header_list_size` (h2 bounds the header block it buffers by it);
//! SETTINGS/PING floods by h2 answering them from the read loop (it does not read more while
//! an ACK is unsent) and, with empty-frame and PRIORITY floods, by the adapter's count of
//! frames that carry nothing (`H2Io::watch_floods`: past 1000 in a second, the connection is
//! not read until the second is over); a zero-window stall by `timeout client` on every wait
//! for send capacity.
//! Trailers travel both ways through the chunked trailer section (`send_body`, `relay_body`);
//! an h2 server is reached through the same HTTP/1 path (`h2srv.rs`); WebSocket over h2
//! (RFC 8441 extended CONNECT) is upgraded over HTTP/1.1 and tunnelled (`h2ws.rs`). What
//! rules change beyond the message (body wait, `early-hint`, `set-mark`) is in `h2fx.rs`. Not yet:
//! `use-service` on h2 (the stream is reset with `HTTP_1_1_REQUIRED`).

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Method as HMethod, Response, Uri};
use ringlb_balance::PickInput;
use ringlb_config::model::{HttpConnMode, HttpReuse};
use ringlb_h2io::{H2Io, LocalFuture, Transport};
use ringlb_http1::{
    parse_request, parse_response, BodyCounter, BodyFraming, ChunkedDecoder, Limits, Method,
    Parsed, RequestHead, ResponseHead, Side,
};
use ringlb_tls::TlsFacts;
use ringlb_uring::{RecvBuf, SendBuf};

use crate::conn::{ClientConn, Io};
use crate::h2fx::EarlyBody;
use crate::msg_rules::{self, ConnFacts, PickFacts, RequestVerdict, ResponseVerdict};
use crate::server::{lease_and_connect, release_idle, ConnectInfo, Reuse};
use crate::state::RunState;
use crate::time::within;
use crate::topology::{BackendRt, FrontendRt};
use crate::Ctx;

/// HTTP/2 on one bind: prior knowledge (`proto h2`) and the `tune.h2.*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Bind {
    /// `proto h2`: every connection speaks HTTP/2 (h2c without upgrade, or over TLS whatever
    /// ALPN said).
    pub prior_knowledge: bool,
    pub max_concurrent_streams: u32,
    pub initial_window_size: u32,
    pub header_table_size: u32,
    pub max_frame_size: u32,
    /// Announce SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441, WebSocket over HTTP/2), unless
    /// the global `h2-workaround-bogus-websocket-clients` turns it off.
    pub extended_connect: bool,
}

impl H2Bind {
    /// HAProxy's defaults where `tune.h2.*` is unset (100 streams, 65535-byte window,
    /// 4096-byte HPACK table, 16384-byte frames).
    pub fn of(bind: &ringlb_config::model::Bind, global: &ringlb_config::model::Global) -> H2Bind {
        let tune = &global.tune;
        H2Bind {
            extended_connect: !global
                .other
                .iter()
                .any(|d| d.keyword == "h2-workaround-bogus-websocket-clients"),
            prior_knowledge: bind
                .other
                .iter()
                .any(|(n, v)| n == "proto" && v.as_deref() == Some("h2")),
            // 0 (which HAProxy accepts) keeps the default rather than refusing every stream.
            max_concurrent_streams: tune
                .h2_max_concurrent_streams
                .filter(|&n| n > 0)
                .unwrap_or(100),
            initial_window_size: tune
                .h2_fe_initial_window_size
                .or(tune.h2_initial_window_size)
                .unwrap_or(65_535),
            header_table_size: tune.h2_header_table_size.unwrap_or(4096),
            max_frame_size: tune.h2_max_frame_size.unwrap_or(16_384),
        }
    }

    /// Whether `client` is served with HTTP/2: ALPN chose `h2`, or the bind forces it.
    pub fn speaks_h2(&self, client: &ClientConn) -> bool {
        self.prior_knowledge
            || client
                .tls_facts()
                .is_some_and(|f| f.alpn.as_deref() == Some(b"h2"))
    }
}

/// Decoded request fields accepted per stream (HPACK bombs and CONTINUATION floods stop here).
const MAX_HEADER_LIST: u32 = 64 << 10;
/// Streams reset by the client before we accepted them, per connection (rapid reset).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Reset streams remembered at once (h2 default is 50 for clients; also bounds rapid reset).
const MAX_CONCURRENT_RESETS: usize = 50;
/// Streams we reset because of client errors before the connection is closed (MadeYouReset).
const MAX_LOCAL_ERROR_RESETS: usize = 256;
/// Bytes buffered by h2 per stream waiting for the socket.
const MAX_SEND_BUFFER: usize = 256 << 10;

/// The h2 server settings for a bind.
pub fn builder(b: &H2Bind) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(b.max_concurrent_streams)
        .initial_window_size(b.initial_window_size)
        // The connection window follows the stream window, at least HTTP/2's default.
        .initial_connection_window_size(b.initial_window_size.max(65_535))
        .header_table_size(b.header_table_size)
        .max_frame_size(b.max_frame_size)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_concurrent_reset_streams(MAX_CONCURRENT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_send_buffer_size(MAX_SEND_BUFFER);
    if b.extended_connect {
        builder.enable_connect_protocol();
    }
    builder
}

/// The client connection as h2's transport.
struct Client(ClientConn);

impl Transport for Client {
    type Chunk = RecvBuf;

    fn bytes(chunk: &RecvBuf) -> &[u8] {
        chunk.bytes()
    }

    fn recv(self: Rc<Self>) -> LocalFuture<io::Result<Option<RecvBuf>>> {
        Box::pin(async move { self.0.recv().await })
    }

    fn send(self: Rc<Self>, buf: Vec<u8>) -> LocalFuture<(io::Result<()>, Vec<u8>)> {
        Box::pin(async move {
            let (r, back) = self.0.send_all(SendBuf::from_vec(buf)).await;
            (r, back.into_vec().unwrap_or_default())
        })
    }

    fn shutdown(self: Rc<Self>) -> LocalFuture<()> {
        Box::pin(async move { self.0.finish().await })
    }
}

/// What every stream of a connection shares.
struct Conn {
    ctx: Ctx,
    fe_idx: usize,
    /// The `bind` that accepted the connection (listener counters).
    bind: Option<usize>,
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    tls: Option<TlsFacts>,
    client_ip_text: String,
    limits: Limits,
    /// Streams in progress (the idle timeout runs only when there are none).
    active: Cell<usize>,
    last_active: Cell<Instant>,
    streams: Cell<u64>,
    /// `sess.*` variables the connection's `tcp-request` rules set: every stream starts with
    /// them (a stream's own `sess.*` changes stay in that stream).
    sess_vars: ringlb_rules::Vars,
    /// `set-src`/`set-dst`... of any stream: the connection's addresses from then on.
    effects: crate::rules::RuleEffects,
    /// The client socket, for `set-mark` / `set-tos` (weak: streams finishing after the
    /// connection ended must not hold its socket open).
    client: std::rc::Weak<Client>,
}

impl Conn {
    fn fe(&self) -> Option<&FrontendRt> {
        self.ctx.state.topo.frontends.get(self.fe_idx)
    }

    fn facts(&self) -> ConnFacts<'_> {
        ConnFacts {
            src: self.effects.src.get().or(self.src),
            dst: self.effects.dst.get().or(self.dst),
            tls: self.tls.as_ref(),
            server_tls: None,
            effects: Some(&self.effects),
            h2: true,
        }
    }

    /// The facts a stream's rules see: the connection's addresses, and the stream's own
    /// effects (`set-log-level` is per stream; address changes go back to the connection
    /// through [`Conn::keep_addresses`]).
    fn stream_facts<'a>(&'a self, fx: &'a crate::rules::RuleEffects) -> ConnFacts<'a> {
        ConnFacts {
            effects: Some(fx),
            ..self.facts()
        }
    }

    /// `set-src`/`set-dst` of a stream change the connection's addresses from then on (as
    /// on HTTP/1, where they hold for the connection's next requests).
    fn keep_addresses(&self, fx: &crate::rules::RuleEffects) {
        if let Some(a) = fx.src.take() {
            self.effects.src.set(Some(a));
        }
        if let Some(a) = fx.dst.take() {
            self.effects.dst.set(Some(a));
        }
    }

    /// `set-mark` / `set-tos` of a stream's rules, on the connection's socket (two cell
    /// reads when no rule set them).
    fn apply_socket_effects(&self, fx: &crate::rules::RuleEffects) {
        if fx.mark.get().is_none() && fx.tos.get().is_none() {
            return;
        }
        let client = self.client.upgrade();
        crate::h2fx::apply_socket_effects(client.as_ref().map(|c| c.0.tcp()), fx);
    }
}

/// Serves one HTTP/2 client connection until it closes.
pub async fn serve(
    ctx: &Ctx,
    frontend: usize,
    bind: H2Bind,
    client: ClientConn,
    sess: crate::live::SessRef,
) {
    let topo = &ctx.state.topo;
    let Some(fe) = topo.frontends.get(frontend) else {
        return;
    };
    // `tcp-request connection` rules, as for HTTP/1: their counters live with the connection.
    let mut conn_stick = crate::stick::StickSession::new(&ctx.state);
    let effects = crate::rules::RuleEffects::default();
    let at = (frontend, ctx.live.bind_of(sess));
    if !crate::stick::connection_rules(ctx, fe, at, &client, &mut conn_stick, &effects) {
        return;
    }
    serve_h2(
        ctx,
        (frontend, fe),
        bind,
        client,
        sess,
        (conn_stick, effects),
        None,
    )
    .await;
}

/// A clear-text HTTP/1 connection whose first bytes are HTTP/2's connection preface, served
/// as HTTP/2 from those bytes on, as haproxy's HTTP/1 layer hands such a connection to its
/// HTTP/2 one (prior knowledge without `proto h2`). The connection rules already ran, their
/// counters and effects come along.
pub async fn serve_upgraded(
    ctx: &Ctx,
    frontend: usize,
    bind: H2Bind,
    client: ClientConn,
    sess: crate::live::SessRef,
    rules: (crate::stick::StickSession, crate::rules::RuleEffects),
    first: RecvBuf,
) {
    let Some(fe) = ctx.state.topo.frontends.get(frontend) else {
        return;
    };
    serve_h2(ctx, (frontend, fe), bind, client, sess, rules, Some(first)).await;
}

async fn serve_h2(
    ctx: &Ctx,
    (frontend, fe): (usize, &FrontendRt),
    bind: H2Bind,
    client: ClientConn,
    sess: crate::live::SessRef,
    (mut conn_stick, effects): (crate::stick::StickSession, crate::rules::RuleEffects),
    first: Option<RecvBuf>,
) {
    let topo = &ctx.state.topo;
    // The `h2` stats module's connection counts (haproxy counts a connection its h2 layer
    // took, with or without a request: one that closes before any request head counts only
    // here and in `stot`, as in haproxy 2.6).
    let _h2_open = H2Open::new(ctx, frontend);
    let src = client.peer_addr();
    let moved = effects.src.get();
    let dst = client.tcp().local_addr().ok();
    let tls = client.tls_facts();
    let client = Rc::new(Client(client));
    let conn = Rc::new(Conn {
        ctx: ctx.clone(),
        fe_idx: frontend,
        bind: ctx.live.bind_of(sess),
        src,
        dst,
        tls,
        client_ip_text: match (&fe.forwardfor, moved.or(src)) {
            (Some(_), Some(a)) => a.ip().to_string(),
            _ => String::new(),
        },
        limits: Limits {
            max_headers: topo.tune.http_maxhdr,
            max_head_bytes: topo
                .tune
                .bufsize
                .saturating_sub(topo.tune.maxrewrite)
                .max(1024),
        },
        active: Cell::new(0),
        last_active: Cell::new(Instant::now()),
        streams: Cell::new(0),
        sess_vars: std::mem::take(&mut conn_stick.sess_vars),
        effects,
        client: Rc::downgrade(&client),
    });
    let mut io = match first {
        Some(first) => H2Io::with_first(client, first),
        None => H2Io::new(client),
    };
    // PING, SETTINGS, PRIORITY, empty-frame floods: h2 answers them all; the adapter
    // throttles them.
    io.watch_floods(|d| Box::pin(ringlb_uring::rt::sleep(d)));
    let handshake_limit = fe.timeouts.http_request.or(fe.timeouts.client);
    let mut h2 = match within(handshake_limit, builder(&bind).handshake::<_, Bytes>(io)).await {
        Ok(Ok(c)) => c,
        _ => return,
    };
    // Between streams the connection may idle for `timeout http-keep-alive` (else `client`).
    let idle = fe.timeouts.http_keep_alive.or(fe.timeouts.client);
    let mut stopping = false;
    let max_tasks = (bind.max_concurrent_streams as usize)
        .saturating_mul(2)
        .max(1);
    loop {
        let accepted = if stopping {
            // Draining after GOAWAY: streams in progress finish; a client that keeps the
            // connection without streams (or never acknowledges the GOAWAY's PING) is closed
            // after the idle time.
            let drained = future::or(async { Some(h2.accept().await) }, async {
                idle_expired(&conn, idle.or(Some(DRAIN_IDLE))).await;
                None
            })
            .await;
            match drained {
                None => return,
                some => some,
            }
        } else {
            future::or(async { Some(h2.accept().await) }, async {
                future::or(ctx.stopping.wait(), idle_expired(&conn, idle)).await;
                None
            })
            .await
        };
        match accepted {
            None => {
                // Soft stop or idle: GOAWAY, let the streams in progress finish.
                stopping = true;
                h2.graceful_shutdown();
                if ctx.state.run.get() == RunState::Stopped {
                    return;
                }
            }
            Some(None) | Some(Some(Err(_))) => return,
            Some(Some(Ok((req, mut respond)))) => {
                // A stream the client already reset (HEADERS and RST_STREAM in one read, the
                // rapid-reset pattern) costs no task and no server connection.
                if future::poll_once(poll_fn(|cx| respond.poll_reset(cx)))
                    .await
                    .is_some()
                {
                    continue;
                }
                // Streams the client reset after we accepted them no longer count against
                // its concurrency limit, but their tasks may still wait on a server: bound
                // the tasks too (rapid reset after accept).
                if conn.active.get() >= max_tasks {
                    respond.send_reset(Reason::REFUSED_STREAM);
                    continue;
                }
                conn.active.set(conn.active.get() + 1);
                conn.streams.set(conn.streams.get() + 1);
                ctx.live.count_request(sess);
                let conn = conn.clone();
                ringlb_uring::rt::spawn(async move {
                    stream(&conn, req, respond).await;
                    conn.active.set(conn.active.get().saturating_sub(1));
                    conn.last_active.set(Instant::now());
                })
                .detach();
            }
        }
    }
}

/// An HTTP/2 client connection in the frontend's `h2` module counters while it lives.
struct H2Open<'a> {
    ctx: &'a Ctx,
    frontend: usize,
}

impl<'a> H2Open<'a> {
    fn new(ctx: &'a Ctx, frontend: usize) -> H2Open<'a> {
        if let Some(f) = ctx.state.counters.borrow_mut().frontends.get_mut(frontend) {
            f.mux.h2_total_connections += 1;
            f.mux.h2_open_connections += 1;
        }
        H2Open { ctx, frontend }
    }
}

impl Drop for H2Open<'_> {
    fn drop(&mut self) {
        let mut c = self.ctx.state.counters.borrow_mut();
        if let Some(f) = c.frontends.get_mut(self.frontend) {
            f.mux.h2_open_connections = f.mux.h2_open_connections.saturating_sub(1);
        }
    }
}

/// How long a draining connection without streams is kept when no timeout is configured.
const DRAIN_IDLE: Duration = Duration::from_secs(5);

/// Resolves once the connection had no stream for `idle` (never without a limit).
async fn idle_expired(conn: &Conn, idle: Option<Duration>) {
    let Some(idle) = idle else {
        return future::pending().await;
    };
    loop {
        ringlb_uring::rt::sleep(idle).await;
        if conn.active.get() == 0 && conn.last_active.get().elapsed() >= idle {
            return;
        }
    }
}

/// What one stream did, for the counters and the log line (`crate::log::log_stream`).
#[derive(Default)]
struct Txn {
    backend: Option<usize>,
    /// The request's variables, kept for `http-after-response` rules when there are such.
    after_vars: ringlb_rules::Vars,
    /// The backend of a reply its `http-request` rules made (not counted as forwarded).
    after_be: Option<usize>,
    server: Option<usize>,
    stream_started: bool,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    /// The stream began (its complete head had arrived).
    start: Option<Instant>,
    queue: Option<Duration>,
    connect: Option<Duration>,
    retries: u32,
    /// The server the last connection attempt went to, even a failed one (the log's `%s`).
    tried: Option<usize>,
    server_addr: Option<SocketAddr>,
    request_sent: Option<Instant>,
    response_head: Option<Instant>,
    /// HAProxy's termination state; `[0, 0]`: a normal end.
    term: [u8; 2],
    /// `(method, absolute URI)` as haproxy logs an HTTP/2 request, only when the frontend
    /// logs.
    log_req: Option<Box<(String, String)>>,
    /// `capture request|response header` values (only when the frontend logs).
    cap_req: Vec<Vec<u8>>,
    cap_res: Vec<Vec<u8>>,
    /// `capture cookie` values (only when the frontend logs).
    cookie_req: Vec<u8>,
    cookie_res: Vec<u8>,
    /// The stream's `set-log-level` (its address effects move to the connection).
    fx: crate::rules::RuleEffects,
    /// An RFC 8441 WebSocket stream: the `Sec-WebSocket-Accept` the server's 101 must carry.
    ws_accept: Option<String>,
    /// The TLS connection to the server, kept for a log format that reads it (`ssl_bc_*`).
    /// Boxed: kept by every stream or connection future, asked for by few configs.
    server_tls: Option<Box<ringlb_tls::ServerTlsFacts>>,
}

impl Txn {
    /// The capture slots the rules fill (`http-request|response capture`).
    fn captures<'a>(
        cap_req: &'a mut Vec<Vec<u8>>,
        cap_res: &'a mut Vec<Vec<u8>>,
        fe: &'a FrontendRt,
    ) -> crate::rules::Captures<'a> {
        crate::rules::Captures {
            req: cap_req,
            res: cap_res,
            req_spec: &fe.capture_req,
            res_spec: &fe.capture_res,
        }
    }
}

/// Why a stream failed before its response head went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Nothing (or an invalid head) from the server: 502; retryable when nothing came.
    Empty,
    Invalid,
    Timeout,
    /// The client's body failed (reset, bad length, timeout): nothing more to send.
    Client,
}

async fn stream(conn: &Conn, req: http::Request<RecvStream>, mut respond: SendResponse<Bytes>) {
    let ctx = &conn.ctx;
    let Some(fe) = conn.fe() else { return };
    {
        let now_ms = ctx.state.board.now_ms();
        let mut c = ctx.state.counters.borrow_mut();
        c.process.cum_req += 1;
        if let Some(f) = c.frontends.get_mut(conn.fe_idx) {
            f.on_request(now_ms);
        }
    }
    let mut txn = Txn {
        start: Some(Instant::now()),
        ..Txn::default()
    };
    // The stream's stick counters (`http-request track-scN`), released when it ends.
    let mut stick = crate::stick::StickSession::new(&ctx.state);
    stick.sess_vars = conn.sess_vars.clone(); // no allocation when there are none
    let (parts, mut body) = req.into_parts();
    if matches!(fe.log_line, crate::topology::LogLine::Format(_)) {
        txn.log_req = Some(Box::new((parts.method.to_string(), parts.uri.to_string())));
        // One (empty) value per declaration until the server's response fills them.
        txn.cap_res = vec![Vec::new(); fe.capture_res.len()];
    }
    let ws = match crate::h2ws::extended(&parts.method, &parts.extensions) {
        crate::h2ws::Extended::No => false,
        crate::h2ws::Extended::WebSocket => true,
        crate::h2ws::Extended::Other => {
            // Only WebSocket has an HTTP/1 form (RFC 8441 §5).
            count_failed_request(conn);
            reply_error(conn, fe, None, 501, &mut respond, &mut txn).await;
            return finish(conn, txn);
        }
    };
    let has_body = !ws && !body.is_end_stream();
    if has_body && expects_continue(&parts.headers) {
        // Answered here (the HTTP/1 request goes without `expect`): the client sends its body
        // at once instead of waiting for a 100 the server may never send over HTTP/1.
        let _ = respond
            .send_informational(Response::builder().status(100).body(()).unwrap_or_default());
    }
    let translated = if ws {
        let key = crate::h2ws::new_key(ctx.state.random_u64(), ctx.state.random_u64());
        txn.ws_accept = Some(crate::h2ws::accept_of(&key));
        crate::h2ws::h1_head(&parts.uri, &parts.headers, &key)
    } else {
        h1_head(&parts.method, &parts.uri, &parts.headers, has_body)
    };
    let mut head_bytes = match translated {
        Ok(h) => h,
        Err(reason) => {
            count_failed_request(conn);
            respond.send_reset(reason);
            return;
        }
    };
    // Field tables start empty and grow to what the stream needs (as `http::Scratch` does).
    let mut req = RequestHead::default();
    match parse_request(&head_bytes, &conn.limits, &mut req) {
        Ok(Parsed::Complete { .. }) => {}
        _ => {
            count_failed_request(conn);
            respond.send_reset(Reason::PROTOCOL_ERROR);
            return;
        }
    }
    txn.bytes_in += head_htx_size(&parts.uri, &parts.headers, &req, &head_bytes);
    if txn.log_req.is_some() && !fe.capture_req.is_empty() {
        crate::http::capture(
            &fe.capture_req,
            req.headers(),
            &head_bytes,
            &mut txn.cap_req,
        );
    }
    if txn.log_req.is_some() {
        crate::http::capture_cookie(
            fe.capture_cookie.as_ref(),
            req.headers(),
            &head_bytes,
            false,
            &mut txn.cookie_req,
        );
    }
    // `option http-buffer-request` / `wait-for-body`: the body is read before the rules.
    let early = if has_body {
        match buffer_request_body(
            conn,
            fe,
            &req,
            &head_bytes,
            &mut body,
            &mut respond,
            &mut txn,
        )
        .await
        {
            Ok(e) => e,
            Err(()) => {
                stick.end_txn(txn.status, txn.bytes_in, txn.bytes_out);
                return finish(conn, txn);
            }
        }
    } else {
        None
    };
    let default_be = fe.backend;
    let mut vars = ringlb_rules::Vars::default();
    let mut choice = msg_rules::ServerChoice::default();
    let be_idx = if msg_rules::has_request_rules(ctx, fe) {
        let room = early.as_ref().map(|_| {
            let tune = &ctx.state.topo.tune;
            crate::buffer_body::room(tune.bufsize, tune.maxrewrite, head_bytes.len())
        });
        let req_body = early
            .as_ref()
            .zip(room)
            .map(|(e, room)| e.data.get(..room).unwrap_or(&e.data));
        let verdict = msg_rules::request_rules(
            ctx,
            fe,
            &req,
            &head_bytes,
            req_body,
            conn.stream_facts(&txn.fx),
            Some(&mut stick),
            Some(Txn::captures(&mut txn.cap_req, &mut txn.cap_res, fe)),
        );
        conn.keep_addresses(&txn.fx);
        conn.apply_socket_effects(&txn.fx);
        // `early-hint`: the 103s go before the final response, whatever it is (as haproxy).
        if let Some(hints) = txn.fx.take_early_hints() {
            crate::h2fx::send_early_hints(&mut respond, &hints);
        }
        match verdict {
            RequestVerdict::Reply(mut reply) => {
                if reply.denied {
                    stick.on_denied();
                }
                txn.after_be = reply.backend;
                txn.after_vars = std::mem::take(&mut reply.vars);
                send_rules_reply(conn, fe, None, reply, &mut respond, &mut txn).await;
                stick.end_txn(txn.status, txn.bytes_in, txn.bytes_out);
                return finish(conn, txn);
            }
            RequestVerdict::Service(_) => {
                // `use-service` serves HTTP/1 only for now.
                respond.send_reset(Reason::HTTP_1_1_REQUIRED);
                stick.end_txn(txn.status, txn.bytes_in, txn.bytes_out);
                return finish(conn, txn);
            }
            RequestVerdict::Go {
                backend,
                rewritten,
                vars: v,
                server,
                unique_id: _,
            } => {
                if msg_rules::has_after_rules(
                    fe,
                    backend.and_then(|b| ctx.state.topo.backends.get(b)),
                ) {
                    txn.after_vars = v.clone();
                }
                vars = v;
                choice = server;
                if let Some(raw) = rewritten {
                    let framing = req.framing();
                    match parse_request(&raw, &conn.limits, &mut req) {
                        Ok(Parsed::Complete { .. }) if req.framing() == framing => {
                            head_bytes = raw;
                        }
                        _ => {
                            note_failed_rewrite(conn, backend);
                            let be = backend.and_then(|b| ctx.state.topo.backends.get(b));
                            reply_error(conn, fe, be, 500, &mut respond, &mut txn).await;
                            stick.end_txn(txn.status, txn.bytes_in, txn.bytes_out);
                            return finish(conn, txn);
                        }
                    }
                }
                backend
            }
        }
    } else {
        default_be
    };
    let Some((be_idx, be)) = be_idx.and_then(|i| Some((i, ctx.state.topo.backends.get(i)?))) else {
        reply_error(conn, fe, None, 503, &mut respond, &mut txn).await;
        stick.end_txn(txn.status, txn.bytes_in, txn.bytes_out);
        return finish(conn, txn);
    };
    txn.backend = Some(be_idx);
    // `cache-use`: a hit is answered from the shard's store (see `cache.rs`).
    let mut cache_key = None;
    if let Some((cache, rule_be)) = txn.fx.cache_use.get() {
        let now_s = crate::cache::now_s();
        let counted = (conn.fe_idx, rule_be);
        let scheme = parts.uri.scheme_str().unwrap_or("https");
        let req_of = (&req, head_bytes.as_slice());
        match crate::cache::lookup(ctx, cache, counted, req_of, Some(scheme), now_s) {
            crate::cache::Lookup::Hit { bytes, status } => {
                let reply = crate::rules::Reply::ready(bytes, status, be_idx, vars);
                send_rules_reply(conn, fe, Some(be), reply, &mut respond, &mut txn).await;
                stick.end_txn(txn.status, txn.bytes_in, txn.bytes_out);
                return finish(conn, txn);
            }
            crate::cache::Lookup::Miss(key) => cache_key = Some(key),
            crate::cache::Lookup::Bypass => {}
        }
    }
    forward(
        conn,
        fe,
        (be_idx, be),
        &req,
        &head_bytes,
        (vars, choice, cache_key),
        (&mut body, early),
        respond,
        &mut txn,
    )
    .await;
    stick.end_txn(txn.status, txn.bytes_in, txn.bytes_out);
    finish(conn, txn);
}

/// `option http-buffer-request` / `http-request wait-for-body` on a stream: reads the body
/// before the rules run (the 100-continue went out already). `Ok(None)`: no wait applies;
/// `Err`: the stream was answered (408 when the wait ran out, as haproxy) or the client left.
#[allow(clippy::too_many_arguments)]
async fn buffer_request_body(
    conn: &Conn,
    fe: &FrontendRt,
    req: &RequestHead,
    head_bytes: &[u8],
    body: &mut RecvStream,
    respond: &mut SendResponse<Bytes>,
    txn: &mut Txn,
) -> Result<Option<EarlyBody>, ()> {
    let ctx = &conn.ctx;
    // Facts without effects: the rules that ask for the wait run again afterwards.
    let facts = ConnFacts {
        effects: None,
        h2: true,
        ..conn.facts()
    };
    let Some(wait) = msg_rules::body_wait(ctx, fe, req, head_bytes, facts) else {
        return Ok(None);
    };
    let tune = &ctx.state.topo.tune;
    let room = crate::buffer_body::room(tune.bufsize, tune.maxrewrite, head_bytes.len());
    match crate::h2fx::wait_for_body(body, req.framing(), room, wait, fe.timeouts.client).await {
        Ok(e) => Ok(Some(e)),
        Err(crate::buffer_body::WaitError::Timeout) => {
            count_failed_request(conn);
            // haproxy: `cD` (client timeout during the data phase).
            txn.term = *b"cD";
            reply_error(conn, fe, None, 408, respond, txn).await;
            Err(())
        }
        Err(_) => {
            count_failed_request(conn);
            txn.term = *b"CD";
            respond.send_reset(Reason::CANCEL);
            Err(())
        }
    }
}

/// Sends the request to a server of `be` and relays its response.
#[allow(clippy::too_many_arguments)]
async fn forward(
    conn: &Conn,
    fe: &FrontendRt,
    (be_idx, be): (usize, &BackendRt),
    req: &RequestHead,
    head_bytes: &[u8],
    (vars, choice, cache): (
        ringlb_rules::Vars,
        msg_rules::ServerChoice,
        Option<crate::cache::CacheKey>,
    ),
    (body, buffered): (&mut RecvStream, Option<EarlyBody>),
    mut respond: SendResponse<Bytes>,
    txn: &mut Txn,
) {
    let ctx = &conn.ctx;
    // `http-request set-timeout server` overrides the backend's for this stream.
    let server_timeout = txn.fx.server_timeout.get().or(be.timeouts.server);
    let method = req.method();
    let framing = req.framing();
    let conn_mode = effective_conn_mode(fe.conn_mode, be.conn_mode);
    // After `set-src`, `option forwardfor` and `balance source` use the new address.
    let src = conn.facts().src;
    let moved_text = match (&fe.forwardfor, conn.effects.src.get()) {
        (Some(_), Some(a)) => Some(a.ip().to_string()),
        _ => None,
    };
    let dst_text = crate::rewrite::original_to_text(fe, be, conn.facts().dst.map(|a| a.ip()));
    let edits = crate::rewrite::request_edits(
        fe,
        be,
        src.map(|a| a.ip()),
        moved_text
            .as_deref()
            .unwrap_or(&conn.client_ip_text)
            .as_bytes(),
        dst_text.as_deref(),
        conn_mode,
        false,
    );
    // Cookie persistence, as on HTTP/1 (`persist.rs`): the named server, the head without the
    // cookie with `indirect`.
    let mut persisted = None;
    let mut cookie_dates = crate::persist::CookieDates::default();
    let mut stripped_head: Option<(RequestHead, Vec<u8>)> = None;
    if let Some(ck) = &be.cookie {
        let now_s = crate::persist::unix_now();
        if let Some((value, stripped, dates)) =
            crate::persist::persistence_cookie(req, head_bytes, ck, now_s)
        {
            cookie_dates = dates;
            persisted = crate::persist::named_server(ctx, be_idx, be, &value, choice.persist);
            if let Some(raw) = stripped {
                let mut h = RequestHead::default();
                if let Ok(Parsed::Complete { .. }) = parse_request(&raw, &conn.limits, &mut h) {
                    stripped_head = Some((h, raw));
                }
            }
        }
    }
    let (req, head_bytes) = match &stripped_head {
        Some((h, raw)) => (h, raw.as_slice()),
        None => (req, head_bytes),
    };
    // `option http-restrict-req-hdr-names` (h2 allows `_` and other characters in names).
    let mut restricted_head: Option<(RequestHead, Vec<u8>)> = None;
    if fe.restrict_hdr_names != crate::topology::HdrNamePolicy::Preserve
        || be.restrict_hdr_names != crate::topology::HdrNamePolicy::Preserve
    {
        match crate::rewrite::restrict_header_names(fe, be, head_bytes) {
            crate::rewrite::Restricted::Unchanged => {}
            crate::rewrite::Restricted::Rewritten(raw) => {
                let mut h = RequestHead::default();
                if let Ok(Parsed::Complete { .. }) = parse_request(&raw, &conn.limits, &mut h) {
                    restricted_head = Some((h, raw));
                }
            }
            crate::rewrite::Restricted::Reject => {
                txn.term = *b"PR";
                reply_error(conn, fe, Some(be), 403, &mut respond, txn).await;
                return;
            }
        }
    }
    let (req, head_bytes) = match &restricted_head {
        Some((h, raw)) => (h, raw.as_slice()),
        None => (req, head_bytes),
    };
    let mut out = Vec::with_capacity(head_bytes.len() + 64);
    ringlb_http1::write_request_head(req, head_bytes, &mut out, &edits);
    let facts = PickFacts::of(&be.balance, req, head_bytes);
    // `url_param .. check_post`: the body's start, read before choosing a server (unless
    // the rules had it read already).
    let early = if buffered.is_some() {
        buffered
    } else if crate::post_param::wants_body(&be.balance.balance, method, framing, &facts.uri) {
        Some(
            early_body(
                body,
                framing,
                ctx.state.topo.tune.bufsize,
                fe.timeouts.client,
            )
            .await,
        )
    } else {
        None
    };
    let input = PickInput {
        src: src.map(|a| a.ip()),
        uri: &facts.uri,
        header: facts.header.as_deref(),
        body: early.as_ref().map(|e| e.data.as_slice()),
        is_post: method == Method::Post,
        key: choice.hash_key.as_deref(),
        ..PickInput::default()
    };
    let replayable = framing == BodyFraming::None && method.is_idempotent();
    // `retry-on` (layer-7 retries) unless `http-request disable-l7-retry` said no.
    let l7_retry = replayable && !txn.fx.no_l7_retry.get();
    let mut attempts = 0u32;
    let first = conn.streams.get() == 1;
    let mut reuse = match be.http_reuse {
        HttpReuse::Never => Reuse::Never,
        HttpReuse::Safe if first => Reuse::Never,
        HttpReuse::Aggressive if first => Reuse::Proven,
        HttpReuse::Always if first => Reuse::AnySafeFirst,
        HttpReuse::Safe | HttpReuse::Aggressive | HttpReuse::Always => Reuse::Any,
    };
    let mut resp = ResponseHead::default();
    let named = persisted;
    let mut cache = cache;
    // A persistence cookie first, then `use-server`/`stick match` (HAProxy's order).
    let mut forced = persisted.take().or(choice.forced);
    let from = crate::server::ClientSide {
        src: conn.facts().src,
        dst: conn.facts().dst,
        tls: conn.tls.clone().filter(|_| be.proxy_v2),
    };
    loop {
        let mut info = ConnectInfo {
            forced: forced.take(),
            // An upgrade needs a connection of its own, over HTTP/1.1.
            want_h1: txn.ws_accept.is_some(),
            ..ConnectInfo::default()
        };
        // A client that resets the stream while a server connection is being set up stops
        // it: no server sees a request nobody waits for.
        let waiting = std::time::Instant::now();
        let connecting =
            async { Some(lease_and_connect(ctx, be_idx, &input, reuse, &mut info, &from).await) };
        let reset = async {
            let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
            None
        };
        let Some(connected) = future::or(connecting, reset).await else {
            // Logged as haproxy logs it under `option abortonclose` (ringlb always drops a
            // request whose stream the client reset: no one waits for its answer).
            let queued = info.server.is_none();
            if queued {
                info.queue = waiting.elapsed();
            }
            note_connect(conn, be_idx, &info, false, txn);
            txn.term = if queued { *b"CQ" } else { *b"CC" };
            if queued {
                txn.connect = None;
            }
            return;
        };
        note_connect(conn, be_idx, &info, connected.is_ok(), txn);
        let Ok((lease, server)) = connected else {
            txn.term = *b"SC";
            reply_error(conn, fe, Some(be), 503, &mut respond, txn).await;
            return;
        };
        choice.commit(ctx, be, lease.server);
        crate::counters::h1_server_stream(ctx, be_idx, &server, info.reused);
        // `ssl_bc_*`/`ssl_s_*` in the log line describe the connection from here on (also
        // when the exchange ends before a response head).
        if matches!(&fe.log_line,
            crate::topology::LogLine::Format(lf) if lf.uses_server_tls())
        {
            txn.server_tls = server.stream.tls_facts().map(Box::new);
        }
        crate::server::send_name_header(ctx, be, be_idx, lease.server, &mut out);
        let (sent, _) = within(
            server_timeout,
            server.send_all(SendBuf::from_vec(out.clone())),
        )
        .await
        .unwrap_or_else(|_| {
            (
                Err(io::ErrorKind::TimedOut.into()),
                SendBuf::from_vec(Vec::new()),
            )
        });
        let outcome = match sent {
            Err(_) => Err(Failure::Empty),
            Ok(()) => {
                txn.request_sent = Some(Instant::now());
                // A client that resets the stream stops the wait for the server at once.
                let reset = async {
                    let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
                    Err(Failure::Client)
                };
                let body = BodySource {
                    early: early.as_ref(),
                    rest: body,
                };
                let exchange = exchange(
                    conn,
                    fe,
                    server_timeout,
                    &server,
                    framing,
                    method,
                    body,
                    &mut resp,
                    txn,
                );
                future::or(exchange, reset).await
            }
        };
        // `observe layer7`, as on HTTP/1 (`observe.rs`).
        let observed = match &outcome {
            Ok(_) => Some(crate::observe::of_status(resp.status())),
            Err(Failure::Empty) if !info.reused => Some(crate::observe::Event::HttpBrokenPipe),
            Err(Failure::Timeout) => Some(crate::observe::Event::HttpReadTimeout),
            Err(Failure::Invalid) => Some(crate::observe::Event::HttpHeader),
            Err(_) => None,
        };
        if let Some(ev) = observed {
            crate::observe::note(ctx, be_idx, lease.server, ev);
        }
        match outcome {
            // `retry-on <status>`: this answer is dropped and the request sent again
            // (replayable requests only, within `retries`), as on HTTP/1.
            Ok(_) if l7_retry && attempts < be.retries && be.retry_on.on_status(resp.status()) => {
                server.set_linger_zero();
                drop(server);
                drop(lease);
                attempts += 1;
                note_retry(conn, be_idx, txn);
                reuse = Reuse::Never;
            }
            Ok(rest) => {
                txn.response_head = Some(Instant::now());
                let c = RelayCtx {
                    persisted: named,
                    cookie_dates,
                    be_idx,
                    be,
                    vars: &vars,
                    method,
                    conn_mode,
                    server_timeout,
                    cache: std::cell::Cell::new(cache.take()),
                };
                let streams = (respond, body);
                relay_response(conn, fe, &c, lease, server, &mut resp, rest, streams, txn).await;
                return;
            }
            Err(Failure::Client) => {
                txn.term = *b"CD";
                server.set_linger_zero();
                respond.send_reset(Reason::CANCEL);
                return;
            }
            Err(f) => {
                server.set_linger_zero();
                drop(server);
                drop(lease);
                if replayable && info.reused && f == Failure::Empty {
                    // An idle connection the server had closed: try a new one, as HTTP/1 does.
                    reuse = Reuse::Never;
                    continue;
                }
                let wanted = match f {
                    Failure::Empty => be.retry_on.empty_response,
                    Failure::Timeout => be.retry_on.response_timeout,
                    Failure::Invalid => be.retry_on.junk_response,
                    Failure::Client => false,
                };
                if l7_retry && wanted && attempts < be.retries {
                    attempts += 1;
                    note_retry(conn, be_idx, txn);
                    reuse = Reuse::Never;
                    continue;
                }
                note_failed_response(conn, be_idx, txn);
                txn.term = match f {
                    Failure::Timeout => *b"sH",
                    // The proxy refused the response (haproxy 2.6 logs `PH`).
                    Failure::Invalid => *b"PH",
                    _ => *b"SH",
                };
                let status = if f == Failure::Timeout { 504 } else { 502 };
                reply_error(conn, fe, Some(be), status, &mut respond, txn).await;
                return;
            }
        }
    }
}

/// Sends the request body (if any) while reading the response head (a server may answer
/// early); returns the bytes received after the head.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    conn: &Conn,
    fe: &FrontendRt,
    server_timeout: Option<Duration>,
    server: &crate::conn::ServerStream,
    framing: BodyFraming,
    method: Method,
    body: BodySource<'_>,
    resp: &mut ResponseHead,
    txn: &mut Txn,
) -> Result<Vec<u8>, Failure> {
    let limits = conn.limits;
    if framing == BodyFraming::None {
        return read_response_head(server, server_timeout, limits, method, resp).await;
    }
    let body_done = crate::notify::Notify::default();
    let response = future::or(
        read_response_head(server, None, limits, method, resp),
        async {
            body_done.wait().await;
            match server_timeout {
                Some(d) => ringlb_uring::rt::sleep(d).await,
                None => future::pending::<()>().await,
            }
            Err(Failure::Timeout)
        },
    );
    let chunked = framing == BodyFraming::Chunked;
    let mut sent_bytes = 0u64;
    let send = async {
        let length = match framing {
            BodyFraming::ContentLength(n) => Some(n),
            _ => None,
        };
        let r = send_body(
            body,
            server,
            (chunked, length),
            fe.timeouts.client,
            server_timeout,
            &mut sent_bytes,
        )
        .await;
        body_done.raise();
        r
    };
    let (body_result, resp_result) = future::zip(send, response).await;
    txn.bytes_in += sent_bytes;
    match body_result {
        Ok(()) => resp_result,
        Err(BodyFail::Client) => Err(Failure::Client),
        // The server stopped reading: its response (if any) still tells the client why.
        Err(BodyFail::Server) => resp_result.map_err(|_| Failure::Empty),
    }
}

enum BodyFail {
    Client,
    Server,
}

/// A request body to forward: what was read early (`check_post`), then the stream's DATA.
struct BodySource<'a> {
    early: Option<&'a EarlyBody>,
    rest: &'a mut RecvStream,
}

/// Reads DATA until the advertised length, `bufsize` bytes or the end of the body, within
/// `timeout` (then it goes on with what came), as HAProxy waits before `check_post` hashing.
async fn early_body(
    body: &mut RecvStream,
    framing: BodyFraming,
    bufsize: usize,
    timeout: Option<Duration>,
) -> EarlyBody {
    let want = match framing {
        BodyFraming::ContentLength(n) => usize::try_from(n).unwrap_or(usize::MAX).min(bufsize),
        _ => bufsize,
    };
    let started = std::time::Instant::now();
    let mut e = EarlyBody {
        data: Vec::new(),
        ended: false,
        released: false,
    };
    while e.data.len() < want {
        let left = timeout.map(|d| d.saturating_sub(started.elapsed()));
        match within(left, body.data()).await {
            Ok(Some(Ok(d))) => e.data.extend_from_slice(&d),
            Ok(None) => {
                e.ended = true;
                break;
            }
            _ => break,
        }
    }
    e
}

/// Forwards the stream's DATA to the server, chunked when the client gave no length; window
/// is given back to the client only once the bytes reached the server (back-pressure).
async fn send_body(
    body: BodySource<'_>,
    server: &crate::conn::ServerStream,
    (chunked, length): (bool, Option<u64>),
    client_timeout: Option<Duration>,
    server_timeout: Option<Duration>,
    sent: &mut u64,
) -> Result<(), BodyFail> {
    let mut buf = Vec::new();
    // What was read before choosing the server goes first (its window is given back below,
    // once sent, like any DATA).
    let mut early = body.early.map(|e| Bytes::copy_from_slice(&e.data));
    let ended = body.early.is_some_and(|e| e.ended);
    // A body wait gave the early bytes' window back as it read them.
    let mut released = body.early.is_some_and(|e| e.released);
    let rest = body.rest;
    loop {
        let mut own_window = true;
        let data = if let Some(d) = early.take() {
            own_window = !std::mem::take(&mut released);
            d
        } else if ended {
            break;
        } else {
            match within(client_timeout, rest.data()).await {
                Err(_) | Ok(Some(Err(_))) => return Err(BodyFail::Client),
                Ok(None) => break,
                Ok(Some(Ok(d))) => d,
            }
        };
        let n = data.len();
        if n == 0 {
            continue;
        }
        if length.is_some_and(|len| *sent + n as u64 >= len) {
            // The bytes that complete a declared length wait for the end of the stream: a
            // client sending more than it declared is reset by the h2 library, and by then the
            // server must not hold a complete request the client's stream never made valid.
            // Clients end the stream on the last DATA frame, so this rarely waits.
            while !rest.is_end_stream() {
                match within(client_timeout, rest.data()).await {
                    Ok(None) => break,
                    Ok(Some(Ok(d))) if d.is_empty() => {}
                    _ => return Err(BodyFail::Client),
                }
            }
        }
        buf.clear();
        if chunked {
            use std::io::Write as _;
            let _ = write!(buf, "{n:x}\r\n"); // into a Vec: cannot fail, no allocation
            buf.extend_from_slice(&data);
            buf.extend_from_slice(b"\r\n");
        } else {
            buf.extend_from_slice(&data);
        }
        let (r, back) = within(server_timeout, server.send_all(SendBuf::from_vec(buf)))
            .await
            .unwrap_or_else(|_| {
                (
                    Err(io::ErrorKind::TimedOut.into()),
                    SendBuf::from_vec(Vec::new()),
                )
            });
        buf = back.into_vec().unwrap_or_default();
        r.map_err(|_| BodyFail::Server)?;
        *sent += n as u64;
        if own_window {
            let _ = rest.flow_control().release_capacity(n);
        }
    }
    if chunked {
        // The client's trailers (gRPC's, for one) go in the chunked trailer section, which
        // an h2 server gets as trailers again (`h2srv.rs`). Fields HTTP/1 cannot carry are
        // left out.
        let mut last = b"0\r\n".to_vec();
        if !ended {
            if let Ok(Ok(Some(trailers))) = within(client_timeout, rest.trailers()).await {
                for (name, value) in trailers.iter() {
                    let _ = field(&mut last, name.as_str(), value.as_bytes());
                    // haproxy counts each trailer field, and the end of trailers.
                    *sent += (name.as_str().len() + value.len()) as u64;
                }
                *sent += ringlb_http1::htx::END_OF_TRAILERS;
            }
        }
        last.extend_from_slice(b"\r\n");
        let (r, _) = within(server_timeout, server.send_all(SendBuf::from_vec(last)))
            .await
            .unwrap_or_else(|_| {
                (
                    Err(io::ErrorKind::TimedOut.into()),
                    SendBuf::from_vec(Vec::new()),
                )
            });
        r.map_err(|_| BodyFail::Server)?;
    }
    Ok(())
}

/// Reads the final response head into `resp` (interim 1xx responses are dropped: h2 clients
/// do not need them); returns the head's bytes followed by whatever came after it, with
/// `resp` parsed from its start.
async fn read_response_head(
    server: &crate::conn::ServerStream,
    timeout: Option<Duration>,
    limits: Limits,
    method: Method,
    resp: &mut ResponseHead,
) -> Result<Vec<u8>, Failure> {
    let mut acc: Vec<u8> = Vec::new();
    let mut got_any = false;
    loop {
        let buf = match within(timeout, server.recv()).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) | Ok(Err(_)) => {
                return Err(if got_any {
                    Failure::Invalid
                } else {
                    Failure::Empty
                })
            }
        };
        got_any = true;
        acc.extend_from_slice(buf.bytes());
        loop {
            match parse_response(&acc, &limits, method, resp) {
                Ok(Parsed::Complete { head_len }) => {
                    if !resp.is_interim() {
                        return Ok(acc);
                    }
                    acc.drain(..head_len.min(acc.len()));
                    if acc.is_empty() {
                        break;
                    }
                }
                Ok(Parsed::Partial) => {
                    if acc.len() > limits.max_head_bytes {
                        return Err(Failure::Invalid);
                    }
                    break;
                }
                Err(_) => return Err(Failure::Invalid),
            }
        }
    }
}

struct RelayCtx<'a> {
    be_idx: usize,
    /// The server the client's persistence cookie named (no `set-cookie` for it).
    persisted: Option<usize>,
    /// The dates that cookie carried (`maxidle` / `maxlife`).
    cookie_dates: crate::persist::CookieDates,
    be: &'a BackendRt,
    vars: &'a ringlb_rules::Vars,
    method: Method,
    conn_mode: HttpConnMode,
    /// `timeout server`, or this stream's `set-timeout server`.
    server_timeout: Option<Duration>,
    /// The request's keys when it ran `cache-use` and missed (for `cache-store`).
    cache: std::cell::Cell<Option<crate::cache::CacheKey>>,
}

/// Sends the response head (after `http-response` rules) and body to the client, then gives
/// the server connection back to the idle pool when it is clean.
#[allow(clippy::too_many_arguments)]
async fn relay_response(
    conn: &Conn,
    fe: &FrontendRt,
    c: &RelayCtx<'_>,
    lease: crate::server::ServerLease,
    server: crate::state::ServerConn,
    resp: &mut ResponseHead,
    mut bytes: Vec<u8>,
    (mut respond, body): (SendResponse<Bytes>, &mut RecvStream),
    txn: &mut Txn,
) {
    let framing = resp.framing();
    let status = resp.status();
    let server_keep_alive = resp.server_keep_alive();
    let ws_ok = status == 101
        && txn
            .ws_accept
            .as_deref()
            .is_some_and(|a| crate::h2ws::accepted(resp, &bytes, a));
    // A server that ignored the upgrade and answered 2xx must not look like an open tunnel
    // to the client (RFC 8441 §5: any 2xx means the WebSocket is established).
    let ignored_upgrade = txn.ws_accept.is_some() && (200..300).contains(&status);
    if (status == 101 && !ws_ok)
        || ignored_upgrade
        || (c.method == Method::Connect && (200..300).contains(&status))
    {
        // The only tunnel over h2 is an RFC 8441 WebSocket whose upgrade the server accepted
        // with the right key.
        server.set_linger_zero();
        note_failed_response(conn, c.be_idx, txn);
        reply_error(conn, fe, Some(c.be), 502, &mut respond, txn).await;
        return;
    }
    let head_len = resp.head_len();
    // haproxy counts a response as it holds it (`ringlb_http1::htx`), not as it came.
    let head_htx = ringlb_http1::htx::response_head_size(resp, &bytes);
    if txn.log_req.is_some() && !fe.capture_res.is_empty() {
        crate::http::capture(&fe.capture_res, resp.headers(), &bytes, &mut txn.cap_res);
    }
    if txn.log_req.is_some() {
        crate::http::capture_cookie(
            fe.capture_cookie.as_ref(),
            resp.headers(),
            &bytes,
            true,
            &mut txn.cookie_res,
        );
    }
    // Copied only where rules or the log line may read them (`ssl_bc_*`, `ssl_s_*`).
    let log_tls = matches!(&fe.log_line,
        crate::topology::LogLine::Format(lf) if lf.uses_server_tls());
    let server_tls = if c.be.rules.is_some() || fe.rules.is_some() || log_tls {
        server.stream.tls_facts().map(Box::new)
    } else {
        None
    };
    let verdict = msg_rules::response_rules(
        &conn.ctx,
        fe,
        c.be,
        lease.server,
        c.vars,
        resp,
        &bytes,
        ConnFacts {
            server_tls: server_tls.as_deref(),
            ..conn.stream_facts(&txn.fx)
        },
        None,
        Some(Txn::captures(&mut txn.cap_req, &mut txn.cap_res, fe)),
        c.method,
    );
    if log_tls {
        txn.server_tls = server_tls;
    }
    conn.keep_addresses(&txn.fx);
    // `http-response set-mark|set-tos`: on the client socket at once.
    conn.apply_socket_effects(&txn.fx);
    // `cache-store`: whether this response goes to the cache (as the rules left it).
    let store_to = c.cache.take().zip(txn.fx.cache_store.get());
    let mut cache_pending = None;
    let response = match verdict {
        ResponseVerdict::Unchanged => {
            if let Some((mut key, cache)) = store_to {
                key.cache = cache;
                let now_s = crate::cache::now_s();
                cache_pending = crate::cache::store_decision(&conn.ctx, key, resp, &bytes, now_s);
            }
            h2_response(resp, &bytes)
        }
        ResponseVerdict::Rewritten(raw) => {
            let mut resp2 = ResponseHead::default();
            match parse_response(&raw, &conn.limits, c.method, &mut resp2) {
                Ok(Parsed::Complete { .. }) if resp2.framing() == framing => {
                    if let Some((mut key, cache)) = store_to {
                        key.cache = cache;
                        let now_s = crate::cache::now_s();
                        cache_pending =
                            crate::cache::store_decision(&conn.ctx, key, &resp2, &raw, now_s);
                    }
                    h2_response(&resp2, &raw)
                }
                _ => {
                    server.set_linger_zero();
                    note_failed_rewrite(conn, Some(c.be_idx));
                    reply_error(conn, fe, Some(c.be), 500, &mut respond, txn).await;
                    return;
                }
            }
        }
        ResponseVerdict::Reply(reply) => {
            server.set_linger_zero();
            if reply.denied {
                let mut ct = conn.ctx.state.counters.borrow_mut();
                if let Some(f) = ct.frontends.get_mut(conn.fe_idx) {
                    f.denied_resp += 1;
                }
                if let Some(b) = ct.backends.get_mut(c.be_idx) {
                    b.denied_resp += 1;
                }
            }
            send_rules_reply(conn, fe, Some(c.be), reply, &mut respond, txn).await;
            return;
        }
    };
    let Some(mut response) = response else {
        server.set_linger_zero();
        note_failed_response(conn, c.be_idx, txn);
        reply_error(conn, fe, Some(c.be), 502, &mut respond, txn).await;
        return;
    };
    crate::persist::server_cookies_h2(c.be, lease.server, c.persisted, response.headers_mut());
    if let Some(v) = crate::persist::set_cookie(
        c.be,
        lease.server,
        c.persisted,
        c.method,
        c.cookie_dates,
        crate::persist::unix_now(),
    ) {
        if let Ok(v) = http::HeaderValue::from_bytes(&v) {
            response.headers_mut().append(http::header::SET_COOKIE, v);
        }
    }
    bytes.drain(..head_len.min(bytes.len()));
    if ws_ok {
        txn.status = status;
        txn.bytes_out += head_htx;
        // Boxed: a rare path whose state would otherwise sit in every stream's future.
        return Box::pin(ws_tunnel(
            fe,
            c,
            (lease, server),
            response,
            bytes,
            (respond, body),
            txn,
        ))
        .await;
    }
    let no_body = matches!(framing, BodyFraming::None | BodyFraming::ContentLength(0));
    txn.status = status;
    txn.bytes_out += head_htx;
    let Ok(mut send) = respond.send_response(response, no_body) else {
        server.set_linger_zero();
        return;
    };
    if no_body {
        if let Some(p) = cache_pending.take() {
            crate::cache::store(&conn.ctx, p, &[], crate::cache::now_s());
        }
        if bytes.is_empty() {
            maybe_release(conn, c, server_keep_alive, &lease, server);
        }
        return;
    }
    // A response for the cache: its body is copied as it goes to the client.
    let mut copy = cache_pending
        .as_ref()
        .map(|p| Vec::with_capacity(usize::try_from(p.length).unwrap_or(0).min(1 << 20)));
    let relayed = relay_body(
        &server,
        &mut send,
        framing,
        bytes,
        conn.limits,
        (c.server_timeout, fe.timeouts.client),
        (&mut txn.bytes_out, copy.as_mut()),
    )
    .await;
    if let (Ok(true), Some(p), Some(body)) = (relayed, cache_pending, copy) {
        crate::cache::store(&conn.ctx, p, &body, crate::cache::now_s());
    }
    match relayed {
        Ok(true) => maybe_release(conn, c, server_keep_alive, &lease, server),
        Ok(false) => server.set_linger_zero(),
        Err(()) => {
            server.set_linger_zero();
            send.send_reset(Reason::INTERNAL_ERROR);
        }
    }
}

/// Answers an accepted RFC 8441 upgrade with `200` (the server's `Sec-WebSocket-Accept`
/// dropped: it belongs to the HTTP/1 handshake) and tunnels until either side ends.
#[allow(clippy::too_many_arguments)]
async fn ws_tunnel(
    fe: &FrontendRt,
    c: &RelayCtx<'_>,
    (lease, server): (crate::server::ServerLease, crate::state::ServerConn),
    mut response: Response<()>,
    first: Vec<u8>,
    (mut respond, body): (SendResponse<Bytes>, &mut RecvStream),
    txn: &mut Txn,
) {
    *response.status_mut() = http::StatusCode::OK;
    response.headers_mut().remove("sec-websocket-accept");
    let Ok(mut send) = respond.send_response(response, false) else {
        server.set_linger_zero();
        return;
    };
    let idle = txn
        .fx
        .tunnel_timeout
        .get()
        .or(c.be.timeouts.tunnel)
        .or(fe.timeouts.tunnel)
        .or(fe.timeouts.client);
    let t = crate::tunnel::TunnelTimeouts {
        client_fin: fe.timeouts.client_fin,
        server_fin: c.be.timeouts.server_fin,
        ..crate::tunnel::TunnelTimeouts::both(idle)
    };
    // `on-marked-down shutdown-sessions`: a kill drops the tunnel, closing both sides.
    let (up, down, end) = lease
        .unless_killed(crate::h2ws::tunnel(&server, first, body, &mut send, t))
        .await
        .unwrap_or((0, 0, crate::tunnel::TunnelEnd::Error));
    txn.bytes_in += up;
    txn.bytes_out += down;
    match end {
        crate::tunnel::TunnelEnd::Closed => {}
        crate::tunnel::TunnelEnd::ClientTimeout => txn.term = *b"cD",
        crate::tunnel::TunnelEnd::ServerTimeout => txn.term = *b"sD",
        crate::tunnel::TunnelEnd::Error => {
            send.send_reset(Reason::CANCEL);
            server.set_linger_zero();
        }
    }
}

/// Gives a server connection whose response ended cleanly back to the idle pool, when the
/// server keeps it alive and the modes allow reuse (as the HTTP/1 session does).
fn maybe_release(
    conn: &Conn,
    c: &RelayCtx<'_>,
    server_keep_alive: bool,
    lease: &crate::server::ServerLease,
    server: crate::state::ServerConn,
) {
    let keep = server_keep_alive
        && c.conn_mode == HttpConnMode::KeepAlive
        && c.be.http_reuse != HttpReuse::Never;
    if keep && conn.ctx.state.run.get() == RunState::Running {
        release_idle(&conn.ctx.state, lease, server);
    } else {
        server.close_hard();
    }
}

/// Forwards the response body as DATA frames; `Ok(true)` when it ended exactly where its
/// framing said (the server connection can be reused), `Ok(false)` for a body delimited by
/// the server's close.
async fn relay_body(
    server: &crate::conn::ServerStream,
    send: &mut SendStream<Bytes>,
    framing: BodyFraming,
    first: Vec<u8>,
    limits: Limits,
    (server_timeout, client_timeout): (Option<Duration>, Option<Duration>),
    (bytes_out, mut copy): (&mut u64, Option<&mut Vec<u8>>),
) -> Result<bool, ()> {
    let mut next = (!first.is_empty()).then_some(first);
    let recv = |next: &mut Option<Vec<u8>>| {
        let pending = next.take();
        async move {
            if let Some(p) = pending {
                return Ok(Some(p));
            }
            match within(server_timeout, server.recv()).await {
                Ok(Ok(Some(b))) => Ok(Some(b.bytes().to_vec())),
                Ok(Ok(None)) => Ok(None),
                _ => Err(()),
            }
        }
    };
    match framing {
        BodyFraming::None => {
            send_data(send, Bytes::new(), true, client_timeout).await?;
            Ok(next.is_none())
        }
        BodyFraming::ContentLength(len) => {
            let mut counter = BodyCounter::new(len);
            while !counter.is_done() {
                let Some(mut buf) = recv(&mut next).await? else {
                    return Err(());
                };
                let take = counter.feed(buf.len());
                let extra = buf.len() > take;
                buf.truncate(take);
                *bytes_out += take as u64;
                if let Some(c) = copy.as_deref_mut() {
                    c.extend_from_slice(&buf);
                }
                send_data(send, Bytes::from(buf), counter.is_done(), client_timeout).await?;
                if extra {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(Side::Server, &limits);
            let mut trailer = Vec::new();
            loop {
                let Some(buf) = recv(&mut next).await? else {
                    return Err(());
                };
                let mut payload = Vec::with_capacity(buf.len());
                let feed = decoder
                    .feed_parts(&buf, |d| payload.extend_from_slice(d), |b| trailer.push(b))
                    .map_err(|_| ())?;
                *bytes_out += payload.len() as u64;
                if feed.done {
                    // Trailer fields and the end of trailers, as haproxy counts them.
                    *bytes_out += decoder.htx_size().saturating_sub(decoder.payload_bytes());
                }
                // The server's trailers (gRPC's `grpc-status`) end the stream as HEADERS.
                let trailers = if feed.done {
                    crate::h2srv::trailer_map(&trailer)
                } else {
                    HeaderMap::new()
                };
                if !payload.is_empty() || (feed.done && trailers.is_empty()) {
                    let end = feed.done && trailers.is_empty();
                    send_data(send, Bytes::from(payload), end, client_timeout).await?;
                }
                if !trailers.is_empty() {
                    send.send_trailers(trailers).map_err(|_| ())?;
                }
                if feed.done {
                    return Ok(feed.consumed == buf.len());
                }
            }
        }
        BodyFraming::UntilClose => loop {
            match recv(&mut next).await? {
                Some(buf) => {
                    *bytes_out += buf.len() as u64;
                    send_data(send, Bytes::from(buf), false, client_timeout).await?;
                }
                None => {
                    send_data(send, Bytes::new(), true, client_timeout).await?;
                    return Ok(false);
                }
            }
        },
    }
}

/// Sends `data` within the stream's flow-control window, waiting (at most `timeout` per wait,
/// against zero-window stalls) for the client to open it.
pub(crate) async fn send_data(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    timeout: Option<Duration>,
) -> Result<(), ()> {
    if data.is_empty() {
        // Only END_STREAM (an empty DATA frame needs no window).
        return if end {
            send.send_data(data, true).map_err(|_| ())
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let cap = within(timeout, poll_fn(|cx| send.poll_capacity(cx)))
            .await
            .map_err(|_| ())?;
        let n = match cap {
            Some(Ok(n)) => n,
            _ => return Err(()),
        };
        if n == 0 {
            continue;
        }
        let chunk = data.split_to(n.min(data.len()));
        send.send_data(chunk, end && data.is_empty())
            .map_err(|_| ())?;
    }
    Ok(())
}

/// Fields that are specific to one HTTP/1 connection: forbidden in HTTP/2 (RFC 9113 §8.2.2),
/// and never forwarded from an HTTP/1 response.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The request head's size as haproxy counts it (`ringlb_http1::htx`) from the HTTP/1 head
/// [`h1_head`] wrote for it: haproxy keeps an HTTP/2 request's URI absolute (scheme and
/// authority before the path), keeps `expect` and `te`, and has no `transfer-encoding`.
fn head_htx_size(uri: &Uri, headers: &HeaderMap, req: &RequestHead, head: &[u8]) -> u64 {
    let mut n = ringlb_http1::htx::request_head_size(req, head);
    if let (Some(scheme), Some(a)) = (uri.scheme_str(), uri.authority()) {
        n += (scheme.len() + "://".len() + a.as_str().len()) as u64;
    }
    if req.framing() == BodyFraming::Chunked {
        n = n.saturating_sub(("transfer-encoding".len() + "chunked".len()) as u64);
    }
    for (name, value) in headers {
        if matches!(name.as_str(), "expect" | "te") {
            n += (name.as_str().len() + value.len()) as u64;
        }
    }
    n
}

/// Writes an HTTP/2 request as an HTTP/1.1 head, or says why the stream is malformed.
pub fn h1_head(
    method: &HMethod,
    uri: &Uri,
    headers: &HeaderMap,
    has_body: bool,
) -> Result<Vec<u8>, Reason> {
    if *method == HMethod::CONNECT {
        return Err(Reason::HTTP_1_1_REQUIRED);
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let path_ok = path.starts_with('/') || (path == "*" && *method == HMethod::OPTIONS);
    // No `uri.scheme()` check: the h2 library refuses a request without `:scheme`, and drops
    // the scheme of one without `:authority` (valid with a `host` field, RFC 9113 §8.3.1).
    if !path_ok {
        return Err(Reason::PROTOCOL_ERROR);
    }
    let authority = uri.authority().map(|a| a.as_str());
    if authority.is_some_and(|a| a.contains('@') || a.is_empty()) {
        return Err(Reason::PROTOCOL_ERROR);
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(a) = authority {
        field(&mut out, "host", a.as_bytes())?;
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    let mut has_length = false;
    for (name, value) in headers {
        let n = name.as_str();
        let v = value.as_bytes();
        if CONNECTION_SPECIFIC.contains(&n) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        match n {
            "te" => {
                if !v.eq_ignore_ascii_case(b"trailers") {
                    return Err(Reason::PROTOCOL_ERROR);
                }
            }
            "host" => match authority {
                // `:authority` wins; a `host` that names another entity is malformed.
                Some(a) if !a.as_bytes().eq_ignore_ascii_case(v) => {
                    return Err(Reason::PROTOCOL_ERROR)
                }
                Some(_) => {}
                None => field(&mut out, n, v)?,
            },
            "expect" if v.eq_ignore_ascii_case(b"100-continue") => {}
            // Split cookies are joined again for HTTP/1 (RFC 9113 §8.2.3).
            "cookie" => cookies.push(v),
            _ => {
                if n == "content-length" {
                    // One length, digits only (the h2 library checks DATA against it, but
                    // what goes to HTTP/1 must not depend on that). No DATA will follow
                    // END_STREAM: only a zero length is true then.
                    let digits = !v.is_empty() && v.iter().all(u8::is_ascii_digit);
                    if has_length || !digits || (!has_body && v.iter().any(|&b| b != b'0')) {
                        return Err(Reason::PROTOCOL_ERROR);
                    }
                    has_length = true;
                }
                field(&mut out, n, v)?;
            }
        }
    }
    if !cookies.is_empty() {
        let joined = cookies.join(&b"; "[..]);
        field(&mut out, "cookie", &joined)?;
    }
    if has_body && !has_length {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get_all("expect")
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Appends one field line, refusing values HTTP/1 cannot carry or RFC 9113 §8.2.1 forbids.
fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) -> Result<(), Reason> {
    let bad = |b: &u8| matches!(b, b'\r' | b'\n' | 0);
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if value.iter().any(bad) || edge(value.first()) || edge(value.last()) {
        return Err(Reason::PROTOCOL_ERROR);
    }
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase() || b == b':') {
        return Err(Reason::PROTOCOL_ERROR);
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The HTTP/2 form of an HTTP/1 response head: lower-case names, hop-by-hop fields (and those
/// the `connection` field names) removed. `None` when a field cannot be represented.
pub fn h2_response(resp: &ResponseHead, bytes: &[u8]) -> Option<Response<()>> {
    let mut named: Vec<Vec<u8>> = Vec::new();
    for h in resp.headers() {
        if h.name.get(bytes).eq_ignore_ascii_case(b"connection") {
            for t in h.value.get(bytes).split(|&b| b == b',') {
                let t = t.trim_ascii();
                if !t.is_empty() {
                    named.push(t.to_ascii_lowercase());
                }
            }
        }
    }
    let mut builder = Response::builder().status(resp.status());
    for h in resp.headers() {
        let name = h.name.get(bytes).to_ascii_lowercase();
        let hop = CONNECTION_SPECIFIC
            .iter()
            .any(|c| c.as_bytes() == name.as_slice())
            || name == b"te"
            || name == b"trailer"
            || named.contains(&name);
        if hop {
            continue;
        }
        let n = HeaderName::from_bytes(&name).ok()?;
        let v = HeaderValue::from_bytes(h.value.get(bytes)).ok()?;
        builder = builder.header(n, v);
    }
    builder.body(()).ok()
}

/// Sends an HTTP/1 reply the proxy made (error page, rules reply) as an HTTP/2 response.
async fn send_h1_reply(
    conn: &Conn,
    fe: &FrontendRt,
    bytes: &[u8],
    respond: &mut SendResponse<Bytes>,
    txn: &mut Txn,
) {
    // `http-after-response` on the proxy's own reply (the backend's rules first, once chosen).
    let be = txn
        .backend
        .and_then(|b| conn.ctx.state.topo.backends.get(b));
    let after = msg_rules::has_after_rules(fe, be)
        .then(|| {
            msg_rules::after_reply(
                &conn.ctx,
                fe,
                be,
                &txn.after_vars,
                bytes,
                conn.stream_facts(&txn.fx),
                None,
                Some(Txn::captures(&mut txn.cap_req, &mut txn.cap_res, fe)),
            )
        })
        .flatten();
    let bytes = after.as_deref().unwrap_or(bytes);
    let mut head = ResponseHead::default();
    let Ok(Parsed::Complete { head_len }) =
        parse_response(bytes, &conn.limits, Method::Get, &mut head)
    else {
        respond.send_reset(Reason::INTERNAL_ERROR);
        return;
    };
    let Some(response) = h2_response(&head, bytes) else {
        respond.send_reset(Reason::INTERNAL_ERROR);
        return;
    };
    let body = bytes.get(head_len..).unwrap_or_default();
    let body = match head.framing() {
        BodyFraming::ContentLength(n) => body.get(..n as usize).unwrap_or(body),
        BodyFraming::None => &[],
        _ => body,
    };
    txn.status = head.status();
    txn.bytes_out += ringlb_http1::htx::reply_size(bytes);
    let Ok(mut send) = respond.send_response(response, body.is_empty()) else {
        return;
    };
    if !body.is_empty() {
        let _ = send_data(
            &mut send,
            Bytes::copy_from_slice(body),
            true,
            fe.timeouts.client,
        )
        .await;
    }
}

async fn reply_error(
    conn: &Conn,
    fe: &FrontendRt,
    be: Option<&BackendRt>,
    status: u16,
    respond: &mut SendResponse<Bytes>,
    txn: &mut Txn,
) {
    let builtin = if matches!(status, 400 | 408) {
        ringlb_http1::default_reply(status)
    } else {
        ringlb_http1::default_reply_lowercase(status)
    };
    let Some(bytes) = be
        .and_then(|b| b.errors.get(status))
        .or_else(|| fe.errors.get(status))
        .or(builtin)
    else {
        respond.send_reset(Reason::INTERNAL_ERROR);
        return;
    };
    send_h1_reply(conn, fe, bytes, respond, txn).await;
}

/// Answers a final `http-request`/`http-response` verdict on this stream.
async fn send_rules_reply(
    conn: &Conn,
    fe: &FrontendRt,
    _be: Option<&BackendRt>,
    reply: crate::rules::Reply,
    respond: &mut SendResponse<Bytes>,
    txn: &mut Txn,
) {
    txn.term = match (reply.denied, reply.tarpit, reply.response) {
        (_, true, _) => *b"PT",
        (true, _, true) => *b"PH",
        (true, _, false) => *b"PR",
        _ => *b"LR",
    };
    // A denied response was counted (`dresp`) by the caller.
    if reply.denied && !reply.response {
        let mut c = conn.ctx.state.counters.borrow_mut();
        if let Some(f) = c.frontends.get_mut(conn.fe_idx) {
            f.denied_req += 1;
        }
        if let Some(l) = c.listener(conn.fe_idx, conn.bind) {
            l.denied_req += 1;
        }
    }
    if reply.silent {
        respond.send_reset(Reason::CANCEL);
        return;
    }
    if reply.tarpit {
        if let Some(d) = fe.timeouts.tarpit.or(fe.timeouts.connect) {
            let stopping = conn.ctx.stopping.clone();
            future::or(
                ringlb_uring::rt::sleep(d),
                async move { stopping.wait().await },
            )
            .await;
        }
    }
    send_h1_reply(conn, fe, &reply.bytes, respond, txn).await;
}

fn effective_conn_mode(fe: HttpConnMode, be: HttpConnMode) -> HttpConnMode {
    use HttpConnMode::*;
    match (fe, be) {
        (Close, _) | (_, Close) => Close,
        (ServerClose, _) | (_, ServerClose) => ServerClose,
        _ => KeepAlive,
    }
}

fn count_failed_request(conn: &Conn) {
    let mut c = conn.ctx.state.counters.borrow_mut();
    if let Some(f) = c.frontends.get_mut(conn.fe_idx) {
        f.failed_req += 1;
    }
    if let Some(l) = c.listener(conn.fe_idx, conn.bind) {
        l.failed_req += 1;
    }
}

fn note_failed_rewrite(conn: &Conn, be: Option<usize>) {
    let mut c = conn.ctx.state.counters.borrow_mut();
    if let Some(f) = c.frontends.get_mut(conn.fe_idx) {
        f.failed_rewrites += 1;
    }
    if let Some(b) = be.and_then(|b| c.backends.get_mut(b)) {
        b.failed_rewrites += 1;
    }
}

fn note_connect(conn: &Conn, be: usize, info: &ConnectInfo, ok: bool, txn: &mut Txn) {
    let now_ms = conn.ctx.state.board.now_ms();
    let mut c = conn.ctx.state.counters.borrow_mut();
    c.connect_outcome(be, info);
    txn.queue = Some(info.queue);
    txn.retries = info.retries;
    txn.tried = info.server.or(txn.tried);
    if ok {
        txn.connect = Some(info.connect);
        txn.server_addr = info
            .server
            .and_then(|s| conn.ctx.state.server(be, s))
            .map(|x| x.addr.get());
    }
    if let (true, Some(s)) = (ok, info.server) {
        if txn.stream_started {
            if let Some(prev) = txn.server {
                c.stream_end(be, prev);
            }
        }
        c.stream_start(be, s, now_ms, info.balanced);
        txn.server = Some(s);
        txn.stream_started = true;
    }
}

/// A `retry-on` retry (`wretr`), on the backend and the server that failed.
fn note_retry(conn: &Conn, be: usize, txn: &Txn) {
    let mut c = conn.ctx.state.counters.borrow_mut();
    if let Some(b) = c.backends.get_mut(be) {
        b.retries += 1;
    }
    if let Some(s) = txn
        .server
        .and_then(|s| c.servers.get_mut(be).and_then(|v| v.get_mut(s)))
    {
        s.retries += 1;
    }
}

fn note_failed_response(conn: &Conn, be: usize, txn: &Txn) {
    let mut c = conn.ctx.state.counters.borrow_mut();
    if let Some(b) = c.backends.get_mut(be) {
        b.failed_resp += 1;
    }
    if let Some(s) = txn
        .server
        .and_then(|s| c.servers.get_mut(be).and_then(|v| v.get_mut(s)))
    {
        s.failed_resp += 1;
    }
}

/// Records the stream in the counters.
fn finish(conn: &Conn, t: Txn) {
    let mut c = conn.ctx.state.counters.borrow_mut();
    if t.status != 0 {
        c.response(conn.fe_idx, t.backend, t.server, t.status);
    }
    c.bytes(conn.fe_idx, t.backend, t.server, t.bytes_in, t.bytes_out);
    conn.ctx.live.fold_h1_bytes(&mut c, None, t.backend);
    if let Some(l) = c.listener(conn.fe_idx, conn.bind) {
        l.bytes_in += t.bytes_in;
        l.bytes_out += t.bytes_out;
    }
    if let (Some(b), Some(s), true) = (t.backend, t.server, t.stream_started) {
        c.stream_end(b, s);
    }
    // Answered streams feed the time averages and histograms, as HTTP/1 transactions do.
    if let (Some(b), Some(head)) = (t.backend, t.response_head) {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let times = ringlb_stats::RequestTimes {
            queue_us: t.queue.map(us),
            connect_us: t.connect.map(us),
            response_us: t
                .request_sent
                .map(|a| us(head.saturating_duration_since(a))),
            total_us: t.start.map(|s| us(s.elapsed())),
        };
        c.record_times(b, t.server, &times);
    }
    drop(c);
    if let (Some(req), Some(fe)) = (&t.log_req, conn.fe()) {
        let now = Instant::now();
        let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_millis() as i64,
            _ => -1,
        };
        let dur = |d: Option<Duration>| d.map_or(-1, |d| d.as_millis() as i64);
        let tt = ms(t.start, Some(now));
        crate::log::log_stream(
            &conn.ctx,
            fe,
            crate::log::StreamLog {
                fe_idx: conn.fe_idx,
                src: conn.facts().src,
                dst: conn.facts().dst,
                tls: conn.tls.as_ref(),
                server_tls: t.server_tls.as_deref(),
                method: req.0.as_bytes(),
                uri: req.1.as_bytes(),
                version: b"HTTP/2.0",
                backend: t.backend,
                server: t.server.or(t.tried),
                server_addr: t.server_addr,
                status: t.status,
                bytes_in: t.bytes_in,
                bytes_out: t.bytes_out,
                term: t.term,
                retries: t.retries,
                tw: dur(t.queue),
                tc: dur(t.connect),
                tr: ms(t.request_sent, t.response_head),
                td: ms(t.response_head, Some(now)),
                tt,
                request_counter: conn.streams.get(),
                captured_req: t.cap_req,
                captured_res: t.cap_res,
                cookie_req: t.cookie_req,
                cookie_res: t.cookie_res,
                log_level: t.fx.log_level.get(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(
        method: &str,
        uri: &str,
        fields: &[(&str, &str)],
        body: bool,
    ) -> Result<String, Reason> {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        let m = HMethod::from_bytes(method.as_bytes()).unwrap();
        let u: Uri = uri.parse().unwrap();
        h1_head(&m, &u, &h, body).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn translates_pseudo_headers_and_joins_cookies() {
        let h = head(
            "GET",
            "https://example.com/a?b=1",
            &[("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")],
            false,
        )
        .unwrap();
        assert_eq!(
            h,
            "GET /a?b=1 HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\ncookie: a=1; b=2\r\n\r\n"
        );
    }

    #[test]
    fn body_without_length_is_chunked() {
        let h = head("POST", "http://h/p", &[], true).unwrap();
        assert!(h.ends_with("transfer-encoding: chunked\r\n\r\n"), "{h}");
        let h = head("POST", "http://h/p", &[("content-length", "3")], true).unwrap();
        assert!(!h.contains("chunked"), "{h}");
        // END_STREAM on HEADERS: a non-zero length can never be met.
        assert_eq!(
            head("POST", "http://h/p", &[("content-length", "3")], false),
            Err(Reason::PROTOCOL_ERROR)
        );
        assert!(head("POST", "http://h/p", &[("content-length", "0")], false).is_ok());
    }

    #[test]
    fn connection_specific_fields_are_malformed() {
        for (n, v) in [
            ("connection", "close"),
            ("keep-alive", "1"),
            ("proxy-connection", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
        ] {
            assert_eq!(
                head("GET", "http://h/", &[(n, v)], false),
                Err(Reason::PROTOCOL_ERROR),
                "{n}"
            );
        }
        assert!(head("GET", "http://h/", &[("te", "trailers")], false).is_ok());
    }

    #[test]
    fn content_length_is_one_number() {
        let post = |fields: &[(&str, &str)]| head("POST", "http://h/", fields, true);
        assert!(post(&[("content-length", "5")]).is_ok());
        for bad in ["5***", "", "+5", "-1", "5, 5", " 5"] {
            assert_eq!(
                post(&[("content-length", bad)]),
                Err(Reason::PROTOCOL_ERROR),
                "{bad:?}"
            );
        }
        assert_eq!(
            post(&[("content-length", "5"), ("content-length", "5")]),
            Err(Reason::PROTOCOL_ERROR)
        );
        assert!(head("GET", "http://h/", &[("content-length", "00")], false).is_ok());
    }

    #[test]
    fn bad_values_and_hosts_are_malformed() {
        assert_eq!(
            head("GET", "http://h/", &[("x", " lead")], false),
            Err(Reason::PROTOCOL_ERROR)
        );
        assert_eq!(
            head("GET", "http://h/", &[("host", "other")], false),
            Err(Reason::PROTOCOL_ERROR)
        );
        assert!(head("GET", "http://h/", &[("host", "H")], false).is_ok());
        // No `:authority` (the h2 library then keeps no scheme either): `host` carries it.
        let h = head("GET", "/p", &[("host", "h")], false).unwrap();
        assert_eq!(h, "GET /p HTTP/1.1\r\nhost: h\r\n\r\n");
        assert_eq!(
            head("CONNECT", "http://h:443", &[], false),
            Err(Reason::HTTP_1_1_REQUIRED)
        );
        assert_eq!(
            head("GET", "http://u@h/", &[], false),
            Err(Reason::PROTOCOL_ERROR),
            "userinfo in :authority"
        );
    }

    fn bind_of(text: &str) -> H2Bind {
        let l = ringlb_config::parse_str("t.cfg", text).unwrap();
        let b = &l.config.frontends[0].binds[0];
        H2Bind::of(b, &l.config.global)
    }

    #[test]
    fn bind_settings_follow_proto_and_tune() {
        let fe = "defaults\n mode http\n timeout client 1s\n timeout server 1s\n timeout connect 1s\nfrontend fe\n bind 127.0.0.1:1";
        let plain = bind_of(&format!("{fe}\n"));
        assert_eq!(
            plain,
            H2Bind {
                prior_knowledge: false,
                max_concurrent_streams: 100,
                initial_window_size: 65_535,
                header_table_size: 4096,
                max_frame_size: 16_384,
                extended_connect: true,
            }
        );
        let h2 = bind_of(&format!(
            "global\n tune.h2.max-concurrent-streams 0\n tune.h2.max-frame-size 65536\n{fe} proto h2\n"
        ));
        assert!(h2.prior_knowledge);
        assert_eq!((h2.max_concurrent_streams, h2.max_frame_size), (100, 65536));
        assert!(!bind_of(&format!("{fe} proto h1\n")).prior_knowledge);
        let bogus = bind_of(&format!(
            "global\n h2-workaround-bogus-websocket-clients\n{fe} proto h2\n"
        ));
        assert!(!bogus.extended_connect);
    }

    #[test]
    fn response_drops_hop_by_hop_fields() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\nok";
        let limits = Limits {
            max_headers: 101,
            max_head_bytes: 8192,
        };
        let mut r = ResponseHead::with_limits(&limits);
        assert!(matches!(
            parse_response(raw, &limits, Method::Get, &mut r),
            Ok(Parsed::Complete { .. })
        ));
        let resp = h2_response(&r, raw).unwrap();
        assert_eq!(resp.status(), 200);
        let names: Vec<&str> = resp.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-length", "x-kept"]);
    }
}
