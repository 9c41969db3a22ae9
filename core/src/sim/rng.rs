//! The simulation's seeded random generator.

use std::ops::RangeInclusive;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// A seeded generator with the few draws the simulation needs.
///
/// Each part of the simulation (network, clients, runtime) draws from its own
/// stream of the same seed, so a change in how one part draws does not reshuffle
/// the others.
#[derive(Clone, Debug)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// Stream `stream` of `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        SimRng(rng)
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0). The modulo bias is irrelevant for a simulation.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// An index into a collection of `len` elements (0 when empty).
    pub fn index(&mut self, len: usize) -> usize {
        // `below(len)` is less than `len`, so it fits back into a usize.
        self.below(len as u64) as usize
    }

    /// A number in `range`.
    pub fn in_range(&mut self, range: RangeInclusive<u64>) -> u64 {
        let (lo, hi) = (*range.start(), *range.end());
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    /// A duration in `range`, to the microsecond.
    pub fn duration(&mut self, range: RangeInclusive<Duration>) -> Duration {
        let lo = u64::try_from(range.start().as_micros()).unwrap_or(u64::MAX);
        let hi = u64::try_from(range.end().as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.in_range(lo..=hi))
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// 32 random bytes, e.g. the engine's seed.
    pub fn seed_bytes(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        self.0.fill_bytes(&mut seed);
        seed
    }
}
