//! Tracking (`track-scN`) and the sample-facing reads and writes the rules engine needs
//! (`sc_*`, `sc0_*`, `src_*` and `table_*` fetches, `sc-inc-gpc0`, `sc-set-gpt0`...).
//!
//! HAProxy's accounting, as recorded from haproxy 2.6 (tests/fixtures/show_table_all_types.txt):
//! a track starts a "connection" on the entry (`conn_cnt`, `conn_rate`, `conn_cur` + 1) —
//! once per tracked stream, so keep-alive requests each count —, `http-request track-sc`
//! also counts the request itself (`http_req_cnt`, `http_req_rate`), and
//! `tcp-request connection|session` tracking counts a session (`sess_cnt`, `sess_rate`).
//! Releasing the handle when the stream ends takes `conn_cur` back down.

use crate::data::DataType;
use crate::key::KeySample;
use crate::shard::DeltaOp;
use crate::table::{Refused, Table};

/// The rule set a `track-scN` action ran in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackFrom {
    TcpConnection,
    TcpSession,
    TcpContent,
    HttpRequest,
}

/// A tracked entry (what a stick counter `scN` points to). Valid until [`Table::release`];
/// the entry cannot expire or be evicted meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    slot: u32,
    gen: u32,
}

/// Something that happened on a tracked stream, counted into every stored matching type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An HTTP request on a stream tracked before the request (tcp-request rules).
    HttpRequest,
    /// `http_err_cnt`/`http_err_rate`: an invalid or truncated request, a request denied or
    /// tarpitted by the rules (the guide's 429s count), a failed authentication, or a 4xx from
    /// the server (configuration.txt, "http_err_cnt").
    HttpError,
    /// `http_fail_cnt`/`http_fail_rate`: an invalid or truncated response, or a 5xx other than
    /// 501 and 505.
    HttpFail,
    /// Bytes received from the client.
    BytesIn(u64),
    /// Bytes sent to the client.
    BytesOut(u64),
    /// The connection became a session (passed its `tcp-request connection` rules): haproxy
    /// counts `sess_cnt`/`sess_rate` then, so a rejected connection counts none. For engines
    /// that track with [`TrackFrom::TcpContent`] during connection rules (recorded: haproxy
    /// 2.6 reports `conn_cnt=3, sess_cnt=2` after a third connection was rejected).
    Session,
}

impl Event {
    /// The event a server response status counts as, if any: 4xx is an error (client-induced),
    /// 5xx but 501 and 505 a failure (server-induced).
    pub fn for_status(status: u16) -> Option<Event> {
        match status {
            400..=499 => Some(Event::HttpError),
            501 | 505 => None,
            500..=599 => Some(Event::HttpFail),
            _ => None,
        }
    }
}

impl Table {
    /// `track-scN <key>`: finds or creates the entry, holds it and counts the connection
    /// (and the request for `http-request`, the session for `tcp-request connection|session`).
    pub fn track(
        &mut self,
        sample: &KeySample<'_>,
        from: TrackFrom,
        now_ms: u64,
    ) -> Result<Handle, Refused> {
        if !self.encode(sample) {
            return Err(Refused::BadKey);
        }
        let key = std::mem::take(&mut self.scratch);
        let r = self.find_or_create(&key, now_ms);
        self.scratch = key;
        let slot = r?;
        self.slots[slot as usize].refs += 1;
        let h = Handle {
            slot,
            gen: self.slots[slot as usize].gen,
        };
        self.mutate(slot, DeltaOp::Add(DataType::ConnCnt, 1), now_ms);
        self.mutate(slot, DeltaOp::Add(DataType::ConnRate, 1), now_ms);
        self.mutate(slot, DeltaOp::Add(DataType::ConnCur, 1), now_ms);
        match from {
            TrackFrom::HttpRequest => self.count_request(slot, now_ms),
            TrackFrom::TcpConnection | TrackFrom::TcpSession => {
                self.mutate(slot, DeltaOp::Add(DataType::SessCnt, 1), now_ms);
                self.mutate(slot, DeltaOp::Add(DataType::SessRate, 1), now_ms);
            }
            TrackFrom::TcpContent => {}
        }
        Ok(h)
    }

    fn count_request(&mut self, slot: u32, now_ms: u64) {
        self.mutate(slot, DeltaOp::Add(DataType::HttpReqCnt, 1), now_ms);
        self.mutate(slot, DeltaOp::Add(DataType::HttpReqRate, 1), now_ms);
    }

    fn valid(&self, h: Handle) -> bool {
        self.slots
            .get(h.slot as usize)
            .is_some_and(|s| s.live && s.gen == h.gen && s.refs > 0)
    }

