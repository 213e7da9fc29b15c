//! Stick tables across shards (docs/adr/0003-stick-tables-across-shards.md).
//!
//! Each key has an owner shard, `owner_of(key)`: a fixed hash of the key bytes, the same on
//! every shard and every restart. The owner's entry is authoritative. Any other shard that sees
//! the key keeps a cache entry in its own [`Table`]: the owner's last snapshot of the entry's
//! data words, plus the operations it recorded locally, first as *pending* (not yet sent), then
//! *in flight* (sent, not yet reflected in a snapshot). Decisions on that shard read
//! `snapshot + in flight + pending`, so the only events a shard cannot see are those other
//! shards recorded within the last exchange interval.
//!
//! Owners send every changed entry's snapshot to every other shard (not only to the shards
//! that sent deltas for it), which cache it while they have room: a shard seeing a key for the
//! first time — a client's first connection there — already knows its rates and `conn_cur`.
//!
//! The engine calls [`Table::flush`] every millisecond (or sooner when
//! [`Table::pending_ops`] passes a threshold) and delivers each [`Outgoing`] to its shard,
//! which calls [`Table::receive`]. Messages are plain data: the protocol is tested here with
//! two tables and `Vec` queues, without threads.

use std::collections::HashMap;

use crate::data::{DataType, Kind};
use crate::table::Table;

/// This shard's number and the number of shards holding the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: u16,
    pub count: u16,
}

impl ShardInfo {
    /// A single shard: every key is owned, no messages are ever produced.
    pub const SINGLE: ShardInfo = ShardInfo { id: 0, count: 1 };
}

/// Most shards a table can span (subscriber sets are a 64-bit mask).
pub const MAX_SHARDS: u16 = 64;

/// The owner shard of key bytes `k` among `count` shards: FNV-1a then a multiplicative mix, so
/// the mapping is identical on every shard and across restarts and versions of the hasher.
pub fn owner_of(k: &[u8], count: u16) -> u16 {
    if count <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in k {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    ((h as u128 * u128::from(count)) >> 64) as u16
}

/// One recorded change to an entry's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOp {
    /// Add to a counter or count events into a rate (negative: `conn_cur` released).
    Add(DataType, i64),
    /// Set a value (`gpt0`, `server_id`, `gpc0` cleared, `set table`).
    Set(DataType, i64),
}

impl DeltaOp {
    pub fn data_type(self) -> DataType {
        match self {
            DeltaOp::Add(d, _) | DeltaOp::Set(d, _) => d,
        }
    }

    /// This op applied after `base`, as seen by a reader (rates count added events).
    fn fold(self, base: i64) -> i64 {
        match self {
            DeltaOp::Add(DataType::ConnCur, v) => base.saturating_add(v).max(0),
            DeltaOp::Add(_, v) => base.saturating_add(v),
            DeltaOp::Set(dt, v) => match dt.kind() {
                Kind::Uint => i64::from(v as u32),
                Kind::Sint => i64::from(v as i32),
                Kind::Ull | Kind::Rate => v,
            },
        }
    }
}

/// Operations a non-owner recorded for one key since its last flush, at most one per data type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub key: Box<[u8]>,
    pub ops: Vec<DeltaOp>,
}

/// The owner's data words for one key after applying deltas (same layout on every shard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub key: Box<[u8]>,
    pub data: Box<[u32]>,
}

/// A message between two shards' instances of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Non-owner to owner: batch number `seq` of shard `from`.
    Deltas {
        from: u16,
        seq: u64,
        deltas: Vec<Delta>,
    },
    /// Owner to cache: fresh snapshots; every batch of the receiver up to `acked` is included.
    Updates {
        from: u16,
        acked: u64,
        updates: Vec<Update>,
    },
}

/// A message and the shard it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: u16,
    pub msg: Message,
}

/// A cache entry's local operations not yet visible in its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheSide {
    pub(crate) pending: Vec<DeltaOp>,
    pub(crate) inflight: Vec<(u64, Vec<DeltaOp>)>,
}

/// In-flight batches kept per cache entry before the oldest is dropped: bounds memory if an
/// owner never answers (its table refused the key).
const MAX_INFLIGHT: usize = 16;

impl CacheSide {
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.inflight.is_empty()
    }

    /// `base` (the snapshot's value) with in-flight then pending operations on `dt` applied.
    pub(crate) fn fold(&self, dt: DataType, base: i64) -> i64 {
        let ops = self
            .inflight
            .iter()
            .flat_map(|(_, o)| o.iter())
            .chain(&self.pending);
        ops.filter(|o| o.data_type() == dt)
            .fold(base, |v, o| o.fold(v))
    }

    /// Adds `op` to the pending list, merging with the op already there for the same type.
    fn push(&mut self, op: DeltaOp) {
        let dt = op.data_type();
        match (self.pending.iter_mut().find(|o| o.data_type() == dt), op) {
            (Some(DeltaOp::Add(_, a)), DeltaOp::Add(_, v)) => *a = a.saturating_add(v),
            (Some(DeltaOp::Set(_, s)), DeltaOp::Add(_, v)) => *s = s.saturating_add(v),
            (Some(old), DeltaOp::Set(..)) => *old = op,
            (None, _) => self.pending.push(op),
        }
    }
}

