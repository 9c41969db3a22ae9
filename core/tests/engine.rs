//! Unit tests of the engine's rules (DESIGN.md §2), driven with hand-advanced time.
//!
//! Every test starts from one `Instant::now()` and moves time only by explicit
//! offsets from it; ids come from a fixed seed and wall-clock times from a fixed
//! anchor, so every run sees the same inputs and must produce the same outputs.
//! Nothing here touches the network: the "runtime" is the test itself, which
//! reports socket and transmit outcomes by hand.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use porthole_core::api::{encode_reply, timestamp};
use porthole_core::net::{Network, MAX_PAYLOAD_V4, MAX_PAYLOAD_V6};
use porthole_core::{
    Action, BindError, BindParams, BindingError, BindingId, BindingInfo, CloseReason, Command,
    Config, Datagram, Engine, Event, Lease, OpenError, ReceiveError, Reply, RequestId, SendError,
    Seq, SubscribeError, SubscribeParams, SubscriberId, Ticket, TicketError, TransmitError,
    UnsubscribeError, WallClock,
};

// ----- the hand-driven runtime ------------------------------------------------------

const SEED: [u8; 32] = [7; 32];
const OTHER_SEED: [u8; 32] = [8; 32];
/// The wall-clock anchor: 2023-11-14T22:13:20Z.
const ANCHOR_SECS: u64 = 1_700_000_000;
/// Where the test datagrams come from.
const PEER: &str = "127.0.0.1:9000";

fn anchor() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(ANCHOR_SECS)
}

/// The wall-clock time `offset` after the engine's start.
fn wall(offset: Duration) -> SystemTime {
    anchor() + offset
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn peer() -> SocketAddr {
    sa(PEER)
}

/// Owns an engine and plays its runtime: feeds inputs at `base + offset`,
/// answers `OpenSocket` for binds, and records every action in `log`.
struct Harness {
    engine: Engine,
    base: Instant,
    next_request: u64,
    next_port: u16,
    log: Vec<Action>,
}

impl Harness {
    fn new() -> Self {
        Self::with(Config::default(), SEED)
    }

    fn with_config(config: Config) -> Self {
        Self::with(config, SEED)
    }

    fn with(config: Config, seed: [u8; 32]) -> Self {
        Self::at_base(config, seed, Instant::now())
    }

    fn at_base(config: Config, seed: [u8; 32], base: Instant) -> Self {
        let engine = Engine::new(config, seed, WallClock::new(base, anchor())).expect("config");
        Harness {
            engine,
            base,
            next_request: 1,
            next_port: 40_000,
            log: Vec::new(),
        }
    }

    fn at(&self, offset: Duration) -> Instant {
        self.base + offset
    }

    /// Every action the last input produced, in order (also appended to `log`).
    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(action) = self.engine.poll_action() {
            out.push(action);
        }
        self.log.extend(out.iter().cloned());
        out
    }

    fn request(&mut self) -> RequestId {
        let r = RequestId(self.next_request);
        self.next_request += 1;
        r
    }

    fn command(&mut self, command: Command, at: Duration) -> (RequestId, Vec<Action>) {
        let request = self.request();
        self.engine.handle_command(request, command, self.at(at));
        (request, self.drain())
    }

    /// The command's immediate reply (panics if there is none).
    fn ask(&mut self, command: Command, at: Duration) -> Reply {
        let (request, actions) = self.command(command, at);
        reply_to(&actions, request)
            .cloned()
            .unwrap_or_else(|| panic!("no reply to {request:?} in {actions:?}"))
    }

    /// The address a socket asked for on `addr` is "opened" on: the same, with a
    /// port chosen like an OS would when `addr` asks for port 0.
    fn local_for(&mut self, addr: SocketAddr) -> SocketAddr {
        let mut local = addr;
        if local.port() == 0 {
            local.set_port(self.next_port);
            self.next_port += 1;
        }
        local
    }

    /// Asks for a bind; expects exactly one `OpenSocket` and nothing else yet.
    fn start_bind(
        &mut self,
        params: BindParams,
        at: Duration,
    ) -> (RequestId, BindingId, SocketAddr) {
        let (request, actions) = self.command(Command::Bind(params), at);
        match actions.as_slice() {
            [Action::OpenSocket { binding, addr }] => (request, *binding, *addr),
            other => panic!("bind should only ask for a socket, got {other:?}"),
        }
    }

    /// Binds and reports the socket opened at the same instant.
    fn bind(&mut self, params: BindParams, at: Duration) -> BindingInfo {
        let (request, binding, addr) = self.start_bind(params, at);
        let local = self.local_for(addr);
        self.engine
            .handle_socket_opened(binding, local, self.at(at));
        let actions = self.drain();
        match reply_to(&actions, request) {
            Some(Reply::Bind(Ok(info))) if actions.len() == 1 => (**info).clone(),
            _ => panic!("socket opened should answer the bind, got {actions:?}"),
        }
    }

    fn bind_loopback(&mut self, at: Duration) -> BindingInfo {
        self.bind(BindParams::new(sa("127.0.0.1:0")), at)
    }

    fn bind_lease(&mut self, lease_secs: u64, at: Duration) -> BindingInfo {
        self.bind(
            BindParams {
                lease_secs: Some(lease_secs),
                ..BindParams::new(sa("127.0.0.1:0"))
            },
            at,
        )
    }

    /// Subscribes; returns the subscriber and the events that followed its reply.
    fn subscribe_with(
        &mut self,
        params: SubscribeParams,
        at: Duration,
    ) -> (SubscriberId, Vec<Action>) {
        let (request, actions) = self.command(Command::Subscribe(params), at);
        match actions.split_first() {
            Some((
                Action::Reply {
                    request: r,
                    reply: Reply::Subscribe(Ok(id)),
                },
                rest,
            )) if *r == request => (*id, rest.to_vec()),
            _ => panic!("subscribe should be answered first, got {actions:?}"),
        }
    }

    fn subscribe(&mut self, binding: BindingId, at: Duration) -> SubscriberId {
        let (id, replayed) = self.subscribe_with(SubscribeParams::new(binding), at);
        assert!(replayed.is_empty(), "nothing to replay: {replayed:?}");
        id
    }

    fn datagram(&mut self, binding: BindingId, payload: &str, at: Duration) -> Vec<Action> {
        self.engine.handle_datagram(
            binding,
            peer(),
            Bytes::copy_from_slice(payload.as_bytes()),
            self.at(at),
        );
        self.drain()
    }

    /// `n` datagrams `d1`..`dn`, one millisecond apart from `at`.
    fn datagrams(&mut self, binding: BindingId, n: u64, at: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        for i in 1..=n {
            out.extend(self.datagram(binding, &format!("d{i}"), at + ms(i - 1)));
        }
        out
    }

    fn credit(&mut self, subscriber: SubscriberId, credit: u32, at: Duration) -> Vec<Action> {
        self.engine.handle_credit(subscriber, credit, self.at(at));
        self.drain()
    }

    fn timeout(&mut self, at: Duration) -> Vec<Action> {
        self.engine.handle_timeout(self.at(at));
        self.drain()
    }

    fn heartbeat(&mut self, binding: BindingId, lease_secs: Option<u64>, at: Duration) -> Reply {
        self.ask(
            Command::Heartbeat {
                binding,
                lease_secs,
            },
            at,
        )
    }

    fn alive(&self, binding: BindingId) -> bool {
        self.engine.binding(&binding).is_some()
    }

    /// Every received datagram is delivered, dropped with a named reason, or pending:
    /// engine-wide and for each live binding.
    fn assert_counters_balance(&self) {
        let c = self.engine.counters();
        assert_eq!(
            c.received,
            c.delivered + c.dropped_overflow + c.dropped_memory + c.dropped_closed + c.pending,
            "engine counters do not balance: {c:?}"
        );
        for b in self.engine.bindings() {
            let k = b.counters;
            assert_eq!(
                k.received,
                k.delivered + k.dropped_overflow + k.dropped_memory + k.pending,
                "counters of {} do not balance: {k:?}",
                b.id
            );
        }
    }
}

fn reply_to(actions: &[Action], request: RequestId) -> Option<&Reply> {
    actions.iter().find_map(|a| match a {
        Action::Reply { request: r, reply } if *r == request => Some(reply),
        _ => None,
    })
}

/// What a subscriber saw, compactly.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Datagram(u64),
    Lagged(u64),
}

fn seen(actions: &[Action], subscriber: SubscriberId) -> Vec<Seen> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver {
                subscriber: s,
                event,
            } if *s == subscriber => Some(match event {
                Event::Datagram(d) => Seen::Datagram(d.seq.0),
                Event::Lagged { missed } => Seen::Lagged(*missed),
            }),
            _ => None,
        })
        .collect()
}

fn datagrams_seen(seqs: impl IntoIterator<Item = u64>) -> Vec<Seen> {
    seqs.into_iter().map(Seen::Datagram).collect()
}

fn deliveries(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Deliver { .. }))
        .count()
}

fn transmits(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Transmit { .. }))
        .count()
}

fn closes(actions: &[Action]) -> Vec<BindingId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CloseSocket { binding } => Some(*binding),
            _ => None,
        })
        .collect()
}

fn send(binding: BindingId, dest: &str, len: usize) -> Command {
    Command::Send {
        binding,
        dest: sa(dest),
        payload: Bytes::from(vec![0xAB; len]),
    }
}

// ----- leases -------------------------------------------------------------------------

#[test]
fn ten_second_lease_is_alive_at_9_999_s_and_gone_at_10_s() {
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);
    assert_eq!(b.expires_at, wall(secs(10)));
    h.datagrams(b.id, 2, secs(1)); // nobody subscribed: they wait in the ring

    assert_eq!(h.timeout(ms(9_999)), vec![]);
    assert!(h.alive(b.id));

    assert_eq!(
        h.timeout(secs(10)),
        vec![Action::CloseSocket { binding: b.id }]
    );
    assert!(!h.alive(b.id));
    assert_eq!(h.ask(Command::Status, secs(10)), Reply::Status(vec![]));
    let c = h.engine.counters();
    assert_eq!((c.bindings_expired, c.bindings_closed), (1, 1));
    assert_eq!((c.received, c.dropped_closed, c.pending), (2, 2, 0));
    h.assert_counters_balance();
}

#[test]
fn datagram_arriving_at_the_deadline_is_not_delivered() {
    // Due timers fire before any input, so the binding is gone when it lands.
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);
    let s = h.subscribe(b.id, Duration::ZERO);
    assert_eq!(
        h.datagram(b.id, "too late", secs(10)),
        vec![
            Action::EndStream {
                subscriber: s,
                reason: CloseReason::Expired
            },
            Action::CloseSocket { binding: b.id },
        ]
    );
    let c = h.engine.counters();
    assert_eq!((c.received, c.dropped_unbound), (0, 1));
    h.assert_counters_balance();
}

#[test]
fn heartbeat_at_9_s_moves_the_deadline_to_19_s() {
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);

    let Reply::Heartbeat(Ok(info)) = h.heartbeat(b.id, None, secs(9)) else {
        panic!("heartbeat on a live binding succeeds");
    };
    assert_eq!(info.expires_at, wall(secs(19)));
    assert_eq!(info.last_heartbeat, wall(secs(9)));
    assert_eq!(info.lease, Lease::from_secs(10));
    assert_eq!(h.engine.poll_timeout(), Some(h.at(secs(19))));

    assert_eq!(
        h.timeout(secs(10)),
        vec![],
        "the old deadline passes harmlessly"
    );
    assert_eq!(h.timeout(ms(18_999)), vec![]);
    assert!(h.alive(b.id));
    assert_eq!(closes(&h.timeout(secs(19))), vec![b.id]);
}

