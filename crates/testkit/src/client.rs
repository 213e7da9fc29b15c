//! A minimal HTTP/1.1 client over `std::net::TcpStream`, strict enough to see what a
//! proxy really sent: keep-alive reuse, pipelining, interim 1xx responses, bodies framed
//! by Content-Length, chunked or connection close, and raw bytes for hostile input.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::body::{Digest, PATTERN};

/// Read and write timeout of client sockets unless changed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body `Response::body` collects; use `read_response_with` for more.
pub const MAX_COLLECTED_BODY: u64 = 512 << 20;
/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 256 * 1024;

/// How a response body was delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body by rule (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed response. Header names keep the case received; values are lossy UTF-8.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Interim (1xx other than 101) statuses received before this one, in order.
    pub interim: Vec<u16>,
    pub framing: Framing,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// First value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server said it closes the connection after this response.
    pub fn closes(&self) -> bool {
        let conn = self.header_all("connection").join(",").to_ascii_lowercase();
        let tokens: Vec<&str> = conn.split(',').map(str::trim).collect();
        tokens.contains(&"close")
            || (self.minor == 0 && !tokens.contains(&"keep-alive"))
            || self.framing == Framing::UntilClose
    }
}

/// A byte source with a look-ahead buffer; used over sockets and over captured bytes.
#[derive(Debug)]
struct Buffered<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> Buffered<R> {
    fn new(inner: R) -> Self {
        Buffered {
            inner,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.inner.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn read_line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.avail().iter().position(|&b| b == b'\n') {
                let mut line = self.avail()[..i].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.consume(i + 1);
                return Ok(line);
            }
            if self.avail().len() > max {
                return Err(bad("line too long"));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn stream_exact(&mut self, mut n: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        while n > 0 {
            if self.avail().is_empty() && self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended {n} bytes early"),
                ));
            }
            let take = self
                .avail()
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            sink(&self.avail()[..take]);
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    fn stream_to_eof(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        loop {
            if !self.avail().is_empty() {
                sink(self.avail());
                let n = self.avail().len();
                self.consume(n);
            }
            if self.fill()? == 0 {
                return Ok(());
            }
        }
    }

    /// Reads one response; the body goes to `sink`. Interim 1xx are skipped and recorded.
    fn read_response(&mut self, method: &str, sink: &mut dyn FnMut(&[u8])) -> io::Result<Response> {
        let mut interim = Vec::new();
        loop {
            let mut resp = self.read_head()?;
            if (100..200).contains(&resp.status) && resp.status != 101 {
                interim.push(resp.status);
                continue;
            }
            resp.interim = interim;
            resp.framing = framing(&resp, method)?;
            match resp.framing {
                Framing::None => {}
                Framing::Length(n) => self.stream_exact(n, sink)?,
                Framing::Chunked => resp.trailers = self.read_chunked(sink)?,
                Framing::UntilClose => self.stream_to_eof(sink)?,
            }
            return Ok(resp);
        }
    }

    fn read_head(&mut self) -> io::Result<Response> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 1024];
            let mut r = httparse::Response::new(&mut slots);
            match r.parse(self.avail()) {
                Ok(httparse::Status::Complete(len)) => {
                    let resp = Response {
                        status: r.code.unwrap_or(0),
                        reason: r.reason.unwrap_or("").to_owned(),
                        minor: r.version.unwrap_or(1),
                        headers: r
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                        body: Vec::new(),
                        interim: Vec::new(),
                        framing: Framing::None,
                        trailers: Vec::new(),
                    };
                    self.consume(len);
                    return Ok(resp);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(bad(&format!("invalid response head: {e}"))),
            }
            if self.avail().len() > MAX_HEAD_BYTES {
                return Err(bad("response head too large"));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    if self.avail().is_empty() {
                        "connection closed before any response byte"
                    } else {
                        "connection closed mid response head"
                    },
                ));
            }
        }
    }

    fn read_chunked(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<Vec<(String, String)>> {
        loop {
            let line = self.read_line(8192)?;
            let size = String::from_utf8_lossy(&line);
            let size = size.split(';').next().unwrap_or("").trim();
            let n = u64::from_str_radix(size, 16).map_err(|_| bad("invalid chunk size"))?;
            if n == 0 {
                break;
            }
            self.stream_exact(n, sink)?;
            if !self.read_line(2)?.is_empty() {
                return Err(bad("chunk data not followed by CRLF"));
            }
        }
        let mut trailers = Vec::new();
        loop {
            let line = self.read_line(8192)?;
            if line.is_empty() {
                return Ok(trailers);
            }
            let line = String::from_utf8_lossy(&line);
            let (n, v) = line.split_once(':').ok_or_else(|| bad("invalid trailer"))?;
            trailers.push((n.to_owned(), v.trim().to_owned()));
        }
    }
}

