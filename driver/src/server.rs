//! The built-in HTTP/1.1 server: accepts connections and serves the [`Api`] on
//! each with hyper, until shut down.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
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
use crate::listener::{self, AnyListener, InheritedListener, Listen, ListenAddr};
use crate::porthole::{Porthole, StartError};
use crate::runtime::{sleep, AsyncTimer, Connection, Runtime};

/// Where `porthole serve` listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7447);

/// How long [`Server::shutdown`] lets open requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a connection accepted just before a drain began has to start its
/// first request before the drain closes it.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Pause after an accept error such as running out of file descriptors, so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Everything `porthole serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (TCP addresses and Unix sockets). Default `127.0.0.1:7447`.
    pub listen: Vec<Listen>,
    /// How the HTTP API is served: token, body limit, origins, hosts.
    pub http: HttpConfig,
    /// The engine's limits and policy.
    pub engine: Config,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![Listen::Tcp(DEFAULT_LISTEN)],
            http: HttpConfig::default(),
            engine: Config::default(),
        }
    }
}

/// A running server: a [`Porthole`] and the listeners serving its API.
#[derive(Debug)]
pub struct Server {
    porthole: Porthole,
    addresses: Vec<ListenAddr>,
    runtime: Arc<dyn Runtime>,
    /// Closed to stop the accept loops.
    stop_accepting: async_channel::Sender<Infallible>,
    /// Closed once every accept loop has dropped its listener.
    listeners_closed: async_channel::Receiver<Infallible>,
    /// Closed to tell connections to finish their current request and close.
    drain: async_channel::Sender<Infallible>,
    connections: Arc<ConnectionCount>,
    socket_files: SocketFiles,
}

/// Unix socket files this server created; removed when it is dropped.
#[derive(Debug, Default)]
struct SocketFiles(Vec<std::path::PathBuf>);

impl Drop for SocketFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::debug!(path = %path.display(), error = %e, "cannot remove the socket file");
            }
        }
    }
}

impl Server {
    /// Starts Porthole and listens on every address of `config.listen`.
    pub fn start(runtime: Arc<dyn Runtime>, config: ServerConfig) -> Result<Self, StartError> {
        Server::start_with(runtime, config, Vec::new())
    }

    /// Starts Porthole, listens on every address of `config.listen`, and
    /// serves `inherited` listeners too (systemd socket activation).
    pub fn start_with(
        runtime: Arc<dyn Runtime>,
        config: ServerConfig,
        inherited: Vec<InheritedListener>,
    ) -> Result<Self, StartError> {
        let mut opened = Vec::new();
        let mut socket_files = SocketFiles::default();
        for listen in &config.listen {
            let listening =
                listener::open(&*runtime, listen).map_err(|source| StartError::Listen {
                    addr: listen.to_string(),
                    source,
                })?;
            socket_files.0.extend(listening.created.clone());
            opened.push(listening);
        }
        for listener in inherited {
            opened.push(listener::adopt(&*runtime, listener).map_err(|source| {
                StartError::Listen {
                    addr: "an inherited listener".to_owned(),
                    source,
                }
            })?);
        }
        let porthole = Porthole::start(Arc::clone(&runtime), config.engine, config.http)?;

        let (stop_accepting, stop_rx) = async_channel::bounded(1);
        let (listeners_closed_tx, listeners_closed) = async_channel::bounded(1);
        let (drain, drain_rx) = async_channel::bounded(1);
        let connections = Arc::new(ConnectionCount::default());
        let mut addresses = Vec::new();
        for listening in opened {
            tracing::info!(address = %listening.addr, "listening");
            addresses.push(listening.addr);
            let accept = AcceptLoop {
                runtime: Arc::clone(&runtime),
                listener: listening.listener,
                api: porthole.api().clone(),
                stop: stop_rx.clone(),
                drain: drain_rx.clone(),
                connections: Arc::clone(&connections),
            };
            let closed = listeners_closed_tx.clone();
            runtime.spawn(Box::pin(async move {
                accept.run().await;
                // The receiver sees the channel closed once every loop's sender is gone.
                drop(closed);
            }));
        }
        Ok(Server {
            porthole,
            addresses,
            runtime,
            stop_accepting,
            listeners_closed,
            drain,
            connections,
            socket_files,
        })
    }

