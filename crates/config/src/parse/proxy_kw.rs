//! The proxy keyword table (`defaults`/`frontend`/`backend`/`listen`) and the parsers of the
//! simple keywords (mode, timeouts, options, balance, retries, errorfile, stats...). Rules,
//! ACLs, binds, servers and checks have their own modules.
//!
//! Owns: [`KEYWORDS`], [`ProxyKw`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{
    Balance, Capture, Cookie, CookieMode, ErrorFile, ForwardFor, HashFunction, HashType,
    HttpConnMode, HttpLog, HttpReuse, IpNet, Mode, Stats, Timeouts,
};
use crate::registry::Status;
use crate::source::Line;
use crate::units::{parse_time, parse_u32};

use super::proxy::{directive, KwCx, ProxyDraft, ALL, BE, DEF, FE, NDEF};
use super::{acl, bind, checks, rules, server, R};

/// Parser of one proxy keyword.
pub type ProxyFn = fn(&mut KwCx<'_>, &mut ProxyDraft, &Line) -> R;

/// One registered proxy keyword.
#[derive(Debug)]
pub struct ProxyKw {
    pub name: &'static str,
    /// Capability bits: where the keyword is allowed (`DEF`, `FE`, `BE`, `NDEF`).
    pub caps: u8,
    pub status: Status,
    pub doc: &'static str,
    pub parse: ProxyFn,
}

const fn kw(name: &'static str, caps: u8, status: Status, doc: &'static str, parse: ProxyFn) -> ProxyKw {
    ProxyKw { name, caps, status, doc, parse }
}

const S: Status = Status::Supported;
const ENG: Status = Status::Parsed { issue: 3 };
const LB: Status = Status::Parsed { issue: 5 };
const RUL: Status = Status::Parsed { issue: 6 };
const STK: Status = Status::Parsed { issue: 7 };
const OBS: Status = Status::Parsed { issue: 9 };
const OPS: Status = Status::Parsed { issue: 10 };
const NO: Status = Status::Unsupported;
const DFB: u8 = ALL;
const DB: u8 = DEF | BE;
const DF: u8 = DEF | FE;
const FB: u8 = FE | BE;
const RULES: u8 = NDEF | FE | BE;

/// Proxy keywords ringlb knows, with where they are allowed and their status.
pub static KEYWORDS: &[ProxyKw] = &[
    kw("mode", DFB, S, "proxy mode: http or tcp", p_mode),
    kw("bind", FE, S, "listening address(es) and options", bind::parse_bind),
    kw("maxconn", DF, S, "frontend connection limit", |k, p, l| u32_set(k, l, &mut p.settings.maxconn)),
    kw("default_backend", DF, S, "backend used when no use_backend matches", p_default_backend),
    kw("use_backend", FE, S, "switch to a backend (conditions: issue #6)", rules::use_backend),
    kw("server", BE, S, "a server: address, port, weight, maxconn, backup, disabled...", server::parse_server),
    kw("default-server", DB, S, "default options of following servers", server::parse_default_server),
    kw("balance", DB, S, "load-balancing algorithm (roundrobin now; others issue #5)", p_balance),
    kw("retries", DB, S, "connection retries (default 3)", |k, p, l| u32_set(k, l, &mut p.settings.retries)),
    kw("retry-on", DB, S, "events that trigger a retry", p_retry_on),
    kw("http-reuse", DB, S, "idle server connection reuse: never|safe|aggressive|always", p_http_reuse),
    kw("errorfile", DFB, S, "raw HTTP response file for a status code", p_errorfile),
    kw("log", DFB, S, "log targets (parsed; sent by issue #9)", p_log),
    kw("timeout connect", DB, S, "server connect timeout", |k, p, l| timeout(k, l, |t| &mut t.connect, p)),
    kw("timeout client", DF, S, "client inactivity timeout", |k, p, l| timeout(k, l, |t| &mut t.client, p)),
    kw("timeout server", DB, S, "server inactivity timeout", |k, p, l| timeout(k, l, |t| &mut t.server, p)),
    kw("timeout http-request", DFB, S, "time to receive a full request head", |k, p, l| timeout(k, l, |t| &mut t.http_request, p)),
    kw("timeout http-keep-alive", DFB, S, "idle time between two requests", |k, p, l| timeout(k, l, |t| &mut t.http_keep_alive, p)),
    kw("timeout queue", DB, S, "time a request may wait for a server slot", |k, p, l| timeout(k, l, |t| &mut t.queue, p)),
    kw("timeout tunnel", DB, S, "inactivity timeout of tunnels (WebSocket, CONNECT)", |k, p, l| timeout(k, l, |t| &mut t.tunnel, p)),
    kw("timeout client-fin", DF, S, "client half-closed timeout", |k, p, l| timeout(k, l, |t| &mut t.client_fin, p)),
    kw("timeout server-fin", DB, S, "server half-closed timeout", |k, p, l| timeout(k, l, |t| &mut t.server_fin, p)),
    kw("timeout tarpit", DFB, S, "tarpit duration", |k, p, l| timeout(k, l, |t| &mut t.tarpit, p)),
    kw("timeout check", DB, LB, "health check read timeout", |k, p, l| timeout(k, l, |t| &mut t.check, p)),
    kw("option forwardfor", DFB, S, "add X-Forwarded-For [except <net>] [header <name>] [if-none]", p_forwardfor),
    kw("option http-server-close", DFB, S, "close server side after each response", |k, p, l| conn_mode(k, p, l, HttpConnMode::ServerClose)),
    kw("option httpclose", DFB, S, "close both sides after each response", |k, p, l| conn_mode(k, p, l, HttpConnMode::Close)),
    kw("option http-keep-alive", DFB, S, "keep-alive on both sides (default)", |k, p, l| conn_mode(k, p, l, HttpConnMode::KeepAlive)),
    kw("option redispatch", DB, S, "retry on another server [interval]", p_redispatch),
    kw("option httplog", DFB, OBS, "HTTP log format [clf]", p_httplog),
    kw("option tcplog", DFB, OBS, "TCP log format", |k, p, l| bool_opt(k, l, &mut p.settings.options.tcplog)),
    kw("option dontlognull", DFB, OBS, "do not log empty connections", |k, p, l| bool_opt(k, l, &mut p.settings.options.dontlognull)),
    kw("option log-health-checks", DB, OBS, "log health check state changes", |k, p, l| bool_opt(k, l, &mut p.settings.options.log_health_checks)),
    kw("option httpchk", DB, LB, "HTTP health checks [<method> <uri> <version>]", checks::option_httpchk),
    kw("option tcp-check", DB, LB, "run tcp-check rules as health check", |k, p, l| bool_opt(k, l, &mut p.settings.options.tcp_check)),
    kw("option abortonclose", DB, ENG, "abort queued requests whose client left", |k, p, l| bool_opt(k, l, &mut p.settings.options.abortonclose)),
    kw("option allbackups", DB, LB, "use all backup servers at once", |k, p, l| bool_opt(k, l, &mut p.settings.options.allbackups)),
    kw("option http-buffer-request", DFB, RUL, "wait for the request body before rules", |k, p, l| bool_opt(k, l, &mut p.settings.options.http_buffer_request)),
    kw("option prefer-last-server", DB, LB, "prefer the last server used by a connection", |k, p, l| bool_opt(k, l, &mut p.settings.options.prefer_last_server)),
    kw("option originalto", DFB, RUL, "add X-Original-To", p_originalto),
    kw("option log-separate-errors", DFB, OBS, "log errors at a higher level", opt_other),
    kw("option logasap", DF, OBS, "log before the response ends", opt_other),
    kw("option http-no-delay", DFB, ENG, "no send delay on HTTP", opt_other),
    kw("option http-pretend-keepalive", DFB, ENG, "pretend keep-alive to servers", opt_other),
    kw("option http-ignore-probes", DF, ENG, "do not log/408 empty pre-connects", opt_other),
    kw("option http-use-proxy-header", DF, ENG, "honour Proxy-Connection", opt_other),
    kw("option accept-invalid-http-request", DF, ENG, "relax request parsing", opt_other),
    kw("option accept-invalid-http-response", DB, ENG, "relax response parsing", opt_other),
    kw("option h1-case-adjust-bogus-client", DF, NO, "HTTP/1 header case rewrite", opt_other),
    kw("option h1-case-adjust-bogus-server", DB, NO, "HTTP/1 header case rewrite", opt_other),
    kw("option tcpka", DFB, ENG, "TCP keep-alive on both sides", opt_other),
    kw("option clitcpka", DF, ENG, "TCP keep-alive to clients", opt_other),
    kw("option srvtcpka", DB, ENG, "TCP keep-alive to servers", opt_other),
    kw("option nolinger", DFB, ENG, "RST on close", opt_other),
    kw("option splice-auto", DFB, ENG, "kernel splicing", opt_other),
    kw("option splice-request", DFB, ENG, "kernel splicing", opt_other),
    kw("option splice-response", DFB, ENG, "kernel splicing", opt_other),
    kw("option contstats", DF, OBS, "continuous traffic stats", opt_other),
    kw("option socket-stats", DF, OBS, "per-socket stats", opt_other),
    kw("option independent-streams", DFB, ENG, "independent read/write timeouts", opt_other),
    kw("option checkcache", DB, RUL, "block cacheable responses with cookies", opt_other),
    kw("option persist", DB, LB, "keep persistence to a down server", opt_other),
    kw("option transparent", DB, NO, "transparent proxying", opt_other),
    kw("option ssl-hello-chk", DB, LB, "SSLv3 hello health check", opt_other),
    kw("option smtpchk", DB, LB, "SMTP health check", opt_args),
    kw("option mysql-check", DB, LB, "MySQL health check", opt_args),
    kw("option pgsql-check", DB, LB, "PostgreSQL health check", opt_args),
    kw("option redis-check", DB, LB, "Redis health check", opt_other),
    kw("option ldap-check", DB, LB, "LDAP health check", opt_other),
    kw("option external-check", DB, NO, "external command health check", opt_other),
    kw("option spop-check", BE, NO, "SPOP health check", opt_other),
    kw("option disable-h2-upgrade", DF, ENG, "refuse HTTP/1 to h2 upgrade", opt_other),
    kw("option http-restrict-req-hdr-names", DFB, ENG, "reject/delete odd header names", opt_args),
    kw("option dontlog-normal", DF, OBS, "log only errors", opt_other),
    kw("hash-type", DB, LB, "hash method and function for hashing algorithms", p_hash_type),
    kw("cookie", DB, LB, "cookie-based persistence", p_cookie),
    kw("fullconn", DB, LB, "dynamic maxconn reference", |k, p, l| u32_set(k, l, &mut p.settings.fullconn)),
    kw("http-check connect", DB, LB, "health check step: connect", checks::http_check),
    kw("http-check send", DB, LB, "health check step: send a request", checks::http_check),
    kw("http-check expect", DB, LB, "health check step: expect a response", checks::http_check),
    kw("http-check comment", DB, LB, "health check step: comment", checks::http_check),
    kw("http-check disable-on-404", DB, LB, "404 puts the server in maintenance", checks::http_check),
    kw("http-check send-state", DB, LB, "send X-Haproxy-Server-State", checks::http_check),
    kw("http-check set-var", DB, LB, "health check step: set a variable", checks::http_check),
    kw("http-check unset-var", DB, LB, "health check step: unset a variable", checks::http_check),
    kw("tcp-check connect", DB, LB, "tcp check step: connect", checks::tcp_check),
    kw("tcp-check send", DB, LB, "tcp check step: send a string", checks::tcp_check),
    kw("tcp-check send-lf", DB, LB, "tcp check step: send a log-format string", checks::tcp_check),
    kw("tcp-check send-binary", DB, LB, "tcp check step: send hex bytes", checks::tcp_check),
    kw("tcp-check send-binary-lf", DB, LB, "tcp check step: send log-format hex", checks::tcp_check),
    kw("tcp-check expect", DB, LB, "tcp check step: expect data", checks::tcp_check),
    kw("tcp-check comment", DB, LB, "tcp check step: comment", checks::tcp_check),
    kw("tcp-check set-var", DB, LB, "tcp check step: set a variable", checks::tcp_check),
    kw("tcp-check unset-var", DB, LB, "tcp check step: unset a variable", checks::tcp_check),
    kw("tcp-check action", DB, LB, "tcp check step: action", checks::tcp_check),
    kw("acl", RULES, RUL, "declare a named ACL", acl::parse_acl_line),
    kw("http-request", RULES, RUL, "HTTP request rule (action + condition)", rules::http_request),
    kw("http-response", RULES, RUL, "HTTP response rule (action + condition)", rules::http_response),
    kw("http-after-response", RULES, RUL, "rule applied to all responses", rules::http_after_response),
    kw("tcp-request connection", RULES, RUL, "layer-4 rule at accept", rules::tcp_request),
    kw("tcp-request session", RULES, RUL, "rule after the handshake", rules::tcp_request),
    kw("tcp-request content", RULES, RUL, "rule on buffered content", rules::tcp_request),
    kw("tcp-request inspect-delay", RULES, RUL, "how long to wait for content", rules::tcp_request),
    kw("tcp-response content", RULES, RUL, "rule on response content", rules::tcp_request),
    kw("tcp-response inspect-delay", RULES, RUL, "how long to wait for response content", rules::tcp_request),
    kw("redirect", FB, RUL, "HTTP redirect rule", rules::redirect),
    kw("use-server", BE, RUL, "force a server", rules::generic_cond),
    kw("force-persist", FB, LB, "force persistence", rules::generic_cond),
    kw("ignore-persist", FB, LB, "ignore persistence", rules::generic_cond),
    kw("monitor-uri", DF, RUL, "URI answered 200 by the proxy itself", |k, p, l| {
        need(k, l, 1)?;
        p.monitor_uri = Some(l.arg(k.kw_words).to_string());
        Ok(())
    }),
    kw("monitor fail", FE, RUL, "make monitor-uri fail on a condition", rules::generic_cond),
    kw("capture request", FE, RUL, "capture a request header", p_capture),
    kw("capture response", FE, RUL, "capture a response header", p_capture),
    kw("capture cookie", FE, RUL, "capture a cookie", p_capture),
    kw("declare capture", FE, RUL, "declare a capture slot", generic),
    kw("unique-id-format", DF, RUL, "log-format of the unique request id", |k, p, l| {
        need(k, l, 1)?;
        p.unique_id_format = Some(l.arg(k.kw_words).to_string());
        Ok(())
    }),
    kw("unique-id-header", DF, RUL, "header carrying the unique id", |k, p, l| {
        need(k, l, 1)?;
        p.unique_id_header = Some(l.arg(k.kw_words).to_string());
        Ok(())
    }),
    kw("errorloc", DFB, ENG, "redirect (302) for a status code", generic_n2),
    kw("errorloc302", DFB, ENG, "redirect (302) for a status code", generic_n2),
    kw("errorloc303", DFB, ENG, "redirect (303) for a status code", generic_n2),
    kw("errorfiles", DFB, ENG, "use an http-errors section", p_errorfiles),
    kw("http-error", DFB, ENG, "custom error response", generic),
    kw("log-format", DFB, OBS, "custom log line format", |k, p, l| {
        need(k, l, 1)?;
        p.settings.log_format = Some(l.rest(k.kw_words).join(" "));
        Ok(())
    }),
    kw("log-format-sd", DFB, OBS, "RFC5424 structured data", generic),
    kw("error-log-format", DFB, OBS, "log format of connection errors", generic),
    kw("log-tag", DFB, OBS, "syslog tag", generic),
    kw("stick-table", FB, STK, "declare this proxy's stick table", rules::stick_table),
    kw("stick on", BE, STK, "stick on a sample", rules::generic_cond),
    kw("stick match", BE, STK, "match a stick entry", rules::generic_cond),
    kw("stick store-request", BE, STK, "store a request sample", rules::generic_cond),
    kw("stick store-response", BE, STK, "store a response sample", rules::generic_cond),
    kw("stats enable", DFB, OBS, "enable the stats page", |_, p, _| {
        stats(p).enabled = true;
        Ok(())
    }),
    kw("stats uri", DFB, OBS, "URI of the stats page", |k, p, l| {
        need(k, l, 1)?;
        let s = stats(p);
        s.enabled = true;
        s.uri = Some(l.arg(2).to_string());
        Ok(())
    }),
    kw("stats realm", DFB, OBS, "basic-auth realm of the stats page", |k, p, l| {
        need(k, l, 1)?;
        stats(p).realm = Some(l.arg(2).to_string());
        Ok(())
    }),
    kw("stats refresh", DFB, OBS, "auto-refresh period of the stats page", |k, p, l| {
        need(k, l, 1)?;
        stats(p).refresh = Some(parse_time_s(l.arg(2))?);
        Ok(())
    }),
    kw("stats auth", DFB, OBS, "user:password for the stats page", p_stats_auth),
    kw("stats admin", FB, OBS, "enable admin actions on the stats page if/unless cond", p_stats_admin),
    kw("stats hide-version", DFB, OBS, "hide the version on the stats page", |_, p, _| {
        stats(p).hide_version = true;
        Ok(())
    }),
    kw("stats show-legends", DFB, OBS, "show legends on the stats page", |_, p, _| {
        stats(p).show_legends = true;
        Ok(())
    }),
    kw("stats show-node", DFB, OBS, "show the node name on the stats page", |_, p, l| {
        let node = (!l.arg(2).is_empty()).then(|| l.arg(2).to_string());
        stats(p).show_node = Some(node);
        Ok(())
    }),
    kw("stats show-desc", DFB, OBS, "show a description on the stats page", |_, p, l| {
        stats(p).show_desc = Some(l.rest(2).join(" "));
        Ok(())
    }),
    kw("stats scope", DFB, OBS, "limit the stats page to some proxies", |k, p, l| {
        need(k, l, 1)?;
        stats(p).scope.push(l.arg(2).to_string());
        Ok(())
    }),
    kw("stats http-request", FB, OBS, "stats page access rules", |k, p, l| {
        need(k, l, 1)?;
        stats(p).http_request.push(directive(l, 2));
        Ok(())
    }),
    kw("description", FB, OBS, "proxy description", generic),
    kw("id", FB, OBS, "numeric proxy id", |k, p, l| {
        need(k, l, 1)?;
        parse_u32(l.arg(1))?;
        generic(k, p, l)
    }),
    kw("disabled", DFB, ENG, "start the proxy disabled", |_, p, _| {
        p.disabled = true;
        Ok(())
    }),
    kw("enabled", DFB, ENG, "start the proxy enabled", |_, p, _| {
        p.disabled = false;
        Ok(())
    }),
    kw("backlog", DF, ENG, "listen backlog", u32_generic),
    kw("rate-limit sessions", DF, ENG, "new sessions per second", u32_generic),
    kw("source", DB, ENG, "source address towards servers", generic),
    kw("http-send-name-header", DB, ENG, "send the server name in a header", generic),
    kw("max-keep-alive-queue", DB, ENG, "keep-alive queue limit", generic),
    kw("max-session-srv-conns", DF, ENG, "server connections per session", u32_generic),
    kw("load-server-state-from-file", DB, OPS, "server state file", generic),
    kw("server-state-file-name", DB, OPS, "server state file name", generic),
    kw("dynamic-cookie-key", DB, LB, "key of dynamic cookies", generic),
    kw("persist rdp-cookie", DB, NO, "RDP cookie persistence", generic),
    kw("server-template", BE, NO, "servers from DNS templates", generic),
    kw("compression", DFB, NO, "HTTP compression", generic),
    kw("filter", FB, NO, "stream filters (trace, compression, spoe, cache)", generic),
    kw("email-alert mailers", DB, OBS, "email alerts", generic),
    kw("email-alert from", DB, OBS, "email alerts", generic),
    kw("email-alert to", DB, OBS, "email alerts", generic),
    kw("email-alert level", DB, OBS, "email alerts", generic),
    kw("email-alert myhostname", DB, OBS, "email alerts", generic),
    kw("external-check command", DB, NO, "external check command", generic),
    kw("external-check path", DB, NO, "external check PATH", generic),
    kw("dispatch", BE, NO, "single-server dispatch (deprecated)", generic),
];

fn need(k: &KwCx<'_>, l: &Line, n: usize) -> R {
    if l.len() < k.kw_words + n {
        return Err(format!("'{}' expects {n} argument(s).", k.name));
    }
    Ok(())
}

fn u32_set(k: &mut KwCx<'_>, l: &Line, v: &mut Option<u32>) -> R {
    need(k, l, 1)?;
    *v = Some(parse_u32(l.arg(k.kw_words))?);
    super::no_extra(l, k.kw_words + 1)
}

fn generic(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    p.settings.other.push(directive(l, k.kw_words));
    Ok(())
}

fn generic_n2(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 2)?;
    generic(k, p, l)
}

