//! Batched datagram I/O: `recvmmsg` and `sendmmsg` on Linux, one datagram per
//! call elsewhere or on a runtime without [`AsyncUdpSocket::try_io`]. Written
//! once here, so the runtimes only lend the socket (see `try_io`).
//!
//! Every received datagram is copied out of the per-thread receive buffers
//! into an allocation of its own size: a datagram may wait in a replay ring
//! for as long as its binding lives, so it must keep alive only its own bytes,
//! never a larger shared buffer (the engine counts only the datagram's bytes).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::runtime::AsyncUdpSocket;
use crate::socket::Received;

/// Room for the largest UDP payload (65,535 bytes over IPv6 without jumbograms).
pub(crate) const MAX_DATAGRAM: usize = 65_536;

/// Datagrams one `recvmmsg`/`sendmmsg` call moves at most.
#[cfg(target_os = "linux")]
const SYSCALL_BATCH: usize = 32;

thread_local! {
    /// The buffers the kernel writes datagrams into: per thread rather than
    /// per socket, so an idle binding holds none. Zeroed lazily by the OS, so
    /// a thread that only sees small datagrams touches a page per slot.
    static RECV_BUFFERS: RefCell<Box<[u8]>> = RefCell::new(vec![0; recv_slots() * MAX_DATAGRAM].into_boxed_slice());
}

fn recv_slots() -> usize {
    #[cfg(target_os = "linux")]
    return SYSCALL_BATCH;
    #[cfg(not(target_os = "linux"))]
    return 1;
}

