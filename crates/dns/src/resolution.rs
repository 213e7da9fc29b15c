//! One name's resolution, as haproxy 2.6 runs it (resolvers.c): a query of the preferred
//! type to every nameserver, the first valid answer wins; when every nameserver answered
//! with an error the other type is asked at once; then the preferred type again every
//! `timeout retry`, `resolve_retries` queries in all; `timeout resolve` after the end, the
//! next resolution.
//!
//! ```text
//!            tick (now ≥ next)                 valid answer
//!  Waiting ─────────────────────▶ Running ───────────────────▶ Waiting (+resolve) → Valid
//!     ▲                         │  ▲   │ all answered with errors, preferred type:
//!     │   tries exhausted       │  └───┘   ask the other type now (no try used)
//!     └─────────────────────────┘  retry timer: tries left → ask preferred type again
//!         → Failed(last error, or Timeout when nobody answered)
//! ```
//!
//! A server's address then follows [`Requester::apply`]: a new address from a valid
//! answer, maintenance ("RMAINT") after an error when no valid answer came within that
//! error's `hold` period, back to ready on the next valid answer. Time is passed in (ms).
//!
//! Owns: [`Settings`], [`Hold`], [`Status`], [`Verdict`], [`classify`], [`Resolution`],
//! [`Requester`].

use std::net::IpAddr;
use std::time::Duration;

use crate::msg::{self, Response};
use crate::select::{self, Family, Pick, ServerResolve};

/// `hold <status> <period>` (haproxy's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub valid: Duration,
    pub nx: Duration,
    pub refused: Duration,
    pub timeout: Duration,
    pub other: Duration,
    pub obsolete: Duration,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            valid: Duration::from_secs(10),
            nx: Duration::from_secs(30),
            refused: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            other: Duration::from_secs(30),
            obsolete: Duration::ZERO,
        }
    }
}

impl Hold {
    /// Sets one period by haproxy's status name; `false` for an unknown name.
    pub fn set(&mut self, status: &str, d: Duration) -> bool {
        let slot = match status {
            "valid" => &mut self.valid,
            "nx" => &mut self.nx,
            "refused" => &mut self.refused,
            "timeout" => &mut self.timeout,
            "other" => &mut self.other,
            "obsolete" => &mut self.obsolete,
            _ => return false,
        };
        *slot = d;
        true
    }

    /// How long a valid answer keeps a server out of maintenance after `status`.
    fn for_status(&self, status: Status) -> Duration {
        match status {
            Status::Nx => self.nx,
            Status::Refused => self.refused,
            Status::Timeout => self.timeout,
            Status::Valid => self.valid,
            Status::None | Status::Other | Status::Invalid => self.other,
        }
    }
}

/// A `resolvers` section's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `resolve_retries` (default 3): queries sent per resolution.
    pub retries: u32,
    /// `timeout resolve` (default 1s): from the end of one resolution to the next.
    pub resolve: Duration,
    /// `timeout retry` (default 1s): from a query to the next when no valid answer came.
    pub retry: Duration,
    pub hold: Hold,
    /// `accepted_payload_size` (default 512), announced in an EDNS0 OPT record.
    pub payload: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retries: 3,
            resolve: Duration::from_secs(1),
            retry: Duration::from_secs(1),
            hold: Hold::default(),
            payload: 512,
        }
    }
}

/// A resolution's last status (haproxy's `RSLV_STATUS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    None,
    Valid,
    Nx,
    Refused,
    Timeout,
    Other,
    Invalid,
}

impl Status {
    /// The reason haproxy gives when the server goes into maintenance for it.
    pub fn maint_reason(self) -> &'static str {
        match self {
            Status::Nx => "DNS NX status",
            Status::Refused => "DNS refused status",
            Status::Timeout => "DNS timeout status",
            Status::Valid => "No IP for server ",
            Status::None | Status::Other | Status::Invalid => "unspecified DNS error",
        }
    }
}

/// What one answer says (haproxy's `RSLV_RESP_*`); also the nameserver counter it bumps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid(msg::Addresses),
    Nx,
    Refused,
    /// NOERROR without any answer record.
    AnCountZero,
    /// A CNAME chain that leads nowhere.
    CnameError,
    Truncated,
    /// Not a response, not exactly one question, or another question than ours.
    Invalid,
    /// Another rcode (SERVFAIL, FORMERR...), or records but none of the asked type.
    Other,
}

