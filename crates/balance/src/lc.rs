//! `leastconn` (`lb_fwlc.c`) and `first` (`lb_fas.c`).
//!
//! leastconn orders usable servers by `(inflight + 1) × 4096 / eweight` (0 when idle), where
//! inflight = served + queued, and HAProxy's ebtree keeps equal keys first-in first-out; a
//! server is repositioned (and so goes behind its equals) only when its key changes.
//! `first` orders them by server id (`puid`) and takes the first with a free slot.

use crate::pool::{Pool, Target, SRV_EWGHT_MAX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LcKind {
    Leastconn,
    First,
}

#[derive(Debug, Clone)]
pub(crate) struct Lc {
    kind: LcKind,
    /// Per server: `Some((key, seq))` while in its group's tree.
    node: Vec<Option<(u32, u64)>>,
    seq: u64,
}

impl Lc {
    pub fn new(pool: &Pool, kind: LcKind) -> Lc {
        let mut lc = Lc {
            kind,
            node: vec![None; pool.srv.len()],
            seq: 0,
        };
        for i in 0..pool.srv.len() {
            lc.requeue(pool, i);
        }
        lc
    }

    /// Room for servers added at run time (out of the tree until usable).
    pub fn grow(&mut self, n: usize) {
        self.node.resize(n, None);
    }

    fn key(&self, pool: &Pool, i: usize) -> u32 {
        let Some(s) = pool.srv.get(i) else { return 0 };
        match self.kind {
            LcKind::First => s.info.puid,
            LcKind::Leastconn => {
                let inflight = s.served.saturating_add(s.queued);
                if inflight == 0 || s.eweight == 0 {
                    0
                } else {
                    let k =
                        u64::from(inflight + 1) * u64::from(SRV_EWGHT_MAX) / u64::from(s.eweight);
                    k as u32
                }
            }
        }
    }

    /// Dequeue and queue again (state or weight change): goes behind its equals.
    pub fn requeue(&mut self, pool: &Pool, i: usize) {
        let usable = pool.srv.get(i).is_some_and(|s| s.usable());
        let key = self.key(pool, i);
        self.seq += 1;
        let seq = self.seq;
        if let Some(n) = self.node.get_mut(i) {
            *n = usable.then_some((key, seq));
        }
    }

    /// `fwlc_srv_reposition`: after a connection count change, only when the key changed.
    pub fn reposition(&mut self, pool: &Pool, i: usize) {
        let key = self.key(pool, i);
        if let Some(Some((k, _))) = self.node.get(i) {
            if *k != key {
                self.requeue(pool, i);
            }
        }
    }

    /// `fwlc_get_next_server` / `fas_get_next_server`.
    pub fn pick(&self, pool: &Pool, avoid: Option<usize>) -> Option<usize> {
        let backup = match pool.target() {
            Target::Empty => return None,
            Target::Only(f) => return Some(f),
            Target::Group(b) => b,
        };
        let mut best: Option<(u32, u64, usize)> = None;
        let mut avoided = None;
        for (i, n) in self.node.iter().enumerate() {
            let Some((k, q)) = *n else { continue };
            let Some(s) = pool.srv.get(i) else { continue };
            if s.info.backup != backup || !s.has_room() {
                continue;
            }
            if Some(i) == avoid {
                avoided = Some(i);
                continue;
            }
            if best.is_none_or(|(bk, bq, _)| (k, q) < (bk, bq)) {
                best = Some((k, q, i));
            }
        }
        best.map(|b| b.2).or(avoided)
    }
}
