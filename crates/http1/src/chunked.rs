//! Incremental validation of a chunked body (RFC 9112 §7.1), so the engine can forward the
//! chunked bytes verbatim without re-encoding them.
//!
//! ```text
//!            hex digit                     SP/HTAB            any ext byte
//!            ┌──┐                          ┌──┐               ┌──┐
//!   start ─► Size ──SP/HTAB──► SizeWs ─────┘  ──';'──► Ext ───┘
//!             │  ──';'──────────────────────────────►  │
//!             │  CR (≥1 digit)      CR                 │ CR
//!             └──────────► SizeLf ◄────────────────────┘
//!                           │ LF
//!          size > 0 ┌───────┴──────┐ size == 0
//!                   ▼              ▼
//!                 Data ──► DataCr ──► DataLf ──► Size     TrailerStart ◄──────────┐
//!                                                           │ token   │ CR        │
//!                                                           ▼         ▼           │
//!                                          TrailerName ─':'─► TrailerValue ─CR─► TrailerLf
//!                                                                     EndLf ──LF──► Done
//! ```
//! Any byte not on an arrow is an error: bare LF anywhere, `0x` prefixes, empty sizes, NUL or
//! controls in extensions or trailers, obs-fold in trailers.

use crate::chars;
use crate::error::{ErrorKind, HttpError, Side};
use crate::types::Limits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    SizeWs,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
    Failed(ErrorKind),
}

/// Result of one [`ChunkedDecoder::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    /// Input bytes that belong to the chunked message (forward exactly these).
    pub consumed: usize,
    /// The message ended (last chunk and trailer section seen); bytes after `consumed` belong to
    /// the next message.
    pub done: bool,
}

/// Chunked body state machine; feed it arbitrary slices, byte by byte if need be.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    side: Side,
    size: u64,
    digits: u32,
    line_len: usize,
    trailer_bytes: usize,
    trailers: usize,
    payload: u64,
    /// Trailer names and OWS-trimmed values seen so far (HTX's count, see `htx_size`).
    trailer_fields: u64,
    /// The current trailer value has a non-OWS byte.
    value_started: bool,
    /// OWS bytes inside the current trailer value not counted yet (trailing until a byte
    /// follows them).
    pending_ws: u64,
    limits: Limits,
}

