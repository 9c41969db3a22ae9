//! Scripted runs: an explicit list of operations, instead of seeded clients,
//! played against an engine with small limits and checked at every step.
//!
//! A [`Script`] is [`Limits`] and a list of [`Op`]s. It decodes from any bytes
//! (with `arbitrary`), which is what the `engine` fuzz target and the stable
//! replay of its corpus (`core/tests/fuzz_corpus.rs`) both call: one decoder,
//! one runner. Ops name bindings, subscribers, tickets and requests by index
//! into the ones the run has seen so far (live, opening or already gone),
//! rather than by random id, so short scripts reach deep states: full rings,
//! spent credit, leases expiring with subscribers attached, outcomes that race
//! a close, reused request ids and tickets.
//!
//! The run uses the simulation's parts: every input goes through
//! [`Checker::step`], sockets live on the simulated host (port 0 gets an
//! ephemeral port, a taken port is `AddrInUse`), time is a [`SimClock`] and
//! everything is recorded in a [`Trace`]. Unlike [`Simulation`](super::Simulation),
//! nothing is random and every outcome is the script's choice, including the
//! ones a correct runtime never reports (outcomes for sockets or transmits the
//! engine did not ask for, a `now` in the past, datagrams fed while the
//! engine has paused the binding's reads, so the checker runs with
//! [`Checker::allow_reads_while_paused`]; it still checks every pause and
//! resume against credit and the pause limit). On top of the checker it
//! checks what a runtime relies on: it is never asked to open or send where the
//! policy forbids, the getters agree with the sockets, and waking at
//! `poll_timeout` is never late for a lease. At the end it shuts the engine
//! down, reports every outstanding outcome and checks that nothing is left.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;

use super::host::Host;
use super::{Checker, Record, SimClock, Trace};
use crate::{
    Action, BindParams, BindingId, Command, Config, Engine, Input, Lease, OpenError, ReceiveError,
    Reply, RequestId, Seq, SubscribeParams, SubscriberId, Ticket, TransmitError, WallClock,
};

/// Most ops decoded from one input: enough for deep states, few enough to stay fast.
pub const MAX_OPS: usize = 512;

/// Engine limits for one run, kept small so every limit is hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub struct Limits {
    /// `max_bindings`: 1 + this % 4.
    pub max_bindings: u8,
    /// `max_subscribers_per_binding` (and so the unused tickets a binding may
    /// hold): 1 + this % 3.
    pub max_subscribers: u8,
    /// `ring_datagrams`: 1 + this % 6.
    pub ring_datagrams: u8,
    /// `ring_bytes`: this % 128.
    pub ring_bytes: u8,
    /// `delivery_window`: 1 + this % 4.
    pub window: u8,
    /// `default_lease`: 1 + this % 10 seconds.
    pub default_lease: u8,
    /// `max_lease`: 10 + this % 60 seconds.
    pub max_lease: u8,
    /// `allow_remote`.
    pub allow_remote: bool,
    /// `max_payload`: this % 64 bytes.
    pub max_payload: u8,
    /// `ticket_lifetime`: 1 + this % 8 seconds.
    pub ticket_lifetime: u8,
}

impl Limits {
    /// The engine configuration: every limit between 1 and a handful.
    pub fn config(self) -> Config {
        Config {
            max_bindings: usize::from(self.max_bindings % 4) + 1,
            max_subscribers_per_binding: usize::from(self.max_subscribers % 3) + 1,
            ring_datagrams: usize::from(self.ring_datagrams % 6) + 1,
            ring_bytes: usize::from(self.ring_bytes % 128),
            delivery_window: u32::from(self.window % 4) + 1,
            default_lease: Lease::from_secs(u64::from(self.default_lease % 10) + 1),
            // At least the default lease, which a valid config needs.
            max_lease: Lease::from_secs(u64::from(self.max_lease % 60) + 10),
            allow_remote: self.allow_remote,
            max_payload: usize::from(self.max_payload % 64),
            // Small enough that a few bindings reach it: exercises memory drops.
            max_buffered_bytes: usize::from(self.ring_bytes) * 2 + 1,
            ticket_lifetime: Duration::from_secs(u64::from(self.ticket_lifetime % 8) + 1),
            ..Config::default()
        }
    }
}

