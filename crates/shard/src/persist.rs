//! Cookie persistence (`cookie NAME insert|rewrite|prefix ...`, server `cookie VALUE`), shared
//! by the HTTP/1 session and HTTP/2 streams: which server a request's cookie names, the head
//! without the cookie (`indirect`) or its prefix (`prefix`), the `set-cookie` value that tells
//! a client its server (`insert`), and what becomes of the server's own `Set-Cookie` of that
//! name (`rewrite`, `prefix`; deleted in `insert` mode), as HAProxy 2.6's
//! `manage_client_side_cookies` / `manage_server_side_cookies` do.

use ringlb_config::model::CookieMode;
use ringlb_http1::{Method, RequestHead};
use ringlb_rules::proxy::Persist;

use crate::state::AdminState;
use crate::topology::{BackendRt, CookieRt};
use crate::Ctx;

/// HAProxy's `COOKIE_DELIM`: `prefix` mode sends `NAME=SRVID~value` to the client.
const PREFIX_DELIM: u8 = b'~';
/// HAProxy's `COOKIE_DELIM_DATE`: an insert-mode value may carry `SRVID|date`.
const DATE_DELIM: u8 = b'|';

/// HAProxy's `base64tab`, the alphabet of the cookie dates.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// Dates more than a day in the future are ignored (haproxy: lets admins fix clock issues).
const FUTURE_SLACK: i64 = 86_400;

/// The dates an insert-mode cookie carries after the server id (`SRVID|last|first`), in UNIX
/// seconds (0: none), as HAProxy's `cookie_last_date` / `cookie_first_date`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CookieDates {
    pub last: u32,
    pub first: u32,
}

/// HAProxy's `s30tob64`: the low 30 bits of `v`, most significant six first.
pub fn s30_to_b64(v: u32) -> [u8; 5] {
    let mut out = [0u8; 5];
    for (i, o) in out.iter_mut().enumerate() {
        let shift = 24 - 6 * i as u32;
        *o = B64[((v >> shift) & 0x3f) as usize];
    }
    out
}

/// HAProxy's `b64tos30`: the 5-character form back to its value; `None` on a foreign byte.
pub fn b64_to_s30(s: &[u8]) -> Option<u32> {
    let s = s.get(..5)?;
    s.iter().try_fold(0u32, |acc, &c| {
        let d = B64.iter().position(|&b| b == c)? as u32;
        Some((acc << 6) | d)
    })
}

/// The dates after the first `|` of a cookie value (HAProxy reads 5 characters each; a
/// date that does not decode, or decodes to 0, is absent).
fn cookie_dates(value: &[u8]) -> CookieDates {
    let mut d = CookieDates::default();
    let Some(bar) = value.iter().position(|&c| c == DATE_DELIM) else {
        return d;
    };
    let rest = value.get(bar + 1..).unwrap_or_default();
    if let Some(v) = b64_to_s30(rest).filter(|v| *v > 0) {
        d.last = v << 2;
    }
    if let Some(bar2) = rest.iter().position(|&c| c == DATE_DELIM) {
        let second = rest.get(bar2 + 1..).unwrap_or_default();
        if second.len() >= 5 {
            if let Some(v) = b64_to_s30(second).filter(|v| *v > 0) {
                d.first = v << 2;
            }
        }
    }
    d
}

/// Whether `maxlife` (first date too old) or `maxidle` (last date too old) expires a cookie
/// at `now`; dates more than a day ahead expire it too.
fn expired(ck: &CookieRt, d: CookieDates, now: u32) -> bool {
    let since = |t: u32| i64::from(now) - i64::from(t);
    let stale = |t: u32, max: u32| {
        t != 0 && max != 0 && (since(t) > i64::from(max) || -since(t) > FUTURE_SLACK)
    };
    stale(d.first, ck.maxlife) || stale(d.last, ck.maxidle)
}

/// The current UNIX time in seconds (cookie dates).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// What to do with the persistence cookie of a request before forwarding it.
enum Strip {
    Keep,
    /// `insert indirect`: the server never sees the cookie.
    Remove,
    /// `prefix`: the server gets its own value back, without `SRVID~`.
    Unprefix,
}

/// The server id the persistence cookie's `value` carries, as HAProxy's
/// `manage_client_side_cookies` reads it.
fn server_id(mode: CookieMode, value: &[u8]) -> &[u8] {
    let delim = match mode {
        CookieMode::Prefix => PREFIX_DELIM,
        CookieMode::Insert | CookieMode::Rewrite => DATE_DELIM,
    };
    let end = value
        .iter()
        .position(|&c| c == delim)
        .unwrap_or(value.len());
    value.get(..end).unwrap_or_default()
}

