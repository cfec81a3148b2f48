//! Recorder benchmark (issue 13 item 8): one `convene-recorder` records K four-person rooms
//! of `convene-loadgen` publishers (VP8 simulcast + Opus; the recorder takes the 360p layer)
//! on one bridge, each room's recording started by a protocol-level moderator. For each K it
//! measures the recorder process over a steady window: CPU (utime+stime from /proc), RSS,
//! bytes written per second (its own `/metrics`), and prints a table; composition is off
//! during the capture (`--compose=false`) and measured separately: one four-person recording
//! composed by a recorder with composition on (wall time, × real time, ffmpeg's CPU).
//!
//! Everything shares this machine: the load generator, the bridge and signaling run beside
//! the recorder, and the table says how busy the machine was.
//!
//! Ignored (minutes of wall time); netns tier, workspace binaries built first:
//!
//!   unshare -rn sh -c 'ip link set lo up; cargo test -p convene-e2e --test recorder_bench -- --ignored --nocapture'
//!
//! Knobs (environment): `CONVENE_E2E_BIN_DIR` (where all the binaries come from, e.g.
//! `target/release`), `CONVENE_BENCH_ROOMS` (K values, default `1,10,25,50`),
//! `CONVENE_BENCH_WINDOW_S` (measured seconds per K, default 20), `CONVENE_BENCH_RECORDER`
//! (a recorder binary to measure instead of the debug one, e.g. `target/release/convene-recorder`),
//! `CONVENE_BENCH_COMPOSE_S` (length of the composed recording, default 30; 0: skip),
//! `CONVENE_BENCH_VIDEO_KBPS` (the publishers' top layer, default 300, loadgen's: the 360p layer
//! gets a quarter of it), `CONVENE_BENCH_BRIDGES` (1 or 2 bridges; rooms are spread over them,
//! the table's bridge CPU is their sum).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use convene_e2e::stack::{Stack, metric};
use convene_e2e::{eventually, http_get};
use convene_proto::client::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use convene_proto::recorder::metrics as m;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

