//! What rules are evaluated against: the engine's [`SampleSource`] (connection, TLS, clock,
//! randomness, proxy state, stick counters) and the per-request [`Txn`] (message views and
//! variables), plus [`RuleHost`] for the side effects actions have.

use std::net::{IpAddr, SocketAddr};

use crate::logformat::{LogValue, LogVar};
use crate::message::HttpMessage;
use crate::sample::Sample;

/// Proxy-level counters fetches read (`nbsrv`, `be_conn`...). `proxy` is the argument given
/// in the config (`nbsrv(app)`), `None` for "the current backend/frontend".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStat {
    /// Usable servers of a backend (`nbsrv`).
    NbSrv,
    BeConn,
    BeConnFree,
    BeSessRate,
    FeConn,
    FeReqRate,
    FeSessRate,
    /// Queued requests in a backend (`queue`).
    Queue,
    AvgQueue,
    ConnSlots,
    SrvConn,
    SrvQueue,
    SrvSessRate,
    /// 1 when the server is up (`srv_is_up(backend/server)`).
    SrvIsUp,
    /// Current connections on the listener (`dst_conn`).
    DstConn,
}

/// A stick-counter fetch routed to the stick-table crate: `sc_http_req_rate(0[,table])`,
/// `sc0_conn_cur([table])`, `src_conn_rate([table])`, `table_cnt(t)`...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScFetch {
    /// Data type name as HAProxy spells it (`http_req_rate`, `conn_cur`, `get_gpc0`,
    /// `trackers`, `tracked`, `clr_gpc0`, `inc_gpc0`...).
    pub what: Box<str>,
    /// Tracked slot for `sc*` forms; `None` for `src_*` (key = source address) and `table_*`.
    pub slot: Option<u8>,
    /// Explicit table argument.
    pub table: Option<Box<str>>,
    /// Extra numeric argument (e.g. the gpc index of `sc_get_gpc(idx,slot)`).
    pub idx: Option<u32>,
    /// `src_*` family: key is the connection's source address.
    pub by_src: bool,
    /// `table_avl` / `table_cnt`.
    pub table_level: bool,
}

/// A `table_*` converter (`table_http_req_rate(t)`): the key is the converter's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConv {
    pub what: Box<str>,
    pub table: Box<str>,
}

/// Read-only view of everything outside the HTTP message a fetch may need. The engine
/// implements it once per shard (names, counters) and per connection (addresses, TLS).
/// Time and randomness are injected here so evaluation stays pure and testable.
pub trait SampleSource {
    /// Current Unix time in milliseconds.
    fn now_ms(&self) -> i64;
    /// A random 64-bit value (the engine's seeded per-shard generator).
    fn random_u64(&self) -> u64;
    /// Local time offset from UTC in seconds (`date_hour`, `ltime`, `%Tl`).
    fn utc_offset_secs(&self) -> i32 {
        0
    }
    fn src(&self) -> Option<SocketAddr> {
        None
    }
    fn dst(&self) -> Option<SocketAddr> {
        None
    }
    fn frontend_name(&self) -> Option<&str> {
        None
    }
    fn backend_name(&self) -> Option<&str> {
        None
    }
    fn server_name(&self) -> Option<&str> {
        None
    }
    /// `fe_id`, `be_id`, `srv_id` (in that order of `which`: 0, 1, 2).
    fn object_id(&self, _which: u8) -> Option<i64> {
        None
    }
    fn proxy_stat(&self, _stat: ProxyStat, _proxy: Option<&str>) -> Option<i64> {
        None
    }
    /// TLS fetches (`ssl_fc`, `ssl_fc_sni`, `ssl_c_s_dn`...): `name` as written, `args` as given.
    /// `None` when the connection is not TLS or the value is unknown.
    fn ssl(&self, _name: &str, _args: &[Box<str>]) -> Option<Sample<'_>> {
        None
    }
    /// Connection fetches other than TLS (`fc_rtt`, `bc_src`, `so_name`...), routed by name.
    fn conn_fetch(&self, _name: &str, _args: &[Box<str>]) -> Option<Sample<'_>> {
        None
    }
    /// Captured header `idx` (`capture request|response header` order, or
    /// `http-request capture` slots): `capture.req.hdr(N)` / `capture.res.hdr(N)`.
    fn captured(&self, _response: bool, _idx: usize) -> Option<&[u8]> {
        None
    }
    /// Stick-counter fetches; `key` is the source address for `src_*` forms.
    fn sc(&self, _f: &ScFetch, _key: Option<IpAddr>) -> Option<Sample<'static>> {
        None
    }
    /// `table_*` converters.
    fn table_conv(&self, _c: &TableConv, _key: &Sample<'_>) -> Option<Sample<'static>> {
        None
    }
    fn hostname(&self) -> &[u8] {
        b""
    }
    /// Environment variable (the engine snapshots the environment at startup).
    fn env(&self, _name: &str) -> Option<&[u8]> {
        None
    }
    /// The request's unique-id (`unique-id-format`), once computed.
    fn unique_id(&self) -> Option<&[u8]> {
        None
    }
    /// The buffered request body (`option http-buffer-request`), if any.
    fn req_body(&self) -> Option<&[u8]> {
        None
    }
    /// Bytes buffered on the request side of a TCP connection (`req.payload`, `req.len`,
    /// `req.ssl_sni` in `tcp-request content`).
    fn req_payload(&self) -> Option<&[u8]> {
        None
    }
    /// Bytes buffered from the server of a TCP connection (`res.payload`, `res.len` in
    /// `tcp-response content`).
    fn res_payload(&self) -> Option<&[u8]> {
        None
    }
    /// Response body, if buffered.
    fn res_body(&self) -> Option<&[u8]> {
        None
    }
    /// Per-request log values (timers, counters, termination state) for `%X` variables that
    /// the message and the methods above do not give.
    fn log_value(&self, _v: LogVar) -> LogValue<'_> {
        LogValue::Missing
    }
    /// Checks a password against a crypt(3) hash (`$5$`/`$6$` are handled in this crate;
    /// other schemes ask the engine). `None` = scheme unsupported.
    fn crypt_verify(&self, _hash: &str, _pass: &[u8]) -> Option<bool> {
        None
    }
    /// `proc.` and `sess.` scoped variables the engine keeps outside the transaction.
    fn outer_var(&self, _name: &str) -> Option<Sample<'_>> {
        None
    }
    /// True in HTTP mode (`req.proto_http`, predefined `HTTP` ACL).
    fn is_http(&self) -> bool {
        true
    }
    /// This shard's current form of a map converter whose file was changed on the runtime
    /// socket (`add map`, `set map`...); `None` while the file is as loaded.
    fn live_map(&self, _m: &crate::conv::MapConv) -> Option<std::rc::Rc<crate::conv::MapConv>> {
        None
    }
    /// This shard's current patterns of an ACL loaded from files changed on the runtime
    /// socket (`add acl`, `del acl`...); `None` while they are as loaded.
    fn live_acl(
        &self,
        _a: &crate::acl::CompiledAcl,
    ) -> Option<std::rc::Rc<crate::pattern::Patterns>> {
        None
    }
}

