//! Log targets and the syslog framing HAProxy 2.6 puts around a log line.
//!
//! Owns: [`Facility`], [`Level`], [`Format`], [`Address`], [`LogSpec`] (one `log` line, typed and
//! checked), [`ring::EventRing`] and [`frame`] (header + message + `\n`, truncated to `len`). The message text itself
//! comes from the log-format engine (ringlb-rules); the engine (ringlb-shard) sends the framed
//! bytes without blocking a shard.
//!
//! Framing follows what haproxy 2.6.12 sends (recorded on loopback, see the tests):
//! - `local` (the default): `<PRI>Mmm dd hh:mm:ss TAG[PID]: msg`
//! - `rfc3164`: `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: msg`
//! - `rfc5424`: `<PRI>1 ISO-TIME HOST TAG PID - - msg` (`-` when no host is set)
//! - `priority`: `<PRI>msg`; `short`: `<LEVEL>msg`; `timed`: `<LEVEL>ISO-TIME msg`;
//!   `iso`: `ISO-TIME msg`; `raw`: `msg`.
//!
//! `log-send-hostname` switches the default format from `local` to `rfc3164`. Header and
//! message together are cut to `len` bytes (default 1024), then `\n` is appended.

pub mod mail;
pub mod ring;
mod time;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub use time::Timestamp;

/// The 24 syslog facilities, in code order.
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// The eight syslog levels, most severe first (code order).
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A syslog facility (code 0..=23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    pub fn parse(name: &str) -> Option<Facility> {
        FACILITIES
            .iter()
            .position(|f| *f == name)
            .map(|i| Facility(i as u8))
    }

    pub fn code(self) -> u8 {
        self.0
    }
}

/// A syslog severity (0 = emerg .. 7 = debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Level(u8);

impl Level {
    pub const EMERG: Level = Level(0);
    pub const ALERT: Level = Level(1);
    pub const ERR: Level = Level(3);
    pub const WARNING: Level = Level(4);
    pub const NOTICE: Level = Level(5);
    /// Traffic logs (`option httplog`, `tcplog`, `log-format`) are sent at `info`.
    pub const INFO: Level = Level(6);
    pub const DEBUG: Level = Level(7);

    pub fn parse(name: &str) -> Option<Level> {
        LEVELS
            .iter()
            .position(|l| *l == name)
            .map(|i| Level(i as u8))
    }

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        LEVELS.get(usize::from(self.0)).copied().unwrap_or("debug")
    }
}

/// The header written before the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Local,
    Rfc3164,
    Rfc5424,
    Priority,
    Short,
    Timed,
    Iso,
    Raw,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "local" => Format::Local,
            "rfc3164" => Format::Rfc3164,
            "rfc5424" => Format::Rfc5424,
            "priority" => Format::Priority,
            "short" => Format::Short,
            "timed" => Format::Timed,
            "iso" => Format::Iso,
            "raw" => Format::Raw,
            _ => return None,
        })
    }
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// UDP syslog (`host:port`, `udp@host:port`, `udp4@`, `udp6@`; port 514 by default).
    Udp(SocketAddr),
    /// A datagram UNIX socket (`/dev/log`, `unix@/path`).
    Unix(PathBuf),
    /// `fd@N`, `stdout` (fd 1), `stderr` (fd 2): one write per line, dropped when it would block.
    Fd(i32),
    /// `ring@<name>`: a `ring` section's in-memory buffer (`show events <name>`).
    Ring(String),
}

/// Default syslog port.
pub const SYSLOG_PORT: u16 = 514;
/// Default maximum line length (`len`).
pub const DEFAULT_LEN: usize = 1024;

/// One `log` line, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    pub address: Address,
    pub format: Format,
    pub facility: Facility,
    /// Messages less severe than this are not sent.
    pub max_level: Level,
    /// Messages more severe than this are sent at this level.
    pub min_level: Level,
    pub len: usize,
}

/// Process-wide header fields: `log-send-hostname`, `log-tag`, the pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `Some` once `log-send-hostname` is set (with its argument or the system host name).
    pub hostname: Option<String>,
    /// `log-tag`, or else the program name as launched (HAProxy's rule).
    pub tag: String,
    pub pid: u32,
}

