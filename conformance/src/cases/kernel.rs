//! What the kernel drops before Porthole reads it is counted and reported:
//! nothing is lost silently, not even in the socket's receive buffer.

use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{peer, Running};
use crate::client::READ_TIMEOUT;
use crate::ServerFactory;

/// Linux grants at least about 4.6 KiB whatever is asked (and doubles what it
/// grants): a few datagrams of 1,000 bytes.
const SMALL_RECV_BUFFER: usize = 4096;
const BURST: u64 = 2_000;

/// A burst far beyond a small receive buffer, sent while the only stream reads
/// nothing: the kernel drops part of it. Every datagram sent is then either
/// received or counted in `dropped_kernel`, and the stream gets every one of
/// them either as a datagram or in a `lagged` count.
pub fn kernel_drops_are_counted_and_reported_as_lag(factory: &dyn ServerFactory) {
    let server = Running::start(factory, |c| c.engine.recv_buffer = SMALL_RECV_BUFFER);
    let b = server.bind("{}");
    let mut stream = server.stream(&b.id);
    let peer = peer();
    let deadline = Instant::now() + 3 * READ_TIMEOUT;
    let counters = || {
        let status = server.binding_status(&b.id).expect("the binding is live");
        let c = &status["counters"];
        let get = |name: &str| c[name].as_u64().unwrap_or_else(|| panic!("{name}: {c}"));
        (get("received"), get("dropped_kernel"))
    };

    let mut sent = 0u64;
    let mut last;
    loop {
        for i in 0..BURST {
            peer.send_to(&[i as u8; 1000], b.addr).expect("sent");
        }
        sent += BURST;
        // The kernel reports its drop count with the next datagram it
        // queues: send markers, one at a time, until every datagram sent is
        // accounted for (a marker the kernel dropped is counted by the next).
        loop {
            assert!(
                Instant::now() < deadline,
                "sent {sent}, accounted for {:?}",
                counters()
            );
            last = format!("marker {sent}").into_bytes();
            peer.send_to(&last, b.addr).expect("sent");
            sent += 1;
            let settle = Instant::now() + Duration::from_millis(200);
            let mut accounted = false;
            while !accounted && Instant::now() < settle {
                let (received, dropped) = counters();
                assert!(received + dropped <= sent, "more than was sent");
                accounted = received + dropped == sent;
                if !accounted {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            if accounted {
                break;
            }
        }
        if counters().1 > 0 {
            break;
        }
        // The reader kept up with the whole burst: try a larger backlog.
    }
    let (received, dropped_kernel) = counters();
    assert!(dropped_kernel > 0);
    assert_eq!(received + dropped_kernel, sent);

    // The stream, read up to the last marker: every datagram sent is there or
    // in a lagged count, the kernel's drops included.
    let last = STANDARD.encode(&last);
    let (mut got, mut lagged) = (0u64, 0u64);
    loop {
        let event = stream.next_event().expect("the stream is open");
        match event.event.as_str() {
            "datagram" => {
                got += 1;
                if event.json()["payload"] == last.as_str() {
                    break;
                }
            }
            "lagged" => lagged += event.json()["missed"].as_u64().expect("missed"),
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(
        lagged >= dropped_kernel,
        "lagged {lagged} < {dropped_kernel}"
    );
    assert_eq!(got + lagged, sent, "got {got}, lagged {lagged}");
    let status = server.binding_status(&b.id).expect("live");
    assert_eq!(status["counters"]["dropped_kernel"], dropped_kernel);
}
