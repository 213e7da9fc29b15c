//! Check results as HAProxy names them (`check_statuses[]` in `checks.c`) and the log lines
//! it writes when a server changes state (`srv_append_status`, `srv_set_stopped`, ...).
//! The texts were captured from haproxy 2.6 (`traces/haproxy-2.6-checks.log`).

/// HAProxy's `HCHK_STATUS_*`, in its order (the order decides whether a code is printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckStatus {
    Unknown,
    Init,
    Start,
    /// An agent reply without a health word: no status change (`CHECKED`).
    Checked,
    HealthAnalyze,
    SockErr,
    L4Ok,
    L4Timeout,
    L4Con,
    L6Ok,
    L6Timeout,
    L6Rsp,
    L7Timeout,
    L7Rsp,
    /// Separator in HAProxy's enum: statuses after it carry a response code.
    L57Data,
    L7Ok,
    L7OkCond,
    L7Sts,
    ProcErr,
    ProcTimeout,
    ProcOk,
}

impl CheckStatus {
    /// The long description used in logs (`reason: ...`).
    pub fn description(self) -> &'static str {
        match self {
            CheckStatus::Unknown => "Unknown",
            CheckStatus::Init => "Initializing",
            CheckStatus::Start => "",
            CheckStatus::Checked => "No status change",
            CheckStatus::HealthAnalyze => "Health analyze",
            CheckStatus::SockErr => "Socket error",
            CheckStatus::L4Ok => "Layer4 check passed",
            CheckStatus::L4Timeout => "Layer4 timeout",
            CheckStatus::L4Con => "Layer4 connection problem",
            CheckStatus::L6Ok => "Layer6 check passed",
            CheckStatus::L6Timeout => "Layer6 timeout",
            CheckStatus::L6Rsp => "Layer6 invalid response",
            CheckStatus::L7Timeout => "Layer7 timeout",
            CheckStatus::L7Rsp => "Layer7 invalid response",
            CheckStatus::L57Data => "",
            CheckStatus::L7Ok => "Layer7 check passed",
            CheckStatus::L7OkCond => "Layer7 check conditionally passed",
            CheckStatus::L7Sts => "Layer7 wrong status",
            CheckStatus::ProcErr => "External check error",
            CheckStatus::ProcTimeout => "External check timeout",
            CheckStatus::ProcOk => "External check passed",
        }
    }

    /// Every status, in HAProxy's order.
    pub const ALL: [CheckStatus; 20] = [
        CheckStatus::Unknown,
        CheckStatus::Init,
        CheckStatus::Start,
        CheckStatus::HealthAnalyze,
        CheckStatus::SockErr,
        CheckStatus::L4Ok,
        CheckStatus::L4Timeout,
        CheckStatus::L4Con,
        CheckStatus::L6Ok,
        CheckStatus::L6Timeout,
        CheckStatus::L6Rsp,
        CheckStatus::L7Timeout,
        CheckStatus::L7Rsp,
        CheckStatus::L57Data,
        CheckStatus::L7Ok,
        CheckStatus::L7OkCond,
        CheckStatus::L7Sts,
        CheckStatus::ProcErr,
        CheckStatus::ProcTimeout,
        CheckStatus::ProcOk,
    ];

    /// The status `short_name` prints as `name` (`L4OK`...), for the stats columns that
    /// show both the short and the long form (`check_status`, `check_desc`).
    pub fn from_short_name(name: &str) -> Option<CheckStatus> {
        CheckStatus::ALL
            .into_iter()
            .find(|s| !name.is_empty() && s.short_name() == name)
    }

    /// The short name shown by the stats page and `show stat` (`check_status`).
    pub fn short_name(self) -> &'static str {
        match self {
            CheckStatus::Unknown => "UNK",
            CheckStatus::Init => "INI",
            CheckStatus::Start => "",
            CheckStatus::Checked => "CHECKED",
            CheckStatus::HealthAnalyze => "HANA",
            CheckStatus::SockErr => "SOCKERR",
            CheckStatus::L4Ok => "L4OK",
            CheckStatus::L4Timeout => "L4TOUT",
            CheckStatus::L4Con => "L4CON",
            CheckStatus::L6Ok => "L6OK",
            CheckStatus::L6Timeout => "L6TOUT",
            CheckStatus::L6Rsp => "L6RSP",
            CheckStatus::L7Timeout => "L7TOUT",
            CheckStatus::L7Rsp => "L7RSP",
            CheckStatus::L57Data => "",
            CheckStatus::L7Ok => "L7OK",
            CheckStatus::L7OkCond => "L7OKC",
            CheckStatus::L7Sts => "L7STS",
            CheckStatus::ProcErr => "PROCERR",
            CheckStatus::ProcTimeout => "PROCTOUT",
            CheckStatus::ProcOk => "PROCOK",
        }
    }

    /// Passed (`CHK_RES_PASSED`/`CONDPASS`).
    pub fn is_pass(self) -> bool {
        matches!(
            self,
            CheckStatus::L4Ok
                | CheckStatus::L6Ok
                | CheckStatus::L7Ok
                | CheckStatus::L7OkCond
                | CheckStatus::ProcOk
        )
    }

    /// The log line shows `code: N` for these.
    pub fn shows_code(self) -> bool {
        self > CheckStatus::L57Data
    }
}

