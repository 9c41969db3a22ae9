//! Where the server listens: TCP addresses, Unix domain sockets, and
//! listeners inherited through systemd socket activation.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::task::{Context, Poll};

use crate::runtime::{AsyncTcpListener, Connection, Runtime};

#[cfg(unix)]
use crate::runtime::AsyncUnixListener;

/// Permissions of a Unix socket file unless told otherwise: owner and group
/// may connect, nobody else.
pub const DEFAULT_UNIX_MODE: u32 = 0o660;

/// An address to listen on: `127.0.0.1:7447`, `[::1]:7447`, or
/// `unix:/run/porthole.sock` (parsed by [`FromStr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (port 0: any free port).
    Tcp(SocketAddr),
    /// A Unix domain socket at `path`, created with permissions `mode`. A stale
    /// socket file there (nobody accepts on it) is replaced; the file is
    /// removed when the server shuts down.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// Its permission bits, e.g. `0o660`.
        mode: u32,
    },
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Self {
        Listen::Tcp(addr)
    }
}

/// A `--listen` value that is neither `ip:port` nor `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither ip:port nor unix:/path")]
pub struct ParseListenError(String);

impl FromStr for Listen {
    type Err = ParseListenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ParseListenError(s.to_owned()));
            }
            return Ok(Listen::Unix {
                path: PathBuf::from(path),
                mode: DEFAULT_UNIX_MODE,
            });
        }
        s.trim()
            .parse()
            .map(Listen::Tcp)
            .map_err(|_| ParseListenError(s.to_owned()))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix { path, .. } => write!(f, "unix:{}", path.display()),
        }
    }
}

/// An address the server listens on, once listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP listener's address (with the port the OS chose).
    Tcp(SocketAddr),
    /// A Unix domain socket's path (`None` for an unnamed inherited one).
    Unix(Option<PathBuf>),
}

impl fmt::Display for ListenAddr {
    /// As a URL where there is one: `http://127.0.0.1:7447`, `unix:/run/porthole.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "http://{addr}"),
            ListenAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            ListenAddr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

/// A listening socket handed to the server ready-made, as systemd socket
/// activation does (see `porthole_driver::cli`).
#[derive(Debug)]
pub enum InheritedListener {
    /// A listening TCP socket.
    Tcp(std::net::TcpListener),
    /// A listening Unix stream socket.
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
}

/// A listener registered with the runtime.
#[derive(Debug)]
pub(crate) enum AnyListener {
    Tcp(Box<dyn AsyncTcpListener>),
    #[cfg(unix)]
    Unix(Box<dyn AsyncUnixListener>),
}

impl AnyListener {
    pub(crate) fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Box<dyn Connection>>> {
        match self {
            AnyListener::Tcp(listener) => listener.poll_accept(cx).map_ok(|(io, peer)| {
                if let Err(e) = io.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                }
                io
            }),
            #[cfg(unix)]
            AnyListener::Unix(listener) => listener.poll_accept(cx),
        }
    }
}

/// A listener ready to be served, and what to clean up after it.
pub(crate) struct Opened {
    pub(crate) listener: AnyListener,
    pub(crate) addr: ListenAddr,
    /// The socket file this server created, removed at shutdown.
    pub(crate) created: Option<PathBuf>,
}

/// Binds `listen` and registers it with `runtime`.
pub(crate) fn open(runtime: &dyn Runtime, listen: &Listen) -> io::Result<Opened> {
    match listen {
        Listen::Tcp(addr) => {
            let listener = std::net::TcpListener::bind(addr)?;
            adopt(runtime, InheritedListener::Tcp(listener))
        }
        #[cfg(unix)]
        Listen::Unix { path, mode } => {
            let listener = bind_unix(path, *mode)?;
            let mut opened = adopt(runtime, InheritedListener::Unix(listener))?;
            opened.created = Some(path.clone());
            Ok(opened)
        }
        #[cfg(not(unix))]
        Listen::Unix { .. } => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Unix domain sockets need a Unix host",
        )),
    }
}

/// Registers an already listening socket with `runtime`.
pub(crate) fn adopt(runtime: &dyn Runtime, listener: InheritedListener) -> io::Result<Opened> {
    match listener {
        InheritedListener::Tcp(listener) => {
            listener.set_nonblocking(true)?;
            let addr = ListenAddr::Tcp(listener.local_addr()?);
            Ok(Opened {
                listener: AnyListener::Tcp(runtime.wrap_tcp_listener(listener)?),
                addr,
                created: None,
            })
        }
        #[cfg(unix)]
        InheritedListener::Unix(listener) => {
            listener.set_nonblocking(true)?;
            let addr =
                ListenAddr::Unix(listener.local_addr()?.as_pathname().map(Path::to_path_buf));
            Ok(Opened {
                listener: AnyListener::Unix(runtime.wrap_unix_listener(listener)?),
                addr,
                created: None,
            })
        }
    }
}

/// Binds a Unix socket at `path`, replacing a stale socket file (one nobody
/// accepts on: its server died), never any other file.
#[cfg(unix)]
fn bind_unix(path: &Path, mode: u32) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::net::{UnixListener, UnixStream};

    let listener = match UnixListener::bind(path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let is_socket = std::fs::symlink_metadata(path)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false);
            let stale = is_socket
                && UnixStream::connect(path)
                    .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused);
            if !stale {
                return Err(e);
            }
            tracing::info!(path = %path.display(), "replacing a stale socket file");
            std::fs::remove_file(path)?;
            UnixListener::bind(path)?
        }
        other => other?,
    };
    // Between bind and here the file has the umask's permissions; a
    // directory only the service may enter (systemd's RuntimeDirectory) closes that gap.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_parses_tcp_and_unix() {
        assert_eq!(
            "127.0.0.1:7447".parse(),
            Ok(Listen::Tcp("127.0.0.1:7447".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/porthole.sock".parse(),
            Ok(Listen::Unix {
                path: "/run/porthole.sock".into(),
                mode: DEFAULT_UNIX_MODE
            })
        );
        for bad in ["unix:", "localhost", "/run/porthole.sock", ""] {
            assert!(bad.parse::<Listen>().is_err(), "{bad:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_stale_socket_file_is_replaced_and_a_live_one_or_a_file_is_not() {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::net::UnixListener;

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("api.sock");
        // A server that died leaves its file behind.
        drop(UnixListener::bind(&path).expect("bind"));
        let live = bind_unix(&path, 0o600).expect("the stale file is replaced");
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = bind_unix(&path, 0o600).expect_err("a live socket is kept");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(live);

        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, b"keep me").expect("write");
        assert!(bind_unix(&file, 0o600).is_err());
        assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
    }
}
