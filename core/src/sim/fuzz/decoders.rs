//! The `decoders` target: every parser of client-controlled input fed arbitrary bytes.
//!
//! The first byte picks the decoder, the rest is its input, so one corpus covers
//! them all and libFuzzer can splice inputs across decoders. Beyond "never panics",
//! each decoder's successful output must survive a round trip through the form
//! the API writes it in: what we accept, we can also say back, and it means the
//! same thing.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::api::ws::{decode_ws_send, encode_ws_send};
use crate::api::{
    self, decode_bind, decode_heartbeat, decode_send, decode_send_body, parse_binding_id,
    parse_destination, parse_last_event_id, parse_recv_query, ApiError, RequestError, SendBody,
    MAX_BATCH_DATAGRAMS,
};
use crate::net::Network;
use crate::{BindingId, Seq};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;

/// Which decoder an input is for (its first byte, modulo the count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// `POST /v1/udp/bind` body.
    Bind,
    /// `POST /v1/udp/send/{id}` body.
    Send,
    /// `PUT|POST /v1/udp/heartbeat/{id}` body.
    Heartbeat,
    /// A binding id path segment.
    BindingId,
    /// The `Last-Event-ID` header.
    LastEventId,
    /// The query string of `GET /v1/udp/recv/{id}`.
    RecvQuery,
    /// A destination `ip:port`.
    Destination,
    /// A sequence number.
    Seq,
    /// A CIDR network (server config: allow/deny lists).
    Network,
    /// A WebSocket channel's client message (a datagram to send).
    WsSend,
    /// `POST /v1/udp/send/{id}` body, single or batch.
    SendBody,
}

impl Decoder {
    /// Every decoder, in selector order.
    pub const ALL: [Decoder; 11] = [
        Decoder::Bind,
        Decoder::Send,
        Decoder::Heartbeat,
        Decoder::BindingId,
        Decoder::LastEventId,
        Decoder::RecvQuery,
        Decoder::Destination,
        Decoder::Seq,
        Decoder::Network,
        Decoder::WsSend,
        Decoder::SendBody,
    ];
}

/// Runs one input: selector byte, then the decoder's input.
pub fn run(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let decoder = Decoder::ALL[usize::from(selector) % Decoder::ALL.len()];
    decode(decoder, input);
}

/// Feeds `input` to `decoder` and checks the properties of what it returns.
pub fn decode(decoder: Decoder, input: &[u8]) {
    // Path segments, query strings and header values reach the decoders as
    // `&str` after the HTTP layer; lossy conversion keeps every input useful.
    let text = String::from_utf8_lossy(input);
    match decoder {
        Decoder::Bind => bind(input),
        Decoder::Send => send(input),
        Decoder::Heartbeat => heartbeat(input),
        Decoder::BindingId => binding_id(&text),
        Decoder::LastEventId => last_event_id(input),
        Decoder::RecvQuery => recv_query(&text),
        Decoder::Destination => destination(&text),
        Decoder::Seq => seq(&text),
        Decoder::Network => network(&text),
        Decoder::WsSend => ws_send(input),
        Decoder::SendBody => send_body(input),
    }
}

/// A decode error is always a client error (4xx), never a server error.
fn assert_client_error(e: &RequestError) {
    let status = e.code().http_status();
    assert!((400..500).contains(&status), "{e:?} answered with {status}");
}

fn bind(body: &[u8]) {
    match decode_bind(body) {
        Ok(params) => {
            // Written back in the documented body shape, it decodes to the same bind.
            let again = serde_json::json!({
                "port": params.addr.port(),
                "addr": params.addr.ip().to_string(),
                "lease_secs": params.lease_secs,
                "allow_remote": params.allow_remote,
                "renew_on_traffic": params.renew_on_traffic,
            });
            let decoded = decode_bind(again.to_string().as_bytes());
            assert_eq!(decoded.as_ref(), Ok(&params), "bind body {again}");
        }
        Err(e) => assert_client_error(&e),
    }
}

fn send(body: &[u8]) {
    match decode_send(body) {
        Ok((dest, payload)) => {
            let again = serde_json::json!({
                "dest": dest.to_string(),
                "payload": STANDARD.encode(&payload),
            });
            let decoded = decode_send(again.to_string().as_bytes());
            assert_eq!(decoded, Ok((dest, payload)), "send body {again}");
        }
        Err(e) => assert_client_error(&e),
    }
}

