//! Command line: `ringlb-origin --listen ADDR [--listen ADDR ...] --name NAME [options]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: ringlb-origin --listen ADDR [--listen ADDR ...] [--name NAME] [options]

  --listen ADDR            address to listen on, e.g. 127.0.0.1:9001 (repeatable, at least one)
  --name NAME              server name reported in X-Origin and bodies (default: origin)
  --mode http|echo-tcp     HTTP test endpoints (default) or raw TCP echo with half-close
  --max-conns N            concurrent connections, one thread each (default 1000)
  --idle-timeout-ms MS     close a connection idle this long (default 60000)
  --unhealthy-file PATH    while PATH exists, /health answers 503
  -v                       log one line per request to stderr
  -h, --help               this text

HTTP endpoints: / (hello), /echo, /status/N, /size/N, /chunked/N, /slow/MS, /slowbody/MS,
/close, /noresponse, /garbage, /reset, /headers/N, /health, /ws (WebSocket echo),
/grpc (chunked answer with grpc-status/grpc-message trailers);
POST/PUT elsewhere answer the body's length and FNV-1a 64 checksum.
";

/// What the origin serves on its listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Http,
    EchoTcp,
}

/// Parsed command line.
#[derive(Clone, Debug)]
pub struct Args {
    pub listen: Vec<SocketAddr>,
    pub name: String,
    pub mode: Mode,
    pub max_conns: usize,
    pub idle_timeout: Duration,
    pub unhealthy_file: Option<PathBuf>,
    pub verbose: bool,
}

/// Outcome of parsing: run, or print help and exit 0.
#[derive(Debug)]
pub enum Parsed {
    Run(Args),
    Help,
}

/// Parses `argv` without the program name.
pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Parsed, String> {
    let mut args = Args {
        listen: Vec::new(),
        name: "origin".to_owned(),
        mode: Mode::Http,
        max_conns: 1000,
        idle_timeout: Duration::from_millis(60_000),
        unhealthy_file: None,
        verbose: false,
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-v" | "--verbose" => args.verbose = true,
            "--listen" => {
                let v = value(&mut it, &flag)?;
                let addr = v
                    .parse()
                    .map_err(|e| format!("--listen {v}: not an address: {e}"))?;
                args.listen.push(addr);
            }
            "--name" => args.name = value(&mut it, &flag)?,
            "--mode" => {
                args.mode = match value(&mut it, &flag)?.as_str() {
                    "http" => Mode::Http,
                    "echo-tcp" => Mode::EchoTcp,
                    other => return Err(format!("--mode {other}: expected http or echo-tcp")),
                }
            }
            "--max-conns" => args.max_conns = number(&value(&mut it, &flag)?, &flag)?,
            "--idle-timeout-ms" => {
                let ms = number(&value(&mut it, &flag)?, &flag)?;
                args.idle_timeout = Duration::from_millis(ms as u64);
            }
            "--unhealthy-file" => args.unhealthy_file = Some(value(&mut it, &flag)?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.listen.is_empty() {
        return Err("at least one --listen ADDR is required".to_owned());
    }
    if args.max_conns == 0 || args.idle_timeout.is_zero() {
        return Err("--max-conns and --idle-timeout-ms must be positive".to_owned());
    }
    if args.name.bytes().any(|b| b.is_ascii_control()) {
        return Err("--name must not contain control characters".to_owned());
    }
    Ok(Parsed::Run(args))
}

fn value(it: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn number(v: &str, flag: &str) -> Result<usize, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v}: expected a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Parsed, String> {
        parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_every_flag() {
        let Parsed::Run(a) = p(&[
            "--listen",
            "127.0.0.1:1",
            "--listen",
            "127.0.0.1:2",
            "--name",
            "s1",
            "--mode",
            "echo-tcp",
            "--max-conns",
            "7",
            "--idle-timeout-ms",
            "500",
            "--unhealthy-file",
            "/tmp/x",
            "-v",
        ])
        .unwrap() else {
            panic!("expected Run")
        };
        assert_eq!(a.listen.len(), 2);
        assert_eq!(a.name, "s1");
        assert_eq!(a.mode, Mode::EchoTcp);
        assert_eq!(a.max_conns, 7);
        assert_eq!(a.idle_timeout, Duration::from_millis(500));
        assert_eq!(a.unhealthy_file, Some(PathBuf::from("/tmp/x")));
        assert!(a.verbose);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(p(&[]).is_err());
        assert!(p(&["--listen"]).is_err());
        assert!(p(&["--listen", "nope"]).is_err());
        assert!(p(&["--listen", "127.0.0.1:1", "--mode", "udp"]).is_err());
        assert!(p(&["--listen", "127.0.0.1:1", "--max-conns", "0"]).is_err());
        assert!(p(&["--listen", "127.0.0.1:1", "--bogus"]).is_err());
        assert!(matches!(p(&["--help"]), Ok(Parsed::Help)));
    }
}
