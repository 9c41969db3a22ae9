//! A daemon that already runs its own hyper server and mounts the Porthole API
//! under its router, next to its own routes, instead of running a second server.
//!
//! It listens on a free port of 127.0.0.1 and prints the address; then, with
//! that address as `$ADDR`:
//!
//! ```text
//! cargo run -p porthole-tokio --example embed_tokio
//! curl -s http://$ADDR/health
//! curl -s -X POST http://$ADDR/v1/udp/bind -d '{}'
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use porthole_tokio::porthole_core::{api::PREFIX, Config};
use porthole_tokio::HttpConfig;

type Body = BoxBody<Bytes, Infallible>;

/// The daemon's own router: Porthole answers under /v1/udp, the daemon the rest.
async fn route(porthole: porthole_tokio::Porthole, request: Request<Incoming>) -> Response<Body> {
    if request.uri().path().starts_with(PREFIX) {
        return porthole.api().handle(request).await.map(BodyExt::boxed);
    }
    match request.uri().path() {
        "/health" => Response::new(Full::new(Bytes::from_static(b"ok\n")).boxed()),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not here\n")).boxed());
            *response.status_mut() = hyper::StatusCode::NOT_FOUND;
            response
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Porthole's engine and driver, without a listener of their own.
    let porthole = porthole_tokio::start(Config::default(), HttpConfig::default())?;

    // Port 0: any free port, so the example never collides with a daemon.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("daemon listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let porthole = porthole.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let porthole = porthole.clone();
                async move { Ok::<_, Infallible>(route(porthole, request).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                // Lets Porthole's WebSocket channel take the connection over.
                .with_upgrades()
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
    // Close every binding before exiting.
    porthole.shutdown().await;
    Ok(())
}
