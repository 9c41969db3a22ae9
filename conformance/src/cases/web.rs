//! The web boundary (DESIGN.md §5): CORS for allowed pages, refusals for
//! other origins and foreign `Host`s, stream tickets for browsers, strict
//! routes, truthful errors and bounded memory.

use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::{wait_until, Binding, Running};
use crate::client::{Client, Response};
use crate::{ServerFactory, Token};

const PAGE: &str = "http://localhost:3000";
const EVIL: &str = "http://evil.example";
const TOKEN: &str = "s3cret";

fn with_token(factory: &dyn ServerFactory) -> Running {
    Running::start(factory, |c| {
        c.http.token = Some(Token::new(TOKEN).expect("token"));
    })
}

fn bearer(client: &Client) -> Client {
    client
        .clone()
        .with_header("Authorization", &format!("Bearer {TOKEN}"))
}

/// A preflight as a browser sends it before a JSON POST with the token.
fn preflight(client: &Client, path: &str, origin: &str) -> Response {
    client.request(
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
        None,
    )
}

/// A request with a `Host` of our choosing (the client sends the address otherwise).
fn with_host(client: &Client, method: &str, path: &str, host: &str) -> Response {
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{{}}");
    client.exchange(raw.as_bytes())
}

#[track_caller]
fn assert_cors(response: &Response, origin: &str) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin),
        "{response:?}"
    );
    assert_eq!(response.header("vary"), Some("Origin"));
}

/// An allowed page's preflight is answered 204 before auth, listing what the
/// API needs; its requests get `Access-Control-Allow-Origin`.
pub fn preflight_from_an_allowed_origin_is_answered_before_auth(factory: &dyn ServerFactory) {
    for server in [Running::default(factory), with_token(factory)] {
        for path in ["/v1/udp/bind", "/v1/udp/status", "/v1/udp/recv/x/ticket"] {
            let response = preflight(&server.client, path, PAGE);
            assert_eq!(response.status, 204, "{path}: {response:?}");
            assert_cors(&response, PAGE);
            let methods = response
                .header("access-control-allow-methods")
                .expect("methods");
            for method in ["GET", "POST", "PUT", "DELETE"] {
                assert!(methods.contains(method), "{methods}");
            }
            let headers = response
                .header("access-control-allow-headers")
                .expect("headers");
            for header in [
                "Authorization",
                "Content-Type",
                "Last-Event-ID",
                "X-Koi-Token",
            ] {
                assert!(headers.contains(header), "{headers}");
            }
            assert!(response.header("access-control-max-age").is_some());
        }
        let client = bearer(&server.client);
        let response = client.request("GET", "/v1/udp/status", &[("Origin", PAGE)], None);
        assert_eq!(response.status, 200);
        assert_cors(&response, PAGE);
        // Errors carry the headers too, so the page can read why.
        let response = server
            .client
            .request("GET", "/v1/udp/nothing", &[("Origin", PAGE)], None);
        assert_eq!(response.header("access-control-allow-origin"), Some(PAGE));
    }
}

/// A page from another origin gets 403 for its preflight and for the
/// "simple" `text/plain` POST that needs none, and creates nothing, token or not.
pub fn requests_from_a_refused_origin_are_403_and_change_nothing(factory: &dyn ServerFactory) {
    for server in [Running::default(factory), with_token(factory)] {
        let client = bearer(&server.client);
        let response = preflight(&server.client, "/v1/udp/bind", EVIL);
        response.assert_error(403, "origin_not_allowed");
        assert_eq!(response.header("access-control-allow-origin"), None);
        for origin in [EVIL, "http://localhost.evil.example", "null"] {
            let response = client.request(
                "POST",
                "/v1/udp/bind",
                &[("Origin", origin), ("Content-Type", "text/plain")],
                Some(br#"{"port": 0}"#),
            );
            response.assert_error(403, "origin_not_allowed");
        }
        assert!(
            client.get("/v1/udp/status").expect(200)["bindings"]
                .as_array()
                .expect("bindings")
                .is_empty(),
            "a refused request created a binding"
        );
    }
    // Listing origins replaces the loopback default.
    let server = Running::start(factory, |c| {
        c.http.allowed_origins =
            porthole_driver::AllowedOrigins::List(vec!["https://app.example.com"
                .parse()
                .expect("origin")]);
    });
    let c = &server.client;
    let response = c.request(
        "GET",
        "/v1/udp/status",
        &[("Origin", "https://app.example.com")],
        None,
    );
    assert_eq!(response.status, 200);
    assert_cors(&response, "https://app.example.com");
    c.request("GET", "/v1/udp/status", &[("Origin", PAGE)], None)
        .assert_error(403, "origin_not_allowed");
}

/// A `Host` that names a DNS name (a rebinding attack) is refused; IP
/// literals, `localhost` and `--allow-host` names work.
pub fn foreign_hosts_are_403_and_ip_literals_work(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let c = &server.client;
    let port = server.addr().port();
    for host in [format!("evil.example:{port}"), "attacker.test".to_owned()] {
        with_host(c, "POST", "/v1/udp/bind", &host).assert_error(403, "host_not_allowed");
    }
    assert!(
        server.status().is_empty(),
        "a refused request created a binding"
    );
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
    ] {
        assert_eq!(
            with_host(c, "GET", "/v1/udp/status", &host).status,
            200,
            "{host}"
        );
    }
    let server = Running::start(factory, |c| {
        c.http.allowed_hosts = vec!["porthole.internal".to_owned()];
    });
    assert_eq!(
        with_host(
            &server.client,
            "GET",
            "/v1/udp/status",
            "porthole.internal:80"
        )
        .status,
        200
    );
}

