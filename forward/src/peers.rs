//! The remote peers of an inbound forward (`--remote … --to …`), sans I/O.
//!
//! Each peer that sends to the leased host port gets a local UDP socket of its
//! own, so that the application's replies, which arrive on that socket, can be
//! sent back to the right peer. [`PeerTable`] decides when such a socket goes:
//! after `--peer-idle` without traffic either way, or as the least recently
//! active peer once more than `--max-peers` are alive. It reads no clock: the
//! caller passes every `Instant` in and applies what comes out
//! ([`PeerTable::poll_reclaimed`], [`PeerTable::poll_timeout`]), in the manner
//! of quinn-proto's `handle_timeout`/`poll_timeout`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Default of `--peer-idle`: a peer's socket is reclaimed after this long without traffic.
pub const DEFAULT_PEER_IDLE: Duration = Duration::from_secs(60);

/// Default of `--max-peers`: most peers (each with a local socket) alive at once.
pub const DEFAULT_MAX_PEERS: usize = 1024;

/// How long peers live and how many there may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Time without traffic after which a peer is reclaimed.
    pub idle: Duration,
    /// Most peers alive at once; beyond it the least recently active goes.
    pub max_peers: usize,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            idle: DEFAULT_PEER_IDLE,
            max_peers: DEFAULT_MAX_PEERS,
        }
    }
}

/// Limits a [`PeerTable`] cannot work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerLimitsError {
    /// A peer would be reclaimed as soon as it arrived.
    #[error("--peer-idle must be more than 0 seconds")]
    ZeroIdle,
    /// No peer could ever be relayed.
    #[error("--max-peers must be at least 1")]
    NoPeers,
}

impl PeerLimits {
    /// Checks that the limits let at least one peer live for some time.
    pub fn validate(&self) -> Result<(), PeerLimitsError> {
        if self.idle.is_zero() {
            return Err(PeerLimitsError::ZeroIdle);
        }
        if self.max_peers == 0 {
            return Err(PeerLimitsError::NoPeers);
        }
        Ok(())
    }
}

/// Why a peer was reclaimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reclaim {
    /// No traffic either way for the idle time.
    Idle,
    /// A new peer came while `max_peers` were alive; this one was the least recently active.
    Capacity,
}

/// A peer the table let go, with the value (its socket) the caller now closes.
#[derive(Debug, PartialEq, Eq)]
pub struct Reclaimed<S> {
    /// The remote address of the peer.
    pub peer: SocketAddr,
    /// What the caller stored for it.
    pub value: S,
    /// Why it went.
    pub reason: Reclaim,
}

/// A peer's value and the key of its deadline in [`PeerTable::deadlines`].
#[derive(Debug)]
struct Entry<S> {
    value: S,
    deadline: DeadlineKey,
}

/// An idle deadline, made unique by an insertion stamp so that peers whose
/// deadlines coincide (same `now`) keep separate keys, oldest activity first.
type DeadlineKey = (Instant, u64);

/// The peers alive, keyed by remote address, with their idle deadlines.
///
/// Every deadline is the peer's last activity plus the same idle time, so the
/// earliest deadline is also the least recently active peer: one ordered map
/// serves both the idle timer and the eviction at capacity.
#[derive(Debug)]
pub struct PeerTable<S> {
    limits: PeerLimits,
    peers: HashMap<SocketAddr, Entry<S>>,
    deadlines: BTreeMap<DeadlineKey, SocketAddr>,
    next_stamp: u64,
    reclaimed: VecDeque<Reclaimed<S>>,
}

impl<S> PeerTable<S> {
    /// An empty table.
    pub fn new(limits: PeerLimits) -> Result<Self, PeerLimitsError> {
        limits.validate()?;
        Ok(PeerTable {
            limits,
            peers: HashMap::new(),
            deadlines: BTreeMap::new(),
            next_stamp: 0,
            reclaimed: VecDeque::new(),
        })
    }

