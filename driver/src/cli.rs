//! The command line both binaries share (`porthole` on tokio, `porthole-smol`
//! on smol): `serve` and its flags, each also read from a `PORTHOLE_*`
//! environment variable, logging set up from `RUST_LOG`, and the daemon's life
//! from start to exit ([`Serve`]), so that a binary only picks its runtime:
//!
//! ```no_run
//! # fn block_on(f: impl std::future::Future<Output = std::process::ExitCode>) -> std::process::ExitCode { unimplemented!() }
//! # fn my_runtime() -> std::sync::Arc<dyn porthole_driver::Runtime> { unimplemented!() }
//! use porthole_driver::cli::Serve;
//!
//! fn main() -> std::process::ExitCode {
//!     let serve = match Serve::from_args("porthole-mine") {
//!         Ok(serve) => serve,
//!         Err(exit) => return exit,
//!     };
//!     block_on(serve.run(my_runtime()))
//! }
//! ```

use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub use clap::Parser;
use clap::{Args, CommandFactory, FromArgMatches, Subcommand};
use porthole_core::policy::Network;
use porthole_core::{Config, Lease};

use crate::runtime::Runtime;
use crate::server::{Server, ServerConfig};
use crate::token::{Token, TokenError};

/// Porthole: lease host UDP sockets over HTTP.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the daemon until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
}

/// `porthole serve` flags. Defaults are [`porthole_core::Config::default()`]'s.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback unless you say otherwise).
    #[arg(long, env = "PORTHOLE_LISTEN", default_value = "127.0.0.1:7447")]
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer <TOKEN>` (or `X-Koi-Token: <TOKEN>`) on every /v1 route.
    #[arg(long, env = "PORTHOLE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Most bindings alive at once.
    #[arg(long, env = "PORTHOLE_MAX_BINDINGS", default_value_t = Config::default().max_bindings)]
    pub max_bindings: usize,
    /// Lease, in seconds, for a bind that asks for none.
    #[arg(long, env = "PORTHOLE_DEFAULT_LEASE", default_value_t = Config::default().default_lease.as_secs())]
    pub default_lease: u64,
    /// Longest lease, in seconds; longer requests are clamped to it.
    #[arg(long, env = "PORTHOLE_MAX_LEASE", default_value_t = Config::default().max_lease.as_secs())]
    pub max_lease: u64,
    /// Let bindings that ask for `allow_remote` bind and send beyond loopback.
    #[arg(long, env = "PORTHOLE_ALLOW_REMOTE")]
    pub allow_remote: bool,
    /// Only allow binding ports in this range, e.g. `40000-40999`.
    #[arg(long, env = "PORTHOLE_PORT_RANGE", value_parser = parse_port_range)]
    pub port_range: Option<RangeInclusive<u16>>,
    /// Most SSE streams per binding.
    #[arg(long, env = "PORTHOLE_MAX_SUBSCRIBERS", default_value_t = Config::default().max_subscribers_per_binding)]
    pub max_subscribers: usize,
    /// Most datagrams a binding holds for replay and for absent subscribers.
    #[arg(long, env = "PORTHOLE_RING_DATAGRAMS", default_value_t = Config::default().ring_datagrams)]
    pub ring_datagrams: usize,
    /// Most payload bytes a binding holds for replay and for absent subscribers.
    #[arg(long, env = "PORTHOLE_RING_BYTES", default_value_t = Config::default().ring_bytes)]
    pub ring_bytes: usize,
    /// Events a stream may have in flight before a slow client starts missing datagrams.
    #[arg(long, env = "PORTHOLE_DELIVERY_WINDOW", default_value_t = Config::default().delivery_window)]
    pub delivery_window: u32,
    /// Largest datagram payload a client may send, in bytes.
    #[arg(long, env = "PORTHOLE_MAX_PAYLOAD", default_value_t = Config::default().max_payload)]
    pub max_payload: usize,
    /// Largest HTTP request body, in bytes.
    #[arg(long, env = "PORTHOLE_MAX_BODY", default_value_t = Config::default().max_request_body)]
    pub max_body: usize,
    /// Seconds between keep-alive comments on a quiet stream.
    #[arg(long, env = "PORTHOLE_KEEP_ALIVE", default_value_t = Config::default().keep_alive.as_secs())]
    pub keep_alive: u64,
    /// Only allow sending to these networks (comma-separated CIDRs).
    #[arg(long, env = "PORTHOLE_DEST_ALLOW", value_delimiter = ',')]
    pub dest_allow: Vec<Network>,
    /// Never send to these networks (comma-separated CIDRs).
    #[arg(long, env = "PORTHOLE_DEST_DENY", value_delimiter = ',')]
    pub dest_deny: Vec<Network>,
}

/// Flags that parse but do not make a usable configuration.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The token cannot be used.
    #[error("--token: {0}")]
    Token(#[from] TokenError),
    /// The limits are inconsistent.
    #[error("{0}")]
    Config(#[from] porthole_core::ConfigError),
}

impl ServeArgs {
    /// The server configuration the flags describe.
    pub fn server_config(&self) -> Result<ServerConfig, CliError> {
        let engine = Config {
            max_bindings: self.max_bindings,
            default_lease: Lease::from_secs(self.default_lease),
            max_lease: Lease::from_secs(self.max_lease),
            max_subscribers_per_binding: self.max_subscribers,
            ring_datagrams: self.ring_datagrams,
            ring_bytes: self.ring_bytes,
            delivery_window: self.delivery_window,
            max_payload: self.max_payload,
            max_request_body: self.max_body,
            allow_remote: self.allow_remote,
            port_range: self.port_range.clone(),
            dest_allow: self.dest_allow.clone(),
            dest_deny: self.dest_deny.clone(),
            keep_alive: Duration::from_secs(self.keep_alive.max(1)),
        };
        engine.validate()?;
        let token = self.token.as_deref().map(Token::new).transpose()?;
        Ok(ServerConfig {
            listen: self.listen,
            token,
            engine,
        })
    }
}

/// A `serve` command line, parsed: what a binary's `main` runs on its runtime.
#[derive(Debug)]
pub struct Serve {
    /// The binary's name, for `--version` and error messages.
    name: &'static str,
    config: ServerConfig,
}

/// Exit status for flags that parse but do not make a usable configuration
/// (clap uses the same for flags that do not parse).
const USAGE_ERROR: u8 = 2;

impl Serve {
    /// Parses the process's arguments and environment and sets up logging.
    /// Help, version and usage errors are printed and exit the process as clap
    /// does; an unusable configuration is printed and returned as exit status 2.
    pub fn from_args(name: &'static str) -> Result<Self, ExitCode> {
        let mut matches = Cli::command().name(name).get_matches();
        let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit());
        init_logging();
        let CliCommand::Serve(args) = cli.command;
        match args.server_config() {
            Ok(config) => Ok(Serve { name, config }),
            Err(e) => {
                eprintln!("{name}: {e}");
                Err(ExitCode::from(USAGE_ERROR))
            }
        }
    }

    /// The configuration the command line describes.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Reports that the daemon cannot run (say, its runtime did not start)
    /// and returns the exit status for it.
    pub fn fail(&self, why: impl Display) -> ExitCode {
        eprintln!("{}: {why}", self.name);
        ExitCode::FAILURE
    }

    /// Runs the daemon on `runtime` until Ctrl-C or SIGTERM, then shuts it down
    /// (every stream ends with `closed`/`shutdown`) and returns success.
    ///
    /// Prints one line on stdout once it listens, `porthole listening on
    /// http://ADDR`, which scripts (and the tests) read the address from.
    pub async fn run(self, runtime: Arc<dyn Runtime>) -> ExitCode {
        // Before listening: a signal that comes once the address is out must
        // shut down gracefully, not kill the process.
        let signal = ShutdownSignal::install();
        let server = match Server::start(runtime, self.config.clone()) {
            Ok(server) => server,
            Err(e) => return self.fail(e),
        };
        println!("porthole listening on http://{}", server.local_addr());
        signal.recv().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    }
}

