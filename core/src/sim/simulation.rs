//! The simulation: one engine driven by a simulated runtime, network, clients
//! and peers, all drawn from one seed.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::agenda::Agenda;
use super::client::{Client, Intent, Targets};
use super::clock::nanos;
use super::host::Host;
use super::{
    Checker, InFlight, Network, NetworkConfig, NetworkStats, Record, SimClock, SimRng, Trace,
    Violation,
};
use crate::id::IdMap;
use crate::{
    Action, BindError, BindingId, CloseReason, Command, Config, ConfigError, Counters, Engine,
    Event, Input, Lease, ReceiveError, Reply, RequestId, SubscriberId, TransmitError, WallClock,
};

/// Everything a run is made of. Same config (seed included): same run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The engine's configuration. [`SimConfig::new`] picks small limits so that
    /// overflow, lag and refusals happen often; use your daemon's own to test it.
    pub engine: Config,
    /// How the network mistreats datagrams.
    pub network: NetworkConfig,
    /// Simulated clients of the HTTP API.
    pub clients: usize,
    /// Simulated remote applications that send datagrams to the bindings and echo
    /// some of what they receive.
    pub peers: usize,
    /// Simulated time before the shutdown.
    pub duration: Duration,
    /// Engine inputs before the shutdown (whichever of this and `duration` comes first).
    pub max_steps: u64,
    /// How late the runtime's timer may fire after the engine's deadline.
    pub timer_slack: Duration,
    /// Sockets the simulated host lets the runtime open (beyond: out of descriptors).
    pub fd_limit: usize,
    /// Datagrams each socket's simulated kernel receive buffer holds while
    /// its reader is behind or paused; beyond it the kernel drops them and
    /// reports the count with the next datagram read (as `SO_RXQ_OVFL` does).
    pub kernel_buffer: usize,
    /// Whether the run records its [`Trace`] of every input and action. Without
    /// it a run is faster (what a sweep over many seeds wants) and its report's
    /// trace is empty; a run that fails is then replayed from its seed with the
    /// trace on, so its [`SimError`] carries the trace all the same.
    pub trace: bool,
}

impl SimConfig {
    /// A busy, small-limits run of `seed`: 10 clients and 3 peers over a lossy
    /// network for up to 60 simulated seconds or 1,500 engine inputs.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            engine: Config {
                max_bindings: 9,
                default_lease: Lease::from_secs(5),
                max_lease: Lease::from_secs(10),
                max_subscribers_per_binding: 3,
                ring_datagrams: 12,
                ring_bytes: 256,
                delivery_window: 4,
                // Long enough that slow readers' credit sometimes comes back
                // within a pause and the small kernel buffer below overflows.
                max_read_pause: Duration::from_millis(200),
                ..Config::default()
            },
            network: NetworkConfig::default(),
            clients: 10,
            peers: 3,
            duration: Duration::from_secs(60),
            max_steps: 1500,
            timer_slack: Duration::from_millis(2),
            fd_limit: 8,
            // One datagram: a paused or busy reader overflows it now and then.
            kernel_buffer: 1,
            trace: true,
        }
    }
}

