//! Provided-buffer ring (`IORING_REGISTER_PBUF_RING`): a per-shard pool of receive buffers that
//! the kernel picks from when bytes arrive, so idle connections hold no buffer.
//!
//! Memory: `count × size` bytes of arena, mapped once at shard start (the OS backs pages on
//! first touch, so untouched buffers cost nothing), plus 16 bytes of ring entry per buffer.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// The pool shared by a ring and the `RecvBuf`s it hands out.
pub(crate) struct BufRing {
    pub(crate) group: u16,
    entries_mask: u16,
    buf_size: usize,
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    arena: *mut u8,
    arena_len: usize,
    /// Local copy of the tail published to the kernel.
    tail: Cell<u16>,
    /// Buffers currently lent out to the program (for stats and leak checks).
    lent: Cell<u32>,
}

impl BufRing {
    /// Allocates `count` (a power of two ≤ 32768) buffers of `size` bytes. The caller registers
    /// `ring_addr()` with the kernel, then calls `fill()`.
    pub(crate) fn new(group: u16, count: u16, size: usize) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32768 || size == 0 || size > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad buffer ring geometry",
            ));
        }
        let ring_layout = Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let arena_len = usize::from(count) * size;
        // SAFETY: the layout has non-zero size (count ≥ 1).
        let ring = unsafe { alloc_zeroed(ring_layout) }.cast::<BufRingEntry>();
        if ring.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "buffer ring allocation",
            ));
        }
        // The arena is mapped, not allocated: pages are backed on first touch, so a pool sized
        // for the worst case costs memory only for the buffers actually used.
        // SAFETY: anonymous private mapping; checked for MAP_FAILED below.
        let arena = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                arena_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if arena == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            // SAFETY: allocated above with this layout.
            unsafe { dealloc(ring.cast(), ring_layout) };
            return Err(err);
        }
        let arena = arena.cast::<u8>();
        Ok(BufRing {
            group,
            entries_mask: count - 1,
            buf_size: size,
            ring,
            ring_layout,
            arena,
            arena_len,
            tail: Cell::new(0),
            lent: Cell::new(0),
        })
    }

    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring as u64
    }

    pub(crate) fn entries(&self) -> u16 {
        self.entries_mask.wrapping_add(1)
    }

    pub(crate) fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Hands every buffer to the kernel (once, after registration).
    pub(crate) fn fill(&self) {
        for bid in 0..self.entries() {
            self.push(bid);
        }
        self.publish();
    }

    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        let slot = usize::from(tail & self.entries_mask);
        // SAFETY: slot < entries, inside the ring allocation; only this thread writes entries and
        // the kernel reads an entry only after the tail store below publishes it.
        let entry = unsafe { &mut *self.ring.add(slot) };
        entry.set_addr(self.buf_ptr(bid) as u64);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail.set(tail.wrapping_add(1));
    }

    fn publish(&self) {
        // SAFETY: the tail lives inside the first entry of the ring allocation; the kernel reads
        // it concurrently, hence the atomic release store.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast_mut();
            (*tail.cast::<AtomicU16>()).store(self.tail.get(), Ordering::Release);
        }
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: bid < entries, so the offset is inside the arena allocation.
        unsafe { self.arena.add(usize::from(bid) * self.buf_size) }
    }

    /// Returns a buffer to the kernel.
    pub(crate) fn recycle(&self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    pub(crate) fn note_lent(&self) {
        self.lent.set(self.lent.get() + 1);
    }

    /// Buffers the program holds right now.
    pub(crate) fn lent(&self) -> u32 {
        self.lent.get()
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated/mapped in `new` with these sizes. Every RecvBuf holds an Rc to us,
        // so none is alive; the io_uring that registered the pool is closed before its Inner
        // drops this (the ring field is declared first).
        unsafe {
            dealloc(self.ring.cast(), self.ring_layout);
            libc::munmap(self.arena.cast(), self.arena_len);
        }
    }
}

