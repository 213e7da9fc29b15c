//! The typed, validated configuration model: the single source of truth that the engine, the
//! control plane and later rule/balance/stick/health crates read. Nothing downstream reads the
//! config text again. Every object carries its [`Loc`] (file and line of the keyword that made it).
//!
//! Owns: data types only (plus their defaults). Parsing lives in `parse/`, checks in `validate`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::registry::Status;

mod checks;
mod sections;

pub use checks::*;
pub use sections::*;

/// Where an object was declared: file path as given on the command line and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: u32,
}

/// The whole configuration after defaults inheritance and reference resolution.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub global: Global,
    /// Every `defaults` section in file order (named and anonymous), as parsed.
    pub defaults: Vec<Defaults>,
    /// `frontend` sections plus the frontend half of each `listen`.
    pub frontends: Vec<Frontend>,
    /// `backend` sections plus the backend half of each `listen`.
    pub backends: Vec<Backend>,
    pub userlists: Vec<Userlist>,
    pub peers: Vec<Peers>,
    pub resolvers: Vec<Resolvers>,
    pub http_errors: Vec<HttpErrors>,
    pub rings: Vec<Ring>,
    pub caches: Vec<Cache>,
    pub programs: Vec<Program>,
    pub mailers: Vec<Mailers>,
    /// Every keyword occurrence with its registry status, so the engine can refuse to start on
    /// keywords it does not implement yet (see `docs/compatibility.md`).
    pub keyword_uses: Vec<KeywordUse>,
    /// Files loaded, in order (HAProxy's `HAPROXY_CFGFILES`).
    pub files: Vec<PathBuf>,
}

impl Config {
    /// The backend named `name` (backends and `listen` sections).
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// The frontend named `name` (frontends and `listen` sections).
    pub fn frontend(&self, name: &str) -> Option<&Frontend> {
        self.frontends.iter().find(|f| f.name == name)
    }

    /// Keyword uses whose status is not `Supported` (what the engine must decide about).
    pub fn unsupported_uses(&self) -> impl Iterator<Item = &KeywordUse> {
        self.keyword_uses
            .iter()
            .filter(|u| u.status != Status::Supported)
    }
}

/// One occurrence of a registered keyword in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordUse {
    pub loc: Loc,
    /// Registry name, e.g. `"timeout connect"`, `"option forwardfor"`, `"bind"`,
    /// `"server check"`, `"bind ssl"`, `"http-request deny"`, `"balance leastconn"` (options and
    /// actions are prefixed by their line keyword).
    pub keyword: String,
    pub status: Status,
}

/// A directive kept verbatim (after lexing) for a keyword the registry parses and validates
/// generically; the owning issue gives it a typed field when it implements it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub loc: Loc,
    pub keyword: String,
    pub args: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// global
// ---------------------------------------------------------------------------------------------

/// The `global` section (all `global` sections merged, as HAProxy does).
#[derive(Debug, Clone, Default)]
pub struct Global {
    pub loc: Option<Loc>,
    pub daemon: bool,
    pub master_worker: bool,
    pub nbthread: Option<u32>,
    pub cpu_map: Vec<CpuMap>,
    pub maxconn: Option<u32>,
    pub pidfile: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub chroot: Option<PathBuf>,
    pub hard_stop_after: Option<Duration>,
    pub grace: Option<Duration>,
    pub log: Vec<LogTarget>,
    pub log_send_hostname: Option<String>,
    pub log_tag: Option<String>,
    pub stats_sockets: Vec<StatsSocket>,
    pub stats_timeout: Option<Duration>,
    pub stats_maxconn: Option<u32>,
    pub tune: Tune,
    pub ssl: SslDefaults,
    /// `ssl-engine` lines (accepted no-ops: rustls has no engines).
    pub ssl_engines: Vec<String>,
    pub ssl_mode_async: bool,
    pub node: Option<String>,
    /// `localpeer` (or `-L`): this process's name in `peers` sections (default: host name).
    pub localpeer: Option<String>,
    pub description: Option<String>,
    pub spread_checks: Option<u32>,
    pub strict_limits: bool,
    pub set_env: Vec<(String, String)>,
    /// Process limits, socket tuning and master-worker keywords (issue #10).
    pub ops: Ops,
    /// Parsed, not yet typed (keywords of status `Parsed`/`Accepted`).
    pub other: Vec<Directive>,
}

