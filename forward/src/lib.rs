//! `porthole forward`: gives an unmodified UDP application a host port leased
//! from a Porthole daemon, relaying datagrams between the two.
//!
//! - Inbound, `--remote HOST_ADDR --to APP_ADDR`: a UDP server (DNS, a game
//!   server, a WireGuard endpoint) in a container or sandbox answers peers of
//!   the host port. Each peer gets a local socket of its own ([`peers`]), so
//!   the application's replies go back to the right peer.
//! - Outbound, `--listen LOCAL_ADDR --dest HOST:PORT`: a UDP client sends to
//!   a local port; its datagrams leave from the leased host port, and the
//!   destination's replies come back to it.
//!
//! Runtime-agnostic like the daemon: the relay runs on any
//! `porthole_runtime::Runtime` (tokio in `porthole`, smol in
//! `porthole-smol`), through the `porthole-client` library.
//!
//! ```no_run
//! # async fn example(runtime: std::sync::Arc<dyn porthole_client::porthole_runtime::Runtime>) -> Result<(), Box<dyn std::error::Error>> {
//! use clap::Parser;
//! use porthole_forward::{Args, Forwarder};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     forward: Args,
//! }
//!
//! let plan = Cli::parse_from(["forward", "--remote=127.0.0.1:5353", "--to=127.0.0.1:53"])
//!     .forward
//!     .plan()?;
//! let forwarder = Forwarder::start(runtime, plan).await?;
//! println!("peers send to {}", forwarder.host_addr());
//! forwarder.run(std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod args;
pub mod peers;
mod relay;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use porthole_client::porthole_runtime::Runtime;

pub use args::{Args, ArgsError, Direction, Plan};
pub use peers::{PeerLimits, PeerTable};
pub use relay::{ForwardError, Forwarder, Summary};

/// Runs `porthole forward` as the command line does: leases the host port,
/// prints `NAME forward: … HOST (host) …` on stdout once it is leased (scripts
/// read the host address from it), relays until `shutdown` completes (the
/// binaries pass Ctrl-C/SIGTERM), unbinds, and prints the counters,
/// `NAME forward: stopped: in=… out=… peers=… …`. A refusal, or a leased
/// socket that ends on its own, is printed on stderr with exit status 1.
pub async fn run_cli(
    name: &str,
    runtime: Arc<dyn Runtime>,
    plan: Plan,
    shutdown: impl Future<Output = ()>,
) -> ExitCode {
    let forwarder = match Forwarder::start(runtime, plan).await {
        Ok(forwarder) => forwarder,
        Err(e) => {
            eprintln!("{name} forward: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{name} forward: {}", forwarder.describe());
    tracing::info!(host = %forwarder.host_addr(), "forwarding");
    let forwarder = Arc::new(forwarder);
    let result = forwarder.run_spawned(shutdown).await;
    println!("{name} forward: stopped: {}", forwarder.summary());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} forward: {e}");
            ExitCode::FAILURE
        }
    }
}