/// A bind address a client might ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)]
pub enum BindAddr {
    Loopback4,
    Loopback6,
    MappedLoopback,
    Unspecified4,
    Unspecified6,
    Remote4,
    Multicast4,
    Broadcast4,
}

impl BindAddr {
    fn ip(self) -> IpAddr {
        match self {
            BindAddr::Loopback4 => Ipv4Addr::LOCALHOST.into(),
            BindAddr::Loopback6 => Ipv6Addr::LOCALHOST.into(),
            BindAddr::MappedLoopback => Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(),
            BindAddr::Unspecified4 => Ipv4Addr::UNSPECIFIED.into(),
            BindAddr::Unspecified6 => Ipv6Addr::UNSPECIFIED.into(),
            BindAddr::Remote4 => Ipv4Addr::new(192, 0, 2, 1).into(),
            BindAddr::Multicast4 => Ipv4Addr::new(224, 0, 0, 251).into(),
            BindAddr::Broadcast4 => Ipv4Addr::BROADCAST.into(),
        }
    }
}

/// A destination a client might send to (nothing is ever sent: the runtime is simulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)]
pub enum Dest {
    Loopback4,
    Loopback6,
    MappedLoopback,
    Remote4,
    Remote6,
    Unspecified4,
    Unspecified6,
    Multicast4,
    Multicast6,
    Broadcast4,
    ZeroPort,
}

impl Dest {
    fn addr(self) -> SocketAddr {
        let ip: IpAddr = match self {
            Dest::Loopback4 | Dest::ZeroPort => Ipv4Addr::LOCALHOST.into(),
            Dest::Loopback6 => Ipv6Addr::LOCALHOST.into(),
            Dest::MappedLoopback => Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(),
            Dest::Remote4 => Ipv4Addr::new(192, 0, 2, 7).into(),
            Dest::Remote6 => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7).into(),
            Dest::Unspecified4 => Ipv4Addr::UNSPECIFIED.into(),
            Dest::Unspecified6 => Ipv6Addr::UNSPECIFIED.into(),
            Dest::Multicast4 => Ipv4Addr::new(224, 0, 0, 251).into(),
            Dest::Multicast6 => Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).into(),
            Dest::Broadcast4 => Ipv4Addr::BROADCAST.into(),
        };
        let port = if matches!(self, Dest::ZeroPort) { 0 } else { 9 };
        SocketAddr::new(ip, port)
    }
}

/// Why a socket failed to open (each [`OpenError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)]
pub enum OpenFailure {
    AddrInUse,
    PermissionDenied,
    OutOfDescriptors,
    AddrNotAvailable,
    Other,
}

impl From<OpenFailure> for OpenError {
    fn from(f: OpenFailure) -> Self {
        match f {
            OpenFailure::AddrInUse => OpenError::AddrInUse,
            OpenFailure::PermissionDenied => OpenError::PermissionDenied,
            OpenFailure::OutOfDescriptors => OpenError::OutOfDescriptors,
            OpenFailure::AddrNotAvailable => OpenError::AddrNotAvailable,
            OpenFailure::Other => OpenError::Other(std::io::ErrorKind::Other),
        }
    }
}

/// Why a transmit or receive failed (each [`TransmitError`] and [`ReceiveError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)]
pub enum IoFailure {
    ConnectionRefused,
    Unreachable,
    NoRoute,
    NoBuffers,
    PermissionDenied,
    Other,
}

