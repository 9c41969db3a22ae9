//! What a socket's handle and its background tasks share: counters, the
//! event queue, and how the socket ended.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use porthole_core::api::ErrorCode;
use porthole_core::Seq;

use crate::error::SocketError;

/// Events held for the caller. Beyond this, the oldest event is dropped and
/// counted
/// ([`Stats::events_dropped`]); the counters stay exact. Losses reported one
/// after another while the caller does not read are one event (their counts
/// add up), so a long overload takes one slot.
pub const MAX_EVENTS: usize = 64;

/// Something the daemon reported about the socket's traffic, or a change of
/// the socket's connection. Read them with
/// [`LeasedSocket::next_event`](crate::LeasedSocket::next_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `missed` datagrams for this socket were lost on the daemon's side:
    /// the client read too slowly (its receive queue was full, so the
    /// daemon's replay ring overflowed), the daemon's socket buffer
    /// overflowed (`dropped_kernel`), or the daemon hit its memory cap
    /// (`dropped_memory`).
    Lagged {
        /// How many.
        missed: u64,
    },
    /// `count` datagrams in a row to `dest` could not be sent, for `error`
    /// (the HTTP API's code: `destination_denied`, `destination_unreachable`, …).
    SendFailed {
        /// The destination.
        dest: SocketAddr,
        /// Why, as the daemon's error code.
        error: ErrorCode,
        /// The daemon's message for the first of them.
        message: String,
        /// How many sends in a row failed so.
        count: u64,
    },
    /// The channel to the daemon dropped and was opened again, resuming
    /// after the last datagram received: the daemon replays what its ring
    /// still holds, and reports the rest as [`Event::Lagged`].
    Reconnected {
        /// Attempts it took.
        attempts: u32,
        /// The sequence number of the last datagram received before, if any.
        resumed_after: Option<Seq>,
    },
    /// The socket ended; the last event.
    Ended(SocketError),
}

impl Event {
    /// Folds `next` into this event if both are losses; returns whether it
    /// did. (The daemon coalesces a burst of the same send failure itself.)
    fn coalesce(&mut self, next: &Event) -> bool {
        match (self, next) {
            (Event::Lagged { missed }, Event::Lagged { missed: more }) => {
                *missed = missed.saturating_add(*more);
                true
            }
            _ => false,
        }
    }
}

/// What the daemon reported lost, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    /// Datagrams for this socket that the daemon reported missed (the sum
    /// of every [`Event::Lagged`]).
    pub missed: u64,
    /// `lagged` notices received.
    pub lagged_notices: u64,
    /// Datagrams this socket sent that the daemon could not send (the sum
    /// of every [`Event::SendFailed`]'s count).
    pub send_errors: u64,
    /// `send_error` notices received.
    pub send_error_notices: u64,
}

/// A snapshot of a socket's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received from the daemon (queued for the caller).
    pub received: u64,
    /// Datagrams written to the channel for the daemon to send.
    pub sent: u64,
    /// What the daemon reported lost.
    pub losses: Losses,
    /// Times the channel was opened again after it dropped.
    pub reconnects: u64,
    /// Lease renewals the daemon confirmed.
    pub renewals: u64,
    /// Events dropped because the caller did not read them ([`MAX_EVENTS`]).
    pub events_dropped: u64,
}

/// Shared between the handle and its tasks.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
    missed: AtomicU64,
    lagged_notices: AtomicU64,
    send_errors: AtomicU64,
    send_error_notices: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) renewals: AtomicU64,
    /// The lease in force, in seconds (the daemon's latest answer).
    pub(crate) lease_secs: AtomicU64,
    /// Set once the handle unbound the binding (or began to).
    pub(crate) unbound: AtomicBool,
    state: Mutex<State>,
    /// Notified when an event is queued or the socket ends.
    changed: event_listener::Event,
}

#[derive(Debug, Default)]
struct State {
    events: VecDeque<Event>,
    events_dropped: u64,
    /// Why the socket ended, once it did.
    ended: Option<SocketError>,
    /// The channel task is done (nothing more will be queued).
    finished: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave `State` half-updated in a way that
        // matters here: every update is one field or one push.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event (see [`MAX_EVENTS`]).
    fn push(&self, event: Event) {
        let mut state = self.state();
        if let Some(last) = state.events.back_mut() {
            if last.coalesce(&event) {
                drop(state);
                self.changed.notify(usize::MAX);
                return;
            }
        }
        if state.events.len() >= MAX_EVENTS {
            state.events.pop_front();
            state.events_dropped += 1;
        }
        state.events.push_back(event);
        drop(state);
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn on_lagged(&self, missed: u64) {
        self.missed.fetch_add(missed, Ordering::Relaxed);
        self.lagged_notices.fetch_add(1, Ordering::Relaxed);
        self.push(Event::Lagged { missed });
    }

    pub(crate) fn on_send_error(
        &self,
        dest: SocketAddr,
        error: ErrorCode,
        message: String,
        count: u64,
    ) {
        self.send_errors.fetch_add(count, Ordering::Relaxed);
        self.send_error_notices.fetch_add(1, Ordering::Relaxed);
        self.push(Event::SendFailed {
            dest,
            error,
            message,
            count,
        });
    }

    pub(crate) fn on_reconnected(&self, attempts: u32, resumed_after: Option<Seq>) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.push(Event::Reconnected {
            attempts,
            resumed_after,
        });
    }

