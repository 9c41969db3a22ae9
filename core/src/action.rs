//! Outputs: what the engine asks the runtime to do.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::binding::BindingInfo;
use crate::error::{
    BindError, BindingError, SendError, SubscribeError, TicketError, UnsubscribeError,
};
use crate::id::{BindingId, RequestId, Seq, SubscriberId};
use crate::ticket::Ticket;

/// One thing for the runtime to do, drained with [`crate::Engine::poll_action`]
/// after every input, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Bind a UDP socket on `addr`, then report
    /// [`crate::Engine::handle_socket_opened`] or [`crate::Engine::handle_socket_failed`].
    OpenSocket {
        /// The binding the socket is for.
        binding: BindingId,
        /// Where to bind.
        addr: SocketAddr,
    },
    /// Close the binding's socket and stop reading it. Emitted exactly once for
    /// every socket reported opened.
    CloseSocket {
        /// The binding.
        binding: BindingId,
    },
    /// Stop reading the binding's socket: every subscriber of the binding is
    /// out of credit with datagrams waiting, so what arrives now waits in the
    /// kernel's receive buffer rather than push undelivered datagrams out of
    /// the replay ring. Feed no [`crate::Input::Datagram`] for the binding
    /// until [`Action::ResumeReads`]; a datagram already read keeps its place
    /// in line (hand it in after the resume). At most
    /// [`crate::Config::max_read_pause`] later the engine resumes reads itself
    /// (a deadline in [`crate::Engine::poll_timeout`]). A closed binding
    /// ([`Action::CloseSocket`]) gets no resume.
    PauseReads {
        /// The binding.
        binding: BindingId,
    },
    /// Read the binding's socket again, at once: an edge-triggered poller
    /// (epoll with `EPOLLET`, mio, the async runtimes) reports no new
    /// readiness for datagrams that arrived while reads were paused, so a
    /// reader that waits for one stalls. Emitted once per
    /// [`Action::PauseReads`], unless the binding closes first.
    ResumeReads {
        /// The binding.
        binding: BindingId,
    },
    /// Send `payload` to `dest` from the binding's socket, then report
    /// [`crate::Engine::handle_transmitted`] with the same `request`.
    Transmit {
        /// Ties the outcome to the send command.
        request: RequestId,
        /// The binding whose socket sends.
        binding: BindingId,
        /// Where to.
        dest: SocketAddr,
        /// What.
        payload: Bytes,
    },
    /// Write an event to a subscriber's stream. Each one uses one unit of the
    /// subscriber's credit; return it with [`crate::Engine::handle_credit`] once written.
    Deliver {
        /// The subscriber.
        subscriber: SubscriberId,
        /// The event.
        event: Event,
    },
    /// End a subscriber's stream, telling it why. The subscriber is gone from the
    /// engine afterwards; no credit needs returning.
    EndStream {
        /// The subscriber.
        subscriber: SubscriberId,
        /// Why.
        reason: CloseReason,
    },
    /// Answer a command.
    Reply {
        /// The command's request id.
        request: RequestId,
        /// The answer.
        reply: Reply,
    },
}

/// An event on a subscriber's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A received datagram (SSE `event: datagram`, `id: <seq>`).
    Datagram(Datagram),
    /// The subscriber missed `missed` datagrams (SSE `event: lagged`): they left the
    /// replay ring before the subscriber had credit for them.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// A received datagram as delivered to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The binding that received it.
    pub binding: BindingId,
    /// Its sequence number on that binding.
    pub seq: Seq,
    /// Who sent it.
    pub src: SocketAddr,
    /// Its bytes.
    pub payload: Bytes,
    /// When it was received, on the wall clock of the engine's anchor.
    pub received_at: SystemTime,
}

/// Why a stream ended (the SSE `event: closed` reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The binding's lease ran out.
    Expired,
    /// The binding was unbound.
    Unbound,
    /// The server is shutting down.
    Shutdown,
    /// The subscriber itself was unsubscribed.
    Unsubscribed,
    /// No datagram arrived within the subscriber's `idle_for`.
    Idle,
}

impl CloseReason {
    /// Every reason, for documentation.
    pub const ALL: [CloseReason; 5] = [
        CloseReason::Expired,
        CloseReason::Unbound,
        CloseReason::Shutdown,
        CloseReason::Unsubscribed,
        CloseReason::Idle,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::Expired => "expired",
            CloseReason::Unbound => "unbound",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Unsubscribed => "unsubscribed",
            CloseReason::Idle => "idle",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to a command, one variant per command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// To [`crate::Command::Bind`].
    Bind(Result<Box<BindingInfo>, BindError>),
    /// To [`crate::Command::Unbind`].
    Unbind(Result<BindingId, BindingError>),
    /// To [`crate::Command::Send`]: the number of bytes sent.
    Send(Result<usize, SendError>),
    /// To [`crate::Command::Heartbeat`]: the binding with its new deadline.
    Heartbeat(Result<Box<BindingInfo>, BindingError>),
    /// To [`crate::Command::Subscribe`]: the new subscriber. Its events follow.
    Subscribe(Result<SubscriberId, SubscribeError>),
    /// To [`crate::Command::Unsubscribe`].
    Unsubscribe(Result<SubscriberId, UnsubscribeError>),
    /// To [`crate::Command::IssueTicket`].
    Ticket(Result<IssuedTicket, TicketError>),
    /// To [`crate::Command::Status`]: every live binding, oldest first.
    Status(Vec<BindingInfo>),
    /// To [`crate::Command::Shutdown`], after every binding is closed.
    Shutdown,
}

/// A stream ticket as issued: present it once, before it expires, to open one
/// stream of its binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuedTicket {
    /// The ticket.
    pub ticket: Ticket,
    /// The binding it opens a stream of.
    pub binding: BindingId,
    /// When it expires, on the wall clock of the engine's anchor.
    pub expires_at: SystemTime,
    /// How long it is valid from now.
    pub lifetime: Duration,
}
