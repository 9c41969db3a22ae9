//! A binding's UDP socket: shared by the driver (sends) and its reader task
//! (receives), closed by the driver at once when the engine says so.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{PoisonError, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use event_listener::Event;
use porthole_core::{BindingId, ReceiveError};

use crate::runtime::AsyncUdpSocket;
use crate::udp;

/// Most datagrams read in one batch before it is handed to the driver, so one
/// busy socket cannot starve the others on the same thread. A scheduling
/// detail: what is read and not yet fed waits in the driver while the engine
/// has paused the binding's reads, so the batch size decides no loss.
const MAX_BATCH: usize = 64;

/// What a reader got from its socket.
#[derive(Debug)]
pub(crate) enum Received {
    /// A datagram.
    Datagram {
        /// Who sent it.
        src: SocketAddr,
        /// Its bytes.
        payload: Bytes,
    },
    /// The kernel dropped this many datagrams (its receive buffer was full)
    /// since it last said so; reported before the datagram that told.
    KernelDrops(u64),
    /// A receive failed (typically an ICMP error the kernel surfaced).
    Error(ReceiveError),
}

/// A batch of what one binding's socket had ready.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) binding: BindingId,
    pub(crate) items: Vec<Received>,
}

/// The socket of one binding.
///
/// The driver holds one reference and the reader task another; closing takes
/// the socket out under the write lock, so the port is free as soon as
/// [`SocketSlot::close`] returns, whatever the reader task is doing.
#[derive(Debug)]
pub(crate) struct SocketSlot {
    socket: RwLock<Option<Box<dyn AsyncUdpSocket>>>,
    /// Held by the one task at a time that waits for the socket to become
    /// writable: runtimes keep one waker per direction, so two waiting senders
    /// would lose a wake-up (tokio) or wake each other in turn (async-io).
    send_turn: async_lock::Mutex<()>,
    /// Closed (never sent on) when the socket is closed, to wake the tasks that wait on it.
    stop_tx: async_channel::Sender<Infallible>,
    stop_rx: async_channel::Receiver<Infallible>,
    /// Set between the engine's `PauseReads` and `ResumeReads` for the
    /// binding: the reader then leaves datagrams in the kernel's buffer.
    paused: AtomicBool,
    /// Notified on `ResumeReads`.
    resumed: Event,
    /// The kernel's cumulative drop count as last reported (only the reader
    /// reads and writes it).
    drops_seen: AtomicU32,
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the binding's socket is closed",
    )
}

impl SocketSlot {
    pub(crate) fn new(socket: Box<dyn AsyncUdpSocket>) -> Self {
        let (stop_tx, stop_rx) = async_channel::bounded(1);
        SocketSlot {
            socket: RwLock::new(Some(socket)),
            send_turn: async_lock::Mutex::new(()),
            stop_tx,
            stop_rx,
            paused: AtomicBool::new(false),
            resumed: Event::new(),
            drops_seen: AtomicU32::new(0),
        }
    }

