//! A complete run loop over std UDP sockets, checked by `sim::Checker`.
//!
//! The same loop as the crate documentation's, with every input routed through
//! [`Checker::step`]: the checker verifies each step against the engine's
//! contract (a broken invariant ends the run with the violation). A client binds
//! a port with a 1-second lease and opens two streams; a peer sends it three
//! datagrams; the second stream's client goes away; the first stream's writer
//! flushes slowly (a delivery window of 2), so the engine pauses reads
//! (`Action::PauseReads`) while that subscriber is behind and resumes them
//! once credit comes back; nobody renews the lease, so after a second the
//! binding expires and the loop ends.
//!
//! ```sh
//! cargo run -p porthole-core --features sim --example run_loop
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime};

use porthole_core::sim::{Checker, Violation};
use porthole_core::{
    Action, BindParams, BindingId, Bytes, CloseReason, Command, Config, Engine, Event, Input,
    OpenError, ReceiveError, Reply, RequestId, SubscribeParams, SubscriberId, TransmitError,
    WallClock,
};

/// The engine, its checker, and the actions not carried out yet.
struct Checked {
    engine: Engine,
    checker: Checker,
    todo: VecDeque<Action>,
}

impl Checked {
    /// Every input goes through here: one input, then every action it produced
    /// (the checker's step), queued in order for the loop to carry out.
    fn feed(&mut self, input: Input) -> Result<(), Violation> {
        let actions = self.checker.step(&mut self.engine, input, Instant::now())?;
        self.todo.extend(actions);
        Ok(())
    }
}

