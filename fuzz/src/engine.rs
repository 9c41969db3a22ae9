//! The `engine` target: arbitrary sequences of commands, I/O outcomes and time
//! steps fed to an [`Engine`] with small limits, checked after every step.
//!
//! The input decodes (with `arbitrary`) into a [`Limits`] and a list of [`Op`]s.
//! Ops name bindings, subscribers and requests by index into the ones the run
//! has seen so far (live, opening or already gone), rather than by random id,
//! so short inputs reach deep states: full rings, spent credit, leases expiring
//! with subscribers attached, outcomes that race a close.
//!
//! [`Runtime`] plays the part of a runtime: it carries out actions (in its
//! books only) and checks each one as it comes out, the way a real runtime
//! would rely on it. After every step it also checks the engine's state against
//! its books. At the end it shuts the engine down, reports every outstanding
//! outcome, and checks that everything was answered and closed exactly once.
//! The whole run is then repeated and must produce the same actions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use porthole_core::{
    Action, BindError, BindParams, BindingId, CloseReason, Command, Config, Engine, Event, Lease,
    OpenError, Reply, RequestId, SendError, Seq, SubscribeParams, SubscriberId, TransmitError,
    WallClock,
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
            max_lease: Lease::from_secs(u64::from(self.max_lease % 60) + 1),
            allow_remote: self.allow_remote,
            max_payload: usize::from(self.max_payload % 64),
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

/// Why a transmit or receive failed (mirrors [`TransmitError`]).
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum IoFailure {
    ConnectionRefused,
    Unreachable,
    NoBuffers,
    PermissionDenied,
    Other,
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
        /// Requested lease.
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
        /// New lease.
        lease_secs: Option<u8>,
    },
    /// `Command::Subscribe`.
    Subscribe {
        /// Binding.
        binding: Pick,
        /// `Last-Event-ID`.
        resume_after: Option<u8>,
        /// `idle_for`, seconds.
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

/// What a command in flight expects as its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Bind {
        addr: SocketAddr,
    },
    Unbind(Option<BindingId>),
    Send {
        binding: Option<BindingId>,
    },
    Heartbeat,
    Subscribe {
        binding: Option<BindingId>,
        idle: bool,
    },
    Unsubscribe,
    Status,
    Shutdown,
}

/// A subscriber as the runtime sees its stream.
#[derive(Debug, Clone)]
struct Stream {
    binding: BindingId,
    /// Events delivered and not credited back yet.
    in_flight: u32,
    /// The sequence number the next datagram must carry, once one was seen.
    next_seq: Option<u64>,
    /// Datagrams announced missed by `lagged` and not yet skipped over.
    lagged: u64,
    idle: bool,
}

/// A binding's state the runtime remembers between steps.
#[derive(Debug, Clone, Copy)]
struct Open {
    local: SocketAddr,
    /// `expires_at` as the engine showed it after the last step.
    expires_at: SystemTime,
}

