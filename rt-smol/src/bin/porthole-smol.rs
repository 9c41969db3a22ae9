//! `porthole-smol serve`: the daemon on smol, with the same command line as
//! `porthole`. The command line and the daemon's life (signals, the address
//! line, exit status) are the driver's [`porthole_driver::cli::Serve`]; this
//! binary only brings the runtime: smol's global executor (`SMOL_THREADS`
//! threads, default 1), with async-io's reactor driven by the main thread.

use std::process::ExitCode;
use std::sync::Arc;

use porthole_driver::cli::Serve;
use porthole_smol::SmolRuntime;

fn main() -> ExitCode {
    match Serve::from_args("porthole-smol") {
        Ok(serve) => smol::block_on(serve.run(Arc::new(SmolRuntime::global()))),
        Err(exit) => exit,
    }
}
