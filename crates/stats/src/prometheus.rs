//! HAProxy 2.6's Prometheus exporter (`http-request use-service prometheus-exporter`):
//! the same metric names, help texts, types, labels and order, the `scope` and `no-maint`
//! query filters, plus `haproxy_backend_up` (from the separate haproxy_exporter, which the
//! guide's alerts use), `haproxy_backend_queue_current` (the guide's name for
//! `haproxy_backend_current_queue`) and ringlb's latency histograms.

use crate::field::Val;
use crate::fill::{backend_agg, fill_backend, fill_frontend, fill_listener, fill_server, FillOpts};
use crate::latency::{Latency, LatencyHistograms};
use crate::model::{ListenState, OperState, ProxyMode, ServerStats, Snapshot};
use crate::show::{info_values, NALL};
use crate::tables::*;
use std::fmt::Write;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

const FE: u8 = 1;
const LI: u8 = 2;
const BE: u8 = 4;
const SV: u8 = 8;

/// Scopes of `?scope=` (HAProxy's `PROMEX_FL_SCOPE_*`).
pub mod scope {
    pub const GLOBAL: u32 = 1;
    pub const FRONTEND: u32 = 2;
    pub const LISTENER: u32 = 4;
    pub const BACKEND: u32 = 8;
    pub const SERVER: u32 = 16;
    pub const STICKTABLE: u32 = 32;
    pub const ALL: u32 = 63;
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromRequest {
    pub scopes: u32,
    /// `no-maint`: leave out servers in maintenance.
    pub no_maint: bool,
}

impl Default for PromRequest {
    fn default() -> Self {
        PromRequest {
            scopes: scope::ALL,
            no_maint: false,
        }
    }
}

fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses the query string (after `?`, without it) like `promex_parse_uri`: every `scope=X`
/// adds a scope (the first one clears the default "all"; `scope=` alone selects nothing,
/// `scope=*` everything); `no-maint` hides servers in maintenance. An unknown scope or a
/// malformed parameter is an error (HAProxy answers 400).
pub fn parse_query(query: &str) -> Result<PromRequest, String> {
    let mut scopes = 0u32;
    let mut any_scope = false;
    let mut no_maint = false;
    let query = query.split('#').next().unwrap_or("");
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => {
                if v.contains('=') {
                    return Err(format!("malformed parameter '{param}'"));
                }
                (k, Some(v))
            }
            None => (param, None),
        };
        let key = url_decode(key).ok_or("bad percent-encoding")?;
        let value = match value {
            Some(v) => Some(url_decode(v).ok_or("bad percent-encoding")?),
            None => None,
        };
        match key.as_str() {
            "scope" => {
                any_scope = true;
                let Some(v) = value else {
                    return Err("scope without a value".into());
                };
                scopes |= match v.as_str() {
                    "" => {
                        scopes = 0;
                        0
                    }
                    "*" => scope::ALL,
                    "global" => scope::GLOBAL,
                    "frontend" => scope::FRONTEND,
                    "listener" => scope::LISTENER,
                    "backend" => scope::BACKEND,
                    "server" => scope::SERVER,
                    "sticktable" => scope::STICKTABLE,
                    other => return Err(format!("unknown scope '{other}'")),
                };
            }
            "no-maint" => no_maint = true,
            _ => {}
        }
    }
    Ok(PromRequest {
        scopes: if any_scope { scopes } else { scope::ALL },
        no_maint,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

use Kind::{Counter as C, Gauge as G};

/// `haproxy_process_*`: (show info field, name, type), in field order.
const PROCESS_METRICS: [(usize, &str, Kind); 60] = [
    (3, "nbthread", G),
    (4, "nbproc", G),
    (5, "relative_process_id", G),
    (8, "uptime_seconds", G),
    (12, "pool_failures_total", C),
    (13, "max_fds", G),
    (14, "max_sockets", G),
    (15, "max_connections", G),
    (16, "hard_max_connections", G),
    (17, "current_connections", G),
    (18, "connections_total", C),
    (19, "requests_total", C),
    (20, "max_ssl_connections", G),
    (21, "current_ssl_connections", G),
    (22, "ssl_connections_total", C),
    (23, "max_pipes", G),
    (24, "pipes_used_total", C),
    (25, "pipes_free_total", C),
    (26, "current_connection_rate", G),
    (27, "limit_connection_rate", G),
    (28, "max_connection_rate", G),
    (29, "current_session_rate", G),
    (30, "limit_session_rate", G),
    (31, "max_session_rate", G),
    (32, "current_ssl_rate", G),
    (33, "limit_ssl_rate", G),
    (34, "max_ssl_rate", G),
    (35, "current_frontend_ssl_key_rate", G),
    (36, "max_frontend_ssl_key_rate", G),
    (37, "frontend_ssl_reuse", G),
    (38, "current_backend_ssl_key_rate", G),
    (39, "max_backend_ssl_key_rate", G),
    (40, "ssl_cache_lookups_total", C),
    (41, "ssl_cache_misses_total", C),
    (42, "http_comp_bytes_in_total", C),
    (43, "http_comp_bytes_out_total", C),
    (44, "limit_http_comp", G),
    (45, "current_zlib_memory", G),
    (46, "max_zlib_memory", G),
    (47, "current_tasks", G),
    (48, "current_run_queue", G),
    (49, "idle_time_percent", G),
    (52, "stopping", G),
    (53, "jobs", G),
    (54, "unstoppable_jobs", G),
    (55, "listeners", G),
    (56, "active_peers", G),
    (57, "connected_peers", G),
    (58, "dropped_logs_total", C),
    (59, "busy_polling_enabled", G),
    (60, "failed_resolutions", C),
    (61, "bytes_out_total", C),
    (62, "spliced_bytes_out_total", C),
    (63, "bytes_out_rate", G),
    (65, "recv_logs_total", C),
    (66, "build_info", G),
    (67, "max_memory_bytes", G),
    (68, "pool_allocated_bytes", G),
    (69, "pool_used_bytes", G),
    (70, "start_time_seconds", G),
];

/// Proxy metrics: (stat field, name, type, objects), in field order.
const ST_METRICS: &[(usize, &str, Kind, u8)] = &[
    (F_QCUR, "current_queue", G, BE | SV),
    (F_QMAX, "max_queue", G, BE | SV),
    (F_SCUR, "current_sessions", G, FE | LI | BE | SV),
    (F_SMAX, "max_sessions", G, FE | LI | BE | SV),
    (F_SLIM, "limit_sessions", G, FE | LI | BE | SV),
    (F_STOT, "sessions_total", C, FE | LI | BE | SV),
    (F_BIN, "bytes_in_total", C, FE | LI | BE | SV),
    (F_BOUT, "bytes_out_total", C, FE | LI | BE | SV),
    (F_DREQ, "requests_denied_total", C, FE | LI | BE),
    (F_DRESP, "responses_denied_total", C, FE | LI | BE | SV),
    (F_EREQ, "request_errors_total", C, FE | LI),
    (F_ECON, "connection_errors_total", C, BE | SV),
    (F_ERESP, "response_errors_total", C, BE | SV),
    (F_WRETR, "retry_warnings_total", C, BE | SV),
    (F_WREDIS, "redispatch_warnings_total", C, BE | SV),
    (F_STATUS, "status", G, FE | LI | BE | SV),
    (F_WEIGHT, "weight", G, BE | SV),
    (F_ACT, "active_servers", G, BE),
    (F_BCK, "backup_servers", G, BE),
    (F_CHKFAIL, "check_failures_total", C, SV),
    (F_CHKDOWN, "check_up_down_total", C, BE | SV),
    (F_LASTCHG, "check_last_change_seconds", G, BE | SV),
    (F_DOWNTIME, "downtime_seconds_total", C, BE | SV),
    (F_QLIMIT, "queue_limit", G, SV),
    (F_THROTTLE, "current_throttle", G, SV),
    (F_LBTOT, "loadbalanced_total", C, BE | SV),
    (F_RATE_LIM, "limit_session_rate", G, FE),
    (F_RATE_MAX, "max_session_rate", G, FE | BE | SV),
    (F_CHECK_STATUS, "check_status", G, SV),
    (F_CHECK_CODE, "check_code", G, SV),
    (F_CHECK_DURATION, "check_duration_seconds", G, SV),
    (F_HRSP_1XX, "http_responses_total", C, FE | BE | SV),
    (F_HRSP_2XX, "http_responses_total", C, FE | BE | SV),
    (F_HRSP_3XX, "http_responses_total", C, FE | BE | SV),
    (F_HRSP_4XX, "http_responses_total", C, FE | BE | SV),
    (F_HRSP_5XX, "http_responses_total", C, FE | BE | SV),
    (F_HRSP_OTHER, "http_responses_total", C, FE | BE | SV),
    (F_REQ_RATE_MAX, "http_requests_rate_max", G, FE),
    (F_REQ_TOT, "http_requests_total", C, FE | BE),
    (F_CLI_ABRT, "client_aborts_total", C, BE | SV),
    (F_SRV_ABRT, "server_aborts_total", C, BE | SV),
    (F_COMP_IN, "http_comp_bytes_in_total", C, FE | BE),
    (F_COMP_OUT, "http_comp_bytes_out_total", C, FE | BE),
    (F_COMP_BYP, "http_comp_bytes_bypassed_total", C, FE | BE),
    (F_COMP_RSP, "http_comp_responses_total", C, FE | BE),
    (F_LASTSESS, "last_session_seconds", G, BE | SV),
    (F_QTIME, "queue_time_average_seconds", G, BE | SV),
    (F_CTIME, "connect_time_average_seconds", G, BE | SV),
    (F_RTIME, "response_time_average_seconds", G, BE | SV),
    (F_TTIME, "total_time_average_seconds", G, BE | SV),
    (F_CONN_RATE_MAX, "connections_rate_max", G, FE),
    (F_CONN_TOT, "connections_total", C, FE),
    (F_INTERCEPTED, "intercepted_requests_total", C, FE),
    (F_DCON, "denied_connections_total", C, FE | LI),
    (F_DSES, "denied_sessions_total", C, FE | LI),
    (
        F_WREW,
        "failed_header_rewriting_total",
        C,
        FE | LI | BE | SV,
    ),
    (F_CONNECT, "connection_attempts_total", C, BE | SV),
    (F_REUSE, "connection_reuses_total", C, BE | SV),
    (F_CACHE_LOOKUPS, "http_cache_lookups_total", C, FE | BE),
    (F_CACHE_HITS, "http_cache_hits_total", C, FE | BE),
    (F_SRV_ICUR, "idle_connections_current", G, SV),
    (F_SRC_ILIM, "idle_connections_limit", G, SV),
    (F_QTIME_MAX, "max_queue_time_seconds", G, BE | SV),
    (F_CTIME_MAX, "max_connect_time_seconds", G, BE | SV),
    (F_RTIME_MAX, "max_response_time_seconds", G, BE | SV),
    (F_TTIME_MAX, "max_total_time_seconds", G, BE | SV),
    (F_EINT, "internal_errors_total", C, FE | LI | BE | SV),
    (F_IDLE_CONN_CUR, "unsafe_idle_connections_current", G, SV),
    (F_SAFE_CONN_CUR, "safe_idle_connections_current", G, SV),
    (F_USED_CONN_CUR, "used_connections_current", G, SV),
    (F_NEED_CONN_EST, "need_connections_current", G, SV),
    (F_UWEIGHT, "uweight", G, BE | SV),
    (F_AGG_SERVER_STATUS, "agg_server_status", G, BE),
    (F_AGG_SERVER_CHECK_STATUS, "agg_server_check_status", G, BE),
    (F_AGG_CHECK_STATUS, "agg_check_status", G, BE),
];

/// The exporter's own help texts where it overrides the stats field's description.
fn help_override(field: usize) -> Option<&'static str> {
    Some(match field {
        F_STATUS => "Current status of the service, per state label value.",
        F_CHECK_STATUS => "Status of last health check, per state label value.",
        F_CHECK_CODE => "layer5-7 code, if available of the last health check.",
        F_CHECK_DURATION => "Total duration of the latest server health check, in seconds.",
        F_QTIME => "Avg. queue time for last 1024 successful connections.",
        F_CTIME => "Avg. connect time for last 1024 successful connections.",
        F_RTIME => "Avg. response time for last 1024 successful connections.",
        F_TTIME => "Avg. total time for last 1024 successful connections.",
        F_QTIME_MAX => "Maximum observed time spent in the queue",
        F_CTIME_MAX => "Maximum observed time spent waiting for a connection to complete",
        F_RTIME_MAX => "Maximum observed time spent waiting for a server response",
        F_TTIME_MAX => {
            "Maximum observed total request+response time (request+queue+connect+response+processing)"
        }
        _ => return None,
    })
}

/// Check statuses in HAProxy's order that count as a result (`>= CHK_RES_FAILED`): the
/// `state` labels of `haproxy_server_check_status` and `haproxy_backend_agg_check_status`.
pub const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
    "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];
const SRV_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];
const LI_STATES: [&str; 3] = ["WAITING", "OPEN", "FULL"];
const HRSP_CODES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// `promex_srv_status`: index in [`SRV_STATES`].
fn srv_state(sv: &ServerStats) -> usize {
    let mut s = match sv.oper {
        OperState::Running | OperState::Starting if sv.admin.drain => 3,
        OperState::Running | OperState::Starting => 1,
        OperState::Stopping => 4,
        OperState::Stopped => 0,
    };
    if sv.admin.maint || sv.admin.maint_via.is_some() {
        s = 2;
    }
    s
}

