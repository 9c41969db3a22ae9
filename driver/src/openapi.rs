//! `GET /openapi.json`: the OpenAPI 3.1 document of the whole HTTP API.
//!
//! Nothing here is a copy of the API kept by hand. The schemas are the
//! codec's own types (`porthole_core::api`, through their `utoipa::ToSchema`
//! derives); error codes and statuses come from [`ErrorCode`]'s table; the
//! paths are parsed by the router's own `Route::parse` and matched
//! exhaustively, so a new route does not compile until it is documented here.
//! What is hand-written is prose, and which codes each route can answer; the
//! conformance suite checks every response it receives against the result.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use porthole_core::api::ErrorCode;
use porthole_core::api::{
    BatchResult, BatchResultsBody, BatchSendRequest, BindRequest, BindingInfoBody, ClosedEventData,
    CountersBody, DatagramEventData, ErrorBody, HeartbeatRequest, LaggedEventData, RenewedBody,
    SendRequest, SentBody, StatusBody, TicketBody, UnboundBody,
};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, ComponentsBuilder, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required,
};
use utoipa::ToSchema;

use crate::api::Route;

/// The media type of JSON bodies.
const JSON: &str = "application/json";

/// Every path of the API, as documented: `{id}` is the binding id segment.
pub(crate) const PATHS: [&str; 12] = [
    "/v1/udp/bind",
    "/v1/udp/bind/{id}",
    "/v1/udp/recv/{id}",
    "/v1/udp/recv/{id}/ticket",
    "/v1/udp/ws/{id}",
    "/v1/udp/send/{id}",
    "/v1/udp/heartbeat/{id}",
    "/v1/udp/status",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

/// The document, serialized once: it is the same for every server of this build.
pub(crate) fn json() -> &'static [u8] {
    static JSON_DOC: OnceLock<Vec<u8>> = OnceLock::new();
    JSON_DOC.get_or_init(|| {
        // Serializing utoipa's plain data types cannot fail; an empty object
        // would fail every client loudly rather than crash the server.
        let mut doc = serde_json::to_value(document()).unwrap_or_default();
        fix_link_keys(&mut doc);
        serde_json::to_vec(&doc).unwrap_or_else(|_| b"{}".to_vec())
    })
}

/// utoipa 5.5 writes a link's `operationId` as `operation_id`, which no
/// OpenAPI tool reads: renamed in every response's `links`.
fn fix_link_keys(doc: &mut serde_json::Value) {
    // `get_mut`, not indexing: indexing a non-object (a path item's
    // `parameters` array) panics.
    let operations = doc
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let links = operation
            .get_mut("responses")
            .and_then(serde_json::Value::as_object_mut)
            .into_iter()
            .flat_map(|r| r.values_mut())
            .filter_map(|r| {
                r.get_mut("links")
                    .and_then(serde_json::Value::as_object_mut)
            })
            .flat_map(|links| links.values_mut())
            .filter_map(serde_json::Value::as_object_mut);
        for link in links {
            if let Some(id) = link.remove("operation_id") {
                link.insert("operationId".to_owned(), id);
            }
        }
    }
}

/// The OpenAPI 3.1 document of Porthole's HTTP API, for embedders that mount
/// the API in a server of their own. `GET /openapi.json` serves it, with the
/// links of the bind's answer spelled `operationId` (utoipa 5.5 serializes
/// `operation_id`).
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for path in PATHS {
        paths = paths.path(path, path_item(path));
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Porthole")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Lease host UDP sockets over HTTP: bind a port, stream its datagrams \
                     as server-sent events, send through it, keep it alive with heartbeats. \
                     Errors are `{\"error\": \"<code>\", \"message\": \"<text>\"}`; each code has \
                     one status. When the daemon runs with a token, every `/v1` route and \
                     `/metrics` need it (`Authorization: Bearer` or koi's `X-Koi-Token`).",
                ))
                .license(Some(
                    LicenseBuilder::new()
                        .name("MIT OR Apache-2.0")
                        .identifier(Some("MIT OR Apache-2.0"))
                        .build(),
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components()))
        .build()
}