fn u32_generic(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    parse_u32(l.arg(k.kw_words))?;
    generic(k, p, l)
}

fn opt_other(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    super::no_extra(l, k.kw_words)?;
    let name = k.name.trim_start_matches("option ").to_string();
    p.settings.options.other.insert(name, !k.negated);
    Ok(())
}

fn opt_args(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let name = k.name.trim_start_matches("option ").to_string();
    p.settings.options.other.insert(name, !k.negated);
    generic(k, p, l)
}

fn bool_opt(k: &mut KwCx<'_>, l: &Line, v: &mut bool) -> R {
    super::no_extra(l, k.kw_words)?;
    *v = !k.negated;
    Ok(())
}

fn p_mode(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    p.settings.mode = Some(match l.arg(1) {
        "http" => Mode::Http,
        "tcp" => Mode::Tcp,
        "health" => return Err("'mode health' doesn't exist anymore. Please use 'http-request return status 200' instead.".into()),
        m => return Err(format!("unknown proxy mode '{m}'.")),
    });
    super::no_extra(l, 2)
}

fn p_default_backend(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    p.settings.default_backend = Some((l.loc.clone(), l.arg(1).to_string()));
    super::no_extra(l, 2)
}

fn timeout(k: &mut KwCx<'_>, l: &Line, field: fn(&mut Timeouts) -> &mut Option<Duration>, p: &mut ProxyDraft) -> R {
    if l.len() < 3 {
        return Err(format!("'{}' expects an integer value (in milliseconds)", k.name));
    }
    let v = parse_time(l.arg(2)).map_err(|e| format!("{e} in '{}'", k.name))?;
    *field(&mut p.settings.timeouts) = Some(v);
    super::no_extra(l, 3)
}

