//! The small sections: `userlist`, `peers`, `resolvers`, `http-errors`, `ring`, `cache`,
//! `program`, `mailers`. Each line is parsed into its typed model object.
//!
//! Owns: [`open`], one parser per section, [`SECTION_KEYWORDS`] (their registry part).

use crate::model::{
    Cache, Endpoint, HttpErrors, Loc, Mailers, Password, Peers, Program, Resolvers, Ring, User,
    UserGroup, Userlist,
};
use crate::registry::{nearest, Status};
use crate::source::Line;
use crate::units::{parse_size, parse_time, parse_u32};

use super::proxy::directive;
use super::{Current, Cx, Draft, R};

/// `resolvers` sections (crates/dns, crates/control/src/dns.rs).
const DNS: Status = Status::Supported;
/// The `cache` section keywords (ringlb-cache, `crates/shard/src/cache.rs`).
const CACHE: Status = Status::Supported;
const S: Status = Status::Supported;

/// (section, keyword, status, doc) for every keyword of the small sections.
pub static SECTION_KEYWORDS: &[(&str, &str, Status, &str)] = &[
    ("userlist", "group", S, "group <name> [users <u>,...]"),
    (
        "userlist",
        "user",
        S,
        "user <name> password|insecure-password <pw> [groups <g>,...]",
    ),
    ("peers", "peer", S, "peer <name> <addr>:<port> (no ssl)"),
    (
        "peers",
        "server",
        S,
        "server <name> [<addr>:<port>] (no address: the local peer)",
    ),
    (
        "peers",
        "bind",
        S,
        "bind <addr>:<port>: the local peer's listener",
    ),
    (
        "peers",
        "table",
        S,
        "table <name> type ... (referenced as <section>/<name>)",
    ),
    ("peers", "disabled", S, "disable this peers section"),
    (
        "peers",
        "default-server",
        Status::Unsupported,
        "default peer server options (ssl and check options on peers are not supported)",
    ),
    (
        "peers",
        "shards",
        Status::Unsupported,
        "stick-table sharding between peers",
    ),
    (
        "resolvers",
        "nameserver",
        DNS,
        "nameserver <name> <addr>:<port> (UDP; tcp@ is refused)",
    ),
    (
        "resolvers",
        "parse-resolv-conf",
        DNS,
        "use /etc/resolv.conf nameservers",
    ),
    (
        "resolvers",
        "accepted_payload_size",
        DNS,
        "EDNS0 payload size",
    ),
    ("resolvers", "resolve_retries", DNS, "retries per query"),
    (
        "resolvers",
        "hold",
        DNS,
        "hold nx|refused|timeout|other <time> (valid, obsolete: no effect without do-resolve/SRV)",
    ),
    ("resolvers", "timeout", DNS, "timeout resolve|retry <time>"),
    (
        "http-errors",
        "errorfile",
        Status::Supported,
        "errorfile <code> <file>",
    ),
    (
        "ring",
        "description",
        Status::Supported,
        "ring description (show events)",
    ),
    (
        "ring",
        "format",
        Status::Supported,
        "log format of ring messages (default raw)",
    ),
    (
        "ring",
        "maxlen",
        Status::Supported,
        "maximum message length",
    ),
    (
        "ring",
        "size",
        Status::Supported,
        "ring size in bytes (oldest lines make room)",
    ),
    (
        "ring",
        "server",
        Status::Supported,
        "forward ring contents to a TCP syslog server (log-proto legacy|octet-count)",
    ),
    (
        "ring",
        "timeout",
        Status::Supported,
        "timeout connect|server <time> (for ring servers)",
    ),
    ("cache", "total-max-size", CACHE, "cache size in megabytes"),
    (
        "cache",
        "max-object-size",
        CACHE,
        "largest cached object in bytes",
    ),
    ("cache", "max-age", CACHE, "maximum age in seconds"),
    ("cache", "process-vary", CACHE, "honour Vary: on|off"),
    (
        "cache",
        "max-secondary-entries",
        CACHE,
        "variants per object",
    ),
    (
        "program",
        "command",
        Status::Supported,
        "command line the master starts (stopped with SIGTERM at exit)",
    ),
    ("program", "user", Status::Supported, "run as user"),
    ("program", "group", Status::Supported, "run as group"),
    (
        "program",
        "option",
        Status::Supported,
        "option start-on-reload: a reload restarts the program (default)",
    ),
    (
        "program",
        "no",
        Status::Supported,
        "no option start-on-reload: the program survives reloads",
    ),
    (
        "mailers",
        "mailer",
        Status::Supported,
        "mailer <name> <addr>:<port> (plain SMTP)",
    ),
    (
        "mailers",
        "timeout",
        Status::Supported,
        "timeout mail <time> (default 10s)",
    ),
];

