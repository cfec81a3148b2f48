//! Client protocol (version 2): what the web app (and any client) and signaling say over
//! `/ws`: one JSON object per WebSocket text frame, tagged by `"type"` (snake_case). See
//! `signaling/PROTOCOL.md`; the JSON Schema is exported to `proto/schema/client.json`.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::WebConfig;
pub use crate::media::{
    EndpointState, MuteKind, ReceiverConstraints, SlotInfo, SlotMedia, SlotSource, SourceInfo, SourceKind,
};

/// One entry of `RTCConfiguration.iceServers` (TURN with ephemeral credentials).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

pub const PROTOCOL_VERSION: u32 = 2;
/// Client frames larger than this are refused.
pub const MAX_CLIENT_FRAME: usize = 128 * 1024;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Join {
        #[serde(default = "default_version")]
        v: u32,
        room: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        avatar: Option<String>,
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        audio_muted: bool,
        #[serde(default)]
        video_muted: bool,
    },
    Leave,
    /// The client's SDP offer (its published tracks) for the bridge.
    Offer {
        sdp: String,
        #[serde(default)]
        sources: Vec<SourceInfo>,
    },
    /// The client's answer to a bridge offer (`id` echoes the offer's).
    Answer {
        id: u64,
        sdp: String,
    },
    Ice {
        candidate: String,
    },
    Constraints {
        constraints: ReceiverConstraints,
    },
    Chat {
        text: String,
        /// Participant id for a private message.
        #[serde(default)]
        to: Option<String>,
    },
    MediaState {
        #[serde(default)]
        audio_muted: bool,
        #[serde(default)]
        video_muted: bool,
        #[serde(default)]
        screen: bool,
    },
    Profile {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        avatar: Option<String>,
    },
    RaiseHand {
        raised: bool,
    },
    /// A short reaction shown on the sender's tile; rate limited (excess ones are dropped).
    Reaction {
        reaction: ReactionKind,
    },
    // ---- moderator -----------------------------------------------------------------------
    Mute {
        target: String,
        #[serde(default)]
        kind: MuteKind,
    },
    MuteAll {
        #[serde(default)]
        kind: MuteKind,
    },
    Kick {
        target: String,
    },
    GrantModerator {
        target: String,
    },
    SetLobby {
        enabled: bool,
    },
    LobbyAdmit {
        id: String,
    },
    LobbyDeny {
        id: String,
    },
    SetPassword {
        #[serde(default)]
        password: Option<String>,
    },
    SetRecording {
        recording: bool,
    },
    /// Moderator: mark the room end-to-end encrypted (or not). The clients encrypt their media
    /// with a key from a passphrase shared out of band; signaling and the bridge never see it.
    /// Refused with `recording_e2ee` while a recording runs.
    SetE2ee {
        enabled: bool,
    },
    /// Moderator: spotlight a participant for everyone (their tile takes the stage in every
    /// client, unless a client pinned another), or nobody (`target` absent or null).
    Spotlight {
        #[serde(default)]
        target: Option<String>,
    },
    /// Moderator: end the meeting for everyone (each gets `meeting_ended`, then the socket closes).
    EndMeeting,
    /// How the peer connection made for a `media` message went: it `connected` (`candidate`:
    /// the type of the selected pair's local candidate; `relay` means through TURN) or ICE
    /// `failed` (or did not connect in time). One per `media` message, naming the `bridge` that
    /// message named. Signaling counts it for that bridge while it is still the participant's
    /// bridge and there is a `media` message left to report on; the rest are ignored silently.
    IceReport {
        bridge: String,
        outcome: IceOutcome,
        #[serde(default)]
        candidate: Option<CandidateType>,
        /// The first TURN relay error this peer connection saw (`icecandidateerror` for a
        /// `turn:`/`turns:` URL), whatever the outcome: a client may connect directly while
        /// every relay refuses it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn_error: Option<TurnError>,
    },
    Ping,
}

/// How a peer connection's ICE ended ([`ClientMsg::IceReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IceOutcome {
    Connected,
    Failed,
}

impl IceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            IceOutcome::Connected => "connected",
            IceOutcome::Failed => "failed",
        }
    }
}

