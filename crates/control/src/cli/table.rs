//! The runtime crate's [`ServerTable`] built from the running configuration, with the ids,
//! flags and check bits haproxy 2.6 starts with (compare `crates/runtime/tests/recorded.rs`).

use ringlb_config::model::Config;
use ringlb_runtime::servers::{admin, chk};
use ringlb_runtime::{BackendRow, FrontendRow, FrontendState, OpState, ServerRow, ServerTable};
use ringlb_shard::Topology;

use crate::checks::BackendSpec;

/// One row per server of every enabled backend, in topology order (so a row's indexes are the
/// `ControlMsg` indexes). `checks` gives rise/fall and which checks run.
pub fn build_table(cfg: &Config, topo: &Topology, checks: &[BackendSpec]) -> ServerTable {
    let nshards = 1;
    let enabled = cfg.backends.iter().filter(|b| !b.disabled);
    let backends = enabled
        .zip(topo.backends.iter())
        .enumerate()
        .map(|(bi, (be, rt))| {
            let spec = checks.get(bi);
            let id = topo
                .proxies
                .iter()
                .find(|p| p.backend == Some(bi))
                .map_or(bi as u32 + 1, |p| p.id);
            let servers = be
                .servers
                .iter()
                .zip(rt.servers.iter())
                .enumerate()
                .map(|(si, (srv, srt))| {
                    let puid = rt.balance.servers.get(si).map_or(si as u32 + 1, |x| x.puid);
                    let mut row = ServerRow::new(
                        puid,
                        &srv.name,
                        Some(srt.addr.ip()),
                        srt.addr.port(),
                        srt.weight,
                    );
                    let p = &srv.params;
                    row.forced_id = p.id.is_some();
                    row.maxconn = srt.maxconn;
                    row.conn.idle_per_thread = vec![0; nshards];
                    row.conn.purge_delay_ms =
                        u32::try_from(srt.pool_purge_delay.as_millis()).unwrap_or(u32::MAX);
                    row.conn.idle_lim = srt.pool_max_conn;
                    row.tracking = p.track.is_some();
                    let sspec = spec.and_then(|b| b.servers.get(si));
                    if let Some(t) = sspec.and_then(|s| s.check) {
                        row.check.state = chk::CONFIGURED | chk::ENABLED;
                        row.check.rise = t.rise;
                        row.check.fall = t.fall;
                        row.check.health = t.rise;
                    }
                    row.check.port = p.check_port.unwrap_or(0);
                    row.check.addr = p.check_addr.clone();
                    if let Some(t) = sspec.and_then(|s| s.agent) {
                        row.agent.state = chk::CONFIGURED | chk::ENABLED | chk::AGENT;
                        row.agent.rise = t.rise;
                        row.agent.fall = t.fall;
                        row.agent.health = t.rise;
                        row.agent.port = p.agent.port.unwrap_or(0);
                        row.agent.addr = p.agent.addr.clone();
                    }
                    // haproxy keeps the name of any server given by name (`srv_fqdn`).
                    let host = srv.host.trim_matches(['[', ']']);
                    if host.parse::<std::net::IpAddr>().is_err()
                        && !host.starts_with('/')
                        && !host.contains('@')
                        && !host.is_empty()
                    {
                        row.fqdn = Some(srv.host.clone());
                    }
                    // `init-addr none`: no address, resolution maintenance (crate::dns).
                    if srv.addr.is_none() {
                        row.addr = None;
                        row.admin |= admin::RMAINT;
                        row.op_state = OpState::Stopped;
                    }
                    if srt.disabled {
                        row.admin |= admin::FMAINT | admin::CMAINT;
                        row.op_state = OpState::Stopped;
                        row.check.health = 0;
                        // Only the health check pauses (haproxy 2.6: the agent runs on).
                        if row.check.configured() {
                            row.check.state |= chk::PAUSED;
                        }
                    }
                    row
                })
                .collect();
            BackendRow {
                id,
                name: be.name.clone(),
                forced_id: false,
                dynamic_weights: spec.is_none_or(|s| s.dynamic_weights),
                servers,
            }
        })
        .collect();
    let frontends = topo
        .frontends
        .iter()
        .map(|f| FrontendRow {
            name: f.name.clone(),
            state: FrontendState::Ready,
            maxconn: f.maxconn,
        })
        .collect();
    ServerTable {
        backends,
        frontends,
        threads: nshards,
        hard_maxconn: topo.maxconn,
    }
}

/// Sets the idle-connection columns to one per worker shard.
pub fn set_threads(table: &mut ServerTable, nshards: usize) {
    table.threads = nshards;
    for be in &mut table.backends {
        for s in &mut be.servers {
            s.conn.idle_per_thread = vec![0; nshards];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_servers_state_as_haproxy_starts() {
        // The recorded fixture of the runtime crate (haproxy 2.6, same config).
        let text = "global\n nbthread 2\ndefaults\n mode http\n timeout connect 1s\n timeout client 5s\n timeout server 5s\nfrontend fe\n bind 127.0.0.1:1\n default_backend be\nbackend be\n server s1 127.0.0.1:9001 weight 3\n server s2 127.0.0.1:9002 check disabled inter 1h\n server s3 127.0.0.1:9003 weight 0\nbackend be2\n server s4 127.0.0.1:9004 check agent-check agent-port 9005 inter 1h agent-inter 1h weight 20\n server s5 127.0.0.1:9006 backup\n";
        let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
        let topo = Topology::from_config(&loaded.config).unwrap();
        let plan = crate::checks::CheckPlan::from_config(&loaded.config, &topo).unwrap();
        let t = build_table(&loaded.config, &topo, &plan.backends);
        let out = ringlb_runtime::servers::show_servers_state(&t, None).text;
        let rows: Vec<&str> = out.lines().skip(2).collect();
        // Recorded: ids 3/4 count haproxy's internal proxies; ringlb numbers its own the same way
        // for user proxies, so only the rest of the row is compared.
        let tail = |r: &str| r.split(' ').skip(1).collect::<Vec<_>>().join(" ");
        assert_eq!(
            rows.iter().map(|r| tail(r)).collect::<Vec<_>>(),
            vec![
                "be 1 s1 127.0.0.1 2 0 3 3 0 1 0 2 0 0 0 0 - 9001 - 0 0 - - 0",
                "be 2 s2 127.0.0.1 0 5 1 1 0 1 0 0 14 0 0 0 - 9002 - 0 0 - - 0",
                "be 3 s3 127.0.0.1 2 0 0 0 0 1 0 2 0 0 0 0 - 9003 - 0 0 - - 0",
                "be2 1 s4 127.0.0.1 2 0 20 20 0 1 0 2 6 22 0 0 - 9004 - 0 0 - - 9005",
                "be2 2 s5 127.0.0.1 2 0 1 1 0 1 0 2 0 0 0 0 - 9006 - 0 0 - - 0",
            ]
        );
    }
}
