//! [`LeasedSocket`]: a host UDP socket leased from the daemon, used like a
//! `UdpSocket`.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use hyper::Method;
use porthole_core::api::ws::encode_ws_send;
use porthole_core::api::ErrorCode;
use porthole_core::api::{BindRequest, BindingInfoBody, UnboundBody};
use porthole_core::{BindingId, Seq};
use porthole_runtime::Runtime;

use crate::channel::{self, Channel, Liveness};
use crate::error::{BindError, RequestError, ServerError, SocketError, TransportError};
use crate::http::Http;
use crate::server::Server;
use crate::shared::{Event, Losses, Shared, Stats};

/// The largest payload a datagram carries (what the daemon's
/// `--max-payload` allows at most; IPv4 destinations take up to 65,507).
pub const MAX_PAYLOAD: usize = 65_527;

/// Default [`BindParams::recv_queue`]: datagrams received and not yet read.
pub const DEFAULT_RECV_QUEUE: usize = 256;

/// Default [`BindParams::send_queue`]: datagrams handed to `send_to` and not
/// yet written to the connection.
pub const DEFAULT_SEND_QUEUE: usize = 256;

/// Default [`BindParams::reconnect_timeout`].
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`BindParams::keep_alive`].
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What to bind, and how the client holds the socket. The first fields are
/// the bind request's (`POST /v1/udp/bind`); the last ones stay in the client.
///
/// ```
/// use std::time::Duration;
/// use porthole_client::BindParams;
///
/// let params = BindParams {
///     port: 5353,
///     lease: Some(Duration::from_secs(60)),
///     ..BindParams::default()
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindParams {
    /// The host address to bind; `None`: the daemon's default (`127.0.0.1`).
    /// Anything but loopback needs `allow_remote` (and the daemon's `--allow-remote`).
    pub addr: Option<IpAddr>,
    /// The host port; 0 (the default): any free port.
    pub port: u16,
    /// The lease, in whole seconds (rounded up); `None`: the daemon's
    /// `--default-lease`. The daemon clamps it to its `--max-lease`. The
    /// client renews it after every third of it, in the background.
    pub lease: Option<Duration>,
    /// Bind and send beyond loopback (the daemon must allow it too).
    pub allow_remote: bool,
    /// Whether the binding's traffic renews its lease on the daemon, as a
    /// heartbeat does (the client renews it anyway).
    pub renew_on_traffic: bool,
    /// Datagrams received and not yet read (by [`LeasedSocket::recv_from`])
    /// that the client holds; default [`DEFAULT_RECV_QUEUE`], at least 1.
    /// When it is full the client stops reading the channel, so the daemon
    /// holds further datagrams in its replay ring (`--ring-datagrams`) and,
    /// beyond it, reports them missed ([`Event::Lagged`]): memory stays
    /// bounded, at most this many datagrams (of up to 64 KiB each) plus the
    /// connection's buffers.
    pub recv_queue: usize,
    /// Datagrams handed to [`LeasedSocket::send_to`] and not yet written to
    /// the connection; default [`DEFAULT_SEND_QUEUE`], at least 1. When it
    /// is full, `send_to` waits.
    pub send_queue: usize,
    /// How long the client tries to reopen a dropped channel before the
    /// socket ends with [`SocketError::Lost`]; default
    /// [`DEFAULT_RECONNECT_TIMEOUT`]. It waits 50 ms after the first failed
    /// attempt, doubling up to 2 s between attempts.
    pub reconnect_timeout: Duration,
    /// How the client notices a connection gone silent (a path or a peer
    /// lost without a FIN or RST): after `keep_alive` without any message
    /// from the daemon, it pings; after another without any, it reopens the
    /// channel. Default [`DEFAULT_KEEP_ALIVE`]; zero: never. The daemon pings
    /// a quiet channel every `--keep-alive` (15 s by default), which counts;
    /// a time the client does not read (its receive queue is full) does not.
    pub keep_alive: Duration,
}

impl Default for BindParams {
    fn default() -> Self {
        BindParams {
            addr: None,
            port: 0,
            lease: None,
            allow_remote: false,
            renew_on_traffic: false,
            recv_queue: DEFAULT_RECV_QUEUE,
            send_queue: DEFAULT_SEND_QUEUE,
            reconnect_timeout: DEFAULT_RECONNECT_TIMEOUT,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }
}

impl BindParams {
    /// Binds `addr` (port 0: any free port).
    pub fn at(addr: SocketAddr) -> Self {
        BindParams {
            addr: Some(addr.ip()),
            port: addr.port(),
            ..BindParams::default()
        }
    }

