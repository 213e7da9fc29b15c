//! Log lines of the control shard (server state changes: "Server be/s1 is DOWN...", "backend
//! be has no server available!") sent to the global `log` targets, as haproxy sends them, at
//! haproxy's levels (alert for DOWN, notice for UP, emerg for an empty backend). Rare events on
//! the control shard: plain non-blocking sockets are enough (the shards use their rings).

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use ringlb_log::{frame, Address, Level, LogSpec, Origin, Timestamp};
use ringlb_shard::Topology;

enum Out {
    Udp(Option<UdpSocket>),
    /// Connected lazily and again after a failure (no syslog daemon yet).
    Unix(Option<UnixDatagram>, PathBuf),
    Fd(i32),
    /// `ring@<name>`: copied into the shared ring (`show events`).
    Ring(Option<std::sync::Arc<ringlb_shard::topology::LogRing>>),
}

/// The global log targets, opened on the control shard.
pub struct ControlLog {
    targets: Vec<(LogSpec, Out)>,
    origin: Origin,
    utc_offset_secs: i32,
    line: Vec<u8>,
}

impl std::fmt::Debug for ControlLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlLog")
            .field("targets", &self.targets.len())
            .finish()
    }
}

impl ControlLog {
    pub fn from_topology(topo: &Topology) -> ControlLog {
        let targets =
            topo.global_log
                .iter()
                .filter_map(|&i| topo.logs.get(i))
                .map(|spec| {
                    let out = match &spec.address {
                        Address::Udp(a) => {
                            let local: std::net::SocketAddr = if a.is_ipv4() {
                                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                            } else {
                                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                            };
                            Out::Udp(UdpSocket::bind(local).ok().filter(|s| {
                                s.connect(a).is_ok() && s.set_nonblocking(true).is_ok()
                            }))
                        }
                        Address::Unix(p) => Out::Unix(None, p.clone()),
                        Address::Fd(n) => Out::Fd(*n),
                        Address::Ring(name) => {
                            Out::Ring(topo.rings.iter().find(|r| r.name == *name).cloned())
                        }
                    };
                    (spec.clone(), out)
                })
                .collect();
        ControlLog {
            targets,
            origin: Origin {
                hostname: topo.log_hostname.clone(),
                tag: topo.log_tag.clone(),
                pid: std::process::id(),
            },
            utc_offset_secs: ringlb_shard::log::local_utc_offset_secs(),
            line: Vec::with_capacity(256),
        }
    }

    /// Sends `msg` at `level` to every target that takes that level; lines that cannot go
    /// now are dropped (logging never blocks).
    pub fn send(&mut self, level: Level, msg: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ts = Timestamp::from_unix(
            now.as_secs() as i64,
            now.subsec_micros(),
            self.utc_offset_secs,
        );
        for (spec, out) in &mut self.targets {
            let Some(level) = spec.effective_level(level) else {
                continue;
            };
            frame(
                &mut self.line,
                spec,
                &self.origin,
                level,
                &ts,
                msg.as_bytes(),
            );
            match out {
                Out::Udp(Some(s)) => {
                    let _ = s.send(&self.line);
                }
                Out::Udp(None) => {}
                Out::Unix(sock, path) => {
                    if sock.is_none() {
                        *sock = UnixDatagram::unbound().ok().filter(|s| {
                            s.connect(&*path).is_ok() && s.set_nonblocking(true).is_ok()
                        });
                    }
                    if let Some(s) = sock {
                        if s.send(&self.line).is_err() {
                            *sock = None;
                        }
                    }
                }
                Out::Ring(Some(r)) => r.push(&self.line),
                Out::Ring(None) => {}
                Out::Fd(n) => {
                    // SAFETY: write(2) from our buffer to a descriptor the configuration named.
                    let _ = unsafe { libc::write(*n, self.line.as_ptr().cast(), self.line.len()) };
                }
            }
        }
    }

    /// haproxy's level for a state-change line of the health checks.
    pub fn level_of_warning(msg: &str) -> Level {
        if msg.contains(" is DOWN") || msg.contains("going DOWN") {
            Level::ALERT
        } else {
            Level::NOTICE
        }
    }
}
