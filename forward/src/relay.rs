//! The relays: a leased host socket on one side, local UDP sockets on the other.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use async_channel::{Receiver, Sender};
use futures_lite::future::{self, FutureExt as _};
use porthole_client::porthole_runtime::{sleep, AsyncUdpSocket, Runtime};
use porthole_client::{BindError, BindParams, Event, LeasedSocket, RequestError, SocketError};

use crate::args::{Direction, Plan};
use crate::peers::{PeerLimits, PeerLimitsError, PeerTable, Reclaim};

/// The largest datagram relayed (UDP's own limit).
const MAX_DATAGRAM: usize = 65_535;

/// Why a forward could not start, or stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The daemon refused the lease, or could not be reached.
    #[error("cannot lease {addr}: {source}")]
    Bind {
        /// The host address asked for.
        addr: SocketAddr,
        /// The daemon's answer.
        source: BindError,
    },
    /// The local socket (`--listen`) could not be bound.
    #[error("cannot bind --listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The peer limits cannot work (a [`Plan`] built by hand).
    #[error(transparent)]
    Peers(#[from] PeerLimitsError),
    /// The runtime could not register a local socket.
    #[error("cannot register a local socket with the runtime: {0}")]
    Runtime(io::Error),
    /// The leased socket ended: the daemon closed the binding (expired,
    /// unbound by someone else, shutdown) or the connection to it was lost.
    #[error("the leased socket ended: {0}")]
    Ended(SocketError),
    /// Unbinding at shutdown failed (the lease ends the binding later).
    #[error("cannot unbind at shutdown: {0}")]
    Unbind(RequestError),
}

/// What a forward relayed, for the line it prints on exit.
#[derive(Debug, Default)]
struct Counters {
    /// Datagrams that reached the host port and were handed to the local side.
    inbound: AtomicU64,
    /// Datagrams from the local side sent out of the host port.
    outbound: AtomicU64,
    /// Remote peers given a local socket (inbound forwards).
    peers: AtomicU64,
    /// Peer sockets closed for idleness or beyond `--max-peers`.
    reclaimed: AtomicU64,
    /// Datagrams the forward could not relay on the local side (a local
    /// send failed, a reply with no application yet, a datagram from
    /// another source than `--dest`).
    dropped: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A forward's counters at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Datagrams from the host port handed to the local side.
    pub inbound: u64,
    /// Datagrams from the local side sent out of the host port.
    pub outbound: u64,
    /// Remote peers relayed (each with a local socket of its own).
    pub peers: u64,
    /// Peer sockets closed for idleness or beyond `--max-peers`.
    pub reclaimed: u64,
    /// Datagrams the forward could not relay locally.
    pub dropped: u64,
    /// Datagrams for the host port the daemon reported missed (`lagged`).
    pub lost: u64,
    /// Datagrams the daemon could not send out of the host port.
    pub send_errors: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "in={} out={} peers={} reclaimed={} dropped={} lost={} send_errors={}",
            self.inbound,
            self.outbound,
            self.peers,
            self.reclaimed,
            self.dropped,
            self.lost,
            self.send_errors
        )
    }
}

/// A forward whose host port is leased, ready to [`run`](Forwarder::run).
#[derive(Debug)]
pub struct Forwarder {
    runtime: Arc<dyn Runtime>,
    socket: Arc<LeasedSocket>,
    local: Local,
    counters: Arc<Counters>,
}

/// The local side of a forward.
#[derive(Debug)]
enum Local {
    /// `--to`: the application, and the peer table's limits.
    Inbound { to: SocketAddr, limits: PeerLimits },
    /// `--listen`'s socket (bound before the lease is asked for) and `--dest`.
    Outbound {
        listen: Arc<dyn AsyncUdpSocket>,
        listen_addr: SocketAddr,
        dest: SocketAddr,
    },
}

