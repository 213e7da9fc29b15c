//! Runs the server-state commands against a [`ServerTable`]: the reply text HAProxy 2.6
//! prints and the typed [`ServerChange`]s the control shard must apply and broadcast.
//! Pure: the table is read, never written; apply the changes with
//! [`ServerTable::apply_change`] (or the engine's own equivalent) afterwards.

use std::net::IpAddr;

use crate::command::{AdminState, Command, HealthOp, ServerRef, SetServerOp, WeightSpec};
use crate::reply::{severity, Reply};
use crate::servers::{
    self, admin, BackendRow, FrontendState, OpState, ServerChange, ServerRow, ServerTable,
};

/// Result of one command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// What to print.
    pub reply: Reply,
    /// What to change, in order (empty for reads and errors).
    pub changes: Vec<ServerChange>,
}

impl Outcome {
    fn reply(reply: Reply) -> Self {
        Outcome {
            reply,
            changes: Vec::new(),
        }
    }
    fn change(change: ServerChange) -> Self {
        Outcome {
            reply: Reply::empty(),
            changes: vec![change],
        }
    }
}

/// Executes `cmd` if it is a server/frontend/backend command owned by the control shard.
/// `None` for commands owned elsewhere (stats, stick tables, maps/ACLs, TLS, sessions).
pub fn apply(table: &ServerTable, cmd: &Command) -> Option<Outcome> {
    Some(match cmd {
        Command::ShowServersState { backend } => {
            Outcome::reply(servers::show_servers_state(table, backend.as_deref()))
        }
        Command::ShowServersConn { backend } => {
            Outcome::reply(servers::show_servers_conn(table, backend.as_deref()))
        }
        Command::ShowBackend => Outcome::reply(servers::show_backend(table)),
        Command::GetWeight { target } => match find(table, target) {
            Ok((_, s)) => Outcome::reply(servers::weight_line(s)),
            Err(e) => Outcome::reply(e),
        },
        Command::SetWeight { target, weight } => with_server(table, target, |be, s| {
            let weight = weight.as_ref().map_err(Clone::clone)?;
            set_weight(be, s, *weight)
        }),
        Command::SetAdmin { target, state } => {
            with_server(table, target, |be, s| Ok(admin_change(be, s, *state)))
        }
        Command::SetServer { target, op } => with_server(table, target, |be, s| {
            let op = op.as_ref().map_err(Clone::clone)?;
            set_server(be, s, op)
        }),
        Command::SetHealthCheck { target, enable } => {
            with_server(table, target, |be, s| check_enable(be, s, false, *enable))
        }
        Command::SetAgentCheck { target, enable } => {
            with_server(table, target, |be, s| check_enable(be, s, true, *enable))
        }
        Command::SetMaxconnServer { target, maxconn } => with_server(table, target, |be, s| {
            let maxconn = *maxconn.as_ref().map_err(Clone::clone)?;
            Ok(Outcome::change(ServerChange::Maxconn {
                backend: be.name.clone(),
                server: s.name.clone(),
                maxconn,
            }))
        }),
        Command::SetMaxconnFrontend { frontend, maxconn } => match table.frontend(frontend) {
            None => Outcome::reply(Reply::err("No such frontend.\n")),
            Some(f) => match maxconn {
                Err(e) => Outcome::reply(e.clone()),
                Ok(m) => Outcome::change(ServerChange::FrontendMaxconn {
                    frontend: f.name.clone(),
                    maxconn: *m,
                }),
            },
        },
        Command::SetMaxconnGlobal { maxconn } => match maxconn {
            // A hard limit of 0: no `maxconn` configured, ringlb does not bound the process.
            Some(m) if table.hard_maxconn > 0 && *m > table.hard_maxconn => {
                Outcome::reply(Reply::err("Value out of range.\n"))
            }
            m => Outcome::change(ServerChange::GlobalMaxconn { maxconn: *m }),
        },
        Command::SetRateLimit { what, value } => Outcome::change(ServerChange::RateLimit {
            what: *what,
            value: *value,
        }),
        Command::ShutdownFrontend { frontend } => {
            frontend_state(table, frontend, FrontendState::Stopped)
        }
        Command::DisableFrontend { frontend } => {
            frontend_state(table, frontend, FrontendState::Paused)
        }
        Command::EnableFrontend { frontend } => {
            frontend_state(table, frontend, FrontendState::Ready)
        }
        Command::AddServer {
            target,
            addr,
            options,
        } => add_server(table, target, addr, options),
        Command::DelServer { target } => del_server(table, target),
        _ => return None,
    })
}

