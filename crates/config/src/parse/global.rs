//! The `global` section: keyword table and parsers into [`Global`].
//!
//! Owns: [`KEYWORDS`] (the global part of the registry) and the `log` line parser shared with
//! proxies.

use crate::model::{CpuMap, Global, LogTarget, SslOptions, StatsSocket, TlsVersion};
use crate::registry::{nearest, Status};
use crate::source::Line;
use crate::units::{parse_size, parse_time, parse_time_unit, parse_u32};

use super::{need_args, no_extra, Cx, R};

/// Parser of one global keyword.
pub type GlobalFn = fn(&mut Cx, &mut Global, &Line) -> R;

/// One registered global keyword.
#[derive(Debug)]
pub struct GlobalKw {
    pub name: &'static str,
    pub status: Status,
    pub doc: &'static str,
    pub parse: GlobalFn,
}

const fn kw(name: &'static str, status: Status, doc: &'static str, parse: GlobalFn) -> GlobalKw {
    GlobalKw {
        name,
        status,
        doc,
        parse,
    }
}

const S: Status = Status::Supported;
const NO: Status = Status::Unsupported;
/// `ssl-provider*`: OpenSSL 3 providers, meaningless with rustls.
const QUIC_SECRET: Status = Status::Accepted {
    why: "it only derives QUIC tokens in haproxy 2.6, and ringlb has no QUIC listeners",
};
const OPENSSL3_PROVIDER: Status = Status::Accepted {
    why: "OpenSSL 3 providers do not apply: ringlb uses rustls with the aws-lc-rs provider",
};
/// Variables live in their transaction or session, each one sample cut by the buffer limits.
const VARS: Status = Status::Accepted {
    why: "ringlb does not account variable memory: variables live with their transaction or session, each holding one sample bounded by tune.bufsize",
};
/// Patterns are compiled at load time.
const PATCACHE: Status = Status::Accepted {
    why: "ringlb compiles ACL and map patterns at load time (exact strings and networks of long lists behind hash indexes): there is no lookup cache to size",
};
const POLL: Status = Status::Accepted {
    why: "ringlb uses io_uring, not a poller",
};
const LUA: Status = Status::Accepted {
    why: "ringlb has no Lua (lua-load is unsupported)",
};
const COMP: Status = Status::Accepted {
    why: "ringlb has no HTTP compression (compression is unsupported)",
};

