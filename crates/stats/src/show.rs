//! `show stat` (CSV, typed, JSON, filters) and `show info` as haproxy 2.6 prints them.

use crate::field::{tag_words, write_json_str, Val};
use crate::fill::{
    fill_backend, fill_frontend, fill_listener, fill_server, FillOpts, ObjType, NFIELDS, NSTATIC,
};
use crate::model::{OperState, ProxyStats, ServerStats, Snapshot};
use crate::tables::{INFO_FIELDS, INFO_TAGS, STAT_FIELDS, STAT_TAGS};
use std::borrow::Cow;
use std::fmt::Write;

/// ringlb's columns after haproxy's: latency percentiles (µs) of backends and servers from
/// the hdrhistograms, which HAProxy does not have (`qtime` & co. are 512-sample averages).
pub const EXTRA_FIELDS: [(&str, &str); 16] = [
    ("qtime_p50_us", "Queue time, 50th percentile (us)"),
    ("qtime_p90_us", "Queue time, 90th percentile (us)"),
    ("qtime_p99_us", "Queue time, 99th percentile (us)"),
    ("qtime_p999_us", "Queue time, 99.9th percentile (us)"),
    ("ctime_p50_us", "Connect time, 50th percentile (us)"),
    ("ctime_p90_us", "Connect time, 90th percentile (us)"),
    ("ctime_p99_us", "Connect time, 99th percentile (us)"),
    ("ctime_p999_us", "Connect time, 99.9th percentile (us)"),
    ("rtime_p50_us", "Response time, 50th percentile (us)"),
    ("rtime_p90_us", "Response time, 90th percentile (us)"),
    ("rtime_p99_us", "Response time, 99th percentile (us)"),
    ("rtime_p999_us", "Response time, 99.9th percentile (us)"),
    ("ttime_p50_us", "Total time, 50th percentile (us)"),
    ("ttime_p90_us", "Total time, 90th percentile (us)"),
    ("ttime_p99_us", "Total time, 99th percentile (us)"),
    ("ttime_p999_us", "Total time, 99.9th percentile (us)"),
];
/// The quantiles of [`EXTRA_FIELDS`], in their order.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];
/// All fields of a row: haproxy's then ringlb's.
pub const NALL: usize = NFIELDS + EXTRA_FIELDS.len();

fn field_name(pos: usize) -> &'static str {
    match STAT_FIELDS.get(pos) {
        Some((n, _)) => n,
        None => EXTRA_FIELDS.get(pos - NFIELDS).map_or("", |f| f.0),
    }
}

fn field_desc(pos: usize) -> &'static str {
    match STAT_FIELDS.get(pos) {
        Some((_, d)) => d,
        None => EXTRA_FIELDS.get(pos - NFIELDS).map_or("", |f| f.1),
    }
}

fn field_tags(pos: usize, obj: ObjType) -> &'static str {
    let t = STAT_TAGS.get(pos).map_or("", |row| row[obj.tag_column()]);
    match t.split_once(':') {
        Some((tags, _)) => tags,
        None if pos >= NFIELDS => "MDP",
        None => "MGP",
    }
}

/// Proxy selector of `show stat <iid|name> <type> <sid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySel {
    Id(u32),
    Name(String),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Csv,
    Typed,
    Json,
}

/// A parsed `show stat` command (also what the stats page's `;csv`, `;up`, `;no-maint` set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatRequest {
    pub proxy: Option<ProxySel>,
    /// Bits: 1 frontends, 2 backends, 4 servers, 8 listeners; `None` = everything.
    pub types: Option<u32>,
    pub sid: Option<u32>,
    pub format: Format,
    /// `desc`: typed output carries each field's description.
    pub desc: bool,
    /// `up`: only servers UP or not checked.
    pub up_only: bool,
    /// `no-maint`: no server in maintenance.
    pub no_maint: bool,
    /// Stats page `stats scope`: only these proxies (all when empty).
    pub scopes: Vec<String>,
    /// Stats page `?scope=` search: proxies whose name contains it, ignoring case.
    pub search: Option<String>,
}

