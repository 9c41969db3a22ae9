//! HTTP → UDP: `POST /v1/udp/send/{id}` over keep-alive connections, to a
//! loopback sink socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::error::LoadError;
use crate::http::{send_body, HttpClient};
use crate::plan::Plan;
use crate::process::{process_cpu, ServerProcess};
use crate::tally::Tally;
use crate::udp::RawReceiver;
use crate::wire::{self, WireClient};

/// Longest wait for one response before the connection counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Payload bytes per `POST /send`.
const PAYLOAD: usize = 64;

/// Requests per second over several connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestRate {
    /// Successful requests per second.
    pub per_sec: f64,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests (error status, connection error, timeout).
    pub failed: u64,
    /// CPU time the server used per successful request, µs (10 ms resolution overall).
    pub server_cpu_us: f64,
    /// CPU time this program (the clients) used per successful request, µs.
    pub client_cpu_us: f64,
}

/// Outcome of one connection's loop.
#[derive(Debug, Default)]
pub(crate) struct LoopCount {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
}

/// One step of a connection's loop: a request (or a few), true if it succeeded.
pub(crate) type Step =
    fn(&mut WireClient, Arc<Vec<u8>>) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;

/// Runs one closed loop per connection until `deadline`, each step `step`
/// with `request`: a step that fails or takes longer than [`REQUEST_TIMEOUT`]
/// counts as failed and ends that connection's loop.
pub(crate) async fn closed_loops(
    clients: Vec<WireClient>,
    deadline: Instant,
    request: Arc<Vec<u8>>,
    step: Step,
) -> Vec<LoopCount> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let request = Arc::clone(&request);
            tokio::spawn(async move {
                let mut count = LoopCount::default();
                while Instant::now() < deadline {
                    let done = step(&mut client, Arc::clone(&request));
                    match tokio::time::timeout(REQUEST_TIMEOUT, done).await {
                        Ok(true) => count.ok += 1,
                        Ok(false) | Err(_) => {
                            count.failed += 1;
                            break;
                        }
                    }
                }
                count
            })
        })
        .collect();
    let mut counts = Vec::with_capacity(tasks.len());
    for task in tasks {
        counts.push(task.await.unwrap_or_default());
    }
    counts
}

/// A step that is one request answered 200.
pub(crate) fn answered_ok(
    client: &mut WireClient,
    request: Arc<Vec<u8>>,
) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
    Box::pin(async move { matches!(client.call(&request).await, Ok((200, _))) })
}

/// Checks a `POST /send` response.
fn expect_ok((status, body): (u16, &[u8])) -> Result<(), LoadError> {
    match status {
        200 => Ok(()),
        _ => Err(LoadError::reply("send", String::from_utf8_lossy(body))),
    }
}

/// Sums per-connection loops into a rate over `elapsed`.
pub(crate) fn rate(
    counts: &[LoopCount],
    elapsed: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
) -> RequestRate {
    let ok = counts.iter().map(|c| c.ok).sum::<u64>();
    let failed = counts.iter().map(|c| c.failed).sum::<u64>();
    let per_ok = |cpu: Duration| cpu.as_secs_f64() * 1e6 / ok.max(1) as f64;
    RequestRate {
        per_sec: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        ok,
        failed,
        server_cpu_us: per_ok(server_cpu),
        client_cpu_us: per_ok(client_cpu),
    }
}

/// This program's CPU time so far (user + kernel).
pub(crate) fn own_cpu() -> Duration {
    process_cpu(std::process::id()).map_or(Duration::ZERO, |(user, system)| user + system)
}

/// `POST /send` requests per second through one binding, with
/// `plan.connections` keep-alive connections each sending one request at a time.
pub fn send_rate(
    rt: &Runtime,
    server: &ServerProcess,
    plan: &Plan,
) -> Result<RequestRate, LoadError> {
    let sink_tally = Arc::new(Tally::default());
    let sink = RawReceiver::start(Arc::clone(&sink_tally), None)?;
    let addr = server.addr();
    let body = send_body(sink.addr(), PAYLOAD);
    let (rate, sink_count) = rt.block_on(async {
        let mut control = HttpClient::connect(addr).await?;
        let binding = control.bind(3_600).await?;
        let path = format!("/v1/udp/send/{}", binding.id);
        let request = Arc::new(wire::request("POST", &path, addr, Some(&body)));
        let mut clients = Vec::with_capacity(plan.connections);
        for _ in 0..plan.connections {
            let mut client = WireClient::connect(addr).await?;
            expect_ok(client.call(&request).await?)?;
            clients.push(client);
        }
        sink_tally.begin_window(0, false);
        let cpu_before = server.cpu_split()?;
        let own_before = own_cpu();
        let start = Instant::now();
        let deadline = start + plan.http;
        let counts = closed_loops(clients, deadline, request, answered_ok).await;
        let elapsed = start.elapsed();
        let cpu_after = server.cpu_split()?;
        let user = cpu_after.0.saturating_sub(cpu_before.0);
        let system = cpu_after.1.saturating_sub(cpu_before.1);
        let rate = rate(&counts, elapsed, user + system, own_cpu() - own_before);
        eprintln!(
            "    server CPU: user {:.1} µs, kernel {:.1} µs per request",
            user.as_secs_f64() * 1e6 / rate.ok.max(1) as f64,
            system.as_secs_f64() * 1e6 / rate.ok.max(1) as f64
        );
        control.unbind(&binding.id).await?;
        // Let the last datagrams reach the sink before counting them.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, LoadError>((rate, sink_tally.received()))
    })?;
    eprintln!(
        "    POST /send: {:.0}/s ({} ok, {} failed, {} datagrams at the sink), CPU per request: server {:.1} µs, clients {:.1} µs",
        rate.per_sec, rate.ok, rate.failed, sink_count, rate.server_cpu_us, rate.client_cpu_us
    );
    Ok(rate)
}
