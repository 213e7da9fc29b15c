//! Health checks of HAProxy 2.6, pure: the rise/fall state machine ([`HealthState`]), the
//! check scripts a driver runs ([`CheckScript`]: connect/send/expect steps from `option
//! httpchk`, `http-check`, `tcp-check` and the canned `option *-check`s), expect rules
//! ([`evaluate`]), agent replies ([`agent::parse`]) and HAProxy's log lines for state
//! changes ([`status::state_change_message`]).
//!
//! Must not: open sockets, start timers, read clocks or draw randomness. The control
//! shard's driver owns connections and timers; it passes `now`, the bytes it received and
//! random numbers in, and broadcasts the resulting state changes to the worker shards.
//!
//! Verified against haproxy 2.6: the request bytes of every kind of check
//! (`traces/requests/`, recorded by `traces/capture_requests.sh`) and the log lines
//! (`traces/haproxy-2.6-checks.log`, recorded by `traces/capture.sh`).
#![forbid(unsafe_code)]

pub mod agent;
pub mod canned;
pub mod expect;
pub mod h2msg;
pub mod http;
pub mod lf;
pub mod proxy_header;
pub mod script;
pub mod state;
pub mod status;

pub use expect::{decode_hex, evaluate, evaluate_with, ExpectOutcome, ExpectRule, Matcher};
pub use script::{CheckKind, CheckScript, ConnectSpec, Step};
pub use state::{CheckState, CheckTiming, HealthState};
pub use status::{CheckResult, CheckStatus, Transition};
