//! The state every algorithm shares: servers, their user and effective weights, health and
//! admin state, connection counts, and the backend's group totals (HAProxy's `recount_servers`
//! and `update_backend_weight`).

use crate::ServerInfo;

/// HAProxy's `BE_WEIGHT_SCALE`: dynamic algorithms scale user weights by 16.
pub const BE_WEIGHT_SCALE: u32 = 16;
/// `SRV_UWGHT_RANGE`/`SRV_UWGHT_MAX`: user weights are 0..=256.
pub const SRV_UWGHT_MAX: u32 = 256;
/// `SRV_EWGHT_MAX`/`SRV_EWGHT_RANGE`: largest effective weight.
pub const SRV_EWGHT_MAX: u32 = SRV_UWGHT_MAX * BE_WEIGHT_SCALE;

/// One server's live state.
#[derive(Debug, Clone)]
pub(crate) struct Srv {
    pub info: ServerInfo,
    /// Current user weight (`set weight` changes it).
    pub uweight: u32,
    /// Slow-start ramp factor in `wdiv` units; `None` at full throttle.
    pub ramp: Option<u32>,
    /// Health and admin state allow traffic (UP, not MAINT, not DRAIN, not NOLB).
    pub up: bool,
    /// Effective weight (HAProxy's `cur_eweight`).
    pub eweight: u32,
    pub served: u32,
    pub queued: u32,
    /// Connection limit in force (`srv_dynamic_maxconn`), 0 = unlimited.
    pub maxconn_now: u32,
    pub cumulative_weight: u32,
}

impl Srv {
    /// `srv_currently_usable`.
    pub fn usable(&self) -> bool {
        self.up && self.eweight > 0
    }

    /// Not saturated: `!maxconn || (!queue.length && served < srv_dynamic_maxconn)`.
    pub fn has_room(&self) -> bool {
        self.maxconn_now == 0 || (self.queued == 0 && self.served < self.maxconn_now)
    }
}

/// Servers plus the backend-level totals.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub srv: Vec<Srv>,
    pub allbackups: bool,
    pub wmult: u32,
    pub wdiv: u32,
    pub srv_act: u32,
    pub srv_bck: u32,
    pub tot_wact: u32,
    pub tot_wbck: u32,
    /// First usable backup when `option allbackups` is off.
    pub fbck: Option<usize>,
    pub tot_weight: u32,
    pub tot_used: u32,
    /// Connections served by the whole backend (`hash-balance-factor`).
    pub served: u32,
}

impl Pool {
    pub fn new(servers: &[ServerInfo], allbackups: bool, wmult: u32, wdiv: u32) -> Pool {
        let srv = servers
            .iter()
            .map(|s| Srv {
                info: s.clone(),
                uweight: s.weight.min(SRV_UWGHT_MAX),
                ramp: None,
                up: s.up,
                eweight: 0,
                served: 0,
                queued: 0,
                maxconn_now: s.maxconn,
                cumulative_weight: 0,
            })
            .collect();
        let mut p = Pool {
            srv,
            allbackups,
            wmult: wmult.max(1),
            wdiv: wdiv.max(1),
            srv_act: 0,
            srv_bck: 0,
            tot_wact: 0,
            tot_wbck: 0,
            fbck: None,
            tot_weight: 0,
            tot_used: 0,
            served: 0,
        };
        for i in 0..p.srv.len() {
            p.commit_eweight(i);
        }
        p.recount();
        p
    }

    /// Appends a server (`add server`); it counts once usable.
    pub fn push(&mut self, s: &ServerInfo) {
        self.srv.push(Srv {
            info: s.clone(),
            uweight: s.weight.min(SRV_UWGHT_MAX),
            ramp: None,
            up: s.up,
            eweight: 0,
            served: 0,
            queued: 0,
            maxconn_now: s.maxconn,
            cumulative_weight: 0,
        });
        let i = self.srv.len() - 1;
        self.commit_eweight(i);
        self.recount();
    }

    /// `server_recalc_eweight`: `(uweight * w + wmult - 1) / wmult` with `w = wdiv` or the
    /// slow-start ramp.
    pub fn next_eweight(&self, i: usize) -> u32 {
        let Some(s) = self.srv.get(i) else { return 0 };
        let w = s.ramp.unwrap_or(self.wdiv);
        (s.uweight * w).div_ceil(self.wmult)
    }

    pub fn commit_eweight(&mut self, i: usize) {
        let e = self.next_eweight(i);
        if let Some(s) = self.srv.get_mut(i) {
            s.eweight = e;
        }
    }

    /// `recount_servers` + `update_backend_weight`.
    pub fn recount(&mut self) {
        self.srv_act = 0;
        self.srv_bck = 0;
        self.tot_wact = 0;
        self.tot_wbck = 0;
        self.fbck = None;
        for (i, s) in self.srv.iter_mut().enumerate() {
            if !s.usable() {
                continue;
            }
            if s.info.backup {
                if self.srv_bck == 0 && !self.allbackups {
                    self.fbck = Some(i);
                }
                self.srv_bck += 1;
                s.cumulative_weight = self.tot_wbck;
                self.tot_wbck += s.eweight;
            } else {
                self.srv_act += 1;
                s.cumulative_weight = self.tot_wact;
                self.tot_wact += s.eweight;
            }
        }
        self.update_backend_weight();
    }

    fn update_backend_weight(&mut self) {
        if self.srv_act > 0 {
            self.tot_weight = self.tot_wact;
            self.tot_used = self.srv_act;
        } else if let Some(f) = self.fbck {
            self.tot_weight = self.srv.get(f).map_or(0, |s| s.eweight);
            self.tot_used = 1;
        } else {
            self.tot_weight = self.tot_wbck;
            self.tot_used = self.srv_bck;
        }
    }

    /// Which group serves now: `Active`, the first backup alone, `Backup` (all backups), or
    /// `Empty`.
    pub fn target(&self) -> Target {
        if self.srv_act > 0 {
            Target::Group(false)
        } else if let Some(f) = self.fbck {
            Target::Only(f)
        } else if self.srv_bck > 0 {
            Target::Group(true)
        } else {
            Target::Empty
        }
    }

    /// Usable servers of group `backup`, in declaration order.
    pub fn members(&self, backup: bool) -> impl Iterator<Item = usize> + '_ {
        self.srv
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.info.backup == backup && s.usable())
            .map(|(i, _)| i)
    }

    pub fn has_room(&self, i: usize) -> bool {
        self.srv.get(i).is_some_and(Srv::has_room)
    }

    /// Debug check of the totals after a mutation.
    pub fn assert_invariants(&self) {
        debug_assert_eq!(
            self.tot_wact,
            self.members(false)
                .map(|i| self.srv[i].eweight)
                .sum::<u32>()
        );
        debug_assert_eq!(
            self.tot_wbck,
            self.members(true).map(|i| self.srv[i].eweight).sum::<u32>()
        );
        debug_assert!(
            self.served as usize
                >= self
                    .srv
                    .iter()
                    .map(|s| s.served as usize)
                    .max()
                    .unwrap_or(0)
        );
    }
}

/// Where picks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The usable servers of one group (`true` = backups).
    Group(bool),
    /// Only this server (first backup without `allbackups`).
    Only(usize),
    Empty,
}
