//! Seamless reload, HAProxy's way: the old process exposes its listening sockets on a runtime
//! socket with `expose-fd listeners`; the new one started with `-x <socket>` sends
//! `_getsocks`, receives every shard's SO_REUSEPORT socket of every bind (SCM_RIGHTS) and
//! accepts on them instead of binding new ones. The sockets are the same kernel objects, so
//! their accept queues survive the old process: no SYN is refused and no queued connection is
//! reset while the processes change (docs/adr/0005-seamless-reload.md).
//!
//! UNIX-socket binds travel the same way, as in haproxy: the new process accepts on the old
//! socket (still reachable at the bind's path) instead of binding a new one and renaming it
//! over the path, so no client queued on the old socket is reset when the old process exits.
//!
//! Owns: the registry of this process's listening sockets ([`expose`], [`exposed`]), the
//! pool of sockets received from the old process ([`set_inherited`], [`take_inherited`],
//! [`take_inherited_unix`]) and
//! haproxy 2.6's `_getsocks` wire format ([`send_sockets`], [`fetch`]). The transfer runs on
//! the control thread (sender) or before the shards start (receiver), never on a shard.
//!
//! Wire format (haproxy 2.6 `cli.c:_getsocks` / `sock.c:sock_get_old_sockets`): the client
//! sends `_getsocks\n`; the server sends the count as a native `int`, then batches of at most
//! [`MAX_SEND_FD`] descriptors, each batch one `sendmsg` whose data is, per descriptor,
//! `<ns_len:u8><ns><if_len:u8><if><4 zero bytes>`; the client answers every `recvmsg` with a
//! 4-byte ack, and the server waits for it after every full batch.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// haproxy's limit of descriptors per `sendmsg`.
pub const MAX_SEND_FD: usize = 253;

/// Longest namespace and interface names a block may carry (one length byte each).
const MAX_NAME: usize = 255;

/// A listening socket of this process, registered while its accept loop owns it.
struct Registered {
    id: u64,
    fd: RawFd,
    interface: Option<String>,
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static TRANSFERRED: AtomicBool = AtomicBool::new(false);

/// Keeps a listening socket in the registry; dropped by the accept loop before the socket is
/// closed, so a `_getsocks` never sends a descriptor number that was reused.
pub struct Exposed(u64);

impl Drop for Exposed {
    fn drop(&mut self) {
        let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|e| e.id != self.0);
    }
}

/// Registers `fd` (a listener that stays open while the guard lives).
pub fn expose(fd: RawFd, interface: Option<&str>) -> Exposed {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.push(Registered {
        id,
        fd,
        interface: interface.map(str::to_owned),
    });
    Exposed(id)
}

/// Duplicates of every registered listener (taken under the lock, so each is still open),
/// with its interface, ordered by registration. A socket registered more than once (a UNIX
/// bind, whose one socket every shard accepts on through its own descriptor) is sent once, as
/// haproxy sends one socket per listener.
pub fn exposed() -> Vec<(OwnedFd, Option<String>)> {
    let r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let mut seen: Vec<(libc::dev_t, libc::ino_t)> = Vec::with_capacity(r.len());
    r.iter()
        .filter_map(|e| {
            // SAFETY: the registered descriptor is open while its guard is registered, and we
            // hold the lock the guard takes before it lets the socket close.
            let fd = unsafe { libc::fcntl(e.fd, libc::F_DUPFD_CLOEXEC, 0) };
            // SAFETY: a successful F_DUPFD returns a new descriptor nobody else owns.
            let fd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })?;
            if let Some(id) = socket_identity(fd.as_raw_fd()) {
                if seen.contains(&id) {
                    return None;
                }
                seen.push(id);
            }
            Some((fd, e.interface.clone()))
        })
        .collect()
}

/// The kernel object behind a descriptor (device and inode, as `fstat` gives them): two
/// descriptors of one socket have the same.
fn socket_identity(fd: RawFd) -> Option<(libc::dev_t, libc::ino_t)> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open (the caller holds it) and st is a valid out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// Whether a `_getsocks` handed this process's listeners to a new process: a soft stop then
/// closes them without draining their queues (the new process accepts from the same ones).
pub fn transferred() -> bool {
    TRANSFERRED.load(Ordering::Relaxed)
}

