//! relay-epoll: the reference candidate of the relay micro-benchmark (`scripts/bench relay`).
//!
//! A minimal single-threaded byte relay on level-triggered epoll: per accepted connection one
//! upstream connection, bytes copied both ways through one stack buffer, half-close forwarded,
//! no HTTP parsing. It follows the relay contract every engine candidate follows:
//! `relay-epoll --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT --cpu N`.
//! It calibrates what "a relay" costs on this machine with plain readiness I/O (two syscalls per
//! read+write, one epoll_wait per batch), the floor io_uring candidates should beat.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

struct Pair {
    /// [client, upstream]
    s: [TcpStream; 2],
    /// Bytes waiting to be written to s[i].
    pend: [Vec<u8>; 2],
    /// s[i] reached end of stream.
    eof: [bool; 2],
    /// Interest currently registered for s[i].
    reg: [u32; 2],
}

fn args() -> Result<(String, String, usize), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| -> Result<String, String> {
        a.iter()
            .position(|x| x == k)
            .and_then(|i| a.get(i + 1))
            .cloned()
            .ok_or_else(|| {
                format!("usage: relay-epoll --listen ADDR --upstream ADDR --cpu N (missing {k})")
            })
    };
    let cpu = get("--cpu")?
        .parse()
        .map_err(|_| "--cpu: not a number".to_string())?;
    Ok((get("--listen")?, get("--upstream")?, cpu))
}

fn epoll_ctl(ep: i32, op: i32, fd: i32, events: u32, token: u64) -> Result<(), String> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ep and fd are open descriptors we own; ev is a valid event struct.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn pin(cpu: usize) {
    // SAFETY: plain-data cpu_set_t; affects this (only) thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Token layout: pair id << 1 | side; u64::MAX is the listener.
const LISTENER: u64 = u64::MAX;

fn main() {
    if let Err(e) = run() {
        eprintln!("relay-epoll: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let (listen, upstream, cpu) = args()?;
    pin(cpu);
    let l = TcpListener::bind(&listen).map_err(|e| format!("bind {listen}: {e}"))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    // SAFETY: epoll_create1 has no memory arguments.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err("epoll_create1 failed".into());
    }
    epoll_ctl(
        ep,
        libc::EPOLL_CTL_ADD,
        l.as_raw_fd(),
        libc::EPOLLIN as u32,
        LISTENER,
    )?;
    let mut pairs: HashMap<u64, Pair> = HashMap::new();
    let mut next_id: u64 = 0;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: events has events.len() initialized slots.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {e}"));
        }
        for ev in events.iter().take(n as usize) {
            let token = ev.u64;
            if token == LISTENER {
                accept_all(&l, &upstream, ep, &mut pairs, &mut next_id)?;
                continue;
            }
            let id = token >> 1;
            let side = (token & 1) as usize;
            let Some(p) = pairs.get_mut(&id) else {
                continue;
            };
            let ok = service(p, side, ev.events, &mut buf);
            if !ok || (p.eof[0] && p.eof[1] && p.pend[0].is_empty() && p.pend[1].is_empty()) {
                if let Some(p) = pairs.remove(&id) {
                    for s in &p.s {
                        let _ = epoll_ctl(ep, libc::EPOLL_CTL_DEL, s.as_raw_fd(), 0, 0);
                    }
                }
                continue;
            }
            update(ep, id, p)?;
        }
    }
}

fn accept_all(
    l: &TcpListener,
    upstream: &str,
    ep: i32,
    pairs: &mut HashMap<u64, Pair>,
    next_id: &mut u64,
) -> Result<(), String> {
    loop {
        let c = match l.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(format!("accept: {e}")),
        };
        let Ok(u) = TcpStream::connect(upstream) else {
            continue;
        };
        for s in [&c, &u] {
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
        }
        let id = *next_id;
        *next_id += 1;
        let p = Pair {
            s: [c, u],
            pend: [Vec::new(), Vec::new()],
            eof: [false; 2],
            reg: [0; 2],
        };
        for side in 0..2 {
            epoll_ctl(
                ep,
                libc::EPOLL_CTL_ADD,
                p.s[side].as_raw_fd(),
                0,
                id << 1 | side as u64,
            )?;
        }
        let mut p = p;
        update(ep, id, &mut p)?;
        pairs.insert(id, p);
    }
}

/// Handles readiness on side `side`. Returns false when the pair must be closed.
fn service(p: &mut Pair, side: usize, ev: u32, buf: &mut [u8]) -> bool {
    let peer = 1 - side;
    if ev & libc::EPOLLOUT as u32 != 0 && !p.pend[side].is_empty() {
        match (&p.s[side]).write(&p.pend[side]) {
            Ok(n) => {
                p.pend[side].drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        if p.pend[side].is_empty() && p.eof[peer] {
            let _ = p.s[side].shutdown(std::net::Shutdown::Write);
        }
    }
    if ev & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
        && p.pend[peer].is_empty()
        && !p.eof[side]
    {
        match (&p.s[side]).read(buf) {
            Ok(0) => {
                p.eof[side] = true;
                let _ = p.s[peer].shutdown(std::net::Shutdown::Write);
            }
            Ok(n) => match (&p.s[peer]).write(&buf[..n]) {
                Ok(w) if w == n => {}
                Ok(w) => p.pend[peer].extend_from_slice(&buf[w..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    p.pend[peer].extend_from_slice(&buf[..n])
                }
                Err(_) => return false,
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
    }
    true
}

/// Registers what each side needs: read when its peer has nothing pending, write when it has.
fn update(ep: i32, id: u64, p: &mut Pair) -> Result<(), String> {
    for side in 0..2 {
        let mut want = 0u32;
        if !p.eof[side] && p.pend[1 - side].is_empty() {
            want |= libc::EPOLLIN as u32;
        }
        if !p.pend[side].is_empty() {
            want |= libc::EPOLLOUT as u32;
        }
        if want != p.reg[side] {
            epoll_ctl(
                ep,
                libc::EPOLL_CTL_MOD,
                p.s[side].as_raw_fd(),
                want,
                id << 1 | side as u64,
            )?;
            p.reg[side] = want;
        }
    }
    Ok(())
}
