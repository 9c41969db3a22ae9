//! State-machine property test: random sequences of commands, I/O outcomes and
//! time steps run against the engine and against a small reference model; after
//! every step the engine's actions must be the ones the model predicts, its
//! getters must agree with the model, and the invariant checker must be satisfied.
#![cfg(feature = "sim")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use porthole_core::api::{ApiError, ErrorCode};
use porthole_core::sim::{Checker, Ring, RingEntry};
use porthole_core::{
    Action, BindParams, BindingId, CloseReason, Command, Config, Engine, Event, Input, Lease,
    OpenError, ReceiveError, Reply, RequestId, Seq, SubscribeParams, SubscriberId, TransmitError,
    WallClock,
};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

// Small limits, so that every limit is reached within a few dozen steps.
const MAX_BINDINGS: usize = 4;
const MAX_SUBSCRIBERS: usize = 2;
const RING_DATAGRAMS: usize = 3;
const RING_BYTES: usize = 40;
const WINDOW: u32 = 2;
const DEFAULT_LEASE: u64 = 5;
const MAX_LEASE: u64 = 8;

fn config() -> Config {
    Config {
        max_bindings: MAX_BINDINGS,
        max_subscribers_per_binding: MAX_SUBSCRIBERS,
        ring_datagrams: RING_DATAGRAMS,
        ring_bytes: RING_BYTES,
        delivery_window: WINDOW,
        default_lease: Lease::from_secs(DEFAULT_LEASE),
        max_lease: Lease::from_secs(MAX_LEASE),
        ..Config::default()
    }
}

/// The wall clock at the start of every case, so deadlines read back as offsets.
/// A receive instant for the model's ring entries, which only count lengths.
fn filler_instant() -> Instant {
    static AT: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *AT.get_or_init(Instant::now)
}

fn anchor() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

// ----- transitions -------------------------------------------------------------

/// A binding as a transition names it: one the model knows (by creation order)
/// or an id the engine never handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Binding(usize),
    Stranger,
}

/// A subscriber as a transition names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubTarget {
    Sub(usize),
    Stranger,
}

/// How the runtime's transmit went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Sent,
    Refused,
    NoBuffers,
}

#[derive(Clone, Debug)]
enum Transition {
    Bind {
        lease_secs: Option<u64>,
        renew_on_traffic: bool,
        remote: bool,
    },
    OpenOk {
        binding: usize,
    },
    OpenFail {
        binding: usize,
        in_use: bool,
    },
    Unbind(Target),
    Heartbeat {
        target: Target,
        lease_secs: Option<u64>,
    },
    Send {
        target: Target,
        len: usize,
        forbidden_dest: bool,
        /// Reuse the request id of this in-flight send (an embedding bug the
        /// engine must refuse, not confuse).
        reuse: Option<usize>,
    },
    Transmitted {
        index: usize,
        outcome: Outcome,
    },
    /// A receive error on the binding's socket.
    SocketError {
        target: Target,
        icmp: bool,
    },
    Subscribe {
        target: Target,
        resume_after: Option<u64>,
        idle_ms: Option<u64>,
    },
    Unsubscribe(SubTarget),
    Gone(SubTarget),
    Credit {
        sub: SubTarget,
        credit: u32,
    },
    Datagram {
        target: Target,
        len: usize,
    },
    /// The kernel dropped datagrams for the binding's socket.
    KernelDrops {
        target: Target,
        count: u64,
    },
    Advance {
        ms: u64,
    },
    Status,
    Shutdown,
}

// ----- the reference model -----------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BState {
    Opening { cancelled: bool },
    Live,
    Closed,
    Failed,
}

#[derive(Clone, Debug, Default)]
struct BCounters {
    received: u64,
    delivered: u64,
    dropped_overflow: u64,
    pending: u64,
    dropped_kernel: u64,
    missed: u64,
    sent: u64,
    send_errors: u64,
    icmp_errors: u64,
    recv_errors: u64,
}

#[derive(Clone, Debug)]
struct MBinding {
    request: u64,
    state: BState,
    serial: u64,
    lease_secs: u64,
    renew_on_traffic: bool,
    deadline_ms: u64,
    /// The engine's ring type (one eviction rule), fed by this model alone.
    ring: Ring,
    subs: Vec<usize>,
    counters: BCounters,
}

#[derive(Clone, Debug)]
struct MSub {
    binding: usize,
    live: bool,
    cursor: u64,
    credit: u32,
    missed: u64,
    idle_ms: Option<u64>,
    last_activity_ms: u64,
}

/// An event as the model predicts it: a datagram by sequence number and length,
/// or a lag notice.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Datagram(u64, usize),
    Lagged(u64),
}

/// A reply reduced to what the model predicts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    Bind(Result<usize, ErrorCode>),
    Unbind(Result<usize, ErrorCode>),
    Send(Result<usize, ErrorCode>),
    /// The new deadline, in ms from the start.
    Heartbeat(Result<u64, ErrorCode>),
    Subscribe(Result<usize, ErrorCode>),
    Unsubscribe(Result<usize, ErrorCode>),
    Status(Vec<usize>),
    Shutdown,
}

/// What one step makes the engine do, by model handles. Ordered per subscriber
/// (events) and per kind; the order between bindings closed at the same instant is
/// an implementation detail and not compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Effects {
    opened: Vec<usize>,
    closed: Vec<usize>,
    ended: BTreeMap<usize, CloseReason>,
    events: BTreeMap<usize, Vec<Ev>>,
    transmits: Vec<u64>,
    replies: BTreeMap<u64, Shape>,
}

