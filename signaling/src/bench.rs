//! Chat fan-out benchmark (ignored test; run it with `--release`):
//!
//! `cargo test -p convene-signaling --release -- --ignored --nocapture chat_fanout`
//!
//! Signaling runs in-process on its own runtime (threads named `sig-server`), the clients and
//! a fake bridge on another (`bench-client`), so the CPU time of the signaling threads can be
//! read apart from the clients' in `/proc/self/task/*/stat`. Every message is timed from the
//! sender's socket write until the last of the room's other participants has read it.
//! Knobs (env): `BENCH_ROOMS` (40), `BENCH_PER_ROOM` (25), `BENCH_MSGS` (8000),
//! `BENCH_RATE` (messages/s over all rooms, 800), `BENCH_SERVER_THREADS` (2).
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use convene_proto::control::{self, AdvertisedAddress, FromBridge, LoadReport, ToBridge};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::config::{Args, Settings, SignalingConfig};
use crate::state::App;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Clock ticks of user + system time of this process's threads whose name starts with `prefix`.
fn cpu_ticks(prefix: &str) -> u64 {
    let mut sum = 0;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0 };
    for t in dir.flatten() {
        let p = t.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        // Fields after the parenthesised name; utime and stime are fields 14 and 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        sum += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        sum += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    sum
}

/// Per message: when it was sent and when the last other participant got it (ns since `t0`).
struct Timing {
    t0: Instant,
    sent: Vec<AtomicU64>,
    last: Vec<AtomicU64>,
    got: Vec<AtomicU32>,
    media: AtomicUsize,
}

impl Timing {
    fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

async fn fake_bridge(addr: String) {
    let mut req = format!("ws://{addr}/bridge").into_client_request().unwrap();
    req.headers_mut().insert("authorization", "Bearer s3cret".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let reg = FromBridge::Register {
        protocol_version: control::PROTOCOL_VERSION,
        bridge_id: "bench-bridge".into(),
        region: None,
        version: "bench".into(),
        addresses: vec![AdvertisedAddress { address: "127.0.0.1".into(), source: "static".into() }],
        udp_port: 10000,
        tcp_port: None,
        drain: None,
    };
    sink.send(tungstenite::Message::text(control::to_json(&reg))).await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A real bridge reports load every few seconds; without it we would go stale.
                let load = control::to_json(&FromBridge::Load(LoadReport::default()));
                let _ = sink.send(tungstenite::Message::text(load)).await;
            }
            m = stream.next() => {
                let Some(Ok(tungstenite::Message::Text(t))) = m else { return };
                if let Ok(ToBridge::AllocateEndpoint { id, conference, endpoint }) = control::parse(t.as_str()) {
                    let r = FromBridge::Allocated { id, conference, endpoint, candidates: vec![], ice_lite: true };
                    let _ = sink.send(tungstenite::Message::text(control::to_json(&r))).await;
                }
            }
        }
    }
}

