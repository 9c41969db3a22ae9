//! The conformance suite on smol: each server runs on an executor of its own,
//! as an application that embeds Porthole in its own smol executor does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use async_executor::Executor;
use porthole_conformance::{ServerConfig, ServerFactory, TestServer};
use porthole_smol::{Server, SmolRuntime};

/// Executor threads per server, as the tokio suite's worker threads.
const THREADS: usize = 2;

struct Smol;

struct SmolServer {
    server: Option<Server>,
    addr: SocketAddr,
    /// Dropped to stop the executor threads.
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl ServerFactory for Smol {
    fn start(&self, config: ServerConfig) -> Box<dyn TestServer> {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let threads = (0..THREADS)
            .map(|_| {
                let (executor, stopped) = (Arc::clone(&executor), stopped.clone());
                thread::spawn(move || {
                    smol::block_on(executor.run(async {
                        let _ = stopped.recv().await;
                    }))
                })
            })
            .collect();
        let runtime = Arc::new(SmolRuntime::with_executor(executor));
        let server = Server::start(runtime, config).expect("server starts");
        Box::new(SmolServer {
            addr: server.local_addr(),
            server: Some(server),
            stop: Some(stop),
            threads,
        })
    }
}

impl TestServer for SmolServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn shutdown(mut self: Box<Self>) {
        self.stop();
    }
}

impl SmolServer {
    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            smol::block_on(server.shutdown());
        }
        self.stop.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for SmolServer {
    fn drop(&mut self) {
        self.stop();
    }
}

porthole_conformance::conformance_suite!(Smol);