impl Verdict {
    fn status(&self) -> Status {
        match self {
            Verdict::Valid(_) => Status::Valid,
            Verdict::Nx => Status::Nx,
            Verdict::Refused => Status::Refused,
            Verdict::Invalid => Status::Invalid,
            Verdict::AnCountZero | Verdict::CnameError | Verdict::Truncated | Verdict::Other => {
                Status::Other
            }
        }
    }
}

/// Classifies a decoded response to our query for `qname`/`qtype`.
pub fn classify(r: &Response, qname: &str, qtype: u16) -> Verdict {
    if !r.is_response {
        return Verdict::Invalid;
    }
    match r.rcode {
        msg::RCODE_NOERROR => {}
        msg::RCODE_NXDOMAIN => return Verdict::Nx,
        msg::RCODE_REFUSED => return Verdict::Refused,
        _ => return Verdict::Other,
    }
    if r.truncated {
        return Verdict::Truncated;
    }
    match &r.question {
        Some((n, t)) if r.qdcount == 1 && *n == msg::normalize(qname) && *t == qtype => {}
        _ => return Verdict::Invalid,
    }
    if r.answers.is_empty() {
        return Verdict::AnCountZero;
    }
    let a = r.addresses(qname, qtype);
    if !a.addrs.is_empty() {
        Verdict::Valid(a)
    } else if a.cname_dangling {
        Verdict::CnameError
    } else {
        Verdict::Other
    }
}

/// A query to send to every nameserver of the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub qtype: u16,
    pub bytes: Vec<u8>,
}

/// How a resolution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Valid(Vec<IpAddr>),
    Failed(Status),
}

/// What an answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// `None`: an answer to no query of ours (haproxy's `outdated` counter).
    pub verdict: Option<Verdict>,
    /// Sent again at once (the other query type).
    pub resend: Option<Query>,
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Waiting {
        next_ms: u64,
    },
    Running {
        id: u16,
        qtype: u16,
        tries_left: u32,
        last_query_ms: u64,
        responses: usize,
        last_error: Option<Status>,
    },
}

/// One name's resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub name: String,
    prefer: Family,
    state: State,
    /// The last resolution's status.
    pub status: Status,
    /// When the last valid answer came (start time before any: haproxy's `last_valid`).
    pub last_valid_ms: u64,
}

impl Resolution {
    /// A resolution of `name` whose first query goes out at `first_ms`.
    pub fn new(name: &str, prefer: Family, now_ms: u64, first_ms: u64) -> Resolution {
        Resolution {
            name: msg::normalize(name),
            prefer,
            state: State::Waiting { next_ms: first_ms },
            status: Status::None,
            last_valid_ms: now_ms,
        }
    }

    /// When [`Resolution::tick`] has something to do.
    pub fn next_wake_ms(&self, s: &Settings) -> u64 {
        match self.state {
            State::Waiting { next_ms } => next_ms,
            State::Running { last_query_ms, .. } => last_query_ms + ms(s.retry),
        }
    }

    pub fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn query(&self, id: u16, qtype: u16, s: &Settings) -> Option<Query> {
        let bytes = msg::encode_query(id, &self.name, qtype, Some(s.payload)).ok()?;
        Some(Query { id, qtype, bytes })
    }

    /// Advances on time: starts a resolution, sends a retry, or ends one that ran out of
    /// tries. `id` is the random id a new query would take.
    pub fn tick(&mut self, now_ms: u64, s: &Settings, id: u16) -> (Option<Query>, Option<Outcome>) {
        if now_ms < self.next_wake_ms(s) {
            return (None, None);
        }
        let qtype = self.prefer.qtype();
        let tries = match &self.state {
            State::Waiting { .. } => s.retries.max(1),
            State::Running {
                tries_left,
                responses,
                last_error,
                ..
            } => {
                if *tries_left == 0 {
                    let status = match (responses, last_error) {
                        (0, _) | (_, None) => Status::Timeout,
                        (_, Some(e)) => *e,
                    };
                    return (None, Some(self.fail(now_ms, s, status)));
                }
                *tries_left
            }
        };
        let Some(q) = self.query(id, qtype, s) else {
            // A name that cannot be asked (too long): an error every time.
            return (None, Some(self.fail(now_ms, s, Status::Invalid)));
        };
        self.state = State::Running {
            id,
            qtype,
            tries_left: tries - 1,
            last_query_ms: now_ms,
            responses: 0,
            last_error: None,
        };
        (Some(q), None)
    }

