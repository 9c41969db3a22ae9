//! The invariant checker: watches every input fed to an [`Engine`] and every
//! [`Action`] it emits, and reports the first broken invariant.
//!
//! It keeps its own account of what the engine must have done (sockets, leases,
//! subscribers, replies, datagrams) from the documented contract alone, so it can
//! check any sequence of inputs: a simulation run, a property test or a fuzz case.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::id::IdMap;
use crate::ring::{Entry, Ring};
use crate::{
    Action, BindError, BindingCounters, BindingError, BindingId, CloseReason, Command, Config,
    Counters, Engine, Event, Input, Lease, Reply, RequestId, SendError, SubscribeError,
    SubscriberId, TicketError, TransmitError, UnsubscribeError, WallClock,
};

/// Entries the model's per-stream in-flight queue is created with room for
/// (up to the delivery window): small enough for a daemon's large window,
/// large enough that a simulation's small one never grows it.
const PREALLOCATED: usize = 32;

/// A broken invariant: the engine did something its contract forbids.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// `CloseSocket` for a socket that was never reported opened.
    #[error("closed socket of {binding}, which was never opened")]
    UnknownSocketClosed {
        /// The binding.
        binding: BindingId,
    },
    /// A second `CloseSocket` for the same socket.
    #[error("closed socket of {binding} twice")]
    SocketClosedTwice {
        /// The binding.
        binding: BindingId,
    },
    /// `OpenSocket` for a binding id already used, or not in answer to a bind.
    #[error("opened a socket for {binding} without a fresh bind asking for it")]
    UnexpectedOpen {
        /// The binding.
        binding: BindingId,
    },
    /// A socket is still open after shutdown closed everything.
    #[error("socket of {binding} is still open after shutdown")]
    SocketLeaked {
        /// The binding.
        binding: BindingId,
    },
    /// A binding was closed for no reason while its lease still ran.
    #[error("{binding} was closed {left:?} before its deadline, not unbound nor shut down")]
    LeaseEndedEarly {
        /// The binding.
        binding: BindingId,
        /// Time left on the lease.
        left: Duration,
    },
    /// A binding is still alive although `now` passed its deadline.
    #[error("{binding} is still alive {overdue:?} after its deadline")]
    LeaseOverdue {
        /// The binding.
        binding: BindingId,
        /// How long ago the deadline passed.
        overdue: Duration,
    },
    /// A reply reports a lease or deadline other than the one asked for.
    #[error("{binding} reports a lease of {got:?} expiring at {got_expiry:?}, expected {expected:?} expiring at {expected_expiry:?}")]
    LeaseMismatch {
        /// The binding.
        binding: BindingId,
        /// The lease the command asked for (clamped).
        expected: Lease,
        /// The lease reported.
        got: Lease,
        /// The deadline expected, on the wall clock.
        expected_expiry: SystemTime,
        /// The deadline reported.
        got_expiry: SystemTime,
    },
    /// A binding's socket was closed while one of its subscribers' streams had not ended.
    #[error("{binding} closed before the stream of {subscriber} ended")]
    SubscriberNotEnded {
        /// The subscriber.
        subscriber: SubscriberId,
        /// The binding.
        binding: BindingId,
    },
    /// A stream ended with a reason that does not match what happened.
    #[error(
        "stream of {subscriber} ended with reason {reason}, which does not match what happened"
    )]
    WrongCloseReason {
        /// The subscriber.
        subscriber: SubscriberId,
        /// The reason given.
        reason: CloseReason,
    },
    /// A datagram was delivered after its binding closed.
    #[error("delivered to {subscriber} after its binding {binding} closed")]
    DeliverAfterClose {
        /// The subscriber.
        subscriber: SubscriberId,
        /// The closed binding.
        binding: BindingId,
    },
    /// An event was delivered after the subscriber's stream ended or went away.
    #[error("delivered to {subscriber} after its stream ended")]
    DeliverAfterEnd {
        /// The subscriber.
        subscriber: SubscriberId,
    },
    /// An action names a subscriber no successful subscribe created.
    #[error("{subscriber} was never subscribed")]
    UnknownSubscriber {
        /// The subscriber.
        subscriber: SubscriberId,
    },
    /// A subscribe reply hands out an id already used.
    #[error("{subscriber} was handed out twice")]
    SubscriberReused {
        /// The subscriber.
        subscriber: SubscriberId,
    },
    /// A stream ended twice, or ended after it went away.
    #[error("stream of {subscriber} ended twice")]
    StreamEndedTwice {
        /// The subscriber.
        subscriber: SubscriberId,
    },
    /// More events delivered than the subscriber's credit window allows.
    #[error("delivered to {subscriber} beyond its window of {window}")]
    CreditExceeded {
        /// The subscriber.
        subscriber: SubscriberId,
        /// The configured delivery window.
        window: u32,
    },
    /// A delivered datagram is not the one the binding received with that
    /// sequence number, or is no longer in the replay ring.
    #[error("delivered datagram {seq} of {binding} to {subscriber}, which it does not hold")]
    WrongDatagram {
        /// The subscriber.
        subscriber: SubscriberId,
        /// The binding named in the event.
        binding: BindingId,
        /// The sequence number in the event.
        seq: u64,
    },
    /// A subscriber got a sequence number other than the next one, and the
    /// `lagged` notices in between do not account for the difference.
    #[error("{subscriber} expected datagram {expected}, got {got}")]
    SequenceBreak {
        /// The subscriber.
        subscriber: SubscriberId,
        /// The next sequence number after the lag reported.
        expected: u64,
        /// The one delivered.
        got: u64,
    },
    /// A subscriber got a datagram, or a `lagged` notice too small, while
    /// datagrams dropped before they were numbered (by the kernel or for
    /// memory) after it subscribed were not reported to it.
    #[error("{subscriber} was not told of {missed} datagrams dropped before they were numbered (by the kernel or for memory)")]
    UnnumberedDropsUnreported {
        /// The subscriber.
        subscriber: SubscriberId,
        /// Kernel drops it should have been told of.
        missed: u64,
    },
    /// A reply for a request with no command waiting for one.
    #[error("reply to {request:?}, which has no command waiting")]
    UnexpectedReply {
        /// The request.
        request: RequestId,
    },
    /// A reply of the wrong kind, or one that contradicts the input it answers.
    #[error("reply to {request:?} ({command}) does not fit: {reply}")]
    WrongReply {
        /// The request.
        request: RequestId,
        /// The command's name.
        command: &'static str,
        /// What was wrong.
        reply: String,
    },
    /// A command got no reply when it had to.
    #[error("{request:?} ({command}) got no reply")]
    Unanswered {
        /// The request.
        request: RequestId,
        /// The command's name.
        command: &'static str,
    },
    /// A transmit that no send command asked for.
    #[error("transmit for {request:?}, which no send asked for")]
    UnexpectedTransmit {
        /// The request.
        request: RequestId,
    },
    /// A reply says a binding is live when it is not, or the other way round.
    #[error("reply to {request:?} treats {binding} as {}", if *.live { "live" } else { "gone" })]
    LivenessMismatch {
        /// The request.
        request: RequestId,
        /// The binding.
        binding: BindingId,
        /// What the reply implied.
        live: bool,
    },
    /// The engine's getters disagree with the bindings its actions opened and closed.
    #[error("engine reports {engine} live bindings, its actions imply {expected}")]
    BindingsMismatch {
        /// The engine's count.
        engine: usize,
        /// The count implied by the actions.
        expected: usize,
    },
    /// The engine's getters disagree with the subscribers its actions created and ended.
    #[error("engine reports {engine} subscribers, its actions imply {expected}")]
    SubscribersMismatch {
        /// The engine's count.
        engine: usize,
        /// The count implied by the actions.
        expected: usize,
    },
    /// An engine counter differs from the count of what happened.
    #[error("counter {counter} is {engine}, expected {expected}")]
    CounterMismatch {
        /// The counter's name.
        counter: &'static str,
        /// The engine's value.
        engine: u64,
        /// The value implied by the inputs and actions.
        expected: u64,
    },
    /// `received == delivered + dropped_overflow + dropped_closed + pending` does not hold.
    #[error("engine counters do not balance: {counters:?}")]
    CountersUnbalanced {
        /// The engine's counters.
        counters: Box<Counters>,
    },
    /// A datagram was fed for a binding whose reads the engine had paused
    /// (the runtime broke the [`Action::PauseReads`] contract).
    #[error("a datagram of {binding} was fed while its reads were paused")]
    ReadWhilePaused {
        /// The binding.
        binding: BindingId,
    },
    /// Reads paused although some subscriber of the binding could take more
    /// (or it had none, or nothing waited), or paused twice.
    #[error("reads of {binding} paused without every subscriber out of credit and datagrams waiting, or twice")]
    UnexpectedPause {
        /// The binding.
        binding: BindingId,
    },
    /// Reads resumed although they were not paused, or before the pause's
    /// limit while every subscriber was still out of credit.
    #[error("reads of {binding} resumed while not paused, or early while its subscribers were still behind")]
    UnexpectedResume {
        /// The binding.
        binding: BindingId,
    },
    /// Every subscriber is out of credit with datagrams waiting, and reads
    /// were not paused (nor has a pause run to its limit since they last caught up).
    #[error("reads of {binding} not paused although every subscriber is behind")]
    MissedPause {
        /// The binding.
        binding: BindingId,
    },
    /// Reads stay paused although a subscriber can take more.
    #[error("reads of {binding} stay paused although a subscriber can take more")]
    MissedResume {
        /// The binding.
        binding: BindingId,
    },
    /// Reads are still paused past [`Config::max_read_pause`].
    #[error("reads of {binding} still paused {overdue:?} past the pause limit")]
    PauseOverdue {
        /// The binding.
        binding: BindingId,
        /// How long ago the limit passed.
        overdue: Duration,
    },
    /// `received == delivered + dropped_overflow + pending` does not hold for a binding.
    #[error("counters of {binding} do not balance: {counters:?}")]
    BindingCountersUnbalanced {
        /// The binding.
        binding: BindingId,
        /// Its counters.
        counters: Box<BindingCounters>,
    },
}