/// Output buffer that writes a metric's HELP/TYPE header before its first sample only.
struct Out {
    s: String,
    pending: Option<(String, &'static str, &'static str)>,
}

impl Out {
    fn header(&mut self, name: String, help: &'static str, kind: &'static str) {
        self.pending = Some((name, help, kind));
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: &Val<'_>) {
        match v.as_f64() {
            Some(x) if matches!(v, Val::Flt(_)) => self.sample_f(name, labels, |s| {
                let _ = write!(s, "{x:.6}");
            }),
            _ => self.sample_f(name, labels, |s| match v {
                Val::Empty | Val::Str(_) => s.push_str("NaN"),
                other => other.write_plain(s),
            }),
        }
    }

    fn sample_f(&mut self, name: &str, labels: &[(&str, &str)], value: impl FnOnce(&mut String)) {
        if let Some((n, help, kind)) = self.pending.take() {
            let _ = write!(self.s, "# HELP {n} {help}\n# TYPE {n} {kind}\n");
        }
        self.s.push_str(name);
        if !labels.is_empty() {
            self.s.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.s.push(',');
                }
                self.s.push_str(k);
                self.s.push_str("=\"");
                escape_label(&mut self.s, v);
                self.s.push('"');
            }
            self.s.push('}');
        }
        self.s.push(' ');
        value(&mut self.s);
        self.s.push('\n');
    }
}

