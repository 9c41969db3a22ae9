//! The WebSocket datagram channel (`GET /v1/udp/ws/{id}`) and batch send,
//! through a real WebSocket client (tungstenite, blocking).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use porthole_driver::porthole_core::api::ws::{decode_ws_datagram, encode_ws_send, WsDatagram};
use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::{peer, send_body, send_until_the_slow_one_stalls, wait_until, Binding, Running};
use crate::client::{Client, Conn, Response, Target, READ_TIMEOUT};
use crate::{ServerFactory, Token};

const TOKEN: &str = "s3cret";

/// What a channel delivered.
#[derive(Debug)]
enum Received {
    Datagram(WsDatagram),
    Notice(Value),
    Close(Option<CloseFrame>),
    /// The connection ended.
    End,
}

/// A blocking WebSocket channel client.
struct Channel {
    ws: WebSocket<Conn>,
}

impl Channel {
    /// Opens `path` with extra headers; an HTTP refusal comes back as the response.
    fn open(client: &Client, path: &str, headers: &[(&str, &str)]) -> Result<Channel, Response> {
        let host = match client.target() {
            Target::Tcp(addr) => addr.to_string(),
            Target::Unix(_) => "localhost".to_owned(),
        };
        let mut request = format!("ws://{host}{path}")
            .into_client_request()
            .expect("a WebSocket request");
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        let conn = client.connect().expect("connect");
        conn.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        match tungstenite::client(request, conn) {
            Ok((ws, response)) => {
                assert_eq!(response.status(), 101);
                Ok(Channel { ws })
            }
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                Err(Response {
                    status: response.status().as_u16(),
                    headers: response
                        .headers()
                        .iter()
                        .map(|(n, v)| {
                            (
                                n.as_str().to_owned(),
                                v.to_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect(),
                    body: response.body().clone().unwrap_or_default(),
                })
            }
            Err(e) => panic!("WebSocket handshake failed: {e}"),
        }
    }

    #[track_caller]
    fn send_to(&mut self, dest: SocketAddr, payload: &[u8]) {
        self.send_raw(encode_ws_send(dest, payload));
    }

    #[track_caller]
    fn send_raw(&mut self, message: Vec<u8>) {
        self.ws
            .send(Message::binary(message))
            .expect("send a message");
    }

    /// The next message (pings and pongs skipped).
    #[track_caller]
    fn next(&mut self) -> Received {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(bytes)) => {
                    return Received::Datagram(decode_ws_datagram(bytes).expect("a datagram"))
                }
                Ok(Message::Text(text)) => {
                    return Received::Notice(serde_json::from_str(&text).expect("JSON notice"))
                }
                Ok(Message::Close(frame)) => return Received::Close(frame),
                Ok(_) => {}
                Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ),
                ) => return Received::End,
                Err(e) => panic!("reading the channel: {e}"),
            }
        }
    }

    #[track_caller]
    fn expect_datagram(&mut self) -> WsDatagram {
        match self.next() {
            Received::Datagram(d) => d,
            other => panic!("expected a datagram, got {other:?}"),
        }
    }

    #[track_caller]
    fn expect_notice(&mut self, event: &str) -> Value {
        match self.next() {
            Received::Notice(v) if v["event"] == event => v,
            other => panic!("expected a {event} notice, got {other:?}"),
        }
    }

    /// Expects a close frame; returns its code and reason, and checks that
    /// the connection then ends.
    #[track_caller]
    fn expect_close(&mut self) -> (u16, String) {
        let frame = match self.next() {
            Received::Close(Some(frame)) => frame,
            other => panic!("expected a close frame, got {other:?}"),
        };
        assert!(matches!(self.next(), Received::End), "the connection ends");
        (frame.code.into(), frame.reason.to_string())
    }

    /// `closed` with `reason`, then a close frame with `code`.
    #[track_caller]
    fn expect_closed(&mut self, reason: &str, code: u16) {
        assert_eq!(self.expect_notice("closed")["reason"], reason);
        assert_eq!(self.expect_close().0, code);
    }
}

