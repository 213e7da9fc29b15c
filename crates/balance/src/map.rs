//! Static map (`lb_map.c`): `static-rr` and `hash-type map-based`. The map has one slot per
//! unit of total effective weight, filled by `recalc_server_map` so that declaration order
//! wins ties; hashing indexes it with `hash % tot_weight`, static-rr walks it.

use crate::pool::{Pool, Target};

#[derive(Debug, Clone)]
pub(crate) struct MapLb {
    /// Slots (server indexes). Capacity reserved for the largest possible total weight.
    map: Vec<usize>,
    wscore: Vec<i64>,
    rr_idx: usize,
}

impl MapLb {
    pub fn new(pool: &Pool) -> MapLb {
        let cap: u32 = pool
            .srv
            .iter()
            .map(|s| pool_max_eweight(pool, s.uweight))
            .sum();
        let mut m = MapLb {
            map: Vec::with_capacity(cap as usize),
            wscore: vec![0; pool.srv.len()],
            rr_idx: 0,
        };
        m.recalc(pool);
        m
    }

    /// `recalc_server_map`.
    pub fn recalc(&mut self, pool: &Pool) {
        if pool.tot_used == 0 {
            return;
        }
        let tot = pool.tot_weight;
        let backup = pool.srv_act == 0;
        self.wscore.iter_mut().for_each(|w| *w = 0);
        self.map.clear();
        for _ in 0..tot {
            let best = self.best_slot(pool, backup, tot);
            if let Some(b) = best {
                if let Some(w) = self.wscore.get_mut(b) {
                    *w -= i64::from(tot);
                }
                self.map.push(b);
            }
        }
        debug_assert!(self.map.len() <= tot as usize);
    }

    fn best_slot(&mut self, pool: &Pool, backup: bool, tot: u32) -> Option<usize> {
        let tot = i64::from(tot.max(1));
        let mut best: Option<usize> = None;
        let mut max = 0i64;
        for (i, s) in pool.srv.iter().enumerate() {
            if s.info.backup != backup || !s.usable() {
                continue;
            }
            if tot == 1 {
                return Some(i);
            }
            let Some(w) = self.wscore.get_mut(i) else {
                continue;
            };
            *w += i64::from(s.eweight);
            let v = (*w + tot) / tot;
            if best.is_none() || v > max {
                max = v;
                best = Some(i);
            }
        }
        best
    }

    /// `map_get_server_hash`.
    pub fn get_hash(&self, pool: &Pool, hash: u32) -> Option<usize> {
        if pool.tot_weight == 0 || matches!(pool.target(), Target::Empty) {
            return None;
        }
        let len = self.map.len().min(pool.tot_weight as usize);
        if len == 0 {
            return None;
        }
        self.map.get((hash % pool.tot_weight) as usize).copied()
    }

    /// `map_get_server_rr`.
    pub fn get_rr(&mut self, pool: &Pool, avoid: Option<usize>) -> Option<usize> {
        let tot = (pool.tot_weight as usize).min(self.map.len());
        if tot == 0 {
            return None;
        }
        if self.rr_idx >= tot {
            self.rr_idx = 0;
        }
        let mut idx = self.rr_idx;
        let mut avoided: Option<(usize, usize)> = None;
        loop {
            let srv = self.map.get(idx).copied();
            idx += 1;
            if let Some(s) = srv.filter(|&s| pool.has_room(s)) {
                avoided = Some((s, idx));
                if Some(s) != avoid {
                    self.rr_idx = idx;
                    return Some(s);
                }
            }
            if idx == tot {
                idx = 0;
            }
            if idx == self.rr_idx {
                break;
            }
        }
        let (s, i) = avoided?;
        self.rr_idx = i;
        Some(s)
    }
}

fn pool_max_eweight(pool: &Pool, uweight: u32) -> u32 {
    (uweight * pool.wdiv).div_ceil(pool.wmult)
}

/// Greatest common divisor of the non-zero user weights (`init_server_map`'s `pgcd`).
pub(crate) fn weight_gcd(weights: impl Iterator<Item = u32>) -> u32 {
    let mut g = 0u32;
    for w in weights.filter(|w| *w > 0) {
        let (mut a, mut b) = (g, w);
        while b != 0 {
            let t = a % b;
            a = b;
            b = t;
        }
        g = a;
    }
    g.max(1)
}