    /// Applies the engine's `PauseReads`: the reader stops reading.
    pub(crate) fn pause_reads(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Applies the engine's `ResumeReads`: the reader reads again at once
    /// (it waits for no readiness event: none comes for datagrams that
    /// arrived during the pause).
    pub(crate) fn resume_reads(&self) {
        if self.paused.swap(false, Ordering::AcqRel) {
            self.resumed.notify(usize::MAX);
        }
    }

    fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Resolves once reads are not paused.
    async fn reads_resumed(&self) {
        loop {
            if !self.is_paused() {
                return;
            }
            let listener = self.resumed.listen();
            if !self.is_paused() {
                return;
            }
            listener.await;
        }
    }

    /// Closes the socket now and wakes every task waiting on it.
    pub(crate) fn close(&self) {
        let socket = self
            .socket
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(socket);
        self.stop_tx.close();
    }

    /// Resolves once the socket is closed.
    pub(crate) async fn closed(&self) {
        // Nothing is ever sent: `recv` returns only when the channel closes.
        let _ = self.stop_rx.recv().await;
    }

    /// Sends `batch` in order without blocking (several datagrams per syscall
    /// where the OS can), appending each one's outcome to `out`; stops when
    /// the socket's buffer is full, leaving the datagrams from `out.len()` on.
    pub(crate) fn try_send_batch(
        &self,
        batch: &[(SocketAddr, Bytes)],
        out: &mut Vec<io::Result<usize>>,
    ) {
        let guard = self.socket.read().unwrap_or_else(PoisonError::into_inner);
        let Some(socket) = guard.as_ref() else {
            out.extend(batch.iter().map(|_| Err(closed_error())));
            return;
        };
        // Would block: the caller sends the rest once the socket is writable.
        let _ = udp::send_batch(&**socket, batch, out);
    }

    /// Sends once the socket is writable, waiting behind any other sender
    /// that is already waiting.
    pub(crate) async fn send_to(&self, payload: &[u8], dest: SocketAddr) -> io::Result<usize> {
        let _turn = self.send_turn.lock().await;
        futures_lite::future::poll_fn(|cx| self.poll_send_to(cx, payload, dest)).await
    }

    /// Sends once the socket is writable.
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        payload: &[u8],
        dest: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let guard = self.socket.read().unwrap_or_else(PoisonError::into_inner);
        let Some(socket) = guard.as_ref() else {
            return Poll::Ready(Err(closed_error()));
        };
        loop {
            if let Err(e) = std::task::ready!(socket.poll_send_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            match socket.try_send_to(payload, dest) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                outcome => return Poll::Ready(outcome),
            }
        }
    }

    /// Reads every datagram ready (up to [`MAX_BATCH`]) into `items`. Ready with
    /// `false` once the socket is closed; pending only when nothing was read.
    pub(crate) fn poll_batch(&self, cx: &mut Context<'_>, items: &mut Vec<Received>) -> Poll<bool> {
        let guard = self.socket.read().unwrap_or_else(PoisonError::into_inner);
        let Some(socket) = guard.as_ref() else {
            return Poll::Ready(false);
        };
        let mut drops_seen = self.drops_seen.load(Ordering::Relaxed);
        'ready: while items.len() < MAX_BATCH {
            match socket.poll_recv_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => {
                    items.push(Received::Error(ReceiveError::from_io(&e)));
                    break;
                }
                Poll::Ready(Ok(())) => {}
            }
            while items.len() < MAX_BATCH {
                let room = MAX_BATCH - items.len();
                match udp::recv_batch(&**socket, &mut drops_seen, items, room) {
                    Ok(()) => {}
                    // Wait for readiness again (which registers the waker).
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue 'ready,
                    Err(e) => {
                        // Typically an ICMP error from an earlier send; the
                        // next read gets the next datagram, but hand the
                        // batch over first so a persistent error cannot spin.
                        items.push(Received::Error(ReceiveError::from_io(&e)));
                        break 'ready;
                    }
                }
            }
        }
        self.drops_seen.store(drops_seen, Ordering::Relaxed);
        if items.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(true)
        }
    }
}

