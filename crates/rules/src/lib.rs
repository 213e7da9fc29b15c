//! HAProxy's rule language, pure: sample fetches, converters, ACLs, conditions, the
//! log-format engine and `http-request`/`http-response`/`tcp-request`/`use_backend` rules.
//! No sockets, no executor, no clock: the engine implements [`SampleSource`] (and
//! [`RuleHost`] for side effects) and passes time and randomness through it.
//!
//! # API note for the engine (crates/shard)
//! At startup, per proxy (everything is `Send + Sync`, immutable, with no `Arc` of ours).
//! Give each shard its own `clone()` of the compiled rules: a cloned `regex::Regex` gets its
//! own match-cache pool owned by that shard's thread, so matching never takes the regex
//! crate's shared-pool lock (sharing one `&ProxyRules` across threads works, but other
//! threads than the first would go through that lock):
//! ```text
//! let all = ConfigRules::compile(&cfg)?;   // Err(Vec<CompileError>): file:line, keyword, msg
//! let fe_rules = all.frontend("fe_main");  // or ProxyRules::frontend(&fe, &cfg)?
//! ```
//! Per request:
//! ```text
//! let req = HttpMessage::from_request_head(&head, &buf);  // ringlb-http1 head, borrowed
//! let mut txn = Txn::new(req);                            // (or HttpMessage::request + push_header)
//! match fe_rules.http_request(&mut host, &mut txn) {                 // host: impl RuleHost
//!     Verdict::Continue | Verdict::Allow => {}
//!     Verdict::Deny(reply) => send(reply),   // body None: the errorfile for reply.status
//!     Verdict::Return(reply) => send(reply), // body None: empty body
//!     Verdict::Tarpit(reply) => { sleep(timeout tarpit); send(reply) }
//!     Verdict::Redirect { code, location, set_cookie } => ...,
//!     Verdict::Auth { realm } => 401 + WWW-Authenticate,
//!     Verdict::UseService(name) => ..., Verdict::Reject { silent } => close,
//! }
//! let backend = fe_rules.select_backend_known(&host, &txn, &|n| backends.contains(n));
//! // then be_rules.http_request(...), forward: if txn.req.modified { txn.req.write_request_head(&mut buf) }
//! // response: txn.res = Some(HttpMessage::from_response_head(&rh, &rbuf)); be, then fe .http_response(...)
//! // logs: proxy.log_format.render(Ctx::new(&host, &txn), &mut line)   (missing sample = "-")
//! // unique-id: proxy.unique_id_format.render_http(...)                  (missing sample = "")
//! // timers/counters/termination state for %Tt %B %ts...: SampleSource::log_value
//! // %b with no backend selected: return the frontend name from backend_name() (haproxy logs it)
//! ```
//! TCP mode: `ProxyRules::tcp_rules(TcpPhase::Connection|Content, ...)` (with
//! `inspect_delay_ms`), then `select_backend` (`req.ssl_sni` reads `SampleSource::req_payload`).
//! Variables: `txn.`/`req.`/`res.` live in [`Txn::vars`]; `sess.`/`proc.` go through
//! [`SampleSource::outer_var`] / [`RuleHost::set_outer_var`].
//!
//! Stick tables plug in through [`SampleSource::sc`] / [`SampleSource::table_conv`] (fetches,
//! converters) and [`RuleHost::track_sc`] (actions); TLS values through [`SampleSource::ssl`].
//!
//! ringlb extensions: the `date_hour` and `date_dow` fetches (see [`fetch`]), integer ranges
//! written `9-17`, and the `json` log-format flag.
#![forbid(unsafe_code)]

pub mod acl;
pub mod auth;
pub mod context;
pub mod conv;
mod crypt;
pub mod error;
pub mod expr;
pub mod fetch;
mod hash;
pub mod logformat;
pub mod message;
pub mod normalize;
pub mod pattern;
pub mod proxy;
pub mod rdp;
pub mod rules;
pub mod sample;
pub mod time;
pub mod tls;

pub use acl::{compile_acl, AclSet, CompiledAcl, Compiler, Cond};
pub use context::{Ctx, ProxyStat, RuleHost, SampleSource, ScFetch, TableConv, Txn, Vars};
pub use error::CompileError;
pub use expr::Expr;
pub use logformat::{
    LogFormat, LogValue, LogVar, CLF_FORMAT, HTTPLOG_FORMAT, HTTPSLOG_FORMAT, TCPLOG_FORMAT,
};
pub use message::HttpMessage;
pub use proxy::{
    BackendTarget, ConfigRules, ProxyRules, StickRule, StickWhen, TcpPhase, TcpVerdict,
};
pub use rules::{Action, BodyWait, Effect, HttpReply, RuleList, Verdict};
pub use sample::Sample;

#[cfg(test)]
mod robust;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_body;
#[cfg(test)]
mod tests_rules;
#[cfg(test)]
mod tests_samples;
#[cfg(test)]
mod tests_stages;
