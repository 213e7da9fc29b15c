//! The control shard's view of backends, servers and frontends as the runtime socket needs
//! it, and the outputs built from it alone: `show servers state` (format version 1),
//! `show servers conn`, `show backend` and `get weight`, byte for byte as HAProxy 2.6.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::reply::Reply;

/// `srv_op_state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpState {
    /// 0: down.
    Stopped = 0,
    /// 1: slow-starting.
    Starting = 1,
    /// 2: up.
    #[default]
    Running = 2,
    /// 3: up but stopping (soft-stop / `health stopping`).
    Stopping = 3,
}

/// `srv_admin_state` bits (HAProxy's `SRV_ADMF_*`).
pub mod admin {
    /// Forced maintenance (CLI/`disabled`).
    pub const FMAINT: u8 = 0x01;
    /// Inherited maintenance (tracked server).
    pub const IMAINT: u8 = 0x02;
    /// Maintenance from the configuration (`disabled`).
    pub const CMAINT: u8 = 0x04;
    /// Forced drain (CLI `state drain`).
    pub const FDRAIN: u8 = 0x08;
    /// Inherited drain.
    pub const IDRAIN: u8 = 0x10;
    /// Maintenance because DNS resolution failed.
    pub const RMAINT: u8 = 0x20;
    /// Any maintenance (CMAINT only records that the config said `disabled`).
    pub const MAINT: u8 = FMAINT | IMAINT | RMAINT;
    /// Any drain.
    pub const DRAIN: u8 = FDRAIN | IDRAIN;
}

/// `srv_check_state` / `srv_agent_state` bits (HAProxy's `CHK_ST_*`).
pub mod chk {
    /// A check is running right now.
    pub const INPROGRESS: u16 = 0x0001;
    /// Configured (`check` / `agent-check`).
    pub const CONFIGURED: u16 = 0x0002;
    /// Enabled (cleared by `disable health|agent`).
    pub const ENABLED: u16 = 0x0004;
    /// Paused (server in maintenance).
    pub const PAUSED: u16 = 0x0008;
    /// This is the agent check.
    pub const AGENT: u16 = 0x0010;
}

/// One check (health or agent) of a server, as the health driver keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckRow {
    /// `CHK_ST_*` bits.
    pub state: u16,
    /// `HCHK_STATUS_*` code of the last result (1 = INI before the first check).
    pub status: u8,
    /// `CHK_RES_*` of the last result.
    pub result: u8,
    /// Health counter: 0..rise-1 down, rise..rise+fall-1 up.
    pub health: u32,
    /// `rise`.
    pub rise: u32,
    /// `fall`.
    pub fall: u32,
    /// Explicit check port (0: the server's).
    pub port: u16,
    /// Explicit check address (`addr`), printed as `-` when unset.
    pub addr: Option<String>,
}

impl CheckRow {
    /// Check configured and enabled.
    pub fn enabled(&self) -> bool {
        self.state & chk::ENABLED != 0
    }
    /// Check configured.
    pub fn configured(&self) -> bool {
        self.state & chk::CONFIGURED != 0
    }
}

/// Connection-pool columns of `show servers conn` (engine counters summed by the control shard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRow {
    /// `pool-purge-delay` in ms.
    pub purge_delay_ms: u32,
    /// Connections in use now.
    pub used_cur: u32,
    /// Max in use.
    pub used_max: u32,
    /// Estimated connections needed.
    pub need_est: u32,
    /// Idle connections not safe to reuse for a first request.
    pub unsafe_nb: u32,
    /// Idle connections safe to reuse.
    pub safe_nb: u32,
    /// `pool-max-conn` (-1 unlimited).
    pub idle_lim: i64,
    /// Idle connections now.
    pub idle_cur: u32,
    /// Idle connections per shard (one column per worker).
    pub idle_per_thread: Vec<u32>,
}