fn conn_mode(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line, m: HttpConnMode) -> R {
    super::no_extra(l, k.kw_words)?;
    p.settings.options.http_conn_mode = if k.negated { HttpConnMode::KeepAlive } else { m };
    Ok(())
}

/// Parses `10.0.0.0/8`, `127.0.0.1`, `::1/128`.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = a.parse().map_err(|_| format!("invalid network '{s}'"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(v) if v <= max => v,
            _ => {
                let mask: std::net::Ipv4Addr = l.parse().map_err(|_| format!("invalid mask in '{s}'"))?;
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return Err(format!("invalid mask in '{s}'"));
                }
                u8::try_from(bits.leading_ones()).unwrap_or(32)
            }
        },
    };
    Ok(IpNet { addr, prefix })
}

fn p_forwardfor(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if k.negated {
        p.settings.options.forwardfor = None;
        return Ok(());
    }
    let mut ff = ForwardFor { except: None, header: "X-Forwarded-For".into(), if_none: false };
    let mut i = 2;
    while i < l.len() {
        match l.arg(i) {
            "except" => {
                ff.except = Some(parse_net(l.arg(i + 1)).map_err(|e| format!("'except' {e}"))?);
                i += 2;
            }
            "header" => {
                if l.arg(i + 1).is_empty() {
                    return Err("'header' requires an argument.".into());
                }
                ff.header = l.arg(i + 1).to_string();
                i += 2;
            }
            "if-none" => {
                ff.if_none = true;
                i += 1;
            }
            w => return Err(format!("'option forwardfor' only supports optional values: 'except', 'header' and 'if-none' (got '{w}').")),
        }
    }
    p.settings.options.forwardfor = Some(ff);
    Ok(())
}