impl Forwarder {
    /// Binds `--listen` (outbound), then leases the host address.
    pub async fn start(runtime: Arc<dyn Runtime>, plan: Plan) -> Result<Self, ForwardError> {
        let local = match plan.direction {
            Direction::Inbound { to, limits } => {
                limits.validate()?;
                Local::Inbound { to, limits }
            }
            Direction::Outbound { listen, dest } => {
                let socket = UdpSocket::bind(listen)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|source| ForwardError::Listen {
                        addr: listen,
                        source,
                    })?;
                let listen_addr = socket.local_addr().map_err(ForwardError::Runtime)?;
                let socket = runtime
                    .wrap_udp_socket(socket)
                    .map_err(ForwardError::Runtime)?;
                Local::Outbound {
                    listen: Arc::from(socket),
                    listen_addr,
                    dest,
                }
            }
        };
        let params = BindParams {
            lease: plan.lease,
            allow_remote: plan.allow_remote,
            ..BindParams::at(plan.remote)
        };
        let socket = LeasedSocket::bind(runtime.clone(), &plan.server, params)
            .await
            .map_err(|source| ForwardError::Bind {
                addr: plan.remote,
                source,
            })?;
        Ok(Forwarder {
            runtime,
            socket: Arc::new(socket),
            local,
            counters: Arc::default(),
        })
    }

    /// The leased host address.
    pub fn host_addr(&self) -> SocketAddr {
        self.socket.local_addr()
    }

    /// The one-line description of the forward:
    /// `HOST (host) -> APP` or `LOCAL -> HOST (host) -> DEST`.
    pub fn describe(&self) -> String {
        let host = self.host_addr();
        match &self.local {
            Local::Inbound { to, .. } => format!("{host} (host) -> {to}"),
            Local::Outbound {
                listen_addr, dest, ..
            } => format!("{listen_addr} -> {host} (host) -> {dest}"),
        }
    }

    /// The counters so far.
    pub fn summary(&self) -> Summary {
        let c = &self.counters;
        let losses = self.socket.losses();
        Summary {
            inbound: c.inbound.load(Ordering::Relaxed),
            outbound: c.outbound.load(Ordering::Relaxed),
            peers: c.peers.load(Ordering::Relaxed),
            reclaimed: c.reclaimed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            lost: losses.missed,
            send_errors: losses.send_errors,
        }
    }

    /// Relays until `shutdown` completes, then unbinds; or until the leased
    /// socket ends, with the reason.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), ForwardError> {
        let relay = async {
            match &self.local {
                Local::Inbound { to, limits } => self.inbound(*to, *limits).await,
                Local::Outbound { listen, dest, .. } => self.outbound(listen, *dest).await,
            }
        };
        let stopped = async {
            shutdown.await;
            tracing::info!("shutting down");
            Ok(())
        };
        let result = relay.or(log_events(&self.socket)).or(stopped).await;
        match result {
            Ok(()) => self.socket.close().await.map_err(ForwardError::Unbind),
            Err(e) => Err(e),
        }
    }

    /// As [`run`](Self::run), with the relay as a task of the runtime (on
    /// its executor threads, next to the client library's tasks) while the
    /// caller only waits for `shutdown` and the end: what a binary's
    /// `block_on` runs, so that its thread is left to the signal and, on
    /// smol, the reactor.
    pub async fn run_spawned(
        self: &Arc<Self>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ForwardError> {
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let (finished, done) = async_channel::bounded(1);
        let forwarder = self.clone();
        self.runtime.spawn(Box::pin(async move {
            let result = forwarder
                .run(async {
                    // Closed or sent: either way, stop.
                    let _ = stopped.recv().await;
                })
                .await;
            let _ = finished.send(result).await;
        }));
        let ended = async { Some(done.recv().await) };
        let asked = async {
            shutdown.await;
            None
        };
        if let Some(result) = ended.or(asked).await {
            return result.unwrap_or(Ok(()));
        }
        let _ = stop.send(()).await;
        done.recv().await.unwrap_or(Ok(()))
    }

    /// `--remote … --to …`: each peer of the host port gets a local socket
    /// connected to the application; what the application answers on it goes
    /// back to that peer.
    async fn inbound(&self, to: SocketAddr, limits: PeerLimits) -> Result<(), ForwardError> {
        let table = Arc::new(Mutex::new(PeerTable::new(limits)?));
        let mut timer = self.runtime.new_timer(self.runtime.now() + limits.idle);
        loop {
            let datagram = async { Some(self.socket.recv().await) };
            let timeout = async {
                sleep(&mut timer).await;
                None
            };
            let Some(datagram) = datagram.or(timeout).await else {
                // Peers only ever get deadlines later than the ones in the
                // table, so sleeping until the earliest (or for the idle
                // time while there is none) misses none.
                let now = self.runtime.now();
                let next = {
                    let mut peers = lock(&table);
                    peers.handle_timeout(now);
                    self.reclaim(&mut peers);
                    peers.poll_timeout()
                };
                timer.as_mut().reset(next.unwrap_or(now + limits.idle));
                continue;
            };
            let datagram = datagram.map_err(ForwardError::Ended)?;
            let peer = datagram.src;
            let now = self.runtime.now();
            let known = lock(&table).touch(peer, now).map(|p| p.socket.clone());
            let local = match known {
                Some(local) => local,
                None => match self.open_peer(&table, peer, to) {
                    Ok(local) => local,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "cannot open a local socket for a new peer; datagram dropped");
                        bump(&self.counters.dropped);
                        continue;
                    }
                },
            };
            match send_to(&*local, &datagram.payload, to).await {
                Ok(_) => bump(&self.counters.inbound),
                Err(e) => {
                    tracing::debug!(%peer, %to, error = %e, "cannot send to the application");
                    bump(&self.counters.dropped);
                }
            }
        }
    }

    /// A local socket for `peer`, connected to `to` (so only the
    /// application's replies arrive on it), and the task that sends what
    /// arrives on it back to `peer`.
    fn open_peer(
        &self,
        table: &Arc<Mutex<PeerTable<Peer>>>,
        peer: SocketAddr,
        to: SocketAddr,
    ) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let socket = UdpSocket::bind(SocketAddr::new(local_ip_towards(to), 0))?;
        socket.connect(to)?;
        socket.set_nonblocking(true)?;
        let local: Arc<dyn AsyncUdpSocket> = Arc::from(self.runtime.wrap_udp_socket(socket)?);
        let (stop, stopped) = async_channel::bounded(1);
        let now = self.runtime.now();
        {
            let mut peers = lock(table);
            peers.insert(
                peer,
                Peer {
                    socket: local.clone(),
                    _stop: stop,
                },
                now,
            );
            self.reclaim(&mut peers);
        }
        bump(&self.counters.peers);
        tracing::debug!(%peer, local = ?local.local_addr().ok(), "new peer");
        self.runtime.spawn(Box::pin(replies(
            self.runtime.clone(),
            self.socket.clone(),
            Arc::downgrade(table),
            self.counters.clone(),
            peer,
            local.clone(),
            stopped,
        )));
        Ok(local)
    }

    /// Closes the sockets of the peers the table let go (their reply tasks
    /// end when their `stop` sender drops with them).
    fn reclaim(&self, peers: &mut PeerTable<Peer>) {
        while let Some(gone) = peers.poll_reclaimed() {
            bump(&self.counters.reclaimed);
            let why = match gone.reason {
                Reclaim::Idle => "idle",
                Reclaim::Capacity => "--max-peers reached",
            };
            tracing::debug!(peer = %gone.peer, why, "peer socket closed");
        }
    }

    /// `--listen … --dest …`: what the application sends to `--listen`
    /// leaves the host port for `dest`; what `dest` sends back goes to the
    /// address the application last sent from.
    async fn outbound(
        &self,
        listen: &Arc<dyn AsyncUdpSocket>,
        dest: SocketAddr,
    ) -> Result<(), ForwardError> {
        let app = Mutex::new(None::<SocketAddr>);
        let out = async {
            let mut buf = vec![0; MAX_DATAGRAM];
            loop {
                let (n, from) = match recv_from(&**listen, &mut buf).await {
                    Ok(received) => received,
                    Err(e) => {
                        // An ICMP error for an earlier reply; keep going.
                        tracing::debug!(error = %e, "local receive failed");
                        continue;
                    }
                };
                *lock(&app) = Some(from);
                self.socket
                    .send_to(&buf[..n], dest)
                    .await
                    .map_err(ForwardError::Ended)?;
                bump(&self.counters.outbound);
            }
        };
        let back = async {
            loop {
                let datagram = self.socket.recv().await.map_err(ForwardError::Ended)?;
                if datagram.src != dest {
                    tracing::debug!(src = %datagram.src, "datagram from another source than --dest dropped");
                    bump(&self.counters.dropped);
                    continue;
                }
                let Some(app) = *lock(&app) else {
                    bump(&self.counters.dropped);
                    continue;
                };
                match send_to(&**listen, &datagram.payload, app).await {
                    Ok(_) => bump(&self.counters.inbound),
                    Err(e) => {
                        tracing::debug!(%app, error = %e, "cannot send to the application");
                        bump(&self.counters.dropped);
                    }
                }
            }
        };
        out.or(back).await
    }
}

