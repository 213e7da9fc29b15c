//! In-memory event rings (`ring` sections, `log ring@<name>`), read with `show events`.
//!
//! Owns: [`EventRing`]: framed lines kept in arrival order within a byte budget (`size`);
//! when a new line does not fit, the oldest lines make room, as in haproxy's ring buffers.

use std::collections::VecDeque;

/// haproxy's default ring size (`size`): one buffer (`BUFSIZE`, 16 kB).
pub const DEFAULT_RING_SIZE: usize = 16384;

/// The lines of one ring, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRing {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    size: usize,
    /// Lines that were longer than the whole ring (haproxy counts them as dropped).
    dropped: u64,
    /// Lines ever stored: the next line's sequence number (readers that follow the ring,
    /// `show events -w` and `server` forwarding, remember where they are with it).
    next_seq: u64,
}

impl EventRing {
    /// An empty ring holding at most `size` bytes of lines.
    pub fn new(size: usize) -> EventRing {
        EventRing {
            lines: VecDeque::new(),
            bytes: 0,
            size,
            dropped: 0,
            next_seq: 0,
        }
    }

    /// Appends `line` (a trailing `\n` is not stored), evicting the oldest lines to make
    /// room.
    pub fn push(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.len() > self.size {
            self.dropped += 1;
            return;
        }
        while self.bytes + line.len() > self.size {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
        }
        self.bytes += line.len();
        self.lines.push_back(line.to_vec());
        self.next_seq += 1;
        debug_assert!(self.bytes <= self.size);
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().map(Vec::as_slice)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The sequence number the next stored line will have (`-n`: start at the end).
    pub fn end_seq(&self) -> u64 {
        self.next_seq
    }

    /// Copies the lines from sequence number `from` on (lines evicted meanwhile are
    /// skipped) into `out`; returns the sequence number to ask for next time.
    pub fn lines_from(&self, from: u64, out: &mut Vec<Vec<u8>>) -> u64 {
        let first = self.next_seq - self.lines.len() as u64;
        let skip = from.saturating_sub(first) as usize;
        out.extend(self.lines.iter().skip(skip).cloned());
        self.next_seq
    }

    /// `show events <ring>`: every line followed by `\n`, then the blank line that ends a
    /// CLI answer.
    pub fn show(&self) -> String {
        let mut out = String::with_capacity(self.bytes + self.lines.len() + 1);
        for l in self.lines() {
            out.push_str(&String::from_utf8_lossy(l));
            out.push('\n');
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines_within_its_size() {
        let mut r = EventRing::new(10);
        r.push(b"aaaa\n");
        r.push(b"bbbb");
        assert_eq!(r.lines().collect::<Vec<_>>(), [b"aaaa", b"bbbb"]);
        r.push(b"cccc");
        assert_eq!(r.lines().collect::<Vec<_>>(), [b"bbbb", b"cccc"]);
        r.push(b"0123456789x");
        assert_eq!(r.dropped(), 1);
        assert_eq!(r.show(), "bbbb\ncccc\n\n");
        r.push(b"0123456789");
        assert_eq!(r.show(), "0123456789\n\n");
    }

    #[test]
    fn readers_follow_the_ring_by_sequence_number() {
        let mut r = EventRing::new(10);
        r.push(b"aaaa");
        let mut got = Vec::new();
        let next = r.lines_from(0, &mut got);
        assert_eq!((got.clone(), next), (vec![b"aaaa".to_vec()], 1));
        r.push(b"bbbb");
        r.push(b"cccc"); // evicts aaaa
        got.clear();
        assert_eq!(r.lines_from(next, &mut got), 3);
        assert_eq!(got, [b"bbbb".to_vec(), b"cccc".to_vec()]);
        // A reader left behind gets what is still there.
        got.clear();
        assert_eq!(r.lines_from(0, &mut got), 3);
        assert_eq!(got.len(), 2);
        got.clear();
        assert_eq!(r.lines_from(r.end_seq(), &mut got), 3);
        assert!(got.is_empty());
    }

    #[test]
    fn an_empty_ring_shows_a_blank_line() {
        // haproxy 2.6 answers `show events <empty ring>` with "\n".
        assert_eq!(EventRing::new(DEFAULT_RING_SIZE).show(), "\n");
    }
}
