//! One error type for every framing problem: what is wrong, whose fault it is, which status to
//! answer and whether the connection must close.

use core::fmt;

/// Which peer sent the bad bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client (request head, request body): answer with a 4xx.
    Client,
    /// The server (response head, response body): answer the client with 502.
    Server,
}

/// What is wrong with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The start line is not `METHOD SP target SP HTTP/1.x` (or `HTTP/1.x SP code SP reason`).
    BadStartLine,
    /// The method is not a token.
    BadMethod,
    /// The request target holds a byte HAProxy refuses (CTL, SP, DEL, non-ASCII, `#`) or one
    /// ringlb refuses in addition (`\`), or its form does not fit the method (`*` outside OPTIONS,
    /// authority-form outside CONNECT).
    BadTarget,
    /// The version is not HTTP/1.0 or HTTP/1.1.
    BadVersion,
    /// The status code is not three digits in 100..=599.
    BadStatus,
    /// A line ends with a bare LF, or a CR is not followed by LF.
    BareLineEnding,
    /// A header line starts with SP/HTAB (obs-fold, RFC 9112 §5.2).
    ObsFold,
    /// A field name holds a non-token byte, is empty, or whitespace precedes the colon.
    BadHeaderName,
    /// A field value holds NUL, CR, LF or another control byte.
    BadHeaderValue,
    /// More header fields than `tune.http.maxhdr` allows.
    TooManyHeaders,
    /// The head is larger than `tune.bufsize - tune.maxrewrite`.
    HeadTooLarge,
    /// Content-Length is not a non-empty run of digits, or overflows u64.
    BadContentLength,
    /// Several Content-Length values that differ.
    ConflictingContentLength,
    /// Transfer-Encoding whose last coding is not `chunked`, `chunked` twice, a coding after
    /// `chunked`, or an empty/parameterised element.
    BadTransferEncoding,
    /// Transfer-Encoding with a coding other than `chunked` before it (`gzip, chunked`):
    /// HAProxy 2.6 answers 422.
    UnsupportedTransferCoding,
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1 says the framing is faulty).
    TransferEncodingInHttp10,
    /// More than one Host header.
    DuplicateHost,
    /// A Host value that is not `host[:port]`.
    BadHost,
    /// Absolute-form target whose authority differs from the Host header.
    HostMismatch,
    /// WebSocket upgrade request without `Sec-WebSocket-Key` (HAProxy 2.6 answers 400).
    WebSocketWithoutKey,
    /// A chunk-size line that is empty, not hex, or has a bad extension.
    BadChunkSize,
    /// A chunk size above u64.
    ChunkSizeOverflow,
    /// The CRLF after chunk data is missing.
    BadChunkTerminator,
    /// A trailer field that is not a valid header line, or too many/too large trailers.
    BadTrailer,
}

/// A framing error. Every one of them closes the connection: once framing is in doubt no later
/// byte on that connection can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Who sent it.
    pub side: Side,
}

impl HttpError {
    pub(crate) const fn client(kind: ErrorKind) -> HttpError {
        HttpError {
            kind,
            side: Side::Client,
        }
    }

    pub(crate) const fn server(kind: ErrorKind) -> HttpError {
        HttpError {
            kind,
            side: Side::Server,
        }
    }

    pub(crate) const fn on(side: Side, kind: ErrorKind) -> HttpError {
        HttpError { kind, side }
    }

    /// The status ringlb answers the client with, as HAProxy 2.6 does: 400 for every bad
    /// request (oversized heads and too many headers included: 2.6 never sends 431 or 414),
    /// 422 for `Transfer-Encoding: <coding>, chunked`, 502 for any bad response.
    pub fn status(&self) -> u16 {
        match (self.side, self.kind) {
            (Side::Server, _) => 502,
            (Side::Client, ErrorKind::UnsupportedTransferCoding) => 422,
            (Side::Client, _) => 400,
        }
    }

    /// The bytes haproxy 2.6 sends for this error when no `errorfile` replaces them: the raw
    /// page for request errors (found by its HTTP/1 parser: 400, 422; observed byte-exact), the
    /// lower-case page for a bad response (502, made by the stream).
    pub fn default_reply(&self) -> &'static [u8] {
        let reply = match self.side {
            Side::Client => crate::replies::default_reply(self.status()),
            Side::Server => crate::replies::default_reply_lowercase(self.status()),
        };
        reply.unwrap_or(b"")
    }

    /// Always true: a framing error leaves the byte stream unsynchronised.
    pub fn must_close(&self) -> bool {
        true
    }

    /// A short lower-case description for logs.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            ErrorKind::BadStartLine => "malformed start line",
            ErrorKind::BadMethod => "invalid method",
            ErrorKind::BadTarget => "invalid request target",
            ErrorKind::BadVersion => "unsupported HTTP version",
            ErrorKind::BadStatus => "invalid status code",
            ErrorKind::BareLineEnding => "bare LF or CR line ending",
            ErrorKind::ObsFold => "obsolete line folding",
            ErrorKind::BadHeaderName => "invalid header name",
            ErrorKind::BadHeaderValue => "invalid character in header value",
            ErrorKind::TooManyHeaders => "too many headers",
            ErrorKind::HeadTooLarge => "head too large",
            ErrorKind::BadContentLength => "invalid content-length",
            ErrorKind::ConflictingContentLength => "conflicting content-length values",
            ErrorKind::BadTransferEncoding => "invalid transfer-encoding",
            ErrorKind::UnsupportedTransferCoding => "unsupported transfer coding",
            ErrorKind::TransferEncodingInHttp10 => "transfer-encoding in HTTP/1.0",
            ErrorKind::DuplicateHost => "several host headers",
            ErrorKind::BadHost => "invalid host",
            ErrorKind::HostMismatch => "host differs from absolute-form authority",
            ErrorKind::WebSocketWithoutKey => "websocket upgrade without sec-websocket-key",
            ErrorKind::BadChunkSize => "invalid chunk size line",
            ErrorKind::ChunkSizeOverflow => "chunk size overflow",
            ErrorKind::BadChunkTerminator => "missing CRLF after chunk data",
            ErrorKind::BadTrailer => "invalid trailer",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.side {
            Side::Client => "request",
            Side::Server => "response",
        };
        write!(f, "{who}: {} ({})", self.describe(), self.status())
    }
}

impl std::error::Error for HttpError {}
