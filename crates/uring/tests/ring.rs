//! The driver against real loopback sockets on the shard run loop (`rt`): data both ways,
//! cancellation by dropping a future, buffer-pool exhaustion, half-close.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use ringlb_uring::{bind_reuseport, rt, Ring, SendBuf, TcpListener, TcpStream};

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

fn listener(ring: &Ring) -> (TcpListener, std::net::SocketAddr) {
    let fd = bind_reuseport("127.0.0.1:0".parse().unwrap(), 128).expect("bind");
    let l = TcpListener::from_fd(ring, fd);
    let addr = l.local_addr().unwrap();
    (l, addr)
}

#[test]
fn accept_recv_send_roundtrip_with_std_client() {
    run((64, 16, 4096), |ring| async move {
        let (l, addr) = listener(&ring);
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            b
        });
        let conn = l.accept().await.unwrap();
        assert!(conn.peer_addr().is_some());
        let buf = conn.recv().await.unwrap().unwrap();
        assert_eq!(buf.bytes(), b"ping");
        let (r, _) = conn.send_all(SendBuf::from_vec(b"pong".to_vec())).await;
        r.unwrap();
        assert_eq!(&client.join().unwrap(), b"pong");
        // Eventually the buffer goes back to the pool.
        drop(buf);
        assert_eq!(ring.buffers_lent(), 0);
    });
}

#[test]
fn connect_and_forward_a_received_buffer_without_copy() {
    run((64, 16, 4096), |ring| async move {
        let (l, addr) = listener(&ring);
        let a = TcpStream::connect(&ring, addr).await.unwrap();
        let b = l.accept().await.unwrap();
        let (r, _) = a.send_all(SendBuf::from_vec(vec![42u8; 10_000])).await;
        r.unwrap();
        a.shutdown_write().unwrap();
        let mut total = 0;
        while let Some(buf) = b.recv().await.unwrap() {
            assert!(buf.bytes().iter().all(|x| *x == 42));
            total += buf.len();
            // Echo the received buffer itself back.
            let (r, _) = b.send_all(SendBuf::Recv(buf)).await;
            r.unwrap();
        }
        assert_eq!(total, 10_000);
        b.shutdown_write().unwrap();
        let mut back = 0;
        while let Some(buf) = a.recv().await.unwrap() {
            back += buf.len();
        }
        assert_eq!(back, 10_000);
    });
}

#[test]
fn dropping_a_pending_recv_cancels_it_and_the_socket_stays_usable() {
    run((64, 16, 4096), |ring| async move {
        let (l, addr) = listener(&ring);
        let a = TcpStream::connect(&ring, addr).await.unwrap();
        let b = l.accept().await.unwrap();
        // A receive that times out is dropped (cancelled).
        let timed_out = future::or(async { Some(b.recv().await) }, async {
            rt::sleep(Duration::from_millis(50)).await;
            None
        })
        .await;
        assert!(timed_out.is_none());
        // Give the cancellation's completion a moment to be reaped.
        rt::sleep(Duration::from_millis(20)).await;
        assert_eq!(ring.in_flight(), 0, "the cancelled receive completed");
        let (r, _) = a.send_all(SendBuf::from_vec(b"after".to_vec())).await;
        r.unwrap();
        let got = b.recv().await.unwrap().unwrap();
        assert_eq!(got.bytes(), b"after");
        assert_eq!(ring.buffers_lent(), 1);
    });
}

/// A receive whose bytes arrived but whose future was dropped before it saw them (a timeout
/// around `recv` firing at that moment): the bytes are not lost, the next receive gets them,
/// in order, and the pool gets every buffer back.
#[test]
fn bytes_of_a_dropped_completed_recv_go_to_the_next_recv() {
    run((64, 16, 4096), |ring| async move {
        let (l, addr) = listener(&ring);
        let a = TcpStream::connect(&ring, addr).await.unwrap();
        let b = l.accept().await.unwrap();
        {
            let recv = b.recv();
            futures_lite::pin!(recv);
            // Armed (submitted), not complete.
            assert!(future::poll_once(&mut recv).await.is_none());
            let (r, _) = a.send_all(SendBuf::from_vec(b"first".to_vec())).await;
            r.unwrap();
            // The completion is reaped into its slot; the future is dropped unpolled.
            rt::sleep(Duration::from_millis(30)).await;
            assert_eq!(ring.in_flight(), 0);
        }
        let (r, _) = a.send_all(SendBuf::from_vec(b"second".to_vec())).await;
        r.unwrap();
        let got = b.recv().await.unwrap().unwrap();
        assert_eq!(got.bytes(), b"first");
        drop(got);
        let got = b.recv().await.unwrap().unwrap();
        assert_eq!(got.bytes(), b"second");
        drop(got);
        assert_eq!(ring.buffers_lent(), 0);
        // A stash still holding bytes when the socket goes gives its buffer back too.
        {
            let recv = b.recv();
            futures_lite::pin!(recv);
            assert!(future::poll_once(&mut recv).await.is_none());
            let (r, _) = a.send_all(SendBuf::from_vec(b"left".to_vec())).await;
            r.unwrap();
            rt::sleep(Duration::from_millis(30)).await;
        }
        drop(b);
        rt::sleep(Duration::from_millis(10)).await;
        assert_eq!(ring.buffers_lent(), 0);
    });
}

