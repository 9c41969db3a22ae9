//! `GET /openapi.json` describes every route, and every route answers as it
//! says. (Every response of every other case is checked against it too, by
//! the client; this case makes sure each documented operation is exercised,
//! with its success and its error statuses.)

use std::collections::BTreeSet;

use super::{send_body, Running, UNKNOWN_ID};
use crate::client::Client;
use crate::{ServerFactory, Token};

/// The request body a documented operation is exercised with.
fn body_for(method: &str, template: &str, dest: &str) -> Option<String> {
    match (method, template) {
        ("POST", "/v1/udp/bind") => Some(r#"{"lease_secs": 60}"#.to_owned()),
        ("POST", "/v1/udp/send/{id}") => Some(send_body(
            dest.parse().expect("a socket address"),
            b"openapi",
        )),
        ("PUT" | "POST", "/v1/udp/heartbeat/{id}") => Some(r#"{"lease_secs": 30}"#.to_owned()),
        _ => None,
    }
}

/// How a documented operation is exercised.
#[derive(Clone, Copy)]
enum Kind {
    Plain,
    /// An event stream: opened and dropped.
    Stream,
    /// A WebSocket: the handshake, then the connection is dropped.
    Upgrade,
}

/// The batch form of a body, where the operation has one: one datagram that
/// goes and one that the policy refuses (its result is an error in place).
fn batch_for(method: &str, template: &str, dest: &str) -> Option<String> {
    (method == "POST" && template == "/v1/udp/send/{id}").then(|| {
        format!(
            r#"{{"datagrams": [{{"dest": "{dest}", "payload": "aGk="}},
                {{"dest": "224.0.0.1:9", "payload": ""}}]}}"#
        )
    })
}

/// Sends `method path`; the client checks the answer against the document.
/// Returns the status.
fn exercise(client: &Client, method: &str, path: &str, kind: Kind, body: Option<&str>) -> u16 {
    if let (Kind::Upgrade, "GET") = (kind, method) {
        let mut head = client.head(method, path, &[]);
        head.push_str(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        let mut exchange = client.begin(head.as_bytes());
        return exchange
            .response()
            .expect("an answer to the handshake")
            .status;
    }
    if let (Kind::Stream, "GET") = (kind, method) {
        return match client.stream(path, &[]) {
            Ok(stream) => {
                stream.disconnect();
                200
            }
            Err(response) => response.status,
        };
    }
    client
        .request(method, path, &[], body.map(str::as_bytes))
        .status
}

/// Every operation the document lists answers with a documented status and
/// body: once as a client that does things right, once with an unknown id
/// or a malformed body, and once without the token the server wants.
pub fn every_documented_operation_answers_as_documented(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| {
        c.http.token = Some(Token::new("s3cret").expect("token"));
    });
    let anonymous = &server.client;
    let client = anonymous
        .clone()
        .with_header("Authorization", "Bearer s3cret");
    let doc = client.openapi();
    let operations = doc.operations();
    let templates: BTreeSet<&str> = operations.iter().map(|(_, t)| t.as_str()).collect();
    for route in [
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
    ] {
        assert!(templates.contains(route), "{route} is not documented");
    }
    let mut statuses: BTreeSet<u16> = BTreeSet::new();
    // DELETE last: it closes the binding the others use.
    let mut ordered = operations.clone();
    ordered.sort_by_key(|(method, _)| method == "DELETE");
    let binding = client.post("/v1/udp/bind", "{}").expect(201);
    let id = binding["id"].as_str().expect("id").to_owned();
    let dest = binding["local_addr"].as_str().expect("addr").to_owned();
    for (method, template) in &ordered {
        let kind = if doc.streams(method, template) {
            Kind::Stream
        } else if doc.answers(method, template, 101) {
            Kind::Upgrade
        } else {
            Kind::Plain
        };
        let body = body_for(method, template, &dest);
        let path = template.replace("{id}", &id);
        let status = exercise(&client, method, &path, kind, body.as_deref());
        assert!(status < 400, "{method} {path}: {status}");
        statuses.insert(status);
        if let Some(batch) = batch_for(method, template, &dest) {
            let status = exercise(&client, method, &path, kind, Some(&batch));
            assert_eq!(status, 200, "{method} {path} (batch)");
        }
        // The same with an id that names nothing, a body that is not JSON,
        // and no token.
        if template.contains("{id}") && method != "OPTIONS" {
            let path = template.replace("{id}", UNKNOWN_ID);
            statuses.insert(exercise(&client, method, &path, kind, body.as_deref()));
        }
        if body.is_some() {
            statuses.insert(exercise(&client, method, &path, kind, Some("{")));
        }
        if template.starts_with("/v1/") || template == "/metrics" {
            statuses.insert(exercise(anonymous, method, &path, kind, body.as_deref()));
        }
    }
    for class in [101, 200, 201, 204, 400, 401, 404] {
        assert!(statuses.contains(&class), "no {class} among {statuses:?}");
    }
}
