//! The engine side of HAProxy's rule language (`ringlb-rules`): what fetches read from a
//! connection and a shard ([`Host`]), and the replies final verdicts send, byte for byte as
//! haproxy 2.6 writes them (recorded: deny, return, redirect, tarpit, auth).

use std::net::SocketAddr;

use ringlb_rules::{HttpReply, ProxyStat, RuleHost, Sample, SampleSource, Verdict};
use ringlb_tls::{CertSide, DnFormat, TlsFacts};

use crate::state::AdminState;
use crate::Ctx;

/// One request's view of its connection and shard, for fetches and actions.
pub struct Host<'a> {
    pub ctx: &'a Ctx,
    pub frontend: &'a str,
    pub backend: Option<&'a str>,
    pub server: Option<&'a str>,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    pub tls: Option<&'a TlsFacts>,
    /// The TLS connection to the server, after the connect (`ssl_bc_*`, `ssl_s_*`).
    pub server_tls: Option<&'a ringlb_tls::ServerTlsFacts>,
    /// The finished transaction's timers and counters (log lines only).
    pub log: Option<&'a LogFacts>,
    /// The request's `unique-id-format` value, once computed.
    pub unique_id: Option<&'a [u8]>,
    /// The connection's stick counters (`track-scN`, `sc_*` fetches; see `stick.rs`).
    pub stick: Option<&'a mut crate::stick::StickSession>,
    /// TCP mode: the request bytes buffered so far (`tcp-request content`, `use_backend`).
    pub payload: Option<&'a [u8]>,
    /// The transaction's capture slots (`capture`, `capture.req.hdr(N)`), where kept.
    pub cap: Option<Captures<'a>>,
    /// Where address and log-level actions leave their effects, where kept.
    pub effects: Option<&'a RuleEffects>,
    /// TCP mode: the bytes the server sent so far (`tcp-response content`).
    pub res_payload: Option<&'a [u8]>,
    /// The request body buffered by `option http-buffer-request` / `wait-for-body`
    /// (de-chunked), for `req.body*`.
    pub req_body: Option<&'a [u8]>,
}

/// What rules change beyond the message. `set-src`/`set-dst`/`set-src-port`/`set-dst-port`
/// change the client connection's addresses as haproxy does (later `src` fetches, logs,
/// `option forwardfor`, `balance source`, and the connection's next requests);
/// `set-log-level` the transaction's log level. Cells: written by rules while the session
/// holds other borrows; one per connection, never shared between shards.
#[derive(Debug, Default)]
pub struct RuleEffects {
    pub src: std::cell::Cell<Option<SocketAddr>>,
    pub dst: std::cell::Cell<Option<SocketAddr>>,
    pub log_level: std::cell::Cell<LogLevel>,
    /// TCP mode: the session's `txn.` variables, from one rule phase to the next and the log.
    pub tcp_vars: std::cell::RefCell<ringlb_rules::Vars>,
    /// `set-timeout server|tunnel` for the current transaction.
    pub server_timeout: std::cell::Cell<Option<std::time::Duration>>,
    pub tunnel_timeout: std::cell::Cell<Option<std::time::Duration>>,
    /// `disable-l7-retry` for the current transaction.
    pub no_l7_retry: std::cell::Cell<bool>,
    /// `set-mark` / `set-tos` still to apply to the client socket.
    pub mark: std::cell::Cell<Option<u32>>,
    pub tos: std::cell::Cell<Option<u8>>,
    /// The 103 responses `early-hint` rules built, to send before the final response, and
    /// whether the last one still takes headers.
    pub early_hints: std::cell::RefCell<Vec<u8>>,
    pub hint_open: std::cell::Cell<bool>,
    /// `cache-use`: the cache (index in `Topology::caches`) and the backend whose rule ran
    /// it (`None`: the frontend's), for the counters.
    pub cache_use: std::cell::Cell<Option<(usize, Option<usize>)>>,
    /// `cache-store`: the cache the response goes to.
    pub cache_store: std::cell::Cell<Option<usize>>,
}

impl RuleEffects {
    /// Forgets what the previous transaction's rules set (addresses stay: they belong to the
    /// connection).
    pub fn new_transaction(&self) {
        self.log_level.set(LogLevel::Default);
        self.server_timeout.set(None);
        self.tunnel_timeout.set(None);
        self.no_l7_retry.set(false);
        self.mark.set(None);
        self.tos.set(None);
        self.early_hints.borrow_mut().clear();
        self.hint_open.set(false);
        self.cache_use.set(None);
        self.cache_store.set(None);
    }

