//! Composition of `recording.webm` against real media and the real ffmpeg: three
//! participants' VP8 cameras and Opus audio (ffmpeg encodes them at test time, the real
//! `TrackWriter` writes the track files as the recorder would), one who leaves midway, a
//! screen share in the middle (a solid magenta screen, so the stage is checkable), a manifest
//! made with the real `Manifest`. ffprobe and ffmpeg judge the composed file. ffmpeg and
//! fonts-dejavu-core are required (scripts/install-deps.sh installs them).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use convene_media::control::SourceKind;
use convene_media::recorder::compose::{ComposeConfig, Composer, RunError, RunnerOptions};
use convene_media::recorder::manifest::TrackStop;
use convene_media::recorder::{Codec, Frame, Manifest, TrackWriter};

mod ffmpeg;
use ffmpeg::{Encoded, decode_errors, encode, run};

const WALL0: u64 = 1_780_000_000_000;
/// The screen's colour (RGB), far from anything testsrc draws in bulk.
const MAGENTA: [f64; 3] = [255.0, 0.0, 255.0];

fn tmpdir(name: &str) -> PathBuf {
    ffmpeg::tmpdir("convene-compose", name)
}

struct Clips {
    cam: Vec<Encoded>,
    /// 2 s at 640x360, then 2 s at 320x180: a camera switching simulcast layers.
    cam2: Vec<Encoded>,
    screen: Vec<Encoded>,
    tones: Vec<Vec<Encoded>>,
}

/// 2 s clips, looped by [`track`].
fn clips(dir: &Path) -> Clips {
    let vp8 = ["-c:v", "libvpx", "-g", "30", "-deadline", "realtime", "-b:v", "500k", "-auto-alt-ref", "0"];
    let opus = ["-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20"];
    Clips {
        cam: encode(dir, "in-cam", "testsrc=size=640x360:rate=30", 2, &vp8),
        cam2: {
            let mut big = encode(dir, "in-cam2", "testsrc2=size=640x360:rate=30", 2, &vp8);
            let small = encode(dir, "in-cam2-small", "testsrc2=size=320x180:rate=30", 2, &vp8);
            big.extend(small.into_iter().map(|e| Encoded { ms: e.ms + 2000, ..e }));
            big
        },
        screen: encode(dir, "in-screen", "color=c=0xff00ff:size=1280x720:rate=10", 2, &vp8),
        tones: [330, 440, 550]
            .iter()
            .map(|f| {
                let src = format!("sine=frequency={f}:sample_rate=48000");
                encode(dir, &format!("in-tone{f}"), &src, 2, &opus)
            })
            .collect(),
    }
}

/// Write a track file of `ms` long from a looped clip (RTP time from the clip's ms), as the
/// recorder's `TrackWriter` does, minus the frames in `muted` (track ms): a gap.
fn track(path: &Path, codec: Codec, clip: &[Encoded], ms: u64, muted: Option<(u64, u64)>) -> u64 {
    // Clips are whole seconds long.
    let lap_ms = clip.last().unwrap().ms.div_ceil(1000) * 1000;
    let clock_rate = if codec == Codec::Opus { 48_000 } else { 90_000 };
    let mut w = TrackWriter::new(std::fs::File::create(path).unwrap(), codec, 1);
    let mut last = 0;
    'out: for lap in 0.. {
        for e in clip {
            let t = lap * lap_ms + e.ms;
            if t >= ms {
                break 'out;
            }
            if muted.is_some_and(|(a, b)| (a..b).contains(&t)) {
                continue;
            }
            let rtp = (t * u64::from(clock_rate) / 1000) as u32;
            w.write(&Frame {
                rtp_time: rtp,
                clock_rate,
                keyframe: e.keyframe,
                contiguous: true,
                data: &e.data,
            })
            .unwrap();
            last = t;
        }
    }
    w.finish_seekable().unwrap();
    last
}

