//! HTTP/1.x message framing on top of httparse: strict head parsing, body framing, chunked
//! decoding, header rewriting. Pure logic: fed bytes, returns decisions.
#![forbid(unsafe_code)]
