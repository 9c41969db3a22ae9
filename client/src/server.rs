//! Where the daemon is and how to authenticate to it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
#[cfg(unix)]
use std::path::PathBuf;
use std::str::FromStr;

/// A Porthole daemon: its API's address and the credentials to use.
///
/// ```
/// use porthole_client::Server;
///
/// let tcp = Server::parse("http://127.0.0.1:7447")?.with_token("s3cret");
/// let unix = Server::parse("unix:/run/porthole.sock")?;
/// # Ok::<(), porthole_client::ParseServerError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Server {
    endpoint: Endpoint,
    token: Option<String>,
}

/// Where the daemon's HTTP API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address (`http://ip:port`).
    Tcp(SocketAddr),
    /// A Unix domain socket (`unix:/path`).
    #[cfg(unix)]
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "http://{addr}"),
            #[cfg(unix)]
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A server address that [`Server::parse`] does not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad server address {input:?}: {reason} (expected http://ip:port, ip:port or unix:/path)")]
pub struct ParseServerError {
    input: String,
    reason: &'static str,
}

impl Server {
    /// Parses an address: `http://127.0.0.1:7447`, `http://[::1]:7447`,
    /// `http://localhost:7447` (127.0.0.1), `127.0.0.1:7447`, or
    /// `unix:/path/to/api.sock` (the forms `porthole serve --listen` takes).
    /// A URL without a port means port 80. Host names other than
    /// `localhost` are not resolved (the daemon listens on loopback or a
    /// Unix socket), and `https` is not supported.
    pub fn parse(input: &str) -> Result<Server, ParseServerError> {
        let fail = |reason| ParseServerError {
            input: input.to_owned(),
            reason,
        };
        if let Some(path) = input.strip_prefix("unix:") {
            #[cfg(unix)]
            {
                if path.is_empty() {
                    return Err(fail("empty socket path"));
                }
                return Ok(Server::unix(path));
            }
            #[cfg(not(unix))]
            {
                let _ = path;
                return Err(fail("Unix domain sockets need a Unix host"));
            }
        }
        if input.starts_with("https://") {
            return Err(fail("https is not supported"));
        }
        let (authority, default_port) = match input.strip_prefix("http://") {
            Some(rest) => {
                // Only a bare authority: the API's paths are the client's own.
                let authority = rest.strip_suffix('/').unwrap_or(rest);
                if authority.contains('/') {
                    return Err(fail("a path after the address"));
                }
                (authority, Some(80))
            }
            None => (input, None),
        };
        if let Ok(addr) = authority.parse::<SocketAddr>() {
            return Ok(Server::tcp(addr));
        }
        let (host, port) = match authority.rsplit_once(':') {
            // `[v6]` without a port has its colons inside the brackets.
            Some((host, port)) if !port.contains(']') => (
                host,
                Some(port.parse::<u16>().map_err(|_| fail("bad port"))?),
            ),
            _ => (authority, None),
        };
        let port = port.or(default_port).ok_or_else(|| fail("no port"))?;
        let ip = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            bare.parse::<IpAddr>()
                .map_err(|_| fail("the host is neither an IP address nor localhost"))?
        };
        Ok(Server::tcp(SocketAddr::new(ip, port)))
    }

    /// A daemon at a TCP address.
    pub fn tcp(addr: SocketAddr) -> Server {
        Server {
            endpoint: Endpoint::Tcp(addr),
            token: None,
        }
    }

    /// A daemon on a Unix domain socket.
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>) -> Server {
        Server {
            endpoint: Endpoint::Unix(path.into()),
            token: None,
        }
    }

    /// Authenticates every request with `Authorization: Bearer <token>` (the
    /// daemon's `--token`).
    pub fn with_token(mut self, token: impl Into<String>) -> Server {
        self.token = Some(token.into());
        self
    }

    /// Where the API listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The `Host` header: the address for TCP (an IP address passes the
    /// daemon's host check), `localhost` for a Unix socket.
    pub(crate) fn host_header(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(addr) => addr.to_string(),
            #[cfg(unix)]
            Endpoint::Unix(_) => "localhost".to_owned(),
        }
    }
}

impl FromStr for Server {
    type Err = ParseServerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Server::parse(s)
    }
}

// The token is a secret: never printed.
impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_addresses_and_unix_paths_parse() {
        let tcp = |s: &str| Server::parse(s).map(|s| s.endpoint().clone());
        let v4: SocketAddr = "127.0.0.1:7447".parse().unwrap();
        assert_eq!(tcp("http://127.0.0.1:7447"), Ok(Endpoint::Tcp(v4)));
        assert_eq!(tcp("http://127.0.0.1:7447/"), Ok(Endpoint::Tcp(v4)));
        assert_eq!(tcp("127.0.0.1:7447"), Ok(Endpoint::Tcp(v4)));
        assert_eq!(tcp("http://localhost:7447"), Ok(Endpoint::Tcp(v4)));
        assert_eq!(
            tcp("http://[::1]:9"),
            Ok(Endpoint::Tcp("[::1]:9".parse().unwrap()))
        );
        assert_eq!(
            tcp("http://127.0.0.1"),
            Ok(Endpoint::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            tcp("http://[::1]"),
            Ok(Endpoint::Tcp("[::1]:80".parse().unwrap()))
        );
        #[cfg(unix)]
        assert_eq!(
            tcp("unix:/run/p.sock"),
            Ok(Endpoint::Unix("/run/p.sock".into()))
        );
        for bad in [
            "https://127.0.0.1:1",
            "http://example.com:1",
            "http://127.0.0.1:1/v1",
            "http://127.0.0.1:x",
            "127.0.0.1",
            "unix:",
        ] {
            assert!(Server::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_is_never_printed() {
        let s = Server::parse("http://127.0.0.1:1")
            .unwrap()
            .with_token("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.token(), Some("hunter2"));
    }
}
