//! `porthole forward` on the data path: UDP round trips through an inbound
//! forward (client → the daemon's host port → WebSocket channel → the
//! forwarder → its local socket for that peer → an echo application, and back
//! the same way), against the same round trips to the echo application
//! directly, in the same run.
//!
//! The forwarder runs in a child process of its own (this program re-run with
//! `--server <kind> --forward-daemon ADDR --forward-to ADDR`), on the same
//! runtime as the daemon it leases from, as the `porthole forward` and
//! `porthole-smol forward` binaries run.

use std::fmt::Write as _;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::LoadError;
use crate::plan::Plan;
use crate::process::ServerProcess;
use crate::report::thousands;
use crate::server::ServerKind;

/// Round trips in flight during the throughput run (each new one sent as an
/// echo comes back).
pub const WINDOW: usize = 32;

/// How long a round trip may take before it counts as lost.
const LOST_AFTER: Duration = Duration::from_millis(500);

/// Round trips before each measurement (the forward's first one opens the
/// peer's local socket).
const WARM_UP: usize = 50;

/// One path, one datagram size.
#[derive(Debug, Clone)]
pub struct PathResult {
    /// Round trips completed per second with [`WINDOW`] in flight.
    pub rate: f64,
    /// Round trips lost (no echo within 500 ms), throughput and latency runs together.
    pub lost: u64,
    /// Round-trip time of one datagram at a time: median, in microseconds.
    pub rtt_median_us: f64,
    /// … and its 99th percentile.
    pub rtt_p99_us: f64,
    /// CPU time of the daemon and of the forwarder per round trip of the
    /// throughput run, in microseconds (`None` for the direct path).
    pub cpu_us: Option<(f64, f64)>,
}

/// The forward against the direct path, per size.
#[derive(Debug, Clone, Default)]
pub struct ForwardResult {
    /// `(size, direct, forward)`.
    pub rows: Vec<(usize, PathResult, PathResult)>,
}

/// The application behind the forward: a thread echoing every datagram.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stopping.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        Ok(Echo {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A client socket that numbers its datagrams, so a late echo of an earlier
/// round trip is never taken for the current one.
struct Client {
    socket: UdpSocket,
    target: SocketAddr,
    payload: Vec<u8>,
    next: u64,
    buf: Vec<u8>,
}

