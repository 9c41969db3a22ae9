//! The data path of Porthole's WebSocket channel and batch send:
//! WebSocket → UDP (egress), UDP → WebSocket (ingress, through the
//! [`crate::ingress`] search with [`crate::ingress::Subject::Channel`]),
//! batch `POST /send`, and raw UDP's send rate for the ratio.
//!
//! koi-udp has neither a channel nor batches: its single `POST /send` is the
//! comparison.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::egress::{answered_ok, closed_loops, own_cpu, rate, RequestRate};
use crate::error::LoadError;
use crate::http::HttpClient;
use crate::ingress::IngressResult;
use crate::plan::Plan;
use crate::probe::{self, Probe};
use crate::process::ServerProcess;
use crate::report::{lossless_of, PerServer, Results};
use crate::server::ServerKind;
use crate::tally::Tally;
use crate::udp::{ProbeSender, RawReceiver};
use crate::wire::{self, WireClient};

/// Payload bytes per datagram sent, as the single `POST /send` run.
const PAYLOAD: usize = 64;

/// Datagrams per batch `POST /send`.
pub const BATCH: usize = 64;

/// Frames written before each flush of the egress channel.
const FEED: usize = 64;

/// A send rate in datagrams per second.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatagramRate {
    /// Datagrams per second that reached the sink.
    pub per_sec: f64,
    /// Datagrams handed to the path (frames, batch entries, sends).
    pub offered: u64,
    /// Datagrams that reached the sink.
    pub delivered: u64,
    /// Server CPU per datagram that reached the sink, µs.
    pub server_cpu_us: Option<f64>,
}

/// Opens `GET /v1/udp/ws/{id}`.
pub async fn open(
    addr: SocketAddr,
    id: &str,
    query: &str,
) -> Result<WebSocketStream<TcpStream>, LoadError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/v1/udp/ws/{id}{query}");
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| LoadError::reply("ws", e))?;
    Ok(ws)
}