    /// The stream ended: `conn_cur` - 1, the entry is touched (its expiry restarts) and becomes
    /// evictable again when no other stream holds it.
    pub fn release(&mut self, h: Handle, now_ms: u64) {
        if !self.valid(h) {
            return;
        }
        self.mutate(h.slot, DeltaOp::Add(DataType::ConnCur, -1), now_ms);
        self.slots[h.slot as usize].refs -= 1;
        self.touch(h.slot, now_ms);
    }

    /// Counts `ev` on the tracked entry.
    pub fn record(&mut self, h: Handle, ev: Event, now_ms: u64) {
        if !self.valid(h) {
            return;
        }
        let s = h.slot;
        match ev {
            Event::HttpRequest => self.count_request(s, now_ms),
            Event::HttpError => {
                self.mutate(s, DeltaOp::Add(DataType::HttpErrCnt, 1), now_ms);
                self.mutate(s, DeltaOp::Add(DataType::HttpErrRate, 1), now_ms);
            }
            Event::HttpFail => {
                self.mutate(s, DeltaOp::Add(DataType::HttpFailCnt, 1), now_ms);
                self.mutate(s, DeltaOp::Add(DataType::HttpFailRate, 1), now_ms);
            }
            Event::Session => {
                self.mutate(s, DeltaOp::Add(DataType::SessCnt, 1), now_ms);
                self.mutate(s, DeltaOp::Add(DataType::SessRate, 1), now_ms);
            }
            Event::BytesIn(n) => {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                self.mutate(s, DeltaOp::Add(DataType::BytesInCnt, n), now_ms);
                self.mutate(s, DeltaOp::Add(DataType::BytesInRate, n), now_ms);
            }
            Event::BytesOut(n) => {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                self.mutate(s, DeltaOp::Add(DataType::BytesOutCnt, n), now_ms);
                self.mutate(s, DeltaOp::Add(DataType::BytesOutRate, n), now_ms);
            }
        }
    }

    /// `sc_<dt>(n)`: the tracked entry's value. None if the table does not store `dt` (the
    /// fetch fails, as in HAProxy) or the handle is stale.
    pub fn get(&self, h: Handle, dt: DataType, now_ms: u64) -> Option<i64> {
        if !self.valid(h) {
            return None;
        }
        self.value(h.slot, dt, now_ms)
    }

    /// `sc_trackers(n)`: streams on this shard holding the entry.
    pub fn trackers(&self, h: Handle) -> u32 {
        if self.valid(h) {
            self.slots[h.slot as usize].refs
        } else {
            0
        }
    }

    /// The key bytes of a tracked entry.
    pub fn handle_key(&self, h: Handle) -> Option<&[u8]> {
        self.valid(h).then(|| self.key_of(h.slot))
    }

    /// `src_trackers` / `table_trackers`: streams on this shard holding the key's entry.
    pub fn key_trackers(&mut self, sample: &KeySample<'_>, now_ms: u64) -> u32 {
        if !self.encode(sample) {
            return 0;
        }
        let key = std::mem::take(&mut self.scratch);
        let slot = self.find(&key, now_ms);
        self.scratch = key;
        slot.map_or(0, |s| self.slots[s as usize].refs)
    }

    /// `sc-inc-gpc0` / `sc-inc-gpc1` / `sc_inc_gpc0`: increments `gpc` (Gpc0 or Gpc1) and its
    /// rate; returns the new value. None if the table stores neither.
    pub fn inc_gpc(&mut self, h: Handle, gpc: DataType, now_ms: u64) -> Option<i64> {
        if !self.valid(h) {
            return None;
        }
        self.inc_gpc_slot(h.slot, gpc, now_ms)
    }

    fn inc_gpc_slot(&mut self, slot: u32, gpc: DataType, now_ms: u64) -> Option<i64> {
        let rate = match gpc {
            DataType::Gpc0 => DataType::Gpc0Rate,
            DataType::Gpc1 => DataType::Gpc1Rate,
            _ => return None,
        };
        let l = &self.cfg.layout;
        if !l.stores(gpc) && !l.stores(rate) {
            return None;
        }
        self.mutate(slot, DeltaOp::Add(gpc, 1), now_ms);
        self.mutate(slot, DeltaOp::Add(rate, 1), now_ms);
        Some(self.value(slot, gpc, now_ms).unwrap_or(0))
    }

