//! `bind` lines: address resolution (`*:80`, `:80`, `[::]:80`, `ipv4@`, `ipv6@`, port ranges,
//! UNIX sockets) and the bind option table (TLS options are kept typed for issue #8).
//!
//! Owns: [`parse_bind`], [`parse_addr_list`], [`BIND_OPTIONS`], certificate file checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::model::{Bind, BindSsl, Verify};
use crate::registry::{nearest, Status};
use crate::source::Line;
use crate::units::parse_u32;

use super::global::apply_ssl_opt;
use super::proxy::{KwCx, ProxyDraft};
use super::{TlsBases, R};

/// One registered bind option.
pub type BindOpt = super::LineOpt;

use super::LineOpt as O;

const fn o(name: &'static str, value: bool, status: Status, doc: &'static str) -> BindOpt {
    O::new(name, value, status, doc)
}

const S: Status = Status::Supported;
/// Options HAProxy documents for stats sockets only and ignores on a proxy's `bind`.
const STATS_ONLY: Status = Status::Accepted {
    why: "only a 'stats socket' line uses it (supported there); haproxy ignores it on a proxy's bind too",
};
const NO: Status = Status::Unsupported;

/// Bind options ringlb knows.
pub static BIND_OPTIONS: &[BindOpt] = &[
    o("name", true, S, "listener name"),
    o("maxconn", true, S, "listener connection limit"),
    o("backlog", true, S, "listen backlog"),
    o(
        "accept-proxy",
        false,
        S,
        "expect a PROXY protocol header (v1 or v2) naming the client",
    ),
    o("v4v6", false, S, "accept IPv4 on an IPv6 socket"),
    o("v6only", false, S, "IPv6 only"),
    o("transparent", false, NO, "transparent proxying"),
    o("defer-accept", false, S, "TCP_DEFER_ACCEPT"),
    o("tfo", false, S, "TCP fast open"),
    o("interface", true, S, "bind to an interface"),
    o(
        "thread",
        true,
        S,
        "threads (shards) that accept on this listener",
    ),
    o("process", true, S, "1/<threads> (legacy; one process)"),
    o("id", true, S, "listener id (stats sock-N rows)"),
    o(
        "nice",
        true,
        Status::Accepted {
            why: "a shard runs all its connections in one task queue; there is no per-listener priority to lower",
        },
        "listener priority",
    ),
    o("mss", true, S, "TCP MSS"),
    o("tcp-ut", true, S, "TCP user timeout"),
    o(
        "proto",
        true,
        S,
        "force a mux protocol (h2: HTTP/2 without ALPN, h2c prior knowledge)",
    ),
    o(
        "mode",
        true,
        S,
        "UNIX socket permissions (octal; unix-bind mode by default)",
    ),
    o("user", true, S, "UNIX socket owner (name)"),
    o("group", true, S, "UNIX socket group (name)"),
    o("uid", true, S, "UNIX socket owner (number)"),
    o("gid", true, S, "UNIX socket group (number)"),
    o(
        "level",
        true,
        STATS_ONLY,
        "runtime API level (stats socket lines: supported)",
    ),
    o(
        "expose-fd",
        true,
        STATS_ONLY,
        "runtime API fd passing for seamless reloads (stats socket lines: supported)",
    ),
    o(
        "severity-output",
        true,
        STATS_ONLY,
        "runtime API severity (stats socket lines: supported)",
    ),
    o("namespace", true, NO, "network namespace"),
    o("ssl", false, S, "TLS on this listener"),
    o("crt", true, S, "certificate PEM file or directory"),
    o("crt-list", true, S, "certificate list file"),
    o("ca-file", true, S, "CA for client certificates"),
    o("crl-file", true, S, "CRL for client certificates"),
    o("verify", true, S, "client certificate verification"),
    o("alpn", true, S, "ALPN protocols"),
    o(
        "npn",
        true,
        Status::Accepted {
            why: "NPN is obsolete and rustls has none; ALPN (alpn) is used",
        },
        "NPN protocols",
    ),
    o("ciphers", true, S, "TLS<=1.2 ciphers"),
    o("ciphersuites", true, S, "TLS1.3 suites"),
    o("curves", true, S, "ECDH curves"),
    o("sigalgs", true, S, "handshake signature algorithms (haproxy 2.8 keyword)"),
    o("client-sigalgs", true, S, "client certificate signature algorithms (haproxy 2.8 keyword)"),
    o("ecdhe", true, S, "ECDH curve"),
    o("strict-sni", false, S, "refuse unknown SNI"),
    o("ssl-min-ver", true, S, "minimum TLS version"),
    o("ssl-max-ver", true, S, "maximum TLS version"),
    o("no-tls-tickets", false, S, "disable session tickets"),
    o(
        "tls-ticket-keys",
        true,
        S,
        "session ticket keys file (base64 48/80-byte keys, the last 3 in use; set ssl tls-key rotates)",
    ),
    o("no-sslv3", false, S, "disable SSLv3"),
    o("no-tlsv10", false, S, "disable TLSv1.0"),
    o("no-tlsv11", false, S, "disable TLSv1.1"),
    o("no-tlsv12", false, S, "disable TLSv1.2"),
    o("no-tlsv13", false, S, "disable TLSv1.3"),
    o(
        "force-sslv3",
        false,
        S,
        "only SSLv3 (refused: rustls has no SSLv3)",
    ),
    o(
        "force-tlsv10",
        false,
        S,
        "only TLSv1.0 (refused: rustls has no TLSv1.0)",
    ),
    o(
        "force-tlsv11",
        false,
        S,
        "only TLSv1.1 (refused: rustls has no TLSv1.1)",
    ),
    o("force-tlsv12", false, S, "only TLSv1.2"),
    o("force-tlsv13", false, S, "only TLSv1.3"),
    o("prefer-client-ciphers", false, S, "client cipher order"),
    o(
        "allow-0rtt",
        false,
        Status::Accepted {
            why: "ringlb accepts no TLS early data (replayable requests): clients send it again after the handshake",
        },
        "accept early data",
    ),
    o("no-ca-names", false, S, "no CA names in CertificateRequest"),
    o("ca-ignore-err", true, S, "ignore CA verify errors"),
    o("crt-ignore-err", true, S, "ignore cert verify errors"),
    o(
        "generate-certificates",
        false,
        NO,
        "on-the-fly certificates",
    ),
    o("ca-sign-file", true, NO, "CA for generated certificates"),
    o("quic-cc-algo", true, NO, "QUIC congestion control"),
];

