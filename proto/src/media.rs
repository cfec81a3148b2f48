//! Media descriptions shared by the client protocol and bridge control: which m-line carries
//! which source, and what a receiver wants to receive.
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Audio,
    Camera,
    Screen,
}

/// One media source on one m-line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// A receive slot: one of the fixed `sendonly` m-lines the bridge offers a receiver once, at
/// join, and which source it currently carries (Jitsi's SSRC rewriting). The bridge switches
/// sources on a slot without renegotiating; the stream stays continuous (sequence numbers and
/// timestamps) and a video switch starts on a keyframe of the new source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SlotInfo {
    /// The slot's m-line (`a=mid`) in the bridge's offer.
    pub mid: String,
    /// `audio` or `video` (a video slot carries cameras and screens alike).
    pub media: SlotMedia,
    /// What the slot carries now; absent (`null`): nothing flows on it.
    #[serde(default)]
    pub source: Option<SlotSource>,
}

/// Media kind of a slot's m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlotMedia {
    Audio,
    Video,
}

/// The source a slot carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SlotSource {
    /// Owner endpoint (participant id).
    pub endpoint: String,
    /// Stable source name, `<endpoint>-a0`, `<endpoint>-v0`, `<endpoint>-s0`.
    pub name: String,
    pub kind: SourceKind,
}

/// Receiver constraints (Jitsi's "receiver video constraints").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReceiverConstraints {
    /// Endpoints whose video to receive at most; `-1` means no limit. The bridge's video
    /// slots bound it too.
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

/// What a moderator mutes, and what a participant was muted of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MuteKind {
    #[default]
    Audio,
    Video,
}

/// An endpoint's media connection as the bridge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    Connected,
    Disconnected,
    Expired,
}
