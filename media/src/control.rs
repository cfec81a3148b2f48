//! Bridge-control protocol: what signaling and a bridge say to each other.
//!
//! One JSON object per WebSocket text frame, tagged by `"type"` (snake_case). The bridge dials
//! signaling (`Authorization: Bearer <secret>`), sends [`Message::Register`] first and then
//! [`Message::Load`] every few seconds. Requests carry an `id` chosen by the sender; the answer
//! ([`Message::Allocated`], [`Message::Answer`], [`Message::Ok`], [`Message::Error`] …) echoes it.
//! Bridge-initiated offers (new sources to receive, ICE restarts) carry an `id` chosen by the
//! bridge which signaling echoes in the [`Message::Answer`] it relays back from the client.
//! See `media/CONTROL.md` for the flows.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Protocol version; sent in [`Message::Register`]. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Control frames larger than this are refused (and counted) without being parsed.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Every control message, in either direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    // ---- bridge → signaling -------------------------------------------------------------
    /// First message of a control connection.
    Register {
        protocol_version: u32,
        bridge_id: String,
        region: Option<String>,
        /// Software version of the bridge binary.
        version: String,
        /// Addresses the bridge advertises to clients, and how each was found.
        addresses: Vec<AdvertisedAddress>,
        udp_port: u16,
        tcp_port: Option<u16>,
        draining: bool,
    },
    /// Periodic load report (also sent once right after `Register`).
    Load(Load),
    /// Answer to `AllocateEndpoint`.
    Allocated {
        id: u64,
        conference: String,
        endpoint: String,
        /// ICE candidates of the bridge (`a=candidate` values); also present in every answer.
        candidates: Vec<String>,
        ice_lite: bool,
    },
    /// Endpoint state changes worth telling signaling about.
    EndpointState {
        conference: String,
        endpoint: String,
        state: EndpointState,
    },
    /// The conference's dominant speaker changed.
    DominantSpeaker {
        conference: String,
        endpoint: String,
    },
    /// The bridge (stopped) draining: no new conferences/endpoints will be accepted.
    Draining {
        draining: bool,
        /// Seconds from now after which signaling should move the endpoints still here (the
        /// operator's drain deadline); absent: signaling's own default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        migrate_after_seconds: Option<u64>,
    },
    /// Success for requests that return nothing else.
    Ok {
        id: u64,
    },
    /// Failure of a request (`id` is absent when the request could not be parsed).
    Error {
        id: Option<u64>,
        code: ErrorCode,
        message: String,
    },

    // ---- either direction ---------------------------------------------------------------
    /// SDP offer. From signaling: the client's offer (its published tracks). From the bridge:
    /// a renegotiation (sources to receive were added/removed, or an ICE restart).
    Offer {
        id: u64,
        conference: String,
        endpoint: String,
        sdp: String,
        /// Which m-line carries which source. From the client: what it publishes (optional,
        /// by default the first video is `camera` and the second `screen`). From the bridge:
        /// which sources it sends, so the client can label them.
        #[serde(default)]
        sources: Vec<SourceInfo>,
    },
    /// SDP answer; echoes the offer's `id`.
    Answer {
        id: u64,
        conference: String,
        endpoint: String,
        sdp: String,
    },
    /// A trickled ICE candidate of the client (`candidate:…` SDP attribute value).
    IceCandidate {
        id: u64,
        conference: String,
        endpoint: String,
        candidate: String,
    },

    // ---- signaling → bridge -------------------------------------------------------------
    /// Create an endpoint (and its conference if new). Refused while draining for new
    /// conferences, and at capacity.
    AllocateEndpoint {
        id: u64,
        conference: String,
        endpoint: String,
        /// Display name (only echoed in source descriptions).
        #[serde(default)]
        display_name: Option<String>,
    },
    /// What the receiver wants: at most `last_n` video sources, at most `max_height` each.
    ReceiverConstraints {
        id: u64,
        conference: String,
        endpoint: String,
        constraints: ReceiverConstraints,
    },
    /// Restart ICE for an endpoint (migration); the bridge answers with an `Offer` (same id).
    RestartIce {
        id: u64,
        conference: String,
        endpoint: String,
    },
    ExpireEndpoint {
        id: u64,
        conference: String,
        endpoint: String,
    },
    ExpireConference {
        id: u64,
        conference: String,
    },
    /// Liveness probe; answered by `Ok`.
    Ping {
        id: u64,
    },
}

