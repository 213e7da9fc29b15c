//! What `peers` replication needs from a table (issue #7, ADR 0007): the entries this shard
//! owns that changed locally since the last collection, all of them for a full resync, and
//! applying an entry learned from a remote peer.
//!
//! A change made here (tracking, `set table`, a delta from another shard) marks the owner's
//! entry; a change learned from a peer does not, so that an update is never sent back where
//! it came from (HAProxy: `stktable_touch_remote` does not schedule a push either). Values
//! travel raw: counters as integers, rates as HAProxy's three freq-counter words with the tick
//! made relative to `now`, so a rate keeps decaying on the receiver as on the sender.

use crate::data::{DataType, Kind};
use crate::table::Table;

/// One data value as the peers protocol carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerValue {
    /// `server_id` (signed), counters and byte counters.
    Int(i64),
    /// A rate: ms since its current period started, current and previous period counts.
    Freq { age_ms: u32, curr: u32, prev: u32 },
}

/// One entry as sent to or learned from a peer: plain data, sendable between threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// Key bytes in the table's key type (as [`Table`] stores them).
    pub key: Box<[u8]>,
    /// Time left before expiry; `None`: the table's own `expire` from now.
    pub expire_in_ms: Option<u64>,
    /// Stored types in HAProxy's order.
    pub values: Vec<(DataType, PeerValue)>,
}

impl Table {
    /// Turns on the bookkeeping of local changes (tables with `peers <name>`).
    pub fn enable_peers(&mut self) {
        self.peers_on = true;
    }

    /// Whether [`Table::enable_peers`] was called.
    pub fn peers_enabled(&self) -> bool {
        self.peers_on
    }

    pub(crate) fn mark_peer_dirty(&mut self, slot: u32) {
        if !self.peers_on {
            return;
        }
        let s = &mut self.slots[slot as usize];
        if s.owned && !s.peer_dirty {
            s.peer_dirty = true;
            self.peer_dirty.push(slot);
        }
    }

    /// The owned entries changed locally since the last call, at most `max` (the rest wait
    /// for the next call), oldest change first.
    pub fn take_peer_changes(&mut self, now_ms: u64, max: usize) -> Vec<PeerEntry> {
        let mut out = Vec::new();
        let mut taken = 0;
        for &slot in &self.peer_dirty {
            if out.len() >= max {
                break;
            }
            taken += 1;
            let s = &self.slots[slot as usize];
            if s.live && s.owned && s.peer_dirty {
                out.push(self.peer_entry(slot, now_ms));
            }
        }
        let done: Vec<u32> = self.peer_dirty.drain(..taken).collect();
        for slot in done {
            // Cleared only for slots reported (or freed): a duplicate later in the list of a
            // slot reported now is skipped by its flag.
            self.slots[slot as usize].peer_dirty = false;
        }
        out
    }

    /// Every live entry this shard owns (a full resync, "teach").
    pub fn peer_snapshot(&self, now_ms: u64) -> Vec<PeerEntry> {
        (0..self.slots.len() as u32)
            .filter(|&s| {
                let sl = &self.slots[s as usize];
                sl.live && sl.owned && (sl.expire_ms == 0 || sl.expire_ms > now_ms)
            })
            .map(|s| self.peer_entry(s, now_ms))
            .collect()
    }

    fn peer_entry(&self, slot: u32, now_ms: u64) -> PeerEntry {
        let s = &self.slots[slot as usize];
        let w = self.words(slot);
        let layout = &self.cfg.layout;
        let values = layout
            .stored()
            .filter_map(|dt| {
                let o = layout.offset(dt)?;
                Some((
                    dt,
                    match dt.kind() {
                        Kind::Sint => PeerValue::Int(i64::from(w[o] as i32)),
                        Kind::Uint => PeerValue::Int(i64::from(w[o])),
                        Kind::Ull => {
                            PeerValue::Int((u64::from(w[o]) | (u64::from(w[o + 1]) << 32)) as i64)
                        }
                        Kind::Rate => PeerValue::Freq {
                            age_ms: (now_ms as u32).wrapping_sub(w[o]),
                            curr: w[o + 1],
                            prev: w[o + 2],
                        },
                    },
                ))
            })
            .collect();
        PeerEntry {
            key: self.key_of(slot).into(),
            expire_in_ms: (s.expire_ms != 0).then(|| s.expire_ms.saturating_sub(now_ms)),
            values,
        }
    }

