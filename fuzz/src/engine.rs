//! The `engine` target: arbitrary sequences of commands, I/O outcomes and time
//! steps fed to an [`Engine`] with small limits, checked after every step.
//!
//! The input decodes (with `arbitrary`) into [`Limits`] and a list of [`Op`]s.
//! Ops name bindings, subscribers and requests by index into the ones the run
//! has seen so far (live, opening or already gone), rather than by random id,
//! so short inputs reach deep states: full rings, spent credit, leases expiring
//! with subscribers attached, outcomes that race a close, reused request ids.
//!
//! Every input and action goes through porthole-core's [`Checker`] (the same
//! invariants as the simulation and the model test: no delivery after close,
//! every socket closed exactly once, leases end exactly at their deadline, every
//! datagram delivered or counted, one reply per command, credit respected). A
//! simulated runtime adds what it relies on when it acts: it is never asked to
//! open or send where the policy forbids, and waking at `poll_timeout` is never
//! late for a lease. At the end it shuts the engine down, reports every
//! outstanding outcome and checks that nothing is left. The whole run is then
//! repeated and must produce the same actions, byte for byte.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use porthole_core::sim::{Checker, Violation};
use porthole_core::{
    Action, BindParams, BindingId, Command, Config, Engine, Input, Lease, OpenError, ReceiveError,
    Reply, RequestId, Seq, SubscribeParams, SubscriberId, TransmitError, WallClock,
};

/// Most ops run from one input: enough for deep states, few enough to stay fast.
const MAX_OPS: usize = 512;

/// Engine limits for one run, kept small so every limit is hit.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Limits {
    /// `max_bindings`: 1 + this % 4.
    pub max_bindings: u8,
    /// `max_subscribers_per_binding`: 1 + this % 3.
    pub max_subscribers: u8,
    /// `ring_datagrams`: 1 + this % 6.
    pub ring_datagrams: u8,
    /// `ring_bytes`: this % 128.
    pub ring_bytes: u8,
    /// `delivery_window`: 1 + this % 4.
    pub window: u8,
    /// `default_lease`: 1 + this % 10 seconds.
    pub default_lease: u8,
    /// `max_lease`: 1 + this % 60 seconds.
    pub max_lease: u8,
    /// `allow_remote`.
    pub allow_remote: bool,
    /// `max_payload`: this % 64 bytes.
    pub max_payload: u8,
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
            ..Config::default()
        }
    }
}

/// A bind address a client might ask for.
#[derive(Debug, Clone, Copy, Arbitrary)]
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
#[derive(Debug, Clone, Copy, Arbitrary)]
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

/// Why a socket failed to open (mirrors [`OpenError`]).
#[derive(Debug, Clone, Copy, Arbitrary)]
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

/// Why a transmit or receive failed (mirrors [`TransmitError`] and [`ReceiveError`]).
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum IoFailure {
    ConnectionRefused,
    Unreachable,
    NoBuffers,
    PermissionDenied,
    Other,
}

impl From<IoFailure> for ReceiveError {
    fn from(f: IoFailure) -> Self {
        match f {
            IoFailure::ConnectionRefused => ReceiveError::ConnectionRefused,
            IoFailure::Unreachable => ReceiveError::Unreachable,
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
            IoFailure::NoBuffers => TransmitError::NoBuffers,
            IoFailure::PermissionDenied => TransmitError::PermissionDenied,
            IoFailure::Other => TransmitError::Other(std::io::ErrorKind::Other),
        }
    }
}

/// An index into the things of one kind the run has seen (modulo their number);
/// 255 names one that never existed.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Pick(pub u8);

impl Pick {
    fn from<T: Copy>(self, seen: &[T]) -> Option<T> {
        if self.0 == u8::MAX || seen.is_empty() {
            return None;
        }
        seen.get(usize::from(self.0) % seen.len()).copied()
    }
}

/// One step of a run.
#[derive(Debug, Clone, Arbitrary)]
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
    },
    /// `Command::Unsubscribe`.
    Unsubscribe(Pick),
    /// `Command::Status`.
    Status,
    /// `Command::Shutdown`.
    Shutdown,
    /// The runtime opened a socket it was asked for (or one it was not).
    SocketOpened {
        /// Which requested socket.
        opening: Pick,
        /// Port the OS chose if the bind asked for 0.
        port: u16,
    },
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
    /// Time passes by `millis`, then `handle_timeout`.
    Wait {
        /// Milliseconds.
        millis: u16,
    },
    /// Time jumps to the engine's next deadline exactly, then `handle_timeout`.
    WaitForTimeout,
    /// `handle_timeout` with a time earlier than the engine's (it must clamp).
    Rewind {
        /// Milliseconds back.
        millis: u16,
    },
}

/// A complete fuzz input.
#[derive(Debug, Clone)]
pub struct Script {
    /// The engine's limits.
    pub limits: Limits,
    /// The ops, in order.
    pub ops: Vec<Op>,
}

impl Script {
    /// Decodes as many ops as the data holds (at most [`MAX_OPS`]).
    pub fn decode(data: &[u8]) -> arbitrary::Result<Self> {
        let mut u = Unstructured::new(data);
        let limits = Limits::arbitrary(&mut u)?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::arbitrary(&mut u)?);
        }
        Ok(Script { limits, ops })
    }
}