/// Looks a server up as `cli_find_server` does.
pub fn find<'a>(
    table: &'a ServerTable,
    r: &ServerRef,
) -> Result<(&'a BackendRow, &'a ServerRow), Reply> {
    match table.find(&r.backend, &r.server) {
        Ok((bi, si)) => {
            let be = table
                .backends
                .get(bi)
                .ok_or_else(|| Reply::err("No such backend.\n"))?;
            let s = be
                .servers
                .get(si)
                .ok_or_else(|| Reply::err("No such server.\n"))?;
            Ok((be, s))
        }
        Err(true) => Err(Reply::err("No such backend.\n")),
        Err(false) => Err(Reply::err("No such server.\n")),
    }
}

fn with_server(
    table: &ServerTable,
    target: &ServerRef,
    f: impl FnOnce(&BackendRow, &ServerRow) -> Result<Outcome, Reply>,
) -> Outcome {
    match find(table, target) {
        Err(e) => Outcome::reply(e),
        Ok((be, s)) => f(be, s).unwrap_or_else(Outcome::reply),
    }
}

/// HAProxy's weight arithmetic: `N%` is `iweight × N / 100` (integer division, after
/// capping N at 25600), bounded to 256.
pub fn effective_weight(spec: WeightSpec, iweight: u32) -> u32 {
    match spec {
        WeightSpec::Absolute(w) => w.min(256),
        WeightSpec::Relative(pct) => {
            let w = u64::from(iweight) * u64::from(pct.min(25600)) / 100;
            u32::try_from(w.min(256)).unwrap_or(256)
        }
    }
}

fn set_weight(be: &BackendRow, s: &ServerRow, spec: WeightSpec) -> Result<Outcome, Reply> {
    let w = effective_weight(spec, s.iweight);
    if w != 0 && w != s.iweight && !be.dynamic_weights {
        return Err(Reply::err(
            "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n",
        ));
    }
    Ok(Outcome::change(ServerChange::Weight {
        backend: be.name.clone(),
        server: s.name.clone(),
        weight: w,
    }))
}

fn admin_change(be: &BackendRow, s: &ServerRow, state: AdminState) -> Outcome {
    Outcome::change(ServerChange::Admin {
        backend: be.name.clone(),
        server: s.name.clone(),
        state,
    })
}

fn check_enable(
    be: &BackendRow,
    s: &ServerRow,
    agent: bool,
    enable: bool,
) -> Result<Outcome, Reply> {
    let c = if agent { &s.agent } else { &s.check };
    if enable && !c.configured() {
        return Err(Reply::err(if agent {
            "Agent was not configured on this server, cannot enable.\n"
        } else {
            "Health check was not configured on this server, cannot enable.\n"
        }));
    }
    if !c.configured() {
        return Ok(Outcome::reply(Reply::empty()));
    }
    Ok(Outcome::change(ServerChange::CheckEnabled {
        backend: be.name.clone(),
        server: s.name.clone(),
        agent,
        enabled: enable,
    }))
}

fn set_server(be: &BackendRow, s: &ServerRow, op: &SetServerOp) -> Result<Outcome, Reply> {
    let (backend, server) = (be.name.clone(), s.name.clone());
    match op {
        SetServerOp::Weight(spec) => set_weight(be, s, *spec),
        SetServerOp::State(state) => Ok(admin_change(be, s, *state)),
        SetServerOp::Health(op) => {
            if s.tracking {
                return Err(Reply::err("cannot change health on a tracking server.\n"));
            }
            let Some(op) = op else {
                return Err(Reply::err(
                    "'set server <srv> health' expects 'up', 'stopping', or 'down'.\n",
                ));
            };
            let full = s.check.rise + s.check.fall - 1;
            let (op_state, health) = match op {
                HealthOp::Up => (OpState::Running, full),
                HealthOp::Stopping => (OpState::Stopping, full),
                HealthOp::Down => (OpState::Stopped, 0),
            };
            Ok(Outcome::change(ServerChange::Health {
                backend,
                server,
                op_state,
                health,
            }))
        }
        SetServerOp::Agent(up) => {
            if !s.agent.enabled() {
                return Err(Reply::err("agent checks are not enabled on this server.\n"));
            }
            let Some(up) = up else {
                return Err(Reply::err(
                    "'set server <srv> agent' expects 'up' or 'down'.\n",
                ));
            };
            let health = if *up {
                s.agent.rise + s.agent.fall - 1
            } else {
                0
            };
            Ok(Outcome::change(ServerChange::Agent {
                backend,
                server,
                up: *up,
                health,
            }))
        }
        SetServerOp::CheckPort(port) => {
            if !s.check.enabled() {
                return Err(Reply::msg(
                    severity::WARNING,
                    "health checks are not enabled on this server",
                ));
            }
            let port = port.map_err(|e| Reply::msg(severity::WARNING, e))?;
            Ok(Outcome::change(ServerChange::CheckPort {
                backend,
                server,
                port,
            }))
        }
        SetServerOp::Addr { addr, port } => Ok(set_addr(be, s, addr, port.as_deref())),
    }
}

