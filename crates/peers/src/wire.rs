//! Message framing and the messages of the peers protocol v2.1 as haproxy 2.6 speaks it
//! (peers-v2.0.txt, "Messages", plus what 2.6 added: the heartbeat, timed updates, the
//! expiry and rate periods in table definitions; recorded in `tests/fixtures`).
//!
//! ```text
//! class (1 byte) | type (1 byte) [| encoded length | body]     body only when type >= 128
//! class 0 control:      0 resync request, 1 resync finished, 2 resync partial,
//!                       3 resync confirm, 4 heartbeat
//! class 1 error:        0 protocol error, 1 size limit reached
//! class 10 stick table: 128 update, 129 incremental update, 130 table definition,
//!                       131 table switch, 132 ack, 133 timed update, 134 incremental timed
//! ```

use crate::varint::{self, Reader};

pub const CLASS_CONTROL: u8 = 0;
pub const CLASS_ERROR: u8 = 1;
pub const CLASS_TABLE: u8 = 10;

/// Longest message body accepted (haproxy's default buffer is 16 kB).
pub const MAX_BODY: usize = 64 * 1024;

/// A message with its body still encoded (updates need their table's definition to decode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    ResyncRequest,
    ResyncFinished,
    ResyncPartial,
    ResyncConfirm,
    Heartbeat,
    ProtocolError,
    SizeLimit,
    Define(&'a [u8]),
    Switch(&'a [u8]),
    Ack(&'a [u8]),
    /// An update: `timed` carries an expiry, `incremental` has no update id.
    Update {
        timed: bool,
        incremental: bool,
        body: &'a [u8],
    },
    /// A known class with a type this side does not know (ignored), or an unknown class.
    Unknown {
        class: u8,
        kind: u8,
    },
}

/// Why the byte stream cannot be read further: the session ends with a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    Malformed,
    TooLong,
}

/// Reads one frame at the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// frame and the bytes it took.
pub fn read_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let (Some(&class), Some(&kind)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if kind < 128 {
        let f = match (class, kind) {
            (CLASS_CONTROL, 0) => Frame::ResyncRequest,
            (CLASS_CONTROL, 1) => Frame::ResyncFinished,
            (CLASS_CONTROL, 2) => Frame::ResyncPartial,
            (CLASS_CONTROL, 3) => Frame::ResyncConfirm,
            (CLASS_CONTROL, 4) => Frame::Heartbeat,
            (CLASS_ERROR, 0) => Frame::ProtocolError,
            (CLASS_ERROR, 1) => Frame::SizeLimit,
            _ => Frame::Unknown { class, kind },
        };
        return Ok(Some((f, 2)));
    }
    let rest = buf.get(2..).unwrap_or_default();
    let Some((len, n)) = varint::decode(rest) else {
        return if rest.len() >= varint::MAX_LEN {
            Err(FrameError::Malformed)
        } else {
            Ok(None)
        };
    };
    let len = usize::try_from(len).map_err(|_| FrameError::TooLong)?;
    if len > MAX_BODY {
        return Err(FrameError::TooLong);
    }
    let Some(body) = rest.get(n..n + len) else {
        return Ok(None);
    };
    let f = match (class, kind) {
        (CLASS_TABLE, 128) => Frame::Update {
            timed: false,
            incremental: false,
            body,
        },
        (CLASS_TABLE, 129) => Frame::Update {
            timed: false,
            incremental: true,
            body,
        },
        (CLASS_TABLE, 130) => Frame::Define(body),
        (CLASS_TABLE, 131) => Frame::Switch(body),
        (CLASS_TABLE, 132) => Frame::Ack(body),
        (CLASS_TABLE, 133) => Frame::Update {
            timed: true,
            incremental: false,
            body,
        },
        (CLASS_TABLE, 134) => Frame::Update {
            timed: true,
            incremental: true,
            body,
        },
        _ => Frame::Unknown { class, kind },
    };
    Ok(Some((f, 2 + n + len)))
}

/// Appends a body-less message.
pub fn put_short(class: u8, kind: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&[class, kind]);
}

/// Appends a message with a body.
pub fn put_long(class: u8, kind: u8, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[class, kind]);
    varint::encode(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// Key types on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireKey {
    Sint,
    Ipv4,
    Ipv6,
    /// `key_len` is the longest string plus one (haproxy's NUL).
    String,
    Binary,
}