/// Label values escape `\`, `"` and newlines (text format 0.0.4).
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn secs_flt(ms: u32) -> Val<'static> {
    Val::Flt(f64::from(ms) / 1000.0)
}

/// Promex reports times in seconds (floats) where the CSV has ms.
fn promex_value<'a>(field: usize, v: &Val<'a>) -> Val<'a> {
    match (field, v) {
        (
            F_QTIME | F_CTIME | F_RTIME | F_TTIME | F_QTIME_MAX | F_CTIME_MAX | F_RTIME_MAX
            | F_TTIME_MAX,
            Val::U32(ms),
        ) => secs_flt(*ms),
        #[allow(clippy::cast_precision_loss)]
        (F_CHECK_DURATION, Val::U64(ms)) => Val::Flt(*ms as f64 / 1000.0),
        _ => v.clone(),
    }
}

fn http_only(field: usize) -> bool {
    matches!(
        field,
        F_REQ_RATE_MAX
            | F_REQ_TOT
            | F_INTERCEPTED
            | F_CACHE_LOOKUPS
            | F_CACHE_HITS
            | F_COMP_IN
            | F_COMP_OUT
            | F_COMP_BYP
            | F_COMP_RSP
            | F_HRSP_1XX
            | F_HRSP_2XX
            | F_HRSP_3XX
            | F_HRSP_4XX
            | F_HRSP_5XX
            | F_HRSP_OTHER
    )
}

