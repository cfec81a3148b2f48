//! One recording's media session, sans-IO: a str0m `Rtc` in frame mode as the bridge's hidden
//! endpoint, the slot map the bridge keeps it told of, and a [`TrackWriter`] per source track
//! (participant × audio/camera/screen) with `manifest.json` kept in step.
//!
//! Like str0m's own loop, the caller feeds datagrams and time ([`RecorderSession::handle_input`])
//! and drains [`RecorderSession::poll`]; no clock is read here. Wall clock comes from the
//! config: the wall time at the `now` the session was made, advanced by the `Instant`s given.
//!
//! A source gets a file when its first frame arrives after it appeared on a slot (video waits
//! for a keyframe, which is asked for at once and again until one comes); the file is finished
//! when no slot carries the source any more, and a source that comes back gets a new file.
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use convene_proto::recorder::{Continuation, RecordedParticipant};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec as RtcCodec;
use str0m::media::{KeyframeRequestKind, MediaData, Mid, Rid};
use str0m::net::Transmit;
use str0m::stats::MediaIngressStats;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};
use tracing::{debug, warn};

use super::codec::Codec;
use super::frame::Frame;
use super::manifest::{EntryRef, Manifest, TrackStop};
use super::sink::{CHAT_FILE, Sink, safe_file_stem};
use super::slotmap::SlotMap;
use super::track::{TrackWriter, Written};
use crate::control::{SlotInfo, SlotSource, SourceKind};

/// A screen share's frames may be this far apart without it counting as a gap.
const SCREEN_GAP_MS: u64 = 2500;

/// Keyframe requests for a video track waiting for one are repeated this often.
const KEYFRAME_RETRY: Duration = Duration::from_millis(500);

/// Frames held per slot the bridge has not described yet (its media can beat its `slots`
/// message), and slots held for at most: about two seconds of one video source.
pub const EARLY_FRAMES: usize = 64;
const EARLY_SLOTS: usize = 8;

/// How often str0m reports ingress stats (what the lost-packet estimate is made of).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub conference: String,
    /// The recorder's hidden endpoint id on the bridge.
    pub endpoint: String,
    /// Wall clock (ms since the Unix epoch) at the `now` given to [`RecorderSession::new`].
    pub wall_ms: u64,
    /// The recorder's local ICE candidates.
    pub candidates: Vec<Candidate>,
    /// Which part of the recording this session writes.
    pub segment: Segment,
}

/// A recording's segment: the whole recording unless an interruption (a lost recorder, the
/// conference moving bridge) made signaling continue it in a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// 1 for the first.
    pub number: u32,
    /// The recording's start (ms since the Unix epoch): time zero of every segment's manifest.
    pub started_wall_ms: u64,
    pub continues: Option<Continuation>,
}

impl Segment {
    pub fn first(started_wall_ms: u64) -> Segment {
        Segment { number: 1, started_wall_ms, continues: None }
    }

    /// Where this segment's files go, `dir` being the recording's directory.
    pub fn dir(&self, dir: PathBuf) -> PathBuf {
        if self.number <= 1 { dir } else { dir.join(format!("segment-{}", self.number)) }
    }

    /// The wall clock a new session of this segment starts at: the recording's start for the
    /// first (its time zero is when signaling started it), the clock now for a continuation.
    pub fn wall_now(&self) -> u64 {
        if self.number <= 1 {
            return self.started_wall_ms;
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(self.started_wall_ms, |d| d.as_millis() as u64)
    }
}

/// What the caller does next.
#[derive(Debug)]
pub enum Poll {
    Transmit(Transmit),
    /// Nothing more until this time (or a datagram).
    Timeout(Instant),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("sdp: {0}")]
    Sdp(String),
    #[error("no offer of ours is pending")]
    NotPending,
    #[error(transparent)]
    Rtc(#[from] RtcError),
}

/// Counters of one session (for metrics and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionStats {
    pub frames_written: u64,
    /// Frames on a slot that carries nothing as far as we were told, or of a codec not recorded.
    pub frames_unmapped: u64,
    pub keyframe_requests: u64,
    pub files_opened: u64,
    pub files_finished: u64,
    /// Track or manifest writes that failed (logged).
    pub write_errors: u64,
    /// RTP packets lost on the way in, before NACK repair: estimated from the fraction lost
    /// of our receiver reports and the packets received meanwhile (str0m keeps no total).
    pub packets_lost: u64,
}

