//! The simulated clock.

use std::time::{Duration, Instant};

/// Simulated time: an `Instant` chosen by the caller plus the time simulated so far.
///
/// It only moves when told to; nothing in the simulation reads a real clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimClock {
    epoch: Instant,
    /// Time simulated so far, in nanoseconds: the simulation's own unit.
    /// (An `Instant` is made only when asked for: the clock moves more often
    /// than the engine is fed, and `Instant` arithmetic is checked and
    /// normalised.)
    elapsed: u64,
}

/// `d` in nanoseconds, saturated at 584 years (which no simulation reaches).
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

impl SimClock {
    /// A clock that starts at `epoch`.
    pub fn new(epoch: Instant) -> Self {
        SimClock { epoch, elapsed: 0 }
    }

    /// The instant the clock started at.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The current simulated instant.
    pub fn now(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.elapsed)
    }

    /// Time simulated since the start.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed)
    }

    /// Time simulated since the start, in nanoseconds.
    pub(crate) fn elapsed_nanos(&self) -> u64 {
        self.elapsed
    }

    /// The offset of `at` from the start (zero for instants before it).
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// Moves the clock forward to `elapsed` since the start; never backwards.
    pub fn advance_to(&mut self, elapsed: Duration) {
        self.advance_to_nanos(nanos(elapsed));
    }

    /// [`SimClock::advance_to`] in nanoseconds.
    pub(crate) fn advance_to_nanos(&mut self, elapsed: u64) {
        self.elapsed = self.elapsed.max(elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_forward_only() {
        let epoch = Instant::now();
        let mut clock = SimClock::new(epoch);
        clock.advance_to(Duration::from_millis(1500));
        clock.advance_to(Duration::from_millis(1000));
        assert_eq!(clock.elapsed(), Duration::from_millis(1500));
        assert_eq!(clock.elapsed_nanos(), 1_500_000_000);
        assert_eq!(clock.now(), epoch + Duration::from_millis(1500));
        assert_eq!(nanos(Duration::new(2, 5)), 2_000_000_005);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
