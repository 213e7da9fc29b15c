//! Byte relay on ringlb's io_uring driver and shard run loop (`rt`): one upstream connection
//! per client connection, no HTTP parsing. Micro-benchmark candidate (bench/ scenario `relay`).

use std::rc::Rc;

use ringlb_uring::{bind_reuseport, rt, Ring, SendBuf, TcpListener, TcpStream};

include!("common/relay_args.rs");
include!("common/ring_relay.rs");

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
    serve_relay("relay-uring", 1024, pump);
}
