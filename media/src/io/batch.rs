//! Batched UDP for the media thread: `recvmmsg` (and GRO) in, UDP GSO out, and a wait that
//! wakes on a datagram or a deadline. quinn-udp does the syscalls and control messages; mio
//! does the waiting (epoll).
use std::io::{self, ErrorKind, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use quinn_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSocketState};

/// One receive buffer: room for a GRO-coalesced train of datagrams.
const BUF_BYTES: usize = u16::MAX as usize;
/// Bytes of one GSO send at most (a UDP datagram's payload limit on IPv4, with headroom).
const GSO_BYTES: usize = 64_000;

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
    /// Datagrams to one destination, laid end to end for a single GSO send.
    train: Vec<u8>,
    train_to: Option<SocketAddr>,
    train_segment: usize,
}

impl BatchSocket {
    pub fn new(socket: UdpSocket) -> io::Result<BatchSocket> {
        let state = UdpSocketState::new((&socket).into())?;
        let mut socket = mio::net::UdpSocket::from_std(socket);
        let poll = Poll::new()?;
        poll.registry().register(&mut socket, Token(0), Interest::READABLE)?;
        Ok(BatchSocket {
            socket,
            state,
            poll,
            events: Events::with_capacity(4),
            readable: true,
            train: Vec::with_capacity(GSO_BYTES),
            train_to: None,
            train_segment: 0,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Block until a datagram is queued or `timeout` passes; returns at once while datagrams
    /// may be queued still. True when the socket may be read.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        if self.readable {
            return Ok(true);
        }
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.readable = !self.events.is_empty();
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

    /// Queue one datagram. Consecutive datagrams to one destination go out in one GSO send
    /// while they share a size (the last of a train may be shorter).
    pub fn send(&mut self, destination: SocketAddr, datagram: &[u8]) {
        let joins = self.train_to == Some(destination)
            && datagram.len() <= self.train_segment
            && self.train.len().is_multiple_of(self.train_segment)
            && self.train.len() + datagram.len() <= GSO_BYTES
            && self.train.len() / self.train_segment < self.state.max_gso_segments();
        if !joins {
            self.flush();
            self.train_to = Some(destination);
            self.train_segment = datagram.len().max(1);
        }
        self.train.extend_from_slice(datagram);
    }

    /// Send the queued train, if any.
    pub fn flush(&mut self) {
        let Some(destination) = self.train_to.take() else {
            return;
        };
        let segment = self.train_segment;
        let gso = self.train.len() > segment;
        let t = Transmit {
            destination,
            ecn: None,
            contents: &self.train,
            segment_size: gso.then_some(segment),
            src_ip: None,
        };
        match self.state.try_send((&self.socket).into(), &t) {
            Ok(()) => {}
            // A kernel or device that refuses GSO fails the send with EIO or EINVAL, and
            // quinn-udp turns segmentation off for the socket (`max_gso_segments` 1, so no
            // more trains form): this train goes out one datagram at a time, not lost.
            Err(_) if gso && self.state.max_gso_segments() == 1 => {
                for d in self.train.chunks(segment) {
                    let one =
                        Transmit { destination, ecn: None, contents: d, segment_size: None, src_ip: None };
                    let _ = self.state.try_send((&self.socket).into(), &one);
                }
            }
            // Other errors (an unreachable peer, a full send buffer) drop the datagrams, as
            // the network would.
            Err(_) => {}
        }
        self.train.clear();
    }
}
