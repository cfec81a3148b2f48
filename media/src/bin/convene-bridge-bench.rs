//! Forwarding benchmark (a binary, not a timed test).
//!
//! Runs `convene-bridge` as its own process and acts as its signaling over the real control
//! WebSocket. One str0m publisher sends 3 simulcast layers (q 200 kbps, h 500 kbps, f 2.5 Mbps)
//! plus Opus; N str0m subscribers receive. Per N it prints forwarded packets/s, the bridge's
//! CPU-seconds per second, packets/s per core, the media thread's wake-ups per second and the
//! bridge's receive→send latency p50/p99.
//! In the same run a plain UDP forwarder (receive, one AES-128-GCM seal per copy, send; no
//! ICE/DTLS/RTP logic) gets the same packet stream; our packets/s-per-core is printed as a
//! ratio of its.
//!
//! `cargo run --release -p convene-media --bin convene-bridge-bench -- [N...] [--no-bwe]`
//! (`CONVENE_BRIDGE_PACING_QUANTUM_US` in the environment reaches the bridge).
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use convene_media::control::{self, FromBridge, ToBridge};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tungstenite::WebSocket;

use tokio_tungstenite::tungstenite;

const LAYERS: [(&str, u64); 3] = [("q", 200_000), ("h", 500_000), ("f", 2_500_000)];
const FPS: u64 = 30;
const WARMUP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(6);

struct Peer {
    name: String,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<(u64, SdpPendingOffer)>,
    offer: Option<SdpOffer>,
    publisher: Option<(Mid, Mid)>,
    connected: bool,
    frames: u64,
    next_audio: Instant,
    next_video: Instant,
    ts: u64,
    want_key: [bool; 3],
    last_key: Instant,
}

impl Peer {
    fn new(name: &str, publish: bool) -> anyhow::Result<Peer> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let mut api = rtc.sdp_api();
        let publisher = if publish {
            let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let mut sim = Simulcast::new();
            for (rid, _) in LAYERS {
                sim.add_send_layer(SimulcastLayer::new(rid));
            }
            let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(sim));
            Some((a, v))
        } else {
            // An offer needs an m-line. Not a data channel: that would make the bridge run an
            // SCTP association per subscriber, which the web client (sendonly transceivers,
            // no data channel) never costs it. An inactive audio line costs nothing.
            api.add_media(MediaKind::Audio, Direction::Inactive, None, None, None);
            None
        };
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("no offer"))?;
        Ok(Peer {
            name: name.into(),
            rtc,
            socket,
            local,
            pending: Some((0, pending)),
            offer: Some(offer),
            publisher,
            connected: false,
            frames: 0,
            next_audio: now,
            next_video: now,
            ts: 0,
            want_key: [true; 3],
            last_key: now,
        })
    }

    fn drive(&mut self, now: Instant, buf: &mut [u8]) {
        while let Ok((n, src)) = self.socket.recv_from(buf) {
            if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, &buf[..n]) {
                let _ = self.rtc.handle_input(Input::Receive(now, r));
            }
        }
        let _ = self.rtc.handle_input(Input::Timeout(now));
        if self.connected {
            self.publish(now);
        }
        while let Ok(out) = self.rtc.poll_output() {
            match out {
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Timeout(_) => break,
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(_)) => self.frames += 1,
                Output::Event(Event::KeyframeRequest(k)) => {
                    let i = k.rid.and_then(|r| LAYERS.iter().position(|(x, _)| *x == &*r));
                    self.want_key[i.unwrap_or(2)] = true;
                }
                Output::Event(_) => {}
            }
        }
    }

    fn publish(&mut self, now: Instant) {
        let Some((a, v)) = self.publisher else { return };
        if now >= self.next_audio {
            self.next_audio += Duration::from_millis(20);
            let pt = self.rtc.writer(a).and_then(|w| w.payload_params().next().map(|p| p.pt()));
            if let (Some(pt), Some(w)) = (pt, self.rtc.writer(a)) {
                let t = MediaTime::new(self.ts * 48 / 90, Frequency::FORTY_EIGHT_KHZ);
                let _ = w.audio_level(-30, true).write(pt, now, t, vec![0xfcu8; 160]);
            }
        }
        if now >= self.next_video {
            self.next_video += Duration::from_millis(1000 / FPS);
            self.ts += 90_000 / FPS;
            if now.duration_since(self.last_key) > Duration::from_secs(3) {
                self.want_key = [true; 3];
                self.last_key = now;
            }
            for (i, (rid, bps)) in LAYERS.iter().enumerate() {
                let key = std::mem::take(&mut self.want_key[i]);
                let size = (*bps / 8 / FPS) as usize;
                let mut f = vec![0u8; size];
                f[0] = if key { 0x10 } else { 0x11 };
                if key {
                    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    let h = 180u16 << i;
                    f[8..10].copy_from_slice(&h.to_le_bytes());
                }
                let Some(w) = self.rtc.writer(v) else { return };
                let Some(pt) = w.payload_params().find(|p| p.spec().codec.is_video()).map(|p| p.pt()) else {
                    return;
                };
                let t = MediaTime::new(self.ts, Frequency::NINETY_KHZ);
                let _ = w.rid(Rid::from(*rid)).write(pt, now, t, f);
            }
        }
    }
}

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