fn framing(resp: &Response, method: &str) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&resp.status)
        || resp.status == 204
        || resp.status == 304
    {
        return Ok(Framing::None);
    }
    if let Some(te) = resp.header("transfer-encoding") {
        if te
            .rsplit(',')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("chunked")
        {
            return Ok(Framing::Chunked);
        }
        return Ok(Framing::UntilClose);
    }
    let lengths = resp.header_all("content-length");
    match lengths.first() {
        None => Ok(Framing::UntilClose),
        Some(v) if lengths.iter().all(|o| o == v) => v
            .trim()
            .parse()
            .map(Framing::Length)
            .map_err(|_| bad("invalid Content-Length")),
        Some(_) => Err(bad("conflicting Content-Length headers")),
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// A client connection that can carry several requests (keep-alive, pipelining).
#[derive(Debug)]
pub struct Conn {
    rd: Buffered<TcpStream>,
    host: String,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, DEFAULT_TIMEOUT)?;
        s.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
        s.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            rd: Buffered::new(s),
            host: addr.to_string(),
        })
    }

    /// Read and write timeout of the socket.
    pub fn set_timeout(&self, d: Duration) -> io::Result<()> {
        self.rd.inner.set_read_timeout(Some(d))?;
        self.rd.inner.set_write_timeout(Some(d))
    }

    pub fn stream(&self) -> &TcpStream {
        &self.rd.inner
    }

    /// Bytes received but not consumed (e.g. WebSocket frames after a 101).
    pub fn leftover(&self) -> &[u8] {
        self.rd.avail()
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.rd.inner.write_all(bytes)
    }

    /// Sends a request head. `Host` is added unless given; `Content-Length` is added for
    /// a non-empty `body_len` unless a Content-Length or Transfer-Encoding is given.
    pub fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body_len: u64,
    ) -> io::Result<()> {
        let has = |n: &str| headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !has("host") {
            head.push_str(&format!("Host: {}\r\n", self.host));
        }
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if body_len > 0 && !has("content-length") && !has("transfer-encoding") {
            head.push_str(&format!("Content-Length: {body_len}\r\n"));
        }
        head.push_str("\r\n");
        self.send(head.as_bytes())
    }

    /// One request/response exchange on this connection.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.send_head(method, path, headers, body.len() as u64)?;
        self.send(body)?;
        self.read_response(method)
    }

    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], &[])
    }

    /// Reads one response (the method tells whether a body may follow), collecting the
    /// body up to `MAX_COLLECTED_BODY`.
    pub fn read_response(&mut self, method: &str) -> io::Result<Response> {
        let mut body = Vec::new();
        let mut too_big = false;
        let mut resp = self.rd.read_response(method, &mut |p| {
            if body.len() as u64 + p.len() as u64 > MAX_COLLECTED_BODY {
                too_big = true;
            } else {
                body.extend_from_slice(p);
            }
        })?;
        if too_big {
            return Err(bad(
                "body larger than MAX_COLLECTED_BODY: use read_response_with",
            ));
        }
        resp.body = body;
        Ok(resp)
    }

    /// Reads one response, streaming its body to `sink` (`Response::body` stays empty).
    pub fn read_response_with(
        &mut self,
        method: &str,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Response> {
        self.rd.read_response(method, sink)
    }

    /// Reads only a response head (e.g. an interim `100 Continue`).
    pub fn read_head(&mut self) -> io::Result<Response> {
        self.rd.read_head()
    }

    /// Streams an upload of `len` pattern bytes with Content-Length and returns the
    /// response; memory stays bounded whatever `len`.
    pub fn upload_pattern(&mut self, method: &str, path: &str, len: u64) -> io::Result<Response> {
        self.send_head(method, path, &[("Content-Length", &len.to_string())], len)?;
        let block: Vec<u8> = PATTERN.iter().copied().cycle().take(64 * 1024).collect();
        let mut left = len;
        while left > 0 {
            let take = left.min(block.len() as u64) as usize;
            self.rd.inner.write_all(&block[..take])?;
            left -= take as u64;
        }
        self.read_response(method)
    }

    /// Streams a GET response body through a digest instead of memory.
    pub fn get_digest(&mut self, path: &str) -> io::Result<(Response, Digest)> {
        self.send_head("GET", path, &[], 0)?;
        let mut d = Digest::new();
        let resp = self.read_response_with("GET", &mut |p| d.update(p))?;
        Ok((resp, d))
    }

    /// Whether the peer closed the connection (read returns EOF) within `wait`.
    /// Data still arriving counts as not closed.
    pub fn peer_closed(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let _ = self
            .rd
            .inner
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let closed = loop {
            match self.rd.fill() {
                Ok(0) => break true,
                Ok(_) => break false,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break true,
                Err(_) if Instant::now() < deadline => continue,
                Err(_) => break false,
            }
        };
        let _ = self.rd.inner.set_read_timeout(Some(DEFAULT_TIMEOUT));
        closed
    }

    /// Shuts down our write side (half-close).
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.rd.inner.shutdown(Shutdown::Write)
    }
}