#[derive(Clone, Debug, Default)]
struct MCounters {
    bindings_opened: u64,
    bindings_closed: u64,
    bindings_expired: u64,
    open_failures: u64,
    received: u64,
    delivered: u64,
    dropped_overflow: u64,
    dropped_closed: u64,
    dropped_unbound: u64,
    dropped_kernel: u64,
    missed: u64,
    sent: u64,
    send_errors: u64,
}

#[derive(Clone, Debug, Default)]
struct Model {
    now_ms: u64,
    next_request: u64,
    next_serial: u64,
    bindings: Vec<MBinding>,
    subs: Vec<MSub>,
    /// Sends waiting for their transmit outcome: (request, binding, length).
    transmits: Vec<(u64, usize, usize)>,
    counters: MCounters,
    shut_down: bool,
    /// What the last transition must have produced.
    expected: Effects,
}

impl Model {
    fn live(&self, target: Target) -> Option<usize> {
        match target {
            Target::Binding(i) if self.bindings[i].state == BState::Live => Some(i),
            _ => None,
        }
    }

    fn live_sub(&self, target: SubTarget) -> Option<usize> {
        match target {
            SubTarget::Sub(i) if self.subs[i].live => Some(i),
            _ => None,
        }
    }

    fn request(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    fn reply(&mut self, request: u64, shape: Shape) {
        self.expected.replies.insert(request, shape);
    }

    fn pending_of(b: &MBinding) -> u64 {
        b.ring.undelivered() as u64
    }

    /// `Subscriber::pump`: deliver while credit lasts, lag first.
    fn pump(&mut self, s: usize) {
        let sub = &mut self.subs[s];
        let b = &mut self.bindings[sub.binding];
        while sub.credit > 0 {
            let first = b.ring.first_seq();
            if sub.cursor < first {
                let gap = first - sub.cursor;
                sub.missed += gap;
                b.counters.missed += gap;
                self.counters.missed += gap;
                sub.cursor = first;
            }
            if sub.missed > 0 {
                self.expected
                    .events
                    .entry(s)
                    .or_default()
                    .push(Ev::Lagged(sub.missed));
                sub.missed = 0;
                sub.credit -= 1;
                continue;
            }
            let Some(entry) = b.ring.get_mut(sub.cursor) else {
                break;
            };
            if !entry.delivered {
                entry.delivered = true;
                b.counters.delivered += 1;
                b.counters.pending -= 1;
                self.counters.delivered += 1;
            }
            self.expected
                .events
                .entry(s)
                .or_default()
                .push(Ev::Datagram(sub.cursor, entry.payload.len()));
            sub.cursor += 1;
            sub.credit -= 1;
        }
    }

    /// The one close sequence: end the streams, close the socket, forget.
    fn close(&mut self, i: usize, reason: CloseReason) {
        let b = &mut self.bindings[i];
        b.state = BState::Closed;
        for &s in &b.subs {
            if self.subs[s].live {
                self.subs[s].live = false;
                self.expected.ended.insert(s, reason);
            }
        }
        self.expected.closed.push(i);
        self.counters.dropped_closed += b.counters.pending;
        self.counters.bindings_closed += 1;
        if reason == CloseReason::Expired {
            self.counters.bindings_expired += 1;
        }
    }

    /// Fires every lease and idle deadline up to `now`, in time order (leases
    /// first at the same instant, as the engine's timer order has it).
    fn advance(&mut self, now: u64) {
        loop {
            let lease = self
                .bindings
                .iter()
                .enumerate()
                .filter(|(_, b)| b.state == BState::Live && b.deadline_ms <= now)
                .map(|(i, b)| (b.deadline_ms, 0, i))
                .min();
            let idle = self
                .subs
                .iter()
                .enumerate()
                .filter(|(_, s)| s.live)
                .filter_map(|(i, s)| s.idle_ms.map(|idle| (s.last_activity_ms + idle, 1, i)))
                .filter(|(due, _, _)| *due <= now)
                .min();
            match lease.into_iter().chain(idle).min() {
                Some((_, 0, i)) => self.close(i, CloseReason::Expired),
                Some((_, _, s)) => {
                    self.subs[s].live = false;
                    self.expected.ended.insert(s, CloseReason::Idle);
                }
                None => break,
            }
        }
        self.now_ms = now;
    }

    fn apply(&mut self, t: &Transition) {
        self.expected = Effects::default();
        let now = self.now_ms;
        match *t {
            Transition::Bind {
                lease_secs,
                renew_on_traffic,
                remote,
            } => {
                let request = self.request();
                let busy = self
                    .bindings
                    .iter()
                    .filter(|b| matches!(b.state, BState::Live | BState::Opening { .. }))
                    .count();
                let refusal = if self.shut_down {
                    Some(ErrorCode::ShuttingDown)
                } else if remote {
                    Some(ErrorCode::RemoteNotAllowed)
                } else if busy >= MAX_BINDINGS {
                    Some(ErrorCode::TooManyBindings)
                } else {
                    None
                };
                if let Some(code) = refusal {
                    return self.reply(request, Shape::Bind(Err(code)));
                }
                let lease = Lease::requested(
                    lease_secs,
                    Lease::from_secs(DEFAULT_LEASE),
                    Lease::from_secs(MAX_LEASE),
                );
                self.expected.opened.push(self.bindings.len());
                self.bindings.push(MBinding {
                    request,
                    state: BState::Opening { cancelled: false },
                    serial: 0,
                    lease_secs: lease.as_secs(),
                    renew_on_traffic,
                    deadline_ms: 0,
                    ring: Ring::new(),
                    subs: Vec::new(),
                    counters: BCounters::default(),
                });
            }
            Transition::OpenOk { binding } => {
                let BState::Opening { cancelled } = self.bindings[binding].state else {
                    unreachable!("precondition")
                };
                self.counters.bindings_opened += 1;
                if cancelled {
                    self.bindings[binding].state = BState::Closed;
                    self.counters.bindings_closed += 1;
                    self.expected.closed.push(binding);
                    return;
                }
                let serial = self.next_serial;
                self.next_serial += 1;
                let b = &mut self.bindings[binding];
                b.state = BState::Live;
                b.serial = serial;
                b.deadline_ms = now + b.lease_secs * 1000;
                let request = b.request;
                self.reply(request, Shape::Bind(Ok(binding)));
            }
            Transition::OpenFail { binding, in_use } => {
                let BState::Opening { cancelled } = self.bindings[binding].state else {
                    unreachable!("precondition")
                };
                self.bindings[binding].state = BState::Failed;
                self.counters.open_failures += 1;
                if !cancelled {
                    let code = if in_use {
                        ErrorCode::AddressInUse
                    } else {
                        ErrorCode::OutOfResources
                    };
                    let request = self.bindings[binding].request;
                    self.reply(request, Shape::Bind(Err(code)));
                }
            }
            Transition::Unbind(target) => {
                let request = self.request();
                let shape = match self.live(target) {
                    Some(i) => {
                        self.close(i, CloseReason::Unbound);
                        Ok(i)
                    }
                    None => Err(ErrorCode::NotFound),
                };
                self.reply(request, Shape::Unbind(shape));
            }
            Transition::Heartbeat { target, lease_secs } => {
                let request = self.request();
                let shape = match self.live(target) {
                    Some(i) => {
                        let b = &mut self.bindings[i];
                        if lease_secs.is_some() {
                            b.lease_secs = Lease::requested(
                                lease_secs,
                                Lease::from_secs(DEFAULT_LEASE),
                                Lease::from_secs(MAX_LEASE),
                            )
                            .as_secs();
                        }
                        b.deadline_ms = now + b.lease_secs * 1000;
                        Ok(b.deadline_ms)
                    }
                    None => Err(ErrorCode::NotFound),
                };
                self.reply(request, Shape::Heartbeat(shape));
            }
            Transition::Send {
                target,
                len,
                forbidden_dest,
                reuse,
            } => {
                let request = match reuse {
                    Some(index) => self.transmits[index].0,
                    None => self.request(),
                };
                match self.live(target) {
                    None => self.reply(request, Shape::Send(Err(ErrorCode::NotFound))),
                    Some(_) if reuse.is_some() => {
                        self.reply(request, Shape::Send(Err(ErrorCode::DuplicateRequest)))
                    }
                    Some(_) if forbidden_dest => {
                        self.reply(request, Shape::Send(Err(ErrorCode::DestinationForbidden)))
                    }
                    Some(i) => {
                        let b = &mut self.bindings[i];
                        if b.renew_on_traffic {
                            b.deadline_ms = now + b.lease_secs * 1000;
                        }
                        self.transmits.push((request, i, len));
                        self.expected.transmits.push(request);
                    }
                }
            }
            Transition::Transmitted { index, outcome } => {
                let (request, i, len) = self.transmits.remove(index);
                let live = self.bindings[i].state == BState::Live;
                let c = &mut self.bindings[i].counters;
                let shape = match outcome {
                    Outcome::Sent => {
                        self.counters.sent += 1;
                        if live {
                            c.sent += 1;
                        }
                        Ok(len)
                    }
                    Outcome::Refused | Outcome::NoBuffers => {
                        self.counters.send_errors += 1;
                        if live {
                            c.send_errors += 1;
                            if outcome == Outcome::Refused {
                                c.icmp_errors += 1;
                            }
                        }
                        Err(if outcome == Outcome::Refused {
                            ErrorCode::DestinationUnreachable
                        } else {
                            ErrorCode::OutOfResources
                        })
                    }
                };
                self.reply(request, Shape::Send(shape));
            }
            Transition::SocketError { target, icmp } => {
                if let Some(i) = self.live(target) {
                    let c = &mut self.bindings[i].counters;
                    if icmp {
                        c.icmp_errors += 1;
                    } else {
                        c.recv_errors += 1;
                    }
                }
            }
            Transition::Subscribe {
                target,
                resume_after,
                idle_ms,
            } => {
                let request = self.request();
                let Some(i) = self.live(target) else {
                    return self.reply(request, Shape::Subscribe(Err(ErrorCode::NotFound)));
                };
                let b = &mut self.bindings[i];
                if b.subs.iter().filter(|&&s| self.subs[s].live).count() >= MAX_SUBSCRIBERS {
                    return self.reply(
                        request,
                        Shape::Subscribe(Err(ErrorCode::TooManySubscribers)),
                    );
                }
                let cursor = match resume_after {
                    Some(after) => after.saturating_add(1).min(b.ring.next_seq()),
                    None => b.ring.first_undelivered(),
                };
                let s = self.subs.len();
                b.subs.push(s);
                self.subs.push(MSub {
                    binding: i,
                    live: true,
                    cursor,
                    credit: WINDOW,
                    missed: 0,
                    idle_ms: idle_ms.filter(|&ms| ms > 0),
                    last_activity_ms: now,
                });
                self.reply(request, Shape::Subscribe(Ok(s)));
                self.pump(s);
            }
            Transition::Unsubscribe(target) => {
                let request = self.request();
                let shape = match self.live_sub(target) {
                    Some(s) => {
                        self.subs[s].live = false;
                        self.expected.ended.insert(s, CloseReason::Unsubscribed);
                        Ok(s)
                    }
                    None => Err(ErrorCode::NotFound),
                };
                self.reply(request, Shape::Unsubscribe(shape));
            }
            Transition::Gone(target) => {
                if let Some(s) = self.live_sub(target) {
                    self.subs[s].live = false;
                }
            }
            Transition::Credit { sub, credit } => {
                if let Some(s) = self.live_sub(sub) {
                    let c = &mut self.subs[s].credit;
                    *c = c.saturating_add(credit).min(WINDOW);
                    self.pump(s);
                }
            }
            Transition::Datagram { target, len } => {
                let Some(i) = self.live(target) else {
                    self.counters.dropped_unbound += 1;
                    return;
                };
                let b = &mut self.bindings[i];
                b.counters.received += 1;
                b.counters.pending += 1;
                self.counters.received += 1;
                // Only the length matters to the model; the rest is filler.
                let entry = RingEntry {
                    src: SocketAddr::from(([127, 0, 0, 1], 9)),
                    payload: Bytes::from(vec![0; len]),
                    received_at: filler_instant(),
                    delivered: false,
                };
                let lost = b.ring.push(entry, RING_DATAGRAMS, RING_BYTES);
                b.counters.dropped_overflow += lost;
                b.counters.pending -= lost;
                self.counters.dropped_overflow += lost;
                if b.renew_on_traffic {
                    b.deadline_ms = now + b.lease_secs * 1000;
                }
                let subs: Vec<usize> = b.subs.clone();
                for s in subs {
                    if self.subs[s].live {
                        self.subs[s].last_activity_ms = now;
                        self.pump(s);
                    }
                }
            }
            Transition::KernelDrops { target, count } => {
                let Some(i) = self.live(target) else {
                    return;
                };
                if count == 0 {
                    return;
                }
                let b = &mut self.bindings[i];
                b.counters.dropped_kernel += count;
                self.counters.dropped_kernel += count;
                let subs: Vec<usize> = b.subs.clone();
                for s in subs {
                    if self.subs[s].live {
                        self.subs[s].missed += count;
                        self.bindings[i].counters.missed += count;
                        self.counters.missed += count;
                        self.subs[s].last_activity_ms = now;
                        self.pump(s);
                    }
                }
            }
            Transition::Advance { ms } => self.advance(now + ms),
            Transition::Status => {
                let request = self.request();
                let mut live: Vec<(u64, usize)> = self
                    .bindings
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.state == BState::Live)
                    .map(|(i, b)| (b.serial, i))
                    .collect();
                live.sort_unstable();
                self.reply(
                    request,
                    Shape::Status(live.into_iter().map(|(_, i)| i).collect()),
                );
            }
            Transition::Shutdown => {
                let request = self.request();
                self.shut_down = true;
                for i in 0..self.bindings.len() {
                    if self.bindings[i].state == (BState::Opening { cancelled: false }) {
                        self.bindings[i].state = BState::Opening { cancelled: true };
                        let bind = self.bindings[i].request;
                        self.reply(bind, Shape::Bind(Err(ErrorCode::ShuttingDown)));
                    }
                }
                let mut live: Vec<(u64, usize)> = self
                    .bindings
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.state == BState::Live)
                    .map(|(i, b)| (b.serial, i))
                    .collect();
                live.sort_unstable();
                for (_, i) in live {
                    self.close(i, CloseReason::Shutdown);
                }
                self.reply(request, Shape::Shutdown);
            }
        }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        let nb = state.bindings.len();
        let ns = state.subs.len();
        // Mostly live bindings and subscribers, sometimes gone ones or strangers.
        let live: Vec<usize> = (0..nb)
            .filter(|&i| state.bindings[i].state == BState::Live)
            .collect();
        let mut targets: Vec<(u32, BoxedStrategy<Target>)> =
            vec![(1, Just(Target::Stranger).boxed())];
        if nb > 0 {
            targets.push((2, (0..nb).prop_map(Target::Binding).boxed()));
        }
        if !live.is_empty() {
            targets.push((12, select(live.clone()).prop_map(Target::Binding).boxed()));
        }
        let target = Union::new_weighted(targets).boxed();
        let live_subs: Vec<usize> = (0..ns).filter(|&i| state.subs[i].live).collect();
        let mut subs: Vec<(u32, BoxedStrategy<SubTarget>)> =
            vec![(1, Just(SubTarget::Stranger).boxed())];
        if ns > 0 {
            subs.push((2, (0..ns).prop_map(SubTarget::Sub).boxed()));
        }
        if !live_subs.is_empty() {
            subs.push((
                12,
                select(live_subs.clone()).prop_map(SubTarget::Sub).boxed(),
            ));
        }
        let sub = Union::new_weighted(subs).boxed();
        // Datagrams mostly go where someone listens.
        let listened: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| state.bindings[i].subs.iter().any(|&s| state.subs[s].live))
            .collect();
        let datagram_target = if listened.is_empty() {
            target.clone()
        } else {
            prop_oneof![
                1 => target.clone(),
                3 => select(listened).prop_map(Target::Binding),
            ]
            .boxed()
        };
        // Weights follow the state, so that sequences spend their steps with live
        // bindings and subscribers rather than with refusals.
        let (has_live, has_subs) = (!live.is_empty(), !live_subs.is_empty());
        let w_bind = if has_live { 30 } else { 90 };
        let w_subscribe = if has_live && !has_subs { 90 } else { 30 };
        let w_datagram = if has_subs { 150 } else { 40 };
        let w_credit = if has_subs { 40 } else { 3 };
        let lease = prop_oneof![
            2 => Just(None),
            1 => Just(Some(0)),
            6 => (1..=MAX_LEASE).prop_map(Some),
            1 => Just(Some(1_000_000)),
        ];
        let mut choices: Vec<(u32, BoxedStrategy<Transition>)> = vec![
            (
                w_bind,
                (
                    lease.clone(),
                    prop::bool::weighted(0.3),
                    prop::bool::weighted(0.05),
                )
                    .prop_map(|(lease_secs, renew_on_traffic, remote)| Transition::Bind {
                        lease_secs,
                        renew_on_traffic,
                        remote,
                    })
                    .boxed(),
            ),
            (9, target.clone().prop_map(Transition::Unbind).boxed()),
            (
                36,
                (
                    target.clone(),
                    prop_oneof![3 => Just(None), 1 => lease.clone()],
                )
                    .prop_map(|(target, lease_secs)| Transition::Heartbeat { target, lease_secs })
                    .boxed(),
            ),
            (
                30,
                (
                    target.clone(),
                    0..32usize,
                    prop::bool::weighted(0.1),
                    if state.transmits.is_empty() {
                        Just(None).boxed()
                    } else {
                        prop_oneof![
                            9 => Just(None),
                            1 => (0..state.transmits.len()).prop_map(Some),
                        ]
                        .boxed()
                    },
                )
                    .prop_map(|(target, len, forbidden_dest, reuse)| Transition::Send {
                        target,
                        len,
                        forbidden_dest,
                        reuse,
                    })
                    .boxed(),
            ),
            (
                4,
                (target.clone(), any::<bool>())
                    .prop_map(|(target, icmp)| Transition::SocketError { target, icmp })
                    .boxed(),
            ),
            (
                w_subscribe,
                (
                    target.clone(),
                    prop_oneof![2 => Just(None), 1 => (0..8u64).prop_map(Some)],
                    prop_oneof![4 => Just(None), 1 => (0..3000u64).prop_map(Some)],
                )
                    .prop_map(|(target, resume_after, idle_ms)| Transition::Subscribe {
                        target,
                        resume_after,
                        idle_ms,
                    })
                    .boxed(),
            ),
            (9, sub.clone().prop_map(Transition::Unsubscribe).boxed()),
            (9, sub.clone().prop_map(Transition::Gone).boxed()),
            (
                w_credit,
                (sub, 1..=3u32)
                    .prop_map(|(sub, credit)| Transition::Credit { sub, credit })
                    .boxed(),
            ),
            (
                w_datagram,
                (datagram_target, 0..24usize)
                    .prop_map(|(target, len)| Transition::Datagram { target, len })
                    .boxed(),
            ),
            (
                4,
                (target.clone(), 0..5u64)
                    .prop_map(|(target, count)| Transition::KernelDrops { target, count })
                    .boxed(),
            ),
            (
                42,
                prop_oneof![16 => 1..=300u64, 3 => 300..=3000u64, 1 => 3000..=20_000u64]
                    .prop_map(|ms| Transition::Advance { ms })
                    .boxed(),
            ),
            (6, Just(Transition::Status).boxed()),
            // Rare: everything after a shutdown is refusals.
            (1, Just(Transition::Shutdown).boxed()),
        ];
        let opening: Vec<usize> = (0..nb)
            .filter(|&i| matches!(state.bindings[i].state, BState::Opening { .. }))
            .collect();
        if !opening.is_empty() {
            choices.push((
                90,
                select(opening.clone())
                    .prop_map(|binding| Transition::OpenOk { binding })
                    .boxed(),
            ));
            choices.push((
                18,
                (select(opening), any::<bool>())
                    .prop_map(|(binding, in_use)| Transition::OpenFail { binding, in_use })
                    .boxed(),
            ));
        }
        if !state.transmits.is_empty() {
            choices.push((
                42,
                (
                    0..state.transmits.len(),
                    prop_oneof![
                        8 => Just(Outcome::Sent),
                        1 => Just(Outcome::Refused),
                        1 => Just(Outcome::NoBuffers),
                    ],
                )
                    .prop_map(|(index, outcome)| Transition::Transmitted { index, outcome })
                    .boxed(),
            ));
        }
        // Land exactly on a deadline, or a millisecond before it.
        let mut deadlines: Vec<u64> = Vec::new();
        for b in state.bindings.iter().filter(|b| b.state == BState::Live) {
            let left = b.deadline_ms - state.now_ms;
            deadlines.push(left);
            deadlines.push(left.saturating_sub(1).max(1));
        }
        if !deadlines.is_empty() {
            choices.push((
                18,
                select(deadlines)
                    .prop_map(|ms| Transition::Advance { ms })
                    .boxed(),
            ));
        }
        Union::new_weighted(choices).boxed()
    }

    fn preconditions(state: &Model, t: &Transition) -> bool {
        let target_ok = |target: &Target| match target {
            Target::Binding(i) => *i < state.bindings.len(),
            Target::Stranger => true,
        };
        let sub_ok = |sub: &SubTarget| match sub {
            SubTarget::Sub(i) => *i < state.subs.len(),
            SubTarget::Stranger => true,
        };
        match t {
            Transition::OpenOk { binding } | Transition::OpenFail { binding, .. } => state
                .bindings
                .get(*binding)
                .is_some_and(|b| matches!(b.state, BState::Opening { .. })),
            Transition::Transmitted { index, .. } => *index < state.transmits.len(),
            Transition::Send { target, reuse, .. } => {
                target_ok(target) && reuse.is_none_or(|i| i < state.transmits.len())
            }
            Transition::Unbind(target)
            | Transition::Heartbeat { target, .. }
            | Transition::Subscribe { target, .. }
            | Transition::Datagram { target, .. }
            | Transition::KernelDrops { target, .. }
            | Transition::SocketError { target, .. } => target_ok(target),
            Transition::Unsubscribe(sub)
            | Transition::Gone(sub)
            | Transition::Credit { sub, .. } => sub_ok(sub),
            Transition::Advance { ms } => *ms > 0,
            Transition::Bind { .. } | Transition::Status | Transition::Shutdown => true,
        }
    }

    fn apply(mut state: Model, t: &Transition) -> Model {
        state.apply(t);
        state
    }
}