/// `srv_update_addr_port`: the message says what changed, the change carries the result.
fn set_addr(be: &BackendRow, s: &ServerRow, addr: &str, port: Option<&str>) -> Outcome {
    const BY: &str = " by 'stats socket command'\n";
    let mut msg = String::new();
    let Ok(new_addr) = addr.parse::<IpAddr>() else {
        msg = format!("Invalid addr '{addr}'{BY}");
        return Outcome::reply(Reply::msg(severity::WARNING, msg));
    };
    let old = s.addr.map_or_else(|| "-".to_string(), |a| a.to_string());
    let mut changed = false;
    if s.addr == Some(new_addr) {
        msg.push_str("no need to change the addr");
    } else {
        msg.push_str(&format!("IP changed from '{old}' to '{addr}'"));
        changed = true;
    }
    let mut new_port = s.port;
    if let Some(p) = port {
        msg.push_str(", ");
        let (v, used) = crate::command::strtol(p);
        if used == 0 {
            msg.push_str(&format!("problem converting port '{p}' to an int"));
        } else if p.starts_with(['+', '-']) {
            msg.push_str("can't change <port> to port map because it is incompatible with current health check port configuration (use 'port' statement from the 'server' directive.");
        } else {
            // HAProxy stores the value in a 16-bit port: 70000 becomes 4464.
            let v = (v & 0xffff) as u16;
            if v == s.port {
                msg.push_str("no need to change the port");
            } else {
                msg.push_str(&format!("port changed from '{}' to '{v}'", s.port));
                new_port = v;
                changed = true;
            }
        }
    }
    msg.push_str(BY);
    let changes = if changed {
        vec![ServerChange::Addr {
            backend: be.name.clone(),
            server: s.name.clone(),
            addr: new_addr,
            port: new_port,
        }]
    } else {
        Vec::new()
    };
    Outcome {
        reply: Reply::msg(severity::WARNING, msg),
        changes,
    }
}

fn frontend_state(table: &ServerTable, name: &str, want: FrontendState) -> Outcome {
    let Some(f) = table.frontend(name) else {
        return Outcome::reply(Reply::err("No such frontend.\n"));
    };
    let notice = |t: &str| Outcome::reply(Reply::msg(severity::NOTICE, t));
    match (f.state, want) {
        (FrontendState::Stopped, FrontendState::Stopped) => {
            notice("Frontend was already shut down.\n")
        }
        (FrontendState::Stopped, FrontendState::Ready) => Outcome::reply(Reply::err(
            "Frontend was previously shut down, cannot enable.\n",
        )),
        (FrontendState::Stopped, FrontendState::Paused) => Outcome::reply(Reply::err(
            "Frontend was previously shut down, cannot disable.\n",
        )),
        (FrontendState::Ready, FrontendState::Ready) => {
            notice("All sockets are already enabled.\n")
        }
        (FrontendState::Paused, FrontendState::Paused) => {
            notice("All sockets are already disabled.\n")
        }
        _ => Outcome::change(ServerChange::FrontendState {
            frontend: f.name.clone(),
            state: want,
        }),
    }
}

/// Splits `addr[:port]` of `add server` (IPv6 without a port is accepted as is).
fn split_addr_port(s: &str) -> Option<(IpAddr, u16)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, 0));
    }
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.parse().ok()?, port.parse().ok()?))
}