/// Process limits, socket tuning and master-worker keywords of `global` (issue #10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ops {
    /// `ulimit-n`: the open-files limit to set instead of the one computed from `maxconn`.
    pub ulimit_n: Option<u32>,
    /// `fd-hard-limit`: never use more descriptors than this, whatever the system allows.
    pub fd_hard_limit: Option<u32>,
    /// `maxconnrate`: connections accepted per second, whole process.
    pub maxconnrate: Option<u32>,
    /// `maxsessrate`: sessions created per second, whole process.
    pub maxsessrate: Option<u32>,
    /// `set-dumpable`: keep the process dumpable (core files) after dropping privileges.
    pub set_dumpable: bool,
    /// `quiet`: as `-q`.
    pub quiet: bool,
    /// `zero-warning`: as `-dW`, any warning is fatal.
    pub zero_warning: bool,
    /// `close-spread-time`: window over which a soft stop closes client connections.
    pub close_spread_time: Option<Duration>,
    /// `mworker-max-reloads`: reloads an old worker may survive before it gets SIGTERM.
    pub mworker_max_reloads: Option<u32>,
    /// `reload-mode in-process` (a ringlb extension): in master-worker mode SIGUSR2 reloads
    /// inside the worker (keeping runtime state) instead of starting a new worker.
    pub reload_in_process: bool,
    /// `unix-bind`: defaults for every UNIX socket the process binds.
    pub unix_bind: UnixSocketOpts,
    /// `tune.rcvbuf.client`/`tune.sndbuf.client`/`tune.rcvbuf.server`/`tune.sndbuf.server`.
    pub sock_bufs: SockBufs,
}

/// Owner, mode and path prefix of a UNIX socket (`unix-bind`, or the options of one bind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixSocketOpts {
    /// `prefix`: prepended to every UNIX bind path (a directory the caller controls).
    pub prefix: Option<String>,
    /// Octal permission bits.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Names, looked up when the socket is bound (`uid`/`gid` win when both are given).
    pub user: Option<String>,
    pub group: Option<String>,
}

/// Kernel socket buffer sizes in bytes (`SO_RCVBUF`/`SO_SNDBUF`), `None` = kernel default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockBufs {
    pub rcv_client: Option<u32>,
    pub snd_client: Option<u32>,
    pub rcv_server: Option<u32>,
    pub snd_server: Option<u32>,
}

/// `cpu-map [auto:]<thread-set> <cpu-set>`; sets are inclusive ranges as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMap {
    pub loc: Loc,
    pub auto: bool,
    /// Process part of `1/1-4` (HAProxy 2.6 accepts `1/` or `all/`), `None` when absent.
    pub process: Option<String>,
    /// Thread ids (1-based) as inclusive ranges.
    pub threads: Vec<(u32, u32)>,
    /// CPU ids (0-based) as inclusive ranges.
    pub cpus: Vec<(u32, u32)>,
}

/// `tune.*` keywords. Defaults are HAProxy's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tune {
    pub bufsize: u64,
    pub maxrewrite: u64,
    pub http_maxhdr: u32,
    pub ssl_default_dh_param: Option<u32>,
    pub ssl_cachesize: Option<u64>,
    pub ssl_lifetime: Option<Duration>,
    pub h2_max_concurrent_streams: Option<u32>,
    pub h2_initial_window_size: Option<u32>,
    /// `tune.h2.fe.initial-window-size` (HAProxy 2.8): overrides the above towards clients.
    pub h2_fe_initial_window_size: Option<u32>,
    /// `tune.h2.be.initial-window-size` (HAProxy 2.8): overrides the above towards servers.
    pub h2_be_initial_window_size: Option<u32>,
    pub h2_header_table_size: Option<u32>,
    pub h2_max_frame_size: Option<u32>,
    pub listener_multi_queue: Option<bool>,
    pub idle_pool_shared: Option<bool>,
    /// `tune.http.logurilen`: bytes of the request line kept for the log (haproxy: 1024).
    pub http_logurilen: u32,
    /// `tune.http.cookielen`: longest `capture cookie` (haproxy: 63).
    pub http_cookielen: u32,
    /// Other registered `tune.*` keywords: name → argument words.
    pub other: BTreeMap<String, Vec<String>>,
}

