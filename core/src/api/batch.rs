//! Batch send: `POST /v1/udp/send/{id}` with `{"datagrams": [{dest, payload}, …]}`,
//! answered with one result per datagram, in order.
//!
//! The body is told apart from koi-udp's single form (`{dest, payload}`) by
//! its `datagrams` field, in the same parse, so the single form costs nothing more.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::SendRequest;
use super::{decode_payload, json_object, parse_destination, JsonResponse, RequestError};
use super::{ApiError, ErrorCode};
use crate::error::SendError;

/// Most datagrams one batch may carry; more are refused whole with
/// `413 too_many_datagrams` (the body limit, `--max-body`, applies too).
pub const MAX_BATCH_DATAGRAMS: usize = 1024;

/// A decoded `POST /v1/udp/send/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendBody {
    /// koi-udp's form: one datagram, answered `{"sent": n}` or an error status.
    One {
        /// Where to.
        dest: SocketAddr,
        /// What.
        payload: Bytes,
    },
    /// A batch, in order. An entry that does not decode keeps its place with
    /// its error, so the results line up with the request.
    Batch(Vec<Result<(SocketAddr, Bytes), RequestError>>),
}

#[derive(Deserialize)]
struct SendOrBatch {
    #[serde(default)]
    dest: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    datagrams: Option<Vec<BatchEntry>>,
}

/// One datagram of a batch. Each is decoded on its own: one without a
/// field, or with a bad address or payload, gets its error in its place
/// among the results, and the others go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchEntry {
    /// Destination `ip:port` (`[v6]:port` for IPv6).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(examples("127.0.0.1:9000")))]
    pub dest: Option<String>,
    /// The datagram, standard base64 (padding optional).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(examples("aGVsbG8=")))]
    pub payload: Option<String>,
}

fn missing(field: &str) -> RequestError {
    RequestError::InvalidJson(format!("missing field `{field}`"))
}

fn decode_one(
    dest: Option<&str>,
    payload: Option<&str>,
) -> Result<(SocketAddr, Bytes), RequestError> {
    let dest = parse_destination(dest.ok_or_else(|| missing("dest"))?)?;
    let payload = decode_payload(payload.ok_or_else(|| missing("payload"))?)?;
    Ok((dest, payload))
}

/// Decodes a send body: koi-udp's `{dest, payload}` or a batch
/// `{"datagrams": [{dest, payload}, …]}` of at most [`MAX_BATCH_DATAGRAMS`].
pub fn decode_send_body(body: &[u8]) -> Result<SendBody, RequestError> {
    let req: SendOrBatch = json_object(body)?;
    match req.datagrams {
        None => {
            let (dest, payload) = decode_one(req.dest.as_deref(), req.payload.as_deref())?;
            Ok(SendBody::One { dest, payload })
        }
        Some(_) if req.dest.is_some() || req.payload.is_some() => Err(RequestError::InvalidJson(
            "a send body has either `dest` and `payload` or `datagrams`, not both".to_owned(),
        )),
        Some(entries) if entries.len() > MAX_BATCH_DATAGRAMS => {
            Err(RequestError::TooManyDatagrams {
                count: entries.len(),
                max: MAX_BATCH_DATAGRAMS,
            })
        }
        Some(entries) => Ok(SendBody::Batch(
            entries
                .iter()
                .map(|e| decode_one(e.dest.as_deref(), e.payload.as_deref()))
                .collect(),
        )),
    }
}

/// Why one datagram of a batch was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchEntryError {
    /// The entry did not decode.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The engine (policy, limits) or the socket refused it.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// The batch form of a `POST /v1/udp/send/{id}` body, as documented. The
/// decoder ([`decode_send_body`]) reads it and [`SendRequest`] in one parse
/// (its entries are [`BatchEntry`]s); the tests check that both types'
/// values decode to their form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchSendRequest {
    /// The datagrams, sent in order (at most [`MAX_BATCH_DATAGRAMS`]; more:
    /// `413 too_many_datagrams`).
    #[cfg_attr(feature = "openapi", schema(max_items = 1024))]
    pub datagrams: Vec<BatchEntry>,
}

/// The answer to a batch send: one result per datagram, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResultsBody {
    /// One per datagram of the request, in its order.
    pub results: Vec<BatchResult>,
}

/// What became of one datagram of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BatchResult {
    /// Sent: its length in bytes.
    Sent {
        /// Bytes sent.
        sent: usize,
    },
    /// Not sent: the error a single send would have answered with.
    Failed {
        /// The code.
        error: ErrorCode,
        /// What went wrong, for a person.
        message: String,
    },
}

