//! Response bodies: a JSON document, or a subscriber's event stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::Stream;
use hyper::body::{Body, Frame, SizeHint};
use porthole_core::{api, SubscriberId};

use crate::driver::{StreamItem, ToDriver};
use crate::runtime::{AsyncTimer, Runtime};

/// Largest chunk an event stream hands to hyper at once; the rest follows in
/// the next chunk, so one subscriber's burst does not build one huge buffer.
const MAX_CHUNK: usize = 256 * 1024;

/// The body of every API response.
#[derive(Debug)]
pub struct ApiBody(Kind);

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Events(EventStream),
}

impl ApiBody {
    /// A complete body.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        ApiBody(Kind::Full(Some(bytes.into())))
    }

    pub(crate) fn events(stream: EventStream) -> Self {
        ApiBody(Kind::Events(stream))
    }
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Events(stream) => stream.poll_chunk(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Events(stream) => stream.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Events(_) => SizeHint::default(),
        }
    }
}

/// A subscriber's server-sent events: every event that is ready goes out in
/// one chunk, and the credit for them goes back to the engine as the chunk is
/// handed to hyper (hyper stops asking for chunks while the client's socket is
/// full, so a slow client runs out of credit and the engine reports `lagged`).
pub(crate) struct EventStream {
    subscriber: SubscriberId,
    /// Boxed: a receiver is not `Unpin` (it may hold a registered listener).
    items: Pin<Box<Receiver<StreamItem>>>,
    control: Sender<ToDriver>,
    runtime: Arc<dyn Runtime>,
    keep_alive: Pin<Box<dyn AsyncTimer>>,
    keep_alive_every: Duration,
    /// The engine ended the stream (or the driver is gone): no `SubscriberGone` on drop.
    ended: bool,
    /// Nothing more to write.
    done: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("subscriber", &self.subscriber)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    pub(crate) fn new(
        subscriber: SubscriberId,
        items: Receiver<StreamItem>,
        control: Sender<ToDriver>,
        runtime: Arc<dyn Runtime>,
        keep_alive_every: Duration,
    ) -> Self {
        let keep_alive = runtime.new_timer(runtime.now() + keep_alive_every);
        EventStream {
            subscriber,
            items: Box::pin(items),
            control,
            runtime,
            keep_alive,
            keep_alive_every,
            ended: false,
            done: false,
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut out = Vec::new();
        let mut credit = 0u32;
        while out.len() < MAX_CHUNK {
            match self.items.as_mut().poll_next(cx) {
                Poll::Ready(Some(StreamItem::Event(event))) => {
                    api::encode_event(&mut out, &event);
                    credit += 1;
                }
                Poll::Ready(Some(StreamItem::End(reason))) => {
                    api::encode_closed(&mut out, reason);
                    self.ended = true;
                    self.done = true;
                    break;
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    self.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if credit > 0 {
            let _ = self.control.try_send(ToDriver::Credit {
                subscriber: self.subscriber,
                credit,
            });
        }
        if !out.is_empty() {
            self.rearm_keep_alive();
            return Poll::Ready(Some(Bytes::from(out)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        if self.keep_alive.as_mut().poll(cx).is_ready() {
            self.rearm_keep_alive();
            let mut out = Vec::new();
            api::encode_keep_alive(&mut out);
            return Poll::Ready(Some(Bytes::from(out)));
        }
        Poll::Pending
    }

    fn rearm_keep_alive(&mut self) {
        let at = self.runtime.now() + self.keep_alive_every;
        self.keep_alive.as_mut().reset(at);
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if !self.ended {
            // The client went away (hyper dropped the body).
            let _ = self
                .control
                .try_send(ToDriver::SubscriberGone(self.subscriber));
        }
    }
}
