//! Lease durations.

use std::time::Duration;

/// How long a binding lives without a heartbeat, in whole seconds (the API's unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lease(u32);

impl Lease {
    /// A lease of `secs` seconds, saturating at `u32::MAX` (about 136 years).
    pub const fn from_secs(secs: u64) -> Self {
        Lease(if secs > u32::MAX as u64 {
            u32::MAX
        } else {
            secs as u32
        })
    }

    /// The lease a client asked for: a missing or zero value means `default`,
    /// anything longer than `max` is clamped to `max`.
    pub fn requested(secs: Option<u64>, default: Lease, max: Lease) -> Self {
        match secs {
            None | Some(0) => default.min(max),
            Some(secs) => Lease::from_secs(secs).min(max),
        }
    }

    /// Whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.0 as u64
    }

    /// As a [`Duration`].
    pub const fn as_duration(self) -> Duration {
        Duration::from_secs(self.0 as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_or_missing_lease_means_the_default() {
        let (d, m) = (Lease::from_secs(300), Lease::from_secs(86_400));
        assert_eq!(Lease::requested(None, d, m), d);
        assert_eq!(Lease::requested(Some(0), d, m), d);
        assert_eq!(Lease::requested(Some(10), d, m), Lease::from_secs(10));
    }

    #[test]
    fn long_lease_is_clamped_to_the_maximum() {
        let (d, m) = (Lease::from_secs(300), Lease::from_secs(86_400));
        assert_eq!(Lease::requested(Some(u64::MAX), d, m), m);
        assert_eq!(Lease::requested(Some(86_401), d, m), m);
    }
}