/// Opens a small section; returns the new state.
pub(crate) fn open(cx: &mut Cx, kw: &str, name: &str, loc: &Loc, d: &mut Draft) -> Option<Current> {
    if name.is_empty() {
        cx.alert(loc, kw, format!("'{kw}' expects <name> as an argument."));
        return None;
    }
    let n = name.to_string();
    let l = loc.clone();
    macro_rules! push {
        ($vec:expr, $v:expr, $cur:ident) => {{
            if $vec.iter().any(|x| x.name == n) {
                cx.alert(
                    loc,
                    kw,
                    format!("{kw} section '{n}' has the same name as another {kw} section."),
                );
            }
            $vec.push($v);
            Some(Current::$cur($vec.len() - 1))
        }};
    }
    match kw {
        "userlist" => push!(
            d.userlists,
            Userlist {
                name: n.clone(),
                loc: l,
                ..Default::default()
            },
            Userlist
        ),
        "peers" => push!(
            d.peers,
            Peers {
                name: n.clone(),
                loc: l,
                ..Default::default()
            },
            Peers
        ),
        "resolvers" => push!(
            d.resolvers,
            Resolvers {
                name: n.clone(),
                loc: l,
                ..Default::default()
            },
            Resolvers
        ),
        "http-errors" => push!(
            d.http_errors,
            HttpErrors {
                name: n.clone(),
                loc: l,
                ..Default::default()
            },
            HttpErrors
        ),
        "ring" => push!(
            d.rings,
            Ring {
                name: n.clone(),
                loc: l,
                ..Default::default()
            },
            Ring
        ),
        "cache" => push!(
            d.caches,
            Cache {
                name: n.clone(),
                loc: l,
                ..Default::default()
            },
            Cache
        ),
        "program" => push!(
            d.programs,
            Program {
                name: n.clone(),
                loc: l,
                ..Default::default()
            },
            Program
        ),
        "mailers" => push!(
            d.mailers,
            Mailers {
                name: n.clone(),
                loc: l,
                ..Default::default()
            },
            Mailers
        ),
        _ => {
            cx.alert(
                loc,
                kw,
                format!("section '{kw}' is not supported by ringlb yet"),
            );
            None
        }
    }
}

/// Looks the keyword up in [`SECTION_KEYWORDS`], records it, and runs `f`.
fn run<T>(cx: &mut Cx, section: &str, obj: Option<&mut T>, l: &Line, f: fn(&mut T, &Line) -> R) {
    let kw = l.arg(0);
    let Some((_, name, status, _)) = SECTION_KEYWORDS
        .iter()
        .find(|(s, k, _, _)| *s == section && *k == kw)
    else {
        let hint = nearest(
            kw,
            SECTION_KEYWORDS
                .iter()
                .filter(|e| e.0 == section)
                .map(|e| e.1),
        )
        .map(|n| format!("; did you mean '{n}' maybe ?"))
        .unwrap_or_default();
        cx.alert(
            &l.loc,
            "",
            format!("unknown keyword '{kw}' in '{section}' section{hint}"),
        );
        return;
    };
    if !cx.use_kw(&l.loc, &format!("{section} {name}"), status) {
        return;
    }
    if let Some(obj) = obj {
        if let Err(m) = f(obj, l) {
            cx.alert(&l.loc, name, m);
        }
    }
}

