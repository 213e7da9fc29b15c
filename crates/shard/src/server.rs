//! Backend side: choosing a server, its connection slot (server `maxconn` and queue), and getting
//! a connection to it (an idle pooled one or a new one, with `timeout connect`).

use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use ringlb_balance::PickInput;
use ringlb_uring::{SendBuf, TcpStream};

use crate::queue::Waits;
use crate::state::{Picked, ServerConn, ShardState};
use crate::time::within;
use crate::topology::{BackendRt, H2Mode};
use crate::Ctx;

/// Why no server connection could be had. Each maps to the status HAProxy answers (503) and to a
/// termination state for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoConnection {
    /// No usable server in the backend (all down, drained or in maintenance).
    NoServer,
    /// The server's queue is full (`maxqueue`).
    QueueFull,
    /// `timeout queue` expired while waiting for a slot.
    QueueTimeout,
    /// Connection refused/reset/unreachable after all retries.
    ConnectFailed,
    /// `timeout connect` expired after all retries.
    ConnectTimeout,
    /// The server chosen has `redir <prefix>` and the request may be redirected (GET, HEAD):
    /// the caller answers a 302 instead of connecting.
    Redirect(usize),
}

/// Which idle connections a request may use (`http-reuse`, decided per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// A new connection (`never`; the first request of a session with `safe`; a retry).
    Never,
    /// Only connections already reused once, proving the server keeps them alive (the first
    /// request of a session with `aggressive`).
    Proven,
    /// Any idle connection; one that carried a single request first (a later request of a
    /// session proves it, as haproxy 2.6 picks).
    Any,
    /// Any idle connection, one already reused first (the first request of a session with
    /// `always`, as haproxy 2.6 picks).
    AnySafeFirst,
}

/// A slot on a server (counts against its per-shard `maxconn` share). Released on drop, handing
/// the slot to the oldest queued request if any.
pub struct ServerLease {
    state: Rc<ShardState>,
    pub backend: usize,
    pub server: usize,
    /// Unique on the shard: the key of this lease's kill waker.
    id: u64,
    /// The server's `kill_gen` when the lease was taken.
    gen: u32,
}

impl ServerLease {
    /// Resolves when `on-marked-down shutdown-sessions` or `on-marked-up
    /// shutdown-backup-sessions` closes the server's sessions; never on other servers. Gives
    /// HAProxy's termination cause (`D` or `U`).
    pub async fn killed(&self) -> u8 {
        let killable = self.killable();
        poll_fn(|cx| match self.poll_killed(killable, cx) {
            Some(cause) => Poll::Ready(cause),
            None => Poll::Pending,
        })
        .await
    }

    /// Whether the server's sessions can be closed under this lease (`on-marked-down|up`).
    fn killable(&self) -> bool {
        self.state
            .topo
            .backends
            .get(self.backend)
            .and_then(|b| b.servers.get(self.server))
            .is_some_and(|r| r.killable)
    }

    /// The cause once the server's sessions were closed; else registers `cx`'s waker.
    fn poll_killed(&self, killable: bool, cx: &mut std::task::Context<'_>) -> Option<u8> {
        if !killable {
            return None;
        }
        let s = self.state.server(self.backend, self.server)?;
        if s.kill_gen.get() != self.gen {
            return Some(s.kill_cause.get());
        }
        s.kill_waiters
            .borrow_mut()
            .insert(self.id, cx.waker().clone());
        None
    }

    /// Runs `work` unless the server's sessions are killed first (`Err`, with the cause).
    /// A hand-written future: as an `async fn` moving `work` into an `or`, the state machine
    /// held `work` three times over (a body relay's 1.7 KB became 5.3 KB in every request's
    /// future, copied and allocated per request).
    pub fn unless_killed<F: std::future::Future>(&self, work: F) -> UnlessKilled<'_, F> {
        UnlessKilled {
            killable: self.killable(),
            lease: self,
            work,
        }
    }
}