/// A binding's reader: reads batches until the socket is closed or the driver
/// is gone, waiting while the engine has paused the binding's reads (how long
/// is the engine's decision: it resumes them itself at its pause limit).
pub(crate) async fn read_socket(
    binding: BindingId,
    slot: std::sync::Arc<SocketSlot>,
    batches: async_channel::Sender<Batch>,
) {
    use futures_lite::future::{or, poll_fn};
    loop {
        // A closed socket ends the wait too; the read below then sees it.
        or(slot.reads_resumed(), slot.closed()).await;
        let mut items = Vec::new();
        let open = or(poll_fn(|cx| slot.poll_batch(cx, &mut items)), async {
            slot.closed().await;
            false
        })
        .await;
        if !open {
            return;
        }
        let full = items.len() >= MAX_BATCH;
        let batch = Batch { binding, items };
        let delivered = or(async { batches.send(batch).await.is_ok() }, async {
            slot.closed().await;
            false
        })
        .await;
        if !delivered {
            return;
        }
        if full {
            // More is likely waiting: give the driver and the event streams a
            // turn before reading it. A socket that always has datagrams would
            // otherwise keep this task running (tokio polls a task until it
            // returns pending). A short batch emptied the socket: the next
            // read waits for the reactor anyway, and a yield would only cost
            // a scheduling round (on tokio, the wake-up of an idle worker).
            futures_lite::future::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Wake, Waker};

    use super::*;

    /// A socket whose send buffer is full until `writable` is set and which,
    /// like tokio's and async-io's, keeps only the latest waker per direction.
    #[derive(Debug, Default)]
    struct FullSocket {
        writable: AtomicBool,
        send_waker: Mutex<Option<Waker>>,
    }

    #[derive(Debug)]
    struct Shared(Arc<FullSocket>);

    impl AsyncUdpSocket for Shared {
        fn poll_recv_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }

        fn try_recv_from(&self, _: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            Err(io::ErrorKind::WouldBlock.into())
        }

        fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if self.0.writable.load(Ordering::SeqCst) {
                return Poll::Ready(Ok(()));
            }
            *self.0.send_waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }

        fn try_send_to(&self, buf: &[u8], _: SocketAddr) -> io::Result<usize> {
            if self.0.writable.load(Ordering::SeqCst) {
                Ok(buf.len())
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        }

        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok(SocketAddr::from(([127, 0, 0, 1], 9)))
        }
    }

    /// A task's waker for an executor that polls only woken tasks.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    type Task<'a> = (
        Pin<Box<dyn Future<Output = io::Result<usize>> + 'a>>,
        Arc<Flag>,
    );

    fn task<'a>(future: impl Future<Output = io::Result<usize>> + 'a) -> Task<'a> {
        // Runnable at first, as a freshly spawned task is.
        (Box::pin(future), Arc::new(Flag(AtomicBool::new(true))))
    }

    /// Polls every woken task until none is woken; returns what the finished ones sent.
    fn run_woken(tasks: &mut Vec<Task<'_>>) -> Vec<usize> {
        let mut sent = Vec::new();
        while tasks.iter().any(|(_, flag)| flag.0.load(Ordering::SeqCst)) {
            tasks.retain_mut(|(future, flag)| {
                if !flag.0.swap(false, Ordering::SeqCst) {
                    return true;
                }
                let waker = Waker::from(Arc::clone(flag));
                match future.as_mut().poll(&mut Context::from_waker(&waker)) {
                    Poll::Ready(outcome) => {
                        sent.push(outcome.expect("sent"));
                        false
                    }
                    Poll::Pending => true,
                }
            });
        }
        sent
    }

    fn idle_slot() -> SocketSlot {
        SocketSlot::new(Box::new(Shared(Arc::new(FullSocket::default()))))
    }

    #[test]
    fn resuming_reads_wakes_the_waiting_reader() {
        let slot = idle_slot();
        slot.pause_reads();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut resumed = Box::pin(slot.reads_resumed());
        assert!(resumed.as_mut().poll(&mut cx).is_pending());
        slot.pause_reads();
        assert!(!flag.0.load(Ordering::SeqCst), "still paused: no wake-up");
        slot.resume_reads();
        assert!(flag.0.load(Ordering::SeqCst), "the reader was not woken");
        assert!(resumed.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn senders_waiting_on_a_full_socket_all_finish_once_it_drains() {
        let socket = Arc::new(FullSocket::default());
        let slot = SocketSlot::new(Box::new(Shared(Arc::clone(&socket))));
        let dest = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut tasks = vec![
            task(slot.send_to(b"first", dest)),
            task(slot.send_to(b"second", dest)),
        ];
        assert!(run_woken(&mut tasks).is_empty());
        assert_eq!(tasks.len(), 2, "both wait while the buffer is full");

        // The buffer drains: the reactor wakes the one waker it holds.
        socket.writable.store(true, Ordering::SeqCst);
        if let Some(waker) = socket.send_waker.lock().unwrap().take() {
            waker.wake();
        }
        assert_eq!(run_woken(&mut tasks), vec![5, 6]);
        assert!(tasks.is_empty(), "a waiting sender was never woken");
    }
}
