//! The media thread: one UDP socket for every endpoint, plus commands from the async side.
//!
//! A plain OS thread (not a tokio task): media is the hot path and the core is synchronous.
//! The async side wakes the thread by sending one byte from a private "waker" socket, so
//! control messages and ICE-TCP packets are handled immediately even while UDP is idle.
//!
//! Few wake-ups: each wake reads every queued datagram in `recvmmsg` batches, and the thread
//! sleeps for the core's timers (str0m's pacer, BWE, retransmits) no less than a pacing
//! quantum after they last ran, so a paced packet waits up to one quantum instead of waking
//! the thread on its own; timers that are due when the thread is awake anyway run at once.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::net::Protocol;
use tokio::sync::mpsc::Sender;
use tracing::{info, warn};

use super::Command;
use super::batch::{BatchSocket, RecvBatch};
use super::dispatch::Worker;
use super::latency::LatencyHistogram;
use super::steer::WorkerInput;
use crate::metrics::{DropReason, Metrics};
use crate::sfu::ratelimit::TokenBucket;
use crate::sfu::{Census, Sfu, SfuCounters, SteerChange};

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
    /// Set up for batches by the caller, so that a socket the kernel refuses fails start-up.
    /// With several workers, this worker's socket of the port's `SO_REUSEPORT` group.
    pub socket: BatchSocket,
    pub control_out: crate::control_queue::ControlOut,
    pub tcp_writers: TcpWriters,
    /// Local candidate address per IP family (passed as the datagram destination to str0m).
    pub udp_local_v4: Option<SocketAddr>,
    pub udp_local_v6: Option<SocketAddr>,
    pub latency: Arc<LatencyHistogram>,
    pub metrics: Arc<Metrics>,
    /// This worker's index (`worker` label), and with several workers what they share (the
    /// bridge's census is then the sum of all).
    pub worker: usize,
    pub shared: Option<Arc<super::dispatch::Shared>>,
    /// This worker's own census as last exported.
    pub own_census: Census,
    /// The core's counters as last copied into `metrics`.
    pub exported: SfuCounters,
    /// The thread wakes for the core's timers alone at most once per this (see
    /// [`timers_due`]); zero: at each deadline. The bridge's default is [`PACING_QUANTUM`].
    pub pacing_quantum: Duration,
    /// Conferences this worker's core has no endpoint of any more, to give back to the
    /// dispatcher (several workers only).
    pub ended: Vec<String>,
}

/// Where a worker's datagrams and commands come from.
pub enum Input {
    /// The only worker: it reads the UDP port itself; commands come on a channel, and a
    /// datagram from the waker socket wakes it for them.
    Socket { commands: Receiver<Command>, waker_addr: Option<SocketAddr> },
    /// One of several (`io::steer`): it reads its own socket of the port's group; datagrams
    /// other workers read for it and commands from the dispatcher come on one channel.
    Steered(Worker),
}

/// The default pacing quantum (`--pacing-quantum-us`): none, every deadline as it comes.
pub const PACING_QUANTUM: Duration = Duration::ZERO;

const MAX_WAIT: Duration = Duration::from_millis(20);

/// Channel inputs a worker of several takes before it turns to its socket and timers.
const INPUTS_PER_PASS: usize = super::steer::WORKER_QUEUE;

impl MediaLoop {
    pub fn run(self, input: Input) {
        match input {
            Input::Socket { commands, waker_addr } => self.run_socket(commands, waker_addr),
            Input::Steered(w) => self.run_steered(w),
        }
    }

    fn run_socket(mut self, commands: Receiver<Command>, waker_addr: Option<SocketAddr>) {
        let mut batch = RecvBatch::allocate();
        let mut err_log = TokenBucket::new(1.0, 5.0, Instant::now());
        let local = self.socket.local_addr().ok();
        info!(?local, quantum = ?self.pacing_quantum, "media loop running");
        // Start one quantum ago: the first deadline is not held back.
        let mut timers_ran = Instant::now().checked_sub(self.pacing_quantum).unwrap_or_else(Instant::now);
        loop {
            if !self.drain_commands(&commands) {
                info!("media loop stopping");
                return;
            }
            // Control replies go out now, not at the next datagram or timer.
            self.flush_output(None);
            let wait = self.run_timers(&mut timers_ran);
            match self.socket.wait(wait) {
                Ok(true) => self.receive_batch(&mut batch, &mut err_log, waker_addr),
                Ok(false) => {}
                Err(e) => {
                    if err_log.allow(Instant::now()) {
                        warn!("udp wait error: {e}");
                    }
                }
            }
        }
    }

