//! The method's arithmetic: medians, per-pair ratios and the rules that reject a round.

use serde::{Deserialize, Serialize};

/// Median (mean of the two middle values for an even count). `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median, min and max of the per-pair ratios of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioStat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub pairs: usize,
}

/// Which way a metric is better. Ratios are oriented so that > 1 always means the candidate
/// (ringlb, a relay) is better than HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput: candidate / haproxy.
    Higher,
    /// Latency, CPU per request, memory: haproxy / candidate.
    Lower,
}

/// Per-pair ratios over pairs where both sides have a positive value.
pub fn pair_ratios(pairs: &[(Option<f64>, Option<f64>)], better: Better) -> Option<RatioStat> {
    let ratios: Vec<f64> = pairs
        .iter()
        .filter_map(|&(h, c)| match (h, c) {
            (Some(h), Some(c)) if h > 0.0 && c > 0.0 => Some(match better {
                Better::Higher => c / h,
                Better::Lower => h / c,
            }),
            _ => None,
        })
        .collect();
    let median = median(&ratios)?;
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(RatioStat {
        median,
        min,
        max,
        pairs: ratios.len(),
    })
}

/// The checks every measured round goes through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundHealth {
    pub requests: u64,
    pub socket_errors: u64,
    /// Non-2xx/3xx responses the scenario did not expect.
    pub unexpected_status: u64,
    /// CPU time (s) the machine spent outside the benchmark's own processes during the round.
    pub other_cpu_s: f64,
    pub elapsed_s: f64,
    /// Share of one CPU other processes may use (`--max-other`, default `MAX_OTHER_CPU_SHARE`).
    pub max_other_share: f64,
}

/// Default share of one CPU that other processes may use during a round before it is rejected.
/// Idle background here (kernel threads such as kdamond, shells) measures 1–5%; a compiler takes
/// 50–100% (20–35% when the benchmark runs at nice -20 and it only gets the idle time).
pub const MAX_OTHER_CPU_SHARE: f64 = 0.08;

/// Why a round is rejected, or `None` when it counts.
pub fn reject_reason(h: &RoundHealth) -> Option<String> {
    if h.socket_errors > 0 {
        return Some(format!("{} socket errors", h.socket_errors));
    }
    if h.unexpected_status > 0 {
        return Some(format!("{} non-2xx/3xx responses", h.unexpected_status));
    }
    if h.requests == 0 {
        return Some("no request completed".into());
    }
    if h.elapsed_s > 0.0 && h.other_cpu_s / h.elapsed_s > h.max_other_share {
        return Some(format!(
            "other processes used {:.0}% of a CPU (limit {:.0}%)",
            100.0 * h.other_cpu_s / h.elapsed_s,
            100.0 * h.max_other_share
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
    }

    #[test]
    fn ratios_are_oriented_so_above_one_is_better() {
        // Candidate has 10% more throughput in each pair → 1.1.
        let thr = [(Some(100.0), Some(110.0)), (Some(200.0), Some(220.0))];
        let r = pair_ratios(&thr, Better::Higher).unwrap();
        assert!((r.median - 1.1).abs() < 1e-12 && r.pairs == 2);
        // Candidate uses half the CPU per request → 2.0.
        let cpu = [
            (Some(12.0), Some(6.0)),
            (Some(13.0), Some(6.5)),
            (Some(10.0), Some(10.0)),
        ];
        let r = pair_ratios(&cpu, Better::Lower).unwrap();
        assert_eq!((r.median, r.min, r.max, r.pairs), (2.0, 1.0, 2.0, 3));
    }

    #[test]
    fn ratio_is_median_of_per_pair_ratios_not_ratio_of_medians() {
        let p = [
            (Some(1.0), Some(3.0)),
            (Some(10.0), Some(10.0)),
            (Some(100.0), Some(50.0)),
        ];
        let r = pair_ratios(&p, Better::Higher).unwrap();
        assert_eq!((r.median, r.min, r.max), (1.0, 0.5, 3.0));
    }

    #[test]
    fn incomplete_pairs_are_skipped() {
        let p = [(Some(1.0), None), (None, Some(1.0)), (Some(0.0), Some(1.0))];
        assert_eq!(pair_ratios(&p, Better::Higher), None);
    }

    fn ok() -> RoundHealth {
        RoundHealth {
            requests: 1000,
            socket_errors: 0,
            unexpected_status: 0,
            other_cpu_s: 0.01,
            elapsed_s: 2.0,
            max_other_share: MAX_OTHER_CPU_SHARE,
        }
    }

    #[test]
    fn rejection_rules() {
        assert_eq!(reject_reason(&ok()), None);
        let r = reject_reason(&RoundHealth {
            socket_errors: 3,
            ..ok()
        })
        .unwrap();
        assert!(r.contains("3 socket errors"));
        let r = reject_reason(&RoundHealth {
            unexpected_status: 1,
            ..ok()
        })
        .unwrap();
        assert!(r.contains("non-2xx"));
        assert!(reject_reason(&RoundHealth {
            requests: 0,
            ..ok()
        })
        .is_some());
        // 0.2 CPU-s in 2 s is 10% of a CPU: a compile job or similar.
        let r = reject_reason(&RoundHealth {
            other_cpu_s: 0.2,
            ..ok()
        })
        .unwrap();
        assert!(r.contains("10%") && r.contains("limit 8%"), "{r}");
        // A raised limit (--max-other 40 on a shared machine) accepts it.
        assert_eq!(
            reject_reason(&RoundHealth {
                other_cpu_s: 0.6,
                max_other_share: 0.4,
                ..ok()
            }),
            None
        );
        // 5% (idle background noise) is tolerated.
        assert_eq!(
            reject_reason(&RoundHealth {
                other_cpu_s: 0.1,
                ..ok()
            }),
            None
        );
    }
}
