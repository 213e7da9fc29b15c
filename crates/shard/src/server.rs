//! Backend side: choosing a server, its connection slot (server `maxconn` and queue), and getting
//! a connection to it (an idle pooled one or a new one, with `timeout connect`).

use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use ringlb_balance::PickInput;
use ringlb_uring::TcpStream;

use crate::state::{QueueEntry, ServerConn, ShardState};
use crate::time::within;
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
}

/// Which idle connections a request may use (`http-reuse`, decided per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// A new connection (`never`; the first request of a session with `safe`; a retry).
    Never,
    /// Only connections already reused once, proving the server keeps them alive (the first
    /// request of a session with `aggressive`).
    Proven,
    /// Any idle connection.
    Any,
}

/// A slot on a server (counts against its per-shard `maxconn` share). Released on drop, handing
/// the slot to the oldest queued request if any.
pub struct ServerLease {
    state: Rc<ShardState>,
    pub backend: usize,
    pub server: usize,
}

impl Drop for ServerLease {
    fn drop(&mut self) {
        self.state.note_conn(self.backend, self.server, false);
        let Some(s) = self.state.server(self.backend, self.server) else {
            return;
        };
        let next = s.queue.borrow_mut().pop_front();
        match next {
            Some(entry) => {
                // The slot passes to the queued request; `active` is unchanged.
                entry.granted.set(true);
                if let Some(w) = entry.waker.borrow_mut().take() {
                    w.wake();
                }
            }
            None => s.active.set(s.active.get().saturating_sub(1)),
        }
    }
}

/// Picks a server of `backend` (never `exclude`) and takes a slot on it, queueing when the server
/// is at its `maxconn` share.
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
    let server = match forced {
        Some(s) => s,
        None => state.pick(backend, &pick).ok_or(NoConnection::NoServer)?,
    };
    let s = state
        .server(backend, server)
        .ok_or(NoConnection::NoServer)?;
    // A granted slot counts as a connection to the server for `leastconn`/`first`.
    let lease = || {
        state.note_conn(backend, server, true);
        ServerLease {
            state: state.clone(),
            backend,
            server,
        }
    };
    // `maxconn_now`: the configured share, or what an agent's `maxconn:N` set since.
    let limit = s.maxconn_now.get();
    if limit == 0 || s.active.get() < limit {
        s.active.set(s.active.get() + 1);
        s.used_peak.set(s.used_peak.get().max(s.active.get()));
        return Ok(lease());
    }
    let maxqueue = state
        .topo
        .backends
        .get(backend)
        .and_then(|b| b.servers.get(server))
        .map_or(0, |r| r.maxqueue);
    if maxqueue > 0 && s.queue.borrow().len() as u32 >= maxqueue {
        return Err(NoConnection::QueueFull);
    }
    let entry = Rc::new(QueueEntry::default());
    s.queue.borrow_mut().push_back(entry.clone());
    let timeout = state
        .topo
        .backends
        .get(backend)
        .and_then(|b| b.timeouts.queue.or(b.timeouts.connect));
    let granted = within(
        timeout,
        poll_fn(|cx| {
            if entry.granted.get() {
                Poll::Ready(())
            } else {
                *entry.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }),
    )
    .await;
    match granted {
        Ok(()) => Ok(lease()),
        Err(_) => {
            s.queue.borrow_mut().retain(|e| !Rc::ptr_eq(e, &entry));
            if entry.granted.get() {
                // Granted just as the timer fired: the slot is ours, use it.
                return Ok(lease());
            }
            Err(NoConnection::QueueTimeout)
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
) -> Result<(ServerConn, bool), io::Error> {
    if reuse != Reuse::Never {
        let min_requests = if reuse == Reuse::Proven { 2 } else { 0 };
        if let Some(conn) = ctx
            .state
            .take_idle(lease.backend, lease.server, min_requests)
        {
            return Ok((conn, true));
        }
    }
    let rt = ctx
        .state
        .topo
        .backends
        .get(lease.backend)
        .and_then(|b| {
            b.servers
                .get(lease.server)
                .map(|srv| (srv.addr, b.timeouts.connect))
        })
        .ok_or_else(|| io::Error::other("no server"))?;
    // `set server ... addr` on the runtime socket changes where new connections go.
    let rt = match ctx.state.server(lease.backend, lease.server) {
        Some(st) => (st.addr.get(), rt.1),
        None => rt,
    };
    let (addr, timeout) = rt;
    let started = Instant::now();
    let tcp = match within(timeout, connect_tcp(ctx, addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
    };
    let stream = match ctx
        .state
        .server(lease.backend, lease.server)
        .and_then(|s| s.tls.clone())
    {
        None => crate::conn::ServerStream::Plain(tcp),
        Some(config) => {
            // `server ... ssl`: the handshake counts in `timeout connect`, as with haproxy.
            let sni = ctx
                .state
                .topo
                .backends
                .get(lease.backend)
                .and_then(|b| b.servers.get(lease.server))
                .and_then(|s| s.tls.as_ref())
                .and_then(|t| t.sni.as_deref());
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
    Ok((ServerConn { stream, reuses: 0 }, false))
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
}

pub async fn lease_and_connect(
    ctx: &Ctx,
    backend: usize,
    input: &PickInput<'_>,
    reuse: Reuse,
    info: &mut ConnectInfo,
) -> Result<(ServerLease, ServerConn), NoConnection> {
    let Some(be) = ctx.state.topo.backends.get(backend) else {
        return Err(NoConnection::NoServer);
    };
    let (retries, redispatch, retry_conn) = (be.retries, be.redispatch, be.retry_on.conn_failure);
    let mut attempt = 0u32;
    let started = Instant::now();
    let mut lease = self::lease(ctx, backend, input, None, info.forced.take()).await?;
    info.queue += started.elapsed();
    info.server = Some(lease.server);
    loop {
        let connecting = Instant::now();
        let r = connect(ctx, &lease, reuse).await;
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
    let Some(s) = state.server(lease.backend, lease.server) else {
        return;
    };
    let Some(rt) = state
        .topo
        .backends
        .get(lease.backend)
        .and_then(|b| b.servers.get(lease.server))
    else {
        return;
    };
    if s.admin.get() != crate::state::AdminState::Ready || !s.up.get() {
        return;
    }
    if rt.max_reuse >= 0 && i64::from(conn.reuses) >= rt.max_reuse {
        return;
    }
    conn.reuses = conn.reuses.saturating_add(1);
    state.put_idle(lease.backend, lease.server, conn);
}

/// A TCP connection to a server, with `tune.rcvbuf.server`/`tune.sndbuf.server` applied.
async fn connect_tcp(ctx: &Ctx, addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let bufs = ctx.state.topo.ops.sock_bufs;
    TcpStream::connect_prepared(&ctx.ring, addr, |fd| {
        crate::ops::apply_buffers(fd, bufs.rcv_server, bufs.snd_server);
    })
    .await
}
