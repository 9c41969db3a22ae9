//! Inputs: everything that happens to the engine, as values.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::{BindingId, Command, OpenError, ReceiveError, RequestId, SubscriberId, TransmitError};

/// One input to the [`Engine`](crate::Engine), fed with
/// [`Engine::handle_input`](crate::Engine::handle_input) and an explicit `now`.
///
/// Every input a runtime has goes through this one type: a client's command,
/// the outcome of an action the engine asked for (socket opened, transmitted),
/// what a socket read, a stream writer's progress, and time passing. Being
/// values, inputs can also be recorded, replayed and generated: the simulation
/// (feature `sim`) records them in its trace, its checker observes them, and a
/// fuzzer or property test generates them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A client's command; it gets exactly one [`Reply`](crate::Reply) with `request`.
    Command {
        /// Ties the reply to the command.
        request: RequestId,
        /// The command.
        command: Command,
    },
    /// The runtime opened the socket asked for by
    /// [`Action::OpenSocket`](crate::Action::OpenSocket); the lease starts now.
    SocketOpened {
        /// The binding whose socket opened.
        binding: BindingId,
        /// The address it is bound to.
        local_addr: SocketAddr,
    },
    /// The runtime could not open the socket asked for by
    /// [`Action::OpenSocket`](crate::Action::OpenSocket).
    SocketFailed {
        /// The binding whose socket did not open.
        binding: BindingId,
        /// Why.
        error: OpenError,
    },
    /// A datagram read from a binding's socket.
    Datagram {
        /// The binding whose socket received it.
        binding: BindingId,
        /// Its sender.
        src: SocketAddr,
        /// Its bytes.
        payload: Bytes,
    },
    /// The outcome of an [`Action::Transmit`](crate::Action::Transmit).
    Transmitted {
        /// The send command the transmit was for.
        request: RequestId,
        /// Bytes sent, or why not.
        outcome: Result<usize, TransmitError>,
    },
    /// A receive on the binding's socket failed. ICMP errors the kernel
    /// surfaces are counted; the binding stays open.
    SocketError {
        /// The binding whose socket reported it.
        binding: BindingId,
        /// The error.
        error: ReceiveError,
    },
    /// The kernel dropped datagrams addressed to the binding's socket (its
    /// receive buffer was full); see [`Engine::handle_kernel_drops`](crate::Engine::handle_kernel_drops).
    KernelDrops {
        /// The binding whose socket's kernel buffer overflowed.
        binding: BindingId,
        /// Datagrams dropped since the last report.
        count: u64,
    },
    /// A stream's client went away. Nothing more is emitted for the subscriber.
    SubscriberGone {
        /// The subscriber whose stream went away.
        subscriber: SubscriberId,
    },
    /// A stream's writer wrote `credit` events; the subscriber may be sent that many more.
    Credit {
        /// The subscriber.
        subscriber: SubscriberId,
        /// Events written since the last return.
        credit: u32,
    },
    /// Time passed: [`Engine::poll_timeout`](crate::Engine::poll_timeout) is due.
    Timeout,
}
