//! ringlb-dns: HAProxy's `resolvers` without sockets. DNS messages ([`msg`]), one name's
//! resolution state machine with retries, type fallback and `hold` ([`resolution`]), the
//! choice of a server's address among the answers ([`select`]) and resolv.conf ([`conf`]).
//!
//! The control shard owns the UDP sockets and the clock (crates/control/src/dns.rs); this
//! crate is fed bytes and `now` (ms) and returns queries to send and server updates.
#![forbid(unsafe_code)]

pub mod conf;
pub mod msg;
pub mod resolution;
pub mod select;

pub use resolution::{Hold, Outcome, Requester, Resolution, Settings, Status, Update, Verdict};
pub use select::{Family, Net, ServerResolve};
