//! Statistics of ringlb, pure: the per-shard counters and their merge, the process
//! [`Snapshot`], and HAProxy 2.6's renderers (`show stat`/`show info` in CSV, typed and
//! JSON, the Prometheus exporter, the stats page and its admin form).
//!
//! Must not: open sockets, read clocks, spawn threads. The engine passes `now_ms` in.
//!
//! # API note for the engine
//! - Each shard owns, per frontend/backend/server/listener, a [`FrontendCounters`],
//!   [`BackendCounters`], [`ServerCounters`], [`ListenerCounters`] (plain integers, no
//!   atomics) and, per backend and server, a [`LatencyHistograms`]; plus one
//!   [`ProcessCounters`]. Update them on the request path with the `on_*` helpers or the
//!   fields directly; record finished requests with `TimeStats::record(&RequestTimes)` (the
//!   `qtime/ctime/rtime/ttime` averages) and `LatencyHistograms::record(&RequestTimes)`.
//! - Rates ([`FreqCtr`]) and averages ([`SwRate`]) take the shard's monotonic `now_ms`; all
//!   shards must use the same clock origin so the control shard can merge them.
//! - [`skeleton::skeleton`] builds the snapshot's static part from the configuration.
//! - [`ShardCounters`] holds all of a shard's counters ([`ProxyCounters`] per proxy, by
//!   position). On a read, the control shard clones each shard's, `merge`s them,
//!   [`Snapshot::set_counters`] copies the result into a
//!   [`Snapshot`] (configuration and state — names, ids, status, weights, check results —
//!   come from the model and the health state), and calls a renderer with it:
//!   [`cli_show_stat`], [`cli_show_info`], [`page::serve`], [`prometheus::serve`]; admin
//!   POSTs go through [`admin::parse_admin_form`] and [`admin::admin_redirect`], `stats auth`
//!   through [`admin::check_basic_auth`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod field;
pub mod fill;
pub mod freq;
pub mod health;
pub mod latency;
pub mod model;
pub mod page;
pub mod prometheus;
pub mod promtext;
pub mod show;
pub mod skeleton;
pub mod tables;
mod tips;

/// `Release_date` of `show info` (and "released" on the stats page, `ringlb -v`), written as
/// HAProxy writes its own (`YYYY/MM/DD`): the date of the workspace `version`, set together
/// with it each time it changes (DEVELOPERS.md, "Releasing"), as HAProxy sets its VERDATE.
pub const RELEASE_DATE: &str = "2026/11/24";

pub use field::Val;
pub use fill::{server_status_text, FillOpts, ObjType};
pub use freq::{FreqCtr, SwRate, TIME_STATS_SAMPLES};
pub use latency::{Latency, LatencyHistograms, RequestTimes};
pub use model::{
    AdminState, BackendCounters, BackendStats, CheckStats, FrontendCounters, FrontendStats,
    HttpResponses, ListenState, ListenerCounters, ListenerStats, MuxCounters, OperState,
    ProcessCounters, ProcessInfo, ProxyCounters, ProxyMode, ProxyStats, ServerCounters,
    ServerStats, ShardCounters, Snapshot, SslCounters, StickTableStats, TimeStats,
};
pub use show::{cli_show_info, cli_show_stat, parse_show_stat, render_stat, Format, StatRequest};

#[cfg(test)]
mod tests {
    /// A real date in HAProxy's form, so scripts that parse `show info` read it.
    #[test]
    fn release_date_is_a_date_in_haproxy_s_form() {
        let parts: Vec<u32> = super::RELEASE_DATE
            .split('/')
            .filter_map(|p| p.parse().ok())
            .collect();
        assert_eq!(super::RELEASE_DATE.len(), 10, "{}", super::RELEASE_DATE);
        assert!(
            matches!(parts.as_slice(), [y, m, d] if *y >= 2026 && (1..=12).contains(m) && (1..=31).contains(d)),
            "{}",
            super::RELEASE_DATE
        );
    }
}