/// Parses one address word into socket addresses (or a UNIX path).
pub fn parse_addr(word: &str) -> Result<(Vec<SocketAddr>, Option<PathBuf>), String> {
    let (family, rest) = match word.split_once('@') {
        Some((f, r)) => (Some(f), r),
        None => (None, word),
    };
    match family {
        Some("unix") => return Ok((Vec::new(), Some(PathBuf::from(rest)))),
        Some("ipv4" | "ipv6" | "tcp" | "tcp4" | "tcp6") | None => {}
        Some(
            f @ ("abns" | "fd" | "sockpair" | "quic4" | "quic6" | "udp" | "udp4" | "udp6" | "uxst"
            | "uxdg"),
        ) => {
            return Err(format!(
                "address family '{f}@' is not supported by ringlb yet"
            ));
        }
        Some(f) => return Err(format!("unknown address family '{f}@' in '{word}'")),
    }
    if family.is_none() && rest.starts_with('/') {
        return Ok((Vec::new(), Some(PathBuf::from(rest))));
    }
    let (host, ports) =
        split_host_port(rest).ok_or_else(|| format!("missing port number: '{word}'"))?;
    let ip = host_ip(host, family).ok_or_else(|| format!("could not resolve address '{host}' (ringlb binds literal IP addresses, '*' or 'localhost')"))?;
    let (lo, hi) =
        port_range(ports).ok_or_else(|| format!("invalid port '{ports}' in '{word}'"))?;
    Ok(((lo..=hi).map(|p| SocketAddr::new(ip, p)).collect(), None))
}

/// Splits `host:port`, `[v6]:port`, `:port`; the last colon separates the port.
pub fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        return Some((h, p.strip_prefix(':')?));
    }
    let i = s.rfind(':')?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

fn host_ip(host: &str, family: Option<&str>) -> Option<IpAddr> {
    let v6 = matches!(family, Some("ipv6" | "tcp6"));
    match host {
        "" | "*" | "0.0.0.0" if !v6 => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "" | "*" | "::" => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        "localhost" => Some(if v6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }),
        h => h.parse().ok(),
    }
}

fn port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b) = (atoi_port(a)?, atoi_port(b)?);
    (a > 0 && a <= b).then_some((a, b))
}

/// Port as haproxy reads it (`atoi()`): leading digits, trailing characters ignored, no digits
/// meaning 0. `None` when out of range.
pub fn atoi_port(s: &str) -> Option<u16> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Some(0);
    }
    digits.parse::<u16>().ok()
}

/// Parses a comma-separated address list.
pub fn parse_addr_list(spec: &str) -> Result<(Vec<SocketAddr>, Option<PathBuf>), String> {
    let mut addrs = Vec::new();
    let mut unix = None;
    for w in spec.split(',') {
        let (a, u) = parse_addr(w)?;
        addrs.extend(a);
        unix = unix.or(u);
    }
    Ok((addrs, unix))
}

