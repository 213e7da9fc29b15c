//! HTTP/1.x message framing on top of httparse: strict head parsing, body framing, chunked
//! decoding, header rewriting. Pure logic: fed bytes, returns decisions.
//!
//! What this crate owns: deciding whether bytes form a valid HTTP/1.0 or 1.1 message, where it
//! ends, which status to answer when it is not valid, and how its head is rewritten for the next
//! hop. What it must not do: sockets, async, time, allocation per request (parsing fills
//! caller-owned reusable structs and returns [`Span`]s into the caller's buffer).
//!
//! See `README.md` next to this crate for every strictness decision and where it differs from
//! HAProxy 2.6.
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

mod body;
mod chars;
mod chunked;
mod error;
mod fields;
mod replies;
mod request;
mod response;
mod rewrite;
mod scan;
mod types;

pub use body::BodyCounter;
pub use chunked::{ChunkedDecoder, Feed};
pub use error::{ErrorKind, HttpError, Side};
pub use replies::{
    default_reply, default_reply_lowercase, ErrorReplies, UnknownErrorCode, ERROR_CODES,
};
pub use request::{parse_request, RequestHead, TargetForm};
pub use response::{parse_response, ResponseHead};
pub use rewrite::{
    client_keeps_alive, write_request_head, write_response_head, ConnMode, ForwardedFor,
    RequestEdits, ResponseEdits,
};
pub use types::{BodyFraming, ConnectionTokens, Header, Limits, Method, Parsed, Span, Version};
