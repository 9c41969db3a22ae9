//! The `encoders` target: what the API writes out, for arbitrary values.
//!
//! The SSE writer builds its JSON by hand (no escaping pass, see
//! `api::encode_datagram`), so it is checked here against a real parser: every
//! event is UTF-8, framed as SSE, and its `data:` line is JSON that carries back
//! exactly the datagram that went in. Error bodies carry arbitrary messages and
//! must stay valid JSON too.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::api::{self, ErrorCode, JsonResponse};
use crate::{BindingId, CloseReason, Datagram, Event, Seq};
use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;

/// One value to encode.
#[derive(Debug, Arbitrary)]
pub enum Input {
    /// A datagram event.
    Datagram(DatagramInput),
    /// A `lagged` event.
    Lagged(u64),
    /// A `closed` event.
    Closed(Reason),
    /// An error response with a client-chosen message (messages echo client input).
    Error {
        /// Index into [`ErrorCode::ALL`].
        code: u8,
        /// The message (bytes, read as lossy UTF-8 like a header or path would be).
        message: Vec<u8>,
    },
    /// A timestamp at `secs` seconds (and `nanos`) after, or before, the epoch.
    Timestamp {
        /// Before the epoch instead of after.
        before_epoch: bool,
        /// Seconds.
        secs: u64,
        /// Nanoseconds.
        nanos: u32,
    },
}

/// A close reason (mirrors [`CloseReason`], which is not `Arbitrary`).
#[derive(Debug, Clone, Copy, Arbitrary)]
#[allow(missing_docs)]
pub enum Reason {
    Expired,
    Unbound,
    Shutdown,
    Unsubscribed,
    Idle,
}

impl From<Reason> for CloseReason {
    fn from(r: Reason) -> Self {
        match r {
            Reason::Expired => CloseReason::Expired,
            Reason::Unbound => CloseReason::Unbound,
            Reason::Shutdown => CloseReason::Shutdown,
            Reason::Unsubscribed => CloseReason::Unsubscribed,
            Reason::Idle => CloseReason::Idle,
        }
    }
}

/// The parts of a [`Datagram`].
#[derive(Debug, Arbitrary)]
pub struct DatagramInput {
    /// Id bytes; the v4 version and variant bits are forced.
    pub id: [u8; 16],
    /// Sequence number.
    pub seq: u64,
    /// Source address.
    pub src: AddrInput,
    /// Payload.
    pub payload: Vec<u8>,
    /// Milliseconds after the epoch.
    pub received_ms: u64,
}

/// A socket address of either family, with every field of the IPv6 form.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum AddrInput {
    /// IPv4.
    V4([u8; 4], u16),
    /// IPv6 with flow label and scope id.
    V6([u8; 16], u16, u32, u32),
}

impl From<AddrInput> for SocketAddr {
    fn from(a: AddrInput) -> Self {
        match a {
            AddrInput::V4(ip, port) => SocketAddrV4::new(Ipv4Addr::from(ip), port).into(),
            AddrInput::V6(ip, port, flow, scope) => {
                SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope).into()
            }
        }
    }
}

impl DatagramInput {
    /// The datagram these parts describe.
    pub fn datagram(&self) -> Datagram {
        let mut id = self.id;
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        Datagram {
            binding: BindingId::from_bytes(id).expect("version and variant bits were set"),
            seq: Seq(self.seq),
            src: self.src.into(),
            payload: Bytes::from(self.payload.clone()),
            received_at: UNIX_EPOCH + Duration::from_millis(self.received_ms),
        }
    }
}

/// Runs one input: decodes values until the data runs out and checks each encoding.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    while !u.is_empty() {
        match Input::arbitrary(&mut u) {
            Ok(input) => check(&input),
            Err(_) => return,
        }
    }
}