/// What happened in a run, to show that it exercised what it should.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Engine inputs fed.
    pub steps: u64,
    /// Simulated time at the end of the run.
    pub elapsed: Duration,
    /// Bind replies with a binding.
    pub binds: u64,
    /// Bind replies with `address in use`.
    pub addr_in_use: u64,
    /// Bind replies with `out of descriptors`.
    pub out_of_descriptors: u64,
    /// Other refused binds (policy, limits, shutdown).
    pub binds_refused: u64,
    /// Heartbeats answered with the renewed binding.
    pub heartbeats: u64,
    /// Commands answered `not found` (the binding or subscriber was gone).
    pub not_found: u64,
    /// Successful subscribes.
    pub subscribes: u64,
    /// Of those, resuming after a sequence number.
    pub resumed: u64,
    /// Datagram events delivered to subscribers.
    pub deliveries: u64,
    /// `lagged` events delivered.
    pub lagged: u64,
    /// Streams ended by the engine, by reason.
    pub streams_ended: StreamsEnded,
    /// Streams the clients dropped (reported as subscriber gone).
    pub streams_dropped: u64,
    /// Of those, reported gone while an engine deadline was already due
    /// (the runtime's timer, a little late, had not fired yet): the engine
    /// fires the due timers first, and must not end the stream it was just
    /// told is gone.
    pub gone_with_timers_due: u64,
    /// Sends answered with the bytes sent.
    pub sends: u64,
    /// Sends refused or failed.
    pub send_errors: u64,
    /// Clients that vanished.
    pub vanished: u64,
    /// Times the engine paused a binding's reads.
    pub reads_paused: u64,
    /// Pauses that ended because a subscriber could take more (credit, a
    /// subscriber gone or added) before the limit.
    pub resumed_early: u64,
    /// Pauses that ran to the engine's limit.
    pub resumed_at_limit: u64,
    /// Datagrams the simulated kernel dropped because a socket's receive
    /// buffer was full.
    pub kernel_drops: u64,
}

/// Streams the engine ended, by [`CloseReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamsEnded {
    /// The binding's lease ran out.
    pub expired: u64,
    /// The binding was unbound.
    pub unbound: u64,
    /// The engine shut down.
    pub shutdown: u64,
    /// The client unsubscribed.
    pub unsubscribed: u64,
    /// The stream was idle too long.
    pub idle: u64,
}

impl StreamsEnded {
    fn count(&mut self, reason: CloseReason) {
        let counter = match reason {
            CloseReason::Expired => &mut self.expired,
            CloseReason::Unbound => &mut self.unbound,
            CloseReason::Shutdown => &mut self.shutdown,
            CloseReason::Unsubscribed => &mut self.unsubscribed,
            CloseReason::Idle => &mut self.idle,
        };
        *counter += 1;
    }
}

/// The outcome of a run that broke no invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Every input and action.
    pub trace: Trace,
    /// What happened.
    pub stats: SimStats,
    /// The engine's counters at the end.
    pub counters: Counters,
    /// What the network did.
    pub network: NetworkStats,
}

/// A run that broke an invariant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("seed {seed}, step {step}: {violation}")]
pub struct SimError {
    /// The seed, to replay the run.
    pub seed: u64,
    /// The engine input at which the violation showed.
    pub step: u64,
    /// What broke.
    pub violation: Violation,
    /// The trace up to the violation; print [`Trace::tail`] to see how it came about.
    pub trace: Trace,
}

/// Who sent a command.
#[derive(Clone, Copy, Debug)]
enum Owner {
    Client(usize),
    /// The simulation itself (the final shutdown).
    Operator,
}

/// Something scheduled to happen.
#[derive(Debug)]
enum Scheduled {
    ClientWake(usize),
    PeerWake(usize),
    /// The runtime's `bind(2)` completes.
    OpenDone {
        binding: BindingId,
        addr: SocketAddr,
    },
    /// The runtime's `sendto(2)` completes.
    TransmitDone {
        request: RequestId,
        binding: BindingId,
        dest: SocketAddr,
        payload: Bytes,
    },
    /// A socket's reader task hands a datagram it read to the engine (with
    /// the kernel's drop count read along with it).
    SocketRead(BindingId, Read),
    /// An ICMP error surfaces on a socket.
    Icmp {
        binding: BindingId,
    },
    /// A stream's writer wrote one event.
    Credit {
        subscriber: SubscriberId,
    },
    /// The HTTP layer noticed a client closed its stream.
    StreamGone {
        subscriber: SubscriberId,
    },
}

// Independent random streams, so a change in one part leaves the others' draws alone.
const ENGINE_STREAM: u64 = 1;
const NETWORK_STREAM: u64 = 2;
const RUNTIME_STREAM: u64 = 3;
const CLIENT_STREAM: u64 = 4;
const PEER_STREAM: u64 = 5;

