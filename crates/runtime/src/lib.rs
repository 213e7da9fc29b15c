//! ringlb's runtime socket without the socket: HAProxy 2.6's CLI session protocol, the
//! command grammar and levels, and the replies and state changes of the commands whose data
//! the control shard owns.
//!
//! # API note for the control shard
//!
//! Per accepted connection on a `stats socket` of level `L` (severity from the bind line):
//!
//! ```text
//! let mut s = CliSession::new(L, SessionConfig { bufsize: tune.bufsize, severity });
//! on bytes:  for req in s.feed(&bytes) { handle(req) }       // peer closed: s.feed_eof()
//! handle(Request::Reply(resp))  => s.render(&resp, &mut out)   // help, errors, levels...
//! handle(Request::Run(pending)) => {
//!     let reply = match pending.command.owner() {
//!         Owner::Servers => {                                   // always Some here
//!             let o = apply(&table, &pending.command).unwrap_or_default();
//!             for c in &o.changes { table.apply_change(c); broadcast_to_workers(c) }
//!             o.reply
//!         }
//!         Owner::Stats => Reply::raw_with_blank_line(stats::cli_show_stat(&snap, &pending.args())),
//!         Owner::StickTables | Owner::Patterns | Owner::Tls | Owner::Engine | Owner::Events => ...,
//!     };
//!     s.render(&pending.respond(reply), &mut out)
//! }
//! handle(Request::Close) => flush `out`, then close.
//! after writing `out`: while s.has_buffered_commands() { feed(&[]) again } before reading
//! ```
//!
//! Requests come in input order and must be answered in that order (render appends the
//! reply, then the prompt: `\n`, or `\n> ` in prompt mode). A [`Reply`] is the text
//! *without* that final prompt newline; messages carry a severity so `set severity-output`
//! can prefix them. Idle timeout: `stats timeout`, or `s.timeout_cli_secs()` once the client
//! ran `set timeout cli`. Levels are checked by the session before `Run` is returned
//! (`pending.level` is still given, e.g. for `show stat` legends or `show table` contents).
//!
//! [`Deferred`] fields hold argument errors HAProxy prints only after the named object was
//! found ("No such table\n" comes before "Key value expected\n"): look the object up
//! first, then print the deferred error if any.
//!
//! Changes the control shard applies to its own table *and* broadcasts to every worker
//! shard ([`ServerChange`]): `Admin` (ready/drain/maint), `Weight` (final user weight,
//! 0..=256), `Health`/`Agent` (op state + check health forced from the CLI), `CheckEnabled`,
//! `CheckPort`, `Addr`, `Maxconn`, `Add`/`Del` (dynamic servers; validate `Add::options`
//! values with the config crate's server-keyword parser, `apply` only checks the keyword
//! names), `FrontendMaxconn`, `FrontendState`, `GlobalMaxconn`, `RateLimit`.
//! [`ServerTable::apply_change`] is the reference semantics for the fields
//! `show servers state` prints (recorded from haproxy 2.6); [`ServerTable`] is built from the
//! topology (proxy/server ids as HAProxy numbers them, `threads` = worker shards).
//!
//! At start-up, `load-server-state-from-file`: [`state_file::parse`] the file and
//! [`ServerTable::restore_state`] before the table is handed to the workers.
//!
//! Verified against haproxy 2.6 recordings: `fixtures/record.sh` → `fixtures/recorded.txt`,
//! replayed by `tests/recorded.rs`.
#![forbid(unsafe_code)]

pub mod apply;
pub mod command;
pub mod engine;
pub mod patterns;
pub mod reply;
pub mod servers;
pub mod session;
pub mod state_file;
pub mod table;

pub use apply::{apply, effective_weight, Outcome};
pub use command::{AdminState, Command, Deferred, Owner, ServerRef, SetServerOp, WeightSpec};
pub use patterns::{EntryCheck, PatRefs, RefKind};
pub use reply::{Reply, SeverityOutput};
pub use servers::{
    BackendRow, CheckRow, ConnRow, FrontendRow, FrontendState, OpState, ServerChange, ServerRow,
    ServerTable,
};
pub use session::{CliSession, Pending, Request, Response, SessionConfig};
pub use table::{Keyword, Level, KEYWORDS};
