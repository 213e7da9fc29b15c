//! The statistics data model: per-shard counters with `merge`, and the [`Snapshot`] of the
//! whole process that every renderer reads.
//!
//! Merge rules (documented because per-shard counters change HAProxy's semantics a little):
//! counters and gauges add up; the session peaks (`smax`) take the maximum of the shards'
//! peaks, a lower bound of the process-wide peak that the engine raises with its sampled
//! sums of the shards' current counts (`ringlb_shard::counters::Gauges`); the peaks of
//! queues and rates add up (an upper bound: the shards' peaks need not coincide; with load
//! spread evenly it is close to HAProxy's single peak); the `*time_max` peaks take the
//! maximum; `last_sess` the latest.

use crate::freq::{FreqCtr, SwRate};
use crate::latency::{LatencyHistograms, RequestTimes};

macro_rules! merge_fields {
    ($s:ident, $o:ident; add: $($a:ident),* ; max: $($m:ident),* ; merge: $($g:ident),*) => {
        $( $s.$a = $s.$a.saturating_add($o.$a); )*
        $( $s.$m = $s.$m.max($o.$m); )*
        $( $s.$g.merge(&$o.$g); )*
    };
}

/// HTTP responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other (`hrsp_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpResponses(pub [u64; 6]);

impl HttpResponses {
    /// Counts one response with `status` (HAProxy's classes: 100..=599 by hundreds, else other).
    #[inline]
    pub fn count(&mut self, status: u16) {
        let i = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        if let Some(c) = self.0.get_mut(i) {
            *c += 1;
        }
    }

    pub fn merge(&mut self, o: &HttpResponses) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }
}

/// SSL counters of the `ssl` stats module (`ssl_sess`, `ssl_reused_sess`, `ssl_failed_handshake`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SslCounters {
    pub sess: u64,
    pub reused_sess: u64,
    pub failed_handshake: u64,
}

impl SslCounters {
    pub fn merge(&mut self, o: &SslCounters) {
        merge_fields!(self, o; add: sess, reused_sess, failed_handshake; max: ; merge: );
    }
}

/// The `h1` and `h2` stats modules' counters (frontends and backends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MuxCounters {
    pub h2_headers_rcvd: u64,
    pub h2_data_rcvd: u64,
    pub h2_settings_rcvd: u64,
    pub h2_rst_stream_rcvd: u64,
    pub h2_goaway_rcvd: u64,
    pub h2_detected_conn_protocol_errors: u64,
    pub h2_detected_strm_protocol_errors: u64,
    pub h2_rst_stream_resp: u64,
    pub h2_goaway_resp: u64,
    pub h2_open_connections: u64,
    pub h2_backend_open_streams: u64,
    pub h2_total_connections: u64,
    pub h2_backend_total_streams: u64,
    pub h1_open_connections: u64,
    pub h1_open_streams: u64,
    pub h1_total_connections: u64,
    pub h1_total_streams: u64,
    pub h1_bytes_in: u64,
    pub h1_bytes_out: u64,
    pub h1_spliced_bytes_in: u64,
    pub h1_spliced_bytes_out: u64,
}

impl MuxCounters {
    pub fn merge(&mut self, o: &MuxCounters) {
        merge_fields!(self, o; add: h2_headers_rcvd, h2_data_rcvd, h2_settings_rcvd,
            h2_rst_stream_rcvd, h2_goaway_rcvd, h2_detected_conn_protocol_errors,
            h2_detected_strm_protocol_errors, h2_rst_stream_resp, h2_goaway_resp,
            h2_open_connections, h2_backend_open_streams, h2_total_connections,
            h2_backend_total_streams, h1_open_connections, h1_open_streams,
            h1_total_connections, h1_total_streams, h1_bytes_in, h1_bytes_out,
            h1_spliced_bytes_in, h1_spliced_bytes_out; max: ; merge: );
    }
}

