//! UDP → SSE: datagrams sent to a binding's port, counted as they arrive on
//! its event stream (or, for the ceiling, on a plain socket).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::egress::own_cpu;
use crate::error::LoadError;
use crate::http::HttpClient;
use crate::plan::Plan;
use crate::probe::now_ns;
use crate::process::ServerProcess;
use crate::tally::Tally;
use crate::udp::{kernel_drops, ProbeSender, RawReceiver, SendReport};

/// The lossless-rate search starts here and doubles.
const SEARCH_START: f64 = 8_000.0;

/// No search goes above this rate.
const SEARCH_CEILING: f64 = 4_000_000.0;

/// A window's rate counts as offered if the sender reached this share of it.
const OFFERED_SHARE: f64 = 0.9;

/// Longest wait for stragglers after a send.
const DRAIN_CAP: Duration = Duration::from_secs(3);

/// Lease of the bindings under load: longer than any run.
const LEASE_SECS: u64 = 3_600;

/// Where the datagrams go: a raw socket or a server.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// Socket to socket, no server.
    Raw,
    /// A binding of this server, read through its event stream.
    Server(&'a ServerProcess),
    /// A binding of this Porthole server, read through its WebSocket channel.
    Channel(&'a ServerProcess),
}

/// A path from a UDP sender to a [`Tally`].
struct IngressPath {
    target: SocketAddr,
    tally: Arc<Tally>,
    raw: Option<RawReceiver>,
    stream: Option<JoinHandle<Option<String>>>,
    binding: Option<(SocketAddr, String)>,
}

impl IngressPath {
    fn open(
        rt: &Runtime,
        subject: Subject<'_>,
        raw_buffer: Option<usize>,
    ) -> Result<Self, LoadError> {
        let tally = Arc::new(Tally::default());
        match subject {
            Subject::Raw => {
                let raw = RawReceiver::start(Arc::clone(&tally), raw_buffer)?;
                Ok(IngressPath {
                    target: raw.addr(),
                    tally,
                    raw: Some(raw),
                    stream: None,
                    binding: None,
                })
            }
            Subject::Server(server) => {
                let addr = server.addr();
                let (binding, subscription) = rt.block_on(async {
                    let binding = HttpClient::connect(addr).await?.bind(LEASE_SECS).await?;
                    let subscription = HttpClient::connect(addr)
                        .await?
                        .subscribe(&binding.id)
                        .await?;
                    Ok::<_, LoadError>((binding, subscription))
                })?;
                let stream = rt.spawn(subscription.pump(Arc::clone(&tally)));
                Ok(IngressPath {
                    target: binding.local_addr,
                    tally,
                    raw: None,
                    stream: Some(stream),
                    binding: Some((addr, binding.id)),
                })
            }
            Subject::Channel(server) => {
                let addr = server.addr();
                let (binding, ws) = rt.block_on(async {
                    let binding = HttpClient::connect(addr).await?.bind(LEASE_SECS).await?;
                    let ws = crate::channel::open(addr, &binding.id, "").await?;
                    Ok::<_, LoadError>((binding, ws))
                })?;
                let stream = rt.spawn(crate::channel::pump(ws, Arc::clone(&tally)));
                Ok(IngressPath {
                    target: binding.local_addr,
                    tally,
                    raw: None,
                    stream: Some(stream),
                    binding: Some((addr, binding.id)),
                })
            }
        }
    }

    fn close(mut self, rt: &Runtime) {
        if let Some(stream) = self.stream.take() {
            stream.abort();
        }
        if let Some((addr, id)) = self.binding.take() {
            let _ = rt.block_on(async { HttpClient::connect(addr).await?.unbind(&id).await });
        }
        drop(self.raw.take());
    }
}

/// How the sender sends in a window.
#[derive(Debug, Clone, Copy)]
enum Pace {
    Rate { per_sec: f64, count: u64 },
    FlatOut(Duration),
}

/// What one window measured.
#[derive(Debug, Clone)]
struct Window {
    send: SendReport,
    received: u64,
    missed: u64,
    /// Dropped by the kernel at the receiving socket (full receive buffer).
    kernel_drops: u64,
    /// Received per second, from the first send to the last receipt.
    delivered_rate: f64,
    latencies_ns: Vec<u64>,
}

impl Window {
    /// Every datagram of the window arrived. A `lagged` notice alone does not
    /// make it lossy: the binding lives across windows, and Porthole reports
    /// the kernel's drops at the tail of a lossy window (`dropped_kernel`)
    /// with the next datagram, i.e. in the next window.
    fn lossless(&self) -> bool {
        self.send.sent > 0 && self.received >= self.send.sent
    }

    fn loss(&self, rate: f64) -> Loss {
        Loss {
            rate,
            sent: self.send.sent,
            received: self.received,
            kernel_drops: self.kernel_drops,
            missed: self.missed,
        }
    }
}

/// Where the datagrams of a lossy window went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loss {
    /// The rate offered, per second.
    pub rate: f64,
    /// Sent.
    pub sent: u64,
    /// Received.
    pub received: u64,
    /// Dropped by the kernel: the receive buffer was full.
    pub kernel_drops: u64,
    /// Reported by the server as not delivered (Porthole's `lagged`).
    pub missed: u64,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at {:.0}/s {} of {} lost: {} by the kernel (receive buffer full), {} reported lagged, {} otherwise",
            self.rate,
            self.sent.saturating_sub(self.received),
            self.sent,
            self.kernel_drops,
            self.missed,
            self.sent
                .saturating_sub(self.received)
                .saturating_sub(self.kernel_drops)
                .saturating_sub(self.missed)
        )
    }
}

