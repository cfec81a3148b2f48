//! Bridge control: what signaling and a bridge say to each other over the control WebSocket.
//!
//! One JSON object per text frame, tagged by `"type"` (snake_case), one enum per direction.
//! The bridge dials signaling ([`crate::paths::SIGNALING_BRIDGE_WS`], `Authorization: Bearer
//! <secret>`), sends [`FromBridge::Register`] first and then [`FromBridge::Load`] every few
//! seconds.
//!
//! Requests ([`ToBridge`] variants with an `id`, chosen by signaling) get exactly one reply with
//! the same `id`: [`FromBridge::Allocated`], [`FromBridge::Answer`], [`FromBridge::Ok`] or
//! [`FromBridge::Error`]. The bridge's own offers (new sources to receive) carry an `offer_id`
//! chosen by the bridge; signaling relays the client's answer back as [`ToBridge::Answer`] with
//! that `offer_id`. The two id spaces are separate fields, so neither side can collide with the
//! other. See `media/CONTROL.md` for the flows.
use serde::{Deserialize, Serialize};

pub use crate::load::{Drain, IceCounts, LoadReport};
pub use crate::media::{
    EndpointState, ReceiverConstraints, SlotInfo, SlotMedia, SlotSource, SourceInfo, SourceKind,
};

/// Protocol version; sent in [`FromBridge::Register`]. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 3;

/// Control frames larger than this are refused (and counted) without being parsed.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// A request id, chosen by signaling and echoed in the reply.
pub type RequestId = u64;
/// A bridge offer's id, chosen by the bridge and echoed in the client's answer.
pub type OfferId = u64;

/// Signaling → bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToBridge {
    /// Create an endpoint (and its conference if new). Refused while draining for new
    /// conferences, and at capacity. Reply: [`FromBridge::Allocated`].
    AllocateEndpoint { id: RequestId, conference: String, endpoint: String },
    /// Create a *hidden* endpoint (a recorder): it receives every source of the conference
    /// (all audio, cameras and screens, on receive slots sized by the bridge's recorder slot
    /// counts, not by last-N or the loudest speakers), publishes nothing (media it sends is
    /// dropped), is never a dominant speaker and never appears in anyone's slots. It
    /// negotiates and sends `receiver_constraints` like any endpoint (`max_height` picks the
    /// simulcast layer). Same checks and reply as `AllocateEndpoint`: [`FromBridge::Allocated`].
    /// A separate request rather than a flag, so every existing sender and matcher of
    /// `allocate_endpoint` stays as it is.
    AllocateHiddenEndpoint { id: RequestId, conference: String, endpoint: String },
    /// The client's offer (its published tracks). Reply: [`FromBridge::Answer`].
    Offer {
        id: RequestId,
        conference: String,
        endpoint: String,
        sdp: String,
        /// Which m-line carries which source (optional: by default the first video is
        /// `camera` and the second `screen`).
        #[serde(default)]
        sources: Vec<SourceInfo>,
    },
    /// A trickled ICE candidate of the client (`candidate:…` SDP attribute value). Reply: `Ok`.
    IceCandidate { id: RequestId, conference: String, endpoint: String, candidate: String },
    /// What the receiver wants: at most `last_n` video sources, at most `max_height` each.
    /// Reply: `Ok`.
    ReceiverConstraints {
        id: RequestId,
        conference: String,
        endpoint: String,
        constraints: ReceiverConstraints,
    },
    /// Reply: `Ok`.
    ExpireEndpoint { id: RequestId, conference: String, endpoint: String },
    /// Reply: `Ok`.
    ExpireConference { id: RequestId, conference: String },
    /// The client's answer to [`FromBridge::Offer`] `offer_id` (no reply).
    Answer { offer_id: OfferId, conference: String, endpoint: String, sdp: String },
    /// How the clients' ICE went with this bridge over signaling's window, sent every few
    /// seconds while the bridge is registered (no reply). The bridge only passes it on, in
    /// its load report (`LoadReport::ice`), for the operator. A bridge older than this message
    /// refuses it as unknown (an `error` without id, which signaling ignores).
    IceStats { ice: IceCounts },
}

