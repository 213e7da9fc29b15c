//! One shard's instance of a stick table: fixed-layout entries in flat arenas, a key index,
//! an LRU list of idle entries, expiry and eviction, all driven by an injected clock (ms).
//!
//! Memory: an entry costs `4 * layout.stride()` data bytes, `key_len` key bytes in the key
//! arena, a 40-byte slot record, and one index record (32 bytes: the key inline up to 16 bytes
//! or boxed beyond — then plus its heap block —, the slot number; and a hash control byte).
//! [`Table::bytes_per_entry`] computes the bound; for the guide's
//! `type ip ... store http_req_rate(10s),conn_cur,bytes_out_rate(60s)` it is 105 bytes (the
//! index keeps up to 1/8 spare capacity and the arenas grow by doubling on top of that); for
//! its `type binary len 40 ... store http_req_rate(10s)` table, 173 bytes. Slots grow on
//! demand up to `size` and are reused; only keys over 16 bytes allocate (once, on creation).
//!
//! Every live entry is on one LRU list, most recently touched first. Entries in use by a stream
//! (`use` > 0) neither expire nor get evicted until released, as in HAProxy: a scan that meets
//! one at the tail moves it to the head (it is being used now) and goes on. A touch of the entry
//! already at the head costs nothing, so a hot key does no list work.

use std::collections::HashMap;

use ringlb_config::model::StickTable;

use crate::data::{DataType, Kind, Layout};
use crate::freq;
use crate::key::{KeySample, KeyType};
use crate::shard::{owner_of, DeltaOp, ShardInfo};

pub(crate) const NIL: u32 = u32::MAX;

/// Entries in use a scan of the LRU tail may skip before it stops (bounds the work per call).
const EVICT_SCAN: usize = 64;

/// A table's settings, from the config model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    pub name: String,
    pub key: KeyType,
    /// Maximum number of entries (`size 200k` = 204800).
    pub size: usize,
    /// `expire`: idle entries are removed this long after their last touch. None: never.
    pub expire_ms: Option<u64>,
    /// `nopurge`: when full, refuse new keys instead of evicting the least recently used.
    pub nopurge: bool,
    pub layout: Layout,
}

impl TableConfig {
    /// The table declared by `stick-table` in proxy `name`.
    pub fn from_model(name: &str, t: &StickTable) -> Result<TableConfig, String> {
        Ok(TableConfig {
            name: name.to_string(),
            key: t.key.into(),
            size: usize::try_from(t.size).map_err(|_| "stick-table: size too large")?,
            expire_ms: t.expire.map(|d| d.as_millis() as u64),
            nopurge: t.nopurge,
            layout: Layout::new(&t.store)?,
        })
    }
}

impl TableConfig {
    /// Adds `server_id` when the table is used by `stick` rules (HAProxy does so implicitly).
    pub fn for_stick_rules(mut self) -> TableConfig {
        self.layout = self.layout.with_type(DataType::ServerId);
        self
    }
}

/// A key in the index: inline up to 16 bytes (ip, ipv6, integer keys: no allocation, no
/// pointer to follow on lookup), boxed beyond. Hashes and compares as its bytes.
#[derive(Debug, Clone)]
pub(crate) enum IndexKey {
    Inline { len: u8, bytes: [u8; 16] },
    Heap(Box<[u8]>),
}

