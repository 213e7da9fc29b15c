//! Typed runtime commands and their grammar (HAProxy 2.6's argument rules and error texts).
//!
//! Parsing is split the way HAProxy checks things, so errors come out in the same order:
//! the level (session), then the words that need no state (here: missing names, a
//! malformed `backend/server`), then the lookup of the named object (control shard), then
//! the remaining arguments. Argument errors HAProxy reports only after the lookup travel
//! inside the command as [`Deferred`] values.

use crate::reply::Reply;
use crate::table::{Kw, Level};

/// An argument HAProxy validates only after resolving the object named before it: the
/// parsed value, or the error text to print once the object was found.
pub type Deferred<T> = Result<T, Reply>;

/// `<backend>/<server>`, either part may be `#<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRef {
    /// Backend name or `#id`.
    pub backend: String,
    /// Server name or `#id`.
    pub server: String,
}

impl ServerRef {
    /// Splits at the first `/`; both sides must be non-empty ("Require 'backend/server'.").
    pub fn parse(arg: &str) -> Option<ServerRef> {
        let (b, s) = arg.split_once('/')?;
        (!b.is_empty() && !s.is_empty()).then(|| ServerRef {
            backend: b.into(),
            server: s.into(),
        })
    }
}

/// Output format of `show info` / `show stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatFormat {
    /// `name: value` / CSV.
    #[default]
    Default,
    /// `typed`.
    Typed,
    /// `json`.
    Json,
}

/// `show stat <iid> <type> <sid>`: one proxy, object types mask, server id (-1 = all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFilter {
    /// Proxy name or numeric id, as typed (the stats side resolves it; "No such proxy.").
    pub proxy: String,
    /// Bitmask: 1 frontends, 2 backends, 4 servers; -1 all (HAProxy's `atoi`).
    pub types: i32,
    /// Server id, -1 for all (HAProxy's `atoi`).
    pub sid: i32,
}

/// `show sess` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessTarget {
    /// No argument: one line per session.
    List,
    /// `all`: every session in full.
    All,
    /// One session by id (HAProxy: a pointer parsed with `strtoul(.., 0)`).
    Id(u64),
}

/// Which half of `show errors` to dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDir {
    /// Requests and responses.
    Both,
    /// `request`.
    Request,
    /// `response`.
    Response,
}

/// Comparison of a stick-table data filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOp {
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
}

/// `data.<type> <op> <value>` as typed. HAProxy checks the data type against the table
/// before the operator and value, so [`TableFilter::check`] reports in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCond {
    /// Data type name without `data.`.
    pub data_type: String,
    /// Operator (`None`: not one of eq/ne/le/ge/lt/gt).
    pub op: Option<TableOp>,
    /// Value (`None`: missing or not an integer).
    pub value: Option<i64>,
}

/// Filter of `show table` / `clear table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableFilter {
    /// Whole table.
    None,
    /// `key <k>` (needs operator level).
    Key(String),
    /// Up to 4 `data.<type> <op> <value>` conditions.
    Data(Vec<DataCond>),
}

impl TableFilter {
    /// Validates data conditions once the table is known: `known` says whether a data
    /// type name exists at all, `stored` whether this table stores it. Errors are
    /// HAProxy's ("Filter entry #1: Data type not stored in this table\n", ...).
    pub fn check(
        &self,
        known: impl Fn(&str) -> bool,
        stored: impl Fn(&str) -> bool,
    ) -> Result<(), Reply> {
        let TableFilter::Data(conds) = self else {
            return Ok(());
        };
        for (i, c) in conds.iter().enumerate() {
            let n = i + 1;
            let text = if !known(&c.data_type) {
                "Unknown data type"
            } else if !stored(&c.data_type) {
                "Data type not stored in this table"
            } else if c.op.is_none() {
                "Require and operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\""
            } else if c.value.is_none() {
                "Require a valid integer value to compare against"
            } else {
                continue;
            };
            return Err(Reply::err(format!("Filter entry #{n}: {text}\n")));
        }
        Ok(())
    }
}

/// Body of `set table <t> key <k> [data.<type> <v>]*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSet {
    /// Key text (the owner converts it to the table's key type: "Invalid key").
    pub key: String,
    /// `(data type, value)` pairs, values as typed.
    pub data: Vec<(String, String)>,
}

/// `set server <b>/<s> state ...`, `enable|disable server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Leave maintenance and drain (`ready`, `enable server`).
    Ready,
    /// Drain: no new sessions except persistent ones.
    Drain,
    /// Maintenance (`maint`, `disable server`).
    Maint,
}

/// `set server <b>/<s> health ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthOp {
    Up,
    Stopping,
    Down,
}

/// `<weight>` or `<weight>%` after `set weight` / `set server .. weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightSpec {
    /// Absolute user weight, 0..=256.
    Absolute(u32),
    /// Percent of the initial weight, 0..=25600 (HAProxy caps it there).
    Relative(u32),
}

