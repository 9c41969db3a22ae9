//! Every error the HTTP API can answer with, and the one table that maps it
//! to the wire: `{"error": "<code>", "message": "<Display>"}` with the
//! code's HTTP status.
//!
//! The engine's errors ([`BindError`], [`SendError`], ...) are domain enums
//! that know nothing of HTTP; the codec's own [`RequestError`] covers what
//! goes wrong before a request reaches the engine (bodies, parameters, and
//! the driver's routing, authentication and web-boundary refusals). Each
//! gets its [`ErrorCode`] here, and the code its status, so a status is
//! decided in exactly one place.

use super::{BatchEntryError, RequestError};
use crate::error::{
    BindError, BindingError, SendError, SubscribeError, TicketError, TransmitError,
    UnsubscribeError,
};

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

impl ApiError for BindingError {
    fn code(&self) -> ErrorCode {
        match self {
            BindingError::NotFound => ErrorCode::NotFound,
        }
    }
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

impl ApiError for TicketError {
    fn code(&self) -> ErrorCode {
        match self {
            TicketError::NotFound => ErrorCode::NotFound,
            TicketError::TooManyTickets { .. } => ErrorCode::TooManyTickets,
        }
    }
}

impl ApiError for UnsubscribeError {
    fn code(&self) -> ErrorCode {
        match self {
            UnsubscribeError::NotFound(_) => ErrorCode::NotFound,
        }
    }
}

impl ApiError for RequestError {
    fn code(&self) -> ErrorCode {
        match self {
            RequestError::InvalidJson(_) => ErrorCode::InvalidJson,
            RequestError::InvalidBase64(_) => ErrorCode::InvalidBase64,
            RequestError::InvalidAddress(_) => ErrorCode::InvalidAddress,
            RequestError::InvalidParameter { .. } => ErrorCode::InvalidParameter,
            RequestError::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            RequestError::UnknownBinding => ErrorCode::NotFound,
            RequestError::Unauthorized | RequestError::BadTicket => ErrorCode::Unauthorized,
            RequestError::OriginNotAllowed(_) => ErrorCode::OriginNotAllowed,
            RequestError::HostNotAllowed(_) => ErrorCode::HostNotAllowed,
            RequestError::RouteNotFound(_) => ErrorCode::RouteNotFound,
            RequestError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            RequestError::TooManyDatagrams { .. } => ErrorCode::TooManyDatagrams,
            RequestError::ShuttingDown => ErrorCode::ShuttingDown,
        }
    }
}

impl ApiError for BatchEntryError {
    fn code(&self) -> ErrorCode {
        match self {
            BatchEntryError::Request(e) => e.code(),
            BatchEntryError::Send(e) => e.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

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
}
