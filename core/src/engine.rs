//! The engine: one struct that owns every binding, lease and subscriber.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;
use slab::Slab;

use crate::action::{Action, CloseReason, IssuedTicket, Reply};
use crate::binding::{Binding, BindingCounters, BindingInfo, NewBinding, Reads};
use crate::command::{BindParams, Command, SubscribeParams};
use crate::config::{Config, ConfigError};
use crate::deadline::Deadlines;
use crate::error::{
    BindError, BindingError, OpenError, ReceiveError, SendError, SubscribeError, TicketError,
    TransmitError, UnsubscribeError,
};
use crate::id::{BindingId, IdMap, RequestId, SubscriberId};
use crate::input::Input;
use crate::lease::Lease;
use crate::policy;
use crate::ring::Entry;
use crate::subscriber::Subscriber;
use crate::ticket::Ticket;
use crate::wallclock::WallClock;

/// Engine-wide counters. `received == delivered + dropped_overflow +
/// dropped_memory + dropped_closed + pending` always holds; datagrams reported for a binding that
/// is no longer live are counted in `dropped_unbound`. Datagrams the kernel
/// dropped (`dropped_kernel`) were never received and are outside that sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sockets reported opened.
    pub bindings_opened: u64,
    /// Bindings closed, for any reason.
    pub bindings_closed: u64,
    /// Bindings closed because their lease ran out.
    pub bindings_expired: u64,
    /// Bindings closed by an unbind.
    pub bindings_unbound: u64,
    /// Bindings closed by shutdown (with sockets that opened after it began).
    pub bindings_shut_down: u64,
    /// Leases renewed by a heartbeat.
    pub leases_renewed: u64,
    /// Sockets the runtime failed to open.
    pub open_failures: u64,
    /// Datagrams received on live bindings.
    pub received: u64,
    /// Payload bytes of those.
    pub received_bytes: u64,
    /// Of those, delivered to at least one subscriber.
    pub delivered: u64,
    /// Of those, pushed out of a replay ring before any subscriber got them.
    pub dropped_overflow: u64,
    /// Of those, dropped on arrival because all bindings together held
    /// [`Config::max_buffered_bytes`].
    pub dropped_memory: u64,
    /// Of those, still in the ring, undelivered, when their binding closed.
    pub dropped_closed: u64,
    /// Of those, waiting in a live binding's ring for a subscriber.
    pub pending: u64,
    /// Datagrams reported for a binding that was no longer live (they raced its close).
    pub dropped_unbound: u64,
    /// Datagrams the kernel dropped before a live binding's socket delivered
    /// them (never received, so outside the sum above).
    pub dropped_kernel: u64,
    /// Datagrams individual subscribers missed (reported to them as `lagged`).
    pub missed: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Payload bytes of those.
    pub sent_bytes: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// ICMP errors the kernel surfaced, on send or receive.
    pub icmp_errors: u64,
    /// Other receive errors the runtime reported.
    pub recv_errors: u64,
    /// I/O outcomes that matched nothing the engine asked for (a runtime bug).
    pub unexpected_outcomes: u64,
}

impl Counters {
    /// Every counter of datagrams that were received and will never be
    /// delivered, by the reason's name (`overflow`, `memory`, `closed`,
    /// `unbound`): what a metrics exporter labels them with.
    pub fn dropped_by_reason(&self) -> [(&'static str, u64); 4] {
        [
            ("overflow", self.dropped_overflow),
            ("memory", self.dropped_memory),
            ("closed", self.dropped_closed),
            ("unbound", self.dropped_unbound),
        ]
    }

    fn add_binding(&mut self, c: &BindingCounters) {
        self.received += c.received;
        self.received_bytes += c.received_bytes;
        self.sent_bytes += c.sent_bytes;
        self.icmp_errors += c.icmp_errors;
        self.recv_errors += c.recv_errors;
        self.delivered += c.delivered;
        self.dropped_overflow += c.dropped_overflow;
        self.dropped_memory += c.dropped_memory;
        self.pending += c.pending;
        // Counts the runtime reports: saturate rather than overflow on a bogus one.
        self.dropped_kernel = self.dropped_kernel.saturating_add(c.dropped_kernel);
        self.missed = self.missed.saturating_add(c.missed);
        self.sent += c.sent;
        self.send_errors += c.send_errors;
    }
}

/// Capacity the action queue, id map and slab keep after a burst has drained.
const RETAINED_CAPACITY: usize = 4096;

/// A socket asked for but not reported yet.
#[derive(Debug)]
struct Opening {
    request: RequestId,
    params: BindParams,
    allow_remote: bool,
    lease: Lease,
    /// The bind was answered (shutdown); close the socket if it opens.
    cancelled: bool,
}

/// A command waiting for an I/O outcome.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Bind,
    Transmit(BindingId),
}

