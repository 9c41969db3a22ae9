//! Per-operation errors of the engine: domain enums, one variant per refusal.
//!
//! They say what went wrong and nothing about HTTP: the API codec maps each
//! of them to its wire code and status, in one table
//! ([`crate::api::ErrorCode`], [`crate::api::ApiError`]).

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::id::SubscriberId;

/// Why the runtime could not open a socket. An input, reported with
/// [`crate::Engine::handle_socket_failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// `EADDRINUSE`.
    #[error("address in use")]
    AddrInUse,
    /// `EACCES`/`EPERM`, e.g. a privileged port.
    #[error("permission denied")]
    PermissionDenied,
    /// `EMFILE`/`ENFILE`/`ENOMEM`/`ENOBUFS`.
    #[error("out of file descriptors")]
    OutOfDescriptors,
    /// `EADDRNOTAVAIL`: the address is not one of this host's.
    #[error("address not available")]
    AddrNotAvailable,
    /// Anything else.
    #[error("{0}")]
    Other(io::ErrorKind),
}

// Linux, macOS and the BSDs agree on these numbers.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;
const ENOMEM: i32 = 12;
const ENOBUFS_LINUX: i32 = 105;
const ENOBUFS_BSD: i32 = 55;

impl OpenError {
    /// Classifies an error from `bind(2)`. Pure: it only looks at the value.
    pub fn from_io(err: &io::Error) -> Self {
        match err.raw_os_error() {
            Some(EMFILE | ENFILE | ENOMEM) => return OpenError::OutOfDescriptors,
            Some(ENOBUFS_LINUX | ENOBUFS_BSD) if cfg!(unix) => return OpenError::OutOfDescriptors,
            _ => {}
        }
        match err.kind() {
            io::ErrorKind::AddrInUse => OpenError::AddrInUse,
            io::ErrorKind::PermissionDenied => OpenError::PermissionDenied,
            io::ErrorKind::AddrNotAvailable => OpenError::AddrNotAvailable,
            io::ErrorKind::OutOfMemory => OpenError::OutOfDescriptors,
            kind => OpenError::Other(kind),
        }
    }
}

/// Why the runtime could not transmit a datagram. An input, reported with
/// [`crate::Engine::handle_transmitted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransmitError {
    /// `ECONNREFUSED`: an earlier ICMP port-unreachable surfaced on this socket.
    #[error("connection refused (ICMP port unreachable)")]
    ConnectionRefused,
    /// `EHOSTUNREACH`: an ICMP host-unreachable (or a failed neighbour lookup).
    #[error("host unreachable")]
    Unreachable,
    /// `ENETUNREACH`: this host has no route to the destination. Local: no
    /// ICMP arrived, so it is not counted as an ICMP error.
    #[error("no route to the destination")]
    NoRoute,
    /// `ENOBUFS`/`EAGAIN`: the socket's send buffer stayed full.
    #[error("no buffer space")]
    NoBuffers,
    /// `EACCES`/`EPERM`: the kernel or a firewall refused.
    #[error("permission denied")]
    PermissionDenied,
    /// Anything else.
    #[error("{0}")]
    Other(io::ErrorKind),
}

impl TransmitError {
    /// Classifies an error from `sendto(2)`. Pure: it only looks at the value.
    pub fn from_io(err: &io::Error) -> Self {
        if matches!(err.raw_os_error(), Some(ENOBUFS_LINUX | ENOBUFS_BSD)) && cfg!(unix) {
            return TransmitError::NoBuffers;
        }
        match err.kind() {
            io::ErrorKind::ConnectionRefused => TransmitError::ConnectionRefused,
            io::ErrorKind::HostUnreachable => TransmitError::Unreachable,
            io::ErrorKind::NetworkUnreachable => TransmitError::NoRoute,
            io::ErrorKind::WouldBlock => TransmitError::NoBuffers,
            io::ErrorKind::PermissionDenied => TransmitError::PermissionDenied,
            kind => TransmitError::Other(kind),
        }
    }