/// Why a TURN relay gave a client no allocation, from the STUN error code of its
/// `icecandidateerror` ([`ClientMsg::IceReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TurnError {
    /// 401 or 438: the relay refused the credentials signaling minted (its shared secret
    /// differs from the TurnPool's Secret, or the clocks differ).
    Auth,
    /// Another STUN error (403, 486 quota, 508 capacity, ...): the relay refused the allocation.
    Refused,
    /// 701: the relay did not answer (firewall, wrong address, relay down).
    Unreachable,
}

impl TurnError {
    pub const ALL: [TurnError; 3] = [TurnError::Auth, TurnError::Refused, TurnError::Unreachable];

    pub fn as_str(self) -> &'static str {
        match self {
            TurnError::Auth => "auth",
            TurnError::Refused => "refused",
            TurnError::Unreachable => "unreachable",
        }
    }
}

/// An ICE candidate type, as `RTCIceCandidateStats.candidateType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidateType {
    /// The client's own address.
    Host,
    /// The client's address as a STUN server saw it (behind NAT).
    Srflx,
    /// Learnt from a connectivity check (behind NAT).
    Prflx,
    /// A TURN relay's address: the media goes through TURN.
    Relay,
}

impl CandidateType {
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
        }
    }
}

/// The reactions a client may send (the web app draws each as an icon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReactionKind {
    Like,
    Love,
    Laugh,
    Clap,
    Surprise,
    Party,
}

/// A `join` without `v` is version 1 (refused: slots came with version 2).
fn default_version() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    pub moderator: bool,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub screen: bool,
    pub hand_raised: bool,
    /// Place in the room's queue of raised hands: hands sort by it, lowest (raised first)
    /// first. Absent while the hand is down; a hand raised again goes to the back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_order: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoomInfo {
    pub name: String,
    pub locked: bool,
    pub lobby: bool,
    /// A recording is running (a recorder is writing the room's media); every client shows it.
    pub recording: bool,
    /// While recording: the display name of the moderator who started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_by: Option<String>,
    pub dominant_speaker: Option<String>,
    /// The room's media is end-to-end encrypted (`set_e2ee`): clients without the passphrase
    /// cannot decode it, and recording is refused.
    #[serde(default)]
    pub e2ee: bool,
    /// The participant a moderator spotlighted for everyone (`spotlight`), while in the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spotlight: Option<String>,
}

/// Why a recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStopReason {
    /// A moderator stopped it (`by` names them).
    Stopped,
    /// Everyone left, or the meeting ended.
    RoomEnded,
    /// The recorder reported a failure of its media connection.
    RecorderFailed,
    /// The recorder could not write (its disk is full, or refused the files).
    StorageFailed,
    /// The recorder was lost mid-recording and no other one could continue it.
    RecorderLost,
    /// The room's bridge went away and the recording could not follow the room to another.
    BridgeLost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WaitingInfo {
    pub id: String,
    pub name: String,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Hello {
        v: u32,
    },
    /// The room lives on (or belongs to) another shard of the group: open a WebSocket to `url`
    /// (as given: it carries the hop count, `?hops=n`) and send the same `join` there. The
    /// socket closes after this. A reconnect after a lost connection goes to the entry URL
    /// again, not to `url`.
    Redirect {
        shard: String,
        url: String,
    },
    Joined {
        v: u32,
        you: ParticipantInfo,
        room: RoomInfo,
        participants: Vec<ParticipantInfo>,
        ice_servers: Vec<IceServer>,
        web: WebConfig,
    },
    /// Media can be set up: (re)create the peer connection and send an offer. Sent after join
    /// and again when the conference moved to another bridge (`migration: true`).
    Media {
        bridge: String,
        migration: bool,
        ice_servers: Vec<IceServer>,
    },
    Answer {
        sdp: String,
    },
    /// The bridge's offer of the client's fixed receive slots (once per peer connection; again
    /// only for an ICE restart); reply with `answer` echoing `id`.
    Offer {
        id: u64,
        sdp: String,
        /// Every receive slot (m-line) and what it carries now.
        slots: Vec<SlotInfo>,
    },
    /// Receive slots whose source changed (only those): show each slot's track on the tile of
    /// the participant whose source it now carries; `source: null` — nothing flows on it.
    Slots {
        slots: Vec<SlotInfo>,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        id: String,
    },
    ParticipantUpdated {
        participant: ParticipantInfo,
    },
    Room {
        room: RoomInfo,
    },
    Chat {
        from: String,
        name: String,
        text: String,
        private: bool,
        to: Option<String>,
    },
    DominantSpeaker {
        id: String,
    },
    ConnectionState {
        id: String,
        state: EndpointState,
    },
    /// A recording of the room ended (the `room` message that follows says `recording:
    /// false`); a start is the `room` message with `recording: true` and `recording_by`.
    RecordingStopped {
        /// The moderator who stopped it (reason `stopped`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        reason: RecordingStopReason,
    },
    /// You were muted by a moderator.
    MutedBy {
        by: String,
        kind: MuteKind,
    },
    Kicked {
        by: String,
    },
    /// A participant's reaction (to everyone, the sender included).
    Reaction {
        from: String,
        reaction: ReactionKind,
    },
    /// A moderator ended the meeting for everyone; `kicked` follows and the socket closes.
    MeetingEnded {
        by: String,
    },
    LobbyWaiting,
    LobbyDenied,
    /// To moderators: the current waiting list.
    Lobby {
        waiting: Vec<WaitingInfo>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong,
}

/// Every refusal a client can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnsupportedVersion,
    InvalidRoom,
    NotJoined,
    AlreadyJoined,
    AuthRequired,
    AuthFailed,
    RoomCreationForbidden,
    PasswordRequired,
    WrongPassword,
    LobbyDenied,
    NotModerator,
    UnknownParticipant,
    NoBridge,
    MediaError,
    RoomFull,
    RateLimited,
    // A field over its documented length (chat text over 4096 characters).
    TooLong,
    /// `set_recording`: no recorder with free capacity is registered (or all are draining).
    NoRecorder,
    /// `set_recording`: the recorder or the bridge refused or failed to start the recording.
    RecordingFailed,
    /// `set_recording`: the recorder cannot write its files (disk full, permissions).
    RecordingStorageFailed,
    /// To moderators, after a recording ended: its upload to object storage failed (S3
    /// refused or unreachable); the message says where the files were kept.
    RecordingUploadFailed,
    /// `set_recording` in an end-to-end encrypted room (the recorder could not decode it), or
    /// `set_e2ee` while a recording runs.
    RecordingE2ee,
}

