//! The per-track WebM writer against real media and real tools: ffmpeg encodes VP8 and Opus
//! at test time, matroska-demuxer reads the frames back out, `TrackWriter` remuxes them as a
//! receiver would get them from str0m (RTP ticks starting near the u32 wrap), and ffprobe /
//! ffmpeg judge the result. ffmpeg is required (scripts/install-deps.sh installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use convene_media::recorder::{Codec, Frame, GapKind, TrackWriter};

mod ffmpeg;
use ffmpeg::{Encoded, decode_errors, encode, probe};

fn tmpdir(name: &str) -> PathBuf {
    ffmpeg::tmpdir("convene-recorder", name)
}

fn vp8_frames(dir: &Path) -> Vec<Encoded> {
    encode(
        dir,
        "in-vp8",
        "testsrc=size=320x240:rate=30",
        3,
        &["-c:v", "libvpx", "-g", "30", "-deadline", "realtime", "-b:v", "400k"],
    )
}

fn opus_frames(dir: &Path) -> Vec<Encoded> {
    encode(
        dir,
        "in-opus",
        "sine=frequency=440:sample_rate=48000",
        3,
        &["-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20"],
    )
}

/// RTP ticks for a frame: starting 1 s before the u32 wraps, so every test crosses it.
fn rtp_time(ms: u64, clock_rate: u32) -> u32 {
    let start = u32::MAX - clock_rate + 1;
    start.wrapping_add((ms * u64::from(clock_rate) / 1000) as u32)
}

fn feed<W: std::io::Write>(w: &mut TrackWriter<W>, frames: &[Encoded], clock_rate: u32) {
    for e in frames {
        w.write(&Frame {
            rtp_time: rtp_time(e.ms, clock_rate),
            clock_rate,
            keyframe: e.keyframe,
            contiguous: true,
            data: &e.data,
        })
        .unwrap();
    }
}

fn input_duration_s(frames: &[Encoded], frame_ms: f64) -> f64 {
    (frames.last().unwrap().ms - frames[0].ms) as f64 / 1000.0 + frame_ms / 1000.0
}

fn check_whole(dir: &Path, name: &str, codec: Codec, clock_rate: u32, frames: &[Encoded], frame_ms: f64) {
    let path = dir.join(format!("{name}.webm"));
    let mut w = TrackWriter::new(std::fs::File::create(&path).unwrap(), codec, 7);
    feed(&mut w, frames, clock_rate);
    assert!(w.gaps().is_empty(), "{name}: {:?}", w.gaps());
    let clusters = w.clusters_written();
    w.finish_seekable().unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let p = probe(&path);
    let want = input_duration_s(frames, frame_ms);
    println!(
        "{name}: codec {} duration {:.3} s (format {:?} s, input {want:.3} s), {} of {} frames decoded, {clusters} clusters, {} bytes",
        p.codec,
        p.duration_s,
        p.format_duration_s,
        p.frames_decoded,
        frames.len(),
        bytes.len()
    );
    assert_eq!(p.codec, codec_name(codec));
    assert!((p.duration_s - want).abs() <= 0.1, "{name}: {} vs {want}", p.duration_s);
    let format = p.format_duration_s.expect("finish_seekable wrote a Duration");
    assert!((format - want).abs() <= 0.1, "{name}: format duration {format} vs {want}");
    assert_eq!(p.frames_decoded, frames.len() as u64);
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "{name}: ffmpeg said: {errors}");
}

fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Opus => "opus",
        Codec::Vp8 => "vp8",
    }
}

#[test]
fn vp8_track_plays_whole() {
    let dir = tmpdir("vp8");
    let frames = vp8_frames(&dir);
    check_whole(&dir, "out-vp8", Codec::Vp8, 90_000, &frames, 1000.0 / 30.0);
}

#[test]
fn opus_track_plays_whole() {
    let dir = tmpdir("opus");
    let frames = opus_frames(&dir);
    check_whole(&dir, "out-opus", Codec::Opus, 48_000, &frames, 20.0);
}

