//! Splice through pipes (`IORING_OP_SPLICE`) against real loopback sockets on the shard run
//! loop (`rt`): 64 MiB socket → pipe → socket byte-exact, half-close in both directions, and
//! cancellation of a splice that waits for bytes.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::future;
use ringlb_uring::{bind_reuseport, rt, Pipe, Ring, TcpListener, TcpStream};

fn run<F, Fut>(dims: (u32, u16, usize), f: F)
where
    F: FnOnce(Ring) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    std::thread::spawn(move || {
        let ring = Ring::new(dims.0, dims.1, dims.2).expect("ring");
        rt::block_on(&ring, f(ring.clone())).expect("run loop");
    })
    .join()
    .expect("join");
}

fn listener(ring: &Ring) -> (TcpListener, SocketAddr) {
    let fd = bind_reuseport("127.0.0.1:0".parse().unwrap(), 128).expect("bind");
    let l = TcpListener::from_fd(ring, fd);
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Byte `i` of the test stream: period 251 (prime), so a lost, repeated or reordered chunk of
/// any power-of-two size shows.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// Moves everything from `from` to `to` through `pipe` until end of stream, then half-closes
/// `to`. Returns the bytes moved.
async fn relay(from: &TcpStream, to: &TcpStream, pipe: &Pipe) -> u64 {
    let mut total = 0u64;
    loop {
        let n = from.splice_to_pipe(pipe, pipe.capacity()).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= pipe.capacity());
        let mut left = n;
        while left > 0 {
            let m = to.splice_from_pipe(pipe, left).await.unwrap();
            assert!(m > 0 && m <= left, "moved {m} of {left}");
            left -= m;
        }
        total += n as u64;
    }
    to.shutdown_write().unwrap();
    total
}

/// Polls until the ring has nothing in flight (the cancelled splice's completion was reaped).
async fn settle(ring: &Ring) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while ring.in_flight() > 0 {
        assert!(Instant::now() < deadline, "operations still in flight");
        rt::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn pipe_is_resized_and_rejects_a_splice_that_does_not_use_it() {
    run((16, 4, 1024), |ring| async move {
        let pipe = Pipe::new(256 * 1024).unwrap();
        assert!(pipe.capacity() >= 256 * 1024);
        let other = Pipe::new(0).unwrap();
        assert!(other.capacity() > 0);
        // Neither end belongs to `pipe`: refused before anything is submitted.
        let err = ring
            .splice(other.read_fd(), other.write_fd(), 10, 0, &pipe)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(ring.in_flight(), 0);
    });
}

#[test]
fn moves_64_mib_socket_to_pipe_to_socket_byte_exact() {
    const TOTAL: u64 = 64 << 20;
    run((64, 4, 4096), |ring| async move {
        let (l_in, addr_in) = listener(&ring);
        let (l_out, addr_out) = listener(&ring);
        let sender = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr_in).unwrap();
            let mut chunk = vec![0u8; 100_003]; // odd size: chunks straddle pipe boundaries
            let mut off = 0u64;
            while off < TOTAL {
                let n = (TOTAL - off).min(chunk.len() as u64) as usize;
                for (i, b) in chunk[..n].iter_mut().enumerate() {
                    *b = pattern(off + i as u64);
                }
                s.write_all(&chunk[..n]).unwrap();
                off += n as u64;
            }
            s.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let sink = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr_out).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut buf = vec![0u8; 65536];
            let mut off = 0u64;
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                for (i, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, pattern(off + i as u64), "byte {}", off + i as u64);
                }
                off += n as u64;
            }
            off
        });
        let from = l_in.accept().await.unwrap();
        let to = l_out.accept().await.unwrap();
        let pipe = Pipe::new(1 << 20).unwrap();
        let moved = relay(&from, &to, &pipe).await;
        assert_eq!(moved, TOTAL);
        sender.join().unwrap();
        assert_eq!(sink.join().unwrap(), TOTAL);
        assert_eq!(ring.in_flight(), 0);
    });
}

