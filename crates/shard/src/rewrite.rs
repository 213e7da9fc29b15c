//! What the proxy changes in forwarded heads, decided from the config (`option forwardfor`,
//! `option http-keep-alive|http-server-close|httpclose`). The bytes themselves are written by
//! `ringlb-http1` (`write_request_head`/`write_response_head`), which follows HAProxy 2.6.

use std::net::IpAddr;

use ringlb_config::model::{HttpConnMode, IpNet};
use ringlb_http1::{ConnMode, ForwardedFor, RequestEdits, ResponseEdits, Version};

use crate::topology::{BackendRt, FrontendRt, HdrNamePolicy};

pub fn conn_mode(mode: HttpConnMode) -> ConnMode {
    match mode {
        HttpConnMode::KeepAlive => ConnMode::KeepAlive,
        HttpConnMode::ServerClose => ConnMode::ServerClose,
        HttpConnMode::Close => ConnMode::Close,
    }
}

/// Request edits for one client: `client_ip_text` is the client address formatted once per
/// connection (no per-request formatting); `dst_text` the destination address as text when
/// `option originalto` applies ([`original_to_text`]).
pub fn request_edits<'a>(
    fe: &'a FrontendRt,
    be: &'a BackendRt,
    client_ip: Option<IpAddr>,
    client_ip_text: &'a [u8],
    dst_text: Option<&'a str>,
    mode: HttpConnMode,
    server_must_close: bool,
) -> RequestEdits<'a> {
    let forwarded_for = match (&fe.forwardfor, client_ip) {
        (Some(ff), Some(ip)) if !ff.except.is_some_and(|net| in_net(ip, &net)) => {
            Some(ForwardedFor {
                header: ff.header.as_bytes(),
                client_ip: client_ip_text,
                if_none: ff.if_none,
            })
        }
        _ => None,
    };
    RequestEdits {
        // `option http-pretend-keepalive` hides the mode's close, not an engine reason's.
        close_server: (conn_mode(mode).closes_server_side() && !be.pretend_keepalive)
            || server_must_close,
        forwarded_for,
        original_to: be
            .originalto
            .as_ref()
            .or(fe.originalto.as_ref())
            .zip(dst_text)
            .map(|(ot, ip)| (ot.header.as_bytes(), ip.as_bytes())),
    }
}

/// What `option http-restrict-req-hdr-names` made of a request head.
pub enum Restricted {
    Unchanged,
    /// The head without the offending header lines (`delete`).
    Rewritten(Vec<u8>),
    /// 403 (`reject`).
    Reject,
}

/// The frontend's then the backend's `option http-restrict-req-hdr-names` on `head` (the
/// request head as it leaves the rules), as haproxy applies each after its proxy's rules.
/// Costs nothing when both preserve; otherwise one scan of the head.
pub fn restrict_header_names(fe: &FrontendRt, be: &BackendRt, head: &[u8]) -> Restricted {
    let mut current: Option<Vec<u8>> = None;
    for policy in [fe.restrict_hdr_names, be.restrict_hdr_names] {
        let h = current.as_deref().unwrap_or(head);
        match policy {
            HdrNamePolicy::Preserve => {}
            HdrNamePolicy::Delete => {
                if let Some(v) = ringlb_http1::without_unrestricted_names(h) {
                    current = Some(v);
                }
            }
            HdrNamePolicy::Reject => {
                if ringlb_http1::without_unrestricted_names(h).is_some() {
                    return Restricted::Reject;
                }
            }
        }
    }
    current.map_or(Restricted::Unchanged, Restricted::Rewritten)
}

/// The destination address `option originalto` adds (formatted per request, only when the
/// option is set and the address is not excluded by `except`). haproxy 2.6 adds it for IPv4
/// destinations only.
pub fn original_to_text(fe: &FrontendRt, be: &BackendRt, dst: Option<IpAddr>) -> Option<String> {
    let ot = be.originalto.as_ref().or(fe.originalto.as_ref())?;
    match dst? {
        ip @ IpAddr::V4(_) if !ot.except.is_some_and(|net| in_net(ip, &net)) => {
            Some(ip.to_string())
        }
        _ => None,
    }
}

pub fn response_edits(
    request_version: Version,
    keep_client: bool,
    added: &[u8],
) -> ResponseEdits<'_> {
    ResponseEdits {
        close_client: !keep_client,
        request_version,
        added,
    }
}

/// Whether `ip` is inside `net` (`option forwardfor except`).
pub fn in_net(ip: IpAddr, net: &IpNet) -> bool {
    match (ip, net.addr) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = u32::from(net.prefix.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = u32::from(net.prefix.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let net = IpNet {
            addr: "127.0.0.0".parse().unwrap(),
            prefix: 8,
        };
        assert!(in_net("127.1.2.3".parse().unwrap(), &net));
        assert!(!in_net("128.0.0.1".parse().unwrap(), &net));
        assert!(!in_net("::1".parse().unwrap(), &net));
        let all = IpNet {
            addr: "0.0.0.0".parse().unwrap(),
            prefix: 0,
        };
        assert!(in_net("10.0.0.1".parse().unwrap(), &all));
        let v6 = IpNet {
            addr: "::1".parse().unwrap(),
            prefix: 128,
        };
        assert!(in_net("::1".parse().unwrap(), &v6));
        assert!(!in_net("::2".parse().unwrap(), &v6));
    }
}
