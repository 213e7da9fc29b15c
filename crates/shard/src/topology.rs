//! Runtime topology: the frontends, backends and servers every shard serves, derived once from
//! the config model by the control shard and shared read-only (`Arc`) by all shards. Mutable,
//! per-shard state (server states, counters, pools) lives in `state.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringlb_balance::{Options, ServerInfo};
use ringlb_config::model::{self, Balance, Config, HashType, HttpConnMode, HttpReuse, IpNet, Mode};

/// Everything a shard needs to serve traffic. Immutable after start.
#[derive(Debug)]
pub struct Topology {
    /// Server states restored from a `server-state-file`: applied by every shard (and the
    /// control shard's mirror) as it is built, before it serves.
    pub initial: Vec<crate::state::ControlMsg>,
    pub frontends: Vec<FrontendRt>,
    pub backends: Vec<BackendRt>,
    pub tune: Tune,
    /// Global `maxconn` (0 = unlimited; the binary fills in haproxy's computed default
    /// before building the topology, see `ringlb_config::limits`).
    pub maxconn: u32,
    /// The descriptor budget the process started with (`show info`'s `Maxsock`...); zero
    /// until the binary sets it.
    pub fds: ringlb_config::limits::FdBudget,
    /// `maxsslconn`: concurrent connections on TLS binds, all together (0 = unlimited).
    pub maxsslconn: u32,
    /// `maxsslrate`: new connections per second on TLS binds, all together (0 = unlimited).
    pub maxsslrate: u32,
    pub hard_stop_after: Option<Duration>,
    /// `grace`: how long a soft stop waits before it begins (listeners stay open meanwhile).
    pub grace: Option<Duration>,
    /// Every distinct `log` target of the configuration; proxies refer to them by index.
    pub logs: Vec<ringlb_log::LogSpec>,
    /// `log-send-hostname` (resolved to the system host name when given without argument).
    pub log_hostname: Option<String>,
    /// `log-tag`, else the program name as launched.
    pub log_tag: String,
    /// `node`, else the system host name (`show info`, the stats page's `show-node`).
    pub node: String,
    /// `stats socket` lines: the runtime sockets, counted in `Listeners`/`Jobs`.
    pub runtime_sockets: u32,
    /// Global `description` (`show info`, the stats page's `show-desc`).
    pub description: Option<String>,
    /// The global section's `log` targets (indices into `logs`): where server state changes
    /// are logged.
    pub global_log: Vec<usize>,
    /// Proxies in declaration order with HAProxy's ids (stats, runtime API): a `listen`
    /// section is one proxy with both sides.
    pub proxies: Vec<ProxyRt>,
    /// The environment at startup (`env()` fetch).
    pub env: Vec<(String, String)>,
    /// TLS ticket keys and clock shared by every shard's TLS binds (`None` without TLS).
    pub tls_shared: Option<Arc<ringlb_tls::TlsShared>>,
    /// Findings that do not stop the proxy (an expired certificate...), to print at start.
    pub warnings: Vec<TopologyError>,
    /// Stick tables by proxy name, in declaration order (every shard builds its instances
    /// from this list, so table ids agree across shards; see `stick.rs`).
    pub stick_tables: Vec<(String, model::StickTable)>,
    /// Tables that `stick` rules use: they store `server_id` too.
    pub stick_rule_tables: Vec<String>,
    /// `ring` sections: written by every shard's `log ring@<name>` targets, read by
    /// `show events` on the control shard (emptied by a reload).
    pub rings: Vec<Arc<LogRing>>,
    /// Accept-rate limits and socket buffers (`maxconnrate`, `tune.rcvbuf.client`...).
    pub ops: crate::ops::OpsRt,
    /// `cache` sections (every shard keeps its own store of each, `ShardState::caches`).
    pub caches: Vec<crate::cache::CacheRt>,
}

/// A `ring` section's buffer, shared by the shards. Deliberately a lock: a ring is one
/// process-wide buffer (as haproxy's, which takes a lock per write too); only frontends that
/// log to a ring take it, once per line, for a copy into memory.
#[derive(Debug)]
pub struct LogRing {
    pub name: String,
    /// `description`, else the name (haproxy's `show events` listing).
    pub description: String,
    pub lines: std::sync::Mutex<ringlb_log::ring::EventRing>,
}

impl LogRing {
    /// Appends one framed line (a poisoned lock only means a shard panicked mid-push: the
    /// ring is still usable).
    pub fn push(&self, line: &[u8]) {
        let mut r = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        r.push(line);
    }

    /// `show events <name>`.
    pub fn show(&self) -> String {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).show()
    }

    pub fn dropped(&self) -> u64 {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dropped()
    }
}

/// A proxy as the stats and the runtime API number it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRt {
    pub name: String,
    /// HAProxy's `iid`: declaration order from 1, or from 2 when a `stats socket` exists
    /// (haproxy 2.6 gives its CLI proxy the first id).
    pub id: u32,
    pub frontend: Option<usize>,
    pub backend: Option<usize>,
    /// `description`: heads the proxy's table on the stats page.
    pub desc: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Tune {
    pub bufsize: usize,
    pub maxrewrite: usize,
    pub http_maxhdr: usize,
    /// `tune.http.logurilen`: the logged request line is cut to this many bytes.
    pub log_uri_len: usize,
    /// The stream window ringlb announces to HTTP/2 servers (`tune.h2.be.initial-window-size`,
    /// else `tune.h2.initial-window-size`, else 65535).
    pub h2_be_window: u32,
}

#[derive(Debug)]
pub struct FrontendRt {
    pub name: String,
    pub mode: Mode,
    pub binds: Vec<BindRt>,
    pub maxconn: u32,
    /// `rate-limit sessions N`: new sessions per second for the frontend (0 = unlimited),
    /// each shard taking its share as for `maxconnrate`.
    pub rate_limit_sessions: u32,
    pub timeouts: model::Timeouts,
    pub conn_mode: HttpConnMode,
    /// `option http-buffer-request`: the body is buffered before the rules run.
    pub buffer_request: bool,
    pub forwardfor: Option<ForwardForRt>,
    /// `option originalto` (`if_none` unused).
    pub originalto: Option<ForwardForRt>,
    /// Unconditional `use_backend` target if any, else `default_backend`.
    pub backend: Option<usize>,
    /// Indices into [`Topology::logs`] (`log global` expanded; empty for `no log`).
    pub log: Vec<usize>,
    /// What a traffic log line of this frontend looks like (only with log targets).
    pub log_line: LogLine,
    /// `option dontlognull`: connections that sent nothing are not logged.
    pub dontlognull: bool,
    /// `option http-ignore-probes`: a connection that sent nothing before it closed or timed
    /// out gets no 408/400, no log line and no error count (browsers' pre-connects).
    pub ignore_probes: bool,
    /// `option http-use-proxy-header`: proxied requests authenticate with
    /// `Proxy-Authorization` and are challenged with a 407 (haproxy 2.6 takes nothing else
    /// from the option: `Proxy-Connection` does not change the connection's persistence).
    pub use_proxy_header: bool,
    /// `option independent-streams`: data sent to the client does not refresh its read
    /// timeout (TCP sessions and tunnels).
    pub independent_streams: bool,
    /// `option http-restrict-req-hdr-names` in the frontend.
    pub restrict_hdr_names: HdrNamePolicy,
    /// `option idle-close-on-response`: on a soft stop an idle keep-alive connection may send
    /// its next request until its keep-alive timeout (not only the short grace), answered
    /// with `connection: close`.
    pub idle_close_on_response: bool,
    /// `option log-separate-errors`: lines of failed transactions go out at `err`, not `info`.
    pub log_separate_errors: bool,
    /// `option logasap`: an HTTP transaction is logged when the response head is sent, with
    /// `+` before the partial `%B`, `%Ta`, `%Tt` and `%Tu`.
    pub logasap: bool,
    /// `option dontlog-normal`: only lines of failed transactions are logged.
    pub dontlog_normal: bool,
    /// `option socket-stats`: one stats row per listener (haproxy shows none without it).
    pub socket_stats: bool,
    /// The syslog header fields of this frontend's lines when it has its own `log-tag`.
    pub log_origin: Option<ringlb_log::Origin>,
    /// `log-format-sd`: structured data of every line, for `format rfc5424` targets.
    pub log_sd: Option<Box<ringlb_rules::LogFormat>>,
    /// `error-log-format`: the line of a connection that failed its TLS handshake (else
    /// haproxy's fixed `ip:port [date] fe/bind: message`).
    pub error_log: Option<Box<ringlb_rules::LogFormat>>,
    /// `capture request header NAME len N` (lower-case names), in declaration order (`%hr`).
    pub capture_req: Vec<(String, usize)>,
    /// `capture response header NAME len N` (`%hs`).
    pub capture_res: Vec<(String, usize)>,
    /// `capture cookie NAME len N` (`%CC`, `%CS`): the name prefix as written.
    pub capture_cookie: Option<(String, usize)>,
    /// `stats enable|uri|auth|...` of this proxy, if any.
    pub stats: Option<model::Stats>,
    /// `unique-id-header`: the request header carrying the `unique-id-format` value.
    pub unique_id_header: Option<String>,
    /// The stats page this frontend serves (`stats enable` / `stats uri`), compiled.
    pub stats_page: Option<StatsPageRt>,
    /// Compiled `http-request`/`http-response`/`use_backend`... rules (`None`: nothing to run,
    /// the request path skips the rule engine).
    pub rules: Option<ringlb_rules::ProxyRules>,
    pub errors: Arc<ErrorFiles>,
    /// `option clitcpka` / `option tcpka` with `clitcpka-*`: keep-alive probes to clients.
    pub clitcpka: Option<ringlb_uring::KeepAlive>,
    /// `option nolinger`: client connections close with a reset.
    pub nolinger: bool,
}

