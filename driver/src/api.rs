//! The HTTP API v1 as a request handler: routing, auth, body limits, and the
//! translation of requests into engine commands. Encoding and the error table
//! are `porthole_core::api`'s; this module only moves values between hyper and
//! the driver.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use porthole_core::api::{self as codec, BatchEntryError, JsonResponse, RequestError, SendBody};
use porthole_core::{BindingId, Command, Reply, RequestId, SubscribeParams, SubscriberId};

use crate::body::{ApiBody, EventStream};
use crate::config::HttpConfig;
use crate::driver::{StreamItem, ToDriver};
use crate::edge;
use crate::runtime::Runtime;
use crate::server::ConnectionCount;
use crate::ws;

/// The Porthole HTTP API as a handler: give it requests, it answers them.
///
/// Cheap to clone. Use it as a hyper [`Service`](hyper::service::Service), or
/// call [`Api::handle`] from your own router for paths under
/// [`porthole_core::api::PREFIX`] to mount Porthole inside an existing server.
#[derive(Clone)]
pub struct Api {
    shared: Arc<Shared>,
}

struct Shared {
    runtime: Arc<dyn Runtime>,
    control: Sender<ToDriver>,
    next_request: AtomicU64,
    http: HttpConfig,
    ops: crate::ops::Ops,
    /// Open WebSocket channels, which outlive their HTTP connection.
    channels: Arc<ConnectionCount>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("auth", &self.shared.http.token.is_some())
            .field("max_body", &self.shared.http.max_request_body)
            .finish_non_exhaustive()
    }
}