fn hrsp_code(field: usize) -> Option<&'static str> {
    field
        .checked_sub(F_HRSP_1XX)
        .and_then(|i| HRSP_CODES.get(i).copied())
        .filter(|_| field <= F_HRSP_OTHER)
}

/// Rows of every object, filled once (promex walks metric by metric).
struct Rows<'a> {
    fe: Vec<(usize, Vec<Val<'a>>)>,
    li: Vec<(usize, usize, Vec<Val<'a>>)>,
    be: Vec<(usize, Vec<Val<'a>>)>,
    sv: Vec<(usize, usize, Vec<Val<'a>>)>,
}

fn fill_rows<'a>(snap: &'a Snapshot, req: &PromRequest) -> Rows<'a> {
    let opts = FillOpts::default();
    let mut r = Rows {
        fe: vec![],
        li: vec![],
        be: vec![],
        sv: vec![],
    };
    let blank = || vec![Val::Empty; NALL];
    for (pi, px) in snap.proxies.iter().enumerate() {
        if let Some(fe) = &px.frontend {
            if req.scopes & scope::FRONTEND != 0 {
                let mut v = blank();
                fill_frontend(&mut v, snap, px, fe);
                r.fe.push((pi, v));
            }
            if req.scopes & scope::LISTENER != 0 {
                for (li_i, li) in px.listeners.iter().enumerate() {
                    let mut v = blank();
                    fill_listener(&mut v, px, li, opts);
                    r.li.push((pi, li_i, v));
                }
            }
        }
        if let Some(be) = &px.backend {
            if req.scopes & scope::BACKEND != 0 {
                let mut v = blank();
                fill_backend(&mut v, snap, px, be, opts);
                r.be.push((pi, v));
            }
            if req.scopes & scope::SERVER != 0 {
                for (si, sv) in px.servers.iter().enumerate() {
                    if req.no_maint && sv.admin.maint {
                        continue;
                    }
                    let mut v = blank();
                    fill_server(&mut v, snap, px, sv, opts);
                    r.sv.push((pi, si, v));
                }
            }
        }
    }
    r
}

fn help_of(field: usize) -> &'static str {
    help_override(field).unwrap_or_else(|| STAT_FIELDS.get(field).map_or("", |f| f.1))
}

