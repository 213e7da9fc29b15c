//! The runtime socket (issue #10): HAProxy's `stats socket` served by the control shard.
//!
//! ```text
//!   stats socket lines ─▶ CliPlan::from_config ─▶ bind (control executor, before privileges drop)
//!   accept ─▶ one task per connection ─▶ ringlb_runtime::CliSession (framing, levels, help)
//!        Request::Run ─▶ exec::run: servers ─▶ ServerTable + health Board + broadcast to shards
//!                                   stats   ─▶ PublishStats, poll the StatsBoard, render
//!                                   engine  ─▶ ControlMsg::Engine to every shard (cli/engine.rs)
//! ```
//!
//! Nothing here blocks the control executor: sockets are glommio's, waits are glommio timers,
//! and the shared state (`ServerTable`, mirror `ShardState`) is only borrowed between awaits.

mod dynamic;
mod engine;
mod exec;
pub(crate) mod patterns;
pub mod restore;
mod table;
mod tables;
mod tls;

use std::cell::Cell;
use std::ffi::CString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ringlb_config::model::Config;
// Runtime-socket connections accepted since start, where the exporter (on a shard) reads
// them too.
use ringlb_runtime::{CliSession, Level, SessionConfig, SeverityOutput};
use ringlb_shard::counters::CLI_SESSIONS;

pub(crate) use exec::barrier;
pub use exec::{Bus, Ctx};
pub use table::{build_table, set_threads};
pub use tls::build_store as build_cert_store;

/// HAProxy's default `stats timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// HAProxy's default `stats maxconn`.
pub const DEFAULT_MAXCONN: u32 = 10;

/// Where a `stats socket` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliAddr {
    /// A UNIX stream socket at this path.
    Unix(PathBuf),
    /// A TCP address (`ipv4@`, `ipv6@` or a bare `addr:port`).
    Tcp(SocketAddr),
}

/// One `stats socket` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub addr: CliAddr,
    /// `mode` (octal) of a UNIX socket file.
    pub mode: Option<u32>,
    /// Owner of a UNIX socket file (`uid` or `user`).
    pub uid: Option<u32>,
    /// Group of a UNIX socket file (`gid` or `group`).
    pub gid: Option<u32>,
    /// `level` (operator when absent, as HAProxy).
    pub level: Level,
    /// The line's own `maxconn`, if any (the global `stats maxconn` applies too).
    pub maxconn: Option<u32>,
    /// `severity-output`: how the socket's sessions start (`set severity-output` changes it).
    pub severity: SeverityOutput,
    /// `expose-fd listeners`: `_getsocks` hands the listening sockets to a new process
    /// (`ringlb_shard::handoff`).
    pub expose_fd: bool,
}

/// Every runtime socket of a configuration.
#[derive(Debug, Clone)]
pub struct CliPlan {
    pub sockets: Vec<SocketSpec>,
    /// `stats timeout`: idle time before a connection is closed.
    pub timeout: Duration,
    /// `stats maxconn`: connections served at once, all sockets together.
    pub maxconn: u32,
    /// `tune.bufsize`: longest request line.
    pub bufsize: usize,
    /// The servers as the configuration starts them ([`build_table`]).
    pub table: ringlb_runtime::ServerTable,
    /// Frontends with `option socket-stats`: only their listeners get `show stat` rows.
    pub socket_stats: Vec<String>,
    /// Proxies declaring a `stick-table`.
    pub stick_tables: Vec<String>,
    /// The map and ACL files the configuration loads, with their contents.
    pub patterns: ringlb_runtime::PatRefs,
    /// `resolvers` sections and the servers resolving with them (`crate::dns`).
    pub resolvers: Option<crate::dns::Plan>,
    /// The `peers` sections to run (`crate::peers::plan`).
    pub peers: Vec<crate::peers::PeersPlan>,
}

