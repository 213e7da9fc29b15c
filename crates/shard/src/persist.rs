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

/// The server id of the persistence cookie `ck.name` in the request's `Cookie` headers, and
/// the head rendered again when the server must not see the cookie as the client sent it
/// (`insert indirect` removes it, `prefix` removes the `SRVID~` prefix).
pub fn persistence_cookie(
    req: &RequestHead,
    src: &[u8],
    ck: &CookieRt,
) -> Option<(String, Option<Vec<u8>>)> {
    let name = ck.name.as_bytes();
    let value = req.headers_named(src, b"cookie").find_map(|h| {
        h.value.get(src).split(|&c| c == b';').find_map(|p| {
            let p = p.trim_ascii();
            let (n, v) = p.split_at(p.iter().position(|&c| c == b'=')?);
            (n.trim_ascii() == name).then(|| v.get(1..).unwrap_or_default().trim_ascii())
        })
    })?;
    let id = String::from_utf8_lossy(server_id(ck.mode, value)).into_owned();
    let strip = match ck.mode {
        CookieMode::Insert if ck.indirect => Strip::Remove,
        CookieMode::Prefix if value.contains(&PREFIX_DELIM) => Strip::Unprefix,
        _ => Strip::Keep,
    };
    if matches!(strip, Strip::Keep) {
        return Some((id, None));
    }
    Some((id, Some(rewrite_cookie_headers(req, src, name, &strip))))
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
/// client's cookie already named it (or `postonly` and the request was no POST).
pub fn set_cookie(
    be: &BackendRt,
    server: usize,
    persisted: Option<usize>,
    method: Method,
) -> Option<Vec<u8>> {
    let ck = be.cookie.as_ref()?;
    if ck.mode != CookieMode::Insert
        || persisted == Some(server)
        || (ck.postonly && method != Method::Post)
    {
        return None;
    }
    let value = be.servers.get(server)?.cookie.as_ref()?;
    Some(format!("{}={value}{}", ck.name, ck.attributes).into_bytes())
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
        }
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
