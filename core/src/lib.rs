//! The I/O-free engine of Porthole: UDP socket leases over HTTP.
//!
//! A process that cannot bind UDP itself asks Porthole to bind a port, receives
//! the port's datagrams as a stream, sends datagrams through it and renews the
//! lease with heartbeats; a binding whose lease runs out is closed.
//!
//! This crate decides everything and does no I/O: no sockets, no clocks, no
//! threads. [`Engine`] takes [`Input`]s ([`Engine::handle_input`], each with an
//! explicit `now`) and emits [`Action`]s for a runtime to carry out; the runtime
//! reports the outcomes back as inputs. Same seed, same inputs, same `now`s: same actions,
//! which is what makes the engine testable in simulation (the `sim` module, behind the
//! `sim` feature) and fuzzable. [`api`] is the HTTP API's codec.
//!
//! # The run loop
//!
//! A runtime around the engine does four things, over and over:
//!
//! 1. **Carry out every action, in order.** Actions queue up inside the engine
//!    in the order they were decided; [`Engine::poll_action`] hands them out.
//!    When you drain makes no difference to what comes out: draining after
//!    every input, or after a batch of inputs, yields the same actions in the
//!    same order. What matters is that every action is carried out, in that
//!    order. An outcome (socket opened, transmitted, ...) goes back in as an
//!    input, whose own actions join the end of the queue.
//! 2. **Stream writers return credit** ([`Input::Credit`]) as they write
//!    events out, and a stream whose client went away is reported once with
//!    [`Input::SubscriberGone`]; nothing more is emitted for it.
//! 3. **Wait for a socket to be readable or for [`Engine::poll_timeout`]**,
//!    whichever comes first, and feed what was read ([`Input::Datagram`], or
//!    [`Input::SocketError`] for a failed read). Flow control is the engine's
//!    call: after [`Action::PauseReads`] don't read that binding's socket (its
//!    datagrams wait in the kernel instead of pushing undelivered ones out of
//!    the replay ring while every subscriber is out of credit), and feed no
//!    datagram of it, not even one already read: keep that for after the
//!    resume. After [`Action::ResumeReads`] read the socket **at once**,
//!    without waiting for readiness: an edge-triggered poller (epoll with
//!    `EPOLLET`, mio, the async runtimes) reports no new edge for datagrams
//!    that arrived during the pause, and the reader would stall. The engine
//!    resumes by itself at the latest [`Config::max_read_pause`] later (a
//!    deadline in `poll_timeout`), and a binding that closes meanwhile gets
//!    [`Action::CloseSocket`] instead of a resume.
//! 4. **Move time**: when `poll_timeout()` has passed, feed
//!    [`Input::Timeout`]. Leases expire exactly at their deadline (every
//!    other input fires due timers too).
//!
//! Every input goes in through [`Engine::handle_input`]; the `handle_*`
//! methods are shorthands for it, one per [`Input`] variant.
//!
//! To check such a loop against the engine's contract in your own tests, feed
//! every input through `sim::Checker::step` instead (feature
//! `sim`): `core/examples/run_loop.rs` is this loop checked that way
//! (`cargo run -p porthole-core --features sim --example run_loop`).
//!
//! Over std sockets, with one binding: a client binds a port with a 1-second
//! lease and opens two streams, a peer sends three datagrams, the second
//! stream's client goes away, the first stream's writer is slow (a delivery
//! window of 2), so the engine pauses reads until it catches up; nobody renews
//! the lease, so the binding expires after a second and the loop ends.
//!
//! ```
//! use std::collections::{HashMap, HashSet, VecDeque};
//! use std::io;
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant, SystemTime};
//!
//! use porthole_core::{
//!     Action, BindParams, BindingId, Bytes, CloseReason, Command, Config, Engine, Event, Input,
//!     OpenError, ReceiveError, Reply, RequestId, SubscribeParams, SubscriberId, TransmitError,
//!     WallClock,
//! };
//!
//! fn payload(event: Event) -> Option<Bytes> {
//!     match event {
//!         Event::Datagram(d) => Some(d.payload),
//!         Event::Lagged { .. } => None,
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let wall = WallClock::new(Instant::now(), SystemTime::now());
//! // A small window, so that a slow stream writer backlogs the binding.
//! let config = Config { delivery_window: 2, ..Config::default() };
//! // In production, seed from the OS: `Engine::from_os_rng` (feature `os-rng`).
//! let mut engine = Engine::new(config, [42; 32], wall)?;
//! // Actions not carried out yet, in the engine's order.
//! let mut todo: VecDeque<Action> = VecDeque::new();
//! let drain = |engine: &mut Engine, todo: &mut VecDeque<Action>| {
//!     while let Some(action) = engine.poll_action() {
//!         todo.push_back(action);
//!     }
//! };
//!
//! let mut sockets: HashMap<BindingId, UdpSocket> = HashMap::new();
//! // Bindings whose reads the engine paused.
//! let mut paused: HashSet<BindingId> = HashSet::new();
//! // Each stream's events written since its last flush.
//! let mut streams: HashMap<SubscriberId, Vec<Event>> = HashMap::new();
//! let (mut received, mut ended) = (Vec::new(), Vec::new());
//! let mut leaving = None;
//! let (mut idle, mut pauses) = (false, 0);
//! let peer = UdpSocket::bind("127.0.0.1:0")?;
//! let mut buf = vec![0u8; 65_535];
//!
//! let mut bind = BindParams::new("127.0.0.1:0".parse()?);
//! bind.lease_secs = Some(1);
//! let command = Command::Bind(bind);
//! engine.handle_input(Input::Command { request: RequestId(1), command }, Instant::now());
//! drain(&mut engine, &mut todo);
//!
//! loop {
//!     // 1. Carry out every action, in order; outcomes go back in as inputs.
//!     while let Some(action) = todo.pop_front() {
//!         let now = Instant::now();
//!         match action {
//!             Action::OpenSocket { binding, addr } => {
//!                 let input = match UdpSocket::bind(addr).and_then(|s| Ok((s.local_addr()?, s))) {
//!                     Ok((local_addr, socket)) => {
//!                         sockets.insert(binding, socket);
//!                         Input::SocketOpened { binding, local_addr }
//!                     }
//!                     Err(e) => Input::SocketFailed { binding, error: OpenError::from_io(&e) },
//!                 };
//!                 engine.handle_input(input, now);
//!             }
//!             Action::CloseSocket { binding } => {
//!                 sockets.remove(&binding);
//!                 paused.remove(&binding);
//!             }
//!             Action::PauseReads { binding } => {
//!                 paused.insert(binding);
//!                 pauses += 1;
//!             }
//!             // The read below comes at once; a poller-based loop reads this
//!             // socket now, until it would block, not at its next readiness.
//!             Action::ResumeReads { binding } => {
//!                 paused.remove(&binding);
//!             }
//!             Action::Transmit { request, binding, dest, payload } => {
//!                 let outcome = match sockets.get(&binding) {
//!                     Some(socket) => {
//!                         socket.send_to(&payload, dest).map_err(|e| TransmitError::from_io(&e))
//!                     }
//!                     None => Err(TransmitError::Other(io::ErrorKind::NotConnected)),
//!                 };
//!                 engine.handle_input(Input::Transmitted { request, outcome }, now);
//!             }
//!             // Written to the stream's buffer; its credit comes back on flush.
//!             Action::Deliver { subscriber, event } => {
//!                 if let Some(stream) = streams.get_mut(&subscriber) {
//!                     stream.push(event);
//!                 }
//!             }
//!             // The writer flushes what it holds, then closes the stream.
//!             Action::EndStream { subscriber, reason } => {
//!                 let events = streams.remove(&subscriber).unwrap_or_default();
//!                 received.extend(events.into_iter().filter_map(payload));
//!                 ended.push(reason);
//!             }
//!             Action::Reply { reply, .. } => match reply {
//!                 Reply::Bind(Ok(info)) => {
//!                     for request in [2, 3] {
//!                         let command = Command::Subscribe(SubscribeParams::new(info.id));
//!                         engine.handle_input(Input::Command { request: RequestId(request), command }, now);
//!                     }
//!                     for datagram in [&b"one"[..], b"two", b"three"] {
//!                         peer.send_to(datagram, info.local_addr)?;
//!                     }
//!                 }
//!                 Reply::Subscribe(Ok(id)) => {
//!                     streams.insert(id, Vec::new());
//!                     if streams.len() == 2 {
//!                         leaving = Some(id); // this client will go away
//!                     }
//!                 }
//!                 other => println!("reply: {other:?}"),
//!             },
//!         }
//!         drain(&mut engine, &mut todo);
//!     }
//!     if sockets.is_empty() {
//!         break; // the lease ran out
//!     }
//!
//!     // 2. A client that went away is reported once. Writers flush, returning
//!     //    credit; these are slow: only when the reader waits or is paused.
//!     if let Some(gone) = leaving.take() {
//!         streams.remove(&gone);
//!         engine.handle_input(Input::SubscriberGone { subscriber: gone }, Instant::now());
//!     }
//!     for (&subscriber, events) in streams.iter_mut() {
//!         if (idle || !paused.is_empty()) && !events.is_empty() {
//!             let credit = u32::try_from(events.len()).unwrap_or(u32::MAX);
//!             received.extend(events.drain(..).filter_map(payload));
//!             engine.handle_input(Input::Credit { subscriber, credit }, Instant::now());
//!         }
//!     }
//!     drain(&mut engine, &mut todo);
//!     if !todo.is_empty() {
//!         continue;
//!     }
//!
//!     // 3. Wait until the next deadline or a readable socket (with one socket a
//!     //    read timeout is the wait; with many, mio's `Poll::poll(timeout)`,
//!     //    epoll or an async select). A paused binding is not read.
//!     let now = Instant::now();
//!     let wait = engine
//!         .poll_timeout()
//!         .map_or(Duration::from_secs(1), |at| at.saturating_duration_since(now))
//!         .max(Duration::from_millis(1));
//!     if let Some((&binding, socket)) = sockets.iter().find(|(b, _)| !paused.contains(b)) {
//!         socket.set_read_timeout(Some(wait))?;
//!         idle = false;
//!         match socket.recv_from(&mut buf) {
//!             Ok((n, src)) => {
//!                 let payload = Bytes::copy_from_slice(&buf[..n]);
//!                 engine.handle_input(Input::Datagram { binding, src, payload }, Instant::now());
//!             }
//!             Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
//!                 idle = true;
//!             }
//!             // Typically an ICMP error for an earlier send: counted, the binding stays.
//!             Err(e) => {
//!                 let error = ReceiveError::from_io(&e);
//!                 engine.handle_input(Input::SocketError { binding, error }, Instant::now());
//!             }
//!         }
//!     } else {
//!         // Every socket paused: wait for a writer's progress or the deadline.
//!         std::thread::sleep(wait.min(Duration::from_millis(10)));
//!     }
//!
//!     // 4. Time: every deadline that has passed fires now.
//!     if engine.poll_timeout().is_some_and(|at| at <= Instant::now()) {
//!         engine.handle_input(Input::Timeout, Instant::now());
//!     }
//!     drain(&mut engine, &mut todo);
//! }
//! assert_eq!(received, ["one", "two", "three"].map(Bytes::from));
//! assert_eq!(ended, [CloseReason::Expired]);
//! assert!(pauses > 0, "the slow stream paused reads");
//! # Ok(())
//! # }
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
mod input;
mod lease;
pub mod net;
#[cfg(feature = "os-rng")]
mod os_rng;
mod policy;
mod ring;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod subscriber;
mod ticket;
mod wallclock;

pub use action::{Action, CloseReason, Datagram, Event, IssuedTicket, Reply};
pub use binding::{BindingCounters, BindingInfo};
pub use command::{BindParams, Command, SubscribeParams};
pub use config::{Config, ConfigError, MAX_READ_PAUSE, UNPRIVILEGED_PORTS};
pub use engine::{Counters, Engine};
pub use error::{
    BindError, BindingError, OpenError, ReceiveError, SendError, SubscribeError, TicketError,
    TransmitError, UnsubscribeError,
};
pub use id::{BindingId, ParseBindingIdError, ParseSeqError, RequestId, Seq, SubscriberId};
pub use input::Input;
pub use lease::Lease;
pub use ticket::{ParseTicketError, Ticket};
pub use wallclock::WallClock;

/// The payload type of datagrams in and out, re-exported so an embedder needs
/// no direct dependency on `bytes`.
pub use bytes::Bytes;
#[cfg(feature = "os-rng")]
#[cfg_attr(docsrs, doc(cfg(feature = "os-rng")))]
pub use os_rng::OsEngineError;
