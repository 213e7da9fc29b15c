//! The engine commands: `show sess`, `shutdown session`, `show activity`, `show pools` and
//! `show errors`. Each asks every worker shard (`ControlMsg::Engine`, answered on the stats
//! board from the shard's `live::Live` registry), resolves indexes to names here and prints
//! with `ringlb_runtime::engine`, in haproxy 2.6's formats.

use std::time::{Duration, Instant};

use ringlb_runtime::command::{ErrorDir, SessTarget};
use ringlb_runtime::engine::{self, ErrorFilter, ErrorRow, PoolRow, SessRow, ShardActivity};
use ringlb_runtime::{Command, Pending, Reply};
use ringlb_shard::live::{EngineQuery, EngineReply, SessSnap};
use ringlb_shard::ControlMsg;

use super::exec::Ctx;

/// How long a command waits for every shard's answer.
const ENGINE_WAIT: Duration = Duration::from_millis(500);

/// Runs one engine command.
pub async fn run(ctx: &Ctx, p: &Pending) -> Reply {
    match &p.command {
        Command::ShowSess(target) => show_sess(ctx, target).await,
        Command::ShutdownSession { id } => shutdown_session(ctx, *id).await,
        Command::ShowActivity => show_activity(ctx).await,
        Command::ShowPools => show_pools(ctx).await,
        Command::ShowErrors { proxy, dir } => show_errors(ctx, proxy.as_deref(), *dir).await,
        _ => Reply::err("Internal error.\n"),
    }
}

