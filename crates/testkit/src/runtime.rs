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

/// A `show stat` CSV answer, read by column name.
#[derive(Debug, Clone)]
pub struct StatCsv {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl StatCsv {
    /// Parses a `show stat` answer (the `# ` header line, then one row per line).
    pub fn parse(out: &str) -> StatCsv {
        let mut lines = out.lines();
        let head = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .map(str::to_owned)
            .collect();
        let rows = lines
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        StatCsv { head, rows }
    }

    /// `show stat` on the runtime socket at `sock`.
    pub fn read(sock: &Path) -> io::Result<StatCsv> {
        Ok(StatCsv::parse(&runtime_command(sock, "show stat")?))
    }

    /// The position of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.head.iter().position(|h| h == name)
    }

    /// The value of column `col` in the row of `pxname,svname` (`FRONTEND`, `BACKEND`, a
    /// server or a listener's name).
    pub fn get(&self, px: &str, sv: &str, col: &str) -> Option<&str> {
        let i = self.column(col)?;
        self.rows
            .iter()
            .find(|r| r.first().is_some_and(|p| p == px) && r.get(1).is_some_and(|s| s == sv))
            .and_then(|r| r.get(i))
            .map(String::as_str)
    }

    /// Every row: `pxname`, `svname` and the values of `columns` (empty where a row has none).
    /// A column the header does not have is an error.
    pub fn rows(&self, columns: &[&str]) -> Result<Vec<(String, String, Vec<String>)>, String> {
        let idx = columns
            .iter()
            .map(|c| {
                self.column(c)
                    .ok_or_else(|| format!("no column {c} in show stat: {:?}", self.head))
            })
            .collect::<Result<Vec<usize>, String>>()?;
        Ok(self
            .rows
            .iter()
            .map(|r| {
                let at = |i: usize| r.get(i).cloned().unwrap_or_default();
                (at(0), at(1), idx.iter().map(|&i| at(i)).collect())
            })
            .collect())
    }
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
    let rows = StatCsv::parse(out)
        .rows(columns)
        .map_err(|e| format!("{e}: {out}"))?;
    Ok(rows
        .into_iter()
        .filter(|(px, sv, _)| !px.is_empty() && !sv.is_empty())
        .filter(|(_, sv, _)| sv != "FRONTEND" && sv != "BACKEND")
        .map(|(px, sv, vals)| (format!("{px}/{sv}"), vals))
        .collect())
}
