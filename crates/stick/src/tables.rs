//! A shard's set of stick tables and a stream's stick counters (`sc0`..`sc2`): the surface
//! the engine and the rules engine use.
//!
//! The rules crate evaluates `track-scN`, `sc-inc-gpc0`, `sc-set-gpt0` and the `sc_*`,
//! `scN_*`, `src_*`, `table_*` fetches through its host trait; the engine implements that
//! trait with [`Tables`] (one per shard) and a [`StreamCounters`] per stream, mapping names
//! with [`crate::parse_fetch`] and calling [`Tables::fetch`].

use std::collections::HashMap;

use ringlb_config::model::StickTable;

use crate::data::DataType;
use crate::key::KeySample;
use crate::shard::{Message, Outgoing, ShardInfo};
use crate::table::{Table, TableConfig};
use crate::track::{Event, FetchKind, FetchScope, Handle, TrackFrom};

/// Stick counters per stream (HAProxy 2.6's build default, `MAX_SESS_STKCTR`).
pub const MAX_SC: usize = 3;

/// Index of a table in a shard's [`Tables`]; the same on every shard built from one config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableId(pub u16);

/// A shard's instances of every stick table of the configuration.
#[derive(Debug, Default)]
pub struct Tables {
    tables: Vec<Table>,
    names: HashMap<String, TableId>,
}

/// A fetch result: most are integers, `sc_tracked` is a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchValue {
    Int(i64),
    Bool(bool),
}

impl Tables {
    /// Builds this shard's tables from `(proxy name, stick-table)` pairs, in order.
    pub fn from_model<'a>(
        tables: impl IntoIterator<Item = (&'a str, &'a StickTable)>,
        shard: ShardInfo,
        seed: u64,
    ) -> Result<Tables, String> {
        let mut out = Tables::default();
        for (name, t) in tables {
            let cfg = TableConfig::from_model(name, t).map_err(|e| format!("{name}: {e}"))?;
            out.add(Table::new(cfg, shard, seed));
        }
        Ok(out)
    }

    pub fn add(&mut self, t: Table) -> TableId {
        let id = TableId(self.tables.len() as u16);
        self.names.insert(t.name().to_string(), id);
        self.tables.push(t);
        id
    }

    /// The table declared in proxy `name`.
    pub fn id(&self, name: &str) -> Option<TableId> {
        self.names.get(name).copied()
    }

    pub fn get(&self, id: TableId) -> Option<&Table> {
        self.tables.get(usize::from(id.0))
    }

    pub fn get_mut(&mut self, id: TableId) -> Option<&mut Table> {
        self.tables.get_mut(usize::from(id.0))
    }

    pub fn iter(&self) -> impl Iterator<Item = (TableId, &Table)> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| (TableId(i as u16), t))
    }

    /// Every table's messages for the other shards (call every millisecond).
    pub fn flush(&mut self, now_ms: u64) -> Vec<(TableId, Outgoing)> {
        let mut out = Vec::new();
        for (i, t) in self.tables.iter_mut().enumerate() {
            out.extend(t.flush(now_ms).into_iter().map(|o| (TableId(i as u16), o)));
        }
        out
    }

    pub fn receive(&mut self, id: TableId, msg: Message, now_ms: u64) {
        if let Some(t) = self.get_mut(id) {
            t.receive(msg, now_ms);
        }
    }

    /// Expiry sweep for a periodic task: at most `max` entries per table.
    pub fn purge_expired(&mut self, now_ms: u64, max: usize) -> usize {
        self.tables
            .iter_mut()
            .map(|t| t.purge_expired(now_ms, max))
            .sum()
    }

    /// `table_cnt(t)`: entries in use on this shard's view.
    pub fn table_cnt(&self, id: TableId) -> Option<i64> {
        self.get(id).map(|t| t.used() as i64)
    }

    /// `table_avl(t)`: free entries.
    pub fn table_avl(&self, id: TableId) -> Option<i64> {
        self.get(id)
            .map(|t| t.config().size.saturating_sub(t.used()) as i64)
    }

    /// Evaluates a stick-table fetch. `slot` is the counter number for `sc_*` (the `ScN`
    /// scope carries its own); `table` the explicit table argument (required for `table_*`,
    /// optional otherwise: `src_*` default to the current proxy's table, which the caller
    /// resolves); `key` the key sample for `src_*` (the source address) and `table_*` (the
    /// converter's input). None: the fetch fails (counter not tracked, type not stored...).
    #[allow(clippy::too_many_arguments)]
    pub fn fetch(
        &mut self,
        sc: &StreamCounters,
        scope: FetchScope,
        kind: FetchKind,
        slot: Option<u8>,
        table: Option<TableId>,
        key: Option<&KeySample<'_>>,
        now_ms: u64,
    ) -> Option<FetchValue> {
        match scope {
            FetchScope::Sc | FetchScope::ScN(_) => {
                let n = match scope {
                    FetchScope::ScN(n) => n,
                    _ => slot?,
                };
                let tracked = sc.handle(n);
                if kind == FetchKind::Tracked {
                    return Some(FetchValue::Bool(tracked.is_some()));
                }
                let (tid, h) = tracked?;
                match table {
                    Some(other) if other != tid => {
                        // `sc_x(n, other)`: the tracked key, looked up in another table.
                        let kt = self.get(tid)?.config().key;
                        let k: Box<[u8]> = self.get(tid)?.handle_key(h)?.into();
                        let t = self.get_mut(other)?;
                        if t.config().key != kt {
                            return None;
                        }
                        match kind {
                            FetchKind::Data(dt) => int(t.lookup_raw(&k, dt, now_ms)),
                            FetchKind::KBytes(dt) => {
                                int(t.lookup_raw(&k, dt, now_ms).map(|b| b >> 10))
                            }
                            _ => None,
                        }
                    }
                    _ => handle_fetch(self.get_mut(tid)?, h, kind, now_ms),
                }
            }
            FetchScope::Src | FetchScope::Table => {
                let t = self.get_mut(table?)?;
                key_fetch(t, key?, kind, now_ms)
            }
        }
    }
}