#[test]
fn heartbeat_with_lease_secs_changes_the_lease_longer_or_shorter() {
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);

    let Reply::Heartbeat(Ok(longer)) = h.heartbeat(b.id, Some(30), secs(2)) else {
        panic!("heartbeat succeeds");
    };
    assert_eq!(longer.lease, Lease::from_secs(30));
    assert_eq!(longer.expires_at, wall(secs(32)));

    let Reply::Heartbeat(Ok(shorter)) = h.heartbeat(b.id, Some(2), secs(3)) else {
        panic!("heartbeat succeeds");
    };
    assert_eq!(shorter.lease, Lease::from_secs(2));
    assert_eq!(shorter.expires_at, wall(secs(5)));
    assert_eq!(h.engine.poll_timeout(), Some(h.at(secs(5))));

    // A heartbeat without lease_secs keeps the lease last asked for.
    let Reply::Heartbeat(Ok(same)) = h.heartbeat(b.id, None, secs(4)) else {
        panic!("heartbeat succeeds");
    };
    assert_eq!(same.lease, Lease::from_secs(2));
    assert_eq!(same.expires_at, wall(secs(6)));

    assert_eq!(h.timeout(ms(5_999)), vec![]);
    assert_eq!(closes(&h.timeout(secs(6))), vec![b.id]);
}

#[test]
fn heartbeat_after_expiry_is_not_found() {
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);
    assert_eq!(closes(&h.timeout(secs(10))), vec![b.id]);
    assert_eq!(
        h.heartbeat(b.id, None, secs(11)),
        Reply::Heartbeat(Err(BindingError::NotFound))
    );
}

#[test]
fn heartbeat_arriving_at_the_deadline_is_too_late() {
    // Every input fires due timers first, so a runtime that wakes late cannot
    // let a heartbeat revive a binding whose deadline has passed.
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);
    let (request, actions) = h.command(
        Command::Heartbeat {
            binding: b.id,
            lease_secs: None,
        },
        secs(10),
    );
    assert_eq!(
        actions,
        vec![
            Action::CloseSocket { binding: b.id },
            Action::Reply {
                request,
                reply: Reply::Heartbeat(Err(BindingError::NotFound)),
            },
        ]
    );
}

#[test]
fn zero_or_missing_lease_means_the_default_300_s() {
    let mut h = Harness::new();
    let missing = h.bind(BindParams::new(sa("127.0.0.1:0")), Duration::ZERO);
    let zero = h.bind_lease(0, Duration::ZERO);
    for b in [&missing, &zero] {
        assert_eq!(b.lease, Lease::from_secs(300));
        assert_eq!(b.expires_at, wall(secs(300)));
    }
    // Heartbeat with 0 also means the default.
    let short = h.bind_lease(5, Duration::ZERO);
    let Reply::Heartbeat(Ok(info)) = h.heartbeat(short.id, Some(0), secs(1)) else {
        panic!("heartbeat succeeds");
    };
    assert_eq!(info.lease, Lease::from_secs(300));
    assert_eq!(info.expires_at, wall(secs(301)));

    assert_eq!(h.timeout(ms(299_999)), vec![]);
    assert_eq!(closes(&h.timeout(secs(300))), vec![missing.id, zero.id]);
    assert_eq!(closes(&h.timeout(secs(301))), vec![short.id]);
}

#[test]
fn lease_is_clamped_to_max_lease() {
    let mut h = Harness::new();
    let day = h.bind_lease(100_000, Duration::ZERO);
    assert_eq!(day.lease, Lease::from_secs(86_400));
    assert_eq!(day.expires_at, wall(secs(86_400)));
    let huge = h.bind_lease(u64::MAX, Duration::ZERO);
    assert_eq!(huge.lease, Lease::from_secs(86_400));

    let mut h = Harness::with_config(Config {
        default_lease: Lease::from_secs(30),
        max_lease: Lease::from_secs(60),
        ..Config::default()
    });
    let b = h.bind_lease(61, Duration::ZERO);
    assert_eq!(b.lease, Lease::from_secs(60));
    // A bind that asks for none gets the default; a heartbeat's new lease is clamped.
    let d = h.bind(BindParams::new(sa("127.0.0.1:0")), Duration::ZERO);
    assert_eq!(d.lease, Lease::from_secs(30));
    let Reply::Heartbeat(Ok(info)) = h.heartbeat(b.id, Some(3_600), secs(1)) else {
        panic!("heartbeat succeeds");
    };
    assert_eq!(info.lease, Lease::from_secs(60));
    assert_eq!(info.expires_at, wall(secs(61)));
}

#[test]
fn traffic_does_not_renew_a_lease_without_renew_on_traffic() {
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);
    assert!(!b.renew_on_traffic);
    h.subscribe(b.id, Duration::ZERO);
    assert_eq!(deliveries(&h.datagram(b.id, "in", secs(5))), 1);
    let (request, actions) = h.command(send(b.id, "127.0.0.1:9", 4), secs(6));
    assert_eq!(transmits(&actions), 1);
    h.engine.handle_transmitted(request, Ok(4), h.at(secs(6)));
    h.drain();

    assert_eq!(
        h.engine.binding(&b.id).map(|i| i.expires_at),
        Some(wall(secs(10)))
    );
    assert_eq!(h.timeout(ms(9_999)), vec![]);
    let actions = h.timeout(secs(10));
    assert_eq!(closes(&actions), vec![b.id]);
}

#[test]
fn with_renew_on_traffic_datagrams_and_sends_renew_the_lease() {
    let mut h = Harness::new();
    let b = h.bind(
        BindParams {
            lease_secs: Some(10),
            renew_on_traffic: true,
            ..BindParams::new(sa("127.0.0.1:0"))
        },
        Duration::ZERO,
    );
    assert!(b.renew_on_traffic);

    h.datagram(b.id, "in", secs(5));
    assert_eq!(
        h.engine.binding(&b.id).map(|i| i.expires_at),
        Some(wall(secs(15)))
    );
    assert_eq!(h.timeout(secs(10)), vec![], "the first deadline moved");

    let (request, actions) = h.command(send(b.id, "127.0.0.1:9", 4), secs(12));
    assert_eq!(transmits(&actions), 1);
    h.engine.handle_transmitted(request, Ok(4), h.at(secs(12)));
    h.drain();
    assert_eq!(
        h.engine.binding(&b.id).map(|i| i.expires_at),
        Some(wall(secs(22)))
    );

    assert_eq!(h.timeout(secs(15)), vec![], "the second deadline moved");
    assert_eq!(h.timeout(ms(21_999)), vec![]);
    assert!(h.alive(b.id));
    assert_eq!(closes(&h.timeout(secs(22))), vec![b.id]);
    h.assert_counters_balance();
}

#[test]
fn poll_timeout_is_the_next_lease_deadline() {
    let mut h = Harness::new();
    assert_eq!(h.engine.poll_timeout(), None);
    let long = h.bind_lease(30, Duration::ZERO);
    assert_eq!(h.engine.poll_timeout(), Some(h.at(secs(30))));
    let short = h.bind_lease(10, secs(1));
    assert_eq!(h.engine.poll_timeout(), Some(h.at(secs(11))));

    assert_eq!(closes(&h.timeout(secs(11))), vec![short.id]);
    assert_eq!(h.engine.poll_timeout(), Some(h.at(secs(30))));
    assert_eq!(closes(&h.timeout(secs(30))), vec![long.id]);
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn handle_timeout_at_poll_timeout_expires_exactly_then() {
    let mut h = Harness::new();
    let b = h.bind_lease(7, ms(250));
    let at = h.engine.poll_timeout().expect("a lease is pending");
    assert_eq!(at, h.at(ms(7_250)));
    h.engine.handle_timeout(at);
    assert_eq!(h.drain(), vec![Action::CloseSocket { binding: b.id }]);
    assert_eq!(h.engine.binding_count(), 0);
}

#[test]
fn bindings_expiring_at_the_same_instant_close_in_an_order_independent_of_their_ids() {
    // Six bindings, all due at 20 s, reached different ways: bound with a lease
    // that ends then, renewed to end then, or bound after an unbind freed a slot.
    // The order they close in must depend on the inputs only, never on the
    // random ids (a seeded hash map or an id-ordered set would leak them).
    fn close_order(seed: [u8; 32]) -> Vec<usize> {
        let mut h = Harness::with(Config::default(), seed);
        let mut ids: Vec<BindingId> = (0..4).map(|i| h.bind_lease(100, secs(i)).id).collect();
        h.ask(Command::Unbind { binding: ids[1] }, secs(4));
        ids.push(h.bind_lease(15, secs(5)).id);
        ids.push(h.bind_lease(14, secs(6)).id);
        for i in [0, 2, 3] {
            h.heartbeat(ids[i], Some(10), secs(10));
        }
        assert_eq!(h.timeout(ms(19_999)), vec![]);
        let actions = h.timeout(secs(20));
        assert_eq!(actions.len(), 5, "only the closes: {actions:?}");
        closes(&actions)
            .iter()
            .map(|id| ids.iter().position(|x| x == id).expect("a bound id"))
            .collect()
    }
    let order = close_order(SEED);
    let mut each_once = order.clone();
    each_once.sort_unstable();
    assert_eq!(each_once, vec![0, 2, 3, 4, 5]);
    assert_eq!(close_order(SEED), order);
    assert_eq!(close_order(OTHER_SEED), order);
    assert_eq!(close_order([0xFF; 32]), order);
}

#[test]
fn time_going_backwards_is_clamped_without_early_expiry() {
    let mut h = Harness::new();
    let b = h.bind_lease(10, secs(5));
    assert_eq!(b.expires_at, wall(secs(15)));
    h.subscribe(b.id, secs(5));

    assert_eq!(h.timeout(secs(14)), vec![]);
    // Inputs from the past are treated as happening now (14 s).
    assert_eq!(h.timeout(secs(1)), vec![]);
    assert_eq!(h.engine.now(), h.at(secs(14)));
    let actions = h.datagram(b.id, "late", secs(2));
    let [Action::Deliver {
        event: Event::Datagram(d),
        ..
    }] = actions.as_slice()
    else {
        panic!("one delivery, got {actions:?}");
    };
    assert_eq!(d.received_at, wall(secs(14)));
    assert!(h.alive(b.id));

    // A heartbeat stamped 0 s renews from 14 s, not from 0 s (which would be past).
    let Reply::Heartbeat(Ok(info)) = h.heartbeat(b.id, None, Duration::ZERO) else {
        panic!("heartbeat succeeds");
    };
    assert_eq!(info.expires_at, wall(secs(24)));
    assert_eq!(h.timeout(ms(23_999)), vec![]);
    assert!(h.alive(b.id));
    let actions = h.timeout(secs(24));
    assert_eq!(closes(&actions), vec![b.id]);
}

// ----- the close sequence -------------------------------------------------------------

#[test]
fn expiry_ends_every_stream_then_closes_the_socket() {
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);
    let s1 = h.subscribe(b.id, secs(1));
    let s2 = h.subscribe(b.id, secs(2));
    assert_eq!(
        h.timeout(secs(10)),
        vec![
            Action::EndStream {
                subscriber: s1,
                reason: CloseReason::Expired
            },
            Action::EndStream {
                subscriber: s2,
                reason: CloseReason::Expired
            },
            Action::CloseSocket { binding: b.id },
        ]
    );
    assert_eq!(h.engine.subscriber_count(), 0);
    assert!(!h.alive(b.id));
}

#[test]
fn unbind_ends_every_stream_closes_the_socket_then_replies() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let s1 = h.subscribe(b.id, Duration::ZERO);
    let s2 = h.subscribe(b.id, Duration::ZERO);
    let (request, actions) = h.command(Command::Unbind { binding: b.id }, secs(1));
    assert_eq!(
        actions,
        vec![
            Action::EndStream {
                subscriber: s1,
                reason: CloseReason::Unbound
            },
            Action::EndStream {
                subscriber: s2,
                reason: CloseReason::Unbound
            },
            Action::CloseSocket { binding: b.id },
            Action::Reply {
                request,
                reply: Reply::Unbind(Ok(b.id))
            },
        ]
    );
    assert_eq!(h.engine.subscriber_count(), 0);
    assert_eq!(h.engine.poll_timeout(), None, "its lease timer is gone");
    let c = h.engine.counters();
    assert_eq!((c.bindings_closed, c.bindings_expired), (1, 0));
}

