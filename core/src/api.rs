//! The HTTP API v1 codec, I/O-free: request bodies in, JSON responses and SSE
//! events out.
//!
//! Field names and defaults are koi-udp's, so a koi-udp client works unchanged;
//! extensions (`renew_on_traffic`, heartbeat `lease_secs`, counters, `expires_at`,
//! `lagged` and `closed` events) are additive.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::action::{CloseReason, Datagram, Event, Reply};
use crate::binding::{BindingCounters, BindingInfo};
use crate::command::BindParams;
use crate::id::{BindingId, Seq};
use crate::ticket::Ticket;

mod batch;
mod error;
pub mod ws;

pub use error::{ApiError, ErrorCode};

pub use batch::{
    decode_send_body, encode_batch_results, BatchEntry, BatchEntryError, BatchResult,
    BatchResultsBody, BatchSendRequest, SendBody, MAX_BATCH_DATAGRAMS,
};

/// Route prefix of the API.
pub const PREFIX: &str = "/v1/udp";

/// Standard base64 that accepts input with or without `=` padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A request the front end cannot turn into a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not the JSON the route expects.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// A payload is not standard base64.
    #[error("payload is not valid base64: {0}")]
    InvalidBase64(String),
    /// An address does not parse.
    #[error("invalid address {0:?}: expected an IP address (bind) or ip:port (destination)")]
    InvalidAddress(String),
    /// A query parameter or header does not parse.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The body is larger than the configured maximum.
    #[error("request body exceeds the maximum of {max} bytes")]
    BodyTooLarge {
        /// The configured maximum.
        max: usize,
    },
    /// A binding id in the path that cannot name any binding.
    #[error("binding not found")]
    UnknownBinding,
    /// Missing or wrong bearer token.
    #[error("missing or invalid token (send Authorization: Bearer <token>)")]
    Unauthorized,
    /// A `ticket` that is not a ticket.
    #[error("the ticket is unknown, used, expired or for another binding")]
    BadTicket,
    /// The request's `Origin` is not allowed.
    #[error("origin {0:?} is not allowed (see --allow-origin)")]
    OriginNotAllowed(String),
    /// The request's `Host` is neither an IP literal, `localhost` nor an allowed name.
    #[error("host {0:?} is not allowed (use an IP address or localhost, or see --allow-host)")]
    HostNotAllowed(String),
    /// No such route.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// A batch send carries more datagrams than allowed.
    #[error("a batch of {count} datagrams exceeds the maximum of {max}")]
    TooManyDatagrams {
        /// Datagrams in the batch.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// The route does not take this method.
    #[error("method {method} not allowed here (allowed: {allowed})")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the route takes.
        allowed: &'static str,
    },
    /// The server is shutting down: nothing takes the request any more.
    #[error("the server is shutting down")]
    ShuttingDown,
}

fn json_error(e: serde_json::Error) -> RequestError {
    RequestError::InvalidJson(e.to_string())
}

/// Decodes a body that must be a JSON object. serde would also fill a struct
/// from an array (`[5000, "::1"]`, or `[]` for all defaults), which is not
/// the API; a valid JSON text that starts with `{` is an object.
fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(RequestError::InvalidJson(
            "expected a JSON object".to_owned(),
        ));
    }
    serde_json::from_slice(body).map_err(json_error)
}

/// True for a body that carries nothing (koi clients send no body to heartbeat).
fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// `POST /v1/udp/bind` body. Every field is optional; an empty body means
/// all defaults.
// Unknown fields are ignored, as koi-udp ignores them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BindRequest {
    /// UDP port to bind; 0 picks any free port.
    #[serde(default, deserialize_with = "whole")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535, default = 0))]
    pub port: u16,
    /// IP address to bind (`127.0.0.1`, `::1`, `[::1]`); default `127.0.0.1`.
    /// Anything but loopback needs `allow_remote`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = ip_schema))]
    pub addr: Option<String>,
    /// Lease in seconds; missing or 0: the server's default; clamped to its maximum.
    #[serde(default, deserialize_with = "whole_or_null")]
    pub lease_secs: Option<u64>,
    /// Bind and send beyond loopback (the server must allow it too).
    #[serde(default)]
    pub allow_remote: bool,
    /// Whether datagrams received or sent renew the lease, as a heartbeat does.
    #[serde(default)]
    pub renew_on_traffic: bool,
}

