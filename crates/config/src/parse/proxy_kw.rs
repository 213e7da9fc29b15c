//! The proxy keyword table (`defaults`/`frontend`/`backend`/`listen`) and the parsers of the
//! simple keywords (mode, timeouts, options, balance, retries, errorfile, stats...). Rules,
//! ACLs, binds, servers and checks have their own modules.
//!
//! Owns: [`KEYWORDS`], [`ProxyKw`].

use crate::model::HttpConnMode;
use crate::registry::Status;
use crate::source::Line;
use crate::units::parse_u32;

use super::proxy::{KwCx, ProxyDraft, ALL, BE, DEF, FE, NDEF};
use super::proxy_opts::*;
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

const fn kw(
    name: &'static str,
    caps: u8,
    status: Status,
    doc: &'static str,
    parse: ProxyFn,
) -> ProxyKw {
    ProxyKw {
        name,
        caps,
        status,
        doc,
        parse,
    }
}

const S: Status = Status::Supported;
const STK: Status = Status::Supported;
/// `stick on|match|store-*` persistence: the tables support it, the engine does not call it yet.
const NO: Status = Status::Unsupported;
const DFB: u8 = ALL;
const DB: u8 = DEF | BE;
const DF: u8 = DEF | FE;
const FB: u8 = FE | BE;
const RULES: u8 = NDEF | FE | BE;

