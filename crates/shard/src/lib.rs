//! Per-core data plane: listeners, connections, backend pools, proxy phases.
//!
//! A shard is one thread pinned to one CPU, running its own loop on its own io_uring
//! (`ringlb_uring::rt`, ADR 0006). It owns that ring (`ringlb-uring`), its
//! SO_REUSEPORT listeners, its connection counts, queues and idle server connections
//! (`state.rs`). It shares nothing mutable with other shards: the topology is read-only (`Arc`)
//! and every change arrives as a `ControlMsg` from the control shard, applied by
//! `ShardState::apply`. See docs/architecture.md and docs/lifetime-of-a-connection.md.

use std::rc::Rc;

use ringlb_uring::Ring;

mod body;
pub mod buffer_body;
pub mod cache;
pub mod conn;
pub mod counters;
pub mod dynamic;
pub mod epoch;
pub mod h2;
mod h2fx;
pub mod h2srv;
pub mod h2ws;
pub mod handoff;
pub mod http;
pub mod idle;
pub mod live;
pub mod log;
pub mod msg_rules;
pub mod notify;
pub mod observe;
pub mod ops;
pub mod patterns;
pub mod persist;
pub mod post_param;
pub mod queue;
pub mod rewrite;
pub mod rules;
pub mod server;
pub mod service;
pub mod shard;
pub mod snapshot;
pub mod state;
pub mod stick;
pub mod tcp;
pub mod time;
pub mod topology;
pub mod tunnel;

pub use counters::{ServerHealth, ShardCounters, StatsBoard};
pub use shard::{spawn_shard, ShardConfig};
pub use state::{AdminState, ControlMsg, SharedCert};
pub use topology::Topology;

/// What every task of a shard needs: the shard's state and its ring.
#[derive(Clone)]
pub struct Ctx {
    pub state: Rc<state::ShardState>,
    pub ring: Ring,
    /// Raised on soft or hard stop: idle keep-alive connections close at once.
    pub stopping: Rc<notify::Notify>,
    /// Commands to the control shard (rare: stats collection).
    pub commands: crossbeam_channel::Sender<state::ControlMsg>,
    /// The shard's log targets.
    pub logger: Rc<log::Logger>,
    /// Per-request working memory not held by idle connections (`http::Scratch`).
    pub scratch: Rc<std::cell::RefCell<Vec<Box<http::Scratch>>>>,
    /// The shard's live streams and error captures (shared by its epochs).
    pub live: Rc<live::Live>,
}
