//! The client's behaviours against a real daemon on loopback, written once
//! and run on every runtime (`tests/tokio.rs`, `tests/smol.rs`).
//!
//! Each case starts a daemon in-process on the runtime under test, runs its
//! body on the test's thread (so a plain blocking `std::net::UdpSocket` can
//! play the peer) within [`CASE_TIMEOUT`], and shuts the daemon down.

#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use porthole_client::porthole_core::api::ErrorCode;
use porthole_client::porthole_core::CloseReason;
use porthole_client::porthole_runtime::{sleep, Runtime};
use porthole_client::{BindError, BindParams, Event, LeasedSocket, Server, SocketError};
use porthole_conformance::client::{Client, Target};
use porthole_tokio::{Listen, ListenAddr, ServerConfig, Token};

/// The longest a case may run.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a blocking peer waits for a datagram.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// A runtime the cases run on.
pub trait Harness {
    /// A fresh runtime for one case.
    fn new() -> Self;
    /// The runtime, as the daemon and the client take it.
    fn runtime(&self) -> Arc<dyn Runtime>;
    /// Runs `future` to completion on the test's thread.
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

/// What a case body gets: the runtime, the daemon as the client names it,
/// and a blocking HTTP client to look at the daemon's own view.
pub struct Ctx {
    pub runtime: Arc<dyn Runtime>,
    pub server: Server,
    pub http: Client,
    pub daemon_addr: Option<SocketAddr>,
}

impl Ctx {
    /// Binds with `params`.
    pub async fn bind(&self, params: BindParams) -> LeasedSocket {
        LeasedSocket::bind(self.runtime.clone(), &self.server, params)
            .await
            .expect("bind")
    }

    /// Waits `d` on the runtime's clock.
    pub async fn sleep(&self, d: Duration) {
        let mut timer = self.runtime.new_timer(self.runtime.now() + d);
        sleep(&mut timer).await;
    }

    /// The daemon's view of a binding (`GET /v1/udp/status`), if it is live.
    pub fn status_of(&self, socket: &LeasedSocket) -> Option<serde_json::Value> {
        let id = socket.binding_id().to_string();
        let status = self.http.get("/v1/udp/status").expect(200);
        status["bindings"]
            .as_array()
            .expect("bindings")
            .iter()
            .find(|b| b["id"] == id.as_str())
            .cloned()
    }

    /// A value of the daemon's metrics (`GET /metrics`).
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.http.get("/metrics").body;
        let text = String::from_utf8_lossy(&text).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} in {text}"))
    }
}

/// Starts a daemon configured by `configure` on `H`, runs `case` against
/// it, and shuts it down.
pub fn run<H, C, F>(configure: impl FnOnce(&mut ServerConfig), case: C)
where
    H: Harness,
    C: FnOnce(Ctx) -> F,
    F: Future<Output = ()>,
{
    let harness = H::new();
    let runtime = harness.runtime();
    let mut config = ServerConfig {
        listen: vec![Listen::Tcp("127.0.0.1:0".parse().expect("an address"))],
        ..ServerConfig::default()
    };
    configure(&mut config);
    let token = config.http.token.is_some().then(|| TOKEN.to_owned());
    let daemon = porthole_tokio::Server::start(runtime.clone(), config).expect("the daemon starts");
    let (target, mut server, daemon_addr) = match &daemon.addresses()[0] {
        ListenAddr::Tcp(addr) => (Target::Tcp(*addr), Server::tcp(*addr), Some(*addr)),
        ListenAddr::Unix(Some(path)) => (Target::Unix(path.clone()), Server::unix(path), None),
        ListenAddr::Unix(None) => unreachable!("the daemon listens on a named socket"),
    };
    let mut http = Client::at(target);
    if let Some(token) = &token {
        server = server.with_token(token);
        http = http.with_header("Authorization", &format!("Bearer {token}"));
    }
    let ctx = Ctx {
        runtime: runtime.clone(),
        server,
        http,
        daemon_addr,
    };
    harness.block_on(async {
        let mut timer = runtime.new_timer(runtime.now() + CASE_TIMEOUT);
        futures_lite::future::or(case(ctx), async {
            sleep(&mut timer).await;
            panic!("the case did not finish within {CASE_TIMEOUT:?}");
        })
        .await
    });
    harness.block_on(daemon.shutdown());
}

