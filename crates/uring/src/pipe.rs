//! Pipes and `IORING_OP_SPLICE`, for moving socket bytes without copying them through user space.
//!
//! What the kernel does with it (see `docs/adr/0002-tcp-splice.md`): io_uring never runs a
//! splice inline; every `IORING_OP_SPLICE` is punted to an io-wq worker thread of this process,
//! which calls `splice(2)` in blocking context. So the pipe is a plain blocking pipe (a
//! non-blocking end would make the worker return `EAGAIN`, which io_uring does not retry for
//! splice), and the caller keeps its own count of the bytes in the pipe: never splice out of an
//! empty pipe or into a full one, or the worker sleeps until the other side moves.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use io_uring::{opcode, types::Fd};

use crate::driver::{Hold, Ring};
use crate::op::Op;

/// The two ends of a pipe, shared with the ring's slot table while a splice is in flight.
pub(crate) struct PipeFds {
    read: OwnedFd,
    write: OwnedFd,
}

/// A pipe for splicing. Cheap to clone; the descriptors close when the last clone and the last
/// splice in flight on it are gone.
#[derive(Clone)]
pub struct Pipe {
    fds: Rc<PipeFds>,
    capacity: usize,
}

impl Pipe {
    /// A blocking, close-on-exec pipe, resized to at least `capacity` bytes with `F_SETPIPE_SZ`
    /// when `capacity` is non-zero (the kernel rounds up to a power-of-two number of pages and
    /// caps unprivileged pipes at `/proc/sys/fs/pipe-max-size`).
    pub fn new(capacity: usize) -> io::Result<Pipe> {
        let mut fds = [-1 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are fresh descriptors we now own.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let size = if capacity > 0 {
            let want = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
            // SAFETY: plain fcntl on a descriptor we own.
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want) }
        } else {
            // SAFETY: plain fcntl on a descriptor we own.
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) }
        };
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe {
            fds: Rc::new(PipeFds { read, write }),
            capacity: size as usize,
        })
    }

    /// The pipe's capacity in bytes (what `F_SETPIPE_SZ` granted).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The read end (the source of a pipe → socket splice).
    pub fn read_fd(&self) -> RawFd {
        self.fds.read.as_raw_fd()
    }

    /// The write end (the destination of a socket → pipe splice).
    pub fn write_fd(&self) -> RawFd {
        self.fds.write.as_raw_fd()
    }
}

impl Ring {
    /// `splice(2)` of up to `len` bytes from `from` to `to` through the ring
    /// (`IORING_OP_SPLICE`, no offsets: both ends are streams). One of them must be an end of
    /// `pipe`, which the operation keeps open until its completion, even if this future is
    /// dropped. Returns the bytes moved; `Ok(0)` from a socket is end of stream.
    ///
    /// `flags` are `splice(2)`'s (`SPLICE_F_MOVE`, `SPLICE_F_MORE`, ...). The descriptor that is
    /// not the pipe must stay open until the future resolves (a `&TcpStream` borrowed by the
    /// caller does that; `TcpStream::splice_to_pipe`/`splice_from_pipe` wrap this).
    pub async fn splice(
        &self,
        from: RawFd,
        to: RawFd,
        len: usize,
        flags: u32,
        pipe: &Pipe,
    ) -> io::Result<usize> {
        let (r, w) = (pipe.read_fd(), pipe.write_fd());
        if from != r && to != w {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "splice needs the pipe's read end as source or its write end as destination",
            ));
        }
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let entry = opcode::Splice::new(Fd(from), -1, Fd(to), -1, len)
            .flags(flags)
            .build();
        let c = Op::submit(self, entry, Hold::Pipe(pipe.fds.clone())).await;
        if c.result < 0 {
            return Err(io::Error::from_raw_os_error(-c.result));
        }
        Ok(c.result as usize)
    }
}
