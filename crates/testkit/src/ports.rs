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

#[cfg(test)]
mod tests {
    use super::*;

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