/// A recording in `dir` of `total_ms`: alice (camera, audio) all along; bob (camera changing
/// size every 2 s, audio with a 1 s hole) leaves at 45 %; carol joins at 10 % and shares her screen from 35 % to
/// 65 %. Returns the screen span (ms).
fn record(dir: &Path, c: &Clips, total_ms: u64) -> (u64, u64) {
    let pct = |p: u64| total_ms * p / 100;
    let mut m = Manifest::new("room", "rec", WALL0);
    let mut add =
        |who: &str, kind: SourceKind, codec: Codec, clip: &[Encoded], start: u64, stop: u64, muted| {
            let file = format!(
                "{who}-{}.webm",
                match kind {
                    SourceKind::Audio => "a0",
                    SourceKind::Camera => "v0",
                    SourceKind::Screen => "s0",
                }
            );
            let media_ms = track(&dir.join(&file), codec, clip, stop - start, muted);
            let at = m.start_track(who, &file, kind, codec, &file, 1, WALL0 + start);
            m.stop_track(&at, TrackStop { wall_ms: WALL0 + stop, media_ms, frames: 1, gaps: vec![] });
        };
    add("alice", SourceKind::Camera, Codec::Vp8, &c.cam, 0, total_ms, None);
    add("alice", SourceKind::Audio, Codec::Opus, &c.tones[0], 40, total_ms, None);
    add("bob", SourceKind::Camera, Codec::Vp8, &c.cam2, 0, pct(45), None);
    add("bob", SourceKind::Audio, Codec::Opus, &c.tones[1], 0, pct(45), Some((1000, 2000)));
    add("carol", SourceKind::Camera, Codec::Vp8, &c.cam, pct(10), total_ms, None);
    add("carol", SourceKind::Audio, Codec::Opus, &c.tones[2], pct(10) + 20, total_ms, None);
    add("carol", SourceKind::Screen, Codec::Vp8, &c.screen, pct(35), pct(65), None);
    m.participants.get_mut("alice").unwrap().name = Some("Alice O'Brien: 100% \\ [x];".into());
    m.participants.get_mut("carol").unwrap().name = Some("Carol\nNewline".into());
    m.stopped_wall_ms = Some(WALL0 + total_ms);
    std::fs::write(dir.join("manifest.json"), m.to_json()).unwrap();
    (pct(35), pct(65))
}

fn config(height: u32, concurrency: usize) -> ComposeConfig {
    ComposeConfig {
        compose_height: height,
        compose_threads: 1,
        compose_concurrency: concurrency,
        ..Default::default()
    }
}

/// Mean RGB of a `w`×`h` region at (`x`, `y`) of the frame at `at_s`.
fn mean_rgb(file: &Path, at_s: f64, (x, y, w, h): (u32, u32, u32, u32)) -> [f64; 3] {
    let out = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-ss",
            &format!("{at_s:.2}"),
            "-i",
            file.to_str().unwrap(),
            "-frames:v",
            "1",
            "-vf",
            &format!("crop={w}:{h}:{x}:{y}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
    );
    let px = &out.stdout;
    assert_eq!(px.len(), (w * h * 3) as usize);
    let mut sum = [0f64; 3];
    for p in px.chunks(3) {
        for i in 0..3 {
            sum[i] += f64::from(p[i]);
        }
    }
    sum.map(|s| s / f64::from(w * h))
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt()
}

/// `mean_volume` (dB) of `len_s` of audio from `at_s`.
fn mean_volume(file: &Path, at_s: f64, len_s: f64) -> f64 {
    let out = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-ss",
            &format!("{at_s:.2}"),
            "-t",
            &format!("{len_s:.2}"),
            "-i",
            file.to_str().unwrap(),
            "-vn",
            "-af",
            "volumedetect",
            "-f",
            "null",
            "-",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.contains("mean_volume:")).unwrap_or_else(|| panic!("{err}"));
    line.split("mean_volume:").nth(1).unwrap().trim().trim_end_matches(" dB").parse().unwrap()
}