    /// The 103 Early Hints responses of the `early-hint` rules, if any (taken).
    pub fn take_early_hints(&self) -> Option<Vec<u8>> {
        let mut hints = std::mem::take(&mut *self.early_hints.borrow_mut());
        if hints.is_empty() {
            return None;
        }
        if self.hint_open.replace(false) {
            hints.extend_from_slice(b"\r\n");
        }
        Some(hints)
    }
}

/// A transaction's log level after `set-log-level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogLevel {
    #[default]
    Default,
    /// `silent`: no log line for this transaction.
    Silent,
    Level(ringlb_log::Level),
}

/// A transaction's capture slots: `capture request|response header`, `declare capture` and
/// `http-request capture ... len` in declaration order (`spec`: header name, "" for a
/// sample slot, and length), and their values (`%hr`/`%hs`, `capture.req|res.hdr(N)`).
pub struct Captures<'a> {
    pub req: &'a mut Vec<Vec<u8>>,
    pub res: &'a mut Vec<Vec<u8>>,
    pub req_spec: &'a [(String, usize)],
    pub res_spec: &'a [(String, usize)],
}

/// What a log line reports about a finished transaction (HAProxy's `%X` variables). Times in
/// milliseconds, -1 where the phase did not happen.
#[derive(Debug, Clone, Default)]
pub struct LogFacts {
    /// When the session started waiting for the request (Unix ms): `%t`.
    pub accept_unix_ms: i64,
    pub th: i64,
    pub ti: i64,
    pub tr_req: i64,
    pub tw: i64,
    pub tc: i64,
    pub tr: i64,
    pub td: i64,
    pub ta: i64,
    pub tt: i64,
    pub status: i64,
    pub bytes_out: i64,
    pub bytes_in: i64,
    /// `%tsc`: the termination state (`%ts`, first two bytes) then the persistence-cookie
    /// flags, which ringlb does not report yet (`--`). See [`LogFacts::term_of`].
    pub term: [u8; 4],
    pub act_conn: i64,
    pub fe_conn: i64,
    pub be_conn: i64,
    pub srv_conn: i64,
    pub retries: i64,
    pub pid: i64,
    pub request_counter: i64,
    pub server_addr: Option<SocketAddr>,
    /// `capture request|response header` values in declaration order (empty: absent).
    pub captured_req: Vec<Vec<u8>>,
    pub captured_res: Vec<Vec<u8>>,
    /// `capture cookie` in the request and in the response (empty: none, logged `-`).
    pub cookie_req: Vec<u8>,
    pub cookie_res: Vec<u8>,
    /// `option logasap`: `%B`, `%Ta`, `%Tt` and `%Tu` are partial and get a `+`.
    pub asap: bool,
}

/// A value haproxy prefixes with `+` under `option logasap`.
fn partial(v: i64, asap: bool) -> ringlb_rules::LogValue<'static> {
    if asap {
        ringlb_rules::LogValue::Partial(v)
    } else {
        ringlb_rules::LogValue::Int(v)
    }
}

impl LogFacts {
    /// The `term` field for a termination state (`--` when the transaction ended normally).
    pub fn term_of(ts: [u8; 2]) -> [u8; 4] {
        let ts = if ts == [0, 0] { *b"--" } else { ts };
        [ts[0], ts[1], b'-', b'-']
    }
}

