//! The runtime socket's fuzz invariant, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/runtime_session.rs`) and the corpus replay test.

use ringlb_runtime::{CliSession, Level, Reply, Request, SessionConfig};

/// Any bytes through an admin-level session, in two reads (so lines and `<<` payloads are cut
/// at every place) then end of input: no panic, every answer renders, the answers to one
/// read stay bounded by the per-read request limit.
pub fn session(data: &[u8]) {
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    let mut out = Vec::new();
    let mid = data.len() / 2;
    for part in [&data[..mid], &data[mid..]] {
        let mut reqs = s.feed(part);
        loop {
            // The bound is on answers; the connection's close may come on top of them.
            let answers = reqs.iter().filter(|r| !matches!(r, Request::Close)).count();
            assert!(answers <= SessionConfig::default().max_requests_per_feed);
            for r in reqs {
                answer(&s, r, &mut out);
            }
            if !s.has_buffered_commands() {
                break;
            }
            reqs = s.feed(&[]);
        }
    }
    for r in s.feed_eof() {
        answer(&s, r, &mut out);
    }
    assert!(s.is_closed());
}

fn answer(s: &CliSession, r: Request, out: &mut Vec<u8>) {
    match r {
        Request::Reply(resp) => s.render(&resp, out),
        Request::Run(p) => {
            let _ = p.args();
            s.render(&p.respond(Reply::empty()), out);
        }
        Request::Close => {}
    }
}
