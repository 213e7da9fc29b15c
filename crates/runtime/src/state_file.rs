//! `server-state-file` / `load-server-state-from-file`: HAProxy's saved-state format (the
//! output of `show servers state`, version 1) and the rules HAProxy 2.6 uses to apply it
//! to a freshly configured process, so drain, maintenance, weights and disabled checks set
//! at run time survive a restart. Recorded: `fixtures/state-*.txt`.

use crate::servers::{admin, chk, OpState, ServerTable};

/// One server line of a state file; fields are the version-1 columns of the same names
/// (`srv_fqdn`, `srvrecord`, `srv_use_ssl` and the check/agent addresses are not restored
/// by HAProxy 2.6 for literal-address servers and are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub be_id: u32,
    pub be_name: String,
    pub srv_id: u32,
    pub srv_name: String,
    /// Address as saved (`-` when none).
    pub addr: String,
    pub op_state: u8,
    pub admin: u8,
    pub uweight: u32,
    pub iweight: u32,
    pub secs_since_change: u64,
    pub check_status: u8,
    pub check_result: u8,
    pub check_health: u32,
    pub check_state: u16,
    pub agent_state: u16,
    pub bk_forced_id: bool,
    pub srv_forced_id: bool,
    pub port: u16,
}

/// Why a state file was refused as a whole (HAProxy then applies nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateFileError {
    /// First line is not a supported version (only `1` exists).
    Version(String),
    /// A line that does not have the 25 fields of version 1, or a bad number (numbered
    /// from the line after the version line, as HAProxy reports it).
    Corrupted { line: usize },
}

impl StateFileError {
    /// HAProxy's warning, for a global state file at `path`.
    pub fn message(&self, path: &str) -> String {
        match self {
            StateFileError::Version(v) => {
                format!("config: Can't get version of the global server state file '{path}' (got '{v}').")
            }
            StateFileError::Corrupted { line } => {
                format!("config: corrupted global server state file '{path}' at line {line}.")
            }
        }
    }
}

const FIELDS: usize = 25;

fn num<T: std::str::FromStr>(s: &str, line: usize) -> Result<T, StateFileError> {
    s.parse().map_err(|_| StateFileError::Corrupted { line })
}

/// Parses a whole state file. Comment and empty lines are skipped.
pub fn parse(text: &str) -> Result<Vec<StateRow>, StateFileError> {
    let mut lines = text.lines().enumerate();
    let version = lines.next().map(|(_, l)| l.trim()).unwrap_or("");
    if version != "1" {
        return Err(StateFileError::Version(version.to_string()));
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        // HAProxy counts lines from the one after the version line.
        let n = i;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != FIELDS {
            return Err(StateFileError::Corrupted { line: n });
        }
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        rows.push(StateRow {
            be_id: num(get(0), n)?,
            be_name: get(1).into(),
            srv_id: num(get(2), n)?,
            srv_name: get(3).into(),
            addr: get(4).into(),
            op_state: num(get(5), n)?,
            admin: num(get(6), n)?,
            uweight: num(get(7), n)?,
            iweight: num(get(8), n)?,
            secs_since_change: num(get(9), n)?,
            check_status: num(get(10), n)?,
            check_result: num(get(11), n)?,
            check_health: num(get(12), n)?,
            check_state: num(get(13), n)?,
            agent_state: num(get(14), n)?,
            bk_forced_id: get(15) == "1",
            srv_forced_id: get(16) == "1",
            port: num(get(18), n)?,
        });
    }
    Ok(rows)
}

impl ServerTable {
    /// Applies saved rows at start-up as HAProxy 2.6 does; rows naming a backend or server
    /// that no longer exists are ignored. Returns how many servers were restored.
    ///
    /// Rules: the configuration wins when it changed (`disabled` added or removed, initial
    /// weight changed); otherwise forced maintenance, drain, the user weight, disabled
    /// health/agent checks, the operational state, the port and the last-change age come
    /// back. A literal address in the configuration wins over the saved one (HAProxy only
    /// reuses saved addresses for servers named by a host name).
    pub fn restore_state(&mut self, rows: &[StateRow]) -> usize {
        let mut restored = 0;
        for row in rows {
            let Some(be) = self.backends.iter_mut().find(|b| b.name == row.be_name) else {
                continue;
            };
            if row.bk_forced_id && be.forced_id && be.id != row.be_id {
                continue;
            }
            let Some(s) = be.servers.iter_mut().find(|s| s.name == row.srv_name) else {
                continue;
            };
            restored += 1;
            match row.op_state {
                0 => {
                    s.check.health = 0;
                    s.agent.health = 0;
                    s.op_state = OpState::Stopped;
                }
                1 => s.op_state = OpState::Starting,
                3 => s.op_state = OpState::Stopping,
                _ => {
                    s.check.health = s.check.rise + s.check.fall - 1;
                    s.agent.health = s.agent.rise + s.agent.fall - 1;
                    s.op_state = OpState::Running;
                }
            }
            let cfg_maint = s.admin & admin::CMAINT != 0;
            let (maint, ready) = if (row.admin & admin::CMAINT != 0) != cfg_maint {
                (cfg_maint, !cfg_maint)
            } else {
                (
                    row.admin & admin::FMAINT != 0 && !cfg_maint,
                    row.admin & admin::FMAINT == 0 && cfg_maint,
                )
            };
            if maint {
                s.admin = (s.admin | admin::FMAINT) & !admin::FDRAIN;
            } else if ready {
                s.admin &= !(admin::FMAINT | admin::FDRAIN | admin::CMAINT);
            }
            if s.admin & admin::MAINT != 0 {
                s.op_state = OpState::Stopped;
                s.check.health = 0;
            }
            if s.admin & admin::FMAINT == 0
                && row.admin & admin::FDRAIN != 0
                && (row.iweight > 0 || s.iweight == 0)
            {
                s.admin |= admin::FDRAIN;
            }
            s.secs_since_change = row.secs_since_change;
            s.check.status = row.check_status;
            s.check.result = row.check_result;
            let disabled = |saved: u16| saved & chk::CONFIGURED != 0 && saved & chk::ENABLED == 0;
            if s.check.configured() && disabled(row.check_state) {
                s.check.state &= !chk::ENABLED;
            }
            if s.agent.configured() && disabled(row.agent_state) {
                s.agent.state &= !chk::ENABLED;
            }
            if row.iweight == s.iweight {
                s.uweight = row.uweight;
            }
            if s.addr.is_none() {
                s.addr = row.addr.parse().ok();
            }
            if row.port != 0 {
                s.port = row.port;
            }
        }
        restored
    }
}
