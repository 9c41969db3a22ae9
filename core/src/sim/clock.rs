//! The simulated clock.

use std::time::{Duration, Instant};

/// Simulated time: an `Instant` chosen by the caller plus the time simulated so far.
///
/// It only moves when told to; nothing in the simulation reads a real clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimClock {
    epoch: Instant,
    elapsed: Duration,
}

impl SimClock {
    /// A clock that starts at `epoch`.
    pub fn new(epoch: Instant) -> Self {
        SimClock {
            epoch,
            elapsed: Duration::ZERO,
        }
    }

    /// The instant the clock started at.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The current simulated instant.
    pub fn now(&self) -> Instant {
        self.epoch + self.elapsed
    }

    /// Time simulated since the start.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The offset of `at` from the start (zero for instants before it).
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// Moves the clock forward to `elapsed` since the start; never backwards.
    pub fn advance_to(&mut self, elapsed: Duration) {
        self.elapsed = self.elapsed.max(elapsed);
    }
}