/// What `set server` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetServerOp {
    /// `state ready|drain|maint`.
    State(AdminState),
    /// `weight <w>[%]`.
    Weight(WeightSpec),
    /// `health up|stopping|down` (`None`: bad word; reported after the tracking check).
    Health(Option<HealthOp>),
    /// `agent up|down` (`None`: bad word; reported after the agent-enabled check).
    Agent(Option<bool>),
    /// `check-port <port>`: `Err` holds the text printed after the checks-enabled test.
    CheckPort(Result<u16, &'static str>),
    /// `addr <ip> [port <port>]`; the port is kept as typed (HAProxy reports a bad one
    /// in the change message).
    Addr { addr: String, port: Option<String> },
}

/// `set rate-limit <what> global <v>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    Connections,
    Sessions,
    SslSessions,
    /// Value given in kB/s.
    HttpCompression,
}

/// `<key>` or `#<ref>` of `del map`/`set map`/`del acl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryRef {
    /// Match by key.
    Key(String),
    /// `#<ref>`: one entry by its id as printed by `show map <map>`.
    Ref(String),
}

impl EntryRef {
    fn parse(s: &str) -> EntryRef {
        match s.strip_prefix('#') {
            Some(r) => EntryRef::Ref(r.into()),
            None => EntryRef::Key(s.into()),
        }
    }
}

/// A runtime command that needs the control shard (the session answers help, prompt,
/// quit, user, operator, set severity-output, set timeout and show cli level itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `show info [typed|json] [desc] [float]` — rendered by the stats crate.
    ShowInfo {
        format: StatFormat,
        desc: bool,
        float: bool,
    },
    /// `show stat [<iid> <type> <sid>] [typed|json] [desc] [no-maint] [up]` — stats crate.
    ShowStat {
        format: StatFormat,
        filter: Option<StatFilter>,
        desc: bool,
        no_maint: bool,
        up: bool,
    },
    /// `show servers state [<backend>]`.
    ShowServersState { backend: Option<String> },
    /// `show servers conn [<backend>]`.
    ShowServersConn { backend: Option<String> },
    /// `show backend`.
    ShowBackend,
    /// `show sess [all|<id>]` — engine.
    ShowSess(SessTarget),
    /// `shutdown session <id>` — engine ("No such session (use 'show sess').").
    ShutdownSession { id: u64 },
    /// `show errors [<px>] [request|response]` — engine/stats.
    ShowErrors {
        proxy: Option<String>,
        dir: ErrorDir,
    },
    /// `show table [<table> [filter]]` — stick tables.
    ShowTable {
        table: Option<String>,
        filter: Deferred<TableFilter>,
    },
    /// `clear table <table> [filter]` — stick tables.
    ClearTable {
        table: String,
        filter: Deferred<TableFilter>,
    },
    /// `set table <table> key <k> [data.<t> <v>]*` — stick tables (`Ok(None)`: no key
    /// given, HAProxy then does nothing and prints nothing).
    SetTable {
        table: String,
        set: Deferred<Option<TableSet>>,
    },
    /// `set server <b>/<s> <op>`.
    SetServer {
        target: ServerRef,
        op: Deferred<SetServerOp>,
    },
    /// `enable server` / `disable server` / `set server .. state`.
    SetAdmin {
        target: ServerRef,
        state: AdminState,
    },
    /// `enable|disable health <b>/<s>`.
    SetHealthCheck { target: ServerRef, enable: bool },
    /// `enable|disable agent <b>/<s>`.
    SetAgentCheck { target: ServerRef, enable: bool },
    /// `get weight <b>/<s>`.
    GetWeight { target: ServerRef },
    /// `set weight <b>/<s> <w>[%]`.
    SetWeight {
        target: ServerRef,
        weight: Deferred<WeightSpec>,
    },
    /// `set maxconn server <b>/<s> <n>`.
    SetMaxconnServer {
        target: ServerRef,
        maxconn: Deferred<u32>,
    },
    /// `set maxconn frontend <f> <n>`.
    SetMaxconnFrontend {
        frontend: String,
        maxconn: Deferred<u32>,
    },
    /// `set maxconn global <n>` (`None`: 0 or less, meaning the hard limit).
    SetMaxconnGlobal { maxconn: Option<u32> },
    /// `set rate-limit <what> global <n>`.
    SetRateLimit { what: RateLimit, value: u32 },
    /// `add server <b>/<s> <addr>[:<port>] [options]` — options are server keywords of
    /// the config language, parsed by the config crate on the control shard.
    AddServer {
        target: ServerRef,
        addr: String,
        options: Vec<String>,
    },
    /// `del server <b>/<s>`.
    DelServer { target: ServerRef },
    /// `show map [@<ver>] [<map>]`.
    ShowMap {
        version: Option<String>,
        map: Option<String>,
    },
    /// `add map [@<ver>] <map> <key> <value>` or with a payload of `key value` lines.
    AddMap {
        version: Option<String>,
        map: String,
        entries: Vec<(String, String)>,
    },
    /// `del map <map> <key>|#<ref>`.
    DelMap { map: String, entry: EntryRef },
    /// `set map <map> <key>|#<ref> <value>`.
    SetMap {
        map: String,
        entry: EntryRef,
        value: String,
    },
    /// `clear map [@<ver>] <map>`.
    ClearMap {
        version: Option<String>,
        map: String,
    },
    /// `show acl [@<ver>] [<acl>]`.
    ShowAcl {
        version: Option<String>,
        acl: Option<String>,
    },
    /// `add acl [@<ver>] <acl> <pattern>` or with a payload of one pattern per line.
    AddAcl {
        version: Option<String>,
        acl: String,
        patterns: Vec<String>,
    },
    /// `del acl <acl> <key>|#<ref>`.
    DelAcl { acl: String, entry: EntryRef },
    /// `clear acl [@<ver>] <acl>`.
    ClearAcl {
        version: Option<String>,
        acl: String,
    },
    /// `show ssl cert [<file>]`.
    ShowSslCert { file: Option<String> },
    /// `set ssl cert <file> <<\n<PEM>` — starts a transaction.
    SetSslCert { file: String, payload: String },
    /// `commit ssl cert <file>`.
    CommitSslCert { file: String },
    /// `abort ssl cert <file>`.
    AbortSslCert { file: String },
    /// `new ssl cert <file>`.
    NewSslCert { file: String },
    /// `del ssl cert <file>`.
    DelSslCert { file: String },
    /// `show tls-keys [id|*]`: the `tls-ticket-keys` references, or the keys of one (`#<n>`
    /// or its file) or of all (`*`).
    ShowTlsKeys { id: Option<String> },
    /// `set ssl tls-key <id|file> <base64 key>`.
    SetSslTlsKey { id: String, key: String },
    /// `show activity`.
    ShowActivity,
    /// `show pools`.
    ShowPools,
    /// `reload` (ringlb's own, admin level; haproxy 2.6's worker CLI has none, its master
    /// CLI's `reload` forks a new worker): re-reads the configuration files and swaps the
    /// new configuration into this process (docs/architecture.md, "In-process reload").
    Reload,
    /// `show events [<sink>] [-w] [-n]`: the sinks, or one `ring`'s lines; `-n` skips the
    /// lines already there, `-w` keeps the session open and prints new lines as they come.
    ShowEvents {
        sink: Option<String>,
        wait: bool,
        new_only: bool,
    },
    /// `show resolvers [<id>]`: each `resolvers` section's nameservers and their counters.
    ShowResolvers { section: Option<String> },
    /// `show peers [dict|-] [<section>]`: the peers sections and the state of each peer
    /// (`dict` is accepted and prints nothing more: ringlb keeps no server-name dictionary).
    ShowPeers { section: Option<String> },
    /// `shutdown frontend <f>`.
    ShutdownFrontend { frontend: String },
    /// `disable frontend <f>`.
    DisableFrontend { frontend: String },
    /// `enable frontend <f>`.
    EnableFrontend { frontend: String },
}