impl IndexKey {
    fn new(k: &[u8]) -> IndexKey {
        if k.len() <= 16 {
            let mut bytes = [0u8; 16];
            bytes[..k.len()].copy_from_slice(k);
            IndexKey::Inline {
                len: k.len() as u8,
                bytes,
            }
        } else {
            IndexKey::Heap(k.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            IndexKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IndexKey::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::hash::Hash for IndexKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Must hash exactly as `[u8]` does: lookups borrow the key as a slice.
        self.as_slice().hash(state);
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &IndexKey) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for IndexKey {}

/// Why a key got no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The sample does not convert to the table's key type.
    BadKey,
    /// The table is full and `nopurge` is set, or every entry is in use.
    Full,
}

#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) prev: u32,
    pub(crate) next: u32,
    /// Absolute expiry (ms); 0 when the table has no `expire`.
    pub(crate) expire_ms: u64,
    pub(crate) key_len: u16,
    /// Sessions tracking this entry (`use=` in `show table`).
    pub(crate) refs: u32,
    /// Bumped when the slot is freed: stale handles are detected.
    pub(crate) gen: u32,
    pub(crate) live: bool,
    pub(crate) in_lru: bool,
    /// This shard is the key's owner: `data` is authoritative. Otherwise it is a cache.
    pub(crate) owned: bool,
    /// Owner only: changed since the last flush and some shard caches it.
    pub(crate) dirty: bool,
    /// Owner only: shards that sent deltas for this key and receive its updates (bit per shard).
    pub(crate) subscribers: u64,
    /// Owner only, tables shared with `peers`: changed locally since the peers last collected
    /// it (`crate::peer`). Changes learned from a peer do not set it.
    pub(crate) peer_dirty: bool,
}

/// One shard's instance of a stick table.
#[derive(Debug)]
pub struct Table {
    pub(crate) cfg: TableConfig,
    pub(crate) shard: ShardInfo,
    pub(crate) index: HashMap<IndexKey, u32, ahash::RandomState>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) data: Vec<u32>,
    pub(crate) keys: Vec<u8>,
    pub(crate) free: Vec<u32>,
    /// Most recently touched idle entry.
    pub(crate) lru_head: u32,
    /// Least recently touched idle entry: expires and is evicted first.
    pub(crate) lru_tail: u32,
    pub(crate) used: usize,
    pub(crate) scratch: Vec<u8>,
    pub(crate) cross: crate::shard::CrossState,
    /// Replication to `peers` (`crate::peer`): on, and the owned slots changed since the last
    /// collection (a slot may be listed twice; its `peer_dirty` flag decides).
    pub(crate) peers_on: bool,
    pub(crate) peer_dirty: Vec<u32>,
}

impl Table {
    /// A table instance for shard `shard.id` of `shard.count`. `seed` keys the index hash
    /// (randomness is passed in; shards may use different seeds).
    pub fn new(cfg: TableConfig, shard: ShardInfo, seed: u64) -> Table {
        Table {
            index: HashMap::with_hasher(ahash::RandomState::with_seeds(
                seed,
                seed ^ 0x9e37_79b9_7f4a_7c15,
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
            )),
            slots: Vec::new(),
            data: Vec::new(),
            keys: Vec::new(),
            free: Vec::new(),
            lru_head: NIL,
            lru_tail: NIL,
            used: 0,
            scratch: Vec::with_capacity(cfg.key.max_len()),
            cross: crate::shard::CrossState::new(shard),
            peers_on: false,
            peer_dirty: Vec::new(),
            cfg,
            shard,
        }
    }

    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Live entries on this shard (owned and cached).
    pub fn used(&self) -> usize {
        self.used
    }

    /// Live entries this shard owns (the ones it reports in `show table`).
    pub fn used_owned(&self) -> usize {
        self.slots.iter().filter(|s| s.live && s.owned).count()
    }

    /// Upper bound of the memory one entry takes, in bytes (see the module doc).
    pub fn bytes_per_entry(&self) -> usize {
        let key = self.cfg.key.max_len();
        let data = 4 * self.cfg.layout.stride();
        let slot = std::mem::size_of::<Slot>();
        // Index record: the key (inline up to 16 bytes, else a box and its heap block rounded
        // to the allocator's 16-byte granularity), the slot number, the control byte.
        let heap = if key <= 16 { 0 } else { key.div_ceil(16) * 16 };
        let index = std::mem::size_of::<(IndexKey, u32)>() + 1 + heap;
        data + key + slot + index
    }

    /// Converts `sample` to this table's key (in the scratch buffer). False if it cannot.
    pub(crate) fn encode(&mut self, sample: &KeySample<'_>) -> bool {
        let mut buf = std::mem::take(&mut self.scratch);
        let ok = self.cfg.key.encode(sample, &mut buf);
        self.scratch = buf;
        ok
    }

    pub(crate) fn key_of(&self, slot: u32) -> &[u8] {
        let max = self.cfg.key.max_len();
        let s = slot as usize * max;
        let len = self.slots[slot as usize].key_len as usize;
        &self.keys[s..s + len]
    }

