//! Between ringlb's stick tables and the wire: a table's definition as haproxy 2.6 would send
//! it, and entries to and from update messages.

use ringlb_stick::data::Kind;
use ringlb_stick::{DataType, KeyType, PeerEntry, PeerValue, TableConfig};

use crate::wire::{TableDef, Update, WireKey, WireValue};

/// haproxy's data type number for `dt` (its `STKTABLE_DT_*`; 19 is `server_key`, which
/// ringlb does not store, so the HTTP failure types come one later than ringlb's order).
pub fn wire_type(dt: DataType) -> u8 {
    match dt {
        DataType::HttpFailCnt => 20,
        DataType::HttpFailRate => 21,
        other => other as u8,
    }
}

/// The ringlb data type of haproxy's data type number `t`, if ringlb stores it.
pub fn data_type(t: u8) -> Option<DataType> {
    match t {
        20 => Some(DataType::HttpFailCnt),
        21 => Some(DataType::HttpFailRate),
        19 => None,
        t => DataType::ALL.get(usize::from(t)).copied(),
    }
}

fn wire_key(k: KeyType) -> (WireKey, u64) {
    match k {
        KeyType::Ip => (WireKey::Ipv4, 4),
        KeyType::Ipv6 => (WireKey::Ipv6, 16),
        KeyType::Integer => (WireKey::Sint, 4),
        KeyType::String { len } => (WireKey::String, len as u64 + 1),
        KeyType::Binary { len } => (WireKey::Binary, len as u64),
    }
}

/// The definition message of table `cfg`, sent with id `id`.
pub fn definition(id: u64, cfg: &TableConfig) -> TableDef {
    let (key, key_len) = wire_key(cfg.key);
    let mut types = 0u64;
    let mut params = Vec::new();
    for dt in cfg.layout.stored() {
        let t = wire_type(dt);
        types |= 1u64 << t;
        if dt.kind() == Kind::Rate {
            params.push((t, 1, u64::from(cfg.layout.period_ms(dt))));
        }
    }
    TableDef {
        id,
        name: cfg.name.clone(),
        key,
        key_len,
        types,
        expire_ms: cfg.expire_ms.unwrap_or(0),
        params,
    }
}

/// Whether updates of a remote table defined as `def` can be stored in table `cfg`: same key
/// type (haproxy checks the type and the length too).
pub fn compatible(def: &TableDef, cfg: &TableConfig) -> bool {
    let (key, len) = wire_key(cfg.key);
    def.key == key && (def.key_len == len || key == WireKey::String)
}

/// Whether `key` has the size table `cfg` stores (strings: at most its length).
pub fn key_fits(cfg: &TableConfig, key: &[u8]) -> bool {
    match cfg.key {
        KeyType::String { len } => key.len() <= len,
        k => key.len() == k.max_len(),
    }
}

/// An entry as an update message of table `def`; `timed` sends its expiry (used when
/// teaching). Every type of the definition gets a value (zero when the entry lacks it).
pub fn to_update(e: &PeerEntry, def: &TableDef, id: Option<u32>, timed: bool) -> Update {
    let values = (0..64u8)
        .filter(|t| def.types & (1u64 << t) != 0)
        .filter_map(|t| {
            let dt = data_type(t)?;
            let v = e.values.iter().find(|(d, _)| *d == dt).map_or(
                if dt.kind() == Kind::Rate {
                    PeerValue::Freq {
                        age_ms: 0,
                        curr: 0,
                        prev: 0,
                    }
                } else {
                    PeerValue::Int(0)
                },
                |x| x.1,
            );
            Some((dt, v))
        })
        .map(|(dt, v)| {
            let w = match v {
                // server_id travels as its unsigned 32-bit pattern, counters as they are.
                PeerValue::Int(i) if dt == DataType::ServerId => {
                    WireValue::Int(u64::from(i as u32))
                }
                PeerValue::Int(i) => WireValue::Int(i.max(0) as u64),
                PeerValue::Freq { age_ms, curr, prev } => WireValue::Freq {
                    age_ms: u64::from(age_ms),
                    curr: u64::from(curr),
                    prev: u64::from(prev),
                },
            };
            (wire_type(dt), w)
        })
        .collect();
    Update {
        id,
        expire_ms: timed.then(|| u32::try_from(e.expire_in_ms.unwrap_or(0)).unwrap_or(u32::MAX)),
        key: e.key.to_vec(),
        values,
    }
}

/// An update learned for table `cfg`: the entry to apply (types the table does not store are
/// dropped by the table itself). `None` when the key does not fit the table.
pub fn from_update(u: &Update, cfg: &TableConfig) -> Option<PeerEntry> {
    let key: Box<[u8]> = match cfg.key {
        KeyType::String { len } => {
            // haproxy's strings stop at the first NUL; longer keys are truncated as ours are.
            let end = u.key.iter().position(|&b| b == 0).unwrap_or(u.key.len());
            u.key.get(..end.min(len))?.into()
        }
        KeyType::Binary { len } => {
            let mut k = u.key.clone();
            k.resize(len, 0);
            k.into()
        }
        k => {
            if u.key.len() != k.max_len() {
                return None;
            }
            u.key.clone().into()
        }
    };
    let values = u
        .values
        .iter()
        .filter_map(|(t, v)| {
            let dt = data_type(*t)?;
            let pv = match (dt.kind(), v) {
                (Kind::Rate, WireValue::Freq { age_ms, curr, prev }) => PeerValue::Freq {
                    age_ms: *age_ms as u32,
                    curr: *curr as u32,
                    prev: *prev as u32,
                },
                (Kind::Sint, WireValue::Int(i)) => PeerValue::Int(i64::from(*i as u32 as i32)),
                (Kind::Uint | Kind::Ull, WireValue::Int(i)) => {
                    PeerValue::Int(i64::try_from(*i).unwrap_or(i64::MAX))
                }
                _ => return None,
            };
            Some((dt, pv))
        })
        .collect();
    Some(PeerEntry {
        key,
        expire_in_ms: u.expire_ms.map(u64::from),
        values,
    })
}
