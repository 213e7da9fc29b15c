//! `mode tcp` sessions: pick a server (`balance roundrobin`), connect with retries, then forward
//! bytes both ways with half-close (see `tunnel.rs`).

use crate::conn::ClientConn;

use crate::server::{lease_and_connect, ConnectInfo};
use crate::tunnel::{self, TunnelTimeouts};
use crate::Ctx;

/// Serves one accepted connection of a TCP-mode frontend.
pub async fn serve(ctx: &Ctx, frontend: usize, client: ClientConn) {
    let topo = &ctx.state.topo; // borrowed: no shared refcount traffic per connection
    let accepted = std::time::Instant::now();
    let Some(fe) = topo.frontends.get(frontend) else {
        return;
    };
    let Some(backend) = fe.backend else { return }; // HAProxy closes: no backend to serve
    let Some(be) = topo.backends.get(backend) else {
        return;
    };
    let input = ringlb_balance::PickInput {
        src: client.peer_addr().map(|a| a.ip()),
        ..Default::default()
    };
    let mut info = ConnectInfo::default();
    let connected =
        lease_and_connect(ctx, backend, &input, crate::server::Reuse::Never, &mut info).await;
    ctx.state
        .counters
        .borrow_mut()
        .connect_outcome(backend, &info);
    let Ok((lease, server)) = connected else {
        // Nothing to answer in TCP mode: closing is HAProxy's behaviour (logged as SC).
        let log = SessionLog {
            accepted,
            info: &info,
            server: None,
            bytes: (0, 0),
            term: *b"SC",
        };
        log_session(ctx, frontend, backend, &client, &log);
        return;
    };
    let now_ms = ctx.state.board.now_ms();
    ctx.state
        .counters
        .borrow_mut()
        .stream_start(backend, lease.server, now_ms);
    // The tunnel timeout supersedes client/server timeouts once both sides are connected.
    let idle = be.timeouts.tunnel.or(fe.timeouts.tunnel).or_else(|| {
        match (fe.timeouts.client, be.timeouts.server) {
            (Some(c), Some(s)) => Some(c.max(s)),
            (c, s) => c.or(s),
        }
    });
    let t = TunnelTimeouts {
        idle,
        client_fin: fe.timeouts.client_fin.or(fe.timeouts.client),
        server_fin: be.timeouts.server_fin.or(be.timeouts.server),
    };
    let (up, down, end) = tunnel::run(&client, &*server, t).await;
    {
        let mut c = ctx.state.counters.borrow_mut();
        c.bytes(frontend, Some(backend), Some(lease.server), up, down);
        c.stream_end(backend, lease.server);
    }
    let log = SessionLog {
        accepted,
        info: &info,
        server: Some(lease.server),
        bytes: (up, down),
        term: match end {
            tunnel::TunnelEnd::IdleTimeout => *b"cD",
            tunnel::TunnelEnd::Error => *b"SD",
            tunnel::TunnelEnd::Closed => *b"--",
        },
    };
    log_session(ctx, frontend, backend, &client, &log);
}

/// What a TCP session's log line reports.
struct SessionLog<'a> {
    accepted: std::time::Instant,
    info: &'a ConnectInfo,
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
    let srv = s.server.and_then(|i| be.and_then(|b| b.servers.get(i)));
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
        term: s.term,
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
        pid: i64::from(std::process::id()),
        request_counter: 0,
        server_addr: srv.map(|x| x.addr),
        captured_req: Vec::new(),
        captured_res: Vec::new(),
    };
    let tls = client.tls_facts();
    let host = crate::rules::Host {
        ctx,
        frontend: &fe.name,
        backend: be.map(|b| b.name.as_str()),
        server: srv.map(|x| x.name.as_str()),
        src: client.peer_addr(),
        dst: client.tcp().local_addr().ok(),
        tls: tls.as_ref(),
        log: Some(&facts),
        unique_id: None,
    };
    let txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::default());
    let mut line = Vec::with_capacity(192);
    lf.render(ringlb_rules::Ctx::new(&host, &txn), &mut line);
    ctx.logger.emit(&fe.log, ringlb_log::Level::INFO, &line);
}