impl WireKey {
    pub fn code(self) -> u64 {
        match self {
            WireKey::Sint => 2,
            WireKey::Ipv4 => 4,
            WireKey::Ipv6 => 5,
            WireKey::String => 6,
            WireKey::Binary => 7,
        }
    }

    pub fn from_code(c: u64) -> Option<WireKey> {
        Some(match c {
            2 => WireKey::Sint,
            4 => WireKey::Ipv4,
            5 => WireKey::Ipv6,
            6 => WireKey::String,
            7 => WireKey::Binary,
            _ => return None,
        })
    }
}

/// How haproxy 2.6 encodes a data type (its `std_type`), by data type number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireKind {
    /// One encoded integer (`server_id` travels as its unsigned 32-bit pattern).
    Int,
    /// Three encoded integers: ms since the period started, current, previous.
    Freq,
    /// `server_key`: encoded length, then that many bytes (a dictionary entry).
    Dict,
    /// An array of `n` integers (`gpt`, `gpc`), `n` given by the table definition.
    IntArray,
    /// An array of `n` rates (`gpc_rate`).
    FreqArray,
}

/// Data types haproxy 2.6 knows: 0..=24.
pub const N_WIRE_TYPES: u8 = 25;

/// The encoding of data type `t` (`None`: a type haproxy 2.6 does not have).
pub fn wire_kind(t: u8) -> Option<WireKind> {
    Some(match t {
        3 | 5 | 8 | 10 | 12 | 14 | 16 | 18 | 21 => WireKind::Freq,
        19 => WireKind::Dict,
        22 | 23 => WireKind::IntArray,
        24 => WireKind::FreqArray,
        0..=20 => WireKind::Int,
        _ => return None,
    })
}

/// A table definition message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// The sender's id for the table (acks and switches name it).
    pub id: u64,
    pub name: String,
    pub key: WireKey,
    pub key_len: u64,
    /// Bit `t` set: values of data type `t` follow in every update, in type order.
    pub types: u64,
    /// The table's `expire` in ms (0: none).
    pub expire_ms: u64,
    /// Per rate or array type: (type, elements for arrays, period in ms for rates).
    pub params: Vec<(u8, u64, u64)>,
}

impl TableDef {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut b = Vec::with_capacity(32 + self.name.len());
        varint::encode(self.id, &mut b);
        varint::encode(self.name.len() as u64, &mut b);
        b.extend_from_slice(self.name.as_bytes());
        varint::encode(self.key.code(), &mut b);
        varint::encode(self.key_len, &mut b);
        varint::encode(self.types, &mut b);
        varint::encode(self.expire_ms, &mut b);
        for &(t, n, period) in &self.params {
            varint::encode(u64::from(t), &mut b);
            match wire_kind(t) {
                Some(WireKind::IntArray) => varint::encode(n, &mut b),
                Some(WireKind::FreqArray) => {
                    varint::encode(n, &mut b);
                    varint::encode(period, &mut b);
                }
                _ => varint::encode(period, &mut b),
            }
        }
        put_long(CLASS_TABLE, 130, &b, out);
    }

    pub fn decode(body: &[u8]) -> Option<TableDef> {
        let mut r = Reader::new(body);
        let id = r.int()?;
        let n = usize::try_from(r.int()?).ok()?;
        let name = String::from_utf8(r.bytes(n)?.to_vec()).ok()?;
        let key = WireKey::from_code(r.int()?)?;
        let key_len = r.int()?;
        let types = r.int()?;
        // Older senders stop here (no expiry, no periods).
        let expire_ms = if r.is_empty() { 0 } else { r.int()? };
        let mut params = Vec::new();
        while !r.is_empty() {
            let t = u8::try_from(r.int()?).ok()?;
            let p = match wire_kind(t)? {
                WireKind::Freq => (t, 1, r.int()?),
                WireKind::IntArray => (t, r.int()?, 0),
                WireKind::FreqArray => {
                    let n = r.int()?;
                    (t, n, r.int()?)
                }
                _ => return None,
            };
            params.push(p);
        }
        Some(TableDef {
            id,
            name,
            key,
            key_len,
            types,
            expire_ms,
            params,
        })
    }

    /// Elements of array type `t` (1 for any other type).
    fn elements(&self, t: u8) -> u64 {
        self.params
            .iter()
            .find(|p| p.0 == t)
            .map_or(1, |p| p.1)
            .min(64)
    }
}

