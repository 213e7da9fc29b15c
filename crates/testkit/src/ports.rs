//! Loopback ports for tests: never hard-coded, never handed out twice by one process.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free TCP port on 127.0.0.1: bind port 0, read the port, close. The process
/// remembers every port it handed out and never returns one twice. Another process may
/// still take it before the caller binds; tests that can should bind port 0 themselves.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => panic!("free_port: cannot bind 127.0.0.1:0: {e}"),
        };
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("free_port: no new port after 1000 tries")
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A loopback address where connections never complete: a listener that never accepts,
/// its accept queue shrunk to nothing (`listen(fd, 0)`) and filled, so the kernel drops the
/// SYNs of further connects (they time out: a server too busy to answer). Closed on drop.
pub struct UnansweredAddr {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _fill: Vec<std::net::TcpStream>,
}

impl UnansweredAddr {
    pub fn new() -> UnansweredAddr {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("UnansweredAddr: cannot bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("UnansweredAddr: {e}"),
        };
        // SAFETY: listen(2) on a socket this listener owns; it only changes the backlog.
        let rc = unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 0) };
        assert_eq!(rc, 0, "listen(fd, 0): {}", std::io::Error::last_os_error());
        // The queue holds one connection: fill it (a second try makes sure).
        let fill = (0..2)
            .filter_map(|_| {
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
                    .ok()
            })
            .collect();
        UnansweredAddr {
            addr,
            _listener: listener,
            _fill: fill,
        }
    }
}

impl Default for UnansweredAddr {
    fn default() -> Self {
        UnansweredAddr::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanswered_addr_times_connects_out() {
        let u = UnansweredAddr::new();
        let r =
            std::net::TcpStream::connect_timeout(&u.addr, std::time::Duration::from_millis(300));
        assert_eq!(
            r.map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::TimedOut)
        );
    }

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_ports(50);
        let set: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(set.len(), 50);
        for p in ports.iter().take(5) {
            TcpListener::bind(("127.0.0.1", *p)).unwrap();
        }
    }
}
