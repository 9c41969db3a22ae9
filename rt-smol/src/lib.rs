//! Porthole on smol / async-io: the [`Runtime`] implementation, [`serve`] for
//! embedding the whole daemon, [`start`] for mounting the API in your own
//! server, and the `porthole-smol` binary. No tokio runtime is involved: hyper
//! runs on async-io's sockets (writes through smol-hyper's `futures-io` adapter).
//!
//! ```no_run
//! # async fn run() -> Result<(), porthole_smol::StartError> {
//! let server = porthole_smol::serve(porthole_smol::ServerConfig::default()).await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! [`serve`] and [`start`] spawn on smol's global executor. A program that runs
//! its own [`Executor`] hands it to [`SmolRuntime::with_executor`] and starts
//! [`Server`] or [`Porthole`] with that (see `examples/embed_smol.rs`).

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use async_executor::Executor;
use async_io::Async;
use porthole_driver::{
    AsyncTcpListener, AsyncTimer, AsyncUdpSocket, AsyncUnixListener, BoxFuture, ConnectFuture,
    Connection, Direction, SockRef, TcpConnection,
};
use smol_hyper::rt::FuturesIo;

pub use porthole_driver::{
    porthole_core, AllowedOrigins, Api, ApiBody, HttpConfig, InheritedListener, Listen, ListenAddr,
    Porthole, Runtime, Server, ServerConfig, StartError, Token, DEFAULT_LISTEN,
};

/// The smol [`Runtime`]: async-io's reactor and timers, tasks on smol's global
/// executor or on an [`Executor`] of the caller's.
#[derive(Debug, Clone, Default)]
pub struct SmolRuntime {
    /// `None`: smol's global executor (`smol::spawn`).
    executor: Option<Arc<Executor<'static>>>,
}

impl SmolRuntime {
    /// Spawns on smol's global executor, which runs on threads of its own
    /// (`SMOL_THREADS`, default 1).
    pub fn global() -> Self {
        SmolRuntime { executor: None }
    }

    /// Spawns on `executor`. The caller keeps running it (`executor.run(…)` on
    /// threads of its choice): Porthole's tasks make progress only while it does.
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        SmolRuntime {
            executor: Some(executor),
        }
    }
}

impl Runtime for SmolRuntime {
    fn spawn(&self, future: BoxFuture) {
        match &self.executor {
            Some(executor) => executor.spawn(future).detach(),
            None => smol::spawn(future).detach(),
        }
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer {
            timer: async_io::Timer::at(deadline),
            fired: false,
        })
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        Ok(Box::new(UdpSocket(Async::new(socket)?)))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Box<dyn AsyncTcpListener>> {
        Ok(Box::new(TcpListener(Async::new(listener)?)))
    }

    fn wrap_unix_listener(
        &self,
        listener: std::os::unix::net::UnixListener,
    ) -> io::Result<Box<dyn AsyncUnixListener>> {
        Ok(Box::new(UnixListener(Async::new(listener)?)))
    }

    fn connect_tcp(&self, addr: SocketAddr) -> ConnectFuture {
        Box::pin(async move {
            let io = Async::<std::net::TcpStream>::connect(addr).await?;
            Ok(tcp_connection(io))
        })
    }

    fn connect_unix(&self, path: &std::path::Path) -> ConnectFuture {
        let path = path.to_owned();
        Box::pin(async move {
            let io = Async::<std::os::unix::net::UnixStream>::connect(path).await?;
            Ok(unix_connection(io))
        })
    }
}

/// A Unix domain stream on async-io's reactor as a [`Connection`], accepted or made.
fn unix_connection(io: Async<std::os::unix::net::UnixStream>) -> Box<dyn Connection> {
    Box::new(TcpConnection::unix(Stream(FuturesIo::new(io))))
}

