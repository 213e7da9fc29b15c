//! `balance url_param NAME check_post`: when a POST's query string lacks the parameter, the
//! parameter is looked for in the body. As HAProxy 2.6 documents, the body is analysed once the
//! advertised amount of data has arrived or the request buffer (`tune.bufsize`) is full; of a
//! chunked body only the first chunk is scanned.

use std::time::Duration;

use ringlb_config::model::Balance;
use ringlb_http1::{BodyFraming, Method};
use ringlb_uring::RecvBuf;

use crate::conn::{ClientConn, Io};
use crate::time::within;

/// True when this request must wait for its body before a server is chosen.
pub fn wants_body(balance: &Balance, method: Method, framing: BodyFraming, uri: &[u8]) -> bool {
    let Balance::UrlParam {
        name,
        check_post: true,
    } = balance
    else {
        return false;
    };
    let has_body = match framing {
        BodyFraming::ContentLength(n) => n > 0,
        BodyFraming::Chunked => true,
        _ => false,
    };
    method == Method::Post
        && has_body
        && ringlb_balance::key::url_param_value(uri, name.as_bytes()).is_none()
}

/// Reads the start of the body (after the `have` bytes already received) until the advertised
/// length, a complete first chunk or `bufsize` bytes, within `timeout` (then it goes on with
/// what arrived, as the server will get it anyway). Returns every byte read, to forward as
/// the body's start, and a copy of the part to scan (a copy only for these requests).
pub async fn read_body_start(
    client: &ClientConn,
    have: Option<RecvBuf>,
    framing: BodyFraming,
    bufsize: usize,
    timeout: Option<Duration>,
) -> (Option<RecvBuf>, Vec<u8>) {
    let mut all: Vec<u8> = have
        .as_ref()
        .map(|b| b.bytes().to_vec())
        .unwrap_or_default();
    drop(have);
    let started = std::time::Instant::now();
    while scan_part(&all, framing, bufsize).is_none() && all.len() < bufsize {
        let left = timeout.map(|d| d.saturating_sub(started.elapsed()));
        match within(left, client.recv()).await {
            Ok(Ok(Some(more))) => all.extend_from_slice(more.bytes()),
            _ => break,
        }
    }
    let part = scan_part(&all, framing, bufsize)
        .or_else(|| partial_part(&all, framing))
        .unwrap_or(&[])
        .to_vec();
    let buf = (!all.is_empty()).then(|| RecvBuf::from_vec(all));
    (buf, part)
}

/// The complete part to scan, if it has all arrived: the whole body (capped at `bufsize`), or
/// a chunked body's first chunk.
fn scan_part(all: &[u8], framing: BodyFraming, bufsize: usize) -> Option<&[u8]> {
    match framing {
        BodyFraming::ContentLength(n) => {
            let want = usize::try_from(n).unwrap_or(usize::MAX).min(bufsize);
            all.get(..want)
        }
        BodyFraming::Chunked => {
            let (start, size) = chunk_start(all)?;
            all.get(start..start.checked_add(size)?)
        }
        _ => Some(&[]),
    }
}

/// What arrived of the part to scan when the wait ended early.
fn partial_part(all: &[u8], framing: BodyFraming) -> Option<&[u8]> {
    match framing {
        BodyFraming::Chunked => all.get(chunk_start(all)?.0..),
        _ => Some(all),
    }
}

/// Where the first chunk's data starts and its size (`SIZE[;ext]\r\n`).
fn chunk_start(all: &[u8]) -> Option<(usize, usize)> {
    let eol = all.windows(2).position(|w| w == b"\r\n")?;
    let line = all.get(..eol)?;
    let hex_len = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    let hex = std::str::from_utf8(line.get(..hex_len)?).ok()?;
    let size = usize::from_str_radix(hex, 16).ok()?;
    Some((eol + 2, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_for_posts_without_the_parameter() {
        let b = Balance::UrlParam {
            name: "user".into(),
            check_post: true,
        };
        let cl = BodyFraming::ContentLength(5);
        assert!(wants_body(&b, Method::Post, cl, b"/login"));
        assert!(wants_body(
            &b,
            Method::Post,
            BodyFraming::Chunked,
            b"/p?x=1"
        ));
        assert!(!wants_body(&b, Method::Post, cl, b"/p?user=bob"));
        assert!(!wants_body(&b, Method::Get, cl, b"/login"));
        assert!(!wants_body(&b, Method::Post, BodyFraming::None, b"/login"));
        let no_post = Balance::UrlParam {
            name: "user".into(),
            check_post: false,
        };
        assert!(!wants_body(&no_post, Method::Post, cl, b"/login"));
    }

    #[test]
    fn parts_to_scan() {
        let cl = BodyFraming::ContentLength(8);
        assert_eq!(scan_part(b"user=bo", cl, 100), None, "incomplete");
        assert_eq!(scan_part(b"user=bob", cl, 100), Some(&b"user=bob"[..]));
        assert_eq!(scan_part(b"user=bob", cl, 4), Some(&b"user"[..]), "bufsize");
        let ch = BodyFraming::Chunked;
        assert_eq!(scan_part(b"8\r\nuser=bo", ch, 100), None);
        assert_eq!(
            scan_part(b"8;x=y\r\nuser=bob\r\n3\r\n&z=\r\n", ch, 100),
            Some(&b"user=bob"[..])
        );
        assert_eq!(partial_part(b"8\r\nuser=bo", ch), Some(&b"user=bo"[..]));
    }
}