impl SampleSource for Host<'_> {
    fn live_map(
        &self,
        m: &ringlb_rules::conv::MapConv,
    ) -> Option<std::rc::Rc<ringlb_rules::conv::MapConv>> {
        self.ctx.state.patterns.map(m)
    }

    fn live_acl(
        &self,
        a: &ringlb_rules::CompiledAcl,
    ) -> Option<std::rc::Rc<ringlb_rules::pattern::Patterns>> {
        self.ctx.state.patterns.acl(a)
    }

    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn random_u64(&self) -> u64 {
        self.ctx.state.random_u64()
    }

    fn utc_offset_secs(&self) -> i32 {
        self.ctx.state.utc_offset_secs
    }

    fn src(&self) -> Option<SocketAddr> {
        self.src
    }

    fn req_payload(&self) -> Option<&[u8]> {
        self.payload
    }

    fn req_body(&self) -> Option<&[u8]> {
        self.req_body
    }

    fn res_payload(&self) -> Option<&[u8]> {
        self.res_payload
    }

    fn outer_var(&self, name: &str) -> Option<Sample<'_>> {
        if name.starts_with("proc.") {
            // A copy out of the shard's table (the borrow cannot outlive this call).
            return self.ctx.state.proc_vars.borrow().get(name).cloned();
        }
        if !name.starts_with("sess.") {
            return None;
        }
        self.stick
            .as_deref()?
            .sess_vars
            .get(name)
            .map(Sample::reborrow)
    }

    fn is_http(&self) -> bool {
        self.payload.is_none()
    }

    fn dst(&self) -> Option<SocketAddr> {
        self.dst
    }

    fn frontend_name(&self) -> Option<&str> {
        Some(self.frontend)
    }

    fn backend_name(&self) -> Option<&str> {
        // In logs a request that reached no backend shows the frontend (`%b`), as haproxy.
        self.backend.or(self.log.map(|_| self.frontend))
    }

    fn server_name(&self) -> Option<&str> {
        self.server
    }

    fn proxy_stat(&self, stat: ProxyStat, proxy: Option<&str>) -> Option<i64> {
        let topo = &self.ctx.state.topo;
        let name = proxy.or(self.backend)?;
        let b = topo.backends.iter().position(|b| b.name == name)?;
        let st = self.ctx.state.backends.get(b)?;
        match stat {
            ProxyStat::NbSrv => Some(
                st.servers
                    .borrow()
                    .iter()
                    .filter(|s| s.up.get() && s.admin.get() == AdminState::Ready)
                    .count() as i64,
            ),
            // Connections of this shard: per-shard counts (documented in architecture.md).
            ProxyStat::BeConn => Some(
                st.servers
                    .borrow()
                    .iter()
                    .map(|s| i64::from(s.active.get()))
                    .sum(),
            ),
            _ => None,
        }
    }

    fn ssl(&self, name: &str, args: &[Box<str>]) -> Option<Sample<'_>> {
        if name.starts_with("ssl_bc") || name.starts_with("ssl_s_") {
            return server_ssl(self.server_tls, name, args);
        }
        let Some(t) = self.tls else {
            // Not a TLS connection: the booleans are false, the rest absent.
            return match name {
                "ssl_fc" | "ssl_c_used" | "ssl_fc_session_reused" | "ssl_fc_is_resumed" => {
                    Some(Sample::Bool(false))
                }
                _ => None,
            };
        };
        // `ssl_c_X` and `ssl_f_X` read the same fields of two certificates.
        let cert_field = [("ssl_c_", CertSide::Client), ("ssl_f_", CertSide::Frontend)]
            .into_iter()
            .find_map(|(prefix, side)| Some((name.strip_prefix(prefix)?, side)));
        if let Some((field, side)) = cert_field {
            if let Some(v) = cert_fetch(t, side, field, args) {
                return v;
            }
        }
        match name {
            "ssl_fc" => Some(Sample::Bool(true)),
            "ssl_fc_sni" => t.sni.as_deref().map(|s| Sample::str(s.as_bytes())),
            "ssl_fc_protocol" => Some(Sample::str(t.protocol.as_bytes())),
            "ssl_fc_cipher" => Some(Sample::str(t.cipher.as_bytes())),
            "ssl_fc_alpn" => t.alpn.as_deref().map(Sample::str),
            "ssl_fc_session_reused" | "ssl_fc_is_resumed" => Some(Sample::Bool(t.session_reused)),
            // A stream exists only after a successful handshake: no TLS error to report
            // (`option httpslog`, recorded from haproxy 2.6: `0/0000000000000000/0/0/0`).
            "ssl_fc_err" => Some(Sample::Int(0)),
            // What an ignore list let through (`ca-ignore-err`, `crt-ignore-err`), else 0.
            "ssl_c_err" | "ssl_c_ca_err" | "ssl_c_ca_err_depth" => {
                let c = t.client_cert.as_ref();
                let v = c.map_or(0, |c| match name {
                    "ssl_c_err" => c.crt_err,
                    "ssl_c_ca_err" => c.ca_err,
                    _ => c.ca_err_depth,
                });
                Some(Sample::Int(i64::from(v)))
            }
            "ssl_c_used" => Some(Sample::Bool(t.ssl_c_used())),
            "ssl_c_verify" => Some(Sample::Int(i64::from(t.ssl_c_verify()))),
            // Verified in this handshake: a resumed session carries no new certificate.
            "ssl_fc_has_crt" => Some(Sample::Bool(t.ssl_c_used() && !t.session_reused)),
            "ssl_fc_has_sni" => Some(Sample::Bool(t.sni.is_some())),
            "ssl_fc_cipherlist_bin" | "ssl_fc_cipherlist_hex" | "ssl_fc_eclist_bin" => {
                let h = t.hello.as_deref()?;
                let no_grease = args.first().is_some_and(|a| &**a == "1");
                let list = if name == "ssl_fc_eclist_bin" {
                    h.eclist(no_grease)
                } else {
                    h.cipherlist(no_grease)
                };
                Some(if name.ends_with("_hex") {
                    Sample::owned(hex_upper(&list))
                } else {
                    Sample::Bin(std::borrow::Cow::Owned(list))
                })
            }
            "ssl_fc_cipherlist_str" => {
                let h = t.hello.as_deref()?;
                let no_grease = args.first().is_some_and(|a| &**a == "1");
                Some(Sample::owned(h.cipherlist_names(no_grease).into_bytes()))
            }
            // XXH64 (seed 0) of the whole list, whatever the buffer kept, as haproxy.
            "ssl_fc_cipherlist_xxh" => t
                .hello
                .as_deref()
                .map(|h| Sample::Int(ringlb_balance::hash::xxh64(&h.ciphers, 0) as i64)),
            // ringlb accepts no early data (`allow-0rtt` is accepted with a warning).
            "ssl_fc_has_early" => Some(Sample::Bool(false)),
            // The chain after the client's certificate; none on a resumed session, whose
            // certificates were not sent again (haproxy: "does not support resumed sessions").
            "ssl_c_chain_der" => t
                .client_cert
                .as_ref()
                .filter(|_| !t.session_reused)
                .map(|c| Sample::Bin(std::borrow::Cow::Borrowed(c.chain_der.as_slice()))),
            "ssl_fc_use_keysize" | "ssl_fc_alg_keysize" => {
                cipher_key_bits(t.cipher).map(|b| Sample::Int(b.into()))
            }
            _ => None,
        }
    }

    fn conn_fetch(&self, name: &str, _args: &[Box<str>]) -> Option<Sample<'_>> {
        match name {
            // The front connection's error code: a stream only exists on a connection that
            // did not fail (`option httpslog`; errors before the stream: `error-log-format`).
            "fc_err" => Some(Sample::Int(0)),
            // haproxy's thread number (0..nbthread-1) is ringlb's shard.
            "thread" => i64::try_from(self.ctx.state.shard_id).ok().map(Sample::Int),
            _ => None,
        }
    }

    fn log_value(&self, v: ringlb_rules::LogVar) -> ringlb_rules::LogValue<'_> {
        use ringlb_rules::{LogValue as V, LogVar as L};
        let Some(f) = self.log else {
            return V::Missing;
        };
        match v {
            L::AcceptDate
            | L::ReqDate
            | L::Ts
            | L::GmtDate
            | L::LocalDate
            | L::ReqDateGmt
            | L::ReqDateLocal => V::TimeMs(f.accept_unix_ms),
            L::Th => V::Int(f.th),
            L::Ti => V::Int(f.ti),
            L::TR => V::Int(f.tr_req),
            L::Tq => V::Int(if f.tr_req < 0 {
                -1
            } else {
                f.th.max(0) + f.ti.max(0) + f.tr_req
            }),
            L::Tw => V::Int(f.tw),
            L::Tc => V::Int(f.tc),
            L::Tr => V::Int(f.tr),
            L::Td => V::Int(f.td),
            L::Ta => partial(f.ta, f.asap),
            L::Tt | L::Tu => partial(f.tt, f.asap),
            L::Status => V::Int(f.status),
            L::BytesRead => partial(f.bytes_out, f.asap),
            L::BytesUploaded => V::Int(f.bytes_in),
            L::TermState => V::Str(f.term.get(..2).unwrap_or(b"--")),
            L::TermStateCookie => V::Str(&f.term),
            L::ActConn => V::Int(f.act_conn),
            L::FeConn => V::Int(f.fe_conn),
            L::BeConn => V::Int(f.be_conn),
            L::SrvConn => V::Int(f.srv_conn),
            L::Retries => V::Int(f.retries),
            L::SrvQueue | L::BackendQueue => V::Int(0),
            L::Pid => V::Int(f.pid),
            L::Rt => V::Int(f.request_counter),
            L::CapturedReqHeaders | L::CapturedReqHeadersClf => V::Captures(&f.captured_req),
            L::CapturedReqCookie if !f.cookie_req.is_empty() => V::Str(&f.cookie_req),
            L::CapturedResCookie if !f.cookie_res.is_empty() => V::Str(&f.cookie_res),
            L::CapturedResHeaders | L::CapturedResHeadersClf => V::Captures(&f.captured_res),
            L::ServerIp => f.server_addr.map_or(V::Missing, |a| V::Ip(a.ip())),
            L::ServerPort => f
                .server_addr
                .map_or(V::Missing, |a| V::Int(i64::from(a.port()))),
            _ => V::Missing,
        }
    }

    fn unique_id(&self) -> Option<&[u8]> {
        self.unique_id
    }

    fn captured(&self, response: bool, idx: usize) -> Option<&[u8]> {
        let slots = match (&self.cap, self.log) {
            (Some(c), _) => {
                if response {
                    &**c.res
                } else {
                    &**c.req
                }
            }
            (None, Some(f)) => {
                if response {
                    &f.captured_res
                } else {
                    &f.captured_req
                }
            }
            (None, None) => return None,
        };
        // An empty slot is an absent capture (haproxy: no sample).
        slots.get(idx).map(Vec::as_slice).filter(|v| !v.is_empty())
    }

    fn hostname(&self) -> &[u8] {
        self.ctx.state.hostname.as_bytes()
    }

    fn sc(
        &self,
        f: &ringlb_rules::ScFetch,
        key: Option<std::net::IpAddr>,
    ) -> Option<Sample<'static>> {
        self.stick_fetch(f, key)
    }

    fn table_conv(&self, c: &ringlb_rules::TableConv, key: &Sample<'_>) -> Option<Sample<'static>> {
        self.stick_conv(c, key)
    }

    fn env(&self, name: &str) -> Option<&[u8]> {
        self.ctx
            .state
            .topo
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes())
    }
}