    /// The bind request's body.
    fn request(&self) -> BindRequest {
        BindRequest {
            port: self.port,
            addr: self.addr.map(|ip| ip.to_string()),
            lease_secs: self.lease.map(|lease| {
                let secs = lease.as_secs() + u64::from(lease.subsec_nanos() > 0);
                // 0 would ask for the default: the shortest lease is 1 s.
                secs.max(1)
            }),
            allow_remote: self.allow_remote,
            renew_on_traffic: self.renew_on_traffic,
        }
    }
}

/// A datagram received on the leased socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Its sequence number on the binding (from 1, without gaps unless
    /// datagrams were missed).
    pub seq: Seq,
    /// Who sent it.
    pub src: SocketAddr,
    /// Its bytes.
    pub payload: Bytes,
}

/// A UDP socket bound on the daemon's host and leased to this process.
///
/// It is used like a `UdpSocket`: every method takes `&self`, so one task
/// can send while another receives (share it in an `Arc`). Datagrams travel
/// over the binding's WebSocket channel; the lease is renewed in the
/// background; a dropped connection is reopened and resumed after the last
/// datagram received, so nothing the daemon's replay ring still holds is
/// lost, and whatever is lost is counted ([`losses`](Self::losses)) and
/// reported ([`next_event`](Self::next_event)).
///
/// Dropping the socket without [`close`](Self::close) unbinds it too, from
/// a task of the runtime (best effort; the lease bounds it otherwise).
pub struct LeasedSocket {
    http: Http,
    id: BindingId,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    inbound: Receiver<Datagram>,
    outbound: Sender<Bytes>,
    /// Closed to stop the background tasks (also by dropping it).
    stop: Sender<Infallible>,
}

impl fmt::Debug for LeasedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeasedSocket")
            .field("local_addr", &self.local_addr)
            .field("server", &self.http.server)
            .finish_non_exhaustive()
    }
}

impl LeasedSocket {
    /// Binds a host UDP socket on the daemon at `server`, opens its channel,
    /// and starts renewing its lease. The background tasks run on `runtime`
    /// (`porthole_tokio::TokioRuntime`, `porthole_smol::SmolRuntime`).
    pub async fn bind(
        runtime: Arc<dyn Runtime>,
        server: &Server,
        params: BindParams,
    ) -> Result<LeasedSocket, BindError> {
        let http = Http {
            runtime,
            server: server.clone(),
        };
        let body = serde_json::to_vec(&params.request())
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        let info: BindingInfoBody = http.call(Method::POST, "/v1/udp/bind", Some(body)).await?;
        let unexpected = |what: &str| {
            BindError::Transport(TransportError::Protocol(format!(
                "the bind answer has a bad {what}"
            )))
        };
        let id: BindingId = info.id.parse().map_err(|_| unexpected("id"))?;
        let local_addr: SocketAddr = info
            .local_addr
            .parse()
            .map_err(|_| unexpected("local_addr"))?;
        // After 0: a datagram the ring let go before the channel opened is
        // reported missed, as any later one would be.
        let ws = match http.open_channel(id, Seq(0)).await {
            Ok(ws) => ws,
            Err(e) => {
                // Nobody will use the binding: give it back now.
                let _ = unbind(&http, id).await;
                return Err(e.into());
            }
        };
        let shared = Arc::new(Shared::default());
        shared.lease_secs.store(info.lease_secs, Ordering::Relaxed);
        let (inbound_tx, inbound) = async_channel::bounded(params.recv_queue.max(1));
        let (outbound, outbound_rx) = async_channel::bounded(params.send_queue.max(1));
        let (stop, stop_rx) = async_channel::bounded::<Infallible>(1);
        let channel = Channel {
            http: http.clone(),
            binding: id,
            shared: shared.clone(),
            inbound: inbound_tx,
            outbound: Box::pin(outbound_rx),
            stop: Box::pin(stop_rx.clone()),
            reconnect_timeout: params.reconnect_timeout,
            last_seq: Seq(0),
            held: None,
            unsent: None,
            liveness: Liveness::new(http.runtime.clone(), params.keep_alive),
            unflushed: false,
            stopping: false,
        };
        http.runtime.spawn(Box::pin(channel.run(ws)));
        http.runtime.spawn(Box::pin(channel::renew(
            http.clone(),
            id,
            shared.clone(),
            Box::pin(stop_rx),
            Duration::from_secs(info.lease_secs),
        )));
        tracing::debug!(binding = %id, %local_addr, lease_secs = info.lease_secs, "bound");
        Ok(LeasedSocket {
            http,
            id,
            local_addr,
            shared,
            inbound,
            outbound,
            stop,
        })
    }

    /// The leased socket's address on the daemon's host: where peers send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The binding's id (a capability: keep it secret).
    pub fn binding_id(&self) -> BindingId {
        self.id
    }

