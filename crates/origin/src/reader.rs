//! A bounded read buffer over a blocking `TcpStream`: request heads, lines and
//! streamed bodies. Memory per connection is `BUF_BYTES`, whatever the body size.

use std::io::{self, Read};
use std::net::TcpStream;

/// Read buffer size; also the largest request head accepted (larger → 431).
pub const BUF_BYTES: usize = 64 * 1024;

pub struct Reader {
    stream: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Reader {
    pub fn new(stream: TcpStream) -> Self {
        Reader {
            stream,
            buf: vec![0u8; BUF_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether the buffer holds `BUF_BYTES` unconsumed bytes (no room to read more).
    pub fn is_full(&self) -> bool {
        self.end - self.start == self.buf.len()
    }

    /// Reads more bytes from the socket; returns how many (0 = peer closed its side).
    /// Moves unconsumed bytes to the front first when the tail is full.
    pub fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(room) = self.buf.get_mut(self.end..) else {
            return Ok(0);
        };
        if room.is_empty() {
            return Ok(0);
        }
        let n = loop {
            match self.stream.read(room) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.end += n;
        Ok(n)
    }

    /// Reads one line ending in `\n` (at most `max` bytes), consumes it and returns it
    /// without its `\r\n` / `\n`.
    pub fn read_line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = self.buffered().iter().position(|&b| b == b'\n') {
                if pos > max {
                    return Err(invalid("line too long"));
                }
                let mut line = self.buffered().get(..pos).unwrap_or(&[]).to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.consume(pos + 1);
                return Ok(line);
            }
            if self.buffered().len() > max || self.is_full() {
                return Err(invalid("line too long"));
            }
            if self.fill()? == 0 {
                return Err(eof());
            }
        }
    }

    /// Streams exactly `n` bytes to `sink`, in slices of at most `BUF_BYTES`.
    pub fn stream_exact(
        &mut self,
        mut n: u64,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        while n > 0 {
            if self.buffered().is_empty() && self.fill()? == 0 {
                return Err(eof());
            }
            let take = self
                .buffered()
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            sink(self.buffered().get(..take).unwrap_or(&[]))?;
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }
}

pub fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

pub fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed mid-message")
}