fn heartbeat(body: &[u8]) {
    match decode_heartbeat(body) {
        Ok(lease) => {
            let again = serde_json::json!({ "lease_secs": lease });
            let decoded = decode_heartbeat(again.to_string().as_bytes());
            assert_eq!(decoded, Ok(lease), "heartbeat body {again}");
        }
        Err(e) => assert_client_error(&e),
    }
}

fn binding_id(s: &str) {
    let parsed = parse_binding_id(s);
    // The API's parser and `FromStr` agree.
    assert_eq!(parsed.as_ref().ok(), BindingId::from_str(s).ok().as_ref());
    match parsed {
        Ok(id) => {
            // Display is the canonical (lowercase) form of what was parsed.
            let shown = id.to_string();
            assert_eq!(shown, s.to_ascii_lowercase());
            assert_eq!(shown.parse::<BindingId>(), Ok(id));
            assert_eq!(BindingId::from_bytes(*id.as_bytes()), Some(id));
        }
        // An id that cannot exist names no binding: 404, as for an expired one.
        Err(e) => assert_eq!(e, RequestError::UnknownBinding),
    }
}

fn last_event_id(value: &[u8]) {
    match parse_last_event_id(value) {
        Ok(seq) => {
            assert_eq!(parse_last_event_id(seq.to_string().as_bytes()), Ok(seq));
            // Only digits (and surrounding whitespace) were accepted.
            let s = std::str::from_utf8(value).expect("accepted a non-UTF-8 Last-Event-ID");
            assert!(s.trim().bytes().all(|c| c.is_ascii_digit()), "{s:?}");
        }
        Err(e) => assert_client_error(&e),
    }
}

fn recv_query(query: &str) {
    match parse_recv_query(Some(query)) {
        Ok(q) => {
            if let Some(idle) = q.idle_for {
                assert!(idle.as_secs() > 0, "idle_for=0 means never");
                let again = format!("idle_for={}", idle.as_secs());
                assert_eq!(parse_recv_query(Some(&again)), Ok(q));
            }
        }
        Err(e) => assert_client_error(&e),
    }
}

/// The part of a socket address the API writes out (`Display` drops the IPv6 flow label).
fn shown(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(mut v6) => {
            v6.set_flowinfo(0);
            SocketAddr::V6(v6)
        }
    }
}

fn destination(s: &str) {
    match parse_destination(s) {
        Ok(addr) => {
            assert_eq!(parse_destination(&addr.to_string()), Ok(shown(addr)));
        }
        Err(e) => assert_client_error(&e),
    }
}

fn seq(s: &str) {
    if let Ok(seq) = s.parse::<Seq>() {
        assert_eq!(seq.to_string().parse::<Seq>(), Ok(seq));
        assert_eq!(api::parse_last_event_id(s.as_bytes()), Ok(seq));
    }
}

fn network(s: &str) {
    let Ok(net) = s.parse::<Network>() else {
        return;
    };
    // Display round-trips, and the network contains the address it was written with.
    let shown = net.to_string();
    assert_eq!(
        shown.parse::<Network>(),
        Ok(net),
        "{s:?} shown as {shown:?}"
    );
    let addr = s.split_once('/').map_or(s, |(addr, _)| addr);
    if let Ok(ip) = addr.parse::<IpAddr>() {
        assert!(net.contains(ip), "{net} does not contain {ip}");
    }
}

fn ws_send(message: &[u8]) {
    // A refused message closes the channel (1007); an accepted one is exactly
    // the bytes a client writes for that destination and payload.
    if let Ok((dest, payload)) = decode_ws_send(Bytes::copy_from_slice(message)) {
        assert_eq!(encode_ws_send(dest, &payload), message, "ws message");
    }
}

fn send_body(body: &[u8]) {
    match decode_send_body(body) {
        Ok(SendBody::One { dest, payload }) => {
            assert_eq!(decode_send(body), Ok((dest, payload)), "the koi form");
        }
        Ok(SendBody::Batch(entries)) => {
            assert!(entries.len() <= MAX_BATCH_DATAGRAMS);
            for entry in entries {
                match entry {
                    Ok((dest, payload)) => {
                        let again = serde_json::json!({
                            "datagrams": [{"dest": dest.to_string(), "payload": STANDARD.encode(&payload)}],
                        });
                        let decoded = decode_send_body(again.to_string().as_bytes());
                        assert_eq!(
                            decoded,
                            Ok(SendBody::Batch(vec![Ok((dest, payload))])),
                            "batch entry {again}"
                        );
                    }
                    Err(e) => assert_client_error(&e),
                }
            }
        }
        Err(e) => assert_client_error(&e),
    }
}
