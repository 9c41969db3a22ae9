//! What can go wrong, per operation.

use std::fmt;
use std::io;
use std::time::Duration;

use porthole_core::api::ErrorBody;
use porthole_core::api::ErrorCode;
use porthole_core::CloseReason;

/// An error answer from the daemon: its HTTP status, and the
/// `{"error", "message"}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The HTTP status.
    pub status: u16,
    /// The error code, `None` when the body was not Porthole's error JSON
    /// (an answer from hyper itself or from a proxy in between).
    pub code: Option<ErrorCode>,
    /// The daemon's message (or the body's text when it was not Porthole's JSON).
    pub message: String,
}

impl ServerError {
    /// Reads an error answer.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> ServerError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => ServerError {
                status,
                code: Some(e.error),
                message: e.message,
            },
            Err(_) => ServerError {
                status,
                code: None,
                message: String::from_utf8_lossy(body).chars().take(200).collect(),
            },
        }
    }

    /// Whether trying again later may succeed: the daemon was busy (429, 5xx
    /// other than `shutting_down`), as opposed to a refusal that will not change
    /// (the binding is gone, the token is wrong).
    pub(crate) fn is_transient(&self) -> bool {
        match self.code {
            Some(ErrorCode::ShuttingDown) => false,
            _ => self.status == 429 || self.status >= 500,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} {}: {}", self.status, code.as_str(), self.message),
            None => write!(f, "{}: {}", self.status, self.message),
        }
    }
}

impl std::error::Error for ServerError {}

/// The daemon could not be reached, or did not answer as a Porthole daemon does.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connecting failed (nothing listens there, permission denied, …).
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The server's address.
        endpoint: String,
        /// Why.
        source: io::Error,
    },
    /// The HTTP exchange failed (the connection was reset, …).
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// No answer in time.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// An answer that does not follow the API (bad JSON, a failed WebSocket handshake).
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// A request to the daemon failed: it could not be made, or the daemon refused it.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The daemon answered with an error.
    #[error("the server refused: {0}")]
    Refused(ServerError),
    /// The daemon could not be reached.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Why [`LeasedSocket::bind`](crate::LeasedSocket::bind) failed. The
/// refusals carry the daemon's code and message.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The token is missing or wrong (`401 unauthorized`).
    #[error("unauthorized: {0}")]
    Unauthorized(ServerError),
    /// The port is outside the daemon's `--port-range` (`403 port_not_allowed`).
    #[error("port not allowed: {0}")]
    PortNotAllowed(ServerError),
    /// Binding beyond loopback without `--allow-remote` on the daemon, or
    /// without `allow_remote` in the request (`403 remote_not_allowed`).
    #[error("binding beyond loopback not allowed: {0}")]
    RemoteNotAllowed(ServerError),
    /// The port is taken (`409 address_in_use`).
    #[error("address in use: {0}")]
    AddressInUse(ServerError),
    /// The daemon holds `--max-bindings` already (`429 too_many_bindings`).
    #[error("too many bindings: {0}")]
    TooManyBindings(ServerError),
    /// Any other refusal (a bad address, permission denied, shutting down, …).
    #[error("the server refused the bind: {0}")]
    Refused(ServerError),
    /// The daemon could not be reached.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl BindError {
    /// The daemon's answer, for a refusal.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            BindError::Unauthorized(e)
            | BindError::PortNotAllowed(e)
            | BindError::RemoteNotAllowed(e)
            | BindError::AddressInUse(e)
            | BindError::TooManyBindings(e)
            | BindError::Refused(e) => Some(e),
            BindError::Transport(_) => None,
        }
    }
}

impl From<RequestError> for BindError {
    fn from(e: RequestError) -> Self {
        let e = match e {
            RequestError::Refused(e) => e,
            RequestError::Transport(e) => return BindError::Transport(e),
        };
        match e.code {
            Some(ErrorCode::Unauthorized) => BindError::Unauthorized(e),
            Some(ErrorCode::PortNotAllowed) => BindError::PortNotAllowed(e),
            Some(ErrorCode::RemoteNotAllowed) => BindError::RemoteNotAllowed(e),
            Some(ErrorCode::AddressInUse) => BindError::AddressInUse(e),
            Some(ErrorCode::TooManyBindings) => BindError::TooManyBindings(e),
            _ if e.status == 401 => BindError::Unauthorized(e),
            _ => BindError::Refused(e),
        }
    }
}

/// Why a [`LeasedSocket`](crate::LeasedSocket) cannot send or receive (any
/// more). Once the socket has ended, every call returns the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    /// The daemon closed the binding: `unbound` (by someone else),
    /// `expired` (its lease ran out), `shutdown` (the daemon stopped) or
    /// `idle`.
    #[error("the binding was closed by the server ({})", .0.as_str())]
    Closed(CloseReason),
    /// [`close`](crate::LeasedSocket::close) was called.
    #[error("the socket was closed")]
    ClosedLocally,
    /// The channel dropped and the daemon refused to open it again (the
    /// binding is gone: `404 not_found`; the token no longer works: `401`).
    #[error("the server refused to reopen the channel: {0}")]
    Refused(ServerError),
    /// The channel dropped and could not be opened again within the
    /// socket's reconnect time ([`BindParams::reconnect_timeout`](crate::BindParams::reconnect_timeout)).
    #[error(
        "lost the connection to the server and could not reconnect within {after:?}: {last_error}"
    )]
    Lost {
        /// How long the client tried.
        after: Duration,
        /// The last attempt's error.
        last_error: String,
    },
    /// A datagram larger than UDP carries ([`MAX_PAYLOAD`](crate::MAX_PAYLOAD)).
    #[error("a payload of {len} bytes is larger than a datagram can be ({max})")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, body: &str) -> BindError {
        RequestError::Refused(ServerError::from_response(status, body.as_bytes())).into()
    }

    #[test]
    fn bind_refusals_map_to_their_variants_by_code() {
        let json = |code: &str| format!(r#"{{"error":"{code}","message":"m"}}"#);
        assert!(matches!(
            refusal(403, &json("port_not_allowed")),
            BindError::PortNotAllowed(ServerError {
                code: Some(ErrorCode::PortNotAllowed),
                ..
            })
        ));
        assert!(matches!(
            refusal(409, &json("address_in_use")),
            BindError::AddressInUse(_)
        ));
        assert!(matches!(
            refusal(403, &json("remote_not_allowed")),
            BindError::RemoteNotAllowed(_)
        ));
        assert!(matches!(
            refusal(429, &json("too_many_bindings")),
            BindError::TooManyBindings(_)
        ));
        assert!(matches!(
            refusal(400, &json("invalid_address")),
            BindError::Refused(_)
        ));
        // A 401 from something other than Porthole (a proxy) is still unauthorized.
        let e = refusal(401, "nope");
        assert!(matches!(
            e,
            BindError::Unauthorized(ServerError { code: None, .. })
        ));
        assert_eq!(e.server_error().map(|e| e.message.as_str()), Some("nope"));
    }

    #[test]
    fn only_a_busy_server_is_worth_asking_again() {
        let e = |status, code: &str| {
            ServerError::from_response(
                status,
                format!(r#"{{"error":"{code}","message":""}}"#).as_bytes(),
            )
        };
        assert!(e(429, "too_many_subscribers").is_transient());
        assert!(e(503, "out_of_resources").is_transient());
        assert!(!e(503, "shutting_down").is_transient());
        assert!(!e(404, "not_found").is_transient());
        assert!(!e(401, "unauthorized").is_transient());
        assert!(ServerError::from_response(502, b"bad gateway").is_transient());
    }
}
