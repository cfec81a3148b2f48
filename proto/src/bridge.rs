//! How the operator configures a bridge: environment variable names (the bridge's flags read
//! them) and where the bridge's advertised address comes from.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Environment variables the operator sets on bridge pods and `convene-bridge` reads.
pub mod env {
    pub const UDP_PORT: &str = "CONVENE_BRIDGE_UDP_PORT";
    pub const TCP_PORT: &str = "CONVENE_BRIDGE_TCP_PORT";
    pub const HTTP_PORT: &str = "CONVENE_BRIDGE_HTTP_PORT";
    pub const BIND: &str = "CONVENE_BRIDGE_BIND";
    pub const ADDRESS_SOURCE: &str = "CONVENE_BRIDGE_ADDRESS_SOURCE";
    pub const STATIC_ADDRESSES: &str = "CONVENE_BRIDGE_STATIC_ADDRESSES";
    pub const STUN_SERVER: &str = "CONVENE_BRIDGE_STUN_SERVER";
    /// The Node the pod runs on (downward API `spec.nodeName`).
    pub const NODE_NAME: &str = "NODE_NAME";
    /// Signaling's bridge-control WebSocket URL.
    pub const SIGNALING_URL: &str = "CONVENE_SIGNALING_URL";
    /// Shared bridge-control secret (signaling's bearer token and `POST /drain`).
    pub const SECRET: &str = "CONVENE_BRIDGE_SECRET";
    /// Bridge identity (the pod name).
    pub const ID: &str = "CONVENE_BRIDGE_ID";
    pub const REGION: &str = "CONVENE_BRIDGE_REGION";
    pub const MAX_ENDPOINTS: &str = "CONVENE_BRIDGE_MAX_ENDPOINTS";
    pub const MAX_BITRATE_MBPS: &str = "CONVENE_BRIDGE_MAX_BITRATE_MBPS";
    pub const MAX_PPS_PER_SOURCE: &str = "CONVENE_BRIDGE_MAX_PPS_PER_SOURCE";
    /// Most receive slots per endpoint (opened in steps as it wants more): audio (the loudest
    /// speakers) and video (cameras and screens by last-N).
    pub const AUDIO_SLOTS: &str = "CONVENE_BRIDGE_AUDIO_SLOTS";
    pub const VIDEO_SLOTS: &str = "CONVENE_BRIDGE_VIDEO_SLOTS";
    pub const RECORDER_AUDIO_SLOTS: &str = "CONVENE_BRIDGE_RECORDER_AUDIO_SLOTS";
    pub const RECORDER_VIDEO_SLOTS: &str = "CONVENE_BRIDGE_RECORDER_VIDEO_SLOTS";
    pub const BWE: &str = "CONVENE_BRIDGE_BWE";
    /// Microseconds between the media thread's wake-ups for timers alone (a tuning knob the
    /// operator does not render; the benchmark passes it through).
    pub const PACING_QUANTUM_US: &str = "CONVENE_BRIDGE_PACING_QUANTUM_US";
    pub const WORKERS: &str = "CONVENE_BRIDGE_WORKERS";
    pub const LOAD_INTERVAL: &str = "CONVENE_BRIDGE_LOAD_INTERVAL";
    pub const ICE_TCP_MAX_CONNECTIONS: &str = "CONVENE_BRIDGE_ICE_TCP_MAX_CONNECTIONS";
    pub const ICE_TCP_MAX_PER_SOURCE: &str = "CONVENE_BRIDGE_ICE_TCP_MAX_PER_SOURCE";
    pub const ICE_TCP_HANDSHAKE_TIMEOUT_MS: &str = "CONVENE_BRIDGE_ICE_TCP_HANDSHAKE_TIMEOUT_MS";
    /// Drain deadline when `POST /drain` names none.
    pub const DRAIN_DEADLINE_SECONDS: &str = "CONVENE_BRIDGE_DRAIN_DEADLINE_SECONDS";
    /// HTTP connections held at most; past it the oldest one without a request makes room.
    pub const HTTP_MAX_CONNECTIONS: &str = "CONVENE_BRIDGE_HTTP_MAX_CONNECTIONS";
    /// HTTP connections one source address may hold.
    pub const HTTP_MAX_PER_SOURCE: &str = "CONVENE_BRIDGE_HTTP_MAX_PER_SOURCE";
    /// Milliseconds an HTTP connection has to send a complete request head (from accept and
    /// after each response: also the idle keep-alive time), and the longest stall of a transfer.
    pub const HTTP_REQUEST_TIMEOUT_MS: &str = "CONVENE_BRIDGE_HTTP_REQUEST_TIMEOUT_MS";
    /// Largest HTTP request body accepted.
    pub const HTTP_MAX_BODY_BYTES: &str = "CONVENE_BRIDGE_HTTP_MAX_BODY_BYTES";
    /// Largest control WebSocket message (and frame) accepted from signaling.
    pub const CONTROL_MAX_MESSAGE_BYTES: &str = "CONVENE_BRIDGE_CONTROL_MAX_MESSAGE_BYTES";
    /// Control messages queued towards signaling before the connection is reset.
    pub const CONTROL_QUEUE: &str = "CONVENE_BRIDGE_CONTROL_QUEUE";
    /// Milliseconds between pings on the control WebSocket; three silent intervals (nothing
    /// read, or a send stuck) close it.
    pub const CONTROL_KEEPALIVE_MS: &str = "CONVENE_BRIDGE_CONTROL_KEEPALIVE_MS";
    /// PEM CA bundle that signaling's certificate must chain to (`wss://` URLs); without it
    /// the system roots are used.
    pub const CONTROL_CA_FILE: &str = "CONVENE_BRIDGE_CONTROL_CA_FILE";
}