impl From<IoFailure> for ReceiveError {
    fn from(f: IoFailure) -> Self {
        match f {
            IoFailure::ConnectionRefused => ReceiveError::ConnectionRefused,
            IoFailure::Unreachable | IoFailure::NoRoute => ReceiveError::Unreachable,
            IoFailure::NoBuffers => ReceiveError::Other(std::io::ErrorKind::WouldBlock),
            IoFailure::PermissionDenied => {
                ReceiveError::Other(std::io::ErrorKind::PermissionDenied)
            }
            IoFailure::Other => ReceiveError::Other(std::io::ErrorKind::Other),
        }
    }
}

impl From<IoFailure> for TransmitError {
    fn from(f: IoFailure) -> Self {
        match f {
            IoFailure::ConnectionRefused => TransmitError::ConnectionRefused,
            IoFailure::Unreachable => TransmitError::Unreachable,
            IoFailure::NoRoute => TransmitError::NoRoute,
            IoFailure::NoBuffers => TransmitError::NoBuffers,
            IoFailure::PermissionDenied => TransmitError::PermissionDenied,
            IoFailure::Other => TransmitError::Other(std::io::ErrorKind::Other),
        }
    }
}

/// An index into the things of one kind the run has seen (modulo their number);
/// 255 names one that never existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub struct Pick(pub u8);

impl Pick {
    fn from<T: Copy>(self, seen: &[T]) -> Option<T> {
        if self.0 == u8::MAX || seen.is_empty() {
            return None;
        }
        seen.get(usize::from(self.0) % seen.len()).copied()
    }
}

/// One step of a script.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Op {
    /// `Command::Bind`. `reuse` re-sends a request id still in flight.
    Bind {
        /// Address.
        addr: BindAddr,
        /// Port: 0, or a fixed one.
        fixed_port: bool,
        /// Requested lease, seconds (255: `u64::MAX`).
        lease_secs: Option<u8>,
        /// `allow_remote`.
        allow_remote: bool,
        /// `renew_on_traffic`.
        renew_on_traffic: bool,
        /// Reuse an in-flight request id.
        reuse: Option<Pick>,
    },
    /// `Command::Unbind`.
    Unbind(Pick),
    /// `Command::Send`.
    Send {
        /// Binding.
        binding: Pick,
        /// Destination.
        dest: Dest,
        /// Payload length (the limit is at most 63 bytes, so both sides of it are reached).
        len: u8,
        /// Reuse an in-flight request id.
        reuse: Option<Pick>,
    },
    /// `Command::Heartbeat`.
    Heartbeat {
        /// Binding.
        binding: Pick,
        /// New lease, seconds (255: `u64::MAX`).
        lease_secs: Option<u8>,
    },
    /// `Command::Subscribe`.
    Subscribe {
        /// Binding.
        binding: Pick,
        /// `Last-Event-ID` (255: `u64::MAX`).
        resume_after: Option<u8>,
        /// `idle_for`, seconds (255: `u64::MAX`).
        idle_secs: Option<u8>,
        /// A ticket issued in this run (maybe used, expired or for another
        /// binding), or with 255 one never issued.
        ticket: Option<Pick>,
    },
    /// `Command::Unsubscribe`.
    Unsubscribe(Pick),
    /// `Command::IssueTicket`.
    IssueTicket(Pick),
    /// `Command::Status`.
    Status,
    /// `Command::Shutdown`.
    Shutdown,
    /// The runtime opens a socket it was asked for, on the simulated host (a
    /// taken port fails), or reports one it was not asked for as opened.
    SocketOpened(Pick),
    /// The runtime failed to open a socket.
    SocketFailed {
        /// Which requested socket.
        opening: Pick,
        /// Why.
        error: OpenFailure,
    },
    /// A datagram arrived on a binding's socket (live or not).
    Datagram {
        /// Binding.
        binding: Pick,
        /// Payload length.
        len: u8,
        /// From a remote peer rather than loopback.
        remote: bool,
    },
    /// The kernel reports datagrams it dropped on a binding's socket.
    KernelDrops {
        /// Binding.
        binding: Pick,
        /// Datagrams dropped (255: `u64::MAX`).
        count: u8,
    },
    /// The runtime's outcome for a transmit.
    Transmitted {
        /// Which transmit (in flight or not).
        request: Pick,
        /// Bytes sent, or why not.
        outcome: Result<u8, IoFailure>,
    },
    /// A receive error on a binding's socket.
    SocketError {
        /// Binding.
        binding: Pick,
        /// Error.
        error: IoFailure,
    },
    /// A subscriber's client went away.
    SubscriberGone(Pick),
    /// The runtime wrote some of a subscriber's events.
    Credit {
        /// Subscriber.
        subscriber: Pick,
        /// Credit returned.
        credit: u8,
    },
    /// Time passes by `millis`, then `Input::Timeout`.
    Wait {
        /// Milliseconds.
        millis: u16,
    },
    /// Time jumps to the engine's next deadline exactly, then `Input::Timeout`.
    WaitForTimeout,
    /// `Input::Timeout` with a time earlier than the engine's (it must clamp).
    Rewind {
        /// Milliseconds back.
        millis: u16,
    },
}