/// A socket's life as the actions and inputs tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Socket {
    Opening,
    Open,
    Closed,
}

/// A binding's reads, as the flow-control actions tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reads {
    On,
    Paused {
        until: Instant,
    },
    /// A pause ran to its limit; no new one until the subscribers catch up.
    Overrun,
}

#[derive(Debug)]
struct LiveBinding {
    serial: u64,
    lease: Lease,
    deadline: Instant,
    renew_on_traffic: bool,
    /// The reference model's copy of the binding's replay ring, filled from
    /// the datagrams this checker saw fed. It is the engine's ring type, so
    /// the eviction rule is written once (in `crate::ring`, whose tests pin
    /// it); the check stays independent because this copy is fed only from
    /// observed inputs, never read from the engine, and every delivery,
    /// `lagged` gap, drop counter and buffered byte the engine reports is
    /// compared against it. What this cannot catch, a wrong rule, is what
    /// the ring's own tests are for; what it does catch is the engine using
    /// the ring wrongly (wrong limits, an eviction not counted, an evicted or
    /// foreign datagram delivered, a resume from the wrong place).
    ring: Ring,
    /// Datagrams in the ring no subscriber has got yet.
    pending: u64,
    subscribers: Vec<SubscriberId>,
    reads: Reads,
    /// This binding's share of the checker's [`Tally`].
    tally: DatagramTally,
}

/// The datagram counts of a [`BindingCounters`] or a [`Counters`], in the
/// order of [`DatagramTally::against`] (the two types share the field names).
macro_rules! datagram_counts {
    ($c:expr) => {
        [
            $c.received,
            $c.delivered,
            $c.dropped_overflow,
            $c.dropped_memory,
            $c.dropped_kernel,
        ]
    };
}

/// What happened to received datagrams (one binding's, or all of them),
/// kept from the inputs and actions.
#[derive(Debug, Default)]
struct DatagramTally {
    received: u64,
    delivered: u64,
    dropped_overflow: u64,
    dropped_memory: u64,
    dropped_kernel: u64,
}

#[derive(Debug)]
struct LiveSubscriber {
    binding: BindingId,
    credit: u32,
    /// Payload bytes of each event in flight, oldest first.
    in_flight: VecDeque<usize>,
    /// The sequence number due next, before any lag reported since.
    next: u64,
    /// Missed datagrams reported by `lagged` since the last datagram.
    lagged: u64,
    /// Datagrams dropped before they got a sequence number (by the kernel,
    /// or for memory) since it subscribed, not yet reported by a `lagged`
    /// notice (which must come before its next datagram).
    unnumbered_missed: u64,
    idle: bool,
}

/// What a command still waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waits {
    /// A reply within the step that fed the command.
    Reply,
    /// The runtime's report on this socket.
    Socket(BindingId),
    /// The runtime's transmit outcome.
    Transmit,
}

#[derive(Debug)]
struct Outstanding {
    request: RequestId,
    command: Command,
    step: u64,
    waits: Waits,
}

/// What the checks of a step's actions need to know of its input: the kind
/// and the ids they compare against, and nothing else. A copy, so a step
/// neither clones nor drops the input (its payload, a command's parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fed {
    /// A bind command: its socket may open (only) in this step.
    Bind(RequestId),
    /// An unbind command: the binding may close as unbound.
    Unbind(BindingId),
    /// An unsubscribe command: the stream may end as unsubscribed.
    Unsubscribe(SubscriberId),
    /// A shutdown command: closes every binding, answers every bind.
    Shutdown,
    /// The runtime's report that a socket opened.
    SocketOpened(BindingId),
    /// The runtime's report that a socket did not open.
    SocketFailed(BindingId),
    /// The runtime's transmit outcome for a send.
    Transmitted {
        request: RequestId,
        outcome: Result<usize, TransmitError>,
    },
    /// Any other input: no action's check depends on it.
    Other,
}

impl Fed {
    fn of(input: &Input) -> Fed {
        match input {
            Input::Command { request, command } => match command {
                Command::Bind(_) => Fed::Bind(*request),
                Command::Unbind { binding } => Fed::Unbind(*binding),
                Command::Unsubscribe { subscriber } => Fed::Unsubscribe(*subscriber),
                Command::Shutdown => Fed::Shutdown,
                _ => Fed::Other,
            },
            Input::SocketOpened { binding, .. } => Fed::SocketOpened(*binding),
            Input::SocketFailed { binding, .. } => Fed::SocketFailed(*binding),
            Input::Transmitted { request, outcome } => Fed::Transmitted {
                request: *request,
                outcome: *outcome,
            },
            _ => Fed::Other,
        }
    }
}

/// How a live binding was closed, as the checker expects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    Expired,
    Unbound,
    Shutdown,
}

impl Cause {
    fn reason(self) -> CloseReason {
        match self {
            Cause::Expired => CloseReason::Expired,
            Cause::Unbound => CloseReason::Unbound,
            Cause::Shutdown => CloseReason::Shutdown,
        }
    }
}

