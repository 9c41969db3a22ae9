//! Writes the hand-made seeds of the `engine` and `encoders` targets.
//!
//! Their inputs are decoded with `arbitrary`, so a meaningful seed (bind, open,
//! subscribe, receive until the ring overflows, let the lease run out...) is
//! written here as the values it should decode to, turned into bytes by the
//! inverse of `arbitrary`'s format, and checked by decoding it back.
//!
//! Run from `fuzz/`: `cargo run --example seeds` (rewrites `corpus/*/seed-*`).

use std::fmt::Debug;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use porthole_core::sim::fuzz::encoders::{AddrInput, DatagramInput, Input, Reason};
use porthole_core::sim::script::{
    BindAddr, Dest, IoFailure, Limits, Op, OpenFailure, Pick, Script,
};

/// The bytes `arbitrary` decodes into a value, built field by field.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    /// Variant `index` of an enum with `count` variants: the smallest `u32`
    /// that `(u32 * count) >> 32` maps to it.
    fn variant(&mut self, index: usize, count: usize) -> &mut Self {
        let v = ((index as u64) << 32).div_ceil(count as u64);
        self.0
            .extend(u32::try_from(v).expect("index < count").to_le_bytes());
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn opt_u8(&mut self, v: Option<u8>) -> &mut Self {
        match v {
            Some(v) => self.bool(true).u8(v),
            None => self.bool(false),
        }
    }
    fn pick(&mut self, p: Pick) -> &mut Self {
        self.u8(p.0)
    }
    fn opt_pick(&mut self, p: Option<Pick>) -> &mut Self {
        self.opt_u8(p.map(|p| p.0))
    }
    /// A `Vec<u8>`: each element after a "one more" byte, then a "stop" byte.
    fn vec(&mut self, v: &[u8]) -> &mut Self {
        for &b in v {
            self.bool(true).u8(b);
        }
        self.bool(false)
    }
}

fn limits(b: &mut Bytes, l: &Limits) {
    b.u8(l.max_bindings)
        .u8(l.max_subscribers)
        .u8(l.ring_datagrams)
        .u8(l.ring_bytes)
        .u8(l.window)
        .u8(l.default_lease)
        .u8(l.max_lease)
        .bool(l.allow_remote)
        .u8(l.max_payload)
        .u8(l.ticket_lifetime);
}

/// Variants of `IoFailure`.
const IO_FAILURES: usize = 6;

fn op(b: &mut Bytes, op: &Op) {
    const OPS: usize = 20;
    match *op {
        Op::Bind {
            addr,
            fixed_port,
            lease_secs,
            allow_remote,
            renew_on_traffic,
            reuse,
        } => {
            b.variant(0, OPS)
                .variant(addr as usize, 8)
                .bool(fixed_port)
                .opt_u8(lease_secs)
                .bool(allow_remote)
                .bool(renew_on_traffic)
                .opt_pick(reuse);
        }
        Op::Unbind(p) => {
            b.variant(1, OPS).pick(p);
        }
        Op::Send {
            binding,
            dest,
            len,
            reuse,
        } => {
            b.variant(2, OPS)
                .pick(binding)
                .variant(dest as usize, 11)
                .u8(len)
                .opt_pick(reuse);
        }
        Op::Heartbeat {
            binding,
            lease_secs,
        } => {
            b.variant(3, OPS).pick(binding).opt_u8(lease_secs);
        }
        Op::Subscribe {
            binding,
            resume_after,
            idle_secs,
            ticket,
        } => {
            b.variant(4, OPS)
                .pick(binding)
                .opt_u8(resume_after)
                .opt_u8(idle_secs)
                .opt_pick(ticket);
        }
        Op::Unsubscribe(p) => {
            b.variant(5, OPS).pick(p);
        }
        Op::IssueTicket(p) => {
            b.variant(6, OPS).pick(p);
        }
        Op::Status => {
            b.variant(7, OPS);
        }
        Op::Shutdown => {
            b.variant(8, OPS);
        }
        Op::SocketOpened(opening) => {
            b.variant(9, OPS).pick(opening);
        }
        Op::SocketFailed { opening, error } => {
            b.variant(10, OPS).pick(opening).variant(error as usize, 5);
        }
        Op::Datagram {
            binding,
            len,
            remote,
        } => {
            b.variant(11, OPS).pick(binding).u8(len).bool(remote);
        }
        Op::KernelDrops { binding, count } => {
            b.variant(12, OPS).pick(binding).u8(count);
        }
        Op::Transmitted { request, outcome } => {
            b.variant(13, OPS).pick(request);
            match outcome {
                Ok(n) => b.bool(true).u8(n),
                Err(e) => b.bool(false).variant(e as usize, IO_FAILURES),
            };
        }
        Op::SocketError { binding, error } => {
            b.variant(14, OPS)
                .pick(binding)
                .variant(error as usize, IO_FAILURES);
        }
        Op::SubscriberGone(p) => {
            b.variant(15, OPS).pick(p);
        }
        Op::Credit { subscriber, credit } => {
            b.variant(16, OPS).pick(subscriber).u8(credit);
        }
        Op::Wait { millis } => {
            b.variant(17, OPS).u16(millis);
        }
        Op::WaitForTimeout => {
            b.variant(18, OPS);
        }
        Op::Rewind { millis } => {
            b.variant(19, OPS).u16(millis);
        }
    }
}

