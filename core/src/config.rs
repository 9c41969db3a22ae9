//! Limits and policy, all with safe defaults.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::lease::Lease;
use crate::net::{Network, MAX_PAYLOAD_V6};

/// Ports an unprivileged process may bind: the default [`Config::port_range`].
pub const UNPRIVILEGED_PORTS: RangeInclusive<u16> = 1024..=65535;

/// Engine configuration. [`Config::default()`] is safe for a daemon on a shared
/// host: loopback only, bounded memory per binding, bounded number of bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most bindings alive (or opening) at once. Default 4,096. Beyond: `429 too_many_bindings`.
    pub max_bindings: usize,
    /// Lease given when a bind asks for none (or for 0 s). Default 300 s.
    pub default_lease: Lease,
    /// Longest lease; longer requests are clamped to it. Default 86,400 s (24 h).
    pub max_lease: Lease,
    /// Most subscribers (SSE streams) per binding. Default 16. Beyond: `429 too_many_subscribers`.
    pub max_subscribers_per_binding: usize,
    /// Most datagrams held in a binding's replay ring. Default 256.
    pub ring_datagrams: usize,
    /// Most payload bytes held in a binding's replay ring. Default 256 KiB.
    /// The newest datagram is always held, even when it alone is larger.
    pub ring_bytes: usize,
    /// Events a subscriber may have in flight before it must return credit. Default 128.
    pub delivery_window: u32,
    /// Largest payload a client may send. Default 65,527 (the IPv6 UDP maximum);
    /// IPv4 destinations are further limited to 65,507.
    pub max_payload: usize,
    /// Most payload bytes all bindings together hold: replay rings plus
    /// deliveries in flight to subscribers. Default 64 MiB. A datagram that
    /// would take the total past it is dropped and counted (`dropped_memory`).
    pub max_buffered_bytes: usize,
    /// Whether bindings may ask for `allow_remote` at all. Default `false`.
    pub allow_remote: bool,
    /// Ports a client may bind. Default 1024–65535, so a daemon run as root
    /// never hands out a privileged port. Port 0 (any free port) is allowed
    /// when the range holds every unprivileged port, since the OS picks
    /// ephemeral ports from those; with a narrower range a client must name a port.
    pub port_range: RangeInclusive<u16>,
    /// Destinations that are allowed, if non-empty (checked after the built-in rules).
    pub dest_allow: Vec<Network>,
    /// Destinations that are always refused.
    pub dest_deny: Vec<Network>,
    /// How long a stream ticket stays valid after it is issued. Default 30 s.
    pub ticket_lifetime: Duration,
    /// Receive buffer (`SO_RCVBUF`) the runtime asks for on every bound
    /// socket, in bytes: what a socket holds while its reader is behind;
    /// beyond it the kernel drops datagrams (counted as `dropped_kernel`).
    /// Default 2 MiB. Linux doubles the value for its bookkeeping and caps it
    /// at `net.core.rmem_max`; 0 leaves the OS default. The engine only
    /// carries it: it is a limit on kernel memory, not an allocation.
    pub recv_buffer: usize,
    /// Longest the engine pauses reads of a binding's socket
    /// ([`crate::Action::PauseReads`]) while every subscriber of the binding
    /// is out of credit with datagrams waiting. Meanwhile new datagrams wait
    /// in the kernel's receive buffer instead of pushing undelivered ones out
    /// of the replay ring: a writer that the OS did not schedule for a few
    /// milliseconds then costs no lag. Past the limit reads resume, and what
    /// the subscribers cannot take is counted as lag; there is no new pause
    /// until they have caught up. Default 10 ms: long enough to ride out a
    /// descheduled writer, short enough that the kernel's buffer
    /// ([`recv_buffer`](Self::recv_buffer)) does not overflow at loopback
    /// rates. At most 1 s; 0 never pauses.
    pub max_read_pause: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_bindings: 4096,
            default_lease: Lease::from_secs(300),
            max_lease: Lease::from_secs(86_400),
            max_subscribers_per_binding: 16,
            ring_datagrams: 256,
            ring_bytes: 256 * 1024,
            delivery_window: 128,
            max_payload: MAX_PAYLOAD_V6,
            max_buffered_bytes: 64 * 1024 * 1024,
            allow_remote: false,
            port_range: UNPRIVILEGED_PORTS,
            dest_allow: Vec::new(),
            dest_deny: Vec::new(),
            ticket_lifetime: Duration::from_secs(30),
            recv_buffer: 2 * 1024 * 1024,
            max_read_pause: Duration::from_millis(10),
        }
    }
}

