//! Per-operation errors and the one table that maps them to HTTP.
//!
//! Every refusal is its own variant; [`ErrorCode`] names it on the wire
//! (`{"error": "<code>", "message": "<Display>"}`) and gives its status.

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::id::SubscriberId;

/// The wire name and HTTP status of every error the API can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the body is not the JSON the route expects.
    InvalidJson,
    /// 400: a payload is not standard base64.
    InvalidBase64,
    /// 400: an address (bind address or destination) does not parse or cannot be used.
    InvalidAddress,
    /// 400: a query parameter or header value does not parse.
    InvalidParameter,
    /// 400: the destination's address family differs from the binding's.
    AddressFamilyMismatch,
    /// 401: the bearer token is missing or wrong.
    Unauthorized,
    /// 403: the server refuses non-loopback addresses for this binding.
    RemoteNotAllowed,
    /// 403: the address is never a valid destination (unspecified, multicast, broadcast).
    DestinationForbidden,
    /// 403: the destination is outside the configured allow list or inside the deny list.
    DestinationDenied,
    /// 403: the port is outside the configured range.
    PortNotAllowed,
    /// 403: the operating system refused (e.g. a privileged port).
    PermissionDenied,
    /// 403: the request's `Origin` is not an allowed origin (a cross-site page).
    OriginNotAllowed,
    /// 403: the request's `Host` is not an IP literal, `localhost` or an allowed name (DNS rebinding).
    HostNotAllowed,
    /// 404: no live binding (or subscriber) has this id.
    NotFound,
    /// 404: no such route.
    RouteNotFound,
    /// 405: the route exists but not for this method.
    MethodNotAllowed,
    /// 409: the port is already bound.
    AddressInUse,
    /// 409: the request id is already in flight (an embedding bug, never an HTTP client's).
    DuplicateRequest,
    /// 413: the request body is larger than the configured maximum.
    BodyTooLarge,
    /// 413: the datagram payload is larger than UDP allows (or the configured maximum).
    PayloadTooLarge,
    /// 413: a batch send carries more datagrams than allowed.
    TooManyDatagrams,
    /// 429: the server holds its maximum number of bindings.
    TooManyBindings,
    /// 429: the binding has its maximum number of subscribers.
    TooManySubscribers,
    /// 429: the binding has its maximum number of unused stream tickets.
    TooManyTickets,
    /// 500: an operating-system error without a more specific code.
    IoError,
    /// 502: the destination answered with an ICMP error (port unreachable, host unreachable).
    DestinationUnreachable,
    /// 503: out of file descriptors or socket buffers.
    OutOfResources,
    /// 503: the server is shutting down.
    ShuttingDown,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 28] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidBase64,
        ErrorCode::InvalidAddress,
        ErrorCode::InvalidParameter,
        ErrorCode::AddressFamilyMismatch,
        ErrorCode::Unauthorized,
        ErrorCode::RemoteNotAllowed,
        ErrorCode::DestinationForbidden,
        ErrorCode::DestinationDenied,
        ErrorCode::PortNotAllowed,
        ErrorCode::PermissionDenied,
        ErrorCode::OriginNotAllowed,
        ErrorCode::HostNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::RouteNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AddressInUse,
        ErrorCode::DuplicateRequest,
        ErrorCode::BodyTooLarge,
        ErrorCode::PayloadTooLarge,
        ErrorCode::TooManyDatagrams,
        ErrorCode::TooManyBindings,
        ErrorCode::TooManySubscribers,
        ErrorCode::TooManyTickets,
        ErrorCode::IoError,
        ErrorCode::DestinationUnreachable,
        ErrorCode::OutOfResources,
        ErrorCode::ShuttingDown,
    ];

    /// The table: snake_case code and HTTP status.
    pub const fn wire(self) -> (&'static str, u16) {
        match self {
            ErrorCode::InvalidJson => ("invalid_json", 400),
            ErrorCode::InvalidBase64 => ("invalid_base64", 400),
            ErrorCode::InvalidAddress => ("invalid_address", 400),
            ErrorCode::InvalidParameter => ("invalid_parameter", 400),
            ErrorCode::AddressFamilyMismatch => ("address_family_mismatch", 400),
            ErrorCode::Unauthorized => ("unauthorized", 401),
            ErrorCode::RemoteNotAllowed => ("remote_not_allowed", 403),
            ErrorCode::DestinationForbidden => ("destination_forbidden", 403),
            ErrorCode::DestinationDenied => ("destination_denied", 403),
            ErrorCode::PortNotAllowed => ("port_not_allowed", 403),
            ErrorCode::PermissionDenied => ("permission_denied", 403),
            ErrorCode::OriginNotAllowed => ("origin_not_allowed", 403),
            ErrorCode::HostNotAllowed => ("host_not_allowed", 403),
            ErrorCode::NotFound => ("not_found", 404),
            ErrorCode::RouteNotFound => ("route_not_found", 404),
            ErrorCode::MethodNotAllowed => ("method_not_allowed", 405),
            ErrorCode::AddressInUse => ("address_in_use", 409),
            ErrorCode::DuplicateRequest => ("duplicate_request", 409),
            ErrorCode::BodyTooLarge => ("body_too_large", 413),
            ErrorCode::PayloadTooLarge => ("payload_too_large", 413),
            ErrorCode::TooManyDatagrams => ("too_many_datagrams", 413),
            ErrorCode::TooManyBindings => ("too_many_bindings", 429),
            ErrorCode::TooManySubscribers => ("too_many_subscribers", 429),
            ErrorCode::TooManyTickets => ("too_many_tickets", 429),
            ErrorCode::IoError => ("io_error", 500),
            ErrorCode::DestinationUnreachable => ("destination_unreachable", 502),
            ErrorCode::OutOfResources => ("out_of_resources", 503),
            ErrorCode::ShuttingDown => ("shutting_down", 503),
        }
    }

    /// The snake_case code sent as `"error"`.
    pub const fn as_str(self) -> &'static str {
        self.wire().0
    }

    /// The HTTP status.
    pub const fn http_status(self) -> u16 {
        self.wire().1
    }
}