/// Which part of ringlb answers a command (see the crate docs for the routing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Servers, backends, frontends and process limits: [`crate::apply()`] answers.
    Servers,
    /// `show info`, `show stat`: the stats crate.
    Stats,
    /// `show|clear|set table`: the stick tables.
    StickTables,
    /// Maps and ACL pattern files.
    Patterns,
    /// TLS certificates.
    Tls,
    /// Sessions, errors, activity and pools: the engine's shards.
    Engine,
    /// `show events`: the log rings (`ring` sections).
    Events,
    /// `reload`: the control shard's in-process reload.
    Process,
    /// `show resolvers`: the control shard's DNS resolution.
    Resolvers,
    /// `show peers`: the control shard's peers sessions (ADR 0007).
    Peers,
}

impl Command {
    /// Who answers this command.
    pub fn owner(&self) -> Owner {
        match self {
            Command::ShowInfo { .. } | Command::ShowStat { .. } => Owner::Stats,
            Command::ShowTable { .. } | Command::ClearTable { .. } | Command::SetTable { .. } => {
                Owner::StickTables
            }
            Command::ShowMap { .. }
            | Command::AddMap { .. }
            | Command::DelMap { .. }
            | Command::SetMap { .. }
            | Command::ClearMap { .. }
            | Command::ShowAcl { .. }
            | Command::AddAcl { .. }
            | Command::DelAcl { .. }
            | Command::ClearAcl { .. } => Owner::Patterns,
            Command::ShowSslCert { .. }
            | Command::SetSslCert { .. }
            | Command::CommitSslCert { .. }
            | Command::AbortSslCert { .. }
            | Command::NewSslCert { .. }
            | Command::DelSslCert { .. }
            | Command::ShowTlsKeys { .. }
            | Command::SetSslTlsKey { .. } => Owner::Tls,
            Command::ShowSess(_)
            | Command::ShutdownSession { .. }
            | Command::ShowErrors { .. }
            | Command::ShowActivity
            | Command::ShowPools => Owner::Engine,
            Command::ShowEvents { .. } => Owner::Events,
            Command::Reload => Owner::Process,
            Command::ShowResolvers { .. } => Owner::Resolvers,
            Command::ShowPeers { .. } => Owner::Peers,
            _ => Owner::Servers,
        }
    }