pin_project_lite::pin_project! {
    /// [`ServerLease::unless_killed`]'s future.
    pub struct UnlessKilled<'a, F> {
        lease: &'a ServerLease,
        killable: bool,
        #[pin]
        work: F,
    }
}

impl<F: std::future::Future> std::future::Future for UnlessKilled<'_, F> {
    type Output = Result<F::Output, u8>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.work.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match this.lease.poll_killed(*this.killable, cx) {
            Some(cause) => Poll::Ready(Err(cause)),
            None => Poll::Pending,
        }
    }
}

impl Drop for ServerLease {
    fn drop(&mut self) {
        let Some(s) = self.state.server(self.backend, self.server) else {
            return;
        };
        if !s.kill_waiters.borrow().is_empty() {
            s.kill_waiters.borrow_mut().remove(&self.id);
        }
        crate::queue::pass_slot(&self.state, self.backend, self.server);
    }
}

/// Picks a server of `backend` (never `exclude`) and takes a slot on it, waiting in a queue
/// when the servers are full (`queue.rs`): in the forced or hashed server's own queue, or in the
/// backend's for a balanced request.
pub async fn lease(
    ctx: &Ctx,
    backend: usize,
    input: &PickInput<'_>,
    exclude: Option<usize>,
    forced: Option<usize>,
) -> Result<ServerLease, NoConnection> {
    let state = &ctx.state;
    let pick = PickInput {
        avoid: exclude,
        ..*input
    };
    // A persistence cookie names the server; otherwise the balancer picks one.
    let picked = match forced {
        Some(s) => Picked::Server(s),
        None => state.pick(backend, &pick),
    };
    let waits = match picked {
        Picked::NoServer => return Err(NoConnection::NoServer),
        Picked::AllFull => Waits::ForAnyServer,
        Picked::Server(server) => {
            let s = state
                .server(backend, server)
                .ok_or(NoConnection::NoServer)?;
            let limit = state.limit_now(backend, &s);
            // Behind requests already waiting for it, as HAProxy (`srv->queue.length`).
            if (limit == 0 || s.active.get() < limit) && s.queue.borrow().is_empty() {
                crate::queue::take_slot(state, backend, server, &s);
                return Ok(ServerLease::new(state, backend, server, &s));
            }
            let maxqueue = s.rt.maxqueue;
            if maxqueue > 0 && s.queue.borrow().len() as u32 >= maxqueue {
                return Err(NoConnection::QueueFull);
            }
            Waits::OnServer(server)
        }
    };
    let timeout = state
        .topo
        .backends
        .get(backend)
        .and_then(|b| b.timeouts.queue.or(b.timeouts.connect));
    let server = crate::queue::wait(state, backend, waits, timeout)
        .await
        .map_err(|_| NoConnection::QueueTimeout)?;
    let Some(s) = state.server(backend, server) else {
        // Servers are never removed from the list (`del server` keeps the slot): unreachable,
        // but the granted slot would not be lost.
        crate::queue::pass_slot(state, backend, server);
        return Err(NoConnection::NoServer);
    };
    Ok(ServerLease::new(state, backend, server, &s))
}

impl ServerLease {
    /// A slot on `server`, already counted in its `active` and by the balancer
    /// (`queue::take_slot`).
    fn new(
        state: &Rc<ShardState>,
        backend: usize,
        server: usize,
        s: &crate::state::ServerState,
    ) -> ServerLease {
        s.used_peak.set(s.used_peak.get().max(s.active.get()));
        let id = state.next_lease_id.get();
        state.next_lease_id.set(id.wrapping_add(1));
        ServerLease {
            state: state.clone(),
            backend,
            server,
            id,
            gen: s.kill_gen.get(),
        }
    }
}