/// HAProxy's averages and peaks of the queue/connect/response/total times (ms) of successful
/// requests (`qtime ctime rtime ttime`, `*_max`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeStats {
    pub q: SwRate,
    pub c: SwRate,
    pub d: SwRate,
    pub t: SwRate,
    pub qtime_max: u32,
    pub ctime_max: u32,
    pub rtime_max: u32,
    pub ttime_max: u32,
}

fn ms(us: Option<u64>) -> Option<u32> {
    us.map(|v| u32::try_from(v / 1000).unwrap_or(u32::MAX))
}

impl TimeStats {
    /// Records a request's times like `stream_update_time_stats`: only requests that got a
    /// response (response and total known) count; a missing queue or connect phase (no queue,
    /// reused connection) counts as 0. For TCP, pass `response_us: Some(0)` (HAProxy's
    /// `rtime` is 0 in TCP mode) and the session duration as `total_us`.
    #[inline]
    pub fn record(&mut self, t: &RequestTimes) {
        let (Some(d), Some(tt)) = (ms(t.response_us), ms(t.total_us)) else {
            return;
        };
        let q = ms(t.queue_us).unwrap_or(0);
        let c = ms(t.connect_us).unwrap_or(0);
        self.q.add(q);
        self.c.add(c);
        self.d.add(d);
        self.t.add(tt);
        self.qtime_max = self.qtime_max.max(q);
        self.ctime_max = self.ctime_max.max(c);
        self.rtime_max = self.rtime_max.max(d);
        self.ttime_max = self.ttime_max.max(tt);
    }

    pub fn merge(&mut self, o: &TimeStats) {
        merge_fields!(self, o; add: ; max: qtime_max, ctime_max, rtime_max, ttime_max;
            merge: q, c, d, t);
    }
}

/// A frontend's counters (HAProxy's `fe_counters` plus its session gauge), one per shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontendCounters {
    /// `scur`: sessions now open.
    pub cur_sess: u32,
    /// `smax`.
    pub max_sess: u32,
    /// `stot`.
    pub cum_sess: u64,
    /// `conn_tot`: accepted connections.
    pub cum_conn: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `dreq`.
    pub denied_req: u64,
    /// `dresp`.
    pub denied_resp: u64,
    /// `ereq`.
    pub failed_req: u64,
    /// `dcon`: refused by `tcp-request connection` rules.
    pub denied_conn: u64,
    /// `dses`: refused by `tcp-request session` rules.
    pub denied_sess: u64,
    /// `wrew`.
    pub failed_rewrites: u64,
    /// `eint`.
    pub internal_errors: u64,
    /// `intercepted`: requests answered by HAProxy itself (stats, redirects, returns...).
    pub intercepted_req: u64,
    pub rsp: HttpResponses,
    /// `req_tot`.
    pub cum_req: u64,
    pub comp_in: u64,
    pub comp_out: u64,
    pub comp_byp: u64,
    pub comp_rsp: u64,
    pub cache_lookups: u64,
    pub cache_hits: u64,
    /// `rate`, `rate_max`.
    pub sess_per_sec: FreqCtr,
    pub sps_max: u32,
    /// `conn_rate`, `conn_rate_max`.
    pub conn_per_sec: FreqCtr,
    pub cps_max: u32,
    /// `req_rate`, `req_rate_max`.
    pub req_per_sec: FreqCtr,
    pub rps_max: u32,
    pub ssl: SslCounters,
    pub mux: MuxCounters,
}

impl FrontendCounters {
    pub fn merge(&mut self, o: &FrontendCounters) {
        merge_fields!(self, o; add: cur_sess, cum_sess, cum_conn, bytes_in, bytes_out,
            denied_req, denied_resp, failed_req, denied_conn, denied_sess, failed_rewrites,
            internal_errors, intercepted_req, cum_req, comp_in, comp_out, comp_byp, comp_rsp,
            cache_lookups, cache_hits, sps_max, cps_max, rps_max; max: max_sess;
            merge: rsp, sess_per_sec, conn_per_sec, req_per_sec, ssl, mux);
    }

