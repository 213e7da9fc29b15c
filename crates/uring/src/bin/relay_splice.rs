//! Byte relay on ringlb's io_uring driver with `IORING_OP_SPLICE`: each direction moves bytes
//! socket → pipe → socket through its own pipe, never through user space. Micro-benchmark
//! candidate against `relay-uring` (plain copy through provided buffers); see
//! `docs/adr/0002-tcp-splice.md`.

use std::rc::Rc;

use ringlb_uring::{bind_reuseport, rt, Pipe, Ring, TcpListener, TcpStream};

include!("common/relay_args.rs");
include!("common/ring_relay.rs");

/// Pipe size per direction (F_SETPIPE_SZ; 1 MiB is the default unprivileged maximum).
const PIPE_SIZE: usize = 1 << 20;

async fn pump(from: Rc<TcpStream>, to: Rc<TcpStream>, poll_first: bool) {
    let Ok(pipe) = Pipe::new(PIPE_SIZE) else {
        let _ = to.shutdown_write();
        return;
    };
    loop {
        if poll_first && from.readable().await.is_err() {
            break;
        }
        let Ok(n) = from.splice_to_pipe(&pipe, pipe.capacity()).await else {
            break;
        };
        if n == 0 {
            break;
        }
        let mut left = n;
        while left > 0 {
            match to.splice_from_pipe(&pipe, left).await {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown_write();
                    return;
                }
                Ok(m) => left -= m.min(left),
            }
        }
    }
    let _ = to.shutdown_write();
}

fn main() {
    // RELAY_SPLICE_POLL=1: wait for readability (POLL_ADD) before each socket → pipe splice, so
    // an idle direction parks no io-wq worker (the variant the engine would use).
    let poll_first = std::env::var_os("RELAY_SPLICE_POLL").is_some_and(|v| v == "1");
    serve_relay("relay-splice", 64, move |from, to| {
        pump(from, to, poll_first)
    });
}
