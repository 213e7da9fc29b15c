//! Process-level operations knobs of the data plane (issue #10): the global accept-rate limits
//! (`maxconnrate`, `maxsessrate`), kernel socket buffers (`tune.rcvbuf.*`, `tune.sndbuf.*`)
//! and frontend UNIX socket listeners (`bind /path mode ... user ...`, `unix-bind`).
//!
//! Rates across shards: each shard takes ⌈rate / shards⌉ per second (the same split as
//! `maxconn`, see `state::share`), so a process never accepts more than the configured rate
//! plus one per shard and per second. A shard over its share stops accepting: new clients wait
//! in the kernel's backlog, as in HAProxy, and are not refused.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ringlb_config::model::{SockBufs, UnixSocketOpts};

/// Process-wide operations settings the shards apply (from `global`).
#[derive(Debug, Clone, Default)]
pub struct OpsRt {
    /// `maxconnrate` (0 = unlimited), whole process.
    pub conn_rate: u32,
    /// `maxsessrate` (0 = unlimited), whole process.
    pub sess_rate: u32,
    pub sock_bufs: SockBufs,
    /// `close-spread-time`: window over which a soft stop closes idle client connections.
    pub close_spread: Option<Duration>,
}

/// Where in the `close-spread-time` window a connection closes: a fixed point derived from
/// its descriptor number (multiplicative hashing spreads consecutive numbers evenly), so no
/// randomness is needed.
pub fn spread_offset(window: Option<Duration>, fd: i32) -> Duration {
    let Some(window) = window else {
        return Duration::ZERO;
    };
    let h = (fd as u32).wrapping_mul(2_654_435_761);
    let frac = f64::from(h) / f64::from(u32::MAX);
    window.mul_f64(frac)
}

/// Events per second over a sliding one-second window, as HAProxy's `freq_ctr`: the count of
/// the current period plus the previous period's count weighted by the part of it still
/// inside the window. Time is passed in.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Events allowed per second (0 = unlimited).
    limit: u32,
    period_start: Option<Instant>,
    curr: u32,
    prev: u32,
}

const PERIOD: Duration = Duration::from_secs(1);

impl RateLimiter {
    pub fn new(limit: u32) -> RateLimiter {
        RateLimiter {
            limit,
            period_start: None,
            curr: 0,
            prev: 0,
        }
    }

    /// A new limit (`set rate-limit`); the events already counted stay.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = limit;
    }

    fn rotate(&mut self, now: Instant) {
        let start = *self.period_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= PERIOD * 2 {
            self.prev = 0;
            self.curr = 0;
            self.period_start = Some(now);
        } else if elapsed >= PERIOD {
            self.prev = self.curr;
            self.curr = 0;
            self.period_start = Some(start + PERIOD);
        }
    }

    /// The estimated events of the last second at `now`.
    fn estimate(&self, now: Instant) -> u64 {
        let start = self.period_start.unwrap_or(now);
        let into = now.saturating_duration_since(start).min(PERIOD);
        let left_ms = (PERIOD - into).as_millis() as u64;
        u64::from(self.curr) + u64::from(self.prev) * left_ms / PERIOD.as_millis() as u64
    }

    /// `None` when one more event may happen now, else how long to wait before asking again.
    pub fn wait_for(&mut self, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        self.rotate(now);
        if self.estimate(now) < u64::from(self.limit) {
            return None;
        }
        // The estimate falls as the previous period slides out (or at the period's end when
        // it was empty): check again after about one event's worth of time.
        let step = PERIOD / self.limit.max(1);
        Some(step.clamp(Duration::from_millis(1), Duration::from_millis(100)))
    }

    /// Counts one event at `now`.
    pub fn record(&mut self, now: Instant) {
        if self.limit == 0 {
            return;
        }
        self.rotate(now);
        self.curr = self.curr.saturating_add(1);
    }
}

