//! Load-balancing algorithms of HAProxy 2.6 as pure, deterministic data structures.
//!
//! Owns: choosing a server of one backend for one request ([`Balancer::pick`]) given the
//! servers' weights, backup flags and states, plus the request facts the hashing algorithms
//! need ([`PickInput`]). Each algorithm reproduces HAProxy's own data structure so that the
//! *sequence* of picks is the one a real haproxy makes for the same config and requests
//! (verified by the traces in `traces/`, recorded from haproxy 2.6 by `traces/record.sh`):
//!
//! | `balance` | HAProxy file | here |
//! | --- | --- | --- |
//! | `roundrobin` | `lb_fwrr.c` | tree emulation (`fwrr.rs`), dynamic weights |
//! | `static-rr`, `hash-type map-based` | `lb_map.c` | weight map |
//! | `leastconn`, `first` | `lb_fwlc.c`, `lb_fas.c` | ordered by load / id |
//! | hashing with `hash-type consistent`, `random` | `lb_chash.c` | point ring |
//!
//! Must not: open sockets, read clocks, draw randomness of its own, lock or allocate on
//! [`Balancer::pick`]. Time comes in as `Duration`s, randomness through [`RngLike`].
//! Connection counts are whatever the caller feeds ([`Balancer::take_conn`]); whether they
//! are per shard or global is the engine's choice (see README.md).
#![forbid(unsafe_code)]

mod chash;
mod fwrr;
pub mod hash;
pub mod key;
mod lc;
mod map;
mod pool;
pub mod weight;

use std::net::IpAddr;
use std::time::Duration;

use ringlb_config::model::{Backend, Balance, HashType, Server};

use chash::Chash;
use fwrr::Fwrr;
use key::UriOpts;
use lc::{Lc, LcKind};
use map::MapLb;
use pool::{Pool, Target, BE_WEIGHT_SCALE, SRV_UWGHT_MAX};

pub use pool::SRV_EWGHT_MAX;

/// One server as the balancer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// HAProxy's server id: `id N`, else the first free id at or after the server's
    /// position (1-based) in declaration order.
    /// Consistent hashing places points from it; `first` orders by it.
    pub puid: u32,
    /// User weight, 0..=256 (0 = never chosen).
    pub weight: u32,
    pub backup: bool,
    /// `maxconn` (0 = unlimited): a server at its limit is skipped.
    pub maxconn: u32,
    /// Initial state: `false` for `disabled` servers (maintenance).
    pub up: bool,
}

impl ServerInfo {
    /// From the model's servers, assigning ids as HAProxy does.
    pub fn from_model(servers: &[Server]) -> Vec<ServerInfo> {
        // check_config_validity(): `next_id` advances past every server, explicit id or not.
        let mut next_id = 1u32;
        let mut used: Vec<u32> = servers.iter().filter_map(|s| s.params.id).collect();
        servers
            .iter()
            .map(|s| {
                let puid = s.params.id.unwrap_or_else(|| {
                    while used.contains(&next_id) {
                        next_id += 1;
                    }
                    used.push(next_id);
                    next_id
                });
                next_id += 1;
                ServerInfo {
                    puid,
                    weight: s.params.weight_or_default().min(SRV_UWGHT_MAX),
                    backup: s.params.backup,
                    maxconn: s.params.maxconn.unwrap_or(0),
                    up: !s.params.disabled,
                }
            })
            .collect()
    }
}

/// Backend options that shape balancing (beyond `balance` and `hash-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `option allbackups`: all usable backups share the load when no active server is
    /// usable (else only the first usable backup in declaration order).
    pub allbackups: bool,
    /// `hash-balance-factor N` (percent, 0 = off; consistent hashing only).
    pub hash_balance_factor: u32,
}

/// What a request offers to the hashing algorithms: borrowed, nothing is copied.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickInput<'a> {
    /// Client address (`balance source`).
    pub src: Option<IpAddr>,
    /// Request target as in the request line (`uri`, `url_param`).
    pub uri: &'a [u8],
    /// For `hdr(name)`: the first comma-separated value of the first occurrence of the
    /// header, trimmed, as HAProxy's `http_find_header(.., full = 0)` gives it
    /// ([`key::first_header_value`]).
    pub header: Option<&'a [u8]>,
    /// For `url_param .. check_post`: the start of a POST body (what is buffered).
    pub body: Option<&'a [u8]>,
    /// The request is a POST (`check_post` only looks at POST bodies).
    pub is_post: bool,
    /// For `balance hash <expr>` and `rdp-cookie`: the sample the engine fetched.
    pub key: Option<&'a [u8]>,
    /// Redispatch: a server to avoid if another one can take the request.
    pub avoid: Option<usize>,
}