/// What a SIGKILL leaves: only the bytes already handed to the `io::Write`, `finish` never
/// called; and the same cut in the middle of the last Cluster (killed during a write).
#[test]
fn crash_mid_recording_leaves_a_playable_file() {
    let dir = tmpdir("crash");
    for (name, codec, clock_rate, frames, fps) in [
        ("vp8", Codec::Vp8, 90_000, vp8_frames(&dir), 30.0),
        ("opus", Codec::Opus, 48_000, opus_frames(&dir), 50.0),
    ] {
        let mut w = TrackWriter::new(Vec::new(), codec, 1);
        feed(&mut w, &frames, clock_rate);
        let on_disk = w.get_ref().clone();
        drop(w);
        // Killed: exactly what was handed to the io::Write before the kill.
        let path = dir.join(format!("{name}-killed.webm"));
        std::fs::write(&path, &on_disk).unwrap();
        let killed = probe(&path);
        let errors = decode_errors(&path);
        println!(
            "crash {name} killed: {} bytes, {:.3} s, {} frames decoded ({:.2} s at {fps} fps) of {} fed, ffmpeg said: {errors:?}",
            on_disk.len(),
            killed.duration_s,
            killed.frames_decoded,
            killed.frames_decoded as f64 / fps,
            frames.len()
        );
        assert_eq!(killed.codec, codec_name(codec));
        assert!(killed.frames_decoded as f64 >= 2.0 * fps, "{name}: {} frames", killed.frames_decoded);
        assert!(killed.duration_s >= 2.0 - 0.05, "{name}: {} s", killed.duration_s);
        assert!(errors.is_empty(), "{name} killed: ffmpeg said: {errors}");

        // Torn: killed in the middle of writing the last Cluster. The demuxer says the file
        // ended prematurely (an error-level line) and loses the torn frame, nothing before it.
        let path = dir.join(format!("{name}-torn.webm"));
        std::fs::write(&path, &on_disk[..on_disk.len() - 200]).unwrap();
        let torn = probe(&path);
        let errors = decode_errors(&path);
        println!(
            "crash {name} torn: {:.3} s, {} frames decoded, ffmpeg said: {errors:?}",
            torn.duration_s, torn.frames_decoded
        );
        assert!(torn.frames_decoded + 1 >= killed.frames_decoded, "{name} torn: {}", torn.frames_decoded);
        assert!(
            errors.lines().all(|l| l.contains("File ended prematurely")),
            "{name} torn: ffmpeg said: {errors}"
        );
    }
}

/// Real Opus with 1 s muted in the middle: the gap is reported and the file still decodes,
/// with its timestamps following the RTP clock across the hole.
#[test]
fn muted_second_is_a_gap_in_a_playable_file() {
    let dir = tmpdir("gap");
    let frames = opus_frames(&dir);
    let kept: Vec<Encoded> = frames.into_iter().filter(|e| !(1000..2000).contains(&e.ms)).collect();
    let mut w = TrackWriter::new(Vec::new(), Codec::Opus, 3);
    feed(&mut w, &kept, 48_000);
    let gaps = w.gaps().to_vec();
    println!("gaps: {gaps:?}");
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].kind, GapKind::Jump);
    assert!((980..=1000).contains(&gaps[0].at_ms), "{:?}", gaps[0]);
    assert!((990..=1010).contains(&gaps[0].skipped_ms), "{:?}", gaps[0]);
    let path = dir.join("gap.webm");
    std::fs::write(&path, w.finish().unwrap()).unwrap();
    let p = probe(&path);
    assert!((p.duration_s - 3.0).abs() <= 0.1, "{}", p.duration_s);
    assert_eq!(p.frames_decoded, kept.len() as u64);
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "ffmpeg said: {errors}");
}

/// Real VP8 whose RTP time restarts lower halfway (a new SSRC after a migration), and that
/// starts and restarts on inter frames: those wait for a keyframe, the new timebase is a
/// discontinuity, and the file decodes without an error.
#[test]
fn vp8_restart_waits_for_a_keyframe_and_stays_monotonic() {
    let dir = tmpdir("restart");
    let frames = vp8_frames(&dir);
    let mut w = TrackWriter::new(Vec::new(), Codec::Vp8, 5);
    let mut written = 0;
    for (i, e) in frames.iter().enumerate().skip(5) {
        // Second half: a new sender whose clock starts far from the old one (backwards, modulo 2^32), and whose first frames
        // arrive after a loss.
        let (rtp, contiguous) = if e.ms >= 1500 {
            (3_000_000_000u32.wrapping_add(((e.ms - 1500) * 90) as u32), i % 45 != 0)
        } else {
            (rtp_time(e.ms, 90_000), true)
        };
        let r = w
            .write(&Frame {
                rtp_time: rtp,
                clock_rate: 90_000,
                keyframe: e.keyframe,
                contiguous,
                data: &e.data,
            })
            .unwrap();
        if matches!(r, convene_media::recorder::track::Written::At { .. }) {
            written += 1;
        }
    }
    println!("restart: written {written}, dropped {}, gaps {:?}", w.frames_dropped(), w.gaps());
    assert!(w.frames_dropped() > 0, "frames before the first keyframe wait");
    assert_eq!(w.gaps().len(), 1);
    assert_eq!(w.gaps()[0].kind, GapKind::Discontinuity);
    let path = dir.join("restart.webm");
    std::fs::write(&path, w.finish().unwrap()).unwrap();
    let p = probe(&path);
    assert_eq!(p.frames_decoded, written);
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "ffmpeg said: {errors}");
}