impl ErrorCode {
    /// Every code, in declaration order (the JSON schema lists the same; tested).
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::InvalidRoom,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::AuthRequired,
        ErrorCode::AuthFailed,
        ErrorCode::RoomCreationForbidden,
        ErrorCode::PasswordRequired,
        ErrorCode::WrongPassword,
        ErrorCode::LobbyDenied,
        ErrorCode::NotModerator,
        ErrorCode::UnknownParticipant,
        ErrorCode::NoBridge,
        ErrorCode::MediaError,
        ErrorCode::RoomFull,
        ErrorCode::RateLimited,
        ErrorCode::TooLong,
        ErrorCode::NoRecorder,
        ErrorCode::RecordingFailed,
        ErrorCode::RecordingStorageFailed,
        ErrorCode::RecordingUploadFailed,
        ErrorCode::RecordingE2ee,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::AuthRequired => "auth_required",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::RoomCreationForbidden => "room_creation_forbidden",
            ErrorCode::PasswordRequired => "password_required",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::LobbyDenied => "lobby_denied",
            ErrorCode::NotModerator => "not_moderator",
            ErrorCode::UnknownParticipant => "unknown_participant",
            ErrorCode::NoBridge => "no_bridge",
            ErrorCode::MediaError => "media_error",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLong => "too_long",
            ErrorCode::NoRecorder => "no_recorder",
            ErrorCode::RecordingFailed => "recording_failed",
            ErrorCode::RecordingStorageFailed => "recording_storage_failed",
            ErrorCode::RecordingUploadFailed => "recording_upload_failed",
            ErrorCode::RecordingE2ee => "recording_e2ee",
        }
    }
}