    /// A connection accepted at `now_ms` (counts `conn_tot`, `conn_rate`).
    #[inline]
    pub fn on_connection(&mut self, now_ms: u64) {
        self.cum_conn += 1;
        let r = self.conn_per_sec.add(now_ms, 1);
        self.cps_max = self.cps_max.max(r);
    }

    /// A session started at `now_ms` (`scur`, `smax`, `stot`, `rate`).
    #[inline]
    pub fn on_session_start(&mut self, now_ms: u64) {
        self.cur_sess += 1;
        self.max_sess = self.max_sess.max(self.cur_sess);
        self.cum_sess += 1;
        let r = self.sess_per_sec.add(now_ms, 1);
        self.sps_max = self.sps_max.max(r);
    }

    #[inline]
    pub fn on_session_end(&mut self) {
        self.cur_sess = self.cur_sess.saturating_sub(1);
    }

    /// An HTTP request received at `now_ms` (`req_tot`, `req_rate`).
    #[inline]
    pub fn on_request(&mut self, now_ms: u64) {
        self.cum_req += 1;
        let r = self.req_per_sec.add(now_ms, 1);
        self.rps_max = self.rps_max.max(r);
    }
}

/// A backend's counters (HAProxy's `be_counters` plus queue and session gauges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendCounters {
    /// `qcur`: requests queued without a server assigned.
    pub queue_cur: u32,
    pub queue_max: u32,
    pub cur_sess: u32,
    pub max_sess: u32,
    pub cum_sess: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub denied_req: u64,
    pub denied_resp: u64,
    /// `econ`.
    pub failed_conns: u64,
    /// `eresp`.
    pub failed_resp: u64,
    /// `wretr`.
    pub retries: u64,
    /// `wredis`.
    pub redispatches: u64,
    /// `lbtot`: times a server was picked by the balancer.
    pub cum_lbconn: u64,
    pub rsp: HttpResponses,
    pub cum_req: u64,
    pub cli_aborts: u64,
    pub srv_aborts: u64,
    pub comp_in: u64,
    pub comp_out: u64,
    pub comp_byp: u64,
    pub comp_rsp: u64,
    /// `connect`: new server connections; `reuse`: requests on a reused one.
    pub connect: u64,
    pub reuse: u64,
    pub cache_lookups: u64,
    pub cache_hits: u64,
    pub failed_rewrites: u64,
    pub internal_errors: u64,
    pub sess_per_sec: FreqCtr,
    pub sps_max: u32,
    /// When the last session was assigned (ms on the snapshot's clock).
    pub last_sess_ms: Option<u64>,
    pub times: TimeStats,
    pub ssl: SslCounters,
    pub mux: MuxCounters,
}

impl BackendCounters {
    pub fn merge(&mut self, o: &BackendCounters) {
        merge_fields!(self, o; add: queue_cur, queue_max, cur_sess, cum_sess, bytes_in,
            bytes_out, denied_req, denied_resp, failed_conns, failed_resp, retries, redispatches,
            cum_lbconn, cum_req, cli_aborts, srv_aborts, comp_in, comp_out, comp_byp, comp_rsp,
            connect, reuse, cache_lookups, cache_hits, failed_rewrites, internal_errors, sps_max;
            max: max_sess, last_sess_ms; merge: rsp, sess_per_sec, times, ssl, mux);
    }

    /// A session assigned to this backend at `now_ms`.
    #[inline]
    pub fn on_session_start(&mut self, now_ms: u64) {
        self.cur_sess += 1;
        self.max_sess = self.max_sess.max(self.cur_sess);
        self.cum_sess += 1;
        let r = self.sess_per_sec.add(now_ms, 1);
        self.sps_max = self.sps_max.max(r);
        self.last_sess_ms = Some(now_ms);
    }

    #[inline]
    pub fn on_session_end(&mut self) {
        self.cur_sess = self.cur_sess.saturating_sub(1);
    }
}