/// A datagram a reader took from the kernel, with the kernel drops it reports.
#[derive(Debug)]
struct Read {
    src: SocketAddr,
    payload: Bytes,
    drops: u64,
}

/// An open socket as the simulated runtime sees it: the kernel's receive
/// buffer, and its reader task.
#[derive(Debug, Default)]
struct SimSocket {
    /// The kernel's receive buffer.
    queue: std::collections::VecDeque<(SocketAddr, Bytes)>,
    /// Datagrams the kernel dropped since a read last reported it.
    drops: u64,
    /// The engine paused reads: since when it may last, if paused.
    paused_until: Option<Instant>,
    /// A read is in the reader's hands (scheduled to reach the engine).
    reading: bool,
    /// Reads that reached the reader when reads were already paused: they
    /// go in first when reads resume, in order.
    stash: std::collections::VecDeque<Read>,
}

impl SimSocket {
    /// The reader takes the next datagram (one it holds from before a
    /// pause, else the kernel's oldest) unless reads are paused or it is busy.
    fn next_read(&mut self) -> Option<Read> {
        if self.reading || self.paused_until.is_some() {
            return None;
        }
        let read = match self.stash.pop_front() {
            Some(read) => read,
            None => {
                let (src, payload) = self.queue.pop_front()?;
                Read {
                    src,
                    payload,
                    drops: std::mem::take(&mut self.drops),
                }
            }
        };
        self.reading = true;
        Some(read)
    }
}

/// First port of the simulated peers.
const PEER_PORT: u16 = 9000;

/// Row `i` is 64 bytes of `i`: what peer `i` (modulo 256) sends.
static PEER_PAYLOADS: [[u8; 64]; 256] = {
    let mut rows = [[0u8; 64]; 256];
    let mut i = 0;
    while i < 256 {
        rows[i] = [i as u8; 64];
        i += 1;
    }
    rows
};

/// A whole simulated deployment around one [`Engine`], checked by a [`Checker`]
/// at every step.
///
/// The simulation plays the runtime: it opens sockets on a simulated host (a port
/// taken is `AddrInUse`, too many is out of descriptors), transmits through a
/// simulated [`Network`], queues arriving datagrams in each socket's simulated
/// kernel buffer (bounded by [`SimConfig::kernel_buffer`]; beyond it they are
/// dropped and reported with the next datagram read), reads them with a small
/// delay (so some race their binding's close) and only while the engine has
/// not paused the binding's reads ([`Action::PauseReads`]; a datagram in the
/// reader's hands then waits for the resume), returns delivery credit as each
/// client reads its stream, and wakes the engine at its deadlines, a little late. Clients bind, send, subscribe
/// with and without resume, heartbeat, unsubscribe, drop their streams and vanish;
/// peers send datagrams to the bindings and echo some back. At the end it shuts the
/// engine down and lets the runtime finish what is in flight.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    clock: SimClock,
    engine: Engine,
    checker: Checker,
    trace: Trace,
    network: Network,
    host: Host,
    clients: Vec<Client>,
    peers: Vec<SocketAddr>,
    queue: Agenda<Scheduled>,
    runtime_rng: SimRng,
    client_rng: SimRng,
    peer_rng: SimRng,
    requests: IdMap<RequestId, (Owner, Command)>,
    next_request: u64,
    /// Which client owns each live stream.
    streams: IdMap<SubscriberId, usize>,
    /// The open sockets' kernel buffers and readers.
    sockets: IdMap<BindingId, SimSocket>,
    /// The bound clients (index and address), in client order: what a
    /// waking peer picks from. Updated after each reply and stream end (the
    /// only times a client gains or loses its binding) rather than gathered
    /// from every client at every peer wake.
    bound: Vec<(usize, SocketAddr)>,
    /// What a waking client does, kept to reuse its memory.
    intents: Vec<Intent>,
    /// The engine deadline the runtime's timer is armed for, and when it
    /// fires (simulated nanoseconds).
    timer: Option<(Instant, u64)>,
    stopping: bool,
    stats: SimStats,
}