impl Default for ConnRow {
    fn default() -> Self {
        ConnRow {
            purge_delay_ms: 5000,
            used_cur: 0,
            used_max: 0,
            need_est: 0,
            unsafe_nb: 0,
            safe_nb: 0,
            idle_lim: -1,
            idle_cur: 0,
            idle_per_thread: Vec::new(),
        }
    }
}

/// One server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    /// `srv_id` (`id` keyword or position).
    pub id: u32,
    /// Name.
    pub name: String,
    /// Address (`None`: unresolved, printed `-`).
    pub addr: Option<IpAddr>,
    /// Port (0: none).
    pub port: u16,
    /// Operational state.
    pub op_state: OpState,
    /// [`admin`] bits.
    pub admin: u8,
    /// Current user weight (`set weight`).
    pub uweight: u32,
    /// Initial (configured) weight.
    pub iweight: u32,
    /// Seconds since the last state change (`now` minus last change; passed in).
    pub secs_since_change: u64,
    /// Health check.
    pub check: CheckRow,
    /// Agent check.
    pub agent: CheckRow,
    /// `id` was set in the config.
    pub forced_id: bool,
    /// `server ... fqdn`.
    pub fqdn: Option<String>,
    /// SRV record name.
    pub srvrecord: Option<String>,
    /// `ssl` on the server line.
    pub use_ssl: bool,
    /// `maxconn` (0: none).
    pub maxconn: u32,
    /// Added with `add server` (only those can be deleted).
    pub dynamic: bool,
    /// Tracks another server's health (`track`): health cannot be set.
    pub tracking: bool,
    /// Connections attached (a server with some cannot be deleted).
    pub cur_conns: u32,
    /// Pool columns.
    pub conn: ConnRow,
}

impl ServerRow {
    /// A server as a plain config line makes it: up, weight `weight`, no checks.
    pub fn new(id: u32, name: &str, addr: Option<IpAddr>, port: u16, weight: u32) -> Self {
        ServerRow {
            id,
            name: name.into(),
            addr,
            port,
            op_state: OpState::Running,
            admin: 0,
            uweight: weight,
            iweight: weight,
            secs_since_change: 0,
            check: CheckRow {
                status: 1,
                rise: 2,
                fall: 3,
                health: 2,
                ..CheckRow::default()
            },
            agent: CheckRow {
                status: 1,
                rise: 1,
                fall: 1,
                ..CheckRow::default()
            },
            forced_id: false,
            fqdn: None,
            srvrecord: None,
            use_ssl: false,
            maxconn: 0,
            dynamic: false,
            tracking: false,
            cur_conns: 0,
            conn: ConnRow::default(),
        }
    }
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRow {
    /// `be_id`.
    pub id: u32,
    /// Name.
    pub name: String,
    /// `id` was set in the config.
    pub forced_id: bool,
    /// The algorithm honours weights changes (HAProxy's `BE_LBA_PROP_WGHT`); static ones
    /// only accept 0% and 100%.
    pub dynamic_weights: bool,
    /// Servers in config order.
    pub servers: Vec<ServerRow>,
}

/// Listening state of a frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendState {
    /// Accepting.
    Ready,
    /// `disable frontend`: listeners paused.
    Paused,
    /// `shutdown frontend`: stopped for good.
    Stopped,
}

/// One frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendRow {
    /// Name.
    pub name: String,
    /// State.
    pub state: FrontendState,
    /// `maxconn`.
    pub maxconn: u32,
}

/// Everything the server-related commands read: what the control shard owns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerTable {
    /// Backends in config order.
    pub backends: Vec<BackendRow>,
    /// Frontends in config order.
    pub frontends: Vec<FrontendRow>,
    /// Number of worker shards (columns of `idle_per_thr[N]`).
    pub threads: usize,
    /// Upper bound of `set maxconn global` (HAProxy's hard maxconn).
    pub hard_maxconn: u32,
}

/// `#<id>` or a name.
fn matches_name(key: &str, name: &str, id: u32) -> bool {
    match key.strip_prefix('#') {
        Some(n) => n.parse::<u32>().ok() == Some(id),
        None => key == name,
    }
}

