//! Session resumption: one session cache per bind shared by every shard (`tune.ssl.cachesize`
//! entries, entries live `tune.ssl.lifetime`), and session tickets whose keys rotate and are
//! shared by every shard.
//!
//! Time comes from a `TimeProvider` passed in, so tests can age entries without sleeping.
//! The cache sits behind a `Mutex`: shards take it only during full handshakes and
//! resumptions, which cost far more than the lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::time_provider::TimeProvider;

/// HAProxy's defaults: `tune.ssl.cachesize 20000`, `tune.ssl.lifetime 300`.
pub const DEFAULT_CACHESIZE: usize = 20_000;
pub const DEFAULT_LIFETIME_SECS: u32 = 300;

fn now_secs(clock: &dyn TimeProvider) -> u64 {
    clock.current_time().map_or(0, |t| t.as_secs())
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<Vec<u8>, (u64, Vec<u8>)>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<Vec<u8>>,
}

/// A bounded session cache whose entries expire after `lifetime_secs`.
#[derive(Debug)]
pub struct SessionCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
    lifetime_secs: u64,
    clock: Arc<dyn TimeProvider>,
}

impl SessionCache {
    pub fn new(capacity: usize, lifetime_secs: u32, clock: Arc<dyn TimeProvider>) -> Self {
        SessionCache {
            inner: Mutex::new(CacheInner::default()),
            capacity,
            lifetime_secs: u64::from(lifetime_secs),
            clock,
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, key: &[u8], remove: bool) -> Option<Vec<u8>> {
        let now = now_secs(self.clock.as_ref());
        let mut g = self.inner.lock().ok()?;
        let expired = g.map.get(key).is_some_and(|(exp, _)| *exp <= now);
        if expired || remove {
            let v = g.map.remove(key);
            if let Some(pos) = g.order.iter().position(|k| k.as_slice() == key) {
                g.order.remove(pos);
            }
            return if expired { None } else { v.map(|(_, v)| v) };
        }
        g.map.get(key).map(|(_, v)| v.clone())
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let expires = now_secs(self.clock.as_ref()) + self.lifetime_secs;
        let Ok(mut g) = self.inner.lock() else {
            return false;
        };
        if g.map.insert(key.clone(), (expires, value)).is_none() {
            g.order.push_back(key);
        }
        while g.map.len() > self.capacity {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            g.map.remove(&old);
        }
        debug_assert!(g.map.len() <= self.capacity && g.order.len() == g.map.len());
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookup(key, false)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookup(key, true)
    }

    fn can_cache(&self) -> bool {
        self.capacity > 0
    }
}

/// Ticket keys shared by all shards: rustls's rotating ticketer (AES-256 + HMAC, keys replaced
/// every 6 hours, the previous key still accepted), with tickets refused once older than
/// `tune.ssl.lifetime`. Create once per process and clone the `Arc` into every shard.
/// Each ticket sealed or opened takes rustls's read lock on the key state: shared between
/// shards, once per handshake, never per request.
#[derive(Debug)]
pub struct SharedTicketer {
    inner: Arc<dyn ProducesTickets>,
    lifetime_secs: u32,
    clock: Arc<dyn TimeProvider>,
}

impl SharedTicketer {
    pub fn new(
        lifetime_secs: u32,
        clock: Arc<dyn TimeProvider>,
    ) -> Result<Arc<SharedTicketer>, rustls::Error> {
        Ok(Arc::new(SharedTicketer {
            inner: rustls::crypto::aws_lc_rs::Ticketer::new()?,
            lifetime_secs,
            clock,
        }))
    }
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime_secs
    }

    /// The issue time is sealed inside the ticket so `decrypt` can refuse stale ones.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut buf = Vec::with_capacity(8 + plain.len());
        buf.extend_from_slice(&now_secs(self.clock.as_ref()).to_be_bytes());
        buf.extend_from_slice(plain);
        self.inner.encrypt(&buf)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.inner.decrypt(cipher)?;
        let (stamp, rest) = plain.split_at_checked(8)?;
        let issued = u64::from_be_bytes(stamp.try_into().ok()?);
        let now = now_secs(self.clock.as_ref());
        if now >= issued.saturating_add(u64::from(self.lifetime_secs)) {
            return None;
        }
        Some(rest.to_vec())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rustls::pki_types::UnixTime;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A clock tests move by hand.
    #[derive(Debug, Default)]
    pub struct FakeClock(pub AtomicU64);

    impl TimeProvider for FakeClock {
        fn current_time(&self) -> Option<UnixTime> {
            Some(UnixTime::since_unix_epoch(Duration::from_secs(
                self.0.load(Ordering::Relaxed),
            )))
        }
    }

    #[test]
    fn cache_bounds_and_expiry() {
        let clock = Arc::new(FakeClock(AtomicU64::new(1_000)));
        let c = SessionCache::new(2, 10, clock.clone());
        assert!(c.put(b"a".to_vec(), b"1".to_vec()));
        assert!(c.put(b"b".to_vec(), b"2".to_vec()));
        assert!(c.put(b"c".to_vec(), b"3".to_vec()));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(b"a"), None, "oldest evicted");
        assert_eq!(c.get(b"b"), Some(b"2".to_vec()));
        assert_eq!(c.take(b"b"), Some(b"2".to_vec()));
        assert_eq!(c.get(b"b"), None);
        clock.0.store(1_010, Ordering::Relaxed);
        assert_eq!(c.get(b"c"), None, "expired after lifetime");
        assert!(c.is_empty());
        assert!(!SessionCache::new(0, 10, clock).can_cache());
    }

    #[test]
    fn tickets_expire_and_are_shared() {
        let clock = Arc::new(FakeClock(AtomicU64::new(5_000)));
        let t = SharedTicketer::new(300, clock.clone()).unwrap();
        let shard2: Arc<dyn ProducesTickets> = t.clone();
        let ticket = t.encrypt(b"session").unwrap();
        assert_eq!(shard2.decrypt(&ticket), Some(b"session".to_vec()));
        clock.0.store(5_299, Ordering::Relaxed);
        assert!(shard2.decrypt(&ticket).is_some());
        clock.0.store(5_300, Ordering::Relaxed);
        assert_eq!(shard2.decrypt(&ticket), None);
        let other = SharedTicketer::new(300, clock).unwrap();
        assert_eq!(
            other.decrypt(&t.encrypt(b"x").unwrap()),
            None,
            "another process's keys"
        );
    }
}
