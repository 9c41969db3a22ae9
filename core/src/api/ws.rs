//! The WebSocket datagram channel (`GET /v1/udp/ws/{id}`): its binary and
//! text messages, I/O-free.
//!
//! Binary messages, big-endian:
//! - client → server, one datagram to send: `family: u8` (4 or 6) ·
//!   `address` (4 or 16 bytes) · `port: u16` · `payload` (the rest, may be empty);
//! - server → client, one received datagram: `seq: u64` · `family: u8` ·
//!   `address` · `port: u16` · `payload`.
//!
//! Text messages (server → client) are JSON notices: `lagged`, `send_error`
//! and `closed` ([`WsNotice`]). A `closed` notice is followed by a close
//! frame with [`close_code`]; a malformed client message is answered with a
//! close frame [`CLOSE_INVALID_PAYLOAD`] (1007) and nothing else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

use super::ErrorCode;
use crate::action::{CloseReason, Datagram};
use crate::id::Seq;

/// Close code for a normal end (the binding was unbound, expired, went idle).
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code when the server is shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a message type the channel does not take (text from the client).
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// Close code for a malformed client message (short header, bad family).
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code for a message larger than any datagram.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Bytes of a client → server header for a family: family, address, port.
const fn send_header_len(v6: bool) -> usize {
    1 + if v6 { 16 } else { 4 } + 2
}

/// Bytes before the address in a server → client message: the sequence number.
const SEQ_LEN: usize = 8;

/// The largest client message the channel takes: an IPv6 header and the
/// largest UDP payload. Larger ones are closed with [`CLOSE_TOO_BIG`].
pub const MAX_CLIENT_MESSAGE: usize = send_header_len(true) + 65_527;

/// A client message that is not a datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WsFrameError {
    /// Shorter than the header its family needs (or empty).
    #[error(
        "message of {len} bytes is shorter than the {needed}-byte header (family, address, port)"
    )]
    ShortHeader {
        /// The message's length.
        len: usize,
        /// The header's length.
        needed: usize,
    },
    /// The first byte is neither 4 nor 6.
    #[error("unknown address family {0} (expected 4 or 6)")]
    BadFamily(u8),
}

/// Decodes a client → server binary message into a destination and payload.
/// The payload shares `message`'s allocation.
pub fn decode_ws_send(message: Bytes) -> Result<(SocketAddr, Bytes), WsFrameError> {
    let (dest, header) = decode_addr(&message)?;
    Ok((dest, message.slice(header..)))
}

/// `family · address · port` at the start of `buf`, and how many bytes it took.
fn decode_addr(buf: &[u8]) -> Result<(SocketAddr, usize), WsFrameError> {
    let v6 = match buf.first() {
        None => {
            return Err(WsFrameError::ShortHeader {
                len: 0,
                needed: send_header_len(false),
            })
        }
        Some(4) => false,
        Some(6) => true,
        Some(&other) => return Err(WsFrameError::BadFamily(other)),
    };
    let needed = send_header_len(v6);
    let header = buf.get(..needed).ok_or(WsFrameError::ShortHeader {
        len: buf.len(),
        needed,
    })?;
    let (addr, port) = header[1..].split_at(needed - 3);
    let ip = match <[u8; 16]>::try_from(addr) {
        Ok(octets) => IpAddr::V6(Ipv6Addr::from(octets)),
        Err(_) => {
            let mut octets = [0u8; 4];
            octets.copy_from_slice(addr);
            IpAddr::V4(Ipv4Addr::from(octets))
        }
    };
    let port = u16::from_be_bytes([port[0], port[1]]);
    Ok((SocketAddr::new(ip, port), needed))
}

/// Appends `family · address · port`. An IPv4-mapped IPv6 address stays IPv6,
/// as the socket reported it.
fn encode_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Encodes a client → server message: a datagram for `dest`. For clients
/// (and tests); the server only decodes these.
pub fn encode_ws_send(dest: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(send_header_len(dest.is_ipv6()) + payload.len());
    encode_addr(&mut out, dest);
    out.extend_from_slice(payload);
    out
}

/// Encodes a server → client message: a received datagram.
pub fn encode_ws_datagram(d: &Datagram) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEQ_LEN + send_header_len(d.src.is_ipv6()) + d.payload.len());
    out.extend_from_slice(&d.seq.0.to_be_bytes());
    encode_addr(&mut out, d.src);
    out.extend_from_slice(&d.payload);
    out
}

/// A received datagram as a client reads it from a server → client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsDatagram {
    /// Its sequence number on the binding.
    pub seq: Seq,
    /// Who sent it.
    pub src: SocketAddr,
    /// Its bytes (sharing the message's allocation).
    pub payload: Bytes,
}

/// A server text message that is not a notice this version knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsNoticeError {
    /// Not JSON, or not one of the notices' shapes.
    #[error("malformed notice: {0}")]
    Malformed(String),
    /// An error code or close reason this version does not know.
    #[error("unknown error code or close reason {0:?}")]
    UnknownName(String),
}

