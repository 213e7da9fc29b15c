//! `add server` on the control shard: the server line is parsed into the engine's server
//! (`ringlb_shard::dynamic`), recorded in the runtime table and broadcast to every shard,
//! which appends it to its list and balancer (`ControlMsg::AddServer`).

use std::sync::Arc;

use ringlb_runtime::servers::chk;
use ringlb_runtime::{OpState, Reply, ServerChange};
use ringlb_shard::state::NewServer;
use ringlb_shard::ControlMsg;

use super::exec::Ctx;

/// Carries out a `ServerChange::Add` the runtime crate accepted; `Err` is the reply when the
/// engine refuses the server line.
pub(super) async fn add(ctx: &Ctx, c: &ServerChange) -> Result<(), Reply> {
    let ServerChange::Add {
        backend,
        server,
        id,
        addr,
        port,
        options,
    } = c
    else {
        return Ok(());
    };
    let topo = ctx.topo();
    let Some((bi, be)) = topo
        .backends
        .iter()
        .enumerate()
        .find(|(_, b)| b.name == *backend)
    else {
        return Err(Reply::err("No such backend."));
    };
    let addr_word = match (addr, port) {
        (None, _) => String::new(),
        (Some(ip), 0) => ip.to_string(),
        (Some(ip), p) => std::net::SocketAddr::new(*ip, *p).to_string(),
    };
    let dynsrv =
        ringlb_shard::dynamic::parse(be, server, &addr_word, options).map_err(Reply::err)?;
    let wants_checks = dynsrv.model.params.check || dynsrv.model.params.agent.enabled;
    match &ctx.checks {
        Some(h) if wants_checks => h
            .validate(bi, &dynsrv.model, dynsrv.rt.addr)
            .map_err(Reply::err)?,
        None if wants_checks => {
            return Err(Reply::err(
                "checks are not available on this runtime socket.\n",
            ))
        }
        _ => {}
    }
    let puid = dynsrv.model.params.id.unwrap_or(*id);
    {
        let mut table = ctx.table.borrow_mut();
        table.apply_change(c);
        if let Some(row) = table
            .backends
            .get_mut(bi)
            .and_then(|b| b.servers.iter_mut().find(|s| s.name == *server))
        {
            row.id = puid;
            row.forced_id = dynsrv.model.params.id.is_some();
            row.uweight = dynsrv.rt.weight;
            row.iweight = dynsrv.rt.weight;
            row.maxconn = dynsrv.rt.maxconn;
            if dynsrv.enabled {
                row.admin = 0;
                row.op_state = OpState::Running;
                row.check.health = row.check.rise;
            }
            // HAProxy: the check is configured but stays off until `enable health`.
            if dynsrv.model.params.check {
                row.check.state = chk::CONFIGURED;
            }
            if dynsrv.model.params.agent.enabled {
                row.agent.state = chk::CONFIGURED;
            }
        }
    }
    let rt = dynsrv.rt.clone();
    ctx.bus
        .send(ControlMsg::AddServer {
            backend: bi,
            server: NewServer(Arc::new(dynsrv.rt)),
            puid,
            enabled: dynsrv.enabled,
        })
        .await;
    // The health board follows every added server at the shards' slot (checks or not), so
    // `enable health`, `set server ... state` and the counts of "N active servers left" see
    // it; its check tasks wait for `enable health` / `enable agent`.
    if let (Some(h), Some(si)) = (&ctx.checks, ctx.bus.mirror().server_index(bi, server)) {
        if let Err(e) = h.add_server(bi, si, &dynsrv.model, &rt, dynsrv.enabled) {
            if wants_checks {
                return Err(Reply::err(e));
            }
        }
    }
    Ok(())
}
