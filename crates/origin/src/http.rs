//! HTTP/1.x connection loop and endpoints: one blocking thread per connection.

use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::body::{Digest, BLOCK, BLOCK_BYTES};
use crate::reader::Reader;
use crate::request::{read_body, read_head, Framing, ReadError, Request};
use crate::route::{reason, route, Route};
use crate::ws;

/// Chunk size of `/chunked/N` responses.
const CHUNK_BYTES: usize = 4096;
/// Most bytes discarded while closing gracefully.
const DRAIN_MAX_BYTES: usize = 1 << 20;

/// Per-process settings every connection reads.
#[derive(Debug)]
pub struct Ctx {
    pub name: String,
    pub unhealthy_file: Option<PathBuf>,
    pub verbose: bool,
}

/// What the connection does after a request.
enum Next {
    KeepAlive,
    /// Shut down our side, drain what the client still sends, close.
    Close,
    /// The socket was already dealt with (reset, upgraded).
    Done,
}

/// How a response body is delimited.
#[derive(Clone, Copy)]
enum Len {
    Length(u64),
    Chunked,
    /// No body and no Content-Length (1xx, 204, 304).
    Nothing,
    /// Body ends when the connection closes (chunked asked by an HTTP/1.0 client).
    UntilClose,
}

/// One response being written: who asked, how it ends.
struct Exchange<'a> {
    req: &'a Request,
    ctx: &'a Ctx,
    port: u16,
    keep: bool,
    /// Trailer lines of a chunked request body.
    trailers: Vec<String>,
}

pub fn serve(stream: TcpStream, ctx: &Ctx) -> io::Result<()> {
    let port = stream.local_addr()?.port();
    let peer = stream.peer_addr()?;
    // One write buffer per connection, flushed after each response.
    let mut out = BufWriter::with_capacity(BLOCK_BYTES, stream.try_clone()?);
    let mut rd = Reader::new(stream);
    loop {
        let req = match read_head(&mut rd) {
            Ok(r) => r,
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::Bad(status, why)) => {
                log(ctx, peer, "-", status, why);
                let _ = write_error(rd.stream(), ctx, port, status, why);
                graceful_close(rd.stream());
                return Ok(());
            }
            Err(ReadError::Io(e)) => return Err(e),
        };
        match handle(&mut rd, &mut out, &req, ctx, port, peer)? {
            Next::KeepAlive => {}
            Next::Close => {
                graceful_close(rd.stream());
                return Ok(());
            }
            Next::Done => return Ok(()),
        }
    }
}

