//! The conformance suite on tokio.

use std::net::SocketAddr;
use std::time::Duration;

use porthole_conformance::{ServerConfig, ServerFactory, TestServer};

/// Starts each server on a tokio runtime of its own.
struct Tokio;

struct TokioServer {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<porthole_tokio::Server>,
    addr: SocketAddr,
}

impl ServerFactory for Tokio {
    fn start(&self, config: ServerConfig) -> Box<dyn TestServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let server = runtime
            .block_on(porthole_tokio::serve(config))
            .expect("server starts");
        Box::new(TokioServer {
            addr: server.local_addr(),
            runtime: Some(runtime),
            server: Some(server),
        })
    }
}

impl TestServer for TokioServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn shutdown(mut self: Box<Self>) {
        self.stop();
    }
}

impl TokioServer {
    fn stop(&mut self) {
        if let (Some(runtime), Some(server)) = (self.runtime.take(), self.server.take()) {
            runtime.block_on(server.shutdown());
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for TokioServer {
    fn drop(&mut self) {
        self.stop();
    }
}

porthole_conformance::conformance_suite!(Tokio);
