//! The baseline: a plain UDP forwarder thread (receive, one AES-128-GCM seal per copy, send;
//! no ICE/DTLS/RTP logic) fed the same shape as the bridge: every source's three layers and
//! audio at the packet rates the bench's publishers sent, q/h dropped, each source's top layer
//! and audio copied as often as the bridge should copy them.
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::Run;
use crate::procfs::{ctxt_switches, thread_cpu_seconds};
use crate::scenario::Scenario;

/// Input packets per second per source: layers q, h, f and audio (index 3).
pub type SourceRates = [f64; 4];

pub fn run(scn: &Scenario, rates: SourceRates, warmup: Duration, measure: Duration) -> anyhow::Result<Run> {
    let fwd = UdpSocket::bind("127.0.0.1:0")?;
    fwd.set_read_timeout(Some(Duration::from_millis(5)))?;
    let fwd_addr = fwd.local_addr()?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    sink.set_read_timeout(Some(Duration::from_millis(50)))?;
    let sink_addr: SocketAddr = sink.local_addr()?;
    let video_copies = scn.video_copies.clone();
    let audio_copies = scn.audio_copies.clone();
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
            // Layer in byte 1 (0..=2 video q/h/f, 3 audio), source in bytes 2..4.
            if len < 13 || buf[1] < 2 {
                continue;
            }
            let src = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            let n = if buf[1] == 2 { video_copies.get(src) } else { audio_copies.get(src) };
            for _ in 0..n.copied().unwrap_or(0) {
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
                let _ = fwd.send_to(&out, sink_addr);
                c3.fetch_add(1, Ordering::Relaxed);
            }
            cpu3.store(((thread_cpu_seconds() - start) * 1e9) as u64, Ordering::Relaxed);
            let (vol, invol) = ctxt_switches("/proc/thread-self/status");
            sw3[0].store(vol, Ordering::Relaxed);
            sw3[1].store(invol, Ordering::Relaxed);
        }
        Ok(())
    });
    // Generator: every source's frames, phases spread over a frame interval; packet sizes as
    // the publishers' (frame bytes split evenly, +40 B of RTP header, extensions and tag).
    let gen_sock = UdpSocket::bind("127.0.0.1:0")?;
    let media = scn.media;
    let frame = Duration::from_micros(1_000_000 / media.fps);
    let sources = scn.sources();
    let t_start = Instant::now();
    let mut next_video: Vec<Instant> =
        (0..sources).map(|s| t_start + frame.mul_f64(s as f64 / sources.max(1) as f64)).collect();
    let mut next_audio: Vec<Instant> = (0..sources)
        .map(|s| t_start + Duration::from_millis(20).mul_f64(s as f64 / sources.max(1) as f64))
        .collect();
    // Fractional packets per frame are carried over (e.g. 2.5 → 2, 3, 2, 3…).
    let mut credit = vec![[0f64; 3]; sources];
    let mut measure_start: Option<(Instant, u64, u64, [u64; 2])> = None;
    let switches_now = || [switches[0].load(Ordering::Relaxed), switches[1].load(Ordering::Relaxed)];
    let mut p = vec![0x80u8; 2048];
    let audio_period = Duration::from_secs_f64(1.0 / rates[3].max(1.0));
    loop {
        let now = Instant::now();
        if measure_start.is_none() && now.duration_since(t_start) >= warmup {
            measure_start =
                Some((now, copies.load(Ordering::Relaxed), cpu_ns.load(Ordering::Relaxed), switches_now()));
        }
        if let Some((t0, _, _, _)) = measure_start
            && now.duration_since(t0) >= measure
        {
            break;
        }
        for s in 0..sources {
            let tag = (s as u16).to_be_bytes();
            p[2..4].copy_from_slice(&tag);
            if now >= next_audio[s] {
                next_audio[s] += audio_period;
                p[1] = 3;
                let _ = gen_sock.send_to(&p[..200], fwd_addr);
            }
            if now >= next_video[s] {
                next_video[s] += frame;
                for (i, c) in credit[s].iter_mut().enumerate() {
                    *c += rates[i] / media.fps as f64;
                    let n = c.floor().max(0.0) as usize;
                    *c -= n as f64;
                    if n == 0 {
                        continue;
                    }
                    let size = (media.frame_bytes(i) / n).clamp(1, 1200) + 40;
                    p[1] = i as u8;
                    for _ in 0..n {
                        let _ = gen_sock.send_to(&p[..size], fwd_addr);
                    }
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