    /// Applies an entry learned from a peer: creates or updates it with the peer's values
    /// (types this table does not store are ignored) and expiry. On the key's owner the shards
    /// caching it hear of it with the next flush; another shard updates only a copy it holds.
    /// Not marked for the peers. False when the table is full (`nopurge`).
    pub fn apply_peer(&mut self, e: &PeerEntry, now_ms: u64) -> bool {
        let Some(owner) = self.owns_key(&e.key) else {
            return false;
        };
        let slot = if owner {
            let before = self
                .index
                .get(&*e.key)
                .is_some_and(|&s| self.slots[s as usize].peer_dirty);
            let Ok(slot) = self.find_or_create(&e.key, now_ms) else {
                return false;
            };
            self.slots[slot as usize].peer_dirty = before;
            slot
        } else {
            match self.find(&e.key, now_ms) {
                Some(s) => s,
                None => return true,
            }
        };
        let layout = self.cfg.layout.clone();
        let w = self.words_mut(slot);
        for &(dt, v) in &e.values {
            let Some(o) = layout.offset(dt) else { continue };
            match (dt.kind(), v) {
                (Kind::Sint | Kind::Uint, PeerValue::Int(i)) => w[o] = i as u32,
                (Kind::Ull, PeerValue::Int(i)) => {
                    w[o] = i as u32;
                    w[o + 1] = ((i as u64) >> 32) as u32;
                }
                (Kind::Rate, PeerValue::Freq { age_ms, curr, prev }) => {
                    w[o] = (now_ms as u32).wrapping_sub(age_ms) & !1;
                    w[o + 1] = curr;
                    w[o + 2] = prev;
                }
                _ => {}
            }
        }
        if let (Some(left), true) = (e.expire_in_ms, self.cfg.expire_ms.is_some()) {
            self.slots[slot as usize].expire_ms = now_ms.saturating_add(left).max(1);
        }
        if owner {
            self.mark_owned_dirty(slot);
        }
        true
    }

