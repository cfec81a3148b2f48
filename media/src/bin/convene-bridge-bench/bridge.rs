//! The bridge under test: started as a child process, driven over the real control WebSocket
//! by the bench acting as signaling, and measured from outside (`/proc`, `/stats`, `/metrics`).
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use convene_media::control::{self, FromBridge, ReceiverConstraints, ToBridge};
use tokio_tungstenite::tungstenite::{self, WebSocket};

use crate::clients::{self, Peer, Shared, Tally};
use crate::procfs::{ctxt_switches_sum, media_thread_status, process_cpu_seconds, udp_drops, udp_snmp};
use crate::scenario::Scenario;
use crate::{Opts, Run};

struct Signaling {
    ws: WebSocket<TcpStream>,
}

impl Signaling {
    fn send(&mut self, m: &ToBridge) -> anyhow::Result<()> {
        self.ws.send(tungstenite::Message::text(control::to_json(m)))?;
        Ok(())
    }

    fn try_recv(&mut self) -> anyhow::Result<Option<FromBridge>> {
        match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => Ok(Some(control::parse(t.as_str())?)),
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

struct BridgeProc {
    child: Child,
    http: SocketAddr,
}

impl Drop for BridgeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn start_bridge(opts: &Opts) -> anyhow::Result<(BridgeProc, Signaling)> {
    let exe = std::env::current_exe()?.with_file_name("convene-bridge");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let sig = listener.local_addr()?;
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut cmd = Command::new(&exe);
    cmd.args(["--bind", "127.0.0.1", "--udp-port", "0", "--tcp-port", "0"])
        .args(["--http-port", &http.port().to_string()])
        .args(["--signaling-url", &format!("ws://{sig}/bridge"), "--secret", "bench"])
        .args(["--max-pps-per-source", "1000000", "--bridge-id", "bench"])
        .args(["--bwe", if opts.bwe { "true" } else { "false" }])
        // After the bench's own: the last occurrence of an option wins.
        .args(&opts.bridge_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (k, v) in &opts.bridge_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
    let mut proc_ = BridgeProc { child, http };
    // Accept the bridge's control connection, or notice it exited (bad arguments).
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if let Some(status) = proc_.child.try_wait()? {
                    bail!("the bridge exited before dialling the bench: {status}");
                }
                if Instant::now() > deadline {
                    bail!("the bridge did not dial the bench within 20 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    stream.set_nonblocking(false)?;
    let ws = tungstenite::accept(stream).map_err(|e| anyhow!("ws accept: {e}"))?;
    ws.get_ref().set_read_timeout(Some(Duration::from_millis(1)))?;
    Ok((proc_, Signaling { ws }))
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let auth = "Authorization: Bearer bench\r\n";
    let method = if path.ends_with("reset") { "POST" } else { "GET" };
    let _ = write!(s, "{method} {path} HTTP/1.0\r\n{auth}Content-Length: 0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default()
}

/// Bridge counters: (packets out, p50 µs, p99 µs) from `/stats`.
fn bridge_stats(http: SocketAddr) -> (u64, u64, u64) {
    let v: serde_json::Value = serde_json::from_str(&http_get(http, "/stats")).unwrap_or_default();
    let g = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    (g("packets_out"), g("latency_p50_us"), g("latency_p99_us"))
}

/// Input the bridge dropped itself (`convene_bridge_dropped_packets_total`, all reasons).
fn bridge_dropped(http: SocketAddr) -> u64 {
    http_get(http, "/metrics")
        .lines()
        .filter(|l| l.starts_with("convene_bridge_dropped_packets_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Everything one measured bridge run found.
pub struct BridgeRun {
    pub run: Run,
    pub p50: u64,
    pub p99: u64,
    /// The clients' counters over the window.
    pub clients: Tally,
    /// CPU s/s of the whole bench process and of its busiest client thread.
    pub bench_cpu: f64,
    pub busiest_thread: f64,
    /// Kernel receive-buffer drops at the bench's and the bridge's UDP sockets, and input the
    /// bridge dropped itself, over the window.
    pub bench_drops: u64,
    pub bridge_kernel_drops: u64,
    pub bridge_dropped: u64,
    /// The namespace's UDP NoPorts and SndbufErrors over the window (anyone's, not only ours).
    pub no_ports: u64,
    pub sndbuf_errors: u64,
    /// Datagrams the bridge reports sent over the window (`packets_out` delta).
    pub bridge_out: u64,
    /// Length of the bench's window (the clients' counters and the bench's CPU).
    pub bench_dt: f64,
    /// Clients that received all the video they should before the warm-up, of all.
    pub ready_at_start: u64,
    pub clients_total: u64,
    pub client_threads: usize,
    /// RTP packets/s each receiving client got, ascending.
    pub per_receiver: Vec<f64>,
}

struct Threads {
    shared: Vec<Arc<Shared>>,
    handles: Vec<JoinHandle<anyhow::Result<()>>>,
    inboxes: Vec<mpsc::Sender<FromBridge>>,
    owner: HashMap<String, usize>,
    outbox: mpsc::Receiver<ToBridge>,
}

/// A run that ends early (an error) still stops its client threads.
impl Drop for Threads {
    fn drop(&mut self) {
        for s in &self.shared {
            s.stop.store(true, Ordering::Relaxed);
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Threads {
    /// RTP received so far per receiving client (all threads, a fixed order).
    fn per_receiver(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for s in &self.shared {
            out.extend(s.per_receiver.lock().unwrap_or_else(|e| e.into_inner()).iter().copied());
        }
        out
    }

    fn tallies(&self) -> (Tally, Vec<u64>) {
        let mut sum = Tally::default();
        let mut cpu = Vec::new();
        for s in &self.shared {
            let t = *s.tally.lock().unwrap_or_else(|e| e.into_inner());
            cpu.push(t.cpu_ns);
            sum.add(&t);
        }
        (sum, cpu)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        for s in &self.shared {
            s.stop.store(true, Ordering::Relaxed);
        }
        for h in std::mem::take(&mut self.handles) {
            h.join().map_err(|_| anyhow!("client thread panicked"))??;
        }
        Ok(())
    }

    /// Relays signaling until `until` (or `done` says so): bridge messages to the clients'
    /// threads, their answers to the bridge. A client thread's error ends the run.
    fn pump(
        &mut self,
        sig: &mut Signaling,
        until: Instant,
        mut done: impl FnMut(&Threads) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            while let Some(m) = sig.try_recv()? {
                match &m {
                    FromBridge::Answer { endpoint, .. } | FromBridge::Offer { endpoint, .. } => {
                        if let Some(&t) = self.owner.get(endpoint) {
                            let _ = self.inboxes[t].send(m);
                        }
                    }
                    FromBridge::Error { message, .. } => bail!("bridge error: {message}"),
                    _ => {}
                }
            }
            while let Ok(m) = self.outbox.try_recv() {
                sig.send(&m)?;
            }
            if self.handles.iter().any(|h| h.is_finished()) {
                for (i, h) in std::mem::take(&mut self.handles).into_iter().enumerate() {
                    if h.is_finished() {
                        h.join().map_err(|_| anyhow!("client thread panicked"))??;
                        bail!("client thread {i} stopped");
                    }
                }
            }
            if Instant::now() >= until || done(self) {
                return Ok(());
            }
        }
    }
}

pub fn run(scn: &Scenario, opts: &Opts) -> anyhow::Result<BridgeRun> {
    let (bridge, mut sig) = start_bridge(opts)?;
    let mut peers = scn.peers.iter().map(Peer::new).collect::<anyhow::Result<Vec<_>>>()?;
    let mut id = 1000;
    for (p, spec) in peers.iter_mut().zip(&scn.peers) {
        let (conference, endpoint) = (p.conference.clone(), p.name.clone());
        id += 1;
        sig.send(&ToBridge::AllocateEndpoint {
            id,
            conference: conference.clone(),
            endpoint: endpoint.clone(),
        })?;
        if let Some(last_n) = spec.last_n {
            // As signaling relays the client's constraints (see signaling's receiver_constraints).
            id += 1;
            let constraints = ReceiverConstraints { last_n, ..Default::default() };
            sig.send(&ToBridge::ReceiverConstraints {
                id,
                conference: conference.clone(),
                endpoint: endpoint.clone(),
                constraints,
            })?;
        }
        id += 1;
        let sdp = p.take_offer(id);
        sig.send(&ToBridge::Offer { id, conference, endpoint, sdp, sources: vec![] })?;
    }
    // Clients round-robin over the threads.
    let auto = if peers.len() >= 100 { 2 } else { 1 };
    let n_threads = opts.client_threads.unwrap_or(auto).clamp(1, peers.len().max(1));
    let mut groups: Vec<Vec<Peer>> = (0..n_threads).map(|_| Vec::new()).collect();
    let mut owner = HashMap::new();
    for (i, p) in peers.into_iter().enumerate() {
        owner.insert(p.name.clone(), i % n_threads);
        groups[i % n_threads].push(p);
    }
    let (out_tx, outbox) = mpsc::channel();
    let mut threads = Threads { shared: vec![], handles: vec![], inboxes: vec![], owner, outbox };
    for (i, group) in groups.into_iter().enumerate() {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let (s, out, media) = (shared.clone(), out_tx.clone(), scn.media);
        let h = std::thread::Builder::new()
            .name(format!("bench-clients-{i}"))
            .spawn(move || clients::run(group, rx, out, s, media))?;
        threads.shared.push(shared);
        threads.handles.push(h);
        threads.inboxes.push(tx);
    }
    let total = scn.peers.len() as u64;
    let setup = Duration::from_secs(20) + Duration::from_millis(100) * total as u32;
    let t_setup = Instant::now();
    let mut next_report = t_setup + Duration::from_secs(5);
    threads.pump(&mut sig, t_setup + setup, |t| {
        let ready = t.tallies().0.ready;
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(5);
            eprintln!("  {ready} of {total} clients receiving all their video …");
        }
        ready >= total
    })?;
    // Clients that never got all their video are a finding, not a reason to measure nothing:
    // the row says how many there were (and is marked invalid).
    let ready = threads.tallies().0.ready;
    eprintln!(
        "  {ready} of {total} clients receiving all their video after {:.1} s",
        t_setup.elapsed().as_secs_f64()
    );
    threads.pump(&mut sig, Instant::now() + opts.warmup, |_| false)?;

    http_get(bridge.http, "/stats/reset");
    let pid = bridge.child.id();
    let bridge_pid = pid.to_string();
    let media = media_thread_status(pid)?;
    let snapshot = |threads: &Threads| {
        let (tally, cpu) = threads.tallies();
        let per = threads.per_receiver();
        let drops = (udp_drops("self"), udp_drops(&bridge_pid), udp_snmp());
        (tally, cpu, per, process_cpu_seconds("self"), drops)
    };
    // The bench's window encloses the bridge's: its counters are read before the first and
    // after the last `/stats` call, so nothing the bridge counted as sent can be missing from
    // what the bench counted as received just because an HTTP answer was slow.
    let (c0, tcpu0, per0, bench0, (bd0, brd0, snmp0)) = snapshot(&threads);
    let tb0 = Instant::now();
    // `/stats` answers on the bridge's HTTP runtime, late when the machine is busy: its
    // counter is taken as read halfway through the call.
    let timed_stats = || {
        let t = Instant::now();
        let s = bridge_stats(bridge.http);
        let took = t.elapsed();
        if took > Duration::from_millis(50) {
            eprintln!("  (GET /stats took {} ms: the window's edges are that uncertain)", took.as_millis());
        }
        (s, t + took / 2)
    };
    let ((out0, _, _), ts0) = timed_stats();
    let dropped0 = bridge_dropped(bridge.http);
    let cpu0 = process_cpu_seconds(&bridge_pid);
    let (vol0, invol0) = ctxt_switches_sum(&media);
    let t0 = Instant::now();
    threads.pump(&mut sig, t0 + opts.measure, |_| false)?;
    let dt = t0.elapsed().as_secs_f64();
    let cpu = (process_cpu_seconds(&bridge_pid) - cpu0) / dt;
    let (vol1, invol1) = ctxt_switches_sum(&media);
    let ((out1, p50, p99), ts1) = timed_stats();
    let dropped1 = bridge_dropped(bridge.http);
    let (c1, tcpu1, per1, bench1, (bd1, brd1, snmp1)) = snapshot(&threads);
    let bench_dt = tb0.elapsed().as_secs_f64();
    threads.stop()?;
    let mut per_receiver: Vec<f64> =
        per1.iter().zip(&per0).map(|(a, b)| a.saturating_sub(*b) as f64 / bench_dt).collect();
    per_receiver.sort_by(f64::total_cmp);
    let busiest = tcpu1.iter().zip(&tcpu0).map(|(a, b)| (a - b) as f64 / 1e9 / bench_dt).fold(0.0, f64::max);
    Ok(BridgeRun {
        run: Run {
            pps: (out1 - out0) as f64 / ts1.duration_since(ts0).as_secs_f64(),
            cpu,
            wakeups: (vol1 - vol0) as f64 / dt,
            preempted: (invol1 - invol0) as f64 / dt,
        },
        p50,
        p99,
        clients: c1.since(&c0),
        bench_cpu: (bench1 - bench0) / bench_dt,
        busiest_thread: busiest,
        bench_drops: bd1 - bd0,
        bridge_kernel_drops: brd1 - brd0,
        bridge_dropped: dropped1.saturating_sub(dropped0),
        no_ports: snmp1.0.saturating_sub(snmp0.0),
        sndbuf_errors: snmp1.1.saturating_sub(snmp0.1),
        bridge_out: out1 - out0,
        bench_dt,
        ready_at_start: ready,
        clients_total: total,
        client_threads: n_threads,
        per_receiver,
    })
}