const PER_ROOM: usize = 4;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU seconds of a process (its own; and its reaped children's, e.g. ffmpeg) from /proc.
fn cpu_s(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces: state is field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    let tick = clock_ticks();
    // utime, stime, cutime, cstime are fields 14..=17: indices 11..=14 after the name.
    let own = (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / tick;
    let children = (f.get(13).unwrap_or(&0.0) + f.get(14).unwrap_or(&0.0)) / tick;
    (own, children)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `/proc/<pid>/status` figure in MiB (`VmRSS`, `VmHWM`).
fn mem_mib(pid: u32, field: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = s
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The machine's (busy, total) jiffies since boot, all cores.
fn machine() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> =
        s.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).unwrap_or(&0.0) + v.get(4).unwrap_or(&0.0);
    (total - idle, total)
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

async fn recorder_metric(http: u16, name: &str) -> f64 {
    let text = http_get(http, convene_proto::paths::METRICS).await.unwrap_or_default();
    metric(&text, name).unwrap_or(0.0)
}

/// A moderator on signaling's client WebSocket: opens its room, starts the recording when
/// told, reads (and drops) everything meanwhile, stops when told. Sends how far it got.
async fn moderator(
    port: u16,
    room: String,
    mut start: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    progress: tokio::sync::mpsc::Sender<(&'static str, String)>,
    stagger: Duration,
) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await.expect("ws");
    let join = ClientMsg::Join {
        v: PROTOCOL_VERSION,
        room: room.clone(),
        name: Some(format!("Host {room}")),
        avatar: None,
        token: None,
        password: None,
        audio_muted: true,
        video_muted: true,
    };
    ws.send(Message::text(join.to_json())).await.expect("send");
    let mut joined = 0;
    let mut phase = 0;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            r = start.changed(), if phase == 1 => {
                if r.is_ok() && *start.borrow() {
                    phase = 2;
                    tokio::time::sleep(stagger).await;
                    let on = ClientMsg::SetRecording { recording: true };
                    ws.send(Message::text(on.to_json())).await.expect("send");
                }
                continue;
            }
            r = stop.changed(), if phase == 3 => {
                if r.is_ok() && *stop.borrow() {
                    phase = 4;
                    let off = ClientMsg::SetRecording { recording: false };
                    ws.send(Message::text(off.to_json())).await.expect("send");
                }
                continue;
            }
        };
        let Some(Ok(Message::Text(t))) = msg else {
            if msg.is_none() {
                return;
            }
            continue;
        };
        let Ok(m) = convene_proto::client::parse_server(t.as_str()) else { continue };
        match m {
            ServerMsg::Joined { .. } => {
                let _ = progress.send(("joined", room.clone())).await;
            }
            ServerMsg::ParticipantJoined { .. } => {
                joined += 1;
                if joined == PER_ROOM && phase == 0 {
                    phase = 1;
                    let _ = progress.send(("full", room.clone())).await;
                }
            }
            ServerMsg::Room { room: r } if r.recording && phase == 2 => {
                phase = 3;
                let _ = progress.send(("recording", room.clone())).await;
            }
            ServerMsg::RecordingStopped { .. } if phase == 4 => {
                let _ = progress.send(("stopped", room.clone())).await;
                return;
            }
            ServerMsg::Error { code, message } => {
                let _ = progress.send(("error", format!("{room}: {code:?} {message}"))).await;
            }
            _ => {}
        }
    }
}

type Progress = tokio::sync::mpsc::Receiver<(&'static str, String)>;

/// Wait for `n` moderators to report `want` (within `within`); how many did.
async fn count(prx: &mut Progress, want: &'static str, n: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut got = 0;
    while got < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, prx.recv()).await {
            Ok(Some((what, _))) if what == want => got += 1,
            Ok(Some(("error", e))) => eprintln!("  moderator error: {e}"),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    got
}

/// One row of the table.
#[derive(Debug, Clone, Default)]
struct Row {
    rooms: usize,
    recording: usize,
    tracks: f64,
    cpu_pct: f64,
    rss_idle_mib: f64,
    rss_mib: f64,
    hwm_mib: f64,
    mb_per_s: f64,
    lost: f64,
    machine_busy_pct: f64,
    bridge_pct: f64,
    loadgen_pct: f64,
}

impl Row {
    fn per_room_pct(&self) -> f64 {
        self.cpu_pct / self.recording.max(1) as f64
    }
    /// Every track of every room was open during the window (else the machine could not
    /// generate the load, and the row measures nothing).
    fn delivered(&self) -> bool {
        self.tracks >= (2 * PER_ROOM * self.rooms) as f64
    }
    fn rss_per_10(&self) -> f64 {
        (self.rss_mib - self.rss_idle_mib) / self.recording.max(1) as f64 * 10.0
    }
}

/// Record `rooms` rooms for `window` (measured after the tracks are open) and stop.
/// `compose`: composition on (measured after the stop).
async fn run(rooms: usize, window: Duration, compose: bool, program: Option<&Path>) -> (Row, Option<String>) {
    // Every publisher and moderator connects from 127.0.0.1: no per-address limit.
    let yaml = "maxUnauthenticatedPerAddress: 0\n";
    let bridges: &[&str] =
        if env("CONVENE_BENCH_BRIDGES", 1) > 1 { &["bridge-a", "bridge-b"] } else { &["bridge-a"] };
    let stack = Stack::start_with(&format!("recorder-bench-{rooms}"), Some(yaml), bridges).await;
    let out = stack.dir.join("recordings");
    let flag = if compose { "--compose=true" } else { "--compose=false" };
    let (recorder, http) = stack
        .start_recorder_with(
            "recorder-1",
            &out,
            rooms as u32,
            &[flag, "--compose-nice", "0", "--connect-timeout-s", "60"],
            program,
        )
        .await;
    let rpid = recorder.0.id();
    let rss_idle_mib = mem_mib(rpid, "VmRSS:");

    let (start_tx, start_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ptx, mut prx) = tokio::sync::mpsc::channel(4 * rooms + 16);
    let mut tasks = vec![];
    for i in 0..rooms {
        let room = format!("load-{i}");
        // Recordings start 50 ms apart (not all their handshakes at once).
        let stagger = Duration::from_millis(50 * i as u64);
        let m = moderator(stack.sig_port, room, start_rx.clone(), stop_rx.clone(), ptx.clone(), stagger);
        tasks.push(tokio::spawn(m));
    }
    assert_eq!(count(&mut prx, "joined", rooms, Duration::from_secs(30)).await, rooms, "moderators joined");
    // The publishers stay for the whole run; they receive no video (the recorder is the
    // bridge's only video receiver) to leave the machine's CPU to the recorder.
    let run_s = 60 + window.as_secs() + rooms as u64 / 2;
    let args: Vec<String> = [
        "--participants",
        &(PER_ROOM * rooms).to_string(),
        "--rooms",
        &rooms.to_string(),
        "--duration-s",
        &run_s.to_string(),
        "--ramp-ms",
        "20",
        "--last-n",
        "0",
        "--video-kbps",
        &env("CONVENE_BENCH_VIDEO_KBPS", 300u32).to_string(),
        "--progress-s",
        "10",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let (lg, _report) = stack.loadgen(&args);
    let full = count(&mut prx, "full", rooms, Duration::from_secs(30 + rooms as u64)).await;
    assert_eq!(full, rooms, "every room has its publishers{}", stack.logs());
    tokio::time::sleep(Duration::from_secs(3)).await;
    start_tx.send_replace(true);
    let recording = count(&mut prx, "recording", rooms, Duration::from_secs(30 + rooms as u64)).await;
    let want_tracks = (2 * PER_ROOM * recording) as f64;
    let _ = tokio::time::timeout(
        Duration::from_secs(20),
        eventually("the tracks open", Duration::from_secs(20), || async move {
            Ok((recorder_metric(http, m::TRACKS_ACTIVE).await >= want_tracks).then_some(()))
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let bpids: Vec<u32> = stack.bridges.iter().filter_map(|b| b.process.as_ref()).map(|p| p.0.id()).collect();
    let bridges_cpu = || bpids.iter().map(|p| cpu_s(*p).0).sum::<f64>();
    let lpid = lg.0.id();
    let (c0, b0, l0, mach0) = (cpu_s(rpid).0, bridges_cpu(), cpu_s(lpid).0, machine());
    let (bytes0, lost0) =
        (recorder_metric(http, m::BYTES_WRITTEN).await, recorder_metric(http, m::PACKETS_LOST).await);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let (c1, b1, l1, mach1) = (cpu_s(rpid).0, bridges_cpu(), cpu_s(lpid).0, machine());
    let (bytes1, lost1) =
        (recorder_metric(http, m::BYTES_WRITTEN).await, recorder_metric(http, m::PACKETS_LOST).await);
    let row = Row {
        rooms,
        recording,
        tracks: recorder_metric(http, m::TRACKS_ACTIVE).await,
        cpu_pct: (c1 - c0) / secs * 100.0,
        rss_idle_mib,
        rss_mib: mem_mib(rpid, "VmRSS:"),
        hwm_mib: mem_mib(rpid, "VmHWM:"),
        mb_per_s: (bytes1 - bytes0) / secs / 1e6,
        lost: lost1 - lost0,
        machine_busy_pct: (mach1.0 - mach0.0) / (mach1.1 - mach0.1).max(1.0) * 100.0,
        bridge_pct: (b1 - b0) / secs * 100.0,
        loadgen_pct: (l1 - l0) / secs * 100.0,
    };
    eprintln!("  K={rooms}: {row:?}");

    stop_tx.send_replace(true);
    let stopped = count(&mut prx, "stopped", recording, Duration::from_secs(30 + rooms as u64)).await;
    eprintln!("  {stopped}/{recording} recordings stopped");
    let mut composed = None;
    if compose {
        let (_, children0) = cpu_s(rpid);
        let dir = one_dir(&out.join("load-0"));
        let c: serde_json::Value = eventually("the composition", Duration::from_secs(300), || {
            let path = dir.join("manifest.json");
            async move {
                let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
                Ok(m.get("composition").cloned())
            }
        })
        .await;
        // ffmpeg is the recorder's child, reaped: its CPU is in the recorder's cutime+cstime.
        let ffmpeg_cpu_s = cpu_s(rpid).1 - children0;
        let rec_s = c["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        let wall_s = c["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        composed = Some(format!(
            "{rec_s:.1} s of a {PER_ROOM}-person room composed (720p, 1 thread, nice 0) in {wall_s:.1} s: {} × real time, ffmpeg CPU {ffmpeg_cpu_s:.1} s ({:.2} CPU s per recorded s); compose_seconds count {}{}",
            c["speed"],
            ffmpeg_cpu_s / rec_s.max(0.001),
            recorder_metric(http, &format!("{}_count", m::COMPOSE_SECONDS)).await,
            c.get("error").map(|e| format!("; error {e}")).unwrap_or_default(),
        ));
    }
    for t in tasks {
        t.abort();
    }
    drop(lg);
    drop(recorder);
    drop(stack);
    let _ = std::fs::remove_dir_all(&out);
    (row, composed)
}

fn one_dir(room: &Path) -> PathBuf {
    std::fs::read_dir(room).expect("room dir").next().expect("a recording").expect("entry").path()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: minutes of wall time, run by hand (see the module doc)"]
async fn recorder_rooms_per_core() {
    let ks: Vec<usize> = std::env::var("CONVENE_BENCH_ROOMS")
        .unwrap_or_else(|_| "1,10,25,50".into())
        .split(',')
        .filter_map(|k| k.trim().parse().ok())
        .collect();
    let window = Duration::from_secs(env("CONVENE_BENCH_WINDOW_S", 20));
    let compose_s = env("CONVENE_BENCH_COMPOSE_S", 30u64);
    let program = std::env::var("CONVENE_BENCH_RECORDER").ok().map(PathBuf::from);
    let build = match (&program, std::env::var("CONVENE_E2E_BIN_DIR")) {
        (Some(p), _) => format!("recorder {}", p.display()),
        (None, Ok(dir)) => format!("binaries from {dir}"),
        (None, Err(_)) => "debug build".into(),
    };
    eprintln!(
        "recorder benchmark: K = {ks:?}, {}-s windows, {build}, {} cores shared with loadgen, bridge and signaling",
        window.as_secs(),
        cores()
    );
    let mut rows = vec![];
    for &k in &ks {
        let (row, _) = run(k, window, false, program.as_deref()).await;
        rows.push(row);
    }
    let composed = if compose_s > 0 {
        run(1, Duration::from_secs(compose_s), true, program.as_deref()).await.1
    } else {
        None
    };
    println!(
        "\nrecorder ({build}), {PER_ROOM} publishers per room, capture only (--compose=false), {} cores:",
        cores()
    );
    println!(
        "| K rooms | recording | tracks open / expected | recorder CPU % of a core | CPU % per room | rooms per core | RSS MiB (idle → K) | RSS MiB per 10 rooms | MB/s written (kB/s per room) | packets lost (est.) | machine busy % | bridge CPU % | loadgen CPU % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} / {}{} | {:.1} | {:.2} | {:.0} | {:.0} → {:.0} (peak {:.0}) | {:.1} | {:.3} ({:.0}) | {:.0} | {:.0} | {:.0} | {:.0} |",
            r.rooms,
            r.recording,
            r.tracks,
            2 * PER_ROOM * r.rooms,
            if r.delivered() { "" } else { " (media not delivered: not a measurement)" },
            r.cpu_pct,
            r.per_room_pct(),
            100.0 / r.per_room_pct().max(0.001),
            r.rss_idle_mib,
            r.rss_mib,
            r.hwm_mib,
            r.rss_per_10(),
            r.mb_per_s,
            r.mb_per_s * 1000.0 / r.recording.max(1) as f64,
            r.lost,
            r.machine_busy_pct,
            r.bridge_pct,
            r.loadgen_pct,
        );
    }
    if let Some(c) = composed {
        println!("\ncomposition: {c}");
    }
    for r in &rows {
        assert_eq!(r.recording, r.rooms, "every room was recorded at K={}", r.rooms);
    }
}