/// A whole number. JSON has one number type and JSON Schema counts `5.0` as
/// the integer 5, so a whole float is taken as one; fractions, negatives and
/// values out of `T`'s range are refused. A whole number past `u64` (JSON
/// has no limit; the parser hands it over as a float) saturates: it only
/// stands for "the longest lease", which the engine clamps anyway.
fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = serde_json::Number::deserialize(deserializer)?;
    let value = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            // `as` saturates at u64::MAX.
            .map(|f| f as u64)
    });
    value
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number in range")))
}

/// [`whole`], or `null`.
fn whole_or_null<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] u64);
    Ok(Option::<Whole>::deserialize(deserializer)?.map(|w| w.0))
}

/// A bind address: an IPv4 or IPv6 address, or null for the default.
/// (The decoder also takes `[v6]`, which the schema leaves out.)
#[cfg(feature = "openapi")]
fn ip_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat};
    use utoipa::openapi::schema::{SchemaType, Type};
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    AnyOfBuilder::new()
        .item(string(KnownFormat::Ipv4))
        .item(string(KnownFormat::Ipv6))
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
        .description(Some(
            "IP address to bind (`127.0.0.1`, `::1`); default `127.0.0.1`. \
             Anything but loopback needs `allow_remote`.",
        ))
        .examples([serde_json::json!("127.0.0.1")])
        .build()
        .into()
}

/// A destination: `a.b.c.d:port` or `[v6]:port`, port 1-65535 (what
/// [`parse_destination`] takes, without IPv4-in-IPv6 forms and zones).
#[cfg(feature = "openapi")]
fn destination_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    const OCTET: &str = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    const H: &str = "[0-9a-fA-F]{1,4}";
    const PORT: &str =
        "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
    let v4 = format!("{OCTET}(\\.{OCTET}){{3}}");
    let v6 = [
        format!("({H}:){{7}}{H}"),
        format!("({H}:){{1,7}}:"),
        format!("({H}:){{1,6}}:{H}"),
        format!("({H}:){{1,5}}(:{H}){{1,2}}"),
        format!("({H}:){{1,4}}(:{H}){{1,3}}"),
        format!("({H}:){{1,3}}(:{H}){{1,4}}"),
        format!("({H}:){{1,2}}(:{H}){{1,5}}"),
        format!("{H}:(:{H}){{1,6}}"),
        format!(":((:{H}){{1,7}}|:)"),
    ]
    .join("|");
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(format!("^({v4}|\\[({v6})\\]):{PORT}$")))
        .description(Some("Destination `ip:port` (`[v6]:port` for IPv6)."))
        .examples([
            serde_json::json!("127.0.0.1:9000"),
            serde_json::json!("[::1]:9000"),
        ])
        .build()
}

/// Decodes a bind body (`{port=0, addr="127.0.0.1", lease_secs=300,
/// allow_remote=false, renew_on_traffic=false}`; an empty body means all defaults).
pub fn decode_bind(body: &[u8]) -> Result<BindParams, RequestError> {
    let req: BindRequest = if is_blank(body) {
        BindRequest::default()
    } else {
        json_object(body)?
    };
    let ip = match req.addr.as_deref() {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(s) => parse_ip(s)?,
    };
    Ok(BindParams {
        addr: SocketAddr::new(ip, req.port),
        lease_secs: req.lease_secs,
        allow_remote: req.allow_remote,
        renew_on_traffic: req.renew_on_traffic,
    })
}

/// An IP address, with or without IPv6 brackets (`::1` or `[::1]`).
fn parse_ip(s: &str) -> Result<IpAddr, RequestError> {
    let inner = s
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(s);
    inner
        .parse()
        .map_err(|_| RequestError::InvalidAddress(s.to_owned()))
}

/// `POST /v1/udp/send/{id}` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendRequest {
    /// Destination `ip:port` (`[v6]:port` for IPv6).
    #[cfg_attr(feature = "openapi", schema(schema_with = destination_schema))]
    pub dest: String,
    /// The datagram, standard base64 (padding optional).
    #[cfg_attr(feature = "openapi", schema(format = Byte, example = "aGVsbG8="))]
    pub payload: String,
}

/// Decodes a send body (`{dest: "ip:port", payload: "<base64>"}`).
pub fn decode_send(body: &[u8]) -> Result<(SocketAddr, Bytes), RequestError> {
    let req: SendRequest = json_object(body)?;
    let dest = parse_destination(&req.dest)?;
    Ok((dest, decode_payload(&req.payload)?))
}

/// A base64 payload, padded or not.
fn decode_payload(payload: &str) -> Result<Bytes, RequestError> {
    LENIENT
        .decode(payload.as_bytes())
        .map(Bytes::from)
        .map_err(|e| RequestError::InvalidBase64(e.to_string()))
}