/// A source on a slot, and its file once its first frame is written.
struct SourceTrack<W: std::io::Write> {
    source: SlotSource,
    writer: Option<TrackWriter<W>>,
    file: String,
    track_uid: u64,
    /// The manifest entry, once a frame is in the file.
    entry: Option<EntryRef>,
    last_frame_wall_ms: u64,
    last_keyframe_request: Option<Instant>,
    wants_keyframe: bool,
}

pub struct RecorderSession<S: Sink> {
    rtc: Rtc,
    sink: S,
    slots: SlotMap,
    /// By source name.
    tracks: HashMap<String, SourceTrack<S::File>>,
    /// Files made per source so far (a source that comes back gets a numbered new one).
    files_per_source: HashMap<String, u32>,
    manifest: Manifest,
    pending: Option<SdpPendingOffer>,
    /// Wall clock at `start`.
    wall_at_start: u64,
    start: Instant,
    now: Instant,
    connected: bool,
    finished: bool,
    next_uid: u64,
    stats: SessionStats,
    /// Packets received per ingress stream at its last stats event, and the loss estimate
    /// with its fraction (for [`SessionStats::packets_lost`]).
    ingress_packets: HashMap<(Mid, Option<Rid>), u64>,
    lost_estimate: f64,
    /// Frames on slots not described yet, written once they are (bounded, see EARLY_FRAMES).
    early: HashMap<Mid, Vec<MediaData>>,
}

impl<S: Sink> RecorderSession<S> {
    /// A session that receives Opus and VP8 (what the writer remuxes); str0m's frame mode
    /// (the default) reorders and repairs packets and hands over whole frames.
    pub fn new(cfg: SessionConfig, sink: S, now: Instant) -> Self {
        crate::install_crypto();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_stats_interval(Some(STATS_INTERVAL))
            .build(now);
        for c in cfg.candidates {
            rtc.add_local_candidate(c);
        }
        let mut s = RecorderSession {
            rtc,
            sink,
            slots: SlotMap::default(),
            tracks: HashMap::new(),
            files_per_source: HashMap::new(),
            manifest: Manifest::new(&cfg.conference, &cfg.endpoint, cfg.segment.started_wall_ms),
            pending: None,
            wall_at_start: cfg.wall_ms,
            start: now,
            now,
            connected: false,
            finished: false,
            next_uid: 1,
            stats: SessionStats::default(),
            ingress_packets: HashMap::new(),
            lost_estimate: 0.0,
            early: HashMap::new(),
        };
        if let Some(c) = &cfg.segment.continues {
            s.manifest.continue_from(cfg.segment.number, c, cfg.wall_ms);
        }
        // A manifest from the first moment: a recording that dies before any media says so.
        s.save_manifest();
        s
    }

    /// Our first offer to the bridge: a data channel only (we publish nothing; the bridge
    /// then offers its receive slots).
    pub fn offer(&mut self) -> String {
        let mut api = self.rtc.sdp_api();
        api.add_channel("recorder".into());
        match api.apply() {
            Some((offer, pending)) => {
                self.pending = Some(pending);
                offer.to_sdp_string()
            }
            None => String::new(),
        }
    }