impl ChunkedDecoder {
    /// A decoder for a body sent by `side` (its errors are 400s for the client side, 502s for the
    /// server side). `limits.max_head_bytes` bounds a chunk-size line and the trailer section,
    /// `limits.max_fields()` the number of trailer fields.
    pub fn new(side: Side, limits: &Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            side,
            size: 0,
            digits: 0,
            line_len: 0,
            trailer_bytes: 0,
            trailers: 0,
            payload: 0,
            trailer_fields: 0,
            value_started: false,
            pending_ws: 0,
            limits: *limits,
        }
    }

    /// Start over for a new message, keeping side and limits.
    pub fn reset(&mut self) {
        *self = ChunkedDecoder::new(self.side, &self.limits);
    }

    /// The final CRLF has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes (chunk data, framing excluded) seen so far.
    pub fn payload_bytes(&self) -> u64 {
        self.payload
    }

    /// The body's size as HAProxy 2.6 counts it (`crate::htx`): payload, trailer fields
    /// and, once the message ended, the end-of-trailers block.
    pub fn htx_size(&self) -> u64 {
        let end = if self.state == State::Done {
            crate::htx::END_OF_TRAILERS
        } else {
            0
        };
        self.payload + self.trailer_fields + end
    }

    /// Validate `input`; report how many of its bytes belong to the message.
    pub fn feed(&mut self, input: &[u8]) -> Result<Feed, HttpError> {
        self.feed_with(input, |_| {})
    }

    /// Like [`ChunkedDecoder::feed`], and hand every piece of chunk data to `on_data` (for a
    /// consumer that needs the decoded payload).
    pub fn feed_with(
        &mut self,
        input: &[u8],
        on_data: impl FnMut(&[u8]),
    ) -> Result<Feed, HttpError> {
        self.feed_parts(input, on_data, |_| {})
    }

    /// Like [`ChunkedDecoder::feed_with`], and hand every byte of the trailer section (the
    /// fields after the last chunk and the final CRLF) to `on_trailer`, for a consumer that
    /// carries trailers into another protocol (HTTP/2).
    pub fn feed_parts(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
        mut on_trailer: impl FnMut(u8),
    ) -> Result<Feed, HttpError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Done => break,
                State::Failed(kind) => return Err(HttpError::on(self.side, kind)),
                State::Data => {
                    let rest = input.get(pos..).unwrap_or(&[]);
                    let take = usize::try_from(self.size).map_or(rest.len(), |s| s.min(rest.len()));
                    on_data(rest.get(..take).unwrap_or(&[]));
                    self.size -= take as u64;
                    self.payload = self.payload.saturating_add(take as u64);
                    pos += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    let b = input.get(pos).copied().unwrap_or(0);
                    pos += 1;
                    if matches!(
                        self.state,
                        State::TrailerStart
                            | State::TrailerName
                            | State::TrailerValue
                            | State::TrailerLf
                            | State::EndLf
                    ) {
                        on_trailer(b);
                    }
                    if let Err(kind) = self.step(b) {
                        self.state = State::Failed(kind);
                        return Err(HttpError::on(self.side, kind));
                    }
                }
            }
        }
        if let State::Failed(kind) = self.state {
            return Err(HttpError::on(self.side, kind));
        }
        Ok(Feed {
            consumed: pos,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, b: u8) -> Result<(), ErrorKind> {
        self.state = match self.state {
            State::Size | State::SizeWs | State::Ext | State::SizeLf => self.size_line(b)?,
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size,
            State::DataCr | State::DataLf => return Err(ErrorKind::BadChunkTerminator),
            _ => self.trailer(b)?,
        };
        Ok(())
    }

    fn size_line(&mut self, b: u8) -> Result<State, ErrorKind> {
        self.line_len += 1;
        if self.line_len > self.limits.max_head_bytes {
            return Err(ErrorKind::BadChunkSize);
        }
        let next = match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                if self.size > u64::MAX >> 4 {
                    return Err(ErrorKind::ChunkSizeOverflow);
                }
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => b - b'A' + 10,
                };
                self.size = (self.size << 4) | u64::from(digit);
                self.digits += 1;
                State::Size
            }
            (State::Size, _) if self.digits == 0 => return Err(ErrorKind::BadChunkSize),
            (State::Size | State::SizeWs, b' ' | b'\t') => State::SizeWs,
            (State::Size | State::SizeWs, b';') => State::Ext,
            (State::Size | State::SizeWs | State::Ext, b'\r') => State::SizeLf,
            (State::Ext, _) if b != b'\n' && chars::is_field_value(b) => State::Ext,
            (State::SizeLf, b'\n') => {
                self.line_len = 0;
                self.digits = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            _ => return Err(ErrorKind::BadChunkSize),
        };
        Ok(next)
    }

    fn trailer(&mut self, b: u8) -> Result<State, ErrorKind> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.limits.max_head_bytes {
            return Err(ErrorKind::BadTrailer);
        }
        let next = match (self.state, b) {
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart, _) if chars::is_token(b) => {
                self.trailer_fields += 1;
                self.value_started = false;
                self.pending_ws = 0;
                self.trailers += 1;
                if self.trailers > self.limits.max_fields() {
                    return Err(ErrorKind::BadTrailer);
                }
                State::TrailerName
            }
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerName, _) if chars::is_token(b) => {
                self.trailer_fields += 1;
                State::TrailerName
            }
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b' ' | b'\t') => {
                if self.value_started {
                    self.pending_ws += 1;
                }
                State::TrailerValue
            }
            (State::TrailerValue, _) if chars::is_field_value(b) => {
                self.value_started = true;
                self.trailer_fields += self.pending_ws + 1;
                self.pending_ws = 0;
                State::TrailerValue
            }
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            _ => return Err(ErrorKind::BadTrailer),
        };
        Ok(next)
    }
}

/// The `(name, value)` fields of a trailer section as [`ChunkedDecoder::feed_parts`] hands it
/// over (already validated: token names, field values; values OWS-trimmed).
pub fn trailer_fields(section: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    section.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let name = line.get(..colon)?;
        let value = line.get(colon + 1..)?;
        let start = value.iter().position(|&b| b != b' ' && b != b'\t');
        let end = value.iter().rposition(|&b| b != b' ' && b != b'\t');
        let value = match (start, end) {
            (Some(s), Some(e)) => value.get(s..=e)?,
            _ => &[],
        };
        Some((name, value))
    })
}