/// Reads up to `max` (at least 1) datagrams from `socket` into `out`. Before
/// a datagram, a [`Received::KernelDrops`] with the datagrams the kernel
/// dropped since the count it last reported (`drops_seen`, cumulative, which
/// this updates) where the OS reports it (`SO_RXQ_OVFL` on Linux).
///
/// `Ok` once at least one datagram was read; `Err(WouldBlock)` when none was
/// ready; any other error after the datagrams read before it were appended.
pub(crate) fn recv_batch(
    socket: &dyn AsyncUdpSocket,
    drops_seen: &mut u32,
    out: &mut Vec<Received>,
    max: usize,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let batched = socket.try_io(crate::runtime::Direction::Recv, &mut |sock| {
            linux::recv(sock, drops_seen, out, max)
        });
        match batched {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
            outcome => return outcome.map(|_| ()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = drops_seen;
    recv_each(socket, out, max)
}

/// The portable path: one `try_recv_from` per datagram.
fn recv_each(socket: &dyn AsyncUdpSocket, out: &mut Vec<Received>, max: usize) -> io::Result<()> {
    RECV_BUFFERS.with(|buffers| {
        let mut buffer = buffers.borrow_mut();
        let buffer = &mut buffer[..MAX_DATAGRAM];
        for read in 0..max {
            match socket.try_recv_from(buffer) {
                Ok((n, src)) => out.push(Received::Datagram {
                    src,
                    payload: Bytes::copy_from_slice(&buffer[..n]),
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && read > 0 => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

/// Sends `batch` in order, appending each datagram's outcome to `out` (bytes
/// sent, or why not), until every one has an outcome or the socket's buffer
/// is full: then `Err(WouldBlock)`, and the datagrams from `out.len()` on are
/// left for the caller to send once the socket is writable.
pub(crate) fn send_batch(
    socket: &dyn AsyncUdpSocket,
    batch: &[(SocketAddr, Bytes)],
    out: &mut Vec<io::Result<usize>>,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if batch.len() > 1 {
        let batched = socket.try_io(crate::runtime::Direction::Send, &mut |sock| {
            linux::send(sock, batch, out)
        });
        match batched {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
            outcome => return outcome.map(|_| ()),
        }
    }
    while let Some((dest, payload)) = batch.get(out.len()) {
        match socket.try_send_to(payload, *dest) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
            outcome => out.push(outcome),
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    use bytes::Bytes;
    use nix::sys::socket::{
        recvmmsg, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage,
    };
    use rustix::net::{SendAncillaryBuffer, SendFlags, SocketAddrAny};

    use super::{Received, MAX_DATAGRAM, RECV_BUFFERS, SYSCALL_BATCH};
    use crate::runtime::SockRef;

    /// One `recvmmsg` of up to `max` datagrams; returns how many it read.
    pub(super) fn recv(
        sock: SockRef<'_>,
        drops_seen: &mut u32,
        out: &mut Vec<Received>,
        max: usize,
    ) -> io::Result<usize> {
        RECV_BUFFERS.with(|buffers| {
            let mut buffers = buffers.borrow_mut();
            let slots = max.clamp(1, SYSCALL_BATCH);
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
                .chunks_exact_mut(MAX_DATAGRAM)
                .take(slots)
                .map(|slot| [IoSliceMut::new(slot)])
                .collect();
            // New headers for every call: the kernel writes the lengths of
            // the address and the control data it returned back into them,
            // and nix does not restore them, so reused headers would truncate
            // a later datagram's address or its drop count.
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(
                slices.len(),
                Some(nix::cmsg_space!(u32)),
            );
            let received = recvmmsg(
                sock.as_raw_fd(),
                &mut headers,
                slices.iter_mut(),
                MsgFlags::empty(),
                None,
            )
            .map_err(io::Error::from)?;
            let mut read = 0;
            for message in received {
                // With SO_RXQ_OVFL the kernel reports, with each datagram, how
                // many it had dropped on this socket when it queued it (absent
                // while none).
                let total = message.cmsgs().ok().and_then(|mut cmsgs| {
                    cmsgs.find_map(|c| match c {
                        ControlMessageOwned::RxqOvfl(total) => Some(total),
                        _ => None,
                    })
                });
                if let Some(total) = total {
                    let dropped = total.wrapping_sub(*drops_seen);
                    if dropped > 0 {
                        out.push(Received::KernelDrops(u64::from(dropped)));
                        *drops_seen = total;
                    }
                }
                let Some(src) = message.address.as_ref().and_then(socket_addr) else {
                    continue;
                };
                let payload = message
                    .iovs()
                    .next()
                    .map_or_else(Bytes::new, Bytes::copy_from_slice);
                out.push(Received::Datagram { src, payload });
                read += 1;
            }
            Ok(read)
        })
    }

    fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = addr.as_sockaddr_in() {
            return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
        }
        addr.as_sockaddr_in6()
            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
    }

    /// `sendmmsg` calls until every datagram of `batch` has an outcome in
    /// `out` or the socket would block.
    pub(super) fn send(
        sock: SockRef<'_>,
        batch: &[(SocketAddr, Bytes)],
        out: &mut Vec<io::Result<usize>>,
    ) -> io::Result<usize> {
        let start = out.len();
        while out.len() < batch.len() {
            let chunk = &batch[out.len()..batch.len().min(out.len() + SYSCALL_BATCH)];
            let addrs: Vec<SocketAddrAny> = chunk.iter().map(|(d, _)| (*d).into()).collect();
            let slices: Vec<[IoSlice<'_>; 1]> =
                chunk.iter().map(|(_, p)| [IoSlice::new(p)]).collect();
            let mut control: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
                .iter()
                .map(|_| SendAncillaryBuffer::default())
                .collect();
            let mut messages: Vec<rustix::net::MMsgHdr<'_>> = addrs
                .iter()
                .zip(&slices)
                .zip(&mut control)
                .map(|((addr, iov), control)| {
                    rustix::net::MMsgHdr::new_with_addr(addr, iov, control)
                })
                .collect();
            match rustix::net::sendmmsg(&*sock, &mut messages, SendFlags::empty()) {
                Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
                // Datagram sockets send a datagram whole or not at all.
                Ok(sent) => out.extend(chunk[..sent].iter().map(|(_, p)| Ok(p.len()))),
                Err(e) if e == rustix::io::Errno::AGAIN => {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                // The first datagram failed (sendmmsg reports an error only
                // when nothing was sent): it gets the error, the rest go on.
                Err(e) => out.push(Err(io::Error::from(e))),
            }
        }
        Ok(out.len() - start)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use super::*;
    use crate::runtime::{Direction, SockRef};

    /// A std socket that only lends itself through `try_io`, counting the calls.
    #[derive(Debug)]
    struct Lent {
        socket: UdpSocket,
        calls: AtomicUsize,
    }

    impl Lent {
        fn bind() -> Self {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bound");
            socket.set_nonblocking(true).expect("non-blocking");
            Lent {
                socket,
                calls: AtomicUsize::new(0),
            }
        }
    }

    impl AsyncUdpSocket for Lent {
        fn poll_recv_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn try_recv_from(&self, _: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            Err(io::ErrorKind::Unsupported.into())
        }

        fn poll_send_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn try_send_to(&self, _: &[u8], _: SocketAddr) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }

        fn local_addr(&self) -> io::Result<SocketAddr> {
            self.socket.local_addr()
        }

        fn try_io(
            &self,
            _: Direction,
            io: &mut dyn FnMut(SockRef<'_>) -> io::Result<usize>,
        ) -> io::Result<usize> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            io(SockRef::from(&self.socket))
        }
    }

    fn datagrams(items: &[Received]) -> Vec<(SocketAddr, Vec<u8>)> {
        items
            .iter()
            .filter_map(|item| match item {
                Received::Datagram { src, payload } => Some((*src, payload.to_vec())),
                _ => None,
            })
            .collect()
    }

    fn kernel_drops(items: &[Received]) -> u64 {
        items
            .iter()
            .map(|item| match item {
                Received::KernelDrops(n) => *n,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn one_recvmmsg_reads_every_ready_datagram_with_its_sender() {
        let reader = Lent::bind();
        let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
        let to = reader.local_addr().expect("addr");
        let sent: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![7; 1500], Vec::new()];
        for payload in &sent {
            peer.send_to(payload, to).expect("sent");
        }
        let mut items = Vec::new();
        let mut seen = 0;
        recv_batch(&reader, &mut seen, &mut items, 64).expect("read");
        assert_eq!(reader.calls.load(Ordering::SeqCst), 1);
        let from = peer.local_addr().expect("addr");
        let want: Vec<_> = sent.into_iter().map(|p| (from, p)).collect();
        assert_eq!(datagrams(&items), want);
        let again = recv_batch(&reader, &mut seen, &mut items, 64);
        assert_eq!(again.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }

    #[test]
    fn what_the_kernel_dropped_is_reported_before_the_datagram_that_tells_it() {
        let reader = Lent::bind();
        // The smallest buffer Linux grants: a few datagrams.
        SockRef::from(&reader.socket)
            .set_recv_buffer_size(1)
            .expect("SO_RCVBUF");
        nix::sys::socket::setsockopt(&reader.socket, nix::sys::socket::sockopt::RxqOvfl, &1)
            .expect("SO_RXQ_OVFL");
        let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
        let to = reader.local_addr().expect("addr");
        let burst = 200;
        for i in 0..burst {
            peer.send_to(&[i as u8; 1000], to).expect("sent");
        }
        let mut items = Vec::new();
        let mut seen = 0;
        while recv_batch(&reader, &mut seen, &mut items, 64).is_ok() {}
        // The drops after the last queued datagram come with the next one.
        peer.send_to(b"last", to).expect("sent");
        recv_batch(&reader, &mut seen, &mut items, 64).expect("the last one");

        let read = datagrams(&items).len() as u64;
        assert!(read < burst, "nothing was dropped: the test proves nothing");
        assert_eq!(read + kernel_drops(&items), burst + 1);
        assert!(
            matches!(items.last(), Some(Received::Datagram { payload, .. }) if payload == "last")
        );
        assert!(
            matches!(items[items.len() - 2], Received::KernelDrops(_)),
            "the count comes first"
        );
    }

    #[test]
    fn a_batch_goes_out_in_order_and_a_bad_datagram_fails_alone() {
        let sender = Lent::bind();
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("receiver");
        let to = receiver.local_addr().expect("addr");
        // An IPv6 destination cannot be reached from an IPv4 socket.
        let bad: SocketAddr = "[::1]:9".parse().expect("addr");
        let mut batch: Vec<(SocketAddr, Bytes)> = (0..40u8)
            .map(|i| (to, Bytes::from(vec![i; usize::from(i) + 1])))
            .collect();
        batch[5].0 = bad;
        let mut outcomes = Vec::new();
        send_batch(&sender, &batch, &mut outcomes).expect("all sent");
        assert_eq!(outcomes.len(), 40);
        for (i, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Ok(n) => assert_eq!((i != 5, *n), (true, i + 1)),
                Err(_) => assert_eq!(i, 5, "only the bad one fails"),
            }
        }
        let mut buf = [0; 64];
        for i in (0..40).filter(|&i| i != 5) {
            let (n, _) = receiver.recv_from(&mut buf).expect("received");
            assert_eq!(n, i + 1, "in order");
        }
        assert_eq!(
            sender.calls.load(Ordering::SeqCst),
            1,
            "one lend of the socket for the whole batch"
        );
    }
}
