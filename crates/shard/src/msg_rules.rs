//! `http-request` / `use_backend` / `http-response` rules run on a parsed HTTP/1 head: the one
//! implementation both the HTTP/1 session and HTTP/2 streams (translated to HTTP/1 heads
//! first) call, so both follow haproxy's order: `monitor-uri`, the frontend's rules,
//! `use_backend`, the backend's rules, then `unique-id-header`.

use std::net::SocketAddr;

use ringlb_http1::{RequestHead, ResponseHead};
use ringlb_tls::TlsFacts;

use crate::rules::Reply;
use crate::topology::{BackendRt, FrontendRt};
use crate::Ctx;

/// The connection facts fetches read (`src`, `dst`, `ssl_fc_*`).
#[derive(Clone, Copy)]
pub struct ConnFacts<'a> {
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    pub tls: Option<&'a TlsFacts>,
    /// The connection to the server, once there is one (`ssl_bc_*`, `ssl_s_*`).
    pub server_tls: Option<&'a ringlb_tls::ServerTlsFacts>,
    /// Where `set-src`/`set-dst`/`set-*-port`/`set-log-level` leave their effects (`None`:
    /// those actions do nothing here).
    pub effects: Option<&'a crate::rules::RuleEffects>,
    /// The request came over HTTP/2 (haproxy rebuilds its target in absolute form).
    pub h2: bool,
}

/// The outcome of the request rules.
pub enum RequestVerdict {
    /// A final verdict: answer it, forward nothing.
    Reply(Reply),
    /// `use-service` (`prometheus-exporter`).
    Service(String),
    /// Forward to `backend`, with the head the rules rewrote (if they did).
    Go {
        backend: Option<usize>,
        rewritten: Option<Vec<u8>>,
        vars: ringlb_rules::Vars,
        server: ServerChoice,
        /// The `unique-id-format` value (sent in `unique-id-header`, logged as `%ID`).
        unique_id: Option<Vec<u8>>,
    },
}

