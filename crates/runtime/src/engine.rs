//! Outputs of the engine commands (`show sess`, `show activity`, `show pools`, `show errors`)
//! in HAProxy 2.6's formats. The control shard gathers the facts from every shard and resolves
//! names; these functions only print. Fields HAProxy prints that ringlb has no meaning for are
//! printed as fixed placeholders (docs/runtime-api.md lists them).

use std::fmt::Write as _;

/// One live stream (a client connection of a shard), names resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessRow {
    /// The id `shutdown session` takes (printed like HAProxy's pointer, `0x...`).
    pub id: u64,
    /// Sequence number of the stream on its shard (`id=` of `show sess <id>`).
    pub uniq: u64,
    /// `tcpv4`, `tcpv6` or `unix_stream`.
    pub proto: &'static str,
    /// Client address `ip:port`.
    pub src: String,
    /// `[dd/Mon/yyyy:hh:mm:ss.uuuuuu]` of the accept, local time.
    pub accept_date: String,
    pub fe: String,
    pub fe_id: u32,
    pub fe_mode: &'static str,
    pub listener_id: u32,
    /// The address the client connected to.
    pub fe_addr: String,
    /// Backend name, id and mode once one is chosen.
    pub be: Option<(String, u32, &'static str)>,
    /// Server name, id and address once one is chosen.
    pub srv: Option<(String, u32, String)>,
    pub age_s: u64,
    /// Requests the stream carried so far (HAProxy: task calls).
    pub calls: u64,
    /// Client and server socket descriptors (-1: none).
    pub fd_front: i32,
    pub fd_back: i32,
    /// Shard owning the stream (HAProxy's `tmask` bit).
    pub shard: usize,
}

/// `show sess`: one line per stream, as haproxy 2.6's `cli_io_handler_dump_sess`.
pub fn sess_line(r: &SessRow, out: &mut String) {
    let (be, srv) = match (&r.be, &r.srv) {
        (Some((b, _, _)), Some((s, _, _))) => (b.as_str(), s.as_str()),
        (Some((b, _, _)), None) => (b.as_str(), "<none>"),
        _ => ("<NONE>", "<none>"),
    };
    let _ = writeln!(
        out,
        "{:#x}: proto={} src={} fe={} be={} srv={} ts=00 epoch={:#x} age={} calls={} rate=0 \
         cpu=0 lat=0 rq[f=0h,i=0,an=00h,rx=,wx=,ax=] rp[f=0h,i=0,an=00h,rx=,wx=,ax=] \
         scf=[8,0h,fd={}] scb=[8,0h,fd={}] exp= rc=0 c_exp=",
        r.id,
        r.proto,
        r.src,
        r.fe,
        be,
        srv,
        r.uniq,
        human_secs(r.age_s),
        r.calls,
        r.fd_front,
        r.fd_back
    );
}

/// `show sess <id>` / `show sess all`: the first lines of haproxy 2.6's full dump (stream,
/// frontend, backend, server, task); the stream-connector and buffer details it prints after
/// them describe haproxy's internals and are left out.
pub fn sess_full(r: &SessRow, out: &mut String) {
    let _ = writeln!(
        out,
        "{:#x}: {} id={} proto={} source={}",
        r.id, r.accept_date, r.uniq, r.proto, r.src
    );
    let _ = writeln!(
        out,
        "  flags=0x0, conn_retries=0, conn_exp=<NEVER> conn_et=0x000 srv_conn={}, pend_pos=(nil) waiting=0 epoch={:#x}",
        if r.srv.is_some() { "0x1" } else { "(nil)" },
        r.uniq
    );
    let _ = writeln!(
        out,
        "  frontend={} (id={} mode={}), listener=? (id={}) addr={}",
        r.fe, r.fe_id, r.fe_mode, r.listener_id, r.fe_addr
    );
    match &r.be {
        Some((name, id, mode)) => {
            let _ = writeln!(out, "  backend={name} (id={id} mode={mode})");
        }
        None => out.push_str("  backend=<NONE> (id=-1 mode=-)\n"),
    }
    match &r.srv {
        Some((name, id, addr)) => {
            let _ = writeln!(out, "  server={name} (id={id}) addr={addr}");
        }
        None => out.push_str("  server=<NONE> (id=-1)\n"),
    }
    let _ = writeln!(
        out,
        "  task={:#x} (state=0x00 nice=0 calls={} rate=0 exp=<NEVER> tmask={:#x} age={})",
        r.id,
        r.calls,
        1u64 << (r.shard % 64),
        human_secs(r.age_s)
    );
}

