//! The `porthole forward` command line, and the plan it resolves to.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use porthole_client::{ParseServerError, Server};

use crate::peers::{PeerLimits, PeerLimitsError, DEFAULT_MAX_PEERS, DEFAULT_PEER_IDLE};

/// Default of `--server`: the daemon's default listener.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7447";

/// `porthole forward` flags: give an unmodified UDP application a host port
/// leased from a Porthole daemon, one of two ways.
///
/// - `--remote HOST_ADDR --to APP_ADDR`: datagrams that reach the leased host
///   address go to the application; its replies go back to each sender.
/// - `--listen LOCAL_ADDR --dest HOST:PORT`: datagrams the application sends
///   to the local address leave from the leased host port to the destination;
///   the destination's replies come back to the application.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("direction").required(true).args(["to", "listen"])))]
pub struct Args {
    /// The Porthole daemon: `http://HOST:PORT` or `unix:/PATH`.
    #[arg(long, env = "PORTHOLE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token for the daemon (if it was started with one).
    #[arg(long, env = "PORTHOLE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Host address to lease. Required with `--to`; with `--listen`, default
    /// any free port on 127.0.0.1 (on 0.0.0.0 when `--dest` is not loopback).
    #[arg(long, value_name = "HOST_ADDR")]
    pub remote: Option<SocketAddr>,
    /// The application (a UDP server) that datagrams reaching `--remote` go to.
    #[arg(long, value_name = "APP_ADDR", requires = "remote", conflicts_with_all = ["listen", "dest"])]
    pub to: Option<SocketAddr>,
    /// Local address the application sends to; its datagrams leave from the
    /// leased host port to `--dest`.
    #[arg(long, value_name = "LOCAL_ADDR", requires = "dest")]
    pub listen: Option<SocketAddr>,
    /// Where the application's datagrams go, `HOST:PORT` (resolved once, at start).
    #[arg(long, value_name = "HOST:PORT", requires = "listen")]
    pub dest: Option<String>,
    /// Lease to ask for, in seconds (renewed before it runs out). Default: the daemon's.
    #[arg(long, value_name = "SECONDS")]
    pub lease: Option<u64>,
    /// Seconds without traffic after which a remote peer's local socket is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_PEER_IDLE.as_secs())]
    pub peer_idle: u64,
    /// Most remote peers relayed at once; beyond it the least recently active one's socket is closed.
    #[arg(long, default_value_t = DEFAULT_MAX_PEERS)]
    pub max_peers: usize,
}

/// What `porthole forward` does, with every address resolved and every limit checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The daemon, with the token if one was given.
    pub server: Server,
    /// The host address to lease.
    pub remote: SocketAddr,
    /// Whether the lease must reach beyond loopback (the daemon must allow it:
    /// `porthole serve --allow-remote`).
    pub allow_remote: bool,
    /// The lease to ask for; `None` for the daemon's default.
    pub lease: Option<Duration>,
    /// Which way datagrams are relayed.
    pub direction: Direction,
}

/// Which way a forward relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// `--remote … --to …`: peers of the host port reach a local server.
    Inbound {
        /// The application's address.
        to: SocketAddr,
        /// How long and how many peer sockets live.
        limits: PeerLimits,
    },
    /// `--listen … --dest …`: a local client reaches a destination from the host port.
    Outbound {
        /// The local address the application sends to.
        listen: SocketAddr,
        /// Where its datagrams go.
        dest: SocketAddr,
    },
}