/// Per-table cross-shard bookkeeping.
#[derive(Debug)]
pub(crate) struct CrossState {
    pub(crate) side: HashMap<u32, CacheSide>,
    /// Cache slots with pending ops.
    dirty_cache: Vec<u32>,
    /// Owned slots changed since the last flush that have subscribers.
    dirty_owned: Vec<u32>,
    /// Deltas of cache entries evicted before their flush, sent with the next one.
    orphans: Vec<(u16, Delta)>,
    /// Last batch number sent by this shard.
    seq: u64,
    /// Per peer: the last batch of theirs this shard (as owner) applied.
    acked_from: Vec<u64>,
    pending_ops: usize,
}

impl CrossState {
    pub(crate) fn new(shard: ShardInfo) -> CrossState {
        CrossState {
            side: HashMap::new(),
            dirty_cache: Vec::new(),
            dirty_owned: Vec::new(),
            orphans: Vec::new(),
            seq: 0,
            acked_from: vec![0; usize::from(shard.count.max(1))],
            pending_ops: 0,
        }
    }
}

impl Table {
    /// Operations recorded on cache entries and not yet flushed: the engine may flush early
    /// when this passes a threshold.
    pub fn pending_ops(&self) -> usize {
        self.cross.pending_ops
    }

    pub(crate) fn queue_delta(&mut self, slot: u32, op: DeltaOp) {
        let side = self.cross.side.entry(slot).or_default();
        if side.pending.is_empty() {
            self.cross.dirty_cache.push(slot);
        }
        side.push(op);
        self.cross.pending_ops += 1;
    }

    pub(crate) fn mark_owned_dirty(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.subscribers != 0 && !s.dirty {
            s.dirty = true;
            self.cross.dirty_owned.push(slot);
        }
    }

    /// A slot is being freed: keep its unsent deltas, forget its bookkeeping.
    pub(crate) fn cross_evicted(&mut self, slot: u32) {
        if let Some(side) = self.cross.side.remove(&slot) {
            if !side.pending.is_empty() {
                let key: Box<[u8]> = self.key_of(slot).into();
                let owner = owner_of(&key, self.shard.count);
                self.cross.orphans.push((
                    owner,
                    Delta {
                        key,
                        ops: side.pending,
                    },
                ));
            }
        }
        self.slots[slot as usize].dirty = false;
    }

    /// Collects the messages to send: this shard's pending deltas to each key's owner, and
    /// fresh snapshots of owned entries to the shards caching them. One message per peer and
    /// kind; nothing when there is nothing to say.
    pub fn flush(&mut self, _now_ms: u64) -> Vec<Outgoing> {
        let c = &self.cross;
        if c.dirty_cache.is_empty() && c.dirty_owned.is_empty() && c.orphans.is_empty() {
            return Vec::new(); // the common idle tick allocates nothing
        }
        let n = usize::from(self.shard.count.max(1));
        let mut deltas: Vec<Vec<Delta>> = vec![Vec::new(); n];
        let mut updates: Vec<Vec<Update>> = vec![Vec::new(); n];
        self.cross.seq += 1;
        let seq = self.cross.seq;
        for (owner, d) in self.cross.orphans.drain(..) {
            if let Some(v) = deltas.get_mut(usize::from(owner)) {
                v.push(d);
            }
        }
        for slot in std::mem::take(&mut self.cross.dirty_cache) {
            let live = self.slots[slot as usize].live && !self.slots[slot as usize].owned;
            let key: Box<[u8]> = self.key_of(slot).into();
            let Some(side) = self.cross.side.get_mut(&slot) else {
                continue;
            };
            if !live || side.pending.is_empty() {
                continue;
            }
            let ops = std::mem::take(&mut side.pending);
            side.inflight.push((seq, ops.clone()));
            if side.inflight.len() > MAX_INFLIGHT {
                side.inflight.remove(0);
            }
            let owner = usize::from(owner_of(&key, self.shard.count));
            if let Some(v) = deltas.get_mut(owner) {
                v.push(Delta { key, ops });
            }
        }
        self.cross.pending_ops = 0;
        for slot in std::mem::take(&mut self.cross.dirty_owned) {
            let s = &mut self.slots[slot as usize];
            s.dirty = false;
            if !s.live || !s.owned {
                continue;
            }
            let subs = s.subscribers;
            let key: Box<[u8]> = self.key_of(slot).into();
            let data: Box<[u32]> = self.words(slot).into();
            for (peer, v) in updates.iter_mut().enumerate() {
                if peer != usize::from(self.shard.id) && subs & (1u64 << peer) != 0 {
                    v.push(Update {
                        key: key.clone(),
                        data: data.clone(),
                    });
                }
            }
        }
        let mut out = Vec::new();
        for (peer, d) in deltas.into_iter().enumerate() {
            if !d.is_empty() {
                out.push(Outgoing {
                    to: peer as u16,
                    msg: Message::Deltas {
                        from: self.shard.id,
                        seq,
                        deltas: d,
                    },
                });
            }
        }
        for (peer, u) in updates.into_iter().enumerate() {
            if !u.is_empty() {
                out.push(Outgoing {
                    to: peer as u16,
                    msg: Message::Updates {
                        from: self.shard.id,
                        acked: self.cross.acked_from[peer],
                        updates: u,
                    },
                });
            }
        }
        out
    }