/// Runs one input twice and checks both runs produce the same actions.
pub fn run(data: &[u8]) {
    let Ok(script) = Script::decode(data) else {
        return;
    };
    let first = execute(&script);
    let second = execute(&script);
    assert!(first == second, "same inputs, different actions");
}

/// Runs a script to completion, checking every step; returns every action.
pub fn execute(script: &Script) -> Vec<Action> {
    let mut rt = Runtime::new(script.limits.config());
    for op in &script.ops {
        rt.step(op);
    }
    rt.finish();
    rt.trace
}

/// A socket the engine asked for and the runtime has not reported on yet.
#[derive(Debug, Clone, Copy)]
struct Opening {
    binding: BindingId,
    addr: SocketAddr,
    /// The bind command it answers (a client may reuse its id while it is in flight).
    request: RequestId,
}

/// A simulated runtime: carries out actions in its books only, and has every
/// input and action checked by [`Checker`] (the engine's contract) and by its own
/// runtime-side checks (what it relies on when it acts).
struct Runtime {
    engine: Engine,
    checker: Checker,
    config: Config,
    now: Instant,
    /// Every binding id the engine ever asked to open, in order.
    ids: Vec<BindingId>,
    /// Sockets asked for and not reported.
    opening: Vec<Opening>,
    /// Sockets reported opened and not closed, with their local address.
    open: BTreeMap<BindingId, SocketAddr>,
    /// Transmits asked for and not reported: request and payload length.
    transmits: Vec<(RequestId, usize)>,
    /// Every request id used, in order (outcomes for stale ones are fed too).
    requests: Vec<RequestId>,
    /// Every subscriber id the engine handed out.
    subscribers: Vec<SubscriberId>,
    /// The request of the command being fed, if the input is one.
    current: Option<RequestId>,
    next_request: u64,
    /// Every action, for the determinism check.
    trace: Vec<Action>,
}