/// Reads a channel into `tally` until it ends: probes from binary messages,
/// `lagged` and `closed` from text ones. Returns the `closed` reason.
pub async fn pump(mut ws: WebSocketStream<TcpStream>, tally: Arc<Tally>) -> Option<String> {
    let mut closed = None;
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Binary(bytes) => {
                // seq u64 · family u8 · address · port u16 · payload
                let header = match bytes.get(8) {
                    Some(4) => 8 + 1 + 4 + 2,
                    Some(6) => 8 + 1 + 16 + 2,
                    _ => continue,
                };
                if let Some(probe) = bytes.get(header..).and_then(probe::read) {
                    tally.record(probe);
                }
            }
            Message::Text(text) => {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                match v["event"].as_str() {
                    Some("lagged") => tally.lagged(v["missed"].as_u64().unwrap_or(0)),
                    Some("closed") => {
                        closed = v["reason"].as_str().map(str::to_owned);
                        break;
                    }
                    _ => {}
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    tally.end();
    closed
}

/// A client → server channel message: a datagram for `dest` with a probe.
fn frame(dest: SocketAddr, seq: u64) -> Vec<u8> {
    let SocketAddr::V4(v4) = dest else {
        unreachable!("the sink is IPv4 loopback")
    };
    let mut out = Vec::with_capacity(7 + PAYLOAD);
    out.push(4);
    out.extend_from_slice(&v4.ip().octets());
    out.extend_from_slice(&v4.port().to_be_bytes());
    let start = out.len();
    out.resize(start + PAYLOAD, 0x5A);
    probe::write(
        &mut out[start..],
        Probe {
            seq,
            sent_ns: probe::now_ns(),
        },
    );
    out
}

/// Waits until the sink's count stops moving (the path drained).
async fn settle(tally: &Tally, quiet: Duration) {
    let mut seen = tally.received();
    loop {
        tokio::time::sleep(quiet).await;
        let now = tally.received();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// WebSocket → UDP: one channel sends 64-byte datagrams flat out to a sink.
pub fn ws_egress(
    rt: &Runtime,
    server: &ServerProcess,
    plan: &Plan,
) -> Result<DatagramRate, LoadError> {
    let tally = Arc::new(Tally::default());
    let sink = RawReceiver::start(Arc::clone(&tally), Some(8 * 1024 * 1024))?;
    let addr = server.addr();
    let dest = sink.addr();
    rt.block_on(async {
        let mut control = HttpClient::connect(addr).await?;
        let binding = control.bind(3_600).await?;
        let ws = open(addr, &binding.id, "").await?;
        let (mut tx, mut rx) = ws.split();
        // Reads notices (send errors would show here) so the server never stalls on us.
        let notices = tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(Ok(m)) = rx.next().await {
                count += u64::from(matches!(m, Message::Text(_)));
            }
            count
        });
        tally.begin_window(0, false);
        let cpu_before = server.cpu_time()?;
        let start = Instant::now();
        let deadline = start + plan.http;
        let mut seq = 0u64;
        while Instant::now() < deadline {
            for _ in 0..FEED {
                tx.feed(Message::binary(frame(dest, seq)))
                    .await
                    .map_err(|e| LoadError::reply("ws send", e))?;
                seq += 1;
            }
            tx.flush().await.map_err(|e| LoadError::reply("ws send", e))?;
        }
        settle(&tally, plan.quiet).await;
        let elapsed = start.elapsed();
        let cpu = server.cpu_time()?.saturating_sub(cpu_before);
        let delivered = tally.received();
        let _ = tx.close().await;
        control.unbind(&binding.id).await?;
        notices.abort();
        let result = DatagramRate {
            per_sec: delivered as f64 / elapsed.as_secs_f64(),
            offered: seq,
            delivered,
            server_cpu_us: Some(cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64),
        };
        eprintln!(
            "    WebSocket → UDP: {:.0}/s at the sink ({} of {} frames), server CPU {:.2} µs per datagram",
            result.per_sec,
            delivered,
            seq,
            result.server_cpu_us.unwrap_or(f64::NAN)
        );
        Ok(result)
    })
}

/// Batch `POST /send`: `plan.connections` keep-alive connections, each
/// sending batches of [`BATCH`] 64-byte datagrams one request at a time.
pub fn batch_send(
    rt: &Runtime,
    server: &ServerProcess,
    plan: &Plan,
) -> Result<DatagramRate, LoadError> {
    let tally = Arc::new(Tally::default());
    let sink = RawReceiver::start(Arc::clone(&tally), Some(8 * 1024 * 1024))?;
    let addr = server.addr();
    let dest = sink.addr();
    // One probe for every datagram: the sink counts probes.
    let mut bytes = vec![0x5A; PAYLOAD];
    probe::write(&mut bytes, Probe { seq: 1, sent_ns: 0 });
    let payload = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let entry = format!(r#"{{"dest":"{dest}","payload":"{payload}"}}"#);
    let body = format!(r#"{{"datagrams":[{}]}}"#, vec![entry; BATCH].join(","));
    rt.block_on(async {
        let mut control = HttpClient::connect(addr).await?;
        let binding = control.bind(3_600).await?;
        let path = format!("/v1/udp/send/{}", binding.id);
        let request = Arc::new(wire::request("POST", &path, addr, Some(body.as_bytes())));
        let mut clients = Vec::with_capacity(plan.connections);
        for _ in 0..plan.connections {
            let mut client = WireClient::connect(addr).await?;
            let (status, reply) = client.call(&request).await?;
            if status != 200 || reply.windows(7).any(|w| w == b"\"error\"") {
                return Err(LoadError::reply("batch send", String::from_utf8_lossy(reply)));
            }
            clients.push(client);
        }
        settle(&tally, plan.quiet).await;
        tally.begin_window(0, false);

        let cpu_before = server.cpu_time()?;
        let own_before = own_cpu();
        let start = Instant::now();
        let deadline = start + plan.http;
        let counts = closed_loops(clients, deadline, request, answered_ok).await;
        let elapsed = start.elapsed();
        let cpu = server.cpu_time()?.saturating_sub(cpu_before);
        let requests: RequestRate = rate(&counts, elapsed, cpu, own_cpu() - own_before);
        settle(&tally, plan.quiet).await;
        let delivered = tally.received();
        control.unbind(&binding.id).await?;
        let offered = requests.ok * BATCH as u64;
        let result = DatagramRate {
            per_sec: offered as f64 / elapsed.as_secs_f64(),
            offered,
            delivered,
            server_cpu_us: Some(cpu.as_secs_f64() * 1e6 / offered.max(1) as f64),
        };
        eprintln!(
            "    batch POST /send ({BATCH} per request): {:.0} datagrams/s ({:.0} requests/s, {} failed; {} of {} at the sink), server CPU {:.2} µs per datagram",
            result.per_sec,
            requests.per_sec,
            requests.failed,
            delivered,
            offered,
            result.server_cpu_us.unwrap_or(f64::NAN)
        );
        Ok(result)
    })
}

/// Raw UDP: one socket sends 64-byte datagrams flat out to a sink.
pub fn raw_send(plan: &Plan) -> Result<DatagramRate, LoadError> {
    let tally = Arc::new(Tally::default());
    let sink = RawReceiver::start(Arc::clone(&tally), Some(8 * 1024 * 1024))?;
    let mut sender = ProbeSender::new(sink.addr(), PAYLOAD)?;
    tally.begin_window(sender.next_seq(), false);
    let report = sender.send_flat_out(plan.http);
    std::thread::sleep(plan.quiet);
    let result = DatagramRate {
        per_sec: report.rate(),
        offered: report.sent,
        delivered: tally.received(),
        server_cpu_us: None,
    };
    eprintln!(
        "    raw UDP send: {:.0}/s ({} of {} at the sink)",
        result.per_sec, result.delivered, result.offered
    );
    Ok(result)
}

/// What the data-path measurements found, for the report.
#[derive(Debug, Default)]
pub struct DataPath {
    /// Raw UDP's send rate, 64 B.
    pub raw_send: Option<Result<DatagramRate, String>>,
    /// UDP → WebSocket per Porthole server.
    pub ingress: PerServer<IngressResult>,
    /// WebSocket → UDP per Porthole server.
    pub egress: PerServer<DatagramRate>,
    /// Batch `POST /send` per Porthole server.
    pub batch: PerServer<DatagramRate>,
}

fn ok<T>(results: &PerServer<T>, kind: ServerKind) -> Option<&T> {
    results
        .iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, r)| r.as_ref().ok())
}

fn fmt_rate(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| crate::report::thousands(v.round() as u64))
}

fn fmt_ratio(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "—".into(),
    }
}