fn input(b: &mut Bytes, i: &Input) {
    match i {
        Input::Datagram(d) => {
            b.variant(0, 5);
            for &x in &d.id {
                b.u8(x);
            }
            b.u64(d.seq);
            match d.src {
                AddrInput::V4(ip, port) => {
                    b.variant(0, 2);
                    for x in ip {
                        b.u8(x);
                    }
                    b.u16(port);
                }
                AddrInput::V6(ip, port, flow, scope) => {
                    b.variant(1, 2);
                    for x in ip {
                        b.u8(x);
                    }
                    b.u16(port).u32(flow).u32(scope);
                }
            }
            b.vec(&d.payload).u64(d.received_ms);
        }
        Input::Lagged(n) => {
            b.variant(1, 5).u64(*n);
        }
        Input::Closed(r) => {
            b.variant(2, 5).variant(*r as usize, 5);
        }
        Input::Error { code, message } => {
            b.variant(3, 5).u8(*code).vec(message);
        }
        Input::Timestamp {
            before_epoch,
            secs,
            nanos,
        } => {
            b.variant(4, 5).bool(*before_epoch).u64(*secs).u32(*nanos);
        }
    }
}

/// Checks that `bytes` decode back to `want`, then writes them.
fn write<T: Debug>(dir: &Path, name: &str, bytes: &[u8], want: &T, decoded: &T) {
    assert_eq!(format!("{decoded:?}"), format!("{want:?}"), "seed {name}");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn engine_seed(dir: &Path, name: &str, limits_: Limits, ops: Vec<Op>) {
    let mut b = Bytes::default();
    limits(&mut b, &limits_);
    for o in &ops {
        op(&mut b, o);
    }
    let want = Script {
        limits: limits_,
        ops,
    };
    let decoded = Script::decode(&b.0).expect("seed decodes");
    write(dir, name, &b.0, &want, &decoded);
}

fn encoders_seed(dir: &Path, name: &str, inputs: Vec<Input>) {
    let mut b = Bytes::default();
    for i in &inputs {
        input(&mut b, i);
    }
    let mut u = Unstructured::new(&b.0);
    let mut decoded = Vec::new();
    while !u.is_empty() {
        decoded.push(Input::arbitrary(&mut u).expect("seed decodes"));
    }
    write(dir, name, &b.0, &inputs, &decoded);
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let engine = root.join("engine");
    let encoders = root.join("encoders");

    // Limits that fit each scenario: (bindings, subs, ring, ring bytes, window, lease, max lease).
    let small = Limits {
        max_bindings: 1,
        max_subscribers: 1,
        ring_datagrams: 2,
        ring_bytes: 100,
        window: 1,
        default_lease: 2,
        max_lease: 9,
        allow_remote: false,
        max_payload: 32,
        ticket_lifetime: 2,
    };
    let roomy = Limits {
        max_bindings: 3,
        max_subscribers: 2,
        ring_datagrams: 5,
        ring_bytes: 127,
        window: 3,
        default_lease: 4,
        max_lease: 29,
        allow_remote: true,
        max_payload: 63,
        ticket_lifetime: 5,
    };
    let p = Pick;
    let bind = |lease: Option<u8>, renew: bool| Op::Bind {
        addr: BindAddr::Loopback4,
        fixed_port: false,
        lease_secs: lease,
        allow_remote: false,
        renew_on_traffic: renew,
        reuse: None,
    };
    let opened = Op::SocketOpened(p(0));
    let dgram = |len: u8| Op::Datagram {
        binding: p(0),
        len,
        remote: false,
    };
    let subscribe = |resume: Option<u8>, idle: Option<u8>| Op::Subscribe {
        binding: p(0),
        resume_after: resume,
        idle_secs: idle,
        ticket: None,
    };

    engine_seed(
        &engine,
        "bind-subscribe-receive",
        roomy,
        vec![
            bind(None, false),
            opened.clone(),
            subscribe(None, None),
            dgram(5),
            dgram(6),
            Op::Credit {
                subscriber: p(0),
                credit: 2,
            },
            Op::Status,
            Op::Unbind(p(0)),
        ],
    );
    engine_seed(
        &engine,
        "ring-overflow-then-lagged",
        small,
        vec![
            bind(None, false),
            opened.clone(),
            dgram(1),
            dgram(2),
            dgram(3),
            subscribe(Some(0), None),
            dgram(4),
            dgram(5),
            dgram(6),
            Op::Credit {
                subscriber: p(0),
                credit: 1,
            },
            Op::Credit {
                subscriber: p(0),
                credit: 1,
            },
        ],
    );
    engine_seed(
        &engine,
        "lease-expires-with-subscriber",
        small,
        vec![
            bind(Some(1), false),
            opened.clone(),
            subscribe(None, None),
            Op::Wait { millis: 999 },
            Op::Heartbeat {
                binding: p(0),
                lease_secs: Some(2),
            },
            Op::Wait { millis: 1999 },
            Op::WaitForTimeout,
            Op::Heartbeat {
                binding: p(0),
                lease_secs: None,
            },
        ],
    );
    engine_seed(
        &engine,
        "renew-on-traffic-and-idle",
        roomy,
        vec![
            bind(Some(2), true),
            opened.clone(),
            subscribe(None, Some(1)),
            Op::Wait { millis: 1500 },
            dgram(3),
            Op::Wait { millis: 1500 },
            Op::WaitForTimeout,
            dgram(3),
            Op::WaitForTimeout,
            Op::Rewind { millis: 5000 },
            Op::WaitForTimeout,
        ],
    );
    engine_seed(
        &engine,
        "send-policy-and-outcomes",
        roomy,
        vec![
            bind(None, false),
            opened.clone(),
            Op::Send {
                binding: p(0),
                dest: Dest::Loopback4,
                len: 8,
                reuse: None,
            },
            Op::Send {
                binding: p(0),
                dest: Dest::Loopback4,
                len: 8,
                reuse: Some(p(0)),
            },
            Op::Send {
                binding: p(0),
                dest: Dest::Remote4,
                len: 8,
                reuse: None,
            },
            Op::Send {
                binding: p(0),
                dest: Dest::Loopback6,
                len: 8,
                reuse: None,
            },
            Op::Send {
                binding: p(0),
                dest: Dest::Multicast4,
                len: 8,
                reuse: None,
            },
            Op::Send {
                binding: p(0),
                dest: Dest::Loopback4,
                len: 64,
                reuse: None,
            },
            Op::Transmitted {
                request: p(0),
                outcome: Ok(8),
            },
            Op::Send {
                binding: p(0),
                dest: Dest::Loopback4,
                len: 1,
                reuse: None,
            },
            Op::Transmitted {
                request: p(0),
                outcome: Err(IoFailure::ConnectionRefused),
            },
            Op::SocketError {
                binding: p(0),
                error: IoFailure::Unreachable,
            },
            Op::Send {
                binding: p(0),
                dest: Dest::Loopback4,
                len: 1,
                reuse: None,
            },
            Op::Unbind(p(0)),
            Op::Transmitted {
                request: p(0),
                outcome: Ok(1),
            },
        ],
    );
    engine_seed(
        &engine,
        "bind-limits-and-failures",
        small,
        vec![
            bind(None, false),
            bind(None, false),
            Op::Bind {
                addr: BindAddr::Remote4,
                fixed_port: true,
                lease_secs: Some(200),
                allow_remote: true,
                renew_on_traffic: false,
                reuse: None,
            },
            Op::Bind {
                addr: BindAddr::Multicast4,
                fixed_port: false,
                lease_secs: None,
                allow_remote: false,
                renew_on_traffic: false,
                reuse: None,
            },
            Op::SocketFailed {
                opening: p(0),
                error: OpenFailure::AddrInUse,
            },
            Op::SocketFailed {
                opening: p(0),
                error: OpenFailure::OutOfDescriptors,
            },
            Op::Bind {
                addr: BindAddr::Loopback6,
                fixed_port: true,
                lease_secs: Some(0),
                allow_remote: false,
                renew_on_traffic: false,
                reuse: None,
            },
            Op::SocketOpened(p(0)),
            Op::SocketOpened(p(0)),
        ],
    );
    engine_seed(
        &engine,
        "shutdown-races-open-and-send",
        roomy,
        vec![
            bind(None, false),
            opened.clone(),
            bind(None, false),
            subscribe(None, None),
            Op::Send {
                binding: p(0),
                dest: Dest::Loopback4,
                len: 3,
                reuse: None,
            },
            Op::Shutdown,
            Op::SocketOpened(p(0)),
            Op::Transmitted {
                request: p(0),
                outcome: Ok(3),
            },
            bind(None, false),
            Op::Status,
        ],
    );
    engine_seed(
        &engine,
        "subscribers-come-and-go",
        roomy,
        vec![
            bind(None, false),
            opened.clone(),
            dgram(10),
            subscribe(None, None),
            subscribe(Some(0), None),
            subscribe(None, None),
            Op::Unsubscribe(p(0)),
            Op::SubscriberGone(p(1)),
            subscribe(Some(200), Some(3)),
            dgram(11),
            Op::Unsubscribe(p(0)),
            Op::Credit {
                subscriber: p(2),
                credit: 255,
            },
            Op::Wait { millis: 3000 },
        ],
    );

    engine_seed(
        &engine,
        "client-chosen-extremes",
        roomy,
        vec![
            bind(Some(255), false),
            opened.clone(),
            dgram(1),
            subscribe(Some(255), Some(255)),
            Op::Heartbeat {
                binding: p(0),
                lease_secs: Some(255),
            },
            subscribe(None, Some(255)),
            dgram(2),
            Op::Wait { millis: u16::MAX },
            Op::WaitForTimeout,
        ],
    );

    engine_seed(
        &engine,
        "tickets-issued-used-and-refused",
        small,
        vec![
            bind(None, false),
            opened.clone(),
            // The limit is one unused ticket per subscriber the binding may
            // have (two here): the third is refused.
            Op::IssueTicket(p(0)),
            Op::IssueTicket(p(0)),
            Op::IssueTicket(p(0)),
            Op::Subscribe {
                binding: p(0),
                resume_after: None,
                idle_secs: None,
                ticket: Some(p(0)),
            },
            // Used already, then one never issued, then one for no live binding.
            Op::Subscribe {
                binding: p(0),
                resume_after: None,
                idle_secs: None,
                ticket: Some(p(0)),
            },
            Op::Subscribe {
                binding: p(0),
                resume_after: None,
                idle_secs: None,
                ticket: Some(p(255)),
            },
            Op::IssueTicket(p(255)),
            Op::Wait { millis: 2500 },
            Op::IssueTicket(p(0)),
        ],
    );
    engine_seed(
        &engine,
        "kernel-drops-owed-to-every-stream",
        roomy,
        vec![
            bind(None, false),
            opened.clone(),
            subscribe(None, None),
            subscribe(None, None),
            dgram(3),
            Op::KernelDrops {
                binding: p(0),
                count: 4,
            },
            dgram(4),
            Op::Credit {
                subscriber: p(0),
                credit: 3,
            },
            Op::KernelDrops {
                binding: p(0),
                count: 255,
            },
            Op::SubscriberGone(p(1)),
            Op::Credit {
                subscriber: p(0),
                credit: 3,
            },
            Op::WaitForTimeout,
        ],
    );

    let id = [
        0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x41, 0xd2, 0x88, 0x3f, 0x00, 0x16, 0xd3, 0xcc, 0xa4,
        0x27,
    ];
    let hello = |src: AddrInput, payload: &[u8], ms: u64| {
        Input::Datagram(DatagramInput {
            id,
            seq: 3,
            src,
            payload: payload.to_vec(),
            received_ms: ms,
        })
    };
    encoders_seed(
        &encoders,
        "datagram-v4",
        vec![hello(
            AddrInput::V4([127, 0, 0, 1], 9999),
            b"hello",
            1_700_000_000_123,
        )],
    );
    encoders_seed(
        &encoders,
        "datagram-v6-scope-flow",
        vec![hello(
            AddrInput::V6(
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                5353,
                7,
                2,
            ),
            &[0, 0xff, b'"', b'\\', b'\n'],
            0,
        )],
    );
    encoders_seed(
        &encoders,
        "lagged-closed",
        vec![
            Input::Lagged(u64::MAX),
            Input::Closed(Reason::Expired),
            Input::Closed(Reason::Idle),
        ],
    );
    encoders_seed(
        &encoders,
        "error-messages",
        vec![
            Input::Error {
                code: 0,
                message: b"quote \" backslash \\ newline \n".to_vec(),
            },
            Input::Error {
                code: 11,
                message: vec![0xff, 0xfe, 0x00, 0x1f],
            },
        ],
    );
    encoders_seed(
        &encoders,
        "timestamps-at-the-edges",
        vec![
            Input::Timestamp {
                before_epoch: true,
                secs: 5,
                nanos: 0,
            },
            Input::Timestamp {
                before_epoch: false,
                secs: 253_402_300_799,
                nanos: 999_999_999,
            },
            Input::Timestamp {
                before_epoch: false,
                secs: u64::MAX / 4,
                nanos: 1,
            },
        ],
    );
}