impl ServerTable {
    /// Backend by name or `#id`.
    pub fn backend(&self, key: &str) -> Option<&BackendRow> {
        self.backends
            .iter()
            .find(|b| matches_name(key, &b.name, b.id))
    }

    /// Index of backend and server by name or `#id`: `Err(true)` no such backend,
    /// `Err(false)` no such server.
    pub fn find(&self, backend: &str, server: &str) -> Result<(usize, usize), bool> {
        let bi = self
            .backends
            .iter()
            .position(|b| matches_name(backend, &b.name, b.id))
            .ok_or(true)?;
        let si = self
            .backends
            .get(bi)
            .and_then(|b| {
                b.servers
                    .iter()
                    .position(|s| matches_name(server, &s.name, s.id))
            })
            .ok_or(false)?;
        Ok((bi, si))
    }

    /// Server by indexes from [`ServerTable::find`].
    pub fn server(&self, bi: usize, si: usize) -> Option<&ServerRow> {
        self.backends.get(bi)?.servers.get(si)
    }

    fn server_mut(&mut self, backend: &str, server: &str) -> Option<&mut ServerRow> {
        self.backends
            .iter_mut()
            .find(|b| b.name == backend)?
            .servers
            .iter_mut()
            .find(|s| s.name == server)
    }

    /// Frontend by name.
    pub fn frontend(&self, name: &str) -> Option<&FrontendRow> {
        self.frontends.iter().find(|f| f.name == name)
    }
}

/// Header of `show servers state`, format version 1.
pub const SERVERS_STATE_HEADER: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n";

fn dash(s: Option<&str>) -> &str {
    s.filter(|s| !s.is_empty()).unwrap_or("-")
}

fn write_state_row(out: &mut String, be: &BackendRow, s: &ServerRow) {
    let addr = s.addr.map_or_else(|| "-".to_string(), |a| a.to_string());
    let _ = writeln!(
        out,
        "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
        be.id,
        be.name,
        s.id,
        s.name,
        addr,
        s.op_state as u8,
        s.admin,
        s.uweight,
        s.iweight,
        s.secs_since_change,
        s.check.status,
        s.check.result,
        s.check.health,
        s.check.state,
        s.agent.state,
        u8::from(be.forced_id),
        u8::from(s.forced_id),
        dash(s.fqdn.as_deref()),
        s.port,
        dash(s.srvrecord.as_deref()),
        u8::from(s.use_ssl),
        s.check.port,
        dash(s.check.addr.as_deref()),
        dash(s.agent.addr.as_deref()),
        s.agent.port,
    );
}

fn selected<'a>(
    table: &'a ServerTable,
    backend: Option<&str>,
) -> Result<Vec<&'a BackendRow>, Reply> {
    match backend {
        None => Ok(table.backends.iter().collect()),
        Some(name) => table
            .backend(name)
            .map(|b| vec![b])
            .ok_or_else(|| Reply::err("Can't find backend.\n")),
    }
}

/// `show servers state [<backend>]`.
pub fn show_servers_state(table: &ServerTable, backend: Option<&str>) -> Reply {
    let bes = match selected(table, backend) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let mut out = String::from(SERVERS_STATE_HEADER);
    for be in bes {
        for s in &be.servers {
            write_state_row(&mut out, be, s);
        }
    }
    Reply::raw(out)
}

/// `show servers conn [<backend>]`.
pub fn show_servers_conn(table: &ServerTable, backend: Option<&str>) -> Reply {
    let bes = match selected(table, backend) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let mut out = format!(
        "# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[{}]\n",
        table.threads
    );
    for be in bes {
        for s in &be.servers {
            let c = &s.conn;
            let addr = s.addr.map_or_else(|| "-".to_string(), |a| a.to_string());
            let _ = write!(
                out,
                "{}/{} {}/{} {} {} - {} {} {} {} {} {} {} {}",
                be.name,
                s.name,
                be.id,
                s.id,
                addr,
                s.port,
                c.purge_delay_ms,
                c.used_cur,
                c.used_max,
                c.need_est,
                c.unsafe_nb,
                c.safe_nb,
                c.idle_lim,
                c.idle_cur
            );
            for t in 0..table.threads {
                let _ = write!(out, " {}", c.idle_per_thread.get(t).copied().unwrap_or(0));
            }
            out.push('\n');
        }
    }
    Reply::raw(out)
}

