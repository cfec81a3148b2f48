//! Forwarding benchmark (a binary, not a timed test).
//!
//! Runs `convene-bridge` as its own process and acts as its signaling over the real control
//! WebSocket; str0m clients on loopback publish and receive. Scenarios:
//! - `fanout` (default): one publisher (VP8 simulcast q/h/f 200/500/2500 kbps at 30 fps + Opus)
//!   and N receive-only subscribers (sizes: N);
//! - `rooms`: R rooms × P participants (`--participants`, default 4), each publishing and
//!   receiving the other P − 1 in one `Rtc`, like a browser (sizes: R, default 50);
//! - `lastn`: one room of K participants (default 50), all publishing, each sending
//!   `receiver_constraints{last_n}` (`--last-n`, default 9) as signaling does (sizes: K).
//!
//! Per row it prints forwarded packets/s, the bridge's CPU-seconds per second, packets/s per
//! core, the media thread's wake-ups per second, the bridge's receive→send latency p50/p99
//! (of the packets sent in the pass that read them: what str0m's pacer releases later is not
//! in it), the video frame delay end to end (the publisher's write to a subscriber's whole
//! frame, both clients' loops included), the same for a plain AES-GCM UDP forwarder fed the same shape in the same run (and the
//! ratio), and whether the row is valid: RTP the subscribers received against what the
//! sequence numbers say was sent, kernel socket drops at the bench and at the bridge, the
//! bench's own CPU. See `media/BENCHMARKS.md` and `--help`.
mod baseline;
mod bridge;
mod clients;
mod procfs;
mod scenario;

use std::time::Duration;

use anyhow::bail;
use clap::Parser;

use crate::scenario::{Kind, Media, Scenario, Slots};

#[derive(Parser, Debug)]
#[command(name = "convene-bridge-bench", about = "Forwarding benchmark of convene-bridge on loopback")]
struct Cli {
    /// Scenario names (`fanout`, `rooms`, `lastn`; default `fanout`) and sizes: N subscribers
    /// (fanout, default 1 10 25 50 100 250), R rooms (rooms, default 50), K participants
    /// (lastn, default 50). Sizes apply to every scenario named.
    words: Vec<String>,
    /// rooms: publishing participants per room.
    #[arg(long, default_value_t = 4)]
    participants: usize,
    /// lastn: the last-N every participant asks for (-1: all).
    #[arg(long, default_value_t = 9, allow_negative_numbers = true)]
    last_n: i32,
    /// Top simulcast layer in kbps (h = 1/5, q = 8% of it). Default: 2500 for fanout, 300
    /// for rooms and lastn.
    #[arg(long)]
    video_kbps: Option<u64>,
    /// Video frames per second. Default: 30 for fanout, 15 for rooms and lastn.
    #[arg(long)]
    fps: Option<u64>,
    /// Seconds of steady load before measuring (after every client receives its video).
    #[arg(long, default_value_t = 3.0)]
    warmup_s: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 6.0)]
    measure_s: f64,
    /// Measured runs per size (a fresh bridge and baseline each).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Threads driving the bench's clients (each owns a subset). Default: 1 below 100
    /// clients, 2 from 100 (one thread sets up 250 clients' DTLS too slowly on 2 cores).
    #[arg(long)]
    client_threads: Option<usize>,
    /// Run the bridge without TWCC bandwidth estimation (and without its pacer).
    #[arg(long)]
    no_bwe: bool,
    /// Extra environment for the bridge, `KEY=VALUE` (repeatable); it also inherits the
    /// bench's environment, e.g. `CONVENE_BRIDGE_PACING_QUANTUM_US`.
    #[arg(long = "bridge-env", value_name = "KEY=VALUE")]
    bridge_env: Vec<String>,
    /// Extra argument for the bridge (repeatable; `--bridge-arg=--audio-slots=3`). They come
    /// after the bench's own arguments.
    #[arg(long = "bridge-arg", value_name = "ARG", allow_hyphen_values = true)]
    bridge_arg: Vec<String>,
    /// Skip the plain-forwarder baseline (no ratio).
    #[arg(long)]
    no_baseline: bool,
}