/// A server's counters (HAProxy's `srv->counters` plus its gauges), one per shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCounters {
    /// `qcur`: requests waiting for this server.
    pub queue_cur: u32,
    pub queue_max: u32,
    pub cur_sess: u32,
    pub max_sess: u32,
    pub cum_sess: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub denied_resp: u64,
    pub failed_conns: u64,
    pub failed_resp: u64,
    pub retries: u64,
    pub redispatches: u64,
    pub cum_lbconn: u64,
    pub rsp: HttpResponses,
    pub cum_req: u64,
    pub cli_aborts: u64,
    pub srv_aborts: u64,
    pub connect: u64,
    pub reuse: u64,
    pub failed_rewrites: u64,
    pub internal_errors: u64,
    pub sess_per_sec: FreqCtr,
    pub sps_max: u32,
    pub last_sess_ms: Option<u64>,
    pub times: TimeStats,
    /// `hanafail`: failed health analyses (`observe`).
    pub failed_hana: u64,
    /// `srv_icur`: idle connections; `safe_conn_cur`/`used_conn_cur`/`need_conn_est` as HAProxy.
    pub idle_conn_cur: u32,
    pub safe_conn_cur: u32,
    pub used_conn_cur: u32,
    pub need_conn_est: u32,
    pub ssl: SslCounters,
}

impl ServerCounters {
    pub fn merge(&mut self, o: &ServerCounters) {
        merge_fields!(self, o; add: queue_cur, queue_max, cur_sess, cum_sess, bytes_in,
            bytes_out, denied_resp, failed_conns, failed_resp, retries, redispatches, cum_lbconn,
            cum_req, cli_aborts, srv_aborts, connect, reuse, failed_rewrites, internal_errors,
            sps_max, failed_hana, idle_conn_cur, safe_conn_cur, used_conn_cur, need_conn_est;
            max: max_sess, last_sess_ms; merge: rsp, sess_per_sec, times, ssl);
    }

    /// A session assigned to this server at `now_ms` (`lbtot` is counted separately, only
    /// when the balancer picked it).
    #[inline]
    pub fn on_session_start(&mut self, now_ms: u64) {
        self.cur_sess += 1;
        self.max_sess = self.max_sess.max(self.cur_sess);
        self.cum_sess += 1;
        let r = self.sess_per_sec.add(now_ms, 1);
        self.sps_max = self.sps_max.max(r);
        self.last_sess_ms = Some(now_ms);
    }

    #[inline]
    pub fn on_session_end(&mut self) {
        self.cur_sess = self.cur_sess.saturating_sub(1);
    }
}

/// A listener's (`bind` line's) counters; shown with `option socket-stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerCounters {
    pub cur_sess: u32,
    pub max_sess: u32,
    pub cum_sess: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub denied_req: u64,
    pub denied_resp: u64,
    pub failed_req: u64,
    pub denied_conn: u64,
    pub denied_sess: u64,
    pub failed_rewrites: u64,
    pub internal_errors: u64,
    pub ssl: SslCounters,
}

impl ListenerCounters {
    pub fn merge(&mut self, o: &ListenerCounters) {
        merge_fields!(self, o; add: cur_sess, cum_sess, bytes_in, bytes_out,
            denied_req, denied_resp, failed_req, denied_conn, denied_sess, failed_rewrites,
            internal_errors; max: max_sess; merge: ssl);
    }
}

/// Process-wide counters kept per shard (`show info`, `haproxy_process_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCounters {
    /// `CurrConns`.
    pub curr_conns: u32,
    /// `CumConns`.
    pub cum_conns: u64,
    /// `CumReq`.
    pub cum_req: u64,
    pub conn_per_sec: FreqCtr,
    pub max_conn_rate: u32,
    pub sess_per_sec: FreqCtr,
    pub max_sess_rate: u32,
    pub curr_ssl_conns: u32,
    pub cum_ssl_conns: u64,
    pub total_bytes_out: u64,
    pub bytes_out_per_sec: FreqCtr,
    /// `DroppedLogs`: log lines dropped because a target was slow (per-shard buffers full).
    pub dropped_logs: u64,
    /// `Tasks`, `Run_queue`: the shards' task counts.
    pub tasks: u32,
    pub run_queue: u32,
}