/// A connection to the leased server: an idle pooled one when `reuse` allows, else a new one.
/// Returns whether it was reused (a reused connection may have been closed by the server: the
/// caller retries on a new one if it fails before any response byte).
pub async fn connect(
    ctx: &Ctx,
    lease: &ServerLease,
    reuse: Reuse,
    want_h1: bool,
    from: &ClientSide,
) -> Result<(ServerConn, bool), io::Error> {
    let (timeout, h2_ok, shared) = ctx
        .state
        .topo
        .backends
        .get(lease.backend)
        .map(|b| {
            (
                b.timeouts.connect,
                b.mode == ringlb_config::model::Mode::Http,
                b.http_reuse != ringlb_config::model::HttpReuse::Never,
            )
        })
        .ok_or_else(|| io::Error::other("no backend"))?;
    // The shard's server (configured or added at run time); `set server ... addr` on the
    // runtime socket changes where new connections go.
    let srv = ctx
        .state
        .server(lease.backend, lease.server)
        .ok_or_else(|| io::Error::other("no server"))?;
    let proxied_for = srv.rt.send_proxy.and(from.src.zip(from.dst));
    // `proto h2`: a stream on a shared connection when one has room (`h2srv.rs`).
    let h2_mode = if want_h1 || !h2_ok {
        H2Mode::Never
    } else {
        srv.rt.h2
    };
    // Every request may share an h2 connection (a stream refused before the server saw it
    // is retried like an unsent one), unless `http-reuse never`. A PROXY header speaks for
    // one client: such connections are never shared.
    let shared_h2 = shared && srv.rt.send_proxy.is_none();
    if h2_mode != H2Mode::Never && shared_h2 {
        if let Some(client) = crate::h2srv::pooled(&srv.h2) {
            return Ok((h2_stream(ctx, client), true));
        }
    }
    if h2_mode == H2Mode::Never && reuse != Reuse::Never {
        let min_requests = if reuse == Reuse::Proven { 2 } else { 0 };
        let prefer_unsafe = reuse == Reuse::Any;
        if let Some(conn) = ctx.state.take_idle(
            lease.backend,
            lease.server,
            min_requests,
            prefer_unsafe,
            proxied_for,
        ) {
            return Ok((conn, true));
        }
    }
    let addr = srv.addr.get();
    let started = Instant::now();
    // `tune.rcvbuf.server` / `tune.sndbuf.server` join the server's own socket options.
    let mut opts = srv.rt.connect.clone();
    opts.rcvbuf = ctx.state.topo.ops.sock_bufs.rcv_server;
    opts.sndbuf = ctx.state.topo.ops.sock_bufs.snd_server;
    let tcp = match within(timeout, TcpStream::connect_with(&ctx.ring, addr, &opts)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
    };
    if let Some(pp) = srv.rt.send_proxy {
        // The header goes first, before any TLS handshake, as with haproxy.
        let header = SendBuf::from_vec(proxy_header(pp, from));
        let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
        match within(left, tcp.send_all(header)).await {
            Ok((Ok(()), _)) => {}
            Ok((Err(e), _)) => return Err(e),
            Err(_) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
        }
    }
    let stream = match srv.tls.clone() {
        None => crate::conn::ServerStream::Plain(tcp),
        Some(config) => {
            // `server ... ssl`: the handshake counts in `timeout connect`, as with haproxy.
            let sni = srv.rt.tls.as_ref().and_then(|t| t.sni.as_deref());
            let name = ringlb_tls::server_name(sni, addr.ip());
            let session = ringlb_tls::TlsClientSession::new(config, name)
                .map_err(|e| io::Error::other(format!("{e:?}")))?;
            let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
            match crate::conn::TlsConn::connect(tcp, session, left).await {
                Ok(c) => crate::conn::ServerStream::Tls(Box::new(c)),
                Err(crate::conn::HandshakeError::Timeout) => {
                    return Err(io::Error::from(io::ErrorKind::TimedOut))
                }
                Err(e) => return Err(io::Error::other(format!("TLS handshake: {e:?}"))),
            }
        }
    };
    let h2 = match h2_mode {
        H2Mode::Always => true,
        H2Mode::Alpn => stream.alpn_is_h2(),
        H2Mode::Never => false,
    };
    if h2 {
        let idle = srv.rt.pool_purge_delay;
        let pool = shared.then(|| srv.h2.clone());
        let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
        let window = ctx.state.topo.tune.h2_be_window;
        let client = match within(left, crate::h2srv::handshake(stream, window, pool, idle)).await {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
        };
        return Ok((h2_stream(ctx, client), false));
    }
    Ok((
        ServerConn {
            stream,
            reuses: 0,
            proxied_for,
        },
        false,
    ))
}