impl Default for Tune {
    fn default() -> Self {
        Tune {
            bufsize: 16384,
            maxrewrite: 1024,
            http_maxhdr: 101,
            ssl_default_dh_param: None,
            ssl_cachesize: None,
            ssl_lifetime: None,
            h2_max_concurrent_streams: None,
            h2_initial_window_size: None,
            h2_fe_initial_window_size: None,
            h2_be_initial_window_size: None,
            h2_header_table_size: None,
            h2_max_frame_size: None,
            listener_multi_queue: None,
            idle_pool_shared: None,
            http_logurilen: 1024,
            http_cookielen: 63,
            other: BTreeMap::new(),
        }
    }
}

/// `ssl-default-bind-*` / `ssl-default-server-*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslDefaults {
    pub bind_ciphers: Option<String>,
    pub bind_ciphersuites: Option<String>,
    pub bind_options: SslOptions,
    pub server_ciphers: Option<String>,
    pub server_ciphersuites: Option<String>,
    pub server_options: SslOptions,
}

/// Options common to `ssl-default-*-options`, `bind ... ssl` and `server ... ssl`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslOptions {
    pub min_ver: Option<TlsVersion>,
    pub max_ver: Option<TlsVersion>,
    pub no_tls_tickets: bool,
    /// `no-sslv3`, `no-tlsv10`, ... `force-tlsv12`, `prefer-client-ciphers`, ... as written.
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Sslv3,
    Tlsv10,
    Tlsv11,
    Tlsv12,
    Tlsv13,
}

/// A `log` line: `log global`, `log <target> [len N] [format F] [sample R:S] <facility> [lvl [min]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub loc: Loc,
    /// `log global` in a proxy: use the global targets.
    pub global: bool,
    /// `/dev/log`, `127.0.0.1:514`, `stdout`, `ring@name`, ... as written.
    pub target: String,
    pub facility: Option<String>,
    pub level: Option<String>,
    pub min_level: Option<String>,
    pub len: Option<u32>,
    pub format: Option<String>,
}

/// `stats socket <addr|path> [mode M] [level L] [expose-fd listeners] ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSocket {
    pub loc: Loc,
    /// Path of a UNIX socket, or `ipv4@`/host:port address, as written.
    pub address: String,
    pub mode: Option<u32>,
    pub level: Option<String>,
    pub expose_fd_listeners: bool,
    /// Other bind options as (name, value) pairs.
    pub options: Vec<(String, Option<String>)>,
}

// ---------------------------------------------------------------------------------------------
// proxies
// ---------------------------------------------------------------------------------------------

/// Proxy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Tcp,
    Http,
}

/// All proxy timeouts (`timeout <name>`). Defaults inheritance is already applied in
/// [`Frontend`]/[`Backend`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub client: Option<Duration>,
    pub server: Option<Duration>,
    pub http_request: Option<Duration>,
    pub http_keep_alive: Option<Duration>,
    pub queue: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub client_fin: Option<Duration>,
    pub server_fin: Option<Duration>,
    pub tarpit: Option<Duration>,
    pub check: Option<Duration>,
}

/// HTTP connection handling mode (`option http-keep-alive|http-server-close|httpclose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpConnMode {
    #[default]
    KeepAlive,
    ServerClose,
    Close,
}

/// `option forwardfor [except <net>] [header <name>] [if-none]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardFor {
    pub except: Option<IpNet>,
    /// Header name, `X-Forwarded-For` by default.
    pub header: String,
    pub if_none: bool,
}

/// An IPv4/IPv6 network (`10.0.0.0/8`, `::1/128`, a bare address = host prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

/// `option httpchk [<method>] [<uri>] [<version>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpChk {
    pub method: String,
    pub uri: String,
    pub version: String,
    /// Extra header text appended to the version word (old `\r\nHost:` trick), if any.
    pub extra: Option<String>,
}

/// The `option` keywords, typed for the common ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxyOptions {
    pub forwardfor: Option<ForwardFor>,
    /// `option originalto [except <net>] [header <name>]` (`if_none` unused).
    pub originalto: Option<ForwardFor>,
    pub http_conn_mode: HttpConnMode,
    pub httplog: Option<HttpLog>,
    pub tcplog: bool,
    pub dontlognull: bool,
    pub log_health_checks: bool,
    pub redispatch: Option<i32>,
    pub httpchk: Option<HttpChk>,
    pub tcp_check: bool,
    pub abortonclose: bool,
    pub allbackups: bool,
    pub http_buffer_request: bool,
    pub prefer_last_server: bool,
    /// Other registered boolean options: name → enabled (`no option X` → false).
    pub other: BTreeMap<String, bool>,
}

