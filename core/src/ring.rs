//! The bounded replay ring of a binding: its latest datagrams, by count and
//! by bytes, numbered by consecutive sequence numbers.
//!
//! One implementation serves the engine and the reference models: the
//! simulation's checker and the state-machine model test keep rings of their
//! own, fed from the inputs they observe, through this same type (re-exported
//! as `sim::Ring` and `sim::RingEntry`; see `sim::checker` for why that keeps
//! them independent checks). The eviction rule itself is pinned by the tests
//! here.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

/// A datagram held in the replay ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its sender.
    pub src: SocketAddr,
    /// Its bytes.
    pub payload: Bytes,
    /// When it was received. Kept monotonic: it becomes wall-clock time
    /// (`Datagram::received_at`) only when it is delivered, which many
    /// datagrams never are.
    pub received_at: Instant,
    /// Delivered to at least one subscriber.
    pub delivered: bool,
}

/// The bounded replay ring: the latest datagrams, by count and by bytes.
#[derive(Clone, Debug)]
pub struct Ring {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]` (or of the next datagram when empty).
    first: u64,
    bytes: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Ring::new()
    }
}

impl Ring {
    /// An empty ring; its first datagram gets sequence number 1.
    pub fn new() -> Self {
        Ring {
            entries: VecDeque::new(),
            first: 1,
            bytes: 0,
        }
    }

    /// An empty ring with room for the first datagrams of a ring of at most
    /// `max_datagrams`: up to [`Ring::INITIAL_ROOM`] of them, so a new
    /// binding's first few datagrams do not regrow it (0 -> 4 -> 8 -> 16
    /// entries) while a ring that stays small never reserves its whole bound.
    /// A full ring holds one more for a moment (in [`Ring::push`], before the
    /// oldest goes), so that one is made room for too.
    pub fn with_capacity(max_datagrams: usize) -> Self {
        let room = max_datagrams.saturating_add(1).min(Self::INITIAL_ROOM);
        Ring {
            entries: VecDeque::with_capacity(room),
            ..Ring::new()
        }
    }

    /// How many datagrams [`Ring::with_capacity`] makes room for at most.
    pub const INITIAL_ROOM: usize = 16;

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams held that no subscriber has got (the engine counts them as
    /// it goes; the reference models ask).
    #[cfg(feature = "sim")]
    pub fn undelivered(&self) -> usize {
        self.entries.iter().filter(|e| !e.delivered).count()
    }

    /// Sequence number of the oldest datagram held.
    pub fn first_seq(&self) -> u64 {
        self.first
    }

    /// Sequence number the next datagram will get.
    pub fn next_seq(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// The datagram numbered `seq`, if the ring still holds it.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let index = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.entries.get_mut(index)
    }

    /// The oldest datagram no subscriber has got, or the next sequence number.
    pub fn first_undelivered(&self) -> u64 {
        self.entries
            .iter()
            .position(|e| !e.delivered)
            .map_or(self.next_seq(), |i| self.first + i as u64)
    }

    /// Appends a datagram and evicts the oldest until the bounds hold again
    /// (always keeping the newest). Returns how many evicted ones were undelivered.
    ///
    /// This is the eviction rule, written once: the engine's rings and the
    /// reference models' all push through it.
    pub fn push(&mut self, entry: Entry, max_count: usize, max_bytes: usize) -> u64 {
        self.bytes += entry.payload.len();
        self.entries.push_back(entry);
        let mut dropped = 0;
        while self.entries.len() > 1 && (self.entries.len() > max_count || self.bytes > max_bytes) {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.payload.len();
                self.first += 1;
                if !old.delivered {
                    dropped += 1;
                }
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(len: usize) -> Entry {
        Entry {
            src: SocketAddr::from(([127, 0, 0, 1], 9)),
            payload: Bytes::from(vec![0; len]),
            received_at: Instant::now(),
            delivered: false,
        }
    }

    /// The sequence numbers held, oldest first.
    fn seqs(ring: &Ring) -> Vec<u64> {
        (ring.first_seq()..ring.next_seq()).collect()
    }

    #[test]
    fn the_count_bound_evicts_the_oldest_and_reports_undelivered_ones() {
        let mut ring = Ring::new();
        assert_eq!(ring.push(entry(1), 2, 100), 0);
        assert_eq!(ring.push(entry(1), 2, 100), 0);
        if let Some(first) = ring.get_mut(1) {
            first.delivered = true;
        }
        // Evicts seq 1, which was delivered: nothing lost.
        assert_eq!(ring.push(entry(1), 2, 100), 0);
        assert_eq!(seqs(&ring), [2, 3]);
        // Evicts seq 2, never delivered: one lost.
        assert_eq!(ring.push(entry(1), 2, 100), 1);
        assert_eq!(seqs(&ring), [3, 4]);
        assert_eq!(ring.bytes(), 2);
    }

    #[test]
    fn the_byte_bound_evicts_as_many_as_it_takes() {
        let mut ring = Ring::new();
        for _ in 0..3 {
            ring.push(entry(4), 10, 12);
        }
        assert_eq!(ring.bytes(), 12);
        // 17 bytes: two of the oldest must go to be within 12 again.
        assert_eq!(ring.push(entry(5), 10, 12), 2);
        assert_eq!(seqs(&ring), [3, 4]);
        assert_eq!(ring.bytes(), 9);
    }

    #[test]
    fn the_newest_datagram_is_kept_even_when_alone_it_is_over_the_bytes() {
        let mut ring = Ring::new();
        ring.push(entry(3), 10, 5);
        assert_eq!(ring.push(entry(50), 10, 5), 1);
        assert_eq!(seqs(&ring), [2]);
        assert_eq!(ring.bytes(), 50);
        assert_eq!(ring.push(entry(0), 10, 0), 1);
        assert_eq!(seqs(&ring), [3]);
        assert_eq!(ring.bytes(), 0);
    }

    #[test]
    fn first_undelivered_skips_delivered_datagrams() {
        let mut ring = Ring::new();
        assert_eq!(ring.first_undelivered(), 1);
        ring.push(entry(1), 10, 100);
        ring.push(entry(1), 10, 100);
        if let Some(e) = ring.get_mut(1) {
            e.delivered = true;
        }
        assert_eq!(ring.first_undelivered(), 2);
        if let Some(e) = ring.get_mut(2) {
            e.delivered = true;
        }
        assert_eq!(ring.first_undelivered(), 3);
        assert!(ring.get_mut(3).is_none());
        assert!(ring.get_mut(0).is_none());
    }
}