/// `bind <addr>[,<addr>...] [options]`.
pub fn parse_bind(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.len() < 2 {
        return Err(
            "'bind' expects {<path>|[addr1]:port1[-end1]}{,[addr]:port[-end]}... as arguments."
                .into(),
        );
    }
    let spec = l.arg(1).to_string();
    let (addrs, unix_path) = parse_addr_list(&spec)?;
    let mut b = Bind {
        loc: l.loc.clone(),
        spec,
        addrs,
        unix_path,
        name: None,
        maxconn: None,
        backlog: None,
        accept_proxy: false,
        v4v6: false,
        v6only: false,
        transparent: false,
        defer_accept: false,
        tfo: false,
        interface: None,
        thread: None,
        ssl: BindSsl::default(),
        other: Vec::new(),
    };
    let mut i = 2;
    while i < l.len() {
        let name = l.arg(i);
        let opt = BIND_OPTIONS
            .iter()
            .find(|o| o.name == name)
            .ok_or_else(|| {
                let hint = nearest(name, BIND_OPTIONS.iter().map(|o| o.name))
                    .map(|n| format!(" Did you mean '{n}' maybe ?"))
                    .unwrap_or_default();
                format!("unknown keyword '{name}'.{hint}")
            })?;
        if !k.cx.use_kw(&l.loc, &format!("bind {name}"), &opt.status) {
            return Err(format!(
                "HAProxy bind option '{name}' is not supported by ringlb yet"
            ));
        }
        let value = if opt.value {
            i += 1;
            if i >= l.len() {
                return Err(format!("'{name}' : missing value."));
            }
            Some(l.arg(i).to_string())
        } else {
            None
        };
        apply(&mut b, name, value, &k.cx.tls_bases)?;
        i += 1;
    }
    if b.ssl.enabled && b.ssl.crt.is_empty() && b.ssl.crt_list.is_empty() {
        return Err(format!("'bind {}' : no certificate specified for an ssl listener ('crt <file>' or 'crt-list').", b.spec));
    }
    p.binds.push(b);
    Ok(())
}

fn apply(b: &mut Bind, name: &str, value: Option<String>, bases: &TlsBases) -> R {
    let v = value.clone().unwrap_or_default();
    match name {
        "name" => b.name = value,
        "maxconn" => b.maxconn = Some(parse_u32(&v)?),
        "backlog" => b.backlog = Some(parse_u32(&v)?),
        "accept-proxy" => b.accept_proxy = true,
        "v4v6" => b.v4v6 = true,
        "v6only" => b.v6only = true,
        "transparent" => b.transparent = true,
        "defer-accept" => b.defer_accept = true,
        "tfo" => b.tfo = true,
        "interface" => b.interface = value,
        "thread" => b.thread = value,
        // One process (haproxy 2.6's nbproc is gone): `process 1/N` means thread N.
        "process" => match v.split_once('/') {
            Some((_, t)) => b.thread = Some(t.to_string()),
            None if matches!(v.as_str(), "1" | "all" | "odd") => b.thread = None,
            None => return Err(format!("'process {v}' : ringlb runs a single process (process 1); use 'thread' to choose threads.")),
        },
        "ssl" => b.ssl.enabled = true,
        "crt" => {
            check_crt(&v, bases)?;
            b.ssl.crt.push(v.into());
        }
        "crt-list" => {
            check_readable(&bases.crt(&v))?;
            b.ssl.crt_list.push(v.into());
        }
        "ca-file" => {
            check_pem(&bases.ca(&v), "CERTIFICATE")?;
            b.ssl.ca_file = Some(v.into());
        }
        "crl-file" => {
            check_readable(&bases.ca(&v))?;
            b.ssl.crl_file = Some(v.into());
        }
        "verify" => b.ssl.verify = Some(parse_verify(&v)?),
        "alpn" => b.ssl.alpn = v.split(',').map(str::to_string).collect(),
        "ciphers" => b.ssl.ciphers = value,
        "ciphersuites" => b.ssl.ciphersuites = value,
        "curves" | "ecdhe" => b.ssl.curves = value,
        "strict-sni" => b.ssl.strict_sni = true,
        "tls-ticket-keys" => {
            check_readable(Path::new(&v))?;
            b.ssl.ticket_keys = Some(v.into());
        }
        // `h1` is what an HTTP frontend speaks anyway; `h2` serves every connection as HTTP/2.
        "proto" if matches!(v.as_str(), "h1" | "h2") => b.other.push((name.to_string(), value)),
        "proto" => return Err(format!("'proto' :  unknown MUX protocol '{v}'")),
        "mode" => {
            super::global::parse_mode(&v)?;
            b.other.push((name.to_string(), value));
        }
        "uid" | "gid" => {
            parse_u32(&v)?;
            b.other.push((name.to_string(), value));
        }
        _ if is_ssl_flag(name) => apply_ssl_opt(&mut b.ssl.options, name, || value)?,
        _ => b.other.push((name.to_string(), value)),
    }
    Ok(())
}

