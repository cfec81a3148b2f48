//! Batched UDP for the media thread: `recvmmsg` (and GRO) in; out, UDP GSO trains and
//! `sendmmsg` for the single datagrams between them; a wait that wakes on a datagram or a
//! deadline. quinn-udp does `recvmmsg` and GSO with their control messages, rustix `sendmmsg`;
//! mio does the waiting (epoll).
use std::io::{self, ErrorKind, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use quinn_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSocketState};
use rustix::io::Errno;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};

/// One receive buffer: room for a GRO-coalesced train of datagrams.
const BUF_BYTES: usize = u16::MAX as usize;
/// Bytes of one GSO send at most (a UDP datagram's payload limit on IPv4, with headroom).
const GSO_BYTES: usize = 64_000;
/// Messages queued before `send` sends them early: few syscalls, and the first receivers of a
/// big fan-out do not wait for the last ones to be queued.
const MAX_QUEUED: usize = 64;
/// Bytes queued before `send` sends them early.
const MAX_QUEUED_BYTES: usize = 4 << 20;
/// What `wait` waits for: the socket, and a [`mio::Waker`] other threads wake it with.
const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// The buffers of one `recvmmsg`, apart from the socket so that datagrams can be sent while
/// a batch is being read.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    filled: usize,
}

impl RecvBatch {
    pub fn allocate() -> RecvBatch {
        RecvBatch {
            bufs: (0..BATCH_SIZE).map(|_| vec![0u8; BUF_BYTES]).collect(),
            meta: vec![RecvMeta::default(); BATCH_SIZE],
            filled: 0,
        }
    }

    /// The datagrams of the last read with their sources (GRO trains split at their stride).
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta.iter().zip(&self.bufs).take(self.filled).flat_map(|(m, buf)| {
            let stride = if m.stride == 0 { m.len } else { m.stride };
            buf[..m.len].chunks(stride.max(1)).map(move |d| (m.addr, d))
        })
    }
}

pub struct BatchSocket {
    socket: mio::net::UdpSocket,
    state: UdpSocketState,
    poll: Poll,
    events: Events,
    /// Edge-triggered readiness (epoll `EPOLLET`): true until a read shows the socket empty.
    /// Every datagram queued after that read raises a new edge, so `wait` sees it.
    readable: bool,
    /// What `send` queued, end to end, for `flush`: single datagrams and GSO trains.
    out: Vec<u8>,
    queued: Vec<Queued>,
}

/// One message for `flush`: a datagram, or a GSO train of datagrams of `segment` bytes (the
/// last may be shorter) to one destination; its bytes are `out[start..end]`.
struct Queued {
    to: SocketAddr,
    start: usize,
    end: usize,
    segment: usize,
}

impl Queued {
    fn is_train(&self) -> bool {
        self.end - self.start > self.segment
    }
}