impl ServerMsg {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMsg {
        ServerMsg::Error { code, message: message.into() }
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

impl ClientMsg {
    pub fn to_json(&self) -> String {
        // Plain strings, numbers and maps with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// A server frame, as a client reads it.
pub fn parse_server(text: &str) -> Result<ServerMsg, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// JSON Schemas of both directions, as exported to `proto/schema/` for the web app.
pub fn schemas() -> [(&'static str, serde_json::Value); 2] {
    let value = |s: schemars::Schema| serde_json::to_value(s).unwrap_or_default();
    [
        ("client-msg.schema.json", value(schemars::schema_for!(ClientMsg))),
        ("server-msg.schema.json", value(schemars::schema_for!(ServerMsg))),
    ]
}

/// A client frame, as signaling reads it: oversized frames are refused before parsing.
pub fn parse(text: &str) -> Result<ClientMsg, String> {
    if text.len() > MAX_CLIENT_FRAME {
        return Err(format!("frame too large ({} bytes)", text.len()));
    }
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Room names: 1..=64 of `a-z 0-9 - _ .`, optionally `tenant/room`; lower-cased.
pub fn normalize_room(name: &str) -> Option<String> {
    let n = name.trim().to_ascii_lowercase();
    if n.is_empty() || n.len() > 64 || n.starts_with('/') || n.ends_with('/') || n.matches('/').count() > 1 {
        return None;
    }
    let reserved = ["ws", "bridge", "recorder", "health", "ready", "metrics", "static", "config.json"];
    if reserved.contains(&n.as_str()) || n.starts_with('.') {
        return None;
    }
    n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c)).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_is_listed_once_with_its_wire_name() {
        // The schema lists plain variants under `enum` and documented ones as `oneOf` consts.
        let schema = serde_json::to_value(schemars::schema_for!(ErrorCode)).unwrap();
        let plain = schema["enum"].as_array().into_iter().flatten();
        let documented = schema["oneOf"].as_array().into_iter().flatten().flat_map(|v| {
            v["enum"].as_array().cloned().unwrap_or_default().into_iter().chain(v.get("const").cloned())
        });
        let mut wire: Vec<String> =
            plain.cloned().chain(documented).map(|v| v.as_str().unwrap().into()).collect();
        let mut listed: Vec<String> = ErrorCode::ALL.iter().map(|c| c.as_str().into()).collect();
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str(), "{c:?}");
        }
        wire.sort();
        listed.sort();
        assert_eq!(listed, wire);
    }

