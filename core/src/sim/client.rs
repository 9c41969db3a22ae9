//! A simulated HTTP client of the daemon: binds, sends, subscribes (with and
//! without resume), heartbeats, unsubscribes, and sometimes vanishes.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;

use super::SimRng;
use crate::{
    BindParams, BindingId, CloseReason, Command, Event, Reply, Seq, SubscribeParams, SubscriberId,
};

/// Something a client does at a wake-up.
#[derive(Debug)]
pub(crate) enum Intent {
    /// Send a command to the engine.
    Command(Command),
    /// Close one of its streams without a word (the engine hears `subscriber gone`).
    DropStream(SubscriberId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Binding,
    Bound { id: BindingId, addr: SocketAddr },
}

/// One open event stream.
#[derive(Debug)]
struct Stream {
    id: SubscriberId,
    binding: BindingId,
    /// How long the client takes to read each event (a slow reader lags).
    read_time: Duration,
}

/// A client and its view of its binding and streams.
#[derive(Debug)]
pub(crate) struct Client {
    state: State,
    streams: Vec<Stream>,
    /// Last sequence number seen on its binding, for resuming.
    last_seq: Option<Seq>,
    /// Whether the client has stopped acting (it no longer heartbeats).
    vanished: bool,
    /// A slow reader reads every event slowly.
    slow_reader: bool,
    /// What it sends from its binding (a send is a slice of it: no
    /// allocation per send): byte `i` is `i` xor the port's low byte.
    payload: Bytes,
}

/// The longest payload a client sends, plus one.
const PAYLOAD: usize = 48;

/// Where a client may send: the peers, then the other clients' bindings. Looked
/// up in place rather than collected, since a client rarely sends when it wakes.
pub(crate) struct Targets<'a> {
    pub(crate) peers: &'a [SocketAddr],
    /// The clients before and after the one choosing (its own binding is no target).
    pub(crate) before: &'a [Client],
    pub(crate) after: &'a [Client],
}

impl Targets<'_> {
    fn others(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.before
            .iter()
            .chain(self.after)
            .filter_map(|c| c.bound_addr())
    }

    fn len(&self) -> usize {
        self.peers.len() + self.others().count()
    }

    fn get(&self, i: usize) -> Option<SocketAddr> {
        match i.checked_sub(self.peers.len()) {
            None => self.peers.get(i).copied(),
            Some(i) => self.others().nth(i),
        }
    }
}

/// Fixed ports the clients fight over, so some binds meet `AddrInUse`.
const CONTESTED_PORTS: [u16; 3] = [7000, 7001, 7002];

impl Client {
    pub(crate) fn new(rng: &mut SimRng) -> Self {
        Client {
            state: State::Idle,
            streams: Vec::new(),
            last_seq: None,
            vanished: false,
            slow_reader: rng.chance(250),
            payload: Bytes::new(),
        }
    }

    /// The client's binding address, if it holds one.
    pub(crate) fn bound_addr(&self) -> Option<SocketAddr> {
        match self.state {
            State::Bound { addr, .. } => Some(addr),
            _ => None,
        }
    }

    pub(crate) fn has_vanished(&self) -> bool {
        self.vanished
    }

    /// Acts: adds what to do now to `intents`; returns when to wake next
    /// (never, once vanished).
    pub(crate) fn wake(
        &mut self,
        rng: &mut SimRng,
        targets: &Targets<'_>,
        intents: &mut Vec<Intent>,
    ) -> Option<Duration> {
        if self.vanished {
            return None;
        }
        match self.state {
            State::Idle => intents.push(Intent::Command(self.bind(rng))),
            State::Binding => {}
            State::Bound { id, .. } => self.act(rng, id, targets, intents),
        }
        (!self.vanished)
            .then(|| rng.duration(Duration::from_millis(20)..=Duration::from_millis(2500)))
    }

    fn bind(&mut self, rng: &mut SimRng) -> Command {
        self.state = State::Binding;
        let ip = if rng.chance(25) {
            // Not loopback: refused by the default policy.
            Ipv4Addr::new(10, 0, 0, 1)
        } else {
            Ipv4Addr::LOCALHOST
        };
        let port = if rng.chance(250) {
            CONTESTED_PORTS[rng.index(CONTESTED_PORTS.len())]
        } else {
            0
        };
        let mut params = BindParams::new(SocketAddr::from((ip, port)));
        params.lease_secs = match rng.below(10) {
            0 => None,
            _ => Some(rng.in_range(1..=8)),
        };
        params.renew_on_traffic = rng.chance(250);
        Command::Bind(params)
    }

