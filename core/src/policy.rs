//! Address policy: which addresses a binding may use and which destinations it may reach.
//!
//! Pure checks over the [`Config`]; nothing here touches the network, so every
//! refusal (including ones for non-loopback addresses) is tested without sending.
//!
//! The checks read the configuration; the values the configuration is made of
//! ([`Network`](crate::net::Network), the UDP payload limits) live in [`crate::net`], so `config`
//! does not import this module back.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::{Config, UNPRIVILEGED_PORTS};
use crate::error::{BindError, SendError};
use crate::net::{MAX_PAYLOAD_V4, MAX_PAYLOAD_V6};

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Checks a bind request. Returns whether the binding may reach remote addresses.
pub(crate) fn check_bind(
    config: &Config,
    addr: SocketAddr,
    allow_remote: bool,
) -> Result<bool, BindError> {
    let ip = addr.ip().to_canonical();
    if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(BindError::NotUnicast(addr.ip()));
    }
    if allow_remote && !config.allow_remote {
        return Err(BindError::RemoteDisabled);
    }
    // The unspecified address listens on every interface: remote by definition.
    if !allow_remote && !is_loopback(ip) {
        return Err(BindError::RemoteBindNotRequested(addr.ip()));
    }
    let range = &config.port_range;
    // Port 0 asks the OS for an ephemeral port. The OS never picks a
    // privileged one, so that is safe when every unprivileged port is allowed;
    // with a narrower range it could fall outside.
    let allowed = match addr.port() {
        0 => range.start() <= UNPRIVILEGED_PORTS.start() && range.end() >= UNPRIVILEGED_PORTS.end(),
        port => range.contains(&port),
    };
    if !allowed {
        return Err(BindError::PortNotAllowed {
            port: addr.port(),
            min: *range.start(),
            max: *range.end(),
        });
    }
    Ok(allow_remote)
}

/// What a bound socket can send to, by the address it is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// An IPv4 socket: IPv4 destinations only.
    V4,
    /// An IPv6 socket bound to an IPv4-mapped address (`::ffff:a.b.c.d`): the
    /// kernel treats it as IPv4, so only mapped destinations reach anything.
    V6Mapped,
    /// An IPv6 socket bound to a native IPv6 address: native IPv6 destinations only.
    V6,
    /// An IPv6 socket bound to `::`: dual-stack, native and mapped destinations.
    V6Any,
}