    /// The bridge's answer to [`Self::offer`].
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), SessionError> {
        let pending = self.pending.take().ok_or(SessionError::NotPending)?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| SessionError::Sdp(e.to_string()))?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| SessionError::Sdp(e.to_string()))
    }

    /// The bridge's offer (its receive slots, or an ICE restart) with its slot list; returns
    /// our answer.
    pub fn accept_offer(&mut self, sdp: &str, slots: &[SlotInfo]) -> Result<String, SessionError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SessionError::Sdp(e.to_string()))?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| SessionError::Sdp(e.to_string()))?;
        self.apply_slots(slots);
        Ok(answer.to_sdp_string())
    }

    /// The bridge's `slots` update (only the slots that changed).
    pub fn apply_slots(&mut self, slots: &[SlotInfo]) {
        let change = self.slots.apply(slots);
        for name in change.left {
            self.finish_track(&name);
        }
        for src in change.appeared {
            self.add_source(src);
        }
        // Frames that came before their slot was described: written now, or dropped if it
        // carries nothing.
        for s in slots {
            let Some(held) = self.early.remove(&Mid::from(s.mid.as_str())) else { continue };
            if s.source.is_some() {
                for d in &held {
                    self.on_frame(d);
                }
            } else {
                self.stats.frames_unmapped += held.len() as u64;
            }
        }
        self.request_keyframes();
    }

    /// Who is in the room now (signaling's whole list).
    pub fn participants(&mut self, now: &[RecordedParticipant]) {
        let wall = self.wall_ms();
        if !self.finished && self.manifest.observe(now, wall) {
            self.save_manifest();
        }
    }

    /// A chat message to the room, sent at `wall_ms`: one line of `chat.txt`,
    /// `[HH:MM:SS] name: text` in recording time (more lines of the text indented).
    pub fn chat(&mut self, name: &str, text: &str, wall_ms: u64) {
        if self.finished {
            return;
        }
        let line = chat_line(wall_ms.saturating_sub(self.manifest.started_wall_ms), name, text);
        if let Err(e) = self.sink.append(CHAT_FILE, line.as_bytes()) {
            warn!("writing chat.txt failed: {e}");
            self.stats.write_errors += 1;
        }
    }

    /// A datagram or the time: str0m's inputs, with the time they carry.
    pub fn handle_input(&mut self, input: Input) -> Result<(), SessionError> {
        match &input {
            Input::Timeout(t) | Input::Receive(t, _) => self.now = self.now.max(*t),
        }
        let timeout = matches!(input, Input::Timeout(_));
        self.rtc.handle_input(input)?;
        if timeout {
            self.request_keyframes();
        }
        Ok(())
    }

    /// The next datagram to send, or when to call again. Media events are handled inside.
    pub fn poll(&mut self) -> Result<Poll, SessionError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => return Ok(Poll::Transmit(t)),
                Output::Timeout(t) => return Ok(Poll::Timeout(t)),
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Stop: every file is finished (with its Duration), the manifest says when, the peer
    /// connection closes. Idempotent.
    pub fn finish(&mut self) -> &Manifest {
        if !self.finished {
            self.finished = true;
            let names: Vec<String> = self.tracks.keys().cloned().collect();
            for n in names {
                self.finish_track(&n);
            }
            let wall = self.wall_ms();
            self.manifest.stop(wall);
            self.save_manifest();
            self.rtc.disconnect();
        }
        &self.manifest
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::MediaData(d) if self.slots.source(&d.mid.to_string()).is_none() => self.hold_early(d),
            Event::MediaData(d) => self.on_frame(&d),
            Event::MediaIngressStats(s) => self.on_ingress_stats(&s),
            _ => {}
        }
    }

    /// Packets lost since the last event of this stream ≈ packets received meanwhile ×
    /// loss / (1 − loss), with the fraction lost of the last receiver report.
    fn on_ingress_stats(&mut self, s: &MediaIngressStats) {
        let last = self.ingress_packets.insert((s.mid, s.rid), s.packets).unwrap_or(0);
        let received = s.packets.saturating_sub(last) as f64;
        let loss = f64::from(s.loss.unwrap_or(0.0)).clamp(0.0, 0.9);
        if received > 0.0 && loss > 0.0 {
            self.lost_estimate += received * loss / (1.0 - loss);
            self.stats.packets_lost = self.lost_estimate as u64;
        }
    }

    /// A frame on a slot we were not told about yet: held until we are (a bounded few).
    fn hold_early(&mut self, d: MediaData) {
        if self.early.len() >= EARLY_SLOTS && !self.early.contains_key(&d.mid) {
            self.stats.frames_unmapped += 1;
            return;
        }
        let held = self.early.entry(d.mid).or_default();
        if held.len() >= EARLY_FRAMES {
            // Dropping from the middle would break a video's chain of frames: start again,
            // and the track opens on a later keyframe.
            self.stats.frames_unmapped += held.len() as u64;
            held.clear();
        }
        held.push(d);
    }

    /// Frames held for slots not described yet.
    pub fn frames_held(&self) -> usize {
        self.early.values().map(Vec::len).sum()
    }

    fn on_frame(&mut self, d: &MediaData) {
        if self.finished {
            return;
        }
        let mid = d.mid.to_string();
        let Some(name) = self.slots.source(&mid).map(|s| s.name.clone()) else {
            self.stats.frames_unmapped += 1;
            return;
        };
        let Some(codec) = codec_of(d.params.spec().codec) else {
            self.stats.frames_unmapped += 1;
            return;
        };
        let wall = self.wall_ms();
        let Some(t) = self.tracks.get_mut(&name) else {
            return;
        };
        if t.writer.is_none() && codec.is_video() && !d.is_keyframe() {
            // No file until it can start: a source that never sends a keyframe leaves none.
            t.wants_keyframe = true;
            self.request_keyframe_for(&name);
            return;
        }
        if t.writer.is_none() {
            let n = self.files_per_source.entry(name.clone()).or_default();
            *n += 1;
            let stem = safe_file_stem(&name);
            let file = if *n == 1 { format!("{stem}.webm") } else { format!("{stem}.{n}.webm") };
            match self.sink.create(&file) {
                Ok(f) => {
                    let mut w = TrackWriter::new(f, codec, self.next_uid);
                    if t.source.kind == SourceKind::Screen {
                        // A still screen sends a frame a second or less: not a gap.
                        w = w.with_gap_threshold_ms(SCREEN_GAP_MS);
                    }
                    t.writer = Some(w);
                    t.file = file;
                    t.track_uid = self.next_uid;
                    self.next_uid += 1;
                    self.stats.files_opened += 1;
                }
                Err(e) => {
                    warn!(%file, "cannot create a track file: {e}");
                    self.stats.write_errors += 1;
                    return;
                }
            }
        }
        let Some(w) = t.writer.as_mut() else { return };
        match w.write(&Frame::from_media_data(d)) {
            Ok(Written::At { .. }) => {
                self.stats.frames_written += 1;
                t.last_frame_wall_ms = wall;
                t.wants_keyframe = false;
                if t.entry.is_none() {
                    let s = &t.source;
                    let uid = t.track_uid;
                    t.entry = Some(self.manifest.start_track(
                        &s.endpoint,
                        &s.name,
                        s.kind,
                        codec,
                        &t.file,
                        uid,
                        wall,
                    ));
                    self.save_manifest();
                }
            }
            Ok(Written::WaitingForKeyframe) => {
                t.wants_keyframe = true;
                self.request_keyframe_for(&name);
            }
            Err(e) => {
                // The file's state is unknown: finish what is there; the next frame opens a new file.
                warn!(source = %name, "track write failed: {e}");
                self.stats.write_errors += 1;
                self.finish_track(&name);
                if let Some(src) = self.slots.sources().into_iter().find(|s| s.name == name).cloned() {
                    self.add_source(src);
                }
            }
        }
    }

    /// A source on a slot: its file opens with its first (video: key) frame.
    fn add_source(&mut self, src: SlotSource) {
        let video = src.kind != SourceKind::Audio;
        self.tracks.insert(
            src.name.clone(),
            SourceTrack {
                source: src,
                writer: None,
                file: String::new(),
                track_uid: 0,
                entry: None,
                last_frame_wall_ms: 0,
                last_keyframe_request: None,
                wants_keyframe: video,
            },
        );
    }

    /// Ask (again) for a keyframe on every video track still waiting for one.
    fn request_keyframes(&mut self) {
        let waiting: Vec<String> =
            self.tracks.iter().filter(|(_, t)| t.wants_keyframe).map(|(n, _)| n.clone()).collect();
        for n in waiting {
            self.request_keyframe_for(&n);
        }
    }

    fn request_keyframe_for(&mut self, name: &str) {
        let now = self.now;
        let Some(t) = self.tracks.get_mut(name) else { return };
        if t.last_keyframe_request.is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_RETRY) {
            return;
        }
        let Some(mid) = self.slots.mid_of(name) else { return };
        let Some(mut w) = self.rtc.writer(Mid::from(mid.as_str())) else { return };
        // Fails until the slot's stream has been seen: retried on the next timeout.
        match w.request_keyframe(None, KeyframeRequestKind::Pli) {
            Ok(()) => {
                t.last_keyframe_request = Some(now);
                self.stats.keyframe_requests += 1;
            }
            Err(e) => debug!(source = %name, "keyframe request not possible yet: {e}"),
        }
    }

    fn finish_track(&mut self, name: &str) {
        let Some(t) = self.tracks.remove(name) else { return };
        let Some(w) = t.writer else { return };
        let stop = TrackStop {
            wall_ms: t.last_frame_wall_ms,
            media_ms: w.last_ms(),
            frames: w.frames_written(),
            gaps: w.gaps().iter().map(|g| (*g).into()).collect(),
        };
        if let Err(e) = w.finish_seekable() {
            warn!(source = %name, "finishing a track file failed: {e}");
            self.stats.write_errors += 1;
        }
        self.stats.files_finished += 1;
        if let Some(entry) = t.entry {
            self.manifest.stop_track(&entry, stop);
            self.save_manifest();
        }
    }

    fn save_manifest(&mut self) {
        if let Err(e) = self.sink.put_manifest(&self.manifest.to_json()) {
            warn!("writing the manifest failed: {e}");
            self.stats.write_errors += 1;
        }
    }

    fn wall_ms(&self) -> u64 {
        self.wall_at_start + self.now.saturating_duration_since(self.start).as_millis() as u64
    }
}