/// What a timer entry is for. Ordered, so timers due at the same instant fire
/// in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Lease(usize),
    Idle(SubscriberId),
    /// A binding's reads have been paused for [`Config::max_read_pause`].
    ReadPause(usize),
}

/// The I/O-free Porthole engine.
///
/// Feed it inputs ([`handle_input`](Self::handle_input), each with its `now`), carry out every action
/// [`poll_action`](Self::poll_action) hands out, in order, and sleep until
/// [`poll_timeout`](Self::poll_timeout) or a readable socket. See the crate
/// documentation for a full run loop.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    rng: ChaCha12Rng,
    wall: WallClock,
    now: Instant,
    bindings: Slab<Binding>,
    by_id: IdMap<BindingId, usize>,
    /// Ordered by id so shutdown answers them in a fixed order.
    opening: BTreeMap<BindingId, Opening>,
    subscribers: IdMap<SubscriberId, Subscriber>,
    pending: IdMap<RequestId, Pending>,
    timers: Deadlines<Timer>,
    actions: VecDeque<Action>,
    next_subscriber: u64,
    next_serial: u64,
    /// Engine-wide counters, plus the per-binding counters of closed bindings
    /// (live bindings are added in [`counters`](Self::counters)).
    counters: Counters,
    /// Payload bytes held by every binding: replay rings plus deliveries in
    /// flight. Bounded by [`Config::max_buffered_bytes`].
    buffered: usize,
    shut_down: bool,
}