fn window(
    path: &IngressPath,
    sender: &mut ProbeSender,
    pace: Pace,
    record: bool,
    plan: &Plan,
) -> Window {
    let tally = &path.tally;
    tally.begin_window(sender.next_seq(), record);
    let port = path.target.port();
    let drops_before = kernel_drops(port).unwrap_or(0);
    let start_ns = now_ns();
    let send = match pace {
        Pace::Rate { per_sec, count } => sender.send_paced(per_sec, count),
        Pace::FlatOut(duration) => sender.send_flat_out(duration),
    };
    // Wait for stragglers: until all arrived, or nothing arrived for a while.
    let started = Instant::now();
    let mut seen = tally.received();
    let mut progress = Instant::now();
    while tally.received() < send.sent
        && !tally.has_ended()
        && progress.elapsed() < plan.quiet
        && started.elapsed() < DRAIN_CAP
    {
        std::thread::sleep(Duration::from_millis(5));
        let now = tally.received();
        if now != seen {
            seen = now;
            progress = Instant::now();
        }
    }
    let received = tally.received();
    let span_ns = tally.last_receipt_ns().saturating_sub(start_ns).max(1);
    Window {
        send,
        received,
        missed: tally.missed(),
        kernel_drops: kernel_drops(port).unwrap_or(0).saturating_sub(drops_before),
        delivered_rate: received as f64 / (span_ns as f64 / 1e9),
        latencies_ns: tally.take_latencies(),
    }
}

/// The highest rate at which every datagram arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct LosslessRate {
    /// Datagrams per second.
    pub rate: f64,
    /// The sender could not offer more: the true figure is at least `rate`.
    pub sender_bound: bool,
    /// Windows run.
    pub windows: u32,
    /// The lowest rate that lost datagrams, and where they went.
    pub loss: Option<Loss>,
}

/// Flat-out sending: offered and delivered rates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saturation {
    /// Datagrams per second the sender offered.
    pub offered: f64,
    /// Datagrams per second that arrived.
    pub delivered: f64,
    /// Server CPU time per datagram that arrived, µs (servers only).
    pub server_cpu_us: Option<f64>,
    /// This program's CPU time (the sender and the receiver) per datagram that arrived, µs.
    pub client_cpu_us: f64,
}

/// Latency from UDP send to receipt at a steady rate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams that arrived.
    pub received: u64,
    /// Server CPU time per datagram that arrived, µs (servers only).
    pub server_cpu_us: Option<f64>,
}

/// Everything measured for one subject.
#[derive(Debug, Clone, Default)]
pub struct IngressResult {
    /// Lossless rate per datagram size.
    pub lossless: Vec<(usize, LosslessRate)>,
    /// Saturation per datagram size.
    pub saturation: Vec<(usize, Saturation)>,
    /// Latency at the plan's rate, 64-byte datagrams.
    pub latency: Latency,
}

/// Binary search for the highest lossless rate: doubles from
/// [`SEARCH_START`] until a window loses datagrams, then bisects. A lossy
/// window is run once more before the rate counts as lossy, so that one stall
/// of a shared machine does not end the search (every subject gets the same rule).
fn lossless_rate(path: &IngressPath, sender: &mut ProbeSender, plan: &Plan) -> LosslessRate {
    let mut best = 0.0f64;
    let mut lossy: Option<f64> = None;
    let mut rate = SEARCH_START;
    let mut windows = 0;
    let mut sender_bound = false;
    let mut loss: Option<Loss> = None;
    while windows < plan.search_windows {
        let count = (rate * plan.search_window.as_secs_f64()).ceil() as u64;
        let pace = Pace::Rate {
            per_sec: rate,
            count,
        };
        let mut result = window(path, sender, pace, false, plan);
        windows += 1;
        if !result.lossless() && windows < plan.search_windows {
            result = window(path, sender, pace, false, plan);
            windows += 1;
        }
        // A sender that could not reach the rate offered less: judge what it offered.
        let offered = result.send.rate();
        let limited = offered < rate * OFFERED_SHARE;
        let effective = if limited { offered } else { rate };
        if result.lossless() {
            best = best.max(effective);
            if limited {
                sender_bound = true;
                break;
            }
        } else {
            if effective <= best {
                // Lossy below a lossless rate: the machine stalled; keep what passed.
                break;
            }
            lossy = Some(lossy.map_or(effective, |bad: f64| bad.min(effective)));
            loss = Some(result.loss(effective));
        }
        rate = match lossy {
            None => rate * 2.0,
            Some(bad) => {
                if best > 0.0 && bad / best <= plan.search_precision {
                    break;
                }
                if best > 0.0 {
                    (best * bad).sqrt()
                } else {
                    rate / 2.0
                }
            }
        };
        if !(100.0..=SEARCH_CEILING).contains(&rate) {
            break;
        }
    }
    LosslessRate {
        rate: best,
        sender_bound,
        windows,
        loss,
    }
}

