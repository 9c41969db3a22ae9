//! What Porthole's server (`porthole-driver`) and client (`porthole-client`)
//! need from an async runtime, and nothing more.
//!
//! Modelled on quinn's `Runtime`/`AsyncUdpSocket`/`AsyncTimer`: every trait is
//! object safe, so the driver and the client are compiled once and run on any
//! runtime that implements these few methods (tokio in `porthole-tokio`,
//! smol/async-io in `porthole-smol`). The server's sockets are created with
//! `std::net` and only handed to the runtime to be registered with its
//! reactor; a client's outgoing connections are made by the runtime
//! ([`Runtime::connect_tcp`], [`Runtime::connect_unix`]).
//!
//! `porthole-driver` re-exports this crate as `porthole_driver::runtime` (and
//! its items at its root), so a runtime depends on the driver alone.

#![forbid(unsafe_code)]

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
#[cfg(unix)]
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

pub use socket2::SockRef;

/// A boxed future the runtime runs to completion on its own.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An outgoing connection being made ([`Runtime::connect_tcp`], [`Runtime::connect_unix`]).
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Connection>>> + Send>>;

/// An async runtime: spawns tasks, keeps time, and turns bound std sockets into
/// async ones.
pub trait Runtime: Send + Sync + Debug + 'static {
    /// Runs `future` in the background until it completes. The driver never
    /// joins a task; it talks to its tasks over channels.
    fn spawn(&self, future: BoxFuture);

    /// A timer that fires at `deadline`. The driver keeps one timer and
    /// [`reset`](AsyncTimer::reset)s it, so a timer must be reusable after it fired.
    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>>;

    /// Registers a bound, non-blocking UDP socket with the runtime's reactor.
    fn wrap_udp_socket(&self, socket: UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>>;

    /// Registers a bound, listening, non-blocking TCP listener with the runtime's reactor.
    fn wrap_tcp_listener(&self, listener: TcpListener) -> io::Result<Box<dyn AsyncTcpListener>>;

    /// Registers a bound, listening, non-blocking Unix domain socket listener
    /// with the runtime's reactor. The default refuses, so that a runtime
    /// written before Unix listeners existed still builds (and serves TCP).
    #[cfg(unix)]
    fn wrap_unix_listener(
        &self,
        listener: std::os::unix::net::UnixListener,
    ) -> io::Result<Box<dyn AsyncUnixListener>> {
        drop(listener);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this runtime has no Unix domain socket listener",
        ))
    }

    /// Connects a TCP stream to `addr` (a client's connection to a server).
    /// The future may be polled from any thread or executor. The default
    /// refuses, so that a server-only runtime still builds.
    fn connect_tcp(&self, addr: SocketAddr) -> ConnectFuture {
        let _ = addr;
        Box::pin(std::future::ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this runtime cannot connect TCP streams",
        ))))
    }

    /// Connects a Unix domain stream socket to `path`. The default refuses,
    /// as [`connect_tcp`](Runtime::connect_tcp)'s does.
    #[cfg(unix)]
    fn connect_unix(&self, path: &Path) -> ConnectFuture {
        let _ = path;
        Box::pin(std::future::ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this runtime cannot connect Unix domain sockets",
        ))))
    }

    /// The current time. Runtimes with a mockable clock override it; the driver
    /// reads time only through this method.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A resettable timer.
pub trait AsyncTimer: Send + Sync + Debug {
    /// Makes the timer fire at `deadline` instead, whether or not it already fired.
    fn reset(self: Pin<&mut Self>, deadline: Instant);

    /// Ready once the deadline has passed, and again on every poll until the
    /// next [`reset`](AsyncTimer::reset); otherwise registers `cx`'s waker.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

/// A UDP socket registered with a reactor, used readiness-first: wait until
/// readable (or writable), then call the `try_` method until it would block.
///
/// Once a `try_` method returned [`io::ErrorKind::WouldBlock`], the next
/// `poll_*_ready` of that direction must wait for a new event from the reactor
/// instead of reporting ready again (tokio clears its recorded readiness in
/// `try_*`; async-io reports each event to `poll_readable`/`poll_writable` once).
/// The driver polls each direction from one task at a time, so a runtime may
/// keep a single waker per direction.
pub trait AsyncUdpSocket: Send + Sync + Debug {
    /// Ready when a datagram (or an error) can be read; otherwise registers `cx`'s waker.
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Reads one datagram without blocking.
    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;