/// `GET path` on a new connection with `Connection: close` added (unless given).
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    http_request(addr, "GET", path, headers, &[])
}

/// `GET path` on a new connection to the UNIX socket at `sock`, with `Connection: close`:
/// the response read to the end of the connection (an error if it is not exactly one).
pub fn http_get_unix(sock: &std::path::Path, path: &str) -> io::Result<Response> {
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    s.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
    s.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes)?;
    let mut all = parse_responses(&bytes, "GET")?;
    match (all.pop(), all.is_empty()) {
        (Some(r), true) => Ok(r),
        _ => Err(io::Error::other(format!(
            "expected one response, got {} bytes: {:?}",
            bytes.len(),
            String::from_utf8_lossy(&bytes)
        ))),
    }
}

/// One request on a new connection with `Connection: close` added (unless given).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        all.push(("Connection", "close"));
    }
    Conn::connect(addr)?.request(method, path, &all, body)
}

/// How the peer ended a raw exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawEnd {
    /// FIN: the peer closed cleanly.
    Closed,
    /// RST.
    Reset,
    /// The connection was still open when the timeout passed.
    TimedOut,
}

/// What `send_raw_reply` received.
#[derive(Clone, Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    pub end: RawEnd,
}

/// Sends `bytes` and returns everything received until the peer closes or `timeout`
/// passes (a timeout is not an error: the bytes so far are returned). For hostile input.
pub fn send_raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    send_raw_reply(addr, bytes, timeout).map(|r| r.bytes)
}

/// Like `send_raw`, also telling whether the peer closed, reset or kept the connection.
pub fn send_raw_reply(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> io::Result<RawReply> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_write_timeout(Some(timeout))?;
    // The peer may answer and close before reading everything: keep what it sent.
    let write_err = s.write_all(bytes).err();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break RawEnd::TimedOut;
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => break RawEnd::Closed,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break RawEnd::TimedOut
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break RawEnd::Reset,
            Err(e) => return Err(e),
        }
    };
    match (write_err, out.is_empty(), end) {
        (Some(e), true, RawEnd::TimedOut) => Err(e),
        _ => Ok(RawReply { bytes: out, end }),
    }
}

/// Parses every response in `bytes` (as captured by `send_raw`); `method` applies to all.
pub fn parse_responses(bytes: &[u8], method: &str) -> io::Result<Vec<Response>> {
    let mut rd = Buffered::new(bytes);
    let mut out = Vec::new();
    while !rd.avail().is_empty() || rd.fill()? > 0 {
        let mut body = Vec::new();
        let mut resp = rd.read_response(method, &mut |p| body.extend_from_slice(p))?;
        resp.body = body;
        out.push(resp);
    }
    Ok(out)
}

/// Makes closing `s` send RST instead of FIN (SO_LINGER 0): for servers that reset.
pub fn set_linger_zero(s: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let len =
        libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).map_err(io::Error::other)?;
    // SAFETY: setsockopt reads `len` bytes of `l`, a valid linger struct; the fd is open.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes received on `s` and not read yet (FIONREAD): lets a test see when a peer stops
/// being able to send (the count stops growing) without reading.
pub fn unread_bytes(s: &TcpStream) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points to `n`.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &raw mut n) };
    if r == 0 {
        usize::try_from(n).map_err(io::Error::other)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_close_and_interim() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabc\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n\
HTTP/1.0 200 OK\r\n\r\nuntil close";
        let r = parse_responses(raw, "GET").unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].interim, vec![100]);
        assert_eq!((r[0].status, r[0].text().as_str()), (200, "abc"));
        assert_eq!(r[0].header_all("x-a"), vec!["1", "2"]);
        assert_eq!((r[1].status, r[1].framing), (204, Framing::None));
        assert_eq!(
            (r[2].text().as_str(), r[2].framing),
            ("abcde", Framing::Chunked)
        );
        assert_eq!(r[2].trailers, vec![("T".to_owned(), "v".to_owned())]);
        assert_eq!(r[3].text(), "until close");
        assert!(r[3].closes());
        assert!(!r[0].closes());
    }

    #[test]
    fn rejects_broken_responses() {
        assert!(parse_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "GET").is_err());
        assert!(parse_responses(b"garbage\r\n\r\n", "GET").is_err());
        assert!(parse_responses(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "GET"
        )
        .is_err());
        assert!(parse_responses(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "GET"
        )
        .is_err());
        // HEAD: Content-Length announces a body that is not sent.
        let r = parse_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD").unwrap();
        assert_eq!(r[0].framing, Framing::None);
    }
}
