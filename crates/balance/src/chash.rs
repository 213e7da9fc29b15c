//! Consistent hashing (`lb_chash.c`): each usable server owns `eweight` points on a 32-bit
//! ring at `full_hash(puid * 4096 + n)` for `n < eweight` (eweight = weight × 16). A key goes
//! to the closest point (ties towards the lower point, wrapping), then onwards while the server
//! is the one to avoid or over its `hash-balance-factor` share. Also `random` (random keys) and
//! the round-robin fallback walking the ring.

use crate::hash::full_hash;
use crate::pool::{Pool, Target, SRV_EWGHT_MAX};

#[derive(Debug, Clone)]
pub(crate) struct Chash {
    /// Points of the serving group, sorted by key: (key, server). Rebuilt on state changes
    /// only; picks never allocate.
    ring: Vec<(u32, usize)>,
    /// Key of the last point the round-robin fallback used.
    last: Option<u32>,
    /// `hash-balance-factor` in percent, 0 = off.
    pub balance_factor: u32,
}

impl Chash {
    pub fn new(pool: &Pool, balance_factor: u32) -> Chash {
        let cap: usize = pool.srv.iter().map(|s| s.uweight as usize * 16).sum();
        let mut c = Chash {
            ring: Vec::with_capacity(cap),
            last: None,
            balance_factor,
        };
        c.rebuild(pool);
        c
    }

    /// Re-place the serving group's points (after any state or weight change).
    pub fn rebuild(&mut self, pool: &Pool) {
        self.ring.clear();
        let Target::Group(backup) = pool.target() else {
            return;
        };
        for i in pool.members(backup) {
            let Some(s) = pool.srv.get(i) else { continue };
            let base = s.info.puid.wrapping_mul(SRV_EWGHT_MAX);
            for n in 0..s.eweight {
                self.ring.push((full_hash(base.wrapping_add(n)), i));
            }
        }
        self.ring.sort_unstable();
    }

    /// `chash_get_server_hash`.
    pub fn get_hash(&self, pool: &Pool, hash: u32, avoid: Option<usize>) -> Option<usize> {
        match pool.target() {
            Target::Empty => return None,
            Target::Only(f) => return Some(f),
            Target::Group(_) => {}
        }
        let len = self.ring.len();
        if len == 0 {
            return None;
        }
        let idx = self.ring.partition_point(|&(k, _)| k < hash);
        let (next, prev) = if idx == len {
            (0, len - 1)
        } else {
            (idx, if idx == 0 { len - 1 } else { idx - 1 })
        };
        let (nk, _) = self.ring.get(next).copied()?;
        let (pk, _) = self.ring.get(prev).copied()?;
        let dp = hash.wrapping_sub(pk);
        let dn = nk.wrapping_sub(hash);
        let mut at = if dp <= dn { prev } else { next };
        let mut srv = self.ring.get(at)?.1;
        let mut wrapped = 0;
        while Some(srv) == avoid || (self.balance_factor > 0 && !self.eligible(pool, srv)) {
            at += 1;
            if at == len {
                at = 0;
                wrapped += 1;
                if wrapped > 1 {
                    break;
                }
            }
            srv = self.ring.get(at)?.1;
        }
        Some(srv)
    }

    /// `chash_server_is_eligible`: under its weighted share of `(served + 1) × factor%`.
    fn eligible(&self, pool: &Pool, s: usize) -> bool {
        let Some(x) = pool.srv.get(s) else {
            return false;
        };
        let tot_w = pool.tot_weight.max(1);
        let tot_slots = ((pool.served + 1) * self.balance_factor).div_ceil(100);
        let per_weight = tot_slots / tot_w;
        let rem = tot_slots % tot_w;
        let mut slots = x.eweight * per_weight;
        slots +=
            (x.cumulative_weight + x.eweight) * rem / tot_w - x.cumulative_weight * rem / tot_w;
        x.served < slots.max(1)
    }

    /// `chash_get_next_server`: round robin over the ring's points (fallback when a hashing
    /// algorithm finds no key).
    pub fn get_next(&mut self, pool: &Pool, avoid: Option<usize>) -> Option<usize> {
        match pool.target() {
            Target::Empty => return None,
            Target::Only(f) => return Some(f),
            Target::Group(_) => {}
        }
        let len = self.ring.len();
        if len == 0 {
            return None;
        }
        let start = match self.last {
            Some(k) => self.ring.partition_point(|&(x, _)| x <= k) % len,
            None => 0,
        };
        let mut avoided = None;
        for step in 0..len {
            let at = (start + step) % len;
            let (k, s) = self.ring.get(at).copied()?;
            self.last = Some(k);
            if pool.has_room(s) {
                if Some(s) != avoid {
                    return Some(s);
                }
                avoided = Some((s, k));
            }
        }
        let (s, k) = avoided?;
        self.last = Some(k);
        Some(s)
    }
}
