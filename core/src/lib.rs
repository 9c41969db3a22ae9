//! The I/O-free engine of Porthole: UDP socket leases over HTTP.
//!
//! A process that cannot bind UDP itself asks Porthole to bind a port, receives
//! the port's datagrams as a stream, sends datagrams through it and renews the
//! lease with heartbeats; a binding whose lease runs out is closed.
//!
//! This crate decides everything and does no I/O: no sockets, no clocks, no
//! threads. [`Engine`] takes inputs (`handle_*`, each with an explicit `now`)
//! and emits [`Action`]s for a runtime to carry out; the runtime reports the
//! outcomes back as inputs. Same seed, same inputs, same `now`s: same actions,
//! which is what makes the engine testable in simulation (the `sim` module, behind the
//! `sim` feature) and fuzzable. [`api`] is the HTTP API's codec.
//!
//! # A complete run loop over std sockets
//!
//! ```
//! use std::collections::HashMap;
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant, SystemTime};
//!
//! use bytes::Bytes;
//! use porthole_core::{
//!     Action, BindParams, Command, Config, Engine, Event, OpenError, Reply, RequestId,
//!     SubscribeParams, TransmitError, WallClock,
//! };
//!
//! let wall = WallClock::new(Instant::now(), SystemTime::now());
//! // In production, seed from the OS; a fixed seed makes runs repeatable.
//! let mut engine = Engine::new(Config::default(), [42; 32], wall).unwrap();
//! let mut sockets: HashMap<_, UdpSocket> = HashMap::new();
//! let mut bound = None;
//! let mut subscriber = None;
//! let mut received = Vec::new();
//!
//! // A peer that will talk to the leased port.
//! let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
//!
//! engine.handle_command(
//!     RequestId(1),
//!     Command::Bind(BindParams::new("127.0.0.1:0".parse().unwrap())),
//!     Instant::now(),
//! );
//!
//! for _round in 0..200 {
//!     // 1. Carry out every action; report outcomes back as inputs.
//!     while let Some(action) = engine.poll_action() {
//!         match action {
//!             Action::OpenSocket { binding, addr } => match UdpSocket::bind(addr) {
//!                 Ok(socket) => {
//!                     socket.set_nonblocking(true).unwrap();
//!                     let local = socket.local_addr().unwrap();
//!                     sockets.insert(binding, socket);
//!                     engine.handle_socket_opened(binding, local, Instant::now());
//!                 }
//!                 Err(e) => engine.handle_socket_failed(binding, OpenError::from_io(&e), Instant::now()),
//!             },
//!             Action::CloseSocket { binding } => {
//!                 sockets.remove(&binding);
//!             }
//!             Action::Transmit { request, binding, dest, payload } => {
//!                 let outcome = sockets[&binding]
//!                     .send_to(&payload, dest)
//!                     .map_err(|e| TransmitError::from_io(&e));
//!                 engine.handle_transmitted(request, outcome, Instant::now());
//!             }
//!             Action::Deliver { subscriber, event } => {
//!                 if let Event::Datagram(d) = event {
//!                     received.push(d.payload);
//!                 }
//!                 // Written out at once, so the credit comes straight back.
//!                 engine.handle_credit(subscriber, 1, Instant::now());
//!             }
//!             Action::EndStream { subscriber, reason } => println!("{subscriber} ended: {reason}"),
//!             Action::Reply { request, reply } => match reply {
//!                 Reply::Bind(Ok(info)) => {
//!                     bound = Some(info.local_addr);
//!                     engine.handle_command(
//!                         RequestId(2),
//!                         Command::Subscribe(SubscribeParams::new(info.id)),
//!                         Instant::now(),
//!                     );
//!                     engine.handle_command(
//!                         RequestId(3),
//!                         Command::Send {
//!                             binding: info.id,
//!                             dest: peer.local_addr().unwrap(),
//!                             payload: Bytes::from_static(b"hello peer"),
//!                         },
//!                         Instant::now(),
//!                     );
//!                 }
//!                 Reply::Subscribe(Ok(id)) => subscriber = Some(id),
//!                 other => println!("reply to {request:?}: {other:?}"),
//!             },
//!         }
//!     }
//!     if received.len() == 1 {
//!         engine.handle_command(RequestId(4), Command::Shutdown, Instant::now());
//!         continue;
//!     }
//!     if engine.is_shut_down() && sockets.is_empty() {
//!         break;
//!     }
//!
//!     // 2. Move bytes in: read every socket until it would block.
//!     let mut buf = [0u8; 65_535];
//!     for (&binding, socket) in &sockets {
//!         while let Ok((n, src)) = socket.recv_from(&mut buf) {
//!             engine.handle_datagram(binding, src, Bytes::copy_from_slice(&buf[..n]), Instant::now());
//!         }
//!     }
//!     // The peer answers what it got through the leased port.
//!     if let (Some(addr), Some(_)) = (bound, subscriber) {
//!         peer.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
//!         if let Ok((n, from)) = peer.recv_from(&mut buf) {
//!             assert_eq!(from, addr);
//!             peer.send_to(&buf[..n], addr).unwrap();
//!         }
//!     }
//!
//!     // 3. Move time in: wake at the next deadline (a real loop would sleep until
//!     //    `poll_timeout()` or until a socket is readable).
//!     if engine.poll_timeout().is_some_and(|at| at <= Instant::now()) {
//!         engine.handle_timeout(Instant::now());
//!     }
//!     std::thread::sleep(Duration::from_millis(1));
//! }
//! assert_eq!(received, vec![Bytes::from_static(b"hello peer")]);
//! assert!(sockets.is_empty(), "shutdown closed every socket");
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod action;
pub mod api;
mod binding;
mod command;
mod config;
mod deadline;
mod engine;
mod error;
mod id;
mod lease;
#[cfg(feature = "os-rng")]
mod os_rng;
pub mod policy;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod subscriber;
mod ticket;
mod wallclock;

pub use action::{Action, CloseReason, Datagram, Event, IssuedTicket, Reply};
pub use binding::{BindingCounters, BindingInfo};
pub use command::{BindParams, Command, SubscribeParams};
pub use config::{Config, ConfigError, UNPRIVILEGED_PORTS};
pub use engine::{Counters, Engine};
pub use error::{
    ApiError, BindError, BindingError, ErrorCode, OpenError, ReceiveError, SendError,
    SubscribeError, TicketError, TransmitError, UnsubscribeError,
};
pub use id::{BindingId, ParseBindingIdError, ParseSeqError, RequestId, Seq, SubscriberId};
pub use lease::Lease;
pub use ticket::{ParseTicketError, Ticket};
pub use wallclock::WallClock;

/// The payload type of datagrams in and out, re-exported so an embedder needs
/// no direct dependency on `bytes`.
pub use bytes::Bytes;
#[cfg(feature = "os-rng")]
#[cfg_attr(docsrs, doc(cfg(feature = "os-rng")))]
pub use os_rng::OsEngineError;