/// HAProxy's `human_time` for whole seconds: `0s`, `59s`, `1m5s`, `2h3m`, `1d4h`.
pub fn human_secs(s: u64) -> String {
    let (d, h, m, sec) = (s / 86400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    let mut out = String::new();
    if d > 0 {
        let _ = write!(out, "{d}d");
        if h > 0 {
            let _ = write!(out, "{h}h");
        }
        return out;
    }
    if h > 0 {
        let _ = write!(out, "{h}h");
        if m > 0 {
            let _ = write!(out, "{m}m");
        }
        return out;
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
        if sec > 0 {
            let _ = write!(out, "{sec}s");
        }
        return out;
    }
    let _ = write!(out, "{sec}s");
    out
}

/// What one shard measured for `show activity` (haproxy's per-thread columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardActivity {
    /// Tasks the executor ran (haproxy `ctxsw` and `tasksw`).
    pub tasks: u64,
    /// Scheduler rounds (haproxy `loops`).
    pub loops: u64,
    /// io_uring completions reaped... not measured: ring wake-ups (haproxy `poll_io`).
    pub poll_io: u64,
    /// Requests and TCP sessions served (haproxy `stream_calls`).
    pub streams: u64,
    /// Average time of a scheduler round, µs (haproxy `avg_loop_us`).
    pub avg_loop_us: u64,
    /// Connections accepted (haproxy `accepted`).
    pub accepted: u64,
}

/// How one `show activity` row reads a shard's figures.
type Measure = dyn Fn(&ShardActivity) -> u64;

/// `show activity`: haproxy 2.6's counters, one column per shard. Counters ringlb has no
/// equivalent for are 0 (docs/runtime-api.md).
pub fn show_activity(date_now_us: u64, shards: &[ShardActivity]) -> String {
    let n = shards.len().max(1);
    let mut out = format!(
        "thread_id: 1 (1..{n})\ndate_now: {}.{:06}\n",
        date_now_us / 1_000_000,
        date_now_us % 1_000_000
    );
    let zero = |_: &ShardActivity| 0u64;
    let rows: [(&str, &Measure); 24] = [
        ("ctxsw", &|a| a.tasks),
        ("tasksw", &|a| a.tasks),
        ("empty_rq", &zero),
        ("long_rq", &zero),
        ("loops", &|a| a.loops),
        ("wake_tasks", &zero),
        ("wake_signal", &zero),
        ("poll_io", &|a| a.poll_io),
        ("poll_exp", &zero),
        ("poll_drop_fd", &zero),
        ("poll_skip_fd", &zero),
        ("conn_dead", &zero),
        ("stream_calls", &|a| a.streams),
        ("pool_fail", &zero),
        ("buf_wait", &zero),
        ("cpust_ms_tot", &zero),
        ("cpust_ms_1s", &zero),
        ("cpust_ms_15s", &zero),
        ("avg_loop_us", &|a| a.avg_loop_us),
        ("accepted", &|a| a.accepted),
        ("accq_pushed", &zero),
        ("accq_full", &zero),
        ("accq_ring", &zero),
        ("fd_takeover", &zero),
    ];
    for (name, f) in rows {
        let v: Vec<u64> = shards.iter().map(f).collect();
        // avg_loop_us is an average over threads; the rest are sums.
        let tot = if name == "avg_loop_us" {
            v.iter().sum::<u64>() / n as u64
        } else {
            v.iter().sum()
        };
        let _ = write!(out, "{name}: {tot}");
        if n > 1 {
            out.push_str(" [");
            for x in &v {
                let _ = write!(out, " {x}");
            }
            out.push_str(" ]");
        }
        out.push('\n');
    }
    out
}

