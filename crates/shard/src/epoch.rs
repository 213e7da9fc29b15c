//! In-process reload: a shard's state for a new configuration epoch.
//!
//! The control shard validates a new configuration, computes with [`carry_over`] the runtime
//! changes to keep (as control messages in the new topology's `initial`, so every shard and
//! the control shard's mirror apply the same ones as they build their state) and broadcasts
//! `ControlMsg::NewEpoch`. Each shard then builds its next state with
//! [`ShardState::next_epoch`]: new connections use it; connections accepted before keep the
//! `Rc` of the old one and finish on it. What belongs to the shard rather than to one
//! configuration (connection counts, stick tables, `proc.` variables) is shared by the epochs.

use std::rc::Rc;
use std::sync::Arc;

use crate::state::{AdminState, ControlMsg, NewServer, ShardState};
use crate::topology::Topology;

/// The runtime changes of `old` that `new` keeps, as messages indexed for `new`: by backend
/// and server name, for objects that still exist. Admin state, weight and address count when
/// they differ from what the old configuration set (a change made at run time, which the
/// configuration file does not know); a server down stays down; servers added with `add
/// server` are added again after the configured ones, unless the new configuration declares
/// a server of that name. Deleted servers are not carried (the configuration wins).
pub fn carry_over(old: &ShardState, new: &Topology) -> Vec<ControlMsg> {
    let mut out = Vec::new();
    for (obi, obe) in old.topo.backends.iter().enumerate() {
        let Some((nbi, nbe)) = new
            .backends
            .iter()
            .enumerate()
            .find(|(_, b)| b.name == obe.name)
        else {
            continue;
        };
        let configured = obe.servers.len();
        let mut next_dynamic = nbe.servers.len();
        // `add server` needs a dynamic algorithm: with a static one the servers added at
        // run time are not carried (as `add server` would refuse them).
        let b = &nbe.balance;
        let takes_dynamic =
            ringlb_balance::Balancer::new(&b.balance, &b.hash_type, &b.servers, &b.options)
                .is_dynamic();
        for (osi, st) in old.servers(obi).into_iter().enumerate() {
            if st.deleted.get() {
                continue;
            }
            let declared = nbe.servers.iter().position(|s| s.name == st.rt.name);
            let (nsi, dynamic) = match declared {
                Some(i) => (i, false),
                None if osi >= configured && takes_dynamic => {
                    let i = next_dynamic;
                    next_dynamic += 1;
                    (i, true)
                }
                None => continue, // removed from the configuration
            };
            let base_admin = if dynamic {
                out.push(ControlMsg::AddServer {
                    backend: nbi,
                    server: NewServer(Arc::new(st.rt.clone())),
                    puid: st.puid,
                    enabled: true,
                });
                AdminState::Ready
            } else if st.rt.disabled {
                AdminState::Maint
            } else {
                AdminState::Ready
            };
            // A dynamic server's whole state is run-time state; a configured one's only
            // where it differs from its configuration.
            let conf = if dynamic { None } else { nbe.servers.get(nsi) };
            // The asked-for state; a resolution maintenance is carried apart (the DNS
            // answer that ends it must not end a `set server ... state maint`).
            if st.admin_set.get() != base_admin {
                out.push(ControlMsg::SetServerAdmin {
                    backend: nbi,
                    server: nsi,
                    state: st.admin_set.get(),
                });
            }
            if st.rmaint.get() {
                out.push(ControlMsg::SetServerResolution {
                    backend: nbi,
                    server: nsi,
                    addr: None,
                });
            }
            let weight = st.weight.get();
            if weight != st.rt.weight && conf.is_none_or(|c| c.weight == st.rt.weight) {
                out.push(ControlMsg::SetServerWeight {
                    backend: nbi,
                    server: nsi,
                    weight,
                });
            }
            let addr = st.addr.get();
            if addr != st.rt.addr && conf.is_none_or(|c| c.addr == st.rt.addr) {
                out.push(ControlMsg::SetServerAddr {
                    backend: nbi,
                    server: nsi,
                    addr,
                });
            }
            if !st.up.get() {
                out.push(ControlMsg::SetServerHealth {
                    backend: nbi,
                    server: nsi,
                    up: false,
                });
            }
        }
    }
    carry_limits(old, new, &mut out);
    out
}