fn components() -> utoipa::openapi::Components {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
    add::<ErrorBody>(&mut schemas);
    add::<ErrorCode>(&mut schemas);
    add::<BindRequest>(&mut schemas);
    add::<SendRequest>(&mut schemas);
    add::<HeartbeatRequest>(&mut schemas);
    add::<BindingInfoBody>(&mut schemas);
    add::<CountersBody>(&mut schemas);
    add::<UnboundBody>(&mut schemas);
    add::<SentBody>(&mut schemas);
    add::<RenewedBody>(&mut schemas);
    add::<TicketBody>(&mut schemas);
    add::<StatusBody>(&mut schemas);
    add::<BatchSendRequest>(&mut schemas);
    add::<porthole_core::api::BatchEntry>(&mut schemas);
    add::<BatchResultsBody>(&mut schemas);
    add::<BatchResult>(&mut schemas);
    add::<DatagramEventData>(&mut schemas);
    add::<LaggedEventData>(&mut schemas);
    add::<ClosedEventData>(&mut schemas);
    ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "koiToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Koi-Token"))),
        )
        .build()
}

/// `#/components/schemas/<T's name>`.
fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn string_schema(format: Option<SchemaFormat>) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .format(format)
        .build()
        .into()
}

/// A `u64` parameter: the server refuses values beyond it (400).
fn integer_schema() -> Schema {
    let max = usize::try_from(u64::MAX).map_or(utoipa::Number::Float(u64::MAX as f64), |m| {
        utoipa::Number::UInt(m)
    });
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .minimum(Some(0))
        .maximum(Some(max))
        .build()
        .into()
}

/// Codes every `/v1` route can answer: the web boundary, the token, shutdown.
const V1_COMMON: [ErrorCode; 4] = [
    ErrorCode::HostNotAllowed,
    ErrorCode::OriginNotAllowed,
    ErrorCode::Unauthorized,
    ErrorCode::ShuttingDown,
];

/// Codes of a route that reads a JSON body.
const BODY: [ErrorCode; 2] = [ErrorCode::InvalidJson, ErrorCode::BodyTooLarge];

/// Codes every route can answer: the web boundary comes before any route.
const BOUNDARY: [ErrorCode; 2] = [ErrorCode::HostNotAllowed, ErrorCode::OriginNotAllowed];

/// One documented operation.
struct Op {
    id: &'static str,
    summary: &'static str,
    body: Option<(RefOr<Schema>, bool)>,
    params: Vec<utoipa::openapi::path::Parameter>,
    success: (u16, Response),
    errors: Vec<ErrorCode>,
    extra: Vec<(u16, Response)>,
    secured: bool,
}

impl Op {
    fn new(id: &'static str, summary: &'static str, success: (u16, Response)) -> Self {
        Op {
            id,
            summary,
            body: None,
            params: Vec::new(),
            success,
            errors: Vec::new(),
            extra: Vec::new(),
            secured: false,
        }
    }

    /// A `/v1` operation: the token, shutdown, and `errors` besides.
    fn v1(mut self, errors: &[ErrorCode]) -> Self {
        self.secured = true;
        self.errors = V1_COMMON.iter().chain(errors).copied().collect();
        self
    }

    fn body(mut self, schema: RefOr<Schema>, required: bool) -> Self {
        self.body = Some((schema, required));
        self
    }

    fn build(self) -> Operation {
        let mut responses =
            ResponsesBuilder::new().response(self.success.0.to_string(), self.success.1);
        for (status, response) in self.extra {
            responses = responses.response(status.to_string(), response);
        }
        for (status, response) in error_responses(&self.errors) {
            responses = responses.response(status.to_string(), response);
        }
        let mut op = OperationBuilder::new()
            .operation_id(Some(self.id))
            .summary(Some(self.summary))
            .parameters(Some(self.params))
            .responses(responses.build());
        if let Some((schema, required)) = self.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
                    .required(Some(if required {
                        Required::True
                    } else {
                        Required::False
                    }))
                    .build(),
            ));
        }
        if self.secured {
            // `{}` first: a daemon started without a token needs none.
            op = op.securities(Some([
                SecurityRequirement::default(),
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("koiToken", Vec::<String>::new()),
            ]));
        }
        op.build()
    }
}