/// Global keywords ringlb knows, with their status.
#[rustfmt::skip]
pub static KEYWORDS: &[GlobalKw] = &[
    kw("daemon", S, "run in the background", |_, g, l| {
        flag(l, &mut g.daemon)
    }),
    kw("master-worker", S, "master-worker mode", |_, g, l| {
        flag_opt(l, &mut g.master_worker)
    }),
    kw(
        "nbthread",
        S,
        "number of worker threads (ringlb shards)",
        p_nbthread,
    ),
    kw(
        "cpu-map",
        S,
        "pin threads to CPUs: [auto:]<threads> <cpus>",
        p_cpu_map,
    ),
    kw("maxconn", S, "process-wide connection limit (read with atol() like haproxy)", |_, g, l| {
        need_args(l, 1, 1, "an integer argument")?;
        let digits: String = l.arg(1).chars().take_while(char::is_ascii_digit).collect();
        g.maxconn = Some(digits.parse().unwrap_or(0));
        no_extra(l, 2)
    }),
    kw("pidfile", S, "write the pid to this file", |_, g, l| {
        path_arg(l, &mut g.pidfile)
    }),
    kw("user", S, "drop privileges to this user", |_, g, l| {
        str_arg(l, &mut g.user)
    }),
    kw("group", S, "drop privileges to this group", |_, g, l| {
        str_arg(l, &mut g.group)
    }),
    kw("uid", S, "drop privileges to this uid", |_, g, l| {
        u32_arg(l, &mut g.uid)
    }),
    kw("gid", S, "drop privileges to this gid", |_, g, l| {
        u32_arg(l, &mut g.gid)
    }),
    kw(
        "chroot",
        S,
        "chroot to this directory after start",
        |_, g, l| path_arg(l, &mut g.chroot),
    ),
    kw(
        "hard-stop-after",
        S,
        "maximum time of a soft stop",
        |_, g, l| time_arg(l, &mut g.hard_stop_after),
    ),
    kw(
        "grace",
        S,
        "delay before stopping listeners on soft stop",
        |_, g, l| time_arg(l, &mut g.grace),
    ),
    kw(
        "log",
        S,
        "global log targets (syslog UDP/UNIX, stdout/stderr, fd@N)",
        p_log,
    ),
    kw(
        "log-send-hostname",
        S,
        "hostname in syslog header",
        |_, g, l| {
            g.log_send_hostname = Some(l.arg(1).to_string());
            no_extra(l, 2)
        },
    ),
    kw("log-tag", S, "syslog tag", |_, g, l| {
        str_arg(l, &mut g.log_tag)
    }),
    kw(
        "node",
        S,
        "node name shown on the stats page",
        |_, g, l| {
            if l.arg(1).is_empty()
                || !l
                    .arg(1)
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err("'node' requires valid node name - non-empty string with digits(0-9), letters(A-Z, a-z), dot(.), hyphen(-) or underscode(_).".into());
            }
            str_arg(l, &mut g.node)
        },
    ),
    kw(
        "description",
        S,
        "description shown on the stats page (stats show-desc)",
        |_, g, l| {
            g.description = Some(l.rest(1).join(" "));
            Ok(())
        },
    ),
    kw(
        "stats",
        S,
        "stats socket/timeout/maxconn for the runtime API",
        p_stats,
    ),
    kw(
        "spread-checks",
        S,
        "health and agent check intervals vary randomly by up to this percentage (0..50)",
        |_, g, l| {
            u32_arg(l, &mut g.spread_checks)?;
            if g.spread_checks.is_some_and(|p| p > 50) {
                return Err("'spread-checks' needs a positive value in range 0..50.".into());
            }
            Ok(())
        },
    ),
    kw(
        "strict-limits",
        S,
        "fail to start when limits cannot be applied",
        |_, g, l| flag(l, &mut g.strict_limits),
    ),
    kw("setenv", S, "set an environment variable", p_setenv),
    kw(
        "presetenv",
        S,
        "set an environment variable if unset",
        p_setenv,
    ),
    kw("unsetenv", S, "unset environment variables", generic),
    kw(
        "resetenv",
        S,
        "clear the environment except named variables",
        generic,
    ),
    kw("ulimit-n", S, "open-files limit to set (else computed from maxconn)", |_, g, l| {
        u32_arg(l, &mut g.ops.ulimit_n)
    }),
    kw(
        "maxconnrate",
        S,
        "connections accepted per second (each shard takes its share; excess waits in the backlog)",
        |_, g, l| u32_arg(l, &mut g.ops.maxconnrate),
    ),
    kw(
        "maxsessrate",
        S,
        "sessions per second (each shard takes its share; excess waits in the backlog)",
        |_, g, l| u32_arg(l, &mut g.ops.maxsessrate),
    ),
    kw(
        "maxsslconn",
        S,
        "maximum concurrent TLS connections",
        u32_other,
    ),
    kw(
        "maxsslrate",
        S,
        "maximum TLS handshakes per second",
        u32_other,
    ),
    kw("maxpipes", Status::Accepted { why: "ringlb does not use splice() pipes" }, "splice pipes", u32_other),
    kw(
        "busy-polling",
        Status::Accepted {
            why: "ringlb shards park on their io_uring (eventfd wakeup) and do not busy-poll",
        },
        "busy polling",
        generic,
    ),
    kw("ca-base", S, "base directory of CA files", |cx, g, l| {
        generic1(cx, g, l)?;
        cx.tls_bases.ca = Some(l.arg(1).into());
        Ok(())
    }),
    kw("crt-base", S, "base directory of certificates", |cx, g, l| {
        generic1(cx, g, l)?;
        cx.tls_bases.crt = Some(l.arg(1).into());
        Ok(())
    }),
    kw("key-base", S, "base directory of private keys", |cx, g, l| {
        generic1(cx, g, l)?;
        cx.tls_bases.key = Some(l.arg(1).into());
        Ok(())
    }),
    kw(
        "ssl-default-bind-ciphers",
        S,
        "TLS<=1.2 ciphers of binds",
        |_, g, l| str_arg(l, &mut g.ssl.bind_ciphers),
    ),
    kw(
        "ssl-default-bind-ciphersuites",
        S,
        "TLS1.3 suites of binds",
        |_, g, l| str_arg(l, &mut g.ssl.bind_ciphersuites),
    ),
    kw(
        "ssl-default-bind-options",
        S,
        "TLS options of binds",
        |_, g, l| ssl_opts(l, &mut g.ssl.bind_options),
    ),
    kw(
        "ssl-default-server-ciphers",
        S,
        "TLS<=1.2 ciphers towards servers",
        |_, g, l| str_arg(l, &mut g.ssl.server_ciphers),
    ),
    kw(
        "ssl-default-server-ciphersuites",
        S,
        "TLS1.3 suites towards servers",
        |_, g, l| str_arg(l, &mut g.ssl.server_ciphersuites),
    ),
    kw(
        "ssl-default-server-options",
        S,
        "TLS options towards servers",
        |_, g, l| ssl_opts(l, &mut g.ssl.server_options),
    ),
    kw(
        "ssl-default-bind-curves",
        S,
        "ECDH curves of binds",
        generic1,
    ),
    kw(
        "ssl-dh-param-file",
        Status::Accepted {
            why: "rustls has no finite-field DHE suites, so there are no DH parameters to load",
        },
        "DH parameters (rustls has no DHE: kept only)",
        generic1,
    ),
    kw(
        "ssl-server-verify",
        S,
        "verify server certificates: none|required",
        |cx, g, l| {
            if !matches!(l.arg(1), "none" | "required") {
                return Err("'ssl-server-verify' expects 'none' or 'required' as argument.".into());
            }
            generic1(cx, g, l)
        },
    ),
    kw(
        "ssl-load-extra-files",
        Status::Accepted {
            why: "ringlb always looks for <crt>.key and <crt>.ocsp (haproxy's default 'all'); it has no .issuer/.sctl use and no multi-certificate bundles",
        },
        "extra certificate files to load",
        generic,
    ),
    kw(
        "ssl-engine",
        Status::Accepted {
            why: "rustls has no OpenSSL engines",
        },
        "OpenSSL engine (no-op)",
        p_ssl_engine,
    ),
    kw(
        "ssl-mode-async",
        Status::Accepted {
            why: "rustls has no OpenSSL async mode",
        },
        "OpenSSL async mode (no-op)",
        |_, g, l| flag(l, &mut g.ssl_mode_async),
    ),
    kw(
        "tune.bufsize",
        S,
        "per-connection buffer size (default 16384)",
        |_, g, l| size_arg(l, &mut g.tune.bufsize),
    ),
    kw(
        "tune.maxrewrite",
        S,
        "buffer reserve for header rewrites (default 1024)",
        |_, g, l| size_arg(l, &mut g.tune.maxrewrite),
    ),
    kw(
        "tune.http.maxhdr",
        S,
        "maximum number of request headers (default 101)",
        p_maxhdr,
    ),
    kw(
        "tune.ssl.default-dh-param",
        Status::Accepted {
            why: "rustls has no finite-field DHE, so no DH parameters",
        },
        "DH parameter size",
        |_, g, l| u32_arg(l, &mut g.tune.ssl_default_dh_param),
    ),
    kw(
        "tune.ssl.cachesize",
        S,
        "TLS session cache entries",
        |_, g, l| {
            g.tune.ssl_cachesize = Some(u64::from(parse_u32(l.arg(1))?));
            no_extra(l, 2)
        },
    ),
    kw(
        "tune.ssl.lifetime",
        S,
        "TLS session lifetime (seconds by default)",
        |_, g, l| {
            need_args(l, 1, 1, "a time")?;
            g.tune.ssl_lifetime = Some(parse_time_unit(l.arg(1), 1_000_000)?);
            no_extra(l, 2)
        },
    ),
    kw("tune.ssl.maxrecord", S, "plaintext bytes per TLS record", |cx, g, l| {
        need_args(l, 1, 1, "an integer argument")?;
        parse_u32(l.arg(1))?;
        tune_other(cx, g, l)
    }),
    kw(
        "tune.ssl.capture-buffer-size",
        S,
        "ClientHello cipher/curve lists kept for ssl_fc_cipherlist_* and ssl_fc_eclist_bin (bytes)",
        tune_other,
    ),
    kw(
        "tune.ssl.capture-cipherlist-size",
        S,
        "old name of tune.ssl.capture-buffer-size",
        tune_other,
    ),
    kw(
        "tune.h2.max-concurrent-streams",
        S,
        "HTTP/2 streams per connection",
        |_, g, l| u32_arg(l, &mut g.tune.h2_max_concurrent_streams),
    ),
    kw(
        "tune.h2.initial-window-size",
        S,
        "HTTP/2 initial window",
        |_, g, l| h2_arg(l, &mut g.tune.h2_initial_window_size, 0, (1 << 31) - 1),
    ),
    kw(
        "tune.h2.header-table-size",
        S,
        "HPACK table size",
        |_, g, l| h2_arg(l, &mut g.tune.h2_header_table_size, 4096, 65536),
    ),
    kw(
        "tune.h2.max-frame-size",
        S,
        "HTTP/2 max frame size",
        |_, g, l| h2_arg(l, &mut g.tune.h2_max_frame_size, 16384, 16_777_215),
    ),
    kw(
        "tune.listener.multi-queue",
        Status::Accepted {
            why: "every shard accepts on its own SO_REUSEPORT listener: there is no shared accept queue to spread",
        },
        "spread accepted connections over threads (ringlb: one listener per shard)",
        |_, g, l| onoff(l, &mut g.tune.listener_multi_queue),
    ),
    kw(
        "tune.idle-pool.shared",
        Status::Accepted {
            why: "idle server connections are kept per shard by design (no cross-core sharing)",
        },
        "share idle server connections between threads (ringlb: per shard)",
        |_, g, l| onoff(l, &mut g.tune.idle_pool_shared),
    ),
    kw(
        "tune.maxaccept",
        Status::Accepted {
            why: "ringlb accepts one connection per io_uring completion and runs the accepted \
                  connections' tasks between accepts: there is no accept batch to bound",
        },
        "connections accepted per wakeup",
        tune_other,
    ),
    kw("tune.maxpollevents", POLL, "events per poll", tune_other),
    kw(
        "tune.rcvbuf.client",
        S,
        "client socket receive buffer (SO_RCVBUF on the listeners)",
        |_, g, l| u32_arg(l, &mut g.ops.sock_bufs.rcv_client),
    ),
    kw(
        "tune.rcvbuf.server",
        S,
        "server socket receive buffer (SO_RCVBUF before connect)",
        |_, g, l| u32_arg(l, &mut g.ops.sock_bufs.rcv_server),
    ),
    kw(
        "tune.sndbuf.client",
        S,
        "client socket send buffer (SO_SNDBUF on the listeners)",
        |_, g, l| u32_arg(l, &mut g.ops.sock_bufs.snd_client),
    ),
    kw(
        "tune.sndbuf.server",
        S,
        "server socket send buffer (SO_SNDBUF before connect)",
        |_, g, l| u32_arg(l, &mut g.ops.sock_bufs.snd_server),
    ),
    kw(
        "tune.http.cookielen",
        S,
        "longest `capture cookie` length (longer ones are truncated, with a warning)",
        |_, g, l| {
            need_args(l, 1, 1, "an integer argument")?;
            g.tune.http_cookielen = parse_u32(l.arg(1))?;
            no_extra(l, 2)
        },
    ),
    kw(
        "tune.http.logurilen",
        S,
        "bytes of the request line kept in logs (%r, default 1024)",
        |_, g, l| {
            need_args(l, 1, 1, "an integer argument")?;
            g.tune.http_logurilen = parse_u32(l.arg(1))?;
            no_extra(l, 2)
        },
    ),
    kw("tune.comp.maxlevel", NO, "compression level", tune_other),
    kw("lua-load", NO, "load a Lua script", generic),
    kw("lua-prepend-path", NO, "Lua module path", generic),
    kw(
        "expose-experimental-directives",
        NO,
        "enable experimental directives",
        generic,
    ),
    kw("insecure-fork-wanted", NO, "allow fork()", generic),
    kw(
        "external-check",
        NO,
        "allow external check commands",
        generic,
    ),
    kw(
        "localpeer",
        S,
        "local peer name (peers sections; -L overrides it)",
        |_, g, l| {
            need_args(l, 1, 1, "one argument")?;
            no_extra(l, 2)?;
            g.localpeer = Some(l.arg(1).to_string());
            Ok(())
        },
    ),
    kw("h1-case-adjust", NO, "HTTP/1 header case rewrite", generic),
    kw(
        "h1-case-adjust-file",
        NO,
        "HTTP/1 header case rewrite file",
        generic,
    ),
    kw("noepoll", POLL, "disable epoll (ringlb uses io_uring)", generic),
    kw("nokqueue", POLL, "disable kqueue (ringlb uses io_uring)", generic),
    kw("noevports", POLL, "disable event ports (ringlb uses io_uring)", generic),
    kw("nopoll", POLL, "disable poll (ringlb uses io_uring)", generic),
    kw("nosplice", Status::Accepted { why: "ringlb does not use splice()" }, "disable splicing", generic),
    kw("tune.pipesize", Status::Accepted { why: "ringlb does not use splice() pipes" }, "pipe size for splicing", generic1),
    kw("noreuseport", NO, "disable SO_REUSEPORT (ringlb needs it: one listener per shard)", generic),
    kw("nogetaddrinfo", Status::Accepted { why: "ringlb resolves names once at startup with getaddrinfo; gethostbyname would give the same addresses" }, "use gethostbyname instead of getaddrinfo", generic),
    kw("tune.fail-alloc", Status::Accepted { why: "debugging knob of haproxy's allocator" }, "fail allocations (debug)", generic),
    kw("set-dumpable", S, "stay dumpable (core files) after dropping privileges", |_, g, l| flag(l, &mut g.ops.set_dumpable)),
    kw("quiet", S, "same as -q", |_, g, l| flag(l, &mut g.ops.quiet)),
    kw("zero-warning", S, "same as -dW: any warning is fatal", |_, g, l| flag(l, &mut g.ops.zero_warning)),
    kw("close-spread-time", S, "spread the closing of idle HTTP/1 connections over this window on soft stop", |_, g, l| time_arg(l, &mut g.ops.close_spread_time)),
    kw("reload-mode", S, "ringlb extension: 'in-process' makes SIGUSR2 under -W reload inside the worker, 'process' (default) starts a new worker", p_reload_mode),
    kw("mworker-max-reloads", S, "reloads an old worker survives before SIGTERM", |_, g, l| u32_arg(l, &mut g.ops.mworker_max_reloads)),
    kw("server-state-base", S, "directory of server state files", generic1),
    kw("server-state-file", S, "server state file", generic1),
    kw("unix-bind", S, "defaults of UNIX socket binds: prefix, mode, user, uid, group, gid", p_unix_bind),
    kw("thread-group", Status::Accepted { why: "ringlb runs one thread group; shards are placed by cpu-map or the allowed CPUs" }, "thread groups", generic),
    kw("numa-cpu-mapping", Status::Accepted { why: "ringlb places its shards by cpu-map or on every allowed CPU; it does not narrow them to one NUMA node" }, "restrict threads to one NUMA node", generic),
    kw("fd-hard-limit", S, "never use more file descriptors than this", |_, g, l| u32_arg(l, &mut g.ops.fd_hard_limit)),
    kw("cluster-secret", QUIC_SECRET, "secret for QUIC stateless resets and Retry tokens", generic1),
    kw("pp2-never-send-local", S, "PROXY v2: never send LOCAL", generic),
    kw("h1-accept-payload-with-any-method", Status::Accepted { why: "ringlb already forwards HTTP/1.0 GET/HEAD/DELETE requests that carry a body" }, "accept bodies on GET/HEAD/DELETE", generic),
    kw(
        "h2-workaround-bogus-websocket-clients",
        S,
        "do not announce HTTP/2 WebSocket (RFC 8441) to clients",
        generic,
    ),
    kw("no-memory-trimming", Status::Accepted { why: "haproxy allocator knob" }, "do not trim memory on reload", generic),
    kw("insecure-setuid-wanted", NO, "allow setuid binaries", generic),
    kw("issuers-chain-path", S, "directory of issuer chains completing leaf-only PEMs", generic1),
    kw("ssl-provider", OPENSSL3_PROVIDER, "OpenSSL 3 provider (kept only)", generic1),
    kw("ssl-provider-path", OPENSSL3_PROVIDER, "OpenSSL 3 provider path (kept only)", generic1),
    kw("ssl-propquery", Status::Accepted {
            why: "OpenSSL 3 property queries do not apply: ringlb uses rustls with the aws-lc-rs provider",
        }, "OpenSSL 3 property query (kept only)", generic1),
    kw("ssl-skip-self-issued-ca", S, "do not send self-issued CAs in the chain", generic),
    kw("ssl-load-extra-del-ext", Status::Accepted {
            why: "ringlb looks for companions next to the file as named (<crt>.key), never with its extension replaced",
        }, "strip extensions of extra files", generic),
    kw("ssl-default-server-curves", S, "ECDH curves towards servers", generic1),
    kw("ssl-default-bind-sigalgs", S, "signature algorithms of binds (haproxy 2.8 keyword)", generic1),
    kw("ssl-default-bind-client-sigalgs", S, "client certificate signature algorithms of binds (haproxy 2.8 keyword)", generic1),
    kw("ssl-default-server-sigalgs", S, "signature algorithms offered to servers (haproxy 2.8 keyword)", generic1),
    kw("tune.ssl.force-private-cache", Status::Accepted {
            why: "ringlb is one process, so its session cache (one per bind, shared by the shards as HAProxy's threads share theirs) is already private to it",
        }, "private TLS session cache", generic),
    kw("tune.ssl.hard-maxrecord", Status::Accepted {
            why: "rustls never exceeds tune.ssl.maxrecord (or 16 kB) per record, so no hard cap is needed",
        }, "hard TLS record size", tune_other),
    kw("tune.ssl.ssl-ctx-cache-size", Status::Accepted {
            why: "ringlb generates no certificates on the fly (generate-certificates is unsupported), so there is no context cache",
        }, "cache of generated TLS contexts", tune_other),
    kw("tune.ssl.keylog", Status::Accepted {
            why: "the ssl_fc_*_secret/key fetches it enables are not implemented (they are refused where used)",
        }, "TLS key logging", tune_other),
    kw("tune.vars.global-max-size", VARS, "variable memory limit", tune_other),
    kw("tune.vars.proc-max-size", VARS, "variable memory limit", tune_other),
    kw("tune.vars.reqres-max-size", VARS, "variable memory limit", tune_other),
    kw("tune.vars.sess-max-size", VARS, "variable memory limit", tune_other),
    kw("tune.vars.txn-max-size", VARS, "variable memory limit", tune_other),
    kw("tune.buffers.limit", Status::Accepted { why: "receive buffers come from each shard's fixed io_uring pool (256 x tune.bufsize, heap beyond); there is no global buffer count to limit" }, "buffers allocation limit", tune_other),
    kw("tune.buffers.reserve", Status::Accepted { why: "receive buffers come from each shard's fixed io_uring pool (256 x tune.bufsize, heap beyond); there is no global buffer count to reserve from" }, "reserved buffers", tune_other),
    kw("tune.idletimer", Status::Accepted { why: "ringlb never uses splice(), so there is no splicing decision to time" }, "idle time before splicing", tune_other),
    kw("tune.recv_enough", Status::Accepted { why: "an io_uring receive completes with whatever arrived; there is no read loop to cut short" }, "minimum read size", tune_other),
    kw("tune.runqueue-depth", Status::Accepted { why: "each shard's run loop polls at most 512 woken tasks per turn, not haproxy's run queue" }, "tasks per scheduler loop", tune_other),
    kw("tune.pool-high-fd-ratio", Status::Accepted { why: "idle server connections are bounded per shard by pool-max-conn and the shard's idle budget, not by a share of the descriptors" }, "idle server connection fd ratio", tune_other),
    kw("tune.pool-low-fd-ratio", Status::Accepted { why: "idle server connections are bounded per shard by pool-max-conn and the shard's idle budget, not by a share of the descriptors" }, "idle server connection fd ratio", tune_other),
    kw("tune.pattern.cache-size", PATCACHE, "pattern match cache", tune_other),
    kw("tune.peers.max-updates-at-once", Status::Accepted { why: "ringlb hands peers the changes of each 100 ms at once (up to 10000 per table and shard); there is no scheduler turn to bound" }, "peers update batch", tune_other),
    kw(
        "tune.h2.be.initial-window-size",
        S,
        "HTTP/2 window announced to servers (HAProxy 2.8; else tune.h2.initial-window-size)",
        |_, g, l| h2_arg(l, &mut g.tune.h2_be_initial_window_size, 0, (1 << 31) - 1),
    ),
    kw(
        "tune.h2.fe.initial-window-size",
        S,
        "HTTP/2 window announced to clients (HAProxy 2.8; else tune.h2.initial-window-size)",
        |_, g, l| h2_arg(l, &mut g.tune.h2_fe_initial_window_size, 0, (1 << 31) - 1),
    ),
    kw("tune.lua.forced-yield", LUA, "Lua scheduling", tune_other),
    kw("tune.lua.maxmem", LUA, "Lua memory", tune_other),
    kw("tune.lua.session-timeout", LUA, "Lua timeout", tune_other),
    kw("tune.lua.service-timeout", LUA, "Lua timeout", tune_other),
    kw("tune.lua.task-timeout", LUA, "Lua timeout", tune_other),
    kw("tune.zlib.memlevel", COMP, "zlib memory", tune_other),
    kw("tune.zlib.windowsize", COMP, "zlib window", tune_other),
    kw("maxcompcpuusage", COMP, "compression CPU limit", generic1),
    kw("maxcomprate", COMP, "compression rate limit", generic1),
    kw("maxzlibmem", COMP, "compression memory limit", generic1),
];