/// Parses the arguments after `show stat` like haproxy 2.6: the selector triple only when
/// all three are present (with fewer, they are ignored and everything is dumped), then the
/// modifiers; unknown words are ignored. The only error is an unknown proxy name.
pub fn parse_show_stat(args: &[&str]) -> Result<StatRequest, String> {
    let mut r = StatRequest::default();
    let mut rest = args;
    if rest.first() == Some(&"domain") {
        match rest.get(1) {
            Some(&"proxy") => rest = &rest[2..],
            Some(&"dns") => {
                return Err("'show stat domain dns' is not supported by ringlb.\n".into())
            }
            _ => return Err("Invalid statistics domain.\n".into()),
        }
    }
    if let [px, t, sid, tail @ ..] = rest {
        r.proxy = match px.parse::<i64>() {
            Ok(-1) => None,
            Ok(id) => Some(ProxySel::Id(u32::try_from(id).unwrap_or(0))),
            Err(_) => Some(ProxySel::Name((*px).to_string())),
        };
        // `atoi` semantics: anything not a number selects nothing (0); -1 is everything.
        let num = |s: &str| s.parse::<i64>().unwrap_or(0);
        r.types = match num(t) {
            -1 => None,
            v => Some(u32::try_from(v).unwrap_or(0)),
        };
        r.sid = match num(sid) {
            -1 => None,
            v => Some(u32::try_from(v).unwrap_or(0)),
        };
        rest = tail;
    }
    for a in rest {
        match *a {
            "typed" => r.format = Format::Typed,
            "json" => r.format = Format::Json,
            "desc" => r.desc = true,
            "up" => r.up_only = true,
            "no-maint" => r.no_maint = true,
            _ => {}
        }
    }
    Ok(r)
}

/// One row being rendered.
pub struct Row<'a> {
    pub obj: ObjType,
    pub iid: u32,
    pub sid: u32,
    pub vals: &'a [Val<'a>],
}

fn server_hidden(sv: &ServerStats, req: &StatRequest) -> bool {
    let maint = sv.admin.in_maintenance();
    // `no-maint`: disabled servers; `up`: also those DOWN (only UP or not checked remain).
    (req.no_maint && maint) || (req.up_only && (maint || sv.oper == OperState::Stopped))
}

pub fn proxy_selected(px: &ProxyStats, req: &StatRequest) -> bool {
    if !req.scopes.is_empty() && !req.scopes.contains(&px.name) {
        return false;
    }
    if let Some(s) = &req.search {
        if !px
            .name
            .to_ascii_lowercase()
            .contains(&s.to_ascii_lowercase())
        {
            return false;
        }
    }
    match &req.proxy {
        None => true,
        Some(ProxySel::Id(id)) => px.id == *id,
        Some(ProxySel::Name(n)) => px.name == *n,
    }
}

fn want(req: &StatRequest, bit: u32) -> bool {
    req.types.is_none_or(|t| t & bit != 0)
}