/// `show backend`.
pub fn show_backend(table: &ServerTable) -> Reply {
    let mut out = String::from("# name\n");
    for be in &table.backends {
        out.push_str(&be.name);
        out.push('\n');
    }
    Reply::raw(out)
}

/// `get weight` output for a server.
pub fn weight_line(s: &ServerRow) -> Reply {
    Reply::raw(format!("{} (initial {})\n", s.uweight, s.iweight))
}

/// A change the control shard applies to its table and broadcasts to every worker shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerChange {
    /// Forced admin state: `Ready` clears FMAINT|FDRAIN, `Drain` sets FDRAIN and clears
    /// FMAINT, `Maint` sets FMAINT and clears FDRAIN.
    Admin {
        backend: String,
        server: String,
        state: crate::command::AdminState,
    },
    /// New user weight (already computed from a percentage and bounded to 0..=256).
    Weight {
        backend: String,
        server: String,
        weight: u32,
    },
    /// Health forced from the CLI: the driver sets `health` and the operational state.
    Health {
        backend: String,
        server: String,
        op_state: OpState,
        health: u32,
    },
    /// Agent forced up/down: agent health and the operational state.
    Agent {
        backend: String,
        server: String,
        up: bool,
        health: u32,
    },
    /// Health or agent check enabled/disabled.
    CheckEnabled {
        backend: String,
        server: String,
        agent: bool,
        enabled: bool,
    },
    /// Check port.
    CheckPort {
        backend: String,
        server: String,
        port: u16,
    },
    /// Address and/or port.
    Addr {
        backend: String,
        server: String,
        addr: IpAddr,
        port: u16,
    },
    /// Server maxconn.
    Maxconn {
        backend: String,
        server: String,
        maxconn: u32,
    },
    /// New dynamic server; `options` are config-language server keywords, already
    /// validated by the control shard's config parser before the change is emitted.
    Add {
        backend: String,
        server: String,
        id: u32,
        addr: Option<IpAddr>,
        port: u16,
        options: Vec<String>,
    },
    /// Dynamic server removed.
    Del { backend: String, server: String },
    /// Frontend maxconn.
    FrontendMaxconn { frontend: String, maxconn: u32 },
    /// Frontend listening state (`disable`/`enable`/`shutdown frontend`).
    FrontendState {
        frontend: String,
        state: FrontendState,
    },
    /// Process maxconn (`None`: back to the hard limit).
    GlobalMaxconn { maxconn: Option<u32> },
    /// Process rate limit (compression in kB/s).
    RateLimit {
        what: crate::command::RateLimit,
        value: u32,
    },
}