    /// One of several workers: its own socket of the port's group, and a channel for what
    /// the others read for it and the dispatcher's commands (both wake the socket wait).
    fn run_steered(mut self, w: Worker) {
        info!(worker = w.index, quantum = ?self.pacing_quantum, "media worker running");
        let mut batch = RecvBatch::allocate();
        let mut err_log = TokenBucket::new(1.0, 5.0, Instant::now());
        let mut timers_ran = Instant::now().checked_sub(self.pacing_quantum).unwrap_or_else(Instant::now);
        let mut processed: u64 = 0;
        loop {
            // What is queued: one wake-up, many inputs; at most a queue's worth per pass, so
            // that a busy peer cannot keep this worker from its own socket and timers.
            let mut more = true;
            for _ in 0..INPUTS_PER_PASS {
                match w.input.try_recv() {
                    Ok(WorkerInput::Datagrams(d)) => {
                        w.shared.dequeued(w.index);
                        let t = Instant::now();
                        self.drive(t, d.received.unwrap_or(t), d.iter());
                    }
                    Ok(WorkerInput::Command(c)) => {
                        processed += 1;
                        if !self.handle_command(c) {
                            info!(worker = w.index, "media worker stopping");
                            return;
                        }
                        self.flush_output(None);
                    }
                    Err(TryRecvError::Empty) => {
                        more = false;
                        break;
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if !self.ended.is_empty() {
                let sfu = &self.sfu;
                w.shared.release(w.index, processed, &mut self.ended, |c| sfu.has_conference(c));
            }
            let wait = self.run_timers(&mut timers_ran);
            // Inputs left in the channel: look at the socket without sleeping.
            match self.socket.wait(if more { Duration::ZERO } else { wait }) {
                Ok(true) => self.receive_own(&mut batch, &w, &mut err_log),
                Ok(false) => {}
                Err(e) => {
                    if err_log.allow(Instant::now()) {
                        warn!("udp wait error: {e}");
                    }
                }
            }
        }
    }

    /// One read of a worker's own socket: the other workers' datagrams are handed to them
    /// first (they start at once), then its own are driven as one batch.
    fn receive_own(&mut self, batch: &mut RecvBatch, w: &Worker, err_log: &mut TokenBucket) {
        if let Err(e) = self.socket.recv(batch) {
            if err_log.allow(Instant::now()) {
                warn!("udp receive error: {e}");
            }
            return;
        }
        let t = Instant::now();
        let mut own = Vec::new();
        for (to, d) in w.shared.steering.sort(w.index, batch.datagrams(), t, &mut own) {
            if !w.shared.try_enqueue(to) {
                self.metrics
                    .dropped
                    .with_label_values(&[DropReason::Overload.label()])
                    .inc_by(d.len() as u64);
                continue;
            }
            w.peers[to].send(WorkerInput::Datagrams(d));
        }
        if !own.is_empty() {
            self.drive(t, t, own.into_iter());
        }
    }

    /// Datagrams read together, driven as one batch: every receiver is polled once for them,
    /// and what they made the core send goes out together. `received` starts the latency clock.
    fn drive<'a>(
        &mut self,
        now: Instant,
        received: Instant,
        datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
    ) {
        let (v4, v6) = (self.udp_local_v4, self.udp_local_v6);
        self.sfu.handle_datagrams(now, Protocol::Udp, |s| destination_for(s, v4, v6), datagrams);
        self.flush_output(Some(received));
    }

    /// Awake anyway (a datagram, a command or the last timer wake-up): timers that are due run
    /// now, which costs no wake-up. Waking for timers alone is what the quantum spaces out.
    /// (Holding due timers back while awake only added a wake-up per received burst: str0m's
    /// pacer releases forwarded video on a timeout.) Returns how long to sleep at most.
    fn run_timers(&mut self, timers_ran: &mut Instant) -> Duration {
        let now = Instant::now();
        if self.sfu.next_timeout() <= now {
            *timers_ran = now;
            self.sfu.handle_timeout(now);
            self.flush_output(None);
        }
        let due = timers_due(self.sfu.next_timeout(), *timers_ran, self.pacing_quantum);
        due.saturating_duration_since(Instant::now()).min(MAX_WAIT)
    }

    /// The only worker: one `recvmmsg` of the port into the core (the waker's datagrams
    /// only woke it).
    fn receive_batch(&mut self, batch: &mut RecvBatch, err_log: &mut TokenBucket, waker: Option<SocketAddr>) {
        match self.socket.recv(batch) {
            Ok(_) => {
                // The latency clock starts when the batch left the kernel.
                let t = Instant::now();
                self.drive(t, t, batch.datagrams().filter(|(source, _)| Some(*source) != waker));
            }
            // ICMP errors surface here on Linux (ConnectionRefused); never fatal.
            Err(e) => {
                if err_log.allow(Instant::now()) {
                    warn!("udp receive error: {e}");
                }
            }
        }
    }

    /// Returns false on shutdown.
    fn drain_commands(&mut self, commands: &Receiver<Command>) -> bool {
        loop {
            match commands.try_recv() {
                Ok(c) => {
                    if !self.handle_command(c) {
                        return false;
                    }
                }
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Returns false on shutdown.
    fn handle_command(&mut self, c: Command) -> bool {
        match c {
            Command::Control(m) => self.sfu.handle_control(m, Instant::now()),
            Command::TcpPacket { source, destination, data } => {
                let t = Instant::now();
                self.sfu.handle_packet(t, Protocol::Tcp, source, destination, &data);
                self.flush_output(Some(t));
            }
            Command::SetDraining(drain) => self.sfu.set_draining(drain),
            Command::Shutdown => return false,
        }
        true
    }

    /// Send what the core produced. `received` is when the triggering packet arrived.
    fn flush_output(&mut self, received: Option<Instant>) {
        // The steering learns an address before the STUN answer to it leaves: the peer's DTLS
        // follows at once, and steered by hash to another worker it would be dropped (then
        // retried with DTLS's 1, 2, 4… s backoff: seconds to connect on a busy machine).
        if let Some(shared) = &self.shared {
            for change in self.sfu.take_steer_changes() {
                match change {
                    SteerChange::Learned(a) => shared.steering.learn(a, self.worker),
                    SteerChange::Forgotten(a) => shared.steering.forget(a, self.worker),
                    SteerChange::ConferenceEnded(c) => self.ended.push(c),
                }
            }
        }
        // Counters first, so whoever sees what this sends also sees it counted.
        let mut counters = *self.sfu.counters();
        if counters.census != self.own_census {
            self.own_census = counters.census;
            let endpoints = counters.census.endpoints as i64;
            self.metrics.worker_endpoints.with_label_values(&[&self.worker.to_string()]).set(endpoints);
            if let Some(shared) = &self.shared {
                shared.set_census(self.worker, counters.census);
            }
        }
        if let Some(shared) = &self.shared {
            counters.census = shared.total_census();
        }
        self.metrics.export(&counters, &mut self.exported, self.sfu.drain_rtt_samples());
        // Packets queued on the socket and not sent yet: their latency is known once they are.
        let mut unsent = 0;
        let sent = |n: u64| {
            if let Some(r) = received {
                self.latency.record_n(r.elapsed(), n);
            }
        };
        while let Some(t) = self.sfu.poll_transmit() {
            match t.proto {
                Protocol::Udp => {
                    if self.socket.send(t.destination, &t.contents) {
                        sent(std::mem::take(&mut unsent));
                    }
                    unsent += 1;
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
                    sent(1);
                }
            }
        }
        self.socket.flush();
        sent(unsent);
        while let Some(m) = self.sfu.poll_control() {
            self.control_out.push(m);
        }
    }
}

/// The local candidate address a datagram from `source` arrived at (str0m wants it).
fn destination_for(source: SocketAddr, v4: Option<SocketAddr>, v6: Option<SocketAddr>) -> SocketAddr {
    let d = if source.is_ipv4() { v4 } else { v6 };
    d.or(v4).or(v6).unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
}

/// When the thread, asleep, should wake for the core's timers: at their deadline, but no
/// sooner than one quantum after they last ran, so that a pacer asking for a wake-up per
/// packet gets one per quantum. (Awake, the loop runs due timers at once.)
pub fn timers_due(next: Instant, last_ran: Instant, quantum: Duration) -> Instant {
    next.max(last_ran + quantum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_wait_for_the_quantum_but_not_past_their_deadline() {
        let t0 = Instant::now();
        let q = Duration::from_millis(1);
        // A deadline inside the quantum is held back to its end…
        assert_eq!(timers_due(t0 + Duration::from_micros(100), t0, q), t0 + q);
        // …one beyond it is kept, and an overdue one runs once the quantum has passed.
        assert_eq!(timers_due(t0 + Duration::from_millis(5), t0, q), t0 + Duration::from_millis(5));
        assert_eq!(timers_due(t0, t0 - Duration::from_millis(3), q), t0);
        // Quantum zero: every deadline as it comes.
        assert_eq!(
            timers_due(t0 + Duration::from_micros(100), t0, Duration::ZERO),
            t0 + Duration::from_micros(100)
        );
    }
}