/// A destination `ip:port` (`[v6]:port` for IPv6).
pub fn parse_destination(s: &str) -> Result<SocketAddr, RequestError> {
    s.trim()
        .parse()
        .map_err(|_| RequestError::InvalidAddress(s.to_owned()))
}

/// Optional `PUT|POST /v1/udp/heartbeat/{id}` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatRequest {
    /// A new lease in seconds (0: the server's default); missing: keep the current one.
    #[serde(default, deserialize_with = "whole_or_null")]
    pub lease_secs: Option<u64>,
}

/// Decodes a heartbeat body: empty (renew with the current lease) or
/// `{"lease_secs": n}` (renew with a new lease).
pub fn decode_heartbeat(body: &[u8]) -> Result<Option<u64>, RequestError> {
    if is_blank(body) {
        return Ok(None);
    }
    let req: HeartbeatRequest = json_object(body)?;
    Ok(req.lease_secs)
}

/// A binding id from a path segment. A string that cannot be an id names no
/// binding, so it is `not_found`, as for an id that expired.
pub fn parse_binding_id(s: &str) -> Result<BindingId, RequestError> {
    s.parse().map_err(|_| RequestError::UnknownBinding)
}

/// The `Last-Event-ID` header: the sequence number to resume after.
pub fn parse_last_event_id(value: &[u8]) -> Result<Seq, RequestError> {
    let invalid = |reason: &str| RequestError::InvalidParameter {
        name: "Last-Event-ID",
        reason: reason.to_owned(),
    };
    let s = std::str::from_utf8(value).map_err(|_| invalid("not UTF-8"))?;
    s.parse()
        .map_err(|_| invalid("expected the decimal sequence number of an event"))
}

/// Query parameters of `GET /v1/udp/recv/{id}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvQuery {
    /// Close the stream after this long without a datagram (`idle_for=N`
    /// seconds; absent or 0: never, as in koi-udp).
    pub idle_for: Option<Duration>,
    /// A stream ticket (`ticket=`), for clients that cannot send the token in
    /// a header (a browser's `EventSource`).
    pub ticket: Option<Ticket>,
    /// Resume after this sequence number (`last_event_id=N`), for clients
    /// that cannot send the `Last-Event-ID` header on their first request.
    pub last_event_id: Option<Seq>,
}

/// Whether the query string has a parameter `name` (with or without a value).
pub fn query_has(query: Option<&str>, name: &str) -> bool {
    query
        .unwrap_or("")
        .split('&')
        .any(|pair| pair.split_once('=').map_or(pair, |(n, _)| n) == name)
}

/// Parses the query string of `GET /v1/udp/recv/{id}`. Unknown parameters are
/// ignored. Values are taken as sent, without percent-decoding: none of them
/// has a character that needs encoding.
pub fn parse_recv_query(query: Option<&str>) -> Result<RecvQuery, RequestError> {
    let mut out = RecvQuery::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "idle_for" => {
                let secs: u64 = value.parse().map_err(|_| RequestError::InvalidParameter {
                    name: "idle_for",
                    reason: format!("{value:?} is not a whole number of seconds"),
                })?;
                out.idle_for = (secs > 0).then(|| Duration::from_secs(secs));
            }
            // Never echo a ticket back: it is a credential.
            "ticket" => out.ticket = Some(value.parse().map_err(|_| RequestError::BadTicket)?),
            "last_event_id" => {
                out.last_event_id =
                    Some(value.parse().map_err(|_| RequestError::InvalidParameter {
                        name: "last_event_id",
                        reason: "expected the decimal sequence number of an event".to_owned(),
                    })?);
            }
            _ => {}
        }
    }
    Ok(out)
}

// ----- responses ---------------------------------------------------------------

/// A JSON response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
}

impl JsonResponse {
    pub(crate) fn ok<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => JsonResponse { status, body },
            // Only a non-string map key or a failing Serialize impl can fail; ours have neither.
            Err(e) => JsonResponse::error(ErrorCode::IoError, &e.to_string()),
        }
    }

    /// `{"error": code, "message": message}` with the code's status.
    pub fn error(code: ErrorCode, message: &str) -> Self {
        let body = serde_json::to_vec(&ErrorBody {
            error: code,
            message: message.to_owned(),
        })
        .unwrap_or_else(|_| br#"{"error":"io_error","message":""}"#.to_vec());
        JsonResponse {
            status: code.http_status(),
            body,
        }
    }

    /// The response for any error in the table.
    pub fn from_error(e: &dyn ApiError) -> Self {
        JsonResponse::error(e.code(), &e.to_string())
    }
}

