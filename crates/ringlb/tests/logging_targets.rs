//! Log targets and syslog framing through the real binary, compared with haproxy 2.6 on the
//! same config: every `format` HAProxy documents (`local`, `rfc3164`, `rfc5424`, `short`,
//! `timed`, `priority`, `iso`, `raw`) sent to UDP listeners in the test, `len` cutting a
//! line, `stdout`/`stderr`/`fd@1` targets read from the process's outputs, and
//! `log-send-hostname`. Only the clock, the pid and the day are masked.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ringlb_testkit::{
    bin_path, free_addr, haproxy_required, http_get, wait_until, write_config, ChildGuard, Haproxy,
    Origin, Ringlb, TempDir,
};

const T: Duration = Duration::from_secs(10);

fn udp_listener() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// The next datagram containing `needle` (raw bytes, trailing `\n` kept).
fn recv_matching(s: &UdpSocket, needle: &str) -> String {
    let mut b = [0u8; 8192];
    for _ in 0..50 {
        let n = s
            .recv(&mut b)
            .unwrap_or_else(|e| panic!("no line with {needle:?}: {e}"));
        let l = String::from_utf8_lossy(&b[..n]).into_owned();
        if l.contains(needle) {
            return l;
        }
    }
    panic!("no log line with {needle:?}");
}