impl Client {
    fn new(target: SocketAddr, size: usize) -> io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(LOST_AFTER))?;
        Ok(Client {
            socket,
            target,
            payload: vec![0x5a; size.max(8)],
            next: 0,
            buf: vec![0; 65_536],
        })
    }

    fn send(&mut self) -> io::Result<u64> {
        let seq = self.next;
        self.next += 1;
        self.payload[..8].copy_from_slice(&seq.to_le_bytes());
        self.socket.send_to(&self.payload, self.target)?;
        Ok(seq)
    }

    /// The sequence number of the next echo, `None` after [`LOST_AFTER`] without one.
    fn recv(&mut self) -> io::Result<Option<u64>> {
        match self.socket.recv(&mut self.buf) {
            Ok(n) if n >= 8 => {
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&self.buf[..8]);
                Ok(Some(u64::from_le_bytes(seq)))
            }
            Ok(_) => Ok(None),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One round trip at a time for `length`: the round-trip times, sorted,
    /// and the round trips lost.
    fn ping_pong(&mut self, length: Duration) -> io::Result<(Vec<Duration>, u64)> {
        let mut rtts = Vec::new();
        let mut lost = 0;
        let end = Instant::now() + length;
        while Instant::now() < end {
            let sent_at = Instant::now();
            let seq = self.send()?;
            loop {
                match self.recv()? {
                    Some(echo) if echo == seq => {
                        rtts.push(sent_at.elapsed());
                        break;
                    }
                    // A late echo of a round trip already counted lost.
                    Some(_) => continue,
                    None => {
                        lost += 1;
                        break;
                    }
                }
            }
        }
        rtts.sort_unstable();
        Ok((rtts, lost))
    }

    /// [`WINDOW`] round trips in flight for `length`: round trips completed
    /// and lost.
    fn windowed(&mut self, length: Duration) -> io::Result<(u64, u64, Duration)> {
        let started = Instant::now();
        let end = started + length;
        let mut in_flight = 0;
        let (mut done, mut lost) = (0, 0);
        while Instant::now() < end {
            while in_flight < WINDOW {
                self.send()?;
                in_flight += 1;
            }
            match self.recv()? {
                Some(_) => {
                    done += 1;
                    in_flight -= 1;
                }
                None => {
                    // Nothing for 500 ms: what is in flight is lost.
                    lost += in_flight as u64;
                    in_flight = 0;
                }
            }
        }
        let elapsed = started.elapsed();
        // Collect the stragglers so that the next run starts clean.
        while in_flight > 0 {
            match self.recv()? {
                Some(_) => in_flight -= 1,
                None => {
                    lost += in_flight as u64;
                    break;
                }
            }
        }
        Ok((done, lost, elapsed))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Measures one path (to `target`) with `size`-byte datagrams; `cpu` reads
/// the CPU time of the processes on the path.
fn measure_path(
    target: SocketAddr,
    size: usize,
    plan: &Plan,
    cpu: &dyn Fn() -> Result<Option<(Duration, Duration)>, LoadError>,
) -> Result<PathResult, LoadError> {
    let mut client = Client::new(target, size)?;
    for _ in 0..WARM_UP {
        client.send()?;
        if client.recv()?.is_none() {
            return Err(LoadError::Timeout("no echo during the warm-up"));
        }
    }
    let cpu_before = cpu()?;
    let (done, lost_windowed, elapsed) = client.windowed(plan.saturation)?;
    let cpu_after = cpu()?;
    let (rtts, lost_rtt) = client.ping_pong(plan.latency)?;
    let cpu_us = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if done > 0 => {
            let per_trip = |a: Duration, b: Duration| (a - b).as_secs_f64() * 1e6 / done as f64;
            Some((per_trip(after.0, before.0), per_trip(after.1, before.1)))
        }
        _ => None,
    };
    Ok(PathResult {
        rate: done as f64 / elapsed.as_secs_f64(),
        lost: lost_windowed + lost_rtt,
        rtt_median_us: percentile(&rtts, 0.5),
        rtt_p99_us: percentile(&rtts, 0.99),
        cpu_us,
    })
}

/// The forward through `daemon` against the direct path, for each size.
pub fn measure(
    daemon: &ServerProcess,
    sizes: &[usize],
    plan: &Plan,
) -> Result<ForwardResult, LoadError> {
    let echo = Echo::start()?;
    let forwarder = ServerProcess::start_forwarder(daemon.kind(), daemon.addr(), echo.addr)?;
    let host = forwarder.addr();
    eprintln!("    forward {host} (host) -> {}", echo.addr);
    let path_cpu = || -> Result<Option<(Duration, Duration)>, LoadError> {
        Ok(Some((daemon.cpu_time()?, forwarder.cpu_time()?)))
    };
    let mut result = ForwardResult::default();
    for &size in sizes {
        let direct = measure_path(echo.addr, size, plan, &|| Ok(None))?;
        let forward = measure_path(host, size, plan, &path_cpu)?;
        eprintln!(
            "    {size} B: direct {:.0}/s, RTT {:.0} µs; forward {:.0}/s, RTT {:.0} µs",
            direct.rate, direct.rtt_median_us, forward.rate, forward.rtt_median_us
        );
        result.rows.push((size, direct, forward));
    }
    Ok(result)
}

/// The forwarder child: leases a host port on `daemon` and forwards it to
/// `to`, announcing the host address, until stdin closes.
pub fn serve_forwarder(
    kind: ServerKind,
    daemon: SocketAddr,
    to: SocketAddr,
) -> Result<(), Box<dyn std::error::Error>> {
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Forward {
        #[command(flatten)]
        args: porthole_forward::Args,
    }
    let plan = Forward::try_parse_from([
        "forward".to_owned(),
        format!("--server=http://{daemon}"),
        "--remote=127.0.0.1:0".to_owned(),
        format!("--to={to}"),
    ])?
    .args
    .plan()?;
    let until_stdin_closes = crate::server::stdin_closed;
    match kind {
        ServerKind::PortholeTokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let runtime = Arc::new(porthole_tokio::TokioRuntime::new(rt.handle().clone()));
            rt.block_on(async {
                let forwarder = Arc::new(porthole_forward::Forwarder::start(runtime, plan).await?);
                crate::server::announce(forwarder.host_addr());
                let stop = tokio::task::spawn_blocking(until_stdin_closes);
                forwarder
                    .run_spawned(async {
                        let _ = stop.await;
                    })
                    .await?;
                Ok(())
            })
        }
        ServerKind::PortholeSmol => smol::block_on(async {
            let runtime = Arc::new(porthole_smol::SmolRuntime::global());
            let forwarder = Arc::new(porthole_forward::Forwarder::start(runtime, plan).await?);
            crate::server::announce(forwarder.host_addr());
            forwarder
                .run_spawned(smol::unblock(until_stdin_closes))
                .await?;
            Ok(())
        }),
        ServerKind::Koi => Err("koi-udp has no forward".into()),
    }
}

impl ForwardResult {
    /// The table: the forward against the direct path, per daemon and size.
    pub fn render(results: &[(ServerKind, Result<ForwardResult, String>)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n`porthole forward` (inbound, to a UDP echo) against the echo directly: \
             round trips with {WINDOW} in flight, and one at a time\n"
        );
        let _ = writeln!(
            out,
            "| daemon + forward | size | path | round trips/s | × direct | RTT median | RTT p99 | added (median) | lost | CPU per round trip: daemon + forward |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for (kind, result) in results {
            match result {
                Err(e) => {
                    let _ = writeln!(out, "| {} | | | error: {e} | | | | | | |", kind.name());
                }
                Ok(r) => {
                    for (size, direct, forward) in &r.rows {
                        let _ = writeln!(
                            out,
                            "| {} | {size} B | direct | {} | 1 | {:.0} µs | {:.0} µs | | {} | |",
                            kind.name(),
                            thousands(direct.rate.round() as u64),
                            direct.rtt_median_us,
                            direct.rtt_p99_us,
                            direct.lost,
                        );
                        let _ = writeln!(
                            out,
                            "| {} | {size} B | forward | {} | {:.2} | {:.0} µs | {:.0} µs | +{:.0} µs | {} | {} |",
                            kind.name(),
                            thousands(forward.rate.round() as u64),
                            forward.rate / direct.rate,
                            forward.rtt_median_us,
                            forward.rtt_p99_us,
                            forward.rtt_median_us - direct.rtt_median_us,
                            forward.lost,
                            forward.cpu_us.map_or_else(
                                || "?".to_owned(),
                                |(daemon, fwd)| format!("{daemon:.1} + {fwd:.1} µs")
                            ),
                        );
                    }
                }
            }
        }
        out
    }
}