fn dump_process(out: &mut Out, snap: &Snapshot) {
    let info = info_values(snap);
    for (idx, name, kind) in PROCESS_METRICS {
        let full = format!("haproxy_process_{name}");
        out.header(full.clone(), INFO_FIELDS[idx].1, kind.as_str());
        if idx == 66 {
            out.sample(&full, &[("version", &snap.process.version)], &Val::U32(1));
        } else {
            out.sample(&full, &[], &info[idx]);
        }
    }
}

fn dump_frontends(out: &mut Out, snap: &Snapshot, rows: &Rows<'_>) {
    for &(field, name, kind, objs) in ST_METRICS {
        if objs & FE == 0 {
            continue;
        }
        let full = format!("haproxy_frontend_{name}");
        if field <= F_HRSP_1XX || hrsp_code(field).is_none() {
            out.header(full.clone(), help_of(field), kind.as_str());
        }
        for (pi, v) in &rows.fe {
            let px = &snap.proxies[*pi];
            if http_only(field) && px.mode != ProxyMode::Http {
                continue;
            }
            if field == F_STATUS {
                let up = !px.stopped;
                for (i, st) in ["DOWN", "UP"].into_iter().enumerate() {
                    out.sample(
                        &full,
                        &[("proxy", &px.name), ("state", st)],
                        &Val::U32(u32::from(up == (i == 1))),
                    );
                }
                continue;
            }
            match hrsp_code(field) {
                Some(code) => out.sample(&full, &[("proxy", &px.name), ("code", code)], &v[field]),
                None => out.sample(&full, &[("proxy", &px.name)], &v[field]),
            }
        }
    }
}