fn is_ssl_flag(name: &str) -> bool {
    name.starts_with("ssl-m")
        || name.starts_with("no-")
        || name.starts_with("force-")
        || name == "prefer-client-ciphers"
        || name == "allow-0rtt"
}

/// `verify none|optional|required`.
pub fn parse_verify(v: &str) -> Result<Verify, String> {
    Ok(match v {
        "none" => Verify::None,
        "optional" => Verify::Optional,
        "required" => Verify::Required,
        _ => return Err(format!("'verify' : unknown verify method '{v}', only 'none', 'optional', and 'required' are supported.")),
    })
}

fn check_readable(path: &Path) -> R {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| format!("unable to load '{}' : {e}", path.display()))
}

/// Checks that `path` is a PEM file containing a `-----BEGIN <what>` block.
pub fn check_pem(path: &Path, what: &str) -> R {
    let data = super::read_bounded(path)
        .map_err(|e| format!("unable to load '{}' : {e}", path.display()))?;
    let text = String::from_utf8_lossy(&data);
    if !text.contains(&format!("-----BEGIN {what}"))
        && !text.contains("-----BEGIN TRUSTED CERTIFICATE")
    {
        return Err(format!(
            "unable to load '{}' : no {what} found in PEM file.",
            path.display()
        ));
    }
    Ok(())
}

/// A `crt` argument (under `crt-base`): a PEM file with certificate and key (or `<file>.key`,
/// under `key-base` when set), or a directory whose PEM files are each such a file.
/// ringlb-tls does the full check (key matches, chain parses) when it loads them.
pub fn check_crt(path: &str, bases: &TlsBases) -> R {
    let full = bases.crt(path);
    let p = full.as_path();
    if p.is_dir() {
        let rd = std::fs::read_dir(p)
            .map_err(|e| format!("unable to scan directory '{}' : {e}", p.display()))?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|f| f.is_file())
            .collect();
        files.retain(|f| {
            !f.extension().is_some_and(|x| {
                ["key", "ocsp", "issuer", "sctl"].contains(&x.to_str().unwrap_or(""))
            })
        });
        files.sort();
        return files.iter().try_for_each(|f| check_cert_and_key(f, bases));
    }
    check_cert_and_key(p, bases)
}

fn check_cert_and_key(p: &Path, bases: &TlsBases) -> R {
    check_pem(p, "CERTIFICATE")?;
    let has_key = super::read_bounded(p)
        .map(|d| String::from_utf8_lossy(&d).contains("PRIVATE KEY-----"))
        .unwrap_or(false);
    let key_name = format!(
        "{}.key",
        p.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    );
    let key_file = match &bases.key {
        Some(dir) => dir.join(key_name),
        None => p.with_file_name(key_name),
    };
    if !has_key && !key_file.exists() {
        return Err(format!(
            "unable to load SSL private key from PEM file '{}'.",
            p.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(s: &str) -> Vec<String> {
        parse_addr_list(s)
            .unwrap()
            .0
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn address_forms() {
        assert_eq!(addrs("*:80"), ["0.0.0.0:80"]);
        assert_eq!(addrs(":80"), ["0.0.0.0:80"]);
        assert_eq!(addrs("0.0.0.0:80"), ["0.0.0.0:80"]);
        assert_eq!(addrs("[::]:80"), ["[::]:80"]);
        assert_eq!(addrs(":::80"), ["[::]:80"]);
        assert_eq!(addrs("ipv4@127.0.0.1:8080"), ["127.0.0.1:8080"]);
        assert_eq!(addrs("ipv6@:80"), ["[::]:80"]);
        assert_eq!(
            addrs("127.0.0.1:80-82"),
            ["127.0.0.1:80", "127.0.0.1:81", "127.0.0.1:82"]
        );
        assert_eq!(addrs(":80,:443").len(), 2);
        assert_eq!(
            parse_addr("/run/x.sock").unwrap().1.unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert!(parse_addr("127.0.0.1")
            .unwrap_err()
            .contains("missing port"));
        assert!(parse_addr("127.0.0.1:0").is_err());
        assert!(parse_addr("127.0.0.1:82-80").is_err());
        assert!(parse_addr("abns@x").unwrap_err().contains("not supported"));
        assert!(parse_addr("nosuchhost.invalid:80")
            .unwrap_err()
            .contains("could not resolve"));
    }
}