// ----- the engine under test -----------------------------------------------------

/// The engine, its checker, and the ids the engine handed out, by model handle.
struct Sut {
    engine: Engine,
    checker: Checker,
    start: Instant,
    now: Instant,
    bindings: Vec<BindingId>,
    subs: Vec<SubscriberId>,
    /// Sends waiting for their transmit outcome, in order: request and length.
    transmits: Vec<(RequestId, usize)>,
    next_request: u64,
}

/// An id the engine never hands out (its generator would have to hit it exactly).
fn stranger() -> BindingId {
    "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
        .parse()
        .expect("valid id")
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9000))
}

impl Sut {
    fn new() -> Self {
        let start = Instant::now();
        let engine =
            Engine::new(config(), [9; 32], WallClock::new(start, anchor())).expect("valid config");
        let mut checker = Checker::new(&engine);
        // The model feeds datagrams at will, paused or not.
        checker.allow_reads_while_paused();
        Sut {
            engine,
            checker,
            start,
            now: start,
            bindings: Vec::new(),
            subs: Vec::new(),
            transmits: Vec::new(),
            next_request: 0,
        }
    }

    fn binding(&self, target: Target) -> BindingId {
        match target {
            Target::Binding(i) => self.bindings[i],
            Target::Stranger => stranger(),
        }
    }

