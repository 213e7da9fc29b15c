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
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use ringlb_log::{frame_sd, Address, Level, LogSpec, Origin, Timestamp};
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
    /// Where drops are also counted for `show info` / the exporter (`DroppedLogs`).
    state: Option<Rc<crate::state::ShardState>>,
    /// `ring@<name>`: lines are copied into this ring instead of being sent.
    ring_buf: Option<Arc<crate::topology::LogRing>>,
}

impl Sink {
    /// One line lost: counted per target and in the shard's `DroppedLogs` (skipped in the
    /// rare case the counters are borrowed at that instant).
    fn count_drop(&self) {
        self.dropped.set(self.dropped.get() + 1);
        if let Some(st) = &self.state {
            if let Ok(mut c) = st.counters.try_borrow_mut() {
                c.process.dropped_logs += 1;
            }
        }
    }
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
        rings: &[Arc<crate::topology::LogRing>],
        origin: Origin,
        utc_offset_secs: i32,
        state: Option<Rc<crate::state::ShardState>>,
    ) -> io::Result<Logger> {
        let mut sinks = Vec::with_capacity(specs.len());
        for spec in specs {
            if let Address::Ring(name) = &spec.address {
                let ring_buf = rings.iter().find(|r| r.name == *name).cloned();
                if ring_buf.is_none() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("log target ring@{name}: no such ring"),
                    ));
                }
                sinks.push(Rc::new(Sink {
                    spec: spec.clone(),
                    ring: ring.clone(),
                    out: RefCell::new(None),
                    last_attempt: Cell::new(None),
                    queue: RefCell::new(VecDeque::new()),
                    spare: RefCell::new(Vec::new()),
                    waker: Cell::new(None),
                    dropped: Cell::new(0),
                    state: state.clone(),
                    ring_buf,
                }));
                continue;
            }
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
                state: state.clone(),
                ring_buf: None,
            });
            ringlb_uring::rt::spawn(write_loop(sink.clone())).detach();
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
        self.emit_sd(targets, level, None, msg);
    }

    /// [`Logger::emit`] with `log-format-sd` structured data (used by `format rfc5424`
    /// targets only).
    pub fn emit_sd(&self, targets: &[usize], level: Level, sd: Option<&[u8]>, msg: &[u8]) {
        self.emit_as(None, targets, level, sd, msg);
    }

    /// [`Logger::emit_sd`] with the header fields of a proxy that has its own `log-tag`.
    pub fn emit_as(
        &self,
        origin: Option<&Origin>,
        targets: &[usize],
        level: Level,
        sd: Option<&[u8]>,
        msg: &[u8],
    ) {
        let origin = origin.unwrap_or(&self.origin);
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
            if let Some(r) = &sink.ring_buf {
                let mut line = sink.spare.borrow_mut().pop().unwrap_or_default();
                frame_sd(&mut line, &sink.spec, origin, level, &ts, sd, msg);
                r.push(&line);
                recycle(sink, line);
                continue;
            }
            if sink.queue.borrow().len() >= QUEUE_LINES {
                sink.count_drop();
                continue;
            }
            let mut line = sink.spare.borrow_mut().pop().unwrap_or_default();
            frame_sd(&mut line, &sink.spec, origin, level, &ts, sd, msg);
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
            sink.count_drop();
            recycle(&sink, line);
            continue;
        };
        let (r, buf) = out.write(SendBuf::from_vec(line)).await;
        match r {
            Ok(_) => *sink.out.borrow_mut() = Some(out),
            Err(e) => {
                // A full socket buffer or a syslog daemon gone: the line is lost, as with
                // HAProxy. A refused or vanished peer is reconnected later.
                sink.count_drop();
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
        // Rings are written in memory by `emit_sd`, never opened.
        Address::Ring(_) => Err(io::Error::from(io::ErrorKind::Unsupported)),
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
    ctx.logger.emit_as(
        fe.log_origin.as_ref(),
        &fe.log,
        Level::INFO,
        None,
        line.as_bytes(),
    );
}

/// The level of a traffic line (haproxy's `strm_log`), or `None` when it is not logged. A
/// transaction failed when it ended abnormally (a termination cause other than `-` or `L`),
/// needed a retry, or answered a 5xx: under `option log-separate-errors` it goes out at `err`
/// instead of `info`; under `option dontlog-normal` only such lines are logged.
pub fn traffic_level(
    fe: &crate::topology::FrontendRt,
    term: &[u8],
    retries: i64,
    status: i64,
) -> Option<Level> {
    let err = !matches!(term.first(), Some(b'-' | b'L' | 0) | None) || retries > 0 || status >= 500;
    match (err, fe.log_separate_errors, fe.dontlog_normal) {
        (false, _, true) => None,
        (true, true, _) => Some(Level::ERR),
        _ => Some(Level::INFO),
    }
}

/// Queues a traffic line: renders `log-format-sd` when the frontend has one, picks the level
/// ([`traffic_level`]) and sends.
pub fn emit_traffic(
    ctx: &crate::Ctx,
    fe: &crate::topology::FrontendRt,
    cx: ringlb_rules::Ctx<'_, '_>,
    level: Level,
    line: &[u8],
) {
    let sd = fe.log_sd.as_ref().map(|f| f.render_vec(cx));
    ctx.logger
        .emit_as(fe.log_origin.as_ref(), &fe.log, level, sd.as_deref(), line);
}

/// An alert the traffic itself raises (haproxy's `ha_alert` + `send_log(LOG_ALERT)`): on
/// stderr as `[ALERT]    (pid) : text`, and to the frontend's log targets at level alert
/// (haproxy sends it to the backend's, which are the same under `log global`).
pub fn alert(ctx: &crate::Ctx, fe: &crate::topology::FrontendRt, text: &str) {
    eprintln!("[ALERT]    ({}) : {text}", std::process::id());
    ctx.logger.emit_as(
        fe.log_origin.as_ref(),
        &fe.log,
        Level::ALERT,
        None,
        text.as_bytes(),
    );
}

thread_local! {
    /// Requests that computed a `unique-id-format` on this shard (its `%rt`).
    static UNIQUE_ID_SEQ: Cell<i64> = const { Cell::new(0) };
}

/// What `unique-id-format` sees of the log variables when the request rules end: the pid
/// (`%pid`), the time (`%Ts`) and a request counter (`%rt`) that starts at 0 as haproxy's.
/// haproxy's counter is the process's; this one is the shard's (`%ci:%cp` in the format
/// keeps ids of different shards apart). Timers are not known yet (`-1`).
pub fn unique_id_facts() -> crate::rules::LogFacts {
    let seq = UNIQUE_ID_SEQ.with(|c| {
        let v = c.get();
        c.set(v.wrapping_add(1));
        v
    });
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    crate::rules::LogFacts {
        accept_unix_ms: now_ms,
        th: -1,
        ti: -1,
        tr_req: -1,
        tw: -1,
        tc: -1,
        tr: -1,
        td: -1,
        ta: -1,
        tt: -1,
        status: -1,
        term: *b"----",
        pid: i64::from(std::process::id()),
        request_counter: seq,
        ..crate::rules::LogFacts::default()
    }
}

/// Why a client connection failed before any stream began (haproxy's `CO_ER_*` codes that
/// ringlb can meet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// The client closed during the TLS handshake (`CO_ER_SSL_EMPTY`).
    SslClosed,
    /// A read or write error during the handshake (`CO_ER_SSL_ABORT`).
    SslAbort,
    /// The TLS library refused the handshake (`CO_ER_SSL_HANDSHAKE`).
    SslHandshake,
    /// `timeout client` (or `http-request`) expired during the handshake
    /// (`CO_ER_SSL_TIMEOUT`).
    SslTimeout,
    /// `accept-proxy`: closed before any byte (`CO_ER_PRX_EMPTY`).
    PrxEmpty,
    /// `accept-proxy`: a read error (`CO_ER_PRX_ABORT`).
    PrxAbort,
    /// `accept-proxy`: `timeout client` expired (`CO_ER_PRX_TIMEOUT`).
    PrxTimeout,
    /// `accept-proxy`: closed in the middle of the header (`CO_ER_PRX_TRUNCATED`).
    PrxTruncated,
    /// `accept-proxy`: the bytes are no PROXY header (`CO_ER_PRX_NOT_HDR`).
    PrxNotHdr,
    /// `accept-proxy`: a malformed header (`CO_ER_PRX_BAD_HDR`).
    PrxBadHdr,
}

