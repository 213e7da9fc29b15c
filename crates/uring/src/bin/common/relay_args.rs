// Shared argument parsing for the relay micro-benchmark binaries (included, not a module).
use std::net::SocketAddr;

pub struct RelayArgs {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    pub cpu: usize,
}

pub fn relay_args() -> Result<RelayArgs, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut cpu = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--listen" => listen = Some(v.parse().map_err(|e| format!("--listen: {e}"))?),
            "--upstream" => upstream = Some(v.parse().map_err(|e| format!("--upstream: {e}"))?),
            "--cpu" => cpu = v.parse().map_err(|e| format!("--cpu: {e}"))?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(RelayArgs {
        listen: listen.ok_or("--listen is required")?,
        upstream: upstream.ok_or("--upstream is required")?,
        cpu,
    })
}