    fn sub(&self, target: SubTarget) -> SubscriberId {
        match target {
            SubTarget::Sub(i) => self.subs[i],
            SubTarget::Stranger => SubscriberId(u64::MAX),
        }
    }

    fn command(&mut self, command: Command) -> Input {
        self.next_request += 1;
        Input::Command {
            request: RequestId(self.next_request),
            command,
        }
    }

    fn ms_since_start(&self, at: SystemTime) -> u64 {
        let offset = at.duration_since(anchor()).expect("after the anchor");
        u64::try_from(offset.as_millis()).expect("small")
    }

    fn input(&mut self, t: &Transition) -> Input {
        match *t {
            Transition::Bind {
                lease_secs,
                renew_on_traffic,
                remote,
            } => {
                let ip = if remote {
                    [10, 0, 0, 1]
                } else {
                    [127, 0, 0, 1]
                };
                let mut params = BindParams::new(SocketAddr::from((ip, 0)));
                params.lease_secs = lease_secs;
                params.renew_on_traffic = renew_on_traffic;
                self.command(Command::Bind(params))
            }
            Transition::OpenOk { binding } => Input::SocketOpened {
                binding: self.bindings[binding],
                local_addr: SocketAddr::from(([127, 0, 0, 1], 40_000 + binding as u16)),
            },
            Transition::OpenFail { binding, in_use } => Input::SocketFailed {
                binding: self.bindings[binding],
                error: if in_use {
                    OpenError::AddrInUse
                } else {
                    OpenError::OutOfDescriptors
                },
            },
            Transition::Unbind(target) => {
                let binding = self.binding(target);
                self.command(Command::Unbind { binding })
            }
            Transition::Heartbeat { target, lease_secs } => {
                let binding = self.binding(target);
                self.command(Command::Heartbeat {
                    binding,
                    lease_secs,
                })
            }
            Transition::Send {
                target,
                len,
                forbidden_dest,
                reuse,
            } => {
                let binding = self.binding(target);
                let dest = if forbidden_dest {
                    SocketAddr::from(([224, 0, 0, 1], 9))
                } else {
                    peer()
                };
                let command = Command::Send {
                    binding,
                    dest,
                    payload: Bytes::from(vec![0x5a; len]),
                };
                match reuse {
                    Some(index) => Input::Command {
                        request: self.transmits[index].0,
                        command,
                    },
                    None => self.command(command),
                }
            }
            Transition::Transmitted { index, outcome } => {
                let (request, len) = self.transmits.remove(index);
                Input::Transmitted {
                    request,
                    outcome: match outcome {
                        Outcome::Sent => Ok(len),
                        Outcome::Refused => Err(TransmitError::ConnectionRefused),
                        Outcome::NoBuffers => Err(TransmitError::NoBuffers),
                    },
                }
            }
            Transition::SocketError { target, icmp } => Input::SocketError {
                binding: self.binding(target),
                error: if icmp {
                    ReceiveError::ConnectionRefused
                } else {
                    ReceiveError::Other(std::io::ErrorKind::Other)
                },
            },
            Transition::Subscribe {
                target,
                resume_after,
                idle_ms,
            } => {
                let mut params = SubscribeParams::new(self.binding(target));
                params.resume_after = resume_after.map(Seq);
                params.idle_timeout = idle_ms.map(Duration::from_millis);
                self.command(Command::Subscribe(params))
            }
            Transition::Unsubscribe(sub) => {
                let subscriber = self.sub(sub);
                self.command(Command::Unsubscribe { subscriber })
            }
            Transition::Gone(sub) => Input::SubscriberGone {
                subscriber: self.sub(sub),
            },
            Transition::Credit { sub, credit } => Input::Credit {
                subscriber: self.sub(sub),
                credit,
            },
            Transition::Datagram { target, len } => Input::Datagram {
                binding: self.binding(target),
                src: peer(),
                payload: Bytes::from(vec![len as u8; len]),
            },
            Transition::KernelDrops { target, count } => Input::KernelDrops {
                binding: self.binding(target),
                count,
            },
            Transition::Advance { ms } => {
                self.now += Duration::from_millis(ms);
                Input::Timeout
            }
            Transition::Status => self.command(Command::Status),
            Transition::Shutdown => self.command(Command::Shutdown),
        }
    }