/// Settings of the bridge runs.
pub struct Opts {
    pub bwe: bool,
    pub bridge_args: Vec<String>,
    pub bridge_env: Vec<(String, String)>,
    pub warmup: Duration,
    pub measure: Duration,
    /// `None`: 1 below 100 clients, 2 from 100.
    pub client_threads: Option<usize>,
}

/// One measured run of either forwarder; `wakeups`/`preempted` are per second.
pub struct Run {
    pub pps: f64,
    pub cpu: f64,
    pub wakeups: f64,
    pub preempted: f64,
}

/// The value of a bridge option given through `--bridge-arg` (`--x N` or `--x=N`).
fn bridge_arg_value(args: &[String], name: &str) -> Option<usize> {
    let mut it = args.iter();
    let mut found = None;
    while let Some(a) = it.next() {
        if a == name {
            found = it.next().and_then(|v| v.parse().ok());
        } else if let Some(v) = a.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
            found = v.parse().ok();
        }
    }
    found
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

const HEADER: &str = "| scenario | size | forwarded pkt/s | sub RTP rx of nominal | bridge CPU s/s | pkt/s per core | wake-ups/s | preempted/s | latency p50 | latency p99 | frame delay p50 / p99 | baseline pkt/s | baseline CPU s/s | baseline pkt/s per core | ratio | per-receiver RTP pkt/s min / median / max | sub RTP rx / expected | sub loss | bench rx of bridge out | socket drops bench / bridge | UDP NoPorts / SndbufErrors (netns) | bench CPU s/s (busiest client thread, threads) | load avg | valid |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