/// A source of random numbers (`balance random`); pass a seeded one for reproducibility.
pub trait RngLike {
    fn next_u32(&mut self) -> u32;
}

/// SplitMix64: a small seeded generator for callers and tests.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl RngLike for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }
}

/// Why `set_weight` was refused (HAProxy's runtime API answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightError {
    NoSuchServer,
    /// Above 256.
    OutOfRange,
    /// static-rr and map-based hashing only accept 0 and the initial weight.
    StaticAlgorithm,
}

impl std::fmt::Display for WeightError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightError::NoSuchServer => "No such server.",
            WeightError::OutOfRange => "Absolute weight can only be between 0 and 256 inclusive.",
            WeightError::StaticAlgorithm => {
                "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'."
            }
        })
    }
}

#[derive(Debug, Clone)]
enum Rule {
    RoundRobin,
    StaticRr,
    LeastConn,
    First,
    Source,
    Uri(UriOpts),
    UrlParam { name: Box<[u8]>, check_post: bool },
    Hdr { use_domain_only: bool },
    Random { draws: u32 },
    Key,
}

#[derive(Debug, Clone)]
enum Lb {
    Fwrr(Fwrr),
    Map(MapLb),
    Chash(Chash),
    Lc(Lc),
}

/// One backend's balancer. Build it from the model, feed it state changes, ask it to pick.
#[derive(Debug, Clone)]
pub struct Balancer {
    pool: Pool,
    lb: Lb,
    rule: Rule,
    ht: HashType,
    initial_weight: Vec<u32>,
}

fn rule_of(b: &Balance) -> Rule {
    match b {
        Balance::Roundrobin => Rule::RoundRobin,
        Balance::StaticRr => Rule::StaticRr,
        Balance::Leastconn => Rule::LeastConn,
        Balance::First => Rule::First,
        Balance::Source => Rule::Source,
        Balance::Uri {
            whole,
            path_only,
            len,
            depth,
        } => Rule::Uri(UriOpts {
            whole: *whole,
            path_only: *path_only,
            len: *len,
            depth: *depth,
        }),
        Balance::UrlParam { name, check_post } => Rule::UrlParam {
            name: name.as_bytes().into(),
            check_post: *check_post,
        },
        Balance::Hdr {
            use_domain_only, ..
        } => Rule::Hdr {
            use_domain_only: *use_domain_only,
        },
        Balance::Random { draws } => Rule::Random {
            draws: (*draws).max(1),
        },
        Balance::RdpCookie { .. } | Balance::Hash { .. } => Rule::Key,
    }
}

impl Balancer {
    /// Builds the balancer of `balance`/`hash-type` over `servers` (in declaration order).
    pub fn new(
        balance: &Balance,
        ht: &HashType,
        servers: &[ServerInfo],
        opts: &Options,
    ) -> Balancer {
        let rule = rule_of(balance);
        let map_based = match rule {
            Rule::StaticRr => true,
            Rule::Source | Rule::Uri(_) | Rule::UrlParam { .. } | Rule::Hdr { .. } | Rule::Key => {
                !ht.consistent
            }
            _ => false,
        };
        let (wmult, wdiv) = if map_based {
            (map::weight_gcd(servers.iter().map(|s| s.weight)), 1)
        } else {
            (1, BE_WEIGHT_SCALE)
        };
        let pool = Pool::new(servers, opts.allbackups, wmult, wdiv);
        let lb = match rule {
            Rule::RoundRobin => Lb::Fwrr(Fwrr::new(&pool)),
            Rule::LeastConn => Lb::Lc(Lc::new(&pool, LcKind::Leastconn)),
            Rule::First => Lb::Lc(Lc::new(&pool, LcKind::First)),
            _ if map_based => Lb::Map(MapLb::new(&pool)),
            _ => Lb::Chash(Chash::new(&pool, opts.hash_balance_factor)),
        };
        pool.assert_invariants();
        Balancer {
            pool,
            lb,
            rule,
            ht: *ht,
            initial_weight: servers.iter().map(|s| s.weight).collect(),
        }
    }

