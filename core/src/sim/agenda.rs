//! A timed queue: items come out by time, then in the order they went in.

/// Items due at simulated times: their keys in a vector sorted latest first,
/// so the next item is the last element.
///
/// The simulation pushes and pops an item per step, and holds a few dozen at
/// a time (a wake per client and peer, reads, credits and datagrams a few
/// milliseconds out). Taking the next is then `Vec::pop`, and a push shifts
/// the keys due before it: mostly the new item is due soon (a read, a
/// credit, a datagram on the wire), lands near the end and moves few keys.
/// The binary heap this replaced moved keys up and down its tree on every
/// push and pop (12 % of a simulated run); a radix heap, tried too, moved
/// each key through several buckets and was slower at this size. A push
/// costs more with thousands of items due before it.
///
/// Items wait in `slots`; the key alone finds them.
#[derive(Debug)]
pub(crate) struct Agenda<T> {
    /// Each key is an item's due time in nanoseconds and its slot, in
    /// decreasing order of time; among keys of the same time, the one pushed
    /// first is nearer the end (a push goes before every key of its time), so
    /// items due together come out in the order they went in.
    keys: Vec<Key>,
    slots: Vec<Option<T>>,
    /// Indices of empty `slots`.
    free: Vec<usize>,
}

#[derive(Clone, Copy, Debug)]
struct Key {
    at: u64,
    slot: usize,
}

impl<T> Agenda<T> {
    pub(crate) fn new() -> Self {
        Agenda {
            keys: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Adds `item`, due at `at` (simulated nanoseconds, as every time here:
    /// plain integers compare and add in one instruction, `Duration`s do not).
    pub(crate) fn push(&mut self, at: u64, item: T) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(item);
                slot
            }
            None => {
                self.slots.push(Some(item));
                self.slots.len() - 1
            }
        };
        // Shifts the keys due at or before `at` one place up, from the end:
        // most items are due soon, so few move, and the new key lands after
        // (comes out after) every key of its time.
        self.keys.push(Key { at, slot });
        let keys = self.keys.as_mut_slice();
        let mut position = keys.len() - 1;
        while position > 0 {
            let earlier = keys[position - 1];
            if earlier.at > at {
                break;
            }
            keys[position] = earlier;
            position -= 1;
        }
        keys[position] = Key { at, slot };
    }

    /// When the next item is due.
    pub(crate) fn next_at(&self) -> Option<u64> {
        self.keys.last().map(|key| key.at)
    }

    /// The next item, if it is due by `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<T> {
        let &Key { at, slot } = self.keys.last()?;
        if at > now {
            return None;
        }
        self.keys.pop();
        self.free.push(slot);
        self.slots[slot].take()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
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

    #[test]
    fn interleaved_pushes_and_pops_match_a_sorted_reference() {
        // The simulation's pattern: pop the earliest, push a few items at
        // or after its time (some at the same time, some far ahead), and
        // compare with a plain sorted list (ties by insertion order).
        let mut agenda = Agenda::new();
        let mut reference: Vec<(u64, u64)> = Vec::new();
        let mut rng = crate::sim::SimRng::new(7, 7);
        let mut next_id = 0;
        let mut now = 0;
        for round in 0..5000 {
            let pushes = if round < 50 { 3 } else { rng.below(3) };
            for _ in 0..pushes {
                let at = match rng.below(4) {
                    0 => now,
                    1 => now + rng.below(1_000),
                    2 => now + rng.below(5_000_000),
                    _ => now + rng.below(3_000_000_000),
                };
                agenda.push(at, (at, next_id));
                reference.push((at, next_id));
                next_id += 1;
            }
            reference.sort();
            let expected = reference.first().copied();
            assert_eq!(agenda.next_at(), expected.map(|(at, _)| at));
            assert_eq!(agenda.len(), reference.len());
            if let Some((at, _)) = expected {
                if at > 0 {
                    assert_eq!(agenda.pop_due(at - 1), None, "not due before its time");
                }
                assert_eq!(agenda.pop_due(at), expected);
                reference.remove(0);
                now = at;
            }
        }
        for expected in reference {
            assert_eq!(agenda.pop_due(u64::MAX), Some(expected));
        }
        assert_eq!(agenda.pop_due(u64::MAX), None);
    }
}
