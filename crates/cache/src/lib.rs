//! HAProxy's small-object HTTP cache (`cache` sections, `http-request cache-use`,
//! `http-response cache-store`) as pure logic: which requests may be served from a cache and
//! which responses stored (configuration manual, section 6.1), how long an object stays
//! fresh (`max-age` bounding `s-maxage`, `max-age`, `Expires`), the keys (host + URI, and the
//! `Vary` secondary key for `accept-encoding` / `referer`), the `Age` a hit carries, and a
//! size-bounded store evicting the oldest objects first.
//!
//! ringlb keeps one store per shard (no locks on the request path); HAProxy shares one
//! memory area between its threads. The engine owns the stores and passes the time in.

use std::collections::{BTreeMap, HashMap};

pub mod checkcache;

/// A `cache` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    /// `total-max-size`, in bytes (the section gives megabytes).
    pub total_max_size: u64,
    /// `max-object-size` in bytes (default: a 256th of the total).
    pub max_object_size: u64,
    /// `max-age` in seconds (default 60).
    pub max_age_s: u64,
    /// `process-vary on`.
    pub process_vary: bool,
    /// `max-secondary-entries` (default 10).
    pub max_secondary_entries: usize,
}

impl CacheSpec {
    /// A section with HAProxy's defaults for what it leaves out.
    pub fn new(total_max_mb: u64, max_object_size: Option<u64>) -> CacheSpec {
        let total = total_max_mb.saturating_mul(1024 * 1024);
        CacheSpec {
            total_max_size: total,
            max_object_size: max_object_size.unwrap_or(total / 256),
            max_age_s: 60,
            process_vary: false,
            max_secondary_entries: 10,
        }
    }
}

/// What `cache-use` may do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestUse {
    /// Look it up, and store the response.
    Lookup,
    /// `Cache-Control: no-cache` / `Pragma: no-cache`: not served from the cache, but the
    /// response may refresh it.
    Refresh,
    /// Neither served nor stored: not a GET, HTTP/1.0, or an `Authorization` header.
    Bypass,
}

/// Header values by name (case-insensitive), in order.
fn values<'a>(
    headers: &'a [(&'a [u8], &'a [u8])],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| *v)
}

/// Comma-separated elements of every value of `name`, trimmed.
fn tokens<'a>(
    headers: &'a [(&'a [u8], &'a [u8])],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    values(headers, name).flat_map(|v| v.split(|&c| c == b',').map(trim))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The request rules of section 6.1: GET, HTTP/1.1 or later, no `Authorization`.
pub fn request_use(method: &[u8], http11: bool, headers: &[(&[u8], &[u8])]) -> RequestUse {
    if method != b"GET" || !http11 || values(headers, "authorization").next().is_some() {
        return RequestUse::Bypass;
    }
    let no_cache = tokens(headers, "cache-control")
        .chain(tokens(headers, "pragma"))
        .any(|t| t.eq_ignore_ascii_case(b"no-cache"));
    if no_cache {
        RequestUse::Refresh
    } else {
        RequestUse::Lookup
    }
}