impl ConnError {
    pub fn from_handshake(e: &crate::conn::HandshakeError) -> ConnError {
        use crate::conn::HandshakeError as H;
        match e {
            H::Timeout => ConnError::SslTimeout,
            H::Closed => ConnError::SslClosed,
            H::Io(_) => ConnError::SslAbort,
            H::Tls(_) => ConnError::SslHandshake,
        }
    }

    /// haproxy's `conn_err_code_str`.
    pub fn message(self) -> &'static str {
        match self {
            ConnError::SslClosed => "Connection closed during SSL handshake",
            ConnError::SslAbort => "Connection error during SSL handshake",
            ConnError::SslHandshake => "SSL handshake failure",
            ConnError::SslTimeout => "Timeout during SSL handshake",
            ConnError::PrxEmpty => "Connection closed while waiting for PROXY protocol header",
            ConnError::PrxAbort => "Connection error while waiting for PROXY protocol header",
            ConnError::PrxTimeout => "Timeout while waiting for PROXY protocol header",
            ConnError::PrxTruncated => "Truncated PROXY protocol header received",
            ConnError::PrxNotHdr => {
                "Received something which does not look like a PROXY protocol header"
            }
            ConnError::PrxBadHdr => "Received an invalid PROXY protocol header",
        }
    }

    /// Errors of connections that exchanged nothing, not logged under `option dontlognull`.
    fn is_null(self) -> bool {
        matches!(
            self,
            ConnError::SslClosed | ConnError::SslAbort | ConnError::PrxEmpty
        )
    }
}