/// The token of daemons that require one.
const TOKEN: &str = "client-test-token";

/// A blocking UDP peer on loopback.
fn peer() -> UdpSocket {
    let peer = UdpSocket::bind("127.0.0.1:0").expect("a peer socket");
    peer.set_read_timeout(Some(PEER_TIMEOUT)).expect("timeout");
    peer
}

pub fn send_and_receive_both_ways_with_a_udp_peer<H: Harness>() {
    run::<H, _, _>(
        |_| {},
        |ctx| async move {
            let socket = ctx.bind(BindParams::default()).await;
            let host = socket.local_addr();
            assert!(host.ip().is_loopback() && host.port() != 0, "{host}");
            let peer = peer();
            let peer_addr = peer.local_addr().unwrap();

            for i in 0..50u32 {
                peer.send_to(&i.to_be_bytes(), host).unwrap();
            }
            let mut buf = [0u8; 64];
            for i in 0..50u32 {
                let (n, from) = socket.recv_from(&mut buf).await.expect("a datagram");
                assert_eq!((&buf[..n], from), (&i.to_be_bytes()[..], peer_addr));
            }

            for i in 0..50u32 {
                let payload = format!("reply {i}");
                let n = socket.send_to(payload.as_bytes(), peer_addr).await.unwrap();
                assert_eq!(n, payload.len());
            }
            for i in 0..50u32 {
                let (n, from) = peer.recv_from(&mut buf).expect("a reply");
                assert_eq!(
                    (&buf[..n], from),
                    (format!("reply {i}").as_bytes(), host),
                    "replies leave from the leased port, in order"
                );
            }
            // An empty datagram and a large one travel too; a short buffer cuts.
            peer.send_to(&[], host).unwrap();
            let big = vec![7u8; 60_000];
            peer.send_to(&big, host).unwrap();
            assert_eq!(socket.recv_from(&mut buf).await.unwrap().0, 0);
            let d = socket.recv().await.unwrap();
            assert_eq!(&d.payload[..], &big[..]);
            let stats = socket.stats();
            assert_eq!((stats.received, stats.sent), (52, 50));
            assert_eq!(socket.losses().missed, 0);
            socket.close().await.expect("close");
        },
    );
}

pub fn leases_are_renewed_across_several_lease_periods<H: Harness>() {
    run::<H, _, _>(
        |_| {},
        |ctx| async move {
            let socket = ctx
                .bind(BindParams {
                    lease: Some(Duration::from_secs(1)),
                    ..BindParams::default()
                })
                .await;
            assert_eq!(socket.lease(), Duration::from_secs(1));
            let renewed_before = ctx.metric("porthole_leases_renewed_total");
            ctx.sleep(Duration::from_millis(3_500)).await;
            let info = ctx
                .status_of(&socket)
                .expect("still bound after 3.5 leases");
            assert_eq!(info["lease_secs"], 1);
            let renewals = socket.stats().renewals;
            assert!(renewals >= 6, "renewed every third of a lease: {renewals}");
            let counted = ctx.metric("porthole_leases_renewed_total") - renewed_before;
            assert!(
                counted >= renewals as f64,
                "the daemon counted {counted} renewals, the client {renewals}"
            );
            // And it still carries datagrams.
            let peer = peer();
            peer.send_to(b"alive", socket.local_addr()).unwrap();
            assert_eq!(&socket.recv().await.unwrap().payload[..], b"alive");
            assert_eq!(socket.try_next_event(), None, "nothing went wrong");
            socket.close().await.unwrap();
        },
    );
}