    /// The lease in force (the daemon's latest answer to a bind or renewal).
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.shared.lease_secs.load(Ordering::Relaxed))
    }

    /// Sends `buf` to `dest` from the leased socket. Returns once the
    /// datagram is queued for the channel (waiting while the send queue is
    /// full); the daemon reports a send that fails as [`Event::SendFailed`].
    /// A datagram queued while the channel is being reopened goes out on the
    /// new one; one written to a connection that then drops is lost, as a
    /// UDP datagram may be.
    pub async fn send_to(&self, buf: &[u8], dest: SocketAddr) -> Result<usize, SocketError> {
        if buf.len() > MAX_PAYLOAD {
            return Err(SocketError::TooLarge {
                len: buf.len(),
                max: MAX_PAYLOAD,
            });
        }
        if let Some(ended) = self.shared.ended() {
            return Err(ended);
        }
        let frame = Bytes::from(encode_ws_send(dest, buf));
        match self.outbound.send(frame).await {
            Ok(()) => Ok(buf.len()),
            Err(_) => Err(self.ended_error()),
        }
    }

    /// Receives one datagram into `buf`: its length and sender. As with
    /// UDP, a datagram longer than `buf` is cut to fit (the rest is lost;
    /// [`recv`](Self::recv) returns it whole). Datagrams received before
    /// the socket ended are read first, then its error.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), SocketError> {
        let datagram = self.recv().await?;
        let n = datagram.payload.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram.payload[..n]);
        Ok((n, datagram.src))
    }

    /// Receives one datagram, whole, with its sequence number.
    pub async fn recv(&self) -> Result<Datagram, SocketError> {
        // After `close`, what was still queued is not the caller's any more.
        if let Some(SocketError::ClosedLocally) = self.shared.ended() {
            return Err(SocketError::ClosedLocally);
        }
        self.inbound.recv().await.map_err(|_| self.ended_error())
    }

    /// The next event (losses, send failures, reconnections, the end);
    /// `None` after [`Event::Ended`] was taken. Events are held up to
    /// [`MAX_EVENTS`](crate::MAX_EVENTS), see there.
    pub async fn next_event(&self) -> Option<Event> {
        self.shared.next_event().await
    }

    /// The next event if one is queued.
    pub fn try_next_event(&self) -> Option<Event> {
        self.shared.try_next_event()
    }

    /// What the daemon reported lost so far.
    pub fn losses(&self) -> Losses {
        self.shared.losses()
    }

    /// The socket's counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Why the socket ended, if it did.
    pub fn ended(&self) -> Option<SocketError> {
        self.shared.ended()
    }

    /// Unbinds the socket: writes the sends already queued, closes the
    /// channel, stops renewing and deletes the binding. Afterwards every
    /// call returns [`SocketError::ClosedLocally`] (or the end that came
    /// before). A binding the daemon already closed (unbound, expired) is
    /// not an error.
    pub async fn close(&self) -> Result<(), RequestError> {
        let before = self.shared.ended();
        self.shared.end(SocketError::ClosedLocally);
        self.stop.close();
        // The channel writes what is queued; bounded, in case the daemon is gone.
        let runtime = &self.http.runtime;
        let mut timer = runtime.new_timer(runtime.now() + crate::http::REQUEST_TIMEOUT);
        futures_lite::future::or(self.shared.finished(), porthole_runtime::sleep(&mut timer)).await;
        if matches!(before, Some(SocketError::Closed(_))) {
            return Ok(());
        }
        if self.shared.unbound.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        unbind(&self.http, self.id).await
    }

    fn ended_error(&self) -> SocketError {
        self.shared.ended().unwrap_or(SocketError::ClosedLocally)
    }
}

impl Drop for LeasedSocket {
    fn drop(&mut self) {
        // Dropping `stop` stops the tasks; the binding is given back unless
        // it is gone already.
        let gone = matches!(self.shared.ended(), Some(SocketError::Closed(_)));
        if gone || self.shared.unbound.swap(true, Ordering::Relaxed) {
            return;
        }
        self.shared.end(SocketError::ClosedLocally);
        let (http, id) = (self.http.clone(), self.id);
        self.http.runtime.spawn(Box::pin(async move {
            if let Err(e) = unbind(&http, id).await {
                tracing::debug!(binding = %id, error = %e, "unbind on drop failed");
            }
        }));
    }
}

/// `DELETE /v1/udp/bind/{id}`; a binding already gone counts as unbound.
async fn unbind(http: &Http, id: BindingId) -> Result<(), RequestError> {
    match http
        .call::<UnboundBody>(Method::DELETE, &format!("/v1/udp/bind/{id}"), None)
        .await
    {
        Ok(_) => Ok(()),
        Err(RequestError::Refused(ServerError {
            code: Some(ErrorCode::NotFound),
            ..
        })) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_asked_in_whole_seconds_rounded_up_and_at_least_one() {
        let lease = |d: Option<Duration>| {
            BindParams {
                lease: d,
                ..BindParams::default()
            }
            .request()
            .lease_secs
        };
        assert_eq!(lease(None), None);
        assert_eq!(lease(Some(Duration::from_secs(60))), Some(60));
        assert_eq!(lease(Some(Duration::from_millis(1500))), Some(2));
        assert_eq!(lease(Some(Duration::ZERO)), Some(1));
        let at = BindParams::at("[::1]:5353".parse().unwrap()).request();
        assert_eq!((at.addr.as_deref(), at.port), (Some("::1"), 5353));
    }
}