/// Ctrl-C (SIGINT), SIGTERM or SIGHUP, caught on a thread of its own, so any
/// runtime can wait for it.
#[derive(Debug)]
pub struct ShutdownSignal {
    /// `None` when the handler could not be installed: wait forever (the
    /// signal then ends the process the default way).
    caught: Option<async_channel::Receiver<()>>,
}

impl ShutdownSignal {
    /// Installs the process's handler. Call it once per process.
    pub fn install() -> Self {
        let (tx, rx) = async_channel::bounded(1);
        match ctrlc::set_handler(move || {
            let _ = tx.try_send(());
        }) {
            Ok(()) => ShutdownSignal { caught: Some(rx) },
            Err(e) => {
                tracing::warn!(error = %e, "cannot catch Ctrl-C and SIGTERM; they end the process at once");
                ShutdownSignal { caught: None }
            }
        }
    }

    /// Waits for the signal.
    pub async fn recv(&self) {
        match &self.caught {
            // The handler keeps the sender for the life of the process.
            Some(rx) => {
                let _ = rx.recv().await;
            }
            None => futures_lite::future::pending().await,
        }
    }
}

/// `A-B` (or a single port `A`).
fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port number"))
    };
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo > hi {
        return Err(format!("{lo}-{hi} is empty"));
    }
    Ok(lo..=hi)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerConfig, String> {
        let mut argv = vec!["porthole", "serve"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let CliCommand::Serve(serve) = cli.command;
        serve.server_config().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_loopback_and_the_engine_defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen, crate::DEFAULT_LISTEN);
        assert!(config.token.is_none());
        assert_eq!(config.engine, Config::default());
    }

    #[test]
    fn flags_set_every_limit() {
        let config = parse(&[
            "--listen=127.0.0.1:0",
            "--token=t0k",
            "--max-bindings=7",
            "--max-lease=60",
            "--default-lease=30",
            "--allow-remote",
            "--port-range=40000-40010",
            "--max-subscribers=3",
            "--ring-datagrams=9",
            "--ring-bytes=1000",
            "--delivery-window=5",
            "--max-payload=1200",
            "--max-body=4096",
            "--keep-alive=2",
            "--dest-deny=10.0.0.0/8,192.168.0.0/16",
        ])
        .unwrap();
        let e = &config.engine;
        assert_eq!(config.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.token, Some(Token::new("t0k").unwrap()));
        assert_eq!(e.max_bindings, 7);
        assert_eq!(e.max_lease, Lease::from_secs(60));
        assert_eq!(e.default_lease, Lease::from_secs(30));
        assert!(e.allow_remote);
        assert_eq!(e.port_range, Some(40000..=40010));
        assert_eq!(e.max_subscribers_per_binding, 3);
        assert_eq!((e.ring_datagrams, e.ring_bytes), (9, 1000));
        assert_eq!(e.delivery_window, 5);
        assert_eq!((e.max_payload, e.max_request_body), (1200, 4096));
        assert_eq!(e.keep_alive, Duration::from_secs(2));
        assert_eq!(e.dest_deny.len(), 2);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--port-range=5-4"]).is_err());
        assert!(parse(&["--port-range=x"]).is_err());
        assert!(parse(&["--max-bindings=0"]).is_err());
        assert!(parse(&["--token="]).is_err());
        assert!(parse(&["--dest-deny=nope"]).is_err());
    }
}