/// Dispatches one line of a `global` section.
pub fn parse(cx: &mut Cx, g: &mut Global, line: &Line) {
    let name = line.arg(0);
    let Some(k) = KEYWORDS.iter().find(|k| k.name == name) else {
        let hint = nearest(name, KEYWORDS.iter().map(|k| k.name))
            .map(|n| format!("; did you mean '{n}' maybe ?"))
            .unwrap_or_default();
        cx.alert(
            &line.loc,
            "",
            format!("unknown keyword '{name}' in 'global' section{hint}"),
        );
        return;
    };
    if !cx.use_kw(&line.loc, k.name, &k.status) {
        return;
    }
    if let Err(msg) = (k.parse)(cx, g, line) {
        cx.alert(&line.loc, k.name, msg);
    }
}

fn flag(l: &Line, v: &mut bool) -> R {
    *v = true;
    no_extra(l, 1)
}

fn flag_opt(l: &Line, v: &mut bool) -> R {
    *v = true;
    no_extra(l, 2)
}

/// `reload-mode process|in-process` (ringlb's own keyword, docs/architecture.md).
fn p_reload_mode(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 1, "'process' or 'in-process'")?;
    g.ops.reload_in_process = match l.arg(1) {
        "in-process" => true,
        "process" => false,
        other => {
            return Err(format!(
                "'reload-mode' expects 'process' or 'in-process', got '{other}'."
            ))
        }
    };
    no_extra(l, 2)
}