fn fill_latency(vals: &mut [Val<'_>], lat: &crate::latency::LatencyHistograms) {
    for (k, h) in [&lat.queue, &lat.connect, &lat.response, &lat.total]
        .into_iter()
        .enumerate()
    {
        if h.count() == 0 {
            continue;
        }
        for (j, q) in QUANTILES.into_iter().enumerate() {
            vals[NFIELDS + k * 4 + j] = Val::U64(h.quantile_us(q));
        }
    }
}

/// Calls `f` for each row of the snapshot in HAProxy's order (per proxy: FRONTEND,
/// listeners, servers, BACKEND), applying the request's filters. One buffer is reused.
pub fn for_each_row(
    snap: &Snapshot,
    req: &StatRequest,
    opts: FillOpts,
    mut f: impl FnMut(&Row<'_>),
) {
    let mut v: Vec<Val<'_>> = vec![Val::Empty; NALL];
    let reset = |v: &mut Vec<Val<'_>>| v.iter_mut().for_each(|x| *x = Val::Empty);
    for px in snap.proxies.iter().filter(|p| proxy_selected(p, req)) {
        if let Some(fe) = &px.frontend {
            if want(req, 1) {
                reset(&mut v);
                fill_frontend(&mut v, snap, px, fe);
                f(&Row {
                    obj: ObjType::Frontend,
                    iid: px.id,
                    sid: 0,
                    vals: &v,
                });
            }
            if want(req, 8) {
                for li in &px.listeners {
                    reset(&mut v);
                    fill_listener(&mut v, px, li, opts);
                    f(&Row {
                        obj: ObjType::Listener,
                        iid: px.id,
                        sid: li.id,
                        vals: &v,
                    });
                }
            }
        }
        if let Some(be) = &px.backend {
            if want(req, 4) {
                for sv in &px.servers {
                    if req.sid.is_some_and(|s| s != sv.id) || server_hidden(sv, req) {
                        continue;
                    }
                    reset(&mut v);
                    fill_server(&mut v, snap, px, sv, opts);
                    fill_latency(&mut v, &sv.latency);
                    f(&Row {
                        obj: ObjType::Server,
                        iid: px.id,
                        sid: sv.id,
                        vals: &v,
                    });
                }
            }
            if want(req, 2) {
                reset(&mut v);
                fill_backend(&mut v, snap, px, be, opts);
                fill_latency(&mut v, &be.latency);
                f(&Row {
                    obj: ObjType::Backend,
                    iid: px.id,
                    sid: 0,
                    vals: &v,
                });
            }
        }
    }
}

/// The CSV header line (`# pxname,svname,...,-,ssl_sess,...,<ringlb columns>,`).
pub fn csv_header(out: &mut String) {
    out.push_str("# ");
    for (i, (name, _)) in STAT_FIELDS.iter().enumerate() {
        if i == NSTATIC {
            out.push_str("-,");
        }
        out.push_str(name);
        out.push(',');
    }
    for (name, _) in EXTRA_FIELDS {
        out.push_str(name);
        out.push(',');
    }
    out.push('\n');
}

/// One CSV row.
pub fn csv_row(out: &mut String, row: &Row<'_>) {
    for (i, v) in row.vals.iter().enumerate() {
        if i == NSTATIC {
            out.push_str("-,");
        }
        v.write_csv(out);
        out.push(',');
    }
    out.push('\n');
}

fn typed_row(out: &mut String, row: &Row<'_>, desc: bool) {
    for (pos, v) in row.vals.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "{}.{}.{}.{}.{}.1:{}:{}:",
            row.obj.letter(),
            row.iid,
            row.sid,
            pos,
            field_name(pos),
            field_tags(pos, row.obj),
            v.type_name()
        );
        v.write_plain(out);
        if desc {
            let _ = write!(out, ":\"{}\"", field_desc(pos));
        }
        out.push('\n');
    }
}

fn json_row(out: &mut String, row: &Row<'_>) {
    out.push('[');
    let mut first = true;
    for (pos, v) in row.vals.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        let (o, n, s) = tag_words(field_tags(pos, row.obj));
        let _ = write!(
            out,
            "{{\"objType\":\"{}\",\"proxyId\":{},\"id\":{},\"field\":{{\"pos\":{},\"name\":\"{}\"}},\"processNum\":1,\"tags\":{{\"origin\":\"{o}\",\"nature\":\"{n}\",\"scope\":\"{s}\"}},\"value\":",
            row.obj.json_name(),
            row.iid,
            row.sid,
            pos,
            field_name(pos)
        );
        v.write_json(out);
        out.push('}');
    }
    out.push(']');
}

