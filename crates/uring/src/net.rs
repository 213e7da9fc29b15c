//! TCP sockets whose data path is the shard's ring.

use std::cell::{Cell, RefCell};
use std::io;
use std::mem::{size_of, ManuallyDrop, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue, types::Fd};

use crate::bufring::RecvStash;
use crate::driver::{Hold, Ring};
use crate::op::{Op, SendBuf};
use crate::{Pipe, RecvBuf};

/// A socket address in the kernel's layout, boxed so its address is stable while lent.
pub(crate) struct AddrBuf {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
    /// An accept's output (the completion result is a new descriptor to close if orphaned).
    pub(crate) is_accept: bool,
}

impl AddrBuf {
    fn empty_for_accept() -> Box<AddrBuf> {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let storage = unsafe { MaybeUninit::<libc::sockaddr_storage>::zeroed().assume_init() };
        Box::new(AddrBuf {
            storage,
            len: size_of::<libc::sockaddr_storage>() as _,
            is_accept: true,
        })
    }

    fn from_std(addr: SocketAddr) -> Box<AddrBuf> {
        let mut b = AddrBuf::empty_for_accept();
        b.is_accept = false;
        let ptr = (&mut b.storage as *mut libc::sockaddr_storage).cast::<u8>();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
                unsafe { std::ptr::write(ptr.cast::<libc::sockaddr_in>(), sin) };
                b.len = size_of::<libc::sockaddr_in>() as _;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write(ptr.cast::<libc::sockaddr_in6>(), sin6) };
                b.len = size_of::<libc::sockaddr_in6>() as _;
            }
        }
        b
    }

    fn to_std(&self) -> Option<SocketAddr> {
        storage_to_std(&self.storage)
    }
}

fn storage_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let ptr = (storage as *const libc::sockaddr_storage).cast::<u8>();
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { std::ptr::read(ptr.cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { std::ptr::read(ptr.cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn new_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // Blocking sockets on purpose: io_uring then arms its own poll instead of failing with EAGAIN.
    // SAFETY: plain syscall.
    let fd = cvt(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int_opt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: value is a live c_int for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn set_keepalive(fd: RawFd, ka: KeepAlive) -> io::Result<()> {
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    if let Some(v) = ka.cnt {
        set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, v)?;
    }
    if let Some(v) = ka.idle_secs {
        set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, v)?;
    }
    if let Some(v) = ka.intvl_secs {
        set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, v)?;
    }
    Ok(())
}

/// Opens a listening socket with SO_REUSEPORT, so every shard can bind the same address and the
/// kernel spreads connections across them.
pub fn bind_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    bind_listener(
        addr,
        &ListenOpts {
            backlog,
            ..ListenOpts::default()
        },
    )
}

/// Socket options of a listener (HAProxy's bind options that map to one setsockopt each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenOpts {
    pub backlog: i32,
    /// IPV6_V6ONLY on an IPv6 listener: `None` keeps ringlb's default (IPv6 only, so `:::80`
    /// and `0.0.0.0:80` can both be bound); `v4v6` gives `Some(false)`.
    pub v6only: Option<bool>,
    /// TCP_DEFER_ACCEPT (`defer-accept`, `option tcp-smart-accept`): seconds to wait for data.
    pub defer_accept_secs: Option<i32>,
    /// TCP_FASTOPEN queue length (`tfo`).
    pub fastopen_queue: Option<i32>,
    /// SO_BINDTODEVICE (`interface`).
    pub interface: Option<String>,
    /// TCP_MAXSEG (`mss`), inherited by accepted sockets.
    pub mss: Option<i32>,
    /// TCP_USER_TIMEOUT in milliseconds (`tcp-ut`), inherited by accepted sockets.
    pub user_timeout_ms: Option<u32>,
}

