//! Lease churn at scale: 1,000,000 bindings bound, each heartbeated once, then
//! all expired by one `handle_timeout`.
//!
//! A phase measurement rather than a criterion bench (one run of each phase is
//! the figure of interest). It prints the time of each phase, driven as a runtime
//! would (every input followed by draining `poll_action`), and the engine's memory
//! per idle binding, from a counting global allocator: bytes live after binding
//! minus bytes live before, divided by the number of bindings.
//!
//! Targets (issue 2): the three phases together under 3 s; at most 512 bytes of
//! engine memory per idle binding. Times are printed, not asserted; the memory
//! figure is printed with PASS/FAIL against its target. Run as a test
//! (`cargo test --benches`) it goes through the same phases with 10,000 bindings.

use std::alloc::System;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use porthole_core::{
    Action, BindParams, BindingId, Command, Config, Engine, Lease, Reply, RequestId, WallClock,
};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BINDINGS: usize = 1_000_000;
/// Bindings when run as a test (`cargo test --benches`, without `--bench`): enough
/// to check that the phases work, quick in a debug build.
const SMOKE_BINDINGS: usize = 10_000;
const LEASE_SECS: u64 = 300;
const MEMORY_TARGET: f64 = 512.0;
const TIME_TARGET: Duration = Duration::from_secs(3);

/// Bytes the process has allocated and not freed.
fn live_bytes() -> usize {
    let s = GLOBAL.stats();
    s.bytes_allocated - s.bytes_deallocated
}

/// Simulated time advances this much between two inputs, so deadlines differ
/// as they would in a real run instead of all tying.
const STEP: Duration = Duration::from_micros(1);

/// One phase's wall time, and the page faults and CPU time it took.
struct Phase {
    time: Duration,
    faults: u64,
    user: Duration,
    system: Duration,
}

impl Phase {
    /// Runs `f` and measures it.
    fn run<T>(f: impl FnOnce() -> T) -> (Phase, T) {
        let before = proc_stat();
        let t = Instant::now();
        let out = f();
        let time = t.elapsed();
        let after = proc_stat();
        let phase = Phase {
            time,
            faults: after.faults - before.faults,
            user: after.user - before.user,
            system: after.system - before.system,
        };
        (phase, out)
    }

