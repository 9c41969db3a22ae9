//! The command line both binaries share (`porthole` on tokio, `porthole-smol`
//! on smol): `serve` and its flags, each also read from a `PORTHOLE_*`
//! environment variable, `forward` (the `porthole-forward` crate's
//! [`porthole_forward::Args`]), logging set up from `RUST_LOG`, and each
//! command's life from start to exit ([`Command`]: the daemon, [`Serve`];
//! the forward, [`Forward`]), so that a binary only picks its runtime:
//!
//! ```no_run
//! # fn block_on(f: impl std::future::Future<Output = std::process::ExitCode>) -> std::process::ExitCode { unimplemented!() }
//! # fn my_runtime() -> std::sync::Arc<dyn porthole_driver::Runtime> { unimplemented!() }
//! use porthole_driver::cli::Command;
//!
//! fn main() -> std::process::ExitCode {
//!     let command = match Command::from_args("porthole-mine") {
//!         Ok(command) => command,
//!         Err(exit) => return exit,
//!     };
//!     block_on(command.run(my_runtime()))
//! }
//! ```

use std::fmt::Display;
use std::io::IsTerminal;
use std::ops::RangeInclusive;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub use clap::Parser;
use clap::{Args, CommandFactory, FromArgMatches, Subcommand};
use porthole_core::net::Network;
use porthole_core::{Config, ConfigError, Lease};

use crate::config::{HttpConfig, HttpConfigError};
use crate::edge::{AllowedOrigins, Origin};
use crate::listener::{InheritedListener, Listen};
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
    /// Give an unmodified UDP application a host port leased from a daemon,
    /// until Ctrl-C or SIGTERM (then unbind).
    Forward(ForwardArgs),
}

/// `porthole forward` flags: the forward's own ([`porthole_forward::Args`])
/// and the log format.
#[derive(Debug, Clone, Args)]
pub struct ForwardArgs {
    /// What to forward.
    #[command(flatten)]
    pub forward: porthole_forward::Args,
    /// Log lines as `text` (coloured only on a terminal) or `json`.
    #[arg(long, env = "PORTHOLE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// `porthole serve` flags. Defaults are [`porthole_core::Config::default()`]'s.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on: `ip:port` or `unix:/path` (repeat the flag, or
    /// separate with commas, for several). Loopback unless you say otherwise.
    /// Ignored when systemd hands over listeners (`LISTEN_FDS`).
    #[arg(
        long,
        env = "PORTHOLE_LISTEN",
        default_value = "127.0.0.1:7447",
        value_delimiter = ','
    )]
    pub listen: Vec<Listen>,
    /// Permissions of the socket files of `unix:` listeners, in octal.
    #[arg(long, env = "PORTHOLE_UNIX_MODE", default_value = "660", value_parser = parse_mode)]
    pub unix_mode: u32,
    /// Log lines as `text` (coloured only on a terminal) or `json`.
    #[arg(long, env = "PORTHOLE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
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
    /// Only allow binding ports in this range, e.g. `40000-40999` (port 0, any
    /// free port, only while the range holds every port from 1024 up).
    #[arg(long, env = "PORTHOLE_PORT_RANGE", value_parser = parse_port_range, default_value = "1024-65535")]
    pub port_range: RangeInclusive<u16>,
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
    /// Most payload bytes all bindings together hold (replay rings and
    /// deliveries in flight); datagrams beyond it are dropped and counted.
    #[arg(long, env = "PORTHOLE_MAX_BUFFERED_BYTES", default_value_t = Config::default().max_buffered_bytes)]
    pub max_buffered_bytes: usize,
    /// Receive buffer (SO_RCVBUF) asked for on every bound socket, in bytes;
    /// datagrams beyond it are dropped by the kernel and counted
    /// (`dropped_kernel`). 0 leaves the OS default.
    #[arg(long, env = "PORTHOLE_RECV_BUFFER", default_value_t = Config::default().recv_buffer)]
    pub recv_buffer: usize,
    /// Longest pause of a binding's socket reads, in milliseconds, while every
    /// subscriber of the binding is out of credit (its datagrams wait in the
    /// kernel meanwhile; after it, what they miss is lag). At most 1000; 0
    /// never pauses.
    #[arg(long, env = "PORTHOLE_MAX_READ_PAUSE_MS", default_value_t = Config::default().max_read_pause.as_millis() as u64)]
    pub max_read_pause_ms: u64,
    /// Seconds a stream ticket stays valid.
    #[arg(long, env = "PORTHOLE_TICKET_LIFETIME", default_value_t = Config::default().ticket_lifetime.as_secs())]
    pub ticket_lifetime: u64,
    /// Largest HTTP request body, in bytes.
    #[arg(long, env = "PORTHOLE_MAX_BODY", default_value_t = HttpConfig::default().max_request_body)]
    pub max_body: usize,
    /// Seconds between keep-alive comments on a quiet stream.
    #[arg(long, env = "PORTHOLE_KEEP_ALIVE", default_value_t = HttpConfig::default().keep_alive.as_secs())]
    pub keep_alive: u64,
    /// Web pages that may use the API from a browser (comma-separated exact
    /// origins such as `https://app.example.com`); default: loopback pages
    /// (`http(s)://localhost`, `127.0.0.1` or `[::1]`, any port).
    #[arg(long, env = "PORTHOLE_ALLOW_ORIGIN", value_delimiter = ',')]
    pub allow_origin: Vec<Origin>,
    /// Names the `Host` header may carry besides IP addresses and `localhost`
    /// (comma-separated), e.g. the name a reverse proxy forwards.
    #[arg(long, env = "PORTHOLE_ALLOW_HOST", value_delimiter = ',')]
    pub allow_host: Vec<String>,
    /// Only allow sending to these networks (comma-separated CIDRs).
    #[arg(long, env = "PORTHOLE_DEST_ALLOW", value_delimiter = ',')]
    pub dest_allow: Vec<Network>,
    /// Never send to these networks (comma-separated CIDRs).
    #[arg(long, env = "PORTHOLE_DEST_DENY", value_delimiter = ',')]
    pub dest_deny: Vec<Network>,
}

