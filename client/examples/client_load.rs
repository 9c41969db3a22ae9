//! How fast a `LeasedSocket` moves datagrams, against an in-process daemon on
//! loopback (tokio): egress (`send_to` to a plain UDP peer) and ingress (a
//! peer to `recv`), each with a bounded number in flight so that nothing is
//! lost, and the round trip of one datagram through the daemon and back.
//!
//! ```sh
//! cargo run --release -p porthole-client --example client_load -- [datagrams] [payload bytes]
//! ```
//!
//! Defaults: 100000 datagrams of 64 bytes. A figure, not a test: it
//! asserts nothing about speed.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use porthole_client::{BindParams, LeasedSocket, Server};
use porthole_tokio::{Listen, ServerConfig, TokioRuntime};

/// Datagrams the ingress peer keeps in flight (below the daemon's ring).
const WINDOW: u64 = 128;

/// Datagrams egress keeps in flight (well within the peer's socket buffer).
const EGRESS_WINDOW: u64 = 32;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let size: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let config = ServerConfig {
        listen: vec![Listen::Tcp("127.0.0.1:0".parse()?)],
        ..ServerConfig::default()
    };
    let daemon = porthole_tokio::serve(config).await?;
    let server = Server::tcp(daemon.local_addr());
    let socket = Arc::new(
        LeasedSocket::bind(
            Arc::new(TokioRuntime::current()),
            &server,
            BindParams::default(),
        )
        .await?,
    );
    let host = socket.local_addr();
    let payload = vec![0x5a; size];
    println!("{count} datagrams of {size} bytes, client and daemon on loopback");

    // Egress: send_to with at most EGRESS_WINDOW datagrams beyond what the peer
    // read (the peer's socket buffer would drop the rest).
    let peer = UdpSocket::bind("127.0.0.1:0")?;
    peer.set_read_timeout(Some(Duration::from_secs(2)))?;
    let peer_addr = peer.local_addr()?;
    let arrived = Arc::new(AtomicU64::new(0));
    let counter = std::thread::spawn({
        let (peer, arrived) = (peer.try_clone()?, arrived.clone());
        move || {
            let mut buf = vec![0; 65_536];
            while arrived.load(Ordering::Relaxed) < count && peer.recv_from(&mut buf).is_ok() {
                arrived.fetch_add(1, Ordering::Release);
            }
        }
    });
    let start = Instant::now();
    for sent in 0..count {
        while sent >= arrived.load(Ordering::Acquire) + EGRESS_WINDOW {
            tokio::task::yield_now().await;
            if start.elapsed() > Duration::from_secs(60) {
                return Err("egress stalled".into());
            }
        }
        socket.send_to(&payload, peer_addr).await?;
    }
    counter.join().map_err(|_| "the counter panicked")?;
    let secs = start.elapsed().as_secs_f64();
    let arrived = arrived.load(Ordering::Acquire);
    println!(
        "egress : {arrived}/{count} arrived, {:.0} datagrams/s, {:.1} MB/s",
        arrived as f64 / secs,
        (arrived as f64 * size as f64) / secs / 1e6
    );

    // Ingress: the peer keeps at most WINDOW datagrams beyond what the client read.
    let read = Arc::new(AtomicU64::new(0));
    let sender = std::thread::spawn({
        let (peer, read, payload) = (peer.try_clone()?, read.clone(), payload.clone());
        move || {
            for sent in 0..count {
                while sent >= read.load(Ordering::Acquire) + WINDOW {
                    std::thread::yield_now();
                }
                let _ = peer.send_to(&payload, host);
            }
        }
    });
    let start = Instant::now();
    for _ in 0..count {
        socket.recv().await?;
        read.fetch_add(1, Ordering::Release);
    }
    let secs = start.elapsed().as_secs_f64();
    sender.join().map_err(|_| "the sender panicked")?;
    println!(
        "ingress: {count}/{count} received, {:.0} datagrams/s, {:.1} MB/s, missed {}",
        count as f64 / secs,
        (count as f64 * size as f64) / secs / 1e6,
        socket.losses().missed
    );

    // Round trip: peer -> daemon -> client -> daemon -> peer, one at a time.
    let mut rtts = Vec::with_capacity(1000);
    let echo = tokio::spawn({
        let socket = socket.clone();
        async move {
            for _ in 0..1000 {
                let Ok(d) = socket.recv().await else { break };
                let _ = socket.send_to(&d.payload, d.src).await;
            }
        }
    });
    let mut buf = vec![0; 65_536];
    for _ in 0..1000 {
        let t = Instant::now();
        peer.send_to(&payload, host)?;
        peer.recv_from(&mut buf)?;
        rtts.push(t.elapsed());
    }
    echo.await?;
    rtts.sort();
    println!(
        "echo   : round trip p50 {:?}, p99 {:?} (a direct UDP round trip skips two WebSocket hops)",
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 99 / 100]
    );
    socket.close().await?;
    daemon.shutdown().await;
    Ok(())
}
