//! The HTML stats page (`stats enable`/`stats uri`), close to HAProxy 2.6's layout: the
//! process block with the legend, then one table per proxy with a row per frontend,
//! listener, server and backend coloured by state, ringlb's latency percentiles as an extra
//! column group, and the admin form (`stats admin`). `;csv` and `;json` go to
//! [`crate::show::render_stat`].

use crate::fill::{backend_agg, server_status_text, FillOpts};
use crate::latency::Latency;
use crate::model::{ProxyStats, ServerStats, Snapshot};
use crate::show::{proxy_selected, render_stat, Format, StatRequest};
use crate::tips;
use std::fmt::Write;

/// Stats page settings from the proxy's `stats` keywords.
#[derive(Debug, Clone, Default)]
pub struct PageConfig {
    /// `stats uri` (default `/haproxy?stats`).
    pub uri: String,
    /// `stats refresh` (s).
    pub refresh_s: Option<u32>,
    pub hide_version: bool,
    /// `stats show-node [name]`: the node name to show (the process's when empty).
    pub show_node: Option<String>,
    /// `stats show-desc [text]`.
    pub show_desc: Option<String>,
    pub show_legends: bool,
    /// `stats scope`: proxies shown (all when empty).
    pub scopes: Vec<String>,
    /// `stats admin` matched for this request: the admin form is shown.
    pub admin: bool,
}

/// What the request URI asks for (the part after `stats uri`: `;csv`, `;up`...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub format: PageFormat,
    pub norefresh: bool,
    pub up_only: bool,
    pub no_maint: bool,
    /// `?scope=` search text (case-insensitive substring of proxy names).
    pub search: Option<String>,
    /// `;st=DONE` etc.: result of the last admin action, shown as a message.
    pub status: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PageFormat {
    #[default]
    Html,
    Csv,
    Json,
    Typed,
    JsonSchema,
}

/// Parses what follows the stats URI prefix (e.g. `;csv;norefresh?scope=app`).
pub fn parse_page_request(rest: &str) -> PageRequest {
    let mut r = PageRequest::default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    for opt in path.split(';').filter(|s| !s.is_empty()) {
        match opt {
            "csv" => r.format = PageFormat::Csv,
            "json" => r.format = PageFormat::Json,
            "typed" => r.format = PageFormat::Typed,
            "json-schema" => r.format = PageFormat::JsonSchema,
            "norefresh" => r.norefresh = true,
            "up" => r.up_only = true,
            "no-maint" => r.no_maint = true,
            o => {
                if let Some(st) = o.strip_prefix("st=") {
                    r.status = Some(st.to_string());
                }
            }
        }
    }
    for p in query.split('&') {
        if let Some(v) = p.strip_prefix("scope=") {
            let v = crate::admin::form_decode(v);
            r.search = (!v.is_empty()).then_some(v);
        }
    }
    r
}

/// An HTTP response for the engine to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Serves a GET of the stats URI.
pub fn serve(snap: &Snapshot, cfg: &PageConfig, req: &PageRequest) -> HttpAnswer {
    let mut headers = vec![("cache-control".to_string(), "no-cache".to_string())];
    let opts = FillOpts {
        show_legends: cfg.show_legends,
        hide_down_or_maint: req.up_only || req.no_maint,
    };
    let stat_req = StatRequest {
        up_only: req.up_only,
        no_maint: req.no_maint,
        scopes: cfg.scopes.clone(),
        search: req.search.clone(),
        ..Default::default()
    };
    let (ctype, body) = match req.format {
        PageFormat::Csv => ("text/plain", render_stat(snap, &stat_req, opts)),
        PageFormat::Json => {
            let r = StatRequest {
                format: Format::Json,
                ..stat_req
            };
            ("application/json", render_stat(snap, &r, opts))
        }
        PageFormat::Typed => {
            let r = StatRequest {
                format: Format::Typed,
                ..stat_req
            };
            ("text/plain", render_stat(snap, &r, opts))
        }
        PageFormat::JsonSchema => ("application/json", JSON_SCHEMA.to_string()),
        PageFormat::Html => {
            if let (Some(r), false) = (cfg.refresh_s, req.norefresh) {
                headers.push(("refresh".to_string(), r.to_string()));
            }
            ("text/html", html(snap, cfg, req, &stat_req))
        }
    };
    headers.push(("content-type".to_string(), ctype.to_string()));
    HttpAnswer {
        status: 200,
        headers,
        body,
    }
}

/// The JSON schema of the JSON exports (`;json-schema`, `show schema json`).
pub const JSON_SCHEMA: &str = include_str!("json_schema.json");