/// One memory pool for `show pools`, summed over shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    /// At most 11 characters, as haproxy prints them.
    pub name: &'static str,
    pub size: usize,
    pub allocated: u64,
    pub used: u64,
    /// Free objects kept in the shards' caches.
    pub cached: u64,
    /// `[SHARED]` in haproxy: one pool per process; ringlb's are per shard (false).
    pub addr: u64,
}

/// `show pools` in haproxy 2.6's layout, smallest objects first.
pub fn show_pools(pools: &[PoolRow]) -> String {
    let mut sorted: Vec<&PoolRow> = pools.iter().collect();
    sorted.sort_by_key(|p| p.size);
    let mut out = String::from("Dumping pools usage. Use SIGQUIT to flush them.\n");
    let (mut alloc, mut used, mut cached) = (0u64, 0u64, 0u64);
    for p in &sorted {
        let size = p.size as u64;
        let _ = writeln!(
            out,
            "  - Pool {} ({} bytes) : {} allocated ({} bytes), {} used (~{} by thread caches), needed_avg {}, 0 failures, 1 users, @{:#x}",
            p.name,
            p.size,
            p.allocated,
            p.allocated * size,
            p.used,
            p.cached,
            p.used,
            p.addr
        );
        alloc += p.allocated * size;
        used += p.used * size;
        cached += p.cached * size;
    }
    let _ = writeln!(
        out,
        "Total: {} pools, {alloc} bytes allocated, {used} used (~{cached} by thread caches).",
        sorted.len()
    );
    out
}

/// One captured invalid message (`show errors`), names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRow {
    /// `[dd/Mon/yyyy:hh:mm:ss.mmm]` of the capture.
    pub date: String,
    /// True: a response captured on a backend; false: a request on a frontend.
    pub response: bool,
    /// The proxy holding the capture and its id.
    pub proxy: (String, u32),
    /// The other side: the backend of a request (None: `<NONE>`), the frontend of a response.
    pub other: Option<(String, u32)>,
    pub server: Option<(String, u32)>,
    pub event: u32,
    pub src: String,
    /// `tune.bufsize`: free space and wrap point are computed from it.
    pub bufsize: usize,
    pub error_pos: usize,
    /// HAProxy's H1 parser state at the error (name, number).
    pub msg_state: (&'static str, u32),
    pub bytes: Vec<u8>,
}

/// Which captures `show errors` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFilter {
    Both,
    Request,
    Response,
}

/// `show errors`: the header with the count of captures, then each capture as haproxy 2.6
/// prints it (`rows` in the order to print: by proxy id, request before response). `total`
/// counts every capture since start, replaced ones included.
pub fn show_errors(now_date: &str, total: u32, rows: &[ErrorRow], filter: ErrorFilter) -> String {
    let mut out = format!("Total events captured on {now_date} : {total}\n");
    for r in rows {
        let wanted = match filter {
            ErrorFilter::Both => true,
            ErrorFilter::Request => !r.response,
            ErrorFilter::Response => r.response,
        };
        if wanted {
            error_entry(r, &mut out);
        }
    }
    out
}