/// One check's outcome, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub status: CheckStatus,
    /// HTTP status (or protocol code) when the status carries one.
    pub code: Option<u16>,
    /// `info: "..."` text (reason phrase, mismatch description), if any.
    pub info: Option<String>,
    /// Check duration in milliseconds, if measured.
    pub duration_ms: Option<u64>,
}

impl CheckResult {
    pub fn new(status: CheckStatus) -> CheckResult {
        CheckResult {
            status,
            code: None,
            info: None,
            duration_ms: None,
        }
    }
}

/// What the log line needs to know about the backend after the change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendCounts {
    /// Usable active servers after the change (`srv_act`).
    pub active: u32,
    /// Usable backup servers after the change (`srv_bck`).
    pub backup: u32,
    /// Sessions on the server (`cur_sess`).
    pub sessions: u32,
    /// Sessions moved away (`xferred`).
    pub requeued: u32,
    /// Requests in the server's queue.
    pub queued: u32,
}

/// The transition being logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Down,
    Up,
    /// `disable-on-404`: NOLB.
    Stopping,
}

/// HAProxy's `chunk_asciiencode(.., '"')`: non-printable bytes and `"` as `\xNN`.
fn ascii_encode(out: &mut String, s: &str) {
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
}

/// `Server be/s1 is DOWN, reason: ..., check duration: 2ms. 1 active and 0 backup servers
/// left. 0 sessions active, 0 requeued, 0 remaining in queue.` (also UP and stopping).
pub fn state_change_message(
    backend: &str,
    server: &str,
    backup: bool,
    t: Transition,
    r: &CheckResult,
    c: &BackendCounts,
) -> String {
    let verb = match t {
        Transition::Down => "DOWN",
        Transition::Up => "UP",
        Transition::Stopping => "stopping",
    };
    let prefix = if backup { "Backup Server" } else { "Server" };
    let mut m = format!("{prefix} {backend}/{server} is {verb}");
    append_reason(&mut m, r);
    append_counts(&mut m, t, c);
    m.push('.');
    m
}

/// [`state_change_message`] under `option log-health-checks`: haproxy leaves the reason out
/// (the check's own line just said it): `Server be/s1 is DOWN. 0 active and 0 backup servers
/// left. ...`.
pub fn state_change_message_no_reason(
    backend: &str,
    server: &str,
    backup: bool,
    t: Transition,
    c: &BackendCounts,
) -> String {
    let verb = match t {
        Transition::Down => "DOWN",
        Transition::Up => "UP",
        Transition::Stopping => "stopping",
    };
    let prefix = if backup { "Backup Server" } else { "Server" };
    let mut m = format!("{prefix} {backend}/{server} is {verb}");
    append_counts(&mut m, t, c);
    m.push('.');
    m
}