/// Runs every UDP → SSE measurement for one subject.
pub fn measure(
    rt: &Runtime,
    subject: Subject<'_>,
    sizes: &[usize],
    raw_buffer: Option<usize>,
    plan: &Plan,
) -> Result<IngressResult, LoadError> {
    let mut result = IngressResult::default();
    for &size in sizes {
        let path = IngressPath::open(rt, subject, raw_buffer)?;
        let mut sender = ProbeSender::new(path.target, size)?;
        // Warm-up, and a check that the path works at all.
        let warm = window(
            &path,
            &mut sender,
            Pace::Rate {
                per_sec: 2_000.0,
                count: 200,
            },
            false,
            plan,
        );
        if warm.received == 0 {
            path.close(rt);
            return Err(LoadError::Timeout("no datagram arrived in the warm-up"));
        }
        let lossless = lossless_rate(&path, &mut sender, plan);
        eprintln!(
            "    {size:>5} B lossless {:>10.0}/s{} ({} windows)",
            lossless.rate,
            if lossless.sender_bound {
                " (sender-bound)"
            } else {
                ""
            },
            lossless.windows
        );
        if let Some(loss) = lossless.loss {
            eprintln!("          {loss}");
        }
        result.lossless.push((size, lossless));
        let cpu = ServerCpu::start(subject);
        let own_before = own_cpu();
        let flat_out = window(
            &path,
            &mut sender,
            Pace::FlatOut(plan.saturation),
            false,
            plan,
        );
        let own = own_cpu().saturating_sub(own_before);
        let saturation = Saturation {
            offered: flat_out.send.rate(),
            delivered: flat_out.delivered_rate,
            server_cpu_us: cpu.per(flat_out.received),
            client_cpu_us: own.as_secs_f64() * 1e6 / flat_out.received.max(1) as f64,
        };
        eprintln!(
            "    {size:>5} B flat out: offered {:>10.0}/s, delivered {:>10.0}/s; CPU per datagram: server {}, sender + receiver {:.2} µs",
            saturation.offered,
            saturation.delivered,
            saturation
                .server_cpu_us
                .map_or("—".into(), |us| format!("{us:.2} µs")),
            saturation.client_cpu_us
        );
        eprintln!("          {}", flat_out.loss(saturation.offered));
        result.saturation.push((size, saturation));
        if size == 64 {
            // Let the flat-out run's backlog clear before timing.
            std::thread::sleep(plan.quiet);
            let count = (plan.latency_rate * plan.latency.as_secs_f64()) as u64;
            let pace = Pace::Rate {
                per_sec: plan.latency_rate,
                count,
            };
            let cpu = ServerCpu::start(subject);
            let timed = window(&path, &mut sender, pace, true, plan);
            result.latency = Latency {
                p50_us: percentile(&timed.latencies_ns, 0.50) / 1e3,
                p99_us: percentile(&timed.latencies_ns, 0.99) / 1e3,
                sent: timed.send.sent,
                received: timed.received,
                server_cpu_us: cpu.per(timed.received),
            };
            eprintln!(
                "    latency at {:.0}/s: p50 {:.0} µs, p99 {:.0} µs ({}/{} arrived)",
                plan.latency_rate,
                result.latency.p50_us,
                result.latency.p99_us,
                timed.received,
                timed.send.sent
            );
        }
        path.close(rt);
    }
    Ok(result)
}

/// A server's CPU time from a starting point.
struct ServerCpu<'a> {
    server: Option<&'a ServerProcess>,
    start: Option<Duration>,
}

impl<'a> ServerCpu<'a> {
    fn start(subject: Subject<'a>) -> Self {
        let server = match subject {
            Subject::Raw => None,
            Subject::Server(server) | Subject::Channel(server) => Some(server),
        };
        ServerCpu {
            server,
            start: server.and_then(|s| s.cpu_time().ok()),
        }
    }

    /// CPU µs used since the start, per `count` (of what was delivered).
    fn per(&self, count: u64) -> Option<f64> {
        let used = self.server?.cpu_time().ok()?.checked_sub(self.start?)?;
        Some(used.as_secs_f64() * 1e6 / count.max(1) as f64)
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 for none.
pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[7], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
