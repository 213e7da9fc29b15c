//! From `ringlb-health`'s state machines to the stats fields of a server: the check and
//! agent columns, `chkfail`, `chkdown`, `lastchg`, `downtime` and the operational state.

use crate::model::{CheckStats, OperState, ServerStats};
use ringlb_health::status::CheckStatus;
use ringlb_health::{CheckState, HealthState};

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The stats fields of one check (or agent). `in_progress` marks a check running now.
pub fn check_stats(h: &HealthState, in_progress: bool) -> CheckStats {
    let t = h.timing();
    let (status, code, duration_ms, info) = match h.last_result() {
        Some(r) => (
            r.status,
            r.code
                .filter(|_| r.status > CheckStatus::L57Data)
                .map(u32::from),
            // HAProxy shows a duration once a check completed (status >= CHECKED).
            r.duration_ms.filter(|_| r.status > CheckStatus::Start),
            r.info.clone().unwrap_or_default(),
        ),
        None => (CheckStatus::Init, None, None, String::new()),
    };
    CheckStats {
        status: status.short_name().to_string(),
        desc: status.description().to_string(),
        code,
        duration_ms,
        info,
        rise: t.rise,
        fall: t.fall,
        health: h.health(),
        in_progress,
    }
}

/// Copies a server's check and agent state into its stats: the check columns, its counters
/// and timestamps (same clock origin as the snapshot's `now_ms`), and the operational state
/// (DOWN when the check or the agent says so, NOLB when the check is stopping).
pub fn apply_health(
    sv: &mut ServerStats,
    check: Option<&HealthState>,
    agent: Option<&HealthState>,
) {
    sv.check = check.map(|h| check_stats(h, false));
    sv.agent = agent.map(|h| check_stats(h, false));
    if let Some(h) = check {
        let c = h.counters();
        sv.failed_checks = c.failed;
        sv.down_trans = c.down_transitions;
        sv.last_change_ms = ms(c.last_change);
        sv.down_time_ms = ms(c.downtime);
    }
    sv.oper = if !ringlb_health::state::server_up(check, agent) {
        OperState::Stopped
    } else if check.is_some_and(|h| h.state() == CheckState::Stopping) {
        OperState::Stopping
    } else {
        OperState::Running
    };
}
