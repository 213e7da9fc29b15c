//! The process's connection and descriptor budget: `maxconn` when `global` does not set it,
//! `Maxsock`, the open-files limit to ask for, each frontend's `maxconn` and each backend's
//! `fullconn` default. HAProxy 2.6's rules, measured against its binary (`show info` /
//! `show stat` with varied limits, listeners, checks and threads: `tests/fixtures/limits/`
//! holds the configurations, the recording script and haproxy's numbers, replayed by
//! `tests/limits_haproxy.rs`; `crates/ringlb/tests/info_differential.rs` compares the running
//! processes), so dashboards and alerts keyed on `Maxconn`,
//! `slim` and friends read the same numbers under ringlb.
//!
//! HAProxy derives the default `maxconn` from the descriptors it may open: the larger of the
//! soft and hard `RLIMIT_NOFILE` at boot (capped by `fd-hard-limit`), minus those that
//! listeners, health checks and threads hold, halved (two descriptors per proxied
//! connection), and never below [`DEFAULT_MAXCONN`]. ringlb never splices, so no pipe
//! descriptors are reserved (`Maxpipes: 0`, as haproxy without `option splice-*`).

use crate::model::{Config, Frontend};

/// The floor of the computed `maxconn` (haproxy's `DEFAULT_MAXCONN`): a process started with
/// very few descriptors still asks for enough for 100 connections, and fails to start if it
/// cannot have them.
pub const DEFAULT_MAXCONN: u32 = 100;

/// Descriptors haproxy 2.6 counts before any listener or check (`Maxsock` of a process with
/// one stats socket and nothing else is 21 plus its connections and threads).
const RESERVED_FDS: u64 = 20;

/// The open-files limit the process found at start (`getrlimit(RLIMIT_NOFILE)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootFds {
    pub soft: u64,
    pub hard: u64,
}

/// The process's budget, as `show info` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FdBudget {
    /// `Maxconn` / `Hard_maxconn`: the configured global `maxconn`, else the computed one.
    pub maxconn: u32,
    /// `Maxsock`: descriptors the budget accounts for (listeners, checks, threads, two per
    /// connection).
    pub maxsock: u64,
    /// The open-files limit haproxy would set (`Ulimit-n`): `ulimit-n` when given, else
    /// `maxsock`.
    pub ulimit_n: u64,
}

/// Descriptors held whatever the traffic: one per listener (each address of each `bind`
/// line, each `stats socket`), one per health check and two per agent check, one more for a
/// check on its own `port`. Log targets, resolvers and tracking servers take none in
/// haproxy's count.
pub fn fixed_fds(cfg: &Config) -> u64 {
    let listeners = bound_addresses(cfg) + cfg.global.stats_sockets.len() as u64;
    let checks: u64 = cfg
        .backends
        .iter()
        .flat_map(|b| &b.servers)
        .map(|s| {
            let p = &s.params;
            let check = if p.check {
                1 + u64::from(p.check_port.is_some())
            } else {
                0
            };
            let agent = if p.agent.enabled { 2 } else { 0 };
            check + agent
        })
        .sum();
    listeners + checks
}

/// Addresses the `bind` lines listen on (a port range or an address list counts each).
pub fn bound_addresses(cfg: &Config) -> u64 {
    cfg.frontends
        .iter()
        .flat_map(|f| &f.binds)
        .map(|b| {
            if b.unix_path.is_some() {
                1
            } else {
                b.addrs.len() as u64
            }
        })
        .sum()
}

/// Descriptors ringlb's shards hold beyond what haproxy's budget reserves for its threads:
/// each shard has its own `SO_REUSEPORT` socket per bound address (haproxy: one shared), and
/// each thread's loop holds its io_uring rings and eventfds (a shard: its ring and eventfd; the
/// control shard's glommio executor: about 6; 6 each is counted, an upper bound; haproxy: 3 per
/// thread, plus 20 reserved for the process). Zero with two threads and
/// up to four binds, so the open-files limit is haproxy's `Maxsock`.
pub fn shard_extra_fds(bound: u64, nbthread: u32) -> u64 {
    let t = u64::from(nbthread.max(1));
    let ringlb = bound * t + 6 * (t + 1);
    let haproxy = RESERVED_FDS + bound + 3 * t;
    ringlb.saturating_sub(haproxy)
}