/// HAProxy's `human_time`: `3s`, `1m10s`, `2h3m`, `1d2h`.
pub fn human_time(s: u64) -> String {
    let (d, h, m, sec) = (s / 86400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// Digits grouped by thousands with HAProxy's `rls` spans (`1<span>000` look).
fn num(out: &mut String, v: u64) {
    let s = v.to_string();
    let first = s.len() % 3;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = if i == 0 && first != 0 { first } else { i + 3 };
        let chunk = &s[i..end.min(s.len())];
        if end < s.len() {
            let _ = write!(out, "<span class=\"rls\">{chunk}</span>");
        } else {
            out.push_str(chunk);
        }
        i = end;
    }
}

fn numstr(v: u64) -> String {
    let mut s = String::new();
    num(&mut s, v);
    s
}

fn td_num(out: &mut String, v: u64) {
    out.push_str("<td>");
    num(out, v);
    out.push_str("</td>");
}

fn td(out: &mut String, s: &str) {
    let _ = write!(out, "<td>{s}</td>");
}

/// Minimal HTML escaping for names and texts coming from the configuration or checks.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The row class of a server: its colour (HAProxy's `active_up`, `backup_going_down`,
/// `maintain`...).
pub fn server_class(sv: &ServerStats) -> String {
    if sv.admin.in_maintenance() {
        return "maintain".into();
    }
    let text = server_status_text(sv);
    let going = text.contains('/');
    let state = match text.split(' ').next().unwrap_or("") {
        "DOWN" if going => "going_up",
        "DOWN" => "down",
        "UP" | "NOLB" | "DRAIN" if going => "going_down",
        "UP" => "up",
        "NOLB" => "nolb",
        "DRAIN" => "draining",
        _ => "no_check",
    };
    format!("{}_{state}", if sv.backup { "backup" } else { "active" })
}

const CSS: &str = "body { font-family: arial, helvetica, sans-serif; font-size: 12px; color: black; background: white;}
th,td { font-size: 10px;}
h1 { font-size: x-large; margin-bottom: 0.5em;}
h2 { font-family: helvetica, arial; font-size: x-large; font-weight: bold; font-style: italic; color: #6020a0; margin: 0;}
h3 { font-family: helvetica, arial; font-size: 16px; font-weight: bold; color: #b00040; background: #e8e8d0; margin: 0;}
.hr {margin-top: 0.25em; border-color: black; border-bottom-style: solid;}
.titre {background: #20D0D0; color: #000000; font-weight: bold; text-align: center;}
.frontend {background: #e8e8d0;}
.socket {background: #d0d0d0;}
.backend {background: #e8e8d0;}
.active_down {background: #ff9090;}
.active_going_up {background: #ffd020;}
.active_going_down {background: #ffffa0;}
.active_up {background: #c0ffc0;}
.active_nolb {background: #20a0ff;}
.active_draining {background: #20a0FF;}
.active_no_check {background: #e0e0e0;}
.backup_down {background: #ff9090;}
.backup_going_up {background: #ff80ff;}
.backup_going_down {background: #c060ff;}
.backup_up {background: #b0d0ff;}
.backup_nolb {background: #90b0e0;}
.backup_draining {background: #cc9900;}
.backup_no_check {background: #e0e0e0;}
.maintain {background: #c07820;}
.rls {letter-spacing: 0.2em; margin-right: 1px;}
a.px:link, a.px:visited {color: #ffff40; text-decoration: none;}
a.lfsb:link, a.lfsb:visited {color: #000000; text-decoration: none;}
table.tbl { border-collapse: collapse; border-style: none;}
table.tbl td { text-align: right; border: 1px solid gray; padding: 2px 3px; white-space: nowrap;}
table.tbl td.ac { text-align: center;}
table.tbl th { border: 1px solid gray;}
table.tbl th.pxname { background: #b00040; color: #ffff40; font-weight: bold; padding: 2px 3px; white-space: nowrap;}
table.tbl th.empty { border-style: none; background: white;}
table.tbl th.desc { background: white; text-align: left; padding: 2px 3px;}
table.lgd { border-collapse: collapse; border-width: 1px; border-style: none none none solid; border-color: black;}
table.lgd td { border: 1px solid gray; padding: 2px;}
table.lgd td.noborder { border-style: none; padding: 2px; white-space: nowrap;}
u {text-decoration:none; border-bottom: 1px dotted black;}
div.tips { display:block; visibility:hidden; z-index:2147483647; position:absolute; padding:2px 4px 3px; background:#f0f060; border:1px solid #7040c0; white-space:nowrap; font-size:11px;}
u:hover div.tips {visibility:visible;}
";

fn head(out: &mut String, snap: &Snapshot, cfg: &PageConfig, req: &PageRequest) {
    let p = &snap.process;
    let node = cfg.show_node.as_ref().map(|n| {
        if n.is_empty() {
            p.node.as_str()
        } else {
            n.as_str()
        }
    });
    let _ = write!(
        out,
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\"\n\"http://www.w3.org/TR/html4/loose.dtd\">\n<html><head><title>Statistics Report for {}{}</title>\n<link rel=\"icon\" href=\"data:,\">\n<meta http-equiv=\"content-type\" content=\"text/html; charset=iso-8859-1\">\n{}<style type=\"text/css\"><!--\n{CSS}-->\n</style></head>\n<body>",
        esc(&p.name),
        node.map(|n| format!(" on {}", esc(n))).unwrap_or_default(),
        // `stats refresh`: the `Refresh` header as HAProxy sends, and a meta tag for the same.
        match (cfg.refresh_s, req.norefresh) {
            (Some(r), false) => format!("<meta http-equiv=\"refresh\" content=\"{r}\">\n"),
            _ => String::new(),
        }
    );
    if cfg.hide_version {
        let _ = writeln!(out, "<h1>{}</h1>", esc(&p.name));
    } else {
        let _ = writeln!(
            out,
            "<h1>{} version {}, released {}</h1>",
            esc(&p.name),
            esc(&p.version),
            esc(&p.release_date)
        );
    }
    let _ = write!(out, "<h2>Statistics Report for pid {}", p.pid);
    if let Some(n) = node {
        let _ = write!(out, " on {}", esc(n));
    }
    if let Some(d) = cfg.show_desc.as_ref() {
        let d = if d.is_empty() {
            p.description.as_deref().unwrap_or("")
        } else {
            d.as_str()
        };
        let _ = write!(out, ": {}", esc(d));
    }
    out.push_str("</h2>\n<hr width=\"100%\" class=\"hr\">\n");
}

fn process_block(out: &mut String, snap: &Snapshot, cfg: &PageConfig, req: &PageRequest) {
    let p = &snap.process;
    let c = &p.counters;
    let up_s = snap.now_ms.saturating_sub(p.start_ms) / 1000;
    let _ = write!(
        out,
        "<h3>&gt; General process information</h3>\n<table border=0><tr><td align=\"left\" nowrap width=\"1%\">\n<p><b>pid = </b> {} (process #1, nbproc = 1, nbthread = {})<br>\n<b>uptime = </b> {}d {}h{:02}m{:02}s<br>\n<b>system limits:</b> memmax = unlimited; ulimit-n = {}<br>\n<b>maxsock = </b> {}; <b>maxconn = </b> {}; <b>maxpipes = </b> {}<br>\ncurrent conns = {}; current pipes = 0/0; conn rate = {}/sec<br>\nRunning tasks: {}/{}; idle = {} %<br>\n</td><td align=\"center\" nowrap>\n",
        p.pid, p.nbthread, up_s / 86400, (up_s / 3600) % 24, (up_s / 60) % 60, up_s % 60,
        p.ulimit_n, p.maxsock, p.maxconn, p.maxpipes, c.curr_conns, c.conn_per_sec.read(snap.now_ms),
        c.run_queue, c.tasks, p.idle_pct
    );
    out.push_str(LEGEND);
    let uri = &cfg.uri;
    let _ = writeln!(
        out,
        "</td><td align=\"left\" valign=\"top\" nowrap width=\"1%\"><b>Display option:</b><ul style=\"margin-top: 0.25em;\"><li><form method=\"GET\">Scope : <input value=\"{}\" name=\"scope\" size=\"8\" maxlength=\"20\" tabindex=\"1\"/></form>",
        esc(req.search.as_deref().unwrap_or(""))
    );
    if req.up_only {
        let _ = writeln!(out, "<li><a href=\"{uri}\">Show all servers</a><br>");
    } else {
        let _ = writeln!(out, "<li><a href=\"{uri};up\">Hide 'DOWN' servers</a><br>");
    }
    if cfg.refresh_s.is_some() {
        if req.norefresh {
            let _ = writeln!(out, "<li><a href=\"{uri}\">Enable refresh</a><br>");
        } else {
            let _ = writeln!(
                out,
                "<li><a href=\"{uri};norefresh\">Disable refresh</a><br>"
            );
        }
    }
    let _ = write!(
        out,
        "<li><a href=\"{uri}\">Refresh now</a><br>\n<li><a href=\"{uri};csv;norefresh\">CSV export</a><br>\n<li><a href=\"{uri};json;norefresh\">JSON export</a> (<a href=\"{uri};json-schema\">schema</a>)<br>\n</ul></td></tr></table>\n"
    );
    if let Some(st) = &req.status {
        let (class, msg) = match st.as_str() {
            "DONE" => ("active_up", "Action processed successfully."),
            "NONE" => ("active_going_down", "Nothing has changed."),
            "PART" => ("active_going_down", "Action not processed completely: some servers were not found or are not managed by this form."),
            "ERRP" => ("active_down", "Action not processed because of invalid parameters."),
            "EXCD" => ("active_down", "Action not processed : the buffer couldn't store all the data. You should retry with less servers at a time."),
            "DENY" => ("active_down", "Action denied."),
            "IVAL" => ("active_down", "Invalid requests (unsupported method or chunked encoded request)."),
            _ => ("active_no_check", "Unexpected result."),
        };
        let _ = writeln!(out, "<p><div class={class}><a class=lfsb href=\"{uri}\" title=\"Remove this message\">[X]</a> {msg}</div>");
    }
    out.push_str("<p>\n");
}

const LEGEND: &str = "<table class=\"lgd\"><tr>
<td class=\"active_up\">&nbsp;</td><td class=\"noborder\">active UP </td><td class=\"backup_up\">&nbsp;</td><td class=\"noborder\">backup UP </td></tr><tr>
<td class=\"active_going_down\"></td><td class=\"noborder\">active UP, going down </td><td class=\"backup_going_down\"></td><td class=\"noborder\">backup UP, going down </td></tr><tr>
<td class=\"active_going_up\"></td><td class=\"noborder\">active DOWN, going up </td><td class=\"backup_going_up\"></td><td class=\"noborder\">backup DOWN, going up </td></tr><tr>
<td class=\"active_down\"></td><td class=\"noborder\">active or backup DOWN &nbsp;</td><td class=\"active_no_check\"></td><td class=\"noborder\">not checked </td></tr><tr>
<td class=\"maintain\"></td><td class=\"noborder\" colspan=\"3\">active or backup DOWN for maintenance (MAINT) &nbsp;</td></tr><tr>
<td class=\"active_draining\"></td><td class=\"noborder\" colspan=\"3\">active or backup SOFT STOPPED for maintenance &nbsp;</td></tr></table>
Note: \"NOLB\"/\"DRAIN\" = UP with load-balancing disabled.";

const COLS_TITLE: &str = "<th colspan=3>Queue</th><th colspan=3>Session rate</th><th colspan=6>Sessions</th><th colspan=2>Bytes</th><th colspan=2>Denied</th><th colspan=3>Errors</th><th colspan=2>Warnings</th><th colspan=9>Server</th><th colspan=4>Total time (ms)</th></tr>\n<tr class=\"titre\"><th>Cur</th><th>Max</th><th>Limit</th><th>Cur</th><th>Max</th><th>Limit</th><th>Cur</th><th>Max</th><th>Limit</th><th>Total</th><th>LbTot</th><th>Last</th><th>In</th><th>Out</th><th>Req</th><th>Resp</th><th>Req</th><th>Conn</th><th>Resp</th><th>Retr</th><th>Redis</th><th>Status</th><th>LastChk</th><th>Wght</th><th>Act</th><th>Bck</th><th>Chk</th><th>Dwn</th><th>Dwntme</th><th>Thrtle</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th>\n</tr>";

fn cap_str(px: &ProxyStats) -> &'static str {
    match (px.frontend.is_some(), px.backend.is_some()) {
        (true, true) => "frontend, backend",
        (true, false) => "frontend",
        _ => "backend",
    }
}

fn proxy_header(out: &mut String, px: &ProxyStats, cfg: &PageConfig, admin: bool) {
    let name = esc(&px.name);
    if admin {
        out.push_str("<form method=\"post\">");
    }
    let _ = write!(out, "<table class=\"tbl\" width=\"100%\">\n<tr class=\"titre\"><th class=\"pxname\" width=\"10%\"><a name=\"{name}\"></a>");
    if cfg.show_legends {
        let _ = write!(
            out,
            "<u><a class=px href=\"#{name}\">{name}</a><div class=tips>cap: {}, mode: {}, id: {}</div></u>",
            cap_str(px),
            px.mode.as_str(),
            px.id
        );
    } else {
        let _ = write!(out, "<a class=px href=\"#{name}\">{name}</a>");
    }
    match &px.desc {
        Some(d) => {
            let _ = write!(
                out,
                "</th><th class=\"desc\" width=\"90%\">{}</th></tr>\n</table>\n",
                esc(d)
            );
        }
        None => out.push_str("</th><th class=\"empty\" width=\"90%\"></th></tr>\n</table>\n"),
    }
    out.push_str("<table class=\"tbl\" width=\"100%\">\n<tr class=\"titre\">");
    if admin {
        let _ = write!(
            out,
            "<th rowspan=2 width=1><input type=\"checkbox\" onclick=\"for(c in document.getElementsByClassName('{name}-checkbox')) document.getElementsByClassName('{name}-checkbox').item(c).checked = this.checked\"></th>"
        );
    }
    out.push_str("<th rowspan=2></th>");
    out.push_str(COLS_TITLE);
}

fn ms_of(us: u64) -> String {
    if us >= 10_000 {
        format!("{}", us / 1000)
    } else {
        format!("{}.{:02}", us / 1000, (us % 1000) / 10)
    }
}

fn latency_cells(out: &mut String, h: &Latency) {
    if h.count() == 0 {
        out.push_str("<td></td><td></td><td></td><td></td>");
        return;
    }
    for q in crate::show::QUANTILES {
        td(out, &ms_of(h.quantile_us(q)));
    }
}

fn name_cell(out: &mut String, px: &ProxyStats, anchor: &str, label: &str, tips: Option<String>) {
    let (p, a, l) = (esc(&px.name), esc(anchor), esc(label));
    match tips {
        Some(t) => {
            let _ = write!(out, "<td class=ac><a name=\"{p}/{a}\"></a><u><a class=lfsb href=\"#{p}/{a}\">{l}</a><div class=tips>{t}</div></u></td>");
        }
        None => {
            let _ = write!(
                out,
                "<td class=ac><a name=\"{p}/{a}\"></a><a class=lfsb href=\"#{p}/{a}\">{l}</a></td>"
            );
        }
    }
}

fn frontend_rows(
    out: &mut String,
    snap: &Snapshot,
    px: &ProxyStats,
    cfg: &PageConfig,
    admin: bool,
) {
    let Some(fe) = &px.frontend else { return };
    let c = &fe.counters;
    let now = snap.now_ms;
    out.push_str("<tr class=\"frontend\">");
    if admin {
        out.push_str("<td></td>");
    }
    let http = px.mode == crate::model::ProxyMode::Http;
    name_cell(out, px, "Frontend", "Frontend", None);
    out.push_str("<td colspan=3></td>");
    tips::td_tip(
        out,
        &numstr(u64::from(c.sess_per_sec.read(now))),
        &tips::fe_rate(c, now, http),
    );
    tips::td_tip(
        out,
        &numstr(u64::from(c.sps_max)),
        &tips::fe_rate_max(c, http),
    );
    if fe.rate_limit_sessions > 0 {
        td_num(out, u64::from(fe.rate_limit_sessions));
    } else {
        td(out, "-");
    }
    td_num(out, u64::from(c.cur_sess));
    td_num(out, u64::from(c.max_sess));
    td_num(out, u64::from(fe.maxconn));
    tips::td_tip(out, &numstr(c.cum_sess), &tips::fe_total(c, http));
    out.push_str("<td></td><td></td>");
    td_num(out, c.bytes_in);
    let _ = write!(
        out,
        "<td>{}<div class=tips>{}</div></td>",
        numstr(c.bytes_out),
        tips::bytes_out(c.bytes_out, c.comp_in, c.comp_out, c.comp_byp)
    );
    td_num(out, c.denied_req);
    td_num(out, c.denied_resp);
    td_num(out, c.failed_req);
    out.push_str("<td></td><td></td><td></td><td></td>");
    let _ = write!(
        out,
        "<td class=ac>{}</td><td class=ac colspan=8></td><td colspan=4></td></tr>",
        fe.state.as_str()
    );
    for li in &px.listeners {
        let lc = &li.counters;
        out.push_str("<tr class=socket>");
        if admin {
            out.push_str("<td></td>");
        }
        let tips = cfg
            .show_legends
            .then(|| format!("IPv4: {}, id: {}", esc(&li.addr), li.id));
        name_cell(out, px, &format!("+{}", li.name), &li.name, tips);
        out.push_str("<td colspan=3></td><td colspan=3>&nbsp;</td>");
        td_num(out, u64::from(lc.cur_sess));
        td_num(out, u64::from(lc.max_sess));
        td_num(out, u64::from(li.maxconn));
        td_num(out, lc.cum_sess);
        out.push_str("<td>&nbsp;</td><td>&nbsp;</td>");
        td_num(out, lc.bytes_in);
        td_num(out, lc.bytes_out);
        td_num(out, lc.denied_req);
        td_num(out, lc.denied_resp);
        td_num(out, lc.failed_req);
        out.push_str("<td></td><td></td><td></td><td></td>");
        let _ = write!(
            out,
            "<td class=ac>{}</td><td class=ac colspan=8></td><td colspan=4></td></tr>",
            li.state.as_str()
        );
    }
}

fn server_row(
    out: &mut String,
    snap: &Snapshot,
    px: &ProxyStats,
    sv: &ServerStats,
    cfg: &PageConfig,
    admin: bool,
) {
    let c = &sv.counters;
    let now = snap.now_ms;
    let _ = write!(out, "<tr class=\"{}\">", server_class(sv));
    if admin {
        let _ = write!(
            out,
            "<td><input class='{}-checkbox' type=\"checkbox\" name=\"s\" value=\"{}\"></td>",
            esc(&px.name),
            esc(&sv.name)
        );
    }
    let tips = cfg
        .show_legends
        .then(|| format!("IPv4: {}, id: {}", esc(&sv.addr), sv.id));
    name_cell(out, px, &sv.name, &sv.name, tips);
    td_num(out, u64::from(c.queue_cur));
    td_num(out, u64::from(c.queue_max));
    if sv.maxqueue > 0 {
        td_num(out, u64::from(sv.maxqueue))
    } else {
        td(out, "-")
    }
    td_num(out, u64::from(c.sess_per_sec.read(now)));
    td_num(out, u64::from(c.sps_max));
    out.push_str("<td></td>");
    tips::td_tip(out, &numstr(u64::from(c.cur_sess)), &tips::sv_current(sv));
    td_num(out, u64::from(c.max_sess));
    if sv.maxconn > 0 {
        td_num(out, u64::from(sv.maxconn))
    } else {
        td(out, "-")
    }
    tips::td_tip(
        out,
        &numstr(c.cum_sess),
        &tips::sv_total(sv, px.mode == crate::model::ProxyMode::Http),
    );
    td_num(out, c.cum_lbconn);
    match c.last_sess_ms {
        Some(t) => td(out, &human_time(now.saturating_sub(t) / 1000)),
        None => td(out, "?"),
    }
    td_num(out, c.bytes_in);
    td_num(out, c.bytes_out);
    out.push_str("<td></td>");
    td_num(out, c.denied_resp);
    out.push_str("<td></td>");
    td_num(out, c.failed_conns);
    let _ = write!(out, "<td><u>{}<div class=tips>Connection resets during transfers: {} client, {} server</div></u></td>", c.failed_resp, c.cli_aborts, c.srv_aborts);
    td_num(out, c.retries);
    td_num(out, c.redispatches);
    status_cell(out, sv, now);
    match &sv.check {
        Some(chk) => {
            let code = chk.code.map(|c| format!("/{c}")).unwrap_or_default();
            let dur = chk
                .duration_ms
                .map(|d| format!(" in {d}ms"))
                .unwrap_or_default();
            let info = if chk.info.is_empty() {
                esc(&chk.desc)
            } else {
                format!("{}: {}", esc(&chk.desc), esc(&chk.info))
            };
            // haproxy prints its `check_status` field: `* ` first while a check runs.
            let busy = if chk.in_progress { "* " } else { "" };
            let _ = write!(
                out,
                "<td class=ac><u> {busy}{}{code}{dur}<div class=tips>{info}</div></u></td>",
                esc(&chk.status)
            );
        }
        None => out.push_str("<td></td>"),
    }
    let _ = write!(out, "<td class=ac>{}/{}</td>", sv.weight, sv.uweight);
    let _ = write!(
        out,
        "<td class=ac>{}</td><td class=ac>{}</td>",
        if sv.backup { "-" } else { "Y" },
        if sv.backup { "Y" } else { "-" }
    );
    if sv.check.is_some() {
        let mut down_ms = sv.down_time_ms;
        if sv.oper == crate::model::OperState::Stopped {
            down_ms += now.saturating_sub(sv.last_change_ms);
        }
        let _ = write!(
            out,
            "<td><u>{}<div class=tips>Failed Health Checks</div></u></td>",
            sv.failed_checks
        );
        td_num(out, sv.down_trans);
        td(out, &human_time(down_ms / 1000));
    } else {
        out.push_str("<td colspan=3></td>");
    }
    match sv.throttle_pct {
        Some(t) if sv.oper == crate::model::OperState::Starting => {
            let _ = write!(out, "<td class=ac>{t} %</td>");
        }
        _ => out.push_str("<td class=ac>-</td>"),
    }
    latency_cells(out, &sv.latency.total);
    out.push_str("</tr>\n");
}

/// The status cell: `3s UP`, `<i>no check</i>`, `3s MAINT`, with HAProxy's arrows: `&uarr;`
/// for a DOWN server whose check is rising, `&darr;` while the check health is below its top
/// (which, as in HAProxy, includes servers without a check of their own, e.g. tracking ones).
fn status_cell(out: &mut String, sv: &ServerStats, now: u64) {
    let text = server_status_text(sv);
    let age = human_time(now.saturating_sub(sv.last_change_ms) / 1000);
    if text.starts_with("MAINT") {
        let _ = write!(out, "<td class=ac>{age} MAINT</td>");
        return;
    }
    if text == "no check" {
        out.push_str("<td class=ac><i>no check</i></td>");
        return;
    }
    let _ = write!(out, "<td class=ac>{age} {}", esc(&text));
    let (health, rise, fall) = sv
        .check
        .as_ref()
        .map_or((0, 0, 0), |c| (c.health, c.rise, c.fall));
    if text.starts_with("DOWN") {
        if health > 0 {
            out.push_str(" &uarr;");
        }
    } else if health < (rise + fall).wrapping_sub(1) {
        out.push_str(" &darr;");
    }
    out.push_str("</td>");
}

fn backend_row(out: &mut String, snap: &Snapshot, px: &ProxyStats, cfg: &PageConfig, admin: bool) {
    let Some(be) = &px.backend else { return };
    let c = &be.counters;
    let now = snap.now_ms;
    let agg = backend_agg(be, &px.servers);
    out.push_str("<tr class=\"backend\">");
    if admin {
        out.push_str("<td></td>");
    }
    let tips = cfg
        .show_legends
        .then(|| format!("balancing: {}", esc(&be.algo)));
    name_cell(out, px, "Backend", "Backend", tips);
    td_num(out, u64::from(c.queue_cur));
    td_num(out, u64::from(c.queue_max));
    out.push_str("<td></td>");
    td_num(out, u64::from(c.sess_per_sec.read(now)));
    td_num(out, u64::from(c.sps_max));
    out.push_str("<td></td>");
    td_num(out, u64::from(c.cur_sess));
    td_num(out, u64::from(c.max_sess));
    td_num(out, u64::from(be.fullconn));
    tips::td_tip(
        out,
        &numstr(c.cum_sess),
        &tips::be_total(c, &be.latency, px.mode == crate::model::ProxyMode::Http),
    );
    td_num(out, c.cum_lbconn);
    match c.last_sess_ms {
        Some(t) => td(out, &human_time(now.saturating_sub(t) / 1000)),
        None => td(out, "?"),
    }
    td_num(out, c.bytes_in);
    let _ = write!(
        out,
        "<td>{}<div class=tips>{}</div></td>",
        numstr(c.bytes_out),
        tips::bytes_out(c.bytes_out, c.comp_in, c.comp_out, c.comp_byp)
    );
    td_num(out, c.denied_req);
    td_num(out, c.denied_resp);
    out.push_str("<td></td>");
    td_num(out, c.failed_conns);
    let _ = write!(out, "<td><u>{}<div class=tips>Connection resets during transfers: {} client, {} server</div></u></td>", c.failed_resp, c.cli_aborts, c.srv_aborts);
    td_num(out, c.retries);
    td_num(out, c.redispatches);
    let word = if agg.up { "UP" } else { "DOWN" };
    let _ = write!(
        out,
        "<td class=ac>{} {word}</td><td class=ac>&nbsp;</td>",
        human_time(now.saturating_sub(be.last_change_ms) / 1000)
    );
    let _ = write!(
        out,
        "<td class=ac>{}/{}</td><td class=ac>{}</td><td class=ac>{}</td><td class=ac>&nbsp;</td>",
        agg.weight, agg.uweight, agg.act, agg.bck
    );
    td_num(out, be.down_trans);
    let mut down_ms = be.down_time_ms;
    if !agg.up {
        down_ms += now.saturating_sub(be.last_change_ms);
    }
    if px.servers.is_empty() {
        out.push_str("<td></td>")
    } else {
        td(out, &human_time(down_ms / 1000))
    }
    out.push_str("<td></td>");
    latency_cells(out, &be.latency.total);
    out.push_str("</tr>");
}

const ADMIN_ACTIONS: [(&str, &str); 13] = [
    ("ready", "Set state to READY"),
    ("drain", "Set state to DRAIN"),
    ("maint", "Set state to MAINT"),
    ("dhlth", "Health: disable checks"),
    ("ehlth", "Health: enable checks"),
    ("hrunn", "Health: force UP"),
    ("hnolb", "Health: force NOLB"),
    ("hdown", "Health: force DOWN"),
    ("dagent", "Agent: disable checks"),
    ("eagent", "Agent: enable checks"),
    ("arunn", "Agent: force UP"),
    ("adown", "Agent: force DOWN"),
    ("shutdown", "Kill Sessions"),
];

fn html(snap: &Snapshot, cfg: &PageConfig, req: &PageRequest, sel: &StatRequest) -> String {
    let mut out = String::with_capacity(32 * 1024);
    head(&mut out, snap, cfg, req);
    process_block(&mut out, snap, cfg, req);
    for px in snap.proxies.iter().filter(|p| proxy_selected(p, sel)) {
        let admin = cfg.admin && px.backend.is_some() && !px.servers.is_empty();
        proxy_header(&mut out, px, cfg, admin);
        frontend_rows(&mut out, snap, px, cfg, admin);
        if px.backend.is_some() {
            for sv in &px.servers {
                if req.no_maint && sv.admin.in_maintenance() {
                    continue;
                }
                if req.up_only
                    && (sv.admin.in_maintenance() || sv.oper == crate::model::OperState::Stopped)
                {
                    continue;
                }
                server_row(&mut out, snap, px, sv, cfg, admin);
            }
            backend_row(&mut out, snap, px, cfg, admin);
        }
        out.push_str("</table>");
        if admin {
            out.push_str("Choose the action to perform on the checked servers : <select name=action><option value=\"\"></option>");
            for (v, label) in ADMIN_ACTIONS {
                let _ = write!(out, "<option value=\"{v}\">{label}</option>");
            }
            let _ = write!(out, "</select><input type=\"hidden\" name=\"b\" value=\"#{}\">&nbsp;<input type=\"submit\" value=\"Apply\"></form>", px.id);
        }
        out.push_str("<p>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// What the stats URI answers for one request (see [`route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsRoute {
    /// The request is not for the stats URI: the proxy handles it normally.
    NotStats,
    /// Send this answer (the page, an export, a 401, a refused or malformed admin POST).
    Answer(HttpAnswer),
    /// An admin action to apply; then answer `admin_redirect(&redirect_uri, status)` with the
    /// status from [`crate::admin::AdminStatus::from_counts`].
    Admin {
        request: crate::admin::AdminRequest,
        redirect_uri: String,
    },
}

/// `stats auth`/`stats realm` of the proxy.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// No credentials: no authentication.
    pub credentials: Vec<crate::admin::Credential>,
    pub realm: Option<String>,
}

/// The part of `target` after the stats URI, if `target` is for the stats page (HAProxy
/// matches `stats uri` as a prefix of the request's path and query).
pub fn match_uri<'a>(uri: &str, target: &'a str) -> Option<&'a str> {
    target.strip_prefix(uri)
}

/// HAProxy's stats applet flow: stats URI prefix, `stats auth` (401), POST only with
/// `stats admin` (else 303 `;st=DENY`), a malformed form (303 `;st=ERRP`/`NONE`), otherwise
/// the page or an export. `cfg.admin` is the result of the `stats admin` condition.
pub fn route(
    snap: &Snapshot,
    cfg: &PageConfig,
    auth: &AuthConfig,
    method: &str,
    target: &str,
    authorization: Option<&str>,
    body: &str,
) -> StatsRoute {
    use crate::admin::{
        admin_redirect, check_basic_auth, parse_admin_form, unauthorized, AdminStatus,
    };
    let Some(rest) = match_uri(&cfg.uri, target) else {
        return StatsRoute::NotStats;
    };
    if !auth.credentials.is_empty() && check_basic_auth(authorization, &auth.credentials).is_none()
    {
        return StatsRoute::Answer(unauthorized(auth.realm.as_deref()));
    }
    let redirect_uri = cfg.uri.clone();
    if method.eq_ignore_ascii_case("POST") {
        if !cfg.admin {
            return StatsRoute::Answer(admin_redirect(&redirect_uri, AdminStatus::Deny));
        }
        return match parse_admin_form(body) {
            Ok(request) => StatsRoute::Admin {
                request,
                redirect_uri,
            },
            Err(st) => StatsRoute::Answer(admin_redirect(&redirect_uri, st)),
        };
    }
    StatsRoute::Answer(serve(snap, cfg, &parse_page_request(rest)))
}