#[derive(Debug, Clone)]
pub struct BindRt {
    /// `name` of the bind line (stats listener rows).
    pub name: Option<String>,
    /// `ssl crt ...`: certificates and policy, checked at startup (shards take a copy each).
    pub tls: Option<Arc<ringlb_tls::BindTls>>,
    /// The TCP address; unused (unspecified) for a UNIX socket bind.
    pub addr: SocketAddr,
    /// `bind /path` (or `unix@/path`): the UNIX socket every shard accepts on.
    pub unix: Option<Arc<crate::ops::UnixListenerRt>>,
    pub maxconn: u32,
    pub backlog: i32,
    /// HTTP/2 on this bind (`proto h2`, `tune.h2.*`); used when ALPN chose `h2` or `proto h2`.
    pub h2: crate::h2::H2Bind,
    /// `accept-proxy`: every connection starts with a PROXY header naming the real client.
    pub accept_proxy: bool,
    /// The listener id (`id`, else haproxy's numbering): stats rows `sock-<id>`.
    pub id: u32,
    /// Socket options of the listener (`backlog`, `v4v6`, `v6only`, `defer-accept`, `tfo`,
    /// `interface`, `mss`, `tcp-ut`, `option tcp-smart-accept`).
    pub listen: ringlb_uring::ListenOpts,
    /// `thread`/`process`: the threads (shard index + 1) that accept on it; `None`: all.
    pub threads: Option<Vec<bool>>,
}

#[derive(Debug, Clone)]
pub struct ForwardForRt {
    pub except: Option<IpNet>,
    pub header: String,
    pub if_none: bool,
}

/// `errorfile` replies by status code (raw HTTP responses, validated by the config crate).
#[derive(Debug, Default)]
pub struct ErrorFiles {
    pub by_status: Vec<(u16, Arc<[u8]>)>,
}

impl ErrorFiles {
    pub fn get(&self, status: u16) -> Option<&[u8]> {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, b)| &b[..])
    }
}

/// `option http-restrict-req-hdr-names`: what happens to request header names with a
/// character outside `[A-Za-z0-9-]` (after the proxy's `http-request` rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HdrNamePolicy {
    #[default]
    Preserve,
    Delete,
    /// 403, as a `deny`.
    Reject,
}

impl HdrNamePolicy {
    fn of(options: &model::ProxyOptions, other: &[model::Directive]) -> HdrNamePolicy {
        if options.other.get("http-restrict-req-hdr-names") != Some(&true) {
            return HdrNamePolicy::Preserve;
        }
        match directive(other, "option http-restrict-req-hdr-names")
            .and_then(|d| d.args.first())
            .map(String::as_str)
        {
            Some("delete") => HdrNamePolicy::Delete,
            Some("reject") => HdrNamePolicy::Reject,
            _ => HdrNamePolicy::Preserve,
        }
    }
}

#[derive(Debug)]
pub struct BackendRt {
    pub name: String,
    pub mode: Mode,
    pub servers: Vec<ServerRt>,
    pub timeouts: model::Timeouts,
    pub retries: u32,
    pub retry_on: RetryOn,
    pub redispatch: bool,
    pub http_reuse: HttpReuse,
    pub conn_mode: HttpConnMode,
    /// `option http-buffer-request`: the body is buffered before the rules run.
    pub buffer_request: bool,
    /// `option originalto` in the backend (its header name wins over the frontend's).
    pub originalto: Option<ForwardForRt>,
    /// `http-send-name-header NAME`: the header (lowercased, as haproxy sends it) that carries
    /// the chosen server's name, set last in the head on every attempt.
    pub send_name_header: Option<Vec<u8>>,
    /// `option http-pretend-keepalive`: requests do not say `connection: close` to the server
    /// even when the proxy closes it after the response (the close itself still happens).
    pub pretend_keepalive: bool,
    /// `option checkcache`: a cacheable response carrying a cookie is blocked (502).
    pub checkcache: bool,
    /// `option abortonclose`: a request whose client closed while it waited for a server slot
    /// or connection is dropped (logged `CQ`/`CC`) instead of being sent.
    pub abortonclose: bool,
    /// `option independent-streams`: data sent to the server does not refresh its read
    /// timeout (TCP sessions and tunnels).
    pub independent_streams: bool,
    /// `option http-restrict-req-hdr-names` in the backend (applied after the frontend's).
    pub restrict_hdr_names: HdrNamePolicy,
    /// `max-keep-alive-queue N`: a keep-alive client stops preferring its last server once
    /// that server is full and has N or more requests queued (`None`: no limit, haproxy's -1).
    pub max_keepalive_queue: Option<u32>,
    pub errors: Arc<ErrorFiles>,
    /// What each shard builds its balancer from (`ringlb-balance`).
    pub balance: BalanceSpec,
    /// Compiled backend rules (`None`: nothing to run).
    pub rules: Option<ringlb_rules::ProxyRules>,
    /// A stats page enabled in a `backend` section (served for requests routed to it).
    pub stats_page: Option<StatsPageRt>,
    /// `cookie NAME insert ...`: cookie-based persistence.
    pub cookie: Option<CookieRt>,
    /// `persist rdp-cookie[(name)]`: the RDP cookie naming a server by address.
    pub persist_rdp_cookie: Option<String>,
    /// `option persist`: persistence may send a request to a server that is down.
    pub option_persist: bool,
    /// A server sends PROXY v2 headers: requests gather the client's TLS facts for them.
    pub proxy_v2: bool,
    /// `option prefer-last-server` with a non-hashing algorithm: a keep-alive client's next
    /// request goes to the server of its previous one while that server is usable.
    pub prefer_last_server: bool,
    /// `fullconn` (explicit, else 10% of the `maxconn` of the frontends that route here):
    /// the backend load at which `minconn` servers reach their `maxconn`.
    pub fullconn: u32,
}

impl BackendRt {
    /// `option redispatch` without `option persist`: requests waiting in a server's queue
    /// move to the backend's when it goes down (HAProxy's `pendconn_redistribute`).
    pub fn requeues_on_down(&self) -> bool {
        self.redispatch && !self.option_persist
    }
}

/// `cookie NAME insert|rewrite|prefix [indirect] [nocache] [httponly] [secure] [domain D]...
/// [attr A]... [postonly] [preserve] [dynamic] [maxidle T] [maxlife T]`.
#[derive(Debug, Clone)]
pub struct CookieRt {
    pub name: String,
    /// `insert` (the proxy sets the cookie), `rewrite` (the proxy replaces the value of the
    /// server's own cookie) or `prefix` (the proxy prefixes it with `SRVID~`).
    pub mode: model::CookieMode,
    /// Leave the server's own cookie of this name untouched.
    pub preserve: bool,
    /// `option persist`: a cookie naming a down server still sends the request there.
    pub persist: bool,
    /// Remove the cookie from requests forwarded to the server.
    pub indirect: bool,
    /// Insert only on responses to POST requests.
    pub postonly: bool,
    /// The `set-cookie` line's attributes after `NAME=value`, rendered once (`; path=/...`).
    pub attributes: String,
    /// `maxidle` / `maxlife` in seconds (0: none): insert-mode cookies carry dates.
    pub maxidle: u32,
    pub maxlife: u32,
}

/// `balance`, `hash-type` and the servers as the balancer sees them.
#[derive(Debug, Clone)]
pub struct BalanceSpec {
    pub balance: Balance,
    pub hash_type: HashType,
    pub servers: Vec<ServerInfo>,
    pub options: Options,
}

impl BalanceSpec {
    /// The request facts the algorithm hashes: the request target (`uri`, `url_param`) and/or
    /// the value of a header (`hdr(name)`). `None` for algorithms that look at no request.
    pub fn needs_uri(&self) -> bool {
        matches!(self.balance, Balance::Uri { .. } | Balance::UrlParam { .. })
    }