impl Default for CliPlan {
    fn default() -> Self {
        CliPlan {
            sockets: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            maxconn: DEFAULT_MAXCONN,
            bufsize: ringlb_runtime::session::DEFAULT_BUFSIZE,
            table: ringlb_runtime::ServerTable::default(),
            socket_stats: Vec::new(),
            stick_tables: Vec::new(),
            patterns: ringlb_runtime::PatRefs::default(),
            resolvers: None,
            peers: Vec::new(),
        }
    }
}

impl CliPlan {
    /// No runtime socket.
    pub fn none() -> CliPlan {
        CliPlan::default()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The sockets of the global section; errors are `config : parsing [file:line] : ...`.
    pub fn from_config(cfg: &Config) -> Result<CliPlan, Vec<String>> {
        let g = &cfg.global;
        let mut plan = CliPlan {
            timeout: g.stats_timeout.unwrap_or(DEFAULT_TIMEOUT),
            maxconn: g.stats_maxconn.unwrap_or(DEFAULT_MAXCONN).max(1),
            bufsize: usize::try_from(g.tune.bufsize).unwrap_or(plan_default_bufsize()),
            ..CliPlan::default()
        };
        plan.socket_stats = cfg
            .frontends
            .iter()
            .filter(|f| f.options.other.get("socket-stats") == Some(&true))
            .map(|f| f.name.clone())
            .collect();
        plan.stick_tables = cfg
            .frontends
            .iter()
            .filter(|f| f.stick_table.is_some())
            .map(|f| f.name.clone())
            .chain(
                cfg.backends
                    .iter()
                    .filter(|b| b.stick_table.is_some())
                    .map(|b| b.name.clone()),
            )
            .chain(
                cfg.peers
                    .iter()
                    .flat_map(|p| p.tables.iter().map(|(n, _)| n.clone())),
            )
            .collect();
        if !g.stats_sockets.is_empty() {
            plan.patterns = patterns::build_refs(cfg);
        }
        let mut errors = Vec::new();
        let resolv_conf = std::fs::read_to_string("/etc/resolv.conf").ok();
        match crate::dns::Plan::from_config(cfg, resolv_conf.as_deref()) {
            Ok(p) => plan.resolvers = Some(p),
            Err(e) => errors.extend(e),
        }
        for s in &g.stats_sockets {
            let at = format!("parsing [{}:{}] : 'stats socket'", s.loc.file, s.loc.line);
            match socket_spec(s) {
                Ok(spec) => plan.sockets.push(spec),
                Err(e) => errors.push(format!("{at} : {e}")),
            }
        }
        if errors.is_empty() {
            Ok(plan)
        } else {
            Err(errors)
        }
    }
}

fn plan_default_bufsize() -> usize {
    ringlb_runtime::session::DEFAULT_BUFSIZE
}

/// One `stats socket` line. `unix-bind` does not apply: it is for `bind` lines only, and
/// haproxy 2.6 gives a stats socket neither its prefix nor its mode or owner (checked with the
/// real binary in tests/operations.rs).
fn socket_spec(s: &ringlb_config::model::StatsSocket) -> Result<SocketSpec, String> {
    let level = Level::from_socket_option(s.level.as_deref())
        .ok_or_else(|| format!("unknown level '{}'", s.level.as_deref().unwrap_or("")))?;
    let addr = parse_addr(&s.address)?;
    let mut spec = SocketSpec {
        addr,
        mode: s.mode,
        uid: None,
        gid: None,
        level,
        maxconn: None,
        severity: SeverityOutput::None,
        expose_fd: s.expose_fd_listeners,
    };
    for (k, v) in &s.options {
        let v = v.as_deref().unwrap_or("");
        match k.as_str() {
            "uid" => spec.uid = Some(v.parse().map_err(|_| format!("invalid uid '{v}'"))?),
            "gid" => spec.gid = Some(v.parse().map_err(|_| format!("invalid gid '{v}'"))?),
            "user" => spec.uid = Some(lookup_user(v)?),
            "group" => spec.gid = Some(lookup_group(v)?),
            "maxconn" => {
                spec.maxconn = Some(v.parse().map_err(|_| format!("invalid maxconn '{v}'"))?);
            }
            "severity-output" => {
                spec.severity = SeverityOutput::parse(v)
                    .ok_or_else(|| format!("invalid severity-output '{v}'"))?;
            }
            // Accepted without effect: names and backlogs do not change what the CLI answers.
            "name" | "backlog" | "process" | "thread" => {}
            other => {
                return Err(format!(
                    "'{other}' is not supported on a stats socket by ringlb yet (issue #10)"
                ))
            }
        }
    }
    if matches!(spec.addr, CliAddr::Tcp(_))
        && (spec.mode.is_some() || spec.uid.is_some() || spec.gid.is_some())
    {
        // HAProxy ignores them on TCP sockets too; nothing to apply.
        spec.mode = None;
        spec.uid = None;
        spec.gid = None;
    }
    Ok(spec)
}

/// `/path`, `unix@path`, `ipv4@a:p`, `ipv6@[a]:p` / `ipv6@a:p`, `a:p`.
pub fn parse_addr(text: &str) -> Result<CliAddr, String> {
    if let Some(p) = text.strip_prefix("unix@") {
        return Ok(CliAddr::Unix(PathBuf::from(p)));
    }
    if text.starts_with('/') || text.starts_with("./") {
        return Ok(CliAddr::Unix(PathBuf::from(text)));
    }
    for prefix in ["abns@", "fd@", "sockpair@", "udp@", "quic4@", "quic6@"] {
        if text.starts_with(prefix) {
            return Err(format!(
                "address family '{prefix}' is not supported on a stats socket by ringlb yet"
            ));
        }
    }
    let bare = text
        .strip_prefix("ipv4@")
        .or_else(|| text.strip_prefix("ipv6@"))
        .or_else(|| text.strip_prefix("tcp@"))
        .or_else(|| text.strip_prefix("tcp4@"))
        .or_else(|| text.strip_prefix("tcp6@"))
        .unwrap_or(text);
    if let Ok(a) = bare.parse::<SocketAddr>() {
        return Ok(CliAddr::Tcp(a));
    }
    // `ipv6@::1:9999` (no brackets) and `:port` (any address), as HAProxy writes them.
    if let Some((host, port)) = bare.rsplit_once(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in '{text}'"))?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let ip: std::net::IpAddr = host
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address and port; name resolution is not supported by ringlb yet"))?;
        return Ok(CliAddr::Tcp(SocketAddr::new(ip, port)));
    }
    Ok(CliAddr::Unix(PathBuf::from(text)))
}

fn lookup_user(name: &str) -> Result<u32, String> {
    let c = CString::new(name).map_err(|_| format!("bad user name '{name}'"))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read before any other call.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!("unknown user '{name}'"));
    }
    // SAFETY: non-null pointer from getpwnam.
    Ok(unsafe { (*pw).pw_uid })
}

