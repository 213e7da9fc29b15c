//! `/etc/resolv.conf`'s nameservers (`parse-resolv-conf`, and the `default` resolvers
//! section haproxy creates when the configuration has none of that name).
//!
//! Owns: [`resolv_conf_nameservers`].

use std::net::{IpAddr, SocketAddr};

/// The `nameserver` lines of a resolv.conf text, in order, as (name, address on port 53).
/// haproxy names each after the address as written.
pub fn resolv_conf_nameservers(text: &str) -> Vec<(String, SocketAddr)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next()? != "nameserver" {
                return None;
            }
            let a = w.next()?;
            // A scoped IPv6 address (`fe80::1%eth0`) cannot be reached by its text alone.
            let ip: IpAddr = a.parse().ok()?;
            Some((a.to_string(), SocketAddr::new(ip, 53)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameserver_lines() {
        let text = "# generated\nsearch example.com\nnameserver 10.255.255.53\n\
                    nameserver   2001:db8::53 \noptions ndots:2\nnameserver fe80::1%eth0\nnameserver\n";
        let ns = resolv_conf_nameservers(text);
        assert_eq!(
            ns,
            vec![
                (
                    "10.255.255.53".to_string(),
                    "10.255.255.53:53".parse().unwrap()
                ),
                (
                    "2001:db8::53".to_string(),
                    "[2001:db8::53]:53".parse().unwrap()
                ),
            ]
        );
    }
}
