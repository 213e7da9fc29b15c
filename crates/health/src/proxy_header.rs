//! The PROXY protocol header HAProxy 2.6 puts in front of a health check with
//! `check-send-proxy` (captured from haproxy: `traces/proxy-2.6.txt`): version 1 names the
//! check connection's own addresses (`PROXY TCP4 <local> <server> <lport> <sport>`);
//! version 2 (the server has `send-proxy-v2`) is a `LOCAL` command without addresses.

use std::net::SocketAddr;

/// The 12-byte signature of PROXY protocol version 2.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\x00\r\nQUIT\n";

/// Version 1 line for a connection from `local` to `server`.
pub fn v1(local: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let line = match (local, server) {
        (SocketAddr::V4(l), SocketAddr::V4(s)) => format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            l.ip(),
            s.ip(),
            l.port(),
            s.port()
        ),
        (SocketAddr::V6(l), SocketAddr::V6(s)) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            l.ip(),
            s.ip(),
            l.port(),
            s.port()
        ),
        _ => "PROXY UNKNOWN\r\n".to_string(),
    };
    line.into_bytes()
}

/// Version 2 `LOCAL` header (health checks carry no client).
pub fn v2_local() -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn matches_haproxy_captures() {
        // traces/proxy-2.6.txt
        let l: SocketAddr = "127.0.0.1:55822".parse().unwrap();
        let s: SocketAddr = "127.0.0.1:23411".parse().unwrap();
        assert_eq!(
            hex(&v1(l, s)),
            "50524f58592054435034203132372e302e302e31203132372e302e302e312035353832322032333431310d0a"
        );
        assert_eq!(hex(&v2_local()), "0d0a0d0a000d0a515549540a20000000");
        let l6: SocketAddr = "[::1]:1000".parse().unwrap();
        let s6: SocketAddr = "[::1]:2000".parse().unwrap();
        assert_eq!(v1(l6, s6), b"PROXY TCP6 ::1 ::1 1000 2000\r\n");
    }
}