/// Environment every Convene program reads.
pub mod common_env {
    /// `text` or `json`.
    pub const LOG_FORMAT: &str = "CONVENE_LOG_FORMAT";
    /// tracing's filter (`info`, `convene_media=debug`, …).
    pub const LOG_FILTER: &str = "RUST_LOG";
}

/// Where a bridge's advertised address comes from. Serialised as the BridgePool spec spells it;
/// [`AddressSource::flag`] is the bridge's `--address-source` value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum AddressSource {
    /// The Node's ExternalIP, read from the Kubernetes API.
    #[default]
    #[serde(rename = "NodeExternalIP")]
    NodeExternalIp,
    /// The Node's InternalIP (nodes reachable directly, e.g. on a LAN).
    #[serde(rename = "NodeInternalIP")]
    NodeInternalIp,
    /// The listed static addresses.
    Static,
    /// Ask a STUN server from the media port (right only when the egress address is also where
    /// UDP arrives).
    #[serde(rename = "STUN")]
    Stun,
}

impl AddressSource {
    pub const ALL: [AddressSource; 4] = [
        AddressSource::NodeExternalIp,
        AddressSource::NodeInternalIp,
        AddressSource::Static,
        AddressSource::Stun,
    ];

    /// The value of the bridge's `--address-source` flag, also the label it reports the chosen
    /// address with.
    pub fn flag(self) -> &'static str {
        match self {
            AddressSource::NodeExternalIp => "node-external-ip",
            AddressSource::NodeInternalIp => "node-internal-ip",
            AddressSource::Static => "static",
            AddressSource::Stun => "stun",
        }
    }

    /// The Node address type this source reads, if it reads one.
    pub fn node_address_type(self) -> Option<&'static str> {
        match self {
            AddressSource::NodeExternalIp => Some("ExternalIP"),
            AddressSource::NodeInternalIp => Some("InternalIP"),
            AddressSource::Static | AddressSource::Stun => None,
        }
    }
}

impl std::str::FromStr for AddressSource {
    type Err = String;
    /// Accepts the flag spelling and the spec spelling.
    fn from_str(s: &str) -> Result<Self, String> {
        AddressSource::ALL
            .into_iter()
            .find(|a| {
                a.flag().eq_ignore_ascii_case(s)
                    || serde_json::to_value(a).ok().and_then(|v| v.as_str().map(|v| v == s)) == Some(true)
            })
            .ok_or_else(|| {
                format!("unknown address source {s:?} (node-external-ip, node-internal-ip, static or stun)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse() {
        for a in AddressSource::ALL {
            assert_eq!(a.flag().parse::<AddressSource>(), Ok(a));
            let spec: String = serde_json::from_value(serde_json::to_value(a).unwrap()).unwrap();
            assert_eq!(spec.parse::<AddressSource>(), Ok(a));
        }
        assert_eq!(serde_json::to_string(&AddressSource::Stun).unwrap(), "\"STUN\"");
        assert!("carrier-pigeon".parse::<AddressSource>().is_err());
    }
}
