//! HAProxy stick tables as pure data structures: no sockets, threads or clocks inside.
//!
//! - [`key`]: key types and HAProxy's sample-to-key conversions.
//! - [`data`]: stored data types and the per-table fixed entry layout.
//! - [`freq`]: HAProxy's sliding-period rate counter.
//! - [`table`]: one shard's instance of a table: entries, LRU eviction, expiry.
//! - [`track`]: `track-scN`, counted events, and the `sc_*`/`src_*`/`table_*` reads and writes.
//! - [`shard`]: the cross-shard protocol (owner per key, deltas and updates; ADR 0003).
//! - [`tables`]: a shard's set of tables and a stream's `sc0`..`sc2`, the engine's surface.
//! - [`runtime`]: `show table`, `clear table`, `set table` for the runtime socket.
//!
//! The engine owns one [`Table`] per stick table per shard, passes `now` (ms, monotonic and
//! common to all shards) to every call, and moves [`shard::Outgoing`] messages between shards.

pub mod data;
pub mod freq;
pub mod key;
pub mod runtime;
pub mod shard;
pub mod table;
pub mod tables;
pub mod track;

pub use data::{DataType, Layout};
pub use key::{KeySample, KeyType};
pub use runtime::{CliVerb, EntryView, Filter, FilterOp, Query};
pub use shard::{owner_of, Delta, DeltaOp, Message, Outgoing, ShardInfo, Update};
pub use table::{Refused, Table, TableConfig};
pub use tables::{FetchValue, StreamCounters, TableId, Tables, MAX_SC};
pub use track::{parse_fetch, Event, FetchKind, FetchScope, Handle, TrackFrom};