/// Opens a listening socket with SO_REUSEPORT and `opts`.
pub fn bind_listener(addr: SocketAddr, opts: &ListenOpts) -> io::Result<OwnedFd> {
    let fd = new_socket(&addr)?;
    let raw = fd.as_raw_fd();
    set_int_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    set_int_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    if addr.is_ipv6() {
        let only = i32::from(opts.v6only.unwrap_or(true));
        set_int_opt(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, only)?;
    }
    if let Some(dev) = &opts.interface {
        // SAFETY: the name's bytes are live for the call; the kernel reads at most len bytes.
        cvt(unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr().cast(),
                dev.len() as libc::socklen_t,
            )
        })?;
    }
    apply_accept_opts(raw, opts)?;
    let backlog = opts.backlog;
    bind_to(raw, addr)?;
    // SAFETY: plain syscall.
    cvt(unsafe { libc::listen(raw, backlog) })?;
    Ok(fd)
}

/// The options of `opts` that apply to a listening socket at any time (`defer-accept`, `tfo`,
/// `mss`, `tcp-ut`) and its backlog (`listen` again on a listening socket only resizes its
/// queue): a socket received from the old process at a reload gets the new bind's options.
pub fn adopt_listener(fd: &OwnedFd, opts: &ListenOpts) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    apply_accept_opts(raw, opts)?;
    // SAFETY: plain syscall.
    cvt(unsafe { libc::listen(raw, opts.backlog) })?;
    Ok(())
}

fn apply_accept_opts(raw: RawFd, opts: &ListenOpts) -> io::Result<()> {
    if let Some(secs) = opts.defer_accept_secs {
        set_int_opt(raw, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)?;
    }
    if let Some(q) = opts.fastopen_queue {
        set_int_opt(raw, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, q)?;
    }
    if let Some(mss) = opts.mss {
        set_int_opt(raw, libc::IPPROTO_TCP, libc::TCP_MAXSEG, mss)?;
    }
    if let Some(ms) = opts.user_timeout_ms {
        set_int_opt(
            raw,
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            i32::try_from(ms).unwrap_or(i32::MAX),
        )?;
    }
    Ok(())
}

/// Two buffers sent with one `sendmsg` (a rewritten head and the body bytes that came with
/// it: one TCP segment instead of two, no copy). Boxed: the kernel reads `msg` and `iov`.
pub(crate) struct PairSend {
    first: SendBuf,
    second: SendBuf,
    iov: [libc::iovec; 2],
    msg: libc::msghdr,
}

/// Connections an accept took after its future was dropped (a drain timeout firing just as a
/// client arrived): kept for the listener's next `accept` instead of being closed, which would
/// reset a client the kernel had already connected. In-flight accepts hold a reference, so
/// `TcpListener::settle` can wait for the last one.
pub(crate) struct AcceptStash {
    done: std::cell::RefCell<std::collections::VecDeque<(OwnedFd, Option<SocketAddr>)>>,
}

impl AcceptStash {
    /// Keeps an accepted descriptor (`result` of a completed accept) and its peer.
    pub(crate) fn keep(&self, result: i32, addr: &AddrBuf) {
        if result >= 0 {
            // SAFETY: a successful accept returns a new descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            self.done.borrow_mut().push_back((fd, addr.to_std()));
        }
    }
}

/// A listening socket served by one shard's ring.
pub struct TcpListener {
    ring: Ring,
    stash: Rc<AcceptStash>,
    /// Closed through the ring on drop (see `Ring::close_fd`).
    fd: ManuallyDrop<OwnedFd>,
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.ring.close_fd(self.fd.as_raw_fd());
    }
}

