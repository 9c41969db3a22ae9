//! The results table (markdown, as `benches/README.md` shows it) and the
//! targets checked against it.

use std::fmt::Write as _;

use crate::egress::RequestRate;
use crate::ingress::IngressResult;
use crate::lifecycle::Expiry;
use crate::memory::Memory;
use crate::server::ServerKind;

/// Per server, what a measurement found, or why it could not be made.
pub type PerServer<T> = Vec<(ServerKind, Result<T, String>)>;

/// The machine the run was on.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Cores available.
    pub cores: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// `/proc/loadavg` (1 min) at the start and the end of the run.
    pub load: (String, String),
}

impl Machine {
    /// Reads what the machine tells about itself.
    pub fn read() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
            load: (load_average(), String::new()),
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Results {
    /// `quick` or `full`.
    pub plan: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// Seconds the run took.
    pub seconds: f64,
    /// Raw socket to socket.
    pub raw: Option<Result<IngressResult, String>>,
    /// UDP → SSE per server.
    pub ingress: PerServer<IngressResult>,
    /// `POST /send` per server.
    pub send: PerServer<RequestRate>,
    /// Bind + unbind per server.
    pub bind: PerServer<RequestRate>,
    /// Lease expiry per server.
    pub expiry: PerServer<Expiry>,
    /// Memory per idle binding per server.
    pub memory: PerServer<Memory>,
    /// The WebSocket channel and batch send (Porthole only).
    pub data_path: crate::channel::DataPath,
    /// `porthole forward` against the direct UDP path (`--only forward`).
    pub forward: PerServer<crate::forward::ForwardResult>,
}

/// Which way a row is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    /// No ratio makes sense (lateness can be ~0).
    NoRatio,
}

struct Row {
    label: String,
    better: Better,
    raw: Option<f64>,
    /// porthole-tokio, porthole-smol, koi-udp.
    servers: [Option<String>; 3],
    values: [Option<f64>; 3],
    format: fn(f64) -> String,
}

fn get<T>(results: &PerServer<T>, kind: ServerKind) -> Option<&Result<T, String>> {
    results.iter().find(|(k, _)| *k == kind).map(|(_, r)| r)
}

fn index(kind: ServerKind) -> usize {
    match kind {
        ServerKind::PortholeTokio => 0,
        ServerKind::PortholeSmol => 1,
        ServerKind::Koi => 2,
    }
}

impl Row {
    fn new<T>(
        label: impl Into<String>,
        better: Better,
        results: &PerServer<T>,
        value: impl Fn(&T) -> Option<f64>,
        format: fn(f64) -> String,
    ) -> Self {
        let mut row = Row {
            label: label.into(),
            better,
            raw: None,
            servers: [None, None, None],
            values: [None, None, None],
            format,
        };
        for kind in ServerKind::ALL {
            let i = index(kind);
            match get(results, kind) {
                Some(Ok(r)) => {
                    row.values[i] = value(r);
                    row.servers[i] = Some(row.values[i].map_or("—".into(), format));
                }
                Some(Err(_)) => row.servers[i] = Some("error".into()),
                None => {}
            }
        }
        row
    }

    /// How many times better `value` is than `reference`.
    fn advantage(&self, value: Option<f64>, reference: Option<f64>) -> String {
        match (self.better, value, reference) {
            (Better::NoRatio, _, _) => "—".into(),
            (Better::Higher, Some(v), Some(r)) if r > 0.0 => format!("{:.2}×", v / r),
            (Better::Lower, Some(v), Some(r)) if v > 0.0 => format!("{:.2}×", r / v),
            _ => "—".into(),
        }
    }

    fn render(&self, out: &mut String) {
        let cell = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
        let raw = self.raw.map_or("—".into(), self.format);
        let [tokio, smol, koi] = self.values;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.label,
            raw,
            cell(&self.servers[0]),
            cell(&self.servers[1]),
            cell(&self.servers[2]),
            self.advantage(tokio, koi),
            self.advantage(smol, koi),
            self.advantage(tokio, self.raw),
            self.advantage(smol, self.raw),
        );
    }
}

fn per_sec(v: f64) -> String {
    thousands(v.round() as u64)
}

