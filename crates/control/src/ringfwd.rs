//! `ring` sections with `server` lines: the ring's contents are forwarded to TCP syslog
//! servers, as haproxy's `sink_forward` applets do: from the oldest line still in the ring,
//! then each new line, framed per the server's `log-proto` (`legacy`: the line and `\n`,
//! haproxy's default; `octet-count`: RFC 6587 `<len> <line>`). A lost connection is opened
//! again (`timeout connect`) and forwarding resumes where it stopped; lines evicted from
//! the ring meanwhile are lost, as in haproxy.
//!
//! One short thread per server with blocking sockets bounded by the ring's timeouts: the
//! control executor never waits on a syslog server, and the shards only push into the ring.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use ringlb_config::model::Config;
use ringlb_shard::topology::LogRing;
use ringlb_shard::Topology;

/// haproxy's defaults for ring servers (`timeout connect`, `timeout server`).
const DEFAULT_CONNECT: Duration = Duration::from_secs(1);
const DEFAULT_SERVER: Duration = Duration::from_secs(5);
/// How often a forwarder looks for new lines.
const POLL: Duration = Duration::from_millis(20);

/// `log-proto` of a ring server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogProto {
    /// Non-transparent framing: each line ends with `\n`.
    Legacy,
    /// Octet counting (RFC 6587): `<length> <line>`.
    OctetCount,
}

/// Frames one ring line for the wire.
pub fn frame(proto: LogProto, line: &[u8], out: &mut Vec<u8>) {
    match proto {
        LogProto::Legacy => {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        LogProto::OctetCount => {
            out.extend_from_slice(format!("{} ", line.len()).as_bytes());
            out.extend_from_slice(line);
        }
    }
}

/// One ring server to feed.
#[derive(Debug, Clone)]
pub struct Forward {
    pub ring: Arc<LogRing>,
    pub addr: SocketAddr,
    pub proto: LogProto,
    pub connect: Duration,
    pub server: Duration,
}

/// The forwarders of every `ring` section's `server` lines. Errors name the ring and server.
pub fn plan(cfg: &Config, topo: &Topology) -> Result<Vec<Forward>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for r in &cfg.rings {
        let Some(ring) = topo.rings.iter().find(|x| x.name == r.name) else {
            continue;
        };
        let timeout = |name: &str, default| {
            r.timeouts
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or(default, |(_, d)| *d)
        };
        for s in &r.servers {
            let addr = s.address.as_str();
            let Some(sa) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
                errors.push(format!(
                    "ring '{}': server '{}': cannot resolve '{addr}'",
                    r.name, s.name
                ));
                continue;
            };
            out.push(Forward {
                ring: ring.clone(),
                addr: sa,
                proto: proto_of(&s.params),
                connect: timeout("connect", DEFAULT_CONNECT),
                server: timeout("server", DEFAULT_SERVER),
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn proto_of(params: &[String]) -> LogProto {
    match params.iter().position(|x| x == "log-proto") {
        Some(i) if params.get(i + 1).map(String::as_str) == Some("octet-count") => {
            LogProto::OctetCount
        }
        _ => LogProto::Legacy,
    }
}

/// Starts one forwarding thread per server.
pub fn start(forwards: Vec<Forward>) {
    for f in forwards {
        let spawned = std::thread::Builder::new()
            .name("ringlb-ringfwd".into())
            .spawn(move || run(&f));
        if let Err(e) = spawned {
            eprintln!(
                "[WARNING]  ({}) : ring forwarder not started: {e}",
                std::process::id()
            );
        }
    }
}

fn run(f: &Forward) {
    // haproxy starts with the oldest line still in the ring.
    let mut seq = 0u64;
    let mut lines = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Ok(mut s) = TcpStream::connect_timeout(&f.addr, f.connect) else {
            std::thread::sleep(f.connect.max(POLL));
            continue;
        };
        if s.set_write_timeout(Some(f.server)).is_err() {
            continue;
        }
        let _ = s.set_nodelay(true);
        loop {
            lines.clear();
            let next = {
                let r = f.ring.lines.lock().unwrap_or_else(|e| e.into_inner());
                r.lines_from(seq, &mut lines)
            };
            if lines.is_empty() {
                std::thread::sleep(POLL);
                continue;
            }
            buf.clear();
            for l in &lines {
                frame(f.proto, l, &mut buf);
            }
            if s.write_all(&buf).is_err() {
                // Sent again on the next connection.
                break;
            }
            seq = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_legacy_and_octet_count() {
        let mut out = Vec::new();
        frame(LogProto::Legacy, b"<134>hello", &mut out);
        frame(LogProto::OctetCount, b"<134>hello", &mut out);
        assert_eq!(out, b"<134>hello\n10 <134>hello");
        let w = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(proto_of(&w("log-proto octet-count")), LogProto::OctetCount);
        assert_eq!(proto_of(&[]), LogProto::Legacy);
    }
}
