//! Several media workers behind one UDP port. Every conference lives on one worker (all its
//! endpoints with it, so forwarding never crosses threads). Each worker has its own socket on
//! the port (an `SO_REUSEPORT` group: the kernel spreads clients over the sockets by a hash of
//! their address) and reads it itself; a datagram for an endpoint of another worker is handed
//! to that worker:
//! - STUN by the ICE ufrag in its USERNAME, whose first two characters name the worker that
//!   made it (no table: an endpoint's first packet already goes to the right place);
//! - DTLS/RTP/RTCP by source address, learned from the workers: an address enters the table
//!   only once its endpoint's worker has checked a STUN request from it (message integrity),
//!   so a stranger cannot steer someone else's address;
//! - anything else (strangers, probes) by a hash of the source, so its worker counts the drop.
//!
//! Why not a steering thread: it cost every datagram a hop and two wake-ups (measured: two
//! workers kept 0.70-0.90x of one worker's forwarding per core). With the group, a datagram
//! that lands on its own worker takes no hop. Why not a BPF program choosing the socket: it
//! needs privileges and a loader, and cBPF cannot read our address table.
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::Command;
use crate::sfu::demux::{self, Kind};

/// Most workers (two decimal digits in the ufrag).
pub const MAX_WORKERS: usize = 64;
/// Batches queued towards one worker before the steering drops them (a worker that far
/// behind sheds load instead of holding memory).
pub const WORKER_QUEUE: usize = 256;

/// The ufrag prefix of worker `w`.
pub fn ufrag_prefix(w: usize) -> String {
    format!("{w:02}")
}

fn worker_of_ufrag(ufrag: &str) -> Option<usize> {
    ufrag.get(..2)?.parse().ok()
}

/// Which worker a datagram belongs to; shared by the steering thread and ICE-TCP.
pub struct Steering {
    workers: usize,
    addrs: RwLock<HashMap<SocketAddr, usize>>,
    hasher: RandomState,
}

impl Steering {
    pub fn new(workers: usize) -> Steering {
        Steering { workers, addrs: RwLock::default(), hasher: RandomState::new() }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The worker for a datagram from `source`; `table` is the address table, read-locked by
    /// the caller once per batch.
    fn pick(&self, table: &HashMap<SocketAddr, usize>, source: SocketAddr, buf: &[u8]) -> usize {
        let by_kind = match demux::classify(buf) {
            Kind::Stun => demux::stun_local_ufrag(buf).as_deref().and_then(worker_of_ufrag),
            Kind::Dtls | Kind::Rtp => table.get(&source).copied(),
            Kind::Unknown => None,
        };
        by_kind
            .filter(|w| *w < self.workers)
            .unwrap_or_else(|| (self.hasher.hash_one(source) % self.workers as u64) as usize)
    }

    pub fn worker_for(&self, source: SocketAddr, buf: &[u8]) -> usize {
        let table = self.addrs.read().unwrap_or_else(|e| e.into_inner());
        self.pick(&table, source, buf)
    }

    pub fn learn(&self, addr: SocketAddr, worker: usize) {
        self.addrs.write().unwrap_or_else(|e| e.into_inner()).insert(addr, worker);
    }

    pub fn forget(&self, addr: SocketAddr, worker: usize) {
        let mut t = self.addrs.write().unwrap_or_else(|e| e.into_inner());
        if t.get(&addr) == Some(&worker) {
            t.remove(&addr);
        }
    }
}

/// Datagrams of one receive batch for one worker, laid end to end in one buffer.
#[derive(Debug, Default)]
pub struct Datagrams {
    buf: Vec<u8>,
    items: Vec<(SocketAddr, Range<usize>)>,
    /// When the batch was read (the latency clock starts there).
    pub received: Option<Instant>,
}

impl Datagrams {
    fn push(&mut self, source: SocketAddr, d: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(d);
        self.items.push((source, start..self.buf.len()));
    }

    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.items.iter().map(|(s, r)| (*s, &self.buf[r.clone()]))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What a worker of several is given: datagrams other workers read for it, and commands.
#[derive(Debug)]
pub enum WorkerInput {
    Datagrams(Datagrams),
    Command(Command),
}

/// A worker's input channel, and the waker of its socket wait.
#[derive(Clone)]
pub struct WorkerTx {
    tx: Sender<WorkerInput>,
    waker: Arc<mio::Waker>,
}

impl WorkerTx {
    pub fn new(tx: Sender<WorkerInput>, waker: mio::Waker) -> WorkerTx {
        WorkerTx { tx, waker: Arc::new(waker) }
    }