impl LogSpec {
    /// Types a model `log` line (not `log global`, which the caller resolves).
    /// `send_hostname`: `log-send-hostname` is set (it changes the default format).
    pub fn from_model(
        target: &ringlb_config::model::LogTarget,
        send_hostname: bool,
    ) -> Result<LogSpec, String> {
        let address = parse_address(&target.target)?;
        let format = match &target.format {
            Some(f) => Format::parse(f).ok_or_else(|| {
                format!("unknown log format '{f}' (expects local, rfc3164, rfc5424, priority, short, timed, iso or raw)")
            })?,
            None if send_hostname => Format::Rfc3164,
            None => Format::Local,
        };
        let fac_name = target
            .facility
            .as_deref()
            .ok_or_else(|| "missing log facility".to_string())?;
        let facility = Facility::parse(fac_name)
            .ok_or_else(|| format!("unknown log facility '{fac_name}'"))?;
        let max_level = match &target.level {
            Some(l) => Level::parse(l).ok_or_else(|| format!("unknown log level '{l}'"))?,
            None => Level::DEBUG,
        };
        let min_level = match &target.min_level {
            Some(l) => Level::parse(l).ok_or_else(|| format!("unknown log level '{l}'"))?,
            None => Level::EMERG,
        };
        let len = match target.len {
            Some(n) if (80..=65535).contains(&n) => n as usize,
            Some(n) => return Err(format!("log len {n} out of range (80 to 65535)")),
            None => DEFAULT_LEN,
        };
        Ok(LogSpec {
            address,
            format,
            facility,
            max_level,
            min_level,
            len,
        })
    }

    /// The level a message of `level` is sent at, or `None` when it is filtered out.
    pub fn effective_level(&self, level: Level) -> Option<Level> {
        if level > self.max_level {
            return None;
        }
        Some(level.max(self.min_level))
    }
}

/// Parses a `log` address. Host names are not resolved here: only literal addresses.
pub fn parse_address(s: &str) -> Result<Address, String> {
    match s {
        "stdout" => return Ok(Address::Fd(1)),
        "stderr" => return Ok(Address::Fd(2)),
        _ => {}
    }
    if let Some(n) = s.strip_prefix("fd@") {
        return n
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Address::Fd)
            .ok_or_else(|| format!("invalid file descriptor in '{s}'"));
    }
    if let Some(p) = s.strip_prefix("unix@") {
        return Ok(Address::Unix(PathBuf::from(p)));
    }
    if s.starts_with('/') {
        return Ok(Address::Unix(PathBuf::from(s)));
    }
    if let Some(name) = s.strip_prefix("ring@") {
        if name.is_empty() {
            return Err(format!("log target '{s}': missing ring name"));
        }
        return Ok(Address::Ring(name.to_string()));
    }
    let rest = ["udp@", "udp4@", "udp6@", "ipv4@", "ipv6@"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    if rest.contains('@') {
        return Err(format!("unsupported log address family in '{s}'"));
    }
    parse_host_port(rest).map(Address::Udp).ok_or_else(|| {
        format!("log target '{s}': expects an IP address with an optional port, a UNIX socket path, fd@N, stdout or stderr")
    })
}

fn parse_host_port(s: &str) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa); // `1.2.3.4:514`, `[::1]:514`
    }
    if let Ok(ip) = s.parse::<std::net::Ipv4Addr>() {
        return Some(SocketAddr::new(IpAddr::V4(ip), SYSLOG_PORT));
    }
    // As HAProxy: the port follows the last colon (`1.2.3.4:`, `::1:514`, `[::1]`).
    let (host, port) = match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(h) => (h, ""),
        None => s.rsplit_once(':')?,
    };
    let port = if port.is_empty() {
        SYSLOG_PORT
    } else {
        port.parse().ok()?
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(SocketAddr::new(host.parse().ok()?, port))
}

/// Writes `header + msg` cut to `spec.len` bytes, then `\n`, into `out` (cleared first).
/// `level` is the already-filtered level ([`LogSpec::effective_level`]).
pub fn frame(
    out: &mut Vec<u8>,
    spec: &LogSpec,
    origin: &Origin,
    level: Level,
    ts: &Timestamp,
    msg: &[u8],
) {
    frame_sd(out, spec, origin, level, ts, None, msg);
}

