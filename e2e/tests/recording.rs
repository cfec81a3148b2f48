//! A real recording: `convene-signaling`, one `convene-bridge`, `convene-recorder`s and
//! `convene-loadgen` participants on loopback. A moderator (a protocol-level client here)
//! starts recording, another room asks for one while the only recorder is busy (typed
//! `no_recorder`), the moderator chats and stops after ~7 s; every track file is then judged by
//! `ffprobe` (codec, duration against the manifest's span) and `ffmpeg` (decodes clean), the
//! manifest names everyone, `chat.txt` holds the chat, `recording.webm` is composed, and
//! nobody ever saw the recorder as a participant or a source. A recorder SIGKILLed mid-recording
//! leaves playable partial files and another recorder continues the recording.
//!
//! Netns tier (`unshare -n`, loopback only); needs the workspace binaries built first and
//! ffmpeg (scripts/install-deps.sh):
//!
//!   unshare -rn sh -c 'ip link set lo up; cargo test -p convene-e2e --test recording'

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use convene_e2e::client::RoomClient;
use convene_e2e::eventually;
use convene_e2e::stack::{Stack, finish};
use convene_proto::client::{ClientMsg, ServerMsg};
#[path = "../../media/tests/ffmpeg/probe.rs"]
mod ffprobe;
use ffprobe::{decode_errors, probe};
use serde_json::Value;

const PARTICIPANTS: usize = 3;
const RUN_S: u64 = 22;
const RECORD_S: u64 = 7;

fn recording(m: &ServerMsg) -> Option<(bool, Option<String>)> {
    match m {
        ServerMsg::Room { room } => Some((room.recording, room.recording_by.clone())),
        _ => None,
    }
}

/// Every participant id a client was told of (presence, states, speakers, slots).
fn ids_seen(seen: &[ServerMsg]) -> Vec<String> {
    let mut ids = vec![];
    for m in seen {
        match m {
            ServerMsg::Joined { participants, you, .. } => {
                ids.extend(participants.iter().map(|p| p.id.clone()));
                ids.push(you.id.clone());
            }
            ServerMsg::ParticipantJoined { participant } | ServerMsg::ParticipantUpdated { participant } => {
                ids.push(participant.id.clone())
            }
            ServerMsg::ParticipantLeft { id }
            | ServerMsg::ConnectionState { id, .. }
            | ServerMsg::DominantSpeaker { id } => ids.push(id.clone()),
            ServerMsg::Offer { slots, .. } | ServerMsg::Slots { slots } => {
                ids.extend(slots.iter().filter_map(|s| s.source.as_ref().map(|s| s.endpoint.clone())))
            }
            _ => {}
        }
    }
    ids
}

fn ffmpeg_present() -> bool {
    Command::new("ffprobe").arg("-version").output().is_ok()
        && Command::new("ffmpeg").arg("-version").output().is_ok()
}