/// The server id of the persistence cookie `ck.name` in the request's `Cookie` headers, the
/// head rendered again when the server must not see the cookie as the client sent it
/// (`insert indirect` removes it, `prefix` removes the `SRVID~` prefix), and the cookie's
/// dates. A cookie `maxidle`/`maxlife` expire at `now` names no server (empty id, no dates).
pub fn persistence_cookie(
    req: &RequestHead,
    src: &[u8],
    ck: &CookieRt,
    now: u32,
) -> Option<(String, Option<Vec<u8>>, CookieDates)> {
    let name = ck.name.as_bytes();
    let value = req.headers_named(src, b"cookie").find_map(|h| {
        h.value.get(src).split(|&c| c == b';').find_map(|p| {
            let p = p.trim_ascii();
            let (n, v) = p.split_at(p.iter().position(|&c| c == b'=')?);
            (n.trim_ascii() == name).then(|| v.get(1..).unwrap_or_default().trim_ascii())
        })
    })?;
    let mut dates = match ck.mode {
        CookieMode::Prefix => CookieDates::default(),
        CookieMode::Insert | CookieMode::Rewrite => cookie_dates(value),
    };
    let id = if expired(ck, dates, now) {
        dates = CookieDates::default();
        String::new()
    } else {
        String::from_utf8_lossy(server_id(ck.mode, value)).into_owned()
    };
    let strip = match ck.mode {
        CookieMode::Insert if ck.indirect => Strip::Remove,
        CookieMode::Prefix if value.contains(&PREFIX_DELIM) => Strip::Unprefix,
        _ => Strip::Keep,
    };
    if matches!(strip, Strip::Keep) {
        return Some((id, None, dates));
    }
    Some((
        id,
        Some(rewrite_cookie_headers(req, src, name, &strip)),
        dates,
    ))
}

/// The head with the cookie `name` removed or unprefixed; other cookies kept in order, a
/// header left empty dropped.
fn rewrite_cookie_headers(req: &RequestHead, src: &[u8], name: &[u8], strip: &Strip) -> Vec<u8> {
    let mut out = Vec::with_capacity(req.head_len());
    let line_end = src.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    out.extend_from_slice(src.get(..line_end + 2).unwrap_or_default());
    for h in req.headers() {
        let (n, v) = (h.name.get(src), h.value.get(src));
        if n.eq_ignore_ascii_case(b"cookie") {
            let kept: Vec<Vec<u8>> = v
                .split(|&c| c == b';')
                .map(<[u8]>::trim_ascii)
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let eq = p.iter().position(|&c| c == b'=');
                    let pname = eq
                        .map_or(p, |e| p.get(..e).unwrap_or_default())
                        .trim_ascii();
                    if pname != name {
                        return Some(p.to_vec());
                    }
                    match strip {
                        Strip::Remove => None,
                        Strip::Keep => Some(p.to_vec()),
                        Strip::Unprefix => {
                            let d = p.iter().position(|&c| c == PREFIX_DELIM);
                            Some(match (eq, d) {
                                (Some(e), Some(d)) if d > e => [
                                    p.get(..=e).unwrap_or_default(),
                                    p.get(d + 1..).unwrap_or_default(),
                                ]
                                .concat(),
                                _ => p.to_vec(),
                            })
                        }
                    }
                })
                .collect();
            if kept.is_empty() {
                continue;
            }
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&kept.join(&b"; "[..]));
        } else {
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The server of backend `be` whose `cookie` is `value`, if it may take the request: a drained
/// server keeps its persistent clients; one in maintenance or down does not, unless `option
/// persist` (HAProxy then tries it anyway; `option redispatch` saves a failed attempt). An
/// empty value names no server.
/// `choice` carries what `force-persist` / `ignore-persist` decided: ignored, the cookie names
/// no server; forced, it may name a down server or one in maintenance.
pub fn named_server(
    ctx: &Ctx,
    be_idx: usize,
    be: &BackendRt,
    value: &str,
    choice: Option<Persist>,
) -> Option<usize> {
    let persist = be.cookie.as_ref().is_some_and(|c| c.persist) || choice == Some(Persist::Force);
    if value.is_empty() || choice == Some(Persist::Ignore) {
        return None;
    }
    be.servers
        .iter()
        .position(|s| s.cookie.as_deref() == Some(value))
        .filter(|&s| {
            persist
                || ctx
                    .state
                    .server(be_idx, s)
                    .is_some_and(|st| st.up.get() && st.admin.get() != AdminState::Maint)
        })
}

/// The `set-cookie` value (`NAME=value; path=/...`) for a response from `server`, unless the
/// client's cookie already named it (or `postonly` and the request was no POST). With
/// `maxidle`/`maxlife` the value carries HAProxy's dates (`SRVID|last|first`, 4-second
/// units): a cookie whose last date is behind `now` is refreshed, a first date is added or
/// dropped to match `maxlife`, as haproxy 2.6's `http_process_res_common` does.
pub fn set_cookie(
    be: &BackendRt,
    server: usize,
    persisted: Option<usize>,
    method: Method,
    dates: CookieDates,
    now: u32,
) -> Option<Vec<u8>> {
    let ck = be.cookie.as_ref()?;
    let refresh = ((ck.maxidle != 0 || dates.last != 0)
        && (dates.last == 0 || i64::from(dates.last) < i64::from(now)))
        || (ck.maxlife != 0 && dates.first == 0)
        || (ck.maxlife == 0 && dates.first != 0);
    if ck.mode != CookieMode::Insert
        || (persisted == Some(server) && !refresh)
        || (ck.postonly && method != Method::Post)
    {
        return None;
    }
    let value = be.servers.get(server)?.cookie.as_ref()?;
    let mut out = format!("{}={value}", ck.name).into_bytes();
    if ck.maxidle != 0 || ck.maxlife != 0 {
        let stamp = now.saturating_add(3) >> 2;
        out.push(DATE_DELIM);
        out.extend_from_slice(&s30_to_b64(stamp));
        if ck.maxlife != 0 {
            let first = if dates.first != 0 {
                dates.first >> 2
            } else {
                stamp
            };
            out.push(DATE_DELIM);
            out.extend_from_slice(&s30_to_b64(first));
        }
    }
    out.extend_from_slice(ck.attributes.as_bytes());
    Some(out)
}

/// What becomes of one `Set-Cookie` value a server sent.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerCookie {
    Keep,
    Delete,
    Replace(Vec<u8>),
}