/// A route of the API, with the binding id from the path where it has one.
///
/// A path matches a route exactly or not at all: every segment is compared
/// as sent, without percent-decoding or dot-segment removal, and an id is one
/// non-empty segment. Ids never contain characters that need encoding, so an
/// encoded path names no route (`404 route_not_found`) or no binding
/// (`404 not_found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Bind,
    Unbind(&'a str),
    Recv(&'a str),
    Ws(&'a str),
    Ticket(&'a str),
    Send(&'a str),
    Heartbeat(&'a str),
    Status,
}

impl<'a> Route<'a> {
    pub(crate) fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix(codec::PREFIX)?.strip_prefix('/')?;
        let mut segments = rest.split('/');
        let route = match (segments.next(), segments.next(), segments.next()) {
            (Some("bind"), None, _) => Route::Bind,
            (Some("status"), None, _) => Route::Status,
            (Some("bind"), Some(id), None) => Route::Unbind(id),
            (Some("recv"), Some(id), None) => Route::Recv(id),
            (Some("recv"), Some(id), Some("ticket")) => Route::Ticket(id),
            (Some("ws"), Some(id), None) => Route::Ws(id),
            (Some("send"), Some(id), None) => Route::Send(id),
            (Some("heartbeat"), Some(id), None) => Route::Heartbeat(id),
            _ => return None,
        };
        let exact = segments.next().is_none() && !route.id().is_some_and(str::is_empty);
        exact.then_some(route)
    }

    /// The binding id segment, for the routes that have one.
    fn id(self) -> Option<&'a str> {
        match self {
            Route::Bind | Route::Status => None,
            Route::Unbind(id)
            | Route::Recv(id)
            | Route::Ws(id)
            | Route::Ticket(id)
            | Route::Send(id)
            | Route::Heartbeat(id) => Some(id),
        }
    }

    /// The methods the route answers, as the `Allow` header lists them:
    /// `HEAD` with every `GET`, and the `OPTIONS` of a preflight.
    pub(crate) fn allowed(self) -> &'static str {
        match self {
            Route::Bind | Route::Send(_) | Route::Ticket(_) => "POST, OPTIONS",
            Route::Unbind(_) => "DELETE, OPTIONS",
            Route::Recv(_) | Route::Status => "GET, HEAD, OPTIONS",
            // A handshake cannot be a HEAD.
            Route::Ws(_) => "GET, OPTIONS",
            Route::Heartbeat(_) => "PUT, POST, OPTIONS",
        }
    }

    fn takes(self, method: &Method) -> bool {
        match self {
            Route::Bind | Route::Send(_) | Route::Ticket(_) => method == Method::POST,
            Route::Unbind(_) => method == Method::DELETE,
            Route::Recv(_) | Route::Ws(_) | Route::Status => method == Method::GET,
            Route::Heartbeat(_) => method == Method::PUT || method == Method::POST,
        }
    }

    /// Whether a stream ticket may stand in for the token: the routes a
    /// browser opens without being able to set headers.
    fn takes_ticket(self) -> bool {
        matches!(self, Route::Recv(_) | Route::Ws(_))
    }
}

impl Api {
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        control: Sender<ToDriver>,
        http: HttpConfig,
    ) -> Self {
        Api {
            shared: Arc::new(Shared {
                runtime,
                control,
                next_request: AtomicU64::new(1),
                http,
                ops: crate::ops::Ops::default(),
                channels: Arc::default(),
            }),
        }
    }

    pub(crate) fn ops(&self) -> &crate::ops::Ops {
        &self.shared.ops
    }

    pub(crate) fn token(&self) -> Option<&crate::token::Token> {
        self.shared.http.token.as_ref()
    }

    pub(crate) fn control(&self) -> &Sender<ToDriver> {
        &self.shared.control
    }

    pub(crate) fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.shared.runtime
    }

    /// Answers one request. Every outcome is a response: errors are
    /// `{"error": "<code>", "message": "..."}` with the code's status.
    pub async fn handle<B>(&self, mut request: Request<B>) -> Response<ApiBody>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let observed = crate::ops::Observed::start(self, &request);
        crate::ops::head_as_get(&mut request);
        let response = self.checked(request).await;
        observed.finish(self, response)
    }

    /// The web boundary comes first, before anything can change: a `Host`
    /// that is not an IP literal, `localhost` or an allowed name, and an
    /// `Origin` that is not allowed, are refused (403). A preflight
    /// (`OPTIONS`) from an allowed origin is answered before auth, and every
    /// answer to an allowed origin carries its CORS headers.
    async fn checked<B>(&self, request: Request<B>) -> Response<ApiBody>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (mut parts, body) = request.into_parts();
        let http = &self.shared.http;
        if let Some(host) = parts.headers.get(header::HOST) {
            if !edge::host_allowed(host.as_bytes(), &http.allowed_hosts) {
                let host = String::from_utf8_lossy(host.as_bytes()).into_owned();
                return request_error(&RequestError::HostNotAllowed(host));
            }
        }
        let origin = parts.headers.get(header::ORIGIN).cloned();
        if let Some(origin) = &origin {
            if !http.allowed_origins.allows(origin.as_bytes()) {
                let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
                return request_error(&RequestError::OriginNotAllowed(origin));
            }
        }
        let mut response = if parts.method == Method::OPTIONS {
            let mut response = Response::new(ApiBody::full(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            // The resource's own methods; a path that names none gets every method the API has.
            let allow = Route::parse(parts.uri.path())
                .map(Route::allowed)
                .or_else(|| crate::ops::allowed(parts.uri.path()))
                .unwrap_or(edge::ALLOW_METHODS);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            if origin.is_some() {
                edge::preflight(response.headers_mut(), &parts.headers);
            }
            response
        } else if let Some(response) = crate::ops::answer(self, &parts).await {
            response
        } else {
            self.route(&mut parts, body).await
        };
        let headers = response.headers_mut();
        // Answers differ by Origin (CORS headers or 403): caches must know.
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = &origin {
            edge::allow_origin(headers, origin);
        }
        response
    }

    /// Authenticates and routes a request that passed the web boundary.
    async fn route<B>(&self, parts: &mut hyper::http::request::Parts, body: B) -> Response<ApiBody>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        // The route borrows the path while the WebSocket route takes the
        // upgrade out of `parts`; a `Uri` clone shares its bytes.
        let uri = parts.uri.clone();
        let path = uri.path();
        let route = Route::parse(path);
        let guarded = path == "/v1" || path.starts_with("/v1/");
        if let (true, Some(token)) = (guarded, &self.shared.http.token) {
            // A browser's stream presents a ticket instead; the engine checks it.
            let ticket = route.is_some_and(Route::takes_ticket)
                && codec::query_has(parts.uri.query(), "ticket");
            if !ticket && !token.authorizes(&parts.headers) {
                let mut response = request_error(&RequestError::Unauthorized);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        }
        let Some(route) = route else {
            return request_error(&RequestError::RouteNotFound(path.to_owned()));
        };
        if !route.takes(&parts.method) {
            let allowed = route.allowed();
            let mut response = request_error(&RequestError::MethodNotAllowed {
                method: parts.method.to_string(),
                allowed,
            });
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
            return response;
        }
        let result = self.respond(route, parts, body).await;
        match result {
            Ok(response) => response,
            Err(Failure::Request(e)) => request_error(&e),
            Err(Failure::Gone) => request_error(&RequestError::ShuttingDown),
        }
    }

    /// Turns a routed request into its command and answers with the reply
    /// (a stream for `recv`, a channel for `ws`). Only the routes that take a
    /// body read one.
    async fn respond<B>(
        &self,
        route: Route<'_>,
        parts: &mut hyper::http::request::Parts,
        body: B,
    ) -> Result<Response<ApiBody>, Failure>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let command = match route {
            Route::Recv(id) if parts.extensions.get::<crate::ops::Head>().is_some() => {
                return Ok(crate::ops::head_recv(self, id).await)
            }
            Route::Recv(id) => return self.recv(id, parts.uri.query(), &parts.headers).await,
            Route::Ws(id) => return self.ws(id, parts).await,
            Route::Bind => Command::Bind(codec::decode_bind(
                &self.read_body(&parts.headers, body).await?,
            )?),
            Route::Unbind(id) => Command::Unbind {
                binding: codec::parse_binding_id(id)?,
            },
            Route::Ticket(id) => Command::IssueTicket {
                binding: codec::parse_binding_id(id)?,
            },
            Route::Send(id) => {
                let binding = codec::parse_binding_id(id)?;
                match codec::decode_send_body(&self.read_body(&parts.headers, body).await?)? {
                    SendBody::One { dest, payload } => Command::Send {
                        binding,
                        dest,
                        payload,
                    },
                    SendBody::Batch(entries) => return self.send_batch(binding, entries).await,
                }
            }
            Route::Heartbeat(id) => {
                let binding = codec::parse_binding_id(id)?;
                let lease_secs =
                    codec::decode_heartbeat(&self.read_body(&parts.headers, body).await?)?;
                Command::Heartbeat {
                    binding,
                    lease_secs,
                }
            }
            Route::Status => Command::Status,
        };
        Ok(reply_response(self.call(command).await?))
    }

    async fn recv(
        &self,
        id: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Response<ApiBody>, Failure> {
        let (subscriber, items) = match self.subscribe(id, query, headers).await? {
            Ok(subscribed) => subscribed,
            Err(refused) => return Ok(refused),
        };
        let stream = EventStream::new(
            subscriber,
            items,
            self.shared.control.clone(),
            Arc::clone(&self.shared.runtime),
            self.shared.http.keep_alive,
        );
        let mut response = Response::new(ApiBody::events(stream));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells reverse proxies (nginx) not to buffer the stream.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(response)
    }

    /// `GET /v1/udp/ws/{id}`: a WebSocket upgrade. The request must be an
    /// upgrade before anything changes; the channel subscribes as a stream
    /// does (ticket, resume, limit) and runs in a task of its own once hyper
    /// hands the connection over after the 101.
    async fn ws(
        &self,
        id: &str,
        parts: &mut hyper::http::request::Parts,
    ) -> Result<Response<ApiBody>, Failure> {
        let accept = ws::accept_key(&parts.headers)?;
        let Some(upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(Failure::Request(RequestError::InvalidParameter {
                name: "WebSocket upgrade",
                reason: "this connection cannot be upgraded".to_owned(),
            }));
        };
        let binding = codec::parse_binding_id(id)?;
        let (subscriber, items) = match self
            .subscribe(id, parts.uri.query(), &parts.headers)
            .await?
        {
            Ok(subscribed) => subscribed,
            Err(refused) => return Ok(refused),
        };
        let api = self.clone();
        let wiring = ws::Wiring {
            runtime: Arc::clone(&self.shared.runtime),
            control: self.shared.control.clone(),
            submit: Box::new(move |command| api.submit(command, None)),
            keep_alive: self.shared.http.keep_alive,
            _open: self.shared.channels.enter(),
        };
        self.shared.runtime.spawn(Box::pin(ws::serve(
            upgrade, binding, subscriber, items, wiring,
        )));
        let mut response = Response::new(ApiBody::full(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        Ok(response)
    }

    /// A batch send: every datagram that decoded becomes a send command at
    /// once (the engine answers them in turn), and the answer lists one
    /// result per datagram, in order.
    async fn send_batch(
        &self,
        binding: BindingId,
        entries: Vec<Result<(std::net::SocketAddr, Bytes), RequestError>>,
    ) -> Result<Response<ApiBody>, Failure> {
        let mut pending = Vec::with_capacity(entries.len());
        for entry in entries {
            pending.push(match entry {
                Ok((dest, payload)) => Ok(self
                    .submit(
                        Command::Send {
                            binding,
                            dest,
                            payload,
                        },
                        None,
                    )
                    .ok_or(Failure::Gone)?),
                Err(e) => Err(BatchEntryError::from(e)),
            });
        }
        let mut results = Vec::with_capacity(pending.len());
        for entry in pending {
            results.push(match entry {
                Ok(answer) => match answer.recv().await.map_err(|_| Failure::Gone)? {
                    Reply::Send(outcome) => outcome.map_err(BatchEntryError::from),
                    other => return Ok(reply_response(other)),
                },
                Err(e) => Err(e),
            });
        }
        Ok(json_response(codec::encode_batch_results(&results)))
    }

    /// Subscribes to binding `id` with the stream's parameters (ticket,
    /// `Last-Event-ID` or `last_event_id`, `idle_for`): the subscriber and
    /// where its items arrive, or the engine's refusal as a response.
    async fn subscribe(
        &self,
        id: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Result<(SubscriberId, Receiver<StreamItem>), Response<ApiBody>>, Failure> {
        let binding = codec::parse_binding_id(id)?;
        let query = codec::parse_recv_query(query)?;
        let resume_after = headers
            .get("last-event-id")
            .map(|value| codec::parse_last_event_id(value.as_bytes()))
            .transpose()?
            .or(query.last_event_id);
        let params = SubscribeParams {
            binding,
            resume_after,
            idle_timeout: query.idle_for,
            ticket: query.ticket,
        };
        let (sink, items) = async_channel::unbounded();
        let reply = self
            .call_with_stream(Command::Subscribe(params), Some(sink))
            .await?;
        match reply {
            Reply::Subscribe(Ok(subscriber)) => Ok(Ok((subscriber, items))),
            other => Ok(Err(reply_response(other))),
        }
    }

    /// Reads the whole body, refusing at once one that announces more than the
    /// limit and stopping one that grows past it.
    async fn read_body<B>(&self, headers: &HeaderMap, body: B) -> Result<Bytes, RequestError>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let max = self.shared.http.max_request_body;
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|len| len > max as u64) {
            return Err(RequestError::BodyTooLarge { max });
        }
        match Limited::new(body, max).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => Err(RequestError::BodyTooLarge { max }),
            Err(e) => Err(RequestError::InvalidJson(format!(
                "could not read the request body: {e}"
            ))),
        }
    }

    /// The open WebSocket channels.
    pub(crate) fn channels(&self) -> &ConnectionCount {
        &self.shared.channels
    }

    /// Sends a command to the driver and waits for its reply.
    pub(crate) async fn call(&self, command: Command) -> Result<Reply, DriverGoneError> {
        self.call_with_stream(command, None)
            .await
            .map_err(|_| DriverGoneError)
    }

    async fn call_with_stream(
        &self,
        command: Command,
        stream: Option<crate::driver::StreamSink>,
    ) -> Result<Reply, Failure> {
        let answer = self.submit(command, stream).ok_or(Failure::Gone)?;
        answer.recv().await.map_err(|_| Failure::Gone)
    }

    /// Hands a command to the driver without waiting: where its reply will
    /// arrive, or `None` once the driver is gone. (The control channel is
    /// unbounded; each command is bounded by its caller waiting for the reply.)
    fn submit(
        &self,
        command: Command,
        stream: Option<crate::driver::StreamSink>,
    ) -> Option<Receiver<Reply>> {
        let request = RequestId(self.shared.next_request.fetch_add(1, Ordering::Relaxed));
        let (reply, answer) = async_channel::bounded(1);
        let input = ToDriver::Command {
            request,
            command,
            reply,
            stream,
        };
        self.shared.control.try_send(input).ok()?;
        Some(answer)
    }
}

