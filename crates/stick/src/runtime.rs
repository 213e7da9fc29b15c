//! The runtime-socket face of a table: typed `show table` queries with HAProxy 2.6's text
//! output, `clear table` and `set table`.
//!
//! Output is byte-compatible with haproxy 2.6 (tests/show_table.rs compares against recordings
//! made with tests/fixtures/record_show_table.sh), except the entry address, which is a stable
//! pseudo-address here. The empty line that ends every CLI answer is the runtime socket's.
//!
//! Across shards each shard answers for the keys it owns ([`Table::query`] with
//! `owned_only`); the control shard concatenates the rows and calls [`format_show`], which
//! sorts them by key as HAProxy's tree walk does. Key commands go to `owner_of(key)`.

use std::fmt::Write as _;

use crate::data::{DataType, Kind};
use crate::key::KeyType;
use crate::shard::DeltaOp;
use crate::table::{Table, TableConfig};

/// Comparison of a `data.<type> <op> <value>` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `data.<type> <op> <value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    pub data: DataType,
    pub op: FilterOp,
    pub value: i64,
}

impl Filter {
    fn matches(&self, v: i64) -> bool {
        match self.op {
            FilterOp::Eq => v == self.value,
            FilterOp::Ne => v != self.value,
            FilterOp::Lt => v < self.value,
            FilterOp::Le => v <= self.value,
            FilterOp::Gt => v > self.value,
            FilterOp::Ge => v >= self.value,
        }
    }
}

/// What `show table` / `clear table` select: everything, one key, or filters (all must match).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub key: Option<Box<[u8]>>,
    pub filters: Vec<Filter>,
}

impl Query {
    /// Parses the words after the table name: `[key <k>] | [data.<type> <op> <value>]*`.
    /// Errors carry HAProxy 2.6's message (recorded in tests/fixtures/cli_errors.txt); an
    /// empty message means HAProxy answers nothing (a key that does not parse).
    pub fn parse(cfg: &TableConfig, args: &[&str]) -> Result<Query, String> {
        let mut q = Query::default();
        match args.first().copied() {
            None => {}
            Some("key") => {
                let k = args.get(1).ok_or("Key value expected\n")?;
                let mut buf = Vec::new();
                cfg.key.parse_cli(k, &mut buf).map_err(|_| String::new())?;
                q.key = Some(buf.into_boxed_slice());
            }
            Some(w) if w.starts_with("data.") => {
                for (n, f) in args.chunks(3).enumerate() {
                    q.filters.push(
                        parse_filter(cfg, f)
                            .map_err(|e| format!("Filter entry #{}: {e}", n + 1))?,
                    );
                }
            }
            Some(_) => return Err(ARG_ERR.into()),
        }
        Ok(q)
    }
}

const ARG_ERR: &str =
    "Optional argument only supports \"data.<store_data_type>\" <operator> <value> and key <key>\n";

fn parse_filter(cfg: &TableConfig, f: &[&str]) -> Result<Filter, String> {
    let name = f
        .first()
        .and_then(|w| w.strip_prefix("data."))
        .ok_or(ARG_ERR)?;
    let data = parse_stored(cfg, name)?;
    let op = match f.get(1).copied() {
        Some("eq") => FilterOp::Eq,
        Some("ne") => FilterOp::Ne,
        Some("lt") => FilterOp::Lt,
        Some("le") => FilterOp::Le,
        Some("gt") => FilterOp::Gt,
        Some("ge") => FilterOp::Ge,
        // HAProxy 2.6's wording, typo included.
        _ => {
            return Err(
                "Require and operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"\n"
                    .into(),
            )
        }
    };
    let value = f
        .get(2)
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or("Require a valid integer value to compare against\n")?;
    Ok(Filter { data, op, value })
}

fn parse_stored(cfg: &TableConfig, name: &str) -> Result<DataType, String> {
    let dt = DataType::from_name(name).ok_or("Unknown data type\n")?;
    if !cfg.layout.stores(dt) {
        return Err("Data type not stored in this table\n".into());
    }
    Ok(dt)
}

/// One entry as `show table` prints it: plain data, sendable between shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    /// Stands in for HAProxy's entry address.
    pub id: u64,
    pub key: Box<[u8]>,
    /// `use=`: streams holding the entry.
    pub use_count: u32,
    /// `exp=`: ms until expiry (0 without `expire`).
    pub exp_ms: u64,
    /// Stored types in HAProxy's order with their values at the time of the query.
    pub values: Vec<(DataType, i64)>,
}

