//! Running the commands a [`CliSession`] hands over, on the control shard.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlb_runtime::servers::admin;
use ringlb_runtime::{
    apply, AdminState as CliAdmin, CliSession, OpState, Owner, Pending, Reply, Request,
    ServerChange, ServerTable,
};
use ringlb_shard::snapshot::{self, ProcessFacts};
use ringlb_shard::state::{RunState, ShardState};
use ringlb_shard::{AdminState, ControlMsg, ShardCounters, StatsBoard, Topology};
use ringlb_stats::Snapshot;
use ringlb_uring::rt::channel::Sender;

use crate::checks::ChecksHandle;

/// How long `show stat` / `show info` wait for every shard's counters.
const COLLECT_WAIT: Duration = Duration::from_millis(500);

/// Sends changes to every worker shard and keeps a mirror of their server states (admin,
/// health, weight), so the control shard can build snapshots without asking a shard.
pub struct Bus {
    shards: Vec<Sender<ControlMsg>>,
    /// Replaced by an in-process reload (`replace_mirror`).
    mirror: RefCell<std::rc::Rc<ShardState>>,
}

impl Bus {
    pub fn new(shards: Vec<Sender<ControlMsg>>, mirror: ShardState) -> Bus {
        Bus {
            shards,
            mirror: RefCell::new(std::rc::Rc::new(mirror)),
        }
    }

    /// Broadcasts `msg` (in order with every other message of the control shard).
    pub async fn send(&self, msg: ControlMsg) {
        // The mirror has no counters or stick tables of its own.
        if msg.for_mirror() {
            self.mirror.borrow().apply(&msg);
        }
        for shard in &self.shards {
            // A shard that already exited has dropped its receiver: nothing to do.
            let _ = shard.send(msg.clone()).await;
        }
    }

    /// The shards' server states as last broadcast.
    pub fn mirror(&self) -> std::rc::Rc<ShardState> {
        self.mirror.borrow().clone()
    }

    /// In-process reload: the mirror of the new epoch.
    pub fn replace_mirror(&self, mirror: ShardState) {
        *self.mirror.borrow_mut() = std::rc::Rc::new(mirror);
    }