    /// Records why the socket ended, unless it already had.
    pub(crate) fn end(&self, why: SocketError) {
        let mut state = self.state();
        if state.ended.is_none() {
            state.ended = Some(why);
        }
    }

    /// Why the socket ended, if it did.
    pub(crate) fn ended(&self) -> Option<SocketError> {
        self.state().ended.clone()
    }

    /// The channel task is done: ends the socket with `why` (unless it
    /// already ended) and queues the last event.
    pub(crate) fn finish(&self, why: Option<SocketError>) {
        let mut state = self.state();
        let why = state
            .ended
            .get_or_insert(why.unwrap_or(SocketError::ClosedLocally))
            .clone();
        state.events.push_back(Event::Ended(why));
        state.finished = true;
        drop(state);
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn try_next_event(&self) -> Option<Event> {
        self.state().events.pop_front()
    }

    /// The next event; `None` once the last one was taken.
    pub(crate) async fn next_event(&self) -> Option<Event> {
        loop {
            {
                let mut state = self.state();
                if let Some(event) = state.events.pop_front() {
                    return Some(event);
                }
                if state.finished {
                    return None;
                }
            }
            let listener = self.changed.listen();
            {
                let state = self.state();
                if !state.events.is_empty() || state.finished {
                    continue;
                }
            }
            listener.await;
        }
    }

    /// Waits until the channel task is done.
    pub(crate) async fn finished(&self) {
        loop {
            if self.state().finished {
                return;
            }
            let listener = self.changed.listen();
            if self.state().finished {
                return;
            }
            listener.await;
        }
    }

    pub(crate) fn losses(&self) -> Losses {
        Losses {
            missed: self.missed.load(Ordering::Relaxed),
            lagged_notices: self.lagged_notices.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            send_error_notices: self.send_error_notices.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            losses: self.losses(),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            renewals: self.renewals.load(Ordering::Relaxed),
            events_dropped: self.state().events_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_in_a_row_coalesce_and_a_full_queue_drops_the_oldest() {
        let shared = Shared::default();
        shared.on_lagged(2);
        shared.on_lagged(3);
        let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
        shared.on_send_error(dest, ErrorCode::DestinationDenied, "no".into(), 1);
        shared.on_send_error(dest, ErrorCode::DestinationDenied, "no".into(), 4);
        shared.on_lagged(1);
        assert_eq!(
            shared.try_next_event(),
            Some(Event::Lagged { missed: 5 }),
            "two lagged notices in a row are one event"
        );
        assert!(matches!(
            shared.try_next_event(),
            Some(Event::SendFailed { count: 1, .. })
        ));
        assert!(matches!(
            shared.try_next_event(),
            Some(Event::SendFailed { count: 4, .. })
        ));
        assert_eq!(shared.try_next_event(), Some(Event::Lagged { missed: 1 }));
        for i in 0..MAX_EVENTS as u32 + 3 {
            shared.on_reconnected(i, None);
        }
        assert_eq!(shared.stats().events_dropped, 3);
        assert!(matches!(
            shared.try_next_event(),
            Some(Event::Reconnected { attempts: 3, .. })
        ));
        let losses = shared.losses();
        assert_eq!((losses.missed, losses.lagged_notices), (6, 3));
        assert_eq!((losses.send_errors, losses.send_error_notices), (5, 2));
    }

    #[test]
    fn the_first_end_wins_and_is_the_last_event() {
        let shared = Shared::default();
        shared.end(SocketError::ClosedLocally);
        shared.finish(Some(SocketError::Closed(
            porthole_core::CloseReason::Expired,
        )));
        assert_eq!(shared.ended(), Some(SocketError::ClosedLocally));
        assert_eq!(
            shared.try_next_event(),
            Some(Event::Ended(SocketError::ClosedLocally))
        );
        assert_eq!(futures_lite::future::block_on(shared.next_event()), None);
    }
}