    pub(crate) fn words(&self, slot: u32) -> &[u32] {
        let st = self.cfg.layout.stride();
        &self.data[slot as usize * st..(slot as usize + 1) * st]
    }

    pub(crate) fn words_mut(&mut self, slot: u32) -> &mut [u32] {
        let st = self.cfg.layout.stride();
        &mut self.data[slot as usize * st..(slot as usize + 1) * st]
    }

    fn expired(&self, slot: u32, now_ms: u64) -> bool {
        let s = &self.slots[slot as usize];
        !self.in_use(slot) && s.expire_ms != 0 && s.expire_ms <= now_ms
    }

    /// Held by a stream: on this shard (`use`), or — for the owner of a table spread over
    /// shards — on another shard, which its `conn_cur` shows (streams elsewhere do not hold
    /// the owner's entry, yet it must not expire under them).
    pub(crate) fn in_use(&self, slot: u32) -> bool {
        let s = &self.slots[slot as usize];
        if s.refs > 0 {
            return true;
        }
        if !s.owned || self.shard.count <= 1 {
            return false;
        }
        match self.cfg.layout.offset(DataType::ConnCur) {
            Some(o) => self.words(slot)[o] > 0,
            None => false,
        }
    }

    /// The live entry for key bytes `k`, removing it first if it has expired.
    pub(crate) fn find(&mut self, k: &[u8], now_ms: u64) -> Option<u32> {
        let slot = *self.index.get(k)?;
        if self.expired(slot, now_ms) {
            self.remove(slot);
            return None;
        }
        Some(slot)
    }

    /// The entry for key bytes `k`, created if missing (evicting the least recently used idle
    /// entry when full, unless `nopurge`). Touches it.
    pub(crate) fn find_or_create(&mut self, k: &[u8], now_ms: u64) -> Result<u32, Refused> {
        self.purge_expired(now_ms, 8);
        if let Some(slot) = self.find(k, now_ms) {
            self.touch(slot, now_ms);
            return Ok(slot);
        }
        if self.used >= self.cfg.size && (self.cfg.nopurge || !self.evict_batch()) {
            return Err(Refused::Full);
        }
        let slot = self.alloc(k, now_ms);
        debug_assert!(self.used <= self.cfg.size);
        Ok(slot)
    }