/// A listening socket received from the old process, until a shard takes it.
#[derive(Debug)]
pub struct Inherited {
    pub fd: Option<OwnedFd>,
    pub addr: Option<SocketAddr>,
    /// The name a UNIX socket was bound to (haproxy and ringlb bind `<path>.<pid>.tmp`, then
    /// rename it over the path).
    pub unix: Option<PathBuf>,
    /// IPV6_V6ONLY as set on the socket (false for IPv4).
    pub v6only: bool,
    pub interface: Option<String>,
}

static INHERITED: Mutex<Vec<Inherited>> = Mutex::new(Vec::new());

/// Makes the sockets received by [`fetch`] available to the shards' first epoch.
pub fn set_inherited(list: Vec<Inherited>) {
    *INHERITED.lock().unwrap_or_else(|e| e.into_inner()) = list;
}

/// The received sockets shard `shard` (of `nshards`) serves for a TCP bind: the k-th socket
/// matching the bind (address, `v4v6`/`v6only`, `interface`, as haproxy matches them) goes to
/// shard k mod `nshards`, so every received socket is served even when the old process ran
/// more shards. Empty: bind a new socket.
pub fn take_inherited(
    addr: SocketAddr,
    opts: &ringlb_uring::ListenOpts,
    shard: usize,
    nshards: usize,
) -> Vec<OwnedFd> {
    let mut pool = INHERITED.lock().unwrap_or_else(|e| e.into_inner());
    let v6only = addr.is_ipv6() && opts.v6only.unwrap_or(true);
    let mut out = Vec::new();
    for (k, s) in pool
        .iter_mut()
        .filter(|s| s.addr == Some(addr) && s.v6only == v6only && s.interface == opts.interface)
        .enumerate()
    {
        if k % nshards.max(1) == shard {
            out.extend(s.fd.take());
        }
    }
    out
}

/// The received socket a UNIX bind on `path` serves (the first one bound to `path` or to a
/// temporary `<path>.<digits>.tmp`, haproxy's `sock_unix_addrcmp`). None: bind a new one.
pub fn take_inherited_unix(path: &Path) -> Option<OwnedFd> {
    let mut pool = INHERITED.lock().unwrap_or_else(|e| e.into_inner());
    pool.iter_mut()
        .filter(|s| {
            s.unix
                .as_deref()
                .is_some_and(|n| unix_name_matches(n, path))
        })
        .find_map(|s| s.fd.take())
}

/// Whether a UNIX socket bound to `name` is the one of a bind on `path`: the same path, or
/// the path with haproxy's and ringlb's temporary suffix `.<digits>.tmp` (the name the socket
/// was bound to before it was renamed into place).
pub fn unix_name_matches(name: &Path, path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (name, path) = (name.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    if name == path {
        return true;
    }
    let Some(rest) = name.strip_prefix(path) else {
        return false;
    };
    let Some(digits) = rest
        .strip_prefix(b".")
        .and_then(|r| r.strip_suffix(b".tmp"))
    else {
        return false;
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// Closes the received sockets no bind of the configuration took; returns how many TCP
/// listeners were among them (haproxy also sends its UNIX runtime sockets, which ringlb binds
/// anew, so UNIX sockets no bind took are closed without a word).
pub fn release_unused() -> usize {
    let mut pool = INHERITED.lock().unwrap_or_else(|e| e.into_inner());
    let n = pool
        .iter()
        .filter(|s| s.fd.is_some() && s.addr.is_some())
        .count();
    pool.clear();
    n
}

fn cvt(r: isize) -> std::io::Result<usize> {
    usize::try_from(r).map_err(|_| std::io::Error::last_os_error())
}

/// One batch's data block: per descriptor, no namespace, its interface, 4 zero bytes.
pub fn encode_block(interfaces: &[Option<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in interfaces {
        out.push(0);
        let name = i.as_deref().unwrap_or("").as_bytes();
        let name = name.get(..name.len().min(MAX_NAME)).unwrap_or(&[]);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&[0; 4]);
    }
    out
}

/// Parses `count` blocks: (namespace, interface) per descriptor.
pub fn decode_blocks(mut data: &[u8], count: usize) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::with_capacity(count);
    let name = |data: &mut &[u8]| -> Result<String, String> {
        let (&len, rest) = data.split_first().ok_or("truncated socket information")?;
        let (n, rest) = rest
            .split_at_checked(usize::from(len))
            .ok_or("truncated socket information")?;
        *data = rest;
        Ok(String::from_utf8_lossy(n).into_owned())
    };
    for _ in 0..count {
        let ns = name(&mut data)?;
        let iface = name(&mut data)?;
        data = data
            .get(4..)
            .ok_or("truncated socket information (options)")?;
        out.push((ns, iface));
    }
    Ok(out)
}

/// Bounds every blocking call of a transfer on `fd`.
fn set_timeouts(fd: RawFd, limit: Duration) {
    let tv = libc::timeval {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_usec: limit.subsec_micros() as libc::suseconds_t,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: tv is a valid timeval for the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
    }
}

/// Sends `data` with `fds` attached (SCM_RIGHTS) in one `sendmsg`.
fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer holds one header of CMSG_LEN(fd_bytes) bytes.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(std::io::Error::other("no room for SCM_RIGHTS"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), fd_bytes);
        cvt(libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL))
    }
}

