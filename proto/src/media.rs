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

/// Receiver constraints (Jitsi's "receiver video constraints").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
