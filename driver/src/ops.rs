//! The operational side of the HTTP front end, outside `/v1`: `/healthz`,
//! `/readyz`, `/metrics`, `/openapi.json`; `HEAD` for every `GET` route; and
//! the per-request metrics and log line.
//!
//! [`Api::handle`] wraps everything in [`Observed`] and [`head_as_get`], and
//! calls [`answer`] once a request has passed the web boundary (host and
//! origin checks), so the `/v1` router knows nothing of this module but the
//! `HEAD` of a stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use porthole_core::api::ErrorCode;
use porthole_core::api::{self as codec, JsonResponse, RequestError};
use porthole_core::{Command, Reply};

use crate::api::{json_response, Api};
use crate::body::ApiBody;
use crate::driver::ToDriver;
use crate::metrics::Metrics;

/// State of the operational routes, one per [`Api`].
#[derive(Debug, Default)]
pub(crate) struct Ops {
    draining: AtomicBool,
    pub(crate) metrics: Metrics,
}

impl Ops {
    /// From now on `/readyz` answers 503: the server is shutting down.
    pub(crate) fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Marks a `HEAD` request that [`answer`] turned into a `GET` for the router:
/// the response keeps its headers and hyper sends no body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head;

/// The operational routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operational {
    Healthz,
    Readyz,
    Metrics,
    #[cfg(feature = "openapi")]
    OpenApi,
}

impl Operational {
    fn parse(path: &str) -> Option<Self> {
        match path {
            "/healthz" => Some(Operational::Healthz),
            "/readyz" => Some(Operational::Readyz),
            "/metrics" => Some(Operational::Metrics),
            #[cfg(feature = "openapi")]
            "/openapi.json" => Some(Operational::OpenApi),
            _ => None,
        }
    }
}

/// The methods of the operational routes, as `Allow` lists them.
const ALLOW: &str = "GET, HEAD, OPTIONS";

/// `Allow` for `path` if it is an operational route.
pub(crate) fn allowed(path: &str) -> Option<&'static str> {
    Operational::parse(path).map(|_| ALLOW)
}

/// Turns `HEAD` into a `GET` marked [`Head`]: every route answers it as the
/// `GET`, and hyper sends the headers without the body.
pub(crate) fn head_as_get<B>(request: &mut Request<B>) {
    if request.method() == Method::HEAD {
        *request.method_mut() = Method::GET;
        request.extensions_mut().insert(Head);
    }
}

/// Answers the operational routes; `None` for any other route.
pub(crate) async fn answer(api: &Api, request: &Parts) -> Option<Response<ApiBody>> {
    let route = Operational::parse(request.uri.path())?;
    if request.method != Method::GET {
        let mut response =
            json_response(JsonResponse::from_error(&RequestError::MethodNotAllowed {
                method: request.method.to_string(),
                allowed: ALLOW,
            }));
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
        return Some(response);
    }
    Some(match route {
        // Liveness: the process answers HTTP. koi's CLI probes this.
        Operational::Healthz => text(StatusCode::OK, "ok\n"),
        Operational::Readyz => {
            if api.ops().draining() || api.control().is_closed() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text(StatusCode::OK, "ok\n")
            }
        }
        Operational::Metrics => metrics(api, &request.headers).await,
        // Without auth, like /healthz: the document is the same for every
        // daemon of this build (no config, ids or tokens in it), and client
        // generators and API fuzzers fetch it before they hold a token.
        #[cfg(feature = "openapi")]
        Operational::OpenApi => json_response(JsonResponse {
            status: 200,
            body: crate::openapi::json().to_vec(),
        }),
    })
}