fn handle(
    rd: &mut Reader,
    out: &mut BufWriter<TcpStream>,
    req: &Request,
    ctx: &Ctx,
    port: u16,
    peer: SocketAddr,
) -> io::Result<Next> {
    let route = route(req.path());
    let line = format!("{} {} HTTP/1.{}", req.method, req.target, req.minor);
    if route == Route::WebSocket && req.has_token("upgrade", "websocket") {
        return websocket(rd, req, ctx, port, peer, &line);
    }
    let mut digest = Digest::default();
    let mut trailers = Vec::new();
    if req.body != Framing::None {
        if req.expects_continue() {
            rd.stream().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        match read_body(rd, req.body, &mut |p| {
            digest.update(p);
            Ok(())
        }) {
            Ok(t) => trailers = t,
            Err(e) if e.kind() != io::ErrorKind::InvalidData => return Err(e),
            Err(_) => {
                log(ctx, peer, &line, 400, "bad request body");
                write_error(rd.stream(), ctx, port, 400, "bad request body")?;
                return Ok(Next::Close);
            }
        }
    }
    let ex = Exchange {
        req,
        ctx,
        port,
        keep: req.keep_alive() && route != Route::Close,
        trailers,
    };
    let status = respond(out, &ex, route, &digest)?;
    out.flush()?;
    log(ctx, peer, &line, status, "");
    Ok(match route {
        Route::Reset => {
            set_linger_zero(rd.stream())?;
            Next::Done
        }
        Route::NoResponse | Route::Garbage => Next::Close,
        _ if !ex.keep => Next::Close,
        Route::Chunked(_) if ex.req.minor == 0 => Next::Close,
        _ => Next::KeepAlive,
    })
}

/// Writes the response for `route`; returns the status sent (0 when none).
fn respond(out: &mut dyn Write, ex: &Exchange, route: Route, digest: &Digest) -> io::Result<u16> {
    match route {
        Route::Default | Route::Close => default_body(out, ex, digest, 200, &[]),
        Route::Echo => {
            let body = echo_dump(ex.req, digest);
            simple(out, ex, 200, &[], body.as_bytes())
        }
        Route::Status(s) => match s {
            204 | 304 => {
                write_head(out, ex, s, &[], Len::Nothing)?;
                Ok(s)
            }
            _ => simple(out, ex, s, &[], format!("status {s}\n").as_bytes()),
        },
        Route::Size(n) => {
            write_head(out, ex, 200, &[], Len::Length(n))?;
            if !is_head(ex) {
                write_pattern(out, n)?;
            }
            Ok(200)
        }
        Route::Chunked(n) => chunked(out, ex, n),
        Route::Grpc => grpc(out, ex, digest),
        Route::Slow(d) => {
            std::thread::sleep(d);
            default_body(out, ex, digest, 200, &[])
        }
        Route::SlowBody(d) => slow_body(out, ex, digest, d),
        Route::NoResponse | Route::Reset => Ok(0),
        Route::Garbage => {
            out.write_all(b"GARBAGE\x00\x01\x02 this is not HTTP\r\n\r\n")?;
            Ok(0)
        }
        Route::Headers(n) => {
            let extra: Vec<(String, String)> = (0..n)
                .map(|i| (format!("X-Extra-{i}"), format!("value-{i}")))
                .collect();
            default_body(out, ex, digest, 200, &extra)
        }
        Route::Health => health(out, ex),
        Route::WebSocket => simple(out, ex, 400, &[], b"expected a WebSocket upgrade\n"),
        Route::BadArgument => simple(out, ex, 400, &[], b"bad endpoint argument\n"),
    }
}

/// `hello from NAME`, or the digest of the body for uploads (POST/PUT/PATCH or any body).
fn default_body(
    out: &mut dyn Write,
    ex: &Exchange,
    digest: &Digest,
    status: u16,
    extra: &[(String, String)],
) -> io::Result<u16> {
    let body = default_text(ex, digest);
    simple(out, ex, status, extra, body.as_bytes())
}

fn default_text(ex: &Exchange, digest: &Digest) -> String {
    let upload = matches!(ex.req.method.as_str(), "POST" | "PUT" | "PATCH");
    if upload || ex.req.body != Framing::None {
        digest.lines()
    } else {
        format!("hello from {}\n", ex.ctx.name)
    }
}

/// The `/echo` dump: request line, each header line as received (order kept), then the
/// body's length and FNV-1a 64.
fn echo_dump(req: &Request, digest: &Digest) -> String {
    let head = String::from_utf8_lossy(&req.raw_head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut out = format!("request-line: {}\n", lines.next().unwrap_or(""));
    for l in lines {
        out.push_str("header: ");
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&digest.lines());
    out
}

fn chunked(out: &mut dyn Write, ex: &Exchange, n: u64) -> io::Result<u16> {
    if ex.req.minor == 0 {
        write_head(out, ex, 200, &[], Len::UntilClose)?;
        if !is_head(ex) {
            write_pattern(out, n)?;
        }
        return Ok(200);
    }
    write_head(out, ex, 200, &[], Len::Chunked)?;
    if is_head(ex) {
        return Ok(200);
    }
    let mut sent = 0u64;
    while sent < n {
        let len = (n - sent).min(CHUNK_BYTES as u64) as usize;
        // Chunks start at multiples of CHUNK_BYTES, which the pattern period divides.
        write!(out, "{len:x}\r\n")?;
        out.write_all(BLOCK.get(..len).unwrap_or(&[]))?;
        out.write_all(b"\r\n")?;
        sent += len as u64;
    }
    out.write_all(b"0\r\n\r\n")?;
    Ok(200)
}

/// A gRPC-like answer: the request body's digest and its trailers as a chunked body, then trailers
/// `grpc-status: 0` and `grpc-message` naming the request's trailers (`none` without any).
fn grpc(out: &mut dyn Write, ex: &Exchange, digest: &Digest) -> io::Result<u16> {
    if ex.req.minor == 0 {
        return simple(out, ex, 505, &[], b"/grpc needs HTTP/1.1\n");
    }
    let ct = [("Content-Type".to_string(), "application/grpc".to_string())];
    write_head(out, ex, 200, &ct, Len::Chunked)?;
    if is_head(ex) {
        return Ok(200);
    }
    let seen = if ex.trailers.is_empty() {
        "none".to_string()
    } else {
        ex.trailers.join(", ")
    };
    let body = format!("{}trailers: {seen}\n", digest.lines());
    write!(out, "{:x}\r\n{body}\r\n0\r\n", body.len())?;
    write!(out, "grpc-status: 0\r\ngrpc-message: {seen}\r\n\r\n")?;
    Ok(200)
}

fn slow_body(out: &mut dyn Write, ex: &Exchange, digest: &Digest, d: Duration) -> io::Result<u16> {
    let body = default_text(ex, digest);
    write_head(out, ex, 200, &[], Len::Length(body.len() as u64))?;
    out.flush()?;
    std::thread::sleep(d);
    if !is_head(ex) {
        out.write_all(body.as_bytes())?;
    }
    Ok(200)
}

fn health(out: &mut dyn Write, ex: &Exchange) -> io::Result<u16> {
    let down = ex.ctx.unhealthy_file.as_ref().is_some_and(|p| p.exists());
    if down {
        simple(out, ex, 503, &[], b"unhealthy\n")
    } else {
        simple(out, ex, 200, &[], b"ok\n")
    }
}

fn websocket(
    rd: &mut Reader,
    req: &Request,
    ctx: &Ctx,
    port: u16,
    peer: SocketAddr,
    line: &str,
) -> io::Result<Next> {
    let Some(key) = req.header("sec-websocket-key") else {
        log(ctx, peer, line, 400, "no Sec-WebSocket-Key");
        write_error(rd.stream(), ctx, port, 400, "missing Sec-WebSocket-Key")?;
        return Ok(Next::Close);
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nX-Origin: {}\r\nX-Origin-Port: {port}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        ctx.name,
        ws::accept_key(key)
    );
    rd.stream().write_all(head.as_bytes())?;
    log(ctx, peer, line, 101, "");
    ws::echo(rd)?;
    drain(rd.stream());
    Ok(Next::Done)
}

fn is_head(ex: &Exchange) -> bool {
    ex.req.method == "HEAD"
}

/// A `text/plain` response with a body held in memory.
fn simple(
    out: &mut dyn Write,
    ex: &Exchange,
    status: u16,
    extra: &[(String, String)],
    body: &[u8],
) -> io::Result<u16> {
    write_head(out, ex, status, extra, Len::Length(body.len() as u64))?;
    if !is_head(ex) {
        out.write_all(body)?;
    }
    Ok(status)
}

fn write_head(
    out: &mut dyn Write,
    ex: &Exchange,
    status: u16,
    extra: &[(String, String)],
    len: Len,
) -> io::Result<()> {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\nX-Origin: {}\r\nX-Origin-Port: {}\r\n",
        reason(status),
        ex.ctx.name,
        ex.port
    );
    for (n, v) in extra {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    match len {
        Len::Length(n) => h.push_str(&format!(
            "Content-Type: text/plain\r\nContent-Length: {n}\r\n"
        )),
        Len::Chunked => h.push_str("Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"),
        Len::UntilClose => h.push_str("Content-Type: text/plain\r\n"),
        Len::Nothing => {}
    }
    let keep = ex.keep && !matches!(len, Len::UntilClose);
    if !keep {
        h.push_str("Connection: close\r\n");
    } else if ex.req.minor == 0 {
        h.push_str("Connection: keep-alive\r\n");
    }
    h.push_str("\r\n");
    out.write_all(h.as_bytes())
}

/// Writes `n` bytes of the body pattern from the pre-built block.
fn write_pattern(out: &mut dyn Write, n: u64) -> io::Result<()> {
    let mut left = n;
    while left > 0 {
        let len = left.min(BLOCK_BYTES as u64) as usize;
        out.write_all(BLOCK.get(..len).unwrap_or(&[]))?;
        left -= len as u64;
    }
    Ok(())
}

/// A `Connection: close` error response outside any endpoint (bad request head or body).
fn write_error(stream: &TcpStream, ctx: &Ctx, port: u16, status: u16, why: &str) -> io::Result<()> {
    let body = format!("{why}\n");
    let msg = format!(
        "HTTP/1.1 {status} {}\r\nX-Origin: {}\r\nX-Origin-Port: {port}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        ctx.name,
        body.len()
    );
    let mut s = stream;
    s.write_all(msg.as_bytes())
}

/// Shut down our side, then discard what the client still sends (bounded) so the kernel
/// does not answer unread data with a RST that could destroy the response in flight.
fn graceful_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    drain(stream);
}

fn drain(stream: &TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    let mut s = stream;
    while total < DRAIN_MAX_BYTES {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// SO_LINGER {on, 0}: closing the socket then sends a RST instead of a FIN.
fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is an open socket borrowed from `stream` for the whole call, and the
    // option value points to a live `linger` whose exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast::<libc::c_void>(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn log(ctx: &Ctx, peer: SocketAddr, line: &str, status: u16, note: &str) {
    if ctx.verbose {
        eprintln!("{} {peer} \"{line}\" {status} {note}", ctx.name);
    }
}
