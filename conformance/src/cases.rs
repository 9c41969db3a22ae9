//! The conformance cases. Each takes a [`ServerFactory`], starts the servers
//! it needs, and panics (fails) on any deviation from the API contract.

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use porthole_driver::porthole_core::net::Network;
use serde_json::Value;

use crate::client::{Client, EventStream, Sse, SseEvent, Target, READ_TIMEOUT};
use crate::{ServerConfig, ServerFactory, TestServer, Token};

mod channel;
mod kernel;
mod openapi;
mod web;
pub use channel::*;
pub use kernel::*;
pub use openapi::*;
pub use web::*;

/// A server for one case, shut down when dropped.
struct Running {
    server: Option<Box<dyn TestServer>>,
    client: Client,
}

impl Running {
    fn start(factory: &dyn ServerFactory, configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig {
            listen: vec!["127.0.0.1:0".parse().expect("loopback address")],
            ..ServerConfig::default()
        };
        configure(&mut config);
        let server = factory.start(config);
        let client = Client::at(server.target());
        // Fetched now, while the server is fresh: every response is checked against it.
        client.openapi();
        Running {
            server: Some(server),
            client,
        }
    }

    fn default(factory: &dyn ServerFactory) -> Self {
        Running::start(factory, |_| {})
    }

    /// The TCP address; over a Unix socket, where a `Host` header's port
    /// means nothing, port 80 of loopback.
    fn addr(&self) -> SocketAddr {
        match self.client.target() {
            Target::Tcp(addr) => *addr,
            Target::Unix(_) => SocketAddr::from(([127, 0, 0, 1], 80)),
        }
    }

    fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }

    /// Binds with `body`, expecting 201; returns the binding.
    #[track_caller]
    fn bind(&self, body: &str) -> Binding {
        let info = self.client.post("/v1/udp/bind", body).expect(201);
        Binding::from_info(&info)
    }

    fn status(&self) -> Vec<Value> {
        let status = self.client.get("/v1/udp/status").expect(200);
        status["bindings"]
            .as_array()
            .expect("bindings is an array")
            .clone()
    }

    /// The status entry of `id`.
    fn binding_status(&self, id: &str) -> Option<Value> {
        self.status().into_iter().find(|b| b["id"] == id)
    }

    #[track_caller]
    fn stream(&self, id: &str) -> EventStream {
        self.stream_with(&format!("/v1/udp/recv/{id}"), &[])
    }

    #[track_caller]
    fn stream_with(&self, path: &str, headers: &[(&str, &str)]) -> EventStream {
        match self.client.stream(path, headers) {
            Ok(stream) => stream,
            Err(response) => panic!(
                "GET {path}: {} {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ),
        }
    }

    /// Waits until the binding's counters say `received` datagrams arrived.
    #[track_caller]
    fn await_received(&self, id: &str, received: u64) {
        wait_until("datagrams to reach the engine", || {
            self.binding_status(id)
                .is_some_and(|b| b["counters"]["received"].as_u64() == Some(received))
        });
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A binding as the bind reply describes it.
#[derive(Debug, Clone)]
struct Binding {
    id: String,
    addr: SocketAddr,
}

impl Binding {
    fn from_info(info: &Value) -> Self {
        let id = info["id"].as_str().expect("id").to_owned();
        let addr = info["local_addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("local_addr is ip:port");
        Binding { id, addr }
    }
}

/// A plain UDP socket standing for the remote side.
fn peer() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback peer");
    socket
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("peer timeout");
    socket
}

fn send_body(dest: SocketAddr, payload: &[u8]) -> String {
    format!(
        r#"{{"dest":"{dest}","payload":"{}"}}"#,
        STANDARD.encode(payload)
    )
}

fn payload_of(event: &SseEvent) -> Vec<u8> {
    let data = event.json();
    STANDARD
        .decode(data["payload"].as_str().expect("payload is a string"))
        .expect("payload is base64")
}

/// Polls `done` every 10 ms for up to [`READ_TIMEOUT`].
#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + READ_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh id in the binding id format that names no binding.
const UNKNOWN_ID: &str = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";

// ----- routes ------------------------------------------------------------------

/// `POST /v1/udp/bind` answers 201 with koi-udp's BindingInfo fields.
pub fn bind_answers_201_with_binding_info(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let response = server.client.post("/v1/udp/bind", "{}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    let info = response.expect(201);
    let id = info["id"].as_str().expect("id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let local: SocketAddr = info["local_addr"].as_str().unwrap().parse().unwrap();
    assert!(local.ip().is_loopback() && local.port() != 0);
    for field in ["created_at", "last_heartbeat", "expires_at"] {
        assert!(
            info[field].as_str().is_some_and(|t| t.ends_with('Z')),
            "{field}: {info}"
        );
    }
    assert_eq!(info["lease_secs"], 300);
    assert_eq!(info["allow_remote"], false);

    // An empty body means all defaults, as for koi-udp; leases are clamped.
    let info = server.client.post("/v1/udp/bind", "").expect(201);
    assert_eq!(info["lease_secs"], 300);
    let info = server
        .client
        .post("/v1/udp/bind", r#"{"lease_secs": 999999999}"#)
        .expect(201);
    assert_eq!(info["lease_secs"], 86_400);
}

/// `GET /v1/udp/status` lists every live binding, oldest first.
pub fn status_lists_live_bindings_oldest_first(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    assert!(server.status().is_empty());
    let a = server.bind("{}");
    let b = server.bind(r#"{"lease_secs": 60}"#);
    let ids: Vec<Value> = server.status().iter().map(|b| b["id"].clone()).collect();
    assert_eq!(
        ids,
        vec![Value::from(a.id.clone()), Value::from(b.id.clone())]
    );
    server
        .client
        .delete(&format!("/v1/udp/bind/{}", a.id))
        .expect(200);
    let ids: Vec<Value> = server.status().iter().map(|b| b["id"].clone()).collect();
    assert_eq!(ids, vec![Value::from(b.id)]);
}

/// `DELETE /v1/udp/bind/{id}` answers `{"unbound": id}` and the port is free at once.
pub fn unbind_answers_unbound_and_frees_the_port(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let reply = server
        .client
        .delete(&format!("/v1/udp/bind/{}", b.id))
        .expect(200);
    assert_eq!(reply["unbound"], b.id.as_str());
    UdpSocket::bind(b.addr).expect("the port is free once unbind answered");
    server
        .client
        .delete(&format!("/v1/udp/bind/{}", b.id))
        .assert_error(404, "not_found");
}

/// `POST /v1/udp/send/{id}` sends from the binding's port and answers `{"sent": n}`.
pub fn send_reaches_the_destination_and_answers_bytes_sent(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let peer = peer();
    let dest = peer.local_addr().unwrap();
    let reply = server
        .client
        .post(
            &format!("/v1/udp/send/{}", b.id),
            &send_body(dest, b"hello"),
        )
        .expect(200);
    assert_eq!(reply["sent"], 5);
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).expect("the datagram arrives");
    assert_eq!((&buf[..n], from), (&b"hello"[..], b.addr));

    // Unpadded base64 is accepted too.
    let body = format!(
        r#"{{"dest":"{dest}","payload":"{}"}}"#,
        STANDARD_NO_PAD.encode(b"hi")
    );
    let reply = server
        .client
        .post(&format!("/v1/udp/send/{}", b.id), &body)
        .expect(200);
    assert_eq!(reply["sent"], 2);
    let (n, _) = peer.recv_from(&mut buf).expect("the datagram arrives");
    assert_eq!(&buf[..n], b"hi");
    let counters = &server.binding_status(&b.id).unwrap()["counters"];
    assert_eq!(
        (counters["sent"].as_u64(), counters["sent_bytes"].as_u64()),
        (Some(2), Some(7))
    );
}

/// `GET /v1/udp/recv/{id}` is an SSE stream of `event: datagram` with `id: <seq>`
/// and koi-udp's data fields.
pub fn recv_streams_datagrams_as_server_sent_events(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let mut stream = server.stream(&b.id);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("cache-control"), Some("no-cache"));
    let peer = peer();
    peer.send_to(b"one", b.addr).unwrap();
    peer.send_to(b"two", b.addr).unwrap();
    for (seq, payload) in [(1, &b"one"[..]), (2, &b"two"[..])] {
        let event = stream.expect_event("datagram");
        assert_eq!(event.seq(), seq);
        let data = event.json();
        assert_eq!(data["binding_id"], b.id.as_str());
        assert_eq!(data["src"], peer.local_addr().unwrap().to_string());
        assert!(data["received_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert_eq!(payload_of(&event), payload);
    }
}

/// The quickstart: two bindings, one sends to the other through Porthole.
pub fn two_bindings_talk_to_each_other(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let a = server.bind("{}");
    let b = server.bind("{}");
    let mut stream = server.stream(&b.id);
    server
        .client
        .post(
            &format!("/v1/udp/send/{}", a.id),
            &send_body(b.addr, b"ping"),
        )
        .expect(200);
    let event = stream.expect_event("datagram");
    assert_eq!(event.json()["src"], a.addr.to_string());
    assert_eq!(payload_of(&event), b"ping");
}

/// `PUT` (koi-udp) and `POST` heartbeats renew the lease; a body may change its length.
pub fn heartbeat_renews_the_lease_with_put_and_post(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let info = server
        .client
        .post("/v1/udp/bind", r#"{"lease_secs": 30}"#)
        .expect(201);
    let b = Binding::from_info(&info);
    let first_expiry = info["expires_at"].as_str().unwrap().to_owned();
    thread::sleep(Duration::from_millis(20));
    let renewed = server
        .client
        .put(&format!("/v1/udp/heartbeat/{}", b.id), "")
        .expect(200);
    assert_eq!(renewed["renewed"], b.id.as_str());
    // Same format, so the strings order like the times.
    let second_expiry = renewed["expires_at"].as_str().unwrap().to_owned();
    assert!(
        second_expiry > first_expiry,
        "{second_expiry} > {first_expiry}"
    );
    let renewed = server
        .client
        .post(
            &format!("/v1/udp/heartbeat/{}", b.id),
            r#"{"lease_secs": 60}"#,
        )
        .expect(200);
    assert_eq!(renewed["lease_secs"], 60);
    let status = server.binding_status(&b.id).unwrap();
    assert_eq!(status["lease_secs"], 60);
    assert!(status["last_heartbeat"].as_str().unwrap() > info["last_heartbeat"].as_str().unwrap());
}

// ----- error statuses ------------------------------------------------------------

/// Bad JSON, bad base64, bad addresses and bad parameters are 400, with a code each.
pub fn malformed_requests_are_400(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let c = &server.client;
    c.post("/v1/udp/bind", "{")
        .assert_error(400, "invalid_json");
    c.post("/v1/udp/bind", r#"{"port": "x"}"#)
        .assert_error(400, "invalid_json");
    c.post("/v1/udp/bind", r#"{"port": 70000}"#)
        .assert_error(400, "invalid_json");
    c.post("/v1/udp/bind", r#"{"addr": "nope"}"#)
        .assert_error(400, "invalid_address");
    let b = server.bind("{}");
    let send = format!("/v1/udp/send/{}", b.id);
    c.post(&send, "[]").assert_error(400, "invalid_json");
    c.post(&send, r#"{"dest": "127.0.0.1:9"}"#)
        .assert_error(400, "invalid_json");
    c.post(&send, r#"{"dest": "127.0.0.1:9", "payload": "!!!"}"#)
        .assert_error(400, "invalid_base64");
    c.post(&send, r#"{"dest": "nope", "payload": ""}"#)
        .assert_error(400, "invalid_address");
    c.post(&send, r#"{"dest": "127.0.0.1", "payload": ""}"#)
        .assert_error(400, "invalid_address");
    c.post(&format!("/v1/udp/heartbeat/{}", b.id), "{")
        .assert_error(400, "invalid_json");
    let recv = format!("/v1/udp/recv/{}", b.id);
    let response = c
        .stream(&format!("{recv}?idle_for=soon"), &[])
        .expect_err("idle_for must be a number");
    response.assert_error(400, "invalid_parameter");
    let response = c
        .stream(&recv, &[("Last-Event-ID", "latest")])
        .expect_err("Last-Event-ID must be a number");
    response.assert_error(400, "invalid_parameter");
    // Nothing of that reached the binding.
    assert_eq!(server.binding_status(&b.id).unwrap()["counters"]["sent"], 0);
}

/// With a token, every `/v1` route needs it (reads too); `Authorization: Bearer`
/// and koi-udp's `X-Koi-Token` both carry it.
pub fn token_guards_every_v1_route(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| {
        c.http.token = Some(Token::new("s3cret").expect("token"));
    });
    let anonymous = &server.client;
    let wrong = server
        .client
        .clone()
        .with_header("Authorization", "Bearer s3cre7");
    let bearer = server
        .client
        .clone()
        .with_header("Authorization", "Bearer s3cret");
    let koi = server.client.clone().with_header("X-Koi-Token", "s3cret");

    let b = Binding::from_info(&bearer.post("/v1/udp/bind", "{}").expect(201));
    let routes = [
        ("POST", "/v1/udp/bind".to_owned()),
        ("GET", "/v1/udp/status".to_owned()),
        ("GET", format!("/v1/udp/recv/{}", b.id)),
        ("POST", format!("/v1/udp/send/{}", b.id)),
        ("PUT", format!("/v1/udp/heartbeat/{}", b.id)),
        ("DELETE", format!("/v1/udp/bind/{}", b.id)),
        ("GET", "/v1/udp/unknown".to_owned()),
    ];
    for client in [anonymous, &wrong] {
        for (method, path) in &routes {
            let response = client.request(method, path, &[], Some(b"{}"));
            response.assert_error(401, "unauthorized");
            assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        }
    }
    assert_eq!(
        koi.get("/v1/udp/status").expect(200)["bindings"][0]["id"],
        b.id.as_str()
    );
    let stream = koi.stream(&format!("/v1/udp/recv/{}", b.id), &[]);
    assert!(stream.is_ok(), "X-Koi-Token opens a stream");
    koi.put(&format!("/v1/udp/heartbeat/{}", b.id), "")
        .expect(200);
    bearer.delete(&format!("/v1/udp/bind/{}", b.id)).expect(200);
    // Outside /v1 there is nothing to guard.
    anonymous.get("/").assert_error(404, "route_not_found");
}

/// Refusals by policy are 403 with the reason's code, and nothing is sent.
pub fn policy_refusals_are_403(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| {
        c.engine.port_range = 40_000..=40_010;
        c.engine.dest_deny = vec!["127.0.0.2/32".parse::<Network>().expect("network")];
    });
    let c = &server.client;
    c.post("/v1/udp/bind", r#"{"port": 39999}"#)
        .assert_error(403, "port_not_allowed");
    c.post("/v1/udp/bind", r#"{"addr": "0.0.0.0", "port": 40001}"#)
        .assert_error(403, "remote_not_allowed");
    c.post("/v1/udp/bind", r#"{"port": 40001, "allow_remote": true}"#)
        .assert_error(403, "remote_not_allowed");
    // Find a free port in the range (others may use some).
    let b = (40_000..=40_010)
        .find_map(|port| {
            let response = c.post("/v1/udp/bind", &format!(r#"{{"port": {port}}}"#));
            (response.status == 201).then(|| Binding::from_info(&response.json()))
        })
        .expect("a free port in 40000-40010");
    let send = format!("/v1/udp/send/{}", b.id);
    c.post(&send, &send_body("0.0.0.0:9".parse().unwrap(), b"x"))
        .assert_error(403, "destination_forbidden");
    c.post(&send, &send_body("127.0.0.2:9".parse().unwrap(), b"x"))
        .assert_error(403, "destination_denied");
    let counters = &server.binding_status(&b.id).unwrap()["counters"];
    assert_eq!(
        (counters["sent"].as_u64(), counters["send_errors"].as_u64()),
        (Some(0), Some(0))
    );
}

/// An id that names no binding is 404 `not_found` on every route that takes one.
pub fn unknown_bindings_are_404(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let c = &server.client;
    for id in [UNKNOWN_ID, "not-an-id"] {
        c.delete(&format!("/v1/udp/bind/{id}"))
            .assert_error(404, "not_found");
        c.post(
            &format!("/v1/udp/send/{id}"),
            &send_body("127.0.0.1:9".parse().unwrap(), b"x"),
        )
        .assert_error(404, "not_found");
        c.put(&format!("/v1/udp/heartbeat/{id}"), "")
            .assert_error(404, "not_found");
        c.stream(&format!("/v1/udp/recv/{id}"), &[])
            .expect_err("no stream for an unknown binding")
            .assert_error(404, "not_found");
    }
}

/// Unknown paths are 404 `route_not_found`; known paths with the wrong method are
/// 405 with an `Allow` header.
pub fn unknown_routes_are_404_and_wrong_methods_405(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let c = &server.client;
    for path in [
        "/",
        "/v1",
        "/v1/udp/nope",
        "/v1/udp/bind/",
        "/v2/udp/status",
    ] {
        c.get(path).assert_error(404, "route_not_found");
    }
    let cases = [
        ("GET", "/v1/udp/bind", "POST, OPTIONS"),
        ("POST", "/v1/udp/status", "GET, HEAD, OPTIONS"),
        ("GET", "/v1/udp/bind/x", "DELETE, OPTIONS"),
        ("DELETE", "/v1/udp/send/x", "POST, OPTIONS"),
        ("POST", "/v1/udp/recv/x", "GET, HEAD, OPTIONS"),
        ("GET", "/v1/udp/heartbeat/x", "PUT, POST, OPTIONS"),
        ("DELETE", "/metrics", "GET, HEAD, OPTIONS"),
    ];
    for (method, path, allowed) in cases {
        let response = c.request(method, path, &[], None);
        response.assert_error(405, "method_not_allowed");
        assert_eq!(response.header("allow"), Some(allowed), "{method} {path}");
    }
}

/// Binding a port that is already bound is 409 `address_in_use`.
pub fn binding_a_port_in_use_is_409(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    server
        .client
        .post("/v1/udp/bind", &format!(r#"{{"port": {port}}}"#))
        .assert_error(409, "address_in_use");
    let b = server.bind("{}");
    server
        .client
        .post("/v1/udp/bind", &format!(r#"{{"port": {}}}"#, b.addr.port()))
        .assert_error(409, "address_in_use");
}

/// A payload larger than UDP allows is 413 `payload_too_large`; a body larger than
/// the limit is 413 `body_too_large`, whether announced or streamed.
pub fn oversized_payloads_and_bodies_are_413(factory: &dyn ServerFactory) {
    const LIMIT: usize = 128 * 1024;
    let server = Running::start(factory, |c| c.http.max_request_body = LIMIT);
    let c = &server.client;
    let b = server.bind("{}");
    let send = format!("/v1/udp/send/{}", b.id);
    let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
    c.post(&send, &send_body(dest, &vec![7u8; 65_508]))
        .assert_error(413, "payload_too_large");

    // Announced: refused from the headers, without reading the body.
    let mut head = c.head("POST", &send, &[]);
    head.push_str(&format!("Content-Length: {}\r\n\r\n", 1 << 30));
    c.exchange(head.as_bytes())
        .assert_error(413, "body_too_large");

    // Streamed: refused once it passes the limit.
    let mut raw = c.head("POST", &send, &[]).into_bytes();
    raw.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..(2 * LIMIT / chunk.len()) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    c.exchange(&raw).assert_error(413, "body_too_large");

    // The server is fine afterwards.
    server.status();
}

/// The server refuses a binding beyond `max_bindings` with 429 `too_many_bindings`.
pub fn max_bindings_is_429(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| c.engine.max_bindings = 2);
    let a = server.bind("{}");
    server.bind("{}");
    server
        .client
        .post("/v1/udp/bind", "{}")
        .assert_error(429, "too_many_bindings");
    server
        .client
        .delete(&format!("/v1/udp/bind/{}", a.id))
        .expect(200);
    server.bind("{}");
}

/// A binding refuses a stream beyond `max_subscribers_per_binding` with 429.
pub fn max_subscribers_is_429(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| c.engine.max_subscribers_per_binding = 1);
    let b = server.bind("{}");
    let first = server.stream(&b.id);
    server
        .client
        .stream(&format!("/v1/udp/recv/{}", b.id), &[])
        .expect_err("one stream only")
        .assert_error(429, "too_many_subscribers");
    drop(first);
}

// ----- leases --------------------------------------------------------------------

/// A 1 s lease ends at its deadline, not before: its streams get `closed` with
/// `expired`, the binding is gone, and the port is free again.
pub fn lease_expires_on_time_and_frees_the_port(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let asked = Instant::now();
    let b = server.bind(r#"{"lease_secs": 1}"#);
    let mut stream = server.stream(&b.id);
    let closed = stream.expect_event("closed");
    let elapsed = asked.elapsed();
    assert_eq!(closed.json()["reason"], "expired");
    assert!(
        elapsed >= Duration::from_secs(1),
        "expired early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "expired late: {elapsed:?}"
    );
    assert_eq!(stream.next_event(), None, "the stream ends after closed");
    server
        .client
        .put(&format!("/v1/udp/heartbeat/{}", b.id), "")
        .assert_error(404, "not_found");
    assert!(server.binding_status(&b.id).is_none());
    drop(UdpSocket::bind(b.addr).expect("the port is free once the lease ended"));
    let again = server.bind(&format!(r#"{{"port": {}}}"#, b.addr.port()));
    assert_eq!(again.addr, b.addr);
}

// ----- streams -------------------------------------------------------------------

/// `Last-Event-ID: n` replays the datagrams after `n` from the ring, then goes live.
pub fn last_event_id_resumes_after_that_event(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let peer = peer();
    let mut first = server.stream(&b.id);
    for i in 1..=5u8 {
        peer.send_to(&[i], b.addr).unwrap();
    }
    for i in 1..=5u64 {
        assert_eq!(first.expect_event("datagram").seq(), i);
    }
    first.disconnect();
    let path = format!("/v1/udp/recv/{}", b.id);
    let mut resumed = server.stream_with(&path, &[("Last-Event-ID", "3")]);
    for (seq, byte) in [(4, 4u8), (5, 5)] {
        let event = resumed.expect_event("datagram");
        assert_eq!((event.seq(), payload_of(&event)), (seq, vec![byte]));
    }
    peer.send_to(&[6], b.addr).unwrap();
    let event = resumed.expect_event("datagram");
    assert_eq!((event.seq(), payload_of(&event)), (6, vec![6]));
}

/// Datagrams that arrive while nobody listens wait in the ring for the first stream.
pub fn datagrams_wait_while_nobody_subscribes(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let peer = peer();
    for word in [&b"a"[..], b"b", b"c"] {
        peer.send_to(word, b.addr).unwrap();
    }
    server.await_received(&b.id, 3);
    assert_eq!(
        server.binding_status(&b.id).unwrap()["counters"]["pending"],
        3
    );
    let mut stream = server.stream(&b.id);
    for (seq, word) in [(1, &b"a"[..]), (2, b"b"), (3, b"c")] {
        let event = stream.expect_event("datagram");
        assert_eq!((event.seq(), payload_of(&event)), (seq, word.to_vec()));
    }
    wait_until("pending to drain", || {
        server.binding_status(&b.id).unwrap()["counters"]["pending"] == 0
    });
}

/// Every stream of a binding gets every datagram.
pub fn two_subscribers_each_get_every_datagram(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let mut one = server.stream(&b.id);
    let mut two = server.stream(&b.id);
    assert_eq!(server.binding_status(&b.id).unwrap()["subscribers"], 2);
    let peer = peer();
    for i in 1..=3u8 {
        peer.send_to(&[i], b.addr).unwrap();
    }
    for stream in [&mut one, &mut two] {
        for i in 1..=3u8 {
            let event = stream.expect_event("datagram");
            assert_eq!((event.seq(), payload_of(&event)), (u64::from(i), vec![i]));
        }
    }
}

/// Unbinding ends every stream with `event: closed` `{"reason": "unbound"}`.
pub fn unbind_ends_streams_with_closed_unbound(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let mut one = server.stream(&b.id);
    let mut two = server.stream(&b.id);
    server
        .client
        .delete(&format!("/v1/udp/bind/{}", b.id))
        .expect(200);
    for stream in [&mut one, &mut two] {
        assert_eq!(stream.expect_event("closed").json()["reason"], "unbound");
        assert_eq!(stream.next_event(), None);
    }
}

/// `idle_for=N` ends a stream after N quiet seconds (`closed`, reason `idle`);
/// the binding stays.
pub fn idle_for_closes_a_quiet_stream(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let opened = Instant::now();
    let mut stream = server.stream_with(&format!("/v1/udp/recv/{}?idle_for=1", b.id), &[]);
    let closed = stream.expect_event("closed");
    let elapsed = opened.elapsed();
    assert_eq!(closed.json()["reason"], "idle");
    assert!(
        elapsed >= Duration::from_secs(1),
        "closed early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(4), "closed late: {elapsed:?}");
    assert_eq!(stream.next_event(), None);
    assert!(server.binding_status(&b.id).is_some());
    // idle_for=0 means never, as in koi-udp.
    let mut forever = server.stream_with(&format!("/v1/udp/recv/{}?idle_for=0", b.id), &[]);
    assert!(forever.next_within(Duration::from_millis(1500)).is_err());
}

/// A quiet stream carries keep-alive comments.
pub fn keep_alive_comments_flow_on_quiet_streams(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| c.http.keep_alive = Duration::from_millis(200));
    let b = server.bind("{}");
    let mut stream = server.stream(&b.id);
    for _ in 0..2 {
        match stream.next_within(Duration::from_secs(5)) {
            Ok(Some(Sse::Comment(text))) => assert_eq!(text, "keep-alive"),
            other => panic!("expected a keep-alive comment, got {other:?}"),
        }
    }
}

/// Sends 60,000-byte datagrams numbered from 1 to `b` until the deliveries
/// of a reader that does not read stop moving (its socket and hyper's
/// buffers are full) and `margin` more passed (so that they left the ring);
/// `fast` sees each as it is sent. Returns how many were sent.
fn send_until_the_slow_one_stalls(
    server: &Running,
    b: &Binding,
    margin: u64,
    mut fast: impl FnMut(u64),
) -> u64 {
    let peer = peer();
    let mut payload = vec![0u8; 60_000];
    let mut sent: u64 = 0;
    let mut last_slow = u64::MAX;
    let mut stalled_at = None;
    let started = Instant::now();
    loop {
        sent += 1;
        payload[..8].copy_from_slice(&sent.to_be_bytes());
        peer.send_to(&payload, b.addr).unwrap();
        fast(sent);
        if sent % 8 == 0 {
            let counters = &server.binding_status(&b.id).unwrap()["counters"];
            let slow_got = counters["deliveries"].as_u64().unwrap() - sent;
            if slow_got == last_slow {
                let since = *stalled_at.get_or_insert(sent);
                if sent - since > margin {
                    return sent;
                }
            } else {
                stalled_at = None;
            }
            last_slow = slow_got;
        }
        assert!(
            sent < 5_000 && started.elapsed() < Duration::from_secs(60),
            "the slow reader never stalled"
        );
    }
}

/// A client that stops reading runs out of credit and, once it reads again, gets
/// `event: lagged` with the number it missed; a client that keeps reading on the
/// same binding sees every datagram and no lag.
pub fn slow_subscriber_lags_while_another_keeps_up(factory: &dyn ServerFactory) {
    const RING: usize = 8;
    const WINDOW: u32 = 4;
    let server = Running::start(factory, |c| {
        c.engine.ring_datagrams = RING;
        c.engine.ring_bytes = 16 * 1024 * 1024;
        c.engine.delivery_window = WINDOW;
    });
    let b = server.bind("{}");
    let mut fast = server.stream(&b.id);
    let mut slow = server.stream(&b.id);

    // Send until the slow stream's deliveries stall (its socket and hyper's
    // buffers are full) and enough datagrams passed to leave the ring.
    let sent =
        send_until_the_slow_one_stalls(&server, &b, RING as u64 + u64::from(WINDOW), |sent| {
            let event = fast.expect_event("datagram");
            assert_eq!(
                event.seq(),
                sent,
                "the fast stream gets every datagram in order"
            );
        });

    // Now the slow client reads: somewhere in its backlog is the lag notice.
    let mut seen = 0;
    let missed = loop {
        let event = slow.next_event().expect("the slow stream is still open");
        match event.event.as_str() {
            "lagged" => break event.json()["missed"].as_u64().expect("missed is a number"),
            "datagram" => seen += 1,
            other => panic!("unexpected event {other}"),
        }
        assert!(seen <= sent, "no lagged notice in the whole backlog");
    };
    assert!(missed > 0);
    // The fast stream still has nothing but what it already read.
    assert!(matches!(
        fast.next_within(Duration::from_millis(200)),
        Err(_) | Ok(Some(Sse::Comment(_)))
    ));
    let counters = &server.binding_status(&b.id).unwrap()["counters"];
    assert!(counters["missed"].as_u64().unwrap() >= missed);
}

// ----- robustness ----------------------------------------------------------------

/// Clients that vanish mid-request, or mid-stream, leave the server serving and
/// free their subscriber slot.
pub fn disconnecting_clients_leave_the_server_healthy(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| c.engine.max_subscribers_per_binding = 1);
    let b = server.bind("{}");
    let head = server
        .client
        .head("POST", &format!("/v1/udp/send/{}", b.id), &[]);
    let partials: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"POST /v1/udp/bi".to_vec(),
        head.clone().into_bytes(),
        format!("{head}Content-Length: 100\r\n\r\n{{\"dest\":").into_bytes(),
        format!("{head}Transfer-Encoding: chunked\r\n\r\n10\r\n{{\"de").into_bytes(),
    ];
    for partial in &partials {
        let mut conn = server.client.connect().unwrap();
        std::io::Write::write_all(&mut conn, partial).unwrap();
        drop(conn);
    }
    // A complete request whose client leaves before the answer.
    let mut conn = server.client.connect().unwrap();
    let request = format!("{}\r\n", server.client.head("GET", "/v1/udp/status", &[]));
    std::io::Write::write_all(&mut conn, request.as_bytes()).unwrap();
    drop(conn);

    // Streams whose clients vanish give their slot back (max one subscriber).
    for _ in 0..3 {
        let stream = server.stream(&b.id);
        stream.disconnect();
        wait_until("the subscriber to be released", || {
            server.binding_status(&b.id).unwrap()["subscribers"] == 0
        });
    }
    let mut stream = server.stream(&b.id);
    peer().send_to(b"still here", b.addr).unwrap();
    assert_eq!(payload_of(&stream.expect_event("datagram")), b"still here");
    server.bind("{}");
}

/// Shutdown ends every stream with `closed` `shutdown`, closes every socket, and
/// stops accepting connections.
pub fn shutdown_closes_every_socket_and_ends_every_stream(factory: &dyn ServerFactory) {
    let mut server = Running::default(factory);
    let bindings: Vec<Binding> = (0..3).map(|_| server.bind("{}")).collect();
    let mut streams: Vec<EventStream> = bindings.iter().map(|b| server.stream(&b.id)).collect();
    let client = server.client.clone();
    server.shutdown();
    for stream in &mut streams {
        assert_eq!(stream.expect_event("closed").json()["reason"], "shutdown");
        assert_eq!(stream.next_event(), None);
    }
    for b in &bindings {
        drop(UdpSocket::bind(b.addr).expect("every port is free after shutdown"));
    }
    assert!(client.connect().is_err(), "no longer accepting");
}

/// Bindings on `::1` work; sending across address families is 400.
pub fn ipv6_loopback_bindings_work(factory: &dyn ServerFactory) {
    let Ok(v6_peer) = UdpSocket::bind("[::1]:0") else {
        // No IPv6 loopback on this host: nothing to check.
        return;
    };
    v6_peer.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let server = Running::default(factory);
    let b = server.bind(r#"{"addr": "::1"}"#);
    assert!(b.addr.is_ipv6());
    let send = format!("/v1/udp/send/{}", b.id);
    server
        .client
        .post(&send, &send_body(v6_peer.local_addr().unwrap(), b"six"))
        .expect(200);
    let mut buf = [0u8; 16];
    let (n, from) = v6_peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"six"[..], b.addr));
    server
        .client
        .post(&send, &send_body("127.0.0.1:9".parse().unwrap(), b"x"))
        .assert_error(400, "address_family_mismatch");
}

// ----- operations ----------------------------------------------------------------

/// The samples of a `/metrics` scrape, parsed by a parser of the Prometheus
/// text format.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    #[track_caller]
    fn of(client: &Client) -> Self {
        let response = client.get("/metrics");
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
        let text = String::from_utf8(response.body).expect("UTF-8");
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("the text format parses"))
    }

    /// The value of the counter or gauge `name` with exactly `labels`.
    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let sample = self
            .0
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                    && s.labels.len() == labels.len()
            })
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
        match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{name} is not a counter or gauge: {other:?}"),
        }
    }
}

/// `/healthz` answers `200 ok` without a token, as koi's daemon does (its CLI
/// probes it), while `/v1` and `/metrics` need the token.
pub fn healthz_answers_without_a_token_while_v1_requires_one(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| {
        c.http.token = Some(Token::new("s3cret").expect("token"));
    });
    let anonymous = &server.client;
    let health = anonymous.get("/healthz");
    assert_eq!((health.status, &health.body[..]), (200, &b"ok\n"[..]));
    assert_eq!(anonymous.get("/readyz").status, 200);
    anonymous
        .get("/v1/udp/status")
        .assert_error(401, "unauthorized");
    anonymous.get("/metrics").assert_error(401, "unauthorized");
    let bearer = anonymous
        .clone()
        .with_header("Authorization", "Bearer s3cret");
    bearer.get("/v1/udp/status").expect(200);
    Scrape::of(&bearer);
    anonymous
        .post("/healthz", "")
        .assert_error(405, "method_not_allowed");
}

/// `HEAD` on every `GET` route answers the `GET`'s status and headers without a
/// body; on a stream it subscribes to nothing.
pub fn head_answers_every_get_route_without_a_body(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let peer = peer();
    peer.send_to(b"waits", b.addr).unwrap();
    server.await_received(&b.id, 1);
    let recv = format!("/v1/udp/recv/{}", b.id);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/udp/status",
        recv.as_str(),
    ] {
        let get_type = match server.client.request("HEAD", path, &[], None) {
            head if path == recv => {
                assert_eq!(head.status, 200);
                assert_eq!(head.header("content-type"), Some("text/event-stream"));
                assert!(head.body.is_empty());
                continue;
            }
            head => {
                assert_eq!(head.status, 200, "HEAD {path}");
                assert!(head.body.is_empty(), "HEAD {path} has no body");
                head.header("content-type").map(str::to_owned)
            }
        };
        let get = server.client.get(path);
        assert_eq!(get.header("content-type"), get_type.as_deref(), "{path}");
    }
    // The HEAD took nothing from the ring: the datagram still waits.
    let status = server.binding_status(&b.id).unwrap();
    assert_eq!(
        (
            status["counters"]["pending"].as_u64(),
            status["subscribers"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let unknown = server
        .client
        .request("HEAD", &format!("/v1/udp/recv/{UNKNOWN_ID}"), &[], None);
    assert_eq!(unknown.status, 404, "HEAD of an unknown stream");
}

/// `/readyz` is 200 while serving and 503 once shutdown began, while open
/// requests still finish; `/healthz` stays 200 until the listener closes.
pub fn readyz_is_503_while_the_server_drains(factory: &dyn ServerFactory) {
    let mut server = Running::default(factory);
    assert_eq!(server.client.get("/readyz").status, 200);
    let b = server.bind("{}");
    // A request in flight: the server waits for its body (the interim
    // `100 Continue` says the handler has it), which holds the drain open.
    let body = send_body(peer().local_addr().unwrap(), b"late");
    let mut head = server
        .client
        .head("POST", &format!("/v1/udp/send/{}", b.id), &[]);
    head.push_str(&format!(
        "Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let mut in_flight = server.client.begin(head.as_bytes());
    assert_eq!(in_flight.response().expect("100 Continue").status, 100);

    let client = server.client.clone();
    let running = server.server.take().expect("running");
    let shutdown = thread::spawn(move || running.shutdown());
    // Every poll is answered, the one accepted just before the drain too.
    wait_until("/readyz to turn 503", || {
        client.get("/readyz").status == 503
    });
    assert_eq!(client.get("/healthz").status, 200);
    client
        .post("/v1/udp/bind", "{}")
        .assert_error(503, "shutting_down");

    in_flight.send(body.as_bytes());
    let answered = in_flight
        .response()
        .expect("the request in flight is answered");
    assert!(answered.status >= 200, "{answered:?}");
    shutdown.join().expect("shutdown completes");
    assert!(client.connect().is_err(), "no longer accepting");
}

/// `/metrics` counts what the engine counts: datagrams received, dropped by
/// reason, delivered and sent, bindings by close reason, HTTP requests.
pub fn metrics_follow_datagrams_received_dropped_and_sent(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| c.engine.ring_datagrams = 2);
    let before = Scrape::of(&server.client);
    assert_eq!(before.value("porthole_bindings", &[]), 0.0);
    assert_eq!(before.value("porthole_datagrams_received_total", &[]), 0.0);

    let b = server.bind("{}");
    let peer = peer();
    // Nobody subscribes: the ring keeps 2 and drops the 3 older ones.
    for i in 0..5u8 {
        peer.send_to(&[i; 10], b.addr).unwrap();
    }
    server.await_received(&b.id, 5);
    server
        .client
        .post(
            &format!("/v1/udp/send/{}", b.id),
            &send_body(peer.local_addr().unwrap(), b"abc"),
        )
        .expect(200);
    let mut stream = server.stream(&b.id);
    stream.expect_event("datagram");
    stream.expect_event("datagram");

    let after = Scrape::of(&server.client);
    assert_eq!(after.value("porthole_bindings", &[]), 1.0);
    assert_eq!(after.value("porthole_subscribers", &[]), 1.0);
    assert_eq!(after.value("porthole_datagrams_received_total", &[]), 5.0);
    assert_eq!(after.value("porthole_received_bytes_total", &[]), 50.0);
    assert_eq!(
        after.value(
            "porthole_datagrams_dropped_total",
            &[("reason", "overflow")]
        ),
        3.0
    );
    assert_eq!(after.value("porthole_datagrams_delivered_total", &[]), 2.0);
    assert_eq!(after.value("porthole_datagrams_sent_total", &[]), 1.0);
    assert_eq!(after.value("porthole_sent_bytes_total", &[]), 3.0);
    let sends = [
        ("method", "POST"),
        ("route", "/v1/udp/send/:id"),
        ("status", "2xx"),
    ];
    assert_eq!(after.value("porthole_http_requests_total", &sends), 1.0);

    server
        .client
        .put(&format!("/v1/udp/heartbeat/{}", b.id), "")
        .expect(200);
    server
        .client
        .delete(&format!("/v1/udp/bind/{}", b.id))
        .expect(200);
    let closed = Scrape::of(&server.client);
    assert_eq!(closed.value("porthole_bindings", &[]), 0.0);
    assert_eq!(closed.value("porthole_leases_renewed_total", &[]), 1.0);
    assert_eq!(
        closed.value("porthole_bindings_closed_total", &[("reason", "unbound")]),
        1.0
    );
    assert_eq!(
        closed.value("porthole_bindings_closed_total", &[("reason", "expired")]),
        0.0
    );
    // Counters survive the binding that moved them.
    assert_eq!(closed.value("porthole_datagrams_received_total", &[]), 5.0);
}