fn u32_arg(l: &Line, v: &mut Option<u32>) -> R {
    need_args(l, 1, 1, "an integer argument")?;
    *v = Some(parse_u32(l.arg(1))?);
    no_extra(l, 2)
}

/// An HTTP/2 setting within the range HAProxy allows (its messages).
fn h2_arg(l: &Line, v: &mut Option<u32>, min: u32, max: u32) -> R {
    need_args(l, 1, 1, "an integer argument")?;
    let n = parse_u32(l.arg(1)).ok().filter(|n| (min..=max).contains(n));
    let Some(n) = n else {
        return Err(if min == 0 {
            format!("'{}' expects a positive numeric value.", l.arg(0))
        } else {
            format!(
                "'{}' expects a numeric value between {min} and {max}.",
                l.arg(0)
            )
        });
    };
    *v = Some(n);
    no_extra(l, 2)
}

fn size_arg(l: &Line, v: &mut u64) -> R {
    need_args(l, 1, 1, "a size argument")?;
    *v = parse_size(l.arg(1))?;
    no_extra(l, 2)
}

fn str_arg(l: &Line, v: &mut Option<String>) -> R {
    need_args(l, 1, 1, "an argument")?;
    *v = Some(l.arg(1).to_string());
    no_extra(l, 2)
}