impl Family {
    fn of_socket(local: SocketAddr) -> Self {
        match local.ip() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(v6) if v6.is_unspecified() => Family::V6Any,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::V6Mapped,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Whether a socket of this family can send to `dest`. A mismatch is the
    /// client's mistake, refused here: the kernel would refuse it with an
    /// error (`EAFNOSUPPORT`, `ENETUNREACH`) that would look like the server's.
    fn reaches(self, dest: SocketAddr) -> bool {
        let mapped = match dest.ip() {
            IpAddr::V4(_) => return self == Family::V4,
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
        };
        match self {
            Family::V4 => false,
            Family::V6Mapped => mapped,
            Family::V6 => !mapped,
            Family::V6Any => true,
        }
    }
}

/// Checks a send: destination rules, address family and payload size.
pub(crate) fn check_send(
    config: &Config,
    allow_remote: bool,
    local: SocketAddr,
    dest: SocketAddr,
    payload_len: usize,
) -> Result<(), SendError> {
    let ip = dest.ip().to_canonical();
    if ip.is_unspecified() {
        return Err(SendError::UnspecifiedDestination(dest));
    }
    if ip.is_multicast() {
        return Err(SendError::MulticastDestination(dest));
    }
    if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(SendError::BroadcastDestination(dest));
    }
    if dest.port() == 0 {
        return Err(SendError::ZeroPort(dest));
    }
    if !allow_remote && !is_loopback(ip) {
        return Err(SendError::RemoteNotAllowed(dest));
    }
    if config.dest_deny.iter().any(|n| n.contains(ip))
        || (!config.dest_allow.is_empty() && !config.dest_allow.iter().any(|n| n.contains(ip)))
    {
        return Err(SendError::Denied(dest));
    }
    if !Family::of_socket(local).reaches(dest) {
        return Err(SendError::FamilyMismatch { dest, local });
    }
    let max = match dest.ip() {
        IpAddr::V4(_) => MAX_PAYLOAD_V4,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => MAX_PAYLOAD_V4,
        IpAddr::V6(_) => MAX_PAYLOAD_V6,
    }
    .min(config.max_payload);
    if payload_len > max {
        return Err(SendError::PayloadTooLarge {
            len: payload_len,
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn local4() -> SocketAddr {
        sa("127.0.0.1:5000")
    }

    #[test]
    fn loopback_bind_is_allowed_by_default() {
        assert_eq!(
            check_bind(&Config::default(), sa("127.0.0.1:0"), false),
            Ok(false)
        );
        assert_eq!(
            check_bind(&Config::default(), sa("[::1]:0"), false),
            Ok(false)
        );
    }

    #[test]
    fn remote_bind_needs_the_binding_and_the_server_to_allow_it() {
        let cfg = Config::default();
        assert_eq!(
            check_bind(&cfg, sa("0.0.0.0:0"), false),
            Err(BindError::RemoteBindNotRequested(sa("0.0.0.0:0").ip()))
        );
        assert_eq!(
            check_bind(&cfg, sa("0.0.0.0:0"), true),
            Err(BindError::RemoteDisabled)
        );
        let cfg = Config {
            allow_remote: true,
            ..Config::default()
        };
        assert_eq!(check_bind(&cfg, sa("0.0.0.0:0"), true), Ok(true));
        assert_eq!(
            check_bind(&cfg, sa("10.1.2.3:0"), false),
            Err(BindError::RemoteBindNotRequested(sa("10.1.2.3:0").ip()))
        );
    }

    #[test]
    fn multicast_and_broadcast_are_never_bound() {
        let cfg = Config {
            allow_remote: true,
            ..Config::default()
        };
        assert!(matches!(
            check_bind(&cfg, sa("224.0.0.1:0"), true),
            Err(BindError::NotUnicast(_))
        ));
        assert!(matches!(
            check_bind(&cfg, sa("255.255.255.255:0"), true),
            Err(BindError::NotUnicast(_))
        ));
    }

    #[test]
    fn privileged_ports_are_refused_by_default_and_port_zero_allowed() {
        let cfg = Config::default();
        for port in [1, 53, 1023] {
            assert_eq!(
                check_bind(&cfg, SocketAddr::from(([127, 0, 0, 1], port)), false),
                Err(BindError::PortNotAllowed {
                    port,
                    min: 1024,
                    max: 65535
                })
            );
        }
        assert_eq!(check_bind(&cfg, sa("127.0.0.1:0"), false), Ok(false));
        assert_eq!(check_bind(&cfg, sa("127.0.0.1:1024"), false), Ok(false));
        let everything = Config {
            port_range: 1..=65535,
            ..Config::default()
        };
        assert_eq!(
            check_bind(&everything, sa("127.0.0.1:53"), false),
            Ok(false)
        );
        assert_eq!(check_bind(&everything, sa("127.0.0.1:0"), false), Ok(false));
    }

    #[test]
    fn port_outside_the_range_is_refused() {
        let cfg = Config {
            port_range: 40_000..=40_010,
            ..Config::default()
        };
        assert_eq!(check_bind(&cfg, sa("127.0.0.1:40005"), false), Ok(false));
        assert_eq!(
            check_bind(&cfg, sa("127.0.0.1:0"), false),
            Err(BindError::PortNotAllowed {
                port: 0,
                min: 40_000,
                max: 40_010
            })
        );
    }

    #[test]
    fn forbidden_destinations_are_refused_even_with_allow_remote() {
        let cfg = Config::default();
        for (dest, want) in [
            (
                "0.0.0.0:9",
                SendError::UnspecifiedDestination(sa("0.0.0.0:9")),
            ),
            (
                "224.0.0.251:5353",
                SendError::MulticastDestination(sa("224.0.0.251:5353")),
            ),
            (
                "255.255.255.255:9",
                SendError::BroadcastDestination(sa("255.255.255.255:9")),
            ),
            ("127.0.0.1:0", SendError::ZeroPort(sa("127.0.0.1:0"))),
        ] {
            assert_eq!(
                check_send(&cfg, true, local4(), sa(dest), 1),
                Err(want),
                "{dest}"
            );
        }
        let local6 = sa("[::]:5000");
        assert_eq!(
            check_send(&cfg, true, local6, sa("[::ffff:224.0.0.1]:9"), 1),
            Err(SendError::MulticastDestination(sa("[::ffff:224.0.0.1]:9")))
        );
        assert_eq!(
            check_send(&cfg, true, local6, sa("[ff02::1]:9"), 1),
            Err(SendError::MulticastDestination(sa("[ff02::1]:9")))
        );
    }

    #[test]
    fn non_loopback_destination_needs_allow_remote() {
        let cfg = Config::default();
        let dest = sa("192.0.2.1:9");
        assert_eq!(
            check_send(&cfg, false, local4(), dest, 1),
            Err(SendError::RemoteNotAllowed(dest))
        );
        assert_eq!(check_send(&cfg, true, local4(), dest, 1), Ok(()));
        // A mapped loopback address is loopback.
        assert_eq!(
            check_send(&cfg, false, sa("[::]:5"), sa("[::ffff:127.0.0.1]:9"), 1),
            Ok(())
        );
    }

    #[test]
    fn allow_and_deny_lists_apply() {
        let cfg = Config {
            dest_allow: vec!["192.0.2.0/24".parse().unwrap()],
            dest_deny: vec!["192.0.2.7".parse().unwrap()],
            ..Config::default()
        };
        assert_eq!(
            check_send(&cfg, true, local4(), sa("192.0.2.1:9"), 1),
            Ok(())
        );
        assert_eq!(
            check_send(&cfg, true, local4(), sa("192.0.2.7:9"), 1),
            Err(SendError::Denied(sa("192.0.2.7:9")))
        );
        assert_eq!(
            check_send(&cfg, true, local4(), sa("198.51.100.1:9"), 1),
            Err(SendError::Denied(sa("198.51.100.1:9")))
        );
    }

    #[test]
    fn payload_limits_follow_the_address_family() {
        let cfg = Config::default();
        assert_eq!(
            check_send(&cfg, false, local4(), sa("127.0.0.1:9"), MAX_PAYLOAD_V4),
            Ok(())
        );
        assert_eq!(
            check_send(&cfg, false, local4(), sa("127.0.0.1:9"), MAX_PAYLOAD_V4 + 1),
            Err(SendError::PayloadTooLarge {
                len: MAX_PAYLOAD_V4 + 1,
                max: MAX_PAYLOAD_V4
            })
        );
        let local6 = sa("[::1]:5000");
        assert_eq!(
            check_send(&cfg, false, local6, sa("[::1]:9"), MAX_PAYLOAD_V6),
            Ok(())
        );
        assert!(check_send(&cfg, false, local6, sa("[::1]:9"), MAX_PAYLOAD_V6 + 1).is_err());
    }

    #[test]
    fn family_mismatch_is_refused() {
        let cfg = Config::default();
        // (binding, destination, reachable): what Linux's sendto(2) accepts.
        for (local, dest, ok) in [
            ("127.0.0.1:5", "[::1]:9", false),
            ("127.0.0.1:5", "[::ffff:127.0.0.1]:9", false),
            ("[::1]:5", "127.0.0.1:9", false),
            // A socket on a mapped address is an IPv4 socket (EAFNOSUPPORT otherwise).
            ("[::ffff:127.0.0.1]:5", "[::1]:9", false),
            ("[::ffff:127.0.0.1]:5", "[::ffff:127.0.0.1]:9", true),
            // A socket on a native IPv6 address cannot reach IPv4 (ENETUNREACH otherwise).
            ("[::1]:5", "[::ffff:127.0.0.1]:9", false),
            ("[::1]:5", "[::1]:9", true),
            // A dual-stack socket reaches both.
            ("[::]:5", "[::1]:9", true),
            ("[::]:5", "[::ffff:127.0.0.1]:9", true),
        ] {
            let outcome = check_send(&cfg, false, sa(local), sa(dest), 1);
            if ok {
                assert_eq!(outcome, Ok(()), "{local} -> {dest}");
            } else {
                assert_eq!(
                    outcome,
                    Err(SendError::FamilyMismatch {
                        dest: sa(dest),
                        local: sa(local)
                    }),
                    "{local} -> {dest}"
                );
            }
        }
    }
}
