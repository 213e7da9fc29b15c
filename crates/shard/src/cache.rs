//! The engine side of HAProxy's small-object cache (`cache` sections, `http-request
//! cache-use`, `http-response cache-store`; the rules live in `ringlb-cache`): one store per
//! shard and cache section in `ShardState::caches` (no locks; a reload starts empty, as a new
//! haproxy process does). A request that ran `cache-use` is looked up after the request
//! rules; a hit is answered from the store with its `Age`, a miss remembers its keys so that
//! `cache-store` can keep the response once its whole body went to the client.
//!
//! Only proxies whose rules use a cache pay anything: the session checks one cell.
//! Stored: 200 responses with a `Content-Length` (or no body) within `max-object-size`;
//! chunked responses are forwarded but not stored.

use ringlb_cache::{RequestUse, Store};
use ringlb_http1::{parse_response, Limits, Parsed, RequestHead, ResponseHead};

use ringlb_uring::{RecvBuf, SendBuf};

use crate::conn::Io;
use crate::Ctx;

/// A `cache` section as the shards use it.
#[derive(Debug, Clone)]
pub struct CacheRt {
    pub name: String,
    pub spec: ringlb_cache::CacheSpec,
}

/// Unix seconds: object lifetimes and `Age` (whole seconds, as HAProxy).
pub fn now_s() -> i64 {
    i64::from(crate::persist::unix_now())
}

/// The sections of the configuration, with HAProxy's defaults.
pub fn from_config(cfg: &ringlb_config::model::Config) -> Vec<CacheRt> {
    cfg.caches
        .iter()
        .map(|c| {
            let mut spec =
                ringlb_cache::CacheSpec::new(c.total_max_size.unwrap_or(1), c.max_object_size);
            if let Some(a) = c.max_age {
                spec.max_age_s = u64::from(a);
            }
            spec.process_vary = c.process_vary.unwrap_or(false);
            if let Some(n) = c.max_secondary_entries {
                spec.max_secondary_entries = n as usize;
            }
            CacheRt {
                name: c.name.clone(),
                spec,
            }
        })
        .collect()
}

/// The stores of one shard, one per section.
pub fn stores(caches: &[CacheRt]) -> Vec<Store> {
    caches.iter().map(|c| Store::new(c.spec.clone())).collect()
}

/// What a request that ran `cache-use` needs for `cache-store` once the request head is gone:
/// the cache, its primary key, and the fields a `Vary` may name.
#[derive(Debug, Default)]
pub struct CacheKey {
    pub cache: usize,
    pub primary: u64,
    /// GET (HEAD is served from the cache but never stored).
    pub storable: bool,
    /// The request's `accept-encoding` values (joined with commas).
    pub accept_encoding: Vec<u8>,
    pub referer: Vec<u8>,
}

impl CacheKey {
    /// The fields the secondary key hashes for an object in `encoding`: as haproxy 2.6, a
    /// response that varies on `accept-encoding` is keyed by its own `content-encoding`
    /// (`identity` without one), and a request matches every encoding it accepts.
    fn fields<'a>(&'a self, encoding: &'a [u8]) -> [(&'a [u8], &'a [u8]); 2] {
        [(b"accept-encoding", encoding), (b"referer", &self.referer)]
    }

    /// The encodings this request accepts: `identity` (unless refused with `q=0`), then each
    /// one it names, lower-cased.
    fn encodings(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut identity = true;
        for t in self.accept_encoding.split(|&b| b == b',') {
            let mut parts = t.split(|&b| b == b';');
            let name = parts
                .next()
                .unwrap_or_default()
                .trim_ascii()
                .to_ascii_lowercase();
            let refused = parts.any(|p| {
                let p = p.trim_ascii();
                p.eq_ignore_ascii_case(b"q=0") || p.eq_ignore_ascii_case(b"q=0.0")
            });
            if name == b"identity" && refused {
                identity = false;
            }
            if !name.is_empty() && !refused && name != b"identity" && !out.contains(&name) {
                out.push(name);
            }
        }
        if identity {
            out.insert(0, b"identity".to_vec());
        }
        out
    }
}

/// The outcome of a lookup.
pub enum Lookup {
    /// The response to send (head with `age`, body unless HEAD) and its status.
    Hit { bytes: Vec<u8>, status: u16 },
    /// Not in the cache: forward, and store the response if `cache-store` says so.
    Miss(CacheKey),
    /// The request may not use the cache (method, version, `Authorization`).
    Bypass,
}