impl Simulation {
    /// A simulation of `config` whose clock starts at `epoch` (any `Instant`: the
    /// trace only holds offsets from it, so it does not change the run).
    pub fn new(config: SimConfig, epoch: Instant) -> Result<Self, ConfigError> {
        // A fixed wall-clock anchor keeps timestamps in the trace repeatable.
        let wall = WallClock::new(
            epoch,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        let seed = config.seed;
        let engine_seed = SimRng::new(seed, ENGINE_STREAM).seed_bytes();
        let engine = Engine::new(config.engine.clone(), engine_seed, wall)?;
        let checker = Checker::new(&engine);
        let mut client_rng = SimRng::new(seed, CLIENT_STREAM);
        let clients = (0..config.clients)
            .map(|_| Client::new(&mut client_rng))
            .collect();
        let peers = (0..config.peers)
            .map(|i| {
                let port = PEER_PORT.saturating_add(u16::try_from(i).unwrap_or(u16::MAX));
                SocketAddr::from((Ipv4Addr::LOCALHOST, port))
            })
            .collect();
        Ok(Simulation {
            network: Network::new(config.network.clone(), SimRng::new(seed, NETWORK_STREAM)),
            host: Host::new(config.fd_limit),
            clock: SimClock::new(epoch),
            engine,
            checker,
            // About two records per input (its own and an action); reserved up
            // front rather than copied over as the trace grows.
            trace: if config.trace {
                Trace::with_capacity(
                    usize::try_from(config.max_steps)
                        .map_or(1 << 16, |n| n.saturating_mul(2).min(1 << 16)),
                )
            } else {
                Trace::new()
            },
            clients,
            peers,
            queue: Agenda::new(),
            runtime_rng: SimRng::new(seed, RUNTIME_STREAM),
            client_rng,
            peer_rng: SimRng::new(seed, PEER_STREAM),
            requests: IdMap::default(),
            next_request: 1,
            streams: IdMap::default(),
            sockets: IdMap::default(),
            bound: Vec::new(),
            intents: Vec::new(),
            timer: None,
            stopping: false,
            stats: SimStats::default(),
            config,
        })
    }

    /// Runs to the end: the clients act until `duration` or `max_steps`, then the
    /// engine is shut down and the runtime drains. Every step is checked.
    pub fn run(mut self) -> Result<Report, Box<SimError>> {
        if let Err(violation) = self.play() {
            if !self.config.trace {
                // Same seed, same run: this time with the trace that explains it.
                let config = SimConfig {
                    trace: true,
                    ..self.config.clone()
                };
                if let Ok(replay) = Simulation::new(config, self.clock.epoch()) {
                    // It fails the same way; were it not to, the error below stands.
                    replay.run()?;
                }
            }
            return Err(Box::new(SimError {
                seed: self.config.seed,
                step: self.checker.steps(),
                violation,
                trace: std::mem::take(&mut self.trace),
            }));
        }
        self.stats.steps = self.checker.steps();
        self.stats.elapsed = self.clock.elapsed();
        Ok(Report {
            seed: self.config.seed,
            trace: self.trace,
            stats: self.stats,
            counters: self.engine.counters(),
            network: self.network.stats(),
        })
    }

    fn play(&mut self) -> Result<(), Violation> {
        for i in 0..self.clients.len() {
            let at = self
                .client_rng
                .nanos(Duration::ZERO..=Duration::from_secs(1));
            self.schedule(at, Scheduled::ClientWake(i));
        }
        for i in 0..self.peers.len() {
            let at = self.peer_rng.nanos(Duration::ZERO..=Duration::from_secs(1));
            self.schedule(at, Scheduled::PeerWake(i));
        }
        // In nanoseconds, as the clock counts: a `Duration` per tick to
        // compare with cost a division.
        let duration = nanos(self.config.duration);
        while self.checker.steps() < self.config.max_steps
            && self.clock.elapsed_nanos() < duration
            && self.tick()?
        {}
        // The operator shuts the daemon down; clients and peers fall silent while
        // the runtime finishes what is in flight. That always ends: nothing new
        // is started.
        self.stopping = true;
        let request = self.request(Owner::Operator, Command::Shutdown);
        self.feed(Input::Command {
            request,
            command: Command::Shutdown,
        })?;
        while self.tick()? {}
        self.checker.finish(&self.engine)
    }

    /// Does the next thing due. Returns `false` once nothing is left to do.
    fn tick(&mut self) -> Result<bool, Violation> {
        // Nothing is ever due at u64::MAX nanoseconds (584 years): it stands
        // for "nothing", so the earliest is one comparison per source.
        let timer = self.timer.map_or(u64::MAX, |(_, at)| at);
        let arrival = self.network.next_arrival_nanos().unwrap_or(u64::MAX);
        let queued = self.queue.next_at().unwrap_or(u64::MAX);
        let next = timer.min(arrival).min(queued);
        if next == u64::MAX {
            return Ok(false);
        }
        self.clock.advance_to_nanos(next);
        if timer == next {
            self.timer = None;
            self.feed(Input::Timeout)?;
        } else if arrival == next {
            if let Some(datagram) = self.network.pop_arrived_by(next) {
                self.arrive(datagram);
            }
        } else if let Some(scheduled) = self.queue.pop_due(next) {
            self.run_scheduled(scheduled)?;
        }
        Ok(true)
    }

    /// At `at` nanoseconds of simulated time.
    fn schedule(&mut self, at: u64, what: Scheduled) {
        self.queue.push(at, what);
    }

    /// In `delay` nanoseconds.
    fn schedule_in(&mut self, delay: u64, what: Scheduled) {
        self.schedule(self.clock.elapsed_nanos().saturating_add(delay), what);
    }

    fn request(&mut self, owner: Owner, command: Command) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.insert(request, (owner, command));
        request
    }

