//! The client's cases on tokio: the daemon and the client's tasks on one
//! multi-threaded runtime, the test's body on the test's thread.

mod cases;

use std::future::Future;
use std::sync::Arc;

use porthole_client::porthole_runtime::Runtime;
use porthole_tokio::TokioRuntime;

struct Tokio(tokio::runtime::Runtime);

impl cases::Harness for Tokio {
    fn new() -> Self {
        Tokio(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        )
    }

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(TokioRuntime::new(self.0.handle().clone()))
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

cases::client_cases!(Tokio);
