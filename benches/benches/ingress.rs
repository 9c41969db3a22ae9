//! Datagram ingress through the engine, on one core.
//!
//! Each iteration feeds [`DATAGRAMS`] 64-byte datagrams to one binding with
//! `handle_datagram`, drains `poll_action` after each, and returns credit every
//! [`CREDIT_EVERY`] events, as a driver does once its SSE writer has flushed a batch.
//! The figure is datagrams per second (criterion's element throughput).
//!
//! Variants: one subscriber (the hot path a client sees), and no subscriber (the
//! datagrams only go through the replay ring, which evicts the oldest).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use porthole_core::{
    Action, BindParams, BindingId, Command, Config, Engine, Reply, RequestId, SubscribeParams,
    SubscriberId, WallClock,
};

/// Datagrams per measured iteration.
const DATAGRAMS: u64 = 1024;
/// Events a driver writes before it returns their credit (half the default window of 128).
const CREDIT_EVERY: u32 = 64;
const PAYLOAD_LEN: usize = 64;

/// An engine with one open binding, and that binding's id.
fn bound_engine() -> (Engine, BindingId, Instant) {
    let start = Instant::now();
    let wall = WallClock::new(start, SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30));
    let mut engine =
        Engine::new(Config::default(), [7; 32], wall).expect("default config is valid");
    let mut params = BindParams::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    // The longest lease, so nothing expires however long criterion runs.
    params.lease_secs = Some(u64::MAX);
    engine.handle_command(RequestId(1), Command::Bind(params), start);
    let Some(Action::OpenSocket { binding, .. }) = engine.poll_action() else {
        panic!("a bind asks for a socket");
    };
    engine.handle_socket_opened(binding, SocketAddr::from(([127, 0, 0, 1], 40_000)), start);
    match engine.poll_action() {
        Some(Action::Reply {
            reply: Reply::Bind(Ok(_)),
            ..
        }) => {}
        other => panic!("expected the bind reply, got {other:?}"),
    }
    (engine, binding, start)
}

fn subscribe(engine: &mut Engine, binding: BindingId, now: Instant) -> SubscriberId {
    engine.handle_command(
        RequestId(2),
        Command::Subscribe(SubscribeParams::new(binding)),
        now,
    );
    match engine.poll_action() {
        Some(Action::Reply {
            reply: Reply::Subscribe(Ok(id)),
            ..
        }) => id,
        other => panic!("expected the subscribe reply, got {other:?}"),
    }
}

/// A payload as the driver hands it over: a reference-counted slice of a
/// receive buffer, so each clone is a reference count increment.
fn payload() -> Bytes {
    let payload = Bytes::from(vec![0xa5; PAYLOAD_LEN]);
    // The first clone moves a `Vec`-backed `Bytes` to shared storage; do it now.
    drop(payload.clone());
    payload
}

fn ingress(c: &mut Criterion) {
    let src = SocketAddr::from(([127, 0, 0, 1], 50_000));
    let payload = payload();
    let mut group = c.benchmark_group("ingress");
    group.throughput(Throughput::Elements(DATAGRAMS));

    group.bench_function(BenchmarkId::new("64B", "one_subscriber"), |b| {
        let (mut engine, binding, mut now) = bound_engine();
        let subscriber = subscribe(&mut engine, binding, now);
        let mut delivered: u64 = 0;
        b.iter(|| {
            for _ in 0..DATAGRAMS / u64::from(CREDIT_EVERY) {
                // A driver reads the clock once per batch it hands the engine.
                now += Duration::from_micros(1);
                for _ in 0..CREDIT_EVERY {
                    engine.handle_datagram(binding, src, payload.clone(), now);
                    while let Some(action) = engine.poll_action() {
                        delivered += 1;
                        black_box(action);
                    }
                }
                engine.handle_credit(subscriber, CREDIT_EVERY, now);
            }
        });
        // Every datagram reached the subscriber: the bench measured the real path.
        let counters = engine.counters();
        assert_eq!(counters.delivered, counters.received);
        assert_eq!(delivered, counters.received);
        assert_eq!(counters.missed, 0);
    });

    group.bench_function(BenchmarkId::new("64B", "no_subscriber"), |b| {
        let (mut engine, binding, mut now) = bound_engine();
        b.iter(|| {
            for _ in 0..DATAGRAMS / u64::from(CREDIT_EVERY) {
                now += Duration::from_micros(1);
                for _ in 0..CREDIT_EVERY {
                    engine.handle_datagram(binding, src, payload.clone(), now);
                }
            }
            // Nothing to deliver; a driver would still look.
            black_box(engine.poll_action());
        });
        let counters = engine.counters();
        assert_eq!(counters.delivered, 0);
        assert_eq!(
            counters.received,
            counters.dropped_overflow + counters.pending
        );
        assert!(counters.dropped_overflow > 0, "the ring wrapped");
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the figures are stable within a few percent at this length.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50);
    targets = ingress
}
criterion_main!(benches);
