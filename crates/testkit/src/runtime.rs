//! The runtime socket and traffic counts, as the runtime-socket tests use them.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One command on a runtime socket (one command per connection, as socat sends it): everything
/// the proxy printed back before closing.
pub fn runtime_command(sock: &Path, cmd: &str) -> io::Result<String> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Which origin (its `x-origin` header) answered each of `n` GETs, each on a new connection
/// (so both shards serve some). A non-200 answer is an error.
pub fn served_by(front: SocketAddr, n: usize) -> io::Result<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = crate::http_get(front, "/", &[])?;
        if r.status != 200 {
            return Err(io::Error::other(format!("status {}", r.status)));
        }
        *counts
            .entry(r.header("x-origin").unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    Ok(counts)
}

/// `show stat` on the runtime socket at `sock`, servers only: `backend/server` → the values of
/// `columns`, in that order. A column `show stat` does not have is an error.
pub fn server_stats(
    sock: &Path,
    columns: &[&str],
) -> io::Result<std::collections::BTreeMap<String, Vec<String>>> {
    let out = runtime_command(sock, "show stat")?;
    parse_server_stats(&out, columns).map_err(io::Error::other)
}

/// The server rows of a `show stat` answer: `backend/server` → the values of `columns`, in
/// that order. A column the answer does not have is an error.
pub fn parse_server_stats(
    out: &str,
    columns: &[&str],
) -> Result<std::collections::BTreeMap<String, Vec<String>>, String> {
    let mut lines = out.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let idx = columns
        .iter()
        .map(|c| {
            head.iter()
                .position(|h| h == c)
                .ok_or_else(|| format!("no column {c} in show stat: {out}"))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let mut rows = std::collections::BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let (Some(px), Some(sv)) = (f.first(), f.get(1)) else {
            continue;
        };
        if *sv == "FRONTEND" || *sv == "BACKEND" || px.is_empty() {
            continue;
        }
        let vals = idx
            .iter()
            .map(|&i| f.get(i).unwrap_or(&"").to_string())
            .collect();
        rows.insert(format!("{px}/{sv}"), vals);
    }
    Ok(rows)
}
