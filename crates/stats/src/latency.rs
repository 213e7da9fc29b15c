//! Latency histograms (hdrhistogram) per backend and server: what HAProxy's averages hide.

use hdrhistogram::Histogram;

/// Highest value kept exactly (µs): 100 s. Longer times are counted in the top bucket
/// (`saturating_record`); the sums stay exact.
pub const HIST_MAX_US: u64 = 100_000_000;
/// Two significant digits: 1% relative error, ~20 KiB per histogram.
const SIGFIG: u8 = 2;

/// The times of one request (µs), HAProxy's `Tw` (queue), `Tc` (connect), `Tr` (response
/// headers) and `Ta`/`Tt` (total). `None` where the phase did not happen (no queue, a reused
/// connection, an aborted request...): it is then not recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTimes {
    pub queue_us: Option<u64>,
    pub connect_us: Option<u64>,
    pub response_us: Option<u64>,
    pub total_us: Option<u64>,
}

/// One histogram and the exact sum of its values.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
    sum_us: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        // The bounds are constants that hdrhistogram accepts; fall back to an auto-resizing
        // histogram rather than panic should that ever change.
        let hist = Histogram::new_with_bounds(1, HIST_MAX_US, SIGFIG)
            .or_else(|_| Histogram::new(SIGFIG))
            .unwrap_or_else(|_| unreachable_histogram());
        Latency { hist, sum_us: 0 }
    }

    /// O(1), no allocation: a few shifts and one increment.
    #[inline]
    pub fn record(&mut self, us: u64) {
        self.hist.saturating_record(us.min(HIST_MAX_US));
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// Value at quantile `q` (0..=1), µs; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            return 0;
        }
        self.hist.value_at_quantile(q)
    }

    /// Number of values ≤ `us`. A value counts as ≤ `us` when the lowest value of its
    /// histogram bucket is (1% precision: a value 0.5% above a bound may count below it).
    pub fn count_le(&self, us: u64) -> u64 {
        let mut out = [0];
        self.cumulative_counts(&[us], &mut out);
        out[0]
    }

    /// For sorted `bounds_us`, the number of values ≤ each bound (one pass over the
    /// histogram; Prometheus `_bucket` lines).
    pub fn cumulative_counts(&self, bounds_us: &[u64], out: &mut [u64]) {
        let mut acc = 0u64;
        let mut i = 0;
        for v in self.hist.iter_recorded() {
            let low = self.hist.lowest_equivalent(v.value_iterated_to());
            while i < bounds_us.len() && i < out.len() && low > bounds_us[i] {
                out[i] = acc;
                i += 1;
            }
            acc += v.count_at_value();
        }
        while i < bounds_us.len() && i < out.len() {
            out[i] = acc;
            i += 1;
        }
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: `add` cannot fail; a mismatch would only lose samples.
        let _ = self.hist.add(&other.hist);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }
}

/// `Histogram::new(2)` cannot fail (sigfig 2 is valid); this only satisfies the types.
fn unreachable_histogram() -> Histogram<u64> {
    match Histogram::new(3) {
        Ok(h) => h,
        Err(_) => std::process::abort(),
    }
}

/// Queue, connect, response and total time histograms of one backend or server on one
/// shard; the control shard merges the shards' copies when it renders.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistograms {
    pub queue: Latency,
    pub connect: Latency,
    pub response: Latency,
    pub total: Latency,
}

impl LatencyHistograms {
    pub fn new() -> LatencyHistograms {
        LatencyHistograms::default()
    }

    /// Records one finished request (request path: no allocation).
    #[inline]
    pub fn record(&mut self, t: &RequestTimes) {
        if let Some(v) = t.queue_us {
            self.queue.record(v);
        }
        if let Some(v) = t.connect_us {
            self.connect.record(v);
        }
        if let Some(v) = t.response_us {
            self.response.record(v);
        }
        if let Some(v) = t.total_us {
            self.total.record(v);
        }
    }

    pub fn merge(&mut self, other: &LatencyHistograms) {
        self.queue.merge(&other.queue);
        self.connect.merge(&other.connect);
        self.response.merge(&other.response);
        self.total.merge(&other.total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_one_percent() {
        let mut l = Latency::new();
        for us in 1..=10_000 {
            l.record(us);
        }
        let p99 = l.quantile_us(0.99);
        assert!((9_800..=10_000).contains(&p99), "{p99}");
        let p50 = l.quantile_us(0.5);
        assert!((4_950..=5_050).contains(&p50), "{p50}");
        assert_eq!(l.count(), 10_000);
        assert_eq!(l.sum_us(), 10_000 * 10_001 / 2);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = LatencyHistograms::new();
        let mut b = LatencyHistograms::new();
        let mut all = LatencyHistograms::new();
        for i in 0..1000u64 {
            let t = RequestTimes {
                queue_us: (i % 3 == 0).then_some(i),
                connect_us: Some(i * 7),
                response_us: Some(i * 100),
                total_us: Some(i * 150),
            };
            if i % 2 == 0 {
                a.record(&t)
            } else {
                b.record(&t)
            }
            all.record(&t);
        }
        a.merge(&b);
        for (x, y) in [
            (&a.queue, &all.queue),
            (&a.response, &all.response),
            (&a.total, &all.total),
        ] {
            assert_eq!(x.count(), y.count());
            assert_eq!(x.sum_us(), y.sum_us());
            assert_eq!(x.quantile_us(0.9), y.quantile_us(0.9));
        }
        assert_eq!(a.queue.count(), 334);
    }

    #[test]
    fn huge_values_saturate_but_sum_stays_exact() {
        let mut l = Latency::new();
        l.record(u64::from(u32::MAX) * 10);
        assert_eq!(l.count(), 1);
        assert_eq!(l.sum_us(), u64::from(u32::MAX) * 10);
        assert_eq!(l.count_le(1_000), 0);
        assert_eq!(l.count_le(HIST_MAX_US), 1);
    }

    #[test]
    fn count_le_is_cumulative() {
        let mut l = Latency::new();
        for us in [100, 1_000, 10_000, 100_000] {
            l.record(us);
        }
        assert_eq!(l.count_le(99), 0);
        assert_eq!(l.count_le(1_000), 2);
        assert_eq!(l.count_le(50_000), 3);
    }
}
