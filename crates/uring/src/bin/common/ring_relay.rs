// The relay skeleton shared by the binaries on ringlb's ring and run loop (included, not a
// module): parse the arguments, pin, make the ring, bind, and relay every accepted connection
// to a fresh upstream connection with `pump`, one task per direction.

/// Runs the relay named `name` with `bufs` provided receive buffers; never returns.
fn serve_relay<P, Fut>(name: &str, bufs: u16, pump: P)
where
    P: Fn(std::rc::Rc<TcpStream>, std::rc::Rc<TcpStream>) -> Fut + Copy + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let fail = |what: String| -> ! {
        eprintln!("{name}: {what}");
        std::process::exit(1);
    };
    let args = relay_args().unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        std::process::exit(2);
    });
    let (upstream, listen) = (args.upstream, args.listen);
    if let Err(e) = rt::pin_thread(&[args.cpu]) {
        fail(format!("pin to CPU {}: {e}", args.cpu));
    }
    let ring = Ring::new(1024, bufs, 16384).unwrap_or_else(|e| fail(format!("ring: {e}")));
    let fd = bind_reuseport(listen, 1024).unwrap_or_else(|e| fail(format!("bind {listen}: {e}")));
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
                let (c, s) = (std::rc::Rc::new(client), std::rc::Rc::new(server));
                let up = rt::spawn(pump(c.clone(), s.clone()));
                pump(s, c).await;
                up.await;
            })
            .detach();
        }
    });
    if let Err(e) = served {
        fail(format!("ring wait: {e}"));
    }
}
