//! Porthole on tokio: the [`Runtime`] implementation, [`serve`] for embedding
//! the whole daemon, [`start`] for mounting the API in your own server, and
//! the `porthole` binary.
//!
//! ```no_run
//! # async fn run() -> Result<(), porthole_tokio::StartError> {
//! let server = porthole_tokio::serve(porthole_tokio::ServerConfig::default()).await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper_util::rt::TokioIo;
use porthole_driver::{
    AsyncTcpListener, AsyncTimer, AsyncUdpSocket, AsyncUnixListener, BoxFuture, ConnectFuture,
    Connection, Direction, SockRef, TcpConnection,
};

pub use porthole_driver::{
    porthole_core, AllowedOrigins, Api, ApiBody, HttpConfig, InheritedListener, Listen, ListenAddr,
    Porthole, Runtime, Server, ServerConfig, StartError, Token, DEFAULT_LISTEN,
};

/// The tokio [`Runtime`]: spawns on the runtime that was current when it was made.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: tokio::runtime::Handle,
}

impl TokioRuntime {
    /// The runtime of the calling context.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn current() -> Self {
        TokioRuntime {
            handle: tokio::runtime::Handle::current(),
        }
    }

    /// A specific runtime.
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        TokioRuntime { handle }
    }
}

impl Runtime for TokioRuntime {
    fn spawn(&self, future: BoxFuture) {
        self.handle.spawn(future);
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        // Timers are created inside the runtime's context, whoever asks.
        let _guard = self.handle.enter();
        Box::pin(Timer {
            sleep: tokio::time::sleep_until(deadline.into()),
        })
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        let _guard = self.handle.enter();
        Ok(Box::new(UdpSocket(tokio::net::UdpSocket::from_std(
            socket,
        )?)))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Box<dyn AsyncTcpListener>> {
        let _guard = self.handle.enter();
        Ok(Box::new(TcpListener(tokio::net::TcpListener::from_std(
            listener,
        )?)))
    }

    fn wrap_unix_listener(
        &self,
        listener: std::os::unix::net::UnixListener,
    ) -> io::Result<Box<dyn AsyncUnixListener>> {
        let _guard = self.handle.enter();
        Ok(Box::new(UnixListener(tokio::net::UnixListener::from_std(
            listener,
        )?)))
    }

    fn connect_tcp(&self, addr: SocketAddr) -> ConnectFuture {
        // Connected on the runtime itself: tokio's sockets register with the
        // reactor of the context they are made in, and the caller's future
        // may be polled anywhere.
        let connecting = self.handle.spawn(tokio::net::TcpStream::connect(addr));
        Box::pin(async move { Ok(tcp_connection(connecting.await.map_err(io::Error::other)??)) })
    }

    fn connect_unix(&self, path: &std::path::Path) -> ConnectFuture {
        let connecting = self
            .handle
            .spawn(tokio::net::UnixStream::connect(path.to_owned()));
        Box::pin(async move {
            Ok(unix_connection(
                connecting.await.map_err(io::Error::other)??,
            ))
        })
    }
}

/// A tokio TCP stream as a [`Connection`], accepted or made.
fn tcp_connection(stream: tokio::net::TcpStream) -> Box<dyn Connection> {
    Box::new(TcpConnection::new(TokioIo::new(stream), |io, on| {
        io.inner().set_nodelay(on)
    }))
}

/// A tokio Unix domain stream as a [`Connection`], accepted or made.
fn unix_connection(stream: tokio::net::UnixStream) -> Box<dyn Connection> {
    Box::new(TcpConnection::unix(TokioIo::new(stream)))
}

pin_project_lite::pin_project! {
    /// tokio's `Sleep`, which `reset`s in place.
    #[derive(Debug)]
    struct Timer {
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl AsyncTimer for Timer {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        self.project().sleep.reset(deadline.into());
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        std::future::Future::poll(self.project().sleep, cx)
    }
}

/// A tokio UDP socket.
#[derive(Debug)]
struct UdpSocket(tokio::net::UdpSocket);

impl AsyncUdpSocket for UdpSocket {
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_recv_ready(cx)
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.try_recv_from(buf)
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_send_ready(cx)
    }

    fn try_send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<usize> {
        self.0.try_send_to(buf, dest)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn try_io(
        &self,
        direction: Direction,
        io: &mut dyn FnMut(SockRef<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let interest = match direction {
            Direction::Recv => tokio::io::Interest::READABLE,
            Direction::Send => tokio::io::Interest::WRITABLE,
        };
        self.0.try_io(interest, || io(SockRef::from(&self.0)))
    }
}

/// A tokio TCP listener.
#[derive(Debug)]
struct TcpListener(tokio::net::TcpListener);

impl AsyncTcpListener for TcpListener {
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Box<dyn Connection>, SocketAddr)>> {
        self.0
            .poll_accept(cx)
            .map_ok(|(stream, peer)| (tcp_connection(stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A tokio Unix domain socket listener.
#[derive(Debug)]
struct UnixListener(tokio::net::UnixListener);

impl AsyncUnixListener for UnixListener {
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn Connection>>> {
        self.0
            .poll_accept(cx)
            .map_ok(|(stream, _)| unix_connection(stream))
    }
}

/// Starts the whole daemon on the current tokio runtime: Porthole plus a
/// listener on each of `config.listen`. Stop it with [`Server::shutdown`].
///
/// # Panics
///
/// Outside a tokio runtime.
pub async fn serve(config: ServerConfig) -> Result<Server, StartError> {
    Server::start(Arc::new(TokioRuntime::current()), config)
}

/// Starts Porthole on the current tokio runtime without a listener: serve
/// [`Porthole::api`] from your own hyper or axum server.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn start(config: porthole_core::Config, http: HttpConfig) -> Result<Porthole, StartError> {
    Porthole::start(Arc::new(TokioRuntime::current()), config, http)
}