    /// Level this particular invocation needs on top of its keyword's level (HAProxy
    /// checks some inside the command: stick-table key operations need operator).
    pub fn min_level(&self) -> Level {
        match self {
            Command::ShowTable {
                filter: Ok(TableFilter::Key(_)),
                ..
            }
            | Command::ClearTable {
                filter: Ok(TableFilter::Key(_)),
                ..
            }
            | Command::SetTable {
                set: Ok(Some(_)), ..
            } => Level::Operator,
            _ => Level::User,
        }
    }
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map(String::as_str).unwrap_or("")
}

fn server_ref(args: &[String], i: usize) -> Result<ServerRef, Reply> {
    ServerRef::parse(arg(args, i)).ok_or_else(|| Reply::err("Require 'backend/server'.\n"))
}

fn frontend_name(args: &[String], i: usize) -> Result<String, Reply> {
    match arg(args, i) {
        "" => Err(Reply::err("A frontend name is expected.\n")),
        f => Ok(f.into()),
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// C's `atoi`: leading blanks, optional sign, digits; anything else stops (0 if none).
pub fn atoi(s: &str) -> i64 {
    strtol(s).0
}

/// C's `strtol(s, &end, 10)`: value (saturated) and how many bytes were consumed
/// (0 when no digits).
pub fn strtol(s: &str) -> (i64, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
    {
        i += 1;
    }
    let neg = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut v: i64 = 0;
    while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    (if neg { v.saturating_neg() } else { v }, i)
}

/// C's `strtoul(s, NULL, 0)` for session ids: hex with `0x`, octal with `0`, else decimal;
/// stops at the first bad digit.
fn strtoul0(s: &str) -> u64 {
    let s = s.trim_start();
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], radix).unwrap_or(0)
}

/// `server_parse_weight_change_request` without the server: the weight text's errors.
pub fn parse_weight(s: &str) -> Deferred<WeightSpec> {
    if s.is_empty() {
        return Err(Reply::err("Require <weight> or <weight%>.\n"));
    }
    let (w, used) = strtol(s);
    if used == 0 {
        return Err(Reply::err(
            "Empty weight string empty or preceded by garbage",
        ));
    }
    let rest = &s[used..];
    if rest == "%" {
        if w < 0 {
            return Err(Reply::err("Relative weight must be positive.\n"));
        }
        return Ok(WeightSpec::Relative(
            u32::try_from(w.min(25600)).unwrap_or(0),
        ));
    }
    if !(0..=256).contains(&w) {
        return Err(Reply::err(
            "Absolute weight can only be between 0 and 256 inclusive.\n",
        ));
    }
    if !rest.is_empty() {
        return Err(Reply::err("Trailing garbage in weight string"));
    }
    Ok(WeightSpec::Absolute(u32::try_from(w).unwrap_or(0)))
}

fn parse_maxconn_server(s: &str) -> Deferred<u32> {
    if s.is_empty() {
        return Err(Reply::err("Require <maxconn>.\n"));
    }
    let (v, used) = strtol(s);
    if used == 0 {
        return Err(Reply::err("maxconn string empty or preceded by garbage"));
    }
    if used != s.len() {
        return Err(Reply::err("Trailing garbage in maxconn string"));
    }
    // HAProxy stores negative values as is; ringlb treats them as 0 (no limit).
    Ok(u32::try_from(v.clamp(0, i64::from(u32::MAX))).unwrap_or(0))
}

fn parse_set_server(args: &[String]) -> Deferred<SetServerOp> {
    let value = arg(args, 4);
    match arg(args, 3) {
        "weight" => parse_weight(value).map(SetServerOp::Weight),
        "state" => match value {
            "ready" => Ok(SetServerOp::State(AdminState::Ready)),
            "drain" => Ok(SetServerOp::State(AdminState::Drain)),
            "maint" => Ok(SetServerOp::State(AdminState::Maint)),
            _ => Err(Reply::err(
                "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n",
            )),
        },
        "health" => Ok(SetServerOp::Health(match value {
            "up" => Some(HealthOp::Up),
            "stopping" => Some(HealthOp::Stopping),
            "down" => Some(HealthOp::Down),
            _ => None,
        })),
        "agent" => Ok(SetServerOp::Agent(match value {
            "up" => Some(true),
            "down" => Some(false),
            _ => None,
        })),
        "check-port" => {
            if value.is_empty() {
                return Err(Reply::err("set server <b>/<s> check-port requires a port.\n"));
            }
            let port = match value.parse::<i64>() {
                Err(_) => Err("provided port is not an integer"),
                Ok(p) => u16::try_from(p).map_err(|_| "provided port is invalid"),
            };
            Ok(SetServerOp::CheckPort(port))
        }
        "addr" => {
            if value.is_empty() {
                return Err(Reply::err(
                    "set server <b>/<s> addr requires an address and optionally a port.\n",
                ));
            }
            let port = (arg(args, 5) == "port").then(|| arg(args, 6).to_string());
            Ok(SetServerOp::Addr { addr: value.into(), port })
        }
        "agent-addr" | "agent-port" | "agent-send" | "check-addr" | "fqdn" | "ssl" => {
            Err(Reply::err(format!(
                "'set server <srv> {}' is not supported by ringlb.\n",
                arg(args, 3)
            )))
        }
        _ => Err(Reply::err(
            "usage: set server <backend>/<server> addr | agent | agent-addr | agent-port | agent-send | check-addr | check-port | fqdn | health | ssl | state | weight\n",
        )),
    }
}

