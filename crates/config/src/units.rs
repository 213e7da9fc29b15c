//! Numbers with units: times (`us ms s m h d`, default ms) and sizes (`k m g`, powers of 1024),
//! as in HAProxy's configuration manual section 2.5.
//!
//! Owns: [`parse_time`], [`parse_size`], [`parse_u32`] and friends. Errors are messages only.

use std::time::Duration;

/// Parses a time value; default unit is milliseconds.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    parse_time_unit(s, 1_000)
}

/// Parses a time whose unit defaults to `default_us` microseconds (1_000 for ms, 1_000_000 for s).
pub fn parse_time_unit(s: &str, default_us: u64) -> Result<Duration, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(match s.chars().next() {
            Some(c) => format!("unexpected character '{c}'"),
            None => "missing time value".to_string(),
        });
    }
    let (num, unit) = s.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("timer overflow in '{s}'"))?;
    let mult_us: u64 = match unit {
        "" => default_us,
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => {
            let c = unit.chars().next().unwrap_or(' ');
            return Err(format!("unexpected character '{c}'"));
        }
    };
    let us = n
        .checked_mul(mult_us)
        .filter(|us| *us / 1_000 <= i32::MAX as u64)
        .ok_or_else(|| {
            format!(
                "timer overflow in argument '{s}' (maximum value is 2147483647 ms or ~24.8 days)"
            )
        })?;
    Ok(Duration::from_micros(us))
}

/// Parses a size with optional `k`/`m`/`g` suffix (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("invalid size '{s}'"));
    }
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("size overflow in '{s}'"))?;
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(format!("unexpected unit in size '{s}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size overflow in '{s}'"))
}

/// Parses a non-negative integer that fits u32.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a valid positive integer"));
    }
    s.parse().map_err(|_| format!("'{s}' is out of range"))
}

/// Parses a TCP port (1-65535; 0 is rejected).
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port '{s}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_time("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_time("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(parse_time("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_time("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_time("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(
            parse_time_unit("3", 1_000_000).unwrap(),
            Duration::from_secs(3)
        );
        assert!(parse_time("5x").unwrap_err().contains("'x'"));
        assert!(parse_time("$HOME").unwrap_err().contains("'$'"));
        assert!(parse_time("").is_err());
        assert!(
            parse_time("30d").is_err(),
            "above 24.8 days overflows like haproxy"
        );
        assert!(parse_time("99999999999999999999").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("200k").unwrap(), 200 * 1024);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("16384").unwrap(), 16384);
        assert!(parse_size("1t").is_err());
        assert!(parse_size("k").is_err());
    }

    #[test]
    fn integers_and_ports() {
        assert_eq!(parse_u32("42").unwrap(), 42);
        assert!(parse_u32("-1").is_err());
        assert!(parse_u32("4294967296").is_err());
        assert_eq!(parse_port("80").unwrap(), 80);
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
    }
}