    /// Whether this shard owns `key`; `None` for a key of the wrong size.
    fn owns_key(&self, key: &[u8]) -> Option<bool> {
        if key.len() > self.cfg.key.max_len() {
            return None;
        }
        Some(crate::shard::owner_of(key, self.shard.count) == self.shard.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::ShardInfo;
    use crate::table::TableConfig;
    use crate::track::TrackFrom;
    use crate::{KeySample, Tables};
    use std::net::Ipv4Addr;

    fn table(store: &str) -> Table {
        let text = format!(
            "backend b\n stick-table type ip size 10 expire 60s peers p store {store}\npeers p\n peer a 127.0.0.1:1\n"
        );
        let loaded = ringlb_config::parse_str("t.cfg", &text).unwrap();
        let model = loaded.config.backends[0].stick_table.clone().unwrap();
        let mut t = Table::new(
            TableConfig::from_model("b", &model).unwrap(),
            ShardInfo::SINGLE,
            1,
        );
        t.enable_peers();
        t
    }

    fn track(t: Table, ip: [u8; 4], now: u64) -> Table {
        let mut tables = Tables::default();
        let id = tables.add(t);
        let mut sc = crate::StreamCounters::default();
        sc.track(
            &mut tables,
            0,
            id,
            &KeySample::Ipv4(Ipv4Addr::from(ip)),
            TrackFrom::HttpRequest,
            now,
        );
        sc.release_all(&mut tables, now);
        std::mem::replace(tables.get_mut(id).unwrap(), table("gpc0"))
    }

    #[test]
    fn local_changes_are_collected_once_and_peer_changes_never() {
        let mut t = table("gpc0,http_req_cnt,http_req_rate(10s)");
        t = track(t, [10, 0, 0, 1], 1000);
        let got = t.take_peer_changes(1500, 100);
        assert_eq!(got.len(), 1);
        assert_eq!(&*got[0].key, &[10, 0, 0, 1]);
        assert_eq!(got[0].expire_in_ms, Some(59_500));
        assert!(got[0]
            .values
            .contains(&(DataType::HttpReqCnt, PeerValue::Int(1))));
        assert!(got[0].values.contains(&(
            DataType::HttpReqRate,
            PeerValue::Freq {
                age_ms: 500,
                curr: 1,
                prev: 0
            }
        )));
        assert!(t.take_peer_changes(1600, 100).is_empty());
        // Learned from a peer: applied, not collected again.
        let learned = PeerEntry {
            key: vec![10, 0, 0, 2].into(),
            expire_in_ms: Some(5000),
            values: vec![
                (DataType::Gpc0, PeerValue::Int(7)),
                (DataType::ConnCnt, PeerValue::Int(3)), // not stored: ignored
                (
                    DataType::HttpReqRate,
                    PeerValue::Freq {
                        age_ms: 2000,
                        curr: 4,
                        prev: 10,
                    },
                ),
            ],
        };
        assert!(t.apply_peer(&learned, 2000));
        assert!(t.take_peer_changes(2000, 100).is_empty());
        let snap = t.peer_snapshot(3000);
        let e = snap.iter().find(|e| *e.key == [10, 0, 0, 2]).unwrap();
        assert_eq!(e.expire_in_ms, Some(4000));
        assert!(e.values.contains(&(DataType::Gpc0, PeerValue::Int(7))));
        assert!(e.values.contains(&(
            DataType::HttpReqRate,
            PeerValue::Freq {
                age_ms: 3000,
                curr: 4,
                prev: 10
            }
        )));
        // The learned rate reads as on the sender: 4 + 10 * (10000 - 3000) / 10000 = 11.
        let q = crate::Query::default();
        let rows = t.query(&q, 3000, true);
        let row = rows.iter().find(|r| *r.key == [10, 0, 0, 2]).unwrap();
        assert!(row.values.contains(&(DataType::HttpReqRate, 11)));
        assert_eq!(snap.len(), 2);
    }

    #[test]
    fn learned_entries_go_to_the_owner_and_reach_the_caches() {
        // Two shards: shard 0's and shard 1's instances of one table.
        let mk = |id| {
            let mut t = table("gpc0");
            t = Table::new(t.config().clone(), ShardInfo { id, count: 2 }, 1);
            t.enable_peers();
            t
        };
        let (mut s0, mut s1) = (mk(0), mk(1));
        let key = (0..=255u8)
            .map(|i| vec![10, 0, 0, i])
            .find(|k| crate::owner_of(k, 2) == 1)
            .unwrap();
        let e = PeerEntry {
            key: key.clone().into(),
            expire_in_ms: None,
            values: vec![(DataType::Gpc0, PeerValue::Int(5))],
        };
        // Not the owner and no copy held: nothing to update, nothing created.
        assert!(s0.apply_peer(&e, 100));
        assert_eq!(s0.used(), 0);
        // The owner stores it (expiry from its own `expire`), not marked for the peers...
        assert!(s1.apply_peer(&e, 100));
        assert!(s1.take_peer_changes(100, 10).is_empty());
        let rows = s1.query(&crate::Query::default(), 100, true);
        assert_eq!(rows[0].exp_ms, 60_000);
        assert!(rows[0].values.contains(&(DataType::Gpc0, 5)));
        // ...and sends its snapshot to the other shard with its next flush.
        for o in s1.flush(100) {
            s0.receive(o.msg, 101);
        }
        let rows = s0.query(&crate::Query::default(), 101, false);
        assert!(rows[0].values.contains(&(DataType::Gpc0, 5)));
        // A later local change on the owner is for the peers again.
        let e2 = PeerEntry {
            values: vec![(DataType::Gpc0, PeerValue::Int(6))],
            ..e
        };
        assert!(s0.apply_peer(&e2, 102)); // a copy now exists: updated in place
        let rows = s0.query(&crate::Query::default(), 102, false);
        assert!(rows[0].values.contains(&(DataType::Gpc0, 6)));
    }

    #[test]
    fn without_peers_nothing_is_recorded() {
        let mut t = table("gpc0");
        t.peers_on = false;
        t = track(t, [10, 0, 0, 1], 1000);
        assert!(t.take_peer_changes(1000, 100).is_empty());
        assert_eq!(t.peer_snapshot(1000).len(), 1);
    }

    #[test]
    fn collection_is_bounded_and_resumes() {
        let mut t = table("gpc0");
        for i in 0..5 {
            t = track(t, [10, 0, 0, i], 1000);
        }
        assert_eq!(t.take_peer_changes(1000, 3).len(), 3);
        assert_eq!(t.take_peer_changes(1000, 3).len(), 2);
        assert!(t.take_peer_changes(1000, 3).is_empty());
    }
}