/// Counts of what happened, kept independently of the engine's counters.
#[derive(Debug, Default)]
struct Tally {
    opened: u64,
    closed: u64,
    dropped_closed: u64,
    dropped_unbound: u64,
    /// The sums over every binding, live or closed.
    datagrams: DatagramTally,
}

/// Checks the invariants of an [`Engine`] from the outside, step by step.
///
/// # The step model
///
/// A step is **exactly one input, then every action the engine emitted after it**
/// (until `poll_action` returned `None`). The checker attributes each action to
/// the input of its step (a reply to the command just fed, a close to the
/// timeout that expired it), so two inputs must not be fed without a full drain
/// in between. That costs a run loop nothing: actions queue inside the engine
/// in order, so draining after every input yields the same actions, in the
/// same order, as draining after a batch; a loop that batches keeps its own
/// queue of actions to carry out.
///
/// So route every input through [`step`](Self::step), which feeds it, drains
/// and checks, and returns the actions for your loop to queue and carry out
/// (an outcome you report while carrying them out is the next step):
///
/// ```text
/// let actions = checker.step(&mut engine, Input::Datagram { binding, src, payload }, now)?;
/// todo.extend(actions);
/// ```
///
/// `core/examples/run_loop.rs` is the crate documentation's run loop over std
/// sockets, checked this way. Or call the hooks yourself, in this order:
/// [`on_input`](Self::on_input) before feeding the input,
/// [`on_action`](Self::on_action) for each action drained, and
/// [`on_drained`](Self::on_drained) once `poll_action` returned `None`. The
/// engine's getters are checked at `on_drained`; `now` may stay or move forward
/// between steps (the checker clamps it like the engine does). At the end of a
/// run, once the runtime has reported every outcome the engine asked for, call
/// [`finish`](Self::finish).
///
/// Checked: no datagram is delivered after its binding closed, nor to a subscriber
/// after its stream ended; every socket reported opened is closed exactly once (and
/// all of them by shutdown); no lease ends before its deadline, and none is alive
/// once `now` has passed it; every received datagram is delivered or counted as
/// dropped, and the engine's counters match what happened; each subscriber gets its
/// datagrams in order with every gap reported as `lagged`, never beyond its credit
/// window; every command gets exactly one reply of its kind, consistent with the
/// bindings' liveness. Flow control: a binding's reads are paused exactly while
/// every subscriber is out of credit with datagrams waiting (unless a pause ran
/// to its limit since they last caught up), each pause and resume comes once,
/// no pause outlasts [`Config::max_read_pause`], and no datagram is fed while
/// its binding's reads are paused (the runtime's side of the contract; see
/// [`allow_reads_while_paused`](Self::allow_reads_while_paused)).
///
/// The first violation is returned as an error; the checker's state after that is
/// unspecified, so stop there.
#[derive(Debug)]
pub struct Checker {
    config: Config,
    wall: WallClock,
    now: Instant,
    step: u64,
    /// The current step's input (`None` between steps).
    input: Option<Fed>,
    // Hash maps with the engine's fixed hasher where the checker only looks
    // entries up: these grow with every binding and subscriber of a run.
    sockets: IdMap<BindingId, Socket>,
    /// Sockets reported opened and not closed yet.
    open_sockets: usize,
    live: IdMap<BindingId, LiveBinding>,
    /// Payload bytes the engine should hold: every live ring plus every
    /// subscriber's events in flight (kept up to date, not summed every step).
    buffered: usize,
    /// No live binding's deadline, nor any paused binding's pause limit, is
    /// earlier (traffic only moves deadlines later, and resumes and closes only
    /// take limits away, so only binds, heartbeats and pauses lower it): the
    /// live and paused bindings are looked at for an overdue lease or pause
    /// only once `now` reaches it.
    next_due: Option<Instant>,
    next_serial: u64,
    subscribers: IdMap<SubscriberId, LiveSubscriber>,
    /// Subscribers whose stream ended or went away, with their binding.
    finished: IdMap<SubscriberId, BindingId>,
    /// Commands waiting for their reply, oldest first. A list: there are few at
    /// once, and a request id may be in flight twice (a duplicate, refused at once).
    outstanding: Vec<Outstanding>,
    /// Bindings closed during the current step, and why (a list: rarely
    /// more than one, and most steps close none).
    closed_now: Vec<(BindingId, Cause)>,
    /// Streams ended during the current step, for the close reason checks.
    ended_now: Vec<(SubscriberId, BindingId, CloseReason)>,
    /// Bindings the current step's input or actions name: the only ones whose
    /// counters it can change, so the only ones checked one by one after it
    /// (the engine-wide sums are checked after every step, every binding at the end).
    touched: Vec<BindingId>,
    tally: Tally,
    shut_down: bool,
    /// Bindings whose reads are paused, with the pause's limit.
    paused: Vec<(BindingId, Instant)>,
    /// Whether a datagram fed for a paused binding is let through.
    reads_while_paused: bool,
    /// Whether the engine pauses reads at all (a non-zero `max_read_pause`).
    pausing: bool,
    /// Whether the current step changed what only the engine-wide counters
    /// show (a socket opened or closed, a datagram for no live binding):
    /// then they are summed and compared, else each touched binding's own.
    engine_wide: bool,
}

impl Checker {
    /// A checker for `engine`, which must be fresh (no input fed yet).
    pub fn new(engine: &Engine) -> Self {
        let now = engine.now();
        Checker {
            config: engine.config().clone(),
            wall: WallClock::new(now, engine.wall_time(now)),
            now,
            step: 0,
            input: None,
            sockets: IdMap::default(),
            open_sockets: 0,
            live: IdMap::default(),
            next_due: None,
            buffered: 0,
            next_serial: 0,
            subscribers: IdMap::default(),
            finished: IdMap::default(),
            outstanding: Vec::new(),
            closed_now: Vec::new(),
            ended_now: Vec::new(),
            touched: Vec::new(),
            tally: Tally::default(),
            shut_down: false,
            paused: Vec::new(),
            reads_while_paused: false,
            pausing: !engine.config().max_read_pause.is_zero(),
            engine_wide: false,
        }
    }

    /// Lets datagrams be fed for a binding whose reads are paused, instead of
    /// reporting [`Violation::ReadWhilePaused`]: for a fuzzer or property test
    /// that feeds datagrams at will, to explore the engine beyond what a
    /// runtime that obeys [`Action::PauseReads`] feeds it. Everything else is
    /// checked as before.
    pub fn allow_reads_while_paused(&mut self) {
        self.reads_while_paused = true;
    }

    /// Feeds `input` to `engine` at `now`, drains and checks every action, and
    /// checks the engine's state. Returns the actions, in order.
    pub fn step(
        &mut self,
        engine: &mut Engine,
        input: Input,
        now: Instant,
    ) -> Result<Vec<Action>, Violation> {
        self.on_input(&input, now)?;
        engine.handle_input(input, now);
        let mut actions = Vec::new();
        while let Some(action) = engine.poll_action() {
            self.on_action(&action)?;
            actions.push(action);
        }
        self.on_drained(engine)?;
        Ok(actions)
    }

