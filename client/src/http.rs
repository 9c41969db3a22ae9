//! The daemon's HTTP API as the client uses it: one-shot JSON requests and
//! the WebSocket channel's handshake, with hyper's client over a connection
//! the runtime makes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::upgrade::Upgraded;
use hyper::{Method, Request, Response, StatusCode};
use porthole_core::api::ws::MAX_CLIENT_MESSAGE;
use porthole_core::{BindingId, Seq};
use porthole_runtime::{sleep, Connection, FuturesIo, Runtime};
use serde::de::DeserializeOwned;

use crate::error::{RequestError, ServerError, TransportError};
use crate::server::{Endpoint, Server};

/// How long a request (connect, send, read the whole answer) may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The WebSocket channel as the client holds it.
pub(crate) type Ws = WebSocketStream<FuturesIo<Upgraded>>;

/// A whole answer's body.
async fn read_body(response: Response<Incoming>) -> Result<Bytes, TransportError> {
    Ok(response.into_body().collect().await?.to_bytes())
}

/// The largest server → client message: a sequence number before the
/// largest client message (notices are far smaller).
const MAX_SERVER_MESSAGE: usize = 8 + MAX_CLIENT_MESSAGE;

/// A daemon and the runtime to reach it with.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) server: Server,
}

impl Http {
    /// Runs `future` for at most [`REQUEST_TIMEOUT`].
    async fn timed<T>(
        &self,
        future: impl Future<Output = Result<T, RequestError>>,
    ) -> Result<T, RequestError> {
        let mut timer = self.runtime.new_timer(self.runtime.now() + REQUEST_TIMEOUT);
        futures_lite::future::or(future, async {
            sleep(&mut timer).await;
            Err(TransportError::Timeout(REQUEST_TIMEOUT).into())
        })
        .await
    }

    /// A new HTTP/1.1 connection; its I/O runs as a task of the runtime until
    /// the sender is dropped (or, upgraded, until the WebSocket ends).
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let connecting = match self.server.endpoint() {
            Endpoint::Tcp(addr) => self.runtime.connect_tcp(*addr),
            #[cfg(unix)]
            Endpoint::Unix(path) => self.runtime.connect_unix(path),
        };
        let io: Box<dyn Connection> =
            connecting.await.map_err(|source| TransportError::Connect {
                endpoint: self.server.endpoint().to_string(),
                source,
            })?;
        // Datagrams are small messages: leave at once. (A Unix socket has no Nagle.)
        let _ = io.set_nodelay(true);
        let (sender, connection) = http1::handshake(io).await?;
        self.runtime.spawn(Box::pin(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "connection to the server ended");
            }
        }));
        Ok(sender)
    }

    /// A request with the host and credentials headers.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, TransportError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.server.host_header());
        if let Some(token) = self.server.token() {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        // Only the token can be invalid (a control character in it).
        builder
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| TransportError::Protocol(format!("cannot make the request: {e}")))
    }

    /// Sends `request` on a new connection. An answer `accept` does not take
    /// is read as the daemon's error.
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        accept: impl Fn(StatusCode) -> bool,
    ) -> Result<Response<Incoming>, RequestError> {
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(TransportError::Http)?;
        let status = response.status();
        if accept(status) {
            return Ok(response);
        }
        let body = read_body(response).await?;
        Err(RequestError::Refused(ServerError::from_response(
            status.as_u16(),
            &body,
        )))
    }

    /// Sends a request and reads the JSON answer of a success, or the error.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, RequestError> {
        let request = self.request(method, path, body)?;
        self.timed(async {
            let response = self.exchange(request, |s| s.is_success()).await?;
            let status = response.status();
            let body = read_body(response).await?;
            serde_json::from_slice(&body).map_err(|e| {
                TransportError::Protocol(format!("{status} with an unexpected body: {e}")).into()
            })
        })
        .await
    }

    /// Opens the binding's WebSocket channel, resuming after datagram `after`
    /// (0: from the oldest the ring holds).
    pub(crate) async fn open_channel(
        &self,
        binding: BindingId,
        after: Seq,
    ) -> Result<Ws, RequestError> {
        let path = format!("/v1/udp/ws/{binding}?last_event_id={after}");
        let key = tungstenite::handshake::client::generate_key();
        let mut request = self.request(Method::GET, &path, None)?;
        let headers = request.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
        if let Ok(key) = HeaderValue::from_str(&key) {
            headers.insert(header::SEC_WEBSOCKET_KEY, key);
        }
        let upgraded = self
            .timed(async {
                let response = self
                    .exchange(request, |s| s == StatusCode::SWITCHING_PROTOCOLS)
                    .await?;
                let accept = response.headers().get(header::SEC_WEBSOCKET_ACCEPT);
                if accept.is_none_or(|a| a.as_bytes() != expected.as_bytes()) {
                    return Err(TransportError::Protocol(
                        "WebSocket handshake with a wrong Sec-WebSocket-Accept".into(),
                    )
                    .into());
                }
                Ok(hyper::upgrade::on(response)
                    .await
                    .map_err(TransportError::Http)?)
            })
            .await?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_SERVER_MESSAGE))
            .max_frame_size(Some(MAX_SERVER_MESSAGE));
        Ok(WebSocketStream::from_raw_socket(FuturesIo(upgraded), Role::Client, Some(config)).await)
    }
}