    fn act(
        &mut self,
        rng: &mut SimRng,
        id: BindingId,
        targets: &Targets<'_>,
        intents: &mut Vec<Intent>,
    ) {
        let roll = rng.below(100);
        let command = match roll {
            0..=29 => {
                // Never a valid destination: refused by policy.
                let multicast = SocketAddr::from((Ipv4Addr::new(224, 0, 0, 1), 9));
                let count = targets.len();
                let dest = if rng.chance(30) || count == 0 {
                    multicast
                } else {
                    targets.get(rng.index(count)).unwrap_or(multicast)
                };
                let len = rng.index(PAYLOAD);
                Command::Send {
                    binding: id,
                    dest,
                    payload: self.payload.slice(..len.min(self.payload.len())),
                }
            }
            30..=51 => Command::Heartbeat {
                binding: id,
                lease_secs: rng.chance(250).then(|| rng.in_range(0..=8)),
            },
            52..=63 => {
                let mut params = SubscribeParams::new(id);
                params.resume_after = match rng.below(3) {
                    0 => None,
                    1 => self.last_seq,
                    _ => Some(Seq(rng.in_range(0..=40))),
                };
                if rng.chance(125) {
                    params.idle_timeout =
                        Some(rng.duration(Duration::from_millis(200)..=Duration::from_secs(3)));
                }
                Command::Subscribe(params)
            }
            64..=69 => match self.pick_stream(rng) {
                Some(subscriber) => Command::Unsubscribe { subscriber },
                None => Command::Status,
            },
            70..=73 => {
                if let Some(subscriber) = self.pick_stream(rng) {
                    self.streams.retain(|s| s.id != subscriber);
                    intents.push(Intent::DropStream(subscriber));
                }
                return;
            }
            74..=76 => Command::Unbind { binding: id },
            77..=78 => Command::Status,
            79 => {
                self.vanished = true;
                // Half vanish with their streams open (the lease runs out), half
                // with their connections gone.
                if rng.chance(500) {
                    intents.extend(self.streams.drain(..).map(|s| Intent::DropStream(s.id)));
                }
                return;
            }
            // Otherwise idle: a lease may run out meanwhile.
            _ => return,
        };
        intents.push(Intent::Command(command));
    }

    fn pick_stream(&self, rng: &mut SimRng) -> Option<SubscriberId> {
        (!self.streams.is_empty()).then(|| self.streams[rng.index(self.streams.len())].id)
    }

    /// The reply to a command it sent.
    pub(crate) fn on_reply(&mut self, rng: &mut SimRng, command: &Command, reply: &Reply) {
        match reply {
            Reply::Bind(Ok(info)) => {
                self.state = State::Bound {
                    id: info.id,
                    addr: info.local_addr,
                };
                let port = info.local_addr.port() as u8;
                self.payload = (0..PAYLOAD).map(|i| (i as u8) ^ port).collect();
                self.last_seq = None;
            }
            Reply::Bind(Err(_)) => self.state = State::Idle,
            Reply::Unbind(_) | Reply::Heartbeat(Err(_)) => self.lose_binding(),
            Reply::Subscribe(Ok(id)) => {
                if let Command::Subscribe(params) = command {
                    let read_time = if self.slow_reader {
                        rng.duration(Duration::from_millis(100)..=Duration::from_millis(1500))
                    } else {
                        rng.duration(Duration::ZERO..=Duration::from_millis(3))
                    };
                    self.streams.push(Stream {
                        id: *id,
                        binding: params.binding,
                        read_time,
                    });
                }
            }
            Reply::Unsubscribe(Ok(id)) => self.streams.retain(|s| s.id != *id),
            _ => {}
        }
    }

    fn lose_binding(&mut self) {
        self.state = State::Idle;
    }

    /// An event on one of its streams. Returns how long reading it takes (after
    /// which the runtime returns the credit), or `None` if the stream is closed.
    pub(crate) fn on_event(&mut self, subscriber: SubscriberId, event: &Event) -> Option<Duration> {
        let stream = self.streams.iter().find(|s| s.id == subscriber)?;
        if let Event::Datagram(d) = event {
            if matches!(self.state, State::Bound { id, .. } if id == d.binding) {
                self.last_seq = Some(self.last_seq.map_or(d.seq, |s| s.max(d.seq)));
            }
        }
        Some(stream.read_time)
    }

    /// One of its streams ended.
    pub(crate) fn on_end(&mut self, subscriber: SubscriberId, reason: CloseReason) {
        let Some(pos) = self.streams.iter().position(|s| s.id == subscriber) else {
            return;
        };
        let stream = self.streams.remove(pos);
        let gone = matches!(reason, CloseReason::Expired | CloseReason::Unbound);
        if gone && matches!(self.state, State::Bound { id, .. } if id == stream.binding) {
            self.lose_binding();
        }
    }
}