fn path_arg(l: &Line, v: &mut Option<std::path::PathBuf>) -> R {
    need_args(l, 1, 1, "a path")?;
    *v = Some(l.arg(1).into());
    no_extra(l, 2)
}

fn time_arg(l: &Line, v: &mut Option<std::time::Duration>) -> R {
    need_args(l, 1, 1, "a time value")?;
    *v = Some(parse_time(l.arg(1))?);
    no_extra(l, 2)
}

fn onoff(l: &Line, v: &mut Option<bool>) -> R {
    *v = Some(match l.arg(1) {
        "on" => true,
        "off" => false,
        other => return Err(format!("expects 'on' or 'off', got '{other}'.")),
    });
    no_extra(l, 2)
}

fn generic(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    g.other.push(super::proxy::directive(l, 1));
    Ok(())
}

fn generic1(cx: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 1, "one argument")?;
    no_extra(l, 2)?;
    generic(cx, g, l)
}

fn u32_other(cx: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 1, "an integer argument")?;
    parse_u32(l.arg(1))?;
    generic1(cx, g, l)
}

fn tune_other(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 1, "an argument")?;
    g.tune.other.insert(l.arg(0).to_string(), l.rest(1));
    Ok(())
}

fn p_nbthread(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 1, "an integer argument")?;
    let n = parse_u32(l.arg(1))?;
    if !(1..=64).contains(&n) {
        return Err(format!("'nbthread' must be between 1 and 64 (got {n})."));
    }
    g.nbthread = Some(n);
    no_extra(l, 2)
}