/// A simulated runtime: carries out actions in its books, checks each one, and
/// checks the engine against its books after every step.
struct Runtime {
    engine: Engine,
    config: Config,
    now: Instant,
    /// Every binding id the engine ever asked to open, in order.
    ids: Vec<BindingId>,
    /// Sockets asked for and not reported: id and address.
    opening: Vec<(BindingId, SocketAddr)>,
    /// Sockets reported opened and not closed.
    open: BTreeMap<BindingId, Open>,
    /// Sockets reported opened after their bind was answered (shutdown): must close at once.
    cancelled: BTreeSet<BindingId>,
    /// Transmits asked for and not reported.
    transmits: Vec<(RequestId, usize)>,
    /// Every request id used, in order (outcomes for stale ones are fed too).
    requests: Vec<RequestId>,
    /// Every subscriber id the engine handed out.
    subscribers: Vec<SubscriberId>,
    /// Live streams.
    streams: BTreeMap<SubscriberId, Stream>,
    /// Replies owed, by request id (several when a client reuses an id).
    owed: BTreeMap<RequestId, Vec<Expect>>,
    next_request: u64,
    shut_down: bool,
    /// Bindings this step closed on a client's command (unbind or shutdown).
    closing_by_command: BTreeSet<BindingId>,
    /// Live bindings as they were before this step.
    last_seen: BTreeMap<BindingId, Open>,
    /// Transmit outcomes reported this step, which the send replies must carry.
    reported: BTreeMap<RequestId, Result<usize, TransmitError>>,
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
        Runtime {
            engine,
            config,
            now,
            ids: Vec::new(),
            opening: Vec::new(),
            open: BTreeMap::new(),
            cancelled: BTreeSet::new(),
            transmits: Vec::new(),
            requests: Vec::new(),
            subscribers: Vec::new(),
            streams: BTreeMap::new(),
            owed: BTreeMap::new(),
            next_request: 1,
            shut_down: false,
            closing_by_command: BTreeSet::new(),
            last_seen: BTreeMap::new(),
            reported: BTreeMap::new(),
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

    /// A fresh request id, or (when asked and possible) one still in flight.
    fn request(&mut self, reuse: Option<Pick>) -> RequestId {
        let in_flight: Vec<RequestId> = self.owed.keys().copied().collect();
        if let Some(id) = reuse.and_then(|p| p.from(&in_flight)) {
            return id;
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.push(id);
        id
    }

    fn command(&mut self, request: RequestId, command: Command, expect: Expect) {
        self.owed.entry(request).or_default().push(expect);
        self.engine.handle_command(request, command, self.now);
    }

    fn step(&mut self, op: &Op) {
        self.closing_by_command.clear();
        self.reported.clear();
        self.last_seen = self.open.clone();
        match *op {
            Op::Bind {
                addr,
                fixed_port,
                lease_secs,
                allow_remote,
                renew_on_traffic,
                reuse,
            } => {
                let addr = SocketAddr::new(addr.ip(), if fixed_port { 40_000 } else { 0 });
                let request = self.request(reuse);
                let params = BindParams {
                    addr,
                    lease_secs: lease_secs.map(u64::from),
                    allow_remote,
                    renew_on_traffic,
                };
                self.command(request, Command::Bind(params), Expect::Bind { addr });
            }
            Op::Unbind(pick) => {
                let binding = self.binding(pick);
                let live = self.open.contains_key(&binding).then_some(binding);
                let request = self.request(None);
                self.command(request, Command::Unbind { binding }, Expect::Unbind(live));
            }
            Op::Send {
                binding,
                dest,
                len,
                reuse,
            } => {
                let binding = self.binding(binding);
                let request = self.request(reuse);
                let live = self.open.contains_key(&binding).then_some(binding);
                let command = Command::Send {
                    binding,
                    dest: dest.addr(),
                    payload: payload(usize::from(len % 80), 0x5e),
                };
                self.command(request, command, Expect::Send { binding: live });
            }
            Op::Heartbeat {
                binding,
                lease_secs,
            } => {
                let binding = self.binding(binding);
                let request = self.request(None);
                let command = Command::Heartbeat {
                    binding,
                    lease_secs: lease_secs.map(u64::from),
                };
                self.command(request, command, Expect::Heartbeat);
            }
            Op::Subscribe {
                binding,
                resume_after,
                idle_secs,
            } => {
                let binding = self.binding(binding);
                let live = self.open.contains_key(&binding).then_some(binding);
                let request = self.request(None);
                let params = SubscribeParams {
                    binding,
                    resume_after: resume_after.map(|s| Seq(u64::from(s))),
                    idle_timeout: idle_secs.map(|s| Duration::from_secs(u64::from(s))),
                };
                let idle = idle_secs.is_some_and(|s| s > 0);
                self.command(
                    request,
                    Command::Subscribe(params),
                    Expect::Subscribe {
                        binding: live,
                        idle,
                    },
                );
            }
            Op::Unsubscribe(pick) => {
                let subscriber = self.subscriber(pick);
                let request = self.request(None);
                self.command(
                    request,
                    Command::Unsubscribe { subscriber },
                    Expect::Unsubscribe,
                );
            }
            Op::Status => {
                let request = self.request(None);
                self.command(request, Command::Status, Expect::Status);
            }
            Op::Shutdown => {
                self.shut_down = true;
                self.closing_by_command.extend(self.open.keys().copied());
                let request = self.request(None);
                self.command(request, Command::Shutdown, Expect::Shutdown);
            }
            Op::SocketOpened { opening, port } => self.socket_opened(opening, port),
            Op::SocketFailed { opening, error } => self.socket_failed(opening, error.into()),
            Op::Datagram {
                binding,
                len,
                remote,
            } => {
                let binding = self.binding(binding);
                let src = if remote {
                    SocketAddr::from(([192, 0, 2, 9], 5000))
                } else {
                    SocketAddr::from(([127, 0, 0, 1], 5000))
                };
                let payload = payload(usize::from(len % 48), len);
                self.engine.handle_datagram(binding, src, payload, self.now);
            }
            Op::Transmitted { request, outcome } => {
                let in_flight: Vec<RequestId> = self.transmits.iter().map(|&(r, _)| r).collect();
                // Mostly outcomes the engine asked for; sometimes a stale or unknown one.
                let request = match request.from(&in_flight) {
                    Some(r) if request.0 % 8 != 7 => r,
                    _ => request.from(&self.requests).unwrap_or(RequestId(0)),
                };
                let outcome = match outcome {
                    Ok(n) => Ok(usize::from(n)),
                    Err(e) => Err(e.into()),
                };
                self.transmitted(request, outcome);
            }
            Op::SocketError { binding, error } => {
                let binding = self.binding(binding);
                self.engine
                    .handle_socket_error(binding, error.into(), self.now);
            }
            Op::SubscriberGone(pick) => {
                let subscriber = self.subscriber(pick);
                self.streams.remove(&subscriber);
                self.engine.handle_subscriber_gone(subscriber, self.now);
            }
            Op::Credit { subscriber, credit } => {
                let subscriber = self.subscriber(subscriber);
                if let Some(s) = self.streams.get_mut(&subscriber) {
                    s.in_flight = s.in_flight.saturating_sub(u32::from(credit));
                }
                self.engine
                    .handle_credit(subscriber, u32::from(credit), self.now);
            }
            Op::Wait { millis } => {
                self.now += Duration::from_millis(u64::from(millis));
                self.engine.handle_timeout(self.now);
            }
            Op::WaitForTimeout => {
                if let Some(at) = self.engine.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.engine.handle_timeout(self.now);
            }
            Op::Rewind { millis } => {
                let earlier = self
                    .now
                    .checked_sub(Duration::from_millis(u64::from(millis)))
                    .unwrap_or(self.now);
                self.engine.handle_timeout(earlier);
            }
        }
        self.drain();
        self.check_state();
    }

    /// Checks the engine's state against the runtime's books, between steps.
    fn check_state(&mut self) {
        let e = &self.engine;
        assert!(self.reported.is_empty(), "a transmit outcome got no reply");
        assert_eq!(
            e.opening_count(),
            self.opening.len(),
            "sockets being opened"
        );
        assert_eq!(e.subscriber_count(), self.streams.len(), "live subscribers");
        let all = e.bindings();
        let live: Vec<BindingId> = all.iter().map(|b| b.id).collect();
        let open: Vec<BindingId> = self.open.keys().copied().collect();
        let mut sorted = live.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, open, "live bindings are the open sockets");
        assert_eq!(e.binding_count(), live.len());

        let c = e.counters();
        assert_eq!(
            c.received,
            c.delivered + c.dropped_overflow + c.dropped_closed + c.pending,
            "every datagram is delivered, dropped or pending: {c:?}"
        );
        assert_eq!(c.bindings_opened - c.bindings_closed, live.len() as u64);

        // Every input fires the timers due by then, so no live lease is past its deadline.
        let now = e.wall_time(e.now());
        let mut earliest = None;
        for info in &all {
            let k = &info.counters;
            assert_eq!(
                k.received,
                k.delivered + k.dropped_overflow + k.pending,
                "{}: {k:?}",
                info.id
            );
            assert!(k.pending as usize <= self.config.ring_datagrams);
            assert!(info.expires_at > now, "{} outlived its lease", info.id);
            assert!(info.lease <= self.config.max_lease);
            assert_eq!(e.binding(&info.id).as_ref(), Some(info));
            let streams = self.streams.values().filter(|s| s.binding == info.id);
            assert_eq!(info.subscribers, streams.count(), "{} subscribers", info.id);
            assert!(info.subscribers <= self.config.max_subscribers_per_binding);
            earliest =
                Some(earliest.map_or(info.expires_at, |t: SystemTime| t.min(info.expires_at)));
            if let Some(o) = self.open.get_mut(&info.id) {
                o.expires_at = info.expires_at;
            }
        }
        // The runtime wakes no later than the earliest lease deadline.
        if let Some(deadline) = earliest {
            let wake = e.poll_timeout().expect("live bindings, but no timeout");
            assert!(e.wall_time(wake) <= deadline, "wakes after a deadline");
        }
    }

    /// Shuts down, reports every outstanding outcome, and checks everything
    /// was answered and closed exactly once.
    fn finish(&mut self) {
        self.step(&Op::Shutdown);
        let mut fail = false;
        while !self.opening.is_empty() {
            // Alternate the two outcomes a runtime can report for a cancelled bind.
            fail = !fail;
            let op = if fail {
                Op::SocketFailed {
                    opening: Pick(0),
                    error: OpenFailure::AddrInUse,
                }
            } else {
                Op::SocketOpened {
                    opening: Pick(0),
                    port: 1,
                }
            };
            self.step(&op);
        }
        while let Some(&(_, len)) = self.transmits.first() {
            let sent = u8::try_from(len).unwrap_or(u8::MAX);
            self.step(&Op::Transmitted {
                request: Pick(0),
                outcome: Ok(sent),
            });
        }
        assert!(
            self.owed.is_empty(),
            "commands never answered: {:?}",
            self.owed
        );
        assert!(self.open.is_empty(), "sockets never closed");
        assert!(self.streams.is_empty(), "streams never ended");
        let c = self.engine.counters();
        assert_eq!(c.bindings_opened, c.bindings_closed);
        assert_eq!(c.pending, 0);
        assert_eq!(
            self.engine.poll_timeout(),
            None,
            "a timer outlived everything"
        );
    }

    fn socket_opened(&mut self, pick: Pick, port: u16) {
        let ids: Vec<BindingId> = self.opening.iter().map(|&(id, _)| id).collect();
        match pick.from(&ids) {
            Some(binding) => {
                let index = self.opening.iter().position(|&(id, _)| id == binding);
                let Some((_, addr)) = index.map(|i| self.opening.remove(i)) else {
                    return;
                };
                let port = if addr.port() == 0 {
                    port.max(1)
                } else {
                    addr.port()
                };
                let local = SocketAddr::new(addr.ip(), port);
                let expires_at = SystemTime::UNIX_EPOCH; // set from the engine below
                self.open.insert(binding, Open { local, expires_at });
                if self.shut_down {
                    self.cancelled.insert(binding);
                }
                self.engine.handle_socket_opened(binding, local, self.now);
            }
            None => {
                // An outcome for a socket the engine did not ask for: counted, ignored.
                let binding = self.binding(pick);
                let unexpected = self.engine.counters().unexpected_outcomes;
                let local = SocketAddr::from(([127, 0, 0, 1], 1));
                self.engine.handle_socket_opened(binding, local, self.now);
                self.drain();
                assert_eq!(self.engine.counters().unexpected_outcomes, unexpected + 1);
            }
        }
    }

    fn socket_failed(&mut self, pick: Pick, error: OpenError) {
        let ids: Vec<BindingId> = self.opening.iter().map(|&(id, _)| id).collect();
        let binding = match pick.from(&ids) {
            Some(binding) => {
                self.opening.retain(|&(id, _)| id != binding);
                binding
            }
            None => self.binding(pick),
        };
        self.engine.handle_socket_failed(binding, error, self.now);
    }

    fn transmitted(&mut self, request: RequestId, outcome: Result<usize, TransmitError>) {
        self.transmits.retain(|&(r, _)| r != request);
        self.reported.insert(request, outcome);
        self.engine.handle_transmitted(request, outcome, self.now);
    }

    /// Drains the engine's actions, carrying out and checking each.
    fn drain(&mut self) {
        let mut ended = Vec::new();
        let mut closed = BTreeSet::new();
        while let Some(action) = self.engine.poll_action() {
            self.trace.push(action.clone());
            match action {
                Action::OpenSocket { binding, addr } => {
                    assert!(!self.ids.contains(&binding), "binding id {binding} reused");
                    assert!(
                        self.config.allow_remote || addr.ip().to_canonical().is_loopback(),
                        "opened non-loopback {addr} on a loopback-only server"
                    );
                    assert!(!self.shut_down, "opened a socket after shutdown");
                    self.ids.push(binding);
                    self.opening.push((binding, addr));
                }
                Action::CloseSocket { binding } => {
                    assert!(
                        self.open.remove(&binding).is_some(),
                        "closed {binding}, which is not open (or closed twice)"
                    );
                    assert!(
                        !self.streams.values().any(|s| s.binding == binding),
                        "closed {binding} with streams still open"
                    );
                    self.cancelled.remove(&binding);
                    closed.insert(binding);
                }
                Action::Transmit {
                    request,
                    binding,
                    dest,
                    payload,
                } => {
                    let local = self
                        .open
                        .get(&binding)
                        .map(|o| o.local)
                        .unwrap_or_else(|| panic!("transmit on {binding}, which is not open"));
                    assert!(self.owed.contains_key(&request), "transmit without a send");
                    assert_ne!(dest.port(), 0);
                    assert_eq!(local.is_ipv4(), dest.is_ipv4(), "family mismatch");
                    let ip = dest.ip().to_canonical();
                    assert!(!ip.is_unspecified() && !ip.is_multicast());
                    assert!(payload.len() <= self.config.max_payload);
                    assert!(
                        !self.transmits.iter().any(|&(r, _)| r == request),
                        "two transmits in flight for {request:?}"
                    );
                    self.transmits.push((request, payload.len()));
                }
                Action::Deliver { subscriber, event } => {
                    let window = self.config.delivery_window;
                    let open = &self.open;
                    let s = self
                        .streams
                        .get_mut(&subscriber)
                        .unwrap_or_else(|| panic!("delivery to {subscriber}, which is not live"));
                    assert!(s.in_flight < window, "{subscriber} exceeded its window");
                    s.in_flight += 1;
                    match event {
                        Event::Lagged { missed } => {
                            assert!(missed > 0, "lagged by nothing");
                            s.lagged += missed;
                        }
                        Event::Datagram(d) => {
                            assert_eq!(d.binding, s.binding, "datagram from another binding");
                            assert!(open.contains_key(&d.binding), "datagram after close");
                            if let Some(next) = s.next_seq {
                                assert_eq!(d.seq.0, next + s.lagged, "sequence gap not announced");
                            }
                            assert!(d.seq.0 >= 1);
                            s.next_seq = Some(d.seq.0 + 1);
                            s.lagged = 0;
                        }
                    }
                }
                Action::EndStream { subscriber, reason } => {
                    let s = self
                        .streams
                        .remove(&subscriber)
                        .unwrap_or_else(|| panic!("ended {subscriber}, which is not live"));
                    if reason == CloseReason::Idle {
                        assert!(s.idle, "idle end without idle_for");
                    }
                    ended.push((s.binding, reason));
                }
                Action::Reply { request, reply } => self.reply(request, reply, &closed),
            }
        }
        // A stream ended for its binding's sake only as part of closing that binding.
        for (binding, reason) in ended {
            match reason {
                CloseReason::Expired | CloseReason::Unbound | CloseReason::Shutdown => {
                    assert!(
                        closed.contains(&binding),
                        "{reason} without closing {binding}"
                    );
                }
                CloseReason::Unsubscribed | CloseReason::Idle => {}
            }
        }
        for binding in &closed {
            if self.closing_by_command.contains(binding) {
                continue;
            }
            // Not closed by a command, so it expired (or its bind was cancelled by shutdown).
            if let Some(open) = self.last_seen.get(binding) {
                let now = self.engine.wall_time(self.engine.now());
                assert!(
                    open.expires_at <= now,
                    "{binding} closed before its deadline"
                );
            }
        }
        assert!(self.cancelled.is_empty(), "a cancelled socket stayed open");
    }

    fn take_owed(&mut self, request: RequestId, matches: impl Fn(&Expect) -> bool) -> Expect {
        let list = self
            .owed
            .get_mut(&request)
            .unwrap_or_else(|| panic!("reply to {request:?}, which owes none"));
        let i = list
            .iter()
            // The newest first: a reused id is answered at once, before the original.
            .rposition(matches)
            .unwrap_or_else(|| panic!("reply of the wrong kind to {request:?}: owed {list:?}"));
        let expect = list.remove(i);
        if list.is_empty() {
            self.owed.remove(&request);
        }
        expect
    }

    fn reply(&mut self, request: RequestId, reply: Reply, closed: &BTreeSet<BindingId>) {
        match reply {
            Reply::Bind(result) => {
                let Expect::Bind { addr } =
                    self.take_owed(request, |e| matches!(e, Expect::Bind { .. }))
                else {
                    unreachable!()
                };
                match result {
                    Ok(info) => {
                        let open = self.open.get(&info.id).expect("bound a socket not open");
                        assert_eq!(info.local_addr, open.local);
                        assert_eq!(info.local_addr.ip(), addr.ip());
                        assert_eq!(info.subscribers, 0);
                        assert!(info.lease <= self.config.max_lease);
                        assert!(!self.shut_down, "bound after shutdown");
                    }
                    Err(BindError::TooManyBindings { max }) => {
                        assert_eq!(max, self.config.max_bindings);
                        assert!(self.open.len() + self.opening.len() >= max);
                    }
                    Err(BindError::ShuttingDown) => assert!(self.shut_down),
                    Err(_) => {}
                }
            }
            Reply::Unbind(result) => {
                let Expect::Unbind(live) =
                    self.take_owed(request, |e| matches!(e, Expect::Unbind(_)))
                else {
                    unreachable!()
                };
                if let Ok(id) = result {
                    assert!(closed.contains(&id), "unbound {id} without closing it");
                    self.closing_by_command.insert(id);
                } else {
                    // Only a binding that was not live (or expired just now) is not found.
                    if let Some(id) = live {
                        assert!(closed.contains(&id), "live {id} not found");
                    }
                }
            }
            Reply::Send(result) => {
                let Expect::Send { binding } =
                    self.take_owed(request, |e| matches!(e, Expect::Send { .. }))
                else {
                    unreachable!()
                };
                match result {
                    // The reply carries what the runtime reported.
                    Ok(n) => assert_eq!(self.reported.remove(&request), Some(Ok(n))),
                    Err(SendError::Transmit(e)) => {
                        assert_eq!(self.reported.remove(&request), Some(Err(e)));
                    }
                    Err(SendError::NotFound | SendError::DuplicateRequest) => {}
                    Err(_) => assert!(binding.is_some(), "policy answer for a dead binding"),
                }
            }
            Reply::Heartbeat(result) => {
                self.take_owed(request, |e| matches!(e, Expect::Heartbeat));
                if let Ok(info) = result {
                    assert!(self.open.contains_key(&info.id), "renewed a closed binding");
                    let now = self.engine.wall_time(self.engine.now());
                    assert_eq!(info.last_heartbeat, now);
                    assert_eq!(info.expires_at, now + info.lease.as_duration());
                }
            }
            Reply::Subscribe(result) => {
                let Expect::Subscribe { binding, idle } =
                    self.take_owed(request, |e| matches!(e, Expect::Subscribe { .. }))
                else {
                    unreachable!()
                };
                if let Ok(id) = result {
                    let binding = binding.expect("subscribed to a binding that was not live");
                    assert!(!self.subscribers.contains(&id), "subscriber id {id} reused");
                    self.subscribers.push(id);
                    self.streams.insert(
                        id,
                        Stream {
                            binding,
                            in_flight: 0,
                            next_seq: None,
                            lagged: 0,
                            idle,
                        },
                    );
                }
            }
            Reply::Unsubscribe(result) => {
                self.take_owed(request, |e| matches!(e, Expect::Unsubscribe));
                if let Ok(id) = result {
                    assert!(
                        !self.streams.contains_key(&id),
                        "unsubscribed a live stream"
                    );
                }
            }
            Reply::Status(all) => {
                self.take_owed(request, |e| matches!(e, Expect::Status));
                assert_eq!(all.len(), self.engine.binding_count());
                for pair in all.windows(2) {
                    assert!(
                        pair[0].created_at <= pair[1].created_at,
                        "status not oldest first"
                    );
                }
                for info in &all {
                    assert!(
                        self.open.contains_key(&info.id),
                        "status shows closed {}",
                        info.id
                    );
                }
            }
            Reply::Shutdown => {
                self.take_owed(request, |e| matches!(e, Expect::Shutdown));
                assert_eq!(self.engine.binding_count(), 0);
            }
        }
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
