//! `balance roundrobin`: HAProxy's "fast weighted round robin" (`lb_fwrr.c`, 2.6), emulated
//! step for step so that the sequence of servers is the one a real haproxy produces.
//!
//! Each group (active, backup) has three trees: `curr` (servers ordered by their next position
//! `npos`), `init` (servers never picked in this window, by decreasing weight) and `next`
//! (servers pushed past the window). An ebtree orders equal keys first-in first-out; here each
//! server records its tree, its key and an insertion sequence number, and "first of a tree" is
//! the smallest `(key, seq)` — an O(n) scan, allocation-free, for backends of a few hundred
//! servers at most.

use crate::pool::{Pool, BE_WEIGHT_SCALE, SRV_EWGHT_MAX, SRV_UWGHT_MAX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    None,
    Curr,
    T0,
    T1,
}

#[derive(Debug, Clone)]
struct Group {
    curr_pos: u32,
    curr_weight: u32,
    next_weight: u32,
    init: Tree,
    next: Tree,
}

impl Group {
    fn new(weight: u32) -> Group {
        Group {
            curr_pos: weight,
            curr_weight: weight,
            next_weight: weight,
            init: Tree::T0,
            next: Tree::T1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    tree: Tree,
    key: u32,
    seq: u64,
    npos: u32,
    lpos: u32,
    rweight: i32,
}

/// Per-backend FWRR state.
#[derive(Debug, Clone)]
pub(crate) struct Fwrr {
    grp: [Group; 2],
    n: Vec<Node>,
    seq: u64,
    full: Vec<usize>,
}

fn gi(pool: &Pool, s: usize) -> usize {
    usize::from(pool.srv.get(s).is_some_and(|x| x.info.backup))
}

impl Fwrr {
    /// `fwrr_init_server_groups` (the pool was built with `wdiv = BE_WEIGHT_SCALE`).
    pub fn new(pool: &Pool) -> Fwrr {
        let node = Node {
            tree: Tree::None,
            key: 0,
            seq: 0,
            npos: 0,
            lpos: 0,
            rweight: 0,
        };
        let mut f = Fwrr {
            grp: [Group::new(pool.tot_wact), Group::new(pool.tot_wbck)],
            n: vec![node; pool.srv.len()],
            seq: 0,
            full: Vec::with_capacity(pool.srv.len()),
        };
        for s in 0..pool.srv.len() {
            if pool.srv[s].usable() {
                let init = f.grp[gi(pool, s)].init;
                f.queue_by_weight(pool, init, s);
            }
        }
        f
    }

    /// Room for servers added at run time (they start outside every tree).
    pub fn grow(&mut self, n: usize) {
        let node = Node {
            tree: Tree::None,
            key: 0,
            seq: 0,
            npos: 0,
            lpos: 0,
            rweight: 0,
        };
        self.n.resize(n, node);
    }

    fn insert(&mut self, s: usize, tree: Tree, key: u32) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(n) = self.n.get_mut(s) {
            n.tree = tree;
            n.key = key;
            n.seq = seq;
        }
    }

    fn remove(&mut self, s: usize) {
        if let Some(n) = self.n.get_mut(s) {
            n.tree = Tree::None;
        }
    }

    fn first(&self, pool: &Pool, g: usize, tree: Tree) -> Option<usize> {
        let mut best: Option<(u32, u64, usize)> = None;
        for (s, n) in self.n.iter().enumerate() {
            if n.tree != tree || gi(pool, s) != g {
                continue;
            }
            if best.is_none_or(|(k, q, _)| (n.key, n.seq) < (k, q)) {
                best = Some((n.key, n.seq, s));
            }
        }
        best.map(|b| b.2)
    }

    fn queue_by_weight(&mut self, pool: &Pool, tree: Tree, s: usize) {
        let e = pool.next_eweight(s);
        self.insert(s, tree, SRV_EWGHT_MAX.wrapping_sub(e));
    }

    /// `fwrr_queue_srv`.
    fn queue_srv(&mut self, pool: &Pool, s: usize) {
        let g = gi(pool, s);
        let grp = self.grp[g].clone();
        let e = pool.next_eweight(s);
        let willbe = pool.srv[s].up && e > 0;
        let n = self.n[s];
        if !willbe {
            self.remove(s);
        } else if n.npos >= grp.curr_weight.wrapping_mul(2)
            || n.npos >= grp.curr_weight.wrapping_add(grp.next_weight)
        {
            self.n[s].npos = n.npos.wrapping_sub(grp.curr_weight);
            self.queue_by_weight(pool, grp.next, s);
        } else {
            let frac =
                SRV_EWGHT_MAX.wrapping_add(n.rweight as u32).wrapping_sub(e) / BE_WEIGHT_SCALE;
            let key = SRV_UWGHT_MAX.wrapping_mul(n.npos).wrapping_add(frac);
            self.insert(s, Tree::Curr, key);
        }
    }

    /// `fwrr_get_srv`: prepare a server leaving its tree.
    fn get_srv(&mut self, pool: &Pool, s: usize) {
        let g = &self.grp[gi(pool, s)];
        let (init, next, cw, cp) = (g.init, g.next, g.curr_weight, g.curr_pos);
        let n = &mut self.n[s];
        if n.tree == init {
            n.npos = 0;
            n.rweight = 0;
        } else if n.tree == next {
            n.npos = n.npos.wrapping_add(cw);
        } else if n.tree == Tree::None {
            n.npos = cp;
        }
    }

    fn switch_trees(&mut self, g: usize) {
        let grp = &mut self.grp[g];
        std::mem::swap(&mut grp.init, &mut grp.next);
        grp.curr_weight = grp.next_weight;
        grp.curr_pos = grp.curr_weight;
    }

    /// `fwrr_get_server_from_group`.
    fn take_from_group(&mut self, pool: &Pool, g: usize) -> Option<usize> {
        let s1 = self.first(pool, g, Tree::Curr);
        if let Some(s) = s1 {
            if pool.srv[s].eweight > 0 && self.n[s].npos <= self.grp[g].curr_pos {
                return Some(s);
            }
        }
        if let Some(s) = self.first(pool, g, self.grp[g].init) {
            if pool.srv[s].eweight > 0 {
                self.n[s].npos = 0;
                self.n[s].rweight = 0;
                return Some(s);
            }
        }
        s1
    }

    /// `fwrr_update_position`.
    fn update_position(&mut self, pool: &Pool, g: usize, s: usize) {
        let e = pool.srv[s].eweight;
        if e == 0 {
            return;
        }
        let grp = &self.grp[g];
        let n = &mut self.n[s];
        if n.npos == 0 {
            n.npos = grp.curr_pos;
        }
        n.lpos = n.npos;
        n.npos = n.npos.wrapping_add(grp.next_weight / e);
        n.rweight = n.rweight.wrapping_add((grp.next_weight % e) as i32);
        if n.rweight as u32 >= e {
            n.rweight = n.rweight.wrapping_sub(e as i32);
            n.npos = n.npos.wrapping_add(1);
        }
    }

    /// `fwrr_get_next_server` for group `g` (0 = active, 1 = backup).
    pub fn pick(&mut self, pool: &Pool, g: usize, avoid: Option<usize>) -> Option<usize> {
        let mut switched = false;
        let mut avoided: Option<usize> = None;
        // Saturated or avoided servers, requeued at the end (HAProxy's `next_full` list).
        // Preallocated: each server is extracted at most once per pick.
        self.full.clear();
        let srv = loop {
            if self.grp[g].curr_weight == 0 {
                let w = self.grp[g].next_weight;
                self.grp[g].curr_pos = w;
                self.grp[g].curr_weight = w;
            }
            let Some(s) = self.next_in_window(pool, g, &mut switched) else {
                if let Some(a) = avoided {
                    break a;
                }
                self.requeue(pool, g, None, switched);
                return None;
            };
            self.update_position(pool, g, s);
            self.remove(s);
            self.grp[g].curr_pos = self.grp[g].curr_pos.wrapping_add(1);
            if pool.has_room(s) {
                if Some(s) != avoid || avoided.is_some() {
                    break s;
                }
                avoided = Some(s);
            }
            self.full.push(s);
        };
        self.queue_srv(pool, srv);
        self.requeue(pool, g, Some(srv), switched);
        Some(srv)
    }

    /// The next server of the window, switching trees at most once per pick.
    fn next_in_window(&mut self, pool: &Pool, g: usize, switched: &mut bool) -> Option<usize> {
        loop {
            if let Some(s) = self.take_from_group(pool, g) {
                return Some(s);
            }
            if *switched {
                return None;
            }
            *switched = true;
            self.switch_trees(g);
        }
    }

    /// Requeue the extracted servers, most recent first.
    fn requeue(&mut self, pool: &Pool, g: usize, srv: Option<usize>, switched: bool) {
        let n = self.full.len();
        for k in (0..n).rev() {
            let Some(&s) = self.full.get(k) else { continue };
            if Some(s) == srv {
                continue;
            }
            if switched {
                let init = self.grp[g].init;
                self.queue_by_weight(pool, init, s);
            } else {
                self.queue_srv(pool, s);
            }
        }
        self.full.clear();
    }

    /// `fwrr_set_server_status_down`: `s` was usable with effective weight `old_e`.
    pub fn set_down(&mut self, pool: &Pool, s: usize, old_e: u32) {
        let g = gi(pool, s);
        self.grp[g].next_weight = self.grp[g].next_weight.wrapping_sub(old_e);
        self.remove(s);
    }

    /// `fwrr_set_server_status_up`: `s` was not usable and now is.
    pub fn set_up(&mut self, pool: &Pool, s: usize) {
        let g = gi(pool, s);
        let e = pool.next_eweight(s).max(1);
        self.grp[g].next_weight = self.grp[g].next_weight.wrapping_add(e);
        self.get_srv(pool, s);
        self.place_after_pos(g, s, e);
        self.queue_srv(pool, s);
    }

    fn place_after_pos(&mut self, g: usize, s: usize, e: u32) {
        let grp = &self.grp[g];
        let span = grp
            .next_weight
            .wrapping_add(grp.curr_weight)
            .wrapping_sub(grp.curr_pos);
        self.n[s].npos = grp.curr_pos.wrapping_add(span / e);
    }

    /// `fwrr_update_server_weight` when the server stays usable (`old_e` → current).
    pub fn update_weight(&mut self, pool: &Pool, s: usize, old_e: u32) {
        let g = gi(pool, s);
        let e = pool.next_eweight(s);
        let nw = self.grp[g].next_weight.wrapping_sub(old_e).wrapping_add(e);
        self.grp[g].next_weight = nw;
        let tree = self.n[s].tree;
        if tree == self.grp[g].init {
            self.queue_by_weight(pool, tree, s);
            return;
        }
        self.get_srv(pool, s);
        if tree == Tree::None {
            self.place_after_pos(g, s, e.max(1));
        } else if let Some(step) = nw.checked_div(e) {
            let (cp, n) = (self.grp[g].curr_pos, &mut self.n[s]);
            let prev_next = n.npos;
            n.npos = n.lpos.wrapping_add(step);
            n.rweight = 0;
            if n.npos > prev_next {
                n.npos = prev_next;
            }
            if n.npos < cp.wrapping_add(2) {
                n.npos = cp.wrapping_add(step);
            }
        } else {
            let grp = &self.grp[g];
            self.n[s].npos = grp.curr_pos.wrapping_add(grp.curr_weight);
        }
        self.queue_srv(pool, s);
    }
}