/// HAProxy 2.6 `server` keywords (`true`: takes a value), in its documentation's order.
/// `add server` rejects others the way HAProxy does; the config crate validates values.
pub const SERVER_KEYWORDS: &[(&str, bool)] = &[
    ("addr", true),
    ("agent-check", false),
    ("agent-send", true),
    ("agent-inter", true),
    ("agent-addr", true),
    ("agent-port", true),
    ("allow-0rtt", false),
    ("alpn", true),
    ("backup", false),
    ("ca-file", true),
    ("check", false),
    ("check-send-proxy", false),
    ("check-alpn", true),
    ("check-proto", true),
    ("check-sni", true),
    ("check-ssl", false),
    ("check-via-socks4", false),
    ("ciphers", true),
    ("ciphersuites", true),
    ("cookie", true),
    ("crl-file", true),
    ("crt", true),
    ("disabled", false),
    ("enabled", false),
    ("error-limit", true),
    ("fall", true),
    ("force-sslv3", false),
    ("force-tlsv10", false),
    ("force-tlsv11", false),
    ("force-tlsv12", false),
    ("force-tlsv13", false),
    ("id", true),
    ("inter", true),
    ("fastinter", true),
    ("downinter", true),
    ("log-proto", true),
    ("maxconn", true),
    ("maxqueue", true),
    ("max-reuse", true),
    ("minconn", true),
    ("namespace", true),
    ("no-agent-check", false),
    ("no-backup", false),
    ("no-check", false),
    ("no-check-ssl", false),
    ("no-send-proxy", false),
    ("no-send-proxy-v2", false),
    ("no-send-proxy-v2-ssl", false),
    ("no-send-proxy-v2-ssl-cn", false),
    ("no-ssl", false),
    ("no-ssl-reuse", false),
    ("no-sslv3", false),
    ("no-tls-tickets", false),
    ("no-tlsv10", false),
    ("no-tlsv11", false),
    ("no-tlsv12", false),
    ("no-tlsv13", false),
    ("no-verifyhost", false),
    ("no-tfo", false),
    ("non-stick", false),
    ("npn", true),
    ("observe", true),
    ("on-error", true),
    ("on-marked-down", true),
    ("on-marked-up", true),
    ("pool-low-conn", true),
    ("pool-max-conn", true),
    ("pool-purge-delay", true),
    ("port", true),
    ("proto", true),
    ("redir", true),
    ("rise", true),
    ("resolve-opts", true),
    ("resolve-prefer", true),
    ("resolve-net", true),
    ("resolvers", true),
    ("send-proxy", false),
    ("send-proxy-v2", false),
    ("proxy-v2-options", true),
    ("send-proxy-v2-ssl", false),
    ("send-proxy-v2-ssl-cn", false),
    ("slowstart", true),
    ("sni", true),
    ("source", true),
    ("ssl", false),
    ("ssl-max-ver", true),
    ("ssl-min-ver", true),
    ("ssl-reuse", false),
    ("stick", false),
    ("socks4", true),
    ("tcp-ut", true),
    ("tfo", false),
    ("track", true),
    ("tls-tickets", false),
    ("verify", true),
    ("verifyhost", true),
    ("weight", true),
];

/// HAProxy 2.6's keywords allowed on `add server` (management.txt).
pub const DYNAMIC_KEYWORDS: &[&str] = &[
    "agent-addr",
    "agent-check",
    "agent-inter",
    "agent-port",
    "agent-send",
    "allow-0rtt",
    "alpn",
    "addr",
    "backup",
    "ca-file",
    "check",
    "check-alpn",
    "check-proto",
    "check-send-proxy",
    "check-sni",
    "check-ssl",
    "check-via-socks4",
    "ciphers",
    "ciphersuites",
    "crl-file",
    "crt",
    "disabled",
    "downinter",
    "enabled",
    "error-limit",
    "fall",
    "fastinter",
    "force-sslv3",
    "force-tlsv10",
    "force-tlsv11",
    "force-tlsv12",
    "force-tlsv13",
    "id",
    "inter",
    "maxconn",
    "maxqueue",
    "minconn",
    "no-ssl-reuse",
    "no-sslv3",
    "no-tlsv10",
    "no-tlsv11",
    "no-tlsv12",
    "no-tlsv13",
    "no-tls-tickets",
    "npn",
    "observe",
    "on-error",
    "on-marked-down",
    "on-marked-up",
    "pool-low-conn",
    "pool-max-conn",
    "pool-purge-delay",
    "port",
    "proto",
    "proxy-v2-options",
    "rise",
    "send-proxy",
    "send-proxy-v2",
    "send-proxy-v2-ssl",
    "send-proxy-v2-ssl-cn",
    "slowstart",
    "sni",
    "source",
    "ssl",
    "ssl-max-ver",
    "ssl-min-ver",
    "tfo",
    "tls-tickets",
    "track",
    "usesrc",
    "verify",
    "verifyhost",
    "weight",
    "ws",
];