impl ErrorCode {
    /// The code named `name` on the wire.
    pub fn from_name(name: &str) -> Option<Self> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ErrorCode::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {name:?}")))
    }
}

/// The schema is the table itself: a string, one of the codes of [`ErrorCode::ALL`].
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ErrorCode::schema_of(&ErrorCode::ALL).into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {}

#[cfg(feature = "openapi")]
impl ErrorCode {
    /// A string schema whose values are `codes`' wire names, for documenting
    /// which codes one route answers with one status.
    pub fn schema_of(codes: &[ErrorCode]) -> utoipa::openapi::schema::Schema {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(codes.iter().map(|c| c.as_str())))
            .description(Some("The error's code; each code has one HTTP status."))
            .build()
            .into()
    }
}

/// An error that has a place in the [`ErrorCode`] table.
pub trait ApiError: std::error::Error {
    /// The code (and so the HTTP status) this error is answered with.
    fn code(&self) -> ErrorCode;
}

/// Why the runtime could not open a socket. An input, reported with
/// [`crate::Engine::handle_socket_failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// `EADDRINUSE`.
    AddrInUse,
    /// `EACCES`/`EPERM`, e.g. a privileged port.
    PermissionDenied,
    /// `EMFILE`/`ENFILE`/`ENOMEM`/`ENOBUFS`.
    OutOfDescriptors,
    /// `EADDRNOTAVAIL`: the address is not one of this host's.
    AddrNotAvailable,
    /// Anything else.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransmitError {
    /// `ECONNREFUSED`: an earlier ICMP port-unreachable surfaced on this socket.
    ConnectionRefused,
    /// `EHOSTUNREACH`: an ICMP host-unreachable (or a failed neighbour lookup).
    Unreachable,
    /// `ENETUNREACH`: this host has no route to the destination. Local: no
    /// ICMP arrived, so it is not counted as an ICMP error.
    NoRoute,
    /// `ENOBUFS`/`EAGAIN`: the socket's send buffer stayed full.
    NoBuffers,
    /// `EACCES`/`EPERM`: the kernel or a firewall refused.
    PermissionDenied,
    /// Anything else.
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

