//! `server` and `default-server` lines: address parsing and the server option table.
//!
//! Owns: [`parse_server`], [`parse_server_template`], [`parse_default_server`], [`SERVER_OPTIONS`].

use std::net::{IpAddr, SocketAddr};

use crate::model::{ProxyProtocol, Server, ServerParams};
use crate::registry::{nearest, Status};
use crate::source::Line;
use crate::units::{parse_port, parse_time, parse_u32};

use super::bind::{check_pem, parse_verify, split_host_port};
use super::global::apply_ssl_opt;
use super::proxy::{KwCx, ProxyDraft};
use super::R;

/// One registered server option.
pub type ServerOpt = super::LineOpt;

const fn o(name: &'static str, value: bool, status: Status, doc: &'static str) -> ServerOpt {
    super::LineOpt::new(name, value, status, doc)
}

const S: Status = Status::Supported;
/// DNS for servers (`resolvers` sections, crates/dns and crates/control/src/dns.rs).
const DNS: Status = Status::Supported;
const NO: Status = Status::Unsupported;

/// Server options ringlb knows.
pub static SERVER_OPTIONS: &[ServerOpt] = &[
    o("weight", true, S, "relative weight (default 1, 0-256)"),
    o("maxconn", true, S, "concurrent connections to this server"),
    o(
        "backup",
        false,
        S,
        "only used when all active servers are down",
    ),
    o("disabled", false, S, "start in maintenance"),
    o("enabled", false, S, "start enabled"),
    o("maxqueue", true, S, "queue limit for this server"),
    o(
        "minconn",
        true,
        S,
        "dynamic maxconn floor (with the backend's fullconn)",
    ),
    o("check", false, S, "enable health checks"),
    o("no-check", false, S, "disable health checks"),
    o("inter", true, S, "check interval"),
    o("fastinter", true, S, "check interval while changing state"),
    o("downinter", true, S, "check interval while down"),
    o("rise", true, S, "successes to mark up"),
    o("fall", true, S, "failures to mark down"),
    o("port", true, S, "health check port"),
    o("addr", true, S, "health check address"),
    o("check-ssl", false, S, "health checks over TLS"),
    o("check-sni", true, S, "SNI of TLS health checks"),
    o(
        "check-alpn",
        true,
        S,
        "ALPN of TLS health checks (h2, http/1.1)",
    ),
    o("check-proto", true, S, "protocol of HTTP health checks: h1 or h2 (fcgi is refused at start)"),
    o(
        "check-send-proxy",
        false,
        S,
        "PROXY header on health checks",
    ),
    o("agent-check", false, S, "enable agent checks"),
    o("agent-port", true, S, "agent port"),
    o("agent-inter", true, S, "agent interval"),
    o("agent-addr", true, S, "agent address"),
    o("agent-send", true, S, "string sent to the agent"),
    o("cookie", true, S, "persistence cookie value"),
    o("slowstart", true, S, "ramp-up time after coming back up"),
    o(
        "observe",
        true,
        S,
        "passive health: layer4|layer7 (with check)",
    ),
    o("on-error", true, S, "action on observed errors"),
    o(
        "on-marked-down",
        true,
        S,
        "shutdown-sessions: close the server's sessions when it goes down",
    ),
    o(
        "on-marked-up",
        true,
        S,
        "shutdown-backup-sessions: close backup sessions when it comes up",
    ),
    o("error-limit", true, S, "observed errors before action"),
    o("track", true, S, "follow another server's state"),
    o("redir", true, S, "302 to this prefix for GET/HEAD (HTTP/1)"),
    o("id", true, S, "numeric server id"),
    o(
        "resolvers",
        true,
        DNS,
        "resolve the name with a resolvers section",
    ),
    o("resolve-prefer", true, DNS, "ipv4|ipv6"),
    o("resolve-net", true, DNS, "preferred networks"),
    o("resolve-opts", true, DNS, "allow-dup-ip|prevent-dup-ip (ignore-weight: SRV weights only, no effect)"),
    o("init-addr", true, DNS, "start-up address: last (state file), libc, none, <ip>"),
    o("pool-max-conn", true, S, "idle connections kept"),
    o("pool-purge-delay", true, S, "idle connection purge delay"),
    o(
        "pool-low-conn",
        true,
        Status::Accepted {
            why: "idle server connections belong to one shard and are never taken from another shard, which is what this mark guards",
        },
        "idle connections low mark",
    ),
    o("max-reuse", true, S, "requests per server connection"),
    o("send-proxy", false, S, "send a PROXY v1 header"),
    o("send-proxy-v2", false, S, "send a PROXY v2 header"),
    o("send-proxy-v2-ssl", false, S, "PROXY v2 with TLS info"),
    o("send-proxy-v2-ssl-cn", false, S, "PROXY v2 with TLS CN"),
    o(
        "proxy-v2-options",
        true,
        S,
        "PROXY v2 TLVs: ssl, cert-cn, ssl-cipher, authority, crc32c (others refused at start)",
    ),
    o("source", true, S, "source address[:port] (no usesrc)"),
    o("tfo", false, S, "TCP fast open"),
    o("proto", true, S, "mux protocol towards the server (h1, h2)"),
    o("ssl", false, S, "TLS to this server"),
    o("no-ssl", false, S, "no TLS to this server"),
    o("verify", true, S, "server certificate verification"),
    o("verifyhost", true, S, "expected certificate name"),
    o("ca-file", true, S, "CA for server certificates"),
    o("crl-file", true, S, "CRL for server certificates"),
    o("crt", true, S, "client certificate"),
    o("sni", true, S, "SNI sample expression"),
    o("alpn", true, S, "ALPN protocols"),
    o("ciphers", true, S, "TLS<=1.2 ciphers"),
    o("ciphersuites", true, S, "TLS1.3 suites"),
    o("ssl-min-ver", true, S, "minimum TLS version"),
    o("ssl-max-ver", true, S, "maximum TLS version"),
    o("ssl-reuse", false, S, "TLS session resumption (the default)"),
    o("no-ssl-reuse", false, S, "no TLS session resumption"),
    o("no-tls-tickets", false, S, "no session tickets"),
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
    o(
        "allow-0rtt",
        false,
        Status::Accepted {
            why: "haproxy sends early data to a server only when the client sent some, and ringlb accepts none",
        },
        "send early data",
    ),
    o(
        "ws",
        true,
        S,
        "WebSocket protocol towards the server (auto, h1; h2 refused)",
    ),
    o("namespace", true, NO, "network namespace"),
    o("socks4", true, NO, "connect through SOCKS4"),
    o("usesrc", true, NO, "transparent source"),
    o("log-proto", true, NO, "log protocol for ring servers"),
];