/// A complete scripted run: the engine's limits and the ops, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The engine's limits.
    pub limits: Limits,
    /// The ops, in order.
    pub ops: Vec<Op>,
}

impl Script {
    /// Decodes the limits and as many ops as `data` holds (at most
    /// [`MAX_OPS`]); `None` if it is too short for the limits. Any bytes
    /// decode: this is the fuzz input format.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let mut u = Unstructured::new(data);
        let limits = Limits::arbitrary(&mut u).ok()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            match Op::arbitrary(&mut u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Some(Script { limits, ops })
    }

    /// Runs the script from `epoch`, checking every step, and returns the
    /// trace of every input and action (times are offsets from `epoch` and
    /// timestamps use a fixed anchor, so the trace does not depend on it).
    ///
    /// # Panics
    ///
    /// At the first broken invariant, with the [`Violation`](super::Violation) (or the runtime
    /// check that failed) and the trace's last records: this is a test
    /// harness, and panicking is how a fuzz target reports.
    pub fn run(&self, epoch: Instant) -> Trace {
        let mut run = Run::new(self.limits.config(), epoch);
        for op in &self.ops {
            run.op(op);
        }
        run.finish();
        run.trace
    }
}

/// A socket the engine asked for and the script has not reported on yet.
#[derive(Debug, Clone, Copy)]
struct Opening {
    binding: BindingId,
    addr: SocketAddr,
}

/// What the script's ops refer to, and the simulated host they act on.
struct Run {
    engine: Engine,
    checker: Checker,
    config: Config,
    clock: SimClock,
    host: Host,
    trace: Trace,
    /// Every binding id the engine ever asked to open, in order.
    ids: Vec<BindingId>,
    /// Sockets asked for and not reported, with the bind request each answers
    /// (a client may reuse its id while it is in flight).
    opening: Vec<(Opening, RequestId)>,
    /// Transmits asked for and not reported: request and payload length.
    transmits: Vec<(RequestId, usize)>,
    /// Every request id used, in order (outcomes for stale ones are fed too).
    requests: Vec<RequestId>,
    /// Every subscriber id the engine handed out.
    subscribers: Vec<SubscriberId>,
    /// Every ticket the engine issued.
    tickets: Vec<Ticket>,
    next_request: u64,
}

/// Enough descriptors that only the script's own `SocketFailed` runs out of them.
const FD_LIMIT: usize = 64;