/// Flags that parse but do not make a usable configuration. Each message
/// names the flags and environment variables to change.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The token cannot be used.
    #[error("--token (PORTHOLE_TOKEN): {0}")]
    Token(#[from] TokenError),
    /// The engine's limits are inconsistent.
    #[error("{}", engine_message(.0))]
    Config(#[from] ConfigError),
    /// The HTTP settings are inconsistent.
    #[error("{}", http_message(.0))]
    Http(#[from] HttpConfigError),
}

/// The engine's refusal, in terms of the flags that set the fields.
fn engine_message(e: &ConfigError) -> String {
    match e {
        ConfigError::NoBindings => "--max-bindings (PORTHOLE_MAX_BINDINGS) must be at least 1".into(),
        ConfigError::ZeroLease => "--default-lease (PORTHOLE_DEFAULT_LEASE) and --max-lease (PORTHOLE_MAX_LEASE) must be at least 1 second".into(),
        ConfigError::EmptyRing => "--ring-datagrams (PORTHOLE_RING_DATAGRAMS) must be at least 1".into(),
        ConfigError::NoWindow => "--delivery-window (PORTHOLE_DELIVERY_WINDOW) must be at least 1".into(),
        ConfigError::NoSubscribers => "--max-subscribers (PORTHOLE_MAX_SUBSCRIBERS) must be at least 1".into(),
        ConfigError::EmptyPortRange => "--port-range (PORTHOLE_PORT_RANGE) is empty".into(),
        ConfigError::DefaultLeaseAboveMax { default, max } => format!(
            "--default-lease (PORTHOLE_DEFAULT_LEASE) is {default} s, longer than --max-lease (PORTHOLE_MAX_LEASE), {max} s"
        ),
        ConfigError::MaxPayloadOutOfRange { value, max } => format!(
            "--max-payload (PORTHOLE_MAX_PAYLOAD) is {value}; UDP carries at most {max} bytes"
        ),
        ConfigError::NoBufferSpace => "--max-buffered-bytes (PORTHOLE_MAX_BUFFERED_BYTES) must be at least 1".into(),
        ConfigError::ZeroTicketLifetime => "--ticket-lifetime (PORTHOLE_TICKET_LIFETIME) must be at least 1 second".into(),
        ConfigError::ReadPauseTooLong { value, max } => format!(
            "--max-read-pause-ms (PORTHOLE_MAX_READ_PAUSE_MS) is {} ms, above the limit of {} ms",
            value.as_millis(),
            max.as_millis()
        ),
    }
}

/// The HTTP configuration's refusal, in terms of the flags that set the fields.
fn http_message(e: &HttpConfigError) -> String {
    match e {
        HttpConfigError::ZeroKeepAlive => {
            "--keep-alive (PORTHOLE_KEEP_ALIVE) must be at least 1 second".into()
        }
        HttpConfigError::ZeroMaxBody => "--max-body (PORTHOLE_MAX_BODY) must be at least 1".into(),
        HttpConfigError::BadHost(host) => {
            format!("--allow-host (PORTHOLE_ALLOW_HOST): {host:?} is not a DNS name")
        }
    }
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
            max_buffered_bytes: self.max_buffered_bytes,
            allow_remote: self.allow_remote,
            port_range: self.port_range.clone(),
            dest_allow: self.dest_allow.clone(),
            dest_deny: self.dest_deny.clone(),
            ticket_lifetime: Duration::from_secs(self.ticket_lifetime),
            recv_buffer: self.recv_buffer,
            max_read_pause: Duration::from_millis(self.max_read_pause_ms),
        };
        engine.validate()?;
        let http = HttpConfig {
            token: self.token.as_deref().map(Token::new).transpose()?,
            max_request_body: self.max_body,
            keep_alive: Duration::from_secs(self.keep_alive),
            allowed_origins: if self.allow_origin.is_empty() {
                AllowedOrigins::Loopback
            } else {
                AllowedOrigins::List(self.allow_origin.clone())
            },
            allowed_hosts: self.allow_host.clone(),
        };
        http.validate()?;
        let listen = self
            .listen
            .iter()
            .map(|listen| match listen {
                Listen::Unix { path, .. } => Listen::Unix {
                    path: path.clone(),
                    mode: self.unix_mode,
                },
                tcp => tcp.clone(),
            })
            .collect();
        Ok(ServerConfig {
            listen,
            http,
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
    /// Listeners systemd handed over; they replace `--listen`.
    inherited: Vec<InheritedListener>,
}

/// Exit status for flags that parse but do not make a usable configuration
/// (clap uses the same for flags that do not parse).
const USAGE_ERROR: u8 = 2;

/// A command line, parsed: what a binary's `main` runs on its runtime.
#[derive(Debug)]
pub enum Command {
    /// `serve`: the daemon.
    Serve(Serve),
    /// `forward`: a relay to a leased host port.
    Forward(Forward),
}

impl Command {
    /// Parses the process's arguments and environment and sets up logging.
    /// Help, version and usage errors are printed and exit the process as clap
    /// does; an unusable configuration is printed and returned as exit status 2.
    pub fn from_args(name: &'static str) -> Result<Self, ExitCode> {
        let mut matches = Cli::command().name(name).get_matches();
        let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit());
        match cli.command {
            CliCommand::Serve(args) => Serve::new(name, args).map(Command::Serve),
            CliCommand::Forward(args) => Forward::new(name, args).map(Command::Forward),
        }
    }

    /// Runs the command on `runtime` until it ends (Ctrl-C or SIGTERM for
    /// both), and returns the process's exit status.
    pub async fn run(self, runtime: Arc<dyn Runtime>) -> ExitCode {
        match self {
            Command::Serve(serve) => serve.run(runtime).await,
            Command::Forward(forward) => forward.run(runtime).await,
        }
    }

    /// Reports that the command cannot run (say, its runtime did not start)
    /// and returns the exit status for it.
    pub fn fail(&self, why: impl Display) -> ExitCode {
        let name = match self {
            Command::Serve(serve) => serve.name,
            Command::Forward(forward) => forward.name,
        };
        eprintln!("{name}: {why}");
        ExitCode::FAILURE
    }
}

/// A `forward` command line, parsed: its addresses resolved and its limits checked.
#[derive(Debug)]
pub struct Forward {
    name: &'static str,
    plan: porthole_forward::Plan,
}

impl Forward {
    fn new(name: &'static str, args: ForwardArgs) -> Result<Self, ExitCode> {
        init_logging_as(args.log_format);
        match args.forward.plan() {
            Ok(plan) => Ok(Forward { name, plan }),
            Err(e) => {
                eprintln!("{name} forward: {e}");
                Err(ExitCode::from(USAGE_ERROR))
            }
        }
    }

    /// What the command line asks for.
    pub fn plan(&self) -> &porthole_forward::Plan {
        &self.plan
    }

    /// Leases the host port and relays until Ctrl-C or SIGTERM, then unbinds
    /// ([`porthole_forward::run_cli`]: the status line, the counters, exit
    /// status 1 when the daemon refuses or the lease ends).
    pub async fn run(self, runtime: Arc<dyn Runtime>) -> ExitCode {
        let signal = ShutdownSignal::install();
        porthole_forward::run_cli(self.name, runtime, self.plan, signal.recv()).await
    }
}

impl Serve {
    /// Sets up logging and checks `args`; an unusable configuration is
    /// printed and returned as exit status 2.
    fn new(name: &'static str, args: ServeArgs) -> Result<Self, ExitCode> {
        init_logging_as(args.log_format);
        let mut config = match args.server_config() {
            Ok(config) => config,
            Err(e) => {
                eprintln!("{name}: {e}");
                return Err(ExitCode::from(USAGE_ERROR));
            }
        };
        // Before any thread starts: taking them clears LISTEN_FDS from the environment.
        let inherited = match inherited_listeners() {
            Ok(inherited) => inherited,
            Err(e) => {
                eprintln!("{name}: socket activation: {e}");
                return Err(ExitCode::FAILURE);
            }
        };
        if !inherited.is_empty() {
            tracing::info!(
                count = inherited.len(),
                "socket activation: serving the inherited listeners instead of --listen"
            );
            config.listen.clear();
        }
        Ok(Serve {
            name,
            config,
            inherited,
        })
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
    /// Prints one line on stdout per listener once it listens, `porthole
    /// listening on http://ADDR` (or `unix:/PATH`), which scripts (and the
    /// tests) read the address from.
    pub async fn run(self, runtime: Arc<dyn Runtime>) -> ExitCode {
        // Before listening: a signal that comes once the address is out must
        // shut down gracefully, not kill the process.
        let signal = ShutdownSignal::install();
        let Serve {
            name,
            config,
            inherited,
        } = self;
        let server = match Server::start_with(runtime, config, inherited) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for address in server.addresses() {
            println!("porthole listening on {address}");
        }
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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs text to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    init_logging_as(LogFormat::Text);
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`).
pub fn init_logging_as(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The listeners of systemd socket activation (`LISTEN_FDS` for this
/// process's `LISTEN_PID`, from fd 3 on): TCP or Unix stream sockets.
fn inherited_listeners() -> std::io::Result<Vec<InheritedListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut listeners = Vec::new();
    for index in 0..fds.len() {
        if let Ok(Some(tcp)) = fds.take_tcp_listener(index) {
            listeners.push(InheritedListener::Tcp(tcp));
            continue;
        }
        if let Some(unix) = fds.take_unix_listener(index)? {
            listeners.push(InheritedListener::Unix(unix));
        }
    }
    Ok(listeners)
}

/// An octal permission mode such as `660` or `0o600`.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{s:?} is not an octal mode such as 660")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerConfig, String> {
        let mut argv = vec!["porthole", "serve"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let CliCommand::Serve(serve) = cli.command else {
            panic!("parsed as serve");
        };
        serve.server_config().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_loopback_and_the_engine_defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen, vec![Listen::Tcp(crate::DEFAULT_LISTEN)]);
        assert_eq!(config.http, HttpConfig::default());
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
            "--max-buffered-bytes=5000",
            "--ticket-lifetime=9",
            "--recv-buffer=65536",
            "--max-read-pause-ms=25",
            "--allow-origin=https://app.example.com,http://localhost:5173",
            "--allow-host=porthole.internal",
        ])
        .unwrap();
        let e = &config.engine;
        assert_eq!(
            config.listen,
            vec![Listen::Tcp("127.0.0.1:0".parse().unwrap())]
        );
        assert_eq!(config.http.token, Some(Token::new("t0k").unwrap()));
        assert_eq!(e.max_bindings, 7);
        assert_eq!(e.max_lease, Lease::from_secs(60));
        assert_eq!(e.default_lease, Lease::from_secs(30));
        assert!(e.allow_remote);
        assert_eq!(e.port_range, 40000..=40010);
        assert_eq!(e.max_subscribers_per_binding, 3);
        assert_eq!((e.ring_datagrams, e.ring_bytes), (9, 1000));
        assert_eq!(e.delivery_window, 5);
        assert_eq!(e.max_payload, 1200);
        assert_eq!(config.http.max_request_body, 4096);
        assert_eq!(config.http.keep_alive, Duration::from_secs(2));
        assert_eq!(e.dest_deny.len(), 2);
        assert_eq!(e.max_buffered_bytes, 5000);
        assert_eq!(e.ticket_lifetime, Duration::from_secs(9));
        assert_eq!(e.recv_buffer, 65536);
        assert_eq!(e.max_read_pause, Duration::from_millis(25));
        assert!(config
            .http
            .allowed_origins
            .allows(b"https://app.example.com"));
        assert!(!config.http.allowed_origins.allows(b"http://localhost:3000"));
        assert_eq!(
            config.http.allowed_hosts,
            vec!["porthole.internal".to_owned()]
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--port-range=5-4"]).is_err());
        assert!(parse(&["--port-range=x"]).is_err());
        assert!(parse(&["--max-bindings=0"]).is_err());
        assert!(parse(&["--token="]).is_err());
        assert!(parse(&["--dest-deny=nope"]).is_err());
        assert!(parse(&["--listen=nowhere"]).is_err());
        assert!(parse(&["--unix-mode=999"]).is_err());
        assert!(parse(&["--log-format=xml"]).is_err());
        assert!(parse(&["--allow-origin=localhost:3000"]).is_err());
    }

    #[test]
    fn inconsistent_flags_are_refused_naming_the_flag_and_variable() {
        for (args, names) in [
            (
                &["--default-lease=100", "--max-lease=10"][..],
                &["--default-lease", "PORTHOLE_DEFAULT_LEASE", "--max-lease"][..],
            ),
            (
                &["--max-payload=70000"],
                &["--max-payload", "PORTHOLE_MAX_PAYLOAD"],
            ),
            (
                &["--keep-alive=0"],
                &["--keep-alive", "PORTHOLE_KEEP_ALIVE"],
            ),
            (
                &["--max-bindings=0"],
                &["--max-bindings", "PORTHOLE_MAX_BINDINGS"],
            ),
            (&["--max-body=0"], &["--max-body", "PORTHOLE_MAX_BODY"]),
            (
                &["--allow-host=a b"],
                &["--allow-host", "PORTHOLE_ALLOW_HOST"],
            ),
        ] {
            let message = parse(args).expect_err("refused");
            for name in names {
                assert!(message.contains(name), "{args:?}: {message}");
            }
            assert!(!message.contains("max_"), "names a struct field: {message}");
        }
    }

    #[test]
    fn privileged_ports_are_not_handed_out_by_default() {
        assert_eq!(parse(&[]).unwrap().engine.port_range, 1024..=65535);
    }

    #[test]
    fn listen_repeats_and_unix_sockets_take_the_mode() {
        let config = parse(&[
            "--listen=127.0.0.1:0",
            "--listen=unix:/tmp/a.sock,[::1]:0",
            "--unix-mode=600",
        ])
        .unwrap();
        assert_eq!(
            config.listen,
            vec![
                Listen::Tcp("127.0.0.1:0".parse().unwrap()),
                Listen::Unix {
                    path: "/tmp/a.sock".into(),
                    mode: 0o600
                },
                Listen::Tcp("[::1]:0".parse().unwrap()),
            ]
        );
    }
}
