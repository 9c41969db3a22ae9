//! The driver task: the one owner of the [`Engine`]. It moves inputs in
//! (commands, datagram batches, credit, outcomes, time) and carries out the
//! engine's actions; it decides nothing itself.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_channel::{Receiver, Sender, WeakSender};
use futures_lite::future::poll_fn;
use porthole_core::{
    Action, BindingId, CloseReason, Command, Engine, Event, OpenError, Reply, RequestId,
    SubscriberId, TransmitError,
};
use std::task::Poll;

use crate::runtime::{AsyncTimer, Runtime};
use crate::socket::{read_socket, Batch, Received, SocketSlot};

/// Most datagram batches queued for the driver; readers wait (and the kernel
/// buffers, then drops) beyond this. Small on purpose: a reader on another
/// thread must not run ahead of the driver by more than the replay ring holds,
/// or a driver that the OS did not schedule for a moment comes back to more
/// datagrams than its subscribers can be given before the ring lets them go.
/// The kernel's buffer is the place for a backlog.
pub(crate) const BATCH_QUEUE: usize = 2;

/// Inputs handled before the driver carries out actions and checks its timer again.
const INPUTS_PER_TURN: usize = 64;

/// What a subscriber's stream receives from the driver.
#[derive(Debug)]
pub(crate) enum StreamItem {
    /// An event to write.
    Event(Event),
    /// The last item: write `event: closed` with the reason and end the body.
    End(CloseReason),
}

/// Where the driver sends a stream's items. Unbounded, because the engine's
/// credit window bounds how many are in flight.
pub(crate) type StreamSink = Sender<StreamItem>;

/// What the driver's clients tell it (not an engine [`porthole_core::Input`]:
/// the driver turns these into engine inputs). They travel on an unbounded
/// channel: each is bounded by something else (a request awaiting its reply, a
/// subscriber's credit window), and some are sent from `Drop`, which cannot wait.
#[derive(Debug)]
pub(crate) enum ToDriver {
    /// A client's command and where to answer it.
    Command {
        request: RequestId,
        command: Command,
        reply: Sender<Reply>,
        /// For a subscribe: where the stream's items go.
        stream: Option<StreamSink>,
    },
    /// A stream wrote `credit` events.
    Credit {
        subscriber: SubscriberId,
        credit: u32,
    },
    /// A stream's client went away.
    SubscriberGone(SubscriberId),
    /// A send that had to wait for the socket finished.
    Transmitted {
        request: RequestId,
        outcome: Result<usize, TransmitError>,
    },
    /// `/metrics` asks for the engine's counters.
    Snapshot(Sender<crate::metrics::Snapshot>),
}

/// A transmit the engine asked for, waiting for the end of the turn to go
/// out with the others to the same socket.
#[derive(Debug)]
struct Outgoing {
    request: RequestId,
    binding: BindingId,
    dest: SocketAddr,
    payload: bytes::Bytes,
}

/// A command waiting for its reply.
#[derive(Debug)]
struct Waiting {
    reply: Sender<Reply>,
    stream: Option<StreamSink>,
}

/// What woke the driver.
enum Wake {
    Control(Option<ToDriver>),
    Batch(Batch),
    Timer,
}

pub(crate) struct Driver {
    runtime: Arc<dyn Runtime>,
    engine: Engine,
    control: Receiver<ToDriver>,
    /// For send tasks; weak, so the driver ends when every client handle is gone.
    control_tx: WeakSender<ToDriver>,
    batches: Receiver<Batch>,
    batches_tx: Sender<Batch>,
    sockets: HashMap<BindingId, Arc<SocketSlot>>,
    /// What readers read of a binding whose reads the engine paused before it
    /// was fed (a batch in the channel, the rest of one that the pause cut
    /// short): fed, in order, once the engine resumes them. Bounded: a paused
    /// reader reads no more, so at most the batch it was reading and the
    /// [`BATCH_QUEUE`] queued ones land here.
    unfed: HashMap<BindingId, VecDeque<Received>>,
    streams: HashMap<SubscriberId, StreamSink>,
    waiting: HashMap<RequestId, Waiting>,
    log: crate::log::Lifecycle,
    /// This turn's transmits, sent together by [`Driver::finish_turn`].
    outbox: Vec<Outgoing>,
}