/// Appends an endpoint, rejecting a name already used in the same list.
fn push_endpoint(list: &mut Vec<Endpoint>, l: &Line) -> R {
    let e = endpoint(l)?;
    if let Some(prev) = list.iter().find(|p| p.name == e.name) {
        return Err(format!(
            "{kw} '{}' has same name as another {kw} (declared at {}:{}).",
            e.name,
            prev.loc.file,
            prev.loc.line,
            kw = l.arg(0)
        ));
    }
    list.push(e);
    Ok(())
}

fn endpoint(l: &Line) -> Result<Endpoint, String> {
    if l.arg(1).is_empty() {
        return Err(format!(
            "'{}' expects <name> and <address> as arguments.",
            l.arg(0)
        ));
    }
    Ok(Endpoint {
        loc: l.loc.clone(),
        name: l.arg(1).to_string(),
        address: l.arg(2).to_string(),
        params: l.rest(3),
    })
}

/// A ring `server`: `log-proto legacy|octet-count` is the only server option ringlb takes
/// there (haproxy accepts every server keyword, most meaningless for a ring).
fn ring_server(l: &Line) -> Result<Endpoint, String> {
    let e = endpoint(l)?;
    let mut w = e.params.iter();
    while let Some(k) = w.next() {
        match (k.as_str(), w.next().map(String::as_str)) {
            ("log-proto", Some("legacy" | "octet-count")) => {}
            ("log-proto", v) => {
                return Err(format!(
                    "'log-proto' expects 'legacy' or 'octet-count', not '{}'",
                    v.unwrap_or("")
                ))
            }
            (k, _) => {
                return Err(format!(
                    "ring server option '{k}' is not supported by ringlb yet (only 'log-proto')"
                ))
            }
        }
    }
    Ok(e)
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) fn userlist(cx: &mut Cx, u: Option<&mut Userlist>, l: &Line) {
    run(cx, "userlist", u, l, |u, l| match l.arg(0) {
        "group" => {
            let users = if l.arg(2) == "users" {
                list(l.arg(3))
            } else {
                Vec::new()
            };
            u.groups.push(UserGroup {
                loc: l.loc.clone(),
                name: l.arg(1).to_string(),
                users,
            });
            Ok(())
        }
        _ => {
            let pw = match l.arg(2) {
                "password" => {
                    let h = l.arg(3);
                    // ringlb checks crypt(3) SHA-256/SHA-512 hashes itself; MD5 (`$1$`),
                    // bcrypt (`$2*$`), yescrypt and DES would never match: refused.
                    if !(h.starts_with("$5$") || h.starts_with("$6$")) {
                        return Err(format!(
                            "user '{}': unsupported password hash scheme '{}': ringlb supports crypt(3) SHA-256 ('$5$') and SHA-512 ('$6$') hashes (mkpasswd -m sha-512) and 'insecure-password'.",
                            l.arg(1),
                            h.split('$').nth(1).map_or("DES", |s| if s.is_empty() { "DES" } else { s })
                        ));
                    }
                    Password::Hashed(h.to_string())
                }
                "insecure-password" => Password::Insecure(l.arg(3).to_string()),
                w => {
                    return Err(format!(
                        "'user' expects 'password' or 'insecure-password', got '{w}'."
                    ))
                }
            };
            let groups = if l.arg(4) == "groups" {
                list(l.arg(5))
            } else {
                Vec::new()
            };
            u.users.push(User {
                loc: l.loc.clone(),
                name: l.arg(1).to_string(),
                password: pw,
                groups,
            });
            Ok(())
        }
    });
}

