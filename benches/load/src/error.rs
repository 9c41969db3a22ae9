//! What can stop a measurement.

use hyper::StatusCode;

/// A measurement that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A socket or process operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP connection failed.
    #[error("HTTP: {0}")]
    Http(hyper::Error),
    /// A request could not be built.
    #[error("request: {0}")]
    Request(String),
    /// The server answered with an unexpected status.
    #[error("{what}: status {status}: {body}")]
    Status {
        /// The call.
        what: &'static str,
        /// The status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
    /// The server's answer was not what the API promises.
    #[error("bad reply to {what}: {detail}")]
    Reply {
        /// The call.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A server process did not start.
    #[error("server {kind}: {detail}")]
    Server {
        /// Which server.
        kind: &'static str,
        /// What happened.
        detail: String,
    },
    /// Something took longer than the benchmark waits.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

impl LoadError {
    pub(crate) fn status(what: &'static str, status: StatusCode, body: &[u8]) -> Self {
        let body = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        LoadError::Status { what, status, body }
    }

    pub(crate) fn reply(what: &'static str, detail: impl std::fmt::Display) -> Self {
        LoadError::Reply {
            what,
            detail: detail.to_string(),
        }
    }
}