fn int(v: Option<i64>) -> Option<FetchValue> {
    v.map(FetchValue::Int)
}

fn handle_fetch(t: &mut Table, h: Handle, kind: FetchKind, now_ms: u64) -> Option<FetchValue> {
    match kind {
        FetchKind::Data(dt) => int(t.get(h, dt, now_ms)),
        FetchKind::KBytes(dt) => int(t.get(h, dt, now_ms).map(|b| b >> 10)),
        FetchKind::Trackers => int(Some(i64::from(t.trackers(h)))),
        FetchKind::Tracked => Some(FetchValue::Bool(true)),
        FetchKind::UpdtConnCnt => None,
        FetchKind::IncGpc(g) => int(t.inc_gpc(h, g, now_ms)),
        FetchKind::ClrGpc(g) => int(t.clr_gpc(h, g, now_ms)),
    }
}

fn key_fetch(
    t: &mut Table,
    key: &KeySample<'_>,
    kind: FetchKind,
    now_ms: u64,
) -> Option<FetchValue> {
    match kind {
        FetchKind::Data(dt) => int(t.lookup(key, dt, now_ms)),
        FetchKind::KBytes(dt) => int(t.lookup(key, dt, now_ms).map(|b| b >> 10)),
        FetchKind::Trackers => int(Some(i64::from(t.key_trackers(key, now_ms)))),
        FetchKind::Tracked => None,
        FetchKind::UpdtConnCnt => int(t.key_updt_conn_cnt(key, now_ms)),
        FetchKind::IncGpc(g) => int(t.key_inc_gpc(key, g, now_ms)),
        FetchKind::ClrGpc(g) => int(t.key_clr_gpc(key, g, now_ms)),
    }
}

/// A stream's stick counters. Release them when the stream ends ([`StreamCounters::release_all`])
/// or the entries stay held (`conn_cur` never decreases, the entry never expires).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCounters {
    sc: [Option<(TableId, Handle)>; MAX_SC],
}

impl StreamCounters {
    /// `track-scN <key> [table t]`. As in HAProxy, a counter already tracking something is left
    /// alone (the first matching rule wins). False if nothing is tracked (bad key, table full).
    pub fn track(
        &mut self,
        tables: &mut Tables,
        n: u8,
        table: TableId,
        key: &KeySample<'_>,
        from: TrackFrom,
        now_ms: u64,
    ) -> bool {
        let Some(slot) = self.sc.get_mut(usize::from(n)) else {
            return false;
        };
        if slot.is_some() {
            return false;
        }
        let Some(t) = tables.get_mut(table) else {
            return false;
        };
        match t.track(key, from, now_ms) {
            Ok(h) => {
                *slot = Some((table, h));
                true
            }
            Err(_) => false,
        }
    }

    /// These counters where tracked, `fallback`'s elsewhere: what a stream's fetches see when
    /// its session (`tcp-request` tracking) and its request (`http-request`) hold counters.
    pub fn or(&self, fallback: &StreamCounters) -> StreamCounters {
        let mut out = self.clone();
        for (o, f) in out.sc.iter_mut().zip(&fallback.sc) {
            if o.is_none() {
                *o = *f;
            }
        }
        out
    }

    pub fn handle(&self, n: u8) -> Option<(TableId, Handle)> {
        self.sc.get(usize::from(n)).copied().flatten()
    }

