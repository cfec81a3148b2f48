//! Several media workers behind one UDP port. Every conference lives on one worker (all its
//! endpoints with it, so forwarding never crosses threads); one steering thread reads the
//! port in `recvmmsg` batches and hands each datagram to the worker owning its endpoint:
//! - STUN by the ICE ufrag in its USERNAME, whose first two characters name the worker that
//!   made it (no table: an endpoint's first packet already goes to the right place);
//! - DTLS/RTP/RTCP by source address, learned from the workers: an address enters the table
//!   only once its endpoint's worker has checked a STUN request from it (message integrity),
//!   so a stranger cannot steer someone else's address;
//! - anything else (strangers, probes) by a hash of the source, so its worker counts the drop.
//!
//! Why a steering thread rather than `SO_REUSEPORT`: the kernel's reuseport hash knows nothing
//! of our endpoints (a client's packets would land on any worker), and a BPF steering program
//! needs privileges and a loader the bridge does not otherwise have. One thread doing nothing
//! but `recvmmsg` and a hash lookup keeps up with several workers doing DTLS/SRTP and str0m.
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::RwLock;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Command;
use super::batch::{BatchSocket, RecvBatch};
use crate::metrics::{DropReason, Metrics};
use crate::sfu::demux::{self, Kind};
use crate::sfu::ratelimit::TokenBucket;

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
            Kind::Stun => demux::stun_local_ufrag(buf).and_then(worker_of_ufrag),
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

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What a worker of several is given: datagrams from the steering, and commands.
#[derive(Debug)]
pub enum WorkerInput {
    Datagrams(Datagrams),
    Command(Command),
}

/// The steering thread: reads the shared UDP port and hands datagrams to their workers.
pub struct SteerLoop {
    pub socket: BatchSocket,
    pub shared: std::sync::Arc<super::dispatch::Shared>,
    pub workers: Vec<Sender<WorkerInput>>,
    /// Datagrams from this address (the bridge's waker) are dropped: workers are woken by
    /// their channel.
    pub waker_addr: Option<SocketAddr>,
    pub stop: Receiver<()>,
    pub metrics: std::sync::Arc<Metrics>,
}

impl SteerLoop {
    pub fn run(mut self) {
        let mut batch = RecvBatch::allocate();
        let mut err_log = TokenBucket::new(1.0, 5.0, Instant::now());
        let n = self.workers.len();
        info!(workers = n, "steering the media port");
        loop {
            if !matches!(self.stop.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
                info!("steering stopped");
                return;
            }
            match self.socket.wait(Duration::from_millis(100)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    if err_log.allow(Instant::now()) {
                        warn!("udp wait error: {e}");
                    }
                    continue;
                }
            }
            if let Err(e) = self.socket.recv(&mut batch) {
                if err_log.allow(Instant::now()) {
                    warn!("udp receive error: {e}");
                }
                continue;
            }
            let received = Some(Instant::now());
            let mut out: Vec<Datagrams> =
                (0..n).map(|_| Datagrams { received, ..Datagrams::default() }).collect();
            {
                let steering = &self.shared.steering;
                let table = steering.addrs.read().unwrap_or_else(|e| e.into_inner());
                for (source, d) in batch.datagrams() {
                    if Some(source) != self.waker_addr {
                        out[steering.pick(&table, source, d)].push(source, d);
                    }
                }
            }
            for (w, d) in out.into_iter().enumerate() {
                if d.is_empty() {
                    continue;
                }
                if !self.shared.try_enqueue(w) {
                    let count = d.items.len() as u64;
                    self.metrics.dropped.with_label_values(&[DropReason::Overload.label()]).inc_by(count);
                    continue;
                }
                if self.workers[w].send(WorkerInput::Datagrams(d)).is_err() {
                    return;
                }
            }
        }
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
}
