//! How long and how hard each measurement runs: `--quick` or the full run.

use std::time::Duration;

/// The sizes and durations of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `quick` or `full`, for the report.
    pub name: &'static str,
    /// Length of one window of the lossless-rate search.
    pub search_window: Duration,
    /// Most windows one lossless-rate search runs.
    pub search_windows: u32,
    /// The search stops once the first lossy rate is within this factor of the
    /// best lossless one.
    pub search_precision: f64,
    /// Length of the flat-out (saturation) run.
    pub saturation: Duration,
    /// Length of the latency run at [`Plan::latency_rate`].
    pub latency: Duration,
    /// Datagrams per second of the latency run.
    pub latency_rate: f64,
    /// Length of the `POST /send` and bind + unbind runs.
    pub http: Duration,
    /// Keep-alive connections of the `POST /send` and bind + unbind runs.
    pub connections: usize,
    /// Bindings held for the memory measurement.
    pub idle_bindings: usize,
    /// Bindings whose 1 s lease is timed, per server.
    pub expiry_samples: usize,
    /// Longest wait for a lease to end (koi-udp sweeps every 30 s).
    pub expiry_cap: Duration,
    /// After a send, the receiver is done once nothing arrived for this long.
    pub quiet: Duration,
}

impl Plan {
    /// One to two minutes on 2 cores (koi-udp's lease sweep decides the last 30 s).
    pub fn quick() -> Self {
        Plan {
            name: "quick",
            search_window: Duration::from_millis(300),
            search_windows: 12,
            search_precision: 1.15,
            saturation: Duration::from_millis(500),
            latency: Duration::from_secs(1),
            latency_rate: 10_000.0,
            http: Duration::from_secs(1),
            connections: 16,
            idle_bindings: 5_000,
            expiry_samples: 3,
            expiry_cap: Duration::from_secs(35),
            quiet: Duration::from_millis(100),
        }
    }

    /// Longer windows, a finer search: about three minutes on 2 cores.
    pub fn full() -> Self {
        Plan {
            name: "full",
            search_window: Duration::from_secs(1),
            search_windows: 16,
            search_precision: 1.06,
            saturation: Duration::from_secs(2),
            latency: Duration::from_secs(3),
            latency_rate: 10_000.0,
            http: Duration::from_secs(3),
            connections: 16,
            idle_bindings: 5_000,
            expiry_samples: 5,
            expiry_cap: Duration::from_secs(35),
            quiet: Duration::from_millis(200),
        }
    }
}
