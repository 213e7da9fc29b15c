//! Pure weight and connection-limit formulas of HAProxy 2.6 (`server_recalc_eweight`,
//! `srv_dynamic_maxconn`). Time is passed in; HAProxy computes both in whole seconds.

use std::time::Duration;

/// `slowstart` in HAProxy's unit: whole seconds, rounded up (`(ms + 999) / 1000`).
pub fn slowstart_secs(slowstart: Duration) -> u64 {
    let ms = slowstart.as_millis();
    u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX)
}

/// The slow-start ramp factor in `wdiv` units (`wdiv` = 16 for dynamic algorithms):
/// `(wdiv × elapsed_s + slowstart_s) / slowstart_s`, or `None` once the ramp is over
/// (elapsed ≥ slowstart), which means full weight.
pub fn slowstart_ramp(wdiv: u32, elapsed: Duration, slowstart: Duration) -> Option<u32> {
    let ss = slowstart_secs(slowstart);
    let el = elapsed.as_secs();
    if ss == 0 || el >= ss {
        return None;
    }
    let w = (u64::from(wdiv) * el + ss) / ss;
    u32::try_from(w).ok()
}

/// Effective weight (in 1/16ths of a user weight unit, as roundrobin/leastconn/consistent
/// use it) of a server `elapsed` after it came UP with `slowstart`: starts at `weight`
/// (1/16 of full) and reaches `weight × 16` at the end of the ramp.
pub fn slowstart_eweight(weight: u32, elapsed: Duration, slowstart: Duration) -> u32 {
    let w = slowstart_ramp(16, elapsed, slowstart).unwrap_or(16);
    weight * w
}

/// Inputs of `srv_dynamic_maxconn`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnLimit {
    /// `maxconn` (0 = none).
    pub maxconn: u32,
    /// `minconn` (0 = same as maxconn).
    pub minconn: u32,
    /// Backend `fullconn` (0 = not set: always the static limit).
    pub fullconn: u32,
    /// Current connections of the backend (`beconn`).
    pub beconn: u32,
}

/// `srv_dynamic_maxconn`: between `minconn` and `maxconn` in proportion to the backend's load
/// against `fullconn`, reduced during slow start (`Some((elapsed, slowstart))`).
pub fn dynamic_maxconn(l: &ConnLimit, starting: Option<(Duration, Duration)>) -> u32 {
    let max =
        if l.fullconn == 0 || l.beconn >= l.fullconn || l.minconn == 0 || l.minconn == l.maxconn {
            l.maxconn
        } else {
            let prop = u64::from(l.beconn) * u64::from(l.maxconn) / u64::from(l.fullconn);
            l.minconn.max(u32::try_from(prop).unwrap_or(u32::MAX))
        };
    match starting {
        Some((elapsed, ss)) if elapsed.as_secs() < slowstart_secs(ss) => {
            let ratio = 100 * elapsed.as_secs() / slowstart_secs(ss).max(1);
            let m = u64::from(max) * ratio / 100;
            u32::try_from(m).unwrap_or(u32::MAX).max(1)
        }
        _ => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    #[test]
    fn ramp() {
        let cases: &[(u32, u64, u64, u32)] = &[
            (10, 0, 10, 10),
            (10, 1, 10, 20),
            (10, 5, 10, 90),
            (10, 9, 10, 150),
            (10, 10, 10, 160),
            (10, 100, 10, 160),
            (1, 0, 60, 1),
            (1, 30, 60, 9),
            (3, 0, 0, 48),
        ];
        for &(w, el, ss, want) in cases {
            assert_eq!(
                slowstart_eweight(w, s(el), s(ss)),
                want,
                "w={w} el={el} ss={ss}"
            );
        }
        assert_eq!(slowstart_secs(Duration::from_millis(1500)), 2);
    }

    #[test]
    fn maxconn() {
        let l = ConnLimit {
            maxconn: 100,
            minconn: 10,
            fullconn: 1000,
            beconn: 0,
        };
        assert_eq!(dynamic_maxconn(&l, None), 10);
        assert_eq!(dynamic_maxconn(&ConnLimit { beconn: 500, ..l }, None), 50);
        assert_eq!(dynamic_maxconn(&ConnLimit { beconn: 1000, ..l }, None), 100);
        assert_eq!(dynamic_maxconn(&ConnLimit { fullconn: 0, ..l }, None), 100);
        let st = Some((s(5), s(10)));
        assert_eq!(dynamic_maxconn(&ConnLimit { beconn: 1000, ..l }, st), 50);
        assert_eq!(
            dynamic_maxconn(&ConnLimit { beconn: 1000, ..l }, Some((s(0), s(10)))),
            1
        );
    }

    /// The example of HAProxy's `fullconn` documentation: servers with `minconn 100 maxconn
    /// 1000` behind `fullconn 10000`.
    #[test]
    fn fullconn_documentation_example() {
        let l = ConnLimit {
            maxconn: 1000,
            minconn: 100,
            fullconn: 10_000,
            beconn: 1,
        };
        let at = |beconn| dynamic_maxconn(&ConnLimit { beconn, ..l }, None);
        assert_eq!(at(1), 100, "idle: minconn");
        assert_eq!(at(1000), 100);
        assert_eq!(at(5000), 500, "half load: half");
        assert_eq!(at(10_000), 1000, "full: maxconn");
        assert_eq!(at(20_000), 1000, "never above maxconn");
    }
}