fn p_maxhdr(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 1, "an integer argument")?;
    let n = parse_u32(l.arg(1))?;
    if !(1..=32767).contains(&n) {
        return Err("expects a numeric value between 1 and 32767".into());
    }
    g.tune.http_maxhdr = n;
    no_extra(l, 2)
}

fn p_ssl_engine(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 1, "an engine name")?;
    g.ssl_engines.push(l.rest(1).join(" "));
    Ok(())
}

fn p_setenv(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 2, "<name> <value>")?;
    g.set_env.push((l.arg(1).to_string(), l.arg(2).to_string()));
    no_extra(l, 3)
}

/// Parses `a`, `a-b`, `all`, `odd`, `even` into inclusive ranges (`max` bounds `all`).
pub fn parse_id_set(s: &str, max: u32) -> Result<Vec<(u32, u32)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let r = match part {
            "all" => (0, max),
            _ => match part.split_once('-') {
                Some((a, b)) => (parse_u32(a)?, parse_u32(b)?),
                None => {
                    let v = parse_u32(part)?;
                    (v, v)
                }
            },
        };
        if r.0 > r.1 {
            return Err(format!("invalid range '{part}'"));
        }
        out.push(r);
    }
    Ok(out)
}

fn p_cpu_map(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 2, "[auto:]<thread-set> <cpu-set>")?;
    let mut spec = l.arg(1);
    let auto = spec.starts_with("auto:");
    if auto {
        spec = spec.get(5..).unwrap_or("");
    }
    let (process, threads) = match spec.split_once('/') {
        Some((p, t)) => (Some(p.to_string()), t),
        None => (None, spec),
    };
    if let Some(p) = &process {
        if p != "1" && p != "all" {
            return Err(format!(
                "process part '{p}' must be 1 or all (nbproc is gone)."
            ));
        }
    }
    let threads = parse_id_set(threads, 64).map_err(|e| format!("invalid thread set: {e}"))?;
    let mut cpus = Vec::new();
    for w in l.rest(2) {
        cpus.extend(parse_id_set(&w, 1023).map_err(|e| format!("invalid cpu set: {e}"))?);
    }
    g.cpu_map.push(CpuMap {
        loc: l.loc.clone(),
        auto,
        process,
        threads,
        cpus,
    });
    Ok(())
}

