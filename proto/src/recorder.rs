//! Recorder control: what a recorder (`convene-recorder`) and signaling say over
//! [`crate::paths::SIGNALING_RECORDER_WS`].
//!
//! The conventions of bridge control ([`crate::control`]): one JSON object per text frame,
//! tagged by `"type"` (snake_case), one enum per direction, the bridge-control secret as
//! `Authorization: Bearer <secret>`, the same size limit, [`parse`] and [`to_json`]. The recorder
//! sends [`FromRecorder::Register`] first and [`FromRecorder::Status`] whenever its load changes.
//!
//! Requests ([`ToRecorder`] variants with an `id`, chosen by signaling) get exactly one reply
//! with the same `id`: [`FromRecorder::Offer`], [`FromRecorder::Ok`] or [`FromRecorder::Error`].
//! Everything else names its recording by `recording` (an id chosen by signaling).
//!
//! A recording: signaling allocates a hidden endpoint on the room's bridge and sends
//! [`ToRecorder::Start`]; the recorder replies with its offer (a data channel only: a bridge
//! offers an endpoint its receive slots after the endpoint's first offer), signaling relays it
//! to the bridge and the bridge's answer back ([`ToRecorder::Answer`]); the bridge then offers
//! its slots ([`ToRecorder::Offer`]), answered by [`FromRecorder::Answer`]; `slots` updates follow.
//! [`ToRecorder::Stop`] finishes the files; [`FromRecorder::Finished`] follows every recording's
//! end, asked for or not.
use serde::{Deserialize, Serialize};

pub use crate::control::{MAX_MESSAGE_BYTES, OfferId, ParseError, RequestId, parse, to_json};
pub use crate::media::SlotInfo;

/// Environment variables `convene-recorder`'s flags read (the names the operator's RecorderPool
/// already renders).
pub mod env {
    pub const ID: &str = "CONVENE_RECORDER_ID";
    /// Signaling's recorder-control WebSocket URL (`ws://…/recorder`).
    pub const SIGNALING_URL: &str = "CONVENE_SIGNALING_URL";
    /// The bridge-control secret (value).
    pub const SECRET: &str = "CONVENE_SIGNALING_SECRET";
    /// A file holding the bridge-control secret (instead of the value).
    pub const SECRET_FILE: &str = "CONVENE_SIGNALING_SECRET_FILE";
    /// Capacity: recordings at once.
    pub const MAX_RECORDINGS: &str = "CONVENE_RECORDER_MAX_RECORDINGS";
    pub const RECORDING_DIR: &str = "CONVENE_RECORDING_DIR";
    pub const BIND: &str = "CONVENE_RECORDER_BIND";
    /// The address put in the recorder's ICE candidates (default: the bind address).
    pub const ADVERTISE: &str = "CONVENE_RECORDER_ADVERTISE_ADDRESS";
    /// UDP ports for the recordings' media, `first-last` (default: ephemeral).
    pub const UDP_PORTS: &str = "CONVENE_RECORDER_UDP_PORTS";
    pub const VIDEO_HEIGHT: &str = "CONVENE_RECORDER_VIDEO_HEIGHT";
    /// HTTP port of `/health` and `/ready`.
    pub const HTTP_PORT: &str = "CONVENE_RECORDER_HTTP_PORT";
    /// PEM CA bundle signaling's in-cluster certificate chains to (`wss://`).
    pub const CONTROL_CA_FILE: &str = "CONVENE_RECORDER_CONTROL_CA_FILE";
    /// The Shard whose rooms are recorded: the first part of every object key.
    pub const SHARD: &str = "CONVENE_RECORDER_SHARD";
    /// S3-compatible storage: endpoint URL; recordings upload there when it is set.
    pub const S3_ENDPOINT: &str = "CONVENE_S3_ENDPOINT";
    pub const S3_BUCKET: &str = "CONVENE_S3_BUCKET";
    pub const S3_REGION: &str = "CONVENE_S3_REGION";
    /// The S3 credentials, under the names every S3 client reads.
    pub const S3_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub const S3_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
}

/// A recorder's load, served as JSON on [`crate::paths::RECORDER_LOAD`] for the operator
/// (what autoscaling and the RecorderPool's status count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderLoad {
    /// Recordings it runs at once.
    pub capacity: u32,
    /// Recordings capturing media now (what counts against the capacity).
    pub active: u32,
    /// Recordings whose capture ended and whose composition or upload still runs.
    #[serde(default)]
    pub finishing: u32,
    /// It takes no new recordings (a drain, or shutting down).
    #[serde(default)]
    pub draining: bool,
    /// Registered with signaling now.
    #[serde(default)]
    pub registered: bool,
    /// Recordings (segments) it has started since it started, and those that ended with an
    /// error: counters, so a reader sees every start and failure between two reads.
    #[serde(default)]
    pub started_total: u64,
    #[serde(default)]
    pub failed_total: u64,
}