/// The recorder's real input path: a str0m sender writes the ffmpeg frames (VP8 and Opus) to a
/// str0m receiver in frame mode, in virtual time over an in-memory network; the receiver's
/// `Event::MediaData` goes through `Frame::from_media_data` into two TrackWriters. str0m
/// packetizes and depacketizes (keyframes span several RTP packets) and starts the RTP clock
/// where it likes; the files must still match the input.
#[test]
fn str0m_frame_mode_media_data_records_to_playable_files() {
    use std::time::{Duration, Instant};
    use str0m::format::Codec as RtcCodec;
    use str0m::media::{Direction, Frequency, MediaKind, MediaTime};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input, Output, Rtc};

    convene_media::install_crypto();
    let dir = tmpdir("str0m");
    let video = vp8_frames(&dir);
    let audio = opus_frames(&dir);

    let start = Instant::now();
    let a_addr = "127.0.0.1:41000".parse().unwrap();
    let b_addr = "127.0.0.1:42000".parse().unwrap();
    let mut a = Rtc::builder().build(start);
    let mut b = Rtc::builder().build(start);
    a.add_local_candidate(Candidate::host(a_addr, "udp").unwrap());
    b.add_local_candidate(Candidate::host(b_addr, "udp").unwrap());
    let mut api = a.sdp_api();
    let audio_mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let video_mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let answer = b.sdp_api().accept_offer(offer).unwrap();
    a.sdp_api().accept_answer(pending, answer).unwrap();

    let mut vw = TrackWriter::new(Vec::new(), Codec::Vp8, 11);
    let mut aw = TrackWriter::new(Vec::new(), Codec::Opus, 12);
    // wires[0] is what is on its way to a, wires[1] to b.
    let mut wires: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut connected_at: Option<Instant> = None;
    let (mut next_v, mut next_a) = (0, 0);
    let mut keyframes_seen = 0;
    let mut now = start;
    while now < start + Duration::from_secs(10) {
        now += Duration::from_millis(1);
        // Sender: write every frame whose time has come, at its own media time.
        if let Some(t0) = connected_at {
            let elapsed = (now - t0).as_millis() as u64;
            while next_v < video.len() && video[next_v].ms <= elapsed {
                let w = a.writer(video_mid).unwrap();
                let pt = w.payload_params().find(|p| p.spec().codec == RtcCodec::Vp8).unwrap().pt();
                let t = MediaTime::new(video[next_v].ms * 90, Frequency::NINETY_KHZ);
                w.write(pt, now, t, video[next_v].data.clone()).unwrap();
                next_v += 1;
            }
            while next_a < audio.len() && audio[next_a].ms <= elapsed {
                let w = a.writer(audio_mid).unwrap();
                let pt = w.payload_params().find(|p| p.spec().codec == RtcCodec::Opus).unwrap().pt();
                let t = MediaTime::new(audio[next_a].ms * 48, Frequency::FORTY_EIGHT_KHZ);
                w.write(pt, now, t, audio[next_a].data.clone()).unwrap();
                next_a += 1;
            }
        }
        for side in 0..2 {
            let (rtc, local, peer, is_a) =
                if side == 0 { (&mut a, a_addr, b_addr, true) } else { (&mut b, b_addr, a_addr, false) };
            for pkt in std::mem::take(&mut wires[side]) {
                let r = Receive::new(Protocol::Udp, peer, local, &pkt).unwrap();
                rtc.handle_input(Input::Receive(now, r)).unwrap();
            }
            rtc.handle_input(Input::Timeout(now)).unwrap();
            loop {
                match rtc.poll_output().unwrap() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => wires[1 - side].push(t.contents.to_vec()),
                    Output::Event(Event::Connected) if is_a => connected_at = Some(now),
                    Output::Event(Event::MediaData(d)) => {
                        let frame = Frame::from_media_data(&d);
                        if d.mid == video_mid {
                            keyframes_seen += usize::from(frame.keyframe);
                            vw.write(&frame).unwrap();
                        } else {
                            aw.write(&frame).unwrap();
                        }
                    }
                    Output::Event(_) => {}
                }
            }
        }
        if next_v == video.len()
            && next_a == audio.len()
            && vw.frames_written() == video.len() as u64
            && aw.frames_written() == audio.len() as u64
        {
            break;
        }
    }
    assert!(connected_at.is_some(), "the two str0m peers never connected");
    let want_keyframes = video.iter().filter(|e| e.keyframe).count();
    println!(
        "str0m: sent {next_v} video / {next_a} audio frames; recorded {} video ({keyframes_seen} keyframes, {want_keyframes} sent), {} audio; gaps {:?} {:?}",
        vw.frames_written(),
        aw.frames_written(),
        vw.gaps(),
        aw.gaps()
    );
    assert_eq!(keyframes_seen, want_keyframes, "is_keyframe() survives str0m");
    assert!(vw.gaps().is_empty() && aw.gaps().is_empty());
    for (name, w, frames, frame_ms, codec) in
        [("str0m-vp8", vw, &video, 1000.0 / 30.0, Codec::Vp8), ("str0m-opus", aw, &audio, 20.0, Codec::Opus)]
    {
        let written = w.frames_written();
        let path = dir.join(format!("{name}.webm"));
        std::fs::write(&path, w.finish().unwrap()).unwrap();
        let p = probe(&path);
        let want = input_duration_s(frames, frame_ms);
        println!(
            "{name}: codec {} duration {:.3} s (input {want:.3} s), {} decoded of {written} recorded, {} sent",
            p.codec,
            p.duration_s,
            p.frames_decoded,
            frames.len()
        );
        assert_eq!(p.codec, codec_name(codec));
        assert_eq!(written, frames.len() as u64, "{name}: every frame arrived");
        assert_eq!(p.frames_decoded, written);
        assert!((p.duration_s - want).abs() <= 0.1, "{name}: {} vs {want}", p.duration_s);
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "{name}: ffmpeg said: {errors}");
    }
}