/// (codec_type, codec_name) of every stream, and the format's duration.
fn streams(file: &Path) -> (Vec<(String, String)>, f64) {
    let out = run(
        "ffprobe",
        &["-v", "error", "-show_streams", "-show_format", "-of", "json", file.to_str().unwrap()],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["codec_type"].as_str().unwrap().into(), s["codec_name"].as_str().unwrap().into()))
        .collect();
    (s, json["format"]["duration"].as_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_people_and_a_screen_make_one_watchable_file() {
    let dir = tmpdir("three");
    let c = clips(&dir);
    let total_ms = 24_000;
    let (share_a, share_b) = record(&dir, &c, total_ms);
    let composer = Composer::new(config(720, 1));
    let result = composer.compose_recording(&dir).await;
    let speed = result.speed.unwrap_or_else(|| panic!("{result:?}"));
    println!(
        "composition: {} s of 3 participants at 720p, --compose-threads 1: {} ms wall, {speed:.2}x real time",
        total_ms / 1000,
        result.wall_ms
    );
    let out = dir.join("recording.webm");
    assert!(!dir.join("recording.webm.part").exists() && !dir.join(".compose").exists());
    // The manifest says what was made.
    let m: Manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m.composition.as_ref(), Some(&result));
    assert_eq!(result.file.as_deref(), Some("recording.webm"));

    let (s, duration) = streams(&out);
    assert_eq!(s, [("video".into(), "vp8".into()), ("audio".into(), "opus".into())]);
    assert!((duration - total_ms as f64 / 1000.0).abs() <= 1.0, "{duration} s");
    let errors = decode_errors(&out);
    assert!(errors.is_empty(), "ffmpeg said: {errors}");

    // The screen is on the stage (the frame above the bottom fifth) while shared, not before
    // or after.
    let stage = (440, 188, 400, 200);
    let mid = (share_a + share_b) as f64 / 2000.0;
    for (at, on) in [(mid, true), (share_a as f64 / 1000.0 + 1.0, true), (3.0, false), (20.0, false)] {
        let rgb = mean_rgb(&out, at, stage);
        let d = distance(rgb, MAGENTA);
        println!("stage at {at:.1} s: mean {rgb:.0?}, {d:.0} from magenta");
        if on {
            assert!(d < 40.0, "screen on the stage at {at} s: {rgb:?}");
        } else {
            assert!(d > 120.0, "no screen at {at} s: {rgb:?}");
        }
    }
    // Audio where there is audio: at the start (alice, bob), late (alice, carol), overall.
    for (at, len) in [(0.5, 3.0), (18.0, 4.0), (0.0, 24.0)] {
        let v = mean_volume(&out, at, len);
        println!("mean volume {at}+{len} s: {v} dB");
        assert!(v > -30.0, "audible at {at} s: {v} dB");
    }
}

/// Two compositions with a limit of one run one after the other; a third with a timeout far
/// below its length is killed, leaving neither the file nor the part file nor the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_at_a_time_and_killed_on_timeout() {
    let base = tmpdir("limits");
    let c = clips(&base);
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| {
            let d = base.join(format!("rec{i}"));
            std::fs::create_dir_all(&d).unwrap();
            record(&d, &c, 6_000);
            d
        })
        .collect();
    let composer = Composer::new(config(360, 1));
    let t0 = Instant::now();
    let m0 = serde_json::from_slice(&std::fs::read(dirs[0].join("manifest.json")).unwrap()).unwrap();
    let m1 = serde_json::from_slice(&std::fs::read(dirs[1].join("manifest.json")).unwrap()).unwrap();
    let (a, b) = tokio::join!(composer.compose(&dirs[0], &m0), composer.compose(&dirs[1], &m1));
    let (a, b) = (a.unwrap(), b.unwrap());
    println!(
        "limit 1: queued {:?} / {:?}, ran {:?} / {:?}, {:?} in all",
        a.queued,
        b.queued,
        a.wall,
        b.wall,
        t0.elapsed()
    );
    let (first, second) = if a.started <= b.started { (&a, &b) } else { (&b, &a) };
    assert!(second.started >= first.started + first.wall, "one after the other: {first:?} {second:?}");
    assert!(second.queued >= first.wall / 2, "the second waited for the first: {second:?}");
    assert!(t0.elapsed() >= a.wall + b.wall);

    let killer = Composer::with_runner_options(
        config(360, 1),
        RunnerOptions {
            ffmpeg: "ffmpeg".into(),
            niceness: 10,
            timeout_factor: 0.0,
            min_timeout: Duration::from_millis(300),
        },
    );
    let m2 = serde_json::from_slice(&std::fs::read(dirs[2].join("manifest.json")).unwrap()).unwrap();
    let t = Instant::now();
    let err = killer.compose(&dirs[2], &m2).await.unwrap_err();
    println!("timeout: {err} after {:?}", t.elapsed());
    assert!(
        matches!(err, convene_media::recorder::compose::ComposeError::Run(RunError::Timeout(_))),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!dirs[2].join("recording.webm").exists() && !dirs[2].join("recording.webm.part").exists());
    // No process is left working in that directory.
    std::thread::sleep(Duration::from_millis(200));
    let cwd = dirs[2].canonicalize().unwrap();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(d) = std::fs::read_link(p.path().join("cwd")) {
            assert_ne!(d, cwd, "process {:?} still runs in the recording's directory", p.file_name());
        }
    }
}