/// `server <name> <addr>[:port] [options]`.
pub fn parse_server(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.len() < 3 {
        return Err("'server' expects <name> and <addr>[:<port>] as arguments.".to_string());
    }
    let name = l.arg(1).to_string();
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c)))
    {
        return Err(format!(
            "character '{c}' is not permitted in server name '{name}'."
        ));
    }
    if let Some(prev) = p.servers.iter().find(|s| s.name == name) {
        return Err(format!(
            "'server' : {} '{}' has the same server name '{name}' as declared at {}:{}.",
            p.kind.word(),
            p.name,
            prev.loc.file,
            prev.loc.line
        ));
    }
    let (host, addr, port, port_offset) = parse_server_addr(l.arg(2))?;
    let mut params = p.settings.default_server.clone();
    parse_options(k, l, 3, &mut params)?;
    p.servers.push(Server {
        name,
        loc: l.loc.clone(),
        host,
        addr,
        port,
        port_offset,
        params,
    });
    Ok(())
}

/// Most servers one `server-template` line may declare.
const MAX_TEMPLATE_SERVERS: u32 = 10_000;

/// `server-template <prefix> <num | first-last> <addr>[:<port>] [options]`: servers
/// `<prefix>1`..`<prefix><num>` (or `<prefix><first>`..`<prefix><last>`), all with the same
/// address and options. A name instead of an address needs DNS, which ringlb refuses at start.
pub fn parse_server_template(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.len() < 4 {
        return Err(
            "'server-template' expects <prefix> <nb | range> <addr>[:<port>] as arguments.".into(),
        );
    }
    let prefix = l.arg(1).to_string();
    let range = l.arg(2);
    let wrong = || format!("Wrong server-template number or range arg '{range}'.");
    let (first, last) = match range.split_once('-') {
        Some((a, b)) => (
            a.parse::<u32>().map_err(|_| wrong())?,
            b.parse::<u32>().map_err(|_| wrong())?,
        ),
        None => (1, range.parse::<u32>().map_err(|_| wrong())?),
    };
    if first == 0 || first > last || last - first >= MAX_TEMPLATE_SERVERS {
        return Err(wrong());
    }
    let (host, addr, port, port_offset) = parse_server_addr(l.arg(3))?;
    let mut params = p.settings.default_server.clone();
    parse_options(k, l, 4, &mut params)?;
    for i in first..=last {
        let name = format!("{prefix}{i}");
        if let Some(prev) = p.servers.iter().find(|s| s.name == name) {
            return Err(format!(
                "'server-template' : {} '{}' has the same server name '{name}' as declared at {}:{}.",
                p.kind.word(),
                p.name,
                prev.loc.file,
                prev.loc.line
            ));
        }
        p.servers.push(Server {
            name,
            loc: l.loc.clone(),
            host: host.clone(),
            addr,
            port,
            port_offset,
            params: params.clone(),
        });
    }
    Ok(())
}