/// HAProxy's treatment of a server's `Set-Cookie: NAME=value...` for the persistence cookie:
/// `preserve` keeps it; `insert` mode (the proxy sets its own) or a client that came with a
/// valid cookie under `indirect` deletes it; `rewrite` replaces the value with the server's
/// cookie; `prefix` prepends `SRVID~`. Other cookies and attributes are untouched.
pub fn server_cookie(
    ck: &CookieRt,
    srv_cookie: Option<&str>,
    direct: bool,
    value: &[u8],
) -> ServerCookie {
    let v = value.trim_ascii_start();
    let Some(eq) = v.iter().position(|&c| c == b'=') else {
        return ServerCookie::Keep;
    };
    if v.get(..eq).map(<[u8]>::trim_ascii) != Some(ck.name.as_bytes()) || ck.preserve {
        return ServerCookie::Keep;
    }
    if ck.mode == CookieMode::Insert || (direct && ck.indirect) {
        return ServerCookie::Delete;
    }
    let Some(id) = srv_cookie else {
        return ServerCookie::Keep;
    };
    let rest = v.get(eq + 1..).unwrap_or_default();
    let end = rest.iter().position(|&c| c == b';').unwrap_or(rest.len());
    let (old, attrs) = rest.split_at(end);
    let mut out = Vec::with_capacity(v.len() + id.len() + 1);
    out.extend_from_slice(v.get(..=eq).unwrap_or_default());
    out.extend_from_slice(id.as_bytes());
    if ck.mode == CookieMode::Prefix {
        out.push(PREFIX_DELIM);
        out.extend_from_slice(old.trim_ascii());
    }
    out.extend_from_slice(attrs);
    ServerCookie::Replace(out)
}

/// The response head (`src`, a complete HTTP/1 head) with the server's persistence
/// `Set-Cookie` lines treated by [`server_cookie`]; `None` when nothing changes (the common
/// case, found without allocating: no such line).
pub fn server_cookies(
    be: &BackendRt,
    server: usize,
    persisted: Option<usize>,
    src: &[u8],
) -> Option<Vec<u8>> {
    let ck = be.cookie.as_ref()?;
    let srv_cookie = be.servers.get(server).and_then(|s| s.cookie.as_deref());
    let edit = |line: &[u8]| -> Option<(usize, ServerCookie)> {
        let colon = line.iter().position(|&c| c == b':')?;
        if !line.get(..colon)?.eq_ignore_ascii_case(b"set-cookie") {
            return None;
        }
        let value = line.get(colon + 1..)?.trim_ascii();
        Some((
            colon,
            server_cookie(ck, srv_cookie, persisted.is_some(), value),
        ))
    };
    let lines = || src.split_inclusive(|&c| c == b'\n');
    if !lines().any(|l| edit(l).is_some_and(|(_, e)| e != ServerCookie::Keep)) {
        return None;
    }
    let mut o = Vec::with_capacity(src.len() + 32);
    for line in lines() {
        match edit(line) {
            Some((_, ServerCookie::Delete)) => {}
            Some((colon, ServerCookie::Replace(v))) => {
                o.extend_from_slice(line.get(..colon).unwrap_or_default());
                o.extend_from_slice(b": ");
                o.extend_from_slice(&v);
                o.extend_from_slice(b"\r\n");
            }
            _ => o.extend_from_slice(line),
        }
    }
    Some(o)
}

