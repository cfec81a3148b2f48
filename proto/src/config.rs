//! The signaling configuration file: rendered by the operator into the Shard's ConfigMap
//! (`signaling.yaml`, camelCase), parsed by `convene-signaling`. Secrets are files beside it,
//! named here by path, never inline. Every field has a default so a partial file works for a
//! local run.
use serde::{Deserialize, Serialize};

/// File name of the config inside the ConfigMap and the pod.
pub const SIGNALING_CONFIG_FILE: &str = "signaling.yaml";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct SignalingConfig {
    /// The shard's public domain.
    pub domain: String,
    /// The URL users open (`https://<domain>/`).
    pub public_url: String,
    /// Listen address (`0.0.0.0:8080` when empty).
    pub listen: String,
    pub region: Option<String>,
    /// File holding the bridge-control secret bridges present.
    pub bridge_secret_file: Option<String>,
    pub auth: AuthConfig,
    /// New rooms start with the lobby on.
    pub lobby_by_default: bool,
    /// Defaults handed to the web app.
    pub web: WebConfig,
    pub turn: Option<TurnConfig>,
    /// A RecorderPool serves this shard.
    pub recording: bool,
    /// Endpoints per bridge above which no conference is placed on it (default 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge_capacity: Option<u64>,
    /// Seconds after which a bridge that sent nothing is stale (default 15).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge_stale_seconds: Option<u64>,
    /// Seconds a client WebSocket (or a TCP/TLS connection that has not sent a request) may
    /// stay without joining a room (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_timeout_seconds: Option<u64>,
    /// Seconds a client WebSocket may send nothing (pings included) before it is closed
    /// (default 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// Connections not (yet) in a room allowed per source address (default 32; 0: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unauthenticated_per_address: Option<u32>,
    /// Frames queued for one connection beyond which it is closed (slow consumer; default 2048).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_frames: Option<usize>,
    /// Bytes queued for one connection beyond which it is closed (default 4 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_bytes: Option<usize>,
    /// Peers (CIDRs, e.g. `10.0.0.0/8`, or plain addresses) whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client's address. Empty: the headers are ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// PEM certificate chain and private key: signaling serves HTTPS/WSS itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// This shard is a member of a group sharing one domain (see [`crate::routing`]); absent:
    /// a standalone shard, every room is taken here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingConfig>,
}

/// Membership of a group of shards (rendered by the operator for a Shard with `spec.routing`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RoutingConfig {
    /// The group's name.
    pub group: String,
    /// This shard's name, as in the membership file.
    pub shard: String,
    /// Path of the membership ([`crate::routing::GroupMembership`], JSON, `group.json`),
    /// re-read every 2 s (a mounted ConfigMap changes by symlink swap).
    pub members_file: String,
    /// File holding the group secret signalings present to each other.
    pub secret_file: String,
    /// Request header naming the participant's region, set by the edge (e.g. a geo header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_header: Option<String>,
    /// JWT claim naming the participant's region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_claim: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsConfig {
    pub cert_file: String,
    pub key_file: String,
}

/// Absent booleans are resolved by signaling, secure by default: with JWT configured (here or
/// by flags) anonymous room creation is off unless set; guests may join rooms that exist.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthConfig {
    /// JWT verification; absent: an open shard.
    pub jwt: Option<JwtConfig>,
    /// Participants without a token may join rooms that exist (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_guests: Option<bool>,
    /// Participants without a token may create rooms (default: only when no JWT is configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_anonymous_room_creation: Option<bool>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audience: String,
    /// HS256 secret or PEM public keys.
    pub key_file: String,
}

/// JWT signature algorithm: the one a shard accepts (tokens naming another are refused).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, schemars::JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum JwtAlgorithm {
    #[default]
    HS256,
    RS256,
    ES256,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
        }
    }
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "HS256" => Ok(JwtAlgorithm::HS256),
            "RS256" => Ok(JwtAlgorithm::RS256),
            "ES256" => Ok(JwtAlgorithm::ES256),
            _ => Err(format!("unsupported JWT algorithm {s:?} (HS256, RS256 or ES256)")),
        }
    }
}

/// Web app defaults (also sent to clients in `joined`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct WebConfig {
    pub start_audio_muted: bool,
    pub start_video_muted: bool,
    /// Largest video height a participant sends.
    pub max_resolution: i32,
    /// Video sources a participant receives at most (-1: no limit).
    pub last_n: i32,
    /// Shared-notes link (an Etherpad-style pad per room): a URL template whose `{room}` the
    /// web app replaces with the URL-encoded room name. Absent: no notes link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes_url: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            start_audio_muted: false,
            start_video_muted: false,
            max_resolution: 720,
            last_n: -1,
            notes_url: None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TurnConfig {
    /// `turn:`/`turns:` URIs handed to clients.
    pub uris: Vec<String>,
    /// File holding coturn's `static-auth-secret`.
    pub secret_file: String,
    /// Lifetime of the ephemeral credentials (default 86400).
    pub credential_lifetime_seconds: i64,
}