    pub fn header_name(&self) -> Option<&str> {
        match &self.balance {
            Balance::Hdr { name, .. } => Some(name),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerRt {
    pub name: String,
    /// `ssl` on the server line: TLS towards the server (rustls client config and the SNI).
    pub tls: Option<Arc<ServerTlsRt>>,
    /// `cookie <value>`: the persistence cookie value naming this server.
    pub cookie: Option<String>,
    pub addr: SocketAddr,
    pub weight: u32,
    /// 0 = unlimited.
    pub maxconn: u32,
    /// 0 = unlimited.
    pub maxqueue: u32,
    pub backup: bool,
    pub disabled: bool,
    /// `pool-max-conn`: idle connections kept (-1 = unlimited, HAProxy's default).
    pub pool_max_conn: i64,
    /// `pool-purge-delay`: idle connections unused for this long are closed (default 5s).
    pub pool_purge_delay: Duration,
    /// `max-reuse`: requests a server connection may carry after its first (-1 = unlimited).
    pub max_reuse: i64,
    /// `observe layer4|layer7` (with `check`): live traffic errors count toward `on-error`.
    pub observe: Option<ObserveRt>,
    /// Whether requests reach this server over HTTP/2 (`h2srv.rs`).
    pub h2: H2Mode,
    /// `send-proxy*`: the PROXY header written first on every new connection.
    pub send_proxy: Option<SendProxyRt>,
    /// Socket options of new connections (`source`, `tfo`, `option srvtcpka`, `nolinger`...).
    pub connect: ringlb_uring::ConnectOpts,
    /// `on-marked-down shutdown-sessions`: its sessions are closed when it goes down.
    pub shutdown_on_down: bool,
    /// `on-marked-up shutdown-backup-sessions`: the backup servers' sessions are closed when
    /// it comes up.
    pub shutdown_backups_on_up: bool,
    /// Its sessions may be closed by one of the two above (a lease then listens for it).
    pub killable: bool,
    /// `redir <prefix>`: GET and HEAD requests get a 302 to `<prefix><path>` instead.
    pub redir: Option<String>,
    /// `minconn`: with the backend's `fullconn`, the floor of the dynamic `maxconn`
    /// (0 = no dynamic limit).
    pub minconn: u32,
    /// `slowstart`: after coming back up, the connection limit grows from 1 to 100% of the
    /// usual one over this time (the weight ramp is the control shard's).
    pub slowstart: Option<std::time::Duration>,
}

/// `send-proxy`, `send-proxy-v2`, `send-proxy-v2-ssl(-cn)` and `proxy-v2-options`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendProxyRt {
    pub v2: bool,
    /// The SSL TLV (`send-proxy-v2-ssl`, option `ssl`).
    pub ssl: bool,
    /// Its CN sub-TLV (`send-proxy-v2-ssl-cn`, option `cert-cn`).
    pub ssl_cn: bool,
    /// Its cipher sub-TLV (option `ssl-cipher`).
    pub ssl_cipher: bool,
    /// The AUTHORITY TLV: the client's SNI (option `authority`).
    pub authority: bool,
    /// The CRC32C TLV (option `crc32c`).
    pub crc32c: bool,
}

/// The protocol towards a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum H2Mode {
    /// HTTP/1.1.
    #[default]
    Never,
    /// `proto h2`: HTTP/2 with prior knowledge (h2c, or h2 over TLS whatever ALPN said).
    Always,
    /// `ssl alpn h2,...`: HTTP/2 when the server's TLS handshake chose `h2`, else HTTP/1.1.
    Alpn,
}

impl H2Mode {
    /// From the server's `proto` and `alpn` options.
    pub fn of(params: &model::ServerParams) -> H2Mode {
        let proto = params
            .other
            .iter()
            .rev()
            .find(|(n, _)| n == "proto")
            .and_then(|(_, v)| v.as_deref());
        match proto {
            Some("h2") => H2Mode::Always,
            Some(_) => H2Mode::Never,
            None if params.ssl.enabled
                && params
                    .ssl
                    .alpn
                    .iter()
                    .any(|a| a.split(',').any(|p| p == "h2")) =>
            {
                H2Mode::Alpn
            }
            None => H2Mode::Never,
        }
    }
}

/// `observe` on a checked server: which outcomes count and how many consecutive errors
/// (`error-limit`, default 10) make the shard report to the control shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserveRt {
    pub layer7: bool,
    pub error_limit: u32,
}

/// `retry-on` keywords as flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn {
    pub conn_failure: bool,
    pub empty_response: bool,
    pub junk_response: bool,
    pub response_timeout: bool,
    /// Status codes that trigger a retry (HAProxy 2.6 accepts 401, 403, 404, 408, 425, 500,
    /// 501, 502, 503, 504).
    pub statuses: [bool; 10],
}

const RETRY_STATUSES: [u16; 10] = [401, 403, 404, 408, 425, 500, 501, 502, 503, 504];

impl RetryOn {
    pub fn parse(words: &[String]) -> RetryOn {
        let mut r = RetryOn::default();
        for w in words {
            match w.as_str() {
                "none" => r = RetryOn::default(),
                "conn-failure" => r.conn_failure = true,
                "empty-response" => r.empty_response = true,
                "junk-response" => r.junk_response = true,
                "response-timeout" => r.response_timeout = true,
                "all-retryable-errors" => {
                    r.conn_failure = true;
                    r.empty_response = true;
                    r.junk_response = true;
                    r.response_timeout = true;
                    // HAProxy: all-retryable-errors also covers 500/502/503/504 (and 0rtt).
                    for code in [500, 502, 503, 504] {
                        r.set_status(code);
                    }
                }
                other => {
                    if let Ok(code) = other.parse::<u16>() {
                        r.set_status(code);
                    }
                }
            }
        }
        r
    }

    fn set_status(&mut self, code: u16) {
        if let Some(i) = RETRY_STATUSES.iter().position(|c| *c == code) {
            if let Some(s) = self.statuses.get_mut(i) {
                *s = true;
            }
        }
    }

    pub fn on_status(&self, code: u16) -> bool {
        RETRY_STATUSES
            .iter()
            .position(|c| *c == code)
            .and_then(|i| self.statuses.get(i).copied())
            .unwrap_or(false)
    }
}

/// Why a topology could not be built (already validated configs only fail on run-time facts,
/// such as a server name that needs DNS).
#[derive(Debug)]
pub struct TopologyError {
    pub loc: model::Loc,
    pub message: String,
    /// The message names its place itself (haproxy's post-parse checks: `Proxy 'f': ...
    /// (declared at f.cfg:9).`), so it is printed without the `parsing [file:line]` prefix.
    pub names_place: bool,
}

impl TopologyError {
    /// The diagnostic as haproxy prints it after its level and pid.
    pub fn text(&self) -> String {
        if self.names_place {
            self.message.clone()
        } else {
            format!(
                "parsing [{}:{}] : {}",
                self.loc.file, self.loc.line, self.message
            )
        }
    }
}