/// One message of `chat.txt`. Names lose their line breaks; a text's later lines are indented,
/// so every message starts a line with its time and nothing can pose as another message.
pub fn chat_line(at_ms: u64, name: &str, text: &str) -> String {
    let secs = at_ms / 1000;
    let name: String = name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out = format!("[{:02}:{:02}:{:02}] {name}:", secs / 3600, secs / 60 % 60, secs % 60);
    for (i, line) in text.lines().enumerate() {
        let line: String = line.chars().filter(|c| !c.is_control() || *c == '\t').collect();
        out.push_str(if i == 0 { " " } else { "\n    " });
        out.push_str(&line);
    }
    out.push('\n');
    out
}

fn codec_of(c: RtcCodec) -> Option<Codec> {
    match c {
        RtcCodec::Opus => Some(Codec::Opus),
        RtcCodec::Vp8 => Some(Codec::Vp8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_lines_cannot_pose_as_others() {
        assert_eq!(chat_line(3_723_400, "Alice", "hi"), "[01:02:03] Alice: hi\n");
        assert_eq!(
            chat_line(5_000, "Bo\nb", "one\n[00:00:09] Mallory: two\r\nthree\u{7}"),
            "[00:00:05] Bo b: one\n    [00:00:09] Mallory: two\n    three\n"
        );
    }
}
