//! TLS for ringlb, sans-IO: the engine owns sockets and moves bytes; this crate turns
//! ciphertext into plaintext and back with rustls (aws-lc-rs provider, ADR 0004).
//!
//! Owns:
//! - loading HAProxy-style certificates (`crt` files and directories, `crt-list`, `crt-base`,
//!   `key-base`, `.key` and `.ocsp` companions) and SNI selection ([`cert`], [`store`]);
//! - mapping HAProxy's TLS policy words onto rustls ([`policy`], [`verify`]);
//! - building per-bind and per-server configs at startup with diagnostics that name the file
//!   ([`build_config`] for a whole configuration, or [`build_bind`], [`build_server`]) and per-shard copies sharing the bind's session cache
//!   ([`BindTls::for_shard`], [`ServerTls::for_shard`]) and shared ticket keys ([`TlsShared`]);
//! - the per-connection wrappers the engine drives ([`TlsSession`], [`TlsClientSession`]) and
//!   the facts for the rules engine ([`TlsFacts`]).
//!
//! Must not: open sockets, name glommio/libc, read files after startup, panic on input.

pub mod bind;
pub mod cert;
pub mod client;
pub mod config;
pub mod der;
pub mod diag;
pub mod hot;
#[rustfmt::skip]
pub mod openssl_names;
pub mod policy;
pub mod resume;
pub mod session;
pub mod sigalgs;
pub mod store;
pub mod ticket_keys;
pub mod verify;

pub use bind::{build_bind, provider, BindTls, ShardTls, TlsGlobals, TlsShared};
pub use client::{build_server, server_name, ServerTls, ServerTlsFacts, TlsClientSession};
pub use config::{build_config, ConfigTls};
pub use diag::{Severity, TlsDiag};
pub use session::{
    CertRef, CertSide, ClientCert, DnFormat, HelloCapture, TlsError, TlsFacts, TlsSession,
};
pub use ticket_keys::TicketKeys;

/// What the engine relies on: startup products cross threads (built on the control shard,
/// sent to workers); sessions may move with their connection.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<BindTls>();
    send_sync::<ShardTls>();
    send_sync::<ServerTls>();
    send_sync::<TlsShared>();
    send::<TlsSession>();
    send::<TlsClientSession>();
};