    /// One engine step: record and check the input, feed it, then record, check
    /// and carry out every action.
    fn feed(&mut self, input: Input) -> Result<(), Violation> {
        let now = self.clock.now();
        if self.config.trace {
            self.trace.push(Record::Input {
                at: self.clock.elapsed(),
                input: input.clone(),
            });
        }
        self.checker.on_input(&input, now)?;
        self.engine.handle_input(input, now);
        while let Some(action) = self.engine.poll_action() {
            if self.config.trace {
                self.trace.push(Record::Action(action.clone()));
            }
            self.checker.on_action(&action)?;
            self.perform(action);
        }
        self.checker.on_drained(&self.engine)?;
        // Re-arm only when the deadline moved, like a real driver.
        let deadline = self.engine.poll_timeout();
        if deadline != self.timer.map(|(at, _)| at) {
            self.timer = deadline.map(|at| {
                let slack = self
                    .runtime_rng
                    .nanos(Duration::ZERO..=self.config.timer_slack);
                let fire = nanos(self.clock.offset(at))
                    .max(self.clock.elapsed_nanos())
                    .saturating_add(slack);
                (at, fire)
            });
        }
        Ok(())
    }

    /// The runtime carries out an action (outcomes come back as scheduled inputs).
    fn perform(&mut self, action: Action) {
        match action {
            Action::OpenSocket { binding, addr } => {
                let delay = self
                    .runtime_rng
                    .nanos(Duration::ZERO..=Duration::from_millis(10));
                self.schedule_in(delay, Scheduled::OpenDone { binding, addr });
            }
            Action::CloseSocket { binding } => {
                self.host.close(binding);
                if let Some(socket) = self.sockets.remove(&binding) {
                    // The kernel's buffer goes with the socket; what the
                    // reader already holds still reaches the engine, after
                    // the close (counted as raced it).
                    for read in socket.stash {
                        self.schedule_in(0, Scheduled::SocketRead(binding, read));
                    }
                }
            }
            Action::PauseReads { binding } => {
                self.stats.reads_paused += 1;
                if let Some(socket) = self.sockets.get_mut(&binding) {
                    socket.paused_until =
                        Some(self.clock.now() + self.config.engine.max_read_pause);
                }
            }
            Action::ResumeReads { binding } => {
                if let Some(socket) = self.sockets.get_mut(&binding) {
                    match socket.paused_until.take() {
                        Some(until) if until <= self.clock.now() => {
                            self.stats.resumed_at_limit += 1
                        }
                        _ => self.stats.resumed_early += 1,
                    }
                }
                // At once: no new datagram has to arrive to wake the reader.
                self.start_read(binding);
            }
            Action::Transmit {
                request,
                binding,
                dest,
                payload,
            } => {
                let delay = self
                    .runtime_rng
                    .nanos(Duration::ZERO..=Duration::from_millis(1));
                self.schedule_in(
                    delay,
                    Scheduled::TransmitDone {
                        request,
                        binding,
                        dest,
                        payload,
                    },
                );
            }
            Action::Deliver { subscriber, event } => {
                match event {
                    Event::Datagram(_) => self.stats.deliveries += 1,
                    Event::Lagged { .. } => self.stats.lagged += 1,
                }
                let read = self
                    .streams
                    .get(&subscriber)
                    .and_then(|&owner| self.clients[owner].on_event(subscriber, &event));
                // A stream the client dropped returns no credit.
                if let Some(read) = read {
                    self.schedule_in(nanos(read), Scheduled::Credit { subscriber });
                }
            }
            Action::EndStream { subscriber, reason } => {
                self.stats.streams_ended.count(reason);
                if let Some(owner) = self.streams.remove(&subscriber) {
                    let before = self.clients[owner].bound_addr();
                    self.clients[owner].on_end(subscriber, reason);
                    if self.clients[owner].bound_addr() != before {
                        self.note_binding(owner);
                    }
                }
            }
            Action::Reply { request, reply } => self.answer(request, reply),
        }
    }