fn append_reason(m: &mut String, r: &CheckResult) {
    m.push_str(", reason: ");
    m.push_str(r.status.description());
    if r.status.shows_code() {
        m.push_str(&format!(", code: {}", r.code.unwrap_or(0)));
    }
    if let Some(info) = r.info.as_deref().filter(|i| !i.is_empty()) {
        m.push_str(", info: \"");
        ascii_encode(m, info);
        m.push('"');
    }
    if let Some(d) = r.duration_ms {
        m.push_str(&format!(", check duration: {d}ms"));
    }
}

fn append_counts(m: &mut String, t: Transition, c: &BackendCounts) {
    let on_backup = if c.backup > 0 && c.active == 0 {
        " Running on backup."
    } else {
        ""
    };
    if t == Transition::Down {
        m.push_str(&format!(
            ". {} active and {} backup servers left.{on_backup} {} sessions active, {} requeued, {} remaining in queue",
            c.active, c.backup, c.sessions, c.requeued, c.queued
        ));
    } else {
        m.push_str(&format!(
            ". {} active and {} backup servers online.{on_backup} {} sessions requeued, {} total in queue",
            c.active, c.backup, c.requeued, c.queued
        ));
    }
}

/// A DOWN line built with no session counted (`... 0 sessions active, 0 requeued, 0
/// remaining in queue.`) with the sessions on the server, the requests its queue handed to
/// the backend's (`option redispatch`) and those left in its queue put in; `None` for another
/// line. The driver counts them (over every shard) while the line waits, so that the DOWN
/// broadcast does not.
pub fn with_down_load(line: &str, sessions: u32, requeued: u32, queued: u32) -> Option<String> {
    let head = line.strip_suffix(" 0 sessions active, 0 requeued, 0 remaining in queue.")?;
    Some(format!(
        "{head} {sessions} sessions active, {requeued} requeued, {queued} remaining in queue."
    ))
}

/// `Server be2/t1 is DOWN via be1/s1. 1 active and 0 backup servers left. ...` (a server
/// with `track be1/s1` following the tracked server; captured from haproxy 2.6).
pub fn tracked_message(
    backend: &str,
    server: &str,
    backup: bool,
    t: Transition,
    via: (&str, &str),
    c: &BackendCounts,
) -> String {
    let verb = match t {
        Transition::Down => "DOWN",
        Transition::Up => "UP",
        Transition::Stopping => "stopping",
    };
    let prefix = if backup { "Backup Server" } else { "Server" };
    let mut m = format!(
        "{prefix} {backend}/{server} is {verb} via {}/{}",
        via.0, via.1
    );
    append_counts(&mut m, t, c);
    m.push('.');
    m
}

/// `Server be/s1 is going DOWN for maintenance. ...` (agent `maint`, `set server .. state
/// maint`, `disable server`).
pub fn maint_message(backend: &str, server: &str, backup: bool, c: &BackendCounts) -> String {
    let prefix = if backup { "Backup Server" } else { "Server" };
    let mut m = format!("{prefix} {backend}/{server} is going DOWN for maintenance");
    append_counts(&mut m, Transition::Down, c);
    m.push('.');
    m
}

/// `Server be/s1 is UP/READY (leaving forced maintenance).`
pub fn leaving_maint_message(backend: &str, server: &str, backup: bool) -> String {
    let prefix = if backup { "Backup Server" } else { "Server" };
    format!("{prefix} {backend}/{server} is UP/READY (leaving forced maintenance).")
}

/// `Server be/s1 enters drain state. 0 active and 0 backup servers online. ...` (agent
/// `drain`, `set server .. state drain`).
pub fn drain_message(backend: &str, server: &str, backup: bool, c: &BackendCounts) -> String {
    let prefix = if backup { "Backup Server" } else { "Server" };
    let mut m = format!("{prefix} {backend}/{server} enters drain state");
    append_counts(&mut m, Transition::Up, c);
    m.push('.');
    m
}