    fn fail(&mut self, now_ms: u64, s: &Settings, status: Status) -> Outcome {
        self.status = status;
        self.state = State::Waiting {
            next_ms: now_ms + ms(s.resolve),
        };
        Outcome::Failed(status)
    }

    /// An answer from one of `nameservers` nameservers. `id` is the id a query sent again
    /// at once would take.
    pub fn on_answer(
        &mut self,
        now_ms: u64,
        s: &Settings,
        nameservers: usize,
        r: &Response,
        id: u16,
    ) -> Answered {
        let outdated = Answered {
            verdict: None,
            resend: None,
            outcome: None,
        };
        let State::Running {
            id: qid,
            qtype,
            tries_left,
            responses,
            last_error,
            ..
        } = &mut self.state
        else {
            return outdated;
        };
        if r.id != *qid {
            return outdated;
        }
        let verdict = classify(r, &self.name, *qtype);
        *responses += 1;
        if let Verdict::Valid(a) = &verdict {
            let addrs = a.addrs.clone();
            self.status = Status::Valid;
            self.last_valid_ms = now_ms;
            self.state = State::Waiting {
                next_ms: now_ms + ms(s.resolve),
            };
            return Answered {
                verdict: Some(verdict),
                resend: None,
                outcome: Some(Outcome::Valid(addrs)),
            };
        }
        *last_error = Some(verdict.status());
        // The first valid answer wins; errors wait for every nameserver.
        if *responses < nameservers {
            return Answered {
                verdict: Some(verdict),
                resend: None,
                outcome: None,
            };
        }
        if *qtype == self.prefer.qtype() {
            let other = match self.prefer {
                Family::V4 => msg::TYPE_AAAA,
                Family::V6 => msg::TYPE_A,
            };
            let (tries_left, last_error) = (*tries_left, *last_error);
            let resend = self.query(id, other, s);
            if resend.is_some() {
                self.state = State::Running {
                    id,
                    qtype: other,
                    tries_left,
                    last_query_ms: now_ms,
                    responses: 0,
                    last_error,
                };
            }
            return Answered {
                verdict: Some(verdict),
                resend,
                outcome: None,
            };
        }
        let outcome = (*tries_left == 0).then(|| {
            let status = verdict.status();
            self.fail(now_ms, s, status)
        });
        Answered {
            verdict: Some(verdict),
            resend: None,
            outcome,
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What changed for a server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Its new address.
    pub addr: Option<IpAddr>,
    /// Into (`Some(reason)`) resolution maintenance; the address is forgotten.
    pub enter_maint: Option<&'static str>,
    /// Out of resolution maintenance.
    pub leave_maint: bool,
}

/// One server resolving a name (haproxy's requester).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub opts: ServerResolve,
    /// Its address (`None`: never had one, `init-addr none`).
    pub addr: Option<IpAddr>,
    /// In resolution maintenance (haproxy's `SRV_ADMF_RMAINT`).
    pub rmaint: bool,
}

impl Requester {
    /// Applies a resolution's outcome (haproxy's `snr_resolution_cb` and
    /// `snr_update_srv_status`). `taken` says whether another server of the backend
    /// resolving the same name holds an address.
    pub fn apply(
        &mut self,
        res: &Resolution,
        outcome: &Outcome,
        now_ms: u64,
        hold: &Hold,
        taken: &dyn Fn(IpAddr) -> bool,
    ) -> Update {
        let mut up = Update::default();
        match outcome {
            Outcome::Valid(addrs) => match select::pick(&self.opts, addrs, self.addr, taken) {
                Pick::NoIp => {
                    if !self.rmaint {
                        self.rmaint = true;
                        self.addr = None;
                        up.enter_maint = Some(Status::Valid.maint_reason());
                    }
                }
                p => {
                    if let Pick::Change(ip) = p {
                        self.addr = Some(ip);
                        up.addr = Some(ip);
                    }
                    if self.rmaint {
                        self.rmaint = false;
                        up.leave_maint = true;
                    }
                }
            },
            Outcome::Failed(status) => {
                let held = res.last_valid_ms + ms(hold.for_status(*status)) >= now_ms;
                if !held && !self.rmaint {
                    self.rmaint = true;
                    // haproxy forgets the address ("changed its IP from (none)" next time).
                    self.addr = None;
                    up.enter_maint = Some(status.maint_reason());
                }
            }
        }
        up
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::decode;

    /// `app.internal` A answers written by hand: header (id, flags), question, records.
    fn answer(id: u16, rcode: u8, ips: &[[u8; 4]]) -> Vec<u8> {
        let mut m = vec![(id >> 8) as u8, id as u8, 0x81, 0x80 | rcode, 0, 1, 0];
        m.push(ips.len() as u8);
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(b"\x03app\x08internal\x00\x00\x01\x00\x01");
        for ip in ips {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4]);
            m.extend_from_slice(ip);
        }
        m
    }

