//! Fills `show stat` rows from the [`Snapshot`]: which fields HAProxy 2.6 fills for a
//! frontend, listener, backend or server, and with what (`stats_fill_*_stats`).

use crate::field::Val;
use crate::model::{
    BackendStats, CheckStats, FrontendStats, ListenerStats, OperState, ProxyMode, ProxyStats,
    ServerStats, Snapshot,
};
use crate::tables::*;
use std::borrow::Cow;

/// Number of fields per row (static + modules).
pub const NFIELDS: usize = STAT_FIELDS.len();
/// Static fields before the `-` column of the CSV header.
pub const NSTATIC: usize = F_SSL_SESS;

/// Kind of a stats row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjType {
    Frontend,
    Backend,
    Server,
    Listener,
}

impl ObjType {
    /// `type` column value and `show stat <iid> <type>` bit.
    pub fn code(self) -> u32 {
        match self {
            ObjType::Frontend => 0,
            ObjType::Backend => 1,
            ObjType::Server => 2,
            ObjType::Listener => 3,
        }
    }

    /// Letter of typed output.
    pub fn letter(self) -> char {
        match self {
            ObjType::Frontend => 'F',
            ObjType::Backend => 'B',
            ObjType::Server => 'S',
            ObjType::Listener => 'L',
        }
    }

    /// `objType` of JSON output.
    pub fn json_name(self) -> &'static str {
        match self {
            ObjType::Frontend => "Frontend",
            ObjType::Backend => "Backend",
            ObjType::Server => "Server",
            ObjType::Listener => "Listener",
        }
    }

    /// Column of [`STAT_TAGS`].
    pub fn tag_column(self) -> usize {
        match self {
            ObjType::Frontend => 0,
            ObjType::Backend => 1,
            ObjType::Server => 2,
            ObjType::Listener => 3,
        }
    }
}

/// Options that change what a row shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct FillOpts {
    /// `stats show-legends` / admin-level CLI: `addr`, `cookie`, `algo` are filled.
    pub show_legends: bool,
    /// The page hides DOWN or MAINT servers: the backend status gets `(up/total)`.
    pub hide_down_or_maint: bool,
}

fn secs(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

fn str_val(s: &str) -> Val<'_> {
    Val::Str(Cow::Borrowed(s))
}

/// Seconds since `at_ms`, -1 if never (`lastsess`).
fn age_or_never(now_ms: u64, at_ms: Option<u64>) -> Val<'static> {
    match at_ms {
        Some(t) => Val::S32(i32::try_from(now_ms.saturating_sub(t) / 1000).unwrap_or(i32::MAX)),
        None => Val::S32(-1),
    }
}

/// A server counts for `act`/`bck` and the backend's weight when it takes new traffic.
pub fn server_usable(sv: &ServerStats) -> bool {
    matches!(sv.oper, OperState::Running | OperState::Starting)
        && !sv.admin.in_maintenance()
        && !sv.admin.drain
        && sv.weight > 0
}

/// The server's state as the status text of `show stat` and the stats page (`UP`,
/// `UP 1/3`, `DOWN`, `DOWN 1/2`, `NOLB`, `DRAIN`, `MAINT`, `MAINT (via b/s)`, `no check`...).
pub fn server_status_text(sv: &ServerStats) -> Cow<'static, str> {
    if sv.admin.maint_resolution {
        return Cow::Borrowed("MAINT (resolution)");
    }
    if let Some((b, s)) = &sv.admin.maint_via {
        return Cow::Owned(format!("MAINT (via {b}/{s})"));
    }
    if sv.admin.maint {
        return Cow::Borrowed("MAINT");
    }
    // `ref` is the server whose check decides: the end of the track chain.
    let check = sv.tracked_check.as_ref().or(sv.check.as_ref());
    let agent = sv.agent.as_ref();
    let top = |c: &CheckStats| c.rise + c.fall - 1;
    let going = |word: &str, c: &CheckStats| {
        Cow::Owned(format!(
            "{word} {}/{}",
            (c.health + 1).saturating_sub(c.rise),
            c.fall
        ))
    };
    match sv.oper {
        OperState::Running | OperState::Starting => {
            let going_down = check.filter(|c| c.health < top(c));
            if sv.admin.drain {
                if agent.is_some() {
                    return Cow::Borrowed("DRAIN (agent)");
                }
                return match going_down {
                    Some(c) => going("DRAIN", c),
                    None => Cow::Borrowed("DRAIN"),
                };
            }
            match (going_down, check) {
                (Some(c), _) => going("UP", c),
                (None, Some(_)) => Cow::Borrowed("UP"),
                (None, None) => Cow::Borrowed("no check"),
            }
        }
        OperState::Stopping => match check {
            Some(c) if c.health != top(c) => going("NOLB", c),
            _ => Cow::Borrowed("NOLB"),
        },
        OperState::Stopped => {
            if agent.is_some_and(|a| a.health == 0) {
                Cow::Borrowed("DOWN (agent)")
            } else if check.is_some_and(|c| c.health == 0) {
                Cow::Borrowed("DOWN")
            } else if let Some(c) = check.or(agent) {
                Cow::Owned(format!("DOWN {}/{}", c.health, c.rise))
            } else {
                Cow::Borrowed("DOWN")
            }
        }
    }
}