    fn answer(&mut self, request: RequestId, reply: Reply) {
        match &reply {
            Reply::Bind(Ok(_)) => self.stats.binds += 1,
            Reply::Bind(Err(BindError::AddrInUse(_))) => self.stats.addr_in_use += 1,
            Reply::Bind(Err(BindError::OutOfDescriptors)) => self.stats.out_of_descriptors += 1,
            Reply::Bind(Err(_)) => self.stats.binds_refused += 1,
            Reply::Heartbeat(Ok(_)) => self.stats.heartbeats += 1,
            Reply::Heartbeat(Err(_)) | Reply::Unbind(Err(_)) | Reply::Unsubscribe(Err(_)) => {
                self.stats.not_found += 1
            }
            Reply::Subscribe(Ok(_)) => self.stats.subscribes += 1,
            Reply::Send(Ok(_)) => self.stats.sends += 1,
            Reply::Send(Err(_)) => self.stats.send_errors += 1,
            _ => {}
        }
        let Some((owner, command)) = self.requests.remove(&request) else {
            return;
        };
        let Owner::Client(i) = owner else {
            return;
        };
        if let (Reply::Subscribe(Ok(id)), Command::Subscribe(params)) = (&reply, &command) {
            self.streams.insert(*id, i);
            if params.resume_after.is_some() {
                self.stats.resumed += 1;
            }
        }
        let before = self.clients[i].bound_addr();
        self.clients[i].on_reply(&mut self.client_rng, &command, &reply);
        if self.clients[i].bound_addr() != before {
            self.note_binding(i);
        }
    }

