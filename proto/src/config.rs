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
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthConfig {
    /// JWT verification; absent: an open shard.
    pub jwt: Option<JwtConfig>,
    /// Participants without a token may join rooms that exist.
    pub allow_guests: bool,
    /// Participants without a token may create rooms.
    pub allow_anonymous_room_creation: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { jwt: None, allow_guests: true, allow_anonymous_room_creation: true }
    }
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
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig { start_audio_muted: false, start_video_muted: false, max_resolution: 720, last_n: -1 }
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
