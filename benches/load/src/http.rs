//! The benchmark's HTTP/1.1 client (hyper, one keep-alive connection each),
//! and the API calls it makes: the same requests for Porthole and koi-udp.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::LoadError;
use crate::sse::{SseEvent, SseParser};
use crate::tally::Tally;

/// One keep-alive connection to a server.
pub struct HttpClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpClient {
    /// Connects (with `TCP_NODELAY`, as both servers set on their side).
    pub async fn connect(addr: SocketAddr) -> Result<Self, LoadError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(LoadError::Http)?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes.
            let _ = connection.await;
        });
        Ok(HttpClient {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends a request and returns the response with its body not yet read.
    async fn start(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<hyper::Response<Incoming>, LoadError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| LoadError::Request(e.to_string()))?;
        self.sender.ready().await.map_err(LoadError::Http)?;
        self.sender
            .send_request(request)
            .await
            .map_err(LoadError::Http)
    }

    /// A request and its whole response.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), LoadError> {
        let response = self.start(method, path, body).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(LoadError::Http)?
            .to_bytes();
        Ok((status, body))
    }

    /// Binds a loopback port with a lease of `lease_secs`.
    pub async fn bind(&mut self, lease_secs: u64) -> Result<Binding, LoadError> {
        let body = format!(r#"{{"port":0,"addr":"127.0.0.1","lease_secs":{lease_secs}}}"#);
        let (status, reply) = self
            .request(Method::POST, "/v1/udp/bind", Some(Bytes::from(body)))
            .await?;
        if status != StatusCode::CREATED {
            return Err(LoadError::status("bind", status, &reply));
        }
        let info: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|e| LoadError::reply("bind", e))?;
        let id = info["id"]
            .as_str()
            .ok_or_else(|| LoadError::reply("bind", "no id"))?
            .to_owned();
        let local_addr = info["local_addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| LoadError::reply("bind", "no local_addr"))?;
        Ok(Binding { id, local_addr })
    }

    /// Unbinds.
    pub async fn unbind(&mut self, id: &str) -> Result<(), LoadError> {
        let path = format!("/v1/udp/bind/{id}");
        let (status, reply) = self.request(Method::DELETE, &path, None).await?;
        if status != StatusCode::OK {
            return Err(LoadError::status("unbind", status, &reply));
        }
        Ok(())
    }

    /// Subscribes to a binding's datagrams: returns once the server answered
    /// (both servers subscribe before they answer), with the event stream.
    pub async fn subscribe(mut self, id: &str) -> Result<Subscription, LoadError> {
        let path = format!("/v1/udp/recv/{id}");
        let response = self.start(Method::GET, &path, None).await?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(LoadError::status("recv", status, &body));
        }
        Ok(Subscription {
            body: response.into_body(),
            _client: self,
        })
    }
}

/// A binding as a bind reply describes it.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Its id.
    pub id: String,
    /// The UDP address it listens on.
    pub local_addr: SocketAddr,
}

/// The body of `POST /v1/udp/send/{id}`: a `size`-byte payload to `dest`.
pub fn send_body(dest: SocketAddr, size: usize) -> Bytes {
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![0x5A; size]);
    Bytes::from(format!(r#"{{"dest":"{dest}","payload":"{payload}"}}"#))
}

/// An open event stream.
pub struct Subscription {
    body: Incoming,
    /// Keeps the connection's request side alive while the stream is read.
    _client: HttpClient,
}

impl Subscription {
    /// Reads the stream into `tally` until it ends; returns the `closed`
    /// reason if the server sent one.
    pub async fn pump(mut self, tally: Arc<Tally>) -> Option<String> {
        let mut parser = SseParser::default();
        let mut closed = None;
        while let Some(Ok(frame)) = self.body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            parser.feed(&data, |event| match event {
                SseEvent::Probe(probe) => tally.record(probe),
                SseEvent::Other => {}
                SseEvent::Lagged { missed } => tally.lagged(missed),
                SseEvent::Closed { reason } => {
                    tally.end();
                    closed = Some(reason);
                }
            });
            if closed.is_some() {
                break;
            }
        }
        tally.end();
        closed
    }
}
