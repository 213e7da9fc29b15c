//! Stored data types (`store ...`) and the per-table fixed layout of an entry's data words.
//!
//! Every entry of a table has the same layout, computed once from the `store` list: each stored
//! type gets a word offset in a flat `u32` arena. Counters are 1 word, byte counters 2 words
//! (u64, little end first), rates 3 words (a [`crate::freq`] counter: tick, current, previous).

use ringlb_config::model::StoreItem;

/// The data types HAProxy 2.6 can store, in HAProxy's own order: `show table` prints them in
/// this order whatever the order of the `store` list (recorded in tests/fixtures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    ServerId,
    Gpt0,
    Gpc0,
    Gpc0Rate,
    ConnCnt,
    ConnRate,
    ConnCur,
    SessCnt,
    SessRate,
    HttpReqCnt,
    HttpReqRate,
    HttpErrCnt,
    HttpErrRate,
    BytesInCnt,
    BytesInRate,
    BytesOutCnt,
    BytesOutRate,
    Gpc1,
    Gpc1Rate,
    HttpFailCnt,
    HttpFailRate,
}

/// Number of [`DataType`]s; sizes the per-table offset arrays.
pub const N_TYPES: usize = 21;

/// How a data type is stored and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Signed 32-bit value (`server_id`), printed `%d`.
    Sint,
    /// Unsigned 32-bit counter, printed `%u`.
    Uint,
    /// Unsigned 64-bit counter (byte counts), printed `%llu`.
    Ull,
    /// Frequency counter over a period, printed `name(period_ms)=rate`.
    Rate,
}

impl DataType {
    /// All types in HAProxy's order.
    pub const ALL: [DataType; N_TYPES] = [
        DataType::ServerId,
        DataType::Gpt0,
        DataType::Gpc0,
        DataType::Gpc0Rate,
        DataType::ConnCnt,
        DataType::ConnRate,
        DataType::ConnCur,
        DataType::SessCnt,
        DataType::SessRate,
        DataType::HttpReqCnt,
        DataType::HttpReqRate,
        DataType::HttpErrCnt,
        DataType::HttpErrRate,
        DataType::BytesInCnt,
        DataType::BytesInRate,
        DataType::BytesOutCnt,
        DataType::BytesOutRate,
        DataType::Gpc1,
        DataType::Gpc1Rate,
        DataType::HttpFailCnt,
        DataType::HttpFailRate,
    ];