/// Sets `SO_RCVBUF`/`SO_SNDBUF` on a socket (the kernel doubles the value for its own
/// bookkeeping, as for HAProxy). Failures are ignored: the kernel default stays.
pub fn apply_buffers(fd: &impl AsRawFd, rcv: Option<u32>, snd: Option<u32>) {
    for (opt, v) in [(libc::SO_RCVBUF, rcv), (libc::SO_SNDBUF, snd)] {
        let Some(v) = v.and_then(|v| libc::c_int::try_from(v).ok()) else {
            continue;
        };
        // SAFETY: a valid descriptor and an int option value that lives for the call.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// A frontend's UNIX socket listener. UNIX sockets have no SO_REUSEPORT, so the first shard
/// binds it once and every shard accepts on its own duplicate of the descriptor (the kernel
/// hands each connection to one of them); the last shard takes the original, so only shards
/// hold it and a stop closes it.
#[derive(Debug)]
pub struct UnixListenerRt {
    pub path: PathBuf,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub backlog: i32,
    bound: Mutex<Bound>,
}

#[derive(Debug, Default)]
struct Bound {
    fd: Option<OwnedFd>,
    handed: usize,
}

impl UnixListenerRt {
    /// The listener of `bind <path> [mode ..] [uid|user ..] [gid|group ..]` with the
    /// `unix-bind` defaults (prefix, then what the line does not set). Names are looked up now.
    pub fn new(
        path: &Path,
        options: &[(String, Option<String>)],
        defaults: &UnixSocketOpts,
        backlog: i32,
    ) -> Result<UnixListenerRt, String> {
        let get = |k: &str| {
            options
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.clone())
        };
        let path = match &defaults.prefix {
            Some(p) => PathBuf::from(format!("{p}{}", path.display())),
            None => path.to_path_buf(),
        };
        let num = |v: String| v.parse::<u32>().map_err(|_| format!("invalid id '{v}'"));
        let uid = match (get("uid"), get("user")) {
            (Some(u), _) => Some(num(u)?),
            (None, Some(name)) => Some(lookup_user(&name)?),
            (None, None) => match (defaults.uid, &defaults.user) {
                (Some(u), _) => Some(u),
                (None, Some(name)) => Some(lookup_user(name)?),
                (None, None) => None,
            },
        };
        let gid = match (get("gid"), get("group")) {
            (Some(g), _) => Some(num(g)?),
            (None, Some(name)) => Some(lookup_group(&name)?),
            (None, None) => match (defaults.gid, &defaults.group) {
                (Some(g), _) => Some(g),
                (None, Some(name)) => Some(lookup_group(name)?),
                (None, None) => None,
            },
        };
        let mode = match get("mode") {
            Some(m) => Some(u32::from_str_radix(&m, 8).map_err(|_| format!("invalid mode '{m}'"))?),
            None => defaults.mode,
        };
        Ok(UnixListenerRt {
            path,
            mode,
            uid,
            gid,
            backlog,
            bound: Mutex::new(Bound::default()),
        })
    }

    /// This shard's descriptor of the listener (bound by the first caller); `nshards` calls
    /// in all.
    pub fn take_for_shard(&self, nshards: usize) -> std::io::Result<OwnedFd> {
        let mut b = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if b.fd.is_none() {
            b.fd = Some(match self.inherited() {
                Some(fd) => fd,
                None => self.bind()?,
            });
        }
        b.handed += 1;
        let last = b.handed >= nshards;
        match b.fd.take() {
            Some(fd) if last => Ok(fd),
            Some(fd) => {
                let dup = fd.try_clone();
                b.fd = Some(fd);
                dup
            }
            None => Err(std::io::Error::other("listener already handed out")),
        }
    }

    /// `-x`: the old process's socket for this path (haproxy takes it the same way: no bind,
    /// no rename; the path already names it, with the owner and mode it was given). It is
    /// listened on again for this bind's backlog. None when nothing was received for the path,
    /// or when the path no longer names a socket (nobody could reach the old one): bind anew.
    fn inherited(&self) -> Option<OwnedFd> {
        use std::os::unix::fs::FileTypeExt;
        let fd = crate::handoff::take_inherited_unix(&self.path)?;
        let reachable =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_socket());
        // SAFETY: plain syscall on a descriptor we own.
        (reachable && unsafe { libc::listen(fd.as_raw_fd(), self.backlog) } == 0).then_some(fd)
    }

    /// Binds under a temporary name, applies owner and mode, listens, then renames over the
    /// path: a process being replaced keeps serving on its (now unlinked) socket until it
    /// stops, and clients never find the path missing (HAProxy does the same).
    fn bind(&self) -> std::io::Result<OwnedFd> {
        use std::os::unix::ffi::OsStrExt;
        let tmp = PathBuf::from(format!(
            "{}.{}.tmp",
            self.path.display(),
            std::process::id()
        ));
        let bytes = tmp.as_os_str().as_bytes();
        // SAFETY: a zeroed sockaddr_un is valid.
        let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        if bytes.len() >= sa.sun_path.len() {
            return Err(std::io::Error::other("UNIX socket path too long"));
        }
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in sa.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: plain syscall; the descriptor is owned at once.
        let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let _ = std::fs::remove_file(&tmp);
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: sa is a valid sockaddr_un of `len` bytes.
        if unsafe { libc::bind(raw, (&sa as *const libc::sockaddr_un).cast(), len) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let applied = (|| {
            use std::os::unix::fs::PermissionsExt;
            if self.uid.is_some() || self.gid.is_some() {
                std::os::unix::fs::chown(&tmp, self.uid, self.gid)?;
            }
            if let Some(mode) = self.mode {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
            }
            // SAFETY: plain syscall on our descriptor.
            if unsafe { libc::listen(raw, self.backlog) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = applied {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(fd)
    }
}

fn lookup_user(name: &str) -> Result<u32, String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("bad user name '{name}'"))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read before any other call.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!("unknown user '{name}'"));
    }
    // SAFETY: non-null pointer from getpwnam.
    Ok(unsafe { (*pw).pw_uid })
}

fn lookup_group(name: &str) -> Result<u32, String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("bad group name '{name}'"))?;
    // SAFETY: as lookup_user, for getgrnam.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(format!("unknown group '{name}'"));
    }
    // SAFETY: non-null pointer from getgrnam.
    Ok(unsafe { (*gr).gr_gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_the_rate_then_waits() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(5);
        for _ in 0..5 {
            assert_eq!(r.wait_for(t0), None);
            r.record(t0);
        }
        assert!(
            r.wait_for(t0).is_some(),
            "a sixth event in the same instant"
        );
        // Half a second into the next period the previous five still weigh 2 (rounded
        // down): three more fit under 5.
        let t1 = t0 + Duration::from_millis(1500);
        for _ in 0..3 {
            assert_eq!(r.wait_for(t1), None);
            r.record(t1);
        }
        assert!(r.wait_for(t1).is_some(), "3 + 5 * 0.5 reaches the limit");
        // Two idle periods later everything is forgotten.
        let t2 = t0 + Duration::from_secs(4);
        assert_eq!(r.wait_for(t2), None);
    }

    #[test]
    fn over_a_long_run_the_rate_is_kept() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(50);
        let mut events = 0u32;
        // Ask every millisecond for 10 s: at most 50 per second (plus the first window).
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            if r.wait_for(now).is_none() {
                r.record(now);
                events += 1;
            }
        }
        assert!(
            (450..=550).contains(&events),
            "{events} events in 10 s at 50/s"
        );
    }

    #[test]
    fn spread_offsets_cover_the_window() {
        let w = Some(Duration::from_secs(10));
        let offs: Vec<Duration> = (10..110).map(|fd| spread_offset(w, fd)).collect();
        assert!(offs.iter().all(|o| *o <= Duration::from_secs(10)));
        let early = offs.iter().filter(|o| **o < Duration::from_secs(5)).count();
        assert!(
            (35..=65).contains(&early),
            "{early} of 100 in the first half"
        );
        assert_eq!(spread_offset(None, 42), Duration::ZERO);
    }

    #[test]
    fn unlimited_never_waits() {
        let mut r = RateLimiter::new(0);
        let now = Instant::now();
        for _ in 0..1000 {
            r.record(now);
            assert_eq!(r.wait_for(now), None);
        }
    }

    #[test]
    fn unix_options_override_unix_bind_defaults() {
        let defaults = UnixSocketOpts {
            prefix: Some("/run/lb/".into()),
            mode: Some(0o600),
            uid: Some(7),
            gid: Some(8),
            ..Default::default()
        };
        let opts = vec![
            ("mode".to_string(), Some("660".to_string())),
            ("gid".to_string(), Some("9".to_string())),
        ];
        let l = UnixListenerRt::new(Path::new("fe.sock"), &opts, &defaults, 10).unwrap();
        assert_eq!(l.path, PathBuf::from("/run/lb/fe.sock"));
        assert_eq!((l.mode, l.uid, l.gid), (Some(0o660), Some(7), Some(9)));
        assert!(UnixListenerRt::new(
            Path::new("x"),
            &[("user".into(), Some("no-such-user-x".into()))],
            &UnixSocketOpts::default(),
            1
        )
        .is_err());
    }
}
