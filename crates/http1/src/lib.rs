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
//!
//! How the engine drives it, for one request on a client connection:
//!
//! ```
//! use ringlb_http1::*;
//!
//! let limits = Limits::default(); // from tune.http.maxhdr, tune.bufsize - tune.maxrewrite
//! let mut req = RequestHead::with_limits(&limits); // one per connection, reused
//! let mut to_server = Vec::with_capacity(4096); // reused too
//! let buf = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
//!
//! // 1. Read until the head is complete; an error is answered with e.status() and a close.
//! let head_len = match parse_request(buf, &limits, &mut req) {
//!     Ok(Parsed::Complete { head_len }) => head_len,
//!     Ok(Parsed::Partial) => return, // read more (408 on timeout http-request)
//!     Err(e) => {
//!         let _reply = ErrorReplies::new().get(e.status()); // send, then close
//!         return;
//!     }
//! };
//! // 2. Write the head for the server.
//! let edits = RequestEdits { close_server: ConnMode::KeepAlive.closes_server_side(), forwarded_for: None, original_to: None };
//! write_request_head(&req, buf, &mut to_server, &edits);
//! // 3. Forward the body verbatim, as much as belongs to this message.
//! let body = &buf[head_len..];
//! match req.framing() {
//!     BodyFraming::Chunked => {
//!         let mut dec = ChunkedDecoder::new(Side::Client, &limits);
//!         let feed = dec.feed(body).expect("valid chunked body");
//!         assert!(feed.done);
//!         to_server.extend_from_slice(&body[..feed.consumed]);
//!     }
//!     BodyFraming::ContentLength(n) => {
//!         let mut counter = BodyCounter::new(n);
//!         let take = counter.feed(body.len());
//!         to_server.extend_from_slice(&body[..take]);
//!     }
//!     BodyFraming::None | BodyFraming::UntilClose => {}
//! }
//! assert!(to_server.starts_with(b"POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\n"));
//! // 4. Then parse_response(.., req.method(), ..), write_response_head with
//! //    close_client = !client_keeps_alive(&req, &resp, mode), and the same body logic.
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

mod body;
mod chars;
mod chunked;
mod error;
mod fields;
pub mod htx;
pub mod offset;
mod replies;
mod request;
mod response;
mod rewrite;
mod scan;
mod types;

pub use body::BodyCounter;
pub use chunked::{trailer_fields, ChunkedDecoder, Feed};
pub use error::{ErrorKind, HttpError, Side};
pub use replies::{
    check_errorfile, default_reply, default_reply_lowercase, reason_phrase, ErrorReplies,
    ErrorfileError, UnknownErrorCode, ERROR_CODES,
};
pub use request::{parse_request, RequestHead, RequestSummary, TargetForm};
pub use response::{parse_response, ResponseHead};
pub use rewrite::{
    client_keeps_alive, is_restricted_header_name, set_last_header, without_unrestricted_names,
    write_request_head, write_response_head, ConnMode, ForwardedFor, RequestEdits, ResponseEdits,
};
pub use types::{BodyFraming, ConnectionTokens, Header, Limits, Method, Parsed, Span, Version};
