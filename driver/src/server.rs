//! The built-in HTTP/1.1 server: accepts connections and serves the [`Api`] on
//! each with hyper, until shut down.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_lite::future::{or, poll_fn};
use hyper::server::conn::http1;
use porthole_core::Config;

use crate::api::Api;
use crate::config::HttpConfig;
use crate::porthole::{Porthole, StartError};
use crate::runtime::{sleep, AsyncTcpListener, AsyncTimer, Connection, Runtime};

/// Where `porthole serve` listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7447);

/// How long [`Server::shutdown`] lets open requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after an accept error such as running out of file descriptors, so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Everything `porthole serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:7447`.
    pub listen: SocketAddr,
    /// How the HTTP API is served: token, body limit, origins, hosts.
    pub http: HttpConfig,
    /// The engine's limits and policy.
    pub engine: Config,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            http: HttpConfig::default(),
            engine: Config::default(),
        }
    }
}

/// A running server: a [`Porthole`] and a listener serving its API.
#[derive(Debug)]
pub struct Server {
    porthole: Porthole,
    local_addr: SocketAddr,
    runtime: Arc<dyn Runtime>,
    /// Closed to stop the accept loop.
    stop_accepting: async_channel::Sender<Infallible>,
    /// Closed by the accept loop once the listener is dropped.
    listener_closed: async_channel::Receiver<Infallible>,
    /// Closed to tell connections to finish their current request and close.
    drain: async_channel::Sender<Infallible>,
    connections: Arc<ConnectionCount>,
}

impl Server {
    /// Starts Porthole and listens on `config.listen`.
    pub fn start(runtime: Arc<dyn Runtime>, config: ServerConfig) -> Result<Self, StartError> {
        let listen = config.listen;
        let listen_error = |source| StartError::Listen {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let listener = runtime.wrap_tcp_listener(listener).map_err(listen_error)?;
        let porthole = Porthole::start(Arc::clone(&runtime), config.engine, config.http)?;

        let (stop_accepting, stop_rx) = async_channel::bounded(1);
        let (listener_closed_tx, listener_closed) = async_channel::bounded(1);
        let (drain, drain_rx) = async_channel::bounded(1);
        let connections = Arc::new(ConnectionCount::default());
        let accept = AcceptLoop {
            runtime: Arc::clone(&runtime),
            listener,
            api: porthole.api().clone(),
            stop: stop_rx,
            drain: drain_rx,
            connections: Arc::clone(&connections),
        };
        runtime.spawn(Box::pin(async move {
            accept.run().await;
            listener_closed_tx.close();
        }));
        tracing::info!(%local_addr, "listening");
        Ok(Server {
            porthole,
            local_addr,
            runtime,
            stop_accepting,
            listener_closed,
            drain,
            connections,
        })
    }

    /// The address the server listens on (with the port the OS chose, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The Porthole behind the server.
    pub fn porthole(&self) -> &Porthole {
        &self.porthole
    }

    /// Stops accepting connections, closes every binding (reason `shutdown`),
    /// which ends every stream, and waits (up to 5 s) for open requests to finish.
    pub async fn shutdown(self) {
        self.stop_accepting.close();
        let _ = self.listener_closed.recv().await;
        self.porthole.shutdown().await;
        self.drain.close();
        let mut grace = self.runtime.new_timer(self.runtime.now() + SHUTDOWN_GRACE);
        or(self.connections.wait_idle(), sleep(&mut grace)).await;
        tracing::info!("shut down");
    }
}

/// Open connections, and a way to wait until there are none.
#[derive(Debug, Default)]
struct ConnectionCount {
    open: AtomicUsize,
    idle: Event,
}

impl ConnectionCount {
    fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(Arc::clone(self))
    }

    async fn wait_idle(&self) {
        loop {
            let listener = self.idle.listen();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            listener.await;
        }
    }
}

struct ConnectionGuard(Arc<ConnectionCount>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

struct AcceptLoop {
    runtime: Arc<dyn Runtime>,
    listener: Box<dyn AsyncTcpListener>,
    api: Api,
    stop: async_channel::Receiver<Infallible>,
    drain: async_channel::Receiver<Infallible>,
    connections: Arc<ConnectionCount>,
}

impl AcceptLoop {
    async fn run(self) {
        loop {
            let accepted = or(
                async { Some(poll_fn(|cx| self.listener.poll_accept(cx)).await) },
                async {
                    let _ = self.stop.recv().await;
                    None
                },
            )
            .await;
            match accepted {
                None => return,
                Some(Ok((io, peer))) => {
                    if let Err(e) = io.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    let connection = serve_connection(
                        Arc::clone(&self.runtime),
                        io,
                        self.api.clone(),
                        self.drain.clone(),
                        self.connections.enter(),
                    );
                    self.runtime.spawn(Box::pin(connection));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "accept failed");
                    let mut pause = self.runtime.new_timer(self.runtime.now() + ACCEPT_BACKOFF);
                    sleep(&mut pause).await;
                }
            }
        }
    }
}

async fn serve_connection(
    runtime: Arc<dyn Runtime>,
    io: Box<dyn Connection>,
    api: Api,
    drain: async_channel::Receiver<Infallible>,
    _guard: ConnectionGuard,
) {
    let connection = http1::Builder::new()
        .timer(HyperTimer(runtime))
        .serve_connection(io, api);
    futures_lite::pin!(connection);
    let finished = or(async { Some(connection.as_mut().await) }, async {
        let _ = drain.recv().await;
        None
    })
    .await;
    let result = match finished {
        Some(result) => result,
        None => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// hyper's timer (header read timeout) on the runtime's timers.
#[derive(Debug, Clone)]
struct HyperTimer(Arc<dyn Runtime>);

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.0.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(self.0.new_timer(deadline)))
    }

    fn now(&self) -> Instant {
        self.0.now()
    }
}

struct HyperSleep(Pin<Box<dyn AsyncTimer>>);

impl Future for HyperSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}