/// `default-server [options]`.
pub fn parse_default_server(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let mut params = p.settings.default_server.clone();
    parse_options(k, l, 1, &mut params)?;
    p.settings.default_server = params;
    Ok(())
}

type Addr = (String, Option<SocketAddr>, Option<u16>, Option<i32>);

/// Parses `10.0.0.1:80`, `[::1]:80`, `db.local:5432`, `10.0.0.1` (no port), `1.2.3.4:+10`.
pub fn parse_server_addr(word: &str) -> Result<Addr, String> {
    let (family, rest) = match word.split_once('@') {
        Some(("ipv4" | "ipv6" | "tcp" | "tcp4" | "tcp6", r)) => (None, r),
        Some(("unix", r)) => return Ok((format!("unix@{r}"), None, None, None)),
        Some((f, _)) => {
            return Err(format!(
                "address family '{f}@' is not supported by ringlb yet in '{word}'"
            ))
        }
        None => (None::<&str>, word),
    };
    let _ = family;
    if rest.starts_with('/') {
        return Ok((rest.to_string(), None, None, None));
    }
    let bare_v6 = rest.parse::<IpAddr>().ok();
    let (host, port_s) = match (bare_v6, split_host_port(rest)) {
        (Some(ip), _) => (ip.to_string(), ""),
        (None, Some((h, p))) => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p,
        ),
        (None, None) => (rest.to_string(), ""),
    };
    if host.is_empty() {
        return Err(format!("invalid address: '{word}' (missing host)"));
    }
    let (port, offset) = match port_s.chars().next() {
        None => (None, None),
        Some('+' | '-') => (
            None,
            Some(
                port_s
                    .parse::<i32>()
                    .map_err(|_| format!("invalid port offset '{port_s}'"))?,
            ),
        ),
        // haproxy reads the port with atoi(): `0` (or no digits) means "the client's port".
        Some(_) => match super::bind::atoi_port(port_s) {
            Some(0) => (None, None),
            Some(p) => (Some(p), None),
            None => return Err(format!("invalid port '{port_s}'")),
        },
    };
    let addr = host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port.unwrap_or(0)));
    if addr.is_none()
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return Err(format!("invalid address: '{word}'"));
    }
    Ok((host, addr, port, offset))
}