/// RFC 3339 UTC with microseconds, clamped to years 1970–9999 (the formatter's range).
pub fn timestamp(t: SystemTime) -> String {
    formatted(t).to_string()
}

/// The formatter for [`timestamp`], for writing without an intermediate `String`.
fn formatted(t: SystemTime) -> humantime::Rfc3339Timestamp {
    const MAX: Duration = Duration::from_secs(253_402_300_799);
    let t = match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d <= MAX => t,
        Ok(_) => UNIX_EPOCH + MAX,
        Err(_) => UNIX_EPOCH,
    };
    humantime::format_rfc3339_micros(t)
}

/// Every error answer: `{"error": "<code>", "message": "<human text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The code; it also decides the HTTP status.
    pub error: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

/// `BindingInfo` as the API shows it (201 to a bind, and in status):
/// koi-udp's fields, then the extensions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = BindingInfo))]
pub struct BindingInfoBody {
    /// The binding's id: a capability, keep it secret.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub id: String,
    /// The bound `ip:port`.
    #[cfg_attr(feature = "openapi", schema(example = "127.0.0.1:40000"))]
    pub local_addr: String,
    /// When it was bound (RFC 3339, UTC).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub created_at: String,
    /// When its lease was last renewed (RFC 3339, UTC).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub last_heartbeat: String,
    /// The lease, in seconds.
    pub lease_secs: u64,
    /// Whether it may bind and send beyond loopback.
    pub allow_remote: bool,
    /// Whether traffic renews the lease.
    pub renew_on_traffic: bool,
    /// When the lease runs out unless renewed (RFC 3339, UTC).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub expires_at: String,
    /// Open streams.
    pub subscribers: usize,
    /// Payload bytes held: the replay ring plus deliveries in flight.
    pub buffered_bytes: usize,
    /// What happened to its datagrams.
    pub counters: CountersBody,
}

/// A binding's counters. `received == delivered + pending + dropped_overflow +
/// dropped_memory`: nothing is lost silently.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Counters))]
pub struct CountersBody {
    /// Datagrams received on the socket.
    pub received: u64,
    /// Bytes received on the socket.
    pub received_bytes: u64,
    /// Received datagrams delivered to at least one stream.
    pub delivered: u64,
    /// Datagram events written to streams (once per stream).
    pub deliveries: u64,
    /// Datagrams waiting in the replay ring for a first stream.
    pub pending: u64,
    /// Datagrams pushed out of the full ring before any stream got them.
    pub dropped_overflow: u64,
    /// Datagrams dropped because all bindings together held the memory cap.
    pub dropped_memory: u64,
    /// Datagrams the kernel dropped before they were read (its receive
    /// buffer was full); never received, so outside the sum above.
    pub dropped_kernel: u64,
    /// Datagrams slow streams missed (reported to them as `lagged`).
    pub missed: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// ICMP errors the kernel reported.
    pub icmp_errors: u64,
    /// Other receive errors.
    pub recv_errors: u64,
}

impl From<&BindingCounters> for CountersBody {
    fn from(c: &BindingCounters) -> Self {
        CountersBody {
            received: c.received,
            received_bytes: c.received_bytes,
            delivered: c.delivered,
            deliveries: c.deliveries,
            pending: c.pending,
            dropped_overflow: c.dropped_overflow,
            dropped_memory: c.dropped_memory,
            dropped_kernel: c.dropped_kernel,
            missed: c.missed,
            sent: c.sent,
            sent_bytes: c.sent_bytes,
            send_errors: c.send_errors,
            icmp_errors: c.icmp_errors,
            recv_errors: c.recv_errors,
        }
    }
}

impl From<&BindingInfo> for BindingInfoBody {
    fn from(b: &BindingInfo) -> Self {
        BindingInfoBody {
            id: b.id.to_string(),
            local_addr: b.local_addr.to_string(),
            created_at: timestamp(b.created_at),
            last_heartbeat: timestamp(b.last_heartbeat),
            lease_secs: b.lease.as_secs(),
            allow_remote: b.allow_remote,
            renew_on_traffic: b.renew_on_traffic,
            expires_at: timestamp(b.expires_at),
            subscribers: b.subscribers,
            buffered_bytes: b.buffered_bytes,
            counters: CountersBody::from(&b.counters),
        }
    }
}

/// `DELETE /v1/udp/bind/{id}`: 200 `{"unbound": id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnboundBody {
    /// The id of the binding that was closed.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub unbound: String,
}

