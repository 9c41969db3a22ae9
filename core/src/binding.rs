//! A live binding: its socket's address, its lease, its replay ring and its counters.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use crate::id::{BindingId, SubscriberId};
use crate::lease::Lease;
use crate::ring::Ring;
use crate::ticket::Tickets;

/// A snapshot of a live binding, as the status API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingInfo {
    /// The binding's id.
    pub id: BindingId,
    /// The address its socket is bound to (with the port the OS chose).
    pub local_addr: SocketAddr,
    /// When it was bound.
    pub created_at: SystemTime,
    /// The last heartbeat (the bind counts as the first).
    pub last_heartbeat: SystemTime,
    /// Its lease length.
    pub lease: Lease,
    /// When it expires unless renewed.
    pub expires_at: SystemTime,
    /// Whether it may use non-loopback addresses.
    pub allow_remote: bool,
    /// Whether traffic renews its lease.
    pub renew_on_traffic: bool,
    /// Number of subscribers now.
    pub subscribers: usize,
    /// Payload bytes the binding holds now: its replay ring plus the
    /// datagrams in flight to its subscribers (each subscriber's counted, as
    /// each stream encodes its own copy). Counts toward
    /// [`crate::Config::max_buffered_bytes`].
    pub buffered_bytes: usize,
    /// Its counters.
    pub counters: BindingCounters,
}

/// Per-binding counters. For every binding,
/// `received == delivered + dropped_overflow + dropped_memory + pending` holds at all times:
/// every datagram is delivered, dropped with a named reason, or still waiting.
/// Datagrams the kernel dropped before the socket delivered them
/// ([`dropped_kernel`](Self::dropped_kernel)) were never received, so they are
/// outside that sum: what peers sent is `received + dropped_kernel`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindingCounters {
    /// Datagrams received on the socket.
    pub received: u64,
    /// Bytes received on the socket.
    pub received_bytes: u64,
    /// Received datagrams delivered to at least one subscriber.
    pub delivered: u64,
    /// Datagram events written to subscribers (a datagram counts once per subscriber).
    pub deliveries: u64,
    /// Datagrams pushed out of the replay ring before any subscriber got them.
    pub dropped_overflow: u64,
    /// Datagrams dropped on arrival because every binding together already
    /// held [`crate::Config::max_buffered_bytes`].
    pub dropped_memory: u64,
    /// Datagrams in the replay ring that no subscriber has got yet.
    pub pending: u64,
    /// Datagrams the kernel dropped before the socket delivered them (its
    /// receive buffer was full), as the kernel reports it with later
    /// datagrams (`SO_RXQ_OVFL`). Drops after the last datagram read show up
    /// with the next one.
    pub dropped_kernel: u64,
    /// Datagrams individual subscribers missed (reported to them as `lagged`),
    /// kernel drops included: each subscriber live at the time misses those.
    pub missed: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Sends the runtime reported as failed.
    pub send_errors: u64,
    /// ICMP errors the kernel surfaced (connection refused, unreachable), on send or receive.
    pub icmp_errors: u64,
    /// Other receive errors the runtime reported.
    pub recv_errors: u64,
}

/// Whether the engine wants a binding's socket read: its flow-control state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Reading.
    On,
    /// Paused ([`crate::Action::PauseReads`]) until the subscribers can take
    /// more or, at the latest, `until`.
    Paused { until: Instant },
    /// A pause ran to its limit: reading, and no new pause until the
    /// subscribers have caught up.
    Overrun,
}

/// A live binding.
#[derive(Debug)]
pub(crate) struct Binding {
    pub(crate) id: BindingId,
    /// Creation order, for listing bindings oldest first.
    pub(crate) serial: u64,
    pub(crate) local_addr: SocketAddr,
    /// Wall-clock stamps, taken when they happen: only the status shows
    /// them, and converting an `Instant` on every status costs more.
    pub(crate) created_at: SystemTime,
    pub(crate) last_heartbeat: SystemTime,
    pub(crate) lease: Lease,
    /// When the lease runs out.
    pub(crate) deadline: Instant,
    /// The deadline entry in the engine's timer set. Traffic renewal only moves
    /// `deadline` forward; the entry catches up when it fires (no O(log n) work per datagram).
    pub(crate) scheduled: Instant,
    pub(crate) allow_remote: bool,
    pub(crate) renew_on_traffic: bool,
    pub(crate) ring: Ring,
    pub(crate) subscribers: Vec<SubscriberId>,
    pub(crate) counters: BindingCounters,
    /// Unused stream tickets.
    pub(crate) tickets: Tickets,
    /// Whether its socket is to be read.
    pub(crate) reads: Reads,
}

/// What a new binding starts with.
pub(crate) struct NewBinding {
    pub(crate) id: BindingId,
    pub(crate) serial: u64,
    pub(crate) local_addr: SocketAddr,
    pub(crate) lease: Lease,
    pub(crate) allow_remote: bool,
    pub(crate) renew_on_traffic: bool,
}

impl Binding {
    /// A binding created at `now`, which is `wall_now` on the wall clock.
    pub(crate) fn new(
        new: NewBinding,
        ring_datagrams: usize,
        now: Instant,
        wall_now: SystemTime,
    ) -> Self {
        let deadline = now + new.lease.as_duration();
        Binding {
            id: new.id,
            serial: new.serial,
            local_addr: new.local_addr,
            created_at: wall_now,
            last_heartbeat: wall_now,
            lease: new.lease,
            deadline,
            scheduled: deadline,
            allow_remote: new.allow_remote,
            renew_on_traffic: new.renew_on_traffic,
            ring: Ring::with_capacity(ring_datagrams),
            subscribers: Vec::new(),
            counters: BindingCounters::default(),
            tickets: Tickets::default(),
            reads: Reads::On,
        }
    }
}