/// HAProxy's `maxconn` for a process whose `global` does not set one: what `boot` leaves
/// after `fixed` descriptors and three per thread (poller and wake-up pipe), two per
/// connection, never below [`DEFAULT_MAXCONN`].
pub fn ideal_maxconn(boot: BootFds, fd_hard_limit: Option<u32>, fixed: u64, nbthread: u32) -> u32 {
    let mut remain = boot.soft.max(boot.hard);
    if let Some(cap) = fd_hard_limit {
        remain = remain.min(u64::from(cap));
    }
    let used = RESERVED_FDS + fixed + 3 * u64::from(nbthread);
    let maxconn = remain.saturating_sub(used) / 2;
    u32::try_from(maxconn)
        .unwrap_or(u32::MAX)
        .max(DEFAULT_MAXCONN)
}

/// The budget of `cfg` run with `nbthread` threads under `boot`.
pub fn budget(cfg: &Config, nbthread: u32, boot: BootFds) -> FdBudget {
    let fixed = fixed_fds(cfg);
    let ops = &cfg.global.ops;
    // `maxconn 0` is no limit in haproxy's parser too: it computes one.
    let maxconn = match cfg.global.maxconn {
        Some(m) if m > 0 => m,
        _ => ideal_maxconn(boot, ops.fd_hard_limit, fixed, nbthread),
    };
    let maxsock = RESERVED_FDS + fixed + 3 * u64::from(nbthread) + 2 * u64::from(maxconn);
    FdBudget {
        maxconn,
        maxsock,
        ulimit_n: ops.ulimit_n.map_or(maxsock, u64::from),
    }
}

/// A frontend's `maxconn` (`slim`): its own, else the process's.
pub fn frontend_maxconn(fe: &Frontend, global_maxconn: u32) -> u32 {
    fe.maxconn.unwrap_or(global_maxconn)
}