/// `200 {"results": [{"sent": n} | {"error": code, "message": text}, …]}`,
/// one result per datagram, in the request's order.
pub fn encode_batch_results(results: &[Result<usize, BatchEntryError>]) -> JsonResponse {
    let results = results
        .iter()
        .map(|r| match r {
            Ok(sent) => BatchResult::Sent { sent: *sent },
            Err(e) => BatchResult::Failed {
                error: e.code(),
                message: e.to_string(),
            },
        })
        .collect();
    JsonResponse::ok(200, &BatchResultsBody { results })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_koi_form_is_one_datagram() {
        assert_eq!(
            decode_send_body(br#"{"dest":"127.0.0.1:9","payload":"aGk="}"#),
            Ok(SendBody::One {
                dest: "127.0.0.1:9".parse().unwrap(),
                payload: Bytes::from_static(b"hi"),
            })
        );
        assert_eq!(
            decode_send_body(br#"{"dest":"127.0.0.1:9"}"#),
            Err(RequestError::InvalidJson("missing field `payload`".into()))
        );
        assert!(matches!(
            decode_send_body(br#"{"dest":"x","payload":""}"#),
            Err(RequestError::InvalidAddress(_))
        ));
    }

    #[test]
    fn a_batch_keeps_bad_entries_in_place() {
        let body = br#"{"datagrams":[
            {"dest":"127.0.0.1:9","payload":"aGk="},
            {"dest":"nowhere","payload":""},
            {"dest":"[::1]:9","payload":"!!"},
            {"payload":""},
            {"dest":"[::1]:10","payload":""}]}"#;
        let Ok(SendBody::Batch(entries)) = decode_send_body(body) else {
            panic!("not a batch");
        };
        assert_eq!(entries.len(), 5);
        assert_eq!(
            entries[0],
            Ok(("127.0.0.1:9".parse().unwrap(), Bytes::from_static(b"hi")))
        );
        assert!(matches!(entries[1], Err(RequestError::InvalidAddress(_))));
        assert!(matches!(entries[2], Err(RequestError::InvalidBase64(_))));
        assert_eq!(entries[3], Err(missing("dest")));
        assert_eq!(entries[4], Ok(("[::1]:10".parse().unwrap(), Bytes::new())));
        assert_eq!(
            decode_send_body(br#"{"datagrams":[]}"#),
            Ok(SendBody::Batch(vec![]))
        );
    }

    #[test]
    fn batches_are_bounded_and_unambiguous() {
        let entry = r#"{"dest":"127.0.0.1:9","payload":""}"#;
        let body = |n: usize| format!(r#"{{"datagrams":[{}]}}"#, vec![entry; n].join(","));
        assert!(matches!(
            decode_send_body(body(MAX_BATCH_DATAGRAMS).as_bytes()),
            Ok(SendBody::Batch(v)) if v.len() == MAX_BATCH_DATAGRAMS
        ));
        let too_many = decode_send_body(body(MAX_BATCH_DATAGRAMS + 1).as_bytes()).unwrap_err();
        assert_eq!(JsonResponse::from_error(&too_many).status, 413);
        assert_eq!(too_many.code(), ErrorCode::TooManyDatagrams);
        assert!(matches!(
            decode_send_body(br#"{"dest":"127.0.0.1:9","payload":"","datagrams":[]}"#),
            Err(RequestError::InvalidJson(_))
        ));
        assert!(matches!(
            decode_send_body(br#"{"datagrams":[5]}"#),
            Err(RequestError::InvalidJson(_))
        ));
    }

    #[test]
    fn the_documented_request_types_decode_to_their_forms() {
        let one = super::super::SendRequest {
            dest: "[::1]:9".into(),
            payload: "aGk=".into(),
        };
        let body = serde_json::to_vec(&one).unwrap();
        assert!(matches!(decode_send_body(&body), Ok(SendBody::One { .. })));
        let entry = BatchEntry {
            dest: Some(one.dest),
            payload: Some(one.payload),
        };
        let batch = BatchSendRequest {
            datagrams: vec![entry.clone(), entry, BatchEntry::default()],
        };
        let body = serde_json::to_vec(&batch).unwrap();
        let Ok(SendBody::Batch(entries)) = decode_send_body(&body) else {
            panic!("not a batch");
        };
        assert!(entries[0].is_ok() && entries[1].is_ok() && entries[2].is_err());
        assert!(matches!(
            decode_send_body(br#"["127.0.0.1:9", "aGk="]"#),
            Err(RequestError::InvalidJson(_))
        ));
    }

    #[test]
    fn results_line_up_with_the_datagrams() {
        let r = encode_batch_results(&[
            Ok(2),
            Err(BatchEntryError::Send(SendError::Denied(
                "10.0.0.1:9".parse().unwrap(),
            ))),
            Err(BatchEntryError::Request(RequestError::InvalidBase64(
                "x".into(),
            ))),
        ]);
        assert_eq!(r.status, 200);
        let typed: BatchResultsBody = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(typed.results[0], BatchResult::Sent { sent: 2 });
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["results"][0], serde_json::json!({"sent": 2}));
        assert_eq!(v["results"][1]["error"], "destination_denied");
        assert!(v["results"][1]["message"]
            .as_str()
            .unwrap()
            .contains("10.0.0.1:9"));
        assert_eq!(v["results"][2]["error"], "invalid_base64");
    }
}