fn p_originalto(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    p.settings.options.originalto = (!k.negated).then(|| {
        if l.arg(2) == "header" { l.arg(3).to_string() } else { "X-Original-To".to_string() }
    });
    Ok(())
}

fn p_redispatch(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    p.settings.options.redispatch = if k.negated {
        None
    } else if l.arg(2).is_empty() {
        Some(-1)
    } else {
        Some(l.arg(2).parse().map_err(|_| format!("invalid interval '{}'", l.arg(2)))?)
    };
    super::no_extra(l, 3)
}

fn p_httplog(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    p.settings.options.httplog = match (k.negated, l.arg(2)) {
        (true, _) => None,
        (false, "") => Some(HttpLog { clf: false }),
        (false, "clf") => Some(HttpLog { clf: true }),
        (false, w) => return Err(format!("expects no argument or 'clf', got '{w}'.")),
    };
    super::no_extra(l, 3)
}

fn p_retry_on(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    const EVENTS: &[&str] = &[
        "none", "conn-failure", "empty-response", "junk-response", "response-timeout", "0rtt-rejected",
        "all-retryable-errors", "401", "403", "404", "408", "425", "500", "501", "502", "503", "504",
    ];
    let words = l.rest(1);
    for w in &words {
        if !EVENTS.contains(&w.as_str()) {
            return Err(format!("'retry-on' unknown keyword '{w}'."));
        }
    }
    p.settings.retry_on = Some(words);
    Ok(())
}