/// Masks the clock (syslog and ISO dates: digits only, the shape stays), the day of month
/// and the pid: words made only of digits, the digits of words shaped like a time, and
/// `TAG[PID]:`. The message is `m=...` so its own
/// numbers are never masked.
fn mask(line: &str) -> String {
    line.split(' ')
        .map(|w| {
            let (pri, rest) = match w.strip_prefix('<').and_then(|r| r.split_once('>')) {
                Some((p, r)) => (format!("<{p}>"), r),
                None => (String::new(), w),
            };
            let timeish = rest.contains(':')
                && rest.len() >= 8
                && rest.chars().next().is_some_and(|c| c.is_ascii_digit())
                && rest
                    .chars()
                    .all(|c| c.is_ascii_digit() || ":.-+TZ".contains(c));
            let rest = if timeish {
                // Digits masked, shape kept: `DDDD-DD-DDTDD:DD:DD.DDDDDD+DD:DD`.
                rest.chars()
                    .map(|c| if c.is_ascii_digit() { 'D' } else { c })
                    .collect()
            } else if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
                "N".to_string()
            } else if let Some(i) = rest.find('[').filter(|_| rest.ends_with("]:")) {
                format!("{}[PID]:", &rest[..i])
            } else {
                rest.to_string()
            };
            format!("{pri}{rest}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One `log` line per format, each to its own UDP listener.
const FORMATS: &[(&str, &str)] = &[
    ("", "local0"),
    ("format local", "local1"),
    ("format rfc3164", "local2"),
    ("format rfc5424", "local3"),
    ("format short", "local4"),
    ("format timed", "local5"),
    ("format priority", "local6"),
    ("format iso", "local7"),
    ("format raw", "user"),
    // `len` (80 to 65535) cuts header + message, then `\n`.
    ("len 80 format priority", "daemon"),
    ("len 100 format short", "daemon"),
];

struct Listeners {
    socks: Vec<(UdpSocket, SocketAddr)>,
}

impl Listeners {
    fn new() -> Listeners {
        Listeners {
            socks: FORMATS.iter().map(|_| udp_listener()).collect(),
        }
    }
}

/// Makes the message longer than the `len` of the tests.
const LONG: &str = "a_rather_long_message_that_len_cuts_somewhere_in_the_middle_0123456789_abcdefghijklmnopqrstuvwxyz";

fn formats_cfg(front: SocketAddr, l: &Listeners, origin: SocketAddr) -> String {
    let logs: String = FORMATS
        .iter()
        .zip(&l.socks)
        .map(|((fmt, fac), (_, a))| format!("    log {a} {fmt} {fac}\n"))
        .collect();
    format!(
        "global
    log-tag lbtag
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {front}
{logs}    log stdout format raw local0
    log fd@1 format short local1
    log stderr format priority local2 info
    option dontlognull
    log-format \"m=%ST_%HM_%HU_{LONG}\"
    default_backend be
backend be
    server s1 {origin}
"
    )
}

fn start(who: &str, path: &std::path::Path, front: SocketAddr) -> ChildGuard {
    if who == "haproxy" {
        Haproxy::start(path, &[front])
    } else {
        Ringlb::start(path, &[front])
    }
}

/// The lines of `text` with `needle`, in order.
fn lines_with(text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

struct Captured {
    /// One masked datagram per entry of `FORMATS`.
    udp: Vec<String>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

fn capture_formats(who: &str, origin: &Origin, dir: &TempDir) -> Captured {
    let l = Listeners::new();
    let front = free_addr();
    let path = write_config(dir, &formats_cfg(front, &l, origin.addr()));
    let proxy = start(who, &path, front);
    let needle = format!("/fmt-{who}");
    assert_eq!(http_get(front, &needle, &[]).unwrap().status, 200);
    let udp = l
        .socks
        .iter()
        .map(|(s, _)| mask(&recv_matching(s, "m=")))
        .collect();
    // Two lines on stdout (stdout and fd@1), one on stderr.
    let done = wait_until(T, || {
        lines_with(&proxy.stdout(), &needle).len() >= 2
            && !lines_with(&proxy.stderr(), "m=").is_empty()
    });
    assert!(
        done,
        "{who}: no log lines on stdout/stderr\n{}",
        proxy.dump()
    );
    let mut stdout = lines_with(&proxy.stdout(), "m=");
    stdout.sort();
    Captured {
        udp,
        stdout,
        stderr: lines_with(&proxy.stderr(), "m="),
    }
}

#[test]
fn every_format_and_len_frame_lines_as_haproxy() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("log-formats");
    let theirs = capture_formats("haproxy", &origin, &dir);
    let ours = capture_formats("ringlb", &origin, &dir);
    for (i, (fmt, fac)) in FORMATS.iter().enumerate() {
        eprintln!(
            "{fmt} {fac}:\n  haproxy {:?}\n  ringlb  {:?}",
            theirs.udp[i], ours.udp[i]
        );
    }
    eprintln!("stdout {:?} / {:?}", theirs.stdout, ours.stdout);
    eprintln!("stderr {:?} / {:?}", theirs.stderr, ours.stderr);
    for (i, (fmt, fac)) in FORMATS.iter().enumerate() {
        // The request path differs (`/fmt-haproxy` vs `/fmt-ringlb`): put it back to one.
        let ours_line = ours.udp[i].replace("/fmt-ringlb", "/fmt-haproxy");
        let theirs_line = &theirs.udp[i];
        if !fmt.starts_with("len") {
            assert_eq!(ours_line, *theirs_line, "log ... {fmt} {fac}");
        }
    }
    // `len`: the path is part of the cut message: compare lengths and the common prefix.
    for (i, (fmt, _)) in FORMATS.iter().enumerate() {
        if let Some(n) = fmt.strip_prefix("len ") {
            let n: usize = n.split(' ').next().unwrap().parse().unwrap();
            let (o, t) = (&ours.udp[i], &theirs.udp[i]);
            assert_eq!(o.len(), n + 1, "{fmt}: {o:?} (haproxy {t:?})");
            assert_eq!(o.len(), t.len(), "{fmt}: {o:?} vs haproxy {t:?}");
            assert!(o.ends_with('\n'), "{fmt}: {o:?}");
            // `/fmt-ringlb` is 1 byte shorter than `/fmt-haproxy`: the cut falls 1 byte later.
            let o = o.replace("/fmt-ringlb", "/fmt-haproxy");
            assert_eq!(o[..n - 1], t[..n - 1], "{fmt}");
        }
    }
    let fix = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| mask(&l.replace("/fmt-ringlb", "/fmt-haproxy")))
            .collect()
    };
    assert_eq!(fix(&ours.stdout), fix(&theirs.stdout), "stdout / fd@1");
    assert_eq!(fix(&ours.stderr), fix(&theirs.stderr), "stderr");
    // Shapes, so that a change in both cannot pass unnoticed.
    assert_eq!(theirs.stdout.len(), 2, "{:?}", theirs.stdout);
    assert!(
        ours.stderr[0].starts_with("<150>m=200_GET_/fmt-ringlb"),
        "{:?}",
        ours.stderr
    );
}

fn hostname_cfg(front: SocketAddr, global: &str, log: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "global
    {global}
    log-tag lbtag
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind {front}
    log {log} local0
    log {log} format rfc5424 local1
    option dontlognull
    log-format \"m=%ST\"
    default_backend be
backend be
    server s1 {origin}
"
    )
}

/// The two lines (default format, then rfc5424) a request logs under `global`.
fn capture_hostname(who: &str, global: &str, origin: &Origin, dir: &TempDir) -> Vec<String> {
    let (sock, log) = udp_listener();
    let front = free_addr();
    let path = write_config(dir, &hostname_cfg(front, global, log, origin.addr()));
    let _proxy = start(who, &path, front);
    assert_eq!(http_get(front, "/", &[]).unwrap().status, 200);
    let mut lines = vec![
        mask(&recv_matching(&sock, "m=")),
        mask(&recv_matching(&sock, "m=")),
    ];
    lines.sort();
    lines
}

#[test]
fn log_send_hostname_switches_to_rfc3164_with_the_host_as_haproxy() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let origin = Origin::start("o");
    let dir = TempDir::new("log-hostname");
    for global in [
        "log-send-hostname edge-01",
        "log-send-hostname",
        "log-tag lbtag",
    ] {
        let theirs = capture_hostname("haproxy", global, &origin, &dir);
        let ours = capture_hostname("ringlb", global, &origin, &dir);
        assert_eq!(ours, theirs, "global {global}");
        if global == "log-send-hostname edge-01" {
            assert!(
                ours.iter()
                    .any(|l| l.contains(" edge-01 lbtag[PID]: m=200")),
                "{ours:?}"
            );
        }
    }
}

#[test]
fn log_len_below_80_is_refused_as_by_haproxy() {
    if !haproxy_required() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let dir = TempDir::new("log-len");
    let path = write_config(
        &dir,
        &"defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend fe\n    bind BIND\n    log 127.0.0.1:514 len 79 local0\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n"
            .replace("BIND", &free_addr().to_string()),
    );
    let theirs = Haproxy::check(&path).unwrap_err();
    assert!(theirs.contains("invalid log length '79'"), "{theirs}");
    let out = std::process::Command::new(bin_path("ringlb"))
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(":8]") && text.contains("79"),
        "names file, line and value: {text}"
    );
}