fn measure_row(scn: &Scenario, opts: &Opts, cli: &Cli) -> anyhow::Result<String> {
    eprintln!("{} {}: bridge ({} clients) …", scn.kind.name(), scn.size, scn.peers.len());
    let b = bridge::run(scn, opts)?;
    let c = &b.clients;
    let sources = scn.sources() as f64;
    // Packets per second one publisher sent per layer and of audio (measured), for the
    // nominal forwarded rate and the baseline's input.
    let mut rates = [0f64; 4];
    for (i, r) in rates.iter_mut().enumerate().take(3) {
        *r = c.pub_video[i] as f64 / b.bench_dt / sources;
    }
    rates[3] = c.pub_audio as f64 / b.bench_dt / sources;
    if rates.contains(&0.0) {
        // Should not happen (the publishers' SSRCs were not learnt): estimate from the shape.
        let m = scn.media;
        for (i, r) in rates.iter_mut().enumerate().take(3) {
            *r = m.frame_bytes(i).div_ceil(1100) as f64 * m.fps as f64;
        }
        rates[3] = 50.0;
    }
    let nominal = rates[2] * scn.video_copies.iter().sum::<u64>() as f64
        + rates[3] * scn.audio_copies.iter().sum::<u64>() as f64;
    let base = if cli.no_baseline {
        None
    } else {
        eprintln!("{} {}: baseline …", scn.kind.name(), scn.size);
        Some(baseline::run(scn, rates, opts.warmup, opts.measure)?)
    };
    let per_core = b.run.pps / b.run.cpu.max(1e-9);
    let loss = c.rtp_expected.saturating_sub(c.rtp_received);
    let loss_pct = 100.0 * loss as f64 / c.rtp_expected.max(1) as f64;
    let mut invalid = Vec::new();
    let not_ready = format!(
        "{} of {} clients never received all their video",
        b.clients_total - b.ready_at_start.min(b.clients_total),
        b.clients_total
    );
    if b.ready_at_start < b.clients_total {
        invalid.push(not_ready.as_str());
    }
    if loss_pct > 0.1 {
        invalid.push("subscriber loss");
    }
    // Every datagram the bridge sent went to a bench client (allowing for the ones in flight
    // at either end of the window).
    let delivered = 100.0 * c.rx_dgrams as f64 / b.bridge_out.max(1) as f64;
    if delivered < 99.0 {
        invalid.push("bench received < 99% of bridge sent");
    }
    if b.bench_drops > 0 || c.tx_errors > 0 {
        invalid.push("bench socket drops");
    }
    if b.busiest_thread >= 0.9 {
        invalid.push("bench client thread saturated");
    }
    if b.bridge_kernel_drops + b.bridge_dropped > 0 {
        invalid.push("bridge drops");
    }
    // RTP (media, retransmissions, padding) the subscribers received against the shape's.
    let of_nominal = 100.0 * c.rtp_received as f64 / b.bench_dt / nominal.max(1e-9);
    if of_nominal < 95.0 {
        invalid.push("subscribers got < 95% of nominal");
    }
    let valid =
        if invalid.is_empty() { "ok".to_string() } else { format!("**INVALID**: {}", invalid.join(", ")) };
    let (base_pps, base_cpu, base_per_core, ratio) = match &base {
        Some(r) => {
            let bpc = r.pps / r.cpu.max(1e-9);
            (
                format!("{:.0}", r.pps),
                format!("{:.3}", r.cpu),
                format!("{bpc:.0}"),
                format!("{:.0}%", 100.0 * per_core / bpc),
            )
        }
        None => ("—".into(), "—".into(), "—".into(), "—".into()),
    };
    let bridge_drops = if b.bridge_dropped > 0 {
        format!("{} (+{} in bridge)", b.bridge_kernel_drops, b.bridge_dropped)
    } else {
        b.bridge_kernel_drops.to_string()
    };
    let frame_delay = match (c.frame_delay_us(0.5), c.frame_delay_us(0.99)) {
        (Some(a), Some(z)) => format!("{:.1} / {:.1} ms", a as f64 / 1000.0, z as f64 / 1000.0),
        _ => "—".into(),
    };
    // Who got less: one slow client, or every client a lower layer?
    let pr = &b.per_receiver;
    let spread = match (pr.first(), pr.get(pr.len() / 2), pr.last()) {
        (Some(a), Some(m), Some(z)) => format!("{a:.0} / {m:.0} / {z:.0}"),
        _ => "—".into(),
    };
    Ok(format!(
        "| {} | {} | {:.0} | {:.0}% | {:.3} | {:.0} | {:.0} | {:.0} | {} µs | {} µs | {} | {} | {} | {} | {} | {} | {} / {} | {} ({:.2}%) | {:.1}% | {}{} / {} | {} / {} | {:.2} ({:.2}, {}) | {} | {} |",
        scn.kind.name(),
        scn.size,
        b.run.pps,
        of_nominal,
        b.run.cpu,
        per_core,
        b.run.wakeups,
        b.run.preempted,
        b.p50,
        b.p99,
        frame_delay,
        base_pps,
        base_cpu,
        base_per_core,
        ratio,
        spread,
        c.rtp_received,
        c.rtp_expected,
        loss,
        loss_pct,
        delivered,
        b.bench_drops,
        if c.tx_errors > 0 { format!(" (+{} send errors)", c.tx_errors) } else { String::new() },
        bridge_drops,
        b.no_ports,
        b.sndbuf_errors,
        b.bench_cpu,
        b.busiest_thread,
        b.client_threads,
        loadavg(),
        valid,
    ))
}