/// The runtime socket's frontend states and limits (frontends by name), where they differ
/// from the new configuration's.
fn carry_limits(old: &ShardState, new: &Topology, out: &mut Vec<ControlMsg>) {
    use crate::state::GlobalLimit;
    let l = &old.limits;
    let conf = &old.topo;
    // Only values set at run time (they differ from the old configuration's).
    for (limit, now, was) in [
        (GlobalLimit::Maxconn, l.maxconn.get(), conf.maxconn),
        (GlobalLimit::ConnRate, l.conn_rate.get(), conf.ops.conn_rate),
        (GlobalLimit::SessRate, l.sess_rate.get(), conf.ops.sess_rate),
        (GlobalLimit::SslRate, l.ssl_rate.get(), conf.maxsslrate),
    ] {
        if now != was {
            out.push(ControlMsg::SetGlobalLimit { limit, value: now });
        }
    }
    for (ofi, ofe) in old.topo.frontends.iter().enumerate() {
        let Some(nfi) = new.frontends.iter().position(|f| f.name == ofe.name) else {
            continue;
        };
        let state = l.frontend(ofi);
        if state != crate::state::FrontendRun::Ready {
            out.push(ControlMsg::SetFrontendState {
                frontend: nfi,
                state,
            });
        }
        let maxconn = l
            .fe_maxconn
            .get(ofi)
            .map_or(ofe.maxconn, std::cell::Cell::get);
        if maxconn != ofe.maxconn {
            out.push(ControlMsg::SetFrontendMaxconn {
                frontend: nfi,
                maxconn,
            });
        }
    }
}

/// Why `new` cannot be swapped into a running process (a process reload can do it), or
/// `None`. Checks what the shards size or start once: stick tables (their instances and the
/// links between shards are built at start), `tune.bufsize` (the receive buffer pool),
/// `maxconn` and the accept-rate limits (per-shard shares).
pub fn refuse_reason(old: &Topology, new: &Topology) -> Option<String> {
    // Declared alike: same names, order and settings (where a line sits does not count).
    let alike = |a: &(String, ringlb_config::model::StickTable),
                 b: &(String, ringlb_config::model::StickTable)| {
        a.0 == b.0
            && ringlb_config::model::StickTable {
                loc: b.1.loc.clone(),
                ..a.1.clone()
            } == b.1
    };
    if old.stick_tables.len() != new.stick_tables.len()
        || !old
            .stick_tables
            .iter()
            .zip(&new.stick_tables)
            .all(|(a, b)| alike(a, b))
    {
        return Some("'stick-table' declarations changed".into());
    }
    if old.tune.bufsize != new.tune.bufsize {
        return Some("'tune.bufsize' changed".into());
    }
    if old.maxconn != new.maxconn {
        return Some("global 'maxconn' changed".into());
    }
    if old.ops.conn_rate != new.ops.conn_rate {
        return Some("'maxconnrate' changed".into());
    }
    if old.ops.sess_rate != new.ops.sess_rate {
        return Some("'maxsessrate' changed".into());
    }
    None
}

impl ShardState {
    /// This shard's state for the epoch of `topo`: built as at start (applying `topo.initial`,
    /// the carried-over changes), sharing with `self` what belongs to the shard, and taking
    /// over the idle connections to servers that kept their name and address.
    pub fn next_epoch(&self, topo: Arc<Topology>) -> ShardState {
        let mut st = ShardState::with_board(topo, self.shard_id, self.nshards, self.board.clone());
        st.conns = self.conns.clone();
        st.accepting = self.accepting.clone();
        st.conn_closed = self.conn_closed.clone();
        st.ssl_conns = self.ssl_conns.clone();
        st.ssl_rate = self.ssl_rate.clone();
        // `refuse_reason` made sure the tables are declared alike, so table ids agree.
        st.stick = self.stick.clone();
        st.stick_flush = self.stick_flush.clone();
        st.stick_dirty = self.stick_dirty.clone();
        st.proc_vars = self.proc_vars.clone();
        st.next_lease_id.set(self.next_lease_id.get());
        st.adopt_idle(self);
        st.counters
            .borrow_mut()
            .attach_gauges(&self.board, self.shard_id);
        st
    }

