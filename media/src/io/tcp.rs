//! ICE-TCP (passive, RFC 6544) with RFC 4571 framing: each packet is prefixed by a 16-bit
//! length. Connections are plain tokio tasks that hand packets to the media thread.
//!
//! Anyone can open TCP connections, so what they can hold is bounded: a connection the bridge
//! has not answered (no valid STUN binding yet) is closed after a handshake timeout, each source
//! address may hold a few connections, and when the total is reached the oldest unanswered
//! connection makes room. Held-open sockets therefore cannot lock out real TCP-only clients.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::debug;

use super::Command;
use super::dispatch::Dispatch;
use super::udp::TcpWriters;
use crate::io::admission::{self, Admission, Held};
use crate::metrics::{DropReason, Metrics};

/// Largest packet accepted on ICE-TCP (an RTP packet is ~1200 bytes).
const MAX_FRAME: usize = 2048;
/// Frames queued towards one slow TCP client before more are dropped (as a full link would).
pub const WRITE_QUEUE: usize = 512;

/// What ICE-TCP connections may hold.
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    /// Connections in total.
    pub max_connections: usize,
    /// Connections from one source address.
    pub max_per_source: usize,
    /// Time a connection has to get an answer from the bridge (a valid STUN binding).
    pub handshake_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits { max_connections: 4096, max_per_source: 16, handshake_timeout: Duration::from_secs(5) }
    }
}

struct Conn {
    ip: IpAddr,
    opened: Instant,
    /// The bridge has written to it: its ICE check passed.
    answered: Arc<AtomicBool>,
    tasks: [AbortHandle; 2],
}

/// The open connections, to count and evict.
struct Table {
    conns: HashMap<SocketAddr, Conn>,
    writers: TcpWriters,
    metrics: Arc<Metrics>,
}

impl Table {
    /// Make room for a connection from `ip`; false when it must be refused.
    fn admit(&mut self, ip: IpAddr, limits: &TcpLimits) -> bool {
        let held = self.conns.iter().map(|(peer, c)| Held {
            peer: *peer,
            ip: c.ip,
            opened: c.opened.into_std(),
            proven: c.answered.load(Ordering::Relaxed),
        });
        match admission::admit(held, ip, limits.max_per_source, limits.max_connections) {
            Admission::Admit => true,
            Admission::Refuse => false,
            Admission::Evict(peer) => {
                self.close(&peer);
                self.metrics.count_drop(DropReason::TcpUnanswered);
                debug!(%peer, "ice-tcp: oldest unanswered connection evicted to make room");
                true
            }
        }
    }

    fn close(&mut self, peer: &SocketAddr) {
        if let Some(c) = self.conns.remove(peer) {
            c.tasks.iter().for_each(AbortHandle::abort);
        }
        if let Ok(mut w) = self.writers.lock() {
            w.remove(peer);
        }
    }
}

/// Accept ICE-TCP connections forever. `advertised` is the TCP candidate address that the
/// media thread passes to str0m as the packets' destination.
pub async fn serve(
    listener: TcpListener,
    advertised: SocketAddr,
    dispatch: Arc<Dispatch>,
    writers: TcpWriters,
    limits: TcpLimits,
    metrics: Arc<Metrics>,
) {
    let table = Arc::new(Mutex::new(Table {
        conns: HashMap::new(),
        writers: writers.clone(),
        metrics: metrics.clone(),
    }));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!("ice-tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // One critical section from the check to the insert, so a connection that closes at
        // once cannot leave a stale entry behind.
        let Ok(mut t) = table.lock() else { return };
        if !t.admit(peer.ip(), &limits) {
            metrics.count_drop(DropReason::TcpRefused);
            debug!(%peer, "ice-tcp connection refused: limit reached");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        if let Ok(mut w) = writers.lock() {
            w.insert(peer, tx);
        }
        let answered = Arc::new(AtomicBool::new(false));
        let answered_w = answered.clone();
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                answered_w.store(true, Ordering::Relaxed);
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        let (dispatch, table_r, answered_r, metrics) =
            (dispatch.clone(), table.clone(), answered.clone(), metrics.clone());
        let opened = Instant::now();
        let reader = tokio::spawn(async move {
            let deadline = opened + limits.handshake_timeout;
            let mut buf = vec![0u8; MAX_FRAME];
            loop {
                let read = async {
                    let mut len = [0u8; 2];
                    rd.read_exact(&mut len).await?;
                    let n = u16::from_be_bytes(len) as usize;
                    if n == 0 || n > MAX_FRAME {
                        return Ok(None);
                    }
                    rd.read_exact(&mut buf[..n]).await.map(|_| Some(n))
                };
                // Until the bridge answered, the handshake deadline bounds every read.
                let n = if answered_r.load(Ordering::Relaxed) {
                    read.await
                } else {
                    match tokio::time::timeout_at(deadline, read).await {
                        Ok(r) => r,
                        Err(_) => {
                            metrics.count_drop(DropReason::TcpUnanswered);
                            break;
                        }
                    }
                };
                let n = match n {
                    Ok(Some(n)) => n,
                    Ok(None) => {
                        metrics.count_drop(DropReason::TcpFraming);
                        break;
                    }
                    Err(_) => break,
                };
                let cmd =
                    Command::TcpPacket { source: peer, destination: advertised, data: buf[..n].to_vec() };
                dispatch.send(cmd);
            }
            if let Ok(mut t) = table_r.lock() {
                t.close(&peer);
            }
            debug!(%peer, "ice-tcp connection closed");
        });
        let tasks = [reader.abort_handle(), writer.abort_handle()];
        t.conns.insert(peer, Conn { ip: peer.ip(), opened, answered, tasks });
    }
}