impl Table {
    fn view(&self, slot: u32, now_ms: u64) -> EntryView {
        let s = &self.slots[slot as usize];
        EntryView {
            id: 0x5600_0000_0000 + (u64::from(self.shard.id) << 36) + u64::from(slot) * 0x40,
            key: self.key_of(slot).into(),
            use_count: s.refs,
            exp_ms: if s.expire_ms == 0 {
                0
            } else {
                s.expire_ms.saturating_sub(now_ms)
            },
            values: self
                .cfg
                .layout
                .stored()
                .map(|dt| (dt, self.value(slot, dt, now_ms).unwrap_or(0)))
                .collect(),
        }
    }

    fn selected(&self, slot: u32, q: &Query, now_ms: u64) -> bool {
        q.filters.iter().all(|f| {
            self.value(slot, f.data, now_ms)
                .is_some_and(|v| f.matches(v))
        })
    }

    fn live_at(&self, slot: u32, now_ms: u64) -> bool {
        let s = &self.slots[slot as usize];
        s.live && (self.in_use(slot) || s.expire_ms == 0 || s.expire_ms > now_ms)
    }

    /// Entries matching `q` in key order; with `owned_only`, only the keys this shard owns
    /// (what a sharded `show table` collects from each shard).
    pub fn query(&self, q: &Query, now_ms: u64, owned_only: bool) -> Vec<EntryView> {
        let slots: Vec<u32> = match &q.key {
            Some(k) => self.index.get(&**k).copied().into_iter().collect(),
            None => self.sorted_slots(),
        };
        slots
            .into_iter()
            .filter(|&s| self.live_at(s, now_ms))
            .filter(|&s| !owned_only || self.owns(s))
            .filter(|&s| self.selected(s, q, now_ms))
            .map(|s| self.view(s, now_ms))
            .collect()
    }

    /// `show table <name> ...` on a single-shard table.
    pub fn show(&self, q: &Query, now_ms: u64) -> String {
        let rows = self.query(q, now_ms, false);
        if q.key.is_some() && rows.is_empty() {
            return String::new(); // HAProxy answers nothing for an absent key
        }
        let used = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, _)| self.live_at(*i as u32, now_ms))
            .count();
        let mut out = String::new();
        format_show(&self.cfg, used, rows, &mut out);
        out
    }

    /// `clear table <name> [key K | filters]`: removes the matching entries no stream holds.
    /// Returns how many were removed. Their unsent deltas are dropped with them.
    pub fn clear(&mut self, q: &Query, now_ms: u64) -> usize {
        let slots: Vec<u32> = match &q.key {
            Some(k) => self.index.get(&**k).copied().into_iter().collect(),
            None => self.sorted_slots(),
        };
        let mut n = 0;
        for s in slots {
            if self.slots[s as usize].live && !self.in_use(s) && self.selected(s, q, now_ms) {
                if let Some(side) = self.cross.side.get_mut(&s) {
                    side.pending.clear();
                }
                self.remove(s);
                n += 1;
            }
        }
        n
    }

    /// `set table <name> key <k> [data.<type> <value>]*` on a single-shard table: creates or
    /// touches the entry and sets the values (a rate reads `value` for its current period,
    /// then fades; integers wrap to their width as in HAProxy). Errors as [`SetEntry::parse`]'s,
    /// reported after the values before the faulty word were stored, as HAProxy does.
    pub fn set_entry(&mut self, args: &[&str], now_ms: u64) -> Result<(), String> {
        let Some((entry, err)) = SetEntry::parse(&self.cfg, args)? else {
            return Ok(());
        };
        self.apply_set(&entry, now_ms)?;
        err.map_or(Ok(()), Err)
    }

    /// Applies a parsed `set table` on this shard. The owner of the key records the values
    /// (and sends them to every shard caching it with its next flush); any other shard writes
    /// them into its cached copy at once, without a delta, so that once every shard applied the
    /// command the new values hold everywhere. Fails only when the table is full (`nopurge`).
    pub fn apply_set(&mut self, e: &SetEntry, now_ms: u64) -> Result<(), String> {
        let slot = self
            .find_or_create(&e.key, now_ms)
            .map_err(|_| "Unable to allocate a new entry\n".to_string())?;
        let owned = self.owns(slot);
        for &(dt, v) in &e.sets {
            if owned {
                self.mutate(slot, DeltaOp::Set(dt, v), now_ms);
            } else {
                self.apply(slot, DeltaOp::Set(dt, v), now_ms);
            }
        }
        Ok(())
    }

    /// One `show table`, `clear table` or `set table` command on a single-shard table, `args`
    /// being the words after the table name. Returns HAProxy's answer, without the empty line
    /// the CLI adds after every answer.
    pub fn cli(&mut self, verb: CliVerb, args: &[&str], now_ms: u64) -> String {
        let r = match verb {
            CliVerb::Show => Query::parse(&self.cfg, args).map(|q| self.show(&q, now_ms)),
            CliVerb::Clear => Query::parse(&self.cfg, args).map(|q| {
                self.clear(&q, now_ms);
                String::new()
            }),
            CliVerb::Set => self.set_entry(args, now_ms).map(|()| String::new()),
        };
        r.unwrap_or_else(|e| e)
    }
}