fn dump_listeners(out: &mut Out, snap: &Snapshot, rows: &Rows<'_>) {
    for &(field, name, kind, objs) in ST_METRICS {
        if objs & LI == 0 {
            continue;
        }
        let full = format!("haproxy_listener_{name}");
        out.header(full.clone(), help_of(field), kind.as_str());
        for (pi, li_i, v) in &rows.li {
            let px = &snap.proxies[*pi];
            let li = &px.listeners[*li_i];
            let base = [("proxy", px.name.as_str()), ("listener", li.name.as_str())];
            if field == F_STATUS {
                let cur = match li.state {
                    ListenState::Waiting => 0,
                    ListenState::Full => 2,
                    _ => 1,
                };
                for (i, st) in LI_STATES.into_iter().enumerate() {
                    out.sample(
                        &full,
                        &[base[0], base[1], ("state", st)],
                        &Val::U32(u32::from(i == cur)),
                    );
                }
                continue;
            }
            out.sample(&full, &base, &v[field]);
        }
    }
}

fn dump_backends(out: &mut Out, snap: &Snapshot, rows: &Rows<'_>) {
    for &(field, name, kind, objs) in ST_METRICS {
        if objs & BE == 0 {
            continue;
        }
        let full = format!("haproxy_backend_{name}");
        if field <= F_HRSP_1XX || hrsp_code(field).is_none() {
            out.header(full.clone(), help_of(field), kind.as_str());
        }
        for (pi, v) in &rows.be {
            let px = &snap.proxies[*pi];
            let lbl = ("proxy", px.name.as_str());
            if http_only(field) && px.mode != ProxyMode::Http {
                continue;
            }
            match field {
                F_STATUS => {
                    let up = px
                        .backend
                        .as_ref()
                        .is_some_and(|be| backend_agg(be, &px.servers).up);
                    for (i, st) in ["DOWN", "UP"].into_iter().enumerate() {
                        out.sample(
                            &full,
                            &[lbl, ("state", st)],
                            &Val::U32(u32::from(up == (i == 1))),
                        );
                    }
                }
                F_AGG_SERVER_STATUS | F_AGG_SERVER_CHECK_STATUS if !px.servers.is_empty() => {
                    let mut n = [0u32; 5];
                    for sv in &px.servers {
                        n[srv_state(sv)] += 1;
                    }
                    for (i, st) in SRV_STATES.into_iter().enumerate() {
                        out.sample(&full, &[lbl, ("state", st)], &Val::U32(n[i]));
                    }
                }
                F_AGG_CHECK_STATUS if !px.servers.is_empty() => {
                    let mut n = [0u32; CHECK_STATES.len()];
                    for c in px.servers.iter().filter_map(|s| s.check.as_ref()) {
                        if let Some(i) = CHECK_STATES.iter().position(|s| *s == c.status) {
                            n[i] += 1;
                        }
                    }
                    for (i, st) in CHECK_STATES.into_iter().enumerate() {
                        out.sample(&full, &[lbl, ("state", st)], &Val::U32(n[i]));
                    }
                }
                F_AGG_SERVER_STATUS | F_AGG_SERVER_CHECK_STATUS | F_AGG_CHECK_STATUS => {}
                _ => match hrsp_code(field) {
                    Some(code) => out.sample(&full, &[lbl, ("code", code)], &v[field]),
                    None => out.sample(&full, &[lbl], &promex_value(field, &v[field])),
                },
            }
        }
    }
}