/// The client a server connection is opened for: what `send-proxy*` announces (the addresses
/// as `set-src`/`set-dst` or an `accept-proxy` header left them, and the TLS facts).
#[derive(Debug, Default)]
pub struct ClientSide {
    pub src: Option<std::net::SocketAddr>,
    pub dst: Option<std::net::SocketAddr>,
    /// Only gathered for backends with a `send-proxy-v2` server (they may need it).
    pub tls: Option<ringlb_tls::TlsFacts>,
}

/// The PROXY header for a new connection to a `send-proxy*` server, with haproxy 2.6's TLVs:
/// ALPN whenever the client negotiated one, then AUTHORITY, then SSL.
/// `http-send-name-header`: the chosen server's name as the head's last line (replacing the
/// one a previous attempt set). Only for backends that ask for it.
pub(crate) fn send_name_header(
    ctx: &Ctx,
    be: &BackendRt,
    be_idx: usize,
    server: usize,
    head: &mut Vec<u8>,
) {
    if let Some(name) = &be.send_name_header {
        if let Some(srv) = ctx.state.server(be_idx, server) {
            ringlb_http1::set_last_header(head, name, srv.rt.name.as_bytes());
        }
    }
}

fn proxy_header(pp: crate::topology::SendProxyRt, from: &ClientSide) -> Vec<u8> {
    let addrs = from.src.zip(from.dst);
    if !pp.v2 {
        return ringlb_proxyproto::v1(addrs);
    }
    let tls = from.tls.as_ref();
    let extras = ringlb_proxyproto::V2Extras {
        crc32c: pp.crc32c,
        alpn: tls.and_then(|t| t.alpn.clone()),
        authority: tls.filter(|_| pp.authority).and_then(|t| t.sni.clone()),
        unique_id: None,
        ssl: pp.ssl.then(|| {
            tls.map(|t| ringlb_proxyproto::SslTlv {
                version: t.protocol.to_string(),
                cn: t
                    .client_cert
                    .as_ref()
                    .filter(|_| pp.ssl_cn)
                    .and_then(|c| c.info.subject.field("CN", 0))
                    .map(str::to_string),
                cipher: pp.ssl_cipher.then(|| t.cipher.to_string()),
                client_cert: t.client_cert.is_some(),
                verify: t.client_cert.as_ref().map_or(0, |c| c.verify),
            })
        }),
    };
    ringlb_proxyproto::v2(addrs, &extras)
}

/// A new stream on an h2 server connection, as a server connection for the session.
fn h2_stream(ctx: &Ctx, client: Rc<crate::h2srv::H2Client>) -> ServerConn {
    let tune = &ctx.state.topo.tune;
    let limits = ringlb_http1::Limits {
        max_headers: tune.http_maxhdr,
        max_head_bytes: tune.bufsize.saturating_sub(tune.maxrewrite).max(1024),
    };
    ServerConn {
        stream: crate::conn::ServerStream::H2(Box::new(crate::h2srv::H2Exchange::new(
            client, limits,
        ))),
        reuses: 0,
        proxied_for: None,
    }
}

