//! HAProxy's event-rate counter (`freq_ctr`) and sliding-window average (`swrate`), with the
//! clock passed in so shards, tests and the renderer agree on `now`.

/// Events per period (HAProxy's `freq_ctr`): the count of the current period plus the share
/// of the previous one that still overlaps the last `period`. Periods start at multiples of
/// `period_ms` so that counters of different shards line up and can be merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FreqCtr {
    /// Start of the current period (ms, a multiple of the period).
    curr_tick_ms: u64,
    curr: u32,
    prev: u32,
}

/// The period of every rate in `show stat` (`rate`, `req_rate`, `conn_rate`...): one second.
pub const RATE_PERIOD_MS: u64 = 1000;

impl FreqCtr {
    /// Moves the window to the period holding `now_ms`.
    fn rotate(&mut self, now_ms: u64, period_ms: u64) {
        let tick = now_ms - now_ms % period_ms;
        if tick <= self.curr_tick_ms {
            return;
        }
        // One period later the current count becomes the previous one; two or more, both 0.
        self.prev = if tick - self.curr_tick_ms == period_ms {
            self.curr
        } else {
            0
        };
        self.curr = 0;
        self.curr_tick_ms = tick;
    }

    /// Counts `n` events at `now_ms`; returns the count of the current period (what HAProxy
    /// feeds to the `*_max` counters).
    pub fn add(&mut self, now_ms: u64, n: u32) -> u32 {
        self.rotate(now_ms, RATE_PERIOD_MS);
        self.curr = self.curr.saturating_add(n);
        self.curr
    }

    /// Events over the last second at `now_ms` (HAProxy's `read_freq_ctr`): the current
    /// period's count plus the previous one weighted by how much of it is still in the window.
    pub fn read(&self, now_ms: u64) -> u32 {
        let mut c = *self;
        c.rotate(now_ms, RATE_PERIOD_MS);
        let elapsed = now_ms.saturating_sub(c.curr_tick_ms).min(RATE_PERIOD_MS);
        let prev_share = u64::from(c.prev) * (RATE_PERIOD_MS - elapsed) / RATE_PERIOD_MS;
        u32::try_from(prev_share + u64::from(c.curr)).unwrap_or(u32::MAX)
    }

    /// Adds another shard's counter: both are moved to the later period first.
    pub fn merge(&mut self, other: &FreqCtr) {
        let mut o = *other;
        let tick = self.curr_tick_ms.max(o.curr_tick_ms);
        self.rotate(tick, RATE_PERIOD_MS);
        o.rotate(tick, RATE_PERIOD_MS);
        self.curr = self.curr.saturating_add(o.curr);
        self.prev = self.prev.saturating_add(o.prev);
    }
}

/// HAProxy's `TIME_STATS_SAMPLES`: the window of the `qtime/ctime/rtime/ttime` averages. The
/// manual says "over the 1024 last requests"; the code measures over 512 samples, which the
/// source comment explains gives 95% accuracy over 1k samples.
pub const TIME_STATS_SAMPLES: u64 = 512;

/// A sliding-window average over the last [`TIME_STATS_SAMPLES`] values (HAProxy's
/// `swrate_add_dynamic`/`swrate_avg`): `sum` holds about `window × average`; each new value
/// replaces one average-sized share. Until the window is full, it averages over the samples
/// seen so far, as HAProxy does (HAProxy counts the window with `req_tot`/`lbtot`; ringlb
/// with the recorded samples, which differ only by failed requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwRate {
    sum: u64,
    samples: u64,
}

impl SwRate {
    fn window(&self) -> u64 {
        self.samples.clamp(1, TIME_STATS_SAMPLES)
    }

    /// Adds one value (ms). Up to the window size the values just add up (an exact mean);
    /// beyond, each value first removes one average-sized share (`swrate_add_dynamic`).
    pub fn add(&mut self, v: u32) {
        self.samples = self.samples.saturating_add(1);
        if self.samples > TIME_STATS_SAMPLES {
            self.sum -= self.sum.div_ceil(TIME_STATS_SAMPLES).min(self.sum);
        }
        self.sum = self.sum.saturating_add(u64::from(v));
    }

    /// The average (ms), rounded up like `swrate_avg`; 0 without samples.
    pub fn avg(&self) -> u32 {
        if self.samples == 0 {
            return 0;
        }
        u32::try_from(self.sum.div_ceil(self.window())).unwrap_or(u32::MAX)
    }

    /// Number of values added.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Combines another shard's average, weighted by how many samples each has in its window.
    pub fn merge(&mut self, other: &SwRate) {
        if other.samples == 0 {
            return;
        }
        if self.samples == 0 {
            *self = *other;
            return;
        }
        let (wa, wb) = (self.window(), other.window());
        let total = self.samples.saturating_add(other.samples);
        let window = total.min(TIME_STATS_SAMPLES);
        // Σ sum_i / Σ w_i is the sample-weighted mean of both averages; rescale to `window`.
        let sum = (u128::from(self.sum) + u128::from(other.sum)) * u128::from(window)
            / u128::from(wa + wb);
        self.sum = u64::try_from(sum).unwrap_or(u64::MAX);
        self.samples = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_current_and_share_of_previous_second() {
        let mut f = FreqCtr::default();
        for i in 0..10 {
            f.add(5_000 + i * 10, 1);
        }
        assert_eq!(f.read(5_999), 10);
        // Half-way through the next second, half of the previous one still counts.
        assert_eq!(f.read(6_500), 5);
        f.add(6_500, 2);
        assert_eq!(f.read(6_500), 7);
        // Two seconds later nothing is left.
        assert_eq!(f.read(8_000), 0);
    }

    #[test]
    fn add_returns_the_current_period_count() {
        let mut f = FreqCtr::default();
        assert_eq!(f.add(1_000, 1), 1);
        assert_eq!(f.add(1_999, 1), 2);
        assert_eq!(f.add(2_000, 1), 1);
    }

    #[test]
    fn merged_rates_add_up_across_periods() {
        let mut a = FreqCtr::default();
        let mut b = FreqCtr::default();
        a.add(1_100, 4); // previous second for `b`'s period
        b.add(2_200, 3);
        a.merge(&b);
        // At 2.5 s: 3 in the current second + half of a's 4.
        assert_eq!(a.read(2_500), 5);
    }

    #[test]
    fn swrate_averages_early_samples_exactly() {
        let mut s = SwRate::default();
        assert_eq!(s.avg(), 0);
        for v in [10, 20, 30] {
            s.add(v);
        }
        assert_eq!(s.avg(), 20);
    }

    #[test]
    fn swrate_forgets_old_values_over_the_window() {
        let mut s = SwRate::default();
        for _ in 0..TIME_STATS_SAMPLES {
            s.add(100);
        }
        assert_eq!(s.avg(), 100);
        for _ in 0..(TIME_STATS_SAMPLES * 4) {
            s.add(10);
        }
        // Old values decay geometrically: after 4 windows little of the 100s remains.
        assert!(s.avg() <= 12, "avg {}", s.avg());
    }

    #[test]
    fn swrate_merge_weights_by_samples() {
        let mut a = SwRate::default();
        let mut b = SwRate::default();
        for _ in 0..30 {
            a.add(10);
        }
        for _ in 0..10 {
            b.add(50);
        }
        a.merge(&b);
        assert_eq!(a.avg(), 20); // (30×10 + 10×50) / 40
        assert_eq!(a.samples(), 40);
    }
}