impl Topology {
    pub fn from_config(cfg: &Config) -> Result<Topology, Vec<TopologyError>> {
        let mut errors = Vec::new();
        let mut rule_warnings = Vec::new();
        let backends: Vec<BackendRt> = cfg
            .backends
            .iter()
            .filter(|b| !b.disabled)
            .map(|b| {
                let mut rt = backend_rt(b, &mut errors);
                if rt.fullconn == 0 {
                    rt.fullconn = default_fullconn(cfg, &b.name);
                }
                rt.rules = compiled(
                    ringlb_rules::ProxyRules::backend(b, cfg),
                    &mut errors,
                    &mut rule_warnings,
                );
                server_tls(b, cfg, &mut rt, &mut errors);
                rt.stats_page = b
                    .stats
                    .as_ref()
                    .filter(|s| s.enabled || s.uri.is_some())
                    .and_then(|s| stats_page(s, &b.name, &b.acls, &b.loc, cfg, &mut errors));
                rt
            })
            .collect();
        let find = |name: &str| backends.iter().position(|b| b.name == name);
        let g = &cfg.global;
        let tls_globals = ringlb_tls::TlsGlobals::from_global(g);
        let mut warnings = Vec::new();
        let mut logs = LogTable {
            rings: cfg.rings.clone(),
            ..LogTable::default()
        };
        let global_logs: Vec<usize> = g
            .log
            .iter()
            .filter_map(|t| logs.add(t, g.log_send_hostname.is_some(), &mut errors))
            .collect();
        // `http-response track-scN` is not wired on HTTP/2 streams yet: such a frontend is
        // refused rather than silently counting nothing.
        for f in cfg.frontends.iter().filter(|f| !f.disabled) {
            let speaks_h2 = f.binds.iter().any(|b| {
                b.ssl.alpn.iter().any(|a| a.split(',').any(|p| p == "h2"))
                    || b.other
                        .iter()
                        .any(|(n, v)| n == "proto" && v.as_deref() == Some("h2"))
            });
            let tracks = f
                .http_response
                .iter()
                .find(|r| matches!(r.action, model::HttpAction::TrackSc { .. }));
            if let (true, Some(r)) = (speaks_h2, tracks) {
                errors.push(TopologyError {
 names_place: false,
                    loc: r.loc.clone(),
                    message: format!(
                        "'http-response track-sc' on frontend '{}' which speaks HTTP/2 (alpn h2 / proto h2) is not supported by ringlb yet",
                        f.name
                    ),
                });
            }
        }
        let log_hostname = cfg.global.log_send_hostname.as_ref().map(|h| {
            if h.is_empty() {
                system_hostname()
            } else {
                h.clone()
            }
        });
        let frontends: Vec<FrontendRt> = cfg
            .frontends
            .iter()
            .filter(|f| !f.disabled)
            .map(|f| {
                let unconditional = f
                    .use_backends
                    .iter()
                    .find(|u| u.cond.is_none() && !u.dynamic);
                let target = unconditional
                    .map(|u| u.backend.as_str())
                    .or(f.default_backend.as_deref())
                    .or(if f.from_listen {
                        Some(f.name.as_str())
                    } else {
                        None
                    });
                // `backlog` in the proxy: the default of its bind lines.
                let f_backlog = directive(&f.other, "backlog")
                    .and_then(|d| d.args.first())
                    .and_then(|v| v.parse::<u32>().ok());
                let clitcpka = keepalive(&f.options, &f.other, "cli", &mut errors);
                let all_ids = f.listener_ids();
                let mut ids: Vec<u32> = Vec::new();
                FrontendRt {
                    clitcpka,
                    nolinger: f.options.other.get("nolinger") == Some(&true),
                    name: f.name.clone(),
                    mode: f.mode,
                    binds: f
                        .binds
                        .iter()
                        .flat_map(|b| {
                            let first_id = ids.len();
                            ids.extend(std::iter::repeat_n(0, b.addrs.len()));
                            let first_id = all_ids.get(first_id..).unwrap_or_default().to_vec();
                            let tls = if b.ssl.enabled {
                                bind_tls(b, &tls_globals, &mut errors, &mut warnings)
                            } else {
                                None
                            };
                            let backlog = b.backlog.or(f_backlog).map(|v| v as i32).unwrap_or(1024);
                            let listen = listen_opts(f, b, backlog, &mut errors);
                            let threads = bind_threads(b, &mut errors);
                            let unix = b.unix_path.as_ref().and_then(|p| {
                                crate::ops::UnixListenerRt::new(
                                    p,
                                    &b.other,
                                    &g.ops.unix_bind,
                                    backlog,
                                )
                                .map_err(|message| {
                                    errors.push(TopologyError {
                                        names_place: false,
                                        loc: b.loc.clone(),
                                        message: format!("'bind {}' : {message}", b.spec),
                                    })
                                })
                                .ok()
                            });
                            let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
                            let tcp = b.addrs.iter().map(|a| (*a, None));
                            let unix = unix.map(|u| (unspecified, Some(Arc::new(u))));
                            tcp.chain(unix)
                                .zip(first_id.into_iter().chain(std::iter::repeat(0)))
                                .map(move |((a, unix), id)| BindRt {
                                    id,
                                    tls: tls.clone(),
                                    name: b.name.clone(),
                                    addr: a,
                                    unix,
                                    maxconn: b.maxconn.unwrap_or(0),
                                    backlog,
                                    h2: crate::h2::H2Bind::of(b, g),
                                    accept_proxy: b.accept_proxy,
                                    listen: listen.clone(),
                                    threads: threads.clone(),
                                })
                        })
                        .collect(),
                    // haproxy: a frontend without `maxconn` takes the process's.
                    maxconn: ringlb_config::limits::frontend_maxconn(
                        f,
                        cfg.global.maxconn.unwrap_or(0),
                    ),
                    rate_limit_sessions: directive(&f.other, "rate-limit sessions")
                        .and_then(|d| d.args.first())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    timeouts: f.timeouts,
                    conn_mode: f.options.http_conn_mode,
                    buffer_request: f.options.http_buffer_request,
                    forwardfor: f.options.forwardfor.as_ref().map(|ff| ForwardForRt {
                        except: ff.except,
                        header: ff.header.clone(),
                        if_none: ff.if_none,
                    }),
                    originalto: f.options.originalto.as_ref().map(|ot| ForwardForRt {
                        except: ot.except,
                        header: ot.header.clone(),
                        if_none: false,
                    }),
                    backend: target.and_then(find),
                    log: f
                        .log
                        .iter()
                        .flat_map(|t| {
                            if t.global {
                                global_logs.clone()
                            } else {
                                logs.add(t, g.log_send_hostname.is_some(), &mut errors)
                                    .into_iter()
                                    .collect()
                            }
                        })
                        .collect(),
                    log_line: if f.log.is_empty() {
                        LogLine::None
                    } else {
                        log_line(f, cfg, &mut errors)
                    },
                    dontlognull: f.options.dontlognull,
                    ignore_probes: f.options.other.get("http-ignore-probes") == Some(&true),
                    use_proxy_header: f.options.other.get("http-use-proxy-header") == Some(&true),
                    independent_streams: f.options.other.get("independent-streams") == Some(&true),
                    restrict_hdr_names: HdrNamePolicy::of(&f.options, &f.other),
                    idle_close_on_response: f.options.other.get("idle-close-on-response")
                        == Some(&true),
                    logasap: f.options.other.get("logasap").copied().unwrap_or(false),
                    log_separate_errors: f
                        .options
                        .other
                        .get("log-separate-errors")
                        .copied()
                        .unwrap_or(false),
                    log_origin: f.log_tag.as_ref().map(|tag| ringlb_log::Origin {
                        hostname: log_hostname.clone(),
                        tag: tag.clone(),
                        pid: std::process::id(),
                    }),
                    socket_stats: f.options.other.get("socket-stats") == Some(&true),
                    dontlog_normal: f
                        .options
                        .other
                        .get("dontlog-normal")
                        .copied()
                        .unwrap_or(false),
                    log_sd: extra_format(f, &f.log_format_sd, "log-format-sd", cfg, &mut errors),
                    error_log: extra_format(
                        f,
                        &f.error_log_format,
                        "error-log-format",
                        cfg,
                        &mut errors,
                    ),
                    capture_req: f
                        .captures
                        .iter()
                        .filter(|c| c.what == "request")
                        .map(|c| (c.name.to_ascii_lowercase(), c.len as usize))
                        .collect(),
                    capture_res: f
                        .captures
                        .iter()
                        .filter(|c| c.what == "response")
                        .map(|c| (c.name.to_ascii_lowercase(), c.len as usize))
                        .collect(),
                    capture_cookie: f
                        .captures
                        .iter()
                        .find(|c| c.what == "cookie")
                        .map(|c| (c.name.clone(), c.len as usize)),
                    stats: f.stats.clone(),
                    unique_id_header: f.unique_id_header.clone(),
                    stats_page: f
                        .stats
                        .as_ref()
                        .filter(|s| s.enabled || s.uri.is_some())
                        .and_then(|s| stats_page(s, &f.name, &f.acls, &f.loc, cfg, &mut errors)),
                    rules: compiled(
                        ringlb_rules::ProxyRules::frontend(f, cfg),
                        &mut errors,
                        &mut rule_warnings,
                    ),
                    errors: Arc::new(error_files(&f.errorfiles)),
                }
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let proxies = proxy_table(cfg, &frontends, &backends);
        let tls_shared = if frontends
            .iter()
            .any(|f| f.binds.iter().any(|b| b.tls.is_some()))
        {
            match ringlb_tls::TlsShared::new(
                &tls_globals,
                Arc::new(rustls::time_provider::DefaultTimeProvider),
            ) {
                Ok(s) => Some(Arc::new(s)),
                Err(d) => {
                    return Err(vec![TopologyError {
                        names_place: false,
                        loc: model::Loc::default(),
                        message: d.to_string(),
                    }])
                }
            }
        } else {
            None
        };
        Ok(Topology {
            initial: unresolved_servers(cfg),
            caches: crate::cache::from_config(cfg),
            stick_tables: stick_tables(cfg),
            stick_rule_tables: cfg
                .backends
                .iter()
                .flat_map(|b| {
                    b.server_rules
                        .iter()
                        .filter(|r| r.kind != model::ServerRuleKind::UseServer)
                        .map(|r| r.table.clone().unwrap_or_else(|| b.name.clone()))
                })
                .collect(),
            proxies,
            env: std::env::vars().collect(),
            tls_shared,
            warnings: {
                // haproxy's post-parse checks come after what its parser says.
                rule_warnings.sort_by_key(|w| (w.names_place, w.loc.line));
                warnings.append(&mut rule_warnings);
                warnings
            },
            frontends,
            backends,
            tune: Tune {
                bufsize: g.tune.bufsize as usize,
                maxrewrite: g.tune.maxrewrite as usize,
                http_maxhdr: g.tune.http_maxhdr as usize,
                log_uri_len: g.tune.http_logurilen as usize,
                h2_be_window: g
                    .tune
                    .h2_be_initial_window_size
                    .or(g.tune.h2_initial_window_size)
                    .unwrap_or(65_535),
            },
            maxconn: g.maxconn.unwrap_or(0),
            fds: ringlb_config::limits::FdBudget::default(),
            maxsslconn: global_u32(g, "maxsslconn"),
            maxsslrate: global_u32(g, "maxsslrate"),
            ops: crate::ops::OpsRt {
                conn_rate: g.ops.maxconnrate.unwrap_or(0),
                sess_rate: g.ops.maxsessrate.unwrap_or(0),
                sock_bufs: g.ops.sock_bufs,
                close_spread: g.ops.close_spread_time,
            },
            hard_stop_after: g.hard_stop_after,
            grace: g.grace,
            logs: logs.specs,
            rings: cfg
                .rings
                .iter()
                .map(|r| {
                    Arc::new(LogRing {
                        name: r.name.clone(),
                        description: r.description.clone().unwrap_or_else(|| r.name.clone()),
                        lines: std::sync::Mutex::new(ringlb_log::ring::EventRing::new(
                            r.size
                                .map_or(ringlb_log::ring::DEFAULT_RING_SIZE, |n| n as usize),
                        )),
                    })
                })
                .collect(),
            log_hostname,
            log_tag: g.log_tag.clone().unwrap_or_else(program_name),
            node: g.node.clone().unwrap_or_else(system_hostname),
            runtime_sockets: u32::try_from(g.stats_sockets.len()).unwrap_or(u32::MAX),
            description: g.description.clone(),
            global_log: global_logs,
        })
    }
}

/// Every enabled proxy's `stick-table`, once per name (both halves of a `listen` carry it).
fn stick_tables(cfg: &Config) -> Vec<(String, model::StickTable)> {
    let mut out: Vec<(String, model::StickTable)> = Vec::new();
    let fe = cfg
        .frontends
        .iter()
        .filter(|f| !f.disabled)
        .filter_map(|f| Some((f.name.as_str(), f.stick_table.as_ref()?)));
    let be = cfg
        .backends
        .iter()
        .filter(|b| !b.disabled)
        .filter_map(|b| Some((b.name.as_str(), b.stick_table.as_ref()?)));
    // `table <name>` lines of peers sections, named `<section>/<name>` (ADR 0007).
    let peers = cfg
        .peers
        .iter()
        .flat_map(|p| p.tables.iter().map(|(n, t)| (n.as_str(), t)));
    for (name, t) in fe.chain(be).chain(peers) {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), t.clone()));
        }
    }
    out
}

