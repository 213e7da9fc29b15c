//! Answers the proxy produces itself: the stats page (`stats uri`) and the Prometheus exporter
//! (`http-request use-service prometheus-exporter`). Both need every shard's counters: the
//! serving shard asks the control shard to have them published (`ControlMsg::PublishStats`),
//! waits a few milliseconds for them, and renders. Rare requests, so they may allocate.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringlb_stats::Snapshot;

use crate::counters::ShardCounters;
use crate::snapshot::{self, ProcessFacts};
use crate::state::ControlMsg;
use crate::Ctx;

/// How long a reader waits for every shard's counters before using the last published ones.
const COLLECT_WAIT: Duration = Duration::from_millis(500);

/// Every shard's counters, merged (falls back to the last published copies, then to this
/// shard's own, if the others do not answer in time).
pub async fn collect(ctx: &Ctx) -> ShardCounters {
    let board = &ctx.state.board;
    let seq = board.next_seq();
    if ctx
        .commands
        .try_send(ControlMsg::PublishStats { seq })
        .is_ok()
    {
        let deadline = std::time::Instant::now() + COLLECT_WAIT;
        while std::time::Instant::now() < deadline {
            if let Some(c) = board.try_collect(seq) {
                return c;
            }
            ringlb_uring::rt::sleep(Duration::from_millis(1)).await;
        }
    }
    board
        .latest()
        .unwrap_or_else(|| ctx.state.counters.borrow().clone())
}

/// The process snapshot the renderers take.
pub async fn snapshot(ctx: &Ctx) -> Snapshot {
    let counters = collect(ctx).await;
    let state = &ctx.state;
    let facts = ProcessFacts {
        pid: std::process::id(),
        nbthread: state.nshards as u32,
        start_unix_s: state.board.start_unix_s,
        ulimit_n: open_files_limit(),
        node: state.topo.node.clone(),
        stopping: state.run.get() != crate::state::RunState::Running,
    };
    let mut snap = snapshot::build(
        &state.topo,
        state,
        &counters,
        &state.board.health(),
        state.board.now_ms(),
        &facts,
    );
    // Check runs and runtime-socket connections are sessions too, and each CLI connection a
    // stream (`CumConns`, `CumReq`, as haproxy counts them).
    let cli = crate::counters::CLI_SESSIONS.load(std::sync::atomic::Ordering::Relaxed);
    let checks = crate::counters::CHECK_SESSIONS.load(std::sync::atomic::Ordering::Relaxed);
    let p = &mut snap.process.counters;
    p.cum_conns = p.cum_conns.saturating_add(checks).saturating_add(cli);
    p.cum_req = p.cum_req.saturating_add(cli);
    // The stats page and the exporter run on a shard: the runtime sockets count as configured
    // (their connections are the control shard's).
    let up = Duration::from_secs(unix_now_s().saturating_sub(state.board.start_unix_s));
    let started = Instant::now().checked_sub(up).unwrap_or_else(Instant::now);
    fill_live(
        &mut snap.process,
        &state.topo,
        facts.nbthread,
        (state.topo.runtime_sockets, 0),
        started,
    );
    snap
}

/// The process figures `show info`, the stats page and the exporter share: `Listeners` (one
/// per bound address and runtime socket, whatever the shards, as haproxy counts them),
/// `Jobs` (listeners, client connections, runtime-socket connections) and `Idle_pct`.
/// `runtime`: runtime sockets listening and their connections in progress.
pub fn fill_live(
    info: &mut ringlb_stats::model::ProcessInfo,
    topo: &crate::Topology,
    threads: u32,
    runtime: (u32, u32),
    started: Instant,
) {
    let binds: usize = topo.frontends.iter().map(|f| f.binds.len()).sum();
    info.listeners = u32::try_from(binds)
        .unwrap_or(u32::MAX)
        .saturating_add(runtime.0);
    info.jobs = info
        .listeners
        .saturating_add(info.counters.curr_conns)
        .saturating_add(runtime.1);
    info.idle_pct = idle_pct(threads.max(1), started);
}