/// One response per status among `codes`: an [`ErrorBody`] whose `error` is
/// one of the codes with that status.
fn error_responses(codes: &[ErrorCode]) -> BTreeMap<u16, Response> {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in codes {
        let same = by_status.entry(code.http_status()).or_default();
        if !same.contains(code) {
            same.push(*code);
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let names: Vec<String> = codes.iter().map(|c| format!("`{}`", c.as_str())).collect();
            let schema = AllOfBuilder::new()
                .item(schema_ref::<ErrorBody>())
                .item(
                    ObjectBuilder::new()
                        .property("error", ErrorCode::schema_of(&codes))
                        .required("error"),
                )
                .build();
            let schema = RefOr::T(Schema::AllOf(schema));
            let response = ResponseBuilder::new()
                .description(format!("Error: {}.", names.join(", ")))
                .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
                .build();
            (status, response)
        })
        .collect()
}

/// The 201 to a bind, with links that feed its `id` to the operations on a
/// binding (so that tools chain them: bind, then send, renew, unbind). Not to
/// the stream, which stays open until the binding closes.
fn new_binding() -> Response {
    let mut response = json_response("The new binding.", schema_ref::<BindingInfoBody>());
    for operation in [
        "unbind",
        "issueTicket",
        "send",
        "heartbeat",
        "heartbeatPost",
    ] {
        let link = utoipa::openapi::link::LinkBuilder::new()
            .operation_id(operation)
            .parameter("id", "$response.body#/id")
            .build();
        response.links.insert(operation.to_owned(), RefOr::T(link));
    }
    response
}

/// Exactly one of `a` and `b`.
fn one_of(a: RefOr<Schema>, b: RefOr<Schema>) -> RefOr<Schema> {
    RefOr::T(Schema::OneOf(
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(a)
            .item(b)
            .build(),
    ))
}

fn json_response(description: &str, schema: RefOr<Schema>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

fn text_response(description: &str, media_type: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            media_type,
            ContentBuilder::new()
                .schema(Some(string_schema(None)))
                .build(),
        )
        .build()
}

/// The `GET` operation's `HEAD` twin: the same statuses and headers, no body.
fn head_of(get: &Operation) -> Operation {
    let mut head = get.clone();
    head.operation_id = get.operation_id.as_ref().map(|id| format!("{id}Head"));
    head.summary = Some("The GET's status and headers, without a body.".to_owned());
    for response in head.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.content.clear();
        }
    }
    head
}

/// `OPTIONS`: the CORS preflight, answered before auth on every path.
fn preflight(path: &str) -> Operation {
    let mut op = Op::new(
        "preflight",
        "CORS preflight: answered before auth, with the allowed methods and headers.",
        (
            204,
            ResponseBuilder::new()
                .description(
                    "The preflight's answer (`Allow`, and CORS headers for an allowed origin).",
                )
                .build(),
        ),
    );
    op.errors = BOUNDARY.to_vec();
    if path.contains("{id}") {
        // The preflight is answered before routing: any segment will do, so
        // it overrides the path's binding-id parameter with a plain string.
        op.params.push(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("Any segment: a preflight does not look at it."))
                .schema(Some(string_schema(None)))
                .build(),
        );
    }
    let mut built = op.build();
    built.operation_id = Some(format!("preflight{}", operation_suffix(path)));
    built
}