/// Prometheus metric names of `convene-recorder` (for people, dashboards and alerts).
pub mod metrics {
    pub const RECORDINGS_ACTIVE: &str = "convene_recorder_recordings_active";
    pub const TRACKS_ACTIVE: &str = "convene_recorder_tracks_active";
    pub const BYTES_WRITTEN: &str = "convene_recorder_bytes_written_total";
    pub const PACKETS_LOST: &str = "convene_recorder_packets_lost_total";
    pub const KEYFRAME_REQUESTS: &str = "convene_recorder_keyframe_requests_total";
    pub const UPLOAD_PENDING_BYTES: &str = "convene_recorder_upload_pending_bytes";
    pub const COMPOSE_SECONDS: &str = "convene_recorder_compose_seconds";
    pub const CAPACITY: &str = "convene_recorder_capacity";
}

/// Protocol version; sent in [`FromRecorder::Register`]. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Signaling → recorder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToRecorder {
    /// Record `conference` as its hidden endpoint `endpoint` (already allocated on the bridge).
    /// Reply: [`FromRecorder::Offer`], or `Error` with [`ErrorCode::Capacity`] when full.
    Start {
        id: RequestId,
        recording: String,
        conference: String,
        endpoint: String,
        /// Wall clock (ms since the Unix epoch) the recording counts as started at: its
        /// directory name and the manifest's time zero.
        started_wall_ms: u64,
        /// The bridge's ICE candidates (also in its SDP).
        #[serde(default)]
        candidates: Vec<String>,
        /// 1 for a new recording; more when this continues it after an interruption (its
        /// recorder was lost, or the conference moved to another bridge): the files go in
        /// their own `segment-<n>/` directory beside the first segment's.
        #[serde(default = "first_segment")]
        segment: u32,
        /// Why the previous segment ended and when (absent for segment 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        continues: Option<Continuation>,
    },
    /// Who is in the room, whole (sent when the recording starts and whenever someone joins,
    /// leaves, renames, mutes, unmutes or shares a screen): names, mute and screen-share spans
    /// in the manifest. No reply.
    Participants { recording: String, participants: Vec<RecordedParticipant> },
    /// A chat message to the whole room (private messages are never recorded), for `chat.txt`.
    /// No reply.
    Chat {
        recording: String,
        /// Sender's participant (endpoint) id and display name.
        from: String,
        name: String,
        text: String,
        /// When signaling relayed it (ms since the Unix epoch).
        wall_ms: u64,
    },
    /// The bridge's answer to the recorder's offer (no reply).
    Answer { recording: String, sdp: String },
    /// The bridge's offer of its receive slots; answered by [`FromRecorder::Answer`].
    Offer { recording: String, offer_id: OfferId, sdp: String, slots: Vec<SlotInfo> },
    /// Slots whose source changed (only those; no reply).
    Slots { recording: String, slots: Vec<SlotInfo> },
    /// Finish the files and the manifest. Reply: `Ok` (then [`FromRecorder::Finished`]).
    Stop {
        id: RequestId,
        recording: String,
        /// The recording goes on in a next segment (an interruption): compose nothing now;
        /// the last segment's recorder composes the whole recording's one file.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        handoff: bool,
    },
}

fn first_segment() -> u32 {
    1
}

/// Why a recording continues in a new segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    pub reason: Interruption,
    /// When the previous segment's media stopped (signaling noticed; ms since the Unix epoch).
    pub interrupted_wall_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interruption {
    /// The recorder of the previous segment went away (its pod died, its connection broke).
    RecorderLost,
    /// The conference moved to another bridge (a drain, or the bridge was lost).
    BridgeMigration,
}

/// One participant as the recording sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedParticipant {
    /// The participant id, which is their endpoint id on the bridge (the slot sources' `endpoint`).
    pub id: String,
    pub name: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub screen: bool,
}

/// Recorder → signaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromRecorder {
    /// First message of a control connection.
    Register {
        protocol_version: u32,
        recorder_id: String,
        /// Software version of the recorder binary.
        version: String,
        /// How many recordings it runs at once.
        capacity: u32,
        /// Recordings running now (after a control reconnect they may be left over).
        active: u32,
        /// The recorder takes no new recordings.
        #[serde(default)]
        draining: bool,
        /// Camera height it records (signaling asks the bridge for the simulcast layer at or
        /// below it; a source with no such layer comes in its lowest).
        #[serde(default = "default_video_height")]
        video_height: u32,
    },
    /// Load changed (a recording started or ended, draining began).
    Status {
        active: u32,
        #[serde(default)]
        draining: bool,
    },
    /// Reply to [`ToRecorder::Start`]: the recorder's first offer, for the bridge.
    Offer { id: RequestId, recording: String, sdp: String },
    /// The answer to [`ToRecorder::Offer`] `offer_id`, for the bridge.
    Answer { recording: String, offer_id: OfferId, sdp: String },
    /// A recording ended (stopped, or failed: `error` says why); its files are complete.
    Finished {
        recording: String,
        /// The recorded room (its conference), so signaling can tell its moderators after the
        /// recording has already left the room (a failed upload).
        #[serde(default)]
        conference: String,
        /// Where the files are (the recorder's path, or later an object key prefix).
        location: String,
        /// Track files written.
        files: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<Failure>,
    },
    /// Success of a request that returns nothing else.
    Ok { id: RequestId },
    /// Failure of a request (`id` is absent when the request could not be parsed).
    Error { id: Option<RequestId>, code: ErrorCode, message: String },
}

