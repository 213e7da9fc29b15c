//! wrk: the Lua scripts the harness hands it and the parser of what it prints.
//!
//! wrk `--latency` prints the 50/75/90/99th percentiles; the 99.9th comes from our `done()` hook,
//! which also prints per-status counters collected by a `response()` hook when the scenario needs
//! them (stick-table 429s).

use std::collections::BTreeMap;

/// What one wrk run reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrkOutput {
    pub requests: u64,
    pub duration_s: f64,
    pub bytes_read: f64,
    pub requests_per_s: f64,
    /// Percentile (50, 75, 90, 99, 99.9) → microseconds.
    pub latency_us: BTreeMap<String, f64>,
    pub max_latency_us: Option<f64>,
    pub non_2xx_3xx: u64,
    pub socket_errors: SocketErrors,
    /// Status code → count, when the script counted statuses.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests the Lua `request()` hook generated (scenario 9), when it counted them.
    pub generated: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketErrors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
}

impl SocketErrors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// The `done()` hook every run uses: p99.9 and max in microseconds (wrk's unit).
pub const DONE_SCRIPT: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  io.write(string.format("P999_US %d\n", latency:percentile(99.9)))
  io.write(string.format("MAX_US %d\n", latency.max))
  local gen = 0
  local counted = {}
  for _, t in ipairs(threads) do
    local g = t:get("generated")
    if g then gen = gen + g end
    local s = t:get("statuses")
    if s then for code, n in pairs(s) do counted[code] = (counted[code] or 0) + n end end
  end
  if gen > 0 then io.write(string.format("GENERATED %d\n", gen)) end
  for code, n in pairs(counted) do io.write(string.format("STATUS %d %d\n", code, n)) end
end
"#;

/// Scenario 9's request generator: `x-client-id` cycles deterministically over `ids` client ids
/// (prefixed by a per-run salt passed as the script argument, so each run starts with fresh
/// stick-table entries), and responses are counted per status.
pub fn client_id_script(ids: u32) -> String {
    format!(
        r#"
local salt = "s"
local n = 0
generated = 0
statuses = {{}}
function init(args) if args[1] then salt = args[1] end end
function request()
  local id = n % {ids}
  n = n + 1
  generated = n
  return wrk.format(nil, nil, {{ ["x-client-id"] = salt .. "-" .. id }})
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
{DONE_SCRIPT}"#
    )
}

/// Parses wrk's text output. Lines it does not know are ignored; the summary line is required.
pub fn parse(text: &str) -> Result<WrkOutput, String> {
    let mut out = WrkOutput::default();
    let mut have_summary = false;
    let mut in_dist = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist {
            if let Some((pct, val)) = t.split_once('%') {
                if let Ok(p) = pct.trim().parse::<f64>() {
                    out.latency_us
                        .insert(pct_key(p), parse_duration_us(val.trim())?);
                    continue;
                }
            }
            in_dist = false;
        }
        if let Some(rest) = t.strip_prefix("Socket errors:") {
            out.socket_errors = parse_socket_errors(rest)?;
        } else if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            out.non_2xx_3xx = num(rest.trim())?;
        } else if let Some(rest) = t.strip_prefix("Requests/sec:") {
            out.requests_per_s = rest.trim().parse().map_err(|_| bad("Requests/sec", t))?;
        } else if let Some(rest) = t.strip_prefix("P999_US ") {
            out.latency_us.insert("99.9".into(), num(rest)? as f64);
        } else if let Some(rest) = t.strip_prefix("MAX_US ") {
            out.max_latency_us = Some(num(rest)? as f64);
        } else if let Some(rest) = t.strip_prefix("GENERATED ") {
            out.generated = Some(num(rest)?);
        } else if let Some(rest) = t.strip_prefix("STATUS ") {
            let (code, n) = rest.split_once(' ').ok_or_else(|| bad("STATUS", t))?;
            let code: u16 = code.parse().map_err(|_| bad("STATUS", t))?;
            out.statuses.insert(code, num(n)?);
        } else if t.contains(" requests in ") && t.ends_with(" read") {
            parse_summary(t, &mut out)?;
            have_summary = true;
        }
    }
    if !have_summary {
        return Err(format!("wrk output has no summary line:\n{text}"));
    }
    Ok(out)
}

/// `243144 requests in 2.10s, 34.09MB read`
fn parse_summary(t: &str, out: &mut WrkOutput) -> Result<(), String> {
    let (reqs, rest) = t
        .split_once(" requests in ")
        .ok_or_else(|| bad("summary", t))?;
    let (dur, rest) = rest.split_once(", ").ok_or_else(|| bad("summary", t))?;
    let bytes = rest
        .strip_suffix(" read")
        .ok_or_else(|| bad("summary", t))?;
    out.requests = num(reqs)?;
    out.duration_s = parse_duration_us(dur)? / 1e6;
    out.bytes_read = parse_bytes(bytes)?;
    Ok(())
}