/// The server's `downtime` (s): time DOWN so far, including the current DOWN period.
fn server_downtime_s(sv: &ServerStats, now_ms: u64) -> u32 {
    let mut ms = sv.down_time_ms;
    if sv.oper == OperState::Stopped {
        ms += now_ms.saturating_sub(sv.last_change_ms);
    }
    secs(ms)
}

/// Backend aggregates computed from its servers (`act`, `bck`, weights, UP/DOWN).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendAgg {
    pub act: u32,
    pub bck: u32,
    /// Effective weight of the servers that take traffic (active ones, else backups).
    pub weight: u32,
    pub uweight: u32,
    /// Servers not DOWN, and all servers (`(nbup/nbsrv)` on the page).
    pub nbup: u32,
    pub nbsrv: u32,
    /// HAProxy's backend status: UP when some server can take traffic or it has no server.
    pub up: bool,
}

pub fn backend_agg(be: &BackendStats, servers: &[ServerStats]) -> BackendAgg {
    let mut a = BackendAgg::default();
    let (mut wact, mut wbck, mut uwact, mut uwbck) = (0u32, 0u32, 0u32, 0u32);
    let mut first_bck: Option<&ServerStats> = None;
    for sv in servers {
        a.nbsrv += 1;
        if sv.oper != OperState::Stopped {
            a.nbup += 1;
        }
        if !server_usable(sv) {
            continue;
        }
        if sv.backup {
            a.bck += 1;
            wbck = wbck.saturating_add(sv.weight);
            uwbck = uwbck.saturating_add(sv.uweight);
            first_bck = first_bck.or(Some(sv));
        } else {
            a.act += 1;
            wact = wact.saturating_add(sv.weight);
            uwact = uwact.saturating_add(sv.uweight);
        }
    }
    if a.act > 0 {
        a.weight = wact;
        a.uweight = uwact;
    } else if be.allbackups {
        a.weight = wbck;
        a.uweight = uwbck;
    } else if let Some(b) = first_bck {
        a.weight = b.weight;
        a.uweight = b.uweight;
    }
    a.up = a.weight > 0 || servers.is_empty();
    a
}

fn backend_downtime_s(be: &BackendStats, agg: &BackendAgg, now_ms: u64) -> u32 {
    let mut ms = be.down_time_ms;
    if !agg.up {
        ms += now_ms.saturating_sub(be.last_change_ms);
    }
    secs(ms)
}

fn set_common<'a>(v: &mut [Val<'a>], px: &'a ProxyStats, svname: &'a str, obj: ObjType, sid: u32) {
    v[F_PXNAME] = str_val(&px.name);
    v[F_SVNAME] = str_val(svname);
    v[F_MODE] = str_val(px.mode.as_str());
    v[F_PID] = Val::U32(1);
    v[F_IID] = Val::U32(px.id);
    v[F_SID] = Val::U32(sid);
    v[F_TYPE] = Val::U32(obj.code());
}

