//! Per-shard io_uring socket driver and the shard's run loop.
//!
//! glommio 0.9's `TcpStream` is readiness-based (a `recv` syscall, then a POLL_ADD when it would
//! block); measured here at twice HAProxy's CPU per request. This crate gives each shard its own
//! ring with completion-based `accept`/`connect`/`recv`/`send`/`close` (see
//! `docs/adr/0001-socket-data-path.md`), and the loop that runs the shard's tasks on it
//! (`rt`, `docs/adr/0006-shard-run-loop.md`):
//!
//! - Operations are futures whose resources (buffers, socket addresses) are owned by the ring's
//!   slot table until the kernel's completion arrives, so dropping a future is always safe: the
//!   slot becomes an orphan and an `ASYNC_CANCEL` is queued.
//! - Submission is batched: pushing an SQE only queues it; the run loop submits everything the
//!   tasks queued in one `io_uring_enter` after running them.
//! - Idle reads use a provided-buffer ring (`IOSQE_BUFFER_SELECT`): a connection waiting for its
//!   next request holds no buffer; the kernel picks one when bytes arrive.
//! - The run loop parks in the same `io_uring_enter`: it waits for a completion, the next timer
//!   (the enter's timeout) or a message from another thread (an eventfd read kept in the ring).
//!   No busy polling.
//! - `Pipe` and `Ring::splice` (`IORING_OP_SPLICE`) move socket bytes through a pipe without
//!   copying them to user space; the kernel runs every splice on an io-wq worker thread
//!   (`docs/adr/0002-tcp-splice.md`); `TcpStream::readable` (one-shot POLL_ADD) waits for bytes
//!   first, so an idle connection parks no worker.
//!
//! Everything but the channels is single-threaded (`Rc`, `Cell`, `RefCell`): a ring belongs to
//! one shard.

mod bufring;
mod driver;
mod net;
mod op;
mod out;
mod pipe;
pub mod rt;

pub use bufring::RecvBuf;
pub use driver::Ring;
pub use net::{
    adopt_listener, bind_listener, bind_reuseport, local_addr_of, ConnectOpts, IoMeter, KeepAlive,
    ListenOpts, TcpListener, TcpStream,
};
pub use op::SendBuf;
pub use out::OutFd;
pub use pipe::Pipe;