/// `Server be/s1 is UP (leaving forced drain).`
pub fn leaving_drain_message(backend: &str, server: &str, backup: bool) -> String {
    let prefix = if backup { "Backup Server" } else { "Server" };
    format!("{prefix} {backend}/{server} is UP (leaving forced drain).")
}

/// Logged by haproxy 2.6 each time a weight is applied to a server in forced drain (its
/// `srv_update_status` runs with the drain flags unchanged): every agent reply carrying both
/// `drain` and a weight repeats it.
pub fn remains_drain_message(backend: &str, server: &str, backup: bool) -> String {
    let prefix = if backup { "Backup Server" } else { "Server" };
    format!("{prefix} {backend}/{server} remains in forced drain mode.")
}

/// `backend 'be' has no server available!` (ALERT level, when the last usable server of a
/// backend goes); `proxy 'name' ...` for a `listen` section.
pub fn no_server_message(backend: &str, from_listen: bool) -> String {
    let kind = if from_listen { "proxy" } else { "backend" };
    format!("{kind} '{backend}' has no server available!")
}

/// Which check a `option log-health-checks` line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckSource {
    Health,
    Agent,
}

/// `option log-health-checks`: the line haproxy 2.6 writes when a check's status or health
/// changes (`set_server_check_status`), e.g. `Health check for server be/s1 failed, reason:
/// Layer4 connection problem, info: "Connection refused", check duration: 0ms, status: 0/2
/// DOWN.` `health`, `rise` and `fall` are the check's counters after the result;
/// `uweight_zero` prints `DRAIN` instead of `UP`.
#[allow(clippy::too_many_arguments)]
pub fn check_log_message(
    kind: CheckSource,
    backend: &str,
    server: &str,
    backup: bool,
    r: &CheckResult,
    (health, rise, fall): (u32, u32, u32),
    uweight_zero: bool,
) -> String {
    let what = match kind {
        CheckSource::Health => "Health",
        CheckSource::Agent => "Agent",
    };
    let bk = if backup { "backup " } else { "" };
    let cond = if r.status == CheckStatus::L7OkCond {
        "conditionally "
    } else {
        ""
    };
    let verdict = if r.status.is_pass() {
        "succeeded"
    } else {
        "failed"
    };
    let mut m = format!("{what} check for {bk}server {backend}/{server} {cond}{verdict}");
    append_reason(&mut m, r);
    let (n, of, state) = if health >= rise {
        let st = if uweight_zero { "DRAIN" } else { "UP" };
        (health - rise + 1, fall, st)
    } else {
        (health, rise, "DOWN")
    };
    m.push_str(&format!(", status: {n}/{of} {state}."));
    m
}

#[cfg(test)]
mod check_log_tests {
    use super::*;

    /// Lines captured from haproxy 2.6.12 (`option log-health-checks`, rise 2 fall 2).
    #[test]
    fn check_lines_as_haproxy() {
        let mut refused = connection_failure(&ConnFailure::Refused);
        refused.duration_ms = Some(0);
        assert_eq!(
            check_log_message(CheckSource::Health, "be", "s1", false, &refused, (0, 2, 2), false),
            "Health check for server be/s1 failed, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms, status: 0/2 DOWN."
        );
        let mut ok = CheckResult::new(CheckStatus::L7Ok);
        ok.code = Some(200);
        ok.duration_ms = Some(5);
        assert_eq!(
            check_log_message(CheckSource::Health, "be", "s1", false, &ok, (1, 2, 2), false),
            "Health check for server be/s1 succeeded, reason: Layer7 check passed, code: 200, check duration: 5ms, status: 1/2 DOWN."
        );
        // UP: health rise+fall-1 = 3 shows as 2/2; a weight of 0 shows DRAIN.
        assert_eq!(
            check_log_message(CheckSource::Health, "be", "s1", true, &ok, (3, 2, 2), true),
            "Health check for backup server be/s1 succeeded, reason: Layer7 check passed, code: 200, check duration: 5ms, status: 2/2 DRAIN."
        );
    }
}