    /// The number of steps seen.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Observes an input about to be fed to the engine at `now`. Starts a step.
    pub fn on_input(&mut self, input: &Input, now: Instant) -> Result<(), Violation> {
        if self.input.is_some() {
            self.end_step()?;
        }
        self.now = self.now.max(now);
        self.step += 1;
        let now = self.now;
        self.touched.clear();
        if let Some(binding) = self.named_binding(input) {
            self.touched.push(binding);
        }
        match input {
            Input::Command { request, command } => {
                self.outstanding.push(Outstanding {
                    request: *request,
                    command: command.clone(),
                    step: self.step,
                    waits: Waits::Reply,
                });
            }
            Input::SocketOpened { binding, .. } => {
                if let Some(s @ Socket::Opening) = self.sockets.get_mut(binding) {
                    *s = Socket::Open;
                    self.open_sockets += 1;
                    self.tally.opened += 1;
                    self.engine_wide = true;
                }
            }
            Input::SocketFailed { binding, .. } => {
                if self.sockets.get(binding) == Some(&Socket::Opening) {
                    self.sockets.remove(binding);
                }
            }
            Input::Datagram {
                binding,
                src,
                payload,
            } => match self.live.get_mut(binding) {
                Some(b) if matches!(b.reads, Reads::Paused { .. }) && !self.reads_while_paused => {
                    return Err(Violation::ReadWhilePaused { binding: *binding });
                }
                // A binding past its deadline is closed before the datagram is looked at.
                Some(b) if b.deadline > now => {
                    self.tally.datagrams.received += 1;
                    b.tally.received += 1;
                    if b.renew_on_traffic {
                        b.deadline = now + b.lease.as_duration();
                    }
                    if self.buffered + payload.len() > self.config.max_buffered_bytes {
                        self.tally.datagrams.dropped_memory += 1;
                        b.tally.dropped_memory += 1;
                        // Never numbered: each stream is owed a notice, as for kernel drops.
                        for id in &b.subscribers {
                            if let Some(s) = self.subscribers.get_mut(id) {
                                s.unnumbered_missed = s.unnumbered_missed.saturating_add(1);
                            }
                        }
                    } else {
                        let held = b.ring.bytes();
                        let entry = Entry {
                            src: *src,
                            payload: payload.clone(),
                            received_at: now,
                            delivered: false,
                        };
                        let lost =
                            b.ring
                                .push(entry, self.config.ring_datagrams, self.config.ring_bytes);
                        self.buffered = self.buffered - held + b.ring.bytes();
                        b.pending = b.pending + 1 - lost;
                        self.tally.datagrams.dropped_overflow += lost;
                        b.tally.dropped_overflow += lost;
                    }
                }
                _ => {
                    self.tally.dropped_unbound += 1;
                    self.engine_wide = true;
                }
            },
            Input::KernelDrops { binding, count } => {
                // A binding past its deadline is closed before the drops are looked at.
                if let Some(b) = self.live.get_mut(binding).filter(|b| b.deadline > now) {
                    // A count from the runtime: saturate as the engine does.
                    let kernel = &mut self.tally.datagrams.dropped_kernel;
                    *kernel = kernel.saturating_add(*count);
                    b.tally.dropped_kernel = b.tally.dropped_kernel.saturating_add(*count);
                    for id in &b.subscribers {
                        if let Some(s) = self.subscribers.get_mut(id) {
                            s.unnumbered_missed = s.unnumbered_missed.saturating_add(*count);
                        }
                    }
                }
            }
            Input::SubscriberGone { subscriber } => {
                if let Some(s) = self.subscribers.remove(subscriber) {
                    self.touched.push(s.binding);
                    self.buffered -= s.in_flight.iter().sum::<usize>();
                    self.forget_subscriber(*subscriber, s.binding);
                }
            }
            Input::Credit { subscriber, credit } => {
                if let Some(s) = self.subscribers.get_mut(subscriber) {
                    self.touched.push(s.binding);
                    let written = s.in_flight.len().min(*credit as usize);
                    self.buffered -= s.in_flight.drain(..written).sum::<usize>();
                    s.credit = s
                        .credit
                        .saturating_add(*credit)
                        .min(self.config.delivery_window);
                }
            }
            Input::Transmitted { .. } | Input::SocketError { .. } | Input::Timeout => {}
        }
        self.input = Some(Fed::of(input));
        Ok(())
    }

    /// The binding an input is about, directly or through its subscriber or request.
    fn named_binding(&self, input: &Input) -> Option<BindingId> {
        let of_subscriber = |s: &SubscriberId| self.subscribers.get(s).map(|s| s.binding);
        match input {
            Input::SocketOpened { binding, .. }
            | Input::SocketFailed { binding, .. }
            | Input::Datagram { binding, .. }
            | Input::KernelDrops { binding, .. }
            | Input::SocketError { binding, .. } => Some(*binding),
            // Marked where `on_input` looks the subscriber up anyway.
            Input::SubscriberGone { .. } | Input::Credit { .. } => None,
            Input::Transmitted { request, .. } => self.outstanding.iter().find_map(|o| match o {
                Outstanding {
                    request: r,
                    command: Command::Send { binding, .. },
                    waits: Waits::Transmit,
                    ..
                } if r == request => Some(*binding),
                _ => None,
            }),
            Input::Command { command, .. } => match command {
                Command::Unbind { binding }
                | Command::Send { binding, .. }
                | Command::Heartbeat { binding, .. }
                | Command::IssueTicket { binding } => Some(*binding),
                Command::Subscribe(params) => Some(params.binding),
                Command::Unsubscribe { subscriber } => of_subscriber(subscriber),
                Command::Bind(_) | Command::Status | Command::Shutdown => None,
            },
            Input::Timeout => None,
        }
    }

    /// Observes one action drained from the engine.
    pub fn on_action(&mut self, action: &Action) -> Result<(), Violation> {
        // Deliveries and stream ends touch their subscriber's binding: marked
        // where the subscriber is looked up anyway.
        if let Action::PauseReads { binding } | Action::ResumeReads { binding } = action {
            touch(&mut self.touched, *binding);
        }
        match action {
            Action::OpenSocket { binding, .. } => self.on_open(*binding),
            Action::CloseSocket { binding } => self.on_close(*binding),
            Action::Transmit {
                request,
                binding,
                dest,
                payload,
            } => self.on_transmit(*request, *binding, *dest, payload),
            Action::Deliver { subscriber, event } => self.on_deliver(*subscriber, event),
            Action::EndStream { subscriber, reason } => self.on_end(*subscriber, *reason),
            Action::Reply { request, reply } => self.on_reply(*request, reply),
            Action::PauseReads { binding } => self.on_pause(*binding),
            Action::ResumeReads { binding } => self.on_resume(*binding),
        }
    }

    /// Ends the step: the engine has no more actions. Checks what must hold
    /// between inputs, including the engine's getters and counters.
    pub fn on_drained(&mut self, engine: &Engine) -> Result<(), Violation> {
        if self.input.is_some() {
            self.end_step()?;
        }
        self.check_engine(engine, false)
    }

    /// Ends the run. The runtime must have reported every socket and transmit
    /// outcome the engine asked for: every command must then have its reply.
    pub fn finish(&mut self, engine: &Engine) -> Result<(), Violation> {
        if self.input.is_some() {
            self.end_step()?;
        }
        self.check_engine(engine, true)?;
        if let Some(o) = self.outstanding.first() {
            return Err(Violation::Unanswered {
                request: o.request,
                command: command_name(&o.command),
            });
        }
        Ok(())
    }

    // ----- actions -------------------------------------------------------------

