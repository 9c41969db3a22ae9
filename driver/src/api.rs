//! The HTTP API v1 as a request handler: routing, auth, body limits, and the
//! translation of requests into engine commands. Encoding and the error table
//! are `porthole_core::api`'s; this module only moves values between hyper and
//! the driver.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::Sender;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use porthole_core::api::{self as codec, JsonResponse, RequestError};
use porthole_core::{Command, ErrorCode, Reply, RequestId, SubscribeParams};

use crate::body::{ApiBody, EventStream};
use crate::driver::Input;
use crate::runtime::Runtime;
use crate::token::Token;

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
    control: Sender<Input>,
    next_request: AtomicU64,
    token: Option<Token>,
    max_body: usize,
    keep_alive: Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("auth", &self.shared.token.is_some())
            .field("max_body", &self.shared.max_body)
            .finish_non_exhaustive()
    }
}

/// A route of the API, with the binding id from the path where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Bind,
    Unbind(&'a str),
    Recv(&'a str),
    Send(&'a str),
    Heartbeat(&'a str),
    Status,
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix(codec::PREFIX)?.strip_prefix('/')?;
        let (name, id) = match rest.split_once('/') {
            Some((name, id)) => (name, Some(id)),
            None => (rest, None),
        };
        let id = id.filter(|id| !id.is_empty() && !id.contains('/'));
        match (name, id) {
            ("bind", None) if !rest.ends_with('/') => Some(Route::Bind),
            ("status", None) if !rest.ends_with('/') => Some(Route::Status),
            ("bind", Some(id)) => Some(Route::Unbind(id)),
            ("recv", Some(id)) => Some(Route::Recv(id)),
            ("send", Some(id)) => Some(Route::Send(id)),
            ("heartbeat", Some(id)) => Some(Route::Heartbeat(id)),
            _ => None,
        }
    }

    /// The methods the route takes, as the `Allow` header lists them.
    fn allowed(self) -> &'static str {
        match self {
            Route::Bind | Route::Send(_) => "POST",
            Route::Unbind(_) => "DELETE",
            Route::Recv(_) | Route::Status => "GET",
            Route::Heartbeat(_) => "PUT, POST",
        }
    }

    fn takes(self, method: &Method) -> bool {
        match self {
            Route::Bind | Route::Send(_) => method == Method::POST,
            Route::Unbind(_) => method == Method::DELETE,
            Route::Recv(_) | Route::Status => method == Method::GET,
            Route::Heartbeat(_) => method == Method::PUT || method == Method::POST,
        }
    }
}

impl Api {
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        control: Sender<Input>,
        token: Option<Token>,
        max_body: usize,
        keep_alive: Duration,
    ) -> Self {
        Api {
            shared: Arc::new(Shared {
                runtime,
                control,
                next_request: AtomicU64::new(1),
                token,
                max_body,
                keep_alive,
            }),
        }
    }

    /// Answers one request. Every outcome is a response: errors are
    /// `{"error": "<code>", "message": "..."}` with the code's status.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ApiBody>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let guarded = path == "/v1" || path.starts_with("/v1/");
        if guarded {
            if let Some(token) = &self.shared.token {
                if !token.authorizes(&parts.headers) {
                    let mut response = request_error(&RequestError::Unauthorized);
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return response;
                }
            }
        }
        let Some(route) = Route::parse(path) else {
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
        let result = self.respond(route, &parts, body).await;
        match result {
            Ok(response) => response,
            Err(Failure::Request(e)) => request_error(&e),
            Err(Failure::Gone) => json_response(JsonResponse::error(
                ErrorCode::ShuttingDown,
                "the server is shutting down",
            )),
        }
    }

    /// Turns a routed request into its command and answers with the reply
    /// (a stream for `recv`). Only the routes that take a body read one.
    async fn respond<B>(
        &self,
        route: Route<'_>,
        parts: &hyper::http::request::Parts,
        body: B,
    ) -> Result<Response<ApiBody>, Failure>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let headers = &parts.headers;
        let command = match route {
            Route::Recv(id) => return self.recv(id, parts.uri.query(), headers).await,
            Route::Bind => {
                Command::Bind(codec::decode_bind(&self.read_body(headers, body).await?)?)
            }
            Route::Unbind(id) => Command::Unbind {
                binding: codec::parse_binding_id(id)?,
            },
            Route::Send(id) => {
                let binding = codec::parse_binding_id(id)?;
                let (dest, payload) = codec::decode_send(&self.read_body(headers, body).await?)?;
                Command::Send {
                    binding,
                    dest,
                    payload,
                }
            }
            Route::Heartbeat(id) => {
                let binding = codec::parse_binding_id(id)?;
                let lease_secs = codec::decode_heartbeat(&self.read_body(headers, body).await?)?;
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
        let binding = codec::parse_binding_id(id)?;
        let query = codec::parse_recv_query(query)?;
        let resume_after = headers
            .get("last-event-id")
            .map(|value| codec::parse_last_event_id(value.as_bytes()))
            .transpose()?;
        let params = SubscribeParams {
            binding,
            resume_after,
            idle_timeout: query.idle_for,
        };
        let (sink, items) = async_channel::unbounded();
        let reply = self
            .call_with_stream(Command::Subscribe(params), Some(sink))
            .await?;
        let subscriber = match reply {
            Reply::Subscribe(Ok(subscriber)) => subscriber,
            other => return Ok(reply_response(other)),
        };
        let stream = EventStream::new(
            subscriber,
            items,
            self.shared.control.clone(),
            Arc::clone(&self.shared.runtime),
            self.shared.keep_alive,
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

    /// Reads the whole body, refusing at once one that announces more than the
    /// limit and stopping one that grows past it.
    async fn read_body<B>(&self, headers: &HeaderMap, body: B) -> Result<Bytes, RequestError>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let max = self.shared.max_body;
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
        let request = RequestId(self.shared.next_request.fetch_add(1, Ordering::Relaxed));
        let (reply, answer) = async_channel::bounded(1);
        let input = Input::Command {
            request,
            command,
            reply,
            stream,
        };
        self.shared
            .control
            .send(input)
            .await
            .map_err(|_| Failure::Gone)?;
        answer.recv().await.map_err(|_| Failure::Gone)
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

fn json_response(json: JsonResponse) -> Response<ApiBody> {
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
        assert_eq!(Route::parse("/v1/udp/send/abc"), Some(Route::Send("abc")));
        assert_eq!(
            Route::parse("/v1/udp/heartbeat/abc"),
            Some(Route::Heartbeat("abc"))
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
            "/v1/udp/recv",
            "/v1/udp/recv/a/b",
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
        assert_eq!(route.allowed(), "PUT, POST");
    }
}