/// A configuration the engine refuses to run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_bindings` is 0.
    #[error("max_bindings must be at least 1")]
    NoBindings,
    /// `default_lease` or `max_lease` is 0 s.
    #[error("leases must be at least 1 s")]
    ZeroLease,
    /// `ring_datagrams` is 0.
    #[error("ring_datagrams must be at least 1")]
    EmptyRing,
    /// `delivery_window` is 0.
    #[error("delivery_window must be at least 1")]
    NoWindow,
    /// `max_subscribers_per_binding` is 0.
    #[error("max_subscribers_per_binding must be at least 1")]
    NoSubscribers,
    /// `port_range` is empty.
    #[error("port_range is empty")]
    EmptyPortRange,
    /// `default_lease` is longer than `max_lease`.
    #[error("default_lease ({default} s) exceeds max_lease ({max} s)")]
    DefaultLeaseAboveMax {
        /// The default lease in seconds.
        default: u64,
        /// The maximum lease in seconds.
        max: u64,
    },
    /// `max_payload` is above what UDP can carry.
    #[error("max_payload must be at most {max} bytes, not {value}")]
    MaxPayloadOutOfRange {
        /// The configured value.
        value: usize,
        /// The largest UDP payload (IPv6 without jumbograms).
        max: usize,
    },
    /// `max_buffered_bytes` is 0.
    #[error("max_buffered_bytes must be at least 1")]
    NoBufferSpace,
    /// `ticket_lifetime` is zero.
    #[error("ticket_lifetime must be at least 1 s")]
    ZeroTicketLifetime,
    /// `max_read_pause` is longer than [`MAX_READ_PAUSE`].
    #[error("max_read_pause must be at most {max:?}, not {value:?}")]
    ReadPauseTooLong {
        /// The configured value.
        value: Duration,
        /// The longest allowed.
        max: Duration,
    },
}

/// The longest [`Config::max_read_pause`] allowed: past it the kernel's
/// receive buffer of a busy socket overflows long before, and the streams of
/// the binding stall for nothing.
pub const MAX_READ_PAUSE: Duration = Duration::from_secs(1);

impl Config {
    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bindings == 0 {
            return Err(ConfigError::NoBindings);
        }
        if self.default_lease.as_secs() == 0 || self.max_lease.as_secs() == 0 {
            return Err(ConfigError::ZeroLease);
        }
        if self.ring_datagrams == 0 {
            return Err(ConfigError::EmptyRing);
        }
        if self.delivery_window == 0 {
            return Err(ConfigError::NoWindow);
        }
        if self.max_subscribers_per_binding == 0 {
            return Err(ConfigError::NoSubscribers);
        }
        if self.port_range.is_empty() {
            return Err(ConfigError::EmptyPortRange);
        }
        if self.default_lease > self.max_lease {
            return Err(ConfigError::DefaultLeaseAboveMax {
                default: self.default_lease.as_secs(),
                max: self.max_lease.as_secs(),
            });
        }
        if self.max_payload > MAX_PAYLOAD_V6 {
            return Err(ConfigError::MaxPayloadOutOfRange {
                value: self.max_payload,
                max: MAX_PAYLOAD_V6,
            });
        }
        if self.max_buffered_bytes == 0 {
            return Err(ConfigError::NoBufferSpace);
        }
        if self.ticket_lifetime < Duration::from_secs(1) {
            return Err(ConfigError::ZeroTicketLifetime);
        }
        if self.max_read_pause > MAX_READ_PAUSE {
            return Err(ConfigError::ReadPauseTooLong {
                value: self.max_read_pause,
                max: MAX_READ_PAUSE,
            });
        }
        Ok(())
    }
}
