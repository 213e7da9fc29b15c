//! Sending log lines without blocking the shard (issue #9, "logging never blocks a shard").
//!
//! Each shard opens its own descriptor per `log` target ([`ringlb_log::LogSpec`]) and keeps a
//! bounded queue of framed lines per target; one task per target writes them through the ring.
//! When the target is slower than the traffic, new lines are dropped and counted
//! ([`Logger::dropped`], shown in stats), never queued without bound.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use ringlb_log::{frame, Address, Level, LogSpec, Origin, Timestamp};
use ringlb_uring::{OutFd, Ring, SendBuf};

/// Lines a target may have waiting before new ones are dropped.
const QUEUE_LINES: usize = 1024;

struct Sink {
    spec: LogSpec,
    ring: Ring,
    /// `None` while the target cannot be reached (no syslog daemon on `/dev/log` yet): lines
    /// are dropped and counted, and the target is tried again at most once a second.
    out: RefCell<Option<OutFd>>,
    last_attempt: Cell<Option<std::time::Instant>>,
    queue: RefCell<VecDeque<Vec<u8>>>,
    /// Line buffers given back by the writer, reused by the next lines (no allocation per
    /// line once warm).
    spare: RefCell<Vec<Vec<u8>>>,
    waker: Cell<Option<Waker>>,
    dropped: Cell<u64>,
}

/// A shard's log targets.
pub struct Logger {
    sinks: Vec<Rc<Sink>>,
    origin: Origin,
    utc_offset_secs: i32,
}

impl Logger {
    /// Opens every target for this shard and starts one writer task per target.
    pub fn open(
        ring: &Ring,
        specs: &[LogSpec],
        origin: Origin,
        utc_offset_secs: i32,
    ) -> io::Result<Logger> {
        let mut sinks = Vec::with_capacity(specs.len());
        for spec in specs {
            // As HAProxy, an unreachable target does not stop the proxy (only an address
            // that can never work does).
            let out = match open(ring, &spec.address) {
                Ok(o) => Some(o),
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("log target {:?}: {e}", spec.address),
                    ))
                }
                Err(_) => None,
            };
            let sink = Rc::new(Sink {
                spec: spec.clone(),
                ring: ring.clone(),
                out: RefCell::new(out),
                last_attempt: Cell::new(Some(std::time::Instant::now())),
                queue: RefCell::new(VecDeque::new()),
                spare: RefCell::new(Vec::new()),
                waker: Cell::new(None),
                dropped: Cell::new(0),
            });
            glommio::spawn_local(write_loop(sink.clone())).detach();
            sinks.push(sink);
        }
        Ok(Logger {
            sinks,
            origin,
            utc_offset_secs,
        })
    }

    /// A logger with no targets (tests, `no log`).
    pub fn none() -> Logger {
        Logger {
            sinks: Vec::new(),
            origin: Origin {
                hostname: None,
                tag: String::new(),
                pid: 0,
            },
            utc_offset_secs: 0,
        }
    }

    /// Queues `msg` at `level` for the targets `targets` (indices into the topology's specs).
    pub fn emit(&self, targets: &[usize], level: Level, msg: &[u8]) {
        if targets.is_empty() {
            return;
        }
        let ts = now(self.utc_offset_secs);
        for &t in targets {
            let Some(sink) = self.sinks.get(t) else {
                continue;
            };
            let Some(level) = sink.spec.effective_level(level) else {
                continue;
            };
            if sink.queue.borrow().len() >= QUEUE_LINES {
                sink.dropped.set(sink.dropped.get() + 1);
                continue;
            }
            let mut line = sink.spare.borrow_mut().pop().unwrap_or_default();
            frame(&mut line, &sink.spec, &self.origin, level, &ts, msg);
            sink.queue.borrow_mut().push_back(line);
            if let Some(w) = sink.waker.take() {
                w.wake();
            }
        }
    }

    /// Lines dropped because a target was too slow, all targets together.
    pub fn dropped(&self) -> u64 {
        self.sinks.iter().map(|s| s.dropped.get()).sum()
    }
}

fn now(utc_offset_secs: i32) -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_unix(d.as_secs() as i64, d.subsec_micros(), utc_offset_secs)
}

async fn write_loop(sink: Rc<Sink>) {
    loop {
        let line = poll_fn(|cx| match sink.queue.borrow_mut().pop_front() {
            Some(l) => Poll::Ready(l),
            None => {
                sink.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        if sink.out.borrow().is_none() {
            reconnect(&sink);
        }
        // The descriptor is taken out while the write is in flight (no borrow across await).
        let Some(out) = sink.out.borrow_mut().take() else {
            sink.dropped.set(sink.dropped.get() + 1);
            recycle(&sink, line);
            continue;
        };
        let (r, buf) = out.write(SendBuf::from_vec(line)).await;
        match r {
            Ok(_) => *sink.out.borrow_mut() = Some(out),
            Err(e) => {
                // A full socket buffer or a syslog daemon gone: the line is lost, as with
                // HAProxy. A refused or vanished peer is reconnected later.
                sink.dropped.set(sink.dropped.get() + 1);
                let gone = matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED | libc::ENOTCONN | libc::ENOENT)
                );
                if !gone {
                    *sink.out.borrow_mut() = Some(out);
                }
            }
        }
        if let Some(v) = buf.into_vec() {
            recycle(&sink, v);
        }
    }
}

fn recycle(sink: &Sink, mut line: Vec<u8>) {
    line.clear();
    let mut spare = sink.spare.borrow_mut();
    if spare.len() < 64 {
        spare.push(line);
    }
}

fn open(ring: &Ring, address: &Address) -> io::Result<OutFd> {
    match address {
        Address::Udp(a) => OutFd::udp(ring, *a),
        Address::Unix(p) => OutFd::unix(ring, p),
        Address::Fd(n) => Ok(OutFd::inherited(ring, *n)),
    }
}

fn reconnect(sink: &Sink) {
    let now = std::time::Instant::now();
    if let Some(t) = sink.last_attempt.get() {
        if now.duration_since(t) < std::time::Duration::from_secs(1) {
            return;
        }
    }
    sink.last_attempt.set(Some(now));
    if let Ok(o) = open(&sink.ring, &sink.spec.address) {
        *sink.out.borrow_mut() = Some(o);
    }
}

/// The local time's offset from UTC now, in seconds (read once at startup; a DST change is
/// picked up at the next reload).
pub fn local_utc_offset_secs() -> i32 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: localtime_r writes only into `tm`, which we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        tm.tm_gmtoff as i32
    } else {
        0
    }
}

/// haproxy's default log line (no `option httplog|tcplog`, no `log-format`), at accept:
/// `Connect from 10.0.1.2:33312 to 10.0.3.31:8012 (www/HTTP)`.
pub fn log_connect(
    ctx: &crate::Ctx,
    fe: &crate::topology::FrontendRt,
    client: &crate::conn::ClientConn,
) {
    let (Some(src), Ok(dst)) = (client.peer_addr(), client.tcp().local_addr()) else {
        return;
    };
    let mode = match fe.mode {
        ringlb_config::model::Mode::Http => "HTTP",
        ringlb_config::model::Mode::Tcp => "TCP",
    };
    let line = format!("Connect from {src} to {dst} ({}/{mode})", fe.name);
    ctx.logger.emit(&fe.log, Level::INFO, line.as_bytes());
}