/// The secondary keys a request could have, for the `Vary` sets the cache handles.
const VARY_SETS: [&[&[u8]]; 4] = [
    &[],
    &[b"accept-encoding"],
    &[b"referer"],
    &[b"accept-encoding", b"referer"],
];

/// Looks the request up in cache `idx`, counting the lookup and the hit on the proxy whose
/// rule ran `cache-use` (`fe`, else backend `be`). `h2_scheme`: the request came over h2,
/// whose URI haproxy keys in its absolute form (`scheme://authority/path`), so h2 and
/// HTTP/1 requests do not share objects.
pub fn lookup(
    ctx: &Ctx,
    idx: usize,
    counted: (usize, Option<usize>),
    (req, bytes): (&RequestHead, &[u8]),
    h2_scheme: Option<&str>,
    now_s: i64,
) -> Lookup {
    let method = req.method_span().get(bytes);
    let head = method == b"HEAD";
    let http11 = req.version() == ringlb_http1::Version::Http11;
    let headers: Vec<(&[u8], &[u8])> = req
        .headers()
        .iter()
        .map(|h| (h.name.get(bytes), h.value.get(bytes)))
        .collect();
    // HEAD is answered from a stored GET (HAProxy 2.6).
    let as_get: &[u8] = if head { b"GET" } else { method };
    let usage = ringlb_cache::request_use(as_get, http11, &headers);
    if usage == RequestUse::Bypass {
        return Lookup::Bypass;
    }
    let host = req.host().map(|s| s.get(bytes)).unwrap_or_default();
    let target = req.target().get(bytes);
    let primary = match h2_scheme {
        None => ringlb_cache::primary_key(host, target),
        Some(scheme) => {
            let uri = [scheme.as_bytes(), b"://", host, target].concat();
            ringlb_cache::primary_key(b"", &uri)
        }
    };
    let mut key = CacheKey {
        cache: idx,
        primary,
        storable: !head,
        ..CacheKey::default()
    };
    for (n, v) in &headers {
        let slot = if n.eq_ignore_ascii_case(b"accept-encoding") {
            &mut key.accept_encoding
        } else if n.eq_ignore_ascii_case(b"referer") {
            &mut key.referer
        } else {
            continue;
        };
        if !slot.is_empty() {
            slot.push(b',');
        }
        slot.extend_from_slice(v);
    }
    // `no-cache`: not looked up (nor counted as a lookup, as haproxy), but stored again.
    if usage == RequestUse::Refresh {
        return Lookup::Miss(key);
    }
    count(ctx, counted, false);
    let mut stores = ctx.state.caches.borrow_mut();
    let Some(store) = stores.get_mut(idx) else {
        return Lookup::Miss(key);
    };
    let encodings = if store.spec().process_vary {
        key.encodings()
    } else {
        Vec::new()
    };
    let plain = [Vec::new()];
    for vary in VARY_SETS {
        if !vary.is_empty() && !store.spec().process_vary {
            break;
        }
        let candidates = if vary.contains(&&b"accept-encoding"[..]) {
            encodings.as_slice()
        } else {
            &plain[..]
        };
        for enc in candidates {
            let secondary = ringlb_cache::secondary_key(vary, &key.fields(enc));
            if let Some(hit) = store.get(key.primary, secondary, now_s) {
                let fresh = not_modified(hit.bytes, &headers);
                let mut bytes = hit_bytes(hit.bytes, hit.age_s, head || fresh);
                let status = if fresh {
                    // The stored fields, under a 304 status line (haproxy 2.6).
                    let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
                    bytes.splice(..line_end, b"HTTP/1.1 304 Not Modified".iter().copied());
                    304
                } else {
                    200
                };
                drop(stores);
                count(ctx, counted, true);
                return Lookup::Hit { bytes, status };
            }
        }
    }
    Lookup::Miss(key)
}

/// The first value of field `name` in a stored head.
fn stored_field<'a>(stored: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let head_end = stored.windows(4).position(|w| w == b"\r\n\r\n")?;
    stored
        .get(..head_end)?
        .split(|&b| b == b'\n')
        .skip(1)
        .find_map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let colon = l.iter().position(|&b| b == b':')?;
            let (n, v) = l.split_at(colon);
            n.eq_ignore_ascii_case(name)
                .then(|| v.get(1..).unwrap_or_default().trim_ascii())
        })
}