fn dump_servers(out: &mut Out, snap: &Snapshot, rows: &Rows<'_>) {
    for &(field, name, kind, objs) in ST_METRICS {
        if objs & SV == 0 {
            continue;
        }
        let full = format!("haproxy_server_{name}");
        if field <= F_HRSP_1XX || hrsp_code(field).is_none() {
            out.header(full.clone(), help_of(field), kind.as_str());
        }
        for (pi, si, v) in &rows.sv {
            let px = &snap.proxies[*pi];
            let sv = &px.servers[*si];
            let base = [("proxy", px.name.as_str()), ("server", sv.name.as_str())];
            if http_only(field) && px.mode != ProxyMode::Http {
                continue;
            }
            match field {
                F_STATUS => {
                    let cur = srv_state(sv);
                    for (i, st) in SRV_STATES.into_iter().enumerate() {
                        out.sample(
                            &full,
                            &[base[0], base[1], ("state", st)],
                            &Val::U32(u32::from(i == cur)),
                        );
                    }
                }
                F_CHECK_STATUS => {
                    let Some(c) = &sv.check else { continue };
                    for st in CHECK_STATES {
                        out.sample(
                            &full,
                            &[base[0], base[1], ("state", st)],
                            &Val::U32(u32::from(c.status == st)),
                        );
                    }
                }
                F_CHECK_CODE => {
                    let Some(c) = &sv.check else { continue };
                    out.sample(&full, &base, &Val::U32(c.code.unwrap_or(0)));
                }
                F_CHECK_DURATION => {
                    if sv.check.as_ref().and_then(|c| c.duration_ms).is_none() {
                        continue;
                    }
                    out.sample(&full, &base, &promex_value(field, &v[field]));
                }
                _ => match hrsp_code(field) {
                    Some(code) => out.sample(&full, &[base[0], base[1], ("code", code)], &v[field]),
                    None => out.sample(&full, &base, &promex_value(field, &v[field])),
                },
            }
        }
    }
}

/// Upper bounds (s) of the latency histograms' buckets: 100 µs to 60 s.
pub const BUCKETS_S: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

fn bucket_bounds_us() -> [u64; 18] {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    BUCKETS_S.map(|s| (s * 1e6).round() as u64)
}

fn histogram(out: &mut Out, name: &str, labels: &[(&str, &str)], h: &Latency) {
    let bounds = bucket_bounds_us();
    let mut counts = [0u64; 18];
    h.cumulative_counts(&bounds, &mut counts);
    let bucket = format!("{name}_bucket");
    let les: Vec<String> = BUCKETS_S.iter().map(|b| format!("{b}")).collect();
    let mut l: Vec<(&str, &str)> = labels.to_vec();
    for (le, c) in les.iter().zip(counts) {
        l.push(("le", le));
        out.sample(&bucket, &l, &Val::U64(c));
        l.pop();
    }
    l.push(("le", "+Inf"));
    out.sample(&bucket, &l, &Val::U64(h.count()));
    #[allow(clippy::cast_precision_loss)]
    out.sample(
        &format!("{name}_sum"),
        labels,
        &Val::Flt(h.sum_us() as f64 / 1e6),
    );
    out.sample(&format!("{name}_count"), labels, &Val::U64(h.count()));
}

const PHASES: [(&str, &str); 4] = [
    (
        "queue",
        "Time spent in the queue waiting for a connection slot",
    ),
    ("connect", "Time to establish the connection to the server"),
    (
        "response",
        "Time waiting for the server's response headers (HAProxy's Tr)",
    ),
    (
        "total",
        "Total time of the request, from accept to last byte (HAProxy's Ta)",
    ),
];

fn phase(l: &LatencyHistograms, i: usize) -> &Latency {
    match i {
        0 => &l.queue,
        1 => &l.connect,
        2 => &l.response,
        _ => &l.total,
    }
}