    fn settings() -> Settings {
        let mut s = Settings {
            retries: 3,
            resolve: Duration::from_millis(1000),
            retry: Duration::from_millis(500),
            ..Settings::default()
        };
        s.hold.nx = Duration::from_secs(2);
        s
    }

    fn v4(name: &str) -> Resolution {
        Resolution::new(name, Family::V4, 0, 0)
    }

    #[test]
    fn valid_answer_then_next_resolution_after_timeout_resolve() {
        let s = settings();
        let mut r = v4("app.internal");
        let (q, o) = r.tick(0, &s, 0x1111);
        let q = q.unwrap();
        assert_eq!((q.id, q.qtype, o), (0x1111, msg::TYPE_A, None));
        // Second nameserver's valid answer wins even after the first one's error.
        let a = r.on_answer(5, &s, 2, &decode(&answer(0x1111, 2, &[])).unwrap(), 9);
        assert_eq!((a.verdict, a.outcome), (Some(Verdict::Other), None));
        let a = r.on_answer(
            7,
            &s,
            2,
            &decode(&answer(0x1111, 0, &[[127, 0, 0, 2]])).unwrap(),
            9,
        );
        assert_eq!(
            a.outcome,
            Some(Outcome::Valid(vec![IpAddr::from([127, 0, 0, 2])]))
        );
        assert_eq!((r.status, r.last_valid_ms), (Status::Valid, 7));
        // A late duplicate is outdated.
        let late = r.on_answer(
            8,
            &s,
            2,
            &decode(&answer(0x1111, 0, &[[1, 1, 1, 1]])).unwrap(),
            9,
        );
        assert_eq!(late.verdict, None);
        assert_eq!(r.next_wake_ms(&s), 1007);
        assert_eq!(r.tick(1006, &s, 2), (None, None));
        assert!(r.tick(1007, &s, 2).0.is_some());
    }

    #[test]
    fn wrong_id_or_name_is_not_taken() {
        let s = settings();
        let mut r = v4("app.internal");
        r.tick(0, &s, 0x42);
        let other_id = r.on_answer(
            1,
            &s,
            1,
            &decode(&answer(0x43, 0, &[[1, 2, 3, 4]])).unwrap(),
            1,
        );
        assert_eq!(other_id.verdict, None);
        let mut r2 = v4("other.internal");
        r2.tick(0, &s, 0x42);
        let wrong = r2.on_answer(
            1,
            &s,
            1,
            &decode(&answer(0x42, 0, &[[1, 2, 3, 4]])).unwrap(),
            1,
        );
        assert_eq!(wrong.verdict, Some(Verdict::Invalid));
    }

    #[test]
    fn nx_falls_back_to_other_type_then_retries_then_fails() {
        let s = settings();
        let mut r = v4("app.internal");
        r.tick(0, &s, 1);
        // Every nameserver (2) said NX to A: AAAA goes out at once, no try used.
        r.on_answer(1, &s, 2, &decode(&answer(1, 3, &[])).unwrap(), 2);
        let a = r.on_answer(2, &s, 2, &decode(&answer(1, 3, &[])).unwrap(), 2);
        let q = a.resend.unwrap();
        assert_eq!((q.id, q.qtype), (2, msg::TYPE_AAAA));
        // (An AAAA answer's question says AAAA: build it by hand.)
        let mut aaaa_nx = answer(2, 3, &[]);
        let qt = aaaa_nx.len() - 3;
        aaaa_nx[qt] = 28;
        for t in [3, 4] {
            let a = r.on_answer(t, &s, 2, &decode(&aaaa_nx).unwrap(), 3);
            assert_eq!((a.resend, a.outcome), (None, None));
        }
        // Retry timer (500ms after the AAAA query): the preferred type again.
        assert_eq!(r.tick(501, &s, 4), (None, None));
        let (q, _) = r.tick(502, &s, 4);
        assert_eq!(q.unwrap().qtype, msg::TYPE_A);
        // Third try: silence; after it the resolution ends in Timeout.
        let (q, _) = r.tick(1002, &s, 5);
        assert_eq!(q.unwrap().id, 5);
        let (q, o) = r.tick(1502, &s, 6);
        assert_eq!((q, o), (None, Some(Outcome::Failed(Status::Timeout))));
        assert_eq!(r.next_wake_ms(&s), 2502);
    }