/// The wall-clock anchor: a fixed date, so every run shows the same timestamps.
fn anchor(now: Instant) -> WallClock {
    WallClock::new(now, UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

impl Runtime {
    fn new(config: Config) -> Self {
        let now = Instant::now();
        let engine = Engine::new(config.clone(), [7; 32], anchor(now))
            .expect("fuzz limits are a valid config");
        let mut checker = Checker::new(&engine);
        // Fuzz input feeds datagrams at will, paused or not.
        checker.allow_reads_while_paused();
        Runtime {
            engine,
            checker,
            config,
            now,
            ids: Vec::new(),
            opening: Vec::new(),
            open: BTreeMap::new(),
            transmits: Vec::new(),
            requests: Vec::new(),
            subscribers: Vec::new(),
            current: None,
            next_request: 1,
            trace: Vec::new(),
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
        let waiting: Vec<RequestId> = (self.opening.iter().map(|o| o.request))
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
        self.current = Some(request);
        self.feed(Input::Command { request, command });
        self.current = None;
    }

    /// Feeds one input through the checker, carries out and checks every action.
    fn feed(&mut self, input: Input) {
        let now = self.now;
        let checked = self.checker.on_input(&input, now);
        self.violated(checked);
        self.engine.handle_input(input, now);
        while let Some(action) = self.engine.poll_action() {
            let checked = self.checker.on_action(&action);
            self.violated(checked);
            self.carry_out(&action);
            self.trace.push(action);
        }
        let checked = self.checker.on_drained(&self.engine);
        self.violated(checked);
        self.check_state();
    }

    fn violated(&self, checked: Result<(), Violation>) {
        if let Err(v) = checked {
            let tail = self.trace.len().saturating_sub(12);
            panic!("{v}\nlast actions: {:#?}", &self.trace[tail..]);
        }
    }

    fn step(&mut self, op: &Op) {
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
            } => {
                let params = SubscribeParams {
                    binding: self.binding(binding),
                    resume_after: resume_after.map(|s| Seq(wide(s))),
                    idle_timeout: idle_secs.map(|s| Duration::from_secs(wide(s))),
                    ticket: None,
                };
                self.command(None, Command::Subscribe(params));
            }
            Op::Unsubscribe(pick) => {
                let subscriber = self.subscriber(pick);
                self.command(None, Command::Unsubscribe { subscriber });
            }
            Op::Status => self.command(None, Command::Status),
            Op::Shutdown => self.command(None, Command::Shutdown),
            Op::SocketOpened { opening, port } => {
                let input = match self.take_opening(opening) {
                    Some(o) => {
                        let port = if o.addr.port() == 0 {
                            port.max(1)
                        } else {
                            o.addr.port()
                        };
                        let local_addr = SocketAddr::new(o.addr.ip(), port);
                        self.open.insert(o.binding, local_addr);
                        Input::SocketOpened {
                            binding: o.binding,
                            local_addr,
                        }
                    }
                    // An outcome for a socket the engine did not ask for (a runtime bug): ignored.
                    None => Input::SocketOpened {
                        binding: self.binding(opening),
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
                self.now += Duration::from_millis(u64::from(millis));
                self.feed(Input::Timeout);
            }
            Op::WaitForTimeout => {
                if let Some(at) = self.engine.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.feed(Input::Timeout);
            }
            Op::Rewind { millis } => {
                // A late report stamped before the engine's time: the engine clamps it.
                let now = self.now;
                self.now = now
                    .checked_sub(Duration::from_millis(u64::from(millis)))
                    .unwrap_or(now);
                self.feed(Input::Timeout);
                self.now = now;
            }
        }
    }

    /// Removes and returns the picked socket the engine is waiting on, if any.
    fn take_opening(&mut self, pick: Pick) -> Option<Opening> {
        if pick.0 == u8::MAX || self.opening.is_empty() {
            return None;
        }
        let i = usize::from(pick.0) % self.opening.len();
        Some(self.opening.remove(i))
    }

    /// Carries out one action in the runtime's books, checking what the runtime
    /// relies on: it never opens or sends where the policy forbids.
    fn carry_out(&mut self, action: &Action) {
        match action {
            Action::OpenSocket { binding, addr } => {
                assert!(
                    self.config.allow_remote || addr.ip().to_canonical().is_loopback(),
                    "asked to open non-loopback {addr} on a loopback-only server"
                );
                let request = self.current.expect("OpenSocket answers a bind command");
                self.ids.push(*binding);
                self.opening.push(Opening {
                    binding: *binding,
                    addr: *addr,
                    request,
                });
            }
            Action::CloseSocket { binding } => {
                self.open.remove(binding);
            }
            Action::Transmit {
                request,
                binding,
                dest,
                payload,
            } => {
                let local = self.open.get(binding).copied();
                let local = local.unwrap_or_else(|| panic!("transmit on {binding}, not open"));
                let ip = dest.ip().to_canonical();
                assert!(
                    dest.port() != 0
                        && !ip.is_unspecified()
                        && !ip.is_multicast()
                        && ip != IpAddr::V4(Ipv4Addr::BROADCAST),
                    "asked to send to forbidden {dest}"
                );
                assert_eq!(
                    local.is_ipv4(),
                    dest.is_ipv4(),
                    "{local} cannot reach {dest}"
                );
                assert!(
                    self.config.allow_remote || ip.is_loopback(),
                    "asked to send to non-loopback {dest} on a loopback-only server"
                );
                assert!(
                    payload.len() <= self.config.max_payload,
                    "payload over the limit"
                );
                self.transmits.push((*request, payload.len()));
            }
            Action::Reply {
                reply: Reply::Subscribe(Ok(id)),
                ..
            } => self.subscribers.push(*id),
            Action::Deliver { .. }
            | Action::EndStream { .. }
            | Action::Reply { .. }
            | Action::PauseReads { .. }
            | Action::ResumeReads { .. } => {}
        }
    }

    /// Checks, between steps, what the runtime relies on beyond the checker:
    /// waking at `poll_timeout` is never late for a lease, and the getters agree.
    fn check_state(&self) {
        let e = &self.engine;
        assert_eq!(
            e.opening_count(),
            self.opening.len(),
            "sockets being opened"
        );
        let all = e.bindings();
        assert_eq!(
            all.len(),
            self.open.len(),
            "live bindings are the open sockets"
        );
        for pair in all.windows(2) {
            assert!(
                pair[0].created_at <= pair[1].created_at,
                "bindings not oldest first"
            );
        }
        for info in &all {
            assert_eq!(self.open.get(&info.id), Some(&info.local_addr));
            assert_eq!(e.binding(&info.id).as_ref(), Some(info), "getters disagree");
        }
        if let Some(deadline) = all.iter().map(|b| b.expires_at).min() {
            let wake = e.poll_timeout().expect("live bindings, but no timeout");
            assert!(
                e.wall_time(wake) <= deadline,
                "wakes after a lease deadline"
            );
        }
    }

    /// Shuts down, reports every outstanding outcome, and checks that everything
    /// was answered and closed exactly once.
    fn finish(&mut self) {
        self.step(&Op::Shutdown);
        let mut fail = false;
        while !self.opening.is_empty() {
            // Alternate the two outcomes a runtime can report for a cancelled bind.
            fail = !fail;
            self.step(&if fail {
                Op::SocketFailed {
                    opening: Pick(0),
                    error: OpenFailure::AddrInUse,
                }
            } else {
                Op::SocketOpened {
                    opening: Pick(0),
                    port: 1,
                }
            });
        }
        while let Some(&(request, len)) = self.transmits.first() {
            self.transmits.remove(0);
            let outcome = Ok(len);
            self.feed(Input::Transmitted { request, outcome });
        }
        let checked = self.checker.finish(&self.engine);
        self.violated(checked);
        assert!(self.open.is_empty(), "sockets never closed");
        assert_eq!(self.engine.subscriber_count(), 0, "streams never ended");
        assert_eq!(
            self.engine.poll_timeout(),
            None,
            "a timer outlived everything"
        );
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
    BindingId::from_bytes(bytes).expect("v4 version and variant bits are set")
}