    /// The engine's actions, by model handles.
    fn effects(&mut self, actions: Vec<Action>) -> Effects {
        let mut e = Effects::default();
        let handle = |bindings: &[BindingId], id: BindingId| {
            bindings
                .iter()
                .position(|&b| b == id)
                .unwrap_or_else(|| panic!("unknown binding {id}"))
        };
        for action in actions {
            match action {
                Action::OpenSocket { binding, .. } => {
                    self.bindings.push(binding);
                    e.opened.push(self.bindings.len() - 1);
                }
                Action::CloseSocket { binding } => e.closed.push(handle(&self.bindings, binding)),
                Action::Transmit {
                    request, payload, ..
                } => {
                    self.transmits.push((request, payload.len()));
                    e.transmits.push(request.0);
                }
                Action::Deliver { subscriber, event } => {
                    let s = self.sub_handle(subscriber);
                    let ev = match event {
                        Event::Datagram(d) => Ev::Datagram(d.seq.0, d.payload.len()),
                        Event::Lagged { missed } => Ev::Lagged(missed),
                    };
                    e.events.entry(s).or_default().push(ev);
                }
                // Flow control is the checker's to verify; the model does not predict it.
                Action::PauseReads { .. } | Action::ResumeReads { .. } => {}
                Action::EndStream { subscriber, reason } => {
                    let s = self.sub_handle(subscriber);
                    assert!(e.ended.insert(s, reason).is_none(), "ended twice");
                }
                Action::Reply { request, reply } => {
                    let shape = match reply {
                        Reply::Bind(r) => Shape::Bind(
                            r.map(|info| handle(&self.bindings, info.id))
                                .map_err(|e| e.code()),
                        ),
                        Reply::Unbind(r) => Shape::Unbind(
                            r.map(|id| handle(&self.bindings, id)).map_err(|e| e.code()),
                        ),
                        Reply::Send(r) => Shape::Send(r.map_err(|e| e.code())),
                        Reply::Heartbeat(r) => Shape::Heartbeat(
                            r.map(|info| self.ms_since_start(info.expires_at))
                                .map_err(|e| e.code()),
                        ),
                        Reply::Subscribe(r) => Shape::Subscribe(
                            r.map(|id| {
                                self.subs.push(id);
                                self.subs.len() - 1
                            })
                            .map_err(|e| e.code()),
                        ),
                        Reply::Unsubscribe(r) => Shape::Unsubscribe(
                            r.map(|id| self.sub_handle(id)).map_err(|e| e.code()),
                        ),
                        Reply::Status(list) => Shape::Status(
                            list.iter()
                                .map(|info| handle(&self.bindings, info.id))
                                .collect(),
                        ),
                        Reply::Shutdown => Shape::Shutdown,
                        Reply::Ticket(_) => panic!("the model never asks for a ticket"),
                    };
                    assert!(e.replies.insert(request.0, shape).is_none(), "two replies");
                }
            }
        }
        e
    }