/// Encodes one value and checks the output.
pub fn check(input: &Input) {
    match input {
        Input::Datagram(d) => datagram(&d.datagram()),
        Input::Lagged(missed) => {
            let mut out = Vec::new();
            api::encode_event(&mut out, &Event::Lagged { missed: *missed });
            let (name, id, data) = parse_event(&out);
            assert_eq!((name.as_str(), id), ("lagged", None));
            assert_eq!(data["missed"].as_u64(), Some(*missed));
        }
        Input::Closed(reason) => {
            let reason = CloseReason::from(*reason);
            let mut out = Vec::new();
            api::encode_closed(&mut out, reason);
            let (name, id, data) = parse_event(&out);
            assert_eq!((name.as_str(), id), ("closed", None));
            assert_eq!(data["reason"].as_str(), Some(reason.as_str()));
        }
        Input::Error { code, message } => {
            let code = ErrorCode::ALL[usize::from(*code) % ErrorCode::ALL.len()];
            let message = String::from_utf8_lossy(message);
            let r = JsonResponse::error(code, &message);
            assert_eq!(r.status, code.http_status());
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("error body is JSON");
            assert_eq!(v["error"].as_str(), Some(code.as_str()));
            assert_eq!(v["message"].as_str(), Some(&*message));
        }
        Input::Timestamp {
            before_epoch,
            secs,
            nanos,
        } => {
            // Below a second, so `Duration::new` cannot carry into (and overflow) the seconds.
            let d = Duration::new(*secs, nanos % 1_000_000_000);
            let t = if *before_epoch {
                UNIX_EPOCH.checked_sub(d)
            } else {
                UNIX_EPOCH.checked_add(d)
            };
            if let Some(t) = t {
                timestamp(t);
            }
        }
    }
}

/// Splits one SSE event into its name, optional id and parsed `data:` JSON,
/// checking the framing on the way: UTF-8, `field: value` lines, one blank line at the end.
fn parse_event(out: &[u8]) -> (String, Option<String>, serde_json::Value) {
    let text = std::str::from_utf8(out).expect("SSE output is UTF-8");
    let body = text
        .strip_suffix("\n\n")
        .expect("an event ends with a blank line");
    assert!(
        !body.contains("\n\n"),
        "one event, one blank line: {text:?}"
    );
    assert!(!body.contains('\r'), "no stray carriage return: {text:?}");
    let (mut name, mut id, mut data) = (None, None, None);
    for line in body.split('\n') {
        let (field, value) = line.split_once(": ").expect("field: value");
        let slot = match field {
            "event" => &mut name,
            "id" => &mut id,
            "data" => &mut data,
            other => panic!("unexpected SSE field {other:?} in {text:?}"),
        };
        assert!(slot.is_none(), "field {field} twice in {text:?}");
        *slot = Some(value.to_owned());
    }
    let data = data.expect("a data line");
    let json = serde_json::from_str(&data).expect("data is JSON");
    (name.expect("an event line"), id, json)
}

fn datagram(d: &Datagram) {
    let mut out = Vec::new();
    api::encode_event(&mut out, &Event::Datagram(d.clone()));
    let (name, id, data) = parse_event(&out);
    assert_eq!(name, "datagram");
    assert_eq!(id, Some(d.seq.to_string()));
    assert_eq!(
        data["binding_id"].as_str(),
        Some(d.binding.to_string().as_str())
    );
    let src: SocketAddr = data["src"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("src is a socket address");
    assert_eq!(src.ip(), d.src.ip());
    assert_eq!(src.port(), d.src.port());
    let payload = data["payload"]
        .as_str()
        .and_then(|s| STANDARD.decode(s).ok())
        .expect("payload is standard base64");
    assert_eq!(payload, d.payload);
    let at = data["received_at"].as_str().expect("received_at");
    assert_eq!(at, api::timestamp(d.received_at));
    timestamp(d.received_at);
}

/// A timestamp is RFC 3339, and exact (to the microsecond) inside the formatter's range.
fn timestamp(t: SystemTime) {
    let s = api::timestamp(t);
    let parsed = humantime::parse_rfc3339(&s).expect("timestamp is RFC 3339");
    let max = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    if t >= UNIX_EPOCH && t <= max {
        let micros = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0)
        };
        assert_eq!(micros(parsed), micros(t), "{s}");
    } else {
        assert!(parsed == UNIX_EPOCH || parsed >= max, "{s} clamps");
    }
}