    /// `sc_clr_gpc0` / `sc_clr_gpc1`: resets the counter, returns the value before.
    pub fn clr_gpc(&mut self, h: Handle, gpc: DataType, now_ms: u64) -> Option<i64> {
        if !self.valid(h) || !matches!(gpc, DataType::Gpc0 | DataType::Gpc1) {
            return None;
        }
        let old = self.value(h.slot, gpc, now_ms)?;
        self.mutate(h.slot, DeltaOp::Set(gpc, 0), now_ms);
        Some(old)
    }

    /// `sc-set-gpt0 <v>` (and setting `server_id` for `stick store`).
    pub fn set(&mut self, h: Handle, dt: DataType, v: i64, now_ms: u64) -> bool {
        if !self.valid(h) || !self.cfg.layout.stores(dt) {
            return false;
        }
        self.mutate(h.slot, DeltaOp::Set(dt, v), now_ms);
        true
    }

    /// `src_<dt>(table)` / `table_<dt>(table)`: the value for a key without tracking it or
    /// creating an entry. None if the table does not store `dt` or the sample is no key of
    /// this table; 0 if the key has no entry (HAProxy's answer).
    pub fn lookup(&mut self, sample: &KeySample<'_>, dt: DataType, now_ms: u64) -> Option<i64> {
        if !self.cfg.layout.stores(dt) || !self.encode(sample) {
            return None;
        }
        let key = std::mem::take(&mut self.scratch);
        let slot = self.find(&key, now_ms);
        self.scratch = key;
        match slot {
            Some(s) => self.value(s, dt, now_ms),
            None => Some(0),
        }
    }

    /// Like [`Table::lookup`] with key bytes already in this table's form.
    pub(crate) fn lookup_raw(&mut self, k: &[u8], dt: DataType, now_ms: u64) -> Option<i64> {
        if !self.cfg.layout.stores(dt) {
            return None;
        }
        match self.find(k, now_ms) {
            Some(s) => self.value(s, dt, now_ms),
            None => Some(0),
        }
    }

    /// Whether the key has a live entry (`table_*` and `src_*` with a missing key, `stick match`).
    pub fn contains(&mut self, sample: &KeySample<'_>, now_ms: u64) -> bool {
        if !self.encode(sample) {
            return false;
        }
        let key = std::mem::take(&mut self.scratch);
        let found = self.find(&key, now_ms).is_some();
        self.scratch = key;
        found
    }

    /// `src_inc_gpc0(table)`: creates the entry if needed, increments, returns the new value.
    pub fn key_inc_gpc(
        &mut self,
        sample: &KeySample<'_>,
        gpc: DataType,
        now_ms: u64,
    ) -> Option<i64> {
        if !self.encode(sample) {
            return None;
        }
        let key = std::mem::take(&mut self.scratch);
        let r = self.find_or_create(&key, now_ms);
        self.scratch = key;
        self.inc_gpc_slot(r.ok()?, gpc, now_ms)
    }

    /// `src_updt_conn_cnt(table)`: creates the entry if needed, counts a connection
    /// (`conn_cnt`, `conn_rate`) and returns the new `conn_cnt`.
    pub fn key_updt_conn_cnt(&mut self, sample: &KeySample<'_>, now_ms: u64) -> Option<i64> {
        if !self.cfg.layout.stores(DataType::ConnCnt) || !self.encode(sample) {
            return None;
        }
        let key = std::mem::take(&mut self.scratch);
        let r = self.find_or_create(&key, now_ms);
        self.scratch = key;
        let slot = r.ok()?;
        self.mutate(slot, DeltaOp::Add(DataType::ConnCnt, 1), now_ms);
        self.mutate(slot, DeltaOp::Add(DataType::ConnRate, 1), now_ms);
        self.value(slot, DataType::ConnCnt, now_ms)
    }

    /// `src_clr_gpc0(table)`: clears an existing entry's counter, returns the value before
    /// (0 when the key has no entry).
    pub fn key_clr_gpc(
        &mut self,
        sample: &KeySample<'_>,
        gpc: DataType,
        now_ms: u64,
    ) -> Option<i64> {
        if !matches!(gpc, DataType::Gpc0 | DataType::Gpc1) || !self.cfg.layout.stores(gpc) {
            return None;
        }
        if !self.encode(sample) {
            return None;
        }
        let key = std::mem::take(&mut self.scratch);
        let slot = self.find(&key, now_ms);
        self.scratch = key;
        let Some(slot) = slot else {
            return Some(0);
        };
        let old = self.value(slot, gpc, now_ms)?;
        self.mutate(slot, DeltaOp::Set(gpc, 0), now_ms);
        Some(old)
    }

