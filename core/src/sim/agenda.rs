//! A timed queue: items come out by time, then in the order they went in.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

/// Items due at simulated times. A binary heap of small keys, not a `BTreeMap`:
/// the simulation pushes and pops an item per engine input, and a heap does both
/// with a few moves of 32 bytes in reused memory (the map allocated and
/// rebalanced nodes, and moved whole items). Items wait in `slots`.
#[derive(Debug)]
pub(crate) struct Agenda<T> {
    heap: BinaryHeap<Reverse<Slot>>,
    slots: Vec<Option<T>>,
    /// Indices of empty `slots`.
    free: Vec<usize>,
    /// Insertion order, so items due at the same time keep it.
    serial: u64,
}

#[derive(Debug)]
struct Slot {
    /// Nanoseconds since the start in the high 64 bits, the serial in the low
    /// ones: one integer comparison orders by time, then by insertion.
    key: u128,
    index: usize,
}

// Ordered by key only; serials are unique, so this is total.
impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Slot {}
impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Slot {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// `at` in nanoseconds, saturated at 584 years (which no simulation reaches).
fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

impl<T> Agenda<T> {
    pub(crate) fn new() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            serial: 0,
        }
    }

    /// Adds `item`, due at `at`.
    pub(crate) fn push(&mut self, at: Duration, item: T) {
        self.serial += 1;
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some(item);
                index
            }
            None => {
                self.slots.push(Some(item));
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse(Slot {
            key: (u128::from(nanos(at)) << 64) | u128::from(self.serial),
            index,
        }));
    }

    /// When the next item is due.
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse(slot)| Duration::from_nanos((slot.key >> 64) as u64))
    }

    /// The next item, if it is due by `now`.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<T> {
        let Reverse(next) = self.heap.peek()?;
        if (next.key >> 64) as u64 > nanos(now) {
            return None;
        }
        let Reverse(slot) = self.heap.pop()?;
        self.free.push(slot.index);
        self.slots[slot.index].take()
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_by_time_then_in_insertion_order() {
        let mut agenda = Agenda::new();
        let ms = Duration::from_millis;
        agenda.push(ms(5), "late");
        agenda.push(ms(1), "first at 1");
        agenda.push(ms(1), "second at 1");
        agenda.push(ms(3), "middle");
        assert_eq!(agenda.next_at(), Some(ms(1)));
        assert_eq!(agenda.pop_due(ms(0)), None, "nothing is due yet");
        let mut out = Vec::new();
        while let Some(item) = agenda.pop_due(ms(10)) {
            out.push(item);
        }
        assert_eq!(out, ["first at 1", "second at 1", "middle", "late"]);
        assert_eq!(agenda.len(), 0);
    }
}
