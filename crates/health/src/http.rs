//! Just enough of an HTTP/1 response reader for health checks: the status, the headers and
//! the body (Content-Length, chunked, or up to the close). Hostile input never panics: it is
//! `Invalid` (HAProxy: "Layer7 invalid response").

/// A response as far as a check needs it; borrows the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The body, de-chunked when chunked (so owned).
    pub body: Vec<u8>,
    /// Whether the whole body was received.
    pub complete: bool,
}

/// Reading progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// The head is not complete yet.
    NeedMore,
    Invalid,
    Response(Response<'a>),
}

/// At most this many response headers are looked at (more: invalid).
pub const MAX_HEADERS: usize = 100;

/// Parses `buf`; `closed` = the server closed (or the buffer is full): no more bytes come.
pub fn parse(buf: &[u8], closed: bool) -> Parsed<'_> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut hs);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if !closed => return Parsed::NeedMore,
        _ => return Parsed::Invalid,
    };
    let (Some(status), reason) = (r.code, r.reason.unwrap_or("")) else {
        return Parsed::Invalid;
    };
    let headers: Vec<(&str, &[u8])> = r.headers.iter().map(|h| (h.name, h.value)).collect();
    let rest = buf.get(head_len..).unwrap_or(&[]);
    let (body, complete) = body_of(&headers, rest, closed);
    Parsed::Response(Response {
        status,
        reason,
        headers,
        body,
        complete,
    })
}

fn header<'a>(headers: &[(&str, &'a [u8])], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

fn body_of(headers: &[(&str, &[u8])], rest: &[u8], closed: bool) -> (Vec<u8>, bool) {
    let chunked = header(headers, "transfer-encoding").is_some_and(|v| {
        String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("chunked")
    });
    if chunked {
        return dechunk(rest);
    }
    let cl = header(headers, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    match cl {
        Some(n) => {
            let take = rest.len().min(n);
            (rest.get(..take).unwrap_or(&[]).to_vec(), rest.len() >= n)
        }
        None => (rest.to_vec(), closed),
    }
}

/// De-chunks what is there; complete once the last chunk is seen.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let line = String::from_utf8_lossy(rest.get(..eol).unwrap_or(&[])).to_string();
        let size_txt = line.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_txt, 16) else {
            return (out, true);
        };
        rest = rest.get(eol + 2..).unwrap_or(&[]);
        if size == 0 {
            return (out, true);
        }
        let Some(data) = rest.get(..size) else {
            out.extend_from_slice(rest);
            return (out, false);
        };
        out.extend_from_slice(data);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_and_bodies() {
        let Parsed::Response(r) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
        else {
            panic!()
        };
        assert_eq!(
            (r.status, r.reason, r.body.as_slice(), r.complete),
            (200, "OK", &b"ok"[..], true)
        );
        let Parsed::Response(r) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok", false)
        else {
            panic!()
        };
        assert!(!r.complete);
        let Parsed::Response(r) = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1\r\n!\r\n0\r\n\r\n",
            false,
        ) else {
            panic!()
        };
        assert_eq!((r.body.as_slice(), r.complete), (&b"ok!"[..], true));
        let Parsed::Response(r) = parse(b"HTTP/1.0 503 Service Unavailable\r\n\r\ndown", true)
        else {
            panic!()
        };
        assert_eq!(
            (r.status, r.body.as_slice(), r.complete),
            (503, &b"down"[..], true)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nX: y\r\n", false),
            Parsed::NeedMore
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nX: y\r\n", true), Parsed::Invalid);
        assert_eq!(parse(b"SSH-2.0-OpenSSH\r\n\r\n", false), Parsed::Invalid);
    }
}
