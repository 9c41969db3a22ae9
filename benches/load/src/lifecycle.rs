//! Bindings coming and going: the bind + unbind rate, and how late a 1 s
//! lease ends.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::egress::{closed_loops, own_cpu, rate, RequestRate};
use crate::error::LoadError;
use crate::http::HttpClient;
use crate::plan::Plan;
use crate::process::ServerProcess;
use crate::server::ServerKind;
use crate::tally::Tally;
use crate::wire::{self, WireClient};

/// The lease whose end is timed.
const SHORT_LEASE: Duration = Duration::from_secs(1);

/// Bind + unbind pairs per second, with `plan.connections` keep-alive
/// connections each binding a loopback port and unbinding it in turn.
pub fn bind_unbind_rate(
    rt: &Runtime,
    server: &ServerProcess,
    plan: &Plan,
) -> Result<RequestRate, LoadError> {
    let addr = server.addr();
    let bind = Arc::new(wire::request(
        "POST",
        "/v1/udp/bind",
        addr,
        Some(br#"{"port":0,"addr":"127.0.0.1","lease_secs":60}"#),
    ));
    let rate = rt.block_on(async {
        let mut clients = Vec::with_capacity(plan.connections);
        for _ in 0..plan.connections {
            let mut client = WireClient::connect(addr).await?;
            bind_and_unbind(&mut client, &bind).await?;
            clients.push(client);
        }
        let cpu_before = server.cpu_time()?;
        let own_before = own_cpu();
        let start = Instant::now();
        let deadline = start + plan.http;
        let counts = closed_loops(clients, deadline, bind, |client, bind| {
            Box::pin(async move { bind_and_unbind(client, &bind).await.is_ok() })
        })
        .await;
        let elapsed = start.elapsed();
        let cpu = server.cpu_time()?.saturating_sub(cpu_before);
        Ok::<_, LoadError>(rate(&counts, elapsed, cpu, own_cpu() - own_before))
    })?;
    eprintln!(
        "    bind + unbind: {:.0}/s ({} ok, {} failed), server CPU {:.1} µs per pair",
        rate.per_sec, rate.ok, rate.failed, rate.server_cpu_us
    );
    Ok(rate)
}

/// One bind (the prebuilt request `bind`) and the unbind of what it bound.
async fn bind_and_unbind(client: &mut WireClient, bind: &[u8]) -> Result<(), LoadError> {
    let (status, body) = client.call(bind).await?;
    if status != 201 {
        return Err(LoadError::reply("bind", String::from_utf8_lossy(body)));
    }
    let info: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| LoadError::reply("bind", e))?;
    let id = info["id"]
        .as_str()
        .ok_or_else(|| LoadError::reply("bind", "no id"))?;
    let unbind = wire::request(
        "DELETE",
        &format!("/v1/udp/bind/{id}"),
        client.server(),
        None,
    );
    let (status, body) = client.call(&unbind).await?;
    if status != 200 {
        return Err(LoadError::reply("unbind", String::from_utf8_lossy(body)));
    }
    Ok(())
}

/// How late 1 s leases ended on one server.
#[derive(Debug, Clone, Default)]
pub struct Expiry {
    /// Per binding that ended within the cap: its stream's end (Porthole's
    /// `closed` event, or the end of the body) minus (bind reply + 1 s), in ms.
    pub lateness_ms: Vec<f64>,
    /// Bindings still alive at the cap.
    pub timed_out: usize,
    /// Bindings whose port was still taken after their stream ended.
    pub port_kept: usize,
}

impl Expiry {
    /// The median lateness, ms.
    pub fn median_ms(&self) -> Option<f64> {
        let mut sorted = self.lateness_ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }

    /// The largest lateness, ms.
    pub fn max_ms(&self) -> Option<f64> {
        self.lateness_ms.iter().copied().max_by(f64::total_cmp)
    }
}

enum Sample {
    Ended { lateness_ms: f64, port_free: bool },
    TimedOut,
}

/// Binds with a 1 s lease, subscribes, and waits (up to the cap) for the stream to end.
async fn expiry_sample(addr: SocketAddr, cap: Duration) -> Result<Sample, LoadError> {
    let binding = HttpClient::connect(addr).await?.bind(1).await?;
    let replied = Instant::now();
    let subscription = HttpClient::connect(addr)
        .await?
        .subscribe(&binding.id)
        .await?;
    let ended = tokio::time::timeout(cap, subscription.pump(Arc::new(Tally::default()))).await;
    let end = Instant::now();
    if ended.is_err() {
        return Ok(Sample::TimedOut);
    }
    let due = replied + SHORT_LEASE;
    let lateness_ms = if end >= due {
        (end - due).as_secs_f64() * 1e3
    } else {
        -((due - end).as_secs_f64() * 1e3)
    };
    // The port is free again once the socket is closed.
    let port_free = UdpSocket::bind(binding.local_addr).is_ok();
    Ok(Sample::Ended {
        lateness_ms,
        port_free,
    })
}

/// Times `plan.expiry_samples` 1 s leases on every server at once (bindings
/// are idle while they wait, so the servers do not disturb each other).
pub fn expiry(
    rt: &Runtime,
    servers: &[ServerProcess],
    plan: &Plan,
) -> Vec<(ServerKind, Result<Expiry, LoadError>)> {
    rt.block_on(async {
        let mut tasks = Vec::new();
        for server in servers {
            let samples: Vec<_> = (0..plan.expiry_samples)
                .map(|_| tokio::spawn(expiry_sample(server.addr(), plan.expiry_cap)))
                .collect();
            tasks.push((server.kind(), samples));
        }
        let mut results = Vec::new();
        for (kind, samples) in tasks {
            let mut expiry = Expiry::default();
            let mut failure = None;
            for sample in samples {
                match sample.await {
                    Ok(Ok(Sample::Ended {
                        lateness_ms,
                        port_free,
                    })) => {
                        expiry.lateness_ms.push(lateness_ms);
                        expiry.port_kept += usize::from(!port_free);
                    }
                    Ok(Ok(Sample::TimedOut)) => expiry.timed_out += 1,
                    Ok(Err(e)) => failure = Some(e),
                    Err(e) => {
                        failure = Some(LoadError::Reply {
                            what: "expiry",
                            detail: e.to_string(),
                        })
                    }
                }
            }
            let result = match failure {
                Some(e) if expiry.lateness_ms.is_empty() => Err(e),
                _ => Ok(expiry),
            };
            results.push((kind, result));
        }
        results
    })
}