#[cfg(test)]
mod tracked_tests {
    use super::*;

    #[test]
    fn down_lines_take_the_sessions_counted_later() {
        let r = CheckResult::new(CheckStatus::L4Con);
        let c = BackendCounts::default();
        let line = state_change_message("be", "s1", false, Transition::Down, &r, &c);
        assert_eq!(
            with_down_load(&line, 2, 3, 1).as_deref(),
            Some("Server be/s1 is DOWN, reason: Layer4 connection problem. 0 active and 0 backup servers left. 2 sessions active, 3 requeued, 1 remaining in queue.")
        );
        let up = state_change_message("be", "s1", false, Transition::Up, &r, &c);
        assert_eq!(with_down_load(&up, 2, 3, 1), None);
    }

    #[test]
    fn tracked_lines_as_haproxy() {
        let c = BackendCounts {
            active: 1,
            ..BackendCounts::default()
        };
        assert_eq!(
            tracked_message("b2", "t1", false, Transition::Down, ("b1", "s1"), &c),
            "Server b2/t1 is DOWN via b1/s1. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."
        );
        let c = BackendCounts {
            active: 2,
            ..BackendCounts::default()
        };
        assert_eq!(
            tracked_message("b2", "t1", false, Transition::Up, ("b1", "s1"), &c),
            "Server b2/t1 is UP via b1/s1. 2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue."
        );
    }
}

/// Why a check's connection failed (the driver maps its socket errors onto these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnFailure {
    /// `ECONNREFUSED`: `Layer4 connection problem, info: "Connection refused"`.
    Refused,
    /// No connection within `timeout connect`/`timeout check`: `Layer4 timeout`.
    Timeout,
    /// Another socket error, with its `strerror` text.
    Other(String),
    /// The connect reported a reset (`ECONNRESET`, with its `strerror` text): the connection
    /// was established and reset at once, before the driver saw it up. haproxy sees it up
    /// first and reports the reset at the next rule that reads (`Socket error`, see
    /// [`crate::ExpectRule::read_error`]).
    Reset(String),
    /// The TLS handshake of a check over TLS did not complete: in time (`None`: `Layer6
    /// timeout`) or at all (`Layer6 invalid response` with the reason).
    Tls(Option<String>),
}

/// The check result for a failed connection.
pub fn connection_failure(f: &ConnFailure) -> CheckResult {
    match f {
        ConnFailure::Refused => CheckResult {
            status: CheckStatus::L4Con,
            code: None,
            info: Some("Connection refused".into()),
            duration_ms: None,
        },
        ConnFailure::Timeout => CheckResult::new(CheckStatus::L4Timeout),
        ConnFailure::Other(e) => CheckResult {
            status: CheckStatus::L4Con,
            code: None,
            info: Some(e.clone()),
            duration_ms: None,
        },
        ConnFailure::Reset(e) => crate::expect::socket_error(e, ""),
        ConnFailure::Tls(None) => CheckResult::new(CheckStatus::L6Timeout),
        ConnFailure::Tls(Some(why)) => CheckResult {
            status: CheckStatus::L6Rsp,
            code: None,
            info: Some(why.clone()),
            duration_ms: None,
        },
    }
}

#[cfg(test)]
mod short_name_tests {
    use super::*;

    #[test]
    fn short_names_read_back() {
        for st in CheckStatus::ALL {
            if !st.short_name().is_empty() {
                assert_eq!(CheckStatus::from_short_name(st.short_name()), Some(st));
            }
        }
        assert_eq!(CheckStatus::from_short_name(""), None);
        assert_eq!(
            CheckStatus::from_short_name("L4OK").map(CheckStatus::description),
            Some("Layer4 check passed")
        );
    }
}
