//! Scenario 8's idle-connection holder: opens N keep-alive connections, sends one request on
//! each, reads the response, and keeps them open (idle) until dropped.

use crate::openloop::response_length;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct IdleHolder {
    conns: Vec<TcpStream>,
}

/// Connections opened and answered per batch (requests of a batch are in flight together).
const BATCH: usize = 200;

impl IdleHolder {
    /// Opens `n` connections to 127.0.0.1:`port`, each answered once on `path`, within `limit`.
    pub fn open(port: u16, n: usize, path: &str, limit: Duration) -> Result<IdleHolder, String> {
        let t0 = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes();
        let mut conns = Vec::with_capacity(n);
        while conns.len() < n {
            if t0.elapsed() > limit {
                return Err(format!(
                    "idle holder: only {} of {n} connections after {limit:?}",
                    conns.len()
                ));
            }
            let batch = BATCH.min(n - conns.len());
            let mut fresh = Vec::with_capacity(batch);
            for _ in 0..batch {
                let mut s =
                    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| {
                        format!("idle holder: connect #{}: {e}", conns.len() + fresh.len())
                    })?;
                s.write_all(&req)
                    .map_err(|e| format!("idle holder: send: {e}"))?;
                fresh.push(s);
            }
            for s in fresh.iter_mut() {
                read_one(s)?;
            }
            conns.extend(fresh);
        }
        Ok(IdleHolder { conns })
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Connections the proxy has not closed (a non-blocking read would block).
    pub fn alive(&self) -> usize {
        let mut buf = [0u8; 64];
        self.conns
            .iter()
            .filter(|s| {
                if s.set_nonblocking(true).is_err() {
                    return false;
                }
                let mut r: &TcpStream = s;
                matches!(r.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock)
            })
            .count()
    }
}

fn read_one(s: &mut TcpStream) -> Result<(), String> {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(512);
    let mut tmp = [0u8; 4096];
    loop {
        let n = s
            .read(&mut tmp)
            .map_err(|e| format!("idle holder: read: {e}"))?;
        if n == 0 {
            return Err("idle holder: connection closed before the response".into());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some((status, len)) = response_length(&buf)? {
            if buf.len() >= len {
                return if status == 200 {
                    Ok(())
                } else {
                    Err(format!("idle holder: status {status}"))
                };
            }
        }
    }
}
