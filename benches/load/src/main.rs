//! `porthole-load`: the load comparison of Porthole (on tokio and on smol)
//! against koi-udp and raw loopback UDP, all in one run so that the ratios
//! are fair on a noisy machine.
//!
//! ```sh
//! cargo run --release --manifest-path benches/load/Cargo.toml -- --quick
//! ```
//!
//! Each server runs in a child process of its own (this program re-run with
//! `--server <kind>`), so that its memory is its own; the clients (UDP
//! senders, SSE readers, HTTP requests) run in this process. Progress goes to
//! stderr, the results table (markdown) to stdout.

#![forbid(unsafe_code)]

mod channel;
mod egress;
mod error;
mod forward;
mod http;
mod ingress;
mod lifecycle;
mod memory;
mod plan;
mod probe;
mod process;
mod report;
mod server;
mod sse;
mod tally;
mod udp;
mod wire;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::error::LoadError;
use crate::ingress::Subject;
use crate::plan::Plan;
use crate::process::ServerProcess;
use crate::report::{load_average, Machine, PerServer, Results};
use crate::server::ServerKind;

/// Datagram sizes of the UDP → SSE measurements.
const SIZES: [usize; 2] = [64, 1200];

/// `SO_RCVBUF` of the raw receiver: what Porthole's driver asks for on its
/// sockets, so that the ceiling has the same slack. (koi-udp keeps the default.)
const RAW_RECV_BUFFER: usize = 2 * 1024 * 1024;

/// Load comparison of Porthole against koi-udp and raw loopback UDP.
#[derive(Debug, Parser)]
#[command(name = "porthole-load")]
struct Cli {
    /// Short windows and a coarser search (one to two minutes instead of about three).
    #[arg(long)]
    quick: bool,

    /// Run only these measurements (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Measurement>,

    /// Measure only these servers (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    servers: Vec<ServerKind>,

    /// Run one server until stdin closes (how the benchmark starts its servers).
    #[arg(long, value_enum, hide = true)]
    server: Option<ServerKind>,

    /// With `--server`: run a `porthole forward` on that server's runtime
    /// instead, leasing from the daemon at this address…
    #[arg(long, hide = true, requires = "forward_to")]
    forward_daemon: Option<std::net::SocketAddr>,

    /// … to the application at this address.
    #[arg(long, hide = true, requires = "forward_daemon")]
    forward_to: Option<std::net::SocketAddr>,
}

