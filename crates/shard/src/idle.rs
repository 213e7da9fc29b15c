//! Whether a server connection that just became idle is kept in its server's pool: haproxy
//! 2.6's rule (`srv_add_to_idle_list`), applied to one shard's pool.
//!
//! haproxy keeps the connection when its thread has no safe idle connection (one that
//! carried more than one request) and the connection is safe or the thread has no idle one
//! at all, or else when the server's connections in use and idle together stay within the
//! estimated need (`need_conn_est`: the recent peak of connections in use) plus
//! `pool-low-conn`. Its first condition is per thread and its second counts the whole
//! process; here a shard is the thread and its own counts stand for the process's (a shard
//! never reads another's pool), which is haproxy's rule exactly with one shard. The limits
//! both apply anyway (`pool-max-conn`, the file-descriptor ratios) are the caller's.

/// What the rule weighs, as one shard sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdleAdmission {
    /// The connection carried more than one request (haproxy's "safe" connections).
    pub is_safe: bool,
    /// The shard's pool of the server holds a safe connection already.
    pub has_safe_idle: bool,
    /// Connections of the server idle in the shard's pool.
    pub idle: u32,
    /// Connections of the server in use on the shard, this one included (it is released
    /// after the decision, as haproxy decrements its count after it).
    pub used: u32,
    /// The estimated need of connections (`need_conn_est`).
    pub est_need: u32,
    /// `pool-low-conn` (0 by default).
    pub low_idle: u32,
}

/// haproxy's decision for `a` (see the module's documentation).
pub fn keep_idle(a: &IdleAdmission) -> bool {
    let first_of_its_kind = !a.has_safe_idle && (a.is_safe || a.idle == 0);
    let within_need = u64::from(a.used) + u64::from(a.idle)
        <= u64::from(a.used.max(a.est_need)) + u64::from(a.low_idle);
    first_of_its_kind || within_need
}

/// Which idle connection a request takes from a shard's pool (ordered oldest first), among those
/// `fits` accepts: haproxy 2.6's `connect_server` looks for an unsafe connection (one that
/// carried a single request) before a safe one for a request after a session's first
/// (`prefer_unsafe`), and for a safe one first otherwise (a first request with `http-reuse
/// always`). Within a kind, the most recently pooled.
pub fn pick<T>(
    pool: &[T],
    is_safe: impl Fn(&T) -> bool,
    fits: impl Fn(&T) -> bool,
    prefer_unsafe: bool,
) -> Option<usize> {
    pool.iter()
        .rposition(|c| fits(c) && is_safe(c) != prefer_unsafe)
        .or_else(|| pool.iter().rposition(&fits))
}

/// One server's idle connections on a shard, most recently pooled last, with the count of
/// the unsafe ones (a single request carried): a pick that prefers one kind does not scan a
/// pool holding none of it, the common case once keep-alive traffic made every connection
/// safe.
#[derive(Default)]
pub struct IdlePool {
    conns: Vec<crate::state::IdleConn>,
    unsafe_n: usize,
}

fn is_safe(c: &crate::state::IdleConn) -> bool {
    c.conn.reuses >= 2
}

impl IdlePool {
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Connections that carried more than one request.
    pub fn safe_count(&self) -> usize {
        self.conns.len() - self.unsafe_n
    }

    pub fn iter(&self) -> std::slice::Iter<'_, crate::state::IdleConn> {
        self.conns.iter()
    }

    pub fn push(&mut self, c: crate::state::IdleConn) {
        self.unsafe_n += usize::from(!is_safe(&c));
        self.conns.push(c);
    }

    /// Takes the connection [`pick`] chooses among those `fits` accepts.
    pub fn take(
        &mut self,
        fits: impl Fn(&crate::state::IdleConn) -> bool,
        prefer_unsafe: bool,
    ) -> Option<crate::state::IdleConn> {
        let preferred_present = if prefer_unsafe {
            self.unsafe_n > 0
        } else {
            self.safe_count() > 0
        };
        let pos = if preferred_present {
            pick(&self.conns, is_safe, fits, prefer_unsafe)?
        } else {
            self.conns.iter().rposition(fits)?
        };
        let c = self.conns.remove(pos);
        self.unsafe_n -= usize::from(!is_safe(&c));
        Some(c)
    }

    /// Keeps the connections `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&crate::state::IdleConn) -> bool) {
        self.conns.retain(keep);
        self.recount();
    }

    /// Removes the `n` oldest connections.
    pub fn drain_oldest(&mut self, n: usize) -> Vec<crate::state::IdleConn> {
        let out: Vec<_> = self.conns.drain(..n.min(self.conns.len())).collect();
        self.recount();
        out
    }

    /// Removes every connection.
    pub fn take_all(&mut self) -> Vec<crate::state::IdleConn> {
        self.unsafe_n = 0;
        std::mem::take(&mut self.conns)
    }

    fn recount(&mut self) {
        self.unsafe_n = self.conns.iter().filter(|c| !is_safe(c)).count();
    }
}

#[cfg(test)]
mod tests {
    use super::{keep_idle, pick, IdleAdmission};

    /// Requests after a session's first prove unsafe connections before reusing safe ones;
    /// a first request (`always`) takes a safe one first.
    #[test]
    fn unsafe_connections_are_taken_first_by_later_requests() {
        // Pool of connections by requests carried, oldest first.
        let pool = [2u32, 1, 1, 3];
        let safe = |r: &u32| *r >= 2;
        assert_eq!(pick(&pool, safe, |_| true, true), Some(2));
        assert_eq!(pick(&pool, safe, |_| true, false), Some(3));
        assert_eq!(
            pick(&pool, safe, |r| *r >= 2, true),
            Some(3),
            "only safe ones fit"
        );
        assert_eq!(pick(&[2u32], safe, |_| true, true), Some(0));
        assert_eq!(pick(&[] as &[u32], safe, |_| true, true), None);
    }

    fn after(is_safe: bool, has_safe_idle: bool, idle: u32, used: u32, est_need: u32) -> bool {
        keep_idle(&IdleAdmission {
            is_safe,
            has_safe_idle,
            idle,
            used,
            est_need,
            low_idle: 0,
        })
    }

    /// Requests one after the other, each on its own client connection (`Connection:
    /// close`, `http-reuse safe`: each gets a new server connection): the first one is kept,
    /// later ones are closed (haproxy 2.6 with one thread keeps 1 idle connection).
    #[test]
    fn one_unsafe_connection_is_kept_for_sequential_first_requests() {
        assert!(after(false, false, 0, 1, 1));
        assert!(!after(false, false, 1, 1, 1));
    }

    /// A connection that served several requests replaces nothing but is kept when the
    /// pool has no safe connection yet, even beside an unsafe one.
    #[test]
    fn a_first_safe_connection_is_kept_beside_unsafe_ones() {
        assert!(after(true, false, 1, 1, 1));
        assert!(!after(true, true, 1, 1, 1));
    }

    /// Under concurrency the need grows: connections released while others are in use
    /// are kept up to the estimated need, plus `pool-low-conn`.
    #[test]
    fn connections_are_kept_up_to_the_estimated_need() {
        // 5 in use at the peak, released one after the other: kept while in use and idle
        // stay within the need of 5.
        assert!(after(false, false, 0, 5, 5));
        assert!(after(false, true, 1, 4, 5));
        assert!(!after(false, true, 2, 4, 5));
        assert!(keep_idle(&IdleAdmission {
            is_safe: false,
            has_safe_idle: true,
            idle: 2,
            used: 4,
            est_need: 5,
            low_idle: 1,
        }));
    }
}
