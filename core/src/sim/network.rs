//! The simulated network: datagrams in flight, with loss, duplication,
//! reordering and delay drawn from a seed.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::Bytes;

use super::agenda::Agenda;
use super::clock::nanos;
use super::rng::micros;
use super::SimRng;

/// How the simulated network mistreats datagrams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Chance, in thousandths, that a datagram is lost.
    pub loss_per_mille: u32,
    /// Chance, in thousandths, that a datagram arrives twice.
    pub duplicate_per_mille: u32,
    /// Chance, in thousandths, that a datagram is held back by an extra
    /// `delay.end()`, so later ones overtake it.
    pub reorder_per_mille: u32,
    /// One-way delay of every datagram (each copy draws its own).
    pub delay: RangeInclusive<Duration>,
}

impl Default for NetworkConfig {
    /// A lossy, jittery loopback: 2 % loss, 1 % duplicates, 5 % held back, 0–5 ms delay.
    fn default() -> Self {
        NetworkConfig {
            loss_per_mille: 20,
            duplicate_per_mille: 10,
            reorder_per_mille: 50,
            delay: Duration::ZERO..=Duration::from_millis(5),
        }
    }
}

/// A datagram on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Sender.
    pub from: SocketAddr,
    /// Destination.
    pub to: SocketAddr,
    /// Bytes.
    pub payload: Bytes,
}

/// What the network did to the datagrams it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Of those, lost.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Copies held back so that later datagrams overtake them.
    pub held_back: u64,
    /// Copies that reached their destination.
    pub arrived: u64,
}

/// Datagrams in flight, ordered by arrival time.
///
/// Time is an offset from the start of the run, so the network is independent
/// of any real clock.
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    rng: SimRng,
    /// By arrival time, then by send order so ties stay deterministic.
    in_flight: Agenda<InFlight>,
    stats: NetworkStats,
    /// `config.delay` in whole microseconds (what a draw resolves).
    delay_micros: (u64, u64),
    /// `config.delay.end()` in nanoseconds: a held-back copy's extra delay.
    hold_back: u64,
}

impl Network {
    /// A network with `config`, drawing its mischief from `rng`.
    pub fn new(config: NetworkConfig, rng: SimRng) -> Self {
        Network {
            delay_micros: (micros(*config.delay.start()), micros(*config.delay.end())),
            hold_back: nanos(*config.delay.end()),
            config,
            rng,
            in_flight: Agenda::new(),
            stats: NetworkStats::default(),
        }
    }

    /// Hands a datagram to the network at `now`.
    pub fn send(&mut self, now: Duration, datagram: InFlight) {
        self.send_at(nanos(now), datagram);
    }

    /// [`Network::send`] at `now` nanoseconds.
    pub(crate) fn send_at(&mut self, now: u64, datagram: InFlight) {
        self.stats.sent += 1;
        if self.rng.chance(self.config.loss_per_mille) {
            self.stats.lost += 1;
            return;
        }
        if self.rng.chance(self.config.duplicate_per_mille) {
            self.stats.duplicated += 1;
            let at = self.arrival(now);
            self.in_flight.push(at, datagram.clone());
        }
        let at = self.arrival(now);
        self.in_flight.push(at, datagram);
    }

    /// When a copy sent at `now` arrives: a delay drawn from the config's
    /// range, plus its end for a copy held back.
    fn arrival(&mut self, now: u64) -> u64 {
        // The range in microseconds, as `SimRng::nanos` draws it, converted
        // once rather than per copy.
        let (lo, hi) = self.delay_micros;
        let mut delay = self.rng.in_range(lo..=hi).saturating_mul(1000);
        if self.rng.chance(self.config.reorder_per_mille) {
            self.stats.held_back += 1;
            delay = delay.saturating_add(self.hold_back);
        }
        now.saturating_add(delay)
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Duration> {
        self.next_arrival_nanos().map(Duration::from_nanos)
    }

    /// [`Network::next_arrival`] in nanoseconds.
    pub(crate) fn next_arrival_nanos(&self) -> Option<u64> {
        self.in_flight.next_at()
    }

    /// The next datagram that has arrived by `now`.
    pub fn pop_arrived(&mut self, now: Duration) -> Option<InFlight> {
        self.pop_arrived_by(nanos(now))
    }

    /// [`Network::pop_arrived`] by `now` nanoseconds.
    pub(crate) fn pop_arrived_by(&mut self, now: u64) -> Option<InFlight> {
        let datagram = self.in_flight.pop_due(now)?;
        self.stats.arrived += 1;
        Some(datagram)
    }

    /// Number of datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What happened so far.
    pub fn stats(&self) -> NetworkStats {
        self.stats
    }
}
