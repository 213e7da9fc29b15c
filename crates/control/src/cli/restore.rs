//! `server-state-file` at start-up (HAProxy 2.6 `apply_server_state`): which file each
//! backend reads (`load-server-state-from-file global|local|none`, `server-state-file`,
//! `server-state-base`, `server-state-file-name`), the rows applied to the runtime table by
//! `ringlb_runtime::state_file` (HAProxy's rules), and the resulting states as control
//! messages every shard applies when it is built, before it serves (`Topology::initial`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ringlb_config::model::{Config, Directive};
use ringlb_runtime::servers::admin;
use ringlb_runtime::state_file;
use ringlb_runtime::{OpState, ServerTable};
use ringlb_shard::{AdminState, ControlMsg, Topology};

/// Last value of a keyword among a proxy's directives (its defaults' are copied in first).
fn last<'a>(other: &'a [Directive], keyword: &str) -> Option<&'a [String]> {
    other
        .iter()
        .rev()
        .find(|d| d.keyword == keyword)
        .map(|d| d.args.as_slice())
}

fn global_value<'a>(cfg: &'a Config, keyword: &str) -> Option<&'a str> {
    last(&cfg.global.other, keyword)?
        .first()
        .map(String::as_str)
}

/// `server-state-base` before a relative name.
fn with_base(cfg: &Config, name: &str) -> PathBuf {
    match global_value(cfg, "server-state-base") {
        Some(base) if !name.starts_with('/') => Path::new(base).join(name),
        _ => PathBuf::from(name),
    }
}

/// The state file of each backend that loads one: `(backend, path, global)`.
pub fn sources(cfg: &Config) -> Vec<(String, PathBuf, bool)> {
    let mut out = Vec::new();
    for b in &cfg.backends {
        let mode = last(&b.other, "load-server-state-from-file")
            .and_then(|a| a.first())
            .map(String::as_str);
        match mode {
            Some("global") => {
                if let Some(f) = global_value(cfg, "server-state-file") {
                    out.push((b.name.clone(), with_base(cfg, f), true));
                }
            }
            Some("local") => {
                let name = match last(&b.other, "server-state-file-name").and_then(|a| a.first()) {
                    Some(n) if n != "use-backend-name" => n.clone(),
                    _ => b.name.clone(),
                };
                out.push((b.name.clone(), with_base(cfg, &name), false));
            }
            _ => {}
        }
    }
    out
}

/// `init-addr last`: the address each server had in its backend's state file, as
/// `(backend, server, address)` (unreadable files and `-` addresses give nothing).
pub fn saved_addrs(cfg: &Config) -> Vec<(String, String, std::net::IpAddr)> {
    let mut out = Vec::new();
    for (backend, path, _) in sources(cfg) {
        let Some(rows) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| state_file::parse(&t).ok())
        else {
            continue;
        };
        out.extend(
            rows.into_iter()
                .filter(|r| r.be_name == backend)
                .filter_map(|r| Some((backend.clone(), r.srv_name, r.addr.parse().ok()?))),
        );
    }
    out
}

/// Reads the state files and applies them to `table`; returns the messages that give the
/// shards the same states, and the warnings to print (HAProxy's words).
pub fn restore(
    cfg: &Config,
    table: &mut ServerTable,
    topo: &Topology,
) -> (Vec<ControlMsg>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut files: Vec<(PathBuf, Option<Vec<state_file::StateRow>>)> = Vec::new();
    let before = table.clone();
    for (backend, path, global) in sources(cfg) {
        if !files.iter().any(|(p, _)| *p == path) {
            let rows = match std::fs::read_to_string(&path) {
                Err(e) => {
                    warnings.push(format!(
                        "config: Can't open {} server state file '{}': {}",
                        if global { "global" } else { "local" },
                        path.display(),
                        e
                    ));
                    None
                }
                Ok(text) => match state_file::parse(&text) {
                    Ok(rows) => Some(rows),
                    Err(e) => {
                        warnings.push(e.message(&path.display().to_string()));
                        None
                    }
                },
            };
            files.push((path.clone(), rows));
        }
        let Some(rows) = files
            .iter()
            .find(|(p, _)| *p == path)
            .and_then(|(_, r)| r.as_ref())
        else {
            continue;
        };
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r.be_name == backend)
            .cloned()
            .collect();
        table.restore_state(&mine);
    }
    (messages(&before, table, topo), warnings)
}

/// What changed between the configured table and the restored one, as control messages.
pub fn messages(before: &ServerTable, after: &ServerTable, topo: &Topology) -> Vec<ControlMsg> {
    let mut msgs = Vec::new();
    for (bi, (b0, b1)) in before.backends.iter().zip(&after.backends).enumerate() {
        for (si, (s0, s1)) in b0.servers.iter().zip(&b1.servers).enumerate() {
            let state = |a: u8| {
                if a & admin::MAINT != 0 {
                    AdminState::Maint
                } else if a & admin::DRAIN != 0 {
                    AdminState::Drain
                } else {
                    AdminState::Ready
                }
            };
            if state(s0.admin) != state(s1.admin) {
                msgs.push(ControlMsg::SetServerAdmin {
                    backend: bi,
                    server: si,
                    state: state(s1.admin),
                });
            }
            if s0.uweight != s1.uweight {
                msgs.push(ControlMsg::SetServerWeight {
                    backend: bi,
                    server: si,
                    weight: s1.uweight,
                });
            }
            let up = |s: &ringlb_runtime::ServerRow| {
                matches!(s.op_state, OpState::Running | OpState::Starting)
            };
            if s1.admin & admin::MAINT == 0 && up(s0) != up(s1) {
                msgs.push(ControlMsg::SetServerHealth {
                    backend: bi,
                    server: si,
                    up: up(s1),
                });
            }
            let configured = topo
                .backends
                .get(bi)
                .and_then(|b| b.servers.get(si))
                .map(|s| s.addr);
            if let (Some(ip), Some(cfg_addr)) = (s1.addr, configured) {
                let addr = SocketAddr::new(ip, s1.port);
                if addr != cfg_addr && s1.port != 0 {
                    msgs.push(ControlMsg::SetServerAddr {
                        backend: bi,
                        server: si,
                        addr,
                    });
                }
            }
        }
    }
    msgs
}