fn rate_limit_usage() -> Reply {
    Reply::err(
        "'set rate-limit' only supports :\n   - 'connections global' to set the per-process maximum connection rate\n   - 'sessions global' to set the per-process maximum session rate\n   - 'ssl-sessions global' to set the per-process maximum SSL session rate\n   - 'http-compression global' to set the per-process maximum compression speed in kB/s\n",
    )
}

fn parse_table_filter(args: &[String], action: &str) -> Deferred<TableFilter> {
    let err_args = || {
        Reply::err(match action {
            "show" => "Optional argument only supports \"data.<store_data_type>\" <operator> <value> and key <key>\n",
            _ => "Required arguments: <table> \"data.<store_data_type>\" <operator> <value> or <table> key <key>\n",
        })
    };
    let a3 = arg(args, 3);
    if a3 == "key" {
        let key = arg(args, 4);
        if key.is_empty() {
            return Err(Reply::err("Key value expected\n"));
        }
        return Ok(TableFilter::Key(key.into()));
    }
    if a3.starts_with("data.") {
        let mut conds = Vec::new();
        for i in 0..4 {
            let base = 3 + 3 * i;
            let Some(name) = arg(args, base).strip_prefix("data.") else {
                break;
            };
            let op = match arg(args, base + 1) {
                "eq" => Some(TableOp::Eq),
                "ne" => Some(TableOp::Ne),
                "le" => Some(TableOp::Le),
                "ge" => Some(TableOp::Ge),
                "lt" => Some(TableOp::Lt),
                "gt" => Some(TableOp::Gt),
                _ => None,
            };
            let value = arg(args, base + 2).parse::<i64>().ok();
            conds.push(DataCond {
                data_type: name.into(),
                op,
                value,
            });
        }
        return Ok(TableFilter::Data(conds));
    }
    if !a3.is_empty() {
        return Err(err_args());
    }
    Ok(TableFilter::None)
}

fn parse_table_set(args: &[String]) -> Deferred<Option<TableSet>> {
    match arg(args, 3) {
        "" => Ok(None),
        "key" => {
            let key = arg(args, 4);
            if key.is_empty() {
                return Err(Reply::err("Key value expected\n"));
            }
            let mut data = Vec::new();
            let mut i = 5;
            while !arg(args, i).is_empty() {
                let Some(name) = arg(args, i).strip_prefix("data.") else {
                    return Err(Reply::err("\"data.<type>\" followed by a value expected\n"));
                };
                if arg(args, i + 1).is_empty() {
                    return Err(Reply::err("\"data.<type>\" followed by a value expected\n"));
                }
                data.push((name.to_string(), arg(args, i + 1).to_string()));
                i += 2;
            }
            Ok(Some(TableSet {
                key: key.into(),
                data,
            }))
        }
        a if a.starts_with("data.") => Err(Reply::err(
            "content-based lookup is only supported with the \"show\" and \"clear\" actions\n",
        )),
        _ => Err(Reply::err(
            "Required arguments: <table> key <key> [data.<store_data_type> <value>]*\n",
        )),
    }
}

/// `@<ver>` prefix of map/acl commands: returns the version and the index of the next word.
fn version_at(args: &[String], i: usize) -> (Option<String>, usize) {
    match arg(args, i).strip_prefix('@') {
        Some(v) => (Some(v.into()), i + 1),
        None => (None, i),
    }
}