/// A peer's local socket, as the table holds it.
#[derive(Debug)]
struct Peer {
    socket: Arc<dyn AsyncUdpSocket>,
    /// Dropped with the peer: ends its reply task.
    _stop: Sender<Infallible>,
}

/// Sends what the application answers on `local` back to `peer`, until the
/// peer is reclaimed (`stopped` closes: its sender goes with the peer, or
/// with the whole table when the relay stops) or the leased socket ends. The
/// table is held weakly, so that it does not keep itself alive through the
/// tasks of its own peers.
async fn replies(
    runtime: Arc<dyn Runtime>,
    socket: Arc<LeasedSocket>,
    table: Weak<Mutex<PeerTable<Peer>>>,
    counters: Arc<Counters>,
    peer: SocketAddr,
    local: Arc<dyn AsyncUdpSocket>,
    stopped: Receiver<Infallible>,
) {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let received = async { Some(recv_from(&*local, &mut buf).await) };
        let stop = async {
            let _ = stopped.recv().await;
            None
        };
        let Some(received) = received.or(stop).await else {
            return;
        };
        let n = match received {
            Ok((n, _)) => n,
            Err(e) => {
                // The application's port refused an earlier datagram (ICMP).
                tracing::debug!(%peer, error = %e, "local receive failed");
                continue;
            }
        };
        // A reply keeps the peer alive too (it may be reclaimed meanwhile:
        // this reply still goes out).
        if let Some(table) = table.upgrade() {
            let _ = lock(&table).touch(peer, runtime.now());
        }
        if socket.send_to(&buf[..n], peer).await.is_err() {
            // The leased socket ended; the main loop reports why.
            return;
        }
        bump(&counters.outbound);
    }
}