/// Renders `show stat` for the request (HTTP body form: no trailing blank line; the CLI
/// appends one, see [`cli_show_stat`]).
pub fn render_stat(snap: &Snapshot, req: &StatRequest, opts: FillOpts) -> String {
    let mut out = String::with_capacity(4096);
    match req.format {
        Format::Csv => {
            csv_header(&mut out);
            for_each_row(snap, req, opts, |r| csv_row(&mut out, r));
        }
        Format::Typed => for_each_row(snap, req, opts, |r| typed_row(&mut out, r, req.desc)),
        Format::Json => {
            out.push('[');
            let mut first = true;
            for_each_row(snap, req, opts, |r| {
                if !first {
                    out.push(',');
                }
                first = false;
                json_row(&mut out, r);
            });
            out.push_str("]\n");
        }
    }
    out
}

/// `show stat ...` on the CLI (admin/operator level: legends shown), ending with the blank
/// line that tells the reader the output is complete.
pub fn cli_show_stat(snap: &Snapshot, args: &[&str]) -> String {
    match parse_show_stat(args) {
        Ok(req) if unknown_proxy_name(snap, &req) => "No such proxy.\n\n".into(),
        Ok(req) => {
            let opts = FillOpts {
                show_legends: true,
                hide_down_or_maint: false,
            };
            let mut s = render_stat(snap, &req, opts);
            s.push('\n');
            s
        }
        Err(e) => format!("{e}\n"),
    }
}

fn unknown_proxy_name(snap: &Snapshot, req: &StatRequest) -> bool {
    match &req.proxy {
        Some(ProxySel::Name(n)) => !snap.proxies.iter().any(|p| p.name == *n),
        // haproxy's `atoi` gives 0 for what is neither a name nor a number: no such proxy.
        Some(ProxySel::Id(0)) => true,
        _ => false,
    }
}

