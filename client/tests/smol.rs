//! The client's cases on smol: the daemon and the client's tasks on smol's
//! global executor, the test's body on the test's thread.

mod cases;

use std::future::Future;
use std::sync::Arc;

use porthole_client::porthole_runtime::Runtime;
use porthole_smol::SmolRuntime;

struct Smol;

impl cases::Harness for Smol {
    fn new() -> Self {
        Smol
    }

    fn runtime(&self) -> Arc<dyn Runtime> {
        Arc::new(SmolRuntime::global())
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }
}

cases::client_cases!(Smol);
