//! `mode tcp` sessions: pick a server (`balance roundrobin`), connect with retries, then forward
//! bytes both ways with half-close (see `tunnel.rs`).

use crate::conn::ClientConn;

use crate::server::{lease_and_connect, ConnectInfo};
use crate::tunnel::{self, TunnelTimeouts};
use crate::Ctx;

/// Serves one accepted connection of a TCP-mode frontend.
pub async fn serve(ctx: &Ctx, frontend: usize, client: ClientConn) {
    let topo = &ctx.state.topo; // borrowed: no shared refcount traffic per connection
    let Some(fe) = topo.frontends.get(frontend) else {
        return;
    };
    let Some(backend) = fe.backend else { return }; // HAProxy closes: no backend to serve
    let Some(be) = topo.backends.get(backend) else {
        return;
    };
    let mut stick = crate::stick::StickSession::new(&ctx.state);
    if !crate::stick::connection_rules(ctx, fe, &client, &mut stick) {
        return;
    }
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
    let (up, down, _end) = tunnel::run(&client, &*server, t).await;
    stick.bytes(up, down);
    let mut c = ctx.state.counters.borrow_mut();
    c.bytes(frontend, Some(backend), Some(lease.server), up, down);
    c.stream_end(backend, lease.server);
}
