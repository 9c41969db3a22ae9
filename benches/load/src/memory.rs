//! Memory per idle binding: the resident set of a fresh server process with
//! many bindings held, minus the same process's with none.

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::error::LoadError;
use crate::http::HttpClient;
use crate::plan::Plan;
use crate::process::ServerProcess;
use crate::server::ServerKind;

/// Time for the server to settle before its RSS is read.
const SETTLE: Duration = Duration::from_millis(500);

/// What the memory measurement found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// RSS with the connections open and no binding, bytes.
    pub rss_before: u64,
    /// RSS with the bindings held, bytes.
    pub rss_after: u64,
    /// Bindings held.
    pub bindings: usize,
    /// Bindings created per second while filling.
    pub bind_rate: f64,
}

impl Memory {
    /// Bytes per binding.
    pub fn per_binding(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.bindings.max(1) as f64
    }
}

/// Starts a fresh server of `kind`, opens the connections and makes one
/// bind + unbind on each (so that their memory is in the baseline), reads its
/// RSS, holds `plan.idle_bindings` bindings, and reads its RSS again.
pub fn per_idle_binding(rt: &Runtime, kind: ServerKind, plan: &Plan) -> Result<Memory, LoadError> {
    let server = ServerProcess::start(kind)?;
    let addr = server.addr();
    let mut clients = rt.block_on(async {
        let mut clients = Vec::with_capacity(plan.connections);
        for _ in 0..plan.connections {
            let mut client = HttpClient::connect(addr).await?;
            let binding = client.bind(3_600).await?;
            client.unbind(&binding.id).await?;
            clients.push(client);
        }
        Ok::<_, LoadError>(clients)
    })?;
    std::thread::sleep(SETTLE);
    let rss_before = server.rss_bytes()?;
    let per_client = plan.idle_bindings.div_ceil(plan.connections.max(1));
    let start = Instant::now();
    let held = rt.block_on(async {
        let tasks: Vec<_> = clients
            .drain(..)
            .enumerate()
            .map(|(i, mut client)| {
                let n = per_client.min(plan.idle_bindings.saturating_sub(i * per_client));
                tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(n);
                    for _ in 0..n {
                        ids.push(client.bind(3_600).await?.id);
                    }
                    Ok::<_, LoadError>((client, ids.len()))
                })
            })
            .collect();
        let mut held = 0;
        let mut kept = Vec::new();
        for task in tasks {
            let (client, n) = task.await.map_err(|e| LoadError::reply("bind", e))??;
            held += n;
            kept.push(client);
        }
        Ok::<_, LoadError>((held, kept))
    })?;
    let (bindings, clients) = held;
    let bind_rate = bindings as f64 / start.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let rss_after = server.rss_bytes()?;
    let memory = Memory {
        rss_before,
        rss_after,
        bindings,
        bind_rate,
    };
    eprintln!(
        "    RSS {:.1} MiB → {:.1} MiB with {} bindings: {:.0} B per binding",
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        bindings,
        memory.per_binding()
    );
    drop(clients);
    drop(server);
    Ok(memory)
}