#[test]
fn shutdown_ends_every_stream_and_closes_every_socket_then_replies() {
    let mut h = Harness::new();
    let a = h.bind_loopback(Duration::ZERO);
    let b = h.bind_loopback(Duration::ZERO);
    let sa1 = h.subscribe(a.id, Duration::ZERO);
    let sb1 = h.subscribe(b.id, Duration::ZERO);
    let sb2 = h.subscribe(b.id, Duration::ZERO);
    let (request, actions) = h.command(Command::Shutdown, secs(1));
    let end = |subscriber| Action::EndStream {
        subscriber,
        reason: CloseReason::Shutdown,
    };
    assert_eq!(
        actions,
        vec![
            end(sa1),
            Action::CloseSocket { binding: a.id },
            end(sb1),
            end(sb2),
            Action::CloseSocket { binding: b.id },
            Action::Reply {
                request,
                reply: Reply::Shutdown
            },
        ]
    );
    assert!(h.engine.is_shut_down());
    assert_eq!(h.engine.binding_count(), 0);
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn datagram_after_unbind_is_counted_not_delivered() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(b.id, Duration::ZERO);
    assert_eq!(
        seen(&h.datagram(b.id, "before", ms(1)), s),
        datagrams_seen([1])
    );
    h.ask(Command::Unbind { binding: b.id }, ms(2));

    assert_eq!(h.datagram(b.id, "raced the close", ms(3)), vec![]);
    let c = h.engine.counters();
    assert_eq!(c.dropped_unbound, 1);
    assert_eq!((c.received, c.delivered), (1, 1), "{c:?}");
    h.assert_counters_balance();
}

#[test]
fn commands_on_unknown_ids_are_not_found() {
    let mut h = Harness::new();
    // An id this engine never handed out, and one it closed.
    let never = Harness::with(Config::default(), OTHER_SEED)
        .bind_loopback(Duration::ZERO)
        .id;
    let closed = h.bind_loopback(Duration::ZERO).id;
    h.ask(Command::Unbind { binding: closed }, Duration::ZERO);

    for id in [never, closed] {
        assert_eq!(
            h.ask(Command::Unbind { binding: id }, secs(1)),
            Reply::Unbind(Err(BindingError::NotFound))
        );
        let (request, actions) = h.command(send(id, "127.0.0.1:9", 1), secs(1));
        assert_eq!(
            actions,
            vec![Action::Reply {
                request,
                reply: Reply::Send(Err(SendError::NotFound))
            }]
        );
        assert_eq!(
            h.heartbeat(id, Some(10), secs(1)),
            Reply::Heartbeat(Err(BindingError::NotFound))
        );
        assert_eq!(
            h.ask(Command::Subscribe(SubscribeParams::new(id)), secs(1)),
            Reply::Subscribe(Err(SubscribeError::NotFound))
        );
    }
    let ghost = SubscriberId(999);
    assert_eq!(
        h.ask(Command::Unsubscribe { subscriber: ghost }, secs(1)),
        Reply::Unsubscribe(Err(UnsubscribeError::NotFound(ghost)))
    );
    // Outcomes for unknown things are ignored, never a panic.
    h.engine.handle_credit(ghost, 5, h.at(secs(1)));
    h.engine.handle_subscriber_gone(ghost, h.at(secs(1)));
    h.engine
        .handle_socket_error(never, ReceiveError::ConnectionRefused, h.at(secs(1)));
    assert_eq!(h.drain(), vec![]);
}

#[test]
fn shutdown_answers_binds_in_flight_and_closes_their_sockets_exactly_once() {
    let mut h = Harness::new();
    let live = h.bind_loopback(Duration::ZERO);
    let (req_opened, opened_late, addr) =
        h.start_bind(BindParams::new(sa("127.0.0.1:0")), Duration::ZERO);
    let (req_failed, failed_late, _) =
        h.start_bind(BindParams::new(sa("127.0.0.1:0")), Duration::ZERO);

    let (shutdown, actions) = h.command(Command::Shutdown, secs(1));
    assert_eq!(
        actions,
        vec![
            Action::Reply {
                request: req_opened,
                reply: Reply::Bind(Err(BindError::ShuttingDown))
            },
            Action::Reply {
                request: req_failed,
                reply: Reply::Bind(Err(BindError::ShuttingDown))
            },
            Action::CloseSocket { binding: live.id },
            Action::Reply {
                request: shutdown,
                reply: Reply::Shutdown
            },
        ]
    );

    // The socket opens after all: closed at once, never answered twice.
    let local = h.local_for(addr);
    h.engine
        .handle_socket_opened(opened_late, local, h.at(secs(2)));
    assert_eq!(
        h.drain(),
        vec![Action::CloseSocket {
            binding: opened_late
        }]
    );
    // A repeated report changes nothing.
    h.engine
        .handle_socket_opened(opened_late, local, h.at(secs(2)));
    assert_eq!(h.drain(), vec![]);
    // The other fails: already answered, so nothing to say.
    h.engine
        .handle_socket_failed(failed_late, OpenError::AddrInUse, h.at(secs(2)));
    assert_eq!(h.drain(), vec![]);

    for id in [live.id, opened_late] {
        assert_eq!(
            closes(&h.log).iter().filter(|&&c| c == id).count(),
            1,
            "{id}"
        );
    }
    let binds_answered = h
        .log
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Reply {
                    reply: Reply::Bind(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(binds_answered, 3);
    let c = h.engine.counters();
    assert_eq!((c.bindings_opened, c.bindings_closed), (2, 2));
    assert_eq!(c.unexpected_outcomes, 1);
    assert_eq!(h.engine.opening_count(), 0);
}

#[test]
fn bind_after_shutdown_is_refused() {
    let mut h = Harness::new();
    h.ask(Command::Shutdown, Duration::ZERO);
    let (request, actions) = h.command(Command::Bind(BindParams::new(sa("127.0.0.1:0"))), secs(1));
    assert_eq!(
        actions,
        vec![Action::Reply {
            request,
            reply: Reply::Bind(Err(BindError::ShuttingDown))
        }]
    );
    assert_eq!(h.engine.opening_count(), 0);
}

// ----- bind ---------------------------------------------------------------------------

#[test]
fn bind_asks_for_a_socket_and_replies_only_once_it_is_open() {
    let mut h = Harness::new();
    let params = BindParams {
        lease_secs: Some(10),
        ..BindParams::new(sa("127.0.0.1:0"))
    };
    let (request, binding, addr) = h.start_bind(params, Duration::ZERO);
    assert_eq!(addr, sa("127.0.0.1:0"));
    assert_eq!(h.engine.opening_count(), 1);
    assert_eq!(h.engine.binding_count(), 0);
    assert!(!h.alive(binding));
    assert_eq!(h.engine.poll_timeout(), None, "no lease before the socket");
    assert_eq!(h.ask(Command::Status, secs(1)), Reply::Status(vec![]));

    // The lease starts when the socket opens (2 s), not at the command.
    h.engine
        .handle_socket_opened(binding, sa("127.0.0.1:40123"), h.at(secs(2)));
    let actions = h.drain();
    let [Action::Reply {
        request: r,
        reply: Reply::Bind(Ok(info)),
    }] = actions.as_slice()
    else {
        panic!("one bind reply, got {actions:?}");
    };
    assert_eq!(*r, request);
    assert_eq!(info.id, binding);
    assert_eq!(info.local_addr, sa("127.0.0.1:40123"));
    assert_eq!(info.created_at, wall(secs(2)));
    assert_eq!(info.last_heartbeat, wall(secs(2)));
    assert_eq!(info.expires_at, wall(secs(12)));
    assert!(!info.allow_remote);
    assert_eq!(info.subscribers, 0);
    assert_eq!(h.engine.opening_count(), 0);
    assert_eq!(h.engine.binding(&binding).as_ref(), Some(&**info));
    assert_eq!(h.engine.counters().bindings_opened, 1);
}

#[test]
fn socket_open_failures_map_to_bind_errors() {
    let mut h = Harness::new();
    let addr = sa("127.0.0.1:4000");
    let cases = [
        (OpenError::AddrInUse, BindError::AddrInUse(addr)),
        (
            OpenError::PermissionDenied,
            BindError::PermissionDenied(addr),
        ),
        (OpenError::OutOfDescriptors, BindError::OutOfDescriptors),
        (
            OpenError::AddrNotAvailable,
            BindError::AddrNotAvailable(addr),
        ),
        (
            OpenError::Other(io::ErrorKind::Interrupted),
            BindError::Io {
                addr,
                kind: io::ErrorKind::Interrupted,
            },
        ),
    ];
    for (n, (failure, want)) in cases.into_iter().enumerate() {
        let (request, binding, _) = h.start_bind(BindParams::new(addr), Duration::ZERO);
        h.engine
            .handle_socket_failed(binding, failure, h.at(Duration::ZERO));
        assert_eq!(
            h.drain(),
            vec![Action::Reply {
                request,
                reply: Reply::Bind(Err(want))
            }],
            "{failure:?}"
        );
        assert!(!h.alive(binding));
        assert_eq!(h.engine.counters().open_failures, n as u64 + 1);
    }
    assert_eq!(h.engine.opening_count(), 0);
    assert_eq!(h.engine.binding_count(), 0);
    assert_eq!(
        closes(&h.log),
        vec![],
        "no socket was opened, none is closed"
    );
}

#[test]
fn max_bindings_counts_sockets_still_opening() {
    let mut h = Harness::with_config(Config {
        max_bindings: 2,
        ..Config::default()
    });
    h.bind_loopback(Duration::ZERO);
    let (_, opening, _) = h.start_bind(BindParams::new(sa("127.0.0.1:0")), Duration::ZERO);

    let (request, actions) = h.command(
        Command::Bind(BindParams::new(sa("127.0.0.1:0"))),
        Duration::ZERO,
    );
    assert_eq!(
        actions,
        vec![Action::Reply {
            request,
            reply: Reply::Bind(Err(BindError::TooManyBindings { max: 2 }))
        }]
    );

    // Once the opening socket fails, the slot is free again.
    h.engine
        .handle_socket_failed(opening, OpenError::AddrInUse, h.at(secs(1)));
    h.drain();
    h.bind_loopback(secs(1));
    assert_eq!(h.engine.binding_count(), 2);
}

#[test]
fn remote_bind_needs_both_the_binding_and_the_config_to_allow_it() {
    let remote = |allow_remote| BindParams {
        allow_remote,
        ..BindParams::new(sa("0.0.0.0:0"))
    };
    let mut h = Harness::new();
    assert_eq!(
        h.ask(Command::Bind(remote(false)), Duration::ZERO),
        Reply::Bind(Err(BindError::RemoteBindNotRequested(sa("0.0.0.0:0").ip())))
    );
    assert_eq!(
        h.ask(Command::Bind(remote(true)), Duration::ZERO),
        Reply::Bind(Err(BindError::RemoteDisabled))
    );
    assert_eq!(h.engine.opening_count(), 0);

    let mut h = Harness::with_config(Config {
        allow_remote: true,
        ..Config::default()
    });
    assert_eq!(
        h.ask(Command::Bind(remote(false)), Duration::ZERO),
        Reply::Bind(Err(BindError::RemoteBindNotRequested(sa("0.0.0.0:0").ip())))
    );
    let info = h.bind(remote(true), Duration::ZERO);
    assert!(info.allow_remote);
    assert_eq!(info.local_addr.ip(), sa("0.0.0.0:0").ip());
    // Multicast is never bindable, whatever is allowed.
    assert_eq!(
        h.ask(
            Command::Bind(BindParams {
                allow_remote: true,
                ..BindParams::new(sa("224.0.0.251:5353"))
            }),
            Duration::ZERO
        ),
        Reply::Bind(Err(BindError::NotUnicast(sa("224.0.0.251:0").ip())))
    );
}

#[test]
fn bind_port_must_lie_in_the_configured_range() {
    let mut h = Harness::with_config(Config {
        port_range: 40_000..=40_010,
        ..Config::default()
    });
    for port in [39_999, 40_011, 0] {
        let addr = SocketAddr::new(sa("127.0.0.1:0").ip(), port);
        assert_eq!(
            h.ask(Command::Bind(BindParams::new(addr)), Duration::ZERO),
            Reply::Bind(Err(BindError::PortNotAllowed {
                port,
                min: 40_000,
                max: 40_010
            })),
            "port {port}"
        );
    }
    for port in [40_000, 40_010] {
        let info = h.bind(
            BindParams::new(SocketAddr::new(sa("127.0.0.1:0").ip(), port)),
            Duration::ZERO,
        );
        assert_eq!(info.local_addr.port(), port);
    }
}

#[test]
fn request_id_already_in_flight_is_refused() {
    let mut h = Harness::new();
    let request = RequestId(77);
    let bind = || Command::Bind(BindParams::new(sa("127.0.0.1:0")));
    h.engine
        .handle_command(request, bind(), h.at(Duration::ZERO));
    let first = match h.drain().as_slice() {
        [Action::OpenSocket { binding, .. }] => *binding,
        other => panic!("{other:?}"),
    };

    h.engine
        .handle_command(request, bind(), h.at(Duration::ZERO));
    assert_eq!(
        h.drain(),
        vec![Action::Reply {
            request,
            reply: Reply::Bind(Err(BindError::DuplicateRequest))
        }]
    );
    let live = h.bind_loopback(Duration::ZERO);
    h.engine.handle_command(
        request,
        send(live.id, "127.0.0.1:9", 1),
        h.at(Duration::ZERO),
    );
    assert_eq!(
        h.drain(),
        vec![Action::Reply {
            request,
            reply: Reply::Send(Err(SendError::DuplicateRequest))
        }]
    );
    assert_eq!(h.engine.opening_count(), 1);

    // Answered, the id may be used again.
    h.engine
        .handle_socket_opened(first, sa("127.0.0.1:41000"), h.at(ms(1)));
    assert!(matches!(
        reply_to(&h.drain(), request),
        Some(Reply::Bind(Ok(_)))
    ));
    h.engine.handle_command(request, bind(), h.at(ms(2)));
    assert!(matches!(h.drain().as_slice(), [Action::OpenSocket { .. }]));
}

// ----- receive path -------------------------------------------------------------------

#[test]
fn sequence_numbers_start_at_one() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(b.id, Duration::ZERO);
    let actions = h.datagrams(b.id, 3, secs(1));
    assert_eq!(seen(&actions, s), datagrams_seen([1, 2, 3]));
    assert_eq!(
        actions[0],
        Action::Deliver {
            subscriber: s,
            event: Event::Datagram(Datagram {
                binding: b.id,
                seq: Seq(1),
                src: peer(),
                payload: Bytes::from_static(b"d1"),
                received_at: wall(secs(1)),
            })
        }
    );
    h.assert_counters_balance();
}

#[test]
fn datagrams_wait_in_the_ring_for_a_later_subscriber() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    assert_eq!(h.datagrams(b.id, 3, secs(1)), vec![]);
    let c = h.engine.counters();
    assert_eq!((c.received, c.pending, c.delivered), (3, 3, 0));
    h.assert_counters_balance();

    let (s, replayed) = h.subscribe_with(SubscribeParams::new(b.id), secs(2));
    assert_eq!(seen(&replayed, s), datagrams_seen([1, 2, 3]));
    assert_eq!(deliveries(&replayed), 3);
    let c = h.engine.counters();
    assert_eq!((c.received, c.pending, c.delivered), (3, 0, 3));
    h.assert_counters_balance();

    // A second fresh subscriber starts at what nobody has seen: only live ones.
    let s2 = h.subscribe(b.id, secs(3));
    let actions = h.datagram(b.id, "d4", secs(4));
    assert_eq!(seen(&actions, s), datagrams_seen([4]));
    assert_eq!(seen(&actions, s2), datagrams_seen([4]));
}