/// [`frame`] with RFC5424 structured data (`log-format-sd`): written in place of the `-`
/// after the MSGID, as haproxy does, and only by `format rfc5424` targets (the others
/// ignore it). An empty `sd` is written as `-`.
pub fn frame_sd(
    out: &mut Vec<u8>,
    spec: &LogSpec,
    origin: &Origin,
    level: Level,
    ts: &Timestamp,
    sd: Option<&[u8]>,
    msg: &[u8],
) {
    out.clear();
    let pri = u16::from(spec.facility.code()) * 8 + u16::from(level.code());
    let mut num = itoa_buf();
    match spec.format {
        Format::Local | Format::Rfc3164 => {
            push_pri(out, pri, &mut num);
            ts.write_rfc3164(out);
            out.push(b' ');
            if spec.format == Format::Rfc3164 {
                // haproxy 2.6 writes "localhost" when no host name was configured.
                let host = origin.hostname.as_deref().unwrap_or("localhost");
                out.extend_from_slice(host.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(origin.tag.as_bytes());
            out.push(b'[');
            out.extend_from_slice(fmt_u(&mut num, u64::from(origin.pid)));
            out.extend_from_slice(b"]: ");
        }
        Format::Rfc5424 => {
            push_pri(out, pri, &mut num);
            out.extend_from_slice(b"1 ");
            ts.write_iso(out);
            out.push(b' ');
            out.extend_from_slice(origin.hostname.as_deref().unwrap_or("-").as_bytes());
            out.push(b' ');
            out.extend_from_slice(origin.tag.as_bytes());
            out.push(b' ');
            out.extend_from_slice(fmt_u(&mut num, u64::from(origin.pid)));
            out.extend_from_slice(b" - ");
            match sd.filter(|s| !s.is_empty()) {
                Some(sd) => out.extend_from_slice(sd),
                None => out.push(b'-'),
            }
            out.push(b' ');
        }
        Format::Priority => push_pri(out, pri, &mut num),
        Format::Short => push_pri(out, u16::from(level.code()), &mut num),
        Format::Timed => {
            push_pri(out, u16::from(level.code()), &mut num);
            ts.write_iso(out);
            out.push(b' ');
        }
        Format::Iso => {
            ts.write_iso(out);
            out.push(b' ');
        }
        Format::Raw => {}
    }
    let room = spec.len.saturating_sub(out.len());
    out.extend_from_slice(msg.get(..room).unwrap_or(msg));
    out.truncate(spec.len);
    out.push(b'\n');
}

fn push_pri(out: &mut Vec<u8>, pri: u16, num: &mut [u8; 20]) {
    out.push(b'<');
    out.extend_from_slice(fmt_u(num, u64::from(pri)));
    out.push(b'>');
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Decimal digits of `v` in `buf` (no allocation).
pub(crate) fn fmt_u(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from haproxy 2.6.12 (global `log-send-hostname`, `log-tag myproxy`, host "vm",
    // pid 31551) for one `option httplog` line at 2026-11-23T23:54:45.377436Z.
    const MSG: &[u8] = b"127.0.0.1:34464 [23/Nov/2026:23:54:45.375] fe fe/<NOSRV> 0/-1/-1/-1/0 200 76 - - LR-- 1/1/0/0/0 0/0 \"GET /x?y=1 HTTP/1.1\"";

    fn spec(line: &str, send_hostname: bool) -> LogSpec {
        let w: Vec<&str> = line.split_whitespace().collect();
        let mut t = ringlb_config::model::LogTarget {
            loc: ringlb_config::model::Loc::default(),
            global: false,
            target: w[0].to_string(),
            facility: None,
            level: None,
            min_level: None,
            len: None,
            format: None,
        };
        let mut i = 1;
        while i < w.len() {
            match w[i] {
                "len" => {
                    t.len = Some(w[i + 1].parse().unwrap());
                    i += 2;
                }
                "format" => {
                    t.format = Some(w[i + 1].to_string());
                    i += 2;
                }
                f if t.facility.is_none() => {
                    t.facility = Some(f.to_string());
                    i += 1;
                }
                l if t.level.is_none() => {
                    t.level = Some(l.to_string());
                    i += 1;
                }
                l => {
                    t.min_level = Some(l.to_string());
                    i += 1;
                }
            }
        }
        LogSpec::from_model(&t, send_hostname).unwrap()
    }

    fn framed(line: &str, send_hostname: bool, hostname: Option<&str>, us: u32) -> String {
        let s = spec(line, send_hostname);
        let origin = Origin {
            hostname: hostname.map(str::to_string),
            tag: "myproxy".into(),
            pid: 31551,
        };
        let ts = Timestamp::from_unix(1_795_478_085, us, 0);
        let mut out = Vec::new();
        frame(&mut out, &s, &origin, Level::INFO, &ts, MSG);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_match_haproxy_recordings() {
        let cases: &[(&str, u32, &str)] = &[
            (
                "127.0.0.1:5514 local0",
                377_000,
                "<134>Nov 23 23:54:45 vm myproxy[31551]: ",
            ),
            (
                "127.0.0.1:5520 format rfc3164 local2",
                377_000,
                "<150>Nov 23 23:54:45 vm myproxy[31551]: ",
            ),
            (
                "127.0.0.1:5517 format timed local2",
                377_458,
                "<6>2026-11-23T23:54:45.377458+00:00 ",
            ),
            (
                "127.0.0.1:5518 format iso local2",
                377_463,
                "2026-11-23T23:54:45.377463+00:00 ",
            ),
            ("127.0.0.1:5519 format priority local2", 0, "<150>"),
            ("127.0.0.1:5519 format short local2", 0, "<6>"),
        ];
        for (line, us, header) in cases {
            let got = framed(line, true, Some("vm"), *us);
            let want = format!("{header}{}\n", String::from_utf8_lossy(MSG));
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn len_cuts_header_and_message_then_adds_newline() {
        assert_eq!(
            framed(
                "127.0.0.1:5515 len 80 format rfc3164 local1 info",
                true,
                Some("vm"),
                0
            ),
            "<142>Nov 23 23:54:45 vm myproxy[31551]: 127.0.0.1:34464 [23/Nov/2026:23:54:45.37\n"
        );
        assert_eq!(
            framed("127.0.0.1:5516 len 100 format rfc5424 local2", true, Some("vm"), 377_436),
            "<150>1 2026-11-23T23:54:45.377436+00:00 vm myproxy 31551 - - 127.0.0.1:34464 [23/Nov/2026:23:54:45.3\n"
        );
        assert_eq!(
            framed(
                "127.0.0.1:5521 len 80 format raw local2",
                true,
                Some("vm"),
                0
            ),
            "127.0.0.1:34464 [23/Nov/2026:23:54:45.375] fe fe/<NOSRV> 0/-1/-1/-1/0 200 76 - -\n"
        );
    }

    #[test]
    fn without_send_hostname() {
        // Recorded without log-send-hostname: `local` has no host; rfc3164 says "localhost";
        // rfc5424 says "-".
        let got = framed("127.0.0.1:5514 local0", false, None, 0);
        assert!(
            got.starts_with("<134>Nov 23 23:54:45 myproxy[31551]: 127.0.0.1"),
            "{got}"
        );
        let got = framed("127.0.0.1:5520 format rfc3164 local2", false, None, 0);
        assert!(
            got.starts_with("<150>Nov 23 23:54:45 localhost myproxy[31551]: "),
            "{got}"
        );
        let got = framed(
            "127.0.0.1:5515 format rfc5424 local1 info",
            false,
            None,
            689_560,
        );
        assert!(
            got.starts_with("<142>1 2026-11-23T23:54:45.689560+00:00 - myproxy 31551 - - 127"),
            "{got}"
        );
    }

    #[test]
    fn structured_data_only_in_rfc5424() {
        // Recorded from haproxy 2.6.12: `log-format-sd [exampleSDID@1234\ bytes=\"%B\"\
        // status=\"%ST\"]`, `log-format "%ci %ST %ts"`, `format rfc5424`, level err
        // (`option log-separate-errors`, a 503).
        let ts = Timestamp::from_unix(1_795_489_075, 219_381, 0);
        let origin = Origin {
            hostname: None,
            tag: "proxy".into(),
            pid: 11724,
        };
        let sd = br#"[exampleSDID@1234 bytes="217" status="503"]"#;
        let mut out = Vec::new();
        let s = spec("127.0.0.1:5515 format rfc5424 local0", false);
        frame_sd(
            &mut out,
            &s,
            &origin,
            Level::ERR,
            &ts,
            Some(sd),
            b"127.0.0.1 503 SC",
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "<131>1 2026-11-24T02:57:55.219381+00:00 - proxy 11724 - [exampleSDID@1234 bytes=\"217\" status=\"503\"] 127.0.0.1 503 SC\n"
        );
        // Empty structured data is the nil value; other formats ignore it.
        frame_sd(&mut out, &s, &origin, Level::ERR, &ts, Some(b""), b"m");
        assert!(out.ends_with(b" 11724 - - m\n"), "{out:?}");
        let local = spec("127.0.0.1:5515 local0", false);
        frame_sd(&mut out, &local, &origin, Level::ERR, &ts, Some(sd), b"m");
        assert!(out.ends_with(b"proxy[11724]: m\n"), "{out:?}");
    }

    #[test]
    fn levels_filter_and_cap() {
        let s = spec("127.0.0.1 local0 notice err", false);
        assert_eq!(s.effective_level(Level::INFO), None);
        assert_eq!(s.effective_level(Level::NOTICE), Some(Level::NOTICE));
        assert_eq!(s.effective_level(Level::EMERG), Some(Level::ERR));
        let all = spec("127.0.0.1 local0", false);
        assert_eq!(all.effective_level(Level::DEBUG), Some(Level::DEBUG));
    }

    #[test]
    fn addresses() {
        let udp = |s: &str| Address::Udp(s.parse().unwrap());
        assert_eq!(parse_address("127.0.0.1").unwrap(), udp("127.0.0.1:514"));
        assert_eq!(
            parse_address("127.0.0.1:1514").unwrap(),
            udp("127.0.0.1:1514")
        );
        assert_eq!(
            parse_address("udp@10.0.0.1:55").unwrap(),
            udp("10.0.0.1:55")
        );
        assert_eq!(parse_address("::1:514").unwrap(), udp("[::1]:514"));
        assert_eq!(parse_address("[::1]:600").unwrap(), udp("[::1]:600"));
        assert_eq!(parse_address("[::1]").unwrap(), udp("[::1]:514"));
        assert_eq!(parse_address("10.1.1.1:").unwrap(), udp("10.1.1.1:514"));
        assert_eq!(
            parse_address("/dev/log").unwrap(),
            Address::Unix("/dev/log".into())
        );
        assert_eq!(parse_address("stdout").unwrap(), Address::Fd(1));
        assert_eq!(parse_address("stderr").unwrap(), Address::Fd(2));
        assert_eq!(parse_address("fd@3").unwrap(), Address::Fd(3));
        assert!(parse_address("fd@x").is_err());
        assert_eq!(
            parse_address("ring@buf").unwrap(),
            Address::Ring("buf".into())
        );
        assert!(parse_address("ring@").is_err());
        assert!(parse_address("logs.example.com:514").is_err());
    }

    #[test]
    fn bad_specs_are_errors() {
        let mut t = ringlb_config::model::LogTarget {
            loc: ringlb_config::model::Loc::default(),
            global: false,
            target: "127.0.0.1".into(),
            facility: Some("local9".into()),
            level: None,
            min_level: None,
            len: None,
            format: None,
        };
        assert!(LogSpec::from_model(&t, false)
            .unwrap_err()
            .contains("facility"));
        t.facility = Some("local0".into());
        t.len = Some(50);
        assert!(LogSpec::from_model(&t, false).unwrap_err().contains("len"));
        t.len = None;
        t.format = Some("json".into());
        assert!(LogSpec::from_model(&t, false)
            .unwrap_err()
            .contains("format"));
    }
}