/// A connection that failed before its stream began (haproxy 2.6 `session_kill_embryonic`):
/// logged with `error-log-format` when set, else with haproxy's fixed line
/// `ip:port [accept date] frontend/bind: message`; at `err` under
/// `option log-separate-errors`, else `info`; skipped under `option dontlognull` when the
/// client sent nothing.
pub fn log_conn_error(
    ctx: &crate::Ctx,
    frontend: usize,
    bind: usize,
    tcp: &ringlb_uring::TcpStream,
    accepted: (std::time::Instant, SystemTime),
    err: ConnError,
) {
    let Some(fe) = ctx.state.topo.frontends.get(frontend) else {
        return;
    };
    if fe.log.is_empty() || matches!(fe.log_line, crate::topology::LogLine::None) {
        return;
    }
    if fe.dontlognull && err.is_null() {
        return;
    }
    let level = if fe.log_separate_errors {
        Level::ERR
    } else {
        Level::INFO
    };
    let src = tcp.peer_addr();
    let accept_unix_ms = accepted
        .1
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let Some(lf) = &fe.error_log else {
        let mut line = String::with_capacity(128);
        if let Some(a) = src {
            line.push_str(&format!("{}:{} ", a.ip(), a.port()));
        }
        line.push('[');
        let mut date = Vec::with_capacity(32);
        let local_ms = accept_unix_ms + i64::from(ctx.state.utc_offset_secs) * 1000;
        ringlb_rules::time::log_date(
            &mut date,
            local_ms.div_euclid(1000),
            Some(local_ms.rem_euclid(1000)),
        );
        line.push_str(&String::from_utf8_lossy(&date));
        // An unnamed listener is named by its number in the frontend, as haproxy does.
        let bind_name = fe
            .binds
            .get(bind)
            .and_then(|b| b.name.clone())
            .unwrap_or_else(|| (bind + 1).to_string());
        line.push_str(&format!("] {}/{bind_name}: {}", fe.name, err.message()));
        ctx.logger.emit_as(
            fe.log_origin.as_ref(),
            &fe.log,
            level,
            None,
            line.as_bytes(),
        );
        return;
    };
    let tt = accepted.0.elapsed().as_millis() as i64;
    // What haproxy reports without a stream: status 0, no bytes, `PR` (its placeholder
    // termination state for a session without stream).
    let facts = crate::rules::LogFacts {
        accept_unix_ms,
        th: tt,
        ti: 0,
        tr_req: -1,
        tw: -1,
        tc: -1,
        tr: -1,
        td: -1,
        ta: tt,
        tt,
        status: 0,
        term: *b"PR--",
        act_conn: i64::from(ctx.state.conns.get()),
        fe_conn: ctx
            .state
            .counters
            .borrow()
            .frontends
            .get(frontend)
            .map_or(0, |f| i64::from(f.cur_sess)),
        pid: i64::from(std::process::id()),
        ..crate::rules::LogFacts::default()
    };
    // The transport was TLS (`%ft` ends with `~`), but nothing was negotiated.
    let tls = ringlb_tls::TlsFacts {
        sni: None,
        protocol: "",
        cipher: "",
        alpn: None,
        session_reused: false,
        client_cert: None,
        frontend_cert: None,
        hello: None,
    };
    let host = crate::rules::Host {
        req_body: None,
        cap: None,
        effects: None,
        res_payload: None,
        payload: None,
        ctx,
        frontend: &fe.name,
        backend: None,
        server: None,
        src,
        dst: tcp.local_addr().ok(),
        tls: Some(&tls),
        server_tls: None,
        log: Some(&facts),
        unique_id: None,
        stick: None,
    };
    let txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::default());
    let cx = ringlb_rules::Ctx::new(&host, &txn);
    let line = lf.render_vec(cx);
    emit_traffic(ctx, fe, cx, level, &line);
}

