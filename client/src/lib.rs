//! The client of Porthole: lease a UDP socket on the daemon's host and use
//! it like a `UdpSocket`, from a process that cannot open one itself (a
//! container, a sandbox).
//!
//! [`LeasedSocket::bind`] binds a host port through the daemon's HTTP API
//! and opens the binding's WebSocket datagram channel
//! (`GET /v1/udp/ws/{id}`); [`send_to`](LeasedSocket::send_to) and
//! [`recv_from`](LeasedSocket::recv_from) then move datagrams over it. In
//! the background the client
//!
//! - renews the lease after every third of it (`PUT /v1/udp/heartbeat/{id}`);
//! - reopens a dropped channel, resuming after the last datagram it received
//!   (`last_event_id`), so nothing the daemon's replay ring still holds is
//!   lost; it backs off between attempts and gives up after
//!   [`BindParams::reconnect_timeout`] with [`SocketError::Lost`];
//! - reads the channel continuously into a bounded receive queue
//!   ([`BindParams::recv_queue`], default [`DEFAULT_RECV_QUEUE`] datagrams).
//!   When the caller does not read and the queue is full, it stops reading
//!   the channel: the daemon holds what follows in its replay ring and
//!   counts what overflows it as missed. Memory stays bounded;
//! - counts every datagram the daemon reports missed (`lagged` notices: a
//!   slow reader, the kernel's or the daemon's memory drops) and every send
//!   it reports failed, in [`LeasedSocket::losses`], and queues them as
//!   [`Event`]s for [`LeasedSocket::next_event`].
//!
//! A binding the daemon closes (unbound, expired, shutdown) ends the socket:
//! `recv_from` returns the datagrams received before, then
//! [`SocketError::Closed`].
//!
//! The crate names no async runtime: it runs on anything that implements
//! [`porthole_runtime::Runtime`], such as `porthole_tokio::TokioRuntime`
//! and `porthole_smol::SmolRuntime`.
//!
//! # On tokio
//!
//! ```no_run
//! use std::sync::Arc;
//! use porthole_client::{BindParams, LeasedSocket, Server};
//! use porthole_tokio::TokioRuntime;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::parse("http://127.0.0.1:7447")?.with_token("s3cret");
//! let socket = LeasedSocket::bind(
//!     Arc::new(TokioRuntime::current()),
//!     &server,
//!     BindParams::default(),
//! )
//! .await?;
//! println!("peers send to {}", socket.local_addr());
//!
//! // An echo server on the host port.
//! let mut buf = [0; 65_535];
//! for _ in 0..10 {
//!     let (n, peer) = socket.recv_from(&mut buf).await?;
//!     socket.send_to(&buf[..n], peer).await?;
//! }
//! println!("lost on the way: {:?}", socket.losses());
//! socket.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # On smol, over a Unix socket
//!
//! ```no_run
//! use std::sync::Arc;
//! use porthole_client::{BindParams, Event, LeasedSocket, Server};
//! use porthole_smol::SmolRuntime;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let server = Server::parse("unix:/run/porthole.sock")?;
//!     let params = BindParams { port: 5353, ..BindParams::default() };
//!     let socket = Arc::new(LeasedSocket::bind(Arc::new(SmolRuntime::global()), &server, params).await?);
//!
//!     // Losses and send failures, as they are reported.
//!     let events = socket.clone();
//!     smol::spawn(async move {
//!         while let Some(event) = events.next_event().await {
//!             if let Event::Lagged { missed } = event {
//!                 eprintln!("missed {missed} datagrams");
//!             }
//!         }
//!     })
//!     .detach();
//!
//!     let datagram = socket.recv().await?;
//!     socket.send_to(&datagram.payload, datagram.src).await?;
//!     socket.close().await?;
//!     Ok(())
//! })
//! # }
//! ```

#![forbid(unsafe_code)]

mod channel;
mod error;
mod http;
mod server;
mod shared;
mod socket;

pub use error::{BindError, RequestError, ServerError, SocketError, TransportError};
pub use server::{Endpoint, ParseServerError, Server};
pub use shared::{Event, Losses, Stats, MAX_EVENTS};
pub use socket::{
    BindParams, Datagram, LeasedSocket, DEFAULT_KEEP_ALIVE, DEFAULT_RECONNECT_TIMEOUT,
    DEFAULT_RECV_QUEUE, DEFAULT_SEND_QUEUE, MAX_PAYLOAD,
};

/// The engine's crate, for its types in this API ([`porthole_core::api::ErrorCode`],
/// [`porthole_core::CloseReason`], [`porthole_core::Seq`], [`porthole_core::BindingId`]).
pub use porthole_core;
/// The runtime traits the client runs on.
pub use porthole_runtime;