fn main() -> anyhow::Result<()> {
    convene_media::install_crypto();
    let cli = Cli::parse();
    let mut kinds = Vec::new();
    let mut sizes = Vec::new();
    for w in &cli.words {
        if let Ok(n) = w.parse::<usize>() {
            sizes.push(n);
        } else if let Some(k) = Kind::parse(w) {
            kinds.push(k);
        } else {
            bail!("unknown scenario {w:?} (fanout, rooms, lastn) or size");
        }
    }
    if kinds.is_empty() {
        kinds.push(Kind::Fanout);
    }
    if sizes.contains(&0) || cli.participants < 2 || cli.runs == 0 {
        bail!("sizes must be ≥ 1, --participants ≥ 2, --runs ≥ 1");
    }
    let mut bridge_env = Vec::new();
    for kv in &cli.bridge_env {
        let Some((k, v)) = kv.split_once('=') else { bail!("--bridge-env wants KEY=VALUE, got {kv:?}") };
        bridge_env.push((k.to_string(), v.to_string()));
    }
    let opts = Opts {
        bwe: !cli.no_bwe,
        bridge_args: cli.bridge_arg.clone(),
        bridge_env,
        warmup: Duration::from_secs_f64(cli.warmup_s),
        measure: Duration::from_secs_f64(cli.measure_s),
        client_threads: cli.client_threads.map(|n| n.max(1)),
    };
    let slots = Slots {
        audio: bridge_arg_value(&cli.bridge_arg, "--audio-slots").unwrap_or(5),
        video: bridge_arg_value(&cli.bridge_arg, "--video-slots").unwrap_or(20),
    };
    println!("bridge BWE: {}", if opts.bwe { "on" } else { "off" });
    // The bridge inherits the environment: CONVENE_BRIDGE_PACING_QUANTUM_US=1000 compares a
    // 1 ms quantum with the default (timers at every deadline).
    let quantum_env = convene_proto::bridge::env::PACING_QUANTUM_US;
    let quantum = opts
        .bridge_env
        .iter()
        .rev()
        .find(|(k, _)| k == quantum_env)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(quantum_env).ok())
        .unwrap_or_else(|| "0 (default)".into());
    println!("bridge pacing quantum: {quantum} µs");
    if !opts.bridge_env.is_empty() || !opts.bridge_args.is_empty() {
        println!("bridge extra environment: {:?}; extra arguments: {:?}", cli.bridge_env, opts.bridge_args);
    }
    println!(
        "warm-up {} s, measured {} s, {} run(s) per size, client threads: {}, {} cores",
        cli.warmup_s,
        cli.measure_s,
        cli.runs,
        opts.client_threads.map_or("1 below 100 clients, 2 from 100".to_string(), |n| n.to_string()),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let mut scenarios = Vec::new();
    for &kind in &kinds {
        let d = kind.default_media();
        let media = Media {
            top_bps: cli.video_kbps.map(|k| k * 1000).unwrap_or(d.top_bps),
            fps: cli.fps.unwrap_or(d.fps).max(1),
        };
        println!("{}: publishers send {}", kind.name(), media.describe());
        let ns = if sizes.is_empty() { kind.default_sizes() } else { sizes.clone() };
        for n in ns {
            let s = match kind {
                Kind::Fanout => Scenario::fanout(n, media),
                Kind::Rooms => Scenario::rooms(n, cli.participants, media, slots),
                Kind::LastN => Scenario::lastn(n, cli.last_n, media, slots),
            };
            scenarios.push(s);
        }
    }
    println!();
    println!("{HEADER}");
    let mut failed = Vec::new();
    for scn in &scenarios {
        for run in 0..cli.runs {
            // A load the machine cannot set up is a line saying so, not the end of the run.
            match measure_row(scn, &opts, &cli) {
                Ok(row) => println!("{row}"),
                Err(e) => {
                    let why = format!("{} {} (run {}): {e:#}", scn.kind.name(), scn.size, run + 1);
                    eprintln!("not measured: {why}");
                    failed.push(why);
                }
            }
        }
    }
    for f in failed {
        println!("not measured: {f}");
    }
    println!(
        "nominal = the top layer and audio rates the publishers sent × the copies the shape asks \
         for (compared with the RTP the subscribers received per second); sub loss = RTP the subscribers should have got by sequence numbers (per SSRC, RTX \
         included) minus what reached them; socket drops = kernel receive-buffer drops over the \
         window (bench: its clients fell behind; bridge: it did)."
    );
    Ok(())
}