/// One participant: joins, then writes what the scheduler hands it and times chats it reads.
async fn client(addr: String, room: usize, me: usize, timing: Arc<Timing>) -> mpsc::UnboundedSender<String> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let j = format!(r#"{{"type":"join","v":2,"room":"bench-{room}","name":"p{me}"}}"#);
    sink.send(tungstenite::Message::text(j)).await.unwrap();
    loop {
        let Some(Ok(tungstenite::Message::Text(t))) = stream.next().await else { panic!("no joined") };
        if t.as_str().contains(r#""type":"joined""#) {
            break;
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let t = timing.clone();
    tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            let seq: usize = text.split(':').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let frame = format!(r#"{{"type":"chat","text":"{text}"}}"#);
            t.sent[seq].store(t.now(), Ordering::Relaxed);
            if sink.send(tungstenite::Message::text(frame)).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let mine = format!(":{me}\"");
        while let Some(Ok(m)) = stream.next().await {
            let tungstenite::Message::Text(s) = m else { continue };
            let s = s.as_str();
            const MARK: &str = r#""text":"m:"#;
            if let Some(i) = s.find(MARK) {
                if s.contains(&mine) {
                    continue;
                }
                let rest = &s[i + MARK.len()..];
                let seq: usize = rest.split(':').next().and_then(|v| v.parse().ok()).unwrap_or(0);
                timing.last[seq].fetch_max(timing.now(), Ordering::Relaxed);
                timing.got[seq].fetch_add(1, Ordering::Relaxed);
            } else if s.contains(r#""type":"media""#) {
                timing.media.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    tx
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture chat_fanout"]
fn chat_fanout() {
    let rooms = env("BENCH_ROOMS", 40);
    let per_room = env("BENCH_PER_ROOM", 25);
    let msgs = env("BENCH_MSGS", 8000);
    let rate = env("BENCH_RATE", 800).max(1);
    let server_threads = env("BENCH_SERVER_THREADS", 2);

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("sig-server")
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();

    let addr = server_rt.block_on(async {
        // All bench clients share 127.0.0.1: no per-address limit.
        let args = Args {
            bridge_secret: Some("s3cret".into()),
            max_unauthenticated_per_address: Some(0),
            ..Default::default()
        };
        let settings = Settings::resolve(SignalingConfig::default(), &args).unwrap();
        let app = App::new(settings).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // The production accept loop (TCP_NODELAY and all).
        tokio::spawn(crate::serve::serve(listener, app.clone(), None, std::future::pending()));
        tokio::spawn(crate::bridge::monitor(app));
        addr
    });

    let timing = Arc::new(Timing {
        t0: Instant::now(),
        sent: (0..msgs).map(|_| AtomicU64::new(0)).collect(),
        last: (0..msgs).map(|_| AtomicU64::new(0)).collect(),
        got: (0..msgs).map(|_| AtomicU32::new(0)).collect(),
        media: AtomicUsize::new(0),
    });
    let others = (per_room - 1) as u32;

    client_rt.block_on(async {
        tokio::spawn(fake_bridge(addr.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let setup = Instant::now();
        let mut senders = Vec::new();
        // Rooms fill up in parallel, participants of one room one after the other.
        let mut fills = Vec::new();
        for r in 0..rooms {
            let (addr, timing) = (addr.clone(), timing.clone());
            fills.push(tokio::spawn(async move {
                let mut v = Vec::new();
                for i in 0..per_room {
                    v.push(client(addr.clone(), r, r * per_room + i, timing.clone()).await);
                }
                v
            }));
        }
        for f in fills {
            senders.push(f.await.unwrap());
        }
        let total = rooms * per_room;
        while timing.media.load(Ordering::Relaxed) < total && setup.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "setup: {total} participants joined, {} with media, in {:.2}s",
            timing.media.load(Ordering::Relaxed),
            setup.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;

        let cpu0 = cpu_ticks("sig-server");
        let all0 = cpu_ticks("");
        let start = Instant::now();
        // Round-robin over rooms, and within a room over its participants, at `rate` messages/s.
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        for seq in 0..msgs {
            let due = start + interval.mul_f64(seq as f64);
            tokio::time::sleep_until(due.into()).await;
            let room = seq % rooms;
            let who = (seq / rooms) % per_room;
            let me = room * per_room + who;
            let _ = senders[room][who].send(format!("m:{seq}:{me}"));
        }
        let sent_for = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && timing.got.iter().any(|g| g.load(Ordering::Relaxed) < others) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu = cpu_ticks("sig-server") - cpu0;
        let all = cpu_ticks("") - all0;
        let mut lat: Vec<u64> = Vec::with_capacity(msgs);
        let mut incomplete = 0;
        for i in 0..msgs {
            if timing.got[i].load(Ordering::Relaxed) < others {
                incomplete += 1;
                continue;
            }
            lat.push(timing.last[i].load(Ordering::Relaxed).saturating_sub(timing.sent[i].load(Ordering::Relaxed)));
        }
        lat.sort_unstable();
        let tick_ms = 10.0; // CLK_TCK is 100 on Linux
        println!(
            "chat: {rooms} rooms x {per_room} participants, {msgs} messages at {rate}/s \
             (sent in {:.2}s), {incomplete} incomplete",
            sent_for.as_secs_f64()
        );
        println!(
            "fan-out latency (send -> all {others} others received): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 1.0)
        );
        println!(
            "signaling CPU (sig-server threads): {:.0} ms total, {:.1} ms per 1000 chat messages; \
             whole process incl. clients: {:.0} ms",
            cpu as f64 * tick_ms,
            cpu as f64 * tick_ms * 1000.0 / msgs as f64,
            all as f64 * tick_ms
        );
    });
    client_rt.shutdown_timeout(Duration::from_secs(1));
    server_rt.shutdown_timeout(Duration::from_secs(1));
}