/// ffmpeg failing (a track file is missing) is the composition's failure, not the recording's:
/// the manifest says why, with the end of what ffmpeg said, and no file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_composition_is_recorded_in_the_manifest() {
    let dir = tmpdir("failed");
    let c = clips(&dir);
    record(&dir, &c, 4_000);
    std::fs::remove_file(dir.join("bob-v0.webm")).unwrap();
    let result = Composer::new(config(360, 1)).compose_recording(&dir).await;
    println!("{result:?}");
    let error = result.error.as_deref().expect("an error");
    assert!(error.contains("ffmpeg failed") && error.contains("bob-v0.webm"), "{error}");
    assert_eq!((result.file.as_deref(), result.speed), (None, None));
    let m: Manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m.composition, Some(result));
    assert_eq!(m.participants.len(), 3, "the rest of the manifest is kept");
    let left: Vec<_> = ["recording.webm", "recording.webm.part", ".compose"]
        .iter()
        .filter(|f| dir.join(f).exists())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Composition speed by room size (`--ignored`: a measurement, about a minute): `n`
/// participants with camera and audio for 20 s, 720p, one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn speed_by_room_size() {
    let dir = tmpdir("speed");
    let c = clips(&dir);
    for n in [1usize, 3, 6, 9] {
        let d = dir.join(format!("n{n}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut m = Manifest::new("room", "rec", WALL0);
        for i in 0..n {
            for (kind, codec, clip) in
                [(SourceKind::Camera, Codec::Vp8, &c.cam), (SourceKind::Audio, Codec::Opus, &c.tones[i % 3])]
            {
                let file = format!("p{i}-{}.webm", if codec == Codec::Vp8 { "v0" } else { "a0" });
                let media_ms = track(&d.join(&file), codec, clip, 20_000, None);
                let at = m.start_track(&format!("p{i}"), &file, kind, codec, &file, 1, WALL0);
                m.stop_track(&at, TrackStop { wall_ms: WALL0 + 20_000, media_ms, frames: 1, gaps: vec![] });
            }
        }
        m.stopped_wall_ms = Some(WALL0 + 20_000);
        std::fs::write(d.join("manifest.json"), m.to_json()).unwrap();
        let cpu0 = children_cpu_s();
        let r = Composer::new(config(720, 1)).compose_recording(&d).await;
        let cpu = children_cpu_s() - cpu0;
        println!(
            "{n} participants, 20 s at 720p, 1 thread: {:?}x real time ({} ms wall, {cpu:.2} s CPU)",
            r.speed, r.wall_ms
        );
        assert!(r.error.is_none(), "{r:?}");
    }
}

/// CPU seconds (user + system) of this process's waited-for children, from /proc (100 Hz).
fn children_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // After the command: state is field 3, cutime 16 and cstime 17.
    (f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap()) / 100.0
}
