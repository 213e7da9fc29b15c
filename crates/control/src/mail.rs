//! Email alerts (`mailers` section, `email-alert mailers|from|to|level|myhostname`, `timeout
//! mail`): on a server state change, the control shard sends the event to every mailer of
//! the backend's `mailers` section over plain SMTP, as haproxy 2.6 does (the dialogue and
//! the message are built by [`ringlb_log::mail`]). Rare events: each alert runs on a
//! short-lived thread with blocking sockets bounded by `timeout mail`, so the control
//! executor never waits on a mail server. Delivery is best effort, as in haproxy: a failed
//! mail is reported on stderr and not retried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use ringlb_config::model::Config;
use ringlb_log::mail::{mail_date, reply_matches, smtp_steps, MailAlert};
use ringlb_log::Level;

/// haproxy's default `timeout mail`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest SMTP reply line read (a server sending more is broken).
const MAX_REPLY: usize = 4096;

/// One backend's alert settings.
#[derive(Debug)]
struct BackendMail {
    from: String,
    to: String,
    myhostname: String,
    /// `email-alert level` (default `alert`): events at this level or more severe are sent.
    level: Level,
    mailers: Vec<SocketAddr>,
    timeout: Duration,
}

/// The alert settings of every enabled backend, by topology index.
#[derive(Debug, Clone, Default)]
pub struct MailPlan {
    backends: Vec<Option<Arc<BackendMail>>>,
}

impl MailPlan {
    /// Reads `email-alert` of each enabled backend (indices as the topology's). A backend
    /// naming a missing `mailers` section is an error; one without `from` or `to` sends
    /// nothing, with a warning (haproxy's behaviour).
    pub fn from_config(
        cfg: &Config,
        errors: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> MailPlan {
        let backends = cfg
            .backends
            .iter()
            .filter(|b| !b.disabled)
            .map(|be| {
                let arg = |kw: &str| -> Option<String> {
                    be.other
                        .iter()
                        .rev()
                        .find(|d| d.keyword == kw)
                        .and_then(|d| d.args.first().cloned())
                };
                let section = arg("email-alert mailers");
                let (from, to) = (arg("email-alert from"), arg("email-alert to"));
                let any = section.is_some() || from.is_some() || to.is_some();
                if !any {
                    return None;
                }
                let (Some(section), Some(from), Some(to)) = (section, from, to) else {
                    warnings.push(format!(
                        "'email-alert' will be ignored for backend '{}' since 'email-alert mailers', 'email-alert from' and 'email-alert to' are not all set.",
                        be.name
                    ));
                    return None;
                };
                let Some(m) = cfg.mailers.iter().find(|m| m.name == section) else {
                    errors.push(format!(
                        "backend '{}': 'email-alert mailers' refers to unknown mailers section '{section}'",
                        be.name
                    ));
                    return None;
                };
                let level = match arg("email-alert level") {
                    None => Level::ALERT,
                    Some(l) => match Level::parse(&l) {
                        Some(l) => l,
                        None => {
                            errors.push(format!(
                                "backend '{}': 'email-alert level': unknown log level '{l}'",
                                be.name
                            ));
                            return None;
                        }
                    },
                };
                let mut mailers = Vec::new();
                for e in &m.mailers {
                    match e.address.to_socket_addrs().ok().and_then(|mut a| a.next()) {
                        Some(a) => mailers.push(a),
                        None => errors.push(format!(
                            "mailers '{}': mailer '{}': cannot resolve '{}'",
                            m.name, e.name, e.address
                        )),
                    }
                }
                Some(Arc::new(BackendMail {
                    from,
                    to,
                    myhostname: arg("email-alert myhostname").unwrap_or_else(hostname),
                    level,
                    mailers,
                    timeout: m.timeout_mail.unwrap_or(DEFAULT_TIMEOUT),
                }))
            })
            .collect();
        MailPlan { backends }
    }

    /// Whether any backend sends alerts.
    pub fn is_empty(&self) -> bool {
        self.backends.iter().all(Option::is_none)
    }

    /// Sends `msg` (a state-change line; its final `.` is dropped as haproxy does) about
    /// backend `b` at `level`, if the backend's `email-alert level` takes it.
    pub fn alert(&self, b: usize, level: Level, msg: &str) {
        let Some(Some(cfg)) = self.backends.get(b) else {
            return;
        };
        if level.code() > cfg.level.code() {
            return;
        }
        let msg = msg.strip_suffix('.').unwrap_or(msg).to_string();
        let cfg = cfg.clone();
        let spawned = std::thread::Builder::new()
            .name("ringlb-mail".into())
            .spawn(move || {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let (offset, zone) = local_zone();
                let date = mail_date(now, offset, &zone);
                for addr in &cfg.mailers {
                    let a = MailAlert {
                        from: &cfg.from,
                        to: &cfg.to,
                        myhostname: &cfg.myhostname,
                        date: &date,
                        msg: &msg,
                    };
                    if let Err(e) = send(*addr, cfg.timeout, &a) {
                        eprintln!(
                            "[WARNING]  ({}) : email alert to {addr} failed: {e}",
                            std::process::id()
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!(
                "[WARNING]  ({}) : email alert not sent: {e}",
                std::process::id()
            );
        }
    }
}

/// Which state-change lines are mailed, and at which level (haproxy's `send_email_alert`
/// calls: DOWN at alert, UP at notice, `option log-health-checks` lines at info).
pub fn level_of(msg: &str) -> Option<Level> {
    if msg.contains(" check for ") {
        Some(Level::INFO)
    } else if msg.contains(" is DOWN") {
        Some(Level::ALERT)
    } else if msg.contains(" is UP") {
        Some(Level::NOTICE)
    } else {
        None
    }
}

/// Runs the dialogue with one mailer.
fn send(addr: SocketAddr, timeout: Duration, a: &MailAlert<'_>) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = Vec::with_capacity(128);
    for step in smtp_steps(a) {
        if let Some(data) = &step.send {
            s.write_all(data)?;
        }
        // Multi-line replies (`250-...`) end with the line that has a space after the code.
        loop {
            line.clear();
            let n = (&mut r)
                .take(MAX_REPLY as u64)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed, expected '{}'", step.expect.trim_end()),
                ));
            }
            if reply_matches(&line, step.expect) {
                break;
            }
            if line.get(3) != Some(&b'-') {
                return Err(std::io::Error::other(format!(
                    "expected '{}', got '{}'",
                    step.expect.trim_end(),
                    String::from_utf8_lossy(&line).trim_end()
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`, which we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned()
}

/// The local UTC offset and zone abbreviation (`%z`, `%Z`) now.
fn local_zone() -> (i32, String) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: localtime_r writes only into `tm`, which we own; tm_zone then points to a
    // static string of the C library (or is null), read at once.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return (0, "UTC".into());
        }
        let zone = if tm.tm_zone.is_null() {
            "UTC".to_string()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        (tm.tm_gmtoff as i32, zone)
    }
}