impl Driver {
    /// A driver owning `engine`, fed by `control`.
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        engine: Engine,
        control: Receiver<ToDriver>,
        control_tx: &Sender<ToDriver>,
    ) -> Self {
        let (batches_tx, batches) = async_channel::bounded(BATCH_QUEUE);
        Driver {
            runtime,
            engine,
            control,
            control_tx: control_tx.downgrade(),
            batches,
            batches_tx,
            sockets: HashMap::new(),
            unfed: HashMap::new(),
            streams: HashMap::new(),
            waiting: HashMap::new(),
            log: crate::log::Lifecycle::default(),
            outbox: Vec::new(),
        }
    }

    /// The driver loop. Ends when every handle that can send commands is dropped.
    pub(crate) async fn run(mut self) {
        let mut timer: Option<Pin<Box<dyn AsyncTimer>>> = None;
        let mut armed: Option<Instant> = None;
        loop {
            self.finish_turn();
            // Check the clock before sleeping: a deadline that already passed
            // is handled now rather than after a round trip through the timer.
            let deadline = self.engine.poll_timeout();
            if let Some(at) = deadline {
                let now = self.runtime.now();
                if at <= now {
                    self.engine.handle_timeout(now);
                    continue;
                }
            }
            if deadline != armed {
                if let Some(at) = deadline {
                    match timer.as_mut() {
                        Some(t) => t.as_mut().reset(at),
                        None => timer = Some(self.runtime.new_timer(at)),
                    }
                }
                armed = deadline;
            }
            match self.wait(armed.and(timer.as_mut())).await {
                Wake::Control(None) => break,
                Wake::Control(Some(input)) => {
                    self.handle_control(input);
                    let mut handled = 1;
                    while handled < INPUTS_PER_TURN {
                        let Ok(input) = self.control.try_recv() else {
                            break;
                        };
                        self.carry_out_actions();
                        self.handle_control(input);
                        handled += 1;
                    }
                    if handled == INPUTS_PER_TURN {
                        self.yield_turn().await;
                    }
                }
                Wake::Batch(batch) => {
                    // A turn takes about a delivery window of datagrams, then
                    // lets the event streams (other tasks, maybe on other
                    // threads) write and return credit. A scheduling detail,
                    // not a loss decision: a binding whose subscribers are all
                    // out of credit is paused by the engine, and what was
                    // read of it waits in `unfed`; only the engine's pause
                    // limit turns waiting into lag.
                    let budget = self.engine.config().delivery_window as usize;
                    let mut taken = batch.items.len();
                    self.handle_batch(batch);
                    while taken < budget {
                        let Ok(batch) = self.batches.try_recv() else {
                            break;
                        };
                        taken += batch.items.len();
                        self.carry_out_actions();
                        self.handle_batch(batch);
                    }
                    if taken >= budget {
                        self.yield_turn().await;
                    }
                }
                Wake::Timer => {
                    // Re-arm even for the same deadline, should the timer have
                    // fired a hair before the engine's clock reaches it.
                    armed = None;
                    self.engine.handle_timeout(self.runtime.now());
                }
            }
        }
        for slot in self.sockets.values() {
            slot.close();
        }
    }

    /// After a full turn, with more inputs likely waiting: hands out what the
    /// turn produced and lets the other tasks run (the event streams that
    /// return credit, the connections that wait for replies) before the next
    /// turn. Without it a busy driver keeps its thread, as tokio polls a task
    /// until it returns pending.
    async fn yield_turn(&mut self) {
        self.finish_turn();
        futures_lite::future::yield_now().await;
    }

    /// Waits for a control input (first: commands are what clients wait on),
    /// the timer, or a datagram batch.
    async fn wait(&self, timer: Option<&mut Pin<Box<dyn AsyncTimer>>>) -> Wake {
        let control = self.control.recv();
        let batch = self.batches.recv();
        futures_lite::pin!(control, batch);
        let mut timer = timer;
        poll_fn(|cx| {
            if let Poll::Ready(input) = control.as_mut().poll(cx) {
                return Poll::Ready(Wake::Control(input.ok()));
            }
            if let Some(t) = timer.as_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
            }
            if let Poll::Ready(Ok(batch)) = batch.as_mut().poll(cx) {
                return Poll::Ready(Wake::Batch(batch));
            }
            Poll::Pending
        })
        .await
    }

    fn handle_control(&mut self, input: ToDriver) {
        let now = self.runtime.now();
        match input {
            ToDriver::Command {
                request,
                command,
                reply,
                stream,
            } => {
                self.waiting.insert(request, Waiting { reply, stream });
                self.log.command(&command, &self.engine);
                self.engine.handle_command(request, command, now);
            }
            ToDriver::Credit { subscriber, credit } => {
                self.engine.handle_credit(subscriber, credit, now);
            }
            ToDriver::SubscriberGone(subscriber) => {
                self.streams.remove(&subscriber);
                self.engine.handle_subscriber_gone(subscriber, now);
            }
            ToDriver::Transmitted { request, outcome } => {
                self.engine.handle_transmitted(request, outcome, now);
            }
            ToDriver::Snapshot(reply) => {
                let _ = reply.try_send(crate::metrics::Snapshot::of(&self.engine));
            }
        }
    }

    fn handle_batch(&mut self, batch: Batch) {
        let binding = batch.binding;
        if let Some(unfed) = self.unfed.get_mut(&binding) {
            // Paused, or not all fed since: these come after.
            unfed.extend(batch.items);
            return;
        }
        let mut items = VecDeque::from(batch.items);
        self.feed_read(binding, &mut items);
        if !items.is_empty() {
            self.unfed.insert(binding, items);
        }
        self.log.received(binding, &self.engine);
    }

    /// Feeds what the binding's reader read, in order, until the engine
    /// pauses its reads: the rest stays in `items` for the resume.
    fn feed_read(&mut self, binding: BindingId, items: &mut VecDeque<Received>) {
        while !self.engine.is_reading_paused(&binding) {
            let Some(item) = items.pop_front() else {
                return;
            };
            let now = self.runtime.now();
            match item {
                Received::Datagram { src, payload } => {
                    self.engine.handle_datagram(binding, src, payload, now);
                }
                Received::KernelDrops(count) => {
                    self.engine.handle_kernel_drops(binding, count, now);
                }
                Received::Error(error) => {
                    self.engine.handle_socket_error(binding, error, now);
                }
            }
        }
    }

    /// Applies the engine's `ResumeReads`: feeds what was read meanwhile
    /// (unless that pauses reads again), then lets the reader read at once.
    fn resume_reads(&mut self, binding: BindingId) {
        if let Some(mut unfed) = self.unfed.remove(&binding) {
            self.feed_read(binding, &mut unfed);
            if !unfed.is_empty() {
                // Paused again: its `PauseReads` is among the next actions.
                self.unfed.insert(binding, unfed);
                return;
            }
        }
        if let Some(slot) = self.sockets.get(&binding) {
            slot.resume_reads();
        }
    }

    /// Carries out every action, sending the turn's transmits, until the
    /// engine has none left: what the driver does before it waits or yields.
    fn finish_turn(&mut self) {
        loop {
            self.carry_out_actions();
            if self.outbox.is_empty() {
                return;
            }
            self.send_outbox();
        }
    }

    /// Carries out the engine's actions, except that transmits wait in the
    /// outbox for the end of the turn (or for their socket's close), so that
    /// those to one socket go out in one syscall.
    fn carry_out_actions(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::OpenSocket { binding, addr } => self.open_socket(binding, addr),
                Action::CloseSocket { binding } => {
                    if self.outbox.iter().any(|t| t.binding == binding) {
                        // The engine asked for them before the close.
                        self.send_outbox();
                    }
                    self.log.closed(binding, &self.engine);
                    if let Some(slot) = self.sockets.remove(&binding) {
                        slot.close();
                    }
                    if let Some(unfed) = self.unfed.remove(&binding) {
                        // Read before the close: the engine counts them as
                        // having raced it (`dropped_unbound`).
                        let now = self.runtime.now();
                        for item in unfed {
                            if let Received::Datagram { src, payload } = item {
                                self.engine.handle_datagram(binding, src, payload, now);
                            }
                        }
                    }
                }
                Action::PauseReads { binding } => {
                    if let Some(slot) = self.sockets.get(&binding) {
                        slot.pause_reads();
                    }
                }
                Action::ResumeReads { binding } => self.resume_reads(binding),
                Action::Transmit {
                    request,
                    binding,
                    dest,
                    payload,
                } => self.outbox.push(Outgoing {
                    request,
                    binding,
                    dest,
                    payload,
                }),
                Action::Deliver { subscriber, event } => {
                    let delivered = self
                        .streams
                        .get(&subscriber)
                        .is_some_and(|sink| sink.try_send(StreamItem::Event(event)).is_ok());
                    if !delivered {
                        // The stream's body is gone; its drop may not have reached us yet.
                        self.streams.remove(&subscriber);
                        let now = self.runtime.now();
                        self.engine.handle_subscriber_gone(subscriber, now);
                    }
                }
                Action::EndStream { subscriber, reason } => {
                    if let Some(sink) = self.streams.remove(&subscriber) {
                        let _ = sink.try_send(StreamItem::End(reason));
                    }
                }
                Action::Reply { request, reply } => self.reply(request, reply),
            }
        }
    }

    fn reply(&mut self, request: RequestId, reply: Reply) {
        self.log.reply(&reply);
        let Some(waiting) = self.waiting.remove(&request) else {
            return;
        };
        let subscribed = match &reply {
            Reply::Subscribe(Ok(subscriber)) => Some(*subscriber),
            _ => None,
        };
        if let (Some(subscriber), Some(sink)) = (subscribed, waiting.stream) {
            // Registered before the reply goes out: the stream's first events
            // are the next actions.
            self.streams.insert(subscriber, sink);
        }
        if waiting.reply.try_send(reply).is_err() {
            // The client went away while the command was in flight.
            if let Some(subscriber) = subscribed {
                self.streams.remove(&subscriber);
                let now = self.runtime.now();
                self.engine.handle_subscriber_gone(subscriber, now);
            }
        }
    }

    fn open_socket(&mut self, binding: BindingId, addr: SocketAddr) {
        let opened =
            bind_udp(addr, self.engine.config().recv_buffer).and_then(|(socket, local)| {
                let socket = self.runtime.wrap_udp_socket(socket)?;
                Ok((socket, local))
            });
        let now = self.runtime.now();
        match opened {
            Ok((socket, local)) => {
                let slot = Arc::new(SocketSlot::new(socket));
                self.sockets.insert(binding, Arc::clone(&slot));
                let batches = self.batches_tx.clone();
                self.runtime
                    .spawn(Box::pin(read_socket(binding, slot, batches)));
                tracing::debug!(binding = %crate::log::Short(binding), %local, "socket opened");
                self.engine.handle_socket_opened(binding, local, now);
            }
            Err(e) => {
                tracing::debug!(binding = %crate::log::Short(binding), %addr, error = %e, "socket failed to open");
                self.engine
                    .handle_socket_failed(binding, OpenError::from_io(&e), now);
            }
        }
    }

    /// Sends the outbox: each socket's datagrams together, in the order the
    /// engine asked for them, and reports each one's outcome on its own.
    fn send_outbox(&mut self) {
        let mut outbox = std::mem::take(&mut self.outbox);
        // Stable: each socket's datagrams keep their order.
        outbox.sort_by_key(|t| t.binding);
        for group in outbox.chunk_by(|a, b| a.binding == b.binding) {
            self.transmit(group);
        }
    }

    /// Sends datagrams of one binding, in order.
    fn transmit(&mut self, group: &[Outgoing]) {
        let Some(slot) = group.first().and_then(|t| self.sockets.get(&t.binding)) else {
            let now = self.runtime.now();
            for t in group {
                let outcome = Err(TransmitError::Other(io::ErrorKind::NotConnected));
                self.engine.handle_transmitted(t.request, outcome, now);
            }
            return;
        };
        let slot = Arc::clone(slot);
        let batch: Vec<(SocketAddr, bytes::Bytes)> =
            group.iter().map(|t| (t.dest, t.payload.clone())).collect();
        let mut outcomes = Vec::with_capacity(batch.len());
        slot.try_send_batch(&batch, &mut outcomes);
        let done = outcomes.len();
        let now = self.runtime.now();
        for (t, outcome) in group.iter().zip(outcomes) {
            let outcome = outcome.map_err(|e| TransmitError::from_io(&e));
            self.engine.handle_transmitted(t.request, outcome, now);
        }
        if done == group.len() {
            return;
        }
        // The socket's send buffer is full: finish in a task, so the driver
        // keeps serving everyone else meanwhile.
        let Some(control) = self.control_tx.upgrade() else {
            return;
        };
        let rest: Vec<(RequestId, SocketAddr, bytes::Bytes)> = group[done..]
            .iter()
            .map(|t| (t.request, t.dest, t.payload.clone()))
            .collect();
        self.runtime.spawn(Box::pin(async move {
            for (request, dest, payload) in rest {
                let outcome = futures_lite::future::or(
                    async {
                        slot.send_to(&payload, dest)
                            .await
                            .map_err(|e| TransmitError::from_io(&e))
                    },
                    async {
                        slot.closed().await;
                        Err(TransmitError::Other(io::ErrorKind::NotConnected))
                    },
                )
                .await;
                if control
                    .send(ToDriver::Transmitted { request, outcome })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
}

/// Binds a non-blocking std socket with a receive buffer of `recv_buffer`
/// bytes (0: the OS default) and the kernel's drop count turned on.
///
/// Linux doubles the buffer asked for and caps it at `net.core.rmem_max`. Its
/// default (~208 KiB) holds about 90 datagrams of 1,200 bytes, so a reader
/// that a busy host delays by a millisecond or two loses datagrams at rates
/// it otherwise keeps up with (hence the engine's 2 MiB default). The size is
/// a limit, not an allocation: an idle binding costs no more.
fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> io::Result<(UdpSocket, SocketAddr)> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    // Best effort: with a smaller buffer the binding works, with less slack.
    if recv_buffer > 0 {
        if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(recv_buffer) {
            tracing::debug!(%addr, error = %e, "cannot set the receive buffer");
        }
    }
    // Best effort too: without it the binding works, but what the kernel
    // drops goes uncounted.
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RxqOvfl, &1) {
        tracing::debug!(%addr, error = %e, "cannot count the kernel's drops");
    }
    let local = socket.local_addr()?;
    Ok((socket, local))
}

/// An engine seeded from the operating system's randomness, its wall clock
/// anchored now.
pub(crate) fn production_engine(
    runtime: &dyn Runtime,
    config: porthole_core::Config,
) -> Result<Engine, crate::StartError> {
    let wall = porthole_core::WallClock::new(runtime.now(), SystemTime::now());
    Engine::from_os_rng(config, wall).map_err(|e| match e {
        porthole_core::OsEngineError::Config(e) => crate::StartError::Config(e),
        porthole_core::OsEngineError::Seed(e) => crate::StartError::Seed(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn bound_sockets_get_the_larger_receive_buffer() {
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .expect("rmem_max")
            .trim()
            .parse()
            .expect("a number");
        let asked = porthole_core::Config::default().recv_buffer;
        let (socket, _) = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), asked).expect("bound");
        let size = socket2::SockRef::from(&socket)
            .recv_buffer_size()
            .expect("SO_RCVBUF");
        // Linux grants up to rmem_max and reports twice what it granted.
        assert_eq!(size, 2 * asked.min(rmem_max));
        let counted: i32 =
            nix::sys::socket::getsockopt(&socket, nix::sys::socket::sockopt::RxqOvfl)
                .expect("SO_RXQ_OVFL");
        assert_eq!(counted, 1, "the kernel's drop count is off");
    }
}
