//! The rise/fall state machine of one check (health check or agent check), as HAProxy 2.6's
//! `set_server_check_status` and `check_notify_*` run it, and the choice of the next interval
//! (`srv_getinter`).
//!
//! ```text
//!  health:  0 ........ rise-1 | rise ........ rise+fall-1
//!           DOWN (needs rise   | UP (fall consecutive failures
//!           successes)         |     from the top bring it to DOWN)
//!
//!  failure: health -= 1; if health < rise { health = 0 }     → DOWN when health == 0
//!  success: health += 1; if health >= rise { health = top }  → UP when health >= rise
//! ```
//!
//! A server starts UP at `health = rise` ("UP, going down"): its first failure marks it DOWN
//! at once, while a server that passed a check needs `fall` failures (HAProxy 2.6).

use std::time::Duration;

use ringlb_config::model::ServerParams;

use crate::status::{CheckResult, CheckStatus, Transition};

/// HAProxy's defaults: `inter 2s`, `rise 2`, `fall 3`.
pub const DEFAULT_INTER: Duration = Duration::from_secs(2);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;

/// Timing and thresholds of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTiming {
    pub rise: u32,
    pub fall: u32,
    pub inter: Duration,
    /// While transitioning (some failures or successes counted); defaults to `inter`.
    pub fastinter: Option<Duration>,
    /// While fully DOWN; defaults to `inter`.
    pub downinter: Option<Duration>,
}

impl Default for CheckTiming {
    fn default() -> Self {
        CheckTiming {
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
            inter: DEFAULT_INTER,
            fastinter: None,
            downinter: None,
        }
    }
}

impl CheckTiming {
    /// The health check's timing from a server's parameters.
    pub fn from_params(p: &ServerParams) -> CheckTiming {
        CheckTiming {
            rise: p.rise.unwrap_or(DEFAULT_RISE).max(1),
            fall: p.fall.unwrap_or(DEFAULT_FALL).max(1),
            inter: p.inter.unwrap_or(DEFAULT_INTER),
            fastinter: p.fastinter,
            downinter: p.downinter,
        }
    }

    /// The agent check's timing: `agent-inter` (else `inter`), rise/fall as the server's.
    pub fn agent_from_params(p: &ServerParams) -> CheckTiming {
        let t = CheckTiming::from_params(p);
        CheckTiming {
            inter: p.agent.inter.unwrap_or(t.inter),
            ..t
        }
    }

    fn top(&self) -> u32 {
        self.rise + self.fall - 1
    }
}

/// Where the check puts the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Up,
    Down,
    /// `disable-on-404`: no new traffic, persistent sessions still served (NOLB).
    Stopping,
}

/// Counters for the stats page (`chkfail`, `chkdown`, `lastchg`, `downtime`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCounters {
    /// Failed checks counted while the server was not already fully DOWN.
    pub failed: u64,
    /// UP → DOWN transitions.
    pub down_transitions: u64,
    /// `now` of the last state change.
    pub last_change: Duration,
    /// Total time spent DOWN, up to `last_change`.
    pub downtime: Duration,
}

/// `on-error`: what `error-limit` consecutive errors seen by `observe` do (HAProxy's
/// `health_adjust`). Every mode also forces `fastinter` for the following checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    FastInter,
    /// Simulate a failed check (the default).
    #[default]
    FailCheck,
    /// Simulate a pre-fatal failed check: one more failure marks the server DOWN.
    SuddenDeath,
    /// Mark the server DOWN at once.
    MarkDown,
}

impl OnError {
    pub fn parse(s: &str) -> Option<OnError> {
        Some(match s {
            "fastinter" => OnError::FastInter,
            "fail-check" => OnError::FailCheck,
            "sudden-death" => OnError::SuddenDeath,
            "mark-down" => OnError::MarkDown,
            _ => return None,
        })
    }
}

/// One check's state machine. Feed it every result with the current time.
#[derive(Debug, Clone)]
pub struct HealthState {
    timing: CheckTiming,
    health: u32,
    state: CheckState,
    counters: CheckCounters,
    last: Option<CheckResult>,
    /// `on-error` forced `fastinter` (HAProxy's `CHK_ST_FASTINTER`), until the check is
    /// fully UP again.
    fastinter_forced: bool,
}

impl HealthState {
    /// HAProxy 2.6's initial state: UP, one failure from DOWN.
    pub fn new(timing: CheckTiming) -> HealthState {
        HealthState {
            timing,
            health: timing.rise,
            state: CheckState::Up,
            counters: CheckCounters::default(),
            last: None,
            fastinter_forced: false,
        }
    }

    /// A check starting DOWN (e.g. a server leaving maintenance must pass `rise` checks).
    pub fn new_down(timing: CheckTiming) -> HealthState {
        HealthState {
            health: 0,
            state: CheckState::Down,
            ..HealthState::new(timing)
        }
    }