/// Decodes a server → client binary message. For clients (and tests).
pub fn decode_ws_datagram(message: Bytes) -> Result<WsDatagram, WsFrameError> {
    let seq = message
        .get(..SEQ_LEN)
        .and_then(|b| <[u8; SEQ_LEN]>::try_from(b).ok())
        .ok_or(WsFrameError::ShortHeader {
            len: message.len(),
            needed: SEQ_LEN + send_header_len(false),
        })?;
    let (src, header) = decode_addr(&message[SEQ_LEN..]).map_err(|e| match e {
        WsFrameError::ShortHeader { len, needed } => WsFrameError::ShortHeader {
            len: len + SEQ_LEN,
            needed: needed + SEQ_LEN,
        },
        other => other,
    })?;
    Ok(WsDatagram {
        seq: Seq(u64::from_be_bytes(seq)),
        src,
        payload: message.slice(SEQ_LEN + header..),
    })
}

/// A text message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsNotice {
    /// `{"event":"lagged","missed":n}`: the client was too slow and missed `n` datagrams.
    Lagged {
        /// How many.
        missed: u64,
    },
    /// `{"event":"send_error","dest":"ip:port","error":"<code>","message":"…","count":n}`:
    /// `count` sends to `dest` in a row failed with the same code (a burst is
    /// coalesced into one notice).
    SendError {
        /// The destination.
        dest: SocketAddr,
        /// The code, as the HTTP API would answer it.
        error: ErrorCode,
        /// The first failure's message.
        message: String,
        /// How many consecutive failures this notice stands for (at least 1).
        count: u64,
    },
    /// `{"event":"closed","reason":"…"}`: the channel ends; a close frame follows.
    Closed(CloseReason),
}

impl WsNotice {
    /// The JSON text.
    pub fn encode(&self) -> String {
        let value = match self {
            WsNotice::Lagged { missed } => serde_json::json!({"event": "lagged", "missed": missed}),
            WsNotice::SendError {
                dest,
                error,
                message,
                count,
            } => serde_json::json!({
                "event": "send_error",
                "dest": dest.to_string(),
                "error": error.as_str(),
                "message": message,
                "count": count,
            }),
            WsNotice::Closed(reason) => {
                serde_json::json!({"event": "closed", "reason": reason.as_str()})
            }
        };
        value.to_string()
    }

    /// Decodes a server → client text message. For clients (and tests).
    pub fn decode(text: &str) -> Result<WsNotice, WsNoticeError> {
        #[derive(serde::Deserialize)]
        #[serde(tag = "event", rename_all = "snake_case")]
        enum Wire {
            Lagged {
                missed: u64,
            },
            SendError {
                dest: String,
                error: String,
                #[serde(default)]
                message: String,
                count: u64,
            },
            Closed {
                reason: String,
            },
        }
        let wire: Wire =
            serde_json::from_str(text).map_err(|e| WsNoticeError::Malformed(e.to_string()))?;
        Ok(match wire {
            Wire::Lagged { missed } => WsNotice::Lagged { missed },
            Wire::SendError {
                dest,
                error,
                message,
                count,
            } => WsNotice::SendError {
                dest: dest
                    .parse()
                    .map_err(|_| WsNoticeError::Malformed(format!("bad dest {dest:?}")))?,
                error: ErrorCode::from_name(&error).ok_or(WsNoticeError::UnknownName(error))?,
                message,
                count,
            },
            Wire::Closed { reason } => WsNotice::Closed(
                CloseReason::ALL
                    .into_iter()
                    .find(|r| r.as_str() == reason)
                    .ok_or(WsNoticeError::UnknownName(reason))?,
            ),
        })
    }

    /// Folds `other` into this notice if both are the same failure (same
    /// destination and code); returns whether it did.
    pub fn coalesce(&mut self, other: &WsNotice) -> bool {
        match (self, other) {
            (
                WsNotice::SendError {
                    dest, error, count, ..
                },
                WsNotice::SendError {
                    dest: d,
                    error: e,
                    count: c,
                    ..
                },
            ) if dest == d && error == e => {
                *count = count.saturating_add(*c);
                true
            }
            _ => false,
        }
    }
}

