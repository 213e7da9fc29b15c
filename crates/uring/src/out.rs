//! Write-only descriptors for log lines: connected datagram sockets (syslog over UDP or a UNIX
//! socket) and inherited descriptors (`stdout`, `stderr`, `fd@N`). Writes go through the ring,
//! so a slow log target never blocks the shard; the caller bounds what it queues.

use std::io;
use std::mem::ManuallyDrop;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use io_uring::{opcode, types::Fd};

use crate::driver::{Hold, Ring};
use crate::op::{Op, SendBuf};

/// A descriptor lines are written to, one `write` per line (a datagram on sockets).
pub struct OutFd {
    ring: Ring,
    fd: RawFd,
    /// Owned descriptors are closed through the ring on drop; inherited ones are left open.
    owned: Option<ManuallyDrop<OwnedFd>>,
}

impl Drop for OutFd {
    fn drop(&mut self) {
        if self.owned.is_some() {
            self.ring.close_fd(self.fd);
        }
    }
}

impl OutFd {
    /// A UDP socket connected to `addr` (connecting a datagram socket only sets its peer).
    pub fn udp(ring: &Ring, addr: SocketAddr) -> io::Result<OutFd> {
        let local: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(local)?;
        sock.connect(addr)?;
        Ok(OutFd::owned(ring, OwnedFd::from(sock)))
    }

    /// A datagram UNIX socket connected to `path` (`/dev/log`).
    pub fn unix(ring: &Ring, path: &Path) -> io::Result<OutFd> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        Ok(OutFd::owned(ring, OwnedFd::from(sock)))
    }

    /// An inherited descriptor (`stdout` is 1), not closed on drop.
    pub fn inherited(ring: &Ring, fd: RawFd) -> OutFd {
        OutFd {
            ring: ring.clone(),
            fd,
            owned: None,
        }
    }

    fn owned(ring: &Ring, fd: OwnedFd) -> OutFd {
        let raw = fd.as_raw_fd();
        OutFd {
            ring: ring.clone(),
            fd: raw,
            owned: Some(ManuallyDrop::new(fd)),
        }
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd
    }

    /// Writes the buffer once (a whole datagram on sockets; possibly partial on a pipe).
    pub async fn write(&self, buf: SendBuf) -> (io::Result<usize>, SendBuf) {
        let rest = buf.remaining();
        // Offset -1: the descriptor's current position (pipes, terminals, sockets).
        let entry = opcode::Write::new(Fd(self.fd), rest.as_ptr(), rest.len() as u32)
            .offset(u64::MAX)
            .build();
        let c = Op::submit(&self.ring, entry, Hold::Send(buf)).await;
        let Hold::Send(mut buf) = c.hold else {
            return (
                Err(io::Error::other("write lost its buffer")),
                SendBuf::from_vec(Vec::new()),
            );
        };
        if c.result < 0 {
            return (Err(io::Error::from_raw_os_error(-c.result)), buf);
        }
        buf.advance(c.result as usize);
        (Ok(c.result as usize), buf)
    }
}