/// The primary key: the `Host` header and the URI (HAProxy hashes the same two).
pub fn primary_key(host: &[u8], uri: &[u8]) -> u64 {
    let h = fnv1a(FNV_OFFSET, host);
    fnv1a(fnv1a(h, &[0]), uri)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The headers `process-vary` knows how to vary on.
const VARY_KNOWN: [&[u8]; 2] = [b"accept-encoding", b"referer"];

/// The secondary key of a request for a response that varies on `vary` (the `Vary`
/// elements): the request's `accept-encoding` (elements sorted, lower-cased, so the same set
/// in another order matches) and `referer` values. 0 when nothing varies.
pub fn secondary_key(vary: &[&[u8]], req_headers: &[(&[u8], &[u8])]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut any = false;
    for name in VARY_KNOWN {
        if !vary.iter().any(|v| v.eq_ignore_ascii_case(name)) {
            continue;
        }
        any = true;
        h = fnv1a(h, name);
        if name == b"accept-encoding" {
            let mut enc: Vec<Vec<u8>> = tokens(req_headers, "accept-encoding")
                .filter(|t| !t.is_empty())
                .map(<[u8]>::to_ascii_lowercase)
                .collect();
            enc.sort();
            for e in enc {
                h = fnv1a(fnv1a(h, &e), b",");
            }
        } else {
            for v in values(req_headers, "referer") {
                h = fnv1a(fnv1a(h, v), b"\n");
            }
        }
    }
    if any {
        h
    } else {
        0
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Not a 200.
    Status,
    /// `Cache-Control: no-store`, `no-cache` or `private`.
    Uncacheable,
    /// `Vary` with `process-vary off`, or on a header the cache does not handle.
    Vary,
    /// Head and `Content-Length` over `max-object-size`.
    TooBig,
    /// No expiration time (`s-maxage`, `max-age`, `Expires`) and no validator (`ETag`,
    /// `Last-Modified`).
    NoExpiry,
    /// Already stale (`Age` at or past its lifetime, or an `Expires` in the past).
    Stale,
}

/// A storable response: how long it stays fresh from now, and the `Age` it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh {
    pub ttl_s: u64,
    pub age_s: u64,
    /// The `Vary` elements (lower-case) the secondary key is built from.
    pub vary: Vec<Vec<u8>>,
}

/// The response rules of section 6.1 and the lifetime: the lowest of `s-maxage` (else
/// `max-age`, else `Expires` − `Date`) and the section's `max-age`; a response with only a
/// validator lives `max-age`. `now_s`: Unix seconds (for `Expires` without `Date`).
pub fn store_decision(
    spec: &CacheSpec,
    status: u16,
    headers: &[(&[u8], &[u8])],
    head_len: u64,
    now_s: i64,
) -> Result<Fresh, NotStored> {
    if status != 200 {
        return Err(NotStored::Status);
    }
    let mut s_maxage = None;
    let mut max_age = None;
    for t in tokens(headers, "cache-control") {
        let (k, v) = match t.iter().position(|&c| c == b'=') {
            Some(i) => (&t[..i], Some(trim(&t[i + 1..]))),
            None => (t, None),
        };
        let k = k.to_ascii_lowercase();
        let num = || {
            v.and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
        };
        match k.as_slice() {
            b"no-store" | b"no-cache" | b"private" => return Err(NotStored::Uncacheable),
            b"s-maxage" => s_maxage = num(),
            b"max-age" => max_age = num(),
            _ => {}
        }
    }
    // A `Set-Cookie` does not keep haproxy 2.6 from storing the response (observed; its
    // `option checkcache` is what guards against that).
    let vary: Vec<Vec<u8>> = tokens(headers, "vary")
        .filter(|t| !t.is_empty())
        .map(<[u8]>::to_ascii_lowercase)
        .collect();
    if !vary.is_empty()
        && (!spec.process_vary || !vary.iter().all(|v| VARY_KNOWN.contains(&v.as_slice())))
    {
        return Err(NotStored::Vary);
    }
    let length = values(headers, "content-length")
        .next()
        .and_then(|v| std::str::from_utf8(trim(v)).ok()?.parse::<u64>().ok());
    if length.is_some_and(|l| l.saturating_add(head_len) > spec.max_object_size) {
        return Err(NotStored::TooBig);
    }
    let date = |name| values(headers, name).next().and_then(parse_http_date);
    let expires = date("expires").map(|e| e - date("date").unwrap_or(now_s));
    let validator = values(headers, "etag").next().is_some()
        || values(headers, "last-modified").next().is_some();
    let lifetime = match (s_maxage.or(max_age), expires) {
        (Some(a), _) => a,
        (None, Some(e)) => u64::try_from(e).map_err(|_| NotStored::Stale)?,
        (None, None) if validator => spec.max_age_s,
        (None, None) => return Err(NotStored::NoExpiry),
    }
    .min(spec.max_age_s);
    let age_s = values(headers, "age")
        .next()
        .and_then(|v| std::str::from_utf8(trim(v)).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    if age_s >= lifetime {
        return Err(NotStored::Stale);
    }
    Ok(Fresh {
        ttl_s: lifetime - age_s,
        age_s,
        vary,
    })
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
pub fn parse_http_date(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (_, rest) = s.split_once(", ")?;
    let mut it = rest.split(' ');
    let day: i64 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let year: i64 = it.next()?.parse().ok()?;
    let hms = it.next()?;
    if it.next()? != "GMT" {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| *x == mon)? as i64 + 1;
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// One stored response.
#[derive(Debug, Clone)]
struct Entry {
    secondary: u64,
    /// The response as it will be sent (head then body), without `Age`.
    bytes: Vec<u8>,
    stored_s: i64,
    expire_s: i64,
    age_s: u64,
    seq: u64,
}

/// A cache hit: the stored response and the `Age` to send with it.
#[derive(Debug, PartialEq, Eq)]
pub struct Hit<'a> {
    pub bytes: &'a [u8],
    pub age_s: u64,
}

/// Why `Store::insert` refused an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    TooBig,
    /// `max-secondary-entries` variants of this URL are already stored.
    TooManyVariants,
}

/// One shard's cache store: objects by primary key (variants by secondary key), bounded by
/// `total-max-size`, the oldest evicted first (HAProxy: "the oldest objects are deleted first
/// when we try to allocate a new one").
#[derive(Debug)]
pub struct Store {
    spec: CacheSpec,
    objects: HashMap<u64, Vec<Entry>>,
    /// Insertion order: seq → primary key.
    order: BTreeMap<u64, u64>,
    used: u64,
    seq: u64,
}

impl Store {
    pub fn new(spec: CacheSpec) -> Store {
        Store {
            spec,
            objects: HashMap::new(),
            order: BTreeMap::new(),
            used: 0,
            seq: 0,
        }
    }

    pub fn spec(&self) -> &CacheSpec {
        &self.spec
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The fresh object for these keys, if any (an expired one is dropped).
    pub fn get(&mut self, primary: u64, secondary: u64, now_s: i64) -> Option<Hit<'_>> {
        let list = self.objects.get(&primary)?;
        let i = list.iter().position(|e| e.secondary == secondary)?;
        let e = list.get(i)?;
        if now_s >= e.expire_s {
            self.remove(primary, i);
            return None;
        }
        let e = self.objects.get(&primary)?.get(i)?;
        let age = e
            .age_s
            .saturating_add(u64::try_from(now_s - e.stored_s).unwrap_or(0));
        Some(Hit {
            bytes: &e.bytes,
            age_s: age,
        })
    }

    /// Stores `bytes` (a complete response) for `fresh.ttl_s` seconds from `now_s`,
    /// replacing the same variant and evicting the oldest objects until it fits.
    pub fn insert(
        &mut self,
        primary: u64,
        secondary: u64,
        bytes: Vec<u8>,
        fresh: &Fresh,
        now_s: i64,
    ) -> Result<(), InsertError> {
        let size = bytes.len() as u64;
        if size > self.spec.max_object_size || size > self.spec.total_max_size {
            return Err(InsertError::TooBig);
        }
        if let Some(i) = self
            .objects
            .get(&primary)
            .and_then(|l| l.iter().position(|e| e.secondary == secondary))
        {
            self.remove(primary, i);
        }
        let variants = self.objects.get(&primary).map_or(0, Vec::len);
        if variants >= self.spec.max_secondary_entries.max(1) {
            return Err(InsertError::TooManyVariants);
        }
        while self.used + size > self.spec.total_max_size {
            let Some((&seq, &key)) = self.order.iter().next() else {
                break;
            };
            match self
                .objects
                .get(&key)
                .and_then(|l| l.iter().position(|e| e.seq == seq))
            {
                Some(i) => self.remove(key, i),
                None => {
                    self.order.remove(&seq);
                }
            }
        }
        self.seq += 1;
        self.order.insert(self.seq, primary);
        self.used += size;
        self.objects.entry(primary).or_default().push(Entry {
            secondary,
            bytes,
            stored_s: now_s,
            expire_s: now_s.saturating_add(i64::try_from(fresh.ttl_s).unwrap_or(i64::MAX)),
            age_s: fresh.age_s,
            seq: self.seq,
        });
        Ok(())
    }

    fn remove(&mut self, primary: u64, i: usize) {
        let Some(list) = self.objects.get_mut(&primary) else {
            return;
        };
        if i < list.len() {
            let e = list.swap_remove(i);
            self.used -= e.bytes.len() as u64;
            self.order.remove(&e.seq);
        }
        if list.is_empty() {
            self.objects.remove(&primary);
        }
    }
}

#[cfg(test)]
mod tests;