/// `option httplog [clf]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLog {
    pub clf: bool,
}

/// `errorfile <code> <file>`: contents loaded and validated as a raw HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFile {
    pub loc: Loc,
    pub status: u16,
    pub path: PathBuf,
    pub contents: Arc<[u8]>,
}

/// Settings a `defaults` section carries (and that proxies start from).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub name: Option<String>,
    pub loc: Loc,
    pub from: Option<String>,
    pub settings: ProxySettings,
    /// ACLs declared in a named defaults section. They are visible only to its own rules;
    /// proxies inheriting those rules receive them renamed `<defaults>/<acl>`.
    pub acls: Vec<Acl>,
    /// Rules of a named defaults section, run before the inheriting proxy's own rules.
    pub http_request: Vec<HttpRule>,
    pub http_response: Vec<HttpRule>,
    pub http_after_response: Vec<HttpRule>,
    pub tcp_request: Vec<TcpRequestRule>,
}

impl Defaults {
    /// True when the section defines TCP/HTTP rules (HAProxy then forbids `listen` and mixed
    /// frontend/backend users).
    pub fn has_rules(&self) -> bool {
        !self.http_request.is_empty()
            || !self.http_response.is_empty()
            || !self.http_after_response.is_empty()
            || !self.tcp_request.is_empty()
    }
}

/// Everything a proxy (defaults, frontend, backend, listen) may set, before it is split into
/// [`Frontend`] and [`Backend`]. Also the form inherited from `defaults`.
#[derive(Debug, Clone, Default)]
pub struct ProxySettings {
    pub mode: Option<Mode>,
    pub maxconn: Option<u32>,
    pub fullconn: Option<u32>,
    pub timeouts: Timeouts,
    pub options: ProxyOptions,
    pub log: Vec<LogTarget>,
    pub log_format: Option<String>,
    /// `log-format-sd`: RFC5424 structured data, sent only to `format rfc5424` targets.
    pub log_format_sd: Option<String>,
    /// `error-log-format`: the line of a connection that failed before its stream began
    /// (TLS handshake), instead of HAProxy's fixed short line.
    pub error_log_format: Option<String>,
    pub unique_id_format: Option<String>,
    pub unique_id_header: Option<String>,
    pub format_locs: FormatLocs,
    /// `log-tag` of the proxy (else the global one).
    pub log_tag: Option<String>,
    pub balance: Option<Balance>,
    pub hash_type: Option<HashType>,
    /// `hash-balance-factor N` (percent; 0 or absent = off).
    pub hash_balance_factor: Option<u32>,
    /// `persist rdp-cookie[(name)]`: the RDP cookie name (default `msts`).
    pub persist_rdp_cookie: Option<String>,
    pub retries: Option<u32>,
    pub retry_on: Option<Vec<String>>,
    pub http_reuse: Option<HttpReuse>,
    pub errorfiles: Vec<ErrorFile>,
    /// `errorfiles <http-errors section name> [<code>...]` references (no code: all of them).
    pub errorfiles_sections: Vec<(Loc, String, Vec<u16>)>,
    pub default_server: ServerParams,
    pub default_backend: Option<(Loc, String)>,
    pub cookie: Option<Cookie>,
    pub http_check: Vec<HttpCheckStep>,
    pub tcp_check: Vec<TcpCheckStep>,
    pub other: Vec<Directive>,
}

/// A frontend: where connections are accepted and classified.
#[derive(Debug, Clone)]
pub struct Frontend {
    pub name: String,
    pub loc: Loc,
    /// True when this is the frontend half of a `listen` (its backend has the same name).
    pub from_listen: bool,
    pub disabled: bool,
    pub mode: Mode,
    pub binds: Vec<Bind>,
    pub maxconn: Option<u32>,
    pub timeouts: Timeouts,
    pub options: ProxyOptions,
    pub log: Vec<LogTarget>,
    pub log_format: Option<String>,
    pub log_format_sd: Option<String>,
    pub error_log_format: Option<String>,
    pub log_tag: Option<String>,
    pub default_backend: Option<String>,
    pub use_backends: Vec<UseBackend>,
    pub acls: Vec<Acl>,
    pub http_request: Vec<HttpRule>,
    pub http_response: Vec<HttpRule>,
    /// `http-after-response`: every response, the proxy's own replies included.
    pub http_after_response: Vec<HttpRule>,
    pub tcp_request: Vec<TcpRequestRule>,
    pub errorfiles: Vec<ErrorFile>,
    pub stick_table: Option<StickTable>,
    pub stats: Option<Stats>,
    pub monitor_uri: Option<String>,
    /// `monitor fail` conditions (any holding: `monitor-uri` answers 503).
    pub monitor_fail: Vec<(Loc, Condition)>,
    pub captures: Vec<Capture>,
    pub unique_id_format: Option<String>,
    pub unique_id_header: Option<String>,
    pub format_locs: FormatLocs,
    /// Parsed, not yet typed.
    pub other: Vec<Directive>,
}