/// The first keyword (of a list `check_server_options` accepted) HAProxy refuses on a
/// dynamic server.
fn not_dynamic(options: &[String]) -> Option<&str> {
    let mut i = 0;
    while let Some(word) = options.get(i) {
        let takes_arg = SERVER_KEYWORDS.iter().find(|(k, _)| k == word)?.1;
        if !DYNAMIC_KEYWORDS.contains(&word.as_str()) {
            return Some(word);
        }
        i += 1 + usize::from(takes_arg);
    }
    None
}

/// Value of `<name> <u32>` in an option list.
fn option_u32(options: &[String], name: &str) -> Option<u32> {
    let i = options.iter().position(|o| o == name)?;
    options.get(i + 1)?.parse().ok()
}

/// First unknown keyword of an `add server` option list, with HAProxy's message.
fn check_server_options(options: &[String]) -> Result<(), Reply> {
    let mut i = 0;
    while let Some(word) = options.get(i) {
        match SERVER_KEYWORDS.iter().find(|(k, _)| k == word) {
            Some((_, takes_arg)) => i += 1 + usize::from(*takes_arg),
            None => {
                let best = crate::table::best_match(word, SERVER_KEYWORDS.iter().map(|(k, _)| *k));
                return Err(Reply::err(match best {
                    Some(b) => format!("unknown keyword '{word}'; did you mean '{b}' maybe ?\n"),
                    None => format!("unknown keyword '{word}'.\n"),
                }));
            }
        }
    }
    Ok(())
}

fn add_server(table: &ServerTable, target: &ServerRef, addr: &str, options: &[String]) -> Outcome {
    let Some(be) = table.backend(&target.backend) else {
        return Outcome::reply(Reply::err("No such backend."));
    };
    if !be.dynamic_weights {
        return Outcome::reply(Reply::err(
            "Backend must use a dynamic load balancing to support dynamic servers.",
        ));
    }
    if let Err(e) = check_server_options(options) {
        return Outcome::reply(e);
    }
    if let Some(kw) = not_dynamic(options) {
        return Outcome::reply(Reply::err(format!(
            "'{kw}' option is not accepted for dynamic server\n"
        )));
    }
    if let Some(want) = option_u32(options, "id") {
        if let Some(s) = be.servers.iter().find(|s| s.id == want) {
            return Outcome::reply(Reply::err(format!(
                "'id' : custom id {want} already used ('server {}').\n",
                s.name
            )));
        }
    }
    if be.servers.iter().any(|s| s.name == target.server) {
        return Outcome::reply(Reply::err(
            "Already exists a server with the same name in backend.\n",
        ));
    }
    let Some((ip, port)) = split_addr_port(addr) else {
        return Outcome::reply(Reply::err(format!("Invalid address '{addr}'.\n")));
    };
    let id = (1u32..)
        .find(|id| !be.servers.iter().any(|s| s.id == *id))
        .unwrap_or(u32::MAX);
    Outcome {
        reply: Reply::msg(severity::INFO, "New server registered.\n"),
        changes: vec![ServerChange::Add {
            backend: be.name.clone(),
            server: target.server.clone(),
            id,
            addr: Some(ip),
            port,
            options: options.to_vec(),
        }],
    }
}

fn del_server(table: &ServerTable, target: &ServerRef) -> Outcome {
    let (be, s) = match find(table, target) {
        Ok(x) => x,
        // HAProxy prints these two without a newline here.
        Err(e) => return Outcome::reply(Reply::err(e.text.trim_end_matches('\n').to_string())),
    };
    if s.admin & admin::MAINT == 0 {
        return Outcome::reply(Reply::err(
            "Only servers in maintenance mode can be deleted.",
        ));
    }
    if s.cur_conns > 0 {
        return Outcome::reply(Reply::err(
            "Server still has connections attached to it, cannot remove it.",
        ));
    }
    Outcome {
        reply: Reply::msg(severity::INFO, "Server deleted."),
        changes: vec![ServerChange::Del {
            backend: be.name.clone(),
            server: s.name.clone(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_percent_rounds_down_and_caps() {
        assert_eq!(effective_weight(WeightSpec::Relative(50), 3), 1);
        assert_eq!(effective_weight(WeightSpec::Relative(33), 3), 0);
        assert_eq!(effective_weight(WeightSpec::Relative(200), 3), 6);
        assert_eq!(effective_weight(WeightSpec::Relative(25600), 100), 256);
        assert_eq!(effective_weight(WeightSpec::Relative(100), 0), 0);
        assert_eq!(effective_weight(WeightSpec::Absolute(7), 3), 7);
    }
}