/// One data value on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireValue {
    Int(u64),
    Freq {
        age_ms: u64,
        curr: u64,
        prev: u64,
    },
    /// Skipped content (`server_key`, arrays): kept only to be skipped.
    Other,
}

/// An update message (any of the four kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// `None`: incremental (the previous id plus one).
    pub id: Option<u32>,
    /// Timed updates: ms left before expiry.
    pub expire_ms: Option<u32>,
    pub key: Vec<u8>,
    /// One value per type set in the definition, in type order.
    pub values: Vec<(u8, WireValue)>,
}

impl Update {
    pub fn decode(def: &TableDef, body: &[u8], timed: bool, incremental: bool) -> Option<Update> {
        let mut r = Reader::new(body);
        let id = if incremental { None } else { Some(r.u32_be()?) };
        let expire_ms = if timed { Some(r.u32_be()?) } else { None };
        let key = match def.key {
            WireKey::String => {
                let n = usize::try_from(r.int()?).ok()?;
                r.bytes(n)?.to_vec()
            }
            WireKey::Sint | WireKey::Ipv4 => r.bytes(4)?.to_vec(),
            WireKey::Ipv6 => r.bytes(16)?.to_vec(),
            WireKey::Binary => r.bytes(usize::try_from(def.key_len).ok()?)?.to_vec(),
        };
        let mut values = Vec::new();
        for t in 0..64u8 {
            if def.types & (1u64 << t) == 0 {
                continue;
            }
            let v = match wire_kind(t)? {
                WireKind::Int => WireValue::Int(r.int()?),
                WireKind::Freq => WireValue::Freq {
                    age_ms: r.int()?,
                    curr: r.int()?,
                    prev: r.int()?,
                },
                WireKind::Dict => {
                    let n = usize::try_from(r.int()?).ok()?;
                    r.bytes(n)?;
                    WireValue::Other
                }
                WireKind::IntArray => {
                    for _ in 0..def.elements(t) {
                        r.int()?;
                    }
                    WireValue::Other
                }
                WireKind::FreqArray => {
                    for _ in 0..def.elements(t) * 3 {
                        r.int()?;
                    }
                    WireValue::Other
                }
            };
            values.push((t, v));
        }
        Some(Update {
            id,
            expire_ms,
            key,
            values,
        })
    }

    /// Encodes for table `def` (values must follow its types; others are skipped).
    pub fn encode(&self, def: &TableDef, out: &mut Vec<u8>) {
        let mut b = Vec::with_capacity(16 + self.key.len() + 4 * self.values.len());
        if let Some(id) = self.id {
            b.extend_from_slice(&id.to_be_bytes());
        }
        if let Some(e) = self.expire_ms {
            b.extend_from_slice(&e.to_be_bytes());
        }
        match def.key {
            WireKey::String => {
                varint::encode(self.key.len() as u64, &mut b);
                b.extend_from_slice(&self.key);
            }
            _ => b.extend_from_slice(&self.key),
        }
        for (t, v) in &self.values {
            if def.types & (1u64 << t) == 0 {
                continue;
            }
            match v {
                WireValue::Int(i) => varint::encode(*i, &mut b),
                WireValue::Freq { age_ms, curr, prev } => {
                    varint::encode(*age_ms, &mut b);
                    varint::encode(*curr, &mut b);
                    varint::encode(*prev, &mut b);
                }
                WireValue::Other => varint::encode(0, &mut b),
            }
        }
        let kind = match (self.id.is_none(), self.expire_ms.is_some()) {
            (false, false) => 128,
            (true, false) => 129,
            (false, true) => 133,
            (true, true) => 134,
        };
        put_long(CLASS_TABLE, kind, &b, out);
    }
}

/// Appends an ack: the receiver's id of the table (as its definition gave it) and the last
/// update id applied.
pub fn put_ack(table_id: u64, update_id: u32, out: &mut Vec<u8>) {
    let mut b = Vec::with_capacity(8);
    varint::encode(table_id, &mut b);
    b.extend_from_slice(&update_id.to_be_bytes());
    put_long(CLASS_TABLE, 132, &b, out);
}

/// Reads an ack body: (table id, update id).
pub fn read_ack(body: &[u8]) -> Option<(u64, u32)> {
    let mut r = Reader::new(body);
    Some((r.int()?, r.u32_be()?))
}
