//! `ringlb-origin`: the small origin server behind the README demo, the integration tests
//! and the bench. Plain std: one blocking thread per connection, at most `--max-conns`.
//!
//! Owns: test endpoints (see `route.rs` and `--help`), WebSocket echo, TCP echo.
//! Must not: depend on an async runtime or on any ringlb crate (it is the thing ringlb
//! is tested against).

mod args;
mod body;
mod http;
mod reader;
mod request;
mod route;
mod tcp_echo;
mod ws;

use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use args::{Args, Mode, Parsed};

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ringlb-origin: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringlb-origin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    // Bind everything first so a bad address fails before anything is served.
    let mut listeners = Vec::new();
    for addr in &args.listen {
        let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = l.local_addr().map_err(|e| e.to_string())?;
        let mode = match args.mode {
            Mode::Http => "http",
            Mode::EchoTcp => "echo-tcp",
        };
        eprintln!("ringlb-origin {}: listening on {local} ({mode})", args.name);
        listeners.push(l);
    }
    let ctx = Arc::new(http::Ctx {
        name: args.name.clone(),
        unhealthy_file: args.unhealthy_file.clone(),
        verbose: args.verbose,
    });
    let active = Arc::new(AtomicUsize::new(0));
    let mut acceptors = Vec::new();
    for l in listeners {
        let (ctx, active, args) = (ctx.clone(), active.clone(), args.clone());
        let t = std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(&l, &args, &ctx, &active))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        acceptors.push(t);
    }
    for t in acceptors {
        let _ = t.join();
    }
    Err("all listeners stopped".to_owned())
}

/// Releases a connection slot when the connection's thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(l: &TcpListener, args: &Args, ctx: &Arc<http::Ctx>, active: &Arc<AtomicUsize>) {
    loop {
        // At the limit, leave new connections in the kernel's backlog until a slot frees.
        while active.load(Ordering::Acquire) >= args.max_conns {
            std::thread::sleep(Duration::from_millis(1));
        }
        let stream = match l.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                if args.verbose {
                    eprintln!("ringlb-origin {}: accept: {e}", args.name);
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(active.clone());
        let (ctx, mode, idle) = (ctx.clone(), args.mode, args.idle_timeout);
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _slot = slot;
                let _ = serve(stream, mode, idle, &ctx);
            });
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn serve(stream: TcpStream, mode: Mode, idle: Duration, ctx: &http::Ctx) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(idle))?;
    stream.set_write_timeout(Some(idle))?;
    match mode {
        Mode::Http => http::serve(stream, ctx),
        Mode::EchoTcp => tcp_echo::serve(stream),
    }
}