fn error_entry(r: &ErrorRow, out: &mut String) {
    let name_id = |x: &Option<(String, u32)>| match x {
        Some((n, id)) => format!("{n} (#{id})"),
        None => "<NONE> (#-1)".to_string(),
    };
    let (kind, other_kind, what) = if r.response {
        ("backend", "frontend", "response")
    } else {
        ("frontend", "backend", "request")
    };
    let _ = writeln!(
        out,
        " \n{} {kind} {} (#{}): invalid {what}",
        r.date, r.proxy.0, r.proxy.1
    );
    let _ = writeln!(
        out,
        "  {other_kind} {}, server {}, event #{}, src {}",
        name_id(&r.other),
        name_id(&r.server),
        r.event,
        r.src
    );
    let len = r.bytes.len();
    let _ = writeln!(
        out,
        "  buffer starts at 0 (including 0 out), {} free,",
        r.bufsize.saturating_sub(len)
    );
    // haproxy's HTX buffers wrap 48 bytes (the HTX header) before their end.
    let _ = writeln!(
        out,
        "  len {len}, wraps at {}, error at position {}",
        r.bufsize.saturating_sub(48),
        r.error_pos
    );
    let (h1c, h1s, h1m) = if r.response {
        (0x8000_2200u32, 0x0000_4810u32, 0x0000_1414u32)
    } else {
        (0x0000_0100, 0x0000_0810, 0x0000_1410)
    };
    let _ = writeln!(
        out,
        "  H1 connection flags 0x{h1c:08x}, H1 stream flags 0x{h1s:08x}"
    );
    let _ = writeln!(
        out,
        "  H1 msg state {}({}), H1 msg flags 0x{h1m:08x}",
        r.msg_state.0, r.msg_state.1
    );
    out.push_str("  H1 chunk len 0 bytes, H1 body len 0 bytes :\n  \n");
    let mut ptr = 0;
    let mut line = 0;
    while ptr < len {
        ptr = dump_text_line(out, &r.bytes, &mut line, ptr);
    }
}

