//! `--mode echo-tcp`: echo every byte back; when the client shuts down its write side,
//! finish echoing what was received, then shut down ours.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

pub fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = stream.try_clone()?;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(buf.get(..n).unwrap_or(&[]))?;
    }
    out.shutdown(Shutdown::Write)
}