impl Running {
    #[track_caller]
    fn channel(&self, id: &str) -> Channel {
        self.channel_with(&format!("/v1/udp/ws/{id}"), &[])
    }

    #[track_caller]
    fn channel_with(&self, path: &str, headers: &[(&str, &str)]) -> Channel {
        Channel::open(&self.client, path, headers)
            .unwrap_or_else(|r| panic!("GET {path}: {} {:?}", r.status, r.json()))
    }
}

/// Checks one binding's channel both ways against a peer of the same family.
#[track_caller]
fn exchange(server: &Running, b: &Binding, peer: &UdpSocket) {
    let mut channel = server.channel(&b.id);
    let peer_addr = peer.local_addr().unwrap();
    peer.send_to(b"inbound", b.addr).unwrap();
    let d = channel.expect_datagram();
    assert_eq!(
        (d.seq.0, d.src, &d.payload[..]),
        (1, peer_addr, &b"inbound"[..])
    );
    channel.send_to(peer_addr, b"outbound");
    channel.send_to(peer_addr, b"");
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"outbound"[..], b.addr));
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(n, 0, "an empty payload is an empty datagram");
    wait_until("the sends to be counted", || {
        server.binding_status(&b.id).unwrap()["counters"]["sent"] == 2
    });
}

/// The channel carries received datagrams to the client (sequence number,
/// source, payload) and the client's datagrams to their destination, over
/// IPv4 and IPv6.
pub fn ws_channel_carries_datagrams_both_ways(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    exchange(&server, &server.bind("{}"), &peer());
    if let Ok(v6_peer) = UdpSocket::bind("[::1]:0") {
        v6_peer.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let b = server.bind(r#"{"addr": "::1"}"#);
        exchange(&server, &b, &v6_peer);
    }
}

/// `Last-Event-ID` (header) or `?last_event_id=` resumes from the replay ring.
pub fn ws_channel_resumes_after_the_last_event_id(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let peer = peer();
    let mut first = server.channel(&b.id);
    for i in 1..=5u8 {
        peer.send_to(&[i], b.addr).unwrap();
    }
    for i in 1..=5u64 {
        assert_eq!(first.expect_datagram().seq.0, i);
    }
    drop(first);
    let path = format!("/v1/udp/ws/{}", b.id);
    let mut resumed = server.channel_with(&path, &[("Last-Event-ID", "3")]);
    for seq in [4u64, 5] {
        let d = resumed.expect_datagram();
        assert_eq!((d.seq.0, &d.payload[..]), (seq, &[seq as u8][..]));
    }
    let mut by_query = server.channel_with(&format!("{path}?last_event_id=4"), &[]);
    assert_eq!(by_query.expect_datagram().seq.0, 5);
    peer.send_to(&[6], b.addr).unwrap();
    assert_eq!(resumed.expect_datagram().seq.0, 6);
    assert_eq!(by_query.expect_datagram().seq.0, 6);
}

/// A channel that stops reading runs out of credit; once it reads again it
/// gets a `lagged` notice with the number missed, while another channel on
/// the same binding gets every datagram.
pub fn stalled_ws_channel_gets_lagged(factory: &dyn ServerFactory) {
    const RING: usize = 8;
    const WINDOW: u32 = 4;
    let server = Running::start(factory, |c| {
        c.engine.ring_datagrams = RING;
        c.engine.ring_bytes = 16 * 1024 * 1024;
        c.engine.delivery_window = WINDOW;
    });
    let b = server.bind("{}");
    let mut fast = server.channel(&b.id);
    let mut slow = server.channel(&b.id);
    let sent =
        send_until_the_slow_one_stalls(&server, &b, RING as u64 + u64::from(WINDOW), |sent| {
            assert_eq!(
                fast.expect_datagram().seq.0,
                sent,
                "the fast channel gets all"
            );
        });
    let mut seen = 0;
    let missed = loop {
        match slow.next() {
            Received::Datagram(_) => seen += 1,
            Received::Notice(v) if v["event"] == "lagged" => {
                break v["missed"].as_u64().expect("missed is a number")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(seen <= sent, "no lagged notice in the whole backlog");
    };
    assert!(missed > 0);
    let counters = &server.binding_status(&b.id).unwrap()["counters"];
    assert!(counters["missed"].as_u64().unwrap() >= missed);
}

/// A send the engine refuses is reported on the channel as `send_error`
/// with the HTTP error code (a burst may coalesce, with a count), and the
/// channel keeps working.
pub fn refused_ws_sends_are_reported_as_send_error(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let mut channel = server.channel(&b.id);
    let remote: SocketAddr = "192.0.2.1:9".parse().unwrap();
    for _ in 0..3 {
        channel.send_to(remote, b"no");
    }
    let mut count = 0;
    while count < 3 {
        let notice = channel.expect_notice("send_error");
        assert_eq!(notice["dest"], "192.0.2.1:9");
        assert_eq!(notice["error"], "remote_not_allowed");
        assert!(notice["message"].as_str().is_some_and(|m| !m.is_empty()));
        count += notice["count"].as_u64().expect("count");
    }
    assert_eq!(count, 3);
    channel.send_to("[::1]:9".parse().unwrap(), b"family");
    assert_eq!(
        channel.expect_notice("send_error")["error"],
        "address_family_mismatch"
    );
    let peer = peer();
    channel.send_to(peer.local_addr().unwrap(), b"fine");
    let mut buf = [0u8; 16];
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"fine");
    let counters = &server.binding_status(&b.id).unwrap()["counters"];
    assert_eq!(counters["sent"], 1);
}

/// A malformed client message (short header, unknown family) closes the
/// channel with 1007 and a reason; a text message with 1003. The binding and
/// its other channels live on.
pub fn malformed_ws_messages_close_with_1007(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| c.engine.max_subscribers_per_binding = 2);
    let b = server.bind("{}");
    let mut witness = server.channel(&b.id);
    for (bad, what) in [
        (vec![], "short header"),
        (vec![4, 127, 0, 0, 1, 0], "short header"),
        (
            vec![6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            "short header",
        ),
        (vec![5, 127, 0, 0, 1, 0, 9], "unknown address family"),
    ] {
        let mut channel = server.channel(&b.id);
        channel.send_raw(bad);
        let (code, reason) = channel.expect_close();
        assert_eq!(code, 1007, "{what}");
        assert!(!reason.is_empty(), "{what}: a reason");
    }
    let mut texting = server.channel(&b.id);
    texting.ws.send(Message::text("hello")).unwrap();
    assert_eq!(texting.expect_close().0, 1003);
    // Each closed channel gave its subscriber slot back (the limit is 2).
    let peer = peer();
    let mut again = server.channel(&b.id);
    peer.send_to(b"alive", b.addr).unwrap();
    assert_eq!(&witness.expect_datagram().payload[..], b"alive");
    assert_eq!(&again.expect_datagram().payload[..], b"alive");
    assert!(server.binding_status(&b.id).is_some());
}

/// Unbind, expiry and shutdown each end the channel with a `closed` notice
/// and a close frame (1000, or 1001 for shutdown).
pub fn ws_channel_closes_on_unbind_expiry_and_shutdown(factory: &dyn ServerFactory) {
    let mut server = Running::default(factory);
    let b = server.bind("{}");
    let mut channel = server.channel(&b.id);
    server
        .client
        .delete(&format!("/v1/udp/bind/{}", b.id))
        .expect(200);
    channel.expect_closed("unbound", 1000);

    let b = server.bind(r#"{"lease_secs": 1}"#);
    let mut channel = server.channel(&b.id);
    channel.expect_closed("expired", 1000);
    assert!(server.binding_status(&b.id).is_none());

    // A client reads while the server shuts down, as it answers the close
    // frame that shutdown waits for.
    let b = server.bind("{}");
    let mut channel = server.channel(&b.id);
    let reader = std::thread::spawn(move || channel.expect_closed("shutdown", 1001));
    server.shutdown();
    reader.join().expect("the channel closed with shutdown");
}

/// A quiet channel is pinged every keep-alive interval.
pub fn quiet_ws_channel_is_pinged(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| c.http.keep_alive = Duration::from_millis(200));
    let b = server.bind("{}");
    let mut channel = server.channel(&b.id);
    for _ in 0..2 {
        match channel.ws.read() {
            Ok(Message::Ping(_)) => {}
            other => panic!("expected a ping, got {other:?}"),
        }
    }
}

/// The channel takes the token or a stream ticket, counts against the
/// subscriber limit, and refuses a request that is not an upgrade.
pub fn ws_channel_is_guarded_like_the_stream(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| {
        c.http.token = Some(Token::new(TOKEN).expect("token"));
        c.engine.max_subscribers_per_binding = 1;
    });
    let auth = format!("Bearer {TOKEN}");
    let client = server.client.clone().with_header("Authorization", &auth);
    let b = Binding::from_info(&client.post("/v1/udp/bind", "{}").expect(201));
    let path = format!("/v1/udp/ws/{}", b.id);
    Channel::open(&server.client, &path, &[])
        .err()
        .expect("no token, no channel")
        .assert_error(401, "unauthorized");
    let channel = server.channel_with(&path, &[("Authorization", &auth)]);
    Channel::open(&server.client, &path, &[("Authorization", &auth)])
        .err()
        .expect("one subscriber at most")
        .assert_error(429, "too_many_subscribers");
    drop(channel);
    wait_until("the subscriber to be released", || {
        client.get("/v1/udp/status").expect(200)["bindings"][0]["subscribers"] == 0
    });
    let ticket = client
        .post(&format!("/v1/udp/recv/{}/ticket", b.id), "")
        .expect(200)["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let mut by_ticket = server.channel_with(&format!("{path}?ticket={ticket}"), &[]);
    let peer = peer();
    peer.send_to(b"ticketed", b.addr).unwrap();
    assert_eq!(&by_ticket.expect_datagram().payload[..], b"ticketed");
    drop(by_ticket);
    // A plain GET is not an upgrade: 400, and no subscriber is created.
    client.get(&path).assert_error(400, "invalid_parameter");
}

/// `POST /send` with `{"datagrams": [...]}` sends each datagram in order and
/// answers one result per datagram; bad entries fail alone; an oversized
/// batch is refused whole.
pub fn batch_send_answers_one_result_per_datagram(factory: &dyn ServerFactory) {
    let server = Running::default(factory);
    let b = server.bind("{}");
    let peer = peer();
    let to = peer.local_addr().unwrap();
    let body = format!(
        r#"{{"datagrams": [
            {{"dest": "{to}", "payload": "b25l"}},
            {{"dest": "{to}", "payload": "!!"}},
            {{"dest": "192.0.2.1:9", "payload": ""}},
            {{"dest": "not an address", "payload": ""}},
            {{"dest": "[::1]:9", "payload": ""}},
            {{"dest": "{to}", "payload": "dHdv"}}
        ]}}"#
    );
    let send = format!("/v1/udp/send/{}", b.id);
    let results = server.client.post(&send, &body).expect(200)["results"].clone();
    let codes: Vec<Value> = results
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r.get("error").cloned().unwrap_or_else(|| r["sent"].clone()))
        .collect();
    assert_eq!(
        codes,
        [
            Value::from(3),
            Value::from("invalid_base64"),
            Value::from("remote_not_allowed"),
            Value::from("invalid_address"),
            Value::from("address_family_mismatch"),
            Value::from(3),
        ]
    );
    let mut buf = [0u8; 16];
    for expected in [&b"one"[..], b"two"] {
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (expected, b.addr));
    }
    // The koi form is unchanged beside it.
    server
        .client
        .post(&send, &send_body(to, b"koi"))
        .expect(200);
    let entry = format!(r#"{{"dest":"{to}","payload":""}}"#);
    let too_many = format!(r#"{{"datagrams":[{}]}}"#, vec![entry; 1025].join(","));
    server
        .client
        .post(&send, &too_many)
        .assert_error(413, "too_many_datagrams");
    let counters = &server.binding_status(&b.id).unwrap()["counters"];
    assert_eq!(counters["sent"], 3);
}