/// `/v1/udp/recv/{id}/ticket` -> `V1UdpRecvIdTicket`, for unique operation ids.
fn operation_suffix(path: &str) -> String {
    path.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut chars = s.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The operations of one documented path.
fn path_item(path: &str) -> PathItem {
    let mut ops: Vec<(HttpMethod, Operation)> = match Route::parse(path) {
        Some(route) => v1_operations(route),
        None => operational(path),
    };
    // Every GET has its HEAD, but a WebSocket handshake (101).
    let gets: Vec<Operation> = ops
        .iter()
        .filter(|(m, op)| {
            matches!(m, HttpMethod::Get) && !op.responses.responses.contains_key("101")
        })
        .map(|(_, op)| head_of(op))
        .collect();
    ops.extend(gets.into_iter().map(|op| (HttpMethod::Head, op)));
    ops.push((HttpMethod::Options, preflight(path)));
    let mut item = utoipa::openapi::path::PathItemBuilder::new();
    if path.contains("{id}") {
        // On the path item, so that every method (the preflight too) has it.
        item = item.parameters(Some([ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("The binding's id (a version-4 UUID)."))
            .schema(Some(string_schema(Some(SchemaFormat::Custom(
                "uuid".to_owned(),
            )))))
            .build()]));
    }
    for (method, op) in ops {
        item = item.operation(method, op);
    }
    item.build()
}

/// The `/v1` routes, matched exhaustively: a new [`Route`] must be documented.
fn v1_operations(route: Route<'_>) -> Vec<(HttpMethod, Operation)> {
    use ErrorCode as E;
    match route {
        Route::Bind => vec![(
            HttpMethod::Post,
            Op::new(
                "bind",
                "Bind a host UDP port (an empty body means all defaults).",
                (201, new_binding()),
            )
            .v1(&[
                BODY[0],
                BODY[1],
                E::InvalidAddress,
                E::RemoteNotAllowed,
                E::PortNotAllowed,
                E::PermissionDenied,
                E::AddressInUse,
                E::TooManyBindings,
                E::OutOfResources,
                E::IoError,
            ])
            .body(schema_ref::<BindRequest>(), false)
            .build(),
        )],
        Route::Unbind(_) => vec![(
            HttpMethod::Delete,
            Op::new(
                "unbind",
                "Close a binding: its streams end with `closed`/`unbound`.",
                (200, json_response("The binding is closed.", schema_ref::<UnboundBody>())),
            )
            .v1(&[E::NotFound])
            .build(),
        )],
        Route::Recv(_) => vec![(HttpMethod::Get, recv())],
        Route::Ws(_) => vec![(HttpMethod::Get, ws())],
        Route::Ticket(_) => vec![(
            HttpMethod::Post,
            Op::new(
                "issueTicket",
                "A short-lived single-use ticket that opens one stream (`?ticket=`) without the token.",
                (200, json_response("The ticket.", schema_ref::<TicketBody>())),
            )
            .v1(&[E::NotFound, E::TooManyTickets])
            .build(),
        )],
        Route::Send(_) => vec![(
            HttpMethod::Post,
            Op::new(
                "send",
                "Send one datagram (`{dest, payload}`) or a batch (`{\"datagrams\": [...]}`) \
                 from the binding's socket.",
                (
                    200,
                    json_response(
                        "One datagram: it was sent (`SentBody`). A batch: one result per \
                         datagram, in order (`BatchResultsBody`).",
                        one_of(schema_ref::<SentBody>(), schema_ref::<BatchResultsBody>()),
                    ),
                ),
            )
            .v1(&[
                BODY[0],
                BODY[1],
                E::NotFound,
                E::InvalidBase64,
                E::InvalidAddress,
                E::AddressFamilyMismatch,
                E::RemoteNotAllowed,
                E::DestinationForbidden,
                E::DestinationDenied,
                E::PermissionDenied,
                E::PayloadTooLarge,
                E::TooManyDatagrams,
                E::DestinationUnreachable,
                E::OutOfResources,
                E::IoError,
            ])
            .body(
                one_of(
                    schema_ref::<SendRequest>(),
                    schema_ref::<BatchSendRequest>(),
                ),
                true,
            )
            .build(),
        )],
        Route::Heartbeat(_) => {
            let op = |id| {
                Op::new(
                    id,
                    "Renew the lease (optionally with a new `lease_secs`).",
                    (200, json_response("The lease is renewed.", schema_ref::<RenewedBody>())),
                )
                .v1(&[BODY[0], BODY[1], E::NotFound])
                .body(schema_ref::<HeartbeatRequest>(), false)
                .build()
            };
            vec![
                (HttpMethod::Put, op("heartbeat")),
                (HttpMethod::Post, op("heartbeatPost")),
            ]
        }
        Route::Status => vec![(
            HttpMethod::Get,
            Op::new(
                "status",
                "Every live binding, oldest first.",
                (200, json_response("The bindings.", schema_ref::<StatusBody>())),
            )
            .v1(&[])
            .build(),
        )],
    }
}