/// The close code that follows a `closed` notice.
pub const fn close_code(reason: CloseReason) -> u16 {
    match reason {
        CloseReason::Shutdown => CLOSE_GOING_AWAY,
        CloseReason::Expired
        | CloseReason::Unbound
        | CloseReason::Unsubscribed
        | CloseReason::Idle => CLOSE_NORMAL,
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn send_messages_decode_both_families_and_share_the_payload() {
        let v4: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let v6: SocketAddr = "[::1]:65535".parse().unwrap();
        for (dest, payload) in [(v4, &b"hello"[..]), (v6, &b""[..])] {
            let message = Bytes::from(encode_ws_send(dest, payload));
            let (d, p) = decode_ws_send(message.clone()).unwrap();
            assert_eq!((d, &p[..]), (dest, payload));
        }
        let raw = Bytes::from_static(&[4, 10, 0, 0, 1, 0x1f, 0x90, b'x']);
        assert_eq!(
            decode_ws_send(raw).unwrap(),
            ("10.0.0.1:8080".parse().unwrap(), Bytes::from_static(b"x"))
        );
    }

    #[test]
    fn short_headers_and_unknown_families_are_refused() {
        assert_eq!(
            decode_ws_send(Bytes::new()),
            Err(WsFrameError::ShortHeader { len: 0, needed: 7 })
        );
        assert_eq!(
            decode_ws_send(Bytes::from_static(&[4, 127, 0, 0, 1, 0])),
            Err(WsFrameError::ShortHeader { len: 6, needed: 7 })
        );
        assert_eq!(
            decode_ws_send(Bytes::from_static(&[6, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
            Err(WsFrameError::ShortHeader {
                len: 10,
                needed: 19
            })
        );
        assert_eq!(
            decode_ws_send(Bytes::from_static(&[5, 127, 0, 0, 1, 0, 9])),
            Err(WsFrameError::BadFamily(5))
        );
    }

    #[test]
    fn received_datagrams_round_trip_with_their_sequence_numbers() {
        let d = Datagram {
            binding: "1b4e28ba-2fa1-41d2-883f-0016d3cca427".parse().unwrap(),
            seq: Seq(0x0102_0304_0506_0708),
            src: "[::ffff:127.0.0.1]:9".parse().unwrap(),
            payload: Bytes::from_static(b"abc"),
            received_at: UNIX_EPOCH,
        };
        let bytes = encode_ws_datagram(&d);
        assert_eq!(&bytes[..9], &[1, 2, 3, 4, 5, 6, 7, 8, 6]);
        assert_eq!(bytes.len(), 8 + 19 + 3);
        let back = decode_ws_datagram(Bytes::from(bytes)).unwrap();
        assert_eq!(
            (back.seq, back.src, &back.payload[..]),
            (d.seq, d.src, &b"abc"[..])
        );
        assert_eq!(
            decode_ws_datagram(Bytes::from_static(&[0; 10])),
            Err(WsFrameError::BadFamily(0))
        );
        assert_eq!(
            decode_ws_datagram(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1, 4, 1])),
            Err(WsFrameError::ShortHeader {
                len: 10,
                needed: 15
            })
        );
    }

    #[test]
    fn notices_are_json_events() {
        let json = |n: &WsNotice| serde_json::from_str::<serde_json::Value>(&n.encode()).unwrap();
        assert_eq!(
            json(&WsNotice::Lagged { missed: 3 }),
            serde_json::json!({"event": "lagged", "missed": 3})
        );
        assert_eq!(
            json(&WsNotice::Closed(CloseReason::Expired)),
            serde_json::json!({"event": "closed", "reason": "expired"})
        );
        let v = json(&WsNotice::SendError {
            dest: "127.0.0.1:9".parse().unwrap(),
            error: ErrorCode::DestinationDenied,
            message: "denied \"x\"".into(),
            count: 1,
        });
        assert_eq!(v["event"], "send_error");
        assert_eq!(v["dest"], "127.0.0.1:9");
        assert_eq!(v["error"], "destination_denied");
        assert_eq!(v["message"], "denied \"x\"");
        assert_eq!(v["count"], 1);
    }

    #[test]
    fn notices_decode_what_they_encode() {
        let notices = [
            WsNotice::Lagged { missed: 7 },
            WsNotice::Closed(CloseReason::Shutdown),
            WsNotice::Closed(CloseReason::Idle),
            WsNotice::SendError {
                dest: "[::1]:53".parse().unwrap(),
                error: ErrorCode::DestinationUnreachable,
                message: "no route".into(),
                count: 3,
            },
        ];
        for n in notices {
            assert_eq!(WsNotice::decode(&n.encode()), Ok(n));
        }
        assert!(matches!(
            WsNotice::decode(r#"{"event":"closed","reason":"bored"}"#),
            Err(WsNoticeError::UnknownName(r)) if r == "bored"
        ));
        assert!(matches!(
            WsNotice::decode(r#"{"event":"lagged"}"#),
            Err(WsNoticeError::Malformed(_))
        ));
        assert!(matches!(
            WsNotice::decode("not json"),
            Err(WsNoticeError::Malformed(_))
        ));
    }

    #[test]
    fn a_burst_of_the_same_send_error_coalesces() {
        let error = |port: u16, code| WsNotice::SendError {
            dest: SocketAddr::from(([127, 0, 0, 1], port)),
            error: code,
            message: String::new(),
            count: 1,
        };
        let mut first = error(9, ErrorCode::DestinationUnreachable);
        assert!(first.coalesce(&error(9, ErrorCode::DestinationUnreachable)));
        assert!(!first.coalesce(&error(10, ErrorCode::DestinationUnreachable)));
        assert!(!first.coalesce(&error(9, ErrorCode::DestinationDenied)));
        assert!(!first.coalesce(&WsNotice::Lagged { missed: 1 }));
        assert!(matches!(first, WsNotice::SendError { count: 2, .. }));
    }

    #[test]
    fn close_codes_follow_the_reason() {
        assert_eq!(close_code(CloseReason::Shutdown), 1001);
        assert_eq!(close_code(CloseReason::Unbound), 1000);
        assert_eq!(close_code(CloseReason::Expired), 1000);
    }
}
