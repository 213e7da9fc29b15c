//! The handshake: the connecting side sends three lines, the accepting side one status line.
//!
//! ```text
//! client → server   HAProxyS 2.1\n
//!                   <name of the server peer>\n
//!                   <name of the client peer> <pid> <relative pid>\n
//! server → client   <status>\n     200 ok, 300 try again later, 501 protocol error,
//!                                  502 bad version, 503 the server is not the peer named,
//!                                  504 the client is not a peer of the server's section
//! ```
//!
//! haproxy 2.6 answers exactly these codes (`tests/fixtures/haproxy26-status.txt`).

/// Protocol name and the version ringlb speaks (haproxy 2.6's).
pub const PROTOCOL: &str = "HAProxyS";
pub const VERSION: &str = "2.1";
/// Longest hello accepted (three short lines).
pub const MAX_HELLO: usize = 1024;

/// A handshake status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    TryAgain,
    ProtocolError,
    BadVersion,
    /// The second line does not name the accepting peer.
    NotMe,
    /// The connecting peer is not in the accepting side's peers section.
    UnknownPeer,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::TryAgain => 300,
            Status::ProtocolError => 501,
            Status::BadVersion => 502,
            Status::NotMe => 503,
            Status::UnknownPeer => 504,
        }
    }

    pub fn from_code(c: u16) -> Option<Status> {
        Some(match c {
            200 => Status::Ok,
            300 => Status::TryAgain,
            501 => Status::ProtocolError,
            502 => Status::BadVersion,
            503 => Status::NotMe,
            504 => Status::UnknownPeer,
            _ => return None,
        })
    }
}

/// The three hello lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The peer being connected to.
    pub to: String,
    /// The connecting peer.
    pub from: String,
    pub pid: u32,
    pub relative_pid: u32,
}

impl Hello {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "{PROTOCOL} {VERSION}\n{}\n{} {} {}\n",
                self.to, self.from, self.pid, self.relative_pid
            )
            .as_bytes(),
        );
    }
}

/// Reads a hello from the start of `buf` and checks it as peer `me`, knowing peers `known`.
/// `Ok(None)`: more bytes needed. `Err(status)`: refuse with that status. `Ok(Some((hello,
/// used)))`: accepted (answer 200).
pub fn read_hello(
    buf: &[u8],
    me: &str,
    known: &dyn Fn(&str) -> bool,
) -> Result<Option<(Hello, usize)>, Status> {
    let mut lines = Vec::with_capacity(3);
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            lines.push(&buf[start..i]);
            start = i + 1;
            if lines.len() == 3 {
                break;
            }
        }
    }
    // Each line is checked as soon as it is complete, as haproxy does.
    if let Some(l) = lines.first() {
        let text = std::str::from_utf8(l).map_err(|_| Status::ProtocolError)?;
        let (proto, version) = text.split_once(' ').ok_or(Status::ProtocolError)?;
        if proto != PROTOCOL {
            return Err(Status::ProtocolError);
        }
        let (major, minor) = version.split_once('.').ok_or(Status::BadVersion)?;
        if major != "2" || minor.parse::<u32>().is_err() {
            return Err(Status::BadVersion);
        }
    }
    if let Some(l) = lines.get(1) {
        if *l != me.as_bytes() {
            return Err(Status::NotMe);
        }
    }
    let Some(l) = lines.get(2) else {
        if buf.len() > MAX_HELLO {
            return Err(Status::ProtocolError);
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(l).map_err(|_| Status::ProtocolError)?;
    let mut w = text.split(' ');
    let from = w.next().unwrap_or_default();
    // Our own name: the process we replace, teaching us its tables before it exits
    // (haproxy's "resync from local old process").
    if !known(from) && from != me {
        return Err(Status::UnknownPeer);
    }
    let pid = w.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let relative_pid = w.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let hello = Hello {
        to: me.to_string(),
        from: from.to_string(),
        pid,
        relative_pid,
    };
    Ok(Some((hello, start)))
}

/// Reads the status line from the start of `buf`: `Ok(None)` when incomplete.
pub fn read_status(buf: &[u8]) -> Result<Option<(Status, usize)>, Status> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > 16 {
            Err(Status::ProtocolError)
        } else {
            Ok(None)
        };
    };
    let code = std::str::from_utf8(&buf[..end])
        .ok()
        .and_then(|t| t.trim().parse::<u16>().ok())
        .and_then(Status::from_code)
        .ok_or(Status::ProtocolError)?;
    Ok(Some((code, end + 1)))
}
