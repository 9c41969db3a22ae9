//! A subscriber: a cursor into its binding's replay ring, paced by credit.
//!
//! Replay, live delivery and lag are one mechanism: the subscriber's cursor is the
//! next sequence number it should get. While it has credit and the ring holds that
//! datagram, it gets it. If the ring has already let go of it, the subscriber
//! missed it, and its next event is a `lagged` notice with the count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::action::{Action, Datagram, Event};
use crate::binding::Binding;
use crate::id::{Seq, SubscriberId};
use crate::wallclock::WallClock;

#[derive(Debug)]
pub(crate) struct Subscriber {
    /// Slab key of the binding.
    pub(crate) binding: usize,
    /// Next sequence number to deliver.
    pub(crate) cursor: u64,
    /// Events it may still be sent before the runtime returns credit.
    pub(crate) credit: u32,
    /// Datagrams missed and not yet reported.
    pub(crate) missed: u64,
    pub(crate) idle_timeout: Option<Duration>,
    /// Last datagram arrival or delivery, for the idle timeout.
    pub(crate) last_activity: Instant,
    /// The idle entry in the engine's timer set, if any.
    pub(crate) idle_scheduled: Option<Instant>,
    /// Payload bytes of each event in flight (delivered, credit not yet
    /// returned), oldest first: credit comes back in delivery order.
    pub(crate) in_flight: VecDeque<u32>,
    /// Their sum.
    pub(crate) in_flight_bytes: usize,
}

impl Subscriber {
    /// Where a new subscriber starts: after `resume_after` if given (never past
    /// the next datagram), else at the oldest datagram nobody has got yet.
    pub(crate) fn start_cursor(binding: &Binding, resume_after: Option<Seq>) -> u64 {
        match resume_after {
            Some(Seq(after)) => after.saturating_add(1).min(binding.ring.next_seq()),
            None => binding.ring.first_undelivered(),
        }
    }

    /// A subscriber of the binding at slab key `binding`, starting at `cursor`.
    pub(crate) fn new(
        binding: usize,
        cursor: u64,
        credit: u32,
        idle_timeout: Option<Duration>,
        now: Instant,
    ) -> Self {
        Subscriber {
            binding,
            cursor,
            credit,
            missed: 0,
            idle_timeout,
            last_activity: now,
            idle_scheduled: idle_timeout.and_then(|d| now.checked_add(d)),
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
        }
    }

    /// Notes an event sent to the stream; returns its payload bytes.
    fn sent(&mut self, bytes: usize) -> usize {
        // A payload is at most 64 KiB, so it fits.
        self.in_flight
            .push_back(u32::try_from(bytes).unwrap_or(u32::MAX));
        self.in_flight_bytes += bytes;
        self.credit -= 1;
        bytes
    }

    /// `credit` events were written: takes them off the in-flight list and
    /// returns the payload bytes no longer held for this subscriber.
    pub(crate) fn written(&mut self, credit: u32) -> usize {
        let mut freed = 0;
        for _ in 0..credit {
            let Some(bytes) = self.in_flight.pop_front() else {
                break;
            };
            freed += bytes as usize;
        }
        self.in_flight_bytes -= freed;
        freed
    }

    /// Delivers what the ring holds for this subscriber, while credit lasts.
    /// Adds the payload bytes now in flight to `buffered`.
    pub(crate) fn pump(
        &mut self,
        id: SubscriberId,
        binding: &mut Binding,
        wall: &WallClock,
        out: &mut VecDeque<Action>,
        buffered: &mut usize,
    ) {
        while self.credit > 0 {
            let first = binding.ring.first_seq();
            if self.cursor < first {
                let gap = first - self.cursor;
                // Saturating: kernel-drop reports may already have taken it to the top.
                self.missed = self.missed.saturating_add(gap);
                binding.counters.missed = binding.counters.missed.saturating_add(gap);
                self.cursor = first;
            }
            if self.missed > 0 {
                out.push_back(Action::Deliver {
                    subscriber: id,
                    event: Event::Lagged {
                        missed: self.missed,
                    },
                });
                self.missed = 0;
                self.sent(0);
                continue;
            }
            let seq = self.cursor;
            let binding_id = binding.id;
            let Some(entry) = binding.ring.get_mut(seq) else {
                break; // caught up
            };
            if !entry.delivered {
                entry.delivered = true;
                binding.counters.delivered += 1;
                binding.counters.pending -= 1;
            }
            out.push_back(Action::Deliver {
                subscriber: id,
                event: Event::Datagram(Datagram {
                    binding: binding_id,
                    seq: Seq(seq),
                    src: entry.src,
                    payload: entry.payload.clone(),
                    // Dated on the wall clock only when delivered: many
                    // datagrams never are (no subscriber, or evicted first).
                    received_at: wall.at(entry.received_at),
                }),
            });
            binding.counters.deliveries += 1;
            self.cursor += 1;
            *buffered += self.sent(entry.payload.len());
        }
    }
}