#[test]
fn ring_is_bounded_by_count_and_overflow_is_counted() {
    let mut h = Harness::with_config(Config {
        ring_datagrams: 4,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    h.datagrams(b.id, 10, secs(1));
    let c = h.engine.counters();
    assert_eq!((c.received, c.dropped_overflow, c.pending), (10, 6, 4));
    h.assert_counters_balance();

    let (s, replayed) = h.subscribe_with(SubscribeParams::new(b.id), secs(2));
    assert_eq!(seen(&replayed, s), datagrams_seen(7..=10));
    let info = h.engine.binding(&b.id).expect("live");
    assert_eq!(info.counters.dropped_overflow, 6);
    assert_eq!(info.counters.delivered, 4);
    h.assert_counters_balance();
}

#[test]
fn ring_is_bounded_by_bytes_but_keeps_the_newest_datagram() {
    let mut h = Harness::with_config(Config {
        ring_bytes: 10,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    for i in 1..=5 {
        h.datagram(b.id, &format!("dd{i:02}"), ms(i)); // 4 bytes each
    }
    // 2 × 4 bytes fit in 10; the third would not.
    assert_eq!(h.engine.counters().dropped_overflow, 3);
    assert_eq!(h.engine.counters().pending, 2);

    // One datagram larger than the whole budget is still held, alone.
    h.datagram(b.id, "twenty bytes exactly", ms(6));
    let c = h.engine.counters();
    assert_eq!((c.dropped_overflow, c.pending), (5, 1));
    h.assert_counters_balance();

    let (s, replayed) = h.subscribe_with(SubscribeParams::new(b.id), secs(1));
    assert_eq!(seen(&replayed, s), datagrams_seen([6]));
    h.assert_counters_balance();
}

#[test]
fn resumed_subscriber_gets_exactly_the_datagrams_after_its_sequence_number() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let first = h.subscribe(b.id, Duration::ZERO);
    assert_eq!(
        seen(&h.datagrams(b.id, 5, secs(1)), first),
        datagrams_seen(1..=5)
    );

    let resume = |after| SubscribeParams {
        resume_after: Some(Seq(after)),
        ..SubscribeParams::new(b.id)
    };
    let (s, replayed) = h.subscribe_with(resume(2), secs(2));
    assert_eq!(seen(&replayed, s), datagrams_seen([3, 4, 5]));
    let (up_to_date, replayed) = h.subscribe_with(resume(5), secs(2));
    assert_eq!(replayed, vec![]);
    let (from_start, replayed) = h.subscribe_with(resume(0), secs(2));
    assert_eq!(seen(&replayed, from_start), datagrams_seen(1..=5));

    let live = h.datagram(b.id, "d6", secs(3));
    for sub in [first, s, up_to_date, from_start] {
        assert_eq!(seen(&live, sub), datagrams_seen([6]), "{sub}");
    }
    h.assert_counters_balance();
}

#[test]
fn resume_behind_the_ring_start_reports_the_exact_gap_first() {
    let mut h = Harness::with_config(Config {
        ring_datagrams: 4,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    h.datagrams(b.id, 10, secs(1)); // the ring holds 7..=10
    let (s, replayed) = h.subscribe_with(
        SubscribeParams {
            resume_after: Some(Seq(2)),
            ..SubscribeParams::new(b.id)
        },
        secs(2),
    );
    let mut want = vec![Seen::Lagged(4)]; // 3, 4, 5, 6
    want.extend(datagrams_seen(7..=10));
    assert_eq!(seen(&replayed, s), want);
    assert_eq!(h.engine.counters().missed, 4);
    h.assert_counters_balance();
}

#[test]
fn every_subscriber_gets_every_datagram() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let s1 = h.subscribe(b.id, Duration::ZERO);
    let s2 = h.subscribe(b.id, Duration::ZERO);
    let actions = h.datagrams(b.id, 3, secs(1));
    assert_eq!(seen(&actions, s1), datagrams_seen(1..=3));
    assert_eq!(seen(&actions, s2), datagrams_seen(1..=3));
    let info = h.engine.binding(&b.id).expect("live");
    assert_eq!(info.subscribers, 2);
    assert_eq!((info.counters.delivered, info.counters.deliveries), (3, 6));
    h.assert_counters_balance();
}

#[test]
fn subscriber_without_credit_gets_a_lagged_notice_with_the_exact_count_first() {
    let mut h = Harness::with_config(Config {
        ring_datagrams: 4,
        delivery_window: 2,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    let slow = h.subscribe(b.id, Duration::ZERO);
    let fast = h.subscribe(b.id, Duration::ZERO);
    for i in 1..=10u64 {
        let at = ms(i);
        let actions = h.datagram(b.id, &format!("d{i}"), at);
        // The fast subscriber's writer drains at once; the slow one's never does.
        let written = seen(&actions, fast).len() as u32;
        h.credit(fast, written, at);
    }
    // The slow subscriber got 1 and 2, then ran out of credit; 3..=6 left the ring.
    assert_eq!(seen(&h.log, slow), datagrams_seen([1, 2]));

    let mut slow_seen = h.credit(slow, 2, secs(1));
    slow_seen.extend(h.credit(slow, 2, secs(1)));
    slow_seen.extend(h.credit(slow, 2, secs(1)));
    let mut want = vec![Seen::Lagged(4), Seen::Datagram(7)];
    want.extend(datagrams_seen(8..=10));
    assert_eq!(seen(&slow_seen, slow), want);

    assert_eq!(seen(&h.log, fast), datagrams_seen(1..=10), "unaffected");
    let c = h.engine.counters();
    assert_eq!(c.missed, 4);
    assert_eq!((c.delivered, c.dropped_overflow, c.pending), (10, 0, 0));
    h.assert_counters_balance();
}

#[test]
fn kernel_drops_are_counted_and_reported_in_each_subscribers_next_lagged_notice() {
    let mut h = Harness::with_config(Config {
        delivery_window: 2,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    let keeping_up = h.subscribe(b.id, Duration::ZERO);
    let stalled = h.subscribe(b.id, Duration::ZERO);
    // The stalled subscriber uses its whole window on d1 and d2.
    let actions = h.datagrams(b.id, 2, ms(1));
    h.credit(keeping_up, seen(&actions, keeping_up).len() as u32, ms(3));

    // The kernel dropped 5 datagrams before the socket delivered d3.
    h.engine.handle_kernel_drops(b.id, 5, h.at(ms(4)));
    let drops = h.drain();
    assert_eq!(
        seen(&drops, keeping_up),
        vec![Seen::Lagged(5)],
        "told at once"
    );
    assert!(seen(&drops, stalled).is_empty(), "no credit: nothing yet");
    let actions = h.datagram(b.id, "d3", ms(5));
    assert_eq!(seen(&actions, keeping_up), datagrams_seen([3]));

    // Credit returns: the stalled subscriber learns of the drops before d3.
    let actions = h.credit(stalled, 2, ms(6));
    assert_eq!(
        seen(&actions, stalled),
        vec![Seen::Lagged(5), Seen::Datagram(3)]
    );

    let c = h.engine.binding(&b.id).expect("live").counters;
    assert_eq!(c.dropped_kernel, 5);
    assert_eq!(c.missed, 10, "each of the two subscribers missed the 5");
    assert_eq!(c.received, 3, "kernel drops were never received");
    assert_eq!(h.engine.counters().dropped_kernel, 5);
    h.assert_counters_balance();
}

#[test]
fn kernel_drops_add_up_in_one_notice_and_stay_counted_after_the_binding_closes() {
    let mut h = Harness::with_config(Config {
        delivery_window: 1,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(b.id, Duration::ZERO);
    h.datagram(b.id, "d1", ms(1));
    h.engine.handle_kernel_drops(b.id, 2, h.at(ms(2)));
    h.engine.handle_kernel_drops(b.id, 0, h.at(ms(2)));
    h.engine.handle_kernel_drops(b.id, 3, h.at(ms(3)));
    assert!(seen(&h.drain(), s).is_empty(), "out of credit");
    let actions = h.credit(s, 1, ms(4));
    assert_eq!(seen(&actions, s), vec![Seen::Lagged(5)]);

    h.ask(Command::Unbind { binding: b.id }, ms(5));
    // Drops reported after the close (they raced it) belong to no binding.
    h.engine.handle_kernel_drops(b.id, 7, h.at(ms(6)));
    assert!(h.drain().is_empty());
    let c = h.engine.counters();
    assert_eq!((c.dropped_kernel, c.missed), (5, 5));
    h.assert_counters_balance();
}

/// Found by the `engine` fuzz target's kernel-drop op: a bogus count from the
/// runtime overflowed the counters (a panic in debug builds).
#[test]
fn kernel_drop_counts_saturate_instead_of_overflowing() {
    let mut h = Harness::new();
    let first = h.bind_loopback(Duration::ZERO);
    let second = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(first.id, Duration::ZERO);
    for binding in [first.id, first.id, second.id] {
        h.engine.handle_kernel_drops(binding, u64::MAX, h.at(ms(1)));
    }
    // With credit to spare, each report is its own notice.
    let actions = h.drain();
    assert_eq!(
        seen(&actions, s),
        vec![Seen::Lagged(u64::MAX), Seen::Lagged(u64::MAX)]
    );
    let c = h.engine.binding(&first.id).expect("live").counters;
    assert_eq!((c.dropped_kernel, c.missed), (u64::MAX, u64::MAX));
    let c = h.engine.counters();
    assert_eq!((c.dropped_kernel, c.missed), (u64::MAX, u64::MAX));
}

#[test]
fn kernel_drops_without_subscribers_are_counted_and_miss_nobody() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    h.engine.handle_kernel_drops(b.id, 4, h.at(ms(1)));
    assert!(h.drain().is_empty());
    let c = h.engine.binding(&b.id).expect("live").counters;
    assert_eq!((c.dropped_kernel, c.missed), (4, 0));
    let (_, status) = json(&Reply::Status(h.engine.bindings()));
    assert_eq!(status["bindings"][0]["counters"]["dropped_kernel"], 4);
}

/// A harness with a delivery window of 2 and one binding, subscribed once.
fn paced() -> (Harness, BindingInfo, SubscriberId) {
    let mut h = Harness::with_config(Config {
        delivery_window: 2,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(b.id, ms(1));
    (h, b, s)
}

fn pause(binding: BindingId) -> Action {
    Action::PauseReads { binding }
}

fn resume(binding: BindingId) -> Action {
    Action::ResumeReads { binding }
}

fn flow(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| matches!(a, Action::PauseReads { .. } | Action::ResumeReads { .. }))
        .cloned()
        .collect()
}

#[test]
fn reads_pause_only_while_every_subscriber_is_out_of_credit_with_datagrams_waiting() {
    let (mut h, b, s) = paced();
    let unsubscribed = h.bind_loopback(Duration::ZERO);
    assert_eq!(
        flow(&h.datagrams(unsubscribed.id, 3, ms(1))),
        vec![],
        "nobody subscribed: waiting in the ring is no reason to pause"
    );
    assert_eq!(
        flow(&h.datagrams(b.id, 2, ms(2))),
        vec![],
        "1 and 2 delivered"
    );
    let actions = h.datagram(b.id, "d3", ms(5));
    assert_eq!(
        actions,
        vec![pause(b.id)],
        "out of credit with 3 undelivered"
    );
    assert!(h.engine.is_reading_paused(&b.id));
    assert_eq!(
        h.engine.poll_timeout(),
        Some(h.at(ms(15))),
        "the pause's limit is the next deadline"
    );
    // Credit for one: d3 goes out, and the subscriber is out of credit again
    // with nothing waiting: reading is what it needs.
    let actions = h.credit(s, 1, ms(6));
    assert_eq!(deliveries(&actions), 1);
    assert_eq!(flow(&actions), vec![resume(b.id)]);
    assert_eq!(actions.last(), Some(&resume(b.id)), "after the delivery");
    assert!(!h.engine.is_reading_paused(&b.id));
    assert_eq!(
        h.engine.poll_timeout(),
        Some(b_deadline(&h, &b)),
        "the pause's deadline is gone"
    );
    let unknown: BindingId = "1b4e28ba-2fa1-41d2-883f-0016d3cca427".parse().unwrap();
    assert!(!h.engine.is_reading_paused(&unknown));
}

fn b_deadline(h: &Harness, b: &BindingInfo) -> Instant {
    h.at(b.lease.as_duration())
}

#[test]
fn credit_that_cannot_catch_up_keeps_reads_paused_without_a_second_pause() {
    let (mut h, b, s) = paced();
    h.datagrams(b.id, 2, ms(2));
    assert_eq!(h.datagram(b.id, "d3", ms(4)), vec![pause(b.id)]);
    // A datagram read before the pause took effect: no second pause.
    assert_eq!(flow(&h.datagram(b.id, "d4", ms(4))), vec![]);
    // One credit delivers d3; d4 still waits and the credit is used up.
    let actions = h.credit(s, 1, ms(5));
    assert_eq!((deliveries(&actions), flow(&actions)), (1, vec![]));
    assert!(h.engine.is_reading_paused(&b.id));
    let actions = h.credit(s, 2, ms(6));
    assert_eq!(
        (deliveries(&actions), flow(&actions)),
        (1, vec![resume(b.id)])
    );
}

#[test]
fn a_pause_ends_at_its_limit_and_does_not_return_until_the_subscribers_catch_up() {
    let (mut h, b, s) = paced();
    h.datagrams(b.id, 2, ms(2));
    assert_eq!(h.datagram(b.id, "d3", ms(4)), vec![pause(b.id)]);
    assert_eq!(h.timeout(ms(13)), vec![], "not yet");
    assert_eq!(
        h.timeout(ms(14)),
        vec![resume(b.id)],
        "at the limit exactly"
    );
    assert!(!h.engine.is_reading_paused(&b.id));
    // Still behind, but the pause ran out: read, and the ring counts the lag.
    assert_eq!(flow(&h.datagrams(b.id, 3, ms(15))), vec![]);
    // Caught up (credit for everything): the next backlog pauses again.
    let actions = h.credit(s, 2, ms(20));
    assert_eq!(flow(&actions), vec![]);
    h.credit(s, 2, ms(21));
    h.credit(s, 2, ms(22));
    assert_eq!(h.engine.binding_counters(&b.id).expect("live").pending, 0);
    h.datagrams(b.id, 2, ms(30));
    assert_eq!(flow(&h.datagram(b.id, "again", ms(33))), vec![pause(b.id)]);
}

#[test]
fn a_subscriber_leaving_or_joining_resumes_reads() {
    let (mut h, b, s) = paced();
    h.datagrams(b.id, 3, ms(2));
    assert!(h.engine.is_reading_paused(&b.id));
    h.engine.handle_subscriber_gone(s, h.at(ms(5)));
    assert_eq!(h.drain(), vec![resume(b.id)], "nobody left to wait for");

    let (s1, replayed) = h.subscribe_with(SubscribeParams::new(b.id), ms(6));
    assert_eq!(deliveries(&replayed), 1, "d3 waited for a subscriber");
    h.datagrams(b.id, 3, ms(7));
    assert!(h.engine.is_reading_paused(&b.id));
    let (_, actions) = h.command(Command::Subscribe(SubscribeParams::new(b.id)), ms(10));
    assert_eq!(
        flow(&actions),
        vec![resume(b.id)],
        "the new subscriber takes what waits, with credit to spare"
    );
    h.datagrams(b.id, 2, ms(11));
    assert!(h.engine.is_reading_paused(&b.id), "both out of credit");
    let (_, actions) = h.command(Command::Unsubscribe { subscriber: s1 }, ms(12));
    assert_eq!(flow(&actions), vec![], "the other one is still behind");
}

#[test]
fn a_paused_binding_that_closes_gets_no_resume() {
    let (mut h, b, _) = paced();
    h.datagrams(b.id, 3, ms(2));
    assert!(h.engine.is_reading_paused(&b.id));
    let (_, actions) = h.command(Command::Unbind { binding: b.id }, ms(5));
    assert_eq!(flow(&actions), vec![]);
    assert!(actions.contains(&Action::CloseSocket { binding: b.id }));
    assert_eq!(
        h.engine.poll_timeout(),
        None,
        "no pause deadline left behind"
    );
}

#[test]
fn a_zero_pause_limit_never_pauses() {
    let mut h = Harness::with_config(Config {
        delivery_window: 2,
        max_read_pause: Duration::ZERO,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    h.subscribe(b.id, ms(1));
    assert_eq!(flow(&h.datagrams(b.id, 5, ms(2))), vec![]);
    assert!(!h.engine.is_reading_paused(&b.id));
}

#[test]
fn a_pause_limit_above_a_second_is_refused() {
    let config = Config {
        max_read_pause: Duration::from_millis(1001),
        ..Config::default()
    };
    assert_eq!(
        config.validate(),
        Err(porthole_core::ConfigError::ReadPauseTooLong {
            value: Duration::from_millis(1001),
            max: porthole_core::MAX_READ_PAUSE,
        })
    );
}

#[test]
fn credit_beyond_the_window_is_clamped() {
    let mut h = Harness::with_config(Config {
        delivery_window: 4,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(b.id, Duration::ZERO);
    assert_eq!(
        seen(&h.datagrams(b.id, 10, secs(1)), s),
        datagrams_seen(1..=4)
    );
    assert_eq!(seen(&h.credit(s, 1_000, secs(2)), s), datagrams_seen(5..=8));
    assert_eq!(
        seen(&h.credit(s, u32::MAX, secs(2)), s),
        datagrams_seen([9, 10])
    );
    h.assert_counters_balance();
}

#[test]
fn subscribers_beyond_the_maximum_are_refused() {
    let mut h = Harness::with_config(Config {
        max_subscribers_per_binding: 2,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    let s1 = h.subscribe(b.id, Duration::ZERO);
    h.subscribe(b.id, Duration::ZERO);
    assert_eq!(
        h.ask(
            Command::Subscribe(SubscribeParams::new(b.id)),
            Duration::ZERO
        ),
        Reply::Subscribe(Err(SubscribeError::TooManySubscribers { max: 2 }))
    );
    h.ask(Command::Unsubscribe { subscriber: s1 }, Duration::ZERO);
    h.subscribe(b.id, Duration::ZERO);
    assert_eq!(h.engine.subscriber_count(), 2);
}

#[test]
fn unsubscribe_ends_the_stream_as_unsubscribed() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(b.id, Duration::ZERO);
    let other = h.subscribe(b.id, Duration::ZERO);
    let (request, actions) = h.command(Command::Unsubscribe { subscriber: s }, secs(1));
    assert_eq!(
        actions,
        vec![
            Action::EndStream {
                subscriber: s,
                reason: CloseReason::Unsubscribed
            },
            Action::Reply {
                request,
                reply: Reply::Unsubscribe(Ok(s))
            },
        ]
    );
    let actions = h.datagram(b.id, "d1", secs(2));
    assert_eq!(seen(&actions, s), vec![]);
    assert_eq!(seen(&actions, other), datagrams_seen([1]));
    assert_eq!(
        h.ask(Command::Unsubscribe { subscriber: s }, secs(3)),
        Reply::Unsubscribe(Err(UnsubscribeError::NotFound(s)))
    );
}

#[test]
fn subscriber_gone_emits_nothing_and_gets_nothing_more() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(b.id, Duration::ZERO);
    h.engine.handle_subscriber_gone(s, h.at(secs(1)));
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.engine.subscriber_count(), 0);

    assert_eq!(h.datagram(b.id, "d1", secs(2)), vec![]);
    assert_eq!(
        h.engine.counters().pending,
        1,
        "it waits for the next subscriber"
    );
    // The binding's close has no stream left to end.
    let (request, actions) = h.command(Command::Unbind { binding: b.id }, secs(3));
    assert_eq!(
        actions,
        vec![
            Action::CloseSocket { binding: b.id },
            Action::Reply {
                request,
                reply: Reply::Unbind(Ok(b.id))
            },
        ]
    );
    let c = h.engine.counters();
    assert_eq!(c.dropped_closed, 1);
    h.assert_counters_balance();
}

#[test]
fn subscriber_gone_after_its_lease_ran_out_gets_no_end_stream() {
    // The runtime wakes late: the lease ran out at 10 s, and the stream's loss is
    // the first input after it. The close still happens, without the stream.
    let mut h = Harness::new();
    let b = h.bind_lease(10, Duration::ZERO);
    let gone = h.subscribe(b.id, secs(1));
    let other = h.subscribe(b.id, secs(1));
    h.engine.handle_subscriber_gone(gone, h.at(secs(11)));
    assert_eq!(
        h.drain(),
        vec![
            Action::EndStream {
                subscriber: other,
                reason: CloseReason::Expired
            },
            Action::CloseSocket { binding: b.id },
        ]
    );
    assert_eq!(h.engine.subscriber_count(), 0);
}

#[test]
fn subscriber_gone_after_its_idle_timeout_passed_gets_no_end_stream() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let (s, _) = h.subscribe_with(
        SubscribeParams {
            idle_timeout: Some(secs(5)),
            ..SubscribeParams::new(b.id)
        },
        secs(1),
    );
    h.engine.handle_subscriber_gone(s, h.at(secs(7)));
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.engine.subscriber_count(), 0);
    assert_eq!(h.engine.poll_timeout(), Some(h.at(secs(300))));
}

#[test]
fn idle_subscriber_is_ended_when_its_idle_timeout_passes() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let (s, _) = h.subscribe_with(
        SubscribeParams {
            idle_timeout: Some(secs(5)),
            ticket: None,
            ..SubscribeParams::new(b.id)
        },
        secs(1),
    );
    assert_eq!(h.engine.poll_timeout(), Some(h.at(secs(6))));
    assert_eq!(h.timeout(ms(5_999)), vec![]);
    assert_eq!(
        h.timeout(secs(6)),
        vec![Action::EndStream {
            subscriber: s,
            reason: CloseReason::Idle
        }]
    );
    assert_eq!(h.engine.subscriber_count(), 0);
    assert!(h.alive(b.id), "the binding outlives its idle stream");
    assert_eq!(h.engine.poll_timeout(), Some(h.at(secs(300))));
}

#[test]
fn traffic_postpones_the_idle_timeout() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let (s, _) = h.subscribe_with(
        SubscribeParams {
            idle_timeout: Some(secs(5)),
            ticket: None,
            ..SubscribeParams::new(b.id)
        },
        secs(1),
    );
    assert_eq!(
        seen(&h.datagram(b.id, "d1", secs(4)), s),
        datagrams_seen([1])
    );
    assert_eq!(h.timeout(secs(6)), vec![]);
    assert_eq!(h.timeout(ms(8_999)), vec![]);
    assert_eq!(
        h.timeout(secs(9)),
        vec![Action::EndStream {
            subscriber: s,
            reason: CloseReason::Idle
        }]
    );
    h.assert_counters_balance();
}

// ----- send path ----------------------------------------------------------------------

#[test]
fn send_transmits_then_replies_with_the_runtime_outcome() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let (request, actions) = h.command(send(b.id, "127.0.0.1:9", 5), secs(1));
    assert_eq!(
        actions,
        vec![Action::Transmit {
            request,
            binding: b.id,
            dest: sa("127.0.0.1:9"),
            payload: Bytes::from(vec![0xAB; 5]),
        }]
    );
    h.engine.handle_transmitted(request, Ok(5), h.at(secs(1)));
    assert_eq!(
        h.drain(),
        vec![Action::Reply {
            request,
            reply: Reply::Send(Ok(5))
        }]
    );
    let info = h.engine.binding(&b.id).expect("live");
    assert_eq!((info.counters.sent, info.counters.sent_bytes), (1, 5));
    assert_eq!(h.engine.counters().sent, 1);
}

#[test]
fn transmit_errors_are_counted_and_never_close_the_binding() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    for (n, error) in [
        TransmitError::ConnectionRefused,
        TransmitError::NoBuffers,
        TransmitError::Other(io::ErrorKind::Interrupted),
    ]
    .into_iter()
    .enumerate()
    {
        let (request, actions) = h.command(send(b.id, "127.0.0.1:9", 3), secs(n as u64));
        assert_eq!(transmits(&actions), 1);
        h.engine
            .handle_transmitted(request, Err(error), h.at(secs(n as u64)));
        assert_eq!(
            h.drain(),
            vec![Action::Reply {
                request,
                reply: Reply::Send(Err(SendError::Transmit(error)))
            }]
        );
        assert!(h.alive(b.id));
    }
    let info = h.engine.binding(&b.id).expect("live");
    assert_eq!(info.counters.send_errors, 3);
    assert_eq!(info.counters.icmp_errors, 1, "connection refused is ICMP");
    assert_eq!(info.counters.sent, 0);
    assert_eq!(h.engine.counters().send_errors, 3);
    assert_eq!(closes(&h.log), vec![]);
}

#[test]
fn socket_icmp_errors_are_counted_and_never_close_the_binding() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    let s = h.subscribe(b.id, Duration::ZERO);
    h.engine
        .handle_socket_error(b.id, ReceiveError::ConnectionRefused, h.at(secs(1)));
    h.engine
        .handle_socket_error(b.id, ReceiveError::Unreachable, h.at(secs(1)));
    h.engine.handle_socket_error(
        b.id,
        ReceiveError::Other(io::ErrorKind::Interrupted),
        h.at(secs(1)),
    );
    assert_eq!(h.drain(), vec![]);
    let info = h.engine.binding(&b.id).expect("still live");
    assert_eq!(
        (info.counters.icmp_errors, info.counters.recv_errors),
        (2, 1)
    );
    assert_eq!(
        seen(&h.datagram(b.id, "d1", secs(2)), s),
        datagrams_seen([1])
    );
}

/// Sends `len` bytes to `dest` and checks the refusal: the exact error, and no
/// `Transmit` (a refused destination never reaches the network).
fn assert_send_refused(
    h: &mut Harness,
    binding: BindingId,
    dest: &str,
    len: usize,
    want: SendError,
) {
    let (request, actions) = h.command(send(binding, dest, len), secs(1));
    assert_eq!(transmits(&actions), 0, "{dest}: nothing transmitted");
    assert_eq!(
        actions,
        vec![Action::Reply {
            request,
            reply: Reply::Send(Err(want))
        }],
        "{dest}"
    );
}

#[test]
fn unspecified_multicast_and_broadcast_destinations_are_refused_without_transmitting() {
    let mut h = Harness::with_config(Config {
        allow_remote: true,
        ..Config::default()
    });
    // Even a remote-enabled binding may not send there.
    let b = h.bind(
        BindParams {
            allow_remote: true,
            ..BindParams::new(sa("0.0.0.0:0"))
        },
        Duration::ZERO,
    );
    for (dest, want) in [
        (
            "0.0.0.0:9",
            SendError::UnspecifiedDestination(sa("0.0.0.0:9")),
        ),
        (
            "224.0.0.251:5353",
            SendError::MulticastDestination(sa("224.0.0.251:5353")),
        ),
        (
            "255.255.255.255:9",
            SendError::BroadcastDestination(sa("255.255.255.255:9")),
        ),
        ("127.0.0.1:0", SendError::ZeroPort(sa("127.0.0.1:0"))),
    ] {
        assert_send_refused(&mut h, b.id, dest, 1, want);
    }
    let v6 = h.bind(
        BindParams {
            allow_remote: true,
            ..BindParams::new(sa("[::]:0"))
        },
        Duration::ZERO,
    );
    assert_send_refused(
        &mut h,
        v6.id,
        "[::]:9",
        1,
        SendError::UnspecifiedDestination(sa("[::]:9")),
    );
    assert_send_refused(
        &mut h,
        v6.id,
        "[ff02::1]:9",
        1,
        SendError::MulticastDestination(sa("[ff02::1]:9")),
    );
    assert_eq!(transmits(&h.log), 0);
    assert_eq!(
        h.engine.counters().sent + h.engine.counters().send_errors,
        0
    );
}

#[test]
fn non_loopback_destination_is_refused_without_allow_remote() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    for dest in ["192.0.2.1:9", "10.0.0.1:53", "[::ffff:192.0.2.1]:9"] {
        assert_send_refused(&mut h, b.id, dest, 1, SendError::RemoteNotAllowed(sa(dest)));
    }
    let v6 = h.bind(BindParams::new(sa("[::1]:0")), Duration::ZERO);
    assert_send_refused(
        &mut h,
        v6.id,
        "[2001:db8::1]:9",
        1,
        SendError::RemoteNotAllowed(sa("[2001:db8::1]:9")),
    );
    assert_eq!(transmits(&h.log), 0);
}

#[test]
fn deny_and_allow_lists_refuse_without_transmitting() {
    let net = |s: &str| s.parse::<Network>().expect("network");
    let mut h = Harness::with_config(Config {
        dest_deny: vec![net("127.0.0.2/32")],
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    assert_send_refused(
        &mut h,
        b.id,
        "127.0.0.2:9",
        1,
        SendError::Denied(sa("127.0.0.2:9")),
    );
    assert_eq!(
        transmits(&h.command(send(b.id, "127.0.0.3:9", 1), secs(1)).1),
        1
    );

    let mut h = Harness::with_config(Config {
        dest_allow: vec![net("127.0.0.1/32")],
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO);
    assert_send_refused(
        &mut h,
        b.id,
        "127.0.0.3:9",
        1,
        SendError::Denied(sa("127.0.0.3:9")),
    );
    assert_eq!(
        transmits(&h.command(send(b.id, "127.0.0.1:9", 1), secs(1)).1),
        1
    );
}

#[test]
fn destination_of_the_other_address_family_is_refused() {
    let mut h = Harness::new();
    let v4 = h.bind_loopback(Duration::ZERO);
    assert_send_refused(
        &mut h,
        v4.id,
        "[::1]:9",
        1,
        SendError::FamilyMismatch {
            dest: sa("[::1]:9"),
            local: v4.local_addr,
        },
    );
    let v6 = h.bind(BindParams::new(sa("[::1]:0")), Duration::ZERO);
    assert_send_refused(
        &mut h,
        v6.id,
        "127.0.0.1:9",
        1,
        SendError::FamilyMismatch {
            dest: sa("127.0.0.1:9"),
            local: v6.local_addr,
        },
    );
}

#[test]
fn payload_limit_is_65_507_bytes_over_ipv4_and_65_527_over_ipv6() {
    assert_eq!((MAX_PAYLOAD_V4, MAX_PAYLOAD_V6), (65_507, 65_527));
    let mut h = Harness::new();
    let v4 = h.bind_loopback(Duration::ZERO);
    assert_eq!(
        transmits(&h.command(send(v4.id, "127.0.0.1:9", 65_507), secs(1)).1),
        1
    );
    assert_send_refused(
        &mut h,
        v4.id,
        "127.0.0.1:9",
        65_508,
        SendError::PayloadTooLarge {
            len: 65_508,
            max: 65_507,
        },
    );
    let v6 = h.bind(BindParams::new(sa("[::1]:0")), Duration::ZERO);
    assert_eq!(
        transmits(&h.command(send(v6.id, "[::1]:9", 65_527), secs(1)).1),
        1
    );
    assert_send_refused(
        &mut h,
        v6.id,
        "[::1]:9",
        65_528,
        SendError::PayloadTooLarge {
            len: 65_528,
            max: 65_527,
        },
    );
}

// ----- ids ----------------------------------------------------------------------------

fn three_ids(seed: [u8; 32]) -> Vec<BindingId> {
    let mut h = Harness::with(Config::default(), seed);
    (0..3).map(|_| h.bind_loopback(Duration::ZERO).id).collect()
}

#[test]
fn binding_ids_are_the_same_from_the_same_seed_and_differ_across_seeds() {
    let ids = three_ids(SEED);
    assert_eq!(ids, three_ids(SEED));
    let others = three_ids(OTHER_SEED);
    for id in &ids {
        assert!(!others.contains(id), "{id}");
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
}

#[test]
fn binding_id_round_trips_through_its_url_safe_string_form() {
    for id in three_ids(SEED).into_iter().chain(three_ids(OTHER_SEED)) {
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert!(
            s.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'),
            "URL-safe: {s}"
        );
        assert_eq!(s.parse::<BindingId>(), Ok(id));
    }
    for bad in ["", "status", "not-a-binding-id", "../../../etc/passwd"] {
        assert!(bad.parse::<BindingId>().is_err(), "{bad:?}");
    }
}

/// A scenario touching every kind of input and output.
fn scenario(seed: [u8; 32], base: Instant) -> Vec<Action> {
    let mut h = Harness::at_base(
        Config {
            ring_datagrams: 4,
            delivery_window: 2,
            ..Config::default()
        },
        seed,
        base,
    );
    let a = h.bind_lease(10, Duration::ZERO);
    let b = h.bind(
        BindParams {
            lease_secs: Some(5),
            renew_on_traffic: true,
            ..BindParams::new(sa("[::1]:0"))
        },
        ms(500),
    );
    let (_, failed, _) = h.start_bind(BindParams::new(sa("127.0.0.1:4000")), ms(600));
    h.engine
        .handle_socket_failed(failed, OpenError::AddrInUse, h.at(ms(700)));
    h.drain();
    let a1 = h.subscribe(a.id, secs(1));
    let a2 = h.subscribe(a.id, secs(1));
    h.subscribe_with(
        SubscribeParams {
            idle_timeout: Some(secs(5)),
            ticket: None,
            ..SubscribeParams::new(b.id)
        },
        secs(1),
    );
    h.datagrams(a.id, 8, secs(2));
    h.credit(a1, 2, secs(3));
    h.datagrams(b.id, 3, secs(3));
    let (r1, _) = h.command(send(a.id, "127.0.0.1:9", 3), secs(4));
    let (r2, _) = h.command(send(b.id, "[::1]:9", 2), secs(4));
    h.engine.handle_transmitted(r1, Ok(3), h.at(secs(4)));
    h.engine
        .handle_transmitted(r2, Err(TransmitError::ConnectionRefused), h.at(secs(4)));
    h.drain();
    h.heartbeat(a.id, Some(20), secs(5));
    h.ask(Command::Unsubscribe { subscriber: a2 }, secs(6));
    h.credit(a1, 2, secs(6));
    h.timeout(secs(9));
    h.ask(Command::Status, secs(9));
    h.start_bind(BindParams::new(sa("127.0.0.1:0")), secs(10));
    h.ask(Command::Shutdown, secs(11));
    h.assert_counters_balance();
    h.log
}

#[test]
fn same_seed_and_inputs_give_the_same_actions() {
    let base = Instant::now();
    let first = scenario(SEED, base);
    assert_eq!(first, scenario(SEED, base));
    // The scenario exercises every kind of action, so the comparison means something.
    let kinds = |f: fn(&Action) -> bool| first.iter().filter(|a| f(a)).count();
    assert!(kinds(|a| matches!(a, Action::OpenSocket { .. })) >= 4);
    assert!(kinds(|a| matches!(a, Action::CloseSocket { .. })) >= 2);
    assert!(kinds(|a| matches!(a, Action::Transmit { .. })) >= 2);
    assert!(
        kinds(|a| matches!(
            a,
            Action::Deliver {
                event: Event::Lagged { .. },
                ..
            }
        )) >= 1
    );
    assert!(
        kinds(|a| matches!(
            a,
            Action::Deliver {
                event: Event::Datagram(_),
                ..
            }
        )) >= 8
    );
    assert!(kinds(|a| matches!(a, Action::EndStream { .. })) >= 3);
    assert!(kinds(|a| matches!(a, Action::Reply { .. })) >= 10);
    // Another seed changes the ids, hence the actions.
    assert_ne!(first, scenario(OTHER_SEED, base));
}

// ----- api codec ----------------------------------------------------------------------

fn json(reply: &Reply) -> (u16, serde_json::Value) {
    let r = encode_reply(reply);
    let body = serde_json::from_slice(&r.body).expect("JSON body");
    (r.status, body)
}

fn error_code(reply: &Reply) -> (u16, String) {
    let (status, body) = json(reply);
    let code = body["error"].as_str().expect("an error body").to_owned();
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    (status, code)
}

#[test]
fn engine_replies_encode_to_the_documented_statuses() {
    let mut h = Harness::with_config(Config {
        max_bindings: 2,
        max_subscribers_per_binding: 1,
        ..Config::default()
    });

    // 201 bind, with BindingInfo's fields.
    let (request, binding, _) = h.start_bind(BindParams::new(sa("127.0.0.1:0")), Duration::ZERO);
    h.engine
        .handle_socket_opened(binding, sa("127.0.0.1:40500"), h.at(Duration::ZERO));
    let bound = reply_to(&h.drain(), request).cloned().expect("bind reply");
    let (status, body) = json(&bound);
    assert_eq!(status, 201);
    assert_eq!(body["id"], binding.to_string());
    assert_eq!(body["local_addr"], "127.0.0.1:40500");
    assert_eq!(body["lease_secs"], 300);
    assert_eq!(body["allow_remote"], false);
    assert_eq!(body["created_at"], timestamp(wall(Duration::ZERO)));
    assert_eq!(body["created_at"], "2023-11-14T22:13:20.000000Z");
    assert_eq!(body["expires_at"], "2023-11-14T22:18:20.000000Z");

    // 200s.
    let (status, body) = json(&h.heartbeat(binding, None, secs(1)));
    assert_eq!(
        (status, body["renewed"].as_str()),
        (200, Some(&*binding.to_string()))
    );
    let (status, body) = json(&h.ask(Command::Status, secs(1)));
    assert_eq!(status, 200);
    assert_eq!(body["bindings"][0]["id"], binding.to_string());
    let (request, _) = h.command(send(binding, "127.0.0.1:9", 4), secs(1));
    h.engine.handle_transmitted(request, Ok(4), h.at(secs(1)));
    let sent = reply_to(&h.drain(), request).cloned().expect("send reply");
    assert_eq!(json(&sent), (200, serde_json::json!({ "sent": 4 })));

    // 404 not_found.
    let unknown = three_ids(OTHER_SEED)[0];
    assert_eq!(
        error_code(&h.ask(Command::Unbind { binding: unknown }, secs(1))),
        (404, "not_found".into())
    );
    assert_eq!(
        error_code(&h.heartbeat(unknown, None, secs(1))),
        (404, "not_found".into())
    );
    assert_eq!(
        error_code(&h.ask(send(unknown, "127.0.0.1:9", 1), secs(1))),
        (404, "not_found".into())
    );

    // 409 address_in_use.
    let (request, failing, _) = h.start_bind(BindParams::new(sa("127.0.0.1:5353")), secs(1));
    h.engine
        .handle_socket_failed(failing, OpenError::AddrInUse, h.at(secs(1)));
    let in_use = reply_to(&h.drain(), request).cloned().expect("bind reply");
    assert_eq!(error_code(&in_use), (409, "address_in_use".into()));

    // 503 out_of_resources.
    let (request, failing, _) = h.start_bind(BindParams::new(sa("127.0.0.1:0")), secs(1));
    h.engine
        .handle_socket_failed(failing, OpenError::OutOfDescriptors, h.at(secs(1)));
    let no_fds = reply_to(&h.drain(), request).cloned().expect("bind reply");
    assert_eq!(error_code(&no_fds), (503, "out_of_resources".into()));

    // 403 remote_not_allowed, 413 payload_too_large.
    let remote = h.ask(Command::Bind(BindParams::new(sa("0.0.0.0:0"))), secs(1));
    assert_eq!(error_code(&remote), (403, "remote_not_allowed".into()));
    let big = h.ask(send(binding, "127.0.0.1:9", 70_000), secs(1));
    assert_eq!(error_code(&big), (413, "payload_too_large".into()));

    // 429 too_many_subscribers and too_many_bindings.
    h.subscribe(binding, secs(1));
    let crowded = h.ask(Command::Subscribe(SubscribeParams::new(binding)), secs(1));
    assert_eq!(error_code(&crowded), (429, "too_many_subscribers".into()));
    h.bind_loopback(secs(1));
    let full = h.ask(Command::Bind(BindParams::new(sa("127.0.0.1:0"))), secs(1));
    assert_eq!(error_code(&full), (429, "too_many_bindings".into()));

    // 200 unbind, then 503 shutting_down.
    let (status, body) = json(&h.ask(Command::Unbind { binding }, secs(2)));
    assert_eq!(
        (status, body["unbound"].as_str()),
        (200, Some(&*binding.to_string()))
    );
    h.ask(Command::Shutdown, secs(2));
    let refused = h.ask(Command::Bind(BindParams::new(sa("127.0.0.1:0"))), secs(2));
    assert_eq!(error_code(&refused), (503, "shutting_down".into()));
}

// ----- memory bound -------------------------------------------------------------------

fn payload_of(len: usize) -> Bytes {
    Bytes::from(vec![0x5a; len])
}

#[test]
fn tiny_and_large_datagrams_on_unsubscribed_bindings_stay_within_the_memory_cap() {
    const CAP: usize = 1024 * 1024;
    let mut h = Harness::with_config(Config {
        max_buffered_bytes: CAP,
        ..Config::default()
    });
    let bindings: Vec<BindingId> = (0..8).map(|_| h.bind_loopback(Duration::ZERO).id).collect();
    // Interleave 1-byte datagrams to most bindings with 64 KiB ones to the last.
    let (tiny, large) = bindings.split_at(7);
    for round in 0..200u64 {
        for &b in tiny {
            h.engine
                .handle_datagram(b, peer(), payload_of(1), h.at(ms(round)));
        }
        h.engine
            .handle_datagram(large[0], peer(), payload_of(65_000), h.at(ms(round)));
        assert!(
            h.drain().is_empty(),
            "nobody subscribed: nothing to deliver"
        );
        assert!(h.engine.buffered_bytes() <= CAP, "round {round}");
    }
    let held: usize = h.engine.bindings().iter().map(|b| b.buffered_bytes).sum();
    assert_eq!(held, h.engine.buffered_bytes());
    // Each tiny binding holds its ring of 1-byte datagrams, no more.
    for info in h.engine.bindings().iter().filter(|b| tiny.contains(&b.id)) {
        assert_eq!(info.buffered_bytes, 200, "1 byte per datagram held");
    }
    let big = h.engine.binding(&large[0]).unwrap();
    assert!(big.buffered_bytes <= Config::default().ring_bytes + 65_000);
    h.assert_counters_balance();
}

#[test]
fn datagrams_beyond_the_memory_cap_are_dropped_and_counted() {
    let mut h = Harness::with_config(Config {
        max_buffered_bytes: 250,
        ..Config::default()
    });
    let a = h.bind_loopback(Duration::ZERO).id;
    let b = h.bind_loopback(Duration::ZERO).id;
    for _ in 0..2 {
        h.engine
            .handle_datagram(a, peer(), payload_of(100), h.at(ms(1)));
    }
    // 200 of 250 bytes held: 100 more would pass the cap.
    h.engine
        .handle_datagram(b, peer(), payload_of(100), h.at(ms(2)));
    h.engine
        .handle_datagram(b, peer(), payload_of(50), h.at(ms(3)));
    assert_eq!(h.engine.buffered_bytes(), 250);
    let info = h.engine.binding(&b).unwrap();
    assert_eq!(
        (
            info.counters.received,
            info.counters.dropped_memory,
            info.counters.pending
        ),
        (2, 1, 1)
    );
    assert_eq!(h.engine.counters().dropped_memory, 1);
    h.assert_counters_balance();

    // Unbinding gives the memory back.
    h.ask(Command::Unbind { binding: a }, ms(4));
    assert_eq!(h.engine.buffered_bytes(), 50);
    h.engine
        .handle_datagram(b, peer(), payload_of(100), h.at(ms(5)));
    assert_eq!(h.engine.binding(&b).unwrap().counters.dropped_memory, 1);
    h.assert_counters_balance();
}

#[test]
fn streams_hear_of_datagrams_dropped_for_memory_in_their_next_lagged() {
    let mut h = Harness::with_config(Config {
        max_buffered_bytes: 150,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO).id;
    let s = h.subscribe(b, Duration::ZERO);
    h.engine
        .handle_datagram(b, peer(), payload_of(100), h.at(ms(1)));
    assert_eq!(h.drain().len(), 1, "delivered, and in flight");
    // 100 in the ring and 100 in flight: the next one passes the cap.
    h.engine
        .handle_datagram(b, peer(), payload_of(10), h.at(ms(2)));
    let actions = h.drain();
    assert_eq!(
        actions,
        vec![Action::Deliver {
            subscriber: s,
            event: Event::Lagged { missed: 1 }
        }]
    );
    let c = h.engine.binding(&b).unwrap().counters;
    assert_eq!((c.dropped_memory, c.missed), (1, 1));
    h.assert_counters_balance();
}

#[test]
fn deliveries_in_flight_count_until_their_credit_returns() {
    let mut h = Harness::with_config(Config {
        ring_datagrams: 1,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO).id;
    let s = h.subscribe(b, Duration::ZERO);
    h.engine
        .handle_datagram(b, peer(), payload_of(300), h.at(ms(1)));
    h.engine
        .handle_datagram(b, peer(), payload_of(200), h.at(ms(2)));
    assert_eq!(h.drain().len(), 2);
    // The ring holds the newest (200); both are in flight to the stream.
    assert_eq!(h.engine.buffered_bytes(), 200 + 300 + 200);
    assert_eq!(h.engine.binding(&b).unwrap().buffered_bytes, 700);
    h.credit(s, 1, ms(3));
    assert_eq!(h.engine.buffered_bytes(), 200 + 200);
    h.credit(s, 5, ms(4));
    assert_eq!(h.engine.buffered_bytes(), 200);
    // A stream that goes away lets go of what it had in flight.
    h.engine
        .handle_datagram(b, peer(), payload_of(10), h.at(ms(5)));
    assert_eq!(h.drain().len(), 1);
    assert_eq!(h.engine.buffered_bytes(), 20);
    h.engine.handle_subscriber_gone(s, h.at(ms(6)));
    assert_eq!(h.engine.buffered_bytes(), 10);
}

// ----- stream tickets -------------------------------------------------------------------

fn issue(h: &mut Harness, binding: BindingId, at: Duration) -> Result<Ticket, TicketError> {
    match h.ask(Command::IssueTicket { binding }, at) {
        Reply::Ticket(result) => result.map(|issued| {
            assert_eq!(issued.binding, binding);
            assert_eq!(issued.lifetime, secs(30));
            assert_eq!(issued.expires_at, wall(at + secs(30)));
            issued.ticket
        }),
        other => panic!("expected a ticket reply, got {other:?}"),
    }
}

fn subscribe_with_ticket(
    h: &mut Harness,
    binding: BindingId,
    ticket: Ticket,
    at: Duration,
) -> Reply {
    let params = SubscribeParams {
        ticket: Some(ticket),
        ..SubscribeParams::new(binding)
    };
    h.ask(Command::Subscribe(params), at)
}

#[test]
fn a_ticket_opens_one_stream_of_its_binding() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO).id;
    let other = h.bind_loopback(Duration::ZERO).id;
    let ticket = issue(&mut h, b, secs(1)).unwrap();
    assert_eq!(
        subscribe_with_ticket(&mut h, other, ticket, secs(2)),
        Reply::Subscribe(Err(SubscribeError::InvalidTicket)),
        "another binding's ticket"
    );
    assert!(matches!(
        subscribe_with_ticket(&mut h, b, ticket, secs(2)),
        Reply::Subscribe(Ok(_))
    ));
    assert_eq!(
        subscribe_with_ticket(&mut h, b, ticket, secs(3)),
        Reply::Subscribe(Err(SubscribeError::InvalidTicket)),
        "a ticket is single-use"
    );
}

#[test]
fn a_ticket_expires_on_the_engine_clock() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO).id;
    let ticket = issue(&mut h, b, secs(1)).unwrap();
    assert_eq!(
        subscribe_with_ticket(&mut h, b, ticket, secs(31)),
        Reply::Subscribe(Err(SubscribeError::InvalidTicket))
    );
    let fresh = issue(&mut h, b, secs(40)).unwrap();
    assert_ne!(fresh, ticket, "tickets are random");
    assert!(matches!(
        subscribe_with_ticket(&mut h, b, fresh, secs(69)),
        Reply::Subscribe(Ok(_))
    ));
}

#[test]
fn unused_tickets_are_bounded_per_binding_and_die_with_it() {
    let mut h = Harness::with_config(Config {
        max_subscribers_per_binding: 2,
        ..Config::default()
    });
    let b = h.bind_loopback(Duration::ZERO).id;
    issue(&mut h, b, secs(1)).unwrap();
    issue(&mut h, b, secs(1)).unwrap();
    assert_eq!(
        issue(&mut h, b, secs(1)),
        Err(TicketError::TooManyTickets { max: 2 })
    );
    // Expired ones make room.
    assert!(issue(&mut h, b, secs(31)).is_ok());
    h.ask(Command::Unbind { binding: b }, secs(32));
    assert_eq!(issue(&mut h, b, secs(33)), Err(TicketError::NotFound));
}

#[test]
fn no_client_input_is_answered_with_a_server_error() {
    use porthole_core::api::{self, JsonResponse};
    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunConfig, TestRunner};

    // Whatever a client puts in a body, path segment or query, the codec and
    // the engine answer it with a 2xx or a 4xx; a 5xx is for the server's own
    // trouble (out of descriptors, shutting down), never for bad input.
    let mut runner = TestRunner::new(RunConfig::with_cases(512));
    let strategy = (
        any::<u8>(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "\\{\"(dest|payload|port|addr|lease_secs|allow_remote|datagrams)\":[^}]{0,40}\\}"
                .prop_map(String::into_bytes),
            (
                "(127\\.0\\.0\\.1|\\[::1\\]|\\[::ffff:127\\.0\\.0\\.1\\]|0\\.0\\.0\\.0|224\\.0\\.0\\.1|\\[::\\]|255\\.255\\.255\\.255)",
                any::<u16>(),
                "[A-Za-z0-9+/=]{0,12}"
            )
                .prop_map(|(ip, port, payload)| {
                    format!(r#"{{"dest":"{ip}:{port}","payload":"{payload}"}}"#).into_bytes()
                }),
            (
                "(127\\.0\\.0\\.1|::1|::ffff:127\\.0\\.0\\.1|0\\.0\\.0\\.0|::|10\\.0\\.0\\.1|224\\.0\\.0\\.1)",
                any::<u16>(),
                any::<bool>(),
                any::<Option<u64>>()
            )
                .prop_map(|(addr, port, remote, lease)| {
                    let lease = lease.map_or("null".to_owned(), |l| l.to_string());
                    format!(
                        r#"{{"addr":"{addr}","port":{port},"allow_remote":{remote},"lease_secs":{lease}}}"#
                    )
                    .into_bytes()
                }),
        ],
        "[ -~]{0,40}",
    );
    let checked = runner.run(&strategy, |(route, body, text)| {
        let mut h = Harness::new();
        // Bindings on every family, so sends meet every combination.
        let locals: Vec<BindingId> = ["127.0.0.1:0", "[::1]:0", "[::ffff:127.0.0.1]:0"]
            .iter()
            .map(|addr| h.bind(BindParams::new(sa(addr)), Duration::ZERO).id)
            .collect();
        let binding = locals[usize::from(route) % locals.len()];
        let command = match route % 6 {
            0 => api::decode_bind(&body).map(Command::Bind),
            1 => api::decode_send(&body).map(|(dest, payload)| Command::Send {
                binding,
                dest,
                payload,
            }),
            2 => api::decode_heartbeat(&body).map(|lease_secs| Command::Heartbeat {
                binding,
                lease_secs,
            }),
            3 => api::parse_binding_id(&text).map(|binding| Command::Unbind { binding }),
            4 => api::parse_recv_query(Some(&text)).map(|q| {
                Command::Subscribe(SubscribeParams {
                    ticket: q.ticket,
                    idle_timeout: q.idle_for,
                    ..SubscribeParams::new(binding)
                })
            }),
            _ => api::parse_last_event_id(text.as_bytes()).map(|after| {
                Command::Subscribe(SubscribeParams {
                    resume_after: Some(after),
                    ..SubscribeParams::new(binding)
                })
            }),
        };
        let status = match command {
            Err(e) => JsonResponse::from_error(&e).status,
            Ok(command) => {
                let (request, actions) = h.command(command, secs(1));
                match reply_to(&actions, request) {
                    Some(reply) => encode_reply(reply).status,
                    // A bind or send waits for its I/O outcome: nothing refused it.
                    None => 200,
                }
            }
        };
        prop_assert!(status < 500, "answered {status}");
        Ok(())
    });
    if let Err(e) = checked {
        panic!("{e}");
    }
}

// ----- counters for metrics -------------------------------------------------------------

#[test]
fn closes_are_counted_by_reason_and_heartbeats_as_renewals() {
    let mut h = Harness::new();
    let unbound = h.bind_loopback(Duration::ZERO);
    let expiring = h.bind_lease(5, Duration::ZERO);
    let _shut = h.bind_loopback(Duration::ZERO);
    for at in [1, 2] {
        let reply = h.ask(
            Command::Heartbeat {
                binding: unbound.id,
                lease_secs: None,
            },
            secs(at),
        );
        assert!(matches!(reply, Reply::Heartbeat(Ok(_))));
    }
    // A heartbeat for nothing renews nothing.
    h.ask(
        Command::Heartbeat {
            binding: "1b4e28ba-2fa1-41d2-883f-0016d3cca427".parse().unwrap(),
            lease_secs: None,
        },
        secs(2),
    );
    h.ask(
        Command::Unbind {
            binding: unbound.id,
        },
        secs(3),
    );
    h.timeout(secs(5));
    let c = h.engine.counters();
    assert_eq!(c.leases_renewed, 2);
    assert_eq!(
        (c.bindings_unbound, c.bindings_expired, c.bindings_shut_down),
        (1, 1, 0)
    );
    assert_eq!(expiring.lease, Lease::from_secs(5));

    // Shutdown closes the last one, and a socket that opens after it began.
    let (_, opening, addr) = h.start_bind(BindParams::new(sa("127.0.0.1:0")), secs(6));
    h.ask(Command::Shutdown, secs(6));
    h.engine.handle_socket_opened(opening, addr, h.at(secs(6)));
    h.drain();
    let c = h.engine.counters();
    assert_eq!(c.bindings_shut_down, 2);
    assert_eq!(
        c.bindings_closed,
        c.bindings_unbound + c.bindings_expired + c.bindings_shut_down
    );
}

#[test]
fn byte_and_error_totals_survive_the_close_of_their_binding() {
    let mut h = Harness::new();
    let b = h.bind_loopback(Duration::ZERO);
    h.datagram(b.id, "hello", secs(1));
    let (ok, _) = h.command(send(b.id, "127.0.0.1:9", 3), secs(1));
    h.engine.handle_transmitted(ok, Ok(3), h.at(secs(1)));
    let (refused, _) = h.command(send(b.id, "127.0.0.1:9", 3), secs(1));
    h.engine.handle_transmitted(
        refused,
        Err(TransmitError::ConnectionRefused),
        h.at(secs(1)),
    );
    h.engine.handle_socket_error(
        b.id,
        ReceiveError::Other(io::ErrorKind::Other),
        h.at(secs(1)),
    );
    h.drain();
    let live = h.engine.counters();
    h.ask(Command::Unbind { binding: b.id }, secs(2));
    let closed = h.engine.counters();
    for c in [live, closed] {
        assert_eq!((c.received_bytes, c.sent_bytes), (5, 3));
        assert_eq!((c.send_errors, c.icmp_errors, c.recv_errors), (1, 1, 1));
    }
    assert_eq!(
        closed.dropped_by_reason(),
        [
            ("overflow", 0),
            ("memory", 0),
            ("closed", 1),
            ("unbound", 0)
        ]
    );
}