    /// Moves `old`'s idle server connections to the servers of the same backend and name
    /// that still go to the same address (a connection is not tied to a configuration).
    fn adopt_idle(&self, old: &ShardState) {
        for (bi, be) in self.topo.backends.iter().enumerate() {
            let Some(obi) = old.topo.backends.iter().position(|b| b.name == be.name) else {
                continue;
            };
            for s in self.servers(bi) {
                let Some(o) = old
                    .server_index(obi, &s.rt.name)
                    .and_then(|i| old.server(obi, i))
                else {
                    continue;
                };
                if o.addr.get() != s.addr.get() || o.rt.tls.is_some() != s.rt.tls.is_some() {
                    continue;
                }
                // What was needed at once recently bounds how many idle ones are kept.
                s.used_peak.set(o.used_peak.get());
                s.used_peak_prev.set(o.used_peak_prev.get());
                let moved = o.idle.borrow_mut().take_all();
                let n = moved.len();
                old.idle_total.set(old.idle_total.get().saturating_sub(n));
                let room = self.idle_budget.saturating_sub(self.idle_total.get());
                let keep = n.min(room).min(s.pool_max.unwrap_or(usize::MAX));
                let mut pool = s.idle.borrow_mut();
                for c in moved.into_iter().take(keep) {
                    pool.push(c);
                }
                self.idle_total.set(self.idle_total.get() + keep);
            }
        }
    }
}

/// The epochs of a shard still serving connections, for a stop to reach them all.
#[derive(Default)]
pub struct Epochs {
    live: std::cell::RefCell<Vec<(std::rc::Weak<ShardState>, Rc<crate::notify::Notify>)>>,
}

impl Epochs {
    /// Remembers an epoch (and its stop notification) while something still uses it.
    pub fn push(&self, state: &Rc<ShardState>, stopping: &Rc<crate::notify::Notify>) {
        let mut v = self.live.borrow_mut();
        v.retain(|(w, _)| w.strong_count() > 0);
        v.push((Rc::downgrade(state), stopping.clone()));
    }