async fn metrics(api: &Api, headers: &hyper::HeaderMap) -> Response<ApiBody> {
    if let Some(token) = api.token() {
        if !token.authorizes(headers) {
            let mut response = json_response(JsonResponse::from_error(&RequestError::Unauthorized));
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let (reply, snapshot) = async_channel::bounded(1);
    if api.control().send(ToDriver::Snapshot(reply)).await.is_err() {
        return shutting_down();
    }
    let Ok(snapshot) = snapshot.recv().await else {
        return shutting_down();
    };
    match api.ops().metrics.encode(snapshot) {
        Ok(body) => {
            let mut response = Response::new(ApiBody::full(body.into_bytes()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            response
        }
        Err(_) => json_response(JsonResponse::error(
            ErrorCode::IoError,
            "the metrics could not be encoded",
        )),
    }
}

/// `HEAD /v1/udp/recv/:id`: the stream's headers if the binding exists,
/// without subscribing (a subscriber would take the datagrams waiting in the
/// ring as delivered).
pub(crate) async fn head_recv(api: &Api, id: &str) -> Response<ApiBody> {
    let not_found = || json_response(JsonResponse::from_error(&RequestError::UnknownBinding));
    let Ok(binding) = codec::parse_binding_id(id) else {
        return not_found();
    };
    match api.call(Command::Status).await {
        Ok(Reply::Status(all)) if all.iter().any(|b| b.id == binding) => {
            let mut response = Response::new(ApiBody::full(Vec::new()));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Ok(_) => not_found(),
        Err(_) => shutting_down(),
    }
}

/// A request being answered: counted and logged once its response is known.
#[derive(Debug)]
pub(crate) struct Observed {
    started: Instant,
    method: &'static str,
    route: &'static str,
}

impl Observed {
    pub(crate) fn start<B>(api: &Api, request: &Request<B>) -> Self {
        Observed {
            started: api.runtime().now(),
            method: method_name(request.method()),
            route: template(request.uri().path()),
        }
    }

    /// Records the response; ids, tokens and tickets are never logged (the
    /// route template has none, and no header or query is).
    pub(crate) fn finish(self, api: &Api, response: Response<ApiBody>) -> Response<ApiBody> {
        let took = api.runtime().now().saturating_duration_since(self.started);
        let status = response.status().as_u16();
        api.ops()
            .metrics
            .record(self.method, self.route, status, took);
        tracing::debug!(
            method = self.method,
            route = self.route,
            status,
            micros = took.as_micros() as u64,
            "request"
        );
        response
    }
}

fn method_name(method: &Method) -> &'static str {
    // A fixed set: a label value a client chooses would let it grow the metrics without bound.
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The route template of `path` (`/v1/udp/send/:id`), or `unmatched`. The id
/// is written `:id`, not `{id}`: simple parsers of the text format end a
/// label set at the first `}`.
pub(crate) fn template(path: &str) -> &'static str {
    match path {
        "/healthz" => return "/healthz",
        "/readyz" => return "/readyz",
        "/metrics" => return "/metrics",
        "/openapi.json" => return "/openapi.json",
        "/v1/udp/bind" => return "/v1/udp/bind",
        "/v1/udp/status" => return "/v1/udp/status",
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v1/udp/") else {
        return "unmatched";
    };
    let parts: Vec<&str> = rest.splitn(4, '/').collect();
    match parts.as_slice() {
        [_, ""] | [_, "", ..] => "unmatched",
        ["bind", _] => "/v1/udp/bind/:id",
        ["recv", _] => "/v1/udp/recv/:id",
        ["recv", _, "ticket"] => "/v1/udp/recv/:id/ticket",
        ["send", _] => "/v1/udp/send/:id",
        ["heartbeat", _] => "/v1/udp/heartbeat/:id",
        ["ws", _] => "/v1/udp/ws/:id",
        _ => "unmatched",
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ApiBody> {
    let mut response = Response::new(ApiBody::full(body.as_bytes().to_vec()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn shutting_down() -> Response<ApiBody> {
    json_response(JsonResponse::from_error(&RequestError::ShuttingDown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_hide_ids_and_unknown_paths() {
        for (path, expected) in [
            ("/healthz", "/healthz"),
            ("/v1/udp/bind", "/v1/udp/bind"),
            ("/v1/udp/bind/abc", "/v1/udp/bind/:id"),
            ("/v1/udp/recv/abc", "/v1/udp/recv/:id"),
            ("/v1/udp/recv/abc/ticket", "/v1/udp/recv/:id/ticket"),
            ("/v1/udp/send/abc", "/v1/udp/send/:id"),
            ("/v1/udp/heartbeat/abc", "/v1/udp/heartbeat/:id"),
            ("/v1/udp/ws/abc", "/v1/udp/ws/:id"),
            ("/v1/udp/bind/", "unmatched"),
            ("/v1/udp/recv/a/b", "unmatched"),
            ("/v1/udp/secret-token-in-path", "unmatched"),
            ("/anything", "unmatched"),
        ] {
            assert_eq!(template(path), expected, "{path}");
        }
    }

    #[test]
    fn method_labels_are_a_fixed_set() {
        assert_eq!(method_name(&Method::PUT), "PUT");
        let custom = Method::from_bytes(b"BREW").expect("a method");
        assert_eq!(method_name(&custom), "other");
    }
}
