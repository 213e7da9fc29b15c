//! `observe layer4|layer7` (passive health): outcomes of live traffic to a server, counted as
//! HAProxy 2.6's `health_adjust` counts them. A success resets the server's consecutive-error
//! count, an error raises it; at `error-limit` the shard resets it and tells the control shard
//! (`ControlMsg::HealthAnalyze` on the command channel), which owns the check state and applies
//! `on-error` like a check result, then broadcasts any state change to every shard.
//!
//! The count is per shard (a request path never waits for another core): a server failing
//! every request fails on every shard, so each shard's streak reaches the limit; with N shards
//! and traffic spread evenly, up to N × `error-limit` errors are seen before the first report.

use crate::state::ControlMsg;
use crate::Ctx;

/// HAProxy's `HANA_STATUS_*`: what happened on one exchange with a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection was established.
    L4Ok,
    /// Connecting failed (refused, reset, timed out).
    L4Err,
    /// A response with a valid status (100-499, 501, 505).
    HttpOk,
    /// A 5xx response other than 501 and 505.
    HttpStatus,
    /// The response head could not be parsed.
    HttpHeader,
    /// `timeout server` expired before the response.
    HttpReadTimeout,
    /// The server closed before the response.
    HttpBrokenPipe,
}

/// What an event means for a server: `Some(true)` an error, `Some(false)` a success, `None`
/// ignored (HAProxy's `analyze_statuses` table, layer4 and layer7 columns).
pub fn classify(ev: Event, layer7: bool) -> Option<bool> {
    match (ev, layer7) {
        (Event::L4Ok, false) => Some(false),
        (Event::L4Ok, true) => None,
        (Event::L4Err, _) => Some(true),
        (Event::HttpOk, true) => Some(false),
        (_, false) => None,
        (_, true) => Some(true),
    }
}

/// The layer-7 event of a response status.
pub fn of_status(status: u16) -> Event {
    if (100..500).contains(&status) || status == 501 || status == 505 {
        Event::HttpOk
    } else {
        Event::HttpStatus
    }
}

/// HAProxy's description of the last error (`get_analyze_status`).
fn describe(ev: Event) -> &'static str {
    match ev {
        Event::L4Ok => "L4 successful connection",
        Event::L4Err => "L4 unsuccessful connection",
        Event::HttpOk => "Correct http response",
        Event::HttpStatus => "Wrong http response",
        Event::HttpHeader => "Invalid http response (headers)",
        Event::HttpReadTimeout => "Read timeout (http)",
        Event::HttpBrokenPipe => "Close from server (http)",
    }
}

/// Counts `ev` for server `server` of backend `backend` if it observes traffic; costs two
/// lookups for servers that do not.
pub fn note(ctx: &Ctx, backend: usize, server: usize, ev: Event) {
    let Some(obs) = ctx.state.server(backend, server).and_then(|s| s.rt.observe) else {
        return;
    };
    let Some(failed) = classify(ev, obs.layer7) else {
        return;
    };
    let Some(st) = ctx.state.server(backend, server) else {
        return;
    };
    if !failed {
        st.observed_errors.set(0);
        return;
    }
    let n = st.observed_errors.get().saturating_add(1);
    if n < obs.error_limit {
        st.observed_errors.set(n);
        return;
    }
    st.observed_errors.set(0);
    if let Some(c) = ctx
        .state
        .counters
        .borrow_mut()
        .servers
        .get_mut(backend)
        .and_then(|b| b.get_mut(server))
    {
        c.failed_hana += 1;
    }
    let info = format!(
        "Detected {n} consecutive errors, last one was: {}",
        describe(ev)
    );
    // Non-blocking: a full command channel drops the report (the next streak sends another).
    let _ = ctx.commands.try_send(ControlMsg::HealthAnalyze {
        backend,
        server,
        info,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_analyze_table() {
        // layer4: only connections count.
        assert_eq!(classify(Event::L4Ok, false), Some(false));
        assert_eq!(classify(Event::L4Err, false), Some(true));
        assert_eq!(classify(Event::HttpStatus, false), None);
        assert_eq!(classify(Event::HttpOk, false), None);
        // layer7: responses count, a connection alone does not reset the streak.
        assert_eq!(classify(Event::L4Ok, true), None);
        assert_eq!(classify(Event::L4Err, true), Some(true));
        assert_eq!(classify(Event::HttpOk, true), Some(false));
        for ev in [
            Event::HttpStatus,
            Event::HttpHeader,
            Event::HttpReadTimeout,
            Event::HttpBrokenPipe,
        ] {
            assert_eq!(classify(ev, true), Some(true), "{ev:?}");
        }
    }

    #[test]
    fn valid_statuses_are_100_to_499_501_and_505() {
        for s in [100, 200, 302, 404, 499, 501, 505] {
            assert_eq!(of_status(s), Event::HttpOk, "{s}");
        }
        for s in [500, 502, 503, 504, 599] {
            assert_eq!(of_status(s), Event::HttpStatus, "{s}");
        }
    }
}
