//! A timed queue: items come out by time, then in the order they went in.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Items due at simulated times. A binary heap of 16-byte keys, not a
/// `BTreeMap`: the simulation pushes and pops an item per engine input, and a
/// heap does both with a few moves of plain integers in reused memory (the map
/// allocated and rebalanced nodes, and moved whole items). Items wait in `slots`.
#[derive(Debug)]
pub(crate) struct Agenda<T> {
    /// Each key is the due time in nanoseconds (high 64 bits), the serial
    /// (next 40) and the item's slot (low 24): one integer comparison orders
    /// by time, then by insertion (serials are unique, so the slot bits never
    /// decide), and the key alone finds the item.
    heap: BinaryHeap<Reverse<u128>>,
    slots: Vec<Option<T>>,
    /// Indices of empty `slots`.
    free: Vec<usize>,
    /// Insertion order, so items due at the same time keep it.
    serial: u64,
}

const SLOT_BITS: u32 = 24;
const SERIAL_BITS: u32 = 64 - SLOT_BITS;

impl<T> Agenda<T> {
    pub(crate) fn new() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            serial: 0,
        }
    }

    /// Adds `item`, due at `at` (simulated nanoseconds, as every time here:
    /// plain integers compare and add in one instruction, `Duration`s do not).
    ///
    /// # Panics
    /// With 2^24 (16.7 million) items waiting at once, or after 2^40 pushes
    /// (a simulation runs thousands per seed): limits of the key's layout
    /// that no simulated run comes near.
    pub(crate) fn push(&mut self, at: u64, item: T) {
        self.serial += 1;
        assert!(
            self.serial >> SERIAL_BITS == 0,
            "more than 2^40 items scheduled in one simulation"
        );
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some(item);
                index
            }
            None => {
                assert!(
                    self.slots.len() >> SLOT_BITS == 0,
                    "more than 2^24 items scheduled at once"
                );
                self.slots.push(Some(item));
                self.slots.len() - 1
            }
        };
        let low = (self.serial << SLOT_BITS) | index as u64;
        self.heap
            .push(Reverse((u128::from(at) << 64) | u128::from(low)));
    }

    /// When the next item is due.
    pub(crate) fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(key)| (key >> 64) as u64)
    }

    /// The next item, if it is due by `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<T> {
        let Reverse(next) = self.heap.peek()?;
        if (next >> 64) as u64 > now {
            return None;
        }
        let Reverse(key) = self.heap.pop()?;
        // The low 24 bits are the slot (fits a usize: below 2^24).
        let index = (key as u64 & ((1 << SLOT_BITS) - 1)) as usize;
        self.free.push(index);
        self.slots[index].take()
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
        let ms = |n: u64| n * 1_000_000;
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

    #[test]
    fn many_items_come_out_sorted_whatever_order_they_went_in() {
        let mut agenda = Agenda::new();
        // Times in a scrambled order (powers of 7 modulo 1,009), those
        // divisible by 5 pushed twice.
        let mut times = Vec::new();
        let mut t: u64 = 1;
        for _ in 0..1000 {
            t = t * 7 % 1009;
            times.push(t);
            agenda.push(t, t);
            if t % 5 == 0 {
                times.push(t);
                agenda.push(t, t);
            }
        }
        times.sort_unstable();
        let mut out = Vec::new();
        while let Some(item) = agenda.pop_due(u64::MAX) {
            out.push(item);
        }
        assert_eq!(out, times);
        assert_eq!(agenda.len(), 0);
    }

    #[test]
    fn a_reused_slot_does_not_change_the_order() {
        let mut agenda = Agenda::new();
        let ms = |n: u64| n * 1_000_000;
        agenda.push(ms(1), "a");
        agenda.push(ms(2), "b");
        assert_eq!(agenda.pop_due(ms(1)), Some("a"));
        // Takes "a"'s slot (index 0), below "b"'s, yet comes after "b".
        agenda.push(ms(2), "c");
        assert_eq!(agenda.pop_due(ms(2)), Some("b"));
        assert_eq!(agenda.pop_due(ms(2)), Some("c"));
        assert_eq!(agenda.pop_due(ms(2)), None);
    }
}