fn default_video_height() -> u32 {
    360
}

/// Why a recording failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnknownRecording,
    /// Already running as many recordings as its capacity.
    Capacity,
    Draining,
    /// The bridge's SDP could not be used.
    Sdp,
    /// Files could not be written (disk full, permissions).
    Storage,
    /// The media connection to the bridge failed or went silent.
    Media,
    /// Object storage refused or could not be reached (an upload failed for good).
    Upload,
    Internal,
}

impl ToRecorder {
    /// The id a reply will carry (`None` for messages that get none).
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            ToRecorder::Start { id, .. } | ToRecorder::Stop { id, .. } => Some(*id),
            ToRecorder::Answer { .. }
            | ToRecorder::Offer { .. }
            | ToRecorder::Slots { .. }
            | ToRecorder::Participants { .. }
            | ToRecorder::Chat { .. } => None,
        }
    }
}

impl FromRecorder {
    /// The request this message replies to, if it is a reply.
    pub fn reply_to(&self) -> Option<RequestId> {
        match self {
            FromRecorder::Offer { id, .. } | FromRecorder::Ok { id } => Some(*id),
            FromRecorder::Error { id, .. } => *id,
            FromRecorder::Register { .. }
            | FromRecorder::Status { .. }
            | FromRecorder::Answer { .. }
            | FromRecorder::Finished { .. } => None,
        }
    }

    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> FromRecorder {
        FromRecorder::Error { id, code, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_ids() {
        let m = ToRecorder::Start {
            id: 4,
            recording: "r1".into(),
            conference: "acme/standup".into(),
            endpoint: "rec-r1".into(),
            started_wall_ms: 1_700_000_000_000,
            candidates: vec![],
            segment: 2,
            continues: Some(Continuation {
                reason: Interruption::RecorderLost,
                interrupted_wall_ms: 1_700_000_005_000,
            }),
        };
        let s = to_json(&m);
        assert!(s.contains(r#""type":"start""#) && s.contains(r#""reason":"recorder_lost""#), "{s}");
        assert_eq!(parse::<ToRecorder>(&s).unwrap(), m);
        assert_eq!(m.request_id(), Some(4));
        let r = FromRecorder::Offer { id: 4, recording: "r1".into(), sdp: "v=0".into() };
        assert_eq!(parse::<FromRecorder>(&to_json(&r)).unwrap().reply_to(), Some(4));
        let f = FromRecorder::Finished {
            recording: "r1".into(),
            conference: "acme/standup".into(),
            location: "/rec/x".into(),
            files: 3,
            error: Some(Failure { code: ErrorCode::Storage, message: "disk full".into() }),
        };
        let s = to_json(&f);
        assert!(s.contains(r#""code":"storage""#), "{s}");
        assert_eq!(parse::<FromRecorder>(&s).unwrap(), f);
        assert_eq!(f.reply_to(), None);
    }

    #[test]
    fn register_defaults_and_directions() {
        let m = parse::<FromRecorder>(
            r#"{"type":"register","protocol_version":1,"recorder_id":"r-0","version":"0.1","capacity":10,"active":0}"#,
        )
        .unwrap();
        assert!(matches!(m, FromRecorder::Register { capacity: 10, draining: false, video_height: 360, .. }));
        let start = parse::<ToRecorder>(
            r#"{"type":"start","id":1,"recording":"r","conference":"c","endpoint":"e","started_wall_ms":5}"#,
        )
        .unwrap();
        assert!(matches!(start, ToRecorder::Start { segment: 1, continues: None, .. }), "a first segment");
        let stop = ToRecorder::Stop { id: 1, recording: "r".into(), handoff: false };
        assert_eq!(to_json(&stop), r#"{"type":"stop","id":1,"recording":"r"}"#, "older recorders read it");
        assert!(parse::<FromRecorder>(&to_json(&stop)).is_err(), "directions do not mix");
        assert!(parse::<ToRecorder>(&to_json(&m)).is_err());
        assert!(parse::<ToRecorder>(&"x".repeat(MAX_MESSAGE_BYTES + 1)).is_err());
    }
}
