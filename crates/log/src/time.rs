//! Calendar fields for log headers without libc: the engine passes the Unix time and the local
//! UTC offset (it reads the offset once, off the request path).

/// A moment to print: Unix seconds, microseconds, and the local offset from UTC in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: i64,
    /// 1..=12
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
    pub utc_offset_secs: i32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Timestamp {
    /// Local time for `unix_secs` (+ `micros`) at `utc_offset_secs` from UTC.
    pub fn from_unix(unix_secs: i64, micros: u32, utc_offset_secs: i32) -> Timestamp {
        let local = unix_secs + i64::from(utc_offset_secs);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Timestamp {
            year,
            month,
            day,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
            micros: micros.min(999_999),
            utc_offset_secs,
        }
    }

    pub fn month_name(&self) -> &'static str {
        MONTHS
            .get(usize::from(self.month.saturating_sub(1)))
            .copied()
            .unwrap_or("Jan")
    }

    /// `Nov 23 23:54:45` (day space-padded, as RFC 3164).
    pub fn write_rfc3164(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.month_name().as_bytes());
        out.push(b' ');
        if self.day < 10 {
            out.push(b' ');
        }
        push_num(out, u64::from(self.day), 1);
        out.push(b' ');
        self.write_hms(out);
    }

    /// `2026-11-23T23:54:45.377436+00:00`.
    pub fn write_iso(&self, out: &mut Vec<u8>) {
        push_num(out, self.year.max(0) as u64, 4);
        out.push(b'-');
        push_num(out, u64::from(self.month), 2);
        out.push(b'-');
        push_num(out, u64::from(self.day), 2);
        out.push(b'T');
        self.write_hms(out);
        out.push(b'.');
        push_num(out, u64::from(self.micros), 6);
        let off = self.utc_offset_secs;
        out.push(if off < 0 { b'-' } else { b'+' });
        let off = off.unsigned_abs() / 60;
        push_num(out, u64::from(off / 60), 2);
        out.push(b':');
        push_num(out, u64::from(off % 60), 2);
    }

    fn write_hms(&self, out: &mut Vec<u8>) {
        push_num(out, u64::from(self.hour), 2);
        out.push(b':');
        push_num(out, u64::from(self.minute), 2);
        out.push(b':');
        push_num(out, u64::from(self.second), 2);
    }
}

/// Writes `v` with at least `width` digits (zero-padded).
fn push_num(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [0u8; 20];
    let digits = crate::fmt_u(&mut buf, v);
    for _ in digits.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(digits);
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(secs: i64, us: u32, off: i32) -> String {
        let mut v = Vec::new();
        Timestamp::from_unix(secs, us, off).write_iso(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso(0, 0, 0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            iso(1_795_478_085, 377_436, 0),
            "2026-11-23T23:54:45.377436+00:00"
        );
        // Leap day, and a negative offset that moves the date back.
        assert_eq!(iso(951_782_400, 5, 0), "2000-02-29T00:00:00.000005+00:00");
        assert_eq!(
            iso(951_782_400, 0, -3600),
            "2000-02-28T23:00:00.000000-01:00"
        );
        assert_eq!(
            iso(1_700_000_000, 0, 19_800),
            "2023-11-15T03:43:20.000000+05:30"
        );
    }

    #[test]
    fn rfc3164_pads_the_day_with_a_space() {
        let mut v = Vec::new();
        Timestamp::from_unix(1_767_225_600 + 86_400 * 2 + 3723, 0, 0).write_rfc3164(&mut v);
        assert_eq!(String::from_utf8(v).unwrap(), "Jan  3 01:02:03");
    }
}