/// A parsed `set table <name> key <k> [data.<type> <value>]*`: plain data, so the control
/// shard can parse once and send it to every shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetEntry {
    /// Key bytes in the table's key type.
    pub key: Box<[u8]>,
    /// Values to store, in the order given.
    pub sets: Vec<(DataType, i64)>,
}

impl SetEntry {
    /// Parses the words after the table name with HAProxy 2.6's checks and texts. `Ok(None)`:
    /// nothing to do and nothing to print (no words, or a key that does not convert). A
    /// faulty `data.` pair comes back beside the entry: HAProxy creates the entry and stores
    /// the values before the faulty pair, then prints the error.
    pub fn parse(
        cfg: &TableConfig,
        args: &[&str],
    ) -> Result<Option<(SetEntry, Option<String>)>, String> {
        match args.first().copied() {
            None => return Ok(None),
            Some("key") => {}
            Some(w) if w.starts_with("data.") => return Err(
                "content-based lookup is only supported with the \"show\" and \"clear\" actions\n"
                    .into(),
            ),
            Some(_) => {
                return Err(
                    "Required arguments: <table> key <key> [data.<store_data_type> <value>]*\n"
                        .into(),
                )
            }
        }
        let k = args.get(1).ok_or("Key value expected\n")?;
        let mut key = Vec::new();
        if cfg.key.parse_cli(k, &mut key).is_err() {
            return Ok(None);
        }
        let mut sets = Vec::new();
        let mut err = None;
        for pair in args.get(2..).unwrap_or_default().chunks(2) {
            match parse_set_pair(cfg, pair) {
                Ok(s) => sets.push(s),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let entry = SetEntry {
            key: key.into_boxed_slice(),
            sets,
        };
        Ok(Some((entry, err)))
    }
}

fn parse_set_pair(cfg: &TableConfig, pair: &[&str]) -> Result<(DataType, i64), String> {
    let name = pair
        .first()
        .and_then(|w| w.strip_prefix("data."))
        .ok_or("\"data.<type>\" followed by a value expected\n")?;
    let dt = parse_stored(cfg, name)?;
    let v = pair
        .get(1)
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or("Require a valid integer value to store\n")?;
    Ok((dt, v))
}

/// The stick-table runtime commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliVerb {
    Show,
    Clear,
    Set,
}

/// HAProxy's answer to a command naming a table that does not exist.
pub const NO_SUCH_TABLE: &str = "No such table\n";

/// Writes HAProxy 2.6's `show table` text: the header line, then one line per entry sorted by
/// key. `used` is the table's entry count (over all shards).
pub fn format_show(cfg: &TableConfig, used: usize, mut rows: Vec<EntryView>, out: &mut String) {
    let _ = writeln!(
        out,
        "# table: {}, type: {}, size:{}, used:{}",
        cfg.name,
        cfg.key.name(),
        cfg.size,
        used
    );
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    for r in &rows {
        format_row(cfg.key, cfg, r, out);
    }
}

fn format_row(kt: KeyType, cfg: &TableConfig, r: &EntryView, out: &mut String) {
    let _ = write!(out, "{:#x}: key=", r.id);
    kt.display(&r.key, out);
    let _ = write!(out, " use={} exp={}", r.use_count, r.exp_ms);
    for (dt, v) in &r.values {
        if dt.kind() == Kind::Rate {
            let _ = write!(out, " {}({})={}", dt.name(), cfg.layout.period_ms(*dt), v);
        } else {
            let _ = write!(out, " {}={}", dt.name(), v);
        }
    }
    out.push('\n');
}
