//! The media thread: one UDP socket for every endpoint, plus commands from the async side.
//!
//! A plain OS thread (not a tokio task): media is the hot path and the core is synchronous.
//! The async side wakes the thread by sending one byte from a private "waker" socket, so
//! control messages and ICE-TCP packets are handled immediately even while UDP is idle.
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::net::Protocol;
use tokio::sync::mpsc::Sender;
use tracing::{info, warn};

use super::Command;
use super::latency::LatencyHistogram;
use crate::metrics::Metrics;
use crate::sfu::ratelimit::TokenBucket;
use crate::sfu::{Sfu, SfuCounters};

/// Frames to send on ICE-TCP connections, by the client's address.
pub type TcpWriters = Arc<Mutex<HashMap<SocketAddr, Sender<Vec<u8>>>>>;

/// Wakes the media thread (cloneable, cheap).
#[derive(Clone)]
pub struct Waker {
    socket: Arc<UdpSocket>,
    target: SocketAddr,
}

impl Waker {
    pub fn new(media: SocketAddr) -> std::io::Result<Waker> {
        // Reach the media socket on loopback when it is bound to a wildcard address.
        let target_ip = match media.ip() {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let target = SocketAddr::new(target_ip, media.port());
        let socket = UdpSocket::bind(SocketAddr::new(target_ip, 0))?;
        socket.set_nonblocking(true)?;
        Ok(Waker { socket: Arc::new(socket), target })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    pub fn wake(&self) {
        // A full socket buffer means the thread is already busy: nothing to do.
        let _ = self.socket.send_to(&[0xff], self.target);
    }
}

pub struct MediaLoop {
    pub sfu: Sfu,
    pub socket: UdpSocket,
    pub commands: Receiver<Command>,
    pub control_out: crate::control_queue::ControlOut,
    pub tcp_writers: TcpWriters,
    pub waker_addr: Option<SocketAddr>,
    /// Local candidate address per IP family (passed as the datagram destination to str0m).
    pub udp_local_v4: Option<SocketAddr>,
    pub udp_local_v6: Option<SocketAddr>,
    pub latency: Arc<LatencyHistogram>,
    pub metrics: Arc<Metrics>,
    /// The core's counters as last copied into `metrics`.
    pub exported: SfuCounters,
}

const MAX_WAIT: Duration = Duration::from_millis(20);

impl MediaLoop {
    pub fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut current_wait = Duration::ZERO;
        let mut err_log = TokenBucket::new(1.0, 5.0, Instant::now());
        let local = self.socket.local_addr().ok();
        info!(?local, "media loop running");
        loop {
            if !self.drain_commands() {
                info!("media loop stopping");
                return;
            }
            self.flush_output(None);
            let now = Instant::now();
            let next = self.sfu.next_timeout();
            if next <= now {
                self.sfu.handle_timeout(now);
                continue;
            }
            let wait = (next - now).clamp(Duration::from_millis(1), MAX_WAIT);
            // setsockopt per packet is measurable; only change the timeout when it matters.
            if wait.abs_diff(current_wait) > Duration::from_micros(500)
                && self.socket.set_read_timeout(Some(wait)).is_ok()
            {
                current_wait = wait;
            }
            match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    if Some(source) == self.waker_addr {
                        continue;
                    }
                    let t = Instant::now();
                    let dest = self.destination_for(source);
                    self.sfu.handle_packet(t, Protocol::Udp, source, dest, &buf[..n]);
                    self.flush_output(Some(t));
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => {
                    // ICMP errors surface here on Linux (ConnectionRefused); never fatal.
                    if err_log.allow(Instant::now()) {
                        warn!("udp receive error: {e}");
                    }
                }
            }
        }
    }

    fn destination_for(&self, source: SocketAddr) -> SocketAddr {
        let d = if source.is_ipv4() { self.udp_local_v4 } else { self.udp_local_v6 };
        d.or(self.udp_local_v4)
            .or(self.udp_local_v6)
            .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    /// Returns false on shutdown.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Control(m)) => self.sfu.handle_control(m, Instant::now()),
                Ok(Command::TcpPacket { source, destination, data }) => {
                    let t = Instant::now();
                    self.sfu.handle_packet(t, Protocol::Tcp, source, destination, &data);
                    self.flush_output(Some(t));
                }
                Ok(Command::SetDraining(drain)) => self.sfu.set_draining(drain),
                Ok(Command::Shutdown) => return false,
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Send what the core produced. `received` is when the triggering packet arrived.
    fn flush_output(&mut self, received: Option<Instant>) {
        // Counters first, so whoever sees what this sends also sees it counted.
        let counters = *self.sfu.counters();
        self.metrics.export(&counters, &mut self.exported, self.sfu.drain_rtt_samples());
        while let Some(t) = self.sfu.poll_transmit() {
            match t.proto {
                Protocol::Udp => {
                    // Send errors (unreachable peers, full buffers) drop the datagram, like
                    // the network would.
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                _ => {
                    let len = t.contents.len();
                    if len <= u16::MAX as usize {
                        let mut framed = Vec::with_capacity(len + 2);
                        framed.extend_from_slice(&(len as u16).to_be_bytes());
                        framed.extend_from_slice(&t.contents);
                        if let Ok(w) = self.tcp_writers.lock()
                            && let Some(tx) = w.get(&t.destination)
                        {
                            // A full queue drops the packet, as a congested link would.
                            let _ = tx.try_send(framed);
                        }
                    }
                }
            }
            if let Some(r) = received {
                self.latency.record(r.elapsed());
            }
        }
        while let Some(m) = self.sfu.poll_control() {
            self.control_out.push(m);
        }
    }
}