    /// Builds the balancer of a model backend.
    pub fn from_backend(be: &Backend) -> Balancer {
        let opts = Options {
            allbackups: be.options.allbackups,
            hash_balance_factor: be.hash_balance_factor,
        };
        Balancer::new(
            &be.balance,
            &be.hash_type,
            &ServerInfo::from_model(&be.servers),
            &opts,
        )
    }

    /// Chooses a server for a request: its index in the server list, or `None` when no
    /// server is usable or every candidate is at its `maxconn` (the request then queues in
    /// the backend: tell the two apart with [`Balancer::usable_count`]).
    pub fn pick(&mut self, req: &PickInput<'_>, rng: &mut impl RngLike) -> Option<usize> {
        if self.pool.tot_weight == 0 {
            return None;
        }
        let hash = match &self.rule {
            Rule::RoundRobin | Rule::StaticRr | Rule::LeastConn | Rule::First => {
                return self.pick_plain(req.avoid)
            }
            Rule::Random { draws } => return self.pick_random(*draws, req.avoid, rng),
            rule => hash_of(rule, &self.ht, req, self.pool.tot_used),
        };
        match (&mut self.lb, hash) {
            (Lb::Map(m), Some(h)) => m.get_hash(&self.pool, h),
            (Lb::Map(m), None) => m.get_rr(&self.pool, req.avoid),
            (Lb::Chash(c), Some(h)) => c.get_hash(&self.pool, h, req.avoid),
            (Lb::Chash(c), None) => c.get_next(&self.pool, req.avoid),
            _ => None,
        }
    }

    /// Whether a server the balancer may pick now (the active servers, else the backups it
    /// uses) has a free slot. When none has, [`Balancer::pick_when_full`] tells where the request
    /// waits, without the side effects a [`Balancer::pick`] that finds everyone full has on
    /// the round-robin order.
    pub fn any_free_slot(&self) -> bool {
        match self.pool.target() {
            Target::Empty => false,
            Target::Only(s) => self.pool.has_room(s),
            Target::Group(backup) => self
                .pool
                .srv
                .iter()
                .any(|s| s.info.backup == backup && s.usable() && s.has_room()),
        }
    }

    /// Where a request goes when no candidate has a free slot (`any_free_slot` is false):
    /// the server its key hashes to, where HAProxy queues it (`Some`), or `None` when the
    /// algorithm balances, and the request waits in the backend's queue for the first server
    /// that frees a slot (HAProxy's `assign_server` answering `SRV_STATUS_FULL`).
    pub fn pick_when_full(&mut self, req: &PickInput<'_>) -> Option<usize> {
        if self.pool.tot_weight == 0 {
            return None;
        }
        let hash = match &self.rule {
            Rule::RoundRobin
            | Rule::StaticRr
            | Rule::LeastConn
            | Rule::First
            | Rule::Random { .. } => return None,
            rule => hash_of(rule, &self.ht, req, self.pool.tot_used)?,
        };
        match &mut self.lb {
            Lb::Map(m) => m.get_hash(&self.pool, hash),
            Lb::Chash(c) => c.get_hash(&self.pool, hash, req.avoid),
            _ => None,
        }
    }

    /// Whether server `i` takes requests from the backend's queue when it frees a slot: it is
    /// one the balancer picks from now (usable; a backup only while the backups are in use,
    /// the first one unless `option allbackups`), as in HAProxy's
    /// `pendconn_process_next_strm`.
    pub fn serves_backend_queue(&self, i: usize) -> bool {
        match self.pool.target() {
            Target::Empty => false,
            Target::Only(s) => s == i,
            Target::Group(backup) => self
                .pool
                .srv
                .get(i)
                .is_some_and(|s| s.info.backup == backup && s.usable()),
        }
    }

    fn pick_plain(&mut self, avoid: Option<usize>) -> Option<usize> {
        match &mut self.lb {
            Lb::Fwrr(f) => match self.pool.target() {
                Target::Group(b) => f.pick(&self.pool, usize::from(b), avoid),
                Target::Only(s) => Some(s),
                Target::Empty => None,
            },
            Lb::Map(m) => m.get_rr(&self.pool, avoid),
            Lb::Lc(l) => l.pick(&self.pool, avoid),
            Lb::Chash(c) => c.get_next(&self.pool, avoid),
        }
    }