    /// Whether this is an ICMP error the kernel surfaced (counted per binding).
    pub fn is_icmp(self) -> bool {
        matches!(
            self,
            TransmitError::ConnectionRefused | TransmitError::Unreachable
        )
    }
}

/// Why a bind was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// A non-loopback bind address without `allow_remote: true`.
    #[error("binding to non-loopback address {0} requires allow_remote: true")]
    RemoteBindNotRequested(IpAddr),
    /// `allow_remote: true`, but the server does not allow remote bindings.
    #[error("this server does not allow remote bindings (start it with --allow-remote)")]
    RemoteDisabled,
    /// The address can never be bound by a client (multicast, broadcast).
    #[error("cannot bind to {0}: not a unicast address")]
    NotUnicast(IpAddr),
    /// The port is outside the configured range.
    #[error("port {port} is outside the allowed range {min}-{max}")]
    PortNotAllowed {
        /// Requested port.
        port: u16,
        /// Lowest allowed port.
        min: u16,
        /// Highest allowed port.
        max: u16,
    },
    /// The server holds `max` bindings already.
    #[error("the server holds its maximum of {max} bindings")]
    TooManyBindings {
        /// The configured maximum.
        max: usize,
    },
    /// The port is in use.
    #[error("address {0} is already in use")]
    AddrInUse(SocketAddr),
    /// The operating system refused the bind.
    #[error("permission denied binding {0}")]
    PermissionDenied(SocketAddr),
    /// The address is not one of this host's.
    #[error("address {0} is not available on this host")]
    AddrNotAvailable(SocketAddr),
    /// Out of file descriptors or memory.
    #[error("out of file descriptors")]
    OutOfDescriptors,
    /// Another operating-system error.
    #[error("could not bind {addr}: {kind}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        kind: io::ErrorKind,
    },
    /// The engine is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The request id is already in flight.
    #[error("request id is already in flight")]
    DuplicateRequest,
}

/// Why a send was refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No live binding has this id.
    #[error("binding not found")]
    NotFound,
    /// `0.0.0.0` or `::`.
    #[error("destination {0} is unspecified")]
    UnspecifiedDestination(SocketAddr),
    /// A multicast group.
    #[error("destination {0} is a multicast address")]
    MulticastDestination(SocketAddr),
    /// `255.255.255.255` (or a configured directed broadcast).
    #[error("destination {0} is a broadcast address")]
    BroadcastDestination(SocketAddr),
    /// Port 0 cannot be sent to.
    #[error("destination {0} has port 0")]
    ZeroPort(SocketAddr),
    /// A non-loopback destination from a binding without `allow_remote`.
    #[error("non-loopback destination {0} requires a binding created with allow_remote: true")]
    RemoteNotAllowed(SocketAddr),
    /// Outside the allow list or inside the deny list.
    #[error("destination {0} is denied by the server's policy")]
    Denied(SocketAddr),
    /// An IPv6 destination from an IPv4 socket, or the other way round.
    #[error("destination {dest} does not match the binding's address family ({local})")]
    FamilyMismatch {
        /// The destination.
        dest: SocketAddr,
        /// The binding's local address.
        local: SocketAddr,
    },
    /// Larger than UDP (or the configured maximum) allows.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The limit for this destination.
        max: usize,
    },
    /// The runtime reported a failure.
    #[error("transmit failed: {0:?}")]
    Transmit(TransmitError),
    /// The request id is already in flight.
    #[error("request id is already in flight")]
    DuplicateRequest,
}

/// Why a command on an existing binding (unbind, heartbeat) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// No live binding has this id (never bound, unbound, or expired).
    #[error("binding not found")]
    NotFound,
}