/// An accept that took a client just as its future was dropped (a soft stop's drain timing
/// out): the connection is kept for the next accept (`settle` + `take_stashed`), not closed
/// (which would reset a client the kernel had connected).
#[test]
fn a_connection_taken_by_a_dropped_accept_is_kept() {
    run((64, 16, 4096), |ring| async move {
        let (l, addr) = listener(&ring);
        let client;
        {
            let accept = l.accept();
            futures_lite::pin!(accept);
            assert!(future::poll_once(&mut accept).await.is_none());
            client = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"hello").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut b = [0u8; 2];
                s.read_exact(&mut b).map(|()| b)
            });
            // The completion is reaped into its slot; the future is dropped without taking it.
            rt::sleep(Duration::from_millis(50)).await;
        }
        l.settle().await;
        let c = l.take_stashed().expect("the connection was kept");
        let got = c.recv().await.unwrap().unwrap();
        assert_eq!(got.bytes(), b"hello");
        let (r, _) = c.send_all(SendBuf::from_vec(b"ok".to_vec())).await;
        r.unwrap();
        assert_eq!(&client.join().unwrap().unwrap(), b"ok");
    });
}

#[test]
fn exhausted_buffer_pool_falls_back_to_heap_buffers() {
    run((64, 2, 1024), |ring| async move {
        // Two pool buffers, four connections holding received data at once.
        let (l, addr) = listener(&ring);
        let mut pairs = Vec::new();
        for _ in 0..4 {
            let a = TcpStream::connect(&ring, addr).await.unwrap();
            let b = l.accept().await.unwrap();
            let (r, _) = a.send_all(SendBuf::from_vec(b"data".to_vec())).await;
            r.unwrap();
            pairs.push((a, b));
        }
        let mut held = Vec::new();
        for (_, b) in &pairs {
            let buf = b.recv().await.unwrap().unwrap();
            assert_eq!(buf.bytes(), b"data");
            held.push(buf);
        }
        assert_eq!(
            ring.buffers_lent(),
            2,
            "two from the pool, two from the heap"
        );
        drop(held);
        assert_eq!(ring.buffers_lent(), 0);
    });
}

#[test]
fn many_concurrent_connections_echo() {
    run((256, 64, 2048), |ring| async move {
        let (l, addr) = listener(&ring);
        let l = Rc::new(l);
        let server = {
            let l = l.clone();
            rt::spawn(async move {
                for _ in 0..200 {
                    let c = l.accept().await.unwrap();
                    rt::spawn(async move {
                        while let Ok(Some(buf)) = c.recv().await {
                            let (r, _) = c.send_all(SendBuf::Recv(buf)).await;
                            if r.is_err() {
                                break;
                            }
                        }
                    })
                    .detach();
                }
            })
        };
        let mut clients = Vec::new();
        for i in 0..200u32 {
            let ring = ring.clone();
            clients.push(rt::spawn(async move {
                let c = TcpStream::connect(&ring, addr).await.unwrap();
                let msg = i.to_be_bytes().repeat(100);
                let (r, _) = c.send_all(SendBuf::from_vec(msg.clone())).await;
                r.unwrap();
                let mut got = Vec::new();
                while got.len() < msg.len() {
                    got.extend_from_slice(c.recv().await.unwrap().unwrap().bytes());
                }
                assert_eq!(got, msg);
            }));
        }
        for c in clients {
            c.await;
        }
        server.await;
    });
}

#[test]
fn out_fd_writes_datagrams_to_udp_and_unix_sockets_and_pipes() {
    run((64, 16, 4096), |ring| async move {
        // UDP: one write is one datagram.
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let out = ringlb_uring::OutFd::udp(&ring, rx.local_addr().unwrap()).unwrap();
        for line in [&b"<134>first\n"[..], b"<134>second\n"] {
            let (r, _) = out.write(SendBuf::from_vec(line.to_vec())).await;
            assert_eq!(r.unwrap(), line.len());
        }
        let mut b = [0u8; 64];
        let n = rx.recv(&mut b).unwrap();
        assert_eq!(&b[..n], b"<134>first\n");
        let n = rx.recv(&mut b).unwrap();
        assert_eq!(&b[..n], b"<134>second\n");
        // UNIX datagram socket (like /dev/log).
        let dir = std::env::temp_dir().join(format!("ringlb-outfd-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let urx = std::os::unix::net::UnixDatagram::bind(&dir).unwrap();
        urx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let uout = ringlb_uring::OutFd::unix(&ring, &dir).unwrap();
        let (r, _) = uout.write(SendBuf::from_vec(b"unix line\n".to_vec())).await;
        r.unwrap();
        let n = urx.recv(&mut b).unwrap();
        assert_eq!(&b[..n], b"unix line\n");
        let _ = std::fs::remove_file(&dir);
        // An inherited descriptor (a pipe standing in for stdout) is written and left open.
        let pipe = ringlb_uring::Pipe::new(4096).unwrap();
        {
            let w = ringlb_uring::OutFd::inherited(&ring, pipe.write_fd());
            let (r, _) = w.write(SendBuf::from_vec(b"to stdout\n".to_vec())).await;
            r.unwrap();
        }
        let mut rd = unsafe_file(pipe.read_fd());
        let mut got = [0u8; 10];
        rd.read_exact(&mut got).unwrap();
        std::mem::forget(rd); // the Pipe owns the descriptor
        assert_eq!(&got, b"to stdout\n");
    });
}

fn unsafe_file(fd: std::os::fd::RawFd) -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: the descriptor stays open (owned by the Pipe) and the File is forgotten, not closed.
    unsafe { std::fs::File::from_raw_fd(fd) }
}