fn send_all(sock: RawFd, data: &[u8]) -> std::io::Result<()> {
    let mut off = 0;
    while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
        // SAFETY: rest is a live buffer of rest.len() bytes.
        off +=
            cvt(unsafe { libc::send(sock, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) })?;
    }
    Ok(())
}

fn recv_exact(sock: RawFd, buf: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: buf is a live, writable buffer of buf.len() bytes.
    let n =
        cvt(unsafe { libc::recv(sock, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_WAITALL) })?;
    if n == buf.len() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed",
        ))
    }
}

/// The server side of `_getsocks` on the connected runtime socket `sock` (a `stats socket
/// ... expose-fd listeners`): sends every registered listener. Blocking, bounded by
/// `limit` per call; `sock`'s blocking mode is restored afterwards. Returns how many sockets
/// were sent.
pub fn send_sockets(sock: RawFd, limit: Duration) -> std::io::Result<usize> {
    // SAFETY: fcntl on a descriptor the caller owns.
    let flags = unsafe { libc::fcntl(sock, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    unsafe { libc::fcntl(sock, libc::F_SETFL, flags & !libc::O_NONBLOCK) };
    set_timeouts(sock, limit);
    let result = send_batches(sock);
    // SAFETY: as above.
    unsafe { libc::fcntl(sock, libc::F_SETFL, flags) };
    set_timeouts(sock, Duration::ZERO);
    if result.is_ok() {
        TRANSFERRED.store(true, Ordering::Relaxed);
    }
    result
}

fn send_batches(sock: RawFd) -> std::io::Result<usize> {
    let socks = exposed();
    let count = i32::try_from(socks.len()).unwrap_or(i32::MAX);
    send_all(sock, &count.to_ne_bytes())?;
    for batch in socks.chunks(MAX_SEND_FD) {
        let names: Vec<Option<String>> = batch.iter().map(|(_, i)| i.clone()).collect();
        let fds: Vec<RawFd> = batch.iter().map(|(f, _)| f.as_raw_fd()).collect();
        let data = encode_block(&names);
        if send_with_fds(sock, &data, &fds)? != data.len() {
            return Err(std::io::Error::other("short sendmsg"));
        }
        if batch.len() == MAX_SEND_FD {
            let mut ack = [0u8; 4];
            recv_exact(sock, &mut ack)?;
        }
    }
    Ok(socks.len())
}

/// The client side (`-x <socket>`): connects to the old process's runtime socket, asks for its
/// listeners and returns them with their addresses. Blocking, bounded by `limit` per call.
pub fn fetch(path: &std::path::Path, limit: Duration) -> Result<Vec<Inherited>, String> {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to '{}': {e}", path.display()))?;
    let sock = stream.as_raw_fd();
    set_timeouts(sock, limit);
    send_all(sock, b"_getsocks\n").map_err(|e| e.to_string())?;
    let mut count = [0u8; 4];
    recv_exact(sock, &mut count)
        .map_err(|e| format!("failed to get the number of sockets to be transferred: {e}"))?;
    let count = usize::try_from(i32::from_ne_bytes(count))
        .map_err(|_| "negative socket count".to_string())?;
    let mut fds: Vec<OwnedFd> = Vec::with_capacity(count);
    let mut data = Vec::new();
    while fds.len() < count {
        let got = recv_batch(sock, &mut data, &mut fds)?;
        if got == 0 {
            return Err(format!(
                "expected {count} sockets, got {} before the old process closed",
                fds.len()
            ));
        }
        // The ack lets the sender go on with its next batch. After the last one the sender
        // may have closed already: like haproxy, a failed ack is no error.
        let _ = send_all(sock, &i32::try_from(fds.len()).unwrap_or(0).to_ne_bytes());
        if fds.len() > count {
            return Err("got too many sockets".into());
        }
    }
    let names = decode_blocks(&data, count)?;
    Ok(fds
        .into_iter()
        .zip(names)
        .map(|(fd, (_ns, iface))| describe(fd, iface))
        .collect())
}

/// Receives one `sendmsg` worth: appends its data to `data` and its descriptors to `fds`.
/// Returns the bytes read (0: closed).
fn recv_batch(sock: RawFd, data: &mut Vec<u8>, fds: &mut Vec<OwnedFd>) -> Result<usize, String> {
    let mut buf = vec![0u8; MAX_SEND_FD * (1 + MAX_NAME + 1 + MAX_NAME + 4)];
    // SAFETY: pure size computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_SEND_FD * 4) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed msghdr is valid; the buffers outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg points at live buffers.
    let n = cvt(unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) })
        .map_err(|e| format!("receiving sockets: {e}"))?;
    // SAFETY: walking the control messages the kernel wrote into cbuf.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(cmsg);
                for i in 0..len / 4 {
                    let mut raw = [0u8; 4];
                    std::ptr::copy_nonoverlapping(p.add(i * 4), raw.as_mut_ptr(), 4);
                    fds.push(OwnedFd::from_raw_fd(i32::from_ne_bytes(raw)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    data.extend_from_slice(buf.get(..n).unwrap_or(&[]));
    Ok(n)
}

/// A received socket with what the shards match it on, read from the socket itself (as
/// haproxy 2.6 does: the options field of the wire format is always zero).
fn describe(fd: OwnedFd, iface: String) -> Inherited {
    let addr = ringlb_uring::local_addr_of(fd.as_raw_fd()).ok();
    let mut v6only = 0i32;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    if addr.is_some_and(|a| a.is_ipv6()) {
        // SAFETY: v6only and len are valid out-pointers.
        unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&mut v6only as *mut i32).cast(),
                &mut len,
            );
        }
    }
    let unix = if addr.is_none() {
        unix_name_of(fd.as_raw_fd())
    } else {
        None
    };
    Inherited {
        fd: Some(fd),
        addr,
        unix,
        v6only: v6only != 0,
        interface: (!iface.is_empty()).then_some(iface),
    }
}