impl BatchSocket {
    pub fn new(socket: UdpSocket) -> io::Result<BatchSocket> {
        let state = UdpSocketState::new((&socket).into())?;
        let mut socket = mio::net::UdpSocket::from_std(socket);
        let poll = Poll::new()?;
        poll.registry().register(&mut socket, SOCKET, Interest::READABLE)?;
        Ok(BatchSocket {
            socket,
            state,
            poll,
            events: Events::with_capacity(4),
            readable: true,
            out: Vec::with_capacity(GSO_BYTES),
            queued: Vec::with_capacity(MAX_QUEUED),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Wakes [`wait`](Self::wait) from another thread (one per socket).
    pub fn waker(&self) -> io::Result<mio::Waker> {
        mio::Waker::new(self.poll.registry(), WAKER)
    }

    /// Block until a datagram is queued, the [`waker`](Self::waker) is woken or `timeout`
    /// passes; returns at once while datagrams may be queued still. True when the socket may
    /// be read.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        if self.readable {
            return Ok(true);
        }
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.readable = self.events.iter().any(|e| e.token() == SOCKET);
        Ok(self.readable)
    }

    /// One `recvmmsg` into `batch`; returns how many buffers were filled (0: the socket is
    /// empty). Read the datagrams with [`RecvBatch::datagrams`].
    ///
    /// A full batch leaves the socket readable (more may be queued); a short one means the
    /// queue was empty when the kernel stopped (a non-blocking `recvmmsg` stops early only at
    /// an empty queue or an error, and errors end a read), so `wait` blocks next time instead
    /// of spending a `recvmmsg` to learn it. An error (a socket error is cleared by the read
    /// that reports it) leaves the socket readable: the next read finds out.
    pub fn recv(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut slices: Vec<IoSliceMut<'_>> = batch.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        batch.filled = 0;
        match self.state.recv((&self.socket).into(), &mut slices, &mut batch.meta) {
            Ok(n) => {
                batch.filled = n;
                if n < slices.len() {
                    self.readable = false;
                }
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.readable = false;
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Queue one datagram for [`flush`](Self::flush). Consecutive datagrams to one destination
    /// become one GSO train while they share a size (the last of a train may be shorter).
    /// Returns true when what was queued before went out now, to make room.
    pub fn send(&mut self, destination: SocketAddr, datagram: &[u8]) -> bool {
        let max_segments = self.state.max_gso_segments();
        if let Some(q) = self.queued.last_mut() {
            let len = q.end - q.start;
            let joins = q.to == destination
                && datagram.len() <= q.segment
                && len.is_multiple_of(q.segment)
                && len + datagram.len() <= GSO_BYTES
                && len / q.segment < max_segments;
            if joins {
                self.out.extend_from_slice(datagram);
                q.end = self.out.len();
                return false;
            }
        }
        let full = self.queued.len() >= MAX_QUEUED || self.out.len() >= MAX_QUEUED_BYTES;
        if full {
            self.flush();
        }
        let start = self.out.len();
        self.out.extend_from_slice(datagram);
        self.queued.push(Queued {
            to: destination,
            start,
            end: self.out.len(),
            segment: datagram.len().max(1),
        });
        full
    }

    /// Send what is queued, in order: each GSO train in one `sendmsg`, each run of single
    /// datagrams between them in `sendmmsg` calls.
    pub fn flush(&mut self) {
        let mut i = 0;
        while i < self.queued.len() {
            if self.queued[i].is_train() {
                self.send_train(&self.queued[i]);
                i += 1;
            } else {
                let run = self.queued[i..].iter().take_while(|q| !q.is_train()).count();
                self.send_singles(&self.queued[i..i + run]);
                i += run;
            }
        }
        self.queued.clear();
        self.out.clear();
    }

    fn send_train(&self, q: &Queued) {
        let contents = &self.out[q.start..q.end];
        let t =
            Transmit { destination: q.to, ecn: None, contents, segment_size: Some(q.segment), src_ip: None };
        match self.state.try_send((&self.socket).into(), &t) {
            Ok(()) => {}
            // A kernel or device that refuses GSO fails the send with EIO or EINVAL, and
            // quinn-udp turns segmentation off for the socket (`max_gso_segments` 1, so no
            // more trains form): this train goes out one datagram at a time, not lost.
            Err(_) if self.state.max_gso_segments() == 1 => {
                for d in contents.chunks(q.segment) {
                    let one = Transmit {
                        destination: q.to,
                        ecn: None,
                        contents: d,
                        segment_size: None,
                        src_ip: None,
                    };
                    let _ = self.state.try_send((&self.socket).into(), &one);
                }
            }
            // Other errors (an unreachable peer, a full send buffer) drop the datagrams, as
            // the network would.
            Err(_) => {}
        }
    }

    fn send_singles(&self, run: &[Queued]) {
        let addrs: Vec<SocketAddrAny> = run.iter().map(|q| q.to.as_any()).collect();
        let iovs: Vec<[IoSlice<'_>; 1]> =
            run.iter().map(|q| [IoSlice::new(&self.out[q.start..q.end])]).collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
            run.iter().map(|_| Default::default()).collect();
        let mut msgs: Vec<MMsgHdr<'_>> = addrs
            .iter()
            .zip(&iovs)
            .zip(controls.iter_mut())
            .map(|((a, iov), control)| MMsgHdr::new_with_addr(a, iov, control))
            .collect();
        let mut sent = 0;
        while sent < msgs.len() {
            match sendmmsg(&self.socket, &mut msgs[sent..], SendFlags::empty()) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(Errno::INTR) => {}
                // A full send buffer: the rest is dropped, as the network would.
                Err(Errno::AGAIN | Errno::NOBUFS) => break,
                // The first message's own error (the kernel reports one only when it is the
                // first of a call): skip it, the rest still go.
                Err(_) => sent += 1,
            }
        }
    }
}
