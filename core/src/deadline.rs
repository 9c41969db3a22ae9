//! Deadlines kept in order, so the next one is found without scanning.

use std::collections::BTreeSet;
use std::time::Instant;

/// A set of `(deadline, key)` pairs ordered by deadline, then key.
///
/// Ties are broken by the key, so two keys due at the same instant always come
/// out in the same order: the engine's output must not depend on anything else.
#[derive(Debug)]
pub(crate) struct Deadlines<K> {
    set: BTreeSet<(Instant, K)>,
}

impl<K: Ord + Copy> Deadlines<K> {
    pub(crate) fn new() -> Self {
        Deadlines {
            set: BTreeSet::new(),
        }
    }

    pub(crate) fn insert(&mut self, at: Instant, key: K) {
        self.set.insert((at, key));
    }

    pub(crate) fn remove(&mut self, at: Instant, key: K) -> bool {
        self.set.remove(&(at, key))
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.set.first() {
            Some((at, _)) if *at <= now => self.set.pop_first(),
            _ => None,
        }
    }
}
