//! Wall-clock timestamps from a fixed anchor, so the engine never reads the system clock.

use std::time::{Instant, SystemTime};

/// A pair of readings of the monotonic and the wall clock taken at the same moment.
///
/// The engine turns an `Instant` into a `SystemTime` by offsetting from the anchor:
/// timestamps in the API stay consistent with the monotonic time that drives
/// leases, and a test that picks the anchor gets the same timestamps every run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    instant: Instant,
    system: SystemTime,
}

impl WallClock {
    /// An anchor: `system` is the wall-clock time at `instant`.
    pub fn new(instant: Instant, system: SystemTime) -> Self {
        WallClock { instant, system }
    }

    /// The monotonic side of the anchor.
    pub fn instant(&self) -> Instant {
        self.instant
    }

    /// The wall-clock time at `at`.
    pub fn at(&self, at: Instant) -> SystemTime {
        let shifted = if at >= self.instant {
            self.system.checked_add(at - self.instant)
        } else {
            self.system.checked_sub(self.instant - at)
        };
        // Only an absurd anchor overflows; the anchor itself is then the best answer.
        shifted.unwrap_or(self.system)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wall_time_moves_with_the_monotonic_clock() {
        let i = Instant::now();
        let s = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let w = WallClock::new(i, s);
        assert_eq!(
            w.at(i + Duration::from_millis(1500)),
            s + Duration::from_millis(1500)
        );
        assert_eq!(w.at(i), s);
    }
}