/// Proxies in declaration order (by file and line), frontend and backend halves of a `listen`
/// joined under one id.
fn proxy_table(cfg: &Config, frontends: &[FrontendRt], backends: &[BackendRt]) -> Vec<ProxyRt> {
    let mut decl: Vec<(&model::Loc, &str)> = cfg
        .frontends
        .iter()
        .filter(|f| !f.disabled)
        .map(|f| (&f.loc, f.name.as_str()))
        .chain(
            cfg.backends
                .iter()
                .filter(|b| !b.disabled)
                .map(|b| (&b.loc, b.name.as_str())),
        )
        .collect();
    decl.sort();
    let first = if cfg.global.stats_sockets.is_empty() {
        1
    } else {
        2
    };
    let mut names: Vec<&str> = Vec::new();
    for (_, name) in decl {
        if !names.contains(&name) {
            names.push(name); // once for both halves of a `listen`
        }
    }
    let other = |name: &str| {
        cfg.frontends
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.other)
            .or_else(|| {
                cfg.backends
                    .iter()
                    .find(|b| b.name == name)
                    .map(|b| &b.other)
            })
    };
    let directive = |name: &str, kw: &str| {
        other(name)
            .and_then(|o| o.iter().rev().find(|d| d.keyword == kw))
            .map(|d| d.args.clone())
    };
    // Explicit `id`s first, then the next free numbers (haproxy's rule, as the stats crate
    // numbers the config-only view).
    let explicit: Vec<Option<u32>> = names
        .iter()
        .map(|n| directive(n, "id").and_then(|a| a.first()?.parse().ok()))
        .collect();
    let ids = ringlb_stats::skeleton::assign_ids(&explicit, first);
    names
        .iter()
        .zip(ids)
        .map(|(name, id)| ProxyRt {
            name: name.to_string(),
            id,
            frontend: frontends.iter().position(|f| f.name == *name),
            backend: backends.iter().position(|b| b.name == *name),
            desc: directive(name, "description").map(|a| a.join(" ")),
        })
        .collect()
}

/// Loads a bind's certificates and builds its TLS policy (errors name the file and line).
fn bind_tls(
    b: &model::Bind,
    globals: &ringlb_tls::TlsGlobals,
    errors: &mut Vec<TopologyError>,
    warnings: &mut Vec<TopologyError>,
) -> Option<Arc<ringlb_tls::BindTls>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let diag = |d: &ringlb_tls::TlsDiag| TopologyError {
        names_place: false,
        loc: b.loc.clone(),
        message: format!("'bind {}' : {d}", b.spec),
    };
    match ringlb_tls::build_bind(b, globals, now) {
        Ok(t) => {
            warnings.extend(t.warnings.iter().map(diag));
            Some(Arc::new(t))
        }
        Err(diags) => {
            for d in &diags {
                if d.is_alert() {
                    errors.push(diag(d));
                } else {
                    warnings.push(diag(d));
                }
            }
            None
        }
    }
}

/// Distinct log targets, in order of first use.
#[derive(Default)]
struct LogTable {
    specs: Vec<ringlb_log::LogSpec>,
    /// The `ring` sections `ring@<name>` targets refer to.
    rings: Vec<model::Ring>,
}

impl LogTable {
    /// A `ring@<name>` target takes the ring's `format` (haproxy's default for rings: raw,
    /// whatever the `log` line says) and `maxlen`; the ring must exist.
    fn ring_spec(&self, mut spec: ringlb_log::LogSpec) -> Result<ringlb_log::LogSpec, String> {
        let ringlb_log::Address::Ring(name) = &spec.address else {
            return Ok(spec);
        };
        let ring = self
            .rings
            .iter()
            .find(|r| r.name == *name)
            .ok_or_else(|| format!("cannot find ring '{name}' for 'ring@{name}'"))?;
        spec.format = match &ring.format {
            Some(f) => ringlb_log::Format::parse(f)
                .ok_or_else(|| format!("ring '{name}': unknown format '{f}'"))?,
            None => ringlb_log::Format::Raw,
        };
        // haproxy forces a `maxlen` larger than the ring to the ring's size.
        let size = ring
            .size
            .map_or(ringlb_log::ring::DEFAULT_RING_SIZE, |n| n as usize);
        spec.len = ring.maxlen.map_or(size, |n| (n as usize).min(size));
        Ok(spec)
    }

    fn add(
        &mut self,
        t: &model::LogTarget,
        send_hostname: bool,
        errors: &mut Vec<TopologyError>,
    ) -> Option<usize> {
        match ringlb_log::LogSpec::from_model(t, send_hostname).and_then(|s| self.ring_spec(s)) {
            Ok(spec) => Some(match self.specs.iter().position(|s| *s == spec) {
                Some(i) => i,
                None => {
                    self.specs.push(spec);
                    self.specs.len() - 1
                }
            }),
            Err(message) => {
                errors.push(TopologyError {
                    names_place: false,
                    loc: t.loc.clone(),
                    message: format!("'log' : {message}"),
                });
                None
            }
        }
    }
}

pub(crate) fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The name the program was launched as (HAProxy's default `log-tag`).
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "ringlb".to_string())
}

fn error_files(files: &[model::ErrorFile]) -> ErrorFiles {
    ErrorFiles {
        by_status: files
            .iter()
            .map(|e| (e.status, e.contents.clone()))
            .collect(),
    }
}

/// A server with a name that did not resolve at start-up and `init-addr ... none`.
fn starts_unresolved(s: &model::Server) -> bool {
    s.addr.is_none()
        && s.params
            .init_addr
            .as_deref()
            .is_some_and(|i| i.split(',').any(|m| m == "none"))
}

/// The messages that start `init-addr none` servers in resolution maintenance (indexes
/// over the enabled backends, as the shards number them).
fn unresolved_servers(cfg: &Config) -> Vec<crate::state::ControlMsg> {
    cfg.backends
        .iter()
        .filter(|b| !b.disabled)
        .enumerate()
        .flat_map(|(bi, b)| {
            b.servers
                .iter()
                .enumerate()
                .filter(|(_, s)| starts_unresolved(s))
                .map(
                    move |(si, _)| crate::state::ControlMsg::SetServerResolution {
                        backend: bi,
                        server: si,
                        addr: None,
                    },
                )
        })
        .collect()
}

