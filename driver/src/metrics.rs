//! `GET /metrics`: the Prometheus text format (0.0.4), built with
//! `prometheus-client`.
//!
//! The engine's numbers are not kept here: every scrape asks the driver task
//! for a [`Snapshot`] of [`porthole_core::Engine::counters`] and friends, so the
//! engine stays the one source of truth. Only what the engine cannot see, the
//! HTTP requests themselves, is counted in this module. No metric has a
//! per-binding label: binding ids are capabilities, and unbounded in number.

use std::fmt;
use std::time::Duration;

use porthole_core::Counters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What the driver task reports about its engine for one scrape.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Snapshot {
    pub(crate) counters: Counters,
    pub(crate) bindings: usize,
    pub(crate) opening: usize,
    pub(crate) subscribers: usize,
}

impl Snapshot {
    pub(crate) fn of(engine: &porthole_core::Engine) -> Self {
        Snapshot {
            counters: engine.counters(),
            bindings: engine.binding_count(),
            opening: engine.opening_count(),
            subscribers: engine.subscriber_count(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The HTTP side of the metrics: requests by route template and status
/// class, and their latency (to the response head: a stream's lifetime is not
/// its latency).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn record(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        took: Duration,
    ) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(took.as_secs_f64());
    }

    /// The whole exposition: the engine's `snapshot` and the HTTP metrics.
    pub(crate) fn encode(&self, snapshot: Snapshot) -> Result<String, fmt::Error> {
        let mut registry = Registry::with_prefix("porthole");
        registry.register_collector(Box::new(EngineCollector(snapshot)));
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status class",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request to its response head, by route template",
            self.latency.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

/// The engine's numbers, written at scrape time.
#[derive(Debug)]
struct EngineCollector(Snapshot);

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: usize) -> fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One counter family with a label `key`, one series per value.
fn labelled(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    key: &'static str,
    series: &[(&'static str, u64)],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for &(value, count) in series {
        let labels = [(key, value)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Snapshot {
            counters: c,
            bindings,
            opening,
            subscribers,
        } = self.0;
        let e = &mut encoder;
        gauge(e, "bindings", "Bindings alive", bindings)?;
        gauge(
            e,
            "bindings_opening",
            "Bindings whose socket is being opened",
            opening,
        )?;
        gauge(
            e,
            "subscribers",
            "Event streams and WebSockets open",
            subscribers,
        )?;
        counter(
            e,
            "bindings_opened",
            "Bindings whose socket opened",
            c.bindings_opened,
        )?;
        labelled(
            e,
            "bindings_closed",
            "Bindings closed, by reason",
            "reason",
            &[
                ("unbound", c.bindings_unbound),
                ("expired", c.bindings_expired),
                ("shutdown", c.bindings_shut_down),
            ],
        )?;
        counter(
            e,
            "bind_failures",
            "Sockets that failed to open",
            c.open_failures,
        )?;
        counter(
            e,
            "leases_renewed",
            "Leases renewed by a heartbeat",
            c.leases_renewed,
        )?;
        counter(e, "datagrams_received", "Datagrams received", c.received)?;
        counter(
            e,
            "datagrams_delivered",
            "Received datagrams delivered to at least one subscriber",
            c.delivered,
        )?;
        labelled(
            e,
            "datagrams_dropped",
            "Received datagrams that will never be delivered, by reason",
            "reason",
            &c.dropped_by_reason(),
        )?;
        counter(
            e,
            "datagrams_dropped_kernel",
            "Datagrams the kernel dropped before a socket delivered them (its receive buffer was full)",
            c.dropped_kernel,
        )?;
        gauge(
            e,
            "datagrams_pending",
            "Received datagrams waiting in replay rings for a subscriber",
            usize::try_from(c.pending).unwrap_or(usize::MAX),
        )?;
        counter(
            e,
            "datagrams_missed",
            "Datagrams individual subscribers missed (reported to them as lagged)",
            c.missed,
        )?;
        counter(e, "datagrams_sent", "Datagrams sent", c.sent)?;
        counter(
            e,
            "received_bytes",
            "Payload bytes received",
            c.received_bytes,
        )?;
        counter(e, "sent_bytes", "Payload bytes sent", c.sent_bytes)?;
        counter(e, "send_errors", "Sends that failed", c.send_errors)?;
        counter(
            e,
            "icmp_errors",
            "ICMP errors the kernel surfaced (refused, unreachable), on send or receive",
            c.icmp_errors,
        )?;
        counter(e, "receive_errors", "Other receive errors", c.recv_errors)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_engine_counters_and_http_requests() {
        let metrics = Metrics::default();
        metrics.record("GET", "/healthz", 200, Duration::from_millis(2));
        let mut snapshot = Snapshot {
            bindings: 3,
            ..Snapshot::default()
        };
        snapshot.counters.dropped_overflow = 7;
        snapshot.counters.bindings_expired = 2;
        snapshot.counters.dropped_kernel = 5;
        let text = metrics.encode(snapshot).expect("encodes");
        for line in [
            "porthole_bindings 3",
            "porthole_datagrams_dropped_total{reason=\"overflow\"} 7",
            "porthole_bindings_closed_total{reason=\"expired\"} 2",
            "porthole_datagrams_dropped_kernel_total 5",
            "porthole_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"2xx\"} 1",
            "porthole_http_request_duration_seconds_count{route=\"/healthz\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
    }
}