/// haproxy's `dump_text_line`: `  <offset><' '|'+'> ` then the bytes up to the next LF
/// (escaped: `\t \n \r \e \\`, other non-printables `\xHH`), at most about 80 columns; a line
/// cut for length goes on with `+` after its offset.
fn dump_text_line(out: &mut String, buf: &[u8], line: &mut usize, mut ptr: usize) -> usize {
    let start = out.len();
    let _ = write!(out, "  {ptr:05}{} ", if ptr == *line { ' ' } else { '+' });
    let end = start + 80;
    while let Some(&c) = buf.get(ptr) {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            if out.len() > end - 2 {
                break;
            }
            out.push(char::from(c));
        } else if matches!(c, b'\t' | b'\n' | b'\r' | 0x1b | b'\\') {
            if out.len() > end - 3 {
                break;
            }
            out.push('\\');
            out.push(match c {
                b'\t' => 't',
                b'\n' => 'n',
                b'\r' => 'r',
                0x1b => 'e',
                _ => '\\',
            });
        } else {
            if out.len() > end - 5 {
                break;
            }
            let _ = write!(out, "\\x{c:02X}");
        }
        ptr += 1;
        if c == b'\n' {
            out.push('\n');
            *line = ptr;
            return ptr;
        }
    }
    out.push('\n');
    ptr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_time_as_haproxy() {
        assert_eq!(human_secs(0), "0s");
        assert_eq!(human_secs(59), "59s");
        assert_eq!(human_secs(65), "1m5s");
        assert_eq!(human_secs(120), "2m");
        assert_eq!(human_secs(3600 * 2 + 180), "2h3m");
        assert_eq!(human_secs(86400 + 4 * 3600 + 5), "1d4h");
    }

    #[test]
    fn list_line_has_haproxy_fields() {
        let r = SessRow {
            id: 0x1_0000_0001,
            uniq: 2,
            proto: "tcpv4",
            src: "127.0.0.1:55840".into(),
            fe: "fe_main".into(),
            be: Some(("be_app".into(), 3, "http")),
            srv: Some(("s1".into(), 1, "127.0.0.1:18081".into())),
            age_s: 1,
            calls: 2,
            fd_front: 12,
            fd_back: -1,
            ..SessRow::default()
        };
        let mut out = String::new();
        sess_line(&r, &mut out);
        assert_eq!(
            out,
            "0x100000001: proto=tcpv4 src=127.0.0.1:55840 fe=fe_main be=be_app srv=s1 ts=00 \
             epoch=0x2 age=1s calls=2 rate=0 cpu=0 lat=0 rq[f=0h,i=0,an=00h,rx=,wx=,ax=] \
             rp[f=0h,i=0,an=00h,rx=,wx=,ax=] scf=[8,0h,fd=12] scb=[8,0h,fd=-1] exp= rc=0 c_exp=\n"
        );
    }

    #[test]
    fn activity_columns_per_shard_and_totals() {
        let a = ShardActivity {
            tasks: 64,
            loops: 34,
            accepted: 10,
            avg_loop_us: 21,
            ..Default::default()
        };
        let b = ShardActivity {
            tasks: 57,
            loops: 28,
            accepted: 5,
            avg_loop_us: 3,
            ..Default::default()
        };
        let out = show_activity(1_795_528_088_844_635, &[a, b]);
        assert!(out.starts_with(
            "thread_id: 1 (1..2)\ndate_now: 1795528088.844635\nctxsw: 121 [ 64 57 ]\n"
        ));
        assert!(out.contains("\nloops: 62 [ 34 28 ]\n"));
        assert!(out.contains("\navg_loop_us: 12 [ 21 3 ]\n"));
        assert!(out.contains("\naccepted: 15 [ 10 5 ]\n"));
        assert!(out.ends_with("fd_takeover: 0 [ 0 0 ]\n"));
        assert_eq!(out.lines().count(), 26);
        // One thread: no brackets.
        assert!(show_activity(0, &[a]).contains("\nloops: 34\n"));
    }

    /// The request haproxy 2.6 captured in tests/fixtures (recorded with scripts/record).
    #[test]
    fn error_dump_matches_haproxy_layout() {
        let r = ErrorRow {
            date: "[24/Nov/2026:13:48:18.757]".into(),
            response: false,
            proxy: ("fe_main".into(), 2),
            other: None,
            server: None,
            event: 1,
            src: "127.0.0.1:36010".into(),
            bufsize: 16384,
            error_pos: 28,
            msg_state: ("MSG_HDR_NAME", 17),
            bytes: b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_vec(),
        };
        let out = show_errors("[24/Nov/2026:13:48:18.765]", 2, &[r], ErrorFilter::Both);
        assert_eq!(
            out,
            "Total events captured on [24/Nov/2026:13:48:18.765] : 2\n \n\
             [24/Nov/2026:13:48:18.757] frontend fe_main (#2): invalid request\n\
             \x20 backend <NONE> (#-1), server <NONE> (#-1), event #1, src 127.0.0.1:36010\n\
             \x20 buffer starts at 0 (including 0 out), 16342 free,\n\
             \x20 len 42, wraps at 16336, error at position 28\n\
             \x20 H1 connection flags 0x00000100, H1 stream flags 0x00000810\n\
             \x20 H1 msg state MSG_HDR_NAME(17), H1 msg flags 0x00001410\n\
             \x20 H1 chunk len 0 bytes, H1 body len 0 bytes :\n\
             \x20 \n\
             \x20 00000  GET / HTTP/1.1\\r\\n\n\
             \x20 00016  Host: x\\r\\n\n\
             \x20 00025  Bad Header: y\\r\\n\n\
             \x20 00040  \\r\\n\n"
        );
        assert_eq!(
            show_errors("[x]", 0, &[], ErrorFilter::Both),
            "Total events captured on [x] : 0\n"
        );
    }

    #[test]
    fn long_lines_continue_with_plus() {
        let mut out = String::new();
        let bytes = vec![b'a'; 100];
        let mut line = 0;
        let mut ptr = 0;
        while ptr < bytes.len() {
            ptr = dump_text_line(&mut out, &bytes, &mut line, ptr);
        }
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("  00000  aaa"));
        assert!(lines[1].starts_with("  00070+ aaa"), "{}", lines[1]);
        assert!(lines[0].len() <= 80);
    }
}
