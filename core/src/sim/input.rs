//! Engine inputs as values, so they can be recorded, replayed and checked.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::{
    BindingId, Command, Engine, OpenError, ReceiveError, RequestId, SubscriberId, TransmitError,
};

/// One input to an [`Engine`]: a `handle_*` call without its `now`.
///
/// The simulation records these in its trace, the [`Checker`](super::Checker)
/// observes them, and a fuzzer or property test can generate them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// [`Engine::handle_command`].
    Command {
        /// Ties the reply to the command.
        request: RequestId,
        /// The command.
        command: Command,
    },
    /// [`Engine::handle_socket_opened`].
    SocketOpened {
        /// The binding whose socket opened.
        binding: BindingId,
        /// The address it is bound to.
        local_addr: SocketAddr,
    },
    /// [`Engine::handle_socket_failed`].
    SocketFailed {
        /// The binding whose socket did not open.
        binding: BindingId,
        /// Why.
        error: OpenError,
    },
    /// [`Engine::handle_datagram`].
    Datagram {
        /// The binding whose socket received it.
        binding: BindingId,
        /// Its sender.
        src: SocketAddr,
        /// Its bytes.
        payload: Bytes,
    },
    /// [`Engine::handle_transmitted`].
    Transmitted {
        /// The send command the transmit was for.
        request: RequestId,
        /// Bytes sent, or why not.
        outcome: Result<usize, TransmitError>,
    },
    /// [`Engine::handle_socket_error`].
    SocketError {
        /// The binding whose socket reported it.
        binding: BindingId,
        /// The error.
        error: ReceiveError,
    },
    /// [`Engine::handle_kernel_drops`].
    KernelDrops {
        /// The binding whose socket's kernel buffer overflowed.
        binding: BindingId,
        /// Datagrams dropped since the last report.
        count: u64,
    },
    /// [`Engine::handle_subscriber_gone`].
    SubscriberGone {
        /// The subscriber whose stream went away.
        subscriber: SubscriberId,
    },
    /// [`Engine::handle_credit`].
    Credit {
        /// The subscriber.
        subscriber: SubscriberId,
        /// Events written since the last return.
        credit: u32,
    },
    /// [`Engine::handle_timeout`].
    Timeout,
}

impl Input {
    /// Feeds this input to `engine` at `now`.
    pub fn apply(self, engine: &mut Engine, now: Instant) {
        match self {
            Input::Command { request, command } => engine.handle_command(request, command, now),
            Input::SocketOpened {
                binding,
                local_addr,
            } => engine.handle_socket_opened(binding, local_addr, now),
            Input::SocketFailed { binding, error } => {
                engine.handle_socket_failed(binding, error, now)
            }
            Input::Datagram {
                binding,
                src,
                payload,
            } => engine.handle_datagram(binding, src, payload, now),
            Input::Transmitted { request, outcome } => {
                engine.handle_transmitted(request, outcome, now)
            }
            Input::SocketError { binding, error } => {
                engine.handle_socket_error(binding, error, now)
            }
            Input::KernelDrops { binding, count } => {
                engine.handle_kernel_drops(binding, count, now)
            }
            Input::SubscriberGone { subscriber } => engine.handle_subscriber_gone(subscriber, now),
            Input::Credit { subscriber, credit } => engine.handle_credit(subscriber, credit, now),
            Input::Timeout => engine.handle_timeout(now),
        }
    }
}