    fn on_open(&mut self, binding: BindingId) -> Result<(), Violation> {
        let step = self.step;
        let Some(Fed::Bind(request)) = self.input else {
            return Err(Violation::UnexpectedOpen { binding });
        };
        let waiting = self
            .outstanding
            .iter_mut()
            .find(|o| o.request == request && o.step == step && o.waits == Waits::Reply);
        match waiting {
            Some(o) if !self.sockets.contains_key(&binding) => {
                o.waits = Waits::Socket(binding);
                self.sockets.insert(binding, Socket::Opening);
                Ok(())
            }
            _ => Err(Violation::UnexpectedOpen { binding }),
        }
    }

    fn on_close(&mut self, binding: BindingId) -> Result<(), Violation> {
        match self.sockets.get_mut(&binding) {
            Some(s @ Socket::Open) => *s = Socket::Closed,
            Some(Socket::Closed) => return Err(Violation::SocketClosedTwice { binding }),
            Some(Socket::Opening) | None => return Err(Violation::UnknownSocketClosed { binding }),
        }
        self.open_sockets -= 1;
        self.tally.closed += 1;
        self.engine_wide = true;
        let Some(b) = self.live.remove(&binding) else {
            // A socket that opened after shutdown cancelled its bind: never live.
            return Ok(());
        };
        self.buffered -= b.ring.bytes();
        if matches!(b.reads, Reads::Paused { .. }) {
            // A closed binding needs no resume.
            self.paused.retain(|(id, _)| *id != binding);
        }
        let cause = if b.deadline <= self.now {
            Cause::Expired
        } else {
            match self.input {
                Some(Fed::Unbind(target)) if target == binding => Cause::Unbound,
                Some(Fed::Shutdown) => Cause::Shutdown,
                _ => {
                    return Err(Violation::LeaseEndedEarly {
                        binding,
                        left: b.deadline - self.now,
                    })
                }
            }
        };
        if let Some(&subscriber) = b.subscribers.first() {
            return Err(Violation::SubscriberNotEnded {
                subscriber,
                binding,
            });
        }
        for &(subscriber, of, reason) in &self.ended_now {
            // Idle timers due earlier fire before the lease in the same step.
            if of == binding && reason != cause.reason() && reason != CloseReason::Idle {
                return Err(Violation::WrongCloseReason { subscriber, reason });
            }
        }
        self.ended_now.retain(|&(_, of, _)| of != binding);
        self.tally.dropped_closed += b.pending;
        self.closed_now.push((binding, cause));
        Ok(())
    }

    fn on_pause(&mut self, binding: BindingId) -> Result<(), Violation> {
        let unexpected = Violation::UnexpectedPause { binding };
        let b = self.live.get(&binding).ok_or(unexpected.clone())?;
        if b.reads != Reads::On || !backlogged(b, &self.subscribers) || !self.pausing {
            return Err(unexpected);
        }
        let until = self.now + self.config.max_read_pause;
        if let Some(b) = self.live.get_mut(&binding) {
            b.reads = Reads::Paused { until };
        }
        self.paused.push((binding, until));
        self.lower_next_due(until);
        Ok(())
    }

    fn on_resume(&mut self, binding: BindingId) -> Result<(), Violation> {
        let unexpected = Violation::UnexpectedResume { binding };
        let b = self.live.get(&binding).ok_or(unexpected.clone())?;
        let Reads::Paused { until } = b.reads else {
            return Err(unexpected);
        };
        let reads = if until <= self.now {
            // The pause ran to its limit.
            Reads::Overrun
        } else if !backlogged(b, &self.subscribers) {
            Reads::On
        } else {
            return Err(unexpected);
        };
        if let Some(b) = self.live.get_mut(&binding) {
            b.reads = reads;
        }
        self.paused.retain(|(id, _)| *id != binding);
        Ok(())
    }

    fn on_transmit(
        &mut self,
        request: RequestId,
        binding: BindingId,
        dest: SocketAddr,
        payload: &Bytes,
    ) -> Result<(), Violation> {
        let step = self.step;
        let asked = self.outstanding.iter_mut().find(|o| {
            o.request == request
                && o.step == step
                && o.waits == Waits::Reply
                && matches!(&o.command, Command::Send { binding: b, dest: d, payload: p }
                    if *b == binding && *d == dest && p == payload)
        });
        let Some(o) = asked else {
            return Err(Violation::UnexpectedTransmit { request });
        };
        o.waits = Waits::Transmit;
        let now = self.now;
        let Some(b) = self.live.get_mut(&binding) else {
            return Err(Violation::LivenessMismatch {
                request,
                binding,
                live: true,
            });
        };
        if b.renew_on_traffic {
            b.deadline = now + b.lease.as_duration();
        }
        Ok(())
    }

    fn on_deliver(&mut self, subscriber: SubscriberId, event: &Event) -> Result<(), Violation> {
        let Some(s) = self.subscribers.get_mut(&subscriber) else {
            return Err(match self.finished.get(&subscriber) {
                Some(&binding) if self.sockets.get(&binding) == Some(&Socket::Closed) => {
                    Violation::DeliverAfterClose {
                        subscriber,
                        binding,
                    }
                }
                Some(_) => Violation::DeliverAfterEnd { subscriber },
                None => Violation::UnknownSubscriber { subscriber },
            });
        };
        touch(&mut self.touched, s.binding);
        if s.credit == 0 {
            return Err(Violation::CreditExceeded {
                subscriber,
                window: self.config.delivery_window,
            });
        }
        s.credit -= 1;
        let bytes = match event {
            Event::Datagram(d) => d.payload.len(),
            Event::Lagged { .. } => 0,
        };
        s.in_flight.push_back(bytes);
        self.buffered += bytes;
        let unreported = |missed| Violation::UnnumberedDropsUnreported { subscriber, missed };
        let d = match event {
            Event::Lagged { missed } => {
                // A notice reports every kernel drop owed; the rest is a gap
                // in the sequence numbers.
                let owed = s.unnumbered_missed;
                let gap = missed.checked_sub(owed).ok_or_else(|| unreported(owed))?;
                s.unnumbered_missed = 0;
                s.lagged = s.lagged.saturating_add(gap);
                return Ok(());
            }
            Event::Datagram(_) if s.unnumbered_missed > 0 => {
                return Err(unreported(s.unnumbered_missed))
            }
            Event::Datagram(d) => d,
        };
        let wrong = || Violation::WrongDatagram {
            subscriber,
            binding: d.binding,
            seq: d.seq.0,
        };
        if d.binding != s.binding {
            return Err(wrong());
        }
        let wall = self.wall;
        let b = self.live.get_mut(&s.binding).ok_or_else(wrong)?;
        let held = b
            .ring
            .get_mut(d.seq.0)
            .filter(|h| {
                h.src == d.src
                    && same_bytes(&h.payload, &d.payload)
                    // The engine holds the receive instant too, and dates
                    // the event on its wall clock only now (so does this).
                    && wall.at(h.received_at) == d.received_at
            })
            .ok_or_else(wrong)?;
        let expected = s.next.saturating_add(s.lagged);
        if d.seq.0 != expected {
            return Err(Violation::SequenceBreak {
                subscriber,
                expected,
                got: d.seq.0,
            });
        }
        s.next = d.seq.0 + 1;
        s.lagged = 0;
        if !held.delivered {
            held.delivered = true;
            b.pending -= 1;
            self.tally.datagrams.delivered += 1;
            b.tally.delivered += 1;
        }
        Ok(())
    }