/// The one recording directory under `root` (`<room>/<start time>/`).
fn recording_dir(root: &Path, room: &str) -> PathBuf {
    let dirs: Vec<PathBuf> =
        std::fs::read_dir(root.join(room)).expect("room dir").map(|e| e.expect("entry").path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// Room `load-0` with its moderator (a protocol client, the first to join: an open shard's
/// first joiner moderates) and loadgen's publishers in it.
async fn hosted_room(stack: &Stack) -> (RoomClient, convene_e2e::Process, PathBuf) {
    let mut host = RoomClient::join(stack.sig_port, "load-0", "Host").await;
    let args: Vec<String> =
        ["--participants", &PARTICIPANTS.to_string(), "--rooms", "1", "--duration-s", &RUN_S.to_string()]
            .into_iter()
            .chain(["--ramp-ms", "50", "--keyframe-interval-s", "2", "--progress-s", "5"])
            .map(String::from)
            .collect();
    let (loadgen, report) = stack.loadgen(&args);
    for _ in 0..PARTICIPANTS {
        host.wait("participants", |m| matches!(m, ServerMsg::ParticipantJoined { .. })).await;
    }
    (host, loadgen, report)
}

/// Signaling, one bridge, a recorder with room for one recording, a moderator and loadgen
/// participants sending media in room `load-0`.
struct World {
    stack: Stack,
    out: PathBuf,
    recorders: Vec<convene_e2e::Process>,
    host: RoomClient,
    loadgen: convene_e2e::Process,
    report: PathBuf,
}

async fn world(test: &str, recorders: usize, bridges: &[&str]) -> Option<World> {
    if !ffmpeg_present() {
        eprintln!("skipped: ffmpeg/ffprobe are not installed (scripts/install-deps.sh installs them)");
        return None;
    }
    let stack = Stack::start_with(test, None, bridges).await;
    let out = stack.dir.join("recordings");
    let mut started = vec![];
    for i in 1..=recorders {
        started.push(stack.start_recorder(&format!("recorder-{i}"), &out, 1).await);
    }
    let recorders = started;
    let (host, loadgen, report) = hosted_room(&stack).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    Some(World { stack, out, recorders, host, loadgen, report })
}

#[tokio::test]
async fn a_moderator_records_a_loadgen_room() {
    let Some(World { stack, out, recorders: _recorders, mut host, loadgen: lg, report }) =
        world("recording", 1, &["bridge-a"]).await
    else {
        return;
    };
    host.send(ClientMsg::SetRecording { recording: true }).await;
    let on = host.wait("recording on", |m| recording(m).is_some_and(|(on, _)| on)).await;
    let started = Instant::now();
    assert_eq!(recording(&on), Some((true, Some("Host".into()))), "who started it");
    // A late joiner sees it too.
    let mut late = RoomClient::join(stack.sig_port, "load-0", "Late").await;
    let Some(ServerMsg::Joined { room, .. }) =
        late.seen.iter().find(|m| matches!(m, ServerMsg::Joined { .. })).cloned()
    else {
        panic!("joined")
    };
    assert_eq!((room.recording, room.recording_by.as_deref()), (true, Some("Host")));

    // The only recorder is busy: another room's moderator gets the typed error.
    let mut other = RoomClient::join(stack.sig_port, "other", "Other").await;
    other.wait("media", |m| matches!(m, ServerMsg::Media { .. })).await;
    other.send(ClientMsg::SetRecording { recording: true }).await;
    let err = other.wait("an error", |m| matches!(m, ServerMsg::Error { .. })).await;
    assert!(
        matches!(err, ServerMsg::Error { code: convene_proto::client::ErrorCode::NoRecorder, .. }),
        "{err:?}"
    );

    host.send(ClientMsg::Chat { text: "hello, recording\n[00:00:00] Mallory: forged".into(), to: None })
        .await;
    let late_id = late.seen.iter().find_map(|m| match m {
        ServerMsg::Joined { you, .. } => Some(you.id.clone()),
        _ => None,
    });
    host.send(ClientMsg::Chat { text: "private".into(), to: late_id }).await;
    tokio::time::sleep(Duration::from_secs(RECORD_S).saturating_sub(started.elapsed())).await;
    host.send(ClientMsg::SetRecording { recording: false }).await;
    let stopped = late.wait("recording stopped", |m| matches!(m, ServerMsg::RecordingStopped { .. })).await;
    let recorded_s = started.elapsed().as_secs_f64();
    assert!(
        matches!(stopped, ServerMsg::RecordingStopped { ref by, reason: convene_proto::client::RecordingStopReason::Stopped } if by.as_deref() == Some("Host")),
        "{stopped:?}"
    );
    late.wait("recording off", |m| recording(m).is_some_and(|(on, by)| !on && by.is_none())).await;

    // The recorder finished: the manifest says when, and lists every track it closed.
    let dir = recording_dir(&out, "load-0");
    let manifest =
        manifest_when(&dir, "the manifest is final", Duration::from_secs(15), stopped_cleanly).await;
    let (code, report) = finish(lg, &report, &stack, RUN_S);
    let logs = || format!("\nmanifest: {manifest:#}\nreport: {report:#}{}", stack.logs());
    assert_eq!(code, Some(0), "loadgen{}", logs());

    let participants = manifest["participants"].as_object().expect("participants");
    // Everyone present is named, with when they were there; the publishers have tracks.
    for (endpoint, p) in participants {
        assert!(p["name"].as_str().is_some_and(|n| !n.is_empty()), "{endpoint} has a name{}", logs());
        assert!(p["present"][0]["stop_ms"].as_u64().is_some(), "{endpoint}: presence span closed{}", logs());
    }
    let names: Vec<&str> = participants.values().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"Host") && names.contains(&"Late"), "{names:?}");
    let publishers: Vec<_> =
        participants.iter().filter(|(_, p)| p["tracks"].as_array().is_some_and(|t| !t.is_empty())).collect();
    assert_eq!(publishers.len(), PARTICIPANTS, "every publisher is in the recording{}", logs());
    // The public chat, one line per message, the forged line indented; never the private one.
    let chat = std::fs::read_to_string(dir.join("chat.txt")).expect("chat.txt");
    assert!(chat.contains("] Host: hello, recording\n    [00:00:00] Mallory: forged\n"), "{chat}");
    assert!(!chat.contains("private"), "{chat}");
    let mut files = 0;
    let mut figures = vec![];
    for (endpoint, p) in publishers {
        let tracks = p["tracks"].as_array().expect("tracks");
        let kinds: Vec<&str> = tracks.iter().filter_map(|t| t["kind"].as_str()).collect();
        assert!(kinds.contains(&"audio") && kinds.contains(&"camera"), "{endpoint}: {kinds:?}{}", logs());
        for t in tracks {
            files += 1;
            let file = dir.join(t["file"].as_str().expect("file"));
            let ffprobe::Probe { codec, duration_s: duration, height, .. } = probe(&file);
            if t["kind"] == "camera" {
                // The recorder's default: the 360p simulcast layer, not the 720p one.
                assert_eq!(height, Some(360), "{}", file.display());
            }
            assert_eq!(codec, t["codec"].as_str().expect("codec"), "{}", file.display());
            assert_eq!(codec, if t["kind"] == "audio" { "opus" } else { "vp8" }, "{}", file.display());
            let span_ms = t["stop_ms"].as_u64().expect("stopped") - t["start_ms"].as_u64().expect("started");
            let span = span_ms as f64 / 1000.0;
            assert!(
                (duration - span).abs() <= 0.5,
                "{}: {duration:.3} s in the file, {span:.3} s in the manifest",
                file.display()
            );
            assert!(
                span > RECORD_S as f64 - 2.5,
                "{}: only {span:.3} s of a {recorded_s:.1} s recording",
                file.display()
            );
            let errors = decode_errors(&file);
            assert!(errors.is_empty(), "{}: {errors}", file.display());
            figures.push(format!(
                "{} {codec} {duration:.3}/{span:.3} s",
                t["file"].as_str().unwrap_or_default()
            ));
        }
    }
    let composed =
        manifest_when(&dir, "the composition", Duration::from_secs(60), |m| m.get("composition").cloned())
            .await;
    assert_eq!(composed["file"], "recording.webm", "{composed}{}", logs());
    let whole = probe(&dir.join("recording.webm"));
    let span_s = (manifest["stopped_wall_ms"].as_u64().unwrap()
        - manifest["started_wall_ms"].as_u64().unwrap()) as f64
        / 1000.0;
    assert!((whole.duration_s - span_s).abs() <= 1.0, "composed {:.3} s of {span_s:.3} s", whole.duration_s);
    assert!(decode_errors(&dir.join("recording.webm")).is_empty(), "the composed file decodes clean");
    let on_disk = std::fs::read_dir(&dir)
        .expect("dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "webm")))
        .count();
    assert_eq!(on_disk, files + 1, "the directory holds exactly the manifest's files and recording.webm");
    eprintln!(
        "recorded {recorded_s:.2} s: {}; composed at {} × real time",
        figures.join(", "),
        composed["speed"]
    );

    // Nobody saw the recorder: not the moderator, the late joiner, nor any loadgen
    // participant's slots.
    let rec = manifest["recorder_endpoint"].as_str().expect("recorder endpoint").to_string();
    for c in [&host, &late] {
        assert!(!ids_seen(&c.seen).contains(&rec), "{rec} was shown to a participant");
    }
    for p in report["per_participant"].as_array().expect("per_participant") {
        for s in p["sources"].as_array().into_iter().flatten() {
            assert!(!s["name"].as_str().unwrap_or_default().starts_with(&rec), "{} received {s}", p["name"]);
        }
    }
}

/// Segment `dir`'s manifest once it has a track (within `within`).
async fn segment_with_media(dir: &Path, within: Duration) -> Value {
    manifest_when(dir, "the segment has media", within, |m| {
        let has = |p: &Value| p["tracks"].as_array().is_some_and(|t| !t.is_empty());
        m["participants"].as_object().is_some_and(|p| p.values().any(has)).then_some(m)
    })
    .await
}

/// What `f` finds in `dir`'s manifest.json, once it finds it (within `within`).
async fn manifest_when<T>(
    dir: &Path,
    what: &str,
    within: Duration,
    f: impl Fn(Value) -> Option<T> + Copy,
) -> T {
    eventually(what, within, || {
        let path = dir.join("manifest.json");
        async move { Ok(f(serde_json::from_slice(&std::fs::read(&path)?)?)) }
    })
    .await
}

/// The manifest of a recording that stopped cleanly.
fn stopped_cleanly(m: Value) -> Option<Value> {
    m.get("stopped_wall_ms").is_some().then_some(m)
}

/// Once segment `dir` stopped cleanly: each of its track files decodes clean and holds more
/// than a second; returns how many there are.
async fn final_tracks(dir: &Path) -> usize {
    let manifest = manifest_when(dir, "the segment is final", Duration::from_secs(15), stopped_cleanly).await;
    let mut files = 0;
    for p in manifest["participants"].as_object().expect("participants").values() {
        for t in p["tracks"].as_array().expect("tracks") {
            let file = dir.join(t["file"].as_str().expect("file"));
            let errors = decode_errors(&file);
            assert!(errors.is_empty(), "{}: {errors}", file.display());
            assert!(probe(&file).duration_s > 1.0, "{}", file.display());
            files += 1;
        }
    }
    files
}

/// The whole recording's one file, composed by the recorder of its last segment `last` from
/// every segment on one timeline: in the recording's directory `dir`, as long as the
/// recording (start to the last segment's stop, within 1 s), decoding clean; segment `last`'s
/// manifest names it and the segments it holds. Returns its length in seconds.
async fn whole_recording(dir: &Path, last: u32) -> f64 {
    let seg = dir.join(format!("segment-{last}"));
    let m = manifest_when(&seg, "the whole recording is composed", Duration::from_secs(90), |m| {
        m.get("composition").is_some().then_some(m)
    })
    .await;
    let c = &m["composition"];
    assert_eq!(c["file"], "../recording.webm", "{c}");
    let all: Vec<u32> = (1..=last).collect();
    assert_eq!(c["segments"], serde_json::json!(all), "{c}");
    assert!(!seg.join("recording.webm").exists(), "no file of the last segment alone");
    let span_s = (m["stopped_wall_ms"].as_u64().expect("stopped")
        - m["started_wall_ms"].as_u64().expect("start")) as f64
        / 1000.0;
    let file = dir.join("recording.webm");
    let p = probe(&file);
    assert_eq!(p.codec, "vp8", "{}", file.display());
    assert!(
        (p.duration_s - span_s).abs() < 1.0,
        "{:.3} s composed of a {span_s:.3} s recording",
        p.duration_s
    );
    let errors = decode_errors(&file);
    assert!(errors.is_empty(), "{}: {errors}", file.display());
    p.duration_s
}

/// The bridge holding the room dies mid-recording: the participants move to the other bridge,
/// and the recording follows them there as segment 2 (reason `bridge_migration`), the room
/// never told it stopped.
#[tokio::test]
async fn a_recording_follows_its_room_to_another_bridge() {
    let Some(mut w) = world("recording-migration", 1, &["bridge-a", "bridge-b"]).await else { return };
    w.host.send(ClientMsg::SetRecording { recording: true }).await;
    w.host.wait("recording on", |m| recording(m).is_some_and(|(on, _)| on)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = recording_dir(&w.out, "load-0");
    let counts = w.stack.endpoints().await.expect("endpoints");
    let victim = counts.iter().max_by_key(|(_, n)| *n).map(|(i, _)| *i).expect("a bridge");
    eprintln!("endpoints per bridge {counts:?}: killing bridge {victim}");
    drop(w.stack.bridges[victim].process.take());
    let killed = Instant::now();
    let seg2 = dir.join("segment-2");
    let m = segment_with_media(&seg2, Duration::from_secs(20)).await;
    let followed_ms = killed.elapsed().as_millis();
    assert_eq!(m["continues"]["reason"], "bridge_migration", "{m}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    w.host.send(ClientMsg::SetRecording { recording: false }).await;
    let stopped = w.host.wait("recording stopped", |m| matches!(m, ServerMsg::RecordingStopped { .. })).await;
    assert!(
        matches!(
            stopped,
            ServerMsg::RecordingStopped { reason: convene_proto::client::RecordingStopReason::Stopped, .. }
        ),
        "{stopped:?}"
    );
    let tracks = final_tracks(&seg2).await;
    assert_eq!(tracks, 2 * PARTICIPANTS, "segment 2 records every track after the move");
    let whole_s = whole_recording(&dir, 2).await;
    eprintln!(
        "the recording had media on the new bridge {followed_ms} ms after the old one died; the whole recording's file: {whole_s:.1} s"
    );
    let (code, _) = finish(w.loadgen, &w.report, &w.stack, RUN_S);
    assert_eq!(code, Some(0), "the participants carried on{}", w.stack.logs());
}

/// A recorder SIGKILLed mid-recording: the files it was writing play and decode clean up to
/// the kill, and the second recorder continues the recording as segment 2 within 5 s, the room
/// never told it stopped; then the moderator stops it.
#[tokio::test]
async fn a_recorder_killed_mid_recording_is_replaced() {
    let Some(mut w) = world("recording-kill", 2, &["bridge-a"]).await else { return };
    w.host.send(ClientMsg::SetRecording { recording: true }).await;
    w.host.wait("recording on", |m| recording(m).is_some_and(|(on, _)| on)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dir = recording_dir(&w.out, "load-0");
    // Whichever recorder took it: the one whose log names the recording's directory.
    let first = (1..=2)
        .find(|i| {
            std::fs::read_to_string(w.stack.dir.join(format!("recorder-{i}.log")))
                .unwrap_or_default()
                .contains("recording")
        })
        .expect("a recorder logged the recording");
    let _ = w.recorders[first - 1].0.kill();
    let killed = Instant::now();
    let killed_wall_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;

    // Segment 2 begins on the other recorder within 5 s.
    let seg2 = dir.join("segment-2");
    let seg2_manifest: Value = eventually("segment 2 has media", Duration::from_secs(5), || {
        let path = seg2.join("manifest.json");
        async move {
            let m: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
            let media = m["participants"]
                .as_object()
                .is_some_and(|p| p.values().any(|p| p["tracks"].as_array().is_some_and(|t| !t.is_empty())));
            Ok(media.then_some(m))
        }
    })
    .await;
    let replaced_ms = killed.elapsed().as_millis();
    assert_eq!(seg2_manifest["segment"], 2);
    assert_eq!(seg2_manifest["continues"]["reason"], "recorder_lost");
    assert_eq!(seg2_manifest["continues"]["previous"], "..");
    assert!(seg2_manifest["continues"]["gap_ms"].as_u64().expect("gap") < 5000, "{seg2_manifest}");

    // The first segment's files play up to the kill.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest")).expect("json");
    assert!(manifest.get("stopped_wall_ms").is_none(), "a killed recorder never stopped cleanly");
    let mut figures = vec![];
    for p in manifest["participants"].as_object().expect("participants").values() {
        for t in p["tracks"].as_array().expect("tracks") {
            let file = dir.join(t["file"].as_str().expect("file"));
            let ffprobe::Probe { codec, duration_s: duration, .. } = probe(&file);
            assert_eq!(codec, t["codec"].as_str().expect("codec"), "{}", file.display());
            // A kill loses at most the open Cluster (at most 1 s, and the frame in flight).
            let started = manifest["started_wall_ms"].as_u64().expect("start")
                + t["start_ms"].as_u64().expect("start_ms");
            let written = killed_wall_ms.saturating_sub(started) as f64 / 1000.0;
            assert!(duration > written - 1.2, "{}: {duration:.3} s of {written:.3} s", file.display());
            let errors = decode_errors(&file);
            assert!(errors.is_empty(), "{}: {errors}", file.display());
            figures.push(format!(
                "{} {codec} {duration:.3}/{written:.3} s",
                t["file"].as_str().unwrap_or_default()
            ));
        }
    }
    assert_eq!(figures.len(), 2 * PARTICIPANTS, "{figures:?}");

    // The moderator stops it; the room only now hears of a stop, by them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.host.send(ClientMsg::SetRecording { recording: false }).await;
    let stopped = w.host.wait("recording stopped", |m| matches!(m, ServerMsg::RecordingStopped { .. })).await;
    assert!(
        matches!(
            stopped,
            ServerMsg::RecordingStopped { reason: convene_proto::client::RecordingStopReason::Stopped, .. }
        ),
        "{stopped:?}; before: {:?}",
        w.host.seen
    );
    assert_eq!(final_tracks(&seg2).await, 2 * PARTICIPANTS, "segment 2 records every track");
    let whole_s = whole_recording(&dir, 2).await;
    eprintln!(
        "segment 2 had media {replaced_ms} ms after the kill; partial files of segment 1: {}; the whole recording's file: {whole_s:.1} s",
        figures.join(", ")
    );
    let (code, _) = finish(w.loadgen, &w.report, &w.stack, RUN_S);
    assert_eq!(code, Some(0), "the participants carried on{}", w.stack.logs());
}

/// The recorder's `/load` as reported.
async fn recorder_load(http: u16) -> convene_proto::recorder::RecorderLoad {
    let body = convene_e2e::http_get(http, convene_proto::paths::RECORDER_LOAD).await.expect("/load");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A value of the recorder's `/metrics`.
async fn recorder_metric(http: u16, name: &str) -> f64 {
    let text = convene_e2e::http_get(http, convene_proto::paths::METRICS).await.expect("/metrics");
    convene_e2e::stack::metric(&text, name).unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// The recorder's own account mid-recording and after (`/metrics`, `/load`), and its drain:
/// `POST /drain` (the bridge-control secret, as a bridge's) makes signaling refuse a new
/// recording with `no_recorder` although the recorder has room, `/ready` turns 503, and the
/// running recording goes on to its end.
#[tokio::test]
async fn a_recorder_reports_its_load_and_drains() {
    use convene_proto::recorder::{RecorderLoad, metrics as m};
    let stack = Stack::start_with("recording-load", None, &["bridge-a"]).await;
    let out = stack.dir.join("recordings");
    let (_recorder, http) =
        stack.start_recorder_with("recorder-1", &out, 2, &["--compose=false"], None).await;
    let (mut host, lg, report) = hosted_room(&stack).await;
    let idle = RecorderLoad { capacity: 2, registered: true, ..Default::default() };
    assert_eq!(recorder_load(http).await, idle);

    host.send(ClientMsg::SetRecording { recording: true }).await;
    host.wait("recording on", |m| recording(m).is_some_and(|(on, _)| on)).await;
    let tracks = (2 * PARTICIPANTS) as f64;
    eventually("every track is being written", Duration::from_secs(15), || async move {
        Ok((recorder_metric(http, m::TRACKS_ACTIVE).await == tracks).then_some(()))
    })
    .await;
    assert_eq!(recorder_metric(http, m::RECORDINGS_ACTIVE).await, 1.0);
    assert_eq!(recorder_metric(http, m::CAPACITY).await, 2.0);
    // Started once, failed never: the counters the operator turns into Events.
    let recording = RecorderLoad { active: 1, started_total: 1, ..idle };
    assert_eq!(recorder_load(http).await, recording);
    let bytes_1 = recorder_metric(http, m::BYTES_WRITTEN).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bytes_2 = recorder_metric(http, m::BYTES_WRITTEN).await;
    assert!(bytes_2 > bytes_1 && bytes_1 > 0.0, "bytes written grow: {bytes_1} then {bytes_2}");

    // Drain: twice, the same answer.
    for _ in 0..2 {
        convene_e2e::stack::post(http, convene_proto::paths::RECORDER_DRAIN, &stack.secret).expect("drain");
    }
    assert_eq!(recorder_load(http).await, RecorderLoad { draining: true, ..recording });
    assert!(convene_e2e::http_get(http, "/ready").await.is_err(), "not ready while draining");
    // The recorder has room for another, but signaling heard it drains.
    let mut other = RoomClient::join(stack.sig_port, "other", "Other").await;
    other.wait("media", |m| matches!(m, ServerMsg::Media { .. })).await;
    other.send(ClientMsg::SetRecording { recording: true }).await;
    let err = other.wait("an error", |m| matches!(m, ServerMsg::Error { .. })).await;
    assert!(
        matches!(err, ServerMsg::Error { code: convene_proto::client::ErrorCode::NoRecorder, .. }),
        "{err:?}"
    );
    // The running one goes on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bytes_3 = recorder_metric(http, m::BYTES_WRITTEN).await;
    assert!(bytes_3 > bytes_2, "still recording while draining: {bytes_2} then {bytes_3}");
    assert_eq!(recorder_metric(http, m::TRACKS_ACTIVE).await, tracks);

    host.send(ClientMsg::SetRecording { recording: false }).await;
    let stopped = host.wait("recording stopped", |m| matches!(m, ServerMsg::RecordingStopped { .. })).await;
    assert!(
        matches!(
            stopped,
            ServerMsg::RecordingStopped { reason: convene_proto::client::RecordingStopReason::Stopped, .. }
        ),
        "{stopped:?}"
    );
    let after = RecorderLoad { draining: true, started_total: 1, ..idle };
    eventually("the recording finished", Duration::from_secs(15), || async move {
        Ok((recorder_load(http).await == after).then_some(()))
    })
    .await;
    assert_eq!(recorder_metric(http, m::RECORDINGS_ACTIVE).await, 0.0);
    assert_eq!(recorder_metric(http, m::TRACKS_ACTIVE).await, 0.0);
    // Exported (or `recorder_metric` panics). The recorder asks only for keyframes it missed:
    // it keeps a new slot's frames that beat the slot map, so it may need none.
    let keyframes = recorder_metric(http, m::KEYFRAME_REQUESTS).await;
    let lost = recorder_metric(http, m::PACKETS_LOST).await;
    let total = recorder_metric(http, m::BYTES_WRITTEN).await;
    // Every byte on disk was counted (and more: manifests are rewritten, Durations patched).
    let dir = recording_dir(&out, "load-0");
    let on_disk: u64 = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum();
    assert!(total >= on_disk as f64 && on_disk > 0, "{total} bytes counted, {on_disk} on disk");
    eprintln!(
        "recorded {total} bytes ({on_disk} on disk), {keyframes} keyframe requests, ~{lost} packets lost"
    );
    let (code, _) = finish(lg, &report, &stack, RUN_S);
    assert_eq!(code, Some(0), "the participants carried on{}", stack.logs());
}