/// Asks every shard `query` and waits (bounded) for all answers; `None` when a shard did not
/// answer in time (stopping).
async fn ask(ctx: &Ctx, query: EngineQuery) -> Option<Vec<EngineReply>> {
    let seq = ctx.board.next_seq();
    ctx.bus.send(ControlMsg::Engine { seq, query }).await;
    let deadline = Instant::now() + ENGINE_WAIT;
    loop {
        if let Some(r) = ctx.board.try_collect_engine(seq) {
            return Some(r);
        }
        if Instant::now() >= deadline {
            return None;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// `[dd/Mon/yyyy:hh:mm:ss.` + fraction digits `]`, local time, as haproxy prints dates.
fn date(unix_us: u64, fraction_digits: u32) -> String {
    let t = ringlb_log::Timestamp::from_unix(
        i64::try_from(unix_us / 1_000_000).unwrap_or(0),
        u32::try_from(unix_us % 1_000_000).unwrap_or(0),
        ringlb_shard::log::local_utc_offset_secs(),
    );
    let frac = if fraction_digits == 3 {
        format!("{:03}", t.micros / 1000)
    } else {
        format!("{:06}", t.micros)
    };
    format!(
        "[{:02}/{}/{:04}:{:02}:{:02}:{:02}.{frac}]",
        t.day,
        t.month_name(),
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

fn now_us() -> u64 {
    ringlb_shard::live::unix_us(std::time::SystemTime::now())
}

/// `ip:port` as haproxy prints a source (no brackets around IPv6).
fn addr(a: Option<std::net::SocketAddr>) -> String {
    match a {
        Some(a) => format!("{}:{}", a.ip(), a.port()),
        None => "?".to_string(),
    }
}

fn mode_name(m: ringlb_config::model::Mode) -> &'static str {
    match m {
        ringlb_config::model::Mode::Http => "http",
        ringlb_config::model::Mode::Tcp => "tcp",
    }
}

/// The proxy id (haproxy's `#N`) of frontend `fe` or backend `be`.
fn proxy_id(topo: &ringlb_shard::Topology, fe: Option<usize>, be: Option<usize>) -> u32 {
    topo.proxies
        .iter()
        .find(|p| (fe.is_some() && p.frontend == fe) || (be.is_some() && p.backend == be))
        .map_or(0, |p| p.id)
}

/// Server name, id and address (the mirror knows servers added at run time too).
fn server_facts(ctx: &Ctx, be: usize, srv: usize) -> Option<(String, u32, String)> {
    let s = ctx.bus.mirror().server(be, srv)?;
    Some((s.rt.name.clone(), s.puid, addr(Some(s.addr.get()))))
}

fn sess_row(ctx: &Ctx, s: &SessSnap) -> SessRow {
    let topo = ctx.topo();
    let fe = topo.frontends.get(s.frontend);
    let be = s
        .backend
        .and_then(|b| Some((b, topo.backends.get(b)?)))
        .map(|(b, rt)| {
            (
                rt.name.clone(),
                proxy_id(&topo, None, Some(b)),
                mode_name(rt.mode),
            )
        });
    let srv = s
        .backend
        .zip(s.server)
        .and_then(|(b, v)| server_facts(ctx, b, v));
    SessRow {
        id: s.id,
        uniq: s.uniq,
        proto: match s.src {
            Some(std::net::SocketAddr::V6(_)) => "tcpv6",
            Some(_) => "tcpv4",
            None => "unix_stream",
        },
        // A UNIX socket bind: haproxy's `unix:<listener id>`.
        src: match s.src {
            Some(_) => addr(s.src),
            None => format!(
                "unix:{}",
                fe.and_then(|f| f.binds.get(s.bind)).map_or(0, |b| b.id)
            ),
        },
        accept_date: date(s.accepted_unix_us, 6),
        fe: fe.map_or_else(String::new, |f| f.name.clone()),
        fe_id: proxy_id(&topo, Some(s.frontend), None),
        fe_mode: fe.map_or("tcp", |f| mode_name(f.mode)),
        listener_id: fe.and_then(|f| f.binds.get(s.bind)).map_or(0, |b| b.id),
        fe_addr: addr(s.dst),
        be,
        srv,
        age_s: s.age_ms / 1000,
        calls: s.requests,
        fd_front: s.fd,
        fd_back: s.fd_back,
        shard: s.shard,
    }
}

/// `show sess`, `show sess all`, `show sess <id>`.
async fn show_sess(ctx: &Ctx, target: &SessTarget) -> Reply {
    let mut all: Vec<SessSnap> = ask(ctx, EngineQuery::Sessions)
        .await
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| match r {
            EngineReply::Sessions(v) => v,
            _ => Vec::new(),
        })
        .collect();
    // Oldest first, as haproxy walks its stream list.
    all.sort_by_key(|s| (s.accepted_unix_us, s.id));
    let mut out = String::new();
    match target {
        SessTarget::List => {
            for s in &all {
                engine::sess_line(&sess_row(ctx, s), &mut out);
            }
        }
        SessTarget::All => {
            for s in &all {
                engine::sess_full(&sess_row(ctx, s), &mut out);
            }
        }
        SessTarget::Id(id) => match all.iter().find(|s| s.id == *id) {
            Some(s) => engine::sess_full(&sess_row(ctx, s), &mut out),
            None => out.push_str("Session not found.\n"),
        },
    }
    Reply::raw(out)
}

/// `shutdown session <id>`: the owning shard drops the stream (its sockets close).
async fn shutdown_session(ctx: &Ctx, id: u64) -> Reply {
    let killed = ask(ctx, EngineQuery::Kill { id })
        .await
        .unwrap_or_default()
        .iter()
        .any(|r| matches!(r, EngineReply::Killed(true)));
    if killed {
        Reply::empty()
    } else {
        Reply::err("No such session (use 'show sess').\n")
    }
}

async fn show_activity(ctx: &Ctx) -> Reply {
    let shards: Vec<ShardActivity> = ask(ctx, EngineQuery::Activity)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| match r {
            EngineReply::Activity(a) => Some(ShardActivity {
                tasks: a.tasks,
                loops: a.loops,
                poll_io: 0,
                streams: a.streams,
                avg_loop_us: a.runtime_us.checked_div(a.loops).unwrap_or(0),
                accepted: a.accepted,
            }),
            _ => None,
        })
        .collect();
    Reply::raw(engine::show_activity(now_us(), &shards))
}

async fn show_pools(ctx: &Ctx) -> Reply {
    let pools: Vec<ringlb_shard::live::Pools> = ask(ctx, EngineQuery::Pools)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| match r {
            EngineReply::Pools(p) => Some(p),
            _ => None,
        })
        .collect();
    let sum = |f: &dyn Fn(&ringlb_shard::live::Pools) -> u64| pools.iter().map(f).sum::<u64>();
    let rx_alloc = sum(&|p| p.rx_bufs);
    let rx_used = sum(&|p| p.rx_lent);
    let slots = sum(&|p| p.sess_slots);
    let slots_used = sum(&|p| p.sess_used);
    let scratch = sum(&|p| p.scratch_free);
    let rows = [
        PoolRow {
            name: "uring_rxbuf",
            size: usize::try_from(pools.first().map_or(0, |p| p.rx_buf_size)).unwrap_or(0),
            allocated: rx_alloc,
            used: rx_used,
            cached: rx_alloc.saturating_sub(rx_used),
            addr: 0x1,
        },
        PoolRow {
            name: "sess_slot",
            size: ringlb_shard::live::SLOT_SIZE,
            allocated: slots,
            used: slots_used,
            cached: slots.saturating_sub(slots_used),
            addr: 0x2,
        },
        PoolRow {
            name: "scratch",
            size: std::mem::size_of::<ringlb_shard::http::Scratch>(),
            allocated: scratch,
            used: 0,
            cached: scratch,
            addr: 0x3,
        },
    ];
    Reply::raw(engine::show_pools(&rows))
}

/// `show errors [<proxy>|-1] [request|response]`: the last invalid request of each frontend
/// and response of each backend, from every shard (the newest when several shards caught one).
async fn show_errors(ctx: &Ctx, proxy: Option<&str>, dir: ErrorDir) -> Reply {
    let topo = ctx.topo();
    // A name, else a proxy id (haproxy's atoi; 0 is no proxy).
    let wanted: Option<u32> = match proxy {
        None => None,
        Some(name) => match topo.proxies.iter().find(|p| p.name == name) {
            Some(p) => Some(p.id),
            // Any non-zero number is taken, even one no proxy has (haproxy 2.6).
            None => match u32::try_from(ringlb_runtime::command::atoi(name)) {
                Ok(n) if n != 0 => Some(n),
                _ => return Reply::err("No such proxy.\n"),
            },
        },
    };
    let mut caps: Vec<ringlb_shard::live::Capture> = ask(ctx, EngineQuery::Errors)
        .await
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| match r {
            EngineReply::Errors(v) => v,
            _ => Vec::new(),
        })
        .collect();
    // Newest first, so the dedup below keeps the newest per proxy and direction.
    caps.sort_by_key(|c| std::cmp::Reverse(c.event));
    let mut rows: Vec<(u32, ErrorRow)> = Vec::new();
    for c in caps {
        let (pid, pname) = if c.response {
            let Some(b) = c.backend else { continue };
            let name = topo.backends.get(b).map_or("", |x| x.name.as_str());
            (proxy_id(&topo, None, Some(b)), name.to_string())
        } else {
            let name = topo
                .frontends
                .get(c.frontend)
                .map_or("", |x| x.name.as_str());
            (proxy_id(&topo, Some(c.frontend), None), name.to_string())
        };
        if rows
            .iter()
            .any(|(_, r)| r.response == c.response && r.proxy.1 == pid)
        {
            continue;
        }
        if wanted.is_some_and(|w| w != pid) {
            continue;
        }
        let other = if c.response {
            topo.frontends
                .get(c.frontend)
                .map(|f| (f.name.clone(), proxy_id(&topo, Some(c.frontend), None)))
        } else {
            c.backend.and_then(|b| {
                topo.backends
                    .get(b)
                    .map(|x| (x.name.clone(), proxy_id(&topo, None, Some(b))))
            })
        };
        let server = c
            .backend
            .zip(c.server)
            .and_then(|(b, s)| server_facts(ctx, b, s))
            .map(|(n, id, _)| (n, id));
        rows.push((
            pid,
            ErrorRow {
                date: date(c.when_unix_us, 3),
                response: c.response,
                proxy: (pname, pid),
                other,
                server,
                event: c.event,
                src: addr(c.src),
                bufsize: topo.tune.bufsize,
                error_pos: c.error_pos,
                msg_state: c.msg_state,
                bytes: c.bytes,
            },
        ));
    }
    // By proxy id, the request before the response within one proxy.
    rows.sort_by_key(|(pid, r)| (*pid, r.response));
    let rows: Vec<ErrorRow> = rows.into_iter().map(|(_, r)| r).collect();
    let filter = match dir {
        ErrorDir::Both => ErrorFilter::Both,
        ErrorDir::Request => ErrorFilter::Request,
        ErrorDir::Response => ErrorFilter::Response,
    };
    let text = engine::show_errors(&date(now_us(), 3), ctx.board.error_events(), &rows, filter);
    Reply::raw(text)
}