fn parse_options(k: &mut KwCx<'_>, l: &Line, start: usize, s: &mut ServerParams) -> R {
    let mut i = start;
    while i < l.len() {
        let name = l.arg(i);
        let opt = SERVER_OPTIONS
            .iter()
            .find(|o| o.name == name)
            .ok_or_else(|| {
                let hint = nearest(name, SERVER_OPTIONS.iter().map(|o| o.name))
                    .map(|n| format!(" Did you mean '{n}' maybe ?"))
                    .unwrap_or_default();
                format!("unknown keyword '{name}'.{hint}")
            })?;
        if !k.cx.use_kw(&l.loc, &format!("server {name}"), &opt.status) {
            return Err(format!(
                "HAProxy server option '{name}' is not supported by ringlb yet"
            ));
        }
        let value = if opt.value {
            i += 1;
            if i >= l.len() {
                return Err(format!("'{name}' expects an argument."));
            }
            Some(l.arg(i).to_string())
        } else {
            None
        };
        apply(s, name, value, &k.cx.tls_bases).map_err(|e| format!("'{name}' : {e}"))?;
        i += 1;
    }
    Ok(())
}

/// `resolve-net`: `addr/len` or `addr/mask` (IPv4 or IPv6).
fn valid_net(n: &str) -> bool {
    let (a, len) = n.split_once('/').unwrap_or((n, ""));
    match a.parse::<std::net::IpAddr>() {
        Ok(ip) if len.is_empty() => ip.is_ipv4() || ip.is_ipv6(),
        Ok(ip) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            len.parse::<u8>().is_ok_and(|l| l <= max)
                || (ip.is_ipv4() && len.parse::<std::net::Ipv4Addr>().is_ok())
        }
        Err(_) => false,
    }
}

