//! Answers the proxy produces itself: the stats page (`stats uri`) and the Prometheus exporter
//! (`http-request use-service prometheus-exporter`). Both need every shard's counters: the
//! serving shard asks the control shard to have them published (`ControlMsg::PublishStats`),
//! waits a few milliseconds for them, and renders. Rare requests, so they may allocate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    snapshot::build(
        &state.topo,
        state,
        &counters,
        &state.board.health(),
        state.board.now_ms(),
        &facts,
    )
}

fn open_files_limit() -> u64 {
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
