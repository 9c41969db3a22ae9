//! Deterministic simulation harness and invariant checker (feature `sim`).
//!
//! Two layers, usable apart:
//!
//! - [`Checker`] watches any sequence of [`Input`](crate::Input)s fed to an [`Engine`](crate::Engine)
//!   and the [`Action`](crate::Action)s it emits, and reports the first broken
//!   invariant as a [`Violation`]: a datagram delivered after its binding closed or
//!   after its stream ended, a socket closed twice or never, a lease ended early or
//!   late, a datagram neither delivered nor counted, a command without exactly one
//!   reply, a delivery beyond the credit window, reads paused or resumed against
//!   the flow-control rule or paused past [`Config::max_read_pause`](crate::Config::max_read_pause),
//!   a datagram fed while its binding's reads were paused. Use it in your own tests, property
//!   tests and fuzz targets, around your own run loop.
//! - [`Simulation`] runs a whole deployment from one seed: a simulated clock, a
//!   simulated [`Network`] (loss, duplication, reordering, delay), a simulated
//!   runtime (sockets on a simulated host with bounded kernel receive buffers,
//!   reads that obey the engine's pauses, transmits, credit returned as clients
//!   read), many clients that bind, send, subscribe with and without resume,
//!   heartbeat, unsubscribe and vanish, and peers that send and echo datagrams. Every
//!   step goes through the checker, and the run's [`Trace`] records every input and
//!   action: one seed, one trace, byte for byte.
//!
//! And on top of them (feature `fuzz`), for when the operations are chosen
//! rather than drawn from a seed: a `Script` (module `script`) is an explicit
//! list of operations, played through the checker on the simulated host and
//! clock; it decodes from arbitrary bytes, which makes it the `engine` fuzz
//! target. Module `fuzz` holds the fuzz targets' properties, which cargo-fuzz
//! and the stable corpus replay both call. They are a feature of their own so
//! that a simulation test does not build the `arbitrary` crate and its derive.
//!
//! # Simulating a deployment
//!
//! Give it your daemon's engine configuration to test your limits:
//!
//! ```
//! use std::time::Instant;
//! use porthole_core::sim::{SimConfig, Simulation};
//! use porthole_core::Config;
//!
//! let mut config = SimConfig::new(42);
//! config.engine = Config { delivery_window: 2, ..config.engine };
//! config.max_steps = 300;
//!
//! let report = Simulation::new(config.clone(), Instant::now())
//!     .expect("a valid engine config")
//!     .run()
//!     .unwrap_or_else(|e| panic!("{e}\n{}", e.trace.tail(40)));
//! assert!(report.stats.steps >= 300);
//! assert_eq!(report.counters.bindings_opened, report.counters.bindings_closed);
//!
//! // Same seed, same run, whatever the starting instant.
//! let again = Simulation::new(config, Instant::now()).unwrap().run().unwrap();
//! assert_eq!(report.trace.to_string(), again.trace.to_string());
//! ```
//!
//! # Checking your own run loop
//!
//! One input, then a full drain: that is a [`Checker`] step (see its
//! documentation for why and how a batching loop feeds it).
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use porthole_core::sim::Checker;
//! use porthole_core::{Action, BindParams, Command, Config, Engine, Input, RequestId, WallClock};
//!
//! let start = Instant::now();
//! let mut engine =
//!     Engine::new(Config::default(), [0; 32], WallClock::new(start, SystemTime::now())).unwrap();
//! let mut checker = Checker::new(&engine);
//!
//! let mut bind = BindParams::new("127.0.0.1:0".parse().unwrap());
//! bind.lease_secs = Some(10);
//! let actions = checker
//!     .step(&mut engine, Input::Command { request: RequestId(1), command: Command::Bind(bind) }, start)
//!     .unwrap();
//! let Some(Action::OpenSocket { binding, .. }) = actions.first().cloned() else { unreachable!() };
//! let opened = Input::SocketOpened { binding, local_addr: "127.0.0.1:4000".parse().unwrap() };
//! checker.step(&mut engine, opened, start).unwrap();
//!
//! // The lease runs out at 10 s exactly; the checker verifies the socket closes then.
//! let actions = checker.step(&mut engine, Input::Timeout, start + Duration::from_secs(10)).unwrap();
//! assert_eq!(actions, vec![Action::CloseSocket { binding }]);
//! checker.finish(&engine).unwrap();
//! ```

mod agenda;
mod checker;
mod client;
mod clock;
#[cfg(feature = "fuzz")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzz")))]
pub mod fuzz;
mod host;
mod network;
mod rng;
#[cfg(feature = "fuzz")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzz")))]
pub mod script;
mod simulation;
mod trace;

pub use checker::{Checker, Violation};
pub use clock::SimClock;
pub use network::{InFlight, Network, NetworkConfig, NetworkStats};
// The replay ring, for reference models of the engine: the eviction rule is
// written once; the checker and the model test keep their own rings of it.
pub use crate::ring::{Entry as RingEntry, Ring};
pub use rng::SimRng;
#[cfg(feature = "fuzz")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzz")))]
pub use script::Script;
pub use simulation::{Report, SimConfig, SimError, SimStats, Simulation, StreamsEnded};
pub use trace::{Record, Trace};