/// `POST /v1/udp/send/{id}`: 200 `{"sent": n}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SentBody {
    /// Bytes sent (the payload's length).
    pub sent: usize,
}

/// `PUT|POST /v1/udp/heartbeat/{id}`: 200 with the renewed lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenewedBody {
    /// The id of the binding renewed.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub renewed: String,
    /// The lease now in force, in seconds.
    pub lease_secs: u64,
    /// The new deadline (RFC 3339, UTC).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub expires_at: String,
}

/// `POST /v1/udp/recv/{id}/ticket`: 200 with a single-use stream ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketBody {
    /// 32 hex digits; open the stream with `?ticket=` once, before it expires.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{32}$"))]
    pub ticket: String,
    /// The binding whose stream it opens.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub binding_id: String,
    /// When it expires (RFC 3339, UTC).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub expires_at: String,
    /// Seconds it stays valid.
    pub expires_in_secs: u64,
}

/// `GET /v1/udp/status`: 200 with every live binding, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusBody {
    /// The live bindings, oldest first.
    pub bindings: Vec<BindingInfoBody>,
}

/// Replies no HTTP route answers with (an embedder's commands): typed all the
/// same, so every JSON the codec writes comes from a struct.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum InternalBody {
    Subscriber { subscriber: u64 },
    Unsubscribed { unsubscribed: u64 },
    Shutdown { shutdown: bool },
}

/// The HTTP response for a command's reply: 201 with `BindingInfo` for a bind,
/// `{"unbound": id}`, `{"sent": n}`, `{"renewed": id, ...}`, `{"bindings": [...]}`,
/// or the error's status and `{"error", "message"}` body.
pub fn encode_reply(reply: &Reply) -> JsonResponse {
    fn err(e: &dyn ApiError) -> JsonResponse {
        JsonResponse::from_error(e)
    }
    match reply {
        Reply::Bind(Ok(info)) => JsonResponse::ok(201, &BindingInfoBody::from(&**info)),
        Reply::Bind(Err(e)) => err(e),
        Reply::Unbind(Ok(id)) => JsonResponse::ok(
            200,
            &UnboundBody {
                unbound: id.to_string(),
            },
        ),
        Reply::Unbind(Err(e)) => err(e),
        Reply::Send(Ok(n)) => JsonResponse::ok(200, &SentBody { sent: *n }),
        Reply::Send(Err(e)) => err(e),
        Reply::Heartbeat(Ok(info)) => JsonResponse::ok(
            200,
            &RenewedBody {
                renewed: info.id.to_string(),
                lease_secs: info.lease.as_secs(),
                expires_at: timestamp(info.expires_at),
            },
        ),
        Reply::Heartbeat(Err(e)) => err(e),
        Reply::Subscribe(Ok(id)) => {
            JsonResponse::ok(200, &InternalBody::Subscriber { subscriber: id.0 })
        }
        Reply::Subscribe(Err(e)) => err(e),
        Reply::Unsubscribe(Ok(id)) => {
            JsonResponse::ok(200, &InternalBody::Unsubscribed { unsubscribed: id.0 })
        }
        Reply::Unsubscribe(Err(e)) => err(e),
        Reply::Ticket(Ok(t)) => JsonResponse::ok(
            200,
            &TicketBody {
                ticket: t.ticket.to_string(),
                binding_id: t.binding.to_string(),
                expires_at: timestamp(t.expires_at),
                expires_in_secs: t.lifetime.as_secs(),
            },
        ),
        Reply::Ticket(Err(e)) => err(e),
        Reply::Status(all) => JsonResponse::ok(
            200,
            &StatusBody {
                bindings: all.iter().map(BindingInfoBody::from).collect(),
            },
        ),
        Reply::Shutdown => JsonResponse::ok(200, &InternalBody::Shutdown { shutdown: true }),
    }
}

// ----- server-sent events --------------------------------------------------------

// The encoders below write these shapes directly (no serde on the hot path);
// the types are their schema, and the tests decode the encoders' output into
// them with unknown fields refused, so the two cannot drift apart.

/// `data` of `event: datagram` (its `id:` is the sequence number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatagramEventData {
    /// The binding that received it.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub binding_id: String,
    /// The sender's `ip:port`.
    pub src: String,
    /// The datagram, standard base64.
    #[cfg_attr(feature = "openapi", schema(format = Byte))]
    pub payload: String,
    /// When it arrived (RFC 3339, UTC).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub received_at: String,
}