impl RuleHost for Host<'_> {
    fn effect(&mut self, e: ringlb_rules::Effect<'_>) {
        let Some(fx) = self.effects else {
            return;
        };
        match e {
            ringlb_rules::Effect::SetTimeout { tunnel, ms } => {
                let d = Some(std::time::Duration::from_millis(ms));
                if tunnel {
                    fx.tunnel_timeout.set(d);
                } else {
                    fx.server_timeout.set(d);
                }
            }
            ringlb_rules::Effect::DisableL7Retry => fx.no_l7_retry.set(true),
            ringlb_rules::Effect::SetMark(m) => fx.mark.set(Some(m)),
            ringlb_rules::Effect::SetTos(t) => fx.tos.set(Some(t)),
            ringlb_rules::Effect::CacheUse(name) => {
                let topo = &self.ctx.state.topo;
                let be = self
                    .backend
                    .and_then(|b| topo.backends.iter().position(|x| x.name == b));
                if let Some(i) = topo.caches.iter().position(|c| c.name == name) {
                    fx.cache_use.set(Some((i, be)));
                }
            }
            ringlb_rules::Effect::CacheStore(name) => {
                let topo = &self.ctx.state.topo;
                if let Some(i) = topo.caches.iter().position(|c| c.name == name) {
                    fx.cache_store.set(Some(i));
                }
            }
            ringlb_rules::Effect::EarlyHint { name, value, last } => {
                let mut out = fx.early_hints.borrow_mut();
                if !fx.hint_open.get() {
                    out.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\n");
                }
                // Header names lower-case, as haproxy writes them.
                out.extend(name.iter().map(u8::to_ascii_lowercase));
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
                if last {
                    out.extend_from_slice(b"\r\n");
                }
                fx.hint_open.set(!last);
            }
        }
    }

    fn track_sc(&mut self, slot: u8, key: &Sample<'_>, table: Option<&str>) {
        self.stick_track(slot, key, table);
    }

    fn sc_inc_gpc(&mut self, slot: u8, idx: u32) {
        self.stick_inc_gpc(slot, idx);
    }

    fn sc_set_gpt(&mut self, slot: u8, idx: u32, value: i64) {
        self.stick_set_gpt(slot, idx, value);
    }

    fn set_outer_var(&mut self, name: &str, value: Sample<'static>) {
        if name.starts_with("proc.") {
            return self.set_proc_var(name, Some(value));
        }
        if name.starts_with("sess.") {
            if let Some(s) = self.stick.as_deref_mut() {
                s.sess_vars.set(name, value);
            }
        }
    }

    fn set_src(&mut self, ip: std::net::IpAddr) {
        // haproxy keeps the port when the address family allows it.
        let a = SocketAddr::new(ip, self.src.map_or(0, |a| a.port()));
        self.src = Some(a);
        if let Some(e) = self.effects {
            e.src.set(Some(a));
        }
    }

    fn set_dst(&mut self, ip: std::net::IpAddr) {
        let a = SocketAddr::new(ip, self.dst.map_or(0, |a| a.port()));
        self.dst = Some(a);
        if let Some(e) = self.effects {
            e.dst.set(Some(a));
        }
    }

    fn set_src_port(&mut self, port: u16) {
        let ip = self.src.map_or(UNSPECIFIED, |a| a.ip());
        self.src = Some(SocketAddr::new(ip, port));
        if let Some(e) = self.effects {
            e.src.set(self.src);
        }
    }

    fn set_dst_port(&mut self, port: u16) {
        let ip = self.dst.map_or(UNSPECIFIED, |a| a.ip());
        self.dst = Some(SocketAddr::new(ip, port));
        if let Some(e) = self.effects {
            e.dst.set(self.dst);
        }
    }

    fn set_log_level(&mut self, level: &str) {
        let Some(e) = self.effects else { return };
        e.log_level.set(match ringlb_log::Level::parse(level) {
            Some(l) => LogLevel::Level(l),
            // The config only admits syslog level names and `silent`.
            None => LogLevel::Silent,
        });
    }

    fn capture(&mut self, response: bool, slot: usize, value: &[u8]) {
        let Some(c) = self.cap.as_mut() else { return };
        let (slots, spec) = if response {
            (&mut *c.res, c.res_spec)
        } else {
            (&mut *c.req, c.req_spec)
        };
        // A slot the frontend did not declare (a backend rule's `id`) is ignored, as haproxy.
        let Some((_, len)) = spec.get(slot) else {
            return;
        };
        if slots.len() < spec.len() {
            slots.resize(spec.len(), Vec::new());
        }
        if let Some(s) = slots.get_mut(slot) {
            s.clear();
            s.extend_from_slice(value.get(..value.len().min(*len)).unwrap_or_default());
        }
    }

    fn unset_outer_var(&mut self, name: &str) {
        if name.starts_with("proc.") {
            return self.set_proc_var(name, None);
        }
        if let Some(s) = self.stick.as_deref_mut() {
            s.sess_vars.unset(name);
        }
    }
}