/// What the log line of one HTTP/2 stream reports (`h2.rs`); times in ms, -1: not reached.
#[derive(Debug)]
pub struct StreamLog<'a> {
    pub fe_idx: usize,
    pub src: Option<std::net::SocketAddr>,
    pub dst: Option<std::net::SocketAddr>,
    pub tls: Option<&'a ringlb_tls::TlsFacts>,
    /// The TLS connection to the server, if the stream had one (`ssl_bc_*`, `ssl_s_*`).
    pub server_tls: Option<&'a ringlb_tls::ServerTlsFacts>,
    pub method: &'a [u8],
    /// The absolute URI (`https://host/path?q`), as haproxy logs an HTTP/2 request.
    pub uri: &'a [u8],
    pub version: &'a [u8],
    pub backend: Option<usize>,
    pub server: Option<usize>,
    pub server_addr: Option<std::net::SocketAddr>,
    /// 0: nothing was answered.
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `[0, 0]`: a normal end.
    pub term: [u8; 2],
    pub retries: u32,
    pub tw: i64,
    pub tc: i64,
    pub tr: i64,
    pub td: i64,
    pub tt: i64,
    pub request_counter: u64,
    /// `capture request|response header` values in declaration order.
    pub captured_req: Vec<Vec<u8>>,
    pub captured_res: Vec<Vec<u8>>,
    /// `capture cookie` values (empty: none).
    pub cookie_req: Vec<u8>,
    pub cookie_res: Vec<u8>,
    /// The stream's `set-log-level` (`Silent`: no line).
    pub log_level: crate::rules::LogLevel,
}