    fn print(&self, name: &str, bindings: usize, note: &str) {
        println!(
            "{name:<11} {:>7.3} s  {:>5.0} ns per binding  (cpu: user {:.2} s, system {:.2} s; {} page faults){note}",
            self.time.as_secs_f64(),
            self.time.as_nanos() as f64 / bindings as f64,
            self.user.as_secs_f64(),
            self.system.as_secs_f64(),
            self.faults,
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let bench = std::env::args().any(|arg| arg == "--bench");
    let bindings = if bench { BINDINGS } else { SMOKE_BINDINGS };
    let start = Instant::now();
    let wall = WallClock::new(start, SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30));
    let config = Config {
        max_bindings: bindings,
        default_lease: Lease::from_secs(LEASE_SECS),
        ..Config::default()
    };
    let mut engine = Engine::new(config, [9; 32], wall).expect("valid config");
    // The bench's own bookkeeping is allocated up front, outside the measurement.
    let mut ids: Vec<BindingId> = Vec::with_capacity(bindings);
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut now = start;

    println!(
        "lease churn: {bindings} bindings, lease {LEASE_SECS} s (an Action is {} bytes)",
        std::mem::size_of::<Action>()
    );
    let before = live_bytes();

    // Phase 1: bind. Each bind is the two-phase exchange a runtime carries out.
    let (bind, ()) = Phase::run(|| {
        for i in 0..bindings {
            now += STEP;
            engine.handle_command(
                RequestId(i as u64),
                Command::Bind(BindParams::new(local)),
                now,
            );
            while let Some(action) = engine.poll_action() {
                match action {
                    Action::OpenSocket { binding, .. } => {
                        let port = 1024 + (i % 60_000) as u16;
                        let opened = SocketAddr::from(([127, 0, 0, 1], port));
                        engine.handle_socket_opened(binding, opened, now);
                        ids.push(binding);
                    }
                    Action::Reply {
                        reply: Reply::Bind(Ok(info)),
                        ..
                    } => {
                        black_box(info);
                    }
                    other => panic!("unexpected action while binding: {other:?}"),
                }
            }
        }
    });
    let after_bind = live_bytes();
    assert_eq!(engine.binding_count(), bindings);
    assert_eq!(ids.len(), bindings);
    let per_binding = (after_bind - before) as f64 / bindings as f64;

    // Phase 2: heartbeat each binding once, later, so every deadline moves.
    now += Duration::from_secs(10);
    let first_deadline = now + STEP + Duration::from_secs(LEASE_SECS);
    let (heartbeat, ()) = Phase::run(|| {
        for (i, &binding) in ids.iter().enumerate() {
            now += STEP;
            engine.handle_command(
                RequestId((bindings + i) as u64),
                Command::Heartbeat {
                    binding,
                    lease_secs: None,
                },
                now,
            );
            while let Some(action) = engine.poll_action() {
                match action {
                    Action::Reply {
                        reply: Reply::Heartbeat(Ok(info)),
                        ..
                    } => {
                        black_box(info);
                    }
                    other => panic!("unexpected action while heartbeating: {other:?}"),
                }
            }
        }
    });
    let last_deadline = now + Duration::from_secs(LEASE_SECS);
    assert_eq!(engine.poll_timeout(), Some(first_deadline));

    // Phase 3: one timeout at the last deadline expires them all; the runtime
    // then drains the close actions.
    let (timeout, queued) = Phase::run(|| {
        engine.handle_timeout(last_deadline);
        live_bytes()
    });
    let (drain, closed) = Phase::run(|| {
        let mut closed = 0usize;
        while let Some(action) = engine.poll_action() {
            match action {
                Action::CloseSocket { binding } => {
                    black_box(binding);
                    closed += 1;
                }
                other => panic!("unexpected action while expiring: {other:?}"),
            }
        }
        closed
    });
    assert_eq!(closed, bindings);
    assert_eq!(engine.binding_count(), 0);
    assert_eq!(engine.poll_timeout(), None);
    assert_eq!(engine.counters().bindings_expired, bindings as u64);
    let retained = live_bytes() - before;

    let expire = Phase {
        time: timeout.time + drain.time,
        faults: timeout.faults + drain.faults,
        user: timeout.user + drain.user,
        system: timeout.system + drain.system,
    };
    let total = bind.time + heartbeat.time + expire.time;
    bind.print("bind", bindings, "");
    heartbeat.print("heartbeat", bindings, "");
    expire.print(
        "expire",
        bindings,
        &format!(
            " (handle_timeout {:.3} s, draining {closed} CloseSocket {:.3} s)",
            timeout.time.as_secs_f64(),
            drain.time.as_secs_f64()
        ),
    );
    // CPU time is less sensitive than wall time to other processes on the machine.
    let cpu = [&bind, &heartbeat, &expire]
        .iter()
        .map(|p| p.user + p.system)
        .sum::<Duration>();
    println!(
        "total       {:>7.3} s  (cpu {:.2} s)  target < {} s: {}",
        total.as_secs_f64(),
        cpu.as_secs_f64(),
        TIME_TARGET.as_secs(),
        verdict(bench, total < TIME_TARGET)
    );
    println!(
        "memory      {per_binding:>7.1} bytes per idle binding ({} bytes in all)  target <= {MEMORY_TARGET}: {}",
        after_bind - before,
        verdict(bench, per_binding <= MEMORY_TARGET)
    );
    println!(
        "            {:.1} MB live with the close actions queued; {:.1} MB kept as capacity once all expired",
        (queued - before) as f64 / 1e6,
        retained as f64 / 1e6
    );
}

/// This process's minor page faults and user and system CPU time so far, from
/// `/proc/self/stat` (Linux; zeros elsewhere). Touching fresh memory costs the
/// kernel a fault per page, a large share of a phase that grows a table.
fn proc_stat() -> ProcStat {
    let read = || -> Option<ProcStat> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name, from field 3 on.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        // utime and stime are in clock ticks, 100 per second on Linux.
        let tick = |n| field(n).map(|t| Duration::from_millis(t * 10));
        Some(ProcStat {
            faults: field(10)?,
            user: tick(14)?,
            system: tick(15)?,
        })
    };
    read().unwrap_or_default()
}

#[derive(Clone, Copy, Default)]
struct ProcStat {
    faults: u64,
    user: Duration,
    system: Duration,
}

/// The targets are for 1,000,000 bindings; a smoke run is not judged.
fn verdict(bench: bool, pass: bool) -> &'static str {
    match (bench, pass) {
        (false, _) => "not judged (smoke run)",
        (true, true) => "PASS",
        (true, false) => "FAIL",
    }
}