fn apply(s: &mut ServerParams, name: &str, value: Option<String>, bases: &super::TlsBases) -> R {
    let v = value.clone().unwrap_or_default();
    let u = || parse_u32(&v);
    // HAProxy reads these with atol(): leading digits count, trailing garbage is ignored.
    let atoi = || -> Result<u32, String> {
        let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
        Ok(digits.parse::<u32>().unwrap_or(0))
    };
    let t = || parse_time(&v);
    match name {
        "weight" => {
            let w = atoi()?;
            if w > 256 {
                return Err(format!("weight {w} out of range (0-256)."));
            }
            s.weight = Some(w);
        }
        "maxconn" => s.maxconn = Some(atoi()?),
        "minconn" => s.minconn = Some(atoi()?),
        "maxqueue" => s.maxqueue = Some(atoi()?),
        "backup" => s.backup = true,
        "disabled" => s.disabled = true,
        "enabled" => s.disabled = false,
        "check" => s.check = true,
        "no-check" => s.check = false,
        "inter" => s.inter = Some(positive(t()?)?),
        "fastinter" => s.fastinter = Some(positive(t()?)?),
        "downinter" => s.downinter = Some(positive(t()?)?),
        "rise" => s.rise = Some(nonzero(atoi()?)?),
        "fall" => s.fall = Some(nonzero(atoi()?)?),
        "port" => s.check_port = Some(parse_port(&v)?),
        "addr" => s.check_addr = value,
        "check-ssl" => s.check_ssl = true,
        "check-sni" => s.check_sni = value,
        "agent-check" => s.agent.enabled = true,
        "agent-port" => s.agent.port = Some(parse_port(&v)?),
        "agent-inter" => s.agent.inter = Some(positive(t()?)?),
        "agent-addr" => s.agent.addr = value,
        "agent-send" => s.agent.send = value,
        "cookie" => s.cookie = value,
        "slowstart" => s.slowstart = Some(t()?),
        "observe" if v == "layer4" || v == "layer7" => s.observe = value,
        "observe" => return Err(format!("expects 'layer4' or 'layer7', got '{v}'.")),
        "on-error" if matches!(v.as_str(), "fastinter" | "fail-check" | "sudden-death" | "mark-down") => s.on_error = value,
        "on-error" => return Err(format!("'on-error' expects one of 'fastinter', 'fail-check', 'sudden-death' or 'mark-down' but got '{v}'.")),
        "on-marked-down" if v == "shutdown-sessions" => s.on_marked_down = value,
        "on-marked-down" => return Err(format!("'on-marked-down' expects 'shutdown-sessions' but got '{v}'.")),
        "on-marked-up" if v == "shutdown-backup-sessions" => s.on_marked_up = value,
        "on-marked-up" => return Err(format!("'on-marked-up' expects 'shutdown-backup-sessions' but got '{v}'.")),
        "error-limit" => match atoi()? {
            0 => return Err("error-limit has to be > 0.".into()),
            n => s.error_limit = Some(n),
        },
        "track" => s.track = value,
        "redir" => s.redir = value,
        "id" => s.id = Some(u()?),
        "resolvers" => s.resolvers = value,
        "init-addr" => {
            if let Some(bad) = v
                .split(',')
                .find(|m| !matches!(*m, "libc" | "last" | "none") && m.parse::<std::net::IpAddr>().is_err())
            {
                return Err(format!("unknown init-addr method '{bad}', supported methods are 'libc', 'last', 'none'."));
            }
            s.init_addr = value
        }
        "resolve-prefer" if matches!(v.as_str(), "ipv4" | "ipv6") => s.other.push((name.to_string(), value)),
        "resolve-prefer" => return Err("'resolve-prefer' expects either ipv4 or ipv6 as argument.".into()),
        "resolve-net" => {
            if let Some(bad) = v.split(',').find(|n| !valid_net(n)) {
                return Err(format!("'resolve-net' invalid network '{bad}'."));
            }
            s.other.push((name.to_string(), value))
        }
        "resolve-opts" => {
            if let Some(bad) = v.split(',').find(|o| !matches!(*o, "allow-dup-ip" | "ignore-weight" | "prevent-dup-ip")) {
                return Err(format!("unknown resolve-opts option '{bad}', supported methods are 'allow-dup-ip', 'ignore-weight', and 'prevent-dup-ip'."));
            }
            s.other.push((name.to_string(), value))
        }
        "pool-max-conn" => {
            s.pool_max_conn = Some(v.parse().map_err(|_| format!("invalid number '{v}'"))?)
        }
        "pool-purge-delay" => s.pool_purge_delay = Some(t()?),
        "max-reuse" => s.max_reuse = Some(v.parse().map_err(|_| format!("invalid number '{v}'"))?),
        "send-proxy" => s.send_proxy = Some(ProxyProtocol::V1),
        "send-proxy-v2" => s.send_proxy = Some(ProxyProtocol::V2),
        "send-proxy-v2-ssl" | "send-proxy-v2-ssl-cn" => {
            s.send_proxy = Some(ProxyProtocol::V2);
            s.other.push((name.to_string(), None));
        }
        "proxy-v2-options" => {
            const KNOWN: [&str; 8] = [
                "ssl", "cert-cn", "ssl-cipher", "cert-sig", "cert-key", "authority", "crc32c",
                "unique-id",
            ];
            if let Some(bad) = v.split(',').find(|o| !KNOWN.contains(o)) {
                return Err(format!("'proxy-v2-options' : unknown option '{bad}'."));
            }
            s.other.push((name.to_string(), value));
        }
        "ssl" => s.ssl.enabled = true,
        "no-ssl" => s.ssl.enabled = false,
        "verify" => s.ssl.verify = Some(parse_verify(&v)?),
        "ca-file" => {
            check_pem(&bases.ca(&v), "CERTIFICATE")?;
            s.ssl.ca_file = Some(v.into());
        }
        "crt" => {
            super::bind::check_crt(&v, bases)?;
            s.ssl.crt = Some(v.into());
        }
        "sni" => s.ssl.sni = value,
        "verifyhost" => s.ssl.verifyhost = value,
        "crl-file" => {
            check_pem(&bases.ca(&v), "X509 CRL")?;
            s.ssl.crl_file = Some(v.into());
        }
        "alpn" => s.ssl.alpn = v.split(',').map(str::to_string).collect(),
        "check-proto" if matches!(v.as_str(), "h1" | "h2" | "fcgi" | "none") => {
            s.other.push((name.to_string(), value))
        }
        "check-proto" => return Err(format!("'check-proto' :  unknown MUX protocol '{v}'.")),
        "proto" if matches!(v.as_str(), "h1" | "h2") => s.other.push((name.to_string(), value)),
        "proto" if v == "fcgi" || v == "none" => {
            return Err(format!("'proto {v}' is not supported by ringlb (only h1 and h2)"))
        }
        "proto" => return Err(format!("'proto' :  unknown MUX protocol '{v}'")),
        // WebSocket always reaches servers over HTTP/1.1 (an h2 server's connection is
        // not used for it): what `h1` asks and `auto` does with ALPN.
        "ws" if matches!(v.as_str(), "auto" | "h1") => s.other.push((name.to_string(), value)),
        "ws" if v == "h2" => {
            return Err(
                "'ws h2' (WebSocket over HTTP/2 to servers, RFC 8441) is not supported by ringlb yet"
                    .into(),
            )
        }
        "ws" => {
            return Err(format!(
                "'ws' : expects 'auto', 'h1' or 'h2' value but got '{v}'"
            ))
        }
        "ciphers" => s.ssl.ciphers = value,
        "ciphersuites" => s.ssl.ciphersuites = value,
        "ssl-reuse" => s.ssl.no_ssl_reuse = false,
        "no-ssl-reuse" => s.ssl.no_ssl_reuse = true,
        _ if name.starts_with("ssl-m")
            || name.starts_with("no-tls")
            || name.starts_with("no-ssl")
            || name.starts_with("force-")
            || name == "allow-0rtt" =>
        {
            apply_ssl_opt(&mut s.ssl.options, name, || value)?
        }
        _ => s.other.push((name.to_string(), value)),
    }
    Ok(())
}