#[test]
fn half_close_is_forwarded_and_the_other_direction_keeps_working() {
    run((64, 4, 4096), |ring| async move {
        let (l_in, addr_in) = listener(&ring);
        let (l_out, addr_out) = listener(&ring);
        // Client: sends a request, half-closes, then reads the whole reply.
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr_in).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"request").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = Vec::new();
            s.read_to_end(&mut reply).unwrap();
            reply
        });
        // Server: reads until the client's FIN arrives through the relay, then answers.
        let server = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr_out).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).unwrap();
            s.write_all(b"reply to ").unwrap();
            s.write_all(&req).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            req
        });
        let c = l_in.accept().await.unwrap();
        let s = l_out.accept().await.unwrap();
        let (up_pipe, down_pipe) = (Pipe::new(0).unwrap(), Pipe::new(0).unwrap());
        let (up, down) = future::zip(relay(&c, &s, &up_pipe), relay(&s, &c, &down_pipe)).await;
        assert_eq!(up, 7);
        assert_eq!(down, 16);
        assert_eq!(server.join().unwrap(), b"request");
        assert_eq!(client.join().unwrap(), b"reply to request");
    });
}

#[test]
fn dropping_a_pending_splice_cancels_it_and_socket_and_pipe_stay_usable() {
    run((64, 4, 4096), |ring| async move {
        let (l, addr) = listener(&ring);
        let a = TcpStream::connect(&ring, addr).await.unwrap();
        let b = l.accept().await.unwrap();
        let pipe = Pipe::new(0).unwrap();
        // Nothing arrives: the splice waits (in an io-wq worker) until its future is dropped.
        let timed_out = future::or(async { Some(b.splice_to_pipe(&pipe, 4096).await) }, async {
            rt::sleep(Duration::from_millis(100)).await;
            None
        })
        .await;
        assert!(timed_out.is_none(), "splice completed without data");
        settle(&ring).await;
        // The same socket and pipe still work: nothing was lost or left in the pipe.
        let (r, _) = a
            .send_all(ringlb_uring::SendBuf::from_vec(b"after".to_vec()))
            .await;
        r.unwrap();
        let n = b.splice_to_pipe(&pipe, 4096).await.unwrap();
        assert_eq!(n, 5);
        let (l2, addr2) = listener(&ring);
        let c = TcpStream::connect(&ring, addr2).await.unwrap();
        let d = l2.accept().await.unwrap();
        assert_eq!(c.splice_from_pipe(&pipe, n).await.unwrap(), 5);
        let got = d.recv().await.unwrap().unwrap();
        assert_eq!(got.bytes(), b"after");
    });
}

#[test]
fn a_dropped_splice_keeps_its_pipe_open_until_the_completion() {
    run((64, 4, 4096), |ring| async move {
        let (l, addr) = listener(&ring);
        let _a = TcpStream::connect(&ring, addr).await.unwrap();
        let b = l.accept().await.unwrap();
        let pipe = Pipe::new(0).unwrap();
        let read_fd = pipe.read_fd();
        {
            let mut op = Box::pin(b.splice_to_pipe(&pipe, 4096));
            // Poll once so it is submitted, then drop both the future and our pipe handle.
            assert!(future::poll_once(op.as_mut()).await.is_none());
            rt::sleep(Duration::from_millis(20)).await;
            drop(op);
        }
        drop(pipe);
        // The orphaned slot still holds the pipe: its descriptor is open (no completion has
        // been reaped yet, the driver has not run since the drop).
        // SAFETY: fcntl on a descriptor number only queries it.
        let open = unsafe { libc::fcntl(read_fd, libc::F_GETFD) };
        assert!(open >= 0, "pipe closed while the kernel may still use it");
        settle(&ring).await;
    });
}

#[test]
fn readable_waits_for_bytes_and_can_be_cancelled() {
    run((64, 4, 4096), |ring| async move {
        let (l, addr) = listener(&ring);
        let a = TcpStream::connect(&ring, addr).await.unwrap();
        let b = l.accept().await.unwrap();
        // Nothing sent: still waiting after 50 ms; dropping it cancels the poll.
        let waited = future::or(async { Some(b.readable().await) }, async {
            rt::sleep(Duration::from_millis(50)).await;
            None
        })
        .await;
        assert!(waited.is_none(), "readable without bytes");
        settle(&ring).await;
        let (r, _) = a
            .send_all(ringlb_uring::SendBuf::from_vec(b"x".to_vec()))
            .await;
        r.unwrap();
        b.readable().await.unwrap();
        let pipe = Pipe::new(0).unwrap();
        assert_eq!(b.splice_to_pipe(&pipe, 4096).await.unwrap(), 1);
        // End of stream also makes it readable, and the splice then returns 0.
        a.shutdown_write().unwrap();
        b.readable().await.unwrap();
        assert_eq!(b.splice_to_pipe(&pipe, 4096).await.unwrap(), 0);
    });
}