    pub fn state(&self) -> CheckState {
        self.state
    }

    pub fn health(&self) -> u32 {
        self.health
    }

    /// Whether a failed check now would take the server DOWN (its last allowed failure).
    pub fn failure_goes_down(&self) -> bool {
        self.state != CheckState::Down && self.health > 0 && self.health <= self.timing.rise
    }

    pub fn timing(&self) -> &CheckTiming {
        &self.timing
    }

    pub fn counters(&self) -> &CheckCounters {
        &self.counters
    }

    /// The last result recorded (the stats page's `check_status`, `check_code`).
    pub fn last_result(&self) -> Option<&CheckResult> {
        self.last.as_ref()
    }

    /// Records a health-check result at `now`; returns the state change to log and apply.
    pub fn record(&mut self, r: &CheckResult, now: Duration) -> Option<Transition> {
        self.last = Some(r.clone());
        if r.status.is_pass() {
            self.count_success();
            if r.status == CheckStatus::L7OkCond {
                return self.go(CheckState::Stopping, now);
            }
            return self.go(CheckState::Up, now);
        }
        self.count_failure();
        self.go(CheckState::Down, now)
    }

    /// `error-limit` consecutive errors were observed on live traffic (`observe`): applies
    /// `on_error` with `r` (status `HealthAnalyze`) as the simulated failed check.
    pub fn analyze(
        &mut self,
        on_error: OnError,
        r: &CheckResult,
        now: Duration,
    ) -> Option<Transition> {
        self.fastinter_forced = true;
        match on_error {
            OnError::FastInter => return None,
            OnError::FailCheck => {}
            OnError::SuddenDeath => {
                if self.health > self.timing.rise {
                    self.health = self.timing.rise + 1;
                }
            }
            OnError::MarkDown => self.health = self.timing.rise,
        }
        self.record(r, now)
    }

    /// Records an agent-check result: only an explicit `down`/`fail`/`stopped` (reported as
    /// `Layer7 wrong status`) can take a server down; an unreachable agent cannot.
    pub fn record_agent(&mut self, r: &CheckResult, now: Duration) -> Option<Transition> {
        if !r.status.is_pass() && r.status < CheckStatus::L57Data {
            self.last = Some(r.clone());
            return None;
        }
        self.record(r, now)
    }

    /// Agent `up`: straight to the top of the UP range. Agent `down`: straight to 0.
    pub fn force(&mut self, up: bool, now: Duration) -> Option<Transition> {
        self.health = if up { self.timing.top() } else { 0 };
        self.go(if up { CheckState::Up } else { CheckState::Down }, now)
    }

    fn count_failure(&mut self) {
        if self.health > 0 {
            self.counters.failed += 1;
            self.health -= 1;
            if self.health < self.timing.rise {
                self.health = 0;
            }
        }
    }

    fn count_success(&mut self) {
        if self.health == self.timing.top() {
            self.fastinter_forced = false;
        }
        if self.health < self.timing.top() {
            self.health += 1;
            if self.health >= self.timing.rise {
                self.health = self.timing.top();
            }
        }
    }

    /// `check_notify_failure/success/stopping`: change state only when the health allows.
    fn go(&mut self, want: CheckState, now: Duration) -> Option<Transition> {
        let allowed = match want {
            CheckState::Down => self.health == 0,
            CheckState::Up | CheckState::Stopping => self.health >= self.timing.rise,
        };
        if !allowed || want == self.state {
            return None;
        }
        if self.state == CheckState::Down {
            self.counters.downtime += now.saturating_sub(self.counters.last_change);
        }
        if want == CheckState::Down {
            self.counters.down_transitions += 1;
        }
        self.counters.last_change = now;
        self.state = want;
        debug_assert!(self.health <= self.timing.top());
        Some(match want {
            CheckState::Up => Transition::Up,
            CheckState::Down => Transition::Down,
            CheckState::Stopping => Transition::Stopping,
        })
    }

    /// The stats page's `status` for a server whose health check this is: `UP`, `UP 1/3`
    /// (going down: failures left before DOWN... counted as HAProxy does), `DOWN`,
    /// `DOWN 1/2` (going up: successes so far / rise), `NOLB`, `NOLB 2/3`.
    pub fn stats_status(&self) -> String {
        let t = &self.timing;
        let going = |word: &str| {
            if self.health == t.top() {
                word.to_string()
            } else {
                format!(
                    "{word} {}/{}",
                    self.health + 1 - t.rise.min(self.health + 1),
                    t.fall
                )
            }
        };
        match self.state {
            CheckState::Up => going("UP"),
            CheckState::Stopping => going("NOLB"),
            CheckState::Down if self.health == 0 => "DOWN".to_string(),
            CheckState::Down => format!("DOWN {}/{}", self.health, t.rise),
        }
    }