    fn run_scheduled(&mut self, scheduled: Scheduled) -> Result<(), Violation> {
        match scheduled {
            Scheduled::ClientWake(i) => self.wake_client(i)?,
            Scheduled::PeerWake(i) => self.wake_peer(i),
            Scheduled::OpenDone { binding, addr } => {
                let input = match self.host.open(binding, addr) {
                    Ok(local_addr) => {
                        self.sockets.insert(binding, SimSocket::default());
                        Input::SocketOpened {
                            binding,
                            local_addr,
                        }
                    }
                    Err(error) => Input::SocketFailed { binding, error },
                };
                self.feed(input)?;
            }
            Scheduled::TransmitDone {
                request,
                binding,
                dest,
                payload,
            } => {
                let outcome = match self.host.addr_of(binding) {
                    // Closed while the send was queued.
                    None => Err(TransmitError::Other(io::ErrorKind::NotConnected)),
                    Some(_) if self.runtime_rng.chance(10) => Err(TransmitError::NoBuffers),
                    Some(from) => {
                        let len = payload.len();
                        let datagram = InFlight {
                            from,
                            to: dest,
                            payload,
                        };
                        self.network.send_at(self.clock.elapsed_nanos(), datagram);
                        Ok(len)
                    }
                };
                self.feed(Input::Transmitted { request, outcome })?;
            }
            Scheduled::SocketRead(binding, read) => self.hand_in(binding, read)?,
            Scheduled::Icmp { binding } => self.feed(Input::SocketError {
                binding,
                error: ReceiveError::ConnectionRefused,
            })?,
            Scheduled::Credit { subscriber } => self.feed(Input::Credit {
                subscriber,
                credit: 1,
            })?,
            Scheduled::StreamGone { subscriber } => {
                if self
                    .engine
                    .poll_timeout()
                    .is_some_and(|at| at <= self.clock.now())
                {
                    self.stats.gone_with_timers_due += 1;
                }
                self.feed(Input::SubscriberGone { subscriber })?
            }
        }
        Ok(())
    }

    fn wake_client(&mut self, i: usize) -> Result<(), Violation> {
        if self.stopping {
            return Ok(());
        }
        let (before, rest) = self.clients.split_at_mut(i);
        let Some((client, after)) = rest.split_first_mut() else {
            return Ok(());
        };
        let targets = Targets {
            peers: &self.peers,
            before,
            after,
        };
        let was_vanished = client.has_vanished();
        // The buffer is reused from wake to wake (no allocation per wake);
        // a failed step ends the run, so losing it then costs nothing.
        let mut intents = std::mem::take(&mut self.intents);
        let next = client.wake(&mut self.client_rng, &targets, &mut intents);
        if !was_vanished && self.clients[i].has_vanished() {
            self.stats.vanished += 1;
        }
        if let Some(next) = next {
            self.schedule_in(nanos(next), Scheduled::ClientWake(i));
        }
        for intent in intents.drain(..) {
            match intent {
                Intent::Command(command) => {
                    let request = self.request(Owner::Client(i), command.clone());
                    self.feed(Input::Command { request, command })?;
                }
                Intent::DropStream(subscriber) => {
                    self.stats.streams_dropped += 1;
                    self.streams.remove(&subscriber);
                    let delay = self
                        .runtime_rng
                        .nanos(Duration::ZERO..=Duration::from_millis(50));
                    self.schedule_in(delay, Scheduled::StreamGone { subscriber });
                }
            }
        }
        self.intents = intents;
        Ok(())
    }

    /// Brings client `i`'s entry in `bound` up to date.
    fn note_binding(&mut self, i: usize) {
        let at = self.bound.partition_point(|&(j, _)| j < i);
        let listed = self.bound.get(at).is_some_and(|&(j, _)| j == i);
        match (self.clients[i].bound_addr(), listed) {
            (Some(addr), true) => self.bound[at].1 = addr,
            (Some(addr), false) => self.bound.insert(at, (i, addr)),
            (None, true) => {
                self.bound.remove(at);
            }
            (None, false) => {}
        }
    }