/// Flags that parse but do not describe a forward.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// `--to` without `--remote` (clap also refuses it; kept for callers that build [`Args`] by hand).
    #[error("--to needs --remote (the host address to lease)")]
    NoRemote,
    /// Neither direction, or both.
    #[error("give either --remote and --to, or --listen and --dest")]
    NoDirection,
    /// `--dest` does not resolve.
    #[error("--dest {dest}: {source}")]
    Dest {
        /// The value given.
        dest: String,
        /// Why it does not resolve.
        source: io::Error,
    },
    /// `--dest` resolves to nothing.
    #[error("--dest {0}: no address")]
    DestEmpty(String),
    /// `--server` is not an address.
    #[error("--server (PORTHOLE_SERVER): {0}")]
    Server(#[from] ParseServerError),
    /// `--lease 0`.
    #[error("--lease must be at least 1 second")]
    ZeroLease,
    /// The peer limits.
    #[error(transparent)]
    Peers(#[from] PeerLimitsError),
}

impl Args {
    /// Resolves `--dest` and checks the flags together.
    pub fn plan(&self) -> Result<Plan, ArgsError> {
        let mut server = Server::parse(&self.server)?;
        if let Some(token) = &self.token {
            server = server.with_token(token.clone());
        }
        let lease = match self.lease {
            Some(0) => return Err(ArgsError::ZeroLease),
            secs => secs.map(Duration::from_secs),
        };
        let (remote, direction) = match (self.to, self.listen, &self.dest) {
            (Some(to), None, None) => {
                let limits = PeerLimits {
                    idle: Duration::from_secs(self.peer_idle),
                    max_peers: self.max_peers,
                };
                limits.validate()?;
                let remote = self.remote.ok_or(ArgsError::NoRemote)?;
                (remote, Direction::Inbound { to, limits })
            }
            (None, Some(listen), Some(dest)) => {
                let dest = resolve(dest)?;
                let remote = self.remote.unwrap_or_else(|| any_port_towards(dest));
                (remote, Direction::Outbound { listen, dest })
            }
            _ => return Err(ArgsError::NoDirection),
        };
        let allow_remote = !remote.ip().is_loopback()
            || matches!(direction, Direction::Outbound { dest, .. } if !dest.ip().is_loopback());
        Ok(Plan {
            server,
            remote,
            allow_remote,
            lease,
            direction,
        })
    }
}

/// The first address `HOST:PORT` resolves to.
fn resolve(dest: &str) -> Result<SocketAddr, ArgsError> {
    let mut addrs = dest.to_socket_addrs().map_err(|source| ArgsError::Dest {
        dest: dest.to_owned(),
        source,
    })?;
    addrs
        .next()
        .ok_or_else(|| ArgsError::DestEmpty(dest.to_owned()))
}

/// Any free host port that can reach `dest`: on loopback for a loopback
/// destination (no `allow_remote` needed), on every interface otherwise.
fn any_port_towards(dest: SocketAddr) -> SocketAddr {
    let ip = match (dest.ip(), dest.ip().is_loopback()) {
        (IpAddr::V4(_), true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (IpAddr::V4(_), false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (IpAddr::V6(_), true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (IpAddr::V6(_), false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(args: &[&str]) -> Result<Args, String> {
        let argv = std::iter::once("forward").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|cli| cli.args)
            .map_err(|e| e.to_string())
    }

    fn plan(args: &[&str]) -> Result<Plan, String> {
        parse(args)?.plan().map_err(|e| e.to_string())
    }

    #[test]
    fn inbound_leases_the_remote_address_with_the_default_limits() {
        let plan = plan(&["--remote=127.0.0.1:5353", "--to=127.0.0.1:53"]).unwrap();
        assert_eq!(plan.server, Server::parse(DEFAULT_SERVER).unwrap());
        assert_eq!(plan.remote, "127.0.0.1:5353".parse().unwrap());
        assert!(!plan.allow_remote);
        assert_eq!(plan.lease, None);
        assert_eq!(
            plan.direction,
            Direction::Inbound {
                to: "127.0.0.1:53".parse().unwrap(),
                limits: PeerLimits::default(),
            }
        );
    }

    #[test]
    fn a_lease_on_every_interface_asks_for_allow_remote() {
        let plan = plan(&[
            "--remote=0.0.0.0:5353",
            "--to=127.0.0.1:53",
            "--peer-idle=5",
            "--max-peers=3",
            "--lease=30",
            "--server=unix:/run/porthole.sock",
            "--token=t0k",
        ])
        .unwrap();
        assert!(plan.allow_remote);
        assert_eq!(plan.lease, Some(Duration::from_secs(30)));
        assert_eq!(
            plan.server,
            Server::parse("unix:/run/porthole.sock")
                .unwrap()
                .with_token("t0k")
        );
        let Direction::Inbound { limits, .. } = plan.direction else {
            panic!("inbound");
        };
        assert_eq!(limits.idle, Duration::from_secs(5));
        assert_eq!(limits.max_peers, 3);
    }

    #[test]
    fn outbound_leases_any_loopback_port_for_a_loopback_destination() {
        let plan = plan(&["--listen=127.0.0.1:9000", "--dest=127.0.0.1:7000"]).unwrap();
        assert_eq!(plan.remote, "127.0.0.1:0".parse().unwrap());
        assert!(!plan.allow_remote);
        assert_eq!(
            plan.direction,
            Direction::Outbound {
                listen: "127.0.0.1:9000".parse().unwrap(),
                dest: "127.0.0.1:7000".parse().unwrap(),
            }
        );
        let v6 = self::plan(&["--listen=[::1]:9000", "--dest=[::1]:7000"]).unwrap();
        assert_eq!(v6.remote, "[::1]:0".parse().unwrap());
    }

    #[test]
    fn outbound_to_a_remote_destination_asks_for_allow_remote() {
        // Resolving an IP literal makes no DNS query.
        let plan = plan(&["--listen=127.0.0.1:9000", "--dest=192.0.2.7:53"]).unwrap();
        assert_eq!(plan.remote, "0.0.0.0:0".parse().unwrap());
        assert!(plan.allow_remote);
    }

    #[test]
    fn flags_of_both_directions_or_neither_are_refused() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--remote=127.0.0.1:1"]).is_err());
        assert!(parse(&["--to=127.0.0.1:1"]).is_err(), "--to needs --remote");
        assert!(
            parse(&["--listen=127.0.0.1:1"]).is_err(),
            "--listen needs --dest"
        );
        assert!(parse(&[
            "--remote=127.0.0.1:1",
            "--to=127.0.0.1:2",
            "--listen=127.0.0.1:3",
            "--dest=127.0.0.1:4"
        ])
        .is_err());
    }

    #[test]
    fn unusable_values_are_refused_naming_the_flag() {
        for (args, flag) in [
            (
                &["--remote=127.0.0.1:1", "--to=127.0.0.1:2", "--peer-idle=0"][..],
                "--peer-idle",
            ),
            (
                &["--remote=127.0.0.1:1", "--to=127.0.0.1:2", "--max-peers=0"],
                "--max-peers",
            ),
            (
                &["--remote=127.0.0.1:1", "--to=127.0.0.1:2", "--lease=0"],
                "--lease",
            ),
            (&["--listen=127.0.0.1:1", "--dest=no-port"], "--dest"),
            (
                &[
                    "--listen=127.0.0.1:1",
                    "--dest=127.0.0.1:2",
                    "--server=https://x",
                ],
                "--server",
            ),
        ] {
            let message = plan(args).expect_err("refused");
            assert!(message.contains(flag), "{args:?}: {message}");
        }
    }
}