/// A group of measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Measurement {
    /// UDP → SSE: lossless rate, saturation, latency (raw UDP included).
    Ingress,
    /// HTTP → UDP: `POST /send` rate.
    Send,
    /// Bind + unbind rate.
    Bind,
    /// Lease expiry lateness.
    Expiry,
    /// Memory per idle binding.
    Memory,
    /// The WebSocket channel both ways and batch `POST /send` (Porthole
    /// only; its ratios use the `ingress` and `send` rows when they ran).
    Channel,
    /// `porthole forward` round trips against the direct UDP path (Porthole only).
    Forward,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(kind) = cli.server {
        if let (Some(daemon), Some(to)) = (cli.forward_daemon, cli.forward_to) {
            return match forward::serve_forwarder(kind, daemon, to) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("forward on {}: {e}", kind.name());
                    ExitCode::FAILURE
                }
            };
        }
        return server::serve(kind);
    }
    let plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let only = |m: Measurement| cli.only.is_empty() || cli.only.contains(&m);
    let kinds: Vec<ServerKind> = ServerKind::ALL
        .into_iter()
        .filter(|k| cli.servers.is_empty() || cli.servers.contains(k))
        .collect();
    match run(&plan, &kinds, only) {
        Ok(results) => {
            println!("{}", results.render(&SIZES));
            if cli.only.is_empty() || cli.only.contains(&Measurement::Channel) {
                println!("{}", results.data_path.render(&results));
            }
            if !results.forward.is_empty() {
                println!("{}", forward::ForwardResult::render(&results.forward));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("porthole-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps a failed measurement's reason for the report.
fn keep<T>(result: Result<T, LoadError>) -> Result<T, String> {
    result.map_err(|e| {
        eprintln!("    error: {e}");
        e.to_string()
    })
}

fn run(
    plan: &Plan,
    kinds: &[ServerKind],
    only: impl Fn(Measurement) -> bool,
) -> Result<Results, LoadError> {
    let started = Instant::now();
    let mut results = Results {
        plan: plan.name,
        machine: Machine::read(),
        ..Results::default()
    };
    // One worker for the clients (SSE readers, request loops): they share the
    // machine with the servers, and a second worker would mostly spin.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    eprintln!(
        "porthole-load ({} plan): {} cores, {}; load average {}",
        plan.name, results.machine.cores, results.machine.cpu, results.machine.load.0
    );

    let servers = kinds
        .iter()
        .map(|&kind| ServerProcess::start(kind))
        .collect::<Result<Vec<_>, _>>()?;
    for server in &servers {
        eprintln!("  {} listening on {}", server.kind().name(), server.addr());
    }

    if only(Measurement::Ingress) {
        eprintln!("UDP → SSE");
        eprintln!("  raw UDP");
        results.raw = Some(keep(ingress::measure(
            &rt,
            Subject::Raw,
            &SIZES,
            Some(RAW_RECV_BUFFER),
            plan,
        )));
        results.ingress = each(&servers, |server| {
            ingress::measure(&rt, Subject::Server(server), &SIZES, None, plan)
        });
    }
    if only(Measurement::Send) {
        eprintln!("HTTP → UDP");
        results.send = each(&servers, |server| egress::send_rate(&rt, server, plan));
    }
    if only(Measurement::Channel) {
        eprintln!("WebSocket channel and batch send");
        eprintln!("  raw UDP");
        results.data_path.raw_send = Some(keep(channel::raw_send(plan)));
        let porthole: Vec<&ServerProcess> = servers
            .iter()
            .filter(|s| s.kind() != ServerKind::Koi)
            .collect();
        for server in porthole {
            let kind = server.kind();
            eprintln!("  {} (UDP → WebSocket)", kind.name());
            let ingress = ingress::measure(&rt, Subject::Channel(server), &SIZES, None, plan);
            results.data_path.ingress.push((kind, keep(ingress)));
            eprintln!("  {} (WebSocket → UDP, batch POST /send)", kind.name());
            let egress = channel::ws_egress(&rt, server, plan);
            results.data_path.egress.push((kind, keep(egress)));
            let batch = channel::batch_send(&rt, server, plan);
            results.data_path.batch.push((kind, keep(batch)));
        }
    }
    if only(Measurement::Forward) {
        eprintln!("porthole forward against the direct path (UDP echo)");
        for server in servers.iter().filter(|s| s.kind() != ServerKind::Koi) {
            eprintln!("  {}", server.kind().name());
            let measured = forward::measure(server, &SIZES, plan);
            results.forward.push((server.kind(), keep(measured)));
        }
    }
    if only(Measurement::Bind) {
        eprintln!("bind + unbind");
        results.bind = each(&servers, |server| {
            lifecycle::bind_unbind_rate(&rt, server, plan)
        });
    }

    if only(Measurement::Expiry) {
        eprintln!(
            "lease expiry: {} bindings per server with a 1 s lease (waiting up to {} s)",
            plan.expiry_samples,
            plan.expiry_cap.as_secs()
        );
        results.expiry = lifecycle::expiry(&rt, &servers, plan)
            .into_iter()
            .map(|(kind, r)| (kind, keep(r)))
            .collect();
    }
    for (kind, expiry) in &results.expiry {
        if let Ok(e) = expiry {
            eprintln!(
                "  {}: median {:.1} ms, max {:.1} ms, {} timed out",
                kind.name(),
                e.median_ms().unwrap_or(f64::NAN),
                e.max_ms().unwrap_or(f64::NAN),
                e.timed_out
            );
        }
    }
    drop(servers);

    if only(Measurement::Memory) {
        eprintln!(
            "memory per idle binding ({} held, fresh processes)",
            plan.idle_bindings
        );
        results.memory = kinds
            .iter()
            .map(|&kind| {
                eprintln!("  {}", kind.name());
                (kind, keep(memory::per_idle_binding(&rt, kind, plan)))
            })
            .collect();
    }

    results.machine.load.1 = load_average();
    results.seconds = started.elapsed().as_secs_f64();
    Ok(results)
}

/// Runs a measurement on each server in turn.
fn each<T>(
    servers: &[ServerProcess],
    mut measure: impl FnMut(&ServerProcess) -> Result<T, LoadError>,
) -> PerServer<T> {
    servers
        .iter()
        .map(|server| {
            eprintln!("  {}", server.kind().name());
            (server.kind(), keep(measure(server)))
        })
        .collect()
}
