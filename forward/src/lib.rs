//! `porthole forward`: gives an unmodified UDP application a host port leased
//! from a Porthole daemon, relaying datagrams between the two.
//!
//! Runtime-agnostic like the daemon: the relay runs on any
//! runtime (tokio in `porthole`, smol in
//! `porthole-smol`).

#![forbid(unsafe_code)]

pub mod args;
pub mod peers;

pub use args::{Args, ArgsError, Direction, Plan};
pub use peers::{PeerLimits, PeerTable};