/// The server's own persistence `Set-Cookie` values, treated as on HTTP/1
/// ([`server_cookie`]).
pub fn server_cookies_h2(
    be: &BackendRt,
    server: usize,
    persisted: Option<usize>,
    headers: &mut http::HeaderMap,
) {
    let Some(ck) = &be.cookie else { return };
    let srv_cookie = be.servers.get(server).and_then(|s| s.cookie.as_deref());
    let edit =
        |v: &http::HeaderValue| server_cookie(ck, srv_cookie, persisted.is_some(), v.as_bytes());
    let values = headers.get_all(http::header::SET_COOKIE);
    if values.iter().all(|v| edit(v) == ServerCookie::Keep) {
        return;
    }
    let kept: Vec<http::HeaderValue> = values
        .iter()
        .filter_map(|v| match edit(v) {
            ServerCookie::Keep => Some(v.clone()),
            ServerCookie::Delete => None,
            ServerCookie::Replace(b) => http::HeaderValue::from_bytes(&b).ok(),
        })
        .collect();
    headers.remove(http::header::SET_COOKIE);
    for v in kept {
        headers.append(http::header::SET_COOKIE, v);
    }
}

/// `persist rdp-cookie[(name)]`: the server whose address the client's RDP cookie carries
/// (`msts=<ip>.<port>.<reserved>`, as Microsoft's session broker writes it), if it may take
/// the connection (up and not in maintenance, or anyway with `option persist`), as HAProxy's
/// `tcp_persist_rdp_cookie` does.
/// `force-persist` / `ignore-persist` apply as to cookies.
pub fn rdp_server(
    ctx: &Ctx,
    be_idx: usize,
    be: &BackendRt,
    payload: &[u8],
    choice: Option<Persist>,
) -> Option<usize> {
    if choice == Some(Persist::Ignore) {
        return None;
    }
    let force = choice == Some(Persist::Force);
    let name = be.persist_rdp_cookie.as_deref()?;
    let value = ringlb_rules::rdp::rdp_cookie(payload, Some(name.as_bytes()))?;
    let target = std::net::SocketAddr::V4(rdp_address(value)?);
    be.servers
        .iter()
        .position(|s| s.addr == target)
        .filter(|&s| {
            be.option_persist
                || force
                || ctx
                    .state
                    .server(be_idx, s)
                    .is_some_and(|st| st.up.get() && st.admin.get() != AdminState::Maint)
        })
}