    fn on_end(&mut self, subscriber: SubscriberId, reason: CloseReason) -> Result<(), Violation> {
        let Some(s) = self.subscribers.remove(&subscriber) else {
            return Err(if self.finished.contains_key(&subscriber) {
                Violation::StreamEndedTwice { subscriber }
            } else {
                Violation::UnknownSubscriber { subscriber }
            });
        };
        touch(&mut self.touched, s.binding);
        self.buffered -= s.in_flight.iter().sum::<usize>();
        let fits = match reason {
            CloseReason::Expired | CloseReason::Unbound | CloseReason::Shutdown => true,
            CloseReason::Idle => s.idle,
            CloseReason::Unsubscribed => self.input == Some(Fed::Unsubscribe(subscriber)),
        };
        if !fits {
            return Err(Violation::WrongCloseReason { subscriber, reason });
        }
        self.forget_subscriber(subscriber, s.binding);
        self.ended_now.push((subscriber, s.binding, reason));
        Ok(())
    }

    fn forget_subscriber(&mut self, subscriber: SubscriberId, binding: BindingId) {
        if let Some(b) = self.live.get_mut(&binding) {
            b.subscribers.retain(|&other| other != subscriber);
        }
        self.finished.insert(subscriber, binding);
    }

    fn on_reply(&mut self, request: RequestId, reply: &Reply) -> Result<(), Violation> {
        let step = self.step;
        let input = self.input;
        // Among the commands this step may answer, the one of the reply's kind:
        // a request id may be in flight twice (a duplicate, refused at once).
        let candidates = || {
            self.outstanding
                .iter()
                .enumerate()
                .filter(|(_, o)| o.request == request && answerable(o, step, input))
        };
        let index = candidates()
            .find(|(_, o)| same_kind(&o.command, reply))
            .or_else(|| candidates().next())
            .map(|(i, _)| i)
            .ok_or(Violation::UnexpectedReply { request })?;
        let o = self.outstanding.remove(index);
        self.check_reply(request, o, reply)
    }

    fn check_reply(
        &mut self,
        request: RequestId,
        o: Outstanding,
        reply: &Reply,
    ) -> Result<(), Violation> {
        let command = command_name(&o.command);
        let wrong = |what: &str| Violation::WrongReply {
            request,
            command,
            reply: what.to_owned(),
        };
        let now = self.now;
        match (&o.command, reply) {
            (Command::Bind(params), Reply::Bind(result)) => {
                let opened = match (self.input, o.waits) {
                    (Some(Fed::SocketOpened(binding)), Waits::Socket(b)) if binding == b => Some(b),
                    _ => None,
                };
                match (result, opened) {
                    (Ok(info), Some(b)) if info.id == b => {
                        let expected = Lease::requested(
                            params.lease_secs,
                            self.config.default_lease,
                            self.config.max_lease,
                        );
                        let deadline = now + expected.as_duration();
                        self.check_lease(b, expected, deadline, info.lease, info.expires_at)?;
                        self.lower_next_due(deadline);
                        self.live.insert(
                            b,
                            LiveBinding {
                                serial: self.next_serial,
                                lease: expected,
                                deadline,
                                renew_on_traffic: params.renew_on_traffic,
                                ring: Ring::with_capacity(self.config.ring_datagrams),
                                pending: 0,
                                subscribers: Vec::new(),
                                reads: Reads::On,
                                tally: DatagramTally::default(),
                            },
                        );
                        self.next_serial += 1;
                        Ok(())
                    }
                    (Ok(_), _) => Err(wrong("bind succeeded without its socket opening")),
                    (Err(BindError::ShuttingDown), None) => Ok(()),
                    (Err(_), Some(_)) => Err(wrong("bind failed although its socket opened")),
                    (Err(_), None) => Ok(()),
                }
            }
            (Command::Unbind { binding }, Reply::Unbind(result)) => {
                let unbound = self.closed_now.contains(&(*binding, Cause::Unbound));
                match result {
                    Ok(id) if id == binding && unbound => Ok(()),
                    Ok(_) => Err(self.liveness(request, *binding, true)),
                    Err(BindingError::NotFound) if !unbound && !self.live.contains_key(binding) => {
                        Ok(())
                    }
                    Err(BindingError::NotFound) => Err(self.liveness(request, *binding, false)),
                }
            }
            (Command::Send { binding, .. }, Reply::Send(result)) => {
                match (o.waits, result) {
                    (Waits::Transmit, result) => match self.input {
                        Some(Fed::Transmitted { outcome, .. })
                            if *result == outcome.map_err(SendError::Transmit) =>
                        {
                            Ok(())
                        }
                        _ => Err(wrong("send reply differs from the transmit outcome")),
                    },
                    (_, Ok(_) | Err(SendError::Transmit(_))) => {
                        Err(wrong("send answered before its transmit outcome"))
                    }
                    (_, Err(SendError::NotFound)) if self.live.contains_key(binding) => {
                        Err(self.liveness(request, *binding, false))
                    }
                    (_, Err(SendError::NotFound | SendError::DuplicateRequest)) => Ok(()),
                    // A refusal by policy: only a live binding gets that far.
                    (_, Err(_)) if !self.live.contains_key(binding) => {
                        Err(self.liveness(request, *binding, true))
                    }
                    (_, Err(_)) => Ok(()),
                }
            }
            (
                Command::Heartbeat {
                    binding,
                    lease_secs,
                },
                Reply::Heartbeat(result),
            ) => match (result, self.live.get(binding)) {
                (Ok(info), Some(b)) if info.id == *binding => {
                    let expected = match lease_secs {
                        Some(_) => Lease::requested(
                            *lease_secs,
                            self.config.default_lease,
                            self.config.max_lease,
                        ),
                        None => b.lease,
                    };
                    let deadline = now + expected.as_duration();
                    self.check_lease(*binding, expected, deadline, info.lease, info.expires_at)?;
                    self.lower_next_due(deadline);
                    if let Some(b) = self.live.get_mut(binding) {
                        b.lease = expected;
                        b.deadline = deadline;
                    }
                    Ok(())
                }
                (Ok(_), _) => Err(self.liveness(request, *binding, true)),
                (Err(BindingError::NotFound), Some(_)) => {
                    Err(self.liveness(request, *binding, false))
                }
                (Err(BindingError::NotFound), None) => Ok(()),
            },
            (Command::Subscribe(params), Reply::Subscribe(result)) => {
                let Some(b) = self.live.get_mut(&params.binding) else {
                    return match result {
                        Err(SubscribeError::NotFound) => Ok(()),
                        _ => Err(self.liveness(request, params.binding, true)),
                    };
                };
                let id = match result {
                    Ok(id) => *id,
                    Err(SubscribeError::NotFound) => {
                        return Err(self.liveness(request, params.binding, false))
                    }
                    Err(SubscribeError::InvalidTicket) => {
                        return if params.ticket.is_some() {
                            Ok(())
                        } else {
                            Err(wrong("a subscribe without a ticket refused for its ticket"))
                        };
                    }
                    Err(SubscribeError::TooManySubscribers { .. }) => {
                        return if b.subscribers.len() >= self.config.max_subscribers_per_binding {
                            Ok(())
                        } else {
                            Err(wrong("too many subscribers below the limit"))
                        };
                    }
                };
                if self.subscribers.contains_key(&id) || self.finished.contains_key(&id) {
                    return Err(Violation::SubscriberReused { subscriber: id });
                }
                let next = match params.resume_after {
                    Some(after) => after.0.saturating_add(1).min(b.ring.next_seq()),
                    None => b.ring.first_undelivered(),
                };
                b.subscribers.push(id);
                self.subscribers.insert(
                    id,
                    LiveSubscriber {
                        binding: params.binding,
                        credit: self.config.delivery_window,
                        in_flight: VecDeque::with_capacity(
                            usize::try_from(self.config.delivery_window)
                                .map_or(PREALLOCATED, |w| w.min(PREALLOCATED)),
                        ),
                        next,
                        lagged: 0,
                        unnumbered_missed: 0,
                        idle: params.idle_timeout.is_some_and(|d| !d.is_zero()),
                    },
                );
                Ok(())
            }
            (Command::Unsubscribe { subscriber }, Reply::Unsubscribe(result)) => {
                let ended = self
                    .ended_now
                    .iter()
                    .any(|&(s, _, reason)| s == *subscriber && reason == CloseReason::Unsubscribed);
                match result {
                    Ok(id) if id == subscriber && ended => Ok(()),
                    Err(UnsubscribeError::NotFound(id))
                        if id == subscriber && !self.subscribers.contains_key(subscriber) =>
                    {
                        Ok(())
                    }
                    _ => Err(wrong(
                        "unsubscribe reply contradicts the subscriber's stream",
                    )),
                }
            }
            (Command::Status, Reply::Status(list)) => {
                let mut live: Vec<(u64, BindingId)> =
                    self.live.iter().map(|(id, b)| (b.serial, *id)).collect();
                live.sort_unstable();
                if list
                    .iter()
                    .map(|info| info.id)
                    .eq(live.iter().map(|(_, id)| *id))
                {
                    Ok(())
                } else {
                    Err(wrong(
                        "status does not list exactly the live bindings, oldest first",
                    ))
                }
            }
            (Command::Shutdown, Reply::Shutdown) => {
                self.shut_down = true;
                Ok(())
            }
            (Command::IssueTicket { binding }, Reply::Ticket(result)) => {
                let live = self.live.contains_key(binding);
                let lifetime = self.config.ticket_lifetime;
                match result {
                    Ok(t) if live => {
                        if t.binding == *binding
                            && t.lifetime == lifetime
                            && t.expires_at == self.wall.at(now + lifetime)
                        {
                            Ok(())
                        } else {
                            Err(wrong("a ticket for another binding or lifetime"))
                        }
                    }
                    Ok(_) => Err(self.liveness(request, *binding, true)),
                    Err(TicketError::NotFound) if live => {
                        Err(self.liveness(request, *binding, false))
                    }
                    Err(TicketError::NotFound) => Ok(()),
                    // Unused tickets are not modelled; the limit is the subscriber limit.
                    Err(TicketError::TooManyTickets { max })
                        if live && *max == self.config.max_subscribers_per_binding =>
                    {
                        Ok(())
                    }
                    Err(TicketError::TooManyTickets { .. }) => Err(wrong(
                        "too many tickets, with another limit or for a binding not live",
                    )),
                }
            }
            _ => Err(wrong(reply_name(reply))),
        }
    }