pub(crate) fn backend_rt(b: &model::Backend, errors: &mut Vec<TopologyError>) -> BackendRt {
    let servers: Vec<ServerRt> = b
        .servers
        .iter()
        .filter_map(|s| {
            // `init-addr none` left it without an address: it starts in resolution
            // maintenance (`unresolved_servers`) until its `resolvers` give it one.
            let placeholder = starts_unresolved(s)
                .then(|| SocketAddr::from(([0, 0, 0, 0], s.port.unwrap_or(0))));
            let Some(mut addr) = s.addr.or(placeholder) else {
                errors.push(TopologyError {
 names_place: false,
                    loc: s.loc.clone(),
                    message: format!(
                        "server '{}/{}': address '{}' is not an IP address; name resolution is not supported by ringlb yet",
                        b.name, s.name, s.host
                    ),
                });
                return None;
            };
            if s.port.is_none() {
                errors.push(TopologyError {
 names_place: false,
                    loc: s.loc.clone(),
                    message: format!(
                        "server '{}/{}' has no port; ringlb does not support port-less servers yet",
                        b.name, s.name
                    ),
                });
                return None;
            }
            if let Some(p) = s.port {
                addr.set_port(p);
            }
            Some(ServerRt {
                tls: None,
                // `cookie ... dynamic`: servers without a `cookie` get HAProxy's hash of the
                // `dynamic-cookie-key`, their address and port.
                cookie: s.params.cookie.clone().or_else(|| {
                    let key = b
                        .other
                        .iter()
                        .rev()
                        .find(|d| d.keyword == "dynamic-cookie-key")
                        .and_then(|d| d.args.first())?;
                    b.cookie
                        .as_ref()
                        .filter(|c| c.dynamic)
                        .map(|_| ringlb_balance::hash::dynamic_cookie(key, addr))
                }),
                name: s.name.clone(),
                addr,
                weight: s.params.weight_or_default(),
                // HAProxy turns a `minconn` above `maxconn` (or alone) into the `maxconn`.
                maxconn: s.params.maxconn.unwrap_or(0).max(s.params.minconn.unwrap_or(0)),
                maxqueue: s.params.maxqueue.unwrap_or(0),
                backup: s.params.backup,
                disabled: s.params.disabled,
                pool_max_conn: s.params.pool_max_conn.unwrap_or(-1),
                pool_purge_delay: s.params.pool_purge_delay.unwrap_or(Duration::from_secs(5)),
                max_reuse: s.params.max_reuse.unwrap_or(-1),
                h2: H2Mode::of(&s.params),
                // Without `check` HAProxy accepts `observe` and does nothing (no check to fail);
                // `layer7` only means something in HTTP mode.
                send_proxy: send_proxy_rt(b, s, errors),
                connect: connect_opts(b, s, errors),
                observe: s
                    .params
                    .observe
                    .as_deref()
                    .filter(|_| s.params.check)
                    .filter(|m| *m == "layer4" || b.mode == model::Mode::Http)
                    .map(|m| ObserveRt {
                        layer7: m == "layer7",
                        error_limit: s.params.error_limit.unwrap_or(10).max(1),
                    }),
                shutdown_on_down: s.params.on_marked_down.is_some(),
                shutdown_backups_on_up: s.params.on_marked_up.is_some(),
                killable: s.params.on_marked_down.is_some()
                    || (s.params.backup && b.servers.iter().any(|o| o.params.on_marked_up.is_some())),
                redir: s.params.redir.clone(),
                minconn: s
                    .params
                    .minconn
                    .filter(|m| s.params.maxconn.is_some_and(|x| *m < x))
                    .unwrap_or(0),
                slowstart: s.params.slowstart.filter(|d| !d.is_zero()),
            })
        })
        .collect();
    // The balancer skips a server at its `maxconn` as HAProxy does (each shard sets its
    // share, see state.rs); when every candidate is full the request queues on one of them.
    let infos = ServerInfo::from_model(&b.servers);
    BackendRt {
        name: b.name.clone(),
        mode: b.mode,
        balance: BalanceSpec {
            balance: b.balance.clone(),
            hash_type: b.hash_type,
            servers: infos,
            options: Options {
                allbackups: b.options.allbackups,
                hash_balance_factor: b.hash_balance_factor,
            },
        },
        timeouts: b.timeouts,
        retries: b.retries,
        retry_on: RetryOn::parse(&b.retry_on),
        redispatch: b.options.redispatch.is_some(),
        http_reuse: b.http_reuse,
        conn_mode: b.options.http_conn_mode,
        buffer_request: b.options.http_buffer_request,
        originalto: b.options.originalto.as_ref().map(|ot| ForwardForRt {
            except: ot.except,
            header: ot.header.clone(),
            if_none: false,
        }),
        send_name_header: directive(&b.other, "http-send-name-header")
            .and_then(|d| d.args.first())
            .map(|name| name.to_ascii_lowercase().into_bytes()),
        pretend_keepalive: b.options.other.get("http-pretend-keepalive") == Some(&true),
        checkcache: b.options.other.get("checkcache") == Some(&true),
        abortonclose: b.options.abortonclose,
        independent_streams: b.options.other.get("independent-streams") == Some(&true),
        restrict_hdr_names: HdrNamePolicy::of(&b.options, &b.other),
        max_keepalive_queue: directive(&b.other, "max-keep-alive-queue")
            .and_then(|d| d.args.first())
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|v| u32::try_from(v).ok()),
        errors: Arc::new(error_files(&b.errorfiles)),
        rules: None,
        stats_page: None,
        cookie: b.cookie.as_ref().map(|c| {
            let persist = b.options.other.get("persist") == Some(&true);
            cookie_rt(c, persist)
        }),
        persist_rdp_cookie: b.persist_rdp_cookie.clone(),
        option_persist: b.options.other.get("persist") == Some(&true),
        proxy_v2: servers
            .iter()
            .any(|s: &ServerRt| s.send_proxy.is_some_and(|p| p.v2)),
        // HAProxy ignores it for hashing algorithms (`BE_LB_KIND_HI`).
        prefer_last_server: b.options.prefer_last_server
            && matches!(
                b.balance,
                Balance::Roundrobin
                    | Balance::StaticRr
                    | Balance::Leastconn
                    | Balance::First
                    | Balance::Random { .. }
            ),
        fullconn: b.fullconn.unwrap_or(0),
        servers,
    }
}

/// The last `keyword` directive of a proxy (later lines override earlier ones and defaults).
pub(crate) fn directive<'a>(
    other: &'a [model::Directive],
    keyword: &str,
) -> Option<&'a model::Directive> {
    other.iter().rev().find(|d| d.keyword == keyword)
}

/// `option {cli,srv}tcpka` (or `option tcpka`) with `{cli,srv}tcpka-cnt|idle|intvl`.
pub(crate) fn keepalive(
    options: &model::ProxyOptions,
    other: &[model::Directive],
    side: &str,
    errors: &mut Vec<TopologyError>,
) -> Option<ringlb_uring::KeepAlive> {
    let on = options
        .other
        .get(&format!("{side}tcpka"))
        .or(options.other.get("tcpka"))
        .copied()
        .unwrap_or(false);
    if !on {
        return None;
    }
    let mut ka = ringlb_uring::KeepAlive::default();
    for (suffix, slot, unit_us) in [
        ("cnt", &mut ka.cnt, 0u64),
        ("idle", &mut ka.idle_secs, 1_000_000),
        ("intvl", &mut ka.intvl_secs, 1_000_000),
    ] {
        let kw = format!("{side}tcpka-{suffix}");
        let Some(d) = directive(other, &kw) else {
            continue;
        };
        let arg = d.args.first().map(String::as_str).unwrap_or("");
        let v = if unit_us == 0 {
            arg.parse::<i32>().ok().filter(|v| *v > 0)
        } else {
            ringlb_config::units::parse_time_unit(arg, unit_us)
                .ok()
                .and_then(|t| i32::try_from(t.as_secs()).ok())
                .filter(|v| *v > 0)
        };
        match v {
            Some(v) => *slot = Some(v),
            None => errors.push(TopologyError {
                names_place: false,
                loc: d.loc.clone(),
                message: format!(
                    "'{kw}' expects a positive {} but got '{arg}'",
                    if unit_us == 0 {
                        "integer"
                    } else {
                        "time in seconds"
                    }
                ),
            }),
        }
    }
    Some(ka)
}

/// The listener's socket options from its bind line (and `option tcp-smart-accept`).
fn listen_opts(
    f: &model::Frontend,
    b: &model::Bind,
    backlog: i32,
    errors: &mut Vec<TopologyError>,
) -> ringlb_uring::ListenOpts {
    let other = |n: &str| {
        b.other
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| v.clone())
    };
    let mut bad = |what: &str, v: &str| {
        errors.push(TopologyError {
            names_place: false,
            loc: b.loc.clone(),
            message: format!("'bind {}' : '{what}' : invalid value '{v}'", b.spec),
        })
    };
    let mss = other("mss").and_then(|v| match v.parse::<i32>() {
        // haproxy: a negative value only lowers the MSS the kernel would pick; ringlb sets it.
        Ok(n) if n != 0 && n.unsigned_abs() <= 65535 => Some(n.abs()),
        _ => {
            bad("mss", &v);
            None
        }
    });
    let user_timeout_ms =
        other("tcp-ut").and_then(|v| match ringlb_config::units::parse_time(&v) {
            Ok(t) => Some(u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
            Err(_) => {
                bad("tcp-ut", &v);
                None
            }
        });
    // `option tcp-smart-accept` (HTTP frontends): no accept until the request arrives, as
    // haproxy does with TCP_DEFER_ACCEPT (1 s, then the kernel passes the connection on).
    let smart = f.mode == Mode::Http && f.options.other.get("tcp-smart-accept") == Some(&true);
    ringlb_uring::ListenOpts {
        backlog,
        v6only: if b.v6only {
            Some(true)
        } else if b.v4v6 {
            Some(false)
        } else {
            None
        },
        defer_accept_secs: (b.defer_accept || smart).then_some(1),
        fastopen_queue: b.tfo.then_some(backlog.max(1)),
        interface: b.interface.clone(),
        mss,
        user_timeout_ms,
    }
}