/// `GET /v1/udp/ws/{id}`: only the handshake is HTTP; the messages are in
/// the README (binary datagram frames both ways, JSON notices).
fn ws() -> Operation {
    let mut op = Op::new(
        "ws",
        "The datagram channel as a WebSocket (RFC 6455 upgrade): datagrams both ways, \
         with `lagged`, `send_error` and `closed` notices.",
        (
            101,
            ResponseBuilder::new()
                .description("Switching Protocols: the connection is the channel.")
                .build(),
        ),
    )
    .v1(&[
        ErrorCode::NotFound,
        ErrorCode::InvalidParameter,
        ErrorCode::TooManySubscribers,
    ]);
    // The handshake's headers (RFC 6455 §4.1): without them, 400.
    let header = |name: &str, schema: Schema| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .schema(Some(schema))
            .build()
    };
    let one = |value: &str| -> Schema {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some([value]))
            .build()
            .into()
    };
    op.params.extend([
        header("Upgrade", one("websocket")),
        header("Connection", one("Upgrade")),
        header("Sec-WebSocket-Version", one("13")),
        header(
            "Sec-WebSocket-Key",
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some("^[A-Za-z0-9+/]{22}==$"))
                .build()
                .into(),
        ),
    ]);
    op.params.extend(stream_parameters());
    op.build()
}

fn recv() -> Operation {
    let stream = text_response(
        "The stream, until the binding closes: `event: datagram` (`id:` its sequence \
         number, data `DatagramEventData`), `event: lagged` (`LaggedEventData`), a final \
         `event: closed` (`ClosedEventData`), and `: keep-alive` comments.",
        "text/event-stream",
    );
    let mut op = Op::new(
        "recv",
        "Stream the binding's datagrams as server-sent events.",
        (200, stream),
    )
    .v1(&[
        ErrorCode::NotFound,
        ErrorCode::InvalidParameter,
        ErrorCode::TooManySubscribers,
    ]);
    op.params.extend(stream_parameters());
    op.build()
}

/// The parameters of the stream and the channel: idle time, ticket, resume.
fn stream_parameters() -> [utoipa::openapi::path::Parameter; 4] {
    let query = |name: &str, description: &str, schema: Schema| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(schema))
            .build()
    };
    [
        query(
            "idle_for",
            "End the stream after this many seconds without a datagram (0: never).",
            integer_schema(),
        ),
        query(
            "ticket",
            "A ticket from `POST /v1/udp/recv/{id}/ticket`, instead of the token.",
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some("^[0-9a-fA-F]{32}$"))
                .build()
                .into(),
        ),
        query(
            "last_event_id",
            "Resume after this sequence number, like the `Last-Event-ID` header.",
            integer_schema(),
        ),
        ParameterBuilder::new()
            .name("Last-Event-ID")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("Resume after this sequence number."))
            .schema(Some(integer_schema()))
            .build(),
    ]
}

