//! Cookie persistence (`cookie NAME insert ...`, server `cookie VALUE`), shared by the HTTP/1
//! session and HTTP/2 streams: which server a request's cookie names, the head without the
//! cookie (`indirect`), and the `set-cookie` value that tells a client its server.

use ringlb_http1::{Method, RequestHead};

use crate::state::AdminState;
use crate::topology::{BackendRt, CookieRt};
use crate::Ctx;

/// The value of the persistence cookie `ck.name` in the request's `Cookie` headers, and with
/// `indirect` the head rendered again without it (the server never sees it).
pub fn persistence_cookie(
    req: &RequestHead,
    src: &[u8],
    ck: &CookieRt,
) -> Option<(String, Option<Vec<u8>>)> {
    let name = ck.name.as_bytes();
    let pair_name = |p: &[u8]| {
        let p = p.trim_ascii();
        p.split(|&c| c == b'=').next().map(<[u8]>::trim_ascii) == Some(name)
    };
    let value = req.headers_named(src, b"cookie").find_map(|h| {
        h.value.get(src).split(|&c| c == b';').find_map(|p| {
            let p = p.trim_ascii();
            let (n, v) = p.split_at(p.iter().position(|&c| c == b'=')?);
            (n.trim_ascii() == name).then(|| String::from_utf8_lossy(&v[1..]).trim().to_string())
        })
    })?;
    if !ck.indirect {
        return Some((value, None));
    }
    // The head without the cookie: other cookies kept in order, a header left empty dropped.
    let mut out = Vec::with_capacity(req.head_len());
    let line_end = src.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    out.extend_from_slice(src.get(..line_end + 2).unwrap_or_default());
    for h in req.headers() {
        let (n, v) = (h.name.get(src), h.value.get(src));
        if n.eq_ignore_ascii_case(b"cookie") {
            let kept: Vec<&[u8]> = v
                .split(|&c| c == b';')
                .map(<[u8]>::trim_ascii)
                .filter(|p| !p.is_empty() && !pair_name(p))
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
    Some((value, Some(out)))
}

/// The server of backend `be` whose `cookie` is `value`, if it may take the request: a drained
/// server keeps its persistent clients; one in maintenance or down does not.
pub fn named_server(ctx: &Ctx, be_idx: usize, be: &BackendRt, value: &str) -> Option<usize> {
    be.servers
        .iter()
        .position(|s| s.cookie.as_deref() == Some(value))
        .filter(|&s| {
            ctx.state
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
    if persisted == Some(server) || (ck.postonly && method != Method::Post) {
        return None;
    }
    let value = be.servers.get(server)?.cookie.as_ref()?;
    Some(format!("{}={value}{}", ck.name, ck.attributes).into_bytes())
}