/// A TCP proxy on loopback whose connections can be cut, or made to lose
/// what they carry (as a dying connection or a lost path does).
struct Proxy {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Relayed>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// One connection through the [`Proxy`].
struct Relayed {
    client: TcpStream,
    server: TcpStream,
    /// While set, bytes from the daemon are read and thrown away.
    losing_down: Arc<AtomicBool>,
    /// While set, bytes to the daemon are read and thrown away.
    losing_up: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a proxy listener");
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<Relayed>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let accept = std::thread::spawn({
            let (connections, stop) = (connections.clone(), stop.clone());
            move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (Ok(client), Ok(server)) = (client, TcpStream::connect(upstream)) else {
                        continue;
                    };
                    let clone = |s: &TcpStream| s.try_clone().expect("a clone");
                    let relayed = Relayed {
                        client: clone(&client),
                        server: clone(&server),
                        losing_down: Arc::default(),
                        losing_up: Arc::default(),
                    };
                    let up = (clone(&client), clone(&server), relayed.losing_up.clone());
                    let down = (server, client, relayed.losing_down.clone());
                    // Listed before a byte is relayed: a client that got an
                    // answer through it finds it in the list.
                    connections.lock().unwrap().push(relayed);
                    for (from, to, losing) in [up, down] {
                        std::thread::spawn(move || relay(from, to, losing));
                    }
                }
            }
        });
        Proxy {
            addr,
            connections,
            stop,
            accept: Some(accept),
        }
    }

    /// The connections open now lose what the daemon sends from now on.
    fn lose_downstream(&self) {
        for c in self.connections.lock().unwrap().iter() {
            c.losing_down.store(true, Ordering::SeqCst);
        }
    }

    /// The connections open now lose everything from now on, and stay open.
    fn silence(&self) {
        for c in self.connections.lock().unwrap().iter() {
            c.losing_down.store(true, Ordering::SeqCst);
            c.losing_up.store(true, Ordering::SeqCst);
        }
    }

    /// Cuts every connection open now; returns how many.
    fn cut(&self) -> usize {
        let mut all = self.connections.lock().unwrap();
        for c in all.iter() {
            let _ = c.client.shutdown(Shutdown::Both);
            let _ = c.server.shutdown(Shutdown::Both);
        }
        let n = all.len();
        all.clear();
        n
    }
}