fn p_http_reuse(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    p.settings.http_reuse = Some(match l.arg(1) {
        "never" => HttpReuse::Never,
        "safe" => HttpReuse::Safe,
        "aggressive" => HttpReuse::Aggressive,
        "always" => HttpReuse::Always,
        w => return Err(format!("'http-reuse' only supports 'never', 'safe', 'aggressive', 'always' (got '{w}').")),
    });
    super::no_extra(l, 2)
}

/// Reads and validates an errorfile: it must be a raw HTTP response.
pub fn load_errorfile(l: &Line, status_word: &str, path: &str) -> Result<ErrorFile, String> {
    const CODES: &[u16] = &[200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504];
    let status: u16 = status_word.parse().map_err(|_| format!("invalid status code '{status_word}'"))?;
    if !CODES.contains(&status) {
        return Err(format!("status code '{status}' not handled."));
    }
    let contents = std::fs::read(path).map_err(|e| format!("error opening file '{path}' : {e}"))?;
    if contents.is_empty() {
        return Err(format!("file '{path}' is empty"));
    }
    if !httparse_lite::looks_like_response(&contents) {
        return Err(format!("file '{path}' is not a valid HTTP response (it must start with 'HTTP/1.x <code>' and contain a blank line after the headers)."));
    }
    Ok(ErrorFile { loc: l.loc.clone(), status, path: PathBuf::from(path), contents: Arc::from(contents) })
}

