//! ringlb's runtime socket without the socket: HAProxy 2.6's CLI session protocol, the
//! command grammar and levels, and the replies and state changes of the commands whose data
//! the control shard owns.
//!
//! # API note for the control shard
//!
//! Per accepted connection on a `stats socket` of level `L`:
//!
//! ```text
//! let mut s = CliSession::new(L, SessionConfig::default());
//! on bytes:  for req in s.feed(&bytes) { handle(req) }     // on EOF: s.feed_eof()
//! handle(Request::Reply(resp))  => s.render(&resp, &mut out)
//! handle(Request::Run(pending)) => {
//!     let reply = match apply(&table, &pending.command) {   // server/frontend commands
//!         Some(outcome) => { for c in &outcome.changes { table.apply_change(c); broadcast(c) }
//!                            outcome.reply }
//!         None => other_owner(&pending.command, pending.level), // stats, tables, maps, TLS, sessions
//!     };
//!     s.render(&pending.respond(reply), &mut out)
//! }
//! handle(Request::Close) => flush `out`, then close.
//! ```
//!
//! Requests come in input order and must be answered in that order (render appends).
//! Idle timeout: `stats timeout`, or `s.timeout_cli_secs()` once `set timeout cli` ran.
//!
//! Changes to apply on the control shard *and* every worker shard ([`ServerChange`]):
//! `Admin` (ready/drain/maint), `Weight` (final user weight), `Health`/`Agent` (forced
//! op state + check health), `CheckEnabled`, `CheckPort`, `Addr`, `Maxconn`, `Add`/`Del`
//! (dynamic servers; validate `Add::options` with the config crate's server-keyword
//! parser first), `FrontendMaxconn`, `FrontendState`, `GlobalMaxconn`, `RateLimit`.
//! [`ServerTable::apply_change`] is the reference semantics for the fields
//! `show servers state` prints. Commands `apply` returns `None` for go to their owners:
//! `ShowInfo`/`ShowStat` (stats), `ShowTable`/`ClearTable`/`SetTable` (stick tables; their
//! `Deferred` argument errors are printed after the table lookup, "No such table\n"),
//! maps/ACLs, TLS certificates, `ShowSess`/`ShutdownSession`/`ShowErrors`/`ShowActivity`/
//! `ShowPools` (engine).
//!
//! Verified against haproxy 2.6 recordings: `fixtures/record.sh` → `fixtures/recorded.txt`.
#![forbid(unsafe_code)]

pub mod apply;
pub mod command;
pub mod reply;
pub mod servers;
pub mod session;
pub mod table;

pub use apply::{apply, effective_weight, Outcome};
pub use command::{AdminState, Command, Deferred, ServerRef, SetServerOp, WeightSpec};
pub use reply::{Reply, SeverityOutput};
pub use servers::{
    BackendRow, CheckRow, ConnRow, FrontendRow, FrontendState, OpState, ServerChange, ServerRow,
    ServerTable,
};
pub use session::{CliSession, Pending, Request, Response, SessionConfig};
pub use table::{Keyword, Level, KEYWORDS};