pub(crate) fn peers(cx: &mut Cx, p: Option<&mut Peers>, l: &Line) {
    run(cx, "peers", p, l, |p, l| {
        match l.arg(0) {
            "peer" | "server" => {
                let kw = l.arg(0);
                if kw == "peer" && l.arg(2).is_empty() {
                    return Err("'peer' expects <name> and <address>:<port> as arguments.".into());
                }
                if let Some(w) = l.rest(3).first() {
                    return Err(format!(
                        "'{kw}' option '{w}' is not supported by ringlb yet (peers take no ssl or server options)"
                    ));
                }
                if !l.arg(2).is_empty() {
                    peer_port(l.arg(2))?;
                }
                push_endpoint(&mut p.peers, l)?
            }
            "bind" => {
                if l.arg(1).is_empty() {
                    return Err("'bind' expects <address>:<port> as argument.".into());
                }
                if let Some(w) = l.rest(2).first() {
                    return Err(format!(
                        "'bind' option '{w}' is not supported by ringlb yet in a peers section"
                    ));
                }
                peer_port(l.arg(1))?;
                p.bind = Some(Endpoint {
                    loc: l.loc.clone(),
                    name: String::new(),
                    address: l.arg(1).to_string(),
                    params: Vec::new(),
                });
            }
            "disabled" => p.disabled = true,
            "table" => {
                if l.arg(1).is_empty() {
                    return Err(
                        "'table' expects a table name and its stick-table arguments.".into(),
                    );
                }
                let mut t = super::rules::parse_stick_table(l, 2)?;
                t.peers = Some(p.name.clone());
                let name = format!("{}/{}", p.name, l.arg(1));
                if p.tables.iter().any(|(n, _)| *n == name) {
                    return Err(format!(
                        "stick-table name '{name}' conflicts with another table."
                    ));
                }
                p.tables.push((name, t));
            }
            _ => p.other.push(directive(l, 1)),
        }
        Ok(())
    });
}

/// A peer address must name one port (haproxy: "missing or invalid port").
fn peer_port(addr: &str) -> R {
    let port = addr.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("invalid or missing port in address '{addr}'.")),
    }
}

pub(crate) fn resolvers(cx: &mut Cx, r: Option<&mut Resolvers>, l: &Line) {
    run(cx, "resolvers", r, l, |r, l| {
        match l.arg(0) {
            "nameserver" => {
                // haproxy's stream nameservers (`tcp@`...) are not implemented: refuse them
                // rather than ask another server than the one written.
                if l.arg(2).contains('@')
                    && !l.arg(2).starts_with("udp")
                    && !l.arg(2).starts_with("ipv")
                {
                    return Err(format!(
                        "nameserver '{}': only UDP nameservers are supported by ringlb ('{}').",
                        l.arg(1),
                        l.arg(2)
                    ));
                }
                push_endpoint(&mut r.nameservers, l)?
            }
            "accepted_payload_size"
                if parse_u32(l.arg(1)).is_ok_and(|n| !(12..=65535).contains(&n)) =>
            {
                return Err(format!(
                    "'accepted_payload_size' must be between 12 and 65535 inclusive (was {}).",
                    l.arg(1)
                ));
            }
            "parse-resolv-conf" => {
                r.parse_resolv_conf = true;
                r.resolv_conf_at.get_or_insert(r.nameservers.len());
            }
            "accepted_payload_size" => r.accepted_payload_size = Some(parse_u32(l.arg(1))?),
            "resolve_retries" => r.resolve_retries = Some(parse_u32(l.arg(1))?),
            "hold" => {
                if !matches!(
                    l.arg(1),
                    "nx" | "timeout" | "valid" | "obsolete" | "other" | "refused"
                ) {
                    return Err(format!("'hold' unknown <event>: '{}', expects either 'nx', 'timeout', 'valid', 'obsolete' or 'other'.", l.arg(1)));
                }
                r.hold.push((l.arg(1).to_string(), parse_time(l.arg(2))?))
            }
            _ => {
                if !matches!(l.arg(1), "retry" | "resolve") {
                    return Err(format!(
                        "'timeout' expects 'retry' or 'resolve' and <time> as arguments got '{}'.",
                        l.arg(1)
                    ));
                }
                r.timeouts
                    .push((l.arg(1).to_string(), parse_time(l.arg(2))?))
            }
        }
        Ok(())
    });
}