fn start_bridge(bwe: bool) -> anyhow::Result<(BridgeProc, Signaling)> {
    let exe = std::env::current_exe()?.with_file_name("convene-bridge");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let sig = listener.local_addr()?;
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let child = Command::new(&exe)
        .args(["--bind", "127.0.0.1", "--udp-port", "0", "--tcp-port", "0"])
        .args(["--http-port", &http.port().to_string()])
        .args(["--signaling-url", &format!("ws://{sig}/bridge"), "--secret", "bench"])
        .args(["--max-pps-per-source", "1000000", "--bridge-id", "bench"])
        .args(["--bwe", if bwe { "true" } else { "false" }])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let proc_ = BridgeProc { child, http };
    listener.set_nonblocking(false)?;
    let (stream, _) = listener.accept()?;
    let ws = tungstenite::accept(stream).map_err(|e| anyhow!("ws accept: {e}"))?;
    ws.get_ref().set_read_timeout(Some(Duration::from_millis(1)))?;
    Ok((proc_, Signaling { ws }))
}

fn cpu_seconds(pid: u32) -> f64 {
    // Sum of every thread's run time (ns) from schedstat: precise, unlike tick-based stat.
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s.split_whitespace().next().and_then(|x| x.parse().ok()).unwrap_or(0);
            }
        }
    }
    total as f64 / 1e9
}

/// Voluntary and involuntary context switches of one thread (`/proc/.../status`). A thread
/// blocks once per voluntary switch, so those are its wake-ups; involuntary ones are
/// preemptions (CPU contention), printed apart.
fn ctxt_switches(status_path: &str) -> (u64, u64) {
    let s = std::fs::read_to_string(status_path).unwrap_or_default();
    let field =
        |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (field("voluntary_ctxt_switches:"), field("nonvoluntary_ctxt_switches:"))
}

/// The bridge's media thread (named `convene-media`): the status file to read its switches from.
fn media_thread_status(pid: u32) -> anyhow::Result<String> {
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        if std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "convene-media") {
            return Ok(t.path().join("status").to_string_lossy().into_owned());
        }
    }
    bail!("no convene-media thread in bridge process {pid}")
}

fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0) as f64
        / 1e9
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

/// One measured run of either forwarder; `wakeups`/`preempted` are per second.
struct Run {
    pps: f64,
    cpu: f64,
    wakeups: f64,
    preempted: f64,
}

struct Row {
    n: usize,
    bridge: Run,
    p50: u64,
    p99: u64,
    base: Run,
}