/// `thread <set>` / `process <set>`: `all`, `odd`, `even`, `N`, `N-M`, comma lists, with an
/// optional `G/` (thread group; ringlb has one) or `1/` (process 1) prefix.
fn bind_threads(b: &model::Bind, errors: &mut Vec<TopologyError>) -> Option<Vec<bool>> {
    let spec = b.thread.as_deref()?;
    let set = spec.rsplit_once('/').map_or(spec, |(_, t)| t);
    let mut on = vec![false; 1025];
    for part in set.split(',') {
        let range = match part {
            "all" => return None,
            "odd" | "even" => {
                let first = if part == "odd" { 1 } else { 2 };
                (first..=1024).step_by(2).for_each(|i| on[i] = true);
                continue;
            }
            p => p.split_once('-').map_or_else(
                || p.parse::<usize>().ok().map(|n| (n, n)),
                |(a, z)| a.parse().ok().zip(z.parse().ok()),
            ),
        };
        match range.filter(|(a, z)| *a >= 1 && a <= z && *z <= 1024) {
            Some((a, z)) => (a..=z).for_each(|i| on[i] = true),
            None => {
                errors.push(TopologyError {
                    names_place: false,
                    loc: b.loc.clone(),
                    message: format!("'bind {}' : invalid thread set '{spec}'", b.spec),
                });
                return None;
            }
        }
    }
    Some(on)
}

/// `source ADDR[:PORT]` (backend or server): the address new server connections leave from.
fn parse_source(
    words: &[String],
    loc: &model::Loc,
    errors: &mut Vec<TopologyError>,
) -> Option<SocketAddr> {
    let spec = words.first()?;
    let addr = spec
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            spec.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 0))
        })
        .or_else(|| {
            let (h, p) = spec.rsplit_once(':')?;
            let ip = if h.is_empty() || h == "*" {
                std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            } else {
                h.parse().ok()?
            };
            Some(SocketAddr::new(
                ip,
                if p.is_empty() { 0 } else { p.parse().ok()? },
            ))
        });
    let Some(addr) = addr else {
        errors.push(TopologyError {
 names_place: false,
            loc: loc.clone(),
            message: format!("'source' : '{spec}' is not an IP address with an optional port (names and port ranges are not supported by ringlb)"),
        });
        return None;
    };
    if let Some(w) = words.get(1) {
        errors.push(TopologyError {
 names_place: false,
            loc: loc.clone(),
            message: format!("'source {spec} {w}' : '{w}' is not supported by ringlb (no transparent proxying or interface binding of server connections)"),
        });
    }
    Some(addr)
}

fn send_proxy_rt(
    b: &model::Backend,
    s: &model::Server,
    errors: &mut Vec<TopologyError>,
) -> Option<SendProxyRt> {
    let v = s.params.send_proxy?;
    let has = |n: &str| s.params.other.iter().any(|(k, _)| k == n);
    let mut rt = SendProxyRt {
        v2: v == model::ProxyProtocol::V2,
        ssl: has("send-proxy-v2-ssl") || has("send-proxy-v2-ssl-cn"),
        ssl_cn: has("send-proxy-v2-ssl-cn"),
        ..SendProxyRt::default()
    };
    for (k, val) in &s.params.other {
        if k != "proxy-v2-options" {
            continue;
        }
        for o in val.as_deref().unwrap_or("").split(',') {
            match o {
                "ssl" => rt.ssl = true,
                "cert-cn" => {
                    rt.ssl = true;
                    rt.ssl_cn = true;
                }
                "ssl-cipher" => {
                    rt.ssl = true;
                    rt.ssl_cipher = true;
                }
                "authority" => rt.authority = true,
                "crc32c" => rt.crc32c = true,
                other => errors.push(TopologyError {
 names_place: false,
                    loc: s.loc.clone(),
                    message: format!(
                        "server '{}/{}': proxy-v2-options '{other}' is not supported by ringlb (supported: ssl, cert-cn, ssl-cipher, authority, crc32c)",
                        b.name, s.name
                    ),
                }),
            }
        }
    }
    Some(rt)
}

fn connect_opts(
    b: &model::Backend,
    s: &model::Server,
    errors: &mut Vec<TopologyError>,
) -> ringlb_uring::ConnectOpts {
    let server_source = s
        .params
        .other
        .iter()
        .rev()
        .find(|(k, _)| k == "source")
        .and_then(|(_, v)| parse_source(&[v.clone().unwrap_or_default()], &s.loc, errors));
    let source = server_source.or_else(|| {
        directive(&b.other, "source").and_then(|d| parse_source(&d.args, &d.loc, errors))
    });
    let opt = |n: &str| b.options.other.get(n) == Some(&true);
    ringlb_uring::ConnectOpts {
        source,
        keepalive: keepalive(&b.options, &b.other, "srv", errors),
        fastopen: s.params.other.iter().any(|(k, _)| k == "tfo"),
        delay_ack: opt("tcp-smart-connect"),
        nolinger: opt("nolinger"),
        // Global `tune.rcvbuf.server`/`tune.sndbuf.server` are added at connect (server.rs),
        // so that servers added at runtime get them too.
        rcvbuf: None,
        sndbuf: None,
    }
}

/// HAProxy's default `fullconn` (`ringlb_config::limits::default_fullconn`) over every
/// frontend whose `default_backend` or static `use_backend` names the backend (a frontend
/// without `maxconn` counts the global one).
fn default_fullconn(cfg: &Config, backend: &str) -> u32 {
    let global = cfg.global.maxconn.unwrap_or(0);
    ringlb_config::limits::default_fullconn(
        cfg.frontends
            .iter()
            .filter(|f| {
                f.default_backend.as_deref() == Some(backend)
                    || f.use_backends
                        .iter()
                        .any(|u| !u.dynamic && u.backend == backend)
            })
            .map(|f| ringlb_config::limits::frontend_maxconn(f, global)),
    )
}

/// The traffic log of a frontend.
#[derive(Debug)]
pub enum LogLine {
    None,
    /// No format option: haproxy's default, one line at accept
    /// (`Connect from IP:port to IP:port (frontend/MODE)`).
    Connect,
    /// `option httplog|tcplog` or `log-format`: one line per request (or TCP session).
    Format(Box<ringlb_rules::LogFormat>),
}

/// haproxy's own `option httplog` format when the frontend is in TCP mode is the TCP one.
fn log_line(f: &model::Frontend, cfg: &Config, errors: &mut Vec<TopologyError>) -> LogLine {
    let text: &str = match (&f.log_format, &f.options.httplog, f.options.tcplog) {
        (Some(t), _, _) => t,
        (None, Some(_), _)
            if f.mode == Mode::Http && f.options.other.get("httpslog") == Some(&true) =>
        {
            ringlb_rules::HTTPSLOG_FORMAT
        }
        (None, Some(h), _) if f.mode == Mode::Http => {
            if h.clf {
                ringlb_rules::CLF_FORMAT
            } else {
                ringlb_rules::HTTPLOG_FORMAT
            }
        }
        (None, Some(_), _) | (None, None, true) => ringlb_rules::TCPLOG_FORMAT,
        (None, None, false) => return LogLine::Connect,
    };
    let env = ringlb_rules::proxy::Userlists(&cfg.userlists);
    match ringlb_rules::LogFormat::parse(text, &env) {
        Ok(lf) => LogLine::Format(Box::new(lf)),
        Err(e) => {
            errors.push(TopologyError {
                names_place: false,
                loc: f.loc.clone(),
                message: format!("'log-format' : {e}"),
            });
            LogLine::None
        }
    }
}

/// `log-format-sd` / `error-log-format`, compiled (only for a frontend that logs).
fn extra_format(
    f: &model::Frontend,
    text: &Option<String>,
    keyword: &str,
    cfg: &Config,
    errors: &mut Vec<TopologyError>,
) -> Option<Box<ringlb_rules::LogFormat>> {
    let text = text.as_deref().filter(|_| !f.log.is_empty())?;
    let env = ringlb_rules::proxy::Userlists(&cfg.userlists);
    match ringlb_rules::LogFormat::parse(text, &env) {
        Ok(lf) => Some(Box::new(lf)),
        Err(e) => {
            errors.push(TopologyError {
                names_place: false,
                loc: f.loc.clone(),
                message: format!("'{keyword}' : {e}"),
            });
            None
        }
    }
}