/// `set-src-port` on a connection without an IP address: haproxy uses 0.0.0.0.
const UNSPECIFIED: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl Host<'_> {
    /// `proc.` variables: this shard's copy now, the others through the control shard (see
    /// `ShardState::proc_vars` for the consistency this gives).
    fn set_proc_var(&self, name: &str, value: Option<Sample<'static>>) {
        let state = &self.ctx.state;
        {
            let mut vars = state.proc_vars.borrow_mut();
            match &value {
                Some(v) => vars.set(name, v.clone()),
                None => vars.unset(name),
            }
        }
        if state.nshards > 1 {
            // Never blocks the request: a full channel leaves the change local.
            let _ = self
                .ctx
                .commands
                .try_send(crate::state::ControlMsg::SetProcVar {
                    name: name.into(),
                    value,
                });
        }
    }
}

/// A final verdict turned into what the client gets.
pub struct Reply {
    pub bytes: Vec<u8>,
    pub status: u16,
    /// Only `reject`/`silent-drop` close; haproxy 2.6 keeps a keep-alive connection open
    /// after deny, tarpit, return, redirect and auth replies (recorded).
    pub close: bool,
    /// `tarpit`: hold the connection for `timeout tarpit` before answering.
    pub tarpit: bool,
    /// `reject`/`silent-drop`: close without a word.
    pub silent: bool,
    /// `deny` (counted in `dreq`).
    pub denied: bool,
    /// The backend whose rules answered (its `http-after-response` rules run first).
    pub backend: Option<usize>,
    /// The request's variables, for `http-after-response` rules.
    pub vars: ringlb_rules::Vars,
    /// The reply replaces a server's response (`http-response` rules, `option checkcache`):
    /// a deny is a denied response, logged `PH`.
    pub response: bool,
}