/// A conditional request the stored object satisfies: `If-None-Match` naming its `ETag`
/// (weak comparison, or `*`), else `If-Modified-Since` at or after its `Last-Modified` (else
/// its `Date`), as haproxy 2.6 answers 304 from the cache.
fn not_modified(stored: &[u8], req: &[(&[u8], &[u8])]) -> bool {
    let field = |name: &[u8]| {
        req.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let weak = |t: &[u8]| -> Vec<u8> {
        t.trim_ascii()
            .strip_prefix(b"W/")
            .unwrap_or(t.trim_ascii())
            .to_vec()
    };
    if let Some(inm) = field(b"if-none-match") {
        let Some(etag) = stored_field(stored, b"etag") else {
            return false;
        };
        let etag = weak(etag);
        return inm
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii() == b"*" || weak(t) == etag);
    }
    let Some(ims) = field(b"if-modified-since").and_then(ringlb_cache::parse_http_date) else {
        return false;
    };
    stored_field(stored, b"last-modified")
        .or_else(|| stored_field(stored, b"date"))
        .and_then(ringlb_cache::parse_http_date)
        .is_some_and(|lm| lm <= ims)
}

/// The stored response with `age` after its status line (HAProxy adds it last; field order
/// does not matter to HTTP), without its body for HEAD.
fn hit_bytes(stored: &[u8], age_s: u64, head_only: bool) -> Vec<u8> {
    let line_end = stored
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(stored.len(), |i| i + 2);
    let head_end = stored
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(stored.len(), |i| i + 4);
    let (status_line, rest) = stored.split_at(line_end.min(stored.len()));
    let mut out = Vec::with_capacity(stored.len() + 16);
    out.extend_from_slice(status_line);
    out.extend_from_slice(
        rest.get(..head_end.saturating_sub(line_end))
            .unwrap_or_default(),
    );
    // Before the blank line: `age` goes last among the fields.
    let blank = out.len().saturating_sub(2);
    out.truncate(blank);
    out.extend_from_slice(format!("age: {age_s}\r\n\r\n").as_bytes());
    if !head_only {
        out.extend_from_slice(stored.get(head_end..).unwrap_or_default());
    }
    out
}

fn count(ctx: &Ctx, (fe, be): (usize, Option<usize>), hit: bool) {
    let mut c = ctx.state.counters.borrow_mut();
    if let Some(b) = be {
        if let Some(b) = c.backends.get_mut(b) {
            b.cache_lookups += u64::from(!hit);
            b.cache_hits += u64::from(hit);
        }
    } else if let Some(f) = c.frontends.get_mut(fe) {
        f.cache_lookups += u64::from(!hit);
        f.cache_hits += u64::from(hit);
    }
}

/// Fields never stored: they belong to one connection, or are recomputed (`age`).
const NOT_STORED: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"age",
    b"transfer-encoding",
];

/// Bytes haproxy 2.6 adds to a response's head and body when it checks `max-object-size`
/// (found by bisecting the largest stored body for two head sizes; see the test).
const ENTRY_OVERHEAD: u64 = 139;

/// What `cache-store` decided on a response head: keep its body (up to the limit) and store
/// the whole once it went to the client.
pub struct Pending {
    pub key: CacheKey,
    pub fresh: ringlb_cache::Fresh,
    /// The head to store (status line and fields, without connection fields or `age`).
    pub head: Vec<u8>,
    /// The body length the head announces.
    pub length: u64,
    /// Its `content-encoding` (`identity` without one), for a `Vary: accept-encoding`.
    pub encoding: Vec<u8>,
}

/// Whether the response (`resp`, parsed from `bytes`) may be stored for `key`: 200 with a
/// `Content-Length`, cacheable by HAProxy's rules, within `max-object-size`.
pub fn store_decision(
    ctx: &Ctx,
    key: CacheKey,
    resp: &ResponseHead,
    bytes: &[u8],
    now_s: i64,
) -> Option<Pending> {
    if !key.storable {
        return None;
    }
    let length = match resp.framing() {
        ringlb_http1::BodyFraming::ContentLength(n) => n,
        ringlb_http1::BodyFraming::None => 0,
        _ => return None,
    };
    let spec = ctx.state.topo.caches.get(key.cache)?.spec.clone();
    let headers: Vec<(&[u8], &[u8])> = resp
        .headers()
        .iter()
        .map(|h| (h.name.get(bytes), h.value.get(bytes)))
        .collect();
    // What haproxy 2.6 counts against `max-object-size` beyond the head and body (its
    // entry record), measured: recorded in crates/ringlb/tests/cache_differential.rs.
    let head_len = resp.head_len() as u64 + ENTRY_OVERHEAD;
    let fresh =
        ringlb_cache::store_decision(&spec, resp.status(), &headers, head_len, now_s).ok()?;
    let mut head = Vec::with_capacity(resp.head_len());
    let line_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |i| i + 2);
    head.extend_from_slice(bytes.get(..line_end)?);
    for (n, v) in &headers {
        if NOT_STORED.iter().any(|x| n.eq_ignore_ascii_case(x)) {
            continue;
        }
        head.extend_from_slice(n);
        head.extend_from_slice(b": ");
        head.extend_from_slice(v);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let encoding = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"content-encoding"))
        .map_or(b"identity".to_vec(), |(_, v)| {
            v.trim_ascii().to_ascii_lowercase()
        });
    Some(Pending {
        key,
        fresh,
        head,
        length,
        encoding,
    })
}