    /// `get_server_rnd`: the least loaded (served / eweight) of `draws` random ring points;
    /// `None` if that server is full (the request queues).
    fn pick_random(
        &mut self,
        draws: u32,
        avoid: Option<usize>,
        rng: &mut impl RngLike,
    ) -> Option<usize> {
        let Lb::Chash(c) = &self.lb else { return None };
        let mut curr: Option<usize> = None;
        for _ in 0..draws {
            let prev = curr;
            let Some(mut cand) = c.get_hash(&self.pool, rng.next_u32(), avoid) else {
                curr = None;
                break;
            };
            if let Some(p) = prev.filter(|&p| p != cand) {
                let (sc, sp) = (&self.pool.srv[cand], &self.pool.srv[p]);
                if u64::from(sc.served) * u64::from(sp.eweight)
                    > u64::from(sp.served) * u64::from(sc.eweight)
                {
                    cand = p;
                }
            }
            curr = Some(cand);
        }
        let s = self.pool.srv.get(curr?)?;
        let full = s.queued > 0 || (s.maxconn_now > 0 && s.served >= s.maxconn_now);
        if full {
            None
        } else {
            curr
        }
    }

    /// Health/admin state: `false` for DOWN, MAINT, DRAIN or NOLB, `true` for UP.
    pub fn set_usable(&mut self, i: usize, up: bool) {
        self.change(i, |s| s.up = up);
    }

    /// `set weight` (user weight 0..=256). Static algorithms only accept 0 and the initial
    /// weight, as HAProxy.
    pub fn set_weight(&mut self, i: usize, weight: u32) -> Result<(), WeightError> {
        let initial = *self
            .initial_weight
            .get(i)
            .ok_or(WeightError::NoSuchServer)?;
        if weight > SRV_UWGHT_MAX {
            return Err(WeightError::OutOfRange);
        }
        if self.is_static() && weight != 0 && weight != initial {
            return Err(WeightError::StaticAlgorithm);
        }
        self.change(i, |s| s.uweight = weight);
        Ok(())
    }

    /// Slow start: the server came UP `elapsed` ago and has `slowstart`; call again as time
    /// passes (HAProxy recomputes every second). No effect on static algorithms.
    pub fn set_slowstart(&mut self, i: usize, elapsed: Duration, slowstart: Duration) {
        let ramp = if self.is_static() {
            None
        } else {
            weight::slowstart_ramp(self.pool.wdiv, elapsed, slowstart)
        };
        self.change(i, |s| s.ramp = ramp);
    }

    /// Sets the connection limit in force (see [`weight::dynamic_maxconn`]); only matters
    /// for servers with a `maxconn`.
    pub fn set_maxconn_now(&mut self, i: usize, max: u32) {
        if let Some(s) = self.pool.srv.get_mut(i) {
            s.maxconn_now = max;
        }
    }

    /// A connection to server `i` starts.
    pub fn take_conn(&mut self, i: usize) {
        if let Some(s) = self.pool.srv.get_mut(i) {
            s.served = s.served.saturating_add(1);
            self.pool.served = self.pool.served.saturating_add(1);
        }
        self.after_count(i);
    }

    /// A connection to server `i` ended.
    pub fn drop_conn(&mut self, i: usize) {
        if let Some(s) = self.pool.srv.get_mut(i).filter(|s| s.served > 0) {
            s.served -= 1;
            self.pool.served = self.pool.served.saturating_sub(1);
        }
        self.after_count(i);
    }

    /// Requests waiting in server `i`'s own queue (a server with a queue counts as full).
    pub fn set_queued(&mut self, i: usize, n: u32) {
        if let Some(s) = self.pool.srv.get_mut(i) {
            s.queued = n;
        }
        self.after_count(i);
    }

    fn after_count(&mut self, i: usize) {
        if let Lb::Lc(l) = &mut self.lb {
            l.reposition(&self.pool, i);
        }
    }

    fn is_static(&self) -> bool {
        matches!(self.lb, Lb::Map(_))
    }