    #[test]
    fn last_error_is_reported_when_tries_run_out() {
        let s = Settings {
            retries: 1,
            ..settings()
        };
        let mut r = v4("app.internal");
        r.tick(0, &s, 1);
        let a = r.on_answer(1, &s, 1, &decode(&answer(1, 5, &[])).unwrap(), 2);
        assert_eq!(a.verdict, Some(Verdict::Refused));
        let mut aaaa = answer(2, 5, &[]);
        let qt = aaaa.len() - 3;
        aaaa[qt] = 28;
        let a = r.on_answer(2, &s, 1, &decode(&aaaa).unwrap(), 3);
        assert_eq!(a.outcome, Some(Outcome::Failed(Status::Refused)));
    }

    #[test]
    fn hold_decides_maintenance() {
        let s = settings();
        let mut r = v4("app.internal");
        let mut srv = Requester {
            opts: ServerResolve {
                prefer: Family::V4,
                ..Default::default()
            },
            addr: None,
            rmaint: true,
        };
        let free = |_| false;
        // init-addr none: the first valid answer gives an address and leaves RMAINT.
        r.tick(0, &s, 1);
        let a = r.on_answer(
            10,
            &s,
            1,
            &decode(&answer(1, 0, &[[127, 0, 0, 2]])).unwrap(),
            2,
        );
        let up = srv.apply(&r, &a.outcome.unwrap(), 10, &s.hold, &free);
        assert_eq!(up.addr, Some(IpAddr::from([127, 0, 0, 2])));
        assert!(up.leave_maint && !srv.rmaint);
        // The same answer again: nothing to do.
        let again = srv.apply(
            &r,
            &Outcome::Valid(vec![IpAddr::from([127, 0, 0, 2])]),
            20,
            &s.hold,
            &free,
        );
        assert_eq!(again, Update::default());
        // NX within `hold nx` (2s) of the last valid answer: held.
        let nx = Outcome::Failed(Status::Nx);
        assert_eq!(srv.apply(&r, &nx, 2010, &s.hold, &free), Update::default());
        // Past it: maintenance, the address is forgotten.
        let up = srv.apply(&r, &nx, 2011, &s.hold, &free);
        assert_eq!(up.enter_maint, Some("DNS NX status"));
        assert_eq!(srv.addr, None);
        // Valid again: out of maintenance.
        let up = srv.apply(
            &r,
            &Outcome::Valid(vec![IpAddr::from([127, 0, 0, 3])]),
            3000,
            &s.hold,
            &free,
        );
        assert!(up.leave_maint);
        assert_eq!(up.addr, Some(IpAddr::from([127, 0, 0, 3])));
        // A valid answer with only an address another server holds: "No IP".
        let taken = |ip| ip == IpAddr::from([127, 0, 0, 9]);
        let up = srv.apply(
            &r,
            &Outcome::Valid(vec![IpAddr::from([127, 0, 0, 9])]),
            3100,
            &s.hold,
            &taken,
        );
        assert_eq!(up.enter_maint, Some("No IP for server "));
    }

    #[test]
    fn classify_answers() {
        let ok = decode(&answer(1, 0, &[[1, 2, 3, 4]])).unwrap();
        assert!(matches!(
            classify(&ok, "app.internal", msg::TYPE_A),
            Verdict::Valid(_)
        ));
        assert_eq!(
            classify(&ok, "app.internal", msg::TYPE_AAAA),
            Verdict::Invalid
        );
        let empty = decode(&answer(1, 0, &[])).unwrap();
        assert_eq!(
            classify(&empty, "app.internal", msg::TYPE_A),
            Verdict::AnCountZero
        );
        let mut tc = answer(1, 0, &[[1, 2, 3, 4]]);
        tc[2] |= 0x02;
        assert_eq!(
            classify(&decode(&tc).unwrap(), "app.internal", msg::TYPE_A),
            Verdict::Truncated
        );
        let mut query = answer(1, 0, &[]);
        query[2] &= 0x7f;
        assert_eq!(
            classify(&decode(&query).unwrap(), "app.internal", msg::TYPE_A),
            Verdict::Invalid
        );
    }
}