/// Load figures, as in the Prometheus metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub endpoints: u64,
    pub conferences: u64,
    pub largest_conference: u64,
    pub bitrate_in_bps: u64,
    pub bitrate_out_bps: u64,
    pub packets_in_per_s: u64,
    pub packets_out_per_s: u64,
    /// 0..1 against the configured capacity (endpoints and bitrate).
    pub stress: f64,
    pub draining: bool,
    /// While draining: the deadline asked for with the drain, in seconds from when it began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertisedAddress {
    pub address: String,
    /// `node-external-ip`, `node-internal-ip`, `static`, `stun` or `bind` (fallback).
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    Connected,
    Disconnected,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnknownConference,
    UnknownEndpoint,
    Conflict,
    Draining,
    Capacity,
    Sdp,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Audio,
    Camera,
    Screen,
}

/// One media source on one m-line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The m-line (`a=mid`) in the SDP it was sent with.
    pub mid: String,
    pub kind: SourceKind,
    /// Owner endpoint (set by the bridge in its offers).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Stable source name, `<endpoint>-a0`, `<endpoint>-v0`, `<endpoint>-s0` (set by the bridge).
    #[serde(default)]
    pub name: Option<String>,
}

/// Receiver constraints (Jitsi's "receiver video constraints").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverConstraints {
    /// Video sources to receive at most; `-1` means no limit.
    #[serde(default = "default_last_n")]
    pub last_n: i32,
    /// Height for sources not listed in `max_height` (0 = no video).
    #[serde(default = "default_max_height")]
    pub default_max_height: u32,
    /// Per-source maximum height, by source name (`alice-v0`) or endpoint id (`alice`).
    #[serde(default)]
    pub max_height: BTreeMap<String, u32>,
    /// Endpoints whose video is always received (counted within last-N).
    #[serde(default)]
    pub pinned: Vec<String>,
}

fn default_last_n() -> i32 {
    -1
}
fn default_max_height() -> u32 {
    2160
}

impl Default for ReceiverConstraints {
    fn default() -> Self {
        ReceiverConstraints {
            last_n: default_last_n(),
            default_max_height: default_max_height(),
            max_height: BTreeMap::new(),
            pinned: Vec::new(),
        }
    }
}

impl Message {
    /// The request/response id, if the message has one.
    pub fn id(&self) -> Option<u64> {
        use Message::*;
        match self {
            Allocated { id, .. }
            | Ok { id }
            | Offer { id, .. }
            | Answer { id, .. }
            | IceCandidate { id, .. }
            | AllocateEndpoint { id, .. }
            | ReceiverConstraints { id, .. }
            | RestartIce { id, .. }
            | ExpireEndpoint { id, .. }
            | ExpireConference { id, .. }
            | Ping { id } => Some(*id),
            Error { id, .. } => *id,
            Register { .. } | Load(_) | EndpointState { .. } | DominantSpeaker { .. } | Draining { .. } => {
                None
            }
        }
    }

    /// Parse one frame, refusing oversized input before touching it.
    pub fn parse(text: &str) -> Result<Message, ParseError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(ParseError::TooLarge(text.len()));
        }
        serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain types cannot fail (string keys, no non-finite floats
        // except stress, which is clamped).
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Message {
        Message::Error { id, code, message: message.into() }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("control message too large ({0} bytes)")]
    TooLarge(usize),
    #[error("invalid control message: {0}")]
    Json(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tag() {
        let m = Message::AllocateEndpoint {
            id: 7,
            conference: "room".into(),
            endpoint: "alice".into(),
            display_name: None,
        };
        let s = m.to_json();
        assert!(s.contains(r#""type":"allocate_endpoint""#), "{s}");
        assert_eq!(Message::parse(&s).unwrap(), m);
        assert_eq!(m.id(), Some(7));
    }

    #[test]
    fn constraints_defaults() {
        let m = Message::parse(
            r#"{"type":"receiver_constraints","id":1,"conference":"c","endpoint":"e","constraints":{"last_n":1}}"#,
        )
        .unwrap();
        let Message::ReceiverConstraints { constraints, .. } = m else { panic!("wrong variant") };
        assert_eq!(constraints.last_n, 1);
        assert_eq!(constraints.default_max_height, 2160);
    }

    #[test]
    fn garbage_and_oversize_refused() {
        assert!(Message::parse("{nope").is_err());
        assert!(Message::parse(r#"{"type":"launch_missiles"}"#).is_err());
        let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert_eq!(Message::parse(&big), Err(ParseError::TooLarge(MAX_MESSAGE_BYTES + 1)));
    }
}