fn run_bridge(n: usize, bwe: bool) -> anyhow::Result<(Run, u64, u64)> {
    let (bridge, mut sig) = start_bridge(bwe)?;
    let mut peers = vec![Peer::new("pub", true)?];
    for i in 0..n {
        peers.push(Peer::new(&format!("sub{i}"), false)?);
    }
    let mut id = 1000;
    let mut buf = vec![0u8; 2048];
    let mut pump = |peers: &mut Vec<Peer>, sig: &mut Signaling, until: Instant| -> anyhow::Result<()> {
        loop {
            while let Some(m) = sig.try_recv()? {
                match m {
                    FromBridge::Answer { id, endpoint, sdp, .. } => {
                        if let Some(p) = peers.iter_mut().find(|p| p.name == endpoint)
                            && let Some((pid, pending)) = p.pending.take()
                            && pid == id
                        {
                            p.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&sdp)?)?;
                        }
                    }
                    FromBridge::Offer { offer_id, conference, endpoint, sdp, .. } => {
                        if let Some(p) = peers.iter_mut().find(|p| p.name == endpoint) {
                            let a = p.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&sdp)?)?;
                            let sdp = a.to_sdp_string();
                            sig.send(&ToBridge::Answer { offer_id, conference, endpoint, sdp })?;
                        }
                    }
                    FromBridge::Error { message, .. } => bail!("bridge error: {message}"),
                    _ => {}
                }
            }
            let now = Instant::now();
            for p in peers.iter_mut() {
                p.drive(now, &mut buf);
            }
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    for p in peers.iter_mut() {
        id += 1;
        sig.send(&ToBridge::AllocateEndpoint { id, conference: "bench".into(), endpoint: p.name.clone() })?;
        id += 1;
        if let Some((_, pending)) = p.pending.take() {
            p.pending = Some((id, pending));
        }
        let sdp = p.offer.take().map(|o| o.to_sdp_string()).unwrap_or_default();
        sig.send(&ToBridge::Offer {
            id,
            conference: "bench".into(),
            endpoint: p.name.clone(),
            sdp,
            sources: vec![],
        })?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while peers[1..].iter().any(|p| p.frames < 30) {
        if Instant::now() > deadline {
            bail!("subscribers did not all receive media within 60 s");
        }
        pump(&mut peers, &mut sig, Instant::now() + Duration::from_millis(50))?;
    }
    pump(&mut peers, &mut sig, Instant::now() + WARMUP)?;
    let stats = |b: &BridgeProc| -> (u64, u64, u64) {
        let v: serde_json::Value = serde_json::from_str(&http_get(b.http, "/stats")).unwrap_or_default();
        let g = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        (g("packets_out"), g("latency_p50_us"), g("latency_p99_us"))
    };
    http_get(bridge.http, "/stats/reset");
    let pid = bridge.child.id();
    let media = media_thread_status(pid)?;
    let (out0, _, _) = stats(&bridge);
    let cpu0 = cpu_seconds(pid);
    let (vol0, invol0) = ctxt_switches(&media);
    let t0 = Instant::now();
    pump(&mut peers, &mut sig, t0 + MEASURE)?;
    let dt = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu0) / dt;
    let (vol1, invol1) = ctxt_switches(&media);
    let (out1, p50, p99) = stats(&bridge);
    let run = Run {
        pps: (out1 - out0) as f64 / dt,
        cpu,
        wakeups: (vol1 - vol0) as f64 / dt,
        preempted: (invol1 - invol0) as f64 / dt,
    };
    Ok((run, p50, p99))
}