thread_local! {
    /// The last `Idle_pct` sample of this thread: when, and the process's CPU time then (µs).
    static IDLE_SAMPLE: std::cell::Cell<Option<(Instant, u64)>> = const { std::cell::Cell::new(None) };
}

/// `Idle_pct`: the share of the shards' time not spent on the CPU since the previous sample
/// (since start for the first), from `getrusage` (haproxy measures its poller's idle time;
/// both read ~100 on an idle process and fall under load).
fn idle_pct(threads: u32, started: Instant) -> u32 {
    let cpu = cpu_time_us();
    let now = Instant::now();
    let (since, cpu_then) = IDLE_SAMPLE
        .with(|c| c.replace(Some((now, cpu))))
        .unwrap_or((started, 0));
    let wall = u64::try_from(now.duration_since(since).as_micros()).unwrap_or(u64::MAX);
    let capacity = wall.saturating_mul(u64::from(threads));
    if capacity == 0 {
        return 100;
    }
    let busy = cpu.saturating_sub(cpu_then).min(capacity);
    u32::try_from(100 - busy * 100 / capacity).unwrap_or(100)
}

/// User plus system CPU time of the whole process, in µs.
fn cpu_time_us() -> u64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// The open-files limit (`Ulimit-n`).
pub fn open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        0
    }
}

/// Seconds since the Unix epoch now.
pub fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A complete response with a body, as HAProxy's applets answer: `cache-control: no-cache`
/// and the content type, framed by `content-length`.
pub fn write_reply(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(ringlb_http1::reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\ncache-control: no-cache\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in extra {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// An answer of the stats renderers as bytes: status line, its headers, `content-length`.
pub fn answer_bytes(a: &ringlb_stats::page::HttpAnswer) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.body.len() + 256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(a.status.to_string().as_bytes());
    out.push(b' ');
    let reason = match a.status {
        303 => "See Other",
        s => ringlb_http1::reason_phrase(s),
    };
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in &a.headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(a.body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(a.body.as_bytes());
    out
}

/// Applies a stats-page admin action to the named servers of a backend by broadcasting it
/// through the control shard (so every shard applies it); returns (servers named, changed).
pub fn apply_admin(ctx: &Ctx, req: &ringlb_stats::admin::AdminRequest) -> (usize, usize) {
    use ringlb_stats::admin::{AdminAction as A, BackendRef};
    let topo = &ctx.state.topo;
    let backend = match &req.backend {
        BackendRef::Id(id) => topo
            .proxies
            .iter()
            .find(|p| p.id == *id)
            .and_then(|p| p.backend),
        BackendRef::Name(n) => topo.backends.iter().position(|b| b.name == *n),
    };
    let Some(b) = backend else {
        return (req.servers.len(), 0);
    };
    let mut altered = 0;
    for name in &req.servers {
        let Some(s) = topo
            .backends
            .get(b)
            .and_then(|be| be.servers.iter().position(|x| x.name == *name))
        else {
            continue;
        };
        let msg = match req.action {
            A::Ready => ControlMsg::SetServerAdmin {
                backend: b,
                server: s,
                state: crate::state::AdminState::Ready,
            },
            A::Drain => ControlMsg::SetServerAdmin {
                backend: b,
                server: s,
                state: crate::state::AdminState::Drain,
            },
            A::Maint => ControlMsg::SetServerAdmin {
                backend: b,
                server: s,
                state: crate::state::AdminState::Maint,
            },
            A::HealthUp => ControlMsg::SetServerHealth {
                backend: b,
                server: s,
                up: true,
            },
            A::HealthDown => ControlMsg::SetServerHealth {
                backend: b,
                server: s,
                up: false,
            },
            // Check scheduling and session shutdown from the page are not implemented yet:
            // counted as not altered, so the page says so.
            _ => continue,
        };
        if ctx.commands.try_send(msg).is_ok() {
            altered += 1;
        }
    }
    (req.servers.len(), altered)
}