/// The driver has stopped: the server was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Porthole driver has stopped")]
pub struct DriverGoneError;

/// Why a request got no reply from the engine.
enum Failure {
    Request(RequestError),
    Gone,
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Self {
        Failure::Request(e)
    }
}

impl From<DriverGoneError> for Failure {
    fn from(_: DriverGoneError) -> Self {
        Failure::Gone
    }
}

fn reply_response(reply: Reply) -> Response<ApiBody> {
    json_response(codec::encode_reply(&reply))
}

fn request_error(e: &RequestError) -> Response<ApiBody> {
    json_response(JsonResponse::from_error(e))
}

/// A JSON answer with its status; every JSON response of the API is made here.
pub(crate) fn json_response(json: JsonResponse) -> Response<ApiBody> {
    let mut response = Response::new(ApiBody::full(json.body));
    *response.status_mut() =
        StatusCode::from_u16(json.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl<B> hyper::service::Service<Request<B>> for Api
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<ApiBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ApiBody>, Infallible>> + Send>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.handle(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_with_their_ids() {
        assert_eq!(Route::parse("/v1/udp/bind"), Some(Route::Bind));
        assert_eq!(Route::parse("/v1/udp/status"), Some(Route::Status));
        assert_eq!(Route::parse("/v1/udp/bind/abc"), Some(Route::Unbind("abc")));
        assert_eq!(Route::parse("/v1/udp/recv/abc"), Some(Route::Recv("abc")));
        assert_eq!(Route::parse("/v1/udp/ws/abc"), Some(Route::Ws("abc")));
        assert_eq!(Route::parse("/v1/udp/send/abc"), Some(Route::Send("abc")));
        assert_eq!(
            Route::parse("/v1/udp/heartbeat/abc"),
            Some(Route::Heartbeat("abc"))
        );
        assert_eq!(
            Route::parse("/v1/udp/recv/abc/ticket"),
            Some(Route::Ticket("abc"))
        );
    }

    #[test]
    fn near_misses_are_not_routes() {
        for path in [
            "/",
            "/v1",
            "/v1/udp",
            "/v1/udp/",
            "/v1/udp/bind/",
            "/v1/udp/status/",
            "/v1/udp/status/x",
            "/v1/udp/status/a/b",
            "/v1/udp/bind/x/y",
            "/v1/udp/bind/../../etc/passwd",
            "/v1/udp/recv",
            "/v1/udp/recv/",
            "/v1/udp/recv//ticket",
            "/v1/udp/recv/a/b",
            "/v1/udp/recv/a/ticket/",
            "/v1/udp/send/a/",
            "/v1/udp/ws",
            "/v1/udp/ws/",
            "/v1/udp/ws/a/b",
            "/v1/udp/ws/a/ticket",
            "/v1/udp//bind",
            "/v1/udp/%62ind",
            "/v1/udpx/bind",
            "/v2/udp/bind",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }

    #[test]
    fn heartbeat_takes_put_and_post_only() {
        let route = Route::Heartbeat("x");
        assert!(route.takes(&Method::PUT) && route.takes(&Method::POST));
        assert!(!route.takes(&Method::GET));
        assert_eq!(route.allowed(), "PUT, POST, OPTIONS");
    }
}
