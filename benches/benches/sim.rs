//! The deterministic simulation, on one core: whole seeded scenarios per second.
//!
//! Each iteration runs one scenario of [`SimConfig::new`]'s shape (10 clients, 3
//! peers, a lossy network, up to 1,500 engine inputs or 60 simulated seconds,
//! every step checked by the `Checker`), with a new seed each time, as a test that
//! sweeps seeds does. Two variants: `traced` records the trace of every input and
//! action (`SimConfig::new`'s default), `untraced` does not (what a sweep uses).
//! The figure is scenarios per second (criterion's element throughput).
//!
//! Before measuring, it prints the engine inputs per scenario and the scenarios
//! per CPU-second of the first `SIM_SEEDS` (default 500) seeds of each variant,
//! from the thread's CPU time, which other jobs on a shared machine disturb less
//! than the wall time criterion measures.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use porthole_core::sim::{SimConfig, Simulation};

/// Runs seed `seed`; returns its engine inputs.
fn run(seed: u64, epoch: Instant, trace: bool) -> u64 {
    let config = SimConfig {
        trace,
        ..SimConfig::new(seed)
    };
    let report = Simulation::new(config, epoch)
        .expect("the default simulation config is valid")
        .run()
        .unwrap_or_else(|e| panic!("{e}\n{}", e.trace.tail(40)));
    report.stats.steps
}

/// CPU time this thread has used, where Linux tells it (`/proc/thread-self/schedstat`).
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn sim(c: &mut Criterion) {
    let epoch = Instant::now();
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
        .max(1);
    for (name, trace) in [("traced", true), ("untraced", false)] {
        if std::env::var("SIM_ONLY").is_ok_and(|only| only != name) {
            continue;
        }
        let cpu = thread_cpu_time();
        let steps: u64 = (0..seeds).map(|seed| run(seed, epoch, trace)).sum();
        let per_scenario = steps / seeds;
        match (cpu, thread_cpu_time()) {
            (Some(before), Some(after)) => {
                let secs = (after - before).as_secs_f64();
                println!(
                    "sim/scenario/{name}: seeds 0..{seeds}, {per_scenario} engine inputs each: \
                     {secs:.3} s of CPU, {:.0} scenarios per CPU-second",
                    seeds as f64 / secs
                );
            }
            _ => println!("sim/scenario/{name}: {per_scenario} engine inputs per scenario"),
        }
    }

    let mut group = c.benchmark_group("sim/scenario");
    group.throughput(Throughput::Elements(1));
    for (name, trace) in [("traced", true), ("untraced", false)] {
        let mut seed = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                seed += 1;
                black_box(run(seed, epoch, trace))
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20);
    targets = sim
}
criterion_main!(benches);
