//! Which of a name's addresses a server takes (haproxy's `resolv_get_ip_from_response`):
//! `resolve-prefer` family, `resolve-net` networks, the address it already has, and no
//! address another server of the backend with the same name already took (unless
//! `resolve-opts allow-dup-ip`).
//!
//! Owns: [`ServerResolve`], [`pick`], [`Pick`], [`Net`].

use std::net::IpAddr;

/// `resolve-prefer ipv4|ipv6` (haproxy's default: ipv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    V4,
    #[default]
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The query type asked first for this preference.
    pub fn qtype(self) -> u16 {
        match self {
            Family::V4 => crate::msg::TYPE_A,
            Family::V6 => crate::msg::TYPE_AAAA,
        }
    }
}

/// One `resolve-net` network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (all bits).
    pub fn parse(s: &str) -> Option<Net> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            // haproxy also takes a dotted mask for IPv4.
            Some(p) if p.contains('.') => {
                let m: std::net::Ipv4Addr = p.parse().ok()?;
                u8::try_from(u32::from(m).count_ones()).ok()?
            }
            Some(p) => p.parse().ok().filter(|n| *n <= max)?,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// A server's resolution options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerResolve {
    pub prefer: Family,
    /// `resolve-net`.
    pub nets: Vec<Net>,
    /// `resolve-opts allow-dup-ip` (`prevent-dup-ip` sets it back to false).
    pub allow_dup_ip: bool,
    /// `resolve-opts ignore-weight`: only meaningful for SRV records (kept for `show`).
    pub ignore_weight: bool,
}

impl ServerResolve {
    /// Applies a `resolve-opts` value; `Err` names the unknown option.
    pub fn set_opts(&mut self, v: &str) -> Result<(), String> {
        for o in v.split(',') {
            match o {
                "allow-dup-ip" => self.allow_dup_ip = true,
                "prevent-dup-ip" => self.allow_dup_ip = false,
                "ignore-weight" => self.ignore_weight = true,
                _ => return Err(o.to_string()),
            }
        }
        Ok(())
    }
}

/// What a server does with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Its current address is still the best one.
    Keep,
    /// Move to this address.
    Change(IpAddr),
    /// No address it may take (none of the family, or all taken by other servers).
    NoIp,
}

/// Chooses the address for a server from `addrs` (every A and AAAA answer, in order):
/// +8 preferred family, +4 in a `resolve-net` network, +2 not used by another server of
/// the backend (`taken`; without `allow-dup-ip` a taken address is skipped), +1 the current
/// address. The best score wins, the first in answer order on a tie.
pub fn pick(
    opts: &ServerResolve,
    addrs: &[IpAddr],
    current: Option<IpAddr>,
    taken: &dyn Fn(IpAddr) -> bool,
) -> Pick {
    let mut best: Option<(u32, IpAddr)> = None;
    for &ip in addrs {
        let mut score = 0;
        if Family::of(ip) == opts.prefer {
            score += 8;
        }
        if opts.nets.iter().any(|n| n.contains(ip)) {
            score += 4;
        }
        if taken(ip) {
            if !opts.allow_dup_ip {
                continue;
            }
        } else {
            score += 2;
        }
        if Some(ip) == current {
            score += 1;
        }
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, ip));
        }
    }
    match best {
        None => Pick::NoIp,
        Some((_, ip)) if Some(ip) == current => Pick::Keep,
        Some((_, ip)) => Pick::Change(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefers_family_then_network_then_current() {
        let v4 = ServerResolve {
            prefer: Family::V4,
            ..Default::default()
        };
        let answer = [ip("2001:db8::1"), ip("10.0.0.1"), ip("10.0.0.2")];
        let free = |_| false;
        assert_eq!(
            pick(&v4, &answer, None, &free),
            Pick::Change(ip("10.0.0.1"))
        );
        // The current address wins a tie: no flapping between equal answers.
        assert_eq!(pick(&v4, &answer, Some(ip("10.0.0.2")), &free), Pick::Keep);
        // haproxy's default prefers IPv6.
        let dflt = ServerResolve::default();
        assert_eq!(
            pick(&dflt, &answer, None, &free),
            Pick::Change(ip("2001:db8::1"))
        );
        // A preferred network beats the current address.
        let net = ServerResolve {
            prefer: Family::V4,
            nets: vec![Net::parse("10.0.0.2/32").unwrap()],
            ..Default::default()
        };
        assert_eq!(
            pick(&net, &answer, Some(ip("10.0.0.1")), &free),
            Pick::Change(ip("10.0.0.2"))
        );
    }

    #[test]
    fn duplicate_addresses() {
        let opts = ServerResolve {
            prefer: Family::V4,
            ..Default::default()
        };
        let one = [ip("10.0.0.1")];
        let taken = |a| a == ip("10.0.0.1");
        assert_eq!(pick(&opts, &one, None, &taken), Pick::NoIp);
        let mut dup = opts.clone();
        dup.set_opts("allow-dup-ip").unwrap();
        assert_eq!(pick(&dup, &one, None, &taken), Pick::Change(ip("10.0.0.1")));
        // With two answers the free one is taken even when allowed to share.
        let two = [ip("10.0.0.1"), ip("10.0.0.2")];
        assert_eq!(pick(&dup, &two, None, &taken), Pick::Change(ip("10.0.0.2")));
        dup.set_opts("prevent-dup-ip").unwrap();
        assert!(!dup.allow_dup_ip);
        assert_eq!(dup.set_opts("bogus"), Err("bogus".into()));
    }

    #[test]
    fn networks() {
        let n = Net::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(ip("10.200.1.1")) && !n.contains(ip("11.0.0.1")));
        assert!(!n.contains(ip("::1")));
        let m = Net::parse("192.168.0.0/255.255.0.0").unwrap();
        assert_eq!(m.prefix, 16);
        assert!(Net::parse("2001:db8::/32")
            .unwrap()
            .contains(ip("2001:db8:1::5")));
        assert!(Net::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert_eq!(Net::parse("10.0.0.0/33"), None);
        assert_eq!(Net::parse("nope"), None);
    }
}