/// Logs what the daemon reports about the host port. Never completes.
async fn log_events(socket: &LeasedSocket) -> Result<(), ForwardError> {
    while let Some(event) = socket.next_event().await {
        match event {
            Event::Lagged { missed } => {
                tracing::warn!(
                    missed,
                    "the daemon reports datagrams for the host port missed"
                )
            }
            Event::SendFailed {
                dest,
                error,
                message,
                count,
            } => {
                tracing::warn!(%dest, error = error.as_str(), %message, count, "the daemon could not send")
            }
            Event::Reconnected {
                attempts,
                resumed_after,
            } => tracing::info!(attempts, ?resumed_after, "reconnected to the daemon"),
            Event::Ended(why) => tracing::debug!(%why, "leased socket ended"),
        }
    }
    future::pending().await
}

/// The address to bind peer sockets on: the application's own when it is on
/// loopback (the usual case), otherwise any of its family.
fn local_ip_towards(to: SocketAddr) -> IpAddr {
    match to.ip() {
        ip if ip.is_loopback() => ip,
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The table outlives any panic that poisoned it: its data stays consistent
/// between calls.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends one datagram on a runtime's socket, waiting while it would block.
async fn send_to(socket: &dyn AsyncUdpSocket, buf: &[u8], dest: SocketAddr) -> io::Result<usize> {
    loop {
        future::poll_fn(|cx| socket.poll_send_ready(cx)).await?;
        match socket.try_send_to(buf, dest) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            sent => return sent,
        }
    }
}

/// Receives one datagram on a runtime's socket.
async fn recv_from(socket: &dyn AsyncUdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    loop {
        future::poll_fn(|cx| socket.poll_recv_ready(cx)).await?;
        match socket.try_recv_from(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            received => return received,
        }
    }
}