    /// HAProxy's name (`http_req_rate`), as in `store`, `show table` and `data.<name>` filters.
    pub fn name(self) -> &'static str {
        match self {
            DataType::ServerId => "server_id",
            DataType::Gpt0 => "gpt0",
            DataType::Gpc0 => "gpc0",
            DataType::Gpc0Rate => "gpc0_rate",
            DataType::ConnCnt => "conn_cnt",
            DataType::ConnRate => "conn_rate",
            DataType::ConnCur => "conn_cur",
            DataType::SessCnt => "sess_cnt",
            DataType::SessRate => "sess_rate",
            DataType::HttpReqCnt => "http_req_cnt",
            DataType::HttpReqRate => "http_req_rate",
            DataType::HttpErrCnt => "http_err_cnt",
            DataType::HttpErrRate => "http_err_rate",
            DataType::BytesInCnt => "bytes_in_cnt",
            DataType::BytesInRate => "bytes_in_rate",
            DataType::BytesOutCnt => "bytes_out_cnt",
            DataType::BytesOutRate => "bytes_out_rate",
            DataType::Gpc1 => "gpc1",
            DataType::Gpc1Rate => "gpc1_rate",
            DataType::HttpFailCnt => "http_fail_cnt",
            DataType::HttpFailRate => "http_fail_rate",
        }
    }

    /// The type named `name` (`http_req_rate`), if HAProxy 2.6 has it and ringlb stores it.
    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn kind(self) -> Kind {
        match self {
            DataType::ServerId => Kind::Sint,
            DataType::BytesInCnt | DataType::BytesOutCnt => Kind::Ull,
            DataType::Gpc0Rate
            | DataType::ConnRate
            | DataType::SessRate
            | DataType::HttpReqRate
            | DataType::HttpErrRate
            | DataType::BytesInRate
            | DataType::BytesOutRate
            | DataType::Gpc1Rate
            | DataType::HttpFailRate => Kind::Rate,
            _ => Kind::Uint,
        }
    }

    /// Words of the data arena this type occupies.
    pub fn words(self) -> usize {
        match self.kind() {
            Kind::Sint | Kind::Uint => 1,
            Kind::Ull => 2,
            Kind::Rate => 3,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where each stored type lives in an entry's data words, and the period of each rate.
/// Computed once per table; every entry shares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    offset: [Option<u16>; N_TYPES],
    period_ms: [u32; N_TYPES],
    stride: usize,
}

impl Layout {
    /// Builds the layout of a `store` list. Errors name the unsupported or malformed item.
    pub fn new(store: &[StoreItem]) -> Result<Layout, String> {
        let mut offset = [None; N_TYPES];
        let mut period_ms = [0u32; N_TYPES];
        let mut wanted = [false; N_TYPES];
        for item in store {
            let dt = DataType::from_name(&item.name).ok_or_else(|| {
                format!(
                    "stick-table: data type '{}' is not supported by ringlb",
                    item.name
                )
            })?;
            if dt.kind() == Kind::Rate {
                let p = item
                    .period
                    .ok_or_else(|| format!("stick-table: '{}' requires a period", item.name))?;
                let ms = u32::try_from(p.as_millis())
                    .ok()
                    .filter(|&ms| ms > 0)
                    .ok_or_else(|| format!("stick-table: invalid period for '{}'", item.name))?;
                period_ms[dt.index()] = ms;
            }
            wanted[dt.index()] = true;
        }
        // Offsets follow HAProxy's type order, so the layout does not depend on the store order.
        let mut stride = 0usize;
        for dt in DataType::ALL {
            if wanted[dt.index()] {
                offset[dt.index()] = Some(stride as u16);
                stride += dt.words();
            }
        }
        Ok(Layout {
            offset,
            period_ms,
            stride,
        })
    }

    /// This layout plus `dt` (a non-rate type): HAProxy adds `server_id` to every table used
    /// by `stick on`/`stick match`/`stick store-*` rules, declared or not.
    pub fn with_type(&self, dt: DataType) -> Layout {
        if self.stores(dt) || dt.kind() == Kind::Rate {
            return self.clone();
        }
        let mut l = self.clone();
        l.offset[dt.index()] = Some(0);
        let mut stride = 0usize;
        for d in DataType::ALL {
            if l.offset[d.index()].is_some() {
                l.offset[d.index()] = Some(stride as u16);
                stride += d.words();
            }
        }
        l.stride = stride;
        l
    }

    /// Data words per entry.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Word offset of `dt` if the table stores it.
    pub fn offset(&self, dt: DataType) -> Option<usize> {
        self.offset[dt.index()].map(usize::from)
    }

    /// Period of a rate type in ms (0 for non-rates or types not stored).
    pub fn period_ms(&self, dt: DataType) -> u32 {
        self.period_ms[dt.index()]
    }

    pub fn stores(&self, dt: DataType) -> bool {
        self.offset[dt.index()].is_some()
    }

    /// Stored types in HAProxy's order.
    pub fn stored(&self) -> impl Iterator<Item = DataType> + '_ {
        DataType::ALL.into_iter().filter(|d| self.stores(*d))
    }

    /// Index of `dt` among the stored types (its slot in a per-entry pending-delta array).
    pub fn rank(&self, dt: DataType) -> Option<usize> {
        self.offset(dt)?;
        Some(self.stored().take_while(|d| *d != dt).count())
    }

    pub fn n_stored(&self) -> usize {
        self.stored().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn item(name: &str, p: Option<u64>) -> StoreItem {
        StoreItem {
            name: name.into(),
            period: p.map(Duration::from_secs),
        }
    }

    #[test]
    fn names_round_trip_and_count() {
        assert_eq!(DataType::ALL.len(), N_TYPES);
        for (i, d) in DataType::ALL.into_iter().enumerate() {
            assert_eq!(d as usize, i);
            assert_eq!(DataType::from_name(d.name()), Some(d));
        }
        assert_eq!(DataType::from_name("server_key"), None);
    }

    #[test]
    fn layout_is_in_haproxy_order_whatever_the_store_order() {
        let l = Layout::new(&[
            item("bytes_out_rate", Some(60)),
            item("conn_cur", None),
            item("http_req_rate", Some(10)),
        ])
        .unwrap();
        assert_eq!(l.offset(DataType::ConnCur), Some(0));
        assert_eq!(l.offset(DataType::HttpReqRate), Some(1));
        assert_eq!(l.offset(DataType::BytesOutRate), Some(4));
        assert_eq!(l.stride(), 7);
        assert_eq!(l.period_ms(DataType::BytesOutRate), 60_000);
        assert_eq!(l.rank(DataType::BytesOutRate), Some(2));
        assert_eq!(l.offset(DataType::Gpc0), None);
    }

    #[test]
    fn server_id_can_be_added_for_stick_rules() {
        let l = Layout::new(&[item("http_req_rate", Some(10))]).unwrap();
        let l2 = l.with_type(DataType::ServerId);
        assert_eq!(l2.offset(DataType::ServerId), Some(0));
        assert_eq!(l2.offset(DataType::HttpReqRate), Some(1));
        assert_eq!(l2.period_ms(DataType::HttpReqRate), 10_000);
        assert_eq!(l2.stride(), 4);
        assert_eq!(l2.with_type(DataType::ServerId), l2);
    }

    #[test]
    fn unsupported_and_periodless_types_are_errors() {
        assert!(Layout::new(&[item("server_key", None)]).is_err());
        assert!(Layout::new(&[item("http_req_rate", None)]).is_err());
    }
}
