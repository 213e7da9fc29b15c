//! HAProxy's peers protocol (stick-table replication between processes) without sockets,
//! threads or clocks: haproxy 2.6 speaks version 2.1 of it, and so does ringlb, so one box can
//! run ringlb while its pair still runs haproxy (issue #7, ADR 0007).
//!
//! - [`varint`]: the protocol's encoded integers;
//! - [`handshake`]: the three hello lines and the status line;
//! - [`wire`]: message framing, table definitions, updates, acks;
//! - [`bridge`]: ringlb's tables and entries to and from the wire;
//! - [`session`]: one connection's state machine (the engine moves its bytes).
//!
//! Checked against bytes recorded from a real haproxy 2.6 (`tests/fixtures/record.py`).
#![forbid(unsafe_code)]

pub mod bridge;
pub mod handshake;
pub mod session;
pub mod varint;
pub mod wire;

pub use handshake::{Hello, Status};
pub use session::{Close, Event, Local, Phase, Session};
pub use wire::{Frame, TableDef, Update, WireValue};
