//! The stats page's hover tooltips (HAProxy's `<div class=tips>` detail tables), plus
//! ringlb's latency percentiles in the servers' and backends' session tooltips.

use crate::latency::LatencyHistograms;
use crate::model::{BackendCounters, FrontendCounters, ServerStats};
use crate::show::QUANTILES;
use std::fmt::Write;

/// Rows of a detail table: label and cells.
struct Det(String);

impl Det {
    fn new() -> Det {
        Det(String::from("<table class=det>"))
    }

    fn row(&mut self, label: &str, value: impl std::fmt::Display) -> &mut Det {
        let _ = write!(self.0, "<tr><th>{label}</th><td>{value}</td></tr>");
        self
    }

    fn row_pct(&mut self, label: &str, value: u64, total: u64) -> &mut Det {
        let pct = value.saturating_mul(100).checked_div(total).unwrap_or(0);
        let _ = write!(
            self.0,
            "<tr><th>{label}</th><td>{value}</td><td>({pct}%)</td></tr>"
        );
        self
    }

    fn header(&mut self, text: &str) -> &mut Det {
        let _ = write!(self.0, "<tr><th colspan=3>{text}</th></tr>");
        self
    }

    fn done(&mut self) -> String {
        self.0.push_str("</table>");
        std::mem::take(&mut self.0)
    }
}

/// `<td><u>value<div class=tips>tip</div></u></td>`.
pub fn td_tip(out: &mut String, value: &str, tip: &str) {
    let _ = write!(out, "<td><u>{value}<div class=tips>{tip}</div></u></td>");
}

const HRSP: [&str; 6] = [
    "- HTTP 1xx responses:",
    "- HTTP 2xx responses:",
    "- HTTP 3xx responses:",
    "- HTTP 4xx responses:",
    "- HTTP 5xx responses:",
    "- other responses:",
];

pub fn fe_rate(c: &FrontendCounters, now_ms: u64, http: bool) -> String {
    let mut d = Det::new();
    d.row(
        "Current connection rate:",
        format!("{}/s", c.conn_per_sec.read(now_ms)),
    );
    d.row(
        "Current session rate:",
        format!("{}/s", c.sess_per_sec.read(now_ms)),
    );
    if http {
        d.row(
            "Current request rate:",
            format!("{}/s", c.req_per_sec.read(now_ms)),
        );
    }
    d.done()
}

pub fn fe_rate_max(c: &FrontendCounters, http: bool) -> String {
    let mut d = Det::new();
    d.row("Max connection rate:", format!("{}/s", c.cps_max));
    d.row("Max session rate:", format!("{}/s", c.sps_max));
    if http {
        d.row("Max request rate:", format!("{}/s", c.rps_max));
    }
    d.done()
}

pub fn fe_total(c: &FrontendCounters, http: bool) -> String {
    let mut d = Det::new();
    d.row("Cum. connections:", c.cum_conn);
    d.row("Cum. sessions:", c.cum_sess);
    if http {
        d.row("Cum. HTTP requests:", c.cum_req);
        for (i, label) in HRSP.iter().enumerate() {
            d.row(label, c.rsp.0[i]);
            if i == 1 {
                d.row_pct("&nbsp;&nbsp;Compressed 2xx:", c.comp_rsp, c.rsp.0[1]);
            }
        }
        d.row("Intercepted requests:", c.intercepted_req);
        d.row("Cache lookups:", c.cache_lookups);
        d.row_pct("Cache hits:", c.cache_hits, c.cache_lookups);
        d.row("Failed hdr rewrites:", c.failed_rewrites);
        d.row("Internal errors:", c.internal_errors);
    }
    d.done()
}

/// The bytes-out tooltip of frontends and backends (compression figures).
pub fn bytes_out(bytes_out: u64, comp_in: u64, comp_out: u64, comp_byp: u64) -> String {
    let saved = comp_in.saturating_sub(comp_out);
    let pct = |a: u64, b: u64| a.saturating_mul(100).checked_div(b).unwrap_or(0);
    let mut d = Det::new();
    d.row("Response bytes in:", bytes_out);
    d.row("Compression in:", comp_in);
    let _ = write!(
        d.0,
        "<tr><th>Compression out:</th><td>{comp_out}</td><td>({}%)</td></tr>",
        pct(comp_out, comp_in)
    );
    d.row("Compression bypass:", comp_byp);
    let _ = write!(
        d.0,
        "<tr><th>Total bytes saved:</th><td>{saved}</td><td>({}%)</td></tr>",
        pct(saved, bytes_out)
    );
    d.done()
}

