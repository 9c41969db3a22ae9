//! The socket's background tasks: the WebSocket channel (reading into the
//! bounded receive queue, writing queued sends, reconnecting with resume) and
//! the lease renewal.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender, TrySendError};
use async_tungstenite::tungstenite::Message;
use bytes::Bytes;
use futures_lite::{Stream, StreamExt};
use futures_sink::Sink;
use hyper::Method;
use porthole_core::api::ws::{decode_ws_datagram, WsNotice};
use porthole_core::api::ErrorCode;
use porthole_core::api::RenewedBody;
use porthole_core::{BindingId, CloseReason, Seq};
use porthole_runtime::{sleep, AsyncTimer, Runtime};

use crate::error::{RequestError, SocketError};
use crate::http::{Http, Ws};
use crate::shared::Shared;
use crate::socket::Datagram;

/// The first wait between reconnect attempts (the first attempt is at once).
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a closing channel waits for the daemon to take its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Closed (by [`close`](crate::LeasedSocket::close) or by dropping the
/// handle) to stop the tasks.
pub(crate) type Stop = Pin<Box<Receiver<Infallible>>>;

/// Why a connected channel stopped turning.
enum Turn {
    /// The handle asked to stop; every queued send was written.
    Stop,
    /// The daemon closed the binding.
    Closed(CloseReason),
    /// The connection failed; worth opening again.
    Dropped(String),
}

/// The WebSocket channel's task.
pub(crate) struct Channel {
    pub(crate) http: Http,
    pub(crate) binding: BindingId,
    pub(crate) shared: Arc<Shared>,
    /// The receive queue (bounded: when it is full the channel stops reading).
    pub(crate) inbound: Sender<Datagram>,
    /// Encoded send messages from the handle.
    pub(crate) outbound: Pin<Box<Receiver<Bytes>>>,
    pub(crate) stop: Stop,
    pub(crate) reconnect_timeout: Duration,
    /// The last datagram taken from the channel (0: none yet): where a new
    /// channel resumes. Always given, so that a channel that dropped before
    /// its first datagram arrived resumes from the start too (without it the
    /// daemon would start after what it delivered into the lost connection).
    pub(crate) last_seq: Seq,
    /// A datagram taken from the channel while the receive queue was full,
    /// waiting for room. The channel reads nothing more meanwhile.
    pub(crate) held: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// A message (a datagram to send, a ping) that the WebSocket had no room for yet.
    pub(crate) unsent: Option<Message>,
    /// How the channel notices a connection that went silent.
    pub(crate) liveness: Liveness,
    pub(crate) unflushed: bool,
    pub(crate) stopping: bool,
}

impl Channel {
    /// Runs the channel until the socket ends.
    pub(crate) async fn run(mut self, mut ws: Ws) {
        let end = loop {
            match std::future::poll_fn(|cx| self.poll_turn(&mut ws, cx)).await {
                Turn::Stop => {
                    close_gracefully(&*self.http.runtime, &mut ws).await;
                    break None;
                }
                Turn::Closed(reason) => break Some(SocketError::Closed(reason)),
                Turn::Dropped(why) => {
                    tracing::debug!(binding = %self.binding, %why, "channel dropped; reconnecting");
                    match self.reconnect().await {
                        Ok(new) => ws = new,
                        Err(end) => break end,
                    }
                }
            }
        };
        if let (Some(SocketError::Closed(_)), Some(held)) = (&end, self.held.take()) {
            // The last datagram before the end is the caller's too.
            futures_lite::future::or(held, async {
                self.stop.next().await;
            })
            .await;
        }
        self.shared.finish(end);
    }

    /// Writes queued sends and reads datagrams and notices, until the
    /// channel stops, the binding closes or the connection fails.
    fn poll_turn(&mut self, ws: &mut Ws, cx: &mut Context<'_>) -> Poll<Turn> {
        if !self.stopping && self.stop.as_mut().poll_next(cx).is_ready() {
            self.stopping = true;
        }
        // A silent connection is dropped; only while the channel reads (a
        // full receive queue silences it on purpose).
        let reading = self.held.is_none() && !self.stopping;
        if let Poll::Ready(Some(silent)) = self.liveness.poll(cx, reading) {
            return Poll::Ready(Turn::Dropped(format!(
                "no message from the server for {silent:?}, not even an answer to a ping"
            )));
        }
        // Sends, first: they go out even while the receive queue is full.
        loop {
            if self.unsent.is_none() {
                if std::mem::take(&mut self.liveness.ping_due) {
                    self.unsent = Some(Message::Ping(Bytes::new()));
                } else {
                    match self.outbound.as_mut().poll_next(cx) {
                        Poll::Ready(Some(frame)) => self.unsent = Some(Message::Binary(frame)),
                        Poll::Ready(None) | Poll::Pending => break,
                    }
                }
            }
            match Pin::new(&mut *ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Turn::Dropped(e.to_string())),
                Poll::Pending => break,
            }
            if let Some(message) = self.unsent.take() {
                let datagram = matches!(message, Message::Binary(_));
                if let Err(e) = Pin::new(&mut *ws).start_send(message) {
                    return Poll::Ready(Turn::Dropped(e.to_string()));
                }
                if datagram {
                    self.shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                self.unflushed = true;
            }
        }
        if self.unflushed {
            match Pin::new(&mut *ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Turn::Dropped(e.to_string())),
                Poll::Pending => {}
            }
        }
        if self.stopping {
            let written = self.unsent.is_none() && !self.unflushed && self.outbound.is_empty();
            return if written {
                Poll::Ready(Turn::Stop)
            } else {
                Poll::Pending
            };
        }
        // Datagrams and notices, while the receive queue has room.
        loop {
            if let Some(held) = self.held.as_mut() {
                match held.as_mut().poll(cx) {
                    Poll::Ready(()) => self.held = None,
                    Poll::Pending => return Poll::Pending,
                }
            }
            match Pin::new(&mut *ws).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    if let Some(turn) = self.on_message(message) {
                        return Poll::Ready(turn);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Turn::Dropped(e.to_string())),
                Poll::Ready(None) => {
                    return Poll::Ready(Turn::Dropped("the connection ended".into()))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Takes one message from the daemon.
    fn on_message(&mut self, message: Message) -> Option<Turn> {
        self.liveness.heard = true;
        match message {
            Message::Binary(bytes) => match decode_ws_datagram(bytes) {
                Ok(d) => {
                    // A resumed channel starts after `last_seq`; anything at or
                    // before it was queued already.
                    if d.seq.0 <= self.last_seq.0 {
                        return None;
                    }
                    self.last_seq = d.seq;
                    self.shared.received.fetch_add(1, Ordering::Relaxed);
                    let datagram = Datagram {
                        seq: d.seq,
                        src: d.src,
                        payload: d.payload,
                    };
                    match self.inbound.try_send(datagram) {
                        Ok(()) | Err(TrySendError::Closed(_)) => {}
                        Err(TrySendError::Full(datagram)) => {
                            let inbound = self.inbound.clone();
                            self.held = Some(Box::pin(async move {
                                let _ = inbound.send(datagram).await;
                            }));
                        }
                    }
                    None
                }
                Err(e) => Some(Turn::Dropped(format!("malformed datagram message: {e}"))),
            },
            Message::Text(text) => {
                match WsNotice::decode(text.as_str()) {
                    Ok(WsNotice::Lagged { missed }) => self.shared.on_lagged(missed),
                    Ok(WsNotice::SendError {
                        dest,
                        error,
                        message,
                        count,
                    }) => self.shared.on_send_error(dest, error, message, count),
                    Ok(WsNotice::Closed(reason)) => return Some(Turn::Closed(reason)),
                    // A newer daemon's notice: nothing this client can act on.
                    Err(e) => tracing::debug!(error = %e, "unknown notice ignored"),
                }
                None
            }
            Message::Close(frame) => Some(Turn::Dropped(format!(
                "the server closed the channel without a notice ({frame:?})"
            ))),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        }
    }

    /// Opens the channel again, resuming after the last datagram taken;
    /// backs off between attempts and gives up after the reconnect time.
    /// `Err(None)`: the handle asked to stop meanwhile.
    async fn reconnect(&mut self) -> Result<Ws, Option<SocketError>> {
        let runtime = self.http.runtime.clone();
        let started = runtime.now();
        let mut delay = FIRST_BACKOFF;
        let mut attempts = 0u32;
        let mut timer = runtime.new_timer(started);
        loop {
            attempts += 1;
            let (http, stop) = (&self.http, &mut self.stop);
            let (binding, last_seq) = (self.binding, self.last_seq);
            let attempt = futures_lite::future::or(
                async { Some(http.open_channel(binding, last_seq).await) },
                async {
                    stop.next().await;
                    None
                },
            )
            .await;
            let failure = match attempt {
                None => return Err(None),
                Some(Ok(ws)) => {
                    tracing::debug!(binding = %self.binding, attempts, "channel reopened");
                    self.liveness.heard = true;
                    let resumed_after = Some(self.last_seq).filter(|seq| seq.0 > 0);
                    self.shared.on_reconnected(attempts, resumed_after);
                    return Ok(ws);
                }
                Some(Err(RequestError::Refused(e))) if !e.is_transient() => {
                    return Err(Some(SocketError::Refused(e)));
                }
                Some(Err(e)) => e,
            };
            let elapsed = runtime.now().saturating_duration_since(started);
            if elapsed + delay > self.reconnect_timeout {
                return Err(Some(SocketError::Lost {
                    after: elapsed,
                    last_error: failure.to_string(),
                }));
            }
            timer.as_mut().reset(runtime.now() + delay);
            let stop = &mut self.stop;
            let stopped = futures_lite::future::or(
                async {
                    sleep(&mut timer).await;
                    false
                },
                async {
                    stop.next().await;
                    true
                },
            )
            .await;
            if stopped {
                return Err(None);
            }
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }
}

/// Notices a connection that carries nothing any more (a peer or a path
/// gone without a FIN or RST): after a quiet `keep_alive`, a ping; after
/// another without any message, the connection is given up (and reopened).
/// The daemon pings a quiet channel itself (`--keep-alive`), which counts.
pub(crate) struct Liveness {
    runtime: Arc<dyn Runtime>,
    /// `None`: never give up on a quiet connection.
    keep_alive: Option<Duration>,
    timer: Pin<Box<dyn AsyncTimer>>,
    /// A message arrived since the timer last fired.
    pub(crate) heard: bool,
    /// A ping went out when the timer last fired.
    pinged: bool,
    /// A ping is to be written.
    pub(crate) ping_due: bool,
}

impl Liveness {
    /// Checks every `keep_alive` (zero: never).
    pub(crate) fn new(runtime: Arc<dyn Runtime>, keep_alive: Duration) -> Self {
        let keep_alive = Some(keep_alive).filter(|d| !d.is_zero());
        // Never polled without a keep-alive.
        let timer = runtime.new_timer(runtime.now() + keep_alive.unwrap_or_default());
        Liveness {
            runtime,
            keep_alive,
            timer,
            heard: true,
            pinged: false,
            ping_due: false,
        }
    }

    /// `Ready(Some(silence))` once the connection is deemed gone. A quiet
    /// time while not `reading` counts for nothing.
    fn poll(&mut self, cx: &mut Context<'_>, reading: bool) -> Poll<Option<Duration>> {
        let Some(keep_alive) = self.keep_alive else {
            return Poll::Pending;
        };
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.heard || !reading {
                (self.heard, self.pinged) = (false, false);
            } else if !self.pinged {
                (self.pinged, self.ping_due) = (true, true);
            } else {
                return Poll::Ready(Some(keep_alive * 2));
            }
            let next = self.runtime.now() + keep_alive;
            self.timer.as_mut().reset(next);
        }
        Poll::Pending
    }
}

/// Sends a close frame and waits briefly for the daemon's answer.
async fn close_gracefully(runtime: &dyn Runtime, ws: &mut Ws) {
    let mut timer = runtime.new_timer(runtime.now() + CLOSE_GRACE);
    futures_lite::future::or(
        async {
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        },
        sleep(&mut timer),
    )
    .await;
}

/// Renewals per lease: the lease is renewed after a third of it, so two
/// renewals can fail before it runs out.
const RENEWALS_PER_LEASE: u32 = 3;
/// The shortest time between renewals.
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(100);
/// The longest wait before trying a failed renewal again.
const RENEW_RETRY: Duration = Duration::from_secs(1);

/// When to renew a lease of `lease`.
fn renew_interval(lease: Duration) -> Duration {
    (lease / RENEWALS_PER_LEASE).max(MIN_RENEW_INTERVAL)
}

/// The lease renewal task: a heartbeat every third of the lease, until the
/// handle stops it or the binding is gone.
pub(crate) async fn renew(
    http: Http,
    binding: BindingId,
    shared: Arc<Shared>,
    mut stop: Stop,
    lease: Duration,
) {
    let runtime = http.runtime.clone();
    let mut interval = renew_interval(lease);
    let mut timer = runtime.new_timer(runtime.now() + interval);
    let path = format!("/v1/udp/heartbeat/{binding}");
    loop {
        let renewal = futures_lite::future::or(
            async {
                sleep(&mut timer).await;
                Some(http.call::<RenewedBody>(Method::PUT, &path, None).await)
            },
            async {
                stop.next().await;
                None
            },
        )
        .await;
        let next = match renewal {
            None => return,
            Some(Ok(renewed)) => {
                shared.renewals.fetch_add(1, Ordering::Relaxed);
                shared
                    .lease_secs
                    .store(renewed.lease_secs, Ordering::Relaxed);
                interval = renew_interval(Duration::from_secs(renewed.lease_secs));
                interval
            }
            Some(Err(RequestError::Refused(e))) if e.code == Some(ErrorCode::NotFound) => {
                // The binding is gone; the channel says why.
                tracing::debug!(%binding, "binding gone; lease renewal ends");
                return;
            }
            Some(Err(e)) => {
                tracing::warn!(%binding, error = %e, "lease renewal failed; trying again");
                interval.min(RENEW_RETRY)
            }
        };
        timer.as_mut().reset(runtime.now() + next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_renewed_after_a_third_and_never_more_often_than_the_floor() {
        assert_eq!(
            renew_interval(Duration::from_secs(300)),
            Duration::from_secs(100)
        );
        assert_eq!(
            renew_interval(Duration::from_secs(1)),
            Duration::from_millis(333) + Duration::from_nanos(333_333)
        );
        assert_eq!(renew_interval(Duration::ZERO), MIN_RENEW_INTERVAL);
    }
}