pub(crate) fn http_errors(cx: &mut Cx, h: Option<&mut HttpErrors>, l: &Line) {
    run(cx, "http-errors", h, l, |h, l| {
        let ef = super::proxy_opts::load_errorfile(l, l.arg(1), l.arg(2))?;
        h.errorfiles.retain(|e| e.status != ef.status);
        h.errorfiles.push(ef);
        Ok(())
    });
}

/// A ring's default and smallest size (haproxy's `BUFSIZE`).
const RING_MIN_SIZE: u64 = 16384;

pub(crate) fn ring(cx: &mut Cx, r: Option<&mut Ring>, l: &Line) {
    run(cx, "ring", r, l, |r, l| {
        match l.arg(0) {
            "description" => r.description = Some(l.rest(1).join(" ")),
            "format" => r.format = Some(l.arg(1).to_string()),
            "maxlen" => r.maxlen = Some(parse_u32(l.arg(1))?),
            "size" => {
                let n = parse_size(l.arg(1))?;
                // haproxy 2.6 warns and then refuses the configuration.
                if n < RING_MIN_SIZE {
                    return Err(format!(
                        "ignoring new size '{n}' that is smaller than current size '{RING_MIN_SIZE}' for ring '{}'.",
                        r.name
                    ));
                }
                r.size = Some(n);
            }
            "server" => r.servers.push(ring_server(l)?),
            _ if matches!(l.arg(1), "connect" | "server") => r
                .timeouts
                .push((l.arg(1).to_string(), parse_time(l.arg(2))?)),
            _ => {
                return Err(format!(
                    "'timeout' expects 'connect' or 'server', not '{}'",
                    l.arg(1)
                ))
            }
        }
        Ok(())
    });
}

pub(crate) fn cache(cx: &mut Cx, c: Option<&mut Cache>, l: &Line) {
    run(cx, "cache", c, l, |c, l| {
        let n = || parse_u32(l.arg(1));
        match l.arg(0) {
            "total-max-size" => c.total_max_size = Some(u64::from(n()?)),
            "max-object-size" => c.max_object_size = Some(u64::from(n()?)),
            "max-age" => c.max_age = Some(n()?),
            "max-secondary-entries" => c.max_secondary_entries = Some(n()?),
            _ => c.process_vary = Some(l.arg(1) == "on"),
        }
        Ok(())
    });
}

pub(crate) fn program(cx: &mut Cx, p: Option<&mut Program>, l: &Line) {
    run(cx, "program", p, l, |p, l| {
        match l.arg(0) {
            "command" if l.len() < 2 => return Err("'command' expects a command to run.".into()),
            "command" => p.command = l.rest(1),
            "user" | "group" if l.len() != 2 => {
                return Err(format!("'{}' expects exactly one argument.", l.arg(0)))
            }
            "user" => p.user = Some(l.arg(1).to_string()),
            "group" => p.group = Some(l.arg(1).to_string()),
            "option" if l.arg(1) == "start-on-reload" && l.len() == 2 => {
                p.start_on_reload = Some(true)
            }
            "no" if l.arg(1) == "option" && l.arg(2) == "start-on-reload" && l.len() == 3 => {
                p.start_on_reload = Some(false)
            }
            "option" => return Err(format!("unknown option '{}'.", l.arg(1))),
            _ => return Err(format!("unknown option '{}'.", l.rest(1).join(" "))),
        }
        Ok(())
    });
}

pub(crate) fn mailers(cx: &mut Cx, m: Option<&mut Mailers>, l: &Line) {
    run(cx, "mailers", m, l, |m, l| {
        match l.arg(0) {
            "mailer" => push_endpoint(&mut m.mailers, l)?,
            _ if l.arg(1) == "mail" => m.timeout_mail = Some(parse_time(l.arg(2))?),
            _ => {
                return Err(format!(
                    "'timeout' expects 'mail' and a time, not '{}'",
                    l.arg(1)
                ))
            }
        }
        Ok(())
    });
}
