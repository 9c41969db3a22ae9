//! `porthole serve` (the daemon) and `porthole forward`, on tokio. The command
//! line and each command's life (signals, the address or status line, exit
//! status) are the driver's [`porthole_driver::cli::Command`]; this binary
//! only brings the runtime.

use std::process::ExitCode;
use std::sync::Arc;

use porthole_driver::cli::Command;
use porthole_tokio::TokioRuntime;

fn main() -> ExitCode {
    let command = match Command::from_args("porthole") {
        Ok(command) => command,
        Err(exit) => return exit,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return command.fail(format_args!("cannot start the tokio runtime: {e}")),
    };
    let tokio = Arc::new(TokioRuntime::new(runtime.handle().clone()));
    runtime.block_on(command.run(tokio))
}