    /// Counts `ev` on every tracked counter (HAProxy updates each stick counter in turn).
    pub fn record(&self, tables: &mut Tables, ev: Event, now_ms: u64) {
        for (tid, h) in self.sc.iter().flatten() {
            if let Some(t) = tables.get_mut(*tid) {
                t.record(*h, ev, now_ms);
            }
        }
    }

    /// `sc-inc-gpc0(n)` / `sc-inc-gpc1(n)`.
    pub fn inc_gpc(&self, tables: &mut Tables, n: u8, gpc: DataType, now_ms: u64) -> Option<i64> {
        let (tid, h) = self.handle(n)?;
        tables.get_mut(tid)?.inc_gpc(h, gpc, now_ms)
    }

    /// `sc-set-gpt0(n) <v>`.
    pub fn set_gpt0(&self, tables: &mut Tables, n: u8, v: i64, now_ms: u64) -> bool {
        let Some((tid, h)) = self.handle(n) else {
            return false;
        };
        tables
            .get_mut(tid)
            .is_some_and(|t| t.set(h, DataType::Gpt0, v, now_ms))
    }

    /// The stream ended: every counter is released (`conn_cur` - 1, expiry restarts).
    pub fn release_all(&mut self, tables: &mut Tables, now_ms: u64) {
        for slot in &mut self.sc {
            if let Some((tid, h)) = slot.take() {
                if let Some(t) = tables.get_mut(tid) {
                    t.release(h, now_ms);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::parse_fetch;
    use ringlb_config::model::{Loc, StickKey, StoreItem};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn model(key: StickKey, store: &[(&str, Option<u64>)]) -> StickTable {
        StickTable {
            loc: Loc::default(),
            key,
            size: 100 * 1024,
            expire: Some(Duration::from_secs(30)),
            nopurge: false,
            peers: None,
            store: store
                .iter()
                .map(|(n, p)| StoreItem {
                    name: n.to_string(),
                    period: p.map(Duration::from_secs),
                })
                .collect(),
        }
    }

    const SRC: KeySample<'static> = KeySample::Ipv4(Ipv4Addr::new(192, 0, 2, 7));

    fn sc_val(
        tables: &mut Tables,
        sc: &StreamCounters,
        name: &str,
        arg: Option<u8>,
        table: Option<TableId>,
        now: u64,
    ) -> Option<FetchValue> {
        let (scope, kind) = parse_fetch(name).unwrap();
        tables.fetch(sc, scope, kind, arg, table, Some(&SRC), now)
    }

    /// The guide's two-layer limit: `track-sc0 src table per_ip_rate`, `track-sc1 src,path
    /// table per_path_rate if { path_beg /api/ }`, deny above 200 per IP or 50 per IP+path.
    #[test]
    fn two_layer_per_ip_and_per_ip_path_limits() {
        let per_ip = model(StickKey::Ip, &[("http_req_rate", Some(10))]);
        let per_path = model(StickKey::Binary { len: 40 }, &[("http_req_rate", Some(10))]);
        let mut tables = Tables::from_model(
            [("per_ip_rate", &per_ip), ("per_path_rate", &per_path)],
            ShardInfo::SINGLE,
            1,
        )
        .unwrap();
        let ip_t = tables.id("per_ip_rate").unwrap();
        let path_t = tables.id("per_path_rate").unwrap();
        let (mut denied_ip, mut denied_path) = (0, 0);
        for i in 0..300u64 {
            let now = 1_000 + i * 10;
            let path: &[u8] = if i % 2 == 0 {
                b"/api/users"
            } else {
                b"/static/x"
            };
            let mut sc = StreamCounters::default();
            assert!(sc.track(&mut tables, 0, ip_t, &SRC, TrackFrom::HttpRequest, now));
            if path.starts_with(b"/api/") {
                let mut k = vec![192, 0, 2, 7];
                k.extend_from_slice(path);
                assert!(sc.track(
                    &mut tables,
                    1,
                    path_t,
                    &KeySample::Bin(&k),
                    TrackFrom::HttpRequest,
                    now
                ));
            }
            let ip_rate = sc_val(
                &mut tables,
                &sc,
                "sc_http_req_rate",
                Some(0),
                Some(ip_t),
                now,
            );
            let path_rate = sc_val(
                &mut tables,
                &sc,
                "sc_http_req_rate",
                Some(1),
                Some(path_t),
                now,
            );
            if matches!(ip_rate, Some(FetchValue::Int(r)) if r > 200) {
                denied_ip += 1;
            } else if matches!(path_rate, Some(FetchValue::Int(r)) if r > 50) {
                denied_path += 1;
            }
            sc.release_all(&mut tables, now);
        }
        // 150 /api/ requests: 50 pass the per-path limit; the per-IP limit cuts the last 100.
        assert_eq!(denied_ip, 100);
        assert_eq!(denied_path, 50);
        assert_eq!(tables.table_cnt(ip_t), Some(1));
        assert_eq!(tables.table_avl(path_t), Some(100 * 1024 - 1));
    }

    #[test]
    fn sc_fetches_on_untracked_counters_fail_except_tracked() {
        let per_ip = model(
            StickKey::Ip,
            &[("conn_cur", None), ("gpc0", None), ("bytes_in_cnt", None)],
        );
        let mut tables = Tables::from_model([("fe", &per_ip)], ShardInfo::SINGLE, 1).unwrap();
        let fe = tables.id("fe").unwrap();
        let mut sc = StreamCounters::default();
        assert_eq!(
            sc_val(&mut tables, &sc, "sc0_conn_cur", None, None, 0),
            None
        );
        assert_eq!(
            sc_val(&mut tables, &sc, "sc_tracked", Some(0), None, 0),
            Some(FetchValue::Bool(false))
        );
        assert!(sc.track(&mut tables, 0, fe, &SRC, TrackFrom::TcpConnection, 0));
        // A second track on the same counter is ignored.
        assert!(!sc.track(&mut tables, 0, fe, &SRC, TrackFrom::TcpConnection, 0));
        assert_eq!(
            sc_val(&mut tables, &sc, "sc0_conn_cur", None, None, 0),
            Some(FetchValue::Int(1))
        );
        assert_eq!(
            sc_val(&mut tables, &sc, "sc0_trackers", None, None, 0),
            Some(FetchValue::Int(1))
        );
        assert_eq!(
            sc_val(&mut tables, &sc, "sc0_inc_gpc0", None, None, 0),
            Some(FetchValue::Int(1))
        );
        assert_eq!(sc.inc_gpc(&mut tables, 0, DataType::Gpc0, 0), Some(2));
        assert_eq!(
            sc_val(&mut tables, &sc, "src_get_gpc0", None, Some(fe), 0),
            Some(FetchValue::Int(2))
        );
        sc.record(&mut tables, Event::BytesIn(4096), 0);
        assert_eq!(
            sc_val(&mut tables, &sc, "sc0_kbytes_in", None, None, 0),
            Some(FetchValue::Int(4))
        );
        assert_eq!(
            sc_val(&mut tables, &sc, "sc0_http_req_rate", None, None, 0),
            None,
            "not stored"
        );
        assert_eq!(
            sc_val(&mut tables, &sc, "sc1_conn_cur", None, None, 0),
            None
        );
        sc.release_all(&mut tables, 5);
        assert_eq!(
            sc_val(&mut tables, &sc, "src_conn_cur", None, Some(fe), 5),
            Some(FetchValue::Int(0))
        );
        assert_eq!(
            sc_val(&mut tables, &sc, "src_clr_gpc0", None, Some(fe), 5),
            Some(FetchValue::Int(2))
        );
        assert_eq!(
            sc_val(&mut tables, &sc, "src_get_gpc0", None, Some(fe), 5),
            Some(FetchValue::Int(0))
        );
    }

    #[test]
    fn fetch_names() {
        assert_eq!(
            parse_fetch("sc_http_req_rate"),
            Some((FetchScope::Sc, FetchKind::Data(DataType::HttpReqRate)))
        );
        assert_eq!(
            parse_fetch("sc2_conn_cur"),
            Some((FetchScope::ScN(2), FetchKind::Data(DataType::ConnCur)))
        );
        assert_eq!(parse_fetch("sc3_conn_cur"), None);
        assert_eq!(
            parse_fetch("src_get_gpt0"),
            Some((FetchScope::Src, FetchKind::Data(DataType::Gpt0)))
        );
        assert_eq!(
            parse_fetch("table_server_id"),
            Some((FetchScope::Table, FetchKind::Data(DataType::ServerId)))
        );
        assert_eq!(parse_fetch("src_tracked"), None);
        assert_eq!(
            parse_fetch("sc0_kbytes_out"),
            Some((FetchScope::ScN(0), FetchKind::KBytes(DataType::BytesOutCnt)))
        );
        assert_eq!(parse_fetch("path"), None);
        assert_eq!(
            parse_fetch("src_updt_conn_cnt"),
            Some((FetchScope::Src, FetchKind::UpdtConnCnt))
        );
        assert_eq!(parse_fetch("sc0_updt_conn_cnt"), None);
        assert_eq!(Event::for_status(429), Some(Event::HttpError));
        assert_eq!(Event::for_status(503), Some(Event::HttpFail));
        assert_eq!(Event::for_status(501), None);
        assert_eq!(Event::for_status(200), None);
    }
}