const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
const LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Parses `log global` / `log <target> [len N] [format F] [sample R:S] <facility> [lvl [min]]`.
pub fn parse_log(l: &Line, allow_global: bool) -> Result<LogTarget, String> {
    need_args(
        l,
        1,
        1,
        "<address> [len <n>] [format <fmt>] <facility> [<level> [<minlevel>]]",
    )?;
    let mut t = LogTarget {
        loc: l.loc.clone(),
        global: false,
        target: l.arg(1).to_string(),
        facility: None,
        level: None,
        min_level: None,
        len: None,
        format: None,
    };
    if l.arg(1) == "global" {
        if !allow_global {
            return Err("'log global' is only valid in proxies and defaults.".into());
        }
        t.global = true;
        return no_extra(l, 2).map(|_| t);
    }
    let mut i = 2;
    loop {
        match l.arg(i) {
            "len" => t.len = Some(parse_u32(l.arg(i + 1))?),
            "format" => {
                const FORMATS: &[&str] = &[
                    "local", "rfc3164", "rfc5424", "priority", "short", "timed", "iso", "raw",
                ];
                let f = l.arg(i + 1);
                if !FORMATS.contains(&f) {
                    return Err(format!("unknown log format '{f}'"));
                }
                t.format = Some(f.to_string());
            }
            "sample" | "profile" => {}
            _ => break,
        }
        i += 2;
    }
    let fac = l.arg(i);
    if !FACILITIES.contains(&fac) {
        return Err(format!("unknown log facility '{fac}'"));
    }
    t.facility = Some(fac.to_string());
    for (slot, w) in [(0, l.arg(i + 1)), (1, l.arg(i + 2))] {
        if w.is_empty() {
            break;
        }
        if !LEVELS.contains(&w) {
            return Err(format!("unknown optional log level '{w}'"));
        }
        if slot == 0 {
            t.level = Some(w.to_string());
        } else {
            t.min_level = Some(w.to_string());
        }
    }
    no_extra(l, i + 3).map(|_| t)
}

/// `unix-bind [prefix <p>] [mode <octal>] [user <u>] [uid <n>] [group <g>] [gid <n>]`.
fn p_unix_bind(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    need_args(l, 1, 2, "at least one argument")?;
    let u = &mut g.ops.unix_bind;
    let mut i = 1;
    while i < l.len() {
        let (k, v) = (l.arg(i), l.arg(i + 1));
        if i + 1 >= l.len() {
            return Err(format!("'unix-bind' : missing value after '{k}'."));
        }
        match k {
            "prefix" => u.prefix = Some(v.to_string()),
            "mode" => u.mode = Some(parse_mode(v)?),
            "uid" => u.uid = Some(parse_u32(v)?),
            "gid" => u.gid = Some(parse_u32(v)?),
            "user" => u.user = Some(v.to_string()),
            "group" => u.group = Some(v.to_string()),
            _ => {
                return Err(format!(
                    "'unix-bind' only supports 'prefix', 'mode', 'uid', 'gid', 'user' and 'group' (got '{k}')."
                ))
            }
        }
        i += 2;
    }
    Ok(())
}

