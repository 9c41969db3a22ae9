//! `porthole serve`: the daemon on tokio.

use std::process::ExitCode;

use porthole_driver::cli::{init_logging, Cli, CliCommand, Parser};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let CliCommand::Serve(args) = cli.command;
    let config = match args.server_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("porthole: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("porthole: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match porthole_tokio::serve(config).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("porthole: {e}");
                return ExitCode::FAILURE;
            }
        };
        // The one line on stdout: scripts (and the tests) read the address from it.
        println!("porthole listening on http://{}", server.local_addr());
        shutdown_signal().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still works");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
