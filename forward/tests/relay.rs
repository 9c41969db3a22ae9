//! The inbound relay's peer sockets against a real daemon (in process, on
//! tokio) on loopback: the application sees each remote peer from a local
//! socket of its own, a peer idle beyond its limit or pushed out beyond
//! `max_peers` comes back on a new socket, and replies reach the right peer
//! from the host port. (Both binaries run the end-to-end cases with dnsmasq
//! and socat: `rt-*/tests/forward.rs`.)

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use porthole_client::Server;
use porthole_forward::{Direction, Forwarder, PeerLimits, Plan, Summary};
use porthole_tokio::{HttpConfig, Listen, ServerConfig, Token, TokioRuntime};

/// A daemon and an inbound forward to `app`, on one tokio runtime; the test's
/// body uses blocking sockets on its own thread.
struct Setup {
    rt: tokio::runtime::Runtime,
    daemon: Option<porthole_tokio::Server>,
    forwarder: Arc<Forwarder>,
    stop: async_channel::Sender<()>,
    done: async_channel::Receiver<Result<(), String>>,
}

impl Setup {
    /// A daemon on a loopback TCP port, without a token.
    fn start(app: SocketAddr, limits: PeerLimits) -> Self {
        let config = ServerConfig {
            listen: vec![Listen::Tcp("127.0.0.1:0".parse().unwrap())],
            ..ServerConfig::default()
        };
        Setup::start_with(app, limits, config, |daemon| {
            Server::tcp(daemon.local_addr())
        })
    }

    /// A daemon with `config`, reached as `server` says.
    fn start_with(
        app: SocketAddr,
        limits: PeerLimits,
        config: ServerConfig,
        server: impl FnOnce(&porthole_tokio::Server) -> Server,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let daemon = rt
            .block_on(porthole_tokio::serve(config))
            .expect("the daemon starts");
        let plan = Plan {
            server: server(&daemon),
            remote: "127.0.0.1:0".parse().unwrap(),
            allow_remote: false,
            lease: None,
            direction: Direction::Inbound { to: app, limits },
        };
        let runtime = Arc::new(TokioRuntime::new(rt.handle().clone()));
        let forwarder = Arc::new(
            rt.block_on(Forwarder::start(runtime, plan))
                .expect("the lease is granted"),
        );
        let (stop, stopped) = async_channel::bounded(1);
        let (finished, done) = async_channel::bounded(1);
        let running = forwarder.clone();
        rt.spawn(async move {
            let result = running
                .run(async {
                    let _ = stopped.recv().await;
                })
                .await;
            let _ = finished.send(result.map_err(|e| e.to_string())).await;
        });
        Setup {
            rt,
            daemon: Some(daemon),
            forwarder,
            stop,
            done,
        }
    }

    fn host(&self) -> SocketAddr {
        self.forwarder.host_addr()
    }

    /// Stops the forward (it unbinds) and returns its counters.
    fn stop(mut self) -> Summary {
        let _ = self.stop.try_send(());
        let result = self.rt.block_on(self.done.recv()).expect("the relay ends");
        assert_eq!(result, Ok(()), "a clean stop unbinds");
        let summary = self.forwarder.summary();
        if let Some(daemon) = self.daemon.take() {
            self.rt.block_on(daemon.shutdown());
        }
        summary
    }
}

fn socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout");
    socket
}

/// Sends `payload` from `peer` to the host port; returns the local socket the
/// application saw it come from.
fn relay(peer: &UdpSocket, host: SocketAddr, app: &UdpSocket, payload: &[u8]) -> SocketAddr {
    peer.send_to(payload, host).expect("send to the host port");
    let mut buf = [0u8; 64];
    let (n, from) = app
        .recv_from(&mut buf)
        .expect("the application receives it");
    assert_eq!(&buf[..n], payload);
    from
}

/// The application answers `local` (a peer's socket); the peer gets it from the host port.
fn reply(app: &UdpSocket, local: SocketAddr, peer: &UdpSocket, host: SocketAddr, payload: &[u8]) {
    app.send_to(payload, local)
        .expect("the application replies");
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).expect("the peer gets the reply");
    assert_eq!((&buf[..n], from), (payload, host));
}