/// Minimal raw-response check (the engine parses errorfiles fully when it serves them).
mod httparse_lite {
    pub fn looks_like_response(b: &[u8]) -> bool {
        let starts = b.starts_with(b"HTTP/1.0 ") || b.starts_with(b"HTTP/1.1 ");
        let code_ok = b.get(9..12).is_some_and(|c| c.iter().all(u8::is_ascii_digit));
        let has_end = b.windows(4).any(|w| w == b"\r\n\r\n") || b.windows(2).any(|w| w == b"\n\n");
        starts && code_ok && has_end
    }
}

fn p_errorfile(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.len() < 3 {
        return Err(format!("'{}' expects <status_code> and <file> as arguments.", k.name));
    }
    let ef = load_errorfile(l, l.arg(1), l.arg(2))?;
    p.settings.errorfiles.retain(|e| e.status != ef.status);
    p.settings.errorfiles.push(ef);
    super::no_extra(l, 3)
}

fn p_errorfiles(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    p.settings.errorfiles_sections.push((l.loc.clone(), l.arg(1).to_string()));
    Ok(())
}

fn p_log(_: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    if l.arg(1) == "global" || !l.arg(1).is_empty() {
        let t = super::global::parse_log(l, true)?;
        p.settings.log.push(t);
        return Ok(());
    }
    Err("'log' expects either <address[:port]> and <facility> or 'global' as arguments.".into())
}

