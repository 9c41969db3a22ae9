//! `porthole serve`: the daemon on tokio. The command line and the daemon's
//! life (signals, the address line, exit status) are the driver's
//! [`porthole_driver::cli::Serve`]; this binary only brings the runtime.

use std::process::ExitCode;
use std::sync::Arc;

use porthole_driver::cli::Serve;
use porthole_tokio::TokioRuntime;

fn main() -> ExitCode {
    let serve = match Serve::from_args("porthole") {
        Ok(serve) => serve,
        Err(exit) => return exit,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return serve.fail(format_args!("cannot start the tokio runtime: {e}")),
    };
    let tokio = Arc::new(TokioRuntime::new(runtime.handle().clone()));
    runtime.block_on(serve.run(tokio))
}