#[test]
fn each_peer_has_its_own_local_socket_and_gets_its_own_replies() {
    let app = socket();
    let setup = Setup::start(app.local_addr().unwrap(), PeerLimits::default());
    let host = setup.host();
    let (a, b) = (socket(), socket());
    let from_a = relay(&a, host, &app, b"a1");
    let from_b = relay(&b, host, &app, b"b1");
    assert_ne!(from_a, from_b, "one local socket per peer");
    assert_eq!(
        relay(&a, host, &app, b"a2"),
        from_a,
        "the same peer keeps its socket"
    );
    // Answered in the other order: each reply goes to its own peer.
    reply(&app, from_b, &b, host, b"to b");
    reply(&app, from_a, &a, host, b"to a");
    let summary = setup.stop();
    assert_eq!((summary.inbound, summary.outbound), (3, 2));
    assert_eq!((summary.peers, summary.reclaimed, summary.lost), (2, 0, 0));
}

#[test]
fn a_peer_idle_beyond_peer_idle_comes_back_on_a_new_socket() {
    let app = socket();
    let limits = PeerLimits {
        idle: Duration::from_secs(1),
        ..PeerLimits::default()
    };
    let setup = Setup::start(app.local_addr().unwrap(), limits);
    let host = setup.host();
    let peer = socket();
    let first = relay(&peer, host, &app, b"one");
    // Traffic either way keeps it: a reply, then a datagram, each within the idle time.
    std::thread::sleep(Duration::from_millis(600));
    reply(&app, first, &peer, host, b"reply");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(relay(&peer, host, &app, b"two"), first);
    std::thread::sleep(Duration::from_millis(1_500));
    let second = relay(&peer, host, &app, b"three");
    assert_ne!(second, first, "the idle peer's socket was closed");
    // The old socket is gone: the application's datagram to it goes nowhere.
    app.send_to(b"stale", first)
        .expect("send to the old socket");
    reply(&app, second, &peer, host, b"fresh");
    let summary = setup.stop();
    assert_eq!((summary.peers, summary.reclaimed), (2, 1));
}

#[test]
fn beyond_max_peers_the_least_recently_active_peer_loses_its_socket() {
    let app = socket();
    let limits = PeerLimits {
        max_peers: 2,
        ..PeerLimits::default()
    };
    let setup = Setup::start(app.local_addr().unwrap(), limits);
    let host = setup.host();
    let (a, b, c) = (socket(), socket(), socket());
    let from_a = relay(&a, host, &app, b"a");
    let from_b = relay(&b, host, &app, b"b");
    // a is active again: b is now the least recently active.
    reply(&app, from_a, &a, host, b"to a");
    let from_c = relay(&c, host, &app, b"c");
    assert_eq!(
        relay(&a, host, &app, b"a again"),
        from_a,
        "a kept its socket"
    );
    let b_again = relay(&b, host, &app, b"b again");
    assert_ne!(b_again, from_b, "b's socket was reclaimed for c");
    assert!(![from_a, from_c].contains(&b_again));
    let summary = setup.stop();
    // b lost its socket to c; c lost its socket to b's return.
    assert_eq!((summary.peers, summary.reclaimed), (4, 2));
}

#[test]
fn a_forward_reaches_its_daemon_over_a_unix_socket_with_a_token() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("api.sock");
    let config = ServerConfig {
        listen: vec![Listen::Unix {
            path: path.clone(),
            mode: 0o600,
        }],
        http: HttpConfig {
            token: Some(Token::new("s3cret").expect("a token")),
            ..HttpConfig::default()
        },
        ..ServerConfig::default()
    };
    let app = socket();
    let setup = Setup::start_with(
        app.local_addr().unwrap(),
        PeerLimits::default(),
        config,
        |_| Server::unix(&path).with_token("s3cret"),
    );
    let host = setup.host();
    let peer = socket();
    let local = relay(&peer, host, &app, b"over unix");
    reply(&app, local, &peer, host, b"and back");
    let summary = setup.stop();
    assert_eq!((summary.inbound, summary.outbound), (1, 1));
}