/// A datagram event's payload.
fn payload(event: Event) -> Option<Bytes> {
    match event {
        Event::Datagram(d) => Some(d.payload),
        Event::Lagged { .. } => None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wall = WallClock::new(Instant::now(), SystemTime::now());
    let config = Config {
        // A small window, so that a slow stream writer backlogs the binding.
        delivery_window: 2,
        ..Config::default()
    };
    // In production, `Engine::from_os_rng` (feature `os-rng`).
    let engine = Engine::new(config, [42; 32], wall)?;
    let checker = Checker::new(&engine);
    let mut rt = Checked {
        engine,
        checker,
        todo: VecDeque::new(),
    };

    let mut sockets: HashMap<BindingId, UdpSocket> = HashMap::new();
    // Bindings whose reads the engine paused.
    let mut paused: HashSet<BindingId> = HashSet::new();
    // Each stream's events written since its last flush.
    let mut streams: HashMap<SubscriberId, Vec<Event>> = HashMap::new();
    let mut received: Vec<Bytes> = Vec::new();
    let mut ended: Vec<CloseReason> = Vec::new();
    let mut leaving: Option<SubscriberId> = None;
    // Whether the last read found nothing, and how often reads were paused.
    let mut idle = false;
    let mut pauses = 0;
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    let mut buf = vec![0u8; 65_535];

    let mut bind = BindParams::new("127.0.0.1:0".parse()?);
    bind.lease_secs = Some(1);
    rt.feed(Input::Command {
        request: RequestId(1),
        command: Command::Bind(bind),
    })?;

    loop {
        // 1. Carry out every action, in the engine's order. Outcomes go back in
        //    as inputs, whose actions join the end of the queue.
        while let Some(action) = rt.todo.pop_front() {
            match action {
                Action::OpenSocket { binding, addr } => {
                    let input = match UdpSocket::bind(addr).and_then(|s| Ok((s.local_addr()?, s))) {
                        Ok((local_addr, socket)) => {
                            sockets.insert(binding, socket);
                            Input::SocketOpened {
                                binding,
                                local_addr,
                            }
                        }
                        Err(e) => Input::SocketFailed {
                            binding,
                            error: OpenError::from_io(&e),
                        },
                    };
                    rt.feed(input)?;
                }
                Action::CloseSocket { binding } => {
                    // A paused binding that closes gets no resume.
                    sockets.remove(&binding);
                    paused.remove(&binding);
                }
                Action::PauseReads { binding } => {
                    paused.insert(binding);
                    pauses += 1;
                }
                Action::ResumeReads { binding } => {
                    // The read in step 3 comes at once. A loop over a poller
                    // reads this socket now, until it would block: no new
                    // readiness event comes for what arrived meanwhile.
                    paused.remove(&binding);
                }
                Action::Transmit {
                    request,
                    binding,
                    dest,
                    payload,
                } => {
                    let outcome = match sockets.get(&binding) {
                        Some(socket) => socket
                            .send_to(&payload, dest)
                            .map_err(|e| TransmitError::from_io(&e)),
                        None => Err(TransmitError::Other(io::ErrorKind::NotConnected)),
                    };
                    rt.feed(Input::Transmitted { request, outcome })?;
                }
                Action::Deliver { subscriber, event } => {
                    // Written to the stream's buffer; its credit comes back on flush.
                    if let Some(stream) = streams.get_mut(&subscriber) {
                        stream.push(event);
                    }
                }
                Action::EndStream { subscriber, reason } => {
                    // The writer flushes what it holds, then closes the stream.
                    let events = streams.remove(&subscriber).unwrap_or_default();
                    received.extend(events.into_iter().filter_map(payload));
                    ended.push(reason);
                }
                Action::Reply { reply, .. } => match reply {
                    Reply::Bind(Ok(info)) => {
                        for request in [2, 3] {
                            rt.feed(Input::Command {
                                request: RequestId(request),
                                command: Command::Subscribe(SubscribeParams::new(info.id)),
                            })?;
                        }
                        for payload in [&b"one"[..], b"two", b"three"] {
                            peer.send_to(payload, info.local_addr)?;
                        }
                    }
                    Reply::Subscribe(Ok(id)) => {
                        streams.insert(id, Vec::new());
                        // The second stream's client will go away.
                        if streams.len() == 2 {
                            leaving = Some(id);
                        }
                    }
                    other => println!("reply: {other:?}"),
                },
            }
        }
        if sockets.is_empty() {
            break;
        }

        // 2. A client that went away is reported once; nothing more comes for it.
        if let Some(gone) = leaving.take() {
            streams.remove(&gone);
            rt.feed(Input::SubscriberGone { subscriber: gone })?;
        }
        // The streams' writers flush, returning what they wrote as credit. Here
        // they get their turn only when the reader waits or is paused: a slow
        // client, so that the engine pauses reads.
        let flushed: Vec<(SubscriberId, Vec<Event>)> = streams
            .iter_mut()
            .filter(|(_, events)| (idle || !paused.is_empty()) && !events.is_empty())
            .map(|(&id, events)| (id, std::mem::take(events)))
            .collect();
        for (subscriber, events) in flushed {
            let credit = u32::try_from(events.len()).unwrap_or(u32::MAX);
            received.extend(events.into_iter().filter_map(payload));
            rt.feed(Input::Credit { subscriber, credit })?;
        }
        if !rt.todo.is_empty() {
            continue;
        }

        // 3. Sleep until the next deadline or until a socket is readable. A
        //    paused binding's socket is not read: its datagrams wait in the
        //    kernel until `ResumeReads` (or the engine's pause limit, a
        //    deadline in `poll_timeout`).
        let now = Instant::now();
        let wait = rt
            .engine
            .poll_timeout()
            .map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(now)
            })
            .max(Duration::from_millis(1));
        let readable = sockets
            .iter()
            .find(|(binding, _)| !paused.contains(binding));
        // With one socket, a read timeout is the wait; a loop over many waits on
        // all of them at once (mio's `Poll::poll(timeout)`, epoll, an async
        // runtime's select).
        if let Some((&binding, socket)) = readable {
            socket.set_read_timeout(Some(wait))?;
            idle = false;
            match socket.recv_from(&mut buf) {
                Ok((n, src)) => {
                    let payload = Bytes::copy_from_slice(&buf[..n]);
                    rt.feed(Input::Datagram {
                        binding,
                        src,
                        payload,
                    })?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    idle = true;
                }
                // An ICMP error for an earlier send, typically: counted, the
                // binding stays open.
                Err(e) => rt.feed(Input::SocketError {
                    binding,
                    error: ReceiveError::from_io(&e),
                })?,
            }
        } else {
            // Every socket paused: wait for a writer's progress or the deadline.
            std::thread::sleep(wait.min(Duration::from_millis(10)));
        }

        // 4. Time: every deadline that has passed fires now.
        if rt
            .engine
            .poll_timeout()
            .is_some_and(|at| at <= Instant::now())
        {
            rt.feed(Input::Timeout)?;
        }
    }

    rt.checker.finish(&rt.engine)?;
    println!("received {received:?}; streams ended: {ended:?}; reads paused {pauses} times");
    assert_eq!(received, ["one", "two", "three"].map(Bytes::from));
    assert_eq!(ended, [CloseReason::Expired]);
    assert_eq!(rt.engine.counters().bindings_expired, 1);
    assert!(pauses > 0, "the slow stream paused reads");
    Ok(())
}