    /// Applies a stop to every live epoch and raises their notifications.
    pub fn stop_all(&self, msg: &ControlMsg) {
        let v: Vec<_> = self.live.borrow().clone();
        for (w, n) in v {
            if let Some(st) = w.upgrade() {
                st.apply(msg);
            }
            n.raise();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(text: &str) -> Arc<Topology> {
        let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
        Arc::new(Topology::from_config(&loaded.config).ok().unwrap())
    }

    const OLD: &str = "defaults\n mode http\n timeout client 1s\n timeout server 1s\n timeout connect 1s\nbackend be\n balance roundrobin\n server a 127.0.0.1:1001\n server b 127.0.0.1:1002 weight 5\n server c 127.0.0.1:1003\n";

    #[test]
    fn runtime_changes_follow_names_into_the_new_epoch() {
        let old = ShardState::new(topo(OLD), 0, 1);
        old.apply(&ControlMsg::SetServerAdmin {
            backend: 0,
            server: 1,
            state: AdminState::Drain,
        });
        old.apply(&ControlMsg::SetServerWeight {
            backend: 0,
            server: 2,
            weight: 7,
        });
        old.apply(&ControlMsg::SetServerHealth {
            backend: 0,
            server: 2,
            up: false,
        });
        // New config: `a` removed, `d` added first, `b` and `c` kept (moved).
        let new = topo(&OLD.replace(" server a 127.0.0.1:1001\n", " server d 127.0.0.1:1004\n"));
        let msgs = carry_over(&old, &new);
        assert_eq!(
            msgs,
            vec![
                ControlMsg::SetServerAdmin {
                    backend: 0,
                    server: 1,
                    state: AdminState::Drain
                },
                ControlMsg::SetServerWeight {
                    backend: 0,
                    server: 2,
                    weight: 7
                },
                ControlMsg::SetServerHealth {
                    backend: 0,
                    server: 2,
                    up: false
                },
            ]
        );
    }

    #[test]
    fn a_configured_weight_change_wins_over_nothing_set_at_run_time() {
        let old = ShardState::new(topo(OLD), 0, 1);
        let new = topo(&OLD.replace("weight 5", "weight 9"));
        assert!(carry_over(&old, &new).is_empty());
    }

    #[test]
    fn dynamic_servers_are_added_again_after_the_configured_ones() {
        let old_t = topo(OLD);
        let old = ShardState::new(old_t.clone(), 0, 1);
        let rt = old_t.backends[0].servers[0].clone();
        let mut rt = rt;
        rt.name = "dyn".into();
        old.apply(&ControlMsg::AddServer {
            backend: 0,
            server: NewServer(Arc::new(rt)),
            puid: 9,
            enabled: false,
        });
        let new_t = topo(&OLD.replace(" server c 127.0.0.1:1003\n", ""));
        let msgs = carry_over(&old, &new_t);
        assert!(matches!(
            msgs.as_slice(),
            [
                ControlMsg::AddServer {
                    backend: 0,
                    puid: 9,
                    enabled: true,
                    ..
                },
                ControlMsg::SetServerAdmin {
                    backend: 0,
                    server: 2,
                    state: AdminState::Maint
                },
            ]
        ));
        let mut t = Topology::from_config(
            &ringlb_config::parse_str("t.cfg", &OLD.replace(" server c 127.0.0.1:1003\n", ""))
                .unwrap()
                .config,
        )
        .ok()
        .unwrap();
        t.initial = msgs;
        let next = old.next_epoch(Arc::new(t));
        assert_eq!(next.server_index(0, "dyn"), Some(2));
        let s = next.server(0, 2).unwrap();
        assert_eq!(s.admin.get(), AdminState::Maint);
        assert_eq!(s.puid, 9);
    }

    #[test]
    fn dynamic_servers_are_not_carried_into_a_static_algorithm() {
        let old_t = topo(OLD);
        let old = ShardState::new(old_t.clone(), 0, 1);
        let mut rt = old_t.backends[0].servers[0].clone();
        rt.name = "dyn".into();
        old.apply(&ControlMsg::AddServer {
            backend: 0,
            server: NewServer(Arc::new(rt)),
            puid: 9,
            enabled: true,
        });
        let new_t = topo(&OLD.replace("balance roundrobin", "balance static-rr"));
        assert!(carry_over(&old, &new_t).is_empty());
    }

    #[test]
    fn stick_tables_and_counts_are_shared_by_the_epochs() {
        let old = ShardState::new(topo(OLD), 0, 1);
        old.conns.set(3);
        let next = old.next_epoch(topo(OLD));
        assert_eq!(next.conns.get(), 3);
        next.conns.set(2);
        assert_eq!(old.conns.get(), 2);
        assert!(Rc::ptr_eq(&old.stick, &next.stick));
    }

    #[test]
    fn stick_table_and_limit_changes_are_refused() {
        let a = topo(OLD);
        let b = topo(&format!("{OLD} stick-table type ip size 1k\n"));
        assert_eq!(
            refuse_reason(&a, &b).as_deref(),
            Some("'stick-table' declarations changed")
        );
        assert_eq!(refuse_reason(&a, &topo(OLD)), None);
        // The same table declared further down is no change.
        let c = topo(&format!("{OLD} stick-table type ip size 1k\n"));
        let moved = topo(&format!("\n\n{OLD} stick-table type ip size 1k\n"));
        assert_eq!(refuse_reason(&b, &moved), None);
        assert_eq!(refuse_reason(&b, &c), None);
    }
}