/// The `sticktable` scope: each table's size and entries in use, labelled with its name and
/// key type (nothing at all without tables, as haproxy).
fn dump_sticktables(out: &mut Out, snap: &Snapshot) {
    type Field = fn(&crate::model::StickTableStats) -> u64;
    let families: [(&str, &'static str, Field); 2] = [
        ("haproxy_sticktable_size", "Stick table size.", |t| t.size),
        (
            "haproxy_sticktable_used",
            "Number of entries used in this stick table.",
            |t| t.used,
        ),
    ];
    for (name, help, field) in families {
        out.header(name.into(), help, "gauge");
        for t in &snap.tables {
            out.sample(
                name,
                &[("name", &t.name), ("type", &t.key_type)],
                &Val::U64(field(t)),
            );
        }
        out.pending = None;
    }
}

fn dump_ringlb_backend(out: &mut Out, snap: &Snapshot) {
    out.header(
        "haproxy_backend_up".into(),
        "1 if the backend has a server able to take traffic (haproxy_exporter's metric)",
        "gauge",
    );
    for px in &snap.proxies {
        if let Some(be) = &px.backend {
            let up = backend_agg(be, &px.servers).up;
            out.sample(
                "haproxy_backend_up",
                &[("proxy", &px.name), ("backend", &px.name)],
                &Val::U32(u32::from(up)),
            );
        }
    }
    out.header(
        "haproxy_backend_queue_current".into(),
        "Number of queued requests (same as haproxy_backend_current_queue)",
        "gauge",
    );
    for px in &snap.proxies {
        if let Some(be) = &px.backend {
            out.sample(
                "haproxy_backend_queue_current",
                &[("proxy", &px.name)],
                &Val::U32(be.counters.queue_cur),
            );
        }
    }
    for (i, (ph, help)) in PHASES.into_iter().enumerate() {
        let name = format!("ringlb_backend_{ph}_time_seconds");
        out.header(name.clone(), help, "histogram");
        for px in &snap.proxies {
            if let Some(be) = &px.backend {
                histogram(out, &name, &[("proxy", &px.name)], phase(&be.latency, i));
            }
        }
    }
}

fn dump_ringlb_server(out: &mut Out, snap: &Snapshot, req: &PromRequest) {
    for (i, (ph, help)) in PHASES.into_iter().enumerate() {
        let name = format!("ringlb_server_{ph}_time_seconds");
        out.header(name.clone(), help, "histogram");
        for px in snap.proxies.iter().filter(|p| p.backend.is_some()) {
            for sv in &px.servers {
                if req.no_maint && sv.admin.maint {
                    continue;
                }
                histogram(
                    out,
                    &name,
                    &[("proxy", &px.name), ("server", &sv.name)],
                    phase(&sv.latency, i),
                );
            }
        }
    }
}

/// Answers a scrape: `query` is the request's query string (after `?`). A bad query gets
/// HAProxy's 400; otherwise 200 with the exposition.
pub fn serve(snap: &Snapshot, query: &str) -> crate::page::HttpAnswer {
    match parse_query(query) {
        Ok(req) => crate::page::HttpAnswer {
            status: 200,
            headers: vec![
                ("cache-control".into(), "no-cache".into()),
                ("content-type".into(), CONTENT_TYPE.into()),
            ],
            body: render(snap, &req),
        },
        Err(_) => crate::page::HttpAnswer {
            status: 400,
            headers: vec![
                ("cache-control".into(), "no-cache".into()),
                ("content-type".into(), "text/html".into()),
            ],
            body: "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n".into(),
        },
    }
}

/// The exposition text for `req`.
pub fn render(snap: &Snapshot, req: &PromRequest) -> String {
    let mut out = Out {
        s: String::with_capacity(64 * 1024),
        pending: None,
    };
    let rows = fill_rows(snap, req);
    if req.scopes & scope::GLOBAL != 0 {
        dump_process(&mut out, snap);
    }
    dump_frontends(&mut out, snap, &rows);
    dump_listeners(&mut out, snap, &rows);
    dump_backends(&mut out, snap, &rows);
    dump_servers(&mut out, snap, &rows);
    if req.scopes & scope::STICKTABLE != 0 {
        dump_sticktables(&mut out, snap);
    }
    if req.scopes & scope::BACKEND != 0 {
        dump_ringlb_backend(&mut out, snap);
    }
    if req.scopes & scope::SERVER != 0 {
        dump_ringlb_server(&mut out, snap, req);
    }
    out.s
}