    /// False when the worker is gone.
    pub fn send(&self, input: WorkerInput) -> bool {
        let sent = self.tx.send(input).is_ok();
        // A failed wake (an eventfd at its limit) means the worker has a wake-up pending.
        let _ = self.waker.wake();
        sent
    }
}

impl Steering {
    /// Sorts one read of worker `me`'s socket: its own datagrams into `own` (in order), the
    /// others' into one batch per worker that has any.
    pub fn sort<'a>(
        &self,
        me: usize,
        datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
        received: Instant,
        own: &mut Vec<(SocketAddr, &'a [u8])>,
    ) -> Vec<(usize, Datagrams)> {
        let mut others: Vec<(usize, Datagrams)> = Vec::new();
        let table = self.addrs.read().unwrap_or_else(|e| e.into_inner());
        for (source, d) in datagrams {
            let w = self.pick(&table, source, d);
            if w == me {
                own.push((source, d));
                continue;
            }
            let i = match others.iter().position(|(o, _)| *o == w) {
                Some(i) => i,
                None => {
                    others.push((w, Datagrams { received: Some(received), ..Datagrams::default() }));
                    others.len() - 1
                }
            };
            others[i].1.push(source, d);
        }
        others
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(user: &str) -> Vec<u8> {
        // Binding request header, then USERNAME (0x0006).
        let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[7; 12]);
        let len = user.len() as u16;
        m.extend_from_slice(&[0x00, 0x06]);
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(user.as_bytes());
        while m.len() % 4 != 0 {
            m.push(0);
        }
        let body = (m.len() - 20) as u16;
        m[2..4].copy_from_slice(&body.to_be_bytes());
        m
    }

    #[test]
    fn stun_by_ufrag_media_by_learned_address_strangers_by_hash() {
        let s = Steering::new(3);
        let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        // STUN names its worker in the local ufrag (USERNAME is "local:remote").
        assert_eq!(s.worker_for(client, &stun_with_username("02abcdef:xyz")), 2);
        assert_eq!(s.worker_for(client, &stun_with_username("01abcdef:xyz")), 1);
        // A ufrag naming no worker goes by hash, like any stranger: always the same one.
        let stranger = s.worker_for(client, &stun_with_username("77abcdef:xyz"));
        assert!(stranger < 3);
        assert_eq!(s.worker_for(client, &[0xff, 1, 2]), stranger);
        // RTP (first byte 128..191) follows the address once its worker learned it.
        let rtp = [0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        s.learn(client, 1);
        assert_eq!(s.worker_for(client, &rtp), 1);
        // Only the worker that learned an address can make the table forget it.
        s.forget(client, 2);
        assert_eq!(s.worker_for(client, &rtp), 1);
        s.forget(client, 1);
        assert_eq!(s.worker_for(client, &rtp), stranger);
        assert_eq!(worker_of_ufrag(&ufrag_prefix(7)), Some(7));
    }

    #[test]
    fn a_read_keeps_its_own_datagrams_in_order_and_batches_the_rest_per_worker() {
        type Read = Vec<(SocketAddr, Vec<u8>)>;
        let s = Steering::new(3);
        let (a, b, c): (SocketAddr, SocketAddr, SocketAddr) = (
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:5001".parse().unwrap(),
            "127.0.0.1:5002".parse().unwrap(),
        );
        s.learn(a, 0);
        s.learn(b, 2);
        let rtp = |n: u8| vec![0x80, 0x60, 0, n, 0, 0, 0, 0, 0, 0, 0, 1];
        let stun = stun_with_username("01abcdef:xyz");
        let read: Read = vec![(a, rtp(1)), (b, rtp(2)), (c, stun.clone()), (a, rtp(3)), (b, rtp(4))];
        let mut own = Vec::new();
        let t = Instant::now();
        let others = s.sort(0, read.iter().map(|(s, d)| (*s, d.as_slice())), t, &mut own);
        assert_eq!(own, vec![(a, &rtp(1)[..]), (a, &rtp(3)[..])]);
        let got: Vec<(usize, Read)> =
            others.iter().map(|(w, d)| (*w, d.iter().map(|(s, d)| (s, d.to_vec())).collect())).collect();
        assert_eq!(got, vec![(2, vec![(b, rtp(2)), (b, rtp(4))]), (1, vec![(c, stun)])]);
        assert!(others.iter().all(|(_, d)| d.received == Some(t)));
    }
}