/// The path a UNIX socket is bound to (None: not a UNIX socket, unnamed or abstract).
fn unix_name_of(fd: RawFd) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: a zeroed sockaddr_un is valid; getsockname fills at most `len` bytes.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: sa and len are live out-pointers for the call.
    let r = unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut len) };
    if r != 0 || i32::from(sa.sun_family) != libc::AF_UNIX {
        return None;
    }
    let bytes: Vec<u8> = sa
        .sun_path
        .iter()
        .map(|c| *c as u8)
        .take_while(|c| *c != 0)
        .collect();
    (!bytes.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let names = vec![None, Some("lo".to_string()), None];
        let data = encode_block(&names);
        // 1+0+1+0+4, 1+0+1+2+4, 1+0+1+0+4
        assert_eq!(data.len(), 6 + 8 + 6);
        assert_eq!(data.get(..6), Some(&[0u8, 0, 0, 0, 0, 0][..]));
        let back = decode_blocks(&data, 3).unwrap();
        assert_eq!(back[1], (String::new(), "lo".to_string()));
        assert_eq!(back[0], (String::new(), String::new()));
        assert!(decode_blocks(&data, 4).is_err());
        assert!(decode_blocks(&data[..7], 2).is_err());
    }

    #[test]
    fn listeners_travel_over_a_unix_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let guard = expose(l.as_raw_fd(), None);
        let dir = std::env::temp_dir().join(format!("ringlb-handoff-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let server = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (c, _) = server.accept().unwrap();
            let mut cmd = [0u8; 10];
            recv_exact(c.as_raw_fd(), &mut cmd).unwrap();
            assert_eq!(&cmd, b"_getsocks\n");
            send_sockets(c.as_raw_fd(), Duration::from_secs(5)).unwrap()
        });
        let got = fetch(&path, Duration::from_secs(5)).unwrap();
        assert!(t.join().unwrap() >= 1);
        let mine = got.iter().find(|i| i.addr == Some(addr)).unwrap();
        assert!(!mine.v6only && mine.interface.is_none());
        // The received socket is the same listener: a client connecting is accepted on it.
        let fd = mine.fd.as_ref().unwrap().try_clone().unwrap();
        let accepted = std::net::TcpListener::from(fd);
        let _c = std::net::TcpStream::connect(addr).unwrap();
        drop(l);
        drop(guard);
        assert!(accepted.accept().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unix_names_match_as_in_haproxy() {
        let p = Path::new("/run/lb/fe.sock");
        assert!(unix_name_matches(Path::new("/run/lb/fe.sock"), p));
        assert!(unix_name_matches(Path::new("/run/lb/fe.sock.1822.tmp"), p));
        assert!(!unix_name_matches(Path::new("/run/lb/fe.sock.tmp"), p));
        assert!(!unix_name_matches(Path::new("/run/lb/fe.sock.18a2.tmp"), p));
        assert!(!unix_name_matches(
            Path::new("/run/lb/fe.sock.1822.tmpx"),
            p
        ));
        assert!(!unix_name_matches(Path::new("/run/lb/fe.sock2"), p));
        assert!(!unix_name_matches(Path::new("/run/lb/fe.soc"), p));
    }

    #[test]
    fn a_unix_listener_travels_once_and_is_taken_by_its_path() {
        let dir = std::env::temp_dir().join(format!("ringlb-handoff-unix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fe = dir.join("fe.sock");
        // Bound under the temporary name and renamed, as ringlb and haproxy bind them.
        let tmp = dir.join("fe.sock.42.tmp");
        let l = std::os::unix::net::UnixListener::bind(&tmp).unwrap();
        std::fs::rename(&tmp, &fe).unwrap();
        // Two shards accept on two descriptors of the one socket: it is sent once.
        let dup = l.try_clone().unwrap();
        let g1 = expose(l.as_raw_fd(), None);
        let g2 = expose(dup.as_raw_fd(), None);
        let path = dir.join("admin.sock");
        let server = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (c, _) = server.accept().unwrap();
            let mut cmd = [0u8; 10];
            recv_exact(c.as_raw_fd(), &mut cmd).unwrap();
            send_sockets(c.as_raw_fd(), Duration::from_secs(5)).unwrap()
        });
        let got = fetch(&path, Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        let mine: Vec<&Inherited> = got
            .iter()
            .filter(|i| i.unix.as_deref() == Some(tmp.as_path()))
            .collect();
        assert_eq!(mine.len(), 1, "{got:?}");
        assert!(mine[0].addr.is_none());
        set_inherited(got);
        assert!(take_inherited_unix(&dir.join("other.sock")).is_none());
        let fd = take_inherited_unix(&fe).unwrap();
        assert!(take_inherited_unix(&fe).is_none(), "taken once");
        release_unused();
        // The received socket is the listener at the path.
        drop((g1, g2, l, dup));
        let accepted = std::os::unix::net::UnixListener::from(fd);
        let _c = std::os::unix::net::UnixStream::connect(&fe).unwrap();
        assert!(accepted.accept().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