/// A TCP stream on async-io's reactor as a [`Connection`], accepted or made.
fn tcp_connection(io: Async<std::net::TcpStream>) -> Box<dyn Connection> {
    Box::new(
        // `Async<TcpStream>` writes vectors with one `writev`.
        TcpConnection::new(Stream(FuturesIo::new(io)), |io, on| {
            io.0.get_ref().get_ref().set_nodelay(on)
        })
        .with_vectored_writes(),
    )
}

/// async-io's timer, which `set_at` moves in place.
#[derive(Debug)]
struct Timer {
    timer: async_io::Timer,
    /// async-io's timer is pending forever once it fired; the driver's stays ready.
    fired: bool,
}

impl AsyncTimer for Timer {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.timer.set_at(deadline);
        this.fired = false;
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.fired {
            ready!(std::future::Future::poll(Pin::new(&mut this.timer), cx));
            this.fired = true;
        }
        Poll::Ready(())
    }
}

/// A UDP socket on async-io's reactor. `poll_readable`/`poll_writable` report
/// each event once, as the driver's contract asks.
#[derive(Debug)]
struct UdpSocket(Async<std::net::UdpSocket>);

impl AsyncUdpSocket for UdpSocket {
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_readable(cx)
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.get_ref().recv_from(buf)
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_writable(cx)
    }

    fn try_send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(buf, dest)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    fn try_io(
        &self,
        _: Direction,
        io: &mut dyn FnMut(SockRef<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        // async-io keeps no readiness to clear: the next poll waits for the reactor.
        io(SockRef::from(self.0.get_ref()))
    }
}

/// A TCP listener on async-io's reactor.
#[derive(Debug)]
struct TcpListener(Async<std::net::TcpListener>);

impl AsyncTcpListener for TcpListener {
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Box<dyn Connection>, SocketAddr)>> {
        loop {
            match self.0.get_ref().accept() {
                Ok((stream, peer)) => {
                    return Poll::Ready(Ok((tcp_connection(Async::new(stream)?), peer)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_readable(cx))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// A Unix domain socket listener on async-io's reactor.
#[derive(Debug)]
struct UnixListener(Async<std::os::unix::net::UnixListener>);

impl AsyncUnixListener for UnixListener {
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn Connection>>> {
        loop {
            match self.0.get_ref().accept() {
                Ok((stream, _)) => {
                    return Poll::Ready(Ok(unix_connection(Async::new(stream)?)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_readable(cx))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Most bytes one read of a connection takes (the size of the per-thread buffer).
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Where connections on this thread read into before the bytes are copied
    /// to hyper's buffer.
    static READ_BUFFER: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// An accepted connection for hyper: writes go through smol-hyper's adapter;
/// reads go through a per-thread buffer. smol-hyper's own reads zero all of
/// hyper's spare read buffer (up to ~400 KiB) before every read, even one that
/// finds nothing, to hand `futures-io` an initialized slice; copying only the
/// bytes read costs a fraction of that, without `unsafe`.
struct Stream<T>(FuturesIo<Async<T>>);

impl<T> hyper::rt::Read for Stream<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let io = self.0.get_ref();
        READ_BUFFER.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let len = scratch.len().min(buf.remaining());
            loop {
                match io.get_ref().read(&mut scratch[..len]) {
                    Ok(n) => {
                        buf.put_slice(&scratch[..n]);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(io.poll_readable(cx))?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        })
    }
}

impl<T> hyper::rt::Write for Stream<T>
where
    FuturesIo<Async<T>>: hyper::rt::Write + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

/// Starts the whole daemon on smol's global executor: Porthole plus a listener
/// on `config.listen`. Stop it with [`Server::shutdown`].
pub async fn serve(config: ServerConfig) -> Result<Server, StartError> {
    Server::start(Arc::new(SmolRuntime::global()), config)
}

/// Starts Porthole on smol's global executor without a listener: serve
/// [`Porthole::api`] from your own HTTP server.
pub fn start(config: porthole_core::Config, http: HttpConfig) -> Result<Porthole, StartError> {
    Porthole::start(Arc::new(SmolRuntime::global()), config, http)
}
