//! Parser of h2load's summary (scenario 6).

#[derive(Debug, Clone, Default, PartialEq)]
pub struct H2loadOutput {
    pub duration_s: f64,
    pub requests_per_s: f64,
    pub done: u64,
    pub succeeded: u64,
    /// failed + errored + timeout.
    pub errors: u64,
    pub status_2xx: u64,
    pub bytes: f64,
    /// Mean "time for request", microseconds (h2load prints no percentiles).
    pub mean_us: Option<f64>,
}

pub fn parse(text: &str) -> Result<H2loadOutput, String> {
    let mut o = H2loadOutput::default();
    let mut have = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("finished in ") {
            // finished in 2.01s, 49843.00 req/s, 4.04MB/s
            let parts: Vec<&str> = rest.split(", ").collect();
            let dur = parts.first().ok_or_else(|| bad(t))?;
            o.duration_s = crate::wrk::parse_duration_us(dur)? / 1e6;
            o.requests_per_s = parts
                .get(1)
                .and_then(|s| s.strip_suffix(" req/s"))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(t))?;
            have = true;
        } else if let Some(rest) = t.strip_prefix("requests: ") {
            // 99686 total, 100198 started, 99686 done, 99686 succeeded, 0 failed, 0 errored, 0 timeout
            for part in rest.split(", ") {
                let (n, what) = part.split_once(' ').ok_or_else(|| bad(t))?;
                let n: u64 = n.parse().map_err(|_| bad(t))?;
                match what {
                    "done" => o.done = n,
                    "succeeded" => o.succeeded = n,
                    "failed" | "errored" | "timeout" => o.errors += n,
                    _ => {}
                }
            }
        } else if let Some(rest) = t.strip_prefix("status codes: ") {
            let first = rest.split(", ").next().ok_or_else(|| bad(t))?;
            o.status_2xx = first
                .strip_suffix(" 2xx")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(t))?;
        } else if let Some(rest) = t.strip_prefix("traffic: ") {
            // 8.08MB (8473790) total, ...
            o.bytes = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(n, _)| n.parse().ok())
                .ok_or_else(|| bad(t))?;
        } else if let Some(rest) = t.strip_prefix("time for request:") {
            let cols: Vec<&str> = rest.split_whitespace().collect();
            if let Some(mean) = cols.get(2) {
                o.mean_us = Some(crate::wrk::parse_duration_us(mean)?);
            }
        }
    }
    if !have {
        return Err(format!("h2load output has no `finished in` line:\n{text}"));
    }
    Ok(o)
}

fn bad(line: &str) -> String {
    format!("h2load output: cannot parse {line:?}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn h2c_fixture() {
        let t = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/h2load-h2c.txt"
        ))
        .unwrap();
        let o = super::parse(&t).unwrap();
        assert!((o.duration_s - 2.01).abs() < 1e-9);
        assert_eq!(o.requests_per_s, 49843.0);
        assert_eq!(
            (o.done, o.succeeded, o.errors, o.status_2xx),
            (99686, 99686, 0, 99686)
        );
        assert_eq!(o.bytes, 8473790.0);
        assert_eq!(o.mean_us, Some(9590.0));
        assert!(super::parse("starting benchmark...").is_err());
    }
}