/// `connect 0, read 20405, write 0, timeout 0`
fn parse_socket_errors(s: &str) -> Result<SocketErrors, String> {
    let mut e = SocketErrors::default();
    for part in s.split(',') {
        let (k, v) = part
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("Socket errors", s))?;
        let v = num(v)?;
        match k {
            "connect" => e.connect = v,
            "read" => e.read = v,
            "write" => e.write = v,
            "timeout" => e.timeout = v,
            _ => return Err(bad("Socket errors", s)),
        }
    }
    Ok(e)
}

/// wrk durations: `352.00us`, `1.41ms`, `2.10s`, `1.00m`, `1.00h`.
pub fn parse_duration_us(s: &str) -> Result<f64, String> {
    let units: [(&str, f64); 5] = [
        ("us", 1.0),
        ("ms", 1e3),
        ("s", 1e6),
        ("m", 60e6),
        ("h", 3600e6),
    ];
    for (suffix, scale) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            if let Ok(v) = n.parse::<f64>() {
                return Ok(v * scale);
            }
        }
    }
    Err(bad("duration", s))
}

/// wrk byte counts use binary prefixes: `0.00B`, `34.09MB`, `3.59GB`.
pub fn parse_bytes(s: &str) -> Result<f64, String> {
    let units: [(&str, f64); 5] = [
        ("TB", 1024f64.powi(4)),
        ("GB", 1024f64.powi(3)),
        ("MB", 1024f64.powi(2)),
        ("KB", 1024.0),
        ("B", 1.0),
    ];
    for (suffix, scale) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            if let Ok(v) = n.parse::<f64>() {
                return Ok(v * scale);
            }
        }
    }
    Err(bad("byte count", s))
}

/// Key of a percentile in the latency maps: "50", "99", "99.9".
pub fn pct_key(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as u64)
    } else {
        format!("{p}")
    }
}

fn num(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| bad("number", s))
}

fn bad(what: &str, s: &str) -> String {
    format!("wrk output: cannot parse {what}: {s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn keepalive_run() {
        let w = parse(&fixture("wrk-keepalive.txt")).unwrap();
        assert_eq!(w.requests, 243144);
        assert!((w.duration_s - 2.10).abs() < 1e-9);
        assert!((w.bytes_read - 34.09 * 1048576.0).abs() < 1.0);
        assert!((w.requests_per_s - 115835.87).abs() < 1e-6);
        assert_eq!(w.latency_us["50"], 352.0);
        assert_eq!(w.latency_us["75"], 484.0);
        assert_eq!(w.latency_us["90"], 537.0);
        assert_eq!(w.latency_us["99"], 732.0);
        assert_eq!(w.latency_us["99.9"], 5706.0);
        assert_eq!(w.max_latency_us, Some(7694.0));
        assert_eq!(w.non_2xx_3xx, 0);
        assert_eq!(w.socket_errors.total(), 0);
    }

    #[test]
    fn non_2xx_and_millisecond_latencies() {
        let w = parse(&fixture("wrk-close-404.txt")).unwrap();
        assert_eq!(w.non_2xx_3xx, 34023);
        assert_eq!(w.requests, 34023);
        assert_eq!(w.latency_us["50"], 1410.0);
        assert_eq!(w.latency_us["99"], 4250.0);
    }

    #[test]
    fn socket_errors_are_counted() {
        let w = parse(&fixture("wrk-sockerr.txt")).unwrap();
        assert_eq!(w.requests, 0);
        assert_eq!(
            w.socket_errors,
            SocketErrors {
                connect: 0,
                read: 20405,
                write: 0,
                timeout: 0
            }
        );
        assert_eq!(w.bytes_read, 0.0);
    }

    #[test]
    fn gigabytes_read() {
        let w = parse(&fixture("wrk-1m.txt")).unwrap();
        assert_eq!(w.requests, 3678);
        assert!((w.bytes_read - 3.59 * 1073741824.0).abs() < 1.0);
        assert_eq!(w.latency_us["99.9"], 32518.0);
    }

    #[test]
    fn status_counters_from_the_lua_hook() {
        let w = parse(&fixture("wrk-statuses.txt")).unwrap();
        assert!(w.generated.unwrap() >= w.requests);
        let total: u64 = w.statuses.values().sum();
        assert_eq!(total, w.requests);
        assert_eq!(w.statuses.get(&429).copied().unwrap_or(0), w.non_2xx_3xx);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
        assert!(parse("  1 requests in 1.0x, 2B read").is_err());
        assert!(parse_duration_us("12parsecs").is_err());
        assert!(parse_bytes("1.0XB").is_err());
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration_us("1.00m").unwrap(), 60e6);
        assert_eq!(parse_duration_us("0.00us").unwrap(), 0.0);
        assert_eq!(parse_bytes("2.00KB").unwrap(), 2048.0);
        assert_eq!(pct_key(99.9), "99.9");
        assert_eq!(pct_key(50.0), "50");
    }

    #[test]
    fn scripts_mention_their_hooks() {
        let s = client_id_script(10000);
        assert!(s.contains("n % 10000"));
        assert!(s.contains("function response") && s.contains("done = function"));
    }
}
