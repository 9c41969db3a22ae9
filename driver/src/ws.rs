//! The WebSocket datagram channel, `GET /v1/udp/ws/{id}`: one full-duplex
//! connection that carries a subscriber's datagrams to the client and the
//! client's datagrams to the binding's socket.
//!
//! The channel is an engine subscriber (same limit, resume and credit as an
//! SSE stream) plus a client of `Command::Send`; every decision (policy,
//! sizes, lag) stays the engine's. Frames are `porthole_core::api::ws`'s.
//! It runs in one task over hyper's upgraded connection, through
//! `async-tungstenite` on a futures-io adapter, so no runtime is named here.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::WebSocketStream;
use futures_lite::Stream;
use futures_sink::Sink;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::{OnUpgrade, Upgraded};
use porthole_core::api::ws::{self as frames, WsNotice};
use porthole_core::api::{ApiError, RequestError};
use porthole_core::{BindingId, Command, Event, Reply, SubscriberId};

use crate::driver::{StreamItem, ToDriver};
use crate::runtime::{AsyncTimer, FuturesIo, Runtime};
use crate::server::ConnectionGuard;

/// Sends handed to the engine whose outcome the channel has not read yet.
/// Beyond this (or [`MAX_OUTSTANDING_BYTES`]) the channel stops reading the
/// WebSocket, so a client that sends faster than the socket drains is held
/// back by TCP, never by a growing queue.
const MAX_OUTSTANDING: usize = 256;

/// Payload bytes of the outstanding sends, likewise.
const MAX_OUTSTANDING_BYTES: usize = 1024 * 1024;

/// Notices waiting to be written. Beyond this the channel stops reading send
/// outcomes (and so, soon, the WebSocket): a client that never reads cannot
/// make it queue failure notices without end. Repeated failures to the same
/// destination coalesce into one notice, so a burst takes one slot.
const MAX_NOTICES: usize = 64;

/// Messages written in one go before the channel flushes and returns their
/// credit, so a burst is one write while credit still returns steadily.
const WRITE_BATCH: usize = 64;

/// How long a closing channel waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Checks that a request asks for a WebSocket (RFC 6455 §4.2.1) and returns
/// its `Sec-WebSocket-Accept`. Checked before subscribing, so a plain GET
/// changes nothing.
pub(crate) fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, RequestError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let invalid = |reason: &str| RequestError::InvalidParameter {
        name: "WebSocket upgrade",
        reason: reason.to_owned(),
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(invalid(
            "this route is a WebSocket: send Upgrade: websocket and Connection: Upgrade",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(invalid("Sec-WebSocket-Version must be 13"));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| invalid("Sec-WebSocket-Key is missing"))?;
    HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| invalid("Sec-WebSocket-Key is unusable"))
}

/// How a channel reaches the rest of the driver.
pub(crate) struct Wiring {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) control: Sender<ToDriver>,
    /// Sends a command to the driver; `None` once the driver is gone.
    pub(crate) submit: Box<dyn Fn(Command) -> Option<Receiver<Reply>> + Send + Sync>,
    /// Ping interval on a quiet channel (proxies drop idle connections).
    pub(crate) keep_alive: Duration,
    /// Counts the channel as open until it ends (shutdown waits for it).
    pub(crate) _open: ConnectionGuard,
}

/// Runs a subscribed channel once hyper has handed over the connection. If
/// the upgrade fails (the client left), the subscriber is given up.
pub(crate) async fn serve(
    upgrade: OnUpgrade,
    binding: BindingId,
    subscriber: SubscriberId,
    items: Receiver<StreamItem>,
    wiring: Wiring,
) {
    let guard = SubscriberGuard {
        subscriber,
        control: wiring.control.clone(),
        ended: false,
    };
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket upgrade failed");
            return;
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(frames::MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(frames::MAX_CLIENT_MESSAGE));
    let ws =
        WebSocketStream::from_raw_socket(FuturesIo(upgraded), Role::Server, Some(config)).await;
    let now = wiring.runtime.now();
    let mut channel = Channel {
        ws,
        binding,
        items: Box::pin(items),
        keep_alive: wiring.runtime.new_timer(now + wiring.keep_alive),
        wiring,
        guard,
        sends: VecDeque::new(),
        outstanding_bytes: 0,
        notices: VecDeque::new(),
        unflushed: false,
        credit: 0,
        closing: None,
    };
    futures_lite::future::poll_fn(|cx| channel.poll_turn(cx)).await;
}

/// Tells the engine the subscriber is gone unless the engine ended it.
struct SubscriberGuard {
    subscriber: SubscriberId,
    control: Sender<ToDriver>,
    ended: bool,
}