/// `data` of `event: lagged`: this stream missed `missed` datagrams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LaggedEventData {
    /// Datagrams this stream missed since its last event.
    pub missed: u64,
}

/// `data` of the final `event: closed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClosedEventData {
    /// Why the stream ended.
    #[cfg_attr(feature = "openapi", schema(schema_with = close_reason_schema))]
    pub reason: String,
}

/// One of [`CloseReason::ALL`]'s wire names.
#[cfg(feature = "openapi")]
fn close_reason_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(CloseReason::ALL.iter().map(|r| r.as_str())))
        .build()
}

/// Appends one SSE event for a subscriber: `event: datagram` with `id: <seq>` and
/// koi-udp's data fields, or `event: lagged` with `{"missed": n}`.
pub fn encode_event(out: &mut Vec<u8>, event: &Event) {
    match event {
        Event::Datagram(d) => encode_datagram(out, d),
        Event::Lagged { missed } => {
            let _ = write!(
                Utf8(out),
                "event: lagged\ndata: {{\"missed\":{missed}}}\n\n"
            );
        }
    }
}

/// Appends `event: datagram`. Every field is ASCII without quotes or
/// backslashes (a UUID, a socket address, base64, a timestamp), so the JSON is
/// written directly, without an escaping pass.
pub fn encode_datagram(out: &mut Vec<u8>, d: &Datagram) {
    let mut s = Utf8(out);
    let _ = write!(
        s,
        "event: datagram\nid: {}\ndata: {{\"binding_id\":\"{}\",\"src\":\"{}\",\"payload\":\"",
        d.seq, d.binding, d.src
    );
    let start = s.0.len();
    let b64_len = base64::encoded_len(d.payload.len(), true).unwrap_or(0);
    s.0.resize(start + b64_len, 0);
    let written = STANDARD
        .encode_slice(&d.payload, &mut s.0[start..])
        .unwrap_or(0);
    s.0.truncate(start + written);
    let _ = write!(
        s,
        "\",\"received_at\":\"{}\"}}\n\n",
        formatted(d.received_at)
    );
}

/// Appends the final `event: closed` with `{"reason": ...}`.
pub fn encode_closed(out: &mut Vec<u8>, reason: CloseReason) {
    let _ = write!(
        Utf8(out),
        "event: closed\ndata: {{\"reason\":\"{}\"}}\n\n",
        reason.as_str()
    );
}

/// Appends a keep-alive comment.
pub fn encode_keep_alive(out: &mut Vec<u8>) {
    out.extend_from_slice(b": keep-alive\n\n");
}