/// The baseline: receive, seal each copy with AES-128-GCM, send to N sinks. Same input
/// stream shape: the f layer (forwarded) plus q/h (received, dropped) plus audio.
fn run_baseline(n: usize) -> anyhow::Result<Run> {
    let fwd = UdpSocket::bind("127.0.0.1:0")?;
    fwd.set_read_timeout(Some(Duration::from_millis(5)))?;
    let fwd_addr = fwd.local_addr()?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    sink.set_read_timeout(Some(Duration::from_millis(50)))?;
    let sinks: Vec<SocketAddr> = (0..n).map(|_| sink.local_addr()).collect::<Result<_, _>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let copies = Arc::new(AtomicU64::new(0));
    let cpu_ns = Arc::new(AtomicU64::new(0));
    // The forwarder thread's (voluntary, involuntary) context switches, as the bridge's.
    let switches = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    // Sink: drain so the kernel does not drop at the socket buffer.
    let s2 = stop.clone();
    let drain = std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while !s2.load(Ordering::Relaxed) {
            let _ = sink.recv_from(&mut b);
        }
    });
    let (s3, c3, cpu3, sw3) = (stop.clone(), copies.clone(), cpu_ns.clone(), switches.clone());
    let forwarder = std::thread::spawn(move || -> anyhow::Result<()> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).map_err(|_| anyhow!("key"))?);
        let mut buf = [0u8; 2048];
        let mut out = Vec::with_capacity(2048);
        let mut counter = 0u64;
        let start = thread_cpu_seconds();
        while !s3.load(Ordering::Relaxed) {
            let Ok((len, _)) = fwd.recv_from(&mut buf) else {
                continue;
            };
            // Layer marker in byte 1: only the top layer and audio are forwarded.
            if len < 13 || buf[1] == 0 || buf[1] == 1 {
                continue;
            }
            for dest in &sinks {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                out.clear();
                out.extend_from_slice(&buf[12..len]);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&buf[..12]),
                        &mut out,
                    )
                    .map_err(|_| anyhow!("seal"))?;
                out.extend_from_slice(tag.as_ref());
                let _ = fwd.send_to(&out, dest);
                c3.fetch_add(1, Ordering::Relaxed);
            }
            cpu3.store(((thread_cpu_seconds() - start) * 1e9) as u64, Ordering::Relaxed);
            let (vol, invol) = ctxt_switches("/proc/thread-self/status");
            sw3[0].store(vol, Ordering::Relaxed);
            sw3[1].store(invol, Ordering::Relaxed);
        }
        Ok(())
    });
    // Generator: the publisher's stream (packet sizes ~1150 B video, 200 B audio).
    let gen_sock = UdpSocket::bind("127.0.0.1:0")?;
    let mut next_audio = Instant::now();
    let mut next_video = Instant::now();
    let start = Instant::now();
    let mut measure_start: Option<(Instant, u64, u64, [u64; 2])> = None;
    let switches_now = || [switches[0].load(Ordering::Relaxed), switches[1].load(Ordering::Relaxed)];
    let send = |layer: u8, size: usize| {
        let mut p = vec![0x80u8; size];
        p[1] = layer;
        let _ = gen_sock.send_to(&p, fwd_addr);
    };
    loop {
        let now = Instant::now();
        if measure_start.is_none() && now.duration_since(start) >= WARMUP {
            measure_start =
                Some((now, copies.load(Ordering::Relaxed), cpu_ns.load(Ordering::Relaxed), switches_now()));
        }
        if let Some((t0, _, _, _)) = measure_start
            && now.duration_since(t0) >= MEASURE
        {
            break;
        }
        if now >= next_audio {
            next_audio += Duration::from_millis(20);
            send(3, 200);
        }
        if now >= next_video {
            next_video += Duration::from_millis(1000 / FPS);
            for (i, (_, bps)) in LAYERS.iter().enumerate() {
                let mut left = (*bps / 8 / FPS) as usize;
                while left > 0 {
                    let s = left.min(1150);
                    send(i as u8, s + 40);
                    left -= s;
                }
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let (t0, c0, cpu0, sw0) = measure_start.ok_or_else(|| anyhow!("no measurement"))?;
    let dt = t0.elapsed().as_secs_f64();
    let c1 = copies.load(Ordering::Relaxed);
    let cpu1 = cpu_ns.load(Ordering::Relaxed);
    let sw1 = switches_now();
    stop.store(true, Ordering::Relaxed);
    forwarder.join().map_err(|_| anyhow!("forwarder panicked"))??;
    let _ = drain.join();
    Ok(Run {
        pps: (c1 - c0) as f64 / dt,
        cpu: (cpu1 - cpu0) as f64 / 1e9 / dt,
        wakeups: (sw1[0] - sw0[0]) as f64 / dt,
        preempted: (sw1[1] - sw0[1]) as f64 / dt,
    })
}

fn main() -> anyhow::Result<()> {
    convene_media::install_crypto();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--no-bwe`: run the bridge without TWCC bandwidth estimation (and without its pacer).
    let bwe = !args.iter().any(|a| a == "--no-bwe");
    let ns: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let ns = if ns.is_empty() { vec![1, 10, 25, 50] } else { ns };
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    println!("bridge BWE: {}", if bwe { "on" } else { "off" });
    // The bridge inherits the environment: CONVENE_BRIDGE_PACING_QUANTUM_US=1000 compares a
    // 1 ms quantum with the default (timers at every deadline).
    let quantum =
        std::env::var(convene_proto::bridge::env::PACING_QUANTUM_US).unwrap_or_else(|_| "0 (default)".into());
    println!("bridge pacing quantum: {quantum} µs");
    for n in ns {
        eprintln!("N={n}: bridge …");
        // A load the machine cannot set up is a row saying so, not the end of the run.
        let (bridge, p50, p99) = match run_bridge(n, bwe) {
            Ok(r) => r,
            Err(e) => {
                failed.push(format!("N={n}: {e:#}"));
                continue;
            }
        };
        eprintln!("N={n}: baseline …");
        let base = run_baseline(n)?;
        rows.push(Row { n, bridge, p50, p99, base });
    }
    println!(
        "| N | forwarded pkt/s | bridge CPU s/s | pkt/s per core | wake-ups/s | preempted/s | latency p50 | latency p99 | baseline pkt/s | baseline CPU s/s | baseline pkt/s per core | baseline wake-ups/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let per_core = r.bridge.pps / r.bridge.cpu.max(1e-9);
        let base_per_core = r.base.pps / r.base.cpu.max(1e-9);
        println!(
            "| {} | {:.0} | {:.3} | {:.0} | {:.0} | {:.0} | {} µs | {} µs | {:.0} | {:.3} | {:.0} | {:.0} | {:.0}% |",
            r.n,
            r.bridge.pps,
            r.bridge.cpu,
            per_core,
            r.bridge.wakeups,
            r.bridge.preempted,
            r.p50,
            r.p99,
            r.base.pps,
            r.base.cpu,
            base_per_core,
            r.base.wakeups,
            100.0 * per_core / base_per_core.max(1e-9)
        );
    }
    for f in failed {
        println!("not measured: {f}");
    }
    Ok(())
}