    /// The limits it applies.
    pub fn limits(&self) -> PeerLimits {
        self.limits
    }

    /// Peers alive.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is alive.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Traffic to or from `peer` at `now`: its idle deadline moves on, and its
    /// value is returned. `None` when the peer is not in the table (new, or
    /// already reclaimed): the caller then [`insert`](Self::insert)s it.
    pub fn touch(&mut self, peer: SocketAddr, now: Instant) -> Option<&S> {
        let deadline = self.next_deadline(now);
        let entry = self.peers.get_mut(&peer)?;
        // Tasks read the clock before they lock the table: never move a
        // deadline back because an older `now` arrived late. At the same
        // instant, the new stamp makes this peer the most recently active.
        if deadline.0 >= entry.deadline.0 {
            self.deadlines.remove(&entry.deadline);
            self.deadlines.insert(deadline, peer);
            entry.deadline = deadline;
        }
        Some(&entry.value)
    }

    /// Adds `peer` with `value` at `now`. If more than `max_peers` are then
    /// alive, the least recently active one is reclaimed
    /// ([`Reclaim::Capacity`]). A peer already present is replaced, its old
    /// value reclaimed as at capacity.
    pub fn insert(&mut self, peer: SocketAddr, value: S, now: Instant) {
        let deadline = self.next_deadline(now);
        if let Some(old) = self.peers.insert(peer, Entry { value, deadline }) {
            self.deadlines.remove(&old.deadline);
            self.reclaimed.push_back(Reclaimed {
                peer,
                value: old.value,
                reason: Reclaim::Capacity,
            });
        }
        self.deadlines.insert(deadline, peer);
        while self.peers.len() > self.limits.max_peers {
            let Some((_, oldest)) = self.deadlines.pop_first() else {
                break;
            };
            self.remove(oldest, Reclaim::Capacity);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has something to
    /// do: the earliest idle deadline, `None` while no peer is alive.
    ///
    /// A peer added later gets a deadline at least as late as every existing
    /// one, so a caller sleeping until this instant (or for the idle time while
    /// the table is empty) never oversleeps a deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first_key_value().map(|((at, _), _)| *at)
    }

    /// Reclaims every peer whose idle deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let peer = entry.remove();
            self.remove(peer, Reclaim::Idle);
        }
    }

    /// The next peer reclaimed by [`insert`](Self::insert) or
    /// [`handle_timeout`](Self::handle_timeout), oldest first; the caller
    /// closes its socket.
    #[must_use]
    pub fn poll_reclaimed(&mut self) -> Option<Reclaimed<S>> {
        self.reclaimed.pop_front()
    }

    /// Removes every peer (at shutdown), in no particular order, without
    /// counting them as reclaimed.
    pub fn drain(&mut self) -> impl Iterator<Item = (SocketAddr, S)> + '_ {
        self.deadlines.clear();
        self.peers.drain().map(|(peer, entry)| (peer, entry.value))
    }

    fn next_deadline(&mut self, now: Instant) -> DeadlineKey {
        self.next_stamp += 1;
        (now + self.limits.idle, self.next_stamp)
    }

    /// Takes `peer` out of the map (its deadline is already out of
    /// `deadlines`) and queues it as reclaimed.
    fn remove(&mut self, peer: SocketAddr, reason: Reclaim) {
        if let Some(entry) = self.peers.remove(&peer) {
            self.reclaimed.push_back(Reclaimed {
                peer,
                value: entry.value,
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn table(idle_secs: u64, max_peers: usize) -> PeerTable<u16> {
        PeerTable::new(PeerLimits {
            idle: Duration::from_secs(idle_secs),
            max_peers,
        })
        .expect("valid limits")
    }

    fn reclaimed(table: &mut PeerTable<u16>) -> Vec<(u16, Reclaim)> {
        std::iter::from_fn(|| table.poll_reclaimed())
            .map(|r| {
                assert_eq!(r.peer.port(), r.value, "value stays with its peer");
                (r.value, r.reason)
            })
            .collect()
    }

    #[test]
    fn a_peer_without_traffic_is_reclaimed_at_its_idle_deadline_not_before() {
        let t0 = Instant::now();
        let mut peers = table(60, 8);
        peers.insert(addr(1), 1, t0);
        assert_eq!(peers.poll_timeout(), Some(t0 + Duration::from_secs(60)));

        peers.handle_timeout(t0 + Duration::from_secs(59));
        assert_eq!(reclaimed(&mut peers), []);
        assert_eq!(peers.touch(addr(1), t0 + Duration::from_secs(59)), Some(&1));

        peers.handle_timeout(t0 + Duration::from_secs(118));
        assert_eq!(
            reclaimed(&mut peers),
            [],
            "traffic at 59 s moved it to 119 s"
        );
        peers.handle_timeout(t0 + Duration::from_secs(119));
        assert_eq!(reclaimed(&mut peers), [(1, Reclaim::Idle)]);
        assert!(peers.is_empty());
        assert_eq!(peers.poll_timeout(), None);
        assert_eq!(peers.touch(addr(1), t0 + Duration::from_secs(120)), None);
    }

    #[test]
    fn beyond_max_peers_the_least_recently_active_goes() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut peers = table(60, 2);
        peers.insert(addr(1), 1, t0);
        peers.insert(addr(2), 2, t0 + s(1));
        // Peer 1 is active again: peer 2 is now the least recently active.
        assert!(peers.touch(addr(1), t0 + s(2)).is_some());
        peers.insert(addr(3), 3, t0 + s(3));
        assert_eq!(reclaimed(&mut peers), [(2, Reclaim::Capacity)]);
        assert_eq!(peers.len(), 2);
        assert!(peers.touch(addr(2), t0 + s(4)).is_none());
        assert!(peers.touch(addr(1), t0 + s(4)).is_some());
        assert!(peers.touch(addr(3), t0 + s(4)).is_some());
    }

    #[test]
    fn peers_active_at_the_same_instant_are_ordered_by_arrival() {
        let t0 = Instant::now();
        let mut peers = table(10, 2);
        for port in 1..=4 {
            peers.insert(addr(port), port, t0);
        }
        assert_eq!(
            reclaimed(&mut peers),
            [(1, Reclaim::Capacity), (2, Reclaim::Capacity)]
        );
        peers.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(
            reclaimed(&mut peers),
            [(3, Reclaim::Idle), (4, Reclaim::Idle)]
        );
    }

    #[test]
    fn a_late_older_instant_never_moves_a_deadline_back() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut peers = table(10, 8);
        peers.insert(addr(1), 1, t0 + s(5));
        assert!(peers.touch(addr(1), t0).is_some());
        assert_eq!(peers.poll_timeout(), Some(t0 + s(15)));
        peers.handle_timeout(t0 + s(14));
        assert_eq!(reclaimed(&mut peers), []);
    }

    #[test]
    fn inserting_a_present_peer_reclaims_its_old_value() {
        let t0 = Instant::now();
        let mut peers: PeerTable<u16> = table(10, 8);
        peers.insert(addr(7), 7, t0);
        peers.insert(addr(7), 7, t0 + Duration::from_secs(1));
        assert_eq!(reclaimed(&mut peers), [(7, Reclaim::Capacity)]);
        assert_eq!(peers.len(), 1);
        // Only the new deadline is left.
        assert_eq!(peers.poll_timeout(), Some(t0 + Duration::from_secs(11)));
    }

    #[test]
    fn drain_empties_the_table_without_reclaiming() {
        let t0 = Instant::now();
        let mut peers = table(10, 8);
        peers.insert(addr(1), 1, t0);
        peers.insert(addr(2), 2, t0);
        let mut drained: Vec<u16> = peers.drain().map(|(_, v)| v).collect();
        drained.sort_unstable();
        assert_eq!(drained, [1, 2]);
        assert!(peers.is_empty());
        assert_eq!(peers.poll_timeout(), None);
        assert_eq!(reclaimed(&mut peers), []);
    }

    #[test]
    fn limits_that_let_no_peer_live_are_refused() {
        let zero_idle = PeerLimits {
            idle: Duration::ZERO,
            ..PeerLimits::default()
        };
        assert_eq!(
            PeerTable::<()>::new(zero_idle).err(),
            Some(PeerLimitsError::ZeroIdle)
        );
        let no_peers = PeerLimits {
            max_peers: 0,
            ..PeerLimits::default()
        };
        assert_eq!(
            PeerTable::<()>::new(no_peers).err(),
            Some(PeerLimitsError::NoPeers)
        );
    }

    /// Operations on the table, at a time that moves on by the given milliseconds.
    #[derive(Clone, Debug)]
    enum Op {
        Touch(u16, u64),
        Insert(u16, u64),
        Timeout(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Often no time at all between operations: ties decide the order.
        let dt = || prop_oneof![Just(0u64), 1..400u64];
        prop_oneof![
            (0..6u16, dt()).prop_map(|(p, dt)| Op::Touch(p, dt)),
            (0..6u16, dt()).prop_map(|(p, dt)| Op::Insert(p, dt)),
            (0..1500u64).prop_map(Op::Timeout),
        ]
    }

    proptest::proptest! {
        /// Against a plain list of (peer, last activity): the same peers
        /// reclaimed, for the same reasons, in the same order, and the same
        /// next deadline, whatever the interleaving.
        #[test]
        fn the_table_agrees_with_a_list_of_last_activities(ops in proptest::collection::vec(op(), 1..60)) {
            let idle = Duration::from_secs(1);
            let max_peers = 3;
            let mut peers = PeerTable::new(PeerLimits { idle, max_peers }).unwrap();
            // (port, last activity, order of that activity)
            let mut model: Vec<(u16, Instant, u64)> = Vec::new();
            let mut order = 0;
            let mut now = Instant::now();
            for op in ops {
                let mut expected = Vec::new();
                match op {
                    Op::Touch(port, dt) => {
                        now += Duration::from_millis(dt);
                        order += 1;
                        let known = peers.touch(addr(port), now).copied();
                        let entry = model.iter_mut().find(|(p, ..)| *p == port);
                        proptest::prop_assert_eq!(known, entry.as_ref().map(|(p, ..)| *p));
                        if let Some(entry) = entry {
                            *entry = (port, now, order);
                        }
                    }
                    Op::Insert(port, dt) => {
                        now += Duration::from_millis(dt);
                        order += 1;
                        peers.insert(addr(port), port, now);
                        if let Some(i) = model.iter().position(|(p, ..)| *p == port) {
                            model.remove(i);
                            expected.push((port, Reclaim::Capacity));
                        }
                        model.push((port, now, order));
                        while model.len() > max_peers {
                            let oldest = (0..model.len())
                                .min_by_key(|&i| (model[i].1, model[i].2))
                                .unwrap();
                            expected.push((model.remove(oldest).0, Reclaim::Capacity));
                        }
                    }
                    Op::Timeout(dt) => {
                        now += Duration::from_millis(dt);
                        peers.handle_timeout(now);
                        model.sort_by_key(|&(_, at, order)| (at, order));
                        while model.first().is_some_and(|&(_, at, _)| at + idle <= now) {
                            expected.push((model.remove(0).0, Reclaim::Idle));
                        }
                    }
                }
                proptest::prop_assert_eq!(reclaimed(&mut peers), expected);
                proptest::prop_assert_eq!(peers.len(), model.len());
                let next = model.iter().map(|&(_, at, _)| at + idle).min();
                proptest::prop_assert_eq!(peers.poll_timeout(), next);
            }
        }
    }
}