fn p_balance(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let algo = l.arg(1);
    let b = parse_balance(algo, &l.rest(2))?;
    if !matches!(b, Balance::Roundrobin) {
        let name = algo.split('(').next().unwrap_or(algo);
        k.cx.use_kw(&l.loc, &format!("balance {name}"), &LB);
    }
    p.settings.balance = Some(b);
    Ok(())
}

fn paren_arg(algo: &str) -> Option<&str> {
    algo.split_once('(').and_then(|(_, r)| r.strip_suffix(')'))
}

fn parse_balance(algo: &str, args: &[String]) -> Result<Balance, String> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let name = algo.split('(').next().unwrap_or(algo);
    Ok(match name {
        "roundrobin" => Balance::Roundrobin,
        "static-rr" => Balance::StaticRr,
        "leastconn" => Balance::Leastconn,
        "first" => Balance::First,
        "source" => Balance::Source,
        "uri" => {
            let mut b = Balance::Uri { whole: false, path_only: false, len: None, depth: None };
            if let Balance::Uri { whole, path_only, len, depth } = &mut b {
                let mut i = 0;
                while i < args.len() {
                    match arg(i) {
                        "whole" => *whole = true,
                        "path-only" => *path_only = true,
                        "len" => { *len = Some(parse_u32(arg(i + 1))?); i += 1; }
                        "depth" => { *depth = Some(parse_u32(arg(i + 1))?); i += 1; }
                        w => return Err(format!("'balance uri' only accepts parameters 'len', 'depth', 'path-only', and 'whole' (got '{w}').")),
                    }
                    i += 1;
                }
            }
            b
        }
        "url_param" => {
            if arg(0).is_empty() {
                return Err("'balance url_param' requires an URL parameter name.".into());
            }
            Balance::UrlParam { name: arg(0).to_string(), check_post: arg(1) == "check_post" }
        }
        "hdr" => {
            let h = paren_arg(algo).filter(|h| !h.is_empty()).ok_or("'balance hdr' requires an http header field name.")?;
            Balance::Hdr { name: h.to_string(), use_domain_only: arg(0) == "use_domain_only" }
        }
        "random" => {
            let draws = paren_arg(algo).map(parse_u32).transpose()?.unwrap_or(2);
            Balance::Random { draws }
        }
        "rdp-cookie" => Balance::RdpCookie { name: paren_arg(algo).map(str::to_string) },
        "hash" => {
            let e = acl::parse_sample(arg(0))?;
            Balance::Hash { expr: e }
        }
        _ => return Err(format!("unknown balancing algorithm '{algo}' (supported: roundrobin, static-rr, leastconn, first, source, uri, url_param, hdr(name), random, rdp-cookie, hash).")),
    })
}