fn fmt_cpu(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}"))
}

impl DataPath {
    /// The data-path table, as markdown: datagrams per second, ratios against
    /// koi-udp's `POST /send` (egress) or SSE and raw UDP (ingress), and
    /// server CPU per datagram.
    pub fn render(&self, results: &Results) -> String {
        let porthole = [ServerKind::PortholeTokio, ServerKind::PortholeSmol];
        let koi_send = ok(&results.send, ServerKind::Koi).map(|r| r.per_sec);
        let raw_send = self
            .raw_send
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|r| r.per_sec);
        let raw_ingress = results.raw.as_ref().and_then(|r| r.as_ref().ok());
        let mut out = String::from(
            "| path (64 B unless noted) | server | datagrams/s | vs koi-udp `POST /send` | vs raw UDP | vs SSE | server CPU µs/datagram |\n|---|---|---|---|---|---|---|\n",
        );
        let mut row = |path: &str,
                       server: &str,
                       v: Option<f64>,
                       koi: Option<f64>,
                       raw: Option<f64>,
                       sse: Option<f64>,
                       cpu: Option<f64>| {
            let _ = writeln!(
                out,
                "| {path} | {server} | {} | {} | {} | {} | {} |",
                fmt_rate(v),
                fmt_ratio(v, koi),
                fmt_ratio(v, raw),
                fmt_ratio(v, sse),
                fmt_cpu(cpu)
            );
        };
        row(
            "raw UDP send (flat out)",
            "—",
            raw_send,
            koi_send,
            None,
            None,
            None,
        );
        row(
            "`POST /send`, 16 connections",
            "koi-udp",
            koi_send,
            None,
            raw_send,
            None,
            ok(&results.send, ServerKind::Koi).map(|r| r.server_cpu_us),
        );
        for kind in porthole {
            let single = ok(&results.send, kind);
            row(
                "`POST /send`, 16 connections",
                kind.name(),
                single.map(|r| r.per_sec),
                koi_send,
                raw_send,
                None,
                single.map(|r| r.server_cpu_us),
            );
        }
        for kind in porthole {
            let batch = ok(&self.batch, kind);
            row(
                &format!("batch `POST /send` ({BATCH} per request), 16 connections"),
                kind.name(),
                batch.map(|r| r.per_sec),
                koi_send,
                raw_send,
                None,
                batch.and_then(|r| r.server_cpu_us),
            );
        }
        for kind in porthole {
            let egress = ok(&self.egress, kind);
            row(
                "WebSocket → UDP, one channel, flat out",
                kind.name(),
                egress.map(|r| r.per_sec),
                koi_send,
                raw_send,
                None,
                egress.and_then(|r| r.server_cpu_us),
            );
        }
        for size in [64, 1200] {
            let raw = raw_ingress.and_then(|r| lossless_of(r, size));
            row(
                &format!("raw UDP → socket, lossless, {size} B"),
                "—",
                raw,
                None,
                None,
                None,
                None,
            );
            for kind in porthole {
                let sse = ok(&results.ingress, kind).and_then(|r| lossless_of(r, size));
                let ws = ok(&self.ingress, kind);
                let cpu = ws
                    .and_then(|r| r.saturation.iter().find(|(s, _)| *s == size))
                    .and_then(|(_, s)| s.server_cpu_us);
                row(
                    &format!("UDP → WebSocket, lossless, {size} B"),
                    kind.name(),
                    ws.and_then(|r| lossless_of(r, size)),
                    None,
                    raw,
                    sse,
                    cpu,
                );
                let sse_cpu = ok(&results.ingress, kind)
                    .and_then(|r| r.saturation.iter().find(|(s, _)| *s == size))
                    .and_then(|(_, s)| s.server_cpu_us);
                row(
                    &format!("UDP → SSE, lossless, {size} B"),
                    kind.name(),
                    sse,
                    None,
                    raw,
                    None,
                    sse_cpu,
                );
            }
        }
        out.push_str(
            "\nServer CPU for ingress rows is measured in the flat-out run of that size; for egress rows over the whole run, per datagram sent.\n",
        );
        out
    }
}