    fn wake_peer(&mut self, i: usize) {
        if self.stopping {
            return;
        }
        debug_assert!(
            self.bound
                .iter()
                .map(|&(_, addr)| addr)
                .eq(self.clients.iter().filter_map(Client::bound_addr)),
            "the bound clients' list is out of date"
        );
        let count = self.bound.len();
        let to = if count == 0 || self.peer_rng.chance(100) {
            // A port nobody may hold.
            let port = 49_152 + self.peer_rng.below(64) as u16;
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        } else {
            let nth = self.peer_rng.index(count);
            self.bound.get(nth).map_or(
                SocketAddr::from((Ipv4Addr::LOCALHOST, 49_152)),
                |&(_, addr)| addr,
            )
        };
        let len = self.peer_rng.index(64);
        // Up to 63 bytes of the peer's index (modulo 256), from a static
        // table: no allocation per send, and copies of a static `Bytes` are
        // plain copies where a shared one counts references.
        let payload = Bytes::from_static(&PEER_PAYLOADS[i % 256][..len]);
        let datagram = InFlight {
            from: self.peers[i],
            to,
            payload,
        };
        self.network.send_at(self.clock.elapsed_nanos(), datagram);
        let next = self
            .peer_rng
            .nanos(Duration::from_millis(10)..=Duration::from_millis(400));
        self.schedule_in(next, Scheduled::PeerWake(i));
    }

    /// The reader takes the next datagram (one it holds from before a pause,
    /// else the kernel's oldest) unless reads are paused or it is busy; it
    /// reaches the engine a moment later, maybe after the pause or the close.
    fn start_read(&mut self, binding: BindingId) {
        if let Some(read) = self
            .sockets
            .get_mut(&binding)
            .and_then(SimSocket::next_read)
        {
            self.read_in_flight(binding, read);
        }
    }

    /// A read taken from a socket reaches the engine a moment later.
    fn read_in_flight(&mut self, binding: BindingId, read: Read) {
        let delay = self
            .runtime_rng
            .nanos(Duration::ZERO..=Duration::from_millis(1));
        self.schedule_in(delay, Scheduled::SocketRead(binding, read));
    }

    /// A read reaches the engine, unless reads were paused meanwhile: then
    /// the reader holds it until they resume.
    fn hand_in(&mut self, binding: BindingId, read: Read) -> Result<(), Violation> {
        if let Some(socket) = self.sockets.get_mut(&binding) {
            socket.reading = false;
            if socket.paused_until.is_some() {
                socket.stash.push_front(read);
                return Ok(());
            }
        }
        if read.drops > 0 {
            self.feed(Input::KernelDrops {
                binding,
                count: read.drops,
            })?;
            // The drops' `lagged` notices may have used up the last credit,
            // and paused reads: the datagram then waits for the resume.
            if let Some(socket) = self.sockets.get_mut(&binding) {
                if socket.paused_until.is_some() {
                    socket.stash.push_front(Read { drops: 0, ..read });
                    return Ok(());
                }
            }
        }
        self.feed(Input::Datagram {
            binding,
            src: read.src,
            payload: read.payload,
        })?;
        self.start_read(binding);
        Ok(())
    }

    /// A datagram reaches its destination address.
    fn arrive(&mut self, datagram: InFlight) {
        if let Some(binding) = self.host.socket_at(datagram.to) {
            // One lookup of the socket for both the kernel and the reader.
            if let Some(socket) = self.sockets.get_mut(&binding) {
                if socket.queue.len() >= self.config.kernel_buffer {
                    socket.drops += 1;
                    self.stats.kernel_drops += 1;
                } else {
                    socket.queue.push_back((datagram.from, datagram.payload));
                }
                if let Some(read) = socket.next_read() {
                    self.read_in_flight(binding, read);
                }
            }
        } else if self.peers.contains(&datagram.to) {
            if !self.stopping && self.peer_rng.chance(400) {
                let echo = InFlight {
                    from: datagram.to,
                    to: datagram.from,
                    payload: datagram.payload,
                };
                self.network.send_at(self.clock.elapsed_nanos(), echo);
            }
        } else if let Some(binding) = self.host.socket_at(datagram.from) {
            // Nobody listens: the kernel answers port unreachable.
            if self.runtime_rng.chance(500) {
                self.schedule_in(100_000, Scheduled::Icmp { binding });
            }
        }
    }
}