/// Bytes received from a socket: either a buffer of the shard's provided-buffer ring (returned to
/// the kernel on drop) or a heap buffer (the fallback when the ring is empty). `start..end` is the
/// part not consumed yet.
pub struct RecvBuf {
    storage: Storage,
    start: usize,
    end: usize,
}

enum Storage {
    Ring { pool: Rc<BufRing>, bid: u16 },
    Heap(Vec<u8>),
}

impl RecvBuf {
    pub(crate) fn from_ring(pool: Rc<BufRing>, bid: u16, len: usize) -> RecvBuf {
        pool.note_lent();
        let end = len.min(pool.buf_size());
        RecvBuf {
            storage: Storage::Ring { pool, bid },
            start: 0,
            end,
        }
    }

    /// Wraps bytes the program assembled itself (a request head that arrived in pieces).
    pub fn from_vec(buf: Vec<u8>) -> RecvBuf {
        let end = buf.len();
        RecvBuf {
            storage: Storage::Heap(buf),
            start: 0,
            end,
        }
    }

    pub(crate) fn from_heap(buf: Vec<u8>, len: usize) -> RecvBuf {
        let end = len.min(buf.len());
        RecvBuf {
            storage: Storage::Heap(buf),
            start: 0,
            end,
        }
    }

    /// The unconsumed bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Ring { pool, bid } => {
                // SAFETY: the kernel wrote `end` bytes into this buffer and will not touch it again
                // until we recycle it in Drop; start ≤ end ≤ buf_size.
                unsafe {
                    std::slice::from_raw_parts(
                        pool.buf_ptr(*bid).add(self.start),
                        self.end - self.start,
                    )
                }
            }
            Storage::Heap(v) => v.get(self.start..self.end).unwrap_or(&[]),
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` more bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Splits off everything after the first `n` unconsumed bytes into a new heap buffer (a
    /// copy: used only when one read carries the end of one message and the start of the next).
    pub fn split_off(&mut self, n: usize) -> Option<RecvBuf> {
        let rest = self.bytes().get(n..)?.to_vec();
        self.truncate(n);
        if rest.is_empty() {
            None
        } else {
            Some(RecvBuf::from_vec(rest))
        }
    }

    /// Keeps only the first `n` unconsumed bytes (the rest belongs to something else).
    pub fn truncate(&mut self, n: usize) {
        self.end = (self.start + n).min(self.end);
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        if let Storage::Ring { pool, bid } = &self.storage {
            pool.lent.set(pool.lent.get().saturating_sub(1));
            pool.recycle(*bid);
        }
    }
}

/// Receive completions whose future was dropped (a timeout around a `recv`, a `select`):
/// kept, in order, for the socket's next receive instead of being lost. One per socket,
/// shared with the receives in flight (`Hold::Recv`), so a completion that arrives after its
/// future was dropped still finds it. Buffers still stashed when the last reference goes
/// return to the pool.
pub(crate) struct RecvStash {
    pool: Rc<BufRing>,
    /// `(result, flags)` of each kept completion, oldest first.
    done: std::cell::RefCell<std::collections::VecDeque<(i32, u32)>>,
}

impl RecvStash {
    pub(crate) fn new(pool: Rc<BufRing>) -> RecvStash {
        RecvStash {
            pool,
            done: std::cell::RefCell::new(std::collections::VecDeque::new()),
        }
    }

    /// Keeps a completion unless it only says the receive was cancelled.
    pub(crate) fn keep(&self, result: i32, flags: u32) {
        if result != -libc::ECANCELED {
            self.done.borrow_mut().push_back((result, flags));
        }
    }

    pub(crate) fn take(&self) -> Option<(i32, u32)> {
        self.done.borrow_mut().pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.done.borrow().is_empty()
    }
}

impl Drop for RecvStash {
    fn drop(&mut self) {
        for (_, flags) in self.done.get_mut().drain(..) {
            if let Some(bid) = io_uring::cqueue::buffer_select(flags) {
                self.pool.recycle(bid);
            }
        }
    }
}