/// A backend's `fullconn` when not set: 10% (rounded up) of the `maxconn` of every frontend
/// that can route to it, at least 1 (haproxy's rule; a backend no frontend names gets 1).
pub fn default_fullconn(frontend_maxconns: impl IntoIterator<Item = u32>) -> u32 {
    let total: u64 = frontend_maxconns.into_iter().map(u64::from).sum();
    u32::try_from(total.div_ceil(10)).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        crate::parse_str("t.cfg", text).unwrap().config
    }

    const HARD_20000: BootFds = BootFds {
        soft: 20000,
        hard: 20000,
    };

    const HEAD: &str = "global\n    stats socket /tmp/x.sock level admin\n\
        defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n";

    fn one_fe(extra_servers: &str) -> String {
        format!(
            "{HEAD}frontend fe\n    bind 127.0.0.1:18401\n    default_backend be\n\
             backend be\n    server s1 127.0.0.1:18402\n{extra_servers}"
        )
    }

    // Each expectation below is what haproxy 2.6.12 printed in `show info` for the same
    // configuration and limit (recorded by hand with `prlimit` and socat).

    #[test]
    fn one_frontend_two_threads_hard_limit_20000() {
        let b = budget(&cfg(&one_fe("")), 2, HARD_20000);
        assert_eq!(
            b,
            FdBudget {
                maxconn: 9986,
                maxsock: 20000,
                ulimit_n: 20000
            }
        );
    }

    #[test]
    fn one_thread_leaves_one_more_connection() {
        let b = budget(&cfg(&one_fe("")), 1, HARD_20000);
        assert_eq!((b.maxconn, b.maxsock), (9987, 19999));
        let b = budget(&cfg(&one_fe("")), 4, HARD_20000);
        assert_eq!((b.maxconn, b.maxsock), (9983, 20000));
    }

    #[test]
    fn the_larger_of_soft_and_hard_limits_counts() {
        let b = budget(
            &cfg(&one_fe("")),
            2,
            BootFds {
                soft: 1024,
                hard: 20000,
            },
        );
        assert_eq!(b.maxconn, 9986);
        let b = budget(
            &cfg(&one_fe("")),
            2,
            BootFds {
                soft: 4096,
                hard: 4096,
            },
        );
        assert_eq!((b.maxconn, b.maxsock), (2034, 4096));
    }

    #[test]
    fn checks_and_agents_take_descriptors() {
        let two_checks =
            "    server s2 127.0.0.1:18403 check\n    server s3 127.0.0.1:18404 check\n";
        let b = budget(&cfg(&one_fe(two_checks)), 2, HARD_20000);
        assert_eq!((b.maxconn, b.maxsock), (9985, 20000));
        let agent = "    server s2 127.0.0.1:18403 agent-check agent-port 9999\n";
        assert_eq!(fixed_fds(&cfg(&one_fe(agent))), 4);
        let both = "    server s2 127.0.0.1:18403 check agent-check agent-port 9999\n\
                    server s3 127.0.0.1:18404 track be/s2\n";
        let b = budget(&cfg(&one_fe(both)), 2, HARD_20000);
        assert_eq!((b.maxconn, b.maxsock), (9984, 19999));
        let port = "    server s2 127.0.0.1:18403 check port 9999\n";
        assert_eq!(fixed_fds(&cfg(&one_fe(port))), 4);
    }

    #[test]
    fn every_address_of_a_bind_is_a_listener() {
        let c = cfg(&format!(
            "{HEAD}frontend fe\n    bind 127.0.0.1:18401-18403\n    bind unix@/tmp/u.sock\n\
             default_backend be\nbackend be\n    server s1 127.0.0.1:18402\n"
        ));
        assert_eq!(fixed_fds(&c), 5);
        let b = budget(&c, 2, HARD_20000);
        assert_eq!((b.maxconn, b.maxsock), (9984, 19999));
    }

    #[test]
    fn configured_maxconn_and_ulimit_n_win() {
        let c = cfg(&one_fe("").replace("level admin\n", "level admin\n    maxconn 100\n"));
        let b = budget(&c, 2, HARD_20000);
        assert_eq!(
            b,
            FdBudget {
                maxconn: 100,
                maxsock: 228,
                ulimit_n: 228
            }
        );
        let c = cfg(&one_fe("").replace("level admin\n", "level admin\n    ulimit-n 5000\n"));
        let b = budget(&c, 2, HARD_20000);
        assert_eq!((b.maxconn, b.maxsock, b.ulimit_n), (9986, 20000, 5000));
    }

    #[test]
    fn few_descriptors_still_ask_for_default_maxconn() {
        let tiny = BootFds {
            soft: 220,
            hard: 220,
        };
        // haproxy: "Cannot raise FD limit to 228, limit is 220."
        let b = budget(&cfg(&one_fe("")), 2, tiny);
        assert_eq!((b.maxconn, b.maxsock), (100, 228));
        let b = budget(
            &cfg(&one_fe("")),
            2,
            BootFds {
                soft: 300,
                hard: 300,
            },
        );
        assert_eq!((b.maxconn, b.maxsock), (136, 300));
    }

    #[test]
    fn fd_hard_limit_caps_what_is_counted() {
        let c = cfg(&one_fe("").replace("level admin\n", "level admin\n    fd-hard-limit 4096\n"));
        assert_eq!(budget(&c, 2, HARD_20000).maxconn, 2034);
    }

    #[test]
    fn shards_need_more_descriptors_only_with_many_threads() {
        assert_eq!(shard_extra_fds(3, 2), 0);
        assert_eq!(shard_extra_fds(4, 2), 0);
        // 4 shards, 1 bind: 4 sockets + 30 ring fds against 20 + 1 + 12.
        assert_eq!(shard_extra_fds(1, 4), 1);
        // 16 shards, 2 binds: 32 sockets + 102 ring fds against 20 + 2 + 48.
        assert_eq!(shard_extra_fds(2, 16), 32 + 102 - 70);
    }

    #[test]
    fn frontend_and_backend_defaults() {
        let c = cfg(&format!(
            "{HEAD}frontend fe\n    bind :1\n    maxconn 50\n    default_backend be\n\
             frontend fe2\n    bind :2\n    default_backend be\nbackend be\n    server s 1.1.1.1:1\n"
        ));
        let fe: Vec<u32> = c
            .frontends
            .iter()
            .map(|f| frontend_maxconn(f, 9985))
            .collect();
        assert_eq!(fe, [50, 9985]);
        // haproxy: `slim` 1004 for be (10% of 50 + 9985, rounded up), 999 for 9986 alone.
        assert_eq!(default_fullconn(fe), 1004);
        assert_eq!(default_fullconn([9986]), 999);
        assert_eq!(default_fullconn([50000, 9985]), 5999);
        assert_eq!(default_fullconn([]), 1);
    }
}