impl ProcessCounters {
    pub fn merge(&mut self, o: &ProcessCounters) {
        merge_fields!(self, o; add: curr_conns, cum_conns, cum_req, max_conn_rate, max_sess_rate,
            curr_ssl_conns, cum_ssl_conns, total_bytes_out, dropped_logs, tasks, run_queue;
            max: ; merge: conn_per_sec, sess_per_sec, bytes_out_per_sec);
    }
}

/// Proxy mode (`mode` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Tcp,
    Http,
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Tcp => "tcp",
            ProxyMode::Http => "http",
        }
    }
}

/// A frontend's or listener's state (`status`: OPEN, FULL, STOP...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenState {
    #[default]
    Open,
    /// maxconn reached.
    Full,
    /// Stopped or paused (soft stop, `disable frontend`).
    Stop,
    /// Listener waiting for resources (HAProxy's `WAITING`).
    Waiting,
    /// Paused (`disable frontend`).
    Paused,
}

impl ListenState {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenState::Open => "OPEN",
            ListenState::Full => "FULL",
            ListenState::Stop => "STOP",
            ListenState::Waiting => "WAITING",
            ListenState::Paused => "PAUSED",
        }
    }
}

/// The frontend side of a proxy.
#[derive(Debug, Clone, Default)]
pub struct FrontendStats {
    pub counters: FrontendCounters,
    /// `slim`: the frontend's `maxconn`.
    pub maxconn: u32,
    /// `rate_lim`: `rate-limit sessions` (0 = none).
    pub rate_limit_sessions: u32,
    pub state: ListenState,
}

/// The backend side of a proxy.
#[derive(Debug, Clone, Default)]
pub struct BackendStats {
    pub counters: BackendCounters,
    pub latency: LatencyHistograms,
    /// `algo`: the `balance` keyword's algorithm name (roundrobin, leastconn, source...).
    pub algo: String,
    /// `slim` for a backend is its `fullconn`.
    pub fullconn: u32,
    /// `cookie` name if `cookie` is configured.
    pub cookie: Option<String>,
    /// When the backend last went UP or DOWN (ms on the snapshot's clock).
    pub last_change_ms: u64,
    /// Time spent with no usable server, up to `last_change_ms` (ms).
    pub down_time_ms: u64,
    /// `chkdown`: times the backend went DOWN.
    pub down_trans: u64,
    /// `option allbackups`: all usable backup servers share the load, not only the first.
    pub allbackups: bool,
}

/// The operational state of a server (health checks, tracking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OperState {
    #[default]
    Running,
    /// In slow start after coming back.
    Starting,
    /// `disable-on-404` or agent `stopped`: NOLB, only persistent traffic.
    Stopping,
    Stopped,
}

/// The administrative state of a server (`set server`, admin form, `disabled`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminState {
    /// Forced maintenance (`disabled`, `set server ... state maint`).
    pub maint: bool,
    /// Maintenance inherited from a tracked server: `(backend, server)` of the tracked one.
    pub maint_via: Option<(String, String)>,
    /// Maintenance because its address cannot be resolved.
    pub maint_resolution: bool,
    /// Drain: weight 0, no new traffic, persistent sessions still served.
    pub drain: bool,
}

impl AdminState {
    pub fn in_maintenance(&self) -> bool {
        self.maint || self.maint_via.is_some() || self.maint_resolution
    }
}

/// One health check's or agent's stats fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Short status (`check_status`): `L7OK`, `L4CON`, `INI`, `SOCKERR`... (HAProxy's
    /// `get_check_status_info`).
    pub status: String,
    /// Long description (`check_desc`): `Layer7 check passed`...
    pub desc: String,
    /// `check_code`: the L5-7 response code, for statuses that carry one.
    pub code: Option<u32>,
    /// `check_duration` (ms) of the last completed check, if it completed.
    pub duration_ms: Option<u64>,
    /// `last_chk`: the last check's text (`Connection refused`, `Service Unavailable`...).
    pub info: String,
    pub rise: u32,
    pub fall: u32,
    /// 0..rise+fall-1; UP at `rise` and above.
    pub health: u32,
    /// A check is running now: `* ` before the status in `show stat`.
    pub in_progress: bool,
}

