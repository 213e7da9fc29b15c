//! HAProxy's period frequency counter (`freq_ctr` used by every `*_rate(p)` data type).
//!
//! Three words: the tick (ms, wrapping u32) at which the current period started, the count in the
//! current period and the count of the previous one. The rate read at `now` is
//! `curr + prev * remain / period`, where `remain` is what is left of the current period: the
//! previous period's count weighted by the fraction of it still inside the sliding window. A
//! period that ended more than one period ago counts nothing; below one event per period the
//! previous value is returned as is (HAProxy's "flapping correction"). Semantics follow HAProxy
//! 2.6 (`update_freq_ctr_period`, `freq_ctr_total`), checked against a recording of the real
//! binary in `haproxy_recorded_decay` below.

/// Word indexes inside a counter's 3 words.
const TICK: usize = 0;
const CURR: usize = 1;
const PREV: usize = 2;

/// Starts a counter at `now` (a fresh entry): equivalent to HAProxy's rotation of a zeroed
/// counter whose tick is more than two periods old, without depending on the clock's epoch.
pub fn init(w: &mut [u32], now_ms: u32) {
    w[TICK] = now_ms & !1;
    w[CURR] = 0;
    w[PREV] = 0;
}

/// Adds `inc` events at `now`, rotating the periods first when the current one is over.
pub fn update(w: &mut [u32], now_ms: u32, period_ms: u32, inc: u32) {
    let mut tick = w[TICK];
    if now_ms.wrapping_sub(tick) >= period_ms {
        w[PREV] = w[CURR];
        w[CURR] = 0;
        tick = tick.wrapping_add(period_ms);
        if now_ms.wrapping_sub(tick) >= period_ms {
            // At least two periods were missed: nothing of the past is left in the window.
            w[PREV] = 0;
            tick = now_ms;
        }
        // HAProxy keeps the low bit of the tick as a rotation lock: ticks are always even.
        w[TICK] = tick & !1;
    }
    w[CURR] = w[CURR].wrapping_add(inc);
}

/// Events per period at `now`, HAProxy's `read_freq_ctr_period`.
pub fn read(w: &[u32], now_ms: u32, period_ms: u32) -> u32 {
    let period = i64::from(period_ms.max(1));
    let mut curr = u64::from(w[CURR]);
    let mut past = u64::from(w[PREV]);
    // Signed distance, as HAProxy's `int remain`: ticks wrap every 49 days.
    let mut remain = i64::from(w[TICK].wrapping_add(period_ms).wrapping_sub(now_ms) as i32);
    if remain < 0 {
        remain += period;
        past = if remain >= 0 { curr } else { 0 };
        curr = 0;
    }
    if curr == 0 && past <= 1 {
        return past as u32;
    }
    let remain = remain.clamp(0, period) as u64;
    let total = past * remain + curr * period as u64;
    (total / period as u64).min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u32 = 10_000;

    fn fresh(now: u32) -> [u32; 3] {
        let mut w = [0u32; 3];
        init(&mut w, now);
        w
    }

    #[test]
    fn counts_within_the_first_period() {
        let mut w = fresh(1000);
        for t in 0..10 {
            update(&mut w, 1000 + t * 100, P, 1);
        }
        assert_eq!(read(&w, 5000, P), 10);
        assert_eq!(read(&w, 1000 + P - 1, P), 10);
    }

    #[test]
    fn previous_period_decays_linearly_over_the_next() {
        let mut w = fresh(0);
        update(&mut w, 0, P, 100);
        // 2 s into the second period: 80% of the previous period is still in the window.
        assert_eq!(read(&w, 12_000, P), 80);
        assert_eq!(read(&w, 15_000, P), 50);
        assert_eq!(read(&w, 19_999, P), 0);
        // 20 s: a full period later, nothing is left.
        assert_eq!(read(&w, 20_000, P), 0);
        assert_eq!(read(&w, 25_000, P), 0);
    }

    #[test]
    fn rotation_keeps_period_alignment_and_adds_current() {
        let mut w = fresh(0);
        update(&mut w, 0, P, 10);
        update(&mut w, 12_000, P, 5); // rotates: prev=10, curr=5, tick=10000
        assert_eq!(w, [10_000, 5, 10]);
        assert_eq!(read(&w, 15_000, P), 5 + 5);
    }

    #[test]
    fn two_missed_periods_forget_the_past() {
        let mut w = fresh(0);
        update(&mut w, 0, P, 50);
        update(&mut w, 25_001, P, 1);
        assert_eq!(w[PREV], 0);
        assert_eq!(w[TICK], 25_000, "tick restarts at now, low bit cleared");
        assert_eq!(read(&w, 25_002, P), 1);
    }

    #[test]
    fn flapping_correction_holds_one_event_per_period() {
        let mut w = fresh(0);
        update(&mut w, 0, P, 1);
        update(&mut w, 10_000, P, 0); // rotate: prev=1, curr=0
                                      // 1 * 9000/10000 would round to 0; HAProxy reports the previous value instead.
        assert_eq!(read(&w, 11_000, P), 1);
    }

    #[test]
    fn wrapping_clock() {
        let start = u32::MAX - 3_000;
        let mut w = fresh(start);
        update(&mut w, start, P, 7);
        assert_eq!(read(&w, start.wrapping_add(5_000), P), 7);
        assert_eq!(read(&w, start.wrapping_add(15_000), P), 3);
    }

    /// tests/fixtures/record_rate_periods.sh drove the real haproxy 2.6: 10 requests at t=0, 5 at
    /// t=12 s, `show table` at 5, 12, 15, 21 and 32 s. The script's reads land a few ms after the
    /// nominal time and the first request a few ms after t=0, so a value may differ by one where
    /// the exact weight is on a boundary (8.0 at t=12 s); beyond that the model must agree.
    #[test]
    fn haproxy_recorded_decay() {
        let rec = include_str!("../tests/fixtures/rate_periods.txt");
        let mut w = fresh(0);
        update(&mut w, 0, P, 10);
        let mut n = 0;
        for line in rec.lines() {
            let (t, v) = line.split_once(' ').unwrap();
            let t: u32 = t.trim_start_matches("t=").parse().unwrap();
            let v: u32 = v.rsplit('=').next().unwrap().parse().unwrap();
            let ours = read(&w, t * 1000, P);
            assert!(ours.abs_diff(v) <= 1, "t={t}s haproxy={v} ours={ours}");
            if t == 12 {
                update(&mut w, 12_000, P, 5);
            }
            n += 1;
        }
        assert_eq!(n, 5);
        assert_eq!(read(&w, 15_000, P), 10);
        assert_eq!(read(&w, 21_000, P), 4);
    }
}
