//! `manifest.json`: what a recording holds — participants by endpoint id, one entry per track
//! file with its codec, its span in wall clock and in recording time, its media length and
//! gaps. Pure data and the rules that update it; the session writes it out after every change
//! (a track starting or stopping), so a crash leaves a manifest that matches the files.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::Codec;
use super::timeline::{Gap, GapKind};
use crate::control::SourceKind;

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
    /// By endpoint id.
    pub participants: BTreeMap<String, Participant>,
    /// `recording.webm` composed after the capture, or why not ([`super::compose`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<super::compose::Composition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// Display name, when whoever drives the recorder knows it (the bridge does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Track files in the order they started.
    pub tracks: Vec<TrackEntry>,
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
            participants: BTreeMap::new(),
        }
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
