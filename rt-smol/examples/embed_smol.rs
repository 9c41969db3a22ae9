//! A program that already runs its own smol executor embeds the Porthole daemon
//! on it: Porthole's tasks share the program's executor threads with the
//! program's own tasks, and the program decides when everything stops.
//!
//! It listens on a free port of 127.0.0.1 and prints the address; then, with
//! that address as `$ADDR`:
//!
//! ```text
//! cargo run -p porthole-smol --example embed_smol
//! curl -s -X POST http://$ADDR/v1/udp/bind -d '{}'
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use async_executor::Executor;
use porthole_smol::{Listen, Server, ServerConfig, SmolRuntime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The program's executor, run on two threads of its own until `stop` closes.
    let executor = Arc::new(Executor::new());
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (executor, stopped) = (Arc::clone(&executor), stopped.clone());
            thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
        })
        .collect();

    let (ctrl_c_tx, ctrl_c) = async_channel::bounded(1);
    ctrlc::set_handler(move || {
        let _ = ctrl_c_tx.try_send(());
    })?;

    // Porthole on the program's executor.
    let runtime = Arc::new(SmolRuntime::with_executor(Arc::clone(&executor)));
    // Port 0: any free port, not the daemon's default 7447.
    let config = ServerConfig {
        listen: vec![Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))],
        ..ServerConfig::default()
    };
    let server = Server::start(runtime, config)?;
    println!("porthole listening on http://{}", server.local_addr());

    // One of the program's own tasks, next to Porthole's: it watches the bindings.
    let porthole = server.porthole().clone();
    let watch = executor.spawn(async move {
        let mut last = None;
        loop {
            smol::Timer::after(Duration::from_secs(1)).await;
            let Ok(bindings) = porthole.bindings().await else {
                return;
            };
            if last != Some(bindings.len()) {
                println!("{} binding(s) alive", bindings.len());
                last = Some(bindings.len());
            }
        }
    });

    smol::block_on(async {
        let _ = ctrl_c.recv().await;
        // Streams end with `closed`/`shutdown`, sockets close.
        server.shutdown().await;
        watch.cancel().await;
    });
    drop(stop);
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}
