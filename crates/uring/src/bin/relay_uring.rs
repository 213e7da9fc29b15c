//! Byte relay on ringlb's io_uring driver and shard run loop (`rt`): one upstream connection
//! per client connection, no HTTP parsing. Micro-benchmark candidate (bench/ scenario `relay`).

use std::rc::Rc;

use ringlb_uring::{bind_reuseport, rt, Ring, SendBuf, TcpListener, TcpStream};

include!("common/relay_args.rs");

async fn pump(from: Rc<TcpStream>, to: Rc<TcpStream>) {
    while let Ok(Some(buf)) = from.recv().await {
        let (r, _) = to.send_all(SendBuf::Recv(buf)).await;
        if r.is_err() {
            break;
        }
    }
    let _ = to.shutdown_write();
}

fn main() {
    let args = match relay_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relay-uring: {e}");
            std::process::exit(2);
        }
    };
    let upstream = args.upstream;
    let listen = args.listen;
    if let Err(e) = rt::pin_thread(&[args.cpu]) {
        eprintln!("relay-uring: pin to CPU {}: {e}", args.cpu);
        std::process::exit(1);
    }
    let ring = match Ring::new(1024, 1024, 16384) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay-uring: ring: {e}");
            std::process::exit(1);
        }
    };
    let fd = match bind_reuseport(listen, 1024) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("relay-uring: bind {listen}: {e}");
            std::process::exit(1);
        }
    };
    let listener = TcpListener::from_fd(&ring, fd);
    let r = ring.clone();
    let served = rt::block_on(&ring, async move {
        loop {
            let Ok(client) = listener.accept().await else {
                continue;
            };
            let ring = r.clone();
            rt::spawn(async move {
                let Ok(server) = TcpStream::connect(&ring, upstream).await else {
                    return;
                };
                let (c, s) = (Rc::new(client), Rc::new(server));
                let up = rt::spawn(pump(c.clone(), s.clone()));
                pump(s, c).await;
                up.await;
            })
            .detach();
        }
    });
    if let Err(e) = served {
        eprintln!("relay-uring: ring wait: {e}");
        std::process::exit(1);
    }
}
