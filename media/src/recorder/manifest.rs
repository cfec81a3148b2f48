//! `manifest.json`: what a recording holds — participants by endpoint id, one entry per track
//! file with its codec, its span in wall clock and in recording time, its media length and
//! gaps; who was in the room under which name, muted or sharing a screen when ([`Span`]s, from
//! signaling's [`RecordedParticipant`] lists); which segment of the recording this is. Pure data
//! and the rules that update it; the session writes it out after every change, so a crash
//! leaves a manifest that matches the files.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::Codec;
use super::timeline::{Gap, GapKind};
use crate::control::SourceKind;
use convene_proto::recorder::{Continuation, Interruption, RecordedParticipant};

/// Bumped on incompatible changes of the layout below.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub conference: String,
    /// The recorder's own (hidden) endpoint id on the bridge.
    pub recorder_endpoint: String,
    /// Wall clock (ms since the Unix epoch) when the recording started; recording time
    /// (`*_ms` fields of tracks) counts from here.
    pub started_wall_ms: u64,
    /// Set once the recording stopped cleanly; absent after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_wall_ms: Option<u64>,
    /// 1, or more when this directory continues the recording after an interruption: the
    /// first segment is the recording's directory, segment `n` its `segment-<n>/`, all on
    /// one timeline (`started_wall_ms` is the recording's start in every segment).
    #[serde(default = "first_segment")]
    pub segment: u32,
    /// Why the previous segment ended (absent in segment 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<SegmentLink>,
    /// By endpoint id.
    pub participants: BTreeMap<String, Participant>,
    /// `recording.webm` composed after the capture, or why not ([`super::compose`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<super::compose::Composition>,
}

fn first_segment() -> u32 {
    1
}

/// How a segment follows the one before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentLink {
    /// The previous segment's directory, relative to this one (`..` or `../segment-<n-1>`).
    pub previous: String,
    pub reason: Interruption,
    /// Recording time (ms) the previous segment's media stopped, and how long until this
    /// segment began: the gap a player of the stitched recording shows.
    pub interrupted_ms: u64,
    pub gap_ms: u64,
}

/// A stretch of recording time; `stop_ms` absent while it lasts (or after a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// Display name, when whoever drives the recorder knows it (the bridge does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Track files in the order they started.
    pub tracks: Vec<TrackEntry>,
    /// In the room (as signaling saw it) during this segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub present: Vec<Span>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio_muted: Vec<Span>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub video_muted: Vec<Span>,
    /// Sharing a screen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub screen: Vec<Span>,
}

impl Participant {
    fn spans(&mut self) -> [&mut Vec<Span>; 4] {
        [&mut self.present, &mut self.audio_muted, &mut self.video_muted, &mut self.screen]
    }
}