impl ApiError for BindError {
    fn code(&self) -> ErrorCode {
        match self {
            BindError::RemoteBindNotRequested(_) | BindError::RemoteDisabled => {
                ErrorCode::RemoteNotAllowed
            }
            BindError::NotUnicast(_) | BindError::AddrNotAvailable(_) => ErrorCode::InvalidAddress,
            BindError::PortNotAllowed { .. } => ErrorCode::PortNotAllowed,
            BindError::TooManyBindings { .. } => ErrorCode::TooManyBindings,
            BindError::AddrInUse(_) => ErrorCode::AddressInUse,
            BindError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            BindError::OutOfDescriptors => ErrorCode::OutOfResources,
            BindError::Io { .. } => ErrorCode::IoError,
            BindError::ShuttingDown => ErrorCode::ShuttingDown,
            BindError::DuplicateRequest => ErrorCode::DuplicateRequest,
        }
    }
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

impl ApiError for SendError {
    fn code(&self) -> ErrorCode {
        match self {
            SendError::NotFound => ErrorCode::NotFound,
            SendError::UnspecifiedDestination(_)
            | SendError::MulticastDestination(_)
            | SendError::BroadcastDestination(_) => ErrorCode::DestinationForbidden,
            SendError::ZeroPort(_) => ErrorCode::InvalidAddress,
            SendError::RemoteNotAllowed(_) => ErrorCode::RemoteNotAllowed,
            SendError::Denied(_) => ErrorCode::DestinationDenied,
            SendError::FamilyMismatch { .. } => ErrorCode::AddressFamilyMismatch,
            SendError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            SendError::Transmit(
                TransmitError::ConnectionRefused
                | TransmitError::Unreachable
                | TransmitError::NoRoute,
            ) => ErrorCode::DestinationUnreachable,
            SendError::Transmit(TransmitError::NoBuffers) => ErrorCode::OutOfResources,
            SendError::Transmit(TransmitError::PermissionDenied) => ErrorCode::PermissionDenied,
            SendError::Transmit(TransmitError::Other(_)) => ErrorCode::IoError,
            SendError::DuplicateRequest => ErrorCode::DuplicateRequest,
        }
    }
}

/// Why a command on an existing binding (unbind, heartbeat) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// No live binding has this id (never bound, unbound, or expired).
    #[error("binding not found")]
    NotFound,
}

impl ApiError for BindingError {
    fn code(&self) -> ErrorCode {
        match self {
            BindingError::NotFound => ErrorCode::NotFound,
        }
    }
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

impl ApiError for SubscribeError {
    fn code(&self) -> ErrorCode {
        match self {
            SubscribeError::NotFound => ErrorCode::NotFound,
            SubscribeError::InvalidTicket => ErrorCode::Unauthorized,
            SubscribeError::TooManySubscribers { .. } => ErrorCode::TooManySubscribers,
        }
    }
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

impl ApiError for TicketError {
    fn code(&self) -> ErrorCode {
        match self {
            TicketError::NotFound => ErrorCode::NotFound,
            TicketError::TooManyTickets { .. } => ErrorCode::TooManyTickets,
        }
    }
}

/// Why an unsubscribe failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsubscribeError {
    /// No live subscriber has this id.
    #[error("subscriber {0} not found")]
    NotFound(SubscriberId),
}

impl ApiError for UnsubscribeError {
    fn code(&self) -> ErrorCode {
        match self {
            UnsubscribeError::NotFound(_) => ErrorCode::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_snake_case_with_a_client_or_server_status() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let (name, status) = code.wire();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                "{name}"
            );
            assert!((400..600).contains(&status));
        }
    }

    #[test]
    fn bad_input_never_maps_to_a_server_error() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let bad_input = [
            SendError::UnspecifiedDestination(addr).code(),
            SendError::MulticastDestination(addr).code(),
            SendError::ZeroPort(addr).code(),
            SendError::PayloadTooLarge {
                len: 70_000,
                max: 65_507,
            }
            .code(),
            SendError::RemoteNotAllowed(addr).code(),
            BindError::NotUnicast(addr.ip()).code(),
            BindError::PortNotAllowed {
                port: 1,
                min: 2,
                max: 3,
            }
            .code(),
            BindError::RemoteBindNotRequested(addr.ip()).code(),
        ];
        for code in bad_input {
            assert!(code.http_status() < 500, "{code:?}");
        }
    }

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiveError {
    /// `ECONNREFUSED`: an ICMP port-unreachable for an earlier send.
    ConnectionRefused,
    /// `EHOSTUNREACH`/`ENETUNREACH`: an ICMP host- or network-unreachable for an
    /// earlier send (on a receive, unlike a send, these come from the network).
    Unreachable,
    /// Anything else (counted as a receive error).
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