/// One server's stats.
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    pub name: String,
    /// `sid`: the server's `id` (1-based position unless set).
    pub id: u32,
    /// `addr`: `ip:port` as configured and resolved.
    pub addr: String,
    pub oper: OperState,
    pub admin: AdminState,
    /// `weight`: current effective weight (slow start scales it; drain and maintenance do
    /// not, they are admin flags); `uweight`: the user-set weight.
    pub weight: u32,
    pub uweight: u32,
    pub backup: bool,
    /// `slim`: `maxconn` (0 = none).
    pub maxconn: u32,
    /// `qlimit`: `maxqueue` (0 = none).
    pub maxqueue: u32,
    /// `throttle`: slow-start percentage while starting.
    pub throttle_pct: Option<u32>,
    /// `tracked`: `backend/server` this one tracks.
    pub tracked: Option<String>,
    pub cookie: Option<String>,
    /// The server's own health check and agent, when enabled (not paused).
    pub check: Option<CheckStats>,
    pub agent: Option<CheckStats>,
    /// For a tracking server (`track`), the check of the server at the end of the chain: the
    /// status text (`UP 1/3`...) follows it.
    pub tracked_check: Option<CheckStats>,
    /// `observe layer4|layer7`: show `hanafail`.
    pub observe: bool,
    /// `pool-max-conn` (`srv_ilim`), when set.
    pub max_idle_conns: Option<u32>,
    /// `chkfail`, `chkdown`.
    pub failed_checks: u64,
    pub down_trans: u64,
    /// Last state change (ms on the snapshot's clock).
    pub last_change_ms: u64,
    /// Time DOWN up to `last_change_ms` (ms).
    pub down_time_ms: u64,
    pub counters: ServerCounters,
    pub latency: LatencyHistograms,
}

/// One listener (`bind` line), listed with `option socket-stats`.
#[derive(Debug, Clone)]
pub struct ListenerStats {
    pub name: String,
    pub id: u32,
    pub addr: String,
    pub state: ListenState,
    pub maxconn: u32,
    pub counters: ListenerCounters,
}

/// One proxy: a frontend, a backend or both (`listen`).
#[derive(Debug, Clone)]
pub struct ProxyStats {
    pub name: String,
    /// `iid`.
    pub id: u32,
    pub mode: ProxyMode,
    /// `description` (stats page with `show-desc`... per proxy).
    pub desc: Option<String>,
    /// The proxy is stopped (soft-stop finished or disabled).
    pub stopped: bool,
    pub frontend: Option<FrontendStats>,
    pub backend: Option<BackendStats>,
    pub listeners: Vec<ListenerStats>,
    pub servers: Vec<ServerStats>,
}

/// Process information (`show info`, `haproxy_process_*`).
#[derive(Debug, Clone, Default)]
pub struct ProcessInfo {
    /// `Name`: "HAProxy" in haproxy; kept configurable so dashboards matching it keep working.
    pub name: String,
    pub version: String,
    pub release_date: String,
    pub nbthread: u32,
    pub pid: u32,
    /// Process start (ms on the snapshot's clock) and the wall-clock start (Unix s).
    pub start_ms: u64,
    pub start_time_unix_s: u64,
    pub ulimit_n: u64,
    pub maxsock: u64,
    pub maxconn: u32,
    pub hard_maxconn: u32,
    pub maxpipes: u32,
    pub conn_rate_limit: u32,
    pub sess_rate_limit: u32,
    /// `maxsslrate` (`SslRateLimit`).
    pub ssl_rate_limit: u32,
    pub node: String,
    pub description: Option<String>,
    pub stopping: bool,
    pub jobs: u32,
    pub unstoppable_jobs: u32,
    pub listeners: u32,
    pub idle_pct: u32,
    pub pool_alloc_bytes: u64,
    pub pool_used_bytes: u64,
    pub counters: ProcessCounters,
}