fn lookup_group(name: &str) -> Result<u32, String> {
    let c = CString::new(name).map_err(|_| format!("bad group name '{name}'"))?;
    // SAFETY: as lookup_user, for getgrnam.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(format!("unknown group '{name}'"));
    }
    // SAFETY: non-null pointer from getgrnam.
    Ok(unsafe { (*gr).gr_gid })
}

/// A bound runtime socket.
pub enum Listener {
    Tcp(glommio::net::TcpListener),
}

/// A runtime socket bound and listening, not yet served: bound by the starting thread before
/// the worker shards accept anything, so the socket is there once the proxy answers.
pub struct Bound(std::os::fd::OwnedFd);

/// Binds one socket; a UNIX socket gets its mode and owner. A stale socket file at the path
/// is replaced (HAProxy does the same through a rename).
pub fn bind(spec: &SocketSpec) -> Result<Bound, String> {
    match &spec.addr {
        // SO_REUSEPORT, as the proxy's listeners: during a master-worker reload the new
        // worker binds the address while the old one still serves it.
        CliAddr::Tcp(a) => ringlb_uring::bind_reuseport(*a, 128)
            .map(Bound)
            .map_err(|e| format!("Starting frontend GLOBAL: cannot bind socket ({e}) [{a}]")),
        CliAddr::Unix(path) => {
            // Bound and listening under a temporary name, then renamed into place, as HAProxy
            // does: the path never names a socket that refuses connections (a client waiting
            // for the file to appear could connect between bind and listen), and a stale
            // socket is replaced atomically.
            let tmp = {
                let mut t = path.as_os_str().to_owned();
                t.push(format!(".{}.tmp", std::process::id()));
                PathBuf::from(t)
            };
            remove_stale_socket(&tmp);
            let l = std::os::unix::net::UnixListener::bind(&tmp).map_err(|e| {
                format!(
                    "Starting frontend GLOBAL: cannot bind UNIX socket ({e}) [{}]",
                    path.display()
                )
            })?;
            let placed = apply_owner_and_mode(&tmp, spec)
                .map_err(|e| ("change UNIX socket ownership", e))
                .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| ("bind UNIX socket", e)));
            if let Err((what, e)) = placed {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!(
                    "Starting frontend GLOBAL: cannot {what} ({e}) [{}]",
                    path.display()
                ));
            }
            Ok(Bound(l.into()))
        }
    }
}