/// Bridge → signaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromBridge {
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
        /// Present when the bridge is already draining.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drain: Option<Drain>,
    },
    /// Periodic load report (also sent once right after `Register`).
    Load(LoadReport),
    /// Endpoint state changes worth telling signaling about.
    EndpointState { conference: String, endpoint: String, state: EndpointState },
    /// The conference's dominant speaker changed.
    DominantSpeaker { conference: String, endpoint: String },
    /// The bridge started (`drain` set) or stopped draining: while draining it takes no new
    /// conferences, and at the deadline signaling moves the endpoints still here.
    Draining {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drain: Option<Drain>,
    },
    /// A renegotiation for the client: once after its first offer, adding its fixed receive
    /// slots (later only for an ICE restart); answered by [`ToBridge::Answer`] with the same
    /// `offer_id`.
    Offer {
        offer_id: OfferId,
        conference: String,
        endpoint: String,
        sdp: String,
        /// Every receive slot (m-line) and what it carries now.
        slots: Vec<SlotInfo>,
    },
    /// Slots of one receiver whose source changed (only those): signaling relays them to the
    /// client as `slots`.
    Slots { conference: String, endpoint: String, slots: Vec<SlotInfo> },
    /// Reply to [`ToBridge::AllocateEndpoint`].
    Allocated {
        id: RequestId,
        conference: String,
        endpoint: String,
        /// ICE candidates of the bridge (`a=candidate` values); also present in every answer.
        candidates: Vec<String>,
        ice_lite: bool,
    },
    /// Reply to [`ToBridge::Offer`].
    Answer { id: RequestId, conference: String, endpoint: String, sdp: String },
    /// Success of a request that returns nothing else.
    Ok { id: RequestId },
    /// Failure of a request (`id` is absent when the request could not be parsed).
    Error { id: Option<RequestId>, code: ErrorCode, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertisedAddress {
    pub address: String,
    /// How it was found: an [`crate::bridge::AddressSource::flag`] value, or `bind` (fallback).
    pub source: String,
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

impl ToBridge {
    /// The id a reply will carry (`None` for the client's answers, which get none).
    pub fn request_id(&self) -> Option<RequestId> {
        use ToBridge::*;
        match self {
            AllocateEndpoint { id, .. }
            | AllocateHiddenEndpoint { id, .. }
            | Offer { id, .. }
            | IceCandidate { id, .. }
            | ReceiverConstraints { id, .. }
            | ExpireEndpoint { id, .. }
            | ExpireConference { id, .. } => Some(*id),
            Answer { .. } | IceStats { .. } => None,
        }
    }
}

impl FromBridge {
    /// The request this message replies to, if it is a reply.
    pub fn reply_to(&self) -> Option<RequestId> {
        use FromBridge::*;
        match self {
            Allocated { id, .. } | Answer { id, .. } | Ok { id } => Some(*id),
            Error { id, .. } => *id,
            Register { .. }
            | Load(_)
            | EndpointState { .. }
            | DominantSpeaker { .. }
            | Draining { .. }
            | Offer { .. }
            | Slots { .. } => None,
        }
    }

    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> FromBridge {
        FromBridge::Error { id, code, message: message.into() }
    }
}

/// Parse one frame of either direction, refusing oversized input before touching it.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))
}

/// Encode one frame of either direction.
pub fn to_json<T: Serialize>(msg: &T) -> String {
    // Plain strings, numbers and string-keyed maps; stress is clamped: cannot fail.
    serde_json::to_string(msg).unwrap_or_else(|_| "{}".into())
}

#[derive(Debug, PartialEq)]
pub enum ParseError {
    TooLarge(usize),
    Json(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::TooLarge(n) => write!(f, "control message too large ({n} bytes)"),
            ParseError::Json(e) => write!(f, "invalid control message: {e}"),
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tag() {
        let m = ToBridge::AllocateEndpoint { id: 7, conference: "room".into(), endpoint: "alice".into() };
        let s = to_json(&m);
        assert!(s.contains(r#""type":"allocate_endpoint""#), "{s}");
        assert_eq!(parse::<ToBridge>(&s).unwrap(), m);
        assert_eq!(m.request_id(), Some(7));
        let r = FromBridge::Ok { id: 7 };
        assert_eq!(parse::<FromBridge>(&to_json(&r)).unwrap().reply_to(), Some(7));
    }

    #[test]
    fn ice_stats_get_no_reply() {
        let m = ToBridge::IceStats { ice: IceCounts { connected: 3, relayed: 1, failed: 0 } };
        let s = to_json(&m);
        assert_eq!(s, r#"{"type":"ice_stats","ice":{"connected":3,"relayed":1,"failed":0}}"#);
        assert_eq!(parse::<ToBridge>(&s).unwrap(), m);
        assert_eq!(m.request_id(), None);
    }

    #[test]
    fn hidden_endpoint_request() {
        let m = parse::<ToBridge>(
            r#"{"type":"allocate_hidden_endpoint","id":3,"conference":"room","endpoint":"rec-1"}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            ToBridge::AllocateHiddenEndpoint { id: 3, conference: "room".into(), endpoint: "rec-1".into() }
        );
        assert_eq!(m.request_id(), Some(3));
        assert_eq!(parse::<ToBridge>(&to_json(&m)).unwrap(), m);
    }

    #[test]
    fn directions_do_not_mix() {
        // A bridge's offer is not something signaling may send a bridge, and vice versa.
        let offer = FromBridge::Offer {
            offer_id: 1,
            conference: "c".into(),
            endpoint: "e".into(),
            sdp: "v=0".into(),
            slots: vec![],
        };
        assert!(parse::<ToBridge>(&to_json(&offer)).is_err());
        let expire = ToBridge::ExpireConference { id: 1, conference: "c".into() };
        assert!(parse::<FromBridge>(&to_json(&expire)).is_err());
        assert_eq!(offer.reply_to(), None, "a bridge offer is not a reply");
    }

    #[test]
    fn constraints_defaults() {
        let m = parse::<ToBridge>(
            r#"{"type":"receiver_constraints","id":1,"conference":"c","endpoint":"e","constraints":{"last_n":1}}"#,
        )
        .unwrap();
        let ToBridge::ReceiverConstraints { constraints, .. } = m else { panic!("wrong variant") };
        assert_eq!(constraints.last_n, 1);
        assert_eq!(constraints.default_max_height, 2160);
    }

    #[test]
    fn garbage_and_oversize_refused() {
        assert!(parse::<ToBridge>("{nope").is_err());
        assert!(parse::<ToBridge>(r#"{"type":"launch_missiles"}"#).is_err());
        let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert_eq!(parse::<ToBridge>(&big), Err(ParseError::TooLarge(MAX_MESSAGE_BYTES + 1)));
    }
}