    /// Applies a state or weight change and updates the algorithm's structure.
    fn change(&mut self, i: usize, f: impl FnOnce(&mut pool::Srv)) {
        let Some(s) = self.pool.srv.get_mut(i) else {
            return;
        };
        let (old_usable, old_e) = (s.usable(), s.eweight);
        f(s);
        self.pool.commit_eweight(i);
        let Some(s) = self.pool.srv.get(i) else {
            return;
        };
        let (new_usable, new_e) = (s.usable(), s.eweight);
        if old_usable == new_usable && old_e == new_e {
            return;
        }
        self.pool.recount();
        match &mut self.lb {
            Lb::Fwrr(fw) => match (old_usable, new_usable) {
                (true, false) => fw.set_down(&self.pool, i, old_e),
                (false, true) => fw.set_up(&self.pool, i),
                (true, true) => fw.update_weight(&self.pool, i, old_e),
                (false, false) => {}
            },
            Lb::Map(m) => m.recalc(&self.pool),
            Lb::Chash(c) => c.rebuild(&self.pool),
            Lb::Lc(l) => l.requeue(&self.pool, i),
        }
        self.pool.assert_invariants();
    }

    /// `add server`: appends a server (HAProxy's dynamic servers) and returns its index.
    /// Indexes of the other servers do not move; a deleted server stays in place, unusable
    /// ([`Balancer::set_usable`] `false`), so they never have to. Refused (`None`) by the
    /// static algorithms (static-rr, map-based hashing), as HAProxy refuses them.
    pub fn add_server(&mut self, info: ServerInfo) -> Option<usize> {
        if self.is_static() {
            return None;
        }
        let up = info.up;
        let i = self.pool.srv.len();
        self.initial_weight.push(info.weight);
        self.pool.push(&ServerInfo { up: false, ..info });
        match &mut self.lb {
            Lb::Fwrr(f) => f.grow(self.pool.srv.len()),
            Lb::Lc(l) => l.grow(self.pool.srv.len()),
            Lb::Map(_) | Lb::Chash(_) => {}
        }
        // Comes in unusable, then through the same path as any server coming up.
        if up {
            self.set_usable(i, true);
        }
        self.pool.assert_invariants();
        Some(i)
    }

    /// Number of servers (as given to `new`).
    pub fn server_count(&self) -> usize {
        self.pool.srv.len()
    }

    /// Servers that can take traffic now (of the group in use: actives, else backups).
    pub fn usable_count(&self) -> u32 {
        self.pool.tot_used
    }

    /// Current effective weight of server `i` (×16 for dynamic algorithms).
    pub fn effective_weight(&self, i: usize) -> u32 {
        self.pool.srv.get(i).map_or(0, |s| s.eweight)
    }

    /// Connections counted on server `i`.
    pub fn served(&self, i: usize) -> u32 {
        self.pool.srv.get(i).map_or(0, |s| s.served)
    }

    /// True for algorithms whose weights can change at run time (not static-rr/map-based).
    pub fn is_dynamic(&self) -> bool {
        !self.is_static()
    }
}

/// The request's hash for a hashing rule, `None` when the key is missing (round-robin
/// fallback). With one usable server HAProxy skips hashing (hash 0).
fn hash_of(rule: &Rule, ht: &HashType, req: &PickInput<'_>, tot_used: u32) -> Option<u32> {
    match rule {
        Rule::Source => req
            .src
            .map(|a| if tot_used == 1 { 0 } else { key::source(ht, a) }),
        Rule::Uri(o) => Some(if tot_used == 1 {
            0
        } else {
            key::uri(ht, req.uri, o)
        }),
        Rule::UrlParam { name, check_post } => {
            let v = key::url_param_value(req.uri, name).or_else(|| {
                let body = req.body.filter(|_| *check_post && req.is_post)?;
                key::post_param_value(body, name)
            })?;
            Some(key::url_param(ht, v))
        }
        Rule::Hdr { use_domain_only } => {
            if tot_used == 1 {
                return Some(0);
            }
            key::hdr(ht, req.header?, *use_domain_only)
        }
        Rule::Key => req.key.map(|k| {
            if tot_used == 1 {
                0
            } else {
                hash::gen_hash(ht, k)
            }
        }),
        _ => None,
    }
}