/// Open a span at `at` if `on` and none is open; close the open one at `at` if not `on`.
/// Returns whether anything changed.
fn track_span(spans: &mut Vec<Span>, on: bool, at: u64) -> bool {
    let open = spans.last_mut().filter(|s| s.stop_ms.is_none());
    match (on, open) {
        (true, None) => {
            spans.push(Span { start_ms: at, stop_ms: None });
            true
        }
        (false, Some(s)) => {
            s.stop_ms = Some(at.max(s.start_ms));
            true
        }
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackEntry {
    /// File name, relative to the manifest.
    pub file: String,
    /// The bridge's source name (`alice-v0`, `alice-s0`, `alice-a0`).
    pub source: String,
    pub kind: SourceKind,
    /// `opus`, `vp8`.
    pub codec: String,
    /// The Matroska TrackUID in the file.
    pub track_uid: u64,
    /// Wall clock of the first frame in the file.
    pub start_wall_ms: u64,
    /// Recording time (ms after `started_wall_ms`) of the first frame: where the file's time
    /// zero goes on the recording's timeline.
    pub start_ms: u64,
    /// Wall clock and recording time of the stop; absent while the track is being written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_wall_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_ms: Option<u64>,
    /// Time of the last frame in the file (the file's own clock, from RTP), at the stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_ms: Option<u64>,
    pub frames: u64,
    /// Holes in the file's timeline (the file's own ms), at the stop.
    #[serde(default)]
    pub gaps: Vec<ManifestGap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestGap {
    pub at_ms: u64,
    pub skipped_ms: u64,
    /// `jump` (the sender's clock skipped), `discontinuity` (a new timebase), `resync`.
    pub kind: GapKindName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKindName {
    Jump,
    Discontinuity,
    Resync,
}

impl From<Gap> for ManifestGap {
    fn from(g: Gap) -> Self {
        let kind = match g.kind {
            GapKind::Jump => GapKindName::Jump,
            GapKind::Discontinuity => GapKindName::Discontinuity,
            GapKind::Resync => GapKindName::Resync,
        };
        ManifestGap { at_ms: g.at_ms, skipped_ms: g.skipped_ms, kind }
    }
}

/// Where a track entry is: (endpoint id, index in its tracks).
pub type EntryRef = (String, usize);

/// How a finished track ends, for [`Manifest::stop_track`].
#[derive(Debug, Clone)]
pub struct TrackStop {
    pub wall_ms: u64,
    pub media_ms: u64,
    pub frames: u64,
    pub gaps: Vec<ManifestGap>,
}

impl Manifest {
    pub fn new(conference: &str, recorder_endpoint: &str, started_wall_ms: u64) -> Self {
        Manifest {
            version: MANIFEST_VERSION,
            conference: conference.to_string(),
            recorder_endpoint: recorder_endpoint.to_string(),
            started_wall_ms,
            stopped_wall_ms: None,
            composition: None,
            segment: 1,
            continues: None,
            participants: BTreeMap::new(),
        }
    }

    /// This manifest is segment `n` (≥ 2) of its recording, which `c` interrupted; this
    /// segment began at `wall_ms`.
    pub fn continue_from(&mut self, n: u32, c: &Continuation, wall_ms: u64) {
        self.segment = n.max(2);
        let previous =
            if self.segment == 2 { "..".to_string() } else { format!("../segment-{}", self.segment - 1) };
        let interrupted_ms = c.interrupted_wall_ms.saturating_sub(self.started_wall_ms);
        let gap_ms = wall_ms.saturating_sub(c.interrupted_wall_ms);
        self.continues = Some(SegmentLink { previous, reason: c.reason, interrupted_ms, gap_ms });
    }

    /// Who is in the room now (signaling's whole list, at `wall_ms`): names, presence, mute
    /// and screen-share spans follow. Returns whether the manifest changed.
    pub fn observe(&mut self, now: &[RecordedParticipant], wall_ms: u64) -> bool {
        let at = wall_ms.saturating_sub(self.started_wall_ms);
        let mut changed = false;
        for p in now {
            let e = self.participants.entry(p.id.clone()).or_default();
            if e.name.as_deref() != Some(p.name.as_str()) {
                e.name = Some(p.name.clone());
                changed = true;
            }
            let flags = [true, p.audio_muted, p.video_muted, p.screen];
            for (spans, on) in e.spans().into_iter().zip(flags) {
                changed |= track_span(spans, on, at);
            }
        }
        for (id, e) in self.participants.iter_mut() {
            if !now.iter().any(|p| &p.id == id) {
                for spans in e.spans() {
                    changed |= track_span(spans, false, at);
                }
            }
        }
        changed
    }

    /// A clean stop at `wall_ms`: every open span ends there.
    pub fn stop(&mut self, wall_ms: u64) {
        self.observe(&[], wall_ms);
        self.stopped_wall_ms = Some(wall_ms);
    }

    /// A track file starts (its first frame is written at `wall_ms`). Returns where it is.
    #[allow(clippy::too_many_arguments)]
    pub fn start_track(
        &mut self,
        endpoint: &str,
        source: &str,
        kind: SourceKind,
        codec: Codec,
        file: &str,
        track_uid: u64,
        wall_ms: u64,
    ) -> EntryRef {
        let p = self.participants.entry(endpoint.to_string()).or_default();
        p.tracks.push(TrackEntry {
            file: file.to_string(),
            source: source.to_string(),
            kind,
            codec: codec_name(codec).to_string(),
            track_uid,
            start_wall_ms: wall_ms,
            start_ms: wall_ms.saturating_sub(self.started_wall_ms),
            stop_wall_ms: None,
            stop_ms: None,
            media_ms: None,
            frames: 0,
            gaps: Vec::new(),
        });
        (endpoint.to_string(), p.tracks.len() - 1)
    }

    pub fn stop_track(&mut self, at: &EntryRef, stop: TrackStop) {
        let started = self.started_wall_ms;
        if let Some(t) = self.participants.get_mut(&at.0).and_then(|p| p.tracks.get_mut(at.1)) {
            t.stop_wall_ms = Some(stop.wall_ms);
            t.stop_ms = Some(stop.wall_ms.saturating_sub(started));
            t.media_ms = Some(stop.media_ms);
            t.frames = stop.frames;
            t.gaps = stop.gaps;
        }
    }

    /// Every track file, whoever it belongs to.
    pub fn tracks(&self) -> impl Iterator<Item = (&str, &TrackEntry)> {
        self.participants.iter().flat_map(|(e, p)| p.tracks.iter().map(move |t| (e.as_str(), t)))
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and string-keyed maps only: cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

pub fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Opus => "opus",
        Codec::Vp8 => "vp8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: &str, name: &str, audio_muted: bool, screen: bool) -> RecordedParticipant {
        RecordedParticipant { id: id.into(), name: name.into(), audio_muted, video_muted: false, screen }
    }

    #[test]
    fn names_presence_mute_and_screen_spans() {
        let mut m = Manifest::new("room", "rec", 10_000);
        assert!(m.observe(&[who("a", "Alice", false, false), who("b", "Bob", true, false)], 10_000));
        assert!(!m.observe(&[who("a", "Alice", false, false), who("b", "Bob", true, false)], 11_000), "same");
        // Bob unmutes and shares; Alice renames; then Bob leaves; then the recording stops.
        m.observe(&[who("a", "Alice L.", false, false), who("b", "Bob", false, true)], 12_500);
        m.observe(&[who("a", "Alice L.", false, false)], 15_000);
        m.stop(20_000);
        let (a, b) = (&m.participants["a"], &m.participants["b"]);
        assert_eq!(a.name.as_deref(), Some("Alice L."));
        let span = |s, e| Span { start_ms: s, stop_ms: Some(e) };
        assert_eq!(a.present, vec![span(0, 10_000)]);
        assert!(a.audio_muted.is_empty() && a.screen.is_empty());
        assert_eq!(b.present, vec![span(0, 5000)]);
        assert_eq!(b.audio_muted, vec![span(0, 2500)]);
        assert_eq!(b.screen, vec![span(2500, 5000)]);
        // Bob comes back: a second presence span (in a manifest that was not stopped).
        let mut m2 = m.clone();
        m2.stopped_wall_ms = None;
        m2.observe(&[who("b", "Bob", false, false)], 21_000);
        assert_eq!(m2.participants["b"].present[1], Span { start_ms: 11_000, stop_ms: None });
        let json = String::from_utf8(m.to_json()).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
    }

    #[test]
    fn later_segments_link_back() {
        let mut m = Manifest::new("room", "rec-2", 1_000_000);
        let c = Continuation { reason: Interruption::RecorderLost, interrupted_wall_ms: 1_030_000 };
        m.continue_from(3, &c, 1_033_500);
        let link = m.continues.clone().unwrap();
        assert_eq!((m.segment, link.previous.as_str()), (3, "../segment-2"));
        assert_eq!((link.interrupted_ms, link.gap_ms), (30_000, 3500));
        m.continue_from(2, &c, 1_031_000);
        assert_eq!(m.continues.unwrap().previous, "..");
        let first: Manifest = serde_json::from_str(
            r#"{"version":1,"conference":"c","recorder_endpoint":"r","started_wall_ms":0,"participants":{}}"#,
        )
        .unwrap();
        assert_eq!((first.segment, first.continues), (1, None), "older manifests read as segment 1");
    }

    #[test]
    fn tracks_start_and_stop_in_recording_time() {
        let mut m = Manifest::new("room", "rec", 1_000_000);
        let a =
            m.start_track("alice", "alice-a0", SourceKind::Audio, Codec::Opus, "alice-a0.webm", 7, 1_000_250);
        let v =
            m.start_track("alice", "alice-v0", SourceKind::Camera, Codec::Vp8, "alice-v0.webm", 8, 1_000_400);
        assert_eq!(v, ("alice".to_string(), 1));
        let gap = Gap { at_ms: 3000, skipped_ms: 900, kind: GapKind::Jump };
        m.stop_track(
            &a,
            TrackStop { wall_ms: 1_005_250, media_ms: 4980, frames: 250, gaps: vec![gap.into()] },
        );
        let t = &m.participants["alice"].tracks[0];
        assert_eq!((t.start_ms, t.stop_ms, t.media_ms), (250, Some(5250), Some(4980)));
        assert_eq!(t.codec, "opus");
        assert_eq!(t.gaps[0].kind, GapKindName::Jump);
        assert_eq!(m.participants["alice"].tracks[1].stop_ms, None, "still being written");
        assert_eq!(m.tracks().count(), 2);
        // What is written reads back the same; an open track has no stop fields.
        let json = String::from_utf8(m.to_json()).unwrap();
        assert!(json.contains(r#""kind": "camera""#) && json.contains(r#""kind": "jump""#), "{json}");
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        assert_eq!(json.matches("stop_wall_ms").count(), 1);
    }
}