    /// How many worker shards the messages go to.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

/// What the runtime-socket connections share on the control shard.
pub struct Ctx {
    /// The configuration in force (an in-process reload replaces it).
    pub topo: RefCell<Arc<Topology>>,
    pub bus: std::rc::Rc<Bus>,
    pub board: Arc<StatsBoard>,
    pub checks: Option<ChecksHandle>,
    pub table: RefCell<ServerTable>,
    pub timeout: Duration,
    pub maxconn: u32,
    pub bufsize: usize,
    /// Connections being served, all sockets together (`stats maxconn`).
    pub active: Cell<u32>,
    pub started: Instant,
    /// Frontends whose listeners `show stat` lists (`option socket-stats`).
    pub socket_stats: RefCell<Vec<String>>,
    /// Proxies with a `stick-table` line.
    pub stick_tables: Vec<String>,
    /// Map and ACL files (`patterns.rs`) and the version of the last change sent to the shards.
    pub patterns: RefCell<ringlb_runtime::PatRefs>,
    pub pattern_version: Cell<u64>,
    /// The certificate files of the TLS binds and the open `set ssl cert` transaction.
    pub certs: RefCell<ringlb_tls::hot::CertStore>,
    /// How to build a new configuration for `reload` (`None`: in-process reload is off).
    pub reload: Option<crate::reload::Reloading>,
    /// The `resolvers` sections at work (`show resolvers`); `None`: none configured.
    pub dns: RefCell<Option<std::rc::Rc<crate::dns::Dns>>>,
    /// The running `peers` sections (`show peers`, ADR 0007).
    pub peers: RefCell<Vec<crate::peers::PeersHandle>>,
}

impl Ctx {
    /// The configuration in force now.
    pub fn topo(&self) -> Arc<Topology> {
        self.topo.borrow().clone()
    }
}

/// Runs `reqs` in order, appending what they print to `out`; true when the connection closes.
pub async fn handle(
    ctx: &Ctx,
    sess: &CliSession,
    reqs: Vec<Request>,
    out: &mut Vec<u8>,
    follow: &mut Option<Follow>,
) -> bool {
    let mut closing = false;
    for r in reqs {
        match r {
            Request::Reply(resp) => sess.render(&resp, out),
            Request::Run(p) => {
                if let Some(f) = start_follow(ctx, &p, out) {
                    // `show events <ring> -w`: the session streams from now on; commands
                    // after it in the same read are dropped.
                    *follow = Some(f);
                    return closing;
                }
                let reply = run(ctx, &p).await;
                sess.render(&p.respond(reply), out);
            }
            Request::Close => closing = true,
        }
    }
    closing
}

/// A session following a ring (`show events <ring> -w`): the next line to print.
#[derive(Debug)]
pub struct Follow {
    pub ring: std::sync::Arc<ringlb_shard::topology::LogRing>,
    pub seq: u64,
}

impl Follow {
    /// Appends the lines that arrived since the last call, each ended by `\n`.
    pub fn poll(&mut self, out: &mut Vec<u8>) {
        let mut lines = Vec::new();
        self.seq = self
            .ring
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines_from(self.seq, &mut lines);
        for l in lines {
            out.extend_from_slice(&l);
            out.push(b'\n');
        }
    }
}

/// `show events <ring> -w [-n]`: prints the ring's lines (none with `-n`) and returns where
/// to follow it from. `None` for every other command (and for an unknown ring).
fn start_follow(ctx: &Ctx, p: &Pending, out: &mut Vec<u8>) -> Option<Follow> {
    let ringlb_runtime::Command::ShowEvents {
        sink: Some(name),
        wait: true,
        new_only,
    } = &p.command
    else {
        return None;
    };
    let ring = ctx.topo().rings.iter().find(|r| r.name == *name)?.clone();
    let seq = if *new_only {
        ring.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end_seq()
    } else {
        0
    };
    let mut f = Follow { ring, seq };
    f.poll(out);
    Some(f)
}

async fn run(ctx: &Ctx, p: &Pending) -> Reply {
    match p.command.owner() {
        Owner::Servers => servers(ctx, p).await,
        Owner::Stats => {
            let snap = stats_snapshot(ctx).await;
            let args = p.args();
            let text = match p.command {
                ringlb_runtime::Command::ShowInfo { .. } => {
                    ringlb_stats::cli_show_info(&snap, &args)
                }
                _ => ringlb_stats::cli_show_stat(&snap, &args),
            };
            Reply::raw_with_blank_line(text)
        }
        Owner::StickTables if ctx.stick_tables.is_empty() => no_tables(&p.command),
        Owner::StickTables => match p.command {
            ringlb_runtime::Command::ShowTable { .. } => show_table(ctx, p).await,
            ringlb_runtime::Command::ClearTable { .. } => super::tables::clear_table(ctx, p).await,
            ringlb_runtime::Command::SetTable { .. } => super::tables::set_table(ctx, p).await,
            _ => not_supported(p),
        },
        Owner::Patterns => super::patterns::run(ctx, p).await,
        Owner::Events => show_events(ctx, p),
        Owner::Tls => super::tls::run(ctx, p).await,
        Owner::Process => crate::reload::command(ctx).await,
        Owner::Peers => show_peers(ctx, &p.command),
        Owner::Engine => super::engine::run(ctx, p).await,
        Owner::Resolvers => show_resolvers(ctx, p),
    }
}

/// `show resolvers [<id>]`: haproxy 2.6's per-nameserver counters.
fn show_resolvers(ctx: &Ctx, p: &Pending) -> Reply {
    let ringlb_runtime::Command::ShowResolvers { section } = &p.command else {
        return not_supported(p);
    };
    let counters = ctx
        .dns
        .borrow()
        .as_ref()
        .map(|d| d.counters())
        .unwrap_or_default();
    match crate::dns::render(&counters, section.as_deref()) {
        Some(text) => Reply::raw_with_blank_line(text),
        None => Reply::err("Can't find that resolvers section\n"),
    }
}

/// `show events [<ring>]`: the list of sinks as haproxy 2.6 prints it (stdout, stderr, its
/// internal `buf0`, then the `ring` sections), or one ring's lines oldest first.
fn show_events(ctx: &Ctx, p: &Pending) -> Reply {
    let ringlb_runtime::Command::ShowEvents { sink, new_only, .. } = &p.command else {
        return not_supported(p);
    };
    let topo = ctx.topo();
    let rings = &topo.rings;
    match sink {
        None => {
            let mut out = String::from(
                "Supported events sinks are listed below. Add -w(wait), -n(new). Any key to stop\n\
                 \x20   stdout     : type=fd, 0 dropped, standard output (fd#1)\n\
                 \x20   stderr     : type=fd, 0 dropped, standard output (fd#2)\n",
            );
            for r in rings.iter() {
                out.push_str(&format!(
                    "    {:<10} : type=buffer, {} dropped, {}\n",
                    r.name,
                    r.dropped(),
                    r.description
                ));
            }
            out.push('\n');
            Reply::raw_with_blank_line(out)
        }
        Some(name) => match rings.iter().find(|r| r.name == *name) {
            // `-n` alone: nothing is new yet.
            Some(_) if *new_only => Reply::raw_with_blank_line("\n"),
            Some(r) => Reply::raw_with_blank_line(r.show()),
            // haproxy's message has no newline of its own: the prompt ends it.
            None => Reply::err("No such event sink"),
        },
    }
}

/// `show table [<name> [key K | data.X op V ...]]`: every shard sends the entries it owns
/// (each key has one owner shard, ADR 0003); the control shard merges and prints them as
/// haproxy 2.6 does. Without a name, one header line per table, last declared first.
async fn show_table(ctx: &Ctx, p: &Pending) -> Reply {
    let ringlb_runtime::Command::ShowTable { table, .. } = &p.command else {
        return not_supported(p);
    };
    let configs: Vec<ringlb_stick::TableConfig> = ctx
        .topo()
        .stick_tables
        .iter()
        .filter_map(|(name, t)| ringlb_stick::TableConfig::from_model(name, t).ok())
        .collect();
    let args = p.args();
    let mut out = String::new();
    match table {
        None => {
            for cfg in configs.iter().rev() {
                let (_, used) = collect_table(ctx, &cfg.name, ringlb_stick::Query::default()).await;
                // Header only: haproxy lists tables without their entries.
                ringlb_stick::runtime::format_show(cfg, used, Vec::new(), &mut out);
            }
        }
        Some(name) => {
            let Some(cfg) = configs.iter().find(|c| &c.name == name) else {
                return Reply::err(ringlb_stick::runtime::NO_SUCH_TABLE);
            };
            // The words after the table name (`args` starts with it).
            let rest: Vec<&str> = args.iter().skip(1).copied().collect();
            let query = match ringlb_stick::Query::parse(cfg, &rest) {
                Ok(q) => q,
                Err(e) if e.is_empty() => return Reply::empty(),
                Err(e) => return Reply::err(e),
            };
            let by_key = query.key.is_some();
            let (rows, used) = collect_table(ctx, name, query).await;
            if by_key && rows.is_empty() {
                return Reply::empty(); // haproxy answers nothing for an absent key
            }
            if p.level < ringlb_runtime::Level::Operator {
                ringlb_stick::runtime::format_show(cfg, used, Vec::new(), &mut out);
                out.push_str("# contents not dumped due to insufficient privileges\n");
                return Reply::raw_with_blank_line(format!("{out}\n"));
            }
            ringlb_stick::runtime::format_show(cfg, used, rows, &mut out);
        }
    }
    Reply::raw_with_blank_line(format!("{out}\n"))
}

/// Asks every shard for its entries of `table` matching `query` and waits (bounded) for them.
async fn collect_table(
    ctx: &Ctx,
    table: &str,
    query: ringlb_stick::Query,
) -> (Vec<ringlb_stick::EntryView>, usize) {
    let seq = ctx.board.next_seq();
    ctx.bus
        .send(ControlMsg::PublishStickTable {
            seq,
            table: table.to_string(),
            query,
        })
        .await;
    let deadline = Instant::now() + COLLECT_WAIT;
    while Instant::now() < deadline {
        if let Some(r) = ctx.board.try_collect_stick(seq) {
            return r;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    (Vec::new(), 0)
}

/// `show peers [dict|-] [<section>]`: every running section, or the one named (haproxy
/// prints nothing for an unknown name).
fn show_peers(ctx: &Ctx, cmd: &ringlb_runtime::Command) -> Reply {
    let ringlb_runtime::Command::ShowPeers { section } = cmd else {
        return Reply::err("Internal error.\n");
    };
    let mut out = String::new();
    for h in ctx.peers.borrow().iter() {
        if section.as_deref().is_none_or(|s| s == h.section()) {
            h.show(&mut out);
            out.push('\n');
        }
    }
    Reply::raw_with_blank_line(out)
}

/// Stick-table commands of a process without tables: what haproxy answers then.
fn no_tables(cmd: &ringlb_runtime::Command) -> Reply {
    match cmd {
        ringlb_runtime::Command::ShowTable { table: None, .. } => Reply::empty(),
        _ => Reply::err("No such table\n"),
    }
}

/// The one-line answer for a command HAProxy has and ringlb does not run yet.
fn not_supported(p: &Pending) -> Reply {
    let n = p.words.len() - p.args().len();
    let kw = p
        .words
        .iter()
        .take(n.max(1))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    Reply::err(format!("'{kw}' is not supported by ringlb yet.\n"))
}

/// Whether the engine can carry out this change now.
fn supported(c: &ServerChange) -> bool {
    matches!(
        c,
        ServerChange::Admin { .. }
            | ServerChange::Weight { .. }
            | ServerChange::Health { .. }
            | ServerChange::Agent { .. }
            | ServerChange::Maxconn { .. }
            | ServerChange::CheckEnabled { .. }
            | ServerChange::CheckPort { .. }
            | ServerChange::Addr { .. }
            | ServerChange::Add { .. }
            | ServerChange::Del { .. }
            | ServerChange::FrontendState { .. }
            | ServerChange::FrontendMaxconn { .. }
            | ServerChange::GlobalMaxconn { .. }
    ) || matches!(
        c,
        ServerChange::RateLimit { what, .. } if *what != ringlb_runtime::command::RateLimit::HttpCompression
    )
}

/// The message of a frontend or process-wide change (`None` for server changes).
fn process_msg(ctx: &Ctx, c: &ServerChange) -> Option<ControlMsg> {
    use ringlb_shard::state::{FrontendRun, GlobalLimit};
    let fe_index = |name: &str| ctx.topo().frontends.iter().position(|f| f.name == name);
    Some(match c {
        ServerChange::FrontendState { frontend, state } => ControlMsg::SetFrontendState {
            frontend: fe_index(frontend)?,
            state: match state {
                ringlb_runtime::FrontendState::Ready => FrontendRun::Ready,
                ringlb_runtime::FrontendState::Paused => FrontendRun::Paused,
                ringlb_runtime::FrontendState::Stopped => FrontendRun::Stopped,
            },
        },
        ServerChange::FrontendMaxconn { frontend, maxconn } => ControlMsg::SetFrontendMaxconn {
            frontend: fe_index(frontend)?,
            maxconn: *maxconn,
        },
        // No value (0): back to the hard limit, as haproxy.
        ServerChange::GlobalMaxconn { maxconn } => ControlMsg::SetGlobalLimit {
            limit: GlobalLimit::Maxconn,
            value: maxconn.unwrap_or(ctx.table.borrow().hard_maxconn),
        },
        ServerChange::RateLimit { what, value } => ControlMsg::SetGlobalLimit {
            limit: match what {
                ringlb_runtime::command::RateLimit::Connections => GlobalLimit::ConnRate,
                ringlb_runtime::command::RateLimit::Sessions => GlobalLimit::SessRate,
                ringlb_runtime::command::RateLimit::SslSessions => GlobalLimit::SslRate,
                ringlb_runtime::command::RateLimit::HttpCompression => return None,
            },
            value: *value,
        },
        _ => return None,
    })
}

async fn servers(ctx: &Ctx, p: &Pending) -> Reply {
    refresh(ctx);
    if matches!(
        p.command,
        ringlb_runtime::Command::ShowServersConn { .. } | ringlb_runtime::Command::DelServer { .. }
    ) {
        refresh_conns(ctx).await;
    }
    let outcome = {
        let table = ctx.table.borrow();
        apply(&table, &p.command)
    };
    let Some(outcome) = outcome else {
        return not_supported(p);
    };
    if !outcome.changes.iter().all(supported) {
        if outcome.changes.iter().any(|c| {
            matches!(
                c,
                ServerChange::RateLimit {
                    what: ringlb_runtime::command::RateLimit::HttpCompression,
                    ..
                }
            )
        }) {
            // haproxy limits its compression bandwidth; ringlb does not compress.
            return Reply::err(
                "'set rate-limit http-compression global' is not supported: ringlb does not compress responses.\n",
            );
        }
        // `set server` works for most operations: name the one that does not.
        if let [set, server, _, op, ..] = p.words.as_slice() {
            if set == "set" && server == "server" {
                return Reply::err(format!(
                    "'set server <srv> {op}' is not supported by ringlb yet.\n"
                ));
            }
        }
        return not_supported(p);
    }
    for c in &outcome.changes {
        if let Some(m) = process_msg(ctx, c) {
            ctx.table.borrow_mut().apply_change(c);
            ctx.bus.send(m).await;
            continue;
        }
        if let ServerChange::Add { .. } = c {
            if let Err(e) = super::dynamic::add(ctx, c).await {
                return e;
            }
            continue;
        }
        if let ServerChange::CheckEnabled {
            backend,
            server,
            enabled: true,
            ..
        } = c
        {
            let known = ctx
                .table
                .borrow()
                .backends
                .iter()
                .position(|x| x.name == *backend)
                .and_then(|bi| Some((bi, ctx.bus.mirror().server_index(bi, server)?)))
                .is_some_and(|(b, s)| ctx.checks.as_ref().is_some_and(|h| h.knows(b, s)));
            if !known {
                return Reply::err("this server's checks are not known to ringlb's checker.\n");
            }
        }
        // Shard indexes: deleted servers keep their slot on the shards, not in the table.
        let at = {
            let (b, s) = names(c);
            let bi = ctx.table.borrow().backends.iter().position(|x| x.name == b);
            bi.and_then(|bi| Some((bi, ctx.bus.mirror().server_index(bi, s)?)))
        };
        ctx.table.borrow_mut().apply_change(c);
        if let Some((b, s)) = at {
            push(ctx, c, b, s).await;
        }
    }
    if !outcome.changes.is_empty() {
        barrier(ctx).await;
    }
    outcome.reply
}

fn names(c: &ServerChange) -> (&str, &str) {
    match c {
        ServerChange::Admin {
            backend, server, ..
        }
        | ServerChange::Weight {
            backend, server, ..
        }
        | ServerChange::Health {
            backend, server, ..
        }
        | ServerChange::Agent {
            backend, server, ..
        }
        | ServerChange::Maxconn {
            backend, server, ..
        }
        | ServerChange::CheckEnabled {
            backend, server, ..
        }
        | ServerChange::CheckPort {
            backend, server, ..
        }
        | ServerChange::Addr {
            backend, server, ..
        }
        | ServerChange::Del { backend, server } => (backend, server),
        _ => ("", ""),
    }
}

/// Tells the shards (through the health board when it must know: logs, counts, slowstart),
/// and returns once every shard has the message queued.
async fn push(ctx: &Ctx, c: &ServerChange, b: usize, s: usize) {
    let msgs = match c {
        ServerChange::Admin { state, .. } => {
            let state = match state {
                CliAdmin::Ready => AdminState::Ready,
                CliAdmin::Drain => AdminState::Drain,
                CliAdmin::Maint => AdminState::Maint,
            };
            match ctx.checks.as_ref().filter(|h| h.knows(b, s)) {
                Some(h) => h.set_admin(b, s, state).await,
                None => vec![ControlMsg::SetServerAdmin {
                    backend: b,
                    server: s,
                    state,
                }],
            }
        }
        ServerChange::Weight { weight, .. } => {
            match ctx.checks.as_ref().filter(|h| h.knows(b, s)) {
                Some(h) => h.set_weight(b, s, *weight),
                None => vec![ControlMsg::SetServerWeight {
                    backend: b,
                    server: s,
                    weight: *weight,
                }],
            }
        }
        // `stopping`: no new traffic, but not DOWN (no check transition, no "is DOWN" line).
        ServerChange::Health {
            op_state: OpState::Stopping,
            ..
        } => vec![ControlMsg::SetServerHealth {
            backend: b,
            server: s,
            up: false,
        }],
        ServerChange::Health { op_state, .. } => {
            force(ctx, b, s, false, *op_state != OpState::Stopped)
        }
        ServerChange::Agent { up, .. } => force(ctx, b, s, true, *up),
        ServerChange::Maxconn { maxconn, .. } => vec![ControlMsg::SetServerMaxconn {
            backend: b,
            server: s,
            maxconn: *maxconn,
        }],
        ServerChange::Addr { addr, port, .. } => {
            let addr = std::net::SocketAddr::new(*addr, *port);
            if let Some(h) = &ctx.checks {
                h.set_addr(b, s, addr);
            }
            vec![ControlMsg::SetServerAddr {
                backend: b,
                server: s,
                addr,
            }]
        }
        ServerChange::Del { .. } => {
            if let Some(h) = &ctx.checks {
                h.remove_server(b, s);
            }
            vec![ControlMsg::DelServer {
                backend: b,
                server: s,
            }]
        }
        ServerChange::CheckPort { port, .. } => {
            if let Some(h) = &ctx.checks {
                h.set_check_port(b, s, *port);
            }
            Vec::new()
        }
        ServerChange::CheckEnabled { agent, enabled, .. } => {
            if let Some(h) = &ctx.checks {
                h.set_check_enabled(b, s, *agent, *enabled);
            }
            Vec::new()
        }
        _ => Vec::new(),
    };
    for m in msgs {
        ctx.bus.send(m).await;
    }
}

/// The messages of a forced health change: the board's when the server has that check,
/// otherwise the plain state.
fn force(ctx: &Ctx, b: usize, s: usize, agent: bool, up: bool) -> Vec<ControlMsg> {
    ctx.checks
        .as_ref()
        .and_then(|h| h.force_health(b, s, agent, up))
        .unwrap_or_else(|| {
            vec![ControlMsg::SetServerHealth {
                backend: b,
                server: s,
                up,
            }]
        })
}

/// Brings the table's volatile columns up to date: operational state from the shards' mirror,
/// time since the last change from the health board.
fn refresh(ctx: &Ctx) {
    let mirror = ctx.bus.mirror();
    let uptime = ctx.started.elapsed().as_secs();
    let mut table = ctx.table.borrow_mut();
    // Admin changes made elsewhere (the stats page's admin form) reach the shards without
    // passing here: the shards' state wins.
    let mut admin_changes = Vec::new();
    for (bi, be) in table.backends.iter().enumerate() {
        for row in &be.servers {
            let Some(st) = mirror
                .server_index(bi, &row.name)
                .and_then(|si| mirror.server(bi, si))
            else {
                continue;
            };
            let have = if row.admin & admin::MAINT != 0 {
                AdminState::Maint
            } else if row.admin & admin::DRAIN != 0 {
                AdminState::Drain
            } else {
                AdminState::Ready
            };
            let want = st.admin.get();
            if want != have {
                admin_changes.push(ServerChange::Admin {
                    backend: be.name.clone(),
                    server: row.name.clone(),
                    state: match want {
                        AdminState::Ready => CliAdmin::Ready,
                        AdminState::Drain => CliAdmin::Drain,
                        AdminState::Maint => CliAdmin::Maint,
                    },
                });
            }
        }
    }
    for c in &admin_changes {
        table.apply_change(c);
    }
    for (bi, be) in table.backends.iter_mut().enumerate() {
        for row in be.servers.iter_mut() {
            // The shard's index: the board knows servers by it (configured ones, then those
            // added at run time).
            let Some(si) = mirror.server_index(bi, &row.name) else {
                continue;
            };
            let known = ctx.checks.as_ref().is_some_and(|h| h.knows(bi, si));
            if let Some(st) = mirror.server(bi, si) {
                if row.admin & admin::MAINT == 0 {
                    // `stopping` (set from the CLI) is "not up" for the shards too.
                    row.op_state = match (st.up.get(), row.op_state) {
                        (true, OpState::Stopped | OpState::Stopping) => OpState::Running,
                        (true, keep) => keep,
                        (false, OpState::Stopping) => OpState::Stopping,
                        (false, _) => OpState::Stopped,
                    };
                }
            }
            // In maintenance haproxy pauses the checks: the columns keep what they were when
            // the server entered it (refreshed just before every change), health 0.
            if let Some(h) = ctx
                .checks
                .as_ref()
                .filter(|_| row.admin & admin::MAINT == 0 && known)
            {
                for (agent, c) in [(false, &mut row.check), (true, &mut row.agent)] {
                    if let Some((status, result, health)) = h.check_columns(bi, si, agent) {
                        c.status = status;
                        c.result = result;
                        c.health = health;
                    }
                }
            }
            // `CHK_ST_INPROGRESS` while a check runs (the rows persist: set or cleared at
            // each look; none runs in maintenance).
            for (agent, c) in [(false, &mut row.check), (true, &mut row.agent)] {
                use ringlb_runtime::servers::chk;
                let busy = known
                    && row.admin & admin::MAINT == 0
                    && c.state & chk::ENABLED != 0
                    && ctx
                        .checks
                        .as_ref()
                        .is_some_and(|h| h.in_progress(bi, si, agent));
                if busy {
                    c.state |= chk::INPROGRESS;
                } else {
                    c.state &= !chk::INPROGRESS;
                }
            }
            // Agent replies change the user weight on the board, not through this table.
            if let Some(w) = ctx
                .checks
                .as_ref()
                .filter(|_| known)
                .and_then(|h| h.user_weight(bi, si))
            {
                row.uweight = w;
            }
            if known {
                row.secs_since_change = ctx
                    .checks
                    .as_ref()
                    .and_then(|h| h.server_stats(bi, si))
                    .map_or(uptime, |st| st.lastchg.as_secs());
            }
        }
    }
}

/// Returns once every shard has applied the messages sent before: shards apply control
/// messages in order, so once each has answered a PublishStats sent after a change, the change
/// is in effect everywhere, as haproxy's is when it answers.
pub(crate) async fn barrier(ctx: &Ctx) {
    let _ = collect(ctx).await;
}

/// Fills the table's connection columns from every shard's pools (`show servers conn`).
async fn refresh_conns(ctx: &Ctx) {
    let seq = ctx.board.next_seq();
    ctx.bus.send(ControlMsg::PublishConns { seq }).await;
    let deadline = Instant::now() + COLLECT_WAIT;
    let per_shard = loop {
        if let Some(c) = ctx.board.try_collect_conns(seq) {
            break c;
        }
        if Instant::now() >= deadline {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    };
    let mirror = ctx.bus.mirror();
    let mut table = ctx.table.borrow_mut();
    for (bi, be) in table.backends.iter_mut().enumerate() {
        for row in be.servers.iter_mut() {
            let Some(si) = mirror.server_index(bi, &row.name) else {
                continue;
            };
            let at = |c: &ringlb_shard::counters::ConnCounts| {
                c.get(bi)
                    .and_then(|b| b.get(si))
                    .copied()
                    .unwrap_or_default()
            };
            let c = &mut row.conn;
            c.idle_per_thread = per_shard.iter().map(|sh| at(sh).1 + at(sh).2).collect();
            c.used_cur = per_shard.iter().map(|sh| at(sh).0).sum();
            c.used_max = c.used_max.max(c.used_cur);
            c.unsafe_nb = per_shard.iter().map(|sh| at(sh).1).sum();
            c.safe_nb = per_shard.iter().map(|sh| at(sh).2).sum();
            c.idle_cur = c.unsafe_nb + c.safe_nb;
            // `del server` refuses a server with connections in use or idle.
            row.cur_conns = c.used_cur + c.idle_cur;
        }
    }
}

/// Every shard's counters merged, without blocking the control executor.
async fn collect(ctx: &Ctx) -> ShardCounters {
    let seq = ctx.board.next_seq();
    ctx.bus.send(ControlMsg::PublishStats { seq }).await;
    let deadline = Instant::now() + COLLECT_WAIT;
    while Instant::now() < deadline {
        if let Some(c) = ctx.board.try_collect(seq) {
            return c;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    ctx.board
        .latest()
        .unwrap_or_else(|| ShardCounters::new(&ctx.topo()))
}

async fn stats_snapshot(ctx: &Ctx) -> Snapshot {
    let counters = collect(ctx).await;
    let mirror = ctx.bus.mirror();
    let facts = ProcessFacts {
        pid: std::process::id(),
        nbthread: mirror.nshards as u32,
        start_unix_s: ctx.board.start_unix_s,
        ulimit_n: ringlb_shard::service::open_files_limit(),
        node: ctx.topo().node.clone(),
        stopping: mirror.run.get() != RunState::Running,
    };
    let mut snap = snapshot::build(
        &ctx.topo(),
        &mirror,
        &counters,
        &ctx.board.health(),
        ctx.board.now_ms(),
        &facts,
    );
    for p in &mut snap.proxies {
        if !ctx.socket_stats.borrow().contains(&p.name) {
            p.listeners.clear();
        }
    }
    let cli = super::cli_counts();
    let topo = ctx.topo();
    let info = &mut snap.process;
    // The runtime sockets as they are (this connection counts among the jobs).
    ringlb_shard::service::fill_live(
        info,
        &topo,
        facts.nbthread,
        (cli.listeners, ctx.active.get()),
        ctx.started,
    );
    info.counters.cum_conns = info
        .counters
        .cum_conns
        .saturating_add(cli.sessions)
        .saturating_add(
            ringlb_shard::counters::CHECK_SESSIONS.load(std::sync::atomic::Ordering::Relaxed),
        );
    info.counters.cum_req = info.counters.cum_req.saturating_add(cli.sessions);
    info.counters.total_bytes_out = info.counters.total_bytes_out.saturating_add(cli.bytes_out);
    snap
}