    /// The address of the first TCP listener (with the port the OS chose,
    /// for port 0); `0.0.0.0:0` for a server with Unix listeners only (see
    /// [`Server::addresses`]).
    pub fn local_addr(&self) -> SocketAddr {
        self.addresses
            .iter()
            .find_map(|a| match a {
                ListenAddr::Tcp(addr) => Some(*addr),
                ListenAddr::Unix(_) => None,
            })
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Every address the server listens on, in the order of the configuration
    /// (inherited listeners last).
    pub fn addresses(&self) -> &[ListenAddr] {
        &self.addresses
    }

    /// The Porthole behind the server.
    pub fn porthole(&self) -> &Porthole {
        &self.porthole
    }

    /// Shuts down: `/readyz` turns 503, every binding closes (reason
    /// `shutdown`), which ends every stream; open requests get up to 5 s to
    /// finish while the listeners still answer (so probes see the server
    /// draining, and new `/v1` requests get 503 `shutting_down`); then the
    /// listeners close and their socket files are removed.
    pub async fn shutdown(self) {
        self.porthole.shutdown().await;
        self.drain.close();
        let mut grace = self.runtime.new_timer(self.runtime.now() + SHUTDOWN_GRACE);
        // WebSocket channels left their hyper connection at the upgrade:
        // they are waited for on their own.
        let idle = async {
            self.connections.wait_idle().await;
            self.porthole.api().channels().wait_idle().await;
        };
        or(idle, sleep(&mut grace)).await;
        self.stop_accepting.close();
        let _ = self.listeners_closed.recv().await;
        drop(self.socket_files);
        tracing::info!("shut down");
    }
}

/// Open connections, and a way to wait until there are none.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCount {
    open: AtomicUsize,
    idle: Event,
}

impl ConnectionCount {
    pub(crate) fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(Arc::clone(self))
    }

    pub(crate) async fn wait_idle(&self) {
        loop {
            let listener = self.idle.listen();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            listener.await;
        }
    }
}

pub(crate) struct ConnectionGuard(Arc<ConnectionCount>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

struct AcceptLoop {
    runtime: Arc<dyn Runtime>,
    listener: AnyListener,
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
                Some(Ok(io)) => {
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
    // A connection that arrives while the server drains gets one answer
    // (503 on /readyz and /v1) and is closed; graceful shutdown would close it unread.
    let draining = drain.is_closed();
    // Holds a message once the connection's first request has started.
    let (started_tx, started) = async_channel::bounded::<()>(1);
    let service = hyper::service::service_fn(move |request| {
        let _ = started_tx.try_send(());
        let api = api.clone();
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    });
    let connection = http1::Builder::new()
        .timer(HyperTimer(Arc::clone(&runtime)))
        .keep_alive(!draining)
        .serve_connection(io, service)
        // The WebSocket channel takes the connection over after its 101.
        .with_upgrades();
    futures_lite::pin!(connection);
    let finished = or(async { Some(connection.as_mut().await) }, async {
        if draining {
            futures_lite::future::pending::<()>().await;
        }
        let _ = drain.recv().await;
        None
    })
    .await;
    let finished = match finished {
        // Accepted just before the drain began, its request not read yet:
        // graceful shutdown would close it unanswered. Let the request start
        // (for at most FIRST_REQUEST_GRACE); shutdown then lets it finish.
        None if started.is_empty() => {
            let mut grace = runtime.new_timer(runtime.now() + FIRST_REQUEST_GRACE);
            or(async { Some(connection.as_mut().await) }, async {
                let _ = or(async { started.recv().await.is_ok() }, async {
                    sleep(&mut grace).await;
                    false
                })
                .await;
                None
            })
            .await
        }
        finished => finished,
    };
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