impl ServerTable {
    /// Applies a change the way HAProxy updates the fields `show servers state` prints
    /// (the reference model; the health driver may refine op states from its own state).
    pub fn apply_change(&mut self, change: &ServerChange) {
        use crate::command::AdminState;
        match change {
            ServerChange::Admin {
                backend,
                server,
                state,
            } => {
                if let Some(s) = self.server_mut(backend, server) {
                    let was_maint = s.admin & admin::MAINT != 0;
                    match state {
                        AdminState::Ready => s.admin &= !(admin::FMAINT | admin::FDRAIN),
                        AdminState::Drain => {
                            s.admin = (s.admin | admin::FDRAIN) & !admin::FMAINT;
                        }
                        AdminState::Maint => {
                            s.admin = (s.admin | admin::FMAINT) & !admin::FDRAIN;
                        }
                    }
                    let is_maint = s.admin & admin::MAINT != 0;
                    if is_maint && !was_maint {
                        s.op_state = OpState::Stopped;
                        s.check.health = 0;
                        s.secs_since_change = 0;
                        // The health check pauses; the agent keeps running (its `ready`
                        // ends the maintenance), as in haproxy 2.6.
                        if s.check.configured() {
                            s.check.state |= chk::PAUSED;
                        }
                    } else if was_maint && !is_maint {
                        // Back up at once; a checked server restarts at `rise` (up, but one
                        // failed check away from down), as HAProxy does.
                        s.op_state = OpState::Running;
                        s.secs_since_change = 0;
                        for c in [&mut s.check, &mut s.agent] {
                            c.state &= !chk::PAUSED;
                            if c.enabled() {
                                c.health = c.rise;
                            }
                        }
                    }
                }
            }
            ServerChange::Weight {
                backend,
                server,
                weight,
            } => {
                if let Some(s) = self.server_mut(backend, server) {
                    s.uweight = *weight;
                }
            }
            ServerChange::Health {
                backend,
                server,
                op_state,
                health,
            } => {
                if let Some(s) = self.server_mut(backend, server) {
                    s.check.health = *health;
                    if s.admin & admin::MAINT == 0 {
                        s.op_state = *op_state;
                    }
                }
            }
            ServerChange::Agent {
                backend,
                server,
                up,
                health,
            } => {
                if let Some(s) = self.server_mut(backend, server) {
                    s.agent.health = *health;
                    if s.admin & admin::MAINT == 0 {
                        s.op_state = if *up {
                            OpState::Running
                        } else {
                            OpState::Stopped
                        };
                    }
                }
            }
            ServerChange::CheckEnabled {
                backend,
                server,
                agent,
                enabled,
            } => {
                if let Some(s) = self.server_mut(backend, server) {
                    let c = if *agent { &mut s.agent } else { &mut s.check };
                    if *enabled {
                        c.state |= chk::ENABLED;
                    } else {
                        c.state &= !chk::ENABLED;
                    }
                }
            }
            ServerChange::CheckPort {
                backend,
                server,
                port,
            } => {
                if let Some(s) = self.server_mut(backend, server) {
                    s.check.port = *port;
                }
            }
            ServerChange::Addr {
                backend,
                server,
                addr,
                port,
            } => {
                if let Some(s) = self.server_mut(backend, server) {
                    s.addr = Some(*addr);
                    s.port = *port;
                }
            }
            ServerChange::Maxconn {
                backend,
                server,
                maxconn,
            } => {
                if let Some(s) = self.server_mut(backend, server) {
                    s.maxconn = *maxconn;
                }
            }
            ServerChange::Add {
                backend,
                server,
                id,
                addr,
                port,
                options,
            } => {
                if let Some(be) = self.backends.iter_mut().find(|b| b.name == *backend) {
                    let weight = option_value(options, "weight").unwrap_or(1);
                    let mut s = ServerRow::new(*id, server, *addr, *port, weight);
                    s.admin = admin::FMAINT;
                    s.op_state = OpState::Stopped;
                    s.check.health = 0;
                    s.dynamic = true;
                    s.conn.idle_per_thread = vec![0; self.threads];
                    be.servers.push(s);
                }
            }
            ServerChange::Del { backend, server } => {
                if let Some(be) = self.backends.iter_mut().find(|b| b.name == *backend) {
                    be.servers.retain(|s| s.name != *server);
                }
            }
            ServerChange::FrontendMaxconn { frontend, maxconn } => {
                if let Some(f) = self.frontends.iter_mut().find(|f| f.name == *frontend) {
                    f.maxconn = *maxconn;
                }
            }
            ServerChange::FrontendState { frontend, state } => {
                if let Some(f) = self.frontends.iter_mut().find(|f| f.name == *frontend) {
                    f.state = *state;
                }
            }
            ServerChange::GlobalMaxconn { .. } | ServerChange::RateLimit { .. } => {}
        }
    }
}

/// Value of `<name> <u32>` in a server option list.
fn option_value(options: &[String], name: &str) -> Option<u32> {
    let i = options.iter().position(|o| o == name)?;
    options.get(i + 1)?.parse().ok()
}