fn micros(v: f64) -> String {
    format!("{v:.0} µs")
}

fn micros_fine(v: f64) -> String {
    format!("{v:.2} µs")
}

fn millis(v: f64) -> String {
    format!("{v:.1} ms")
}

fn bytes(v: f64) -> String {
    format!("{} B", thousands(v.round().max(0.0) as u64))
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn lossless_of(r: &IngressResult, size: usize) -> Option<f64> {
    r.lossless
        .iter()
        .find(|(s, _)| *s == size)
        .map(|(_, l)| l.rate)
}

fn saturation_of(r: &IngressResult, size: usize) -> Option<f64> {
    r.saturation
        .iter()
        .find(|(s, _)| *s == size)
        .map(|(_, l)| l.delivered)
}

impl Results {
    fn rows(&self, sizes: &[usize]) -> Vec<Row> {
        let raw = self.raw.as_ref().and_then(|r| r.as_ref().ok());
        let mut rows = Vec::new();
        for &size in sizes {
            let mut row = Row::new(
                format!("UDP → SSE lossless, {size} B (datagrams/s)"),
                Better::Higher,
                &self.ingress,
                |r| lossless_of(r, size),
                per_sec,
            );
            row.raw = raw.and_then(|r| lossless_of(r, size));
            rows.push(row);
        }
        for &size in sizes {
            let mut row = Row::new(
                format!("UDP → SSE delivered at saturation, {size} B (datagrams/s)"),
                Better::Higher,
                &self.ingress,
                |r| saturation_of(r, size),
                per_sec,
            );
            row.raw = raw.and_then(|r| saturation_of(r, size));
            rows.push(row);
        }
        let mut p50 = Row::new(
            "UDP → SSE latency p50 at 10,000/s, 64 B",
            Better::Lower,
            &self.ingress,
            |r| Some(r.latency.p50_us),
            micros,
        );
        p50.raw = raw.map(|r| r.latency.p50_us);
        rows.push(p50);
        let mut p99 = Row::new(
            "UDP → SSE latency p99 at 10,000/s, 64 B",
            Better::Lower,
            &self.ingress,
            |r| Some(r.latency.p99_us),
            micros,
        );
        p99.raw = raw.map(|r| r.latency.p99_us);
        rows.push(p99);
        rows.push(Row::new(
            "UDP → SSE server CPU per datagram at 10,000/s, 64 B",
            Better::Lower,
            &self.ingress,
            |r| r.latency.server_cpu_us,
            micros_fine,
        ));
        for &size in sizes {
            rows.push(Row::new(
                format!("UDP → SSE server CPU per delivered datagram at saturation, {size} B"),
                Better::Lower,
                &self.ingress,
                |r| {
                    r.saturation
                        .iter()
                        .find(|(s, _)| *s == size)
                        .and_then(|(_, s)| s.server_cpu_us)
                },
                micros_fine,
            ));
        }
        rows.push(Row::new(
            "HTTP → UDP `POST /send`, 16 connections (requests/s)",
            Better::Higher,
            &self.send,
            |r| Some(r.per_sec),
            per_sec,
        ));
        rows.push(Row::new(
            "`POST /send` server CPU per request",
            Better::Lower,
            &self.send,
            |r| Some(r.server_cpu_us),
            micros_fine,
        ));
        rows.push(Row::new(
            "bind + unbind, 16 connections (pairs/s)",
            Better::Higher,
            &self.bind,
            |r| Some(r.per_sec),
            per_sec,
        ));
        rows.push(Row::new(
            "bind + unbind server CPU per pair",
            Better::Lower,
            &self.bind,
            |r| Some(r.server_cpu_us),
            micros_fine,
        ));
        rows.push(Row::new(
            "memory per idle binding (RSS, 5,000 held)",
            Better::Lower,
            &self.memory,
            |r| Some(r.per_binding()),
            bytes,
        ));
        rows.push(Row::new(
            "1 s lease: expiry lateness, median",
            Better::NoRatio,
            &self.expiry,
            Expiry::median_ms,
            millis,
        ));
        rows.push(Row::new(
            "1 s lease: expiry lateness, max",
            Better::NoRatio,
            &self.expiry,
            Expiry::max_ms,
            millis,
        ));
        rows
    }

    /// The table, the targets and the notes, as markdown.
    pub fn render(&self, sizes: &[usize]) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Run: `{}` plan, {:.0} s; {} cores, `{}`, kernel {}; load average {} at the start, {} at the end.\n",
            self.plan, self.seconds, m.cores, m.cpu, m.kernel, m.load.0, m.load.1
        );
        out.push_str(
            "| measure | raw UDP | porthole-tokio | porthole-smol | koi-udp | tokio vs koi | smol vs koi | tokio vs raw | smol vs raw |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for row in self.rows(sizes) {
            row.render(&mut out);
        }
        out.push_str(
            "\n\"vs\" columns: how many times better (higher rate, or less time or memory).\n\n",
        );
        out.push_str(&self.targets(sizes));
        out.push_str(&self.notes(sizes));
        out
    }

    fn targets(&self, sizes: &[usize]) -> String {
        let mut out = String::from("Targets:\n\n");
        let porthole = [ServerKind::PortholeTokio, ServerKind::PortholeSmol];
        let value = |results: &PerServer<IngressResult>, kind, size| {
            get(results, kind)
                .and_then(|r| r.as_ref().ok())
                .and_then(|r| lossless_of(r, size))
        };
        let raw = self.raw.as_ref().and_then(|r| r.as_ref().ok());
        let mut check = |name: String, ratio: Option<f64>, goal: f64, unit: &str| {
            let verdict = match ratio {
                Some(r) if r >= goal => "met",
                Some(_) => "**missed**",
                None => "not measured",
            };
            let shown = ratio.map_or("—".into(), |r| format!("{r:.2}{unit}"));
            let _ = writeln!(out, "- {name}: {shown} (goal ≥ {goal}{unit}): {verdict}");
        };
        for &size in sizes {
            let koi = value(&self.ingress, ServerKind::Koi, size);
            let ceiling = raw.and_then(|r| lossless_of(r, size));
            for kind in porthole {
                let v = value(&self.ingress, kind, size);
                check(
                    format!("{} lossless UDP → SSE, {size} B, vs koi-udp", kind.name()),
                    v.zip(koi).filter(|(_, k)| *k > 0.0).map(|(v, k)| v / k),
                    3.0,
                    "×",
                );
                check(
                    format!("{} lossless UDP → SSE, {size} B, vs raw UDP", kind.name()),
                    v.zip(ceiling).filter(|(_, c)| *c > 0.0).map(|(v, c)| v / c),
                    0.5,
                    "×",
                );
            }
        }
        let send = |kind| {
            get(&self.send, kind)
                .and_then(|r| r.as_ref().ok())
                .map(|r| r.per_sec)
        };
        let memory = |kind| {
            get(&self.memory, kind)
                .and_then(|r| r.as_ref().ok())
                .map(Memory::per_binding)
        };
        for kind in porthole {
            check(
                format!("{} `POST /send` vs koi-udp", kind.name()),
                send(kind)
                    .zip(send(ServerKind::Koi))
                    .filter(|(_, k)| *k > 0.0)
                    .map(|(v, k)| v / k),
                1.5,
                "×",
            );
            check(
                format!(
                    "{} memory per idle binding, koi-udp's over Porthole's",
                    kind.name()
                ),
                memory(kind)
                    .zip(memory(ServerKind::Koi))
                    .filter(|(v, _)| *v > 0.0)
                    .map(|(v, k)| k / v),
                10.0,
                "×",
            );
        }
        for kind in porthole {
            let late = get(&self.expiry, kind)
                .and_then(|r| r.as_ref().ok())
                .and_then(|e| if e.timed_out > 0 { None } else { e.max_ms() });
            let verdict = match late {
                Some(ms) if ms < 50.0 => "met",
                Some(_) => "**missed**",
                None => "not measured",
            };
            let shown = late.map_or("—".into(), |ms| format!("{ms:.1} ms"));
            let _ = writeln!(
                out,
                "- {} expiry lateness of a 1 s lease (max): {shown} (goal < 50 ms): {verdict}",
                kind.name()
            );
        }
        out.push('\n');
        out
    }

    fn notes(&self, sizes: &[usize]) -> String {
        let mut out = String::from("Details:\n\n");
        let mut lossless_note = |name: &str, r: &IngressResult| {
            for &size in sizes {
                if let Some((_, l)) = r.lossless.iter().find(|(s, _)| *s == size) {
                    if l.sender_bound {
                        let _ = writeln!(
                            out,
                            "- {name}, {size} B: in the last window the sender reached only {}/s of the rate asked, all delivered (a lower bound)",
                            per_sec(l.rate)
                        );
                    }
                }
                if let Some(loss) = r
                    .lossless
                    .iter()
                    .find(|(s, _)| *s == size)
                    .and_then(|(_, l)| l.loss)
                {
                    let _ = writeln!(out, "- {name}, {size} B: first loss {loss}");
                }
                if let Some((_, s)) = r.saturation.iter().find(|(s, _)| *s == size) {
                    let server = s
                        .server_cpu_us
                        .map_or(String::new(), |us| format!("server {us:.2} µs, "));
                    let _ = writeln!(
                        out,
                        "- {name}, {size} B flat out: offered {}/s, delivered {}/s; CPU per datagram: {server}sender + receiver {:.2} µs",
                        per_sec(s.offered),
                        per_sec(s.delivered),
                        s.client_cpu_us
                    );
                }
            }
            let _ = writeln!(
                out,
                "- {name}, latency run: {} of {} datagrams arrived",
                r.latency.received, r.latency.sent
            );
        };
        if let Some(Ok(raw)) = &self.raw {
            lossless_note("raw UDP", raw);
        }
        for (kind, r) in &self.ingress {
            if let Ok(r) = r {
                lossless_note(kind.name(), r);
            }
        }
        for (kind, r) in &self.send {
            if let Ok(r) = r {
                let _ = writeln!(
                    out,
                    "- {} `POST /send`: {} ok, {} failed; CPU per request: server {:.1} µs, clients {:.1} µs",
                    kind.name(),
                    r.ok,
                    r.failed,
                    r.server_cpu_us,
                    r.client_cpu_us
                );
            }
        }
        for (kind, r) in &self.bind {
            if let Ok(r) = r {
                let _ = writeln!(
                    out,
                    "- {} bind + unbind: {} ok, {} failed",
                    kind.name(),
                    r.ok,
                    r.failed
                );
            }
        }
        for (kind, r) in &self.memory {
            if let Ok(m) = r {
                let _ = writeln!(
                    out,
                    "- {} memory: RSS {:.1} MiB with none, {:.1} MiB with {} bindings (filled at {}/s)",
                    kind.name(),
                    m.rss_before as f64 / 1048576.0,
                    m.rss_after as f64 / 1048576.0,
                    m.bindings,
                    per_sec(m.bind_rate)
                );
            }
        }
        for (kind, r) in &self.expiry {
            if let Ok(e) = r {
                let samples: Vec<String> =
                    e.lateness_ms.iter().map(|ms| format!("{ms:.1}")).collect();
                let _ = writeln!(
                    out,
                    "- {} expiry: lateness [{}] ms, {} still alive after the cap, {} with the port still taken after the stream ended",
                    kind.name(),
                    samples.join(", "),
                    e.timed_out,
                    e.port_kept
                );
            }
        }
        let errors = self
            .ingress
            .iter()
            .map(|(k, r)| (k, "UDP → SSE", r.as_ref().err()))
            .chain(
                self.send
                    .iter()
                    .map(|(k, r)| (k, "POST /send", r.as_ref().err())),
            )
            .chain(
                self.bind
                    .iter()
                    .map(|(k, r)| (k, "bind + unbind", r.as_ref().err())),
            )
            .chain(
                self.memory
                    .iter()
                    .map(|(k, r)| (k, "memory", r.as_ref().err())),
            )
            .chain(
                self.expiry
                    .iter()
                    .map(|(k, r)| (k, "expiry", r.as_ref().err())),
            );
        for (kind, what, error) in errors {
            if let Some(e) = error {
                let _ = writeln!(out, "- {} {what}: error: {e}", kind.name());
            }
        }
        if let Some(Err(e)) = &self.raw {
            let _ = writeln!(out, "- raw UDP: error: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
