//! Limits and policy, all with safe defaults.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::lease::Lease;
use crate::policy::Network;

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
    /// Largest HTTP request body the front end reads. Default 1 MiB. Beyond: `413`.
    pub max_request_body: usize,
    /// Whether bindings may ask for `allow_remote` at all. Default `false`.
    pub allow_remote: bool,
    /// Ports a client may bind; `None` allows any (0 asks the OS for one). Default `None`.
    pub port_range: Option<RangeInclusive<u16>>,
    /// Destinations that are allowed, if non-empty (checked after the built-in rules).
    pub dest_allow: Vec<Network>,
    /// Destinations that are always refused.
    pub dest_deny: Vec<Network>,
    /// How long the HTTP front end waits between keep-alive comments on a quiet
    /// SSE stream. Default 15 s. (Used by the driver, kept here so one config
    /// describes the daemon.)
    pub keep_alive: Duration,
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
            max_payload: crate::policy::MAX_PAYLOAD_V6,
            max_request_body: 1024 * 1024,
            allow_remote: false,
            port_range: None,
            dest_allow: Vec::new(),
            dest_deny: Vec::new(),
            keep_alive: Duration::from_secs(15),
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
}

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
        if self.port_range.as_ref().is_some_and(|r| r.is_empty()) {
            return Err(ConfigError::EmptyPortRange);
        }
        Ok(())
    }
}