impl Reply {
    /// A response the proxy has whole (a cache hit): sent as is, the connection kept.
    pub fn ready(bytes: Vec<u8>, status: u16, backend: usize, vars: ringlb_rules::Vars) -> Reply {
        Reply {
            bytes,
            status,
            close: false,
            tarpit: false,
            silent: false,
            denied: false,
            backend: Some(backend),
            vars,
            response: false,
        }
    }
}

/// The bytes for a final verdict; `errors(status)` gives the proxy's `errorfile` if any.
/// `None` for verdicts that are not replies (`Continue`, `Allow`, `UseService`).
pub fn reply_for<'e>(v: Verdict, errors: impl Fn(u16) -> Option<&'e [u8]>) -> Option<Reply> {
    let mut r = Reply {
        bytes: Vec::new(),
        status: 0,
        close: false,
        tarpit: false,
        silent: false,
        denied: false,
        backend: None,
        vars: ringlb_rules::Vars::default(),
        response: false,
    };
    match v {
        Verdict::Continue | Verdict::Allow | Verdict::UseService(_) => return None,
        Verdict::Reject { silent } => {
            r.close = true;
            r.silent = true;
            let _ = silent;
        }
        Verdict::Deny(h) => {
            r.denied = true;
            r.status = h.status;
            write_http_reply(&mut r.bytes, &h, &errors);
        }
        Verdict::Tarpit(h) => {
            r.tarpit = true;
            r.denied = true;
            r.status = h.status;
            write_http_reply(&mut r.bytes, &h, &errors);
        }
        Verdict::Return(h) => {
            r.status = h.status;
            if h.body.is_none() && h.raw.is_none() {
                // `return` without a payload has an empty body (recorded; haproxy warns that
                // a content-type is then ignored).
                start_line(
                    &mut r.bytes,
                    h.status,
                    ringlb_http1::reason_phrase(h.status),
                );
                let is_ct = |n: &[u8]| n.eq_ignore_ascii_case(b"content-type");
                for (n, v) in h.headers.iter().filter(|(n, _)| !is_ct(n)) {
                    header(&mut r.bytes, n, v);
                }
                r.bytes.extend_from_slice(b"content-length: 0\r\n\r\n");
            } else {
                write_http_reply(&mut r.bytes, &h, &errors);
            }
        }
        Verdict::Redirect {
            code,
            location,
            set_cookie,
        } => {
            r.status = code;
            write_redirect(&mut r.bytes, code, &location, set_cookie.as_deref());
        }
        Verdict::Auth { realm, proxy } => {
            let (status, challenge): (u16, &[u8]) = if proxy {
                (407, b"\r\nproxy-authenticate: Basic realm=\"")
            } else {
                (401, b"\r\nwww-authenticate: Basic realm=\"")
            };
            r.status = status;
            let page = ringlb_http1::default_reply_lowercase(status).unwrap_or_default();
            // The 401/407 page with the challenge after its headers.
            let split = find(page, b"\r\n\r\n").unwrap_or(page.len());
            r.bytes
                .extend_from_slice(page.get(..split).unwrap_or_default());
            r.bytes.extend_from_slice(challenge);
            r.bytes.extend_from_slice(realm.as_bytes());
            r.bytes.extend_from_slice(b"\"");
            r.bytes
                .extend_from_slice(page.get(split..).unwrap_or_default());
        }
    }
    Some(r)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `deny`/`tarpit`/`return` replies. Without a payload: the errorfile or built-in page for
/// the status (`return` without payload: an empty body); with one: the configured headers,
/// then `content-length`, then `content-type`, as haproxy 2.6 orders them.
fn write_http_reply<'e>(
    out: &mut Vec<u8>,
    h: &HttpReply,
    errors: &impl Fn(u16) -> Option<&'e [u8]>,
) {
    if let Some(raw) = &h.raw {
        out.extend_from_slice(raw);
        return;
    }
    let Some(body) = &h.body else {
        if let Some(page) =
            errors(h.status).or_else(|| ringlb_http1::default_reply_lowercase(h.status))
        {
            out.extend_from_slice(page);
            return;
        }
        // `return status N` without a payload.
        start_line(out, h.status, ringlb_http1::reason_phrase(h.status));
        out.extend_from_slice(b"content-length: 0\r\n\r\n");
        return;
    };
    start_line(out, h.status, ringlb_http1::reason_phrase(h.status));
    let is_ct = |n: &[u8]| n.eq_ignore_ascii_case(b"content-type");
    for (n, v) in h.headers.iter().filter(|(n, _)| !is_ct(n)) {
        header(out, n, v);
    }
    header(out, b"content-length", body.len().to_string().as_bytes());
    for (n, v) in h.headers.iter().filter(|(n, _)| is_ct(n)) {
        header(out, n, v);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Redirects as haproxy 2.6 writes them: no body, `location`, `cache-control: no-cache` for
/// the temporary codes (302, 303, 307), then the cookie.
fn write_redirect(out: &mut Vec<u8>, code: u16, location: &[u8], set_cookie: Option<&[u8]>) {
    let reason = match code {
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        other => ringlb_http1::reason_phrase(other),
    };
    start_line(out, code, reason);
    out.extend_from_slice(b"content-length: 0\r\n");
    header(out, b"location", location);
    if matches!(code, 302 | 303 | 307) {
        out.extend_from_slice(b"cache-control: no-cache\r\n");
    }
    if let Some(c) = set_cookie {
        header(out, b"set-cookie", c);
    }
    out.extend_from_slice(b"\r\n");
}

fn start_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The fetches of the TLS connection to the server (`ssl_bc*`, `ssl_s_*`): `ssl_bc` is false
/// and the rest absent before a server connection or when it is not TLS.
fn server_ssl<'t>(
    t: Option<&'t ringlb_tls::ServerTlsFacts>,
    name: &str,
    args: &[Box<str>],
) -> Option<Sample<'t>> {
    let Some(t) = t else {
        return (name == "ssl_bc" || name == "ssl_bc_is_resumed").then_some(Sample::Bool(false));
    };
    if let Some(field) = name.strip_prefix("ssl_s_") {
        if field == "chain_der" {
            return Some(Sample::Bin(std::borrow::Cow::Owned(t.chain_der())));
        }
        return cert_fields(t.cert(), field, args).flatten();
    }
    match name {
        "ssl_bc" => Some(Sample::Bool(true)),
        "ssl_bc_protocol" => Some(Sample::str(t.protocol.as_bytes())),
        "ssl_bc_cipher" => Some(Sample::str(t.cipher.as_bytes())),
        "ssl_bc_alpn" => t.alpn.as_deref().map(Sample::str),
        "ssl_bc_is_resumed" => Some(Sample::Bool(t.resumed)),
        // The connection is open: its handshake did not fail.
        "ssl_bc_err" => Some(Sample::Int(0)),
        "ssl_bc_use_keysize" | "ssl_bc_alg_keysize" => {
            cipher_key_bits(t.cipher).map(|b| Sample::Int(b.into()))
        }
        _ => None,
    }
}