/// An octal permission mode (`0660`, `600`).
pub fn parse_mode(v: &str) -> Result<u32, String> {
    u32::from_str_radix(v, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid mode '{v}' (an octal number is expected)"))
}

fn p_log(_: &mut Cx, g: &mut Global, l: &Line) -> R {
    g.log.push(parse_log(l, false)?);
    Ok(())
}

fn p_stats(_cx: &mut Cx, g: &mut Global, l: &Line) -> R {
    match l.arg(1) {
        "socket" => {
            need_args(l, 2, 1, "an address or a path")?;
            let s = parse_stats_socket(l)?;
            g.stats_sockets.push(s);
            Ok(())
        }
        "timeout" => {
            let mut v = None;
            need_args(l, 2, 1, "a time value")?;
            v.replace(parse_time(l.arg(2))?);
            g.stats_timeout = v;
            no_extra(l, 3)
        }
        "maxconn" => {
            g.stats_maxconn = Some(parse_u32(l.arg(2))?);
            no_extra(l, 3)
        }
        "bind-process" => no_extra(l, 3),
        other => Err(format!(
            "'stats' expects 'socket', 'maxconn', 'timeout' or 'bind-process', got '{other}'."
        )),
    }
}

fn parse_stats_socket(l: &Line) -> Result<StatsSocket, String> {
    let mut s = StatsSocket {
        loc: l.loc.clone(),
        address: l.arg(2).to_string(),
        mode: None,
        level: None,
        expose_fd_listeners: false,
        options: Vec::new(),
    };
    let mut i = 3;
    while i < l.len() {
        let (k, v) = (l.arg(i), l.arg(i + 1));
        match k {
            "mode" => {
                s.mode = Some(parse_mode(v)?);
                i += 2;
            }
            "severity-output" => {
                if !["none", "number", "string"].contains(&v) {
                    return Err(format!(
                        "'severity-output' only supports 'none', 'number', and 'string' (got '{v}')."
                    ));
                }
                s.options.push((k.to_string(), Some(v.to_string())));
                i += 2;
            }
            "level" => {
                if !["user", "operator", "admin"].contains(&v) {
                    return Err(format!(
                        "'level' only supports 'user', 'operator', and 'admin' (got '{v}')."
                    ));
                }
                s.level = Some(v.to_string());
                i += 2;
            }
            "expose-fd" => {
                if v != "listeners" {
                    return Err("'expose-fd' only supports 'listeners'".into());
                }
                s.expose_fd_listeners = true;
                i += 2;
            }
            "user" | "group" | "uid" | "gid" | "name" | "maxconn" | "process" | "thread"
            | "backlog" => {
                s.options.push((k.to_string(), Some(v.to_string())));
                i += 2;
            }
            "accept-proxy" | "transparent" | "v4v6" | "v6only" => {
                s.options.push((k.to_string(), None));
                i += 1;
            }
            _ => return Err(format!("unknown stats socket option '{k}'.")),
        }
    }
    Ok(s)
}

/// Parses `ssl-min-ver TLSv1.2 no-tls-tickets ...` style option lists.
pub fn ssl_opts(l: &Line, o: &mut SslOptions) -> R {
    need_args(l, 1, 1, "TLS options")?;
    let words = l.rest(1);
    let mut it = words.iter();
    while let Some(w) = it.next() {
        apply_ssl_opt(o, w, || it.next().cloned())?;
    }
    Ok(())
}

/// Applies one TLS option word to `o`; `next` yields the value for `ssl-min-ver`/`ssl-max-ver`.
pub fn apply_ssl_opt(o: &mut SslOptions, w: &str, next: impl FnOnce() -> Option<String>) -> R {
    match w {
        "ssl-min-ver" | "ssl-max-ver" => {
            let v = next().ok_or_else(|| format!("'{w}' expects a version"))?;
            let ver = tls_version(&v)?;
            if w == "ssl-min-ver" {
                o.min_ver = Some(ver);
            } else {
                o.max_ver = Some(ver);
            }
        }
        "no-tls-tickets" => o.no_tls_tickets = true,
        "no-sslv3"
        | "no-tlsv10"
        | "no-tlsv11"
        | "no-tlsv12"
        | "no-tlsv13"
        | "force-sslv3"
        | "force-tlsv10"
        | "force-tlsv11"
        | "force-tlsv12"
        | "force-tlsv13"
        | "prefer-client-ciphers"
        | "no-renegotiation"
        | "allow-0rtt"
        | "strict-sni"
        | "no-ca-names" => o.flags.push(w.to_string()),
        _ => return Err(format!("unknown TLS option '{w}'.")),
    }
    Ok(())
}

/// Parses `SSLv3`, `TLSv1.0` ... `TLSv1.3`.
pub fn tls_version(v: &str) -> Result<TlsVersion, String> {
    Ok(match v {
        "SSLv3" => TlsVersion::Sslv3,
        "TLSv1.0" => TlsVersion::Tlsv10,
        "TLSv1.1" => TlsVersion::Tlsv11,
        "TLSv1.2" => TlsVersion::Tlsv12,
        "TLSv1.3" => TlsVersion::Tlsv13,
        _ => {
            return Err(format!(
                "unknown TLS version '{v}' (SSLv3, TLSv1.0 .. TLSv1.3)"
            ))
        }
    })
}