impl TcpListener {
    pub fn from_fd(ring: &Ring, fd: OwnedFd) -> TcpListener {
        TcpListener {
            ring: ring.clone(),
            stash: Rc::new(AcceptStash {
                done: std::cell::RefCell::new(std::collections::VecDeque::new()),
            }),
            fd: ManuallyDrop::new(fd),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(self.fd.as_raw_fd())
    }

    /// Accepts one connection (TCP_NODELAY set, as HAProxy does for HTTP).
    pub async fn accept(&self) -> io::Result<TcpStream> {
        if let Some(stream) = self.take_stashed() {
            return Ok(stream);
        }
        let mut addr = AddrBuf::empty_for_accept();
        let sa = (&mut addr.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
        let len = &mut addr.len as *mut libc::socklen_t;
        let entry = opcode::Accept::new(Fd(self.fd.as_raw_fd()), sa, len)
            .flags(libc::SOCK_CLOEXEC)
            .build();
        let c = Op::submit(&self.ring, entry, Hold::Accept(addr, self.stash.clone())).await;
        if c.result < 0 {
            return Err(io::Error::from_raw_os_error(-c.result));
        }
        // SAFETY: a successful accept returns a new descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(c.result) };
        let peer = match c.hold {
            Hold::Accept(a, _) => a.to_std(),
            _ => None,
        };
        Ok(self.stream(fd, peer))
    }

    /// A connection an accept took after its future was dropped, if any (see `settle`).
    pub fn take_stashed(&self) -> Option<TcpStream> {
        let (fd, peer) = self.stash.done.borrow_mut().pop_front()?;
        Some(self.stream(fd, peer))
    }

    /// Waits (at most 50 ms) until no dropped accept of this listener is still in the kernel,
    /// so that a connection one of them took is in the stash: call before closing a listener
    /// whose accept was dropped (a soft stop's drain), then serve `take_stashed`.
    pub async fn settle(&self) {
        for _ in 0..50 {
            if Rc::strong_count(&self.stash) == 1 {
                return;
            }
            crate::rt::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    fn stream(&self, fd: OwnedFd, peer: Option<SocketAddr>) -> TcpStream {
        let _ = set_int_opt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        TcpStream {
            ring: self.ring.clone(),
            stash: Rc::new(RecvStash::new(self.ring.inner.pool.clone())),
            fd: ManuallyDrop::new(fd),
            peer,
            local: None,
            own_local: Cell::new(None),
            meter: RefCell::new(None),
        }
    }
}

/// The local address of a socket (`getsockname`).
pub fn local_addr_of(fd: RawFd) -> io::Result<SocketAddr> {
    local_addr(fd)
}

/// `bind(2)` of socket `raw` to `addr`.
fn bind_to(raw: RawFd, addr: SocketAddr) -> io::Result<()> {
    let sa = AddrBuf::from_std(addr);
    // SAFETY: sa holds a valid sockaddr of length sa.len.
    cvt(unsafe {
        libc::bind(
            raw,
            (&sa.storage as *const libc::sockaddr_storage).cast(),
            sa.len,
        )
    })?;
    Ok(())
}

fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: zeroed sockaddr_storage is valid; getsockname fills at most `len` bytes.
    let mut storage = unsafe { MaybeUninit::<libc::sockaddr_storage>::zeroed().assume_init() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are live for the call.
    cvt(unsafe {
        libc::getsockname(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    storage_to_std(&storage).ok_or_else(|| io::Error::other("unknown family"))
}

/// A connected TCP socket whose reads and writes go through the shard's ring.
pub struct TcpStream {
    ring: Ring,
    /// Receives whose future was dropped after their bytes arrived (one small allocation per
    /// connection, so that no timeout or `select` around `recv` can lose bytes).
    stash: Rc<RecvStash>,
    /// Closed through the ring on drop (see `Ring::close_fd`).
    fd: ManuallyDrop<OwnedFd>,
    peer: Option<SocketAddr>,
    /// The destination a PROXY header named (`speak_for`), else the socket's own.
    local: Option<SocketAddr>,
    /// The socket's own address once bound (a connected socket's never changes): fetches,
    /// rules and logs ask for it several times per request, and each ask was a getsockname.
    own_local: Cell<Option<SocketAddr>>,
    /// Where the bytes this socket moves are added up, if anywhere ([`TcpStream::meter`]).
    meter: RefCell<Option<Rc<IoMeter>>>,
}

/// Bytes received and sent by the sockets that share it (one shard's connections of a proxy:
/// haproxy's `h1_bytes_in`/`h1_bytes_out`). Plain cells: a meter never leaves its shard.
#[derive(Debug, Default)]
pub struct IoMeter {
    pub rx: Cell<u64>,
    pub tx: Cell<u64>,
}

impl IoMeter {
    #[inline]
    pub fn add_rx(&self, n: usize) {
        self.rx.set(self.rx.get() + n as u64);
    }

    #[inline]
    pub fn add_tx(&self, n: usize) {
        self.tx.set(self.tx.get() + n as u64);
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        // The OwnedFd is never dropped: the ring's CLOSE owns the descriptor now.
        self.ring.close_fd(self.fd.as_raw_fd());
    }
}

/// TCP keep-alive probes (`option clitcpka`/`srvtcpka` with `*tcpka-cnt|idle|intvl`);
/// `None` fields keep the system's values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepAlive {
    pub cnt: Option<i32>,
    pub idle_secs: Option<i32>,
    pub intvl_secs: Option<i32>,
}

/// Options of a connection to a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOpts {
    /// `source ADDR[:PORT]`: bind the socket before connecting (port 0: any).
    pub source: Option<SocketAddr>,
    pub keepalive: Option<KeepAlive>,
    /// `tfo`: TCP_FASTOPEN_CONNECT (the SYN leaves with the first bytes written).
    pub fastopen: bool,
    /// `option tcp-smart-connect`: TCP_QUICKACK off, so the request leaves with the ACK of the
    /// handshake.
    pub delay_ack: bool,
    /// `option nolinger`: SO_LINGER 0 (a close resets).
    pub nolinger: bool,
    /// `tune.rcvbuf.server` / `tune.sndbuf.server`: set before the handshake so that they
    /// count in the window scale.
    pub rcvbuf: Option<u32>,
    pub sndbuf: Option<u32>,
}

impl TcpStream {
    /// Connects to `addr` (TCP_NODELAY set).
    pub async fn connect(ring: &Ring, addr: SocketAddr) -> io::Result<TcpStream> {
        Self::connect_with(ring, addr, &ConnectOpts::default()).await
    }

    /// Connects to `addr` with `opts` (TCP_NODELAY set).
    pub async fn connect_with(
        ring: &Ring,
        addr: SocketAddr,
        opts: &ConnectOpts,
    ) -> io::Result<TcpStream> {
        let fd = new_socket(&addr)?;
        let raw = fd.as_raw_fd();
        let _ = set_int_opt(raw, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        if let Some(src) = opts.source {
            if src.port() == 0 {
                // Ports are picked at connect time, so many servers can share the address.
                let _ = set_int_opt(raw, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
            } else {
                set_int_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            }
            bind_to(raw, src)?;
        }
        if let Some(ka) = opts.keepalive {
            set_keepalive(raw, ka)?;
        }
        if opts.fastopen {
            set_int_opt(raw, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, 1)?;
        }
        if opts.delay_ack {
            let _ = set_int_opt(raw, libc::IPPROTO_TCP, libc::TCP_QUICKACK, 0);
        }
        for (opt, v) in [
            (libc::SO_RCVBUF, opts.rcvbuf),
            (libc::SO_SNDBUF, opts.sndbuf),
        ] {
            if let Some(v) = v.and_then(|v| libc::c_int::try_from(v).ok()) {
                let _ = set_int_opt(raw, libc::SOL_SOCKET, opt, v);
            }
        }
        // Owned by the stream from here: if this future is dropped mid-connect, the descriptor
        // is closed through the ring, after the queued connect.
        let stream = TcpStream {
            ring: ring.clone(),
            stash: Rc::new(RecvStash::new(ring.inner.pool.clone())),
            fd: ManuallyDrop::new(fd),
            peer: Some(addr),
            local: None,
            own_local: Cell::new(None),
            meter: RefCell::new(None),
        };
        if opts.nolinger {
            stream.set_linger_zero();
        }
        let sa = AddrBuf::from_std(addr);
        let entry = opcode::Connect::new(
            Fd(stream.fd.as_raw_fd()),
            (&sa.storage as *const libc::sockaddr_storage).cast(),
            sa.len,
        )
        .build();
        let c = Op::submit(ring, entry, Hold::Addr(sa)).await;
        if c.result < 0 {
            return Err(io::Error::from_raw_os_error(-c.result));
        }
        Ok(stream)
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.local {
            Some(a) => Ok(a),
            None => self.socket_local_addr(),
        }
    }

    /// The socket's own local address, even after [`TcpStream::speak_for`].
    pub fn socket_local_addr(&self) -> io::Result<SocketAddr> {
        if let Some(a) = self.own_local.get() {
            return Ok(a);
        }
        let a = local_addr(self.fd.as_raw_fd())?;
        // Port 0: not bound yet (a connect still to come); ask again next time.
        if a.port() != 0 {
            self.own_local.set(Some(a));
        }
        Ok(a)
    }

    /// `accept-proxy`: from now on the connection stands for the client a PROXY header named;
    /// `peer_addr`/`local_addr` give those addresses (fetches, logs, `send-proxy`).
    pub fn speak_for(&mut self, src: SocketAddr, dst: SocketAddr) {
        self.peer = Some(src);
        self.local = Some(dst);
    }

    /// Copies up to `buf.len()` pending bytes without consuming them (MSG_PEEK, never waits).
    /// `Ok(0)` is end of stream; nothing pending yet is `WouldBlock`.
    pub fn peek_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is live and writable for buf.len() bytes.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Consumes exactly `n` bytes a [`TcpStream::peek_now`] saw (they are already queued).
    pub fn discard_now(&self, n: usize) -> io::Result<()> {
        let mut scratch = vec![0u8; n];
        let mut got = 0;
        while got < n {
            // SAFETY: scratch is live and writable from got to n.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    scratch[got..].as_mut_ptr().cast(),
                    n - got,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            got += r as usize;
        }
        self.count_rx(n);
        Ok(())
    }

    /// The peer half-closed or reset (POLLRDHUP), checked without waiting.
    pub fn peer_closed_now(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: p is a live pollfd; timeout 0 never blocks.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// TCP keep-alive probes on this connection (`option clitcpka`).
    pub fn set_keepalive(&self, ka: KeepAlive) -> io::Result<()> {
        set_keepalive(self.fd.as_raw_fd(), ka)
    }

    /// The netfilter mark of the packets sent on this connection (`set-mark`; needs
    /// CAP_NET_ADMIN).
    pub fn set_mark(&self, mark: u32) -> io::Result<()> {
        set_int_opt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            mark as libc::c_int,
        )
    }

    /// The TOS byte (IPv4) or traffic class (IPv6) of the packets sent (`set-tos`).
    pub fn set_tos(&self, tos: u8) -> io::Result<()> {
        let v6 = self.local_addr().is_ok_and(|a| a.is_ipv6());
        let (level, name) = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
        } else {
            (libc::IPPROTO_IP, libc::IP_TOS)
        };
        set_int_opt(self.fd.as_raw_fd(), level, name, libc::c_int::from(tos))
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Adds the bytes this socket receives and sends from now on to `meter` (`None`: to none).
    pub fn meter(&self, meter: Option<Rc<IoMeter>>) {
        *self.meter.borrow_mut() = meter;
    }

    #[inline]
    fn count_rx(&self, n: usize) {
        if let Some(m) = &*self.meter.borrow() {
            m.add_rx(n);
        }
    }

    #[inline]
    fn count_tx(&self, n: usize) {
        if let Some(m) = &*self.meter.borrow() {
            m.add_tx(n);
        }
    }

    /// Receives whatever arrives next into a buffer the kernel picks from the shard's pool (so a
    /// connection waiting here holds no buffer). `Ok(None)` is end of stream.
    pub async fn recv(&self) -> io::Result<Option<RecvBuf>> {
        // Bytes a dropped receive left behind come first.
        if let Some((result, flags)) = self.stash.take() {
            return self.received(result, flags).await;
        }
        let pool = &self.ring.inner.pool;
        let entry = opcode::Recv::new(
            Fd(self.fd.as_raw_fd()),
            std::ptr::null_mut(),
            pool.buf_size() as u32,
        )
        .buf_group(pool.group)
        .build()
        .flags(squeue::Flags::BUFFER_SELECT);
        let c = Op::submit(&self.ring, entry, Hold::Recv(self.stash.clone())).await;
        if !self.stash.is_empty() {
            // An earlier, dropped receive completed while this one waited: its bytes are older.
            self.stash.keep(c.result, c.flags);
            if let Some((result, flags)) = self.stash.take() {
                return self.received(result, flags).await;
            }
        }
        self.received(c.result, c.flags).await
    }

    /// A receive's completion as what `recv` returns.
    async fn received(&self, result: i32, flags: u32) -> io::Result<Option<RecvBuf>> {
        let pool = self.ring.inner.pool.clone();
        if result == -libc::ENOBUFS {
            // Pool exhausted: fall back to a heap buffer for this read.
            return self.recv_heap(pool.buf_size()).await;
        }
        if result < 0 {
            return Err(io::Error::from_raw_os_error(-result));
        }
        let Some(bid) = cqueue::buffer_select(flags) else {
            return if result == 0 {
                Ok(None)
            } else {
                Err(io::Error::other("recv completed without a buffer"))
            };
        };
        let buf = RecvBuf::from_ring(pool, bid, result as usize);
        if result == 0 {
            return Ok(None);
        }
        self.count_rx(result as usize);
        Ok(Some(buf))
    }

    async fn recv_heap(&self, size: usize) -> io::Result<Option<RecvBuf>> {
        // Not zeroed: the kernel writes the bytes, and only those it wrote become the
        // vector's length (zeroing 16 KiB per receive was 2% of the CPU at 256 connections,
        // where the pool runs out).
        let mut buf: Vec<u8> = Vec::with_capacity(size);
        let entry =
            opcode::Recv::new(Fd(self.fd.as_raw_fd()), buf.as_mut_ptr(), size as u32).build();
        let c = Op::submit(&self.ring, entry, Hold::Vec(buf)).await;
        if c.result < 0 {
            return Err(io::Error::from_raw_os_error(-c.result));
        }
        if c.result == 0 {
            return Ok(None);
        }
        self.count_rx(c.result as usize);
        match c.hold {
            Hold::Vec(mut v) => {
                let len = (c.result as usize).min(v.capacity());
                // SAFETY: the receive completed with `len` bytes written by the kernel at the
                // start of this allocation (at most its capacity, the size it was given).
                unsafe { v.set_len(len) };
                Ok(Some(RecvBuf::from_heap(v, len)))
            }
            _ => Err(io::Error::other("recv lost its buffer")),
        }
    }

    /// Sends once; returns how many bytes went and the buffer (advanced past them).
    pub async fn send(&self, buf: SendBuf) -> (io::Result<usize>, SendBuf) {
        let rest = buf.remaining();
        let entry = opcode::Send::new(Fd(self.fd.as_raw_fd()), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        let c = Op::submit(&self.ring, entry, Hold::Send(buf)).await;
        let Hold::Send(mut buf) = c.hold else {
            return (
                Err(io::Error::other("send lost its buffer")),
                SendBuf::from_vec(Vec::new()),
            );
        };
        if c.result < 0 {
            return (Err(io::Error::from_raw_os_error(-c.result)), buf);
        }
        buf.advance(c.result as usize);
        self.count_tx(c.result as usize);
        (Ok(c.result as usize), buf)
    }

    /// Sends everything in `buf`.
    pub async fn send_all(&self, mut buf: SendBuf) -> (io::Result<()>, SendBuf) {
        while !buf.remaining().is_empty() {
            let (r, b) = self.send(buf).await;
            buf = b;
            match r {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Sends `first` then `second` as one stream write (`sendmsg` with two vectors), all of it.
    pub async fn send_pair(
        &self,
        first: SendBuf,
        second: SendBuf,
    ) -> (io::Result<()>, SendBuf, SendBuf) {
        let (mut first, mut second) = (first, second);
        while !first.remaining().is_empty() {
            if second.remaining().is_empty() {
                let (r, f) = self.send_all(first).await;
                return (r, f, second);
            }
            // SAFETY: msghdr is plain data; all-zero is valid before we fill it.
            let msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            let empty = libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            let mut pair = Box::new(PairSend {
                first,
                second,
                iov: [empty, empty],
                msg,
            });
            let (a, b) = (pair.first.remaining(), pair.second.remaining());
            pair.iov = [
                libc::iovec {
                    iov_base: a.as_ptr() as *mut libc::c_void,
                    iov_len: a.len(),
                },
                libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                },
            ];
            pair.msg.msg_iov = pair.iov.as_mut_ptr();
            pair.msg.msg_iovlen = 2;
            let entry =
                opcode::SendMsg::new(Fd(self.fd.as_raw_fd()), &pair.msg as *const libc::msghdr)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build();
            let c = Op::submit(&self.ring, entry, Hold::SendPair(pair)).await;
            let Hold::SendPair(pair) = c.hold else {
                let lost = || SendBuf::from_vec(Vec::new());
                return (
                    Err(io::Error::other("send lost its buffers")),
                    lost(),
                    lost(),
                );
            };
            let PairSend {
                first: f,
                second: s,
                ..
            } = *pair;
            (first, second) = (f, s);
            if c.result < 0 {
                return (Err(io::Error::from_raw_os_error(-c.result)), first, second);
            }
            if c.result == 0 {
                return (Err(io::ErrorKind::WriteZero.into()), first, second);
            }
            let n = c.result as usize;
            self.count_tx(n);
            let in_first = n.min(first.remaining().len());
            first.advance(in_first);
            second.advance(n - in_first);
        }
        let (r, s) = self.send_all(second).await;
        (r, first, s)
    }

    /// Waits until the socket is readable (bytes, end of stream or an error are pending), with
    /// a one-shot `IORING_OP_POLL_ADD`: holds no buffer and no kernel thread while waiting.
    /// Used before `splice_to_pipe` so an idle connection does not park an io-wq worker.
    pub async fn readable(&self) -> io::Result<()> {
        let entry = opcode::PollAdd::new(
            Fd(self.fd.as_raw_fd()),
            (libc::POLLIN | libc::POLLRDHUP) as u32,
        )
        .build();
        let c = Op::submit(&self.ring, entry, Hold::None).await;
        if c.result < 0 {
            return Err(io::Error::from_raw_os_error(-c.result));
        }
        Ok(())
    }

    /// Waits until the peer half-closes or resets the connection (`POLLRDHUP`, with
    /// `POLLHUP`/`POLLERR` always reported), whatever bytes are still unread: how a request
    /// waiting for a server learns that its client left (`option abortonclose`). One-shot
    /// `IORING_OP_POLL_ADD`, cancelled when dropped.
    pub async fn hangup(&self) -> io::Result<()> {
        let entry = opcode::PollAdd::new(Fd(self.fd.as_raw_fd()), libc::POLLRDHUP as u32).build();
        let c = Op::submit(&self.ring, entry, Hold::None).await;
        if c.result < 0 {
            return Err(io::Error::from_raw_os_error(-c.result));
        }
        Ok(())
    }

    /// Splices up to `len` bytes that arrived on this socket into `pipe` (socket → pipe).
    /// `Ok(0)` is end of stream. Blocks an io-wq worker until bytes arrive: see `Ring::splice`.
    pub async fn splice_to_pipe(&self, pipe: &Pipe, len: usize) -> io::Result<usize> {
        let n = self
            .ring
            .splice(self.fd.as_raw_fd(), pipe.write_fd(), len, 0, pipe)
            .await?;
        self.count_rx(n);
        Ok(n)
    }

    /// Splices up to `len` bytes from `pipe` into this socket (pipe → socket); may move fewer.
    /// Call it only while the pipe holds bytes: on an empty pipe the worker waits for a writer.
    pub async fn splice_from_pipe(&self, pipe: &Pipe, len: usize) -> io::Result<usize> {
        let n = self
            .ring
            .splice(
                pipe.read_fd(),
                self.fd.as_raw_fd(),
                len,
                libc::SPLICE_F_MOVE,
                pipe,
            )
            .await?;
        self.count_tx(n);
        Ok(n)
    }

    /// Half-closes the write side (FIN), keeping reads open.
    pub fn shutdown_write(&self) -> io::Result<()> {
        // SAFETY: plain syscall on a descriptor we own.
        cvt(unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_WR) }).map(drop)
    }

    /// Closes with a reset (SO_LINGER 0), as HAProxy does for aborted server connections.
    pub fn set_linger_zero(&self) {
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: l is live for the call.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&l as *const libc::linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            )
        };
    }
}