/// Where each log-format string of a proxy was declared (its own line, or the `defaults`
/// line it inherits), for the diagnostics of its fetches.
#[derive(Debug, Clone, Default)]
pub struct FormatLocs {
    pub log_format: Option<Loc>,
    pub log_format_sd: Option<Loc>,
    pub error_log_format: Option<Loc>,
    pub unique_id_format: Option<Loc>,
}

/// `use_backend <name> [if|unless cond]` (the name may be a log-format string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseBackend {
    pub loc: Loc,
    pub backend: String,
    /// True when `backend` contains `%[` (dynamic name, resolved at run time).
    pub dynamic: bool,
    pub cond: Option<Condition>,
}

/// How a backend rule picks or remembers the server: `use-server <server>` and `stick on|match|
/// store-request|store-response <pattern> [table <t>]`, each with an optional condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRule {
    pub loc: Loc,
    pub kind: ServerRuleKind,
    /// The server name (`use-server`) or the sample expression (`stick ...`).
    pub arg: String,
    /// `table <name>`; `None`: the backend's own table.
    pub table: Option<String>,
    pub cond: Option<Condition>,
}

/// `force-persist if|unless <cond>` (`force`) or `ignore-persist if|unless <cond>`: the first
/// rule whose condition holds decides for the request (HAProxy's `persist_rules`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRule {
    pub loc: Loc,
    pub force: bool,
    pub cond: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRuleKind {
    UseServer,
    StickOn,
    StickMatch,
    StickStoreRequest,
    StickStoreResponse,
}

impl ServerRuleKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ServerRuleKind::UseServer => "use-server",
            ServerRuleKind::StickOn => "stick on",
            ServerRuleKind::StickMatch => "stick match",
            ServerRuleKind::StickStoreRequest => "stick store-request",
            ServerRuleKind::StickStoreResponse => "stick store-response",
        }
    }
}

/// `capture request|response header <name> len <n>` / `capture cookie`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub loc: Loc,
    pub what: String,
    pub name: String,
    pub len: u32,
}

/// A backend: a pool of servers and how traffic is spread over them.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub loc: Loc,
    pub from_listen: bool,
    pub disabled: bool,
    pub mode: Mode,
    pub balance: Balance,
    pub hash_type: HashType,
    /// `hash-balance-factor N`: bounded-load consistent hashing, a server takes at most N% of
    /// the average load (0 = off).
    pub hash_balance_factor: u32,
    /// `persist rdp-cookie[(name)]`: the cookie (default `msts`) whose `<ip>.<port>.` value
    /// names the server a Remote Desktop client was on.
    pub persist_rdp_cookie: Option<String>,
    pub servers: Vec<Server>,
    pub default_server: ServerParams,
    pub timeouts: Timeouts,
    pub options: ProxyOptions,
    pub log: Vec<LogTarget>,
    /// Default 3.
    pub retries: u32,
    /// Default `["conn-failure"]`.
    pub retry_on: Vec<String>,
    pub http_reuse: HttpReuse,
    pub fullconn: Option<u32>,
    pub cookie: Option<Cookie>,
    pub acls: Vec<Acl>,
    pub http_request: Vec<HttpRule>,
    pub http_response: Vec<HttpRule>,
    /// `http-after-response`: every response, the proxy's own replies included.
    pub http_after_response: Vec<HttpRule>,
    pub tcp_request: Vec<TcpRequestRule>,
    pub http_check: Vec<HttpCheckStep>,
    pub tcp_check: Vec<TcpCheckStep>,
    pub errorfiles: Vec<ErrorFile>,
    pub stick_table: Option<StickTable>,
    pub stick_rules: Vec<Directive>,
    /// `use-server` and `stick` rules, in declaration order.
    pub server_rules: Vec<ServerRule>,
    /// `force-persist` and `ignore-persist` rules, in declaration order.
    pub persist_rules: Vec<PersistRule>,
    pub stats: Option<Stats>,
    pub other: Vec<Directive>,
}