    fn check_lease(
        &self,
        binding: BindingId,
        expected: Lease,
        deadline: Instant,
        got: Lease,
        got_expiry: SystemTime,
    ) -> Result<(), Violation> {
        let expected_expiry = self.wall.at(deadline);
        if got == expected && got_expiry == expected_expiry {
            Ok(())
        } else {
            Err(Violation::LeaseMismatch {
                binding,
                expected,
                got,
                expected_expiry,
                got_expiry,
            })
        }
    }

    fn lower_next_due(&mut self, at: Instant) {
        self.next_due = Some(self.next_due.map_or(at, |e| e.min(at)));
    }

    fn liveness(&self, request: RequestId, binding: BindingId, live: bool) -> Violation {
        Violation::LivenessMismatch {
            request,
            binding,
            live,
        }
    }

    // ----- between steps -------------------------------------------------------

    /// What must hold once a step's actions are drained, from the actions alone.
    fn end_step(&mut self) -> Result<(), Violation> {
        let step = self.step;
        let input = self.input.take();
        if let Some(o) = self.outstanding.iter().find(|o| answerable(o, step, input)) {
            return Err(Violation::Unanswered {
                request: o.request,
                command: command_name(&o.command),
            });
        }
        if let Some(&(subscriber, _, reason)) = self.ended_now.iter().find(|(_, _, reason)| {
            matches!(
                reason,
                CloseReason::Expired | CloseReason::Unbound | CloseReason::Shutdown
            )
        }) {
            // The binding's close (which clears these) did not follow.
            return Err(Violation::WrongCloseReason { subscriber, reason });
        }
        self.ended_now.clear();
        self.closed_now.clear();
        if self.shut_down && self.open_sockets > 0 {
            if let Some((&binding, _)) = self.sockets.iter().find(|(_, s)| **s == Socket::Open) {
                return Err(Violation::SocketLeaked { binding });
            }
        }
        Ok(())
    }

    /// The engine's getters and counters against what its actions imply.
    /// `buffered` summed from scratch, to check the running total at the end.
    fn buffered_sum(&self) -> usize {
        let rings: usize = self.live.values().map(|b| b.ring.bytes()).sum();
        let in_flight: usize = self
            .subscribers
            .values()
            .flat_map(|s| s.in_flight.iter())
            .sum();
        rings + in_flight
    }

    /// A live binding's reads and counters, once a step is drained (a binding
    /// not live any more is skipped: its close was checked, and the engine-wide
    /// sums keep what it counted).
    ///
    /// Reads against its subscribers: paused while they are all behind, unless
    /// a pause already ran out since they last caught up; not paused otherwise.
    /// Counters: balanced, and each equal to this checker's count for it.
    fn check_binding(&mut self, engine: &Engine, binding: BindingId) -> Result<(), Violation> {
        let pausing = self.pausing;
        let Some(b) = self.live.get_mut(&binding) else {
            return Ok(());
        };
        match (b.reads, backlogged(b, &self.subscribers)) {
            (Reads::On, true) if pausing => return Err(Violation::MissedPause { binding }),
            (Reads::Paused { .. }, false) => return Err(Violation::MissedResume { binding }),
            (Reads::Overrun, false) => b.reads = Reads::On,
            _ => {}
        }
        let Some(c) = engine.binding_counters(&binding) else {
            return Err(self.bindings_mismatch(engine));
        };
        let balanced =
            c.received == c.delivered + c.dropped_overflow + c.dropped_memory + c.pending;
        // One comparison of all the counts; which one differs is only worked
        // out (below) when one does.
        if balanced && b.tally.same(datagram_counts!(c)) && b.pending == c.pending {
            return Ok(());
        }
        if !balanced {
            return Err(Violation::BindingCountersUnbalanced {
                binding,
                counters: Box::new(c),
            });
        }
        same_counts(b.tally.against(datagram_counts!(c)))?;
        same_counts([("pending", c.pending, b.pending)])
    }

    fn bindings_mismatch(&self, engine: &Engine) -> Violation {
        Violation::BindingsMismatch {
            engine: engine.binding_count(),
            expected: self.live.len(),
        }
    }