/// `fmt::Write` into a byte buffer (everything written here is UTF-8).
struct Utf8<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{BindError, SendError};
    use crate::lease::Lease;

    #[test]
    fn bind_body_defaults_match_koi_udp() {
        let p = decode_bind(b"{}").unwrap();
        assert_eq!(p.addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(p.lease_secs, None);
        assert!(!p.allow_remote && !p.renew_on_traffic);
        assert_eq!(decode_bind(b"").unwrap(), p);
        let p = decode_bind(br#"{"port":5000,"addr":"::1","lease_secs":30,"allow_remote":true}"#)
            .unwrap();
        assert_eq!(p.addr, "[::1]:5000".parse().unwrap());
        assert_eq!(p.lease_secs, Some(30));
        assert!(p.allow_remote);
        assert_eq!(
            decode_bind(br#"{"addr":"[::1]"}"#).unwrap().addr,
            "[::1]:0".parse().unwrap()
        );
    }

    #[test]
    fn bad_bind_bodies_are_distinct_errors() {
        assert!(matches!(
            decode_bind(b"{"),
            Err(RequestError::InvalidJson(_))
        ));
        assert!(matches!(
            decode_bind(br#"{"port":70000}"#),
            Err(RequestError::InvalidJson(_))
        ));
        assert!(matches!(
            decode_bind(br#"{"port":"x"}"#),
            Err(RequestError::InvalidJson(_))
        ));
        assert_eq!(
            decode_bind(br#"{"addr":"localhost"}"#),
            Err(RequestError::InvalidAddress("localhost".into()))
        );
    }

    #[test]
    fn send_body_decodes_padded_and_unpadded_base64() {
        let (dest, payload) = decode_send(br#"{"dest":"127.0.0.1:9","payload":"aGk="}"#).unwrap();
        assert_eq!(dest, "127.0.0.1:9".parse().unwrap());
        assert_eq!(&payload[..], b"hi");
        let (_, payload) = decode_send(br#"{"dest":"127.0.0.1:9","payload":"aGk"}"#).unwrap();
        assert_eq!(&payload[..], b"hi");
        assert!(matches!(
            decode_send(br#"{"dest":"127.0.0.1:9","payload":"!!"}"#),
            Err(RequestError::InvalidBase64(_))
        ));
        assert!(matches!(
            decode_send(br#"{"dest":"127.0.0.1","payload":""}"#),
            Err(RequestError::InvalidAddress(_))
        ));
        assert!(matches!(
            decode_send(br#"{"dest":"127.0.0.1:9"}"#),
            Err(RequestError::InvalidJson(_))
        ));
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let p = decode_bind(br#"{"port": 26426.0, "lease_secs": 30.0}"#).unwrap();
        assert_eq!((p.addr.port(), p.lease_secs), (26426, Some(30)));
        for bad in [
            r#"{"port": 1.5}"#,
            r#"{"port": 65536.0}"#,
            r#"{"port": -1}"#,
            r#"{"lease_secs": -2.0}"#,
            r#"{"lease_secs": 0.5}"#,
            r#"{"port": 1e300}"#,
            r#"{"port": "1"}"#,
        ] {
            assert!(
                matches!(
                    decode_bind(bad.as_bytes()),
                    Err(RequestError::InvalidJson(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            decode_bind(br#"{"lease_secs": null}"#).unwrap().lease_secs,
            None
        );
        assert_eq!(decode_heartbeat(br#"{"lease_secs": 7.0}"#), Ok(Some(7)));
        let huge = br#"{"lease_secs": 157948742463692952903352320}"#;
        assert_eq!(decode_heartbeat(huge), Ok(Some(u64::MAX)));
    }

    #[test]
    fn bodies_must_be_json_objects() {
        for body in [&b"[]"[..], b"[5000]", b" [] ", b"null", b"5", b"\"{}\""] {
            let text = String::from_utf8_lossy(body);
            assert!(
                matches!(decode_bind(body), Err(RequestError::InvalidJson(_))),
                "{text}"
            );
            assert!(decode_heartbeat(body).is_err(), "{text}");
        }
        assert!(matches!(
            decode_send(br#"["127.0.0.1:9", "aGk="]"#),
            Err(RequestError::InvalidJson(_))
        ));
        assert!(decode_bind(b" \n{}").is_ok());
    }

    #[test]
    fn heartbeat_body_is_optional() {
        assert_eq!(decode_heartbeat(b""), Ok(None));
        assert_eq!(decode_heartbeat(b"{}"), Ok(None));
        assert_eq!(decode_heartbeat(br#"{"lease_secs":60}"#), Ok(Some(60)));
        assert!(decode_heartbeat(b"[").is_err());
    }

    #[test]
    fn recv_query_follows_koi_idle_for() {
        assert_eq!(parse_recv_query(None).unwrap().idle_for, None);
        assert_eq!(parse_recv_query(Some("idle_for=0")).unwrap().idle_for, None);
        assert_eq!(
            parse_recv_query(Some("x=1&idle_for=5")).unwrap().idle_for,
            Some(Duration::from_secs(5))
        );
        assert!(parse_recv_query(Some("idle_for=-1")).is_err());
        assert!(parse_recv_query(Some("idle_for=")).is_err());
    }

    #[test]
    fn last_event_id_must_be_a_sequence_number() {
        assert_eq!(parse_last_event_id(b"17"), Ok(Seq(17)));
        assert!(parse_last_event_id(b"0196a0e4-aaaa").is_err());
        assert!(parse_last_event_id(&[0xff, 0x31]).is_err());
    }

    #[test]
    fn errors_carry_code_and_message() {
        let r = JsonResponse::from_error(&SendError::NotFound);
        assert_eq!(r.status, 404);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "not_found");
        assert_eq!(v["message"], "binding not found");
        let r = encode_reply(&Reply::Bind(Err(BindError::TooManyBindings { max: 3 })));
        assert_eq!(r.status, 429);
        let r = JsonResponse::from_error(&RequestError::BodyTooLarge { max: 10 });
        assert_eq!(r.status, 413);
    }

    fn info() -> BindingInfo {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        BindingInfo {
            id: "1b4e28ba-2fa1-41d2-883f-0016d3cca427".parse().unwrap(),
            local_addr: "127.0.0.1:4000".parse().unwrap(),
            created_at: t,
            last_heartbeat: t,
            lease: Lease::from_secs(300),
            expires_at: t + Duration::from_secs(300),
            allow_remote: false,
            renew_on_traffic: false,
            subscribers: 0,
            buffered_bytes: 0,
            counters: BindingCounters::default(),
        }
    }

    #[test]
    fn bind_reply_is_201_with_koi_fields() {
        let r = encode_reply(&Reply::Bind(Ok(Box::new(info()))));
        assert_eq!(r.status, 201);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["id"], "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
        assert_eq!(v["local_addr"], "127.0.0.1:4000");
        assert_eq!(v["created_at"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(v["last_heartbeat"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(v["lease_secs"], 300);
        assert_eq!(v["allow_remote"], false);
        assert_eq!(v["expires_at"], "2023-11-14T22:18:20.000000Z");
        assert_eq!(v["counters"]["received"], 0);
    }

    #[test]
    fn datagram_event_is_koi_shaped_sse() {
        let d = Datagram {
            binding: info().id,
            seq: Seq(3),
            src: "127.0.0.1:9999".parse().unwrap(),
            payload: Bytes::from_static(b"hello"),
            received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        let mut out = Vec::new();
        encode_event(&mut out, &Event::Datagram(d));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "event: datagram\nid: 3\ndata: {\"binding_id\":\"1b4e28ba-2fa1-41d2-883f-0016d3cca427\",\
             \"src\":\"127.0.0.1:9999\",\"payload\":\"aGVsbG8=\",\
             \"received_at\":\"2023-11-14T22:13:20.123000Z\"}\n\n"
        );
        let data = text.lines().nth(2).unwrap().strip_prefix("data: ").unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["payload"], "aGVsbG8=");
    }

    /// The `data:` line of each event in `sse`.
    fn data_lines(sse: &[u8]) -> Vec<String> {
        String::from_utf8(sse.to_vec())
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").map(str::to_owned))
            .collect()
    }

    #[test]
    fn event_encoders_write_exactly_their_documented_types() {
        let mut out = Vec::new();
        encode_datagram(
            &mut out,
            &Datagram {
                binding: info().id,
                seq: Seq(1),
                src: "[::1]:9".parse().unwrap(),
                payload: Bytes::from_static(b"\x00\xff"),
                received_at: UNIX_EPOCH,
            },
        );
        encode_event(&mut out, &Event::Lagged { missed: 3 });
        for reason in CloseReason::ALL {
            encode_closed(&mut out, reason);
        }
        let data = data_lines(&out);
        let d: DatagramEventData = serde_json::from_str(&data[0]).unwrap();
        assert_eq!((d.src.as_str(), d.payload.as_str()), ("[::1]:9", "AP8="));
        let l: LaggedEventData = serde_json::from_str(&data[1]).unwrap();
        assert_eq!(l.missed, 3);
        for (line, reason) in data[2..].iter().zip(CloseReason::ALL) {
            let c: ClosedEventData = serde_json::from_str(line).unwrap();
            assert_eq!(c.reason, reason.as_str());
        }
    }

    #[test]
    fn replies_encode_their_typed_bodies() {
        let id = info().id;
        let r = encode_reply(&Reply::Unbind(Ok(id)));
        let body: UnboundBody = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body.unbound, id.to_string());
        let r = encode_reply(&Reply::Send(Ok(5)));
        assert_eq!(serde_json::from_slice::<SentBody>(&r.body).unwrap().sent, 5);
        let r = encode_reply(&Reply::Heartbeat(Ok(Box::new(info()))));
        let body: RenewedBody = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body.expires_at, "2023-11-14T22:18:20.000000Z");
        let r = encode_reply(&Reply::Status(vec![info()]));
        let body: StatusBody = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body.bindings.len(), 1);
        let r = encode_reply(&Reply::Shutdown);
        assert_eq!(r.body, br#"{"shutdown":true}"#);
        let r = encode_reply(&Reply::Send(Err(SendError::NotFound)));
        let body: ErrorBody = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body.error, ErrorCode::NotFound);
    }

    #[test]
    fn lagged_and_closed_events_are_encoded() {
        let mut out = Vec::new();
        encode_event(&mut out, &Event::Lagged { missed: 7 });
        encode_closed(&mut out, CloseReason::Expired);
        encode_keep_alive(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: lagged\ndata: {\"missed\":7}\n\nevent: closed\ndata: {\"reason\":\"expired\"}\n\n: keep-alive\n\n"
        );
    }

    #[test]
    fn timestamps_outside_the_formatter_range_are_clamped() {
        assert_eq!(
            timestamp(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000000Z"
        );
        assert!(timestamp(UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)).starts_with("9999-12-31"));
    }
}