/// `Uptime` text: `0d 0h00m03s`.
fn uptime_text(secs: u64) -> String {
    format!(
        "{}d {}h{:02}m{:02}s",
        secs / 86400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

fn u32_of(v: u64) -> Val<'static> {
    Val::U32(u32::try_from(v).unwrap_or(u32::MAX))
}

/// The `show info` values in [`INFO_FIELDS`] order.
pub fn info_values(snap: &Snapshot) -> Vec<Val<'_>> {
    let p = &snap.process;
    let c = &p.counters;
    let now = snap.now_ms;
    let up = now.saturating_sub(p.start_ms) / 1000;
    let mut v: Vec<Val<'_>> = vec![Val::Empty; INFO_FIELDS.len()];
    let s = |x: &str| Val::Str(Cow::Owned(x.to_string()));
    let vals: [(usize, Val<'_>); 69] = [
        (0, Val::Str(Cow::Borrowed(&p.name))),
        (1, Val::Str(Cow::Borrowed(&p.version))),
        (2, Val::Str(Cow::Borrowed(&p.release_date))),
        (3, Val::U32(p.nbthread)),
        (4, Val::U32(1)),
        (5, Val::U32(1)),
        (6, Val::U32(p.pid)),
        (7, s(&uptime_text(up))),
        (8, u32_of(up)),
        (9, Val::U32(0)),
        (10, u32_of(p.pool_alloc_bytes / 1_048_576)),
        (11, u32_of(p.pool_used_bytes / 1_048_576)),
        (12, Val::U32(0)),
        (13, u32_of(p.ulimit_n)),
        (14, u32_of(p.maxsock)),
        (15, Val::U32(p.maxconn)),
        (16, Val::U32(p.hard_maxconn)),
        (17, Val::U32(c.curr_conns)),
        (18, u32_of(c.cum_conns)),
        (19, u32_of(c.cum_req)),
        (20, Val::U32(0)),
        (21, Val::U32(c.curr_ssl_conns)),
        (22, u32_of(c.cum_ssl_conns)),
        (23, Val::U32(p.maxpipes)),
        (24, Val::U32(0)),
        (25, Val::U32(0)),
        (26, Val::U32(c.conn_per_sec.read(now))),
        (27, Val::U32(p.conn_rate_limit)),
        (28, Val::U32(c.max_conn_rate)),
        (29, Val::U32(c.sess_per_sec.read(now))),
        (30, Val::U32(p.sess_rate_limit)),
        (31, Val::U32(c.max_sess_rate)),
        (32, Val::U32(0)),
        (33, Val::U32(p.ssl_rate_limit)),
        (34, Val::U32(0)),
        (35, Val::U32(0)),
        (36, Val::U32(0)),
        (37, Val::U32(0)),
        (38, Val::U32(0)),
        (39, Val::U32(0)),
        (40, Val::U32(0)),
        (41, Val::U32(0)),
        (42, Val::U32(0)),
        (43, Val::U32(0)),
        (44, Val::U32(0)),
        (47, Val::U32(c.tasks)),
        (48, Val::U32(c.run_queue)),
        (49, Val::U32(p.idle_pct)),
        (50, Val::Str(Cow::Borrowed(&p.node))),
        (52, Val::U32(u32::from(p.stopping))),
        (53, Val::U32(p.jobs)),
        (54, Val::U32(p.unstoppable_jobs)),
        (55, Val::U32(p.listeners)),
        (56, Val::U32(0)),
        (57, Val::U32(0)),
        (58, u32_of(c.dropped_logs)),
        (59, Val::U32(0)),
        (60, Val::U32(0)),
        (61, Val::U64(c.total_bytes_out)),
        (62, Val::U64(0)),
        (63, Val::U64(u64::from(c.bytes_out_per_sec.read(now)))),
        (64, Val::U32(0)),
        (65, Val::U32(0)),
        (66, Val::Str(Cow::Borrowed(&p.version))),
        (67, Val::U32(0)),
        (68, Val::U64(p.pool_alloc_bytes)),
        (69, Val::U64(p.pool_used_bytes)),
        (70, u32_of(p.start_time_unix_s)),
        (71, Val::Str(Cow::Borrowed("0"))),
    ];
    for (i, x) in vals {
        v[i] = x;
    }
    if let Some(d) = &p.description {
        v[51] = Val::Str(Cow::Borrowed(d));
    }
    v
}

/// Renders `show info [typed|json] [desc]` (the CLI's trailing blank line included).
pub fn cli_show_info(snap: &Snapshot, args: &[&str]) -> String {
    let mut format = Format::Csv;
    let mut desc = false;
    for a in args {
        match *a {
            "typed" => format = Format::Typed,
            "json" => format = Format::Json,
            "desc" => desc = true,
            "float" => {}
            other => return format!("Unknown argument '{other}'.\n"),
        }
    }
    let vals = info_values(snap);
    let mut out = String::with_capacity(2048);
    match format {
        Format::Csv => {
            for (i, v) in vals.iter().enumerate() {
                if v.is_empty() {
                    continue;
                }
                let _ = write!(out, "{}: ", INFO_FIELDS[i].0);
                v.write_plain(&mut out);
                out.push('\n');
            }
        }
        Format::Typed => {
            for (i, v) in vals.iter().enumerate() {
                if v.is_empty() {
                    continue;
                }
                let tags = INFO_TAGS[i].split(':').next().unwrap_or("MGP");
                let _ = write!(
                    out,
                    "{}.{}.1:{}:{}:",
                    i,
                    INFO_FIELDS[i].0,
                    tags,
                    v.type_name()
                );
                v.write_plain(&mut out);
                if desc {
                    let _ = write!(out, ":\"{}\"", INFO_FIELDS[i].1);
                }
                out.push('\n');
            }
        }
        Format::Json => {
            out.push('[');
            let mut first = true;
            for (i, v) in vals.iter().enumerate() {
                if v.is_empty() {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                let (o, n, s) = tag_words(INFO_TAGS[i].split(':').next().unwrap_or("MGP"));
                out.push_str("{\"field\":{\"pos\":");
                let _ = write!(out, "{i},\"name\":");
                write_json_str(&mut out, INFO_FIELDS[i].0);
                let _ = write!(
                    out,
                    "}},\"processNum\":1,\"tags\":{{\"origin\":\"{o}\",\"nature\":\"{n}\",\"scope\":\"{s}\"}},\"value\":"
                );
                v.write_json(&mut out);
                out.push('}');
            }
            out.push_str("]\n");
        }
    }
    out.push('\n');
    out
}