    /// `every_binding`: each live binding's counters, not only the touched ones'.
    fn check_engine(&mut self, engine: &Engine, every_binding: bool) -> Result<(), Violation> {
        if self.next_due.is_some_and(|at| at <= self.now) {
            self.next_due = None;
            for (&binding, b) in &self.live {
                if b.deadline <= self.now {
                    return Err(Violation::LeaseOverdue {
                        binding,
                        overdue: self.now - b.deadline,
                    });
                }
                self.next_due = Some(self.next_due.map_or(b.deadline, |e| e.min(b.deadline)));
            }
            for &(binding, until) in &self.paused {
                if until <= self.now {
                    return Err(Violation::PauseOverdue {
                        binding,
                        overdue: self.now - until,
                    });
                }
                self.next_due = Some(self.next_due.map_or(until, |e| e.min(until)));
            }
        }
        if engine.binding_count() != self.live.len() {
            return Err(self.bindings_mismatch(engine));
        }
        if every_binding {
            let every: Vec<BindingId> = self.live.keys().copied().collect();
            for binding in every {
                self.check_binding(engine, binding)?;
            }
        } else {
            // By index: `check_binding` needs `self` mutably, and this list
            // does not change meanwhile.
            for i in 0..self.touched.len() {
                self.check_binding(engine, self.touched[i])?;
            }
        }
        if engine.subscriber_count() != self.subscribers.len() {
            return Err(Violation::SubscribersMismatch {
                engine: engine.subscriber_count(),
                expected: self.subscribers.len(),
            });
        }
        let buffered = if every_binding {
            self.buffered_sum()
        } else {
            self.buffered
        };
        if engine.buffered_bytes() != buffered {
            return Err(Violation::CounterMismatch {
                counter: "buffered_bytes",
                engine: engine.buffered_bytes() as u64,
                expected: buffered as u64,
            });
        }
        // The touched bindings' counters are checked above and the others'
        // have not changed: the engine-wide sums (over every live binding)
        // can only differ after an open, a close or a datagram for no live
        // binding, and at the end.
        if !(self.engine_wide || every_binding) {
            return Ok(());
        }
        self.engine_wide = false;
        let c = engine.counters();
        if c.received
            != c.delivered + c.dropped_overflow + c.dropped_memory + c.dropped_closed + c.pending
        {
            return Err(Violation::CountersUnbalanced {
                counters: Box::new(c),
            });
        }
        let t = &self.tally;
        let d = &t.datagrams;
        // What was received and neither delivered nor dropped still waits.
        let pending = d
            .received
            .wrapping_sub(d.delivered)
            .wrapping_sub(d.dropped_overflow)
            .wrapping_sub(d.dropped_memory)
            .wrapping_sub(t.dropped_closed);
        let others = [
            ("bindings_opened", c.bindings_opened, t.opened),
            ("bindings_closed", c.bindings_closed, t.closed),
            ("dropped_closed", c.dropped_closed, t.dropped_closed),
            ("dropped_unbound", c.dropped_unbound, t.dropped_unbound),
            ("pending", c.pending, pending),
        ];
        // All at once; which one differs is only worked out when one does.
        if d.same(datagram_counts!(c)) && others.iter().all(|(_, e, x)| e == x) {
            return Ok(());
        }
        same_counts(d.against(datagram_counts!(c)))?;
        same_counts(others)
    }
}

/// Whether `a` and `b` hold the same bytes. A delivery usually hands on the
/// very buffer that was fed: then the contents need no comparing.
fn same_bytes(a: &Bytes, b: &Bytes) -> bool {
    a.len() == b.len() && (a.as_ptr() == b.as_ptr() || a == b)
}

/// Marks `binding` as touched by the current step, once.
fn touch(touched: &mut Vec<BindingId>, binding: BindingId) {
    if !touched.contains(&binding) {
        touched.push(binding);
    }
}

/// Whether every subscriber of `b` is out of credit with datagrams waiting:
/// when the engine must pause its reads.
fn backlogged(b: &LiveBinding, subscribers: &IdMap<SubscriberId, LiveSubscriber>) -> bool {
    b.pending > 0
        && !b.subscribers.is_empty()
        && b.subscribers
            .iter()
            .all(|id| subscribers.get(id).is_none_or(|s| s.credit == 0))
}

impl DatagramTally {
    /// Whether the engine's counts (from [`datagram_counts!`]) are these: one
    /// comparison each (an array comparison would call `memcmp`).
    fn same(&self, engine: [u64; 5]) -> bool {
        let [received, delivered, dropped_overflow, dropped_memory, dropped_kernel] = engine;
        self.received == received
            && self.delivered == delivered
            && self.dropped_overflow == dropped_overflow
            && self.dropped_memory == dropped_memory
            && self.dropped_kernel == dropped_kernel
    }

    /// The engine's counts (from [`datagram_counts!`]) next to these, named,
    /// for [`same_counts`].
    fn against(&self, engine: [u64; 5]) -> [(&'static str, u64, u64); 5] {
        let [received, delivered, dropped_overflow, dropped_memory, dropped_kernel] = engine;
        [
            ("received", received, self.received),
            ("delivered", delivered, self.delivered),
            ("dropped_overflow", dropped_overflow, self.dropped_overflow),
            ("dropped_memory", dropped_memory, self.dropped_memory),
            ("dropped_kernel", dropped_kernel, self.dropped_kernel),
        ]
    }
}

/// Each `(counter, engine's value, expected value)` agrees, or the first that does not.
fn same_counts<const N: usize>(counts: [(&'static str, u64, u64); N]) -> Result<(), Violation> {
    for (counter, engine, expected) in counts {
        if engine != expected {
            return Err(Violation::CounterMismatch {
                counter,
                engine,
                expected,
            });
        }
    }
    Ok(())
}

/// Whether `o` may be answered in this step: fed in it, or waiting for the
/// outcome this step's input reports (or cancelled by this step's shutdown).
fn answerable(o: &Outstanding, step: u64, input: Option<Fed>) -> bool {
    match (o.waits, input) {
        (Waits::Reply, _) => o.step == step,
        (Waits::Socket(b), Some(Fed::SocketOpened(binding) | Fed::SocketFailed(binding))) => {
            b == binding
        }
        (Waits::Socket(_), Some(Fed::Shutdown)) => true,
        (Waits::Transmit, Some(Fed::Transmitted { request, .. })) => request == o.request,
        _ => false,
    }
}

/// Whether `reply` is the kind of answer `command` gets.
fn same_kind(command: &Command, reply: &Reply) -> bool {
    matches!(
        (command, reply),
        (Command::Bind(_), Reply::Bind(_))
            | (Command::Unbind { .. }, Reply::Unbind(_))
            | (Command::Send { .. }, Reply::Send(_))
            | (Command::Heartbeat { .. }, Reply::Heartbeat(_))
            | (Command::Subscribe(_), Reply::Subscribe(_))
            | (Command::Unsubscribe { .. }, Reply::Unsubscribe(_))
            | (Command::IssueTicket { .. }, Reply::Ticket(_))
            | (Command::Status, Reply::Status(_))
            | (Command::Shutdown, Reply::Shutdown)
    )
}

/// The command's name, for messages.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Bind(_) => "bind",
        Command::Unbind { .. } => "unbind",
        Command::Send { .. } => "send",
        Command::Heartbeat { .. } => "heartbeat",
        Command::Subscribe(_) => "subscribe",
        Command::Unsubscribe { .. } => "unsubscribe",
        Command::IssueTicket { .. } => "issue ticket",
        Command::Status => "status",
        Command::Shutdown => "shutdown",
    }
}

/// The reply's kind, for messages.
fn reply_name(reply: &Reply) -> &'static str {
    match reply {
        Reply::Bind(_) => "a bind reply",
        Reply::Unbind(_) => "an unbind reply",
        Reply::Send(_) => "a send reply",
        Reply::Heartbeat(_) => "a heartbeat reply",
        Reply::Subscribe(_) => "a subscribe reply",
        Reply::Unsubscribe(_) => "an unsubscribe reply",
        Reply::Ticket(_) => "a ticket reply",
        Reply::Status(_) => "a status reply",
        Reply::Shutdown => "a shutdown reply",
    }
}