/// Copies `from` to `to` (throwing the bytes away while `losing` is set)
/// until either ends.
fn relay(mut from: TcpStream, mut to: TcpStream, losing: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if losing.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        self.cut();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

pub fn reconnect_resumes_without_loss_or_duplicates_after_the_connection_is_cut<H: Harness>() {
    run::<H, _, _>(
        |_| {},
        |ctx| async move {
            let proxy = Proxy::start(ctx.daemon_addr.expect("a TCP daemon"));
            let server = Server::tcp(proxy.addr);
            let socket = LeasedSocket::bind(ctx.runtime.clone(), &server, BindParams::default())
                .await
                .expect("bind through the proxy");
            let host = socket.local_addr();
            let peer = peer();
            let index = |d: porthole_client::Datagram| {
                u32::from_be_bytes(d.payload[..].try_into().expect("4 bytes"))
            };

            // Twice (before the first datagram reached the client, and after
            // some did): a burst the daemon delivers into a connection that
            // loses it, then the cut. It all comes back from the replay ring.
            const BURST: u32 = 100;
            for round in 0..2 {
                proxy.lose_downstream();
                let first = round * BURST;
                for i in first..first + BURST {
                    peer.send_to(&i.to_be_bytes(), host).unwrap();
                }
                let deadline = Instant::now() + PEER_TIMEOUT;
                while ctx.status_of(&socket).expect("bound")["counters"]["delivered"]
                    != first + BURST
                {
                    assert!(Instant::now() < deadline, "the daemon delivered the burst");
                    ctx.sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(
                    socket.stats().received,
                    u64::from(first),
                    "all of it was lost"
                );
                assert!(proxy.cut() >= 1, "the channel's connection was open");
                let mut got = Vec::new();
                while got.len() < BURST as usize {
                    got.push(index(socket.recv().await.expect("a datagram")));
                }
                assert_eq!(
                    got,
                    (first..first + BURST).collect::<Vec<_>>(),
                    "round {round}"
                );
            }

            // A steady stream, cut twice while the caller reads.
            const N: u32 = 300;
            let start = 2 * BURST;
            let sender = std::thread::spawn(move || {
                for i in start..start + N {
                    peer.send_to(&i.to_be_bytes(), host).unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let mut got = Vec::new();
            while got.len() < N as usize {
                got.push(index(socket.recv().await.expect("a datagram")));
                if got.len() == 50 || got.len() == 200 {
                    assert!(proxy.cut() >= 1, "the channel's connection was open");
                }
            }
            sender.join().unwrap();
            assert_eq!(
                got,
                (start..start + N).collect::<Vec<_>>(),
                "every datagram once, in order"
            );

            let stats = socket.stats();
            assert!(stats.reconnects >= 4, "{stats:?}");
            assert_eq!(socket.losses().missed, 0);
            let mut reconnected = 0;
            while let Some(event) = socket.try_next_event() {
                match event {
                    Event::Reconnected { .. } => reconnected += 1,
                    other => panic!("unexpected event {other:?}"),
                }
            }
            assert_eq!(reconnected, stats.reconnects);
            socket.close().await.unwrap();
        },
    );
}

pub fn a_silent_connection_is_given_up_and_reopened<H: Harness>() {
    run::<H, _, _>(
        |_| {},
        |ctx| async move {
            let proxy = Proxy::start(ctx.daemon_addr.expect("a TCP daemon"));
            let server = Server::tcp(proxy.addr);
            let params = BindParams {
                keep_alive: Duration::from_millis(200),
                ..BindParams::default()
            };
            let socket = LeasedSocket::bind(ctx.runtime.clone(), &server, params)
                .await
                .expect("bind through the proxy");
            // The path goes dark: no FIN, no RST, nothing arrives.
            proxy.silence();
            let peer = peer();
            for i in 0..20u8 {
                peer.send_to(&[i], socket.local_addr()).unwrap();
            }
            for i in 0..20u8 {
                assert_eq!(&socket.recv().await.expect("a datagram").payload[..], &[i]);
            }
            let stats = socket.stats();
            assert!(stats.reconnects >= 1, "{stats:?}");
            assert!(matches!(
                socket.try_next_event(),
                Some(Event::Reconnected { attempts: 1, .. })
            ));
            socket.close().await.unwrap();
        },
    );
}

pub fn ring_overflow_is_counted_and_reported_as_the_daemon_counts_it<H: Harness>() {
    run::<H, _, _>(
        |config| config.engine.ring_datagrams = 16,
        |ctx| async move {
            let socket = ctx
                .bind(BindParams {
                    recv_queue: 4,
                    ..BindParams::default()
                })
                .await;
            // Far more than the ring, the receive queue and the connection's
            // buffers hold, while the caller reads nothing.
            const N: usize = 3_000;
            let peer = peer();
            let payload = vec![0xabu8; 16 * 1024];
            for _ in 0..N {
                peer.send_to(&payload, socket.local_addr()).unwrap();
            }
            ctx.sleep(Duration::from_millis(500)).await;
            // A last datagram brings the last notice before it.
            peer.send_to(b"end", socket.local_addr()).unwrap();
            let mut received = 0;
            loop {
                let d = socket.recv().await.expect("a datagram");
                if &d.payload[..] == b"end" {
                    break;
                }
                received += 1;
            }
            let losses = socket.losses();
            assert!(losses.missed > 0, "the flood overflowed the ring");
            assert_eq!(
                received + losses.missed as usize,
                N,
                "every datagram was received or reported missed"
            );
            let counters = &ctx.status_of(&socket).expect("bound")["counters"];
            assert_eq!(counters["missed"], losses.missed, "{counters}");
            let mut reported = 0;
            while let Some(event) = socket.try_next_event() {
                match event {
                    Event::Lagged { missed } => reported += missed,
                    other => panic!("unexpected event {other:?}"),
                }
            }
            assert_eq!(reported, losses.missed, "the events add up to the counter");
            socket.close().await.unwrap();
        },
    );
}

pub fn refusals_map_to_their_errors<H: Harness>() {
    const RANGE: std::ops::RangeInclusive<u16> = 41_000..=41_009;
    run::<H, _, _>(
        |config| {
            config.http.token = Some(Token::new(TOKEN).unwrap());
            config.engine.port_range = RANGE;
        },
        |ctx| async move {
            let err = |r: Result<LeasedSocket, BindError>| r.expect_err("refused");
            let at = |port| BindParams {
                port,
                ..BindParams::default()
            };
            let anonymous = Server::tcp(ctx.daemon_addr.unwrap());
            let e = err(LeasedSocket::bind(ctx.runtime.clone(), &anonymous, at(41_000)).await);
            assert!(matches!(e, BindError::Unauthorized(_)), "{e}");
            assert_eq!(
                e.server_error().unwrap().code,
                Some(ErrorCode::Unauthorized)
            );
            let wrong = anonymous.clone().with_token("wrong");
            let e = err(LeasedSocket::bind(ctx.runtime.clone(), &wrong, at(41_000)).await);
            assert!(matches!(e, BindError::Unauthorized(_)), "{e}");

            let e = err(LeasedSocket::bind(ctx.runtime.clone(), &ctx.server, at(50_000)).await);
            assert!(matches!(e, BindError::PortNotAllowed(_)), "{e}");
            assert_eq!(e.server_error().unwrap().status, 403);

            let remote = BindParams {
                addr: Some("0.0.0.0".parse().unwrap()),
                port: 41_000,
                ..BindParams::default()
            };
            let e = err(LeasedSocket::bind(ctx.runtime.clone(), &ctx.server, remote).await);
            assert!(matches!(e, BindError::RemoteNotAllowed(_)), "{e}");

            // A port of the range nobody else holds, bound twice.
            let port = RANGE
                .clone()
                .find(|p| UdpSocket::bind(("127.0.0.1", *p)).is_ok())
                .expect("a free port in the range");
            let first = ctx.bind(at(port)).await;
            assert_eq!(first.local_addr().port(), port);
            let e = err(LeasedSocket::bind(ctx.runtime.clone(), &ctx.server, at(port)).await);
            assert!(matches!(e, BindError::AddressInUse(_)), "{e}");
            assert_eq!(e.server_error().unwrap().status, 409);
            first.close().await.unwrap();

            let unreachable = Server::tcp(
                TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap(),
            );
            let e = err(LeasedSocket::bind(ctx.runtime.clone(), &unreachable, at(0)).await);
            assert!(matches!(e, BindError::Transport(_)), "{e}");
        },
    );
}

pub fn a_unix_socket_daemon_serves_the_client<H: Harness>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    run::<H, _, _>(
        |config| {
            config.listen = vec![Listen::Unix {
                path: path.clone(),
                mode: 0o600,
            }]
        },
        |ctx| async move {
            let socket = ctx.bind(BindParams::default()).await;
            let peer = peer();
            peer.send_to(b"over unix", socket.local_addr()).unwrap();
            let d = socket.recv().await.unwrap();
            assert_eq!(
                (&d.payload[..], d.src),
                (&b"over unix"[..], peer.local_addr().unwrap())
            );
            socket.send_to(b"back", d.src).await.unwrap();
            let mut buf = [0; 16];
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"back"[..], socket.local_addr()));
            socket.close().await.unwrap();
            assert!(ctx.status_of(&socket).is_none());
        },
    );
}

pub fn close_unbinds_and_ends_the_socket<H: Harness>() {
    run::<H, _, _>(
        |_| {},
        |ctx| async move {
            let socket = ctx.bind(BindParams::default()).await;
            let host = socket.local_addr();
            assert!(ctx.status_of(&socket).is_some());
            // A datagram still queued at the close is not read after it.
            peer().send_to(b"late", host).unwrap();
            while socket.stats().received == 0 {
                ctx.sleep(Duration::from_millis(5)).await;
            }
            socket.close().await.expect("close");
            assert!(ctx.status_of(&socket).is_none(), "unbound");
            UdpSocket::bind(host).expect("the host port is free again");
            let mut buf = [0; 8];
            assert_eq!(
                socket.recv_from(&mut buf).await,
                Err(SocketError::ClosedLocally)
            );
            assert_eq!(
                socket.send_to(b"x", host).await,
                Err(SocketError::ClosedLocally)
            );
            assert_eq!(
                socket.next_event().await,
                Some(Event::Ended(SocketError::ClosedLocally))
            );
            assert_eq!(socket.next_event().await, None);
            socket.close().await.expect("closing twice is fine");

            // Dropping a socket unbinds it too.
            let dropped = ctx.bind(BindParams::default()).await;
            let id = dropped.binding_id().to_string();
            drop(dropped);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let status = ctx.http.get("/v1/udp/status").expect(200);
                if !status.to_string().contains(&id) {
                    break;
                }
                assert!(Instant::now() < deadline, "a dropped socket is unbound");
                ctx.sleep(Duration::from_millis(20)).await;
            }
        },
    );
}

pub fn a_binding_closed_by_the_daemon_ends_recv_after_what_came_before<H: Harness>() {
    run::<H, _, _>(
        |_| {},
        |ctx| async move {
            let socket = ctx.bind(BindParams::default()).await;
            let peer = peer();
            peer.send_to(b"before", socket.local_addr()).unwrap();
            // Wait until the datagram is in the client's queue.
            while socket.stats().received == 0 {
                ctx.sleep(Duration::from_millis(5)).await;
            }
            let id = socket.binding_id();
            ctx.http.delete(&format!("/v1/udp/bind/{id}")).expect(200);
            assert_eq!(&socket.recv().await.unwrap().payload[..], b"before");
            assert_eq!(
                socket.recv().await,
                Err(SocketError::Closed(CloseReason::Unbound))
            );
            assert_eq!(
                socket.send_to(b"x", peer.local_addr().unwrap()).await,
                Err(SocketError::Closed(CloseReason::Unbound))
            );
            assert_eq!(
                socket.next_event().await,
                Some(Event::Ended(SocketError::Closed(CloseReason::Unbound)))
            );
            socket
                .close()
                .await
                .expect("closing a closed binding is fine");
        },
    );
}

pub fn failed_sends_are_reported_as_events<H: Harness>() {
    run::<H, _, _>(
        |config| config.engine.dest_deny = vec!["127.0.0.2/32".parse().unwrap()],
        |ctx| async move {
            let socket = ctx.bind(BindParams::default()).await;
            let denied: SocketAddr = "127.0.0.2:9".parse().unwrap();
            for _ in 0..3 {
                socket.send_to(b"no", denied).await.unwrap();
            }
            let mut count = 0;
            while count < 3 {
                match socket.next_event().await.expect("an event") {
                    Event::SendFailed {
                        dest,
                        error,
                        count: n,
                        ..
                    } => {
                        assert_eq!((dest, error), (denied, ErrorCode::DestinationDenied));
                        count += n;
                    }
                    other => panic!("unexpected event {other:?}"),
                }
            }
            assert_eq!(count, 3);
            let losses = socket.losses();
            assert_eq!(losses.send_errors, 3);
            // The socket carries on.
            let peer = peer();
            socket
                .send_to(b"yes", peer.local_addr().unwrap())
                .await
                .unwrap();
            let mut buf = [0; 8];
            assert_eq!(peer.recv_from(&mut buf).unwrap().0, 3);
            let e = socket
                .send_to(&vec![0; porthole_client::MAX_PAYLOAD + 1], denied)
                .await
                .unwrap_err();
            assert!(matches!(e, SocketError::TooLarge { .. }), "{e}");
            socket.close().await.unwrap();
        },
    );
}

/// Defines one `#[test]` per case on a [`Harness`].
macro_rules! client_cases {
    ($harness:ty) => {
        $crate::cases::client_cases!(@each $harness, [
            send_and_receive_both_ways_with_a_udp_peer,
            leases_are_renewed_across_several_lease_periods,
            reconnect_resumes_without_loss_or_duplicates_after_the_connection_is_cut,
            a_silent_connection_is_given_up_and_reopened,
            ring_overflow_is_counted_and_reported_as_the_daemon_counts_it,
            refusals_map_to_their_errors,
            a_unix_socket_daemon_serves_the_client,
            close_unbinds_and_ends_the_socket,
            a_binding_closed_by_the_daemon_ends_recv_after_what_came_before,
            failed_sends_are_reported_as_events,
        ]);
    };
    (@each $harness:ty, [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                cases::$case::<$harness>();
            }
        )*
    };
}
pub(crate) use client_cases;
