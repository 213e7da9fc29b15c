//! The results file (`bench/results/<UTC time>-<scenario>.json`): raw rounds, per-subject
//! medians, per-pair ratios and the machine. Reports are generated from this alone.

use crate::stats::{self, Better, RatioStat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA: u32 = 1;
/// The baseline every ratio is taken against.
pub const BASELINE: &str = "haproxy";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub kernel: String,
    pub haproxy: String,
    pub haproxy_openssl: String,
    pub nginx: String,
    pub wrk: String,
    pub h2load: String,
    /// `git describe --dirty` of the repo when the run started (HEAD, not necessarily the
    /// commit the ringlb binary was built from: see `ringlb_built`).
    pub ringlb_rev: String,
    /// Modification time (UTC) of the ringlb binary that ran.
    #[serde(default)]
    pub ringlb_built: String,
    /// /proc/loadavg before and after the run (other engineers share this machine).
    pub load_before: String,
    pub load_after: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub schema: u32,
    pub scenario: String,
    pub title: String,
    /// `2026-11-23T21:30:00Z`
    pub started_utc: String,
    pub quick: bool,
    pub pairs: u32,
    pub round_s: f64,
    pub warmup_s: f64,
    /// Rejection threshold used: other processes' CPU, % of one CPU.
    #[serde(default = "default_max_other_pct")]
    pub max_other_pct: f64,
    pub machine: Machine,
    /// Subjects that ran, baseline first.
    pub subjects: Vec<String>,
    pub notes: Vec<String>,
    pub variants: Vec<VariantResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    pub id: String,
    pub title: String,
    pub throughput: String,
    pub cpu: String,
    pub headline: Vec<String>,
    /// The config file both proxies loaded.
    pub config: String,
    /// Subject → why it did not run ("ringlb: not yet").
    pub not_yet: BTreeMap<String, String>,
    pub rounds: Vec<Round>,
    /// Subject → metric → median over accepted rounds.
    pub medians: BTreeMap<String, BTreeMap<String, f64>>,
    /// Candidate → metric → per-pair ratio vs the baseline (> 1 = candidate better).
    pub ratios: BTreeMap<String, BTreeMap<String, RatioStat>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub subject: String,
    pub pair: u32,
    pub attempt: u32,
    pub accepted: bool,
    pub reject_reason: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    /// The load generator's own output, for the record.
    pub raw: String,
}

fn default_max_other_pct() -> f64 {
    crate::stats::MAX_OTHER_CPU_SHARE * 100.0
}

/// Label, unit and direction of each metric the harness records.
pub fn metric_info(key: &str) -> (&'static str, &'static str, Option<Better>) {
    use Better::*;
    match key {
        "rps" => ("throughput", "req/s", Some(Higher)),
        "achieved_rps" => ("achieved rate", "req/s", Some(Higher)),
        "rps_no_idle" => ("throughput without idle conns", "req/s", Some(Higher)),
        "gbit_s" => ("throughput", "Gbit/s", Some(Higher)),
        "p50_us" => ("p50 latency", "µs", Some(Lower)),
        "p75_us" => ("p75 latency", "µs", Some(Lower)),
        "p90_us" => ("p90 latency", "µs", Some(Lower)),
        "p99_us" => ("p99 latency", "µs", Some(Lower)),
        "p999_us" => ("p99.9 latency", "µs", Some(Lower)),
        "mean_us" => ("mean latency", "µs", Some(Lower)),
        "cpu_us_per_req" => ("proxy CPU per request", "µs", Some(Lower)),
        "cpu_s_per_gib" => ("proxy CPU per GiB", "CPU-s", Some(Lower)),
        "rss_peak_kib" => ("peak RSS", "KiB", Some(Lower)),
        "rss_kib" => ("steady RSS", "KiB", Some(Lower)),
        "idle_bytes_per_conn" => ("user-space memory per idle conn", "bytes", Some(Lower)),
        "idle_slowdown" => (
            "throughput with idle conns held / without",
            "×",
            Some(Higher),
        ),
        "status_429" => ("429 responses", "", None),
        "expected_429" => ("expected 429s", "", None),
        "err_429_pct" => ("429 count error vs expected", "%", Some(Lower)),
        "offered_rps" => ("offered rate", "req/s", None),
        "proxy_cpu_s" => ("proxy CPU", "s", None),
        "other_cpu_s" => ("other processes' CPU", "s", None),
        "requests" => ("requests", "", None),
        "elapsed_s" => ("duration", "s", None),
        _ => ("", "", None),
    }
}

/// Latency percentiles in the order the curves plot them.
pub const PERCENTILES: &[(&str, f64)] = &[
    ("p50_us", 50.0),
    ("p75_us", 75.0),
    ("p90_us", 90.0),
    ("p99_us", 99.0),
    ("p999_us", 99.9),
];