    fn sub_handle(&self, id: SubscriberId) -> usize {
        self.subs
            .iter()
            .position(|&s| s == id)
            .unwrap_or_else(|| panic!("unknown subscriber {id}"))
    }
}

struct EngineVsModel;

impl StateMachineTest for EngineVsModel {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(_: &Model) -> Sut {
        Sut::new()
    }

    fn apply(mut sut: Sut, model: &Model, t: Transition) -> Sut {
        let input = sut.input(&t);
        let now = sut.now;
        let actions = sut
            .checker
            .step(&mut sut.engine, input, now)
            .unwrap_or_else(|v| panic!("invariant broken by {t:?}: {v}"));
        let mut effects = sut.effects(actions);
        // Bindings closed at one instant may close in any order.
        effects.closed.sort_unstable();
        let mut expected = model.expected.clone();
        expected.closed.sort_unstable();
        assert_eq!(effects, expected, "after {t:?}");
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        let engine = &sut.engine;
        let live: Vec<usize> = (0..model.bindings.len())
            .filter(|&i| model.bindings[i].state == BState::Live)
            .collect();
        assert_eq!(engine.binding_count(), live.len(), "live bindings");
        let opening = model
            .bindings
            .iter()
            .filter(|b| matches!(b.state, BState::Opening { .. }))
            .count();
        assert_eq!(engine.opening_count(), opening, "opening sockets");
        let subs = model.subs.iter().filter(|s| s.live).count();
        assert_eq!(engine.subscriber_count(), subs, "live subscribers");
        for &i in &live {
            let b = &model.bindings[i];
            let info = engine
                .binding(&sut.bindings[i])
                .expect("live in the engine");
            assert_eq!(info.lease.as_secs(), b.lease_secs, "lease of {i}");
            assert_eq!(
                sut.ms_since_start(info.expires_at),
                b.deadline_ms,
                "deadline of {i}"
            );
            let live_subs = b.subs.iter().filter(|&&s| model.subs[s].live).count();
            assert_eq!(info.subscribers, live_subs, "subscribers of {i}");
            let c = info.counters;
            let m = &b.counters;
            assert_eq!(
                (
                    c.received,
                    c.delivered,
                    c.dropped_overflow,
                    c.pending,
                    c.dropped_kernel,
                    c.missed
                ),
                (
                    m.received,
                    m.delivered,
                    m.dropped_overflow,
                    Model::pending_of(b),
                    m.dropped_kernel,
                    m.missed
                ),
                "datagram counters of {i}"
            );
            assert_eq!(c.pending, m.pending, "pending of {i}");
            assert_eq!(
                (c.sent, c.send_errors, c.icmp_errors, c.recv_errors),
                (m.sent, m.send_errors, m.icmp_errors, m.recv_errors),
                "send and error counters of {i}"
            );
        }
        let c = engine.counters();
        let m = &model.counters;
        let pending: u64 = live
            .iter()
            .map(|&i| model.bindings[i].counters.pending)
            .sum();
        assert_eq!(
            [
                c.bindings_opened,
                c.bindings_closed,
                c.bindings_expired,
                c.open_failures,
                c.received,
                c.delivered,
                c.dropped_overflow,
                c.dropped_closed,
                c.pending,
                c.dropped_unbound,
                c.dropped_kernel,
                c.missed,
                c.sent,
                c.send_errors,
            ],
            [
                m.bindings_opened,
                m.bindings_closed,
                m.bindings_expired,
                m.open_failures,
                m.received,
                m.delivered,
                m.dropped_overflow,
                m.dropped_closed,
                pending,
                m.dropped_unbound,
                m.dropped_kernel,
                m.missed,
                m.sent,
                m.send_errors,
            ],
            "engine counters"
        );
        // The runtime is woken no later than the earliest deadline, and never for
        // a deadline already past.
        let earliest = live
            .iter()
            .map(|&i| model.bindings[i].deadline_ms)
            .chain(
                model
                    .subs
                    .iter()
                    .filter(|s| s.live)
                    .filter_map(|s| s.idle_ms.map(|idle| s.last_activity_ms + idle)),
            )
            .min();
        match (engine.poll_timeout(), earliest) {
            (None, None) => {}
            (Some(at), Some(due)) => {
                assert!(at > sut.now, "timeout in the past");
                assert!(
                    at <= sut.start + Duration::from_millis(due),
                    "timeout after the earliest deadline"
                );
            }
            (got, want) => panic!("poll_timeout {got:?}, earliest deadline at {want:?} ms"),
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        .. ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_the_reference_model(sequential 1..120 => EngineVsModel);
}

/// Regression (found by the model test): a lease renewed by traffic kept its
/// timer entry at the old deadline; on a wake late enough to pass both that entry
/// and the renewed deadline, the entry closed the binding at once, before an idle
/// deadline that fell in between, so the stream ended `expired` instead of `idle`.
#[test]
fn stream_idle_before_its_lease_ran_out_ends_idle_even_on_a_late_wake() {
    let mut sut = Sut::new();
    let start = sut.start;
    let at = |ms: u64| start + Duration::from_millis(ms);
    let step = |sut: &mut Sut, input: Input, now: Instant| {
        sut.checker
            .step(&mut sut.engine, input, now)
            .unwrap_or_else(|v| panic!("{v}"))
    };
    let mut params = BindParams::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    params.lease_secs = Some(8);
    params.renew_on_traffic = true;
    let bind = sut.command(Command::Bind(params));
    let actions = step(&mut sut, bind, at(0));
    let Some(Action::OpenSocket { binding, .. }) = actions.first().cloned() else {
        panic!("no open: {actions:?}");
    };
    let opened = Input::SocketOpened {
        binding,
        local_addr: SocketAddr::from(([127, 0, 0, 1], 40_000)),
    };
    step(&mut sut, opened, at(0));
    // Traffic at 7.999 s renews the lease to 15.999 s.
    let datagram = Input::Datagram {
        binding,
        src: peer(),
        payload: Bytes::from_static(b"x"),
    };
    step(&mut sut, datagram, at(7_999));
    let mut params = SubscribeParams::new(binding);
    params.idle_timeout = Some(Duration::from_millis(1));
    let subscribe = sut.command(Command::Subscribe(params));
    let actions = step(&mut sut, subscribe, at(7_999));
    let Some(Action::Reply {
        reply: Reply::Subscribe(Ok(subscriber)),
        ..
    }) = actions.first().cloned()
    else {
        panic!("no subscriber: {actions:?}");
    };
    // The runtime wakes only once both deadlines have passed: idle at 8.000 s,
    // the lease at 15.999 s. The stream was idle first.
    let actions = step(&mut sut, Input::Timeout, at(15_999));
    assert_eq!(
        actions,
        vec![
            Action::EndStream {
                subscriber,
                reason: CloseReason::Idle
            },
            Action::CloseSocket { binding },
        ]
    );
}

/// Regression: `idle_for` comes from the client (`?idle_for=N` seconds, any u64);
/// an idle timeout past the end of the clock panicked on `Instant + Duration`,
/// taking the daemon's engine down. It now means "never idle".
#[test]
fn idle_timeout_beyond_the_clock_never_ends_the_stream() {
    let mut sut = Sut::new();
    let now = sut.start;
    let step = |sut: &mut Sut, input: Input| {
        sut.checker
            .step(&mut sut.engine, input, now)
            .unwrap_or_else(|v| panic!("{v}"))
    };
    let bind = sut.command(Command::Bind(BindParams::new(SocketAddr::from((
        [127, 0, 0, 1],
        0,
    )))));
    let actions = step(&mut sut, bind);
    let Some(Action::OpenSocket { binding, .. }) = actions.first().cloned() else {
        panic!("no open: {actions:?}");
    };
    let opened = Input::SocketOpened {
        binding,
        local_addr: SocketAddr::from(([127, 0, 0, 1], 40_000)),
    };
    step(&mut sut, opened);
    for secs in [u64::MAX, 1 << 62] {
        let mut params = SubscribeParams::new(binding);
        params.idle_timeout = Some(Duration::from_secs(secs));
        let subscribe = sut.command(Command::Subscribe(params));
        let actions = step(&mut sut, subscribe);
        assert!(
            matches!(
                actions.as_slice(),
                [Action::Reply {
                    reply: Reply::Subscribe(Ok(_)),
                    ..
                }]
            ),
            "{actions:?}"
        );
        let datagram = Input::Datagram {
            binding,
            src: peer(),
            payload: Bytes::from_static(b"x"),
        };
        step(&mut sut, datagram);
    }
    assert_eq!(sut.engine.subscriber_count(), 2);
}