/// The operational routes outside `/v1`.
fn operational(path: &str) -> Vec<(HttpMethod, Operation)> {
    let ok = || text_response("`ok`", "text/plain; charset=utf-8");
    let op = match path {
        "/healthz" => {
            let mut op = Op::new("healthz", "Liveness: the process serves HTTP.", (200, ok()));
            op.errors = BOUNDARY.to_vec();
            op
        }
        "/readyz" => {
            let mut op = Op::new("readyz", "Readiness: 503 once shutdown began.", (200, ok()));
            op.extra.push((
                503,
                text_response("`draining`: shutting down.", "text/plain; charset=utf-8"),
            ));
            op.errors = BOUNDARY.to_vec();
            op
        }
        "/metrics" => {
            let mut op = Op::new(
                "metrics",
                "Prometheus text format, from the engine's counters.",
                (
                    200,
                    text_response("The metrics.", crate::metrics::CONTENT_TYPE),
                ),
            );
            op.secured = true;
            op.errors = V1_COMMON
                .iter()
                .copied()
                .chain([ErrorCode::IoError])
                .collect();
            op
        }
        "/openapi.json" => {
            let mut op = Op::new(
                "openapi",
                "This document (OpenAPI 3.1), without auth: it holds nothing secret or \
                 particular to this daemon.",
                (
                    200,
                    json_response(
                        "The OpenAPI document.",
                        RefOr::T(
                            ObjectBuilder::new()
                                .schema_type(SchemaType::Type(Type::Object))
                                .build()
                                .into(),
                        ),
                    ),
                ),
            );
            op.errors = BOUNDARY.to_vec();
            op
        }
        _ => return Vec::new(),
    };
    vec![(HttpMethod::Get, op.build())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        serde_json::from_slice(json()).expect("the document is JSON")
    }

    #[test]
    fn every_documented_path_is_a_route_or_an_operational_path() {
        for path in PATHS {
            let ops = match Route::parse(path) {
                Some(route) => v1_operations(route),
                None => operational(path),
            };
            assert!(!ops.is_empty(), "{path} has no operation");
            assert_ne!(crate::ops::template(path), "unmatched", "{path}");
        }
    }

    #[test]
    fn documented_v1_methods_are_exactly_the_routes_methods() {
        let doc = doc();
        for path in PATHS {
            let Some(route) = Route::parse(path) else {
                continue;
            };
            let item = doc["paths"][path].as_object().expect("a path item");
            let mut documented: Vec<String> = item
                .keys()
                .filter(|m| m.as_str() != "parameters")
                .map(|m| m.to_ascii_uppercase())
                .collect();
            documented.sort();
            let mut allowed: Vec<String> = route.allowed().split(", ").map(str::to_owned).collect();
            allowed.sort();
            assert_eq!(documented, allowed, "{path}");
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_unique_operation_ids() {
        let doc = doc();
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                if method == "parameters" {
                    continue;
                }
                let id = op["operationId"].as_str().expect("an operationId");
                assert!(ids.insert(id.to_owned()), "{method} {path}: {id} twice");
            }
        }
    }

    #[test]
    fn error_responses_list_the_codes_of_their_status() {
        let doc = doc();
        let send = &doc["paths"]["/v1/udp/send/{id}"]["post"]["responses"];
        let codes_413 =
            &send["413"]["content"][JSON]["schema"]["allOf"][1]["properties"]["error"]["enum"];
        assert_eq!(
            codes_413,
            &serde_json::json!(["body_too_large", "payload_too_large", "too_many_datagrams"])
        );
        let schemas = &doc["components"]["schemas"];
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(schemas["ErrorCode"]["enum"], serde_json::json!(all));
        for name in ["BindingInfo", "Counters", "ErrorBody", "DatagramEventData"] {
            assert!(schemas[name].is_object(), "{name} is missing");
        }
        assert_eq!(
            schemas["BatchSendRequest"]["properties"]["datagrams"]["maxItems"],
            porthole_core::api::MAX_BATCH_DATAGRAMS
        );
    }

    #[test]
    fn links_from_a_bind_name_existing_operations() {
        let doc = doc();
        let links = doc["paths"]["/v1/udp/bind"]["post"]["responses"]["201"]["links"]
            .as_object()
            .expect("links")
            .clone();
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(_, item)| item.as_object().into_iter().flatten())
            .filter_map(|(_, op)| op["operationId"].as_str())
            .collect();
        assert!(!links.is_empty());
        for link in links.values() {
            let target = link["operationId"].as_str().expect("an operationId");
            assert!(ids.contains(&target), "{target}");
        }
    }
}
