//! The runtime-agnostic Porthole server: a driver task that owns the
//! [`porthole_core::Engine`], per-binding socket readers, and the HTTP/1.1 API on
//! hyper, all over a small [`Runtime`] trait that tokio and smol implement.

#![forbid(unsafe_code)]

mod runtime;

pub use runtime::{AsyncTcpListener, AsyncTimer, AsyncUdpSocket, BoxFuture, Connection, Runtime};
