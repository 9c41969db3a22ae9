//! Commands: what a client asks the engine to do.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::id::{BindingId, Seq, SubscriberId};
use crate::ticket::Ticket;

/// A client's request. Fed with [`crate::Engine::handle_command`]; every command
/// gets exactly one [`crate::Reply`] with the same [`crate::RequestId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Open a socket and lease it. Replies once the runtime has opened it (or failed).
    Bind(BindParams),
    /// Close a binding (reason [`crate::CloseReason::Unbound`]).
    Unbind {
        /// The binding.
        binding: BindingId,
    },
    /// Send a datagram. Replies with the runtime's transmit outcome.
    Send {
        /// The binding whose socket sends.
        binding: BindingId,
        /// Where to.
        dest: SocketAddr,
        /// What.
        payload: Bytes,
    },
    /// Renew a lease: the deadline becomes `now + lease`.
    Heartbeat {
        /// The binding.
        binding: BindingId,
        /// A new lease length in seconds (0 means the default, clamped to the maximum).
        lease_secs: Option<u64>,
    },
    /// Open a stream of the binding's datagrams.
    Subscribe(SubscribeParams),
    /// End a stream (reason [`crate::CloseReason::Unsubscribed`]).
    Unsubscribe {
        /// The subscriber.
        subscriber: SubscriberId,
    },
    /// Issue a single-use ticket that opens one stream of the binding (a
    /// [`SubscribeParams::ticket`]) within the configured lifetime.
    IssueTicket {
        /// The binding.
        binding: BindingId,
    },
    /// List every live binding.
    Status,
    /// Close every binding (reason [`crate::CloseReason::Shutdown`]) and refuse new ones.
    Shutdown,
}

/// What a bind asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindParams {
    /// Address and port to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// Lease length in seconds; `None` or 0 means the default, clamped to the maximum.
    pub lease_secs: Option<u64>,
    /// Whether the binding may listen on / send to non-loopback addresses.
    pub allow_remote: bool,
    /// Whether received and sent datagrams renew the lease like a heartbeat.
    pub renew_on_traffic: bool,
}

impl BindParams {
    /// A loopback-only bind of `addr` with the default lease.
    pub fn new(addr: SocketAddr) -> Self {
        BindParams {
            addr,
            lease_secs: None,
            allow_remote: false,
            renew_on_traffic: false,
        }
    }
}

/// What a subscribe asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeParams {
    /// The binding.
    pub binding: BindingId,
    /// Resume after this sequence number (the SSE `Last-Event-ID`): the subscriber
    /// first gets the replay ring's datagrams after it. Without it, the subscriber
    /// gets the datagrams no one has seen yet, then live ones.
    pub resume_after: Option<Seq>,
    /// End the stream (reason [`crate::CloseReason::Idle`]) after this long without a datagram.
    pub idle_timeout: Option<Duration>,
    /// A ticket from [`Command::IssueTicket`] for this binding, if the client
    /// presents one (a browser stream without the bearer token). It is used
    /// up whatever the outcome; an unknown, used or expired one refuses the
    /// subscribe with [`crate::SubscribeError::InvalidTicket`].
    pub ticket: Option<Ticket>,
}

impl SubscribeParams {
    /// A live subscription without resume or idle timeout.
    pub fn new(binding: BindingId) -> Self {
        SubscribeParams {
            binding,
            resume_after: None,
            idle_timeout: None,
            ticket: None,
        }
    }
}