impl SubscriberGuard {
    fn release(&mut self) {
        if !self.ended {
            self.ended = true;
            let _ = self
                .control
                .try_send(ToDriver::SubscriberGone(self.subscriber));
        }
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// A send the engine has not answered yet.
struct Outstanding {
    dest: std::net::SocketAddr,
    len: usize,
    /// Boxed: a receiver is not `Unpin`.
    reply: Pin<Box<Receiver<Reply>>>,
}

struct Channel {
    ws: WebSocketStream<Io>,
    /// The binding whose socket sends the client's datagrams.
    binding: BindingId,
    wiring: Wiring,
    guard: SubscriberGuard,
    items: Pin<Box<Receiver<StreamItem>>>,
    sends: VecDeque<Outstanding>,
    outstanding_bytes: usize,
    notices: VecDeque<WsNotice>,
    /// Written since the last completed flush.
    unflushed: bool,
    /// Events written but not yet flushed: returned to the engine on flush.
    credit: u32,
    keep_alive: Pin<Box<dyn AsyncTimer>>,
    /// The close frame is queued: a deadline for the client's answer.
    closing: Option<Pin<Box<dyn AsyncTimer>>>,
}

/// What one step of the channel came to.
enum Step {
    /// Something moved; go round again.
    Progress,
    /// Nothing to do until woken.
    Idle,
    /// The connection is finished.
    Done,
}

impl Channel {
    /// One wake-up: every direction moves as far as it can.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut progress = false;
            for step in [
                self.take_outcomes(cx),
                self.write(cx),
                self.flush(cx),
                self.read(cx),
            ] {
                match step {
                    Step::Done => return Poll::Ready(()),
                    Step::Progress => progress = true,
                    Step::Idle => {}
                }
            }
            if let Some(deadline) = self.closing.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Reads the outcomes of sends in order; failures become notices.
    fn take_outcomes(&mut self, cx: &mut Context<'_>) -> Step {
        let mut step = Step::Idle;
        while self.notices.len() < MAX_NOTICES {
            let Some(front) = self.sends.front_mut() else {
                break;
            };
            let outcome = match front.reply.as_mut().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(outcome) => outcome,
            };
            let dest = front.dest;
            self.outstanding_bytes -= front.len;
            self.sends.pop_front();
            step = Step::Progress;
            if let Some(Reply::Send(Err(e))) = outcome {
                self.notify(WsNotice::SendError {
                    dest,
                    error: e.code(),
                    message: e.to_string(),
                    count: 1,
                });
            }
        }
        step
    }

    fn notify(&mut self, notice: WsNotice) {
        if let Some(last) = self.notices.back_mut() {
            if last.coalesce(&notice) {
                return;
            }
        }
        self.notices.push_back(notice);
    }

    /// Writes notices, then the engine's events, while the connection takes them.
    fn write(&mut self, cx: &mut Context<'_>) -> Step {
        if self.closing.is_some() {
            return Step::Idle;
        }
        let mut written = 0;
        // Whether the connection takes a message now (a ping waits otherwise).
        let mut ready = false;
        while written < WRITE_BATCH {
            ready = false;
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => return Step::Done,
                Poll::Ready(Ok(())) => ready = true,
            }
            let message = if let Some(notice) = self.notices.pop_front() {
                Message::text(notice.encode())
            } else {
                match self.items.as_mut().poll_next(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Some(StreamItem::Event(event))) => {
                        self.credit += 1;
                        match event {
                            Event::Datagram(d) => Message::binary(frames::encode_ws_datagram(&d)),
                            Event::Lagged { missed } => {
                                Message::text(WsNotice::Lagged { missed }.encode())
                            }
                        }
                    }
                    Poll::Ready(Some(StreamItem::End(reason))) => {
                        self.guard.ended = true;
                        let notice = Message::text(WsNotice::Closed(reason).encode());
                        if Pin::new(&mut self.ws).start_send(notice).is_err() {
                            return Step::Done;
                        }
                        self.close(frames::close_code(reason), reason.as_str());
                        return Step::Progress;
                    }
                    Poll::Ready(None) => {
                        // The driver stopped without ending the stream.
                        self.guard.ended = true;
                        self.close(frames::CLOSE_GOING_AWAY, "shutdown");
                        return Step::Progress;
                    }
                }
            };
            if Pin::new(&mut self.ws).start_send(message).is_err() {
                return Step::Done;
            }
            written += 1;
        }
        if written == 0 && ready && self.keep_alive.as_mut().poll(cx).is_ready() {
            if Pin::new(&mut self.ws)
                .start_send(Message::Ping(Default::default()))
                .is_err()
            {
                return Step::Done;
            }
            written = 1;
        }
        if written == 0 {
            return Step::Idle;
        }
        self.unflushed = true;
        let at = self.wiring.runtime.now() + self.wiring.keep_alive;
        self.keep_alive.as_mut().reset(at);
        Step::Progress
    }

    /// Flushes what was written; once it is out, the events' credit goes back.
    fn flush(&mut self, cx: &mut Context<'_>) -> Step {
        if !self.unflushed {
            return Step::Idle;
        }
        match Pin::new(&mut self.ws).poll_flush(cx) {
            Poll::Pending => Step::Idle,
            Poll::Ready(Err(_)) => Step::Done,
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                if self.credit > 0 && !self.guard.ended {
                    let _ = self.wiring.control.try_send(ToDriver::Credit {
                        subscriber: self.guard.subscriber,
                        credit: self.credit,
                    });
                }
                self.credit = 0;
                Step::Progress
            }
        }
    }

    /// Reads client messages while the outstanding sends are within bounds;
    /// once closing, reads only to see the client's close frame.
    fn read(&mut self, cx: &mut Context<'_>) -> Step {
        let mut step = Step::Idle;
        loop {
            let room = self.sends.len() < MAX_OUTSTANDING
                && self.outstanding_bytes < MAX_OUTSTANDING_BYTES;
            if !room && self.closing.is_none() {
                return step;
            }
            let message = match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => return step,
                Poll::Ready(None) => return Step::Done,
                Poll::Ready(Some(Err(WsError::Capacity(e)))) => {
                    self.close(frames::CLOSE_TOO_BIG, &e.to_string());
                    return Step::Progress;
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "WebSocket channel failed");
                    return Step::Done;
                }
                Poll::Ready(Some(Ok(message))) => message,
            };
            step = Step::Progress;
            if self.closing.is_some() {
                // Only the client's close frame matters now; tungstenite
                // ends the stream once the handshake is complete.
                self.unflushed = true;
                continue;
            }
            match message {
                Message::Binary(bytes) => match frames::decode_ws_send(bytes) {
                    Ok((dest, payload)) => self.send(dest, payload),
                    Err(e) => self.close(frames::CLOSE_INVALID_PAYLOAD, &e.to_string()),
                },
                Message::Text(_) => self.close(
                    frames::CLOSE_UNSUPPORTED_DATA,
                    "text messages are not taken: send datagrams as binary messages",
                ),
                // tungstenite answers pings and the client's close frame by
                // itself; the answer goes out with the next flush.
                Message::Ping(_) | Message::Close(_) => self.unflushed = true,
                Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn send(&mut self, dest: std::net::SocketAddr, payload: bytes::Bytes) {
        let len = payload.len();
        let command = Command::Send {
            binding: self.binding,
            dest,
            payload,
        };
        match (self.wiring.submit)(command) {
            Some(reply) => {
                self.outstanding_bytes += len;
                self.sends.push_back(Outstanding {
                    dest,
                    len,
                    reply: Box::pin(reply),
                });
            }
            None => self.close(frames::CLOSE_GOING_AWAY, "shutdown"),
        }
    }

    /// Queues a close frame, gives the subscriber up at once (so it no longer
    /// counts against the binding's limit), and waits a while for the
    /// client's answer.
    fn close(&mut self, code: u16, reason: &str) {
        if self.closing.is_some() {
            return;
        }
        self.guard.release();
        let frame = CloseFrame {
            code: code.into(),
            reason: truncate(reason, 123).into(),
        };
        // Queued even when the connection is busy: tungstenite's write
        // buffer takes it, and the flush that follows sends it.
        let _ = Pin::new(&mut self.ws).start_send(Message::Close(Some(frame)));
        self.unflushed = true;
        let now = self.wiring.runtime.now();
        self.closing = Some(self.wiring.runtime.new_timer(now + CLOSE_GRACE));
    }
}

/// At most `max` bytes of `s`, cut at a character boundary (a close reason
/// has room for 123).
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// hyper's upgraded connection as futures-io, which async-tungstenite reads.
type Io = FuturesIo<Upgraded>;

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        h
    }

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        // The example of RFC 6455 §1.3.
        assert_eq!(
            accept_key(&upgrade_headers()).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn requests_that_are_not_upgrades_are_refused() {
        for missing in [
            header::UPGRADE,
            header::CONNECTION,
            header::SEC_WEBSOCKET_VERSION,
            header::SEC_WEBSOCKET_KEY,
        ] {
            let mut h = upgrade_headers();
            h.remove(&missing);
            assert!(accept_key(&h).is_err(), "{missing}");
        }
        let mut h = upgrade_headers();
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert!(accept_key(&h).is_err());
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 123), "abc");
        assert_eq!(truncate("ééé", 3), "é");
    }
}
