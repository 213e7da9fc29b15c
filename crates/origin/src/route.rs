//! Request path → endpoint. Pure: no sockets, unit-tested.

use std::time::Duration;

/// Largest `/size/N` and `/chunked/N` body (1 GiB), streamed from a pre-built block.
pub const MAX_GENERATED_BYTES: u64 = 1 << 30;
/// Most extra headers `/headers/N` adds.
pub const MAX_EXTRA_HEADERS: u64 = 10_000;
/// Longest `/slow/MS` or `/slowbody/MS` wait.
pub const MAX_DELAY_MS: u64 = 600_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/` and every path not listed below: hello, or the digest of an uploaded body.
    Default,
    Echo,
    Status(u16),
    Size(u64),
    Chunked(u64),
    Slow(Duration),
    SlowBody(Duration),
    Close,
    NoResponse,
    Garbage,
    Reset,
    Headers(u64),
    Health,
    WebSocket,
    /// `/grpc`: a chunked answer with `grpc-status`/`grpc-message` trailers.
    Grpc,
    /// A known endpoint with an argument out of range or not a number.
    BadArgument,
}

pub fn route(path: &str) -> Route {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let head = parts.next().unwrap_or("");
    let arg = parts.next();
    match (head, arg) {
        ("echo", None) => Route::Echo,
        ("close", None) => Route::Close,
        ("noresponse", None) => Route::NoResponse,
        ("garbage", None) => Route::Garbage,
        ("reset", None) => Route::Reset,
        ("health", None) => Route::Health,
        ("ws", None) => Route::WebSocket,
        ("grpc", None) => Route::Grpc,
        ("status", Some(a)) => match number(a, 599) {
            Some(n) if n >= 200 => Route::Status(n as u16),
            _ => Route::BadArgument,
        },
        ("size", Some(a)) => number(a, MAX_GENERATED_BYTES).map_or(Route::BadArgument, Route::Size),
        ("chunked", Some(a)) => {
            number(a, MAX_GENERATED_BYTES).map_or(Route::BadArgument, Route::Chunked)
        }
        ("slow", Some(a)) => number(a, MAX_DELAY_MS).map_or(Route::BadArgument, |ms| {
            Route::Slow(Duration::from_millis(ms))
        }),
        ("slowbody", Some(a)) => number(a, MAX_DELAY_MS).map_or(Route::BadArgument, |ms| {
            Route::SlowBody(Duration::from_millis(ms))
        }),
        ("headers", Some(a)) => {
            number(a, MAX_EXTRA_HEADERS).map_or(Route::BadArgument, Route::Headers)
        }
        _ => Route::Default,
    }
}

fn number(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n <= max)
}

/// Reason phrase for a status code (HAProxy's table for common ones).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        425 => "Too Early",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/"), Route::Default);
        assert_eq!(route("/anything/else"), Route::Default);
        assert_eq!(route("/echo"), Route::Echo);
        assert_eq!(route("/grpc"), Route::Grpc);
        assert_eq!(route("/status/503"), Route::Status(503));
        assert_eq!(route("/size/0"), Route::Size(0));
        assert_eq!(route("/size/1073741824"), Route::Size(1 << 30));
        assert_eq!(route("/chunked/10"), Route::Chunked(10));
        assert_eq!(route("/slow/25"), Route::Slow(Duration::from_millis(25)));
        assert_eq!(
            route("/slowbody/5"),
            Route::SlowBody(Duration::from_millis(5))
        );
        assert_eq!(route("/headers/3"), Route::Headers(3));
        assert_eq!(route("/ws"), Route::WebSocket);
        assert_eq!(route("/health"), Route::Health);
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(route("/status/99"), Route::BadArgument);
        assert_eq!(route("/status/600"), Route::BadArgument);
        assert_eq!(route("/status/abc"), Route::BadArgument);
        assert_eq!(route("/size/1073741825"), Route::BadArgument);
        assert_eq!(route("/size/-1"), Route::BadArgument);
        assert_eq!(route("/size/"), Route::BadArgument);
        assert_eq!(route("/headers/10001"), Route::BadArgument);
        assert_eq!(route("/slow/99999999999999"), Route::BadArgument);
    }
}