    fn alloc(&mut self, k: &[u8], now_ms: u64) -> u32 {
        let max = self.cfg.key.max_len();
        let stride = self.cfg.layout.stride();
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = self.slots.len() as u32;
                self.slots.push(Slot {
                    prev: NIL,
                    next: NIL,
                    expire_ms: 0,
                    key_len: 0,
                    refs: 0,
                    gen: 0,
                    live: false,
                    in_lru: false,
                    owned: false,
                    dirty: false,
                    subscribers: 0,
                    peer_dirty: false,
                });
                self.data.resize(self.data.len() + stride, 0);
                self.keys.resize(self.keys.len() + max, 0);
                s
            }
        };
        let len = k.len().min(max);
        let ks = slot as usize * max;
        self.keys[ks..ks + len].copy_from_slice(&k[..len]);
        let owned = owner_of(k, self.shard.count) == self.shard.id;
        {
            let s = &mut self.slots[slot as usize];
            s.key_len = len as u16;
            s.refs = 0;
            s.live = true;
            s.owned = owned;
            s.dirty = false;
            s.subscribers = 0;
            s.peer_dirty = false;
        }
        if owned {
            self.mark_peer_dirty(slot);
            // Every other shard gets the owner's snapshots, so that a shard seeing the key for
            // the first time (a client's first connection there) already knows its rates and
            // `conn_cur` (ADR 0003, "Warm caches").
            self.subscribe_all(slot);
        }
        self.init_data(slot, now_ms);
        self.index.insert(IndexKey::new(&k[..len]), slot);
        self.used += 1;
        self.lru_push_head(slot);
        self.set_expire(slot, now_ms);
        slot
    }

    fn init_data(&mut self, slot: u32, now_ms: u64) {
        let layout = self.cfg.layout.clone();
        let w = self.words_mut(slot);
        w.fill(0);
        for dt in layout.stored() {
            if dt.kind() == Kind::Rate {
                if let Some(o) = layout.offset(dt) {
                    freq::init(&mut w[o..o + 3], now_ms as u32);
                }
            }
        }
    }

    fn set_expire(&mut self, slot: u32, now_ms: u64) {
        self.slots[slot as usize].expire_ms = match self.cfg.expire_ms {
            Some(e) => now_ms.saturating_add(e).max(1),
            None => 0,
        };
    }

    /// Refreshes the entry's expiry and makes it the most recently used.
    pub(crate) fn touch(&mut self, slot: u32, now_ms: u64) {
        self.set_expire(slot, now_ms);
        self.move_to_head(slot);
        if self.slots[slot as usize].owned {
            self.mark_peer_dirty(slot); // peers learn the new expiry too
        }
    }

    fn move_to_head(&mut self, slot: u32) {
        if self.lru_head != slot && self.slots[slot as usize].in_lru {
            self.lru_unlink(slot);
            self.lru_push_head(slot);
        }
    }

    /// A full table makes room as HAProxy 2.6 does: it drops the `size / 256 + 1` least
    /// recently used idle entries at once (recorded: tests/fixtures/eviction.txt). False if
    /// none could go.
    fn evict_batch(&mut self) -> bool {
        let batch = (self.cfg.size >> 8) + 1;
        let mut n = 0;
        while n < batch && self.evict_one() {
            n += 1;
        }
        n > 0
    }

    /// Removes the least recently used idle entry. Entries in use met on the way move to the
    /// head; gives up after [`EVICT_SCAN`] of them (everything is in use: the table is full).
    fn evict_one(&mut self) -> bool {
        for _ in 0..EVICT_SCAN {
            let tail = self.lru_tail;
            if tail == NIL {
                return false;
            }
            if !self.in_use(tail) {
                self.remove(tail);
                return true;
            }
            self.move_to_head(tail);
        }
        false
    }

    /// Frees an entry. A cache entry's unsent deltas go to the outbox first: nothing is lost.
    pub(crate) fn remove(&mut self, slot: u32) {
        debug_assert!(self.slots[slot as usize].live);
        if self.slots[slot as usize].in_lru {
            self.lru_unlink(slot);
        }
        self.cross_evicted(slot);
        let max = self.cfg.key.max_len();
        let start = slot as usize * max;
        let len = usize::from(self.slots[slot as usize].key_len);
        self.index.remove(&self.keys[start..start + len]);
        let s = &mut self.slots[slot as usize];
        s.live = false;
        s.peer_dirty = false;
        s.refs = 0;
        s.gen = s.gen.wrapping_add(1);
        self.free.push(slot);
        self.used -= 1;
    }

    /// Removes up to `max` expired idle entries, oldest first. The engine may also call it from
    /// a periodic task; lookups call it with a small budget.
    pub fn purge_expired(&mut self, now_ms: u64, max: usize) -> usize {
        let mut n = 0;
        let mut steps = 0;
        while n < max && steps < EVICT_SCAN && self.lru_tail != NIL {
            let tail = self.lru_tail;
            if self.expired(tail, now_ms) {
                self.remove(tail);
                n += 1;
            } else if self.in_use(tail) {
                self.move_to_head(tail);
                steps += 1;
            } else {
                break; // the oldest idle entry is still alive: so is every other
            }
        }
        n
    }

    pub(crate) fn lru_unlink(&mut self, slot: u32) {
        let (p, n) = {
            let s = &self.slots[slot as usize];
            (s.prev, s.next)
        };
        if p == NIL {
            self.lru_head = n;
        } else {
            self.slots[p as usize].next = n;
        }
        if n == NIL {
            self.lru_tail = p;
        } else {
            self.slots[n as usize].prev = p;
        }
        let s = &mut self.slots[slot as usize];
        s.prev = NIL;
        s.next = NIL;
        s.in_lru = false;
    }

    pub(crate) fn lru_push_head(&mut self, slot: u32) {
        let old = self.lru_head;
        {
            let s = &mut self.slots[slot as usize];
            s.prev = NIL;
            s.next = old;
            s.in_lru = true;
        }
        if old == NIL {
            self.lru_tail = slot;
        } else {
            self.slots[old as usize].prev = slot;
        }
        self.lru_head = slot;
    }

    /// The stored value of `dt` in the entry's own words (authoritative on the owner, the last
    /// snapshot on a cache). None if the table does not store `dt`.
    pub(crate) fn raw_value(&self, slot: u32, dt: DataType, now_ms: u64) -> Option<i64> {
        let o = self.cfg.layout.offset(dt)?;
        let w = self.words(slot);
        Some(match dt.kind() {
            Kind::Sint => i64::from(w[o] as i32),
            Kind::Uint => i64::from(w[o]),
            Kind::Ull => (u64::from(w[o]) | (u64::from(w[o + 1]) << 32)) as i64,
            Kind::Rate => i64::from(freq::read(
                &w[o..o + 3],
                now_ms as u32,
                self.cfg.layout.period_ms(dt),
            )),
        })
    }

    /// The value of `dt` for a live entry as this shard sees it: on the owner the stored value,
    /// on another shard the owner's last snapshot plus this shard's unacknowledged deltas.
    pub(crate) fn value(&self, slot: u32, dt: DataType, now_ms: u64) -> Option<i64> {
        let base = self.raw_value(slot, dt, now_ms)?;
        if self.slots[slot as usize].owned {
            return Some(base);
        }
        Some(match self.cross.side.get(&slot) {
            Some(side) => side.fold(dt, base),
            None => base,
        })
    }

    /// Applies one operation to the entry's own words at `now`.
    pub(crate) fn apply(&mut self, slot: u32, op: DeltaOp, now_ms: u64) {
        let (dt, v, set) = match op {
            DeltaOp::Add(dt, v) => (dt, v, false),
            DeltaOp::Set(dt, v) => (dt, v, true),
        };
        let Some(o) = self.cfg.layout.offset(dt) else {
            return;
        };
        let period = self.cfg.layout.period_ms(dt);
        let w = self.words_mut(slot);
        match dt.kind() {
            Kind::Sint => {
                let old = i64::from(w[o] as i32);
                w[o] = (if set { v } else { old.wrapping_add(v) }) as i32 as u32;
            }
            // A set wraps to the width, as HAProxy's `set table` does (-3 reads 4294967293);
            // counting saturates: a decrement never takes `conn_cur` below zero.
            Kind::Uint if set => w[o] = v as u32,
            Kind::Uint => {
                w[o] = i64::from(w[o])
                    .saturating_add(v)
                    .clamp(0, i64::from(u32::MAX)) as u32;
            }
            Kind::Ull => {
                let old = (u64::from(w[o]) | (u64::from(w[o + 1]) << 32)) as i64;
                let new = if set {
                    v as u64
                } else {
                    old.saturating_add(v).max(0) as u64
                };
                w[o] = new as u32;
                w[o + 1] = (new >> 32) as u32;
            }
            Kind::Rate => {
                let f = &mut w[o..o + 3];
                if set {
                    // `set table ... data.X_rate V`: the rate reads V for this period then fades.
                    freq::init(f, now_ms as u32);
                    f[1] = v.clamp(0, i64::from(u32::MAX)) as u32;
                } else if v > 0 {
                    freq::update(f, now_ms as u32, period, v.min(i64::from(u32::MAX)) as u32);
                }
            }
        }
    }

    /// Records an operation on an entry: applied in place on the owner (and queued for the
    /// shards caching it), queued as a pending delta for the owner on any other shard.
    pub(crate) fn mutate(&mut self, slot: u32, op: DeltaOp, now_ms: u64) {
        if !self.cfg.layout.stores(op.data_type()) {
            return;
        }
        if self.slots[slot as usize].owned {
            self.apply(slot, op, now_ms);
            self.share_persistence(slot, op);
            self.mark_owned_dirty(slot);
            self.mark_peer_dirty(slot);
        } else {
            self.queue_delta(slot, op);
        }
    }

    /// Live slots in key order (HAProxy's tree order), for dumps.
    pub(crate) fn sorted_slots(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, _)| i as u32)
            .collect();
        v.sort_by(|a, b| self.key_of(*a).cmp(self.key_of(*b)));
        v
    }

    /// Checks the LRU list against the slots: every idle live entry is listed once, in order.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut n = 0;
        let mut cur = self.lru_head;
        let mut prev = NIL;
        while cur != NIL {
            let s = &self.slots[cur as usize];
            assert!(s.live && s.in_lru);
            assert_eq!(s.prev, prev);
            prev = cur;
            cur = s.next;
            n += 1;
        }
        assert_eq!(self.lru_tail, prev);
        assert_eq!(n, self.used);
        assert_eq!(self.index.len(), self.used);
        assert!(self.used <= self.cfg.size);
    }
}