/// Leases a server and connects to it, with `retries` and `option redispatch` as HAProxy: each
/// failed attempt retries the same server; the last one goes to another server when redispatch is
/// on. `reuse` allows idle pooled connections.
/// What getting a server connection took, for the counters and logs (HAProxy's `Tw`, `Tc`,
/// `econ`, `wretr`, `wredis`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectInfo {
    /// The server finally leased (the last one tried).
    pub server: Option<usize>,
    /// Set by the caller: the server a persistence cookie chose (first attempt only;
    /// `redispatch` may still move the request).
    pub forced: Option<usize>,
    /// Time spent waiting for a server slot (queue).
    pub queue: std::time::Duration,
    /// Time spent connecting (all attempts; ~0 for a reused connection).
    pub connect: std::time::Duration,
    pub reused: bool,
    pub failed_connects: u32,
    pub retries: u32,
    pub redispatched: bool,
    /// Set by the caller: the request must go over HTTP/1.1 even to an h2 server (an
    /// upgrade such as WebSocket: `ws h1`, HAProxy's `ws auto` downgrade).
    pub want_h1: bool,
    /// Set by the caller: a GET or HEAD, which a `redir` server answers with a 302.
    pub redirectable: bool,
    /// The balancer chose the server (not a cookie, `use-server` or stick match): haproxy
    /// counts only these in `lbtot` (`haproxy_*_loadbalanced_total`).
    pub balanced: bool,
}

pub async fn lease_and_connect(
    ctx: &Ctx,
    backend: usize,
    input: &PickInput<'_>,
    reuse: Reuse,
    info: &mut ConnectInfo,
    from: &ClientSide,
) -> Result<(ServerLease, ServerConn), NoConnection> {
    let Some(be) = ctx.state.topo.backends.get(backend) else {
        return Err(NoConnection::NoServer);
    };
    let (retries, redispatch, retry_conn) = (be.retries, be.redispatch, be.retry_on.conn_failure);
    let mut attempt = 0u32;
    let started = Instant::now();
    let forced = info.forced.take();
    info.balanced = forced.is_none();
    let mut lease = self::lease(ctx, backend, input, None, forced).await?;
    info.queue += started.elapsed();
    info.server = Some(lease.server);
    if info.redirectable
        && be
            .servers
            .get(lease.server)
            .is_some_and(|s| s.redir.is_some())
    {
        return Err(NoConnection::Redirect(lease.server));
    }
    loop {
        let connecting = Instant::now();
        let r = connect(ctx, &lease, reuse, info.want_h1, from).await;
        info.connect += connecting.elapsed();
        match r {
            Ok((conn, reused)) => {
                info.reused = reused;
                crate::observe::note(ctx, backend, lease.server, crate::observe::Event::L4Ok);
                return Ok((lease, conn));
            }
            Err(e) => {
                info.failed_connects += 1;
                crate::observe::note(ctx, backend, lease.server, crate::observe::Event::L4Err);
                let timed_out = e.kind() == io::ErrorKind::TimedOut;
                if !retry_conn || attempt >= retries {
                    return Err(if timed_out {
                        NoConnection::ConnectTimeout
                    } else {
                        NoConnection::ConnectFailed
                    });
                }
                attempt += 1;
                info.retries += 1;
                if redispatch && attempt == retries {
                    info.redispatched = true;
                    info.balanced = true;
                    let failed = lease.server;
                    drop(lease);
                    lease = match self::lease(ctx, backend, input, Some(failed), None).await {
                        Ok(l) => l,
                        // Only the failed server is left: retry it rather than give up early.
                        Err(NoConnection::NoServer) => {
                            self::lease(ctx, backend, input, None, None).await?
                        }
                        Err(other) => return Err(other),
                    };
                }
            }
        }
    }
}

/// Puts a server connection back into the shard's idle pool, within `pool-max-conn` (this
/// shard's share) and `max-reuse`; otherwise it is closed.
pub fn release_idle(state: &ShardState, lease: &ServerLease, mut conn: ServerConn) {
    if conn.stream.is_h2() {
        // The stream ends here; its connection stays in the server's h2 list.
        return;
    }
    let Some(s) = state.server(lease.backend, lease.server) else {
        return conn.close_hard();
    };
    let rt = &s.rt;
    if s.admin.get() != crate::state::AdminState::Ready || !s.up.get() {
        return conn.close_hard();
    }
    if rt.max_reuse >= 0 && i64::from(conn.reuses) >= rt.max_reuse {
        return conn.close_hard();
    }
    conn.reuses = conn.reuses.saturating_add(1);
    state.put_idle(lease.backend, lease.server, conn);
}