/// `balance <algorithm> [args]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Balance {
    #[default]
    Roundrobin,
    StaticRr,
    Leastconn,
    First,
    Source,
    Uri {
        whole: bool,
        path_only: bool,
        len: Option<u32>,
        depth: Option<u32>,
    },
    UrlParam {
        name: String,
        check_post: bool,
    },
    Hdr {
        name: String,
        use_domain_only: bool,
    },
    Random {
        draws: u32,
    },
    RdpCookie {
        name: Option<String>,
    },
    Hash {
        expr: SampleExpr,
    },
}

/// `hash-type <method> <function> [<modifier>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashType {
    pub consistent: bool,
    pub function: HashFunction,
    pub avalanche: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashFunction {
    #[default]
    Sdbm,
    Djb2,
    Wt6,
    Crc32,
    None,
}

/// `http-reuse never|safe|aggressive|always`; default `safe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpReuse {
    Never,
    #[default]
    Safe,
    Aggressive,
    Always,
}

/// `cookie <name> [rewrite|insert|prefix] [indirect] [nocache] [postonly] ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub loc: Loc,
    pub name: String,
    pub mode: CookieMode,
    pub indirect: bool,
    pub nocache: bool,
    pub postonly: bool,
    pub preserve: bool,
    pub httponly: bool,
    pub secure: bool,
    pub dynamic: bool,
    pub domains: Vec<String>,
    pub maxidle: Option<Duration>,
    pub maxlife: Option<Duration>,
    pub attrs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    Rewrite,
    Insert,
    Prefix,
}

/// One `server` line (after `default-server` values were applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub name: String,
    pub loc: Loc,
    /// Host or IP as written, without the port (`10.0.1.10`, `db.local`, `unix@/x`).
    pub host: String,
    /// Resolved when `host` is a literal IP address; `None` for names (resolved at start-up).
    pub addr: Option<SocketAddr>,
    /// Port from the address; `None` means "same as the client's destination port".
    pub port: Option<u16>,
    /// `+N`/`-N` port offset form (`1.2.3.4:+1000`).
    pub port_offset: Option<i32>,
    pub params: ServerParams,
}

/// Server options (used both by `server` and `default-server`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerParams {
    /// Default 1.
    pub weight: Option<u32>,
    pub maxconn: Option<u32>,
    pub minconn: Option<u32>,
    pub maxqueue: Option<u32>,
    pub backup: bool,
    pub disabled: bool,
    pub check: bool,
    pub inter: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub check_port: Option<u16>,
    pub check_addr: Option<String>,
    pub check_ssl: bool,
    pub check_sni: Option<String>,
    pub agent: AgentCheck,
    pub cookie: Option<String>,
    pub slowstart: Option<Duration>,
    pub ssl: ServerSsl,
    pub send_proxy: Option<ProxyProtocol>,
    pub resolvers: Option<String>,
    pub init_addr: Option<String>,
    pub observe: Option<String>,
    pub on_error: Option<String>,
    pub on_marked_down: Option<String>,
    pub on_marked_up: Option<String>,
    pub error_limit: Option<u32>,
    pub pool_max_conn: Option<i64>,
    pub pool_purge_delay: Option<Duration>,
    pub max_reuse: Option<i64>,
    pub track: Option<String>,
    pub redir: Option<String>,
    pub id: Option<u32>,
    /// Other registered server options as (name, value).
    pub other: Vec<(String, Option<String>)>,
}

impl ServerParams {
    /// Weight with HAProxy's default of 1.
    pub fn weight_or_default(&self) -> u32 {
        self.weight.unwrap_or(1)
    }
}

/// `agent-check agent-port N agent-inter T agent-addr A agent-send S`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentCheck {
    pub enabled: bool,
    pub port: Option<u16>,
    pub inter: Option<Duration>,
    pub addr: Option<String>,
    pub send: Option<String>,
}

/// `send-proxy` / `send-proxy-v2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    V1,
    V2,
}