/// A ticket, asked for with the token, opens one stream of its binding
/// without the token; it is single-use, bound to its binding, and expires.
pub fn stream_tickets_open_one_stream_and_expire(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| {
        c.http.token = Some(Token::new(TOKEN).expect("token"));
        c.engine.ticket_lifetime = Duration::from_secs(1);
    });
    let client = bearer(&server.client);
    let anonymous = &server.client;
    let b = Binding::from_info(&client.post("/v1/udp/bind", "{}").expect(201));
    let other = Binding::from_info(&client.post("/v1/udp/bind", "{}").expect(201));
    let ticket_path = format!("/v1/udp/recv/{}/ticket", b.id);
    anonymous
        .post(&ticket_path, "")
        .assert_error(401, "unauthorized");
    let issued = client.post(&ticket_path, "").expect(200);
    let ticket = issued["ticket"].as_str().expect("ticket").to_owned();
    assert_eq!(issued["binding_id"], b.id.as_str());
    assert_eq!(issued["expires_in_secs"], 1);
    assert!(issued["expires_at"].is_string());

    // Another binding's ticket opens nothing.
    anonymous
        .stream(&format!("/v1/udp/recv/{}?ticket={ticket}", other.id), &[])
        .expect_err("a ticket is for its own binding")
        .assert_error(401, "unauthorized");
    // It was used up by that attempt: single use means single attempt.
    let ticket = client.post(&ticket_path, "").expect(200)["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let path = format!("/v1/udp/recv/{}?ticket={ticket}", b.id);
    let mut stream = anonymous
        .stream(&path, &[("Origin", PAGE)])
        .unwrap_or_else(|r| panic!("the ticket opens the stream: {r:?}"));
    assert_eq!(stream.header("access-control-allow-origin"), Some(PAGE));
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
    peer.send_to(b"via ticket", b.addr).expect("send");
    let event = stream.expect_event("datagram");
    assert_eq!(event.json()["binding_id"], b.id.as_str());
    anonymous
        .stream(&path, &[])
        .expect_err("a ticket opens one stream")
        .assert_error(401, "unauthorized");
    // A ticket that is not one, and no ticket at all.
    anonymous
        .stream(&format!("/v1/udp/recv/{}?ticket=nope", b.id), &[])
        .expect_err("not a ticket")
        .assert_error(401, "unauthorized");
    anonymous
        .stream(&format!("/v1/udp/recv/{}", b.id), &[])
        .expect_err("no token, no ticket")
        .assert_error(401, "unauthorized");
    // A ticket only stands in for the token on the stream.
    anonymous
        .get(&format!("/v1/udp/status?ticket={ticket}"))
        .assert_error(401, "unauthorized");

    let late = client.post(&ticket_path, "").expect(200)["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    thread::sleep(Duration::from_millis(1_200));
    anonymous
        .stream(&format!("/v1/udp/recv/{}?ticket={late}", b.id), &[])
        .expect_err("expired")
        .assert_error(401, "unauthorized");
}

/// A path matches a route exactly: extra segments, dot segments and encoded
/// names are 404, and create nothing.
pub fn paths_with_extra_segments_are_404(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let c = &server.client;
    let b = server.bind("{}");
    for (method, path) in [
        ("GET", "/v1/udp/status/a/b".to_owned()),
        ("GET", "/v1/udp/status/".to_owned()),
        ("POST", "/v1/udp/bind/x/y".to_owned()),
        ("POST", "/v1/udp/bind/../../etc/passwd".to_owned()),
        ("POST", "/v1/udp/%62ind".to_owned()),
        ("GET", format!("/v1/udp/recv/{}/x", b.id)),
        ("POST", format!("/v1/udp/send/{}/", b.id)),
        ("DELETE", format!("/v1/udp/bind/{}/extra", b.id)),
    ] {
        c.request(method, &path, &[], Some(b"{}"))
            .assert_error(404, "route_not_found");
    }
    let status = server.status();
    assert_eq!(status.len(), 1, "only the one binding: {status:?}");
    // An id segment that is not an id names no binding.
    c.delete(&format!("/v1/udp/bind/{}%2Fx", b.id))
        .assert_error(404, "not_found");
}

/// Sends whose destination the binding's socket cannot reach are 400
/// `address_family_mismatch`, decided before anything is sent.
pub fn address_family_mismatches_are_400(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let c = &server.client;
    let v4 = server.bind(r#"{"addr": "127.0.0.1"}"#);
    let v6 = server.bind(r#"{"addr": "::1"}"#);
    let mapped = server.bind(r#"{"addr": "::ffff:127.0.0.1"}"#);
    for (from, dest) in [
        (&v4, format!("[::1]:{}", v6.addr.port())),
        (&v6, format!("127.0.0.1:{}", v4.addr.port())),
        (&v6, format!("[::ffff:127.0.0.1]:{}", v4.addr.port())),
        (&mapped, format!("[::1]:{}", v6.addr.port())),
    ] {
        let body = format!(r#"{{"dest": "{dest}", "payload": "aGk="}}"#);
        c.post(&format!("/v1/udp/send/{}", from.id), &body)
            .assert_error(400, "address_family_mismatch");
    }
    // The mapped binding reaches IPv4 through mapped addresses.
    let body = format!(
        r#"{{"dest": "[::ffff:127.0.0.1]:{}", "payload": "aGk="}}"#,
        v4.addr.port()
    );
    c.post(&format!("/v1/udp/send/{}", mapped.id), &body)
        .expect(200);
    for b in [&v4, &v6, &mapped] {
        let counters = &server.binding_status(&b.id).expect("live")["counters"];
        assert_eq!(counters["send_errors"], 0, "{counters}");
        assert_eq!(counters["icmp_errors"], 0, "{counters}");
    }
}

/// Tiny datagrams kept on many unsubscribed bindings next to large ones keep
/// the engine's count of bytes held within the cap; what is dropped is counted.
pub fn memory_held_stays_within_the_cap(factory: &dyn ServerFactory) {
    const CAP: u64 = 512 * 1024;
    let server = Running::start(factory, |c| {
        c.engine.max_buffered_bytes = CAP as usize;
        c.engine.ring_datagrams = 64;
    });
    let tiny: Vec<Binding> = (0..6).map(|_| server.bind("{}")).collect();
    let large: Vec<Binding> = (0..3).map(|_| server.bind("{}")).collect();
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
    let big = vec![0x5a_u8; 60_000];
    let mut sent = 0u64;
    for _ in 0..40 {
        for b in &tiny {
            peer.send_to(b"x", b.addr).expect("send");
        }
        for b in &large {
            peer.send_to(&big, b.addr).expect("send");
            sent += 1;
        }
        // Give the reader a turn so the kernel's buffer does not overflow.
        thread::sleep(Duration::from_millis(2));
    }
    wait_until("the tiny datagrams to arrive", || {
        tiny.iter()
            .all(|b| server.binding_status(&b.id).expect("live")["counters"]["received"] == 40)
    });
    let status = server.status();
    let field = |b: &Value, name: &str| b["counters"][name].as_u64().expect(name);
    let held: u64 = status
        .iter()
        .map(|b| b["buffered_bytes"].as_u64().expect("buffered_bytes"))
        .sum();
    assert!(held <= CAP, "{held} bytes held, cap {CAP}");
    let mut dropped_memory = 0;
    for b in &status {
        assert_eq!(
            field(b, "received"),
            field(b, "delivered")
                + field(b, "pending")
                + field(b, "dropped_overflow")
                + field(b, "dropped_memory"),
            "{b}"
        );
        dropped_memory += field(b, "dropped_memory");
    }
    let large_received: u64 = status
        .iter()
        .filter(|b| large.iter().any(|l| b["id"] == l.id.as_str()))
        .map(|b| field(b, "received"))
        .sum();
    assert!(large_received > 0 && large_received <= sent);
    // 120 datagrams of 60,000 bytes cannot all be held under 512 KiB.
    assert!(
        dropped_memory
            + status
                .iter()
                .map(|b| field(b, "dropped_overflow"))
                .sum::<u64>()
            > 0
    );
    for b in status
        .iter()
        .filter(|b| tiny.iter().any(|t| b["id"] == t.id.as_str()))
    {
        // A 1-byte datagram holds 1 byte, not a shared receive buffer.
        assert_eq!(b["buffered_bytes"], field(b, "pending"), "{b}");
    }
}