    /// Ready when a datagram can be sent; otherwise registers `cx`'s waker.
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Sends one datagram without blocking.
    fn try_send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<usize>;

    /// The address the socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Runs `io`: non-blocking syscalls the driver makes on the socket itself
    /// (batched receives and sends, `recvmmsg`/`sendmmsg` on Linux), through
    /// a borrowed handle. When `io` fails with [`io::ErrorKind::WouldBlock`]
    /// the runtime treats it as a `try_` method's would-block for `direction`
    /// (tokio: `UdpSocket::try_io`, which clears the recorded readiness).
    ///
    /// The default reports [`io::ErrorKind::Unsupported`]: the driver then
    /// moves one datagram per call with `try_recv_from`/`try_send_to`, and
    /// cannot read the kernel's drop count (`dropped_kernel` stays 0).
    fn try_io(
        &self,
        direction: Direction,
        io: &mut dyn FnMut(SockRef<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let _ = (direction, io);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Which readiness a [`AsyncUdpSocket::try_io`] call consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Receiving.
    Recv,
    /// Sending.
    Send,
}

/// A TCP listener registered with a reactor.
pub trait AsyncTcpListener: Send + Sync + Debug {
    /// Accepts the next connection; otherwise registers `cx`'s waker.
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Box<dyn Connection>, SocketAddr)>>;

    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A Unix domain socket listener registered with a reactor.
#[cfg(unix)]
pub trait AsyncUnixListener: Send + Sync + Debug {
    /// Accepts the next connection; otherwise registers `cx`'s waker. Its
    /// [`Connection::set_nodelay`] does nothing (there is no Nagle on a Unix socket).
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn Connection>>>;
}

/// A TCP (or Unix domain) connection, accepted or made, as hyper reads and writes it.
pub trait Connection: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static {
    /// Sets `TCP_NODELAY`: the driver turns Nagle off so small SSE chunks
    /// leave at once (and the client so small WebSocket messages do).
    fn set_nodelay(&self, nodelay: bool) -> io::Result<()>;
}

/// A [`Connection`] made of a runtime's stream already adapted to hyper's IO
/// traits (tokio's `TokioIo`, smol-hyper's `FuturesIo`, …) and the way to set
/// `TCP_NODELAY` on it, so a runtime writes no forwarding code of its own.
/// For a Unix domain socket, [`TcpConnection::unix`] sets nothing.
pub struct TcpConnection<T> {
    io: T,
    set_nodelay: fn(&T, bool) -> io::Result<()>,
    vectored: bool,
}

impl<T: hyper::rt::Write> TcpConnection<T> {
    /// Wraps `io`; `set_nodelay` reaches the socket inside it.
    pub fn new(io: T, set_nodelay: fn(&T, bool) -> io::Result<()>) -> Self {
        let vectored = io.is_write_vectored();
        TcpConnection {
            io,
            set_nodelay,
            vectored,
        }
    }

    /// Wraps the stream of a Unix domain socket, which has no `TCP_NODELAY`.
    pub fn unix(io: T) -> Self {
        TcpConnection::new(io, |_, _| Ok(()))
    }

    /// Tells hyper the stream writes several buffers in one call (`writev`),
    /// for adapters that do so without saying it.
    pub fn with_vectored_writes(mut self) -> Self {
        self.vectored = true;
        self
    }
}

impl<T> Debug for TcpConnection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConnection").finish_non_exhaustive()
    }
}

impl<T> Connection for TcpConnection<T>
where
    T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        (self.set_nodelay)(&self.io, nodelay)
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for TcpConnection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for TcpConnection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Waits until `timer` fires.
pub async fn sleep(timer: &mut Pin<Box<dyn AsyncTimer>>) {
    std::future::poll_fn(|cx| timer.as_mut().poll(cx)).await;
}

/// A stream with hyper's IO traits seen through futures-io's
/// (`AsyncRead`/`AsyncWrite`), for async-tungstenite: a connection hyper
/// upgraded to a WebSocket, on the server or the client side.
#[derive(Debug)]
pub struct FuturesIo<T>(pub T);

impl<T: hyper::rt::Read + Unpin> futures_io::AsyncRead for FuturesIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = hyper::rt::ReadBuf::new(buf);
        match hyper::rt::Read::poll_read(Pin::new(&mut self.0), cx, read.unfilled()) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(read.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: hyper::rt::Write + Unpin> futures_io::AsyncWrite for FuturesIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.0), cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}