    /// Applies a message from another shard at `now`.
    pub fn receive(&mut self, msg: Message, now_ms: u64) {
        match msg {
            Message::Deltas { from, seq, deltas } => self.receive_deltas(from, seq, deltas, now_ms),
            Message::Updates { acked, updates, .. } => self.receive_updates(acked, updates, now_ms),
        }
    }

    fn receive_deltas(&mut self, from: u16, seq: u64, deltas: Vec<Delta>, now_ms: u64) {
        if from >= self.shard.count.min(MAX_SHARDS) {
            return;
        }
        for d in deltas {
            // The owner creates the entry if needed; a full `nopurge` table drops the delta,
            // as it would refuse a local track.
            let Ok(slot) = self.find_or_create(&d.key, now_ms) else {
                continue;
            };
            if !self.slots[slot as usize].owned {
                continue; // not ours: a sender with another shard count; ignore
            }
            for op in d.ops {
                self.apply(slot, op, now_ms);
                self.share_persistence(slot, op);
            }
            self.slots[slot as usize].subscribers |= 1u64 << from;
            self.mark_owned_dirty(slot);
            self.mark_peer_dirty(slot);
        }
        if let Some(a) = self.cross.acked_from.get_mut(usize::from(from)) {
            *a = (*a).max(seq);
        }
    }

    fn receive_updates(&mut self, acked: u64, updates: Vec<Update>, now_ms: u64) {
        let stride = self.config().layout.stride();
        let sid = self.config().layout.offset(DataType::ServerId);
        for u in updates {
            let slot = match self.index.get(&*u.key) {
                Some(&slot) => slot,
                // Every owner broadcasts its entries: a shard caches each key before its first
                // local use (limits hold from a client's first request there) while it has
                // room — a broadcast never evicts an entry. A server assignment (`stick
                // store`) is always cached, so that `stick match` finds it on every shard.
                None => {
                    let persist = sid.is_some_and(|o| u.data.get(o).is_some_and(|v| *v != 0));
                    if !persist && self.used() >= self.config().size {
                        continue;
                    }
                    match self.find_or_create(&u.key, now_ms) {
                        Ok(slot) => slot,
                        Err(_) => continue,
                    }
                }
            };
            if self.slots[slot as usize].owned || u.data.len() != stride {
                continue;
            }
            self.words_mut(slot).copy_from_slice(&u.data);
            if let Some(side) = self.cross.side.get_mut(&slot) {
                side.inflight.retain(|(s, _)| *s > acked);
                if side.is_empty() {
                    self.cross.side.remove(&slot);
                }
            }
        }
    }

    /// On the owner: a stored server id is sent to every shard, not just the subscribers.
    pub(crate) fn share_persistence(&mut self, slot: u32, op: DeltaOp) {
        if let DeltaOp::Set(DataType::ServerId, _) = op {
            self.subscribe_all(slot);
        }
    }

    /// On the owner: every other shard receives the entry's snapshots.
    pub(crate) fn subscribe_all(&mut self, slot: u32) {
        let n = u32::from(self.shard.count.min(MAX_SHARDS));
        let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        self.slots[slot as usize].subscribers |= all & !(1u64 << self.shard.id);
    }

    /// True when this shard owns the key of `slot`.
    pub(crate) fn owns(&self, slot: u32) -> bool {
        self.slots[slot as usize].owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_mapping_is_stable_and_spreads() {
        assert_eq!(owner_of(b"anything", 1), 0);
        let mut counts = [0u32; 4];
        for i in 0u32..4000 {
            let o = owner_of(&i.to_be_bytes(), 4);
            assert!(o < 4);
            assert_eq!(o, owner_of(&i.to_be_bytes(), 4));
            counts[usize::from(o)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
        // Pinned values: the mapping must not change between versions (shards of one process
        // always agree, but a change would also move keys across a rolling restart).
        assert_eq!(owner_of(&[127, 0, 0, 1], 2), owner_of(&[127, 0, 0, 1], 2));
    }

    #[test]
    fn pending_ops_merge_per_type_in_order() {
        let mut s = CacheSide::default();
        s.push(DeltaOp::Add(DataType::Gpc0, 2));
        s.push(DeltaOp::Set(DataType::Gpc0, 0));
        s.push(DeltaOp::Add(DataType::Gpc0, 1));
        s.push(DeltaOp::Add(DataType::HttpReqCnt, 3));
        assert_eq!(
            s.pending,
            vec![
                DeltaOp::Set(DataType::Gpc0, 1),
                DeltaOp::Add(DataType::HttpReqCnt, 3)
            ]
        );
        assert_eq!(s.fold(DataType::Gpc0, 40), 1);
        assert_eq!(s.fold(DataType::HttpReqCnt, 40), 43);
        assert!(!s.is_empty());
    }
}