impl Bound {
    /// The listener on the current glommio executor (the control shard's).
    pub fn serve(self) -> Listener {
        use std::os::fd::{FromRawFd, IntoRawFd};
        // glommio's UNIX listener cannot adopt a descriptor; its TCP listener can, and
        // accept(2) works on any stream socket (the streams are only read and written;
        // `_getsocks` needs their descriptors, which glommio's UNIX streams do not give).
        // SAFETY: a bound, listening descriptor we own, given to the listener.
        Listener::Tcp(unsafe { glommio::net::TcpListener::from_raw_fd(self.0.into_raw_fd()) })
    }
}

fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn apply_owner_and_mode(path: &Path, spec: &SocketSpec) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if spec.uid.is_some() || spec.gid.is_some() {
        std::os::unix::fs::chown(path, spec.uid, spec.gid)?;
    }
    if let Some(mode) = spec.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Runtime-socket listeners open now (`show info`'s `Listeners` counts them with the binds).
static CLI_LISTENERS: AtomicU32 = AtomicU32::new(0);

/// Bytes the runtime sockets sent: haproxy counts them in `TotalBytesOut` (its CLI is a
/// proxy like the others).
static CLI_BYTES_OUT: AtomicU64 = AtomicU64::new(0);

/// What the runtime sockets add to `show info`.
#[derive(Debug, Clone, Copy)]
pub struct CliCounts {
    /// Listening runtime sockets.
    pub listeners: u32,
    /// Connections accepted since start.
    pub sessions: u64,
    /// Bytes sent since start.
    pub bytes_out: u64,
}

/// The runtime sockets' counts so far.
pub fn cli_counts() -> CliCounts {
    CliCounts {
        listeners: CLI_LISTENERS.load(Ordering::Relaxed),
        sessions: CLI_SESSIONS.load(Ordering::Relaxed),
        bytes_out: CLI_BYTES_OUT.load(Ordering::Relaxed),
    }
}

/// Keeps [`CLI_LISTENERS`] true while a `serve` loop runs.
struct ListenerCount;

impl ListenerCount {
    fn new() -> ListenerCount {
        CLI_LISTENERS.fetch_add(1, Ordering::Relaxed);
        ListenerCount
    }
}

impl Drop for ListenerCount {
    fn drop(&mut self) {
        CLI_LISTENERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections on `listener` for as long as the control executor runs.
pub async fn serve(ctx: Rc<Ctx>, listener: Listener, spec: SocketSpec) {
    let own = Rc::new(Cell::new(0u32));
    let _counted = ListenerCount::new();
    loop {
        // `stats maxconn` (and the line's own): further clients wait in the backlog.
        while ctx.active.get() >= ctx.maxconn || spec.maxconn.is_some_and(|m| own.get() >= m) {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(Conn::Tcp),
        };
        let conn = match accepted {
            Ok(c) => c,
            Err(_) => {
                // Out of descriptors or a client gone before accept: try again shortly.
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        ctx.active.set(ctx.active.get() + 1);
        CLI_SESSIONS.fetch_add(1, Ordering::Relaxed);
        own.set(own.get() + 1);
        let (c, o, level) = (ctx.clone(), own.clone(), (spec.level, spec.severity));
        let expose = spec.expose_fd && matches!(spec.addr, CliAddr::Unix(_));
        glommio::spawn_local(async move {
            match conn {
                Conn::Tcp(s) if expose => exposing_session(&c, s, level).await,
                Conn::Tcp(s) => session(&c, s, level, Vec::new()).await,
            }
            c.active.set(c.active.get().saturating_sub(1));
            o.set(o.get().saturating_sub(1));
        })
        .detach();
    }
}

enum Conn {
    Tcp(glommio::net::TcpStream),
}

/// Outcome of a read bounded by the idle timeout.
enum Read {
    Data(usize),
    Eof,
    Timeout,
}

async fn read_for<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8], limit: Duration) -> Read {
    let read = async {
        match s.read(buf).await {
            Ok(0) | Err(_) => Read::Eof,
            Ok(n) => Read::Data(n),
        }
    };
    let timer = async {
        glommio::timer::sleep(limit).await;
        Read::Timeout
    };
    futures_lite::future::or(read, timer).await
}

async fn write_for<S: AsyncWrite + Unpin>(s: &mut S, data: &[u8], limit: Duration) -> bool {
    if data.is_empty() {
        return true;
    }
    let write = async { s.write_all(data).await.is_ok() && s.flush().await.is_ok() };
    let timer = async {
        glommio::timer::sleep(limit).await;
        false
    };
    let sent = futures_lite::future::or(write, timer).await;
    if sent {
        CLI_BYTES_OUT.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    sent
}

/// How often a session following a ring looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// `show events <ring> -w`: prints new lines as they come until the client sends anything
/// (haproxy's "Any key to stop"; the bytes are dropped) or closes. Returns whether the
/// session goes on (then the output ends with the blank line of a finished command).
async fn follow_ring<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    mut f: exec::Follow,
    buf: &mut [u8],
    idle: Duration,
) -> bool {
    let mut out = Vec::new();
    loop {
        match read_for(s, buf, FOLLOW_POLL).await {
            Read::Eof => return false,
            Read::Data(_) => return write_for(s, b"\n", idle).await,
            Read::Timeout => {}
        }
        out.clear();
        f.poll(&mut out);
        if !write_for(s, &out, idle).await {
            return false;
        }
    }
}

/// A connection to an `expose-fd listeners` socket: `_getsocks` as its first command hands
/// this process's listening sockets over (haproxy's seamless reload); anything else is an
/// ordinary session.
async fn exposing_session(
    ctx: &Ctx,
    mut s: glommio::net::TcpStream,
    level: (Level, SeverityOutput),
) {
    let mut buf = vec![0u8; 4096];
    let first = match read_for(&mut s, &mut buf, ctx.timeout).await {
        Read::Data(n) => buf.get(..n).unwrap_or(&[]).to_vec(),
        Read::Eof | Read::Timeout => return,
    };
    if first.starts_with(b"_getsocks") {
        use std::os::fd::AsRawFd;
        // Blocking on the control thread for a few syscalls, bounded: the new process is
        // waiting for these sockets before it can serve.
        if let Err(e) = ringlb_shard::handoff::send_sockets(s.as_raw_fd(), Duration::from_secs(5)) {
            eprintln!(
                "[WARNING]  ({}) : Failed to transfer sockets: {e}",
                std::process::id()
            );
        }
        return;
    }
    session(ctx, s, level, first).await;
}

/// One connection: read, run what the session asks, write, until it closes or idles out.
/// `first`: bytes already read from the connection.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &Ctx,
    mut s: S,
    (level, severity): (Level, SeverityOutput),
    first: Vec<u8>,
) {
    let mut sess = CliSession::new(
        level,
        SessionConfig {
            bufsize: ctx.bufsize,
            severity,
            ..SessionConfig::default()
        },
    );
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    let mut first = (!first.is_empty()).then_some(first);
    loop {
        let idle = sess
            .timeout_cli_secs()
            .map_or(ctx.timeout, |secs| Duration::from_secs(u64::from(secs)));
        let read = match first.take() {
            Some(f) => {
                let n = f.len().min(buf.len());
                buf.get_mut(..n)
                    .unwrap_or(&mut [])
                    .copy_from_slice(f.get(..n).unwrap_or(&[]));
                Read::Data(n)
            }
            None => read_for(&mut s, &mut buf, idle).await,
        };
        let reqs = match read {
            Read::Timeout => break,
            Read::Eof => sess.feed_eof(),
            Read::Data(n) => sess.feed(buf.get(..n).unwrap_or(&[])),
        };
        let mut follow = None;
        let mut closing = exec::handle(ctx, &sess, reqs, &mut out, &mut follow).await;
        if !write_for(&mut s, &out, idle).await {
            break;
        }
        out.clear();
        if let Some(f) = follow.take() {
            if !follow_ring(&mut s, f, &mut buf, idle).await {
                break;
            }
            continue;
        }
        while !closing && sess.has_buffered_commands() {
            let reqs = sess.feed(&[]);
            closing = exec::handle(ctx, &sess, reqs, &mut out, &mut follow).await;
            if !write_for(&mut s, &out, idle).await {
                closing = true;
            }
            out.clear();
            if let Some(f) = follow.take() {
                if !closing && !follow_ring(&mut s, f, &mut buf, idle).await {
                    closing = true;
                }
            }
        }
        if closing || sess.is_closed() {
            break;
        }
    }
    drop(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_haproxy_writes_them() {
        assert_eq!(
            parse_addr("/run/ringlb.sock"),
            Ok(CliAddr::Unix("/run/ringlb.sock".into()))
        );
        assert_eq!(
            parse_addr("ipv4@127.0.0.1:9999"),
            Ok(CliAddr::Tcp("127.0.0.1:9999".parse().unwrap()))
        );
        assert_eq!(
            parse_addr("127.0.0.1:9999"),
            Ok(CliAddr::Tcp("127.0.0.1:9999".parse().unwrap()))
        );
        assert_eq!(
            parse_addr("ipv6@::1:9999"),
            Ok(CliAddr::Tcp("[::1]:9999".parse().unwrap()))
        );
        assert_eq!(
            parse_addr("unix@rel.sock"),
            Ok(CliAddr::Unix("rel.sock".into()))
        );
        assert!(parse_addr("abns@x").is_err());
        assert!(parse_addr("host.example:80").is_err());
    }

    #[test]
    fn plan_from_config_levels_timeout_maxconn() {
        let text = "global\n stats socket /tmp/a.sock mode 600 level admin\n stats socket ipv4@127.0.0.1:9999 level user\n stats socket /tmp/b.sock uid 0 gid 0\n stats timeout 2m\n stats maxconn 3\n";
        let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
        let p = CliPlan::from_config(&loaded.config).unwrap();
        assert_eq!(p.timeout, Duration::from_secs(120));
        assert_eq!(p.maxconn, 3);
        assert_eq!(p.sockets.len(), 3);
        assert_eq!(p.sockets[0].level, Level::Admin);
        assert_eq!(p.sockets[0].mode, Some(0o600));
        assert_eq!(p.sockets[1].level, Level::User);
        assert_eq!(p.sockets[2].level, Level::Operator);
        assert_eq!((p.sockets[2].uid, p.sockets[2].gid), (Some(0), Some(0)));
        let none = ringlb_config::parse_str("t.cfg", "global\n").unwrap();
        let p = CliPlan::from_config(&none.config).unwrap();
        assert!(p.is_empty());
        assert_eq!((p.timeout, p.maxconn), (DEFAULT_TIMEOUT, DEFAULT_MAXCONN));
    }
}
