//! Address facts the configuration is made of: IP networks in CIDR form (the
//! destination allow and deny lists) and the largest UDP payloads.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const MAX_PAYLOAD_V4: usize = 65_507;
/// Largest UDP payload over IPv6 without jumbograms: 65,535 − 8 (UDP header).
pub const MAX_PAYLOAD_V6: usize = 65_527;

/// An IP network in CIDR form, such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// A string that is not a network in CIDR form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a network in CIDR form (expected e.g. 10.0.0.0/8 or fd00::/8): {0}")]
pub struct ParseNetworkError(String);

impl Network {
    /// A network from an address and a prefix length, `None` if the prefix is too
    /// long. An IPv4-mapped IPv6 network (`::ffff:a.b.c.d/96+n`) is the IPv4
    /// network `a.b.c.d/n`, as [`contains`](Self::contains) compares canonical
    /// addresses; one shorter than /96 is not a network of either family: `None`.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // Keeping the IPv6 prefix on the IPv4 address would make the
                // prefix longer than the address (found by the `decoders` fuzz target).
                Some(v4) => prefix.checked_sub(96).map(|prefix| Network {
                    addr: IpAddr::V4(v4),
                    prefix,
                }),
                None => Some(Network { addr, prefix }),
            },
            IpAddr::V4(_) => Some(Network { addr, prefix }),
        }
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(net.to_bits(), ip.to_bits(), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, prefix: u8, width: u32) -> bool {
    let host_bits = width - u32::from(prefix);
    if host_bits >= width {
        return true;
    }
    (net >> host_bits) == (ip >> host_bits)
}

impl FromStr for Network {
    type Err = ParseNetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseNetworkError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Network::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_match() {
        let n: Network = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains("10.200.0.1".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Network>()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!("fd00::/8"
            .parse::<Network>()
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "x/8", "::/129", "10.0.0.0/+8"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mapped_networks_are_ipv4_networks() {
        let n: Network = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(n, "10.0.0.0/8".parse().unwrap());
        assert_eq!(n.to_string().parse::<Network>(), Ok(n));
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!("::ffff:10.0.0.0/64".parse::<Network>().is_err());
        assert!("::ffff:10.0.0.1"
            .parse::<Network>()
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
    }
}
