//! Open-loop HTTP/1.1 load generator (scenario 10), wrk2-style: each connection has a schedule
//! of intended send times at a fixed rate, and latency is measured from the *intended* send time,
//! so a stalled proxy is charged for every request it delayed (coordinated omission corrected).
//! Keep-alive, no pipelining; a few threads, each with its own connections and histogram.

use crate::procs;
use hdrhistogram::Histogram;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub port: u16,
    pub path: String,
    /// Total offered requests per second.
    pub rate: f64,
    pub conns: u32,
    pub threads: u32,
    pub duration: Duration,
    /// CPU the generator threads are pinned to.
    pub cpu: usize,
}

#[derive(Debug)]
pub struct Outcome {
    /// Latency from intended send time, microseconds.
    pub hist: Histogram<u64>,
    pub completed: u64,
    pub errors: u64,
    pub non_200: u64,
    pub elapsed_s: f64,
}

/// Upper bound of a recorded latency (60 s in µs).
const MAX_LATENCY_US: u64 = 60_000_000;

pub fn run(plan: &Plan) -> Result<Outcome, String> {
    if plan.rate <= 0.0 || plan.conns == 0 || plan.threads == 0 || plan.conns < plan.threads {
        return Err(format!("open loop: bad plan {plan:?}"));
    }
    let start = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..plan.threads)
        .map(|t| {
            let p = plan.clone();
            let conns = p.conns / p.threads + u32::from(t < p.conns % p.threads);
            std::thread::spawn(move || thread_main(&p, conns, start))
        })
        .collect();
    let mut total = Outcome {
        hist: new_hist()?,
        completed: 0,
        errors: 0,
        non_200: 0,
        elapsed_s: plan.duration.as_secs_f64(),
    };
    for h in handles {
        let o = h
            .join()
            .map_err(|_| "open loop: a generator thread panicked".to_string())??;
        total
            .hist
            .add(&o.hist)
            .map_err(|e| format!("histogram: {e}"))?;
        total.completed += o.completed;
        total.errors += o.errors;
        total.non_200 += o.non_200;
    }
    Ok(total)
}

fn new_hist() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| format!("histogram: {e}"))
}

struct Conn {
    stream: TcpStream,
    next_intended: Instant,
    in_flight: Option<Instant>,
    buf: Vec<u8>,
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(s)
}

fn thread_main(p: &Plan, nconns: u32, start: Instant) -> Result<Outcome, String> {
    procs::pin_current_thread(p.cpu);
    let rate_per_thread = p.rate / f64::from(p.threads);
    let interval = Duration::from_secs_f64(f64::from(nconns) / rate_per_thread);
    let request = format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", p.path).into_bytes();
    let mut conns = Vec::with_capacity(nconns as usize);
    for j in 0..nconns {
        conns.push(Conn {
            stream: connect(p.port)?,
            next_intended: start + interval.mul_f64(f64::from(j) / f64::from(nconns)),
            in_flight: None,
            buf: Vec::with_capacity(4096),
        });
    }
    let mut out = Outcome {
        hist: new_hist()?,
        completed: 0,
        errors: 0,
        non_200: 0,
        elapsed_s: 0.0,
    };
    let end = start + p.duration;
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(conns.len());
    let mut idx: Vec<usize> = Vec::with_capacity(conns.len());
    loop {
        let now = Instant::now();
        if now >= end || procs::stopping() {
            break;
        }
        // Send every request whose intended time has come on a connection that is free.
        let mut wake = end;
        for c in conns.iter_mut() {
            if c.in_flight.is_none() {
                if c.next_intended <= now && c.next_intended < end {
                    if c.stream.write_all(&request).is_err() {
                        out.errors += 1;
                        c.stream = connect(p.port)?;
                        continue;
                    }
                    c.in_flight = Some(c.next_intended);
                    c.next_intended += interval;
                } else {
                    wake = wake.min(c.next_intended);
                }
            }
        }
        pfds.clear();
        idx.clear();
        for (i, c) in conns.iter().enumerate() {
            if c.in_flight.is_some() {
                pfds.push(libc::pollfd {
                    fd: c.stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                idx.push(i);
            }
        }
        let wait = wake
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(10));
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: pfds is a valid, initialized array of pfds.len() pollfd structs; ts is valid.
        let n = unsafe {
            libc::ppoll(
                pfds.as_mut_ptr(),
                pfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if n <= 0 {
            continue;
        }
        for (k, pfd) in pfds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            let c = &mut conns[idx[k]];
            if let Err(e) = read_response(c, &mut out) {
                let _ = e;
                out.errors += 1;
                c.in_flight = None;
                c.buf.clear();
                c.stream = connect(p.port)?;
            }
        }
    }
    out.elapsed_s = p.duration.as_secs_f64();
    Ok(out)
}

/// Reads what is there; records the latency when the response is complete.
fn read_response(c: &mut Conn, out: &mut Outcome) -> Result<(), String> {
    let mut tmp = [0u8; 16384];
    loop {
        match c.stream.read(&mut tmp) {
            Ok(0) => return Err("closed by peer".into()),
            Ok(n) => c.buf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some((status, len)) = response_length(&c.buf)? {
        if c.buf.len() >= len {
            let intended = c.in_flight.take().ok_or("response without a request")?;
            let us = intended.elapsed().as_micros() as u64;
            out.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
            out.completed += 1;
            if status != 200 {
                out.non_200 += 1;
            }
            c.buf.drain(..len);
        }
    }
    Ok(())
}

/// `Some((status, total length))` once the head is complete. Requires Content-Length (the
/// origin and both proxies send it for these fixed bodies).
pub fn response_length(buf: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "non-UTF-8 response head")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut cl = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                cl = Some(
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("bad content-length {v:?}"))?,
                );
            }
        }
    }
    let cl = cl.ok_or("response without Content-Length")?;
    Ok(Some((status, end + 4 + cl)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_framing() {
        assert_eq!(
            response_length(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(),
            None
        );
        let r = b"HTTP/1.1 200 OK\r\nServer: x\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(response_length(r).unwrap(), Some((200, r.len())));
        let r = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(response_length(r).unwrap(), Some((429, r.len())));
        assert!(response_length(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(response_length(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn bad_plans_are_errors() {
        let p = Plan {
            port: 1,
            path: "/".into(),
            rate: 0.0,
            conns: 4,
            threads: 2,
            duration: Duration::from_millis(1),
            cpu: 0,
        };
        assert!(run(&p).is_err());
        assert!(run(&Plan {
            rate: 10.0,
            conns: 1,
            ..p
        })
        .is_err());
    }
}