/// The certificate fields `ssl_c_<field>` and `ssl_f_<field>` share: `None` when `field` is
/// not one of them (the caller goes on), `Some(None)` when the certificate is absent.
fn cert_fetch<'t>(
    t: &'t TlsFacts,
    side: CertSide,
    field: &str,
    args: &[Box<str>],
) -> Option<Option<Sample<'t>>> {
    cert_fields(t.cert(side), field, args)
}

/// The fields every certificate fetch family reads (`ssl_c_`, `ssl_f_`, `ssl_s_`).
fn cert_fields<'t>(
    cert: Option<ringlb_tls::CertRef<'t>>,
    field: &str,
    args: &[Box<str>],
) -> Option<Option<Sample<'t>>> {
    use std::borrow::Cow;
    let dn_args = || {
        let which = args.first().map(|a| &**a);
        let occ = args.get(1).and_then(|o| o.parse().ok()).unwrap_or(0);
        let format = match args.get(2).map(|a| &**a) {
            Some("rfc2253") => DnFormat::Rfc2253,
            _ => DnFormat::Oneline,
        };
        (which, occ, format)
    };
    Some(match field {
        "s_dn" => cert.map(|c| {
            let (w, o, f) = dn_args();
            Sample::owned(c.s_dn(w, o, f).into_bytes())
        }),
        "i_dn" => cert.map(|c| {
            let (w, o, f) = dn_args();
            Sample::owned(c.i_dn(w, o, f).into_bytes())
        }),
        "serial" => cert.map(|c| Sample::Bin(Cow::Borrowed(c.serial()))),
        "notafter" => cert.map(|c| Sample::owned(c.not_after().into_bytes())),
        "notbefore" => cert.map(|c| Sample::owned(c.not_before().into_bytes())),
        "der" => cert.map(|c| Sample::Bin(Cow::Borrowed(c.der))),
        // A hash and a copy per fetch: only where a rule asks for it.
        "sha1" => cert.map(|c| Sample::Bin(Cow::Owned(c.sha1().to_vec()))),
        "version" => cert.map(|c| Sample::Int(c.info.version)),
        "sig_alg" => cert
            .and_then(|c| c.info.sig_alg)
            .map(|a| Sample::str(a.as_bytes())),
        "key_alg" => cert
            .and_then(|c| c.info.key_alg)
            .map(|a| Sample::str(a.as_bytes())),
        _ => return None,
    })
}

/// Upper-case hexadecimal, as haproxy's `ssl_fc_cipherlist_hex`.
fn hex_upper(b: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    b.iter()
        .flat_map(|x| [HEX[usize::from(x >> 4)], HEX[usize::from(x & 15)]])
        .collect()
}

/// The symmetric key size of an OpenSSL cipher name (`ssl_fc_use_keysize`); rustls offers
/// only AES-128/256-GCM and ChaCha20-Poly1305.
fn cipher_key_bits(cipher: &str) -> Option<u16> {
    if cipher.contains("AES128") || cipher.contains("AES_128") {
        Some(128)
    } else if cipher.contains("AES256") || cipher.contains("AES_256") || cipher.contains("CHACHA20")
    {
        Some(256)
    } else {
        None
    }
}