fn positive(d: std::time::Duration) -> Result<std::time::Duration, String> {
    if d.is_zero() {
        return Err("expects a strictly positive time.".into());
    }
    Ok(d)
}

fn nonzero(v: u32) -> Result<u32, String> {
    if v == 0 {
        return Err("expects a strictly positive integer.".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let (h, a, p, _) = parse_server_addr("10.0.1.10:8080").unwrap();
        assert_eq!((h.as_str(), p), ("10.0.1.10", Some(8080)));
        assert_eq!(a.unwrap().to_string(), "10.0.1.10:8080");
        let (h, a, p, _) = parse_server_addr("db.local:5432").unwrap();
        assert_eq!((h.as_str(), a, p), ("db.local", None, Some(5432)));
        let (_, a, p, _) = parse_server_addr("[::1]:80").unwrap();
        assert_eq!(
            (a.unwrap().to_string(), p),
            ("[::1]:80".to_string(), Some(80))
        );
        let (_, _, p, off) = parse_server_addr("10.0.0.1:+1000").unwrap();
        assert_eq!((p, off), (None, Some(1000)));
        assert_eq!(parse_server_addr("10.0.0.1").unwrap().2, None);
        assert!(parse_server_addr("10.0.0.1:99999").is_err());
        assert!(parse_server_addr("bad host:80").is_err());
    }
}