fn set_http_rsp(v: &mut [Val<'_>], rsp: &[u64; 6]) {
    for (i, f) in [
        F_HRSP_1XX,
        F_HRSP_2XX,
        F_HRSP_3XX,
        F_HRSP_4XX,
        F_HRSP_5XX,
        F_HRSP_OTHER,
    ]
    .into_iter()
    .enumerate()
    {
        v[f] = Val::U64(rsp[i]);
    }
}

fn set_ssl(v: &mut [Val<'_>], ssl: &crate::model::SslCounters) {
    v[F_SSL_SESS] = Val::U64(ssl.sess);
    v[F_SSL_REUSED_SESS] = Val::U64(ssl.reused_sess);
    v[F_SSL_FAILED_HANDSHAKE] = Val::U64(ssl.failed_handshake);
}

fn set_mux(v: &mut [Val<'_>], m: &crate::model::MuxCounters) {
    let vals = [
        m.h2_headers_rcvd,
        m.h2_data_rcvd,
        m.h2_settings_rcvd,
        m.h2_rst_stream_rcvd,
        m.h2_goaway_rcvd,
        m.h2_detected_conn_protocol_errors,
        m.h2_detected_strm_protocol_errors,
        m.h2_rst_stream_resp,
        m.h2_goaway_resp,
        m.h2_open_connections,
        m.h2_backend_open_streams,
        m.h2_total_connections,
        m.h2_backend_total_streams,
        m.h1_open_connections,
        m.h1_open_streams,
        m.h1_total_connections,
        m.h1_total_streams,
        m.h1_bytes_in,
        m.h1_bytes_out,
        m.h1_spliced_bytes_in,
        m.h1_spliced_bytes_out,
    ];
    for (i, x) in vals.into_iter().enumerate() {
        v[F_H2_HEADERS_RCVD + i] = Val::U64(x);
    }
}

/// The FRONTEND row.
pub fn fill_frontend<'a>(
    v: &mut [Val<'a>],
    snap: &Snapshot,
    px: &'a ProxyStats,
    fe: &'a FrontendStats,
) {
    let c = &fe.counters;
    let now = snap.now_ms;
    set_common(v, px, "FRONTEND", ObjType::Frontend, 0);
    v[F_SCUR] = Val::U32(c.cur_sess);
    v[F_SMAX] = Val::U32(c.max_sess);
    v[F_SLIM] = Val::U32(fe.maxconn);
    v[F_STOT] = Val::U64(c.cum_sess);
    v[F_BIN] = Val::U64(c.bytes_in);
    v[F_BOUT] = Val::U64(c.bytes_out);
    v[F_DREQ] = Val::U64(c.denied_req);
    v[F_DRESP] = Val::U64(c.denied_resp);
    v[F_EREQ] = Val::U64(c.failed_req);
    v[F_DCON] = Val::U64(c.denied_conn);
    v[F_DSES] = Val::U64(c.denied_sess);
    v[F_STATUS] = str_val(fe.state.as_str());
    v[F_RATE] = Val::U32(c.sess_per_sec.read(now));
    v[F_RATE_LIM] = Val::U32(fe.rate_limit_sessions);
    v[F_RATE_MAX] = Val::U32(c.sps_max);
    v[F_WREW] = Val::U64(c.failed_rewrites);
    v[F_EINT] = Val::U64(c.internal_errors);
    if px.mode == ProxyMode::Http {
        set_http_rsp(v, &c.rsp.0);
        v[F_INTERCEPTED] = Val::U64(c.intercepted_req);
        v[F_CACHE_LOOKUPS] = Val::U64(c.cache_lookups);
        v[F_CACHE_HITS] = Val::U64(c.cache_hits);
    }
    v[F_REQ_RATE] = Val::U32(c.req_per_sec.read(now));
    v[F_REQ_RATE_MAX] = Val::U32(c.rps_max);
    v[F_REQ_TOT] = Val::U64(c.cum_req);
    v[F_COMP_IN] = Val::U64(c.comp_in);
    v[F_COMP_OUT] = Val::U64(c.comp_out);
    v[F_COMP_BYP] = Val::U64(c.comp_byp);
    v[F_COMP_RSP] = Val::U64(c.comp_rsp);
    v[F_CONN_RATE] = Val::U32(c.conn_per_sec.read(now));
    v[F_CONN_RATE_MAX] = Val::U32(c.cps_max);
    v[F_CONN_TOT] = Val::U64(c.cum_conn);
    set_ssl(v, &c.ssl);
    set_mux(v, &c.mux);
}

/// A listener row (`option socket-stats`).
pub fn fill_listener<'a>(
    v: &mut [Val<'a>],
    px: &'a ProxyStats,
    li: &'a ListenerStats,
    opts: FillOpts,
) {
    let c = &li.counters;
    set_common(v, px, &li.name, ObjType::Listener, li.id);
    v[F_SCUR] = Val::U32(c.cur_sess);
    v[F_SMAX] = Val::U32(c.max_sess);
    v[F_SLIM] = Val::U32(li.maxconn);
    v[F_STOT] = Val::U64(c.cum_sess);
    v[F_BIN] = Val::U64(c.bytes_in);
    v[F_BOUT] = Val::U64(c.bytes_out);
    v[F_DREQ] = Val::U64(c.denied_req);
    v[F_DRESP] = Val::U64(c.denied_resp);
    v[F_EREQ] = Val::U64(c.failed_req);
    v[F_DCON] = Val::U64(c.denied_conn);
    v[F_DSES] = Val::U64(c.denied_sess);
    v[F_STATUS] = str_val(li.state.as_str());
    v[F_WREW] = Val::U64(c.failed_rewrites);
    v[F_EINT] = Val::U64(c.internal_errors);
    if opts.show_legends {
        v[F_ADDR] = str_val(&li.addr);
    }
    set_ssl(v, &c.ssl);
}

fn fill_check<'a>(v: &mut [Val<'a>], c: &'a CheckStats, agent: bool) {
    let (st, code, dur, desc, last, rise, fall, health) = if agent {
        (
            F_AGENT_STATUS,
            F_AGENT_CODE,
            F_AGENT_DURATION,
            F_AGENT_DESC,
            F_LAST_AGT,
            F_AGENT_RISE,
            F_AGENT_FALL,
            F_AGENT_HEALTH,
        )
    } else {
        (
            F_CHECK_STATUS,
            F_CHECK_CODE,
            F_CHECK_DURATION,
            F_CHECK_DESC,
            F_LAST_CHK,
            F_CHECK_RISE,
            F_CHECK_FALL,
            F_CHECK_HEALTH,
        )
    };
    v[st] = if c.in_progress {
        Val::Str(Cow::Owned(format!("* {}", c.status)))
    } else {
        str_val(&c.status)
    };
    if let Some(x) = c.code {
        v[code] = Val::U32(x);
    }
    if let Some(x) = c.duration_ms {
        v[dur] = Val::U64(x);
    } else if agent {
        // haproxy 2.6 shows an enabled agent's duration from the start (0 while `INI`);
        // a health check's only once it has a result.
        v[dur] = Val::U64(0);
    }
    v[desc] = str_val(&c.desc);
    v[last] = str_val(&c.info);
    v[rise] = Val::U32(c.rise);
    v[fall] = Val::U32(c.fall);
    v[health] = Val::U32(c.health);
}

/// A server row.
pub fn fill_server<'a>(
    v: &mut [Val<'a>],
    snap: &Snapshot,
    px: &'a ProxyStats,
    sv: &'a ServerStats,
    opts: FillOpts,
) {
    let c = &sv.counters;
    let now = snap.now_ms;
    set_common(v, px, &sv.name, ObjType::Server, sv.id);
    v[F_QCUR] = Val::U32(c.queue_cur);
    v[F_QMAX] = Val::U32(c.queue_max);
    v[F_SCUR] = Val::U32(c.cur_sess);
    v[F_SMAX] = Val::U32(c.max_sess);
    if sv.maxconn > 0 {
        v[F_SLIM] = Val::U32(sv.maxconn);
    }
    v[F_SRV_ICUR] = Val::U32(c.idle_conn_cur);
    if let Some(l) = sv.max_idle_conns {
        v[F_SRC_ILIM] = Val::U32(l);
    }
    v[F_STOT] = Val::U64(c.cum_sess);
    v[F_BIN] = Val::U64(c.bytes_in);
    v[F_BOUT] = Val::U64(c.bytes_out);
    v[F_DRESP] = Val::U64(c.denied_resp);
    v[F_ECON] = Val::U64(c.failed_conns);
    v[F_ERESP] = Val::U64(c.failed_resp);
    v[F_WRETR] = Val::U64(c.retries);
    v[F_WREDIS] = Val::U64(c.redispatches);
    v[F_WREW] = Val::U64(c.failed_rewrites);
    v[F_EINT] = Val::U64(c.internal_errors);
    v[F_CONNECT] = Val::U64(c.connect);
    v[F_REUSE] = Val::U64(c.reuse);
    v[F_IDLE_CONN_CUR] = Val::U32(c.idle_conn_cur.saturating_sub(c.safe_conn_cur));
    v[F_SAFE_CONN_CUR] = Val::U32(c.safe_conn_cur);
    v[F_USED_CONN_CUR] = Val::U32(c.used_conn_cur);
    v[F_NEED_CONN_EST] = Val::U32(c.need_conn_est);
    v[F_STATUS] = Val::Str(server_status_text(sv));
    v[F_LASTCHG] = Val::U32(secs(now.saturating_sub(sv.last_change_ms)));
    v[F_WEIGHT] = Val::U32(sv.weight);
    v[F_UWEIGHT] = Val::U32(sv.uweight);
    v[F_ACT] = Val::U32(u32::from(!sv.backup));
    v[F_BCK] = Val::U32(u32::from(sv.backup));
    if sv.check.is_some() {
        v[F_CHKFAIL] = Val::U64(sv.failed_checks);
        v[F_CHKDOWN] = Val::U64(sv.down_trans);
        v[F_DOWNTIME] = Val::U32(server_downtime_s(sv, now));
    }
    if sv.maxqueue > 0 {
        v[F_QLIMIT] = Val::U32(sv.maxqueue);
    }
    if sv.oper == OperState::Starting && !sv.admin.drain {
        if let Some(t) = sv.throttle_pct {
            v[F_THROTTLE] = Val::U32(t);
        }
    }
    v[F_LBTOT] = Val::U64(c.cum_lbconn);
    if let Some(t) = &sv.tracked {
        v[F_TRACKED] = str_val(t);
    }
    v[F_RATE] = Val::U32(c.sess_per_sec.read(now));
    v[F_RATE_MAX] = Val::U32(c.sps_max);
    if let Some(chk) = &sv.check {
        fill_check(v, chk, false);
    }
    if let Some(agt) = &sv.agent {
        fill_check(v, agt, true);
    }
    if px.mode == ProxyMode::Http {
        v[F_REQ_TOT] = Val::U64(c.cum_req);
        set_http_rsp(v, &c.rsp.0);
    }
    if sv.observe {
        v[F_HANAFAIL] = Val::U64(c.failed_hana);
    }
    v[F_CLI_ABRT] = Val::U64(c.cli_aborts);
    v[F_SRV_ABRT] = Val::U64(c.srv_aborts);
    v[F_LASTSESS] = age_or_never(now, c.last_sess_ms);
    set_times(v, &c.times);
    if opts.show_legends {
        v[F_ADDR] = str_val(&sv.addr);
        if let Some(ck) = &sv.cookie {
            v[F_COOKIE] = str_val(ck);
        }
    }
    set_ssl(v, &c.ssl);
}

fn set_times(v: &mut [Val<'_>], t: &crate::model::TimeStats) {
    v[F_QTIME] = Val::U32(t.q.avg());
    v[F_CTIME] = Val::U32(t.c.avg());
    v[F_RTIME] = Val::U32(t.d.avg());
    v[F_TTIME] = Val::U32(t.t.avg());
    v[F_QTIME_MAX] = Val::U32(t.qtime_max);
    v[F_CTIME_MAX] = Val::U32(t.ctime_max);
    v[F_RTIME_MAX] = Val::U32(t.rtime_max);
    v[F_TTIME_MAX] = Val::U32(t.ttime_max);
}

/// The BACKEND row.
pub fn fill_backend<'a>(
    v: &mut [Val<'a>],
    snap: &Snapshot,
    px: &'a ProxyStats,
    be: &'a BackendStats,
    opts: FillOpts,
) {
    let c = &be.counters;
    let now = snap.now_ms;
    let agg = backend_agg(be, &px.servers);
    set_common(v, px, "BACKEND", ObjType::Backend, 0);
    v[F_QCUR] = Val::U32(c.queue_cur);
    v[F_QMAX] = Val::U32(c.queue_max);
    v[F_SCUR] = Val::U32(c.cur_sess);
    v[F_SMAX] = Val::U32(c.max_sess);
    v[F_SLIM] = Val::U32(be.fullconn);
    v[F_STOT] = Val::U64(c.cum_sess);
    v[F_BIN] = Val::U64(c.bytes_in);
    v[F_BOUT] = Val::U64(c.bytes_out);
    v[F_DREQ] = Val::U64(c.denied_req);
    v[F_DRESP] = Val::U64(c.denied_resp);
    v[F_ECON] = Val::U64(c.failed_conns);
    v[F_ERESP] = Val::U64(c.failed_resp);
    v[F_WRETR] = Val::U64(c.retries);
    v[F_WREDIS] = Val::U64(c.redispatches);
    v[F_WREW] = Val::U64(c.failed_rewrites);
    v[F_EINT] = Val::U64(c.internal_errors);
    v[F_CONNECT] = Val::U64(c.connect);
    v[F_REUSE] = Val::U64(c.reuse);
    let word = if agg.up { "UP" } else { "DOWN" };
    v[F_STATUS] = if opts.hide_down_or_maint {
        Val::Str(Cow::Owned(format!("{word} ({}/{})", agg.nbup, agg.nbsrv)))
    } else {
        str_val(word)
    };
    v[F_WEIGHT] = Val::U32(agg.weight);
    v[F_UWEIGHT] = Val::U32(agg.uweight);
    v[F_ACT] = Val::U32(agg.act);
    v[F_BCK] = Val::U32(agg.bck);
    v[F_CHKDOWN] = Val::U64(be.down_trans);
    v[F_LASTCHG] = Val::U32(secs(now.saturating_sub(be.last_change_ms)));
    if !px.servers.is_empty() {
        v[F_DOWNTIME] = Val::U32(backend_downtime_s(be, &agg, now));
    }
    v[F_LBTOT] = Val::U64(c.cum_lbconn);
    v[F_RATE] = Val::U32(c.sess_per_sec.read(now));
    v[F_RATE_MAX] = Val::U32(c.sps_max);
    if opts.show_legends {
        if let Some(ck) = &be.cookie {
            v[F_COOKIE] = str_val(ck);
        }
        v[F_ALGO] = str_val(&be.algo);
    }
    if px.mode == ProxyMode::Http {
        v[F_REQ_TOT] = Val::U64(c.cum_req);
        set_http_rsp(v, &c.rsp.0);
        v[F_CACHE_LOOKUPS] = Val::U64(c.cache_lookups);
        v[F_CACHE_HITS] = Val::U64(c.cache_hits);
    }
    v[F_CLI_ABRT] = Val::U64(c.cli_aborts);
    v[F_SRV_ABRT] = Val::U64(c.srv_aborts);
    v[F_COMP_IN] = Val::U64(c.comp_in);
    v[F_COMP_OUT] = Val::U64(c.comp_out);
    v[F_COMP_BYP] = Val::U64(c.comp_byp);
    v[F_COMP_RSP] = Val::U64(c.comp_rsp);
    v[F_LASTSESS] = age_or_never(now, c.last_sess_ms);
    set_times(v, &c.times);
    // haproxy 2.6 reports the aggregated statuses only through the Prometheus exporter.
    v[F_AGG_SERVER_STATUS] = Val::U32(0);
    v[F_AGG_SERVER_CHECK_STATUS] = Val::U32(0);
    v[F_AGG_CHECK_STATUS] = Val::U32(0);
    set_ssl(v, &c.ssl);
    set_mux(v, &c.mux);
}