/// Proxy keywords ringlb knows, with where they are allowed and their status.
#[rustfmt::skip]
pub static KEYWORDS: &[ProxyKw] = &[
    kw("mode", DFB, S, "proxy mode: http or tcp", p_mode),
    kw("bind", FE, S, "listening address(es) and options", bind::parse_bind),
    kw("maxconn", DF, S, "frontend connection limit", |k, p, l| u32_set(k, l, &mut p.settings.maxconn)),
    kw("default_backend", DF, S, "backend used when no use_backend matches", p_default_backend),
    kw("use_backend", FE, S, "switch to a backend (conditions: issue #6)", rules::use_backend),
    kw("server", BE, S, "a server: address, port, weight, maxconn, backup, disabled...", server::parse_server),
    kw("default-server", DB, S, "default options of following servers", server::parse_default_server),
    kw("balance", DB, S, "load-balancing algorithm (every algorithm of 2.6)", p_balance),
    kw("retries", DB, S, "connection retries (default 3)", |k, p, l| u32_set(k, l, &mut p.settings.retries)),
    kw("retry-on", DB, S, "events that trigger a retry", p_retry_on),
    kw("http-reuse", DB, S, "idle server connection reuse: never|safe|aggressive|always", p_http_reuse),
    kw("errorfile", DFB, S, "raw HTTP response file for a status code", p_errorfile),
    kw("log", DFB, S, "log targets", p_log),
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
    kw("timeout check", DB, S, "health check read timeout", |k, p, l| timeout(k, l, |t| &mut t.check, p)),
    kw("option forwardfor", DFB, S, "add X-Forwarded-For [except <net>] [header <name>] [if-none]", p_forwardfor),
    kw("option http-server-close", DFB, S, "close server side after each response", |k, p, l| conn_mode(k, p, l, HttpConnMode::ServerClose)),
    kw("option httpclose", DFB, S, "close both sides after each response", |k, p, l| conn_mode(k, p, l, HttpConnMode::Close)),
    kw("option http-keep-alive", DFB, S, "keep-alive on both sides (default)", |k, p, l| conn_mode(k, p, l, HttpConnMode::KeepAlive)),
    kw("option redispatch", DB, S, "retry on another server [interval]", p_redispatch),
    kw("option httplog", DFB, S, "HTTP log format [clf]", p_httplog),
    kw("option httpslog", DFB, S, "HTTPS log format (httplog + TLS facts)", |k, p, l| {
        p.settings.options.httplog = (!k.negated).then_some(crate::model::HttpLog { clf: false });
        opt_other(k, p, l)
    }),
    kw("option tcplog", DFB, S, "TCP log format", |k, p, l| bool_opt(k, l, &mut p.settings.options.tcplog)),
    kw("option dontlognull", DFB, S, "do not log empty connections", |k, p, l| bool_opt(k, l, &mut p.settings.options.dontlognull)),
    kw("option log-health-checks", DB, S, "log every change of a health check's status or health (notice)", |k, p, l| bool_opt(k, l, &mut p.settings.options.log_health_checks)),
    kw("option httpchk", DB, S, "HTTP health checks [<method> <uri> <version>]", checks::option_httpchk),
    kw("option tcp-check", DB, S, "run tcp-check rules as health check", |k, p, l| bool_opt(k, l, &mut p.settings.options.tcp_check)),
    kw("option abortonclose", DB, S, "abort queued requests whose client left", |k, p, l| bool_opt(k, l, &mut p.settings.options.abortonclose)),
    kw("option allbackups", DB, S, "use all backup servers at once", |k, p, l| bool_opt(k, l, &mut p.settings.options.allbackups)),
    kw("option http-buffer-request", DFB, Status::Supported, "buffer the request body before the rules (HTTP/1 and h2; on the frontend or its default backend; timeout http-request bounds the wait, then 408)", |k, p, l| bool_opt(k, l, &mut p.settings.options.http_buffer_request)),
    kw("option prefer-last-server", DB, S, "keep a keep-alive client on its server (with http-reuse never, as haproxy 2.6)", |k, p, l| bool_opt(k, l, &mut p.settings.options.prefer_last_server)),
    kw("option originalto", DFB, S, "add X-Original-To: <destination ip> [except <net>] [header <name>]", p_originalto),
    kw("option log-separate-errors", DFB, S, "log errors (5xx, retries, aborts) at err instead of info", opt_other),
    kw("option logasap", DF, S, "log HTTP transactions when the response head is sent (`+` before partial %B/%Ta/%Tt)", opt_other),
    kw("option http-no-delay", DFB, Status::Accepted { why: "ringlb already sends every message at once: TCP_NODELAY on every socket and no MSG_MORE" }, "no send delay on HTTP", opt_other),
    kw("option http-pretend-keepalive", DB, S, "pretend keep-alive to servers", opt_other),
    kw("option http-ignore-probes", DF, S, "do not log/408 empty pre-connects", opt_other),
    kw("option http-use-proxy-header", DF, S, "proxied requests use Proxy-Authorization, 407 challenges", opt_other),
    kw("option accept-invalid-http-request", DF, Status::Accepted { why: "ringlb keeps its strict HTTP/1 parser (docs/reliability.md): requests haproxy would let through with this option still get a 400" }, "relax request parsing", opt_other),
    kw("option accept-invalid-http-response", DB, Status::Accepted { why: "ringlb keeps its strict HTTP/1 parser (docs/reliability.md): responses haproxy would let through with this option still get a 502" }, "relax response parsing", opt_other),
    kw("option h1-case-adjust-bogus-client", DF, NO, "HTTP/1 header case rewrite", opt_other),
    kw("option h1-case-adjust-bogus-server", DB, NO, "HTTP/1 header case rewrite", opt_other),
    kw("option tcpka", DFB, S, "TCP keep-alive on both sides", opt_other),
    kw("option clitcpka", DF, S, "TCP keep-alive to clients", opt_other),
    kw("option srvtcpka", DB, S, "TCP keep-alive to servers", opt_other),
    kw("option nolinger", DFB, S, "RST on close", opt_other),
    kw("option splice-auto", DFB, Status::Accepted { why: "ringlb relays through io_uring's provided buffers and never uses splice()" }, "kernel splicing", opt_other),
    kw("option splice-request", DFB, Status::Accepted { why: "ringlb relays through io_uring's provided buffers and never uses splice()" }, "kernel splicing", opt_other),
    kw("option splice-response", DFB, Status::Accepted { why: "ringlb relays through io_uring's provided buffers and never uses splice()" }, "kernel splicing", opt_other),
    kw("option contstats", DF, Status::Accepted { why: "ringlb adds a transaction's or TCP session's bytes to the counters when it ends; it does not update them during long transfers" }, "continuous traffic stats", opt_other),
    kw("option socket-stats", DF, S, "one stats row per listener", opt_other),
    kw("option independent-streams", DFB, S, "sends do not refresh the receiving side's read timeout", opt_other),
    kw("option checkcache", DB, S, "block cacheable responses with cookies", opt_other),
    kw("option persist", DB, S, "keep persistence to a down server", opt_other),
    kw("option transparent", DB, NO, "transparent proxying", opt_other),
    kw("option ssl-hello-chk", DB, S, "SSLv3 hello health check", opt_other),
    kw("option smtpchk", DB, S, "SMTP health check", opt_args),
    kw("option mysql-check", DB, S, "MySQL health check", opt_args),
    kw("option pgsql-check", DB, S, "PostgreSQL health check", opt_args),
    kw("option redis-check", DB, S, "Redis health check", opt_other),
    kw("option ldap-check", DB, S, "LDAPv3 anonymous bind health check", opt_other),
    kw("option external-check", DB, NO, "external command health check", opt_other),
    kw("option spop-check", BE, NO, "SPOP health check", opt_other),
    kw("option disable-h2-upgrade", DF, Status::Accepted { why: "haproxy 2.6.12 serves a clear-text connection that starts with the h2 preface in HTTP/2 with or without it (measured), and so does ringlb" }, "refuse HTTP/1 to h2 upgrade", opt_other),
    kw("option http-restrict-req-hdr-names", DFB, S, "reject/delete odd header names", p_restrict_hdr_names),
    kw("option dontlog-normal", DF, S, "log only failed transactions (5xx, retries, aborts)", opt_other),
    kw("hash-type", DB, S, "hash method and function for hashing algorithms", p_hash_type),
    kw("hash-balance-factor", DB, S, "bounded-load consistent hashing: a server's share of the load", p_hash_balance_factor),
    kw("cookie", DB, S, "cookie-based persistence: insert, rewrite, prefix, dynamic, maxidle, maxlife", p_cookie),
    kw("fullconn", DB, S, "dynamic maxconn reference", |k, p, l| u32_set(k, l, &mut p.settings.fullconn)),
    kw("http-check connect", DB, S, "health check step: connect", checks::http_check),
    kw("http-check send", DB, S, "health check step: send a request", checks::http_check),
    kw("http-check expect", DB, S, "health check step: expect a response", checks::http_check),
    kw("http-check comment", DB, S, "health check step: comment", checks::http_check),
    kw("http-check disable-on-404", DB, S, "404 puts the server in maintenance", checks::http_check),
    kw("http-check send-state", DB, S, "send X-Haproxy-Server-State (scur and qcur are 0: connection counts live on the worker shards)", checks::http_check),
    kw("http-check set-var", DB, S, "health check step: set a variable", checks::http_check),
    kw("http-check set-var-fmt", DB, S, "health check step: set a variable from a log-format", checks::http_check),
    kw("http-check unset-var", DB, S, "health check step: unset a variable", checks::http_check),
    kw("tcp-check connect", DB, S, "tcp check step: connect", checks::tcp_check),
    kw("tcp-check send", DB, S, "tcp check step: send a string", checks::tcp_check),
    kw("tcp-check send-lf", DB, S, "tcp check step: send a log-format string", checks::tcp_check),
    kw("tcp-check send-binary", DB, S, "tcp check step: send hex bytes", checks::tcp_check),
    kw("tcp-check send-binary-lf", DB, S, "tcp check step: send log-format hex", checks::tcp_check),
    kw("tcp-check expect", DB, S, "tcp check step: expect data", checks::tcp_check),
    kw("tcp-check comment", DB, S, "tcp check step: comment", checks::tcp_check),
    kw("tcp-check set-var", DB, S, "tcp check step: set a variable", checks::tcp_check),
    kw("tcp-check set-var-fmt", DB, S, "tcp check step: set a variable from a log-format", checks::tcp_check),
    kw("tcp-check unset-var", DB, S, "tcp check step: unset a variable", checks::tcp_check),
    kw("tcp-check action", DB, NO, "not a haproxy 2.6 keyword (haproxy -c refuses it: use tcp-check set-var)", checks::tcp_check),
    kw("acl", RULES, S, "declare a named ACL", acl::parse_acl_line),
    kw("http-request", RULES, S, "HTTP request rule (action + condition)", rules::http_request),
    kw("http-response", RULES, S, "HTTP response rule (action + condition)", rules::http_response),
    kw("http-after-response", RULES, S, "rule applied to all responses", rules::http_after_response),
    kw("tcp-request connection", RULES, S, "layer-4 rule at accept", rules::tcp_request),
    kw("tcp-request session", RULES, S, "rule after the handshake", rules::tcp_request),
    kw("tcp-request content", RULES, S, "rule on buffered content", rules::tcp_request),
    kw("tcp-request inspect-delay", RULES, S, "how long to wait for content", rules::tcp_request),
    kw("tcp-response content", RULES, S, "rule on response content", rules::tcp_request),
    kw("tcp-response inspect-delay", RULES, S, "how long to wait for response content", rules::tcp_request),
    kw("redirect", FB, S, "HTTP redirect rule (after the http-request rules)", rules::redirect),
    kw("use-server", BE, S, "force a server", rules::generic_cond),
    kw("force-persist", BE, S, "persistence (cookie, use-server) may pick a down server", rules::generic_cond),
    kw("ignore-persist", BE, S, "the persistence cookie is ignored", rules::generic_cond),
    kw("monitor-uri", DF, S, "URI answered 200 by the proxy itself", |k, p, l| {
        need(k, l, 1)?;
        p.monitor_uri = Some(l.arg(k.kw_words).to_string());
        Ok(())
    }),
    kw("monitor fail", FE, S, "make monitor-uri fail on a condition", rules::generic_cond),
    kw("capture request", FE, S, "capture a request header", p_capture),
    kw("capture response", FE, S, "capture a response header", p_capture),
    kw("capture cookie", FE, S, "capture a cookie", p_capture),
    kw("declare capture", FE, S, "declare a capture slot", p_declare_capture),
    kw("unique-id-format", DF, S, "log-format of the unique request id", |k, p, l| {
        need(k, l, 1)?;
        p.settings.unique_id_format = Some(l.arg(k.kw_words).to_string());
        p.settings.format_locs.unique_id_format = Some(l.loc.clone());
        Ok(())
    }),
    kw("unique-id-header", DF, S, "header carrying the unique id", |k, p, l| {
        need(k, l, 1)?;
        p.settings.unique_id_header = Some(l.arg(k.kw_words).to_string());
        Ok(())
    }),
    kw("errorloc", DFB, S, "redirect (302) for a status code", p_errorloc),
    kw("errorloc302", DFB, S, "redirect (302) for a status code", p_errorloc),
    kw("errorloc303", DFB, S, "redirect (303) for a status code", p_errorloc),
    kw("errorfiles", DFB, S, "use an http-errors section [<code>...]", p_errorfiles),
    kw("http-error", DFB, S, "custom error response", p_http_error),
    kw("log-format", DFB, S, "custom log line format", |k, p, l| {
        need(k, l, 1)?;
        p.settings.log_format = Some(l.rest(k.kw_words).join(" "));
        p.settings.format_locs.log_format = Some(l.loc.clone());
        Ok(())
    }),
    kw("log-format-sd", DFB, S, "RFC5424 structured data (rfc5424 targets only)", |k, p, l| {
        need(k, l, 1)?;
        p.settings.log_format_sd = Some(l.rest(k.kw_words).join(" "));
        p.settings.format_locs.log_format_sd = Some(l.loc.clone());
        Ok(())
    }),
    kw("error-log-format", DFB, S, "log format of connection errors (TLS handshake)", |k, p, l| {
        need(k, l, 1)?;
        p.settings.error_log_format = Some(l.rest(k.kw_words).join(" "));
        p.settings.format_locs.error_log_format = Some(l.loc.clone());
        Ok(())
    }),
    kw("log-tag", DFB, S, "syslog tag of this proxy's traffic logs", |k, p, l| {
        need(k, l, 1)?;
        p.settings.log_tag = Some(l.arg(k.kw_words).to_string());
        super::no_extra(l, k.kw_words + 1)
    }),
    kw("stick-table", FB, STK, "declare this proxy's stick table", rules::stick_table),
    kw("stick on", BE, S, "stick on a sample", rules::generic_cond),
    kw("stick match", BE, S, "match a stick entry", rules::generic_cond),
    kw("stick store-request", BE, S, "store a request sample", rules::generic_cond),
    kw("stick store-response", BE, S, "store a response sample", rules::generic_cond),
    kw("stats enable", DFB, S, "enable the stats page", |_, p, _| {
        stats(p).enabled = true;
        Ok(())
    }),
    kw("stats uri", DFB, S, "URI of the stats page", |k, p, l| {
        need(k, l, 1)?;
        let s = stats(p);
        s.enabled = true;
        s.uri = Some(l.arg(2).to_string());
        Ok(())
    }),
    kw("stats realm", DFB, S, "basic-auth realm of the stats page", |k, p, l| {
        need(k, l, 1)?;
        stats(p).realm = Some(l.arg(2).to_string());
        Ok(())
    }),
    kw("stats refresh", DFB, S, "auto-refresh period of the stats page", |k, p, l| {
        need(k, l, 1)?;
        stats(p).refresh = Some(parse_time_s(l.arg(2))?);
        Ok(())
    }),
    kw("stats auth", DFB, S, "user:password for the stats page", p_stats_auth),
    kw("stats admin", FB, S, "enable admin actions on the stats page if/unless cond", p_stats_admin),
    kw("stats hide-version", DFB, S, "hide the version on the stats page", |_, p, _| {
        stats(p).hide_version = true;
        Ok(())
    }),
    kw("stats show-legends", DFB, S, "show legends on the stats page", |_, p, _| {
        stats(p).show_legends = true;
        Ok(())
    }),
    kw("stats show-node", DFB, S, "show the node name on the stats page", |_, p, l| {
        let node = (!l.arg(2).is_empty()).then(|| l.arg(2).to_string());
        stats(p).show_node = Some(node);
        Ok(())
    }),
    kw("stats show-desc", DFB, S, "show a description on the stats page", |_, p, l| {
        stats(p).show_desc = Some(l.rest(2).join(" "));
        Ok(())
    }),
    kw("stats scope", DFB, S, "limit the stats page to some proxies", |k, p, l| {
        need(k, l, 1)?;
        stats(p).scope.push(l.arg(2).to_string());
        Ok(())
    }),
    kw("stats http-request", FB, S, "stats page access: allow|deny|auth [realm R] [if|unless cond]", p_stats_http_request),
    kw("description", FB, S, "proxy description (heads its stats page table)", generic),
    kw("id", FB, S, "numeric proxy id (stats iid, show stat filters)", |k, p, l| {
        need(k, l, 1)?;
        parse_u32(l.arg(1))?;
        generic(k, p, l)
    }),
    kw("disabled", DFB, S, "start the proxy disabled", |_, p, _| {
        p.disabled = true;
        Ok(())
    }),
    kw("enabled", DFB, S, "start the proxy enabled", |_, p, _| {
        p.disabled = false;
        Ok(())
    }),
    kw("backlog", DF, S, "listen backlog", u32_generic),
    kw("rate-limit sessions", DF, S, "new sessions per second", u32_generic),
    kw("source", DB, S, "source address[:port] towards servers (no usesrc)", generic),
    kw("http-send-name-header", DB, S, "send the server name in a header", generic_n1),
    kw("max-keep-alive-queue", DB, S, "keep-alive queue limit", p_max_ka_queue),
    kw("max-session-srv-conns", DF, Status::Accepted { why: "ringlb attaches no server connections to a client session (they go back to the shard pool; send-proxy ones keyed by the client addresses), so there is nothing to cap" }, "server connections per session", u32_generic),
    kw("load-server-state-from-file", DB, S, "server state file", generic),
    kw("server-state-file-name", DB, S, "server state file name", generic),
    kw("dynamic-cookie-key", DB, S, "key of `cookie ... dynamic` server cookies (HAProxy's XXH64 of key, address, port)", generic),
    kw("persist rdp-cookie", DB, S, "RDP cookie persistence (the server at the cookie's address)", p_persist_rdp_cookie),
    kw("server-template", BE, S, "<prefix> <num|range> <addr>[:port] [options]: numbered servers", server::parse_server_template),
    kw("compression", DFB, NO, "HTTP compression", generic),
    kw("filter", FB, S, "stream filters: `filter cache <name>` only (trace, compression, spoe and others are refused)", filter_cache),
    kw("email-alert mailers", DB, S, "mailers section that receives server state changes", generic_n1),
    kw("email-alert from", DB, S, "sender address of email alerts", generic_n1),
    kw("email-alert to", DB, S, "recipient address of email alerts", generic_n1),
    kw("email-alert level", DB, S, "most verbose level mailed (default alert)", generic_n1),
    kw("email-alert myhostname", DB, S, "HELO name of email alerts (default: host name)", generic_n1),
    kw("external-check command", DB, NO, "external check command", generic),
    kw("external-check path", DB, NO, "external check PATH", generic),
    kw("dispatch", BE, NO, "single-server dispatch (deprecated)", generic),
    kw("bind-process", DFB, Status::Accepted { why: "nbproc is gone: ringlb runs one process with shards" }, "processes of the listeners (deprecated)", generic),
    kw("clitcpka-cnt", DF, S, "client TCP keep-alive probes", generic),
    kw("clitcpka-idle", DF, S, "client TCP keep-alive idle time", generic),
    kw("clitcpka-intvl", DF, S, "client TCP keep-alive interval", generic),
    kw("srvtcpka-cnt", DB, S, "server TCP keep-alive probes", generic),
    kw("srvtcpka-idle", DB, S, "server TCP keep-alive idle time", generic),
    kw("srvtcpka-intvl", DB, S, "server TCP keep-alive interval", generic),
    kw("option tcp-smart-accept", DF, S, "delay accept ack until data", opt_other),
    kw("option tcp-smart-connect", DB, S, "send data with the connect ack", opt_other),
    kw("option idle-close-on-response", DF, S, "close idle client connections on response", opt_other),
    kw("transparent", DB, NO, "transparent proxying (deprecated)", generic),
    kw("use-fcgi-app", BE, NO, "FastCGI application", generic),
];

/// `filter cache [<name>]`: the cache's filter, which ringlb runs wherever `cache-use` /
/// `cache-store` are (declaring it changes nothing); the other filters are not implemented.
fn filter_cache(k: &mut KwCx<'_>, p: &mut ProxyDraft, l: &Line) -> R {
    let kind = l.arg(k.kw_words);
    if kind != "cache" {
        return Err(format!(
            "filter '{kind}' is not supported by ringlb (only 'filter cache' is)"
        ));
    }
    generic(k, p, l)
}