/// The `option httplog` / `log-format` line of an HTTP/2 stream (the head arrives whole, so
/// `TR` is 0).
pub fn log_stream(ctx: &crate::Ctx, fe: &crate::topology::FrontendRt, s: StreamLog<'_>) {
    let crate::topology::LogLine::Format(lf) = &fe.log_line else {
        return;
    };
    // `tune.http.logurilen`: the request line cut as haproxy cuts it.
    let (ml, ul, vl) = cut_lens(
        (s.method.len(), s.uri.len(), s.version.len()),
        ctx.state.topo.tune.log_uri_len,
    );
    let method = s.method.get(..ml).unwrap_or_default();
    let uri = s.uri.get(..ul).unwrap_or_default();
    let version = s.version.get(..vl).unwrap_or_default();
    let status = if s.status == 0 {
        -1
    } else {
        i64::from(s.status)
    };
    let term = crate::rules::LogFacts::term_of(s.term);
    let Some(level) = traffic_level(fe, &term, i64::from(s.retries), status) else {
        return;
    };
    let level = match s.log_level {
        crate::rules::LogLevel::Silent => return,
        crate::rules::LogLevel::Level(l) => l,
        crate::rules::LogLevel::Default => level,
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (be_conn, srv_conn) = match s.backend {
        Some(b) => {
            let st = ctx.state.backends.get(b);
            let bc = st.map_or(0, |st| {
                st.servers
                    .borrow()
                    .iter()
                    .map(|x| i64::from(x.active.get()))
                    .sum()
            });
            let sc = s
                .server
                .and_then(|i| ctx.state.server(b, i))
                .map_or(0, |x| i64::from(x.active.get()));
            (bc, sc)
        }
        None => (0, 0),
    };
    let facts = crate::rules::LogFacts {
        accept_unix_ms: now_ms - s.tt.max(0),
        th: 0,
        ti: 0,
        tr_req: 0,
        tw: s.tw,
        tc: s.tc,
        tr: s.tr,
        td: s.td,
        ta: s.tt,
        tt: s.tt,
        status,
        bytes_out: s.bytes_out as i64,
        bytes_in: s.bytes_in as i64,
        term,
        act_conn: i64::from(ctx.state.conns.get()),
        fe_conn: ctx
            .state
            .counters
            .borrow()
            .frontends
            .get(s.fe_idx)
            .map_or(0, |f| i64::from(f.cur_sess)),
        be_conn,
        srv_conn,
        retries: i64::from(s.retries),
        asap: false,
        pid: i64::from(std::process::id()),
        request_counter: s.request_counter as i64,
        server_addr: s.server_addr,
        captured_req: s.captured_req,
        captured_res: s.captured_res,
        cookie_req: s.cookie_req,
        cookie_res: s.cookie_res,
    };
    let topo = &ctx.state.topo;
    let be = s.backend.and_then(|b| topo.backends.get(b));
    // The shard's server (configured or added at run time).
    let srv = s
        .backend
        .zip(s.server)
        .and_then(|(b, i)| ctx.state.server(b, i));
    let mut host = crate::rules::Host {
        req_body: None,
        cap: None,
        effects: None,
        res_payload: None,
        payload: None,
        ctx,
        frontend: &fe.name,
        backend: be.map(|b| b.name.as_str()),
        server: srv.as_ref().map(|x| x.rt.name.as_str()),
        src: s.src,
        dst: s.dst,
        tls: s.tls,
        server_tls: s.server_tls,
        log: Some(&facts),
        unique_id: None,
        stick: None,
    };
    let mut txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::request(method, uri, version));
    if s.status != 0 {
        txn.res = Some(ringlb_rules::HttpMessage::response(
            b"HTTP/2.0",
            s.status,
            b"",
        ));
    }
    // `%ID`: computed at log time on HTTP/2 (haproxy's `strm_log` does the same when the
    // request did not compute it earlier).
    let uid = fe
        .rules
        .as_ref()
        .and_then(|r| r.unique_id_format.as_ref())
        .map(|f| f.render_http_vec(ringlb_rules::Ctx::new(&host, &txn)));
    host.unique_id = uid.as_deref();
    let cx = ringlb_rules::Ctx::new(&host, &txn);
    let mut line = Vec::with_capacity(256);
    lf.render(cx, &mut line);
    emit_traffic(ctx, fe, cx, level, &line);
}

/// `tune.http.logurilen`: the lengths of method, target and version kept when the request
/// line `METHOD SP target SP version` is cut to `cap` bytes.
pub fn cut_lens((m, t, v): (usize, usize, usize), cap: usize) -> (usize, usize, usize) {
    if m + 1 + t + 1 + v <= cap {
        return (m, t, v);
    }
    (
        m.min(cap),
        t.min(cap.saturating_sub(m + 1)),
        v.min(cap.saturating_sub(m + 1 + t + 1)),
    )
}