/// `<ip>.<port>.` of an RDP routing cookie: the IPv4 address and the port as the integers
/// their network-order bytes make on a little-endian host (HAProxy compares them with
/// `sin_addr.s_addr` and `htons(port)` on x86): `3640174784.15629.0000` is 192.168.248.216:3389.
pub fn rdp_address(v: &[u8]) -> Option<std::net::SocketAddrV4> {
    let mut parts = v.splitn(3, |&c| c == b'.');
    let num = |p: &[u8]| -> Option<u64> {
        if p.is_empty() || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(p)
            .ok()?
            .parse::<u64>()
            .ok()
            .or(Some(u64::MAX))
    };
    let addr = num(parts.next()?)? as u32;
    let port = num(parts.next()?)? as u16;
    parts.next()?; // the reserved part after the second dot must be there
    let ip = std::net::Ipv4Addr::from(addr.to_le_bytes());
    Some(std::net::SocketAddrV4::new(ip, port.swap_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(mode: CookieMode, indirect: bool, preserve: bool) -> CookieRt {
        CookieRt {
            name: "JSESSIONID".into(),
            mode,
            preserve,
            persist: false,
            indirect,
            postonly: false,
            attributes: String::new(),
            maxidle: 0,
            maxlife: 0,
        }
    }

    /// HAProxy's encoding: 30 bits, six at a time, most significant first.
    #[test]
    fn dates_encode_as_haproxy() {
        assert_eq!(&s30_to_b64(0), b"AAAAA");
        assert_eq!(&s30_to_b64(1), b"AAAAB");
        assert_eq!(&s30_to_b64(64), b"AAABA");
        assert_eq!(&s30_to_b64((1 << 30) - 1), b"/////");
        for v in [1u32, 63, 4096, 441_000_000, (1 << 30) - 1] {
            assert_eq!(b64_to_s30(&s30_to_b64(v)), Some(v));
        }
        assert_eq!(b64_to_s30(b"AA-AA"), None);
        assert_eq!(b64_to_s30(b"AAAA"), None);
    }

    #[test]
    fn maxidle_and_maxlife_expire_cookies() {
        let now = 1_700_000_000u32;
        let mut c = ck(CookieMode::Insert, false, false);
        c.maxidle = 30;
        c.maxlife = 3600;
        let date = |t: u32| String::from_utf8(s30_to_b64(t >> 2).to_vec()).unwrap();
        let v = format!("s1|{}|{}", date(now - 20), date(now - 100));
        let d = cookie_dates(v.as_bytes());
        assert_eq!(
            d,
            CookieDates {
                last: (now - 20) & !3,
                first: (now - 100) & !3
            }
        );
        assert!(!expired(&c, d, now));
        // Idle for more than 30s.
        let d = cookie_dates(format!("s1|{}|{}", date(now - 40), date(now - 100)).as_bytes());
        assert!(expired(&c, d, now));
        // Alive for more than an hour, however recent the last visit.
        let d = cookie_dates(format!("s1|{}|{}", date(now), date(now - 4000)).as_bytes());
        assert!(expired(&c, d, now));
        // More than a day in the future: ignored too.
        let d = cookie_dates(format!("s1|{}", date(now + 90_000)).as_bytes());
        assert!(expired(&c, d, now));
        // No date: accepted (and refreshed by the response).
        assert!(!expired(&c, cookie_dates(b"s1"), now));
        // Without maxidle/maxlife dates never expire.
        let plain = ck(CookieMode::Insert, false, false);
        let d = cookie_dates(format!("s1|{}", date(now - 10_000)).as_bytes());
        assert!(!expired(&plain, d, now));
    }

    #[test]
    fn rdp_addresses_as_microsoft_writes_them() {
        assert_eq!(
            rdp_address(b"3640174784.15629.0000"),
            Some("192.168.248.216:3389".parse().unwrap())
        );
        assert_eq!(
            rdp_address(b"16777343.20480.0000"),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(rdp_address(b"3640174784.15629"), None, "no reserved part");
        assert_eq!(rdp_address(b"x.15629.0000"), None);
    }

    #[test]
    fn server_ids_per_mode() {
        assert_eq!(server_id(CookieMode::Prefix, b"s1~abc"), b"s1");
        assert_eq!(server_id(CookieMode::Prefix, b"s1"), b"s1");
        assert_eq!(server_id(CookieMode::Prefix, b"~abc"), b"");
        assert_eq!(server_id(CookieMode::Rewrite, b"s1~abc"), b"s1~abc");
        assert_eq!(server_id(CookieMode::Insert, b"s1|date"), b"s1");
    }

    #[test]
    fn server_set_cookie_per_mode() {
        let v = b"JSESSIONID=abc123; Path=/; HttpOnly";
        let rw = ck(CookieMode::Rewrite, false, false);
        assert_eq!(
            server_cookie(&rw, Some("s1"), false, v),
            ServerCookie::Replace(b"JSESSIONID=s1; Path=/; HttpOnly".to_vec())
        );
        let pfx = ck(CookieMode::Prefix, false, false);
        assert_eq!(
            server_cookie(&pfx, Some("s1"), false, v),
            ServerCookie::Replace(b"JSESSIONID=s1~abc123; Path=/; HttpOnly".to_vec())
        );
        assert_eq!(server_cookie(&pfx, None, false, v), ServerCookie::Keep);
        assert_eq!(
            server_cookie(&pfx, Some("s1"), false, b"OTHER=1"),
            ServerCookie::Keep
        );
        let ins = ck(CookieMode::Insert, false, false);
        assert_eq!(
            server_cookie(&ins, Some("s1"), false, v),
            ServerCookie::Delete
        );
        let kept = ck(CookieMode::Insert, false, true);
        assert_eq!(
            server_cookie(&kept, Some("s1"), false, v),
            ServerCookie::Keep
        );
        let ind = ck(CookieMode::Rewrite, true, false);
        assert_eq!(
            server_cookie(&ind, Some("s1"), true, v),
            ServerCookie::Delete
        );
    }
}