/// Side effects of actions the engine performs on the spot, so that a later rule sees them
/// (`sc_http_req_rate(0)` right after `track-sc0`).
pub trait RuleHost: SampleSource {
    fn track_sc(&mut self, _slot: u8, _key: &Sample<'_>, _table: Option<&str>) {}
    fn sc_inc_gpc(&mut self, _slot: u8, _idx: u32) {}
    fn sc_set_gpt(&mut self, _slot: u8, _idx: u32, _value: i64) {}
    fn set_log_level(&mut self, _level: &str) {}
    /// `http-request|response capture <sample> len N` / `id N`: request (`response` false)
    /// or response slot, numbered in declaration order with the header captures. `value` is
    /// already cut to `len`; the host cuts it to the slot's declared length.
    fn capture(&mut self, _response: bool, _slot: usize, _value: &[u8]) {}
    fn set_src(&mut self, _ip: IpAddr) {}
    fn set_dst(&mut self, _ip: IpAddr) {}
    /// `set-src-port` / `set-dst-port`: the address is kept.
    fn set_src_port(&mut self, _port: u16) {}
    fn set_dst_port(&mut self, _port: u16) {}
    /// `set-var` on `proc.` / `sess.` scopes (txn/req/res live in [`Txn::vars`]).
    fn set_outer_var(&mut self, _name: &str, _value: Sample<'static>) {}
    fn unset_outer_var(&mut self, _name: &str) {}
    /// Stream and connection settings actions change (`set-timeout`, `set-mark`, `set-tos`,
    /// `disable-l7-retry`, `early-hint`).
    fn effect(&mut self, _e: crate::rules::Effect<'_>) {}
}

/// Transaction-scoped variables (`txn.`, `req.`, `res.`), set by `set-var`, read by `var()`.
/// Small linear store: a request holds a handful.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    items: Vec<(Box<str>, Sample<'static>)>,
}

impl Vars {
    pub fn get(&self, name: &str) -> Option<&Sample<'static>> {
        self.items
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// Sets a variable (allocates the name on first set).
    pub fn set(&mut self, name: &str, v: Sample<'static>) {
        match self.items.iter_mut().find(|(n, _)| &**n == name) {
            Some(slot) => slot.1 = v,
            None => self.items.push((name.into(), v)),
        }
    }

    pub fn unset(&mut self, name: &str) {
        self.items.retain(|(n, _)| &**n != name);
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// One HTTP transaction as the rules see it.
#[derive(Debug, Clone)]
pub struct Txn<'a> {
    pub req: HttpMessage<'a>,
    /// Set once the response head is parsed (http-response rules).
    pub res: Option<HttpMessage<'a>>,
    pub vars: Vars,
    /// True while `http-response` rules run (direction of `hdr()`, `cook()`...).
    pub in_response: bool,
    /// False while `tcp-request content` still waits for more request bytes (inspect-delay):
    /// payload fetches then only give a provisional answer.
    pub payload_final: bool,
    /// Set by payload fetches (`req.len`, `req.payload`, `req.ssl_*`) when they read a
    /// provisional payload: a false condition may turn true with more data.
    pub payload_may_change: std::cell::Cell<bool>,
    /// `option http-use-proxy-header` and a proxied request (absolute URI): credentials are
    /// read from `Proxy-Authorization` and an `auth` challenge is a 407.
    pub proxy_auth: bool,
}

impl Default for Txn<'_> {
    fn default() -> Self {
        Txn::new(HttpMessage::default())
    }
}

impl<'a> Txn<'a> {
    pub fn new(req: HttpMessage<'a>) -> Txn<'a> {
        Txn {
            req,
            res: None,
            vars: Vars::default(),
            in_response: false,
            payload_final: true,
            payload_may_change: std::cell::Cell::new(false),
            proxy_auth: false,
        }
    }
}

/// Evaluation context: the engine's source plus the transaction.
#[derive(Clone, Copy)]
pub struct Ctx<'c, 'a> {
    pub src: &'c dyn SampleSource,
    pub txn: &'c Txn<'a>,
}

impl std::fmt::Debug for Ctx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("txn", &self.txn).finish()
    }
}

impl<'c, 'a> Ctx<'c, 'a> {
    pub fn new(src: &'c dyn SampleSource, txn: &'c Txn<'a>) -> Ctx<'c, 'a> {
        Ctx { src, txn }
    }
}