/// What the backend's `use-server` and `stick` rules decided for a request.
#[derive(Debug, Default)]
pub struct ServerChoice {
    /// The server a `use-server` rule or a `stick match` entry names (if it may serve).
    pub forced: Option<usize>,
    /// `stick on|store-request` keys to remember once a server took the request: (table,
    /// key). Allocated only for backends with such rules.
    pub stores: Vec<(Box<str>, ringlb_rules::Sample<'static>)>,
    /// What `balance hash <expr>` / `balance rdp-cookie` hashes (`None`: no such algorithm,
    /// or no key in this request).
    pub hash_key: Option<Vec<u8>>,
    /// `force-persist` / `ignore-persist`: what the first rule that holds decided.
    pub persist: Option<ringlb_rules::proxy::Persist>,
}

impl ServerChoice {
    /// Remembers `server` (of backend `be`) under every stored key.
    pub fn commit(&self, ctx: &Ctx, be: &BackendRt, server: usize) {
        if self.stores.is_empty() {
            return;
        }
        // A server added at run time is only in the shard's list (its id is there too).
        let puid = match be.balance.servers.get(server) {
            Some(s) => i64::from(s.puid),
            None => live_server(ctx, be, server).map_or(server as i64 + 1, |s| i64::from(s.puid)),
        };
        for (table, key) in &self.stores {
            crate::stick::store_server(&ctx.state, table, key, puid);
        }
    }
}

/// Server `i` of backend `be_idx` may take a forced request: up and not in maintenance (a
/// drained server keeps its sticky clients, as with cookies).
fn may_serve(ctx: &Ctx, be_idx: usize, i: usize) -> bool {
    ctx.state
        .server(be_idx, i)
        .is_some_and(|st| st.up.get() && st.admin.get() != crate::state::AdminState::Maint)
}

/// `use-server` then `stick match|on` (HAProxy's order; the first server found wins), and the
/// keys `stick on|store-request` will remember.
pub(crate) fn server_choice(
    ctx: &Ctx,
    be_idx: usize,
    b: &BackendRt,
    r: &ringlb_rules::ProxyRules,
    host: &crate::rules::Host<'_>,
    txn: &ringlb_rules::Txn<'_>,
) -> ServerChoice {
    let index = |name: &str| b.servers.iter().position(|s| s.name == name);
    let persist = if r.persist.is_empty() {
        None
    } else {
        r.persist(host, txn)
    };
    // `force-persist`: `use-server` and `stick match` may name a down server (HAProxy's
    // `SF_FORCE_PRST`).
    let forcing = persist == Some(ringlb_rules::proxy::Persist::Force);
    let may_serve = |i: usize| forcing || may_serve(ctx, be_idx, i);
    let mut forced = if r.use_servers.is_empty() {
        None
    } else {
        r.select_server(host, txn, |name| index(name).is_some_and(may_serve))
            .and_then(index)
    };
    let mut stores: Vec<(Box<str>, ringlb_rules::Sample<'static>)> = Vec::new();
    if !r.stick.is_empty() {
        let keys = r.stick_keys(host, txn, |w| w != ringlb_rules::StickWhen::StoreResponse);
        for (rule, key) in keys {
            let table = rule.table.as_deref().unwrap_or(&b.name);
            if forced.is_none() && rule.when.matches() {
                forced = crate::stick::match_server(&ctx.state, table, &key)
                    .and_then(|id| {
                        b.balance
                            .servers
                            .iter()
                            .position(|s| i64::from(s.puid) == id)
                    })
                    .filter(|&i| may_serve(i));
            }
            // One store per table and request, the first rule's (as HAProxy).
            if rule.when.stores_request() && !stores.iter().any(|(t, _)| &**t == table) {
                stores.push((table.into(), key));
            }
        }
    }
    ServerChoice {
        forced,
        stores,
        hash_key: r.balance_key(host, txn),
        persist,
    }
}

/// Whether the request rules must run at all (the engine costs nothing for proxies without).
pub fn has_request_rules(ctx: &Ctx, fe: &FrontendRt) -> bool {
    fe.rules.is_some()
        || fe.backend.is_some_and(|b| {
            ctx.state
                .topo
                .backends
                .get(b)
                .is_some_and(|b| b.rules.is_some())
        })
}

/// Whether this request's body must be buffered before the rules run, and how: `option
/// http-buffer-request` on the frontend or its default backend (bounded by `timeout
/// http-request`), else the first `http-request wait-for-body` of the frontend's rules (then
/// the default backend's) whose condition holds on the request as received. Rules never
/// suspend, so the wait happens before all of them (see `RuleList::body_wait`).
pub fn body_wait(
    ctx: &Ctx,
    fe: &FrontendRt,
    req: &RequestHead,
    bytes: &[u8],
    conn: ConnFacts<'_>,
) -> Option<ringlb_rules::BodyWait> {
    let be = fe.backend.and_then(|b| ctx.state.topo.backends.get(b));
    if fe.buffer_request || be.is_some_and(|b| b.buffer_request) {
        let t = fe.timeouts.http_request;
        return Some(ringlb_rules::BodyWait {
            time_ms: t.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            at_least: 0,
        });
    }
    let lists = [fe.rules.as_ref(), be.and_then(|b| b.rules.as_ref())];
    if !lists.iter().flatten().any(|r| r.waits_for_body()) {
        return None;
    }
    let mut msg = ringlb_rules::HttpMessage::request(
        req.method_span().get(bytes),
        req.target().get(bytes),
        req.version().as_bytes(),
    );
    for h in req.headers() {
        msg.push_header(h.name.get(bytes), h.value.get(bytes));
    }
    let txn = ringlb_rules::Txn::new(msg);
    let host = crate::rules::Host {
        cap: None,
        payload: None,
        ctx,
        frontend: &fe.name,
        backend: None,
        server: None,
        src: conn.src,
        dst: conn.dst,
        tls: conn.tls,
        server_tls: conn.server_tls,
        effects: None,
        res_payload: None,
        req_body: None,
        log: None,
        unique_id: None,
        stick: None,
    };
    lists
        .iter()
        .flatten()
        .find_map(|r| r.body_wait(&host, &txn))
}

/// A proxied request for `option http-use-proxy-header`: its target starts with neither `/`
/// nor `*` (haproxy 2.6 also counts every HTTP/2 request, whose target it rebuilds in
/// absolute form; the HTTP/2 side passes such a target here).
pub fn proxied_target(target: &[u8]) -> bool {
    !matches!(target.first(), Some(b'/' | b'*'))
}

/// Runs the frontend's `http-request` rules, picks the backend (`use_backend`), then runs the
/// backend's rules. `bytes` holds the head `req` was parsed from; `body` the buffered body.
#[allow(clippy::too_many_arguments)]
pub fn request_rules(
    ctx: &Ctx,
    fe: &FrontendRt,
    req: &RequestHead,
    bytes: &[u8],
    body: Option<&[u8]>,
    conn: ConnFacts<'_>,
    stick: Option<&mut crate::stick::StickSession>,
    cap: Option<crate::rules::Captures<'_>>,
) -> RequestVerdict {
    let topo = &ctx.state.topo;
    let mut msg = ringlb_rules::HttpMessage::request(
        req.method_span().get(bytes),
        req.target().get(bytes),
        req.version().as_bytes(),
    );
    for h in req.headers() {
        msg.push_header(h.name.get(bytes), h.value.get(bytes));
    }
    let mut txn = ringlb_rules::Txn::new(msg);
    txn.proxy_auth = fe.use_proxy_header && (conn.h2 || proxied_target(req.target().get(bytes)));
    let mut host = crate::rules::Host {
        req_body: body,
        cap,
        payload: None,
        ctx,
        frontend: &fe.name,
        backend: None,
        server: None,
        src: conn.src,
        dst: conn.dst,
        tls: conn.tls,
        server_tls: conn.server_tls,
        effects: conn.effects,
        res_payload: None,
        log: None,
        unique_id: None,
        stick,
    };
    // `monitor-uri`: the proxy answers it itself (haproxy's 200 page, 503 when a `monitor
    // fail` condition holds), before any rule.
    if let Some(r) = fe.rules.as_ref().filter(|r| r.is_monitor_uri(&txn.req)) {
        let status = if r.monitor_fails(&host, &txn) {
            503
        } else {
            200
        };
        if let Some(page) = ringlb_http1::default_reply_lowercase(status) {
            return RequestVerdict::Reply(Reply {
                bytes: page.to_vec(),
                status,
                close: false,
                tarpit: false,
                silent: false,
                denied: false,
                backend: None,
                vars: ringlb_rules::Vars::default(),
                response: false,
            });
        }
    }
    if let Some(r) = &fe.rules {
        // `tcp-request content` in HTTP mode: once per request, on the parsed head, before
        // the `http-request` rules (a reject closes without a reply).
        if r.has_tcp_rules(ringlb_rules::TcpPhase::Content) {
            match r.tcp_rules(ringlb_rules::TcpPhase::Content, &mut host, &mut txn) {
                ringlb_rules::TcpVerdict::Reject { silent } => {
                    let v = ringlb_rules::Verdict::Reject { silent };
                    if let Some(reply) = crate::rules::reply_for(v, |s| fe.errors.get(s)) {
                        return RequestVerdict::Reply(reply);
                    }
                }
                ringlb_rules::TcpVerdict::UseService(name) => return RequestVerdict::Service(name),
                _ => {}
            }
        }
        let v = r.http_request(&mut host, &mut txn);
        if let ringlb_rules::Verdict::UseService(name) = v {
            return RequestVerdict::Service(name);
        }
        if let Some(mut reply) = crate::rules::reply_for(v, |s| fe.errors.get(s)) {
            reply.vars = std::mem::take(&mut txn.vars);
            return RequestVerdict::Reply(reply);
        }
    }
    let backend = match fe
        .rules
        .as_ref()
        .and_then(|r| r.select_backend(&host, &txn))
    {
        // A dynamic name that matches no backend gets 503, as in HAProxy.
        Some(name) => topo.backends.iter().position(|b| b.name == *name),
        None => fe.backend,
    };
    let mut server = ServerChoice::default();
    if let Some(b) = backend.and_then(|i| topo.backends.get(i)) {
        if let Some(r) = &b.rules {
            host.backend = Some(&b.name);
            if r.has_tcp_rules(ringlb_rules::TcpPhase::Content) {
                if let ringlb_rules::TcpVerdict::Reject { silent } =
                    r.tcp_rules(ringlb_rules::TcpPhase::Content, &mut host, &mut txn)
                {
                    let v = ringlb_rules::Verdict::Reject { silent };
                    if let Some(reply) = crate::rules::reply_for(v, |s| b.errors.get(s)) {
                        return RequestVerdict::Reply(reply);
                    }
                }
            }
            let v = r.http_request(&mut host, &mut txn);
            if let ringlb_rules::Verdict::UseService(name) = v {
                return RequestVerdict::Service(name);
            }
            let errors = |s| b.errors.get(s).or_else(|| fe.errors.get(s));
            if let Some(mut reply) = crate::rules::reply_for(v, errors) {
                reply.backend = backend;
                reply.vars = std::mem::take(&mut txn.vars);
                return RequestVerdict::Reply(reply);
            }
            if let Some(i) = backend {
                server = server_choice(ctx, i, b, r, &host, &txn);
            }
        }
    }
    // `unique-id-format`: computed after every rule and sent in `unique-id-header`, as
    // haproxy's `http_process_request` does (a rule reading `unique-id` earlier sees none).
    let uid_format = fe.rules.as_ref().and_then(|r| r.unique_id_format.as_ref());
    let facts = uid_format.map(|_| crate::log::unique_id_facts());
    host.log = facts.as_ref();
    let unique_id = uid_format.map(|f| f.render_http_vec(ringlb_rules::Ctx::new(&host, &txn)));
    if let (Some(id), Some(h)) = (&unique_id, &fe.unique_id_header) {
        txn.req.add_header(h.as_bytes(), id.clone());
    }
    let rewritten = txn.req.modified.then(|| {
        let mut v = Vec::with_capacity(bytes.len() + 128);
        txn.req.write_request_head(&mut v);
        v
    });
    RequestVerdict::Go {
        backend,
        rewritten,
        vars: std::mem::take(&mut txn.vars),
        server,
        unique_id,
    }
}

/// The outcome of the response rules.
pub enum ResponseVerdict {
    Unchanged,
    /// The head as the rules left it, to parse again and forward.
    Rewritten(Vec<u8>),
    /// A final verdict replaces the server's response.
    Reply(Reply),
}

/// Runs the backend's then the frontend's `http-response` rules (HAProxy's order) on `resp`
/// (parsed from `bytes`); `Unchanged` costs nothing when neither proxy has such rules.
#[allow(clippy::too_many_arguments)]
pub fn response_rules(
    ctx: &Ctx,
    fe: &FrontendRt,
    be: &BackendRt,
    server: usize,
    vars: &ringlb_rules::Vars,
    resp: &ResponseHead,
    bytes: &[u8],
    conn: ConnFacts<'_>,
    stick: Option<&mut crate::stick::StickSession>,
    cap: Option<crate::rules::Captures<'_>>,
    method: ringlb_http1::Method,
) -> ResponseVerdict {
    use ringlb_http1::Method;
    // `option checkcache` judges the response as the `http-response` rules leave it.
    let safe = matches!(
        method,
        Method::Get | Method::Head | Method::Options | Method::Trace
    );
    use ringlb_cache::checkcache::blocks_cacheable_cookie;
    let be_rules = be
        .rules
        .as_ref()
        .filter(|r| !r.http_response.rules.is_empty());
    let fe_rules = fe
        .rules
        .as_ref()
        .filter(|r| !r.http_response.rules.is_empty());
    let stores = be.rules.as_ref().filter(|r| {
        r.stick
            .iter()
            .any(|s| s.when == ringlb_rules::StickWhen::StoreResponse)
    });
    let be_after = after_rules(Some(be));
    let fe_after = after_rules_fe(fe);
    if be_rules.is_none()
        && fe_rules.is_none()
        && stores.is_none()
        && be_after.is_none()
        && fe_after.is_none()
    {
        if be.checkcache {
            let headers = resp
                .headers()
                .iter()
                .map(|h| (h.name.get(bytes), h.value.get(bytes)));
            if blocks_cacheable_cookie(safe, resp.status(), headers) {
                return ResponseVerdict::Reply(checkcache_block(ctx, fe, be, server));
            }
        }
        return ResponseVerdict::Unchanged;
    }
    let mut msg = ringlb_rules::HttpMessage::response(
        resp.version().as_bytes(),
        resp.status(),
        resp.reason().get(bytes),
    );
    for h in resp.headers() {
        msg.push_header(h.name.get(bytes), h.value.get(bytes));
    }
    let srv_name = match be.servers.get(server) {
        Some(s) => Some(std::borrow::Cow::Borrowed(s.name.as_str())),
        // Added at run time: only the shard knows it.
        None => live_server(ctx, be, server).map(|s| std::borrow::Cow::Owned(s.rt.name.clone())),
    };
    // The request's method stays known while its response is processed (haproxy keeps it:
    // `method` works in `http-response` rules); its headers and URI do not.
    let req = ringlb_rules::HttpMessage::request(method.token().unwrap_or_default(), b"", b"");
    let mut txn = ringlb_rules::Txn::new(req);
    txn.res = Some(msg);
    txn.vars = vars.clone();
    let mut host = crate::rules::Host {
        req_body: None,
        cap,
        payload: None,
        ctx,
        frontend: &fe.name,
        backend: Some(&be.name),
        server: srv_name.as_deref(),
        src: conn.src,
        dst: conn.dst,
        tls: conn.tls,
        server_tls: conn.server_tls,
        effects: conn.effects,
        res_payload: None,
        log: None,
        unique_id: None,
        stick,
    };
    for r in [be_rules, fe_rules].into_iter().flatten() {
        let v = r.http_response(&mut host, &mut txn);
        let errors = |s| be.errors.get(s).or_else(|| fe.errors.get(s));
        if let Some(mut reply) = crate::rules::reply_for(v, errors) {
            reply.response = true;
            return ResponseVerdict::Reply(reply);
        }
    }
    if be.checkcache {
        if let Some(m) = &txn.res {
            let headers = m.headers.iter().map(|(n, v)| (&n[..], &v[..]));
            if blocks_cacheable_cookie(safe, m.status, headers) {
                return ResponseVerdict::Reply(checkcache_block(ctx, fe, be, server));
            }
        }
    }
    // `stick store-response`: after the response rules, the server that answered.
    if let Some(r) = stores {
        let choice = ServerChoice {
            forced: None,
            hash_key: None,
            persist: None,
            stores: r
                .stick_keys(&host, &txn, |w| w == ringlb_rules::StickWhen::StoreResponse)
                .into_iter()
                .map(|(rule, key)| {
                    (
                        rule.table
                            .clone()
                            .unwrap_or_else(|| be.name.as_str().into()),
                        key,
                    )
                })
                .collect(),
        };
        choice.commit(ctx, be, server);
    }
    // `http-after-response`: last, backend then frontend (only `allow` ends a list early).
    for r in [be_after, fe_after].into_iter().flatten() {
        r.http_after_response(&mut host, &mut txn);
    }
    match txn.res {
        Some(m) if m.modified => {
            let mut v = Vec::with_capacity(bytes.len() + 128);
            m.write_response_head(&mut v);
            ResponseVerdict::Rewritten(v)
        }
        _ => ResponseVerdict::Unchanged,
    }
}

/// The shard's state of server `server` of backend `be` (a server added at run time is only
/// in the shard's list).
fn live_server(
    ctx: &Ctx,
    be: &BackendRt,
    server: usize,
) -> Option<std::rc::Rc<crate::state::ServerState>> {
    let bi = ctx
        .state
        .topo
        .backends
        .iter()
        .position(|b| std::ptr::eq(b, be))?;
    ctx.state.server(bi, server)
}

/// The answer to a response `option checkcache` blocks: haproxy's alert (on stderr and in
/// the backend's logs), then a 502 counted as a denied response. haproxy 2.6 documents a 502
/// but sends the error page of the server's own status (a "200 Service ready" page for a
/// 200); ringlb sends the documented 502.
fn checkcache_block(ctx: &Ctx, fe: &FrontendRt, be: &BackendRt, server: usize) -> Reply {
    let srv = match be.servers.get(server) {
        Some(s) => s.name.clone(),
        None => live_server(ctx, be, server)
            .map_or_else(|| "<dispatch>".to_owned(), |s| s.rt.name.clone()),
    };
    let text = format!(
        "Blocking cacheable cookie in response from instance {}, server {srv}.",
        be.name
    );
    crate::log::alert(ctx, fe, &text);
    let v = ringlb_rules::Verdict::Deny(ringlb_rules::HttpReply {
        status: 502,
        headers: Vec::new(),
        body: None,
        raw: None,
    });
    let errors = |s| be.errors.get(s).or_else(|| fe.errors.get(s));
    // A `Deny` verdict always gives a reply; the fallback only keeps this path total.
    let mut reply = crate::rules::reply_for(v, errors).unwrap_or_else(|| {
        let page = ringlb_http1::default_reply_lowercase(502).unwrap_or_default();
        Reply::ready(page.to_vec(), 502, 0, ringlb_rules::Vars::default())
    });
    reply.denied = true;
    reply.response = true;
    reply
}

/// Request bytes a hashing `balance` algorithm needs, owned so they outlive the head buffer.
pub struct PickFacts {
    pub uri: Vec<u8>,
    pub header: Option<Vec<u8>>,
}

impl PickFacts {
    pub fn of(spec: &crate::topology::BalanceSpec, req: &RequestHead, src: &[u8]) -> PickFacts {
        let uri = if spec.needs_uri() {
            req.target().get(src).to_vec()
        } else {
            Vec::new()
        };
        let header = spec.header_name().and_then(|name| {
            let h = req
                .headers()
                .iter()
                .find(|h| h.name.get(src).eq_ignore_ascii_case(name.as_bytes()))?;
            Some(ringlb_balance::key::first_header_value(h.value.get(src)).to_vec())
        });
        PickFacts { uri, header }
    }
}

/// The backend's `http-after-response` rules, if it has any.
fn after_rules(be: Option<&BackendRt>) -> Option<&ringlb_rules::ProxyRules> {
    be.and_then(|b| b.rules.as_ref())
        .filter(|r| !r.http_after_response.rules.is_empty())
}

/// The frontend's `http-after-response` rules, if it has any.
fn after_rules_fe(fe: &FrontendRt) -> Option<&ringlb_rules::ProxyRules> {
    fe.rules
        .as_ref()
        .filter(|r| !r.http_after_response.rules.is_empty())
}

/// Whether a reply the proxy makes for this frontend (and backend, once chosen) must go
/// through `http-after-response` rules.
pub fn has_after_rules(fe: &FrontendRt, be: Option<&BackendRt>) -> bool {
    after_rules_fe(fe).is_some() || after_rules(be).is_some()
}

/// Runs `http-after-response` rules (backend's, then frontend's, as haproxy) on a reply the
/// proxy made itself (error page, `return`, redirect, deny, stats): `bytes` is the whole
/// reply, head and body. Returns the reply with its head rewritten, or `None` when the rules
/// changed nothing (or the reply has no parsable head, e.g. a raw `errorfile` gone wrong).
#[allow(clippy::too_many_arguments)]
pub fn after_reply(
    ctx: &Ctx,
    fe: &FrontendRt,
    be: Option<&BackendRt>,
    vars: &ringlb_rules::Vars,
    bytes: &[u8],
    conn: ConnFacts<'_>,
    stick: Option<&mut crate::stick::StickSession>,
    cap: Option<crate::rules::Captures<'_>>,
) -> Option<Vec<u8>> {
    let (be_after, fe_after) = (after_rules(be), after_rules_fe(fe));
    if be_after.is_none() && fe_after.is_none() {
        return None;
    }
    // Rare path (only proxies with such rules): one parse of the reply the proxy just wrote.
    let mut head = ResponseHead::default();
    let limits = ringlb_http1::Limits::default();
    let head_len =
        match ringlb_http1::parse_response(bytes, &limits, ringlb_http1::Method::Get, &mut head) {
            Ok(ringlb_http1::Parsed::Complete { head_len }) => head_len,
            _ => return None,
        };
    let mut msg = ringlb_rules::HttpMessage::response(
        head.version().as_bytes(),
        head.status(),
        head.reason().get(bytes),
    );
    for h in head.headers() {
        msg.push_header(h.name.get(bytes), h.value.get(bytes));
    }
    let mut txn = ringlb_rules::Txn::new(ringlb_rules::HttpMessage::default());
    txn.res = Some(msg);
    txn.vars = vars.clone();
    let mut host = crate::rules::Host {
        req_body: None,
        cap,
        payload: None,
        ctx,
        frontend: &fe.name,
        backend: be.map(|b| b.name.as_str()),
        server: None,
        src: conn.src,
        dst: conn.dst,
        tls: conn.tls,
        server_tls: conn.server_tls,
        effects: conn.effects,
        res_payload: None,
        log: None,
        unique_id: None,
        stick,
    };
    for r in [be_after, fe_after].into_iter().flatten() {
        r.http_after_response(&mut host, &mut txn);
    }
    let m = txn.res.filter(|m| m.modified)?;
    let body = bytes.get(head_len..).unwrap_or_default();
    let mut out = Vec::with_capacity(bytes.len() + 128);
    m.write_response_head(&mut out);
    out.extend_from_slice(body);
    Some(out)
}