/// Stores a response whose body (`body`, all of it) went to the client.
pub fn store(ctx: &Ctx, p: Pending, body: &[u8], now_s: i64) {
    if body.len() as u64 != p.length {
        return;
    }
    let vary: Vec<&[u8]> = p.fresh.vary.iter().map(Vec::as_slice).collect();
    let secondary = ringlb_cache::secondary_key(&vary, &p.key.fields(&p.encoding));
    let mut bytes = p.head;
    bytes.extend_from_slice(body);
    if let Some(store) = ctx.state.caches.borrow_mut().get_mut(p.key.cache) {
        let _ = store.insert(p.key.primary, secondary, bytes, &p.fresh, now_s);
    }
}

/// The client connection with a copy of the response body kept for the store: what is sent
/// after the first `skip` bytes (the head written for this client), up to `limit` bytes.
pub struct Tee<'a, T: Io> {
    pub inner: &'a T,
    skip: std::cell::Cell<usize>,
    limit: usize,
    pub body: std::cell::RefCell<Vec<u8>>,
    pub overflow: std::cell::Cell<bool>,
}

impl<'a, T: Io> Tee<'a, T> {
    pub fn new(inner: &'a T, skip: usize, limit: usize) -> Tee<'a, T> {
        Tee {
            inner,
            skip: std::cell::Cell::new(skip),
            limit,
            body: std::cell::RefCell::default(),
            overflow: std::cell::Cell::new(false),
        }
    }

    fn record(&self, bytes: &[u8]) {
        let skip = self.skip.get().min(bytes.len());
        self.skip.set(self.skip.get() - skip);
        let rest = bytes.get(skip..).unwrap_or_default();
        let mut body = self.body.borrow_mut();
        if body.len() + rest.len() > self.limit {
            self.overflow.set(true);
            return;
        }
        body.extend_from_slice(rest);
    }
}

impl<T: Io> Io for Tee<'_, T> {
    async fn recv(&self) -> std::io::Result<Option<RecvBuf>> {
        self.inner.recv().await
    }

    async fn send_all(&self, buf: SendBuf) -> (std::io::Result<()>, SendBuf) {
        self.record(buf.remaining());
        self.inner.send_all(buf).await
    }

    async fn send_pair(&self, a: SendBuf, b: SendBuf) -> (std::io::Result<()>, SendBuf, SendBuf) {
        self.record(a.remaining());
        self.record(b.remaining());
        self.inner.send_pair(a, b).await
    }

    async fn finish(&self) {
        self.inner.finish().await;
    }
}

/// Parses a stored (or served) response head: tests and the h2 path.
pub fn parse_head(bytes: &[u8], resp: &mut ResponseHead) -> bool {
    matches!(
        parse_response(bytes, &Limits::default(), ringlb_http1::Method::Get, resp),
        Ok(Parsed::Complete { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_requests_match_the_stored_validators() {
        let stored = b"HTTP/1.1 200 OK\r\nETag: W/\"x1\"\r\n\
            last-modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nhi";
        let inm = |v: &'static [u8]| not_modified(stored, &[(b"If-None-Match", v)]);
        assert!(inm(b"\"x1\""));
        assert!(inm(b"\"a\", W/\"x1\""));
        assert!(inm(b"*"));
        assert!(!inm(b"\"x2\""));
        let ims = |v: &'static [u8]| not_modified(stored, &[(b"if-modified-since", v)]);
        assert!(ims(b"Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(!ims(b"Sat, 05 Nov 1994 08:49:37 GMT"));
        assert!(!not_modified(stored, &[]));
    }

    #[test]
    fn a_hit_carries_its_age_and_head_drops_the_body() {
        let stored = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
        assert_eq!(
            hit_bytes(stored, 3, false),
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nage: 3\r\n\r\nhi"
        );
        assert_eq!(
            hit_bytes(stored, 0, true),
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nage: 0\r\n\r\n"
        );
    }
}