/// TLS towards a server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerSsl {
    pub enabled: bool,
    pub verify: Option<Verify>,
    pub ca_file: Option<PathBuf>,
    /// `crl-file`: revoked server certificates.
    pub crl_file: Option<PathBuf>,
    pub crt: Option<PathBuf>,
    pub sni: Option<String>,
    /// `verifyhost`: the name the server certificate must carry (instead of the SNI).
    pub verifyhost: Option<String>,
    pub alpn: Vec<String>,
    pub ciphers: Option<String>,
    pub ciphersuites: Option<String>,
    pub options: SslOptions,
    /// `no-ssl-reuse`: a new full handshake for every connection (no session resumption).
    pub no_ssl_reuse: bool,
}

/// `verify none|optional|required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    None,
    Optional,
    Required,
}

impl Frontend {
    /// The listener ids (`bind ... id N`, one per address; a UNIX socket counts as one), as
    /// haproxy numbers them: explicit ids first, the others take the lowest free ids in order.
    pub fn listener_ids(&self) -> Vec<u32> {
        let explicit = |b: &Bind| {
            b.other
                .iter()
                .rev()
                .find(|(k, _)| k == "id")
                .and_then(|(_, v)| v.as_deref()?.parse::<u32>().ok())
        };
        let used: Vec<u32> = self.binds.iter().filter_map(explicit).collect();
        let mut next = 1u32;
        let mut out = Vec::new();
        for b in &self.binds {
            let n = b.addrs.len() + usize::from(b.unix_path.is_some());
            for _ in 0..n {
                match explicit(b) {
                    Some(id) => out.push(id),
                    None => {
                        while used.contains(&next) || out.contains(&next) {
                            next += 1;
                        }
                        out.push(next);
                    }
                }
            }
        }
        out
    }
}

/// A `bind` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub loc: Loc,
    /// The address words as written (`*:80`, `:443,:8443`, `ipv6@[::]:80`).
    pub spec: String,
    /// Resolved TCP addresses (port ranges expanded). Empty for a UNIX socket bind.
    pub addrs: Vec<SocketAddr>,
    /// UNIX socket path (`/path` or `unix@/path`), if any.
    pub unix_path: Option<PathBuf>,
    pub name: Option<String>,
    pub maxconn: Option<u32>,
    pub backlog: Option<u32>,
    pub accept_proxy: bool,
    pub v4v6: bool,
    pub v6only: bool,
    pub transparent: bool,
    pub defer_accept: bool,
    pub tfo: bool,
    pub interface: Option<String>,
    pub thread: Option<String>,
    pub ssl: BindSsl,
    /// Other registered bind options as (name, value).
    pub other: Vec<(String, Option<String>)>,
}

/// TLS on a listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindSsl {
    pub enabled: bool,
    /// `crt` arguments: a PEM file or a directory of PEM files (loaded by SNI).
    pub crt: Vec<PathBuf>,
    pub crt_list: Vec<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    pub verify: Option<Verify>,
    pub alpn: Vec<String>,
    pub ciphers: Option<String>,
    pub ciphersuites: Option<String>,
    pub curves: Option<String>,
    pub strict_sni: bool,
    /// `tls-ticket-keys`: the file of session ticket keys (base64, 48 or 80 bytes a line).
    pub ticket_keys: Option<PathBuf>,
    pub options: SslOptions,
}

// ---------------------------------------------------------------------------------------------
// samples, ACLs, conditions, rules
// ---------------------------------------------------------------------------------------------

/// A sample expression: `fetch(args),conv1(args),conv2`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SampleExpr {
    pub fetch: String,
    pub args: Vec<String>,
    pub converters: Vec<Converter>,
}

/// One converter applied to a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converter {
    pub name: String,
    pub args: Vec<String>,
}

/// `acl <name> <criterion> [flags] [operator] <value> ...` (name empty for anonymous ACLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub name: String,
    pub loc: Loc,
    pub sample: SampleExpr,
    pub flags: AclFlags,
    /// Comparison operator for integer matches (`gt`, `ge`, `lt`, `le`, `eq`), if written.
    pub operator: Option<String>,
    pub patterns: Vec<String>,
}

/// ACL flags: `-i`, `-m <method>`, `-f <file>`, `-n`, `-M`, `-u <id>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclFlags {
    pub ignore_case: bool,
    pub match_method: Option<String>,
    pub files: Vec<PathBuf>,
    pub no_dns: bool,
    pub map: bool,
    pub unique_id: Option<String>,
}