    /// `stick match` / `stick on` lookup: the server id stored for the key, touching the entry
    /// (its expiry restarts). None when the key has no entry or no server stored.
    pub fn stick_match(&mut self, sample: &KeySample<'_>, now_ms: u64) -> Option<i64> {
        if !self.cfg.layout.stores(DataType::ServerId) || !self.encode(sample) {
            return None;
        }
        let key = std::mem::take(&mut self.scratch);
        let slot = self.find(&key, now_ms);
        self.scratch = key;
        let slot = slot?;
        self.touch(slot, now_ms);
        self.value(slot, DataType::ServerId, now_ms)
            .filter(|id| *id > 0)
    }

    /// `stick store-request` / `stick on`: stores `server_id` for the key, creating the entry.
    pub fn store_server_id(&mut self, sample: &KeySample<'_>, server_id: i64, now_ms: u64) -> bool {
        if !self.cfg.layout.stores(DataType::ServerId) || !self.encode(sample) {
            return false;
        }
        let key = std::mem::take(&mut self.scratch);
        let r = self.find_or_create(&key, now_ms);
        self.scratch = key;
        match r {
            Ok(slot) => {
                self.mutate(slot, DeltaOp::Set(DataType::ServerId, server_id), now_ms);
                true
            }
            Err(_) => false,
        }
    }
}

/// Scope of a stick-table fetch name: `sc_x(n[,table])`, `scN_x([table])`, `src_x([table])`,
/// `table_x(table)` (the latter also as a converter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchScope {
    /// `sc_*`: the counter number is the fetch's first argument.
    Sc,
    /// `sc0_*`, `sc1_*`, `sc2_*`.
    ScN(u8),
    Src,
    Table,
}

/// What a stick-table fetch returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchKind {
    /// A stored value (`http_req_rate`, `conn_cur`, `get_gpc0`, `get_gpt0`...).
    Data(DataType),
    /// `kbytes_in` / `kbytes_out`: the byte counter / 1024.
    KBytes(DataType),
    /// `trackers`: streams holding the entry.
    Trackers,
    /// `tracked` (sc only): whether the counter is tracked.
    Tracked,
    /// `inc_gpc0` / `inc_gpc1`: increments and returns the new value.
    IncGpc(DataType),
    /// `clr_gpc0` / `clr_gpc1`: clears and returns the old value.
    ClrGpc(DataType),
    /// `src_updt_conn_cnt`: counts a connection, returns the new `conn_cnt`.
    UpdtConnCnt,
}

/// Splits a fetch name (`sc0_http_req_rate`, `src_conn_cur`, `table_gpc0`, `sc_get_gpt0`)
/// into scope and kind. None if it is no stick-table fetch ringlb supports.
pub fn parse_fetch(name: &str) -> Option<(FetchScope, FetchKind)> {
    let (scope, rest) = if let Some(r) = name.strip_prefix("sc_") {
        (FetchScope::Sc, r)
    } else if let Some(r) = name.strip_prefix("src_") {
        (FetchScope::Src, r)
    } else if let Some(r) = name.strip_prefix("table_") {
        (FetchScope::Table, r)
    } else {
        let r = name.strip_prefix("sc")?;
        let (n, r) = r.split_at_checked(1)?;
        let n: u8 = n.parse().ok().filter(|n| *n < 3)?;
        (FetchScope::ScN(n), r.strip_prefix('_')?)
    };
    let kind = match rest {
        "kbytes_in" => FetchKind::KBytes(DataType::BytesInCnt),
        "kbytes_out" => FetchKind::KBytes(DataType::BytesOutCnt),
        "trackers" => FetchKind::Trackers,
        "tracked" if matches!(scope, FetchScope::Sc | FetchScope::ScN(_)) => FetchKind::Tracked,
        "inc_gpc0" => FetchKind::IncGpc(DataType::Gpc0),
        "inc_gpc1" => FetchKind::IncGpc(DataType::Gpc1),
        "clr_gpc0" => FetchKind::ClrGpc(DataType::Gpc0),
        "clr_gpc1" => FetchKind::ClrGpc(DataType::Gpc1),
        "get_gpc0" => FetchKind::Data(DataType::Gpc0),
        "get_gpc1" => FetchKind::Data(DataType::Gpc1),
        "get_gpt0" => FetchKind::Data(DataType::Gpt0),
        "updt_conn_cnt" if scope == FetchScope::Src => FetchKind::UpdtConnCnt,
        "server_id" if scope == FetchScope::Table => FetchKind::Data(DataType::ServerId),
        other => match DataType::from_name(other)? {
            DataType::ServerId => return None,
            dt => FetchKind::Data(dt),
        },
    };
    Some((scope, kind))
}