const SIGKILL_CHILD: &str = "CONVENE_RECORDER_SIGKILL_CHILD";

/// A real crash: this test re-runs itself as a child process that records VP8 and Opus to
/// files in real time (never calling `finish`), and SIGKILLs it 2.6 s in. What is on disk must
/// decode without an error and hold at least the first 2 s.
#[test]
fn sigkill_mid_recording_leaves_playable_files() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    if let Ok(dir) = std::env::var(SIGKILL_CHILD) {
        record_in_real_time(Path::new(&dir));
        return;
    }
    let dir = tmpdir("sigkill");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigkill_mid_recording_leaves_playable_files", "--nocapture"])
        .env(SIGKILL_CHILD, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut fed_ms = 0;
    // Kept open until after the kill, so the child cannot die of a closed pipe first.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if let Some(ms) = line.unwrap().strip_prefix("fed ") {
            fed_ms = ms.parse().unwrap();
            if fed_ms >= 2600 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    drop(lines);
    assert!(fed_ms >= 2600, "the child stopped early ({status}) at {fed_ms} ms");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
    for (name, fps, codec) in [("vp8", 30.0, Codec::Vp8), ("opus", 50.0, Codec::Opus)] {
        let path = dir.join(format!("{name}.webm"));
        let p = probe(&path);
        let errors = decode_errors(&path);
        println!(
            "SIGKILL at {fed_ms} ms ({status}): {name} {} bytes, {:.3} s, {} frames decoded ({:.2} s), ffmpeg said: {errors:?}",
            std::fs::metadata(&path).unwrap().len(),
            p.duration_s,
            p.frames_decoded,
            p.frames_decoded as f64 / fps
        );
        assert_eq!(p.codec, codec_name(codec));
        assert!(p.frames_decoded as f64 >= 2.0 * fps, "{name}: {} frames", p.frames_decoded);
        assert!(errors.is_empty(), "{name}: ffmpeg said: {errors}");
    }
}

/// The child: both tracks to files, paced by the frames' own times, then waits to be killed.
fn record_in_real_time(dir: &Path) {
    use std::time::{Duration, Instant};

    let video = vp8_frames(dir);
    let audio = opus_frames(dir);
    let file = |name: &str| std::fs::File::create(dir.join(format!("{name}.webm"))).unwrap();
    let mut vw = TrackWriter::new(file("vp8"), Codec::Vp8, 21);
    let mut aw = TrackWriter::new(file("opus"), Codec::Opus, 22);
    let mut all: Vec<(u64, bool, &Encoded)> = video.iter().map(|e| (e.ms, true, e)).collect();
    all.extend(audio.iter().map(|e| (e.ms, false, e)));
    all.sort_by_key(|(ms, _, _)| *ms);
    let t0 = Instant::now();
    for (ms, is_video, e) in all {
        if let Some(wait) = Duration::from_millis(ms).checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        let (w, clock_rate) = if is_video { (&mut vw, 90_000) } else { (&mut aw, 48_000) };
        w.write(&Frame {
            rtp_time: rtp_time(ms, clock_rate),
            clock_rate,
            keyframe: e.keyframe,
            contiguous: true,
            data: &e.data,
        })
        .unwrap();
        println!("fed {ms}");
    }
    std::thread::sleep(Duration::from_secs(60));
}
