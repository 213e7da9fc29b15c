//! Byte relay on ringlb's io_uring driver: one upstream connection per client connection, no
//! HTTP parsing. Micro-benchmark candidate (bench/ scenario `relay`).

use std::rc::Rc;

use glommio::{LocalExecutorBuilder, Placement};
use ringlb_uring::{bind_reuseport, Ring, SendBuf, TcpListener, TcpStream};

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
    let ex = LocalExecutorBuilder::new(Placement::Fixed(args.cpu))
        .name("relay")
        .spawn(move || async move {
            let ring = match Ring::new(1024, 1024, 16384) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("relay-uring: ring: {e}");
                    return;
                }
            };
            if let Err(e) = ring.spawn_driver() {
                eprintln!("relay-uring: driver: {e}");
                return;
            }
            let fd = match bind_reuseport(listen, 1024) {
                Ok(fd) => fd,
                Err(e) => {
                    eprintln!("relay-uring: bind {listen}: {e}");
                    return;
                }
            };
            let listener = TcpListener::from_fd(&ring, fd);
            loop {
                let Ok(client) = listener.accept().await else {
                    continue;
                };
                let ring = ring.clone();
                glommio::spawn_local(async move {
                    let Ok(server) = TcpStream::connect(&ring, upstream).await else {
                        return;
                    };
                    let (c, s) = (Rc::new(client), Rc::new(server));
                    let up = glommio::spawn_local(pump(c.clone(), s.clone()));
                    pump(s, c).await;
                    up.await;
                })
                .detach();
            }
        });
    match ex {
        Ok(h) => {
            let _ = h.join();
        }
        Err(e) => eprintln!("relay-uring: executor: {e}"),
    }
}
