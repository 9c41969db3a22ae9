//! The runtime-agnostic Porthole server.
//!
//! One driver task owns the [`porthole_core::Engine`] and carries out its
//! actions; per-binding reader tasks read datagrams in batches and hand them
//! to it; the HTTP/1.1 API runs on hyper over the runtime's connections. All of
//! it is written against the small object-safe [`Runtime`] trait, which
//! `porthole-tokio` and `porthole-smol` implement.
//!
//! - [`Server`]: the whole daemon (`porthole serve`): a [`Porthole`] plus a listener.
//! - [`Porthole`]: the engine's driver task without a listener; mount its
//!   [`Api`] in your own HTTP server.
//! - `openapi` (feature `openapi`, on by default): the OpenAPI 3.1 document
//!   the server serves at `GET /openapi.json`.
//!
//! The driver decides nothing: every policy, limit and error status comes from
//! `porthole_core`, and every JSON and SSE byte from [`porthole_core::api`].

#![forbid(unsafe_code)]

mod api;
mod body;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
mod driver;
mod edge;
mod listener;
mod log;
mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
mod ops;
mod porthole;
mod server;
mod socket;
mod token;
mod udp;
mod ws;

pub use api::{Api, DriverGoneError};
pub use body::ApiBody;
pub use config::{HttpConfig, HttpConfigError};
pub use edge::{AllowedOrigins, Origin, ParseOriginError};
pub use listener::{InheritedListener, Listen, ListenAddr, ParseListenError, DEFAULT_UNIX_MODE};
pub use porthole::{Porthole, StartError};
/// The runtime traits (the `porthole-runtime` crate), under their old path.
pub use porthole_runtime as runtime;
#[cfg(unix)]
pub use runtime::AsyncUnixListener;
pub use runtime::{
    AsyncTcpListener, AsyncTimer, AsyncUdpSocket, BoxFuture, ConnectFuture, Connection, Direction,
    Runtime, SockRef, TcpConnection,
};
pub use server::{Server, ServerConfig, DEFAULT_LISTEN};
pub use token::{Token, TokenError};

/// The engine's crate, re-exported so embedders need one dependency.
pub use porthole_core;