/// Parses the arguments of keyword `kw` (`args` are all the words, keyword included).
/// `payload` is the text after a `<<` line, if any. Errors are HAProxy's replies.
pub fn parse(kw: Kw, args: &[String], payload: Option<&str>) -> Result<Command, Reply> {
    let a = |i| arg(args, i);
    Ok(match kw {
        Kw::ShowInfo => {
            let mut format = StatFormat::Default;
            let (mut desc, mut float) = (false, false);
            for w in args.iter().skip(2) {
                match w.as_str() {
                    "typed" => format = StatFormat::Typed,
                    "json" => format = StatFormat::Json,
                    "desc" => desc = true,
                    "float" => float = true,
                    _ => {}
                }
            }
            Command::ShowInfo {
                format,
                desc,
                float,
            }
        }
        Kw::ShowStat => {
            let mut i = 2;
            let mut filter = None;
            if !a(2).is_empty() && !a(3).is_empty() && !a(4).is_empty() {
                filter = Some(StatFilter {
                    proxy: a(2).into(),
                    types: i32::try_from(atoi(a(3))).unwrap_or(0),
                    sid: i32::try_from(atoi(a(4))).unwrap_or(0),
                });
                i = 5;
            }
            let mut format = StatFormat::Default;
            let (mut desc, mut no_maint, mut up) = (false, false, false);
            for w in args.iter().skip(i) {
                match w.as_str() {
                    "typed" => format = StatFormat::Typed,
                    "json" => format = StatFormat::Json,
                    "desc" => desc = true,
                    "no-maint" => no_maint = true,
                    "up" => up = true,
                    _ => {}
                }
            }
            Command::ShowStat {
                format,
                filter,
                desc,
                no_maint,
                up,
            }
        }
        Kw::ShowServersState => Command::ShowServersState { backend: opt(a(3)) },
        Kw::ShowServersConn => Command::ShowServersConn { backend: opt(a(3)) },
        Kw::ShowBackend => Command::ShowBackend,
        Kw::ShowSess => Command::ShowSess(match a(2) {
            "" => SessTarget::List,
            "all" => SessTarget::All,
            id => SessTarget::Id(strtoul0(id)),
        }),
        Kw::ShutdownSession => {
            let id = strtoul0(a(2));
            if id == 0 {
                return Err(Reply::err("Session pointer expected (use 'show sess').\n"));
            }
            Command::ShutdownSession { id }
        }
        Kw::ShowErrors => {
            let proxy = opt(a(2)).filter(|p| p != "-1");
            let dir = match a(3) {
                "request" => ErrorDir::Request,
                "response" => ErrorDir::Response,
                _ => ErrorDir::Both,
            };
            Command::ShowErrors { proxy, dir }
        }
        Kw::ShowTable => {
            let table = opt(a(2));
            let filter = if table.is_some() {
                parse_table_filter(args, "show")
            } else {
                Ok(TableFilter::None)
            };
            Command::ShowTable { table, filter }
        }
        Kw::ClearTable => {
            if a(2).is_empty() {
                return Err(Reply::err("Required arguments: <table> \"data.<store_data_type>\" <operator> <value> or <table> key <key>\n"));
            }
            Command::ClearTable {
                table: a(2).into(),
                filter: parse_table_filter(args, "clear"),
            }
        }
        Kw::SetTable => {
            if a(2).is_empty() {
                return Err(Reply::err(
                    "Required arguments: <table> key <key> [data.<store_data_type> <value>]*\n",
                ));
            }
            Command::SetTable {
                table: a(2).into(),
                set: parse_table_set(args),
            }
        }
        Kw::SetServer => Command::SetServer {
            target: server_ref(args, 2)?,
            op: parse_set_server(args),
        },
        Kw::EnableServer => Command::SetAdmin {
            target: server_ref(args, 2)?,
            state: AdminState::Ready,
        },
        Kw::DisableServer => Command::SetAdmin {
            target: server_ref(args, 2)?,
            state: AdminState::Maint,
        },
        Kw::EnableHealth => Command::SetHealthCheck {
            target: server_ref(args, 2)?,
            enable: true,
        },
        Kw::DisableHealth => Command::SetHealthCheck {
            target: server_ref(args, 2)?,
            enable: false,
        },
        Kw::EnableAgent => Command::SetAgentCheck {
            target: server_ref(args, 2)?,
            enable: true,
        },
        Kw::DisableAgent => Command::SetAgentCheck {
            target: server_ref(args, 2)?,
            enable: false,
        },
        Kw::GetWeight => Command::GetWeight {
            target: server_ref(args, 2)?,
        },
        Kw::SetWeight => Command::SetWeight {
            target: server_ref(args, 2)?,
            weight: parse_weight(a(3)),
        },
        Kw::SetMaxconnServer => Command::SetMaxconnServer {
            target: server_ref(args, 3)?,
            maxconn: parse_maxconn_server(a(4)),
        },
        Kw::SetMaxconnFrontend => {
            let frontend = frontend_name(args, 3)?;
            let maxconn = match a(4) {
                "" => Err(Reply::err("Integer value expected.\n")),
                v => u32::try_from(atoi(v)).map_err(|_| Reply::err("Value out of range.\n")),
            };
            Command::SetMaxconnFrontend { frontend, maxconn }
        }
        Kw::SetMaxconnGlobal => match a(3) {
            "" => return Err(Reply::err("Expects an integer value.\n")),
            v => Command::SetMaxconnGlobal {
                maxconn: u32::try_from(atoi(v)).ok().filter(|v| *v > 0),
            },
        },
        Kw::SetRateLimit => {
            let what = match (a(2), a(3)) {
                ("connections", "global") => RateLimit::Connections,
                ("sessions", "global") => RateLimit::Sessions,
                ("ssl-sessions", "global") => RateLimit::SslSessions,
                ("http-compression", "global") => RateLimit::HttpCompression,
                _ => return Err(rate_limit_usage()),
            };
            if a(4).is_empty() {
                return Err(Reply::err("Expects an integer value.\n"));
            }
            let value =
                u32::try_from(atoi(a(4))).map_err(|_| Reply::err("Value out of range.\n"))?;
            Command::SetRateLimit { what, value }
        }
        Kw::AddServer => {
            let Some(target) = ServerRef::parse(a(2)) else {
                return Err(Reply::err("Require 'backend/server'."));
            };
            if a(3).is_empty() {
                return Err(Reply::err(
                    "'server' expects <name> and <addr>[:<port>] as arguments.\n",
                ));
            }
            let options = args.iter().skip(4).cloned().collect();
            Command::AddServer {
                target,
                addr: a(3).into(),
                options,
            }
        }
        Kw::DelServer => {
            let Some(target) = ServerRef::parse(a(2)) else {
                return Err(Reply::err("Require 'backend/server'."));
            };
            Command::DelServer { target }
        }
        Kw::ShowMap | Kw::ShowAcl => {
            let (version, i) = version_at(args, 2);
            let name = opt(a(i));
            if kw == Kw::ShowMap {
                Command::ShowMap { version, map: name }
            } else {
                Command::ShowAcl { version, acl: name }
            }
        }
        Kw::AddMap => {
            let (version, i) = version_at(args, 2);
            let usage = "'add map' expects three parameters (map identifier, key and value) or one parameter (map identifier) and a payload\n";
            let map = a(i);
            if map.is_empty() {
                return Err(Reply::err(usage));
            }
            let entries = match payload {
                Some(p) if a(i + 1).is_empty() => p
                    .lines()
                    .filter_map(|l| {
                        let l = l.trim_start_matches([' ', '\t']);
                        let (k, v) = l.split_once([' ', '\t'])?;
                        Some((k.to_string(), v.trim_start_matches([' ', '\t']).to_string()))
                    })
                    .collect(),
                _ => {
                    if a(i + 1).is_empty() || a(i + 2).is_empty() {
                        return Err(Reply::err(usage));
                    }
                    vec![(a(i + 1).to_string(), a(i + 2).to_string())]
                }
            };
            Command::AddMap {
                version,
                map: map.into(),
                entries,
            }
        }
        Kw::AddAcl => {
            let (version, i) = version_at(args, 2);
            let acl = a(i);
            let patterns = match payload {
                Some(p) if !acl.is_empty() && a(i + 1).is_empty() => p
                    .lines()
                    .map(|l| l.trim_matches([' ', '\t']).to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
                _ => {
                    if acl.is_empty() || a(i + 1).is_empty() {
                        return Err(Reply::err(
                            "'add acl' expects two parameters: ACL identifier and pattern.\n",
                        ));
                    }
                    vec![a(i + 1).to_string()]
                }
            };
            Command::AddAcl {
                version,
                acl: acl.into(),
                patterns,
            }
        }
        Kw::DelMap | Kw::DelAcl => {
            if a(2).is_empty() || a(3).is_empty() {
                return Err(Reply::err(if kw == Kw::DelMap {
                    "This command expects two parameters: map identifier and key.\n"
                } else {
                    "This command expects two parameters: ACL identifier and key.\n"
                }));
            }
            let entry = EntryRef::parse(a(3));
            if kw == Kw::DelMap {
                Command::DelMap {
                    map: a(2).into(),
                    entry,
                }
            } else {
                Command::DelAcl {
                    acl: a(2).into(),
                    entry,
                }
            }
        }
        Kw::SetMap => {
            if a(2).is_empty() || a(3).is_empty() || a(4).is_empty() {
                return Err(Reply::err(
                    "'set map' expects three parameters: map identifier, key and value.\n",
                ));
            }
            Command::SetMap {
                map: a(2).into(),
                entry: EntryRef::parse(a(3)),
                value: a(4).into(),
            }
        }
        Kw::ClearMap => {
            let (version, i) = version_at(args, 2);
            if a(i).is_empty() {
                return Err(Reply::err("Missing map identifier.\n"));
            }
            Command::ClearMap {
                version,
                map: a(i).into(),
            }
        }
        Kw::ClearAcl => {
            let (version, i) = version_at(args, 2);
            if a(i).is_empty() {
                return Err(Reply::err("Missing ACL identifier.\n"));
            }
            Command::ClearAcl {
                version,
                acl: a(i).into(),
            }
        }
        Kw::ShowSslCert => Command::ShowSslCert { file: opt(a(3)) },
        Kw::SetSslCert => match (a(3), payload) {
            (f, Some(p)) if !f.is_empty() && !p.is_empty() => Command::SetSslCert {
                file: f.into(),
                payload: p.into(),
            },
            _ => {
                return Err(Reply::err(
                    "'set ssl cert expects a filename and a certificate as a payload\n",
                ))
            }
        },
        Kw::CommitSslCert => match a(3) {
            "" => return Err(Reply::err("'commit ssl cert expects a filename\n")),
            f => Command::CommitSslCert { file: f.into() },
        },
        Kw::AbortSslCert => match a(3) {
            "" => return Err(Reply::err("'abort ssl cert' expects a filename\n")),
            f => Command::AbortSslCert { file: f.into() },
        },
        Kw::NewSslCert => match a(3) {
            "" => return Err(Reply::err("'new ssl cert' expects a filename\n")),
            f => Command::NewSslCert { file: f.into() },
        },
        Kw::DelSslCert => match a(3) {
            "" => return Err(Reply::err("'del ssl cert' expects a filename\n")),
            f => Command::DelSslCert { file: f.into() },
        },
        Kw::ShowTlsKeys => Command::ShowTlsKeys { id: opt(a(2)) },
        Kw::SetSslTlsKey => match (a(3), a(4)) {
            (id, key) if !id.is_empty() && !key.is_empty() => Command::SetSslTlsKey {
                id: id.into(),
                key: key.into(),
            },
            _ => return Err(Reply::err(
                "'set ssl tls-key' expects a filename and the new TLS key in base64 encoding.\n",
            )),
        },
        Kw::ShowActivity => Command::ShowActivity,
        Kw::ShowPools => Command::ShowPools,
        Kw::ShowResolvers => Command::ShowResolvers { section: opt(a(2)) },
        Kw::ShowPeers => {
            // haproxy 2.6: an optional `dict` or `-`, then an optional section name.
            let mut w = args.iter().skip(2).map(String::as_str);
            let mut first = w.next();
            if matches!(first, Some("dict" | "-")) {
                first = w.next();
            }
            Command::ShowPeers {
                section: first.filter(|s| !s.is_empty()).map(str::to_string),
            }
        }
        Kw::Reload => Command::Reload,
        Kw::ShowEvents => {
            // haproxy 2.6 (`cli_parse_show_events`): options after the sink name.
            let (mut wait, mut new_only) = (false, false);
            for w in args.iter().skip(3) {
                match w.as_str() {
                    "-w" => wait = true,
                    "-n" => new_only = true,
                    "-wn" | "-nw" => (wait, new_only) = (true, true),
                    _ => return Err(Reply::err("unknown option")),
                }
            }
            Command::ShowEvents {
                sink: opt(a(2)),
                wait,
                new_only,
            }
        }
        Kw::ShutdownFrontend => Command::ShutdownFrontend {
            frontend: frontend_name(args, 2)?,
        },
        Kw::DisableFrontend => Command::DisableFrontend {
            frontend: frontend_name(args, 2)?,
        },
        Kw::EnableFrontend => Command::EnableFrontend {
            frontend: frontend_name(args, 2)?,
        },
        Kw::Help
        | Kw::Prompt
        | Kw::Quit
        | Kw::User
        | Kw::Operator
        | Kw::SetSeverityOutput
        | Kw::SetTimeout
        | Kw::ShowCliLevel => return Err(Reply::err("Internal error.\n")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn p(s: &str) -> Result<Command, Reply> {
        let w = words(s);
        let kw = crate::table::lookup(&w).unwrap();
        parse(kw.kw, &w, None)
    }

    #[test]
    fn weight_text_rules_follow_strtol() {
        assert_eq!(parse_weight("50%"), Ok(WeightSpec::Relative(50)));
        assert_eq!(parse_weight("+7"), Ok(WeightSpec::Absolute(7)));
        assert_eq!(parse_weight("99999%"), Ok(WeightSpec::Relative(25600)));
        assert_eq!(
            parse_weight("2x").unwrap_err().text,
            "Trailing garbage in weight string"
        );
        assert_eq!(
            parse_weight("-1").unwrap_err().text,
            "Absolute weight can only be between 0 and 256 inclusive.\n"
        );
        assert_eq!(
            parse_weight("-1%").unwrap_err().text,
            "Relative weight must be positive.\n"
        );
        assert_eq!(
            parse_weight("%").unwrap_err().text,
            "Empty weight string empty or preceded by garbage"
        );
    }

    #[test]
    fn server_ref_needs_both_halves() {
        assert!(ServerRef::parse("be/").is_none());
        assert!(ServerRef::parse("/s").is_none());
        assert_eq!(ServerRef::parse("be/a/b").unwrap().server, "a/b");
    }

    #[test]
    fn show_stat_three_args_are_a_filter_even_when_they_look_like_options() {
        match p("show stat typed json desc").unwrap() {
            Command::ShowStat {
                filter: Some(f),
                format,
                ..
            } => {
                assert_eq!(f.proxy, "typed");
                assert_eq!(format, StatFormat::Default);
            }
            other => panic!("{other:?}"),
        }
        match p("show stat be 4 -1 json up").unwrap() {
            Command::ShowStat {
                filter: Some(f),
                format,
                up,
                ..
            } => {
                assert_eq!(
                    (f.types, f.sid, format, up),
                    (4, -1, StatFormat::Json, true)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn table_key_operations_need_operator() {
        assert_eq!(
            p("show table t key 1").unwrap().min_level(),
            Level::Operator
        );
        assert_eq!(p("show table t").unwrap().min_level(), Level::User);
        assert_eq!(
            p("set table t key k data.gpc0 1").unwrap().min_level(),
            Level::Operator
        );
        match p("show table t data.gpc0 gt x").unwrap() {
            Command::ShowTable { filter: Ok(f), .. } => assert_eq!(
                f.check(|_| true, |_| true).unwrap_err().text,
                "Filter entry #1: Require a valid integer value to compare against\n"
            ),
            other => panic!("{other:?}"),
        }
        match p("show table t data.gpc0 gt 3").unwrap() {
            Command::ShowTable { filter: Ok(f), .. } => {
                assert_eq!(f.check(|_| true, |_| true), Ok(()));
                assert_eq!(
                    f.check(|_| true, |t| t != "gpc0").unwrap_err().text,
                    "Filter entry #1: Data type not stored in this table\n"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn session_ids_parse_like_strtoul() {
        assert_eq!(
            p("shutdown session 0x1f").unwrap(),
            Command::ShutdownSession { id: 31 }
        );
        assert_eq!(
            p("shutdown session foo").unwrap_err().text,
            "Session pointer expected (use 'show sess').\n"
        );
    }
}