    #[test]
    fn join_parses_with_defaults() {
        let m = parse(r#"{"type":"join","room":"Standup"}"#).unwrap();
        let ClientMsg::Join { v, room, token, .. } = m else { panic!("variant") };
        assert_eq!((v, room.as_str(), token), (1, "Standup", None));
    }

    #[test]
    fn encoding_is_tagged_snake_case() {
        let s = ServerMsg::error(ErrorCode::RoomCreationForbidden, "x").to_json();
        assert_eq!(s, r#"{"type":"error","code":"room_creation_forbidden","message":"x"}"#);
        assert_eq!(ErrorCode::RoomCreationForbidden.as_str(), "room_creation_forbidden");
        let s = ServerMsg::DominantSpeaker { id: "a".into() }.to_json();
        assert_eq!(s, r#"{"type":"dominant_speaker","id":"a"}"#);
        let m = parse(r#"{"type":"mute_all"}"#).unwrap();
        assert_eq!(m, ClientMsg::MuteAll { kind: MuteKind::Audio });
        assert!(parse(r#"{"type":"mute_all","kind":"smell"}"#).is_err(), "unknown mute kinds are refused");
        let m =
            parse(r#"{"type":"constraints","constraints":{"last_n":2,"max_height":{"ab-v0":180}}}"#).unwrap();
        let ClientMsg::Constraints { constraints } = m else { panic!("variant") };
        assert_eq!(constraints.max_height["ab-v0"], 180);
    }

    #[test]
    fn garbage_refused_without_panic() {
        assert!(parse("{").is_err());
        assert!(parse(r#"{"type":"launch"}"#).is_err());
        assert!(parse(&"x".repeat(MAX_CLIENT_FRAME + 1)).is_err());
        assert!(parse(r#"{"type":"chat"}"#).is_err());
    }

    #[test]
    fn client_frames_encode_as_the_server_parses_them() {
        let j = ClientMsg::Join {
            v: PROTOCOL_VERSION,
            room: "load-0".into(),
            name: Some("p0".into()),
            avatar: None,
            token: None,
            password: None,
            audio_muted: false,
            video_muted: false,
        };
        assert_eq!(parse(&j.to_json()).unwrap(), j);
        let r = ServerMsg::Redirect { shard: "meet-b".into(), url: "wss://m/_shard/meet-b/ws".into() };
        assert_eq!(r.to_json(), r#"{"type":"redirect","shard":"meet-b","url":"wss://m/_shard/meet-b/ws"}"#);
        let o = ClientMsg::Offer {
            sdp: "v=0".into(),
            sources: vec![SourceInfo {
                mid: "1".into(),
                kind: SourceKind::Camera,
                endpoint: None,
                name: None,
            }],
        };
        assert!(o.to_json().contains(r#""sources":[{"mid":"1","kind":"camera""#), "{}", o.to_json());
        assert_eq!(ClientMsg::Leave.to_json(), r#"{"type":"leave"}"#);
        let r = parse(r#"{"type":"reaction","reaction":"clap"}"#).unwrap();
        assert_eq!(r, ClientMsg::Reaction { reaction: ReactionKind::Clap });
        assert!(parse(r#"{"type":"reaction","reaction":"<img>"}"#).is_err(), "only known reactions");
        assert_eq!(parse(r#"{"type":"end_meeting"}"#).unwrap(), ClientMsg::EndMeeting);
    }

    #[test]
    fn ice_reports_parse_only_known_outcomes_and_candidate_types() {
        let m = parse(r#"{"type":"ice_report","bridge":"b1","outcome":"connected","candidate":"relay"}"#);
        assert_eq!(
            m.unwrap(),
            ClientMsg::IceReport {
                bridge: "b1".into(),
                outcome: IceOutcome::Connected,
                candidate: Some(CandidateType::Relay),
                turn_error: None,
            }
        );
        let failed = ClientMsg::IceReport {
            bridge: "b1".into(),
            outcome: IceOutcome::Failed,
            candidate: None,
            turn_error: None,
        };
        assert_eq!(parse(r#"{"type":"ice_report","bridge":"b1","outcome":"failed"}"#).unwrap(), failed);
        assert_eq!(parse(&failed.to_json()).unwrap(), failed);
        for bad in [
            r#"{"type":"ice_report","bridge":"b1","outcome":"meh"}"#,
            r#"{"type":"ice_report","bridge":"b1","outcome":"connected","candidate":"<b>x</b>"}"#,
            r#"{"type":"ice_report","outcome":"failed"}"#,
            r#"{"type":"ice_report","bridge":"b1","outcome":"failed","turn_error":"401"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let refused =
            parse(r#"{"type":"ice_report","bridge":"b1","outcome":"connected","turn_error":"auth"}"#);
        assert!(matches!(refused.unwrap(), ClientMsg::IceReport { turn_error: Some(TurnError::Auth), .. }));
        assert_eq!((IceOutcome::Failed.as_str(), CandidateType::Srflx.as_str()), ("failed", "srflx"));
    }

    #[test]
    fn server_frames_parse() {
        let m = parse_server(r#"{"type":"media","bridge":"b1","migration":true,"ice_servers":[]}"#);
        assert_eq!(
            m.unwrap(),
            ServerMsg::Media { bridge: "b1".into(), migration: true, ice_servers: vec![] }
        );
        let o = parse_server(
            r#"{"type":"offer","id":7,"sdp":"v=0","slots":[{"mid":"3","media":"audio","source":null}]}"#,
        )
        .unwrap();
        let ServerMsg::Offer { id, slots, .. } = o else { panic!("variant") };
        assert_eq!((id, slots[0].media, slots[0].source.as_ref()), (7, SlotMedia::Audio, None));
        let s = ServerMsg::Slots {
            slots: vec![SlotInfo {
                mid: "4".into(),
                media: SlotMedia::Video,
                source: Some(SlotSource {
                    endpoint: "b".into(),
                    name: "b-s0".into(),
                    kind: SourceKind::Screen,
                }),
            }],
        };
        assert_eq!(
            s.to_json(),
            r#"{"type":"slots","slots":[{"mid":"4","media":"video","source":{"endpoint":"b","name":"b-s0","kind":"screen"}}]}"#
        );
        assert_eq!(parse_server(&s.to_json()).unwrap(), s);
        for bad in
            ["{", "[]", r#"{"type":"media"}"#, r#"{"type":"offer","id":"x","sdp":""}"#, r#"{"no":"type"}"#]
        {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn room_names() {
        assert_eq!(normalize_room("Standup").as_deref(), Some("standup"));
        assert_eq!(normalize_room("acme/standup").as_deref(), Some("acme/standup"));
        for bad in ["", "a b", "ws", "metrics", "../x", "a/b/c", "<script>", &"x".repeat(65)] {
            assert!(normalize_room(bad).is_none(), "{bad}");
        }
    }
}
