//! Byte relay on glommio 0.9's stock `TcpStream` (readiness-based), the baseline the ADR measures
//! ringlb's driver against. Micro-benchmark candidate (bench/ scenario `relay`).

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

include!("common/relay_args.rs");

async fn pump(
    mut from: futures_lite::io::ReadHalf<TcpStream>,
    mut to: futures_lite::io::WriteHalf<TcpStream>,
) {
    let mut buf = vec![0u8; 16384];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Some(chunk) = buf.get(..n) else { break };
                if to.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.close().await;
}

fn main() {
    let args = match relay_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relay-glommio: {e}");
            std::process::exit(2);
        }
    };
    let upstream = args.upstream;
    let listen = args.listen;
    let ex = LocalExecutorBuilder::new(Placement::Fixed(args.cpu))
        .name("relay")
        .spawn(move || async move {
            let listener = match TcpListener::bind(listen) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("relay-glommio: bind {listen}: {e}");
                    return;
                }
            };
            loop {
                let Ok(client) = listener.accept().await else {
                    continue;
                };
                glommio::spawn_local(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = futures_lite::io::split(client);
                    let (sr, sw) = futures_lite::io::split(server);
                    let up = glommio::spawn_local(pump(cr, sw));
                    pump(sr, cw).await;
                    up.await;
                })
                .detach();
            }
        });
    match ex {
        Ok(h) => {
            let _ = h.join();
        }
        Err(e) => eprintln!("relay-glommio: executor: {e}"),
    }
}
