//! What a receiver (a raw socket or an SSE stream) counted, shared with the
//! thread that sends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::probe::{now_ns, Probe};

/// Counts of one receiver, for the current measurement window.
///
/// A window covers the probes from a starting sequence number on, so stragglers
/// of an earlier window (lower numbers) are not counted in the next one.
#[derive(Debug, Default)]
pub struct Tally {
    window_start: AtomicU64,
    received: AtomicU64,
    missed: AtomicU64,
    last_receipt_ns: AtomicU64,
    recording: AtomicBool,
    latencies_ns: Mutex<Vec<u64>>,
    ended: AtomicBool,
}

impl Tally {
    /// Starts a window at `start_seq`, recording each probe's latency if asked.
    pub fn begin_window(&self, start_seq: u64, record_latency: bool) {
        self.window_start.store(start_seq, Ordering::SeqCst);
        self.received.store(0, Ordering::SeqCst);
        self.missed.store(0, Ordering::SeqCst);
        self.latencies_ns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.recording.store(record_latency, Ordering::SeqCst);
    }

    /// A probe arrived now.
    pub fn record(&self, probe: Probe) {
        if probe.seq < self.window_start.load(Ordering::Relaxed) {
            return;
        }
        let now = now_ns();
        self.received.fetch_add(1, Ordering::Relaxed);
        self.last_receipt_ns.store(now, Ordering::Relaxed);
        if self.recording.load(Ordering::Relaxed) {
            self.latencies_ns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(now.saturating_sub(probe.sent_ns));
        }
    }

    /// The server reported `missed` datagrams it could not deliver (Porthole's `lagged`).
    pub fn lagged(&self, missed: u64) {
        self.missed.fetch_add(missed, Ordering::Relaxed);
    }

    /// The stream ended (or the receiver stopped).
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Probes received in this window.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Datagrams the server reported as missed in this window.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::SeqCst)
    }

    /// [`now_ns`] of the latest receipt.
    pub fn last_receipt_ns(&self) -> u64 {
        self.last_receipt_ns.load(Ordering::SeqCst)
    }

    /// Whether the stream ended.
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// The latencies recorded in this window, in nanoseconds, sorted.
    pub fn take_latencies(&self) -> Vec<u64> {
        self.recording.store(false, Ordering::SeqCst);
        let mut latencies = std::mem::take(
            &mut *self
                .latencies_ns
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        latencies.sort_unstable();
        latencies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_from_before_the_window_are_not_counted() {
        let tally = Tally::default();
        tally.begin_window(10, true);
        tally.record(Probe { seq: 9, sent_ns: 0 });
        tally.record(Probe {
            seq: 10,
            sent_ns: now_ns(),
        });
        tally.record(Probe {
            seq: 11,
            sent_ns: now_ns(),
        });
        assert_eq!(tally.received(), 2);
        assert_eq!(tally.take_latencies().len(), 2);
        tally.begin_window(12, false);
        assert_eq!(tally.received(), 0);
    }
}