/// A proxy's stats page: the renderer's settings, `stats auth` users and the compiled
/// `stats admin` conditions (with the proxy's ACLs).
#[derive(Debug)]
pub struct StatsPageRt {
    pub page: ringlb_stats::page::PageConfig,
    pub auth: ringlb_stats::page::AuthConfig,
    pub admin: Vec<ringlb_rules::Cond>,
    /// `stats http-request` rules, in order (the first that matches decides).
    pub access: Vec<(model::StatsAction, Option<ringlb_rules::Cond>)>,
    pub acls: ringlb_rules::AclSet,
}

fn stats_page(
    s: &model::Stats,
    proxy: &str,
    acls: &[model::Acl],
    loc: &model::Loc,
    cfg: &Config,
    errors: &mut Vec<TopologyError>,
) -> Option<StatsPageRt> {
    let env = ringlb_rules::proxy::Userlists(&cfg.userlists);
    let mut c = ringlb_rules::Compiler::new(&env);
    let compiled = c.add_acls(acls).and_then(|()| {
        let admin = s
            .admin
            .iter()
            .map(|cond| c.condition(cond, loc, "stats admin"))
            .collect::<Result<Vec<_>, _>>()?;
        let access = s
            .http_request
            .iter()
            .map(|r| {
                let cond = r
                    .cond
                    .as_ref()
                    .map(|cond| c.condition(cond, &r.loc, "stats http-request"))
                    .transpose()?;
                Ok((r.action.clone(), cond))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((admin, access))
    });
    let (admin, access) = match compiled {
        Ok(a) => a,
        Err(e) => {
            errors.push(TopologyError {
                names_place: false,
                loc: e.loc.clone(),
                message: format!("'{}' : {}", e.keyword, e.msg),
            });
            return None;
        }
    };
    Some(StatsPageRt {
        page: ringlb_stats::skeleton::page_config(s, proxy),
        auth: ringlb_stats::page::AuthConfig {
            credentials: ringlb_stats::skeleton::credentials(s),
            realm: s.realm.clone(),
        },
        admin,
        access,
        acls: c.finish(),
    })
}

/// TLS towards one server.
#[derive(Debug)]
pub struct ServerTlsRt {
    pub config: ringlb_tls::ServerTls,
    /// The SNI sent (`sni str(<name>)`); `None`: no SNI, the address is verified instead.
    pub sni: Option<String>,
}

/// Builds the TLS of each `server ... ssl` of `b` (errors name the file and line). The SNI
/// is taken from `sni str(<name>)`; an expression that depends on the request is refused until
/// the engine evaluates it per connection.
fn server_tls(
    b: &model::Backend,
    cfg: &Config,
    rt: &mut BackendRt,
    errors: &mut Vec<TopologyError>,
) {
    let globals = ringlb_tls::TlsGlobals::from_global(&cfg.global);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for s in b.servers.iter() {
        let ssl = &s.params.ssl;
        if !ssl.enabled {
            continue;
        }
        let err = |m: String| TopologyError {
            names_place: false,
            loc: s.loc.clone(),
            message: format!("'server {}/{}' : {m}", b.name, s.name),
        };
        if ssl
            .alpn
            .iter()
            .any(|a| a.split(',').any(|p| p != "http/1.1" && p != "h2"))
        {
            errors.push(err(
                "alpn towards servers other than h2 and http/1.1 is not supported by ringlb yet"
                    .into(),
            ));
            continue;
        }
        let sni = match ssl.sni.as_deref() {
            None => None,
            Some(e) => match e.strip_prefix("str(").and_then(|r| r.strip_suffix(')')) {
                Some(name) => Some(name.to_string()),
                None => {
                    errors.push(err(format!(
                        "sni '{e}' is not supported by ringlb yet (only str(<name>))"
                    )));
                    continue;
                }
            },
        };
        match ringlb_tls::build_server(ssl, &globals, now) {
            Ok(config) => {
                if let Some(srv) = rt.servers.iter_mut().find(|x| x.name == s.name) {
                    srv.tls = Some(Arc::new(ServerTlsRt { config, sni }));
                }
            }
            Err(diags) => {
                for d in diags.iter().filter(|d| d.is_alert()) {
                    errors.push(err(d.to_string()));
                }
            }
        }
    }
}

/// Cookie persistence, with its `set-cookie` attributes rendered once.
fn cookie_rt(c: &model::Cookie, persist: bool) -> CookieRt {
    let secs = |d: Option<std::time::Duration>| {
        d.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
    };
    // haproxy 2.6 writes `; path=/`, then domains, attrs, `HttpOnly`, `Secure` (recorded).
    let mut attributes = String::from("; path=/");
    for d in &c.domains {
        attributes.push_str("; domain=");
        attributes.push_str(d);
    }
    for a in &c.attrs {
        attributes.push_str("; ");
        attributes.push_str(a);
    }
    if c.httponly {
        attributes.push_str("; HttpOnly");
    }
    if c.secure {
        attributes.push_str("; Secure");
    }
    CookieRt {
        name: c.name.clone(),
        mode: c.mode,
        preserve: c.preserve,
        persist,
        indirect: c.indirect,
        postonly: c.postonly,
        attributes,
        maxidle: secs(c.maxidle),
        maxlife: secs(c.maxlife),
    }
}

/// Keeps compiled rules only when they have work (rule lists, `use_backend`...), so proxies
/// without rules cost nothing per request.
fn compiled(
    r: Result<ringlb_rules::ProxyRules, ringlb_rules::CompileError>,
    errors: &mut Vec<TopologyError>,
    warnings: &mut Vec<TopologyError>,
) -> Option<ringlb_rules::ProxyRules> {
    match r {
        Ok(mut p) => {
            warnings.extend(p.warnings.drain(..).map(|w| TopologyError {
                names_place: false,
                loc: w.loc,
                message: w.msg,
            }));
            warnings.extend(p.proxy_warnings.drain(..).map(|w| TopologyError {
                names_place: true,
                loc: w.loc,
                message: w.msg,
            }));
            let work = !p.http_request.rules.is_empty()
                || !p.http_response.rules.is_empty()
                || !p.http_after_response.rules.is_empty()
                || !p.use_backends.is_empty()
                || !p.use_servers.is_empty()
                || !p.persist.is_empty()
                || !p.stick.is_empty()
                || p.monitor_uri.is_some()
                || p.unique_id_format.is_some()
                // `balance hash <expr>` / `rdp-cookie`: a sample to fetch per request.
                || p.balance_key.is_some()
                // `tcp-request` rules (stick-table tracking, reject, content inspection).
                || !p.tcp.is_empty();
            work.then_some(p)
        }
        Err(e) => {
            errors.push(TopologyError {
                names_place: false,
                loc: e.loc.clone(),
                message: format!("'{}' : {}", e.keyword, e.msg),
            });
            None
        }
    }
}

/// A global keyword kept as written (`maxsslconn 100`) read as a number; 0 when absent.
fn global_u32(g: &ringlb_config::model::Global, kw: &str) -> u32 {
    g.other
        .iter()
        .rev()
        .find(|d| d.keyword == kw)
        .and_then(|d| d.args.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn retry_on_keywords_and_statuses() {
        let r = RetryOn::parse(&words("conn-failure 503 504"));
        assert!(r.conn_failure && !r.empty_response);
        assert!(r.on_status(503) && r.on_status(504) && !r.on_status(500) && !r.on_status(200));
        let all = RetryOn::parse(&words("all-retryable-errors"));
        assert!(
            all.conn_failure && all.empty_response && all.junk_response && all.response_timeout
        );
        assert!(all.on_status(500) && all.on_status(502) && !all.on_status(404));
        // `none` resets what came before it.
        assert_eq!(RetryOn::parse(&words("503 none")), RetryOn::default());
        assert!(RetryOn::parse(&words("401 403")).on_status(403));
    }

    fn topo_of(text: &str) -> Topology {
        let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
        Topology::from_config(&loaded.config).unwrap()
    }

    #[test]
    fn proxy_ids_follow_haproxy() {
        // Recorded from haproxy 2.6 (`show stat` iid): declaration order from 1, a `listen` is
        // one proxy, and a `stats socket` takes id 1 for haproxy's CLI proxy.
        let body = "defaults\n    mode http\n    timeout client 1s\n    timeout server 1s\n    timeout connect 1s\nfrontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    server s1 127.0.0.1:2 id 7\n    server s2 127.0.0.1:3\nlisten both\n    bind 127.0.0.1:4\n    server t1 127.0.0.1:5\n";
        let t = topo_of(body);
        let ids: Vec<(&str, u32, bool, bool)> = t
            .proxies
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.id,
                    p.frontend.is_some(),
                    p.backend.is_some(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("fe", 1, true, false),
                ("be", 2, false, true),
                ("both", 3, true, true)
            ]
        );
        let puids: Vec<u32> = t.backends[0]
            .balance
            .servers
            .iter()
            .map(|s| s.puid)
            .collect();
        assert_eq!(puids, [7, 2]);
        let with_socket = format!("global\n    stats socket /tmp/x.sock\n{body}");
        let t = topo_of(&with_socket);
        assert_eq!(
            t.proxies.iter().map(|p| p.id).collect::<Vec<_>>(),
            [2, 3, 4]
        );
    }
}