/// `if|unless <cond>`: an OR of ANDs of possibly negated ACL references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// True for `unless` (the whole expression is negated).
    pub unless: bool,
    /// Outer vector: `||` alternatives; inner: terms that must all hold.
    pub terms: Vec<Vec<Term>>,
}

/// One term of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub negate: bool,
    pub acl: AclRef,
}

/// Named ACL (declared in the proxy or predefined like `LOCALHOST`, `TRUE`) or an anonymous
/// `{ ... }` ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclRef {
    Named(String),
    Anonymous(Box<Acl>),
}

/// An `http-request` / `http-response` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    pub loc: Loc,
    pub action: HttpAction,
    pub cond: Option<Condition>,
}

/// Typed HTTP rule actions; `Other` keeps a registered action not typed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAction {
    Allow,
    /// `deny [deny_status N] [content-type T] [string|lf-string|file|errorfile ...] [hdr N V]`;
    /// `reply` holds the optional payload (its `status` stays `None`).
    Deny {
        status: Option<u16>,
        reply: Return,
    },
    Tarpit {
        status: Option<u16>,
        reply: Return,
    },
    Auth {
        realm: Option<String>,
    },
    Redirect(Redirect),
    Return(Return),
    SetHeader {
        name: String,
        fmt: String,
    },
    AddHeader {
        name: String,
        fmt: String,
    },
    /// `del-header <name> [-m str|beg|end|sub|reg]`.
    DelHeader {
        name: String,
        method: Option<String>,
    },
    /// `replace-value <name> <regex> <replace>`: applied to each comma-separated value.
    ReplaceValue {
        name: String,
        regex: String,
        replace: String,
    },
    ReplaceHeader {
        name: String,
        regex: String,
        replace: String,
    },
    SetPath {
        fmt: String,
    },
    SetVar {
        var: String,
        expr: String,
    },
    TrackSc {
        slot: u8,
        key: SampleExpr,
        table: Option<String>,
    },
    UseService {
        name: String,
    },
    Other {
        name: String,
        args: Vec<String>,
    },
}

/// `redirect location|prefix|scheme <to> [code N] [options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub kind: RedirectKind,
    pub to: String,
    /// Default 302.
    pub code: u16,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    Location,
    Prefix,
    Scheme,
}

/// `return [status N] [content-type T] [string S | lf-string S | file F | ...] [hdr N V]...`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Return {
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub body: Option<(String, String)>,
    pub headers: Vec<(String, String)>,
}

/// `tcp-request connection|content|session <action> [cond]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRequestRule {
    pub loc: Loc,
    /// `connection`, `content`, `session` or `inspect-delay`.
    pub phase: String,
    pub action: String,
    pub args: Vec<String>,
    pub cond: Option<Condition>,
}

/// `stick-table type <t> [len N] size <n> [expire T] [nopurge] [peers P] [store ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickTable {
    pub loc: Loc,
    pub key: StickKey,
    pub size: u64,
    pub expire: Option<Duration>,
    pub nopurge: bool,
    pub peers: Option<String>,
    pub store: Vec<StoreItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickKey {
    Ip,
    Ipv6,
    Integer,
    String { len: u32 },
    Binary { len: u32 },
}

/// One `store` data type: `http_req_rate(10s)`, `conn_cur`, `gpc0`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreItem {
    pub name: String,
    pub period: Option<Duration>,
}

/// Proxy `stats` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    pub enabled: bool,
    pub uri: Option<String>,
    pub realm: Option<String>,
    pub refresh: Option<Duration>,
    pub auths: Vec<(String, String)>,
    pub admin: Vec<Condition>,
    pub hide_version: bool,
    pub show_legends: bool,
    pub show_desc: Option<String>,
    pub show_node: Option<Option<String>>,
    pub scope: Vec<String>,
    /// `stats http-request ...`, in order; the implicit `stats auth` check comes after them.
    pub http_request: Vec<StatsRule>,
}

/// `stats http-request allow|deny|auth [realm <realm>] [if|unless <cond>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRule {
    pub loc: Loc,
    pub action: StatsAction,
    pub cond: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsAction {
    /// Serve the page without asking for credentials.
    Allow,
    /// 403.
    Deny,
    /// 401 with this realm (else the `stats realm`).
    Auth { realm: Option<String> },
}
