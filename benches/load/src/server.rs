//! The servers under test, each run in a child process of its own
//! (`porthole-load --server <kind>`) so that its memory is its own.
//!
//! A server listens on a loopback port the OS picks, prints
//! `listening <addr>` on stdout, and shuts down when its stdin closes.

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Most bindings a Porthole under test allows: above the 5,000 of the memory
/// measurement (the default is 4,096). koi-udp has no such limit.
const MAX_BINDINGS: usize = 8_192;

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// Porthole on tokio (multi-threaded runtime, one worker per core), as the `porthole` binary.
    PortholeTokio,
    /// Porthole on smol (global executor, `SMOL_THREADS` default 1, reactor on
    /// the main thread), as the `porthole-smol` binary.
    PortholeSmol,
    /// koi-udp's `http::routes` under `/v1/udp` in axum on tokio (multi-threaded).
    #[value(name = "koi-udp")]
    Koi,
}

impl ServerKind {
    /// Every server, in table order.
    pub const ALL: [ServerKind; 3] = [
        ServerKind::PortholeTokio,
        ServerKind::PortholeSmol,
        ServerKind::Koi,
    ];

    /// The name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::PortholeTokio => "porthole-tokio",
            ServerKind::PortholeSmol => "porthole-smol",
            ServerKind::Koi => "koi-udp",
        }
    }
}

fn listen_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Prints the address line the benchmark reads.
pub(crate) fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {addr}");
    let _ = out.flush();
}

/// Blocks until stdin closes (the benchmark is done with this server, or gone).
pub(crate) fn stdin_closed() {
    wait_for_stdin_to_close();
}

fn wait_for_stdin_to_close() {
    let mut sink = Vec::new();
    let mut stdin = std::io::stdin().lock();
    loop {
        sink.clear();
        match stdin.read_until(b'\n', &mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn porthole_config() -> porthole_tokio::ServerConfig {
    porthole_tokio::ServerConfig {
        listen: vec![listen_addr().into()],
        engine: porthole_tokio::porthole_core::Config {
            max_bindings: MAX_BINDINGS,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Runs one server until stdin closes.
pub fn serve(kind: ServerKind) -> ExitCode {
    let outcome = match kind {
        ServerKind::PortholeTokio => serve_porthole_tokio(),
        ServerKind::PortholeSmol => serve_porthole_smol(),
        ServerKind::Koi => serve_koi(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", kind.name());
            ExitCode::FAILURE
        }
    }
}

fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn serve_porthole_tokio() -> Result<(), Box<dyn std::error::Error>> {
    tokio_runtime()?.block_on(async {
        let server = porthole_tokio::serve(porthole_config()).await?;
        announce(server.local_addr());
        tokio::task::spawn_blocking(wait_for_stdin_to_close).await?;
        server.shutdown().await;
        Ok(())
    })
}

fn serve_porthole_smol() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let server = porthole_smol::serve(porthole_config()).await?;
        announce(server.local_addr());
        smol::unblock(wait_for_stdin_to_close).await;
        server.shutdown().await;
        Ok(())
    })
}

fn serve_koi() -> Result<(), Box<dyn std::error::Error>> {
    use axum::serve::ListenerExt;

    tokio_runtime()?.block_on(async {
        let cancel = CancellationToken::new();
        let udp = Arc::new(koi_udp::UdpRuntime::new(cancel.clone()));
        let app = axum::Router::new().nest("/v1/udp", koi_udp::http::routes(Arc::clone(&udp)));
        // TCP_NODELAY as Porthole sets it: small SSE events leave at once.
        let listener = tokio::net::TcpListener::bind(listen_addr())
            .await?
            .tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            });
        announce(axum::serve::Listener::local_addr(&listener)?);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::task::spawn_blocking(wait_for_stdin_to_close).await;
            // Closing every binding ends the SSE streams, which graceful shutdown waits for.
            udp.shutdown().await;
            stopped.cancel();
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await?;
        Ok(())
    })
}

/// Reads a child's announcement line.
pub fn parse_announcement(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("listening ")?.parse().ok()
}

/// Drains whatever a reader has left (a child's stdout after its announcement).
pub fn drain(mut reader: impl Read) {
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
}