impl Run {
    fn new(config: Config, epoch: Instant) -> Self {
        let wall = WallClock::new(epoch, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let engine = Engine::new(config.clone(), [7; 32], wall)
            .unwrap_or_else(|e| panic!("script limits make an invalid config: {e}"));
        let mut checker = Checker::new(&engine);
        // Ops feed datagrams at will, paused or not: beyond what a runtime
        // that obeys PauseReads feeds (the simulation covers that one).
        checker.allow_reads_while_paused();
        Run {
            checker,
            engine,
            config,
            clock: SimClock::new(epoch),
            host: Host::new(FD_LIMIT),
            trace: Trace::new(),
            ids: Vec::new(),
            opening: Vec::new(),
            transmits: Vec::new(),
            requests: Vec::new(),
            subscribers: Vec::new(),
            tickets: Vec::new(),
            next_request: 1,
        }
    }

    /// A binding id: one the run has seen, or one that never existed.
    fn binding(&self, pick: Pick) -> BindingId {
        pick.from(&self.ids).unwrap_or_else(never_bound)
    }

    fn subscriber(&self, pick: Pick) -> SubscriberId {
        pick.from(&self.subscribers)
            .unwrap_or(SubscriberId(u64::MAX))
    }

    /// A fresh request id, or (when asked and possible) one still waiting for an outcome.
    fn request(&mut self, reuse: Option<Pick>) -> RequestId {
        let waiting: Vec<RequestId> = (self.opening.iter().map(|&(_, r)| r))
            .chain(self.transmits.iter().map(|&(r, _)| r))
            .collect();
        if let Some(id) = reuse.and_then(|p| p.from(&waiting)) {
            return id;
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.push(id);
        id
    }

    fn command(&mut self, reuse: Option<Pick>, command: Command) {
        let request = self.request(reuse);
        self.feed(Input::Command { request, command });
    }

    /// One step at the clock's time.
    fn feed(&mut self, input: Input) {
        let now = self.clock.now();
        self.feed_at(input, now);
    }

    /// One step: the checker feeds the input and checks every action, then the
    /// runtime carries them out and checks what it relies on.
    fn feed_at(&mut self, input: Input, now: Instant) {
        let request = match &input {
            Input::Command { request, .. } => Some(*request),
            _ => None,
        };
        self.trace.push(Record::Input {
            at: self.clock.elapsed(),
            input: input.clone(),
        });
        let actions = self.checker.step(&mut self.engine, input, now);
        let actions = actions.unwrap_or_else(|v| self.violated(&v));
        for action in actions {
            self.carry_out(&action, request);
            self.trace.push(Record::Action(action));
        }
        self.check_getters();
    }

    fn violated(&self, violation: &dyn std::fmt::Display) -> ! {
        panic!("{violation}\nlast records:\n{}", self.trace.tail(16));
    }

    fn op(&mut self, op: &Op) {
        match *op {
            Op::Bind {
                addr,
                fixed_port,
                lease_secs,
                allow_remote,
                renew_on_traffic,
                reuse,
            } => {
                let params = BindParams {
                    addr: SocketAddr::new(addr.ip(), if fixed_port { 40_000 } else { 0 }),
                    lease_secs: lease_secs.map(wide),
                    allow_remote,
                    renew_on_traffic,
                };
                self.command(reuse, Command::Bind(params));
            }
            Op::Unbind(pick) => {
                let binding = self.binding(pick);
                self.command(None, Command::Unbind { binding });
            }
            Op::Send {
                binding,
                dest,
                len,
                reuse,
            } => {
                let command = Command::Send {
                    binding: self.binding(binding),
                    dest: dest.addr(),
                    payload: payload(usize::from(len % 80), 0x5e),
                };
                self.command(reuse, command);
            }
            Op::Heartbeat {
                binding,
                lease_secs,
            } => {
                let command = Command::Heartbeat {
                    binding: self.binding(binding),
                    lease_secs: lease_secs.map(wide),
                };
                self.command(None, command);
            }
            Op::Subscribe {
                binding,
                resume_after,
                idle_secs,
                ticket,
            } => {
                let params = SubscribeParams {
                    binding: self.binding(binding),
                    resume_after: resume_after.map(|s| Seq(wide(s))),
                    idle_timeout: idle_secs.map(|s| Duration::from_secs(wide(s))),
                    ticket: ticket.map(|p| p.from(&self.tickets).unwrap_or_else(never_issued)),
                };
                self.command(None, Command::Subscribe(params));
            }
            Op::Unsubscribe(pick) => {
                let subscriber = self.subscriber(pick);
                self.command(None, Command::Unsubscribe { subscriber });
            }
            Op::IssueTicket(pick) => {
                let binding = self.binding(pick);
                self.command(None, Command::IssueTicket { binding });
            }
            Op::Status => self.command(None, Command::Status),
            Op::Shutdown => self.command(None, Command::Shutdown),
            Op::SocketOpened(pick) => {
                let input = match self.take_opening(pick) {
                    Some(o) => match self.host.open(o.binding, o.addr) {
                        Ok(local_addr) => Input::SocketOpened {
                            binding: o.binding,
                            local_addr,
                        },
                        Err(error) => Input::SocketFailed {
                            binding: o.binding,
                            error,
                        },
                    },
                    // An outcome for a socket the engine did not ask for (a runtime bug): ignored.
                    None => Input::SocketOpened {
                        binding: self.binding(pick),
                        local_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                    },
                };
                self.feed(input);
            }
            Op::SocketFailed { opening, error } => {
                let binding = match self.take_opening(opening) {
                    Some(o) => o.binding,
                    None => self.binding(opening),
                };
                let error = error.into();
                self.feed(Input::SocketFailed { binding, error });
            }
            Op::Datagram {
                binding,
                len,
                remote,
            } => {
                let src = if remote {
                    SocketAddr::from(([192, 0, 2, 9], 5000))
                } else {
                    SocketAddr::from(([127, 0, 0, 1], 5000))
                };
                self.feed(Input::Datagram {
                    binding: self.binding(binding),
                    src,
                    payload: payload(usize::from(len % 48), len),
                });
            }
            Op::KernelDrops { binding, count } => {
                let binding = self.binding(binding);
                let count = wide(count);
                self.feed(Input::KernelDrops { binding, count });
            }
            Op::Transmitted { request, outcome } => {
                let waiting: Vec<RequestId> = self.transmits.iter().map(|&(r, _)| r).collect();
                // Mostly outcomes the engine asked for; sometimes a stale or unknown one.
                let request = match request.from(&waiting) {
                    Some(r) if request.0 % 8 != 7 => r,
                    _ => request.from(&self.requests).unwrap_or(RequestId(0)),
                };
                self.transmits.retain(|&(r, _)| r != request);
                let outcome = match outcome {
                    Ok(n) => Ok(usize::from(n)),
                    Err(e) => Err(e.into()),
                };
                self.feed(Input::Transmitted { request, outcome });
            }
            Op::SocketError { binding, error } => {
                let binding = self.binding(binding);
                let error = error.into();
                self.feed(Input::SocketError { binding, error });
            }
            Op::SubscriberGone(pick) => {
                let subscriber = self.subscriber(pick);
                self.feed(Input::SubscriberGone { subscriber });
            }
            Op::Credit { subscriber, credit } => {
                let subscriber = self.subscriber(subscriber);
                let credit = u32::from(credit);
                self.feed(Input::Credit { subscriber, credit });
            }
            Op::Wait { millis } => {
                let later = self.clock.elapsed() + Duration::from_millis(u64::from(millis));
                self.clock.advance_to(later);
                self.feed(Input::Timeout);
            }
            Op::WaitForTimeout => {
                if let Some(at) = self.engine.poll_timeout() {
                    self.clock.advance_to(self.clock.offset(at));
                }
                self.feed(Input::Timeout);
            }
            Op::Rewind { millis } => {
                // A late report stamped before the engine's time: the engine clamps it.
                let now = self.clock.now();
                let earlier = now
                    .checked_sub(Duration::from_millis(u64::from(millis)))
                    .unwrap_or(now);
                self.feed_at(Input::Timeout, earlier);
            }
        }
    }

    /// Removes and returns the picked socket the engine is waiting on, if any.
    fn take_opening(&mut self, pick: Pick) -> Option<Opening> {
        if pick.0 == u8::MAX || self.opening.is_empty() {
            return None;
        }
        let i = usize::from(pick.0) % self.opening.len();
        Some(self.opening.remove(i).0)
    }

    /// Carries out one action on the simulated host, checking what a runtime
    /// relies on: it is never asked to open or send where the policy forbids.
    fn carry_out(&mut self, action: &Action, request: Option<RequestId>) {
        match action {
            Action::OpenSocket { binding, addr } => {
                if !self.config.allow_remote && !addr.ip().to_canonical().is_loopback() {
                    self.violated(&format!(
                        "asked to open non-loopback {addr} on a loopback-only server"
                    ));
                }
                // The checker has made sure a bind command asked for it.
                let request = request.unwrap_or(RequestId(0));
                self.ids.push(*binding);
                let opening = Opening {
                    binding: *binding,
                    addr: *addr,
                };
                self.opening.push((opening, request));
            }
            Action::CloseSocket { binding } => {
                self.host.close(*binding);
            }
            Action::Transmit {
                request,
                binding,
                dest,
                payload,
            } => {
                if let Some(problem) = self.forbidden_transmit(*binding, *dest, payload.len()) {
                    self.violated(&format!("transmit to {dest} on {binding}: {problem}"));
                }
                self.transmits.push((*request, payload.len()));
            }
            Action::Reply {
                reply: Reply::Subscribe(Ok(id)),
                ..
            } => self.subscribers.push(*id),
            Action::Reply {
                reply: Reply::Ticket(Ok(issued)),
                ..
            } => self.tickets.push(issued.ticket),
            Action::Deliver { .. }
            | Action::EndStream { .. }
            | Action::Reply { .. }
            | Action::PauseReads { .. }
            | Action::ResumeReads { .. } => {}
        }
    }

    /// Why the runtime must not carry out this transmit, if it must not.
    fn forbidden_transmit(
        &self,
        binding: BindingId,
        dest: SocketAddr,
        len: usize,
    ) -> Option<&'static str> {
        let ip = dest.ip().to_canonical();
        let Some(local) = self.host.addr_of(binding) else {
            return Some("the socket is not open");
        };
        if dest.port() == 0
            || ip.is_unspecified()
            || ip.is_multicast()
            || ip == IpAddr::V4(Ipv4Addr::BROADCAST)
        {
            Some("never a valid destination")
        } else if local.is_ipv4() != dest.is_ipv4() {
            Some("another address family than the socket's")
        } else if !self.config.allow_remote && !ip.is_loopback() {
            Some("non-loopback on a loopback-only server")
        } else if len > self.config.max_payload {
            Some("payload over the limit")
        } else {
            None
        }
    }

    /// Checks, between steps, what the runtime relies on beyond the checker:
    /// the getters agree with the host's sockets, and waking at `poll_timeout`
    /// is never late for a lease.
    fn check_getters(&self) {
        let e = &self.engine;
        let fail = |what: &str| self.violated(&what);
        if e.opening_count() != self.opening.len() {
            fail("sockets being opened: the engine and the runtime disagree");
        }
        let all = e.bindings();
        if all
            .windows(2)
            .any(|pair| pair[0].created_at > pair[1].created_at)
        {
            fail("bindings not listed oldest first");
        }
        for info in &all {
            if self.host.addr_of(info.id) != Some(info.local_addr) {
                fail("a live binding's address is not its open socket's");
            }
            if e.binding(&info.id).as_ref() != Some(info) {
                fail("bindings() and binding() disagree");
            }
        }
        if let Some(deadline) = all.iter().map(|b| b.expires_at).min() {
            match e.poll_timeout() {
                Some(wake) if e.wall_time(wake) <= deadline => {}
                Some(_) => fail("poll_timeout wakes after a lease deadline"),
                None => fail("live bindings, but no poll_timeout"),
            }
        }
    }

    /// Shuts down, reports every outstanding outcome, and checks that everything
    /// was answered and closed exactly once.
    fn finish(&mut self) {
        self.op(&Op::Shutdown);
        let mut fail = false;
        while !self.opening.is_empty() {
            // Alternate the two outcomes a runtime can report for a cancelled bind.
            fail = !fail;
            self.op(&if fail {
                Op::SocketFailed {
                    opening: Pick(0),
                    error: OpenFailure::AddrInUse,
                }
            } else {
                Op::SocketOpened(Pick(0))
            });
        }
        while !self.transmits.is_empty() {
            let (request, len) = self.transmits.remove(0);
            let outcome = Ok(len);
            self.feed(Input::Transmitted { request, outcome });
        }
        if let Err(v) = self.checker.finish(&self.engine) {
            self.violated(&v);
        }
        if self.engine.subscriber_count() != 0 {
            self.violated(&"streams never ended");
        }
        if self.engine.poll_timeout().is_some() {
            self.violated(&"a timer outlived everything");
        }
    }
}

/// A client-chosen number: small, or (for 255) the largest a client can send,
/// which must be clamped or refused rather than overflow a deadline or a cursor.
fn wide(v: u8) -> u64 {
    if v == u8::MAX {
        u64::MAX
    } else {
        u64::from(v)
    }
}

/// A payload of `len` bytes.
fn payload(len: usize, fill: u8) -> Bytes {
    Bytes::from(vec![fill; len])
}

/// An id no engine handed out (its random bits are all zero).
fn never_bound() -> BindingId {
    let mut bytes = [0; 16];
    bytes[6] = 0x40;
    bytes[8] = 0x80;
    BindingId::from_bytes(bytes).unwrap_or_else(|| unreachable!("v4 version and variant bits"))
}

/// A ticket no engine issued (all zero bits).
fn never_issued() -> Ticket {
    "00000000000000000000000000000000"
        .parse()
        .unwrap_or_else(|_| unreachable!("32 hex digits are a ticket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_decodes_from_any_bytes_and_runs_the_same_twice() {
        for data in [
            &[][..],
            &[0; 9],
            &[0xff; 64],
            b"any bytes at all, decoded as ops",
        ] {
            super::super::fuzz::engine(data, Instant::now());
        }
    }

    #[test]
    fn a_lease_expiring_under_a_subscriber_with_a_ticket_is_checked() {
        let script = Script {
            limits: Limits {
                max_bindings: 0,
                max_subscribers: 1,
                ring_datagrams: 1,
                ring_bytes: 100,
                window: 0,
                default_lease: 1,
                max_lease: 0,
                allow_remote: false,
                max_payload: 63,
                ticket_lifetime: 3,
            },
            ops: vec![
                Op::Bind {
                    addr: BindAddr::Loopback4,
                    fixed_port: false,
                    lease_secs: None,
                    allow_remote: false,
                    renew_on_traffic: false,
                    reuse: None,
                },
                Op::SocketOpened(Pick(0)),
                Op::IssueTicket(Pick(0)),
                Op::Subscribe {
                    binding: Pick(0),
                    resume_after: None,
                    idle_secs: None,
                    ticket: Some(Pick(0)),
                },
                Op::Datagram {
                    binding: Pick(0),
                    len: 5,
                    remote: false,
                },
                Op::KernelDrops {
                    binding: Pick(0),
                    count: 2,
                },
                // The datagram took the window of 1; writing it frees room for the notice.
                Op::Credit {
                    subscriber: Pick(0),
                    credit: 1,
                },
                Op::WaitForTimeout,
            ],
        };
        let trace = script.run(Instant::now());
        let text = trace.to_string();
        assert!(text.contains("Ticket(Ok("), "{text}");
        assert!(text.contains("Subscribe(Ok("), "{text}");
        assert!(text.contains("Lagged { missed: 2 }"), "{text}");
        assert!(text.contains("reason: Expired"), "{text}");
    }
}
