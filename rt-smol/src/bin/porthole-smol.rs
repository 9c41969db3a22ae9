//! `porthole-smol serve` (the daemon) and `porthole-smol forward`, on smol,
//! with the same command line as `porthole`. The command line and each
//! command's life (signals, the address or status line, exit status) are the
//! driver's [`porthole_driver::cli::Command`]; this binary only brings the
//! runtime: smol's global executor (`SMOL_THREADS` threads, default 1), with
//! async-io's reactor driven by the main thread.

use std::process::ExitCode;
use std::sync::Arc;

use porthole_driver::cli::Command;
use porthole_smol::SmolRuntime;

fn main() -> ExitCode {
    match Command::from_args("porthole-smol") {
        Ok(command) => smol::block_on(command.run(Arc::new(SmolRuntime::global()))),
        Err(exit) => exit,
    }
}
