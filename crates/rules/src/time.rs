//! Calendar arithmetic for `date_hour`, `ltime`/`utime` and log dates, without libc: the
//! engine passes Unix time and the local UTC offset.

use std::io::Write;

/// Broken-down time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// 0 = Sunday.
    pub weekday: u32,
    /// 0-based day of the year.
    pub yday: u32,
}

/// Converts seconds since the epoch (already shifted to the wanted zone) to a civil date
/// (Howard Hinnant's days-from-civil inverse).
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[(month - 1) as usize] + day - 1 + u32::from(leap && month > 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        min: (rem % 3600 / 60) as u32,
        sec: (rem % 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        yday,
    }
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
pub const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn idx(a: &[&'static str], i: u32) -> &'static str {
    a.get(i as usize).copied().unwrap_or("")
}

/// strftime(3) subset used by `ltime`/`utime`: `%a %A %b %B %C %d %D %e %F %H %I %j %k %l %m
/// %M %n %p %R %s %S %t %T %u %w %y %Y %z %Z %%`. `offset` is the zone's UTC offset.
pub fn strftime(fmt: &[u8], utc_secs: i64, offset: i32, out: &mut Vec<u8>) {
    let c = civil(utc_secs.saturating_add(i64::from(offset)));
    let mut it = fmt.iter();
    while let Some(&ch) = it.next() {
        if ch != b'%' {
            out.push(ch);
            continue;
        }
        let Some(&spec) = it.next() else {
            out.push(b'%');
            break;
        };
        // Writing into a Vec cannot fail.
        let _ = match spec {
            b'a' => write!(out, "{}", idx(&DAYS, c.weekday)),
            b'A' => write!(out, "{}", idx(&LONG_DAYS, c.weekday)),
            b'b' | b'h' => write!(out, "{}", idx(&MONTHS, c.month - 1)),
            b'B' => write!(out, "{}", idx(&LONG_MONTHS, c.month - 1)),
            b'C' => write!(out, "{:02}", c.year / 100),
            b'd' => write!(out, "{:02}", c.day),
            b'D' => write!(out, "{:02}/{:02}/{:02}", c.month, c.day, c.year % 100),
            b'e' => write!(out, "{:2}", c.day),
            b'F' => write!(out, "{}-{:02}-{:02}", c.year, c.month, c.day),
            b'H' => write!(out, "{:02}", c.hour),
            b'I' => write!(out, "{:02}", (c.hour + 11) % 12 + 1),
            b'j' => write!(out, "{:03}", c.yday + 1),
            b'k' => write!(out, "{:2}", c.hour),
            b'l' => write!(out, "{:2}", (c.hour + 11) % 12 + 1),
            b'm' => write!(out, "{:02}", c.month),
            b'M' => write!(out, "{:02}", c.min),
            b'n' => writeln!(out),
            b'p' => write!(out, "{}", if c.hour < 12 { "AM" } else { "PM" }),
            b'R' => write!(out, "{:02}:{:02}", c.hour, c.min),
            b's' => write!(out, "{utc_secs}"),
            b'S' => write!(out, "{:02}", c.sec),
            b't' => write!(out, "\t"),
            b'T' => write!(out, "{:02}:{:02}:{:02}", c.hour, c.min, c.sec),
            b'u' => write!(out, "{}", if c.weekday == 0 { 7 } else { c.weekday }),
            b'w' => write!(out, "{}", c.weekday),
            b'y' => write!(out, "{:02}", c.year % 100),
            b'Y' => write!(out, "{}", c.year),
            b'z' => write_offset(out, offset),
            b'Z' => write!(out, "{}", if offset == 0 { "UTC" } else { "" }),
            b'%' => write!(out, "%"),
            other => write!(out, "%{}", other as char),
        };
    }
}

/// `+hhmm` / `-hhmm`.
pub fn write_offset(out: &mut Vec<u8>, offset: i32) -> std::io::Result<()> {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    write!(out, "{sign}{:02}{:02}", a / 3600, a % 3600 / 60)
}

/// HAProxy's log date `10/Oct/2000:13:55:36` (+ `.mmm` when `ms` is given).
pub fn log_date(out: &mut Vec<u8>, local_secs: i64, ms: Option<i64>) {
    let c = civil(local_secs);
    let _ = write!(
        out,
        "{:02}/{}/{}:{:02}:{:02}:{:02}",
        c.day,
        idx(&MONTHS, c.month - 1),
        c.year,
        c.hour,
        c.min,
        c.sec
    );
    if let Some(ms) = ms {
        let _ = write!(out, ".{:03}", ms.rem_euclid(1000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        // 2000-10-10 13:55:36 UTC (HAProxy's documented log example date), a Tuesday.
        let t = 971_186_136;
        let c = civil(t);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.min, c.sec),
            (2000, 10, 10, 13, 55, 36)
        );
        assert_eq!(c.weekday, 2);
        assert_eq!(civil(0).weekday, 4, "1970-01-01 was a Thursday");
        assert_eq!(civil(951_782_400).yday, 59, "2000-02-29");
        assert_eq!(civil(-1).year, 1969);
        let mut v = Vec::new();
        log_date(&mut v, t, Some(1234));
        assert_eq!(v, b"10/Oct/2000:13:55:36.234");
    }

    #[test]
    fn strftime_specs() {
        let t = 971_186_136;
        let f = |fmt: &str, off: i32| {
            let mut v = Vec::new();
            strftime(fmt.as_bytes(), t, off, &mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(f("%Y-%m-%d %H:%M:%S", 0), "2000-10-10 13:55:36");
        assert_eq!(
            f("%d/%b/%Y:%H:%M:%S %z", 7200),
            "10/Oct/2000:15:55:36 +0200"
        );
        assert_eq!(
            f("%a %A %B %j %u %w %e %I%p %%", 0),
            "Tue Tuesday October 284 2 2 10 01PM %"
        );
        assert_eq!(f("%s", 3600), "971186136");
        assert_eq!(f("%z", -16200), "-0430");
    }
}