/// Why a subscribe failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// No live binding has this id.
    #[error("binding not found")]
    NotFound,
    /// The ticket is unknown, already used, expired, or for another binding.
    #[error("the ticket is unknown, used, expired or for another binding")]
    InvalidTicket,
    /// The binding has its maximum number of subscribers.
    #[error("the binding has its maximum of {max} subscribers")]
    TooManySubscribers {
        /// The configured maximum.
        max: usize,
    },
}

/// Why a stream ticket was not issued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// No live binding has this id.
    #[error("binding not found")]
    NotFound,
    /// The binding has `max` unused tickets already (one per subscriber it may have).
    #[error("the binding has its maximum of {max} unused tickets")]
    TooManyTickets {
        /// The limit (the binding's subscriber limit).
        max: usize,
    },
}

/// Why an unsubscribe failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsubscribeError {
    /// No live subscriber has this id.
    #[error("subscriber {0} not found")]
    NotFound(SubscriberId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_classified() {
        assert_eq!(
            OpenError::from_io(&io::Error::from(io::ErrorKind::AddrInUse)),
            OpenError::AddrInUse
        );
        assert_eq!(
            OpenError::from_io(&io::Error::from_raw_os_error(EMFILE)),
            OpenError::OutOfDescriptors
        );
        assert_eq!(
            TransmitError::from_io(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            TransmitError::ConnectionRefused
        );
        assert!(TransmitError::ConnectionRefused.is_icmp());
    }

    #[test]
    fn a_local_no_route_is_not_an_icmp_error() {
        let no_route = TransmitError::from_io(&io::Error::from(io::ErrorKind::NetworkUnreachable));
        assert_eq!(no_route, TransmitError::NoRoute);
        assert!(!no_route.is_icmp());
    }
}

/// Why a receive on a binding's socket failed. An input, reported with
/// [`crate::Engine::handle_socket_error`]; the binding stays open.
///
/// On a UDP socket a receive fails mostly because an ICMP error for an earlier
/// send came back and the kernel reports it on the next read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// `ECONNREFUSED`: an ICMP port-unreachable for an earlier send.
    #[error("connection refused (ICMP port unreachable)")]
    ConnectionRefused,
    /// `EHOSTUNREACH`/`ENETUNREACH`: an ICMP host- or network-unreachable for an
    /// earlier send (on a receive, unlike a send, these come from the network).
    #[error("host or network unreachable")]
    Unreachable,
    /// Anything else (counted as a receive error).
    #[error("{0}")]
    Other(io::ErrorKind),
}

impl ReceiveError {
    /// Classifies an error from `recvfrom(2)`. Pure: it only looks at the value.
    pub fn from_io(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => ReceiveError::ConnectionRefused,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ReceiveError::Unreachable
            }
            kind => ReceiveError::Other(kind),
        }
    }

    /// Whether this is an ICMP error the kernel surfaced (counted per binding
    /// as `icmp_errors`; any other as `recv_errors`).
    pub fn is_icmp(self) -> bool {
        matches!(
            self,
            ReceiveError::ConnectionRefused | ReceiveError::Unreachable
        )
    }
}

#[cfg(test)]
mod receive_error_tests {
    use super::*;

    #[test]
    fn icmp_errors_on_a_receive_are_told_from_other_failures() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let no_route = io::Error::from(io::ErrorKind::NetworkUnreachable);
        let other = io::Error::from(io::ErrorKind::InvalidInput);
        assert_eq!(
            ReceiveError::from_io(&refused),
            ReceiveError::ConnectionRefused
        );
        assert_eq!(ReceiveError::from_io(&no_route), ReceiveError::Unreachable);
        assert_eq!(
            ReceiveError::from_io(&other),
            ReceiveError::Other(io::ErrorKind::InvalidInput)
        );
        assert!(ReceiveError::from_io(&refused).is_icmp());
        assert!(ReceiveError::from_io(&no_route).is_icmp());
        assert!(!ReceiveError::from_io(&other).is_icmp());
    }
}
