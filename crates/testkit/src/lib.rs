//! Helpers for integration tests of every ringlb crate: free ports, child processes
//! stopped by pid, temp dirs, real `ringlb-origin` and `haproxy` processes, and a raw
//! HTTP/1.1 and WebSocket client.
//!
//! Owns: test plumbing only. Must not: be a dependency of non-test code, hard-code ports,
//! leave processes behind (every process is a `ChildGuard`, stopped on drop).
//!
//! Setup helpers (`Origin::start`, `TempDir::new`, `bin_path`...) panic with a clear
//! message when the environment is broken: they run in tests, where that is the failure
//! report. Network helpers return `io::Result` so tests can assert on failures.
//!
//! A test in the shape most crates need (ringlb in front of real origins):
//!
//! ```no_run
//! use ringlb_testkit::{free_addr, http_get, write_config, Origins, Ringlb, TempDir};
//!
//! let origins = Origins::start(3); // s1, s2, s3 on free ports, killed on drop
//! let bind = free_addr();
//! let dir = TempDir::new("rr");
//! let cfg = write_config(
//!     &dir,
//!     &format!(
//!         "defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
//!          frontend fe\n  bind {bind}\n  default_backend be\n\
//!          backend be\n  balance roundrobin\n{}",
//!         origins.server_lines("")
//!     ),
//! );
//! let _proxy = Ringlb::start(&cfg, &[bind]); // or Haproxy::start for the oracle
//! let r = http_get(bind, "/echo", &[("X-Test", "1")]).unwrap();
//! assert_eq!(r.status, 200);
//! assert!(r.text().to_ascii_lowercase().contains("header: x-test: 1\n"));
//! ```
//!
//! Binaries are found by `bin_path`: `$RINGLB_BIN` / `$RINGLB_ORIGIN_BIN`, else beside the
//! test executable (`target/<profile>/`). `cargo test --workspace` builds them; a single
//! crate's tests may need `cargo build -p ringlb-origin` first.

pub mod body;
pub mod certs;
pub mod client;
pub mod guide;
pub mod h2raw;
pub mod haproxy;
pub mod origin;
pub mod ports;
pub mod process;
pub mod ringlb;
pub mod runtime;
pub mod tempdir;
pub mod tools;
pub mod ws;

pub use body::{fnv1a64, pattern, Digest, PATTERN};
pub use certs::{openssl, Issued, TestCa};
pub use client::{
    http_get, http_get_unix, http_request, parse_responses, send_raw, send_raw_reply,
    set_linger_zero, unread_bytes, Conn, Framing, RawEnd, RawReply, Response, DEFAULT_TIMEOUT,
};
pub use guide::{guide_config, repo_root};
pub use haproxy::{
    config_bind_addrs, haproxy_available, haproxy_bin, haproxy_required, same_as_haproxy, Haproxy,
};
pub use origin::{Origin, OriginMode, OriginOptions, Origins};
pub use ports::{free_addr, free_port, free_ports, UnansweredAddr};
pub use process::{
    bin_path, children, listening_inodes, proc_cpu_ticks, proc_status_kib, try_bin_path,
    unix_listening_inodes, wait_for_port, wait_until, ChildGuard,
};
pub use ringlb::Ringlb;
pub use runtime::{parse_server_stats, runtime_command, served_by, server_stats, StatCsv};
pub use tempdir::{write_config, write_file, TempDir};
pub use tools::{curl, find_on_path, run_bounded};
pub use ws::{Frame, WsClient};
