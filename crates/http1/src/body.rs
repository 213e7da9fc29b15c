//! Content-Length bodies: count the bytes that belong to the message.

/// Remaining bytes of a Content-Length body. The engine forwards `feed(n)` bytes and keeps the
/// rest (the next pipelined message) in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCounter {
    remaining: u64,
}

impl BodyCounter {
    /// A body of `len` bytes.
    pub fn new(len: u64) -> BodyCounter {
        BodyCounter { remaining: len }
    }

    /// `available` bytes arrived; returns how many of them belong to this body.
    pub fn feed(&mut self, available: usize) -> usize {
        let take = usize::try_from(self.remaining).map_or(available, |r| r.min(available));
        self.remaining -= take as u64;
        take
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_stops_at_the_boundary() {
        let mut c = BodyCounter::new(10);
        assert_eq!(c.feed(4), 4);
        assert_eq!(c.remaining(), 6);
        assert!(!c.is_done());
        assert_eq!(c.feed(100), 6);
        assert!(c.is_done());
        assert_eq!(c.feed(5), 0);
        let mut z = BodyCounter::new(0);
        assert!(z.is_done());
        assert_eq!(z.feed(3), 0);
        let mut big = BodyCounter::new(u64::MAX);
        assert_eq!(big.feed(usize::MAX), usize::MAX);
        assert_eq!(big.remaining(), u64::MAX - usize::MAX as u64);
    }
}
