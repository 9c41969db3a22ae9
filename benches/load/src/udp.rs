//! Plain UDP: the paced sender every ingress measurement uses, and the raw
//! socket receiver that is the ceiling.

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrIn};
use socket2::{Domain, Protocol, Socket, Type};

use crate::probe::{self, now_ns, Probe};
use crate::tally::Tally;

/// How long the sender sleeps between bursts when it is ahead of its rate.
/// Short, so that bursts stay small (a burst of datagrams is what overflows a
/// receive buffer first); the sleep itself takes ~60 µs more on Linux.
const PACING_TICK: Duration = Duration::from_micros(50);

/// How often a blocked raw receiver looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What a send run did.
#[derive(Debug, Clone, Copy)]
pub struct SendReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// From the first send to the last.
    pub elapsed: Duration,
}

impl SendReport {
    /// The rate actually offered.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Most datagrams one `sendmmsg` call sends.
const SEND_BATCH: usize = 32;

/// Sends numbered, timestamped probes of one size to one address, several
/// per system call (`sendmmsg`).
#[derive(Debug)]
pub struct ProbeSender {
    socket: UdpSocket,
    datagrams: Vec<Vec<u8>>,
    next_seq: u64,
}

impl ProbeSender {
    /// A sender of `size`-byte probes to `target` (loopback).
    pub fn new(target: SocketAddr, size: usize) -> io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.connect(target)?;
        Ok(ProbeSender {
            socket,
            datagrams: vec![vec![0x5A; size.max(probe::HEADER + 2)]; SEND_BATCH],
            next_seq: 0,
        })
    }

    /// The sequence number of the next probe.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Sends `n` (at most [`SEND_BATCH`]) probes in one call; returns how many
    /// the kernel took. All carry the same send time.
    fn send_burst(&mut self, n: usize) -> u64 {
        let n = n.min(SEND_BATCH);
        let sent_ns = now_ns();
        for datagram in &mut self.datagrams[..n] {
            probe::write(
                datagram,
                Probe {
                    seq: self.next_seq,
                    sent_ns,
                },
            );
            self.next_seq += 1;
        }
        let slices: Vec<[IoSlice<'_>; 1]> = self.datagrams[..n]
            .iter()
            .map(|d| [IoSlice::new(d)])
            .collect();
        // The socket is connected: no address per message.
        let addrs: Vec<Option<SockaddrIn>> = vec![None; n];
        let mut headers = MultiHeaders::<SockaddrIn>::preallocate(n, None);
        // An error (none is expected on loopback) counts as nothing sent.
        sendmmsg(
            self.socket.as_raw_fd(),
            &mut headers,
            &slices,
            &addrs,
            [],
            MsgFlags::empty(),
        )
        .map_or(0, |sent| sent.count() as u64)
    }

    /// Sends `count` probes at `rate` per second, in small bursts.
    pub fn send_paced(&mut self, rate: f64, count: u64) -> SendReport {
        let start = Instant::now();
        let mut attempted = 0u64;
        let mut sent = 0u64;
        while attempted < count {
            let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(count);
            while attempted < due {
                let n = (due - attempted).min(SEND_BATCH as u64);
                attempted += n;
                sent += self.send_burst(n as usize);
            }
            if attempted < count {
                std::thread::sleep(PACING_TICK);
            }
        }
        SendReport {
            sent,
            elapsed: start.elapsed(),
        }
    }

    /// Sends as fast as one thread can for `duration`.
    pub fn send_flat_out(&mut self, duration: Duration) -> SendReport {
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < duration {
            sent += self.send_burst(SEND_BATCH);
        }
        SendReport {
            sent,
            elapsed: start.elapsed(),
        }
    }
}

/// A loopback UDP socket read by a thread of its own into a [`Tally`]:
/// socket to socket, the ceiling for every server.
#[derive(Debug)]
pub struct RawReceiver {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawReceiver {
    /// Binds a loopback port (with `SO_RCVBUF` set to `receive_buffer` bytes,
    /// if given) and starts reading it.
    pub fn start(tally: Arc<Tally>, receive_buffer: Option<usize>) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        let socket: UdpSocket = socket.into();
        socket.set_read_timeout(Some(STOP_POLL))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stopped.load(Ordering::Relaxed) {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        if let Some(probe) = probe::read(&buf[..n]) {
                            tally.record(probe);
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            tally.end();
        });
        Ok(RawReceiver {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where to send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RawReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Datagrams the kernel dropped at the IPv4 UDP socket bound to `port` (the
/// `drops` column of `/proc/net/udp`: a full receive buffer), if one is bound.
pub fn kernel_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let port = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        if !local.ends_with(&port) {
            return None;
        }
        fields.last()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_drops_are_found_for_a_bound_port() {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = socket.local_addr().unwrap().port();
        assert_eq!(kernel_drops(port), Some(0));
    }
}
