//! HAProxy stick tables as pure data structures: no sockets, threads or clocks inside.
//!
//! - [`key`]: key types and HAProxy's sample-to-key conversions.
//! - [`data`]: stored data types and the per-table fixed entry layout.
//! - [`freq`]: HAProxy's sliding-period rate counter.
//! - [`table`]: one shard's instance of a table: entries, LRU eviction, expiry.
//! - [`track`]: `track-scN`, counted events, and the `sc_*`/`src_*`/`table_*` reads and writes.
//! - [`shard`]: the cross-shard protocol (owner per key, deltas and updates; ADR 0003).
//! - [`tables`]: a shard's set of tables and a stream's `sc0`..`sc2`, the engine's surface.
//! - [`peer`]: what `peers` replication collects from and applies to a table (ADR 0007).
//! - [`runtime`]: `show table`, `clear table`, `set table` for the runtime socket.
//!
//! The engine owns one [`Table`] per stick table per shard, passes `now` (ms, monotonic and
//! common to all shards) to every call, and moves [`shard::Outgoing`] messages between shards.
//!
//! Per stream, the engine's calls are:
//! 1. `track-scN` rules: [`StreamCounters::track`] (counts the connection, and the request
//!    when the rule is an `http-request` one);
//! 2. rules read `sc_*`/`src_*`/`table_*` with [`parse_fetch`] + [`Tables::fetch`] and act
//!    with [`StreamCounters::inc_gpc`], [`StreamCounters::set_gpt0`];
//! 3. later requests on a stream tracked from `tcp-request` rules, 4xx/5xx responses and byte
//!    counts: [`StreamCounters::record`] with an [`Event`];
//! 4. stream end: [`StreamCounters::release_all`].
//!
//! Every 1 ms: [`Tables::flush`], send, and [`Tables::receive`] on the other side; now and then
//! [`Tables::purge_expired`]. With one shard no message is ever produced.
//!
//! A hot key costs about 50–150 ns per tracked request on this 2-core machine
//! (`examples/track_bench.rs`). No call blocks or locks. Allocation happens only when a table
//! grows (arenas and index, amortised, bounded by `size`), when a key over 16 bytes is first
//! stored, on a non-owner shard for a key's first pending delta after each flush, and when a
//! flush builds its messages.
#![forbid(unsafe_code)]

pub mod data;
pub mod freq;
pub mod key;
pub mod peer;
pub mod runtime;
pub mod shard;
pub mod table;
pub mod tables;
pub mod track;

pub use data::{DataType, Layout};
pub use key::{KeySample, KeyType};
pub use peer::{PeerEntry, PeerValue};
pub use runtime::{CliVerb, EntryView, Filter, FilterOp, Query, SetEntry};
pub use shard::{owner_of, Delta, DeltaOp, Message, Outgoing, ShardInfo, Update};
pub use table::{encode_key, Refused, Table, TableConfig};
pub use tables::{FetchValue, StreamCounters, TableId, Tables, MAX_SC};
pub use track::{parse_fetch, Event, FetchKind, FetchScope, Handle, TrackFrom};