// A slot record stays within the 40 bytes the module doc counts.
const _: () = assert!(std::mem::size_of::<Slot>() <= 40);

/// Converts a sample to a key of type `kt` (exposed for callers that route by key).
pub fn encode_key(kt: KeyType, sample: &KeySample<'_>) -> Option<Box<[u8]>> {
    let mut v = Vec::new();
    kt.encode(sample, &mut v).then(|| v.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::{Event, Handle, TrackFrom};
    use std::net::Ipv4Addr;

    fn cfg(
        size: usize,
        expire_ms: Option<u64>,
        nopurge: bool,
        store: &[(&str, Option<u64>)],
    ) -> TableConfig {
        let store: Vec<_> = store
            .iter()
            .map(|(n, p)| ringlb_config::model::StoreItem {
                name: n.to_string(),
                period: p.map(std::time::Duration::from_millis),
            })
            .collect();
        TableConfig {
            name: "t".into(),
            key: KeyType::Ip,
            size,
            expire_ms,
            nopurge,
            layout: Layout::new(&store).unwrap(),
        }
    }

    fn ip(n: u8) -> KeySample<'static> {
        KeySample::Ipv4(Ipv4Addr::new(10, 0, 0, n))
    }

    fn single(c: TableConfig) -> Table {
        Table::new(c, ShardInfo::SINGLE, 1)
    }

    #[test]
    fn expire_is_refreshed_by_each_touch() {
        let mut t = single(cfg(10, Some(30_000), false, &[("http_req_cnt", None)]));
        let h = t.track(&ip(1), TrackFrom::HttpRequest, 1_000).unwrap();
        t.release(h, 2_000);
        assert_eq!(t.lookup(&ip(1), DataType::HttpReqCnt, 31_999), Some(1));
        // A new track at 20 s pushes expiry to 20 s + 30 s after its release.
        let h = t.track(&ip(1), TrackFrom::HttpRequest, 20_000).unwrap();
        t.release(h, 20_000);
        assert_eq!(t.lookup(&ip(1), DataType::HttpReqCnt, 49_999), Some(2));
        assert!(t.contains(&ip(1), 49_999));
        assert!(!t.contains(&ip(1), 50_000));
        assert_eq!(t.used(), 0, "the expired entry is removed on lookup");
        t.check_invariants();
    }

    #[test]
    fn entries_in_use_do_not_expire() {
        let mut t = single(cfg(10, Some(1_000), false, &[("conn_cur", None)]));
        let h = t.track(&ip(1), TrackFrom::TcpConnection, 0).unwrap();
        assert_eq!(t.purge_expired(60_000, 100), 0);
        assert_eq!(t.get(h, DataType::ConnCur, 60_000), Some(1));
        t.release(h, 60_000);
        assert_eq!(t.lookup(&ip(1), DataType::ConnCur, 60_500), Some(0));
        assert_eq!(t.purge_expired(61_000, 100), 1);
        t.check_invariants();
    }

    #[test]
    fn full_table_evicts_the_least_recently_used() {
        let mut t = single(cfg(3, Some(60_000), false, &[("http_req_cnt", None)]));
        for (i, now) in [(1, 0), (2, 10), (3, 20)] {
            let h = t.track(&ip(i), TrackFrom::HttpRequest, now).unwrap();
            t.release(h, now);
        }
        // Touch 1 again: 2 is now the least recently used.
        let h = t.track(&ip(1), TrackFrom::HttpRequest, 30).unwrap();
        t.release(h, 30);
        let h = t.track(&ip(4), TrackFrom::HttpRequest, 40).unwrap();
        t.release(h, 40);
        assert_eq!(t.used(), 3);
        assert!(t.contains(&ip(1), 50));
        assert!(!t.contains(&ip(2), 50));
        assert!(t.contains(&ip(3), 50));
        assert!(t.contains(&ip(4), 50));
        assert_eq!(t.lookup(&ip(1), DataType::HttpReqCnt, 50), Some(2));
        t.check_invariants();
    }

    #[test]
    fn nopurge_refuses_new_keys_when_full() {
        let mut t = single(cfg(2, Some(10_000), true, &[("http_req_cnt", None)]));
        for i in 1..=2 {
            let h = t.track(&ip(i), TrackFrom::HttpRequest, 0).unwrap();
            t.release(h, 0);
        }
        assert_eq!(
            t.track(&ip(3), TrackFrom::HttpRequest, 5).err(),
            Some(Refused::Full)
        );
        // Existing keys are still tracked; expired entries still make room.
        assert!(t.track(&ip(1), TrackFrom::HttpRequest, 5).is_ok());
        assert!(t.track(&ip(3), TrackFrom::HttpRequest, 10_001).is_ok());
        t.check_invariants();
    }

    #[test]
    fn entries_held_by_streams_are_never_evicted() {
        let mut t = single(cfg(1, None, false, &[("conn_cur", None)]));
        let h = t.track(&ip(1), TrackFrom::TcpConnection, 0).unwrap();
        assert_eq!(
            t.track(&ip(2), TrackFrom::TcpConnection, 1).err(),
            Some(Refused::Full)
        );
        t.release(h, 2);
        assert!(t.track(&ip(2), TrackFrom::TcpConnection, 3).is_ok());
        assert!(!t.contains(&ip(1), 3));
        // A stale handle does nothing.
        t.release(h, 4);
        assert_eq!(t.get(h, DataType::ConnCur, 4), None);
        t.check_invariants();
    }

    #[test]
    fn tracking_counts_like_haproxy() {
        let mut t = single(cfg(
            10,
            Some(30_000),
            false,
            &[
                ("conn_cnt", None),
                ("conn_cur", None),
                ("conn_rate", Some(10_000)),
                ("sess_cnt", None),
                ("http_req_cnt", None),
                ("http_req_rate", Some(10_000)),
                ("http_err_cnt", None),
                ("bytes_in_cnt", None),
                ("bytes_out_rate", Some(60_000)),
                ("gpc0", None),
                ("gpc0_rate", Some(10_000)),
                ("gpt0", None),
            ],
        ));
        let a = t.track(&ip(1), TrackFrom::HttpRequest, 0).unwrap();
        let b = t.track(&ip(1), TrackFrom::HttpRequest, 5).unwrap();
        assert_eq!(t.get(a, DataType::ConnCur, 5), Some(2));
        assert_eq!(t.trackers(a), 2);
        t.record(a, Event::HttpError, 6);
        t.record(a, Event::BytesIn(300), 6);
        t.record(b, Event::BytesOut(5_000_000_000), 6);
        assert_eq!(t.inc_gpc(a, DataType::Gpc0, 7), Some(1));
        assert_eq!(t.inc_gpc(a, DataType::Gpc0, 7), Some(2));
        assert_eq!(t.clr_gpc(a, DataType::Gpc0, 8), Some(2));
        assert!(t.set(a, DataType::Gpt0, 7, 8));
        assert!(
            !t.set(a, DataType::ServerId, 1, 8),
            "server_id is not stored"
        );
        t.release(a, 10);
        let v = |dt| t.get(b, dt, 10);
        assert_eq!(v(DataType::ConnCnt), Some(2));
        assert_eq!(v(DataType::ConnCur), Some(1));
        assert_eq!(v(DataType::ConnRate), Some(2));
        assert_eq!(
            v(DataType::SessCnt),
            Some(0),
            "http-request tracking opens no session"
        );
        assert_eq!(v(DataType::HttpReqCnt), Some(2));
        assert_eq!(v(DataType::HttpReqRate), Some(2));
        assert_eq!(v(DataType::HttpErrCnt), Some(1));
        assert_eq!(v(DataType::BytesInCnt), Some(300));
        assert_eq!(
            v(DataType::BytesOutRate),
            Some(i64::from(u32::MAX)),
            "rates are 32-bit"
        );
        assert_eq!(v(DataType::Gpc0), Some(0));
        assert_eq!(v(DataType::Gpc0Rate), Some(2));
        assert_eq!(v(DataType::Gpt0), Some(7));
        assert_eq!(v(DataType::HttpFailCnt), None);
        t.release(b, 11);
        assert_eq!(t.lookup(&ip(1), DataType::ConnCur, 12), Some(0));
        assert_eq!(
            t.lookup(&ip(9), DataType::ConnCur, 12),
            Some(0),
            "absent key reads 0"
        );
        assert_eq!(t.lookup(&ip(1), DataType::SessRate, 12), None, "not stored");
        t.check_invariants();
    }

    #[test]
    fn request_rate_limit_on_one_shard_is_exact() {
        // The guide's rule: deny with 429 above `sc_http_req_rate(0) gt 100`, tracked first.
        let mut t = single(cfg(
            100,
            Some(30_000),
            false,
            &[("http_req_rate", Some(10_000))],
        ));
        let mut accepted = 0;
        for i in 0..300u64 {
            let now = 1_000 + i * 33;
            let h = t.track(&ip(1), TrackFrom::HttpRequest, now).unwrap();
            if t.get(h, DataType::HttpReqRate, now).unwrap() <= 100 {
                accepted += 1;
            }
            t.release(h, now);
        }
        assert_eq!(accepted, 100);
    }

    #[test]
    fn bytes_per_entry_for_the_guide_table() {
        let t = single(cfg(
            204_800,
            Some(30_000),
            false,
            &[
                ("http_req_rate", Some(10_000)),
                ("conn_cur", None),
                ("bytes_out_rate", Some(60_000)),
            ],
        ));
        assert_eq!(t.config().layout.stride(), 7);
        // data 28 + key 4 + slot 40 + index record 32 + control byte 1.
        assert_eq!(t.bytes_per_entry(), 105);
        let mut c = cfg(100, None, false, &[("http_req_rate", Some(10_000))]);
        c.key = KeyType::Binary { len: 40 };
        // data 12 + key 40 + slot 40 + index 32 + 1 + boxed key 48.
        assert_eq!(single(c).bytes_per_entry(), 173);
    }

    #[test]
    fn stick_store_and_match_persist_a_server() {
        let c = cfg(10, Some(60_000), false, &[]).for_stick_rules();
        let mut t = single(c);
        assert_eq!(t.stick_match(&ip(1), 0), None);
        assert!(t.store_server_id(&ip(1), 3, 0));
        assert_eq!(t.stick_match(&ip(1), 50_000), Some(3));
        // The match touched the entry: it lives 60 s from there.
        assert_eq!(t.stick_match(&ip(1), 109_999), Some(3));
        assert_eq!(t.stick_match(&ip(1), 170_000), None);
        t.check_invariants();
    }

    /// Seeded random operations: the LRU list, index and counts stay consistent, held entries
    /// survive, and `conn_cur` always equals the handles still held.
    #[test]
    fn random_operations_keep_the_invariants() {
        for nopurge in [false, true] {
            let mut t = single(cfg(
                16,
                Some(500),
                nopurge,
                &[("conn_cur", None), ("gpc0", None)],
            ));
            let mut held: Vec<(u8, Handle)> = Vec::new();
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            let mut now = 0u64;
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                now += x % 7;
                let k = (x >> 8) as u8 % 40;
                match x % 5 {
                    0 | 1 => {
                        if let Ok(h) = t.track(&ip(k), TrackFrom::TcpConnection, now) {
                            held.push((k, h));
                        }
                    }
                    2 if !held.is_empty() => {
                        let (_, h) = held.swap_remove((x >> 20) as usize % held.len());
                        t.release(h, now);
                    }
                    3 => {
                        t.purge_expired(now, 4);
                    }
                    _ => {
                        t.key_inc_gpc(&ip(k), DataType::Gpc0, now);
                    }
                }
                t.check_invariants();
                for (k, h) in &held {
                    let n = held.iter().filter(|(k2, _)| k2 == k).count() as i64;
                    assert_eq!(t.get(*h, DataType::ConnCur, now), Some(n));
                }
            }
        }
    }

    #[test]
    fn key_conversion_failure_tracks_nothing() {
        let mut t = single(cfg(10, None, false, &[("http_req_cnt", None)]));
        let v6 = KeySample::Ipv6(std::net::Ipv6Addr::LOCALHOST);
        assert_eq!(
            t.track(&v6, TrackFrom::HttpRequest, 0).err(),
            Some(Refused::BadKey)
        );
        assert_eq!(t.used(), 0);
    }
}