pub fn sv_current(sv: &ServerStats) -> String {
    let c = &sv.counters;
    let limit = |v: u32| if v > 0 { v.to_string() } else { "-".into() };
    Det::new()
        .row("Current active connections:", c.cur_sess)
        .row("Current used connections:", c.used_conn_cur)
        .row("Current idle connections:", c.idle_conn_cur)
        .row("- unsafe:", c.idle_conn_cur.saturating_sub(c.safe_conn_cur))
        .row("- safe:", c.safe_conn_cur)
        .row("Estimated need of connections:", c.need_conn_est)
        .row("Active connections limit:", limit(sv.maxconn))
        .row(
            "Idle connections limit:",
            sv.max_idle_conns.map_or("-".into(), |v| v.to_string()),
        )
        .done()
}

/// Percentiles of the four phases (ms), ringlb's addition under HAProxy's averages.
fn percentiles(d: &mut Det, lat: &LatencyHistograms) {
    if lat.total.count() == 0 {
        return;
    }
    d.header("Percentiles p50 / p90 / p99 / p99.9 (ringlb)");
    for (label, h) in [
        ("- Queue time:", &lat.queue),
        ("- Connect time:", &lat.connect),
        ("- Responses time:", &lat.response),
        ("- Total time:", &lat.total),
    ] {
        let v: Vec<String> = QUANTILES
            .iter()
            .map(|q| format!("{:.2}", h.quantile_us(*q) as f64 / 1000.0))
            .collect();
        let _ = write!(
            d.0,
            "<tr><th>{label}</th><td>{}</td><td>ms</td></tr>",
            v.join(" / ")
        );
    }
}

fn times(d: &mut Det, t: &crate::model::TimeStats, http: bool) {
    d.header("Max / Avg over last 1024 success. conn.");
    for (label, max, avg) in [
        ("- Queue time:", t.qtime_max, t.q.avg()),
        ("- Connect time:", t.ctime_max, t.c.avg()),
        ("- Responses time:", t.rtime_max, t.d.avg()),
        ("- Total time:", t.ttime_max, t.t.avg()),
    ] {
        if !http && label == "- Responses time:" {
            continue;
        }
        let _ = write!(
            d.0,
            "<tr><th>{label}</th><td>{max} / {avg}</td><td>ms</td></tr>"
        );
    }
}

pub fn sv_total(sv: &ServerStats, http: bool) -> String {
    let c = &sv.counters;
    let mut d = Det::new();
    d.row("Cum. sessions:", c.cum_sess);
    if http {
        d.row("New connections:", c.connect);
        d.row_pct("Reused connections:", c.reuse, c.connect + c.reuse);
        d.row("Cum. HTTP requests:", c.cum_req);
        for (i, label) in HRSP.iter().enumerate() {
            d.row_pct(label, c.rsp.0[i], c.cum_req);
        }
        d.row("Failed hdr rewrites:", c.failed_rewrites);
        d.row("Internal error:", c.internal_errors);
    }
    times(&mut d, &c.times, http);
    percentiles(&mut d, &sv.latency);
    d.done()
}

pub fn be_total(c: &BackendCounters, lat: &LatencyHistograms, http: bool) -> String {
    let mut d = Det::new();
    d.row("Cum. sessions:", c.cum_sess);
    if http {
        d.row("New connections:", c.connect);
        d.row_pct("Reused connections:", c.reuse, c.connect + c.reuse);
        d.row("Cum. HTTP requests:", c.cum_req);
        for (i, label) in HRSP.iter().enumerate() {
            d.row(label, c.rsp.0[i]);
            if i == 1 {
                d.row_pct("&nbsp;&nbsp;Compressed 2xx:", c.comp_rsp, c.rsp.0[1]);
            }
        }
        d.row("Cache lookups:", c.cache_lookups);
        d.row_pct("Cache hits:", c.cache_hits, c.cache_lookups);
        d.row("Failed hdr rewrites:", c.failed_rewrites);
        d.row("Internal errors:", c.internal_errors);
    }
    times(&mut d, &c.times, http);
    percentiles(&mut d, lat);
    d.done()
}