fn p_hash_type(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let mut h = HashType::default();
    h.consistent = match l.arg(1) {
        "map-based" => false,
        "consistent" => true,
        w => return Err(format!("'hash-type' expects 'map-based' or 'consistent' (got '{w}').")),
    };
    h.function = match l.arg(2) {
        "" | "sdbm" => HashFunction::Sdbm,
        "djb2" => HashFunction::Djb2,
        "wt6" => HashFunction::Wt6,
        "crc32" => HashFunction::Crc32,
        "none" => HashFunction::None,
        w => return Err(format!("unknown hash function '{w}'.")),
    };
    h.avalanche = match l.arg(3) {
        "" => false,
        "avalanche" => true,
        w => return Err(format!("unknown hash modifier '{w}'.")),
    };
    p.settings.hash_type = Some(h);
    Ok(())
}

fn p_cookie(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let mut c = Cookie {
        loc: l.loc.clone(), name: l.arg(1).to_string(), mode: CookieMode::Rewrite, indirect: false,
        nocache: false, postonly: false, preserve: false, httponly: false, secure: false, dynamic: false,
        domains: Vec::new(), maxidle: None, maxlife: None, attrs: Vec::new(),
    };
    let mut i = 2;
    while i < l.len() {
        match l.arg(i) {
            "rewrite" => c.mode = CookieMode::Rewrite,
            "insert" => c.mode = CookieMode::Insert,
            "prefix" => c.mode = CookieMode::Prefix,
            "indirect" => c.indirect = true,
            "nocache" => c.nocache = true,
            "postonly" => c.postonly = true,
            "preserve" => c.preserve = true,
            "httponly" => c.httponly = true,
            "secure" => c.secure = true,
            "dynamic" => c.dynamic = true,
            "domain" => { c.domains.push(l.arg(i + 1).to_string()); i += 1; }
            "maxidle" => { c.maxidle = Some(parse_time_s(l.arg(i + 1))?); i += 1; }
            "maxlife" => { c.maxlife = Some(parse_time_s(l.arg(i + 1))?); i += 1; }
            "attr" => { c.attrs.push(l.arg(i + 1).to_string()); i += 1; }
            w => return Err(format!("'cookie' supports 'rewrite', 'insert', 'prefix', 'indirect', 'nocache', 'postonly', 'domain', 'maxidle', 'dynamic', 'maxlife', 'attr' and 'httponly' options (got '{w}').")),
        }
        i += 1;
    }
    p.settings.cookie = Some(c);
    Ok(())
}

fn parse_time_s(s: &str) -> Result<Duration, String> {
    crate::units::parse_time_unit(s, 1_000_000)
}

fn p_capture(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let what = l.arg(1).to_string();
    let (name, len_at) = if what == "cookie" { (l.arg(2), 3) } else { (l.arg(3), 4) };
    if what != "cookie" && l.arg(2) != "header" {
        return Err(format!("'capture {what}' expects 'header'."));
    }
    if l.arg(len_at) != "len" {
        return Err(format!("'{}' expects '<name> len <length>'.", k.name));
    }
    let len = parse_u32(l.arg(len_at + 1))?;
    p.captures.push(Capture { loc: l.loc.clone(), what, name: name.to_string(), len });
    Ok(())
}

fn stats(p: &mut ProxyDraft) -> &mut Stats {
    p.stats.get_or_insert_with(Stats::default)
}

fn p_stats_auth(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    need(k, l, 1)?;
    let (u, pw) = l.arg(2).split_once(':').ok_or("'stats auth' expects <user>:<password>.")?;
    stats(p).auths.push((u.to_string(), pw.to_string()));
    Ok(())
}

fn p_stats_admin(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let cond = acl::parse_condition(k, p, l, 2)?.ok_or("'stats admin' requires either 'if' or 'unless' followed by a condition.")?;
    stats(p).admin.push(cond);
    Ok(())
}