    /// `srv_getinter`: `inter` when fully UP, `downinter` when fully DOWN, `fastinter` while
    /// transitioning (each defaulting to `inter`).
    pub fn next_interval(&self) -> Duration {
        let t = &self.timing;
        if self.health == t.top() && !self.fastinter_forced {
            t.inter
        } else if self.state == CheckState::Down && self.health == 0 {
            t.downinter.unwrap_or(t.inter)
        } else {
            t.fastinter.unwrap_or(t.inter)
        }
    }
}

/// `spread-checks N`: `interval ± N%`, `random` uniform over `u32`.
pub fn spread(interval: Duration, percent: u32, random: u32) -> Duration {
    if percent == 0 {
        return interval;
    }
    let ms = interval.as_millis() as f64;
    let r = ms * f64::from(percent.min(50)) / 100.0;
    let rv = r - 2.0 * r * (f64::from(random) / f64::from(u32::MAX));
    Duration::from_millis((ms + rv).max(0.0) as u64)
}

/// Start time of the first check of server `position` (0-based) among `count` checked
/// servers: HAProxy staggers them evenly over the smallest interval.
pub fn initial_delay(min_inter: Duration, position: u32, count: u32) -> Duration {
    if count == 0 {
        return Duration::ZERO;
    }
    min_inter * position / count
}

/// A server with a health check and an agent check is UP only when neither holds it down.
pub fn server_up(check: Option<&HealthState>, agent: Option<&HealthState>) -> bool {
    check.is_none_or(|c| c.state() == CheckState::Up)
        && agent.is_none_or(|a| a.state() != CheckState::Down)
}

#[cfg(test)]
mod analyze_tests {
    use super::*;

    fn timing() -> CheckTiming {
        CheckTiming {
            rise: 2,
            fall: 3,
            inter: Duration::from_secs(2),
            fastinter: Some(Duration::from_millis(500)),
            downinter: None,
        }
    }

    fn hana() -> CheckResult {
        CheckResult::new(CheckStatus::HealthAnalyze)
    }

    /// A server that passed its checks: health at the top (rise + fall - 1 = 4).
    fn healthy() -> HealthState {
        let mut h = HealthState::new(timing());
        h.record(&CheckResult::new(CheckStatus::L4Ok), Duration::ZERO);
        assert_eq!(h.health(), 4);
        h
    }

    #[test]
    fn on_error_modes_follow_health_adjust() {
        let t = Duration::from_secs(1);
        let mut h = healthy();
        assert_eq!(h.analyze(OnError::FastInter, &hana(), t), None);
        assert_eq!(h.health(), 4, "fastinter only changes the interval");
        assert_eq!(h.next_interval(), Duration::from_millis(500));

        let mut h = healthy();
        assert_eq!(h.analyze(OnError::FailCheck, &hana(), t), None);
        assert_eq!(h.health(), 3, "one failed check");
        assert_eq!(h.counters().failed, 1);

        let mut h = healthy();
        assert_eq!(h.analyze(OnError::SuddenDeath, &hana(), t), None);
        assert_eq!(h.health(), 2, "pre-fatal: still UP");
        assert_eq!(h.state(), CheckState::Up);
        let down = h.record(&CheckResult::new(CheckStatus::L4Con), t);
        assert_eq!(down, Some(Transition::Down), "one more failure is fatal");

        let mut h = healthy();
        assert_eq!(
            h.analyze(OnError::MarkDown, &hana(), t),
            Some(Transition::Down)
        );
        assert_eq!(h.health(), 0);
        assert_eq!(
            h.last_result().map(|r| r.status),
            Some(CheckStatus::HealthAnalyze)
        );
    }

    #[test]
    fn forced_fastinter_ends_once_checks_pass_at_the_top() {
        let mut h = healthy();
        h.analyze(OnError::FastInter, &hana(), Duration::ZERO);
        assert_eq!(h.next_interval(), Duration::from_millis(500));
        h.record(&CheckResult::new(CheckStatus::L4Ok), Duration::ZERO);
        assert_eq!(h.next_interval(), Duration::from_secs(2));
    }

    #[test]
    fn spread_checks_varies_the_interval_within_the_percentage() {
        let inter = Duration::from_millis(2000);
        assert_eq!(spread(inter, 0, 12345), inter, "0: exact intervals");
        assert_eq!(
            spread(inter, 10, 0),
            Duration::from_millis(2200),
            "random 0: +10%"
        );
        assert_eq!(
            spread(inter, 10, u32::MAX),
            Duration::from_millis(1800),
            "max: -10%"
        );
        assert_eq!(spread(inter, 10, u32::MAX / 2), Duration::from_millis(2000));
        assert_eq!(
            spread(inter, 90, 0),
            Duration::from_millis(3000),
            "capped at 50%"
        );
    }
}