/// Everything a renderer needs, with the clock that `lastchg`, rates and uptime are read at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Monotonic ms, the same clock as the counters' timestamps.
    pub now_ms: u64,
    pub process: ProcessInfo,
    pub proxies: Vec<ProxyStats>,
    /// Stick tables in declaration order (the exporter's `sticktable` scope).
    pub tables: Vec<StickTableStats>,
}

/// One stick table as the exporter shows it (`haproxy_sticktable_size|used`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StickTableStats {
    pub name: String,
    /// The key type's name (`ip`, `ipv6`, `integer`, `string`, `binary`).
    pub key_type: String,
    /// `size`: entries it may hold.
    pub size: u64,
    /// Entries it holds now.
    pub used: u64,
}

/// One proxy's counters on one shard: both sides (a `listen` has both), its listeners and
/// its servers (in configuration order), with the backend's and servers' latency histograms.
#[derive(Debug, Clone, Default)]
pub struct ProxyCounters {
    pub frontend: FrontendCounters,
    pub backend: BackendCounters,
    /// `None` for a proxy without a backend side (no histogram memory spent).
    pub backend_latency: Option<LatencyHistograms>,
    pub listeners: Vec<ListenerCounters>,
    pub servers: Vec<ServerCounters>,
    pub server_latency: Vec<LatencyHistograms>,
}

impl ProxyCounters {
    /// Allocates everything up front (startup), nothing later on the request path.
    pub fn new(has_backend: bool, listeners: usize, servers: usize) -> ProxyCounters {
        ProxyCounters {
            backend_latency: has_backend.then(LatencyHistograms::new),
            listeners: vec![ListenerCounters::default(); listeners],
            servers: vec![ServerCounters::default(); servers],
            server_latency: (0..servers).map(|_| LatencyHistograms::new()).collect(),
            ..ProxyCounters::default()
        }
    }

    /// Adds another shard's counters of the same proxy (same listeners and servers).
    pub fn merge(&mut self, o: &ProxyCounters) {
        self.frontend.merge(&o.frontend);
        self.backend.merge(&o.backend);
        if let (Some(a), Some(b)) = (&mut self.backend_latency, &o.backend_latency) {
            a.merge(b);
        }
        for (a, b) in self.listeners.iter_mut().zip(&o.listeners) {
            a.merge(b);
        }
        for (a, b) in self.servers.iter_mut().zip(&o.servers) {
            a.merge(b);
        }
        for (a, b) in self.server_latency.iter_mut().zip(&o.server_latency) {
            a.merge(b);
        }
    }
}

/// Everything one shard counts: the process counters and one [`ProxyCounters`] per proxy,
/// indexed like [`Snapshot::proxies`].
#[derive(Debug, Clone, Default)]
pub struct ShardCounters {
    pub process: ProcessCounters,
    pub proxies: Vec<ProxyCounters>,
}

impl ShardCounters {
    pub fn merge(&mut self, o: &ShardCounters) {
        self.process.merge(&o.process);
        for (a, b) in self.proxies.iter_mut().zip(&o.proxies) {
            a.merge(b);
        }
    }
}

impl Snapshot {
    /// Copies merged counters into the snapshot (proxies, listeners and servers by position).
    pub fn set_counters(&mut self, c: &ShardCounters) {
        self.process.counters = c.process.clone();
        for (px, pc) in self.proxies.iter_mut().zip(&c.proxies) {
            if let Some(fe) = &mut px.frontend {
                fe.counters = pc.frontend.clone();
            }
            if let Some(be) = &mut px.backend {
                be.counters = pc.backend.clone();
                if let Some(l) = &pc.backend_latency {
                    be.latency = l.clone();
                }
            }
            for (li, lc) in px.listeners.iter_mut().zip(&pc.listeners) {
                li.counters = lc.clone();
            }
            for (i, sv) in px.servers.iter_mut().enumerate() {
                if let Some(sc) = pc.servers.get(i) {
                    sv.counters = sc.clone();
                }
                if let Some(l) = pc.server_latency.get(i) {
                    sv.latency = l.clone();
                }
            }
        }
    }
}