impl Engine {
    /// An engine with `config`, ids drawn from a generator seeded with `seed`
    /// (use OS randomness in production, a fixed seed in tests), and wall-clock
    /// timestamps derived from `wall`. Time starts at `wall.instant()`.
    pub fn new(config: Config, seed: [u8; 32], wall: WallClock) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Engine {
            config,
            rng: ChaCha12Rng::from_seed(seed),
            wall,
            now: wall.instant(),
            bindings: Slab::new(),
            by_id: IdMap::default(),
            opening: BTreeMap::new(),
            subscribers: IdMap::default(),
            pending: IdMap::default(),
            timers: Deadlines::new(),
            actions: VecDeque::new(),
            next_subscriber: 1,
            next_serial: 0,
            counters: Counters::default(),
            buffered: 0,
            shut_down: false,
        })
    }

    // ----- outputs -------------------------------------------------------------

    /// The next action for the runtime, in the order decided. Actions queue up:
    /// draining after every input or after a batch of inputs yields the same
    /// actions in the same order; carry out every one of them, in that order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > RETAINED_CAPACITY {
            // A burst (mass expiry, shutdown) grew the queue; don't keep it forever.
            self.actions.shrink_to(RETAINED_CAPACITY);
        }
        action
    }

    /// When the engine next needs [`handle_timeout`](Self::handle_timeout): the
    /// earliest lease, idle or read-pause deadline. It may be earlier than the true deadline
    /// when traffic renewed a lease; calling `handle_timeout` then is harmless.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- inputs --------------------------------------------------------------

    /// Feeds one input at `now`: the way every input goes in. Its actions come
    /// out of [`poll_action`](Self::poll_action), after those of earlier inputs.
    ///
    /// `now` is clamped to never go back. Every input fires the timers due by
    /// `now` first, so no input sees a lease whose deadline has passed.
    ///
    /// The `handle_*` methods are shorthands for one variant each (no
    /// [`Input`] value to build): `engine.handle_credit(s, 1, now)` is
    /// `engine.handle_input(Input::Credit { subscriber: s, credit: 1 }, now)`.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        match input {
            Input::Command { request, command } => self.handle_command(request, command, now),
            Input::SocketOpened {
                binding,
                local_addr,
            } => self.handle_socket_opened(binding, local_addr, now),
            Input::SocketFailed { binding, error } => {
                self.handle_socket_failed(binding, error, now)
            }
            Input::Datagram {
                binding,
                src,
                payload,
            } => self.handle_datagram(binding, src, payload, now),
            Input::Transmitted { request, outcome } => {
                self.handle_transmitted(request, outcome, now)
            }
            Input::SocketError { binding, error } => self.handle_socket_error(binding, error, now),
            Input::KernelDrops { binding, count } => self.handle_kernel_drops(binding, count, now),
            Input::SubscriberGone { subscriber } => self.handle_subscriber_gone(subscriber, now),
            Input::Credit { subscriber, credit } => self.handle_credit(subscriber, credit, now),
            Input::Timeout => self.handle_timeout(now),
        }
    }

    /// [`Input::Timeout`]: time passed. Closes every binding whose deadline is `<= now` (reason
    /// `expired`) and ends idle subscribers. Every other input does this first too,
    /// so a command never sees a binding whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// [`Input::Command`]: a client's command. Its [`Reply`] comes out of `poll_action` with `request`,
    /// now or after the I/O outcome it waits for.
    pub fn handle_command(&mut self, request: RequestId, command: Command, now: Instant) {
        let now = self.advance(now);
        match command {
            Command::Bind(params) => self.bind(request, params),
            Command::Unbind { binding } => {
                let reply = match self.by_id.get(&binding) {
                    Some(&key) => {
                        self.close(key, CloseReason::Unbound);
                        Ok(binding)
                    }
                    None => Err(BindingError::NotFound),
                };
                self.reply(request, Reply::Unbind(reply));
            }
            Command::Send {
                binding,
                dest,
                payload,
            } => self.send(request, binding, dest, payload, now),
            Command::Heartbeat {
                binding,
                lease_secs,
            } => {
                let reply = self.heartbeat(binding, lease_secs, now);
                self.reply(request, Reply::Heartbeat(reply));
            }
            Command::Subscribe(params) => self.subscribe(request, params, now),
            Command::Unsubscribe { subscriber } => {
                let reply = match self.remove_subscriber(subscriber) {
                    Some(s) => {
                        self.actions.push_back(Action::EndStream {
                            subscriber,
                            reason: CloseReason::Unsubscribed,
                        });
                        self.update_reads(s.binding);
                        Ok(subscriber)
                    }
                    None => Err(UnsubscribeError::NotFound(subscriber)),
                };
                self.reply(request, Reply::Unsubscribe(reply));
            }
            Command::IssueTicket { binding } => {
                let reply = self.issue_ticket(binding, now);
                self.reply(request, Reply::Ticket(reply));
            }
            Command::Status => {
                let all = self.bindings();
                self.reply(request, Reply::Status(all));
            }
            Command::Shutdown => {
                self.shutdown();
                self.reply(request, Reply::Shutdown);
            }
        }
    }

    /// [`Input::SocketOpened`]: the runtime opened the socket asked for by [`Action::OpenSocket`]; the
    /// lease starts now.
    pub fn handle_socket_opened(
        &mut self,
        binding: BindingId,
        local_addr: SocketAddr,
        now: Instant,
    ) {
        let now = self.advance(now);
        let Some(opening) = self.opening.remove(&binding) else {
            self.counters.unexpected_outcomes += 1;
            return;
        };
        self.pending.remove(&opening.request);
        self.counters.bindings_opened += 1;
        if opening.cancelled {
            self.actions.push_back(Action::CloseSocket { binding });
            self.counters.bindings_closed += 1;
            self.counters.bindings_shut_down += 1;
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let new = NewBinding {
            id: binding,
            serial,
            local_addr,
            lease: opening.lease,
            allow_remote: opening.allow_remote,
            renew_on_traffic: opening.params.renew_on_traffic,
        };
        let b = Binding::new(new, self.config.ring_datagrams, now, self.wall.at(now));
        let deadline = b.deadline;
        let key = self.bindings.insert(b);
        self.by_id.insert(binding, key);
        self.timers.insert(deadline, Timer::Lease(key));
        let info = Box::new(self.info(&self.bindings[key]));
        self.reply(opening.request, Reply::Bind(Ok(info)));
    }

    /// [`Input::SocketFailed`]: the runtime could not open the socket asked for by
    /// [`Action::OpenSocket`].
    pub fn handle_socket_failed(&mut self, binding: BindingId, error: OpenError, now: Instant) {
        self.advance(now);
        let Some(opening) = self.opening.remove(&binding) else {
            self.counters.unexpected_outcomes += 1;
            return;
        };
        self.pending.remove(&opening.request);
        self.counters.open_failures += 1;
        if opening.cancelled {
            return;
        }
        let addr = opening.params.addr;
        let error = match error {
            OpenError::AddrInUse => BindError::AddrInUse(addr),
            OpenError::PermissionDenied => BindError::PermissionDenied(addr),
            OpenError::OutOfDescriptors => BindError::OutOfDescriptors,
            OpenError::AddrNotAvailable => BindError::AddrNotAvailable(addr),
            OpenError::Other(kind) => BindError::Io { addr, kind },
        };
        self.reply(opening.request, Reply::Bind(Err(error)));
    }

    /// [`Input::Datagram`]: a datagram arrived on a binding's socket.
    pub fn handle_datagram(
        &mut self,
        binding: BindingId,
        src: SocketAddr,
        payload: Bytes,
        now: Instant,
    ) {
        let now = self.advance(now);
        let Some(&key) = self.by_id.get(&binding) else {
            self.counters.dropped_unbound += 1;
            return;
        };
        let b = &mut self.bindings[key];
        b.counters.received += 1;
        b.counters.received_bytes += payload.len() as u64;
        if b.renew_on_traffic {
            b.deadline = now + b.lease.as_duration();
        }
        if self.buffered + payload.len() > self.config.max_buffered_bytes {
            // Every binding together holds all the memory allowed: the newest
            // datagram goes, counted, rather than one another binding holds.
            b.counters.dropped_memory += 1;
            // It never gets a sequence number, so no stream can see a gap:
            // each is told in its next `lagged` notice, as for kernel drops.
            for i in 0..b.subscribers.len() {
                let id = b.subscribers[i];
                if let Some(s) = self.subscribers.get_mut(&id) {
                    s.missed = s.missed.saturating_add(1);
                    b.counters.missed = b.counters.missed.saturating_add(1);
                    s.pump(id, b, &self.wall, &mut self.actions, &mut self.buffered);
                }
            }
            self.update_reads(key);
            return;
        }
        b.counters.pending += 1;
        let entry = Entry {
            src,
            payload,
            received_at: now,
            delivered: false,
        };
        let held = b.ring.bytes();
        let dropped = b
            .ring
            .push(entry, self.config.ring_datagrams, self.config.ring_bytes);
        self.buffered = self.buffered - held + b.ring.bytes();
        b.counters.dropped_overflow += dropped;
        b.counters.pending -= dropped;
        for i in 0..b.subscribers.len() {
            let id = b.subscribers[i];
            if let Some(s) = self.subscribers.get_mut(&id) {
                s.last_activity = now;
                s.pump(id, b, &self.wall, &mut self.actions, &mut self.buffered);
            }
        }
        self.update_reads(key);
    }

    /// [`Input::Transmitted`]: the runtime's outcome for an [`Action::Transmit`]: bytes sent, or why not.
    pub fn handle_transmitted(
        &mut self,
        request: RequestId,
        outcome: Result<usize, TransmitError>,
        now: Instant,
    ) {
        self.advance(now);
        let binding = match self.pending.get(&request) {
            Some(Pending::Transmit(binding)) => *binding,
            _ => {
                self.counters.unexpected_outcomes += 1;
                return;
            }
        };
        self.pending.remove(&request);
        if let Some(&key) = self.by_id.get(&binding) {
            let c = &mut self.bindings[key].counters;
            match outcome {
                Ok(n) => {
                    c.sent += 1;
                    c.sent_bytes += n as u64;
                }
                Err(e) => {
                    c.send_errors += 1;
                    if e.is_icmp() {
                        c.icmp_errors += 1;
                    }
                }
            }
        } else {
            // Closed while the datagram was in flight: keep the engine totals right.
            match outcome {
                Ok(n) => {
                    self.counters.sent += 1;
                    self.counters.sent_bytes += n as u64;
                }
                Err(e) => {
                    self.counters.send_errors += 1;
                    if e.is_icmp() {
                        self.counters.icmp_errors += 1;
                    }
                }
            }
        }
        self.reply(request, Reply::Send(outcome.map_err(SendError::Transmit)));
    }

    /// [`Input::SocketError`]: a receive on the binding's socket failed. ICMP errors the kernel surfaces
    /// (connection refused, unreachable) are counted; the binding stays open.
    pub fn handle_socket_error(&mut self, binding: BindingId, error: ReceiveError, now: Instant) {
        self.advance(now);
        if let Some(&key) = self.by_id.get(&binding) {
            let c = &mut self.bindings[key].counters;
            if error.is_icmp() {
                c.icmp_errors += 1;
            } else {
                c.recv_errors += 1;
            }
        }
    }

    /// [`Input::KernelDrops`]: the kernel dropped `count` datagrams addressed to the binding's socket
    /// before the socket delivered them (its receive buffer was full). The
    /// runtime learns this from the socket (`SO_RXQ_OVFL` on Linux reports a
    /// cumulative count with each datagram; feed the increase), and reports it
    /// before the datagram that carried it. Counted in
    /// [`BindingCounters::dropped_kernel`], and every subscriber's next
    /// `lagged` notice includes them, so a client learns of every datagram it
    /// did not get. Ignored for a binding that is no longer live.
    pub fn handle_kernel_drops(&mut self, binding: BindingId, count: u64, now: Instant) {
        let now = self.advance(now);
        if count == 0 {
            return;
        }
        let Some(&key) = self.by_id.get(&binding) else {
            return;
        };
        let b = &mut self.bindings[key];
        // A count from the runtime: saturate rather than overflow on a bogus one.
        b.counters.dropped_kernel = b.counters.dropped_kernel.saturating_add(count);
        for i in 0..b.subscribers.len() {
            let id = b.subscribers[i];
            if let Some(s) = self.subscribers.get_mut(&id) {
                s.missed = s.missed.saturating_add(count);
                b.counters.missed = b.counters.missed.saturating_add(count);
                s.last_activity = now;
                s.pump(id, b, &self.wall, &mut self.actions, &mut self.buffered);
            }
        }
        self.update_reads(key);
    }

    /// [`Input::SubscriberGone`]: the subscriber's stream is gone (the client disconnected). Nothing more is
    /// emitted for it: no `Deliver`, no `EndStream`, not even for a lease that
    /// ran out before `now` and closes in this same call.
    pub fn handle_subscriber_gone(&mut self, subscriber: SubscriberId, now: Instant) {
        // Forgotten before the due timers fire: an overdue lease or idle timer
        // would otherwise end the stream the runtime has just reported gone.
        let removed = self.remove_subscriber(subscriber);
        self.advance(now);
        if let Some(s) = removed {
            self.update_reads(s.binding);
        }
    }

    /// [`Input::Credit`]: the runtime wrote `credit` of the subscriber's events; it may be sent that
    /// many more. Credit beyond the configured window is ignored.
    pub fn handle_credit(&mut self, subscriber: SubscriberId, credit: u32, now: Instant) {
        self.advance(now);
        let window = self.config.delivery_window;
        if let Some(s) = self.subscribers.get_mut(&subscriber) {
            self.buffered -= s.written(credit);
            s.credit = s.credit.saturating_add(credit).min(window);
            let key = s.binding;
            s.pump(
                subscriber,
                &mut self.bindings[key],
                &self.wall,
                &mut self.actions,
                &mut self.buffered,
            );
            self.update_reads(key);
        }
    }

    // ----- getters -------------------------------------------------------------

    /// A live binding's status.
    pub fn binding(&self, id: &BindingId) -> Option<BindingInfo> {
        self.by_id
            .get(id)
            .map(|&key| self.info(&self.bindings[key]))
    }

    /// A live binding's counters: [`binding`](Self::binding) without the rest of
    /// the snapshot (no timestamps to convert), for a caller that checks them often.
    pub fn binding_counters(&self, id: &BindingId) -> Option<BindingCounters> {
        self.by_id.get(id).map(|&key| self.bindings[key].counters)
    }

    /// Whether the engine has paused reads of the binding's socket: between
    /// an [`Action::PauseReads`] and its [`Action::ResumeReads`]. `false` for
    /// an unknown binding. The actions are the contract; this is for a runtime
    /// that would rather ask than keep its own set (say, to decide whether a
    /// datagram already read goes in now or waits for the resume).
    pub fn is_reading_paused(&self, id: &BindingId) -> bool {
        self.by_id
            .get(id)
            .is_some_and(|&key| matches!(self.bindings[key].reads, Reads::Paused { .. }))
    }

    /// Every live binding, oldest first.
    pub fn bindings(&self) -> Vec<BindingInfo> {
        let mut all: Vec<&Binding> = self.bindings.iter().map(|(_, b)| b).collect();
        all.sort_unstable_by_key(|b| b.serial);
        all.into_iter().map(|b| self.info(b)).collect()
    }

    /// Number of live bindings.
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// Number of sockets asked for and not reported opened or failed yet.
    pub fn opening_count(&self) -> usize {
        self.opening.len()
    }

    /// Number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Payload bytes all bindings hold now (replay rings plus deliveries in
    /// flight), which [`Config::max_buffered_bytes`] bounds.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Engine-wide counters (sums over live and closed bindings).
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        for (_, b) in &self.bindings {
            c.add_binding(&b.counters);
        }
        c
    }

    /// The engine's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The latest `now` seen (inputs are clamped to never go back).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The wall-clock time at `at`, from the anchor.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        self.wall.at(at)
    }

    /// Whether a shutdown was commanded.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    // ----- internals -----------------------------------------------------------

    /// Clamps `now` to be monotonic and fires every timer due by then.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = now.max(self.now);
        self.now = now;
        // An entry whose true deadline moved later is re-filed at that deadline
        // rather than fired: timers that are all past `now` (a late wake) still
        // fire in time order, so a stream idle before its lease ran out ends `idle`.
        while let Some((at, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Lease(key) => {
                    let Some(b) = self.bindings.get_mut(key) else {
                        continue;
                    };
                    if b.deadline <= at {
                        self.close(key, CloseReason::Expired);
                    } else {
                        // Traffic moved the deadline; catch the entry up.
                        b.scheduled = b.deadline;
                        self.timers.insert(b.deadline, Timer::Lease(key));
                    }
                }
                Timer::Idle(id) => {
                    let Some(s) = self.subscribers.get_mut(&id) else {
                        continue;
                    };
                    let Some(idle) = s.idle_timeout else {
                        s.idle_scheduled = None;
                        continue;
                    };
                    let Some(due) = s.last_activity.checked_add(idle) else {
                        s.idle_scheduled = None;
                        continue;
                    };
                    if due <= at {
                        s.idle_scheduled = None;
                        let removed = self.remove_subscriber(id);
                        self.actions.push_back(Action::EndStream {
                            subscriber: id,
                            reason: CloseReason::Idle,
                        });
                        if let Some(s) = removed {
                            self.update_reads(s.binding);
                        }
                    } else {
                        s.idle_scheduled = Some(due);
                        self.timers.insert(due, Timer::Idle(id));
                    }
                }
                Timer::ReadPause(key) => {
                    // The entry is removed whenever a pause ends otherwise.
                    if let Some(b) = self.bindings.get_mut(key) {
                        b.reads = Reads::Overrun;
                        self.actions
                            .push_back(Action::ResumeReads { binding: b.id });
                    }
                }
            }
        }
        now
    }

    /// Pauses or resumes the binding's reads after anything that may have
    /// changed its subscribers, their credit or its pending datagrams: paused
    /// while it has subscribers, all of them out of credit, and datagrams none
    /// of them got (more read now could only wait in the ring and push those
    /// out); resumed once one of them can take more, or by the pause's
    /// deadline. After a pause ran to its limit, no new one until the
    /// subscribers have caught up: a stream that cannot keep up at all is
    /// told of its losses as lag rather than hold the socket for ever.
    fn update_reads(&mut self, key: usize) {
        let Some(b) = self.bindings.get_mut(key) else {
            return;
        };
        let subscribers = &self.subscribers;
        let backlogged = b.counters.pending > 0
            && !b.subscribers.is_empty()
            && b.subscribers
                .iter()
                .all(|id| subscribers.get(id).is_none_or(|s| s.credit == 0));
        match (b.reads, backlogged) {
            (Reads::On, true) if !self.config.max_read_pause.is_zero() => {
                let until = self.now + self.config.max_read_pause;
                b.reads = Reads::Paused { until };
                self.timers.insert(until, Timer::ReadPause(key));
                self.actions.push_back(Action::PauseReads { binding: b.id });
            }
            (Reads::Paused { until }, false) => {
                self.timers.remove(until, Timer::ReadPause(key));
                b.reads = Reads::On;
                self.actions
                    .push_back(Action::ResumeReads { binding: b.id });
            }
            (Reads::Overrun, false) => b.reads = Reads::On,
            _ => {}
        }
    }

    fn reply(&mut self, request: RequestId, reply: Reply) {
        self.actions.push_back(Action::Reply { request, reply });
    }

    fn bind(&mut self, request: RequestId, params: BindParams) {
        let result = self.start_bind(request, params);
        if let Err(e) = result {
            self.reply(request, Reply::Bind(Err(e)));
        }
    }

    fn start_bind(&mut self, request: RequestId, params: BindParams) -> Result<(), BindError> {
        if self.shut_down {
            return Err(BindError::ShuttingDown);
        }
        if self.pending.contains_key(&request) {
            return Err(BindError::DuplicateRequest);
        }
        let allow_remote = policy::check_bind(&self.config, params.addr, params.allow_remote)?;
        if self.bindings.len() + self.opening.len() >= self.config.max_bindings {
            return Err(BindError::TooManyBindings {
                max: self.config.max_bindings,
            });
        }
        let lease = Lease::requested(
            params.lease_secs,
            self.config.default_lease,
            self.config.max_lease,
        );
        let id = loop {
            // 122 random bits: a collision is astronomically unlikely, but cheap to rule out.
            let id = BindingId::generate(&mut self.rng);
            if !self.by_id.contains_key(&id) && !self.opening.contains_key(&id) {
                break id;
            }
        };
        let addr = params.addr;
        self.opening.insert(
            id,
            Opening {
                request,
                params,
                allow_remote,
                lease,
                cancelled: false,
            },
        );
        self.pending.insert(request, Pending::Bind);
        self.actions
            .push_back(Action::OpenSocket { binding: id, addr });
        Ok(())
    }

    fn send(
        &mut self,
        request: RequestId,
        binding: BindingId,
        dest: SocketAddr,
        payload: Bytes,
        now: Instant,
    ) {
        let Some(&key) = self.by_id.get(&binding) else {
            return self.reply(request, Reply::Send(Err(SendError::NotFound)));
        };
        if self.pending.contains_key(&request) {
            return self.reply(request, Reply::Send(Err(SendError::DuplicateRequest)));
        }
        let b = &mut self.bindings[key];
        if let Err(e) = policy::check_send(
            &self.config,
            b.allow_remote,
            b.local_addr,
            dest,
            payload.len(),
        ) {
            return self.reply(request, Reply::Send(Err(e)));
        }
        if b.renew_on_traffic {
            b.deadline = now + b.lease.as_duration();
        }
        self.pending.insert(request, Pending::Transmit(binding));
        self.actions.push_back(Action::Transmit {
            request,
            binding,
            dest,
            payload,
        });
    }

    fn heartbeat(
        &mut self,
        binding: BindingId,
        lease_secs: Option<u64>,
        now: Instant,
    ) -> Result<Box<BindingInfo>, BindingError> {
        let &key = self.by_id.get(&binding).ok_or(BindingError::NotFound)?;
        let b = &mut self.bindings[key];
        if lease_secs.is_some() {
            b.lease =
                Lease::requested(lease_secs, self.config.default_lease, self.config.max_lease);
        }
        b.last_heartbeat = self.wall.at(now);
        b.deadline = now + b.lease.as_duration();
        self.counters.leases_renewed += 1;
        if b.deadline != b.scheduled {
            self.timers.remove(b.scheduled, Timer::Lease(key));
            self.timers.insert(b.deadline, Timer::Lease(key));
            b.scheduled = b.deadline;
        }
        Ok(Box::new(self.info(&self.bindings[key])))
    }

    fn subscribe(&mut self, request: RequestId, params: SubscribeParams, now: Instant) {
        let Some(&key) = self.by_id.get(&params.binding) else {
            return self.reply(request, Reply::Subscribe(Err(SubscribeError::NotFound)));
        };
        let max = self.config.max_subscribers_per_binding;
        let b = &mut self.bindings[key];
        if b.subscribers.len() >= max {
            return self.reply(
                request,
                Reply::Subscribe(Err(SubscribeError::TooManySubscribers { max })),
            );
        }
        if let Some(ticket) = &params.ticket {
            if !b.tickets.redeem(ticket, now) {
                return self.reply(
                    request,
                    Reply::Subscribe(Err(SubscribeError::InvalidTicket)),
                );
            }
        }
        let id = SubscriberId(self.next_subscriber);
        self.next_subscriber += 1;
        // The client chooses the timeout; one past the end of the clock means never.
        let idle_timeout = params
            .idle_timeout
            .filter(|d| !d.is_zero() && now.checked_add(*d).is_some());
        let cursor = Subscriber::start_cursor(b, params.resume_after);
        let mut s = Subscriber::new(key, cursor, self.config.delivery_window, idle_timeout, now);
        b.subscribers.push(id);
        if let Some(at) = s.idle_scheduled {
            self.timers.insert(at, Timer::Idle(id));
        }
        self.actions.push_back(Action::Reply {
            request,
            reply: Reply::Subscribe(Ok(id)),
        });
        s.pump(id, b, &self.wall, &mut self.actions, &mut self.buffered);
        self.subscribers.insert(id, s);
        self.update_reads(key);
    }

    fn issue_ticket(
        &mut self,
        binding: BindingId,
        now: Instant,
    ) -> Result<IssuedTicket, TicketError> {
        let &key = self.by_id.get(&binding).ok_or(TicketError::NotFound)?;
        let max = self.config.max_subscribers_per_binding;
        let lifetime = self.config.ticket_lifetime;
        let expires = now + lifetime;
        let ticket = Ticket::generate(&mut self.rng);
        if !self.bindings[key].tickets.issue(ticket, expires, max, now) {
            return Err(TicketError::TooManyTickets { max });
        }
        Ok(IssuedTicket {
            ticket,
            binding,
            expires_at: self.wall.at(expires),
            lifetime,
        })
    }

    fn remove_subscriber(&mut self, id: SubscriberId) -> Option<Subscriber> {
        let s = self.subscribers.remove(&id)?;
        self.buffered -= s.in_flight_bytes;
        if let Some(at) = s.idle_scheduled {
            self.timers.remove(at, Timer::Idle(id));
        }
        if let Some(b) = self.bindings.get_mut(s.binding) {
            b.subscribers.retain(|&other| other != id);
        }
        Some(s)
    }

    /// The one close sequence for expiry, unbind and shutdown: end each stream
    /// with the reason, close the socket, forget the binding.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(b) = self.bindings.try_remove(key) else {
            return;
        };
        self.by_id.remove(&b.id);
        if reason != CloseReason::Expired {
            // Expiry comes from `advance`, which has already popped this entry.
            self.timers.remove(b.scheduled, Timer::Lease(key));
        }
        if let Reads::Paused { until } = b.reads {
            // The socket closes: nothing to resume.
            self.timers.remove(until, Timer::ReadPause(key));
        }
        self.buffered -= b.ring.bytes();
        for &id in &b.subscribers {
            if let Some(s) = self.subscribers.remove(&id) {
                self.buffered -= s.in_flight_bytes;
                if let Some(at) = s.idle_scheduled {
                    self.timers.remove(at, Timer::Idle(id));
                }
            }
            self.actions.push_back(Action::EndStream {
                subscriber: id,
                reason,
            });
        }
        self.actions
            .push_back(Action::CloseSocket { binding: b.id });
        self.counters.add_binding(&b.counters);
        // What nobody got before the close is dropped, no longer pending.
        self.counters.pending -= b.counters.pending;
        self.counters.dropped_closed += b.counters.pending;
        self.counters.bindings_closed += 1;
        match reason {
            CloseReason::Expired => self.counters.bindings_expired += 1,
            CloseReason::Unbound => self.counters.bindings_unbound += 1,
            CloseReason::Shutdown => self.counters.bindings_shut_down += 1,
            // Streams end for these reasons, bindings never do.
            CloseReason::Unsubscribed | CloseReason::Idle => {}
        }
        self.reclaim();
    }

    /// Gives memory back after a burst of bindings has gone. The id map shrinks
    /// once it is a quarter full (amortised O(1): it has to fall by three
    /// quarters between shrinks); the slab only when empty, since its keys are
    /// in the timer set and cannot move.
    fn reclaim(&mut self) {
        let capacity = self.by_id.capacity();
        if capacity > RETAINED_CAPACITY && self.by_id.len() < capacity / 4 {
            self.by_id.shrink_to(self.by_id.len() * 2);
        }
        if self.bindings.is_empty() && self.bindings.capacity() > RETAINED_CAPACITY {
            self.bindings.shrink_to_fit();
        }
    }

    fn shutdown(&mut self) {
        self.shut_down = true;
        let mut answered = Vec::new();
        for opening in self.opening.values_mut() {
            if !opening.cancelled {
                opening.cancelled = true;
                answered.push(opening.request);
            }
        }
        for request in answered {
            self.reply(request, Reply::Bind(Err(BindError::ShuttingDown)));
        }
        let mut live: Vec<(u64, usize)> =
            self.bindings.iter().map(|(k, b)| (b.serial, k)).collect();
        live.sort_unstable();
        for (_, key) in live {
            self.close(key, CloseReason::Shutdown);
        }
    }

    fn info(&self, b: &Binding) -> BindingInfo {
        BindingInfo {
            id: b.id,
            local_addr: b.local_addr,
            created_at: b.created_at,
            last_heartbeat: b.last_heartbeat,
            lease: b.lease,
            expires_at: self.wall.at(b.deadline),
            allow_remote: b.allow_remote,
            renew_on_traffic: b.renew_on_traffic,
            subscribers: b.subscribers.len(),
            buffered_bytes: b.ring.bytes()
                + b.subscribers
                    .iter()
                    .filter_map(|id| self.subscribers.get(id))
                    .map(|s| s.in_flight_bytes)
                    .sum::<usize>(),
            counters: b.counters,
        }
    }
}