impl VariantResult {
    /// Fills `medians` and `ratios` from the accepted rounds.
    pub fn summarize(&mut self, subjects: &[String]) {
        self.medians.clear();
        self.ratios.clear();
        for s in subjects {
            let accepted: Vec<&Round> = self
                .rounds
                .iter()
                .filter(|r| r.accepted && &r.subject == s)
                .collect();
            if accepted.is_empty() {
                continue;
            }
            let mut keys: Vec<&String> = accepted.iter().flat_map(|r| r.metrics.keys()).collect();
            keys.sort();
            keys.dedup();
            let m = keys
                .into_iter()
                .filter_map(|k| {
                    let vals: Vec<f64> = accepted
                        .iter()
                        .filter_map(|r| r.metrics.get(k).copied())
                        .collect();
                    stats::median(&vals).map(|x| (k.clone(), x))
                })
                .collect();
            self.medians.insert(s.clone(), m);
        }
        for cand in subjects.iter().filter(|s| s.as_str() != BASELINE) {
            let mut per_metric = BTreeMap::new();
            let keys: Vec<String> = self
                .medians
                .get(cand)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for k in keys {
                let Some(better) = metric_info(&k).2 else {
                    continue;
                };
                let pairs: Vec<(Option<f64>, Option<f64>)> = self
                    .pair_numbers()
                    .into_iter()
                    .map(|p| (self.value(BASELINE, p, &k), self.value(cand, p, &k)))
                    .collect();
                if let Some(r) = stats::pair_ratios(&pairs, better) {
                    per_metric.insert(k, r);
                }
            }
            if !per_metric.is_empty() {
                self.ratios.insert(cand.clone(), per_metric);
            }
        }
    }

    fn pair_numbers(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.rounds.iter().map(|r| r.pair).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The accepted value of `metric` for `subject` in pair `pair`.
    fn value(&self, subject: &str, pair: u32, metric: &str) -> Option<f64> {
        self.rounds
            .iter()
            .find(|r| r.accepted && r.subject == subject && r.pair == pair)
            .and_then(|r| r.metrics.get(metric).copied())
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (civil-from-days, proleptic Gregorian).
pub fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// File stem for a run: `2026-11-23T2130Z-1` (sorts by time; `:` avoided in file names).
pub fn file_stem(started_utc: &str, scenario: &str) -> String {
    let compact: String = started_utc.chars().take(16).filter(|c| *c != ':').collect();
    format!("{compact}Z-{scenario}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_795_468_230), "2026-11-23T21:10:30Z");
        assert_eq!(
            file_stem("2026-11-23T21:10:30Z", "10"),
            "2026-11-23T2110Z-10"
        );
    }

    fn round(subject: &str, pair: u32, accepted: bool, rps: f64, cpu: f64) -> Round {
        Round {
            subject: subject.into(),
            pair,
            attempt: 0,
            accepted,
            reject_reason: None,
            metrics: [
                ("rps".to_string(), rps),
                ("cpu_us_per_req".to_string(), cpu),
                ("requests".into(), 1.0),
            ]
            .into_iter()
            .collect(),
            raw: String::new(),
        }
    }

    #[test]
    fn summarize_takes_medians_and_pairs_only_accepted_rounds() {
        let mut v = VariantResult {
            id: "1-c64".into(),
            title: "t".into(),
            throughput: "rps".into(),
            cpu: "cpu_us_per_req".into(),
            headline: vec![],
            config: String::new(),
            not_yet: BTreeMap::new(),
            rounds: vec![
                round("haproxy", 0, true, 100.0, 10.0),
                round("ringlb", 0, true, 120.0, 5.0),
                round("haproxy", 1, true, 110.0, 11.0),
                round("ringlb", 1, false, 1.0, 1.0), // rejected: ignored
                round("haproxy", 2, true, 90.0, 9.0),
                round("ringlb", 2, true, 90.0, 9.0),
            ],
            medians: BTreeMap::new(),
            ratios: BTreeMap::new(),
        };
        let subjects = vec!["haproxy".to_string(), "ringlb".to_string()];
        v.summarize(&subjects);
        assert_eq!(v.medians["haproxy"]["rps"], 100.0);
        assert_eq!(v.medians["ringlb"]["rps"], 105.0);
        let r = v.ratios["ringlb"]["rps"];
        assert_eq!((r.pairs, r.min, r.max), (2, 1.0, 1.2));
        assert!((r.median - 1.1).abs() < 1e-12);
        let c = v.ratios["ringlb"]["cpu_us_per_req"];
        assert_eq!((c.median, c.max), (1.5, 2.0));
        assert!(
            !v.ratios["ringlb"].contains_key("requests"),
            "no direction, no ratio"
        );
        assert!(!v.ratios.contains_key("haproxy"));
    }
}
